//! Invariant: snapshots are incremental and independent. A snapshot after a
//! small change stores about the changed pages (0.5% of rows changed adds under
//! 10% of the first snapshot's bytes), a snapshot of an unchanged database adds
//! under 1%, and every snapshot of a series restores on its own to the exact
//! state it captured, whatever came before or after it.

mod common;

use common::*;
use proptest::prelude::*;

const ITEMS: u64 = 20_000;

fn new_bytes(v: &serde_json::Value) -> u64 {
    v["new_bytes"].as_u64().expect("new_bytes")
}

#[test]
fn small_change_adds_little_and_unchanged_adds_almost_nothing() {
    let t = TestDir::new("incremental");
    t.init();
    let db = t.path("lumina.db");
    create_lumina(&db, ITEMS, 11);
    let first = t.lb().args(["snapshot"]).arg(&db).json();
    let base = new_bytes(&first);
    assert!(base > 1 << 20, "first snapshot stored only {base} bytes");

    // 0.5% of the photos change.
    touch_metadata_rows(&db, ITEMS / 200, 1);
    let second = t.lb().args(["snapshot"]).arg(&db).json();
    let added = new_bytes(&second);
    eprintln!("first snapshot {base} bytes; after 0.5% of rows changed +{added}");
    assert!(
        added * 10 < base,
        "changing 0.5% of rows added {added} bytes, not under 10% of the first snapshot's {base}"
    );

    let third = t.lb().args(["snapshot"]).arg(&db).json();
    let added = new_bytes(&third);
    eprintln!("unchanged database +{added}");
    assert!(
        added * 100 < base,
        "an unchanged database added {added} bytes, not under 1% of {base}"
    );
    assert_eq!(third["parent"], second["id"]);
    t.lb().args(["verify", "--read-data"]).ok();
}

/// The state captured at one step: the checkpointed file's bytes and its dump.
struct Step {
    id: String,
    file: std::path::PathBuf,
    dump: Dump,
}

#[test]
fn every_snapshot_of_a_series_restores_independently() {
    let t = TestDir::new("series");
    t.init();
    let db = t.path("lumina.db");
    create_lumina(&db, 5000, 21);
    let changes: [&dyn Fn(&rusqlite::Connection); 5] = [
        &|_| {},
        &|c| {
            c.execute_batch(
                "UPDATE metadata SET manualTags = '[\"kept\"]' WHERE rowid % 50 = 0;
                 DELETE FROM item_tags WHERE rowid % 7 = 0;",
            )
            .expect("edit 1")
        },
        &|c| {
            c.execute_batch(
                "INSERT INTO collections VALUES ('col-new', 'New', 1, 2, 0);
                 DELETE FROM metadata WHERE rowid % 3 = 0;
                 PRAGMA user_version = 5;",
            )
            .expect("edit 2")
        },
        &|c| {
            c.execute_batch(
                "ALTER TABLE metadata ADD COLUMN rating INTEGER;
                 UPDATE metadata SET rating = rowid % 5;
                 CREATE TABLE extra(id INTEGER PRIMARY KEY, blob BLOB);
                 INSERT INTO extra(blob) SELECT randomblob(700) FROM metadata LIMIT 2000;",
            )
            .expect("edit 3")
        },
        &|c| {
            c.execute_batch("DELETE FROM extra WHERE id % 2 = 0; VACUUM;")
                .expect("edit 4")
        },
    ];
    let mut steps = Vec::new();
    for (i, change) in changes.iter().enumerate() {
        {
            let c = open(&db);
            change(&c);
        }
        checkpoint(&db);
        let file = t.path(&format!("expected-{i}.db"));
        std::fs::copy(&db, &file).expect("saving the state");
        let snap = t.lb().args(["snapshot"]).arg(&db).json();
        steps.push(Step {
            id: id_of(&snap),
            dump: dump(&file),
            file,
        });
    }
    // Restore in an order unrelated to the order of capture.
    for i in [3usize, 0, 4, 1, 2] {
        let s = &steps[i];
        let out = t.path(&format!("restored-{i}.db"));
        t.lb().args(["restore", &s.id, "--to"]).arg(&out).ok();
        assert!(integrity_ok(&out), "step {i}: integrity_check failed");
        assert_eq!(
            std::fs::read(&out).expect("restored"),
            std::fs::read(&s.file).expect("expected"),
            "step {i}: restored image differs from the database at that step"
        );
        assert_eq!(dump(&out), s.dump, "step {i}: logical content differs");
    }
    let distinct: std::collections::HashSet<_> = steps.iter().map(|s| &s.dump).collect();
    assert_eq!(
        distinct.len(),
        steps.len(),
        "each step must be a different state"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    /// Snapshot-then-restore is byte-identical after random row edits (library API).
    #[test]
    fn restore_is_byte_identical_after_random_edits(
        edits in proptest::collection::vec((0u8..3, 1i64..400, "[a-z ]{0,300}"), 1..40)
    ) {
        use lumina_backup::{NoProgress, OpenOptions, Repository, RestoreOptions, SnapshotOptions};
        let t = TestDir::new("prop");
        let db = t.path("lumina.db");
        create_lumina(&db, 400, 5);
        Repository::init(&t.repo()).expect("init");
        let mut repo = Repository::open(&t.repo(), &OpenOptions::default()).expect("open");
        repo.snapshot(&db, &SnapshotOptions::default(), &NoProgress).expect("first snapshot");
        {
            let mut c = open(&db);
            let tx = c.transaction().expect("tx");
            for (kind, row, text) in &edits {
                match kind {
                    0 => tx.execute("UPDATE metadata SET aiDescription = ?1 WHERE rowid = ?2",
                        rusqlite::params![text, row]),
                    1 => tx.execute("DELETE FROM metadata WHERE rowid = ?1", [row]),
                    _ => tx.execute(
                        "INSERT OR REPLACE INTO tags VALUES (?1, ?2, ?1, 'manual', 0.5, NULL, 0)",
                        rusqlite::params![format!("p-{row}"), text]),
                }.expect("edit");
            }
            tx.commit().expect("commit");
        }
        checkpoint(&db);
        let snap = repo.snapshot(&db, &SnapshotOptions::default(), &NoProgress).expect("snapshot");
        let out = t.path("out.db");
        repo.restore(&snap.snapshot.id.to_hex(), &out, &RestoreOptions::default(), &NoProgress)
            .expect("restore");
        prop_assert_eq!(std::fs::read(&out).expect("out"), std::fs::read(&db).expect("db"));
    }
}
