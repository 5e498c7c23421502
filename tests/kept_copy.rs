//! The kept copy (`sqlite::kept`): the capture's staged copy of a database kept
//! in the cache folder between snapshots, brought up to date by writing only
//! the pages that differ. Snapshots taken through it equal snapshots taken
//! through a fresh temporary copy, whatever the kept copy held before (damaged,
//! truncated, another database's, a different page size); a copy another
//! capture holds is not shared; copies of removed databases are removed; a
//! full disk fails cleanly.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

/// The staging folder under the test's cache folder.
fn staging(t: &TestDir) -> PathBuf {
    t.path("cache").join("lumina-backup")
}

fn lb(t: &TestDir, repo: &str) -> Lb {
    Lb::new(&t.path(repo), t.root()).env("XDG_CACHE_HOME", t.path("cache"))
}

/// Files in the staging folder whose names start with `prefix` and end with `suffix`.
fn staged(t: &TestDir, prefix: &str, suffix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(staging(t))
        .map(|d| d.map(|e| e.expect("entry").path()).collect())
        .unwrap_or_default();
    found.retain(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(prefix) && n.ends_with(suffix))
    });
    found
}

/// The one kept copy in the staging folder.
fn kept_copy(t: &TestDir) -> PathBuf {
    let copies = staged(t, "lumina-backup-copy-", ".db");
    assert_eq!(copies.len(), 1, "{copies:?}");
    copies[0].clone()
}

/// An export with its `"timestamp"` value blanked (the time of the render).
fn untimed(bytes: &[u8]) -> Vec<u8> {
    let text = String::from_utf8(bytes.to_vec()).expect("utf-8 export");
    let start = text.find("\"timestamp\":\"").expect("timestamp") + 13;
    let end = start + text[start..].find('"').expect("end of timestamp");
    format!("{}{}", &text[..start], &text[end..]).into_bytes()
}

fn image_blake3(snap: &Value) -> String {
    snap["files"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["kind"] == "image"))
        .and_then(|f| f["blake3"].as_str())
        .expect("image entry")
        .to_string()
}

/// Takes one snapshot of `db` in repository `kept` (through the kept copy) and
/// one in `temp` (a temporary copy, the default), and checks they hold the same image and
/// exports, and the kept copy equals the image.
fn snapshot_both(t: &TestDir, db: &Path, what: &str, rollback: bool) {
    let a = lb(t, "kept")
        .args(["snapshot", "--kept-copy"])
        .arg(db)
        .json();
    let b = lb(t, "temp").arg("snapshot").arg(db).json();
    assert_eq!(image_blake3(&a), image_blake3(&b), "{what}: images differ");
    if rollback {
        // Rollback mode, no writer: the file is the image.
        assert_eq!(image_blake3(&a), image_digest(db), "{what}: not the file");
        assert_eq!(
            blake3_file(&kept_copy(t)),
            blake3_file(db),
            "{what}: the kept copy is not the image"
        );
    }
    let (ida, idb) = (id_of(&a), id_of(&b));
    for name in [
        "metadata.json",
        "collections.json",
        "tags.json",
        "item_tags.json",
        "manifest.json",
    ] {
        let x = lb(t, "kept").args(["cat", &ida, name]).ok().stdout;
        let y = lb(t, "temp").args(["cat", &idb, name]).ok().stdout;
        if name == "manifest.json" {
            let (x, y): (Value, Value) = (
                serde_json::from_slice(&x).expect("manifest"),
                serde_json::from_slice(&y).expect("manifest"),
            );
            assert_eq!(x["tables"], y["tables"], "{what}: row counts");
            assert_eq!(x["warnings"], y["warnings"], "{what}: warnings");
            assert_eq!(x["quick_check"], "ok", "{what}: {x}");
        } else {
            assert!(x.len() > 40, "{what}: {name} is empty");
            assert!(untimed(&x) == untimed(&y), "{what}: {name} differs");
        }
    }
    assert!(
        staged(t, "lumina-backup-capture-", "").is_empty(),
        "{what}: a temporary copy stayed"
    );
}

/// Flips a byte at each of `offsets` (within the file) of `path`.
fn damage(path: &Path, offsets: &[u64]) {
    let mut bytes = std::fs::read(path).expect("read");
    for &o in offsets {
        let i = (o as usize).min(bytes.len().saturating_sub(1));
        bytes[i] ^= 0x5a;
    }
    std::fs::write(path, bytes).expect("write");
}

fn exec(db: &Path, sql: &str) {
    open(db).execute_batch(sql).expect(sql);
}

fn states(db: &Path, t: &TestDir, rollback: bool) {
    for repo in ["kept", "temp"] {
        lb(t, repo).arg("init").ok();
    }
    snapshot_both(t, db, "first snapshot", rollback);
    assert_eq!(staged(t, "lumina-backup-copy-", ".source").len(), 1);

    touch_metadata_rows(db, 30, 1);
    snapshot_both(t, db, "30 rows changed", rollback);

    // The kept copy damaged in several pages and grown with garbage.
    let copy = kept_copy(t);
    let len = std::fs::metadata(&copy).expect("copy").len();
    damage(&copy, &[0, 100, len / 3, len / 2 + 7, len - 1]);
    let mut grown = std::fs::read(&copy).expect("read");
    grown.extend_from_slice(&[0xa5; 10_000]);
    std::fs::write(&copy, grown).expect("grow");
    touch_metadata_rows(db, 5, 2);
    snapshot_both(t, db, "damaged kept copy", rollback);

    // Shrunk by VACUUM.
    exec(db, "DELETE FROM item_tags WHERE rowid % 3 = 0; VACUUM;");
    snapshot_both(t, db, "after VACUUM", rollback);

    // Grown, with the kept copy truncated to nothing.
    exec(
        db,
        "INSERT INTO tags(id, name) SELECT 'extra-' || rowid, 'extra tag ' || rowid \
         FROM metadata LIMIT 300;",
    );
    std::fs::write(&copy, b"").expect("truncate");
    snapshot_both(t, db, "grown, empty kept copy", rollback);

    // Another page size, over a copy holding another database.
    if rollback {
        exec(db, "PRAGMA page_size = 1024; VACUUM;");
        let other = t.path("other.db");
        create_lumina(&other, 20, 9);
        std::fs::copy(&other, &copy).expect("copy over");
        snapshot_both(t, db, "page size 1024 over another database", rollback);
    }
}

#[test]
fn kept_copy_snapshots_equal_temporary_copy_snapshots_rollback() {
    let t = TestDir::new("kept-rollback");
    let db = t.path("app.db");
    create_lumina(&db, 300, 4);
    exec(&db, "PRAGMA journal_mode = DELETE;");
    states(&db, &t, true);
}

#[test]
fn kept_copy_snapshots_equal_temporary_copy_snapshots_wal() {
    let t = TestDir::new("kept-wal");
    let db = t.path("app.db");
    create_lumina(&db, 300, 5);
    states(&db, &t, false);
}

/// A rollback-mode Lumina database `app.db` of `items` photos, repository
/// `kept` initialised and one snapshot through the kept copy taken: the
/// database and its kept copy.
fn snapshotted(t: &TestDir, items: u64, seed: u64) -> (PathBuf, PathBuf) {
    let db = t.path("app.db");
    create_lumina(&db, items, seed);
    exec(&db, "PRAGMA journal_mode = DELETE;");
    lb(t, "kept").arg("init").ok();
    lb(t, "kept")
        .args(["snapshot", "--kept-copy"])
        .arg(&db)
        .ok();
    let copy = kept_copy(t);
    (db, copy)
}

/// A kept copy another capture holds (locked) is not written: the snapshot
/// stages a temporary copy, removed afterwards.
#[test]
fn a_held_kept_copy_is_not_shared() {
    let t = TestDir::new("kept-held");
    let (db, copy) = snapshotted(&t, 200, 6);
    let before = blake3_file(&copy);

    // The lock is on the `.source` file beside the copy.
    let holder = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(copy.with_extension("source"))
        .expect("open");
    holder.lock().expect("lock");
    touch_metadata_rows(&db, 10, 3);
    let s = lb(&t, "kept")
        .args(["snapshot", "--kept-copy"])
        .arg(&db)
        .json();
    assert_eq!(image_blake3(&s), image_digest(&db));
    assert_eq!(blake3_file(&copy), before, "the held copy was written");
    assert!(staged(&t, "lumina-backup-capture-", "").is_empty());
    drop(holder);

    // Released: the next snapshot brings it up to date.
    touch_metadata_rows(&db, 10, 4);
    lb(&t, "kept")
        .args(["snapshot", "--kept-copy"])
        .arg(&db)
        .ok();
    assert_eq!(blake3_file(&copy), blake3_file(&db));
}

/// The kept copy of a database that no longer exists is removed by the next
/// capture (of another database); a temporary copy (the default) keeps nothing.
#[test]
fn kept_copies_of_removed_databases_are_removed() {
    let t = TestDir::new("kept-orphans");
    let (one, two) = (t.path("one.db"), t.path("two.db"));
    create_lumina(&one, 50, 7);
    create_lumina(&two, 50, 8);
    lb(&t, "kept").arg("init").ok();
    lb(&t, "kept").arg("snapshot").arg(&one).ok();
    assert!(staged(&t, "lumina-backup-", "").is_empty());
    lb(&t, "kept")
        .args(["snapshot", "--kept-copy"])
        .arg(&one)
        .ok();
    let first = kept_copy(&t);
    std::fs::remove_file(&one).expect("rm");
    lb(&t, "kept")
        .args(["snapshot", "--kept-copy"])
        .arg(&two)
        .ok();
    let second = kept_copy(&t);
    assert_ne!(first, second);
    assert!(!first.exists());
    assert_eq!(staged(&t, "lumina-backup-copy-", ".source").len(), 1);
}

/// No room for the kept copy: one line naming it, exit 1, nothing recorded,
/// and the half-written copy (and its `.source` file) removed.
#[test]
fn a_full_disk_under_the_kept_copy_fails_cleanly() {
    let t = TestDir::new("kept-full");
    let db = t.path("app.db");
    create_lumina(&db, 400, 9);
    lb(&t, "kept").arg("init").ok();
    let run = Lb::new(&t.path("kept"), t.root())
        .args(["snapshot", "--kept-copy"])
        .arg(&db);
    let (r, left) = run_with_tiny_cache(&t.path("tiny-cache"), run)
        .expect("this test mounts a 64 KiB tmpfs (it needs root, as `.ci/run` has)");
    r.expect_code(1).expect_one_stderr_line();
    assert!(
        r.stderr.contains("no space left") && r.stderr.contains("lumina-backup-copy-"),
        "{}",
        r.stderr
    );
    assert!(left.is_empty(), "{left:?}");
    let n = Lb::new(&t.path("kept"), t.root()).arg("snapshots").json();
    assert_eq!(n.as_array().map(Vec::len), Some(0));
}

/// A kept copy that cannot be used (a symbolic link planted in its place, a
/// folder) is never written through: the snapshot stages a temporary copy,
/// says so in a warning, and is exact. A cache folder others may enter gets
/// no kept copy at all (its name can be worked out).
#[test]
fn an_unusable_kept_copy_is_not_written_through() {
    let t = TestDir::new("kept-unusable");
    let (db, copy) = snapshotted(&t, 100, 10);

    // A symbolic link to another file in its place.
    let victim = t.path("victim.txt");
    std::fs::write(&victim, b"not a database").expect("victim");
    std::fs::remove_file(&copy).expect("rm");
    std::os::unix::fs::symlink(&victim, &copy).expect("symlink");
    touch_metadata_rows(&db, 5, 5);
    let s = lb(&t, "kept")
        .args(["snapshot", "--kept-copy"])
        .arg(&db)
        .json();
    assert_eq!(image_blake3(&s), image_digest(&db));
    assert_eq!(std::fs::read(&victim).expect("victim"), b"not a database");
    let warned = s["warnings"].to_string();
    assert!(warned.contains("kept copy"), "{s}");
    assert!(staged(&t, "lumina-backup-capture-", "").is_empty());

    // A folder in its place.
    std::fs::remove_file(&copy).expect("rm link");
    std::fs::create_dir(&copy).expect("mkdir");
    touch_metadata_rows(&db, 5, 6);
    let s = lb(&t, "kept")
        .args(["snapshot", "--kept-copy"])
        .arg(&db)
        .json();
    assert_eq!(image_blake3(&s), image_digest(&db));
    assert!(s["warnings"].to_string().contains("kept copy"), "{s}");
    std::fs::remove_dir(&copy).expect("rmdir");

    // A staging folder others may enter: a temporary copy, no kept one.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(staging(&t), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
    }
    touch_metadata_rows(&db, 5, 7);
    let s = lb(&t, "kept")
        .args(["snapshot", "--kept-copy"])
        .arg(&db)
        .json();
    assert_eq!(image_blake3(&s), image_digest(&db));
    assert!(staged(&t, "lumina-backup-copy-", ".db").is_empty());
    assert!(staged(&t, "lumina-backup-capture-", "").is_empty());
}
