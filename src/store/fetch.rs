//! Reading frames from a remote store in few, large requests, ahead of use.
//!
//! A remote read costs a request and a round trip, so a reader of many frames
//! (restore, `cat`, restore drills) plans them in **groups** of about
//! [`GROUP_BYTES`] stored bytes, in file order: each group's frames are
//! coalesced into range reads of whole packs or large parts of them
//! ([`coalesce`]: same pack, at most [`COALESCE_GAP`] apart, at most
//! [`COALESCE_MAX`] long), [`REMOTE_READS`] in flight, on threads of their own;
//! the next group is fetched while the current one is decoded, checked and
//! written. Bytes fetched are only stored bytes: each frame is opened,
//! decompressed and its chunks re-hashed by the caller as a frame read alone
//! would be (slicing a range changes nothing that is verified).
//!
//! Memory: at most two groups of stored bytes (the one being decoded, the one
//! being fetched), each at most [`GROUP_BYTES`] of frames plus the gaps read
//! between them: about 2 × 8 MiB + gaps.
//!
//! Knows nothing of trees, files or snapshots: it is handed frame locations.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use super::{ChunkLoc, ChunkStore};
use crate::error::{Error, Result};
use crate::id::PackId;

/// Frames of one pack this close together are read with one range read (the
/// bytes between are read and dropped: cheaper than another request).
pub const COALESCE_GAP: u64 = 1 << 20;
/// The longest coalesced range read: half a pack of the default 8 MiB target
/// (the HTTP client holds a read's bytes twice while it arrives).
pub const COALESCE_MAX: u64 = 4 << 20;
/// Range reads in flight at once (latency-bound, not CPU).
pub const REMOTE_READS: usize = 4;
/// Stored bytes of frames planned per group; one group is fetched while the
/// one before it is decoded. At 1 GiB, 16 MiB groups with 8 reads of 8 MiB in
/// flight peaked at 199 MiB of RSS.
pub const GROUP_BYTES: u64 = 8 << 20;

/// A frame's key: its pack and offset in the pack.
pub type FrameKey = (PackId, u64);

/// Frames read and decoded, by key.
pub type Decoded = Vec<(FrameKey, Arc<Vec<u8>>)>;

/// One range read: frames of one pack lying (nearly) next to each other.
#[derive(Debug, Clone)]
pub struct Run {
    pack: PackId,
    start: u64,
    end: u64,
    frames: Vec<ChunkLoc>,
}

/// Groups frames into range reads: same pack, at most [`COALESCE_GAP`]
/// apart, at most [`COALESCE_MAX`] long (a single larger frame is one read).
pub fn coalesce(wanted: Vec<ChunkLoc>) -> Vec<Run> {
    coalesce_with(wanted, COALESCE_GAP, COALESCE_MAX)
}

fn coalesce_with(mut wanted: Vec<ChunkLoc>, gap: u64, max: u64) -> Vec<Run> {
    wanted.sort_by_key(|l| (l.pack, l.frame_offset));
    wanted.dedup_by_key(|l| (l.pack, l.frame_offset));
    let mut runs: Vec<Run> = Vec::new();
    for l in wanted {
        let end = l.frame_offset + u64::from(l.frame_len);
        match runs.last_mut() {
            Some(r)
                if r.pack == l.pack
                    && l.frame_offset >= r.start
                    && l.frame_offset <= r.end.saturating_add(gap)
                    && end.max(r.end) - r.start <= max =>
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

/// The stored bytes of a group's frames, as fetched.
#[derive(Debug, Default)]
pub struct Fetched {
    /// Each range read's bytes.
    runs: Vec<Vec<u8>>,
    /// Where each frame's stored bytes are: (run, offset in the run).
    at: HashMap<FrameKey, (usize, usize)>,
}

impl Fetched {
    /// Opens and decodes `wanted` frames (in parallel), from the fetched bytes
    /// or, for a frame the group did not plan (a chunk repeated from an earlier
    /// group), with a read of its own.
    pub fn decode(&self, store: &ChunkStore, wanted: &[ChunkLoc]) -> Result<Decoded> {
        wanted
            .par_iter()
            .map(|l| {
                let key = (l.pack, l.frame_offset);
                let raw = match self.at.get(&key) {
                    Some(&(run, at)) => {
                        let stored = self.runs[run]
                            .get(at..at + l.frame_len as usize)
                            .ok_or_else(|| short_pack(&l.pack))?;
                        store.decode_frame(l, stored)?
                    }
                    None => store.read_frame(l)?,
                };
                Ok((key, Arc::new(raw)))
            })
            .collect()
    }
}

fn short_pack(pack: &PackId) -> Error {
    Error::corrupt(
        format!("pack {}", pack.short()),
        "file is shorter than its index entry (truncated?)",
    )
}

/// Range reads done, by their index in the plan.
type RunBytes = Vec<(usize, Vec<u8>)>;

/// Fetches the stored bytes of `runs`, up to [`REMOTE_READS`] at once, on
/// threads of its own; stops taking new reads when `stop` is set (the reader
/// failed or finished) and at the first failure, which it returns.
pub fn fetch_runs(store: &ChunkStore, runs: Vec<Run>, stop: &AtomicBool) -> Result<Fetched> {
    let next = AtomicUsize::new(0);
    let got: Mutex<Result<RunBytes>> = Mutex::new(Ok(Vec::new()));
    let failed = AtomicBool::new(false);
    let workers = runs.len().clamp(1, REMOTE_READS);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, SeqCst);
                let Some(run) = runs.get(i) else { return };
                if failed.load(SeqCst) || stop.load(SeqCst) {
                    return;
                }
                let bytes = usize::try_from(run.end - run.start)
                    .map_err(|_| {
                        Error::corrupt(format!("pack {}", run.pack.short()), "range too long")
                    })
                    .and_then(|len| store.fetch_range(&run.pack, run.start, len));
                let mut o = got.lock().unwrap_or_else(|p| p.into_inner());
                match (bytes, &mut *o) {
                    (Ok(b), Ok(all)) => all.push((i, b)),
                    (Err(e), o @ Ok(_)) => {
                        failed.store(true, SeqCst);
                        *o = Err(e);
                    }
                    (_, Err(_)) => {}
                }
            });
        }
    });
    let mut fetched = got.into_inner().unwrap_or_else(|p| p.into_inner())?;
    if fetched.len() != runs.len() {
        // Stopped before the end: nobody will read these bytes.
        return Ok(Fetched::default());
    }
    fetched.sort_by_key(|(i, _)| *i);
    let mut out = Fetched::default();
    for ((i, bytes), run) in fetched.into_iter().zip(&runs) {
        for l in &run.frames {
            // The run covers each of its frames (coalesce's invariant).
            let at = usize::try_from(l.frame_offset - run.start).unwrap_or(usize::MAX);
            out.at.insert((l.pack, l.frame_offset), (i, at));
        }
        out.runs.push(bytes);
    }
    Ok(out)
}

/// Whole packs read in order ahead of their use (`verify --read-data`):
/// [`PACK_READERS`] threads each read every n-th pack and hand it over when it
/// is asked for, so at most that many packs wait, read, beside the one being
/// checked (3 × 8 MiB with the default pack size).
#[derive(Debug)]
pub struct PackReadAhead {
    readers: Vec<std::sync::mpsc::Receiver<(PackId, Result<Vec<u8>>)>>,
    next: usize,
}

/// Threads reading packs ahead for [`PackReadAhead`].
pub const PACK_READERS: usize = 2;

impl PackReadAhead {
    /// Starts reading `packs`, in this order.
    pub fn start(store: &ChunkStore, packs: Vec<PackId>) -> Self {
        let mut readers = Vec::with_capacity(PACK_READERS);
        for k in 0..PACK_READERS {
            // A rendezvous channel: a reader holds one pack until it is taken.
            let (tx, rx) = std::sync::mpsc::sync_channel(0);
            let backend = store.backend.clone();
            let mine: Vec<PackId> = packs
                .iter()
                .skip(k)
                .step_by(PACK_READERS)
                .copied()
                .collect();
            std::thread::spawn(move || {
                for id in mine {
                    let bytes = backend.read(&super::pack_path(&id));
                    if tx.send((id, bytes)).is_err() {
                        return; // the checker stopped
                    }
                }
            });
            readers.push(rx);
        }
        PackReadAhead { readers, next: 0 }
    }

    /// The bytes of the next pack, which must be `id` (the order given).
    pub fn take(&mut self, id: &PackId) -> Result<Vec<u8>> {
        let from = &self.readers[self.next % self.readers.len()];
        self.next += 1;
        match from.recv() {
            Ok((got, bytes)) if got == *id => bytes,
            _ => Err(Error::internal("packs read ahead out of order")),
        }
    }
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
        let gap = 64 << 10;
        let l = [
            loc(2, 0, 100),
            loc(1, 500, 100),
            loc(1, 0, 500),
            loc(1, 0, 500),            // the same frame twice: read once
            loc(1, 600 + gap, 10),     // exactly the gap after: joins
            loc(1, 700 + 2 * gap, 10), // farther: a new read
            loc(3, 0, mib),
            loc(3, u64::from(mib), mib), // would pass the 2 MiB cap: joins (exactly 2 MiB)
            loc(3, 2 * u64::from(mib), 1), // past the cap: a new read
            loc(4, 0, 3 * mib),          // one frame larger than the cap: alone
        ];
        let runs = coalesce_with(l.to_vec(), gap, 2 << 20);
        let got: Vec<(u8, u64, u64, usize)> = runs
            .iter()
            .map(|r| (r.pack.0[0], r.start, r.end, r.frames.len()))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, 0, 610 + gap, 3),
                (1, 700 + 2 * gap, 710 + 2 * gap, 1),
                (2, 0, 100, 1),
                (3, 0, 2 * u64::from(mib), 2),
                (3, 2 * u64::from(mib), 2 * u64::from(mib) + 1, 1),
                (4, 0, 3 * u64::from(mib), 1),
            ]
        );
        // Every distinct frame is in exactly one read, inside it.
        let n: usize = runs.iter().map(|r| r.frames.len()).sum();
        assert_eq!(n, l.len() - 1);
        for r in &runs {
            for f in &r.frames {
                assert!(
                    f.frame_offset >= r.start && f.frame_offset + u64::from(f.frame_len) <= r.end
                );
            }
        }
        // The defaults: a whole 8 MiB pack of 1 MiB frames is two reads of
        // COALESCE_MAX (4 MiB).
        let pack: Vec<ChunkLoc> = (0..8)
            .map(|i| loc(5, 16 + i * u64::from(mib), mib - 10))
            .collect();
        assert_eq!(coalesce(pack).len(), 2);
    }
}
