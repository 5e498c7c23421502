//! Where each repository file lives: every path spelling of the repository
//! layout, in one place (store-format.md, "Repository layout", names this
//! module). Paths are `/`-separated and relative to the repository root, as the
//! [`crate::backend::Backend`] trait takes them.

use crate::id::{PackId, SnapshotId};

/// The config file (written last by `init`: a folder without it is not a
/// repository).
pub const CONFIG: &str = "config";
/// The redb index (a cache, rebuildable from the files).
pub const INDEX: &str = "index.redb";
/// The lock file.
pub const LOCK: &str = "lock";
/// Retention settings.
pub const RETENTION: &str = "retention";
/// The status log (last failure).
pub const STATUS: &str = "status";
/// Folder of pack files, in sub-folders named by the first two hex digits.
pub const PACKS: &str = "packs";
/// Folder of snapshot records.
pub const SNAPSHOTS: &str = "snapshots";
/// Folder of key files.
pub const KEYS: &str = "keys";
/// Folder of lock objects (remote repositories only; a local repository is
/// locked with `flock` on [`LOCK`]).
pub const LOCKS: &str = "locks";
/// Folder of change summaries.
pub const CHANGES: &str = "changes";
/// Folder of chain events (annotations, deletions; store-format.md 4.10).
pub const CHAIN: &str = "chain";
/// Prefix of temporary files (a write in progress, or one a crash interrupted).
pub const TEMP_PREFIX: &str = crate::fsutil::TEMP_PREFIX;

/// Folders `init` creates.
pub const INIT_DIRS: [&str; 3] = [PACKS, SNAPSHOTS, KEYS];

/// Entries of the repository root that lumina-backup writes, with whether each
/// is a folder (anything else there is a foreign file).
pub const ROOT_ENTRIES: &[(&str, bool)] = &[
    (CONFIG, false),
    (RETENTION, false),
    (STATUS, false),
    (LOCK, false),
    (INDEX, false),
    (PACKS, true),
    (SNAPSHOTS, true),
    (KEYS, true),
    (CHANGES, true),
    (LOCKS, true),
    (CHAIN, true),
];

/// The folder of packs whose hex id starts with `prefix` (two hex digits).
pub fn pack_dir(prefix: &str) -> String {
    format!("{PACKS}/{prefix}")
}

/// `packs/<first 2 hex>/<64 hex>`.
pub fn pack(id: &PackId) -> String {
    let hex = id.to_hex();
    format!("{PACKS}/{}/{}", &hex[..2], hex)
}

/// `packs/<dir>/<name>` for a name found by listing.
pub fn pack_in(dir: &str, name: &str) -> String {
    format!("{PACKS}/{dir}/{name}")
}

/// `snapshots/<64 hex>`.
pub fn snapshot(id: &SnapshotId) -> String {
    format!("{SNAPSHOTS}/{}", id.to_hex())
}

/// `keys/<32 hex>`.
pub fn key(id: &str) -> String {
    format!("{KEYS}/{id}")
}

/// `changes/<64 hex>` (the change summary of a snapshot).
pub fn changes(id: &SnapshotId) -> String {
    format!("{CHANGES}/{}", id.to_hex())
}

/// `chain/<64 hex>` (a chain event).
pub fn chain_event(id: &SnapshotId) -> String {
    format!("{CHAIN}/{}", id.to_hex())
}

/// The folder holding `path` (`""` for the root).
pub fn dir_of(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(dir, _)| dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_spelled_as_store_format_says() {
        let p = PackId([0xab; 32]);
        assert_eq!(pack(&p), format!("packs/ab/{}", "ab".repeat(32)));
        assert_eq!(dir_of(&pack(&p)), "packs/ab");
        assert_eq!(pack_dir("ab"), "packs/ab");
        let s = SnapshotId([0x01; 32]);
        assert_eq!(snapshot(&s), format!("snapshots/{}", "01".repeat(32)));
        assert_eq!(changes(&s), format!("changes/{}", "01".repeat(32)));
        assert_eq!(key("k"), "keys/k");
        assert_eq!(dir_of(CONFIG), "");
    }
}
