//! Crash points for the crash tests, in the real code paths.
//!
//! When the environment variable `LUMINA_BACKUP_CRASH_AT` is `NAME` or `NAME:N`,
//! the process sends itself SIGKILL the first (or N-th) time it reaches the point
//! called `NAME`. Unset (always, outside tests) a point costs one atomic load.
//! Point names are listed in `store-format.md` ("Write order and recovery").

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

static TARGET: OnceLock<Option<(String, u64)>> = OnceLock::new();
static HITS: AtomicU64 = AtomicU64::new(0);

fn target() -> &'static Option<(String, u64)> {
    TARGET.get_or_init(|| {
        let v = std::env::var("LUMINA_BACKUP_CRASH_AT").ok()?;
        match v.split_once(':') {
            Some((name, n)) => Some((name.to_string(), n.parse().unwrap_or(1))),
            None => Some((v, 1)),
        }
    })
}

static STOP: OnceLock<Option<String>> = OnceLock::new();
static STOPPED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Marks a crash point; kills the process here if the environment asks for it.
/// With `LUMINA_BACKUP_STOP_AT=NAME` the process instead stops itself (SIGSTOP)
/// the first time it reaches `NAME`, for tests that act while it is held there
/// (signals, a held lock).
pub fn point(name: &str) {
    let stop = STOP.get_or_init(|| std::env::var("LUMINA_BACKUP_STOP_AT").ok());
    if stop.as_deref() == Some(name) && !STOPPED.swap(true, Ordering::SeqCst) {
        // SAFETY: raise(3) has no memory-safety preconditions.
        unsafe {
            libc::raise(libc::SIGSTOP);
        }
    }
    if let Some((want, n)) = target() {
        if want == name && HITS.fetch_add(1, Ordering::SeqCst) + 1 == *n {
            // SAFETY: kill(2) on our own pid has no memory-safety preconditions.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
        }
    }
}
