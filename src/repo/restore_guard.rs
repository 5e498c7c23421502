//! What a restore must check and save before it replaces anything: the target
//! is not inside a repository folder, no other process has it open, and its
//! current state is kept — a `pre-restore` snapshot for a database (its raw
//! bytes when SQLite cannot read it), the file renamed aside for anything else.

use std::path::Path;

use super::{Repository, SnapshotOptions};
use crate::error::{Error, Repr, Result};
use crate::progress::Progress;
use crate::snapshot::Snapshot;
use crate::sqlite;

/// Refuses a target inside a repository folder: writing there breaks it.
pub(super) fn refuse_inside_repository(target: &Path) -> Result<()> {
    super::inside::refuse_inside_repository(target, "restore to a path outside it")
}

/// Refuses to replace `real` (an existing database) while another process has
/// it open: the application would go on writing to the replaced file.
/// This process itself counts (an app that links the library and keeps its own
/// connection open): its connection would go on writing to the replaced file.
/// The remedy is `live`, which restores through SQLite into the open database.
pub(super) fn refuse_in_use(shown: &Path, real: &Path) -> Result<()> {
    let mut holders = sqlite::inuse::describe(&sqlite::inuse::holders(real));
    let here = sqlite::inuse::open_here(real);
    if here {
        let me = format!(
            "this process (pid {}, a connection it keeps open)",
            std::process::id()
        );
        holders = if holders.is_empty() {
            me
        } else {
            format!("{me}, {holders}")
        };
    }
    if holders.is_empty() {
        return Ok(());
    }
    let e = Error::from(Repr::InUse {
        path: shown.to_path_buf(),
        holders,
    });
    // Only this process's case names the remedy (the CLI's advice for another
    // process's connection is its kind's, unchanged).
    Err(if here {
        e.with_remedy(crate::error::Remedy::Live)
    } else {
        e
    })
}

/// Refuses to replace `real` when it has other hard links: the rename would
/// give only this name the restored content, the other names would keep the
/// old one. `--live` writes through SQLite into the same inode instead.
pub(super) fn refuse_hard_links(shown: &Path, real: &Path) -> Result<()> {
    let links = match std::fs::metadata(real) {
        Ok(m) => crate::platform::hard_links(&m),
        Err(_) => return Ok(()),
    };
    if links <= 1 {
        return Ok(());
    }
    Err(Error::refused(format!(
        "{} has {links} hard links (other names for the same file); replacing it would give only this name the restored content; nothing was changed",
        shown.display()
    ))
    .with_remedy(crate::error::Remedy::Live))
}

/// Whether a snapshot failure means SQLite could not read the database (damage),
/// as opposed to a busy database or a repository problem.
fn unreadable(e: &Error) -> bool {
    let damaged = |source: &rusqlite::Error| {
        matches!(
            source.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
        )
    };
    match e.repr() {
        Repr::Sqlite { source, .. } => damaged(source),
        Repr::Export(crate::export::Error::Sqlite(source)) => damaged(source),
        Repr::Corrupt { object, .. } => object == "database" || object.starts_with("page "),
        _ => false,
    }
}

impl Repository {
    /// Saves the bytes of `real` as they are, before SQLite rolls back the hot
    /// journal beside it (which may not be its own), as a `pre-restore` snapshot.
    pub(super) fn save_before_rollback(
        &mut self,
        shown: &Path,
        real: &Path,
        snap: &Snapshot,
        progress: &dyn Progress,
    ) -> Result<Snapshot> {
        let opts = SnapshotOptions {
            tags: vec!["pre-restore".into()],
            note: format!(
                "raw bytes of {} before restoring {}, as found with a hot journal beside it (before SQLite rolled the journal back)",
                shown.display(),
                snap.id.short()
            ),
            no_exports: true,
            ..Default::default()
        };
        let warning = "raw copy of the file's bytes before SQLite rolled back the journal beside it; not a consistent capture; it restores only without the check".to_string();
        self.snapshot_raw(real, &opts, warning, progress)
            .map(|s| s.snapshot)
    }

    /// Saves the current state of the database at `real` (shown to the user as
    /// `shown`) as a `pre-restore` snapshot before `snap` replaces it. A database
    /// SQLite cannot read is saved as its raw bytes (the second value is then
    /// true); a file that is not a SQLite database at all is refused.
    pub(super) fn save_pre_restore(
        &mut self,
        shown: &Path,
        real: &Path,
        snap: &Snapshot,
        progress: &dyn Progress,
    ) -> Result<(Snapshot, bool)> {
        let opts = SnapshotOptions {
            tags: vec!["pre-restore".into()],
            note: format!(
                "state of {} before restoring {}",
                shown.display(),
                snap.id.short()
            ),
            no_exports: false,
            ..Default::default()
        };
        let e = match self.snapshot(real, &opts, progress) {
            Ok(s) => return Ok((s.snapshot, false)),
            Err(e) => e,
        };
        if let Repr::NotSqlite { path, why } = e.repr() {
            return Err(Error::refused(format!(
                "{} exists but is not a SQLite database ({why}); move it away first",
                path.display()
            )));
        }
        if !unreadable(&e) {
            return Err(e);
        }
        let why = match e.repr() {
            Repr::Sqlite { source, .. } | Repr::Export(crate::export::Error::Sqlite(source)) => {
                source.to_string()
            }
            _ => e.to_string(),
        };
        let warning = format!(
            "raw copy of the file's bytes: SQLite could not read it ({why}); not a consistent capture; it restores only without the check"
        );
        let opts = SnapshotOptions {
            note: format!(
                "raw copy of damaged {} before restoring {} (SQLite: {why})",
                shown.display(),
                snap.id.short()
            ),
            ..opts
        };
        match self.snapshot_raw(real, &opts, warning, progress) {
            Ok(s) => Ok((s.snapshot, true)),
            Err(raw_err) => Err(Error::refused(format!(
                "{} is damaged ({why}) and its bytes could not be saved ({raw_err}); nothing was replaced: move it away (or copy it) and restore again",
                shown.display()
            ))),
        }
    }
}
