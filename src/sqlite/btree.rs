//! A small decoder of SQLite b-tree pages (file-format doc §1.3, §1.6): the
//! database header, page headers, cell pointer arrays, table and index cells,
//! overflow chains, the freelist, and a walk of a b-tree that reads its interior
//! pages only.
//!
//! Pages come from disk or from a repository: every offset is checked against the
//! page and every page number against the page count, chains and walks are guarded
//! against cycles and runaway lengths, and damage is an [`Error::corrupt`] naming
//! the page. Nothing here panics on any input.

use std::collections::HashSet;

use crate::error::{Error, Result};

/// Reads page `no` (1-based) of the image.
pub type ReadPage<'a> = dyn FnMut(u32) -> Result<Vec<u8>> + 'a;

fn corrupt(no: u32, what: impl std::fmt::Display) -> Error {
    Error::corrupt(format!("database page {no}"), what)
}

fn u16_at(b: &[u8], at: usize, no: u32) -> Result<u16> {
    b.get(at..at + 2)
        .map(|s| u16::from_be_bytes([s[0], s[1]]))
        .ok_or_else(|| corrupt(no, "too short"))
}

fn u32_at(b: &[u8], at: usize, no: u32) -> Result<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or_else(|| corrupt(no, "too short"))
}

/// The fields of the 100-byte database header this decoder needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Page size in bytes (512..=65536).
    pub page_size: u32,
    /// Usable bytes per page (page size minus the reserved bytes, offset 20).
    pub usable: u32,
    /// Pages in the database (offset 28).
    pub page_count: u32,
    /// First freelist trunk page (0: none).
    pub freelist_trunk: u32,
    /// Pages on the freelist.
    pub freelist_count: u32,
    /// Text encoding: 1 UTF-8, 2 UTF-16le, 3 UTF-16be.
    pub encoding: u32,
}

/// Reads the header from page 1; `image_pages` is how many pages the image has
/// (the header's count is trusted only when it agrees, as SQLite does).
pub fn header(page1: &[u8], image_pages: u32) -> Result<Header> {
    if page1.get(..16) != Some(crate::sqlite::SQLITE_MAGIC.as_slice()) {
        return Err(corrupt(1, "is not a SQLite 3 header"));
    }
    let raw = u16_at(page1, 16, 1)?;
    let page_size = if raw == 1 { 65536 } else { u32::from(raw) };
    if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
        return Err(corrupt(1, format!("has page size {page_size}")));
    }
    let reserved = u32::from(*page1.get(20).ok_or_else(|| corrupt(1, "too short"))?);
    let usable = page_size - reserved;
    if usable < 480 {
        return Err(corrupt(
            1,
            format!("has {reserved} reserved bytes per page"),
        ));
    }
    let counted = u32_at(page1, 28, 1)?;
    let valid_for = u32_at(page1, 92, 1)?;
    let version = u32_at(page1, 24, 1)?;
    // A count older than the change counter (written by an old SQLite) is not trusted.
    let page_count = if counted != 0 && valid_for == version && counted <= image_pages {
        counted
    } else {
        image_pages
    };
    Ok(Header {
        page_size,
        usable,
        page_count,
        freelist_trunk: u32_at(page1, 32, 1)?,
        freelist_count: u32_at(page1, 36, 1)?,
        encoding: u32_at(page1, 56, 1)?,
    })
}

/// The four kinds of b-tree page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 0x05.
    TableInterior,
    /// 0x0d.
    TableLeaf,
    /// 0x02.
    IndexInterior,
    /// 0x0a.
    IndexLeaf,
}

impl Kind {
    /// A leaf page.
    pub fn is_leaf(self) -> bool {
        matches!(self, Kind::TableLeaf | Kind::IndexLeaf)
    }
    /// A page of a table (rowid) b-tree.
    pub fn is_table(self) -> bool {
        matches!(self, Kind::TableLeaf | Kind::TableInterior)
    }
}

/// One parsed b-tree page (borrowing its bytes).
#[derive(Debug)]
pub struct Page<'a> {
    /// Page number.
    pub no: u32,
    /// Its kind.
    pub kind: Kind,
    data: &'a [u8],
    usable: usize,
    cells_at: usize,
    /// Number of cells.
    pub count: usize,
    /// The right-most child (interior pages).
    pub right: Option<u32>,
}

/// One cell: the rowid (table pages), and the payload (leaf cells, index cells).
#[derive(Debug, Clone)]
pub struct Cell<'a> {
    /// The left child (interior pages).
    pub child: Option<u32>,
    /// The rowid (table pages).
    pub rowid: Option<i64>,
    /// Total payload length.
    pub payload_len: u64,
    /// The part of the payload stored on the page.
    pub local: &'a [u8],
    /// The first overflow page, if the payload spills.
    pub overflow: Option<u32>,
}

impl<'a> Page<'a> {
    /// Parses the page header and checks the cell pointer array's bounds.
    pub fn parse(no: u32, data: &'a [u8], usable: u32) -> Result<Self> {
        let usable = usable as usize;
        if data.len() < usable {
            return Err(corrupt(no, "is shorter than the usable page size"));
        }
        let h = if no == 1 { 100 } else { 0 };
        let kind = match data.get(h) {
            Some(0x05) => Kind::TableInterior,
            Some(0x0d) => Kind::TableLeaf,
            Some(0x02) => Kind::IndexInterior,
            Some(0x0a) => Kind::IndexLeaf,
            other => {
                return Err(corrupt(
                    no,
                    format!("is not a b-tree page (type byte {other:?})"),
                ))
            }
        };
        let count = usize::from(u16_at(data, h + 3, no)?);
        let (right, cells_at) = if kind.is_leaf() {
            (None, h + 8)
        } else {
            (Some(u32_at(data, h + 8, no)?), h + 12)
        };
        if cells_at + 2 * count > usable {
            return Err(corrupt(no, format!("has {count} cells, more than fit")));
        }
        Ok(Page {
            no,
            kind,
            data,
            usable,
            cells_at,
            count,
            right,
        })
    }

    /// Child page numbers in key order (interior pages; empty for leaves).
    pub fn children(&self) -> Result<Vec<u32>> {
        let Some(right) = self.right else {
            return Ok(Vec::new());
        };
        let mut out = Vec::with_capacity(self.count + 1);
        for i in 0..self.count {
            out.push(self.cell(i)?.child.unwrap_or(0));
        }
        out.push(right);
        Ok(out)
    }

    fn cell_offset(&self, i: usize) -> Result<usize> {
        let at = usize::from(u16_at(self.data, self.cells_at + 2 * i, self.no)?);
        if at < self.cells_at + 2 * self.count || at >= self.usable {
            return Err(corrupt(
                self.no,
                format!("cell {i} at offset {at} is outside the page"),
            ));
        }
        Ok(at)
    }

    /// Cell `i`.
    pub fn cell(&self, i: usize) -> Result<Cell<'a>> {
        let no = self.no;
        let mut at = self.cell_offset(i)?;
        let end = self.usable;
        let data = &self.data[..end];
        let var = |at: &mut usize| -> Result<u64> {
            let (v, n) = super::record::varint(&data[*at..]).map_err(|e| corrupt(no, e))?;
            *at += n;
            Ok(v)
        };
        let child = if self.kind.is_leaf() {
            None
        } else {
            let c = u32_at(data, at, no)?;
            at += 4;
            Some(c)
        };
        if self.kind == Kind::TableInterior {
            let rowid = var(&mut at)? as i64;
            return Ok(Cell {
                child,
                rowid: Some(rowid),
                payload_len: 0,
                local: &[],
                overflow: None,
            });
        }
        let payload_len = var(&mut at)?;
        let rowid = if self.kind == Kind::TableLeaf {
            Some(var(&mut at)? as i64)
        } else {
            None
        };
        let local = local_len(self.kind, payload_len, self.usable as u64);
        let local_end = at
            .checked_add(local)
            .filter(|&e| e <= end)
            .ok_or_else(|| corrupt(no, format!("cell {i} runs past the page")))?;
        let overflow = if (local as u64) < payload_len {
            Some(u32_at(data, local_end, no)?)
        } else {
            None
        };
        Ok(Cell {
            child,
            rowid,
            payload_len,
            local: &data[at..local_end],
            overflow,
        })
    }
}

/// How much of a payload of `p` bytes is stored on a page of `kind` (§1.6).
fn local_len(kind: Kind, p: u64, u: u64) -> usize {
    let x = if kind == Kind::TableLeaf {
        u - 35
    } else {
        (u - 12) * 64 / 255 - 23
    };
    let m = (u - 12) * 32 / 255 - 23;
    let n = if p <= x {
        p
    } else {
        let k = m + (p - m) % (u - 4);
        if k <= x {
            k
        } else {
            m
        }
    };
    n as usize
}

/// The overflow pages of a cell, in chain order (read through `read`).
pub fn overflow_pages(cell: &Cell<'_>, h: &Header, read: &mut ReadPage<'_>) -> Result<Vec<u32>> {
    let mut pages = Vec::new();
    follow(cell, h, read, &mut |no, _| {
        pages.push(no);
    })?;
    Ok(pages)
}

/// The whole payload of a cell, its overflow chain read through `read`.
pub fn payload(cell: &Cell<'_>, h: &Header, read: &mut ReadPage<'_>) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(cell.local.len());
    out.extend_from_slice(cell.local);
    follow(cell, h, read, &mut |_, part| out.extend_from_slice(part))?;
    Ok(out)
}

fn follow(
    cell: &Cell<'_>,
    h: &Header,
    read: &mut ReadPage<'_>,
    each: &mut dyn FnMut(u32, &[u8]),
) -> Result<()> {
    let Some(first) = cell.overflow else {
        return Ok(());
    };
    let per = u64::from(h.usable - 4);
    let mut left = cell.payload_len - cell.local.len() as u64;
    // A payload cannot be larger than the database.
    if left > u64::from(h.page_count) * per {
        return Err(corrupt(first, "overflow chain longer than the database"));
    }
    let mut no = first;
    let mut seen = HashSet::new();
    while left > 0 {
        if no == 0 || no > h.page_count || !seen.insert(no) {
            return Err(corrupt(
                no,
                "overflow chain points outside the database or loops",
            ));
        }
        let page = read(no)?;
        let next = u32_at(&page, 0, no)?;
        let take = left.min(per) as usize;
        let part = page
            .get(4..4 + take)
            .ok_or_else(|| corrupt(no, "overflow page too short"))?;
        each(no, part);
        left -= take as u64;
        no = next;
    }
    Ok(())
}

/// The pages of one b-tree, found by reading its interior pages only.
#[derive(Debug, Default)]
pub struct TreePages {
    /// Whether it is a table (rowid) b-tree.
    pub table: bool,
    /// Interior pages (index b-trees hold entries there too).
    pub interior: Vec<u32>,
    /// Leaf pages in key order. SQLite's b-trees keep every leaf at the same
    /// depth, so a level whose first page is a leaf is all leaves: those pages are
    /// not read here (decoding one checks its kind).
    pub leaves: Vec<u32>,
}

/// Walks the b-tree rooted at `root` level by level.
pub fn walk(root: u32, h: &Header, read: &mut ReadPage<'_>) -> Result<TreePages> {
    let mut out = TreePages::default();
    let mut seen: HashSet<u32> = HashSet::new();
    let mut level = vec![root];
    for depth in 0.. {
        if depth > 64 {
            return Err(corrupt(root, "b-tree deeper than 64 levels"));
        }
        for &no in &level {
            if no == 0 || no > h.page_count || !seen.insert(no) {
                return Err(corrupt(
                    no,
                    format!("b-tree of root {root} points outside the database or loops"),
                ));
            }
        }
        let first = read(level[0])?;
        let first = Page::parse(level[0], &first, h.usable)?;
        if depth == 0 {
            out.table = first.kind.is_table();
        }
        if first.kind.is_table() != out.table {
            return Err(corrupt(first.no, "mixes table and index pages"));
        }
        if first.kind.is_leaf() {
            out.leaves = level;
            return Ok(out);
        }
        let mut next = Vec::new();
        for &no in &level {
            let bytes = read(no)?;
            let p = Page::parse(no, &bytes, h.usable)?;
            if p.kind.is_leaf() || p.kind.is_table() != out.table {
                return Err(corrupt(no, "b-tree levels are uneven"));
            }
            next.extend(p.children()?);
            out.interior.push(no);
        }
        level = next;
    }
    unreachable!("the loop returns")
}

/// Every page of the freelist (trunks and leaves).
pub fn freelist(h: &Header, read: &mut ReadPage<'_>) -> Result<Vec<u32>> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut trunk = h.freelist_trunk;
    while trunk != 0 {
        if trunk > h.page_count || !seen.insert(trunk) || out.len() > h.page_count as usize {
            return Err(corrupt(
                trunk,
                "freelist points outside the database or loops",
            ));
        }
        let page = read(trunk)?;
        out.push(trunk);
        let n = u32_at(&page, 4, trunk)? as usize;
        if 8 + 4 * n > h.usable as usize {
            return Err(corrupt(trunk, format!("freelist trunk lists {n} pages")));
        }
        for i in 0..n {
            out.push(u32_at(&page, 8 + 4 * i, trunk)?);
        }
        trunk = u32_at(&page, 0, trunk)?;
    }
    Ok(out)
}

/// The entries of a b-tree page: `(rowid, payload)` of each cell holding one
/// (table leaves; every cell of an index page), overflow read through `read`.
pub fn entries(
    page: &Page<'_>,
    h: &Header,
    read: &mut ReadPage<'_>,
) -> Result<Vec<(Option<i64>, Vec<u8>)>> {
    if page.kind == Kind::TableInterior {
        return Ok(Vec::new());
    }
    let mut out = Vec::with_capacity(page.count);
    for i in 0..page.count {
        let c = page.cell(i)?;
        out.push((c.rowid, payload(&c, h, read)?));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn h(page_size: u32, pages: u32) -> Header {
        Header {
            page_size,
            usable: page_size,
            page_count: pages,
            freelist_trunk: 0,
            freelist_count: 0,
            encoding: 1,
        }
    }

    /// Every row of a real database's table, read from its file's pages, equals
    /// what SQLite returns (overflowing blobs and text, NULLs, page sizes).
    #[test]
    fn real_database_pages_decode_as_sqlite_reads_them() {
        for page_size in [512u32, 4096, 65536] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("t.db");
            let c = rusqlite::Connection::open(&path).unwrap();
            c.execute_batch(&format!(
                "PRAGMA page_size={page_size}; CREATE TABLE t(id INTEGER PRIMARY KEY, a, b);"
            ))
            .unwrap();
            for i in 0..300i64 {
                let blob = vec![(i % 256) as u8; (i as usize * 37) % 90_000];
                let a: rusqlite::types::Value = match i % 4 {
                    0 => rusqlite::types::Value::Null,
                    1 => (i * 1_000_000_007).into(),
                    2 => (i as f64 / 3.0).into(),
                    _ => "é".repeat(i as usize * 11).into(),
                };
                c.execute(
                    "INSERT INTO t VALUES (?1, ?2, ?3)",
                    rusqlite::params![i, a, blob],
                )
                .unwrap();
            }
            let root: u32 = c
                .query_row(
                    "SELECT rootpage FROM sqlite_schema WHERE name='t'",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            drop(c);
            let file = std::fs::read(&path).unwrap();
            let n = (file.len() / page_size as usize) as u32;
            let hd = header(&file[..page_size as usize], n).unwrap();
            assert_eq!(hd.page_size, page_size);
            let mut read = |no: u32| -> Result<Vec<u8>> {
                let s = (no as usize - 1) * page_size as usize;
                Ok(file[s..s + page_size as usize].to_vec())
            };
            let tree = walk(root, &hd, &mut read).unwrap();
            let mut got = Vec::new();
            for no in tree.leaves {
                let bytes = read(no).unwrap();
                let p = Page::parse(no, &bytes, hd.usable).unwrap();
                for (rowid, payload) in entries(&p, &hd, &mut read).unwrap() {
                    let mut v = super::super::record::decode(&payload).unwrap();
                    v[0] = super::super::record::Val::Int(rowid.unwrap());
                    got.push(v);
                }
            }
            let c = rusqlite::Connection::open(&path).unwrap();
            let mut st = c.prepare("SELECT id, a, b FROM t ORDER BY id").unwrap();
            let want: Vec<Vec<rusqlite::types::Value>> = st
                .query_map([], |r| Ok(vec![r.get(0)?, r.get(1)?, r.get(2)?]))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            let got: Vec<Vec<rusqlite::types::Value>> = got
                .iter()
                .map(|row| {
                    row.iter()
                        .map(|v| rusqlite::types::Value::from(v.as_ref()))
                        .collect()
                })
                .collect();
            assert_eq!(got, want, "page size {page_size}");
        }
    }

    proptest! {
        #[test]
        fn random_pages_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 512..=512),
            no in 1u32..4,
        ) {
            let hd = h(512, 3);
            if let Ok(p) = Page::parse(no, &bytes, 512) {
                let _ = p.children();
                let pages = [bytes.clone(), bytes.clone(), bytes.clone()];
                let mut read = |n: u32| -> Result<Vec<u8>> {
                    pages.get(n as usize - 1).cloned().ok_or_else(|| corrupt(n, "none"))
                };
                let _ = entries(&p, &hd, &mut read);
                let _ = walk(no, &hd, &mut read);
                let _ = freelist(&hd, &mut read);
            }
            let _ = header(&bytes, 3);
        }
    }
}
