//! `sql SNAP QUERY`: read-only queries on any snapshot's database, through the
//! CLI and the library; the point in time is the snapshot's, nothing can be
//! written, and bad queries are bad input (exit 2).

mod common;

use common::*;
use lumina_backup::{
    NoProgress, OpenOptions, Progress, QuerySink, Repository, SnapshotOptions, SqlValue,
};

/// A repository with two snapshots of one database: `name` is 'first' in
/// the first and 'second' in the second; returns the two ids.
fn two_points(t: &TestDir, db: &std::path::Path) -> (String, String) {
    let c = open(db);
    c.execute_batch(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, b BLOB, r REAL);
         INSERT INTO t VALUES (1, 'first', x'00ff', 1.5), (2, NULL, NULL, 9e999);",
    )
    .unwrap();
    let first = id_of(&t.lb().arg("snapshot").arg(db).json());
    c.execute("UPDATE t SET name = 'second' WHERE id = 1", [])
        .unwrap();
    drop(c);
    let second = id_of(&t.lb().arg("snapshot").arg(db).json());
    (first, second)
}

#[test]
fn answers_at_the_snapshots_point_in_time() {
    let t = TestDir::new("sql-time");
    t.init();
    let db = t.path("a.db");
    let (first, second) = two_points(&t, &db);
    let q = "SELECT id, name FROM t ORDER BY id";
    let r = t.lb().args(["sql", &first[..8], q]).ok();
    assert_eq!(r.out(), "id|name\n1|first\n2|\n");
    let r = t.lb().args(["sql", &second, q]).ok();
    assert_eq!(r.out(), "id|name\n1|second\n2|\n");
    let r = t
        .lb()
        .args(["sql", "latest", "SELECT count(*) AS n FROM t"])
        .ok();
    assert_eq!(r.out(), "n\n2\n");
    // BLOBs and infinities, as sqlite3 would show them.
    let r = t
        .lb()
        .args(["sql", &first, "SELECT b, r FROM t WHERE id = 1"])
        .ok();
    assert_eq!(r.out(), "b|r\nX'00FF'|1.5\n");
}

#[test]
fn json_is_one_document_with_typed_values() {
    let t = TestDir::new("sql-json");
    t.init();
    let db = t.path("a.db");
    let (first, _) = two_points(&t, &db);
    // Infinity is written as 1e999 (as the exports write it; Python and
    // JavaScript read it as infinity, serde_json refuses it): checked as text.
    let r = t
        .lb()
        .args(["sql", &first, "SELECT r FROM t WHERE id = 2"])
        .arg("--json")
        .ok();
    assert!(r.out().contains(r#""rows":[[1e999]]"#), "{}", r.out());
    let v = t
        .lb()
        .args(["sql", &first, "SELECT id, name, b FROM t ORDER BY id"])
        .json();
    assert_eq!(v["snapshot"], first.as_str());
    assert_eq!(v["columns"], serde_json::json!(["id", "name", "b"]));
    assert_eq!(v["row_count"], 2);
    assert_eq!(v["rows"][0], serde_json::json!([1, "first", "00ff"]));
    assert_eq!(v["rows"][1], serde_json::json!([2, null, null]));
    // A failure before any row: the usual error document.
    let r = t
        .lb()
        .args(["sql", &first, "SELECT * FROM missing"])
        .arg("--json")
        .run();
    r.expect_code(2);
    assert_eq!(r.json()["exit_code"], 2);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("no such table"));
}

#[test]
fn nothing_can_be_written_and_bad_queries_exit_2() {
    let t = TestDir::new("sql-bad");
    t.init();
    let db = t.path("a.db");
    let (first, _) = two_points(&t, &db);
    let other = t.path("other.db");
    create_lumina(&other, 5, 1);
    let attach = format!("ATTACH '{}' AS o", other.display());
    for (q, says) in [
        ("DELETE FROM t", "read-only"),
        ("UPDATE t SET name = 'x'", "read-only"),
        ("CREATE TABLE u (x)", "read-only"),
        ("PRAGMA user_version = 7", "read-only"),
        ("SELECT 1; DELETE FROM t", "more than one statement"),
        ("", "empty"),
        ("/* only a comment */", "empty"),
        ("SELEC 1", "syntax error"),
        ("SELECT * FROM nope", "no such table"),
        (attach.as_str(), "ATTACH is not allowed"),
    ] {
        let r = t.lb().args(["sql", &first, q]).run();
        r.expect_code(2).expect_one_stderr_line();
        assert!(r.stderr.contains(says), "{q:?}: {}", r.stderr);
        assert!(r.stdout.is_empty(), "{q:?}: {}", r.out());
    }
    // The snapshot is as it was.
    let r = t
        .lb()
        .args(["sql", &first, "SELECT name FROM t WHERE id = 1"])
        .ok();
    assert_eq!(r.out(), "name\nfirst\n");
    t.lb().args(["verify", "--read-data"]).ok();
    for spec in ["0123456789ab", "latest-ish"] {
        t.lb()
            .args(["sql", spec, "SELECT 1"])
            .run()
            .expect_code(2)
            .expect_one_stderr_line();
    }
}

#[test]
fn encrypted_repository_needs_the_passphrase() {
    let t = TestDir::new("sql-enc");
    let pw = "correct horse";
    t.lb()
        .env("LUMINA_BACKUP_PASSWORD", pw)
        .args(["init", "--encrypt"])
        .ok();
    let db = t.path("a.db");
    create_lumina(&db, 20, 3);
    t.lb()
        .env("LUMINA_BACKUP_PASSWORD", pw)
        .arg("snapshot")
        .arg(&db)
        .ok();
    let q = "SELECT count(*) FROM metadata";
    let r = t
        .lb()
        .env("LUMINA_BACKUP_PASSWORD", pw)
        .args(["sql", "latest", q])
        .ok();
    assert_eq!(r.out(), "count(*)\n20\n");
    t.lb()
        .env("LUMINA_BACKUP_PASSWORD", "wrong")
        .args(["sql", "latest", q])
        .run()
        .expect_code(2)
        .expect_one_stderr_line();
}

/// Odd but legal databases: WITHOUT ROWID, page sizes 512 and 65536, a custom
/// collation the query does not need, and the temporary copy is removed.
#[test]
fn odd_databases_and_no_file_left_behind() {
    for page_size in [512, 65536] {
        let t = TestDir::new(&format!("sql-odd-{page_size}"));
        t.init();
        let db = t.path("odd.db");
        let c = open(&db);
        c.execute_batch(&format!(
            "PRAGMA page_size = {page_size}; VACUUM;
             CREATE TABLE w (k TEXT PRIMARY KEY, v BLOB) WITHOUT ROWID;"
        ))
        .unwrap();
        for i in 0..300 {
            c.execute(
                "INSERT INTO w VALUES (?1, randomblob(700))",
                [format!("key-{i:04}")],
            )
            .unwrap();
        }
        drop(c);
        t.lb().arg("snapshot").arg(&db).ok();
        let tmp = t.path("tmp");
        std::fs::create_dir(&tmp).unwrap();
        let r = t
            .lb()
            .env("TMPDIR", &tmp)
            .args([
                "sql",
                "latest",
                "SELECT count(*), min(k), max(length(v)) FROM w",
            ])
            .ok();
        assert_eq!(
            r.out(),
            "count(*)|min(k)|max(length(v))\n300|key-0000|700\n"
        );
        let r = t.lb().args(["sql", "latest", "PRAGMA page_size"]).ok();
        assert_eq!(r.out(), format!("page_size\n{page_size}\n"));
        assert_eq!(
            std::fs::read_dir(&tmp).unwrap().count(),
            0,
            "the temporary copy was left behind"
        );
    }
}

/// Rows collected by a library sink.
#[derive(Default)]
struct Rows {
    columns: Vec<String>,
    rows: Vec<Vec<SqlValue>>,
}

impl QuerySink for Rows {
    fn columns(&mut self, names: &[String]) -> lumina_backup::Result<()> {
        self.columns = names.to_vec();
        Ok(())
    }
    fn row(&mut self, values: &[SqlValue]) -> lumina_backup::Result<()> {
        self.rows.push(values.to_vec());
        Ok(())
    }
}

/// Cancels after `after` calls of `cancelled`.
struct CancelAfter(std::sync::atomic::AtomicU32, u32);

impl Progress for CancelAfter {
    fn phase(&self, _: &lumina_backup::PhaseInfo<'_>) {}
    fn advance(&self, _: u64) {}
    fn cancelled(&self) -> bool {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed) >= self.1
    }
}

#[test]
fn library_query_gives_typed_rows_and_can_be_cancelled() {
    let t = TestDir::new("sql-lib");
    let db = t.path("a.db");
    create_lumina(&db, 50, 7);
    Repository::init(&t.repo()).unwrap();
    let mut repo = Repository::open(&t.repo(), &OpenOptions::default()).unwrap();
    let s = repo
        .snapshot(&db, &SnapshotOptions::default(), &NoProgress)
        .unwrap()
        .snapshot;
    let mut rows = Rows::default();
    let n = repo
        .query(
            &s,
            "SELECT id, isHidden FROM metadata ORDER BY id LIMIT 3",
            &NoProgress,
            &mut rows,
        )
        .unwrap();
    assert_eq!(n, 3);
    assert_eq!(rows.columns, ["id", "isHidden"]);
    assert!(matches!(rows.rows[0][0], SqlValue::Text(_)));
    assert!(matches!(rows.rows[0][1], SqlValue::Integer(_)));
    // Cancelled between rows: an error that says so, and no more rows.
    let mut rows = Rows::default();
    let cancel = CancelAfter(Default::default(), 20);
    let err = repo
        .query(&s, "SELECT * FROM metadata", &cancel, &mut rows)
        .unwrap_err();
    assert!(err.is_cancelled(), "{err}");
    assert!(rows.rows.len() < 50);
}

/// `sql ... | head`: the reader goes away; the query ends quietly with 141 (as
/// a Unix tool a shell's SIGPIPE ends), plain and `--json`.
#[test]
fn a_closed_pipe_ends_the_query_quietly() {
    let t = TestDir::new("sql-pipe");
    let db = t.path("big.db");
    create_lumina(&db, 20_000, 5);
    t.lb().arg("init").ok();
    t.lb().arg("snapshot").arg(&db).ok();
    for json in [false, true] {
        let mut lb = t.lb().args(["sql", "latest", "SELECT * FROM metadata"]);
        if json {
            lb = lb.arg("--json");
        }
        let (_, out) = lb.read_head_then_close::<64>();
        assert_eq!(out.status.code(), Some(141), "json {json}: {out:?}");
        assert!(
            out.stderr.is_empty(),
            "json {json}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
