//! The referential consistency check of a Lumina database: rows that point at rows
//! which do not exist (the findings of the app's old backup validator).
//!
//! Owns the definition of an orphan. Reports, never repairs, and never refuses: a
//! snapshot records these findings as warnings. A `NULL` reference is not an orphan.

use rusqlite::Connection;

use super::{require_table, with_read_snapshot, Error, Table};

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
struct Probe {
    count_sql: &'static str,
    examples_sql: &'static str,
    describe: fn(&str, &str) -> String,
}

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
fn display(v: rusqlite::types::ValueRef<'_>) -> String {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Null => "NULL".to_owned(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => f.to_string(),
        ValueRef::Text(t) | ValueRef::Blob(t) => String::from_utf8_lossy(t).into_owned(),
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
