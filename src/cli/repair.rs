//! `repair index` and `repair snapshots`.

use clap::Subcommand;

use lumina_backup::{Error, Repository};

use super::common::Ctx;
use super::output::{self, count, local_time, print_json};

/// `repair` subcommands.
#[derive(Subcommand, Debug)]
pub(super) enum RepairWhat {
    /// Rebuild the index from the pack and snapshot files.
    Index,
    /// After lost data: remove the snapshots that cannot be restored (keep those
    /// whose database image is intact, without their lost exports), so that
    /// verify is clean and prune works again.
    Snapshots {
        /// Print what would be done; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

pub(super) fn run(ctx: &Ctx, what: RepairWhat) -> Result<(), Error> {
    match what {
        RepairWhat::Index => {
            let bar = ctx.bar();
            let (_repo, report) = Repository::open_and_rebuild_index_at(
                &ctx.location()?,
                &ctx.open_options("repair index")?,
                &bar,
            )?;
            if ctx.global.json {
                print_json(&report);
            } else {
                for s in &report.skipped {
                    ctx.say(format!("skipped: {s}"));
                }
                for f in &report.foreign {
                    ctx.say(format!("left alone: {f}"));
                }
                ctx.say(format!(
                    "index rebuilt: {}, {} stored, {}",
                    count(report.packs, "pack"),
                    count(report.chunks_stored, "chunk"),
                    count(report.snapshots, "snapshot")
                ));
            }
        }
        RepairWhat::Snapshots { dry_run } => {
            let mut repo = ctx.open("repair snapshots")?;
            let plan = repo.repair_snapshots(dry_run, &ctx.bar())?;
            if ctx.global.json {
                let mut doc =
                    serde_json::to_value(&plan).map_err(|e| Error::internal(e.to_string()))?;
                // `id` as in every other listing, for the removed ones.
                doc["removed"] = serde_json::json!(plan
                    .removed
                    .iter()
                    .map(|r| serde_json::json!({"id": r.id, "time": output::rfc3339(r.time_ns), "db": r.db, "reason": r.reason}))
                    .collect::<Vec<_>>());
                print_json(&doc);
            } else {
                let would = if dry_run { "would remove" } else { "removed" };
                for p in &plan.damaged_packs {
                    ctx.say(format!("damaged pack (its chunks count as lost): {p}"));
                }
                for r in &plan.removed {
                    ctx.say(format!(
                        "{would} snapshot {} of {} at {}: {}",
                        &r.id[..12],
                        if r.db.is_empty() { "?" } else { &r.db },
                        local_time(r.time_ns, &ctx.tz),
                        r.reason
                    ));
                }
                for t in &plan.trimmed {
                    ctx.say(format!(
                        "{} snapshot {} of {} at {} as {} without its lost files {} (the database image is intact)",
                        if dry_run { "would keep" } else { "kept" },
                        &t.old_id[..12],
                        t.db,
                        local_time(t.time_ns, &ctx.tz),
                        &t.new_id[..12],
                        t.dropped_files.join(", ")
                    ));
                }
                for f in &plan.foreign {
                    ctx.say(format!("left alone: {f}"));
                }
                ctx.say(format!(
                    "{} checked: {} {would}, {} {}",
                    count(plan.snapshots_checked, "snapshot"),
                    plan.removed.len(),
                    plan.trimmed.len(),
                    if dry_run {
                        "would be trimmed"
                    } else {
                        "trimmed"
                    }
                ));
                if dry_run {
                    ctx.say("dry run: nothing was changed");
                } else if !plan.removed.is_empty() || !plan.trimmed.is_empty() {
                    ctx.say(
                        "run `lumina-backup prune` to free the space of the lost snapshots' data",
                    );
                }
            }
        }
    }
    Ok(())
}
