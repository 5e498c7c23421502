use std::error::Error as _;
use std::time::Duration;

use super::*;
use crate::crypto::KdfParams;
use crate::repo::{InitOptions, OpenOptions, Repository};

const WEAK: KdfParams = KdfParams {
    m_cost_kib: 8 * 1024,
    t_cost: 1,
    p_cost: 1,
};

fn encrypted_repo(dir: &Path) -> PathBuf {
    let repo = dir.join("repo");
    let opts = InitOptions {
        passphrase: Some(zeroize::Zeroizing::new("right".to_string())),
        kdf: WEAK,
        force: false,
        zstd_level: None,
    };
    Repository::init_with(&repo, &opts).expect("init");
    repo
}

fn open_with(repo: &Path, passphrase: Option<&str>) -> Result<Repository> {
    let opts = OpenOptions {
        passphrase: passphrase.map(|p| zeroize::Zeroizing::new(p.to_string())),
        ..OpenOptions::default()
    };
    Repository::open(repo, &opts)
}

/// Issue #9: internal failures (clock, a panicked worker) are not "bad
/// input", and the kinds say which is which.
#[test]
fn internal_failures_are_not_bad_input() {
    let e = Error::internal("the clock is out of range");
    assert_eq!(e.kind(), ErrorKind::Internal);
    assert!(!e.is_user_error());
    assert!(e.to_string().starts_with("internal error: the clock"));
    let e = Error::invalid_input("x");
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.is_user_error());
    assert!(Error::refused("x").is_user_error());
}

#[test]
fn wrong_passphrase_and_missing_passphrase() {
    let dir = tempfile::tempdir().expect("tempdir");
    let repo = encrypted_repo(dir.path());
    let e = open_with(&repo, Some("wrong")).expect_err("wrong passphrase");
    assert!(e.is_wrong_password(), "{e}");
    assert_eq!(e.kind(), ErrorKind::WrongPassword);
    assert_eq!(e.path(), Some(repo.as_path()));
    let e = open_with(&repo, None).expect_err("no passphrase");
    assert!(e.is_passphrase_required(), "{e}");
    assert!(open_with(&repo, Some("right")).is_ok());
}

#[test]
fn not_a_database_and_not_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "just some words, not a database at all").expect("write");
    let e = crate::sqlite::check_database_file(&text).expect_err("not sqlite");
    assert!(e.is_not_a_database(), "{e}");
    assert_eq!(e.path(), Some(text.as_path()));
    let e = open_with(&dir.path().join("nothing"), None).expect_err("no repository");
    assert_eq!(e.kind(), ErrorKind::NoRepository);
    assert!(e.is_not_found());
}

#[test]
fn a_held_lock_is_locked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("lock");
    let _held = crate::lock::RepoLock::acquire(&path, "test", Duration::ZERO).expect("first");
    let e = crate::lock::RepoLock::acquire(&path, "second", Duration::ZERO).expect_err("held");
    assert!(e.is_locked(), "{e}");
    assert!(!e.is_user_error());
}

#[test]
fn redb_io_and_sqlite_errors_keep_their_source() {
    let dir = tempfile::tempdir().expect("tempdir");
    let garbage = dir.path().join("index.redb");
    std::fs::write(&garbage, vec![0x5a; 4096]).expect("write");
    let redb_err = redb::Database::create(&garbage).expect_err("not a redb file");
    let e = Error::from(redb_err);
    assert_eq!(e.kind(), ErrorKind::Index);
    assert!(e.is_index_damage());
    let source = e.source().expect("redb source kept");
    assert!(source.downcast_ref::<redb::Error>().is_some(), "{source:?}");

    let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied");
    let e = Error::io("reading", "/x", io);
    assert_eq!(e.kind(), ErrorKind::Io);
    assert!(e
        .source()
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .is_some());

    let sq = rusqlite::Connection::open_in_memory()
        .expect("open")
        .execute_batch("SELEC 1")
        .expect_err("syntax");
    let e = Error::sqlite("/db", sq);
    assert_eq!(e.kind(), ErrorKind::Sqlite);
    assert!(e
        .source()
        .and_then(|s| s.downcast_ref::<rusqlite::Error>())
        .is_some());
}

#[test]
fn cancelled_snapshots_and_no_space_have_kinds() {
    let e = Error::from(Repr::SnapshotNotRecorded {
        cause: StopCause::Cancelled,
        partial: PartialData::Left(1 << 20),
    });
    assert!(e.is_cancelled());
    assert_eq!(e.partial_data(), Some(PartialData::Left(1 << 20)));
    let e = Error::from(Repr::SnapshotNotRecorded {
        cause: StopCause::NoSpace("/r/packs/ab".into()),
        partial: PartialData::None,
    });
    assert!(e.is_no_space());
    assert_eq!(e.path(), Some(Path::new("/r/packs/ab")));
    assert!(Error::from(Repr::Cancelled).is_cancelled());
}

/// Issue #9: library messages name no command, flag or environment variable.
#[test]
fn messages_name_no_cli_words() {
    let all: Vec<Error> = vec![
        Repr::NoRepository("/r".into()).into(),
        Repr::PassphraseRequired("/r".into()).into(),
        Repr::WrongPassphrase("/r".into()).into(),
        Repr::UnknownSnapshot("abcd".into()).into(),
        Repr::MissingChunk("ab".repeat(32)).into(),
        Error::index("bad entry"),
        Repr::TooNew {
            object: "config".into(),
            found: 9,
            supported: 1,
        }
        .into(),
        Repr::InUse {
            path: "/db".into(),
            holders: "pid 1 (app)".into(),
        }
        .into(),
        Repr::SnapshotNotRecorded {
            cause: StopCause::Cancelled,
            partial: PartialData::Left(5 << 20),
        }
        .into(),
        Error::corrupt("pack 3fa9", "bad frame"),
        Error::corrupt("retention settings", "bad frame"),
        Error::corrupt("key file keys/ab12", "bad frame"),
        Error::corrupt("config", "bad frame"),
    ];
    for e in all {
        let m = e.to_string();
        assert!(
            !m.contains("lumina-backup ") && !m.contains("--") && !m.contains("LUMINA_"),
            "{m}"
        );
    }
}

/// An app moves errors across threads (async commands, anyhow).
#[test]
fn error_is_send_sync_and_static() {
    fn check<T: Send + Sync + 'static + std::error::Error>() {}
    check::<Error>();
}
