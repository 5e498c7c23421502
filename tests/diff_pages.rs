//! `diff` between two snapshots from the pages that differ (`diff::pages`): the
//! report equals the full route's (the diff against the live database, which
//! reads both sides through SQLite), keyed by declared primary keys, in every
//! table; INSERT OR REPLACE shows as "changed".

mod common;

use std::path::Path;
use std::sync::Mutex;

use common::TestDir;
use lumina_backup::{
    DiffReport, DiffTarget, NoProgress, OpenOptions, Phase, PhaseInfo, Progress, Repository,
    SnapshotOptions,
};
use proptest::prelude::*;
use rusqlite::{params, Connection};

/// Which route a diff took, from its progress phases: the page route compares
/// tables (a `Diff` phase each) without reading any file of the snapshots; the
/// full route reassembles them (`ReadFile` phases).
#[derive(Default)]
struct Route(Mutex<Vec<(Phase, Option<String>)>>);
impl Progress for Route {
    fn phase(&self, info: &PhaseInfo<'_>) {
        let d = info.detail.map(str::to_string);
        self.0.lock().unwrap().push((info.phase, d));
    }
    fn advance(&self, _n: u64) {}
}
impl Route {
    /// The page route gave the report.
    fn by_pages(&self) -> bool {
        let seen = self.0.lock().unwrap();
        seen.iter().any(|p| p.0 == Phase::Diff) && !seen.iter().any(|p| p.0 == Phase::ReadFile)
    }
    /// The page route declined: the snapshots' files were read.
    fn declined(&self) -> bool {
        self.0
            .lock()
            .unwrap()
            .iter()
            .any(|p| p.0 == Phase::ReadFile)
    }
}

fn repo(dir: &TestDir) -> Repository {
    let p = dir.repo();
    Repository::init(&p).expect("init");
    Repository::open(&p, &OpenOptions::default()).expect("open repo")
}

const SCHEMA: &str = "
CREATE TABLE metadata(id TEXT PRIMARY KEY, collectionId TEXT, aiTags TEXT, score REAL, body BLOB);
CREATE TABLE item_tags(itemId TEXT, tagId TEXT, addedAt INTEGER, PRIMARY KEY(itemId, tagId));
CREATE TABLE tag_aliases(aliasName TEXT PRIMARY KEY, tagId TEXT) WITHOUT ROWID;
CREATE TABLE counters(id INTEGER PRIMARY KEY, n INTEGER, note TEXT);
CREATE TABLE loose(a, b);
CREATE TABLE wr2(k1 INTEGER, k2 TEXT, v BLOB, PRIMARY KEY(k2, k1)) WITHOUT ROWID;
CREATE INDEX idx_meta_coll ON metadata(collectionId);
";

fn create(path: &Path, page_size: u32, rows: u32) -> Connection {
    let c = Connection::open(path).expect("open");
    c.execute_batch(&format!(
        "PRAGMA page_size={page_size}; PRAGMA journal_mode=DELETE;"
    ))
    .expect("pragmas");
    c.execute_batch(SCHEMA).expect("schema");
    c.execute_batch("BEGIN").unwrap();
    for i in 0..rows {
        edit(&c, 0, i);
    }
    c.execute_batch("COMMIT").unwrap();
    c
}

/// One edit of kind `op` on item `i` (deterministic).
fn edit(c: &Connection, op: u32, i: u32) {
    let id = format!("photos/{i:05}.jpg");
    let big = vec![(i % 251) as u8; if i.is_multiple_of(7) { 70_000 } else { 30 }];
    match op % 7 {
        0 => {
            c.execute(
                "INSERT OR REPLACE INTO metadata VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, format!("c{}", i % 3), format!("[\"t{i}\"]"), 3.0, big],
            )
            .unwrap();
            c.execute("DELETE FROM item_tags WHERE itemId = ?1", [&id])
                .unwrap();
            for t in 0..(i % 4) {
                c.execute(
                    "INSERT INTO item_tags VALUES (?1, ?2, ?3)",
                    params![id, format!("tag{t}"), i64::from(i)],
                )
                .unwrap();
            }
            c.execute(
                "INSERT OR REPLACE INTO tag_aliases VALUES (?1, ?2)",
                params![format!("alias{}", i % 50), format!("tag{i}")],
            )
            .unwrap();
            c.execute(
                "INSERT OR REPLACE INTO counters VALUES (?1, ?2, ?3)",
                params![
                    i64::from(i % 40),
                    i64::from(i),
                    "x".repeat((i % 9) as usize * 700)
                ],
            )
            .unwrap();
            c.execute("INSERT INTO loose VALUES (?1, NULL)", [i64::from(i)])
                .unwrap();
            c.execute(
                "INSERT OR REPLACE INTO wr2 VALUES (?1, ?2, ?3)",
                params![i64::from(i % 30), format!("k{}", i % 5), big],
            )
            .unwrap();
        }
        1 => {
            c.execute("DELETE FROM metadata WHERE id = ?1", [&id])
                .unwrap();
        }
        2 => {
            c.execute(
                "UPDATE metadata SET score = score + 0.5, aiTags = NULL WHERE id = ?1",
                [&id],
            )
            .unwrap();
        }
        3 => {
            c.execute(
                "DELETE FROM tag_aliases WHERE aliasName = ?1",
                [format!("alias{}", i % 50)],
            )
            .unwrap();
            c.execute("DELETE FROM loose WHERE a = ?1", [i64::from(i)])
                .unwrap();
        }
        4 => {
            c.execute(
                "UPDATE wr2 SET v = x'00' WHERE k1 = ?1",
                [i64::from(i % 30)],
            )
            .unwrap();
            c.execute("DELETE FROM counters WHERE id = ?1", [i64::from(i % 40)])
                .unwrap();
        }
        5 => edit(c, 0, i + 1000),
        _ => {
            // Same key, new rowid, other values.
            c.execute(
                "INSERT OR REPLACE INTO metadata VALUES (?1, 'moved', NULL, 1.25, NULL)",
                [&id],
            )
            .unwrap();
            c.execute(
                "INSERT OR REPLACE INTO tag_aliases VALUES (?1, 'moved')",
                [format!("alias{}", i % 50)],
            )
            .unwrap();
            c.execute(
                "INSERT OR REPLACE INTO item_tags VALUES (?1, 'tag0', -1)",
                [&id],
            )
            .unwrap();
        }
    }
}

/// Snapshot, apply `edits`, snapshot; the page route's report and the full
/// route's (against the live database) must agree.
fn check(page_size: u32, rows: u32, edits: &[(u32, u32)]) -> DiffReport {
    let dir = TestDir::new("diff-pages");
    let db = dir.path("app.db");
    let c = create(&db, page_size, rows);
    let mut r = repo(&dir);
    let opts = SnapshotOptions {
        no_exports: true,
        ..Default::default()
    };
    let a = r
        .snapshot(&db, &opts, &NoProgress)
        .expect("snapshot a")
        .snapshot;
    for &(op, i) in edits {
        edit(&c, op, i);
    }
    let b = r
        .snapshot(&db, &opts, &NoProgress)
        .expect("snapshot b")
        .snapshot;
    let route = Route::default();
    let by_pages = r.diff(&a, DiffTarget::Snapshot(&b), &route).expect("diff");
    assert!(route.by_pages(), "the page route was taken: {:?}", route.0);
    let full = r
        .diff(&a, DiffTarget::Live(&db), &NoProgress)
        .expect("full diff");
    assert_eq!(by_pages, full);
    by_pages
}

fn count(d: &DiffReport, table: &str) -> (usize, usize, usize) {
    let t = &d.tables[table];
    (t.added.len(), t.removed.len(), t.changed.len())
}

#[test]
fn insert_or_replace_is_changed_in_every_table_4096() {
    let d = check(4096, 300, &[(6, 10), (6, 11), (6, 14)]);
    assert_eq!(count(&d, "metadata"), (0, 0, 3));
    assert_eq!(
        d.tables["metadata"].changed[0],
        serde_json::json!("photos/00010.jpg")
    );
    assert_eq!(count(&d, "tag_aliases"), (0, 0, 3));
    assert_eq!(count(&d, "loose"), (0, 0, 0));
}

#[test]
fn deletes_inserts_and_overflow_512() {
    let d = check(
        512,
        120,
        &[(1, 5), (1, 7), (2, 14), (0, 500), (3, 9), (4, 3)],
    );
    assert_eq!(count(&d, "metadata"), (1, 2, 1));
}

#[test]
fn large_pages_65536() {
    check(65536, 200, &[(0, 3), (1, 8), (2, 21), (4, 1), (5, 2)]);
}

#[test]
fn nothing_changed_is_empty() {
    let d = check(4096, 50, &[]);
    assert!(d.tables.values().all(|t| t.is_empty()));
    assert_eq!(d.tables.len(), 6);
}

#[test]
fn lumina_database_with_exports_matches_the_export_route() {
    let dir = TestDir::new("diff-pages-lumina");
    let db = dir.path("lumina.db");
    common::create_lumina(&db, 300, 1);
    let mut r = repo(&dir);
    let a = r
        .snapshot(&db, &SnapshotOptions::default(), &NoProgress)
        .expect("a")
        .snapshot;
    common::touch_metadata_rows(&db, 5, 2);
    let c = Connection::open(&db).unwrap();
    let id: String = c
        .query_row("SELECT id FROM metadata LIMIT 1 OFFSET 7", [], |r| r.get(0))
        .unwrap();
    c.execute(
        "INSERT OR REPLACE INTO metadata(id, collectionId, aiTags) VALUES (?1, 'c', '[1, 2]')",
        [&id],
    )
    .unwrap();
    drop(c);
    let b = r
        .snapshot(&db, &SnapshotOptions::default(), &NoProgress)
        .expect("b")
        .snapshot;
    let route = Route::default();
    let by_pages = r.diff(&a, DiffTarget::Snapshot(&b), &route).expect("diff");
    assert!(route.by_pages(), "the page route was taken: {:?}", route.0);
    let full = r
        .diff(&a, DiffTarget::Live(&db), &NoProgress)
        .expect("full");
    assert_eq!(by_pages, full);
    assert!(by_pages.tables["metadata"]
        .changed
        .contains(&serde_json::json!(id)));
    assert!(by_pages.tables["metadata"].removed.is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]
    #[test]
    fn page_route_equals_full_route(
        page in prop::sample::select(vec![512u32, 1024, 4096]),
        rows in 0u32..150,
        edits in prop::collection::vec((0u32..7, 0u32..200), 0..25),
    ) {
        check(page, rows, &edits);
    }
}

/// Snapshots `db` (with `opts`), runs `change`, snapshots again; returns the
/// diff of the two snapshots (with its route) and the full route's diff (the
/// first snapshot against the live database).
fn around(
    r: &mut Repository,
    db: &Path,
    opts: &SnapshotOptions,
    change: impl FnOnce(),
) -> (
    Result<DiffReport, lumina_backup::Error>,
    Route,
    Result<DiffReport, lumina_backup::Error>,
) {
    let a = r
        .snapshot(db, opts, &NoProgress)
        .expect("snapshot a")
        .snapshot;
    change();
    let b = r
        .snapshot(db, opts, &NoProgress)
        .expect("snapshot b")
        .snapshot;
    let route = Route::default();
    let by_snapshots = r.diff(&a, DiffTarget::Snapshot(&b), &route);
    let full = r.diff(&a, DiffTarget::Live(db), &NoProgress);
    (by_snapshots, route, full)
}

fn image_only() -> SnapshotOptions {
    SnapshotOptions {
        no_exports: true,
        ..Default::default()
    }
}

/// `gen_realapp.py` (the real app's schema and edit pattern), or why not.
fn gen_realapp() -> Result<std::path::PathBuf, String> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let candidates = [
        std::env::var_os("LUMINA_BENCH_SHARED").map(std::path::PathBuf::from),
        Some(here.join("../shared/bench")),
        Some(here.join("../../shared/bench")),
    ];
    let script = candidates
        .into_iter()
        .flatten()
        .map(|d| d.join("gen_realapp.py"))
        .find(|p| p.is_file())
        .ok_or("gen_realapp.py not found (set LUMINA_BENCH_SHARED)")?;
    match std::process::Command::new("python3")
        .arg("--version")
        .output()
    {
        Ok(o) if o.status.success() => Ok(script),
        _ => Err("python3 is missing".into()),
    }
}

fn python(script: &Path, args: &[&str]) {
    let out = std::process::Command::new("python3")
        .arg(script)
        .args(args)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "gen_realapp.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every row of every table, to tell independently which tables changed.
fn table_rows(db: &Path) -> std::collections::BTreeMap<String, Vec<String>> {
    let c = Connection::open(db).unwrap();
    let names: Vec<String> = c
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite%'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    names
        .into_iter()
        .map(|t| {
            let mut rows: Vec<String> = c
                .prepare(&format!("SELECT * FROM \"{t}\""))
                .unwrap()
                .query_map([], |r| {
                    let n = r.as_ref().column_count();
                    Ok((0..n)
                        .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
                        .collect::<Vec<_>>()
                        .join("|"))
                })
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            rows.sort();
            (t, rows)
        })
        .collect()
}

#[test]
fn real_app_schema_insert_or_replace_and_every_table() {
    let script = match gen_realapp() {
        Ok(s) => s,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let dir = TestDir::new("diff-pages-realapp");
    let db = dir.path("app.db");
    let dbs = db.to_str().unwrap();
    python(
        &script,
        &[
            "create",
            "--photos",
            "300",
            "--journal",
            "delete",
            "--out",
            dbs,
        ],
    );
    let mut r = repo(&dir);
    let opts = SnapshotOptions::default();
    let before = table_rows(&db);
    let ids_before: Vec<(String, i64)> = Connection::open(&db)
        .unwrap()
        .prepare("SELECT id, rowid FROM metadata")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let (d, route, full) = around(&mut r, &db, &opts, || {
        python(&script, &["edit", dbs, "--edits", "20"]);
    });
    let d = d.expect("diff");
    assert!(route.by_pages(), "the page route was taken: {:?}", route.0);
    assert_eq!(d, full.expect("full diff"));
    let after = table_rows(&db);
    assert_eq!(
        d.tables.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "every table is compared"
    );
    for (t, rows) in &after {
        assert_eq!(
            !d.tables[t].is_empty(),
            before[t] != *rows,
            "table {t} is listed as changed exactly when it changed"
        );
    }
    // The app's save re-inserts the metadata row (a new rowid): "changed".
    let m = &d.tables["metadata"];
    assert!(!m.changed.is_empty());
    assert!(m.removed.is_empty() && m.added.is_empty(), "{m:?}");
    let c = Connection::open(&db).unwrap();
    let moved = ids_before.iter().any(|(id, rowid)| {
        c.query_row("SELECT rowid FROM metadata WHERE id = ?1", [id], |r| {
            r.get::<_, i64>(0)
        })
        .map(|now| now != *rowid)
        .unwrap_or(false)
    });
    assert!(moved, "the edit re-inserted rows under new rowids");

    // An edit of tables the app does not export only.
    let (d2, route2, full2) = around(&mut r, &db, &opts, || {
        c.execute_batch(
            "UPDATE tag_aliases SET aliasName = aliasName || '-renamed'
                 WHERE id = (SELECT min(id) FROM tag_aliases);
             UPDATE collection_folders SET name = 'moved'
                 WHERE id = (SELECT min(id) FROM collection_folders);",
        )
        .unwrap();
    });
    let d2 = d2.expect("diff");
    assert!(route2.by_pages(), "{:?}", route2.0);
    assert_eq!(d2, full2.expect("full diff"));
    for (t, diff) in &d2.tables {
        let expect = usize::from(t == "tag_aliases" || t == "collection_folders");
        assert_eq!(diff.changed.len(), expect, "table {t}: {diff:?}");
        assert!(
            diff.added.is_empty() && diff.removed.is_empty(),
            "table {t}"
        );
    }
}

/// The page route declines (and the full route answers) when the schema differs.
#[test]
fn schema_change_takes_the_full_route() {
    for change in [
        "ALTER TABLE metadata ADD COLUMN extra TEXT DEFAULT 'x'",
        "CREATE TABLE newer(k TEXT PRIMARY KEY, v); INSERT INTO newer VALUES ('a', 1)",
    ] {
        let dir = TestDir::new("diff-pages-schema");
        let db = dir.path("app.db");
        let c = create(&db, 4096, 80);
        let mut r = repo(&dir);
        let (d, route, full) = around(&mut r, &db, &image_only(), || {
            c.execute_batch(change).unwrap();
            edit(&c, 2, 3);
        });
        assert!(route.declined(), "the page route declined: {:?}", route.0);
        assert_eq!(d.expect("diff"), full.expect("full diff"));
    }
}

/// A column added before both snapshots: old rows' records are short, their
/// value is the declared default; the page route reads them so.
#[test]
fn added_column_with_default_on_both_sides() {
    let dir = TestDir::new("diff-pages-added-column");
    let db = dir.path("app.db");
    let c = create(&db, 1024, 120);
    c.execute_batch(
        "ALTER TABLE metadata ADD COLUMN extra TEXT DEFAULT 'x';
         ALTER TABLE counters ADD COLUMN n2 REAL DEFAULT 2;",
    )
    .unwrap();
    let mut r = repo(&dir);
    let (d, route, full) = around(&mut r, &db, &image_only(), || {
        for (op, i) in [(2, 3), (1, 5), (4, 7), (2, 40)] {
            edit(&c, op, i);
        }
        c.execute_batch(
            "UPDATE metadata SET extra = 'y' WHERE id = 'photos/00011.jpg';
             INSERT OR REPLACE INTO metadata(id, score) VALUES ('photos/00012.jpg', 9);
             INSERT INTO metadata(id) VALUES ('photos/new.jpg');
             UPDATE counters SET n = n + 1 WHERE id = 3;",
        )
        .unwrap();
    });
    assert!(route.by_pages(), "{:?}", route.0);
    assert_eq!(d.expect("diff"), full.expect("full diff"));
}

/// A table with a collation only the app registers: a snapshot of it cannot be
/// taken today (its consistency check needs the collation), and says so in one
/// line; the page route's decline on such a schema is tested in `diff::pages`.
#[test]
fn custom_collation_is_refused_clearly() {
    let dir = TestDir::new("diff-pages-collation");
    let db = dir.path("app.db");
    let c = create(&db, 4096, 30);
    // As an app that registers `appnocase` (same order as NOCASE) writes it.
    c.execute_batch(
        "CREATE TABLE names(k TEXT PRIMARY KEY COLLATE nocase, v);
         INSERT INTO names VALUES ('a', 1), ('B', 2);
         PRAGMA writable_schema = ON;
         UPDATE sqlite_schema SET sql = replace(sql, 'nocase', 'appnocase') WHERE name = 'names';
         PRAGMA writable_schema = OFF;",
    )
    .unwrap();
    drop(c);
    let mut r = repo(&dir);
    let e = r
        .snapshot(&db, &image_only(), &NoProgress)
        .expect_err("no snapshot without the collation");
    let msg = e.to_string();
    assert!(
        msg.contains("appnocase"),
        "the error names the collation: {msg}"
    );
    assert!(!msg.contains('\n'), "one line: {msg}");
}

/// auto_vacuum=FULL: pointer-map pages change with every move; deletes and
/// inserts (with overflow) give the full route's report.
#[test]
fn autovacuum_full_with_pointer_map_pages() {
    let dir = TestDir::new("diff-pages-autovacuum");
    let db = dir.path("app.db");
    let c = Connection::open(&db).unwrap();
    c.execute_batch("PRAGMA auto_vacuum=FULL; PRAGMA page_size=1024; PRAGMA journal_mode=DELETE;")
        .unwrap();
    c.execute_batch(SCHEMA).unwrap();
    for i in 0..200 {
        edit(&c, 0, i);
    }
    let av: i64 = c.query_row("PRAGMA auto_vacuum", [], |r| r.get(0)).unwrap();
    assert_eq!(av, 1);
    let mut r = repo(&dir);
    let (d, route, full) = around(&mut r, &db, &image_only(), || {
        for i in (0..200).step_by(3) {
            edit(&c, 1, i);
        }
        for (op, i) in [(0, 900), (0, 901), (3, 10), (4, 5), (6, 20), (2, 22)] {
            edit(&c, op, i);
        }
    });
    let d = d.expect("diff");
    assert_eq!(d, full.expect("full diff"));
    assert_eq!(d.tables["metadata"].removed.len(), 67);
    eprintln!("auto_vacuum=FULL: by pages {}", route.by_pages());
}
