//! Diff of two database images in proportion to the change, from their pages.
//!
//! Each image is a list of page identities (content hashes, one per page) and a
//! way to read a page by identity. For every table (the same schema on both
//! sides) the b-tree is walked reading interior pages only; the pages that hold
//! rows (a table b-tree's leaves; every page of a WITHOUT ROWID table's index
//! b-tree) are compared by identity: a page with the same content on both sides
//! holds the same rows, and those cancel out (a row is in exactly one cell of a
//! table). Only the rows of the remaining pages are decoded ([`crate::sqlite::btree`],
//! [`crate::sqlite::record`]), keyed by the declared primary key exactly as
//! [`super::SqliteRows`] keys them (or rendered as the JSON exports render them,
//! for the four exported tables of a Lumina database), sorted and merged with
//! [`super::diff_rows_ordered`]: the same report as the full diff, since the
//! rows left out are equal on both sides.
//!
//! Overflow: a page's identity covers its cells' first overflow page numbers, not
//! the overflow pages' contents. Pages that differ between the images are
//! classed by role (b-tree page or freelist page on both sides); when one of
//! another role (an overflow, pointer-map or lock-byte page) differs, every
//! shared page's overflow chains are checked and a page whose chain touches a
//! differing page is not cancelled.
//!
//! Anything this route does not model exactly gives [`Outcome::Fallback`] with a
//! reason, and the caller diffs through SQLite: a schema that differs, a table
//! whose key cannot be read by replaying its SQL (custom collations), generated
//! columns, a non-UTF-8 database, differing page sizes, NULL keys in an exported
//! table.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::{KeyInfo, KeyOrder, TableDiff};
use super::{Row, RowSource, Tie};
use crate::error::{Error, Result};
use crate::export::Table;
use crate::id::ChunkId;
use crate::sqlite::btree::{self, Header, Page};
use crate::sqlite::record::{self, Val};

/// What the page route found.
#[derive(Debug)]
pub enum Outcome {
    /// The differences of every table.
    Report(super::DiffReport),
    /// This pair of images needs the full route, for this reason.
    Fallback(String),
}

/// Reads pages by their identity.
pub trait ReadById {
    /// One page's bytes.
    fn read(&mut self, id: &ChunkId) -> Result<Vec<u8>>;

    /// Several pages' bytes, in the order asked (a reader that can fetch them
    /// together, e.g. one decompression per frame, overrides it).
    fn read_many(&mut self, ids: &[ChunkId]) -> Result<Vec<Vec<u8>>> {
        ids.iter().map(|id| self.read(id)).collect()
    }
}

impl<F: FnMut(&ChunkId) -> Result<Vec<u8>>> ReadById for F {
    fn read(&mut self, id: &ChunkId) -> Result<Vec<u8>> {
        self(id)
    }
}

/// Pages kept in memory at most (16 MiB of 4 KiB pages).
const CACHE_PAGES: usize = 4096;
/// Pages of rows read together (sorted by where they are stored).
const READ_WINDOW: usize = 1024;

struct Pages<'r> {
    read: &'r mut dyn ReadById,
    cache: HashMap<ChunkId, Vec<u8>>,
}

impl Pages<'_> {
    /// Reads the pages `nos` not cached yet, together, into the cache.
    fn prefetch(&mut self, ids: &[ChunkId], nos: &[u32]) -> Result<()> {
        let mut want: Vec<ChunkId> = Vec::new();
        let mut wanted: HashSet<ChunkId> = HashSet::new();
        for &no in nos {
            let id = no
                .checked_sub(1)
                .and_then(|i| ids.get(i as usize))
                .ok_or_else(|| {
                    Error::corrupt(format!("database page {no}"), "is beyond the image")
                })?;
            if !self.cache.contains_key(id) && wanted.insert(*id) {
                want.push(*id);
            }
        }
        if want.is_empty() {
            return Ok(());
        }
        if self.cache.len() + want.len() > CACHE_PAGES {
            self.cache.clear();
        }
        let got = self.read.read_many(&want)?;
        self.cache.extend(want.into_iter().zip(got));
        Ok(())
    }

    fn get(&mut self, ids: &[ChunkId], no: u32) -> Result<Vec<u8>> {
        let id = no
            .checked_sub(1)
            .and_then(|i| ids.get(i as usize))
            .ok_or_else(|| Error::corrupt(format!("database page {no}"), "is beyond the image"))?;
        if let Some(p) = self.cache.get(id) {
            return Ok(p.clone());
        }
        let bytes = self.read.read(id)?;
        if self.cache.len() >= CACHE_PAGES {
            self.cache.clear();
        }
        self.cache.insert(*id, bytes.clone());
        Ok(bytes)
    }
}

struct Side<'i> {
    ids: &'i [ChunkId],
    h: Header,
}

fn fallback<T>(why: impl Into<String>) -> Result<std::result::Result<T, String>> {
    Ok(Err(why.into()))
}

/// Diffs image `a` (older) against image `b`, given each one's page identities
/// (page n is `ids[n - 1]`). `lumina`: render the four exported tables as their
/// JSON exports do (as the full route compares them). `on_table` is called
/// with each table's name as its comparison starts (progress).
pub fn diff_pages(
    a: &[ChunkId],
    b: &[ChunkId],
    read: &mut dyn ReadById,
    lumina: bool,
    on_table: &mut dyn FnMut(&str),
) -> Result<Outcome> {
    let mut pages = Pages {
        read,
        cache: HashMap::new(),
    };
    match diff_inner(a, b, &mut pages, lumina, on_table)? {
        Ok(r) => Ok(Outcome::Report(r)),
        Err(why) => Ok(Outcome::Fallback(why)),
    }
}

fn side<'i>(
    ids: &'i [ChunkId],
    pages: &mut Pages<'_>,
) -> Result<std::result::Result<Side<'i>, String>> {
    let n = u32::try_from(ids.len())
        .map_err(|_| Error::corrupt("database image", "has more than 2^32 pages"))?;
    let p1 = pages.get(ids, 1)?;
    let h = btree::header(&p1, n)?;
    if p1.len() != h.page_size as usize {
        // Chunks of several pages (a grouping page chunker).
        return fallback("the image's chunks are not single pages");
    }
    Ok(Ok(Side { ids, h }))
}

struct SchemaEntry {
    kind: String,
    name: String,
    root: u32,
    sql: Option<String>,
}

fn text(v: Option<&Val>) -> Option<String> {
    match v {
        Some(Val::Text(t)) => Some(String::from_utf8_lossy(t).into_owned()),
        _ => None,
    }
}

fn schema(s: &Side<'_>, pages: &mut Pages<'_>) -> Result<Vec<SchemaEntry>> {
    let mut rd = |no| pages.get(s.ids, no);
    let tree = btree::walk(1, &s.h, &mut rd)?;
    let mut out = Vec::new();
    for no in tree.leaves {
        let bytes = rd(no)?;
        let page = Page::parse(no, &bytes, s.h.usable)?;
        for (_, payload) in btree::entries(&page, &s.h, &mut rd)? {
            let v = record::decode(&payload)
                .map_err(|e| Error::corrupt(format!("database page {no}"), e))?;
            let root = match v.get(3) {
                Some(Val::Int(r)) => u32::try_from(*r).unwrap_or(0),
                _ => 0,
            };
            out.push(SchemaEntry {
                kind: text(v.first()).unwrap_or_default(),
                name: text(v.get(1)).unwrap_or_default(),
                root,
                sql: text(v.get(4)),
            });
        }
    }
    Ok(out)
}

/// The ordinary tables as [`super::sqlite_tables`] lists them: `(name, sql, root)`.
fn tables(schema: &[SchemaEntry]) -> Vec<(String, String, u32)> {
    let mut t: Vec<_> = schema
        .iter()
        .filter(|e| e.kind == "table")
        .filter(|e| !(e.name.len() > 6 && e.name[..6].eq_ignore_ascii_case("sqlite")))
        .filter_map(|e| {
            let sql = e.sql.clone()?;
            let virt = sql.len() >= 14 && sql[..14].eq_ignore_ascii_case("CREATE VIRTUAL");
            (!virt).then(|| (e.name.clone(), sql, e.root))
        })
        .collect();
    t.sort();
    t
}

/// How rows of one table are read from its records.
struct Plan {
    name: String,
    columns: Vec<String>,
    real: Vec<bool>,
    /// Values of columns missing from short records (added by ALTER TABLE);
    /// `None`: not a constant this route can compute.
    defaults: Vec<Option<Val>>,
    /// Position of each column in the record.
    pos: Vec<usize>,
    /// The INTEGER PRIMARY KEY column (stored as the rowid).
    alias: Option<usize>,
    without_rowid: bool,
    key: KeyInfo,
    key_idx: Vec<usize>,
    export: Option<Table>,
}

fn plan(name: &str, sql: &str, lumina: bool) -> Result<std::result::Result<Plan, String>> {
    let conn = rusqlite::Connection::open_in_memory().map_err(|e| Error::sqlite(name, e))?;
    if let Err(e) = conn.execute_batch(sql) {
        return fallback(format!("table {name}: its SQL does not replay ({e})"));
    }
    let Ok(key) = super::key_info(&conn, name) else {
        return fallback(format!("table {name}: no key"));
    };
    let sq = |e| Error::sqlite(name, e);
    let cols: Vec<(String, String, Option<String>, i64, i64)> = conn
        .prepare("SELECT name, type, dflt_value, pk, hidden FROM pragma_table_xinfo(?1)")
        .and_then(|mut s| {
            s.query_map([name], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?
            .collect()
        })
        .map_err(sq)?;
    if cols.iter().any(|c| c.4 != 0) {
        return fallback(format!("table {name} has generated columns"));
    }
    let without_rowid: bool = conn
        .query_row(
            "SELECT wr FROM pragma_table_list WHERE schema = 'main' AND name = ?1",
            [name],
            |r| r.get(0),
        )
        .map_err(sq)?;
    let pk_index: bool = conn
        .query_row(
            "SELECT count(*) > 0 FROM pragma_index_list(?1) WHERE origin = 'pk'",
            [name],
            |r| r.get(0),
        )
        .map_err(sq)?;
    let npk = cols.iter().filter(|c| c.3 > 0).count();
    let alias = if !without_rowid && npk == 1 && !pk_index {
        cols.iter().position(|c| c.3 > 0)
    } else {
        None
    };
    let pos: Vec<usize> = if without_rowid {
        let mut order: Vec<usize> = (0..cols.len()).filter(|&i| cols[i].3 > 0).collect();
        order.sort_by_key(|&i| cols[i].3);
        order.extend((0..cols.len()).filter(|&i| cols[i].3 == 0));
        let mut pos = vec![0; cols.len()];
        for (p, &i) in order.iter().enumerate() {
            pos[i] = p;
        }
        pos
    } else {
        (0..cols.len()).collect()
    };
    if key.by_rowid
        && cols.iter().any(|c| {
            ["rowid", "_rowid_", "oid"]
                .iter()
                .any(|r| c.0.eq_ignore_ascii_case(r))
        })
    {
        return fallback(format!("table {name} has a column named like the rowid"));
    }
    let defaults = cols
        .iter()
        .map(|c| match &c.2 {
            None => Some(Val::Null),
            Some(d) if d.to_ascii_uppercase().contains("CURRENT_") => None,
            Some(d) => conn
                .query_row(&format!("SELECT ({d})"), [], |r| {
                    Ok(match r.get_ref(0)? {
                        rusqlite::types::ValueRef::Null => Val::Null,
                        rusqlite::types::ValueRef::Integer(i) => Val::Int(i),
                        rusqlite::types::ValueRef::Real(f) => Val::Real(f),
                        rusqlite::types::ValueRef::Text(t) => Val::Text(t.to_vec()),
                        rusqlite::types::ValueRef::Blob(b) => Val::Blob(b.to_vec()),
                    })
                })
                .ok(),
        })
        .collect();
    let columns: Vec<String> = cols.iter().map(|c| c.0.clone()).collect();
    let export = Table::all()
        .into_iter()
        .find(|t| lumina && t.name() == name);
    let key_names: Vec<&str> = match export {
        Some(t) => t.key_columns().to_vec(),
        None if key.by_rowid => Vec::new(),
        None => key.columns.iter().map(String::as_str).collect(),
    };
    let mut key_idx = Vec::new();
    for k in key_names {
        match columns.iter().position(|c| c == k) {
            Some(i) => key_idx.push(i),
            None => return fallback(format!("table {name}: key column {k} not found")),
        }
    }
    Ok(Ok(Plan {
        name: name.to_string(),
        real: cols.iter().map(|c| real_affinity(&c.1)).collect(),
        columns,
        defaults,
        pos,
        alias,
        without_rowid,
        key,
        key_idx,
        export,
    }))
}

/// Whether a declared type gives REAL affinity (SQLite's rules, §3.1 of the
/// datatype doc: INT, then CHAR/CLOB/TEXT, then BLOB, then REAL/FLOA/DOUB).
fn real_affinity(ty: &str) -> bool {
    let t = ty.to_ascii_uppercase();
    if t.contains("INT") || t.contains("CHAR") || t.contains("CLOB") || t.contains("TEXT") {
        return false;
    }
    if t.contains("BLOB") || t.is_empty() {
        return false;
    }
    t.contains("REAL") || t.contains("FLOA") || t.contains("DOUB")
}

impl Plan {
    /// One entry of the table's b-tree as the diff's row.
    fn row(
        &self,
        rowid: Option<i64>,
        payload: &[u8],
        page: u32,
    ) -> Result<std::result::Result<Row, String>> {
        let bad = |e: String| Error::corrupt(format!("database page {page}"), e);
        let rec = record::decode(payload).map_err(bad)?;
        let mut vals = Vec::with_capacity(self.columns.len());
        for i in 0..self.columns.len() {
            let v = if self.alias == Some(i) {
                Val::Int(rowid.ok_or_else(|| bad("a table cell without rowid".into()))?)
            } else if let Some(v) = rec.get(self.pos[i]) {
                v.clone()
            } else {
                match &self.defaults[i] {
                    Some(d) => d.clone(),
                    None => {
                        return fallback(format!("table {}: a short record", self.name));
                    }
                }
            };
            vals.push(match v {
                Val::Int(n) if self.real[i] => Val::Real(n as f64),
                v => v,
            });
        }
        let refs: Vec<_> = vals.iter().map(Val::as_ref).collect();
        if let Some(t) = self.export {
            let line = crate::export::row_json(t, &self.columns, &refs)
                .map_err(|e| Error::corrupt(t.name(), e))?;
            let text = String::from_utf8_lossy(&line);
            let columns = super::sources::export_row(&text, t.file_name())?;
            let key: Vec<Value> = t
                .key_columns()
                .iter()
                .map(|k| columns.get(*k).cloned().unwrap_or(Value::Null))
                .collect();
            if key.iter().any(Value::is_null) {
                return fallback(format!("table {}: a NULL key", self.name));
            }
            return Ok(Ok(Row {
                key,
                tie: None,
                columns,
            }));
        }
        let mut columns = Map::new();
        if self.key.by_rowid {
            let r = rowid.ok_or_else(|| bad("a table cell without rowid".into()))?;
            columns.insert("rowid".into(), Value::from(r));
        }
        for (name, v) in self.columns.iter().zip(&refs) {
            columns.insert(name.clone(), super::sources::to_json(*v));
        }
        let key: Vec<Value> = if self.key.by_rowid {
            vec![columns.get("rowid").cloned().unwrap_or(Value::Null)]
        } else {
            self.key_idx
                .iter()
                .map(|&i| super::sources::to_json(refs[i]))
                .collect()
        };
        let tie = match rowid {
            Some(r)
                if !self.key.by_rowid
                    && self.key.rowid.is_some()
                    && key.iter().any(Value::is_null) =>
            {
                Some(Tie::Rowid(r))
            }
            _ => None,
        };
        Ok(Ok(Row { key, tie, columns }))
    }

    fn order(&self) -> KeyOrder {
        match self.export {
            Some(_) => KeyOrder::binary(),
            None => self.key.order.clone(),
        }
    }
}

/// The pages holding a table's rows, and every b-tree page.
fn row_pages(
    s: &Side<'_>,
    root: u32,
    pages: &mut Pages<'_>,
    all: &mut PageSet,
) -> Result<(bool, Vec<u32>)> {
    let mut rd = |no| pages.get(s.ids, no);
    let t = btree::walk(root, &s.h, &mut rd)?;
    for &no in t.interior.iter().chain(&t.leaves) {
        all.insert(no);
    }
    let mut rows = t.leaves;
    if !t.table {
        rows.extend(t.interior);
    }
    Ok((t.table, rows))
}

/// A set of page numbers (a bit per page).
struct PageSet(Vec<u64>);

impl PageSet {
    fn new(pages: u32) -> Self {
        PageSet(vec![0; pages as usize / 64 + 1])
    }

    /// Adds page `no`; a number past the set's size is ignored (the walks
    /// reject pages beyond the image before they get here).
    fn insert(&mut self, no: u32) {
        if let Some(w) = self.0.get_mut(no as usize / 64) {
            *w |= 1 << (no % 64);
        }
    }

    fn remove(&mut self, no: u32) {
        if let Some(w) = self.0.get_mut(no as usize / 64) {
            *w &= !(1 << (no % 64));
        }
    }

    fn contains(&self, no: u32) -> bool {
        self.0
            .get(no as usize / 64)
            .is_some_and(|w| w & (1 << (no % 64)) != 0)
    }
}

/// Whether an overflow chain of a cell of page `no` runs through a page in `differ`.
fn chain_touches(no: u32, s: &Side<'_>, pages: &mut Pages<'_>, differ: &PageSet) -> Result<bool> {
    let bytes = pages.get(s.ids, no)?;
    let page = Page::parse(no, &bytes, s.h.usable)?;
    for i in 0..page.count {
        let cell = page.cell(i)?;
        if cell.overflow.is_some() {
            let chain = btree::overflow_pages(&cell, &s.h, &mut |n| pages.get(s.ids, n))?;
            if chain.iter().any(|&n| differ.contains(n)) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

struct VecRows(std::vec::IntoIter<Row>);
impl RowSource for VecRows {
    fn next_row(&mut self) -> Result<Option<Row>> {
        Ok(self.0.next())
    }
}

fn diff_inner(
    a_ids: &[ChunkId],
    b_ids: &[ChunkId],
    pages: &mut Pages<'_>,
    lumina: bool,
    on_table: &mut dyn FnMut(&str),
) -> Result<std::result::Result<super::DiffReport, String>> {
    let a = match side(a_ids, pages)? {
        Ok(s) => s,
        Err(why) => return fallback(why),
    };
    let b = match side(b_ids, pages)? {
        Ok(s) => s,
        Err(why) => return fallback(why),
    };
    if a.h.encoding != 1 || b.h.encoding != 1 {
        return fallback("the database is not UTF-8");
    }
    if a.h.page_size != b.h.page_size || a.h.usable != b.h.usable {
        return fallback("the page size changed");
    }
    let (sa, sb) = (schema(&a, pages)?, schema(&b, pages)?);
    let (ta, tb) = (tables(&sa), tables(&sb));
    let same = ta.len() == tb.len() && ta.iter().zip(&tb).all(|(x, y)| x.0 == y.0 && x.1 == y.1);
    if !same {
        return fallback("the schema differs");
    }
    // Every b-tree page and freelist page of each side, to class differing pages.
    let mut known_a = PageSet::new(a.h.page_count);
    let mut known_b = PageSet::new(b.h.page_count);
    let mut per_table = Vec::new();
    for ((name, sql, root_a), (_, _, root_b)) in ta.iter().zip(&tb) {
        let plan = match plan(name, sql, lumina)? {
            Ok(p) => p,
            Err(why) => return fallback(why),
        };
        let (table_a, rows_a) = row_pages(&a, *root_a, pages, &mut known_a)?;
        let (table_b, rows_b) = row_pages(&b, *root_b, pages, &mut known_b)?;
        if table_a == plan.without_rowid || table_b == plan.without_rowid {
            return Err(Error::corrupt(
                format!("table {name}"),
                "its b-tree is of the wrong kind",
            ));
        }
        per_table.push((plan, rows_a, rows_b));
    }
    let table_roots: HashSet<u32> = ta.iter().map(|t| t.2).collect();
    for e in sa
        .iter()
        .filter(|e| e.root > 0 && !table_roots.contains(&e.root))
    {
        row_pages(&a, e.root, pages, &mut known_a)?;
    }
    let table_roots: HashSet<u32> = tb.iter().map(|t| t.2).collect();
    for e in sb
        .iter()
        .filter(|e| e.root > 0 && !table_roots.contains(&e.root))
    {
        row_pages(&b, e.root, pages, &mut known_b)?;
    }
    row_pages(&a, 1, pages, &mut known_a)?;
    row_pages(&b, 1, pages, &mut known_b)?;
    for no in btree::freelist(&a.h, &mut |no| pages.get(a.ids, no))? {
        known_a.insert(no);
    }
    for no in btree::freelist(&b.h, &mut |no| pages.get(b.ids, no))? {
        known_b.insert(no);
    }

    let id_of = |s: &Side<'_>, no: u32| -> Option<ChunkId> {
        (no <= s.h.page_count)
            .then(|| s.ids.get(no as usize - 1).copied())
            .flatten()
    };
    let top = a.h.page_count.max(b.h.page_count);
    let mut differ = PageSet::new(top);
    let mut check_overflow = false;
    for no in (1..=top).filter(|&no| id_of(&a, no) != id_of(&b, no)) {
        differ.insert(no);
        let role_known = |known: &PageSet, s: &Side<'_>| no > s.h.page_count || known.contains(no);
        check_overflow |= !role_known(&known_a, &a) || !role_known(&known_b, &b);
    }

    let mut report = super::DiffReport::default();
    // Whether a shared page's overflow chains touch a differing page, by identity.
    let mut touches: HashMap<ChunkId, bool> = HashMap::new();
    for (plan, rows_a, rows_b) in per_table {
        on_table(&plan.name);
        let short = || Error::corrupt("database image", "short");
        // Pages with the same content on both sides cancel out: first those at
        // the same page number (nearly all of them), then the rest by identity.
        let mut cancel_a = PageSet::new(a.h.page_count);
        let mut cancel_b = PageSet::new(b.h.page_count);
        let mut in_b = PageSet::new(b.h.page_count);
        for &no in &rows_b {
            in_b.insert(no);
        }
        // The cancelled pairs, kept only to check their overflow chains.
        let mut pairs: Vec<(u32, u32)> = Vec::new();
        for &no in &rows_a {
            if in_b.contains(no)
                && id_of(&a, no).ok_or_else(short)? == id_of(&b, no).ok_or_else(short)?
            {
                cancel_a.insert(no);
                cancel_b.insert(no);
                if check_overflow {
                    pairs.push((no, no));
                }
            }
        }
        let mut rest: HashMap<ChunkId, (Vec<u32>, Vec<u32>)> = HashMap::new();
        for &no in rows_a.iter().filter(|&&no| !cancel_a.contains(no)) {
            rest.entry(id_of(&a, no).ok_or_else(short)?)
                .or_default()
                .0
                .push(no);
        }
        for &no in rows_b.iter().filter(|&&no| !cancel_b.contains(no)) {
            rest.entry(id_of(&b, no).ok_or_else(short)?)
                .or_default()
                .1
                .push(no);
        }
        for (on_a, on_b) in rest.values() {
            for (&x, &y) in on_a.iter().zip(on_b) {
                cancel_a.insert(x);
                cancel_b.insert(y);
                if check_overflow {
                    pairs.push((x, y));
                }
            }
        }
        if check_overflow {
            for (x, y) in pairs {
                let id = id_of(&a, x).ok_or_else(short)?;
                let bad = match touches.get(&id) {
                    Some(&t) => t,
                    None => {
                        let t = chain_touches(x, &a, pages, &differ)?;
                        touches.insert(id, t);
                        t
                    }
                };
                if bad {
                    cancel_a.remove(x);
                    cancel_b.remove(y);
                }
            }
        }
        let order = plan.order();
        let mut decode = |s: &Side<'_>,
                          list: &[u32],
                          cancel: &PageSet|
         -> Result<std::result::Result<Vec<Row>, String>> {
            let todo: Vec<u32> = list
                .iter()
                .copied()
                .filter(|&no| !cancel.contains(no))
                .collect();
            let mut rows = Vec::new();
            for (i, &no) in todo.iter().enumerate() {
                if i % READ_WINDOW == 0 {
                    let end = (i + READ_WINDOW).min(todo.len());
                    pages.prefetch(s.ids, &todo[i..end])?;
                }
                let bytes = pages.get(s.ids, no)?;
                let page = Page::parse(no, &bytes, s.h.usable)?;
                if page.kind.is_table() == plan.without_rowid
                    || (!plan.without_rowid && !page.kind.is_leaf())
                {
                    return Err(Error::corrupt(
                        format!("database page {no}"),
                        format!("is not a page of table {}", plan.name),
                    ));
                }
                for (rowid, payload) in btree::entries(&page, &s.h, &mut |n| pages.get(s.ids, n))? {
                    match plan.row(rowid, &payload, no)? {
                        Ok(r) => rows.push(r),
                        Err(why) => return fallback(why),
                    }
                }
            }
            rows.sort_by(|x, y| order.cmp_key(&x.key, &y.key).then(x.tie.cmp(&y.tie)));
            Ok(Ok(rows))
        };
        let old = match decode(&a, &rows_a, &cancel_a)? {
            Ok(r) => r,
            Err(why) => return fallback(why),
        };
        let new = match decode(&b, &rows_b, &cancel_b)? {
            Ok(r) => r,
            Err(why) => return fallback(why),
        };
        let d: TableDiff = super::diff_rows_ordered(
            &mut VecRows(old.into_iter()),
            &mut VecRows(new.into_iter()),
            &order,
        )?;
        report.tables.insert(plan.name.clone(), d);
    }
    Ok(Ok(report))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pages of a database file and a reader of them by id.
    fn pages_of(path: &std::path::Path) -> (Vec<ChunkId>, HashMap<ChunkId, Vec<u8>>) {
        let bytes = std::fs::read(path).expect("read db");
        let size = u16::from_be_bytes([bytes[16], bytes[17]]) as usize;
        let mut ids = Vec::new();
        let mut by_id = HashMap::new();
        for p in bytes.chunks(size) {
            let id = ChunkId(*blake3::hash(p).as_bytes());
            ids.push(id);
            by_id.insert(id, p.to_vec());
        }
        (ids, by_id)
    }

    /// A collation the in-memory replay cannot create: declined, naming the table.
    #[test]
    fn unknown_collation_declines() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let db = tmp.path().join("c.db");
        let c = rusqlite::Connection::open(&db).expect("db");
        c.execute_batch(
            "CREATE TABLE plain(k TEXT PRIMARY KEY, v);
             CREATE TABLE names(k TEXT PRIMARY KEY COLLATE nocase, v);
             INSERT INTO names VALUES ('a', 1);
             PRAGMA writable_schema = ON;
             UPDATE sqlite_schema SET sql = replace(sql, 'nocase', 'appnocase')
                 WHERE name = 'names';
             PRAGMA writable_schema = OFF;",
        )
        .expect("schema");
        drop(c);
        let (ids, by_id) = pages_of(&db);
        let mut read = |id: &ChunkId| -> Result<Vec<u8>> {
            by_id
                .get(id)
                .cloned()
                .ok_or_else(|| Error::corrupt("test page", "missing"))
        };
        match diff_pages(&ids, &ids, &mut read, false, &mut |_| {}).expect("diff") {
            Outcome::Fallback(why) => assert!(why.contains("names"), "{why}"),
            Outcome::Report(r) => panic!("expected a decline, got {r:?}"),
        }
    }
}
