//! The watcher: snapshots several databases by themselves, on a schedule
//! and/or when they change, on a background thread, and reports what it does
//! as typed [`WatchEvent`]s on a channel. `lumina-backup watch` is a thin
//! loop over it; an app runs it in-process (it is `Send`; [`Watcher::stop`]
//! returns within seconds).
//!
//! Each tick (every [`WatchOptions::check_every`]) and for each database:
//! a scheduled snapshot is due ([`due`]) or, with on-change, the database's
//! files differ from the last look ([`probe::Fingerprint`]) and `min_gap` has
//! passed since its last snapshot. Then the exact state is compared with the
//! newest snapshot's ([`probe::state_now`]): equal, nothing is recorded
//! ([`WatchEvent::SkippedUnchanged`]); different, the repository is opened
//! (its lock held only for the snapshot and the retention after it), the
//! snapshot taken, retention applied, and the repository closed again. An
//! idle database costs a few `stat`s and a 32-byte header read per tick.
//! A failure is recorded ([`crate::Health`]) and reported, and the step is
//! retried with backoff (2 s doubling to 5 min) without holding up the other
//! databases. Stopping cancels a snapshot under way through
//! [`Progress::cancelled`]: it records nothing and leaves the repository as it
//! was.
//!
//! After each snapshot the repository is copied to each of
//! [`WatchOptions::remotes`] on a second thread ([`copier`]): a remote that is
//! slow or down never holds up a snapshot, and a failed copy is reported and
//! tried again with backoff. With [`WatchOptions::restore_drill`] each
//! database's newest snapshot is restored to a temporary file and checked
//! (`verify --restore-test`) at that interval; the time of the last drill is
//! kept with the failure reports, so a watcher restarted daily still drills
//! weekly.
//!
//! An app that holds the repository open itself (its lock with it) shares it
//! through [`WatchOptions::shared`]; the watcher then snapshots in that
//! repository instead of opening its own.

mod copier;
mod due;
mod probe;
mod run;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Serialize;

use crate::backend::Location;
use crate::config_file::Schedule;
use crate::error::{Error, Result};
use crate::repo::OpenOptions;
use crate::retention::Policy;

pub use due::Slot;

/// The time the watcher runs by (injectable for tests and apps).
pub trait Clock: Send + Sync {
    /// Now, in unix nanoseconds.
    fn now_ns(&self) -> i64;
}

/// The system clock (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ns(&self) -> i64 {
        i64::try_from(crate::testhook::now().unix_timestamp_nanos()).unwrap_or(i64::MAX)
    }
}

/// A clock set by hand (tests; an app simulating a sleep).
#[derive(Debug, Default)]
pub struct ManualClock(std::sync::atomic::AtomicI64);

impl ManualClock {
    /// A clock showing `ns`.
    pub fn new(ns: i64) -> Self {
        ManualClock(std::sync::atomic::AtomicI64::new(ns))
    }
    /// Sets it.
    pub fn set(&self, ns: i64) {
        self.0.store(ns, Ordering::SeqCst);
    }
    /// Moves it forward.
    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.as_nanos()).unwrap_or(i64::MAX);
        self.0.fetch_add(by, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ns(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// One watched database and when it is snapshotted.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct WatchedDatabase {
    /// The database file.
    pub path: PathBuf,
    /// The schedule (`Manual`: only on change).
    pub schedule: Schedule,
    /// Where in the day, week or month a calendar schedule runs.
    pub slot: Slot,
    /// Also snapshot when it changes.
    pub on_change: bool,
    /// Least time between two snapshots taken on change.
    pub min_gap: Duration,
    /// Tags of its snapshots.
    pub tags: Vec<String>,
}

impl WatchedDatabase {
    /// A database snapshotted on `schedule` (no on-change, 60 s min gap).
    pub fn new(path: impl Into<PathBuf>, schedule: Schedule) -> Self {
        WatchedDatabase {
            path: path.into(),
            schedule,
            slot: Slot::default(),
            on_change: false,
            min_gap: Duration::from_secs(60),
            tags: Vec::new(),
        }
    }
}

/// How a watcher runs.
#[non_exhaustive]
pub struct WatchOptions {
    /// The repository (it must exist).
    pub location: Location,
    /// How it is opened (passphrase, lock wait).
    pub open: OpenOptions,
    /// The databases.
    pub databases: Vec<WatchedDatabase>,
    /// Retention after each snapshot: this policy, or `None` for the one
    /// stored in the repository (none stored: no retention).
    pub retention: Option<Policy>,
    /// Remote locations (a folder or a location URL) the repository is
    /// copied to after each snapshot, and once at start.
    pub remotes: Vec<String>,
    /// Run a restore drill of each database's newest snapshot this often
    /// (`None`: never).
    pub restore_drill: Option<Duration>,
    /// How often the databases are looked at.
    pub check_every: Duration,
    /// The clock schedules are computed by.
    pub clock: Arc<dyn Clock>,
    /// The time zone of calendar schedules.
    pub tz: crate::TimeZone,
    /// Where failure reports are written (`None`: the user's state folder,
    /// [`crate::Health`]).
    pub state_dir: Option<PathBuf>,
    /// A repository the app already holds open (and with it the repository's
    /// lock, which would refuse the watcher's own open): while this slot holds
    /// the repository at [`Self::location`], the watcher uses it, waiting for
    /// the mutex, instead of opening its own. Empty, or holding another
    /// repository: the watcher opens its own, as without it (`None`).
    pub shared: Option<SharedRepository>,
}

/// An open repository an app shares with its watcher
/// ([`WatchOptions::shared`]); `None` inside while the app has none open.
pub type SharedRepository = Arc<Mutex<Option<crate::repo::Repository>>>;

impl WatchOptions {
    /// Options for `databases` in the repository at `location`, checked every
    /// second by the system clock in the local zone.
    pub fn new(location: Location, open: OpenOptions, databases: Vec<WatchedDatabase>) -> Self {
        WatchOptions {
            location,
            open,
            databases,
            retention: None,
            remotes: Vec::new(),
            restore_drill: None,
            check_every: Duration::from_secs(1),
            clock: Arc::new(SystemClock),
            tz: crate::local_zone(),
            state_dir: None,
            shared: None,
        }
    }
}

/// Why a snapshot was taken or looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trigger {
    /// Its schedule was due.
    Schedule,
    /// Its files changed (on-change).
    Change,
}

impl Trigger {
    /// Its name in JSON and in hook environments: `schedule` or `change`.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Change => "change",
        }
    }
}

/// What the watcher did, in order.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum WatchEvent {
    /// It runs, over these databases.
    Started {
        /// The databases.
        databases: Vec<PathBuf>,
    },
    /// A snapshot was recorded.
    SnapshotTaken {
        /// The database.
        db: PathBuf,
        /// The snapshot's id (hex).
        snapshot: String,
        /// Why.
        trigger: Trigger,
        /// Bytes it added to the repository.
        new_bytes: u64,
        /// Snapshots retention removed after it.
        forgotten: usize,
    },
    /// The database equals its newest snapshot: nothing recorded.
    SkippedUnchanged {
        /// The database.
        db: PathBuf,
        /// Why it was looked at.
        trigger: Trigger,
    },
    /// A remote location now holds every snapshot.
    CopyDone {
        /// The remote.
        remote: String,
        /// Snapshots this copy sent.
        copied: usize,
        /// Snapshots it removed there (forgotten here).
        removed: u64,
        /// Bytes it wrote there.
        bytes_sent: u64,
    },
    /// A restore drill passed: the snapshot restored, every chunk verified,
    /// and SQLite's checks passed on the restored file.
    DrillPassed {
        /// The database.
        db: PathBuf,
        /// The snapshot drilled (short id).
        snapshot: String,
        /// What was checked, one line each.
        checked: Vec<String>,
    },
    /// A step failed; it is retried after `retry_in`.
    Failure {
        /// The database, if the step concerned one.
        db: Option<PathBuf>,
        /// The remote, if the step concerned one.
        remote: Option<String>,
        /// `open`, `snapshot`, `retention`, `copy`, `restore-drill`.
        operation: String,
        /// The error message.
        message: String,
        /// Failures of this database (or remote) in a row.
        consecutive: u32,
        /// When it is tried again.
        #[serde(with = "secs")]
        retry_in: Duration,
    },
    /// Something to know that is not a failure.
    Notice {
        /// The message.
        message: String,
    },
    /// It stopped (the last event).
    Stopped {
        /// A step under way was abandoned (a snapshot recorded nothing; a
        /// copy's next run sends the rest).
        abandoned: bool,
    },
}

mod secs {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }
}

/// The stop flag and the condition variable the thread sleeps on.
#[derive(Default)]
struct Stop {
    flag: Arc<AtomicBool>,
    lock: Mutex<()>,
    wake: Condvar,
}

impl Stop {
    fn stopped(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
    /// Sleeps `d` or until stopped; returns whether it was stopped.
    fn sleep(&self, d: Duration) -> bool {
        let guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        if self.stopped() {
            return true;
        }
        let _ = self.wake.wait_timeout(guard, d);
        self.stopped()
    }
    fn set(&self) {
        self.flag.store(true, Ordering::SeqCst);
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        self.wake.notify_all();
    }
}

/// A running watcher (module docs). Dropping it stops it too.
pub struct Watcher {
    stop: Arc<Stop>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("running", &self.is_running())
            .finish()
    }
}

impl Watcher {
    /// Starts watching on a background thread; its events arrive on the
    /// receiver, the last one [`WatchEvent::Stopped`]. Fails at once (bad
    /// input) without databases.
    pub fn start(opts: WatchOptions) -> Result<(Watcher, Receiver<WatchEvent>)> {
        if opts.databases.is_empty() {
            return Err(Error::invalid_input(
                "nothing to watch: name a database (or list them in the configuration file)",
            ));
        }
        for d in &opts.databases {
            if d.schedule == Schedule::Manual && !d.on_change {
                return Err(Error::invalid_input(format!(
                    "{}: no schedule and no on-change, so it would never be snapshotted: give a schedule (--every 15m) or --on-change",
                    d.path.display()
                )));
            }
        }
        copier::parse_remotes(&opts)?;
        if opts.restore_drill.is_some_and(|d| d.is_zero()) {
            return Err(Error::invalid_input(
                "a restore drill interval of 0 would drill without pause: give one like 7d",
            ));
        }
        let (tx, rx) = channel();
        let stop = Arc::new(Stop::default());
        let thread_stop = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("lumina-backup-watch".into())
            .spawn(move || run::Run::new(opts, thread_stop, tx).run())
            .map_err(|e| Error::internal(format!("cannot start the watcher thread: {e}")))?;
        Ok((
            Watcher {
                stop,
                thread: Some(thread),
            },
            rx,
        ))
    }

    /// Whether the thread still runs.
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// The flag that stops the watcher: setting it (from a signal handler,
    /// say: `signal_hook::flag::register`) cancels a snapshot under way at
    /// its next check, and the thread ends within [`WatchOptions::check_every`].
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.stop.flag)
    }

    /// Asks the watcher to stop without waiting; [`Self::stop`] waits.
    pub fn request_stop(&self) {
        self.stop.set();
    }

    /// Stops: a snapshot under way is cancelled (it records nothing), and the
    /// thread is joined (within seconds).
    pub fn stop(mut self) -> Result<()> {
        self.finish()
    }

    fn finish(&mut self) -> Result<()> {
        self.stop.set();
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| Error::internal("the watcher thread panicked")),
            None => Ok(()),
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

#[cfg(test)]
mod tests;
