//! The JSON export writer: streams one table as a version `1.0.0` export file.
//!
//! Owns how each SQLite value becomes JSON. Knows nothing of where the bytes go
//! (the caller brings a buffered writer) nor of importing.
//!
//! Value mapping:
//! - `NULL` → `null`; `INTEGER` → integer; `REAL` → number with a fraction or exponent
//!   (shortest round-trip form; ±infinity as `1e999`/`-1e999`, numbers beyond any
//!   double that JSON readers such as JavaScript's and Python's read as infinity and
//!   our importer reads back as REAL infinity);
//!   `TEXT` → string (invalid UTF-8 is replaced by U+FFFD); `BLOB` → string of
//!   lowercase hex (imported back as that text, so BLOBs do not round-trip; the Lumina
//!   schema has none).
//! - JSON columns ([`Table::json_columns`]): text that is valid JSON whose top level is
//!   an array, object, number or boolean, on one line and without surrounding
//!   whitespace, is embedded verbatim (its exact text: spacing, digits, `-0`). Any
//!   other text (invalid JSON, a JSON string, `null`, empty, several lines, leading
//!   or trailing whitespace) is written as a JSON *string* holding the raw text, so
//!   the importer can tell the two apart and restore the text exactly.
//!
//! Invariants: rows in primary-key order, one row per line, the count written before
//! the rows equals the rows written (both read in one transaction), no per-row
//! allocation beyond a reused buffer.

use std::io::{self, Write};

use rusqlite::types::ValueRef;
use rusqlite::Connection;
use serde::de::IgnoredAny;
use serde::Serializer as _;
use serde_json::ser::{CompactFormatter, Formatter};

use super::{push_hex, require_table, with_read_snapshot, Error, Table, FORMAT_VERSION};

/// Writes `table` of `conn` as a JSON export stamped with `timestamp` (RFC 3339 by
/// convention; written as given) and returns the number of rows written.
///
/// Streams row by row; wrap `out` in a `BufWriter`. The output is byte-identical for
/// identical table contents and timestamp. Values: `NULL` → `null`, integers and
/// reals as JSON numbers (infinities → `1e999`/`-1e999`), text as strings, BLOBs as lowercase
/// hex strings; JSON columns are embedded as parsed JSON, or as a string of the raw
/// text when it is not an array/object/number/boolean (so import restores it).
/// Runs in one read transaction (the caller's, if one is open) so the count and rows
/// agree.
pub fn write_json(
    conn: &Connection,
    table: Table,
    timestamp: &str,
    out: &mut dyn Write,
) -> Result<u64, Error> {
    write_json_observed(conn, table, timestamp, out, &mut |_| Ok(()))
}

/// [`write_json`], calling `observe` with every row as it is written (the snapshot
/// uses it to run the consistency check in the same pass, see
/// [`super::ConsistencyScan`]).
pub fn write_json_observed(
    conn: &Connection,
    table: Table,
    timestamp: &str,
    out: &mut dyn Write,
    observe: &mut dyn FnMut(&rusqlite::Row<'_>) -> Result<(), Error>,
) -> Result<u64, Error> {
    require_table(conn, table)?;
    with_read_snapshot(conn, || {
        let total: i64 =
            conn.query_row(&format!("SELECT COUNT(*) FROM {}", table.name()), [], |r| {
                r.get(0)
            })?;
        let total = u64::try_from(total).unwrap_or(0);

        let mut stmt = conn.prepare(&table.select_sql())?;
        let names: Vec<String> = stmt
            .column_names()
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let render = RowRenderer::new(table, &names, 0)?;
        out.write_all(&header(table, timestamp, total)?)?;
        let mut buf = Vec::with_capacity(8 * 1024);
        let mut written = 0u64;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            buf.clear();
            buf.extend_from_slice(if written == 0 { b"\n" } else { b",\n" });
            render.push(&mut buf, row)?;
            out.write_all(&buf)?;
            observe(row)?;
            written += 1;
        }
        out.write_all(TRAILER)?;
        if written != total {
            return Err(Error::Changed {
                table,
                counted: total,
                written,
            });
        }
        Ok(written)
    })
}

/// What ends every JSON export, after the last row.
pub(crate) const TRAILER: &[u8] = b"\n]}\n";

/// The start of a JSON export, up to and including the `[` before the rows:
/// `{"version":"1.0.0","timestamp":"…","totalItems":N,"metadata":[`.
pub(crate) fn header(table: Table, timestamp: &str, total: u64) -> Result<Vec<u8>, Error> {
    let mut buf = Vec::with_capacity(128);
    buf.extend_from_slice(b"{\"version\":");
    push_str(&mut buf, FORMAT_VERSION)?;
    buf.extend_from_slice(b",\"timestamp\":");
    push_str(&mut buf, timestamp)?;
    buf.push(b',');
    push_str(&mut buf, table.total_key())?;
    buf.push(b':');
    CompactFormatter.write_u64(&mut buf, total)?;
    buf.push(b',');
    push_str(&mut buf, table.array_key())?;
    buf.extend_from_slice(b":[");
    Ok(buf)
}

/// Renders rows of one table as [`write_json`] writes them (without the
/// separator before each), from statement rows whose columns from `offset` on
/// are the table's columns, named `names`.
pub(crate) struct RowRenderer {
    /// `{"id":` for the first column, `,"name":` for the others.
    prefixes: Vec<Vec<u8>>,
    json_col: Vec<bool>,
    offset: usize,
}

impl RowRenderer {
    /// A renderer of `table`'s rows with the columns `names` (in `SELECT *` order).
    pub(crate) fn new(table: Table, names: &[String], offset: usize) -> Result<Self, Error> {
        let json_col = names
            .iter()
            .map(|n| {
                table
                    .json_columns()
                    .iter()
                    .any(|j| j.eq_ignore_ascii_case(n))
            })
            .collect();
        let mut prefixes = Vec::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            let mut p = Vec::with_capacity(name.len() + 4);
            p.push(if i == 0 { b'{' } else { b',' });
            push_str(&mut p, name)?;
            p.push(b':');
            prefixes.push(p);
        }
        Ok(RowRenderer {
            prefixes,
            json_col,
            offset,
        })
    }

    /// Appends `row` as one JSON object to `buf`.
    pub(crate) fn push(&self, buf: &mut Vec<u8>, row: &rusqlite::Row<'_>) -> Result<(), Error> {
        for (i, prefix) in self.prefixes.iter().enumerate() {
            buf.extend_from_slice(prefix);
            let value = row.get_ref(self.offset + i)?;
            if self.json_col[i] {
                push_json_column(buf, value)?;
            } else {
                push_value(buf, value)?;
            }
        }
        buf.push(b'}');
        Ok(())
    }
}

/// One row of `table` exactly as [`write_json`] writes it (without the separator
/// before it): `diff` renders rows it decodes from pages with it.
pub(crate) fn row_json(
    table: Table,
    names: &[String],
    values: &[ValueRef<'_>],
) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    for (i, (name, value)) in names.iter().zip(values).enumerate() {
        buf.push(if i == 0 { b'{' } else { b',' });
        push_str(&mut buf, name)?;
        buf.push(b':');
        if table
            .json_columns()
            .iter()
            .any(|j| j.eq_ignore_ascii_case(name))
        {
            push_json_column(&mut buf, *value)?;
        } else {
            push_value(&mut buf, *value)?;
        }
    }
    buf.push(b'}');
    Ok(buf)
}

/// A JSON string literal (quotes, escapes) appended to `buf`.
fn push_str(buf: &mut Vec<u8>, s: &str) -> io::Result<()> {
    serde_json::Serializer::new(&mut *buf)
        .serialize_str(s)
        .map_err(io::Error::from)
}

/// A JSON string of possibly non-UTF-8 text (invalid sequences become U+FFFD).
fn push_text(buf: &mut Vec<u8>, bytes: &[u8]) -> io::Result<()> {
    match std::str::from_utf8(bytes) {
        Ok(s) => push_str(buf, s),
        Err(_) => push_str(buf, &String::from_utf8_lossy(bytes)),
    }
}

/// One ordinary column value.
fn push_value(buf: &mut Vec<u8>, value: ValueRef<'_>) -> io::Result<()> {
    match value {
        ValueRef::Null => buf.extend_from_slice(b"null"),
        ValueRef::Integer(i) => CompactFormatter.write_i64(buf, i)?,
        ValueRef::Real(f) if f.is_finite() => CompactFormatter.write_f64(buf, f)?,
        ValueRef::Real(f) if f > 0.0 => buf.extend_from_slice(b"1e999"),
        ValueRef::Real(f) if f < 0.0 => buf.extend_from_slice(b"-1e999"),
        // NaN: SQLite stores none (it binds NaN as NULL).
        ValueRef::Real(_) => buf.extend_from_slice(b"null"),
        ValueRef::Text(t) => push_text(buf, t)?,
        ValueRef::Blob(b) => {
            buf.push(b'"');
            push_hex(buf, b);
            buf.push(b'"');
        }
    }
    Ok(())
}

/// One value of a JSON column (see the module docs for the rule).
fn push_json_column(buf: &mut Vec<u8>, value: ValueRef<'_>) -> io::Result<()> {
    let ValueRef::Text(bytes) = value else {
        return push_value(buf, value);
    };
    let Ok(text) = std::str::from_utf8(bytes) else {
        return push_text(buf, bytes);
    };
    let json_ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    match bytes.first() {
        // Empty, a JSON string or `null`: keep as a string so the importer can restore
        // the exact text (a parsed string or null would be ambiguous).
        None | Some(b'"') | Some(b'n') => return push_str(buf, text),
        Some(_) => {}
    }
    // Surrounding whitespace would be lost by a reader, and raw control bytes
    // (newlines) would break the one-row-per-line layout: keep those as strings.
    if bytes.first().is_some_and(json_ws)
        || bytes.last().is_some_and(json_ws)
        || bytes.iter().any(|&b| b < 0x20 && b != b'\t')
        || serde_json::from_str::<IgnoredAny>(text).is_err()
    {
        return push_str(buf, text);
    }
    buf.extend_from_slice(bytes);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{lumina_db, rows};
    use super::*;
    use rusqlite::types::Value;

    fn export(conn: &Connection, table: Table) -> Vec<u8> {
        let mut out = Vec::new();
        write_json(conn, table, "2026-11-24T07:05:00Z", &mut out).expect("export");
        out
    }

    #[test]
    fn header_rows_and_layout() {
        let (_dir, conn) = lumina_db(25);
        for table in Table::all() {
            let bytes = export(&conn, table);
            let text = std::str::from_utf8(&bytes).expect("utf8");
            let doc: serde_json::Value = serde_json::from_str(text).expect("valid json");
            let (names, db_rows) = rows(&conn, table);
            assert_eq!(doc["version"], "1.0.0");
            assert_eq!(doc["timestamp"], "2026-11-24T07:05:00Z");
            assert_eq!(doc[table.total_key()], db_rows.len() as u64);
            let arr = doc[table.array_key()].as_array().expect("array");
            assert_eq!(arr.len(), db_rows.len());
            // Keys in table column order.
            let keys: Vec<&String> = arr[0].as_object().expect("object").keys().collect();
            let mut sorted_names = names.clone();
            sorted_names.sort();
            assert_eq!(keys, sorted_names.iter().collect::<Vec<_>>()); // serde_json sorts
            assert!(text.starts_with(&format!(
                "{{\"version\":\"1.0.0\",\"timestamp\":\"2026-11-24T07:05:00Z\",\"{}\":{},\"{}\":[\n{{\"{}\":",
                table.total_key(),
                db_rows.len(),
                table.array_key(),
                names[0]
            )));
            assert!(text.ends_with("}\n]}\n"));
            // Keys in table column order on every row line.
            for line in text.lines().skip(1).take(db_rows.len()) {
                let mut at = 0;
                for name in &names {
                    let key = format!("\"{name}\":");
                    let pos = line[at..].find(&key).map(|p| p + at);
                    assert!(pos.is_some(), "{name} out of order in {line}");
                    at = pos.unwrap_or(0) + key.len();
                }
            }
            // One line per row, plus header and footer lines.
            assert_eq!(text.lines().count(), db_rows.len() + 2);
        }
    }

    #[test]
    fn deterministic_bytes() {
        let (_dir, conn) = lumina_db(40);
        for table in Table::all() {
            assert_eq!(export(&conn, table), export(&conn, table));
        }
    }

    #[test]
    fn json_columns_are_parsed_or_kept_as_strings() {
        let (_dir, conn) = lumina_db(10);
        let doc: serde_json::Value =
            serde_json::from_slice(&export(&conn, Table::Metadata)).expect("json");
        let arr = doc["metadata"].as_array().expect("array");
        // Row i has aiTags case i % 9 (rows are ordered by id = /photos/{i:04}/…).
        assert_eq!(arr[0]["aiTags"], serde_json::Value::Null);
        assert_eq!(arr[1]["aiTags"], "not json [");
        assert_eq!(arr[2]["aiTags"], "\"a json string\"");
        assert_eq!(arr[3]["aiTags"], "null");
        assert_eq!(
            arr[4]["aiTags"],
            serde_json::json!(["spaced", "python", "style"])
        );
        // Several lines: kept as the exact text (a string), not re-spaced.
        assert_eq!(arr[5]["aiTags"], "[\n  \"multi\",\n  \"line\"\n]");
        assert_eq!(arr[6]["aiTags"], "");
        assert!(arr[7]["aiTags"].is_array());
        assert_eq!(arr[0]["aiTagsDetailed"], "{bad");
        assert!(arr[1]["aiTagsDetailed"][0]["confidence"].is_f64());
        assert_eq!(arr[0]["manualTags"], serde_json::json!([]));
        assert_eq!(arr[1]["isHidden"], 1);
    }

    #[test]
    fn value_types() {
        let conn = Connection::open_in_memory().expect("open");
        conn.execute_batch(Table::Tags.create_sql()).expect("ddl");
        conn.execute(
            "INSERT INTO tags VALUES ('a', x'00ff10', NULL, 'ok', 1.0, NULL, 9223372036854775807)",
            [],
        )
        .expect("insert");
        conn.execute(
            "INSERT INTO tags VALUES ('b', 'n', 'm', NULL, 1e999, NULL, -1)",
            [],
        )
        .expect("insert");
        let text = String::from_utf8(export(&conn, Table::Tags)).expect("utf8");
        assert!(text.contains(
            "{\"id\":\"a\",\"name\":\"00ff10\",\"normalizedName\":null,\"type\":\"ok\",\"confidence\":1.0,\"parentId\":null,\"createdAt\":9223372036854775807}"
        ), "{text}");
        assert!(text.contains("\"confidence\":1e999"), "{text}");
        let (_, r) = rows(&conn, Table::Tags);
        assert_eq!(r[1][4], Value::Real(f64::INFINITY));
    }

    #[test]
    fn empty_table_and_missing_table() {
        let conn = Connection::open_in_memory().expect("open");
        conn.execute_batch(Table::Collections.create_sql())
            .expect("ddl");
        let text = String::from_utf8(export(&conn, Table::Collections)).expect("utf8");
        assert_eq!(
            text,
            "{\"version\":\"1.0.0\",\"timestamp\":\"2026-11-24T07:05:00Z\",\"totalCollections\":0,\"collections\":[\n]}\n"
        );
        let err = write_json(&conn, Table::Tags, "t", &mut Vec::new()).expect_err("missing");
        assert!(matches!(err, Error::NotLumina { ref missing } if missing == "tags"));
    }

    #[test]
    fn runs_inside_callers_transaction() {
        let (_dir, conn) = lumina_db(5);
        let tx = conn.unchecked_transaction().expect("tx");
        conn.execute("DELETE FROM metadata WHERE rowid = 1", [])
            .expect("delete");
        let doc: serde_json::Value =
            serde_json::from_slice(&export(&conn, Table::Metadata)).expect("json");
        assert_eq!(doc["totalItems"], 4);
        drop(tx);
    }
}
