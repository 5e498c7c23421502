//! The one way the repository reads chunks and tree nodes back: a
//! [`ChunkReader`] holds the store, a read view of the index and one frame cache.
//! Restore, verify, prune, repair and snapshot (the parent's chunk list) all read
//! through it, so "look the chunk up or fail with a missing chunk", "a node must
//! be indexed as a node" and "every chunk is re-hashed" are written once.

use std::collections::HashMap;
use std::sync::Arc;

use rayon::prelude::*;

use super::fetch::FrameKey;
use super::tree::TreeReader;
use super::{ChunkLoc, ChunkStore, KIND_TREE};
use crate::error::{Error, Result};
use crate::format::{self, TreeEntry, TreeNode};
use crate::id::{ChunkId, PackId};
use crate::index::IndexReader;

/// Frames a [`FrameCache`] keeps by default (each at most `frame_target`, 1 MiB
/// by default).
pub const DEFAULT_CACHE_FRAMES: usize = 8;

/// The last few decompressed frames (least recently used dropped first), so
/// chunks of one frame cost one read even when a tree walk alternates between
/// the frames of its levels.
#[derive(Debug)]
pub struct FrameCache {
    cap: usize,
    /// Most recently used last.
    frames: Vec<(FrameKey, Arc<Vec<u8>>)>,
    /// Frames read from the backend (misses), for tests and statistics.
    loads: u64,
}

impl Default for FrameCache {
    fn default() -> Self {
        FrameCache::with_capacity(DEFAULT_CACHE_FRAMES)
    }
}

impl FrameCache {
    /// A cache of at most `cap` frames (at least one).
    pub fn with_capacity(cap: usize) -> Self {
        FrameCache {
            cap: cap.max(1),
            frames: Vec::new(),
            loads: 0,
        }
    }

    /// How many frames were loaded (cache misses) so far.
    #[cfg(test)]
    pub fn loads(&self) -> u64 {
        self.loads
    }

    fn get_or_load(
        &mut self,
        key: (PackId, u64),
        load: impl FnOnce() -> Result<Arc<Vec<u8>>>,
    ) -> Result<&[u8]> {
        if self.get(key).is_none() {
            let frame = load()?;
            self.loads += 1;
            self.insert(key, frame);
        }
        Ok(&self.frames.last().expect("just used or inserted").1)
    }

    /// A frame if cached (it becomes the most recently used).
    pub(super) fn get(&mut self, key: (PackId, u64)) -> Option<Arc<Vec<u8>>> {
        let i = self.frames.iter().position(|(k, _)| *k == key)?;
        let hit = self.frames.remove(i);
        self.frames.push(hit);
        self.frames.last().map(|(_, f)| f.clone())
    }

    /// Adds a frame, dropping the least recently used one when full.
    pub(super) fn insert(&mut self, key: (PackId, u64), frame: Arc<Vec<u8>>) {
        if self.frames.len() >= self.cap {
            self.frames.remove(0);
        }
        self.frames.push((key, frame));
    }
}

/// A chunk's bytes cut out of its decoded frame, checked against its id.
fn checked_slice(store: &ChunkStore, id: &ChunkId, raw: &[u8], loc: &ChunkLoc) -> Result<Vec<u8>> {
    let start = loc.offset as usize;
    let data = raw
        .get(start..start + loc.len as usize)
        .ok_or_else(|| Error::corrupt(format!("chunk {}", id.short()), "outside its frame"))?;
    store.check_chunk(id, data, loc)?;
    Ok(data.to_vec())
}

/// Reads chunks and tree nodes by id: index lookup, one frame cache, every chunk
/// re-hashed against its id.
pub struct ChunkReader<'s> {
    store: &'s ChunkStore,
    index: IndexReader,
    cache: FrameCache,
}

impl std::fmt::Debug for ChunkReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkReader")
            .field("store", &self.store)
            .field("cache", &self.cache)
            .finish()
    }
}

impl<'s> ChunkReader<'s> {
    /// A reader over `store` finding chunks through `index`.
    pub fn new(store: &'s ChunkStore, index: IndexReader) -> Self {
        Self::with_cache(store, index, FrameCache::default())
    }

    /// A reader with a cache of `frames` frames (a walk over many snapshots).
    pub fn with_cache_frames(store: &'s ChunkStore, index: IndexReader, frames: usize) -> Self {
        Self::with_cache(store, index, FrameCache::with_capacity(frames))
    }

    fn with_cache(store: &'s ChunkStore, index: IndexReader, cache: FrameCache) -> Self {
        ChunkReader {
            store,
            index,
            cache,
        }
    }

    /// The frame cache (for its statistics).
    #[cfg(test)]
    pub fn cache(&self) -> &FrameCache {
        &self.cache
    }

    /// Where a chunk is, if the index has it.
    pub fn lookup(&self, id: &ChunkId) -> Result<Option<ChunkLoc>> {
        self.index.get(id)
    }

    /// Whether the index has a chunk.
    pub fn contains(&self, id: &ChunkId) -> Result<bool> {
        self.index.contains(id)
    }

    /// The store read from.
    pub fn store(&self) -> &'s ChunkStore {
        self.store
    }

    /// Where a chunk is; [`Error::MissingChunk`] when the index lacks it.
    pub fn locate(&self, id: &ChunkId) -> Result<ChunkLoc> {
        self.index
            .get(id)?
            .ok_or_else(|| Error::missing_chunk(id.to_hex()))
    }

    /// Reads one chunk by id and checks its bytes against the id.
    #[cfg(test)]
    pub fn chunk(&mut self, id: &ChunkId) -> Result<Vec<u8>> {
        let loc = self.locate(id)?;
        self.chunk_at(id, &loc)
    }

    /// Reads one chunk at a known location and checks its bytes against the id.
    pub fn chunk_at(&mut self, id: &ChunkId, loc: &ChunkLoc) -> Result<Vec<u8>> {
        let store = self.store;
        let key = (loc.pack, loc.frame_offset);
        let raw = self
            .cache
            .get_or_load(key, || store.read_frame_shared(id, loc))?;
        checked_slice(store, id, raw, loc)
    }

    /// Reads many chunks, each frame they need read and decompressed once
    /// (frames in parallel, each dropped as soon as its chunks are out: memory
    /// is a frame per thread plus the chunks), every chunk checked against its
    /// id; in the order asked. The frame cache is neither used nor filled.
    pub fn chunks(&self, ids: &[ChunkId]) -> Result<Vec<Vec<u8>>> {
        let store = self.store;
        let locs = ids
            .par_iter()
            .map(|id| self.locate(id))
            .collect::<Result<Vec<ChunkLoc>>>()?;
        let mut frames: HashMap<FrameKey, Vec<usize>> = HashMap::new();
        for (i, loc) in locs.iter().enumerate() {
            frames
                .entry((loc.pack, loc.frame_offset))
                .or_default()
                .push(i);
        }
        let got: Vec<Vec<(usize, Vec<u8>)>> = frames
            .into_par_iter()
            .map(|(_, wanted)| {
                let asked: Vec<(ChunkId, ChunkLoc)> =
                    wanted.iter().map(|&i| (ids[i], locs[i])).collect();
                let raw = store.read_frame_checked(&asked)?;
                wanted
                    .into_iter()
                    .map(|i| Ok((i, checked_slice(store, &ids[i], &raw, &locs[i])?)))
                    .collect()
            })
            .collect::<Result<_>>()?;
        let mut out = vec![Vec::new(); ids.len()];
        for (i, chunk) in got.into_iter().flatten() {
            out[i] = chunk;
        }
        Ok(out)
    }

    /// Reads and decodes a tree node: missing from the index is
    /// [`Error::MissingChunk`], indexed as data or undecodable is damage.
    pub fn node(&mut self, id: &ChunkId) -> Result<TreeNode> {
        let loc = self.locate(id)?;
        if loc.kind != KIND_TREE {
            return Err(Error::corrupt(
                format!("tree node {}", id.short()),
                "indexed as data",
            ));
        }
        let bytes = self.chunk_at(id, &loc)?;
        format::decode_tree_node(&bytes)
            .map_err(|e| Error::decode(format!("tree node {}", id.short()), e))
    }

    /// The next leaf of `walk`, reading its nodes through this reader.
    pub fn next_leaf(&mut self, walk: &mut TreeReader) -> Result<Option<TreeEntry>> {
        walk.next_leaf(&mut |id| self.node(id))
    }

    /// Every leaf of the tree under `root`, in order.
    pub fn leaves(&mut self, root: ChunkId) -> Result<Vec<TreeEntry>> {
        let mut walk = TreeReader::new(root);
        let mut out = Vec::new();
        while let Some(leaf) = self.next_leaf(&mut walk)? {
            out.push(leaf);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::LocalBackend;
    use crate::error::Repr;
    use crate::format::Cipher;
    use crate::index::{Index, IndexUpdate};
    use crate::store::tree::TreeBuilder;
    use crate::store::{pack_path, Added, WriteSession, KIND_DATA};

    /// A store in a temp folder and an index holding what `fill` wrote.
    struct Fixture {
        _dir: tempfile::TempDir,
        store: ChunkStore,
        index: Index,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let backend: Arc<dyn crate::backend::Backend> =
            Arc::new(LocalBackend::new(dir.path().join("repo")));
        let store = ChunkStore::new(
            backend,
            crate::repo::default_config(),
            Cipher::Plain,
            crate::format::FormatVersion::NEWEST,
        );
        let index = Index::open(&dir.path().join("index.redb")).expect("index");
        Fixture {
            _dir: dir,
            store,
            index,
        }
    }

    fn commit(index: &Index, added: Added) {
        index
            .apply(&IndexUpdate {
                chunks: added.locations,
                packs: added.packs,
                ..Default::default()
            })
            .expect("index commit");
    }

    fn chunk(i: u32) -> Vec<u8> {
        // Not led by 2 or 5: those would look like b-tree pages (another frame).
        let mut c = vec![0xAAu8; 4096];
        c[1..5].copy_from_slice(&i.to_le_bytes());
        c
    }

    #[test]
    fn chunks_of_one_frame_cost_one_read() {
        let f = fixture();
        let mut s = WriteSession::new(&f.store, Box::new(|_| Ok(false)));
        let entries = s
            .put_batch(KIND_DATA, (0..4).map(chunk).collect())
            .expect("put");
        commit(&f.index, s.finish().expect("finish"));
        let mut r = ChunkReader::new(&f.store, f.index.reader().expect("reader"));
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(r.chunk(&e.id).expect("chunk"), chunk(i as u32));
        }
        assert_eq!(r.chunk(&entries[0].id).expect("again"), chunk(0));
        assert_eq!(r.cache().loads(), 1, "one frame, read once");
    }

    #[test]
    fn a_chunk_the_index_lacks_is_a_missing_chunk() {
        let f = fixture();
        let mut r = ChunkReader::new(&f.store, f.index.reader().expect("reader"));
        let id = ChunkId([9; 32]);
        assert!(
            matches!(r.locate(&id).map_err(Error::into_repr), Err(Repr::MissingChunk(h)) if h == id.to_hex())
        );
        assert!(matches!(
            r.chunk(&id).map_err(Error::into_repr),
            Err(Repr::MissingChunk(_))
        ));
        assert!(matches!(
            r.node(&id).map_err(Error::into_repr),
            Err(Repr::MissingChunk(_))
        ));
        assert!(r.lookup(&id).expect("lookup").is_none());
        assert!(!r.contains(&id).expect("contains"));
    }

    #[test]
    fn a_data_chunk_is_not_a_node_and_a_damaged_frame_is_refused() {
        let f = fixture();
        let mut s = WriteSession::new(&f.store, Box::new(|_| Ok(false)));
        let id = s.put(KIND_DATA, chunk(1)).expect("put");
        let added = s.finish().expect("finish");
        let pack = added.packs[0].0;
        commit(&f.index, added);
        let mut r = ChunkReader::new(&f.store, f.index.reader().expect("reader"));
        let e = r.node(&id).expect_err("data is not a node");
        assert!(e.to_string().contains("indexed as data"), "{e}");
        // Damage the pack: the chunk no longer matches its id (or its frame
        // fails to decompress); either way it is refused, never returned.
        let path = f.store.backend.location();
        let file = std::path::Path::new(&path).join(pack_path(&pack));
        let mut bytes = std::fs::read(&file).expect("read pack");
        for b in &mut bytes[20..60] {
            *b ^= 0xff;
        }
        std::fs::write(&file, &bytes).expect("damage");
        let mut fresh = ChunkReader::new(&f.store, f.index.reader().expect("reader"));
        assert!(fresh.chunk(&id).is_err());
    }

    #[test]
    fn a_tree_walks_back_to_its_leaves() {
        let f = fixture();
        let mut s = WriteSession::new(&f.store, Box::new(|_| Ok(false)));
        let entries = s
            .put_batch(KIND_DATA, (0..300).map(chunk).collect())
            .expect("put");
        let mut tree = TreeBuilder::new(4);
        for e in &entries {
            tree.push(*e, &mut |node| s.put(KIND_TREE, node))
                .expect("push");
        }
        let root = tree
            .finish(&mut |node| s.put(KIND_TREE, node))
            .expect("finish tree");
        commit(&f.index, s.finish().expect("finish"));
        let mut r = ChunkReader::new(&f.store, f.index.reader().expect("reader"));
        assert_eq!(r.leaves(root).expect("walk"), entries);
        // A root that is a data chunk is refused as a node.
        assert!(r.leaves(entries[0].id).is_err());
    }

    #[test]
    fn write_session_dedups_and_skips_known_chunks() {
        let f = fixture();
        let known = ChunkStore::hasher(&f.store).chunk_id(&chunk(7));
        let mut s = WriteSession::new(&f.store, Box::new(move |id| Ok(*id == known)));
        let a = s.put(KIND_DATA, chunk(1)).expect("put");
        let b = s.put(KIND_DATA, chunk(1)).expect("put twice");
        assert_eq!(a, b);
        s.put(KIND_DATA, chunk(7)).expect("known");
        let added = s.finish().expect("finish");
        assert_eq!(added.chunks_added, 1);
        assert_eq!(added.locations.len(), 1);
        assert_eq!(added.packs.len(), 1);
        assert!(added.stored_bytes > 0);
        assert_ne!(added.locations[0].1.pack, PackId::default());
    }

    #[test]
    fn write_session_keeps_nodes_in_frames_of_their_own() {
        let f = fixture();
        let mut s = WriteSession::new(&f.store, Box::new(|_| Ok(false)));
        let d = s.put(KIND_DATA, chunk(1)).expect("data");
        let n = s.put(KIND_TREE, chunk(2)).expect("node");
        let added = s.finish().expect("finish");
        let loc = |id: ChunkId| {
            added
                .locations
                .iter()
                .find(|(c, _)| *c == id)
                .map(|(_, l)| *l)
                .expect("location")
        };
        assert_eq!(loc(d).kind, KIND_DATA);
        assert_eq!(loc(n).kind, KIND_TREE);
        assert_ne!(loc(d).frame_offset, loc(n).frame_offset);
    }

    #[test]
    fn write_session_hands_packs_over_as_they_are_written() {
        let f = fixture();
        let mut seen = Vec::new();
        let mut s = WriteSession::new(&f.store, Box::new(|_| Ok(false))).with_on_pack(Box::new(
            |id, size, locs| {
                seen.push((id, size, locs.len()));
                Ok(())
            },
        ));
        s.put_batch(KIND_DATA, (0..10).map(chunk).collect())
            .expect("put");
        let added = s.finish().expect("finish");
        assert!(added.locations.is_empty() && added.packs.is_empty());
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].2, 10);
        assert_eq!(added.chunks_added, 10);
    }
}
