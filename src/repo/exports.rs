//! Exports to files (from a live database or from a snapshot) and imports.
//!
//! Every output file is written atomically ([`AtomicFile`]); a failed export
//! leaves no partial file. Imports run in one transaction (see `export::import`).

use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use serde::Serialize;

use super::Repository;
use crate::error::{Error, Result};
use crate::export::{self, ImportReport, Table};
use crate::fsutil::AtomicFile;
use crate::progress::{operation, Progress};
use crate::snapshot::Snapshot;
use crate::sqlite;

/// Output format of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// The app's JSON export format.
    Json,
    /// RFC 4180 CSV with a header row.
    Csv,
}

/// What to export where.
#[derive(Debug, Clone)]
pub struct ExportRequest {
    /// Tables to export.
    pub tables: Vec<Table>,
    /// Format.
    pub format: ExportFormat,
    /// With one table: the output file; with several: the output folder.
    pub out: PathBuf,
    /// gzip the output (`.json.gz`, the app's old format).
    pub gzip: bool,
}

/// One file written.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct ExportedFile {
    /// Table.
    pub table: String,
    /// Path written.
    pub path: PathBuf,
    /// Rows (when known).
    pub rows: Option<u64>,
}

impl ExportRequest {
    /// Refuses an output inside a repository folder (exit 2), before anything
    /// is read or written.
    fn check_out(&self) -> Result<()> {
        super::refuse_inside_repository(&self.out, "write the export outside it")
    }

    fn path_for(&self, table: Table) -> Result<PathBuf> {
        if self.tables.len() == 1 {
            return Ok(self.out.clone());
        }
        std::fs::create_dir_all(&self.out)
            .map_err(|e| Error::io("creating folder", &self.out, e))?;
        let name = match self.format {
            ExportFormat::Json => table.file_name(),
            ExportFormat::Csv => table.csv_file_name(),
        };
        Ok(self.out.join(if self.gzip {
            format!("{name}.gz")
        } else {
            name.to_string()
        }))
    }
}

/// Writes `body` to `path` atomically, gzipped if asked.
fn write_out(
    path: &Path,
    gzip: bool,
    body: &mut dyn FnMut(&mut dyn Write) -> Result<u64>,
) -> Result<u64> {
    let mut file = AtomicFile::create(path)?;
    let rows = if gzip {
        let mut gz = GzEncoder::new(&mut file, flate2::Compression::default());
        let rows = body(&mut gz)?;
        gz.finish().map_err(|e| Error::io("writing", path, e))?;
        rows
    } else {
        body(&mut file)?
    };
    file.commit()?;
    Ok(rows)
}

fn export_from_connection(
    conn: &rusqlite::Connection,
    req: &ExportRequest,
    timestamp: &str,
) -> Result<Vec<ExportedFile>> {
    let mut out = Vec::new();
    for &table in &req.tables {
        let path = req.path_for(table)?;
        let rows = write_out(&path, req.gzip, &mut |w| {
            Ok(match req.format {
                ExportFormat::Json => export::write_json(conn, table, timestamp, w)?,
                ExportFormat::Csv => export::write_csv(conn, table, w)?,
            })
        })?;
        out.push(ExportedFile {
            table: table.name().to_string(),
            path,
            rows: Some(rows),
        });
    }
    Ok(out)
}

/// Exports tables of the live database `db` (one read transaction for all).
pub fn export_database(db: &Path, req: &ExportRequest) -> Result<Vec<ExportedFile>> {
    req.check_out()?;
    let conn = sqlite::capture::open_source(db)?;
    let missing = export::missing_tables(&conn)?;
    if let Some(t) = req.tables.iter().find(|t| missing.contains(t)) {
        return Err(Error::invalid_input(format!(
            "{} has no table `{}`",
            db.display(),
            t.name()
        )));
    }
    let timestamp = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| Error::internal(e.to_string()))?;
    sqlite::capture::begin_read(&conn, db)?;
    let result = export_from_connection(&conn, req, &timestamp);
    let _ = conn.execute_batch("COMMIT");
    result
}

/// Imports an export file into `db` (created if missing): one transaction, all
/// or nothing. `strict` refuses dangling references instead of warning.
pub fn import_file(db: &Path, file: &Path, strict: bool) -> Result<ImportReport> {
    let reader = std::fs::File::open(file).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            Error::invalid_input(format!("export file {} does not exist", file.display()))
        }
        _ => Error::io("opening", file, e),
    })?;
    let mut reader = std::io::BufReader::new(reader);
    refuse_csv(file, &mut reader)?;
    if db.exists() {
        sqlite::check_database_file(db)?;
    }
    let mut conn = rusqlite::Connection::open(db).map_err(|e| Error::sqlite(db, e))?;
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .map_err(|e| Error::sqlite(db, e))?;
    Ok(export::import(&mut conn, reader, strict)?)
}

/// Refuses a CSV export by name and content with a message that says so
/// (import reads the JSON exports, plain or gzipped, only).
fn refuse_csv(file: &Path, reader: &mut std::io::BufReader<std::fs::File>) -> Result<()> {
    use std::io::BufRead;
    let head = reader
        .fill_buf()
        .map_err(|e| Error::io("reading", file, e))?;
    let first = head.iter().find(|b| !b.is_ascii_whitespace()).copied();
    let gzip = head.starts_with(&[0x1f, 0x8b]);
    let named_csv = file
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if !gzip && (named_csv || first.is_some_and(|b| b != b'{')) && first != Some(b'{') {
        return Err(Error::invalid_input(format!(
            "{} is not a JSON export{}: import reads the JSON exports (.json or .json.gz)",
            file.display(),
            if named_csv { " (it is a CSV file)" } else { "" }
        ))
        .with_remedy(crate::error::Remedy::ExportJson));
    }
    Ok(())
}

impl Repository {
    /// Exports tables as they were in `snap`. JSON comes straight from the
    /// snapshot's stored export files (verified); CSV from its database image,
    /// reassembled into a temporary file beside the output.
    pub fn export_snapshot(
        &self,
        snap: &Snapshot,
        req: &ExportRequest,
        progress: &dyn Progress,
    ) -> Result<Vec<ExportedFile>> {
        operation(progress, |p| {
            req.check_out()?;
            self.export_snapshot_inner(snap, req, p)
        })
    }

    fn export_snapshot_inner(
        &self,
        snap: &Snapshot,
        req: &ExportRequest,
        progress: &dyn Progress,
    ) -> Result<Vec<ExportedFile>> {
        if req.format == ExportFormat::Json
            && req.tables.iter().all(|t| snap.file(t.file_name()).is_ok())
        {
            let mut out = Vec::new();
            for &table in &req.tables {
                let entry = snap.file(table.file_name())?;
                let path = req.path_for(table)?;
                write_out(&path, req.gzip, &mut |w| {
                    self.read_file(entry, w, progress)?;
                    Ok(0)
                })?;
                out.push(ExportedFile {
                    table: table.name().to_string(),
                    path,
                    rows: None,
                });
            }
            return Ok(out);
        }
        let image = snap.image_entry()?;
        let first = req.path_for(req.tables[0])?;
        let tmp = AtomicFile::create(&first.with_extension("lumina-export-image"))?;
        let tmp_path = tmp.temp_path().to_path_buf();
        let mut tmp = tmp;
        self.read_file(image, &mut tmp, progress)?;
        tmp.flush()
            .map_err(|e| Error::io("writing", &tmp_path, e))?;
        let result = (|| {
            let conn = sqlite::restore::open_immutable(&tmp_path)?;
            let missing = export::missing_tables(&conn)?;
            if let Some(t) = req.tables.iter().find(|t| missing.contains(t)) {
                return Err(Error::invalid_input(format!(
                    "snapshot {} has no table `{}`",
                    snap.id.short(),
                    t.name()
                )));
            }
            let ts = crate::snapshot::rfc3339(snap.record.time_ns);
            export_from_connection(&conn, req, &ts)
        })();
        drop(tmp); // removes the temporary image
        result
    }
}
