//! Where repository bytes live. The [`Backend`] trait is the seam between the
//! store (which knows what bytes mean) and storage (which only keeps them).
//!
//! Paths are `/`-separated and relative to the repository root (spelled by
//! `crate::layout`). Writes are atomic: a reader sees the old file or the whole
//! new one, never a part. The trait speaks of whole objects (put, get, ranged
//! get, list, delete), never of renames, so an object store can implement it:
//! there `write_atomic` is one PUT, `sync_dir` and `remove_temp_files` have
//! nothing to do. The repository reaches its files only through this trait;
//! its lock and its index (`lock`, `index.redb`) are local files for now.

pub mod local;

pub use local::LocalBackend;

use crate::error::Result;

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
}
