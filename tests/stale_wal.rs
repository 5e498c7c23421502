//! Invariant: a restore installs exactly the snapshot's state, whatever `-wal`
//! file lies beside the target. A `-wal` left by a killed writer, or one copied
//! from an older state of the database, is never replayed over the restored
//! image; the target's previous state (as SQLite saw it, WAL included) is kept
//! as a snapshot tagged `pre-restore`. Without `--force` an existing target is
//! refused (exit 2) and left byte-for-byte unchanged.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;

/// A snapshot of a Lumina database to restore; returns (id, its content).
fn source_snapshot(t: &TestDir) -> (String, Dump) {
    let src = t.path("source.db");
    create_lumina(&src, 1500, 99);
    let expected = dump(&src);
    let snap = t.lb().args(["snapshot"]).arg(&src).json();
    (id_of(&snap), expected)
}

/// A database in WAL mode with a plain table, `rows` rows.
fn kv_db(path: &Path, rows: i64) {
    let mut c = open(path);
    c.execute_batch(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE kv(id INTEGER PRIMARY KEY, a INTEGER, b INTEGER, pad BLOB);",
    )
    .expect("schema");
    let tx = c.transaction().expect("tx");
    for i in 0..rows {
        tx.execute("INSERT INTO kv VALUES (?1, 10, 10, zeroblob(200))", [i])
            .expect("insert");
    }
    tx.commit().expect("commit");
}

fn pre_restore_snapshots(t: &TestDir) -> Vec<serde_json::Value> {
    t.lb()
        .args(["snapshots", "--tag", "pre-restore"])
        .json()
        .as_array()
        .expect("array")
        .clone()
}

/// Restores `id` over `target` with --force and checks the outcome: the target
/// holds `expected`, and the pre-restore snapshot holds `previous`.
fn force_restore_and_check(t: &TestDir, id: &str, target: &Path, expected: &Dump, previous: &Dump) {
    let before = pre_restore_snapshots(t).len();
    let report = t
        .lb()
        .args(["restore", id, "--force", "--to"])
        .arg(target)
        .json();
    assert!(
        report["pre_restore"].is_string(),
        "no pre-restore snapshot reported: {report}"
    );
    assert!(
        integrity_ok(target),
        "restored target fails integrity_check"
    );
    // Opening normally would replay any -wal beside the target.
    assert_eq!(
        &dump(target),
        expected,
        "the target does not hold the snapshot's state"
    );
    assert_eq!(&dump(target), expected, "reopening changed the target");

    let pre = pre_restore_snapshots(t);
    assert_eq!(pre.len(), before + 1, "one pre-restore snapshot is added");
    let p = pre.last().expect("pre-restore");
    assert_eq!(p["id"], report["pre_restore"]);
    let canon = std::fs::canonicalize(target).expect("canonical");
    assert_eq!(p["db"], canon.to_string_lossy().as_ref());
    let saved = t.path("saved-previous.db");
    let _ = std::fs::remove_file(&saved);
    t.lb().args(["restore", &id_of(p), "--to"]).arg(&saved).ok();
    assert_eq!(
        &dump(&saved),
        previous,
        "pre-restore snapshot is not the previous state"
    );
}

#[test]
fn wal_left_by_a_killed_writer_is_not_replayed_over_the_restore() {
    let t = TestDir::new("killed-writer");
    t.init();
    let (id, expected) = source_snapshot(&t);
    let target = t.path("target.db");
    kv_db(&target, 3000);

    // A writer commits into the WAL (no checkpoint) and is killed.
    let script = "
import sqlite3, sys, time
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute('PRAGMA wal_autocheckpoint=0')
for i in range(20):
    con.execute('UPDATE kv SET a = a + 1, pad = randomblob(200) WHERE id % 20 = ?', (i,))
con.execute('INSERT INTO kv VALUES (100000, 1, 1, NULL)')
print('committed', flush=True)
time.sleep(600)
";
    let mut writer = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&target)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 is needed for this test");
    let mut line = String::new();
    BufReader::new(writer.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("reading");
    assert_eq!(line.trim(), "committed");
    writer.kill().expect("SIGKILL");
    writer.wait().expect("reaped");
    let wal = sidecar(&target, "-wal");
    assert!(std::fs::metadata(&wal).expect("wal left").len() > 0);

    // The previous state as SQLite sees it: the file plus its committed WAL.
    let previous = dump_via_copy(&target);
    assert!(previous
        .iter()
        .any(|(n, rows)| n == "kv" && rows.len() == 3001));

    force_restore_and_check(&t, &id, &target, &expected, &previous);
    t.lb().args(["verify", "--read-data"]).ok();
}

#[test]
fn wal_from_an_older_state_is_not_replayed_over_the_restore() {
    let t = TestDir::new("older-wal");
    t.init();
    let (id, expected) = source_snapshot(&t);
    let target = t.path("target.db");
    kv_db(&target, 3000);

    // State B lives only in a WAL, which we keep a copy of.
    let stale = t.path("stale-wal");
    {
        let c = open(&target);
        c.execute_batch(
            "PRAGMA wal_autocheckpoint = 0;
             UPDATE kv SET a = a + 1 WHERE id % 7 = 0;",
        )
        .expect("state B");
        std::fs::copy(sidecar(&target, "-wal"), &stale).expect("copying the wal");
    }
    // State C, checkpointed into the file; then the old WAL is put back.
    {
        let c = open(&target);
        c.execute_batch("UPDATE kv SET b = b + 1 WHERE id % 5 = 0;")
            .expect("state C");
    }
    checkpoint(&target);
    let _ = std::fs::remove_file(sidecar(&target, "-shm"));
    std::fs::copy(&stale, sidecar(&target, "-wal")).expect("stale wal in place");

    let previous = dump_via_copy(&target);
    let file_only = t.path("file-only.db");
    std::fs::copy(&target, &file_only).expect("copy");
    assert_ne!(
        previous,
        dump(&file_only),
        "the stale WAL must change what SQLite sees"
    );
    force_restore_and_check(&t, &id, &target, &expected, &previous);
    t.lb().args(["verify", "--read-data"]).ok();
}

#[test]
fn orphan_wal_beside_a_missing_target_is_not_replayed() {
    let t = TestDir::new("orphan-wal");
    t.init();
    let (id, expected) = source_snapshot(&t);
    // A -wal from some other database lies where the target will be.
    let other = t.path("other.db");
    kv_db(&other, 500);
    {
        let c = open(&other);
        c.execute_batch("PRAGMA wal_autocheckpoint = 0; UPDATE kv SET a = 99;")
            .expect("wal");
        let target = t.path("target.db");
        std::fs::copy(sidecar(&other, "-wal"), sidecar(&target, "-wal")).expect("orphan wal");
    }
    let target = t.path("target.db");
    assert!(!target.exists());
    t.lb().args(["restore", &id, "--to"]).arg(&target).ok();
    assert!(integrity_ok(&target));
    assert_eq!(dump(&target), expected);
    assert!(
        pre_restore_snapshots(&t).is_empty(),
        "nothing to save: no target existed"
    );
}

#[test]
fn existing_target_without_force_is_refused_and_untouched() {
    let t = TestDir::new("no-force");
    t.init();
    let (id, _) = source_snapshot(&t);
    let target = t.path("target.db");
    kv_db(&target, 1000);
    let c = open(&target);
    c.execute_batch("PRAGMA wal_autocheckpoint = 0; UPDATE kv SET a = 5;")
        .expect("wal");
    let wal = sidecar(&target, "-wal");
    let (db_before, wal_before) = (
        std::fs::read(&target).expect("db"),
        std::fs::read(&wal).expect("wal"),
    );
    let r = t.lb().args(["restore", &id, "--to"]).arg(&target).run();
    r.expect_code(2).expect_one_stderr_line();
    assert!(
        r.stderr.contains("--force"),
        "the message says what to do: {}",
        r.stderr
    );
    assert_eq!(std::fs::read(&target).expect("db"), db_before);
    assert_eq!(std::fs::read(&wal).expect("wal"), wal_before);
    drop(c);
    assert!(pre_restore_snapshots(&t).is_empty());
    let leftovers: Vec<_> = std::fs::read_dir(t.root())
        .expect("ls")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left beside the target");
}
