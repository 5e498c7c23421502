//! lumina-backup: a content-addressed, deduplicating snapshot store for SQLite
//! databases.
//!
//! A snapshot copies one committed state of a live database (WAL or rollback
//! journal) inside one short read transaction, cuts the page image into chunks
//! (one per page by default), and stores each chunk once, compressed, in pack
//! files indexed by redb. A snapshot after a small change costs about the
//! changed pages; one of an unchanged database reads no page. Restore re-hashes
//! every chunk and the whole file, runs `PRAGMA quick_check` (unless the
//! capture's quick check passed on these same bytes; or `integrity_check` and
//! `foreign_key_check` with [`Check::Full`]), and only then swaps the result
//! in atomically.
//!
//! # What an app does
//!
//! An app keeps a repository in its data folder and calls [`Repository`]: open
//! it (or create it on first run), snapshot its database with a progress widget
//! that can cancel, list the snapshots, diff one against the live database,
//! restore one (over an existing database only with
//! [`RestoreOptions::force`], which first saves the database being replaced as
//! a `pre-restore` snapshot), and verify the repository. Everything the
//! library offers is re-exported at the crate root; there are no public
//! modules. Build it with `default-features = false` to leave out the CLI's
//! dependencies.
//!
//! ```
//! use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
//! use lumina_backup::{
//!     DiffTarget, NoProgress, OpenOptions, Outcome, PhaseInfo, Progress, Repository,
//!     RestoreOptions, SnapshotOptions,
//! };
//!
//! /// The app's progress widget; its cancel button sets `stop`.
//! #[derive(Default)]
//! struct Widget {
//!     stop: AtomicBool,
//! }
//!
//! impl Progress for Widget {
//!     fn phase(&self, info: &PhaseInfo<'_>) {
//!         // info.phase (Capture, ReadFile, ...), info.total in info.unit() (bytes or items)
//!         let _ = (info.phase, info.total, info.unit());
//!     }
//!     fn advance(&self, _n: u64) {}
//!     fn cancelled(&self) -> bool {
//!         self.stop.load(Relaxed)
//!     }
//!     fn done(&self, _outcome: Outcome) {} // Succeeded, Failed or Cancelled: hide the bar
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The app's data folder, its database (in WAL mode, open while the app runs).
//! let data = tempfile::tempdir()?;
//! let db = data.path().join("app.db");
//! let conn = rusqlite::Connection::open(&db)?;
//! conn.execute_batch(
//!     "PRAGMA journal_mode = WAL;
//!      CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT);
//!      INSERT INTO photos (name) VALUES ('a.jpg'), ('b.jpg');",
//! )?;
//!
//! // Open the repository, or create it on first run (`init_with` encrypts).
//! let repo_path = data.path().join("backups");
//! if !repo_path.exists() {
//!     Repository::init(&repo_path)?;
//! }
//! let mut repo = Repository::open(&repo_path, &OpenOptions::default())?;
//!
//! // Snapshot the live database, with progress.
//! let widget = Widget::default();
//! let opts = SnapshotOptions { tags: vec!["before-import".into()], ..Default::default() };
//! let first = repo.snapshot(&db, &opts, &widget)?;
//! println!("snapshot {}: {} new bytes", first.snapshot.id.short(), first.snapshot.record.new_bytes);
//!
//! // Cancel: the snapshot fails and records nothing.
//! widget.stop.store(true, Relaxed);
//! assert!(repo.snapshot(&db, &SnapshotOptions::default(), &widget).is_err());
//! widget.stop.store(false, Relaxed);
//!
//! // The app changes its data; list and diff against the live database.
//! conn.execute("UPDATE photos SET name = 'c.jpg' WHERE id = 1", [])?;
//! for s in repo.list()? {
//!     println!("{} {} {:?}", s.id.short(), lumina_backup::rfc3339(s.record.time_ns), s.record.tags);
//! }
//! assert_eq!(repo.list()?.len(), 1);
//! let diff = repo.diff(&first.snapshot, DiffTarget::Live(&db), &NoProgress)?;
//! assert_eq!(diff.tables["photos"].changed.len(), 1);
//!
//! // Restore the first snapshot over the database. The app closes its
//! // connections first (or sets `live: true` to restore through SQLite into
//! // them). Without `force` an existing database is never replaced.
//! drop(conn);
//! assert!(repo.restore_snapshot(first.snapshot.clone(), &db, &RestoreOptions::default(), &NoProgress).is_err());
//! let force = RestoreOptions { force: true, ..Default::default() };
//! let restored = repo.restore_snapshot(first.snapshot.clone(), &db, &force, &widget)?;
//! assert!(restored.pre_restore.is_some()); // the replaced state, kept as a snapshot
//! let conn = rusqlite::Connection::open(&db)?;
//! let name: String = conn.query_row("SELECT name FROM photos WHERE id = 1", [], |r| r.get(0))?;
//! assert_eq!(name, "a.jpg");
//!
//! // Verify the repository (`true` also re-reads and re-hashes every chunk).
//! assert!(repo.verify(true, &NoProgress)?.ok);
//! # Ok(())
//! # }
//! ```
//!
//! Errors are one [`Error`] type whose messages name the object and what to
//! do. Long operations report through [`Progress`] (typed [`Phase`]s counted in
//! a [`Unit`]); returning `true` from [`Progress::cancelled`] stops one and
//! leaves the repository unchanged.
#![warn(missing_docs)]
// Every type reachable through the API can be named from the crate root.
#![cfg_attr(not(feature = "internals"), warn(unnameable_types))]
#![forbid(unsafe_code)]

mod backend;
mod chain;
mod chunker;
mod compress;
mod config_file;
mod crypto;
mod diff;
mod error;
mod export;
mod format;
mod fsutil;
mod health;
mod id;
mod index;
mod layout;
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
mod watch;

// ---------------------------------------------------------------------------
// The public API. Everything an app (and the crate's own CLI) uses is listed
// here; the modules above are private and may change freely.
// ---------------------------------------------------------------------------

// The repository: create or open one (e.g. in the app's data folder), its
// fixed parameters, and what `status` reports.
pub use backend::{Location, Remote as RemoteLocation, Service, DESTINATION_ENV_PREFIX};
pub use chunker::{ByteParams, PageParams};
pub use format::{Config, StatusRecord};
pub use repo::{
    repository_holding, source_key, CopyMode, CopyOptions, CopyReport, DatabaseStatus, InitOptions,
    KeyInfo, OpenOptions, Repository, Status,
};

// Snapshots: take one (options and summary), list and choose them.
pub use format::{ChainLink, FileEntry, FileKind, SnapshotRecord, SourceState, SqliteInfo};
pub use id::{ChunkId, PackId, SnapshotId};
pub use repo::{ExportRows, SnapshotOptions, SnapshotSummary};
pub use snapshot::order::clock_went_back;
pub use snapshot::{rfc3339, Filter as SnapshotFilter, Snapshot};

// Restore (with `force` semantics and the pre-restore safety snapshot).
pub use repo::{Check, RestoreOptions, RestoreReport};

// Diff: two snapshots, or a snapshot and the live database.
pub use diff::{DiffReport, TableDiff};
pub use repo::DiffTarget;

// Read-only SQL on any snapshot's database.
pub use repo::{QuerySink, SqlValue};

// Verify and repair.
pub use repo::{
    ChainHead, Damage, DrillReport, Problem, RebuildReport, RemovedSnapshot, SnapshotRepairPlan,
    TrimmedSnapshot, VerifyOptions, VerifyReport,
};

// Retention: the pure keep/forget policy, its settings, forget and prune.
pub use format::RetentionSettings;
pub use repo::{
    refuse_dangers, ForgetReport, PackAction, PackPlan, PrunePlan, PruneReport, DEFAULT_MAX_UNUSED,
};
pub use retention::{
    get_setting, set_setting, settings_table, Decision, Plan, Policy, PolicyError, Span,
    SETTING_KEYS,
};

// Running by itself: the configuration file (`~/.lumina/backup.toml`, the
// app's `BackupConfig`), the watcher (schedules, on-change, retention, typed
// events on a channel) and its failure reports.
pub use config_file::{
    expand_home, AppBackupConfig, CloudProvider, Compression, ConfigError, ConfigFile,
    DatabaseConfig, Hooks, Interval, PassphraseSource, Retention, RetentionRules, Schedule,
    TimeOfDay, Weekday,
};
pub use health::{Failure, Health, HealthEntry, Subject as HealthSubject};
pub use retention::{BEFORE_TAG_PREFIX, DEFAULT_BEFORE};
pub use watch::{
    Clock, ManualClock, SharedRepository, Slot, SystemClock, Trigger, WatchEvent, WatchOptions,
    WatchedDatabase, Watcher,
};

// Export and import of the app's tables (JSON, CSV).
pub use export::{Error as ExportError, ImportReport, Table};
pub use repo::{export_database, import_file, ExportFormat, ExportRequest, ExportedFile};

// Errors: one error type, and the detail types its variants carry.
pub use crypto::{CryptoError, KdfParams};
pub use error::{Error, ErrorKind, PartialData, Remedy, Result, StopCause};
pub use format::DecodeError;
/// For binaries: keeps the panic messages of damaged-index panics the library
/// catches (and turns into errors) off stderr.
#[doc(hidden)]
pub use index::guard::install_quiet_hook;

// Progress: typed phases the caller draws, and cancellation.
pub use progress::{NoProgress, Outcome, Phase, PhaseInfo, Progress, Unit};

// Time: parse and show the times snapshots are chosen by.
/// The clock snapshots are timed by (settable for the test suite).
#[doc(hidden)]
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
            decode, decode_tree_node, encode_named, open_file, seal_file, ChainEvent, Cipher,
            Config, ExportMap, FormatVersion, KeyFile, Kind, PackDescription, SnapshotRecord,
        };
    }
}
