//! `verify`: check the repository; exit 3 if any problem is found.

use clap::Args;

use lumina_backup::{Error, Repository, VerifyOptions};

use super::common::Ctx;
use super::output::{bytes, count, print_json};
use super::EXIT_PROBLEMS;

/// `verify` arguments.
#[derive(Args, Debug)]
pub(super) struct VerifyArgs {
    /// Also read and re-hash every byte of data.
    #[arg(long)]
    read_data: bool,
    /// Check only the history chain (plain `verify` checks it too).
    #[arg(long, conflicts_with = "read_data")]
    chain: bool,
    /// A chain head recorded earlier (`status` shows it): the chain must still
    /// hold it, else the repository was rolled back or rewritten.
    #[arg(long, value_name = "HASH")]
    expect_head: Option<String>,
    /// Restore SNAP (default: the newest of each database) to a temporary file,
    /// run integrity_check and foreign_key_check, compare it with its manifest,
    /// then delete it.
    #[arg(long, value_name = "SNAP", num_args = 0..=1, default_missing_value = "")]
    restore_test: Option<String>,
}

pub(super) fn run(
    ctx: &Ctx,
    VerifyArgs {
        read_data,
        chain,
        expect_head,
        restore_test,
    }: VerifyArgs,
) -> Result<i32, Error> {
    if let Some(h) = &expect_head {
        let h = h.trim();
        if h.len() < 8 || h.len() > 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::invalid_input(format!(
                "`{h}` is not a chain head: give at least 8 hex characters of the head `status` showed"
            )));
        }
    }
    let mut what = VerifyOptions::new(read_data);
    what.chain_only = chain;
    what.expect_head = expect_head;
    what.restore_test = restore_test.map(|s| Some(s).filter(|s| !s.is_empty()));
    let bar = ctx.bar();
    // A damaged config or key file is a verify finding (exit 3), not a
    // failure to run verify.
    let opts = match ctx.open_options("verify") {
        Ok(o) => Some(o),
        Err(e) if e.kind() == lumina_backup::ErrorKind::Corrupt => None,
        Err(e) => return Err(e),
    };
    let report = Repository::verify_at_with(&ctx.location()?, opts.as_ref(), &what, &bar)?;
    let problems: Vec<String> = report
        .problems
        .iter()
        .map(|p| super::errors::problem(p, read_data))
        .collect();
    if ctx.global.json {
        let mut doc = serde_json::to_value(&report).map_err(|e| Error::internal(e.to_string()))?;
        doc["problems"] = serde_json::json!(problems);
        print_json(&doc);
    } else {
        for p in &problems {
            ctx.say(format!("problem: {p}"));
        }
        for d in &report.restore_tests {
            ctx.say(format!(
                "restore drill of snapshot {} ({}): {}",
                d.snapshot,
                super::output::clean(&d.db),
                if d.problems.is_empty() {
                    format!("passed ({})", d.checked.join("; "))
                } else {
                    "FAILED".to_string()
                }
            ));
        }
        match &report.chain_head {
            Some(h) => ctx.say(format!(
                "chain head: {} ({})",
                h.short(),
                count(h.records, "record")
            )),
            None => ctx.say("chain head: none yet"),
        }
        if chain {
            ctx.say(if report.ok {
                "ok: the history chain verifies"
            } else {
                "PROBLEMS FOUND"
            });
        } else {
            ctx.say(format!(
                "{}: {}, {} referenced ({} stored{}), {} checked{}",
                if report.ok { "ok" } else { "PROBLEMS FOUND" },
                count(report.snapshots_checked, "snapshot"),
                count(report.chunks_referenced, "chunk"),
                count(report.chunks_stored, "chunk"),
                match report.chunks_missing {
                    0 => String::new(),
                    n => format!(", {n} missing"),
                },
                count(report.packs_checked, "pack"),
                if read_data {
                    format!(", {} read and re-hashed", bytes(report.bytes_read))
                } else {
                    String::new()
                }
            ));
        }
    }
    if !report.ok {
        if !ctx.global.json {
            eprintln!(
                "lumina-backup: verify found {}; see above",
                count(report.problems.len() as u64, "problem")
            );
        }
        return Ok(EXIT_PROBLEMS);
    }
    Ok(0)
}
