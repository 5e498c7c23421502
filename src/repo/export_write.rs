//! The four JSON exports of a snapshot, in proportion to the change (issue #10
//! item 4): each table planned from the captured image's pages
//! (`export_plan`), written segment by segment (`export_render`), the map of the
//! segments stored beside them (`exports.map`) for the next snapshot; a table
//! that cannot be planned is rendered whole, as before.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

use super::export_plan::{self, ParentSide};
use super::export_render::{self, Mode, ParentExport};
use super::take::{ExportInputs, ExportRows, Handoff};
use super::Repository;
use crate::error::{Error, Repr, Result};
use crate::export::{self, ConsistencyScan, Table};
use crate::format::{ExportMap, EXPORT_MAP_NAME};
use crate::progress::NoProgress;
use crate::snapshot::Snapshot;
use crate::sqlite::btree::{self, Header};
use crate::sqlite::capture::{PieceWriter, Sink};

/// Writes the four exports of the captured image `conn` to `sink`, and the
/// export map after them; returns the consistency warnings and how many rows
/// were rendered.
pub(super) fn write_exports(
    conn: &rusqlite::Connection,
    sink: &mut Sink<'_>,
    timestamp: &str,
    inputs: ExportInputs,
) -> Result<(Vec<String>, ExportRows)> {
    // The store side sends this once the image is stored; if it stopped, its
    // own error explains why.
    let Handoff {
        same,
        parents,
        parent_ids,
    } = inputs
        .handoff
        .recv()
        .map_err(|_| Error::from(Repr::Cancelled))?;
    let same = if inputs.page_chunks { same } else { Vec::new() };
    // A page the kept copy held before, when it is the parent's byte for byte.
    let previous = |no: u32| -> Option<Vec<u8>> {
        let theirs = parent_ids.get(&no).filter(|_| inputs.page_chunks)?;
        let old = inputs.previous.get(no)?;
        (inputs.ids.chunk_id(&old) == *theirs).then_some(old)
    };
    // Pages that cannot be read (the header refused) render every table whole.
    let mut pages = StagedPages::open(conn).ok();
    let h = pages.as_ref().map(|p| p.header.clone());
    let mut read = |no: u32| match pages.as_mut() {
        Some(p) => p.read(no),
        None => Err(Error::internal("no staged pages")),
    };

    struct Planned {
        facts: export_plan::TableFacts,
        plan: export_plan::Plan,
        mode: Mode,
    }
    let mut planned: Vec<(Table, Option<Planned>)> = Vec::new();
    for table in Table::all() {
        // Any doubt (an unusual schema, a decoding error) renders the table whole.
        let facts = h
            .as_ref()
            .and_then(|h| export_plan::table_facts(conn, table, h).ok().flatten());
        let entry = facts.zip(h.as_ref()).and_then(|(facts, h)| {
            let parent = parents
                .get(table.file_name())
                .filter(|p| p.map.context == facts.context);
            let side = parent.map(|p| ParentSide {
                map: &p.map,
                same: &same,
                previous: &previous,
            });
            let plan = export_plan::plan(&facts, h, &mut read, side).ok()?;
            let mode = export_render::mode(&plan, parent);
            Some(Planned { facts, plan, mode })
        });
        planned.push((table, entry));
    }
    // Rows read by rowid are not all seen: the consistency check then reads
    // the key columns instead of riding along the export pass.
    let by_keys = planned
        .iter()
        .any(|(_, p)| p.as_ref().is_some_and(|p| p.mode == Mode::Lookup));
    // The key scan reads every table's keys: on the other core, from its own
    // connection to the staged copy, while the changed rows are rendered here.
    // (Without a path or a connection, it runs here after the render.)
    let own = by_keys
        .then(|| conn.path().filter(|p| !p.is_empty()).map(PathBuf::from))
        .flatten()
        .and_then(|path| crate::sqlite::staging::open_staged(&path).ok());
    let mut scan = ConsistencyScan::new();
    let mut maps = Vec::new();
    let mut rows = ExportRows {
        rendered: 0,
        total: 0,
    };
    let warnings = std::thread::scope(|s| -> Result<Vec<String>> {
        let keys = own.and_then(|own| {
            let interrupt = own.get_interrupt_handle();
            std::thread::Builder::new()
                .name("key-scan".into())
                .spawn_scoped(s, move || -> Result<Vec<String>> {
                    Ok(ConsistencyScan::of_keys(&own)?.warnings())
                })
                .ok()
                .map(|t| (t, interrupt))
        });
        let render = || -> Result<()> {
            for (table, entry) in planned {
                let mut observe = |row: &rusqlite::Row<'_>| {
                    if by_keys {
                        Ok(())
                    } else {
                        scan.observe(table, row)
                    }
                };
                match entry {
                    Some(p) => {
                        let parent = parents.get(table.file_name());
                        maps.push(export_render::write(
                            conn,
                            &p.facts,
                            p.plan,
                            parent.filter(|_| p.mode == Mode::Lookup),
                            p.mode,
                            timestamp,
                            sink,
                            &inputs.file_chunks,
                            &mut observe,
                            &mut rows.rendered,
                        )?);
                        rows.total += maps
                            .last()
                            .map_or(0, |m| m.segments.iter().map(|s| s.rows).sum());
                    }
                    None => {
                        let n = write_whole(conn, table, timestamp, sink, &mut observe)?;
                        rows.rendered += n;
                        rows.total += n;
                    }
                }
            }
            Ok(())
        };
        let rendered = render();
        if let (Err(_), Some((_, interrupt))) = (&rendered, &keys) {
            // Stop the scan: its answer is not wanted.
            interrupt.interrupt();
        }
        let scanned = keys.map(|(t, _)| {
            t.join()
                .map_err(|_| Error::internal("the consistency scan's thread panicked"))
                .and_then(|r| r)
        });
        rendered?;
        match scanned {
            Some(warnings) => warnings,
            None if by_keys => Ok(ConsistencyScan::of_keys(conn)?.warnings()),
            None => Ok(std::mem::take(&mut scan).finish().warnings()),
        }
    })?;
    if !maps.is_empty() {
        let map = ExportMap {
            version: crate::format::export_map::EXPORT_MAP_VERSION,
            tables: maps,
        };
        let mut w = PieceWriter::begin(sink, EXPORT_MAP_NAME)?;
        std::io::Write::write_all(&mut w, &map.encode())
            .map_err(|e| Error::internal(e.to_string()))?;
        w.finish()?;
    }
    Ok((warnings, rows))
}

/// Writes the export of `table` rendered whole (every row, in one pass that
/// `observe` sees) as one file to `sink`; returns its rows.
pub(super) fn write_whole(
    conn: &rusqlite::Connection,
    table: Table,
    timestamp: &str,
    sink: &mut Sink<'_>,
    observe: &mut dyn FnMut(&rusqlite::Row<'_>) -> std::result::Result<(), export::Error>,
) -> Result<u64> {
    let mut w = PieceWriter::begin(sink, table.file_name())?;
    let rows = export::write_json_observed(conn, table, timestamp, &mut w, observe)?;
    w.finish()?;
    Ok(rows)
}

/// Reads pages of the staged image (the file `conn` has open).
struct StagedPages {
    file: std::fs::File,
    header: Header,
    path: std::path::PathBuf,
}

impl StagedPages {
    fn open(conn: &rusqlite::Connection) -> Result<StagedPages> {
        let path = std::path::PathBuf::from(
            conn.path()
                .ok_or_else(|| Error::internal("the staged image has no path"))?,
        );
        let mut file = std::fs::File::open(&path).map_err(|e| Error::io("opening", &path, e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io("reading", &path, e))?
            .len();
        let mut first = vec![0u8; 100];
        file.read_exact(&mut first)
            .map_err(|e| Error::io("reading", &path, e))?;
        let page_size = crate::sqlite::header_page_size(&first)
            .ok_or_else(|| Error::corrupt("the staged image", "has no valid page size"))?;
        let pages = u32::try_from(len / u64::from(page_size)).unwrap_or(u32::MAX);
        let header = btree::header(&first, pages)?;
        Ok(StagedPages { file, header, path })
    }

    fn read(&mut self, no: u32) -> Result<Vec<u8>> {
        if no == 0 || no > self.header.page_count {
            return Err(Error::corrupt(
                format!("database page {no}"),
                "is outside the database",
            ));
        }
        let size = u64::from(self.header.page_size);
        let mut buf = vec![0u8; size as usize];
        self.file
            .seek(SeekFrom::Start(u64::from(no - 1) * size))
            .and_then(|_| self.file.read_exact(&mut buf))
            .map_err(|e| Error::io("reading", &self.path, e))?;
        Ok(buf)
    }
}

impl Repository {
    /// The parent's segmented exports (its `exports.map` and each mapped
    /// file's chunks), checked against each other. Best effort: what cannot be
    /// read is rendered again.
    pub(super) fn parent_exports(&self, parent: &Snapshot) -> HashMap<String, ParentExport> {
        let mut out = HashMap::new();
        let Ok(entry) = parent.file(EXPORT_MAP_NAME) else {
            return out;
        };
        let mut bytes = Vec::new();
        if self.read_file(entry, &mut bytes, &NoProgress).is_err() {
            return out;
        }
        let Ok(map) = ExportMap::decode(&bytes) else {
            return out;
        };
        let Ok(index) = self.index.reader() else {
            return out;
        };
        let mut reader = crate::store::ChunkReader::new(&self.store, index);
        for table in map.tables {
            let Ok(file) = parent.file(&table.file) else {
                continue;
            };
            let Ok(leaves) = reader.leaves(file.root) else {
                continue;
            };
            let name = table.file.clone();
            if let Some(p) = ParentExport::checked(table, leaves) {
                out.insert(name, p);
            }
        }
        out
    }
}
