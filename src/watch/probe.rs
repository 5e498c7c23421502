//! The watcher's change detection, in two steps so an idle database costs no
//! read beyond a header:
//!
//! 1. [`Fingerprint`]: `stat` of the database file (size, modification and
//!    status-change times, identity), the size of its `-journal`, and the size
//!    and 32-byte header of its `-wal` when that holds anything. Any commit
//!    changes one of them (a WAL commit appends frames or, after a checkpoint,
//!    rewrites the header with new salts; a rollback-mode commit writes the
//!    file). An empty `-wal` counts as none: opening a WAL database (the
//!    watcher's own look, a snapshot) creates one, and that is no change.
//!    Equal fingerprints are trusted in WAL mode (the database header's bytes
//!    18 and 19, read too), where every commit shows in the `-wal` file's
//!    size or header; in rollback mode only when the database file was not
//!    changed within [`unchanged::RACY`] of the moment the earlier fingerprint
//!    was taken (a change in the same tick of the file system's clock could
//!    leave the times equal). An idle check reads 20 + 32 bytes. The database
//!    file is read through [`crate::sqlite::held`] (a descriptor never closed,
//!    so the POSIX locks of an app running the watcher in-process stay); the
//!    `-wal` file, which SQLite does not lock, with a plain file.
//! 2. When it differs: the exact state ([`state_now`], as a snapshot reads it:
//!    `sqlite::unchanged`), compared with the newest snapshot's. Only a
//!    different state (or one not known exactly) leads to a snapshot. For the
//!    `wal-idle` route (no committed frame in the `-wal` file, so the
//!    database file alone holds the content) the `-wal` file's identity, size
//!    and time are left out of the comparison, for the same reason.

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
    db: Option<Stat>,
    journal_len: u64,
    wal: Option<(u64, Option<[u8; unchanged::WAL_HEADER]>)>,
    /// No file changed within RACY before it was taken.
    settled: bool,
    /// The database file's header says WAL mode (bytes 18 and 19).
    wal_mode: bool,
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
        let len = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
        let wal_path = side(db, "-wal");
        let wal_len = len(&wal_path);
        let wal = (wal_len > 0).then(|| {
            let mut h = [0u8; unchanged::WAL_HEADER];
            let header = std::fs::File::open(&wal_path)
                .and_then(|mut f| f.read_exact(&mut h))
                .ok()
                .map(|()| h);
            (wal_len, header)
        });
        let db_stat = stat(db);
        // Through `sqlite::held`, never closed: closing a descriptor of the
        // database file would drop every POSIX lock this process holds on it,
        // those of an app running the watcher in-process included.
        let mut h = [0u8; 20];
        let wal_mode = crate::sqlite::held::open(db)
            .and_then(|mut f| f.read_exact(&mut h))
            .is_ok_and(|()| h[18] == 2 && h[19] == 2);
        let now = nanos(Ok(SystemTime::now()));
        let racy = unchanged::RACY.as_nanos() as i128;
        // The `-wal` file's times count here (a state read now would not be
        // exact), not in the comparison (an empty one is none).
        let settled = [db_stat.as_ref(), stat(&wal_path).as_ref()]
            .into_iter()
            .flatten()
            .all(|(_, m, c, _, _)| now - m.max(c) > racy);
        Fingerprint {
            db: db_stat,
            journal_len: len(&side(db, "-journal")),
            wal,
            settled,
            wal_mode,
        }
    }

    /// Whether no file changed within RACY before it was taken.
    pub fn settled(&self) -> bool {
        self.settled
    }

    /// Whether the files differ from `other`'s (whatever the trust).
    pub fn differs(&self, other: &Fingerprint) -> bool {
        (&self.db, self.journal_len, &self.wal) != (&other.db, other.journal_len, &other.wal)
    }

    /// Whether `now` shows the same files as `self` did, and that can be
    /// trusted: in WAL mode always (a commit appends to the `-wal` file or
    /// rewrites its header; the database file changes only by checkpoints,
    /// which keep the content), in rollback mode when `self` was taken more
    /// than RACY after the file's last change.
    pub fn same_as_before(&self, now: &Fingerprint) -> bool {
        !self.differs(now) && ((self.wal_mode && now.wal_mode) || self.settled)
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

/// Whether a database in state `now` equals the newest snapshot's `known`
/// (module docs: the `-wal` fields of a `wal-idle` state are left out).
pub fn same_state(known: Option<&SourceState>, now: Option<&SourceState>) -> bool {
    let idle = |s: &SourceState| {
        let mut s = s.clone();
        if s.route == "wal-idle" {
            s.wal_ino = 0;
            s.wal_size = 0;
            s.wal_ctime_ns = 0;
        }
        s
    };
    match (known, now) {
        (Some(k), Some(n)) => unchanged::same(Some(&idle(k)), &idle(n)),
        _ => false,
    }
}
