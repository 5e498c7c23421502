//! `export` and `import`.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use lumina_backup::Error;
use lumina_backup::Table;
use lumina_backup::{export_database, import_file, ExportFormat, ExportRequest};

use super::output::print_json;
use super::Ctx;

pub(super) fn export(
    ctx: &Ctx,
    source: &str,
    table: &str,
    format: &str,
    out: PathBuf,
    gzip: bool,
    db: Option<&Path>,
) -> Result<(), Error> {
    let tables = if table == "all" {
        Table::all().to_vec()
    } else {
        vec![Table::from_str(table).map_err(|_| {
            Error::BadInput(format!(
                "unknown table `{table}`: use metadata, collections, tags, item_tags or all"
            ))
        })?]
    };
    let format = match format {
        "json" => ExportFormat::Json,
        "csv" => ExportFormat::Csv,
        other => {
            return Err(Error::BadInput(format!(
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

pub(super) fn import(ctx: &Ctx, db: &Path, from: &Path, strict: bool) -> Result<(), Error> {
    let report = import_file(db, from, strict)?;
    if ctx.global.json {
        print_json(&serde_json::json!({
            "table": report.table.name(),
            "rows": report.rows,
            "warnings": report.warnings,
        }));
    } else {
        ctx.say(format!(
            "imported {} {} into {} of {}",
            report.rows,
            if report.rows == 1 { "row" } else { "rows" },
            report.table.name(),
            db.display()
        ));
        for w in &report.warnings {
            ctx.say(format!("  warning: {w}"));
        }
    }
    Ok(())
}
