//! Snapshots: records with their ids, the manifest file, and resolving what the
//! user typed (`latest`, a full id, a unique prefix) to one snapshot.
//!
//! Knows nothing of presentation or storage; works on decoded records.
//! `latest` and `--at` choose within one database's history ([`order`]), and
//! skip the `pre-restore` safety copies unless the database has nothing else
//! ([`choosable`]): restoring `latest` twice must not put back the state the
//! first restore replaced.

pub mod order;

use serde::Serialize;

use crate::error::{Error, Repr, Result};
use crate::format::{self, Cipher, FileEntry, FileKind, FormatVersion, Kind, SnapshotRecord};
use crate::id::SnapshotId;

/// Shortest prefix accepted for a snapshot id.
pub const MIN_PREFIX: usize = 6;

/// A snapshot: its id and record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Content id of the record.
    pub id: SnapshotId,
    /// The record.
    pub record: SnapshotRecord,
}

impl Snapshot {
    /// The files a user sees (`show`, `restore --all`, `--json`): every file
    /// but the store's own ([`FileKind::is_internal`]).
    pub fn user_files(&self) -> impl Iterator<Item = &FileEntry> {
        self.record.files.iter().filter(|f| !f.kind.is_internal())
    }

    /// The database image entry.
    pub fn image(&self) -> Option<&FileEntry> {
        self.record.files.iter().find(|f| f.kind == FileKind::Image)
    }

    /// The database image entry; a snapshot without one is damaged.
    pub(crate) fn image_entry(&self) -> Result<&FileEntry> {
        self.image().ok_or_else(|| {
            crate::error::Error::corrupt(
                format!("snapshot {}", self.id.short()),
                "has no database image",
            )
        })
    }

    /// A file by name; `image` names the database image whatever its name.
    pub fn file(&self, name: &str) -> Result<&FileEntry> {
        let found = if name == "image" {
            self.image()
        } else {
            self.record.files.iter().find(|f| f.name == name)
        };
        found.ok_or_else(|| {
            Repr::NoSuchFile {
                snapshot: self.id.short(),
                name: name.to_string(),
                available: self
                    .user_files()
                    .map(|f| f.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }
            .into()
        })
    }
}

/// Path of a snapshot file in the repository.
pub fn snapshot_path(id: &SnapshotId) -> String {
    crate::layout::snapshot(id)
}

/// Encodes a record into its file bytes (of the repository's format
/// `version`); returns the id (BLAKE3 of the body, keyed in an encrypted
/// repository).
pub fn encode_record(
    record: &SnapshotRecord,
    cipher: &Cipher,
    version: FormatVersion,
) -> (SnapshotId, Vec<u8>) {
    let body = format::encode_named(record);
    let id = SnapshotId(cipher.id_hasher().chunk_id(&body).0);
    (
        id,
        cipher.write_file(version, Kind::Snapshot, &id.to_hex(), &body),
    )
}

/// Opens a snapshot file (its envelope, seal and checksum) and checks that its
/// body is the record `id` names; returns the body.
fn checked_body(id: &SnapshotId, bytes: &[u8], cipher: &Cipher) -> Result<Vec<u8>> {
    let object = format!("snapshot {}", id.short());
    let body = cipher
        .read_file(Kind::Snapshot, &id.to_hex(), bytes)
        .map_err(|e| Error::decode(&object, e))?;
    if cipher.id_hasher().chunk_id(&body).0 != id.0 {
        return Err(Error::corrupt(object, "content does not match its name"));
    }
    Ok(body)
}

/// Decodes a snapshot file and checks it is the record `id` names.
pub fn decode_record_file(
    id: &SnapshotId,
    bytes: &[u8],
    cipher: &Cipher,
) -> Result<SnapshotRecord> {
    let body = checked_body(id, bytes, cipher)?;
    decode_record_body(id, &body)
}

/// Decodes and validates a record body (as kept in the index).
pub fn decode_record_body(id: &SnapshotId, body: &[u8]) -> Result<SnapshotRecord> {
    let object = format!("snapshot {}", id.short());
    let rec: SnapshotRecord = format::decode(body).map_err(|e| Error::decode(&object, e))?;
    rec.validate().map_err(|e| Error::decode(&object, e))?;
    Ok(rec)
}

/// The part of a record that places a snapshot in its database's history
/// ([`order`]): what a new snapshot needs of every earlier one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// Content id of the record.
    pub id: SnapshotId,
    /// The record's `time_ns`.
    pub time_ns: i64,
    /// The record's `source`.
    pub source: String,
    /// The record's `parent`.
    pub parent: Option<SnapshotId>,
    /// The record's `seq`.
    pub seq: Option<u64>,
    /// The record's link in the history chain (absent before the chain).
    pub chain: Option<crate::format::ChainLink>,
}

/// The fields of a record a [`Head`] holds; rmp-serde skips the others (the
/// file list is most of a record) without building them.
#[derive(serde::Deserialize)]
struct HeadFields {
    time_ns: i64,
    source: String,
    parent: Option<SnapshotId>,
    #[serde(default)]
    seq: Option<u64>,
    #[serde(default)]
    chain: Option<crate::format::ChainLink>,
}

/// Decodes the head of a snapshot file, checking it is the record `id` names
/// as [`decode_record_file`] does (the rest of the record is not validated).
pub fn decode_head_file(id: &SnapshotId, bytes: &[u8], cipher: &Cipher) -> Result<Head> {
    let body = checked_body(id, bytes, cipher)?;
    let head = match format::decode::<HeadFields>(&body) {
        Ok(h) => h,
        // Not a named map (never written so, but decodable as a full
        // record): the full decode decides.
        Err(_) => {
            let r = decode_record_body(id, &body)?;
            HeadFields {
                time_ns: r.time_ns,
                source: r.source,
                parent: r.parent,
                seq: r.seq,
                chain: r.chain,
            }
        }
    };
    if let Some(link) = &head.chain {
        link.validate()
            .map_err(|e| Error::decode(format!("snapshot {}", id.short()), e))?;
    }
    Ok(Head {
        id: *id,
        time_ns: head.time_ns,
        source: head.source,
        parent: head.parent,
        seq: head.seq,
        chain: head.chain,
    })
}

/// Finds the one snapshot `spec` names: `latest`, a full id, or a unique prefix
/// of at least [`MIN_PREFIX`] hex characters. `snapshots` is oldest first (in
/// history order, as [`order::order`] gives it). `latest` is the newest snapshot
/// of database `db` (the source as recorded) that is not a `pre-restore` safety
/// copy (see [`choosable`]); without `db` the repository must hold one database
/// only (else exit 2 naming them). An id or prefix names any snapshot.
pub fn resolve<'a>(
    spec: &str,
    snapshots: &'a [Snapshot],
    db: Option<&str>,
) -> Result<&'a Snapshot> {
    let spec = spec.trim();
    if spec == "latest" {
        let of_db = choosable(of_database(snapshots, db)?);
        return of_db.last().copied().ok_or_else(|| match db {
            Some(d) => Error::from(Repr::NoSnapshotOf(d.into()))
                .with_remedy(crate::error::Remedy::TakeSnapshot(d.into())),
            None => Repr::UnknownSnapshot("latest (the repository has no snapshots)".into()).into(),
        });
    }
    let lower = spec.to_ascii_lowercase();
    if lower.len() < MIN_PREFIX || lower.len() > 64 || !lower.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Err(Error::invalid_input(format!(
            "`{spec}` is not a snapshot id: give `latest`, or at least {MIN_PREFIX} hex characters of an id"
        )));
    }
    let matches: Vec<&Snapshot> = snapshots
        .iter()
        .filter(|s| s.id.to_hex().starts_with(&lower))
        .collect();
    match matches.len() {
        0 => Err(Repr::UnknownSnapshot(spec.to_string()).into()),
        1 => Ok(matches[0]),
        count => Err(Repr::AmbiguousSnapshot {
            prefix: spec.to_string(),
            count,
        }
        .into()),
    }
}

/// Whether `s` is a `pre-restore` safety copy (the state a `restore --force`
/// replaced).
pub fn is_pre_restore(s: &Snapshot) -> bool {
    s.record
        .tags
        .iter()
        .any(|t| t == crate::retention::PRE_RESTORE_TAG)
}

/// The snapshots of one database that `latest` and `--at` choose among: all
/// but the `pre-restore` safety copies, or the copies when there is nothing
/// else. A safety copy holds the state a restore replaced (perhaps damaged);
/// as `latest` it would make a second `restore latest` undo the first. It
/// stays reachable by its id. Order is kept.
pub fn choosable(of_db: Vec<&Snapshot>) -> Vec<&Snapshot> {
    if of_db.iter().all(|s| is_pre_restore(s)) {
        return of_db;
    }
    of_db.into_iter().filter(|s| !is_pre_restore(s)).collect()
}

/// The databases (recorded sources) of `snapshots`, sorted, each once.
pub fn databases(snapshots: &[Snapshot]) -> Vec<&str> {
    let mut sources: Vec<&str> = snapshots.iter().map(|s| s.record.source.as_str()).collect();
    sources.sort_unstable();
    sources.dedup();
    sources
}

/// The snapshots of database `db`, in their order; without `db`, all of them,
/// provided they are of one database (else exit 2 naming the databases).
pub fn of_database<'a>(snapshots: &'a [Snapshot], db: Option<&str>) -> Result<Vec<&'a Snapshot>> {
    if db.is_none() {
        let sources = databases(snapshots);
        if sources.len() > 1 {
            return Err(Error::invalid_input(format!(
                "the repository has snapshots of {} databases ({})",
                sources.len(),
                sources.join(", ")
            ))
            .with_remedy(crate::error::Remedy::NameDatabase));
        }
    }
    Ok(snapshots
        .iter()
        .filter(|s| db.is_none_or(|d| s.record.source == d))
        .collect())
}

/// Checks a tag given by the user: not empty, no comma (tags are listed and
/// stored in settings comma-separated), no newline or other control character
/// (they would forge lines in listings). Exit 2 naming the tag otherwise.
pub fn check_tag(tag: &str) -> Result<()> {
    let why = if tag.trim().is_empty() {
        "is empty"
    } else if tag.contains(',') {
        "contains a comma"
    } else if tag.chars().any(char::is_control) {
        "contains a newline or another control character"
    } else {
        return Ok(());
    };
    Err(Error::invalid_input(format!(
        "tag {:?} {why}: tags are single words or phrases without commas or control characters",
        tag
    )))
}

/// RFC 3339 (UTC) form of a snapshot time.
pub fn rfc3339(time_ns: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(time_ns))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| time_ns.to_string())
}

/// Which snapshots a listing shows.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only this source database (absolute path as recorded).
    pub db: Option<String>,
    /// Only snapshots with this tag.
    pub tag: Option<String>,
    /// Only snapshots taken at or after this time (unix ns).
    pub since_ns: Option<i64>,
    /// Only snapshots taken at or before this time (unix ns).
    pub until_ns: Option<i64>,
}

impl Filter {
    /// Whether `s` passes.
    pub fn matches(&self, s: &Snapshot) -> bool {
        let r = &s.record;
        self.db.as_ref().is_none_or(|d| &r.source == d)
            && self.tag.as_ref().is_none_or(|t| r.tags.contains(t))
            && self.since_ns.is_none_or(|t| r.time_ns >= t)
            && self.until_ns.is_none_or(|t| r.time_ns <= t)
    }
}

/// The newest snapshot of database `db` taken at or before `time_ns`
/// (`snapshots` oldest first, in history order: after a clock went back, the
/// newest in the history whose time is at or before `time_ns`), skipping
/// `pre-restore` safety copies as `latest` does ([`choosable`]). Without `db`
/// the snapshots must all be of one database. Before the first snapshot: an
/// error naming the earliest.
pub fn at<'a>(snapshots: &'a [Snapshot], db: Option<&str>, time_ns: i64) -> Result<&'a Snapshot> {
    let of_db = choosable(of_database(snapshots, db)?);
    let Some(first) = of_db.first() else {
        return Err(Repr::UnknownSnapshot(match db {
            Some(d) => format!("any snapshot of {d}"),
            None => "any snapshot (the repository is empty)".into(),
        })
        .into());
    };
    of_db
        .iter()
        .rev()
        .find(|s| s.record.time_ns <= time_ns)
        .copied()
        .ok_or_else(|| {
            Repr::BeforeFirstSnapshot {
                earliest: first.id.short(),
                time_ns: first.record.time_ns,
            }
            .into()
        })
}

/// The `manifest.json` file of a snapshot: facts read in the capture transaction.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Manifest {
    /// Manifest format.
    pub manifest_version: u32,
    /// Source database path.
    pub source: String,
    /// Capture time (RFC 3339, UTC).
    pub time: String,
    /// Page size, page count, `user_version`, SQLite version, journal mode, and
    /// whether Lumina's tables are present (flattened into the JSON object).
    #[serde(flatten)]
    pub sqlite: crate::format::SqliteInfo,
    /// Row count per table.
    #[serde(default)]
    pub tables: std::collections::BTreeMap<String, u64>,
    /// Consistency warnings, and the findings of the capture's checks.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// SQLite's quick check of the captured state: `ok`, `failed: …`, or `not
    /// checked: …` (over the time budget, or it could not run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quick_check: Option<String>,
    /// How the page image was read: `dbpage`, `file`, `serialize` or `raw`
    /// (`sqlite::capture_routes`), or `unchanged`: not read, the parent's
    /// (`sqlite::unchanged`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture_route: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::format::SqliteInfo;

    fn snap(hex_start: u8, t: i64) -> Snapshot {
        let mut id = [0u8; 32];
        id[0] = hex_start;
        id[1] = t as u8;
        Snapshot {
            id: SnapshotId(id),
            record: SnapshotRecord {
                time_ns: t,
                hostname: String::new(),
                source: String::new(),
                parent: None,
                tags: vec![],
                note: String::new(),
                files: vec![],
                total_bytes: 0,
                new_bytes: 0,
                sqlite: SqliteInfo::default(),
                warnings: vec![],
                seq: None,
                source_state: None,
                chain: None,
                origin: None,
            },
        }
    }

    /// A head decoded from a record file carries the record's placing fields,
    /// with and without `seq`, and a file under another id is refused.
    #[test]
    fn head_matches_the_record() {
        for seq in [None, Some(7)] {
            let mut s = snap(1, 42);
            s.record.source = "/db/a.sqlite".into();
            s.record.parent = Some(SnapshotId([9; 32]));
            s.record.seq = seq;
            s.record.files = vec![FileEntry {
                name: "a.sqlite".into(),
                kind: FileKind::Image,
                size: 3,
                blake3: [1; 32],
                root: crate::id::ChunkId([2; 32]),
            }];
            s.record.total_bytes = 3;
            let (id, file) = encode_record(&s.record, &Cipher::Plain, FormatVersion::NEWEST);
            let head = decode_head_file(&id, &file, &Cipher::Plain).expect("head");
            assert_eq!(
                head,
                Head {
                    id,
                    time_ns: 42,
                    source: "/db/a.sqlite".into(),
                    parent: Some(SnapshotId([9; 32])),
                    seq,
                    chain: None,
                }
            );
            assert!(decode_head_file(&SnapshotId([3; 32]), &file, &Cipher::Plain).is_err());
        }
    }

    #[test]
    fn at_picks_newest_at_or_before() {
        let mut list = vec![snap(1, 100), snap(2, 200), snap(3, 300)];
        for s in &mut list {
            s.record.source = "/a.db".into();
        }
        assert_eq!(at(&list, None, 250).expect("between").record.time_ns, 200);
        assert_eq!(at(&list, None, 200).expect("exact").record.time_ns, 200);
        assert_eq!(
            at(&list, Some("/a.db"), 1000)
                .expect("after")
                .record
                .time_ns,
            300
        );
        let err = at(&list, None, 50).expect_err("before first");
        assert!(
            err.earliest_snapshot() == Some((list[0].id.short().as_str(), 100)),
            "{err}"
        );
        let mut other = snap(4, 150);
        other.record.source = "/b.db".into();
        list.insert(1, other);
        assert!(matches!(at(&list, None, 250), Err(e) if e.kind() == ErrorKind::InvalidInput));
        assert_eq!(
            at(&list, Some("/b.db"), 250).expect("b").record.time_ns,
            150
        );
        assert!(matches!(
            at(&list, Some("/c.db"), 250),
            Err(e) if e.kind() == ErrorKind::UnknownSnapshot
        ));
    }

    /// Issue #8 item 6: `latest` is the newest snapshot of the database in question.
    #[test]
    fn latest_is_per_database() {
        let mut a = snap(1, 100);
        a.record.source = "/a.db".into();
        let mut b = snap(2, 200);
        b.record.source = "/b.db".into();
        let list = vec![a, b];
        let got = resolve("latest", &list, Some("/a.db")).expect("a");
        assert_eq!(got.id, list[0].id);
        let e = resolve("latest", &list, None).expect_err("ambiguous");
        assert!(
            e.kind() == ErrorKind::InvalidInput
                && e.to_string().contains("/a.db")
                && e.to_string().contains("/b.db"),
            "{e}"
        );
        assert!(matches!(
            resolve("latest", &list, Some("/c.db")),
            Err(e) if e.kind() == ErrorKind::UnknownSnapshot && e.to_string().contains("no snapshot of /c.db")
        ));
        // An id names its snapshot whatever the database.
        assert!(resolve(&list[1].id.to_hex(), &list, Some("/a.db")).is_ok());
    }

    /// Issue #8 item 22: tags that would break listings are refused.
    #[test]
    fn tags_are_checked() {
        for ok in ["manual", "pre-restore", "été 2026", "a b"] {
            check_tag(ok).expect(ok);
        }
        for bad in [
            "",
            "  ",
            "a,b",
            "a\nb",
            "a\rb",
            "\u{1b}[31mred",
            "tab\there",
            "x\u{7f}",
        ] {
            assert!(
                matches!(check_tag(bad), Err(e) if e.kind() == ErrorKind::InvalidInput),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn resolve_rules() {
        let list = vec![snap(0xab, 1), snap(0xab, 2), snap(0xcd, 3)];
        assert_eq!(
            resolve("latest", &list, None)
                .expect("latest")
                .record
                .time_ns,
            3
        );
        assert_eq!(
            resolve("cd0300", &list, None)
                .expect("prefix")
                .record
                .time_ns,
            3
        );
        assert_eq!(
            resolve(&list[0].id.to_hex(), &list, None)
                .expect("full")
                .record
                .time_ns,
            1
        );
        assert!(matches!(
            resolve("ab0", &list, None),
            Err(e) if e.kind() == ErrorKind::InvalidInput
        ));
        assert!(resolve("ab0100", &list, None).is_ok());
        assert!(matches!(
            resolve("ab0000", &list, None),
            Err(e) if e.kind() == ErrorKind::UnknownSnapshot
        ));
        let amb = vec![snap(0xab, 1), snap(0xab, 1)];
        assert!(matches!(
            resolve("ab0100", &amb, None),
            Err(e) if matches!(e.repr(), Repr::AmbiguousSnapshot { count: 2, .. })
        ));
        assert!(matches!(
            resolve("zzzzzz", &list, None),
            Err(e) if e.kind() == ErrorKind::InvalidInput
        ));
        assert!(matches!(
            resolve("latest", &[], None),
            Err(e) if e.kind() == ErrorKind::UnknownSnapshot
        ));
    }
}
