//! Progress reporting for long operations, through a trait object the caller
//! supplies: the CLI draws it with indicatif, the desktop app with its own widgets.
//!
//! The contract an implementation can rely on, for one call of a public
//! operation of [`crate::Repository`] (`snapshot`, `restore*`, `read_file`,
//! `diff`, `verify*`, `prune*`, `forget`, `repair_snapshots*`, `rebuild_index`,
//! `export_snapshot`...):
//! - [`Progress::phase`] starts a phase and ends the previous one; one phase is
//!   current at a time, so the trait needs no per-phase handle. Its
//!   [`PhaseInfo`] says what is done ([`Phase`]), on what ([`PhaseInfo::detail`])
//!   and how much there is ([`PhaseInfo::total`], in the phase's [`Unit`]).
//! - [`Progress::advance`] counts work done in the current phase: the sum of its
//!   calls since the phase started never passes a known total.
//! - [`Progress::done`] is called exactly once when the operation returns, with
//!   its [`Outcome`]: on success, on any error, and on cancellation. An operation
//!   that runs another one inside it (a restore saving the database as a
//!   `pre-restore` snapshot first, `prune` = plan + apply, `forget` + prune)
//!   reports that one's phases but only its own `done`.
//!
//! What an app's widget needs (the cancel button sets `stop`):
//!
//! ```
//! use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
//! use std::sync::Mutex;
//! use lumina_backup::{Outcome, PhaseInfo, Progress, Unit};
//!
//! #[derive(Default)]
//! struct Widget {
//!     label: Mutex<String>,
//!     count: AtomicU64,
//!     total: AtomicU64,
//!     stop: AtomicBool,
//! }
//!
//! impl Progress for Widget {
//!     fn phase(&self, info: &PhaseInfo<'_>) {
//!         let noun = match info.unit() {
//!             Unit::Items(noun) => noun,
//!             _ => "", // bytes: format the count as MB; none: a spinner
//!         };
//!         *self.label.lock().unwrap() = format!("{:?} {} {noun}", info.phase, info.detail.unwrap_or(""));
//!         self.count.store(0, Relaxed);
//!         self.total.store(info.total.unwrap_or(0), Relaxed); // 0: unknown
//!     }
//!     fn advance(&self, n: u64) {
//!         self.count.fetch_add(n, Relaxed);
//!     }
//!     fn cancelled(&self) -> bool {
//!         self.stop.load(Relaxed)
//!     }
//!     fn done(&self, outcome: Outcome) {
//!         *self.label.lock().unwrap() = format!("{outcome:?}");
//!     }
//! }
//! ```
//!
//! Inside the library, `operation` wraps each public operation in an `Op`
//! that enforces this contract; nothing else calls `done`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::error::Result;

/// What a long operation is doing. Each phase counts in one fixed [`Unit`]
/// ([`Phase::unit`]); new phases may be added in minor versions.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Snapshot: opening the database, waiting until it can be read
    /// consistently (a busy writer may hold it for a while), and copying its
    /// pages to a private file (`sqlite::staging`, the only time the
    /// app's lock is held). Detail: the database path. No count.
    OpenDatabase,
    /// Snapshot: reading the database image into the repository. Bytes; detail:
    /// the image's file name; total: the image size.
    Capture,
    /// Snapshot: writing one table export (JSON) into the snapshot. Bytes;
    /// detail: the export's file name; total unknown.
    Export,
    /// Snapshot: returning the index's free space after a large snapshot. No count.
    CompactIndex,
    /// Restore, diff, export, `read_file`: reassembling one file of a snapshot,
    /// every chunk and the whole file verified. Bytes; detail: the file's name in
    /// the snapshot; total: its size.
    ReadFile,
    /// Restore: SQLite's integrity check of the restored image, before it
    /// replaces anything. Detail: the target path. No count.
    CheckImage,
    /// Diff: comparing one table. Detail: the table name. No count.
    Diff,
    /// Verify: checking that every pack exists with its size and a readable
    /// description. Bytes (of pack files); total: their sum.
    VerifyPacks,
    /// Verify with `read_data`: reading every pack in full. Bytes; total: the
    /// packs' sum.
    ReadData,
    /// Verify: walking every snapshot's trees. Items: snapshots.
    VerifySnapshots,
    /// Prune (plan): walking every snapshot to find the data still referenced.
    /// Items: snapshots.
    FindReferences,
    /// Prune: copying live data out of mostly-unused packs. Bytes (of chunks).
    Repack,
    /// Prune: deleting packs no longer indexed. Items: packs.
    DeletePacks,
    /// Rebuilding the index from the pack files. Items: packs.
    RebuildIndex,
    /// Repair snapshots: finding the snapshots that need missing data. Items:
    /// snapshots.
    RepairSnapshots,
    /// `sql`: running a query on a snapshot's database. Items: result rows.
    Query,
}

impl Phase {
    /// What this phase's counts and total measure.
    pub fn unit(self) -> Unit {
        match self {
            Phase::Capture
            | Phase::Export
            | Phase::ReadFile
            | Phase::VerifyPacks
            | Phase::ReadData
            | Phase::Repack => Unit::Bytes,
            Phase::VerifySnapshots | Phase::FindReferences | Phase::RepairSnapshots => {
                Unit::Items("snapshots")
            }
            Phase::DeletePacks | Phase::RebuildIndex => Unit::Items("packs"),
            Phase::Query => Unit::Items("rows"),
            Phase::OpenDatabase | Phase::CompactIndex | Phase::CheckImage | Phase::Diff => {
                Unit::None
            }
        }
    }
}

/// What a phase's counts measure.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unit {
    /// Bytes (draw them as KiB, MiB...).
    Bytes,
    /// Whole items; the noun, in the plural ("snapshots", "packs").
    Items(&'static str),
    /// Nothing is counted: the phase never advances (draw a spinner).
    None,
}

/// The start of a phase: what, on what, and how much.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhaseInfo<'a> {
    /// What is being done.
    pub phase: Phase,
    /// The file, table or database it is done on, when there is one.
    pub detail: Option<&'a str>,
    /// How much there is to do, in [`Self::unit`], when known.
    pub total: Option<u64>,
}

impl<'a> PhaseInfo<'a> {
    /// A phase without detail or total.
    pub fn new(phase: Phase) -> Self {
        PhaseInfo {
            phase,
            detail: None,
            total: None,
        }
    }

    /// With the file, table or database it is done on.
    pub fn detail(self, detail: &'a str) -> Self {
        PhaseInfo {
            detail: Some(detail),
            ..self
        }
    }

    /// With the amount to do (in the phase's unit), if known.
    pub fn total(self, total: Option<u64>) -> Self {
        PhaseInfo { total, ..self }
    }

    /// What [`Self::total`] and the advances count.
    pub fn unit(&self) -> Unit {
        self.phase.unit()
    }
}

/// How an operation ended, as told to [`Progress::done`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// It returned `Ok`.
    Succeeded,
    /// It stopped because [`Progress::cancelled`] said so (an error whose
    /// [`Error::is_cancelled`](crate::Error::is_cancelled) is true).
    Cancelled,
    /// It returned any other error.
    Failed,
}

impl Outcome {
    /// The outcome of an operation's result.
    pub fn of<T>(result: &Result<T>) -> Self {
        match result {
            Ok(_) => Outcome::Succeeded,
            Err(e) if e.is_cancelled() => Outcome::Cancelled,
            Err(_) => Outcome::Failed,
        }
    }
}

/// Receives progress of a long operation (see the module documentation for
/// the order of calls). Implementations must be cheap: they are called often
/// (about once per MiB), from the thread that called the operation.
pub trait Progress: Send + Sync {
    /// A phase starts (and the previous one, if any, ends); its count starts at 0.
    fn phase(&self, info: &PhaseInfo<'_>);
    /// `n` more units of the current phase are done (never past its total).
    fn advance(&self, n: u64);
    /// Whether the caller asked to stop, asked between steps. The operation
    /// then fails with an error whose [`Error::is_cancelled`](crate::Error::is_cancelled) is true (a
    /// snapshot, after removing the data it wrote, says what became of it in
    /// [`Error::partial_data`](crate::Error::partial_data)) and
    /// leaves the repository and any restore target unchanged.
    fn cancelled(&self) -> bool {
        false
    }
    /// The operation ended, once, with `outcome` (also when it failed).
    fn done(&self, outcome: Outcome) {
        let _ = outcome;
    }
}

/// Reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn phase(&self, _info: &PhaseInfo<'_>) {}
    fn advance(&self, _n: u64) {}
}

/// Runs the public operation `f`, telling `progress` its outcome once: through
/// an [`Op`] that `f` reports to, so no early return skips `done`, and a panic
/// reports [`Outcome::Failed`].
pub(crate) fn operation<T>(
    progress: &dyn Progress,
    f: impl FnOnce(&dyn Progress) -> Result<T>,
) -> Result<T> {
    let op = Op::new(progress);
    let result = f(&op);
    op.finish(Outcome::of(&result));
    result
}

/// The [`Progress`] an operation reports to: passes phases and cancellation on,
/// keeps each phase's count within its total, and leaves `done` to
/// [`operation`] (an operation run inside another one ends silently).
pub(crate) struct Op<'a> {
    inner: &'a dyn Progress,
    /// The current phase's total (if known) and count.
    counts: Mutex<(Option<u64>, u64)>,
    reported: AtomicBool,
}

impl<'a> Op<'a> {
    fn new(inner: &'a dyn Progress) -> Self {
        Op {
            inner,
            counts: Mutex::new((None, 0)),
            reported: AtomicBool::new(false),
        }
    }

    fn finish(&self, outcome: Outcome) {
        if !self.reported.swap(true, Ordering::SeqCst) {
            self.inner.done(outcome);
        }
    }
}

impl Drop for Op<'_> {
    /// Reached without [`Op::finish`] only by a panic inside the operation.
    fn drop(&mut self) {
        self.finish(Outcome::Failed);
    }
}

impl Progress for Op<'_> {
    fn phase(&self, info: &PhaseInfo<'_>) {
        if let Ok(mut c) = self.counts.lock() {
            *c = (info.total, 0);
        }
        self.inner.phase(info);
    }

    fn advance(&self, n: u64) {
        let n = match self.counts.lock() {
            Ok(mut c) => {
                let n = match c.0 {
                    Some(total) => n.min(total.saturating_sub(c.1)),
                    None => n,
                };
                c.1 += n;
                n
            }
            Err(_) => 0,
        };
        if n > 0 {
            self.inner.advance(n);
        }
    }

    fn cancelled(&self) -> bool {
        self.inner.cancelled()
    }

    /// Ignored: [`operation`] reports the end of the outermost operation.
    fn done(&self, _outcome: Outcome) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex as M;

    #[derive(Default)]
    struct Log(M<Vec<String>>);
    impl Progress for Log {
        fn phase(&self, info: &PhaseInfo<'_>) {
            self.0
                .lock()
                .unwrap()
                .push(format!("phase {:?} {:?}", info.phase, info.total));
        }
        fn advance(&self, n: u64) {
            self.0.lock().unwrap().push(format!("advance {n}"));
        }
        fn done(&self, outcome: Outcome) {
            self.0.lock().unwrap().push(format!("done {outcome:?}"));
        }
    }

    #[test]
    fn counts_stay_within_the_total_and_done_is_reported_once() {
        let log = Log::default();
        let r: Result<()> = operation(&log, |p| {
            p.phase(&PhaseInfo::new(Phase::ReadFile).total(Some(10)));
            p.advance(6);
            p.advance(6);
            p.advance(1);
            // A nested operation reports phases but not its end.
            operation(p, |q| {
                q.phase(&PhaseInfo::new(Phase::Capture));
                q.advance(100);
                Err(crate::error::Error::from(crate::error::Repr::Cancelled))
            })
        });
        assert!(r.is_err_and(|e| e.is_cancelled()));
        assert_eq!(
            *log.0.lock().unwrap(),
            [
                "phase ReadFile Some(10)",
                "advance 6",
                "advance 4",
                "phase Capture None",
                "advance 100",
                "done Cancelled"
            ]
        );
    }

    #[test]
    fn a_panic_reports_failed() {
        let log = Log::default();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _: Result<()> = operation(&log, |_| panic!("boom"));
        }));
        assert!(caught.is_err());
        assert_eq!(*log.0.lock().unwrap(), ["done Failed"]);
    }
}
