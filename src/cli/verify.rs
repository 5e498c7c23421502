//! `verify`: check the repository; exit 3 if any problem is found.

use clap::Args;

use lumina_backup::{Error, Repository};

use super::common::Ctx;
use super::output::{bytes, print_json};
use super::EXIT_PROBLEMS;

/// `verify` arguments.
#[derive(Args, Debug)]
pub(super) struct VerifyArgs {
    /// Also read and re-hash every byte of data.
    #[arg(long)]
    read_data: bool,
}

pub(super) fn run(ctx: &Ctx, VerifyArgs { read_data }: VerifyArgs) -> Result<i32, Error> {
    let bar = ctx.bar();
    // A damaged config or key file is a verify finding (exit 3), not a
    // failure to run verify.
    let opts = match ctx.open_options("verify") {
        Ok(o) => Some(o),
        Err(e) if e.kind() == lumina_backup::ErrorKind::Corrupt => None,
        Err(e) => return Err(e),
    };
    let report = Repository::verify_at(&ctx.location()?, opts.as_ref(), read_data, &bar)?;
    let problems: Vec<String> = report.problems.iter().map(super::errors::problem).collect();
    if ctx.global.json {
        let mut doc = serde_json::to_value(&report).map_err(|e| Error::internal(e.to_string()))?;
        doc["problems"] = serde_json::json!(problems);
        print_json(&doc);
    } else {
        for p in &problems {
            ctx.say(format!("problem: {p}"));
        }
        ctx.say(format!(
            "{}: {} snapshots, {} chunks referenced ({} chunks stored{}), {} packs checked{}",
            if report.ok { "ok" } else { "PROBLEMS FOUND" },
            report.snapshots_checked,
            report.chunks_referenced,
            report.chunks_stored,
            match report.chunks_missing {
                0 => String::new(),
                n => format!(", {n} missing"),
            },
            report.packs_checked,
            if read_data {
                format!(", {} read and re-hashed", bytes(report.bytes_read))
            } else {
                String::new()
            }
        ));
    }
    if !report.ok {
        if !ctx.global.json {
            eprintln!(
                "lumina-backup: verify found {} problem(s); see above",
                report.problems.len()
            );
        }
        return Ok(EXIT_PROBLEMS);
    }
    Ok(0)
}
