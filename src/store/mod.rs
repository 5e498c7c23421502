//! The chunk store: compresses chunks into frames, frames into packs, and reads
//! them back with every chunk re-hashed.
//!
//! Owns: frames, packs, parallel hashing and compression (rayon). Knows nothing of
//! snapshots or SQLite; learns which chunks already exist through a closure the
//! caller passes (the index), and hands back the locations of what it added.

pub mod access;
pub mod fetch;
pub mod files;
pub mod node_cache;
pub mod pack;
pub mod stream;
pub mod tree;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use crate::backend::Backend;
use crate::compress::{self, Compression};
use crate::error::{Error, Repr, Result};
use crate::format::{ChunkDesc, Cipher, Config, FormatVersion, TreeEntry};
use crate::id::{ChunkId, IdHasher, PackId};
pub use access::ChunkReader;
pub use pack::{pack_path, ChunkLoc};

/// Chunk kind: file content.
pub const KIND_DATA: u8 = 0;
/// Chunk kind: a chunk-list tree node.
pub const KIND_TREE: u8 = 1;

/// Read and write access to chunks in packs.
#[derive(Clone)]
pub struct ChunkStore {
    backend: Arc<dyn Backend>,
    config: Config,
    cipher: Cipher,
    hasher: IdHasher,
    format: FormatVersion,
    /// Frames read through [`ChunkStore::read_frame_shared`] from a remote
    /// store, shared by every reader of this store (and its clones): the
    /// readers of one command (a snapshot's parent chunk list, its exports,
    /// the chain) often need the same tree frames, and each read is a request.
    shared: Arc<Mutex<access::FrameCache>>,
    /// Tree frames on local disk (remote stores only): read before the
    /// store, filled by reads and by this machine's writes.
    nodes: Option<Arc<node_cache::NodeCache>>,
}

/// Frames the shared cache of a remote store keeps (each at most
/// `frame_target`, 1 MiB by default).
const SHARED_CACHE_FRAMES: usize = 4;

impl std::fmt::Debug for ChunkStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkStore")
            .field("location", &self.backend.location())
            .finish()
    }
}

impl ChunkStore {
    /// A store over `backend` with the repository's config, writing files of
    /// the repository's `format`.
    pub fn new(
        backend: Arc<dyn Backend>,
        config: Config,
        cipher: Cipher,
        format: FormatVersion,
    ) -> Self {
        let hasher = cipher.id_hasher();
        ChunkStore {
            backend,
            config,
            cipher,
            hasher,
            format,
            shared: Arc::new(Mutex::new(access::FrameCache::with_capacity(
                SHARED_CACHE_FRAMES,
            ))),
            nodes: None,
        }
    }

    /// The same store, keeping the tree frames it reads and writes in `dir`
    /// ([`node_cache`]); for remote stores, where each frame read is a request.
    pub fn with_node_cache(mut self, dir: &std::path::Path) -> Self {
        self.nodes = Some(Arc::new(node_cache::NodeCache::new(dir)));
        self
    }

    /// Drops cached tree frames of packs for which `keep` is false (packs the
    /// store no longer lists).
    pub fn retain_cached_packs(&self, keep: &dyn Fn(&PackId) -> bool) {
        if let Some(nodes) = &self.nodes {
            nodes.retain_packs(keep);
        }
    }

    /// The repository's format: every file written gets it in its envelope,
    /// and it says what the files' checksums in snapshot records are.
    pub fn format(&self) -> FormatVersion {
        self.format
    }

    /// How objects are sealed.
    pub fn cipher(&self) -> &Cipher {
        &self.cipher
    }

    /// The repository config.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The chunk id function.
    pub fn hasher(&self) -> &IdHasher {
        &self.hasher
    }

    /// Reads and decompresses one frame (never through the node cache).
    pub fn read_frame(&self, loc: &ChunkLoc) -> Result<Vec<u8>> {
        let stored = self.fetch_frame(loc)?;
        self.decode_frame(loc, &stored)
    }

    /// Reads and decompresses the frame holding `wanted`'s chunks (one frame),
    /// a frame of tree nodes through the node cache when the store has one:
    /// a cached frame is used only when every chunk of `wanted` in it matches
    /// its id (else its entry is dropped and the frame read from the store),
    /// and a frame read from the store is cached only then. Checking the
    /// chunks is still the caller's: this only decides what the cache keeps.
    pub fn read_frame_checked(&self, wanted: &[(ChunkId, ChunkLoc)]) -> Result<Vec<u8>> {
        let Some(&(_, loc)) = wanted.first() else {
            return Err(Error::internal("a frame read for no chunk"));
        };
        let Some(nodes) = self.nodes.as_ref().filter(|_| loc.kind == KIND_TREE) else {
            return self.read_frame(&loc);
        };
        let intact = |raw: &[u8]| {
            wanted.iter().all(|(id, l)| {
                let start = l.offset as usize;
                raw.get(start..start + l.len as usize)
                    .is_some_and(|data| self.hasher.chunk_id(data) == *id)
            })
        };
        if let Some(stored) = nodes.get(&loc) {
            match self.decode_frame(&loc, &stored) {
                Ok(raw) if intact(&raw) => return Ok(raw),
                _ => nodes.remove(&loc),
            }
        }
        let stored = self.fetch_frame(&loc)?;
        let raw = self.decode_frame(&loc, &stored)?;
        if intact(&raw) {
            nodes.put(&loc.pack, loc.frame_offset, &stored);
        }
        Ok(raw)
    }

    /// This store without its node cache: every frame read from the store
    /// (`verify` checks what the store holds, not a local copy of it).
    pub fn without_node_cache(&self) -> ChunkStore {
        ChunkStore {
            nodes: None,
            ..self.clone()
        }
    }

    /// [`ChunkStore::read_frame`] through the store's shared cache when the
    /// store is remote (a local read is cheap: no cache). The frame is opened
    /// and decompressed as read; its chunks are still re-hashed by whoever
    /// slices them.
    pub fn read_frame_shared(&self, id: &ChunkId, loc: &ChunkLoc) -> Result<Arc<Vec<u8>>> {
        if !self.is_remote() {
            return Ok(Arc::new(self.read_frame(loc)?));
        }
        let key = (loc.pack, loc.frame_offset);
        let lock = || self.shared.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(hit) = lock().get(key) {
            return Ok(hit);
        }
        // Not held while reading: other readers go on meanwhile.
        let frame = Arc::new(self.read_frame_checked(&[(*id, *loc)])?);
        lock().insert(key, frame.clone());
        Ok(frame)
    }

    /// Reads a frame's stored bytes (no decoding): the I/O half of [`ChunkStore::read_frame`].
    pub fn fetch_frame(&self, loc: &ChunkLoc) -> Result<Vec<u8>> {
        self.fetch_range(&loc.pack, loc.frame_offset, loc.frame_len as usize)
    }

    /// Reads `len` stored bytes of a pack from `offset` (one frame, or several
    /// adjacent ones read at once); a pack shorter than that or missing is
    /// damage named as such.
    pub fn fetch_range(&self, pack: &PackId, offset: u64, len: usize) -> Result<Vec<u8>> {
        let path = pack_path(pack);
        self.backend
            .read_range(&path, offset, len)
            .map_err(|e| match e.repr() {
                Repr::Io { source, .. } if source.kind() == std::io::ErrorKind::UnexpectedEof => {
                    Error::corrupt(
                        format!("pack {}", pack.short()),
                        "file is shorter than its index entry (truncated?)",
                    )
                }
                Repr::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                    Error::corrupt(format!("pack {}", pack.short()), "file is missing")
                }
                _ => e,
            })
    }

    /// Reads the header, trailer and description of pack `id` of `size` bytes
    /// (three ranged reads); the description is checked against the trailer's
    /// checksum and opened (sealed ones) and validated.
    pub fn read_pack_description(
        &self,
        id: &PackId,
        size: u64,
    ) -> Result<crate::format::PackDescription> {
        use crate::format::{self, Kind};
        let path = pack_path(id);
        let object = format!("pack {}", id.short());
        if size < (format::HEADER_LEN + pack::TRAILER_LEN) as u64 {
            return Err(Error::corrupt(
                object,
                "shorter than a pack header and trailer",
            ));
        }
        let head = self.backend.read_range(&path, 0, format::HEADER_LEN)?;
        let header =
            format::decode_header(&head, Kind::Pack).map_err(|e| Error::decode(&object, e))?;
        let trailer =
            self.backend
                .read_range(&path, size - pack::TRAILER_LEN as u64, pack::TRAILER_LEN)?;
        let (off, len, sum) =
            pack::parse_trailer(size, &trailer).map_err(|e| Error::decode(&object, e))?;
        let desc = self.backend.read_range(&path, off, len)?;
        pack::parse_description(&desc, &sum, off, header.flags, &self.cipher)
            .map_err(|e| Error::decode(&object, e))
    }

    /// [`ChunkStore::read_pack_description`], the pack's size asked of the backend.
    pub fn pack_description(&self, id: &PackId) -> Result<crate::format::PackDescription> {
        let size = self.backend.size(&pack_path(id))?;
        self.read_pack_description(id, size)
    }

    /// Whether the repository is on a remote store (reads cost a request:
    /// readers coalesce and overlap them).
    pub fn is_remote(&self) -> bool {
        self.backend.is_remote()
    }

    /// Opens and decompresses a frame's stored bytes: the CPU half of
    /// [`ChunkStore::read_frame`], safe to run in parallel.
    pub fn decode_frame(&self, loc: &ChunkLoc, stored: &[u8]) -> Result<Vec<u8>> {
        let kind = Compression::from_code(loc.compression).ok_or_else(|| {
            Error::corrupt(format!("pack {}", loc.pack.short()), "unknown compression")
        })?;
        let stored = self
            .cipher
            .open_frame(loc.frame_raw_len, loc.compression, stored)
            .map_err(|e| {
                Error::corrupt(
                    format!("pack {} frame at {}", loc.pack.short(), loc.frame_offset),
                    e,
                )
            })?;
        compress::decompress(kind, &stored, loc.frame_raw_len as usize).map_err(|e| {
            Error::corrupt(
                format!("pack {} frame at {}", loc.pack.short(), loc.frame_offset),
                e,
            )
        })
    }

    /// Verifies a chunk's bytes against its id.
    pub fn check_chunk(&self, id: &ChunkId, data: &[u8], loc: &ChunkLoc) -> Result<()> {
        if self.hasher.chunk_id(data) != *id {
            return Err(Error::corrupt(
                format!("chunk {} (pack {})", id.short(), loc.pack.short()),
                "content does not match its checksum",
            ));
        }
        Ok(())
    }
}

/// What a finished write session added.
#[derive(Debug, Default)]
pub struct Added {
    /// New chunks and where they are.
    pub locations: Vec<(ChunkId, ChunkLoc)>,
    /// New packs with their sizes.
    pub packs: Vec<(PackId, u64)>,
    /// Bytes written to packs.
    pub stored_bytes: u64,
    /// Number of new chunks stored.
    pub chunks_added: u64,
}

/// Answers "does the repository already hold this chunk?" (the index).
pub type KnownFn<'a> = Box<dyn Fn(&ChunkId) -> Result<bool> + 'a>;

/// Called after each pack is durable, with its id, size and chunk locations
/// (the caller commits them to the index).
pub type OnPackFn<'a> = Box<dyn FnMut(PackId, u64, &[(ChunkId, ChunkLoc)]) -> Result<()> + 'a>;

/// Room for a full pack: the target plus one frame past it, and the trailer.
fn pack_capacity(config: &Config) -> usize {
    config.pack_target as usize + 2 * config.frame_target as usize + (64 << 10)
}

/// Frames being compressed at once (on rayon's pool) while the caller keeps
/// hashing and cutting the next ones: bounds memory to a few frames in flight.
const FRAMES_IN_FLIGHT: usize = 2;

/// A frame handed to the pool: its chunks, and the receiver of
/// `(raw length, compression, stored bytes)`.
type InFlight = (
    Vec<ChunkDesc>,
    std::sync::mpsc::Receiver<(usize, Compression, Vec<u8>)>,
);

/// Runs a compression job, catching a panic: on rayon's pool a panic would
/// abort the process; caught, the job's sender is dropped unsent and the
/// session reports "a compression job panicked" (an internal error) instead.
fn caught(job: impl FnOnce()) {
    // The job owns everything it touches; nothing is observed half-updated.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
}

/// The open frame a chunk joins: 1 for tree nodes, 2 for the database pages
/// that shape a b-tree (page 1, interior pages), 0 for everything else.
///
/// A page is recognised by its length (a SQLite page size) and its first byte
/// (SQLite's interior page types 2 and 5; page 1 by the header's magic). This
/// only places chunks; a chunk taken for a page that is not one costs nothing
/// but its place, so no reader depends on it.
fn frame_slot(kind: u8, data: &[u8]) -> usize {
    if kind == KIND_TREE {
        return 1;
    }
    let page_sized = data.len().is_power_of_two() && (512..=65536).contains(&data.len());
    let shapes_a_btree =
        matches!(data.first(), Some(2 | 5)) || data.starts_with(b"SQLite format 3\0");
    if page_sized && shapes_a_btree {
        2
    } else {
        0
    }
}

/// Adds chunks to the store, skipping those that exist. Packs are written
/// (atomically) as they fill; nothing references them until the caller commits
/// the index and a snapshot record.
pub struct WriteSession<'a> {
    store: &'a ChunkStore,
    known: KnownFn<'a>,
    seen: HashSet<ChunkId>,
    /// Open frames by [`frame_slot`]: tree nodes get frames of their own, so
    /// reading a snapshot's trees (verify, prune) never decompresses file data,
    /// and so do the pages that shape a database's b-trees, so walking them
    /// (diff) decompresses a few frames instead of nearly all of them.
    open: [(Vec<ChunkDesc>, Vec<u8>); 3],
    /// Closed frames being compressed, oldest first: they enter the pack in
    /// this order, so the bytes are those of a sequential session.
    in_flight: std::collections::VecDeque<InFlight>,
    /// Frames allowed in flight (0: compress on the caller's thread).
    depth: usize,
    pack: pack::PackWriter,
    added: Added,
    on_pack: Option<OnPackFn<'a>>,
    /// Tree frames of the pack being filled, `(offset, stored bytes)`, for the
    /// store's node cache once the pack is written (empty without a cache).
    tree_frames: Vec<(u64, Vec<u8>)>,
}

impl<'a> WriteSession<'a> {
    /// A session; `known` says whether the repository already holds a chunk.
    pub fn new(store: &'a ChunkStore, known: KnownFn<'a>) -> Self {
        WriteSession {
            store,
            known,
            seen: HashSet::new(),
            open: Default::default(),
            in_flight: Default::default(),
            depth: FRAMES_IN_FLIGHT,
            pack: pack::PackWriter::with_capacity(
                store.format,
                store.cipher.flags(),
                pack_capacity(&store.config),
            ),
            added: Added::default(),
            on_pack: None,
            tree_frames: Vec::new(),
        }
    }

    /// Hands each pack's locations to `on_pack` as soon as the pack is durable,
    /// instead of keeping them until [`WriteSession::finish`]: memory then stays
    /// bounded by one pack whatever the amount written. `known` must see what
    /// `on_pack` commits (the chunks are forgotten by the session afterwards).
    pub fn with_on_pack(mut self, on_pack: OnPackFn<'a>) -> Self {
        self.on_pack = Some(on_pack);
        self
    }

    /// Compresses every frame on the caller's thread, one at a time (tests: the
    /// pipelined session must write the same bytes).
    #[cfg(test)]
    pub fn sequential(mut self) -> Self {
        self.depth = 0;
        self
    }

    /// Stores a batch of chunks (hashed in parallel); returns their tree entries in order.
    pub fn put_batch(&mut self, kind: u8, chunks: Vec<Vec<u8>>) -> Result<Vec<TreeEntry>> {
        self.put_batch_hinted(kind, chunks, &mut |_| false)
    }

    /// [`WriteSession::put_batch`], where `already_stored(id)`, called once per
    /// chunk in order, may vouch that the repository holds a chunk (the previous
    /// snapshot's chunk at the same position) so no index lookup is needed.
    pub fn put_batch_hinted(
        &mut self,
        kind: u8,
        chunks: Vec<Vec<u8>>,
        already_stored: &mut dyn FnMut(&ChunkId) -> bool,
    ) -> Result<Vec<TreeEntry>> {
        let hasher = self.store.hasher.clone();
        let ids: Vec<ChunkId> = chunks.par_iter().map(|c| hasher.chunk_id(c)).collect();
        self.put_hashed(kind, ids.into_iter().zip(chunks).collect(), already_stored)
    }

    /// [`WriteSession::put_batch_hinted`] for chunks the caller has hashed
    /// already (`store.hasher()`), each with its id: a chunk whose id
    /// `already_stored` vouches for costs nothing more (no lookup, no
    /// compression).
    pub fn put_hashed(
        &mut self,
        kind: u8,
        chunks: Vec<(ChunkId, Vec<u8>)>,
        already_stored: &mut dyn FnMut(&ChunkId) -> bool,
    ) -> Result<Vec<TreeEntry>> {
        let mut entries = Vec::with_capacity(chunks.len());
        for (id, data) in chunks {
            entries.push(TreeEntry {
                id,
                len: data.len() as u64,
            });
            if !already_stored(&id) {
                self.add(id, kind, data)?;
            }
        }
        Ok(entries)
    }

    /// Stores one chunk; returns its id.
    pub fn put(&mut self, kind: u8, data: Vec<u8>) -> Result<ChunkId> {
        let id = self.store.hasher.chunk_id(&data);
        self.add(id, kind, data)?;
        Ok(id)
    }

    fn add(&mut self, id: ChunkId, kind: u8, data: Vec<u8>) -> Result<()> {
        if self.seen.contains(&id) || (self.known)(&id)? {
            return Ok(());
        }
        self.seen.insert(id);
        self.added.chunks_added += 1;
        let len = u32::try_from(data.len()).map_err(|_| Error::internal("a chunk over 4 GiB"))?;
        let slot = frame_slot(kind, &data);
        let (descs, raw) = &mut self.open[slot];
        descs.push(ChunkDesc { id, kind, len });
        raw.extend_from_slice(&data);
        if raw.len() >= self.store.config.frame_target as usize {
            self.close_frame(slot)?;
        }
        Ok(())
    }

    /// Closes the open frame of `slot` and starts its compression; waits for
    /// the oldest frames while more than the allowed number are in flight.
    fn close_frame(&mut self, slot: usize) -> Result<()> {
        let (descs, raw) = std::mem::take(&mut self.open[slot]);
        if descs.is_empty() {
            return Ok(());
        }
        let level = self.store.config.zstd_level;
        let cipher = self.store.cipher.clone();
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let job = move || {
            let raw_len = raw.len();
            let (kind, stored) = compress::compress(raw, level);
            let stored = cipher.seal_frame(raw_len as u32, kind.code(), stored);
            // The session may be gone (it failed): the frame is dropped.
            let _ = tx.send((raw_len, kind, stored));
        };
        if self.depth == 0 {
            caught(job);
        } else {
            rayon::spawn(move || caught(job));
        }
        self.in_flight.push_back((descs, rx));
        while self.in_flight.len() > self.depth {
            self.land_oldest()?;
        }
        Ok(())
    }

    /// Waits for the oldest frame in flight and adds it to the pack (writing
    /// the pack when full).
    fn land_oldest(&mut self) -> Result<()> {
        let Some((chunks, rx)) = self.in_flight.pop_front() else {
            return Ok(());
        };
        let (raw_len, kind, stored) = rx
            .recv()
            .map_err(|_| Error::internal("a compression job panicked"))?;
        let offset = self.pack.add_frame(kind, &stored, chunks.clone());
        let frame_len = stored.len() as u32;
        if self.store.nodes.is_some() && chunks.first().is_some_and(|c| c.kind == KIND_TREE) {
            self.tree_frames.push((offset, stored));
        }
        let mut at = 0u32;
        for c in chunks {
            self.added.locations.push((
                c.id,
                ChunkLoc {
                    pack: PackId::default(),
                    frame_offset: offset,
                    frame_len,
                    frame_raw_len: raw_len as u32,
                    compression: kind.code(),
                    offset: at,
                    len: c.len,
                    kind: c.kind,
                },
            ));
            at += c.len;
        }
        if self.pack.len() >= self.store.config.pack_target as usize {
            self.write_pack()?;
        }
        Ok(())
    }

    fn write_pack(&mut self) -> Result<()> {
        let fresh = pack::PackWriter::with_capacity(
            self.store.format,
            self.store.cipher.flags(),
            pack_capacity(&self.store.config),
        );
        let full = std::mem::replace(&mut self.pack, fresh);
        if full.is_empty() {
            return Ok(());
        }
        let (id, bytes, _) = full.finish(&self.store.cipher);
        self.store.backend.write_atomic(&pack_path(&id), &bytes)?;
        crate::testhook::point("after-pack");
        if let Some(nodes) = &self.store.nodes {
            for (offset, stored) in self.tree_frames.drain(..) {
                nodes.put(&id, offset, &stored);
            }
        }
        // Locations added since the last pack are in this one.
        let mut first_new = self.added.locations.len();
        for (i, (_, loc)) in self.added.locations.iter_mut().enumerate().rev() {
            if loc.pack != PackId::default() {
                break;
            }
            loc.pack = id;
            first_new = i;
        }
        self.added.stored_bytes += bytes.len() as u64;
        match self.on_pack.as_mut() {
            Some(on_pack) => {
                let locs: Vec<(ChunkId, ChunkLoc)> =
                    self.added.locations.drain(first_new..).collect();
                on_pack(id, bytes.len() as u64, &locs)?;
                for (cid, _) in &locs {
                    self.seen.remove(cid);
                }
            }
            None => self.added.packs.push((id, bytes.len() as u64)),
        }
        Ok(())
    }

    /// Writes everything pending; returns what was added.
    pub fn finish(mut self) -> Result<Added> {
        // B-tree pages, other data, then tree nodes (a one-page image's pack
        // keeps the layout it had before b-tree pages had frames of their own).
        for slot in [2, 0, 1] {
            self.close_frame(slot)?;
        }
        while !self.in_flight.is_empty() {
            self.land_oldest()?;
        }
        self.write_pack()?;
        Ok(self.added)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::LocalBackend;
    use std::collections::HashMap;

    /// A pack file's path under the repository and its bytes.
    type PackFile = (std::path::PathBuf, Vec<u8>);

    /// Every pack file under `root`, by path, with its bytes.
    fn packs(root: &std::path::Path) -> Vec<PackFile> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).expect("read dir") {
                let p = e.expect("entry").path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    let bytes = std::fs::read(&p).expect("read");
                    out.push((p.strip_prefix(root).expect("under").to_path_buf(), bytes));
                }
            }
        }
        out.sort();
        out
    }

    /// Writes the same chunks (some repeated, some compressible, tree nodes
    /// between) through a session; returns what it added and the packs.
    fn write(sequential: bool, cipher: &Cipher) -> (Vec<(ChunkId, ChunkLoc)>, Vec<PackFile>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = crate::repo::default_config();
        config.frame_target = 16 << 10;
        config.pack_target = 64 << 10;
        let store = ChunkStore::new(
            Arc::new(LocalBackend::new(dir.path())),
            config,
            cipher.clone(),
            FormatVersion::NEWEST,
        );
        let mut session = WriteSession::new(&store, Box::new(|_| Ok(false)));
        if sequential {
            session = session.sequential();
        }
        let mut x = 7u64;
        for batch in 0..20u64 {
            let chunks: Vec<Vec<u8>> = (0..37u64)
                .map(|i| {
                    let n = 1000 + ((batch * 37 + i) % 3000) as usize;
                    (0..n)
                        .map(|j| {
                            x = x
                                .wrapping_mul(6364136223846793005)
                                .wrapping_add(1442695040888963407);
                            if (i + j as u64).is_multiple_of(3) {
                                (x >> 56) as u8
                            } else {
                                (j % 7) as u8
                            }
                        })
                        .collect()
                })
                .collect();
            let mut repeated = chunks.clone();
            repeated.truncate(5);
            session.put_batch(KIND_DATA, chunks).expect("put");
            session.put_batch(KIND_DATA, repeated).expect("put again");
            session
                .put(KIND_TREE, vec![batch as u8; 300])
                .expect("tree");
        }
        let added = session.finish().expect("finish");
        (added.locations, packs(dir.path()))
    }

    /// The pages that shape a real database's b-trees (page 1, interior pages)
    /// land in frames of their own, apart from leaf pages and tree nodes.
    #[test]
    fn btree_shaping_pages_get_frames_of_their_own() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("d.db");
        let c = rusqlite::Connection::open(&db).expect("db");
        c.execute_batch(
            "PRAGMA page_size = 1024;
             CREATE TABLE t(k TEXT PRIMARY KEY, v BLOB);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
             INSERT INTO t SELECT printf('key-%06d', i), randomblob(100) FROM n;",
        )
        .expect("fill");
        drop(c);
        let bytes = std::fs::read(&db).expect("read db");
        let pages: Vec<Vec<u8>> = bytes.chunks(1024).map(<[u8]>::to_vec).collect();
        let shaping = |p: &[u8]| matches!(p[0], 2 | 5) || p.starts_with(b"SQLite format 3\0");
        assert!(
            pages.iter().filter(|p| shaping(p)).count() > 3,
            "a tree of several levels"
        );
        let repo = dir.path().join("repo");
        let mut config = crate::repo::default_config();
        config.frame_target = 16 << 10;
        let store = ChunkStore::new(
            Arc::new(LocalBackend::new(&repo)),
            config,
            Cipher::Plain,
            FormatVersion::NEWEST,
        );
        let mut session = WriteSession::new(&store, Box::new(|_| Ok(false)));
        let entries = session.put_batch(KIND_DATA, pages.clone()).expect("put");
        session.put(KIND_TREE, vec![1; 300]).expect("tree");
        let added = session.finish().expect("finish");
        let frame_of: HashMap<ChunkId, u64> = added
            .locations
            .iter()
            .map(|(id, loc)| (*id, loc.frame_offset))
            .collect();
        let frames = |want: bool| -> HashSet<u64> {
            entries
                .iter()
                .zip(&pages)
                .filter(|(_, p)| shaping(p) == want)
                .map(|(e, _)| frame_of[&e.id])
                .collect()
        };
        let (shaping_frames, other_frames) = (frames(true), frames(false));
        assert_eq!(shaping_frames.len(), 1, "a few KiB of them: one frame");
        assert!(shaping_frames.is_disjoint(&other_frames));
        let tree_frames: HashSet<u64> = added
            .locations
            .iter()
            .filter(|(_, l)| l.kind == KIND_TREE)
            .map(|(_, l)| l.frame_offset)
            .collect();
        assert!(tree_frames.is_disjoint(&shaping_frames) && tree_frames.is_disjoint(&other_frames));
    }

    #[test]
    fn a_panicking_compression_job_is_an_error_not_an_abort() {
        let (tx, rx) = std::sync::mpsc::sync_channel::<(usize, Compression, Vec<u8>)>(1);
        rayon::spawn(move || {
            caught(move || {
                let _tx = tx;
                panic!("injected");
            })
        });
        assert!(rx.recv().is_err(), "the sender is dropped unsent");
        // The pool is still alive.
        assert_eq!(rayon::join(|| 1, || 2), (1, 2));
    }

    #[test]
    fn a_chunk_vouched_for_costs_no_lookup_and_no_compression() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ChunkStore::new(
            Arc::new(LocalBackend::new(dir.path())),
            crate::repo::default_config(),
            Cipher::Plain,
            FormatVersion::NEWEST,
        );
        let lookups = std::cell::Cell::new(0);
        let mut session = WriteSession::new(
            &store,
            Box::new(|_| {
                lookups.set(lookups.get() + 1);
                Ok(false)
            }),
        );
        let pages: Vec<(ChunkId, Vec<u8>)> = (0..10u8)
            .map(|i| {
                let page = vec![i; 4096];
                (store.hasher().chunk_id(&page), page)
            })
            .collect();
        let parent: Vec<ChunkId> = pages.iter().map(|(id, _)| *id).collect();
        // The parent had the same pages but the 4th and 8th.
        let mut hint = parent.into_iter().enumerate().map(|(i, id)| {
            if i == 3 || i == 7 {
                ChunkId([9; 32])
            } else {
                id
            }
        });
        let entries = session
            .put_hashed(KIND_DATA, pages.clone(), &mut |id| hint.next() == Some(*id))
            .expect("put");
        assert_eq!(entries.len(), 10);
        assert!(entries
            .iter()
            .zip(&pages)
            .all(|(e, (id, p))| e.id == *id && e.len == p.len() as u64));
        assert_eq!(lookups.get(), 2, "only the changed pages are looked up");
        let added = session.finish().expect("finish");
        assert_eq!(added.chunks_added, 2, "only the changed pages are stored");
    }

    #[test]
    fn a_cached_tree_frame_whose_chunks_do_not_match_is_read_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ChunkStore::new(
            Arc::new(LocalBackend::new(dir.path().join("repo"))),
            crate::repo::default_config(),
            Cipher::Plain,
            FormatVersion::NEWEST,
        )
        .with_node_cache(&dir.path().join("trees"));
        // Random bytes: the frame is stored raw (zstd saves nothing).
        let node: Vec<u8> = (0..400u32)
            .flat_map(|i| crate::id::blake3_of(&i.to_le_bytes()))
            .collect();
        let mut session = WriteSession::new(&store, Box::new(|_| Ok(false)));
        let id = session.put(KIND_TREE, node.clone()).expect("put");
        let added = session.finish().expect("finish");
        let loc = added
            .locations
            .iter()
            .find(|(c, _)| *c == id)
            .map(|(_, l)| *l)
            .expect("located");
        assert_eq!(loc.compression, Compression::None.code(), "a raw frame");
        let cache = store.nodes.as_ref().expect("cache");
        let mut stored = cache.get(&loc).expect("cached when written");
        // A well-formed entry (its own checksum right) with other bytes; a
        // raw frame, so it still opens: only the chunk's id tells.
        let last = stored.len() - 1;
        stored[last] ^= 1;
        cache.put(&loc.pack, loc.frame_offset, &stored);
        let raw = store.read_frame_checked(&[(id, loc)]).expect("read");
        let at = loc.offset as usize;
        assert_eq!(
            &raw[at..at + loc.len as usize],
            &node[..],
            "read from the store"
        );
        let again = cache.get(&loc).expect("cached again");
        assert_ne!(again, stored, "the entry was replaced by the store's bytes");
        // Without the cache (verify), the same bytes.
        let plain = store.without_node_cache();
        assert!(plain.nodes.is_none());
        assert_eq!(plain.read_frame(&loc).expect("plain"), raw);
    }

    #[test]
    fn pipelined_session_writes_the_bytes_of_a_sequential_one() {
        for cipher in [
            Cipher::Plain,
            Cipher::Sealed(Arc::new(crate::crypto::MasterKey::generate())),
        ] {
            let (locs_a, packs_a) = write(true, &cipher);
            let (locs_b, packs_b) = write(false, &cipher);
            assert!(packs_a.len() > 3, "several packs: {}", packs_a.len());
            // Sealed frames have random nonces (so other pack ids); the
            // layout still matches.
            let layout = |l: &[(ChunkId, ChunkLoc)]| {
                l.iter()
                    .map(|(id, loc)| (*id, loc.frame_offset, loc.frame_len, loc.offset))
                    .collect::<Vec<_>>()
            };
            assert!(layout(&locs_a) == layout(&locs_b), "same chunk locations");
            if !cipher.is_sealed() {
                assert!(locs_a == locs_b, "same packs");
                assert!(packs_a == packs_b, "same pack bytes");
            } else {
                let names = |p: &[PackFile]| {
                    let mut v: Vec<usize> = p.iter().map(|(_, b)| b.len()).collect();
                    v.sort();
                    v
                };
                assert_eq!(names(&packs_a), names(&packs_b));
            }
        }
    }
}
