//! Issue #10 item 8: small snapshots stay small. Many snapshots of a database
//! after one row changed: the bytes each adds stay close to its new data, and
//! `prune` consolidates the small packs they leave (fewer pack files; every
//! snapshot still restores byte-identical; `verify --read-data` clean), also
//! after a SIGKILL at each of prune's crash points.

mod common;

use std::path::Path;

use common::*;

const SIGKILL: i32 = 9;

/// Bytes under `dir` (apparent sizes), and the pack file count.
fn sizes(repo: &Path) -> (u64, u64, u64, usize) {
    let sum = |d: &Path| -> u64 {
        if !d.exists() {
            return 0;
        }
        files_under(d)
            .iter()
            .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
            .sum()
    };
    let index = std::fs::metadata(repo.join("index.redb"))
        .map(|m| m.len())
        .unwrap_or(0);
    (
        sum(&repo.join("packs")),
        index,
        sum(&repo.join("snapshots")),
        pack_files(repo).len(),
    )
}

/// A repository with `n` image-only snapshots of a small database, one row
/// changed between them; returns (dir, db, [(snapshot id, database hash)]).
fn tiny_history(name: &str, n: usize) -> (TestDir, std::path::PathBuf, Vec<(String, String)>) {
    let t = TestDir::new(name);
    t.init();
    let db = t.path("app.db");
    create_lumina(&db, 300, 7);
    checkpoint(&db);
    let mut snaps = Vec::new();
    for i in 0..n {
        if i > 0 {
            touch_metadata_rows(&db, 1, i as u64);
            checkpoint(&db);
        }
        let v = t
            .lb()
            .args(["snapshot", "--no-exports", "-q"])
            .arg(&db)
            .json();
        snaps.push((id_of(&v), blake3_file(&db)));
    }
    (t, db, snaps)
}

fn restores_all(t: &TestDir, snaps: &[(String, String)], every: usize) {
    for (k, (id, hash)) in snaps.iter().enumerate() {
        if k % every != 0 && k + 1 != snaps.len() {
            continue;
        }
        let out = t.path(&format!("restored-{k}.db"));
        let _ = std::fs::remove_file(&out);
        t.lb().args(["restore", id, "--to"]).arg(&out).ok();
        assert_eq!(
            &blake3_file(&out),
            hash,
            "snapshot {k} restores byte-identical"
        );
    }
}

#[test]
fn tiny_snapshots_add_little_and_prune_consolidates_their_packs() {
    let n = 120;
    let (t, _db, snaps) = tiny_history("tiny", n);
    let repo = t.repo();
    let (packs, index, records, count) = sizes(&repo);
    eprintln!(
        "{n} snapshots: packs {packs} B, index {index} B, records {records} B, {count} pack files"
    );
    assert!(
        count >= n / 2,
        "one pack per snapshot before prune ({count})"
    );

    // Overhead per snapshot, loosely: measured over the last 60 (the first
    // stores the whole database).
    let (t2, _db2, _) = tiny_history("tiny-first", n - 60);
    let (p0, i0, r0, _) = sizes(&t2.repo());
    drop(t2);
    let per = |a: u64, b: u64| (a.saturating_sub(b)) as f64 / 60.0;
    let (dp, di, dr) = (per(packs, p0), per(index, i0), per(records, r0));
    eprintln!("per tiny snapshot: packs {dp:.0} B, index {di:.0} B, records {dr:.0} B");
    assert!(dp < 16_000.0, "packs grow {dp} B per tiny snapshot");
    assert!(
        dp + di + dr < 40_000.0,
        "{dp} + {di} + {dr} B per tiny snapshot"
    );

    let report = t.lb().args(["prune"]).json();
    eprintln!("prune: {report}");
    let (_, _, _, after) = sizes(&repo);
    assert!(after <= 3, "prune consolidated {count} packs into {after}");
    t.lb().args(["verify", "--read-data"]).ok();
    restores_all(&t, &snaps, 7);
    // A second prune has nothing left to consolidate.
    t.lb().args(["prune"]).ok();
    assert_eq!(sizes(&repo).3, after);
}

#[test]
fn consolidation_survives_a_kill_at_every_crash_point() {
    let (t, db, snaps) = tiny_history("tiny-crash", 12);
    let base = t.path("base");
    copy_tree(&t.repo(), &base);
    for point in [
        "prune-after-new-packs",
        "prune-after-index",
        "prune-delete-pack",
        "prune-delete-pack:5",
    ] {
        let _ = std::fs::remove_dir_all(t.repo());
        copy_tree(&base, &t.repo());
        let r = t.lb().args(["prune"]).crash_at(point).run();
        assert_eq!(r.signal, Some(SIGKILL), "{point}: killed ({})", r.stderr);
        t.lb().args(["verify", "--read-data"]).ok();
        restores_all(&t, &snaps, 3);
        // The next prune finishes the job: few packs, still clean.
        t.lb().args(["prune"]).ok();
        assert!(sizes(&t.repo()).3 <= 3, "{point}: consolidated");
        t.lb().args(["verify", "--read-data"]).ok();
        restores_all(&t, &snaps, 5);
        touch_metadata_rows(&db, 1, 99);
        t.lb()
            .args(["snapshot", "--no-exports", "-q"])
            .arg(&db)
            .ok();
    }
}
