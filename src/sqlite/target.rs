//! The restore target as the user's file: symlinks followed, owner and mode
//! kept, and the rollback journal beside it settled before anything replaces it.
//!
//! Invariants: a file beside the target that could hold someone's data is
//! renamed aside (`NAME.stale-PID[-N]`), never deleted; a journal is never left
//! where SQLite could replay it over a restored image. Repository files are not
//! handled here (they stay 0600); these are the user's files.

#[cfg(unix)]
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::error::{Error, Result};
use crate::fsutil::parent_dir;

/// Magic of a rollback journal header (`pager.c`, `aJournalMagic`).
const JOURNAL_MAGIC: [u8; 8] = [0xd9, 0xd5, 0x05, 0xf9, 0x20, 0xa1, 0x63, 0xd7];
/// Bytes of the journal header that SQLite reads (magic .. page size).
const JOURNAL_HEADER: usize = 28;

/// Follows symbolic links from `path` to the file they name (which need not
/// exist). The links themselves are left as they are.
pub fn resolve_links(path: &Path) -> Result<PathBuf> {
    let mut p = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let dest = std::fs::read_link(&p).map_err(|e| Error::io("reading link", &p, e))?;
                p = if dest.is_absolute() {
                    dest
                } else {
                    parent_dir(&p).join(dest)
                };
            }
            _ => return Ok(p),
        }
    }
    Err(Error::invalid_input(format!(
        "{}: too many levels of symbolic links",
        path.display()
    )))
}

/// Owner, group and mode of a file being replaced (Unix). On Windows there is
/// nothing to keep: the restored file inherits the ACL of its folder.
#[derive(Debug, Clone, Copy)]
pub struct Ownership {
    #[cfg(unix)]
    uid: u32,
    #[cfg(unix)]
    gid: u32,
    #[cfg(unix)]
    mode: u32,
}

#[cfg(not(unix))]
impl Ownership {
    /// Nothing to keep on Windows (see the type); `Some` when `path` exists.
    pub fn of(path: &Path) -> Option<Ownership> {
        std::fs::metadata(path).ok().map(|_| Ownership {})
    }

    /// Nothing to apply on Windows: the file inherits its folder's ACL.
    pub fn apply(&self, file: &Path, target: &Path) -> Result<()> {
        let _ = (file, target);
        Ok(())
    }
}

#[cfg(unix)]
impl Ownership {
    /// Those of the existing file at `path`, if there is one.
    pub fn of(path: &Path) -> Option<Ownership> {
        std::fs::metadata(path).ok().map(|m| Ownership {
            uid: m.uid(),
            gid: m.gid(),
            mode: m.mode() & 0o7777,
        })
    }

    /// Gives `file` (the replacement, not yet renamed) this owner, group and mode;
    /// `target` names the file in the error.
    pub fn apply(&self, file: &Path, target: &Path) -> Result<()> {
        let m = std::fs::metadata(file).map_err(|e| Error::io("reading", file, e))?;
        if (m.uid(), m.gid()) != (self.uid, self.gid) {
            std::os::unix::fs::chown(file, Some(self.uid), Some(self.gid)).map_err(|e| {
                Error::refused(format!(
                    "cannot give the restored file the owner {}:{} of {} ({e}); run the restore as that user or as root",
                    self.uid,
                    self.gid,
                    target.display()
                ))
            })?;
        }
        // After chown, which may clear set-id bits.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(self.mode))
            .map_err(|e| Error::io("setting the mode of", file, e))
    }
}

/// `<db>-journal`.
pub fn journal_path(db: &Path) -> PathBuf {
    PathBuf::from(format!("{}-journal", db.as_os_str().to_string_lossy()))
}

/// Renames `path` to a fresh `PATH.stale-PID[-N]` beside it; returns the new name.
pub fn move_aside(path: &Path) -> Result<PathBuf> {
    move_aside_as(path, "stale")
}

/// A name `PATH.LABEL-PID[-N]` beside `path` that nothing uses yet.
fn fresh_name(path: &Path, label: &str) -> PathBuf {
    let base = format!("{}.{label}-{}", path.display(), std::process::id());
    let mut aside = PathBuf::from(&base);
    let mut n = 1;
    while std::fs::symlink_metadata(&aside).is_ok() {
        aside = PathBuf::from(format!("{base}-{n}"));
        n += 1;
    }
    aside
}

/// Renames `path` to a fresh `PATH.LABEL-PID[-N]` beside it; returns the new name.
pub fn move_aside_as(path: &Path, label: &str) -> Result<PathBuf> {
    let aside = fresh_name(path, label);
    std::fs::rename(path, &aside).map_err(|e| Error::io("moving aside", path, e))?;
    crate::fsutil::sync_dir(parent_dir(path))?;
    Ok(aside)
}

/// What a `-journal` beside the target is.
#[derive(Debug, PartialEq, Eq)]
enum Journal {
    Absent,
    /// Empty, or its header zeroed: SQLite replays nothing from it.
    Inert,
    /// A valid header with the target's page size: the target's own journal.
    Own,
    /// A journal that cannot be the target's (no target, another page size).
    Foreign,
}

/// The first `n` bytes of `path` (fewer if it is shorter). A database file is
/// read through [`super::held`] (a descriptor never closed, so no lock of this
/// process is dropped); a journal, which SQLite never locks, with `std`.
fn read_head(path: &Path, n: u64, user_db: bool) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut head = Vec::new();
    if user_db {
        super::held::open(path)?.take(n).read_to_end(&mut head)?;
    } else {
        std::fs::File::open(path)?.take(n).read_to_end(&mut head)?;
    }
    Ok(head)
}

fn classify(db: &Path) -> Result<Journal> {
    let j = journal_path(db);
    let bytes = match read_head(&j, JOURNAL_HEADER as u64, false) {
        Ok(head) => head,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Journal::Absent),
        Err(e) => return Err(Error::io("reading", &j, e)),
    };
    if bytes.iter().all(|&b| b == 0) {
        return Ok(Journal::Inert);
    }
    if bytes.len() < JOURNAL_HEADER || bytes[..8] != JOURNAL_MAGIC {
        return Ok(Journal::Foreign);
    }
    let journal_ps = u32::from_be_bytes([bytes[24], bytes[25], bytes[26], bytes[27]]);
    let db_ps = match read_head(db, 18, true) {
        Ok(d) if d.len() >= 18 => {
            let raw = u16::from_be_bytes([d[16], d[17]]);
            if raw == 1 {
                65536
            } else {
                u32::from(raw)
            }
        }
        _ => return Ok(Journal::Foreign),
    };
    Ok(if journal_ps == db_ps {
        Journal::Own
    } else {
        Journal::Foreign
    })
}

/// Before anything opens an existing `db` through SQLite: a journal that is not
/// its own is set aside (so SQLite cannot roll it into the database), and its own
/// hot journal is rolled back by SQLite (open and read), as the next open by the
/// application would do. Whether a journal with the right page size truly is the
/// database's cannot be known, so before the rollback `before_rollback` runs (the
/// caller saves the database's bytes as they are) and a copy of the journal is
/// kept beside it: nothing is lost whichever it was. Returns the files kept aside.
pub fn settle_journal(
    db: &Path,
    before_rollback: impl FnOnce() -> Result<()>,
) -> Result<Option<PathBuf>> {
    match classify(db)? {
        Journal::Absent | Journal::Inert => Ok(None),
        Journal::Foreign => move_aside(&journal_path(db)).map(Some),
        Journal::Own => {
            before_rollback()?;
            let j = journal_path(db);
            let copy = fresh_name(&j, "stale");
            std::fs::copy(&j, &copy)
                .and_then(|_| std::fs::File::open(&copy)?.sync_all())
                .map_err(|e| Error::io("copying aside", &j, e))?;
            let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_WRITE)
                .map_err(|e| Error::sqlite(db, e))?;
            conn.busy_timeout(Duration::from_secs(5))
                .map_err(|e| Error::sqlite(db, e))?;
            // The first read of a database with a hot journal rolls it back. A
            // damaged database may fail here; its bytes are still saved raw.
            let _ = conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
                r.get::<_, i64>(0)
            });
            Ok(Some(copy))
        }
    }
}

/// Just before the restored image is renamed onto `db`: no journal may remain
/// beside it. An inert one is removed; any other is set aside.
pub fn clear_journal(db: &Path) -> Result<Option<PathBuf>> {
    let j = journal_path(db);
    match classify(db)? {
        Journal::Absent => Ok(None),
        Journal::Inert => match std::fs::remove_file(&j) {
            Ok(()) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("removing", &j, e)),
        },
        Journal::Own | Journal::Foreign => move_aside(&j).map(Some),
    }
}
