//! Invariants: what a user's database holds survives lumina-backup unchanged and
//! is reported truthfully.
//! - A snapshot warns (manifest and output, never refusing) when the captured image
//!   fails SQLite's quick check or uses collations/functions this SQLite lacks.
//! - `diff` works on any legal database: NULLs in composite primary keys (Debian's
//!   `proj.db`), keys ordered by their collation; `diff latest latest` is empty.
//! - Export + import gives back the exact values and texts: numbers at the edges
//!   of INTEGER and REAL, JSON text with its spacing and digits; import updates
//!   only the exported columns, counts the rows it wrote, and refuses a table of
//!   another shape in one line.
//! - A database that cannot be captured (hot journal on a read-only mount, WAL
//!   without `-shm` in a read-only folder, an exclusive lock) fails fast with one
//!   line saying why and what to do.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use rusqlite::Connection;
use serde_json::Value;

const PROJ_DB: &str = "/usr/share/proj/proj.db";

/// A read-only bind mount of a folder, unmounted on drop.
struct RoMount(PathBuf);

impl RoMount {
    /// Mounts `src` read-only at `dst`; `None` (with the reason printed) when the
    /// machine does not allow it.
    fn new(src: &Path, dst: &Path) -> Option<RoMount> {
        std::fs::create_dir_all(dst).expect("mkdir");
        let run = |args: &[&str]| {
            std::process::Command::new("mount")
                .args(args)
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        };
        let (s, d) = (src.to_str().expect("utf8"), dst.to_str().expect("utf8"));
        if !run(&["--bind", s, d]) {
            eprintln!("skipped: cannot bind-mount here (needs root and mount privileges)");
            return None;
        }
        let guard = RoMount(dst.to_path_buf());
        if !run(&["-o", "remount,bind,ro", d]) {
            eprintln!("skipped: cannot remount read-only here");
            return None;
        }
        Some(guard)
    }
}

impl Drop for RoMount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).output();
    }
}

fn stderr_line(r: &Run) -> String {
    r.expect_one_stderr_line();
    r.stderr.trim().to_string()
}

fn manifest(t: &TestDir, snap: &str) -> Value {
    let r = t.lb().args(["cat", snap, "manifest.json"]).ok();
    serde_json::from_slice(&r.stdout).expect("manifest is JSON")
}

fn warnings(v: &Value) -> Vec<String> {
    v["warnings"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|w| w.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------- item 9

/// Issue #8 item 9: a database whose index uses an application-defined collation
/// (or function) snapshots with a warning in the output and the manifest.
#[test]
fn unknown_collation_and_function_are_snapshot_warnings() {
    let t = TestDir::new("coll");
    t.init();
    let db = t.path("app.db");
    {
        let c = Connection::open(&db).expect("open");
        c.execute_batch(
            "CREATE TABLE people(name TEXT COLLATE NOCASE, city TEXT);
             CREATE INDEX people_name ON people(name);
             CREATE INDEX people_city ON people(lower(city));
             INSERT INTO people VALUES ('Ada', 'London'), ('bob', 'Paris'), ('Cy', 'Rome');
             PRAGMA writable_schema = ON;
             UPDATE sqlite_schema SET sql = replace(sql, 'NOCASE', 'app_collation') WHERE name = 'people';
             UPDATE sqlite_schema SET sql = replace(sql, 'lower(', 'app_fold(') WHERE name = 'people_city';",
        )
        .expect("schema");
    }
    let r = t.lb().args(["snapshot"]).arg(&db).run();
    r.expect_code(0);
    let out = r.out();
    assert!(
        out.contains("warning:") && out.contains("app_collation") && out.contains("app_fold"),
        "the snapshot output names the collation and the function:\n{out}\n{}",
        r.stderr
    );
    let m = manifest(&t, "latest");
    let w = warnings(&m).join("\n");
    assert!(w.contains("app_collation"), "manifest warnings: {m}");
    assert!(w.contains("app_fold"), "manifest warnings: {m}");
    assert!(
        m["quick_check"]
            .as_str()
            .unwrap_or("")
            .contains("not checked"),
        "quick_check cannot run without the collation: {m}"
    );
}

/// Issue #8 item 9: a captured image that fails the quick check (a damaged index
/// page that reading the rows does not trip over) snapshots with a warning.
#[test]
fn quick_check_failure_is_a_snapshot_warning() {
    let t = TestDir::new("qc");
    t.init();
    let db = t.path("app.db");
    let root: i64 = {
        let c = Connection::open(&db).expect("open");
        c.execute_batch(
            "PRAGMA page_size = 4096;
             CREATE TABLE t(id INTEGER PRIMARY KEY, b TEXT, pad TEXT);
             CREATE INDEX t_b ON t(b);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
             INSERT INTO t SELECT i, printf('v%06d', i), hex(randomblob(100)) FROM n;",
        )
        .expect("fill");
        c.query_row(
            "SELECT rootpage FROM sqlite_schema WHERE name = 't_b'",
            [],
            |r| r.get(0),
        )
        .expect("root")
    };
    // The page header's "fragmented free bytes" of the index root: reads work,
    // the free-space accounting does not add up.
    let mut bytes = std::fs::read(&db).expect("read");
    let at = (root as usize - 1) * 4096 + 7;
    bytes[at] = bytes[at].wrapping_add(40);
    std::fs::write(&db, &bytes).expect("write");
    assert!(!integrity_ok(&db), "the damage must be visible to SQLite");

    let snap = t.lb().args(["snapshot"]).arg(&db).json();
    let w = warnings(&snap).join("\n");
    assert!(w.contains("quick_check"), "snapshot warnings: {snap}");
    let m = manifest(&t, &id_of(&snap));
    assert!(
        m["quick_check"]
            .as_str()
            .unwrap_or("")
            .starts_with("failed"),
        "manifest: {m}"
    );
    assert!(warnings(&m).join("\n").contains("quick_check"));
    // Its capture's check failed: a restore runs the check again, and
    // refuses the image.
    let target = t.path("restored.db");
    let r = t
        .lb()
        .args(["restore", id_of(&snap).as_str(), "--to"])
        .arg(&target)
        .run();
    r.expect_code(1).expect_one_stderr_line();
    assert!(r.stderr.contains("quick_check"), "{}", r.stderr);
    assert!(!target.exists());
}

/// Issue #10 (restore time): a restore does not repeat the quick check the
/// capture passed on the same bytes (every chunk and the whole file are
/// verified by checksum), also through unchanged snapshots that reuse their
/// parent's image; `--check quick` runs it again; `--check full` always runs.
#[test]
fn restore_trusts_the_captures_quick_check_of_the_same_bytes() {
    let t = TestDir::new("qc-recorded");
    t.init();
    let db = t.path("app.db");
    create_lumina(&db, 200, 4);
    let first = t.lb().args(["snapshot"]).arg(&db).json();
    assert_eq!(manifest(&t, &id_of(&first))["quick_check"], "ok");
    // The same image again: its manifest refers to the parent's check.
    let second = t.lb().args(["snapshot"]).arg(&db).json();
    let m = manifest(&t, &id_of(&second));
    assert!(
        m["quick_check"]
            .as_str()
            .is_some_and(|v| v.starts_with("not checked again: same image")),
        "{m}"
    );
    for id in [id_of(&first), id_of(&second)] {
        let target = t.path(&format!("r-{}.db", &id[..8]));
        let r = t.lb().args(["restore", &id, "--to"]).arg(&target).json();
        assert_eq!(r["checked_at_capture"], true, "{r}");
        assert_eq!(r["integrity_check_secs"], 0.0, "{r}");
        assert_eq!(blake3_file(&target), blake3_file(&db));
        std::fs::remove_file(&target).expect("rm");
        for check in ["quick", "full"] {
            let r = t
                .lb()
                .args(["restore", &id, "--check", check, "--to"])
                .arg(&target)
                .json();
            assert_eq!(r["checked_at_capture"], false, "{check}: {r}");
            assert!(r["integrity_check_secs"].as_f64().unwrap() > 0.0, "{r}");
            std::fs::remove_file(&target).expect("rm");
        }
    }
    let human = t
        .lb()
        .args(["restore", "latest", "--to"])
        .arg(t.path("h.db"))
        .ok()
        .out();
    assert!(
        human.contains("quick_check ok when captured, on these same bytes"),
        "{human}"
    );
}

/// The same for a rollback-journal database whose next snapshot takes the
/// unchanged route (no page read; its manifest says "unchanged since the parent
/// snapshot"): the restore of it, and of a third one on top, trusts the first
/// capture's check. It repeated the check before (the wording differed).
#[test]
fn restore_trusts_the_check_through_unchanged_snapshots() {
    let t = TestDir::new("qc-unchanged");
    t.init();
    let db = t.path("app.db");
    create_lumina(&db, 200, 5);
    open(&db)
        .execute_batch("PRAGMA journal_mode = delete;")
        .expect("rollback journal");
    let first = id_of(&t.lb().args(["snapshot", "--no-exports"]).arg(&db).json());
    assert_eq!(manifest(&t, &first)["quick_check"], "ok");
    let mut ids = vec![first];
    for _ in 0..2 {
        let s = t.lb().args(["snapshot", "--no-exports"]).arg(&db).json();
        let id = id_of(&s);
        let m = manifest(&t, &id);
        assert_eq!(m["capture_route"], "unchanged", "{m}");
        assert!(
            m["quick_check"]
                .as_str()
                .is_some_and(|v| v.starts_with("not checked again: unchanged since")),
            "{m}"
        );
        ids.push(id);
    }
    for id in &ids {
        let target = t.path(&format!("r-{}.db", &id[..8]));
        let r = t.lb().args(["restore", id, "--to"]).arg(&target).json();
        assert_eq!(r["checked_at_capture"], true, "{r}");
        assert_eq!(r["integrity_check_secs"], 0.0, "{r}");
        assert_eq!(blake3_file(&target), blake3_file(&db));
    }
}

/// Issue #8 item 9: a healthy database records `quick_check: ok` and no warning.
#[test]
fn healthy_database_records_quick_check_ok() {
    let t = TestDir::new("qcok");
    t.init();
    let db = t.path("lumina.db");
    create_lumina(&db, 300, 3);
    let snap = t.lb().args(["snapshot"]).arg(&db).json();
    assert!(warnings(&snap).is_empty(), "{snap}");
    assert_eq!(manifest(&t, &id_of(&snap))["quick_check"], "ok");
}

// ---------------------------------------------------------------- item 10

/// A small database with the shapes of `proj.db`: composite primary keys holding
/// NULLs (duplicates among them), mixed key types, and a NOCASE key.
fn create_nullable_keys_db(path: &Path) {
    let c = Connection::open(path).expect("open");
    c.execute_batch(
        "CREATE TABLE usage(auth_name TEXT, code INTEGER_OR_TEXT, what TEXT,
                            CONSTRAINT pk_usage PRIMARY KEY (auth_name, code));
         INSERT INTO usage VALUES (NULL, NULL, 'n1'), (NULL, NULL, 'n2'), (NULL, NULL, 'n3'),
            (NULL, '7', 'half1'), ('EPSG', NULL, 'half2'), ('EPSG', NULL, 'half3'),
            ('EPSG', 1024, 'int'), ('EPSG', '1025', 'text'), ('EPSG', 1.5, 'real'),
            ('EPSG', x'00ff', 'blob'), ('ESRI', 1, 'esri'), ('epsg', 1, 'lower');
         CREATE TABLE names(name TEXT PRIMARY KEY COLLATE NOCASE, v INTEGER);
         INSERT INTO names VALUES ('apple', 1), ('Banana', 2), ('cherry', 3), ('_x', 4), ('Zed', 5);
         CREATE TABLE padded(k TEXT COLLATE RTRIM, j INTEGER, v, PRIMARY KEY (k, j));
         INSERT INTO padded VALUES ('a', 1, 1), ('a ', 2, 2), ('b', NULL, 3), ('b', NULL, 4);",
    )
    .expect("fill");
}

/// Issue #8 item 10: `diff` on NULLs in composite primary keys: `diff latest
/// latest` is empty, and real changes (to rows with NULL keys too) are found.
#[test]
fn diff_handles_null_composite_keys_and_collations() {
    let t = TestDir::new("nullkeys");
    t.init();
    let db = t.path("ref.db");
    create_nullable_keys_db(&db);
    let a = id_of(&t.lb().args(["snapshot"]).arg(&db).json());
    let same = t.lb().args(["diff", "latest", "latest"]).json();
    for (name, d) in same["tables"].as_object().expect("tables") {
        for k in ["added", "removed", "changed"] {
            assert_eq!(d[k], serde_json::json!([]), "{name}.{k} in {same}");
        }
    }
    {
        let c = open(&db);
        c.execute_batch(
            "UPDATE usage SET what = 'n2-changed' WHERE what = 'n2';
             DELETE FROM usage WHERE what = 'half3';
             INSERT INTO usage VALUES (NULL, NULL, 'n4');
             UPDATE usage SET what = 'int-changed' WHERE what = 'int';
             UPDATE names SET v = 20 WHERE name = 'banana';
             UPDATE padded SET v = 40 WHERE v = 4;",
        )
        .expect("edit");
    }
    let b = id_of(&t.lb().args(["snapshot"]).arg(&db).json());
    let d = t.lb().args(["diff", &a, &b]).json();
    let usage = &d["tables"]["usage"];
    assert_eq!(usage["changed"].as_array().map(Vec::len), Some(2), "{d}");
    assert_eq!(usage["added"].as_array().map(Vec::len), Some(1), "{d}");
    assert_eq!(usage["removed"].as_array().map(Vec::len), Some(1), "{d}");
    assert!(
        usage["changed"].to_string().contains("1024"),
        "the changed non-NULL key is named by its key: {d}"
    );
    assert!(
        usage["changed"].to_string().contains("rowid"),
        "a row with a NULL in its key is named by its rowid: {d}"
    );
    assert_eq!(
        d["tables"]["names"]["changed"],
        serde_json::json!(["Banana"])
    );
    assert_eq!(
        d["tables"]["padded"]["changed"].as_array().map(Vec::len),
        Some(1)
    );
    // The live database against its own snapshot.
    let live = t.lb().args(["diff", &b, "--db"]).arg(&db).json();
    for (name, d) in live["tables"].as_object().expect("tables") {
        assert_eq!(d["changed"], serde_json::json!([]), "{name} in {live}");
        assert_eq!(d["added"], serde_json::json!([]), "{name} in {live}");
    }
}

/// Issue #8 Tests: Debian's `proj.db` (22,650 `usage` rows with NULL keys)
/// round-trips byte for byte, and `diff` works on it.
#[test]
fn proj_db_round_trips_and_diffs() {
    if !Path::new(PROJ_DB).exists() {
        eprintln!("skipped: {PROJ_DB} is absent (apt-get install proj-data)");
        return;
    }
    let t = TestDir::new("proj");
    t.init();
    let db = t.path("proj.db");
    std::fs::copy(PROJ_DB, &db).expect("copy proj.db");
    let before = blake3_file(&db);
    let a = id_of(&t.lb().args(["snapshot"]).arg(&db).json());
    assert_eq!(
        blake3_file(&db),
        before,
        "a snapshot does not write to the source"
    );
    let restored = t.path("restored.db");
    t.lb().args(["restore", &a, "--to"]).arg(&restored).ok();
    assert_eq!(blake3_file(&restored), before, "restore is byte-identical");
    let same = t.lb().args(["diff", "latest", "latest"]).json();
    assert!(
        same["tables"]
            .as_object()
            .expect("tables")
            .values()
            .all(|d| d["changed"] == serde_json::json!([]) && d["added"] == serde_json::json!([])),
        "{same}"
    );
    {
        let c = open(&db);
        c.execute_batch(
            "UPDATE usage SET object_code = 'changed-' || object_code WHERE rowid = (SELECT max(rowid) FROM usage WHERE auth_name IS NULL);",
        )
        .expect("edit");
    }
    let b = id_of(&t.lb().args(["snapshot"]).arg(&db).json());
    let d = t.lb().args(["diff", &a, &b]).json();
    let changed = d["tables"]["usage"]["changed"].as_array().expect("changed");
    assert_eq!(
        changed.len(),
        1,
        "one usage row changed: {}",
        d["tables"]["usage"]
    );
    for (name, td) in d["tables"].as_object().expect("tables") {
        if name != "usage" {
            assert_eq!(td["changed"], serde_json::json!([]), "{name}");
        }
    }
}

// ---------------------------------------------------------------- items 11, 12, 19, 31

fn export_table(t: &TestDir, db: &Path, table: &str, out: &Path) {
    t.lb()
        .args(["export"])
        .arg(db)
        .args(["--table", table, "--format", "json", "--out"])
        .arg(out)
        .ok();
}

fn rows_of(db: &Path, sql: &str) -> Vec<String> {
    let c = open(db);
    let mut s = c.prepare(sql).expect("prepare");
    let n = s.column_count();
    s.query_map([], |r| {
        let mut line = String::new();
        for i in 0..n {
            let v = match r.get_ref(i)? {
                rusqlite::types::ValueRef::Null => "NULL".to_string(),
                rusqlite::types::ValueRef::Integer(x) => format!("i{x}"),
                rusqlite::types::ValueRef::Real(x) => format!("r{x:?}/{:016x}", x.to_bits()),
                rusqlite::types::ValueRef::Text(x) => {
                    format!("t{:?}", String::from_utf8_lossy(x))
                }
                rusqlite::types::ValueRef::Blob(x) => format!("b{}", hex::encode(x)),
            };
            line.push_str(&v);
            line.push('|');
        }
        Ok(line)
    })
    .expect("query")
    .collect::<Result<_, _>>()
    .expect("rows")
}

/// Issue #8 item 11: importing an export updates only the columns it holds;
/// a column the export does not know (a newer app's) keeps its values.
#[test]
fn import_keeps_columns_the_export_does_not_know() {
    let t = TestDir::new("upsert");
    let db = t.path("lumina.db");
    create_lumina(&db, 50, 4);
    let file = t.path("metadata.json");
    export_table(&t, &db, "metadata", &file);
    {
        let c = open(&db);
        c.execute_batch(
            "ALTER TABLE metadata ADD COLUMN rating INTEGER;
             UPDATE metadata SET rating = 5, colorTag = 'changed-after-export';",
        )
        .expect("newer app");
    }
    let r = t
        .lb()
        .args(["import"])
        .arg(&db)
        .arg("--from")
        .arg(&file)
        .json();
    assert_eq!(r["rows"], 50, "{r}");
    assert_eq!(
        rows_of(&db, "SELECT count(*) FROM metadata WHERE rating = 5"),
        vec!["i50|"],
        "the unknown column keeps its values"
    );
    assert_eq!(
        rows_of(
            &db,
            "SELECT count(*) FROM metadata WHERE colorTag = 'changed-after-export'"
        ),
        vec!["i0|"],
        "the exported columns are restored"
    );
}

/// Issue #8 item 12: the tool's own export of edge numbers imports back to the
/// same values (infinities, 1e30, 2^63 as REAL, -0.0, i64 limits).
#[test]
fn own_exports_import_back_edge_numbers() {
    let t = TestDir::new("numbers");
    let db = t.path("lumina.db");
    create_lumina(&db, 10, 5);
    {
        let c = open(&db);
        c.execute_batch(
            "DELETE FROM tags;
             INSERT INTO tags VALUES ('a', 'a', 'a', 'x', 1e400, NULL, 9223372036854775807);
             INSERT INTO tags VALUES ('b', 'b', 'b', 'x', -1e400, NULL, -9223372036854775808);
             INSERT INTO tags VALUES ('c', 'c', 'c', 'x', 1e30, NULL, 0);
             INSERT INTO tags VALUES ('d', 'd', 'd', 'x', 9223372036854775808.0, NULL, 1);
             INSERT INTO tags VALUES ('e', 'e', 'e', 'x', -9223372036854775809.0, NULL, 2);
             INSERT INTO tags VALUES ('f', 'f', 'f', 'x', -0.0, NULL, 3);
             INSERT INTO tags VALUES ('g', 'g', 'g', 'x', 0.1, NULL, 4.5);
             INSERT INTO tags VALUES ('h', 'h', 'h', 'x', 5e-324, NULL, 1e300);",
        )
        .expect("edge numbers");
    }
    let file = t.path("tags.json");
    export_table(&t, &db, "tags", &file);
    let fresh = t.path("fresh.db");
    let r = t
        .lb()
        .args(["import"])
        .arg(&fresh)
        .arg("--from")
        .arg(&file)
        .json();
    assert_eq!(r["rows"], 8, "{r}");
    let q = "SELECT id, confidence, createdAt, typeof(confidence), typeof(createdAt) FROM tags ORDER BY id";
    assert_eq!(rows_of(&fresh, q), rows_of(&db, q));
}

/// Issue #8 item 12: integers outside SQLite's INTEGER range are refused the same
/// way whatever their size (10^30, 2^63, -2^63-1), in one line, exit 2.
#[test]
fn out_of_range_integers_are_refused_one_way() {
    let t = TestDir::new("bigint");
    for n in [
        "1000000000000000000000000000000",
        "9223372036854775808",
        "-9223372036854775809",
    ] {
        let file = t.path("tags.json");
        std::fs::write(
            &file,
            format!(r#"{{"version":"1.0.0","tags":[{{"id":"a","name":"n","createdAt":{n}}}]}}"#),
        )
        .expect("write");
        let db = t.path(&format!("db-{}.db", n.len()));
        let r = t
            .lb()
            .args(["import"])
            .arg(&db)
            .arg("--from")
            .arg(&file)
            .run();
        r.expect_code(2);
        let line = stderr_line(&r);
        assert!(line.contains(n) && line.contains("INTEGER"), "{n}: {line}");
    }
    // A REAL spelled as one is stored as a REAL.
    let file = t.path("real.json");
    std::fs::write(
        &file,
        r#"{"version":"1.0.0","tags":[{"id":"a","name":"n","confidence":1e30,"createdAt":9.223372036854776e18}]}"#,
    )
    .expect("write");
    let db = t.path("real.db");
    t.lb()
        .args(["import"])
        .arg(&db)
        .arg("--from")
        .arg(&file)
        .ok();
    assert_eq!(
        rows_of(
            &db,
            "SELECT typeof(confidence), typeof(createdAt) FROM tags"
        ),
        vec!["t\"real\"|t\"real\"|"]
    );
}

/// Issue #8 item 12: "imported N rows" counts rows written: two rows with the same
/// key write one row.
#[test]
fn import_counts_rows_written() {
    let t = TestDir::new("count");
    let file = t.path("tags.json");
    std::fs::write(
        &file,
        r#"{"version":"1.0.0","totalTags":2,"tags":[{"id":"a","name":"first"},{"id":"a","name":"second"}]}"#,
    )
    .expect("write");
    let db = t.path("count.db");
    let r = t
        .lb()
        .args(["import"])
        .arg(&db)
        .arg("--from")
        .arg(&file)
        .json();
    assert_eq!(r["rows"], 1, "{r}");
    let human = t
        .lb()
        .args(["import"])
        .arg(&db)
        .arg("--from")
        .arg(&file)
        .ok();
    assert!(human.out().contains("imported 1 row"), "{}", human.out());
    assert_eq!(rows_of(&db, "SELECT name FROM tags"), vec!["t\"second\"|"]);
}

/// Issue #8 item 19: import into a table of another shape: one line, exit 2,
/// naming the missing column; the table is unchanged.
#[test]
fn import_into_a_table_of_another_shape_is_one_line() {
    let t = TestDir::new("shape");
    let src = t.path("lumina.db");
    create_lumina(&src, 5, 6);
    let file = t.path("metadata.json");
    export_table(&t, &src, "metadata", &file);
    let db = t.path("other.db");
    {
        let c = Connection::open(&db).expect("open");
        c.execute_batch(
            "CREATE TABLE metadata(id TEXT PRIMARY KEY, title TEXT); INSERT INTO metadata VALUES ('x', 'kept');",
        )
        .expect("other shape");
    }
    let r = t
        .lb()
        .args(["import"])
        .arg(&db)
        .arg("--from")
        .arg(&file)
        .run();
    r.expect_code(2);
    let line = stderr_line(&r);
    assert!(
        line.contains("not a Lumina metadata table: missing column collectionId"),
        "{line}"
    );
    assert_eq!(
        rows_of(&db, "SELECT * FROM metadata"),
        vec!["t\"x\"|t\"kept\"|"]
    );
}

/// Issue #8 item 31: export + import gives back the exact text of JSON columns:
/// spacing, digits beyond f64, `-0`, out-of-range numbers, several lines.
#[test]
fn json_column_text_survives_export_and_import() {
    let t = TestDir::new("jsontext");
    t.init();
    let db = t.path("lumina.db");
    create_lumina(&db, 10, 7);
    {
        let c = open(&db);
        c.execute_batch(
            r#"UPDATE metadata SET aiTags = '[ "a" , "b" ]',
                   manualTags = '[12345678901234567890123, 0.1, -0]',
                   aiTagsDetailed = '[{"name": "sky", "confidence": 1e400}]'
               WHERE rowid = 1;
               UPDATE metadata SET aiTags = '[
  "multi",
  "line"
]', manualTags = '{"b": 1, "a": 2.50}' WHERE rowid = 2;"#,
        )
        .expect("edit");
    }
    let q = "SELECT id, aiTags, aiTagsDetailed, manualTags FROM metadata ORDER BY id";
    // From the live database, and from a snapshot's stored export.
    let file = t.path("metadata.json");
    export_table(&t, &db, "metadata", &file);
    t.lb().args(["snapshot"]).arg(&db).ok();
    let from_snap = t.path("snap-metadata.json");
    t.lb()
        .args([
            "export", "latest", "--table", "metadata", "--format", "json", "--out",
        ])
        .arg(&from_snap)
        .ok();
    for (i, f) in [file, from_snap].iter().enumerate() {
        let fresh = t.path(&format!("fresh{i}.db"));
        t.lb()
            .args(["import"])
            .arg(&fresh)
            .arg("--from")
            .arg(f)
            .ok();
        assert_eq!(rows_of(&fresh, q), rows_of(&db, q), "from {}", f.display());
    }
}

// ---------------------------------------------------------------- item 21

/// Issue #8 item 21: a hot journal on a read-only mount: one line saying why and
/// what to do.
#[test]
fn hot_journal_on_read_only_mount_is_explained() {
    let t = TestDir::new("hotjournal");
    t.init();
    let src = t.path("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    let live = t.path("live.db");
    {
        let c = Connection::open(&live).expect("open");
        c.execute_batch(
            "PRAGMA cache_size = 5;
             CREATE TABLE t(x);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
             INSERT INTO t SELECT randomblob(500) FROM n;
             BEGIN;
             UPDATE t SET x = randomblob(500);",
        )
        .expect("a write in progress");
        // Copies of the file and journal mid-transaction: a hot journal.
        std::fs::copy(&live, src.join("app.db")).expect("copy");
        std::fs::copy(sidecar(&live, "-journal"), src.join("app.db-journal")).expect("copy");
    }
    let mnt = t.path("mnt");
    let Some(_m) = RoMount::new(&src, &mnt) else {
        return;
    };
    let r = t.lb().args(["snapshot"]).arg(mnt.join("app.db")).run();
    r.expect_code(1);
    let line = stderr_line(&r);
    assert!(
        line.contains("hot journal") && line.contains("read-only"),
        "{line}"
    );
}

/// Issue #8 item 21: a WAL database without `-shm` in a read-only folder: one
/// line saying why and what to do.
#[test]
fn wal_without_shm_in_read_only_folder_is_explained() {
    let t = TestDir::new("walro");
    t.init();
    let src = t.path("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    let live = t.path("live.db");
    let c = Connection::open(&live).expect("open");
    c.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
         CREATE TABLE t(x); INSERT INTO t VALUES (1);",
    )
    .expect("wal db");
    std::fs::copy(&live, src.join("app.db")).expect("copy");
    std::fs::copy(sidecar(&live, "-wal"), src.join("app.db-wal")).expect("copy");
    drop(c);
    let mnt = t.path("mnt");
    let Some(_m) = RoMount::new(&src, &mnt) else {
        return;
    };
    let r = t.lb().args(["snapshot"]).arg(mnt.join("app.db")).run();
    r.expect_code(1);
    let line = stderr_line(&r);
    assert!(line.contains("-shm") && line.contains("WAL"), "{line}");
}

/// Issue #8 item 21: a database under another process's exclusive lock fails
/// within a few seconds (not 30), saying it is locked and what to do.
#[test]
fn exclusive_lock_fails_fast_and_is_explained() {
    let t = TestDir::new("exclusive");
    t.init();
    let db = t.path("app.db");
    let holder = Connection::open(&db).expect("open");
    holder
        .execute_batch(
            "PRAGMA locking_mode = EXCLUSIVE; CREATE TABLE t(x); INSERT INTO t VALUES (1);",
        )
        .expect("exclusive");
    let _: i64 = holder
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .expect("read");
    let start = Instant::now();
    let r = t.lb().args(["snapshot"]).arg(&db).run();
    let took = start.elapsed();
    r.expect_code(1);
    let line = stderr_line(&r);
    assert!(line.contains("locked") && line.contains("close"), "{line}");
    assert!(took < Duration::from_secs(15), "waited {took:?}");
    drop(holder);
}
