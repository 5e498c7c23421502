//! How the CLI presents a library [`Error`]: the library's message, then the
//! CLI's advice (which command, flag or environment variable to use), and the
//! exit code. The library names no commands; this is where they are named.

use lumina_backup::{Error, ErrorKind, Problem, Remedy};

/// The exit code for a failure: 2 for bad usage or input (the user can ask
/// again differently), 1 when the operation failed. (3, "verify found
/// problems", is a verify result, not an error.)
pub fn exit_code(e: &Error) -> i32 {
    if e.is_user_error() {
        2
    } else {
        1
    }
}

/// What the user can do about `e`, in the CLI's words, or `None` when the
/// library's message says it all.
pub fn advice(e: &Error) -> Option<String> {
    if let Some(r) = e.remedy() {
        return remedy(r);
    }
    let redb = std::error::Error::source(e).is_some();
    by_kind(e.kind(), e.object(), redb)
}

/// The advice for a failure of `kind` naming `object`; `redb` for an index
/// failure of the index database itself.
fn by_kind(kind: ErrorKind, object: Option<&str>, redb: bool) -> Option<String> {
    let text = match kind {
        ErrorKind::NoRepository => "create one with `lumina-backup init`",
        ErrorKind::TooNew => "upgrade lumina-backup",
        ErrorKind::MissingData => {
            "run `lumina-backup verify`, then `lumina-backup repair snapshots`"
        }
        ErrorKind::Index if redb => {
            "if it persists run `lumina-backup repair index`"
        }
        ErrorKind::Index => "run `lumina-backup repair index`",
        ErrorKind::UnknownSnapshot => "list them with `lumina-backup snapshots`",
        ErrorKind::PassphraseRequired => {
            "give it in LUMINA_BACKUP_PASSWORD, with --password-file, or on a terminal"
        }
        ErrorKind::ReadOnly => {
            "the commands that only read (snapshots, show, cat, diff, restore to a new file, verify, export, status) work"
        }
        ErrorKind::InUse => {
            "close the app's connections (or pass --live to restore through SQLite into the open database)"
        }
        ErrorKind::Corrupt => return corrupt_advice(object.unwrap_or_default()),
        _ => return None,
    };
    Some(text.to_string())
}

/// The line the CLI prints for `e` (after `lumina-backup: `): the library's
/// message with the advice appended.
pub fn message(e: &Error) -> String {
    with_advice(e.to_string(), e)
}

/// `text` (a rendering of `e`) with the advice for `e` appended.
pub fn with_advice(text: String, e: &Error) -> String {
    match advice(e) {
        Some(a) if e.kind() == ErrorKind::PassphraseRequired => format!("{text}: {a}"),
        Some(a) => format!("{text}; {a}"),
        None => text,
    }
}

/// One verify problem as the CLI prints it (and as `verify --json` lists it);
/// `read_data` when verify re-read every pack (then "run verify --read-data"
/// is not the advice: it has just been done).
pub fn problem(p: &Problem, read_data: bool) -> String {
    match p {
        Problem::ChunkMissing { .. } => format!(
            "{p}; `lumina-backup repair snapshots` removes the snapshots that cannot be restored"
        ),
        Problem::PackNotIndexed { pack } => format!(
            "pack {} is not in the index (damaged, or run `repair index`)",
            pack.to_hex()
        ),
        Problem::RepositoryFile(text) if text.starts_with("retention is damaged") => {
            format!("{text} with `lumina-backup config set`")
        }
        other => match other.damage() {
            Some(d) => match by_kind(d.kind, d.object.as_deref(), false) {
                // The packs were just re-read: what is left is a good copy.
                Some(a) if read_data && a.contains("verify --read-data") => format!(
                    "{other}; put back the damaged pack from another copy of the repository if \
                     there is one (a restore refuses damaged data: what restores is intact)"
                ),
                Some(a) => format!("{other}; {a}"),
                None => other.to_string(),
            },
            None => other.to_string(),
        },
    }
}

/// The flag (or command) that gives the library what [`Remedy`] asks for.
fn remedy(r: &Remedy) -> Option<String> {
    let text = match r {
        Remedy::Force => "pass --force",
        Remedy::Live => "pass --live to write through SQLite into the file every name shares, or restore to a new path",
        Remedy::NotLive => "close the app's connections and restore without --live",
        Remedy::WeakerCheck => "pass --check quick (which does not compare indexes with their tables) or --no-check to restore it anyway",
        Remedy::NoCheck => "pass --no-check to restore it without SQLite's check",
        Remedy::AllowEmpty => "check the rules with --dry-run, or pass --allow-empty if that is what you want",
        Remedy::NameDatabase => "say which with --db",
        Remedy::GiveRules => "pass --keep-last/--keep-daily/... or store rules with `lumina-backup config set keep-daily 7`",
        Remedy::ExportJson => "export with --format json",
        Remedy::TakeSnapshot(db) => {
            return Some(format!("take one with `lumina-backup snapshot {}`", db.display()))
        }
        Remedy::ListKeys => "see `lumina-backup key list`",
        _ => return None,
    };
    Some(text.to_string())
}

/// What to do about a damaged object the library gave no advice for. Packs,
/// snapshots and chunks: `verify --read-data` names all the damage and the
/// repairs follow. The config, `status` and the key folder get their fix from
/// the library already.
fn corrupt_advice(object: &str) -> Option<String> {
    if let Some(id) = object
        .strip_prefix("key file keys/")
        .or_else(|| object.strip_prefix("key "))
    {
        return Some(format!(
            "if another passphrase opens the repository, remove this key with \
             `lumina-backup key remove {id}`; else restore keys/{id} from a copy of the repository"
        ));
    }
    match object {
        "config" | "status" | "repository" => None,
        "retention settings" => Some(
            "set the retention rules again with `lumina-backup config set` (it replaces the file)"
                .into(),
        ),
        _ => Some("run `lumina-backup verify --read-data`".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_advice_by_object() {
        assert!(corrupt_advice("config").is_none());
        assert!(corrupt_advice("key file keys/ab12").is_some_and(|a| a.contains("key remove ab12")));
        assert!(corrupt_advice("retention settings").is_some_and(|a| a.contains("config set")));
        assert!(corrupt_advice("pack 3fa9").is_some_and(|a| a.contains("verify --read-data")));
    }

    #[test]
    fn verify_problems_get_the_cli_advice() {
        use lumina_backup::{PackId, SnapshotId};
        let p = Problem::ChunkMissing {
            snapshot: SnapshotId([1; 32]),
            file: "app.db".into(),
            chunk: "ab".repeat(32),
            more: 0,
        };
        assert!(problem(&p, false).ends_with(
            "; `lumina-backup repair snapshots` removes the snapshots that cannot be restored"
        ));
        let p = Problem::PackNotIndexed {
            pack: PackId([2; 32]),
        };
        assert!(problem(&p, false).ends_with("(damaged, or run `repair index`)"));
    }

    #[test]
    fn invalid_input_exits_2_and_internal_exits_1() {
        assert_eq!(exit_code(&Error::invalid_input("x")), 2);
        assert_eq!(exit_code(&Error::internal("x")), 1);
        assert_eq!(advice(&Error::invalid_input("x")), None);
    }
}
