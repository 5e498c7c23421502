//! Invariant (issue #5): `forget` removes exactly the snapshots its rules do not
//! keep, `prune` reclaims the space only those used, and neither ever endangers a
//! kept snapshot: each restores to exactly what was captured, after a normal run
//! and after a SIGKILL of `prune` at any moment (chosen crash points and random
//! delays), with `verify --read-data` clean. `--dry-run` changes nothing; prune
//! and snapshot never run at once (the second fails naming the holder, or waits).
//!
//! Policy semantics over snapshot times (buckets, gaps, year boundaries) are
//! unit-tested in `src/retention.rs`: the CLI cannot fake the clock, so these
//! tests use `--keep-last` and `--keep-tag`. Random delays print their seed (set
//! `LUMINA_TEST_SEED` to replay one).

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use rand::{Rng, SeedableRng};
use serde_json::Value;

const SIGKILL: i32 = 9;

/// Total bytes of the repository's pack files.
fn pack_bytes(repo: &Path) -> u64 {
    pack_files(repo)
        .iter()
        .map(|p| std::fs::metadata(p).expect("pack size").len())
        .sum()
}

/// A repository with `n` snapshots of one Lumina database, rows changed between
/// them, and the content each snapshot captured.
struct History {
    t: TestDir,
    db: PathBuf,
    /// (id, content at snapshot time), oldest first.
    snaps: Vec<(String, Dump)>,
}

impl History {
    fn new(name: &str, items: u64, n: usize, touched: u64, tag_at: &[usize]) -> History {
        let t = TestDir::new(name);
        t.init();
        let db = t.path("lumina.db");
        create_lumina(&db, items, 11);
        let mut snaps = Vec::new();
        for i in 0..n {
            if i > 0 {
                touch_metadata_rows(&db, touched, 100 + i as u64);
            }
            let mut lb = t.lb().arg("snapshot").arg(&db);
            if tag_at.contains(&i) {
                lb = lb.args(["--tag", "keep"]);
            }
            let id = id_of(&lb.json());
            snaps.push((id, dump_via_copy(&db)));
        }
        History { t, db, snaps }
    }

    fn lb(&self, repo: &Path) -> Lb {
        Lb::new(repo, self.t.root())
    }

    /// Two snapshots of another database, then forgotten (not pruned): their
    /// packs hold nothing any remaining snapshot references.
    fn add_forgotten_db(&self, items: u64) {
        let other = self.t.path("other.db");
        create_lumina(&other, items, 77);
        self.t.lb().arg("snapshot").arg(&other).ok();
        touch_metadata_rows(&other, items / 4, 78);
        self.t.lb().arg("snapshot").arg(&other).ok();
        let out = self
            .t
            .lb()
            .args([
                "forget",
                "--keep-tag",
                "no-such-tag",
                "--allow-empty",
                "--db",
            ])
            .arg(&other)
            .json();
        assert_eq!(
            out["removed"].as_array().expect("removed").len(),
            2,
            "{out}"
        );
        assert!(out["kept"].as_array().expect("kept").is_empty(), "{out}");
    }

    fn ids(&self, pick: &[usize]) -> Vec<String> {
        pick.iter().map(|i| self.snaps[*i].0.clone()).collect()
    }

    /// Every listed snapshot is present and restores to its captured content;
    /// no other snapshot exists.
    fn assert_exactly_restorable(&self, repo: &Path, keep: &[usize], what: &str) {
        let mut want = self.ids(keep);
        want.sort();
        let list = self.lb(repo).args(["snapshots"]).json();
        let mut have: Vec<String> = list.as_array().expect("array").iter().map(id_of).collect();
        have.sort();
        assert_eq!(have, want, "{what}: the remaining snapshots");
        for i in keep {
            let (id, expected) = &self.snaps[*i];
            let out = self.t.path(&format!("restored-{i}.db"));
            let _ = std::fs::remove_file(&out);
            self.lb(repo).args(["restore", id, "--to"]).arg(&out).ok();
            assert!(
                integrity_ok(&out),
                "{what}: snapshot {i} fails integrity_check"
            );
            assert_eq!(
                &dump(&out),
                expected,
                "{what}: snapshot {i} restores differently"
            );
        }
    }

    fn assert_verify_clean(&self, repo: &Path, what: &str) {
        let v = self
            .lb(repo)
            .args(["verify", "--read-data", "--json"])
            .run();
        assert_eq!(
            v.code,
            Some(0),
            "{what}: verify --read-data is not clean:\n{}{}",
            v.out(),
            v.stderr
        );
    }
}

fn ids_of(v: &Value, key: &str) -> Vec<String> {
    let mut ids: Vec<String> = v[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} is an array: {v}"))
        .iter()
        .map(id_of)
        .collect();
    ids.sort();
    ids
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn forget_keep_last_and_tag_then_prune_keeps_exactly_those_and_shrinks() {
    let h = History::new("forget-prune", 3000, 7, 300, &[1]);
    let repo = h.t.repo();
    h.add_forgotten_db(500);
    let before = pack_bytes(&repo);
    let out =
        h.t.lb()
            .args([
                "forget",
                "--keep-last",
                "2",
                "--keep-tag",
                "keep",
                "--prune",
            ])
            .json();
    assert_eq!(ids_of(&out, "kept"), sorted(h.ids(&[1, 5, 6])));
    assert_eq!(ids_of(&out, "removed"), sorted(h.ids(&[0, 2, 3, 4])));
    for k in out["kept"].as_array().expect("kept") {
        let reasons: Vec<&str> = k["reasons"]
            .as_array()
            .expect("reasons")
            .iter()
            .map(|r| r.as_str().expect("reason"))
            .collect();
        let want = if k["id"] == h.snaps[1].0.as_str() {
            vec!["tag keep"]
        } else {
            vec!["last"]
        };
        assert_eq!(reasons, want, "{k}");
        assert_eq!(
            k["db"],
            h.db.canonicalize().expect("db").to_string_lossy().as_ref()
        );
        assert!(k["time"].as_str().expect("time").ends_with('Z'));
    }
    let pruned = &out["pruned"];
    assert!(
        pruned.is_object(),
        "forget --prune reports the prune: {out}"
    );
    assert!(
        pruned["packs_deleted"].as_u64().expect("deleted") >= 1,
        "{pruned}"
    );
    assert!(
        pruned["bytes_freed"].as_u64().expect("freed") > 0,
        "{pruned}"
    );
    let after = pack_bytes(&repo);
    assert!(after < before, "packs shrank: {before} -> {after}");
    assert_eq!(pruned["bytes_after"].as_u64(), Some(after), "{pruned}");
    assert_eq!(pruned["bytes_before"].as_u64(), Some(before), "{pruned}");
    h.assert_verify_clean(&repo, "after forget --prune");
    h.assert_exactly_restorable(&repo, &[1, 5, 6], "after forget --prune");

    // A second prune finds nothing to do.
    let again = h.t.lb().args(["prune"]).json();
    assert_eq!(again["packs_deleted"], 0, "{again}");
    assert_eq!(again["packs_repacked"], 0, "{again}");
    assert_eq!(pack_bytes(&repo), after);

    // Down to one snapshot: everything else goes, the last one still restores.
    let out =
        h.t.lb()
            .args(["forget", "--keep-last", "1", "--prune"])
            .json();
    assert_eq!(ids_of(&out, "kept"), h.ids(&[6]));
    h.assert_verify_clean(&repo, "after keep-last 1");
    h.assert_exactly_restorable(&repo, &[6], "after keep-last 1");
    assert!(pack_bytes(&repo) < after);
}

#[test]
fn repack_with_max_unused_zero_leaves_no_dead_bytes_behind() {
    let h = History::new("repack", 3000, 5, 400, &[]);
    let repo = h.t.repo();
    h.t.lb().args(["forget", "--keep-last", "2"]).ok();
    let r = h.t.lb().args(["prune", "--max-unused", "0"]).json();
    assert!(r["packs_repacked"].as_u64().expect("n") >= 1, "{r}");
    assert!(r["packs_written"].as_u64().expect("n") >= 1, "{r}");
    assert!(r["bytes_rewritten"].as_u64().expect("n") > 0, "{r}");
    h.assert_verify_clean(&repo, "after repack");
    h.assert_exactly_restorable(&repo, &[3, 4], "after repack");
    let again = h.t.lb().args(["prune", "--max-unused", "0"]).json();
    assert_eq!(
        again["packs_repacked"], 0,
        "repacked packs hold only live data: {again}"
    );
    assert_eq!(again["packs_deleted"], 0, "{again}");
    // Bad thresholds are bad usage.
    let bad = h.t.lb().args(["prune", "--max-unused", "150"]).run();
    bad.expect_code(2).expect_one_stderr_line();
}

/// Every file of the repository except the lock and the index (which opening
/// may touch), with its content hash.
fn repo_state(repo: &Path) -> Vec<(PathBuf, String)> {
    files_under(repo)
        .into_iter()
        .filter(|p| {
            let n = p.file_name().expect("name").to_string_lossy();
            n != "lock" && n != "index.redb"
        })
        .map(|p| {
            let h = blake3_file(&p);
            (p, h)
        })
        .collect()
}

#[test]
fn dry_runs_change_nothing_and_print_the_plan() {
    let h = History::new("dry-run", 2000, 4, 200, &[0]);
    let repo = h.t.repo();
    let state = repo_state(&repo);
    let list = list_ids(&h.t);

    let plan =
        h.t.lb()
            .args([
                "forget",
                "--keep-last",
                "1",
                "--keep-tag",
                "keep",
                "--dry-run",
            ])
            .json();
    assert_eq!(plan["dry_run"], true);
    assert_eq!(ids_of(&plan, "kept"), sorted(h.ids(&[0, 3])));
    assert_eq!(ids_of(&plan, "removed"), sorted(h.ids(&[1, 2])));
    assert!(plan["pruned"].is_null());
    let human =
        h.t.lb()
            .args([
                "forget",
                "--keep-last",
                "1",
                "--keep-tag",
                "keep",
                "--dry-run",
                "--prune",
            ])
            .ok()
            .out();
    assert!(
        human.contains("(tag keep)") && human.contains("(last)"),
        "{human}"
    );
    assert!(human.contains("would remove 2"), "{human}");
    assert_eq!(repo_state(&repo), state, "forget --dry-run changed files");
    assert_eq!(list_ids(&h.t), list);

    h.t.lb().args(["forget", "--keep-last", "1"]).ok();
    let state = repo_state(&repo);
    let dry = h.t.lb().args(["prune", "--dry-run"]).json();
    assert_eq!(dry["dry_run"], true);
    assert!(!dry["packs"].as_array().expect("packs").is_empty(), "{dry}");
    assert!(dry["bytes_freed"].as_u64().expect("freed") > 0, "{dry}");
    let human = h.t.lb().args(["prune", "--dry-run"]).ok().out();
    assert!(human.contains("would free"), "{human}");
    assert_eq!(repo_state(&repo), state, "prune --dry-run changed files");
    // The estimate matches what the real run then frees.
    let real = h.t.lb().args(["prune"]).json();
    assert_eq!(real["packs_deleted"], dry["packs_deleted"]);
    assert_eq!(real["packs_repacked"], dry["packs_repacked"]);
    h.assert_exactly_restorable(&repo, &[3], "after the real prune");
}

#[test]
fn forget_without_rules_is_refused_and_stored_rules_apply() {
    let h = History::new("config", 500, 4, 20, &[]);
    let repo = h.t.repo();
    let r = h.t.lb().args(["forget"]).run();
    r.expect_code(2).expect_one_stderr_line();
    assert!(r.stderr.contains("no retention rule given"), "{}", r.stderr);
    let r = h.t.lb().args(["forget", "--keep-last", "0"]).run();
    r.expect_code(2);
    assert_eq!(list_ids(&h.t).len(), 4, "nothing was removed");

    h.t.lb().args(["config", "set", "keep-last", "2"]).ok();
    h.t.lb().args(["config", "set", "keep-within", "2w"]).ok();
    let got = h.t.lb().args(["config", "get", "keep-last"]).ok().out();
    assert_eq!(got.trim(), "2");
    let within =
        h.t.lb()
            .args(["config", "get", "keep-within", "--json"])
            .ok()
            .json();
    assert_eq!(within["value"], "14d");
    h.t.lb().args(["config", "set", "keep-within", "none"]).ok();
    let show = h.t.lb().args(["config", "show"]).json();
    assert_eq!(show["retention"]["keep-last"], "2");
    assert!(show["retention"]["keep-within"].is_null());
    assert_eq!(show["repository"]["encrypted"], false);
    for bad in [
        vec!["config", "set", "keep-daily", "seven"],
        vec!["config", "set", "keep-fortnightly", "1"],
        vec!["config", "set", "zstd-level", "9"],
        vec!["config", "get", "nope"],
    ] {
        h.t.lb()
            .args(&bad)
            .run()
            .expect_code(2)
            .expect_one_stderr_line();
    }
    assert!(repo.join("retention").is_file());

    let out = h.t.lb().args(["forget", "--prune"]).json();
    assert_eq!(ids_of(&out, "kept"), sorted(h.ids(&[2, 3])));
    h.assert_exactly_restorable(&repo, &[2, 3], "stored keep-last 2");
    // Rules on the command line replace the stored ones.
    h.t.lb().args(["forget", "--keep-last", "1"]).ok();
    h.assert_exactly_restorable(&repo, &[3], "command-line keep-last 1");
}

#[test]
fn retention_settings_are_sealed_in_an_encrypted_repository() {
    let t = TestDir::new("sealed-retention");
    let pw = t.path("pw");
    std::fs::write(&pw, "correct horse").expect("pw");
    let lb = || t.lb().arg("--password-file").arg(&pw);
    lb().args(["init", "--encrypt"]).ok();
    lb().args(["config", "set", "keep-tag", "precious-tag-name"])
        .ok();
    let bytes = std::fs::read(t.repo().join("retention")).expect("retention file");
    assert!(
        !bytes.windows(8).any(|w| w == b"precious") && !bytes.windows(4).any(|w| w == b"keep"),
        "the retention file leaks plaintext"
    );
    let got = lb().args(["config", "get", "keep-tag"]).ok().out();
    assert_eq!(got.trim(), "precious-tag-name");
}

#[test]
fn rules_apply_per_database_and_db_restricts_forget() {
    let t = TestDir::new("per-db");
    t.init();
    let (a, b) = (t.path("a.db"), t.path("b.db"));
    create_lumina(&a, 300, 1);
    create_lumina(&b, 300, 2);
    let mut ids = Vec::new();
    for i in 0..3 {
        touch_metadata_rows(&a, 5, i);
        touch_metadata_rows(&b, 5, 50 + i);
        ids.push(id_of(&t.lb().arg("snapshot").arg(&a).json()));
        ids.push(id_of(&t.lb().arg("snapshot").arg(&b).json()));
    }
    // --db: only a's snapshots are considered.
    let out = t
        .lb()
        .args(["forget", "--keep-last", "1", "--db"])
        .arg(&a)
        .json();
    assert_eq!(ids_of(&out, "kept"), vec![ids[4].clone()]);
    assert_eq!(
        ids_of(&out, "removed"),
        sorted(vec![ids[0].clone(), ids[2].clone()])
    );
    assert_eq!(list_ids(&t).len(), 4);
    // Without --db: the newest of each database.
    let out = t
        .lb()
        .args(["forget", "--keep-last", "1", "--prune"])
        .json();
    assert_eq!(
        ids_of(&out, "kept"),
        sorted(vec![ids[4].clone(), ids[5].clone()])
    );
    t.lb().args(["verify", "--read-data"]).ok();
    for (id, db) in [(&ids[4], &a), (&ids[5], &b)] {
        let out = t.path("r.db");
        let _ = std::fs::remove_file(&out);
        t.lb().args(["restore", id, "--to"]).arg(&out).ok();
        assert_eq!(dump(&out), dump_via_copy(db));
    }
}

#[test]
fn pre_restore_snapshots_survive_keep_last() {
    let t = TestDir::new("pre-restore");
    t.init();
    let db = t.path("lumina.db");
    create_lumina(&db, 300, 3);
    let first = id_of(&t.lb().arg("snapshot").arg(&db).json());
    touch_metadata_rows(&db, 10, 1);
    t.lb().arg("snapshot").arg(&db).ok();
    // Restoring over the live file saves its state as a `pre-restore` snapshot.
    t.lb()
        .args(["restore", &first, "--force", "--to"])
        .arg(&db)
        .ok();
    let list = t.lb().args(["snapshots", "--tag", "pre-restore"]).json();
    let pre = id_of(&list[0]);
    touch_metadata_rows(&db, 10, 2);
    let last = id_of(&t.lb().arg("snapshot").arg(&db).json());
    let out = t.lb().args(["forget", "--keep-last", "1"]).json();
    assert_eq!(
        ids_of(&out, "kept"),
        sorted(vec![pre.clone(), last.clone()])
    );
    let kept_pre = out["kept"]
        .as_array()
        .expect("kept")
        .iter()
        .find(|k| k["id"] == pre.as_str())
        .expect("pre-restore kept");
    assert_eq!(kept_pre["reasons"][0], "pre-restore younger than 7d");
    // The grace can be switched off explicitly.
    let out = t
        .lb()
        .args(["forget", "--keep-last", "1", "--keep-pre-restore", "0h"])
        .json();
    assert_eq!(ids_of(&out, "kept"), vec![last]);
}

/// A repository after `forget` (no prune yet), copied fresh for each kill.
struct CrashWorld {
    h: History,
    base: PathBuf,
    keep: Vec<usize>,
}

impl CrashWorld {
    fn new(name: &str, items: u64) -> CrashWorld {
        let h = History::new(name, items, 6, items / 8, &[2]);
        h.add_forgotten_db(items / 4);
        h.t.lb()
            .args(["forget", "--keep-last", "2", "--keep-tag", "keep"])
            .ok();
        let base = h.t.repo();
        CrashWorld {
            h,
            base,
            keep: vec![2, 4, 5],
        }
    }

    fn fresh(&self, name: &str) -> PathBuf {
        let repo = self.h.t.path(name);
        let _ = std::fs::remove_dir_all(&repo);
        copy_tree(&self.base, &repo);
        repo
    }

    /// After a kill: clean verify, every kept snapshot restores; then a prune
    /// completes, leaves the same, and a further prune has nothing to do.
    fn check(&self, repo: &Path, what: &str) {
        self.h.assert_verify_clean(repo, what);
        self.h.assert_exactly_restorable(repo, &self.keep, what);
        let r = self
            .h
            .lb(repo)
            .args(["prune", "--max-unused", "0", "--json"])
            .ok()
            .json();
        let what2 = format!("{what}, then a full prune");
        self.h.assert_verify_clean(repo, &what2);
        self.h.assert_exactly_restorable(repo, &self.keep, &what2);
        let again = self
            .h
            .lb(repo)
            .args(["prune", "--max-unused", "0", "--json"])
            .ok()
            .json();
        assert_eq!(
            again["packs_deleted"], 0,
            "{what2}: leftovers remain: {r} / {again}"
        );
        assert_eq!(again["packs_repacked"], 0, "{what2}: {again}");
    }
}

#[test]
fn sigkill_at_each_prune_crash_point_loses_nothing() {
    let w = CrashWorld::new("prune-crash-points", 3000);
    // The plan must exercise deletion and repacking, or the points prove little.
    let plan =
        w.h.lb(&w.base)
            .args(["prune", "--dry-run", "--max-unused", "0", "--json"])
            .ok()
            .json();
    assert!(plan["packs_deleted"].as_u64().expect("n") >= 2, "{plan}");
    assert!(plan["packs_repacked"].as_u64().expect("n") >= 1, "{plan}");
    assert!(
        plan["packs"].as_array().expect("packs").len() >= 3,
        "{plan}"
    );
    for point in [
        "after-pack",
        "prune-after-new-packs",
        "before-index-commit",
        "prune-after-index",
        "prune-delete-pack:1",
        "prune-delete-pack:2",
        "prune-delete-pack:3",
    ] {
        let repo = w.fresh(&format!("repo-{}", point.replace(':', "-")));
        let r =
            w.h.lb(&repo)
                .args(["prune", "--max-unused", "0"])
                .crash_at(point)
                .run();
        assert_eq!(
            r.signal,
            Some(SIGKILL),
            "{point}: the crash point was not reached: {r:?}"
        );
        w.check(&repo, &format!("killed at {point}"));
    }
    // A kill between deleting snapshot files and the index commit of forget.
    let repo = w.fresh("repo-forget");
    let r =
        w.h.lb(&repo)
            .args(["forget", "--keep-last", "1"])
            .crash_at("forget-after-files")
            .run();
    assert_eq!(r.signal, Some(SIGKILL));
    w.h.assert_verify_clean(&repo, "killed in forget");
    w.h.assert_exactly_restorable(&repo, &[5], "killed in forget");
}

#[test]
fn sigkill_at_random_moments_of_prune_loses_nothing() {
    let w = CrashWorld::new("prune-random", 20_000);
    let timing = w.fresh("repo-timing");
    let start = Instant::now();
    w.h.lb(&timing).args(["prune", "--max-unused", "0"]).ok();
    let full = start.elapsed();
    eprintln!("a full prune takes {full:?}");
    let seed = std::env::var("LUMINA_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    eprintln!("random delays: LUMINA_TEST_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut killed = 0;
    for i in 0..6 {
        let repo = w.fresh(&format!("repo-random-{i}"));
        let delay = full.mul_f64(rng.gen_range(0.0..1.3));
        let mut child = w.h.lb(&repo).args(["prune", "--max-unused", "0"]).spawn();
        std::thread::sleep(delay);
        let _ = child.kill();
        let status = child.wait().expect("wait");
        if !status.success() {
            killed += 1;
        }
        w.check(
            &repo,
            &format!("killed after {delay:?} (run {i}, seed {seed})"),
        );
    }
    eprintln!("{killed} of 6 runs were killed before finishing");
}

#[test]
fn prune_while_a_snapshot_runs_fails_naming_the_holder_or_waits() {
    let t = TestDir::new("prune-vs-snapshot");
    t.init();
    let db = t.path("big.db");
    create_lumina(&db, 60_000, 9);
    let first = id_of(&t.lb().arg("snapshot").arg(&db).json());
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    let lock = t.repo().join("lock");
    let mut refused = false;
    for attempt in 0..5 {
        touch_metadata_rows(&db, 2000, 700 + attempt);
        let mut snap = t.lb().arg("snapshot").arg(&db).spawn();
        // Wait until the snapshot holds the lock (it writes its pid there).
        let deadline = Instant::now() + Duration::from_secs(30);
        while !std::fs::read_to_string(&lock)
            .unwrap_or_default()
            .contains("(snapshot)")
        {
            assert!(
                Instant::now() < deadline,
                "the snapshot never took the lock"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        let r = t.lb().args(["prune", "--lock-wait", "0"]).run();
        let status = snap.wait().expect("snapshot");
        assert!(
            status.success(),
            "the snapshot failed while prune was refused"
        );
        if r.code == Some(0) {
            continue; // The snapshot finished first; try again.
        }
        r.expect_code(1).expect_one_stderr_line();
        assert!(
            r.stderr.contains(&format!("pid {}", snap.id()))
                && r.stderr.contains(&host)
                && r.stderr.contains("snapshot"),
            "the message names the holder's pid, host and command: {}",
            r.stderr
        );
        refused = true;
        break;
    }
    assert!(refused, "prune never overlapped a running snapshot");
    assert_eq!(list_ids(&t).len(), 2, "nothing lost");

    // With a lock wait, prune waits for the snapshot and then runs.
    touch_metadata_rows(&db, 2000, 800);
    let mut snap = t.lb().arg("snapshot").arg(&db).spawn();
    while !std::fs::read_to_string(&lock)
        .unwrap_or_default()
        .contains("(snapshot)")
    {
        std::thread::sleep(Duration::from_millis(2));
    }
    t.lb()
        .args([
            "forget",
            "--keep-last",
            "1",
            "--prune",
            "--lock-wait",
            "120",
        ])
        .ok();
    assert!(snap.wait().expect("snapshot").success());
    let ids = list_ids(&t);
    assert_eq!(ids.len(), 1, "forget ran after the snapshot committed");
    assert_ne!(ids[0], first);
    t.lb().args(["verify", "--read-data"]).ok();
    let out = t.path("restored.db");
    t.lb().args(["restore", &ids[0], "--to"]).arg(&out).ok();
    assert_eq!(dump(&out), dump_via_copy(&db));
}
