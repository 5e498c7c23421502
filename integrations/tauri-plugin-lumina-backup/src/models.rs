//! What the commands return to the frontend: plain records in camelCase,
//! mirrored one to one by the TypeScript interfaces in `guest-js/index.ts`.
//! Times are RFC 3339 strings plus milliseconds since the epoch (a JavaScript
//! number cannot hold the library's nanoseconds exactly).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Milliseconds since the epoch from the library's nanoseconds.
fn ms(time_ns: i64) -> i64 {
    time_ns.div_euclid(1_000_000)
}

fn path_string(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// The repository `open` opened (or created).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryInfo {
    /// Where it is (a folder, or a remote location as given).
    pub location: String,
    /// Whether it is encrypted.
    pub encrypted: bool,
    /// Whether `open` created it.
    pub created: bool,
    /// The repository's format version.
    pub format_version: u16,
    /// What the open did that the user should hear about (an index rebuilt).
    pub notices: Vec<String>,
}

/// One snapshot, as `list` shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotInfo {
    /// Full id (hex).
    pub id: String,
    /// Short id, as shown to people.
    pub short_id: String,
    /// When it was taken, RFC 3339 (UTC).
    pub time: String,
    /// The same time in milliseconds since the epoch (`new Date(timeMs)`).
    pub time_ms: i64,
    /// The database it is of (its path as recorded).
    pub source: String,
    /// Tags (`pre-restore` marks the safety copy a restore took).
    pub tags: Vec<String>,
    /// The note.
    pub note: String,
    /// Bytes of the files in the snapshot.
    pub total_bytes: u64,
    /// Bytes this snapshot added to the repository.
    pub new_bytes: u64,
    /// The previous snapshot of the same database, if any.
    pub parent: Option<String>,
}

impl From<&lumina_backup::Snapshot> for SnapshotInfo {
    fn from(s: &lumina_backup::Snapshot) -> Self {
        let r = &s.record;
        SnapshotInfo {
            id: s.id.to_hex(),
            short_id: s.id.short(),
            time: lumina_backup::rfc3339(r.time_ns),
            time_ms: ms(r.time_ns),
            source: r.source.clone(),
            tags: r.tags.clone(),
            note: r.note.clone(),
            total_bytes: r.total_bytes,
            new_bytes: r.new_bytes,
            parent: r.parent.as_ref().map(|p| p.to_hex()),
        }
    }
}

/// What `snapshot` did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotResult {
    /// The new snapshot.
    pub snapshot: SnapshotInfo,
    /// Chunks that were new.
    pub new_chunks: u64,
    /// The database was unchanged since its previous snapshot (no page read).
    pub unchanged: bool,
    /// The clock went back since the previous snapshot (say so to the user).
    pub clock_went_back: bool,
}

impl From<&lumina_backup::SnapshotSummary> for SnapshotResult {
    fn from(s: &lumina_backup::SnapshotSummary) -> Self {
        SnapshotResult {
            snapshot: (&s.snapshot).into(),
            new_chunks: s.new_chunks,
            unchanged: s.unchanged,
            clock_went_back: s.clock_went_back.is_some(),
        }
    }
}

/// Row-level differences of one table.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TableDiff {
    /// Keys of rows added.
    pub added: Vec<serde_json::Value>,
    /// Keys of rows removed.
    pub removed: Vec<serde_json::Value>,
    /// Keys of rows changed.
    pub changed: Vec<serde_json::Value>,
    /// For each changed row, the columns that changed.
    pub changed_columns: Vec<Vec<String>>,
}

/// What `diff` found, table by table (tables without differences left out).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiffResult {
    /// The older side (a snapshot id).
    pub from: String,
    /// The newer side: a snapshot id, or `live:` and the database path.
    pub to: String,
    /// Per table.
    pub tables: BTreeMap<String, TableDiff>,
}

impl DiffResult {
    /// From the library's report.
    pub fn new(from: String, to: String, report: lumina_backup::DiffReport) -> Self {
        let tables = report
            .tables
            .into_iter()
            .filter(|(_, t)| !t.is_empty())
            .map(|(name, t)| {
                let t = TableDiff {
                    added: t.added,
                    removed: t.removed,
                    changed: t.changed,
                    changed_columns: t.changed_columns,
                };
                (name, t)
            })
            .collect();
        DiffResult { from, to, tables }
    }
}

/// The newer side of a diff: another snapshot, or the live database.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum DiffAgainst {
    /// A snapshot (id, unique prefix or `latest`).
    Snapshot(String),
    /// The database file as it is now.
    Live(String),
}

/// SQLite's check of a restored image before it replaces anything.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RestoreCheck {
    /// `quick_check` (the default).
    #[default]
    Quick,
    /// `integrity_check` and `foreign_key_check`.
    Full,
    /// None (the checksums are still verified).
    None,
}

impl From<RestoreCheck> for lumina_backup::Check {
    fn from(c: RestoreCheck) -> Self {
        match c {
            RestoreCheck::Quick => lumina_backup::Check::Quick,
            RestoreCheck::Full => lumina_backup::Check::Full,
            RestoreCheck::None => lumina_backup::Check::None,
        }
    }
}

/// What `restore` did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreResult {
    /// The snapshot restored.
    pub snapshot: SnapshotInfo,
    /// Files written.
    pub written: Vec<String>,
    /// Bytes written.
    pub bytes: u64,
    /// The safety snapshot of the database that was replaced (with `force`).
    pub pre_restore: Option<SnapshotInfo>,
    /// The image went into the open database through SQLite (`live`).
    pub live: bool,
    /// Files renamed aside (stale journals, replaced non-database files).
    pub set_aside: Vec<String>,
}

impl From<&lumina_backup::RestoreReport> for RestoreResult {
    fn from(r: &lumina_backup::RestoreReport) -> Self {
        RestoreResult {
            snapshot: (&r.snapshot).into(),
            written: r.written.iter().map(|p| path_string(p)).collect(),
            bytes: r.bytes,
            pre_restore: r.pre_restore.as_ref().map(Into::into),
            live: r.live,
            set_aside: r.set_aside.iter().map(|p| path_string(p)).collect(),
        }
    }
}

/// What `verify` found.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyResult {
    /// No problem found.
    pub ok: bool,
    /// Each problem, naming the object.
    pub problems: Vec<String>,
    /// Snapshots walked.
    pub snapshots_checked: u64,
    /// Chunks checked.
    pub chunks_checked: u64,
    /// Chunks referenced by snapshots but in no pack.
    pub chunks_missing: u64,
    /// Packs checked.
    pub packs_checked: u64,
    /// Bytes read and re-hashed (`readData`).
    pub bytes_read: u64,
    /// The history chain's newest record (a witness to keep elsewhere).
    pub chain_head: Option<String>,
}

impl From<&lumina_backup::VerifyReport> for VerifyResult {
    fn from(r: &lumina_backup::VerifyReport) -> Self {
        VerifyResult {
            ok: r.ok,
            problems: r.problems.iter().map(|p| p.to_string()).collect(),
            snapshots_checked: r.snapshots_checked,
            chunks_checked: r.chunks_checked,
            chunks_missing: r.chunks_missing,
            packs_checked: r.packs_checked,
            bytes_read: r.bytes_read,
            chain_head: r.chain_head.as_ref().map(|h| h.id.clone()),
        }
    }
}

/// One database's history in brief.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseStatus {
    /// The database (path as recorded).
    pub db: String,
    /// Its snapshots.
    pub snapshots: usize,
    /// The newest one's id.
    pub latest_id: String,
    /// Its time, RFC 3339.
    pub latest_time: String,
    /// Its time in milliseconds since the epoch.
    pub latest_time_ms: i64,
}

/// The last failure the repository recorded.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FailureInfo {
    /// When, RFC 3339.
    pub time: String,
    /// When, in milliseconds since the epoch.
    pub time_ms: i64,
    /// What failed (`snapshot`, ...).
    pub operation: String,
    /// The database involved (empty if none).
    pub db: String,
    /// The error message.
    pub message: String,
}

/// What `status` reports.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusResult {
    /// Where the repository is.
    pub repository: String,
    /// Whether it is encrypted.
    pub encrypted: bool,
    /// Snapshots in all.
    pub snapshots: usize,
    /// Per database, newest first.
    pub databases: Vec<DatabaseStatus>,
    /// The last recorded failure, if any.
    pub last_failure: Option<FailureInfo>,
    /// Bytes of pack files.
    pub stored_bytes: u64,
    /// Sum of the sizes of every file of every snapshot.
    pub logical_bytes: u64,
    /// Deduplication ratio, when known.
    pub dedup_ratio: Option<f64>,
    /// The history chain's newest record.
    pub chain_head: Option<String>,
}

impl From<&lumina_backup::Status> for StatusResult {
    fn from(s: &lumina_backup::Status) -> Self {
        StatusResult {
            repository: s.repository.clone(),
            encrypted: s.encrypted,
            snapshots: s.snapshots,
            databases: s
                .databases
                .iter()
                .map(|d| DatabaseStatus {
                    db: d.db.clone(),
                    snapshots: d.snapshots,
                    latest_id: d.latest_id.clone(),
                    latest_time: lumina_backup::rfc3339(d.latest_time_ns),
                    latest_time_ms: ms(d.latest_time_ns),
                })
                .collect(),
            last_failure: s.last_failure.as_ref().map(|f| FailureInfo {
                time: lumina_backup::rfc3339(f.time_ns),
                time_ms: ms(f.time_ns),
                operation: f.operation.clone(),
                db: f.db.clone(),
                message: f.message.clone(),
            }),
            stored_bytes: s.stored_bytes,
            logical_bytes: s.logical_bytes,
            dedup_ratio: s.dedup_ratio,
            chain_head: s.chain_head.clone(),
        }
    }
}
