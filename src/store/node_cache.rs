//! A local copy of a remote store's tree frames (the frames holding chunk-list
//! tree nodes, store-format.md 4.7 and 4.9), so a snapshot reading its parent's
//! chunk list, and every reader walking a tree, costs no request for the nodes
//! this machine wrote or read before.
//!
//! A frame is kept as stored in its pack (compressed, and sealed when the
//! repository is encrypted: nothing plain lands in the cache), keyed by pack id
//! and frame offset, beside a BLAKE3 of its bytes. The cache is never trusted:
//! an entry whose length or checksum is wrong, or that does not open, is
//! deleted and the frame read from the store; every chunk sliced from it is
//! re-hashed as from any frame. Writes are best effort (a full disk or a
//! read-only cache only costs requests), temp file then rename, no fsync (a
//! torn entry fails its checksum). Entries of packs no longer in the store are
//! dropped on open (see [`NodeCache::retain_packs`]).
//!
//! Layout: `<cache dir>/trees/<pack id hex>/<frame offset>`; each file is
//! `b"lbtree1\0"`, the 32-byte BLAKE3 of the stored frame, the stored frame.

use std::path::{Path, PathBuf};

use super::ChunkLoc;
use crate::id::PackId;

/// The first bytes of every cache entry (format version 1).
const MAGIC: &[u8; 8] = b"lbtree1\0";
const HEAD_LEN: usize = MAGIC.len() + 32;

/// The tree frames of one remote repository, on local disk.
#[derive(Debug)]
pub struct NodeCache {
    dir: PathBuf,
}

impl NodeCache {
    /// A cache in `dir` (created when the first entry is written).
    pub fn new(dir: &Path) -> Self {
        NodeCache {
            dir: dir.to_path_buf(),
        }
    }

    fn pack_dir(&self, pack: &PackId) -> PathBuf {
        self.dir.join(pack.to_hex())
    }

    fn entry(&self, pack: &PackId, frame_offset: u64) -> PathBuf {
        self.pack_dir(pack).join(frame_offset.to_string())
    }

    /// The stored bytes of the frame at `loc`, if cached whole; an entry that
    /// is not (wrong length, magic or checksum) is removed.
    pub fn get(&self, loc: &ChunkLoc) -> Option<Vec<u8>> {
        let path = self.entry(&loc.pack, loc.frame_offset);
        let mut bytes = std::fs::read(&path).ok()?;
        let whole = bytes.len() == HEAD_LEN + loc.frame_len as usize
            && bytes.starts_with(MAGIC)
            && blake3::hash(&bytes[HEAD_LEN..]).as_bytes() == &bytes[MAGIC.len()..HEAD_LEN];
        if !whole {
            self.remove(loc);
            return None;
        }
        bytes.drain(..HEAD_LEN);
        Some(bytes)
    }

    /// Keeps `stored`, the bytes of the frame at `frame_offset` of `pack`
    /// (best effort: a failure to write only leaves it out).
    pub fn put(&self, pack: &PackId, frame_offset: u64, stored: &[u8]) {
        let _ = self.try_put(pack, frame_offset, stored);
    }

    fn try_put(&self, pack: &PackId, frame_offset: u64, stored: &[u8]) -> std::io::Result<()> {
        let dir = self.pack_dir(pack);
        std::fs::create_dir_all(&dir)?;
        let tmp = dir.join(format!(
            ".tmp-{frame_offset}-{:016x}",
            rand::random::<u64>()
        ));
        let mut bytes = Vec::with_capacity(HEAD_LEN + stored.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(blake3::hash(stored).as_bytes());
        bytes.extend_from_slice(stored);
        std::fs::write(&tmp, &bytes)?;
        std::fs::rename(&tmp, self.entry(pack, frame_offset)).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
    }

    /// Drops the entry of the frame at `loc` (it did not open).
    pub fn remove(&self, loc: &ChunkLoc) {
        let _ = std::fs::remove_file(self.entry(&loc.pack, loc.frame_offset));
    }

    /// Drops the entries of every pack for which `keep` is false (packs the
    /// store no longer has), and anything in the folder that is not an entry.
    pub fn retain_packs(&self, keep: &dyn Fn(&PackId) -> bool) {
        let Ok(dirs) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for d in dirs.flatten() {
            let name = d.file_name();
            let pack = name.to_str().and_then(PackId::from_hex);
            if pack.is_some_and(|p| keep(&p)) {
                continue;
            }
            let path = d.path();
            let _ = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(pack: PackId, frame_offset: u64, frame_len: u32) -> ChunkLoc {
        ChunkLoc {
            pack,
            frame_offset,
            frame_len,
            frame_raw_len: frame_len,
            compression: 0,
            offset: 0,
            len: frame_len,
            kind: super::super::KIND_TREE,
        }
    }

    #[test]
    fn entries_round_trip_and_damage_is_a_miss() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = NodeCache::new(&dir.path().join("trees"));
        let pack = PackId([3; 32]);
        let at = loc(pack, 40, 5);
        assert_eq!(cache.get(&at), None, "empty cache");
        cache.put(&pack, 40, b"hello");
        assert_eq!(cache.get(&at).as_deref(), Some(&b"hello"[..]));
        // Another length at the same place: a miss, and the entry is gone.
        assert_eq!(cache.get(&loc(pack, 40, 6)), None);
        assert_eq!(cache.get(&at), None);

        // A flipped byte fails the checksum.
        cache.put(&pack, 40, b"hello");
        let path = cache.entry(&pack, 40);
        let mut bytes = std::fs::read(&path).expect("read");
        *bytes.last_mut().expect("byte") ^= 1;
        std::fs::write(&path, bytes).expect("write");
        assert_eq!(cache.get(&at), None);
        assert!(!path.exists(), "a damaged entry is removed");
    }

    #[test]
    fn packs_gone_from_the_store_are_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = NodeCache::new(dir.path());
        let (kept, gone) = (PackId([1; 32]), PackId([2; 32]));
        cache.put(&kept, 0, b"a");
        cache.put(&gone, 0, b"b");
        std::fs::write(dir.path().join("stray"), b"x").expect("stray");
        cache.retain_packs(&|p| *p == kept);
        assert_eq!(cache.get(&loc(kept, 0, 1)).as_deref(), Some(&b"a"[..]));
        assert_eq!(cache.get(&loc(gone, 0, 1)), None);
        assert!(!dir.path().join("stray").exists());
    }
}
