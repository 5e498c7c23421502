//! The importer: reads one JSON export file (plain or gzip) back into a database.
//!
//! Owns the reading side of the format: which table a file holds, the version gate,
//! the JSON → SQLite value mapping, and what counts as a warning. Knows nothing of
//! where the file came from.
//!
//! Invariants:
//! - All or nothing: the whole file is applied in one `IMMEDIATE` transaction with
//!   `INSERT OR REPLACE`; any error rolls every row back (and the table, if this
//!   import created it).
//! - Streaming: rows are inserted as they are parsed; memory does not grow with the
//!   file. A wrong `version` seen after some rows still rolls them back.
//! - Never panics on any input bytes (a property test feeds it garbage).
//!
//! Value mapping: see [`cells`](super::cells) (numbers are read from their digits:
//! INTEGER within 64 bits, REAL when written with a fraction or exponent, `1e999`
//! for infinity; JSON columns keep the exact JSON text the file holds).
//!
//! Rows are applied as an UPSERT on the primary key: an existing row gets the
//! columns the file holds and keeps the others (a newer app's columns the export
//! does not know); a new row is inserted. A row whose value in another UNIQUE
//! column (such as `tags.normalizedName`) matches an existing row replaces that
//! row, as `INSERT OR REPLACE` does. The report counts the rows written: rows of
//! the file with the same key count once. A target table of another shape (a
//! Lumina column missing, another primary key) is refused before anything is
//! written.

use std::collections::BTreeSet;
use std::fmt;
use std::io::{self, BufReader, Cursor, Read};

use rusqlite::types::Value;
use rusqlite::{Connection, Transaction, TransactionBehavior};
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::{cells, quote_ident, table_exists, Error, Table, FORMAT_VERSION};

/// How many distinct unknown row keys are named in warnings.
const MAX_UNKNOWN_KEYS: usize = 20;

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImportReport {
    /// The table the file held.
    pub table: Table,
    /// Rows written (inserted or updated; rows of the file with the same key
    /// count once).
    pub rows: u64,
    /// Problems that did not stop the import (dangling references, ignored keys).
    pub warnings: Vec<String>,
}

/// Imports one JSON export (gzip-compressed or not, detected by its magic bytes) into
/// `conn`, creating the table with the Lumina schema if it is missing.
///
/// The table comes from the top-level key (`metadata`, `collections`, `tags`,
/// `relations`); `version` must be `1.0.0`, else [`Error::UnsupportedVersion`]. Rows
/// whose reference names a missing row (a `metadata.collectionId` not in
/// `collections`, a relation's `tagId` not in `tags`) and row keys that are not
/// columns of the target table are warnings; with `strict` they are errors
/// ([`Error::Referential`], [`Error::Malformed`]) and nothing is written.
pub fn import(
    conn: &mut Connection,
    reader: impl Read,
    strict: bool,
) -> Result<ImportReport, Error> {
    let source = decompressing(reader)?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let report = {
        let mut state = State {
            tx: &tx,
            strict,
            stashed: None,
            version: None,
            totals: Vec::new(),
            target: None,
            warnings: Vec::new(),
        };
        let mut de = serde_json::Deserializer::from_reader(source);
        let parsed = de::Deserializer::deserialize_map(&mut de, TopVisitor(&mut state))
            .and_then(|()| de.end());
        if let Some(err) = state.stashed.take() {
            return Err(err);
        }
        parsed.map_err(json_error)?;
        state.finish()?
    };
    tx.commit()?;
    Ok(report)
}

/// Wraps `reader` in a gzip decoder when it starts with the gzip magic `1f 8b`.
fn decompressing<'r>(mut reader: impl Read + 'r) -> Result<Box<dyn Read + 'r>, Error> {
    let mut magic = [0u8; 2];
    let mut got = 0;
    while got < magic.len() {
        match reader.read(&mut magic[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let whole = Cursor::new(magic).take(got as u64).chain(reader);
    Ok(if got == 2 && magic == [0x1f, 0x8b] {
        Box::new(BufReader::with_capacity(
            64 * 1024,
            flate2::read::MultiGzDecoder::new(whole),
        ))
    } else {
        Box::new(BufReader::with_capacity(64 * 1024, whole))
    })
}

/// Maps a parse error: corrupt gzip data is bad input, other I/O is not.
fn json_error(e: serde_json::Error) -> Error {
    if !e.is_io() {
        return Error::Json(e);
    }
    let io = io::Error::from(e);
    match io.kind() {
        io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput | io::ErrorKind::UnexpectedEof => {
            Error::Malformed {
                reason: format!("corrupt or truncated gzip data: {io}"),
            }
        }
        _ => Error::Io(io),
    }
}

/// Everything the visitors share while one file is parsed.
struct State<'t, 'c> {
    tx: &'t Transaction<'c>,
    strict: bool,
    /// Our own error behind the placeholder serde error that aborted parsing.
    stashed: Option<Error>,
    version: Option<String>,
    /// `(table, declared count)` for every `total…` key seen.
    totals: Vec<(Table, u64)>,
    target: Option<TableImport>,
    warnings: Vec<String>,
}

impl State<'_, '_> {
    /// Keeps `err` and returns the serde error that unwinds the parser.
    fn abort<E: de::Error>(&mut self, err: Error) -> E {
        let msg = err.to_string();
        self.stashed = Some(err);
        E::custom(msg)
    }

    /// Checks what can only be checked at the end and builds the report.
    fn finish(mut self) -> Result<ImportReport, Error> {
        if self.version.is_none() {
            return Err(malformed("no `version` field"));
        }
        let Some(t) = self.target.take() else {
            return Err(malformed(
                "no `metadata`, `collections`, `tags` or `relations` array",
            ));
        };
        for &(table, declared) in &self.totals {
            if table == t.table && declared != t.rows {
                return Err(malformed(format!(
                    "`{}` says {declared} but the file holds {} rows",
                    table.total_key(),
                    t.rows
                )));
            }
        }
        if !t.unknown_keys.is_empty() {
            let names: Vec<String> = t.unknown_keys.iter().map(|k| format!("`{k}`")).collect();
            let line = format!(
                "keys {} are not columns of `{}`; their values were not imported",
                names.join(", "),
                t.table
            );
            if self.strict {
                return Err(malformed(line));
            }
            self.warnings.push(line);
        }
        if t.orphans > 0 {
            let example = t.first_orphan.clone().unwrap_or_default();
            if self.strict {
                return Err(Error::Referential {
                    count: t.orphans,
                    example,
                });
            }
            self.warnings.push(format!(
                "{} imported rows reference missing rows, e.g. {example}",
                t.orphans
            ));
        }
        let written = t.written(self.tx)?;
        if written != t.rows {
            self.warnings.push(format!(
                "the file holds {} rows and {written} were written: rows with the same key \
                 (or the same value in a UNIQUE column) replace each other",
                t.rows
            ));
        }
        Ok(ImportReport {
            table: t.table,
            rows: written,
            warnings: self.warnings,
        })
    }
}

fn malformed(reason: impl Into<String>) -> Error {
    Error::Malformed {
        reason: reason.into(),
    }
}

/// The table being imported: its target columns and the row being assembled.
struct TableImport {
    table: Table,
    /// Column names of the target table, in table order.
    columns: Vec<String>,
    is_json: Vec<bool>,
    /// Indexes of the primary-key columns in `columns`.
    key_idx: Vec<usize>,
    /// `(column index, SQL that finds the referenced row)` if references are checked.
    reference: Option<(usize, String, &'static str)>,
    /// The referenced table exists (if not, every non-NULL reference dangles).
    reference_table_exists: bool,
    values: Vec<Option<Value>>,
    /// Which columns the cached `insert_sql` names.
    insert_cols: Vec<bool>,
    insert_sql: String,
    /// Other UNIQUE indexes (column indexes), for replacing rows they conflict with.
    other_unique: Vec<Vec<usize>>,
    rows: u64,
    orphans: u64,
    first_orphan: Option<String>,
    unknown_keys: BTreeSet<String>,
}

impl TableImport {
    /// Creates the table if missing and reads its columns.
    fn begin(tx: &Transaction<'_>, table: Table) -> Result<Self, Error> {
        if table_exists(tx, table.name())? {
            super::shape::check_shape(tx, table)?;
        }
        tx.execute_batch(table.create_sql())?;
        let columns: Vec<String> = tx
            .prepare(&format!("PRAGMA table_info({})", quote_ident(table.name())))?
            .query_map([], |r| r.get::<_, String>(1))?
            .collect::<Result<_, _>>()?;
        let find = |name: &str| columns.iter().position(|c| c.eq_ignore_ascii_case(name));
        let mut key_idx = Vec::new();
        for key in table.key_columns() {
            key_idx.push(find(key).ok_or_else(|| Error::NotLumina {
                missing: format!("{}.{key}", table.name()),
            })?);
        }
        let other_unique = super::shape::other_unique_indexes(tx, table, &columns)?;
        // The keys of the rows written, to count them at the end.
        let keys = table
            .key_columns()
            .iter()
            .map(|k| quote_ident(k))
            .collect::<Vec<_>>()
            .join(", ");
        tx.execute_batch(&format!(
            "DROP TABLE IF EXISTS temp.lumina_import_written;
             CREATE TEMP TABLE lumina_import_written({keys}, PRIMARY KEY({keys}));"
        ))?;
        let is_json = columns
            .iter()
            .map(|c| {
                table
                    .json_columns()
                    .iter()
                    .any(|j| j.eq_ignore_ascii_case(c))
            })
            .collect();
        let (reference, reference_table_exists) = match table {
            Table::Metadata => (
                find("collectionId").map(|i| {
                    (
                        i,
                        "SELECT 1 FROM collections WHERE id = ?1".to_owned(),
                        "collection",
                    )
                }),
                table_exists(tx, "collections")?,
            ),
            Table::ItemTags => (
                find("tagId").map(|i| (i, "SELECT 1 FROM tags WHERE id = ?1".to_owned(), "tag")),
                table_exists(tx, "tags")?,
            ),
            Table::Collections | Table::Tags => (None, false),
        };
        let n = columns.len();
        Ok(TableImport {
            table,
            columns,
            is_json,
            key_idx,
            reference,
            reference_table_exists,
            values: vec![None; n],
            insert_cols: Vec::new(),
            insert_sql: String::new(),
            other_unique,
            rows: 0,
            orphans: 0,
            first_orphan: None,
            unknown_keys: BTreeSet::new(),
        })
    }

    /// Inserts the assembled row and clears it for the next one.
    fn insert_row(&mut self, tx: &Transaction<'_>) -> Result<(), Error> {
        let row_no = self.rows + 1;
        for &k in &self.key_idx {
            if matches!(self.values[k], None | Some(Value::Null)) {
                return Err(malformed(format!(
                    "{} row {row_no} has no `{}`",
                    self.table.array_key(),
                    self.columns[k]
                )));
            }
        }
        if let Some((i, sql, what)) = &self.reference {
            if let Some(v) = self.values[*i].as_ref().filter(|v| **v != Value::Null) {
                let found = self.reference_table_exists && tx.prepare_cached(sql)?.exists([v])?;
                if !found {
                    self.orphans += 1;
                    if self.first_orphan.is_none() {
                        self.first_orphan = Some(format!(
                            "{} row {row_no} ({}) names missing {what} {}",
                            self.table.array_key(),
                            describe(self.values[self.key_idx[0]].as_ref()),
                            describe(Some(v)),
                        ));
                    }
                }
            }
        }
        // Rebuild the statement only when the set of keys changes (rarely: rows of
        // one file normally all carry every column).
        let present: Vec<bool> = self.values.iter().map(Option::is_some).collect();
        if present != self.insert_cols {
            self.insert_sql = self.upsert_sql(&present);
            self.insert_cols = present;
        }
        let refused = |e: rusqlite::Error, table: Table| match e {
            // The row breaks the table's own rules (NOT NULL, types): bad input.
            rusqlite::Error::SqliteFailure(f, msg)
                if matches!(
                    f.code,
                    rusqlite::ErrorCode::ConstraintViolation | rusqlite::ErrorCode::TypeMismatch
                ) =>
            {
                malformed(format!(
                    "{} row {row_no} was refused by the table: {}",
                    table.array_key(),
                    msg.unwrap_or_else(|| f.to_string())
                ))
            }
            other => Error::Sqlite(other),
        };
        let key = match self.upsert(tx) {
            Ok(key) => key,
            Err(rusqlite::Error::SqliteFailure(f, _))
                if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    && !self.other_unique.is_empty() =>
            {
                // The update of an existing row collides with a third row on
                // another UNIQUE column: that row is replaced, as a REPLACE would.
                self.delete_unique_conflicts(tx)?;
                self.upsert(tx).map_err(|e| refused(e, self.table))?
            }
            Err(e) => return Err(refused(e, self.table)),
        };
        if let Some(key) = key {
            let marks: Vec<String> = (1..=key.len()).map(|i| format!("?{i}")).collect();
            tx.prepare_cached(&format!(
                "INSERT OR IGNORE INTO temp.lumina_import_written VALUES ({})",
                marks.join(", ")
            ))?
            .execute(rusqlite::params_from_iter(key.iter()))?;
        }
        for v in &mut self.values {
            *v = None;
        }
        self.rows += 1;
        Ok(())
    }

    /// `INSERT OR REPLACE … ON CONFLICT(key) DO UPDATE SET` the columns present,
    /// `RETURNING` the key as stored.
    fn upsert_sql(&self, present: &[bool]) -> String {
        let cols: Vec<String> = self
            .columns
            .iter()
            .zip(present)
            .filter(|(_, p)| **p)
            .map(|(c, _)| quote_ident(c))
            .collect();
        let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
        let keys: Vec<String> = self
            .key_idx
            .iter()
            .map(|&k| quote_ident(&self.columns[k]))
            .collect();
        let mut set: Vec<String> = self
            .columns
            .iter()
            .enumerate()
            .filter(|(i, _)| present[*i] && !self.key_idx.contains(i))
            .map(|(_, c)| format!("{0} = excluded.{0}", quote_ident(c)))
            .collect();
        if set.is_empty() {
            // Nothing but the key: a no-op update, so the row still counts.
            set.push(format!("{0} = excluded.{0}", keys[0]));
        }
        format!(
            "INSERT OR REPLACE INTO {} ({}) VALUES ({}) ON CONFLICT({}) DO UPDATE SET {} RETURNING {}",
            quote_ident(self.table.name()),
            cols.join(", "),
            marks.join(", "),
            keys.join(", "),
            set.join(", "),
            keys.join(", ")
        )
    }

    /// Runs the cached upsert; returns the key of the row written.
    fn upsert(&self, tx: &Transaction<'_>) -> rusqlite::Result<Option<Vec<Value>>> {
        let mut stmt = tx.prepare_cached(&self.insert_sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(self.values.iter().flatten()))?;
        let key = match rows.next()? {
            Some(r) => Some(
                (0..self.key_idx.len())
                    .map(|i| r.get::<_, Value>(i))
                    .collect::<rusqlite::Result<Vec<_>>>()?,
            ),
            None => None,
        };
        // Step to the end so the statement completes.
        while rows.next()?.is_some() {}
        Ok(key)
    }

    /// Deletes rows that hold this row's values in another UNIQUE index but have
    /// another key.
    fn delete_unique_conflicts(&self, tx: &Transaction<'_>) -> Result<(), Error> {
        for index in &self.other_unique {
            let vals: Option<Vec<&Value>> = index
                .iter()
                .map(|&c| self.values[c].as_ref().filter(|v| **v != Value::Null))
                .collect();
            let Some(vals) = vals else { continue };
            let mut params: Vec<&Value> = vals;
            let mut cond: Vec<String> = index
                .iter()
                .enumerate()
                .map(|(i, &c)| format!("{} = ?{}", quote_ident(&self.columns[c]), i + 1))
                .collect();
            let not_key: Vec<String> = self
                .key_idx
                .iter()
                .enumerate()
                .map(|(j, &k)| {
                    format!(
                        "{} IS ?{}",
                        quote_ident(&self.columns[k]),
                        index.len() + j + 1
                    )
                })
                .collect();
            cond.push(format!("NOT ({})", not_key.join(" AND ")));
            for &k in &self.key_idx {
                params.push(self.values[k].as_ref().unwrap_or(&Value::Null));
            }
            tx.execute(
                &format!(
                    "DELETE FROM {} WHERE {}",
                    quote_ident(self.table.name()),
                    cond.join(" AND ")
                ),
                rusqlite::params_from_iter(params),
            )?;
        }
        Ok(())
    }

    /// Rows of the table that this import wrote and that are still there.
    fn written(&self, tx: &Transaction<'_>) -> Result<u64, Error> {
        let on: Vec<String> = self
            .key_idx
            .iter()
            .map(|&k| {
                let c = quote_ident(&self.columns[k]);
                format!("t.{c} = w.{c}")
            })
            .collect();
        let n: i64 = tx.query_row(
            &format!(
                "SELECT count(*) FROM temp.lumina_import_written AS w JOIN main.{} AS t ON {}",
                quote_ident(self.table.name()),
                on.join(" AND ")
            ),
            [],
            |r| r.get(0),
        )?;
        tx.execute_batch("DROP TABLE temp.lumina_import_written")?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

/// A short quoted rendering of a value for messages.
fn describe(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "NULL".to_owned(),
        Some(Value::Integer(i)) => i.to_string(),
        Some(Value::Real(f)) => f.to_string(),
        Some(Value::Text(t)) => format!("`{t}`"),
        Some(Value::Blob(b)) => format!("<{} bytes>", b.len()),
    }
}

/// The top-level object.
struct TopVisitor<'s, 't, 'c>(&'s mut State<'t, 'c>);

impl<'de> Visitor<'de> for TopVisitor<'_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a lumina export object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let st = self.0;
        while let Some(key) = map.next_key::<String>()? {
            if key == "version" {
                let found = match map.next_value::<serde_json::Value>()? {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                if found != FORMAT_VERSION {
                    return Err(st.abort(Error::UnsupportedVersion { found }));
                }
                st.version = Some(found);
            } else if let Some(t) = Table::all().into_iter().find(|t| t.total_key() == key) {
                let n = map.next_value::<u64>()?;
                st.totals.push((t, n));
            } else if let Some(t) = Table::all().into_iter().find(|t| t.array_key() == key) {
                if let Some(prev) = &st.target {
                    let msg = format!("holds both `{}` and `{key}`", prev.table.array_key());
                    return Err(st.abort(malformed(msg)));
                }
                match TableImport::begin(st.tx, t) {
                    Ok(ti) => st.target = Some(ti),
                    Err(e) => return Err(st.abort(e)),
                }
                map.next_value_seed(RowsSeed(&mut *st))?;
            } else {
                map.next_value::<IgnoredAny>()?;
                if key != "timestamp" {
                    st.warnings
                        .push(format!("unknown top-level key `{key}` ignored"));
                }
            }
        }
        Ok(())
    }
}

/// The rows array.
struct RowsSeed<'s, 't, 'c>(&'s mut State<'t, 'c>);

impl<'de> DeserializeSeed<'de> for RowsSeed<'_, '_, '_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RowsSeed<'_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of row objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let st = self.0;
        while let Some(()) = seq.next_element_seed(RowSeed(&mut *st))? {}
        Ok(())
    }
}

/// One row object.
struct RowSeed<'s, 't, 'c>(&'s mut State<'t, 'c>);

impl<'de> DeserializeSeed<'de> for RowSeed<'_, '_, '_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a row object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let st = self.0;
        let Some(ti) = st.target.as_mut() else {
            return Err(de::Error::custom("row outside a table"));
        };
        while let Some(key) = map.next_key_seed(KeySeed(&ti.columns))? {
            match key {
                Key::Column(i) => {
                    if ti.values[i].is_some() {
                        return Err(de::Error::custom(format_args!(
                            "duplicate key `{}` in row {}",
                            ti.columns[i],
                            ti.rows + 1
                        )));
                    }
                    let raw: Box<RawValue> = map.next_value()?;
                    match cells::cell_value(raw.get(), ti.is_json[i]) {
                        Ok(v) => ti.values[i] = Some(v),
                        Err(reason) => {
                            let e = malformed(format!(
                                "{} row {}: `{}` holds {reason}",
                                ti.table.array_key(),
                                ti.rows + 1,
                                ti.columns[i]
                            ));
                            return Err(st.abort(e));
                        }
                    }
                }
                Key::Unknown(name) => {
                    map.next_value::<IgnoredAny>()?;
                    if ti.unknown_keys.len() < MAX_UNKNOWN_KEYS {
                        ti.unknown_keys.insert(name);
                    }
                }
            }
        }
        let tx = st.tx;
        match ti.insert_row(tx) {
            Ok(()) => Ok(()),
            Err(e) => Err(st.abort(e)),
        }
    }
}

/// A row key: a column index, or a name the table does not have.
enum Key {
    Column(usize),
    Unknown(String),
}

/// Resolves a row key to a column without allocating for known names.
struct KeySeed<'a>(&'a [String]);

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = Key;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a column name")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Key, E> {
        Ok(match self.0.iter().position(|c| c == s) {
            Some(i) => Key::Column(i),
            None => match self.0.iter().position(|c| c.eq_ignore_ascii_case(s)) {
                Some(i) => Key::Column(i),
                None => Key::Unknown(s.to_owned()),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{fill, lumina_db, rows};
    use super::super::{row_counts, write_json};
    use super::*;
    use proptest::prelude::*;
    use std::io::Write;

    const TS: &str = "2026-11-24T07:05:00Z";

    fn export(conn: &Connection, table: Table) -> Vec<u8> {
        let mut out = Vec::new();
        write_json(conn, table, TS, &mut out).expect("export");
        out
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(bytes).expect("gzip");
        enc.finish().expect("gzip")
    }

    /// Two cells are the same, JSON columns up to JSON formatting.
    fn same_cell(json: bool, a: &Value, b: &Value) -> bool {
        if a == b {
            return true;
        }
        match (json, a, b) {
            (true, Value::Text(x), Value::Text(y)) => {
                match (
                    serde_json::from_str::<serde_json::Value>(x),
                    serde_json::from_str::<serde_json::Value>(y),
                ) {
                    (Ok(p), Ok(q)) => p == q,
                    _ => false,
                }
            }
            _ => false,
        }
    }

    fn assert_same_tables(src: &Connection, dst: &Connection) {
        for table in Table::all() {
            let (names_a, rows_a) = rows(src, table);
            let (names_b, rows_b) = rows(dst, table);
            assert_eq!(names_a, names_b);
            assert_eq!(rows_a.len(), rows_b.len(), "{table}");
            for (ra, rb) in rows_a.iter().zip(&rows_b) {
                for (i, (a, b)) in ra.iter().zip(rb).enumerate() {
                    let json = table.json_columns().contains(&names_a[i].as_str());
                    assert!(
                        same_cell(json, a, b),
                        "{table}.{}: {a:?} != {b:?}",
                        names_a[i]
                    );
                }
            }
        }
    }

    fn snapshot(conn: &Connection) -> Vec<(Vec<String>, Vec<Vec<Value>>)> {
        Table::all()
            .into_iter()
            .filter(|t| table_exists(conn, t.name()).expect("exists"))
            .map(|t| rows(conn, t))
            .collect()
    }

    #[test]
    fn json_round_trip_reproduces_every_row() {
        let (_dir, src) = lumina_db(120);
        let dir = tempfile::tempdir().expect("tempdir");
        let mut dst = Connection::open(dir.path().join("restored.db")).expect("open");
        for table in Table::all() {
            let report = import(&mut dst, export(&src, table).as_slice(), false).expect("import");
            assert_eq!(report.table, table);
            assert_eq!(report.rows, rows(&src, table).1.len() as u64);
        }
        assert_same_tables(&src, &dst);
        // Text that was not an embeddable JSON value comes back byte for byte, and
        // compact JSON text (as the app writes it) too.
        let (_, a) = rows(&src, Table::Metadata);
        let (_, b) = rows(&dst, Table::Metadata);
        for (ra, rb) in a.iter().zip(&b) {
            for col in [4, 5, 7] {
                if let Value::Text(t) = &ra[col] {
                    let compact = serde_json::from_str::<serde_json::Value>(t)
                        .map(|v| v.to_string().as_str() == t.as_str())
                        .unwrap_or(false);
                    let embeddable = matches!(t.trim_start().as_bytes().first(), Some(b'[' | b'{'));
                    if compact || !embeddable || serde_json::from_str::<IgnoredAny>(t).is_err() {
                        assert_eq!(ra[col], rb[col]);
                    }
                }
            }
        }
        // Exporting the restored database gives the same files, except for the
        // JSON columns whose original text had non-compact spacing.
        for table in [Table::Collections, Table::Tags, Table::ItemTags] {
            assert_eq!(export(&src, table), export(&dst, table));
        }
    }

    #[test]
    fn import_replaces_existing_rows() {
        let (_dir, src) = lumina_db(30);
        let (_dir2, mut dst) = lumina_db(30);
        dst.execute("UPDATE metadata SET aiDescription = 'changed'", [])
            .expect("update");
        dst.execute("DELETE FROM tags", []).expect("delete");
        import(&mut dst, export(&src, Table::Metadata).as_slice(), false).expect("import");
        import(&mut dst, export(&src, Table::Tags).as_slice(), false).expect("import");
        assert_same_tables(&src, &dst);
    }

    #[test]
    fn gzip_import_works() {
        let (_dir, src) = lumina_db(40);
        let mut dst = Connection::open_in_memory().expect("open");
        for table in Table::all() {
            let gz = gzip(&export(&src, table));
            assert_eq!(&gz[..2], &[0x1f, 0x8b]);
            import(&mut dst, gz.as_slice(), false).expect("gzip import");
        }
        assert_same_tables(&src, &dst);
    }

    #[test]
    fn unsupported_version_is_refused_and_db_unchanged() {
        let (_dir, src) = lumina_db(20);
        let (_dir2, mut dst) = lumina_db(5);
        let before = snapshot(&dst);
        let text = String::from_utf8(export(&src, Table::Metadata)).expect("utf8");
        let bad = text.replacen("\"1.0.0\"", "\"9.9.9\"", 1);
        let err = import(&mut dst, bad.as_bytes(), false).expect_err("refused");
        assert!(matches!(err, Error::UnsupportedVersion { ref found } if found == "9.9.9"));
        assert!(err.is_user_error());
        assert!(err.to_string().contains("upgrade"));
        assert_eq!(snapshot(&dst), before);

        // A version after the rows still rolls them back.
        let late = r#"{"metadata":[{"id":"x"}],"version":"2.0.0"}"#;
        let err = import(&mut dst, late.as_bytes(), false).expect_err("refused");
        assert!(matches!(err, Error::UnsupportedVersion { .. }));
        assert_eq!(snapshot(&dst), before);
        // A number is reported as its JSON text.
        let err = import(&mut dst, &b"{\"version\":1,\"tags\":[]}"[..], false).expect_err("num");
        assert!(matches!(err, Error::UnsupportedVersion { ref found } if found == "1"));
    }

    #[test]
    fn referential_problems_warn_or_refuse() {
        let (_dir, src) = lumina_db(50);
        let meta = export(&src, Table::Metadata);
        let rel = export(&src, Table::ItemTags);

        // Empty target: every non-NULL collectionId dangles; lenient import warns.
        let mut lenient = Connection::open_in_memory().expect("open");
        let report = import(&mut lenient, meta.as_slice(), false).expect("lenient");
        assert_eq!(report.rows, 50);
        assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
        assert!(report.warnings[0].contains("missing collection"));

        // Target with collections but a missing one: strict refuses, db unchanged.
        let mut strict = Connection::open_in_memory().expect("open");
        fill(&strict, 0);
        let before = snapshot(&strict);
        let err = import(&mut strict, meta.as_slice(), true).expect_err("strict");
        let Error::Referential { count, example } = &err else {
            panic!("{err:?}")
        };
        let expected = rows(&src, Table::Metadata)
            .1
            .iter()
            .filter(|r| r[1] == Value::Text("c-missing".into()))
            .count() as u64;
        assert_eq!(*count, expected);
        assert!(example.contains("c-missing"), "{example}");
        assert!(err.is_user_error());
        assert_eq!(snapshot(&strict), before);
        let err = import(&mut strict, rel.as_slice(), true).expect_err("strict tags");
        assert!(matches!(err, Error::Referential { .. }));
        assert_eq!(snapshot(&strict), before);

        // The same files in strict mode into a db that has everything: accepted.
        let mut full = Connection::open_in_memory().expect("open");
        for t in [Table::Collections, Table::Tags] {
            import(&mut full, export(&src, t).as_slice(), true).expect("strict ok");
        }
        full.execute(
            "INSERT INTO collections(id, name) VALUES ('c-missing', 'x')",
            [],
        )
        .expect("fix");
        full.execute("INSERT INTO tags(id, name) VALUES ('t-missing', 'x')", [])
            .expect("fix");
        let report = import(&mut full, meta.as_slice(), true).expect("strict ok");
        assert!(report.warnings.is_empty());
        import(&mut full, rel.as_slice(), true).expect("strict ok");
    }

    #[test]
    fn malformed_inputs_are_errors() {
        let (_dir, src) = lumina_db(10);
        let good = String::from_utf8(export(&src, Table::Metadata)).expect("utf8");
        let cases: Vec<(String, &str)> = vec![
            (good[..good.len() / 2].to_owned(), "truncated"),
            (String::new(), "empty"),
            ("[]".into(), "array at top"),
            ("{\"version\":\"1.0.0\"}".into(), "no table"),
            ("{\"metadata\":[]}".into(), "no version"),
            (
                "{\"version\":\"1.0.0\",\"metadata\":{}}".into(),
                "rows not an array",
            ),
            (
                "{\"version\":\"1.0.0\",\"metadata\":[1]}".into(),
                "row not an object",
            ),
            (
                "{\"version\":\"1.0.0\",\"metadata\":[{\"id\":[1]}]}".into(),
                "array in plain column",
            ),
            (
                "{\"version\":\"1.0.0\",\"metadata\":[{\"id\":{}}]}".into(),
                "object in plain column",
            ),
            (
                "{\"version\":\"1.0.0\",\"metadata\":[{\"aiTags\":[]}]}".into(),
                "no id",
            ),
            (
                "{\"version\":\"1.0.0\",\"metadata\":[{\"id\":null}]}".into(),
                "null id",
            ),
            (
                "{\"version\":\"1.0.0\",\"metadata\":[{\"id\":\"a\",\"id\":\"b\"}]}".into(),
                "dup key",
            ),
            (
                "{\"version\":\"1.0.0\",\"metadata\":[{\"id\":18446744073709551615}]}".into(),
                "u64",
            ),
            (
                "{\"version\":\"1.0.0\",\"totalItems\":-1,\"metadata\":[]}".into(),
                "negative total",
            ),
            (
                "{\"version\":\"1.0.0\",\"totalItems\":3,\"metadata\":[]}".into(),
                "wrong total",
            ),
            (
                "{\"version\":\"1.0.0\",\"tags\":[],\"metadata\":[]}".into(),
                "two tables",
            ),
            (
                "{\"version\":\"1.0.0\",\"tags\":[]} trailing".into(),
                "trailing",
            ),
            (
                "{\"version\":\"1.0.0\",\"collections\":[{\"id\":\"c\"}]}".into(),
                "NOT NULL name",
            ),
            (
                good.replacen("\"totalItems\":10", "\"totalItems\":\"10\"", 1),
                "total as string",
            ),
        ];
        let (_dir2, mut dst) = lumina_db(3);
        let before = snapshot(&dst);
        for (input, what) in cases {
            let err = import(&mut dst, input.as_bytes(), false)
                .map(|r| panic!("{what}: accepted {r:?}"))
                .unwrap_err();
            assert!(err.is_user_error(), "{what}: {err:?}");
            assert_eq!(snapshot(&dst), before, "{what}");
        }
        // Truncated and corrupted gzip.
        let gz = gzip(good.as_bytes());
        for bad in [&gz[..gz.len() / 2], &[0x1f, 0x8b, 0, 0, 0][..]] {
            let err = import(&mut dst, bad, false).expect_err("bad gzip");
            assert!(err.is_user_error(), "{err:?}");
        }
        assert_eq!(snapshot(&dst), before);
    }

    #[test]
    fn app_format_and_unknown_keys() {
        // As the app writes it: pretty-printed, arrays for empty tags, extra key.
        let file = r#"{
          "version": "1.0.0",
          "timestamp": "2025-01-01T00:00:00.000Z",
          "totalItems": 1,
          "metadata": [
            {"id": "p1", "collectionId": null, "aiTags": [], "aiTagsDetailed": [
                {"name": "sky", "confidence": 0.9}
              ],
             "manualTags": ["été", 1.50], "isHidden": false, "lastModified": 5, "thumbnail": "x"}
          ],
          "exportedBy": "app"
        }"#;
        let mut db = Connection::open_in_memory().expect("open");
        let report = import(&mut db, file.as_bytes(), false).expect("import");
        assert_eq!(report.rows, 1);
        assert_eq!(report.warnings.len(), 2, "{:?}", report.warnings);
        let (_, r) = rows(&db, Table::Metadata);
        assert_eq!(r[0][4], Value::Text("[]".into()));
        // Spread over lines (pretty-printed): whitespace between tokens removed.
        assert_eq!(
            r[0][5],
            Value::Text(r#"[{"name":"sky","confidence":0.9}]"#.into())
        );
        // On one line: the exact text, digits included.
        assert_eq!(r[0][7], Value::Text(r#"["été", 1.50]"#.into()));
        assert_eq!(r[0][8], Value::Integer(0));
        let err = import(&mut db, file.as_bytes(), true).expect_err("strict");
        assert!(matches!(err, Error::Malformed { .. }), "{err:?}");
    }

    #[test]
    fn creates_missing_table_only() {
        let (_dir, src) = lumina_db(5);
        let mut db = Connection::open_in_memory().expect("open");
        import(&mut db, export(&src, Table::Tags).as_slice(), false).expect("import");
        let counts = row_counts(&db).expect("counts");
        assert_eq!(counts, vec![("tags".to_owned(), 20)]);
    }

    /// A small valid export of each table, made once.
    fn samples() -> &'static Vec<Vec<u8>> {
        static SAMPLES: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
        SAMPLES.get_or_init(|| {
            let (_dir, src) = lumina_db(12);
            Table::all().into_iter().map(|t| export(&src, t)).collect()
        })
    }

    #[derive(Debug, Clone)]
    enum Mutation {
        Flip(usize, u8),
        Delete(usize, usize),
        Insert(usize, Vec<u8>),
        Truncate(usize),
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            (any::<usize>(), 0u8..8).prop_map(|(p, b)| Mutation::Flip(p, b)),
            (any::<usize>(), 1usize..40).prop_map(|(p, n)| Mutation::Delete(p, n)),
            (
                any::<usize>(),
                prop::collection::vec(
                    prop_oneof![
                        Just(b'"'),
                        Just(b'['),
                        Just(b']'),
                        Just(b'{'),
                        Just(b'}'),
                        Just(b','),
                        Just(b':'),
                        Just(b'9'),
                        Just(b'\\'),
                        any::<u8>()
                    ],
                    1..8
                )
            )
                .prop_map(|(p, v)| Mutation::Insert(p, v)),
            any::<usize>().prop_map(Mutation::Truncate),
        ]
    }

    fn apply(mut bytes: Vec<u8>, muts: &[Mutation]) -> Vec<u8> {
        for m in muts {
            let len = bytes.len().max(1);
            match m {
                Mutation::Flip(p, bit) => {
                    if let Some(b) = bytes.get_mut(p % len) {
                        *b ^= 1 << bit;
                    }
                }
                Mutation::Delete(p, n) => {
                    let start = (p % len).min(bytes.len());
                    let end = (start + n).min(bytes.len());
                    bytes.drain(start..end);
                }
                Mutation::Insert(p, v) => {
                    let at = (p % len).min(bytes.len());
                    bytes.splice(at..at, v.iter().copied());
                }
                Mutation::Truncate(p) => bytes.truncate(p % len),
            }
        }
        bytes
    }

    /// Import must return (an error or a report), never panic, and leave the database
    /// usable; on error nothing was written.
    fn check_no_panic(bytes: &[u8], strict: bool) {
        let mut db = Connection::open_in_memory().expect("open");
        if let Err(e) = import(&mut db, bytes, strict) {
            let _ = e.to_string();
            assert!(row_counts(&db).expect("counts").is_empty());
        }
        assert!(db.is_autocommit());
    }

    proptest! {
        #[test]
        fn import_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512), strict: bool) {
            check_no_panic(&bytes, strict);
            let mut gz = vec![0x1f, 0x8b];
            gz.extend_from_slice(&bytes);
            check_no_panic(&gz, strict);
        }

        #[test]
        fn import_never_panics_on_mutated_exports(
            which in 0usize..4,
            muts in prop::collection::vec(mutation(), 1..4),
            gz: bool,
            strict: bool,
        ) {
            let bytes = apply(samples()[which].clone(), &muts);
            let bytes = if gz { gzip(&bytes) } else { bytes };
            check_no_panic(&bytes, strict);
        }

        #[test]
        fn mutated_gzip_never_panics(which in 0usize..4, muts in prop::collection::vec(mutation(), 1..3)) {
            let bytes = apply(gzip(&samples()[which]), &muts);
            check_no_panic(&bytes, false);
        }
    }
}
