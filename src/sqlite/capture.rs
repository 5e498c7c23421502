//! Consistent capture of a live database.
//!
//! The page image is read inside ONE read transaction on one connection (exactly
//! as SQLite has it, WAL frames included, without rewriting any page; by one of
//! the routes of [`super::capture_routes`], chosen by what the linked SQLite
//! offers) and copied to a private temporary file ([`super::staging`]); the
//! transaction then ends, and the exports and facts the caller asks for are read
//! from that copy. In WAL mode a reader never blocks the writer; in
//! rollback-journal mode the writer waits (busy timeout) only while the pages
//! are copied. The copy runs on a thread of its own, which ends the
//! transaction as soon as it is done; the caller's thread sends the copy on
//! right behind it ([`capture_at`]), so hashing uses the other core meanwhile.
//!
//! Output goes to a [`Sink`] as [`Piece`]s; memory stays bounded whatever the
//! database size.
//!
//! A lock another process holds is waited for while the database keeps changing
//! (a writer committing), at most [`BUSY_MAX`]; a lock on a database that does not
//! change for [`BUSY_IDLE`] (exclusive locking mode, a stuck write) is given up.
//! The failures a user can fix (a lock, a hot journal or a WAL database on a
//! read-only mount) are explained by [`source_error`].

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

use super::check::BackgroundCheck;
use super::kept::PreviousPages;
use super::staging::Removal;
use crate::error::{Error, Repr, Result};

/// One piece of captured output.
#[derive(Debug)]
pub enum Piece {
    /// A new file starts.
    Begin {
        /// File name in the snapshot.
        name: String,
        /// For the database image: its page size (content arrives as whole pages).
        page_size: Option<u32>,
        /// Expected size in bytes, if known.
        size_hint: Option<u64>,
    },
    /// File content (for the image: a whole number of pages).
    Data(Vec<u8>),
    /// A chunk boundary here (a file's content before and after it is cut
    /// into chunks separately), so a later snapshot can reuse the chunks on
    /// either side whole.
    Cut,
    /// Chunks already stored (a parent snapshot's), appended to the current file
    /// as they are; a [`Piece::Cut`] precedes it implicitly.
    Reuse(Vec<crate::format::TreeEntry>),
    /// The current file ends.
    End,
}

/// Receives pieces in order.
pub type Sink<'a> = dyn FnMut(Piece) -> Result<()> + 'a;

/// Facts read in the capture's transaction.
#[derive(Debug, Clone, Default)]
pub struct ImageInfo {
    /// Page size.
    pub page_size: u32,
    /// Pages in the image.
    pub page_count: u64,
    /// `PRAGMA user_version`.
    pub user_version: i64,
    /// `PRAGMA journal_mode`.
    pub journal_mode: String,
    /// SQLite library version.
    pub sqlite_version: String,
    /// How the pages were read ([`Route::as_str`](super::capture_routes::Route::as_str),
    /// or `raw`).
    pub capture_route: Option<&'static str>,
    /// Bytes the capture wrote to its staged copy: the image's size for a
    /// temporary copy, the pages that changed for a kept one.
    pub staged_written: u64,
    /// Why the capture could not use the database's kept copy, if it could not.
    pub staging_note: Option<String>,
}

/// Longest wait for another process's lock while the database keeps changing
/// (a writer that commits in a tight loop can hold readers off for seconds).
pub const BUSY_MAX: Duration = Duration::from_secs(30);

/// A lock on a database whose files have not changed for this long is not a
/// writer making progress (exclusive locking mode, a stuck write): give up.
pub const BUSY_IDLE: Duration = Duration::from_secs(5);

/// SQLite's own wait per attempt; between attempts the files are looked at.
const BUSY_STEP: Duration = Duration::from_millis(500);

/// Opens a source database for capture (does not write to it).
pub fn open_source(path: &Path) -> Result<Connection> {
    open_source_until(path, &|| false)
}

/// [`open_source`], giving up with the cancelled error as soon as `cancelled`
/// says so while it waits for another connection's lock.
pub fn open_source_until(path: &Path, cancelled: &dyn Fn() -> bool) -> Result<Connection> {
    let conn = open_source_unlocked(path)?;
    // Touch the schema now so "file is not a database" surfaces as bad input.
    retry_busy(path, cancelled, || {
        conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
            r.get::<_, i64>(0)
        })
    })?;
    Ok(conn)
}

/// [`open_source_until`] without touching the schema (no lock is taken): the
/// caller begins the capture's read transaction at once with
/// [`begin_read_until`], which reports a file that is not a database the same
/// way.
pub fn open_source_unlocked(path: &Path) -> Result<Connection> {
    super::check_database_file(path)?;
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )
    .map_err(|e| source_error(path, e))?;
    conn.busy_timeout(BUSY_STEP)
        .map_err(|e| Error::sqlite(path, e))?;
    conn.execute_batch("PRAGMA query_only = 1;")
        .map_err(|e| Error::sqlite(path, e))?;
    // Closing the last connection to a WAL database would checkpoint it, writing to
    // the user's file; a backup tool only reads.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
        true,
    )
    .map_err(|e| Error::sqlite(path, e))?;
    Ok(conn)
}

/// Starts a read transaction on a connection from [`open_source`] and takes its
/// read lock (waiting for a lock as the module docs say).
pub fn begin_read(conn: &Connection, path: &Path) -> Result<()> {
    begin_read_until(conn, path, &|| false)
}

/// [`begin_read`], giving up with the cancelled error as soon as `cancelled`
/// says so while it waits for another connection's lock.
pub fn begin_read_until(
    conn: &Connection,
    path: &Path,
    cancelled: &dyn Fn() -> bool,
) -> Result<()> {
    conn.execute_batch("BEGIN DEFERRED")
        .map_err(|e| Error::sqlite(path, e))?;
    retry_busy(path, cancelled, || {
        conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
            r.get::<_, i64>(0)
        })
    })
    .map(|_| ())
    .inspect_err(|_| {
        let _ = conn.execute_batch("ROLLBACK");
    })
}

/// Ends the read transaction begun by [`begin_read`] (unless SQLite already
/// ended it).
pub fn end_read(conn: &Connection, path: &Path) -> Result<()> {
    if conn.is_autocommit() {
        return Ok(());
    }
    conn.execute_batch("COMMIT")
        .map_err(|e| Error::sqlite(path, e))
}

/// Runs `op` again while it fails with SQLITE_BUSY and the database's files keep
/// changing, up to [`BUSY_MAX`]; gives up after [`BUSY_IDLE`] without a change,
/// or (with the cancelled error) as soon as `cancelled` says so. Errors are
/// explained by [`source_error`].
fn retry_busy<T>(
    path: &Path,
    cancelled: &dyn Fn() -> bool,
    mut op: impl FnMut() -> rusqlite::Result<T>,
) -> Result<T> {
    let start = Instant::now();
    let mut seen = fingerprint(path);
    let mut changed = start;
    loop {
        match op() {
            Err(e)
                if matches!(
                    e.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
                ) =>
            {
                if cancelled() {
                    return Err(Repr::Cancelled.into());
                }
                let now = Instant::now();
                let fp = fingerprint(path);
                if fp != seen {
                    seen = fp;
                    changed = now;
                }
                if now - changed >= BUSY_IDLE || now - start >= BUSY_MAX {
                    return Err(source_error(path, e));
                }
            }
            other => return other.map_err(|e| source_error(path, e)),
        }
    }
}

/// Sizes and modification times of the database and its journal files (`stat`
/// only: opening the file would drop SQLite's POSIX locks on close).
fn fingerprint(path: &Path) -> Vec<Option<(u64, std::time::SystemTime)>> {
    ["", "-journal", "-wal"]
        .iter()
        .map(|suffix| {
            std::fs::metadata(format!("{}{suffix}", path.display()))
                .ok()
                .and_then(|m| Some((m.len(), m.modified().ok()?)))
        })
        .collect()
}

/// Maps an error opening or starting to read the source database to one that says
/// why it cannot be read and what to do, where SQLite's own words do not.
pub fn source_error(path: &Path, e: rusqlite::Error) -> Error {
    use rusqlite::ErrorCode;
    let unavailable = |why: String| {
        Repr::SourceUnavailable {
            path: path.into(),
            why,
        }
        .into()
    };
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => Repr::NotSqlite {
            path: path.into(),
            why: "SQLite cannot read it".into(),
        }
        .into(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => unavailable(format!(
            "another process keeps it locked (it did not change for {} s, or stayed \
             locked for {} s): a program holding it in exclusive locking mode, or a long \
             write; close that program or let it finish, then try again",
            BUSY_IDLE.as_secs(),
            BUSY_MAX.as_secs()
        )),
        Some(ErrorCode::ReadOnly | ErrorCode::CannotOpen) => {
            let side =
                |suffix: &str| std::path::PathBuf::from(format!("{}{suffix}", path.display()));
            let journal = side("-journal");
            let hot = std::fs::metadata(&journal)
                .map(|m| m.len() > 0)
                .unwrap_or(false);
            let folder = path.parent().unwrap_or(Path::new("."));
            if hot && !writable(path) {
                return unavailable(format!(
                    "it has a hot journal ({}, left by an interrupted write) that SQLite must \
                     roll back before the database can be read, and the database is read-only \
                     (a read-only mount or file); make it writable and open it once with the \
                     app or sqlite3, or copy the database together with its -journal to a \
                     writable folder and snapshot the copy",
                    journal.display()
                ));
            }
            if is_wal(path) && !side("-shm").exists() && !writable(folder) {
                return unavailable(format!(
                    "it is in WAL mode and has no {}, which SQLite must create to read it, \
                     but its folder is read-only; make the folder writable, or copy the \
                     database (with its -wal file) to a writable folder and snapshot the copy",
                    side("-shm").display()
                ));
            }
            Error::sqlite(path, e)
        }
        _ => Error::sqlite(path, e),
    }
}

/// Whether this process may write `path` (see [`crate::platform::writable`]).
fn writable(path: &Path) -> bool {
    crate::platform::writable(path)
}

/// Whether the database header says WAL mode (read and write versions 2).
fn is_wal(path: &Path) -> bool {
    let mut head = [0u8; 20];
    super::held::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
        .map(|()| head[18] == 2 && head[19] == 2)
        .unwrap_or(false)
}

/// The facts of the image, read inside the caller's read transaction (no route
/// yet).
pub(crate) fn image_info(conn: &Connection, path: &Path) -> Result<ImageInfo> {
    let sq = |e| Error::sqlite(path, e);
    let page_count: i64 = conn
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .map_err(sq)?;
    let page_size: i64 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .map_err(sq)?;
    let user_version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sq)?;
    let journal_mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .map_err(sq)?;
    let sqlite_version: String = conn
        .query_row("SELECT sqlite_version()", [], |r| r.get(0))
        .map_err(sq)?;
    Ok(ImageInfo {
        page_size: u32::try_from(page_size)
            .ok()
            .filter(|ps| (512..=65536).contains(ps) && ps.is_power_of_two())
            .ok_or_else(|| Error::corrupt("database", "bad page size"))?,
        page_count: u64::try_from(page_count)
            .map_err(|_| Error::corrupt("database", "bad page count"))?,
        user_version,
        journal_mode: journal_mode.to_lowercase(),
        sqlite_version,
        capture_route: None,
        staged_written: 0,
        staging_note: None,
    })
}

/// Captures the database: copies its page image inside the read transaction
/// the caller began on `conn` with [`begin_read`] (having read the database's
/// state in it) into a private file ([`super::staging`], the kept copy or a
/// temporary one per `staging`), ends the transaction, then sends the copy to
/// `sink` as file `image_name` and runs `body` on a read-only connection to the
/// copy, for whatever else must come from the same committed state (exports,
/// counts). `body` also gets the checks of the copy ([`BackgroundCheck`]),
/// running meanwhile on another thread (it takes their report, or drops them to
/// stop them), and the kept copy's previous content of the table leaves it
/// rewrote ([`PreviousPages`]). The source's lock is held only while the pages
/// are copied.
///
/// `conn` is closed once its transaction ended. `tick` is called between
/// pieces of the copy sent on; an error from it (the caller cancelled) stops
/// the capture. A temporary copy is removed on every path: after success on a
/// thread of its own (freeing a large file's blocks takes a while), joined
/// when the returned [`Removal`] is dropped.
#[allow(clippy::too_many_arguments)]
pub fn capture_begun<T>(
    conn: Connection,
    path: &Path,
    image_name: &str,
    staging: Staging,
    sink: &mut Sink<'_>,
    tick: &dyn Fn() -> Result<()>,
    body: impl FnOnce(&Connection, &mut Sink<'_>, BackgroundCheck, PreviousPages) -> Result<T>,
) -> Result<(ImageInfo, T, Removal)> {
    let (dir, private) = super::staging::staging_dir();
    // A kept copy has a name anyone can work out: only in the private folder.
    let staging = if private { staging } else { Staging::Temporary };
    capture_at(
        &dir, staging, conn, true, path, image_name, sink, tick, body,
    )
}

/// [`capture_begun`], beginning the transaction, with its temporary copy in `dir`.
#[cfg(test)]
pub(crate) fn capture_in<T>(
    dir: &Path,
    conn: Connection,
    path: &Path,
    image_name: &str,
    sink: &mut Sink<'_>,
    tick: &dyn Fn() -> Result<()>,
    body: impl FnOnce(&Connection, &mut Sink<'_>, BackgroundCheck, PreviousPages) -> Result<T>,
) -> Result<(ImageInfo, T)> {
    capture_at(
        dir,
        Staging::Temporary,
        conn,
        false,
        path,
        image_name,
        sink,
        tick,
        body,
    )
    .map(|(info, extra, _removed_now)| (info, extra))
}

/// Where the capture stages its copy of the pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Staging {
    /// The database's kept copy ([`super::kept`]), compared and brought up to
    /// date (only changed pages are written) and kept for the next capture;
    /// a temporary copy when another capture holds it.
    Kept,
    /// A temporary copy, written whole and removed afterwards.
    Temporary,
}

/// [`capture_in`]; `begun`: the caller began the read transaction.
///
/// The pages are copied on a thread of their own, which owns `conn` and ends
/// its read transaction the moment the copy is done; this thread reads the
/// copy right behind it ([`Watermark`]) and sends it to `sink` meanwhile, so
/// hashing and chunking use the other core while the kernel copies (issue #10).
/// How far the copy may be read is published only where the route cannot
/// start again (the `wal-file` route publishes the whole image at its end).
#[allow(clippy::too_many_arguments)]
pub(crate) fn capture_at<T>(
    dir: &Path,
    staging: Staging,
    conn: Connection,
    begun: bool,
    path: &Path,
    image_name: &str,
    sink: &mut Sink<'_>,
    tick: &dyn Fn() -> Result<()>,
    body: impl FnOnce(&Connection, &mut Sink<'_>, BackgroundCheck, PreviousPages) -> Result<T>,
) -> Result<(ImageInfo, T, Removal)> {
    let (mut staged, staging_note) = match staging {
        Staging::Kept => super::staging::StagedImage::kept(dir, path)?,
        Staging::Temporary => (super::staging::StagedImage::create(dir)?, None),
    };
    let staged_path = staged.path().to_path_buf();
    let reader = std::fs::File::open(&staged_path)
        .map_err(|e| Error::io("reading the temporary copy", &staged_path, e))?;
    let mark = Watermark::default();
    let stop = AtomicBool::new(false);
    let (copied, read) = std::thread::scope(|s| {
        let staged = &mut staged;
        let (mark, stop) = (&mark, &stop);
        let copier = std::thread::Builder::new()
            .name("capture-copy".into())
            .spawn_scoped(s, move || {
                copy_and_close(conn, begun, path, staged, mark, stop)
            })
            .map_err(|e| Error::internal(format!("cannot start the capture's copy: {e}")))?;
        // The copy stops if the reader fails, or unwinds.
        let stop_copy = StopOnDrop(stop);
        let read = read_behind(&reader, &staged_path, mark, image_name, sink, tick);
        if read.is_ok() {
            std::mem::forget(stop_copy);
        }
        let copied = copier
            .join()
            .map_err(|_| Error::internal("the capture's copy thread panicked"))?;
        Ok::<_, Error>((copied, read))
    })?;
    drop(reader);
    let (mut info, check, size) = match (copied, read) {
        (Ok((info, check)), Ok(size)) => (info, check, size),
        // The reader stopped the copy (its error explains it), or the copy
        // failed (its error explains the reader's stop).
        (Err(c), Err(r)) if matches!(c.repr(), Repr::Cancelled) => return Err(r),
        (Err(c), _) => {
            if c.kind() == crate::error::ErrorKind::NoSpace {
                staged.discard();
            }
            return Err(c);
        }
        (Ok(_), Err(r)) => return Err(r),
    };
    if size != info.page_count * u64::from(info.page_size) || staged.written() != size {
        return Err(Error::internal(format!(
            "the temporary copy holds {} bytes, {size} sent, {} pages of {} captured",
            staged.written(),
            info.page_count,
            info.page_size
        )));
    }
    sink(Piece::End)?;
    info.staged_written = staged.rewritten();
    info.staging_note = staging_note;
    let previous = staged.take_previous();
    let extra = {
        // Closed before `staged` removes its file (Windows cannot remove an open one).
        let image = staged.open()?;
        body(&image, sink, check, previous)?
    };
    Ok((info, extra, staged.remove_in_background()))
}

/// How far the staged copy may be read, published by the copy as it goes.
#[derive(Debug, Default)]
struct Watermark {
    mark: Mutex<Mark>,
    moved: Condvar,
}

/// See [`Watermark`].
#[derive(Debug, Default, Clone, Copy)]
struct Mark {
    /// Page size and image size, once final.
    layout: Option<(u32, u64)>,
    /// Bytes from the start of the copy that are final and in the file.
    ready: u64,
    /// The copy ended (with `ready` the whole image, or in failure).
    over: bool,
}

impl Watermark {
    fn update(&self, f: impl FnOnce(&mut Mark)) {
        f(&mut self.mark.lock().unwrap_or_else(PoisonError::into_inner));
        self.moved.notify_all();
    }

    /// The mark once `until` holds, or after `timeout`.
    fn wait(&self, until: &dyn Fn(&Mark) -> bool, timeout: Duration) -> Mark {
        let mark = self.mark.lock().unwrap_or_else(PoisonError::into_inner);
        *self
            .moved
            .wait_timeout_while(mark, timeout, |m| !until(m))
            .unwrap_or_else(PoisonError::into_inner)
            .0
    }
}

/// Sets [`Mark::over`] when dropped: the reader never waits for a copy that
/// ended, whichever way.
struct Over<'a>(&'a Watermark);

impl Drop for Over<'_> {
    fn drop(&mut self) {
        self.0.update(|m| m.over = true);
    }
}

/// Stops the copy when dropped (the reader failed or unwound).
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The reader's error when the copy ended before the image did: the copy's own
/// error explains it, or (the copy succeeded) a bug.
fn ended_short() -> Error {
    Error::internal("the staged copy ended before the image did")
}

/// How often the reader behind the copy calls its `tick` while it waits.
const WAIT_STEP: Duration = Duration::from_millis(50);

/// The copy's side of [`capture_at`]: copies the pages into `staged` inside
/// the read transaction on `conn` and ends it (the source is free from then
/// on), closes the copy and starts its checks; `stop` (the reader failed)
/// ends it early with the cancelled error.
fn copy_and_close(
    conn: Connection,
    begun: bool,
    path: &Path,
    staged: &mut super::staging::StagedImage,
    mark: &Watermark,
    stop: &AtomicBool,
) -> Result<(ImageInfo, BackgroundCheck)> {
    let _over = Over(mark);
    let stopped = || {
        if stop.load(Ordering::Relaxed) {
            Err(Repr::Cancelled.into())
        } else {
            Ok(())
        }
    };
    let info = copy_pages(&conn, begun, path, staged, &stopped, mark)?;
    drop(conn);
    // The source's lock is released: from here on the app commits freely.
    crate::testhook::point("capture-staged");
    staged.close()?;
    // Checked meanwhile on another thread; stopped and joined, if the body does
    // not wait for it, before `staged` removes the file.
    let check =
        super::check::BackgroundCheck::start(staged.path(), super::check::QUICK_CHECK_BUDGET);
    let size = info.page_count * u64::from(info.page_size);
    mark.update(|m| {
        m.layout = Some((info.page_size, size));
        m.ready = staged.written();
    });
    Ok((info, check))
}

/// The reader's side of [`capture_at`]: sends the staged copy to `sink` as file
/// `name`, whole pages about 1 MiB at a time, each once the copy has passed
/// it; returns the bytes sent once the copy is over. Fails with
/// [`ended_short`] when the copy ended before the image did.
fn read_behind(
    reader: &std::fs::File,
    staged_path: &Path,
    mark: &Watermark,
    name: &str,
    sink: &mut Sink<'_>,
    tick: &dyn Fn() -> Result<()>,
) -> Result<u64> {
    let wait = |until: &dyn Fn(&Mark) -> bool| -> Result<Mark> {
        loop {
            tick()?;
            let m = mark.wait(until, WAIT_STEP);
            if until(&m) {
                return Ok(m);
            }
        }
    };
    let m = wait(&|m| m.layout.is_some() || m.over)?;
    let Some((page_size, size)) = m.layout else {
        return Err(ended_short());
    };
    sink(Piece::Begin {
        name: name.to_string(),
        page_size: Some(page_size),
        size_hint: Some(size),
    })?;
    let ps = page_size as usize;
    let per_piece = (PIECE_BYTES / ps).max(1) * ps;
    let mut pos = 0u64;
    while pos < size {
        let end = pos + (size - pos).min(per_piece as u64);
        let m = wait(&|m| m.ready >= end || m.over)?;
        if m.ready < end {
            return Err(ended_short());
        }
        let mut buf = vec![0u8; (end - pos) as usize];
        crate::platform::read_exact_at(reader, &mut buf, pos)
            .map_err(|e| Error::io("reading the temporary copy", staged_path, e))?;
        sink(Piece::Data(buf))?;
        pos = end;
    }
    let m = wait(&|m| m.over)?;
    if m.ready < size {
        return Err(ended_short());
    }
    Ok(size)
}

/// Bytes per [`Piece::Data`] of the image.
const PIECE_BYTES: usize = 1 << 20;

/// Copies the page image into `staged` inside one read transaction on `conn`,
/// and ends the transaction; publishes to `mark` how far the copy is final.
fn copy_pages(
    conn: &Connection,
    begun: bool,
    path: &Path,
    staged: &mut super::staging::StagedImage,
    tick: &dyn Fn() -> Result<()>,
    mark: &Watermark,
) -> Result<ImageInfo> {
    use super::capture_routes::Route;
    let sq = |e| Error::sqlite(path, e);
    if !begun {
        begin_read(conn, path)?;
    }
    // The file route's second descriptor of the database: closed only after the
    // transaction ends (closing it drops this process's locks on the file).
    let mut keep_open = None;
    let result = (|| -> Result<ImageInfo> {
        // The read lock is held: everything below sees one state.
        let mut info = image_info(conn, path)?;
        let mut route = super::capture_routes::choose(conn, &info.journal_mode);
        if route == Route::WalFile {
            // In doubt (the `-wal` file restarted while read): again from the
            // start, then through SQLite's pager. Nothing is published before
            // the end: the copy may start again.
            let sqlite_pages = info.page_count;
            for _ in 0..WAL_FILE_TRIES {
                staged.reset()?;
                info.page_count = sqlite_pages;
                let mut to_file = to_staged(staged, tick, None);
                keep_open =
                    super::capture_routes::send_wal_file(conn, path, &mut info, "", &mut to_file)?;
                if keep_open.is_some() {
                    break;
                }
            }
            if keep_open.is_none() {
                staged.reset()?;
                info.page_count = sqlite_pages;
                route = Route::Serialize;
            }
        }
        info.capture_route = Some(route.as_str());
        if route != Route::WalFile {
            let size = info.page_count * u64::from(info.page_size);
            mark.update(|m| m.layout = Some((info.page_size, size)));
        }
        if route == Route::File {
            // Straight into the copy: the kernel copies the pages' ranges.
            staged.set_page_size(info.page_size as usize);
            let mut to_copy = |span: super::capture_routes::Span<'_>| {
                use super::capture_routes::Span;
                tick()?;
                match span {
                    Span::Bytes(b) => staged.write(b)?,
                    Span::Zeros(len) => staged.write(&vec![0u8; len as usize])?,
                    Span::File { file, offset, len } => {
                        staged.copy_from(file, path, offset, len)?
                    }
                }
                publish(staged, mark)
            };
            keep_open = Some(super::capture_routes::walk_file(
                conn,
                path,
                &info,
                &mut to_copy,
            )?);
        } else if route != Route::WalFile {
            let mut to_file = to_staged(staged, tick, Some(mark));
            keep_open =
                super::capture_routes::send_image(conn, path, &info, "", route, &mut to_file)?;
        }
        Ok(info)
    })();
    // A read transaction changes nothing; end it whatever happened (unless SQLite
    // already ended it, e.g. after an interrupted statement).
    let end = if conn.is_autocommit() {
        Ok(())
    } else {
        conn.execute_batch("COMMIT").map_err(sq)
    };
    drop(keep_open);
    let info = result?;
    end?;
    Ok(info)
}

/// Publishes what `staged` holds so far to `mark`.
fn publish(staged: &mut super::staging::StagedImage, mark: &Watermark) -> Result<()> {
    let ready = staged.flush()?;
    mark.update(|m| m.ready = ready);
    Ok(())
}

/// Attempts of the `wal-file` route before the `serialize` route.
const WAL_FILE_TRIES: usize = 3;

/// A sink writing the image's pages into `staged`, calling `tick` per piece
/// and publishing each to `mark` if given.
fn to_staged<'a>(
    staged: &'a mut super::staging::StagedImage,
    tick: &'a dyn Fn() -> Result<()>,
    mark: Option<&'a Watermark>,
) -> impl FnMut(Piece) -> Result<()> + 'a {
    move |piece: Piece| match piece {
        Piece::Data(data) => {
            tick()?;
            staged.write(&data)?;
            match mark {
                Some(mark) => publish(staged, mark),
                None => Ok(()),
            }
        }
        Piece::Begin { page_size, .. } => {
            staged.set_page_size(page_size.map_or(4096, |p| p as usize));
            Ok(())
        }
        Piece::Cut | Piece::End => Ok(()),
        Piece::Reuse(_) => Err(crate::error::Error::internal(
            "reused chunks in a page image",
        )),
    }
}

/// A `Write` that forwards bytes to a sink in pieces of about 1 MiB.
pub struct PieceWriter<'s, 'a> {
    sink: &'s mut Sink<'a>,
    buf: Vec<u8>,
    /// Bytes written.
    pub written: u64,
}

impl<'s, 'a> PieceWriter<'s, 'a> {
    /// A writer for one file; call [`PieceWriter::finish`] to flush and end it.
    pub fn begin(sink: &'s mut Sink<'a>, name: &str) -> Result<Self> {
        sink(Piece::Begin {
            name: name.to_string(),
            page_size: None,
            size_hint: None,
        })?;
        Ok(PieceWriter {
            sink,
            buf: Vec::with_capacity(1 << 20),
            written: 0,
        })
    }

    /// Flushes and sends [`Piece::End`].
    pub fn finish(mut self) -> Result<u64> {
        if !self.buf.is_empty() {
            (self.sink)(Piece::Data(std::mem::take(&mut self.buf)))?;
        }
        (self.sink)(Piece::End)?;
        Ok(self.written)
    }
}

impl PieceWriter<'_, '_> {
    fn flush_buf(&mut self) -> Result<()> {
        if !self.buf.is_empty() {
            (self.sink)(Piece::Data(std::mem::take(&mut self.buf)))?;
        }
        Ok(())
    }

    /// Ends the current chunk here ([`Piece::Cut`]).
    pub fn cut(&mut self) -> Result<()> {
        self.flush_buf()?;
        (self.sink)(Piece::Cut)
    }

    /// Appends stored chunks by reference ([`Piece::Reuse`]), after a cut.
    pub fn reuse(&mut self, entries: Vec<crate::format::TreeEntry>) -> Result<()> {
        self.flush_buf()?;
        self.written += entries.iter().map(|e| e.len).sum::<u64>();
        (self.sink)(Piece::Reuse(entries))
    }
}

impl Write for PieceWriter<'_, '_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        self.written += data.len() as u64;
        if self.buf.len() >= 1 << 20 {
            let full = std::mem::replace(&mut self.buf, Vec::with_capacity(1 << 20));
            (self.sink)(Piece::Data(full)).map_err(|e| std::io::Error::other(e.to_string()))?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
