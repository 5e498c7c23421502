//! Where repository bytes live. The [`Backend`] trait is the seam between the
//! store (which knows what bytes mean) and storage (which only keeps them).
//!
//! Paths are `/`-separated and relative to the repository root (spelled by
//! `crate::layout`). Writes are atomic: a reader sees the old file or the whole
//! new one, never a part. The trait speaks of whole objects (put, get, ranged
//! get, list, delete), never of renames, so an object store can implement it:
//! there `write_atomic` is one PUT, `sync_dir` and `remove_temp_files` have
//! nothing to do. The repository reaches its files only through this trait.
//! A local repository's lock and index (`lock`, `index.redb`) are local files
//! beside it; a remote one's lock is a set of lock objects (`crate::lock::object`)
//! and its index a local cache (`crate::repo::cache`).

pub mod local;
pub mod location;
#[cfg(feature = "remote")]
pub mod remote;

/// The prefix of the variables a copy's destination reads its credentials
/// from first (`LUMINA_BACKUP_TO_AWS_ACCESS_KEY_ID`, ...; [`Remote::env_prefix`]).
pub const DESTINATION_ENV_PREFIX: &str = "LUMINA_BACKUP_TO_";

pub use local::LocalBackend;
pub use location::{Location, Remote, Service};
#[cfg(feature = "remote")]
pub use remote::OpendalBackend;

use std::sync::Arc;

use crate::error::Result;

/// A remote repository's backend, and a view of it that refuses writes (for
/// a read-only open, which still writes its lock object through the first).
pub struct RemotePair {
    /// Reads and writes.
    pub writable: Arc<dyn Backend>,
    /// Refuses writes and removals.
    pub read_only: Arc<dyn Backend>,
}

/// The backend for a remote location (credentials from the environment).
#[cfg(feature = "remote")]
pub fn open_remote(remote: &Remote) -> Result<RemotePair> {
    let b = OpendalBackend::new(remote, false)?;
    let ro = b.read_only_view();
    Ok(RemotePair {
        writable: Arc::new(b),
        read_only: Arc::new(ro),
    })
}

/// The backend for a remote location: this build has no remote support.
#[cfg(not(feature = "remote"))]
pub fn open_remote(remote: &Remote) -> Result<RemotePair> {
    Err(crate::error::Error::invalid_input(format!(
        "{remote}: this lumina-backup was built without remote repositories (cargo feature `{}`)",
        remote.service.feature()
    )))
}

/// Storage for repository files.
pub trait Backend: Send + Sync {
    /// A human name for messages (a path or URL).
    fn location(&self) -> String;
    /// Reads a whole file.
    fn read(&self, path: &str) -> Result<Vec<u8>>;
    /// Reads `len` bytes at `offset`.
    fn read_range(&self, path: &str, offset: u64, len: usize) -> Result<Vec<u8>>;
    /// Size of a file.
    fn size(&self, path: &str) -> Result<u64>;
    /// Puts a whole file atomically and durably: afterwards a reader sees all of
    /// `data`, before it the old content (locally: temp beside it, fsync,
    /// rename, fsync folder; on an object store: one PUT).
    fn write_atomic(&self, path: &str, data: &[u8]) -> Result<()>;
    /// [`Backend::write_atomic`] of a buffer the caller gives up (a large one
    /// is sent without a copy), returning whether the store **confirmed** that
    /// it now holds exactly `data`: an S3 PUT whose answer's ETag is the MD5 of
    /// `data` (store-format.md 6.11). `false` says nothing is confirmed: a
    /// caller that must know reads the object back.
    fn write_owned(&self, path: &str, data: Vec<u8>) -> Result<bool> {
        self.write_atomic(path, &data).map(|()| false)
    }
    /// Names of the files directly in `dir` (not starting with `.`); empty if `dir`
    /// is absent or not a folder.
    fn list(&self, dir: &str) -> Result<Vec<String>>;
    /// Removes a file; absent is fine.
    fn remove(&self, path: &str) -> Result<()>;
    /// Whether a file exists.
    fn exists(&self, path: &str) -> Result<bool>;
    /// Makes the removals done in `dir` durable (a local folder is fsynced; an
    /// object store, whose deletes are durable when they return, does nothing).
    fn sync_dir(&self, dir: &str) -> Result<()>;
    /// Deletes what interrupted writes left in `dir` (local `.tmp-*` files);
    /// returns how many. A store whose writes are whole-object puts has none.
    fn remove_temp_files(&self, dir: &str) -> Result<usize>;
    /// Every file below `dir`, at any depth, as (path relative to `dir`, size),
    /// names starting with `.` left out, from as few listing requests as the
    /// store allows (S3: one per 1000 objects); `None` when the backend has
    /// nothing better than [`Backend::list`] folder by folder (a local folder).
    fn list_tree(&self, _dir: &str) -> Result<Option<Vec<(String, u64)>>> {
        Ok(None)
    }
    /// Whether the files are on a remote store (no `flock`, no local index
    /// beside them).
    fn is_remote(&self) -> bool {
        false
    }
}
