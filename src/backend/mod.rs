//! Where repository bytes live. The [`Backend`] trait is the seam between the
//! store (which knows what bytes mean) and storage (which only keeps them).
//!
//! Paths are `/`-separated and relative to the repository root. Writes are atomic:
//! a reader sees the old file or the whole new one, never a part.

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
    /// Writes a file atomically and durably (temp beside it, fsync, rename, fsync folder).
    fn write_atomic(&self, path: &str, data: &[u8]) -> Result<()>;
    /// Names of the files directly in `dir` (not starting with `.`); empty if `dir`
    /// is absent or not a folder.
    fn list(&self, dir: &str) -> Result<Vec<String>>;
    /// Removes a file; absent is fine.
    fn remove(&self, path: &str) -> Result<()>;
    /// Whether a file exists.
    fn exists(&self, path: &str) -> Result<bool>;
}
