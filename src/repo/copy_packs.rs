//! Whole source packs sent to a copy's destination, a few at a time
//! (store-format.md 6.11).
//!
//! [`PACKS_IN_FLIGHT`] worker threads each take the next pack: read it whole
//! from the source (once), check its BLAKE3 against its name, hand the buffer
//! to the destination's atomic write (an S3 PUT, without a copy), and check
//! what arrived: confirmed by the store (an S3 ETag equal to the pack's MD5),
//! else one range read of its description and trailer compared with what was
//! sent. The description itself comes from the bytes read at the source
//! (whose hash matched the name), so no read of the destination is needed to
//! index it. The calling thread gathers the results and indexes the packs at
//! the destination a few at a time (one index transaction per batch, its
//! lookups and inserts in key order: random lookups in an index larger than
//! its page cache cost a file read each, and made the copy of a 1 GiB
//! database's repository 25% slower).
//!
//! Memory: each worker holds at most one pack (a pack is at most
//! `pack_target + 2 * frame_target + 64 KiB`, about 10 MiB by default), so
//! at most [`PACKS_IN_FLIGHT`] packs are in memory, plus one batch of index
//! entries (~70 bytes per chunk).
//!
//! Order: a pack is in the destination's index only after it arrived whole;
//! every pack is indexed before this returns, so before any record that
//! references it is written. A kill leaves packs that arrived but are not
//! indexed yet: the next writing open of the destination finds them and
//! indexes them from their descriptions (6.4, 6.10), so a rerun does not send
//! them again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};

use super::Repository;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::format::Cipher;
use crate::id::{ChunkId, PackId};
use crate::index::IndexUpdate;
use crate::progress::Progress;
use crate::store::{pack, ChunkLoc};

/// Whole packs being read, sent or checked at once (rclone's default
/// `--transfers` is 4 as well).
pub(super) const PACKS_IN_FLIGHT: usize = 4;

/// Packs whose chunks go into one index transaction at the destination.
const INDEX_BATCH: usize = 4;

/// A source pack to send whole: id and size.
pub(super) type WholePack = (PackId, u64);

/// What sending a batch of whole packs did.
#[derive(Debug, Default)]
pub(super) struct PacksSent {
    /// Packs sent.
    pub packs: u64,
    /// Chunks newly indexed at the destination.
    pub chunks: u64,
    /// Bytes of the packs sent.
    pub bytes: u64,
    /// Packs whose arrival the store confirmed (ETag), needing no read-back.
    pub confirmed: u64,
}

/// A pack that arrived: its id, size, the locations its description lists,
/// whether the store confirmed it.
struct Arrived {
    pack: PackId,
    size: u64,
    locations: Vec<(ChunkId, ChunkLoc)>,
    confirmed: bool,
}

/// Sends `packs` whole from `src` to `dst`, [`PACKS_IN_FLIGHT`] at a time,
/// and indexes them at `dst`. On the first failure (or a cancel) no further
/// pack is started; the packs that arrived are still indexed.
pub(super) fn send_whole(
    src: &Repository,
    dst: &Repository,
    packs: Vec<WholePack>,
    progress: &dyn Progress,
) -> Result<PacksSent> {
    let mut out = PacksSent::default();
    if packs.is_empty() {
        return Ok(out);
    }
    let workers = PACKS_IN_FLIGHT.min(packs.len());
    let jobs = Mutex::new(packs.into_iter());
    let stop = AtomicBool::new(false);
    let (tx, rx) = mpsc::sync_channel::<Result<Arrived>>(workers);
    let (from, to) = (src.backend.as_ref(), dst.backend.as_ref());
    let cipher = src.store.cipher();
    let mut failure: Option<Error> = None;
    let mut batch: Vec<Arrived> = Vec::new();
    std::thread::scope(|s| {
        for _ in 0..workers {
            let tx = tx.clone();
            let (jobs, stop) = (&jobs, &stop);
            s.spawn(move || loop {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                // A poisoned lock means another worker panicked: stop too.
                let next = match jobs.lock() {
                    Ok(mut j) => j.next(),
                    Err(_) => None,
                };
                let Some((pack, size)) = next else {
                    break;
                };
                let r = send_one(from, to, cipher, pack, size);
                if tx.send(r).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        for r in rx.iter() {
            match r {
                Ok(arrived) => {
                    progress.advance(arrived.size);
                    batch.push(arrived);
                    if batch.len() >= INDEX_BATCH && failure.is_none() {
                        if let Err(e) = index_batch(dst, &mut batch, &mut out) {
                            stop.store(true, Ordering::SeqCst);
                            failure.get_or_insert(e);
                        }
                    }
                }
                Err(e) => {
                    stop.store(true, Ordering::SeqCst);
                    failure.get_or_insert(e);
                }
            }
            if failure.is_none() {
                if let Err(e) = Repository::check_cancel(progress) {
                    stop.store(true, Ordering::SeqCst);
                    failure = Some(e);
                }
            }
        }
    });
    // What arrived is indexed even after a failure, except a batch whose own
    // indexing failed (the next open finds those packs anyway); the first
    // failure is what the caller hears.
    let indexed = index_batch(dst, &mut batch, &mut out);
    match failure {
        Some(e) => Err(e),
        None => indexed.map(|()| out),
    }
}

/// Reads one pack at the source, checks it against its name, sends it and
/// checks what arrived.
fn send_one(
    from: &dyn Backend,
    to: &dyn Backend,
    cipher: &Cipher,
    pack: PackId,
    size: u64,
) -> Result<Arrived> {
    let path = pack::pack_path(&pack);
    let bytes = from.read(&path)?;
    if bytes.len() as u64 != size || crate::id::blake3_of(&bytes) != pack.0 {
        return Err(Error::corrupt(
            format!("pack {} of the source", pack.short()),
            "content does not match its name; run verify --read-data on the source",
        ));
    }
    let object = format!("pack {} of the source", pack.short());
    let desc = pack::parse_pack(&bytes, cipher).map_err(|e| Error::decode(&object, e))?;
    // The tail (description and trailer) a read-back compares.
    let (tail_at, tail_len, _) =
        pack::parse_trailer(size, &bytes[bytes.len() - pack::TRAILER_LEN..])
            .map_err(|e| Error::decode(&object, e))?;
    let tail_len = tail_len + pack::TRAILER_LEN;
    let tail_at_usize = usize::try_from(tail_at)
        .map_err(|_| Error::internal("a pack in memory is shorter than its offsets"))?;
    let tail_sum = blake3::hash(&bytes[tail_at_usize..]);
    let confirmed = to.write_owned(&path, bytes)?;
    crate::testhook::point("copy-after-pack");
    if !confirmed {
        let back = to.read_range(&path, tail_at, tail_len)?;
        if blake3::hash(&back) != tail_sum {
            return Err(Error::corrupt(
                format!("pack {} at the destination", pack.short()),
                "what the destination holds differs from what was sent; run the copy again",
            ));
        }
    }
    Ok(Arrived {
        pack,
        size,
        locations: pack::locations(pack, &desc),
        confirmed,
    })
}

/// Indexes at `dst` the packs in `batch` (emptied, whatever the outcome) with
/// the chunks it lacks, in one transaction. A batch that fails is dropped,
/// never indexed later without its chunks: its packs stay unindexed, and the
/// next writing open indexes them from their descriptions (6.4).
fn index_batch(dst: &Repository, batch: &mut Vec<Arrived>, out: &mut PacksSent) -> Result<()> {
    let arrived = std::mem::take(batch);
    if arrived.is_empty() {
        return Ok(());
    }
    let (mut add, mut packs) = (Vec::new(), Vec::new());
    let (mut bytes, mut confirmed) = (0, 0);
    for mut a in arrived {
        add.append(&mut a.locations);
        packs.push((a.pack, a.size));
        bytes += a.size;
        confirmed += u64::from(a.confirmed);
    }
    // Keys in order, for the lookups and the transaction alike: consecutive
    // keys share their B-tree leaf, so each leaf is read once, not once per
    // chunk (random lookups in an index larger than its page cache cost a
    // file read each). A chunk listed twice keeps its first location.
    add.sort_by_key(|(c, _)| *c);
    add.dedup_by_key(|(c, _)| *c);
    {
        let have = dst.index.reader()?;
        let mut missing = Vec::with_capacity(add.len());
        for (c, l) in add {
            if !have.contains(&c)? {
                missing.push((c, l));
            }
        }
        add = missing;
    }
    let chunks = add.len() as u64;
    let n = packs.len() as u64;
    dst.index.apply(&IndexUpdate {
        chunks: add,
        packs,
        ..Default::default()
    })?;
    out.chunks += chunks;
    out.packs += n;
    out.bytes += bytes;
    out.confirmed += confirmed;
    Ok(())
}
