//! The referential consistency check of a Lumina database: rows that point at rows
//! which do not exist (the findings of the app's old backup validator).
//!
//! Owns the definition of an orphan. Reports, never repairs, and never refuses: a
//! snapshot records these findings as warnings. A `NULL` reference is not an orphan.

use rusqlite::Connection;

use super::{require_table, with_read_snapshot};
use super::{Error, Table};

/// How many examples [`Consistency::examples`] keeps.
const MAX_EXAMPLES: usize = 10;

/// The findings of [`check_consistency`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Consistency {
    /// `metadata` rows whose `collectionId` names no collection.
    pub orphan_metadata: u64,
    /// `item_tags` rows whose `tagId` names no tag.
    pub orphan_relations: u64,
    /// `item_tags` rows whose `itemId` names no `metadata` row.
    pub orphan_relation_items: u64,
    /// Up to ten human-readable lines naming individual orphans.
    pub examples: Vec<String>,
}

impl Consistency {
    /// True when no orphan was found.
    #[cfg(test)]
    pub fn is_clean(&self) -> bool {
        self.orphan_metadata == 0 && self.orphan_relations == 0 && self.orphan_relation_items == 0
    }

    /// One line per kind of problem found, then the examples; empty when clean.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.orphan_metadata > 0 {
            out.push(format!(
                "{} metadata rows name a collection that does not exist",
                self.orphan_metadata
            ));
        }
        if self.orphan_relations > 0 {
            out.push(format!(
                "{} item_tags rows name a tag that does not exist",
                self.orphan_relations
            ));
        }
        if self.orphan_relation_items > 0 {
            out.push(format!(
                "{} item_tags rows name a metadata item that does not exist",
                self.orphan_relation_items
            ));
        }
        out.extend(self.examples.iter().map(|e| format!("  e.g. {e}")));
        out
    }
}

/// One kind of orphan: how to count them and how to list a few.
#[cfg(test)]
struct Probe {
    count_sql: &'static str,
    examples_sql: &'static str,
    describe: fn(&str, &str) -> String,
}

#[cfg(test)]
const PROBES: [Probe; 3] = [
    Probe {
        count_sql: "SELECT COUNT(*) FROM metadata m WHERE m.collectionId IS NOT NULL \
                    AND NOT EXISTS (SELECT 1 FROM collections c WHERE c.id = m.collectionId)",
        examples_sql:
            "SELECT m.id, m.collectionId FROM metadata m WHERE m.collectionId IS NOT NULL \
                       AND NOT EXISTS (SELECT 1 FROM collections c WHERE c.id = m.collectionId) \
                       ORDER BY m.id LIMIT ?1",
        describe: |id, target| format!("metadata `{id}` names missing collection `{target}`"),
    },
    Probe {
        count_sql: "SELECT COUNT(*) FROM item_tags r WHERE r.tagId IS NOT NULL \
                    AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.id = r.tagId)",
        examples_sql: "SELECT r.itemId, r.tagId FROM item_tags r WHERE r.tagId IS NOT NULL \
                       AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.id = r.tagId) \
                       ORDER BY r.itemId, r.tagId LIMIT ?1",
        describe: |id, target| format!("item_tags of `{id}` names missing tag `{target}`"),
    },
    Probe {
        count_sql: "SELECT COUNT(*) FROM item_tags r WHERE r.itemId IS NOT NULL \
                    AND NOT EXISTS (SELECT 1 FROM metadata m WHERE m.id = r.itemId)",
        examples_sql: "SELECT r.tagId, r.itemId FROM item_tags r WHERE r.itemId IS NOT NULL \
                       AND NOT EXISTS (SELECT 1 FROM metadata m WHERE m.id = r.itemId) \
                       ORDER BY r.itemId, r.tagId LIMIT ?1",
        describe: |tag, item| format!("item_tags with tag `{tag}` names missing item `{item}`"),
    },
];

/// Counts orphaned references in a Lumina database (all four tables must exist, else
/// [`Error::NotLumina`]). All counts come from one read transaction.
#[cfg(test)]
pub fn check_consistency(conn: &Connection) -> Result<Consistency, Error> {
    for t in Table::all() {
        require_table(conn, t)?;
    }
    with_read_snapshot(conn, || {
        let mut counts = [0u64; 3];
        let mut examples = Vec::new();
        for (probe, count) in PROBES.iter().zip(counts.iter_mut()) {
            let n: i64 = conn.query_row(probe.count_sql, [], |r| r.get(0))?;
            *count = u64::try_from(n).unwrap_or(0);
            let room = MAX_EXAMPLES.saturating_sub(examples.len());
            if *count == 0 || room == 0 {
                continue;
            }
            let mut stmt = conn.prepare(probe.examples_sql)?;
            let mut rows = stmt.query([i64::try_from(room).unwrap_or(0)])?;
            while let Some(row) = rows.next()? {
                let a = display(row.get_ref(0)?);
                let b = display(row.get_ref(1)?);
                examples.push((probe.describe)(&a, &b));
            }
        }
        Ok(Consistency {
            orphan_metadata: counts[0],
            orphan_relations: counts[1],
            orphan_relation_items: counts[2],
            examples,
        })
    })
}

/// A value as a short human string for the example lines.
#[cfg(test)]
fn display(v: rusqlite::types::ValueRef<'_>) -> String {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Null => "NULL".to_owned(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => f.to_string(),
        ValueRef::Text(t) | ValueRef::Blob(t) => String::from_utf8_lossy(t).into_owned(),
    }
}

/// The same findings as [`check_consistency`], gathered while the four tables are
/// streamed for export (collections and tags first, then metadata, then item_tags:
/// the order of [`Table::all`]) instead of by three extra queries. Holds the
/// collection and tag ids, and a 64-bit hash per metadata id (8 bytes a photo).
#[derive(Debug, Default)]
pub struct ConsistencyScan {
    collections: std::collections::HashSet<Vec<u8>>,
    tags: std::collections::HashSet<Vec<u8>>,
    items: Vec<u64>,
    items_sorted: bool,
    last_item: Option<(Vec<u8>, bool)>,
    columns: Option<(Table, usize, usize)>,
    result: Consistency,
}

fn id_hash(bytes: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

fn key_bytes(v: rusqlite::types::ValueRef<'_>) -> Option<Vec<u8>> {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(i.to_string().into_bytes()),
        ValueRef::Real(f) => Some(f.to_string().into_bytes()),
        ValueRef::Text(t) | ValueRef::Blob(t) => Some(t.to_vec()),
    }
}

impl ConsistencyScan {
    /// An empty scan.
    pub fn new() -> Self {
        Self::default()
    }

    fn example(&mut self, line: String) {
        if self.result.examples.len() < MAX_EXAMPLES {
            self.result.examples.push(line);
        }
    }

    /// Observes one exported row of `table`.
    pub fn observe(&mut self, table: Table, row: &rusqlite::Row<'_>) -> Result<(), Error> {
        let (a, b) = match table {
            Table::Collections | Table::Tags => ("id", "id"),
            Table::Metadata => ("id", "collectionId"),
            Table::ItemTags => ("itemId", "tagId"),
        };
        let (ia, ib) = match self.columns {
            Some((t, ia, ib)) if t == table => (ia, ib),
            _ => {
                let stmt = row.as_ref();
                let ia = stmt.column_index(a)?;
                let ib = stmt.column_index(b)?;
                self.columns = Some((table, ia, ib));
                (ia, ib)
            }
        };
        let first = key_bytes(row.get_ref(ia)?);
        let second = key_bytes(row.get_ref(ib)?);
        match table {
            Table::Collections => self.collections.extend(first),
            Table::Tags => self.tags.extend(first),
            Table::Metadata => {
                if let Some(id) = &first {
                    self.items.push(id_hash(id));
                }
                if let Some(col) = second {
                    if !self.collections.contains(&col) {
                        self.result.orphan_metadata += 1;
                        let id = first
                            .as_deref()
                            .map(String::from_utf8_lossy)
                            .unwrap_or_default();
                        let line = format!(
                            "metadata `{id}` names missing collection `{}`",
                            String::from_utf8_lossy(&col)
                        );
                        self.example(line);
                    }
                }
            }
            Table::ItemTags => {
                if !self.items_sorted {
                    self.items.sort_unstable();
                    self.items_sorted = true;
                }
                let item_str = first
                    .as_deref()
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default()
                    .into_owned();
                if let Some(tag) = &second {
                    if !self.tags.contains(tag) {
                        self.result.orphan_relations += 1;
                        let line = format!(
                            "item_tags of `{item_str}` names missing tag `{}`",
                            String::from_utf8_lossy(tag)
                        );
                        self.example(line);
                    }
                }
                if let Some(item) = first {
                    // Relations come sorted by item: check each item once.
                    let known = match &self.last_item {
                        Some((last, known)) if *last == item => *known,
                        _ => {
                            let known = self.items.binary_search(&id_hash(&item)).is_ok();
                            self.last_item = Some((item, known));
                            known
                        }
                    };
                    if !known {
                        self.result.orphan_relation_items += 1;
                        let tag = second
                            .as_deref()
                            .map(String::from_utf8_lossy)
                            .unwrap_or_default();
                        self.example(format!(
                            "item_tags with tag `{tag}` names missing item `{item_str}`"
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// The findings.
    pub fn finish(self) -> Consistency {
        self.result
    }

    /// Whether some `metadata` row names a collection not seen (call after the
    /// collections were observed).
    fn metadata_orphans(&self, conn: &Connection) -> Result<bool, Error> {
        let mut stmt = conn.prepare("SELECT collectionId FROM metadata")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            if let Some(c) = key_bytes(row.get_ref(0)?) {
                if !self.collections.contains(&c) {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// The same findings as observing every exported row, from the key and
    /// reference columns only (in one read transaction): what an export that
    /// renders only changed rows runs instead. The queries read the
    /// primary-key indexes and `metadata`'s `id` and `collectionId`.
    pub fn of_keys(conn: &Connection) -> Result<Consistency, Error> {
        for t in Table::all() {
            require_table(conn, t)?;
        }
        with_read_snapshot(conn, || {
            let mut scan = ConsistencyScan::new();
            for t in Table::all() {
                let cols = match t {
                    Table::Collections | Table::Tags => "id",
                    // Reading `collectionId` with `id` in `id` order reads the
                    // whole table; the references alone come from their index
                    // (where the app has one). Rows are read in full only when
                    // some reference is missing, for the examples.
                    Table::Metadata if !scan.metadata_orphans(conn)? => "id, NULL AS collectionId",
                    Table::Metadata => "id, collectionId",
                    Table::ItemTags => "itemId, tagId",
                };
                let sql = format!(
                    "SELECT {cols} FROM {} ORDER BY {}",
                    t.name(),
                    t.key_columns().join(", ")
                );
                let mut stmt = conn.prepare(&sql)?;
                let mut rows = stmt.query([])?;
                while let Some(row) = rows.next()? {
                    scan.observe(t, row)?;
                }
            }
            Ok(scan.finish())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::lumina_db;
    use super::*;

    #[test]
    fn counts_orphans_of_each_kind() {
        let (_dir, conn) = lumina_db(100);
        let c = check_consistency(&conn).expect("check");
        // Recount naively in Rust to cross-check the SQL.
        let (_, meta) = super::super::test_support::rows(&conn, Table::Metadata);
        let (_, cols) = super::super::test_support::rows(&conn, Table::Collections);
        let (_, tags) = super::super::test_support::rows(&conn, Table::Tags);
        let (_, rel) = super::super::test_support::rows(&conn, Table::ItemTags);
        use rusqlite::types::Value;
        let ids = |rows: &[Vec<Value>]| rows.iter().map(|r| r[0].clone()).collect::<Vec<_>>();
        let (col_ids, tag_ids, meta_ids) = (ids(&cols), ids(&tags), ids(&meta));
        let orphan_meta = meta
            .iter()
            .filter(|r| r[1] != Value::Null && !col_ids.contains(&r[1]))
            .count();
        let orphan_rel = rel.iter().filter(|r| !tag_ids.contains(&r[1])).count();
        let orphan_items = rel.iter().filter(|r| !meta_ids.contains(&r[0])).count();
        assert!(orphan_meta > 0 && orphan_rel > 0 && orphan_items > 0);
        assert_eq!(c.orphan_metadata, orphan_meta as u64);
        assert_eq!(c.orphan_relations, orphan_rel as u64);
        assert_eq!(c.orphan_relation_items, orphan_items as u64);
        assert_eq!(c.examples.len(), MAX_EXAMPLES);
        assert!(c.examples[0].contains("c-missing"), "{:?}", c.examples);
        let w = c.warnings();
        assert!(w[0].starts_with(&format!("{orphan_meta} metadata rows")));
        assert!(!c.is_clean());
    }

    #[test]
    fn streaming_scan_agrees_with_the_queries() {
        let (_dir, conn) = lumina_db(100);
        let mut scan = ConsistencyScan::new();
        for t in Table::all() {
            let mut sink = Vec::new();
            crate::export::write_json_observed(&conn, t, "ts", &mut sink, &mut |row| {
                scan.observe(t, row)
            })
            .expect("export");
        }
        let streamed = scan.finish();
        let queried = check_consistency(&conn).expect("check");
        assert_eq!(streamed.orphan_metadata, queried.orphan_metadata);
        assert_eq!(streamed.orphan_relations, queried.orphan_relations);
        assert_eq!(
            streamed.orphan_relation_items,
            queried.orphan_relation_items
        );
        assert!(!streamed.is_clean());
    }

    #[test]
    fn key_scan_equals_the_streaming_scan() {
        let (_dir, conn) = lumina_db(300);
        key_scan_agrees(&conn);
        // No metadata orphan: the key scan reads no metadata row.
        conn.execute_batch(
            "UPDATE metadata SET collectionId = 'c-1' WHERE collectionId = 'c-missing'",
        )
        .expect("fix");
        key_scan_agrees(&conn);
    }

    fn key_scan_agrees(conn: &Connection) {
        let mut scan = ConsistencyScan::new();
        for t in Table::all() {
            let mut sink = Vec::new();
            crate::export::write_json_observed(conn, t, "ts", &mut sink, &mut |row| {
                scan.observe(t, row)
            })
            .expect("export");
        }
        let streamed = scan.finish();
        assert!(!streamed.is_clean());
        assert_eq!(ConsistencyScan::of_keys(conn).expect("keys"), streamed);
    }

    #[test]
    fn clean_database_has_no_warnings() {
        let (_dir, conn) = lumina_db(0);
        let c = check_consistency(&conn).expect("check");
        assert!(c.is_clean());
        assert!(c.warnings().is_empty());
    }

    #[test]
    fn needs_lumina_tables() {
        let conn = Connection::open_in_memory().expect("open");
        assert!(matches!(
            check_consistency(&conn),
            Err(Error::NotLumina { .. })
        ));
    }
}
