//! Restore drills (`verify --restore-test`): a snapshot's image is restored to
//! a temporary file (every chunk and the file checksum verified on the way),
//! SQLite's `integrity_check` and `foreign_key_check` run on it, it is compared
//! with its record and its `manifest.json` (page size and count,
//! `user_version`, each table's row count), and the file is deleted.
//!
//! Writes nothing in the repository and nothing beside the user's database:
//! the temporary file is in the system's temp folder, created 0600.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::Repository;
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::snapshot::{self, Manifest, Snapshot};
use crate::sqlite::restore::{check_image, open_immutable, Check};

/// The outcome of one restore drill.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct DrillReport {
    /// The snapshot drilled (12 hex characters).
    pub snapshot: String,
    /// Its database.
    pub db: String,
    /// Bytes restored.
    pub bytes: u64,
    /// What was checked, one line each.
    pub checked: Vec<String>,
    /// What failed, one line each (empty: the drill passed).
    pub problems: Vec<String>,
}

/// A temporary file deleted on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn create() -> Result<(Self, std::fs::File)> {
        use rand::RngCore;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let name = format!(
            "lumina-backup-drill-{:016x}.db",
            rand::thread_rng().next_u64()
        );
        let path = std::env::temp_dir().join(name);
        let file = opts
            .open(&path)
            .map_err(|e| Error::io("creating", &path, e))?;
        Ok((TempFile(path), file))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Repository {
    /// Runs restore drills: of the snapshot `spec` names, or without it of the
    /// newest snapshot of each database.
    pub(crate) fn restore_drills(
        &self,
        spec: Option<&str>,
        progress: &dyn Progress,
    ) -> Result<Vec<DrillReport>> {
        let all = self.list()?;
        let chosen: Vec<&Snapshot> = match spec {
            Some(s) => vec![snapshot::resolve(s, &all, None)?],
            None => snapshot::databases(&all)
                .into_iter()
                .filter_map(|db| {
                    snapshot::choosable(snapshot::of_database(&all, Some(db)).ok()?)
                        .last()
                        .copied()
                })
                .collect(),
        };
        chosen
            .into_iter()
            .map(|s| self.restore_drill(s, progress))
            .collect()
    }

    /// One drill; failures of the snapshot are problems in the report, not
    /// errors (an error is a failure to run it: no temp space, I/O).
    fn restore_drill(&self, snap: &Snapshot, progress: &dyn Progress) -> Result<DrillReport> {
        let mut r = DrillReport {
            snapshot: snap.id.short(),
            db: snap.record.source.clone(),
            bytes: 0,
            checked: Vec::new(),
            problems: Vec::new(),
        };
        let Some(image) = snap.image() else {
            r.problems.push("the snapshot has no database image".into());
            return Ok(r);
        };
        let (temp, mut file) = TempFile::create()?;
        match self.read_file(image, &mut file, progress) {
            Ok(n) => {
                r.bytes = n;
                r.checked
                    .push("every chunk and the file checksum verified".into());
            }
            Err(e) if e.kind() == crate::ErrorKind::Io => return Err(e),
            Err(e) => {
                r.problems
                    .push(format!("the image cannot be restored: {e}"));
                return Ok(r);
            }
        }
        file.sync_all()
            .map_err(|e| Error::io("syncing", &temp.0, e))?;
        drop(file);
        if snap.record.sqlite.journal_mode == "unknown" {
            r.checked.push(
                "a raw copy of the file's bytes: SQLite's checks do not apply (restore needs --no-check)"
                    .into(),
            );
            return Ok(r);
        }
        match check_image(&temp.0, Path::new(&snap.record.source), Check::Full) {
            Ok(_) => r
                .checked
                .push("integrity_check and foreign_key_check passed".into()),
            Err(e) => r.problems.push(e.to_string()),
        }
        self.compare_with_manifest(snap, &temp.0, &mut r);
        Ok(r)
    }

    /// Compares the restored image with the record and the manifest.
    fn compare_with_manifest(&self, snap: &Snapshot, image: &Path, r: &mut DrillReport) {
        let rec = &snap.record.sqlite;
        let conn = match open_immutable(image) {
            Ok(c) => c,
            Err(e) => {
                r.problems.push(format!("the image cannot be opened: {e}"));
                return;
            }
        };
        let pragma = |name: &str| -> Option<i64> {
            conn.query_row(&format!("PRAGMA {name}"), [], |row| row.get(0))
                .ok()
        };
        let mut differs = |what: &str, found: Option<i64>, want: i64| {
            if found != Some(want) {
                r.problems.push(format!(
                    "the image's {what} is {}, its record says {want}",
                    found.map_or("unreadable".to_string(), |f| f.to_string())
                ));
            }
        };
        differs("page size", pragma("page_size"), i64::from(rec.page_size));
        differs(
            "page count",
            pragma("page_count"),
            i64::try_from(rec.page_count).unwrap_or(i64::MAX),
        );
        differs("user_version", pragma("user_version"), rec.user_version);
        let manifest: Option<Manifest> = snap.file("manifest.json").ok().and_then(|entry| {
            let mut bytes = Vec::new();
            self.read_file(entry, &mut bytes, &crate::progress::NoProgress)
                .ok()?;
            serde_json::from_slice(&bytes).ok()
        });
        let Some(m) = manifest else {
            r.problems
                .push("its manifest.json cannot be read or parsed".into());
            return;
        };
        if m.sqlite.page_size != rec.page_size || m.sqlite.page_count != rec.page_count {
            r.problems.push(format!(
                "its manifest says {} pages of {} bytes, its record {} of {}",
                m.sqlite.page_count, m.sqlite.page_size, rec.page_count, rec.page_size
            ));
        }
        for (table, want) in &m.tables {
            let sql = format!("SELECT count(*) FROM \"{}\"", table.replace('"', "\"\""));
            let found: Option<i64> = conn.query_row(&sql, [], |row| row.get(0)).ok();
            if found.and_then(|f| u64::try_from(f).ok()) != Some(*want) {
                r.problems.push(format!(
                    "table {table} has {} rows, its manifest says {want}",
                    found.map_or("unreadable".to_string(), |f| f.to_string())
                ));
            }
        }
        r.checked.push(format!(
            "page size, page count, user_version and the row counts of {} tables match the manifest",
            m.tables.len()
        ));
    }
}
