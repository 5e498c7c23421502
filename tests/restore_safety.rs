//! Invariants of `restore` toward the user's files (issue #8):
//! - a `-journal` beside the target is never replayed over the restored image; a
//!   journal that is not the target's is set aside, never deleted (item 1);
//! - a database another process has open is not replaced under it: refused (exit
//!   2, naming the pid) unless `--live`, which restores through SQLite so the
//!   connected app sees the restored content (item 3);
//! - `--all --force` never overwrites a file without keeping its bytes (item 4);
//! - a symlinked target keeps its link; the link's target is restored (item 7);
//! - a replaced file keeps its owner, group and mode; a new one follows the umask
//!   (item 8);
//! - when SQLite's check cannot run or fails, the error names the target and the
//!   way out (`--no-check`, `--check quick`); the checksums are always verified
//!   (item 9); `quick_check` is the default, `--check full` runs
//!   `integrity_check` and `foreign_key_check` and reports their times apart
//!   (issue #10 item 5);
//! - a damaged live database is saved byte for byte before it is replaced
//!   (item 18);
//! - nothing is restored inside a repository folder (item 29).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use common::*;

/// A plain database with table `kv` of `rows` rows, in `mode` (`wal` or `delete`).
fn kv_db(path: &Path, rows: i64, mode: &str) {
    let mut c = open(path);
    c.execute_batch(&format!(
        "PRAGMA journal_mode = {mode};
         CREATE TABLE IF NOT EXISTS kv(id INTEGER PRIMARY KEY, a INTEGER, pad BLOB);"
    ))
    .expect("schema");
    let tx = c.transaction().expect("tx");
    for i in 0..rows {
        tx.execute("INSERT INTO kv VALUES (?1, 10, randomblob(300))", [i])
            .expect("insert");
    }
    tx.commit().expect("commit");
}

fn count_kv(path: &Path) -> i64 {
    open(path)
        .query_row("SELECT count(*) FROM kv", [], |r| r.get(0))
        .expect("count")
}

/// Snapshot of a fresh `kv` database with `rows` rows; returns (id, its dump).
fn kv_snapshot(t: &TestDir, name: &str, rows: i64) -> (String, Dump) {
    let src = t.path(name);
    kv_db(&src, rows, "delete");
    let expected = dump(&src);
    let id = id_of(&t.lb().args(["snapshot"]).arg(&src).json());
    (id, expected)
}

fn pre_restore(t: &TestDir) -> Vec<serde_json::Value> {
    t.lb()
        .args(["snapshots", "--tag", "pre-restore"])
        .json()
        .as_array()
        .expect("array")
        .clone()
}

/// Files in `dir` whose name starts with `prefix`.
fn named_like(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("ls")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
        })
        .collect();
    v.sort();
    v
}

/// Leaves a hot rollback journal for `db` (a `delete`-mode database): inside an
/// open write transaction that has spilled pages into the file, the database and
/// its journal are copied to `crash_db` (+ `-journal`), as a killed writer leaves
/// them. Returns the copied journal's path.
fn crashed_copy(db: &Path, crash_db: &Path) -> PathBuf {
    let script = r#"
import sqlite3, sys, shutil
src, dst = sys.argv[1], sys.argv[2]
c = sqlite3.connect(src, isolation_level=None)
c.execute('PRAGMA cache_size = 5')
c.execute('BEGIN IMMEDIATE')
c.execute('UPDATE kv SET a = a + 1000, pad = randomblob(300)')
c.execute('DELETE FROM kv WHERE id % 3 = 0')
shutil.copyfile(src, dst)
shutil.copyfile(src + '-journal', dst + '-journal')
c.execute('ROLLBACK')
"#;
    let st = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(db)
        .arg(crash_db)
        .status()
        .expect("python3 is needed for this test");
    assert!(st.success());
    let j = sidecar(crash_db, "-journal");
    assert!(std::fs::metadata(&j).expect("journal copied").len() > 512);
    j
}

/// Issue #8 item 1: a hot journal of another database beside a new target is set
/// aside (kept), never replayed over the restored image.
#[test]
fn journal_beside_a_new_target_is_set_aside_not_replayed() {
    let t = TestDir::new("journal-new");
    t.init();
    let (id, expected) = kv_snapshot(&t, "src.db", 400);
    let other = t.path("other.db");
    kv_db(&other, 600, "delete");
    let target = t.path("target.db");
    let journal_bytes = std::fs::read(crashed_copy(&other, &t.path("scratch.db"))).expect("j");
    std::fs::write(sidecar(&target, "-journal"), &journal_bytes).expect("stale journal");

    t.lb().args(["restore", &id, "--to"]).arg(&target).ok();
    assert!(
        !sidecar(&target, "-journal").exists(),
        "the stale journal is still beside the target"
    );
    assert_eq!(dump(&target), expected, "the journal was replayed");
    assert!(integrity_ok(&target));
    let aside = named_like(t.root(), "target.db-journal.");
    assert_eq!(aside.len(), 1, "the journal is kept aside: {aside:?}");
    assert_eq!(std::fs::read(&aside[0]).expect("aside"), journal_bytes);
}

/// The `pre-restore` snapshot whose note starts with "raw bytes", restored
/// (without SQLite's check) to a new file; its bytes.
fn raw_pre_restore_bytes(t: &TestDir, name: &str) -> Vec<u8> {
    let raw: Vec<serde_json::Value> = pre_restore(t)
        .into_iter()
        .filter(|s| {
            s["note"]
                .as_str()
                .is_some_and(|n| n.starts_with("raw bytes"))
        })
        .collect();
    assert_eq!(raw.len(), 1, "one raw pre-restore snapshot: {raw:?}");
    let out = t.path(name);
    t.lb()
        .args(["restore", &id_of(&raw[0]), "--no-check", "--to"])
        .arg(&out)
        .ok();
    std::fs::read(&out).expect("raw copy")
}

/// Issue #8 item 1: the target's own hot journal (a killed writer) is rolled back
/// by SQLite before the pre-restore save, and never replayed over the image; the
/// bytes found and the journal are kept too.
#[test]
fn own_hot_journal_is_rolled_back_then_the_image_installed() {
    let t = TestDir::new("journal-own");
    t.init();
    let (id, expected) = kv_snapshot(&t, "src.db", 400);
    let live = t.path("live.db");
    kv_db(&live, 900, "delete");
    let committed = dump(&live);
    let target = t.path("target.db");
    let journal = std::fs::read(crashed_copy(&live, &target)).expect("journal");
    let found = std::fs::read(&target).expect("crashed db");

    let report = t
        .lb()
        .args(["restore", &id, "--force", "--to"])
        .arg(&target)
        .json();
    assert!(!sidecar(&target, "-journal").exists());
    assert_eq!(dump(&target), expected);
    let saved = t.path("saved.db");
    let pre = report["pre_restore"].as_str().expect("pre-restore id");
    t.lb().args(["restore", pre, "--to"]).arg(&saved).ok();
    assert_eq!(
        dump(&saved),
        committed,
        "pre-restore is the committed state"
    );
    assert_eq!(raw_pre_restore_bytes(&t, "raw.db"), found);
    let aside = named_like(t.root(), "target.db-journal.");
    assert_eq!(aside.len(), 1, "the journal is kept aside: {aside:?}");
    assert_eq!(std::fs::read(&aside[0]).expect("aside"), journal);
}

/// Issue #8 item 1: a journal of another database with the same page size looks
/// like the target's own and SQLite rolls it in; the bytes the target had are
/// kept (raw pre-restore snapshot), so nothing is lost.
#[test]
fn same_page_size_foreign_journal_loses_nothing() {
    let t = TestDir::new("journal-alien");
    t.init();
    let (id, expected) = kv_snapshot(&t, "src.db", 400);
    let other = t.path("other.db");
    kv_db(&other, 600, "delete");
    let journal = std::fs::read(crashed_copy(&other, &t.path("scratch.db"))).expect("j");
    let target = t.path("target.db");
    kv_db(&target, 300, "delete");
    let original = std::fs::read(&target).expect("target");
    std::fs::write(sidecar(&target, "-journal"), &journal).expect("journal");

    t.lb()
        .args(["restore", &id, "--force", "--to"])
        .arg(&target)
        .ok();
    assert_eq!(dump(&target), expected);
    assert!(!sidecar(&target, "-journal").exists());
    assert_eq!(raw_pre_restore_bytes(&t, "raw.db"), original);
}

/// Issue #8 item 1: a journal that cannot be the target's (another page size)
/// is set aside before SQLite opens the target, so it is never rolled back into
/// the saved state nor replayed over the image.
#[test]
fn foreign_journal_beside_an_existing_target_is_set_aside() {
    let t = TestDir::new("journal-foreign");
    t.init();
    let (id, expected) = kv_snapshot(&t, "src.db", 400);
    let other = t.path("other.db");
    {
        let c = open(&other);
        c.execute_batch(
            "PRAGMA page_size = 1024; PRAGMA journal_mode = delete;
             CREATE TABLE kv(id INTEGER PRIMARY KEY, a INTEGER, pad BLOB);",
        )
        .expect("ps");
    }
    kv_db(&other, 800, "delete");
    let journal_bytes = std::fs::read(crashed_copy(&other, &t.path("scratch.db"))).expect("j");
    let target = t.path("target.db");
    kv_db(&target, 300, "delete");
    let previous = dump(&target);
    std::fs::write(sidecar(&target, "-journal"), &journal_bytes).expect("stale journal");

    let report = t
        .lb()
        .args(["restore", &id, "--force", "--to"])
        .arg(&target)
        .json();
    assert_eq!(dump(&target), expected);
    let saved = t.path("saved.db");
    let pre = report["pre_restore"].as_str().expect("pre-restore id");
    t.lb().args(["restore", pre, "--to"]).arg(&saved).ok();
    assert_eq!(
        dump(&saved),
        previous,
        "the foreign journal was rolled back"
    );
    let aside = named_like(t.root(), "target.db-journal.");
    assert_eq!(aside.len(), 1, "the journal is kept aside: {aside:?}");
    assert_eq!(std::fs::read(&aside[0]).expect("aside"), journal_bytes);
}

/// Another process holding a connection open on `db` (idle: no lock), which
/// answers queries read from its stdin.
struct Holder {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Holder {
    fn start(db: &Path) -> Holder {
        let script = r#"
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute('select count(*) from sqlite_schema').fetchall()
print('ready', flush=True)
for line in sys.stdin:
    try:
        print(c.execute(line).fetchall()[0][0], flush=True)
    except Exception as e:
        print('error', e, flush=True)
"#;
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(db)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 is needed for this test");
        let stdin = child.stdin.take().expect("stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("reading");
        assert_eq!(line.trim(), "ready");
        Holder {
            child,
            stdin,
            stdout,
        }
    }

    fn query(&mut self, sql: &str) -> String {
        writeln!(self.stdin, "{sql}").expect("writing");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("reading");
        line.trim().to_string()
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn refuses_while_open(mode: &str) {
    let t = TestDir::new(&format!("open-{mode}"));
    t.init();
    let (id, expected) = kv_snapshot(&t, "src.db", 50);
    let target = t.path("app.db");
    kv_db(&target, 700, mode);
    let before = std::fs::read(&target).expect("read");
    let mut holder = Holder::start(&target);
    assert_eq!(holder.query("select count(*) from kv"), "700");

    let r = t
        .lb()
        .args(["restore", &id, "--force", "--to"])
        .arg(&target)
        .run();
    r.expect_code(2).expect_one_stderr_line();
    let pid = holder.child.id().to_string();
    assert!(
        r.stderr.contains("app.db") && r.stderr.contains(&pid) && r.stderr.contains("--live"),
        "stderr should name the target, pid {pid} and --live: {}",
        r.stderr
    );
    assert_eq!(
        std::fs::read(&target).expect("read"),
        before,
        "target changed"
    );
    assert!(pre_restore(&t).is_empty(), "nothing is saved when refused");

    // --live restores through SQLite: the app's connection sees the snapshot.
    let report = t
        .lb()
        .args(["restore", &id, "--force", "--live", "--to"])
        .arg(&target)
        .json();
    assert!(report["pre_restore"].is_string());
    assert_eq!(holder.query("select count(*) from kv"), "50");
    assert_eq!(holder.query("select count(*) from kv where id >= 50"), "0");
    // And the app keeps writing to the file everyone sees.
    assert_eq!(
        holder.query("insert into kv values (9999, 1, null) returning id"),
        "9999"
    );
    drop(holder);
    assert_eq!(count_kv(&target), 51);
    let c = open(&target);
    let mut want = expected;
    let got = dump_conn(&c);
    // Only the row inserted afterwards differs.
    for (name, rows) in want.iter_mut() {
        if name == "kv" {
            rows.push(
                got.iter()
                    .find(|(n, _)| n == "kv")
                    .expect("kv")
                    .1
                    .iter()
                    .find(|r| r.starts_with("i9999|"))
                    .expect("new row")
                    .clone(),
            );
            rows.sort();
        }
    }
    assert_eq!(got, want);
    assert!(integrity_ok(&target));
}

/// Issue #8 item 3: an idle connection of another process (rollback mode, no
/// lock held) makes `restore --force` refuse; `--live` restores into it.
#[test]
fn restore_refuses_a_database_open_in_another_process_rollback_mode() {
    refuses_while_open("delete");
}

/// Issue #8 item 3: the same in WAL mode.
#[test]
fn restore_refuses_a_database_open_in_another_process_wal_mode() {
    refuses_while_open("wal");
}

/// Issue #8 item 4: `restore --all --force` keeps the bytes of every file it
/// would overwrite; files that are not the snapshot's are left alone.
#[test]
fn restore_all_force_keeps_the_files_it_replaces() {
    let t = TestDir::new("all-force");
    t.init();
    let db = t.path("lumina.db");
    create_lumina(&db, 40, 3);
    let a = id_of(&t.lb().args(["snapshot"]).arg(&db).json());
    touch_metadata_rows(&db, 5, 4);
    let b = id_of(&t.lb().args(["snapshot"]).arg(&db).json());
    let out = t.path("files");
    t.lb().args(["restore", &a, "--all", "--to"]).arg(&out).ok();
    std::fs::write(out.join("metadata.json"), b"my own edits").expect("edit");
    std::fs::write(out.join("notes.txt"), b"mine").expect("notes");

    let r = t
        .lb()
        .args(["restore", &b, "--all", "--to"])
        .arg(&out)
        .run();
    r.expect_code(2).expect_one_stderr_line();
    assert!(
        r.stderr.contains("NAME.pre-restore-"),
        "stderr: {}",
        r.stderr
    );
    t.lb()
        .args(["restore", &b, "--all", "--force", "--to"])
        .arg(&out)
        .ok();
    let kept: Vec<PathBuf> = named_like(&out, "metadata.json.")
        .into_iter()
        .filter(|p| std::fs::read(p).is_ok_and(|b| b == b"my own edits"))
        .collect();
    assert_eq!(kept.len(), 1, "the replaced file's bytes were not kept");
    assert_eq!(
        std::fs::read(out.join("notes.txt")).expect("notes"),
        b"mine"
    );
    let want = t.path("want.json");
    let bytes = t.lb().args(["cat", &b, "metadata.json"]).ok().stdout;
    std::fs::write(&want, &bytes).expect("w");
    assert_eq!(std::fs::read(out.join("metadata.json")).expect("m"), bytes);
}

/// Issue #8 item 7: restore onto a symlink writes the link's target, keeps the link.
#[test]
fn restore_onto_a_symlink_keeps_the_link() {
    let t = TestDir::new("symlink");
    t.init();
    let (id, expected) = kv_snapshot(&t, "src.db", 120);
    std::fs::create_dir(t.path("real")).expect("mkdir");
    let real = t.path("real/app.db");
    kv_db(&real, 10, "delete");
    let link = t.path("link.db");
    std::os::unix::fs::symlink("real/app.db", &link).expect("symlink");

    t.lb()
        .args(["restore", &id, "--force", "--to"])
        .arg(&link)
        .ok();
    let meta = std::fs::symlink_metadata(&link).expect("link");
    assert!(meta.file_type().is_symlink(), "the link was replaced");
    assert_eq!(
        std::fs::read_link(&link).expect("readlink"),
        Path::new("real/app.db")
    );
    assert_eq!(dump(&real), expected, "the link's target was not restored");
    assert!(integrity_ok(&real));

    // A dangling link: the file it names is created.
    std::fs::remove_file(&real).expect("rm");
    t.lb().args(["restore", &id, "--to"]).arg(&link).ok();
    assert!(std::fs::symlink_metadata(&link)
        .expect("l")
        .file_type()
        .is_symlink());
    assert_eq!(dump(&real), expected);
}

/// Issue #8 item 8: a replaced database keeps owner, group and mode; a new file
/// gets 0666 minus the umask (the user's file, not a repository file).
#[test]
fn restore_keeps_owner_and_mode_and_new_files_follow_the_umask() {
    let t = TestDir::new("owner");
    t.init();
    let (id, _) = kv_snapshot(&t, "src.db", 30);
    let target = t.path("app.db");
    kv_db(&target, 5, "delete");
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o664)).expect("chmod");
    let chowned = std::os::unix::fs::chown(&target, Some(65534), Some(65534)).is_ok();
    t.lb()
        .args(["restore", &id, "--force", "--to"])
        .arg(&target)
        .ok();
    let m = std::fs::metadata(&target).expect("meta");
    assert_eq!(m.permissions().mode() & 0o7777, 0o664, "mode changed");
    if chowned {
        assert_eq!((m.uid(), m.gid()), (65534, 65534), "owner changed");
    } else {
        eprintln!("skipping the owner check: chown needs root");
    }
    assert_eq!(count_kv(&target), 30);

    // A new file under umask 027 is 0640.
    let fresh = t.path("fresh.db");
    let st = Command::new("sh")
        .arg("-c")
        .arg("umask 027; exec \"$@\"")
        .arg("sh")
        .arg(BIN)
        .arg("--repo")
        .arg(t.repo())
        .args(["--quiet", "restore", &id, "--to"])
        .arg(&fresh)
        .env("HOME", t.root())
        .stdout(Stdio::null())
        .status()
        .expect("running");
    assert!(st.success());
    let mode = std::fs::metadata(&fresh)
        .expect("meta")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o640, "a new file follows the umask");
}

/// A database whose index uses collation `mycoll`, known only to the python3
/// process that made it (the application-defined collation of issue #8 item 9).
fn collation_db(path: &Path) -> Dump {
    let script = r#"
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.create_collation('mycoll', lambda a, b: (a.lower() > b.lower()) - (a.lower() < b.lower()))
c.execute('CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT)')
c.execute('CREATE INDEX t_name ON t(name COLLATE mycoll)')
c.execute('BEGIN')
for i in range(200):
    c.execute('INSERT INTO t(name) VALUES (?)', ('Name %d' % i,))
c.execute('COMMIT')
"#;
    let st = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(path)
        .status()
        .expect("python3 is needed for this test");
    assert!(st.success());
    rows_of_t(path)
}

fn rows_of_t(path: &Path) -> Dump {
    let c = open(path);
    let rows: Vec<String> = c
        .prepare("SELECT id || ':' || name FROM t ORDER BY id")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("rows");
    vec![("t".into(), rows)]
}

/// Issue #8 item 9: an image SQLite cannot check (application-defined collation)
/// is refused with a line naming the target and `--no-check`; `--no-check`
/// restores it, checksums verified.
#[test]
fn restore_of_an_uncheckable_image_names_the_target_and_no_check() {
    let t = TestDir::new("collation");
    t.init();
    let src = t.path("coll.db");
    let expected = collation_db(&src);
    let snap = t.lb().args(["snapshot"]).arg(&src).json();
    let id = id_of(&snap);
    let target = t.path("restored-coll.db");
    let r = t.lb().args(["restore", &id, "--to"]).arg(&target).run();
    r.expect_code(1).expect_one_stderr_line();
    assert!(
        r.stderr.contains("restored-coll.db")
            && !r.stderr.contains(".tmp-")
            && r.stderr.contains("--no-check")
            && r.stderr.contains("mycoll"),
        "stderr: {}",
        r.stderr
    );
    assert!(!target.exists());
    assert!(named_like(t.root(), ".tmp-").is_empty(), "temp file left");

    t.lb()
        .args(["restore", &id, "--no-check", "--to"])
        .arg(&target)
        .ok();
    assert_eq!(blake3_file(&target), blake3_file(&src));
    assert_eq!(rows_of_t(&target), expected);
}

/// Issue #8 item 9: an image with index-only corruption fails the full check
/// (named, with the way out); `--check quick` and `--no-check` restore it.
#[test]
fn restore_of_an_image_failing_integrity_check_offers_quick_and_no_check() {
    let t = TestDir::new("index-corrupt");
    t.init();
    let src = t.path("idx.db");
    {
        let c = open(&src);
        c.execute_batch(
            "PRAGMA journal_mode = delete;
             CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b TEXT);
             CREATE INDEX t_a ON t(a);",
        )
        .expect("schema");
        for i in 0..300 {
            c.execute(
                "INSERT INTO t(a, b) VALUES (?1, ?2)",
                [format!("a{i}"), format!("b{}", 1000 - i)],
            )
            .expect("insert");
        }
        // The index now claims to be on column b: its entries no longer match.
        c.execute_batch(
            "PRAGMA writable_schema = ON;
             UPDATE sqlite_schema SET sql = 'CREATE INDEX t_a ON t(b)' WHERE name = 't_a';
             PRAGMA writable_schema = OFF;",
        )
        .expect("damage the index");
    }
    assert!(!integrity_ok(&src));
    let id = id_of(&t.lb().args(["snapshot"]).arg(&src).json());
    let target = t.path("restored-idx.db");
    let r = t
        .lb()
        .args(["restore", &id, "--check", "full", "--to"])
        .arg(&target)
        .run();
    r.expect_code(1).expect_one_stderr_line();
    assert!(
        r.stderr.contains("restored-idx.db")
            && r.stderr.contains("integrity_check")
            && r.stderr.contains("--no-check")
            && !r.stderr.contains(".tmp-"),
        "stderr: {}",
        r.stderr
    );
    assert!(!target.exists());
    t.lb()
        .args(["restore", &id, "--check", "quick", "--to"])
        .arg(&target)
        .ok();
    assert_eq!(blake3_file(&target), blake3_file(&src));
    std::fs::remove_file(&target).expect("rm");
    // quick_check is the default.
    t.lb().args(["restore", &id, "--to"]).arg(&target).ok();
    assert_eq!(blake3_file(&target), blake3_file(&src));
    std::fs::remove_file(&target).expect("rm");
    t.lb()
        .args(["restore", &id, "--no-check", "--to"])
        .arg(&target)
        .ok();
    assert_eq!(blake3_file(&target), blake3_file(&src));
    let r = t
        .lb()
        .args(["restore", &id, "--no-check", "--check", "full", "--to"])
        .arg(t.path("x.db"))
        .run();
    r.expect_code(2);
}

/// Damages `db`'s b-tree pages past the header (not page 1's header), so SQLite
/// opens it and then reports "database disk image is malformed".
fn damage(db: &Path, at: u64) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(db)
        .expect("open");
    f.write_all_at(&[0xAB; 700], at).expect("damage");
}

fn corrupted_restore(t: &TestDir, at: u64) {
    let (id, expected) = kv_snapshot(t, "src.db", 80);
    let target = t.path("broken.db");
    kv_db(&target, 500, "delete");
    damage(&target, at);
    let damaged = std::fs::read(&target).expect("read");

    let report = t
        .lb()
        .args(["restore", &id, "--force", "--to"])
        .arg(&target)
        .json();
    assert_eq!(dump(&target), expected);
    let pre = pre_restore(t);
    assert_eq!(pre.len(), 1, "one pre-restore snapshot");
    assert_eq!(pre[0]["id"], report["pre_restore"]);
    let note = pre[0]["note"].as_str().expect("note");
    assert!(
        note.contains("raw"),
        "the note says it is a raw copy: {note}"
    );
    let pid = id_of(&pre[0]);
    let saved = t.path("saved.db");
    t.lb()
        .args(["restore", &pid, "--no-check", "--to"])
        .arg(&saved)
        .ok();
    assert_eq!(
        std::fs::read(&saved).expect("saved"),
        damaged,
        "bytes differ"
    );
    t.lb().args(["verify", "--read-data"]).ok();
}

/// Issue #8 item 18: `restore --force` over a database with a damaged table
/// saves its bytes as they are (a raw pre-restore snapshot), then restores.
#[test]
fn restore_force_over_a_damaged_database_saves_its_bytes() {
    let t = TestDir::new("damaged-table");
    t.init();
    corrupted_restore(&t, 4096);
}

/// Issue #8 item 18: the same when the schema page itself is damaged.
#[test]
fn restore_force_over_a_damaged_schema_saves_its_bytes() {
    let t = TestDir::new("damaged-schema");
    t.init();
    corrupted_restore(&t, 100);
}

/// Issue #8 item 29: no restore into a repository folder (this one or another).
#[test]
fn restore_refuses_targets_inside_a_repository() {
    let t = TestDir::new("into-repo");
    t.init();
    let (id, _) = kv_snapshot(&t, "src.db", 20);
    for target in [
        t.repo().join("packs/x.db"),
        t.repo().join("x.db"),
        t.repo().join("snapshots/x.db"),
    ] {
        let r = t.lb().args(["restore", &id, "--to"]).arg(&target).run();
        r.expect_code(2).expect_one_stderr_line();
        assert!(r.stderr.contains("repository"), "stderr: {}", r.stderr);
        assert!(!target.exists());
    }
    let r = t
        .lb()
        .args(["restore", &id, "--all", "--to"])
        .arg(t.repo().join("packs/extra"))
        .run();
    r.expect_code(2).expect_one_stderr_line();
    assert!(!t.repo().join("packs/extra").exists());
    // Another repository's folder too.
    let other = t.path("other-repo");
    Lb::new(&other, t.root()).args(["init"]).ok();
    let r = t
        .lb()
        .args(["restore", &id, "--to"])
        .arg(other.join("x.db"))
        .run();
    r.expect_code(2).expect_one_stderr_line();
    t.lb().args(["snapshots"]).ok();
    t.lb().args(["verify"]).ok();
}

/// Issue #10 item 5: `--check full` runs `integrity_check` then
/// `foreign_key_check` and reports both times; the default is `quick_check`
/// alone. A row whose parent is missing passes the quick check (the captured
/// state is restored as it was) and is refused by the full one.
#[test]
fn check_full_runs_integrity_and_foreign_key_checks_and_reports_both() {
    let t = TestDir::new("check-full");
    t.init();
    let src = t.path("fk.db");
    {
        let c = open(&src);
        c.execute_batch(
            "PRAGMA journal_mode = delete;
             CREATE TABLE parent(id INTEGER PRIMARY KEY);
             CREATE TABLE child(id INTEGER PRIMARY KEY, p INTEGER REFERENCES parent(id));
             INSERT INTO parent VALUES (1), (2);
             INSERT INTO child VALUES (10, 1), (11, 2);",
        )
        .expect("schema");
    }
    let good = id_of(&t.lb().args(["snapshot"]).arg(&src).json());

    let target = t.path("full.db");
    let full = t
        .lb()
        .args(["restore", &good, "--check", "full", "--to"])
        .arg(&target)
        .json();
    assert_eq!(full["check"], "integrity_check");
    assert!(full["integrity_check_secs"].as_f64().is_some(), "{full}");
    assert!(full["foreign_key_check_secs"].as_f64().is_some(), "{full}");
    assert_eq!(blake3_file(&target), blake3_file(&src));
    std::fs::remove_file(&target).expect("rm");
    let human = t
        .lb()
        .args(["restore", &good, "--check", "full", "--to"])
        .arg(&target)
        .ok()
        .out();
    assert!(
        human.contains("integrity_check and foreign_key_check ok")
            && human.contains("integrity_check took")
            && human.contains("foreign_key_check"),
        "{human}"
    );
    std::fs::remove_file(&target).expect("rm");
    let quick = t.lb().args(["restore", &good, "--to"]).arg(&target).json();
    assert_eq!(quick["check"], "quick_check");
    assert!(quick["integrity_check_secs"].as_f64().is_some(), "{quick}");
    assert!(quick["foreign_key_check_secs"].is_null(), "{quick}");
    std::fs::remove_file(&target).expect("rm");

    // An orphan row (foreign keys off, as many apps leave them).
    open(&src)
        .execute_batch("PRAGMA foreign_keys = OFF; INSERT INTO child VALUES (12, 99);")
        .expect("orphan");
    let orphan = id_of(&t.lb().args(["snapshot"]).arg(&src).json());
    let r = t
        .lb()
        .args(["restore", &orphan, "--check", "full", "--to"])
        .arg(&target)
        .run();
    r.expect_code(1).expect_one_stderr_line();
    assert!(
        r.stderr.contains("foreign_key_check")
            && r.stderr.contains("row 12 of child")
            && r.stderr.contains("--check quick"),
        "stderr: {}",
        r.stderr
    );
    assert!(!target.exists(), "a refused restore created the target");
    t.lb().args(["restore", &orphan, "--to"]).arg(&target).ok();
    assert_eq!(blake3_file(&target), blake3_file(&src));
}
