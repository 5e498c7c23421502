//! The CSV export writer: one table as RFC 4180 CSV (CRLF line ends, fields quoted
//! when they hold a quote, comma, CR or LF; quotes doubled), through the `csv` crate.
//!
//! Owns how each SQLite value becomes a CSV field: a header row of the SQL column
//! names, then one record per row in primary-key order. `NULL` → empty field (CSV
//! cannot tell it from an empty string); `INTEGER` → decimal; `REAL` → shortest
//! round-trip form (`1.0`, `0.25`, `1e20`; `inf`/`-inf` for infinities); `TEXT` →
//! its bytes unchanged (JSON columns keep their raw text); `BLOB` → lowercase hex.
//! CSV is an export for people and spreadsheets; only JSON files are imported.

use std::io::Write;

use rusqlite::types::ValueRef;
use rusqlite::Connection;
use serde_json::ser::{CompactFormatter, Formatter};

use super::{push_hex, require_table, Error, Table};

/// Writes `table` of `conn` as CSV with a header row and returns the number of data
/// rows written. Streams row by row; wrap `out` in a `BufWriter` for files.
pub fn write_csv(conn: &Connection, table: Table, out: &mut dyn Write) -> Result<u64, Error> {
    require_table(conn, table)?;
    let mut stmt = conn.prepare(&table.select_sql())?;
    let ncols = stmt.column_count();
    let mut wtr = ::csv::WriterBuilder::new()
        .terminator(::csv::Terminator::CRLF)
        .from_writer(out);
    wtr.write_record(stmt.column_names())?;

    let mut field = Vec::with_capacity(64);
    let mut written = 0u64;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        for i in 0..ncols {
            match row.get_ref(i)? {
                ValueRef::Null => wtr.write_field(b"")?,
                ValueRef::Text(t) => wtr.write_field(t)?,
                ValueRef::Integer(v) => {
                    field.clear();
                    CompactFormatter.write_i64(&mut field, v)?;
                    wtr.write_field(&field)?;
                }
                ValueRef::Real(v) if v.is_finite() => {
                    field.clear();
                    CompactFormatter.write_f64(&mut field, v)?;
                    wtr.write_field(&field)?;
                }
                ValueRef::Real(v) => {
                    wtr.write_field(if v > 0.0 { "inf" } else { "-inf" })?;
                }
                ValueRef::Blob(b) => {
                    field.clear();
                    push_hex(&mut field, b);
                    wtr.write_field(&field)?;
                }
            }
        }
        wtr.write_record(None::<&[u8]>)?;
        written += 1;
    }
    wtr.flush()?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{lumina_db, rows};
    use super::*;
    use rusqlite::types::Value;

    /// The CSV field the writer must produce for a database value.
    fn expected_field(v: &Value) -> String {
        match v {
            Value::Null => String::new(),
            Value::Integer(i) => i.to_string(),
            Value::Real(f) => serde_json::to_string(f).expect("finite"),
            Value::Text(t) => t.clone(),
            Value::Blob(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
        }
    }

    #[test]
    fn csv_reads_back_equal_to_the_database() {
        let (_dir, conn) = lumina_db(60);
        for table in Table::all() {
            let mut out = Vec::new();
            let n = write_csv(&conn, table, &mut out).expect("csv");
            let (names, db_rows) = rows(&conn, table);
            assert_eq!(n, db_rows.len() as u64);
            let mut rdr = ::csv::ReaderBuilder::new().from_reader(out.as_slice());
            let header: Vec<String> = rdr
                .headers()
                .expect("header")
                .iter()
                .map(str::to_owned)
                .collect();
            assert_eq!(header, names);
            let records: Vec<Vec<String>> = rdr
                .records()
                .map(|r| r.expect("record").iter().map(str::to_owned).collect())
                .collect();
            assert_eq!(records.len(), db_rows.len());
            for (rec, row) in records.iter().zip(&db_rows) {
                let want: Vec<String> = row.iter().map(expected_field).collect();
                assert_eq!(rec, &want);
            }
        }
    }

    #[test]
    fn rfc4180_quoting_and_crlf() {
        let conn = Connection::open_in_memory().expect("open");
        conn.execute_batch(Table::Collections.create_sql())
            .expect("ddl");
        conn.execute(
            "INSERT INTO collections VALUES ('a', 'say \"hi\", then
go', 1, NULL, 0)",
            [],
        )
        .expect("insert");
        let mut out = Vec::new();
        write_csv(&conn, Table::Collections, &mut out).expect("csv");
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            "id,name,createdAt,lastOpenedAt,isActive\r\na,\"say \"\"hi\"\", then\ngo\",1,,0\r\n"
        );
    }

    #[test]
    fn missing_table_is_not_lumina() {
        let conn = Connection::open_in_memory().expect("open");
        let err = write_csv(&conn, Table::ItemTags, &mut Vec::new()).expect_err("missing");
        assert!(err.is_user_error());
    }
}
