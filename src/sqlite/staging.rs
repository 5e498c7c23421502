//! The captured page image, staged in a private temporary file so the source's
//! read transaction lasts only as long as copying the pages.
//!
//! [`capture_begun`](super::capture::capture_begun) copies the pages into a [`StagedImage`]
//! under the read lock, ends the transaction, and only then streams the copy to
//! the snapshot (hashing, chunking, compression) and opens it read-only
//! (`immutable=1`) for the exports, row counts and checks: the same committed
//! state, read while the app commits again. The copy is a temporary file
//! written whole and removed afterwards, or, when asked (`--kept-copy`), the
//! database's kept copy ([`super::kept`]: only the pages that differ are
//! written, and it stays for the next capture).
//!
//! The files live in the user's cache folder (`lumina-backup/` under
//! `$XDG_CACHE_HOME` or `~/.cache`, `~/Library/Caches` on macOS, `%LOCALAPPDATA%`
//! on Windows; the system temp folder if that cannot be made), not in `/tmp`,
//! which is often a RAM disk too small for a large database. They are created
//! 0600 in a 0700 folder. A temporary copy is removed when the [`StagedImage`]
//! is dropped, so on every return, error and cancellation path. A process
//! killed outright leaves it behind; the next capture removes the files of
//! processes that no longer exist (Unix; the file name holds the process id).

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::kept::{KeptCopy, PreviousPages};
use crate::error::{Error, Result};
use crate::platform::UnixMode;

/// Name prefix of temporary files in the staging folder (followed by the
/// process id and a dash; removed when that process no longer exists).
pub(crate) const TEMP_PREFIX: &str = "lumina-backup-capture-";

/// Bytes buffered when the staged image is written, or read to be compared
/// (the kept copy).
const BUFFER_BYTES: usize = 1 << 20;

/// The folder staged images go to (created 0700 if missing), and whether it
/// is the user's private cache folder: a real folder owned by this user that
/// no one else may enter (Unix). When it cannot be made, the system temp folder,
/// not private: only temporary copies (names no one can guess, created
/// exclusively) go there, never a kept copy.
pub fn staging_dir() -> (PathBuf, bool) {
    let wanted = cache_dir().map(|d| d.join("lumina-backup"));
    match wanted {
        Some(d)
            if DirBuilder::new()
                .recursive(true)
                .unix_mode(0o700)
                .create(&d)
                .is_ok() =>
        {
            let private = is_private_dir(&d);
            (d, private)
        }
        _ => (std::env::temp_dir(), false),
    }
}

/// Whether `dir` is a folder (not a symbolic link) owned by this process's
/// user that no one else may read or enter.
fn is_private_dir(dir: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::symlink_metadata(dir).is_ok_and(|m| {
            m.is_dir() && crate::platform::owned_by_this_user(&m) && m.mode() & 0o077 == 0
        })
    }
    #[cfg(not(unix))]
    {
        std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir())
    }
}

/// The user's cache folder, by the platform's convention.
fn cache_dir() -> Option<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    if cfg!(windows) {
        var("LOCALAPPDATA")
    } else if cfg!(target_os = "macos") {
        var("HOME").map(|h| h.join("Library").join("Caches"))
    } else {
        var("XDG_CACHE_HOME").or_else(|| var("HOME").map(|h| h.join(".cache")))
    }
}

/// A page image being written to, then read from, a private file: a temporary
/// one removed on drop, or the database's [`KeptCopy`] brought up to date.
#[derive(Debug)]
pub struct StagedImage {
    path: PathBuf,
    target: Target,
    written: u64,
}

/// Where a [`StagedImage`] writes.
#[derive(Debug)]
enum Target {
    /// A fresh temporary file (removed on drop).
    Temp(Option<BufWriter<File>>),
    /// The kept copy: only differing blocks are written; kept on drop.
    Kept(KeptCopy),
}

impl StagedImage {
    /// A new empty staged image in `dir`; removes the leftovers of dead processes
    /// first (best effort).
    pub fn create(dir: &Path) -> Result<StagedImage> {
        remove_stale(dir);
        let nonce: u64 = rand::random();
        let path = dir.join(format!(
            "{TEMP_PREFIX}{}-{nonce:016x}.db",
            std::process::id()
        ));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .unix_mode(0o600)
            .open(&path)
            .map_err(|e| Error::io("creating the temporary copy", &path, e))?;
        Ok(StagedImage {
            path,
            target: Target::Temp(Some(BufWriter::with_capacity(BUFFER_BYTES, file))),
            written: 0,
        })
    }

    /// The kept copy of `source` (a canonical path) in `dir`, or a temporary
    /// copy when another capture holds it or it cannot be used (the second
    /// value then says why).
    pub fn kept(dir: &Path, source: &Path) -> Result<(StagedImage, Option<String>)> {
        match KeptCopy::open(dir, source) {
            Ok(Some(kept)) => Ok((
                StagedImage {
                    path: kept.path().to_path_buf(),
                    target: Target::Kept(kept),
                    written: 0,
                },
                None,
            )),
            Ok(None) => Ok((StagedImage::create(dir)?, None)),
            Err(e) => Ok((
                StagedImage::create(dir)?,
                Some(format!(
                    "the kept copy of the database could not be used ({e}); the capture \
                     wrote a temporary copy instead (remove that file, or its folder's \
                     problem, to let the next snapshot make a new one)"
                )),
            )),
        }
    }

    /// Sets the unit in which a kept copy is compared and written (the page
    /// size); a temporary copy ignores it.
    pub fn set_page_size(&mut self, page_size: usize) {
        if let Target::Kept(k) = &mut self.target {
            k.set_block(page_size);
        }
    }

    /// Ends a capture that failed for want of space: a kept copy is removed
    /// (half brought up to date, it would only take room), a temporary one is
    /// removed as on every drop.
    pub fn discard(mut self) {
        if let Target::Kept(kept) = std::mem::replace(&mut self.target, Target::Temp(None)) {
            // Nothing left for this value's drop to remove.
            self.path = PathBuf::new();
            kept.discard();
        }
    }

    /// The previous content of the table leaves a kept copy rewrote (empty for
    /// a temporary copy).
    pub fn take_previous(&mut self) -> PreviousPages {
        match &mut self.target {
            Target::Temp(_) => PreviousPages::default(),
            Target::Kept(k) => k.take_previous(),
        }
    }

    /// Bytes written to the file: all of them for a temporary copy, those that
    /// differed for a kept copy.
    pub fn rewritten(&self) -> u64 {
        match &self.target {
            Target::Temp(_) => self.written,
            Target::Kept(k) => k.rewritten(),
        }
    }

    /// The temporary file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends bytes of the image.
    pub fn write(&mut self, data: &[u8]) -> Result<()> {
        match &mut self.target {
            Target::Temp(w) => w
                .as_mut()
                .ok_or_else(|| Error::internal("the staged image was already closed"))?
                .write_all(data)
                .map_err(|e| Error::io("writing the temporary copy", &self.path, e))?,
            Target::Kept(k) => k.write_at(self.written, data)?,
        }
        self.written += data.len() as u64;
        Ok(())
    }

    /// Appends `len` bytes of `src` from `offset` (a stretch of the source
    /// database's pages, read under its lock). A temporary copy has them copied
    /// by the kernel where it can ([`crate::platform::copy_range`]: the bytes
    /// never pass through this process), then zeros for any part past the end
    /// of `src` (SQLite reads zeros there too); a kept copy reads them and
    /// compares them as [`StagedImage::write`] does.
    pub fn copy_from(&mut self, src: &File, src_path: &Path, offset: u64, len: u64) -> Result<()> {
        let path = &self.path;
        let io = |e| Error::io("writing the temporary copy", path, e);
        let copying = |e| Error::io("copying pages into the temporary copy from", src_path, e);
        let zeros = |w: &mut dyn Write, mut left: u64| -> std::io::Result<()> {
            let z = [0u8; 4096];
            while left > 0 {
                let n = left.min(z.len() as u64) as usize;
                w.write_all(&z[..n])?;
                left -= n as u64;
            }
            Ok(())
        };
        match &mut self.target {
            Target::Temp(w) => {
                let w = w
                    .as_mut()
                    .ok_or_else(|| Error::internal("the staged image was already closed"))?;
                // What the buffer holds goes first: the copy lands at the cursor.
                w.flush().map_err(io)?;
                let got =
                    crate::platform::copy_range(src, offset, len, w.get_ref()).map_err(copying)?;
                zeros(w, len - got).map_err(io)?;
                self.written += len;
            }
            Target::Kept(_) => {
                let mut buf = vec![0u8; len.min(BUFFER_BYTES as u64) as usize];
                super::capture_routes::read_span(src, src_path, offset, len, &mut buf, &mut |b| {
                    self.write(b)
                })?;
            }
        }
        Ok(())
    }

    /// Bytes of the image written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Writes out what is buffered; returns the bytes of the image that are
    /// now in the file (readable through another descriptor).
    pub fn flush(&mut self) -> Result<u64> {
        if let Target::Temp(Some(w)) = &mut self.target {
            w.flush()
                .map_err(|e| Error::io("writing the temporary copy", &self.path, e))?;
        }
        Ok(self.written)
    }

    /// Drops the image: a temporary copy is removed on a thread of its own
    /// (freeing the blocks of a large file takes the file system a while),
    /// joined when the [`Removal`] is dropped; a kept copy is let go at once.
    pub fn remove_in_background(self) -> Removal {
        if matches!(self.target, Target::Kept(_)) {
            return Removal(None);
        }
        // If the thread cannot start, the closure is dropped here: the file
        // is removed on this thread.
        Removal(
            std::thread::Builder::new()
                .name("capture-removal".into())
                .spawn(move || drop(self))
                .ok(),
        )
    }

    /// Discards what was written (a capture route starting again).
    pub fn reset(&mut self) -> Result<()> {
        use std::io::{Seek, SeekFrom};
        if let Target::Temp(w) = &mut self.target {
            let io = |e| Error::io("writing the temporary copy", &self.path, e);
            let w = w
                .as_mut()
                .ok_or_else(|| Error::internal("the staged image was already closed"))?;
            w.seek(SeekFrom::Start(0)).map_err(io)?;
            w.get_ref().set_len(0).map_err(io)?;
        }
        // A kept copy is compared again from the start.
        self.written = 0;
        Ok(())
    }

    /// Ends writing (no fsync: the copy only has to outlive this process's use;
    /// a kept copy is compared in full by the next capture).
    pub fn close(&mut self) -> Result<()> {
        match &mut self.target {
            Target::Temp(w) => {
                if let Some(w) = w.take() {
                    w.into_inner().map_err(|e| {
                        Error::io("writing the temporary copy", &self.path, e.into_error())
                    })?;
                }
                Ok(())
            }
            Target::Kept(k) => k.finish(self.written),
        }
    }

    /// Opens the staged image read-only and immutable, after
    /// [`StagedImage::close`]. Drop the connection before the image.
    pub fn open(&self) -> Result<Connection> {
        open_staged(&self.path)
    }
}

/// Opens the staged image at `path` read-only and immutable. Not memory-mapped
/// (`mmap_size`): that would spare a copy per page read but count the whole
/// image in the process's resident memory (1.1 GiB on the 1 GB benchmark),
/// past the 100 MiB bound of issue #10.
pub fn open_staged(path: &Path) -> Result<Connection> {
    super::restore::open_immutable(path)
}

/// A temporary copy being removed ([`StagedImage::remove_in_background`]);
/// dropping it waits until it is.
#[derive(Debug, Default)]
pub struct Removal(Option<std::thread::JoinHandle<()>>);

impl Drop for Removal {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            let _ = t.join();
        }
    }
}

impl Drop for StagedImage {
    fn drop(&mut self) {
        if let Target::Temp(w) = &mut self.target {
            *w = None;
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Removes staged images left in `dir` by processes that no longer exist (killed
/// mid-capture). Unix only: elsewhere they stay until removed by hand.
fn remove_stale(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(TEMP_PREFIX))
            .and_then(|n| n.split_once('-'))
            .and_then(|(pid, rest)| rest.ends_with(".db").then_some(pid))
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !crate::platform::process_exists(pid) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::capture::Piece;

    #[test]
    fn staged_image_is_private_and_removed_on_drop() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = StagedImage::create(dir.path()).expect("create");
        s.write(&[7u8; 4096]).expect("write");
        s.close().expect("close");
        let path = s.path().to_path_buf();
        assert!(path.exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o077, 0, "only the user may read the copy");
        }
        drop(s);
        assert!(!path.exists());
    }

    /// A small rollback-journal database.
    fn source(dir: &Path) -> PathBuf {
        let db = dir.join("src.db");
        let c = Connection::open(&db).expect("open");
        c.execute_batch(
            "CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500)
             INSERT INTO t SELECT i, randomblob(200) FROM n;",
        )
        .expect("fill");
        db
    }

    fn empty(dir: &Path) -> bool {
        std::fs::read_dir(dir).expect("dir").next().is_none()
    }

    /// A capture of `db` whose `tick` cancels fails as cancelled, leaves no
    /// copy in `staging` and no lock on the source (a writer commits at once).
    fn cancelled_capture_leaves_nothing(staging: &Path, db: &Path, tick: &dyn Fn() -> Result<()>) {
        use crate::sqlite::capture::{capture_in, open_source};
        let mut sink = |_: Piece| Ok(());
        let conn = open_source(db).expect("open");
        let err = capture_in(
            staging,
            conn,
            db,
            "db",
            &mut sink,
            tick,
            |_, _, _, _| Ok(()),
        )
        .expect_err("cancelled");
        assert!(matches!(err.repr(), crate::error::Repr::Cancelled), "{err}");
        assert!(empty(staging));
        Connection::open(db)
            .and_then(|w| w.execute("DELETE FROM t WHERE id = 1", []))
            .expect("the source is not locked");
    }

    /// Issue #10 item 1: the body reads the captured copy after the source's
    /// read transaction ended (a writer commits meanwhile); the copy is removed
    /// after success, a failing body, and a cancel during the copy.
    #[test]
    fn capture_reads_the_copy_after_the_lock_and_removes_it_on_every_path() {
        use crate::sqlite::capture::{capture_in, open_source};
        let dir = tempfile::tempdir().expect("tempdir");
        let staging = dir.path().join("staging");
        std::fs::create_dir(&staging).expect("mkdir");
        let db = source(dir.path());
        let conn = open_source(&db).expect("open");
        let mut image = Vec::new();
        let mut sink = |p: Piece| {
            if let Piece::Data(d) = p {
                image.extend_from_slice(&d);
            }
            Ok(())
        };
        let ok = || Ok(());
        let (info, (rows, wrote)) =
            capture_in(&staging, conn, &db, "db", &mut sink, &ok, |c, _, _, _| {
                // The source is not locked by the capture any more: another
                // connection commits, and the copy still shows the captured rows.
                let w = Connection::open(&db).expect("writer");
                w.busy_timeout(std::time::Duration::from_millis(50))
                    .expect("timeout");
                let wrote = w.execute("DELETE FROM t WHERE id > 100", []).is_ok();
                let rows: i64 = c
                    .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
                    .expect("count");
                Ok((rows, wrote))
            })
            .expect("capture");
        assert!(wrote, "the source stayed locked during the body");
        assert_eq!(rows, 500);
        assert_eq!(
            image.len() as u64,
            info.page_count * u64::from(info.page_size)
        );
        assert!(empty(&staging));

        let mut sink = |_: Piece| Ok(());
        let conn = open_source(&db).expect("open");
        let err = capture_in(&staging, conn, &db, "db", &mut sink, &ok, |_, _, _, _| {
            Err::<(), _>(Error::internal("the exports failed"))
        })
        .expect_err("the body's error");
        assert!(err.to_string().contains("the exports failed"), "{err}");
        assert!(empty(&staging));

        cancelled_capture_leaves_nothing(&staging, &db, &|| {
            Err(Error::from(crate::error::Repr::Cancelled))
        });
    }

    /// A database of many copy spans (8 MiB each) is sent whole and in order
    /// while the copy runs on its own thread: the pieces equal the file. A
    /// reader that stops midway (the caller cancels after two pieces) stops
    /// the copy, the source is unlocked and the copy removed; a copy that
    /// fails (a file SQLite refuses) reports its own error, not the stop.
    #[test]
    fn the_copy_is_read_behind_as_it_is_written() {
        use crate::sqlite::capture::{capture_in, open_source, open_source_unlocked};
        let dir = tempfile::tempdir().expect("tempdir");
        let staging = dir.path().join("staging");
        std::fs::create_dir(&staging).expect("mkdir");
        let db = dir.path().join("big.db");
        Connection::open(&db)
            .and_then(|c| {
                c.execute_batch(
                    "PRAGMA page_size = 1024;
                     CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB);
                     WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 6000)
                     INSERT INTO t SELECT i, randomblob(3000) FROM n;",
                )
            })
            .expect("fill");
        let file = std::fs::read(&db).expect("db");
        assert!(file.len() > 2 * (8 << 20), "{} bytes", file.len());
        let mut image = Vec::new();
        let mut pieces = 0;
        let mut sink = |p: Piece| {
            match p {
                Piece::Data(d) => {
                    pieces += 1;
                    image.extend_from_slice(&d)
                }
                Piece::Begin { page_size, .. } => assert_eq!(page_size, Some(1024)),
                _ => {}
            }
            Ok(())
        };
        let ok = || Ok(());
        let conn = open_source(&db).expect("open");
        capture_in(&staging, conn, &db, "db", &mut sink, &ok, |_, _, _, _| {
            Ok(())
        })
        .expect("capture");
        assert!(image == file, "the pieces differ from the file");
        assert!(pieces > 16, "{pieces} pieces");
        assert!(empty(&staging));

        let calls = std::cell::Cell::new(0);
        let cancel_later = || {
            calls.set(calls.get() + 1);
            if calls.get() > 2 {
                Err(Error::from(crate::error::Repr::Cancelled))
            } else {
                Ok(())
            }
        };
        cancelled_capture_leaves_nothing(&staging, &db, &cancel_later);
        let mut sink = |_: Piece| Ok(());

        // A SQLite header over garbage: the copy's own error.
        let bad = dir.path().join("bad.db");
        let mut bytes = b"SQLite format 3\0".to_vec();
        bytes.resize(8192, 0xA5);
        std::fs::write(&bad, bytes).expect("write");
        let conn = open_source_unlocked(&bad).expect("open");
        let err = capture_in(&staging, conn, &bad, "db", &mut sink, &ok, |_, _, _, _| {
            Ok(())
        })
        .expect_err("not a database");
        assert!(
            !matches!(err.repr(), crate::error::Repr::Cancelled),
            "the copy's error was lost: {err}"
        );
        assert!(empty(&staging));
    }

    /// Through the kept copy, a capture after a one-row change writes a few
    /// pages, not the image; the copy equals the file (rollback mode) and is
    /// kept after the capture.
    #[test]
    fn the_kept_copy_is_written_only_where_pages_changed() {
        use crate::sqlite::capture::{capture_at, open_source, Staging};
        let dir = tempfile::tempdir().expect("tempdir");
        let staging = dir.path().join("staging");
        std::fs::create_dir(&staging).expect("mkdir");
        let db = source(dir.path());
        let size = std::fs::metadata(&db).expect("db").len();
        let ok = || Ok(());
        let capture = || {
            let conn = open_source(&db).expect("open");
            let mut sink = |_: Piece| Ok(());
            let (info, (), _removed) = capture_at(
                &staging,
                Staging::Kept,
                conn,
                false,
                &db,
                "db",
                &mut sink,
                &ok,
                |_, _, _, _| Ok(()),
            )
            .expect("capture");
            info
        };
        assert_eq!(capture().staged_written, size);
        Connection::open(&db)
            .and_then(|c| c.execute("UPDATE t SET v = randomblob(200) WHERE id = 250", []))
            .expect("update");
        let info = capture();
        // The row's leaf and page 1 (the change counter).
        assert_eq!(info.staged_written, 2 * u64::from(info.page_size));
        let copies: Vec<_> = std::fs::read_dir(&staging)
            .expect("dir")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "db"))
            .collect();
        assert_eq!(copies.len(), 1);
        assert_eq!(
            std::fs::read(&copies[0]).expect("copy"),
            std::fs::read(&db).expect("db")
        );
    }

    #[cfg(unix)]
    #[test]
    fn leftovers_of_dead_processes_are_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A process id that is not running (beyond Linux's pid_max).
        let dead = dir
            .path()
            .join(format!("{TEMP_PREFIX}999999999-0000000000000000.db"));
        let mine = dir
            .path()
            .join(format!("{TEMP_PREFIX}{}-1.db", std::process::id()));
        let other = dir.path().join("unrelated.db");
        for p in [&dead, &mine, &other] {
            std::fs::write(p, b"x").expect("write");
        }
        drop(StagedImage::create(dir.path()).expect("create"));
        assert!(!dead.exists());
        assert!(mine.exists() && other.exists());
    }
}
