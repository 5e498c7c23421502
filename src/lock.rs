//! One writer at a time: an exclusive `flock` on the repository's `lock` file.
//!
//! The kernel drops the lock when its holder dies (even by SIGKILL), so a lock is
//! never stale. The holder writes its pid, host and command into the file so a
//! waiting process can say who it waits for.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// A held repository lock; released on drop.
#[derive(Debug)]
pub struct RepoLock {
    file: File,
}

impl RepoLock {
    /// Takes the lock at `path`, waiting up to `wait` for another holder.
    pub fn acquire(path: &Path, what: &str, wait: Duration) -> Result<Self> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| Error::io("opening lock file", path, e))?;
        let start = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) => {
                    if start.elapsed() >= wait {
                        let mut holder = String::new();
                        let _ = file.read_to_string(&mut holder);
                        let holder = holder.trim();
                        let holder = if holder.is_empty() {
                            "another process".to_string()
                        } else {
                            holder.to_string()
                        };
                        return Err(Error::Locked {
                            holder,
                            waited_secs: wait.as_secs(),
                        });
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(TryLockError::Error(e)) => return Err(Error::io("locking", path, e)),
            }
        }
        let host = gethostname::gethostname().to_string_lossy().into_owned();
        let info = format!("pid {} on {host} ({what})\n", std::process::id());
        let write = file
            .set_len(0)
            .and_then(|_| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(info.as_bytes()));
        write.map_err(|e| Error::io("writing lock file", path, e))?;
        Ok(RepoLock { file })
    }
}

impl Drop for RepoLock {
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
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
        drop(first);
        RepoLock::acquire(&p, "prune", Duration::ZERO).expect("free again");
    }
}
