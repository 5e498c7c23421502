//! `key`: manage the passphrases of an encrypted repository.

use std::path::PathBuf;

use clap::Subcommand;

use lumina_backup::Error;

use super::common::Ctx;
use super::output::{self, print_json};

/// `key` subcommands.
#[derive(Subcommand, Debug)]
pub(super) enum KeyCommand {
    /// List the keys (one per passphrase).
    List,
    /// Add a passphrase (from LUMINA_BACKUP_NEW_PASSWORD, --new-password-file, or the terminal).
    Add {
        /// File holding the new passphrase.
        #[arg(long, value_name = "FILE")]
        new_password_file: Option<PathBuf>,
        /// A label shown by `key list`.
        #[arg(long, default_value = "")]
        label: String,
    },
    /// Remove a key by id or unique prefix (never the last one, nor the one in use).
    Remove {
        /// Key id or prefix.
        id: String,
    },
    /// Change the passphrase in use (rewrites its key file only).
    Passwd {
        /// File holding the new passphrase.
        #[arg(long, value_name = "FILE")]
        new_password_file: Option<PathBuf>,
    },
}

pub(super) fn run(ctx: &Ctx, what: KeyCommand) -> Result<(), Error> {
    let kdf = lumina_backup::KdfParams::default();
    match what {
        KeyCommand::List => {
            let repo = ctx.open_read("key list")?;
            let keys = repo.key_list()?;
            if ctx.global.json {
                print_json(&keys);
            } else {
                for k in keys {
                    let when = output::rfc3339(k.created.saturating_mul(1_000_000_000));
                    let cur = if k.current { " (in use)" } else { "" };
                    ctx.say(format!(
                        "{}  {when}  argon2id m={} KiB t={} p={}  {}{cur}",
                        k.id, k.params.m_cost_kib, k.params.t_cost, k.params.p_cost, k.label
                    ));
                }
            }
        }
        KeyCommand::Add {
            new_password_file,
            label,
        } => {
            let repo = ctx.open("key add")?;
            let pw = ctx.new_passphrase(new_password_file.as_deref())?;
            let id = repo.key_add(&pw, kdf, &label)?;
            ctx.say(format!("added key {id}"));
            if ctx.global.json {
                print_json(&serde_json::json!({"added": id}));
            }
        }
        KeyCommand::Remove { id } => {
            let repo = ctx.open("key remove")?;
            let removed = repo.key_remove(&id)?;
            ctx.say(format!("removed key {removed}"));
            if ctx.global.json {
                print_json(&serde_json::json!({"removed": removed}));
            }
        }
        KeyCommand::Passwd { new_password_file } => {
            let mut repo = ctx.open("key passwd")?;
            let pw = ctx.new_passphrase(new_password_file.as_deref())?;
            let id = repo.key_passwd(&pw, kdf)?;
            ctx.say(format!("passphrase changed (new key {id})"));
            if ctx.global.json {
                print_json(&serde_json::json!({"key": id}));
            }
        }
    }
    Ok(())
}
