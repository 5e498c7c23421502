//! `snapshot`: take a snapshot of a database.

use std::path::PathBuf;

use clap::Args;

use lumina_backup::{Error, SnapshotOptions};

use super::common::{default_db, Ctx};
use super::output::{bytes, clean, print_json, SnapshotJson};
use super::signals;

/// `snapshot` arguments.
#[derive(Args, Debug)]
pub(super) struct SnapshotArgs {
    /// The SQLite database.
    db: Option<PathBuf>,
    /// A tag (repeatable).
    #[arg(long = "tag", value_name = "T")]
    tags: Vec<String>,
    /// A note.
    #[arg(long, default_value = "")]
    note: String,
    /// Store the database image only, without the JSON exports of Lumina's tables.
    #[arg(long)]
    no_exports: bool,
    /// Stage the captured pages in a copy kept in the cache folder between
    /// snapshots (it takes the database's size on disk; the next snapshot then
    /// writes only the pages that changed), instead of a temporary copy.
    #[arg(long)]
    kept_copy: bool,
}

pub(super) fn run(
    ctx: &Ctx,
    SnapshotArgs {
        db,
        tags,
        note,
        no_exports,
        kept_copy,
    }: SnapshotArgs,
) -> Result<i32, Error> {
    let db = db.unwrap_or_else(default_db);
    let mut repo = ctx.open("snapshot")?;
    let bar = ctx.bar();
    let opts = SnapshotOptions {
        tags,
        note,
        no_exports,
        kept_copy,
    };
    signals::install();
    let s = match repo.snapshot(&db, &opts, &bar) {
        Ok(s) => s,
        Err(e) => {
            let (message, code) = match (e.partial_data(), signals::received()) {
                (Some(partial), Some(sig)) => (
                    format!(
                        "interrupted by {}; nothing was recorded; {partial}",
                        signals::name(sig)
                    ),
                    Some(128 + sig),
                ),
                _ => (super::errors::message(&e), None),
            };
            // Failures are kept for `status` (and the app); a failure to
            // record one must not hide the original error.
            let _ = repo.record_failure("snapshot", &db.display().to_string(), &message);
            return match code {
                Some(code) => {
                    eprintln!("lumina-backup: {message}");
                    Ok(code)
                }
                None => Err(e),
            };
        }
    };
    let snap = &s.snapshot;
    let clock = s.clock_went_back.map(|parent_ns| {
        format!(
            "this snapshot's time ({}) is earlier than its parent's ({}): the clock went back; it is still the newest snapshot of {}",
            lumina_backup::rfc3339(snap.record.time_ns),
            lumina_backup::rfc3339(parent_ns),
            clean(&snap.record.source)
        )
    });
    if ctx.global.json {
        let mut doc = SnapshotJson::from(snap);
        doc.warnings.extend(clock);
        doc.unchanged = Some(s.unchanged);
        doc.checksum_kind = Some(repo.checksum_kind());
        doc.export_rows = s.export_rows.map(|r| super::output::ExportRowsJson {
            rendered: r.rendered,
            total: r.total,
        });
        print_json(&doc);
    } else {
        let r = &snap.record;
        ctx.say(format!(
            "snapshot {} of {}: {} in {}, {} new",
            snap.id.short(),
            r.source,
            bytes(r.total_bytes),
            super::output::count(snap.user_files().count() as u64, "file"),
            bytes(r.new_bytes)
        ));
        for w in r.warnings.iter().chain(&clock) {
            ctx.say(format!("  warning: {w}"));
        }
    }
    Ok(0)
}
