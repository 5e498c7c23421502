//! Schema-aware exports of a Lumina Portfolio database: JSON and CSV files of the
//! tables `metadata`, `collections`, `tags` and `item_tags`, the import of those JSON
//! files back into a database, and the referential consistency check the app's old
//! validator made.
//!
//! Owns: the export file format (version `1.0.0`, compatible with the app's own
//! exports), the Lumina table list and schema, and this module's [`Error`].
//! Knows nothing of repositories, chunks or snapshots: it sees only a
//! [`rusqlite::Connection`] and `std::io` readers and writers.
//!
//! Invariants:
//! - An export is a pure function of the table contents and the timestamp given by
//!   the caller: same rows, same timestamp, same bytes (so it deduplicates).
//! - Exports stream: memory use does not grow with the number of rows.
//! - An import is one transaction: it applies every row or none.
//!
//! The JSON layout, byte by byte (one row per line so that content-defined chunking
//! resynchronises right after a changed row):
//!
//! ```text
//! {"version":"1.0.0","timestamp":"<as given>","totalItems":N,"metadata":[
//! {"id":"…","collectionId":"…",…},
//! {"id":"…",…}
//! ]}
//! ```
//!
//! `collections.json` uses `totalCollections`/`collections`, `tags.json`
//! `totalTags`/`tags`, `item_tags.json` `totalRelations`/`relations`. See [`write_json`]
//! for how each SQLite value is written and [`import`](import()) for how it is read back.

use std::fmt;
use std::str::FromStr;

use rusqlite::Connection;

mod cells;
mod check;
mod csv;
mod import;
mod json;
pub(crate) use json::{header, row_json, RowRenderer, TRAILER};
mod shape;

pub use self::check::ConsistencyScan;
pub use self::csv::write_csv;
pub use self::import::{import, ImportReport};
pub use self::json::{write_json, write_json_observed};

/// The export format version this build writes and the only one it imports.
pub const FORMAT_VERSION: &str = "1.0.0";

/// One of the four Lumina tables that have an export file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// `metadata`: one row per photo.
    Metadata,
    /// `collections`: the user's collections.
    Collections,
    /// `tags`: the tag vocabulary.
    Tags,
    /// `item_tags`: which photo carries which tag (`relations` in the JSON file).
    ItemTags,
}

impl Table {
    /// All four tables in dependency order (collections, tags, metadata, item_tags):
    /// importing their files in this order raises no referential warnings.
    pub const fn all() -> [Table; 4] {
        [
            Table::Collections,
            Table::Tags,
            Table::Metadata,
            Table::ItemTags,
        ]
    }

    /// The SQL table name: `metadata`, `collections`, `tags` or `item_tags`.
    pub const fn name(self) -> &'static str {
        match self {
            Table::Metadata => "metadata",
            Table::Collections => "collections",
            Table::Tags => "tags",
            Table::ItemTags => "item_tags",
        }
    }

    /// The JSON export's file name, e.g. `metadata.json`.
    pub const fn file_name(self) -> &'static str {
        match self {
            Table::Metadata => "metadata.json",
            Table::Collections => "collections.json",
            Table::Tags => "tags.json",
            Table::ItemTags => "item_tags.json",
        }
    }

    /// The CSV export's file name, e.g. `metadata.csv`.
    pub const fn csv_file_name(self) -> &'static str {
        match self {
            Table::Metadata => "metadata.csv",
            Table::Collections => "collections.csv",
            Table::Tags => "tags.csv",
            Table::ItemTags => "item_tags.csv",
        }
    }

    /// The top-level JSON key holding the rows (`relations` for `item_tags`).
    pub const fn array_key(self) -> &'static str {
        match self {
            Table::Metadata => "metadata",
            Table::Collections => "collections",
            Table::Tags => "tags",
            Table::ItemTags => "relations",
        }
    }

    /// The top-level JSON key holding the row count, e.g. `totalItems`.
    pub const fn total_key(self) -> &'static str {
        match self {
            Table::Metadata => "totalItems",
            Table::Collections => "totalCollections",
            Table::Tags => "totalTags",
            Table::ItemTags => "totalRelations",
        }
    }

    /// The columns of the Lumina table (as the app creates it); an import refuses
    /// an existing table that lacks one.
    pub const fn columns(self) -> &'static [&'static str] {
        match self {
            Table::Collections => &["id", "name", "createdAt", "lastOpenedAt", "isActive"],
            Table::Metadata => &[
                "id",
                "collectionId",
                "virtualFolderId",
                "aiDescription",
                "aiTags",
                "aiTagsDetailed",
                "colorTag",
                "manualTags",
                "isHidden",
                "lastModified",
                "createdAt",
            ],
            Table::Tags => &[
                "id",
                "name",
                "normalizedName",
                "type",
                "confidence",
                "parentId",
                "createdAt",
            ],
            Table::ItemTags => &["itemId", "tagId", "addedAt"],
        }
    }

    /// The primary-key columns; exports are ordered by them.
    pub const fn key_columns(self) -> &'static [&'static str] {
        match self {
            Table::ItemTags => &["itemId", "tagId"],
            _ => &["id"],
        }
    }

    /// Columns holding JSON text, written parsed in JSON exports.
    pub const fn json_columns(self) -> &'static [&'static str] {
        match self {
            Table::Metadata => &["aiTags", "aiTagsDetailed", "manualTags"],
            _ => &[],
        }
    }

    /// The app's DDL for this table (and its indexes), idempotent (`IF NOT EXISTS`).
    pub const fn create_sql(self) -> &'static str {
        match self {
            Table::Collections => {
                "CREATE TABLE IF NOT EXISTS collections(id TEXT PRIMARY KEY, name TEXT NOT NULL, \
                 createdAt INTEGER, lastOpenedAt INTEGER, isActive INTEGER);"
            }
            Table::Metadata => {
                "CREATE TABLE IF NOT EXISTS metadata(id TEXT PRIMARY KEY, collectionId TEXT, \
                 virtualFolderId TEXT, aiDescription TEXT, aiTags TEXT, aiTagsDetailed TEXT, \
                 colorTag TEXT, manualTags TEXT, isHidden INTEGER DEFAULT 0, \
                 lastModified INTEGER, createdAt INTEGER);\n\
                 CREATE INDEX IF NOT EXISTS idx_metadata_collection ON metadata(collectionId);\n\
                 CREATE INDEX IF NOT EXISTS idx_metadata_lastModified ON metadata(lastModified);"
            }
            Table::Tags => {
                "CREATE TABLE IF NOT EXISTS tags(id TEXT PRIMARY KEY, name TEXT NOT NULL, \
                 normalizedName TEXT UNIQUE, type TEXT, confidence REAL, parentId TEXT, \
                 createdAt INTEGER);"
            }
            Table::ItemTags => {
                "CREATE TABLE IF NOT EXISTS item_tags(itemId TEXT, tagId TEXT, addedAt INTEGER, \
                 PRIMARY KEY(itemId, tagId));"
            }
        }
    }

    /// `SELECT *` in primary-key order: the row order of every export.
    fn select_sql(self) -> String {
        format!(
            "SELECT * FROM {} ORDER BY {}",
            self.name(),
            self.key_columns().join(", ")
        )
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Table {
    type Err = Error;

    /// Parses a table name as [`Table::name`] prints it.
    fn from_str(s: &str) -> Result<Self, Error> {
        Table::all()
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| Error::UnknownTable { name: s.to_owned() })
    }
}

/// Everything that can go wrong in an export, import or consistency check.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// SQLite refused a query or statement.
    #[error("SQLite error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Reading the export or writing it failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The CSV writer failed (in practice, an I/O error underneath).
    #[error("CSV error: {0}")]
    Csv(#[from] ::csv::Error),
    /// The file to import is not well-formed JSON, or a value has the wrong type.
    #[error("the export file is not valid: {0}; check that it is a complete lumina export")]
    Json(#[from] serde_json::Error),
    /// The database lacks one of the four Lumina tables.
    #[error("not a Lumina database: table `{missing}` is missing")]
    NotLumina {
        /// The first missing table.
        missing: String,
    },
    /// A table name other than `metadata`, `collections`, `tags`, `item_tags`.
    #[error("unknown table `{name}`; expected metadata, collections, tags or item_tags")]
    UnknownTable {
        /// The name given.
        name: String,
    },
    /// The export declares a version this build cannot read.
    #[error("export version `{found}` is not supported (this build reads {FORMAT_VERSION}); upgrade lumina-backup")]
    UnsupportedVersion {
        /// The version string found in the file (JSON text if it was not a string).
        found: String,
    },
    /// Well-formed JSON that is not a valid export.
    #[error("malformed export: {reason}")]
    Malformed {
        /// What is wrong, naming the row or key.
        reason: String,
    },
    /// A strict import found rows pointing at rows that do not exist; nothing was written.
    #[error("{count} imported rows reference missing rows, e.g. {example}; import the referenced table first, or import without strict mode")]
    Referential {
        /// How many rows have a dangling reference.
        count: u64,
        /// The first of them, as a human line.
        example: String,
    },
    /// An import's target table exists with another shape; nothing was written.
    #[error("table `{table}` is not a Lumina {table} table: {reason}; import into a Lumina database or into a new file")]
    NotLuminaTable {
        /// The table.
        table: Table,
        /// What differs (`missing column collectionId`).
        reason: String,
    },
    /// The table changed between counting and reading it (only possible if the caller
    /// shares the connection with a writer while an export runs).
    #[error(
        "table `{table}` changed during export ({counted} rows counted, {written} written); retry"
    )]
    Changed {
        /// The table being exported.
        table: Table,
        /// `COUNT(*)` at the start.
        counted: u64,
        /// Rows actually streamed.
        written: u64,
    },
}

impl Error {
    /// True when the input (an export file, a table name) is at fault rather than the
    /// system: the CLI maps these to exit code 2.
    pub fn is_user_error(&self) -> bool {
        match self {
            Error::Json(e) => !e.is_io(),
            Error::UnknownTable { .. }
            | Error::UnsupportedVersion { .. }
            | Error::Malformed { .. }
            | Error::Referential { .. }
            | Error::NotLumina { .. }
            | Error::NotLuminaTable { .. } => true,
            Error::Sqlite(_) | Error::Io(_) | Error::Csv(_) | Error::Changed { .. } => false,
        }
    }
}

/// The Lumina tables missing from `conn`, in [`Table::all`] order.
pub fn missing_tables(conn: &Connection) -> Result<Vec<Table>, Error> {
    let mut stmt = conn
        .prepare_cached("SELECT 1 FROM sqlite_master WHERE type = 'table' AND lower(name) = ?1")?;
    let mut missing = Vec::new();
    for t in Table::all() {
        if !stmt.exists([t.name()])? {
            missing.push(t);
        }
    }
    Ok(missing)
}

/// True when all four Lumina tables exist in `conn`.
pub fn is_lumina(conn: &Connection) -> Result<bool, Error> {
    Ok(missing_tables(conn)?.is_empty())
}

/// `Err(NotLumina)` unless `table` exists.
fn require_table(conn: &Connection, table: Table) -> Result<(), Error> {
    if table_exists(conn, table.name())? {
        Ok(())
    } else {
        Err(Error::NotLumina {
            missing: table.name().to_owned(),
        })
    }
}

/// Whether a table of that name (ASCII case-insensitive, as SQLite resolves it) exists.
fn table_exists(conn: &Connection, name: &str) -> Result<bool, Error> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND lower(name) = lower(?1)",
        )?
        .exists([name])?)
}

/// Every user table (names not starting with `sqlite_`) with its row count, sorted by
/// name. Works on any SQLite database, not only Lumina's.
pub fn row_counts(conn: &Connection) -> Result<Vec<(String, u64)>, Error> {
    let mut names: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' \
             AND substr(name, 1, 7) <> 'sqlite_'",
        )?
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<_, _>>()?;
    names.sort();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let n: i64 = conn.query_row(
            &format!("SELECT COUNT(*) FROM {}", quote_ident(&name)),
            [],
            |r| r.get(0),
        )?;
        out.push((name, u64::try_from(n).unwrap_or(0)));
    }
    Ok(out)
}

/// An SQL identifier in double quotes, embedded quotes doubled.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Runs `f` inside one read transaction so that every query it makes sees the same
/// snapshot; if the caller already has a transaction open, runs inside that one.
fn with_read_snapshot<T>(
    conn: &Connection,
    f: impl FnOnce() -> Result<T, Error>,
) -> Result<T, Error> {
    if !conn.is_autocommit() {
        return f();
    }
    let tx = conn.unchecked_transaction()?;
    let out = f()?;
    // Read-only: ending it either way releases the snapshot; commit reports errors.
    tx.commit()?;
    Ok(out)
}

/// Lowercase hex of a BLOB, as exports write BLOB values.
fn push_hex(buf: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    buf.reserve(bytes.len() * 2);
    for &b in bytes {
        buf.push(HEX[usize::from(b >> 4)]);
        buf.push(HEX[usize::from(b & 0x0f)]);
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! A real Lumina database with awkward data, and row comparison helpers.

    use rusqlite::types::Value;
    use rusqlite::{params, Connection};

    use super::Table;

    /// Strings that break naive CSV/JSON writers.
    pub const NASTY: &[&str] = &[
        "plain",
        "with \"quotes\" and 'single'",
        "comma, separated, values",
        "line one\nline two\r\nline three",
        "Éé 東京 😀",
        "",
        " leading and trailing ",
        "tab\there \\ backslash \u{1} control",
        "=cmd|' /C calc'!A0",
    ];

    /// Creates the four tables and `n` photos (with `n` % 7 orphans) in `conn`.
    pub fn fill(conn: &Connection, n: usize) {
        for t in Table::all() {
            conn.execute_batch(t.create_sql()).expect("schema");
        }
        let cols = ["c-1", "c-2", "c,3 \"Éé\""];
        for (k, c) in cols.iter().enumerate() {
            let k = k as i64;
            conn.execute(
                "INSERT INTO collections VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    c,
                    NASTY[k as usize % NASTY.len()],
                    1_700_000_000 + k,
                    None::<i64>,
                    k % 2
                ],
            )
            .expect("collection");
        }
        for k in 0..20_i64 {
            conn.execute(
                "INSERT INTO tags VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    format!("t-{k}"),
                    format!("{} {k}", NASTY[k as usize % NASTY.len()]),
                    format!("norm-{k}"),
                    if k % 3 == 0 { None } else { Some("ai") },
                    if k % 4 == 0 {
                        None
                    } else {
                        Some(k as f64 / 7.0)
                    },
                    if k > 0 && k % 5 == 0 {
                        Some(format!("t-{}", k - 1))
                    } else {
                        None
                    },
                    if k == 1 {
                        i64::MIN
                    } else if k == 2 {
                        i64::MAX
                    } else {
                        -k
                    },
                ],
            )
            .expect("tag");
        }
        for i in 0..n {
            let nasty = NASTY[i % NASTY.len()];
            let collection = if i % 7 == 3 {
                "c-missing".to_owned()
            } else {
                cols[i % 3].to_owned()
            };
            let ai_tags: Option<String> = match i % 9 {
                0 => None,
                1 => Some("not json [".into()),
                2 => Some("\"a json string\"".into()),
                3 => Some("null".into()),
                4 => Some(r#"["spaced", "python", "style"]"#.into()),
                5 => Some("[\n  \"multi\",\n  \"line\"\n]".into()),
                6 => Some(String::new()),
                _ => Some(serde_json::to_string(&[nasty, "x"]).expect("json")),
            };
            let detailed =
                serde_json::json!([{"name": nasty, "confidence": 0.5 + (i as f64) / 1000.0}]);
            conn.execute(
                "INSERT INTO metadata VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    format!("/photos/{i:04}/{nasty}.jpg"),
                    if i % 11 == 5 { None } else { Some(collection) },
                    if i % 2 == 0 {
                        None
                    } else {
                        Some(format!("vf-{i}"))
                    },
                    format!("{nasty} — description {i}"),
                    ai_tags,
                    if i % 10 == 0 {
                        Some("{bad".to_owned())
                    } else {
                        Some(detailed.to_string())
                    },
                    if i % 3 == 0 { None } else { Some("red") },
                    if i % 4 == 0 {
                        "[]".to_owned()
                    } else {
                        format!(r#"["manual {i}"]"#)
                    },
                    (i % 2) as i64,
                    1_790_000_000_i64 + i as i64,
                    1_780_000_000_i64 - i as i64,
                ],
            )
            .expect("metadata");
            for k in 0..(i % 4) {
                let tag = if i % 13 == 6 && k == 0 {
                    "t-missing".to_owned()
                } else {
                    format!("t-{}", (i + k) % 20)
                };
                let item = if i % 17 == 8 && k == 1 {
                    "no-such-item".to_owned()
                } else {
                    format!("/photos/{i:04}/{nasty}.jpg")
                };
                conn.execute(
                    "INSERT OR IGNORE INTO item_tags VALUES (?1, ?2, ?3)",
                    params![item, tag, 1_790_000_000_i64 + (i * 10 + k) as i64],
                )
                .expect("item_tags");
            }
        }
    }

    /// A file-backed Lumina database with `n` photos in a fresh temp dir.
    pub fn lumina_db(n: usize) -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = Connection::open(dir.path().join("lumina.db")).expect("open");
        fill(&conn, n);
        (dir, conn)
    }

    /// Column names and every row of `table` in primary-key order.
    pub fn rows(conn: &Connection, table: Table) -> (Vec<String>, Vec<Vec<Value>>) {
        let mut stmt = conn.prepare(&table.select_sql()).expect("select");
        let names = stmt
            .column_names()
            .iter()
            .map(|s| (*s).to_owned())
            .collect::<Vec<_>>();
        let n = names.len();
        let rows = stmt
            .query_map([], |r| {
                (0..n)
                    .map(|i| r.get::<_, Value>(i))
                    .collect::<Result<Vec<_>, _>>()
            })
            .expect("query")
            .collect::<Result<Vec<_>, _>>()
            .expect("rows");
        (names, rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_round_trip() {
        for t in Table::all() {
            assert_eq!(t.name().parse::<Table>().expect("parse"), t);
            assert_eq!(t.file_name(), format!("{}.json", t.name()));
            assert_eq!(t.to_string(), t.name());
        }
        let err = "photos".parse::<Table>().expect_err("unknown");
        assert!(err.is_user_error());
        assert!(err.to_string().contains("photos"));
    }

    #[test]
    fn is_lumina_needs_all_four_tables() {
        let conn = Connection::open_in_memory().expect("open");
        assert!(!is_lumina(&conn).expect("check"));
        for t in [Table::Metadata, Table::Collections, Table::Tags] {
            conn.execute_batch(t.create_sql()).expect("ddl");
        }
        assert!(!is_lumina(&conn).expect("check"));
        assert_eq!(
            missing_tables(&conn).expect("missing"),
            vec![Table::ItemTags]
        );
        conn.execute_batch(Table::ItemTags.create_sql())
            .expect("ddl");
        assert!(is_lumina(&conn).expect("check"));
    }

    #[test]
    fn row_counts_lists_user_tables_sorted() {
        let (_dir, conn) = test_support::lumina_db(30);
        conn.execute_batch(
            "CREATE TABLE \"Weird \"\"name\"(x); INSERT INTO \"Weird \"\"name\" VALUES (1);",
        )
        .expect("extra");
        let counts = row_counts(&conn).expect("counts");
        let names: Vec<&str> = counts.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "Weird \"name",
                "collections",
                "item_tags",
                "metadata",
                "tags"
            ]
        );
        assert_eq!(counts[0].1, 1);
        assert_eq!(counts[3].1, 30);
        assert_eq!(counts[4].1, 20);
    }
}
