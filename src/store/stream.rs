//! Streaming one file's chunks back in order, at disk speed and still verified.
//!
//! Two stages run at the same time: a producer thread walks the chunk tree,
//! looks the chunks up in the index, reads and decompresses their frames and
//! re-hashes every chunk against its id (the lookups, decompression and hashing
//! in parallel with rayon); the calling thread writes it. The file's checksum
//! is computed on the way: in format 2 by the producer from the tree's leaves
//! (the ids each chunk was checked against, so each byte is hashed once), in
//! format 1 by the calling thread from the bytes written. Batches travel through
//! a bounded channel (a few MiB in flight) and their buffers go back to the
//! producer, so memory stays bounded and no batch allocates afresh. Only bytes
//! that matched their chunk id reach the writer; the checksum is the caller's to
//! compare (it knows the record).

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::Arc;

use rayon::prelude::*;

use super::tree::TreeReader;
use super::{ChunkLoc, ChunkReader, ChunkStore};
use crate::error::{Error, Result};
use crate::format::{ChecksumKind, FileHasher, TreeEntry};
use crate::id::{ChunkId, PackId};
use crate::index::IndexReader;

/// Leaves per batch (1024 pages of 4 KiB: 4 MiB).
const LEAF_BATCH: usize = 1024;
/// Leaves per batch from a remote store: twice as many, so that a batch's
/// frames make several range reads that travel at once.
const REMOTE_LEAF_BATCH: usize = 2048;
/// Frames of one pack this close together are read with one range read from
/// a remote store (one request instead of one per frame).
const COALESCE_GAP: u64 = 64 << 10;
/// The longest coalesced range read (keeps several in flight per batch).
const COALESCE_MAX: u64 = 2 << 20;
/// Range reads in flight at once from a remote store (latency-bound, not CPU).
const REMOTE_READS: usize = 8;
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
    let mut frames: HashMap<(PackId, u64), Arc<Vec<u8>>> = HashMap::new();
    let per_batch = if store.is_remote() {
        REMOTE_LEAF_BATCH
    } else {
        LEAF_BATCH
    };
    loop {
        let batch = (|| {
            let mut leaves = Vec::with_capacity(per_batch);
            while leaves.len() < per_batch {
                match reader.next_leaf(&mut tree)? {
                    Some(leaf) => leaves.push(leaf),
                    None => break,
                }
            }
            if leaves.is_empty() {
                return Ok(None);
            }
            let buf = free.try_recv().unwrap_or_default();
            let buf = read_batch(store, &reader, &leaves, &mut frames, buf)?;
            // Only leaves whose chunks matched their ids count.
            for l in &leaves {
                leaves_hasher.chunk(&l.id, l.len);
            }
            Ok(Some(buf))
        })();
        match batch {
            Ok(None) => return,
            Ok(Some(buf)) => {
                if full.send(Ok(buf)).is_err() {
                    return; // the writer stopped
                }
            }
            Err(e) => {
                let _ = full.send(Err(e));
                return;
            }
        }
    }
}

/// Frames read and decoded, keyed by (pack, frame offset).
type Decoded = Vec<((PackId, u64), Arc<Vec<u8>>)>;

/// One range read: frames of one pack lying (nearly) next to each other.
struct Run<'a> {
    pack: PackId,
    start: u64,
    end: u64,
    frames: Vec<&'a ChunkLoc>,
}

/// Groups frames into range reads: same pack, at most [`COALESCE_GAP`]
/// apart, at most [`COALESCE_MAX`] long (a single larger frame is one read).
fn coalesce<'a>(mut wanted: Vec<&'a ChunkLoc>) -> Vec<Run<'a>> {
    wanted.sort_by_key(|l| (l.pack, l.frame_offset));
    let mut runs: Vec<Run<'a>> = Vec::new();
    for l in wanted {
        let end = l.frame_offset + u64::from(l.frame_len);
        match runs.last_mut() {
            Some(r)
                if r.pack == l.pack
                    && l.frame_offset >= r.start
                    && l.frame_offset <= r.end.saturating_add(COALESCE_GAP)
                    && end.max(r.end) - r.start <= COALESCE_MAX =>
            {
                r.end = r.end.max(end);
                r.frames.push(l);
            }
            _ => runs.push(Run {
                pack: l.pack,
                start: l.frame_offset,
                end,
                frames: vec![l],
            }),
        }
    }
    runs
}

/// Reads frames from a remote store: coalesced into range reads, up to
/// [`REMOTE_READS`] in flight, each frame opened and checked as a single one
/// would be (the slicing of a range changes nothing that is verified).
fn fetch_remote(store: &ChunkStore, wanted: Vec<&ChunkLoc>) -> Result<Decoded> {
    let runs = coalesce(wanted);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let out: std::sync::Mutex<Result<Decoded>> = std::sync::Mutex::new(Ok(Vec::new()));
    let failed = std::sync::atomic::AtomicBool::new(false);
    let workers = runs.len().clamp(1, REMOTE_READS);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                use std::sync::atomic::Ordering::SeqCst;
                let i = next.fetch_add(1, SeqCst);
                let Some(run) = runs.get(i) else { return };
                if failed.load(SeqCst) {
                    return;
                }
                let got = read_run(store, run);
                let mut o = out.lock().unwrap_or_else(|p| p.into_inner());
                match (got, &mut *o) {
                    (Ok(frames), Ok(all)) => all.extend(frames),
                    (Err(e), o @ Ok(_)) => {
                        failed.store(true, SeqCst);
                        *o = Err(e);
                    }
                    (_, Err(_)) => {}
                }
            });
        }
    });
    out.into_inner().unwrap_or_else(|p| p.into_inner())
}

/// One range read, cut into its frames, each decoded.
fn read_run(store: &ChunkStore, run: &Run<'_>) -> Result<Decoded> {
    let len = usize::try_from(run.end - run.start)
        .map_err(|_| Error::corrupt(format!("pack {}", run.pack.short()), "range too long"))?;
    let bytes = store.fetch_range(&run.pack, run.start, len)?;
    run.frames
        .iter()
        .map(|l| {
            let at = usize::try_from(l.frame_offset - run.start).unwrap_or(usize::MAX);
            let stored = at
                .checked_add(l.frame_len as usize)
                .and_then(|end| bytes.get(at..end))
                .ok_or_else(|| {
                    Error::corrupt(
                        format!("pack {}", run.pack.short()),
                        "file is shorter than its index entry (truncated?)",
                    )
                })?;
            let raw = store.decode_frame(l, stored)?;
            Ok(((l.pack, l.frame_offset), Arc::new(raw)))
        })
        .collect()
}

/// Reads a batch of leaves into `buf` (cleared first): chunks looked up, frames
/// read and decoded, and chunks re-hashed, each step in parallel. `frames`
/// carries the last frame over to the next batch (consecutive chunks share
/// frames).
fn read_batch(
    store: &ChunkStore,
    reader: &ChunkReader<'_>,
    leaves: &[TreeEntry],
    frames: &mut HashMap<(PackId, u64), Arc<Vec<u8>>>,
    mut buf: Vec<u8>,
) -> Result<Vec<u8>> {
    let locs = leaves
        .par_iter()
        .map(|l| reader.locate(&l.id))
        .collect::<Result<Vec<ChunkLoc>>>()?;
    let mut wanted: Vec<&ChunkLoc> = Vec::new();
    let mut seen: HashSet<(PackId, u64)> = HashSet::new();
    for loc in &locs {
        let key = (loc.pack, loc.frame_offset);
        if !frames.contains_key(&key) && seen.insert(key) {
            wanted.push(loc);
        }
    }
    let decoded = if store.is_remote() {
        fetch_remote(store, wanted)?
    } else {
        wanted
            .par_iter()
            .map(|l| {
                let stored = store.fetch_frame(l)?;
                let raw = store.decode_frame(l, &stored)?;
                Ok(((l.pack, l.frame_offset), Arc::new(raw)))
            })
            .collect::<Result<Vec<_>>>()?
    };
    frames.extend(decoded);
    let total: usize = leaves.iter().map(|l| l.len as usize).sum();
    buf.clear();
    buf.reserve(total);
    let mut spans = Vec::with_capacity(leaves.len());
    for (leaf, loc) in leaves.iter().zip(&locs) {
        let raw = &frames[&(loc.pack, loc.frame_offset)];
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
    // Keep only the last frame: the next batch most likely starts inside it.
    if let Some(last) = locs.last() {
        let key = (last.pack, last.frame_offset);
        frames.retain(|k, _| *k == key);
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(pack: u8, offset: u64, len: u32) -> ChunkLoc {
        ChunkLoc {
            pack: PackId([pack; 32]),
            frame_offset: offset,
            frame_len: len,
            frame_raw_len: len,
            compression: 0,
            offset: 0,
            len,
            kind: 0,
        }
    }

    #[test]
    fn frames_coalesce_per_pack_within_the_gap_and_the_cap() {
        let mib = 1 << 20;
        let l = [
            loc(2, 0, 100),
            loc(1, 500, 100),
            loc(1, 0, 500),
            loc(1, 600 + COALESCE_GAP, 10), // exactly the gap after: joins
            loc(1, 700 + 2 * COALESCE_GAP, 10), // farther: a new read
            loc(3, 0, mib),
            loc(3, u64::from(mib), mib), // would pass the 2 MiB cap: joins (exactly 2 MiB)
            loc(3, 2 * u64::from(mib), 1), // past the cap: a new read
            loc(4, 0, 3 * mib),          // one frame larger than the cap: alone
        ];
        let runs = coalesce(l.iter().collect());
        let got: Vec<(u8, u64, u64, usize)> = runs
            .iter()
            .map(|r| (r.pack.0[0], r.start, r.end, r.frames.len()))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, 0, 610 + COALESCE_GAP, 3),
                (1, 700 + 2 * COALESCE_GAP, 710 + 2 * COALESCE_GAP, 1),
                (2, 0, 100, 1),
                (3, 0, 2 * u64::from(mib), 2),
                (3, 2 * u64::from(mib), 2 * u64::from(mib) + 1, 1),
                (4, 0, 3 * u64::from(mib), 1),
            ]
        );
        // Every frame is in exactly one read, inside it.
        let n: usize = runs.iter().map(|r| r.frames.len()).sum();
        assert_eq!(n, l.len());
        for r in &runs {
            for f in &r.frames {
                assert!(
                    f.frame_offset >= r.start && f.frame_offset + u64::from(f.frame_len) <= r.end
                );
            }
        }
    }
}
