//! Test hooks in the real code paths: crash and stop points, a settable clock,
//! and a switch that hides `sqlite_dbpage`.
//!
//! They exist only with the `test-hooks` cargo feature, which the test suite
//! and benches enable (a self dev-dependency in `Cargo.toml`); a normal build
//! (`cargo build`, an app depending on the library) has none: [`point`] is an
//! empty inline function, [`now`] is the system clock and [`no_dbpage`] is
//! `false`, and none of the environment variables below is read.
//!
//! With the feature, when the environment variable `LUMINA_BACKUP_CRASH_AT` is
//! `NAME` or `NAME:N`, the process sends itself SIGKILL the first (or N-th) time
//! it reaches the point called `NAME`. Unset, a point costs one atomic load.
//! Point names are listed in `store-format.md` ("Write order and recovery").

/// The current time. With the `test-hooks` feature, tests may set it with the
/// environment variable `LUMINA_BACKUP_TEST_NOW` (RFC 3339, e.g.
/// `2026-07-15T04:30:00Z`) to take snapshots at chosen instants (time zones,
/// DST, a clock that went back); otherwise, and when the value does not parse,
/// it is the system clock. Snapshot times are taken from it, so a caller
/// planning retention against "now" should use it too.
pub fn now() -> time::OffsetDateTime {
    #[cfg(feature = "test-hooks")]
    if let Some(t) = hooks::test_now() {
        return t;
    }
    time::OffsetDateTime::now_utc()
}

/// Marks a crash point (a no-op without the `test-hooks` feature).
#[inline(always)]
pub(crate) fn point(name: &str) {
    #[cfg(feature = "test-hooks")]
    hooks::point(name);
    #[cfg(not(feature = "test-hooks"))]
    let _ = name;
}

/// Stored bytes per group of a remote reader's range reads (`store::fetch`):
/// `default`, or `LUMINA_BACKUP_REMOTE_GROUP_BYTES` with the `test-hooks`
/// feature only, so tests read a small database in many groups.
#[inline(always)]
pub(crate) fn remote_group_bytes(default: u64) -> u64 {
    #[cfg(feature = "test-hooks")]
    return std::env::var("LUMINA_BACKUP_REMOTE_GROUP_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    #[cfg(not(feature = "test-hooks"))]
    default
}

/// Whether capture must act as if the linked SQLite lacked `sqlite_dbpage`
/// (`LUMINA_BACKUP_NO_DBPAGE=1`, with the `test-hooks` feature only), so tests
/// exercise the fallback routes with the test build's SQLite.
#[inline(always)]
pub(crate) fn no_dbpage() -> bool {
    #[cfg(feature = "test-hooks")]
    return hooks::no_dbpage();
    #[cfg(not(feature = "test-hooks"))]
    false
}

/// Whether a rollback-journal database is read through `sqlite_dbpage` rather
/// than its file (`LUMINA_BACKUP_PREFER_DBPAGE=1`, with the `test-hooks` feature
/// only), so tests can compare the two routes on the same database.
#[inline(always)]
pub(crate) fn prefer_dbpage() -> bool {
    #[cfg(feature = "test-hooks")]
    return hooks::prefer_dbpage();
    #[cfg(not(feature = "test-hooks"))]
    false
}

/// Whether every snapshot must read its pages even when the database is
/// unchanged since its parent (`LUMINA_BACKUP_NO_UNCHANGED=1`, with the
/// `test-hooks` feature only), for tests that compare what captures read.
#[inline(always)]
pub(crate) fn no_unchanged() -> bool {
    #[cfg(feature = "test-hooks")]
    return hooks::no_unchanged();
    #[cfg(not(feature = "test-hooks"))]
    false
}

#[cfg(feature = "test-hooks")]
mod hooks {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::OnceLock;

    static TARGET: OnceLock<Option<(String, u64)>> = OnceLock::new();
    static HITS: AtomicU64 = AtomicU64::new(0);
    static STOP: OnceLock<Option<String>> = OnceLock::new();
    static STOPPED: AtomicBool = AtomicBool::new(false);

    fn target() -> &'static Option<(String, u64)> {
        TARGET.get_or_init(|| {
            let v = std::env::var("LUMINA_BACKUP_CRASH_AT").ok()?;
            match v.split_once(':') {
                Some((name, n)) => Some((name.to_string(), n.parse().unwrap_or(1))),
                None => Some((v, 1)),
            }
        })
    }

    /// Kills the process here if `LUMINA_BACKUP_CRASH_AT` asks for it. With
    /// `LUMINA_BACKUP_STOP_AT=NAME` the process instead stops itself (SIGSTOP)
    /// the first time it reaches `NAME`, for tests that act while it is held
    /// there (signals, a held lock).
    pub(super) fn point(name: &str) {
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
        {
            use rustix::process::{getpid, kill_process, Signal};
            let _ = kill_process(getpid(), Signal::KILL);
        }
        std::process::abort();
    }

    /// Stops the process until it is resumed (SIGSTOP). Windows has no such
    /// signal: there the stop point does nothing (the tests using it are
    /// Unix-only).
    fn stop_self() {
        #[cfg(unix)]
        {
            use rustix::process::{getpid, kill_process, Signal};
            let _ = kill_process(getpid(), Signal::STOP);
        }
    }

    pub(super) fn test_now() -> Option<time::OffsetDateTime> {
        let v = std::env::var("LUMINA_BACKUP_TEST_NOW").ok()?;
        time::OffsetDateTime::parse(v.trim(), &time::format_description::well_known::Rfc3339).ok()
    }

    /// Unset it costs one atomic load.
    pub(super) fn no_dbpage() -> bool {
        static SET: OnceLock<bool> = OnceLock::new();
        *SET.get_or_init(|| std::env::var_os("LUMINA_BACKUP_NO_DBPAGE").is_some_and(|v| v == "1"))
    }

    /// Unset it costs one atomic load.
    pub(super) fn prefer_dbpage() -> bool {
        static SET: OnceLock<bool> = OnceLock::new();
        *SET.get_or_init(|| {
            std::env::var_os("LUMINA_BACKUP_PREFER_DBPAGE").is_some_and(|v| v == "1")
        })
    }

    /// Unset it costs one atomic load.
    pub(super) fn no_unchanged() -> bool {
        static SET: OnceLock<bool> = OnceLock::new();
        *SET.get_or_init(|| {
            std::env::var_os("LUMINA_BACKUP_NO_UNCHANGED").is_some_and(|v| v == "1")
        })
    }
}
