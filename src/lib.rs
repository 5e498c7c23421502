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

pub mod backend;
pub mod chunker;
pub mod compress;
pub mod crypto;
pub mod diff;
pub mod error;
pub mod export;
pub mod format;
mod fsutil;
pub mod id;
pub mod index;
mod layout;
pub mod lock;
mod platform;
pub mod progress;
pub mod repo;
pub mod retention;
pub mod sample;
pub mod snapshot;
pub mod sqlite;
pub mod store;
pub mod testhook;
pub mod timespec;

pub use error::{Error, ErrorKind, Remedy, Result};
pub use progress::{NoProgress, Outcome, Phase, PhaseInfo, Progress, Unit};
pub use repo::{
    Check, Damage, InitOptions, OpenOptions, Problem, Repository, RestoreOptions, RestoreReport,
    SnapshotOptions, SnapshotSummary, VerifyReport,
};
pub use snapshot::Snapshot;
