//! Retention (`forget`) and the repository's stored retention settings.
//!
//! The decision is [`crate::retention`]'s pure plan; this file reads the
//! snapshots and settings it needs and applies a plan: snapshot files are
//! deleted first (the folder fsynced, so a forgotten snapshot cannot come back
//! after the prune that follows has deleted its data), then the index drops them.
//! A crash in between is repaired on the next open (indexed snapshots whose
//! files are gone are dropped).

use std::path::Path;

use jiff::tz::TimeZone;
use serde::Serialize;

use super::Repository;
use crate::error::{Error, Result};
use crate::format::RetentionSettings;
use crate::index::IndexUpdate;
use crate::retention::{self, Item, Plan, Policy};
use crate::snapshot;
use crate::store::files;

use super::PruneReport;

/// What `forget` decided and did.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
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
        Ok(
            files::get_optional(self.backend.as_ref(), self.store.cipher(), "")?
                .unwrap_or_default(),
        )
    }

    /// Replaces the stored retention settings (atomically; sealed if encrypted).
    pub fn set_retention_settings(&self, settings: &RetentionSettings) -> Result<()> {
        Policy::from_settings(settings).map_err(|e| Error::invalid_input(e.to_string()))?;
        files::save(
            self.backend.as_ref(),
            self.store.cipher(),
            self.store.format(),
            "",
            settings,
        )
    }

    /// The policy `forget` applies without rules on the command line.
    pub fn stored_policy(&self) -> Result<Policy> {
        Policy::from_settings(&self.retention_settings()?)
            .map_err(|e| Error::invalid_input(format!("stored retention settings: {e}")))
    }

    /// Plans a forget: `policy` (or the stored one when `None`) applied to each
    /// database, or only to `db` if given. Changes nothing. An empty policy is
    /// refused (exit 2, "no retention rule given"). Local-time buckets are in
    /// `tz`. A plan that keeps none of a database's snapshots or removes its
    /// newest lists it in [`Plan::dangers`] (see [`refuse_dangers`]).
    pub fn forget_plan(
        &self,
        policy: Option<&Policy>,
        db: Option<&Path>,
        now_ns: i64,
        tz: &TimeZone,
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
        let (items, unverified) = self.items()?;
        let items: Vec<Item> = items
            .into_iter()
            .filter(|it| db.as_ref().is_none_or(|d| &it.group == d))
            .collect();
        let mut plan = retention::plan(&items, policy, now_ns, tz).map_err(|e| match e {
            retention::PolicyError::Empty => {
                Error::invalid_input(e.to_string()).with_remedy(crate::error::Remedy::GiveRules)
            }
            e => Error::invalid_input(e.to_string()),
        })?;
        plan.policy = policy.describe();
        plan.unverified = unverified;
        Ok(plan)
    }

    /// Every snapshot whose record verifies (store-format.md 4.10: on the
    /// history chain, or among the snapshots it began with) as the retention
    /// policy sees it, with its place in history; and a line for each other
    /// snapshot. A forged or inserted snapshot is never counted, so it cannot
    /// make a real one eligible for removal, and is never removed by a policy.
    fn items(&self) -> Result<(Vec<Item>, Vec<String>)> {
        let trusted = self.chain_state()?.report.trusted;
        let mut items = Vec::new();
        let mut unverified = Vec::new();
        for s in self.list()? {
            if !trusted.contains(&s.id) {
                unverified.push(format!(
                    "snapshot {} of {} is not on the history chain (inserted or forged): \
                     not counted and not removed; run `verify`",
                    s.id.short(),
                    s.record.source
                ));
                continue;
            }
            items.push(Item {
                id: s.id,
                time_ns: s.record.time_ns,
                group: s.record.source,
                tags: s.record.tags,
                order: items.len() as u64,
            });
        }
        Ok((items, unverified))
    }

    /// Plans forgetting the snapshots `specs` name (ids, unique prefixes, or
    /// `latest` of `db`); every other snapshot of their databases is kept.
    /// Reads no data, so it works when the snapshots reference missing chunks.
    pub fn forget_named_plan(&self, specs: &[String], db: Option<&Path>) -> Result<Plan> {
        let mut named = Vec::new();
        for spec in specs {
            let id = self.resolve_in(spec, db)?.id;
            if !named.contains(&id) {
                named.push(id);
            }
        }
        let mut items = self.items()?.0;
        // A snapshot named by the user is removed even when it does not
        // verify (removing a forged one is how the user gets rid of it).
        for s in self.list()? {
            if named.contains(&s.id) && !items.iter().any(|it| it.id == s.id) {
                items.push(Item {
                    id: s.id,
                    time_ns: s.record.time_ns,
                    group: s.record.source,
                    tags: s.record.tags,
                    order: items.len() as u64,
                });
            }
        }
        let mut plan = retention::plan_named(&items, &named);
        plan.policy = format!(
            "forget {}",
            named
                .iter()
                .map(|id| id.short())
                .collect::<Vec<_>>()
                .join(" ")
        );
        Ok(plan)
    }

    /// Plans and (unless `dry_run`) applies a forget, then prunes with
    /// `prune_max_unused` percent if given — what the app calls after a backup
    /// with `Policy::keep_last(BackupConfig.retention)`. A dangerous plan is
    /// refused (exit 2); apply one deliberately with [`Self::forget_apply`].
    pub fn forget(
        &mut self,
        policy: Option<&Policy>,
        db: Option<&Path>,
        dry_run: bool,
        prune_max_unused: Option<f64>,
        tz: &TimeZone,
        progress: &dyn crate::progress::Progress,
    ) -> Result<ForgetReport> {
        crate::progress::operation(progress, |p| {
            self.forget_inner(policy, db, dry_run, prune_max_unused, tz, p)
        })
    }

    fn forget_inner(
        &mut self,
        policy: Option<&Policy>,
        db: Option<&Path>,
        dry_run: bool,
        prune_max_unused: Option<f64>,
        tz: &TimeZone,
        progress: &dyn crate::progress::Progress,
    ) -> Result<ForgetReport> {
        let now = i64::try_from(crate::testhook::now().unix_timestamp_nanos())
            .map_err(|_| Error::internal("the clock is out of range"))?;
        let plan = self.forget_plan(policy, db, now, tz)?;
        if dry_run {
            return Ok(ForgetReport {
                plan,
                applied: false,
                pruned: None,
            });
        }
        refuse_dangers(&plan)?;
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
        // The deletion goes on the chain first: a crash before the files are
        // gone leaves them listed, never missing without a record.
        let policy = if plan.policy.is_empty() {
            "forget"
        } else {
            plan.policy.as_str()
        };
        let entries = self.deletion_entries(&removed);
        let deferred = match self.append_deletion(entries.clone(), policy) {
            Ok(()) => None,
            // A full disk (forget must work there, to make room): the
            // record is written after the files are gone, which frees the
            // blocks it needs. A crash in between shows the snapshots as
            // missing (prune then keeps their data; `repair snapshots`
            // records the loss): a false alarm, never a silent loss.
            Err(e) if e.is_no_space() => Some(entries),
            Err(e) => return Err(e),
        };
        crate::testhook::point("forget-after-record");
        for id in &removed {
            self.backend.remove(&snapshot::snapshot_path(id))?;
            self.forget_changes(id)?;
        }
        self.backend.sync_dir(crate::layout::SNAPSHOTS)?;
        if let Some(entries) = deferred {
            self.append_deletion(entries, policy)?;
        }
        crate::testhook::point("forget-after-files");
        self.index.apply(&IndexUpdate {
            remove_snapshots: removed,
            ..Default::default()
        })
    }
}

/// Refuses (exit 2, saying what the plan would do) a plan that keeps none of a
/// database's snapshots or removes its newest; the CLI skips this check only
/// with `--allow-empty`.
pub fn refuse_dangers(plan: &Plan) -> Result<()> {
    if plan.dangers.is_empty() {
        return Ok(());
    }
    Err(
        Error::refused(format!("forget refused: {}", plan.dangers.join("; ")))
            .with_remedy(crate::error::Remedy::AllowEmpty),
    )
}
