//! `status` (newest snapshot per database, last failure, sizes, deduplication)
//! and tag/note editing.

use std::collections::BTreeMap;

use serde::Serialize;

use super::Repository;
use crate::error::{ErrorKind, Result};
use crate::format::StatusRecord;
use crate::snapshot::{self, Snapshot};
use crate::store::files;

/// One database's history in brief.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct DatabaseStatus {
    /// Source path.
    pub db: String,
    /// Snapshots of it.
    pub snapshots: usize,
    /// Newest snapshot id.
    pub latest_id: String,
    /// Its time (unix ns).
    pub latest_time_ns: i64,
}

/// What `status` reports.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Status {
    /// Repository path.
    pub repository: String,
    /// Whether it is encrypted.
    pub encrypted: bool,
    /// Number of snapshots.
    pub snapshots: usize,
    /// Per database, newest first by time.
    pub databases: Vec<DatabaseStatus>,
    /// The last recorded failure.
    pub last_failure: Option<StatusRecord>,
    /// Bytes of pack files.
    pub stored_bytes: u64,
    /// Sum of the sizes of every file of every snapshot.
    pub logical_bytes: u64,
    /// Deduplication: `logical_bytes` over the stored bytes the snapshots use
    /// (`stored_bytes - unreferenced_bytes`). `None` without snapshots, or when
    /// the snapshots could not be walked (damage: run `verify`).
    pub dedup_ratio: Option<f64>,
    /// Why the snapshots could not be walked (so `dedup_ratio`,
    /// `unreferenced_bytes` and `chunks_referenced` are unknown), and what
    /// makes them known.
    pub dedup_unknown: Option<String>,
    /// Stored bytes of chunks no snapshot references (left by an interrupted
    /// snapshot, or by `forget`): what `prune` can free at most. `None` when the
    /// snapshots could not be walked.
    pub unreferenced_bytes: Option<u64>,
    /// Chunks stored: distinct chunk ids indexed in pack files present (as
    /// `verify`, `prune` and `repair index` count them).
    pub chunks_stored: u64,
    /// Chunks referenced: distinct chunk ids (data and tree nodes) the snapshots
    /// name (as `verify` and `prune` count them). `None` when the snapshots
    /// could not be walked.
    pub chunks_referenced: Option<u64>,
    /// Same as `chunks_stored` (the name before both counts were shown).
    pub chunks: u64,
    /// Pack files indexed.
    pub packs: u64,
    /// The history chain's newest record (full hex id; none before the chain
    /// began): a witness to keep elsewhere and give to `verify --expect-head`.
    pub chain_head: Option<String>,
    /// The chain's length (the head's position; 0 without a chain).
    pub chain_records: u64,
    /// The unattended runs' failure reports (per database and remote: last
    /// success, last failure, failures in a row), from the user's state
    /// folder (`crate::health`); `None` when nothing was recorded.
    pub health: Option<crate::health::Health>,
    /// Why the failure reports could not be read, if they could not.
    pub health_problem: Option<String>,
}

impl Repository {
    /// The repository's state in brief. Walks the snapshots' chunk trees (as
    /// `prune --dry-run` does) to tell referenced from unreferenced data.
    pub fn status(&self) -> Result<Status> {
        let list = self.list()?;
        let head = self.chain_head()?;
        let mut per: BTreeMap<String, DatabaseStatus> = BTreeMap::new();
        for s in &list {
            let e = per
                .entry(s.record.source.clone())
                .or_insert_with(|| DatabaseStatus {
                    db: s.record.source.clone(),
                    snapshots: 0,
                    latest_id: String::new(),
                    latest_time_ns: i64::MIN,
                });
            e.snapshots += 1;
            // `list` is in history order: the last one seen is the newest,
            // even when the clock went back.
            e.latest_time_ns = s.record.time_ns;
            e.latest_id = s.id.to_hex();
        }
        let mut databases: Vec<_> = per.into_values().collect();
        databases.sort_by_key(|d| std::cmp::Reverse(d.latest_time_ns));
        let packs = self.index.packs()?;
        let stored_bytes: u64 = packs.iter().map(|(_, s)| s).sum();
        let logical_bytes: u64 = list.iter().map(|s| s.record.total_bytes).sum();
        let plan = self.prune_plan(super::DEFAULT_MAX_UNUSED, &crate::progress::NoProgress);
        let dedup_unknown = match &plan {
            Ok(_) => None,
            Err(e) if e.kind() == ErrorKind::MissingData => Some(
                "some snapshots need chunks that were lost: `lumina-backup repair snapshots` \
                 removes them (`lumina-backup verify` names them), then it is known"
                    .to_string(),
            ),
            Err(e) => Some(e.to_string()),
        };
        let plan = plan.ok();
        let unreferenced_bytes = plan.as_ref().map(|p| {
            p.packs
                .iter()
                .map(|k| match k.action {
                    super::PackAction::Delete => k.size,
                    _ => k.unused,
                })
                .sum::<u64>()
        });
        let chunks_stored = self.index.chunk_count()?;
        let dedup_ratio = match unreferenced_bytes {
            Some(unref) if !list.is_empty() && stored_bytes > unref => {
                Some(logical_bytes as f64 / (stored_bytes - unref) as f64)
            }
            _ => None,
        };
        let (health, health_problem) = match crate::health::Health::load(&self.location) {
            Ok(h) => (h, None),
            Err(e) => (None, Some(e.to_string())),
        };
        Ok(Status {
            health,
            health_problem,
            repository: self.root.display().to_string(),
            encrypted: self.encrypted(),
            snapshots: list.len(),
            databases,
            last_failure: self.last_failure()?,
            stored_bytes,
            logical_bytes,
            dedup_ratio,
            dedup_unknown,
            unreferenced_bytes,
            chunks_stored,
            chunks_referenced: plan.as_ref().map(|p| p.chunks_referenced),
            chunks: chunks_stored,
            packs: packs.len() as u64,
            chain_head: head.as_ref().map(|h| h.id.clone()),
            chain_records: head.map_or(0, |h| h.records),
        })
    }

    /// The last recorded failure, if any.
    pub fn last_failure(&self) -> Result<Option<StatusRecord>> {
        files::get_optional(self.backend.as_ref(), self.store.cipher(), "")
    }

    /// Records a failure for `status` (written atomically; sealed if encrypted).
    pub fn record_failure(&self, operation: &str, db: &str, message: &str) -> Result<()> {
        let rec = StatusRecord {
            time_ns: i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos())
                .unwrap_or(i64::MAX),
            operation: operation.to_string(),
            db: db.to_string(),
            message: message.to_string(),
        };
        files::save(
            self.backend.as_ref(),
            self.store.cipher(),
            self.store.format(),
            "",
            &rec,
        )
    }

    /// Changes the tags and note of a snapshot: an annotation on the history
    /// chain (store-format.md 4.10) records the new tags and note; the
    /// snapshot's record, and so its id, is unchanged. Returns the snapshot as
    /// listed afterwards.
    pub fn edit_snapshot(
        &mut self,
        spec: &str,
        add: &[String],
        remove: &[String],
        note: Option<&str>,
    ) -> Result<Snapshot> {
        let old = self.resolve(spec)?;
        for t in add {
            snapshot::check_tag(t)?;
        }
        let mut record = old.record.clone();
        record.tags.retain(|t| !remove.contains(t));
        for t in add {
            if !record.tags.contains(t) {
                record.tags.push(t.clone());
            }
        }
        if let Some(n) = note {
            record.note = n.to_string();
        }
        if record == old.record {
            return Ok(old);
        }
        self.record_annotation(&old.id, &record.tags, &record.note)?;
        Ok(Snapshot { id: old.id, record })
    }
}

impl Repository {
    /// Records how many rows `snap` changed against its parent (a cache for the
    /// history listing; sealed in an encrypted repository).
    pub fn record_changes(&self, snap: &Snapshot, changed_rows: u64) -> Result<()> {
        let Some(parent) = snap.record.parent else {
            return Ok(());
        };
        let rec = crate::format::ChangeSummary {
            parent,
            changed_rows,
        };
        files::save(
            self.backend.as_ref(),
            self.store.cipher(),
            self.store.format(),
            &snap.id.to_hex(),
            &rec,
        )
    }

    /// Rows changed against the parent, for the snapshots where that is known.
    pub fn known_changes(&self) -> Result<std::collections::HashMap<crate::id::SnapshotId, u64>> {
        let mut out = std::collections::HashMap::new();
        for name in self.backend.list(crate::layout::CHANGES)? {
            let Some(id) = crate::id::SnapshotId::from_hex(&name) else {
                continue;
            };
            // A damaged cache entry is only a missing figure.
            let decoded = files::get::<crate::format::ChangeSummary>(
                self.backend.as_ref(),
                self.store.cipher(),
                &id.to_hex(),
            );
            if let Ok(rec) = decoded {
                out.insert(id, rec.changed_rows);
            }
        }
        Ok(out)
    }

    /// Drops the change summary of a removed snapshot.
    pub(crate) fn forget_changes(&self, id: &crate::id::SnapshotId) -> Result<()> {
        self.backend.remove(&crate::layout::changes(id))
    }
}
