//! The watcher's change detection, in two steps so an idle database costs no
//! read beyond a header:
//!
//! 1. [`Fingerprint`]: `stat` of the database, its `-wal` and `-journal` files
//!    (size, modification and status-change times, identity) and the 32 bytes
//!    of the `-wal` header. Any commit changes one of them (a WAL commit
//!    appends frames or, after a checkpoint, rewrites the header with new
//!    salts; a rollback-mode commit writes the file). Equal fingerprints are
//!    trusted only when none of the files was changed within
//!    [`unchanged::RACY`] of the moment the fingerprint was taken (a change in
//!    the same tick of the file system's clock could leave the times equal).
//! 2. When it differs: the exact state ([`state_now`], as a snapshot reads it:
//!    `sqlite::unchanged`), compared with the newest snapshot's. Only a
//!    different state (or one not known exactly) leads to a snapshot.

use std::io::Read;
use std::path::Path;
use std::time::SystemTime;

use crate::format::SourceState;
use crate::sqlite::{capture, unchanged};

/// What `stat` says of one file: (size, mtime ns, ctime ns, inode, device).
type Stat = (u64, i128, i128, u64, u64);

/// The cheap fingerprint of a database's files (module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    files: [Option<Stat>; 3],
    wal_header: Option<[u8; unchanged::WAL_HEADER]>,
    /// No file changed within RACY before it was taken.
    settled: bool,
}

fn side(path: &Path, suffix: &str) -> std::path::PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    s.into()
}

fn nanos(t: std::io::Result<SystemTime>) -> i128 {
    match t.map(|t| t.duration_since(SystemTime::UNIX_EPOCH)) {
        Ok(Ok(d)) => d.as_nanos() as i128,
        Ok(Err(e)) => -(e.duration().as_nanos() as i128),
        Err(_) => 0,
    }
}

fn stat(path: &Path) -> Option<Stat> {
    let m = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let (ctime, ino, dev) = {
        use std::os::unix::fs::MetadataExt;
        (
            i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
            m.ino(),
            m.dev(),
        )
    };
    #[cfg(not(unix))]
    let (ctime, ino, dev) = (nanos(m.created()), 0, 0);
    Some((m.len(), nanos(m.modified()), ctime, ino, dev))
}

impl Fingerprint {
    /// Takes the fingerprint of `db` now (`now_ns`: the system clock).
    pub fn take(db: &Path) -> Fingerprint {
        let files = [
            stat(db),
            stat(&side(db, "-wal")),
            stat(&side(db, "-journal")),
        ];
        let mut h = [0u8; unchanged::WAL_HEADER];
        let wal_header = std::fs::File::open(side(db, "-wal"))
            .and_then(|mut f| f.read_exact(&mut h))
            .ok()
            .map(|()| h);
        let now = nanos(Ok(SystemTime::now()));
        let racy = unchanged::RACY.as_nanos() as i128;
        let settled = files
            .iter()
            .flatten()
            .all(|(_, m, c, _, _)| now - m.max(c) > racy);
        Fingerprint {
            files,
            wal_header,
            settled,
        }
    }

    /// Whether the files differ from `other`'s (whatever the trust).
    pub fn differs(&self, other: &Fingerprint) -> bool {
        self.files != other.files || self.wal_header != other.wal_header
    }

    /// Whether `now` shows the same files as `self` did, `self` being trusted.
    pub fn same_as_before(&self, now: &Fingerprint) -> bool {
        self.settled && self.files == now.files && self.wal_header == now.wal_header
    }
}

/// The database's exact state now, as a snapshot would read it (`None`: not
/// known exactly, or the database cannot be opened: then a snapshot decides).
pub fn state_now(db: &Path, cancelled: &dyn Fn() -> bool) -> Option<SourceState> {
    let conn = capture::open_source_unlocked(db).ok()?;
    let before = unchanged::before_read(db);
    capture::begin_read_until(&conn, db, cancelled).ok()?;
    let state = unchanged::in_read(&conn, db, before);
    let _ = capture::end_read(&conn, db);
    state
}

/// Whether a database in state `now` equals the newest snapshot's `known`.
pub fn same_state(known: Option<&SourceState>, now: Option<&SourceState>) -> bool {
    match now {
        Some(now) => unchanged::same(known, now),
        None => false,
    }
}
