//! Invariants: capture works whatever SQLite the program links. Without the
//! `sqlite_dbpage` table (forced here with `LUMINA_BACKUP_NO_DBPAGE=1`; the real
//! case is an app that depends on the library, built without this repository's
//! `.cargo/config.toml`), a WAL database is captured through `wal-file` and a
//! rollback-journal database through `file`; each route yields the very image the
//! dbpage route yields (same BLAKE3), restores byte-identical to the committed
//! database, keeps the one-transaction consistency while another connection
//! writes, and is named in the manifest's `capture_route`. The embed example
//! (`examples/embed`) is built as an app would build it and run.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use rusqlite::Connection;

/// A database with committed writes; in WAL mode the returned connection keeps
/// them in the `-wal` file (no checkpoint) until it checkpoints or closes.
fn make_db(path: &Path, mode: &str) -> Connection {
    let c = open(path);
    c.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
        true,
    )
    .expect("config");
    c.execute_batch(&format!(
        "PRAGMA journal_mode = {mode}; PRAGMA wal_autocheckpoint = 0;
         CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, v BLOB);
         CREATE INDEX t_name ON t(name);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 4000)
         INSERT INTO t SELECT i, 'row ' || i, randomblob(100 + i % 400) FROM n;
         DELETE FROM t WHERE id % 11 = 0;
         UPDATE t SET name = name || '!' WHERE id % 3 = 0;
         PRAGMA user_version = 5;"
    ))
    .expect("filling the database");
    c
}

/// Takes a snapshot; returns its id, its image's BLAKE3 and its capture route.
fn snapshot(t: &TestDir, db: &Path, no_dbpage: bool) -> (String, String, String) {
    // Each snapshot reads its pages, even of an unchanged database.
    let mut cmd = t
        .lb()
        .args(["snapshot"])
        .arg(db)
        .env("LUMINA_BACKUP_NO_UNCHANGED", "1");
    if no_dbpage {
        cmd = cmd.env("LUMINA_BACKUP_NO_DBPAGE", "1");
    } else {
        // Rollback-journal databases default to the `file` route: read them
        // through `sqlite_dbpage` here, to compare the two.
        cmd = cmd.env("LUMINA_BACKUP_PREFER_DBPAGE", "1");
    }
    let s = cmd.json();
    let id = id_of(&s);
    let image = s["files"]
        .as_array()
        .expect("files")
        .iter()
        .find(|f| f["kind"] == "image")
        .expect("an image")["blake3"]
        .as_str()
        .expect("blake3")
        .to_string();
    let manifest: serde_json::Value =
        serde_json::from_slice(&t.lb().args(["cat", &id, "manifest.json"]).ok().stdout)
            .expect("manifest.json");
    let route = manifest["capture_route"]
        .as_str()
        .unwrap_or("(absent)")
        .to_string();
    (id, image, route)
}

fn routes_agree(mode: &str, fallback: &str) {
    let t = TestDir::new(&format!("routes-{mode}"));
    t.init();
    let db = t.path("app.db");
    let app = make_db(&db, mode);
    if mode == "WAL" {
        assert!(std::fs::metadata(sidecar(&db, "-wal")).expect("wal").len() > 0);
    }
    let (_, by_dbpage, r1) = snapshot(&t, &db, false);
    assert_eq!(r1, "dbpage");
    let (id, by_fallback, r2) = snapshot(&t, &db, true);
    assert_eq!(r2, fallback);
    assert_eq!(
        by_dbpage, by_fallback,
        "the {fallback} route changed the image"
    );

    let out = t.path("restored.db");
    t.lb().args(["restore", &id, "--to"]).arg(&out).ok();
    assert_eq!(common::image_digest(&out), by_fallback);
    // The committed database as one file (WAL pages moved into it) is the image.
    app.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .expect("checkpoint");
    drop(app);
    assert_eq!(blake3_file(&db), blake3_file(&out));
    t.lb().args(["verify"]).ok();
}

/// Issue #9 "capture in any build": without `sqlite_dbpage`, a WAL database
/// (committed pages still in its `-wal`) is captured through `wal-file`, with
/// the dbpage route's image, and restores byte-identical.
#[test]
fn wal_database_without_dbpage_is_captured_exactly() {
    routes_agree("WAL", "wal-file");
}

/// Issue #9 "capture in any build": without `sqlite_dbpage`, a rollback-journal
/// database is read from its file under the shared lock, with the dbpage route's
/// image, and restores byte-identical.
#[test]
fn rollback_database_without_dbpage_is_captured_exactly() {
    routes_agree("DELETE", "file");
}

/// Checks a restored image of the live-writer database; returns its counter.
fn check_consistent(path: &Path) -> i64 {
    assert!(
        integrity_ok(path),
        "{}: integrity_check failed",
        path.display()
    );
    let c = open(path);
    let q = |sql: &str| -> i64 { c.query_row(sql, [], |r| r.get(0)).expect(sql) };
    assert_eq!(
        q("SELECT sum(balance) FROM accounts"),
        100 * 1000,
        "money moved out"
    );
    let n = q("SELECT n FROM counter");
    assert_eq!(
        n,
        q("SELECT count(*) FROM ledger"),
        "counter and ledger disagree"
    );
    n
}

fn snapshots_during_writes(mode: &str, fallback: &str) {
    let t = TestDir::new(&format!("routes-live-{mode}"));
    t.init();
    let db = t.path("live.db");
    open(&db)
        .execute_batch(&format!(
            "PRAGMA journal_mode = {mode};
             CREATE TABLE accounts(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);
             CREATE TABLE ledger(id INTEGER PRIMARY KEY, src INTEGER, dst INTEGER,
                                 amount INTEGER, pad BLOB);
             CREATE TABLE counter(n INTEGER NOT NULL);
             INSERT INTO counter VALUES (0);
             WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 99)
             INSERT INTO accounts SELECT i, 1000 FROM n;"
        ))
        .expect("schema");
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (db, stop) = (db.clone(), stop.clone());
        std::thread::spawn(move || -> u64 {
            let c = open(&db);
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let (a, b, amount) = (n * 37 % 100, n * 61 % 100, 1 + n % 40);
                c.execute_batch(&format!(
                    "BEGIN IMMEDIATE;
                     UPDATE accounts SET balance = balance - {amount} WHERE id = {a};
                     UPDATE accounts SET balance = balance + {amount} WHERE id = {b};
                     INSERT INTO ledger(src, dst, amount, pad)
                       VALUES ({a}, {b}, {amount}, randomblob({}));
                     UPDATE counter SET n = n + 1;
                     COMMIT;",
                    50 + n % 1500
                ))
                .expect("a writer transaction");
                n += 1;
                // A breath between commits, as any app has: back-to-back commits
                // in rollback mode can starve a reader's retries indefinitely
                // (each snapshot takes a read lock three times: open, the
                // unchanged-state probe, the capture).
                std::thread::sleep(Duration::from_millis(2));
            }
            n
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let mut ids = Vec::new();
    for _ in 0..4 {
        let s = t
            .lb()
            .args(["snapshot"])
            .arg(&db)
            .env("LUMINA_BACKUP_NO_DBPAGE", "1")
            .json();
        ids.push(id_of(&s));
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().expect("the writer");
    let mut counters = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let manifest: serde_json::Value =
            serde_json::from_slice(&t.lb().args(["cat", id, "manifest.json"]).ok().stdout)
                .expect("manifest.json");
        assert_eq!(manifest["capture_route"], fallback);
        let out = t.path(&format!("restored-{i}.db"));
        t.lb().args(["restore", id, "--to"]).arg(&out).ok();
        counters.push(check_consistent(&out));
    }
    eprintln!("{mode}: {written} transactions; snapshots saw {counters:?}");
    assert!(counters.windows(2).all(|w| w[0] <= w[1]), "{counters:?}");
    assert!(
        counters.last() > counters.first(),
        "no progress: {counters:?}"
    );
}

/// Issue #9 "capture in any build": the wal-file route keeps the capture one
/// consistent committed state while another connection keeps writing (WAL).
#[test]
fn wal_file_route_is_consistent_under_a_live_writer() {
    snapshots_during_writes("WAL", "wal-file");
}

/// Issue #9 "capture in any build": the file route keeps the capture one
/// consistent committed state while another connection keeps writing (rollback
/// journal: the writer waits for the shared lock).
#[test]
fn file_route_is_consistent_under_a_live_writer() {
    snapshots_during_writes("DELETE", "file");
}

/// Copies the example crate to a folder outside the repository (so Cargo does
/// not read this repository's `.cargo/config.toml`), pointing its path
/// dependency back here, with this repository's `Cargo.lock`.
fn example_outside_repo(repo: &Path) -> PathBuf {
    let key = blake3::hash(repo.to_string_lossy().as_bytes()).to_hex();
    let dir = std::env::temp_dir().join(format!("lumina-embed-example-{}", &key[..12]));
    std::fs::create_dir_all(dir.join("src")).expect("example folder");
    let example = repo.join("examples/embed");
    let manifest = std::fs::read_to_string(example.join("Cargo.toml")).expect("Cargo.toml");
    let pointed = manifest.replace(
        r#"path = "../..""#,
        &format!("path = {:?}", repo.to_string_lossy()),
    );
    assert_ne!(
        manifest, pointed,
        "the example depends on the library by path"
    );
    let write_if_changed = |to: PathBuf, bytes: &[u8]| {
        if std::fs::read(&to).ok().as_deref() != Some(bytes) {
            std::fs::write(&to, bytes).expect("writing the example");
        }
    };
    write_if_changed(dir.join("Cargo.toml"), pointed.as_bytes());
    write_if_changed(
        dir.join("src/main.rs"),
        &std::fs::read(example.join("src/main.rs")).expect("main.rs"),
    );
    std::fs::copy(repo.join("Cargo.lock"), dir.join("Cargo.lock")).expect("Cargo.lock");
    dir
}

/// Issue #9 "capture in any build": an app crate depending on the library by
/// path, built without this repository's build flags (so its SQLite lacks
/// `sqlite_dbpage`), snapshots a WAL and a rollback-journal database and
/// restores them byte-identical. Builds SQLite once more (slow the first time).
#[test]
fn embed_example_builds_without_our_flags_and_restores_byte_identical() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = example_outside_repo(repo);
    let target = repo.join("target/embed");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let build = Command::new(cargo)
        .args(["build", "--offline", "--quiet", "--target-dir"])
        .arg(&target)
        .current_dir(&dir)
        // `cargo test` passes this repository's `[env]` to the tests: an app's
        // build does not have it.
        .env_remove("LIBSQLITE3_FLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .expect("running cargo");
    assert!(
        build.status.success(),
        "building the example failed:\n{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let t = TestDir::new("embed");
    let run = Command::new(target.join("debug/lumina-embed-example"))
        .arg(t.path("work"))
        .output()
        .expect("running the example");
    let out = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(
        run.status.success(),
        "the example failed:\n{out}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    // Really built without the flag: the probe found no sqlite_dbpage.
    assert!(out.contains("dbpage false\n"), "{out}");
    assert!(out.contains("route wal.db wal-file\n"), "{out}");
    assert!(out.contains("route rollback.db file\n"), "{out}");
    assert_eq!(out.matches("identical ").count(), 2, "{out}");
}

/// A rollback-journal database is read from its file by default (large reads
/// under the shared lock, so the app waits less), and a WAL database through
/// `sqlite_dbpage` when this build has it.
#[test]
fn default_routes_by_journal_mode() {
    for (mode, want) in [("DELETE", "file"), ("WAL", "dbpage")] {
        let t = TestDir::new(&format!("default-route-{mode}"));
        t.init();
        let db = t.path("app.db");
        let _app = make_db(&db, mode);
        let id = id_of(&t.lb().args(["snapshot"]).arg(&db).json());
        let manifest: serde_json::Value =
            serde_json::from_slice(&t.lb().args(["cat", &id, "manifest.json"]).ok().stdout)
                .expect("manifest.json");
        assert_eq!(manifest["capture_route"], want, "{mode}");
    }
}
