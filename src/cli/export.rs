//! `export`: Lumina tables from a database, or from a snapshot, to JSON or CSV.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use clap::Args;

use lumina_backup::Error;
use lumina_backup::Table;
use lumina_backup::{export_database, ExportFormat, ExportRequest};

use super::common::Ctx;
use super::output::print_json;

/// `export` arguments.
#[derive(Args, Debug)]
pub(super) struct ExportArgs {
    /// A database path, or a snapshot (id, prefix, `latest`) when no such file exists.
    source: String,
    /// metadata, collections, tags, item_tags, or all.
    #[arg(long, default_value = "all")]
    table: String,
    /// json or csv.
    #[arg(long, default_value = "json")]
    format: String,
    /// Output file (one table) or folder (all).
    #[arg(long, value_name = "PATH")]
    out: PathBuf,
    /// gzip the output (the app's old `.json.gz` format).
    #[arg(long)]
    gzip: bool,
    /// With SOURCE `latest`: which database's newest (needed when the repository has several).
    #[arg(long, value_name = "PATH")]
    db: Option<PathBuf>,
}

pub(super) fn run(
    ctx: &Ctx,
    ExportArgs {
        source,
        table,
        format,
        out,
        gzip,
        db,
    }: ExportArgs,
) -> Result<(), Error> {
    let (source, table, format, db) = (
        source.as_str(),
        table.as_str(),
        format.as_str(),
        db.as_deref(),
    );
    let tables = if table == "all" {
        Table::all().to_vec()
    } else {
        vec![Table::from_str(table).map_err(|_| {
            Error::invalid_input(format!(
                "unknown table `{table}`: use metadata, collections, tags, item_tags or all"
            ))
        })?]
    };
    let format = match format {
        "json" => ExportFormat::Json,
        "csv" => ExportFormat::Csv,
        other => {
            return Err(Error::invalid_input(format!(
                "unknown format `{other}`: use json or csv"
            )))
        }
    };
    let req = ExportRequest {
        tables,
        format,
        out,
        gzip,
    };
    let files = if Path::new(source).is_file() {
        export_database(Path::new(source), &req)?
    } else {
        let repo = ctx.open_read("export")?;
        let snap = repo.resolve_in(source, db)?;
        repo.export_snapshot(&snap, &req, &ctx.bar())?
    };
    if ctx.global.json {
        print_json(&files);
    } else {
        for f in &files {
            let rows = f.rows.map(|r| format!(" ({r} rows)")).unwrap_or_default();
            ctx.say(format!("{}: {}{rows}", f.table, f.path.display()));
        }
    }
    Ok(())
}
