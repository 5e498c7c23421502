//! One writer at a time: an exclusive `flock` on the repository's `lock` file;
//! readers share it (`flock` shared), so a reader never sees a prune half done.
//!
//! The kernel drops the lock when its holder dies (even by SIGKILL), so a lock is
//! never stale. The file is created by `init` and never needs new bytes to be
//! locked, so a repository on a full disk can still be locked (and `forget` and
//! `prune` can free space). The holder writes its pid, host and command into the
//! file only as a courtesy (best effort: on a full disk the write is skipped); a
//! waiting process finds the holder's pid in `/proc/locks` anyway, and its state
//! in `/proc/PID/stat` ([`holder`]).

mod holder;
pub mod object;

pub use object::ObjectLock;

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{ErrorKind, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::{Error, Repr, Result};
use crate::platform::UnixMode;

/// A held repository lock; released on drop.
#[derive(Debug)]
pub struct RepoLock {
    file: File,
    exclusive: bool,
}

/// Whether an I/O error means "this file system cannot be written here".
pub fn is_read_only_error(e: &std::io::Error) -> bool {
    crate::platform::is_read_only_error(e)
}

impl RepoLock {
    /// Creates the (empty) lock file of a new repository.
    pub fn create_file(path: &Path) -> Result<()> {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .unix_mode(0o600)
            .open(path)
            .map(drop)
            .map_err(|e| Error::io("creating lock file", path, e))
    }

    /// Takes the lock at `path` exclusively (a writer), waiting up to `wait` for
    /// another holder. The file is created if an older repository lacks it.
    pub fn acquire(path: &Path, what: &str, wait: Duration) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .unix_mode(0o600)
            .open(path)
            .map_err(|e| {
                if is_read_only_error(&e) {
                    Repr::ReadOnlyRepository {
                        path: holder::parent(path),
                        what: what.to_string(),
                        reason: e.to_string(),
                    }
                    .into()
                } else {
                    Error::io("opening lock file", path, e)
                }
            })?;
        let mut lock = Self::wait_for(file, path, true, wait)?;
        lock.write_holder(what);
        Ok(lock)
    }

    /// Takes the lock at `path` shared (a reader that writes nothing), waiting up
    /// to `wait` for a writer. Opens the file read-only; `None` when it does not
    /// exist and cannot be created (a read-only repository of an old version:
    /// no writer can run there either).
    pub fn acquire_shared(path: &Path, wait: Duration) -> Result<Option<Self>> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => match Self::create_file(path) {
                Ok(()) => File::open(path).map_err(|e| Error::io("opening lock file", path, e))?,
                Err(_) => return Ok(None),
            },
            Err(e) => return Err(Error::io("opening lock file", path, e)),
        };
        Self::wait_for(file, path, false, wait).map(Some)
    }

    fn wait_for(file: File, path: &Path, exclusive: bool, wait: Duration) -> Result<Self> {
        let start = Instant::now();
        loop {
            let attempt = if exclusive {
                file.try_lock()
            } else {
                file.try_lock_shared()
            };
            match attempt {
                Ok(()) => return Ok(RepoLock { file, exclusive }),
                Err(TryLockError::WouldBlock) => {
                    if start.elapsed() >= wait {
                        let h = holder::find(&file, path);
                        return Err(Repr::Locked {
                            holder: h.describe(),
                            waited_secs: wait.as_secs(),
                            advice: h.advice(),
                        }
                        .into());
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(TryLockError::Error(e)) => return Err(Error::io("locking", path, e)),
            }
        }
    }

    /// Best effort: on a full disk the note is skipped, the lock holds anyway.
    fn write_holder(&mut self, what: &str) {
        let host = gethostname::gethostname().to_string_lossy().into_owned();
        let info = format!("pid {} on {host} ({what})\n", std::process::id());
        let written = self
            .file
            .set_len(0)
            .and_then(|_| self.file.seek(SeekFrom::Start(0)))
            .and_then(|_| self.file.write_all(info.as_bytes()));
        if written.is_err() {
            let _ = self.file.set_len(0);
        }
    }
}

impl Drop for RepoLock {
    fn drop(&mut self) {
        if self.exclusive {
            let _ = self.file.set_len(0);
        }
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_waits_then_fails_naming_the_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("lock");
        let first = RepoLock::acquire(&p, "snapshot", Duration::ZERO).expect("first");
        let err = RepoLock::acquire(&p, "prune", Duration::from_millis(200)).expect_err("busy");
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("pid {}", std::process::id())) && msg.contains("snapshot"),
            "{msg}"
        );
        let err = RepoLock::acquire_shared(&p, Duration::ZERO).expect_err("busy for readers");
        assert!(
            msg.contains("running") || err.to_string().contains("pid"),
            "{err}"
        );
        drop(first);
        let r1 = RepoLock::acquire_shared(&p, Duration::ZERO).expect("reader");
        let r2 = RepoLock::acquire_shared(&p, Duration::ZERO).expect("readers share");
        RepoLock::acquire(&p, "prune", Duration::ZERO).expect_err("readers exclude a writer");
        drop((r1, r2));
        RepoLock::acquire(&p, "prune", Duration::ZERO).expect("free again");
    }
}
