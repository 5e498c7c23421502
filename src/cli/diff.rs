//! `diff`: human summary ("metadata: 12 changed, 3 added"), `--verbose` keys and
//! columns, `--json` as the CLI contract gives.

use std::path::PathBuf;

use clap::Args;

use lumina_backup::DiffReport;
use lumina_backup::DiffTarget;
use lumina_backup::Error;

use super::common::Ctx;
use super::output::print_json;

/// `diff` arguments.
#[derive(Args, Debug)]
pub(super) struct DiffArgs {
    /// The older snapshot.
    snap_a: String,
    /// The newer snapshot (or --db).
    snap_b: Option<String>,
    /// Compare with this live database instead of a second snapshot.
    #[arg(long, value_name = "PATH")]
    db: Option<PathBuf>,
    /// List the keys (and changed columns) of every differing row.
    #[arg(long, short)]
    verbose: bool,
}

pub(super) fn run(
    ctx: &Ctx,
    DiffArgs {
        snap_a,
        snap_b,
        db,
        verbose,
    }: DiffArgs,
) -> Result<(), Error> {
    let (a, b) = (snap_a.as_str(), snap_b.as_deref());
    // Writable when it can be (a diff of a snapshot and its parent records the
    // changed-row count for the history listing); read-only otherwise.
    let repo = match ctx.open("diff") {
        Err(e) if e.kind() == lumina_backup::ErrorKind::ReadOnly => ctx.open_read("diff")?,
        other => other?,
    };
    let bar = ctx.bar();
    let (report, label, old) = match (b, &db) {
        (Some(_), Some(_)) => {
            return Err(Error::invalid_input(
                "give a second snapshot or --db, not both",
            ))
        }
        (Some(b), None) => {
            // `latest` beside a named snapshot is the newest of that snapshot's
            // database, not of whichever database was snapshotted last.
            let (old, new) = match (a.trim() == "latest", b.trim() == "latest") {
                (true, false) => {
                    let new = repo.resolve(b)?;
                    let db = PathBuf::from(&new.record.source);
                    (repo.resolve_in(a, Some(&db))?, new)
                }
                (false, true) => {
                    let old = repo.resolve(a)?;
                    let db = PathBuf::from(&old.record.source);
                    let new = repo.resolve_in(b, Some(&db))?;
                    (old, new)
                }
                _ => (repo.resolve(a)?, repo.resolve(b)?),
            };
            (
                repo.diff(&old, DiffTarget::Snapshot(&new), &bar)?,
                new.id.short(),
                old,
            )
        }
        (None, Some(path)) => {
            // `latest` is the newest snapshot of the database compared with.
            let old = repo.resolve_in(a, Some(path))?;
            (
                repo.diff(&old, DiffTarget::Live(path), &bar)?,
                path.display().to_string(),
                old,
            )
        }
        (None, None) => {
            return Err(Error::invalid_input(
                "give a second snapshot, or --db PATH to compare with the live database",
            ))
        }
    };
    if ctx.global.json {
        print_json(&json(&report));
        return Ok(());
    }
    ctx.say(format!("{} → {label}", old.id.short()));
    let mut any = false;
    for (table, d) in &report.tables {
        if d.is_empty() {
            continue;
        }
        any = true;
        let mut parts = Vec::new();
        for (n, what) in [
            (d.changed.len(), "changed"),
            (d.added.len(), "added"),
            (d.removed.len(), "removed"),
        ] {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        }
        ctx.say(format!("{table}: {}", parts.join(", ")));
        if verbose {
            for (k, cols) in d.changed.iter().zip(&d.changed_columns) {
                ctx.say(format!("  ~ {k}  ({})", cols.join(", ")));
            }
            for k in &d.added {
                ctx.say(format!("  + {k}"));
            }
            for k in &d.removed {
                ctx.say(format!("  - {k}"));
            }
        }
    }
    if !any {
        ctx.say("no differences");
    }
    Ok(())
}

fn json(report: &DiffReport) -> serde_json::Value {
    let mut tables = serde_json::Map::new();
    for (name, d) in &report.tables {
        let columns: serde_json::Map<String, serde_json::Value> = d
            .changed
            .iter()
            .zip(&d.changed_columns)
            .map(|(k, cols)| {
                (
                    k.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| k.to_string()),
                    serde_json::json!(cols),
                )
            })
            .collect();
        tables.insert(
            name.clone(),
            serde_json::json!({"added": d.added, "removed": d.removed, "changed": d.changed, "changed_columns": columns}),
        );
    }
    serde_json::json!({ "tables": tables })
}
