//! `status`: newest snapshot per database, last failure, repository size and
//! deduplication.

use lumina_backup::Error;

use super::common::Ctx;
use super::output::{bytes, clean, count, local_time, print_json};

pub(super) fn run(ctx: &Ctx) -> Result<(), Error> {
    let repo = ctx.open_read("status")?;
    let st = repo.status()?;
    if ctx.global.json {
        print_json(&st);
    } else {
        let kind = if st.encrypted {
            "encrypted"
        } else {
            "unencrypted"
        };
        ctx.say(format!(
            "repository {} ({kind}), {}",
            st.repository,
            count(st.snapshots as u64, "snapshot")
        ));
        for d in &st.databases {
            let id = d.latest_id.get(..12).unwrap_or(&d.latest_id);
            ctx.say(format!(
                "  {}: {}, newest {id} at {}",
                clean(&d.db),
                count(d.snapshots as u64, "snapshot"),
                local_time(d.latest_time_ns, &ctx.tz)
            ));
        }
        match &st.chain_head {
            Some(h) => ctx.say(format!(
                "chain head: {} ({}; keep it elsewhere and check later with `verify --expect-head {}`)",
                h.get(..16).unwrap_or(h),
                count(st.chain_records, "record"),
                h.get(..16).unwrap_or(h)
            )),
            None => ctx.say("chain head: none yet (the next snapshot starts the history chain)"),
        }
        match &st.last_failure {
            Some(f) => ctx.say(format!(
                "last failure: {} {} at {}: {}",
                f.operation,
                clean(&f.db),
                local_time(f.time_ns, &ctx.tz),
                f.message
            )),
            None => ctx.say("last failure: none recorded"),
        }
        say_health(ctx, &st);
        let ratio = match (st.dedup_ratio, st.snapshots) {
            (Some(r), _) => format!("deduplication {r:.1}x"),
            (None, 0) => "no snapshots yet".to_string(),
            (None, _) => format!(
                "deduplication unknown: {}",
                st.dedup_unknown
                    .as_deref()
                    .unwrap_or("run `lumina-backup verify`")
            ),
        };
        ctx.say(format!(
            "stored {} in {} for {} of snapshots ({ratio})",
            bytes(st.stored_bytes),
            count(st.packs, "pack"),
            bytes(st.logical_bytes),
        ));
        let referenced = st
            .chunks_referenced
            .map_or("unknown chunks".to_string(), |n| count(n, "chunk"));
        ctx.say(format!(
            "{} stored, {referenced} referenced by snapshots",
            count(st.chunks_stored, "chunk")
        ));
        if let Some(u) = st.unreferenced_bytes.filter(|u| *u > 0) {
            ctx.say(format!(
                "{} stored that no snapshot references (interrupted snapshots or forgotten ones); `lumina-backup prune` frees it",
                bytes(u)
            ));
        }
    }
    Ok(())
}

/// The unattended runs' reports: one line per database, remote and the
/// repository itself.
fn say_health(ctx: &Ctx, st: &lumina_backup::Status) {
    if let Some(p) = &st.health_problem {
        ctx.say(format!("failure reports: cannot be read: {p}"));
    }
    let Some(h) = &st.health else { return };
    let entries = h
        .databases
        .iter()
        .map(|(k, e)| (format!("database {}", clean(k)), e))
        .chain(
            h.remotes
                .iter()
                .map(|(k, e)| (format!("remote {}", clean(k)), e)),
        )
        .chain(
            h.drills
                .iter()
                .map(|(k, e)| (format!("restore drill of {}", clean(k)), e)),
        )
        .chain(std::iter::once((
            "repository".to_string(),
            &h.repository_entry,
        )));
    for (what, e) in entries {
        if e.last_success_ns.is_none() && e.last_failure.is_none() {
            continue;
        }
        let ok = e
            .last_success_ns
            .map_or("never".to_string(), |t| local_time(t, &ctx.tz));
        let mut line = format!("  {what}: last success {ok}");
        if let Some(f) = &e.last_failure {
            line.push_str(&format!(
                "; last failure {} ({}): {}",
                local_time(f.time_ns, &ctx.tz),
                f.operation,
                f.message
            ));
        }
        if e.consecutive_failures > 0 {
            line.push_str(&format!("; {} failures in a row", e.consecutive_failures));
        }
        ctx.say(line);
    }
}
