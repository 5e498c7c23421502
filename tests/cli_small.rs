//! Small CLI behaviours of issue #8 that a user meets first: `demo` never touches
//! existing files (item 5), a missing passphrase is named with where to give it
//! (item 20), and item 32's JSON errors, empty password files, Unicode passphrase
//! normalisation and the warning for a passphrase given to an unencrypted
//! repository.

mod common;

use common::*;

/// Issue #8 item 5: `demo --dir` refuses a folder that already holds files and
/// leaves them exactly as they were.
#[test]
fn demo_refuses_a_folder_that_is_not_empty() {
    let t = TestDir::new("demo-nonempty");
    let dir = t.path("mine");
    std::fs::create_dir(&dir).unwrap();
    let db = dir.join("lumina.db");
    create_lumina(&db, 50, 1);
    let before = blake3_file(&db);
    let r = t.lb().arg("demo").arg("--dir").arg(&dir).run();
    r.expect_code(2).expect_one_stderr_line();
    assert!(r.stderr.contains("not empty"), "{}", r.stderr);
    assert_eq!(blake3_file(&db), before, "the user's database was changed");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
}

/// Issue #8 item 5: a new or empty folder is used as before.
#[test]
fn demo_uses_an_empty_folder() {
    let t = TestDir::new("demo-empty");
    let dir = t.path("empty");
    std::fs::create_dir(&dir).unwrap();
    t.lb().arg("demo").arg("--dir").arg(&dir).ok();
    assert!(dir.join("lumina.db").exists());
}

/// Issue #8 item 20: `init --encrypt` without a passphrase says which passphrase
/// is missing and where to give it, not that an absent repository "is encrypted".
#[test]
fn init_encrypt_without_passphrase_names_the_missing_passphrase() {
    let t = TestDir::new("init-nopw");
    let r = t.lb().args(["init", "--encrypt"]).run();
    r.expect_code(2).expect_one_stderr_line();
    assert!(
        !r.stderr.contains("is encrypted"),
        "misleading message: {}",
        r.stderr
    );
    assert!(r.stderr.contains("LUMINA_BACKUP_PASSWORD"), "{}", r.stderr);
    assert!(r.stderr.contains("--password-file"), "{}", r.stderr);
    assert!(!t.repo().join("config").exists());
}

/// Issue #8 item 20: `key passwd` with the current passphrase given but no new
/// one asks for the NEW one, naming where to give it.
#[test]
fn key_passwd_without_new_passphrase_names_the_new_one() {
    let t = TestDir::new("passwd-nonew");
    t.lb()
        .args(["init", "--encrypt"])
        .env("LUMINA_BACKUP_PASSWORD", "current pass")
        .ok();
    let r = t
        .lb()
        .args(["key", "passwd"])
        .env("LUMINA_BACKUP_PASSWORD", "current pass")
        .run();
    r.expect_code(2).expect_one_stderr_line();
    assert!(r.stderr.contains("new passphrase"), "{}", r.stderr);
    assert!(
        r.stderr.contains("LUMINA_BACKUP_NEW_PASSWORD"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("--new-password-file"), "{}", r.stderr);
}

/// Issue #8 item 32: with `--json`, a failure prints `{"error": ...}` on stdout
/// (besides the stderr line) so a script parsing stdout sees what failed.
#[test]
fn json_failures_print_an_error_document() {
    let t = TestDir::new("json-error");
    t.init();
    let r = t.lb().args(["show", "abcdef", "--json"]).run();
    r.expect_code(2).expect_one_stderr_line();
    let v = r.json();
    let msg = v["error"].as_str().expect("an error string");
    assert!(msg.contains("abcdef"), "{msg}");
    assert_eq!(v["exit_code"], 2);
    // Usage errors (clap) too.
    let r = t.lb().args(["snapshots", "--json", "--no-such-flag"]).run();
    r.expect_code(2);
    assert!(r.json()["error"].is_string());
}

/// Issue #8 item 32: an empty password file is named as empty, not as a wrong
/// passphrase.
#[test]
fn empty_password_file_is_named_empty() {
    let t = TestDir::new("pw-empty");
    t.lb()
        .args(["init", "--encrypt"])
        .env("LUMINA_BACKUP_PASSWORD", "pass")
        .ok();
    let r = t
        .lb()
        .args(["snapshots", "--password-file", "/dev/null"])
        .run();
    r.expect_code(2).expect_one_stderr_line();
    assert!(r.stderr.contains("empty"), "{}", r.stderr);
    assert!(!r.stderr.contains("wrong passphrase"), "{}", r.stderr);
}

/// Issue #8 item 32: a passphrase typed in Unicode NFD (as macOS produces) opens
/// a repository created with the NFC form, and the other way round.
#[test]
fn unicode_passphrase_forms_are_equivalent() {
    let nfc = "caf\u{e9} cr\u{e8}me";
    let nfd = "cafe\u{301} cre\u{300}me";
    assert_ne!(nfc, nfd);
    let t = TestDir::new("pw-nfd");
    t.lb()
        .args(["init", "--encrypt"])
        .env("LUMINA_BACKUP_PASSWORD", nfc)
        .ok();
    t.lb()
        .arg("snapshots")
        .env("LUMINA_BACKUP_PASSWORD", nfd)
        .ok();
    let t2 = TestDir::new("pw-nfd2");
    t2.lb()
        .args(["init", "--encrypt"])
        .env("LUMINA_BACKUP_PASSWORD", nfd)
        .ok();
    t2.lb()
        .arg("snapshots")
        .env("LUMINA_BACKUP_PASSWORD", nfc)
        .ok();
}

/// Issue #8 item 32: a passphrase given for an unencrypted repository is not
/// ignored silently: a warning says it was not used.
#[test]
fn passphrase_for_unencrypted_repository_warns() {
    let t = TestDir::new("pw-plain");
    t.init();
    let r = t
        .lb()
        .arg("snapshots")
        .env("LUMINA_BACKUP_PASSWORD", "unused")
        .ok();
    assert!(
        r.stderr.contains("not encrypted") && r.stderr.contains("ignored"),
        "{}",
        r.stderr
    );
    let pw = t.path("pw");
    std::fs::write(&pw, "unused\n").unwrap();
    let r = t.lb().arg("snapshots").arg("--password-file").arg(&pw).ok();
    assert!(r.stderr.contains("not encrypted"), "{}", r.stderr);
}

/// Third review: `show` called a format-2 chunk-list digest "blake3", which a
/// user compares with `b3sum` of the restored file and takes for corruption.
/// It now says which checksum it prints, by the repository's format.
#[test]
fn show_labels_the_checksum_by_format() {
    let t = TestDir::new("show-checksum-kind");
    t.init();
    let db = t.path("app.db");
    make_db(&db, "one");
    let id = id_of(&t.lb().arg("snapshot").arg(&db).json());
    let text = t.lb().args(["show", &id]).ok().out();
    assert!(text.contains("not comparable with b3sum"), "{text}");
    assert!(text.contains(" digest "), "{text}");
    assert!(!text.contains(" blake3 "), "{text}");
    let doc = t.lb().args(["show", &id]).json();
    assert_eq!(doc["checksum_kind"], "chunk-list-v2", "{doc}");
    assert_eq!(doc["format_version"], 2, "{doc}");

    // A format-1 repository (the fixture) keeps the whole file's BLAKE3.
    let old = TestDir::new("show-checksum-kind-v1");
    copy_tree(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format-1/plain"),
        &old.repo(),
    );
    let list = old.lb().arg("snapshots").json();
    let first = list[0]["id"].as_str().expect("an id").to_string();
    let text = old.lb().args(["show", &first]).ok().out();
    assert!(text.contains(" blake3 "), "{text}");
    assert!(!text.contains("b3sum"), "{text}");
    let doc = old.lb().args(["show", &first]).json();
    assert_eq!(doc["checksum_kind"], "blake3", "{doc}");
    assert_eq!(doc["format_version"], 1, "{doc}");
}
