//! The library inside an app that keeps its own connection to the database open
//! IN THE SAME PROCESS (a Tauri app linking the library; rollback-journal mode):
//! the test process holds a rusqlite connection, with an open write
//! transaction where it matters, and calls the library.
//!
//! Invariants guarded:
//! - reading the database outside SQLite (header checks, the file capture
//!   route, the in-use probe, diff against the live database, the watcher's
//!   ticks) never drops this process's POSIX locks: another process still
//!   cannot write while the app's transaction is open, the app's COMMIT
//!   succeeds and the database is intact;
//! - a restore that would replace a file this process has open is refused
//!   (`InUse`, remedy `Live`), leaving it untouched; `live` restores into it;
//! - a snapshot waiting for a locked source reports `OpenDatabase` first and
//!   stops with the cancelled error as soon as the caller cancels.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::TestDir;
use lumina_backup::{
    DiffTarget, ErrorKind, Location, NoProgress, OpenOptions, Outcome, Phase, PhaseInfo, Progress,
    Remedy, Repository, RestoreOptions, Schedule, Snapshot, SnapshotOptions, WatchEvent,
    WatchOptions, WatchedDatabase, Watcher,
};
use rusqlite::Connection;

/// The app's database in rollback-journal mode, and its open connection.
fn app_db(path: &Path) -> Connection {
    let c = Connection::open(path).expect("open");
    c.execute_batch(
        "PRAGMA journal_mode=DELETE;
         CREATE TABLE metadata(id TEXT PRIMARY KEY, body TEXT);",
    )
    .expect("schema");
    c.execute_batch("BEGIN").expect("begin");
    for i in 0..500 {
        c.execute(
            "INSERT INTO metadata VALUES (?1, ?2)",
            rusqlite::params![format!("/photos/{i}.jpg"), "x".repeat(400)],
        )
        .expect("insert");
    }
    c.execute_batch("COMMIT").expect("commit");
    c
}

fn repo(dir: &TestDir) -> Repository {
    let p = dir.repo();
    Repository::init(&p).expect("init");
    Repository::open(&p, &OpenOptions::default()).expect("open repo")
}

/// Another process tries to write `db` without waiting: "locked" or "wrote".
fn other_process_writes(db: &Path) -> String {
    let script = r#"
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], timeout=0, isolation_level=None)
try:
    c.execute('BEGIN IMMEDIATE')
    c.execute("INSERT OR REPLACE INTO metadata VALUES ('/photos/child.jpg', 'c')")
    c.execute('COMMIT')
    print('wrote')
except sqlite3.OperationalError as e:
    print('locked' if 'locked' in str(e) else 'error: ' + str(e))
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(db)
        .output()
        .expect("python3 runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The app is in a write transaction; `op` calls the library; the app's lock
/// must survive it.
/// `op` also gets a snapshot of a copy of the database, taken before.
fn app_lock_survives(op: impl FnOnce(&mut Repository, &Path, Snapshot)) {
    let dir = TestDir::new("in-process");
    let db = dir.path("lumina.db");
    let app = app_db(&db);
    let mut r = repo(&dir);
    // Copied while the app holds no lock (closing the copy's descriptor would
    // drop them).
    let copy = dir.path("copy.db");
    std::fs::copy(&db, &copy).expect("copy");
    let old = r
        .snapshot(&copy, &SnapshotOptions::default(), &NoProgress)
        .expect("snapshot of a copy")
        .snapshot;
    app.execute_batch("BEGIN IMMEDIATE")
        .expect("begin immediate");
    app.execute(
        "INSERT OR REPLACE INTO metadata VALUES ('/photos/app.jpg', 'pending')",
        [],
    )
    .expect("insert");
    assert_eq!(
        other_process_writes(&db),
        "locked",
        "before the library call"
    );
    op(&mut r, &db, old);
    assert_eq!(
        other_process_writes(&db),
        "locked",
        "the app's RESERVED lock was dropped by the library"
    );
    app.execute_batch("COMMIT")
        .expect("the app's COMMIT succeeds");
    let ic: String = app
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(ic, "ok");
    let n: i64 = app
        .query_row(
            "SELECT count(*) FROM metadata WHERE id='/photos/app.jpg'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(n, 1);
}

#[test]
fn snapshot_during_the_apps_write_transaction_keeps_its_lock() {
    app_lock_survives(|r, db, _old| {
        r.snapshot(db, &SnapshotOptions::default(), &NoProgress)
            .expect("snapshot");
        r.snapshot(
            db,
            &SnapshotOptions {
                no_exports: true,
                ..Default::default()
            },
            &NoProgress,
        )
        .expect("snapshot without exports");
    });
}

#[test]
fn diff_against_the_live_database_keeps_the_apps_lock() {
    app_lock_survives(|r, db, old| {
        r.diff(&old, DiffTarget::Live(db), &NoProgress)
            .expect("diff against live");
    });
}

#[test]
fn refused_restore_onto_the_apps_database_keeps_its_lock() {
    app_lock_survives(|r, db, old| {
        // The target checks (in-use probe, header reads) run, then refuse.
        let opts = RestoreOptions {
            force: true,
            ..Default::default()
        };
        let e = r
            .restore_snapshot(old, db, &opts, &NoProgress)
            .expect_err("refused");
        assert_eq!(e.kind(), ErrorKind::InUse, "{e}");
    });
}

#[test]
fn watcher_ticks_keep_the_apps_lock() {
    app_lock_survives(|_r, db, _old| {
        // Its own repository (no wait for `_r`'s lock): the ticks' fingerprint
        // reads the database header every 20 ms, on the watcher's thread.
        let dir = TestDir::new("in-process-watch");
        Repository::init(&dir.repo()).expect("init");
        let mut d = WatchedDatabase::new(db, Schedule::Manual);
        d.on_change = true;
        let mut opts =
            WatchOptions::new(Location::Local(dir.repo()), OpenOptions::default(), vec![d]);
        opts.check_every = Duration::from_millis(20);
        opts.state_dir = Some(dir.path("state"));
        let (w, rx) = Watcher::start(opts).expect("start");
        // The first look snapshots the committed state (a reader beside the
        // app's RESERVED lock); idle ticks follow.
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            let left = end
                .checked_duration_since(Instant::now())
                .expect("no snapshot within 30 s");
            match rx.recv_timeout(left).expect("an event") {
                WatchEvent::SnapshotTaken { .. } => break,
                WatchEvent::Failure { message, .. } => panic!("watcher failed: {message}"),
                _ => {}
            }
        }
        std::thread::sleep(Duration::from_millis(500));
        w.stop().expect("stops");
    });
}

#[test]
fn restore_over_a_database_this_process_has_open_is_refused_and_live_works() {
    let dir = TestDir::new("in-process");
    let db = dir.path("lumina.db");
    let app = app_db(&db);
    let mut r = repo(&dir);
    let s = r
        .snapshot(&db, &SnapshotOptions::default(), &NoProgress)
        .expect("snapshot");
    app.execute(
        "INSERT INTO metadata VALUES ('/photos/after.jpg', 'after')",
        [],
    )
    .expect("insert");
    let before = common::blake3_file(&db);
    let forced = RestoreOptions {
        force: true,
        ..Default::default()
    };
    let e = r
        .restore_snapshot(s.snapshot.clone(), &db, &forced, &NoProgress)
        .expect_err("a non-live restore over our own open database is refused");
    assert_eq!(e.kind(), ErrorKind::InUse, "{e}");
    assert_eq!(e.remedy(), Some(&Remedy::Live), "{e}");
    assert!(e.to_string().contains("this process"), "{e}");
    assert_eq!(common::blake3_file(&db), before, "the file is untouched");
    // The app's connection still writes to the file on disk.
    app.execute("INSERT INTO metadata VALUES ('/photos/later.jpg', 'y')", [])
        .expect("the app still writes");
    let on_disk = Connection::open(&db).expect("open");
    let n: i64 = on_disk
        .query_row(
            "SELECT count(*) FROM metadata WHERE id='/photos/later.jpg'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(n, 1);
    drop(on_disk);

    let live = RestoreOptions {
        force: true,
        live: true,
        ..Default::default()
    };
    let rep = r
        .restore_snapshot(s.snapshot, &db, &live, &NoProgress)
        .expect("live restore");
    assert!(rep.live);
    let n: i64 = app
        .query_row(
            "SELECT count(*) FROM metadata WHERE id IN ('/photos/after.jpg', '/photos/later.jpg')",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(n, 0, "the app's connection sees the restored content");
    let ic: String = app
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(ic, "ok");
}

/// Records phases and cancels from the start.
#[derive(Default)]
struct Cancelling {
    phases: Mutex<Vec<Phase>>,
    done: Mutex<Vec<Outcome>>,
    asked: AtomicBool,
}

impl Progress for Cancelling {
    fn phase(&self, info: &PhaseInfo<'_>) {
        self.phases.lock().expect("lock").push(info.phase);
    }
    fn advance(&self, _n: u64) {}
    fn cancelled(&self) -> bool {
        self.asked.store(true, Ordering::SeqCst);
        true
    }
    fn done(&self, outcome: Outcome) {
        self.done.lock().expect("lock").push(outcome);
    }
}

#[test]
fn cancel_while_waiting_for_a_locked_source_stops_promptly() {
    let dir = TestDir::new("in-process");
    let db = dir.path("lumina.db");
    let app = app_db(&db);
    let mut r = repo(&dir);
    app.execute_batch("BEGIN EXCLUSIVE")
        .expect("begin exclusive");
    let p = Cancelling::default();
    let t = Instant::now();
    let e = r
        .snapshot(&db, &SnapshotOptions::default(), &p)
        .expect_err("cancelled");
    let took = t.elapsed();
    assert!(e.is_cancelled(), "{e} ({:?})", e.kind());
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert!(p.asked.load(Ordering::SeqCst));
    assert_eq!(
        p.phases.lock().expect("lock").first(),
        Some(&Phase::OpenDatabase)
    );
    assert_eq!(*p.done.lock().expect("lock"), vec![Outcome::Cancelled]);
    app.execute_batch("COMMIT").expect("commit");
    assert!(r.list().expect("list").is_empty(), "no snapshot recorded");
}
