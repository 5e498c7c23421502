//! Issue #3: an encrypted repository reveals nothing but sizes, refuses a wrong
//! passphrase without touching any file, detects every altered sealed object, and
//! manages several passphrases by rewriting key files only.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;

const PW: &str = "correct horse battery staple";

fn enc(dir: &TestDir) -> Lb {
    dir.lb().env("LUMINA_BACKUP_PASSWORD", PW)
}

fn init_encrypted(dir: &TestDir) {
    enc(dir).args(["init", "--encrypt"]).ok();
}

/// Every file under `root` with its bytes (for "nothing changed" checks).
fn contents(root: &Path) -> BTreeMap<String, Vec<u8>> {
    files_under(root)
        .into_iter()
        .map(|p| {
            let rel = p
                .strip_prefix(root)
                .expect("under root")
                .to_string_lossy()
                .into_owned();
            let bytes = std::fs::read(&p).expect("read");
            (rel, bytes)
        })
        .collect()
}

fn lumina_with_secret(dir: &TestDir, secret: &str) -> std::path::PathBuf {
    let db = dir.path("lumina.db");
    create_lumina(&db, 300, 5);
    let c = open(&db);
    c.execute(
        "UPDATE metadata SET aiDescription = ?1 WHERE id = (SELECT min(id) FROM metadata)",
        [secret],
    )
    .expect("update");
    c.execute(
        "INSERT INTO collections VALUES ('col-secret', ?1, 1, 2, 0)",
        [secret],
    )
    .expect("insert");
    db
}

#[test]
fn distinctive_strings_appear_in_no_byte_of_the_repository() {
    let dir = TestDir::new("enc-leak");
    init_encrypted(&dir);
    let secret = "ZebraQuokka-7731-distinctive";
    let db = lumina_with_secret(&dir, secret);
    enc(&dir)
        .args(["snapshot"])
        .arg(&db)
        .args(["--tag", "TagMarker-5521", "--note", "NoteMarker-9917"])
        .ok();
    touch_metadata_rows(&db, 5, 9);
    enc(&dir).args(["snapshot"]).arg(&db).ok();
    // The exports and the image hold the secret in plaintext; the repository must not.
    let needles: [&[u8]; 5] = [
        secret.as_bytes(),
        b"TagMarker-5521",
        b"NoteMarker-9917",
        b"IMG_0000",
        b"SQLite format 3",
    ];
    for (name, bytes) in contents(&dir.repo()) {
        for n in needles {
            assert!(
                !bytes.windows(n.len()).any(|w| w == n),
                "{} found in repository file {name}",
                String::from_utf8_lossy(n)
            );
        }
    }
    // And it still round-trips.
    let out = dir.path("restored.db");
    enc(&dir).args(["restore", "latest", "--to"]).arg(&out).ok();
    assert_eq!(dump(&out), dump(&db));
    let show = enc(&dir).args(["show", "latest"]).json();
    assert_eq!(show["encrypted"], serde_json::json!(true));
}

#[test]
fn wrong_or_missing_passphrase_changes_nothing() {
    let dir = TestDir::new("enc-wrong");
    init_encrypted(&dir);
    let db = dir.path("a.db");
    create_lumina(&db, 50, 1);
    enc(&dir).args(["snapshot"]).arg(&db).ok();
    let before = contents(&dir.repo());

    let r = dir
        .lb()
        .env("LUMINA_BACKUP_PASSWORD", "not it")
        .args(["snapshot"])
        .arg(&db)
        .run();
    r.expect_code(2).expect_one_stderr_line();
    assert!(r.stderr.contains("wrong passphrase"), "{}", r.stderr);

    // No passphrase and no terminal (stdin is /dev/null): fail at once, never hang.
    let r = dir.lb().args(["snapshots"]).run();
    r.expect_code(2).expect_one_stderr_line();
    assert!(r.stderr.contains("encrypted"), "{}", r.stderr);

    let pwfile = dir.path("pw.txt");
    std::fs::write(&pwfile, "also wrong\n").expect("write");
    dir.lb()
        .arg("--password-file")
        .arg(&pwfile)
        .args(["verify"])
        .run()
        .expect_code(2);

    assert_eq!(
        contents(&dir.repo()),
        before,
        "a refused command changed repository files"
    );

    // The right passphrase from a file (first line) works.
    std::fs::write(&pwfile, format!("{PW}\n")).expect("write");
    dir.lb()
        .arg("--password-file")
        .arg(&pwfile)
        .args(["verify"])
        .ok();
}

#[test]
fn every_altered_sealed_object_is_detected_and_named() {
    let dir = TestDir::new("enc-tamper");
    init_encrypted(&dir);
    let db = dir.path("a.db");
    create_lumina(&db, 200, 2);
    let id = id_of(&enc(&dir).args(["snapshot"]).arg(&db).json());
    let pristine = contents(&dir.repo());
    let pack = pack_files(&dir.repo()).into_iter().next().expect("a pack");
    let len = std::fs::metadata(&pack).expect("meta").len() as usize;

    // Flip bytes at spread positions of the pack (frames, description, trailer).
    for pos in [20, len / 3, len / 2, len - 100, len - 10] {
        let mut bytes = pristine[&pack
            .strip_prefix(dir.repo())
            .expect("rel")
            .to_string_lossy()
            .into_owned()]
            .clone();
        bytes[pos] ^= 0x40;
        std::fs::write(&pack, &bytes).expect("write");
        let r = enc(&dir).args(["verify", "--read-data"]).run();
        r.expect_code(3);
        let name = pack
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        assert!(
            r.out().contains(&name) || r.out().contains(&name[..12]),
            "flip at {pos}: {}",
            r.out()
        );
        // Frames sit before the (small) description: restore needs them and must
        // refuse. Damage in the description or trailer is verify's to report; a
        // restore that authenticates every frame it reads is still correct.
        if pos <= len / 2 {
            let target = dir.path(&format!("r-{pos}.db"));
            let r = enc(&dir).args(["restore", &id, "--to"]).arg(&target).run();
            assert_eq!(
                r.code,
                Some(1),
                "restore accepted a damaged frame (flip at {pos}): {}",
                r.stderr
            );
            assert!(!target.exists(), "restore left a file behind");
        }
    }
    // Restore the pack; damage the snapshot record instead.
    let rel = pack
        .strip_prefix(dir.repo())
        .expect("rel")
        .to_string_lossy()
        .into_owned();
    std::fs::write(&pack, &pristine[&rel]).expect("write");
    enc(&dir).args(["verify", "--read-data"]).ok();
    let snap = dir.repo().join("snapshots").join(&id);
    let mut bytes = std::fs::read(&snap).expect("read");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&snap, &bytes).expect("write");
    let r = enc(&dir).args(["verify"]).run();
    r.expect_code(3);
    assert!(r.out().contains(&id[..12]), "{}", r.out());
}

#[test]
fn plaintext_config_in_an_encrypted_repository_is_refused() {
    let dir = TestDir::new("enc-downgrade");
    init_encrypted(&dir);
    let other = TestDir::new("enc-downgrade-plain");
    other.init();
    std::fs::copy(other.repo().join("config"), dir.repo().join("config")).expect("copy");
    let r = dir.lb().args(["snapshots"]).run();
    assert_ne!(r.code, Some(0));
    assert!(r.stderr.contains("key files"), "{}", r.stderr);
}

#[test]
fn key_add_remove_passwd_round_trip_and_rewrite_only_key_files() {
    let dir = TestDir::new("enc-keys");
    init_encrypted(&dir);
    let db = dir.path("a.db");
    create_lumina(&db, 50, 3);
    enc(&dir).args(["snapshot"]).arg(&db).ok();

    let added = enc(&dir)
        .env("LUMINA_BACKUP_NEW_PASSWORD", "second")
        .args(["key", "add", "--label", "laptop"])
        .json();
    let second_id = added["added"].as_str().expect("id").to_string();
    let keys = dir
        .lb()
        .env("LUMINA_BACKUP_PASSWORD", "second")
        .args(["key", "list"])
        .json();
    assert_eq!(keys.as_array().expect("array").len(), 2);
    let first_id = keys
        .as_array()
        .expect("array")
        .iter()
        .find(|k| k["id"] != serde_json::json!(second_id))
        .expect("first key")["id"]
        .as_str()
        .expect("id")
        .to_string();

    // Both passphrases open it.
    enc(&dir).args(["snapshots"]).ok();
    dir.lb()
        .env("LUMINA_BACKUP_PASSWORD", "second")
        .args(["snapshots"])
        .ok();

    // The key in use cannot be removed; another one can; the last one never.
    enc(&dir)
        .args(["key", "remove", &first_id])
        .run()
        .expect_code(2);
    enc(&dir).args(["key", "remove", &second_id]).ok();
    dir.lb()
        .env("LUMINA_BACKUP_PASSWORD", "second")
        .args(["snapshots"])
        .run()
        .expect_code(2);

    // passwd: only keys/ changes; the old passphrase stops working.
    let before: BTreeMap<_, _> = contents(&dir.repo())
        .into_iter()
        .filter(|(k, _)| !k.starts_with("keys/") && k != "lock" && k != "index.redb")
        .collect();
    enc(&dir)
        .env("LUMINA_BACKUP_NEW_PASSWORD", "third")
        .args(["key", "passwd"])
        .ok();
    let after: BTreeMap<_, _> = contents(&dir.repo())
        .into_iter()
        .filter(|(k, _)| !k.starts_with("keys/") && k != "lock" && k != "index.redb")
        .collect();
    assert_eq!(
        before, after,
        "key passwd changed files other than key files"
    );
    enc(&dir).args(["snapshots"]).run().expect_code(2);
    let third = dir.lb().env("LUMINA_BACKUP_PASSWORD", "third");
    let keys = third.args(["key", "list"]).json();
    assert_eq!(keys.as_array().expect("array").len(), 1);
    dir.lb()
        .env("LUMINA_BACKUP_PASSWORD", "third")
        .args(["key", "remove", &keys[0]["id"].as_str().expect("id")[..8]])
        .run()
        .expect_code(2);
    let out = dir.path("restored.db");
    dir.lb()
        .env("LUMINA_BACKUP_PASSWORD", "third")
        .args(["restore", "latest", "--to"])
        .arg(&out)
        .ok();
    assert_eq!(dump(&out), dump(&db));
}

#[test]
fn unencrypted_repositories_have_no_keys() {
    let dir = TestDir::new("enc-plain");
    dir.init();
    let db = dir.path("a.db");
    create_lumina(&db, 20, 3);
    dir.lb().args(["snapshot"]).arg(&db).ok();
    assert_eq!(
        dir.lb().args(["show", "latest"]).json()["encrypted"],
        serde_json::json!(false)
    );
    dir.lb().args(["key", "list"]).run().expect_code(2);
}
