//! Whether an existing table can take an import: it must have every column of
//! the Lumina table and the Lumina key as its primary key (or a UNIQUE index),
//! else the import is refused before anything is written; and which other UNIQUE
//! indexes it has (rows colliding on them are replaced).

use rusqlite::Connection;

use super::{quote_ident, Error, Table};

/// `Err(NotLuminaTable)` unless the existing `table` has the Lumina shape.
pub(super) fn check_shape(conn: &Connection, table: Table) -> Result<(), Error> {
    let (columns, pk) = table_columns(conn, table.name())?;
    let refuse = |reason: String| Error::NotLuminaTable { table, reason };
    for want in table.columns() {
        if !columns.iter().any(|c| c.eq_ignore_ascii_case(want)) {
            return Err(refuse(format!("missing column {want}")));
        }
    }
    let keys: Vec<String> = table
        .key_columns()
        .iter()
        .map(|k| k.to_ascii_lowercase())
        .collect();
    let same = |cols: &[String]| {
        let mut c: Vec<String> = cols.iter().map(|c| c.to_ascii_lowercase()).collect();
        let mut k = keys.clone();
        c.sort();
        k.sort();
        c == k
    };
    if same(&pk) {
        return Ok(());
    }
    for (cols, _) in unique_indexes(conn, table.name())? {
        if same(&cols) {
            return Ok(());
        }
    }
    Err(refuse(format!(
        "its primary key is not ({})",
        table.key_columns().join(", ")
    )))
}

/// UNIQUE indexes other than the key's, as indexes into `columns` (indexes on
/// expressions, and partial ones, are left to SQLite).
pub(super) fn other_unique_indexes(
    conn: &Connection,
    table: Table,
    columns: &[String],
) -> Result<Vec<Vec<usize>>, Error> {
    let mut out = Vec::new();
    for (cols, origin) in unique_indexes(conn, table.name())? {
        if origin == "pk" {
            continue;
        }
        let idx: Option<Vec<usize>> = cols
            .iter()
            .map(|c| columns.iter().position(|x| x.eq_ignore_ascii_case(c)))
            .collect();
        match idx {
            Some(idx) if !idx.is_empty() => out.push(idx),
            _ => {}
        }
    }
    Ok(out)
}

/// Column names and primary-key column names (in key order).
fn table_columns(conn: &Connection, table: &str) -> Result<(Vec<String>, Vec<String>), Error> {
    let rows: Vec<(String, i64)> = conn
        .prepare(&format!("PRAGMA table_info({})", quote_ident(table)))?
        .query_map([], |r| Ok((r.get(1)?, r.get(5)?)))?
        .collect::<Result<_, _>>()?;
    let mut pk: Vec<(i64, String)> = rows
        .iter()
        .filter(|(_, p)| *p > 0)
        .map(|(n, p)| (*p, n.clone()))
        .collect();
    pk.sort();
    Ok((
        rows.into_iter().map(|(n, _)| n).collect(),
        pk.into_iter().map(|(_, n)| n).collect(),
    ))
}

/// `(column names, origin)` of each full (not partial) UNIQUE index on named
/// columns.
fn unique_indexes(conn: &Connection, table: &str) -> Result<Vec<(Vec<String>, String)>, Error> {
    let list: Vec<(String, i64, String, i64)> = conn
        .prepare(&format!("PRAGMA index_list({})", quote_ident(table)))?
        .query_map([], |r| Ok((r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
        .collect::<Result<_, _>>()?;
    let mut out = Vec::new();
    for (name, unique, origin, partial) in list {
        if unique == 0 || partial != 0 {
            continue;
        }
        let cols: Vec<Option<String>> = conn
            .prepare(&format!("PRAGMA index_info({})", quote_ident(&name)))?
            .query_map([], |r| r.get(2))?
            .collect::<Result<_, _>>()?;
        if let Some(cols) = cols.into_iter().collect::<Option<Vec<String>>>() {
            out.push((cols, origin));
        }
    }
    Ok(out)
}
