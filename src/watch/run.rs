//! The watcher thread's loop (see the module docs of [`super`]).

use std::path::{Path, PathBuf};
use std::sync::mpsc::Sender;
use std::sync::{Arc, TryLockError};
use std::time::{Duration, Instant};

use super::copier::{self, Copier, Gate};
use super::probe::{self, Fingerprint};
use super::{due, Stop, Trigger, WatchEvent, WatchOptions, WatchedDatabase};
use crate::error::{Error, Repr, Result};
use crate::format::SourceState;
use crate::health::{Health, Subject};
use crate::progress::{PhaseInfo, Progress};
use crate::repo::{Repository, SnapshotOptions};

/// First retry delay after a failure; doubles up to [`BACKOFF_MAX`].
const BACKOFF_FIRST: Duration = Duration::from_secs(2);
const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// What the watcher knows of one database between ticks.
struct Db {
    cfg: WatchedDatabase,
    /// The newest snapshot's state (`None`: unknown, or never snapshotted).
    known: Option<SourceState>,
    /// Whether `known` was looked up in the repository.
    looked_up: bool,
    /// When the schedule last ran (or the newest snapshot was taken).
    last_run_ns: Option<i64>,
    /// When it was last snapshotted (on change or schedule).
    last_snapshot_ns: Option<i64>,
    /// The files as last seen in the known state.
    seen: Option<Fingerprint>,
    /// Since when the exact state could not be read (real time).
    unknown_since: Option<Instant>,
    /// When a change not yet snapshotted was first seen.
    pending_since: Option<i64>,
    /// Failures in a row, and when to try again.
    failures: u32,
    retry_at_ns: i64,
    /// When its last restore drill ran (`None`: never), failed drills in a
    /// row, and when the next may run.
    last_drill_ns: Option<i64>,
    drill_failures: u32,
    drill_retry_at_ns: i64,
}

/// Cancels a snapshot when the watcher stops.
struct StopProgress<'a>(&'a Stop);

impl Progress for StopProgress<'_> {
    fn phase(&self, _info: &PhaseInfo<'_>) {}
    fn advance(&self, _n: u64) {}
    fn cancelled(&self) -> bool {
        self.0.stopped()
    }
}

pub(super) struct Run {
    opts: WatchOptions,
    stop: Arc<Stop>,
    tx: Sender<WatchEvent>,
    dbs: Vec<Db>,
    abandoned: bool,
    /// The state folder of the failure reports (none known: not recorded).
    state: Option<PathBuf>,
    /// Shared with the copier thread.
    gate: Arc<Gate>,
}

pub(super) fn ns(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// How often a wait for the app's shared repository looks again.
pub(super) const SHARED_POLL: Duration = Duration::from_millis(20);

/// The app's shared repository, once its mutex is free; `None` when
/// `give_up` (called between tries, after a short wait of its own) says so.
pub(super) fn lock_shared<'a>(
    shared: &'a super::SharedRepository,
    give_up: impl Fn() -> bool,
) -> Option<std::sync::MutexGuard<'a, Option<Repository>>> {
    loop {
        match shared.try_lock() {
            Ok(slot) => return Some(slot),
            Err(TryLockError::Poisoned(p)) => return Some(p.into_inner()),
            Err(TryLockError::WouldBlock) => {
                if give_up() {
                    return None;
                }
            }
        }
    }
}

/// A failure to record (when there is a state folder) and report.
pub(super) struct Failed {
    pub db: Option<PathBuf>,
    pub remote: Option<String>,
    pub operation: &'static str,
    pub message: String,
    pub retry_in: Duration,
    /// Failures in a row as this thread counts them (used when the failure
    /// reports cannot be written).
    pub in_a_row: u32,
}

/// Records `f` as a failure of `subject` in the failure reports of the
/// repository at `location` and sends it as a [`WatchEvent::Failure`].
pub(super) fn report_failure(
    state: Option<&Path>,
    location: &crate::backend::Location,
    tx: &Sender<WatchEvent>,
    subject: &Subject,
    f: Failed,
) {
    let consecutive = state
        .and_then(|dir| {
            Health::record_failure(dir, location, subject, f.operation, &f.message).ok()
        })
        .unwrap_or(f.in_a_row);
    // The receiver gone is not the watcher's failure: it keeps backing up.
    let _ = tx.send(WatchEvent::Failure {
        db: f.db,
        remote: f.remote,
        operation: f.operation.to_string(),
        message: f.message,
        consecutive,
        retry_in: f.retry_in,
    });
}

/// How long to wait after the `failures`-th failure in a row.
pub(super) fn backoff(failures: u32) -> Duration {
    let shift = failures.saturating_sub(1).min(16);
    BACKOFF_FIRST.saturating_mul(1 << shift).min(BACKOFF_MAX)
}

impl Run {
    pub(super) fn new(opts: WatchOptions, stop: Arc<Stop>, tx: Sender<WatchEvent>) -> Self {
        let dbs = opts
            .databases
            .iter()
            .map(|cfg| Db {
                cfg: cfg.clone(),
                known: None,
                looked_up: false,
                last_run_ns: None,
                last_snapshot_ns: None,
                seen: None,
                unknown_since: None,
                pending_since: None,
                failures: 0,
                retry_at_ns: i64::MIN,
                last_drill_ns: None,
                drill_failures: 0,
                drill_retry_at_ns: i64::MIN,
            })
            .collect();
        let state = opts
            .state_dir
            .clone()
            .or_else(|| crate::health::state_dir().ok());
        let mut run = Run {
            opts,
            stop,
            tx,
            dbs,
            abandoned: false,
            state,
            gate: Arc::new(Gate::default()),
        };
        run.recall_drills();
        run
    }

    /// The time of each database's last restore drill, from the failure
    /// reports (a watcher restarted daily still drills weekly).
    fn recall_drills(&mut self) {
        if self.opts.restore_drill.is_none() {
            return;
        }
        let Some(dir) = &self.state else { return };
        let Ok(Some(h)) = Health::load_in(dir, &self.opts.location) else {
            return;
        };
        for db in &mut self.dbs {
            if let Some(e) = h.entry(&Subject::Drill(key(&db.cfg.path))) {
                let failed = e.last_failure.as_ref().map(|f| f.time_ns);
                db.last_drill_ns = e.last_success_ns.max(failed);
            }
        }
    }

    fn send(&self, e: WatchEvent) {
        // The receiver gone (the app stopped listening) is not the watcher's
        // failure: it keeps backing up.
        let _ = self.tx.send(e);
    }

    pub(super) fn run(mut self) {
        self.send(WatchEvent::Started {
            databases: self.dbs.iter().map(|d| d.cfg.path.clone()).collect(),
        });
        // Checked by `Watcher::start`.
        let remotes = copier::parse_remotes(&self.opts).unwrap_or_default();
        let copier = if remotes.is_empty() {
            None
        } else {
            self.gate
                .behind
                .store(true, std::sync::atomic::Ordering::SeqCst);
            let c = Copier::new(
                &self.opts,
                remotes,
                self.state.clone(),
                Arc::clone(&self.stop),
                Arc::clone(&self.gate),
                self.tx.clone(),
            );
            match std::thread::Builder::new()
                .name("lumina-backup-copy".into())
                .spawn(move || c.run())
            {
                Ok(t) => Some(t),
                Err(e) => {
                    self.send(WatchEvent::Notice {
                        message: format!("copies to remote locations are not made: cannot start their thread: {e}"),
                    });
                    None
                }
            }
        };
        while !self.stop.stopped() {
            for i in 0..self.dbs.len() {
                if self.stop.stopped() {
                    break;
                }
                self.tick(i);
                if !self.stop.stopped() {
                    self.drill_if_due(i);
                }
            }
            if self.stop.sleep(self.opts.check_every) {
                break;
            }
        }
        if let Some(t) = copier {
            // It sees the stop flag at its next pack or request.
            self.abandoned |= t.join().unwrap_or(false);
        }
        self.send(WatchEvent::Stopped {
            abandoned: self.abandoned,
        });
    }

    /// One look at database `i`.
    fn tick(&mut self, i: usize) {
        let now = self.opts.clock.now_ns();
        let tz = self.opts.tz.clone();
        let db = &self.dbs[i];
        if now < db.retry_at_ns {
            return;
        }
        if !db.looked_up {
            if let Err((op, e)) = self.look_up(i) {
                // Stopped while waiting for the app's shared repository:
                // not a failure.
                if !(e.is_cancelled() && self.stop.stopped()) {
                    self.failed(i, op, &e);
                }
                return;
            }
        }
        let print = Fingerprint::take(&self.dbs[i].cfg.path);
        let db = &mut self.dbs[i];
        let changed = !db.seen.as_ref().is_some_and(|s| s.same_as_before(&print));
        if changed && db.pending_since.is_none() {
            db.pending_since = Some(now);
        }
        let db = &self.dbs[i];
        let c = &db.cfg;
        let scheduled = due::is_due(c.schedule, c.slot, db.last_run_ns, now, &tz);
        let gap_passed = db
            .last_snapshot_ns
            .is_none_or(|t| now.saturating_sub(t) >= ns(c.min_gap) || t > now);
        // On change, a snapshot waits for the files to be quiet for RACY
        // (their state is then known exactly), or, under a writer that never
        // pauses, for min-gap (at least RACY) after the change was first seen.
        let overdue = ns(c.min_gap.max(crate::sqlite::unchanged::RACY));
        let quiet_or_overdue = print.settled()
            || db
                .pending_since
                .is_some_and(|p| now.saturating_sub(p) >= overdue || p > now);
        let trigger = if scheduled {
            Trigger::Schedule
        } else if c.on_change && changed && gap_passed && quiet_or_overdue {
            Trigger::Change
        } else {
            return;
        };
        let path = c.path.clone();
        if !changed && trigger == Trigger::Schedule {
            // The files are as at the last snapshot or look: unchanged.
            self.dbs[i].last_run_ns = Some(now);
            self.send(WatchEvent::SkippedUnchanged { db: path, trigger });
            return;
        }
        if let Some(since) = self.dbs[i].unknown_since {
            if !print.settled() && since.elapsed() < 2 * crate::sqlite::unchanged::RACY {
                // Waiting for the files to settle (below): no look meanwhile.
                return;
            }
        }
        let stop = Arc::clone(&self.stop);
        let state = probe::state_now(&path, &|| stop.stopped());
        // Not known exactly, most likely because a file is too recent (a
        // `-wal` the last snapshot created, say): wait up to twice RACY for it
        // to settle before snapshotting anyway.
        if state.is_none() && (db.known.is_some() || db.seen.is_some()) {
            let since = *self.dbs[i].unknown_since.get_or_insert_with(Instant::now);
            if since.elapsed() < 2 * crate::sqlite::unchanged::RACY {
                return;
            }
        }
        self.dbs[i].unknown_since = None;
        let db = &self.dbs[i];
        // The last snapshot could not record its state (its files were too
        // recent); they have not changed since just before it: it holds this
        // state.
        if db.known.is_none()
            && state.is_some()
            && db.seen.as_ref().is_some_and(|s| !s.differs(&print))
        {
            self.dbs[i].known = state.clone();
        }
        let db = &self.dbs[i];
        if db.known.is_some() && probe::same_state(db.known.as_ref(), state.as_ref()) {
            // Said once per change of the files (a checkpoint, say), not at
            // every tick while they are too recent to be trusted.
            let tell =
                trigger == Trigger::Schedule || db.seen.as_ref().is_none_or(|s| s.differs(&print));
            let db = &mut self.dbs[i];
            db.seen = Some(print);
            db.pending_since = None;
            if trigger == Trigger::Schedule {
                db.last_run_ns = Some(now);
            }
            let path = db.cfg.path.clone();
            if tell {
                self.send(WatchEvent::SkippedUnchanged { db: path, trigger });
            }
            return;
        }
        match self.snapshot(i) {
            Ok((id, new_bytes, forgotten, state)) => {
                let db = &mut self.dbs[i];
                db.known = state;
                db.seen = Some(print);
                db.pending_since = None;
                db.last_snapshot_ns = Some(now);
                db.last_run_ns = Some(now);
                db.failures = 0;
                db.retry_at_ns = i64::MIN;
                let path = db.cfg.path.clone();
                if let Some(dir) = &self.state {
                    let subject = Subject::Database(key(&path));
                    let _ = Health::record_success(dir, &self.opts.location, &subject, &id);
                }
                self.send(WatchEvent::SnapshotTaken {
                    db: path,
                    snapshot: id,
                    trigger,
                    new_bytes,
                    forgotten,
                });
            }
            Err((op, e)) if e.is_cancelled() && self.stop.stopped() => {
                let _ = op;
                self.abandoned = true;
            }
            Err((op, e)) => self.failed(i, op, &e),
        }
    }

    /// The newest snapshot of database `i`: its state and time.
    fn look_up(&mut self, i: usize) -> std::result::Result<(), (&'static str, Error)> {
        let path = &self.dbs[i].cfg.path;
        let newest = self.with_repository(false, |repo| {
            let source = canonical(path).map_err(|_| {
                (
                    "snapshot",
                    Error::invalid_input(format!(
                        "database {} does not exist (yet): watch tries again",
                        path.display()
                    )),
                )
            })?;
            let (newest, _) = repo.newest_of(&source).map_err(|e| ("open", e))?;
            Ok(newest)
        })?;
        let db = &mut self.dbs[i];
        if let Some(s) = newest {
            db.known = s.record.source_state.clone();
            db.last_run_ns = Some(s.record.time_ns);
            db.last_snapshot_ns = Some(s.record.time_ns);
        }
        db.looked_up = true;
        Ok(())
    }

    /// Snapshots database `i` and applies retention; (id, new bytes,
    /// forgotten, state), or the failed operation and its error.
    #[allow(clippy::type_complexity)]
    fn snapshot(
        &self,
        i: usize,
    ) -> std::result::Result<(String, u64, usize, Option<SourceState>), (&'static str, Error)> {
        // A copy under way yields the repository (its lock, or the app's
        // shared one) to us at its next pack.
        let _raised = self.gate.raise();
        self.with_repository(true, |repo| self.snapshot_in(repo, i))
    }

    /// [`Self::snapshot`] in the open repository.
    #[allow(clippy::type_complexity)]
    fn snapshot_in(
        &self,
        repo: &mut Repository,
        i: usize,
    ) -> std::result::Result<(String, u64, usize, Option<SourceState>), (&'static str, Error)> {
        let c = &self.dbs[i].cfg;
        let progress = StopProgress(&self.stop);
        let opts = SnapshotOptions {
            tags: c.tags.clone(),
            ..SnapshotOptions::default()
        };
        let s = match repo.snapshot(&c.path, &opts, &progress) {
            Ok(s) => s,
            Err(e) => {
                if !e.is_cancelled() {
                    let _ = repo.record_failure(
                        "watch snapshot",
                        &c.path.display().to_string(),
                        &e.to_string(),
                    );
                }
                return Err(("snapshot", e));
            }
        };
        let id = s.snapshot.id.to_hex();
        let state = s.snapshot.record.source_state.clone();
        // Recorded: the remotes are behind (even if retention fails next).
        self.gate
            .behind
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let forgotten = self
            .retention(repo, &c.path, &progress)
            .map_err(|e| ("retention", e))?;
        Ok((id, s.snapshot.record.new_bytes, forgotten, state))
    }

    /// Runs `f` in the app's shared repository when it holds this watcher's
    /// (waiting for it, unless the watcher is stopped meanwhile), else in one
    /// opened here: for writing (`write`, its lock exclusive) or reading.
    fn with_repository<T>(
        &self,
        write: bool,
        f: impl FnOnce(&mut Repository) -> std::result::Result<T, (&'static str, Error)>,
    ) -> std::result::Result<T, (&'static str, Error)> {
        if let Some(shared) = &self.opts.shared {
            let Some(mut slot) = lock_shared(shared, || self.stop.sleep(SHARED_POLL)) else {
                return Err(("open", Repr::Cancelled.into()));
            };
            if let Some(repo) = slot
                .as_mut()
                .filter(|r| *r.location() == self.opts.location)
            {
                return f(repo);
            }
        }
        let opened = if write {
            Repository::open_at(&self.opts.location, &self.opts.open)
        } else {
            Repository::open_read_only_at(&self.opts.location, &self.opts.open)
        };
        f(&mut opened.map_err(|e| ("open", e))?)
    }

    /// Applies the retention policy to one database's snapshots.
    fn retention(
        &self,
        repo: &mut Repository,
        db: &Path,
        progress: &dyn Progress,
    ) -> Result<usize> {
        let policy = match &self.opts.retention {
            Some(p) => Some(p.clone()),
            None => {
                let stored = repo.stored_policy()?;
                if stored.is_empty() {
                    return Ok(0);
                }
                None
            }
        };
        let report = repo.forget(
            policy.as_ref(),
            Some(db),
            false,
            None,
            &self.opts.tz,
            progress,
        )?;
        Ok(report.plan.removed().count())
    }

    /// Records and reports a failure of database `i`, and when to retry.
    fn failed(&mut self, i: usize, operation: &'static str, e: &Error) {
        let now = self.opts.clock.now_ns();
        let db = &mut self.dbs[i];
        db.failures = db.failures.saturating_add(1);
        let retry_in = backoff(db.failures);
        db.retry_at_ns = now.saturating_add(ns(retry_in));
        let path = db.cfg.path.clone();
        let subject = if operation == "open" {
            Subject::Repository
        } else {
            Subject::Database(key(&path))
        };
        let f = Failed {
            db: Some(path),
            remote: None,
            operation,
            message: e.to_string(),
            retry_in,
            in_a_row: db.failures,
        };
        report_failure(
            self.state.as_deref(),
            &self.opts.location,
            &self.tx,
            &subject,
            f,
        );
    }
}

impl Run {
    /// Runs database `i`'s restore drill when one is due: its newest snapshot
    /// restored to a temporary file, every chunk verified, SQLite's checks
    /// and the manifest's compared (`verify --restore-test`).
    fn drill_if_due(&mut self, i: usize) {
        let Some(every) = self.opts.restore_drill else {
            return;
        };
        let now = self.opts.clock.now_ns();
        let db = &self.dbs[i];
        let due = db.last_snapshot_ns.is_some()
            && now >= db.drill_retry_at_ns
            && db
                .last_drill_ns
                .is_none_or(|t| now.saturating_sub(t) >= ns(every) || t > now);
        if !due {
            return;
        }
        let path = db.cfg.path.clone();
        let subject = Subject::Drill(key(&path));
        let outcome = self.drill(&path);
        let db = &mut self.dbs[i];
        // A snapshot that fails its drill fails it again until the next
        // snapshot: drill again at the interval. A drill that could not run
        // (no temporary space, say) is tried with backoff.
        let (message, retry_in) = match outcome {
            Err(e) if e.is_cancelled() && self.stop.stopped() => return,
            Ok(None) => return,
            Ok(Some(report)) if report.problems.is_empty() => {
                db.last_drill_ns = Some(now);
                db.drill_failures = 0;
                if let Some(dir) = &self.state {
                    let what = format!("restore drill of snapshot {}", report.snapshot);
                    let _ = Health::record_success(dir, &self.opts.location, &subject, &what);
                }
                self.send(WatchEvent::DrillPassed {
                    db: path,
                    snapshot: report.snapshot,
                    checked: report.checked,
                });
                return;
            }
            Ok(Some(r)) => {
                db.last_drill_ns = Some(now);
                (
                    format!("snapshot {}: {}", r.snapshot, r.problems.join("; ")),
                    every,
                )
            }
            Err(e) => {
                db.drill_failures = db.drill_failures.saturating_add(1);
                (e.to_string(), backoff(db.drill_failures))
            }
        };
        db.drill_retry_at_ns = now.saturating_add(ns(retry_in));
        let f = Failed {
            db: Some(path),
            remote: None,
            operation: "restore-drill",
            message,
            retry_in,
            in_a_row: 1,
        };
        report_failure(
            self.state.as_deref(),
            &self.opts.location,
            &self.tx,
            &subject,
            f,
        );
    }

    /// The drill of the newest snapshot of `path` (`None`: it has none).
    fn drill(&self, path: &Path) -> Result<Option<crate::repo::DrillReport>> {
        let _raised = self.gate.raise();
        self.with_repository(false, |repo| {
            let source = canonical(path).map_err(|e| ("open", e))?;
            let (newest, _) = repo.newest_of(&source).map_err(|e| ("open", e))?;
            let Some(s) = newest else { return Ok(None) };
            let progress = StopProgress(&self.stop);
            let reports = repo
                .restore_drills(Some(&s.id.to_hex()), &progress)
                .map_err(|e| ("restore-drill", e))?;
            Ok(reports.into_iter().next())
        })
        .map_err(|(_, e)| e)
    }
}

/// The name a database is recorded under (its canonical path, as snapshots
/// record their source), or the path as given when it cannot be resolved.
fn key(path: &Path) -> String {
    canonical(path).unwrap_or_else(|_| path.display().to_string())
}

fn canonical(path: &Path) -> Result<String> {
    std::fs::canonicalize(path)
        .map(|p: PathBuf| p.to_string_lossy().into_owned())
        .map_err(|e| Error::io("resolving", path, e))
}
