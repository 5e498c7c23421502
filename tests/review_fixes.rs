//! Regression tests for the new-user review of the issue #8 work (items below
//! are the review's numbers). Invariants guarded:
//! - `latest` and `--at` never pick a `pre-restore` safety copy while the
//!   database has another snapshot, so repeating `restore latest --force` does
//!   not undo the first restore (item 1);
//! - a foreign file in `keys/` of a plain repository is a foreign file, not a
//!   key file; real key files still refuse a plaintext config (item 2);
//! - `demo --dir` and `export --out` never write inside a repository folder
//!   (item 3);
//! - a damaged `retention` file is replaced by `config set` and explained by
//!   `config show`; damage to small files comes with advice that fixes it (item 4);
//! - `verify` counts every chunk the snapshots name, missing ones included, and
//!   `status` says what makes an unknown deduplication known (item 5);
//! - restore messages say what happened: both safety snapshots of a hot
//!   journal, set-aside files, `--live` page-size mismatch and onto a new file,
//!   JSON usage errors with their argument, local times (item 6);
//! - a database with other hard links is not silently split from them (item 7);
//! - `diff` of a Lumina database covers every table, not only the four it
//!   exports (second review, item 1);
//! - `forget --keep-last` counts real snapshots, never `pre-restore` safety
//!   copies (second review, item 2);
//! - importing a CSV export says so, and `latest` of a database without
//!   snapshots says what to do (second review, items 3 and 5).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use rusqlite::Connection;
use serde_json::Value;

fn flip_byte(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).expect("read");
    let at = at.min(bytes.len() - 1);
    bytes[at] ^= 0x5a;
    std::fs::write(path, &bytes).expect("write");
}

fn snap_ids(v: &Value) -> Vec<String> {
    v.as_array().expect("array").iter().map(id_of).collect()
}

/// Review item 1: `latest` skips the `pre-restore` safety copy, so running
/// `restore latest --to DB --force` twice restores the same snapshot twice
/// (the second run used to put the state saved by the first one back).
#[test]
fn latest_skips_pre_restore_safety_copies() {
    let t = TestDir::new("latest-pre-restore");
    t.init();
    let db = t.path("app.db");
    make_db(&db, "good");
    let good = id_of(&t.lb().args(["snapshot"]).arg(&db).json());
    set_value(&db, "changed");

    let first = t
        .lb()
        .args(["restore", "latest", "--force", "--to"])
        .arg(&db)
        .json();
    assert_eq!(id_of(&first), good);
    let saved = first["pre_restore"]
        .as_str()
        .expect("pre-restore id")
        .to_string();
    assert_eq!(value(&db), "good");

    let second = t
        .lb()
        .args(["restore", "latest", "--force", "--to"])
        .arg(&db)
        .json();
    assert_eq!(id_of(&second), good, "latest is not the pre-restore copy");
    assert_eq!(value(&db), "good");

    // Every command that takes `latest` or `--at` agrees.
    let show = t.lb().args(["show", "latest"]).json();
    assert_eq!(id_of(&show), good, "{show}");
    let at = t.lb().args(["snapshots", "--at", "2200-01-01"]).json();
    assert_eq!(snap_ids(&at), vec![good.clone()]);
    let r = t
        .lb()
        .args(["restore", "--at", "2200-01-01", "--to"])
        .arg(t.path("at.db"))
        .json();
    assert_eq!(id_of(&r), good);
    let cat = t.lb().args(["cat", "latest", "manifest.json"]).ok();
    let cat_good = t.lb().args(["cat", &good, "manifest.json"]).ok();
    assert_eq!(cat.stdout, cat_good.stdout);

    // The safety copy stays reachable by its id.
    let back = t.path("back.db");
    t.lb().args(["restore", &saved, "--to"]).arg(&back).ok();
    assert_eq!(value(&back), "changed");

    // A database whose only snapshots are safety copies: `latest` is the newest.
    let other = t.path("other.db");
    make_db(&other, "other");
    let r = t
        .lb()
        .args(["restore", &good, "--force", "--to"])
        .arg(&other)
        .json();
    let other_saved = r["pre_restore"].as_str().expect("pre-restore").to_string();
    let show = t.lb().args(["show", "latest", "--db"]).arg(&other).json();
    assert_eq!(id_of(&show), other_saved);
}

/// Review item 2: a file in `keys/` whose name is not a key id does not make
/// a plain repository unusable; verify names it as foreign. A real key file
/// beside a plaintext config is still refused (downgrade protection).
#[test]
fn foreign_file_in_keys_of_a_plain_repository() {
    let t = TestDir::new("keys-foreign");
    t.init();
    let db = t.path("app.db");
    make_db(&db, "x");
    t.lb().args(["snapshot"]).arg(&db).ok();
    std::fs::write(t.repo().join("keys/foo"), "1\n").expect("foreign file");
    t.lb().args(["snapshots"]).ok();
    t.lb().args(["snapshot"]).arg(&db).ok();
    let r = t.lb().args(["verify", "--json"]).run();
    assert_eq!(r.code, Some(3), "{}{}", r.out(), r.stderr);
    let v = r.json();
    let ps: Vec<&str> = v["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        ps.iter()
            .any(|p| p.contains("foreign") && p.contains("keys/foo")),
        "{ps:?}"
    );
    std::fs::remove_file(t.repo().join("keys/foo")).expect("rm");

    // A name shaped like a key id counts as a key file.
    std::fs::write(t.repo().join("keys").join("ab".repeat(16)), "1\n").expect("key-like");
    let r = t.lb().args(["snapshots"]).run();
    r.expect_code(1).expect_one_stderr_line();
    assert!(r.stderr.contains("key files"), "{}", r.stderr);
}

/// Review item 3: `demo --dir` and `export --out` inside a repository folder
/// are refused up front (exit 2), as `restore --to` there is.
#[test]
fn demo_and_export_refuse_a_repository_folder() {
    let t = TestDir::new("inside-repo");
    t.init();
    let before = files_under(&t.repo());
    let r = t
        .lb()
        .arg("demo")
        .arg("--dir")
        .arg(t.repo().join("sub"))
        .run();
    r.expect_code(2).expect_one_stderr_line();
    assert!(r.stderr.contains("inside"), "{}", r.stderr);
    assert!(!t.repo().join("sub").exists(), "the demo wrote nothing");

    let db = t.path("lumina.db");
    create_lumina(&db, 20, 1);
    let id = id_of(&t.lb().args(["snapshot"]).arg(&db).json());
    let before_export = files_under(&t.repo());
    for (source, out, table) in [
        (db.to_string_lossy().into_owned(), "x.json", "tags"),
        (id.clone(), "y.json", "tags"),
        (db.to_string_lossy().into_owned(), "csv", "all"),
    ] {
        let r = t
            .lb()
            .args([
                "export", &source, "--table", table, "--format", "json", "--out",
            ])
            .arg(t.repo().join(out))
            .run();
        r.expect_code(2).expect_one_stderr_line();
        assert!(r.stderr.contains("inside"), "{}", r.stderr);
        assert!(!t.repo().join(out).exists());
    }
    assert_eq!(files_under(&t.repo()), before_export);
    let _ = before;
    t.lb().args(["verify"]).ok();
}

/// Review item 4: `config set` replaces a damaged `retention` file (saying so),
/// `config show` explains it, and small-file damage gives actionable advice.
#[test]
fn damaged_retention_is_replaced_by_config_set() {
    let t = TestDir::new("retention-damaged");
    t.init();
    t.lb().args(["config", "set", "keep-last", "3"]).ok();
    t.lb().args(["config", "set", "keep-daily", "7"]).ok();
    let retention = t.repo().join("retention");
    flip_byte(&retention, 20);

    let r = t.lb().args(["config", "show"]).run();
    r.expect_code(0);
    let all = format!("{}{}", r.out(), r.stderr);
    assert!(all.contains("damaged"), "{all}");
    assert!(all.contains("config set"), "{all}");
    assert!(!all.contains("verify --read-data"), "{all}");
    assert!(
        r.out().contains("repo-id"),
        "fixed settings shown: {}",
        r.out()
    );

    let r = t.lb().args(["forget", "--dry-run"]).run();
    assert_ne!(r.code, Some(0));
    assert!(r.stderr.contains("config set"), "{}", r.stderr);
    assert!(!r.stderr.contains("verify --read-data"), "{}", r.stderr);

    let r = t.lb().args(["config", "set", "keep-last", "2"]).run();
    r.expect_code(0);
    let all = format!("{}{}", r.out(), r.stderr);
    assert!(all.contains("damaged"), "says it replaced it: {all}");
    let got = t.lb().args(["config", "get", "keep-last"]).ok().out();
    assert_eq!(got.trim(), "2");
    let got = t.lb().args(["config", "get", "keep-daily"]).ok().out();
    assert_eq!(got.trim(), "", "the damaged rules are gone");
    t.lb().args(["verify"]).ok();
}

/// Review item 4: a damaged config or key file is explained with what fixes
/// it, not "run verify --read-data" (which only repeats the finding).
#[test]
fn damaged_config_and_key_advice_is_actionable() {
    let t = TestDir::new("config-advice");
    t.init();
    flip_byte(&t.repo().join("config"), 30);
    let r = t.lb().args(["snapshots"]).run();
    assert_ne!(r.code, Some(0));
    r.expect_one_stderr_line();
    assert!(!r.stderr.contains("verify --read-data"), "{}", r.stderr);
    assert!(r.stderr.contains("copy of the repository"), "{}", r.stderr);

    let t = TestDir::new("key-advice");
    let enc = || t.lb().env("LUMINA_BACKUP_PASSWORD", "pw one");
    enc().args(["init", "--encrypt"]).ok();
    let key = files_under(&t.repo().join("keys"));
    assert_eq!(key.len(), 1);
    let bytes = std::fs::read(&key[0]).expect("key");
    std::fs::write(&key[0], &bytes[..40]).expect("truncate");
    let r = enc().args(["snapshots"]).run();
    assert_ne!(r.code, Some(0));
    r.expect_one_stderr_line();
    assert!(!r.stderr.contains("verify --read-data"), "{}", r.stderr);
    assert!(
        r.stderr.contains("key remove") && r.stderr.contains("copy of the repository"),
        "{}",
        r.stderr
    );

    // A damaged second key: the advice (`key remove ID`) works.
    std::fs::write(&key[0], &bytes).expect("repair");
    enc()
        .args(["key", "add"])
        .env("LUMINA_BACKUP_NEW_PASSWORD", "pw two")
        .ok();
    let second = files_under(&t.repo().join("keys"))
        .into_iter()
        .find(|k| *k != key[0])
        .expect("second key");
    let id = second
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    std::fs::write(&second, b"garbage").expect("damage");
    let r = enc().args(["key", "list"]).run();
    assert_ne!(r.code, Some(0));
    assert!(
        r.stderr.contains(&format!("key remove {id}")),
        "{}",
        r.stderr
    );
    enc().args(["key", "remove", &id]).ok();
    enc().args(["key", "list"]).ok();
    enc().args(["verify"]).ok();
}

/// A database of random blobs (pages that do not compress away).
fn blob_db(path: &Path, rows: u32) {
    let c = open(path);
    c.execute_batch(&format!(
        "CREATE TABLE blobs(id INTEGER PRIMARY KEY, data BLOB);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
         INSERT INTO blobs SELECT i, randomblob(700) FROM n;"
    ))
    .expect("data");
}

/// Review item 5: after a lost pack and a new snapshot, verify counts the
/// chunks the damaged snapshots name but the store lacks; `status` says what
/// makes its deduplication known, and doing it does.
#[test]
fn verify_counts_missing_chunks_and_status_advice_is_true() {
    let t = TestDir::new("missing-counts");
    t.init();
    let db = t.path("data.db");
    blob_db(&db, 300);
    t.lb().args(["snapshot"]).arg(&db).ok();
    open(&db)
        .execute(
            "UPDATE blobs SET data = randomblob(700) WHERE id % 5 = 0",
            [],
        )
        .expect("change");
    for p in pack_files(&t.repo()) {
        std::fs::remove_file(p).expect("losing a pack");
    }
    t.lb().args(["snapshot"]).arg(&db).ok();
    let r = t.lb().args(["verify", "--json"]).run();
    assert_eq!(r.code, Some(3), "{}{}", r.out(), r.stderr);
    let v = r.json();
    let referenced = v["chunks_referenced"].as_u64().expect("referenced");
    let stored = v["chunks_stored"].as_u64().expect("stored");
    let missing = v["chunks_missing"].as_u64().expect("missing");
    assert!(missing > 0, "{v}");
    // Every stored chunk belongs to the new snapshot; the old one names more.
    assert_eq!(referenced, stored + missing, "{v}");

    let st = t.lb().args(["status"]).ok().out();
    assert!(st.contains("deduplication unknown"), "{st}");
    assert!(st.contains("repair snapshots"), "{st}");
    t.lb().args(["verify"]).run();
    t.lb().args(["repair", "snapshots"]).ok();
    let st = t.lb().args(["status"]).json();
    assert!(st["dedup_ratio"].as_f64().is_some(), "{st}");
    t.lb().args(["verify"]).ok();
}

/// A hot rollback journal for `db` (a delete-mode database with table `t`),
/// copied with the database to `crash_db`, as a killed writer leaves them.
fn crashed_copy(db: &Path, crash_db: &Path) {
    let script = r#"
import sqlite3, sys, shutil
src, dst = sys.argv[1], sys.argv[2]
c = sqlite3.connect(src, isolation_level=None)
c.execute('PRAGMA cache_size = 5')
c.execute('BEGIN IMMEDIATE')
c.execute("UPDATE t SET v = 'torn', pad = randomblob(300)")
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
    assert!(sidecar(crash_db, "-journal").exists());
}

/// `t` with 400 padded rows (so a transaction spills pages).
fn padded_db(path: &Path, v: &str) {
    let c = open(path);
    c.execute_batch(&format!(
        "PRAGMA journal_mode = delete;
         CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, pad BLOB);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 400)
         INSERT INTO t SELECT i, '{v}', randomblob(300) FROM n;"
    ))
    .expect("data");
}

/// Review item 6a: a hot journal beside the target makes two safety snapshots;
/// the output names both for what they are.
#[test]
fn hot_journal_restore_names_both_safety_snapshots() {
    let t = TestDir::new("hot-two");
    t.init();
    let src = t.path("src.db");
    padded_db(&src, "snap");
    let id = id_of(&t.lb().args(["snapshot"]).arg(&src).json());
    let live = t.path("live.db");
    padded_db(&live, "live");
    let target = t.path("target.db");
    crashed_copy(&live, &target);

    let r = t
        .lb()
        .args(["restore", &id, "--force", "--to"])
        .arg(&target)
        .ok();
    let out = r.out();
    let pre: Vec<Value> = t
        .lb()
        .args(["snapshots", "--tag", "pre-restore"])
        .json()
        .as_array()
        .expect("array")
        .clone();
    assert_eq!(pre.len(), 2, "{pre:?}");
    let short = |v: &Value| id_of(v)[..12].to_string();
    let (raw, rolled): (Vec<&Value>, Vec<&Value>) = pre.iter().partition(|s| {
        s["note"]
            .as_str()
            .is_some_and(|n| n.starts_with("raw bytes"))
    });
    assert!(
        out.contains(&format!(
            "bytes as found, with the journal: {}",
            short(raw[0])
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "state after SQLite rolled the journal back: {}",
            short(rolled[0])
        )),
        "{out}"
    );
    assert!(!out.contains("damaged"), "{out}");

    // JSON names both too.
    let src2 = t.path("target2.db");
    crashed_copy(&live, &src2);
    let v = t
        .lb()
        .args(["restore", &id, "--force", "--to"])
        .arg(&src2)
        .json();
    assert!(v["pre_restore"].is_string(), "{v}");
    assert!(v["pre_restore_as_found"].is_string(), "{v}");
    assert_ne!(v["pre_restore"], v["pre_restore_as_found"]);
}

/// Review item 6b: files `--all --force` renames aside are not called "not
/// replayed" (that is for journals).
#[test]
fn restore_all_set_aside_wording() {
    let t = TestDir::new("all-aside");
    t.init();
    let db = t.path("lumina.db");
    create_lumina(&db, 20, 2);
    let id = id_of(&t.lb().args(["snapshot"]).arg(&db).json());
    let dir = t.path("files");
    t.lb()
        .args(["restore", &id, "--all", "--to"])
        .arg(&dir)
        .ok();
    std::fs::write(dir.join("tags.json"), "mine").expect("edit");
    let out = t
        .lb()
        .args(["restore", &id, "--all", "--force", "--to"])
        .arg(&dir)
        .ok()
        .out();
    let line = out
        .lines()
        .find(|l| l.contains("tags.json.pre-restore-"))
        .unwrap_or_else(|| panic!("a line names the kept file: {out}"));
    assert!(!line.contains("not replayed"), "{line}");
}

/// Review item 6c: `--live` into a WAL database of another page size is
/// refused up front in plain words; `--live` onto a new file restores it
/// normally without claiming to go through SQLite.
#[test]
fn live_restore_messages() {
    let t = TestDir::new("live-words");
    t.init();
    let src = t.path("src.db");
    make_db(&src, "snap");
    let id = id_of(&t.lb().args(["snapshot"]).arg(&src).json());
    let target = t.path("wal.db");
    {
        let c = Connection::open(&target).expect("db");
        c.execute_batch(
            "PRAGMA page_size = 1024; PRAGMA journal_mode = wal;
             CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (1, 'mine');",
        )
        .expect("wal db");
    }
    let before = std::fs::read(&target).expect("read");
    let r = t
        .lb()
        .args(["restore", &id, "--force", "--live", "--to"])
        .arg(&target)
        .run();
    r.expect_code(2).expect_one_stderr_line();
    assert!(
        r.stderr.contains("page size 1024") && r.stderr.contains("4096"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("without --live"), "{}", r.stderr);
    assert!(!r.stderr.contains("not an error"), "{}", r.stderr);
    assert_eq!(std::fs::read(&target).expect("read"), before);
    let pre = t.lb().args(["snapshots", "--tag", "pre-restore"]).json();
    assert!(
        pre.as_array().expect("a").is_empty(),
        "nothing saved: {pre}"
    );

    let new = t.path("new.db");
    let out = t
        .lb()
        .args(["restore", &id, "--live", "--to"])
        .arg(&new)
        .ok()
        .out();
    assert!(!out.contains("through SQLite"), "{out}");
    assert_eq!(value(&new), "snap");
}

/// Review item 6d: a usage error under `--json` names the missing argument.
#[test]
fn json_usage_error_names_the_argument() {
    let t = TestDir::new("json-usage");
    t.init();
    let r = t.lb().args(["--json", "restore", "latest"]).run();
    r.expect_code(2);
    let v = r.json();
    let msg = v["error"].as_str().expect("error");
    assert!(msg.contains("--to"), "{v}");
    assert!(!msg.contains('\n'), "{v}");
}

/// Review item 6e: times in the forget refusal and in "no snapshot at or
/// before" are local, with the zone, as the listings show them.
#[test]
fn refusal_times_are_local() {
    let t = TestDir::new("local-times");
    t.init();
    let db = t.path("app.db");
    make_db(&db, "a");
    let ny = |now: &str| {
        t.lb()
            .env("TZ", "America/New_York")
            .env("LUMINA_BACKUP_TEST_NOW", now)
    };
    ny("2026-11-20T12:00:00Z")
        .args(["snapshot", "--tag", "keep"])
        .arg(&db)
        .ok();
    set_value(&db, "b");
    ny("2026-11-21T12:00:00Z").arg("snapshot").arg(&db).ok();

    let r = ny("2026-11-22T12:00:00Z")
        .args(["forget", "--keep-tag", "keep"])
        .run();
    r.expect_code(2).expect_one_stderr_line();
    assert!(r.stderr.contains("2026-11-21 07:00:00 EST"), "{}", r.stderr);
    assert!(!r.stderr.contains("12:00:00Z"), "{}", r.stderr);

    let r = ny("2026-11-22T12:00:00Z")
        .args(["restore", "--at", "2026-11-19", "--to"])
        .arg(t.path("old.db"))
        .run();
    r.expect_code(2).expect_one_stderr_line();
    assert!(r.stderr.contains("2026-11-20 07:00:00 EST"), "{}", r.stderr);
    assert!(!r.stderr.contains("12:00:00Z"), "{}", r.stderr);
}

/// Review item 7: restoring over a database that has other hard links is
/// refused (exit 2, naming the link count and `--live`); `--live` writes into
/// the same inode, so every name sees the restored content.
#[test]
fn hard_linked_target_is_refused_or_restored_live() {
    let t = TestDir::new("hardlink");
    t.init();
    let db = t.path("app.db");
    make_db(&db, "snap");
    let id = id_of(&t.lb().args(["snapshot"]).arg(&db).json());
    set_value(&db, "now");
    let other: PathBuf = t.path("other-name.db");
    std::fs::hard_link(&db, &other).expect("link");
    let r = t
        .lb()
        .args(["restore", &id, "--force", "--to"])
        .arg(&db)
        .run();
    r.expect_code(2).expect_one_stderr_line();
    assert!(
        r.stderr.contains("2 hard links") && r.stderr.contains("--live"),
        "{}",
        r.stderr
    );
    assert_eq!(value(&db), "now");
    t.lb()
        .args(["restore", &id, "--force", "--live", "--to"])
        .arg(&db)
        .ok();
    assert_eq!(value(&db), "snap");
    assert_eq!(value(&other), "snap", "the other name sees it too");
}

/// Second review, item 1: `diff` of Lumina snapshots (which hold the JSON
/// exports) also compares the app's other tables, from the images, by their
/// declared primary keys; against the live database too.
#[test]
fn lumina_diff_covers_tables_that_are_not_exported() {
    let t = TestDir::new("diff-all-tables");
    t.init();
    let db = t.path("lumina.db");
    create_lumina(&db, 40, 1);
    {
        let c = Connection::open(&db).expect("open");
        c.execute_batch(
            "CREATE TABLE handles(id TEXT PRIMARY KEY, path TEXT, isRoot INTEGER);
             INSERT INTO handles VALUES ('h1', '/a', 0), ('h2', '/b', 0);",
        )
        .expect("extra table");
    }
    let first = id_of(&t.lb().arg("snapshot").arg(&db).json());
    Connection::open(&db)
        .expect("open")
        .execute_batch("UPDATE handles SET isRoot = 9 WHERE id = 'h2'; INSERT INTO handles VALUES ('h3', '/c', 0);")
        .expect("edit");
    let live = t.lb().args(["diff", &first, "--db"]).arg(&db).json();
    assert_eq!(
        live["tables"]["handles"]["changed"],
        serde_json::json!(["h2"]),
        "{live}"
    );
    assert_eq!(
        live["tables"]["handles"]["added"],
        serde_json::json!(["h3"]),
        "{live}"
    );
    assert!(live["tables"]["metadata"].is_object(), "{live}");
    let second = id_of(&t.lb().arg("snapshot").arg(&db).json());
    let d = t.lb().args(["diff", &first, &second]).json();
    assert_eq!(
        d["tables"]["handles"]["changed"],
        serde_json::json!(["h2"]),
        "{d}"
    );
    assert_eq!(
        d["tables"]["handles"]["added"],
        serde_json::json!(["h3"]),
        "{d}"
    );
}

/// Second review, item 2: after a restore, `forget --keep-last 1` keeps the
/// newest real snapshot; the `pre-restore` safety copy is kept by its own grace
/// and does not take the real snapshot's place.
#[test]
fn keep_last_counts_real_snapshots_not_safety_copies() {
    let t = TestDir::new("keep-last-safety");
    t.init();
    let db = t.path("app.db");
    make_db(&db, "one");
    let first = id_of(&t.lb().arg("snapshot").arg(&db).json());
    set_value(&db, "two");
    let second = id_of(&t.lb().arg("snapshot").arg(&db).json());
    set_value(&db, "three");
    t.lb()
        .args(["restore", &second, "--to"])
        .arg(&db)
        .arg("--force")
        .ok();
    let before = t.lb().arg("snapshots").json();
    assert_eq!(before.as_array().map(|a| a.len()), Some(3), "{before}");
    t.lb().args(["forget", "--keep-last", "1"]).ok();
    let after = t.lb().arg("snapshots").json();
    let ids: Vec<String> = after
        .as_array()
        .expect("list")
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_string())
        .collect();
    assert!(
        ids.contains(&second),
        "the newest real snapshot was removed: {after}"
    );
    assert!(!ids.contains(&first), "{after}");
    assert_eq!(
        ids.len(),
        2,
        "the safety copy is kept by its grace: {after}"
    );
    assert_eq!(value(&db), "two");
}

/// Second review, item 3: importing the tool's own CSV export says that import
/// reads JSON exports, instead of a JSON parse error.
#[test]
fn importing_a_csv_export_says_to_use_json() {
    let t = TestDir::new("import-csv");
    let db = t.path("lumina.db");
    create_lumina(&db, 20, 1);
    let out = t.path("csv");
    t.lb()
        .args(["export"])
        .arg(&db)
        .args(["--table", "all", "--format", "csv", "--out"])
        .arg(&out)
        .ok();
    let r = t
        .lb()
        .arg("import")
        .arg(t.path("new.db"))
        .arg("--from")
        .arg(out.join("metadata.csv"))
        .run();
    r.expect_code(2).expect_one_stderr_line();
    assert!(r.stderr.contains("--format json"), "{}", r.stderr);
    assert!(!t.path("new.db").exists(), "nothing is created");
}

/// Second review, item 5: `latest` of a database that has no snapshot says so
/// plainly and how to take one.
#[test]
fn latest_of_a_database_without_snapshots_says_what_to_do() {
    let t = TestDir::new("latest-none");
    t.init();
    let a = t.path("a.db");
    let b = t.path("b.db");
    make_db(&a, "a");
    make_db(&b, "b");
    t.lb().arg("snapshot").arg(&a).ok();
    let r = t.lb().args(["diff", "latest", "--db"]).arg(&b).run();
    r.expect_code(2).expect_one_stderr_line();
    assert!(r.stderr.contains("no snapshot of"), "{}", r.stderr);
    assert!(r.stderr.contains("snapshot"), "{}", r.stderr);
    assert!(!r.stderr.contains("`latest ("), "{}", r.stderr);
}

/// Third review: non-ASCII characters in the database's path, the restore
/// target's and the cache folder's (the staged capture) reached SQLite as
/// mojibake through the `file:` URI of the immutable opens, so restore's check,
/// `diff --db` and a snapshot from such a home folder failed.
#[test]
fn non_ascii_paths_snapshot_restore_and_diff() {
    let t = TestDir::new("non-ascii-paths");
    t.init();
    let dir = t.path("sp ace/日本 é");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let cache = t.path("cache ü/ç");
    std::fs::create_dir_all(&cache).expect("mkdir cache");
    let db = dir.join("d b ü.db");
    make_db(&db, "one");
    let lb = || t.lb().env("XDG_CACHE_HOME", &cache);
    let first = id_of(&lb().arg("snapshot").arg(&db).json());
    set_value(&db, "two");
    let d = lb().args(["diff", &first, "--db"]).arg(&db).json();
    assert!(d["tables"].is_object(), "{d}");
    let second = id_of(&lb().arg("snapshot").arg(&db).json());
    let out = dir.join("é.db");
    lb().args(["restore", &first, "--to"]).arg(&out).ok();
    assert_eq!(value(&out), "one");
    lb().args(["restore", &first, "--force", "--to"])
        .arg(&db)
        .ok();
    assert_eq!(value(&db), "one");
    let d = lb().args(["diff", &first, &second]).json();
    assert!(d["tables"].is_object(), "{d}");
}
