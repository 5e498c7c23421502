//! Row-level differences between two states of a database, table by table, by
//! primary key (rowid for tables without one).
//!
//! Both sides are streams of rows in key order ([`RowSource`]); a merge join walks
//! them once, so memory holds one row per side plus the keys that differ, whatever
//! the table size. Sources: the JSON exports stored in Lumina snapshots
//! ([`JsonExportRows`]), or any SQLite table ([`SqliteRows`]).
//!
//! Keys compare exactly as SQLite orders them ([`order`]): NULL, then numbers,
//! then text under the key columns' collation, then blobs. A declared key need
//! not be unique in SQLite (NULLs in a non-integer primary key are legal): rows
//! whose key holds a NULL are told apart by their rowid ([`Tie`]).

pub mod order;
pub mod pages;
mod sources;

pub use order::{Collation, Encoding, KeyOrder};
pub use sources::{key_info, sqlite_tables, JsonExportRows, KeyInfo, SqliteRows};

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::Result;

/// One row: its key (one value per key column) and its columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Key values in key-column order.
    pub key: Vec<Value>,
    /// What tells apart rows whose key holds a NULL (`None` for the others).
    pub tie: Option<Tie>,
    /// All columns by name.
    pub columns: Map<String, Value>,
}

/// The identity of a row whose declared key holds a NULL (such keys need not be
/// unique). Rows without a tie sort before rows with one, for the same key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tie {
    /// The rowid (SQLite tables).
    Rowid(i64),
    /// Position among the rows with the same key (export files, which hold no rowid).
    Nth(u64),
}

/// A stream of rows in ascending key order.
pub trait RowSource {
    /// The next row, or `None` at the end.
    fn next_row(&mut self) -> Result<Option<Row>>;
}

/// The differences in one table. Keys are `serde_json` (1.x) values: a
/// one-column key is its value, a composite key an array (NULL is `null`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct TableDiff {
    /// Keys only in the newer state.
    pub added: Vec<Value>,
    /// Keys only in the older state.
    pub removed: Vec<Value>,
    /// Keys in both whose rows differ.
    pub changed: Vec<Value>,
    /// For each changed key (same order as `changed`), the columns that differ.
    pub changed_columns: Vec<Vec<String>>,
}

impl TableDiff {
    /// True when the table is identical.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// Differences per table (only tables that differ are listed... and tables present
/// on one side only, as all-added or all-removed).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct DiffReport {
    /// Table name → differences.
    pub tables: BTreeMap<String, TableDiff>,
}

fn key_json(key: &[Value], tie: Option<Tie>) -> Value {
    let k = if key.len() == 1 {
        key[0].clone()
    } else {
        Value::Array(key.to_vec())
    };
    match tie {
        None => k,
        Some(Tie::Rowid(r)) => serde_json::json!({"key": k, "rowid": r}),
        Some(Tie::Nth(n)) => serde_json::json!({"key": k, "nth": n}),
    }
}

fn cmp_row(order: &KeyOrder, a: &Row, b: &Row) -> Ordering {
    order.cmp_key(&a.key, &b.key).then(a.tie.cmp(&b.tie))
}

/// Diffs two streams in BINARY key order (`old` → `new`); see [`diff_rows_ordered`].
pub fn diff_rows(old: &mut dyn RowSource, new: &mut dyn RowSource) -> Result<TableDiff> {
    diff_rows_ordered(old, new, &KeyOrder::binary())
}

/// Diffs two streams in `order` (`old` → `new`). Fails if a stream is not in
/// strictly ascending (key, tie) order (a diff on a wrong order would be silently
/// wrong).
pub fn diff_rows_ordered(
    old: &mut dyn RowSource,
    new: &mut dyn RowSource,
    order: &KeyOrder,
) -> Result<TableDiff> {
    let mut d = TableDiff::default();
    let mut a = old.next_row()?;
    let mut b = new.next_row()?;
    let mut last_a: Option<Row> = None;
    let mut last_b: Option<Row> = None;
    let check = |last: &mut Option<Row>, row: &Option<Row>| -> Result<()> {
        if let Some(r) = row {
            if let Some(prev) = last.as_ref() {
                if cmp_row(order, prev, r) != Ordering::Less {
                    return Err(crate::error::Error::invalid_input(format!(
                        "rows are not in ascending key order at key {}",
                        key_json(&r.key, r.tie)
                    )));
                }
            }
            *last = Some(Row {
                key: r.key.clone(),
                tie: r.tie,
                columns: Map::new(),
            });
        }
        Ok(())
    };
    check(&mut last_a, &a)?;
    check(&mut last_b, &b)?;
    loop {
        match (&a, &b) {
            (None, None) => break,
            (Some(x), None) => {
                d.removed.push(key_json(&x.key, x.tie));
                a = old.next_row()?;
                check(&mut last_a, &a)?;
            }
            (None, Some(y)) => {
                d.added.push(key_json(&y.key, y.tie));
                b = new.next_row()?;
                check(&mut last_b, &b)?;
            }
            (Some(x), Some(y)) => match cmp_row(order, x, y) {
                Ordering::Less => {
                    d.removed.push(key_json(&x.key, x.tie));
                    a = old.next_row()?;
                    check(&mut last_a, &a)?;
                }
                Ordering::Greater => {
                    d.added.push(key_json(&y.key, y.tie));
                    b = new.next_row()?;
                    check(&mut last_b, &b)?;
                }
                Ordering::Equal => {
                    if x.columns != y.columns {
                        let mut cols: Vec<String> = x
                            .columns
                            .iter()
                            .filter(|(k, v)| y.columns.get(*k) != Some(*v))
                            .map(|(k, _)| k.clone())
                            .collect();
                        cols.extend(
                            y.columns
                                .keys()
                                .filter(|k| !x.columns.contains_key(*k))
                                .cloned(),
                        );
                        d.changed.push(key_json(&x.key, x.tie));
                        d.changed_columns.push(cols);
                    }
                    a = old.next_row()?;
                    b = new.next_row()?;
                    check(&mut last_a, &a)?;
                    check(&mut last_b, &b)?;
                }
            },
        }
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct VecRows(std::vec::IntoIter<Row>);
    impl RowSource for VecRows {
        fn next_row(&mut self) -> Result<Option<Row>> {
            Ok(self.0.next())
        }
    }

    fn row(id: Value, tag: &str) -> Row {
        let mut columns = Map::new();
        columns.insert("id".into(), id.clone());
        columns.insert("tag".into(), json!(tag));
        Row {
            key: vec![id],
            tie: None,
            columns,
        }
    }

    #[test]
    fn merge_names_added_removed_changed() {
        let old = vec![
            row(json!("a"), "x"),
            row(json!("b"), "x"),
            row(json!("c"), "x"),
        ];
        let new = vec![
            row(json!("b"), "y"),
            row(json!("c"), "x"),
            row(json!("d"), "x"),
        ];
        let d =
            diff_rows(&mut VecRows(old.into_iter()), &mut VecRows(new.into_iter())).expect("diff");
        assert_eq!(d.removed, vec![json!("a")]);
        assert_eq!(d.added, vec![json!("d")]);
        assert_eq!(d.changed, vec![json!("b")]);
        assert_eq!(d.changed_columns, vec![vec!["tag".to_string()]]);
    }

    #[test]
    fn out_of_order_input_is_an_error() {
        let old = vec![row(json!("b"), "x"), row(json!("a"), "x")];
        let r = diff_rows(
            &mut VecRows(old.into_iter()),
            &mut VecRows(Vec::new().into_iter()),
        );
        assert!(r.is_err());
    }

    #[test]
    fn null_keys_are_told_apart_by_their_tie() {
        let with_tie = |tie: i64, tag: &str| Row {
            tie: Some(Tie::Rowid(tie)),
            ..row(json!(null), tag)
        };
        let old = vec![with_tie(1, "x"), with_tie(2, "x"), row(json!("a"), "x")];
        let new = vec![
            with_tie(1, "x"),
            with_tie(2, "y"),
            with_tie(3, "x"),
            row(json!("a"), "x"),
        ];
        let d =
            diff_rows(&mut VecRows(old.into_iter()), &mut VecRows(new.into_iter())).expect("diff");
        assert_eq!(d.changed, vec![json!({"key": null, "rowid": 2})]);
        assert_eq!(d.added, vec![json!({"key": null, "rowid": 3})]);
        assert!(d.removed.is_empty());
        // The same key twice without a tie is still an ordering error.
        let dup = vec![row(json!(null), "x"), row(json!(null), "y")];
        assert!(diff_rows(
            &mut VecRows(dup.into_iter()),
            &mut VecRows(Vec::new().into_iter())
        )
        .is_err());
    }
}
