//! Checked installation of a restored database image.
//!
//! Order: the caller writes the image to a temp file beside the target and
//! verifies its checksums; [`integrity_check`] runs SQLite's own check on it
//! (opened immutable, so no `-wal`/`-shm` is read or created); [`install`] folds
//! the old target's WAL into it (so nothing of the old state is lost if we stop
//! here), moves stale `-wal`/`-shm` files out of the way so they can never be
//! replayed over the new image, then renames the temp file over the target and
//! fsyncs the folder.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

use crate::backend::local::{parent_dir, sync_dir};
use crate::error::{Error, Result};

/// Runs `PRAGMA integrity_check` on a closed database file without touching it.
pub fn integrity_check(path: &Path) -> Result<()> {
    let conn = open_immutable(path)?;
    let mut stmt = conn
        .prepare("PRAGMA integrity_check(20)")
        .map_err(|e| Error::sqlite(path, e))?;
    let lines: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect())
        .map_err(|e| Error::RestoreCheck(format!("SQLite cannot check the restored image: {e}")))?;
    if lines.len() == 1 && lines[0] == "ok" {
        Ok(())
    } else {
        Err(Error::RestoreCheck(format!(
            "integrity_check failed: {}",
            lines.join("; ")
        )))
    }
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

fn uri_escape(path: &Path) -> String {
    let mut out = String::new();
    for b in path.to_string_lossy().bytes() {
        match b {
            b'?' | b'#' | b'%' => out.push_str(&format!("%{b:02X}")),
            _ => out.push(b as char),
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
/// deleted. Fails with "in use" if another connection blocks the checkpoint.
pub fn install(temp: &Path, target: &Path) -> Result<()> {
    let [wal, shm] = sidecars(target);
    if target.exists() {
        if wal.exists() {
            checkpoint(target)?;
        }
    } else if wal.exists() {
        let aside = PathBuf::from(format!("{}.stale-{}", wal.display(), std::process::id()));
        std::fs::rename(&wal, &aside).map_err(|e| Error::io("moving aside stale", &wal, e))?;
    }
    for f in [&wal, &shm] {
        match std::fs::remove_file(f) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("removing", f, e)),
        }
    }
    crate::testhook::point("restore-before-rename");
    std::fs::rename(temp, target)
        .map_err(|e| Error::io("renaming restored image onto", target, e))?;
    sync_dir(parent_dir(target))
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
        return Err(Error::BadInput(format!(
            "{} is in use by another program (its WAL cannot be checkpointed); close it and retry",
            target.display()
        )));
    }
    Ok(())
}
