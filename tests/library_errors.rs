//! Library-level errors (issue #9): an app reads kinds and accessors, not
//! strings, and no message speaks CLI (no command, flag or environment
//! variable). The CLI still adds its advice (checked through the binary).

mod common;

use std::error::Error as _;
use std::path::Path;

use common::{create_lumina, TestDir};
use lumina_backup::KdfParams;
use lumina_backup::{
    Error, ErrorKind, InitOptions, NoProgress, OpenOptions, Repository, SnapshotOptions,
};

fn no_cli_words(e: &Error) {
    let m = e.to_string();
    assert!(
        !m.contains("lumina-backup ") && !m.contains("--") && !m.contains("LUMINA_"),
        "a library message names the CLI: {m}"
    );
}

fn open(repo: &Path, passphrase: Option<&str>) -> Result<Repository, Error> {
    let opts = OpenOptions {
        passphrase: passphrase.map(|p| zeroize::Zeroizing::new(p.to_string())),
        ..OpenOptions::default()
    };
    Repository::open(repo, &opts)
}

#[test]
fn wrong_passphrase_not_a_database_and_unknown_snapshot() {
    let t = TestDir::new("lib-errors");
    let repo = t.repo();
    let init = InitOptions {
        passphrase: Some(zeroize::Zeroizing::new("right".to_string())),
        kdf: KdfParams {
            m_cost_kib: 8 * 1024,
            t_cost: 1,
            p_cost: 1,
        },
        force: false,
        zstd_level: None,
    };
    Repository::init_with(&repo, &init).expect("init");

    let e = open(&repo, Some("wrong")).expect_err("wrong passphrase");
    assert!(e.is_wrong_password(), "{e}");
    assert_eq!(e.kind(), ErrorKind::WrongPassword);
    assert!(e.is_user_error());
    no_cli_words(&e);

    let e = open(&repo, None).expect_err("no passphrase");
    assert_eq!(e.kind(), ErrorKind::PassphraseRequired);
    no_cli_words(&e);

    let mut r = open(&repo, Some("right")).expect("open");
    let text = t.path("notes.db");
    std::fs::write(&text, "these are notes, not a SQLite database at all\n").expect("write");
    let e = r
        .snapshot(&text, &SnapshotOptions::default(), &NoProgress)
        .expect_err("not a database");
    assert!(e.is_not_a_database(), "{e}");
    assert_eq!(e.path(), Some(text.as_path()));
    no_cli_words(&e);

    let e = r.resolve("abcdef12").expect_err("unknown snapshot");
    assert_eq!(e.kind(), ErrorKind::UnknownSnapshot, "{e}");
    assert!(e.is_not_found());
    assert_eq!(e.snapshot(), Some("abcdef12"));
    no_cli_words(&e);

    // A real database gives a snapshot; a prefix of it resolves.
    let db = t.path("app.db");
    create_lumina(&db, 20, 1);
    let s = r
        .snapshot(&db, &SnapshotOptions::default(), &NoProgress)
        .expect("snapshot");
    let id = s.snapshot.id.to_hex();
    assert!(r.resolve(&id[..8]).is_ok());
}

#[test]
fn a_held_lock_is_locked_and_io_keeps_its_source() {
    let t = TestDir::new("lib-errors-lock");
    Repository::init(&t.repo()).expect("init");
    let _held = open(&t.repo(), None).expect("first writer");
    let opts = OpenOptions {
        lock_wait: std::time::Duration::ZERO,
        ..OpenOptions::default()
    };
    let e = Repository::open(&t.repo(), &opts).expect_err("locked");
    assert!(e.is_locked(), "{e}");
    assert!(!e.is_user_error());
    no_cli_words(&e);

    let e = open(&t.path("nowhere"), None).expect_err("no repository");
    assert_eq!(e.kind(), ErrorKind::NoRepository);
    assert!(e.source().is_none());
    no_cli_words(&e);
}

/// The CLI keeps its advice: the library's message plus the command to run.
#[test]
fn the_cli_adds_the_advice() {
    let t = TestDir::new("cli-advice");
    let r = t.lb().args(["snapshots"]).run();
    r.expect_code(2);
    assert!(r.stderr.contains("no repository at"), "{}", r.stderr);
    assert!(r.stderr.contains("lumina-backup init"), "{}", r.stderr);
    t.init();
    let r = t.lb().args(["show", "abcdef12"]).run();
    r.expect_code(2);
    assert!(
        r.stderr
            .contains("no snapshot matches `abcdef12`; list them with `lumina-backup snapshots`"),
        "{}",
        r.stderr
    );
}

/// Issue #9 review: a missing database is "not found" and names its path; `latest`
/// of a database with no snapshot is an unknown snapshot (not invalid input), with
/// the remedy of taking one; the passphrase builder opens an encrypted repository;
/// a read-only open names what was refused without CLI words.
#[test]
fn missing_database_and_no_snapshot_of_it_are_not_found() {
    let t = TestDir::new("lib-not-found");
    let repo = t.repo();
    Repository::init_with(
        &repo,
        &InitOptions {
            kdf: KdfParams {
                m_cost_kib: 8 * 1024,
                t_cost: 1,
                p_cost: 1,
            },
            ..InitOptions::default()
        }
        .with_passphrase("pw"),
    )
    .expect("init");
    let mut r =
        Repository::open(&repo, &OpenOptions::default().with_passphrase("pw")).expect("open");
    let missing = t.path("nowhere.db");
    let e = r
        .snapshot(&missing, &SnapshotOptions::default(), &NoProgress)
        .expect_err("missing database");
    assert_eq!(e.kind(), ErrorKind::NoSuchDatabase, "{e}");
    assert!(e.is_not_found() && e.is_user_error(), "{e}");
    assert_eq!(e.path(), Some(missing.as_path()));
    no_cli_words(&e);

    let db = t.path("app.db");
    create_lumina(&db, 20, 1);
    let e = r.resolve_in("latest", Some(&db)).expect_err("none yet");
    assert_eq!(e.kind(), ErrorKind::UnknownSnapshot, "{e}");
    assert!(e.is_not_found(), "{e}");
    assert!(e.remedy().is_some(), "{e}");
    no_cli_words(&e);
    drop(r);

    let ro = Repository::open_read_only(&repo, &OpenOptions::default().with_passphrase("pw"))
        .expect("read-only open");
    let mut ro = ro;
    let e = ro
        .snapshot(&db, &SnapshotOptions::default(), &NoProgress)
        .expect_err("read-only");
    assert_eq!(e.kind(), ErrorKind::ReadOnly, "{e}");
    assert!(!e.to_string().contains("this command"), "{e}");
    no_cli_words(&e);
}
