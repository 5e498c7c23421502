//! Row-level differences between two states of a database, table by table, by
//! primary key (rowid for tables without one).
//!
//! Both sides are streams of rows in key order ([`RowSource`]); a merge join walks
//! them once, so memory holds one row per side plus the keys that differ, whatever
//! the table size. Sources: the JSON exports stored in Lumina snapshots
//! ([`JsonExportRows`]), or any SQLite table ([`SqliteRows`]).
//!
//! Keys compare as SQLite orders them with the BINARY collation: NULL, then
//! numbers, then text (bytewise), then blobs.

mod sources;

pub use sources::{sqlite_tables, JsonExportRows, SqliteRows};

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
    /// All columns by name.
    pub columns: Map<String, Value>,
}

/// A stream of rows in ascending key order.
pub trait RowSource {
    /// The next row, or `None` at the end.
    fn next_row(&mut self) -> Result<Option<Row>>;
}

/// The differences in one table.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
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
pub struct DiffReport {
    /// Table name → differences.
    pub tables: BTreeMap<String, TableDiff>,
}

fn type_rank(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) | Value::Number(_) => 1,
        Value::String(_) => 2,
        _ => 3,
    }
}

/// Orders one key value as SQLite's BINARY collation would.
pub fn cmp_value(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i.cmp(&j),
            _ => x
                .as_f64()
                .unwrap_or(0.0)
                .total_cmp(&y.as_f64().unwrap_or(0.0)),
        },
        (Value::String(x), Value::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        _ => type_rank(a)
            .cmp(&type_rank(b))
            .then_with(|| a.to_string().cmp(&b.to_string())),
    }
}

/// Orders keys column by column.
pub fn cmp_key(a: &[Value], b: &[Value]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        match cmp_value(x, y) {
            Ordering::Equal => continue,
            o => return o,
        }
    }
    a.len().cmp(&b.len())
}

fn key_json(key: &[Value]) -> Value {
    if key.len() == 1 {
        key[0].clone()
    } else {
        Value::Array(key.to_vec())
    }
}

/// Diffs two key-ordered streams (`old` → `new`). Fails if a stream is not in
/// ascending key order (a diff on a wrong order would be silently wrong).
pub fn diff_rows(old: &mut dyn RowSource, new: &mut dyn RowSource) -> Result<TableDiff> {
    let mut d = TableDiff::default();
    let mut a = old.next_row()?;
    let mut b = new.next_row()?;
    let mut last_a: Option<Vec<Value>> = None;
    let mut last_b: Option<Vec<Value>> = None;
    let check = |last: &mut Option<Vec<Value>>, row: &Option<Row>| -> Result<()> {
        if let Some(r) = row {
            if let Some(prev) = last.as_ref() {
                if cmp_key(prev, &r.key) != Ordering::Less {
                    return Err(crate::error::Error::BadInput(format!(
                        "rows are not in ascending key order at key {}",
                        key_json(&r.key)
                    )));
                }
            }
            *last = Some(r.key.clone());
        }
        Ok(())
    };
    check(&mut last_a, &a)?;
    check(&mut last_b, &b)?;
    loop {
        match (&a, &b) {
            (None, None) => break,
            (Some(x), None) => {
                d.removed.push(key_json(&x.key));
                a = old.next_row()?;
                check(&mut last_a, &a)?;
            }
            (None, Some(y)) => {
                d.added.push(key_json(&y.key));
                b = new.next_row()?;
                check(&mut last_b, &b)?;
            }
            (Some(x), Some(y)) => match cmp_key(&x.key, &y.key) {
                Ordering::Less => {
                    d.removed.push(key_json(&x.key));
                    a = old.next_row()?;
                    check(&mut last_a, &a)?;
                }
                Ordering::Greater => {
                    d.added.push(key_json(&y.key));
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
                        d.changed.push(key_json(&x.key));
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
    fn key_order_matches_sqlite() {
        let mut v = vec![
            json!("b"),
            json!(null),
            json!(10),
            json!("B"),
            json!(2),
            json!(1.5),
            json!("é"),
        ];
        v.sort_by(cmp_value);
        assert_eq!(
            v,
            vec![
                json!(null),
                json!(1.5),
                json!(2),
                json!(10),
                json!("B"),
                json!("b"),
                json!("é")
            ]
        );
    }
}
