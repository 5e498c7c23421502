//! `forget`: argument shapes, output, and calls into the library (which holds
//! every decision and every write).

use std::path::PathBuf;

use clap::Args;
use serde_json::{json, Value};

use lumina_backup::Error;
use lumina_backup::{Decision, Plan, Policy, Span};
use lumina_backup::{PruneReport, DEFAULT_MAX_UNUSED};

use super::common::Ctx;
use super::output::{local_time, print_json, rfc3339};
use super::prune::say_prune;

/// `forget` arguments.
#[derive(Args, Debug)]
pub(super) struct ForgetArgs {
    /// Forget these snapshots (ids, unique prefixes, or `latest` with --db)
    /// instead of applying rules.
    #[arg(value_name = "SNAP")]
    snaps: Vec<String>,
    /// Keep the N newest snapshots.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    keep_last: Option<u32>,
    /// Keep the newest snapshot of each of the N most recent hours that have one.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    keep_hourly: Option<u32>,
    /// Keep the newest snapshot of each of the N most recent days that have one.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    keep_daily: Option<u32>,
    /// Same per ISO week.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    keep_weekly: Option<u32>,
    /// Same per month.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    keep_monthly: Option<u32>,
    /// Same per year.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    keep_yearly: Option<u32>,
    /// Keep every snapshot within DURATION of the newest one (36h, 7d, 2w, 6m, 1y, 1y6m).
    #[arg(long, value_name = "DURATION")]
    keep_within: Option<String>,
    /// Keep every snapshot with this tag (repeatable).
    #[arg(long = "keep-tag", value_name = "T")]
    keep_tags: Vec<String>,
    /// How long `pre-restore` snapshots are kept (default 7d; 0h turns it off).
    #[arg(long, value_name = "DURATION")]
    keep_pre_restore: Option<String>,
    /// Only snapshots of this database.
    #[arg(long, value_name = "PATH")]
    db: Option<PathBuf>,
    /// Prune afterwards (delete the data only removed snapshots used).
    #[arg(long)]
    prune: bool,
    /// With --prune: repack packs with more than this percentage of dead data.
    #[arg(long, value_name = "PERCENT", default_value_t = DEFAULT_MAX_UNUSED)]
    max_unused: f64,
    /// Print the plan (kept, removed, and the rule that kept each); change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Carry out a plan that keeps no snapshot of a database, or (by rules)
    /// removes its newest snapshot; refused without this flag.
    #[arg(long)]
    allow_empty: bool,
}

impl ForgetArgs {
    /// The rules given on the command line, if any.
    fn policy(&self) -> Result<Option<Policy>, Error> {
        let any = self.keep_last.is_some()
            || self.keep_hourly.is_some()
            || self.keep_daily.is_some()
            || self.keep_weekly.is_some()
            || self.keep_monthly.is_some()
            || self.keep_yearly.is_some()
            || self.keep_within.is_some()
            || !self.keep_tags.is_empty();
        if !any {
            return Ok(None);
        }
        let keep_within = self
            .keep_within
            .as_deref()
            .map(Span::parse)
            .transpose()
            .map_err(|e| Error::invalid_input(e.to_string()))?;
        Ok(Some(Policy {
            keep_last: self.keep_last.unwrap_or(0),
            keep_hourly: self.keep_hourly.unwrap_or(0),
            keep_daily: self.keep_daily.unwrap_or(0),
            keep_weekly: self.keep_weekly.unwrap_or(0),
            keep_monthly: self.keep_monthly.unwrap_or(0),
            keep_yearly: self.keep_yearly.unwrap_or(0),
            keep_within,
            keep_tags: self.keep_tags.clone(),
            ..Policy::default()
        }))
    }
}

fn now_ns() -> i64 {
    i64::try_from(lumina_backup::now().unix_timestamp_nanos()).unwrap_or(i64::MAX)
}

fn short(d: &Decision) -> String {
    d.id.short()
}

pub(super) fn run(ctx: &Ctx, args: ForgetArgs) -> Result<(), Error> {
    let mut repo = ctx.open("forget")?;
    let given = args.policy()?;
    let (plan, policy) = if args.snaps.is_empty() {
        let mut policy = match given {
            Some(p) => p,
            None => repo.stored_policy()?,
        };
        if let Some(s) = &args.keep_pre_restore {
            policy.pre_restore = Span::parse(s).map_err(|e| Error::invalid_input(e.to_string()))?;
        }
        let plan = repo.forget_plan(Some(&policy), args.db.as_deref(), now_ns(), &ctx.tz)?;
        (plan, Some(policy))
    } else {
        if given.is_some() || args.keep_pre_restore.is_some() {
            return Err(Error::invalid_input(
                "give snapshots to forget or retention rules, not both",
            ));
        }
        (
            repo.forget_named_plan(&args.snaps, args.db.as_deref())?,
            None,
        )
    };
    if !args.dry_run {
        if !args.allow_empty {
            lumina_backup::refuse_dangers(&plan)?;
        }
        repo.forget_apply(&plan)?;
    }
    let pruned = if args.prune && !args.dry_run {
        Some(repo.prune(args.max_unused, &ctx.bar())?)
    } else {
        None
    };
    if ctx.global.json {
        print_json(&forget_json(&plan, args.dry_run, pruned.as_ref()));
        return Ok(());
    }
    match &policy {
        Some(p) => ctx.say(format!("policy: {}", p.describe())),
        None => ctx.say(format!(
            "forget the {} named",
            super::output::count(plan.removed().count() as u64, "snapshot")
        )),
    }
    let mut groups: Vec<&str> = plan.decisions.iter().map(|d| d.group.as_str()).collect();
    groups.sort();
    groups.dedup();
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    for g in groups {
        ctx.say(format!("{}:", super::output::clean(g)));
        for d in plan.decisions.iter().filter(|d| d.group == g) {
            let when = local_time(d.time_ns, &ctx.tz);
            if d.keep {
                ctx.say(format!(
                    "  keep    {}  {when}  ({})",
                    short(d),
                    d.reasons.join(", ")
                ));
            } else {
                let label = if args.dry_run { "remove" } else { "removed" };
                ctx.say(format!("  {label:<7} {}  {when}", short(d)));
            }
        }
    }
    for u in &plan.unverified {
        ctx.say(format!("warning: {}", super::output::clean(u)));
    }
    let kept = plan.kept().count();
    let removed = plan.removed().count();
    ctx.say(format!(
        "kept {}, {verb} {removed}",
        super::output::count(kept as u64, "snapshot")
    ));
    for danger in &plan.dangers {
        let how = if args.dry_run && !args.allow_empty {
            "would be refused without --allow-empty"
        } else {
            "allowed by --allow-empty"
        };
        ctx.say(format!("warning: {danger} ({how})"));
    }
    if args.dry_run {
        ctx.say("dry run: nothing was changed");
    } else if removed > 0 && pruned.is_none() {
        ctx.say("run `lumina-backup prune` to reclaim the space they used");
    }
    if let Some(r) = &pruned {
        say_prune(ctx, r);
    }
    Ok(())
}

fn forget_json(plan: &Plan, dry_run: bool, pruned: Option<&PruneReport>) -> Value {
    let kept: Vec<Value> = plan
        .kept()
        .map(|d| {
            json!({"id": d.id.to_hex(), "time": rfc3339(d.time_ns), "db": d.group, "reasons": d.reasons})
        })
        .collect();
    let removed: Vec<Value> = plan
        .removed()
        .map(|d| json!({"id": d.id.to_hex(), "time": rfc3339(d.time_ns), "db": d.group}))
        .collect();
    json!({"dry_run": dry_run, "kept": kept, "removed": removed, "pruned": pruned, "dangers": plan.dangers, "unverified": plan.unverified})
}
