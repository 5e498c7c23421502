//! Which rows of a JSON export may differ from the parent snapshot's, found
//! from the captured image's pages (issue #10 item 4; store-format.md 11.3).
//!
//! An export lists a table's rows in primary-key order, which is the order of
//! the table's primary-key index. The export is cut into *segments*: the rows of
//! a run of that index's leaves (with the index entries kept on interior pages
//! between them). A segment's bytes are a function of its (key, rowid) entries,
//! of whether a row comes before it, and of the rows those rowids name. So a
//! segment whose entries hash to a fingerprint the parent's map lists, and none
//! of whose rowids is *dirty*, is the parent's segment byte for byte.
//!
//! A rowid is clean when its cell lies on a leaf of the table that is the same
//! page, with the same bytes, as a page of the same table's b-tree in the parent
//! (same chunk id at the same position, and the page listed in the parent's map),
//! and every overflow page of that leaf's cells has the same bytes as in the
//! parent. The page-role condition is what makes this exact: a free page keeps
//! stale bytes, so equal bytes alone do not prove a page holds the table's rows
//! in both states. A rowid on a leaf that changed is still clean when the
//! parent's version of that leaf (proven by its chunk id, see
//! [`ParentSide::previous`]) has the same cell and the cell's overflow pages
//! are unchanged. Every other rowid of the table is dirty.
//!
//! Owns the segment cut and fingerprint rules. Knows pages (`sqlite::btree`)
//! and the map's shape (`format::export_map`), not chunks or SQL rendering.

use std::collections::HashSet;

use rusqlite::Connection;

use crate::error::{Error, Result};
use crate::export::Table;
use crate::format::TableMap;
use crate::sqlite::btree::{self, Header, Kind, Page, ReadPage};
use crate::sqlite::record;

/// Estimated rendered bytes a segment aims at (its rows' JSON).
const SEGMENT_TARGET: u64 = 32 * 1024;

/// What the rendering of one table's export depends on besides its rows.
#[derive(Debug, Clone)]
pub(super) struct TableFacts {
    /// The Lumina table.
    pub table: Table,
    /// Root page of the table's b-tree.
    pub root: u32,
    /// Root page of its primary-key index.
    pub pk_root: u32,
    /// A name of the rowid no column shadows (`rowid`, `_rowid_` or `oid`).
    pub alias: &'static str,
    /// Digest of the table's schema, the page layout and the export format.
    pub context: [u8; 32],
}

/// The facts of `table` in `conn`, or `None` when its export cannot be cut into
/// segments (no separate primary-key index, keys other than the export's order,
/// a shadowed rowid): it is then rendered whole.
pub(super) fn table_facts(
    conn: &Connection,
    table: Table,
    h: &Header,
) -> Result<Option<TableFacts>> {
    let sq = |e| Error::internal(format!("reading the schema of {}: {e}", table.name()));
    let mut stmt = conn
        .prepare(
            "SELECT type, name, rootpage, coalesce(sql, '') FROM sqlite_master \
             WHERE lower(tbl_name) = ?1 ORDER BY type, name",
        )
        .map_err(sq)?;
    let rows: Vec<(String, String, i64, String)> = stmt
        .query_map([table.name()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .map_err(sq)?
        .collect::<std::result::Result<_, _>>()
        .map_err(sq)?;
    let root = rows
        .iter()
        .find(|r| r.0 == "table" && r.1.eq_ignore_ascii_case(table.name()))
        .map(|r| r.2);
    let Some(root) = root.and_then(|r| u32::try_from(r).ok()) else {
        return Ok(None);
    };
    // The primary-key index (`origin` 'pk'), whose columns must be the
    // export's order.
    let pk_index: Option<String> = conn
        .prepare(&format!("PRAGMA index_list(\"{}\")", table.name()))
        .and_then(|mut s| {
            let found: Vec<(String, String)> = s
                .query_map([], |r| Ok((r.get(1)?, r.get(3)?)))?
                .collect::<std::result::Result<_, _>>()?;
            Ok(found.into_iter().find(|(_, o)| o == "pk").map(|(n, _)| n))
        })
        .map_err(sq)?;
    let Some(pk_index) = pk_index else {
        return Ok(None);
    };
    let cols: Vec<String> = conn
        .prepare(&format!(
            "PRAGMA index_info(\"{}\")",
            pk_index.replace('"', "\"\"")
        ))
        .and_then(|mut s| {
            s.query_map([], |r| r.get::<_, Option<String>>(2))?
                .map(|c| c.map(Option::unwrap_or_default))
                .collect()
        })
        .map_err(sq)?;
    let keys = table.key_columns();
    if cols.len() != keys.len()
        || !cols
            .iter()
            .zip(keys)
            .all(|(c, k)| c.eq_ignore_ascii_case(k))
    {
        return Ok(None);
    }
    let Some(pk_root) = rows
        .iter()
        .find(|r| r.0 == "index" && r.1 == pk_index)
        .and_then(|r| u32::try_from(r.2).ok())
    else {
        return Ok(None);
    };
    let columns: Vec<String> = conn
        .prepare(&format!("PRAGMA table_info(\"{}\")", table.name()))
        .and_then(|mut s| s.query_map([], |r| r.get(1))?.collect())
        .map_err(sq)?;
    let Some(alias) = ["rowid", "_rowid_", "oid"]
        .into_iter()
        .find(|a| !columns.iter().any(|c| c.eq_ignore_ascii_case(a)))
    else {
        return Ok(None);
    };
    let mut ctx = blake3::Hasher::new();
    ctx.update(b"lumina-backup export context v1\n");
    let mut field = |b: &[u8]| {
        ctx.update(&(b.len() as u64).to_le_bytes());
        ctx.update(b);
    };
    field(crate::export::FORMAT_VERSION.as_bytes());
    field(table.name().as_bytes());
    field(alias.as_bytes());
    for v in [h.page_size, h.usable, h.encoding] {
        field(&v.to_le_bytes());
    }
    for (kind, name, rootpage, sql) in &rows {
        field(kind.as_bytes());
        field(name.as_bytes());
        field(&rootpage.to_le_bytes());
        field(sql.as_bytes());
    }
    Ok(Some(TableFacts {
        table,
        root,
        pk_root,
        alias,
        context: *ctx.finalize().as_bytes(),
    }))
}

/// The parent's side: its map of this table, and which pages of the new image
/// have the same bytes as the parent's image at the same position.
pub(super) struct ParentSide<'a> {
    /// The parent's map of the table (same context).
    pub map: &'a TableMap,
    /// `same[p - 1]`: page `p` equals the parent's page `p`.
    pub same: &'a [bool],
    /// The parent's bytes of page `p`, for some pages that differ (checked
    /// against the parent's chunk id): table leaves rewritten since, compared
    /// cell by cell.
    pub previous: &'a dyn Fn(u32) -> Option<Vec<u8>>,
}

/// One segment of the new export.
#[derive(Debug)]
pub(super) struct PlannedSegment {
    /// Its fingerprint.
    pub fingerprint: [u8; 32],
    /// Its rows.
    pub rows: u64,
    /// The rowids of its rows, in export order, kept only where they may be
    /// read by rowid (a parent exists and the segment is not reusable): memory
    /// stays in proportion to the change.
    pub rowids: Vec<i64>,
    /// The parent's map has a segment of this fingerprint and row count, and no
    /// rowid of it is dirty: its chunks are this segment's bytes.
    pub reusable: bool,
}

/// The plan of one export.
#[derive(Debug)]
pub(super) struct Plan {
    /// Segments in export order.
    pub segments: Vec<PlannedSegment>,
    /// Rows in the table (entries of its primary-key index).
    pub rows: u64,
    /// The new map's entry, without its chunk counts (filled as it is written).
    pub map: TableMap,
}

/// Plans the export of the table of `facts` from the image's pages.
pub(super) fn plan(
    facts: &TableFacts,
    h: &Header,
    read: &mut ReadPage<'_>,
    parent: Option<ParentSide<'_>>,
) -> Result<Plan> {
    let tree = btree::walk(facts.root, h, read)?;
    if !tree.table {
        return Err(Error::internal("not a rowid table"));
    }
    let index = btree::walk(facts.pk_root, h, read)?;
    if index.table {
        return Err(Error::internal("the key index is not an index"));
    }
    let mut pages: Vec<u32> = tree.interior.iter().chain(&tree.leaves).copied().collect();
    pages.sort_unstable();

    let parent_pages = match &parent {
        Some(p) => p
            .map
            .page_list()
            .map_err(|e| Error::internal(e.to_string()))?,
        None => Vec::new(),
    };
    let same = |p: u32| {
        parent
            .as_ref()
            .and_then(|s| s.same.get((p as usize).checked_sub(1)?).copied())
            .unwrap_or(false)
    };
    let group = match &parent {
        Some(p) => p.map.group,
        None => {
            // Rendered JSON is about twice the stored row: a segment of
            // `group` index leaves aims at SEGMENT_TARGET bytes.
            let per_leaf = (tree.leaves.len() as u64 * u64::from(h.usable) * 2)
                / (index.leaves.len().max(1) as u64);
            (SEGMENT_TARGET / per_leaf.max(1)).clamp(1, 1024) as u32
        }
    };

    // Dirty rowids, and the overflow pages of every leaf for the new map.
    let mut dirty: HashSet<i64> = HashSet::new();
    let mut overflow: Vec<(u32, Vec<u32>)> = Vec::new();
    let parent_overflow: std::collections::HashMap<u32, &Vec<u32>> = parent
        .as_ref()
        .map(|p| p.map.overflow.iter().map(|(l, o)| (*l, o)).collect())
        .unwrap_or_default();
    for &leaf in &tree.leaves {
        let same_leaf = same(leaf) && parent_pages.binary_search(&leaf).is_ok();
        if same_leaf {
            match parent_overflow.get(&leaf) {
                None => continue,
                Some(chain) if chain.iter().all(|&q| same(q)) => {
                    overflow.push((leaf, (*chain).clone()));
                    continue;
                }
                Some(_) => {}
            }
        }
        let bytes = read(leaf)?;
        let page = Page::parse(leaf, &bytes, h.usable)?;
        if page.kind != Kind::TableLeaf {
            return Err(Error::internal("a table leaf is not a leaf"));
        }
        // The parent's version of this page, when it was a page of this
        // table's b-tree there: its cells, by rowid.
        let old = match &parent {
            Some(p) if parent_pages.binary_search(&leaf).is_ok() => (p.previous)(leaf),
            _ => None,
        };
        let before = previous_cells(leaf, old.as_deref(), h);
        let mut chains = Vec::new();
        for i in 0..page.count {
            let cell = page.cell(i)?;
            let chain = match cell.overflow {
                Some(_) => btree::overflow_pages(&cell, h, read)?,
                None => Vec::new(),
            };
            if parent.is_some() {
                // Clean: the same cell (rowid, payload length, local bytes,
                // first overflow page) on the parent's version of this leaf,
                // and every overflow page of it unchanged.
                let clean = before.as_ref().is_some_and(|b| {
                    cell.rowid.and_then(|r| b.get(&r)).is_some_and(|old| {
                        old.payload_len == cell.payload_len
                            && old.local == cell.local
                            && old.overflow == cell.overflow
                    }) && chain.iter().all(|&q| same(q))
                });
                if !clean {
                    dirty.insert(cell.rowid.unwrap_or_default());
                }
            }
            chains.extend(chain);
        }
        if !chains.is_empty() {
            overflow.push((leaf, chains));
        }
    }

    // The index in key order, cut into segments.
    let mut cut = Cutter {
        context: facts.context,
        group,
        segments: Vec::new(),
        current: None,
        pending_cut: false,
        rows: 0,
        leaf_buf: Vec::new(),
        parent: parent.as_ref().map(|p| {
            p.map
                .segments
                .iter()
                .map(|s| (s.fingerprint, s.rows))
                .collect()
        }),
        dirty,
    };
    let mut seen = HashSet::new();
    in_order(facts.pk_root, 0, h, read, &mut seen, &mut cut)?;
    let rows = cut.rows;
    let segments = cut.finish();
    Ok(Plan {
        segments,
        rows,
        map: TableMap {
            file: facts.table.file_name().to_string(),
            context: facts.context,
            group,
            pages: TableMap::encode_pages(&pages),
            overflow,
            head_chunks: 0,
            segments: Vec::new(),
        },
    })
}

/// The cells of `bytes`, the parent's version of table leaf `no`, by rowid;
/// `None` when there is none or it is not a table leaf.
fn previous_cells<'b>(
    no: u32,
    bytes: Option<&'b [u8]>,
    h: &Header,
) -> Option<std::collections::HashMap<i64, btree::Cell<'b>>> {
    let page = Page::parse(no, bytes?, h.usable).ok()?;
    if page.kind != Kind::TableLeaf {
        return None;
    }
    (0..page.count)
        .map(|i| {
            let cell = page.cell(i).ok()?;
            Some((cell.rowid?, cell))
        })
        .collect()
}

/// Builds segments from index entries met in key order.
struct Cutter {
    context: [u8; 32],
    group: u32,
    segments: Vec<PlannedSegment>,
    current: Option<(blake3::Hasher, Vec<i64>)>,
    /// The last leaf ended a segment: the next leaf starts a new one.
    pending_cut: bool,
    rows: u64,
    /// A leaf's entries, each as its length (u64 LE) and bytes: hashed at once.
    leaf_buf: Vec<u8>,
    /// The parent's segments (fingerprint → rows), if any.
    parent: Option<std::collections::HashMap<[u8; 32], u64>>,
    /// Rowids whose rows may differ from the parent's.
    dirty: HashSet<i64>,
}

impl Cutter {
    fn start(&mut self) {
        self.close();
        let mut h = blake3::Hasher::new();
        h.update(b"lumina-backup export segment v1\n");
        h.update(&self.context);
        h.update(&[u8::from(self.rows == 0)]);
        self.current = Some((h, Vec::new()));
    }

    fn close(&mut self) {
        if let Some((h, mut rowids)) = self.current.take() {
            let fingerprint = *h.finalize().as_bytes();
            let rows = rowids.len() as u64;
            let reusable = self.parent.as_ref().is_some_and(|p| {
                p.get(&fingerprint) == Some(&rows) && !rowids.iter().any(|r| self.dirty.contains(r))
            });
            if reusable || self.parent.is_none() {
                rowids = Vec::new();
            }
            self.segments.push(PlannedSegment {
                fingerprint,
                rows,
                rowids,
                reusable,
            });
        }
    }

    /// The rowid of one index entry (a record whose last value is the rowid).
    fn rowid(payload: &[u8]) -> Result<i64> {
        let (rowid, null) = record::index_entry(payload).map_err(Error::internal)?;
        if null {
            // NULL keys repeat and sort by rowid: the export's ORDER BY need not
            // agree; such a table is rendered whole.
            return Err(Error::internal("a NULL primary key"));
        }
        Ok(rowid)
    }

    /// An entry of an interior page (between two leaves' entries).
    fn entry(&mut self, payload: &[u8]) -> Result<()> {
        let rowid = Self::rowid(payload)?;
        if self.current.is_none() {
            self.start();
        }
        let (h, rowids) = self.current.as_mut().expect("started above");
        h.update(b"E");
        h.update(&(payload.len() as u64).to_le_bytes());
        h.update(payload);
        rowids.push(rowid);
        self.rows += 1;
        Ok(())
    }

    /// A leaf's entries; the segment is cut after a leaf whose entries hash to
    /// 0 modulo `group` (content-defined, so an edit moves cuts only locally).
    fn leaf<'p>(&mut self, entries: impl Iterator<Item = &'p [u8]>) -> Result<()> {
        if self.pending_cut || self.current.is_none() {
            self.start();
        }
        self.leaf_buf.clear();
        let (h, rowids) = self.current.as_mut().expect("started above");
        for e in entries {
            rowids.push(Self::rowid(e)?);
            self.leaf_buf
                .extend_from_slice(&(e.len() as u64).to_le_bytes());
            self.leaf_buf.extend_from_slice(e);
            self.rows += 1;
        }
        let leaf_hash = blake3::hash(&self.leaf_buf);
        h.update(b"L");
        h.update(leaf_hash.as_bytes());
        let v = u64::from_le_bytes(leaf_hash.as_bytes()[..8].try_into().expect("8 bytes"));
        self.pending_cut = v % u64::from(self.group) == 0;
        Ok(())
    }

    fn finish(mut self) -> Vec<PlannedSegment> {
        if self.current.is_none() {
            self.start(); // an empty table: one empty segment
        }
        self.close();
        self.segments
    }
}

/// Visits the index b-tree rooted at `no` in key order.
fn in_order(
    no: u32,
    depth: u32,
    h: &Header,
    read: &mut ReadPage<'_>,
    seen: &mut HashSet<u32>,
    cut: &mut Cutter,
) -> Result<()> {
    if depth > 64 || no == 0 || no > h.page_count || !seen.insert(no) {
        return Err(Error::corrupt(
            format!("database page {no}"),
            "index b-tree loops or points outside the database",
        ));
    }
    let bytes = read(no)?;
    let page = Page::parse(no, &bytes, h.usable)?;
    match page.kind {
        Kind::IndexLeaf => {
            // Entries that overflow are read whole; the others are borrowed.
            let mut cells = Vec::with_capacity(page.count);
            let mut owned = Vec::new();
            for i in 0..page.count {
                let cell = page.cell(i)?;
                if cell.overflow.is_some() {
                    owned.push(btree::payload(&cell, h, read)?);
                    cells.push(None);
                } else {
                    cells.push(Some(cell.local));
                }
            }
            let mut owned = owned.iter();
            let entries = cells.into_iter().map(|c| {
                c.or_else(|| owned.next().map(Vec::as_slice))
                    .unwrap_or_default()
            });
            cut.leaf(entries)
        }
        Kind::IndexInterior => {
            for i in 0..page.count {
                let cell = page.cell(i)?;
                let child = cell.child.ok_or_else(|| Error::internal("no child"))?;
                in_order(child, depth + 1, h, read, seen, cut)?;
                cut.entry(&btree::payload(&cell, h, read)?)?;
            }
            let right = page
                .right
                .ok_or_else(|| Error::internal("no right child"))?;
            in_order(right, depth + 1, h, read, seen, cut)
        }
        _ => Err(Error::corrupt(
            format!("database page {no}"),
            "a table page in an index b-tree",
        )),
    }
}
