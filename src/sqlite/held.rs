//! Descriptors of database files that this process never closes.
//!
//! POSIX (`fcntl`) locks belong to a process and a file: closing ANY descriptor
//! of a file drops every lock the process holds on it, SQLite's included. An app
//! that links this library and keeps its own SQLite connection open (in a write
//! transaction, say) would lose its locks whenever the library opened the same
//! database file with `std` to read a header or its pages and closed it: another
//! process could then write at the same time, and the database be corrupted.
//!
//! So every read of the bytes of a database file (or of its `-shm`, which SQLite
//! locks in WAL mode) outside SQLite goes through this registry: a process-wide
//! map keyed by (device, inode) of read-only files, each opened once and kept
//! open for the life of the process, read with positioned reads (`pread`) so
//! that callers on several threads never share a file offset. Closing nothing is
//! exact (no lock can be dropped, whoever holds it) and simple; going through
//! SQLite instead (whose unix VFS shares one inode record per file and defers
//! closes while locks are held) cannot read a file SQLite refuses (a damaged
//! database kept raw) and offers no page reads outside a statement.
//!
//! The cost is one descriptor per database file this process has read. The one
//! exception is [`release`]: after a restore has renamed a new file over a
//! database that (as checked) no other descriptor of this process had open, the
//! replaced inode's descriptor is closed so its disk space is freed.
//!
//! `-journal` and `-wal` files are never locked by SQLite's unix VFS and are read
//! with plain `std` files. On Windows, where byte-range locks belong to a handle
//! (closing one handle drops only its own), files are opened and closed normally.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::Arc;

/// A read-only view of a database file with its own position: reads are
/// positioned, so the shared descriptor's offset is never used.
#[derive(Debug)]
pub struct Held {
    file: Arc<File>,
    pos: u64,
}

impl Held {
    /// The underlying file (for `fcntl(F_GETLK)` and `metadata`). Never closed
    /// on Unix while the process lives.
    pub fn file(&self) -> &File {
        &self.file
    }
}

impl Read for Held {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        #[cfg(unix)]
        let n = std::os::unix::fs::FileExt::read_at(&*self.file, buf, self.pos)?;
        #[cfg(windows)]
        let n = std::os::windows::fs::FileExt::seek_read(&*self.file, buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Held {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let bad = || io::Error::new(io::ErrorKind::InvalidInput, "seek out of range");
        self.pos = match to {
            SeekFrom::Start(p) => p,
            SeekFrom::Current(d) => self.pos.checked_add_signed(d).ok_or_else(bad)?,
            SeekFrom::End(d) => self
                .file
                .metadata()?
                .len()
                .checked_add_signed(d)
                .ok_or_else(bad)?,
        };
        Ok(self.pos)
    }
}

#[cfg(unix)]
mod registry {
    use std::collections::HashMap;
    use std::fs::File;
    use std::os::unix::fs::MetadataExt;
    use std::sync::{Arc, Mutex, OnceLock};

    pub(super) type Key = (u64, u64);

    pub(super) fn map() -> std::sync::MutexGuard<'static, HashMap<Key, Arc<File>>> {
        static MAP: OnceLock<Mutex<HashMap<Key, Arc<File>>>> = OnceLock::new();
        MAP.get_or_init(Default::default)
            .lock()
            // The map stays consistent whatever a panicking holder did.
            .unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn key(m: &std::fs::Metadata) -> Key {
        (m.dev(), m.ino())
    }
}

/// Opens `path` for reading through the registry (see the module comment).
pub fn open(path: &Path) -> io::Result<Held> {
    #[cfg(unix)]
    {
        let mut map = registry::map();
        if let Ok(m) = std::fs::metadata(path) {
            if let Some(f) = map.get(&registry::key(&m)) {
                return Ok(Held {
                    file: f.clone(),
                    pos: 0,
                });
            }
        }
        let f = File::open(path)?;
        let k = registry::key(&f.metadata()?);
        let file = match map.get(&k) {
            // The path was replaced between the stat and the open by a file
            // already held: this second descriptor must not be closed either.
            Some(held) => {
                let held = held.clone();
                std::mem::forget(f);
                held
            }
            None => {
                let f = Arc::new(f);
                map.insert(k, f.clone());
                f
            }
        };
        Ok(Held { file, pos: 0 })
    }
    #[cfg(not(unix))]
    {
        Ok(Held {
            file: Arc::new(File::open(path)?),
            pos: 0,
        })
    }
}

/// The descriptor numbers the registry holds (to tell them from the app's own
/// in `/proc/self/fd`).
#[cfg(target_os = "linux")]
pub fn raw_fds() -> Vec<i32> {
    use std::os::fd::AsRawFd;
    registry::map().values().map(|f| f.as_raw_fd()).collect()
}

/// The identity (device, inode) of the file at `path`, to [`release`] it once
/// a restore has replaced it.
#[cfg(unix)]
pub fn identity(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| registry::key(&m))
}

/// Closes the registry's descriptor of a database file that a restore has just
/// replaced (renamed over), so its disk space is freed. Only for a file that no
/// other descriptor of this process had open (checked before the restore), so
/// no SQLite lock of this process is on it.
#[cfg(unix)]
pub fn release(id: Option<(u64, u64)>) {
    if let Some(id) = id {
        registry::map().remove(&id);
    }
}

/// Nothing is held on Windows.
#[cfg(not(unix))]
pub fn identity(_path: &Path) -> Option<(u64, u64)> {
    None
}

/// Nothing is held on Windows.
#[cfg(not(unix))]
pub fn release(_id: Option<(u64, u64)>) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_descriptor_per_file_and_positioned_reads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("x.db");
        std::fs::write(&p, b"0123456789").expect("write");
        let mut a = open(&p).expect("open");
        let mut b = open(&p).expect("open");
        #[cfg(unix)]
        assert!(Arc::ptr_eq(&a.file, &b.file));
        let mut buf = [0u8; 4];
        a.seek(SeekFrom::Start(6)).expect("seek");
        a.read_exact(&mut buf).expect("read");
        assert_eq!(&buf, b"6789");
        b.read_exact(&mut buf).expect("read");
        assert_eq!(&buf, b"0123");
        assert_eq!(a.seek(SeekFrom::End(-1)).expect("seek"), 9);
    }
}
