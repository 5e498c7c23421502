//! Issue #4: browsing history is exact. `diff` names exactly the rows that were
//! updated, inserted and deleted (Lumina exports and plain SQLite images alike),
//! `restore --at` picks the newest snapshot at or before a time, exports and imports
//! round-trip every row, unknown export versions are refused with nothing changed,
//! and tag edits persist.

mod common;

use std::collections::BTreeSet;

use common::*;
use serde_json::Value;

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .expect("array of keys")
        .iter()
        .map(|k| match k {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

/// The table rows of a dump, without the schema entry (an import creates the
/// tables with the app's DDL but not the app's extra indexes).
fn rows_only(d: Dump) -> Dump {
    d.into_iter()
        .filter(|(name, _)| name != "<schema>")
        .collect()
}

fn ids_of(dir: &TestDir) -> Vec<String> {
    list_ids(dir)
}

#[test]
fn diff_names_exactly_the_changed_lumina_rows() {
    let dir = TestDir::new("hist-diff");
    dir.init();
    let db = dir.path("lumina.db");
    create_lumina(&db, 400, 7);
    let a = id_of(&dir.lb().args(["snapshot"]).arg(&db).json());

    let c = open(&db);
    let all: Vec<String> = {
        let mut s = c
            .prepare("SELECT id FROM metadata ORDER BY id")
            .expect("prep");
        let rows = s.query_map([], |r| r.get(0)).expect("query");
        rows.map(|r| r.expect("row")).collect()
    };
    let updated: Vec<&String> = all.iter().skip(3).step_by(40).collect();
    for id in &updated {
        c.execute(
            "UPDATE metadata SET aiDescription = aiDescription || ' edited' WHERE id = ?1",
            [id],
        )
        .expect("update");
    }
    // A changed JSON column only.
    let json_changed = &all[1];
    c.execute(
        "UPDATE metadata SET manualTags = '[\"new-tag\"]' WHERE id = ?1",
        [json_changed],
    )
    .expect("json");
    let deleted = &all[10];
    c.execute("DELETE FROM item_tags WHERE itemId = ?1", [deleted])
        .expect("del rel");
    c.execute("DELETE FROM metadata WHERE id = ?1", [deleted])
        .expect("delete");
    // Deleted then reinserted with the same key and different content: changed.
    let reinserted = &all[20];
    c.execute("DELETE FROM metadata WHERE id = ?1", [reinserted])
        .expect("delete");
    c.execute(
        "INSERT INTO metadata (id, collectionId, aiDescription, aiTags, aiTagsDetailed, manualTags, isHidden, lastModified, createdAt)
         VALUES (?1, 'col-01', 'reborn', '[]', '[]', '[]', 0, 1, 1)",
        [reinserted],
    )
    .expect("reinsert");
    c.execute(
        "INSERT INTO metadata (id, collectionId, aiDescription, aiTags, aiTagsDetailed, manualTags, isHidden, lastModified, createdAt)
         VALUES ('/photos/new/IMG_X.jpg', 'col-01', 'new', '[]', '[]', '[]', 0, 1, 1)",
        [],
    )
    .expect("insert");
    drop(c);
    let b = id_of(&dir.lb().args(["snapshot"]).arg(&db).json());

    let d = dir.lb().args(["diff", &a, &b]).json();
    let m = &d["tables"]["metadata"];
    let mut want_changed: BTreeSet<String> = updated.iter().map(|s| s.to_string()).collect();
    want_changed.insert(json_changed.clone());
    want_changed.insert(reinserted.clone());
    assert_eq!(keys(&m["changed"]), want_changed);
    assert_eq!(
        keys(&m["added"]),
        BTreeSet::from(["/photos/new/IMG_X.jpg".to_string()])
    );
    assert_eq!(keys(&m["removed"]), BTreeSet::from([deleted.clone()]));
    assert_eq!(
        m["changed_columns"][json_changed.as_str()],
        serde_json::json!(["manualTags"])
    );
    assert!(keys(&d["tables"]["collections"]["changed"]).is_empty());
    let rel_removed = keys(&d["tables"]["item_tags"]["removed"]);
    assert!(
        !rel_removed.is_empty() && rel_removed.iter().all(|k| k.contains(deleted.as_str())),
        "{rel_removed:?}"
    );

    // Against the live database: nothing changed since b.
    let live = dir.lb().args(["diff", &b, "--db"]).arg(&db).json();
    for (_, t) in live["tables"].as_object().expect("tables") {
        assert!(
            keys(&t["changed"]).is_empty()
                && keys(&t["added"]).is_empty()
                && keys(&t["removed"]).is_empty()
        );
    }
    // Human output is short.
    let human = dir.lb().args(["diff", &a, &b]).ok().out();
    assert!(
        human.contains("metadata: 12 changed, 1 added, 1 removed"),
        "{human}"
    );
}

#[test]
fn diff_of_a_plain_sqlite_database() {
    let dir = TestDir::new("hist-plain");
    dir.init();
    let db = dir.path("app.db");
    {
        let c = open(&db);
        c.execute_batch(
            "CREATE TABLE kv(k INTEGER PRIMARY KEY, v TEXT);
             CREATE TABLE pairs(a TEXT, b TEXT, n INT, PRIMARY KEY(a, b)) WITHOUT ROWID;
             CREATE TABLE log(msg TEXT);
             INSERT INTO kv VALUES (1,'a'),(2,'b'),(3,'c');
             INSERT INTO pairs VALUES ('x','y',1),('x','z',2);
             INSERT INTO log VALUES ('one');",
        )
        .expect("schema");
    }
    let a = id_of(&dir.lb().args(["snapshot"]).arg(&db).json());
    open(&db)
        .execute_batch(
            "UPDATE kv SET v='B' WHERE k=2; DELETE FROM kv WHERE k=3; INSERT INTO kv VALUES (10,'j');
             UPDATE pairs SET n=5 WHERE a='x' AND b='z'; INSERT INTO log VALUES ('two');",
        )
        .expect("edit");
    let b = id_of(&dir.lb().args(["snapshot"]).arg(&db).json());
    let d = dir.lb().args(["diff", &a, &b]).json();
    assert_eq!(d["tables"]["kv"]["changed"], serde_json::json!([2]));
    assert_eq!(d["tables"]["kv"]["added"], serde_json::json!([10]));
    assert_eq!(d["tables"]["kv"]["removed"], serde_json::json!([3]));
    assert_eq!(
        d["tables"]["pairs"]["changed"],
        serde_json::json!([["x", "z"]])
    );
    assert_eq!(d["tables"]["log"]["added"], serde_json::json!([2]));
}

#[test]
fn restore_at_picks_the_newest_at_or_before() {
    let dir = TestDir::new("hist-at");
    dir.init();
    let db = dir.path("lumina.db");
    create_lumina(&db, 50, 1);
    let s1 = dir.lb().args(["snapshot"]).arg(&db).json();
    let d1 = dump(&db);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    touch_metadata_rows(&db, 5, 2);
    let s2 = dir.lb().args(["snapshot"]).arg(&db).json();
    let d2 = dump(&db);
    let t1 = s1["time"].as_str().expect("time").to_string();
    let t2 = s2["time"].as_str().expect("time").to_string();

    // Exactly at a snapshot's time: that snapshot.
    let chosen = dir.lb().args(["snapshots", "--at", &t1]).json();
    assert_eq!(id_of(&chosen[0]), id_of(&s1));
    // Between the two: the first's whole second plus one (the second came 2.1 s later).
    let secs = time::OffsetDateTime::parse(&t1, &time::format_description::well_known::Rfc3339)
        .expect("rfc3339")
        .unix_timestamp()
        + 1;
    let between = time::OffsetDateTime::from_unix_timestamp(secs)
        .expect("time")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("fmt");
    let out = dir.path("between.db");
    dir.lb()
        .args(["restore", "--at", &between, "--to"])
        .arg(&out)
        .ok();
    assert_eq!(dump(&out), d1);
    // After the last: the last.
    let out2 = dir.path("after.db");
    dir.lb()
        .args(["restore", "--at", "2200-01-01", "--to"])
        .arg(&out2)
        .ok();
    assert_eq!(dump(&out2), d2);
    let _ = t2;
    // Before the first: exit 2 naming the earliest.
    let r = dir
        .lb()
        .args(["restore", "--at", "2001-01-01 10:00", "--to"])
        .arg(dir.path("never.db"))
        .run();
    r.expect_code(2).expect_one_stderr_line();
    assert!(r.stderr.contains(&id_of(&s1)[..12]), "{}", r.stderr);
    assert!(!dir.path("never.db").exists());
    // A malformed time: exit 2.
    dir.lb()
        .args(["restore", "--at", "tuesday", "--to"])
        .arg(dir.path("x.db"))
        .run()
        .expect_code(2);
}

#[test]
fn csv_with_quotes_commas_newlines_and_non_ascii_round_trips() {
    let dir = TestDir::new("hist-csv");
    let db = dir.path("lumina.db");
    create_lumina(&db, 5, 1);
    let nasty = "He said \"hi\", then\nleft; Éé 東京 😀\r\nend";
    open(&db)
        .execute(
            "UPDATE collections SET name = ?1 WHERE id = 'col-01'",
            [nasty],
        )
        .expect("update");
    let out = dir.path("collections.csv");
    dir.lb()
        .args(["export"])
        .arg(&db)
        .args(["--table", "collections", "--format", "csv", "--out"])
        .arg(&out)
        .ok();
    let mut rdr = csv::Reader::from_path(&out).expect("csv");
    let headers = rdr.headers().expect("headers").clone();
    let name_col = headers
        .iter()
        .position(|h| h == "name")
        .expect("name column");
    let names: Vec<String> = rdr
        .records()
        .map(|r| r.expect("record")[name_col].to_string())
        .collect();
    assert!(names.contains(&nasty.to_string()), "{names:?}");
}

#[test]
fn json_export_then_import_reproduces_every_row_and_foreign_versions_are_refused() {
    let dir = TestDir::new("hist-import");
    dir.init();
    let db = dir.path("lumina.db");
    create_lumina(&db, 120, 4);
    let out = dir.path("exports");
    dir.lb()
        .args(["export"])
        .arg(&db)
        .args(["--table", "all", "--out"])
        .arg(&out)
        .ok();
    let target = dir.path("empty.db");
    for t in ["collections", "tags", "metadata", "item_tags"] {
        let r = dir
            .lb()
            .args(["import"])
            .arg(&target)
            .arg("--from")
            .arg(out.join(format!("{t}.json")))
            .json();
        assert!(
            r["warnings"].as_array().expect("warnings").is_empty(),
            "{t}: {r}"
        );
    }
    assert_eq!(rows_only(dump(&target)), rows_only(dump(&db)));

    // Also from a snapshot, gzipped (the app's old .json.gz).
    let snap = id_of(&dir.lb().args(["snapshot"]).arg(&db).json());
    let gz = dir.path("gz");
    dir.lb()
        .args(["export", &snap, "--out"])
        .arg(&gz)
        .arg("--gzip")
        .ok();
    let target2 = dir.path("empty2.db");
    for t in ["collections", "tags", "metadata", "item_tags"] {
        dir.lb()
            .args(["import"])
            .arg(&target2)
            .arg("--from")
            .arg(gz.join(format!("{t}.json.gz")))
            .ok();
    }
    assert_eq!(rows_only(dump(&target2)), rows_only(dump(&db)));

    // A "9.9.9" export is refused and the database left unchanged.
    let text = std::fs::read_to_string(out.join("tags.json")).expect("read");
    let future = dir.path("future.json");
    std::fs::write(&future, text.replacen("\"1.0.0\"", "\"9.9.9\"", 1)).expect("write");
    let before = dump(&target);
    let r = dir
        .lb()
        .args(["import"])
        .arg(&target)
        .arg("--from")
        .arg(&future)
        .run();
    r.expect_code(2).expect_one_stderr_line();
    assert!(r.stderr.contains("9.9.9"), "{}", r.stderr);
    assert_eq!(dump(&target), before);
}

#[test]
fn tag_edits_survive_a_restart() {
    let dir = TestDir::new("hist-tags");
    dir.init();
    let db = dir.path("lumina.db");
    create_lumina(&db, 10, 1);
    dir.lb()
        .args(["snapshot"])
        .arg(&db)
        .args(["--tag", "old"])
        .ok();
    let edited = dir
        .lb()
        .args([
            "tag",
            "latest",
            "--add",
            "keep",
            "--remove",
            "old",
            "--note",
            "before migration",
        ])
        .json();
    // A new process reads the edit back.
    let list = dir.lb().args(["snapshots"]).json();
    assert_eq!(list.as_array().expect("array").len(), 1);
    assert_eq!(list[0]["tags"], serde_json::json!(["keep"]));
    assert_eq!(list[0]["note"], serde_json::json!("before migration"));
    assert_eq!(id_of(&list[0]), id_of(&edited));
    assert_eq!(ids_of(&dir).len(), 1);
    let tagged = dir.lb().args(["snapshots", "--tag", "keep"]).json();
    assert_eq!(tagged.as_array().expect("array").len(), 1);
    dir.lb().args(["verify", "--read-data"]).ok();
    // The data is unchanged: it restores.
    let out = dir.path("r.db");
    dir.lb().args(["restore", "latest", "--to"]).arg(&out).ok();
    assert_eq!(dump(&out), dump(&db));
    // status reports it.
    let st = dir.lb().args(["status"]).json();
    assert_eq!(st["snapshots"], serde_json::json!(1));
    assert!(st["dedup_ratio"].as_f64().expect("ratio") > 0.0);
}

#[test]
fn history_shows_changed_rows_against_the_parent_once_known() {
    let dir = TestDir::new("hist-changes");
    dir.init();
    let db = dir.path("lumina.db");
    create_lumina(&db, 60, 3);
    let a = id_of(&dir.lb().args(["snapshot"]).arg(&db).json());
    touch_metadata_rows(&db, 3, 5);
    let b = id_of(&dir.lb().args(["snapshot"]).arg(&db).json());
    // Unchanged: known at once (0 rows).
    let c = id_of(&dir.lb().args(["snapshot"]).arg(&db).json());
    let list = dir.lb().args(["snapshots"]).json();
    let by_id = |id: &str| {
        list.as_array()
            .expect("array")
            .iter()
            .find(|s| id_of(s) == id)
            .cloned()
            .expect("listed")
    };
    assert!(
        by_id(&a).get("changed_rows").is_none(),
        "the first snapshot has no parent"
    );
    assert!(
        by_id(&b).get("changed_rows").is_none(),
        "not known before a diff"
    );
    assert_eq!(by_id(&c)["changed_rows"], serde_json::json!(0));
    // A diff of b against its parent makes it known.
    let d = dir.lb().args(["diff", &a, &b]).json();
    let total: usize = d["tables"]
        .as_object()
        .expect("tables")
        .values()
        .map(|t| {
            ["added", "removed", "changed"]
                .iter()
                .map(|k| t[*k].as_array().expect("keys").len())
                .sum::<usize>()
        })
        .sum();
    assert!(total >= 3, "{d}");
    let list = dir.lb().args(["snapshots"]).json();
    let b_row = list
        .as_array()
        .expect("array")
        .iter()
        .find(|s| id_of(s) == b)
        .cloned()
        .expect("listed");
    assert_eq!(b_row["changed_rows"], serde_json::json!(total));
    let human = dir.lb().args(["snapshots"]).ok().out();
    assert!(human.contains(&format!("{total} rows changed")), "{human}");
}
