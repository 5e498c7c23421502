//! Progress reporting for long operations, through a trait object the caller
//! supplies: the CLI draws it with indicatif, the desktop app with its own widgets.

/// Receives progress of a long operation. Implementations must be cheap: they are
/// called often (about once per MiB).
pub trait Progress: Send + Sync {
    /// A phase starts ("reading database", "restoring"); `total` in bytes if known.
    fn phase(&self, name: &str, total: Option<u64>);
    /// `bytes` more of the current phase are done.
    fn advance(&self, bytes: u64);
    /// Whether the caller asked to stop; the operation then fails with
    /// `Error::Cancelled` (a snapshot: `Error::SnapshotNotRecorded`, after
    /// removing the data it wrote) and leaves the repository unchanged.
    fn cancelled(&self) -> bool {
        false
    }
    /// The operation ended (success or failure).
    fn done(&self) {}
}

/// Reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn phase(&self, _name: &str, _total: Option<u64>) {}
    fn advance(&self, _bytes: u64) {}
}
