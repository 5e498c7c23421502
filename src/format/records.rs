//! The records stored in repository files, and their rmp-serde encodings.
//!
//! Records that evolve (config, snapshot) are encoded as MessagePack *maps* (named
//! fields; readers ignore unknown fields and default missing optional ones).
//! Records that are many and small (pack descriptions, tree nodes) are encoded as
//! *arrays* (positional, compact). Every decode validates what it returns.

use serde::{Deserialize, Serialize};

use super::DecodeError;
use crate::chunker::{ByteParams, PageParams};
use crate::id::{ChunkId, SnapshotId};

/// The repository config (`config` file).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// Random repository id (hex), to tell repositories apart.
    pub repo_id: String,
    /// Creation time, unix seconds.
    pub created: i64,
    /// How database images are cut into chunks.
    pub page_chunker: PageParams,
    /// How other files are cut into chunks.
    pub byte_chunker: ByteParams,
    /// zstd level for frames (0 = no compression).
    pub zstd_level: i32,
    /// Target raw size of one compressed frame of consecutive chunks.
    pub frame_target: u32,
    /// Target size of one pack file.
    pub pack_target: u32,
    /// Average entries per chunk-list tree node (power of two).
    pub tree_fanout: u32,
}

impl Config {
    /// Checks every field is usable.
    pub fn validate(&self) -> Result<(), DecodeError> {
        let ok = self.page_chunker.is_valid()
            && self.byte_chunker.is_valid()
            && (0..=19).contains(&self.zstd_level)
            && (4096..=16 << 20).contains(&self.frame_target)
            && (64 << 10..=1 << 30).contains(&self.pack_target)
            && self.tree_fanout.is_power_of_two()
            && (2..=1024).contains(&self.tree_fanout);
        if ok {
            Ok(())
        } else {
            Err(DecodeError::Invalid(format!(
                "config values out of range: {self:?}"
            )))
        }
    }
}

/// What a file in a snapshot is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    /// The database image.
    Image,
    /// A JSON export of one table.
    Export,
    /// The manifest (JSON).
    Manifest,
    /// How the exports were cut into segments (`exports.map`, format 2).
    #[serde(rename = "export-map")]
    ExportMap,
}

impl FileKind {
    /// Files the store keeps for itself (the export map): not listed to users,
    /// not restored by `restore --all`, but referenced like any file.
    pub fn is_internal(self) -> bool {
        self == FileKind::ExportMap
    }
}

/// One file of a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Name inside the snapshot (`lumina.db`, `metadata.json`, `manifest.json`).
    pub name: String,
    /// What it is.
    pub kind: FileKind,
    /// Size in bytes.
    pub size: u64,
    /// BLAKE3 of the whole file (plain, unkeyed).
    #[serde(with = "serde_bytes")]
    pub blake3: [u8; 32],
    /// Root node of its chunk-list tree.
    pub root: ChunkId,
}

/// Facts about the captured database.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SqliteInfo {
    /// Page size in bytes.
    pub page_size: u32,
    /// Number of pages in the image.
    pub page_count: u64,
    /// `PRAGMA user_version` (the app's schema version).
    pub user_version: i64,
    /// SQLite library version that read it.
    pub sqlite_version: String,
    /// Journal mode at capture ("wal", "delete", ...).
    pub journal_mode: String,
    /// Whether it has Lumina's four tables.
    pub lumina: bool,
}

/// A snapshot record (`snapshots/<id>`); the id is the BLAKE3 of its encoding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    /// Capture time, unix nanoseconds (UTC).
    pub time_ns: i64,
    /// Host that took it.
    pub hostname: String,
    /// Absolute path of the source database.
    pub source: String,
    /// The previous snapshot of the same database, if any.
    pub parent: Option<SnapshotId>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Free-text note.
    #[serde(default)]
    pub note: String,
    /// The files, image first.
    pub files: Vec<FileEntry>,
    /// Sum of the files' sizes.
    pub total_bytes: u64,
    /// Bytes this snapshot added to the repository (stored, after compression).
    pub new_bytes: u64,
    /// Facts about the database.
    pub sqlite: SqliteInfo,
    /// Consistency findings (warnings, never a reason to refuse a snapshot).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Position in its database's history: one more than the highest `seq` of
    /// that database's snapshots when it was taken (absent in older records,
    /// which count as 0). Orders the history when the clock went back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// What identified the source database's state when it was taken, so the
    /// next snapshot can tell "unchanged" without reading pages (absent in
    /// older records and when the state could not be read exactly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_state: Option<SourceState>,
    /// Its link in the repository's history chain (store-format.md 4.10);
    /// absent in records written before the chain began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<super::ChainLink>,
    /// The snapshot this record is a copy of, in the repository `copy` took it
    /// from, when the copy had to write a new record (store-format.md 4.2,
    /// 6.11); absent in snapshots taken here and in verbatim copies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<crate::id::SnapshotId>,
}

/// The source database's state as seen before a capture (`sqlite::unchanged`):
/// two equal states mean the same database content. Fields a route does not
/// use are 0. Encoded as a map (all fields required inside it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceState {
    /// How the state was read: `rollback`, `wal` or `wal-idle`.
    pub route: String,
    /// Page size of the database.
    pub page_size: u32,
    /// Device and inode of the database file (0 where the platform has none).
    pub dev: u64,
    /// Inode of the database file.
    pub ino: u64,
    /// Database file size in bytes (`rollback`, `wal-idle`).
    pub size: u64,
    /// Database file modification time, unix nanoseconds (`rollback`, `wal-idle`).
    pub mtime_ns: i64,
    /// Database file status-change time, unix nanoseconds (`rollback`, `wal-idle`).
    pub ctime_ns: i64,
    /// Header offset 24: the file change counter (`rollback`).
    pub change_counter: u32,
    /// Header offset 28: the database size in pages (`rollback`).
    pub header_pages: u32,
    /// Header offset 92: the version-valid-for number (`rollback`).
    pub version_valid_for: u32,
    /// WAL header salt-1 (`wal`).
    pub wal_salt1: u32,
    /// WAL header salt-2 (`wal`).
    pub wal_salt2: u32,
    /// WAL header checkpoint sequence number (`wal`).
    pub wal_ckpt_seq: u32,
    /// The last valid commit frame of the WAL, 1-based (`wal`).
    pub wal_frames: u32,
    /// Inode of the `-wal` file (`wal`, `wal-idle`; 0 when absent).
    pub wal_ino: u64,
    /// `-wal` file size (`wal-idle`).
    pub wal_size: u64,
    /// `-wal` file status-change time, unix nanoseconds (`wal-idle`).
    pub wal_ctime_ns: i64,
}

impl SnapshotRecord {
    /// The sum of the sizes of the files users see (all but internal ones):
    /// what `total_bytes` holds.
    pub fn user_bytes(&self) -> u64 {
        self.files
            .iter()
            .filter(|f| !f.kind.is_internal())
            .map(|f| f.size)
            .sum()
    }

    /// Checks invariants after decoding.
    pub fn validate(&self) -> Result<(), DecodeError> {
        if self.files.is_empty() {
            return Err(DecodeError::Invalid("snapshot lists no files".into()));
        }
        if let Some(link) = &self.chain {
            link.validate()?;
        }
        let sum = self.user_bytes();
        if sum != self.total_bytes {
            return Err(DecodeError::Invalid(format!(
                "total_bytes {} is not the sum of file sizes {sum}",
                self.total_bytes
            )));
        }
        for f in &self.files {
            if f.name.is_empty() || f.name.contains('/') || f.name.contains('\0') || f.name == ".."
            {
                return Err(DecodeError::Invalid(format!("bad file name {:?}", f.name)));
            }
        }
        Ok(())
    }
}

/// One chunk inside a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkDesc {
    /// Chunk id.
    pub id: ChunkId,
    /// 0 = data, 1 = tree node.
    pub kind: u8,
    /// Plaintext length.
    pub len: u32,
}

/// A frame: consecutive chunks compressed (or stored raw) as one unit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameDesc {
    /// Offset of the stored frame from the start of the pack file.
    pub offset: u64,
    /// Stored length.
    pub stored_len: u32,
    /// Length after decompression (sum of chunk lengths).
    pub raw_len: u32,
    /// Compression code (`compress::Compression`).
    pub compression: u8,
    /// The chunks, in order.
    pub chunks: Vec<ChunkDesc>,
}

/// The self-description at the end of a pack: enough to rebuild the index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackDescription {
    /// Frames, in file order.
    pub frames: Vec<FrameDesc>,
}

impl PackDescription {
    /// Checks the frames tile `[data_start, data_end)` in order and their chunk
    /// lengths add up.
    pub fn validate(&self, data_start: u64, data_end: u64) -> Result<(), DecodeError> {
        let mut at = data_start;
        for (i, f) in self.frames.iter().enumerate() {
            if f.offset != at {
                return Err(DecodeError::Invalid(format!(
                    "frame {i} at {} expected {at}",
                    f.offset
                )));
            }
            at = at
                .checked_add(u64::from(f.stored_len))
                .ok_or_else(|| DecodeError::Invalid("frame offset overflow".into()))?;
            let sum: u64 = f.chunks.iter().map(|c| u64::from(c.len)).sum();
            if sum != u64::from(f.raw_len) || f.chunks.is_empty() {
                return Err(DecodeError::Invalid(format!(
                    "frame {i} chunk lengths {sum} != raw {}",
                    f.raw_len
                )));
            }
            if crate::compress::Compression::from_code(f.compression).is_none()
                || f.chunks.iter().any(|c| c.kind > 1)
            {
                return Err(DecodeError::Invalid(format!(
                    "frame {i} has an unknown code"
                )));
            }
        }
        if at != data_end {
            return Err(DecodeError::Invalid(format!(
                "frames end at {at}, data ends at {data_end}"
            )));
        }
        Ok(())
    }
}

/// One entry of a chunk-list tree node: a child and the bytes it spans.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeEntry {
    /// Data chunk (level 0) or child node (level > 0).
    pub id: ChunkId,
    /// Bytes of file content under this entry.
    pub len: u64,
}

/// A node of a file's chunk-list tree, stored as a chunk of kind 1.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeNode {
    /// 0 for nodes whose entries are data chunks.
    pub level: u8,
    /// Children in file order.
    pub entries: Vec<TreeEntry>,
}

/// A key file (`keys/<id>`, kind 4, map): the master key wrapped by a key derived
/// from one passphrase.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyFile {
    /// Key derivation function; `"argon2id"`.
    pub kdf: String,
    /// Its parameters.
    pub params: crate::crypto::KdfParams,
    /// Random salt (16 bytes).
    #[serde(with = "serde_bytes")]
    pub salt: Vec<u8>,
    /// The master key sealed under the derived key: nonce, ciphertext, tag.
    #[serde(with = "serde_bytes")]
    pub wrapped: Vec<u8>,
    /// Creation time, unix seconds.
    pub created: i64,
    /// A label for `key list` (user, host, purpose).
    #[serde(default)]
    pub label: String,
}

/// Retention settings (`retention` file, kind 5, map): the rules `forget`
/// applies when given none on the command line. Every field is optional; an
/// absent file means no rules. Durations are text such as `7d` or `1y6m`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionSettings {
    /// Keep the N newest snapshots (the app's `BackupConfig.retention`).
    #[serde(default)]
    pub keep_last: Option<u32>,
    /// Keep the newest of each of the N most recent hours with snapshots.
    #[serde(default)]
    pub keep_hourly: Option<u32>,
    /// Same per day.
    #[serde(default)]
    pub keep_daily: Option<u32>,
    /// Same per ISO week.
    #[serde(default)]
    pub keep_weekly: Option<u32>,
    /// Same per month.
    #[serde(default)]
    pub keep_monthly: Option<u32>,
    /// Same per year.
    #[serde(default)]
    pub keep_yearly: Option<u32>,
    /// Keep every snapshot within this span of the newest one.
    #[serde(default)]
    pub keep_within: Option<String>,
    /// Keep every snapshot with one of these tags.
    #[serde(default)]
    pub keep_tags: Vec<String>,
    /// How long `pre-restore` snapshots are kept (default `7d`).
    #[serde(default)]
    pub keep_pre_restore: Option<String>,
    /// How long `before:*` snapshots are kept (default `30d`; since 0.1,
    /// sixth session: older readers ignore it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_before: Option<String>,
}

/// How many rows a snapshot changed against its parent (`changes/<snapshot id>`,
/// kind 7, map), written when it becomes known: at snapshot time when the
/// database did not change, or by a `diff` of the snapshot against its parent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeSummary {
    /// The parent the counts are against.
    pub parent: SnapshotId,
    /// Rows added, removed or changed, over all tables.
    pub changed_rows: u64,
}

/// The status file (`status`, kind 6, map): the last failure of an operation, for
/// `status` (the app's and the daemon's failure log).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusRecord {
    /// When it failed, unix nanoseconds.
    pub time_ns: i64,
    /// What failed ("snapshot", "watch", ...).
    pub operation: String,
    /// The database involved, if any.
    #[serde(default)]
    pub db: String,
    /// The error message.
    pub message: String,
}

/// Encodes a record as a MessagePack map (named fields).
pub fn encode_named<T: Serialize>(value: &T) -> Vec<u8> {
    rmp_serde::to_vec_named(value).expect("in-memory records always encode")
}

/// Encodes a record as a MessagePack array (positional fields).
pub fn encode_compact<T: Serialize>(value: &T) -> Vec<u8> {
    rmp_serde::to_vec(value).expect("in-memory records always encode")
}

/// Decodes any record.
pub fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, DecodeError> {
    rmp_serde::from_slice(bytes).map_err(|e| DecodeError::Record(e.to_string()))
}

/// Decodes and validates a tree node.
pub fn decode_tree_node(bytes: &[u8]) -> Result<TreeNode, DecodeError> {
    let node: TreeNode = decode(bytes)?;
    if node.level > 16 {
        return Err(DecodeError::Invalid(format!(
            "tree level {} too deep",
            node.level
        )));
    }
    Ok(node)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample_snapshot() -> SnapshotRecord {
        SnapshotRecord {
            time_ns: 1_790_000_000_123_456_789,
            hostname: "host".into(),
            source: "/home/a/.lumina/lumina.db".into(),
            parent: Some(SnapshotId([1; 32])),
            tags: vec!["manual".into()],
            note: "before import".into(),
            files: vec![FileEntry {
                name: "lumina.db".into(),
                kind: FileKind::Image,
                size: 8192,
                blake3: [2; 32],
                root: ChunkId([3; 32]),
            }],
            total_bytes: 8192,
            new_bytes: 100,
            sqlite: SqliteInfo {
                page_size: 4096,
                page_count: 2,
                ..Default::default()
            },
            warnings: vec![],
            seq: None,
            source_state: None,
            chain: None,
            origin: None,
        }
    }

    /// Issue #10 item 2: `source_state` is optional like `seq`: absent, the
    /// record encodes exactly as before; present, it round-trips.
    #[test]
    fn source_state_is_an_optional_field() {
        let old = sample_snapshot();
        let bytes = encode_named(&old);
        assert!(!bytes.windows(12).any(|w| w == b"source_state"));
        let newer = SnapshotRecord {
            source_state: Some(SourceState {
                route: "wal".into(),
                page_size: 4096,
                wal_salt1: 7,
                wal_frames: 3,
                ..Default::default()
            }),
            ..sample_snapshot()
        };
        let back: SnapshotRecord = decode(&encode_named(&newer)).expect("decode");
        assert_eq!(back, newer);
        let read_old: SnapshotRecord = decode(&bytes).expect("decode old");
        assert_eq!(read_old.source_state, None);
    }

    /// Issue #8 item 27: `seq` is optional: records without it (older writers)
    /// decode, and a record without it encodes as before (same id).
    #[test]
    fn seq_is_an_optional_field() {
        let old = sample_snapshot();
        let bytes = encode_named(&old);
        assert!(
            !bytes.windows(3).any(|w| w == b"seq"),
            "no seq key when absent"
        );
        let newer = SnapshotRecord {
            seq: Some(7),
            ..sample_snapshot()
        };
        let back: SnapshotRecord = decode(&encode_named(&newer)).expect("decode");
        assert_eq!(back.seq, Some(7));
        let read_old: SnapshotRecord = decode(&bytes).expect("decode old");
        assert_eq!(read_old.seq, None);
    }

    #[test]
    fn origin_is_an_optional_field_written_as_bin32_last() {
        let old = sample_snapshot();
        let bytes = encode_named(&old);
        assert!(
            !bytes.windows(6).any(|w| w == b"origin"),
            "no origin key when absent: a record encodes (and is named) as before"
        );
        let copied = SnapshotRecord {
            origin: Some(crate::id::SnapshotId([0xab; 32])),
            ..sample_snapshot()
        };
        let encoded = encode_named(&copied);
        // The key, then bin8 of 32 bytes, at the end of the map (4.2).
        let mut tail = vec![0xa6];
        tail.extend_from_slice(b"origin");
        tail.extend_from_slice(&[0xc4, 32]);
        tail.extend_from_slice(&[0xab; 32]);
        assert!(encoded.ends_with(&tail), "origin is the map's last entry");
        let back: SnapshotRecord = decode(&encoded).expect("decode");
        assert_eq!(back, copied);
        back.validate().expect("valid");
        let read_old: SnapshotRecord = decode(&bytes).expect("decode old");
        assert_eq!(read_old.origin, None);
        // An origin that is not 32 bytes is refused.
        let mut bad = encoded.clone();
        let at = bad.len() - 34;
        bad[at + 1] = 31;
        bad.pop();
        assert!(decode::<SnapshotRecord>(&bad).is_err());
    }

    #[test]
    fn snapshot_round_trip_and_unknown_fields_tolerated() {
        let rec = sample_snapshot();
        let bytes = encode_named(&rec);
        let back: SnapshotRecord = decode(&bytes).expect("decode");
        assert_eq!(back, rec);
        back.validate().expect("valid");
        // A newer writer adding a field: older readers still decode.
        let mut map: serde_json::Value = serde_json::to_value(&rec).expect("json");
        map["future_field"] = serde_json::json!(42);
        let with_extra = rmp_serde::to_vec_named(&map).expect("encode");
        let _: SnapshotRecord = decode(&with_extra).expect("tolerates unknown fields");
    }

    #[test]
    fn golden_tree_node_bytes() {
        let node = TreeNode {
            level: 0,
            entries: vec![TreeEntry {
                id: ChunkId([0xAB; 32]),
                len: 4096,
            }],
        };
        let bytes = encode_compact(&node);
        // [level, [[id, len]]]: fixarray(2), 0, fixarray(1), fixarray(2), bin8(32) id, uint16 4096.
        assert_eq!(
            hex::encode(&bytes),
            format!("92009192c420{}cd1000", "ab".repeat(32))
        );
    }

    #[test]
    fn pack_description_validation() {
        let d = PackDescription {
            frames: vec![FrameDesc {
                offset: 16,
                stored_len: 10,
                raw_len: 20,
                compression: 1,
                chunks: vec![ChunkDesc {
                    id: ChunkId([1; 32]),
                    kind: 0,
                    len: 20,
                }],
            }],
        };
        d.validate(16, 26).expect("valid");
        assert!(d.validate(16, 27).is_err());
        assert!(d.validate(0, 10).is_err());
    }

    proptest! {
        #[test]
        fn tree_node_round_trip(level in 0u8..5, entries in proptest::collection::vec((any::<[u8; 32]>(), any::<u64>()), 0..50)) {
            let node = TreeNode { level, entries: entries.into_iter().map(|(id, len)| TreeEntry { id: ChunkId(id), len }).collect() };
            let back = decode_tree_node(&encode_compact(&node)).expect("round trip");
            prop_assert_eq!(back, node);
        }

        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_tree_node(&bytes);
            let _ = decode::<SnapshotRecord>(&bytes).map(|r| r.validate());
            let _ = decode::<PackDescription>(&bytes).map(|d| d.validate(16, 1000));
            let _ = decode::<Config>(&bytes).map(|c| c.validate());
        }
    }
}

#[cfg(test)]
mod keep_before_tests {
    use super::*;

    /// `keep_before` (sixth session) is written only when set: a file without
    /// it keeps the bytes earlier writers wrote, and both decode.
    #[test]
    fn keep_before_is_optional_both_ways() {
        let old = RetentionSettings {
            keep_last: Some(4),
            ..Default::default()
        };
        let bytes = encode_named(&old);
        assert!(!bytes.windows(11).any(|w| w == b"keep_before"));
        assert_eq!(decode::<RetentionSettings>(&bytes).expect("decodes"), old);
        let new = RetentionSettings {
            keep_before: Some("60d".into()),
            ..old.clone()
        };
        let bytes = encode_named(&new);
        assert_eq!(decode::<RetentionSettings>(&bytes).expect("decodes"), new);
        // An earlier reader's view: the same map without the field it lacks.
        #[derive(Deserialize, Debug, PartialEq)]
        struct Earlier {
            keep_last: Option<u32>,
        }
        assert_eq!(
            decode::<Earlier>(&bytes).expect("ignored"),
            Earlier { keep_last: Some(4) }
        );
    }
}
