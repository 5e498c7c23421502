//! The store format is a contract (store-format.md). Invariants guarded here:
//!
//! - the hex dumps of store-format.md's worked example decode, with a decoder
//!   written from the document alone (`tests/common/golden_doc.rs`, no library
//!   code), to exactly the document's "decoded" blocks, and their names, ids
//!   and checksums agree with each other (the library side of the same
//!   examples is `src/format/golden.rs`);
//! - the real binary reads the document's example repository: verifies it,
//!   lists it, restores its database byte for byte, opens the example key file
//!   with its passphrase;
//! - every repository a released format wrote (`tests/fixtures/format-N/`, one
//!   plain and one encrypted with passphrase `fixture`) still opens, lists,
//!   restores and verifies with the current code, with its old index or none,
//!   and takes new snapshots. A change that breaks old repositories fails here.
//!
//! Issue #9: "store-format.md brought to the level of restic's design document
//! and redb's design.md".

mod common;
#[path = "common/golden_doc.rs"]
mod golden_doc;

use std::path::{Path, PathBuf};

use common::TestDir;
use golden_doc::Value;
use serde_json::Value as Json;

fn doc() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("store-format.md"))
        .expect("reading store-format.md")
}

/// The example files, in the order the document shows them.
const EXAMPLES: &[&str] = &[
    "config",
    "config-sealed",
    "key",
    "retention",
    "status",
    "snapshot",
    "changes",
    "chain-annotation",
    "chain-deletion",
    "tree-node",
    "pack",
    "chunk-location",
];

/// The bytes of example `name` from the document's hex dump.
fn example(blocks: &[golden_doc::Block], name: &str) -> Vec<u8> {
    let b = golden_doc::block(blocks, name, "hex").unwrap_or_else(|e| panic!("{e}"));
    golden_doc::parse_hexdump(&b.text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The MessagePack body of a plain small file.
fn body(file: &[u8]) -> &[u8] {
    let len = u32::from_le_bytes([file[12], file[13], file[14], file[15]]) as usize;
    &file[16..16 + len]
}

/// Issue #9: each hex dump of store-format.md decodes to the decoded block shown
/// beside it, by a decoder that uses only the document.
#[test]
fn doc_examples_decode_as_shown_without_the_library() {
    let doc = doc();
    let blocks = golden_doc::blocks(&doc).expect("parsing store-format.md");
    for name in EXAMPLES {
        let bytes = example(&blocks, name);
        let got = golden_doc::describe(name, &bytes)
            .unwrap_or_else(|e| panic!("example {name} does not decode: {e}"));
        let shown = &golden_doc::block(&blocks, name, "decoded")
            .unwrap_or_else(|e| panic!("{e}"))
            .text;
        assert_eq!(
            &got, shown,
            "store-format.md: the decoded block of {name} is not what its hex dump decodes to"
        );
    }
}

/// Issue #9: the example files agree with each other: the snapshot names the
/// tree node and the pack's page, the index entry points into the pack, sizes
/// and checksums add up.
#[test]
fn doc_example_files_reference_each_other() {
    let blocks = golden_doc::blocks(&doc()).expect("parsing store-format.md");
    let snap = example(&blocks, "snapshot");
    let rec = golden_doc::msgpack(body(&snap)).expect("record");
    let file = &rec.get("files").and_then(Value::items).expect("files")[0];
    let node = example(&blocks, "tree-node");
    assert_eq!(
        file.get("root").and_then(Value::bin),
        Some(&blake3::hash(&node).as_bytes()[..]),
        "the snapshot's root is the tree node"
    );
    let tree = golden_doc::msgpack(&node).expect("node");
    let leaf = &tree.items().expect("node")[1].items().expect("entries")[0];
    let leaf = leaf.items().expect("entry");

    let pack = example(&blocks, "pack");
    let loc = example(&blocks, "chunk-location");
    assert_eq!(
        &loc[..4],
        &[0, 0, 0, 0],
        "location names the index's first pack (number 0)"
    );
    let mut off = [0u8; 8];
    off[..6].copy_from_slice(&loc[4..10]);
    let off = u64::from_le_bytes(off) as usize;
    let stored = u32::from_le_bytes(loc[10..14].try_into().expect("4")) as usize;
    let frame = zstd::stream::decode_all(&pack[off..off + stored]).expect("zstd frame");
    let at = u32::from_le_bytes(loc[19..23].try_into().expect("4")) as usize;
    let len = u32::from_le_bytes(loc[23..27].try_into().expect("4")) as usize;
    let page = &frame[at..at + len];
    assert_eq!(leaf[0].bin(), Some(&blake3::hash(page).as_bytes()[..]));
    // Format 2 (section 4.2): the chunk-list digest, BLAKE3 of the context
    // string then each data chunk's id and length (u64 LE).
    let mut list = b"lumina-backup chunk-list v2\n".to_vec();
    list.extend_from_slice(blake3::hash(page).as_bytes());
    list.extend_from_slice(&(len as u64).to_le_bytes());
    assert_eq!(
        file.get("blake3").and_then(Value::bin),
        Some(&blake3::hash(&list).as_bytes()[..]),
        "the file's checksum is the digest of its one-chunk list"
    );
    assert_eq!(&page[..16], b"SQLite format 3\0");
    assert_eq!(
        rec.get("new_bytes").and_then(Value::int),
        Some(pack.len() as i128)
    );
    let changes = example(&blocks, "changes");
    let ch = golden_doc::msgpack(body(&changes)).expect("changes");
    assert_eq!(ch.get("parent"), rec.get("parent"));
    // The chain: the annotation starts it over the (unlinked) snapshot, the
    // deletion follows it and removes that snapshot.
    let snap_id = blake3::hash(body(&snap));
    let ann = example(&blocks, "chain-annotation");
    let a = golden_doc::msgpack(body(&ann)).expect("annotation");
    let link = a.get("chain").expect("link");
    assert_eq!(link.get("n").and_then(Value::int), Some(1));
    let base = link.get("base").and_then(Value::items).expect("base");
    assert_eq!(base.len(), 1);
    assert_eq!(base[0].bin(), Some(&snap_id.as_bytes()[..]));
    assert_eq!(
        a.get("target").and_then(Value::bin),
        Some(&snap_id.as_bytes()[..])
    );
    let del = example(&blocks, "chain-deletion");
    let d = golden_doc::msgpack(body(&del)).expect("deletion");
    let link = d.get("chain").expect("link");
    assert_eq!(link.get("n").and_then(Value::int), Some(2));
    assert_eq!(
        link.get("prev").and_then(Value::bin),
        Some(&blake3::hash(body(&ann)).as_bytes()[..]),
        "the deletion's prev is the annotation's id"
    );
    let removed = d.get("removed").and_then(Value::items).expect("removed");
    assert_eq!(
        removed[0].get("id").and_then(Value::bin),
        Some(&snap_id.as_bytes()[..])
    );
}

/// Issue #13: the binary reads the document's chain event: the annotation
/// gives the snapshot its tags, the chain verifies, and its id is the head.
#[test]
fn doc_example_chain_event_is_read_by_the_binary() {
    let t = TestDir::new("golden-chain");
    let dir = t.repo();
    let id = write_doc_repository(&dir);
    let blocks = golden_doc::blocks(&doc()).expect("parse");
    let ann = example(&blocks, "chain-annotation");
    let ann_id = hex::encode(blake3::hash(body(&ann)).as_bytes());
    std::fs::create_dir_all(dir.join("chain")).expect("mkdir");
    std::fs::write(dir.join("chain").join(&ann_id), &ann).expect("write");
    let list = t.lb().args(["snapshots"]).json();
    assert_eq!(list[0]["id"], id.as_str(), "{list}");
    assert_eq!(
        list[0]["tags"],
        serde_json::json!(["example", "keep"]),
        "{list}"
    );
    t.lb().args(["verify", "--chain"]).ok();
    let st = t.lb().args(["status"]).json();
    assert_eq!(st["chain_head"], ann_id.as_str(), "{st}");
    assert_eq!(st["chain_records"], 1, "{st}");
}

/// Writes the document's example repository (plain) into `dir`; returns the
/// snapshot id.
fn write_doc_repository(dir: &Path) -> String {
    let blocks = golden_doc::blocks(&doc()).expect("parsing store-format.md");
    let snap = example(&blocks, "snapshot");
    let id = hex::encode(blake3::hash(body(&snap)).as_bytes());
    let pack = example(&blocks, "pack");
    let pack_id = hex::encode(blake3::hash(&pack).as_bytes());
    for d in [
        "keys",
        "snapshots",
        "changes",
        &format!("packs/{}", &pack_id[..2]),
    ] {
        std::fs::create_dir_all(dir.join(d)).expect("mkdir");
    }
    let files: [(String, Vec<u8>); 7] = [
        ("config".into(), example(&blocks, "config")),
        ("lock".into(), Vec::new()),
        (format!("snapshots/{id}"), snap),
        (format!("packs/{}/{pack_id}", &pack_id[..2]), pack),
        ("retention".into(), example(&blocks, "retention")),
        ("status".into(), example(&blocks, "status")),
        (format!("changes/{id}"), example(&blocks, "changes")),
    ];
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).expect("write");
    }
    id
}

/// Issue #9: the binary reads the repository made of store-format.md's example
/// files: it verifies clean, lists the snapshot with its change count, restores
/// the database byte for byte, shows the retention rules and the last failure.
#[test]
fn doc_example_repository_is_read_by_the_binary() {
    let t = TestDir::new("doc-repo");
    let id = write_doc_repository(&t.repo());
    let v = t.lb().args(["verify", "--read-data"]).json();
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["snapshots_checked"], 1, "{v}");
    assert_eq!(v["chunks_checked"], 2, "{v}");

    let list = t.lb().arg("snapshots").json();
    let s = &list.as_array().expect("array")[0];
    assert_eq!(s["id"], id.as_str());
    assert_eq!(s["time"], "2026-01-01T00:00:00.123456789Z");
    assert_eq!(s["db"], "/data/example.db");
    assert_eq!(s["tags"], serde_json::json!(["example"]));
    assert_eq!(s["note"], "a worked example");
    assert_eq!(s["changed_rows"], 3);

    let out = t.path("restored.db");
    t.lb().args(["restore", &id, "--to"]).arg(&out).ok();
    let blocks = golden_doc::blocks(&doc()).expect("parse");
    let rec = golden_doc::msgpack(body(&example(&blocks, "snapshot"))).expect("record");
    let want = rec.get("files").and_then(Value::items).expect("files")[0]
        .get("blake3")
        .and_then(Value::bin)
        .map(hex::encode)
        .expect("blake3");
    // One 512-byte page: the chunk-list digest of (BLAKE3 of the file, 512).
    let mut list = b"lumina-backup chunk-list v2\n".to_vec();
    list.extend_from_slice(&hex::decode(common::blake3_file(&out)).expect("hex"));
    list.extend_from_slice(&512u64.to_le_bytes());
    assert_eq!(hex::encode(blake3::hash(&list).as_bytes()), want);
    let uv: i64 = common::open(&out)
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("user_version");
    assert_eq!(uv, 7);

    let st = t.lb().arg("status").json();
    assert_eq!(
        st["last_failure"]["message"],
        "database /data/example.db does not exist"
    );
    let cfg = t.lb().args(["config", "show"]).json();
    assert_eq!(
        cfg["repository"]["repo-id"],
        "0123456789abcdef0123456789abcdef"
    );
    assert_eq!(cfg["retention"]["keep-last"], "5");
    assert_eq!(cfg["retention"]["keep-within"], "30d");
}

/// Issue #9: the document's key file opens with its passphrase and unlocks the
/// document's sealed config; another passphrase is refused (exit 2).
#[test]
fn doc_example_key_file_opens_the_sealed_config() {
    let t = TestDir::new("doc-key");
    let blocks = golden_doc::blocks(&doc()).expect("parse");
    let key = example(&blocks, "key");
    let key_id = hex::encode(&blake3::hash(body(&key)).as_bytes()[..16]);
    let repo = t.repo();
    for d in ["keys", "packs", "snapshots"] {
        std::fs::create_dir_all(repo.join(d)).expect("mkdir");
    }
    std::fs::write(repo.join("config"), example(&blocks, "config-sealed")).expect("w");
    std::fs::write(repo.join("keys").join(&key_id), key).expect("w");
    std::fs::write(repo.join("lock"), b"").expect("w");
    let list = t
        .lb()
        .env("LUMINA_BACKUP_PASSWORD", golden_doc::EXAMPLE_PASSPHRASE)
        .arg("snapshots")
        .json();
    assert_eq!(list, serde_json::json!([]));
    let keys = t
        .lb()
        .env("LUMINA_BACKUP_PASSWORD", golden_doc::EXAMPLE_PASSPHRASE)
        .args(["key", "list"])
        .json();
    assert_eq!(keys[0]["id"], key_id.as_str());
    assert_eq!(keys[0]["label"], "example");
    t.lb()
        .env("LUMINA_BACKUP_PASSWORD", "not the passphrase")
        .arg("snapshots")
        .run()
        .expect_code(2);
}

// ---------------------------------------------------------------------------
// Repositories of released formats.

fn fixture(version: u32, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("format-{version}"))
        .join(name)
}

/// Copies fixture repository `name` of `version` to `to` (opening it may
/// rewrite files), with its old index when `with_index`. Git keeps no empty
/// folder, so `keys/` is made again as `init` makes it.
fn copy_fixture(version: u32, name: &str, to: &Path, with_index: bool) {
    common::copy_tree(&fixture(version, name), to);
    std::fs::create_dir_all(to.join("keys")).expect("mkdir keys");
    if with_index {
        let gz = fixture(version, &format!("{name}.index.redb.gz"));
        let f = std::fs::File::open(&gz).expect("index fixture");
        let mut d = flate2::read::GzDecoder::new(f);
        let mut out = std::fs::File::create(to.join("index.redb")).expect("index");
        std::io::copy(&mut d, &mut out).expect("gunzip index");
    }
}

/// Every file of the repository at `root` but the index and the lock, with
/// the format version in its envelope.
fn envelope_versions(root: &Path) -> Vec<(PathBuf, u16)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("read dir") {
            let p = e.expect("entry").path();
            let name = p.file_name().expect("name").to_string_lossy().into_owned();
            if p.is_dir() {
                stack.push(p);
            } else if name != "index.redb" && name != "lock" && !name.starts_with('.') {
                let b = std::fs::read(&p).expect("read");
                out.push((p, u16::from_le_bytes([b[8], b[9]])));
            }
        }
    }
    out
}

/// What the fixtures of format `version` hold
/// (tests/fixtures/make-format-fixtures.sh).
fn check_format(version: u16, name: &str, with_index: bool) {
    let t = TestDir::new(&format!("fixture-{version}-{name}"));
    copy_fixture(version.into(), name, &t.repo(), with_index);
    let files = envelope_versions(&t.repo());
    assert!(files.len() > 5, "{files:?}");
    assert!(files.iter().all(|(_, v)| *v == version), "{files:?}");
    let lb = || {
        let l = t.lb();
        if name == "encrypted" {
            l.env("LUMINA_BACKUP_PASSWORD", "fixture")
        } else {
            l
        }
    };
    let v = lb().args(["verify", "--read-data"]).json();
    assert_eq!(v["ok"], true, "{name}: {v}");
    assert_eq!(v["snapshots_checked"], 2, "{name}: {v}");

    let list = lb().arg("snapshots").json();
    let list = list.as_array().expect("array").clone();
    assert_eq!(list.len(), 2, "{name}: {list:?}");
    assert_eq!(list[0]["time"], "2026-01-01T10:00:00Z");
    assert_eq!(list[0]["tags"], serde_json::json!(["first"]));
    assert_eq!(list[0]["note"], "fixture snapshot 1");
    assert_eq!(
        list[0]["db"],
        format!("/tmp/lumina-fixture-{version}/lumina.db")
    );
    assert_eq!(list[1]["time"], "2026-01-02T10:00:00Z");
    assert_eq!(list[1]["tags"], serde_json::json!(["second"]));
    assert_eq!(
        list[1]["changed_rows"], 3,
        "{name}: the change summary reads"
    );
    let ids: Vec<String> = list.iter().map(common::id_of).collect();

    // Restore each snapshot and check its rows.
    let expected: [(i64, i64, Option<&str>); 2] = [(2, 1, None), (3, 2, Some("red"))];
    for (id, (photos, relations, color)) in ids.iter().zip(expected) {
        let out = t.path(&format!("restored-{}.db", &id[..12]));
        lb().args(["restore", id, "--to"]).arg(&out).ok();
        assert!(common::integrity_ok(&out), "{name} {id}: integrity");
        let c = common::open(&out);
        let n: i64 = c
            .query_row("SELECT count(*) FROM metadata", [], |r| r.get(0))
            .expect("count");
        let r: i64 = c
            .query_row("SELECT count(*) FROM item_tags", [], |r| r.get(0))
            .expect("count");
        let col: Option<String> = c
            .query_row(
                "SELECT colorTag FROM metadata WHERE id = 'photos/b.jpg'",
                [],
                |r| r.get(0),
            )
            .expect("b.jpg");
        assert_eq!(
            (n, r, col.as_deref()),
            (photos, relations, color),
            "{name} {id}"
        );
        let uv: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("user_version");
        assert_eq!(uv, 3);
    }
    let meta = lb().args(["cat", &ids[1], "metadata.json"]).ok().out();
    assert!(
        meta.starts_with(
            r#"{"version":"1.0.0","timestamp":"2026-01-02T10:00:00Z","totalItems":3,"metadata":["#
        ),
        "{meta}"
    );
    assert!(meta.contains(r#""id":"photos/c.jpg""#), "{meta}");
    let manifest: Json =
        serde_json::from_str(&lb().args(["cat", &ids[0], "manifest.json"]).ok().out())
            .expect("manifest.json is JSON");
    assert_eq!(manifest["manifest_version"], 1);
    assert_eq!(manifest["tables"]["metadata"], 2);
    assert_eq!(manifest["quick_check"], "ok");

    let st = lb().arg("status").json();
    assert_eq!(st["last_failure"]["operation"], "snapshot", "{st}");
    let cfg = lb().args(["config", "show"]).json();
    assert_eq!(cfg["retention"]["keep-last"], "5");
    assert_eq!(cfg["retention"]["keep-daily"], "7");
    assert_eq!(cfg["repository"]["encrypted"], name == "encrypted");

    // The current writer extends the old repository.
    let db = t.path("lumina.db");
    lb().args(["restore", &ids[1], "--to"]).arg(&db).ok();
    common::touch_metadata_rows(&db, 1, 9);
    lb().arg("snapshot").arg(&db).ok();
    let v = lb().args(["verify", "--read-data"]).json();
    assert_eq!(v["ok"], true, "{name} after a new snapshot: {v}");
    assert_eq!(v["snapshots_checked"], 3);
    // In the repository's own format (an old repository is upgraded only by
    // an explicit migrate), and it restores verified (the format's checksum).
    let files = envelope_versions(&t.repo());
    assert!(
        files.iter().all(|(_, v)| *v == version),
        "{name}: every file still of format {version}: {files:?}"
    );
    let list = lb().arg("snapshots").json();
    let newest = common::id_of(&list.as_array().expect("array")[2]);
    let out = t.path("newest.db");
    lb().args(["restore", &newest, "--to"]).arg(&out).ok();
    assert_eq!(common::blake3_file(&out), common::blake3_file(&db));
    let show = lb().args(["show", &newest]).json();
    let files = show["files"].as_array().expect("files");
    let image = files.iter().find(|f| f["kind"] == "image").expect("image");
    let whole = common::blake3_file(&db);
    if version == 1 {
        assert_eq!(
            image["blake3"],
            whole.as_str(),
            "format 1: BLAKE3 of the file"
        );
    } else {
        assert_ne!(
            image["blake3"],
            whole.as_str(),
            "format 2: the chunk-list digest"
        );
    }
}

/// Issue #9: a format-1 plain repository, with the index it was written with.
#[test]
fn format_1_plain_repository_still_reads() {
    check_format(1, "plain", true);
}

/// Issue #9: a format-1 plain repository without its index (rebuilt from the files).
#[test]
fn format_1_plain_repository_reads_without_its_index() {
    check_format(1, "plain", false);
}

/// Issue #9: a format-1 encrypted repository (passphrase `fixture`), with its index.
#[test]
fn format_1_encrypted_repository_still_reads() {
    check_format(1, "encrypted", true);
}

/// Issue #9: a format-1 encrypted repository without its index.
#[test]
fn format_1_encrypted_repository_reads_without_its_index() {
    check_format(1, "encrypted", false);
}

/// A format-2 plain repository, with the index it was written with.
#[test]
fn format_2_plain_repository_still_reads() {
    check_format(2, "plain", true);
}

/// A format-2 plain repository without its index (rebuilt from the files).
#[test]
fn format_2_plain_repository_reads_without_its_index() {
    check_format(2, "plain", false);
}

/// A format-2 encrypted repository (passphrase `fixture`), with its index.
#[test]
fn format_2_encrypted_repository_still_reads() {
    check_format(2, "encrypted", true);
}

/// A format-2 encrypted repository without its index.
#[test]
fn format_2_encrypted_repository_reads_without_its_index() {
    check_format(2, "encrypted", false);
}

/// The fixtures are what the script says: small, and every file of the
/// layout is there (a regenerated fixture must not lose a file kind).
#[test]
fn format_fixtures_hold_every_file_kind() {
    for (version, name) in [
        (1, "plain"),
        (1, "encrypted"),
        (2, "plain"),
        (2, "encrypted"),
    ] {
        let root = fixture(version, name);
        let files = common::files_under(&root);
        let total: u64 = files
            .iter()
            .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
            .sum();
        assert!(total < 64 << 10, "{name}: {total} bytes");
        let rel: Vec<String> = files
            .iter()
            .map(|f| {
                f.strip_prefix(&root)
                    .expect("under root")
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        for prefix in [
            "config",
            "lock",
            "retention",
            "status",
            "snapshots/",
            "packs/",
            "changes/",
        ] {
            assert!(
                rel.iter().any(|r| r.starts_with(prefix)),
                "{name} lacks {prefix}: {rel:?}"
            );
        }
        assert_eq!(
            rel.iter().any(|r| r.starts_with("keys/")),
            name == "encrypted",
            "{name}: key files"
        );
    }
}
