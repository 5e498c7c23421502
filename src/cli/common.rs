//! What every command shares: the context (global options, time zone), opening
//! the repository with its passphrase, the default paths, warnings.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lumina_backup::TimeZone;
use lumina_backup::{Error, Location, OpenOptions, Repository};

use super::progress::Bar;
use super::secret;
use super::Global;

/// The global options and the local time zone, handed to every command.
pub(super) struct Ctx {
    pub(super) global: Global,
    /// The local time zone (for typed and shown local times).
    pub(super) tz: TimeZone,
}

impl Ctx {
    /// Where the repository is: `--repo` (a path or a URL, exit 2 when
    /// malformed), else the default folder.
    pub(super) fn location(&self) -> Result<Location, Error> {
        match &self.global.repo {
            Some(text) => Location::parse(text),
            None => Ok(Location::Local(default_repo())),
        }
    }

    pub(super) fn open(&self, purpose: &str) -> Result<Repository, Error> {
        let repo = Repository::open_at(&self.location()?, &self.open_options(purpose)?)?;
        for n in repo.notices() {
            eprintln!("lumina-backup: {n}");
        }
        Ok(repo)
    }

    /// Opens for a command that only reads: writes nothing to the repository
    /// (works on a read-only mount or a full disk; shares the lock with readers).
    pub(super) fn open_read(&self, purpose: &str) -> Result<Repository, Error> {
        let repo = Repository::open_read_only_at(&self.location()?, &self.open_options(purpose)?)?;
        for n in repo.notices() {
            eprintln!("lumina-backup: {n}");
        }
        Ok(repo)
    }

    pub(super) fn open_options(&self, purpose: &str) -> Result<OpenOptions, Error> {
        let path = self.location()?;
        let passphrase = if Repository::is_encrypted_at(&path)? {
            Some(self.passphrase(false)?)
        } else {
            if self.passphrase_given() {
                warn(&format!(
                    "repository {path} is not encrypted; the passphrase given was ignored"
                ));
            }
            None
        };
        Ok(OpenOptions {
            lock_wait: Duration::from_secs(self.global.lock_wait),
            purpose: purpose.to_string(),
            passphrase,
        })
    }

    /// The passphrase of the repository; `creating` for `init --encrypt`.
    pub(super) fn passphrase(&self, creating: bool) -> Result<zeroize::Zeroizing<String>, Error> {
        let repo = self.location()?;
        let missing = if creating {
            format!(
                "init --encrypt needs a passphrase for the new repository {repo}: set LUMINA_BACKUP_PASSWORD, use --password-file FILE, or run on a terminal"
            )
        } else {
            format!(
                "repository {repo} is encrypted and needs its passphrase: give it in LUMINA_BACKUP_PASSWORD, with --password-file, or on a terminal"
            )
        };
        let src = secret::Source {
            env: "LUMINA_BACKUP_PASSWORD",
            file: self.global.password_file.as_deref(),
            prompt: "repository passphrase",
            missing: &missing,
        };
        secret::read(&src, creating)
    }

    pub(super) fn new_passphrase(
        &self,
        file: Option<&Path>,
    ) -> Result<zeroize::Zeroizing<String>, Error> {
        let src = secret::Source {
            env: "LUMINA_BACKUP_NEW_PASSWORD",
            file,
            prompt: "new passphrase",
            missing: "no new passphrase given: set LUMINA_BACKUP_NEW_PASSWORD, use --new-password-file FILE, or run on a terminal",
        };
        secret::read(&src, true)
    }

    /// Whether the user gave a passphrase (file or environment).
    pub(super) fn passphrase_given(&self) -> bool {
        self.global.password_file.is_some() || std::env::var_os("LUMINA_BACKUP_PASSWORD").is_some()
    }

    pub(super) fn bar(&self) -> Bar {
        Bar::new(self.global.quiet || self.global.json)
    }

    /// Human lines go to stdout unless `--json`.
    pub(super) fn say(&self, line: impl AsRef<str>) {
        if !self.global.json {
            println!("{}", line.as_ref());
        }
    }
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn default_repo() -> PathBuf {
    home().join(".lumina").join("backups")
}

pub(super) fn default_db() -> PathBuf {
    home().join(".lumina").join("lumina.db")
}

/// A warning on stderr (shown even with `--quiet`, which silences progress only).
pub(super) fn warn(message: &str) {
    eprintln!("lumina-backup: warning: {message}");
}
