//! Progress of long commands sent to the frontend as Tauri events, and their
//! cancellation.
//!
//! Each `snapshot`, `restore`, `diff` and `verify` runs under an operation id
//! (given by the frontend, or made up). While it runs, the plugin emits
//! [`PROGRESS_EVENT`] with a [`ProgressEvent`]: `phase` when a phase starts,
//! `advance` with the running count (at most every [`ADVANCE_EVERY`], and
//! always before the next phase or the end), and exactly one `done` last.
//! `cancel(id)` sets the operation's flag; the library polls it through
//! [`lumina_backup::Progress::cancelled`] and stops, leaving the repository
//! as it was.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use lumina_backup::{Outcome, Phase, PhaseInfo, Progress, Unit};
use serde::Serialize;
use tauri::{AppHandle, Emitter, Runtime};

use crate::error::{Error, Result};

/// The event name progress is emitted under.
pub const PROGRESS_EVENT: &str = "lumina-backup://progress";

/// The least time between two `advance` events of one operation.
pub const ADVANCE_EVERY: Duration = Duration::from_millis(100);

/// One progress event (the payload of [`PROGRESS_EVENT`]).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum ProgressEvent {
    /// A phase started (and the previous one ended).
    #[serde(rename_all = "camelCase")]
    Phase {
        /// The operation id.
        operation: String,
        /// What is done: `Capture`, `ReadFile`, `VerifyPacks`... (the
        /// library's [`Phase`] names).
        phase: String,
        /// The file, table or database it is done on.
        detail: Option<String>,
        /// How much there is, in `unit`, when known.
        total: Option<u64>,
        /// `bytes`, `items` or `none` (nothing counted: show a spinner).
        unit: &'static str,
        /// For `items`: what is counted (`snapshots`, `packs`).
        noun: Option<&'static str>,
    },
    /// Work done in the current phase so far.
    #[serde(rename_all = "camelCase")]
    Advance {
        /// The operation id.
        operation: String,
        /// Done so far in this phase (never past `total`).
        done: u64,
        /// The phase's total, when known.
        total: Option<u64>,
    },
    /// The operation ended (the last event of an operation).
    #[serde(rename_all = "camelCase")]
    Done {
        /// The operation id.
        operation: String,
        /// `succeeded`, `cancelled` or `failed`.
        outcome: &'static str,
    },
}

/// The running operations' cancel flags, by id.
#[derive(Debug, Default)]
pub struct Operations {
    running: Mutex<HashMap<String, Arc<AtomicBool>>>,
    next: AtomicU64,
}

impl Operations {
    fn map(&self) -> MutexGuard<'_, HashMap<String, Arc<AtomicBool>>> {
        // A panic elsewhere while holding the map leaves it usable.
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers an operation under `id` (or a new id); it stays cancellable
    /// until the returned guard is dropped.
    pub fn start(self: &Arc<Self>, id: Option<String>) -> Result<OperationGuard> {
        let id = match id {
            Some(id) if id.is_empty() => {
                return Err(Error::InvalidInput(
                    "operation id is empty; give a non-empty id or none".into(),
                ))
            }
            Some(id) => id,
            None => format!("op-{}", self.next.fetch_add(1, Relaxed)),
        };
        let flag = Arc::new(AtomicBool::new(false));
        let mut map = self.map();
        if map.contains_key(&id) {
            return Err(Error::InvalidInput(format!(
                "operation id {id} is already running; give each operation its own id"
            )));
        }
        map.insert(id.clone(), flag.clone());
        Ok(OperationGuard {
            ops: self.clone(),
            id,
            flag,
        })
    }

    /// Asks the operation `id` to stop; false if none runs under that id.
    pub fn cancel(&self, id: &str) -> bool {
        match self.map().get(id) {
            Some(flag) => {
                flag.store(true, Relaxed);
                true
            }
            None => false,
        }
    }
}

/// A running operation: removed from [`Operations`] when dropped.
#[derive(Debug)]
pub struct OperationGuard {
    ops: Arc<Operations>,
    id: String,
    flag: Arc<AtomicBool>,
}

impl OperationGuard {
    /// The operation's id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl Drop for OperationGuard {
    fn drop(&mut self) {
        self.ops.map().remove(&self.id);
    }
}

/// Where progress events go: the app (a closure, so the mapping from library
/// calls to events is testable without a window).
pub(crate) type Sink = Box<dyn Fn(ProgressEvent) + Send + Sync>;

/// A sink emitting [`PROGRESS_EVENT`] to every webview of `app`.
pub(crate) fn emit_to_app<R: Runtime>(app: AppHandle<R>) -> Sink {
    Box::new(move |event| {
        // A failed emit (the app shutting down) must not fail the backup.
        let _ = app.emit(PROGRESS_EVENT, event);
    })
}

/// The library's [`Progress`] for one operation, turned into events.
pub(crate) struct EventProgress {
    operation: String,
    flag: Arc<AtomicBool>,
    sink: Sink,
    state: Mutex<PhaseState>,
}

#[derive(Default)]
struct PhaseState {
    done: u64,
    total: Option<u64>,
    /// `done` when the last advance event was sent.
    sent: u64,
    last_sent: Option<Instant>,
}

fn unit_names(unit: Unit) -> (&'static str, Option<&'static str>) {
    match unit {
        Unit::Bytes => ("bytes", None),
        Unit::Items(noun) => ("items", Some(noun)),
        _ => ("none", None),
    }
}

fn phase_name(phase: Phase) -> String {
    format!("{phase:?}")
}

impl EventProgress {
    /// Progress for the operation of `guard`, sent to `sink`.
    pub(crate) fn new(guard: &OperationGuard, sink: Sink) -> Self {
        EventProgress {
            operation: guard.id.clone(),
            flag: guard.flag.clone(),
            sink,
            state: Mutex::new(PhaseState::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, PhaseState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends the count if it moved since the last advance event.
    fn flush(&self, st: &mut PhaseState) {
        if st.done != st.sent {
            st.sent = st.done;
            st.last_sent = Some(Instant::now());
            (self.sink)(ProgressEvent::Advance {
                operation: self.operation.clone(),
                done: st.done,
                total: st.total,
            });
        }
    }
}

impl Progress for EventProgress {
    fn phase(&self, info: &PhaseInfo<'_>) {
        let mut st = self.state();
        self.flush(&mut st);
        *st = PhaseState {
            total: info.total,
            ..PhaseState::default()
        };
        let (unit, noun) = unit_names(info.unit());
        (self.sink)(ProgressEvent::Phase {
            operation: self.operation.clone(),
            phase: phase_name(info.phase),
            detail: info.detail.map(str::to_owned),
            total: info.total,
            unit,
            noun,
        });
    }

    fn advance(&self, n: u64) {
        let mut st = self.state();
        st.done = st.done.saturating_add(n);
        if let Some(total) = st.total {
            st.done = st.done.min(total);
        }
        let due = st.last_sent.is_none_or(|t| t.elapsed() >= ADVANCE_EVERY);
        if due || Some(st.done) == st.total {
            self.flush(&mut st);
        }
    }

    fn cancelled(&self) -> bool {
        self.flag.load(Relaxed)
    }

    fn done(&self, outcome: Outcome) {
        let mut st = self.state();
        self.flush(&mut st);
        let outcome = match outcome {
            Outcome::Succeeded => "succeeded",
            Outcome::Cancelled => "cancelled",
            _ => "failed",
        };
        (self.sink)(ProgressEvent::Done {
            operation: self.operation.clone(),
            outcome,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collecting(
        ops: &Arc<Operations>,
    ) -> (
        OperationGuard,
        EventProgress,
        Arc<Mutex<Vec<ProgressEvent>>>,
    ) {
        let guard = ops.start(Some("t".into())).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let p = EventProgress::new(&guard, Box::new(move |e| s.lock().unwrap().push(e)));
        (guard, p, seen)
    }

    #[test]
    fn advances_are_throttled_but_the_last_count_is_always_sent() {
        let ops = Arc::new(Operations::default());
        let (_g, p, seen) = collecting(&ops);
        p.phase(
            &PhaseInfo::new(Phase::Capture)
                .detail("db")
                .total(Some(1000)),
        );
        for _ in 0..999 {
            p.advance(1);
        }
        p.phase(&PhaseInfo::new(Phase::CompactIndex));
        p.done(Outcome::Succeeded);
        let seen = seen.lock().unwrap();
        // phase, the first advance (nothing sent yet), the flushed 999, phase, done
        assert_eq!(seen.len(), 5, "{seen:?}");
        assert_eq!(
            seen[2],
            ProgressEvent::Advance {
                operation: "t".into(),
                done: 999,
                total: Some(1000)
            }
        );
        assert!(
            matches!(&seen[3], ProgressEvent::Phase { phase, unit: "none", .. } if phase == "CompactIndex")
        );
        assert_eq!(
            seen[4],
            ProgressEvent::Done {
                operation: "t".into(),
                outcome: "succeeded"
            }
        );
    }

    #[test]
    fn count_never_passes_the_total() {
        let ops = Arc::new(Operations::default());
        let (_g, p, seen) = collecting(&ops);
        p.phase(&PhaseInfo::new(Phase::ReadFile).total(Some(10)));
        p.advance(25);
        let seen = seen.lock().unwrap();
        assert_eq!(
            seen[1],
            ProgressEvent::Advance {
                operation: "t".into(),
                done: 10,
                total: Some(10)
            }
        );
    }

    #[test]
    fn cancel_sets_the_flag_only_while_running_and_ids_are_unique() {
        let ops = Arc::new(Operations::default());
        let (g, p, _) = collecting(&ops);
        assert!(
            ops.start(Some("t".into())).is_err(),
            "a running id is refused"
        );
        assert!(!p.cancelled());
        assert!(ops.cancel("t"));
        assert!(p.cancelled());
        assert!(!ops.cancel("other"));
        drop(g);
        assert!(!ops.cancel("t"), "a finished operation is gone");
        let a = ops.start(None).unwrap();
        let b = ops.start(None).unwrap();
        assert_ne!(a.id(), b.id());
        assert!(ops.start(Some(String::new())).is_err());
    }
}
