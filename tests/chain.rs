//! Issue #13: the history chain makes tampering with a repository's history
//! visible. Each case of the issue, on real repositories and files: a deleted
//! snapshot file, one replaced by another repository's, times edited to
//! reorder, hand-made records (plain and encrypted), a rollback (caught with
//! `--expect-head`) — `verify` exits 3 naming the record. Forged snapshots
//! never make `forget` remove a real one; `prune` frees no data of a snapshot
//! that vanished without `forget`; tag edits keep ids and the chain; a restore
//! drill catches an image only `integrity_check` finds corrupt; repositories
//! written before the chain still open, verify, restore and start a chain.

mod common;

use std::path::{Path, PathBuf};

use common::{id_of, make_db, set_value, TestDir};
use lumina_backup::__internals::format::{
    decode, encode_named, open_file, seal_file, FormatVersion, Kind,
};
use lumina_backup::SnapshotRecord;

const PW: &str = "chain test passphrase";

fn snapshot_file(repo: &Path, id: &str) -> PathBuf {
    repo.join("snapshots").join(id)
}

/// Takes a snapshot of `db` after changing its value to `v`; returns its id.
fn snap(t: &TestDir, db: &Path, v: &str) -> String {
    set_value(db, v);
    id_of(&t.lb().args(["snapshot"]).arg(db).json())
}

/// A plain repository with `n` snapshots of one database; returns the
/// database and the ids, oldest first.
fn history(t: &TestDir, n: usize) -> (PathBuf, Vec<String>) {
    t.init();
    let db = t.path("app.db");
    make_db(&db, "v0");
    let ids = (0..n)
        .map(|i| snap(t, &db, &format!("v{}", i + 1)))
        .collect();
    t.lb().args(["verify"]).ok();
    (db, ids)
}

/// The record of snapshot `id` (plain repository).
fn record(repo: &Path, id: &str) -> SnapshotRecord {
    let bytes = std::fs::read(snapshot_file(repo, id)).expect("read record");
    decode(open_file(&bytes, Kind::Snapshot).expect("open")).expect("decode")
}

/// Writes `rec` as a plain format-2 snapshot file under its own name, as
/// someone with write access to the folder could; returns its id.
fn write_record(repo: &Path, rec: &SnapshotRecord) -> String {
    let body = encode_named(rec);
    let id = hex::encode(blake3::hash(&body).as_bytes());
    let file = seal_file(FormatVersion::V2, Kind::Snapshot, &body);
    std::fs::write(snapshot_file(repo, &id), file).expect("write record");
    id
}

/// Runs `verify` with `extra` arguments, expects exit 3 and returns its output.
fn verify_fails(t: &TestDir, extra: &[&str]) -> String {
    let r = t.lb().arg("verify").args(extra).run();
    r.expect_code(3);
    r.out()
}

fn problem_naming<'a>(out: &'a str, id: &str, what: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with("problem: chain") && l.contains(id) && l.contains(what))
        .unwrap_or_else(|| panic!("no chain problem naming {id} ({what}):\n{out}"))
}

fn chain_head(t: &TestDir) -> String {
    t.lb().args(["status"]).json()["chain_head"]
        .as_str()
        .expect("a chain head")
        .to_string()
}

#[test]
fn a_clean_history_verifies_and_shows_its_head() {
    let t = TestDir::new("chain-clean");
    let (_, ids) = history(&t, 3);
    let head = chain_head(&t);
    assert_eq!(head, ids[2], "the newest snapshot is the head");
    let status = t.lb().args(["status"]).ok().out();
    assert!(
        status.contains(&format!("chain head: {}", &head[..16])),
        "{status}"
    );
    let r = t.lb().args(["verify", "--chain"]).ok().out();
    assert!(
        r.contains("chain head: ") && r.contains("(3 records)"),
        "{r}"
    );
    for (i, id) in ids.iter().enumerate() {
        let link = record(&t.repo(), id).chain.expect("linked");
        assert_eq!(link.n, i as u64 + 1);
        assert_eq!(
            link.prev.map(|p| p.to_hex()),
            i.checked_sub(1).map(|j| ids[j].clone())
        );
    }
}

#[test]
fn a_deleted_snapshot_file_is_named_and_prune_keeps_its_data() {
    let t = TestDir::new("chain-deleted");
    let (_, ids) = history(&t, 3);
    std::fs::remove_file(snapshot_file(&t.repo(), &ids[1])).expect("delete");
    let out = verify_fails(&t, &[]);
    problem_naming(&out, &ids[1], "is missing");
    let out = verify_fails(&t, &["--chain"]);
    problem_naming(&out, &ids[1], "#2");
    let r = t.lb().args(["prune"]).run();
    assert_ne!(r.code, Some(0), "prune must refuse");
    assert!(
        r.stderr.contains("prune refused") && r.stderr.contains(&ids[1]),
        "{}",
        r.stderr
    );
    // `repair snapshots` records the loss; then the chain verifies and prune runs.
    let out = t.lb().args(["repair", "snapshots"]).ok().out();
    assert!(out.contains(&ids[1][..12]), "{out}");
    t.lb().args(["verify"]).ok();
    t.lb().args(["prune"]).ok();
}

#[test]
fn a_snapshot_replaced_by_another_repositorys_is_named() {
    let t = TestDir::new("chain-replaced");
    let (_, ids) = history(&t, 3);
    let other = TestDir::new("chain-replaced-other");
    let (_, theirs) = history(&other, 3);
    std::fs::remove_file(snapshot_file(&t.repo(), &ids[1])).expect("delete");
    std::fs::copy(
        snapshot_file(&other.repo(), &theirs[1]),
        snapshot_file(&t.repo(), &theirs[1]),
    )
    .expect("copy");
    let out = verify_fails(&t, &[]);
    problem_naming(&out, &ids[1], "is missing");
    problem_naming(&out, &theirs[1], "not in this repository's chain");
}

#[test]
fn times_edited_to_reorder_are_caught() {
    let t = TestDir::new("chain-reorder");
    let (_, ids) = history(&t, 3);
    // The oldest snapshot made to look like the newest, renamed to match.
    let mut rec = record(&t.repo(), &ids[0]);
    rec.time_ns = record(&t.repo(), &ids[2]).time_ns + 1_000_000_000;
    std::fs::remove_file(snapshot_file(&t.repo(), &ids[0])).expect("delete");
    let moved = write_record(&t.repo(), &rec);
    let out = verify_fails(&t, &["--chain"]);
    problem_naming(&out, &ids[0], "is missing");
    problem_naming(&out, &moved, "not in this repository's chain");
}

#[test]
fn hand_made_records_are_named_in_a_plain_repository() {
    let t = TestDir::new("chain-insert-plain");
    let (_, ids) = history(&t, 3);
    // One claiming the second place, one without a link.
    let mut forged = record(&t.repo(), &ids[1]);
    forged.note = "forged".into();
    let claims = write_record(&t.repo(), &forged);
    forged.chain = None;
    let unlinked = write_record(&t.repo(), &forged);
    let out = verify_fails(&t, &[]);
    problem_naming(&out, &claims, "not in this repository's chain");
    problem_naming(&out, &unlinked, "no chain link");
}

#[test]
fn hand_made_records_are_named_in_an_encrypted_repository() {
    let t = TestDir::new("chain-insert-enc");
    let enc = || t.lb().env("LUMINA_BACKUP_PASSWORD", PW);
    enc().args(["init", "--encrypt"]).ok();
    let db = t.path("app.db");
    make_db(&db, "v0");
    for v in ["v1", "v2"] {
        set_value(&db, v);
        enc().args(["snapshot"]).arg(&db).ok();
    }
    // Without the key a record can only be written in plaintext (or sealed
    // under another key): a hand-made snapshot and a hand-made chain event.
    let plain = TestDir::new("chain-insert-enc-plain");
    let (_, ids) = history(&plain, 1);
    let rec = record(&plain.repo(), &ids[0]);
    let forged = write_record(&t.repo(), &rec);
    let body = encode_named(&rec);
    let event = hex::encode(blake3::hash(b"event").as_bytes());
    std::fs::create_dir_all(t.repo().join("chain")).expect("mkdir");
    std::fs::write(
        t.repo().join("chain").join(&event),
        seal_file(FormatVersion::V2, Kind::ChainEvent, &body),
    )
    .expect("write event");
    let r = enc().args(["verify"]).run();
    r.expect_code(3);
    let out = r.out();
    assert!(
        out.lines()
            .any(|l| l.starts_with("problem: ") && l.contains(&forged[..12])),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.starts_with("problem: chain")
            && l.contains(&event[..12])
            && l.contains("forged")),
        "{out}"
    );
    // The forged snapshot is never listed.
    let list = enc().args(["snapshots"]).json();
    assert_eq!(list.as_array().expect("list").len(), 2);
}

#[test]
fn a_rollback_is_caught_with_expect_head() {
    let t = TestDir::new("chain-rollback");
    let (db, _) = history(&t, 2);
    let old = TestDir::new("chain-rollback-copy");
    common::copy_tree(&t.repo(), &old.repo());
    let before = chain_head(&t);
    snap(&t, &db, "later");
    let after = chain_head(&t);
    // The history still extends both heads.
    t.lb().args(["verify", "--expect-head", &before[..16]]).ok();
    t.lb().args(["verify", "--expect-head", &after]).ok();
    // The older copy put back: it does not hold the newer head.
    let out = verify_fails(&old, &["--expect-head", &after[..16]]);
    problem_naming(&out, &after[..16], "rolled back");
    old.lb()
        .args(["verify", "--expect-head", "xyz"])
        .run()
        .expect_code(2);
}

#[test]
fn forged_snapshots_never_make_forget_remove_a_real_one() {
    let t = TestDir::new("chain-forget");
    let (_, ids) = history(&t, 4);
    // Three "newer" forgeries: with keep-last 3 they would push out the real ones.
    let newest = record(&t.repo(), &ids[3]);
    let mut forged = Vec::new();
    for i in 1..=3 {
        let mut rec = newest.clone();
        rec.time_ns += i * 3_600_000_000_000;
        rec.note = format!("forged {i}");
        if i == 3 {
            rec.chain = None;
        } else {
            // Claims the second place, after the real first snapshot.
            rec.chain = record(&t.repo(), &ids[1]).chain;
        }
        forged.push(write_record(&t.repo(), &rec));
    }
    let out = t.lb().args(["forget", "--keep-last", "3"]).ok().out();
    assert!(out.contains("not on the history chain"), "{out}");
    for id in &ids[1..] {
        assert!(
            snapshot_file(&t.repo(), id).exists(),
            "real {id} removed:\n{out}"
        );
    }
    assert!(
        !snapshot_file(&t.repo(), &ids[0]).exists(),
        "the oldest real one goes"
    );
    for id in &forged {
        assert!(
            snapshot_file(&t.repo(), id).exists(),
            "forged ones are left for the user"
        );
    }
    // The deletion is on the record: only the forgeries are problems.
    let out = verify_fails(&t, &["--chain"]);
    assert!(!out.contains(&ids[0]), "{out}");
}

#[test]
fn tag_edits_keep_ids_and_the_chain() {
    let t = TestDir::new("chain-tags");
    let (db, ids) = history(&t, 2);
    let head = chain_head(&t);
    let edited = t
        .lb()
        .args(["tag", &ids[0], "--add", "keep", "--note", "before the move"])
        .json();
    assert_eq!(edited["id"].as_str(), Some(ids[0].as_str()));
    let list = t.lb().args(["snapshots"]).json();
    let first = &list[0];
    assert_eq!(first["id"].as_str(), Some(ids[0].as_str()));
    assert_eq!(first["tags"][0], "keep");
    assert_eq!(first["note"], "before the move");
    assert!(snapshot_file(&t.repo(), &ids[0]).exists());
    t.lb().args(["verify"]).ok();
    t.lb().args(["verify", "--expect-head", &head]).ok();
    let status = t.lb().args(["status"]).json();
    assert_eq!(status["chain_records"], 3);
    // keep-tag sees the annotation; a later snapshot links after it.
    t.lb()
        .args(["forget", "--keep-tag", "keep", "--allow-empty"])
        .ok();
    assert!(snapshot_file(&t.repo(), &ids[0]).exists());
    assert!(!snapshot_file(&t.repo(), &ids[1]).exists());
    snap(&t, &db, "after");
    t.lb().args(["verify"]).ok();
}

#[test]
fn a_restore_drill_catches_what_only_integrity_check_sees() {
    let t = TestDir::new("chain-drill");
    t.init();
    let db = t.path("app.db");
    common::make_db_only_integrity_check_faults(&db);
    let id = id_of(&t.lb().args(["snapshot"]).arg(&db).json());
    t.lb().args(["verify"]).ok();
    let out = verify_fails(&t, &["--restore-test", &id[..12]]);
    assert!(
        out.lines()
            .any(|l| l.starts_with("problem: restore drill of snapshot")
                && l.contains(&id[..12])
                && l.contains("integrity_check")),
        "{out}"
    );
    // A sound database passes its drill (the default: the newest of each database).
    let good = TestDir::new("chain-drill-good");
    history(&good, 1);
    let out = good.lb().args(["verify", "--restore-test"]).ok().out();
    assert!(
        out.contains("restore drill of snapshot") && out.contains("passed"),
        "{out}"
    );
}

fn fixture(version: u32, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("format-{version}"))
        .join(name)
}

#[test]
fn repositories_from_before_the_chain_still_work_and_start_one() {
    for version in [1u32, 2] {
        for name in ["plain", "encrypted"] {
            let t = TestDir::new(&format!("chain-fixture-{version}-{name}"));
            common::copy_tree(&fixture(version, name), &t.repo());
            std::fs::create_dir_all(t.repo().join("keys")).expect("keys");
            let lb = || t.lb().env("LUMINA_BACKUP_PASSWORD", "fixture");
            lb().args(["verify"]).ok();
            let status = lb().args(["status"]).json();
            assert!(status["chain_head"].is_null(), "{status}");
            let old: Vec<String> = lb()
                .args(["snapshots"])
                .json()
                .as_array()
                .expect("list")
                .iter()
                .map(id_of)
                .collect();
            assert!(!old.is_empty());
            let restored = t.path("restored.db");
            lb().args(["restore", &old[0], "--to"]).arg(&restored).ok();
            // The first new record starts the chain over the old history.
            lb().args(["tag", &old[0], "--add", "chained"]).ok();
            lb().args(["verify"]).ok();
            let status = lb().args(["status"]).json();
            assert_eq!(status["chain_records"], 1, "{status}");
            // A record removed from the old history is caught.
            std::fs::remove_file(snapshot_file(&t.repo(), &old[old.len() - 1])).expect("delete");
            let r = lb().args(["verify", "--chain"]).run();
            r.expect_code(3);
            assert!(r.out().contains("before the chain began"), "{}", r.out());
        }
    }
}

/// A writer killed around a chain record leaves a chain that verifies: before
/// the record, nothing happened; after a deletion record and before the files
/// are gone, the snapshots are still there and listed, and the next forget
/// removes them. The chain never forks: the next snapshot links to the newest.
#[test]
fn a_writer_killed_around_a_chain_record_leaves_a_sound_chain() {
    let t = TestDir::new("chain-crash");
    let (db, ids) = history(&t, 3);
    for point in ["before-chain-event", "forget-after-record"] {
        let r = t
            .lb()
            .args(["forget", "--keep-last", "2"])
            .crash_at(point)
            .run();
        assert_eq!(r.signal, Some(9), "{point}: {}", r.stderr);
        assert!(snapshot_file(&t.repo(), &ids[0]).exists(), "{point}");
        t.lb().args(["verify"]).ok();
    }
    t.lb().args(["forget", "--keep-last", "2"]).ok();
    assert!(!snapshot_file(&t.repo(), &ids[0]).exists());
    let r = t
        .lb()
        .args(["tag", &ids[1], "--add", "x"])
        .crash_at("before-chain-event")
        .run();
    assert_eq!(r.signal, Some(9));
    let r = t
        .lb()
        .arg("snapshot")
        .arg(&db)
        .crash_at("after-snapshot-file")
        .run();
    assert_eq!(r.signal, Some(9));
    snap(&t, &db, "after the crashes");
    t.lb().args(["verify"]).ok();
    t.lb().args(["prune"]).ok();
    t.lb().args(["verify", "--read-data"]).ok();
}
