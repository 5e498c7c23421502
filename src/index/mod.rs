//! The redb index: chunk id → location, pack list, snapshot list.
//!
//! A cache, never the truth: everything in it can be rebuilt from the pack files
//! and snapshot files (`repair index`). It is committed last in every write, so a
//! crash before the commit leaves the previous index, and files it does not know
//! yet are found and added by [`Index::reconcile`]-style checks in `repo`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::error::{Error, Result};
use crate::format::chunkloc::LOC_LEN;
use crate::id::{ChunkId, PackId, SnapshotId};
use crate::store::ChunkLoc;

pub mod guard;
pub mod overlay;
use guard::guarded;

const CHUNKS: TableDefinition<[u8; 32], [u8; LOC_LEN]> = TableDefinition::new("chunks");
/// Pack id → pack number (u32 LE) and file size (u64 LE).
const PACKS: TableDefinition<[u8; 32], [u8; 12]> = TableDefinition::new("packs");
/// Pack number → pack id (what chunk locations name).
const PACK_IDS: TableDefinition<u32, [u8; 32]> = TableDefinition::new("pack_ids");
const SNAPSHOTS: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("snapshots");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// Meta key of [`Index::refs_complete`]: `[1]` or absent = complete, `[0]` = not known.
const REFS_COMPLETE: &str = "refs_complete";
/// `meta` key: the index file's length after its last compaction (u64 LE).
const COMPACTED_LEN: &str = "compacted_len";
/// Growth past the length after the last compaction that makes
/// [`Index::compact_if_grown`] compact: the length itself plus a quarter of
/// it (at least 1 MiB). A freshly compacted file has no free page, so the next
/// commit that needs one makes redb double the file (it grows a file of less
/// than one full region, 4 GiB of data pages, by doubling): up to twice the
/// compacted length is the normal state, not waste, and compacting it only
/// makes the next commit double it again. With a quarter as the bound, every
/// snapshot after a compaction compacted the whole index again (issue #10: 0.5
/// to several seconds per small snapshot of a 1 GB database).
fn compaction_slack(compacted_len: u64) -> u64 {
    compacted_len.saturating_add((compacted_len / 4).max(1 << 20))
}

/// Meta key of the next pack number to assign (u32 LE; absent = 0). Numbers
/// only grow and are never reused, so a stale location can never name another
/// pack than the one it was written for.
const NEXT_PACK: &str = "next_pack";

/// Version of the index's own layout; an index of another version is emptied
/// and refilled from the files. 2: snapshots hold the whole record file;
/// 3: chunk locations name packs by number (28-byte fixed-width values).
pub const INDEX_VERSION: u8 = 3;

/// The open index.
pub struct Index {
    /// Closed under the panic guard (redb panics closing a poisoned database).
    db: guard::DropGuarded<Database>,
    path: PathBuf,
    /// Declared after `db`, so it runs once redb has closed the file (redb grows
    /// it, sparsely, when it closes).
    _fill: FillHolesOnDrop,
}

/// Allocates the index file's holes when dropped (writable opens only).
struct FillHolesOnDrop(Option<PathBuf>);

impl Drop for FillHolesOnDrop {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            preallocate(p);
        }
    }
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index").field("path", &self.path).finish()
    }
}

/// Changes to apply in one index transaction.
#[derive(Debug, Default)]
pub struct IndexUpdate {
    /// Chunks to add.
    pub chunks: Vec<(ChunkId, ChunkLoc)>,
    /// Packs to add, with sizes.
    pub packs: Vec<(PackId, u64)>,
    /// Snapshot records to add (id, encoded record).
    pub snapshots: Vec<(SnapshotId, Vec<u8>)>,
    /// Snapshots to drop.
    pub remove_snapshots: Vec<SnapshotId>,
    /// Chunks to drop (prune: dead chunks of deleted or repacked packs). Applied
    /// before `chunks`, so a chunk in both ends up at its new location.
    pub remove_chunks: Vec<ChunkId>,
    /// Packs to drop (prune: packs deleted or repacked).
    pub remove_packs: Vec<PackId>,
    /// Sets whether every chunk the snapshots reference is known to be indexed
    /// (see [`Index::refs_complete`]).
    pub refs_complete: Option<bool>,
}

impl IndexUpdate {
    /// Whether the update changes nothing.
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
            && self.packs.is_empty()
            && self.snapshots.is_empty()
            && self.remove_snapshots.is_empty()
            && self.remove_chunks.is_empty()
            && self.remove_packs.is_empty()
            && self.refs_complete.is_none()
    }
}

impl Index {
    /// Opens or creates the index file. An index of another layout version, or
    /// one redb cannot open, is reported as `Error::Index`.
    ///
    /// Never panics on a damaged file: redb's assertions are turned into
    /// `Error::Index` ([`guard::guarded`]), and the tables are read once (see
    /// [`Index::check`]) so that damage found at open can be answered by a rebuild.
    pub fn open(path: &Path) -> Result<Self> {
        guarded("opening the index", || Self::open_unguarded(path))
    }

    fn open_unguarded(path: &Path) -> Result<Self> {
        // A small page cache: the index is used for point lookups, and its memory
        // must not grow with the repository (peak RSS target, BENCHMARKS.md).
        let db = redb::Builder::new()
            .set_cache_size(16 << 20)
            .create(path)
            .map_err(|e| Error::index(format!("cannot open {}: {e}", path.display())))?;
        // Private like every repository file (redb creates it with the umask's mode).
        crate::platform::set_mode(path, 0o600)
            .map_err(|e| Error::io("setting permissions of", path, e))?;
        preallocate(path);
        Self::prepare(db, path, true)
    }

    /// Opens the index file at `path` without ever writing to it (a read-only
    /// repository): every write, including the ones opening needs, stays in
    /// memory ([`overlay`]). Without an index file, or with one redb cannot
    /// open, the index starts empty in memory and opening the repository fills it
    /// from the files.
    pub fn open_read_only(path: &Path) -> Result<Self> {
        guarded("opening the index", || Self::open_read_only_unguarded(path))
    }

    fn open_read_only_unguarded(path: &Path) -> Result<Self> {
        let base = match std::fs::File::open(path) {
            Ok(f) => Some(f),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io("opening", path, e)),
        };
        let build = |base| -> Result<Database> {
            let backend = overlay::Overlay::new(base)
                .map_err(|e| Error::io("reading the size of", path, e))?;
            redb::Builder::new()
                .set_cache_size(16 << 20)
                .create_with_backend(backend)
                .map_err(|e| Error::index(format!("cannot open {}: {e}", path.display())))
        };
        let db = match build(base) {
            Ok(db) => db,
            Err(_) => build(None)?,
        };
        Self::prepare(db, path, false)
    }

    /// Checks the layout version (emptying an index of another one). An index
    /// of this version with its tables is not written to, so opening needs no
    /// free space.
    fn prepare(db: Database, path: &Path, writable: bool) -> Result<Self> {
        let index = Index {
            db: guard::DropGuarded::new(db),
            path: path.to_path_buf(),
            _fill: FillHolesOnDrop(writable.then(|| path.to_path_buf())),
        };
        if index.is_current().unwrap_or(false) {
            index.check()?;
            return Ok(index);
        }
        let txn = index.db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            let version = meta.get("version")?.map(|v| v.value().to_vec());
            match version.as_deref() {
                None => {
                    meta.insert("version", &[INDEX_VERSION][..])?;
                    // A new index filled from the files may lack chunks of lost
                    // packs that snapshots still name.
                    meta.insert(REFS_COMPLETE, &[0][..])?;
                }
                Some([INDEX_VERSION]) => {}
                Some(_) => {
                    // Another layout: empty it; opening the repository refills it.
                    // Tables are deleted by name, whatever their old types.
                    txn.delete_table(CHUNKS)?;
                    txn.delete_table(PACKS)?;
                    txn.delete_table(PACK_IDS)?;
                    txn.delete_table(SNAPSHOTS)?;
                    meta.insert("version", &[INDEX_VERSION][..])?;
                    meta.insert(REFS_COMPLETE, &[0][..])?;
                }
            }
            txn.open_table(CHUNKS)?;
            txn.open_table(PACKS)?;
            txn.open_table(PACK_IDS)?;
            txn.open_table(SNAPSHOTS)?;
        }
        txn.commit()?;
        index.check()?;
        Ok(index)
    }

    /// Reads every table's entry count and walks the pack and snapshot tables:
    /// a cheap pass over the pages most likely to be damaged (the file's head and
    /// the small tables).
    fn check(&self) -> Result<()> {
        let txn = self.db.begin_read()?;
        txn.open_table(CHUNKS)?.len()?;
        for row in txn.open_table(PACKS)?.iter()? {
            row?;
        }
        for row in txn.open_table(PACK_IDS)?.iter()? {
            row?;
        }
        for row in txn.open_table(SNAPSHOTS)?.iter()? {
            row?;
        }
        Ok(())
    }

    /// Whether the index has this layout version and all its tables.
    fn is_current(&self) -> Result<bool> {
        let txn = self.db.begin_read()?;
        let meta = match txn.open_table(META) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        let current = meta.get("version")?.map(|v| v.value().to_vec()) == Some(vec![INDEX_VERSION]);
        Ok(current
            && txn.open_table(CHUNKS).is_ok()
            && txn.open_table(PACKS).is_ok()
            && txn.open_table(PACK_IDS).is_ok()
            && txn.open_table(SNAPSHOTS).is_ok())
    }

    /// The file path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A read view for many lookups.
    pub fn reader(&self) -> Result<IndexReader> {
        guarded("reading the index", || {
            let txn = self.db.begin_read()?;
            let chunks = txn.open_table(CHUNKS)?;
            let pack_ids = txn.open_table(PACK_IDS)?;
            Ok(IndexReader { chunks, pack_ids })
        })
    }

    /// Applies an update in one durable transaction.
    pub fn apply(&self, update: &IndexUpdate) -> Result<()> {
        self.apply_at(update, "before-index-commit")
    }

    /// [`Index::apply`] with the crash point named `point` just before the commit.
    pub fn apply_at(&self, update: &IndexUpdate, point: &str) -> Result<()> {
        guarded("updating the index", || {
            let txn = self.db.begin_write()?;
            {
                let mut chunks = txn.open_table(CHUNKS)?;
                for id in &update.remove_chunks {
                    chunks.remove(id.0)?;
                }
                let mut packs = txn.open_table(PACKS)?;
                let mut pack_ids = txn.open_table(PACK_IDS)?;
                let mut meta = txn.open_table(META)?;
                for id in &update.remove_packs {
                    if let Some(v) = packs.remove(id.0)? {
                        let (no, _) = pack_entry(&v.value());
                        drop(v);
                        pack_ids.remove(no)?;
                    }
                }
                let mut next = match meta.get(NEXT_PACK)? {
                    Some(v) => u32::from_le_bytes(v.value().try_into().map_err(|_| {
                        Error::index("bad entry: next pack number is not 4 bytes".to_string())
                    })?),
                    None => 0,
                };
                let start = next;
                for (id, size) in &update.packs {
                    let known = packs.get(id.0)?.map(|v| pack_entry(&v.value()).0);
                    let no = match known {
                        Some(no) => no,
                        None => {
                            let no = next;
                            next = next.checked_add(1).ok_or_else(|| {
                                Error::index(
                                    "pack numbers exhausted: run `repair index`".to_string(),
                                )
                            })?;
                            pack_ids.insert(no, id.0)?;
                            no
                        }
                    };
                    let mut v = [0u8; 12];
                    v[..4].copy_from_slice(&no.to_le_bytes());
                    v[4..].copy_from_slice(&size.to_le_bytes());
                    packs.insert(id.0, v)?;
                }
                if next != start {
                    meta.insert(NEXT_PACK, &next.to_le_bytes()[..])?;
                }
                // Pack numbers looked up once per pack: the chunks come in key
                // order, so the update's packs interleave.
                let mut numbers: HashMap<PackId, u32> = HashMap::new();
                for (id, loc) in &update.chunks {
                    let no = match numbers.get(&loc.pack) {
                        Some(&no) => no,
                        None => {
                            let no = packs.get(loc.pack.0)?.map(|v| pack_entry(&v.value()).0);
                            let no = no.ok_or_else(|| {
                                Error::index(format!(
                                    "chunk {} located in pack {}, which is not indexed",
                                    id.short(),
                                    loc.pack.short()
                                ))
                            })?;
                            numbers.insert(loc.pack, no);
                            no
                        }
                    };
                    let bytes = loc.encode(no).ok_or_else(|| {
                        Error::index(format!("chunk {}: frame offset too large", id.short()))
                    })?;
                    chunks.insert(id.0, bytes)?;
                }
                let mut snaps = txn.open_table(SNAPSHOTS)?;
                for (id, rec) in &update.snapshots {
                    snaps.insert(id.0, rec.as_slice())?;
                }
                for id in &update.remove_snapshots {
                    snaps.remove(id.0)?;
                }
                if let Some(complete) = update.refs_complete {
                    meta.insert(REFS_COMPLETE, &[u8::from(complete)][..])?;
                }
            }
            crate::testhook::point(point);
            txn.commit()?;
            preallocate(&self.path);
            Ok(())
        })
    }

    /// Whether every chunk that the indexed snapshots reference is known to be
    /// indexed. True in the normal course (a snapshot names only chunks it stored
    /// or found indexed; prune keeps referenced chunks); false after the index
    /// was created anew from the files or dropped the chunks of a lost pack,
    /// until a check proved it again (verify, prune, `repair snapshots`). Only
    /// then may a snapshot trust its parent's chunk list without index lookups.
    /// Index files written before this flag existed count as true.
    pub fn refs_complete(&self) -> Result<bool> {
        guarded("reading the index", || {
            let txn = self.db.begin_read()?;
            let meta = txn.open_table(META)?;
            let v = meta.get(REFS_COMPLETE)?.map(|v| v.value().to_vec());
            Ok(v.as_deref() != Some(&[0][..]))
        })
    }

    /// Gives the file's free space back after large writes: each transaction
    /// copies the pages it changes, so many commits (one per pack in a big
    /// snapshot) leave the file several times larger than its live data.
    pub fn compact(&mut self) -> Result<()> {
        guarded("compacting the index", || {
            while self.db.compact().map_err(Error::from)? {}
            // Remember the compacted length, so later snapshots compact only
            // when the file has grown well past it (`compact_if_grown`).
            if let Ok(len) = std::fs::metadata(&self.path).map(|m| m.len()) {
                let txn = self.db.begin_write()?;
                {
                    let mut meta = txn.open_table(META)?;
                    meta.insert(COMPACTED_LEN, &len.to_le_bytes()[..])?;
                }
                txn.commit()?;
            }
            preallocate(&self.path);
            Ok(())
        })
    }

    /// [`Index::compact`], only when the file has grown past twice and a
    /// quarter (at least 1 MiB) of its length after its last compaction
    /// ([`compaction_slack`]), or was never compacted.
    /// Compacting rewrites the whole index, so doing it after every small
    /// snapshot made a snapshot's time grow with the history; redb reuses the
    /// pages its commits free, so small snapshots rarely grow the file.
    /// Returns whether it compacted.
    pub fn compact_if_grown(&mut self) -> Result<bool> {
        let len = std::fs::metadata(&self.path)
            .map_err(|e| Error::io("reading the size of", &self.path, e))?
            .len();
        let last = guarded("reading the index", || {
            let txn = self.db.begin_read()?;
            let meta = txn.open_table(META)?;
            let v = meta.get(COMPACTED_LEN)?.map(|v| v.value().to_vec());
            Ok(v.and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
                .map(u64::from_le_bytes))
        })?;
        match last {
            Some(last) if len <= last.saturating_add(compaction_slack(last)) => Ok(false),
            _ => self.compact().map(|()| true),
        }
    }

    /// Removes everything (before a rebuild).
    pub fn clear(&self) -> Result<()> {
        guarded("clearing the index", || {
            let txn = self.db.begin_write()?;
            txn.delete_table(CHUNKS)?;
            txn.delete_table(PACKS)?;
            txn.delete_table(PACK_IDS)?;
            txn.delete_table(SNAPSHOTS)?;
            txn.open_table(CHUNKS)?;
            txn.open_table(PACKS)?;
            txn.open_table(PACK_IDS)?;
            txn.open_table(SNAPSHOTS)?;
            txn.commit()?;
            Ok(())
        })
    }

    /// Every snapshot record (id, encoded bytes).
    pub fn snapshots(&self) -> Result<Vec<(SnapshotId, Vec<u8>)>> {
        guarded("reading the index", || {
            let txn = self.db.begin_read()?;
            let t = txn.open_table(SNAPSHOTS)?;
            let mut out = Vec::new();
            for row in t.iter()? {
                let (k, v) = row?;
                out.push((SnapshotId(k.value()), v.value().to_vec()));
            }
            Ok(out)
        })
    }

    /// Every pack with its size.
    pub fn packs(&self) -> Result<Vec<(PackId, u64)>> {
        guarded("reading the index", || {
            let txn = self.db.begin_read()?;
            let t = txn.open_table(PACKS)?;
            let mut out = Vec::new();
            for row in t.iter()? {
                let (k, v) = row?;
                out.push((PackId(k.value()), pack_entry(&v.value()).1));
            }
            Ok(out)
        })
    }

    /// Number of chunks indexed.
    pub fn chunk_count(&self) -> Result<u64> {
        guarded("reading the index", || {
            let txn = self.db.begin_read()?;
            Ok(txn.open_table(CHUNKS)?.len()?)
        })
    }

    /// The chunks whose indexed location is in one of `packs` (one pass over the
    /// chunk table): what to drop when those packs are lost or damaged.
    pub fn chunks_in_packs(
        &self,
        packs: &std::collections::HashSet<PackId>,
    ) -> Result<Vec<ChunkId>> {
        let mut out = Vec::new();
        self.for_each_chunk(&mut |chunk, loc| {
            if packs.contains(&loc.pack) {
                out.push(chunk);
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Calls `f` for every chunk location (streaming).
    pub fn for_each_chunk(&self, f: &mut dyn FnMut(ChunkId, ChunkLoc) -> Result<()>) -> Result<()> {
        guarded("reading the index", || {
            let txn = self.db.begin_read()?;
            let mut ids = std::collections::HashMap::new();
            for row in txn.open_table(PACK_IDS)?.iter()? {
                let (k, v) = row?;
                ids.insert(k.value(), PackId(v.value()));
            }
            let t = txn.open_table(CHUNKS)?;
            for row in t.iter()? {
                let (k, v) = row?;
                let loc = ChunkLoc::decode(&v.value(), |no| ids.get(&no).copied())
                    .map_err(|e| Error::index(format!("bad entry: {e}")))?;
                f(ChunkId(k.value()), loc)?;
            }
            Ok(())
        })
    }
}

/// Allocates the holes of the index file (redb grows it sparsely), best effort:
/// a transaction that fits in the file's free pages then needs no new disk
/// blocks, so `forget` and `prune` can commit on a full disk (Linux only).
fn preallocate(path: &Path) {
    crate::platform::preallocate(path);
}

/// A pack entry's number and size.
fn pack_entry(v: &[u8; 12]) -> (u32, u64) {
    let mut no = [0u8; 4];
    no.copy_from_slice(&v[..4]);
    let mut size = [0u8; 8];
    size.copy_from_slice(&v[4..]);
    (u32::from_le_bytes(no), u64::from_le_bytes(size))
}

/// A read transaction over the chunk table.
pub struct IndexReader {
    chunks: redb::ReadOnlyTable<[u8; 32], [u8; LOC_LEN]>,
    pack_ids: redb::ReadOnlyTable<u32, [u8; 32]>,
}

impl IndexReader {
    /// Where a chunk is, if indexed.
    pub fn get(&self, id: &ChunkId) -> Result<Option<ChunkLoc>> {
        guarded("reading the index", || match self.chunks.get(id.0)? {
            None => Ok(None),
            Some(v) => {
                let b = v.value();
                let no = ChunkLoc::pack_no(&b).unwrap_or(u32::MAX);
                let pack = self.pack_ids.get(no)?.map(|p| PackId(p.value()));
                ChunkLoc::decode(&b, |_| pack)
            }
            .map(Some)
            .map_err(|e| Error::index(format!("entry for chunk {}: {e}", id.short()))),
        })
    }

    /// Whether a chunk is indexed.
    pub fn contains(&self, id: &ChunkId) -> Result<bool> {
        guarded("reading the index", || Ok(self.chunks.get(id.0)?.is_some()))
    }
}

/// Opens the index file at `path` and reads everything in it (every table,
/// every chunk entry, a lookup): the open path of a repository, as a check for
/// fuzzing and property tests. Returns the number of entries read, or an error;
/// it must never panic, whatever the file holds.
#[cfg(any(test, feature = "internals"))]
pub fn probe(path: &Path) -> Result<u64> {
    let index = Index::open(path)?;
    let mut n = index.snapshots()?.len() as u64 + index.packs()?.len() as u64;
    n += index.chunk_count()?;
    let mut first = None;
    index.for_each_chunk(&mut |id, _| {
        first.get_or_insert(id);
        Ok(())
    })?;
    let reader = index.reader()?;
    if let Some(id) = first {
        reader.get(&id)?;
    }
    reader.contains(&ChunkId([7; 32]))?;
    index.apply(&IndexUpdate {
        packs: vec![(PackId([9; 32]), 1)],
        ..Default::default()
    })?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A small valid index file's bytes (built once).
    fn sample() -> &'static [u8] {
        static BYTES: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        BYTES.get_or_init(|| {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("index.redb");
            let index = Index::open(&path).expect("create");
            let loc = ChunkLoc {
                pack: PackId([1; 32]),
                frame_offset: 16,
                frame_len: 100,
                frame_raw_len: 400,
                compression: 1,
                offset: 0,
                len: 400,
                kind: 0,
            };
            index
                .apply(&IndexUpdate {
                    chunks: (0..200u8).map(|i| (ChunkId([i; 32]), loc)).collect(),
                    packs: vec![(PackId([1; 32]), 1000)],
                    snapshots: vec![(SnapshotId([3; 32]), vec![5; 300])],
                    ..Default::default()
                })
                .expect("fill");
            drop(index);
            std::fs::read(&path).expect("read")
        })
    }

    /// Chunks of several packs interleaved in one update (as a copy's batch,
    /// in key order) are each located in their own pack.
    #[test]
    fn interleaved_packs_in_one_update_keep_their_own_numbers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let index = Index::open(&dir.path().join("index.redb")).expect("create");
        // Pack 9 first, so the new packs do not get numbers in key order.
        index
            .apply(&IndexUpdate {
                packs: vec![(PackId([9; 32]), 10)],
                ..Default::default()
            })
            .expect("first pack");
        let chunks: Vec<(ChunkId, ChunkLoc)> = (0..60u8)
            .map(|i| (ChunkId([i; 32]), loc_in(1 + i % 3, 400)))
            .collect();
        index
            .apply(&IndexUpdate {
                chunks: chunks.clone(),
                packs: (1..=3u8).map(|p| (PackId([p; 32]), 1000)).collect(),
                ..Default::default()
            })
            .expect("interleaved");
        let r = index.reader().expect("reader");
        for (id, want) in &chunks {
            let got = r.get(id).expect("get").expect("indexed");
            assert_eq!(got.pack, want.pack, "chunk {}", id.0[0]);
        }
    }

    #[derive(Debug, Clone)]
    enum Damage {
        Truncate(usize),
        Flip(Vec<(usize, u8)>),
        Garbage(Vec<u8>),
        Zero(usize, usize),
    }

    fn damage() -> impl Strategy<Value = Damage> {
        prop_oneof![
            any::<usize>().prop_map(Damage::Truncate),
            proptest::collection::vec((any::<usize>(), 1..=255u8), 1..8).prop_map(Damage::Flip),
            proptest::collection::vec(any::<u8>(), 0..9000).prop_map(Damage::Garbage),
            (any::<usize>(), 1..5000usize).prop_map(|(a, n)| Damage::Zero(a, n)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

        /// Issue #8 item 13: a damaged index file gives a value or an error on
        /// open and on every read, never a panic.
        #[test]
        fn damaged_index_never_panics(d in damage()) {
            let good = sample();
            let bytes = match &d {
                Damage::Truncate(n) => good[..n % good.len()].to_vec(),
                Damage::Flip(flips) => {
                    let mut b = good.to_vec();
                    for (at, x) in flips {
                        let i = at % b.len();
                        b[i] ^= x;
                    }
                    b
                }
                Damage::Garbage(g) => g.clone(),
                Damage::Zero(at, n) => {
                    let mut b = good.to_vec();
                    let start = at % b.len();
                    let end = (start + n).min(b.len());
                    b[start..end].fill(0);
                    b
                }
            };
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("index.redb");
            std::fs::write(&path, &bytes).expect("write");
            let outcome = std::panic::catch_unwind(|| probe(&path).map_err(|e| e.to_string()));
            prop_assert!(outcome.is_ok(), "probe panicked on {:?}", d);
        }
    }

    /// An index of layout 2 (58-byte locations naming pack ids, `packs`
    /// holding bare sizes) is emptied on open, whatever its tables' types, and
    /// marked for a refill from the files.
    #[test]
    fn old_layout_index_is_emptied_on_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("index.redb");
        {
            let db = redb::Database::create(&path).expect("create");
            let txn = db.begin_write().expect("txn");
            {
                let old_chunks: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("chunks");
                let old_packs: TableDefinition<[u8; 32], u64> = TableDefinition::new("packs");
                txn.open_table(old_chunks)
                    .expect("chunks")
                    .insert([1; 32], &[0u8; 58][..])
                    .expect("put");
                txn.open_table(old_packs)
                    .expect("packs")
                    .insert([2; 32], 99)
                    .expect("put");
                let mut meta = txn.open_table(META).expect("meta");
                meta.insert("version", &[2u8][..]).expect("put");
                meta.insert(REFS_COMPLETE, &[1u8][..]).expect("put");
            }
            txn.commit().expect("commit");
        }
        let index = Index::open(&path).expect("open");
        assert!(index.is_current().expect("current"));
        assert_eq!(index.chunk_count().expect("count"), 0);
        assert!(index.packs().expect("packs").is_empty());
        assert!(!index.refs_complete().expect("flag"), "must be refilled");
        index
            .apply(&IndexUpdate {
                packs: vec![(PackId([2; 32]), 7)],
                chunks: vec![(ChunkId([1; 32]), loc_in(2, 3))],
                ..Default::default()
            })
            .expect("apply");
        assert_eq!(
            index
                .reader()
                .expect("r")
                .get(&ChunkId([1; 32]))
                .expect("get"),
            Some(loc_in(2, 3))
        );
    }

    /// Pack numbers are assigned once, never reused after a pack is removed,
    /// and a chunk naming a pack the index does not list is refused.
    #[test]
    fn pack_numbers_are_never_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let index = Index::open(&dir.path().join("index.redb")).expect("open");
        let add = |p: u8| IndexUpdate {
            packs: vec![(PackId([p; 32]), 10)],
            chunks: vec![(ChunkId([p; 32]), loc_in(p, 1))],
            ..Default::default()
        };
        index.apply(&add(1)).expect("1");
        index
            .apply(&IndexUpdate {
                remove_chunks: vec![ChunkId([1; 32])],
                remove_packs: vec![PackId([1; 32])],
                ..Default::default()
            })
            .expect("drop 1");
        index.apply(&add(2)).expect("2");
        index.apply(&add(1)).expect("1 again");
        let txn = index.db.begin_read().expect("read");
        let ids = txn.open_table(PACK_IDS).expect("ids");
        let numbers: Vec<(u32, [u8; 32])> = ids
            .iter()
            .expect("iter")
            .map(|r| {
                let (k, v) = r.expect("row");
                (k.value(), v.value())
            })
            .collect();
        assert_eq!(numbers, vec![(1, [2; 32]), (2, [1; 32])]);
        drop((ids, txn));
        let r = index.reader().expect("reader");
        assert_eq!(r.get(&ChunkId([1; 32])).expect("get"), Some(loc_in(1, 1)));
        drop(r);
        let orphan = IndexUpdate {
            chunks: vec![(ChunkId([5; 32]), loc_in(5, 1))],
            ..Default::default()
        };
        assert!(index.apply(&orphan).is_err(), "a chunk in an unlisted pack");
    }

    #[test]
    fn intact_index_probes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("index.redb");
        std::fs::write(&path, sample()).expect("write");
        assert_eq!(probe(&path).expect("ok"), 202);
    }

    fn loc_in(pack: u8, len: u32) -> ChunkLoc {
        ChunkLoc {
            pack: PackId([pack; 32]),
            frame_offset: 16,
            frame_len: 10,
            frame_raw_len: 4096,
            compression: 0,
            offset: 0,
            len,
            kind: 0,
        }
    }

    #[test]
    fn apply_adds_moves_and_removes_in_one_transaction() {
        let dir = tempfile::tempdir().expect("tempdir");
        let index = Index::open(&dir.path().join("index.redb")).expect("open");
        let (a, b) = (ChunkId([1; 32]), ChunkId([2; 32]));
        index
            .apply(&IndexUpdate {
                chunks: vec![(a, loc_in(7, 1)), (b, loc_in(7, 2))],
                packs: vec![(PackId([7; 32]), 100)],
                snapshots: vec![(SnapshotId([3; 32]), vec![1, 2, 3])],
                ..Default::default()
            })
            .expect("add");
        let r = index.reader().expect("reader");
        assert_eq!(r.get(&a).expect("get"), Some(loc_in(7, 1)));
        assert!(r.contains(&b).expect("contains"));
        assert!(!r.contains(&ChunkId([9; 32])).expect("absent"));
        drop(r);
        assert_eq!(index.chunk_count().expect("count"), 2);
        assert_eq!(index.packs().expect("packs"), vec![(PackId([7; 32]), 100)]);
        assert_eq!(index.snapshots().expect("snaps").len(), 1);
        let lost: std::collections::HashSet<_> = [PackId([7; 32])].into();
        let mut in_lost = index.chunks_in_packs(&lost).expect("in packs");
        in_lost.sort();
        assert_eq!(in_lost, vec![a, b]);
        // A chunk both removed and added ends up at its new place (prune's repack).
        index
            .apply(&IndexUpdate {
                remove_chunks: vec![a, b],
                chunks: vec![(a, loc_in(8, 1))],
                remove_packs: vec![PackId([7; 32])],
                packs: vec![(PackId([8; 32]), 50)],
                remove_snapshots: vec![SnapshotId([3; 32])],
                refs_complete: Some(false),
                ..Default::default()
            })
            .expect("move");
        let r = index.reader().expect("reader");
        assert_eq!(r.get(&a).expect("get"), Some(loc_in(8, 1)));
        assert_eq!(r.get(&b).expect("get"), None);
        drop(r);
        assert_eq!(index.packs().expect("packs"), vec![(PackId([8; 32]), 50)]);
        assert!(index.snapshots().expect("snaps").is_empty());
        assert!(!index.refs_complete().expect("flag"));
        assert!(IndexUpdate::default().is_empty());
    }

    /// Chunk ids spread over the key space (as BLAKE3 ids are).
    fn spread_id(n: u32) -> ChunkId {
        ChunkId(*blake3::hash(&n.to_le_bytes()).as_bytes())
    }

    /// Issue #10: a small update right after a compaction (a snapshot of 100
    /// edits) makes redb double the compacted file; that is no reason to
    /// compact the whole index again. With "a quarter past the compacted
    /// length" as the rule, every snapshot after a compaction did (seconds at
    /// 1 GB); a large growth still compacts.
    #[test]
    fn a_small_update_after_a_compaction_does_not_compact_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("index.redb");
        let mut index = Index::open(&path).expect("create");
        let update = |index: &Index, from: u32, n: u32, pack: u8| {
            index
                .apply(&IndexUpdate {
                    chunks: (from..from + n)
                        .map(|k| (spread_id(k), loc_in(pack, 400)))
                        .collect(),
                    packs: vec![(PackId([pack; 32]), 1000)],
                    ..Default::default()
                })
                .expect("update");
        };
        // Many commits (one per pack, as a large snapshot makes).
        for pack in 0..40u32 {
            update(&index, pack * 2000, 2000, pack as u8);
        }
        assert!(
            index.compact_if_grown().expect("first"),
            "never compacted yet"
        );
        let compacted = std::fs::metadata(&path).expect("len").len();
        assert!(
            !index.compact_if_grown().expect("again"),
            "compacted twice in a row"
        );
        for step in 0..3u32 {
            update(&index, 1_000_000 + step * 2000, 2000, 200);
            let len = std::fs::metadata(&path).expect("len").len();
            if step == 0 {
                // The case of the bug: the old rule (a quarter, at least
                // 1 MiB, past the compacted length) would compact here.
                assert!(
                    len > compacted + (compacted / 4).max(1 << 20),
                    "a commit after a compaction grew the file only from {compacted} to {len}"
                );
            }
            assert!(
                !index.compact_if_grown().expect("after a small update"),
                "a small update (step {step}) compacted the whole index ({compacted} -> {len} bytes)"
            );
        }
        // Growth well past twice the compacted length still compacts.
        for pack in 0..200u32 {
            update(&index, 2_000_000 + pack * 2000, 2000, 100);
            if std::fs::metadata(&path).expect("len").len() > 3 * compacted {
                break;
            }
        }
        assert!(
            index.compact_if_grown().expect("grown"),
            "a tripled index was not compacted"
        );
    }
}
