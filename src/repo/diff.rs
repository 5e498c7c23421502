//! `diff`: what changed between two snapshots, or between a snapshot and the live
//! database, row by row.
//!
//! The four tables a Lumina database exports are compared through their JSON
//! exports (stored in every snapshot; for the live side exported afresh), so rows
//! read exactly as the app's exports show them. Every other table, of a Lumina
//! database or any other, is compared from the images (the snapshot's image
//! reassembled into a temporary file), keyed by its declared primary key.

use std::io::{BufReader, Write};
use std::path::Path;

use super::Repository;
use crate::diff::{self, DiffReport, JsonExportRows, RowSource, SqliteRows, TableDiff};
use crate::error::{Error, Result};
use crate::export::{self, Table};
use crate::format::FileEntry;
use crate::fsutil::AtomicFile;
use crate::id::ChunkId;
use crate::progress::{operation, Phase, PhaseInfo, Progress};
use crate::snapshot::Snapshot;
use crate::sqlite;
use crate::store::tree::TreeReader;
use crate::store::ChunkReader;

/// The newer side of a diff.
#[derive(Debug, Clone, Copy)]
pub enum DiffTarget<'a> {
    /// Another snapshot.
    Snapshot(&'a Snapshot),
    /// The database as it is now.
    Live(&'a Path),
}

/// A temporary file (removed on drop) in the system temp folder.
fn temp_file(hint: &str) -> Result<AtomicFile> {
    AtomicFile::create(&std::env::temp_dir().join(format!("lumina-backup-{hint}")))
}

struct Empty;
impl RowSource for Empty {
    fn next_row(&mut self) -> Result<Option<diff::Row>> {
        Ok(None)
    }
}

impl Repository {
    /// Writes one file of a snapshot into a verified temporary file.
    pub(super) fn snapshot_file_to_temp(
        &self,
        snap: &Snapshot,
        name: &str,
        progress: &dyn Progress,
    ) -> Result<AtomicFile> {
        let entry = snap.file(name)?;
        let mut tmp = temp_file(name)?;
        self.read_file(entry, &mut tmp, progress)?;
        tmp.flush()
            .map_err(|e| Error::io("writing", tmp.temp_path(), e))?;
        Ok(tmp)
    }

    /// Row-level differences from `old` to `new`.
    pub fn diff(
        &self,
        old: &Snapshot,
        new: DiffTarget<'_>,
        progress: &dyn Progress,
    ) -> Result<DiffReport> {
        operation(progress, |p| self.diff_inner(old, new, p))
    }

    fn diff_inner(
        &self,
        old: &Snapshot,
        new: DiffTarget<'_>,
        progress: &dyn Progress,
    ) -> Result<DiffReport> {
        let old_lumina = Table::all().iter().all(|t| old.file(t.file_name()).is_ok());
        let new_lumina = match new {
            DiffTarget::Snapshot(s) => Table::all().iter().all(|t| s.file(t.file_name()).is_ok()),
            DiffTarget::Live(db) => export::is_lumina(&sqlite::capture::open_source(db)?)?,
        };
        // Two snapshots: from the pages that differ (see `diff::pages`), read in
        // place through the chunk reader; the full route below when that route
        // declines (schema change, grouped pages, ...). The live database keeps
        // the full route: its pages have no identities to compare without
        // reading (and hashing) the whole file anyway.
        let by_pages = match new {
            DiffTarget::Snapshot(s) => {
                self.diff_by_pages(old, s, old_lumina && new_lumina, progress)?
            }
            DiffTarget::Live(_) => None,
        };
        let report = if let Some(report) = by_pages {
            report
        } else if old_lumina && new_lumina {
            // The exported tables row by row as the app's exports show them; every
            // other table (the app has more than the four it exports) from the
            // images, keyed by its declared primary key.
            let mut report = self.diff_exports(old, new, progress)?;
            let exported: Vec<&str> = Table::all().iter().map(|t| t.name()).collect();
            let rest = self.diff_images(old, new, &exported, progress)?;
            report.tables.extend(rest.tables);
            report
        } else {
            self.diff_images(old, new, &[], progress)?
        };
        if let DiffTarget::Snapshot(s) = new {
            if s.record.parent == Some(old.id) {
                // Now known: kept for the history listing (best effort, a cache).
                let rows = report
                    .tables
                    .values()
                    .map(|d| (d.added.len() + d.removed.len() + d.changed.len()) as u64)
                    .sum();
                let _ = self.record_changes(s, rows);
            }
        }
        Ok(report)
    }

    /// The page route ([`diff::pages`]); `None` when it declines.
    fn diff_by_pages(
        &self,
        old: &Snapshot,
        new: &Snapshot,
        lumina: bool,
        progress: &dyn Progress,
    ) -> Result<Option<DiffReport>> {
        let (Some(ia), Some(ib)) = (old.image(), new.image()) else {
            return Ok(None);
        };
        let mut reader = ChunkReader::new(&self.store, self.index.reader()?);
        let outcome = match (page_ids(&mut reader, ia)?, page_ids(&mut reader, ib)?) {
            (Some(a), Some(b)) => {
                let mut on_table = |t: &str| progress.phase(&PhaseInfo::new(Phase::Diff).detail(t));
                diff::pages::diff_pages(&a, &b, &mut reader, lumina, &mut on_table)?
            }
            _ => diff::pages::Outcome::Fallback("the image's chunks are not single pages".into()),
        };
        match outcome {
            diff::pages::Outcome::Report(r) => Ok(Some(r)),
            diff::pages::Outcome::Fallback(_why) => Ok(None),
        }
    }

    fn diff_exports(
        &self,
        old: &Snapshot,
        new: DiffTarget<'_>,
        progress: &dyn Progress,
    ) -> Result<DiffReport> {
        let mut report = DiffReport::default();
        // The live side is exported once, in one read transaction, like a snapshot.
        let live_dir = match new {
            DiffTarget::Live(db) => {
                let dir = std::env::temp_dir().join(format!(
                    "lumina-backup-diff-{}-{:08x}",
                    std::process::id(),
                    rand::random::<u32>()
                ));
                let req = super::ExportRequest {
                    tables: Table::all().to_vec(),
                    format: super::ExportFormat::Json,
                    out: dir.clone(),
                    gzip: false,
                };
                super::export_database(db, &req)?;
                Some(TempDir(dir))
            }
            DiffTarget::Snapshot(_) => None,
        };
        for table in Table::all() {
            let a = self.snapshot_file_to_temp(old, table.file_name(), progress)?;
            let a_file = std::fs::File::open(a.temp_path())
                .map_err(|e| Error::io("opening", a.temp_path(), e))?;
            let mut a_rows = JsonExportRows::new(
                BufReader::with_capacity(1 << 20, a_file),
                table.key_columns(),
                table.file_name(),
            );
            let (b_guard, b_path) = match (&new, &live_dir) {
                (DiffTarget::Snapshot(s), _) => {
                    let t = self.snapshot_file_to_temp(s, table.file_name(), progress)?;
                    let p = t.temp_path().to_path_buf();
                    (Some(t), p)
                }
                (DiffTarget::Live(_), Some(dir)) => (None, dir.0.join(table.file_name())),
                (DiffTarget::Live(_), None) => unreachable!("live exports were written above"),
            };
            let b_file =
                std::fs::File::open(&b_path).map_err(|e| Error::io("opening", &b_path, e))?;
            let mut b_rows = JsonExportRows::new(
                BufReader::with_capacity(1 << 20, b_file),
                table.key_columns(),
                table.file_name(),
            );
            progress.phase(&PhaseInfo::new(Phase::Diff).detail(table.name()));
            let d = diff::diff_rows(&mut a_rows, &mut b_rows)?;
            drop(b_guard);
            report.tables.insert(table.name().to_string(), d);
        }
        Ok(report)
    }

    /// Table by table from the images, except the tables named in `skip`.
    fn diff_images(
        &self,
        old: &Snapshot,
        new: DiffTarget<'_>,
        skip: &[&str],
        progress: &dyn Progress,
    ) -> Result<DiffReport> {
        let name_of = |s: &Snapshot| s.image_entry().map(|f| f.name.clone());
        let a = self.snapshot_file_to_temp(old, &name_of(old)?, progress)?;
        let a_conn = sqlite::restore::open_immutable(a.temp_path())?;
        let (_b_guard, b_conn) = match new {
            DiffTarget::Snapshot(s) => {
                let t = self.snapshot_file_to_temp(s, &name_of(s)?, progress)?;
                let c = sqlite::restore::open_immutable(t.temp_path())?;
                (Some(t), c)
            }
            DiffTarget::Live(db) => {
                let c = sqlite::capture::open_source(db)?;
                sqlite::capture::begin_read(&c, db)?;
                (None, c)
            }
        };
        let mut names = diff::sqlite_tables(&a_conn)?;
        names.extend(diff::sqlite_tables(&b_conn)?);
        names.sort();
        names.dedup();
        names.retain(|n| !skip.contains(&n.as_str()));
        let mut report = DiffReport::default();
        for name in names {
            progress.phase(&PhaseInfo::new(Phase::Diff).detail(&name));
            let d = diff_table(&a_conn, &b_conn, &name)?;
            report.tables.insert(name, d);
        }
        Ok(report)
    }
}

/// Pages read from the store: one at a time through the reader's frame cache,
/// or many at once, each frame they need decompressed once.
impl diff::pages::ReadById for ChunkReader<'_> {
    fn read(&mut self, id: &ChunkId) -> Result<Vec<u8>> {
        let loc = self.locate(id)?;
        self.chunk_at(id, &loc)
    }

    fn read_many(&mut self, ids: &[ChunkId]) -> Result<Vec<Vec<u8>>> {
        self.chunks(ids)
    }
}

/// The chunk ids of an image, one per page: `None` unless every chunk has the
/// same length (one page each; the header's page size is checked against it).
fn page_ids(reader: &mut ChunkReader<'_>, entry: &FileEntry) -> Result<Option<Vec<ChunkId>>> {
    let mut walk = TreeReader::new(entry.root);
    let mut ids = Vec::new();
    let mut len = None;
    while let Some(leaf) = reader.next_leaf(&mut walk)? {
        if *len.get_or_insert(leaf.len) != leaf.len {
            return Ok(None);
        }
        ids.push(leaf.id);
    }
    Ok((!ids.is_empty()).then_some(ids))
}

fn has_table(conn: &rusqlite::Connection, name: &str) -> Result<bool> {
    Ok(diff::sqlite_tables(conn)?.iter().any(|n| n == name))
}

fn diff_table(a: &rusqlite::Connection, b: &rusqlite::Connection, name: &str) -> Result<TableDiff> {
    let a_info = if has_table(a, name)? {
        Some(diff::key_info(a, name)?)
    } else {
        None
    };
    let b_info = if has_table(b, name)? {
        Some(diff::key_info(b, name)?)
    } else {
        None
    };
    // Both sides must sort alike: their own key order when they agree (or only
    // one side has the table), else BINARY.
    let order = match (&a_info, &b_info) {
        (Some(x), Some(y)) if x.order != y.order => diff::KeyOrder {
            collations: Vec::new(),
            encoding: x.order.encoding,
        },
        (Some(x), _) => x.order.clone(),
        (None, Some(y)) => y.order.clone(),
        (None, None) => diff::KeyOrder::binary(),
    };
    let mut a_stmt = match &a_info {
        Some(info) => Some((SqliteRows::prepare(a, name, info, &order)?, info)),
        None => None,
    };
    let mut b_stmt = match &b_info {
        Some(info) => Some((SqliteRows::prepare(b, name, info, &order)?, info)),
        None => None,
    };
    let mut a_rows: Box<dyn RowSource> = match &mut a_stmt {
        Some(((stmt, tie), info)) => Box::new(SqliteRows::new(stmt, &info.columns, *tie)?),
        None => Box::new(Empty),
    };
    let mut b_rows: Box<dyn RowSource> = match &mut b_stmt {
        Some(((stmt, tie), info)) => Box::new(SqliteRows::new(stmt, &info.columns, *tie)?),
        None => Box::new(Empty),
    };
    diff::diff_rows_ordered(a_rows.as_mut(), b_rows.as_mut(), &order)
}

/// A folder removed on drop.
struct TempDir(std::path::PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::LocalBackend;
    use crate::chunker::PageParams;
    use crate::format::{Cipher, Config};
    use crate::progress::NoProgress;
    use crate::repo::{OpenOptions, SnapshotOptions};

    /// A repository whose page chunker groups pages (not settable from the CLI:
    /// the config is rewritten): the page route declines, the full route answers.
    #[test]
    fn grouped_pages_take_the_full_route() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("repo");
        Repository::init(&root).expect("init");
        let backend = LocalBackend::new(&root);
        let mut config: Config =
            crate::store::files::get(&backend, &Cipher::Plain, "").expect("config");
        config.page_chunker = PageParams {
            avg_pages: 4,
            max_pages: 16,
        };
        crate::store::files::save(
            &backend,
            &Cipher::Plain,
            crate::format::FormatVersion::NEWEST,
            "",
            &config,
        )
        .expect("save");
        let db = tmp.path().join("app.db");
        let c = rusqlite::Connection::open(&db).expect("db");
        c.execute_batch(
            "CREATE TABLE t(k TEXT PRIMARY KEY, v BLOB);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000)
             INSERT INTO t SELECT 'k' || i, randomblob(100) FROM n;",
        )
        .expect("fill");
        let mut r = Repository::open(&root, &OpenOptions::default()).expect("open");
        let opts = SnapshotOptions {
            no_exports: true,
            ..Default::default()
        };
        let a = r.snapshot(&db, &opts, &NoProgress).expect("a").snapshot;
        c.execute_batch(
            "UPDATE t SET v = x'00' WHERE k = 'k7'; DELETE FROM t WHERE k = 'k900';
             INSERT INTO t VALUES ('new', NULL);",
        )
        .expect("edit");
        let b = r.snapshot(&db, &opts, &NoProgress).expect("b").snapshot;
        assert!(r
            .diff_by_pages(&a, &b, false, &NoProgress)
            .expect("page route")
            .is_none());
        let d = r
            .diff(&a, DiffTarget::Snapshot(&b), &NoProgress)
            .expect("diff");
        let full = r
            .diff(&a, DiffTarget::Live(&db), &NoProgress)
            .expect("full");
        assert_eq!(d, full);
        let t = &d.tables["t"];
        assert_eq!((t.added.len(), t.removed.len(), t.changed.len()), (1, 1, 1));
    }
}
