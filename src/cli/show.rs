//! `show`: the files of a snapshot with sizes, checksums and table row counts.

use std::path::PathBuf;

use clap::Args;

use lumina_backup::Error;

use super::common::Ctx;
use super::output::{bytes, clean, clean_tags, count, local_time, print_json, SnapshotJson};

/// `show` arguments.
#[derive(Args, Debug)]
pub(super) struct ShowArgs {
    /// Snapshot id, unique prefix (6+ hex), or `latest`.
    snap: String,
    /// With `latest`: which database's newest (needed when the repository has several).
    #[arg(long, value_name = "PATH")]
    db: Option<PathBuf>,
}

pub(super) fn run(ctx: &Ctx, ShowArgs { snap, db }: ShowArgs) -> Result<(), Error> {
    let repo = ctx.open_read("show")?;
    let s = repo.resolve_in(&snap, db.as_deref())?;
    let mut manifest = Vec::new();
    let tables = match s.file("manifest.json") {
        Ok(entry) => {
            repo.read_file(entry, &mut manifest, &lumina_backup::NoProgress)?;
            serde_json::from_slice::<serde_json::Value>(&manifest)
                .ok()
                .and_then(|m| m.get("tables").cloned())
        }
        Err(_) => None,
    };
    if ctx.global.json {
        let mut doc = serde_json::to_value(SnapshotJson::from(&s))
            .map_err(|e| Error::internal(e.to_string()))?;
        doc["tables"] = tables.unwrap_or(serde_json::Value::Null);
        doc["sqlite"] = serde_json::json!({
            "page_size": s.record.sqlite.page_size,
            "page_count": s.record.sqlite.page_count,
            "user_version": s.record.sqlite.user_version,
            "sqlite_version": s.record.sqlite.sqlite_version,
            "journal_mode": s.record.sqlite.journal_mode,
            "lumina": s.record.sqlite.lumina,
        });
        doc["encrypted"] = serde_json::json!(repo.encrypted());
        doc["format_version"] = serde_json::json!(repo.format_version());
        doc["checksum_kind"] = serde_json::json!(repo.checksum_kind());
        print_json(&doc);
    } else {
        let r = &s.record;
        ctx.say(format!("snapshot {}", s.id));
        let kind = if repo.encrypted() {
            "encrypted (XChaCha20-Poly1305, Argon2id keys)"
        } else {
            "unencrypted"
        };
        ctx.say(format!("  repository {kind}"));
        ctx.say(format!("  time      {}", local_time(r.time_ns, &ctx.tz)));
        ctx.say(format!(
            "  database  {} (host {})",
            clean(&r.source),
            clean(&r.hostname)
        ));
        if let Some(p) = r.parent {
            ctx.say(format!("  parent    {}", p.short()));
        }
        if !r.tags.is_empty() {
            ctx.say(format!("  tags      {}", clean_tags(&r.tags)));
        }
        if !r.note.is_empty() {
            ctx.say(format!("  note      {}", clean(&r.note)));
        }
        ctx.say(format!(
            "  sqlite    {} pages of {} bytes, user_version {}, {} mode",
            r.sqlite.page_count, r.sqlite.page_size, r.sqlite.user_version, r.sqlite.journal_mode
        ));
        ctx.say(format!(
            "  size      {} ({} added by this snapshot)",
            bytes(r.total_bytes),
            bytes(r.new_bytes)
        ));
        // Format 2 checksums are chunk-list digests, not what `b3sum` prints.
        let label = if repo.checksum_kind() == "blake3" {
            ctx.say("  files:");
            "blake3"
        } else {
            ctx.say(
                "  files (checksum: digest of the file's chunk list, not comparable with b3sum):",
            );
            "digest"
        };
        for f in s.user_files() {
            ctx.say(format!(
                "    {:<18} {:>12}  {label} {}",
                f.name,
                bytes(f.size),
                hex::encode(f.blake3)
            ));
        }
        if let Some(serde_json::Value::Object(t)) = tables {
            ctx.say("  tables:");
            for (name, rows) in t {
                let rows = match rows.as_u64() {
                    Some(n) => count(n, "row"),
                    None => format!("{rows} rows"),
                };
                ctx.say(format!("    {name:<18} {rows}"));
            }
        }
        for w in &r.warnings {
            ctx.say(format!("  warning: {w}"));
        }
    }
    Ok(())
}
