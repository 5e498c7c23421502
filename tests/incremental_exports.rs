//! Exports in proportion to the change (issue #10 item 4): after random edits,
//! every snapshot's JSON exports are byte-identical to a whole render of the
//! database at that moment (only the header's timestamp differs), while most
//! rows are reused from the parent's export segments.

mod common;

use std::path::Path;

use common::{id_of, Lb, TestDir};
use lumina_backup::{
    export_database, ExportFormat, ExportRequest, InitOptions, KdfParams, NoProgress, OpenOptions,
    Repository, SnapshotOptions, SnapshotSummary, Table,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rusqlite::{params, Connection};

fn create(path: &Path, page_size: u32, journal: &str, photos: usize) -> Connection {
    let c = Connection::open(path).expect("open");
    c.execute_batch(&format!(
        "PRAGMA page_size={page_size}; PRAGMA journal_mode={journal};"
    ))
    .expect("pragmas");
    for t in Table::all() {
        c.execute_batch(t.create_sql()).expect("schema");
    }
    c.execute_batch("BEGIN").expect("begin");
    for k in 0..3 {
        c.execute(
            "INSERT INTO collections VALUES (?1, ?2, 1, NULL, 0)",
            params![format!("c-{k}"), format!("Collection {k}")],
        )
        .expect("collection");
    }
    for k in 0..40 {
        c.execute(
            "INSERT INTO tags VALUES (?1, ?2, ?3, 'ai', 0.5, NULL, 7)",
            params![format!("t-{k:02}"), format!("Tag {k}"), format!("tag {k}")],
        )
        .expect("tag");
    }
    let mut rng = StdRng::seed_from_u64(7);
    for i in 0..photos {
        insert_photo(&c, &mut rng, &format!("/photos/{:06}.jpg", i * 10));
    }
    c.execute_batch("COMMIT").expect("commit");
    c
}

/// A description of `len` characters (long ones overflow their page).
fn text(rng: &mut StdRng, len: usize) -> String {
    (0..len)
        .map(|_| char::from(b'a' + rng.gen_range(0..26u8)))
        .collect()
}

fn insert_photo(c: &Connection, rng: &mut StdRng, id: &str) {
    let len = if rng.gen_bool(0.1) {
        3000
    } else {
        rng.gen_range(20..300)
    };
    c.execute(
        "INSERT OR REPLACE INTO metadata VALUES (?1, ?2, NULL, ?3, ?4, NULL, 'red', '[]', 0, ?5, 1)",
        params![
            id,
            format!("c-{}", rng.gen_range(0..4)), // c-3 does not exist: an orphan
            text(rng, len),
            format!("[\"{}\"]", text(rng, 5)),
            rng.gen_range(0..1_000_000i64),
        ],
    )
    .expect("photo");
    c.execute("DELETE FROM item_tags WHERE itemId = ?1", [id])
        .expect("untag");
    for _ in 0..rng.gen_range(0..5) {
        c.execute(
            "INSERT OR IGNORE INTO item_tags VALUES (?1, ?2, 5)",
            params![id, format!("t-{:02}", rng.gen_range(0..40))],
        )
        .expect("tag");
    }
}

fn random_ids(c: &Connection, rng: &mut StdRng, n: usize) -> Vec<String> {
    let count: i64 = c
        .query_row("SELECT COUNT(*) FROM metadata", [], |r| r.get(0))
        .expect("count");
    let mut stmt = c
        .prepare("SELECT id FROM metadata ORDER BY id LIMIT 1 OFFSET ?1")
        .expect("ids");
    (0..n)
        .filter(|_| count > 0)
        .map(|_| {
            stmt.query_row([rng.gen_range(0..count)], |r| r.get(0))
                .expect("id")
        })
        .collect()
}

/// One round of edits like the app's: saves (INSERT OR REPLACE, a new rowid),
/// in-place updates (same-size changes of long rows rewrite overflow pages in
/// place), deletions, new photos between old ones, tag edits.
fn edit(c: &Connection, rng: &mut StdRng, ops: usize) {
    c.execute_batch("BEGIN").expect("begin");
    for _ in 0..ops {
        let id = random_ids(c, rng, 1).pop();
        match (rng.gen_range(0..6), id) {
            (0, Some(id)) => insert_photo(c, rng, &id),
            (1, Some(id)) => {
                // Same length, other bytes: SQLite overwrites the cell in place.
                let old: String = c
                    .query_row(
                        "SELECT aiDescription FROM metadata WHERE id = ?1",
                        [&id],
                        |r| r.get(0),
                    )
                    .expect("old");
                // Long rows keep their start (on the leaf) and change their
                // end (on overflow pages): only the overflow pages change.
                let keep = old.len().saturating_sub(50);
                let new = format!("{}{}", &old[..keep], text(rng, old.len() - keep));
                c.execute(
                    "UPDATE metadata SET aiDescription = ?1 WHERE id = ?2",
                    params![new, id],
                )
                .expect("update");
            }
            (2, Some(id)) => {
                c.execute("DELETE FROM metadata WHERE id = ?1", [&id])
                    .expect("delete");
                c.execute("DELETE FROM item_tags WHERE itemId = ?1", [&id])
                    .expect("delete tags");
            }
            (3, _) => {
                let id = format!("/photos/{:06}.jpg", rng.gen_range(0..200_000) | 1);
                insert_photo(c, rng, &id);
            }
            (4, _) => {
                c.execute(
                    "UPDATE tags SET name = ?1 WHERE id = ?2",
                    params![text(rng, 8), format!("t-{:02}", rng.gen_range(0..40))],
                )
                .expect("tag name");
            }
            (_, Some(id)) => {
                c.execute(
                    "UPDATE metadata SET isHidden = 1 - isHidden WHERE id = ?1",
                    [&id],
                )
                .expect("hide");
            }
            _ => {}
        }
    }
    c.execute_batch("COMMIT").expect("commit");
}

/// `bytes` with the value of its header's `timestamp` removed.
fn without_timestamp(bytes: &[u8]) -> Vec<u8> {
    let text = String::from_utf8(bytes.to_vec()).expect("utf-8 export");
    let start = text.find("\"timestamp\":\"").expect("a timestamp") + 13;
    let end = start + text[start..].find('"').expect("its end");
    format!("{}{}", &text[..start], &text[end..]).into_bytes()
}

/// Checks each stored export of `summary`'s snapshot against a whole render
/// of `db` as it is now.
fn check_exports(repo: &Repository, summary: &SnapshotSummary, db: &Path, dir: &TestDir) {
    let out = dir.path("whole");
    let _ = std::fs::remove_dir_all(&out);
    export_database(
        db,
        &ExportRequest {
            tables: Table::all().to_vec(),
            format: ExportFormat::Json,
            out: out.clone(),
            gzip: false,
        },
    )
    .expect("whole export");
    for t in Table::all() {
        let entry = summary.snapshot.file(t.file_name()).expect("export file");
        let mut stored = Vec::new();
        repo.read_file(entry, &mut stored, &NoProgress)
            .expect("read");
        let whole = std::fs::read(out.join(t.file_name())).expect("whole file");
        assert!(
            without_timestamp(&stored) == without_timestamp(&whole),
            "{} of snapshot {} differs from a whole render",
            t.file_name(),
            summary.snapshot.id.short()
        );
    }
}

/// The warnings of a first snapshot of `db` as it is now (every row rendered,
/// the consistency check riding along the render), in a repository of its own.
fn whole_warnings(db: &Path, dir: &TestDir) -> Vec<String> {
    let path = dir.path("whole-repo");
    let _ = std::fs::remove_dir_all(&path);
    Repository::init(&path).expect("init");
    let mut repo = Repository::open(&path, &OpenOptions::default()).expect("open");
    let s = repo
        .snapshot(db, &SnapshotOptions::default(), &NoProgress)
        .expect("whole snapshot");
    assert_eq!(
        s.export_rows.map(|r| r.rendered),
        s.export_rows.map(|r| r.total)
    );
    s.snapshot.record.warnings
}

fn run(page_size: u32, journal: &str, seed: u64) {
    let dir = TestDir::new("incr-exports");
    let db = dir.path("lumina.db");
    let conn = create(&db, page_size, journal, 4000);
    Repository::init(&dir.repo()).expect("init");
    let mut repo = Repository::open(&dir.repo(), &OpenOptions::default()).expect("open");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut partial = 0;
    for round in 0..10 {
        match round {
            0 => {}
            4 => {} // nothing changed
            6 => {
                conn.execute_batch("VACUUM").expect("vacuum"); // pages renumbered
                edit(&conn, &mut rng, 3);
            }
            8 => {
                // A new column: every row renders differently.
                conn.execute_batch("ALTER TABLE tags ADD COLUMN note TEXT DEFAULT 'n'")
                    .expect("alter");
                edit(&conn, &mut rng, 2);
            }
            _ => {
                let ops = rng.gen_range(1..5);
                edit(&conn, &mut rng, ops)
            }
        }
        let summary = repo
            .snapshot(&db, &SnapshotOptions::default(), &NoProgress)
            .expect("snapshot");
        check_exports(&repo, &summary, &db, &dir);
        // The consistency findings (photos in the missing collection c-3),
        // from the key scan beside a partial render, are a whole render's.
        let warnings = &summary.snapshot.record.warnings;
        assert!(
            warnings.iter().any(|w| w.contains("c-3")),
            "round {round}: {warnings:?}"
        );
        assert_eq!(*warnings, whole_warnings(&db, &dir), "round {round}");
        eprintln!("round {round}: {:?}", summary.export_rows);
        if let Some(rows) = summary.export_rows {
            if round > 0 && rows.rendered * 2 < rows.total {
                partial += 1;
            }
            if round == 0 {
                assert_eq!(rows.rendered, rows.total, "a first snapshot renders all");
            }
        }
        assert!(
            summary.snapshot.file("exports.map").is_ok(),
            "round {round}: no export map"
        );
    }
    assert!(
        partial >= 5,
        "only {partial} snapshots reused most of their parent's rows"
    );
}

#[test]
fn rollback_journal_small_pages() {
    run(1024, "DELETE", 1);
}

#[test]
fn wal_default_pages() {
    run(4096, "WAL", 2);
}

#[test]
fn encrypted_repository_reuses_segments_too() {
    let dir = TestDir::new("incr-exports-enc");
    let db = dir.path("lumina.db");
    let conn = create(&db, 4096, "DELETE", 4000);
    let init = InitOptions {
        passphrase: Some(zeroize::Zeroizing::new("pw".to_string())),
        kdf: KdfParams {
            m_cost_kib: 8 * 1024,
            t_cost: 1,
            p_cost: 1,
        },
        force: false,
        zstd_level: None,
    };
    Repository::init_with(&dir.repo(), &init).expect("init");
    let mut repo =
        Repository::open(&dir.repo(), &OpenOptions::default().with_passphrase("pw")).expect("open");
    let mut rng = StdRng::seed_from_u64(3);
    repo.snapshot(&db, &SnapshotOptions::default(), &NoProgress)
        .expect("first");
    edit(&conn, &mut rng, 1);
    let s = repo
        .snapshot(&db, &SnapshotOptions::default(), &NoProgress)
        .expect("second");
    check_exports(&repo, &s, &db, &dir);
    let rows = s.export_rows.expect("exports written");
    assert!(rows.rendered * 2 < rows.total, "{rows:?}");
}

/// Tables an export cannot cut into segments (a NULL primary key, a WITHOUT
/// ROWID table, an INTEGER PRIMARY KEY) are rendered whole, still exactly.
#[test]
fn odd_schemas_are_rendered_whole_and_exactly() {
    let dir = TestDir::new("incr-exports-odd");
    let db = dir.path("odd.db");
    let c = Connection::open(&db).expect("open");
    c.execute_batch(
        "CREATE TABLE collections(id INTEGER PRIMARY KEY, name TEXT);
         CREATE TABLE tags(id TEXT PRIMARY KEY, name TEXT) WITHOUT ROWID;
         CREATE TABLE metadata(id TEXT PRIMARY KEY, collectionId TEXT, aiTags TEXT);
         CREATE TABLE item_tags(itemId TEXT, tagId TEXT, addedAt INTEGER, PRIMARY KEY(itemId, tagId));
         INSERT INTO collections VALUES (1, 'one'), (2, 'two');
         INSERT INTO tags VALUES ('a', 'A'), ('b', 'B');
         INSERT INTO metadata VALUES (NULL, '1', '[1]'), (NULL, '2', 'x'), ('p', '1', NULL);
         INSERT INTO item_tags VALUES ('p', 'a', 1), ('p', 'b', 2);",
    )
    .expect("odd schema");
    Repository::init(&dir.repo()).expect("init");
    let mut repo = Repository::open(&dir.repo(), &OpenOptions::default()).expect("open");
    for round in 0..3 {
        c.execute(
            "INSERT INTO item_tags VALUES (?1, 'a', 3)",
            [format!("q{round}")],
        )
        .expect("edit");
        c.execute("INSERT INTO metadata VALUES (NULL, '9', ?1)", [round])
            .expect("null key");
        let s = repo
            .snapshot(&db, &SnapshotOptions::default(), &NoProgress)
            .expect("snapshot");
        check_exports(&repo, &s, &db, &dir);
    }
}

/// `snapshot --json` says how many export rows were rendered.
#[test]
fn snapshot_json_reports_rendered_rows() {
    let dir = TestDir::new("incr-exports-cli");
    let db = dir.path("lumina.db");
    let conn = create(&db, 4096, "DELETE", 2000);
    dir.init();
    let first = dir.lb().args(["snapshot"]).arg(&db).json();
    let all = first["export_rows"]["total"].as_u64().expect("total");
    assert_eq!(
        first["export_rows"]["rendered"].as_u64(),
        Some(all),
        "{first}"
    );
    let mut rng = StdRng::seed_from_u64(9);
    edit(&conn, &mut rng, 1);
    let second = dir.lb().args(["snapshot"]).arg(&db).json();
    let rendered = second["export_rows"]["rendered"]
        .as_u64()
        .expect("rendered");
    assert!(rendered * 2 < all, "{second}");
    let third = dir.lb().args(["snapshot"]).arg(&db).json();
    assert_eq!(third["unchanged"], true, "{third}");
    assert!(third.get("export_rows").is_none(), "{third}");
}

/// Through the kept copy, a changed table leaf is compared cell by cell with
/// the parent's version of it: after app-like saves of a few photos, fewer
/// rows are rendered again than with a temporary copy (where every row of a
/// changed leaf counts as changed), and the exports are the same bytes.
#[test]
fn kept_copy_renders_only_the_changed_cells_of_a_leaf() {
    let dir = TestDir::new("incr-exports-cells");
    let db = dir.path("lumina.db");
    let conn = create(&db, 4096, "DELETE", 3000);
    let kept = || dir.lb();
    let temp = || Lb::new(&dir.path("repo-temp"), dir.root());
    kept().arg("init").ok();
    temp().arg("init").ok();
    kept().args(["snapshot", "--kept-copy"]).arg(&db).ok();
    temp().arg("snapshot").arg(&db).ok();
    let mut rng = StdRng::seed_from_u64(21);
    let (mut sum_a, mut sum_b) = (0, 0);
    for round in 0..3 {
        // Saves as the app does them: INSERT OR REPLACE (a new rowid) and the
        // photo's tags deleted and inserted again.
        conn.execute_batch("BEGIN").expect("begin");
        for id in random_ids(&conn, &mut rng, 2) {
            insert_photo(&conn, &mut rng, &id);
        }
        conn.execute_batch("COMMIT").expect("commit");
        let a = kept().args(["snapshot", "--kept-copy"]).arg(&db).json();
        let b = temp().arg("snapshot").arg(&db).json();
        let rendered = |v: &serde_json::Value| v["export_rows"]["rendered"].as_u64().expect("rows");
        eprintln!(
            "round {round}: kept copy {} rows, temporary copy {} rows of {}",
            rendered(&a),
            rendered(&b),
            a["export_rows"]["total"]
        );
        // Cell by cell never finds more rows changed than leaf by leaf.
        assert!(rendered(&a) <= rendered(&b), "round {round}: {a} / {b}");
        sum_a += rendered(&a);
        sum_b += rendered(&b);
        for name in [
            "metadata.json",
            "collections.json",
            "tags.json",
            "item_tags.json",
        ] {
            let x = kept().args(["cat", &id_of(&a), name]).ok().stdout;
            let y = temp().args(["cat", &id_of(&b), name]).ok().stdout;
            assert!(
                without_timestamp(&x) == without_timestamp(&y),
                "round {round}: {name} differs"
            );
        }
    }
    assert!(sum_a < sum_b, "{sum_a} rows rendered, {sum_b} leaf by leaf");
}
