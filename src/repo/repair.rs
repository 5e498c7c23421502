//! `repair snapshots`: the way out after data was lost (a pack deleted,
//! truncated or damaged). Finds the snapshots that need a chunk the repository
//! no longer has, and removes them, or, when only their exports or manifest are
//! lost and the database image is intact, rewrites them without the lost files.
//! Afterwards every snapshot restores, `verify` is clean (of snapshot damage)
//! and `prune` works again.
//!
//! A pure plan ([`SnapshotRepairPlan`], what `--dry-run` prints) and an apply
//! step. Apply writes the trimmed records first, then deletes the removed ones,
//! then updates the index; a crash in between leaves both an old and a trimmed
//! record, and running the repair again finishes the job (the trimmed record is
//! the same bytes, so the same id).

use std::collections::HashSet;

use serde::Serialize;

use super::{files, Repository};
use crate::error::{Error, Repr, Result};
use crate::format::{FileKind, SnapshotRecord};
use crate::id::{ChunkId, PackId, SnapshotId};
use crate::index::IndexUpdate;
use crate::progress::{operation, Phase, PhaseInfo, Progress};
use crate::snapshot;
use crate::store::tree::TreeReader;
use crate::store::ChunkReader;

/// A snapshot `repair snapshots` removes.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct RemovedSnapshot {
    /// Its id (hex).
    pub id: String,
    /// Capture time, unix nanoseconds (0 when the record itself is unreadable).
    pub time_ns: i64,
    /// Source database ("" when unreadable).
    pub db: String,
    /// Why it cannot be kept.
    pub reason: String,
}

/// A snapshot kept without its lost files (a new record, so a new id).
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct TrimmedSnapshot {
    /// The damaged record's id.
    pub old_id: String,
    /// The id of the record without the lost files.
    pub new_id: String,
    /// Names of the files dropped.
    pub dropped_files: Vec<String>,
    /// Source database.
    pub db: String,
    /// Capture time, unix nanoseconds.
    pub time_ns: i64,
}

/// What `repair snapshots` does (or, with `dry_run`, would do).
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct SnapshotRepairPlan {
    /// Nothing was changed.
    pub dry_run: bool,
    /// Snapshots checked.
    pub snapshots_checked: u64,
    /// Snapshots removed: their database image (or record) cannot be read.
    pub removed: Vec<RemovedSnapshot>,
    /// Snapshots kept with their intact image, without lost exports or manifest.
    pub trimmed: Vec<TrimmedSnapshot>,
    /// Packs whose description cannot be read (their chunks count as lost).
    pub damaged_packs: Vec<String>,
    /// Foreign files and folders in the repository folder (left alone).
    pub foreign: Vec<String>,
    #[serde(skip)]
    new_records: Vec<(SnapshotId, Vec<u8>)>,
    #[serde(skip)]
    drop_chunks: Vec<ChunkId>,
    #[serde(skip)]
    drop_packs: Vec<PackId>,
}

impl Repository {
    /// Plans `repair snapshots`: walks every snapshot file's trees and finds the
    /// files that need a chunk that is not indexed in a readable pack. Changes
    /// nothing.
    pub fn repair_snapshots_plan(&self, progress: &dyn Progress) -> Result<SnapshotRepairPlan> {
        operation(progress, |p| self.repair_snapshots_plan_inner(p))
    }

    fn repair_snapshots_plan_inner(&self, progress: &dyn Progress) -> Result<SnapshotRepairPlan> {
        let mut plan = SnapshotRepairPlan {
            foreign: files::foreign_entries(self.files()),
            ..Default::default()
        };
        // Packs present and indexed but unreadable: their chunks are lost too.
        let mut damaged: HashSet<PackId> = HashSet::new();
        for (id, size) in self.index.packs()? {
            if let Err(e) = self.read_pack_description(&id, size) {
                plan.damaged_packs.push(e.to_string());
                damaged.insert(id);
            }
        }
        if !damaged.is_empty() {
            plan.drop_chunks = self.index.chunks_in_packs(&damaged)?;
            plan.drop_packs = damaged.iter().copied().collect();
        }
        let dropped: HashSet<ChunkId> = plan.drop_chunks.iter().copied().collect();

        // Records the history chain misses (deleted without `forget`): their
        // removal goes on the record, so the chain verifies again and prune
        // may free what only they used.
        for problem in self.chain_state()?.report.problems {
            let (id, why) = match problem {
                crate::chain::ChainProblem::Missing { id, n } => {
                    (id, format!("record #{n} of the history chain"))
                }
                crate::chain::ChainProblem::MissingBase { id } => {
                    (id, "a snapshot from before the history chain".to_string())
                }
                _ => continue,
            };
            plan.removed.push(RemovedSnapshot {
                id: id.to_hex(),
                time_ns: 0,
                db: String::new(),
                reason: format!(
                    "its file vanished without `forget` ({why}); its removal is recorded"
                ),
            });
        }
        let ids = self.snapshot_ids()?;
        progress.phase(&PhaseInfo::new(Phase::RepairSnapshots).total(Some(ids.len() as u64)));
        let mut reader = ChunkReader::new(&self.store, self.index.reader()?);
        // Subtrees found complete (content addressing: same id, same subtree).
        let mut good: HashSet<ChunkId> = HashSet::new();
        for id in ids {
            Repository::check_cancel(progress)?;
            plan.snapshots_checked += 1;
            progress.advance(1);
            let record = match self.read_record(&id) {
                Ok(r) => r,
                Err(e) => {
                    plan.removed.push(RemovedSnapshot {
                        id: id.to_hex(),
                        time_ns: 0,
                        db: String::new(),
                        reason: format!("its record cannot be read: {e}"),
                    });
                    continue;
                }
            };
            let mut lost: Vec<(String, FileKind, String)> = Vec::new();
            for file in &record.files {
                let mut tree = TreeReader::new(file.root);
                let mut walked = Vec::new();
                let mut skip = |e: &crate::format::TreeEntry| {
                    let seen = good.contains(&e.id);
                    if !seen {
                        walked.push(e.id);
                    }
                    seen
                };
                let mut size = 0u64;
                let result = (|| {
                    loop {
                        let mut get = |nid: &ChunkId| {
                            if dropped.contains(nid) {
                                return Err(Error::missing_chunk(nid.to_hex()));
                            }
                            reader.node(nid)
                        };
                        let Some((leaf, is_leaf)) = tree.next(&mut get, &mut skip)? else {
                            break;
                        };
                        size += leaf.len;
                        if is_leaf && (dropped.contains(&leaf.id) || !reader.contains(&leaf.id)?) {
                            return Err(Error::missing_chunk(leaf.id.to_hex()));
                        }
                    }
                    if size != file.size {
                        return Err(Error::corrupt(
                            format!("file {}", file.name),
                            format!("chunks add up to {size} bytes, record says {}", file.size),
                        ));
                    }
                    Ok(())
                })();
                match result {
                    Ok(()) => good.extend(walked),
                    // Only a missing chunk or a damaged node is data loss; an
                    // index or I/O failure must stop the repair, not remove snapshots.
                    Err(e) => match e.repr() {
                        Repr::MissingChunk(c) => lost.push((
                            file.name.clone(),
                            file.kind,
                            format!("chunk {} is missing", &c[..c.len().min(12)]),
                        )),
                        Repr::Corrupt { .. } => {
                            lost.push((file.name.clone(), file.kind, e.to_string()))
                        }
                        _ => return Err(e),
                    },
                }
            }
            if lost.is_empty() {
                continue;
            }
            let image_lost = lost.iter().any(|(_, k, _)| *k == FileKind::Image)
                || !record.files.iter().any(|f| f.kind == FileKind::Image);
            if image_lost || lost.len() == record.files.len() {
                let (name, _, why) = &lost[0];
                plan.removed.push(RemovedSnapshot {
                    id: id.to_hex(),
                    time_ns: record.time_ns,
                    db: record.source.clone(),
                    reason: format!("its file {name} cannot be restored: {why}"),
                });
            } else {
                let names: Vec<String> = lost.iter().map(|(n, _, _)| n.clone()).collect();
                let trimmed = trim(&record, &names);
                let (new_id, bytes) =
                    snapshot::encode_record(&trimmed, self.store.cipher(), self.store.format());
                plan.trimmed.push(TrimmedSnapshot {
                    old_id: id.to_hex(),
                    new_id: new_id.to_hex(),
                    dropped_files: names,
                    db: record.source.clone(),
                    time_ns: record.time_ns,
                });
                plan.new_records.push((new_id, bytes));
            }
        }
        Ok(plan)
    }

    /// Carries out a plan of [`Repository::repair_snapshots_plan`] (made on this
    /// open repository, whose lock is held throughout). The removals go on the
    /// history chain as one deletion, then each trimmed record is linked
    /// after it (so its id, set in `plan.trimmed`, is known only now).
    pub fn repair_snapshots_apply(&mut self, plan: &mut SnapshotRepairPlan) -> Result<()> {
        let gone: Vec<SnapshotId> = plan
            .removed
            .iter()
            .map(|r| &r.id)
            .chain(plan.trimmed.iter().map(|t| &t.old_id))
            .map(|hex| SnapshotId::from_hex(hex).expect("ids in the plan are hex"))
            .collect();
        self.record_deletion(&gone, "repair snapshots")?;
        let mut written = Vec::new();
        for (i, (planned, bytes)) in plan.new_records.iter().enumerate() {
            let mut record = snapshot::decode_record_file(planned, bytes, self.store.cipher())?;
            record.chain = Some(self.next_chain_link()?);
            let (id, file) =
                snapshot::encode_record(&record, self.store.cipher(), self.store.format());
            self.backend
                .write_atomic(&snapshot::snapshot_path(&id), &file)?;
            if let Some(t) = plan.trimmed.get_mut(i) {
                t.new_id = id.to_hex();
            }
            // Indexed at once: the next link is computed from the index.
            self.index.apply(&IndexUpdate {
                snapshots: vec![(id, file.clone())],
                ..Default::default()
            })?;
            written.push((id, file));
        }
        plan.new_records = written;
        let mut remove: Vec<SnapshotId> = Vec::new();
        for id in gone {
            self.backend.remove(&snapshot::snapshot_path(&id))?;
            // The change summary is a cache of the removed record.
            let _ = self.forget_changes(&id);
            remove.push(id);
        }
        self.backend.sync_dir(crate::layout::SNAPSHOTS)?;
        self.index.apply(&IndexUpdate {
            remove_snapshots: remove,
            remove_chunks: plan.drop_chunks.clone(),
            remove_packs: plan.drop_packs.clone(),
            // Every snapshot left names only indexed chunks.
            refs_complete: Some(true),
            ..Default::default()
        })?;
        Ok(())
    }

    /// Plans and (unless `dry_run`) applies `repair snapshots`.
    pub fn repair_snapshots(
        &mut self,
        dry_run: bool,
        progress: &dyn Progress,
    ) -> Result<SnapshotRepairPlan> {
        operation(progress, |p| {
            let mut plan = self.repair_snapshots_plan(p)?;
            plan.dry_run = dry_run;
            if !dry_run {
                self.repair_snapshots_apply(&mut plan)?;
            }
            Ok(plan)
        })
    }
}

/// The record without the files named in `lost`, its note saying so.
fn trim(record: &SnapshotRecord, lost: &[String]) -> SnapshotRecord {
    let mut r = record.clone();
    r.files.retain(|f| !lost.contains(&f.name));
    r.total_bytes = r.user_bytes();
    // Files are gone: the next snapshot must not reuse this one as unchanged.
    r.source_state = None;
    let line = format!("[repair snapshots: lost {}]", lost.join(", "));
    r.note = if r.note.is_empty() {
        line
    } else {
        format!("{} {line}", r.note)
    };
    r
}
