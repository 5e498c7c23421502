//! Test hooks in the real code paths: crash points, and a settable clock.
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
        stop_self();
    }
    if let Some((want, n)) = target() {
        if want == name && HITS.fetch_add(1, Ordering::SeqCst) + 1 == *n {
            kill_self();
        }
    }
}

/// Ends the process at once, as a crash would: no destructor, no flush
/// (SIGKILL; on Windows `abort`, which fails fast the same way).
fn kill_self() {
    #[cfg(unix)]
    // SAFETY: kill(2) on our own pid has no memory-safety preconditions.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
    #[cfg(not(unix))]
    std::process::abort();
}

/// Stops the process until it is resumed (SIGSTOP). Windows has no such
/// signal: there the stop point does nothing (the tests using it are Unix-only).
fn stop_self() {
    #[cfg(unix)]
    // SAFETY: raise(3) has no memory-safety preconditions.
    unsafe {
        libc::raise(libc::SIGSTOP);
    }
}

/// The current time: the clock, or for tests the time in the environment
/// variable `LUMINA_BACKUP_TEST_NOW` (RFC 3339, e.g. `2026-07-15T04:30:00Z`),
/// so that tests can take snapshots at chosen instants (time zones, DST, a clock
/// that went back). Unset (always, outside tests) it is the system clock; a
/// value that does not parse is ignored.
pub fn now() -> time::OffsetDateTime {
    std::env::var("LUMINA_BACKUP_TEST_NOW")
        .ok()
        .and_then(|v| {
            time::OffsetDateTime::parse(v.trim(), &time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(time::OffsetDateTime::now_utc)
}

/// Whether capture must act as if the linked SQLite lacked `sqlite_dbpage`
/// (`LUMINA_BACKUP_NO_DBPAGE=1`), so tests exercise the fallback routes with the
/// test build's SQLite. Unset (always, outside tests) it costs one atomic load.
pub fn no_dbpage() -> bool {
    static SET: OnceLock<bool> = OnceLock::new();
    *SET.get_or_init(|| std::env::var_os("LUMINA_BACKUP_NO_DBPAGE").is_some_and(|v| v == "1"))
}
