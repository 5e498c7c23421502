//! Presentation: human text and the JSON documents of the CLI contract.

use serde::Serialize;
use time::{OffsetDateTime, UtcOffset};

use lumina_backup::Snapshot;

pub use lumina_backup::snapshot::rfc3339;

/// Local time and how long ago, for humans.
pub fn local_time(time_ns: i64, offset: UtcOffset) -> String {
    let Ok(t) = OffsetDateTime::from_unix_timestamp_nanos(i128::from(time_ns)) else {
        return time_ns.to_string();
    };
    let local = t.to_offset(offset);
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    let shown = local.format(&fmt).unwrap_or_default();
    let ago = (OffsetDateTime::now_utc() - t).whole_seconds();
    format!("{shown} ({})", relative(ago))
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
            files: r
                .files
                .iter()
                .map(|f| FileJson {
                    name: f.name.clone(),
                    kind: format!("{:?}", f.kind).to_lowercase(),
                    size: f.size,
                    blake3: hex::encode(f.blake3),
                })
                .collect(),
            warnings: r.warnings.clone(),
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
        }
    }

    /// With the rows changed against the parent, when known.
    pub fn with_changes(
        s: &Snapshot,
        known: &std::collections::HashMap<lumina_backup::id::SnapshotId, u64>,
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
