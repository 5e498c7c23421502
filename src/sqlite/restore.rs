//! Checked installation of a restored database image.
//!
//! Order: the caller writes the image to a temp file beside the target and
//! verifies its checksums; [`check_image`] runs SQLite's own check on it
//! (opened immutable, so no `-wal`/`-shm` is read or created; `quick_check` by
//! default, `integrity_check` and `foreign_key_check` when asked); [`install`] folds
//! the old target's WAL into it (so nothing of the old state is lost if we stop
//! here), moves stale `-wal`/`-shm` files out of the way so they can never be
//! replayed over the new image, and likewise a `-journal` (see [`super::target`]),
//! then renames the temp file over the target and fsyncs the folder.
//! [`install_live`] instead copies the image into the open database through
//! SQLite's backup API, for a database an application keeps open.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::error::{Error, Repr, Result};
use crate::fsutil::{parent_dir, sync_dir};

/// Which of SQLite's checks a restored image must pass before it is installed
/// (the checksums of every chunk and of the whole file are verified regardless).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Check {
    /// `PRAGMA integrity_check`, then `PRAGMA foreign_key_check`.
    Full,
    /// `PRAGMA quick_check` (the default): every page and record checked, but
    /// index contents not compared with their tables.
    #[default]
    Quick,
    /// No SQLite check.
    None,
}

/// How long each of SQLite's checks of a restored image took.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CheckTimes {
    /// Seconds in `quick_check` or `integrity_check`.
    pub check_secs: f64,
    /// Seconds in `foreign_key_check` (only with [`Check::Full`]).
    pub foreign_key_secs: Option<f64>,
}

/// Runs the chosen SQLite check on the image at `image` (a temp file, opened
/// immutable), which is to become `target`: errors name `target` and say whether
/// the check could not run or failed, and what the user can do.
pub fn check_image(image: &Path, target: &Path, level: Check) -> Result<CheckTimes> {
    let pragma = match level {
        Check::Full => "integrity_check",
        Check::Quick => "quick_check",
        Check::None => return Ok(CheckTimes::default()),
    };
    let cannot = |pragma: &str, e: &dyn std::fmt::Display| {
        let msg = e.to_string();
        let why = if msg.contains("no such collation") || msg.contains("no such function") {
            " (the database uses a collation or function that its application defines and this tool's SQLite lacks)"
        } else {
            ""
        };
        Error::from(Repr::RestoreCheck(format!(
            "SQLite cannot run {pragma} on the image for {}: {msg}{why}; its checksums were verified",
            target.display()
        )))
        .with_remedy(match level {
            Check::Full => crate::error::Remedy::WeakerCheck,
            _ => crate::error::Remedy::NoCheck,
        })
    };
    let conn = open_immutable(image).map_err(|e| match e.repr() {
        Repr::Sqlite { source, .. } => cannot(pragma, source),
        _ => e,
    })?;
    // No memory map (`mmap_size`): it would halve quick_check's time (one
    // read per page otherwise) but count the whole image in the process's
    // resident memory, past the 100 MiB bound of issue #10.
    let started = std::time::Instant::now();
    let lines: Vec<String> = conn
        .prepare(&format!("PRAGMA {pragma}(20)"))
        .and_then(|mut stmt| {
            stmt.query_map([], |r| r.get::<_, String>(0))
                .and_then(|rows| rows.collect())
        })
        .map_err(|e| cannot(pragma, &e))?;
    let mut times = CheckTimes {
        check_secs: started.elapsed().as_secs_f64(),
        foreign_key_secs: None,
    };
    let way_out = match level {
        Check::Full => crate::error::Remedy::WeakerCheck,
        _ => crate::error::Remedy::NoCheck,
    };
    if !(lines.len() == 1 && lines[0] == "ok") {
        return Err(Error::from(Repr::RestoreCheck(format!(
            "{pragma} of the image for {} failed: {}; its checksums match the snapshot, so this is the state that was captured",
            target.display(),
            one_line(&lines)
        )))
        .with_remedy(way_out));
    }
    if level == Check::Full {
        let started = std::time::Instant::now();
        let found = foreign_key_problems(&conn).map_err(|e| cannot("foreign_key_check", &e))?;
        times.foreign_key_secs = Some(started.elapsed().as_secs_f64());
        if !found.is_empty() {
            return Err(Error::from(Repr::RestoreCheck(format!(
                "foreign_key_check of the image for {} failed: {}; its checksums match the snapshot, so this is the state that was captured",
                target.display(),
                found.join("; ")
            )))
            .with_remedy(way_out));
        }
    }
    Ok(times)
}

/// SQLite's check lines as one line (a line may hold several, such as
/// `*** in database main ***` and the finding after it).
fn one_line(lines: &[String]) -> String {
    lines
        .iter()
        .flat_map(|l| l.lines())
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Rows shown at most per failed `foreign_key_check`.
const FOREIGN_KEY_LINES: usize = 20;

/// `PRAGMA foreign_key_check`: one line per violating row (at most
/// [`FOREIGN_KEY_LINES`], then how many more).
fn foreign_key_problems(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare("PRAGMA foreign_key_check")?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    let mut more = 0u64;
    while let Some(r) = rows.next()? {
        if out.len() >= FOREIGN_KEY_LINES {
            more += 1;
            continue;
        }
        let table: String = r.get(0)?;
        let rowid: Option<i64> = r.get(1)?;
        let parent: String = r.get(2)?;
        let row = rowid.map_or_else(|| "a row".to_string(), |id| format!("row {id}"));
        out.push(format!(
            "{row} of {table} refers to a missing row of {parent}"
        ));
    }
    if more > 0 {
        out.push(format!("and {more} more"));
    }
    Ok(out)
}

/// Opens a database file read-only and immutable (no locks, no WAL, no `-shm`).
pub fn open_immutable(path: &Path) -> Result<Connection> {
    let uri = format!("file:{}?immutable=1", uri_escape(path));
    Connection::open_with_flags(
        uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
    )
    .map_err(|e| Error::sqlite(path, e))
}

/// The path part of a `file:` URI: SQLite decodes `%XX` escapes back into
/// bytes, so `?`, `#`, `%`, control characters and every byte of a non-ASCII
/// character are escaped (a byte pushed as a `char` would be re-encoded as
/// UTF-8 and name another file), and the path's own bytes are used on Unix
/// (file names need not be UTF-8).
fn uri_escape(path: &Path) -> String {
    #[cfg(unix)]
    let bytes = {
        use std::os::unix::ffi::OsStrExt;
        path.as_os_str().as_bytes().to_vec()
    };
    #[cfg(not(unix))]
    let bytes = path.to_string_lossy().into_owned().into_bytes();
    let mut out = String::with_capacity(bytes.len());
    for b in bytes {
        match b {
            b'?' | b'#' | b'%' => out.push_str(&format!("%{b:02X}")),
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `<path>-wal` and `<path>-shm`.
pub fn sidecars(path: &Path) -> [PathBuf; 2] {
    let s = path.as_os_str().to_string_lossy();
    [
        PathBuf::from(format!("{s}-wal")),
        PathBuf::from(format!("{s}-shm")),
    ]
}

/// Replaces `target` by the verified image at `temp` (same folder).
///
/// If `target` exists its WAL is checkpointed into it first (a normal SQLite
/// operation that loses nothing), so removing `-wal`/`-shm` afterwards drops no
/// committed data. A `-wal` with no database beside it is renamed aside, not
/// deleted; so is a `-journal` that holds data. Fails with "in use" if another
/// connection blocks the checkpoint. Returns the files set aside.
pub fn install(temp: &Path, target: &Path) -> Result<Vec<PathBuf>> {
    let [wal, shm] = sidecars(target);
    let mut aside = Vec::new();
    if target.exists() {
        if wal.exists() {
            checkpoint(target)?;
        }
    } else if wal.exists() {
        aside.push(super::target::move_aside(&wal)?);
    }
    for f in [&wal, &shm] {
        match std::fs::remove_file(f) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("removing", f, e)),
        }
    }
    aside.extend(super::target::clear_journal(target)?);
    crate::testhook::point("restore-before-rename");
    let replaced = super::held::identity(target);
    std::fs::rename(temp, target)
        .map_err(|e| Error::io("renaming restored image onto", target, e))?;
    // No other descriptor of this process had it open (checked before the
    // restore): the registry's may close, freeing the replaced file's space.
    super::held::release(replaced);
    sync_dir(parent_dir(target))?;
    Ok(aside)
}

fn checkpoint(target: &Path) -> Result<()> {
    let conn = Connection::open_with_flags(target, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .map_err(|e| Error::sqlite(target, e))?;
    let (busy, _, _): (i64, i64, i64) = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .map_err(|e| Error::sqlite(target, e))?;
    if busy != 0 {
        return Err(Error::refused(format!(
            "{} is in use by another program (its WAL cannot be checkpointed); close it and retry",
            target.display()
        )));
    }
    Ok(())
}

/// Page size and whether the database is in WAL mode, from the header of the
/// database file at `path` (None when it cannot be read or is not SQLite's).
fn header_facts(path: &Path, user_db: bool) -> Option<(u32, bool)> {
    use std::io::Read;
    let mut head = [0u8; 20];
    // A database file (the target) is read through the registry, whose
    // descriptors are never closed; a temp image of ours is opened and closed.
    if user_db {
        super::held::open(path).ok()?.read_exact(&mut head).ok()?;
    } else {
        std::fs::File::open(path).ok()?.read_exact(&mut head).ok()?;
    }
    if &head[..16] != b"SQLite format 3\0" {
        return None;
    }
    let raw = u16::from_be_bytes([head[16], head[17]]);
    let page_size = if raw == 1 { 65536 } else { u32::from(raw) };
    // File format write/read versions: 2 means WAL.
    Some((page_size, head[18] == 2 || head[19] == 2))
}

/// Refuses a live restore that SQLite's backup API cannot do: a WAL database
/// cannot change its page size while open, so an image of another page size
/// does not fit. Checked before anything is saved or changed.
pub fn check_live_fit(image: &Path, target: &Path) -> Result<()> {
    let (Some((theirs, wal)), Some((ours, _))) =
        (header_facts(target, true), header_facts(image, false))
    else {
        return Ok(());
    };
    if wal && theirs != ours {
        return Err(page_size_mismatch(target, theirs, ours));
    }
    Ok(())
}

fn page_size_mismatch(target: &Path, theirs: u32, ours: u32) -> Error {
    Error::refused(format!(
        "{}: the open database has page size {theirs}, the snapshot {ours}, and a WAL database cannot change its page size while open",
        target.display()
    ))
    .with_remedy(crate::error::Remedy::NotLive)
}

/// How long a live restore waits for the application's transactions.
const LIVE_WAIT: Duration = Duration::from_secs(10);

/// Copies the verified image at `temp` into the existing database `target`
/// through SQLite's backup API, in one write transaction of `target`: the
/// connections applications hold see the restored content at their next
/// transaction, and a crash leaves the old or the new state (SQLite's journal or
/// WAL). The file is not replaced: owner, mode and links stay as they are.
pub fn install_live(temp: &Path, target: &Path) -> Result<()> {
    use rusqlite::backup::{Backup, StepResult};
    let src = open_immutable(temp)?;
    let mut dst = Connection::open_with_flags(target, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .map_err(|e| Error::sqlite(target, e))?;
    dst.busy_timeout(LIVE_WAIT)
        .map_err(|e| Error::sqlite(target, e))?;
    let live_err = |e: rusqlite::Error| {
        if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ReadOnly) {
            // The backup API's only read-only case: a page size change of a
            // WAL database (normally refused earlier by `check_live_fit`).
            match (header_facts(target, true), header_facts(temp, false)) {
                (Some((theirs, _)), Some((ours, _))) if theirs != ours => {
                    page_size_mismatch(target, theirs, ours)
                }
                _ => Error::refused(format!(
                    "{} cannot take the image through SQLite (it is read-only to this process)",
                    target.display()
                ))
                .with_remedy(crate::error::Remedy::NotLive),
            }
        } else {
            Error::sqlite(target, e)
        }
    };
    let backup = Backup::new(&src, &mut dst).map_err(live_err)?;
    let started = std::time::Instant::now();
    loop {
        match backup.step(-1).map_err(live_err)? {
            StepResult::Done => break,
            StepResult::More => {}
            StepResult::Busy | StepResult::Locked => {
                if started.elapsed() > LIVE_WAIT {
                    return Err(Error::refused(format!(
                        "{} stayed busy for {} s (an application holds a transaction); retry when it is idle",
                        target.display(),
                        LIVE_WAIT.as_secs()
                    )));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Non-ASCII, non-UTF-8 and URI-special file names open as themselves.
    #[test]
    fn open_immutable_takes_any_file_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut names: Vec<std::ffi::OsString> = ["é.db", "日本 ü.db", "x#y%41.db", "plain.db"]
            .iter()
            .map(|n| (*n).into())
            .collect();
        // `?` cannot be in a Windows file name; a non-UTF-8 name only exists on Unix.
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStringExt;
            names.push("q?x.db".into());
            names.push(std::ffi::OsString::from_vec(b"latin1-\xe9.db".to_vec()));
        }
        for name in names {
            let path = dir.path().join(&name);
            let c = Connection::open(&path).expect("create");
            c.execute_batch("CREATE TABLE t(x); INSERT INTO t VALUES (7);")
                .expect("fill");
            drop(c);
            let c = open_immutable(&path).expect("open_immutable");
            let x: i64 = c
                .query_row("SELECT x FROM t", [], |r| r.get(0))
                .expect("read");
            assert_eq!(x, 7, "{name:?}");
        }
    }
}
