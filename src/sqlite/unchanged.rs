//! Knowing "unchanged" without reading pages.
//!
//! A snapshot reads a [`SourceState`] ([`before_read`], then [`in_read`] inside
//! the capture's own read transaction): a few numbers that identify the
//! database's committed content. Two equal states mean the same content, so a
//! snapshot whose state equals its parent's ends the transaction and reuses
//! the parent's image instead of reading every page; otherwise the same
//! transaction copies the pages (one lock acquisition per snapshot). Whenever
//! a value cannot be read exactly, the state is `None` and the pages are read.
//! The recorded state describes the captured image (rollback mode: the same
//! transaction) or an older state of it (WAL mode: walked just before the
//! transaction began), never a newer one.
//! `store-format.md` ("Source state") says why each route is exact:
//!
//! - `rollback` (rollback-journal modes): under the read transaction's SHARED
//!   lock (no writer can be mid-commit, and SQLite has rolled back any hot
//!   journal first), the header's file change counter (offset 24), which SQLite
//!   increments in every transaction that modifies the file, the page count
//!   (28), the version-valid-for number (92), and the file's size, identity and
//!   times.
//! - `wal`: the `-wal` file's header (salts, checkpoint sequence) and its last
//!   valid commit frame, found by walking the frames and their checksum chain as
//!   SQLite's recovery does; the database file only changes by checkpoints of
//!   those frames, which leave the content as it was.
//! - `wal-idle` (WAL mode, no committed frame in the `-wal` file): the content
//!   is the database file's, identified by its size, identity and times (and the
//!   `-wal` file's), which must not be within [`RACY`] of now.
//!
//! Only `stat`, page 1 through `sqlite_dbpage` and plain reads of the `-wal`
//! file are used. Without `sqlite_dbpage`, page 1 is read from the database
//! file (rollback mode only) while the read transaction holds its lock,
//! through `sqlite::held`'s descriptors that are never closed (closing one
//! would drop this process's POSIX locks on the file). The `-shm` file is
//! never opened.

use std::fs::{File, Metadata};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::Connection;

use crate::format::SourceState;

/// Bytes of the WAL file header.
pub(crate) const WAL_HEADER: usize = 32;
/// Bytes of a WAL frame header.
const FRAME_HEADER: usize = 24;
/// The WAL magic number without its low bit (which says big-endian checksums).
const WAL_MAGIC: u32 = 0x377f_0682;
/// The only WAL format version.
const WAL_VERSION: u32 = 3_007_000;
/// A file whose status-change time is this close to now could change again
/// within the same tick of the file system's clock, unseen: not trusted.
pub const RACY: Duration = Duration::from_secs(2);

/// What [`before_read`] found, for [`in_read`].
#[derive(Debug)]
pub struct BeforeRead {
    /// A journal with content: unsure whatever the mode.
    journal: bool,
    /// The file header said WAL mode: the state walked before the transaction
    /// began (`None`: unsure), with the page size it assumed.
    wal: Option<(u32, Option<SourceState>)>,
}

/// The part of the state read before the capture's read transaction begins:
/// in WAL mode the whole state, from `stat` and the `-wal` file (no lock is
/// needed; read before the transaction, it can only describe its state or an
/// older one, so a recorded state never claims a commit the image lacks).
pub fn before_read(path: &Path) -> BeforeRead {
    // A journal with content: a hot journal (recovery needed) or a writer
    // mid-transaction; PERSIST mode keeps one too. Read the pages.
    let journal = len_of(&side(path, "-journal")).unwrap_or(1) > 0;
    let mut h = [0u8; 20];
    let wal = super::held::open(path)
        .and_then(|mut f| f.read_exact(&mut h))
        .ok()
        .filter(|()| h[18] == 2 && h[19] == 2)
        .map(|()| {
            let ps = match u16::from_be_bytes([h[16], h[17]]) {
                1 => 65536,
                n => u32::from(n),
            };
            (ps, wal_state(path, ps))
        });
    BeforeRead { journal, wal }
}

/// The database's state, inside the capture's read transaction on `conn`
/// (from [`super::capture::open_source`], begun with
/// [`super::capture::begin_read`]) after [`before_read`]. `None`: not known
/// exactly (the caller reads the pages).
pub fn in_read(conn: &Connection, path: &Path, before: BeforeRead) -> Option<SourceState> {
    if before.journal {
        return None;
    }
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .ok()?;
    let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0)).ok()?;
    let page_size = u32::try_from(page_size).ok()?;
    if mode.eq_ignore_ascii_case("wal") {
        // Walked before the transaction began, in the same mode and page size.
        match before.wal {
            Some((ps, state)) if ps == page_size => state,
            _ => None,
        }
    } else if before.wal.is_some() {
        None
    } else {
        rollback_state(conn, path, page_size)
    }
}

/// Whether a snapshot whose parent recorded `parent` may skip reading the
/// pages of a database now in state `now`.
pub fn same(parent: Option<&SourceState>, now: &SourceState) -> bool {
    !now.route.is_empty() && parent == Some(now) && !crate::testhook::no_unchanged()
}

fn rollback_state(conn: &Connection, path: &Path, page_size: u32) -> Option<SourceState> {
    let mut h = [0u8; 100];
    // Page 1 through SQLite's pager, which in rollback mode holds the file's
    // bytes (checked against the file's change counter when the lock was
    // taken); without `sqlite_dbpage`, from the file, through the registry of
    // descriptors never closed (closing one would drop this process's locks on
    // the file: see `sqlite::held`).
    let page1: Option<Vec<u8>> = conn
        .query_row("SELECT data FROM sqlite_dbpage WHERE pgno = 1", [], |r| {
            r.get(0)
        })
        .ok()
        .filter(|_| !crate::testhook::no_dbpage());
    let meta = match page1 {
        Some(p) if p.len() >= h.len() => {
            h.copy_from_slice(&p[..100]);
            std::fs::metadata(path).ok()?
        }
        _ => {
            let mut f = super::held::open(path).ok()?;
            f.read_exact(&mut h).ok()?;
            f.file().metadata().ok()?
        }
    };
    if &h[..16] != super::SQLITE_MAGIC || h[18] != 1 || h[19] != 1 {
        return None;
    }
    let header_ps = match u16::from_be_bytes([h[16], h[17]]) {
        1 => 65536,
        n => u32::from(n),
    };
    if header_ps != page_size {
        return None;
    }
    let st = Stat::of(&meta);
    Some(SourceState {
        route: "rollback".into(),
        page_size,
        dev: st.dev,
        ino: st.ino,
        size: st.size,
        mtime_ns: st.mtime_ns,
        ctime_ns: st.ctime_ns,
        change_counter: be32(&h[24..28]),
        header_pages: be32(&h[28..32]),
        version_valid_for: be32(&h[92..96]),
        ..Default::default()
    })
}

fn wal_state(path: &Path, page_size: u32) -> Option<SourceState> {
    let wal_path = side(path, "-wal");
    let db = Stat::of(&std::fs::metadata(path).ok()?);
    let wal = Stat::of_path(&wal_path)?;
    let walk = walk_wal(&wal_path, page_size)?;
    let db_after = Stat::of(&std::fs::metadata(path).ok()?);
    let wal_after = Stat::of_path(&wal_path)?;
    if walk.frames > 0 {
        // Same files (a checkpoint may have written the database meanwhile:
        // that leaves the content as it was).
        if (db.dev, db.ino, wal.ino) != (db_after.dev, db_after.ino, wal_after.ino) {
            return None;
        }
        return Some(SourceState {
            route: "wal".into(),
            page_size,
            dev: db.dev,
            ino: db.ino,
            wal_salt1: walk.salt1,
            wal_salt2: walk.salt2,
            wal_ckpt_seq: walk.ckpt_seq,
            wal_frames: walk.frames,
            wal_ino: wal.ino,
            ..Default::default()
        });
    }
    // No committed frame: the database file alone is the content.
    if !cfg!(unix) || db != db_after || wal != wal_after || db.racy() || wal.racy() {
        return None;
    }
    Some(SourceState {
        route: "wal-idle".into(),
        page_size,
        dev: db.dev,
        ino: db.ino,
        size: db.size,
        mtime_ns: db.mtime_ns,
        ctime_ns: db.ctime_ns,
        wal_ino: wal.ino,
        wal_size: wal.size,
        wal_ctime_ns: wal.ctime_ns,
        ..Default::default()
    })
}

/// What the WAL file holds.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Walk {
    pub(crate) salt1: u32,
    pub(crate) salt2: u32,
    pub(crate) ckpt_seq: u32,
    /// The last valid commit frame (0: none).
    pub(crate) frames: u32,
    /// The database's size in pages after that commit (0: no commit).
    pub(crate) db_pages: u32,
    /// The WAL header as read (all zeros: no valid header).
    pub(crate) header: [u8; WAL_HEADER],
}

/// One frame of the `-wal` file whose salts and checksum chain are valid.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Frame {
    /// The page it holds.
    pub(crate) pgno: u32,
    /// The database size in pages for a commit frame, else 0.
    pub(crate) commit_pages: u32,
    /// Offset of its page data in the `-wal` file.
    pub(crate) data_offset: u64,
}

/// Walks the `-wal` file as SQLite's recovery does: a valid header, then frames
/// whose salts match it and whose cumulative checksums hold, up to the last one
/// that commits. `None`: unsure (an unknown version, another page size, a
/// header rewritten while reading). An absent or invalid header: no frames.
fn walk_wal(path: &Path, page_size: u32) -> Option<Walk> {
    walk_wal_frames(path, page_size, &mut |_| {})
}

/// [`walk_wal`], calling `on_frame` for every valid frame in order (frames
/// after the last commit frame included: the caller keeps only those up to
/// [`Walk::frames`]).
pub(crate) fn walk_wal_frames(
    path: &Path,
    page_size: u32,
    on_frame: &mut dyn FnMut(Frame),
) -> Option<Walk> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some(Walk::default()),
        Err(_) => return None,
    };
    let mut r = std::io::BufReader::with_capacity(1 << 20, &f);
    let mut hdr = [0u8; WAL_HEADER];
    if !read_full(&mut r, &mut hdr)? {
        return Some(Walk::default());
    }
    let magic = be32(&hdr[0..4]);
    let big = magic & 1 == 1;
    if magic & !1 != WAL_MAGIC || checksum(big, &hdr[..24], (0, 0)) != pair(&hdr[24..32]) {
        return Some(Walk::default());
    }
    if be32(&hdr[4..8]) != WAL_VERSION || be32(&hdr[8..12]) != page_size {
        return None;
    }
    let (salt1, salt2) = (be32(&hdr[16..20]), be32(&hdr[20..24]));
    let mut sum = pair(&hdr[24..32]);
    let frame_len = FRAME_HEADER + page_size as usize;
    let mut frame = vec![0u8; frame_len];
    let (mut n, mut last_commit, mut db_pages) = (0u32, 0u32, 0u32);
    while read_full(&mut r, &mut frame)? {
        let fh = &frame[..FRAME_HEADER];
        let pgno = be32(&fh[0..4]);
        if pgno == 0 || be32(&fh[8..12]) != salt1 || be32(&fh[12..16]) != salt2 {
            break;
        }
        let s = checksum(big, &fh[..8], sum);
        let s = checksum(big, &frame[FRAME_HEADER..], s);
        if s != pair(&frame[16..24]) {
            break;
        }
        sum = s;
        let commit_pages = be32(&fh[4..8]);
        on_frame(Frame {
            pgno,
            commit_pages,
            data_offset: (WAL_HEADER + n as usize * frame_len + FRAME_HEADER) as u64,
        });
        n = n.checked_add(1)?;
        if commit_pages != 0 {
            last_commit = n;
            db_pages = commit_pages;
        }
    }
    // A header rewritten meanwhile (a new WAL generation) may have overwritten
    // frames while they were read: unsure. Salt-1 grows with every restart, so
    // an unchanged header means no restart happened.
    (wal_header(path)? == hdr).then_some(Walk {
        salt1,
        salt2,
        ckpt_seq: be32(&hdr[12..16]),
        frames: last_commit,
        db_pages,
        header: hdr,
    })
}

/// The first bytes of the `-wal` file (its header) as they are now; `None`
/// when they cannot be read (a missing or shorter file included).
pub(crate) fn wal_header(path: &Path) -> Option<[u8; WAL_HEADER]> {
    let f = File::open(path).ok()?;
    let mut again = [0u8; WAL_HEADER];
    crate::platform::read_exact_at(&f, &mut again, 0).ok()?;
    Some(again)
}

/// SQLite's WAL checksum (`walChecksumBytes`): 32-bit words, big-endian when
/// the magic's low bit is set, else little-endian, summed in pairs.
fn checksum(big: bool, data: &[u8], (mut s1, mut s2): (u32, u32)) -> (u32, u32) {
    for w in data.chunks_exact(8) {
        let (a, b) = if big {
            (be32(&w[0..4]), be32(&w[4..8]))
        } else {
            (le32(&w[0..4]), le32(&w[4..8]))
        };
        s1 = s1.wrapping_add(a).wrapping_add(s2);
        s2 = s2.wrapping_add(b).wrapping_add(s1);
    }
    (s1, s2)
}

/// Fills `buf`; `Some(false)` at end of file (a short tail counts as the end).
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Option<bool> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => return Some(false),
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    Some(true)
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn pair(b: &[u8]) -> (u32, u32) {
    (be32(&b[0..4]), be32(&b[4..8]))
}

fn side(path: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}{suffix}", path.display()))
}

/// The length of a file; `Some(0)` when it does not exist, `None` when unknown.
fn len_of(path: &Path) -> Option<u64> {
    match std::fs::metadata(path) {
        Ok(m) => Some(m.len()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(0),
        Err(_) => None,
    }
}

/// What `stat` says of a file (all 0 when it does not exist).
#[derive(Debug, Default, PartialEq, Eq, Clone, Copy)]
struct Stat {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
}

impl Stat {
    fn of(m: &Metadata) -> Stat {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let ns = |s: i64, n: i64| s.saturating_mul(1_000_000_000).saturating_add(n);
            Stat {
                dev: m.dev(),
                ino: m.ino(),
                size: m.len(),
                mtime_ns: ns(m.mtime(), m.mtime_nsec()),
                ctime_ns: ns(m.ctime(), m.ctime_nsec()),
            }
        }
        #[cfg(not(unix))]
        {
            let mtime_ns = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .and_then(|d| i64::try_from(d.as_nanos()).ok())
                .unwrap_or(0);
            Stat {
                size: m.len(),
                mtime_ns,
                ..Default::default()
            }
        }
    }

    /// `None` when it cannot be told; all 0 when the file does not exist.
    fn of_path(path: &Path) -> Option<Stat> {
        match std::fs::metadata(path) {
            Ok(m) => Some(Stat::of(&m)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(Stat::default()),
            Err(_) => None,
        }
    }

    /// Changed too recently to rule out a change within the same clock tick.
    fn racy(&self) -> bool {
        if *self == Stat::default() {
            return false;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .ok()
            .and_then(|d| i64::try_from(d.as_nanos()).ok())
            .unwrap_or(i64::MAX);
        let racy_ns = i64::try_from(RACY.as_nanos()).unwrap_or(i64::MAX);
        self.ctime_ns > now.saturating_sub(racy_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_matches_a_wal_sqlite_wrote() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("w.db");
        let conn = Connection::open(&db).expect("open");
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;
             CREATE TABLE t(x); INSERT INTO t VALUES (1); INSERT INTO t VALUES (2);",
        )
        .expect("write");
        let ps: u32 = conn
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .expect("ps");
        let walk = walk_wal(&side(&db, "-wal"), ps).expect("walk");
        assert!(walk.frames >= 3, "{walk:?}");
        // One more commit: one more valid commit frame at least.
        conn.execute_batch("INSERT INTO t VALUES (3);")
            .expect("write");
        let more = walk_wal(&side(&db, "-wal"), ps).expect("walk");
        assert!(more.frames > walk.frames);
        assert_eq!((more.salt1, more.salt2), (walk.salt1, walk.salt2));
        // A torn last frame is not counted.
        let wal = side(&db, "-wal");
        let bytes = std::fs::read(&wal).expect("read");
        let torn = &bytes[..bytes.len() - 10];
        let copy = dir.path().join("copy-wal");
        std::fs::write(&copy, torn).expect("write");
        assert_eq!(walk_wal(&copy, ps).expect("walk").frames, walk.frames);
        // Another page size: unsure.
        assert_eq!(walk_wal(&wal, ps * 2), None);
    }
}
