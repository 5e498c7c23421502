use std::path::Path;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::config_file::Interval;
use crate::progress::NoProgress;

fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("app.db");
    let conn = rusqlite::Connection::open(&db).expect("db");
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
         INSERT INTO t (v) VALUES ('a');",
    )
    .expect("schema");
    let repo = dir.path().join("repo");
    Repository::init(&repo).expect("init");
    (dir, db, repo)
}

use crate::repo::Repository;

fn write(db: &Path, v: &str) {
    let conn = rusqlite::Connection::open(db).expect("db");
    conn.execute("INSERT INTO t (v) VALUES (?1)", [v])
        .expect("insert");
}

fn snapshots(repo: &Path) -> usize {
    Repository::open_read_only(repo, &OpenOptions::default())
        .expect("open")
        .list()
        .expect("list")
        .len()
}

/// The events that arrive within `wait`.
fn drain(rx: &Receiver<WatchEvent>, wait: Duration) -> Vec<WatchEvent> {
    let end = Instant::now() + wait;
    let mut out = Vec::new();
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(e) => out.push(e),
            Err(_) => break,
        }
    }
    out
}

/// Events until one matches `want` (panics after 30 s).
fn until(rx: &Receiver<WatchEvent>, want: impl Fn(&WatchEvent) -> bool) -> Vec<WatchEvent> {
    let mut seen = Vec::new();
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let left = end
            .checked_duration_since(Instant::now())
            .expect("timed out waiting for an event");
        let e = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no event; seen {seen:?}"));
        let done = want(&e);
        seen.push(e);
        if done {
            return seen;
        }
    }
}

fn taken(e: &WatchEvent) -> bool {
    matches!(e, WatchEvent::SnapshotTaken { .. })
}

#[test]
fn on_change_snapshots_changes_and_ignores_an_idle_database() {
    let (_dir, db, repo) = setup();
    let mut d = WatchedDatabase::new(&db, Schedule::Manual);
    d.on_change = true;
    d.min_gap = Duration::from_millis(0);
    let mut opts = WatchOptions::new(
        Location::Local(repo.clone()),
        OpenOptions::default(),
        vec![d],
    );
    opts.check_every = Duration::from_millis(50);
    opts.state_dir = Some(_dir.path().join("state"));
    let (w, rx) = Watcher::start(opts).expect("start");
    let first = until(&rx, taken);
    assert!(matches!(first[0], WatchEvent::Started { .. }), "{first:?}");
    assert!(matches!(
        first.last(),
        Some(WatchEvent::SnapshotTaken {
            trigger: Trigger::Change,
            ..
        })
    ));
    // Idle: nothing more is recorded, whatever the ticks.
    let idle = drain(&rx, Duration::from_millis(3000));
    assert!(!idle.iter().any(taken), "{idle:?}");
    assert_eq!(snapshots(&repo), 1);
    write(&db, "b");
    until(&rx, taken);
    assert_eq!(snapshots(&repo), 2);
    w.stop().expect("stops");
    let rest: Vec<_> = rx.iter().collect();
    assert!(
        matches!(rest.last(), Some(WatchEvent::Stopped { abandoned: false })),
        "{rest:?}"
    );
}

#[test]
fn a_schedule_catches_up_once_after_a_sleep() {
    let (_dir, db, repo) = setup();
    {
        let mut r = Repository::open(&repo, &OpenOptions::default()).expect("open");
        r.snapshot(&db, &crate::repo::SnapshotOptions::default(), &NoProgress)
            .expect("first snapshot");
    }
    let start = SystemClock.now_ns();
    let clock = Arc::new(ManualClock::new(start));
    let hour = Duration::from_secs(3600);
    let d = WatchedDatabase::new(&db, Schedule::Every(Interval(hour)));
    let mut opts = WatchOptions::new(
        Location::Local(repo.clone()),
        OpenOptions::default(),
        vec![d],
    );
    opts.check_every = Duration::from_millis(20);
    opts.clock = clock.clone();
    opts.state_dir = Some(_dir.path().join("state"));
    opts.retention = Some(crate::retention::Policy::keep_last(2));
    let (w, rx) = Watcher::start(opts).expect("start");
    // Not due yet: the newest snapshot is from now.
    let quiet = drain(&rx, Duration::from_millis(500));
    assert!(!quiet.iter().any(taken), "{quiet:?}");
    // Asleep for five hours, with a change made before: one snapshot, not five.
    write(&db, "b");
    clock.advance(5 * hour);
    until(&rx, taken);
    let after = drain(&rx, Duration::from_millis(500));
    assert!(!after.iter().any(taken), "{after:?}");
    assert_eq!(snapshots(&repo), 2);
    // Due again an hour later; unchanged, so nothing is recorded.
    clock.advance(hour);
    let skipped = until(&rx, |e| matches!(e, WatchEvent::SkippedUnchanged { .. }));
    assert!(!skipped.iter().any(taken));
    // An hour more, after a change: a third snapshot, and retention keeps 2.
    write(&db, "c");
    clock.advance(hour);
    let third = until(&rx, taken);
    assert!(
        matches!(
            third.last(),
            Some(WatchEvent::SnapshotTaken { forgotten: 1, .. })
        ),
        "{third:?}"
    );
    assert_eq!(snapshots(&repo), 2);
    w.stop().expect("stops");
}

#[test]
fn a_repository_that_cannot_be_opened_is_reported_and_retried() {
    let (dir, db, _repo) = setup();
    let missing = dir.path().join("no-repo");
    let state = tempfile::tempdir().expect("state");
    let d = WatchedDatabase::new(&db, Schedule::Every(Interval(Duration::from_secs(60))));
    let mut opts = WatchOptions::new(Location::Local(missing), OpenOptions::default(), vec![d]);
    opts.check_every = Duration::from_millis(20);
    opts.state_dir = Some(state.path().to_path_buf());
    let (w, rx) = Watcher::start(opts).expect("start");
    let seen = until(&rx, |e| matches!(e, WatchEvent::Failure { .. }));
    let Some(WatchEvent::Failure {
        operation,
        consecutive,
        retry_in,
        ..
    }) = seen.last()
    else {
        panic!("{seen:?}")
    };
    assert_eq!(operation, "open");
    assert!(*consecutive >= 1);
    assert_eq!(*retry_in, Duration::from_secs(2));
    let h = crate::Health::load_in(state.path(), &Location::Local(dir.path().join("no-repo")))
        .expect("reads")
        .expect("recorded");
    assert_eq!(h.repository_entry.consecutive_failures, *consecutive);
    let started = Instant::now();
    w.stop().expect("stops");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn nothing_to_do_is_refused_at_once() {
    let opts = WatchOptions::new(Location::Local("r".into()), OpenOptions::default(), vec![]);
    assert!(Watcher::start(opts)
        .expect_err("no databases")
        .is_user_error());
    let d = WatchedDatabase::new("a.db", Schedule::Manual);
    let opts = WatchOptions::new(Location::Local("r".into()), OpenOptions::default(), vec![d]);
    assert!(Watcher::start(opts).expect_err("never").is_user_error());
}

#[test]
fn the_watcher_is_send() {
    fn send<T: Send>() {}
    send::<Watcher>();
    send::<WatchEvent>();
    send::<WatchOptions>();
}

#[test]
fn a_copy_yields_the_repository_to_a_snapshot_and_the_next_one_finishes() {
    let (dir, db, repo) = setup();
    let mut r = Repository::open(&repo, &OpenOptions::default()).expect("open");
    r.snapshot(&db, &crate::repo::SnapshotOptions::default(), &NoProgress)
        .expect("snapshot");
    drop(r);
    let remote = dir.path().join("remote");
    let mut opts = WatchOptions::new(
        Location::Local(repo.clone()),
        OpenOptions::default(),
        vec![WatchedDatabase::new(&db, Schedule::Manual)],
    );
    opts.remotes = vec![remote.display().to_string()];
    opts.state_dir = Some(dir.path().join("state"));
    let remotes = copier::parse_remotes(&opts).expect("remotes");
    let (tx, rx) = channel();
    let gate = Arc::new(copier::Gate::default());
    let c = copier::Copier::new(
        &opts,
        remotes,
        opts.state_dir.clone(),
        Arc::new(Stop::default()),
        Arc::clone(&gate),
        tx,
    );
    // A snapshot wants the repository: the copy stops before sending a
    // record, reports no failure, and stays behind.
    let raised = gate.raise();
    let mut c = c;
    c.copy_once_for_test(0);
    assert!(rx.try_recv().is_err(), "a yielded copy is not a failure");
    assert!(!remote.join("config").exists() || snapshots(&remote) == 0);
    // Under the gate the repository's write lock is free of the copy.
    drop(Repository::open(&repo, &OpenOptions::default()).expect("the snapshot's lock"));
    drop(raised);
    c.copy_once_for_test(0);
    match rx.try_recv() {
        Ok(WatchEvent::CopyDone { copied, .. }) => assert_eq!(copied, 1),
        other => panic!("expected the copy to finish: {other:?}"),
    }
    assert_eq!(snapshots(&remote), 1);
}

#[test]
fn a_remote_that_is_the_repository_or_no_location_is_refused_at_start() {
    let (_dir, db, repo) = setup();
    let mut opts = WatchOptions::new(
        Location::Local(repo.clone()),
        OpenOptions::default(),
        vec![WatchedDatabase::new(
            &db,
            Schedule::Every(Interval(Duration::from_secs(60))),
        )],
    );
    opts.remotes = vec![repo.display().to_string()];
    let e = Watcher::start(opts).expect_err("refused");
    assert!(e.to_string().contains("is the repository itself"), "{e}");
}

/// The app holds the repository open (and its lock): the watcher's own open
/// is refused, and with the app's repository shared it snapshots in it.
#[test]
fn a_repository_the_app_holds_open_is_shared_with_the_watcher() {
    let (dir, db, repo) = setup();
    let held = Repository::open(&repo, &OpenOptions::default()).expect("open");
    let shared: SharedRepository = Arc::new(Mutex::new(Some(held)));
    let options = |shared: Option<SharedRepository>| {
        let mut d = WatchedDatabase::new(&db, Schedule::Manual);
        d.on_change = true;
        d.min_gap = Duration::ZERO;
        let open = OpenOptions {
            lock_wait: Duration::ZERO,
            ..OpenOptions::default()
        };
        let mut opts = WatchOptions::new(Location::Local(repo.clone()), open, vec![d]);
        opts.check_every = Duration::from_millis(20);
        opts.state_dir = Some(dir.path().join("state"));
        opts.shared = shared;
        opts
    };
    // Without it: the lock the app holds refuses the watcher.
    let (w, rx) = Watcher::start(options(None)).expect("start");
    let seen = until(&rx, |e| matches!(e, WatchEvent::Failure { .. }));
    assert!(
        matches!(seen.last(), Some(WatchEvent::Failure { operation, .. }) if operation == "open"),
        "{seen:?}"
    );
    w.stop().expect("stops");
    // Shared: the snapshot is taken in the app's repository.
    let (w, rx) = Watcher::start(options(Some(Arc::clone(&shared)))).expect("start");
    let seen = until(&rx, taken);
    assert!(
        !seen.iter().any(|e| matches!(e, WatchEvent::Failure { .. })),
        "{seen:?}"
    );
    w.stop().expect("stops");
    let mut slot = shared.lock().expect("not poisoned");
    let held = slot.as_mut().expect("still open");
    assert_eq!(held.list().expect("list").len(), 1);
    // Closed by the app: the watcher opens its own again.
    *slot = None;
    drop(slot);
    write(&db, "c");
    let (w, rx) = Watcher::start(options(Some(Arc::clone(&shared)))).expect("start");
    until(&rx, taken);
    w.stop().expect("stops");
    assert_eq!(snapshots(&repo), 2);
}

/// Stopped while the app holds its shared repository (a long command): the
/// watcher stops within its wait and reports no failure.
#[test]
fn a_stop_while_waiting_for_the_shared_repository_is_no_failure() {
    let (dir, db, repo) = setup();
    let held = Repository::open(&repo, &OpenOptions::default()).expect("open");
    let shared: SharedRepository = Arc::new(Mutex::new(Some(held)));
    let busy = shared.lock().expect("not poisoned");
    let mut d = WatchedDatabase::new(&db, Schedule::Manual);
    d.on_change = true;
    let mut opts = WatchOptions::new(
        Location::Local(repo.clone()),
        OpenOptions::default(),
        vec![d],
    );
    opts.check_every = Duration::from_millis(20);
    opts.state_dir = Some(dir.path().join("state"));
    opts.shared = Some(Arc::clone(&shared));
    let (w, rx) = Watcher::start(opts).expect("start");
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    w.stop().expect("stops");
    assert!(started.elapsed() < Duration::from_secs(2));
    drop(busy);
    let events: Vec<_> = rx.iter().collect();
    assert!(
        matches!(
            &events[..],
            [WatchEvent::Started { .. }, WatchEvent::Stopped { .. }]
        ),
        "{events:?}"
    );
}
