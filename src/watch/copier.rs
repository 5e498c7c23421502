//! The watcher's copies to remote locations, on a thread of their own so that
//! a slow or unreachable remote never holds up a snapshot.
//!
//! After each snapshot (and once at start, to catch up) every remote is
//! marked behind; the copier sends each one what it lacks with
//! [`Repository::copy_to`] (every snapshot: the remote mirrors the
//! repository, deletions included). A remote that fails is reported, recorded
//! ([`Health`]) and tried again with backoff, without holding up the others.
//!
//! The copy reads the repository under its shared lock, which a snapshot's
//! write lock waits for (or, when the app shares its open repository,
//! `WatchOptions::shared`, holding that repository's mutex, which the app's
//! own calls then wait for until the copy ends). So the snapshot step raises
//! [`Gate`] first: the copy stops at its next pack (a copy resumes without
//! resending what arrived), lets the snapshot through, and starts again once
//! the gate is down.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;

use super::run::{backoff, lock_shared, ns, report_failure, Failed, SHARED_POLL};
use super::{Stop, WatchEvent, WatchOptions};
use crate::backend::Location;
use crate::error::{Error, Result};
use crate::health::{Health, Subject};
use crate::progress::{PhaseInfo, Progress};
use crate::repo::{CopyOptions, CopyReport, Repository};

/// Shared by the watcher's two threads.
#[derive(Default)]
pub(super) struct Gate {
    /// The snapshot step wants the repository: a copy under way yields.
    pub want_repo: AtomicBool,
    /// Something was recorded since the last copies: every remote is behind.
    pub behind: AtomicBool,
}

/// Holds the gate up while alive.
pub(super) struct Raised<'a>(&'a Gate);

impl Gate {
    /// Raises the gate until the guard drops.
    pub(super) fn raise(&self) -> Raised<'_> {
        self.want_repo.store(true, Ordering::SeqCst);
        Raised(self)
    }
}

impl Drop for Raised<'_> {
    fn drop(&mut self) {
        self.0.want_repo.store(false, Ordering::SeqCst);
    }
}

/// One remote and how it fares.
struct Remote {
    text: String,
    location: Location,
    behind: bool,
    failures: u32,
    retry_at_ns: i64,
}

/// Cancels a copy when the watcher stops or a snapshot wants the repository.
struct YieldProgress<'a> {
    stop: &'a Stop,
    gate: &'a Gate,
}

impl Progress for YieldProgress<'_> {
    fn phase(&self, _info: &PhaseInfo<'_>) {}
    fn advance(&self, _n: u64) {}
    fn cancelled(&self) -> bool {
        self.stop.stopped() || self.gate.want_repo.load(Ordering::SeqCst)
    }
}

/// The remotes parsed, each refused with a clear error when it is not a
/// location or is the repository itself.
pub(super) fn parse_remotes(opts: &WatchOptions) -> Result<Vec<(String, Location)>> {
    opts.remotes
        .iter()
        .map(|text| {
            let location = Location::parse(text)
                .map_err(|e| Error::invalid_input(format!("remote location {text:?}: {e}")))?;
            if location.to_string() == opts.location.to_string() {
                return Err(Error::invalid_input(format!(
                    "remote location {text} is the repository itself: give another place"
                )));
            }
            Ok((text.clone(), location))
        })
        .collect()
}

/// The copier thread's state.
pub(super) struct Copier {
    source: Location,
    /// The app's repository, when it holds it open (`WatchOptions::shared`).
    shared: Option<super::SharedRepository>,
    open: crate::repo::OpenOptions,
    copy: CopyOptions,
    remotes: Vec<Remote>,
    check_every: std::time::Duration,
    clock: Arc<dyn super::Clock>,
    state: Option<PathBuf>,
    stop: Arc<Stop>,
    gate: Arc<Gate>,
    tx: Sender<WatchEvent>,
    /// A copy was cut short by the watcher stopping.
    pub(super) abandoned: bool,
}

impl Copier {
    pub(super) fn new(
        opts: &WatchOptions,
        remotes: Vec<(String, Location)>,
        state: Option<PathBuf>,
        stop: Arc<Stop>,
        gate: Arc<Gate>,
        tx: Sender<WatchEvent>,
    ) -> Self {
        let mut copy = CopyOptions {
            lock_wait: opts.open.lock_wait,
            purpose: "watch copy".into(),
            ..CopyOptions::default()
        };
        // A remote the watcher creates is sealed like the repository, under
        // the same passphrase (and master key: the copies are mirrors).
        copy.passphrase = opts.open.passphrase.clone();
        Copier {
            source: opts.location.clone(),
            shared: opts.shared.clone(),
            open: crate::repo::OpenOptions {
                purpose: "watch copy".into(),
                ..opts.open.clone()
            },
            copy,
            remotes: remotes
                .into_iter()
                .map(|(text, location)| Remote {
                    text,
                    location,
                    behind: true,
                    failures: 0,
                    retry_at_ns: i64::MIN,
                })
                .collect(),
            check_every: opts.check_every,
            clock: Arc::clone(&opts.clock),
            state,
            stop,
            gate,
            tx,
            abandoned: false,
        }
    }

    /// Runs until the watcher stops.
    pub(super) fn run(mut self) -> bool {
        while !self.stop.stopped() {
            if self.gate.behind.swap(false, Ordering::SeqCst) {
                for r in &mut self.remotes {
                    r.behind = true;
                }
            }
            for i in 0..self.remotes.len() {
                if self.stop.stopped() || self.gate.want_repo.load(Ordering::SeqCst) {
                    break;
                }
                let r = &self.remotes[i];
                if r.behind && self.clock.now_ns() >= r.retry_at_ns {
                    self.copy_one(i);
                }
            }
            if self.stop.sleep(self.check_every) {
                break;
            }
        }
        self.abandoned
    }

    /// One copy to remote `i`, as the loop makes it (tests).
    #[cfg(test)]
    pub(super) fn copy_once_for_test(&mut self, i: usize) {
        self.copy_one(i);
    }

    fn copy_one(&mut self, i: usize) {
        let progress = YieldProgress {
            stop: &self.stop,
            gate: &self.gate,
        };
        match self.copy(&self.remotes[i].location, &progress) {
            Ok(report) => {
                let r = &mut self.remotes[i];
                r.behind = false;
                r.failures = 0;
                r.retry_at_ns = i64::MIN;
                if let Some(dir) = &self.state {
                    let what = match &report.chain_head {
                        Some(h) => format!("copy up to chain head {}", h.short()),
                        None => "copy".to_string(),
                    };
                    let subject = Subject::Remote(r.text.clone());
                    let _ = Health::record_success(dir, &self.source, &subject, &what);
                }
                let _ = self.tx.send(WatchEvent::CopyDone {
                    remote: self.remotes[i].text.clone(),
                    copied: report.copied.len(),
                    removed: report.snapshots_removed,
                    bytes_sent: report.bytes_sent,
                });
            }
            // Cut short by a snapshot (tried again once it is done) or by the
            // watcher stopping: not a failure, and what arrived stays.
            Err(e) if e.is_cancelled() => {
                if self.stop.stopped() {
                    self.abandoned = true;
                }
            }
            Err(e) => self.failed(i, &e),
        }
    }

    /// One copy. The remote is looked at before the repository is opened,
    /// so an unreachable one does not hold the repository's lock while its
    /// requests time out.
    fn copy(&self, dest: &Location, progress: &dyn Progress) -> Result<CopyReport> {
        match Repository::is_encrypted_at(dest) {
            Ok(_) => {}
            Err(e) if e.kind() == crate::ErrorKind::NoRepository => {}
            Err(e) => return Err(e),
        }
        Repository::check_cancel(progress)?;
        if let Some(shared) = &self.shared {
            // The app holds the repository (and its lock): copy from it,
            // holding it until the copy ends or yields to a snapshot.
            let slot = lock_shared(shared, || {
                std::thread::sleep(SHARED_POLL);
                progress.cancelled()
            });
            // Given up only when cancelled (the watcher stops, or a snapshot
            // wants the repository).
            let Some(slot) = slot else {
                return Err(crate::error::Repr::Cancelled.into());
            };
            if let Some(repo) = slot.as_ref().filter(|r| *r.location() == self.source) {
                return repo.copy_to(dest, None, &self.copy, progress);
            }
        }
        let repo = Repository::open_read_only_at(&self.source, &self.open)?;
        repo.copy_to(dest, None, &self.copy, progress)
    }

    fn failed(&mut self, i: usize, e: &Error) {
        let now = self.clock.now_ns();
        let r = &mut self.remotes[i];
        r.failures = r.failures.saturating_add(1);
        let retry_in = backoff(r.failures);
        r.retry_at_ns = now.saturating_add(ns(retry_in));
        let subject = Subject::Remote(r.text.clone());
        let f = Failed {
            db: None,
            remote: Some(r.text.clone()),
            operation: "copy",
            message: e.to_string(),
            retry_in,
            in_a_row: r.failures,
        };
        report_failure(self.state.as_deref(), &self.source, &self.tx, &subject, f);
    }
}
