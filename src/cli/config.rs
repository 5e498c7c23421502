//! `config`: argument shapes, output, and calls into the library (which holds
//! every write).

use clap::Subcommand;
use serde_json::{json, Value};

use lumina_backup::Policy;
use lumina_backup::{Error, Repository};

use super::common::{warn, Ctx};
use super::output::{print_json, rfc3339};

/// `config` subcommands.
#[derive(Subcommand, Debug)]
pub(super) enum ConfigCommand {
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
    /// Check the configuration file `watch` reads (~/.lumina/backup.toml):
    /// exit 2 naming the key and line of the first problem.
    Check {
        /// The file (default ~/.lumina/backup.toml).
        #[arg(long, value_name = "FILE")]
        config: Option<std::path::PathBuf>,
    },
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
        Err(e) if e.kind() == lumina_backup::ErrorKind::Corrupt => {
            Ok(Err(e.damage().unwrap_or_default().to_string()))
        }
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

pub(super) fn run(ctx: &Ctx, what: ConfigCommand) -> Result<(), Error> {
    match what {
        ConfigCommand::Check { config } => {
            let path = config
                .clone()
                .unwrap_or_else(lumina_backup::ConfigFile::default_path);
            let file = lumina_backup::ConfigFile::load(&path)?;
            if ctx.global.json {
                print_json(
                    &json!({"config": path, "ok": true, "settings": file, "app": file.to_app()}),
                );
            } else {
                ctx.say(format!(
                    "{}: ok ({} databases, schedule {}{})",
                    path.display(),
                    file.databases.len(),
                    file.schedule,
                    if file.on_change { ", on change" } else { "" }
                ));
            }
        }
        ConfigCommand::Set { key, value } => {
            let repo = ctx.open("config set")?;
            if fixed(&repo).iter().any(|(k, _)| *k == key) {
                return Err(Error::invalid_input(format!(
                    "`{key}` is fixed when the repository is created; settable: {}",
                    lumina_backup::SETTING_KEYS.join(", ")
                )));
            }
            // A damaged file is replaced: the rules it held cannot be read
            // anyway, and `config set` is how they are written again.
            let (mut s, damaged) = match retention_or_damage(&repo)? {
                Ok(s) => (s, None),
                Err(problem) => (Default::default(), Some(problem)),
            };
            lumina_backup::set_setting(&mut s, &key, &value)
                .map_err(|e| Error::invalid_input(e.to_string()))?;
            repo.set_retention_settings(&s)?;
            if let Some(problem) = damaged {
                warn(&format!(
                    "the retention file was damaged ({problem}) and has been replaced: only {key} is set now; set the other rules again with `lumina-backup config set`"
                ));
            }
            let now = lumina_backup::get_setting(&s, &key)
                .map_err(|e| Error::invalid_input(e.to_string()))?;
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
                None => lumina_backup::get_setting(&repo.retention_settings()?, &key)
                    .map_err(|e| Error::invalid_input(e.to_string()))?,
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
            let table = lumina_backup::settings_table(&settings);
            let policy = Policy::from_settings(&settings)
                .map_err(|e| Error::invalid_input(e.to_string()))?;
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
