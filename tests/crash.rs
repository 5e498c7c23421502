//! Invariant: a SIGKILL at any moment leaves the repository as it was before the
//! command began (plus, at most, the complete new snapshot or unreferenced data):
//! `verify --read-data` passes, every earlier snapshot restores to its exact
//! content, a new snapshot succeeds, and the source database is unchanged. A
//! SIGKILL during a restore leaves the target either untouched or the complete
//! restored database, never half-written.
//!
//! The kills come from the built-in crash points (`LUMINA_BACKUP_CRASH_AT`, see
//! `store-format.md`, "Test hooks") and from outside after random delays spread over
//! the command's measured duration. The large database (~200 MiB, 222,000
//! photos) is generated once per test process with `create_lumina_db` (about
//! 7 s) into `CARGO_TARGET_TMPDIR` and shared, read-only, by the tests, which
//! run one at a time. The random delays print their seed (set
//! `LUMINA_TEST_SEED` to replay one).

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use common::*;
use rand::{Rng, SeedableRng};

const BIG_ITEMS: u64 = 222_000;
const SIGKILL: i32 = 9;

/// The large database, generated once per process (then copied by each test).
fn big_db() -> &'static (PathBuf, String) {
    static BIG: OnceLock<(PathBuf, String)> = OnceLock::new();
    BIG.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
        std::fs::create_dir_all(dir).expect("target tmp dir");
        let path = dir.join(format!("crash-big-{BIG_ITEMS}.db"));
        let tmp = dir.join(format!("crash-big-{BIG_ITEMS}.{}.tmp", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let t = Instant::now();
        create_lumina(&tmp, BIG_ITEMS, 2024);
        assert!(
            !sidecar(&tmp, "-wal").exists(),
            "the generator checkpoints on close"
        );
        std::fs::rename(&tmp, &path).expect("installing the big db");
        let size = std::fs::metadata(&path).expect("size").len();
        eprintln!("generated {} MiB in {:?}", size >> 20, t.elapsed());
        let hash = blake3_file(&path);
        (path, hash)
    })
}

/// The tests of this file run one at a time: they are CPU-bound, and the random
/// delays are spread over durations measured while nothing else runs here.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn seeded_rng() -> rand::rngs::StdRng {
    let seed = std::env::var("LUMINA_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    eprintln!("random delays: LUMINA_TEST_SEED={seed}");
    rand::rngs::StdRng::seed_from_u64(seed)
}

/// A test's world: the big database (copied), a small database with two earlier
/// snapshots in a base repository, and their expected contents.
struct World {
    t: TestDir,
    big: PathBuf,
    big_hash: String,
    /// The image checksum snapshots of `big` record (format 2: chunk-list digest).
    big_digest: String,
    small: PathBuf,
    base: PathBuf,
    /// Earlier snapshots: (id, expected content).
    earlier: Vec<(String, Dump)>,
}

impl World {
    fn new(name: &str) -> World {
        let t = TestDir::new(name);
        // Used in place (never written: the tests check it stays unchanged).
        let (big, big_hash) = big_db();
        let big = big.clone();
        let big_digest = image_digest(&big);
        let small = t.path("small.db");
        create_lumina(&small, 2000, 5);
        let base = t.path("base");
        let lb = Lb::new(&base, t.root());
        lb.args(["init"]).ok();
        let mut earlier = Vec::new();
        for step in 0..2 {
            if step == 1 {
                touch_metadata_rows(&small, 50, 3);
            }
            let snap = Lb::new(&base, t.root())
                .args(["snapshot"])
                .arg(&small)
                .json();
            earlier.push((id_of(&snap), dump(&small)));
        }
        World {
            t,
            big,
            big_hash: big_hash.clone(),
            big_digest,
            small,
            base,
            earlier,
        }
    }

    /// A fresh copy of the base repository.
    fn fresh_repo(&self, name: &str) -> PathBuf {
        let repo = self.t.path(name);
        copy_tree(&self.base, &repo);
        repo
    }

    fn lb(&self, repo: &Path) -> Lb {
        Lb::new(repo, self.t.root())
    }

    /// The source database was not changed by the killed process.
    fn assert_big_unchanged(&self) {
        assert_eq!(
            blake3_file(&self.big),
            self.big_hash,
            "the source database changed"
        );
        if let Ok(m) = std::fs::metadata(sidecar(&self.big, "-wal")) {
            assert_eq!(m.len(), 0, "a reader left WAL content beside the source");
        }
    }

    /// The image checksum of snapshot `id`.
    fn image_hash(&self, repo: &Path, id: &str) -> String {
        let show = self.lb(repo).args(["show", id]).json();
        show["files"]
            .as_array()
            .expect("files")
            .iter()
            .find(|f| f["kind"] == "image")
            .and_then(|f| f["blake3"].as_str())
            .expect("image entry")
            .to_string()
    }

    /// Checks after a kill. Returns the ids of snapshots that were not there
    /// before (each must be a complete snapshot of the big database).
    fn check_after_kill(&self, repo: &Path, what: &str, restore_new: bool) -> Vec<String> {
        let v = self.lb(repo).args(["verify", "--read-data"]).run();
        assert_eq!(
            v.code,
            Some(0),
            "{what}: verify --read-data failed after the kill:\n{}{}",
            v.out(),
            v.stderr
        );
        // Read commands (verify) write nothing; the next writing command clears
        // temp files (prune --dry-run opens for writing and changes nothing else).
        self.lb(repo).args(["prune", "--dry-run"]).ok();
        let tmp_left: Vec<_> = files_under(repo)
            .into_iter()
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(".tmp-"))
            })
            .collect();
        assert!(
            tmp_left.is_empty(),
            "{what}: temp files survive a writing open: {tmp_left:?}"
        );

        let list = self.lb(repo).args(["snapshots"]).json();
        let ids: Vec<String> = list.as_array().expect("array").iter().map(id_of).collect();
        for (id, _) in &self.earlier {
            assert!(ids.contains(id), "{what}: earlier snapshot {id} is gone");
        }
        for (i, (id, expected)) in self.earlier.iter().enumerate() {
            let out = self.t.path(&format!("earlier-{i}.db"));
            let _ = std::fs::remove_file(&out);
            self.lb(repo).args(["restore", id, "--to"]).arg(&out).ok();
            assert_eq!(
                &dump(&out),
                expected,
                "{what}: earlier snapshot {i} restores differently"
            );
        }
        let new: Vec<String> = ids
            .into_iter()
            .filter(|id| !self.earlier.iter().any(|(e, _)| e == id))
            .collect();
        for id in &new {
            assert_eq!(
                self.image_hash(repo, id),
                self.big_digest,
                "{what}: a snapshot that survived the kill is not the big database"
            );
            if restore_new {
                let out = self.t.path("survivor.db");
                let _ = std::fs::remove_file(&out);
                self.lb(repo).args(["restore", id, "--to"]).arg(&out).ok();
                assert_eq!(
                    blake3_file(&out),
                    self.big_hash,
                    "{what}: survivor restores wrong"
                );
            }
        }
        self.assert_big_unchanged();
        new
    }

    /// A new snapshot of `db` succeeds and records `hash` as its image checksum.
    fn new_snapshot_succeeds(&self, repo: &Path, db: &Path, hash: Option<&str>, what: &str) {
        let r = self.lb(repo).args(["snapshot", "--json"]).arg(db).run();
        assert_eq!(
            r.code,
            Some(0),
            "{what}: the next snapshot failed: {}",
            r.stderr
        );
        if let Some(hash) = hash {
            let image = r.json()["files"]
                .as_array()
                .expect("files")
                .iter()
                .find(|f| f["kind"] == "image")
                .and_then(|f| f["blake3"].as_str())
                .expect("image")
                .to_string();
            assert_eq!(
                image, hash,
                "{what}: the next snapshot recorded another image"
            );
        }
    }
}

#[test]
fn snapshot_killed_at_each_crash_point_leaves_a_recoverable_repository() {
    let _serial = serial();
    let w = World::new("crash-points");
    // (point, whether the snapshot is committed when the process dies there,
    // whether the next snapshot is of the big database again)
    let points = [
        ("capture-page:1", false, false),
        ("capture-page:30000", false, true),
        ("before-rename:1", false, false),
        ("after-pack:2", false, true),
        ("before-pack-index-commit:2", false, true),
        ("after-snapshot-file", true, false),
        ("before-index-commit", true, false),
    ];
    for (i, (point, committed, big_next)) in points.iter().enumerate() {
        let repo = w.fresh_repo(&format!("repo-point-{i}"));
        let r = w
            .lb(&repo)
            .crash_at(point)
            .args(["snapshot"])
            .arg(&w.big)
            .run();
        assert_eq!(
            r.signal,
            Some(SIGKILL),
            "{point}: the process should have been killed there (exit {:?}, {})",
            r.code,
            r.stderr
        );
        let new = w.check_after_kill(&repo, point, i == 4);
        assert_eq!(
            new.len(),
            usize::from(*committed),
            "{point}: expected {} snapshot(s) to survive, found {new:?}",
            usize::from(*committed)
        );
        if *big_next {
            // Reuses (or rewrites) what the killed snapshot left behind.
            w.new_snapshot_succeeds(&repo, &w.big, Some(&w.big_digest), point);
        } else {
            w.new_snapshot_succeeds(&repo, &w.small, None, point);
        }
        w.lb(&repo).args(["verify"]).ok();
        std::fs::remove_dir_all(&repo).expect("cleanup");
    }
}

#[test]
fn snapshot_killed_at_random_moments_leaves_a_recoverable_repository() {
    let _serial = serial();
    let w = World::new("crash-random");
    // How long a full snapshot of the big database takes here.
    let scratch = w.fresh_repo("scratch");
    let t0 = Instant::now();
    w.lb(&scratch).args(["snapshot"]).arg(&w.big).ok();
    let full = t0.elapsed();
    std::fs::remove_dir_all(&scratch).expect("cleanup");
    eprintln!("a full snapshot takes {full:?}");

    let mut rng = seeded_rng();
    let n = 10;
    let mut outcomes = Vec::new();
    for i in 0..n {
        // Spread over the whole run, jittered within each slot.
        let slot = full.as_secs_f64() * 0.95 / n as f64;
        let delay = Duration::from_secs_f64(slot * (i as f64 + rng.gen_range(0.0..1.0)));
        let repo = w.fresh_repo(&format!("repo-random-{i}"));
        let mut child = w.lb(&repo).args(["snapshot"]).arg(&w.big).spawn();
        std::thread::sleep(delay);
        let finished = child.try_wait().expect("try_wait");
        let status = match finished {
            Some(s) => s,
            None => {
                child.kill().expect("SIGKILL");
                child.wait().expect("wait")
            }
        };
        let killed = finished.is_none();
        if !killed {
            assert!(
                status.success(),
                "delay {delay:?}: the snapshot failed by itself"
            );
        }
        let what = format!("kill after {delay:?}");
        let new = w.check_after_kill(&repo, &what, i == n - 1);
        assert!(
            new.len() <= 1,
            "{what}: more than one new snapshot: {new:?}"
        );
        outcomes.push((delay, killed, new.len()));
        // Once (mid-run) the next snapshot is of the big database, reusing
        // whatever the killed one left; otherwise of the small one (cheaper).
        if i == n / 2 {
            w.new_snapshot_succeeds(&repo, &w.big, Some(&w.big_digest), &what);
        } else {
            w.new_snapshot_succeeds(&repo, &w.small, None, &what);
        }
        std::fs::remove_dir_all(&repo).expect("cleanup");
    }
    eprintln!("(delay, killed, snapshots committed): {outcomes:?}");
}

#[test]
fn restore_killed_leaves_the_target_untouched_or_complete() {
    let _serial = serial();
    let w = World::new("crash-restore");
    let repo = w.fresh_repo("repo");
    let snap = w.lb(&repo).args(["snapshot"]).arg(&w.big).json();
    let id = id_of(&snap);

    // A full restore, timed (and checked).
    let full_out = w.t.path("full.db");
    let t0 = Instant::now();
    w.lb(&repo)
        .args(["restore", &id, "--to"])
        .arg(&full_out)
        .ok();
    let full = t0.elapsed();
    assert_eq!(blake3_file(&full_out), w.big_hash);
    std::fs::remove_file(&full_out).expect("cleanup");
    eprintln!("a full restore takes {full:?}");

    // The existing target: a small Lumina database.
    let target = w.t.path("target.db");
    let reset_target = || {
        for p in [
            target.clone(),
            sidecar(&target, "-wal"),
            sidecar(&target, "-shm"),
        ] {
            let _ = std::fs::remove_file(p);
        }
        std::fs::copy(&w.small, &target).expect("target");
    };
    let small_dump = dump(&w.small);
    // Untouched (its logical state) or complete (the big image); never anything else.
    let classify = |p: &Path, what: &str| -> &'static str {
        if !p.exists() {
            return "absent";
        }
        if std::fs::metadata(p).expect("meta").len() == std::fs::metadata(&w.big).expect("m").len()
            && blake3_file(p) == w.big_hash
        {
            return "complete";
        }
        assert!(integrity_ok(p), "{what}: the target is damaged");
        assert_eq!(
            dump(p),
            small_dump,
            "{what}: the target is neither untouched nor complete"
        );
        "untouched"
    };

    // The chosen point: just before the rename onto the target.
    reset_target();
    let r = w
        .lb(&repo)
        .crash_at("restore-before-rename")
        .args(["restore", &id, "--force", "--to"])
        .arg(&target)
        .run();
    assert_eq!(
        r.signal,
        Some(SIGKILL),
        "restore-before-rename: not killed: {}",
        r.stderr
    );
    assert_eq!(classify(&target, "restore-before-rename"), "untouched");
    w.lb(&repo).args(["verify"]).ok();

    // Random moments, over an existing target (--force) and onto a new path.
    let mut rng = seeded_rng();
    let n = 6;
    let mut outcomes = Vec::new();
    for i in 0..n {
        let slot = full.as_secs_f64() * 1.1 / n as f64;
        let delay = Duration::from_secs_f64(slot * (i as f64 + rng.gen_range(0.0..1.0)));
        let force = i % 2 == 0;
        let path = if force {
            reset_target();
            target.clone()
        } else {
            let p = w.t.path(&format!("new-{i}.db"));
            assert!(!p.exists());
            p
        };
        let mut cmd = w.lb(&repo).args(["restore", &id]);
        if force {
            cmd = cmd.arg("--force");
        }
        let mut child = cmd.arg("--to").arg(&path).spawn();
        std::thread::sleep(delay);
        let finished = child.try_wait().expect("try_wait");
        if finished.is_none() {
            child.kill().expect("SIGKILL");
        }
        let status = child.wait().expect("wait");
        if finished.is_some() {
            assert!(status.success(), "restore failed by itself");
        }
        let what = format!("restore killed after {delay:?}");
        let state = classify(&path, &what);
        if force {
            assert_ne!(state, "absent", "{what}: the target vanished");
        } else {
            assert_ne!(state, "untouched", "{what}: impossible state");
        }
        if finished.is_some() {
            assert_eq!(state, "complete", "{what}: finished but not complete");
        }
        outcomes.push((delay, finished.is_none(), state));
        w.lb(&repo).args(["verify"]).ok();
        if !force {
            let _ = std::fs::remove_file(&path);
        }
    }
    eprintln!("(delay, killed, target state): {outcomes:?}");
    // Not a contract item (the target folder is the user's): report only.
    let leftovers = std::fs::read_dir(w.t.root())
        .expect("ls")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
        .count();
    eprintln!("temp files left beside the targets by killed restores: {leftovers}");
    w.lb(&repo).args(["verify", "--read-data"]).ok();
    for (i, (id, expected)) in w.earlier.iter().enumerate() {
        let out = w.t.path(&format!("earlier-{i}.db"));
        w.lb(&repo).args(["restore", id, "--to"]).arg(&out).ok();
        assert_eq!(
            &dump(&out),
            expected,
            "earlier snapshot {i} restores differently"
        );
    }
    w.new_snapshot_succeeds(&repo, &w.small, None, "after the restore kills");
    w.assert_big_unchanged();
}
