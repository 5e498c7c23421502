//! `forget`, `prune` and `config`: argument shapes, output, and calls into the
//! library (which holds every decision and every write).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use lumina_backup::{
    get_setting, set_setting, settings_table, Decision, Plan, Policy, Span, SETTING_KEYS,
};
use lumina_backup::{Error, Repository};
use lumina_backup::{PackAction, PrunePlan, PruneReport, DEFAULT_MAX_UNUSED};

use super::output::{bytes, local_time, print_json, rfc3339};
use super::Ctx;

/// `forget` arguments.
#[derive(Args, Debug)]
pub struct ForgetArgs {
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
            .map_err(|e| Error::BadInput(e.to_string()))?;
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

/// `prune` arguments.
#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Repack packs with more than this percentage of dead data (0–100).
    #[arg(long, value_name = "PERCENT", default_value_t = DEFAULT_MAX_UNUSED)]
    max_unused: f64,
    /// Print what would be deleted and repacked; change nothing.
    #[arg(long)]
    dry_run: bool,
}

/// `config` subcommands.
#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Set a retention setting (keep-last, keep-hourly, keep-daily, keep-weekly,
    /// keep-monthly, keep-yearly, keep-within, keep-tag, keep-pre-restore);
    /// `none` clears it.
    Set {
        /// The setting.
        key: String,
        /// Its value (a number, a duration such as 7d, or comma-separated tags).
        value: String,
    },
    /// Print one setting (nothing when unset).
    Get {
        /// The setting.
        key: String,
    },
    /// Print every setting and the repository's fixed parameters.
    Show,
}

fn now_ns() -> i64 {
    i64::try_from(lumina_backup::now().unix_timestamp_nanos()).unwrap_or(i64::MAX)
}

fn short(d: &Decision) -> String {
    d.id.short()
}

pub fn forget(ctx: &Ctx, args: ForgetArgs) -> Result<(), Error> {
    let mut repo = ctx.open("forget")?;
    let given = args.policy()?;
    let (plan, policy) = if args.snaps.is_empty() {
        let mut policy = match given {
            Some(p) => p,
            None => repo.stored_policy()?,
        };
        if let Some(s) = &args.keep_pre_restore {
            policy.pre_restore = Span::parse(s).map_err(|e| Error::BadInput(e.to_string()))?;
        }
        let plan = repo.forget_plan(Some(&policy), args.db.as_deref(), now_ns(), &ctx.tz)?;
        (plan, Some(policy))
    } else {
        if given.is_some() || args.keep_pre_restore.is_some() {
            return Err(Error::BadInput(
                "give snapshots to forget or retention rules, not both".into(),
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
            "forget the {} snapshots named",
            plan.removed().count()
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
    let kept = plan.kept().count();
    let removed = plan.removed().count();
    ctx.say(format!("kept {kept} snapshots, {verb} {removed}"));
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
    json!({"dry_run": dry_run, "kept": kept, "removed": removed, "pruned": pruned, "dangers": plan.dangers})
}

fn say_prune(ctx: &Ctx, r: &PruneReport) {
    let would = if r.dry_run { "would be " } else { "" };
    ctx.say(format!(
        "prune: {} snapshots, {} chunks referenced ({} chunks stored); {} packs: {} {would}deleted, {} {would}repacked{}",
        r.snapshots,
        r.chunks_referenced,
        r.chunks_stored,
        r.packs_before,
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

pub fn prune(ctx: &Ctx, args: PruneArgs) -> Result<(), Error> {
    let mut repo = ctx.open("prune")?;
    let bar = ctx.bar();
    let plan = repo.prune_plan(args.max_unused, &bar)?;
    let report = if args.dry_run {
        plan.estimate()
    } else {
        repo.prune_apply(&plan, &bar)?
    };
    if ctx.global.json {
        let mut doc = serde_json::to_value(&report).map_err(|e| Error::BadInput(e.to_string()))?;
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

/// Settings fixed at `init`, shown by `config show` and `config get`.
fn fixed(repo: &Repository) -> Vec<(&'static str, Value)> {
    let c = repo.config();
    vec![
        ("repo-id", json!(c.repo_id)),
        (
            "created",
            json!(rfc3339(c.created.saturating_mul(1_000_000_000))),
        ),
        ("encrypted", json!(repo.encrypted())),
        ("zstd-level", json!(c.zstd_level)),
        ("frame-target", json!(c.frame_target)),
        ("pack-target", json!(c.pack_target)),
        ("tree-fanout", json!(c.tree_fanout)),
        (
            "page-chunker",
            json!({"avg_pages": c.page_chunker.avg_pages, "max_pages": c.page_chunker.max_pages}),
        ),
    ]
}

/// The stored retention settings, or (inner `Err`) what is wrong with a
/// damaged `retention` file; other failures are errors.
fn retention_or_damage(
    repo: &Repository,
) -> Result<Result<lumina_backup::RetentionSettings, String>, Error> {
    match repo.retention_settings() {
        Ok(s) => Ok(Ok(s)),
        Err(Error::Corrupt { problem, .. }) => Ok(Err(problem)),
        Err(e) => Err(e),
    }
}

/// What to do about a damaged `retention` file, in one line.
fn damaged_advice(problem: &str) -> String {
    format!(
        "the retention file is damaged ({problem}): set the rules again with `lumina-backup config set KEY VALUE` (the first one replaces the file)"
    )
}

/// `config show` when the `retention` file is damaged: the fixed settings,
/// and what to do about the retention rules.
fn show_damaged(ctx: &Ctx, repo: &Repository, problem: &str) -> Result<(), Error> {
    let advice = damaged_advice(problem);
    if ctx.global.json {
        let repository: serde_json::Map<String, Value> = fixed(repo)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        print_json(
            &json!({"retention": null, "retention_damaged": advice, "repository": repository}),
        );
    } else {
        ctx.say("retention (applied by `forget` without rules):");
        ctx.say(format!("  {advice}"));
        ctx.say("repository (fixed at init):");
        for (k, v) in fixed(repo) {
            ctx.say(format!("  {k:<17} {}", show_value(&v)));
        }
    }
    Ok(())
}

fn show_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub fn config(ctx: &Ctx, what: ConfigCommand) -> Result<(), Error> {
    match what {
        ConfigCommand::Set { key, value } => {
            let repo = ctx.open("config set")?;
            if fixed(&repo).iter().any(|(k, _)| *k == key) {
                return Err(Error::BadInput(format!(
                    "`{key}` is fixed when the repository is created; settable: {}",
                    SETTING_KEYS.join(", ")
                )));
            }
            // A damaged file is replaced: the rules it held cannot be read
            // anyway, and `config set` is how they are written again.
            let (mut s, damaged) = match retention_or_damage(&repo)? {
                Ok(s) => (s, None),
                Err(problem) => (Default::default(), Some(problem)),
            };
            set_setting(&mut s, &key, &value).map_err(|e| Error::BadInput(e.to_string()))?;
            repo.set_retention_settings(&s)?;
            if let Some(problem) = damaged {
                super::warn(&format!(
                    "the retention file was damaged ({problem}) and has been replaced: only {key} is set now; set the other rules again with `lumina-backup config set`"
                ));
            }
            let now = get_setting(&s, &key).map_err(|e| Error::BadInput(e.to_string()))?;
            if ctx.global.json {
                print_json(&json!({"key": key, "value": now}));
            } else {
                match now {
                    Some(v) => ctx.say(format!("{key} = {v}")),
                    None => ctx.say(format!("{key} unset")),
                }
            }
        }
        ConfigCommand::Get { key } => {
            let repo = ctx.open_read("config get")?;
            let value = match fixed(&repo).into_iter().find(|(k, _)| *k == key) {
                Some((_, v)) => Some(show_value(&v)),
                None => get_setting(&repo.retention_settings()?, &key)
                    .map_err(|e| Error::BadInput(e.to_string()))?,
            };
            if ctx.global.json {
                print_json(&json!({"key": key, "value": value}));
            } else if let Some(v) = value {
                ctx.say(v);
            }
        }
        ConfigCommand::Show => {
            let repo = ctx.open_read("config show")?;
            let settings = match retention_or_damage(&repo)? {
                Ok(s) => s,
                Err(problem) => return show_damaged(ctx, &repo, &problem),
            };
            let table = settings_table(&settings);
            let policy =
                Policy::from_settings(&settings).map_err(|e| Error::BadInput(e.to_string()))?;
            if ctx.global.json {
                let retention: serde_json::Map<String, Value> = table
                    .iter()
                    .map(|(k, v)| (k.to_string(), json!(v)))
                    .collect();
                let repository: serde_json::Map<String, Value> = fixed(&repo)
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect();
                print_json(&json!({"retention": retention, "repository": repository}));
            } else {
                ctx.say("retention (applied by `forget` without rules):");
                for (k, v) in &table {
                    ctx.say(format!("  {k:<17} {}", v.as_deref().unwrap_or("-")));
                }
                if policy.is_empty() {
                    ctx.say("  (no rule set: `forget` needs rules on its command line)");
                }
                ctx.say("repository (fixed at init):");
                for (k, v) in fixed(&repo) {
                    ctx.say(format!("  {k:<17} {}", show_value(&v)));
                }
            }
        }
    }
    Ok(())
}
