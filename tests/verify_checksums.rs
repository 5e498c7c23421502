//! `verify` checks every file's recorded checksum (format 2: the chunk-list
//! digest, store-format.md 4.2) against the chunks its tree lists, without
//! `--read-data`: a snapshot record whose checksum was altered, or whose file
//! names another version's tree of the same size (every chunk intact), is a
//! problem (exit 3) naming the snapshot and the file. Released repositories of
//! format 1 and 2 verify clean.

mod common;

use std::path::Path;

use common::{id_of, make_db, set_value, TestDir};
use lumina_backup::__internals::format::{decode, open_file, Kind};
use lumina_backup::SnapshotRecord;

fn snapshot_file(repo: &Path, id: &str) -> std::path::PathBuf {
    repo.join("snapshots").join(id)
}

/// The record of snapshot `id` (plain repository).
fn record(repo: &Path, id: &str) -> SnapshotRecord {
    let bytes = std::fs::read(snapshot_file(repo, id)).expect("read record");
    decode(open_file(&bytes, Kind::Snapshot).expect("open")).expect("decode")
}

/// Replaces the 32 bytes `from` by `to` in the body of plain snapshot `id`,
/// re-frames the file (checksum) and writes it under its new name (the old
/// one is removed); returns the new id.
fn rewrite(repo: &Path, id: &str, from: &[u8; 32], to: &[u8; 32]) -> String {
    let path = snapshot_file(repo, id);
    let mut bytes = std::fs::read(&path).expect("read record");
    let body_len = open_file(&bytes, Kind::Snapshot).expect("open").len();
    let header = bytes.len() - 32 - body_len;
    let body = &mut bytes[header..header + body_len];
    let at = body
        .windows(32)
        .position(|w| w == from)
        .expect("the bytes are in the record");
    body[at..at + 32].copy_from_slice(to);
    let new_id = hex::encode(blake3::hash(body).as_bytes());
    let sum = *blake3::hash(&bytes[..header + body_len]).as_bytes();
    let end = bytes.len();
    bytes[end - 32..].copy_from_slice(&sum);
    std::fs::remove_file(&path).expect("remove");
    std::fs::write(snapshot_file(repo, &new_id), &bytes).expect("write");
    new_id
}

/// A plain repository with two snapshots of a database whose one value
/// changed in between (same size); returns their ids.
fn two_snapshots(t: &TestDir) -> (String, String) {
    t.init();
    let db = t.path("app.db");
    make_db(&db, "first value");
    let a = id_of(&t.lb().args(["snapshot"]).arg(&db).json());
    set_value(&db, "other value");
    let b = id_of(&t.lb().args(["snapshot"]).arg(&db).json());
    t.lb().args(["verify"]).ok();
    (a, b)
}

fn image(rec: &SnapshotRecord) -> &lumina_backup::FileEntry {
    rec.files
        .iter()
        .find(|f| f.kind == lumina_backup::FileKind::Image)
        .expect("image")
}

/// The problem names the snapshot (short id) and the file, in text and JSON.
fn expect_named(t: &TestDir, id: &str, file: &str) {
    let r = t.lb().args(["verify"]).run();
    r.expect_code(3);
    let out = r.out();
    let line = out
        .lines()
        .find(|l| l.contains("checksum"))
        .unwrap_or_else(|| panic!("no checksum problem:\n{out}"));
    assert!(
        line.starts_with("problem: ")
            && line.contains(&format!("snapshot {}", &id[..12]))
            && line.contains(file),
        "{line}"
    );
    let r = t.lb().args(["--json", "verify"]).run();
    r.expect_code(3);
    let v = r.json();
    assert_eq!(v["ok"], false, "{v}");
    let problems = v["problems"].as_array().expect("problems");
    assert_eq!(problems.len(), 1, "{v}");
    let p = problems[0].as_str().expect("text");
    assert!(
        p.contains(&id[..12]) && p.contains(file) && p.contains("checksum"),
        "{p}"
    );
}

#[test]
fn an_altered_file_checksum_is_a_verify_problem() {
    let t = TestDir::new("verify-sum");
    let (_, b) = two_snapshots(&t);
    let rec = record(&t.repo(), &b);
    let img = image(&rec);
    let mut other = img.blake3;
    other[7] ^= 0x10;
    let altered = rewrite(&t.repo(), &b, &img.blake3, &other);
    expect_named(&t, &altered, &img.name);
}

#[test]
fn a_file_pointed_at_another_versions_tree_is_a_verify_problem() {
    let t = TestDir::new("verify-tree");
    let (a, b) = two_snapshots(&t);
    let (ra, rb) = (record(&t.repo(), &a), record(&t.repo(), &b));
    let (ia, ib) = (image(&ra), image(&rb));
    assert_eq!(ia.size, ib.size, "same size");
    assert_ne!(ia.root, ib.root);
    let borrowed = rewrite(&t.repo(), &b, &ib.root.0, &ia.root.0);
    expect_named(&t, &borrowed, &ib.name);
    // Every chunk is intact: read-data finds nothing more.
    t.lb().args(["verify", "--read-data"]).run().expect_code(3);
    // Only the list's checksum tells, and `cat` checks it before writing a
    // byte to stdout (which cannot be taken back).
    let r = t.lb().args(["cat", &borrowed, &ib.name]).run();
    r.expect_code(1);
    assert!(r.stdout.is_empty(), "cat wrote {} bytes", r.stdout.len());
    assert!(r.stderr.contains("nothing was written"), "{}", r.stderr);
}

/// Released repositories (format 1: whole-file checksums, not checked by
/// verify; format 2: chunk-list digests) verify clean, plain and encrypted.
#[test]
fn released_repositories_verify_clean() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for format in ["format-1", "format-2"] {
        for kind in ["plain", "encrypted"] {
            let t = TestDir::new("verify-fixture");
            common::copy_tree(&fixtures.join(format).join(kind), &t.repo());
            for args in [&["verify"][..], &["verify", "--read-data"]] {
                let v = t
                    .lb()
                    .env("LUMINA_BACKUP_PASSWORD", "fixture")
                    .args(args)
                    .json();
                assert_eq!(v["ok"], true, "{format} {kind} {args:?}: {v}");
                assert_eq!(v["snapshots_checked"], 2, "{format} {kind}: {v}");
            }
        }
    }
}
