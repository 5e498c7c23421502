//! Streaming one file's chunks back in order, at disk speed and still verified.
//!
//! Two stages run at the same time: a producer thread walks the chunk tree,
//! locates the chunks (from a local store: through the descriptions of the
//! packs the previous chunks came from, one index lookup per pack, see
//! `Nearby`; from a remote one: in the index), reads and decompresses their
//! frames and re-hashes every chunk against its id (decompression and hashing
//! in parallel with rayon); the calling thread writes it. The file's checksum
//! is computed on the way: in format 2 by the producer from the tree's leaves
//! (the ids each chunk was checked against, so each byte is hashed once), in
//! format 1 by the calling thread from the bytes written. Batches travel through
//! a bounded channel (a few MiB in flight) and their buffers go back to the
//! producer, so memory stays bounded and no batch allocates afresh. From a
//! remote store a third stage runs ahead of the producer: the frames of the
//! next group of batches are fetched in a few large range reads while the
//! current group is decoded ([`super::fetch`]). Only bytes
//! that matched their chunk id reach the writer; the checksum is the caller's to
//! compare (it knows the record).

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::Write;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::Arc;

use rayon::prelude::*;

use super::fetch::{self, Decoded, FrameKey};
use super::tree::TreeReader;
use super::{ChunkLoc, ChunkReader, ChunkStore};
use crate::error::{Error, Result};
use crate::format::{ChecksumKind, FileHasher, TreeEntry};
use crate::id::ChunkId;
use crate::index::IndexReader;

/// Frames a batch may carry over to the next (decoded: up to 1 MiB each).
const KEPT_FRAMES: usize = 8;

/// Leaves per batch (1024 pages of 4 KiB: 4 MiB), local or remote (a remote
/// store's reads are planned in groups of many batches, [`fetch`]).
const LEAF_BATCH: usize = 1024;
/// Bytes hashed and written at a time (fits a core's L2 cache; large enough to
/// pass a 1 MiB `BufWriter` without a copy).
const WRITE_PIECE: usize = 1 << 20;
/// Verified batches waiting for the writer.
const IN_FLIGHT: usize = 2;

/// What [`stream_file`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Streamed {
    /// Bytes written.
    pub bytes: u64,
    /// The file's checksum of the kind asked for (store-format.md 4.2): the
    /// digest of the chunk list read, or the BLAKE3 of everything written.
    pub checksum: [u8; 32],
}

/// Writes the content under tree `root` to `out` in order; every chunk is checked
/// against its id before it is written, and the file's checksum of kind
/// `checksum` is computed on the way. `after_batch(n)` runs on the calling
/// thread after each `n` bytes written (progress; an error, e.g. a cancel, stops
/// the stream). On error, what `out` received must be discarded by the caller;
/// `name` names the file in write errors.
pub fn stream_file(
    name: &str,
    store: &ChunkStore,
    index: IndexReader,
    root: ChunkId,
    checksum: ChecksumKind,
    out: &mut dyn Write,
    after_batch: &mut dyn FnMut(u64) -> Result<()>,
) -> Result<Streamed> {
    let (full_tx, full_rx) = sync_channel::<Result<Vec<u8>>>(IN_FLIGHT);
    let (free_tx, free_rx) = channel::<Vec<u8>>();
    std::thread::scope(|s| {
        let producer = s.spawn(move || {
            let mut leaves = FileHasher::new(checksum);
            produce(store, index, root, &mut leaves, &full_tx, &free_rx);
            leaves
        });
        let mut bytes = FileHasher::new(checksum);
        let written = consume(name, full_rx, &free_tx, out, &mut bytes, after_batch);
        // `full_rx` is dropped by now: a producer blocked on a full channel sees
        // the writer gone and stops.
        let leaves = match producer.join() {
            Ok(leaves) => leaves,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        // Each hasher saw only its own input: the leaves, or the bytes.
        let hasher = if bytes.needs_data() { bytes } else { leaves };
        written.map(|bytes| Streamed {
            bytes,
            checksum: hasher.finish(),
        })
    })
}

/// The calling thread's half: write each batch in order (hashing it when the
/// checksum is of the bytes); returns the bytes written.
fn consume(
    name: &str,
    full: Receiver<Result<Vec<u8>>>,
    free: &Sender<Vec<u8>>,
    out: &mut dyn Write,
    hasher: &mut FileHasher,
    after_batch: &mut dyn FnMut(u64) -> Result<()>,
) -> Result<u64> {
    let mut bytes = 0u64;
    for batch in full {
        let buf = batch?;
        // Hashed then written piece by piece, while each piece is in this core's cache.
        for piece in buf.chunks(WRITE_PIECE) {
            hasher.data(piece);
            out.write_all(piece)
                .map_err(|e| Error::io("writing", name, e))?;
        }
        bytes += buf.len() as u64;
        after_batch(buf.len() as u64)?;
        crate::testhook::point("read-batch");
        // The producer may be done: then the buffer is simply dropped.
        let _ = free.send(buf);
    }
    Ok(bytes)
}

/// A batch of leaves in file order, and where their chunks are.
struct Batch {
    leaves: Vec<TreeEntry>,
    locs: Vec<ChunkLoc>,
    /// Some locations came from pack descriptions ([`Nearby`]), not the index.
    described: bool,
}

/// The next (up to) [`LEAF_BATCH`] leaves of `tree`, located: through `nearby`
/// when given (about one index lookup per pack the file's chunks come from),
/// else looked up in the index (in parallel); `None` at the end.
fn next_batch(
    reader: &mut ChunkReader<'_>,
    tree: &mut TreeReader,
    nearby: Option<&mut Nearby>,
) -> Result<Option<Batch>> {
    let mut leaves = Vec::with_capacity(LEAF_BATCH);
    while leaves.len() < LEAF_BATCH {
        match reader.next_leaf(tree)? {
            Some(leaf) => leaves.push(leaf),
            None => break,
        }
    }
    if leaves.is_empty() {
        return Ok(None);
    }
    let r = &*reader;
    let mut described = false;
    let locs = match nearby {
        Some(nearby) => leaves
            .iter()
            .map(|l| {
                let (loc, from_description) = nearby.locate(r, &l.id)?;
                described |= from_description;
                Ok(loc)
            })
            .collect::<Result<Vec<ChunkLoc>>>()?,
        None => index_locations(r, &leaves)?,
    };
    Ok(Some(Batch {
        leaves,
        locs,
        described,
    }))
}

/// Where the index says the chunks of `leaves` are (looked up in parallel).
fn index_locations(reader: &ChunkReader<'_>, leaves: &[TreeEntry]) -> Result<Vec<ChunkLoc>> {
    leaves.par_iter().map(|l| reader.locate(&l.id)).collect()
}

/// Packs whose chunk locations [`Nearby`] keeps.
const NEARBY_PACKS: usize = 2;

/// A pack listing more chunks than this (a large `pack_target` with small
/// pages) is left to the index: its map would cost too much memory.
const NEARBY_MAX_CHUNKS: usize = 1 << 16;

/// The locations of every chunk in the packs a file's chunks came from most
/// recently (a local store), read from those packs' descriptions: a
/// description costs three reads, where an index lookup per chunk (258k for
/// 1 GB of 4 KiB pages) cost a third of a restore's CPU. A file's chunks sit
/// mostly in the order they were written, so most are found here. A chunk
/// found nowhere here is looked up in the index; when two such lookups in a row
/// name the same pack, its description is read (a lone chunk from another
/// pack costs one lookup, as before). Packs are kept by last use. A pack whose
/// description cannot be read, or lists too many chunks, is left to the index.
///
/// A description names only its pack's own chunks, each checked against its id
/// when read. A chunk can sit in two packs (a copy, an interrupted prune) and
/// the index name the other one: if reading a batch located here fails, the
/// batch is located again in the index and read from there (see [`produce`]).
#[derive(Default)]
struct Nearby {
    packs: VecDeque<(crate::id::PackId, HashMap<ChunkId, ChunkLoc>)>,
    last_miss: Option<crate::id::PackId>,
    skipped: HashSet<crate::id::PackId>,
}

impl Nearby {
    /// Where chunk `id` is, and whether a description (not the index) said so.
    fn locate(&mut self, reader: &ChunkReader<'_>, id: &ChunkId) -> Result<(ChunkLoc, bool)> {
        if let Some(i) = self.packs.iter().position(|(_, m)| m.contains_key(id)) {
            if let Some(entry) = self.packs.remove(i) {
                let loc = entry.1.get(id).copied();
                self.packs.push_back(entry);
                if let Some(loc) = loc {
                    return Ok((loc, true));
                }
            }
        }
        let loc = reader.locate(id)?;
        let pack = loc.pack;
        if self.last_miss == Some(pack)
            && !self.skipped.contains(&pack)
            && !self.packs.iter().any(|(p, _)| *p == pack)
        {
            if self.packs.len() == NEARBY_PACKS {
                self.packs.pop_front();
            }
            match Self::load(reader.store(), &pack) {
                Some(map) => self.packs.push_back((pack, map)),
                None => {
                    self.skipped.insert(pack);
                }
            }
        }
        self.last_miss = Some(pack);
        Ok((loc, false))
    }

    /// The locations a pack's description lists, if it can be read and is
    /// not too large.
    fn load(store: &ChunkStore, pack: &crate::id::PackId) -> Option<HashMap<ChunkId, ChunkLoc>> {
        let desc = store.pack_description(pack).ok()?;
        let chunks: usize = desc.frames.iter().map(|f| f.chunks.len()).sum();
        if chunks > NEARBY_MAX_CHUNKS {
            return None;
        }
        Some(super::pack::locations(*pack, &desc).into_iter().collect())
    }
}

/// The producer thread: batches of verified bytes in file order, then the end
/// of the channel (or one error). Every leaf read goes to `leaves` (the
/// chunk-list digest) in order.
fn produce(
    store: &ChunkStore,
    index: IndexReader,
    root: ChunkId,
    leaves_hasher: &mut FileHasher,
    full: &SyncSender<Result<Vec<u8>>>,
    free: &Receiver<Vec<u8>>,
) {
    let mut reader = ChunkReader::new(store, index);
    let mut tree = TreeReader::new(root);
    let mut frames: HashMap<FrameKey, Arc<Vec<u8>>> = HashMap::new();
    // Verifies a batch and hands it to the writer; false when the writer is gone.
    let mut emit = |b: &Batch, decode: &dyn Fn(&[ChunkLoc]) -> Result<Decoded>| {
        let buf = free.try_recv().unwrap_or_default();
        let buf = read_batch(store, b, &mut frames, buf, decode)?;
        // Only leaves whose chunks matched their ids count.
        for l in &b.leaves {
            leaves_hasher.chunk(&l.id, l.len);
        }
        Ok::<bool, Error>(full.send(Ok(buf)).is_ok())
    };
    let result = if store.is_remote() {
        produce_remote(store, &mut reader, &mut tree, &mut emit)
    } else {
        (|| {
            let local = |wanted: &[ChunkLoc]| -> Result<Decoded> {
                wanted
                    .par_iter()
                    .map(|l| Ok(((l.pack, l.frame_offset), Arc::new(store.read_frame(l)?))))
                    .collect()
            };
            let mut nearby = Nearby::default();
            while let Some(b) = next_batch(&mut reader, &mut tree, Some(&mut nearby))? {
                let sent = match emit(&b, &local) {
                    Err(e) if b.described => {
                        // A copy a description named failed: the index's copies
                        // decide, as without the descriptions.
                        let locs = index_locations(&reader, &b.leaves)?;
                        if locs == b.locs {
                            return Err(e);
                        }
                        let again = Batch {
                            leaves: b.leaves,
                            locs,
                            described: false,
                        };
                        emit(&again, &local)?
                    }
                    other => other?,
                };
                if !sent {
                    break; // the writer stopped
                }
            }
            Ok(())
        })()
    };
    if let Err(e) = result {
        let _ = full.send(Err(e));
    }
}

/// Hands a batch to the writer: false when the writer is gone.
type Emit<'a> = dyn FnMut(&Batch, &dyn Fn(&[ChunkLoc]) -> Result<Decoded>) -> Result<bool> + 'a;

/// The remote half of [`produce`]: groups of batches planned ahead
/// ([`fetch`]), the next group's range reads in flight while the current
/// group is decoded, checked and written.
fn produce_remote(
    store: &ChunkStore,
    reader: &mut ChunkReader<'_>,
    tree: &mut TreeReader,
    emit: &mut Emit<'_>,
) -> Result<()> {
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let result = (|| {
            let mut pending = VecDeque::new();
            let mut planned_all = false;
            let mut carried: Option<FrameKey> = None;
            loop {
                // The current group and the next one are fetching (or fetched).
                while !planned_all && pending.len() < 2 {
                    match plan_group(reader, tree, &mut carried)? {
                        None => planned_all = true,
                        Some((batches, runs)) => {
                            let stop = &stop;
                            let fetch = s.spawn(move || fetch::fetch_runs(store, runs, stop));
                            pending.push_back((batches, fetch));
                        }
                    }
                }
                let Some((batches, fetch)) = pending.pop_front() else {
                    return Ok(());
                };
                let fetched = match fetch.join() {
                    Ok(f) => f?,
                    Err(panic) => std::panic::resume_unwind(panic),
                };
                let decode = |wanted: &[ChunkLoc]| fetched.decode(store, wanted);
                for b in &batches {
                    if !emit(b, &decode)? {
                        return Ok(()); // the writer stopped
                    }
                }
            }
        })();
        // Reads still in flight stop taking new ranges; the scope waits for them.
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        result
    })
}

/// Plans the next group: batches until their frames not yet planned reach
/// [`fetch::GROUP_BYTES`] stored bytes, and the range reads of those frames.
/// `carried` is the frame the previous group ends in (the reader keeps it
/// decoded), left out; it becomes this group's last frame.
fn plan_group(
    reader: &mut ChunkReader<'_>,
    tree: &mut TreeReader,
    carried: &mut Option<FrameKey>,
) -> Result<Option<(Vec<Batch>, Vec<fetch::Run>)>> {
    let mut batches = Vec::new();
    let mut wanted: Vec<ChunkLoc> = Vec::new();
    let mut seen: HashSet<FrameKey> = carried.iter().copied().collect();
    let mut bytes = 0u64;
    let group_bytes = crate::testhook::remote_group_bytes(fetch::GROUP_BYTES);
    while bytes < group_bytes {
        let Some(b) = next_batch(reader, tree, None)? else {
            break;
        };
        for l in &b.locs {
            if seen.insert((l.pack, l.frame_offset)) {
                bytes += u64::from(l.frame_len);
                wanted.push(*l);
            }
        }
        batches.push(b);
    }
    let Some(last) = batches.last().and_then(|b| b.locs.last()) else {
        return Ok(None);
    };
    *carried = Some((last.pack, last.frame_offset));
    Ok(Some((batches, fetch::coalesce(wanted))))
}

/// Reads a batch of leaves into `buf` (cleared first): the frames not yet
/// decoded obtained through `decode` (in parallel), and every chunk re-hashed
/// (in parallel). `frames` carries the last frame over to the next batch
/// (consecutive chunks share frames).
fn read_batch(
    store: &ChunkStore,
    batch: &Batch,
    frames: &mut HashMap<FrameKey, Arc<Vec<u8>>>,
    mut buf: Vec<u8>,
    decode: &dyn Fn(&[ChunkLoc]) -> Result<Decoded>,
) -> Result<Vec<u8>> {
    let Batch { leaves, locs, .. } = batch;
    let mut wanted: Vec<ChunkLoc> = Vec::new();
    let mut seen: HashSet<FrameKey> = HashSet::new();
    for loc in locs {
        let key = (loc.pack, loc.frame_offset);
        if !frames.contains_key(&key) && seen.insert(key) {
            wanted.push(*loc);
        }
    }
    frames.extend(decode(&wanted)?);
    let total: usize = leaves.iter().map(|l| l.len as usize).sum();
    buf.clear();
    buf.reserve(total);
    let mut spans = Vec::with_capacity(leaves.len());
    for (leaf, loc) in leaves.iter().zip(locs) {
        let raw = frames
            .get(&(loc.pack, loc.frame_offset))
            .ok_or_else(|| Error::internal("a frame of the batch was not read"))?;
        let data = raw
            .get(loc.offset as usize..(loc.offset as usize + loc.len as usize))
            .ok_or_else(|| {
                Error::corrupt(format!("chunk {}", leaf.id.short()), "outside its frame")
            })?;
        if data.len() as u64 != leaf.len {
            return Err(Error::corrupt(
                format!("chunk {}", leaf.id.short()),
                "length differs from its tree entry",
            ));
        }
        spans.push((buf.len(), data.len()));
        buf.extend_from_slice(data);
    }
    leaves
        .par_iter()
        .zip(locs.par_iter())
        .zip(spans.par_iter())
        .try_for_each(|((leaf, loc), (at, len))| {
            store.check_chunk(&leaf.id, &buf[*at..at + len], loc)
        })?;
    // Keep the frames this batch used when they are few: the next batch most
    // likely starts inside the last one, and a frame of b-tree pages (stored
    // apart, store-format.md 4.9) serves batch after batch. Else the last only.
    let used: HashSet<FrameKey> = locs.iter().map(|l| (l.pack, l.frame_offset)).collect();
    if used.len() <= KEPT_FRAMES {
        frames.retain(|k, _| used.contains(k));
    } else if let Some(last) = locs.last() {
        let key = (last.pack, last.frame_offset);
        frames.retain(|k, _| *k == key);
    }
    Ok(buf)
}
