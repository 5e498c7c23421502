//! Invariant: a snapshot restores to exactly what was captured. The restored
//! image holds the database's logical state (WAL frames included), passes
//! `PRAGMA integrity_check`, and is byte-identical to the source file once the
//! source's WAL has been checkpointed; every stored file (`cat`, `restore --all`)
//! comes back byte for byte; the JSON outputs keep the CLI contract's fields.

mod common;

use common::*;
use serde_json::Value;

const ITEMS: u64 = 3000;

fn assert_hex64(v: &Value, what: &str) {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {v}"));
    assert!(
        s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()),
        "{what} is not 64 hex characters: {s}"
    );
}

fn assert_rfc3339(v: &Value) {
    let s = v.as_str().expect("time is a string");
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("time {s} is not RFC 3339: {e}"));
}

fn file_entry<'a>(snap: &'a Value, name: &str) -> &'a Value {
    snap["files"]
        .as_array()
        .expect("files array")
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("no file {name} in {snap}"))
}

#[test]
fn lumina_db_round_trips_with_uncheckpointed_wal_and_after_checkpoint() {
    let t = TestDir::new("roundtrip");
    t.init();
    let db = t.path("lumina.db");
    create_lumina(&db, ITEMS, 7);

    // An application keeps the database open with changes only in the WAL.
    let app = open(&db);
    app.execute_batch(
        "PRAGMA wal_autocheckpoint = 0;
         UPDATE metadata SET colorTag = 'wal-only' WHERE rowid % 10 = 0;
         INSERT INTO tags VALUES ('tag-wal', 'from wal', 'from-wal', 'manual', 1.0, NULL, 1);",
    )
    .expect("writing through the WAL");
    let wal_len = std::fs::metadata(sidecar(&db, "-wal")).expect("wal").len();
    assert!(wal_len > 0, "the changes should be in the WAL only");
    let expected = dump_conn(&app);

    let first = t
        .lb()
        .args([
            "snapshot",
            "--tag",
            "t1",
            "--tag",
            "t2",
            "--note",
            "first one",
        ])
        .arg(&db)
        .json();
    // Contract fields of `snapshot --json`.
    for key in [
        "id",
        "time",
        "db",
        "parent",
        "total_bytes",
        "new_bytes",
        "files",
    ] {
        assert!(
            first.get(key).is_some(),
            "snapshot --json lacks {key}: {first}"
        );
    }
    assert_hex64(&first["id"], "id");
    assert_rfc3339(&first["time"]);
    let canon = std::fs::canonicalize(&db).expect("canonical path");
    assert_eq!(first["db"], canon.to_string_lossy().as_ref());
    assert!(first["parent"].is_null(), "first snapshot has no parent");
    let files = first["files"].as_array().expect("files");
    let mut names: Vec<&str> = files
        .iter()
        .map(|f| f["name"].as_str().expect("name"))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "collections.json",
            "item_tags.json",
            "lumina.db",
            "manifest.json",
            "metadata.json",
            "tags.json"
        ]
    );
    let mut sum = 0;
    for f in files {
        assert_hex64(&f["blake3"], "file blake3");
        sum += f["size"].as_u64().expect("size");
    }
    assert_eq!(first["total_bytes"].as_u64(), Some(sum));
    assert!(first["new_bytes"].as_u64().expect("new_bytes") > 0);
    let id1 = id_of(&first);

    // Logical equality with the WAL not checkpointed.
    let r1 = t.path("r1.db");
    t.lb().args(["restore", &id1, "--to"]).arg(&r1).ok();
    assert!(integrity_ok(&r1), "restored image fails integrity_check");
    assert_eq!(
        common::image_digest(&r1),
        file_entry(&first, "lumina.db")["blake3"]
            .as_str()
            .expect("blake3")
    );
    assert_eq!(
        std::fs::metadata(&r1).expect("r1").len(),
        file_entry(&first, "lumina.db")["size"]
            .as_u64()
            .expect("size")
    );
    assert_eq!(
        dump(&r1),
        expected,
        "restored content differs from the live state"
    );
    // The source was not written to.
    assert_eq!(dump_conn(&app), expected);

    // After a full checkpoint the image equals the source file byte for byte.
    drop(app);
    checkpoint(&db);
    let second = t.lb().args(["snapshot"]).arg(&db).json();
    let id2 = id_of(&second);
    assert_eq!(second["parent"].as_str(), Some(id1.as_str()));
    let r2 = t.path("r2.db");
    t.lb().args(["restore", &id2[..10], "--to"]).arg(&r2).ok();
    assert!(integrity_ok(&r2));
    assert_eq!(
        std::fs::read(&r2).expect("r2"),
        std::fs::read(&db).expect("db"),
        "restored image is not byte-identical to the checkpointed source"
    );
    assert_eq!(dump(&r2), expected);

    // `snapshots --json`: oldest first, contract fields.
    let list = t.lb().args(["snapshots"]).json();
    let list = list.as_array().expect("array");
    assert_eq!(list.len(), 2);
    assert_eq!(id_of(&list[0]), id1);
    assert_eq!(id_of(&list[1]), id2);
    for s in list {
        for key in [
            "id",
            "time",
            "db",
            "tags",
            "note",
            "total_bytes",
            "new_bytes",
        ] {
            assert!(s.get(key).is_some(), "snapshots --json lacks {key}: {s}");
        }
        assert_rfc3339(&s["time"]);
        assert_eq!(s["db"], canon.to_string_lossy().as_ref());
    }
    assert_eq!(list[0]["tags"], serde_json::json!(["t1", "t2"]));
    assert_eq!(list[0]["note"], "first one");
    assert_eq!(list[0]["total_bytes"], first["total_bytes"]);
    assert_eq!(list[0]["new_bytes"], first["new_bytes"]);
    let tagged = t.lb().args(["snapshots", "--tag", "t2"]).json();
    assert_eq!(tagged.as_array().map(|a| a.len()), Some(1));
    let by_db = t.lb().args(["log", "--db"]).arg(&db).json();
    assert_eq!(by_db.as_array().map(|a| a.len()), Some(2));

    // `show`: human and JSON, with table row counts.
    let shown = t.lb().args(["show", &id1]).ok().out();
    assert!(shown.contains(&id1), "show names the snapshot: {shown}");
    assert!(
        shown.contains("lumina.db") && shown.contains("metadata.json"),
        "{shown}"
    );
    let show = t.lb().args(["show", "latest"]).json();
    assert_eq!(id_of(&show), id2);
    assert_eq!(show["tables"]["metadata"].as_u64(), Some(ITEMS));
    assert_eq!(show["tables"]["tags"].as_u64(), Some(61));

    // `cat`: exports are valid JSON in the app's format; the image is the restored file.
    let meta = t.lb().args(["cat", &id1, "metadata.json"]).ok();
    let meta: Value = serde_json::from_slice(&meta.stdout).expect("metadata.json is JSON");
    assert_eq!(meta["version"], "1.0.0");
    assert_eq!(meta["totalItems"].as_u64(), Some(ITEMS));
    assert_eq!(
        meta["metadata"].as_array().map(|a| a.len() as u64),
        Some(ITEMS)
    );
    let tags = t.lb().args(["cat", &id1, "tags.json"]).ok();
    let tags: Value = serde_json::from_slice(&tags.stdout).expect("tags.json is JSON");
    assert_eq!(
        tags["totalTags"].as_u64(),
        Some(61),
        "the WAL-only tag is exported"
    );
    let image = t.lb().args(["cat", &id1, "lumina.db"]).ok();
    assert_eq!(image.stdout, std::fs::read(&r1).expect("r1"));
    let image = t.lb().args(["cat", &id2, "image"]).ok();
    assert_eq!(image.stdout, std::fs::read(&db).expect("db"));

    // `restore --all`: every file, each matching its recorded size and checksum.
    let all = t.path("all");
    t.lb()
        .args(["restore", &id1, "--all", "--to"])
        .arg(&all)
        .ok();
    for f in first["files"].as_array().expect("files") {
        let p = all.join(f["name"].as_str().expect("name"));
        assert!(p.is_file(), "restore --all did not write {}", p.display());
        assert_eq!(
            std::fs::metadata(&p).expect("meta").len(),
            f["size"].as_u64().expect("size")
        );
        if f["kind"] == "image" {
            assert_eq!(
                common::image_digest(&p),
                f["blake3"].as_str().expect("blake3")
            );
        }
        let catted = t
            .lb()
            .args(["cat", &id1])
            .arg(f["name"].as_str().expect("name"))
            .ok();
        assert_eq!(catted.stdout, std::fs::read(&p).expect("read"));
    }
    assert_eq!(dump(&all.join("lumina.db")), expected);

    t.lb().args(["verify", "--read-data"]).ok();
}

#[test]
fn non_lumina_database_gets_image_and_manifest_only() {
    let t = TestDir::new("other-schema");
    t.init();
    let db = t.path("app.sqlite");
    {
        let mut c = open(&db);
        c.execute_batch(
            "PRAGMA journal_mode = DELETE;
             PRAGMA user_version = 42;
             CREATE TABLE notes(id INTEGER PRIMARY KEY, title TEXT, body TEXT, score REAL);
             CREATE TABLE kv(k TEXT PRIMARY KEY, v BLOB) WITHOUT ROWID;
             CREATE INDEX notes_title ON notes(title);
             CREATE VIEW v_notes AS SELECT id, title FROM notes;",
        )
        .expect("schema");
        let tx = c.transaction().expect("tx");
        let mut rng = lumina_backup::SampleRng::new(3);
        for i in 0..4000i64 {
            tx.execute(
                "INSERT INTO notes(title, body, score) VALUES (?1, ?2, ?3)",
                rusqlite::params![
                    format!("note {i}"),
                    "x".repeat(rng.below(500) as usize),
                    i as f64 / 3.0
                ],
            )
            .expect("insert");
            let blob: Vec<u8> = (0..rng.below(300)).map(|_| rng.next_u64() as u8).collect();
            tx.execute(
                "INSERT INTO kv VALUES (?1, ?2)",
                rusqlite::params![format!("k{i}"), blob],
            )
            .expect("insert kv");
        }
        tx.commit().expect("commit");
    }
    let expected = dump(&db);
    let snap = t.lb().args(["snapshot"]).arg(&db).json();
    let mut names: Vec<&str> = snap["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f["name"].as_str().expect("name"))
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["app.sqlite", "manifest.json"],
        "no exports for a foreign schema"
    );
    let id = id_of(&snap);
    let out = t.path("out.sqlite");
    t.lb().args(["restore", &id, "--to"]).arg(&out).ok();
    assert!(integrity_ok(&out));
    assert_eq!(dump(&out), expected);
    assert_eq!(
        std::fs::read(&out).expect("out"),
        std::fs::read(&db).expect("db"),
        "a rollback-journal database restores byte-identical"
    );
    let manifest = t.lb().args(["cat", &id, "manifest.json"]).ok();
    let manifest: Value = serde_json::from_slice(&manifest.stdout).expect("manifest is JSON");
    assert_eq!(manifest["tables"]["notes"].as_u64(), Some(4000));
    assert_eq!(manifest["tables"]["kv"].as_u64(), Some(4000));
    assert_eq!(manifest["user_version"].as_i64(), Some(42));
    assert_eq!(manifest["lumina"], false);
    let missing = t.lb().args(["cat", &id, "metadata.json"]).run();
    missing.expect_code(2).expect_one_stderr_line();
}

#[test]
fn restore_and_snapshot_accept_bare_relative_file_names() {
    // Regression: a target with no folder part (`--to out.db`) has an empty
    // parent path; the restore must not fail after installing the file.
    let t = TestDir::new("relative");
    t.init();
    let db = t.path("lumina.db");
    create_lumina(&db, 100, 4);
    let expected = dump(&db);
    t.lb()
        .current_dir(t.root())
        .args(["snapshot", "lumina.db"])
        .ok();
    let r = t
        .lb()
        .current_dir(t.root())
        .args(["restore", "latest", "--to", "out.db"])
        .run();
    r.expect_code(0);
    assert_eq!(dump(&t.path("out.db")), expected);
    let r = t
        .lb()
        .current_dir(t.root())
        .args(["restore", "latest", "--force", "--to", "out.db"])
        .run();
    r.expect_code(0);
    assert_eq!(dump(&t.path("out.db")), expected);
}
