//! `copy --to LOCATION [SNAP...]`: send snapshots to another repository
//! (created when missing), only what it lacks. A thin layer over
//! `Repository::copy_to`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use lumina_backup::{CopyOptions, Error, ErrorKind, Location, Repository};

use super::common::{warn, Ctx};
use super::output::{bytes, count, print_json};
use super::secret;

/// Where the destination's passphrase is read from.
const TO_PASSWORD_ENV: &str = "LUMINA_BACKUP_TO_PASSWORD";

/// `copy` arguments.
#[derive(Args, Debug)]
pub(super) struct CopyArgs {
    /// The destination: a folder or a location URL (as --repo); created, with
    /// this repository's chunking parameters, when no repository is there.
    #[arg(long, value_name = "LOCATION")]
    to: String,
    /// Snapshots to copy (ids, unique prefixes, or `latest`); none: all.
    snaps: Vec<String>,
    /// File holding the destination's passphrase (or set LUMINA_BACKUP_TO_PASSWORD);
    /// a new destination given one is encrypted.
    #[arg(long, value_name = "FILE")]
    to_password_file: Option<PathBuf>,
    /// Allow copying an encrypted repository's snapshots into an unencrypted one
    /// (or creating the destination unencrypted).
    #[arg(long)]
    to_plain: bool,
    /// A new encrypted destination gets its own master key instead of sharing
    /// the source's (its chunk ids then differ: every copy re-chunks the data).
    #[arg(long)]
    to_new_key: bool,
}

pub(super) fn run(ctx: &Ctx, args: CopyArgs) -> Result<(), Error> {
    let dest = Location::parse(&args.to)?.with_env_prefix(lumina_backup::DESTINATION_ENV_PREFIX);
    let src = ctx.open_read("copy")?;
    let only = if args.snaps.is_empty() {
        None
    } else {
        let mut ids = Vec::new();
        for spec in &args.snaps {
            ids.push(src.resolve(spec)?.id);
        }
        Some(ids)
    };
    let passphrase = destination_passphrase(&args, &dest, src.encrypted())?;
    let mut opts = CopyOptions::default();
    opts.passphrase = passphrase;
    opts.allow_plain = args.to_plain;
    opts.new_key = args.to_new_key;
    opts.lock_wait = Duration::from_secs(ctx.global.lock_wait);
    let bar = ctx.bar();
    let report = src.copy_to(&dest, only.as_deref(), &opts, &bar)?;
    if ctx.global.json {
        let mut v = serde_json::to_value(&report)
            .map_err(|e| Error::internal(format!("encoding the report: {e}")))?;
        if let Some(m) = v.as_object_mut() {
            m.insert(
                "snapshots_copied".into(),
                serde_json::json!(report.copied.len()),
            );
        }
        print_json(&v);
    } else {
        if report.created {
            ctx.say(format!("created repository {}", report.destination));
        }
        ctx.say(format!(
            "copied {} to {} ({} already there); sent {}: {} whole, {} new, {}",
            count(report.copied.len() as u64, "snapshot"),
            report.destination,
            report.already_present,
            bytes(report.bytes_sent),
            count(report.packs_copied, "pack"),
            count(report.packs_written, "pack"),
            count(report.chunks_sent, "chunk")
        ));
        if report.chain_events_copied + report.annotations_written + report.snapshots_removed > 0 {
            ctx.say(format!(
                "history: {} carried, {} written, {} removed as the source recorded",
                count(report.chain_events_copied, "chain record"),
                count(report.annotations_written, "annotation"),
                count(report.snapshots_removed, "snapshot")
            ));
        }
        if let Some(h) = &report.chain_head {
            ctx.say(format!("destination chain head: {}", h.short()));
        }
    }
    if !report.skipped_untrusted.is_empty() {
        warn(&format!(
            "{} not copied: the source's history chain does not vouch for them (run verify on the source)",
            count(report.skipped_untrusted.len() as u64, "snapshot")
        ));
    }
    Ok(())
}

/// The destination's passphrase: asked when the destination is encrypted, or
/// when a new one is to be (a passphrase given, or an encrypted source without
/// `--to-plain`).
fn destination_passphrase(
    args: &CopyArgs,
    dest: &Location,
    source_encrypted: bool,
) -> Result<Option<zeroize::Zeroizing<String>>, Error> {
    let given = args.to_password_file.is_some() || std::env::var_os(TO_PASSWORD_ENV).is_some();
    let exists = match Repository::is_encrypted_at(dest) {
        Ok(e) => Some(e),
        Err(e) if e.kind() == ErrorKind::NoRepository => None,
        Err(e) => return Err(e),
    };
    let (creating, ask) = match exists {
        Some(true) => (false, true),
        Some(false) => {
            if given {
                warn(&format!(
                    "destination {dest} is not encrypted; the destination passphrase given was ignored"
                ));
            }
            (false, false)
        }
        None => (true, given || (source_encrypted && !args.to_plain)),
    };
    if !ask {
        return Ok(None);
    }
    let missing = if creating {
        format!(
            "the source is encrypted: give the new repository {dest} a passphrase in {TO_PASSWORD_ENV} or with --to-password-file FILE (or on a terminal), or create it unencrypted with --to-plain"
        )
    } else {
        format!(
            "destination {dest} is encrypted and needs its passphrase: give it in {TO_PASSWORD_ENV}, with --to-password-file, or on a terminal"
        )
    };
    let src = secret::Source {
        env: TO_PASSWORD_ENV,
        file: args.to_password_file.as_deref(),
        prompt: "destination passphrase",
        missing: &missing,
    };
    secret::read(&src, creating).map(Some)
}
