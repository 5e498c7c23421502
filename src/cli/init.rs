//! `init`: create a repository.

use std::path::Path;

use clap::Args;

use lumina_backup::{Error, Repository};

use super::common::{warn, Ctx};
use super::output::print_json;

/// `init` arguments.
#[derive(Args, Debug)]
pub(super) struct InitArgs {
    /// Encrypt it (XChaCha20-Poly1305; key from the passphrase with Argon2id).
    #[arg(long)]
    encrypt: bool,
    /// Create it in a folder that already holds other files.
    #[arg(long)]
    force: bool,
    /// zstd level of its packs: 1 (fastest) to 19 (smallest); default 3.
    #[arg(long, value_name = "LEVEL", value_parser = clap::value_parser!(i32).range(1..=19))]
    compression: Option<i32>,
}

pub(super) fn run(
    ctx: &Ctx,
    InitArgs {
        encrypt,
        force,
        compression,
    }: InitArgs,
) -> Result<(), Error> {
    let location = ctx.location()?;
    let passphrase = if encrypt {
        Some(ctx.passphrase(true)?)
    } else {
        if ctx.passphrase_given() {
            warn("a passphrase was given but not --encrypt: the new repository is not encrypted and the passphrase was ignored");
        }
        None
    };
    let opts = lumina_backup::InitOptions {
        passphrase,
        force,
        zstd_level: compression,
        ..Default::default()
    };
    let config = Repository::init_at(&location, &opts)?;
    if let Some(path) = location.as_local() {
        warn_if_not_private(path);
    }
    if ctx.global.json {
        print_json(
            &serde_json::json!({"repo": location.to_string(), "repo_id": config.repo_id, "encrypted": encrypt}),
        );
    } else {
        let kind = if encrypt { "encrypted" } else { "unencrypted" };
        ctx.say(format!(
            "created {kind} repository {} at {location}",
            &config.repo_id[..12],
        ));
        if encrypt {
            ctx.say("keep the passphrase safe: without it the snapshots cannot be read");
        }
    }
    Ok(())
}

/// `init` makes the repository folder 0700; say so when the file system kept
/// another mode (no Unix modes, or a folder owned by someone else). Not on
/// Windows, where the folder keeps the ACL it inherited.
#[cfg(not(unix))]
fn warn_if_not_private(_path: &Path) {}

/// See above (Unix).
#[cfg(unix)]
fn warn_if_not_private(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(m) = std::fs::metadata(path) {
        let mode = m.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            eprintln!(
                "lumina-backup: note: {} keeps mode {mode:o} (this file system or its owner did not allow 0700); other users may list the repository's files",
                path.display()
            );
        }
    }
}
