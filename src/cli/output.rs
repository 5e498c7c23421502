//! Presentation: human text and the JSON documents of the CLI contract.

use serde::Serialize;
use time::OffsetDateTime;

use lumina_backup::Snapshot;
use lumina_backup::{format_local, TimeZone};

pub use lumina_backup::rfc3339;

/// Local time (with the offset in force at that instant) and how long ago,
/// for humans.
pub fn local_time(time_ns: i64, tz: &TimeZone) -> String {
    let Ok(t) = OffsetDateTime::from_unix_timestamp_nanos(i128::from(time_ns)) else {
        return time_ns.to_string();
    };
    let ago = (OffsetDateTime::now_utc() - t).whole_seconds();
    format!("{} ({})", format_local(time_ns, tz), relative(ago))
}

/// Text from a record (tags, notes, paths) made safe for a terminal: control
/// characters (newlines, escape sequences) are shown escaped (`\n`, `\u{1b}`),
/// so a note cannot forge lines or colours in a listing.
pub fn clean(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Tags for a terminal: escaped, comma-separated.
pub fn clean_tags(tags: &[String]) -> String {
    tags.iter().map(|t| clean(t)).collect::<Vec<_>>().join(", ")
}

fn relative(secs: i64) -> String {
    match secs {
        s if s < 0 => "in the future".into(),
        s if s < 60 => format!("{s}s ago"),
        s if s < 3600 => format!("{}m ago", s / 60),
        s if s < 86_400 => format!("{}h ago", s / 3600),
        s => format!("{}d ago", s / 86_400),
    }
}

/// A count and its noun, singular for one: `count(1, "snapshot")` is
/// "1 snapshot", `count(3, "snapshot")` "3 snapshots".
pub fn count(n: impl Into<u64>, noun: &str) -> String {
    let n = n.into();
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Bytes for humans (binary units).
pub fn bytes(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}

/// One file in JSON.
#[derive(Serialize)]
pub struct FileJson {
    pub name: String,
    pub kind: String,
    pub size: u64,
    pub blake3: String,
}

/// `snapshot --json`.
#[derive(Serialize)]
pub struct SnapshotJson {
    pub id: String,
    pub time: String,
    pub db: String,
    pub parent: Option<String>,
    pub tags: Vec<String>,
    pub note: String,
    pub total_bytes: u64,
    pub new_bytes: u64,
    pub files: Vec<FileJson>,
    pub warnings: Vec<String>,
    /// `snapshot` only: the database was found unchanged since the parent
    /// snapshot, so no page was read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unchanged: Option<bool>,
    /// `snapshot` only: rows of the JSON exports rendered from the database,
    /// and in all (the rest reused from the parent's exports).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub export_rows: Option<ExportRowsJson>,
    /// `snapshot` only: what the files' `blake3` fields are (`blake3` of the
    /// file, or `chunk-list` digests in format 2 repositories), as `show` says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checksum_kind: Option<&'static str>,
}

/// `export_rows` of `snapshot --json`.
#[derive(Serialize)]
pub struct ExportRowsJson {
    pub rendered: u64,
    pub total: u64,
}

impl SnapshotJson {
    pub fn from(s: &Snapshot) -> Self {
        let r = &s.record;
        SnapshotJson {
            id: s.id.to_hex(),
            time: rfc3339(r.time_ns),
            db: r.source.clone(),
            parent: r.parent.map(|p| p.to_hex()),
            tags: r.tags.clone(),
            note: r.note.clone(),
            total_bytes: r.total_bytes,
            new_bytes: r.new_bytes,
            files: s
                .user_files()
                .map(|f| FileJson {
                    name: f.name.clone(),
                    kind: format!("{:?}", f.kind).to_lowercase(),
                    size: f.size,
                    blake3: hex::encode(f.blake3),
                })
                .collect(),
            warnings: r.warnings.clone(),
            unchanged: None,
            export_rows: None,
            checksum_kind: None,
        }
    }
}

/// One row of `snapshots --json`.
#[derive(Serialize)]
pub struct ListJson {
    pub id: String,
    pub time: String,
    pub db: String,
    pub tags: Vec<String>,
    pub note: String,
    pub total_bytes: u64,
    pub new_bytes: u64,
    /// Rows changed against the parent, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changed_rows: Option<u64>,
    /// Present (true) when its time is earlier than the previous snapshot's in
    /// its database's history: the clock went back.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub clock_went_back: bool,
}

impl ListJson {
    pub fn from(s: &Snapshot) -> Self {
        let r = &s.record;
        ListJson {
            id: s.id.to_hex(),
            time: rfc3339(r.time_ns),
            db: r.source.clone(),
            tags: r.tags.clone(),
            note: r.note.clone(),
            total_bytes: r.total_bytes,
            new_bytes: r.new_bytes,
            changed_rows: None,
            clock_went_back: false,
        }
    }

    /// With the rows changed against the parent, when known.
    pub fn with_changes(
        s: &Snapshot,
        known: &std::collections::HashMap<lumina_backup::SnapshotId, u64>,
    ) -> Self {
        ListJson {
            changed_rows: known.get(&s.id).copied(),
            ..Self::from(s)
        }
    }
}

/// Prints one JSON document on stdout.
pub fn print_json<T: Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("lumina-backup: cannot encode JSON output: {e}"),
    }
}
