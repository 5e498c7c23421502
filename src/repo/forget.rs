//! Retention (`forget`) and the repository's stored retention settings.
//!
//! The decision is [`crate::retention`]'s pure plan; this file reads the
//! snapshots and settings it needs and applies a plan: snapshot files are
//! deleted first (the folder fsynced, so a forgotten snapshot cannot come back
//! after the prune that follows has deleted its data), then the index drops them.
//! A crash in between is repaired on the next open (indexed snapshots whose
//! files are gone are dropped).

use std::path::Path;

use serde::Serialize;
use time::UtcOffset;

use super::Repository;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::format::{self, Kind, RetentionSettings};
use crate::index::IndexUpdate;
use crate::retention::{self, Item, Plan, Policy};
use crate::snapshot;

use super::PruneReport;

/// Name of the retention settings file.
pub const RETENTION_FILE: &str = "retention";

/// What `forget` decided and did.
#[derive(Debug, Clone, Serialize)]
pub struct ForgetReport {
    /// The plan: every snapshot considered, kept or removed, with reasons.
    pub plan: Plan,
    /// Whether the removals were carried out (false for a dry run).
    pub applied: bool,
    /// The prune that followed, if asked.
    pub pruned: Option<PruneReport>,
}

impl Repository {
    /// The stored retention settings (empty when none were ever set).
    pub fn retention_settings(&self) -> Result<RetentionSettings> {
        if !self.backend.exists(RETENTION_FILE)? {
            return Ok(RetentionSettings::default());
        }
        let bytes = self.backend.read(RETENTION_FILE)?;
        let body = self
            .store
            .cipher()
            .read_file(Kind::Retention, RETENTION_FILE, &bytes)
            .map_err(|e| Error::decode("retention settings", e))?;
        format::decode(&body).map_err(|e| Error::decode("retention settings", e))
    }

    /// Replaces the stored retention settings (atomically; sealed if encrypted).
    pub fn set_retention_settings(&self, settings: &RetentionSettings) -> Result<()> {
        Policy::from_settings(settings).map_err(|e| Error::BadInput(e.to_string()))?;
        let file = self.store.cipher().write_file(
            Kind::Retention,
            RETENTION_FILE,
            &format::encode_named(settings),
        );
        self.backend.write_atomic(RETENTION_FILE, &file)
    }

    /// The policy `forget` applies without rules on the command line.
    pub fn stored_policy(&self) -> Result<Policy> {
        Policy::from_settings(&self.retention_settings()?)
            .map_err(|e| Error::BadInput(format!("stored retention settings: {e}")))
    }

    /// Plans a forget: `policy` (or the stored one when `None`) applied to each
    /// database, or only to `db` if given. Changes nothing. An empty policy is
    /// refused (exit 2, "no retention rule given").
    pub fn forget_plan(
        &self,
        policy: Option<&Policy>,
        db: Option<&Path>,
        now_ns: i64,
        offset: UtcOffset,
    ) -> Result<Plan> {
        let stored;
        let policy = match policy {
            Some(p) => p,
            None => {
                stored = self.stored_policy()?;
                &stored
            }
        };
        let db = db.map(super::source_key);
        let items: Vec<Item> = self
            .list()?
            .into_iter()
            .filter(|s| db.as_ref().is_none_or(|d| &s.record.source == d))
            .map(|s| Item {
                id: s.id,
                time_ns: s.record.time_ns,
                group: s.record.source,
                tags: s.record.tags,
            })
            .collect();
        retention::plan(&items, policy, now_ns, offset).map_err(|e| Error::BadInput(e.to_string()))
    }

    /// Plans and (unless `dry_run`) applies a forget, then prunes with
    /// `prune_max_unused` percent if given — what the app calls after a backup
    /// with `Policy::keep_last(BackupConfig.retention)`.
    pub fn forget(
        &mut self,
        policy: Option<&Policy>,
        db: Option<&Path>,
        dry_run: bool,
        prune_max_unused: Option<f64>,
        offset: UtcOffset,
        progress: &dyn crate::progress::Progress,
    ) -> Result<ForgetReport> {
        let now = i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos())
            .map_err(|_| Error::BadInput("clock out of range".into()))?;
        let plan = self.forget_plan(policy, db, now, offset)?;
        if dry_run {
            return Ok(ForgetReport {
                plan,
                applied: false,
                pruned: None,
            });
        }
        self.forget_apply(&plan)?;
        let pruned = match prune_max_unused {
            Some(max) => Some(self.prune(max, progress)?),
            None => None,
        };
        Ok(ForgetReport {
            plan,
            applied: true,
            pruned,
        })
    }

    /// Removes the snapshots a plan does not keep.
    pub fn forget_apply(&mut self, plan: &Plan) -> Result<()> {
        let removed: Vec<_> = plan.removed().map(|d| d.id).collect();
        if removed.is_empty() {
            return Ok(());
        }
        for id in &removed {
            self.backend.remove(&snapshot::snapshot_path(id))?;
            self.forget_changes(id)?;
        }
        crate::backend::local::sync_dir(&self.root.join("snapshots"))?;
        crate::testhook::point("forget-after-files");
        self.index.apply(&IndexUpdate {
            remove_snapshots: removed,
            ..Default::default()
        })
    }
}
