//! The routes by which [`capture_begun`](super::capture::capture_begun) reads the page image,
//! always inside the capture's one read transaction, so every route sees the same
//! committed state and yields the same bytes (tested: same BLAKE3 per route).
//!
//! - [`Route::Dbpage`]: the `sqlite_dbpage` virtual table, when the linked SQLite
//!   has it (this repository's own builds enable it in `.cargo/config.toml`).
//!   Pages stream out; memory stays bounded.
//! - [`Route::File`] (rollback-journal modes, no `sqlite_dbpage`): the pages are
//!   read straight from the database file. The read transaction holds SQLite's
//!   SHARED lock, taken after any hot journal was rolled back, so no writer can
//!   change the file meanwhile. Pages stream out; memory stays bounded. Page 1 is
//!   checked against what SQLite reports in the same transaction (a file swapped
//!   in under the path is refused).
//! - [`Route::WalFile`] (WAL mode, no `sqlite_dbpage`): committed pages may sit
//!   in the `-wal` file, so the database file's pages are read with the newest
//!   copy of each page in the `-wal` file's committed frames laid over them (the
//!   frames found as SQLite's recovery finds them, `super::unchanged`). Pages
//!   stream out; memory holds one map entry per page in the `-wal` file.
//!   In doubt (the `-wal` file restarted while read, a size or page 1 that
//!   disagrees with SQLite's view in the transaction) it starts again, and
//!   after [`WAL_FILE_TRIES`](super::capture) attempts takes `Serialize`.
//! - [`Route::Serialize`] (the fallback of `WalFile`): the pages are read
//!   through SQLite's pager with `sqlite3_serialize`, which copies each page
//!   exactly as SQLite has it (the same `sqlite3PagerGet` the virtual table
//!   uses). It holds one copy of the whole image in memory. The online backup API was not chosen: it rewrites
//!   page 1's schema cookie, and into a file also the change counter and the
//!   version fields, whose source values no pragma reports.
//!
//! The lock-byte page (the page holding byte 2^30, in databases over 1 GiB) is
//! zeros in every route, as SQLite never writes it.
//!
//! The file route reads the database file outside SQLite. Closing any descriptor
//! of a file drops every POSIX lock this process holds on it, SQLite's included
//! (an embedding app's too), so it reads through [`super::held`], whose
//! descriptors are never closed.

use std::io::{Seek, SeekFrom};
use std::path::Path;

use rusqlite::Connection;

use super::capture::{ImageInfo, Piece, Sink};
use super::held::Held;
use crate::error::{Error, Repr, Result};

/// How the page image of a snapshot was read (the manifest's `capture_route`;
/// a raw copy of a file SQLite cannot read says `raw` there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// The `sqlite_dbpage` virtual table.
    Dbpage,
    /// The database file, under the read transaction's shared lock.
    File,
    /// `sqlite3_serialize` through SQLite's pager (WAL mode; the fallback of
    /// [`Route::WalFile`]).
    Serialize,
    /// The database file with the `-wal` file's committed frames laid over it
    /// (WAL mode), streamed.
    WalFile,
}

impl Route {
    /// The name written in the manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            Route::Dbpage => "dbpage",
            Route::File => "file",
            Route::Serialize => "serialize",
            Route::WalFile => "wal-file",
        }
    }
}

/// Pages sent per [`Piece::Data`].
const PAGES_PER_PIECE: usize = 256;

/// SQLite's lock byte offset: the page holding it is never written.
const PENDING_BYTE: u64 = 0x4000_0000;

/// Whether the SQLite linked into this program has the `sqlite_dbpage` table.
pub fn has_dbpage(conn: &Connection) -> bool {
    conn.query_row(
        "SELECT count(*) FROM pragma_module_list WHERE name = 'sqlite_dbpage'",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
    .unwrap_or(false)
}

/// The route for a database in `journal_mode` (lower case, as SQLite reports it).
///
/// Rollback-journal modes read the file under the shared lock, even where
/// `sqlite_dbpage` exists: the same bytes (the file holds exactly the committed
/// state while the lock is held), copied in large reads instead of one SQL row
/// per page, so the app's commits wait less (measured on 1.06 GB: longest app
/// stall 0.44 s against 0.73 s). WAL mode uses `sqlite_dbpage` when the linked
/// SQLite has it, else the `wal-file` route.
pub fn choose(conn: &Connection, journal_mode: &str) -> Route {
    let dbpage = || has_dbpage(conn) && !crate::testhook::no_dbpage();
    if journal_mode != "wal" {
        if crate::testhook::prefer_dbpage() && dbpage() {
            Route::Dbpage
        } else {
            Route::File
        }
    } else if dbpage() {
        Route::Dbpage
    } else {
        Route::WalFile
    }
}

/// Sends the image (`info.page_count` pages of `info.page_size`) as file `name`
/// through `route`. Must run inside the read transaction `info` was read in. The
/// file route returns its view of the file (a [`super::held`] descriptor).
pub fn send_image(
    conn: &Connection,
    path: &Path,
    info: &ImageInfo,
    name: &str,
    route: Route,
    sink: &mut Sink<'_>,
) -> Result<Option<Held>> {
    sink(Piece::Begin {
        name: name.to_string(),
        page_size: Some(info.page_size),
        size_hint: Some(info.page_count * u64::from(info.page_size)),
    })?;
    let mut out = Pages::new(info.page_size as usize, sink);
    let keep = match route {
        Route::Dbpage => send_dbpage(conn, path, info, &mut out).map(|()| None)?,
        Route::File => Some(send_file(conn, path, info, &mut out)?),
        Route::Serialize => send_serialized(conn, path, info, &mut out).map(|()| None)?,
        Route::WalFile => {
            return Err(Error::internal(
                "the wal-file route is sent by send_wal_file",
            ))
        }
    };
    out.finish()?;
    Ok(keep)
}

/// Sends the image through [`Route::WalFile`] as file `name`: inside the read
/// transaction `info` was read in, the database file's pages with the newest
/// copy of each page in the `-wal` file's committed frames laid over them
/// (store-format.md, "Capture routes", says why this is exact). `Ok(None)`: in
/// doubt (the `-wal` file restarted while read, page 1 disagreeing with what
/// SQLite reports in the transaction); the caller discards what was sent and
/// tries again or takes [`Route::Serialize`]. `Ok(Some(held))`: sent; `held`
/// is the database file's descriptor, to be dropped after the transaction.
///
/// When a writer committed between the transaction's start and the walk, the
/// image is that newer committed state (consistent in itself: every frame of it
/// chains to its commit frame) and `info.page_count` is set to its size; page 1
/// must still agree with the transaction on everything else it is checked for.
pub fn send_wal_file(
    conn: &Connection,
    path: &Path,
    info: &mut ImageInfo,
    name: &str,
    sink: &mut Sink<'_>,
) -> Result<Option<Held>> {
    let ps = info.page_size as usize;
    let wal_path = std::path::PathBuf::from(format!("{}-wal", path.display()));
    // Newest frame of each page up to the last commit frame.
    let mut latest: std::collections::HashMap<u32, u64> = std::collections::HashMap::new();
    let mut pending: Vec<(u32, u64)> = Vec::new();
    let walk = super::unchanged::walk_wal_frames(&wal_path, info.page_size, &mut |f| {
        pending.push((f.pgno, f.data_offset));
        if f.commit_pages != 0 {
            latest.extend(pending.drain(..));
        }
    });
    let Some(walk) = walk else {
        return Ok(None);
    };
    drop(pending);
    // The last commit's size is the image's size. It differs from what SQLite
    // reports in this transaction when a writer committed since it began: the
    // image is then that newer committed state (page 1 is still checked below).
    if walk.frames > 0 {
        info.page_count = u64::from(walk.db_pages);
    }
    let wal = if walk.frames > 0 {
        Some(std::fs::File::open(&wal_path).map_err(|e| Error::io("opening", &wal_path, e))?)
    } else {
        None
    };
    let mut f = super::held::open(path).map_err(|e| Error::io("opening", path, e))?;
    sink(Piece::Begin {
        name: name.to_string(),
        page_size: Some(info.page_size),
        size_hint: Some(info.page_count * ps as u64),
    })?;
    let mut out = Pages::new(ps, sink);
    let lock = lock_page(ps);
    let mut buf = vec![0u8; ps * PAGES_PER_PIECE];
    let mut pgno = 1u64;
    while pgno <= info.page_count {
        let n = (info.page_count - pgno + 1).min(PAGES_PER_PIECE as u64);
        let bytes = &mut buf[..n as usize * ps];
        read_pages(&mut f, path, pgno, ps, bytes)?;
        for (i, page) in bytes.chunks_exact_mut(ps).enumerate() {
            let no = pgno + i as u64;
            if no == lock {
                page.fill(0);
            } else if let (Some(off), Some(wal)) = (
                u32::try_from(no).ok().and_then(|k| latest.get(&k)),
                wal.as_ref(),
            ) {
                if crate::platform::read_exact_at(wal, page, *off).is_err() {
                    return Ok(None);
                }
            }
        }
        if pgno == 1 {
            let page = &bytes[..ps];
            if check_page_one(conn, path, info, page).is_err() {
                return Ok(None);
            }
        }
        for page in bytes.chunks_exact(ps) {
            out.push(Some(page))?;
        }
        pgno += n;
    }
    // No restart since the walk: every frame read belonged to its generation.
    if walk.header != super::unchanged::wal_header(&wal_path).unwrap_or([0; 32]) {
        return Ok(None);
    }
    out.finish()?;
    Ok(Some(f))
}

/// Reads the pages from `pgno` (1-based, pages of `ps` bytes) into `bytes`,
/// zeros past the end of the file (SQLite reads zeros there too).
fn read_pages(f: &mut Held, path: &Path, pgno: u64, ps: usize, bytes: &mut [u8]) -> Result<()> {
    f.seek(SeekFrom::Start((pgno - 1) * ps as u64))
        .map_err(|e| Error::io("reading", path, e))?;
    let got = crate::platform::read_full(f, bytes).map_err(|e| Error::io("reading", path, e))?;
    bytes[got..].fill(0);
    Ok(())
}

/// Collects whole pages and hands them to the sink [`PAGES_PER_PIECE`] at a time.
struct Pages<'s, 'a> {
    ps: usize,
    buf: Vec<u8>,
    sent: u64,
    sink: &'s mut Sink<'a>,
}

impl<'s, 'a> Pages<'s, 'a> {
    fn new(ps: usize, sink: &'s mut Sink<'a>) -> Self {
        Pages {
            ps,
            buf: Vec::with_capacity(ps * PAGES_PER_PIECE),
            sent: 0,
            sink,
        }
    }

    /// Pages added so far.
    fn count(&self) -> u64 {
        self.sent + (self.buf.len() / self.ps) as u64
    }

    /// Adds one page (`None`: a page of zeros).
    fn push(&mut self, page: Option<&[u8]>) -> Result<()> {
        match page {
            Some(p) => self.buf.extend_from_slice(p),
            None => self.buf.resize(self.buf.len() + self.ps, 0),
        }
        crate::testhook::point("capture-page");
        if self.buf.len() >= self.ps * PAGES_PER_PIECE {
            self.sent += PAGES_PER_PIECE as u64;
            let full =
                std::mem::replace(&mut self.buf, Vec::with_capacity(self.ps * PAGES_PER_PIECE));
            (self.sink)(Piece::Data(full))?;
        }
        Ok(())
    }

    fn finish(self) -> Result<()> {
        if !self.buf.is_empty() {
            (self.sink)(Piece::Data(self.buf))?;
        }
        (self.sink)(Piece::End)
    }
}

fn lock_page(ps: usize) -> u64 {
    PENDING_BYTE / ps as u64 + 1
}

fn send_dbpage(conn: &Connection, path: &Path, info: &ImageInfo, out: &mut Pages) -> Result<()> {
    let sq = |e| Error::sqlite(path, e);
    let ps = out.ps;
    let mut stmt = conn
        .prepare("SELECT pgno, data FROM sqlite_dbpage('main') WHERE pgno <= ?1 ORDER BY pgno")
        .map_err(sq)?;
    let mut rows = stmt.query([info.page_count as i64]).map_err(sq)?;
    while let Some(row) = rows.next().map_err(sq)? {
        let pgno: i64 = row.get(0).map_err(sq)?;
        let pgno =
            u64::try_from(pgno).map_err(|_| Error::corrupt("database", "negative page number"))?;
        // Pages SQLite does not return are zeros in any file.
        while out.count() + 1 < pgno {
            out.push(None)?;
        }
        match row.get_ref(1).map_err(sq)? {
            rusqlite::types::ValueRef::Blob(b) if b.len() == ps => out.push(Some(b))?,
            rusqlite::types::ValueRef::Null => out.push(None)?,
            _ => {
                return Err(Error::corrupt(
                    format!("page {pgno} of {}", path.display()),
                    "unexpected page size",
                ))
            }
        }
    }
    while out.count() < info.page_count {
        out.push(None)?;
    }
    Ok(())
}

fn send_serialized(
    conn: &Connection,
    path: &Path,
    info: &ImageInfo,
    out: &mut Pages,
) -> Result<()> {
    if info.page_count == 0 {
        // sqlite3_serialize would try to write an empty database's first page.
        return Ok(());
    }
    let data = conn
        .serialize(rusqlite::DatabaseName::Main)
        .map_err(|e| Error::sqlite(path, e))?;
    let want = info.page_count * u64::from(info.page_size);
    if data.len() as u64 != want {
        return Err(Error::corrupt(
            format!("database {}", path.display()),
            format!(
                "SQLite serialized {} bytes, {want} expected ({} pages of {})",
                data.len(),
                info.page_count,
                info.page_size
            ),
        ));
    }
    for page in data.chunks_exact(out.ps) {
        out.push(Some(page))?;
    }
    Ok(())
}

/// A stretch of the page image as [`walk_file`] yields it.
#[derive(Debug)]
pub enum Span<'a> {
    /// These bytes (whole pages).
    Bytes(&'a [u8]),
    /// `len` bytes of the database `file` from `offset` (whole pages; zeros
    /// for any part past the end of the file, as SQLite reads them).
    File {
        /// The database file, under the read transaction's shared lock.
        file: &'a std::fs::File,
        /// Where the pages start in it.
        offset: u64,
        /// How many bytes.
        len: u64,
    },
    /// This many bytes of zeros (the lock-byte page).
    Zeros(u64),
}

/// Bytes per [`Span::File`] (whole pages, at least one): the image is copied
/// in stretches of this size, and the caller can stop between them.
const SPAN_BYTES: u64 = 8 << 20;

/// The file route ([`Route::File`]) as a walk: page 1 read and checked against
/// what SQLite reports in this transaction, then the other pages as ranges of
/// the file, the lock-byte page as zeros, in order, to `out`. Must run inside
/// the read transaction `info` was read in; returns the file's descriptor, to
/// be dropped after the transaction ends. A caller writing into a file copies
/// the ranges without reading them (`platform::copy_range`).
pub fn walk_file(
    conn: &Connection,
    path: &Path,
    info: &ImageInfo,
    out: &mut dyn FnMut(Span<'_>) -> Result<()>,
) -> Result<Held> {
    let ps = info.page_size as usize;
    // Through the registry: never closed, so no lock of this process is dropped.
    let mut f = super::held::open(path).map_err(|e| Error::io("opening", path, e))?;
    if info.page_count == 0 {
        return Ok(f);
    }
    let mut first = vec![0u8; ps];
    read_pages(&mut f, path, 1, ps, &mut first)?;
    check_page_one(conn, path, info, &first)?;
    crate::testhook::point("capture-page");
    out(Span::Bytes(&first))?;
    let lock = lock_page(ps);
    let mut pgno = 2u64;
    while pgno <= info.page_count {
        if pgno == lock {
            crate::testhook::point("capture-page");
            out(Span::Zeros(ps as u64))?;
            pgno += 1;
            continue;
        }
        let mut n = (info.page_count - pgno + 1).min((SPAN_BYTES / ps as u64).max(1));
        if pgno < lock {
            n = n.min(lock - pgno);
        }
        for _ in 0..n {
            crate::testhook::point("capture-page");
        }
        out(Span::File {
            file: f.file(),
            offset: (pgno - 1) * ps as u64,
            len: n * ps as u64,
        })?;
        pgno += n;
    }
    Ok(f)
}

fn send_file(conn: &Connection, path: &Path, info: &ImageInfo, out: &mut Pages) -> Result<Held> {
    let ps = out.ps;
    let mut buf = vec![0u8; ps * PAGES_PER_PIECE];
    walk_file(conn, path, info, &mut |span| match span {
        Span::Bytes(pages) => pages.chunks_exact(ps).try_for_each(|p| out.push(Some(p))),
        Span::Zeros(len) => (0..len / ps as u64).try_for_each(|_| out.push(None)),
        Span::File { file, offset, len } => {
            read_span(file, path, offset, len, &mut buf, &mut |b| {
                b.chunks_exact(ps).try_for_each(|p| out.push(Some(p)))
            })
        }
    })
}

/// Reads a [`Span::File`] of the database at `path` (`len` bytes of `file`
/// from `offset`) through `buf`, handing it to `each` a buffer at a time,
/// zeros for any part past the end of the file (as SQLite reads them).
pub fn read_span(
    file: &std::fs::File,
    path: &Path,
    offset: u64,
    len: u64,
    buf: &mut [u8],
    each: &mut dyn FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(buf.len() as u64) as usize;
        let bytes = &mut buf[..n];
        let got = crate::platform::read_full_at(file, bytes, offset + done)
            .map_err(|e| Error::io("reading", path, e))?;
        bytes[got..].fill(0);
        each(bytes)?;
        done += n as u64;
    }
    Ok(())
}

/// Checks that the file's page 1 says what SQLite says in the same transaction:
/// the file read is the database SQLite holds locked (not one swapped in under
/// its path since it was opened).
fn check_page_one(conn: &Connection, path: &Path, info: &ImageInfo, page: &[u8]) -> Result<()> {
    let be32 = |at: usize| u32::from_be_bytes([page[at], page[at + 1], page[at + 2], page[at + 3]]);
    let pragma = |name: &str| -> Result<i64> {
        conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
            .map_err(|e| Error::sqlite(path, e))
    };
    let mut same = page.starts_with(super::SQLITE_MAGIC)
        && super::header_page_size(page) == Some(info.page_size)
        && i64::from(be32(40)) == pragma("schema_version")?
        && i64::from(be32(36)) == pragma("freelist_count")?
        && i64::from(be32(60) as i32) == info.user_version;
    // The in-header size is valid when the change counter matches bytes 92..96.
    if be32(24) == be32(92) && be32(28) != 0 {
        same &= u64::from(be32(28)) == info.page_count;
    }
    if same {
        Ok(())
    } else {
        Err(Repr::SourceUnavailable {
            path: path.into(),
            why: "the file's header does not match what SQLite read in the same \
                  transaction (was the database replaced while it was being read?); \
                  try again"
                .into(),
        }
        .into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::capture::{begin_read, image_info, open_source};

    /// The image of `path` read through `route` in one read transaction.
    fn image_via(path: &Path, route: Route) -> Result<Vec<u8>> {
        let conn = open_source(path)?;
        begin_read(&conn, path)?;
        let mut info = image_info(&conn, path)?;
        let mut out = Vec::new();
        let mut sink = |p: Piece| {
            if let Piece::Data(d) = p {
                out.extend_from_slice(&d);
            }
            Ok(())
        };
        let keep = if route == Route::WalFile {
            send_wal_file(&conn, path, &mut info, "db", &mut sink)
                .and_then(|k| k.ok_or_else(|| Error::internal("in doubt")).map(Some))
        } else {
            send_image(&conn, path, &info, "db", route, &mut sink)
        };
        conn.execute_batch("COMMIT").expect("commit");
        drop(keep?);
        assert_eq!(
            out.len() as u64,
            info.page_count * u64::from(info.page_size)
        );
        Ok(out)
    }

    /// A database with a few hundred pages, a freelist and an index, in `mode`.
    fn make_db(path: &Path, mode: &str) -> Connection {
        let c = Connection::open(path).expect("open");
        c.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        )
        .expect("config");
        c.execute_batch(&format!(
            "PRAGMA journal_mode = {mode}; PRAGMA wal_autocheckpoint = 0;
             CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);
             CREATE INDEX t_v ON t(v);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
             INSERT INTO t SELECT i, randomblob(300) FROM n;
             DELETE FROM t WHERE id % 7 = 0;
             PRAGMA user_version = 42;"
        ))
        .expect("filling the database");
        c
    }

    fn hash(b: &[u8]) -> String {
        blake3::hash(b).to_hex().to_string()
    }

    /// Issue #9 "capture in any build": in WAL mode the serialize route reads the
    /// committed pages still in the `-wal` file exactly as the dbpage route does,
    /// and the image equals the database file after a full checkpoint.
    #[test]
    fn wal_serialize_route_matches_dbpage() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("wal.db");
        let writer = make_db(&db, "WAL");
        // More commits after the first: page 1 and many others live in the WAL.
        writer
            .execute_batch("UPDATE t SET v = randomblob(310) WHERE id % 5 = 0; CREATE TABLE u(x);")
            .expect("update");
        assert!(
            std::fs::metadata(dir.path().join("wal.db-wal"))
                .expect("wal")
                .len()
                > 0
        );
        let probe = open_source(&db).expect("open");
        assert!(
            has_dbpage(&probe),
            "the test build links SQLite with sqlite_dbpage"
        );
        drop(probe);

        let by_dbpage = image_via(&db, Route::Dbpage).expect("dbpage");
        let by_serialize = image_via(&db, Route::Serialize).expect("serialize");
        assert_eq!(hash(&by_dbpage), hash(&by_serialize));
        let by_wal_file = image_via(&db, Route::WalFile).expect("wal-file");
        assert_eq!(hash(&by_dbpage), hash(&by_wal_file));
        let stale = std::fs::read(&db).expect("reading the file");
        assert_ne!(
            hash(&stale),
            hash(&by_dbpage),
            "the WAL held committed pages"
        );

        writer
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
            .expect("checkpoint");
        let file = std::fs::read(&db).expect("reading the file");
        assert_eq!(hash(&file), hash(&by_serialize));
    }

    /// Issue #9 "capture in any build": in rollback-journal mode the file route
    /// gives the dbpage route's bytes, which are the file's.
    #[test]
    fn rollback_file_route_matches_dbpage() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("rollback.db");
        drop(make_db(&db, "DELETE"));
        let by_dbpage = image_via(&db, Route::Dbpage).expect("dbpage");
        let by_file = image_via(&db, Route::File).expect("file");
        assert_eq!(hash(&by_dbpage), hash(&by_file));
        assert_eq!(hash(&std::fs::read(&db).expect("read")), hash(&by_file));
    }

    /// Issue #9 "capture in any build": a hot journal is rolled back by SQLite
    /// when the read transaction starts, before the file route reads the file.
    #[test]
    fn file_route_reads_after_hot_journal_rollback() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("src.db");
        let c = make_db(&db, "DELETE");
        let before = std::fs::read(&db).expect("read");
        drop(c);
        let c = Connection::open(&db).expect("open");
        // A transaction that spills into the database file, copied mid-flight:
        // the copies are a database with a hot journal.
        c.execute_batch("PRAGMA cache_size = 2; BEGIN; UPDATE t SET v = randomblob(300);")
            .expect("spilling transaction");
        for name in ["a.db", "b.db"] {
            std::fs::copy(&db, dir.path().join(name)).expect("copy db");
            std::fs::copy(
                dir.path().join("src.db-journal"),
                dir.path().join(format!("{name}-journal")),
            )
            .expect("copy journal");
        }
        c.execute_batch("ROLLBACK").expect("rollback");
        drop(c);
        let a = dir.path().join("a.db");
        assert_ne!(
            hash(&std::fs::read(&a).expect("read")),
            hash(&before),
            "it spilled"
        );
        let by_file = image_via(&a, Route::File).expect("file");
        let by_dbpage = image_via(&dir.path().join("b.db"), Route::Dbpage).expect("dbpage");
        assert_eq!(hash(&by_file), hash(&by_dbpage));
        // Rolled back: the rows before the transaction (pages that were free
        // then are not journaled, so the bytes may differ there).
        let rows = |p: &Path| -> String {
            Connection::open(p)
                .expect("open")
                .query_row(
                    "SELECT hex(group_concat(v)) FROM (SELECT v FROM t ORDER BY id)",
                    [],
                    |r| r.get(0),
                )
                .expect("rows")
        };
        let image = dir.path().join("image.db");
        std::fs::write(&image, &by_file).expect("write");
        assert_eq!(rows(&image), rows(&db));
    }

    /// Issue #9 "capture in any build": the file route refuses a file that is not
    /// the one SQLite holds locked (another database renamed over the path).
    /// Unix only: Windows refuses to rename over a file SQLite has open.
    #[cfg(unix)]
    #[test]
    fn file_route_refuses_a_swapped_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("one.db");
        let other = dir.path().join("other.db");
        drop(make_db(&db, "DELETE"));
        let c = make_db(&other, "DELETE");
        c.execute_batch("CREATE TABLE extra(x); PRAGMA user_version = 7;")
            .expect("other");
        drop(c);
        let conn = open_source(&db).expect("open");
        begin_read(&conn, &db).expect("begin");
        let info = image_info(&conn, &db).expect("info");
        std::fs::rename(&other, &db).expect("swap");
        let mut sink = |_: Piece| Ok(());
        let err = send_image(&conn, &db, &info, "db", Route::File, &mut sink)
            .expect_err("a swapped file must be refused");
        assert_eq!(err.kind(), crate::ErrorKind::SourceUnavailable, "{err}");
        conn.execute_batch("COMMIT").expect("commit");
    }

    /// Issue #10 item 9: on random WAL histories (writes, deletes that shrink
    /// the file, checkpoints of every kind, restarts, a reader pinning an old
    /// state while a writer goes on), the wal-file route yields the dbpage
    /// route's bytes in the same read transaction.
    #[test]
    fn wal_file_route_matches_dbpage_on_random_histories() {
        use rand::{Rng, SeedableRng};
        for seed in 0..12u64 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let dir = tempfile::tempdir().expect("tempdir");
            let db = dir.path().join("h.db");
            let w = Connection::open(&db).expect("open");
            w.set_db_config(
                rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
                true,
            )
            .expect("config");
            let ps = [512, 1024, 4096][rng.gen_range(0..3)];
            w.execute_batch(&format!(
                "PRAGMA page_size = {ps}; PRAGMA journal_mode = WAL;
                 PRAGMA wal_autocheckpoint = {};
                 CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);",
                [0, 20, 200][rng.gen_range(0..3)]
            ))
            .expect("setup");
            let reader = open_source(&db).expect("reader");
            let mut pinned = false;
            for _ in 0..25 {
                let sql = match rng.gen_range(0..8) {
                    0..=2 => format!(
                        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {})
                         INSERT INTO t(v) SELECT randomblob({}) FROM n;",
                        rng.gen_range(1..300),
                        rng.gen_range(1..2000)
                    ),
                    3 => format!("UPDATE t SET v = randomblob(50) WHERE id % {} = 0;", rng.gen_range(2..9)),
                    4 => format!("DELETE FROM t WHERE id % {} = 0;", rng.gen_range(1..5)),
                    5 => "PRAGMA wal_checkpoint(PASSIVE);".into(),
                    6 => ["PRAGMA wal_checkpoint(RESTART);", "PRAGMA wal_checkpoint(TRUNCATE);",
                          "VACUUM;"][rng.gen_range(0..3)].into(),
                    _ => {
                        // A reader holding an old state (blocks restarts and
                        // full checkpoints) or letting it go.
                        if pinned {
                            reader.execute_batch("COMMIT").expect("end");
                        } else {
                            begin_read(&reader, &db).expect("pin");
                        }
                        pinned = !pinned;
                        continue;
                    }
                };
                // A checkpoint blocked by the pinned reader is fine.
                let _ = w.execute_batch(&sql);
                let a = image_via(&db, Route::Dbpage).expect("dbpage");
                let b = image_via(&db, Route::WalFile).expect("wal-file");
                assert_eq!(hash(&a), hash(&b), "seed {seed}: {sql}");
            }
            if pinned {
                reader.execute_batch("COMMIT").expect("end");
            }
        }
    }
}
