//! Invariants of the store's integrity checks and recovery paths (issue #8):
//!
//! - a new snapshot never references a chunk whose pack file is gone: it stores
//!   the chunk again and restores on its own (item 2);
//! - a damaged `index.redb` never panics a command: the index is a cache and is
//!   rebuilt from the files (item 13);
//! - `verify` checks every file of the repository (config, key files,
//!   `retention`, `status`, change summaries, snapshots, packs) and names each
//!   problem with exit 3; a damaged only key file is "damaged", not "wrong
//!   passphrase" (item 16);
//! - foreign files in the repository folder are named by `verify` and the
//!   repairs, not ignored and not fatal (item 29);
//! - after lost data, `repair snapshots` removes (or trims) the snapshots that
//!   cannot be restored, and `prune` works again (item 17);
//! - chunk counts mean one thing everywhere: "chunks referenced" by snapshots and
//!   "chunks stored" in packs; `status` reports no 0.0x ratio after an
//!   interrupted snapshot (item 23).

mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

fn write_keeping_mode(path: &Path, bytes: &[u8]) {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).expect("meta").permissions().mode();
    std::fs::write(path, bytes).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod back");
}

fn flip_byte(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).expect("read");
    let at = at.min(bytes.len() - 1);
    bytes[at] ^= 0x5a;
    write_keeping_mode(path, &bytes);
}

fn truncate(path: &Path, len: usize) {
    let bytes = std::fs::read(path).expect("read");
    write_keeping_mode(path, &bytes[..len.min(bytes.len())]);
}

/// A small database of random blobs (so its pages do not compress away).
fn blob_db(path: &Path, rows: u32) {
    let c = open(path);
    c.execute_batch(&format!(
        "CREATE TABLE blobs(id INTEGER PRIMARY KEY, data BLOB);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
         INSERT INTO blobs SELECT i, randomblob(700) FROM n;"
    ))
    .expect("data");
}

fn problems(v: &Value) -> Vec<String> {
    v["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .map(|p| p.as_str().expect("string").to_string())
        .collect()
}

fn verify_json(t: &TestDir, extra: &[&str]) -> (Option<i32>, Value) {
    let r = t.lb().args(["verify", "--json"]).args(extra).run();
    (r.code, r.json())
}

fn restore_matches(t: &TestDir, id: &str, want: &Dump, name: &str) {
    let to = t.path(name);
    t.lb().args(["restore", id, "--to"]).arg(&to).ok();
    assert_eq!(&dump(&to), want, "snapshot {id} restores its content");
}

/// Issue #8 item 2: after a pack file is lost, a snapshot of the same content
/// stores the lost chunks again (it does not dedup against the missing pack, nor
/// trust the parent's leaves) and restores on its own; verify blames only the
/// old snapshots.
#[test]
fn snapshot_after_a_lost_pack_stores_the_chunks_again() {
    let t = TestDir::new("lost-pack-resnap");
    t.init();
    let db = t.path("data.db");
    blob_db(&db, 400);
    let want = dump(&db);
    let first = id_of(&t.lb().args(["snapshot"]).arg(&db).json());
    let second = id_of(&t.lb().args(["snapshot"]).arg(&db).json());
    for p in pack_files(&t.repo()) {
        std::fs::remove_file(p).expect("losing a pack");
    }
    let third = t.lb().args(["snapshot"]).arg(&db).json();
    assert!(
        third["new_bytes"].as_u64().expect("new_bytes") > 100_000,
        "the lost chunks are stored again: {third}"
    );
    let third = id_of(&third);
    restore_matches(&t, &third, &want, "third.db");
    // The next one (parent = the good snapshot) dedups against the new copies.
    let fourth = t.lb().args(["snapshot"]).arg(&db).json();
    assert!(
        fourth["new_bytes"].as_u64().expect("new_bytes") < 20_000,
        "{fourth}"
    );
    restore_matches(&t, &id_of(&fourth), &want, "fourth.db");

    let (code, v) = verify_json(&t, &[]);
    assert_eq!(code, Some(3), "{v}");
    let ps = problems(&v);
    let short = |id: &str| id[..12].to_string();
    assert!(ps.iter().any(|p| p.contains(&short(&first))), "{ps:?}");
    assert!(ps.iter().any(|p| p.contains(&short(&second))), "{ps:?}");
    assert!(
        !ps.iter()
            .any(|p| p.contains(&short(&third)) || p.contains(&short(&id_of(&fourth)))),
        "the new snapshots are intact: {ps:?}"
    );
}

/// Issue #8 item 2: a pack that shrank (truncated) is not trusted for dedup either.
#[test]
fn snapshot_after_a_truncated_pack_stores_the_chunks_again() {
    let t = TestDir::new("truncated-pack-resnap");
    t.init();
    let db = t.path("data.db");
    blob_db(&db, 300);
    let want = dump(&db);
    t.lb().args(["snapshot"]).arg(&db).ok();
    for p in pack_files(&t.repo()) {
        truncate(&p, 1000);
    }
    let s = t.lb().args(["snapshot"]).arg(&db).json();
    restore_matches(&t, &id_of(&s), &want, "after.db");
}

fn repo_with_two(t: &TestDir) -> (PathBuf, Vec<String>) {
    t.init();
    let db = t.path("data.db");
    blob_db(&db, 200);
    let a = id_of(&t.lb().args(["snapshot"]).arg(&db).json());
    open(&db)
        .execute(
            "UPDATE blobs SET data = randomblob(700) WHERE id % 7 = 0",
            [],
        )
        .expect("change");
    let b = id_of(&t.lb().args(["snapshot"]).arg(&db).json());
    (db, vec![a, b])
}

/// Issue #8 item 13: a truncated, emptied, garbage or byte-flipped index never
/// panics a command (exit 101); the index is rebuilt from the files, saying so.
#[test]
fn damaged_index_is_rebuilt_never_a_panic() {
    let t = TestDir::new("index-damage");
    let (db, ids) = repo_with_two(&t);
    let index = t.repo().join("index.redb");
    let good = std::fs::read(&index).expect("index");
    let len = good.len();
    let mut rng = lumina_backup::SampleRng::new(5);
    let mut cases: Vec<(String, Vec<u8>)> = vec![
        ("empty".into(), Vec::new()),
        (
            "garbage".into(),
            (0..len).map(|_| rng.next_u64() as u8).collect(),
        ),
    ];
    for cut in [1, 100, 512, 4096, len / 2, len - 1] {
        cases.push((format!("truncated to {cut}"), good[..cut.min(len)].to_vec()));
    }
    for at in [0, 9, 40, 300, 1000, 4100, len / 2, len - 3] {
        let mut b = good.clone();
        b[at.min(len - 1)] ^= 0xff;
        cases.push((format!("byte {at} flipped"), b));
    }
    for (what, bytes) in cases {
        write_keeping_mode(&index, &bytes);
        let r = t.lb().args(["snapshots", "--json"]).run();
        assert_ne!(r.code, Some(101), "{what}: panicked: {}", r.stderr);
        assert!(!r.stderr.contains("panicked"), "{what}: {}", r.stderr);
        if r.code == Some(0) {
            let got: Vec<String> = r
                .json()
                .as_array()
                .expect("list")
                .iter()
                .map(id_of)
                .collect();
            assert_eq!(got, ids, "{what}: every snapshot is listed");
        } else {
            r.expect_one_stderr_line();
            assert!(r.stderr.contains("repair index"), "{what}: {}", r.stderr);
            t.lb().args(["repair", "index"]).ok();
        }
        let v = t.lb().args(["verify"]).run();
        assert_eq!(
            v.code,
            Some(0),
            "{what}: verify after: {}{}",
            v.out(),
            v.stderr
        );
        write_keeping_mode(&index, &good);
    }
    // A truncated index is rebuilt automatically, with one line saying so.
    write_keeping_mode(&index, &good[..4096]);
    let r = t.lb().args(["snapshot"]).arg(&db).run();
    r.expect_code(0);
    assert!(
        r.stderr.contains("rebuil"),
        "says the index was rebuilt: {}",
        r.stderr
    );
    t.lb().args(["verify", "--read-data"]).ok();
}

const PW: &str = "correct horse";

fn enc(t: &TestDir) -> Lb {
    t.lb().env("LUMINA_BACKUP_PASSWORD", PW)
}

fn key_files(repo: &Path) -> Vec<PathBuf> {
    files_under(&repo.join("keys"))
}

/// Issue #8 item 16: the only key file truncated is "key file damaged", never
/// "wrong passphrase"; verify names it (exit 3).
#[test]
fn truncated_only_key_file_is_damaged_not_wrong_passphrase() {
    let t = TestDir::new("key-truncated");
    enc(&t).args(["init", "--encrypt"]).ok();
    let keys = key_files(&t.repo());
    assert_eq!(keys.len(), 1);
    truncate(&keys[0], 40);
    let r = enc(&t).args(["snapshots"]).run();
    assert_ne!(r.code, Some(0));
    r.expect_one_stderr_line();
    assert!(!r.stderr.contains("wrong passphrase"), "{}", r.stderr);
    assert!(
        r.stderr.contains("damaged") && r.stderr.contains("key"),
        "{}",
        r.stderr
    );
    let r = enc(&t).args(["verify", "--json"]).run();
    assert_eq!(r.code, Some(3), "{}{}", r.out(), r.stderr);
    let ps = problems(&r.json());
    let name = keys[0]
        .file_name()
        .expect("n")
        .to_string_lossy()
        .into_owned();
    assert!(ps.iter().any(|p| p.contains(&name)), "{ps:?}");
}

/// Issue #8 item 16: a damaged second key file makes `key list` fail; verify
/// must then name it (it used to say ok).
#[test]
fn damaged_extra_key_file_is_named_by_verify() {
    let t = TestDir::new("key-extra");
    enc(&t).args(["init", "--encrypt"]).ok();
    enc(&t)
        .args(["key", "add"])
        .env("LUMINA_BACKUP_NEW_PASSWORD", "second one")
        .ok();
    let keys = key_files(&t.repo());
    assert_eq!(keys.len(), 2);
    // Damage the key that is not used by PW: try each.
    let mut damaged = None;
    for k in &keys {
        let saved = std::fs::read(k).expect("key");
        truncate(k, 30);
        if enc(&t).args(["snapshots"]).run().code == Some(0) {
            damaged = Some(k.clone());
            break;
        }
        write_keeping_mode(k, &saved);
    }
    let damaged = damaged.expect("one key is not the one in use");
    let r = enc(&t).args(["verify", "--json"]).run();
    assert_eq!(r.code, Some(3), "{}{}", r.out(), r.stderr);
    let name = damaged
        .file_name()
        .expect("n")
        .to_string_lossy()
        .into_owned();
    assert!(problems(&r.json()).iter().any(|p| p.contains(&name)));
}

/// Issue #8 item 16: a flipped byte in `retention` or `status` is named by verify.
#[test]
fn damaged_retention_and_status_are_named_by_verify() {
    let t = TestDir::new("small-files");
    let (db, _) = repo_with_two(&t);
    t.lb().args(["config", "set", "keep-daily", "7"]).ok();
    // A failed snapshot writes `status`.
    t.lb().args(["snapshot"]).arg(t.path("missing.db")).run();
    let _ = db;
    let status = t.repo().join("status");
    let retention = t.repo().join("retention");
    assert!(status.exists() && retention.exists());
    t.lb().args(["verify"]).ok();
    flip_byte(&retention, 20);
    let r = t.lb().args(["forget", "--dry-run"]).run();
    assert_ne!(r.code, Some(0), "forget sees the damage");
    let (code, v) = verify_json(&t, &[]);
    assert_eq!(code, Some(3), "{v}");
    assert!(problems(&v).iter().any(|p| p.contains("retention")), "{v}");
    flip_byte(&retention, 20);
    flip_byte(&status, 20);
    let (code, v) = verify_json(&t, &[]);
    assert_eq!(code, Some(3), "{v}");
    assert!(problems(&v).iter().any(|p| p.contains("status")), "{v}");
}

/// Issue #8 item 16: a damaged config is reported by verify with exit 3 (not
/// exit 1 sending the user to verify).
#[test]
fn damaged_config_is_named_by_verify_with_exit_3() {
    let t = TestDir::new("config-damaged");
    repo_with_two(&t);
    flip_byte(&t.repo().join("config"), 30);
    let r = t.lb().args(["snapshots"]).run();
    assert_ne!(r.code, Some(0));
    let r = t.lb().args(["verify", "--json"]).run();
    assert_eq!(r.code, Some(3), "{}{}", r.out(), r.stderr);
    assert!(problems(&r.json()).iter().any(|p| p.contains("config")));
    let r = t.lb().args(["verify"]).run();
    assert_eq!(r.code, Some(3));
    assert!(r.out().contains("config"), "{}", r.out());
}

/// Issue #8 item 29: foreign files and folders in the repository folder are named
/// by verify (exit 3) and by the repairs, which still succeed.
#[test]
fn foreign_files_are_named_by_verify_and_repairs() {
    let t = TestDir::new("foreign");
    let (_db, ids) = repo_with_two(&t);
    let repo = t.repo();
    std::fs::write(repo.join("notes.txt"), "mine").expect("w");
    std::fs::create_dir(repo.join("old-backups")).expect("mkdir");
    std::fs::write(repo.join("snapshots").join("copy.db"), "x").expect("w");
    let pack_dir = pack_files(&repo)[0].parent().expect("dir").to_path_buf();
    std::fs::write(pack_dir.join("stray"), "x").expect("w");
    let (code, v) = verify_json(&t, &[]);
    assert_eq!(code, Some(3), "{v}");
    let ps = problems(&v);
    for name in ["notes.txt", "old-backups", "copy.db", "stray"] {
        assert!(
            ps.iter().any(|p| p.contains(name) && p.contains("foreign")),
            "{name}: {ps:?}"
        );
    }
    let r = t.lb().args(["repair", "index"]).ok();
    assert!(r.out().contains("notes.txt"), "{}", r.out());
    let r = t.lb().args(["repair", "snapshots"]).ok();
    assert!(r.out().contains("stray"), "{}", r.out());
    assert_eq!(list_ids(&t), ids, "nothing was removed");
}

/// Issue #8 item 17: after a lost pack, `repair index` then `prune` refused
/// forever. `repair snapshots --dry-run` lists the snapshots that cannot be
/// restored and changes nothing; `repair snapshots` removes them; then verify
/// is clean, prune works, and the remaining snapshot restores.
#[test]
fn repair_snapshots_removes_unrestorable_ones_and_prune_works_again() {
    let t = TestDir::new("repair-snapshots");
    t.init();
    let (a, b) = (t.path("a.db"), t.path("b.db"));
    blob_db(&a, 200);
    // Another page size: no page of b equals a page of a, so b needs none of a's packs.
    open(&b)
        .execute_batch("PRAGMA page_size = 8192; VACUUM;")
        .expect("page size");
    blob_db(&b, 200);
    let sa = id_of(&t.lb().args(["snapshot"]).arg(&a).json());
    let packs_a = pack_files(&t.repo());
    let sb = id_of(&t.lb().args(["snapshot"]).arg(&b).json());
    let want_b = dump(&b);
    for p in &packs_a {
        std::fs::remove_file(p).expect("losing a's packs");
    }
    t.lb().args(["repair", "index"]).ok();
    let r = t.lb().args(["prune"]).run();
    assert_ne!(r.code, Some(0), "prune refuses on missing data");
    assert!(
        r.stderr.contains("repair snapshots"),
        "points the way out: {}",
        r.stderr
    );

    let dry = t.lb().args(["repair", "snapshots", "--dry-run"]).json();
    assert_eq!(dry["dry_run"], true);
    let removed: Vec<String> = dry["removed"]
        .as_array()
        .expect("removed")
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(removed, vec![sa.clone()], "{dry}");
    assert_eq!(list_ids(&t).len(), 2, "a dry run changes nothing");
    let r = t.lb().args(["repair", "snapshots"]).ok();
    assert!(
        r.out().contains(&sa[..12]),
        "each removal is printed: {}",
        r.out()
    );
    assert_eq!(list_ids(&t), vec![sb.clone()]);
    t.lb().args(["verify"]).ok();
    t.lb().args(["prune"]).ok();
    t.lb().args(["verify", "--read-data"]).ok();
    restore_matches(&t, &sb, &want_b, "b-restored.db");
}

/// Issue #8 item 17: a snapshot whose image is intact but whose other files are
/// lost keeps its image: `repair snapshots` rewrites it without the lost files.
#[test]
fn repair_snapshots_keeps_an_intact_image() {
    let t = TestDir::new("repair-partial");
    t.init();
    let db = t.path("lumina.db");
    create_lumina(&db, 300, 3);
    checkpoint(&db);
    let want = dump(&db);
    t.lb().args(["snapshot", "--no-exports"]).arg(&db).ok();
    let packs_before = pack_files(&t.repo());
    // Same image: its chunks and tree dedup; only exports and manifest are new.
    let full = id_of(&t.lb().args(["snapshot"]).arg(&db).json());
    for p in pack_files(&t.repo()) {
        if !packs_before.contains(&p) {
            std::fs::remove_file(p).expect("losing the exports' pack");
        }
    }
    let (code, _) = verify_json(&t, &[]);
    assert_eq!(code, Some(3));
    let r = t.lb().args(["repair", "snapshots"]).json();
    let trimmed = r["trimmed"].as_array().expect("trimmed");
    assert_eq!(trimmed.len(), 1, "{r}");
    assert_eq!(trimmed[0]["old_id"].as_str(), Some(full.as_str()), "{r}");
    let new_id = trimmed[0]["new_id"].as_str().expect("new id").to_string();
    assert!(r["removed"].as_array().expect("removed").is_empty(), "{r}");
    t.lb().args(["verify"]).ok();
    t.lb().args(["prune"]).ok();
    restore_matches(&t, &new_id, &want, "kept-image.db");
}

/// Issue #8 item 23: after an interrupted first snapshot, `status` does not show
/// a 0.0x deduplication; verify, prune, repair index and status count the same
/// things under the same names.
#[test]
fn chunk_counts_agree_and_status_after_interrupted_snapshot() {
    let t = TestDir::new("counts");
    t.init();
    let db = t.path("data.db");
    blob_db(&db, 300);
    let r = t
        .lb()
        .args(["snapshot"])
        .arg(&db)
        .crash_at("after-pack")
        .run();
    assert!(r.signal.is_some(), "killed at the crash point");
    let st = t.lb().args(["status"]).ok();
    assert!(!st.out().contains("0.0x"), "{}", st.out());
    let st = t.lb().args(["status"]).json();
    assert!(
        st["unreferenced_bytes"].as_u64().expect("unreferenced") > 0,
        "{st}"
    );
    assert!(st["dedup_ratio"].is_null(), "no snapshot, no ratio: {st}");

    t.lb().args(["snapshot"]).arg(&db).ok();
    touch(&db);
    t.lb().args(["snapshot"]).arg(&db).ok();
    let st = t.lb().args(["status"]).json();
    let v = t.lb().args(["verify"]).json();
    let p = t.lb().args(["prune", "--dry-run"]).json();
    let ri = t.lb().args(["repair", "index"]).json();
    let st2 = t.lb().args(["status"]).json();
    let referenced = st["chunks_referenced"].as_u64().expect("status referenced");
    let stored = st["chunks_stored"].as_u64().expect("status stored");
    assert!(referenced > 0 && stored >= referenced, "{st}");
    assert_eq!(
        v["chunks_referenced"].as_u64(),
        Some(referenced),
        "verify: {v}"
    );
    assert_eq!(v["chunks_stored"].as_u64(), Some(stored), "verify: {v}");
    assert_eq!(
        p["chunks_referenced"].as_u64(),
        Some(referenced),
        "prune: {p}"
    );
    assert_eq!(p["chunks_stored"].as_u64(), Some(stored), "prune: {p}");
    assert_eq!(
        ri["chunks_stored"].as_u64(),
        Some(stored),
        "repair index: {ri}"
    );
    assert_eq!(st2["chunks_stored"].as_u64(), Some(stored), "{st2}");
    assert!(st["dedup_ratio"].as_f64().expect("ratio") > 1.0, "{st}");
    let human = t.lb().args(["status"]).ok().out();
    assert!(
        human.contains("chunks referenced") && human.contains("chunks stored"),
        "{human}"
    );
    let human = t.lb().args(["verify"]).ok().out();
    assert!(human.contains("chunks referenced"), "{human}");
}

fn touch(db: &Path) {
    open(db)
        .execute(
            "UPDATE blobs SET data = randomblob(700) WHERE id % 11 = 0",
            [],
        )
        .expect("change");
}
