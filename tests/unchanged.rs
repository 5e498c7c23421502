//! Issue #10 item 2: a database whose state equals its parent snapshot's is not
//! read (`sqlite::unchanged`). Invariants: every snapshot's image equals the page
//! image SQLite reads at that moment, over random sequences of writes,
//! checkpoints, journal-mode changes, VACUUM and no-ops; the unchanged route is
//! taken on no-ops and never after a change; a second snapshot of an idle
//! database reads no page and adds < 16 KiB in both journal modes; an UPDATE in
//! place by another process (same page count) is seen as a change.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use lumina_backup::{NoProgress, OpenOptions, Repository, SnapshotOptions, SnapshotSummary};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use rusqlite::Connection;

fn repo_at(dir: &TestDir) -> Repository {
    if !dir.repo().exists() {
        Repository::init(&dir.repo()).expect("init");
    }
    Repository::open(&dir.repo(), &OpenOptions::default()).expect("open")
}

fn snap(repo: &mut Repository, db: &Path) -> SnapshotSummary {
    repo.snapshot(db, &SnapshotOptions::default(), &NoProgress)
        .expect("snapshot")
}

/// The stored image of a snapshot.
fn image_of(repo: &Repository, s: &SnapshotSummary) -> Vec<u8> {
    let entry = s.snapshot.image().expect("an image");
    let mut out = Vec::new();
    repo.read_file(entry, &mut out, &NoProgress)
        .expect("reading the image");
    out
}

/// The page image SQLite reads now, through a fresh connection.
fn live_image(db: &Path) -> Vec<u8> {
    let c =
        Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).expect("open");
    let mut st = c
        .prepare("SELECT data FROM sqlite_dbpage ORDER BY pgno")
        .expect("sqlite_dbpage");
    let mut out = Vec::new();
    let mut rows = st.query([]).expect("query");
    while let Some(r) = rows.next().expect("row") {
        out.extend(r.get::<_, Vec<u8>>(0).expect("page"));
    }
    out
}

/// Bytes of every file under `dir`.
fn tree_bytes(dir: &Path) -> u64 {
    let mut sum = 0;
    for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
        let m = e.metadata().expect("metadata");
        sum += if m.is_dir() {
            tree_bytes(&e.path())
        } else {
            m.len()
        };
    }
    sum
}

fn writer(db: &Path) -> Connection {
    let c = open(db);
    c.execute_batch("PRAGMA wal_autocheckpoint = 0;")
        .expect("pragma");
    c
}

fn fill(db: &Path, mode: &str) -> Connection {
    let c = writer(db);
    c.execute_batch(&format!(
        "PRAGMA journal_mode = {mode};
         CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300)
         INSERT INTO t SELECT i, printf('%0100d', i) FROM n;"
    ))
    .expect("filling");
    c
}

#[derive(Debug, Clone)]
enum Op {
    Insert(u8),
    UpdateInPlace(u16),
    Delete(u16),
    Checkpoint(&'static str),
    Wal,
    Rollback,
    Vacuum,
    Reopen,
    Noop,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1u8..20).prop_map(Op::Insert),
        (1u16..400).prop_map(Op::UpdateInPlace),
        (1u16..400).prop_map(Op::Delete),
        prop_oneof![Just("PASSIVE"), Just("RESTART"), Just("TRUNCATE")].prop_map(Op::Checkpoint),
        Just(Op::Wal),
        Just(Op::Rollback),
        Just(Op::Vacuum),
        Just(Op::Reopen),
        Just(Op::Noop),
        Just(Op::Noop),
        Just(Op::Noop),
    ]
}

fn apply(c: &mut Connection, db: &Path, op: &Op) {
    let sql = match op {
        Op::Insert(n) => format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {n})
             INSERT INTO t(v) SELECT hex(randomblob(60)) FROM n;"
        ),
        Op::UpdateInPlace(id) => {
            format!("UPDATE t SET v = printf('%0100d', abs(random()) % 1000) WHERE id = {id};")
        }
        Op::Delete(id) => format!("DELETE FROM t WHERE id = {id};"),
        Op::Checkpoint(mode) => format!("PRAGMA wal_checkpoint({mode});"),
        Op::Wal => "PRAGMA journal_mode = WAL;".into(),
        Op::Rollback => "PRAGMA journal_mode = DELETE;".into(),
        Op::Vacuum => "VACUUM;".into(),
        Op::Reopen => {
            // Closed first: the last connection to close checkpoints (WAL mode).
            drop(std::mem::replace(
                c,
                Connection::open_in_memory().expect("mem"),
            ));
            *c = writer(db);
            return;
        }
        Op::Noop => return,
    };
    // The journal mode pragma returns a row; run everything as a query.
    let mut st = c.prepare(&sql).expect("prepare");
    let mut rows = st.query([]).expect("apply");
    while rows.next().expect("step").is_some() {}
}

/// Runs one sequence; returns how many snapshots took the unchanged route.
fn run_sequence(start_wal: bool, ops: &[Op]) -> usize {
    let t = TestDir::new("unchanged-prop");
    let db = t.path("app.db");
    let mut c = fill(&db, if start_wal { "WAL" } else { "DELETE" });
    let mut repo = repo_at(&t);
    let first = snap(&mut repo, &db);
    let mut prev = image_of(&repo, &first);
    assert_eq!(prev, live_image(&db));
    let mut hits = 0;
    for op in ops {
        apply(&mut c, &db, op);
        let live = live_image(&db);
        let s = snap(&mut repo, &db);
        let stored = image_of(&repo, &s);
        assert!(
            stored == live,
            "after {op:?}: the stored image differs from SQLite's"
        );
        if s.unchanged {
            hits += 1;
            assert!(
                prev == live,
                "after {op:?}: taken as unchanged but it changed"
            );
        }
        prev = stored;
    }
    hits
}

#[test]
fn unchanged_detection_never_misses_a_change() {
    let mut runner = TestRunner::new(Config {
        cases: 12,
        failure_persistence: None,
        ..Config::default()
    });
    let hits = std::cell::Cell::new(0);
    runner
        .run(
            &(any::<bool>(), prop::collection::vec(op(), 1..10)),
            |(wal, ops)| {
                hits.set(hits.get() + run_sequence(wal, &ops));
                Ok(())
            },
        )
        .expect("property");
    assert!(hits.get() > 0, "the unchanged route was never taken");
}

/// Later snapshots of an idle database read no page and add < 16 KiB each.
///
/// Measured over several snapshots: the index is compacted only when its file
/// has grown well past its last compaction (store-format.md section 6.3), so one
/// snapshot can grow it by a redb allocation step that the next ones reuse.
fn idle(mode: &str) {
    const IDLE_SNAPSHOTS: u64 = 8;
    let t = TestDir::new(&format!("unchanged-idle-{mode}"));
    let db = t.path("app.db");
    let c = fill(&db, mode);
    let mut repo = repo_at(&t);
    let first = snap(&mut repo, &db);
    assert!(!first.unchanged);
    let before = tree_bytes(&t.repo());
    let second = snap(&mut repo, &db);
    for _ in 1..IDLE_SNAPSHOTS {
        assert!(snap(&mut repo, &db).unchanged, "{mode}: read again");
    }
    let added = (tree_bytes(&t.repo()) - before) / IDLE_SNAPSHOTS;
    assert!(second.unchanged, "{mode}: the idle database was read again");
    assert_eq!(second.snapshot.record.parent, Some(first.snapshot.id));
    assert_eq!(
        second.snapshot.image().map(|f| f.root),
        first.snapshot.image().map(|f| f.root)
    );
    assert!(added < 16 << 10, "{mode}: each added {added} bytes");
    assert_eq!(image_of(&repo, &second), live_image(&db));
    drop(repo);
    // The CLI says so in `--json`, and the manifest names the route.
    let s = t.lb().args(["snapshot"]).arg(&db).json();
    assert_eq!(s["unchanged"], true, "{mode}: {s}");
    // What the files' `blake3` fields are, as `show --json` says.
    let shown = t.lb().args(["show", s["id"].as_str().expect("id")]).json();
    assert!(s["checksum_kind"].is_string(), "{mode}: {s}");
    assert_eq!(s["checksum_kind"], shown["checksum_kind"], "{mode}: {s}");
    let id = s["id"].as_str().expect("id");
    let manifest: serde_json::Value =
        serde_json::from_slice(&t.lb().args(["cat", id, "manifest.json"]).ok().stdout)
            .expect("manifest");
    assert_eq!(manifest["capture_route"], "unchanged");
    t.lb().args(["verify", "--read-data"]).ok();
    drop(c);
}

#[test]
fn idle_database_is_not_read_again_in_rollback_mode() {
    idle("DELETE");
}

#[test]
fn idle_database_is_not_read_again_in_wal_mode() {
    idle("WAL");
}

/// Run by [`changed_in_place_by_another_process`] in a child process.
#[test]
#[ignore = "a helper: run in a child process"]
fn child_updates_in_place() {
    let Ok(db) = std::env::var("LUMINA_TEST_CHILD_DB") else {
        return;
    };
    let c = writer(Path::new(&db));
    // Leave the frame in the -wal file (closing would checkpoint it when this
    // process saw itself as the last one): the WAL route must see it.
    c.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
        true,
    )
    .expect("config");
    c.execute_batch("UPDATE t SET v = printf('%0100d', 7) WHERE id = 5;")
        .expect("update");
}

fn changed_by_another_process(mode: &str) {
    let t = TestDir::new(&format!("unchanged-other-{mode}"));
    let db: PathBuf = t.path("app.db");
    let c = fill(&db, mode);
    let mut repo = repo_at(&t);
    let first = snap(&mut repo, &db);
    let pages = first.snapshot.record.sqlite.page_count;
    let status = std::process::Command::new(std::env::current_exe().expect("exe"))
        .args(["--exact", "child_updates_in_place", "--ignored", "--quiet"])
        .env("LUMINA_TEST_CHILD_DB", &db)
        .status()
        .expect("child");
    assert!(status.success());
    let second = snap(&mut repo, &db);
    // The state was read (not a fallback): the detection itself saw the change.
    assert!(second.snapshot.record.source_state.is_some(), "{mode}");
    assert!(
        !second.unchanged,
        "{mode}: a change by another process was missed"
    );
    assert_eq!(second.snapshot.record.sqlite.page_count, pages);
    assert_ne!(image_of(&repo, &second), image_of(&repo, &first));
    assert_eq!(image_of(&repo, &second), live_image(&db));
    drop(c);
}

#[test]
fn changed_in_place_by_another_process_rollback() {
    changed_by_another_process("DELETE");
}

#[test]
fn changed_in_place_by_another_process_wal() {
    changed_by_another_process("WAL");
}
