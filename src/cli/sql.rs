//! `sql`: a read-only SQL query on a snapshot's database, printed as rows
//! (`|`-separated with a header line, as `sqlite3 -header` prints them) or,
//! with `--json`, as one document streamed row by row.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use lumina_backup::{Error, QuerySink, SqlValue};

use super::common::Ctx;
use super::errors;
use super::output::clean;

/// `sql` arguments.
#[derive(Args, Debug)]
pub(super) struct SqlArgs {
    /// Snapshot id, unique prefix, or `latest`.
    snap: String,
    /// One read-only statement: `SELECT ...`, `WITH ...`, or a read-only `PRAGMA`.
    query: String,
    /// With `latest`: which database's newest (needed when the repository has several).
    #[arg(long, value_name = "PATH")]
    db: Option<PathBuf>,
}

/// Rows for a terminal or a pipe: a header line, then one line per row;
/// NULL as nothing, BLOBs as `X'hex'`, control characters escaped.
struct Plain<W: Write>(W);

impl<W: Write> QuerySink for Plain<W> {
    fn columns(&mut self, names: &[String]) -> Result<(), Error> {
        let line: Vec<String> = names.iter().map(|n| clean(n)).collect();
        writeln!(self.0, "{}", line.join("|")).map_err(stdout_error)
    }

    fn row(&mut self, values: &[SqlValue]) -> Result<(), Error> {
        let line: Vec<String> = values.iter().map(plain).collect();
        writeln!(self.0, "{}", line.join("|")).map_err(stdout_error)
    }
}

fn plain(v: &SqlValue) -> String {
    match v {
        SqlValue::Null => String::new(),
        SqlValue::Integer(i) => i.to_string(),
        SqlValue::Real(r) => r.to_string(),
        SqlValue::Text(t) => clean(t),
        SqlValue::Blob(b) => format!("X'{}'", hex::encode_upper(b)),
    }
}

/// `{"snapshot":ID,"columns":[...],"rows":[[...],...],"row_count":N}`, written
/// as the rows come (a result may be larger than memory).
struct Json<W: Write> {
    out: W,
    snapshot: String,
    started: bool,
    rows: u64,
}

impl<W: Write> Json<W> {
    /// Closes the document; `failure` adds `error` and `exit_code` (a failure
    /// after rows were written is reported inside the same document).
    fn finish(&mut self, failure: Option<(&str, i32)>) -> Result<(), Error> {
        let mut tail = format!("],\"row_count\":{}", self.rows);
        if let Some((message, code)) = failure {
            let message = serde_json::to_string(message).map_err(json_error)?;
            tail.push_str(&format!(",\"error\":{message},\"exit_code\":{code}"));
        }
        tail.push_str("}\n");
        self.out.write_all(tail.as_bytes()).map_err(stdout_error)?;
        self.out.flush().map_err(stdout_error)
    }
}

impl<W: Write> QuerySink for Json<W> {
    fn columns(&mut self, names: &[String]) -> Result<(), Error> {
        let snapshot = serde_json::to_string(&self.snapshot).map_err(json_error)?;
        let names = serde_json::to_string(names).map_err(json_error)?;
        write!(
            self.out,
            "{{\"snapshot\":{snapshot},\"columns\":{names},\"rows\":["
        )
        .map_err(stdout_error)?;
        self.started = true;
        Ok(())
    }

    fn row(&mut self, values: &[SqlValue]) -> Result<(), Error> {
        if self.rows > 0 {
            self.out.write_all(b",").map_err(stdout_error)?;
        }
        serde_json::to_writer(&mut self.out, values).map_err(json_error)?;
        self.rows += 1;
        Ok(())
    }
}

fn stdout_error(e: std::io::Error) -> Error {
    Error::io("writing", "stdout", e)
}

fn json_error(e: serde_json::Error) -> Error {
    Error::io("writing", "stdout", std::io::Error::other(e))
}

pub(super) fn run(ctx: &Ctx, SqlArgs { snap, query, db }: SqlArgs) -> Result<i32, Error> {
    let repo = ctx.open_read("sql")?;
    let s = repo.resolve_in(&snap, db.as_deref())?;
    let bar = ctx.bar();
    let stdout = std::io::stdout();
    let out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    if !ctx.global.json {
        let mut sink = Plain(out);
        let rows = repo.query(&s, &query, &bar, &mut sink)?;
        sink.0.flush().map_err(stdout_error)?;
        drop(bar);
        if !ctx.global.quiet {
            eprintln!("{rows} row{}", if rows == 1 { "" } else { "s" });
        }
        return Ok(0);
    }
    let mut sink = Json {
        out,
        snapshot: s.id.to_string(),
        started: false,
        rows: 0,
    };
    match repo.query(&s, &query, &bar, &mut sink) {
        Ok(_) => {
            sink.finish(None)?;
            Ok(0)
        }
        // Nothing written yet: the usual `{"error":...}` document.
        Err(e) if !sink.started => Err(e),
        Err(e) => {
            let message = errors::with_advice(e.to_string(), &e);
            let code = errors::exit_code(&e);
            eprintln!("lumina-backup: {message}");
            sink.finish(Some((&message, code)))?;
            Ok(code)
        }
    }
}
