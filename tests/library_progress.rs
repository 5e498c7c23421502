//! Typed progress and cancellation, seen from the library (issue #9, "Typed
//! progress"): the tests call `lumina_backup::Repository` directly, as the
//! desktop app does, with real SQLite files and real repositories.
//!
//! Invariants guarded:
//! - every operation reports only phases of its own kind, each phase counts
//!   in its unit, counts never pass a known total (and reach it on success);
//! - `done` is called exactly once, last, on success and on failure, with the
//!   outcome (`Succeeded`, `Failed`, `Cancelled`);
//! - cancelling through `Progress::cancelled` mid-snapshot, mid-restore and
//!   mid-prune leaves the repository clean (verify passes, no new snapshot, no
//!   partial packs, every snapshot restores) and a restore target untouched.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use common::{blake3_file, create_lumina, dump, files_under, pack_files, TestDir};
use lumina_backup::DiffTarget;
use lumina_backup::{
    NoProgress, OpenOptions, Outcome, Phase, PhaseInfo, Progress, Repository, RestoreOptions,
    SnapshotOptions, Unit,
};

/// One call the library made.
#[derive(Debug, Clone, PartialEq)]
enum Event {
    Phase(Phase, Option<String>, Option<u64>),
    Advance(u64),
    Done(Outcome),
}

/// A `Progress` that records every call and can cancel once `cancel_after`
/// units were advanced in a given phase.
#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<Event>>,
    /// Cancel once this phase started and this many of its units are done.
    cancel_after: Option<(Phase, u64)>,
    /// A repository whose pack files are counted when it first cancels.
    watch: Option<PathBuf>,
    packs_at_cancel: Mutex<Option<usize>>,
}

impl Recorder {
    fn cancelling(phase: Phase, after: u64) -> Self {
        Recorder {
            cancel_after: Some((phase, after)),
            ..Default::default()
        }
    }

    /// Also counts the pack files of `repo` at the moment it cancels.
    fn watching(self, repo: PathBuf) -> Self {
        Recorder {
            watch: Some(repo),
            ..self
        }
    }

    /// How many pack files there were when it cancelled.
    fn packs_at_cancel(&self) -> usize {
        self.packs_at_cancel.lock().unwrap().expect("it cancelled")
    }

    fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    /// Units advanced so far in the phases `phase`.
    fn advanced_in(&self, phase: Phase) -> u64 {
        let mut current = None;
        let mut sum = 0;
        for e in self.events() {
            match e {
                Event::Phase(p, ..) => current = Some(p),
                Event::Advance(n) if current == Some(phase) => sum += n,
                _ => {}
            }
        }
        sum
    }

    fn phases(&self) -> Vec<Phase> {
        self.events()
            .iter()
            .filter_map(|e| match e {
                Event::Phase(p, ..) => Some(*p),
                _ => None,
            })
            .collect()
    }

    /// Checks the calls of one operation: phases among `allowed`, counts
    /// within totals (reached when it succeeded), `done` once, last, with
    /// `outcome`.
    fn check(&self, allowed: &[Phase], outcome: Outcome) {
        let events = self.events();
        let dones: Vec<_> = events
            .iter()
            .filter(|e| matches!(e, Event::Done(_)))
            .collect();
        assert_eq!(dones.len(), 1, "done exactly once: {events:?}");
        assert_eq!(events.last(), Some(&Event::Done(outcome)), "{events:?}");
        let mut current: Option<(Phase, Option<u64>, u64)> = None;
        let end_phase = |c: Option<(Phase, Option<u64>, u64)>| {
            if let (Some((p, Some(total), count)), Outcome::Succeeded) = (c, outcome) {
                assert_eq!(
                    count, total,
                    "{p:?} ended at {count} of {total}: {events:?}"
                );
            }
        };
        for e in &events {
            match e {
                Event::Phase(p, detail, total) => {
                    assert!(allowed.contains(p), "unexpected phase {p:?}: {events:?}");
                    if p.unit() == Unit::None {
                        assert_eq!(*total, None, "{p:?} counts nothing");
                    }
                    if let Some(d) = detail {
                        assert!(!d.is_empty(), "{p:?} has an empty detail");
                    }
                    end_phase(current.take());
                    current = Some((*p, *total, 0));
                }
                Event::Advance(n) => {
                    let (p, total, count) = current.as_mut().expect("advance before any phase");
                    assert_ne!(p.unit(), Unit::None, "{p:?} advanced: {events:?}");
                    assert!(*n > 0, "an advance of 0 in {p:?}");
                    *count += n;
                    if let Some(t) = total {
                        assert!(*count <= *t, "{p:?} at {count} past its total {t}");
                    }
                }
                Event::Done(_) => end_phase(current.take()),
            }
        }
    }
}

impl Progress for Recorder {
    fn phase(&self, info: &PhaseInfo<'_>) {
        self.events.lock().unwrap().push(Event::Phase(
            info.phase,
            info.detail.map(str::to_string),
            info.total,
        ));
    }

    fn advance(&self, n: u64) {
        self.events.lock().unwrap().push(Event::Advance(n));
    }

    fn cancelled(&self) -> bool {
        match self.cancel_after {
            Some((phase, n)) => {
                let stop = self.phases().contains(&phase) && self.advanced_in(phase) >= n;
                let mut seen = self.packs_at_cancel.lock().unwrap();
                if let (true, None, Some(repo)) = (stop, *seen, &self.watch) {
                    *seen = Some(pack_files(repo).len());
                }
                stop
            }
            None => false,
        }
    }

    fn done(&self, outcome: Outcome) {
        self.events.lock().unwrap().push(Event::Done(outcome));
    }
}

const SNAPSHOT_PHASES: &[Phase] = &[
    Phase::OpenDatabase,
    Phase::Capture,
    Phase::Export,
    Phase::CompactIndex,
];
const RESTORE_PHASES: &[Phase] = &[
    Phase::ReadFile,
    Phase::CheckImage,
    // The pre-restore snapshot of a replaced database.
    Phase::OpenDatabase,
    Phase::Capture,
    Phase::Export,
    Phase::CompactIndex,
];
const VERIFY_PHASES: &[Phase] = &[Phase::VerifyPacks, Phase::ReadData, Phase::VerifySnapshots];
const PRUNE_PHASES: &[Phase] = &[Phase::FindReferences, Phase::Repack, Phase::DeletePacks];

fn open(dir: &TestDir) -> Repository {
    Repository::open(&dir.repo(), &OpenOptions::default()).expect("opening the repository")
}

fn init(dir: &TestDir) -> Repository {
    Repository::init(&dir.repo()).expect("init");
    open(dir)
}

/// A rollback-journal database of `rows` rows of 4000 random bytes (one page
/// each, incompressible: every row is its own stored data).
fn create_blobs(path: &Path, rows: u64) {
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, b BLOB);")
        .unwrap();
    c.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
         INSERT INTO t(id, b) SELECT i, randomblob(4000) FROM n",
        [rows],
    )
    .unwrap();
}

/// Gives new random bytes to the rows whose id is a multiple of `every`.
fn rewrite_blobs(path: &Path, every: u64) {
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute(
        "UPDATE t SET b = randomblob(4000) WHERE id % ?1 = 0",
        [every],
    )
    .unwrap();
}

fn snapshot(repo: &mut Repository, db: &Path) -> lumina_backup::Snapshot {
    repo.snapshot(db, &SnapshotOptions::default(), &NoProgress)
        .expect("snapshot")
        .snapshot
}

fn ids(repo: &Repository) -> Vec<String> {
    repo.list().unwrap().iter().map(|s| s.id.to_hex()).collect()
}

fn pack_set(dir: &TestDir) -> BTreeSet<PathBuf> {
    pack_files(&dir.repo()).into_iter().collect()
}

fn assert_verify_clean(repo: &Repository) {
    let r = repo.verify(true, &NoProgress).expect("verify");
    assert!(r.ok, "verify problems: {:?}", r.problems);
}

/// Issue #9 typed progress: a snapshot reports its capture in bytes (the
/// image's size as total), its exports, and `done` once; `list` shows it.
#[test]
fn snapshot_reports_typed_phases_and_done_once() {
    let dir = TestDir::new("lp-snap");
    let db = dir.path("lumina.db");
    create_lumina(&db, 200, 1);
    let mut repo = init(&dir);
    let rec = Recorder::default();
    let s = repo
        .snapshot(&db, &SnapshotOptions::default(), &rec)
        .expect("snapshot");
    rec.check(SNAPSHOT_PHASES, Outcome::Succeeded);
    let events = rec.events();
    let image = s.snapshot.image().expect("an image").clone();
    assert!(
        events.contains(&Event::Phase(
            Phase::Capture,
            Some(image.name.clone()),
            Some(image.size)
        )),
        "{events:?}"
    );
    assert_eq!(rec.advanced_in(Phase::Capture), image.size);
    assert!(rec.phases().contains(&Phase::Export), "{events:?}");
    assert_eq!(Phase::Capture.unit(), Unit::Bytes);
    assert_eq!(ids(&repo), vec![s.snapshot.id.to_hex()]);
}

/// Issue #9 typed progress: `done(Failed)` once when an operation fails, early
/// or late: a snapshot of a file that is not SQLite, of a missing file, a
/// restore of an unknown snapshot, a prune with a bad argument, a diff against
/// a missing database.
#[test]
fn failures_report_done_once() {
    let dir = TestDir::new("lp-fail");
    let db = dir.path("app.db");
    create_blobs(&db, 50);
    let mut repo = init(&dir);
    let snap = snapshot(&mut repo, &db);

    let junk = dir.path("junk.db");
    std::fs::write(&junk, vec![b'x'; 10_000]).unwrap();
    let rec = Recorder::default();
    assert!(repo
        .snapshot(&junk, &SnapshotOptions::default(), &rec)
        .is_err());
    rec.check(SNAPSHOT_PHASES, Outcome::Failed);

    let rec = Recorder::default();
    assert!(repo
        .snapshot(&dir.path("missing.db"), &SnapshotOptions::default(), &rec)
        .is_err());
    rec.check(SNAPSHOT_PHASES, Outcome::Failed);

    let rec = Recorder::default();
    let target = dir.path("restored.db");
    assert!(repo
        .restore("deadbeef", &target, &RestoreOptions::default(), &rec)
        .is_err());
    rec.check(RESTORE_PHASES, Outcome::Failed);
    assert!(!target.exists());

    // Refused before anything is replaced: the target exists, no --force.
    let rec = Recorder::default();
    assert!(repo
        .restore_snapshot(snap.clone(), &db, &RestoreOptions::default(), &rec)
        .is_err());
    rec.check(RESTORE_PHASES, Outcome::Failed);

    let rec = Recorder::default();
    assert!(repo.prune(250.0, &rec).is_err());
    rec.check(PRUNE_PHASES, Outcome::Failed);

    let rec = Recorder::default();
    assert!(repo
        .diff(&snap, DiffTarget::Live(&dir.path("missing.db")), &rec)
        .is_err());
    rec.check(&[Phase::ReadFile, Phase::Diff], Outcome::Failed);
    assert_eq!(ids(&repo), vec![snap.id.to_hex()]);
}

/// Issue #9 typed progress: diff reads both sides (bytes) then compares each
/// table; restore reads (bytes, reaching the file's size) and checks the image;
/// a forced restore includes its pre-restore snapshot but ends once.
#[test]
fn diff_and_restore_report_typed_phases() {
    let dir = TestDir::new("lp-restore");
    let db = dir.path("lumina.db");
    create_lumina(&db, 200, 2);
    let mut repo = init(&dir);
    let a = snapshot(&mut repo, &db);
    common::touch_metadata_rows(&db, 5, 3);
    let b = snapshot(&mut repo, &db);

    let rec = Recorder::default();
    let d = repo.diff(&a, DiffTarget::Snapshot(&b), &rec).expect("diff");
    rec.check(&[Phase::ReadFile, Phase::Diff], Outcome::Succeeded);
    let diffed: Vec<String> = rec
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Phase(Phase::Diff, Some(t), _) => Some(t),
            _ => None,
        })
        .collect();
    assert_eq!(
        diffed.into_iter().collect::<BTreeSet<_>>(),
        d.tables.keys().cloned().collect::<BTreeSet<_>>()
    );

    let target = dir.path("restored.db");
    let rec = Recorder::default();
    repo.restore_snapshot(a.clone(), &target, &RestoreOptions::default(), &rec)
        .expect("restore");
    rec.check(RESTORE_PHASES, Outcome::Succeeded);
    assert_eq!(rec.phases(), [Phase::ReadFile, Phase::CheckImage]);
    assert_eq!(
        rec.advanced_in(Phase::ReadFile),
        a.image().unwrap().size,
        "the bar reaches the file's size"
    );

    let rec = Recorder::default();
    let opts = RestoreOptions {
        force: true,
        ..Default::default()
    };
    let r = repo
        .restore("latest", &target, &opts, &rec)
        .expect("forced restore");
    assert!(r.pre_restore.is_some());
    rec.check(RESTORE_PHASES, Outcome::Succeeded);
    assert!(rec.phases().contains(&Phase::Capture));

    let rec = Recorder::default();
    let all = dir.path("all");
    repo.restore_all(b.clone(), &all, &RestoreOptions::default(), &rec)
        .expect("restore all");
    rec.check(RESTORE_PHASES, Outcome::Succeeded);
}

/// Issue #9 typed progress: verify counts packs in bytes (their sum as total)
/// and snapshots as items; prune counts snapshots, repacked bytes and deleted
/// packs, and ends once (plan and apply inside it do not end it twice).
#[test]
fn verify_and_prune_report_units() {
    let dir = TestDir::new("lp-prune");
    let db = dir.path("app.db");
    create_blobs(&db, 600);
    let mut repo = init(&dir);
    let first = snapshot(&mut repo, &db);
    rewrite_blobs(&db, 2);
    snapshot(&mut repo, &db);
    rewrite_blobs(&db, 3);
    snapshot(&mut repo, &db);

    for read_data in [false, true] {
        let rec = Recorder::default();
        assert!(repo.verify(read_data, &rec).unwrap().ok);
        rec.check(VERIFY_PHASES, Outcome::Succeeded);
        let packs: u64 = pack_files(&dir.repo())
            .iter()
            .map(|p| std::fs::metadata(p).unwrap().len())
            .sum();
        let want = if read_data {
            Phase::ReadData
        } else {
            Phase::VerifyPacks
        };
        let events = rec.events();
        assert!(
            events.contains(&Event::Phase(want, None, Some(packs))),
            "{events:?}"
        );
        assert!(events.contains(&Event::Phase(Phase::VerifySnapshots, None, Some(3))));
        assert_eq!(Phase::VerifySnapshots.unit(), Unit::Items("snapshots"));
    }

    let plan = repo.forget_named_plan(&[first.id.to_hex()], None).unwrap();
    repo.forget_apply(&plan).unwrap();
    let rec = Recorder::default();
    let report = repo.prune(0.0, &rec).expect("prune");
    rec.check(PRUNE_PHASES, Outcome::Succeeded);
    assert_eq!(
        rec.phases(),
        [Phase::FindReferences, Phase::Repack, Phase::DeletePacks]
    );
    assert!(report.bytes_freed > 0);
    assert_eq!(Phase::DeletePacks.unit(), Unit::Items("packs"));
    assert_verify_clean(&repo);
}

/// Issue #9 cancellation mid-snapshot: after some of the image was stored,
/// `cancelled()` turns true; the snapshot fails as not recorded, `done` says
/// cancelled, no snapshot was added, the packs it wrote are gone, and the
/// repository verifies clean.
#[test]
fn cancel_mid_snapshot_leaves_the_repository_clean() {
    let dir = TestDir::new("lp-cancel-snap");
    let db = dir.path("app.db");
    create_blobs(&db, 6000); // about 24 MiB: several batches and packs
    let mut repo = init(&dir);
    let first = snapshot(&mut repo, &db);
    rewrite_blobs(&db, 1);
    let packs_before = pack_set(&dir);
    let list_before = ids(&repo);

    // 12 MiB stored: at least one new pack (8 MiB) is written by then.
    let rec = Recorder::cancelling(Phase::Capture, 12 << 20).watching(dir.repo());
    let err = repo
        .snapshot(&db, &SnapshotOptions::default(), &rec)
        .expect_err("cancelled");
    assert!(err.is_cancelled() && err.partial_data().is_some(), "{err}");
    rec.check(SNAPSHOT_PHASES, Outcome::Cancelled);
    assert!(rec.advanced_in(Phase::Capture) >= 12 << 20);
    assert!(
        rec.packs_at_cancel() > packs_before.len(),
        "the snapshot had written a pack when it was cancelled"
    );
    assert_eq!(ids(&repo), list_before, "no new snapshot");
    assert_eq!(pack_set(&dir), packs_before, "no partial packs left");
    assert_verify_clean(&repo);
    drop(repo);
    let repo = open(&dir);
    assert_verify_clean(&repo);
    assert_eq!(ids(&repo), vec![first.id.to_hex()]);
}

/// Issue #9 cancellation mid-restore: the existing target is byte-identical
/// afterwards, no temp file is left beside it, and nothing was added to the
/// repository (the pre-restore snapshot comes after the data is read).
#[test]
fn cancel_mid_restore_leaves_the_target_untouched() {
    let dir = TestDir::new("lp-cancel-restore");
    let db = dir.path("app.db");
    create_blobs(&db, 4000); // about 16 MiB: several read batches
    let mut repo = init(&dir);
    let snap = snapshot(&mut repo, &db);

    let folder = dir.path("target");
    std::fs::create_dir(&folder).unwrap();
    let target = folder.join("app.db");
    create_blobs(&target, 300);
    let hash_before = blake3_file(&target);
    let files_before = files_under(&folder);
    let list_before = ids(&repo);
    let packs_before = pack_set(&dir);

    let rec = Recorder::cancelling(Phase::ReadFile, 4 << 20);
    let opts = RestoreOptions {
        force: true,
        ..Default::default()
    };
    let err = repo
        .restore_snapshot(snap.clone(), &target, &opts, &rec)
        .expect_err("cancelled");
    assert!(err.is_cancelled() && err.partial_data().is_none(), "{err}");
    rec.check(RESTORE_PHASES, Outcome::Cancelled);
    let read = rec.advanced_in(Phase::ReadFile);
    assert!(read >= 4 << 20 && read < snap.image().unwrap().size);

    assert_eq!(blake3_file(&target), hash_before, "target byte-identical");
    assert_eq!(files_under(&folder), files_before, "no temp file beside it");
    assert_eq!(ids(&repo), list_before);
    assert_eq!(pack_set(&dir), packs_before);
    assert_verify_clean(&repo);

    // Cancelled while saving the pre-restore snapshot: still untouched.
    let rec = Recorder::cancelling(Phase::Capture, 0);
    let err = repo
        .restore_snapshot(snap, &target, &opts, &rec)
        .expect_err("cancelled");
    assert!(err.is_cancelled() && err.partial_data().is_some(), "{err}");
    rec.check(RESTORE_PHASES, Outcome::Cancelled);
    assert_eq!(blake3_file(&target), hash_before);
    assert_eq!(files_under(&folder), files_before);
    assert_eq!(ids(&repo), list_before);
    assert_verify_clean(&repo);
}

/// Issue #9 cancellation mid-prune: cancelled while repacking (after a new pack
/// was written), prune fails as cancelled, the repository verifies clean with
/// no unindexed pack, every snapshot restores to its database, and a later
/// prune completes.
#[test]
fn cancel_mid_prune_leaves_every_snapshot_restorable() {
    let dir = TestDir::new("lp-cancel-prune");
    let db = dir.path("app.db");
    create_blobs(&db, 8000); // about 32 MiB
    let mut repo = init(&dir);
    let first = snapshot(&mut repo, &db);
    rewrite_blobs(&db, 2);
    let second = snapshot(&mut repo, &db);
    let kept_dump = dump(&db);
    let plan = repo.forget_named_plan(&[first.id.to_hex()], None).unwrap();
    repo.forget_apply(&plan).unwrap();
    let packs_before = pack_set(&dir);

    // Half of the first snapshot's pages are still live (16 MiB to repack):
    // cancel after 13 MiB, when one new 8 MiB pack is already written.
    let rec = Recorder::cancelling(Phase::Repack, 13 << 20).watching(dir.repo());
    let err = repo.prune(0.0, &rec).expect_err("cancelled");
    assert!(err.is_cancelled() && err.partial_data().is_none(), "{err}");
    rec.check(PRUNE_PHASES, Outcome::Cancelled);
    assert!(rec.advanced_in(Phase::Repack) >= 13 << 20);
    assert!(
        rec.packs_at_cancel() > packs_before.len(),
        "the prune had written a new pack when it was cancelled"
    );

    assert_eq!(pack_set(&dir), packs_before, "no new pack left behind");
    assert_verify_clean(&repo);
    assert_eq!(ids(&repo), vec![second.id.to_hex()]);
    let restored = dir.path("restored.db");
    repo.restore("latest", &restored, &RestoreOptions::default(), &NoProgress)
        .expect("restore after a cancelled prune");
    assert_eq!(dump(&restored), kept_dump);
    drop(repo);

    let mut repo = open(&dir);
    assert_verify_clean(&repo);
    let report = repo.prune(0.0, &NoProgress).expect("prune again");
    assert!(report.bytes_freed > 0);
    assert_verify_clean(&repo);
    std::fs::remove_file(&restored).unwrap();
    repo.restore("latest", &restored, &RestoreOptions::default(), &NoProgress)
        .expect("restore after prune");
    assert_eq!(dump(&restored), kept_dump);
}
