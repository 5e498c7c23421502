//! What `verify` found wrong: one typed [`Problem`] per damaged object, naming
//! the object (pack, snapshot, file in a snapshot, chunk, repository file) and
//! what is wrong with it. `Display` gives one line without advice; a client
//! adds what to do (the CLI names its commands).

use serde::{Serialize, Serializer};

use crate::error::{Error, ErrorKind};
use crate::id::{PackId, SnapshotId};

/// What is wrong with an object: the failure that found it, kept as its kind,
/// the object it names and its one-line message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// The kind of the failure (`Corrupt`, `MissingData`, `TooNew`, `Io`...).
    pub kind: ErrorKind,
    /// The damaged object it names ("pack 3fa9…", "chunk 12ab…"), if any.
    pub object: Option<String>,
    /// Its message.
    pub detail: String,
}

impl From<&Error> for Damage {
    fn from(e: &Error) -> Self {
        Damage {
            kind: e.kind(),
            object: e.object().map(str::to_string),
            detail: e.to_string(),
        }
    }
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)
    }
}

/// One problem `verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// A file or folder of the repository outside packs and snapshots (the
    /// config, a key file, the retention settings, status, a change summary, a
    /// foreign entry) is damaged, unreadable or out of place; or the repository
    /// cannot be opened. The text names the file.
    RepositoryFile(String),
    /// A pack the index names is not there.
    PackMissing {
        /// The pack.
        pack: PackId,
    },
    /// A pack has another size than its index entry.
    PackSize {
        /// The pack.
        pack: PackId,
        /// Its size on disk.
        actual: u64,
        /// The size the index records.
        expected: u64,
    },
    /// A pack's description or data failed to read, decode or re-hash.
    PackDamaged {
        /// The pack.
        pack: PackId,
        /// What is wrong.
        damage: Damage,
    },
    /// A pack file is in the repository but not in the index.
    PackNotIndexed {
        /// The pack.
        pack: PackId,
    },
    /// A snapshot's record cannot be read.
    SnapshotUnreadable {
        /// The snapshot.
        snapshot: SnapshotId,
        /// What is wrong.
        damage: Damage,
    },
    /// Chunks a file of a snapshot needs are missing (their pack was lost).
    ChunkMissing {
        /// The snapshot.
        snapshot: SnapshotId,
        /// The file in it.
        file: String,
        /// The first missing chunk (hex id).
        chunk: String,
        /// How many more chunks of that file are missing.
        more: u64,
    },
    /// A file of a snapshot cannot be read back (a damaged chunk or node).
    FileDamaged {
        /// The snapshot.
        snapshot: SnapshotId,
        /// The file in it.
        file: String,
        /// What is wrong.
        damage: Damage,
    },
    /// A file's chunks add up to another size than its record says.
    FileSize {
        /// The snapshot.
        snapshot: SnapshotId,
        /// The file in it.
        file: String,
        /// The bytes the chunks add up to.
        actual: u64,
        /// The size the record says.
        expected: u64,
    },
    /// A file's data chunks, in order, do not match the checksum its record
    /// holds (format 2: the chunk-list digest, store-format.md 4.2): its tree
    /// lists other chunks, or the same in another order, or the record was
    /// altered. Every chunk may be intact; restore would refuse the file.
    FileChecksum {
        /// The snapshot.
        snapshot: SnapshotId,
        /// The file in it.
        file: String,
        /// The digest of the chunks its tree lists (hex).
        actual: String,
        /// The checksum the record holds (hex).
        expected: String,
    },
    /// The history chain (store-format.md 4.10) shows a snapshot missing,
    /// replaced, reordered or inserted, a broken link or a forged record, or
    /// does not hold the head given to `--expect-head`. The text names the
    /// record.
    Chain(String),
    /// A restore drill (`verify --restore-test`) failed: the restored image
    /// fails SQLite's checks or disagrees with its manifest. The text names
    /// the snapshot.
    RestoreDrill(String),
}

impl Problem {
    /// The failure behind the problem, where one was reported.
    pub fn damage(&self) -> Option<&Damage> {
        match self {
            Problem::PackDamaged { damage, .. }
            | Problem::SnapshotUnreadable { damage, .. }
            | Problem::FileDamaged { damage, .. } => Some(damage),
            _ => None,
        }
    }

    /// The snapshot the problem is in, if it is in one.
    pub fn snapshot(&self) -> Option<&SnapshotId> {
        match self {
            Problem::SnapshotUnreadable { snapshot, .. }
            | Problem::ChunkMissing { snapshot, .. }
            | Problem::FileDamaged { snapshot, .. }
            | Problem::FileSize { snapshot, .. }
            | Problem::FileChecksum { snapshot, .. } => Some(snapshot),
            _ => None,
        }
    }

    /// The pack the problem is in, if it is in one.
    pub fn pack(&self) -> Option<&PackId> {
        match self {
            Problem::PackMissing { pack }
            | Problem::PackSize { pack, .. }
            | Problem::PackDamaged { pack, .. }
            | Problem::PackNotIndexed { pack } => Some(pack),
            _ => None,
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::RepositoryFile(text) | Problem::Chain(text) | Problem::RestoreDrill(text) => {
                f.write_str(text)
            }
            Problem::PackMissing { pack } => write!(f, "pack {} is missing", pack.to_hex()),
            Problem::PackSize {
                pack,
                actual,
                expected,
            } => write!(
                f,
                "pack {} is {actual} bytes, expected {expected} (truncated or overwritten)",
                pack.to_hex()
            ),
            Problem::PackDamaged { damage, .. } => write!(f, "{damage}"),
            Problem::PackNotIndexed { pack } => write!(
                f,
                "pack {} is not in the index (damaged, or the index is out of date)",
                pack.to_hex()
            ),
            Problem::SnapshotUnreadable { damage, .. } => write!(f, "{damage}"),
            Problem::ChunkMissing {
                snapshot,
                file,
                chunk,
                more,
            } => write!(
                f,
                "snapshot {} file {file}: chunk {} is missing (its pack was lost){}",
                snapshot.short(),
                &chunk[..chunk.len().min(12)],
                match more {
                    0 => String::new(),
                    n => format!(", and {n} more"),
                }
            ),
            Problem::FileDamaged {
                snapshot,
                file,
                damage,
            } => write!(f, "snapshot {} file {file}: {damage}", snapshot.short()),
            Problem::FileSize {
                snapshot,
                file,
                actual,
                expected,
            } => write!(
                f,
                "snapshot {} file {file}: chunks add up to {actual} bytes, record says {expected}",
                snapshot.short()
            ),
            Problem::FileChecksum {
                snapshot,
                file,
                actual,
                expected,
            } => write!(
                f,
                "snapshot {} file {file}: its chunk list has checksum {}, record says {} \
                 (chunks substituted or reordered, or the record altered)",
                snapshot.short(),
                &actual[..actual.len().min(12)],
                &expected[..expected.len().min(12)],
            ),
        }
    }
}

/// Serialized as its one-line text.
impl Serialize for Problem {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_name_their_object_in_one_line() {
        let pack = PackId([7; 32]);
        let snap = SnapshotId([9; 32]);
        let p = Problem::PackSize {
            pack,
            actual: 10,
            expected: 20,
        };
        assert_eq!(p.pack(), Some(&pack));
        assert!(p
            .to_string()
            .starts_with(&format!("pack {} is 10 bytes", pack.to_hex())));
        let p = Problem::ChunkMissing {
            snapshot: snap,
            file: "app.db".into(),
            chunk: "ab".repeat(32),
            more: 2,
        };
        assert_eq!(p.snapshot(), Some(&snap));
        let line = p.to_string();
        assert!(
            line.contains("app.db") && line.contains(", and 2 more"),
            "{line}"
        );
        assert!(!line.contains('\n') && !line.contains("lumina-backup ") && !line.contains("--"));
        let damage = Damage::from(&Error::corrupt("pack 0707", "bad frame"));
        assert_eq!(damage.kind, ErrorKind::Corrupt);
        assert_eq!(damage.object.as_deref(), Some("pack 0707"));
        let p = Problem::FileChecksum {
            snapshot: snap,
            file: "app.db".into(),
            actual: "12".repeat(32),
            expected: "34".repeat(32),
        };
        assert_eq!(p.snapshot(), Some(&snap));
        let line = p.to_string();
        assert!(
            line.starts_with(&format!("snapshot {} file app.db: ", snap.short()))
                && line.contains("checksum 121212121212, record says 343434343434")
                && !line.contains('\n'),
            "{line}"
        );
        let json = serde_json::to_string(&Problem::PackNotIndexed { pack }).expect("json");
        assert!(json.starts_with("\"pack "), "{json}");
    }
}
