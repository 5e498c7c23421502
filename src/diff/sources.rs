//! Row sources for the diff: the JSON export files of a snapshot, and SQLite tables.

use std::io::BufRead;

use rusqlite::types::ValueRef;
use rusqlite::Connection;
use serde_json::{Map, Value};

use super::{Collation, Encoding, KeyOrder, Row, RowSource, Tie};
use crate::error::{Error, Result};

/// Rows of one of lumina-backup's own JSON export files (one row per line, as
/// `export::write_json` writes them), read as a stream.
pub struct JsonExportRows<R: BufRead> {
    reader: R,
    key_columns: Vec<String>,
    line: String,
    started: bool,
    name: String,
    /// The last key that held a NULL, and how many rows had it so far.
    last_null_key: Option<(Vec<Value>, u64)>,
}

impl<R: BufRead> JsonExportRows<R> {
    /// Reads rows keyed by `key_columns`; `name` is used in error messages.
    pub fn new(reader: R, key_columns: &[&str], name: &str) -> Self {
        JsonExportRows {
            reader,
            key_columns: key_columns.iter().map(|s| s.to_string()).collect(),
            line: String::new(),
            started: false,
            name: name.to_string(),
            last_null_key: None,
        }
    }
}

impl<R: BufRead> RowSource for JsonExportRows<R> {
    fn next_row(&mut self) -> Result<Option<Row>> {
        loop {
            self.line.clear();
            let n = self
                .reader
                .read_line(&mut self.line)
                .map_err(|e| Error::io("reading", &self.name, e))?;
            if n == 0 {
                return Ok(None);
            }
            let text = self.line.trim_end();
            if !self.started {
                // The header line: `{"version":"1.0.0",...,"<array>":[`.
                if !text.starts_with("{\"version\":\"1.0.0\"") {
                    return Err(Error::invalid_input(format!(
                        "{} is not a version 1.0.0 export",
                        self.name
                    )));
                }
                self.started = true;
                continue;
            }
            let text = text.strip_suffix(',').unwrap_or(text);
            if !text.starts_with('{') {
                continue; // the closing `]}`
            }
            let columns: Map<String, Value> = match serde_json::from_str(text) {
                Ok(c) => c,
                Err(_) => lenient_row(text).map_err(|e| {
                    Error::corrupt(self.name.clone(), format!("row does not parse: {e}"))
                })?,
            };
            let key: Vec<Value> = self
                .key_columns
                .iter()
                .map(|k| columns.get(k).cloned().unwrap_or(Value::Null))
                .collect();
            // Keys with a NULL need not be unique: the n-th row with that key.
            let tie = if key.iter().any(Value::is_null) {
                let n = match self.last_null_key.take() {
                    Some((k, n)) if k == key => n + 1,
                    _ => 0,
                };
                self.last_null_key = Some((key.clone(), n));
                Some(Tie::Nth(n))
            } else {
                None
            };
            return Ok(Some(Row { key, tie, columns }));
        }
    }
}

/// One line of a JSON export parsed as [`JsonExportRows`] reads it.
pub(crate) fn export_row(text: &str, name: &str) -> Result<Map<String, Value>> {
    match serde_json::from_str(text) {
        Ok(c) => Ok(c),
        Err(_) => lenient_row(text)
            .map_err(|e| Error::corrupt(name.to_string(), format!("row does not parse: {e}"))),
    }
}

/// A row holding values `serde_json::Value` cannot (`1e999`, how exports write
/// infinity, or such numbers inside a JSON column): those values are kept as
/// tagged raw text, equal only to the same text.
fn lenient_row(text: &str) -> serde_json::Result<Map<String, Value>> {
    type Raw = Box<serde_json::value::RawValue>;
    let cells: std::collections::BTreeMap<String, Raw> = serde_json::from_str(text)?;
    let mut out = Map::new();
    for (k, v) in cells {
        let t = v.get();
        let value = match serde_json::from_str::<Value>(t) {
            Ok(v) => v,
            Err(_) if t == "1e999" => real_tag("inf"),
            Err(_) if t == "-1e999" => real_tag("-inf"),
            Err(_) => Value::Array(vec![Value::String("json".into()), Value::String(t.into())]),
        };
        out.insert(k, value);
    }
    Ok(out)
}

fn real_tag(which: &str) -> Value {
    Value::Array(vec![
        Value::String("real".into()),
        Value::String(which.into()),
    ])
}

/// Names of the ordinary tables of a database, sorted.
pub fn sqlite_tables(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND sql NOT LIKE 'CREATE VIRTUAL%' ORDER BY name")
        .map_err(|e| Error::sqlite("database", e))?;
    let names = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| Error::sqlite("database", e))?;
    Ok(names)
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

pub(crate) fn to_json(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::from(i),
        ValueRef::Real(f) => match serde_json::Number::from_f64(f) {
            Some(n) => Value::Number(n),
            // Infinities (SQLite has no NaN): tagged so they equal nothing else.
            None => real_tag(if f > 0.0 { "inf" } else { "-inf" }),
        },
        ValueRef::Text(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Array(vec![
            Value::String("blob".into()),
            Value::String(hex::encode(b)),
        ]),
    }
}

/// How a table is keyed: its declared primary key (or the rowid), the key
/// columns' collations, and whether rows can be told apart by rowid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// Key column names (`rowid` for a table without a declared key).
    pub columns: Vec<String>,
    /// The key's own order (collations of its columns, database encoding).
    pub order: KeyOrder,
    /// A name that reads the rowid (`rowid`, `_rowid_` or `oid`, whichever no
    /// column shadows), for a rowid table with a declared key.
    pub(crate) rowid: Option<String>,
    /// The table has no declared key: rows are keyed by rowid.
    pub(crate) by_rowid: bool,
}

/// Reads how `table` is keyed.
pub fn key_info(conn: &Connection, table: &str) -> Result<KeyInfo> {
    let sq = |e| Error::sqlite(table, e);
    let mut pk: Vec<(i64, String)> = Vec::new();
    let mut all: Vec<String> = Vec::new();
    {
        let mut info = conn
            .prepare(&format!("PRAGMA table_info({})", quote(table)))
            .map_err(sq)?;
        let mut rows = info.query([]).map_err(sq)?;
        while let Some(r) = rows.next().map_err(sq)? {
            let name: String = r.get(1).map_err(sq)?;
            let pos: i64 = r.get(5).map_err(sq)?;
            if pos > 0 {
                pk.push((pos, name.clone()));
            }
            all.push(name);
        }
    }
    pk.sort();
    let encoding: String = conn
        .query_row("PRAGMA encoding", [], |r| r.get(0))
        .map_err(sq)?;
    let encoding = Encoding::from_pragma(&encoding);
    if pk.is_empty() {
        return Ok(KeyInfo {
            columns: vec!["rowid".into()],
            order: KeyOrder {
                collations: Vec::new(),
                encoding,
            },
            rowid: None,
            by_rowid: true,
        });
    }
    let columns: Vec<String> = pk.into_iter().map(|(_, n)| n).collect();
    let colls = pk_collations(conn, table).unwrap_or_default();
    let collations = columns
        .iter()
        .map(|c| {
            colls
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(c))
                .and_then(|(_, coll)| Collation::from_name(coll))
                .unwrap_or_default()
        })
        .collect();
    // A WITHOUT ROWID table has no rowid (and its key cannot hold NULLs).
    let rowid = ["rowid", "_rowid_", "oid"]
        .into_iter()
        .find(|r| !all.iter().any(|c| c.eq_ignore_ascii_case(r)))
        .filter(|r| {
            conn.prepare(&format!("SELECT {r} FROM {} LIMIT 0", quote(table)))
                .is_ok()
        })
        .map(String::from);
    Ok(KeyInfo {
        columns,
        order: KeyOrder {
            collations,
            encoding,
        },
        rowid,
        by_rowid: false,
    })
}

/// `(column, collation name)` of the primary key's index (none for an INTEGER
/// PRIMARY KEY, which has no index and holds integers only).
fn pk_collations(conn: &Connection, table: &str) -> rusqlite::Result<Vec<(String, String)>> {
    let index: Option<String> = conn
        .prepare(&format!("PRAGMA index_list({})", quote(table)))?
        .query_map([], |r| Ok((r.get::<_, String>(1)?, r.get::<_, String>(3)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?
        .into_iter()
        .find(|(_, origin)| origin == "pk")
        .map(|(name, _)| name);
    let Some(index) = index else {
        return Ok(Vec::new());
    };
    let out = conn
        .prepare(&format!("PRAGMA index_xinfo({})", quote(&index)))?
        .query_map([], |r| {
            Ok((
                r.get::<_, Option<String>>(2)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, i64>(5)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?
        .into_iter()
        .filter_map(|(name, coll, key)| match (name, coll) {
            (Some(n), Some(c)) if key == 1 => Some((n, c)),
            _ => None,
        })
        .collect();
    Ok(out)
}

/// Rows of one SQLite table in key order: the declared primary key under
/// `order`'s collations (rowid for tables without one); rows whose key holds a
/// NULL come with their rowid as [`Tie`].
pub struct SqliteRows<'c> {
    rows: rusqlite::Rows<'c>,
    names: Vec<String>,
    key_idx: Vec<usize>,
    /// The last column is the tie (rowid when the key holds a NULL).
    tie: bool,
}

impl<'c> SqliteRows<'c> {
    /// Prepares the statement reading `table` keyed as `info` says, ordered by
    /// `order` (the order both sides of a diff agreed on).
    pub fn prepare(
        conn: &'c Connection,
        table: &str,
        info: &KeyInfo,
        order: &KeyOrder,
    ) -> Result<(rusqlite::Statement<'c>, bool)> {
        let sq = |e| Error::sqlite(table, e);
        let select = if info.by_rowid {
            format!(
                "SELECT rowid AS \"rowid\", * FROM {} ORDER BY rowid",
                quote(table)
            )
        } else {
            let by = info
                .columns
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    let coll = order.collations.get(i).copied().unwrap_or_default();
                    format!("{} COLLATE {}", quote(n), coll.sql_name())
                })
                .collect::<Vec<_>>()
                .join(", ");
            match &info.rowid {
                Some(rowid) => {
                    let any_null = info
                        .columns
                        .iter()
                        .map(|n| format!("{} IS NULL", quote(n)))
                        .collect::<Vec<_>>()
                        .join(" OR ");
                    format!(
                        "SELECT *, CASE WHEN {any_null} THEN {rowid} END FROM {} ORDER BY {by}, CASE WHEN {any_null} THEN {rowid} END",
                        quote(table)
                    )
                }
                None => format!("SELECT * FROM {} ORDER BY {by}", quote(table)),
            }
        };
        let stmt = conn.prepare(&select).map_err(sq)?;
        Ok((stmt, info.rowid.is_some() && !info.by_rowid))
    }

    /// Streams rows of a statement from [`SqliteRows::prepare`].
    pub fn new(
        stmt: &'c mut rusqlite::Statement<'_>,
        key_cols: &[String],
        tie: bool,
    ) -> Result<Self> {
        let mut names: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
        if tie {
            names.pop();
        }
        let key_idx = key_cols
            .iter()
            .map(|k| {
                names
                    .iter()
                    .position(|n| n == k)
                    .ok_or_else(|| Error::invalid_input(format!("no key column {k}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let rows = stmt.query([]).map_err(|e| Error::sqlite("table", e))?;
        Ok(SqliteRows {
            rows,
            names,
            key_idx,
            tie,
        })
    }
}

impl RowSource for SqliteRows<'_> {
    fn next_row(&mut self) -> Result<Option<Row>> {
        let Some(r) = self.rows.next().map_err(|e| Error::sqlite("table", e))? else {
            return Ok(None);
        };
        let mut columns = Map::new();
        for (i, name) in self.names.iter().enumerate() {
            let v = r.get_ref(i).map_err(|e| Error::sqlite("table", e))?;
            columns.insert(name.clone(), to_json(v));
        }
        let key = self
            .key_idx
            .iter()
            .map(|&i| columns.get(&self.names[i]).cloned().unwrap_or(Value::Null))
            .collect();
        let tie = if self.tie {
            r.get::<_, Option<i64>>(self.names.len())
                .map_err(|e| Error::sqlite("table", e))?
                .map(Tie::Rowid)
        } else {
            None
        };
        Ok(Some(Row { key, tie, columns }))
    }
}
