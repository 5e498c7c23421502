//! `snapshots` (alias `log`): list snapshots, oldest first.

use std::path::PathBuf;

use clap::Args;

use lumina_backup::Error;
use lumina_backup::{parse_time, TimeEdge as Edge};

use super::common::Ctx;
use super::output::{bytes, clean, clean_tags, local_time, print_json, ListJson};

/// `snapshots` arguments.
#[derive(Args, Debug)]
pub(super) struct SnapshotsArgs {
    /// Only snapshots of this database.
    #[arg(long)]
    db: Option<PathBuf>,
    /// Only snapshots with this tag.
    #[arg(long)]
    tag: Option<String>,
    /// Only snapshots taken at or after TIME.
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Only snapshots taken at or before TIME.
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
    /// Show only the snapshot `restore --at TIME` would choose.
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
}

pub(super) fn run(
    ctx: &Ctx,
    SnapshotsArgs {
        db,
        tag,
        since,
        until,
        at,
    }: SnapshotsArgs,
) -> Result<(), Error> {
    let repo = ctx.open_read("snapshots")?;
    let parse = |t: Option<String>, edge| t.map(|t| parse_time(&t, &ctx.tz, edge)).transpose();
    let list: Vec<_> = match parse(at, Edge::End)? {
        Some(t) => vec![repo.snapshot_at(db.as_deref(), t)?],
        None => {
            let filter = lumina_backup::SnapshotFilter {
                db: db.as_deref().map(lumina_backup::source_key),
                tag,
                since_ns: parse(since, Edge::Start)?,
                until_ns: parse(until, Edge::End)?,
            };
            repo.list_filtered(&filter)?
        }
    };
    let known = repo.known_changes()?;
    let went_back = lumina_backup::clock_went_back(&repo.list()?);
    if ctx.global.json {
        print_json(
            &list
                .iter()
                .map(|s| ListJson {
                    clock_went_back: went_back.contains(&s.id),
                    ..ListJson::with_changes(s, &known)
                })
                .collect::<Vec<_>>(),
        );
    } else if list.is_empty() {
        ctx.say("no snapshots");
    } else {
        for s in &list {
            let r = &s.record;
            let tags = if r.tags.is_empty() {
                String::new()
            } else {
                format!(" [{}]", clean_tags(&r.tags))
            };
            let note = if r.note.is_empty() {
                String::new()
            } else {
                format!(" \"{}\"", clean(&r.note))
            };
            let changes = match known.get(&s.id) {
                Some(n) => format!("  {} changed", super::output::count(*n, "row")),
                None => String::new(),
            };
            let clock = if went_back.contains(&s.id) {
                "  (warning: taken at an earlier time than the snapshot before it; the clock went back)"
            } else {
                ""
            };
            ctx.say(format!(
                "{}  {}  {:>10}  +{:<10} {}{tags}{note}{changes}{clock}",
                s.id.short(),
                local_time(r.time_ns, &ctx.tz),
                bytes(r.total_bytes),
                bytes(r.new_bytes),
                clean(&r.source)
            ));
        }
    }
    Ok(())
}
