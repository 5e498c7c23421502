//! Garbage collection (`prune`): find the chunks no snapshot references, delete
//! packs holding only such chunks, repack packs whose dead share is above a
//! threshold. A pure plan ([`PrunePlan`], what `--dry-run` prints) and an apply
//! step.
//!
//! Liveness is judged by the index: a chunk is *live in pack P* when a snapshot
//! references it **and** its index location is in P. Copies of a chunk elsewhere
//! (left by an interrupted write or prune) are dead, so deleting a pack never
//! removes the copy the index points to.
//!
//! Crash safety (store-format.md, "Prune protocol"): new packs are durable before
//! the index transaction that points live chunks at them and drops the old packs;
//! old pack files are deleted only after that commit. At every moment each
//! indexed chunk location points into a pack file that exists.
//!
//! Memory: the referenced set is a `HashSet<ChunkId>` of 32-byte ids, about 40–80
//! bytes per referenced chunk with hashbrown's load factor (so ~20 MiB for the
//! 260,000 pages of a 1 GiB database with one chunk per page), plus a per-pack
//! tally (one entry per frame) and the list of chunks to repack.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use super::Repository;
use crate::error::{Error, Repr, Result};
use crate::id::{ChunkId, PackId};
use crate::index::IndexUpdate;
use crate::progress::{operation, Phase, PhaseInfo, Progress};
use crate::store::{pack, ChunkLoc, ChunkReader, WriteSession};

/// Default `--max-unused`: repack a pack when more than this percentage of its
/// stored bytes is dead.
pub const DEFAULT_MAX_UNUSED: f64 = 10.0;

/// Raw bytes of live chunks handed to the write session at once when repacking.
const REPACK_BATCH: usize = 4 << 20;

/// Frames kept decompressed while walking trees (tree nodes of one snapshot sit
/// together, interleaved with the data written in the same session).
const NODE_FRAME_CACHE: usize = 16;

/// Packs under this size are consolidated by prune ([`PackTally::decide`]):
/// a quarter of the pack target (2 MiB by default).
pub(crate) fn small_pack_bytes(config: &crate::format::records::Config) -> u64 {
    u64::from(config.pack_target) / 4
}

/// What prune does with a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PackAction {
    /// Leave it.
    Keep,
    /// No live chunk: delete the file.
    Delete,
    /// Too much dead data, or a small pack consolidated with others: copy the
    /// live chunks into new packs, then delete it.
    Repack,
}

/// One pack in the plan.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct PackPlan {
    /// The pack.
    pub id: PackId,
    /// Its size in bytes.
    pub size: u64,
    /// Stored bytes of live chunks (per frame, the frame's stored length times
    /// the live share of its raw bytes).
    pub used: u64,
    /// Stored bytes of dead chunks, estimated the same way.
    pub unused: u64,
    /// Live chunks located in it.
    pub live_chunks: u64,
    /// The decision.
    pub action: PackAction,
}

/// What prune would do; [`Repository::prune_apply`] does it.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct PrunePlan {
    /// The threshold used, percent.
    pub max_unused_percent: f64,
    /// Snapshots whose trees were walked.
    pub snapshots: u64,
    /// Distinct chunks (data and tree nodes) the snapshots reference.
    pub chunks_referenced: u64,
    /// Distinct chunks stored (indexed in pack files present).
    pub chunks_stored: u64,
    /// Every indexed pack with its decision.
    pub packs: Vec<PackPlan>,
    /// Index entries to drop: dead chunks located in deleted or repacked packs.
    #[serde(skip)]
    pub(crate) remove_chunks: Vec<ChunkId>,
    /// Live chunks to copy out of repacked packs, in pack and frame order.
    #[serde(skip)]
    pub(crate) repack_chunks: Vec<(ChunkId, ChunkLoc)>,
}

/// What prune did (or, for a dry run, would do: rewritten bytes estimated).
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct PruneReport {
    /// Nothing was changed.
    pub dry_run: bool,
    /// Snapshots kept (their trees walked).
    pub snapshots: u64,
    /// Distinct chunks (data and tree nodes) the snapshots reference.
    pub chunks_referenced: u64,
    /// Distinct chunks stored in packs (after the prune; for a dry run, now).
    pub chunks_stored: u64,
    /// Index entries of dead chunks dropped.
    pub chunks_removed: u64,
    /// Live chunks copied into new packs.
    pub chunks_repacked: u64,
    /// Packs before.
    pub packs_before: u64,
    /// Packs deleted outright.
    pub packs_deleted: u64,
    /// Packs repacked (and then deleted).
    pub packs_repacked: u64,
    /// New packs written.
    pub packs_written: u64,
    /// Bytes of packs before.
    pub bytes_before: u64,
    /// Bytes of packs after.
    pub bytes_after: u64,
    /// `bytes_before - bytes_after`.
    pub bytes_freed: u64,
    /// Bytes written to new packs.
    pub bytes_rewritten: u64,
    /// Set when the repacking was skipped for lack of space (only packs with no
    /// live data were deleted): says so and what to do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl PrunePlan {
    fn count(&self, action: PackAction) -> u64 {
        self.packs.iter().filter(|p| p.action == action).count() as u64
    }

    fn bytes(&self, action: PackAction) -> u64 {
        self.packs
            .iter()
            .filter(|p| p.action == action)
            .map(|p| p.size)
            .sum()
    }

    /// Whether applying the plan would change nothing.
    pub fn is_noop(&self) -> bool {
        self.packs.iter().all(|p| p.action == PackAction::Keep)
    }

    /// The report of a dry run (rewritten bytes estimated as the live stored
    /// bytes of repacked packs).
    pub fn estimate(&self) -> PruneReport {
        let before: u64 = self.packs.iter().map(|p| p.size).sum();
        let rewritten: u64 = self
            .packs
            .iter()
            .filter(|p| p.action == PackAction::Repack)
            .map(|p| p.used)
            .sum();
        let removed = self.bytes(PackAction::Delete) + self.bytes(PackAction::Repack);
        let after = before - removed + rewritten;
        PruneReport {
            dry_run: true,
            snapshots: self.snapshots,
            chunks_referenced: self.chunks_referenced,
            chunks_stored: self.chunks_stored,
            chunks_removed: self.remove_chunks.len() as u64,
            chunks_repacked: self.repack_chunks.len() as u64,
            packs_before: self.packs.len() as u64,
            packs_deleted: self.count(PackAction::Delete),
            packs_repacked: self.count(PackAction::Repack),
            packs_written: 0,
            bytes_before: before,
            bytes_after: after,
            bytes_freed: before.saturating_sub(after),
            bytes_rewritten: rewritten,
            note: None,
        }
    }
}

/// One frame's accounting.
#[derive(Debug, Clone, Copy)]
struct FrameTally {
    stored: u32,
    raw: u32,
    live_raw: u64,
    live_chunks: u64,
}

/// Per-pack accounting from the index's chunk locations (pure).
#[derive(Debug, Default)]
pub(crate) struct PackTally {
    /// pack → frame offset → its tally.
    frames: HashMap<PackId, BTreeMap<u64, FrameTally>>,
}

impl PackTally {
    /// Counts one index entry.
    pub(crate) fn add(&mut self, loc: &ChunkLoc, live: bool) {
        let f = self
            .frames
            .entry(loc.pack)
            .or_default()
            .entry(loc.frame_offset)
            .or_insert(FrameTally {
                stored: loc.frame_len,
                raw: loc.frame_raw_len,
                live_raw: 0,
                live_chunks: 0,
            });
        if live {
            f.live_raw += u64::from(loc.len);
            f.live_chunks += 1;
        }
    }

    /// Decides every pack of `packs` (id, size). A pack with no live chunk is
    /// deleted; one whose dead stored bytes exceed `max_unused` percent of its
    /// size is repacked. Dead bytes are the raw dead share of each frame applied
    /// to its stored length (chunks of one frame compress together).
    ///
    /// Small packs are consolidated: when packs under `small` bytes that would
    /// be kept, together with the packs repacked anyway, number two or more,
    /// the small ones are repacked too, so their live chunks end up together
    /// in full-size packs (each snapshot writes at least one pack; without
    /// this the pack count would grow with the number of snapshots). A run of
    /// prunes rewrites at most one not-yet-full pack each time beyond the new
    /// small ones, so the bytes rewritten stay bounded by `small` per prune.
    pub(crate) fn decide(
        &self,
        packs: &[(PackId, u64)],
        max_unused: f64,
        small: u64,
    ) -> Vec<PackPlan> {
        let mut out = Vec::with_capacity(packs.len());
        for (id, size) in packs {
            let (mut used, mut unused, mut live_chunks) = (0u64, 0u64, 0u64);
            if let Some(frames) = self.frames.get(id) {
                for f in frames.values() {
                    let stored = u64::from(f.stored);
                    let raw = u64::from(f.raw.max(1));
                    let live_raw = f.live_raw.min(raw);
                    // stored * live_raw / raw fits: both factors are below 2^32.
                    let u = stored * live_raw / raw;
                    used += u;
                    unused += stored - u;
                    live_chunks += f.live_chunks;
                }
            }
            let action = if live_chunks == 0 {
                PackAction::Delete
            } else if (unused as f64) * 100.0 > max_unused * (*size).max(1) as f64 {
                PackAction::Repack
            } else {
                PackAction::Keep
            };
            out.push(PackPlan {
                id: *id,
                size: *size,
                used,
                unused,
                live_chunks,
                action,
            });
        }
        let is_small = |p: &PackPlan| p.action == PackAction::Keep && p.size < small;
        let merging = out
            .iter()
            .filter(|p| is_small(p) || p.action == PackAction::Repack)
            .count();
        if merging >= 2 {
            for p in &mut out {
                if is_small(p) {
                    p.action = PackAction::Repack;
                }
            }
        }
        out.sort_by_key(|p| p.id);
        out
    }
}

/// The referenced set, built by walking trees and skipping subtrees seen before.
struct Marker<'r> {
    reader: ChunkReader<'r>,
    /// Every referenced chunk (data and nodes).
    live: HashSet<ChunkId>,
    /// Nodes already walked: content addressing makes their subtrees identical.
    walked: HashSet<ChunkId>,
}

impl Marker<'_> {
    fn walk(&mut self, root: ChunkId) -> Result<()> {
        let mut stack: Vec<(ChunkId, Option<u8>)> = vec![(root, None)];
        while let Some((id, want_level)) = stack.pop() {
            if !self.walked.insert(id) {
                continue;
            }
            self.live.insert(id);
            let node = self.reader.node(&id)?;
            if want_level.is_some_and(|l| l != node.level) {
                return Err(Error::corrupt(
                    format!("tree node {}", id.short()),
                    format!("level {} where {want_level:?} was expected", node.level),
                ));
            }
            if node.level == 0 {
                for e in &node.entries {
                    // A referenced chunk the index lacks means damage: refuse to
                    // prune rather than judge liveness on a broken picture.
                    if self.live.insert(e.id) && !self.reader.contains(&e.id)? {
                        return Err(Error::missing_chunk(e.id.to_hex()));
                    }
                }
            } else {
                for e in node.entries.iter().rev() {
                    stack.push((e.id, Some(node.level - 1)));
                }
            }
        }
        Ok(())
    }
}

impl Repository {
    /// Plans a prune: walks every snapshot (the files on disk, the truth) to
    /// collect referenced chunks, then decides each indexed pack. Changes nothing.
    /// Fails (without changing anything) if a snapshot or tree node cannot be
    /// read: liveness must never be judged on a damaged repository.
    pub fn prune_plan(&self, max_unused: f64, progress: &dyn Progress) -> Result<PrunePlan> {
        operation(progress, |p| self.prune_plan_inner(max_unused, p))
    }

    fn prune_plan_inner(&self, max_unused: f64, progress: &dyn Progress) -> Result<PrunePlan> {
        if !(0.0..=100.0).contains(&max_unused) || max_unused.is_nan() {
            return Err(Error::invalid_input(format!(
                "the largest unused share {max_unused}: give a percentage from 0 to 100"
            )));
        }
        // Data is freed only of snapshots removed on the record (a deletion
        // on the history chain): one whose file vanished otherwise may be
        // recoverable from a copy, and its chunks are kept.
        let chain = self.chain_state()?.report;
        if let Some(p) = chain.problems.iter().find(|p| p.vanished()) {
            return Err(Error::refused(format!(
                "prune refused: {p}; its data may be all that is left of it (put the file \
                 back from a copy; if it cannot come back, `repair snapshots` records the loss)"
            )));
        }
        let mut snaps = Vec::new();
        for id in self.snapshot_ids()? {
            let record = self.read_record(&id).map_err(|e| match e {
                e if matches!(e.repr(), Repr::Io { .. }) => e,
                e => Error::refused(format!(
                    "prune refused: {e} (a snapshot that cannot be read could reference any chunk)"
                )),
            })?;
            snaps.push((record.time_ns, id, record));
        }
        snaps.sort_by_key(|(t, id, _)| (*t, *id));
        progress.phase(&PhaseInfo::new(Phase::FindReferences).total(Some(snaps.len() as u64)));
        let mut marker = Marker {
            reader: ChunkReader::with_cache_frames(
                &self.store,
                self.index.reader()?,
                NODE_FRAME_CACHE,
            ),
            live: HashSet::new(),
            walked: HashSet::new(),
        };
        for (_, _, record) in &snaps {
            Repository::check_cancel(progress)?;
            for file in &record.files {
                marker.walk(file.root)?;
            }
            progress.advance(1);
        }
        let live = marker.live;
        drop(marker.walked);

        // Every referenced chunk is indexed: snapshots may trust their parent's
        // chunk list again (a cache flag; best effort on a read-only repository).
        let _ = self.index.apply(&IndexUpdate {
            refs_complete: Some(true),
            ..Default::default()
        });
        let packs = self.index.packs()?;
        let mut tally = PackTally::default();
        let mut chunks_stored = 0u64;
        self.index.for_each_chunk(&mut |id, loc| {
            tally.add(&loc, live.contains(&id));
            chunks_stored += 1;
            Ok(())
        })?;
        let decisions = tally.decide(&packs, max_unused, small_pack_bytes(self.store.config()));
        drop(tally);
        let action: HashMap<PackId, PackAction> =
            decisions.iter().map(|p| (p.id, p.action)).collect();
        let mut remove_chunks = Vec::new();
        let mut repack_chunks = Vec::new();
        self.index.for_each_chunk(&mut |id, loc| {
            match action.get(&loc.pack) {
                Some(PackAction::Delete) => remove_chunks.push(id),
                Some(PackAction::Repack) if live.contains(&id) => repack_chunks.push((id, loc)),
                Some(PackAction::Repack) => remove_chunks.push(id),
                // Entries pointing at a pack the index does not list are left
                // for verify and `repair index`.
                Some(PackAction::Keep) | None => {}
            }
            Ok(())
        })?;
        repack_chunks.sort_by_key(|(_, l)| (l.pack, l.frame_offset, l.offset));
        Ok(PrunePlan {
            max_unused_percent: max_unused,
            snapshots: snaps.len() as u64,
            chunks_referenced: live.len() as u64,
            chunks_stored,
            packs: decisions,
            remove_chunks,
            repack_chunks,
        })
    }

    /// Carries out a plan made by [`Repository::prune_plan`] on this open
    /// repository (the lock is held throughout, so nothing changed since).
    ///
    /// Order: live chunks of repacked packs are read (each re-hashed) and
    /// written to new packs, which are durable on return of the session (crash
    /// point `prune-after-new-packs`); one index transaction then adds the new
    /// locations and packs and drops dead chunks and old packs
    /// (`prune-after-index`); only then are old pack files deleted
    /// (`prune-delete-pack`, once per pack).
    ///
    /// When repacking fails for lack of space (a full disk), the new packs it
    /// wrote are removed and the plan is applied without repacking: packs with
    /// no live data are still deleted, which needs no new bytes
    /// ([`PruneReport::note`] says so). Cancelled (through `progress`, while
    /// repacking), the new packs are removed too and it fails with
    /// a cancelled error ([`Error::is_cancelled`]), the repository as it was.
    pub fn prune_apply(
        &mut self,
        plan: &PrunePlan,
        progress: &dyn Progress,
    ) -> Result<PruneReport> {
        operation(progress, |p| self.prune_apply_inner(plan, p))
    }

    fn prune_apply_inner(
        &mut self,
        plan: &PrunePlan,
        progress: &dyn Progress,
    ) -> Result<PruneReport> {
        let before: HashSet<PackId> = self
            .unindexed_packs()?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        let err = match self.prune_apply_once(plan, progress) {
            Ok(report) => return Ok(report),
            Err(e) => e,
        };
        let repacked: Vec<PackId> = plan
            .packs
            .iter()
            .filter(|p| p.action == PackAction::Repack)
            .map(|p| p.id)
            .collect();
        // Cancelled (only ever before the index transaction): the new packs
        // are removed and nothing else changed.
        let cancelled = err.is_cancelled();
        if repacked.is_empty()
            || (!cancelled && super::partial::no_space(&err, self.index.path()).is_none())
        {
            return Err(err);
        }
        // The index transaction did not happen if the repacked packs are still
        // indexed; only then are the new packs unreferenced.
        let indexed: HashSet<PackId> = self.index.packs()?.into_iter().map(|(id, _)| id).collect();
        if !repacked.iter().all(|id| indexed.contains(id)) {
            return Err(err);
        }
        let new: Vec<(PackId, u64)> = self
            .unindexed_packs()?
            .into_iter()
            .filter(|(id, _)| !before.contains(id))
            .collect();
        self.discard_packs(&new)?;
        if cancelled {
            return Err(err);
        }
        let mut only_delete = plan.clone();
        for p in &mut only_delete.packs {
            if p.action == PackAction::Repack {
                p.action = PackAction::Keep;
            }
        }
        only_delete.repack_chunks.clear();
        let deleted: HashSet<PackId> = only_delete
            .packs
            .iter()
            .filter(|p| p.action == PackAction::Delete)
            .map(|p| p.id)
            .collect();
        let reader = self.index.reader()?;
        let mut keep = Vec::new();
        for id in &only_delete.remove_chunks {
            if reader.get(id)?.is_some_and(|l| deleted.contains(&l.pack)) {
                keep.push(*id);
            }
        }
        drop(reader);
        only_delete.remove_chunks = keep;
        let mut report = self.prune_apply_once(&only_delete, progress)?;
        report.note = Some(format!(
            "no space left on device to repack ({err}); only packs with no live data were deleted; prune again once there is room"
        ));
        Ok(report)
    }

    fn prune_apply_once(
        &mut self,
        plan: &PrunePlan,
        progress: &dyn Progress,
    ) -> Result<PruneReport> {
        let mut report = plan.estimate();
        report.dry_run = false;
        if plan.is_noop() {
            report.bytes_rewritten = 0;
            report.bytes_after = report.bytes_before;
            report.bytes_freed = 0;
            return Ok(report);
        }
        let repack_bytes: u64 = plan
            .repack_chunks
            .iter()
            .map(|(_, l)| u64::from(l.len))
            .sum();
        progress.phase(&PhaseInfo::new(Phase::Repack).total(Some(repack_bytes)));
        // Every chunk put here is already indexed (in the pack being replaced),
        // so "known" must say no, or the session would skip it and the chunk
        // would be lost with its old pack.
        let mut session = WriteSession::new(&self.store, Box::new(|_| Ok(false)));
        let mut reader = ChunkReader::new(&self.store, self.index.reader()?);
        // Batches go through `put_batch`, which compresses and writes frames as
        // they fill, so memory stays at a few frames and one pack whatever the
        // amount repacked.
        let mut batch: Vec<(ChunkId, Vec<u8>)> = Vec::new();
        let mut batch_kind = 0u8;
        let mut batch_bytes = 0usize;
        let flush = |session: &mut WriteSession<'_>,
                     kind: u8,
                     batch: &mut Vec<(ChunkId, Vec<u8>)>|
         -> Result<()> {
            let (ids, chunks): (Vec<ChunkId>, Vec<Vec<u8>>) =
                std::mem::take(batch).into_iter().unzip();
            let entries = session.put_batch(kind, chunks)?;
            for (want, got) in ids.iter().zip(&entries) {
                if got.id != *want {
                    return Err(Error::corrupt(
                        format!("chunk {}", want.short()),
                        "re-hashed to another id while repacking",
                    ));
                }
            }
            Ok(())
        };
        for (id, loc) in &plan.repack_chunks {
            Repository::check_cancel(progress)?;
            let data = reader.chunk_at(id, loc)?;
            let len = data.len();
            if !batch.is_empty() && (loc.kind != batch_kind || batch_bytes >= REPACK_BATCH) {
                flush(&mut session, batch_kind, &mut batch)?;
                batch_bytes = 0;
            }
            batch_kind = loc.kind;
            batch_bytes += len;
            batch.push((*id, data));
            progress.advance(len as u64);
        }
        if !batch.is_empty() {
            flush(&mut session, batch_kind, &mut batch)?;
        }
        drop(reader);
        let added = session.finish()?;
        crate::testhook::point("prune-after-new-packs");

        let new_packs: HashSet<PackId> = added.packs.iter().map(|(id, _)| *id).collect();
        let doomed: Vec<(PackId, u64)> = plan
            .packs
            .iter()
            .filter(|p| p.action != PackAction::Keep && !new_packs.contains(&p.id))
            .map(|p| (p.id, p.size))
            .collect();
        let written: u64 = added.packs.iter().map(|(_, s)| s).sum();
        report.packs_written = added.packs.len() as u64;
        report.bytes_rewritten = written;
        let update = IndexUpdate {
            chunks: added.locations,
            packs: added.packs,
            remove_chunks: plan.remove_chunks.clone(),
            remove_packs: doomed.iter().map(|(id, _)| *id).collect(),
            ..Default::default()
        };
        self.index.apply(&update)?;
        crate::testhook::point("prune-after-index");

        progress.phase(&PhaseInfo::new(Phase::DeletePacks).total(Some(doomed.len() as u64)));
        let mut dirs = std::collections::BTreeSet::new();
        for (id, _) in &doomed {
            crate::testhook::point("prune-delete-pack");
            let path = pack::pack_path(id);
            self.backend.remove(&path)?;
            dirs.insert(crate::layout::dir_of(&path).to_string());
            progress.advance(1);
        }
        for dir in dirs {
            self.backend.sync_dir(&dir)?;
        }
        // The index lost many entries: give the space back (best effort; the
        // prune itself is complete).
        let _ = self.index.compact();
        report.chunks_stored = self.index.chunk_count()?;
        let freed: u64 = doomed.iter().map(|(_, s)| s).sum();
        report.bytes_after = report.bytes_before + written - freed;
        report.bytes_freed = report.bytes_before.saturating_sub(report.bytes_after);
        Ok(report)
    }

    /// Plans and applies a prune.
    pub fn prune(&mut self, max_unused: f64, progress: &dyn Progress) -> Result<PruneReport> {
        operation(progress, |p| {
            let plan = self.prune_plan(max_unused, p)?;
            self.prune_apply(&plan, p)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(pack: u8, frame: u64, stored: u32, raw: u32, len: u32) -> ChunkLoc {
        ChunkLoc {
            pack: PackId([pack; 32]),
            frame_offset: frame,
            frame_len: stored,
            frame_raw_len: raw,
            compression: 1,
            offset: 0,
            len,
            kind: 0,
        }
    }

    fn decide(entries: &[(ChunkLoc, bool)], packs: &[(u8, u64)], max: f64) -> Vec<PackPlan> {
        let mut t = PackTally::default();
        for (l, live) in entries {
            t.add(l, *live);
        }
        let packs: Vec<_> = packs.iter().map(|(p, s)| (PackId([*p; 32]), *s)).collect();
        t.decide(&packs, max, 0)
    }

    #[test]
    fn packs_are_kept_deleted_or_repacked_by_dead_share() {
        let entries = [
            // Pack 1: one frame, all live.
            (loc(1, 16, 1000, 4000, 2000), true),
            (loc(1, 16, 1000, 4000, 2000), true),
            // Pack 2: all dead.
            (loc(2, 16, 1000, 4000, 4000), false),
            // Pack 3: frame A all live, frame B half dead (250 of 1016 stored dead).
            (loc(3, 16, 500, 2000, 2000), true),
            (loc(3, 516, 500, 2000, 1000), true),
            (loc(3, 516, 500, 2000, 1000), false),
            // Pack 4: one live chunk in a frame of 10 (90% dead).
            (loc(4, 16, 1000, 10_000, 1000), true),
        ];
        let packs = [(1, 1100), (2, 1100), (3, 1100), (4, 1100), (5, 200)];
        let p = decide(&entries, &packs, 10.0);
        let actions: Vec<_> = p.iter().map(|x| x.action).collect();
        assert_eq!(
            actions,
            vec![
                PackAction::Keep,
                PackAction::Delete,
                PackAction::Repack,
                PackAction::Repack,
                PackAction::Delete, // indexed pack with no chunk entries at all
            ]
        );
        assert_eq!((p[2].used, p[2].unused), (750, 250));
        assert_eq!(p[3].live_chunks, 1);
        // A higher threshold keeps pack 3 (22.7% dead) but not pack 4 (82%).
        let p = decide(&entries, &packs, 30.0);
        assert_eq!(p[2].action, PackAction::Keep);
        assert_eq!(p[3].action, PackAction::Repack);
        // 100% never repacks; packs without live chunks are still deleted.
        let p = decide(&entries, &packs, 100.0);
        assert!(p.iter().all(|x| x.action != PackAction::Repack));
        assert_eq!(p[1].action, PackAction::Delete);
        // 0% repacks any pack with a dead byte, and never one without.
        let p = decide(&entries, &packs, 0.0);
        assert_eq!(p[0].action, PackAction::Keep);
        assert_eq!(p[2].action, PackAction::Repack);
    }

    /// Issue #10 item 8: small packs that would be kept are repacked together
    /// once there are two of them (or one beside a pack repacked anyway); a
    /// lone small pack, and full-size packs, are left alone.
    #[test]
    fn small_packs_are_consolidated() {
        let mut t = PackTally::default();
        for p in 1..=4u8 {
            t.add(&loc(p, 16, 100, 4000, 4000), true);
        }
        let ids = |v: &[(u8, u64)]| -> Vec<(PackId, u64)> {
            v.iter().map(|(p, s)| (PackId([*p; 32]), *s)).collect()
        };
        let acts = |v: Vec<PackPlan>| v.into_iter().map(|p| p.action).collect::<Vec<_>>();
        let p = t.decide(&ids(&[(1, 200), (2, 200), (3, 5000)]), 10.0, 1000);
        assert_eq!(
            acts(p),
            vec![PackAction::Repack, PackAction::Repack, PackAction::Keep]
        );
        let p = t.decide(&ids(&[(1, 200), (3, 5000)]), 10.0, 1000);
        assert_eq!(acts(p), vec![PackAction::Keep, PackAction::Keep]);
        let p = t.decide(&ids(&[(1, 200), (2, 200)]), 10.0, 0);
        assert_eq!(acts(p), vec![PackAction::Keep, PackAction::Keep]);
    }

    #[test]
    fn frame_with_duplicates_indexed_elsewhere_counts_them_dead() {
        // The frame holds 4000 raw bytes but only one live 1000-byte chunk is
        // indexed here (the rest are copies the index locates in other packs).
        let p = decide(&[(loc(1, 16, 800, 4000, 1000), true)], &[(1, 900)], 10.0);
        assert_eq!((p[0].used, p[0].unused), (200, 600));
        assert_eq!(p[0].action, PackAction::Repack);
    }
}
