//! Who else has a database open: the check before a restore replaces the file.
//!
//! Replacing a database file (rename over it) under an application that holds a
//! connection leaves the application writing to the unlinked old file, and every
//! later write is lost. Two cheap probes, neither of which takes or changes a lock:
//! - on Linux, `/proc/*/fd`: any descriptor of another process on the file's
//!   (device, inode), or on its `-wal`/`-shm`. This sees idle connections in
//!   rollback-journal mode, which hold no SQLite lock at all;
//! - everywhere, `fcntl(F_GETLK)` on the byte ranges SQLite locks: the
//!   pending/reserved/shared bytes of the database file, and every lock byte of the
//!   `-shm` file (each WAL connection holds a shared lock on its "DMS" byte while
//!   it is open). `F_GETLK` names the holder's pid.
//!
//! macOS has no `/proc`: only the lock probe runs there (idle rollback-journal
//! connections are not seen). Windows has neither probe and needs none: SQLite
//! opens its files there without `FILE_SHARE_DELETE`, so Windows itself refuses
//! to rename over a database (or its `-wal`/`-shm`) that a process holds open,
//! and the restore fails with that error, leaving the target as it was.
//!
//! This process's own descriptors ([`open_here`], Linux `/proc/self/fd`) are
//! looked at separately: an app that links the library may keep a connection
//! to the database it restores.
//!
//! Knows nothing of repositories; a race with an application that opens the file
//! after the probe cannot be excluded (the documentation says to close the app).

#[cfg(unix)]
use std::collections::BTreeMap;
#[cfg(unix)]
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// One process holding the database open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// Its process id.
    pub pid: u32,
    /// Its program name (`/proc/PID/comm`), when known.
    pub program: Option<String>,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.program {
            Some(p) => write!(f, "pid {} ({p})", self.pid),
            None => write!(f, "pid {}", self.pid),
        }
    }
}

/// SQLite's lock bytes in the database file (`os_unix.c`: PENDING_BYTE,
/// RESERVED_BYTE, then SHARED_SIZE bytes of the shared range).
#[cfg(unix)]
const PENDING_BYTE: i64 = 0x4000_0000;
#[cfg(unix)]
const DB_LOCK_LEN: i64 = 2 + 510;
/// Lock bytes of the `-shm` file: 8 WAL locks from 120, then the DMS byte at 128.
#[cfg(unix)]
const SHM_LOCK_START: i64 = 120;
#[cfg(unix)]
const SHM_LOCK_LEN: i64 = 9;

/// (device, inode) of `db` and of its `-wal` and `-shm` files, those that exist.
#[cfg(unix)]
fn file_ids(db: &Path) -> Vec<(u64, u64)> {
    let [wal, shm] = super::restore::sidecars(db);
    [db, wal.as_path(), shm.as_path()]
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| (m.dev(), m.ino()))
        .collect()
}

/// Other processes that have `db` (or its `-wal`/`-shm`) open, or hold SQLite
/// locks on it. Empty when none is found (or `db` does not exist).
#[cfg(unix)]
pub fn holders(db: &Path) -> Vec<Holder> {
    let me = std::process::id();
    let mut found: BTreeMap<u32, Holder> = BTreeMap::new();
    let [_, shm] = super::restore::sidecars(db);
    let ids = file_ids(db);
    if ids.is_empty() {
        return Vec::new();
    }
    for pid in proc_fd_holders(&ids) {
        found.insert(pid, holder(pid));
    }
    for (file, start, len) in [
        (db, PENDING_BYTE, DB_LOCK_LEN),
        (shm.as_path(), SHM_LOCK_START, SHM_LOCK_LEN),
    ] {
        if let Some(pid) = lock_holder(file, start, len) {
            found.entry(pid).or_insert_with(|| holder(pid));
        }
    }
    found.remove(&me);
    found.into_values().collect()
}

#[cfg(unix)]
fn holder(pid: u32) -> Holder {
    let program = std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    Holder { pid, program }
}

/// Pids with a descriptor on one of the files `ids` (device, inode).
#[cfg(unix)]
fn proc_fd_holders(ids: &[(u64, u64)]) -> Vec<u32> {
    let me = std::process::id();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        // Processes we may not inspect are skipped; the lock probe still runs.
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        let hit = fds.flatten().any(|fd| {
            // stat() follows the magic link to the open file, deleted or not.
            std::fs::metadata(fd.path())
                .map(|m| ids.contains(&(m.dev(), m.ino())))
                .unwrap_or(false)
        });
        if hit {
            out.push(pid);
        }
    }
    out
}

/// The pid of a process holding a POSIX lock that overlaps `start..start+len`
/// of `file`, if any (`F_GETLK` only asks; it takes nothing).
#[cfg(unix)]
fn lock_holder(file: &Path, start: i64, len: i64) -> Option<u32> {
    use rustix::process::{fcntl_getlk, Flock, FlockType, Pid};
    // Through the registry: closing a descriptor would drop our own locks.
    let f = super::held::open(file).ok()?;
    let mut want = Flock::from(FlockType::WriteLock);
    want.start = u64::try_from(start).ok()?;
    want.length = u64::try_from(len).ok()?;
    // `None`: no lock overlaps; a holder without a pid (e.g. our own) is ignored.
    let held = fcntl_getlk(f.file(), &want).ok()??;
    u32::try_from(held.pid.map(Pid::as_raw_nonzero)?.get()).ok()
}

/// Whether this process itself has `db` (or its `-wal`/`-shm`) open other than
/// through [`super::held`]: an app that links the library and keeps its own
/// connection. Linux only (`/proc/self/fd`); elsewhere false (on Windows the
/// rename fails instead; on macOS an own connection is not seen).
pub fn open_here(db: &Path) -> bool {
    #[cfg(target_os = "linux")]
    {
        let ids = file_ids(db);
        if ids.is_empty() {
            return false;
        }
        let ours = super::held::raw_fds();
        let Ok(fds) = std::fs::read_dir("/proc/self/fd") else {
            return false;
        };
        fds.flatten().any(|fd| {
            let num = fd.file_name().to_str().and_then(|s| s.parse::<i32>().ok());
            num.is_some_and(|n| !ours.contains(&n))
                && std::fs::metadata(fd.path())
                    .map(|m| ids.contains(&(m.dev(), m.ino())))
                    .unwrap_or(false)
        })
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = db;
        false
    }
}

/// None are looked for on Windows: it refuses to replace a file that SQLite
/// holds open (see the module comment).
#[cfg(not(unix))]
pub fn holders(db: &Path) -> Vec<Holder> {
    let _ = db;
    Vec::new()
}

/// "pid 412 (python3), pid 977 (lumina)".
pub fn describe(holders: &[Holder]) -> String {
    holders
        .iter()
        .map(|h| h.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
