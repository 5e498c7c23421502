//! Read-only SQL queries on a snapshot's database, without restoring it over
//! anything: the image is written to a verified private temporary file (every
//! chunk and the whole file re-hashed, as a restore does), opened read-only
//! and immutable, and removed when the query ends.

use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::types::ValueRef;
use rusqlite::Batch;

use super::Repository;
use crate::error::{Error, Result};
use crate::progress::{Phase, PhaseInfo, Progress};
use crate::snapshot::Snapshot;
use crate::sqlite;

/// One value of a query's result row, as SQLite stores it.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    /// SQL `NULL`.
    Null,
    /// A 64-bit signed integer.
    Integer(i64),
    /// A 64-bit float.
    Real(f64),
    /// Text; invalid UTF-8 in the database is shown with U+FFFD.
    Text(String),
    /// A BLOB, byte for byte.
    Blob(Vec<u8>),
}

/// Where [`Repository::query`] delivers its result, row by row (a result can
/// be larger than memory).
pub trait QuerySink {
    /// The result's column names, once, before any row.
    fn columns(&mut self, names: &[String]) -> Result<()>;
    /// One row, in column order. An error stops the query and is returned.
    fn row(&mut self, values: &[SqlValue]) -> Result<()>;
}

impl Repository {
    /// Runs one read-only SQL statement (`SELECT`, `WITH ...`, a read-only
    /// `PRAGMA`) on the database of `snap` and hands its rows to `sink`;
    /// returns the number of rows.
    ///
    /// The snapshot's image is first written to a private temporary file and
    /// verified like a restore; the query cannot change it (the connection is
    /// read-only, `query_only`, and statements that would write are refused
    /// before they run). A statement that does not parse, names an unknown
    /// table, or would write is bad input; [`Progress::cancelled`] stops a
    /// long query between rows.
    pub fn query(
        &self,
        snap: &Snapshot,
        sql: &str,
        progress: &dyn Progress,
        sink: &mut dyn QuerySink,
    ) -> Result<u64> {
        let name = snap.image_entry()?.name.clone();
        let tmp = self.snapshot_file_to_temp(snap, &name, progress)?;
        let conn = sqlite::restore::open_immutable(tmp.temp_path())?;
        let sqlerr = |e: rusqlite::Error| {
            if e.sqlite_error_code() == Some(rusqlite::ErrorCode::AuthorizationForStatementDenied) {
                return Error::invalid_input(
                    "sql reads the snapshot's own database only: ATTACH is not allowed",
                );
            }
            Error::invalid_input(format!(
                "the query on snapshot {} failed: {e}",
                snap.id.short()
            ))
        };
        conn.execute_batch("PRAGMA query_only = 1")
            .map_err(|e| Error::sqlite(tmp.temp_path(), e))?;
        // Other database files stay out of reach: the query reads this
        // snapshot only.
        conn.authorizer(Some(|ctx: AuthContext<'_>| match ctx.action {
            AuthAction::Attach { .. } => Authorization::Deny,
            _ => Authorization::Allow,
        }));
        progress.phase(&PhaseInfo::new(Phase::Query));
        let mut batch = Batch::new(&conn, sql);
        let Some(mut stmt) = batch.next().map_err(sqlerr)? else {
            return Err(Error::invalid_input(
                "the query is empty: give one SQL statement",
            ));
        };
        if batch.next().map_err(sqlerr)?.is_some() {
            return Err(Error::invalid_input(
                "the query holds more than one statement: give one (run `sql` once per statement)",
            ));
        }
        if !stmt.readonly() {
            return Err(Error::invalid_input(
                "sql runs only read-only statements (SELECT, WITH ..., read-only PRAGMA); \
                 restore the snapshot to change its data",
            ));
        }
        let names: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
        sink.columns(&names)?;
        let mut rows = stmt.query([]).map_err(sqlerr)?;
        let mut values = Vec::with_capacity(names.len());
        let mut count = 0u64;
        while let Some(row) = rows.next().map_err(sqlerr)? {
            if progress.cancelled() {
                return Err(crate::error::Repr::Cancelled.into());
            }
            values.clear();
            for i in 0..names.len() {
                values.push(value(row.get_ref(i).map_err(sqlerr)?));
            }
            sink.row(&values)?;
            count += 1;
            progress.advance(1);
        }
        Ok(count)
    }
}

/// In JSON (the CLI's `--json`, the Tauri plugin): as the JSON exports write
/// values: numbers, strings, `null`; infinities as `1e999`/`-1e999`; BLOBs as
/// a string of lowercase hex.
impl serde::Serialize for SqlValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            SqlValue::Null => s.serialize_unit(),
            SqlValue::Integer(i) => s.serialize_i64(*i),
            SqlValue::Real(r) if r.is_finite() => s.serialize_f64(*r),
            SqlValue::Real(r) => {
                let text = if *r > 0.0 { "1e999" } else { "-1e999" };
                match serde_json::value::RawValue::from_string(text.to_string()) {
                    Ok(raw) => raw.serialize(s),
                    Err(_) => s.serialize_unit(),
                }
            }
            SqlValue::Text(t) => s.serialize_str(t),
            SqlValue::Blob(b) => s.serialize_str(&hex::encode(b)),
        }
    }
}

fn value(v: ValueRef<'_>) -> SqlValue {
    match v {
        ValueRef::Null => SqlValue::Null,
        ValueRef::Integer(i) => SqlValue::Integer(i),
        ValueRef::Real(r) => SqlValue::Real(r),
        ValueRef::Text(t) => SqlValue::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => SqlValue::Blob(b.to_vec()),
    }
}
