//! Invariant: bad usage and bad input fail cleanly with the contract's exit code
//! (2) and exactly one line on stderr saying what is wrong, and change nothing;
//! a repository held by another process makes a command wait `--lock-wait`
//! seconds, then fail naming the holder.

mod common;

use std::time::{Duration, Instant};

use common::*;

fn repo_with_one_snapshot(name: &str) -> (TestDir, String) {
    let t = TestDir::new(name);
    t.init();
    let db = t.path("lumina.db");
    create_lumina(&db, 200, 1);
    let id = id_of(&t.lb().args(["snapshot"]).arg(&db).json());
    (t, id)
}

#[test]
fn snapshot_of_something_that_is_not_a_database_is_bad_input() {
    let (t, _) = repo_with_one_snapshot("not-sqlite");
    let text = t.path("notes.txt");
    std::fs::write(&text, "this is not a database\n".repeat(100)).expect("write");
    let empty = t.path("empty.db");
    std::fs::write(&empty, b"").expect("write");
    let fake = t.path("fake.db");
    let mut bytes = b"SQLite format 3\0".to_vec();
    bytes.extend(std::iter::repeat_n(0xffu8, 8192));
    std::fs::write(&fake, &bytes).expect("write");
    let before = list_ids(&t);
    for (what, path) in [
        ("a text file", text.clone()),
        ("an empty file", empty.clone()),
        ("a missing path", t.path("missing.db")),
        ("a folder", t.root().to_path_buf()),
        ("a file with a SQLite header and garbage", fake.clone()),
    ] {
        let r = t.lb().args(["snapshot"]).arg(&path).run();
        assert_eq!(
            r.code,
            Some(2),
            "{what}: exit {:?}, stderr {}",
            r.code,
            r.stderr
        );
        r.expect_one_stderr_line();
        assert!(
            r.stderr.contains(&*path.to_string_lossy()),
            "{what}: the message names the path: {}",
            r.stderr
        );
    }
    assert!(
        !t.path("missing.db").exists(),
        "snapshot created the missing database"
    );
    assert_eq!(
        std::fs::read(&empty).expect("empty").len(),
        0,
        "the empty file was written"
    );
    assert_eq!(
        list_ids(&t),
        before,
        "a failed snapshot changed the repository"
    );
    t.lb().args(["verify"]).ok();
}

#[test]
fn bad_snapshot_ids_are_bad_input() {
    let (t, id) = repo_with_one_snapshot("bad-ids");
    let unknown: String = id[..8]
        .chars()
        .map(|c| if c == '0' { '1' } else { '0' })
        .collect();
    for spec in [&id[..5], "abc", "zzzzzzzz", unknown.as_str(), "latest-ish"] {
        for args in [
            vec!["show", spec],
            vec!["cat", spec, "lumina.db"],
            vec!["restore", spec, "--to", "x.db"],
        ] {
            let r = t.lb().args(&args).run();
            assert_eq!(r.code, Some(2), "{args:?}: exit {:?}: {}", r.code, r.stderr);
            r.expect_one_stderr_line();
        }
    }
    assert!(!t.path("x.db").exists() && !t.root().join("x.db").exists());
    // A 6-character prefix and an upper-case one are accepted.
    t.lb().args(["show", &id[..6]]).ok();
    t.lb().args(["show", &id[..8].to_uppercase()]).ok();

    let r = t.lb().args(["cat", &id, "nosuchfile"]).run();
    r.expect_code(2).expect_one_stderr_line();
    assert!(r.stderr.contains("nosuchfile"), "{}", r.stderr);
    assert!(
        r.stdout.is_empty(),
        "nothing is written to stdout on failure"
    );
}

#[test]
fn empty_repository_has_no_latest() {
    let t = TestDir::new("empty-repo");
    t.init();
    let list = t.lb().args(["snapshots"]).json();
    assert_eq!(list, serde_json::json!([]));
    for args in [vec!["show", "latest"], vec!["restore", "--to", "x.db"]] {
        t.lb()
            .args(&args)
            .run()
            .expect_code(2)
            .expect_one_stderr_line();
    }
}

#[test]
fn init_twice_fails_and_keeps_the_repository() {
    let (t, id) = repo_with_one_snapshot("init-twice");
    let config = std::fs::read(t.repo().join("config")).expect("config");
    let r = t.lb().args(["init"]).run();
    assert_ne!(r.code, Some(0), "a second init must fail");
    r.expect_one_stderr_line();
    assert_eq!(
        std::fs::read(t.repo().join("config")).expect("config"),
        config
    );
    assert_eq!(list_ids(&t), vec![id]);
    // A file where the repository folder should be.
    let file = t.path("plain-file");
    std::fs::write(&file, b"x").expect("write");
    let r = Lb::new(&file, t.root()).args(["init"]).run();
    assert_ne!(r.code, Some(0));
    r.expect_one_stderr_line();
}

#[test]
fn commands_on_a_missing_repository_are_bad_input() {
    let t = TestDir::new("no-repo");
    let db = t.path("lumina.db");
    create_lumina(&db, 50, 1);
    let empty_dir = t.path("empty-dir");
    std::fs::create_dir(&empty_dir).expect("mkdir");
    let missing = t.path("missing-repo");
    for repo in [&missing, &empty_dir] {
        let db_s = db.to_string_lossy().into_owned();
        let argss: [Vec<&str>; 8] = [
            vec!["snapshot", &db_s],
            vec!["snapshots"],
            vec!["show", "latest"],
            vec!["cat", "latest", "lumina.db"],
            vec!["restore", "--to", "out.db"],
            vec!["verify"],
            vec!["verify", "--read-data"],
            vec!["repair", "index"],
        ];
        for args in argss {
            let r = Lb::new(repo, t.root()).args(&args).run();
            assert_eq!(
                r.code,
                Some(2),
                "{args:?} on {}: {}",
                repo.display(),
                r.stderr
            );
            r.expect_one_stderr_line();
            assert!(
                r.stderr.contains("init"),
                "the message says what to do: {}",
                r.stderr
            );
        }
    }
    assert!(
        !missing.exists(),
        "a command created the missing repository"
    );
    assert_eq!(std::fs::read_dir(&empty_dir).expect("ls").count(), 0);
}

#[test]
fn usage_errors_exit_2() {
    let (t, _) = repo_with_one_snapshot("usage");
    for args in [
        vec!["frobnicate"],
        vec!["restore", "latest"],
        vec!["snapshot", "--no-such-flag"],
        vec!["cat", "latest"],
    ] {
        let r = t.lb().args(&args).run();
        assert_eq!(r.code, Some(2), "{args:?}: {}", r.stderr);
        assert!(!r.stderr.is_empty());
    }
}

#[test]
fn a_locked_repository_makes_others_wait_then_fail_naming_the_holder() {
    let (t, id) = repo_with_one_snapshot("lock");
    // An open repository holds its lock for its life.
    let lock = lumina_backup::Repository::open(
        &t.repo(),
        &lumina_backup::OpenOptions {
            purpose: "integration-test holder".into(),
            lock_wait: Duration::ZERO,
            ..Default::default()
        },
    )
    .expect("taking the lock");
    let start = Instant::now();
    let r = t.lb().args(["--lock-wait", "1", "snapshots"]).run();
    let waited = start.elapsed();
    assert_ne!(r.code, Some(0), "a locked repository must refuse");
    r.expect_one_stderr_line();
    let pid = format!("pid {}", std::process::id());
    assert!(
        r.stderr.contains(&pid),
        "the message names the holder ({pid}): {}",
        r.stderr
    );
    assert!(r.stderr.contains("integration-test holder"), "{}", r.stderr);
    assert!(
        waited >= Duration::from_millis(900),
        "it did not wait: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(8),
        "it waited too long: {waited:?}"
    );

    // A writer is refused too, and nothing changes.
    let db = t.path("lumina.db");
    let r = t.lb().args(["snapshot", "--lock-wait", "0"]).arg(&db).run();
    assert_ne!(r.code, Some(0));
    r.expect_one_stderr_line();

    // Released: the next command goes through.
    drop(lock);
    assert_eq!(list_ids(&t), vec![id]);
}
