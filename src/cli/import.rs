//! `import`: an export file (.json or .json.gz) into a database, in one transaction.

use std::path::PathBuf;

use clap::Args;

use lumina_backup::import_file;
use lumina_backup::Error;

use super::common::Ctx;
use super::output::print_json;

/// `import` arguments.
#[derive(Args, Debug)]
pub(super) struct ImportArgs {
    /// The database (created if missing).
    db: PathBuf,
    /// The export file.
    #[arg(long, value_name = "FILE")]
    from: PathBuf,
    /// Refuse the import when rows point at missing collections or tags.
    #[arg(long)]
    strict: bool,
}

pub(super) fn run(ctx: &Ctx, ImportArgs { db, from, strict }: ImportArgs) -> Result<(), Error> {
    let (db, from) = (db.as_path(), from.as_path());
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
