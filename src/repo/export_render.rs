//! Writes one JSON export segment by segment (`export_plan`): each segment's
//! rows rendered and cut into chunks on their own, or the parent's chunks of
//! the same segment reused without reading a row. The bytes equal those of
//! [`export::write_json`] for the same rows and timestamp (tested).

use std::cell::Cell;
use std::collections::HashMap;
use std::io::Write;

use rusqlite::Connection;

use super::export_plan::{Plan, TableFacts};
use crate::error::{Error, Result};
use crate::export::{self, RowRenderer};
use crate::format::export_map::Segment;
use crate::format::{TableMap, TreeEntry};
use crate::sqlite::capture::{PieceWriter, Sink};

/// The parent's export of one table: its map entry and its file's chunks.
pub(super) struct ParentExport {
    /// The map entry.
    pub map: TableMap,
    /// The export file's data chunks in order.
    pub leaves: Vec<TreeEntry>,
}

impl ParentExport {
    /// Checks the map against the file's chunks: every segment's chunks are
    /// there and add up to its bytes. `None` if not (the map is not used).
    pub fn checked(map: TableMap, leaves: Vec<TreeEntry>) -> Option<ParentExport> {
        let mut at = map.head_chunks as usize;
        for s in &map.segments {
            let end = at.checked_add(s.chunks as usize)?;
            let bytes: u64 = leaves.get(at..end)?.iter().map(|e| e.len).sum();
            if bytes != s.bytes {
                return None;
            }
            at = end;
        }
        (at <= leaves.len()).then_some(ParentExport { map, leaves })
    }

    /// Reusable segments by fingerprint: their chunks and rows.
    fn by_fingerprint(&self) -> HashMap<[u8; 32], (&[TreeEntry], u64)> {
        let mut out = HashMap::new();
        let mut at = self.map.head_chunks as usize;
        for s in &self.map.segments {
            let end = at + s.chunks as usize;
            out.insert(s.fingerprint, (&self.leaves[at..end], s.rows));
            at = end;
        }
        out
    }
}

/// How the rows of changed segments are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// Every row from one scan in key order (no parent, or much changed); each
    /// row is shown to the observer.
    Scan,
    /// Only the rows of segments the parent cannot supply, by rowid.
    Lookup,
}

/// The mode for `plan`: lookups when a parent can supply at least half the rows.
pub(super) fn mode(plan: &Plan, parent: Option<&ParentExport>) -> Mode {
    if parent.is_none() {
        return Mode::Scan;
    }
    let to_render: u64 = plan
        .segments
        .iter()
        .filter(|s| !s.reusable)
        .map(|s| s.rows)
        .sum();
    if to_render * 2 <= plan.rows {
        Mode::Lookup
    } else {
        Mode::Scan
    }
}

/// Writes the export of `facts.table` to `sink` following `plan`; returns the
/// map entry with its chunk counts. `chunks` counts the chunks of the current
/// file as the sink cuts them. In [`Mode::Scan`], `observe` sees every row.
/// Adds the rows it rendered to `rendered`.
#[allow(clippy::too_many_arguments)]
pub(super) fn write(
    conn: &Connection,
    facts: &TableFacts,
    plan: Plan,
    parent: Option<&ParentExport>,
    mode: Mode,
    timestamp: &str,
    sink: &mut Sink<'_>,
    chunks: &Cell<u64>,
    observe: &mut dyn FnMut(&rusqlite::Row<'_>) -> std::result::Result<(), export::Error>,
    rendered: &mut u64,
) -> Result<TableMap> {
    let table = facts.table;
    let sq = |e: rusqlite::Error| Error::from(export::Error::from(e));
    let known = parent.map(ParentExport::by_fingerprint).unwrap_or_default();
    let mut w = PieceWriter::begin(sink, table.file_name())?;
    w.write_all(&export::header(table, timestamp, plan.rows)?)
        .map_err(|e| Error::internal(e.to_string()))?;
    w.cut()?;
    let mut map = plan.map;
    map.head_chunks = u32::try_from(chunks.get()).map_err(|_| Error::internal("chunks"))?;

    let name = table.name();
    let (sql, offset) = match mode {
        Mode::Scan => (
            format!(
                "SELECT {}, * FROM \"{name}\" ORDER BY {}",
                facts.alias,
                table.key_columns().join(", ")
            ),
            1,
        ),
        Mode::Lookup => (
            format!("SELECT * FROM \"{name}\" WHERE {} = ?1", facts.alias),
            0,
        ),
    };
    let mut stmt = conn.prepare(&sql).map_err(sq)?;
    let names: Vec<String> = stmt
        .column_names()
        .iter()
        .skip(offset)
        .map(|s| (*s).to_owned())
        .collect();
    let render = RowRenderer::new(table, &names, offset)?;
    let mut source = match mode {
        Mode::Scan => Source::Scan(stmt.query([]).map_err(sq)?),
        Mode::Lookup => Source::Lookup(&mut stmt),
    };
    let mut written_rows = 0u64;
    let mut buf = Vec::with_capacity(64 * 1024);
    for seg in &plan.segments {
        let before_chunks = chunks.get();
        let before_bytes = w.written;
        let reuse = match mode {
            Mode::Lookup if seg.reusable => known
                .get(&seg.fingerprint)
                .filter(|(_, rows)| *rows == seg.rows),
            _ => None,
        };
        if let Some((entries, _)) = reuse {
            w.reuse(entries.to_vec())?;
            written_rows += seg.rows;
        } else {
            if mode == Mode::Lookup && seg.rowids.len() as u64 != seg.rows {
                return Err(Error::internal("a segment to render without its rowids"));
            }
            for i in 0..seg.rows as usize {
                buf.clear();
                buf.extend_from_slice(if written_rows == 0 { b"\n" } else { b",\n" });
                match &mut source {
                    Source::Scan(rows) => {
                        let row = rows.next().map_err(sq)?.ok_or_else(|| changed(facts))?;
                        // Rowids are kept only for segments a parent cannot
                        // supply; those are checked against the scan.
                        if let Some(&rowid) = seg.rowids.get(i) {
                            if row.get::<_, i64>(0).map_err(sq)? != rowid {
                                return Err(changed(facts));
                            }
                        }
                        render.push(&mut buf, row)?;
                        observe(row)?;
                    }
                    Source::Lookup(stmt) => {
                        let mut rows = stmt.query([seg.rowids[i]]).map_err(sq)?;
                        let row = rows.next().map_err(sq)?.ok_or_else(|| changed(facts))?;
                        render.push(&mut buf, row)?;
                    }
                }
                w.write_all(&buf)
                    .map_err(|e| Error::internal(e.to_string()))?;
                written_rows += 1;
                *rendered += 1;
            }
            w.cut()?;
        }
        map.segments.push(Segment {
            fingerprint: seg.fingerprint,
            chunks: u32::try_from(chunks.get() - before_chunks)
                .map_err(|_| Error::internal("chunks"))?,
            bytes: w.written - before_bytes,
            rows: seg.rows,
        });
    }
    if let Source::Scan(rows) = &mut source {
        if rows.next().map_err(sq)?.is_some() {
            return Err(changed(facts));
        }
    }
    w.write_all(export::TRAILER)
        .map_err(|e| Error::internal(e.to_string()))?;
    w.finish()?;
    Ok(map)
}

/// Where rendered rows come from: one statement, scanned in key order or
/// queried by rowid.
enum Source<'r, 'c> {
    Scan(rusqlite::Rows<'r>),
    Lookup(&'r mut rusqlite::Statement<'c>),
}

/// The index and the table disagree (a damaged image): the snapshot fails as
/// the whole-table export would.
fn changed(facts: &TableFacts) -> Error {
    Error::corrupt(
        format!("table {}", facts.table.name()),
        "its primary-key index and its rows disagree; run `PRAGMA integrity_check` on the database",
    )
}
