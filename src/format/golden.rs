//! The worked example of `store-format.md` ("Worked example"), built with the
//! library's own encoders: a one-snapshot repository of a 512-byte database.
//!
//! The test compares every file the library writes with the document's hex
//! dump, and the document's "decoded" blocks with what the decoder of
//! `tests/common/golden_doc.rs` (written from the document alone) makes of
//! those bytes. Run with `LUMINA_BACKUP_BLESS=1` after an intended format
//! change to rewrite the blocks (and say so in the version history).
//!
//! Sealed files take a random nonce in the library; here they are sealed with a
//! fixed nonce and checked both ways: the library opens them, and a file the
//! library seals is the same bytes once its own nonce is put in.

#[path = "../../tests/common/golden_doc.rs"]
mod golden_doc;

use std::sync::Arc;

use super::*;
use crate::compress::{self, Compression};
use crate::crypto::{self, KdfParams, MasterKey};
use crate::id::{ChunkId, SnapshotId};
use crate::store::pack::{self, ChunkLoc, PackWriter};
use crate::store::tree::TreeBuilder;

/// 2026-01-01T00:00:00Z.
const T0: i64 = 1_767_225_600;
/// The parent the example snapshot names (a forgotten one).
const PARENT: [u8; 32] = [0x11; 32];

/// An empty SQLite database of one 512-byte page, `user_version` 7, written by
/// "SQLite 3.46.0" (header fields set by hand, so the bytes never depend on the
/// SQLite linked in).
fn example_image() -> Vec<u8> {
    let mut p = vec![0u8; 512];
    p[..16].copy_from_slice(b"SQLite format 3\0");
    p[16..18].copy_from_slice(&512u16.to_be_bytes()); // page size
    p[18] = 1; // file format write version (legacy)
    p[19] = 1; // read version
    p[21] = 64; // max embedded payload fraction
    p[22] = 32; // min embedded payload fraction
    p[23] = 32; // leaf payload fraction
    p[24..28].copy_from_slice(&1u32.to_be_bytes()); // file change counter
    p[28..32].copy_from_slice(&1u32.to_be_bytes()); // pages in the file
    p[44..48].copy_from_slice(&4u32.to_be_bytes()); // schema format
    p[56..60].copy_from_slice(&1u32.to_be_bytes()); // UTF-8
    p[60..64].copy_from_slice(&7u32.to_be_bytes()); // user_version
    p[92..96].copy_from_slice(&1u32.to_be_bytes()); // version-valid-for
    p[96..100].copy_from_slice(&3_046_000u32.to_be_bytes()); // SQLITE_VERSION_NUMBER
                                                             // Page 1's b-tree header: an empty leaf table (sqlite_schema).
    p[100] = 0x0D;
    p[105..107].copy_from_slice(&512u16.to_be_bytes()); // cell content area
    p
}

fn master() -> MasterKey {
    MasterKey::from_bytes(&golden_doc::example_master_key()).expect("64 bytes")
}

fn enc_key() -> [u8; 32] {
    let mut k = [0u8; 32];
    k.copy_from_slice(&golden_doc::example_master_key()[..32]);
    k
}

fn nonce(first: u8) -> [u8; 24] {
    let mut n = [0u8; 24];
    for (i, b) in n.iter_mut().enumerate() {
        *b = first + i as u8;
    }
    n
}

fn example_config() -> Config {
    Config {
        repo_id: "0123456789abcdef0123456789abcdef".into(),
        created: T0,
        ..crate::repo::default_config()
    }
}

/// A small file sealed as `Cipher::write_file` does, with a given nonce.
fn sealed_file(kind: Kind, name: &str, body: &[u8], nonce: &[u8; 24]) -> Vec<u8> {
    let header = encode_header(
        FormatVersion::NEWEST,
        kind,
        FLAG_SEALED,
        u32::try_from(body.len() + crypto::SEAL_OVERHEAD).expect("small"),
    );
    let mut ad = header.to_vec();
    ad.extend_from_slice(name.as_bytes());
    frame_file(
        FormatVersion::NEWEST,
        kind,
        FLAG_SEALED,
        &golden_doc::seal_with_nonce(&enc_key(), nonce, &ad, body),
    )
}

/// Every example file, in document order. `frame0` replaces the stored bytes
/// of the pack's zstd frame (zstd's output may change between zstd versions;
/// the format does not depend on it).
fn examples(frame0: Option<Vec<u8>>) -> Vec<(&'static str, Vec<u8>)> {
    let mut out = Vec::new();
    let config = example_config();
    let body = encode_named(&config);
    out.push((
        "config",
        Cipher::Plain.write_file(FormatVersion::NEWEST, Kind::Config, "config", &body),
    ));
    out.push((
        "config-sealed",
        sealed_file(Kind::Config, "config", &body, &nonce(0xa0)),
    ));

    let params = KdfParams {
        m_cost_kib: 8 * 1024,
        t_cost: 1,
        p_cost: 1,
    };
    let salt = b"lumina-example!!".to_vec();
    let kek =
        crypto::derive_key(golden_doc::EXAMPLE_PASSPHRASE.as_bytes(), &salt, params).expect("kdf");
    let wrapped = golden_doc::seal_with_nonce(
        &kek,
        &nonce(0xc0),
        &golden_doc::key_wrap_ad(params.m_cost_kib, params.t_cost, params.p_cost, &salt),
        master().to_bytes().as_ref(),
    );
    let key = KeyFile {
        kdf: "argon2id".into(),
        params,
        salt,
        wrapped,
        created: T0,
        label: "example".into(),
    };
    out.push((
        "key",
        seal_file(FormatVersion::NEWEST, Kind::Key, &encode_named(&key)),
    ));

    let retention = RetentionSettings {
        keep_last: Some(5),
        keep_daily: Some(7),
        keep_within: Some("30d".into()),
        keep_tags: vec!["keep".into()],
        keep_pre_restore: Some("7d".into()),
        ..Default::default()
    };
    out.push((
        "retention",
        Cipher::Plain.write_file(
            FormatVersion::NEWEST,
            Kind::Retention,
            "retention",
            &encode_named(&retention),
        ),
    ));
    let status = StatusRecord {
        time_ns: (T0 + 3600) * 1_000_000_000,
        operation: "snapshot".into(),
        db: "/data/example.db".into(),
        message: "database /data/example.db does not exist".into(),
    };
    out.push((
        "status",
        Cipher::Plain.write_file(
            FormatVersion::NEWEST,
            Kind::Status,
            "status",
            &encode_named(&status),
        ),
    ));

    // The data: one page, one chunk; its tree; one pack holding both.
    let image = example_image();
    let chunk = ChunkId(crate::id::blake3_of(&image));
    let mut nodes = Vec::new();
    let mut put = |bytes: Vec<u8>| -> crate::error::Result<ChunkId> {
        let id = ChunkId(crate::id::blake3_of(&bytes));
        nodes.push(bytes);
        Ok(id)
    };
    let mut tree = TreeBuilder::new(config.tree_fanout);
    tree.push(
        TreeEntry {
            id: chunk,
            len: image.len() as u64,
        },
        &mut put,
    )
    .expect("push");
    let root = tree.finish(&mut put).expect("finish");
    assert_eq!(nodes.len(), 1, "one page makes one node");
    let node = nodes.remove(0);

    let mut w = PackWriter::new(FormatVersion::NEWEST, 0);
    let (c, stored) = match frame0 {
        Some(s) => (Compression::Zstd, s),
        None => compress::compress(image.clone(), config.zstd_level),
    };
    assert_eq!(c, Compression::Zstd);
    w.add_frame(
        c,
        &stored,
        vec![ChunkDesc {
            id: chunk,
            kind: 0,
            len: 512,
        }],
    );
    let (c, stored) = compress::compress(node.clone(), config.zstd_level);
    assert_eq!(c, Compression::None, "a node this small is stored raw");
    w.add_frame(
        c,
        &stored,
        vec![ChunkDesc {
            id: root,
            kind: 1,
            len: u32::try_from(node.len()).expect("small"),
        }],
    );
    let (pack_id, pack_bytes, desc) = w.finish(&Cipher::Plain);

    let record = SnapshotRecord {
        time_ns: T0 * 1_000_000_000 + 123_456_789,
        hostname: "example-host".into(),
        source: "/data/example.db".into(),
        parent: Some(SnapshotId(PARENT)),
        tags: vec!["example".into()],
        note: "a worked example".into(),
        files: vec![FileEntry {
            name: "example.db".into(),
            kind: FileKind::Image,
            size: 512,
            blake3: checksum::chunk_list_digest(&[TreeEntry {
                id: chunk,
                len: 512,
            }]),
            root,
        }],
        total_bytes: 512,
        new_bytes: pack_bytes.len() as u64,
        sqlite: SqliteInfo {
            page_size: 512,
            page_count: 1,
            user_version: 7,
            sqlite_version: "3.46.0".into(),
            journal_mode: "delete".into(),
            lumina: false,
        },
        warnings: vec![],
        seq: Some(2),
        source_state: None,
        chain: None,
        origin: None,
    };
    let (snap_id, snap_file) =
        crate::snapshot::encode_record(&record, &Cipher::Plain, FormatVersion::NEWEST);
    out.push(("snapshot", snap_file));
    let changes = ChangeSummary {
        parent: SnapshotId(PARENT),
        changed_rows: 3,
    };
    let changes_name = format!("changes/{}", snap_id.to_hex());
    out.push((
        "changes",
        Cipher::Plain.write_file(
            FormatVersion::NEWEST,
            Kind::Changes,
            &changes_name,
            &encode_named(&changes),
        ),
    ));
    // The chain (4.10): a tag edit starts it over the snapshot above (an
    // unlinked record, so the base), then a forget removes that snapshot.
    let chain_file = |event: &ChainEvent| {
        let body = encode_named(event);
        let id = SnapshotId(crate::id::blake3_of(&body));
        let name = format!("chain/{}", id.to_hex());
        (
            id,
            Cipher::Plain.write_file(FormatVersion::NEWEST, Kind::ChainEvent, &name, &body),
        )
    };
    let annotation = ChainEvent {
        chain: ChainLink {
            n: 1,
            prev: None,
            base: Some(vec![snap_id]),
        },
        time_ns: (T0 + 7200) * 1_000_000_000,
        hostname: "example-host".into(),
        event: EventKind::Annotation,
        target: Some(snap_id),
        tags: vec!["example".into(), "keep".into()],
        note: "a worked example".into(),
        removed: vec![],
        policy: String::new(),
    };
    let (annotation_id, annotation_file) = chain_file(&annotation);
    out.push(("chain-annotation", annotation_file));
    let deletion = ChainEvent {
        chain: ChainLink {
            n: 2,
            prev: Some(annotation_id),
            base: None,
        },
        time_ns: (T0 + 10800) * 1_000_000_000,
        hostname: "example-host".into(),
        event: EventKind::Deletion,
        target: None,
        tags: vec![],
        note: String::new(),
        removed: vec![RemovedEntry {
            id: snap_id,
            chain: None,
        }],
        policy: format!("forget {}", snap_id.short()),
    };
    out.push(("chain-deletion", chain_file(&deletion).1));
    out.push(("tree-node", node));
    let loc = pack::locations(pack_id, &desc)[0].1;
    out.push(("pack", pack_bytes));
    // The first pack an index lists gets number 0.
    out.push((
        "chunk-location",
        loc.encode(0).expect("small offset").to_vec(),
    ));
    out
}

fn doc_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("store-format.md")
}

/// The stored bytes of the document's zstd frame, when they decompress to the
/// example image (so a newer zstd writing other bytes does not fail the test).
fn doc_frame0(doc_blocks: &[golden_doc::Block]) -> Option<Vec<u8>> {
    let b = golden_doc::block(doc_blocks, "pack", "hex").ok()?;
    let bytes = golden_doc::parse_hexdump(&b.text).ok()?;
    let desc = pack::parse_pack(&bytes, &Cipher::Plain).ok()?;
    let f = desc.frames.first()?;
    let start = usize::try_from(f.offset).ok()?;
    let stored = bytes.get(start..start + f.stored_len as usize)?.to_vec();
    let raw = compress::decompress(Compression::Zstd, &stored, 512).ok()?;
    (raw == example_image()).then_some(stored)
}

#[test]
fn example_image_is_a_valid_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("example.db");
    std::fs::write(&path, example_image()).expect("write");
    let c = rusqlite::Connection::open(&path).expect("open");
    let check: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("check");
    assert_eq!(check, "ok");
    let uv: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("user_version");
    assert_eq!(uv, 7);
}

/// The library writes exactly the bytes store-format.md shows, and the
/// document's decoded blocks are what its bytes decode to.
#[test]
fn store_format_md_examples_are_what_the_library_writes() {
    let path = doc_path();
    let mut doc = std::fs::read_to_string(&path).expect("reading store-format.md");
    let blocks = golden_doc::blocks(&doc).expect("parsing store-format.md");
    let files = examples(doc_frame0(&blocks));
    let bless = std::env::var_os("LUMINA_BACKUP_BLESS").is_some();
    let mut edits: Vec<(std::ops::Range<usize>, String)> = Vec::new();
    let mut stale = Vec::new();
    for (name, bytes) in &files {
        let want_hex = golden_doc::hexdump(bytes);
        let want_decoded =
            golden_doc::describe(name, bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        for (what, want) in [("hex", want_hex), ("decoded", want_decoded)] {
            let b = golden_doc::block(&blocks, name, what).unwrap_or_else(|e| panic!("{e}"));
            if b.text != want {
                stale.push(format!("{name} {what}"));
                edits.push((b.range.clone(), want));
            }
        }
    }
    if bless && !edits.is_empty() {
        edits.sort_by_key(|(r, _)| std::cmp::Reverse(r.start));
        for (r, text) in edits {
            doc.replace_range(r, &text);
        }
        std::fs::write(&path, doc).expect("writing store-format.md");
        return;
    }
    assert!(
        stale.is_empty(),
        "store-format.md differs from what the library writes in: {}. \
         If the format change is intended, run with LUMINA_BACKUP_BLESS=1 and \
         record it in the version history",
        stale.join(", ")
    );
}

/// The library reads the document's example files back to the values they were
/// made from, sealed ones included, and seals the way the document says.
#[test]
fn library_reads_the_examples_and_seals_as_documented() {
    let files = examples(None);
    let get = |n: &str| {
        files
            .iter()
            .find(|(name, _)| *name == n)
            .map(|(_, b)| b.clone())
            .expect("example")
    };
    let sealed = Cipher::Sealed(Arc::new(master()));
    let plain_body = Cipher::Plain
        .read_file(Kind::Config, "config", &get("config"))
        .expect("plain config");
    let config: Config = decode(&plain_body).expect("decode");
    config.validate().expect("valid");
    assert_eq!(config, example_config());
    let opened = sealed
        .read_file(Kind::Config, "config", &get("config-sealed"))
        .expect("the library opens the sealed example");
    assert_eq!(opened, plain_body);

    // A file the library seals equals the example once its nonce is used.
    let lib = sealed.write_file(FormatVersion::NEWEST, Kind::Config, "config", &plain_body);
    let mut n = [0u8; 24];
    n.copy_from_slice(&lib[HEADER_LEN..HEADER_LEN + 24]);
    assert_eq!(lib, sealed_file(Kind::Config, "config", &plain_body, &n));

    let key: KeyFile = decode(open_file(&get("key"), Kind::Key).expect("key")).expect("decode");
    key.params.check().expect("params in range");
    let kek = crypto::derive_key(b"example", &key.salt, key.params).expect("kdf");
    let ad = golden_doc::key_wrap_ad(
        key.params.m_cost_kib,
        key.params.t_cost,
        key.params.p_cost,
        &key.salt,
    );
    let m = crypto::open_with(&kek, &ad, &key.wrapped).expect("unwrap");
    assert_eq!(m, golden_doc::example_master_key());

    let snap = get("snapshot");
    let body = open_file(&snap, Kind::Snapshot).expect("snapshot");
    let id = SnapshotId(crate::id::blake3_of(body));
    let rec = crate::snapshot::decode_record_file(&id, &snap, &Cipher::Plain).expect("record");
    assert_eq!(rec.seq, Some(2));
    let _: RetentionSettings =
        decode(open_file(&get("retention"), Kind::Retention).expect("retention")).expect("decode");
    let _: StatusRecord =
        decode(open_file(&get("status"), Kind::Status).expect("status")).expect("decode");
    let ch: ChangeSummary =
        decode(open_file(&get("changes"), Kind::Changes).expect("changes")).expect("decode");
    assert_eq!(ch.changed_rows, 3);
    for (name, n) in [("chain-annotation", 1), ("chain-deletion", 2)] {
        let e: ChainEvent =
            decode(open_file(&get(name), Kind::ChainEvent).expect("chain event")).expect("decode");
        e.validate().expect("a valid chain event");
        assert_eq!(e.chain.n, n);
    }
    let node = decode_tree_node(&get("tree-node")).expect("node");
    assert_eq!(node.level, 0);
    let desc = pack::parse_pack(&get("pack"), &Cipher::Plain).expect("pack");
    assert_eq!(desc.frames.len(), 2);
    let pack_id = crate::id::PackId(crate::id::blake3_of(&get("pack")));
    let loc = ChunkLoc::decode(&get("chunk-location"), |no| (no == 0).then_some(pack_id))
        .expect("location");
    assert_eq!(loc.len, 512);
    assert_eq!(
        rec.files[0].root,
        ChunkId(crate::id::blake3_of(&get("tree-node")))
    );
}
