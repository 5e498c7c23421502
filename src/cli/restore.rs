//! `restore`: restore a snapshot's database (verified, then swapped in atomically).

use std::path::PathBuf;

use clap::Args;

use lumina_backup::{parse_time, TimeEdge as Edge};
use lumina_backup::{Check, Error, RestoreOptions};

use super::common::Ctx;
use super::output::{bytes, clean, print_json};

/// `restore --check` levels.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum CheckArg {
    /// `PRAGMA quick_check` (the default).
    Quick,
    /// `PRAGMA integrity_check`, then `PRAGMA foreign_key_check`.
    Full,
}

/// `restore` arguments.
#[derive(Args, Debug)]
pub(super) struct RestoreArgs {
    /// Snapshot id, unique prefix, or `latest` (default `latest`).
    snap: Option<String>,
    /// Instead of SNAP: the newest snapshot taken at or before TIME (RFC 3339 or
    /// `YYYY-MM-DD[ HH:MM[:SS]]` local time).
    #[arg(long, value_name = "TIME", conflicts_with = "snap")]
    at: Option<String>,
    /// With `latest` or --at: which database's history (default: the target
    /// when the repository has snapshots of it; needed when it has several).
    #[arg(long, value_name = "PATH")]
    db: Option<PathBuf>,
    /// Target database path (or folder with --all).
    #[arg(long, value_name = "PATH")]
    to: PathBuf,
    /// Replace an existing target (its state is first saved as a `pre-restore` snapshot).
    #[arg(long)]
    force: bool,
    /// Write every file of the snapshot into the folder given by --to.
    #[arg(long)]
    all: bool,
    /// SQLite's check of the restored image: `quick` (quick_check, the default:
    /// every page and record, indexes not compared with their tables; by
    /// default not repeated when the capture's quick check passed on the same
    /// bytes, `--check quick` runs it again) or `full` (integrity_check, then
    /// foreign_key_check).
    #[arg(long, value_enum, value_name = "LEVEL", conflicts_with = "no_check")]
    check: Option<CheckArg>,
    /// Skip SQLite's check (every chunk and the whole file are still verified by checksum).
    #[arg(long)]
    no_check: bool,
    /// Restore through SQLite into the open database (for an app that keeps it
    /// open; it sees the restored content at its next transaction).
    #[arg(long)]
    live: bool,
}

pub(super) fn run(
    ctx: &Ctx,
    RestoreArgs {
        snap,
        at,
        db,
        to,
        force,
        all,
        check,
        no_check,
        live,
    }: RestoreArgs,
) -> Result<(), Error> {
    // Only replacing an existing target writes (its pre-restore snapshot).
    let mut repo = if force && to.exists() {
        ctx.open("restore")?
    } else {
        ctx.open_read("restore")?
    };
    // `latest` and --at choose in one database's history: --db, else
    // the target when it is a database the repository has snapshots of.
    let db = match db {
        Some(d) => Some(d),
        None if !all && repo.is_source(&to)? => Some(to.clone()),
        None => None,
    };
    let chosen = match at {
        Some(t) => repo.snapshot_at(db.as_deref(), parse_time(&t, &ctx.tz, Edge::End)?)?,
        None => repo.resolve_in(snap.as_deref().unwrap_or("latest"), db.as_deref())?,
    };
    let bar = ctx.bar();
    let check_arg = check;
    let check = match (no_check, check) {
        (true, _) => Check::None,
        (false, Some(CheckArg::Full)) => Check::Full,
        (false, _) => Check::Quick,
    };
    // Named explicitly, the quick check runs even when the capture's passed.
    let recheck = matches!(check_arg, Some(CheckArg::Quick));
    let opts = RestoreOptions {
        force,
        check,
        recheck,
        live,
    };
    let check_name = match check {
        Check::Full => "integrity_check",
        Check::Quick => "quick_check",
        _ => "none",
    };
    let checked_names = match check {
        Check::Full => "integrity_check and foreign_key_check",
        _ => check_name,
    };
    let report = if all {
        repo.restore_all(chosen, &to, &opts, &bar)?
    } else {
        repo.restore_snapshot(chosen, &to, &opts, &bar)?
    };
    if ctx.global.json {
        print_json(&serde_json::json!({
            "id": report.snapshot.id.to_hex(),
            "to": to,
            "files": report.written,
            "bytes": report.bytes,
            "pre_restore": report.pre_restore.as_ref().map(|p| p.id.to_hex()),
            "pre_restore_raw": report.pre_restore_raw,
            "pre_restore_as_found": report.pre_restore_as_found.as_ref().map(|p| p.id.to_hex()),
            "live": report.live,
            "set_aside": report.set_aside,
            "check": check_name,
            "checked_at_capture": report.checked_at_capture,
            "integrity_check_secs": report.integrity_secs,
            "foreign_key_check_secs": report.foreign_key_secs,
        }));
    } else {
        let raw = if report.pre_restore_raw {
            " (SQLite could not read it, so its raw bytes were saved: restore them with --no-check)"
        } else {
            ""
        };
        // The database saved (with --all, the image's file inside the folder).
        let saved = |p: &lumina_backup::Snapshot| clean(&p.record.source);
        match (&report.pre_restore_as_found, &report.pre_restore) {
            (Some(found), Some(p)) => ctx.say(format!(
                "saved the previous state of {} as two snapshots (tag pre-restore): bytes as found, with the journal: {}; state after SQLite rolled the journal back: {}{raw}",
                saved(p),
                found.id.short(),
                p.id.short()
            )),
            (_, Some(p)) => ctx.say(format!(
                "saved the previous state of {} as snapshot {} (tag pre-restore){raw}",
                saved(p),
                p.id.short()
            )),
            _ => {}
        }
        for f in &report.set_aside {
            // Journals and WAL files are set aside so they are never
            // replayed; other files (`--all`) are kept because their
            // content differed from the snapshot's.
            let name = f
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default();
            if name.contains(".pre-restore-") {
                ctx.say(format!(
                    "kept the previous file as {} (its content differed from the snapshot's)",
                    f.display()
                ));
            } else {
                ctx.say(format!("kept {} (set aside, not replayed)", f.display()));
            }
        }
        let checked = match check {
            Check::None => "no SQLite check (--no-check)".to_string(),
            _ if report.checked_at_capture => {
                format!("{checked_names} ok when captured, on these same bytes")
            }
            _ => format!("{checked_names} ok"),
        };
        ctx.say(format!(
            "restored snapshot {} to {} ({}, every chunk and the whole file verified, {checked}{})",
            report.snapshot.id.short(),
            to.display(),
            bytes(report.bytes),
            if report.live {
                ", through SQLite into the open database"
            } else {
                ""
            }
        ));
        match report.foreign_key_secs {
            _ if check == Check::None || report.checked_at_capture => {}
            Some(fk) => ctx.say(format!(
                "{check_name} took {:.2} s, foreign_key_check {fk:.2} s",
                report.integrity_secs
            )),
            None => ctx.say(format!("{check_name} took {:.2} s", report.integrity_secs)),
        }
    }
    Ok(())
}
