//! Row sources for the diff: the JSON export files of a snapshot, and SQLite tables.

use std::io::BufRead;

use rusqlite::types::ValueRef;
use rusqlite::Connection;
use serde_json::{Map, Value};

use super::{Row, RowSource};
use crate::error::{Error, Result};

/// Rows of one of lumina-backup's own JSON export files (one row per line, as
/// `export::write_json` writes them), read as a stream.
pub struct JsonExportRows<R: BufRead> {
    reader: R,
    key_columns: Vec<String>,
    line: String,
    started: bool,
    name: String,
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
                    return Err(Error::BadInput(format!(
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
            let columns: Map<String, Value> = serde_json::from_str(text).map_err(|e| {
                Error::corrupt(self.name.clone(), format!("row does not parse: {e}"))
            })?;
            let key = self
                .key_columns
                .iter()
                .map(|k| columns.get(k).cloned().unwrap_or(Value::Null))
                .collect();
            return Ok(Some(Row { key, columns }));
        }
    }
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

fn to_json(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::from(i),
        ValueRef::Real(f) => serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        ValueRef::Text(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Array(vec![
            Value::String("blob".into()),
            Value::String(hex::encode(b)),
        ]),
    }
}

/// Rows of one SQLite table in primary-key order (rowid when it has none),
/// compared with the BINARY collation.
pub struct SqliteRows<'c> {
    rows: rusqlite::Rows<'c>,
    names: Vec<String>,
    key_idx: Vec<usize>,
}

impl<'c> SqliteRows<'c> {
    /// Prepares the statement for `table`. Returns the statement; call
    /// [`SqliteRows::new`] on it.
    pub fn prepare(
        conn: &'c Connection,
        table: &str,
    ) -> Result<(rusqlite::Statement<'c>, Vec<String>, usize)> {
        let sq = |e| Error::sqlite(table, e);
        let mut pk: Vec<(i64, String)> = Vec::new();
        {
            let mut info = conn
                .prepare(&format!("PRAGMA table_info({})", quote(table)))
                .map_err(sq)?;
            let mut rows = info.query([]).map_err(sq)?;
            while let Some(r) = rows.next().map_err(sq)? {
                let name: String = r.get(1).map_err(sq)?;
                let pos: i64 = r.get(5).map_err(sq)?;
                if pos > 0 {
                    pk.push((pos, name));
                }
            }
        }
        pk.sort();
        let (select, key_cols): (String, Vec<String>) = if pk.is_empty() {
            (
                format!(
                    "SELECT rowid AS \"rowid\", * FROM {} ORDER BY rowid",
                    quote(table)
                ),
                vec!["rowid".into()],
            )
        } else {
            let order = pk
                .iter()
                .map(|(_, n)| format!("{} COLLATE BINARY", quote(n)))
                .collect::<Vec<_>>()
                .join(", ");
            (
                format!("SELECT * FROM {} ORDER BY {order}", quote(table)),
                pk.into_iter().map(|(_, n)| n).collect(),
            )
        };
        let stmt = conn.prepare(&select).map_err(sq)?;
        let n = key_cols.len();
        Ok((stmt, key_cols, n))
    }

    /// Streams rows of a statement from [`SqliteRows::prepare`].
    pub fn new(stmt: &'c mut rusqlite::Statement<'_>, key_cols: &[String]) -> Result<Self> {
        let names: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
        let key_idx = key_cols
            .iter()
            .map(|k| {
                names
                    .iter()
                    .position(|n| n == k)
                    .ok_or_else(|| Error::BadInput(format!("no key column {k}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let rows = stmt.query([]).map_err(|e| Error::sqlite("table", e))?;
        // SAFETY-free lifetime shortening: Rows borrows the statement for 'c.
        Ok(SqliteRows {
            rows,
            names,
            key_idx,
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
        Ok(Some(Row { key, columns }))
    }
}
