//! Checks of a captured state, run on the captured copy of the image: does
//! the schema use collations, functions or modules this build of SQLite lacks
//! (the application registers them; without them nothing can verify, or restore
//! with a check, the image), and does SQLite's `PRAGMA quick_check` pass.
//!
//! Findings are warnings, never a reason to refuse a snapshot. The quick check
//! has a time budget (it once ran inside the capture's read transaction, which
//! blocks the app's commits in rollback-journal mode; it now runs after it, and
//! the budget bounds the snapshot's time): a progress handler stops the check
//! when the budget runs out and the manifest says it was not checked.
//!
//! In a snapshot the checks run as a [`BackgroundCheck`]: on their own thread and
//! connection to the staged copy, while the copy is streamed to the store and the
//! exports are written; the budget counts from the moment the snapshot asks for
//! the verdict ([`BackgroundCheck::finish`]), where the check used to begin.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::error::{Error, Result};

/// The quick check's time budget inside a snapshot.
pub const QUICK_CHECK_BUDGET: Duration = Duration::from_secs(1);

/// Problems reported at most per finding.
const MAX_LINES: usize = 3;

/// What the checks found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckReport {
    /// `ok`, `failed: …`, or `not checked: …` (for the manifest).
    pub quick_check: String,
    /// Human warnings (empty when all is well, or the check only ran out of time).
    pub warnings: Vec<String>,
}

/// Runs the schema check and a quick check bounded by `budget` on `conn` (the
/// captured copy, or a connection inside the caller's read transaction).
pub fn check_captured(conn: &Connection, budget: Duration) -> CheckReport {
    let deadline = Instant::now() + budget;
    report(conn, budget, move || Instant::now() >= deadline)
}

/// [`check_captured`], the quick check stopped when `stop` says so (reported
/// as over `budget`).
fn report(
    conn: &Connection,
    budget: Duration,
    stop: impl FnMut() -> bool + Send + 'static,
) -> CheckReport {
    let mut warnings = missing_names(conn);
    let quick_check = match quick_check(conn, stop) {
        QuickCheck::Ok => "ok".to_string(),
        QuickCheck::Failed(lines) => {
            let shown = lines
                .iter()
                .take(MAX_LINES)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ");
            let more = lines.len().saturating_sub(MAX_LINES);
            let more = if more > 0 {
                format!(" (and {more} more)")
            } else {
                String::new()
            };
            warnings.push(format!(
                "SQLite's quick_check found damage in the captured database: {shown}{more}; \
                 the snapshot holds it as it is: repair the database (REINDEX, or sqlite3 \
                 .recover) and take a new snapshot"
            ));
            format!("failed: {shown}{more}")
        }
        QuickCheck::OverBudget => format!(
            "not checked: over the time budget ({} ms)",
            budget.as_millis()
        ),
        QuickCheck::Error(e) => {
            // A missing name is already explained above.
            let explained = !warnings.is_empty() && missing_name(&e).is_some();
            if !explained {
                warnings.push(format!(
                    "SQLite's quick_check could not run on the captured database ({e}); \
                 this snapshot's content cannot be verified"
                ));
            }
            format!("not checked: {e}")
        }
    };
    CheckReport {
        quick_check,
        warnings,
    }
}

enum QuickCheck {
    Ok,
    Failed(Vec<String>),
    OverBudget,
    Error(String),
}

fn quick_check(conn: &Connection, stop: impl FnMut() -> bool + Send + 'static) -> QuickCheck {
    // SQLite calls the handler every 1000 VM steps; returning true interrupts the
    // statement (SQLITE_INTERRUPT), which leaves the read transaction as it was.
    conn.progress_handler(1000, Some(stop));
    let result = (|| -> rusqlite::Result<Vec<String>> {
        let mut stmt = conn.prepare("PRAGMA quick_check")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        rows.collect()
    })();
    conn.progress_handler(0, None::<fn() -> bool>);
    match result {
        Ok(lines) if lines == ["ok"] => QuickCheck::Ok,
        Ok(lines) => QuickCheck::Failed(lines),
        Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::OperationInterrupted) => {
            QuickCheck::OverBudget
        }
        Err(e) => QuickCheck::Error(e.to_string()),
    }
}

/// [`check_captured`] of a staged copy, running on its own thread (with its own
/// read-only connection) from [`BackgroundCheck::start`] while the caller reads
/// the same copy. Dropped without [`BackgroundCheck::finish`], it stops the check
/// and joins the thread: no thread outlives it, so the copy may be removed after.
#[derive(Debug)]
pub struct BackgroundCheck {
    shared: Arc<Shared>,
    budget: Duration,
    thread: Option<JoinHandle<Result<CheckReport>>>,
    /// The copy, for a check run on the caller's thread (the thread could not start).
    path: PathBuf,
}

#[derive(Debug)]
struct Shared {
    base: Instant,
    /// Nanoseconds after `base` at which the quick check stops; `u64::MAX`
    /// until [`BackgroundCheck::finish`] sets it.
    deadline_ns: AtomicU64,
    /// Set on drop: the verdict is not wanted.
    abandoned: AtomicBool,
}

impl Shared {
    fn stop(&self) -> bool {
        self.abandoned.load(Ordering::Relaxed)
            || self.base.elapsed().as_nanos()
                >= u128::from(self.deadline_ns.load(Ordering::Relaxed))
    }
}

impl BackgroundCheck {
    /// Starts the checks of the (closed, no longer written) copy at `path`; the
    /// quick check gets `budget` from [`BackgroundCheck::finish`] on.
    pub fn start(path: &Path, budget: Duration) -> BackgroundCheck {
        let shared = Arc::new(Shared {
            base: Instant::now(),
            deadline_ns: AtomicU64::new(u64::MAX),
            abandoned: AtomicBool::new(false),
        });
        let (p, sh) = (path.to_path_buf(), shared.clone());
        let thread = std::thread::Builder::new()
            .name("quick-check".into())
            .spawn(move || {
                let conn = super::staging::open_staged(&p)?;
                Ok(report(&conn, budget, move || sh.stop()))
            })
            .ok();
        BackgroundCheck {
            shared,
            budget,
            thread,
            path: path.to_path_buf(),
        }
    }

    /// The checks' report: waits at most the budget for the quick check.
    pub fn finish(mut self) -> Result<CheckReport> {
        let at = self.shared.base.elapsed() + self.budget;
        let ns = u64::try_from(at.as_nanos()).unwrap_or(u64::MAX - 1);
        self.shared.deadline_ns.store(ns, Ordering::Relaxed);
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| Error::internal("the quick check's thread panicked"))?,
            None => {
                let conn = super::staging::open_staged(&self.path)?;
                Ok(check_captured(&conn, self.budget))
            }
        }
    }
}

impl Drop for BackgroundCheck {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.shared.abandoned.store(true, Ordering::Relaxed);
            let _ = t.join();
        }
    }
}

/// Collations used by indexes, and functions, modules and collations used by
/// tables (CHECK constraints, generated columns, expression and partial indexes,
/// triggers) and views, that this SQLite does not have. Statements are only
/// prepared, never run: preparing resolves every name and reads no row.
fn missing_names(conn: &Connection) -> Vec<String> {
    // (kind, name) -> objects using it
    let mut missing: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    let objects: Vec<(String, String)> = conn
        .prepare(
            "SELECT type, name FROM sqlite_schema WHERE type IN ('table', 'view', 'index') \
             AND name NOT LIKE 'sqlite_%' ORDER BY type, name",
        )
        .and_then(|mut s| {
            s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()
        })
        .unwrap_or_default();
    for (kind, name) in &objects {
        let q = quote(name);
        let probes: Vec<String> = match kind.as_str() {
            "index" => index_collations(conn, name)
                .into_iter()
                .map(|c| format!("SELECT 'a' < 'b' COLLATE {}", quote(&c)))
                .collect(),
            "view" => vec![format!("SELECT * FROM {q} LIMIT 0")],
            _ => vec![
                format!("SELECT * FROM {q} LIMIT 0"),
                format!("INSERT INTO {q} DEFAULT VALUES"),
            ],
        };
        for sql in probes {
            if let Err(e) = conn.prepare(&sql) {
                if let Some(key) = missing_name(&e.to_string()) {
                    let list = missing.entry(key).or_default();
                    let obj = format!("{kind} {name}");
                    if !list.contains(&obj) {
                        list.push(obj);
                    }
                }
            }
        }
    }
    missing
        .into_iter()
        .map(|((kind, name), users)| {
            format!(
                "the database uses {kind} `{name}` ({}), which this program's SQLite does \
                 not have (the application defines it): the snapshot cannot be checked, and a \
                 restore's integrity check will fail on it",
                users.join(", ")
            )
        })
        .collect()
}

/// Collation names of an index's key columns.
fn index_collations(conn: &Connection, index: &str) -> Vec<String> {
    let sql = format!("PRAGMA index_xinfo({})", quote(index));
    let mut out: Vec<String> = conn
        .prepare(&sql)
        .and_then(|mut s| {
            s.query_map([], |r| r.get::<_, Option<String>>(4))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .collect();
    out.sort();
    out.dedup();
    out
}

/// `(kind, name)` from SQLite's "no such …" messages.
fn missing_name(msg: &str) -> Option<(String, String)> {
    // rusqlite appends " in <sql> at offset N": the name is the first word.
    let pick = |prefix: &str| {
        msg.find(prefix).and_then(|i| {
            msg[i + prefix.len()..]
                .split_whitespace()
                .next()
                .map(|w| w.trim_end_matches("()").to_string())
        })
    };
    if let Some(n) = pick("no such collation sequence:") {
        return Some(("collation".into(), n));
    }
    if let Some(n) = pick("no such function:").or_else(|| pick("unknown function:")) {
        return Some(("function".into(), n));
    }
    if let Some(n) = pick("no such module:") {
        return Some(("module".into(), n));
    }
    None
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn healthy_database_is_ok_and_a_zero_budget_is_not_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = Connection::open(dir.path().join("a.db")).expect("open");
        conn.execute_batch(
            "CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT CHECK (length(b) > 0));
             CREATE INDEX tb ON t(lower(b)) WHERE b IS NOT NULL;
             CREATE VIEW v AS SELECT upper(b) FROM t;
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)
             INSERT INTO t SELECT i, hex(randomblob(50)) FROM n;",
        )
        .expect("fill");
        let r = check_captured(&conn, Duration::from_secs(30));
        assert_eq!(r.quick_check, "ok");
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        conn.execute_batch("BEGIN; SELECT count(*) FROM t;")
            .expect("read transaction");
        let r = check_captured(&conn, Duration::ZERO);
        assert!(
            r.quick_check
                .starts_with("not checked: over the time budget"),
            "{}",
            r.quick_check
        );
        assert!(r.warnings.is_empty(), "{:?}", r.warnings);
        // The interrupted check leaves the connection and its transaction usable.
        let n: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .expect("still usable");
        assert_eq!(n, 5000);
        conn.execute_batch("COMMIT").expect("commit");
    }

    /// Issue #10: the check runs beside the caller; its report is the same as
    /// run in line, and dropping it stops and joins its thread.
    #[test]
    fn background_check_reports_as_in_line_and_stops_on_drop() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("a.db");
        let conn = Connection::open(&db).expect("open");
        conn.execute_batch(
            "CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
             INSERT INTO t SELECT i, hex(randomblob(50)) FROM n;",
        )
        .expect("fill");
        drop(conn);
        let in_line = check_captured(
            &super::super::staging::open_staged(&db).expect("open"),
            Duration::from_secs(30),
        );
        assert_eq!(in_line.quick_check, "ok");
        let r = BackgroundCheck::start(&db, Duration::from_secs(30))
            .finish()
            .expect("report");
        assert_eq!(r, in_line);
        drop(BackgroundCheck::start(&db, Duration::from_secs(30)));
        // A copy that cannot be opened: the report says why.
        let missing = dir.path().join("missing.db");
        assert!(BackgroundCheck::start(&missing, Duration::from_secs(1))
            .finish()
            .is_err());
    }

    #[test]
    fn missing_names_are_parsed() {
        assert_eq!(
            missing_name("no such collation sequence: app_c"),
            Some(("collation".into(), "app_c".into()))
        );
        assert_eq!(
            missing_name("unknown function: app_f()"),
            Some(("function".into(), "app_f".into()))
        );
        assert_eq!(
            missing_name("unknown function: f() in INSERT INTO \"t\" DEFAULT VALUES at offset 3"),
            Some(("function".into(), "f".into()))
        );
        assert_eq!(missing_name("syntax error"), None);
    }
}
