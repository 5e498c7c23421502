//! lumina-backup: a content-addressed, deduplicating snapshot store for SQLite
//! databases.
//!
//! A snapshot captures one committed state of a live database (WAL or rollback
//! journal) inside one read transaction, cuts the page image into chunks (one per
//! page by default), and stores each chunk once, compressed, in pack files indexed
//! by redb. A snapshot after a small change costs about the changed pages. Restore
//! re-hashes every chunk and the whole file, runs `PRAGMA integrity_check`, and only
//! then swaps the result in atomically.
//!
//! ```no_run
//! use lumina_backup::{NoProgress, OpenOptions, Repository, SnapshotOptions, RestoreOptions};
//! # fn main() -> Result<(), lumina_backup::Error> {
//! let repo_path = std::path::Path::new("/tmp/backups");
//! Repository::init(repo_path)?;
//! let mut repo = Repository::open(repo_path, &OpenOptions::default())?;
//! let snap = repo.snapshot("app.db".as_ref(), &SnapshotOptions::default(), &NoProgress)?;
//! println!("snapshot {} added {} bytes", snap.snapshot.id.short(), snap.snapshot.record.new_bytes);
//! repo.restore("latest", "restored.db".as_ref(), &RestoreOptions::default(), &NoProgress)?;
//! assert!(repo.verify(false, &NoProgress)?.ok);
//! # Ok(()) }
//! ```
#![warn(missing_docs)]
#![warn(unnameable_types)]
#![forbid(unsafe_code)]

mod backend;
mod chunker;
mod compress;
mod crypto;
mod diff;
mod error;
mod export;
mod format;
mod id;
mod index;
mod lock;
mod platform;
mod progress;
mod repo;
mod retention;
#[cfg(feature = "sample")]
mod sample;
mod snapshot;
mod sqlite;
mod store;
mod testhook;
mod timespec;

// ---------------------------------------------------------------------------
// The public API. Everything an app (and the crate's own CLI) uses is listed
// here; the modules above are private and may change freely.
// ---------------------------------------------------------------------------

// The repository: create or open one (e.g. in the app's data folder), its
// fixed parameters, and what `status` reports.
pub use chunker::{ByteParams, PageParams};
pub use format::{Config, StatusRecord};
pub use repo::{
    repository_holding, source_key, DatabaseStatus, InitOptions, KeyInfo, OpenOptions,
    Repository, Status,
};

// Snapshots: take one (options and summary), list and choose them.
pub use format::{FileEntry, FileKind, SnapshotRecord, SqliteInfo};
pub use id::{ChunkId, PackId, SnapshotId};
pub use repo::{SnapshotOptions, SnapshotSummary};
pub use snapshot::order::clock_went_back;
pub use snapshot::{rfc3339, Filter as SnapshotFilter, Snapshot};

// Restore (with `force` semantics and the pre-restore safety snapshot).
pub use repo::{Check, RestoreOptions, RestoreReport};

// Diff: two snapshots, or a snapshot and the live database.
pub use diff::{DiffReport, TableDiff};
pub use repo::DiffTarget;

// Verify and repair.
pub use repo::{RebuildReport, RemovedSnapshot, SnapshotRepairPlan, TrimmedSnapshot, VerifyReport};

// Retention: the pure keep/forget policy, its settings, forget and prune.
pub use format::RetentionSettings;
pub use repo::{
    refuse_dangers, ForgetReport, PackAction, PackPlan, PrunePlan, PruneReport,
    DEFAULT_MAX_UNUSED,
};
pub use retention::{
    get_setting, set_setting, settings_table, Decision, Plan, Policy, PolicyError, Span,
    SETTING_KEYS,
};

// Export and import of the app's tables (JSON, CSV).
pub use export::{Error as ExportError, ImportReport, Table};
pub use repo::{export_database, import_file, ExportFormat, ExportRequest, ExportedFile};

// Errors: one error type, and the detail types its variants carry.
pub use crypto::{CryptoError, KdfParams};
pub use error::{Error, PartialData, Result, StopCause};
pub use format::DecodeError;
pub use index::guard::install_quiet_hook;

// Progress: typed phases the caller draws, and cancellation.
pub use progress::{NoProgress, Outcome, Phase, PhaseInfo, Progress, Unit};

// Time: parse and show the times snapshots are chosen by.
pub use testhook::now;
pub use timespec::{format_local, local_zone, parse_time, Edge as TimeEdge, TimeZone};

// The sample Lumina database generator (the `sample` feature: the demo, tests
// and benches).
#[cfg(feature = "sample")]
pub use sample::{create_lumina_db, Rng as SampleRng};

/// Internals for the fuzz targets and benches (the `internals` feature): not
/// part of the API, no stability promise.
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod __internals {
    pub use crate::chunker::{ByteChunker, PageChunker};
    pub use crate::compress::{compress, decompress};
    pub use crate::crypto::MasterKey;
    pub use crate::export::{import, write_json};
    pub use crate::index::probe;
    pub use crate::store::pack;

    /// The on-disk records and their decoders.
    pub mod format {
        pub use crate::format::{
            decode, decode_tree_node, open_file, Cipher, Config, KeyFile, Kind, PackDescription,
            SnapshotRecord,
        };
    }
}
