//! `prune`: argument shapes, output, and calls into the library (which holds
//! every decision and every write).

use clap::Args;
use serde_json::json;

use lumina_backup::Error;
use lumina_backup::{PackAction, PrunePlan, PruneReport, DEFAULT_MAX_UNUSED};

use super::common::Ctx;
use super::output::{bytes, count, print_json};

/// `prune` arguments.
#[derive(Args, Debug)]
pub(super) struct PruneArgs {
    /// Repack packs with more than this percentage of dead data (0–100).
    #[arg(long, value_name = "PERCENT", default_value_t = DEFAULT_MAX_UNUSED)]
    max_unused: f64,
    /// Print what would be deleted and repacked; change nothing.
    #[arg(long)]
    dry_run: bool,
}

/// The summary of a prune (also printed by `forget --prune`).
pub(super) fn say_prune(ctx: &Ctx, r: &PruneReport) {
    let would = if r.dry_run { "would be " } else { "" };
    ctx.say(format!(
        "prune: {}, {} referenced ({} stored); {}: {} {would}deleted, {} {would}repacked{}",
        count(r.snapshots, "snapshot"),
        count(r.chunks_referenced, "chunk"),
        count(r.chunks_stored, "chunk"),
        count(r.packs_before, "pack"),
        r.packs_deleted,
        r.packs_repacked,
        if r.dry_run {
            String::new()
        } else {
            format!(" into {} new", r.packs_written)
        }
    ));
    ctx.say(format!(
        "{} {}, {} {}; packs now {} (were {})",
        if r.dry_run { "would free" } else { "freed" },
        bytes(r.bytes_freed),
        if r.dry_run {
            "would rewrite about"
        } else {
            "rewrote"
        },
        bytes(r.bytes_rewritten),
        bytes(r.bytes_after),
        bytes(r.bytes_before),
    ));
    if r.dry_run {
        ctx.say("dry run: nothing was changed");
    }
    if let Some(note) = &r.note {
        ctx.say(format!("note: {note}"));
    }
}

pub(super) fn run(ctx: &Ctx, args: PruneArgs) -> Result<(), Error> {
    let mut repo = ctx.open("prune")?;
    let bar = ctx.bar();
    let plan = repo.prune_plan(args.max_unused, &bar)?;
    let report = if args.dry_run {
        plan.estimate()
    } else {
        repo.prune_apply(&plan, &bar)?
    };
    if ctx.global.json {
        let mut doc = serde_json::to_value(&report).map_err(|e| Error::internal(e.to_string()))?;
        if args.dry_run {
            doc["packs"] = json!(changed_packs(&plan)
                .map(|p| json!({"id": p.id.to_hex(), "size": p.size, "used": p.used, "action": p.action}))
                .collect::<Vec<_>>());
        }
        print_json(&doc);
        return Ok(());
    }
    if args.dry_run {
        for p in changed_packs(&plan) {
            let verb = match p.action {
                PackAction::Delete => "delete",
                _ => "repack",
            };
            ctx.say(format!(
                "  {verb:<6} pack {}  {:>10}  {:.0}% used",
                p.id.short(),
                bytes(p.size),
                100.0 * p.used as f64 / p.size.max(1) as f64
            ));
        }
    }
    say_prune(ctx, &report);
    Ok(())
}

fn changed_packs(plan: &PrunePlan) -> impl Iterator<Item = &lumina_backup::PackPlan> {
    plan.packs.iter().filter(|p| p.action != PackAction::Keep)
}
