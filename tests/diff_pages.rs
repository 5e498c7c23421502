//! `diff` between two snapshots from the pages that differ (`diff::pages`): the
//! report equals the full route's (the diff against the live database, which
//! reads both sides through SQLite), keyed by declared primary keys, in every
//! table; INSERT OR REPLACE shows as "changed".

mod common;

use std::path::Path;
use std::sync::Mutex;

use common::TestDir;
use lumina_backup::{
    DiffReport, DiffTarget, NoProgress, OpenOptions, PhaseInfo, Progress, Repository,
    SnapshotOptions,
};
use proptest::prelude::*;
use rusqlite::{params, Connection};

#[derive(Default)]
struct Route(Mutex<bool>);
impl Progress for Route {
    fn phase(&self, info: &PhaseInfo<'_>) {
        if info.detail == Some("changed pages") {
            *self.0.lock().unwrap() = true;
        }
    }
    fn advance(&self, _n: u64) {}
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
    assert!(*route.0.lock().unwrap(), "the page route was taken");
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
    assert!(*route.0.lock().unwrap(), "the page route was taken");
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
