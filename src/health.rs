//! Failure reports of the unattended runs (`watch`, the app's watcher): per
//! database and per remote, the last success, the last failure (time,
//! operation, message) and how many failures in a row. `status` shows them and
//! `status --json` carries them for monitors.
//!
//! The record lives outside the repository, in the user's state folder, so a
//! watcher that cannot write its repository (full disk, read-only mount,
//! remote down) can still say so: `$LUMINA_BACKUP_STATE_DIR`, else
//! `$XDG_STATE_HOME/lumina-backup`, else `~/.local/state/lumina-backup`
//! (`~/Library/Application Support/lumina-backup` on macOS,
//! `%LOCALAPPDATA%\lumina-backup\state` on Windows); one JSON file per
//! repository, `health-<first 16 hex digits of BLAKE3(location)>.json`, where
//! the location is the repository's folder (canonical) or URL. It is written
//! whole, atomically (temp file, fsync, rename). Two processes updating it at
//! the same instant can lose one update (the last writer wins; the threads of
//! one process take turns); the watcher is its usual only writer. A file that cannot be read is reported, never trusted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::backend::Location;
use crate::error::{Error, Result};

/// The file's `version`.
const VERSION: u32 = 1;

/// The failure reports of one repository.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Health {
    /// Format of this file (1).
    pub version: u32,
    /// The repository (folder or URL).
    pub repository: String,
    /// Per database (its path).
    #[serde(default)]
    pub databases: BTreeMap<String, HealthEntry>,
    /// Per remote location (its URL).
    #[serde(default)]
    pub remotes: BTreeMap<String, HealthEntry>,
    /// Restore drills the watcher ran, per database (its path): the last
    /// success names the snapshot drilled.
    #[serde(default)]
    pub drills: BTreeMap<String, HealthEntry>,
    /// Failures that concern the repository itself (it cannot be opened or
    /// written), under the operation's name.
    #[serde(default)]
    pub repository_entry: HealthEntry,
}

/// Successes and failures of one database, remote, or the repository.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct HealthEntry {
    /// When it last succeeded (unix ns).
    #[serde(default)]
    pub last_success_ns: Option<i64>,
    /// What last succeeded (a snapshot id, a copy).
    #[serde(default)]
    pub last_success: Option<String>,
    /// The last failure.
    #[serde(default)]
    pub last_failure: Option<Failure>,
    /// Failures since the last success.
    #[serde(default)]
    pub consecutive_failures: u32,
}

/// One failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Failure {
    /// When (unix ns).
    pub time_ns: i64,
    /// What failed: `snapshot`, `retention`, `copy`, `open`, `restore-drill`.
    pub operation: String,
    /// The error message.
    pub message: String,
}

/// What a report is about.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Subject {
    /// A database (its path).
    Database(String),
    /// A remote location (its URL).
    Remote(String),
    /// The restore drills of a database (its path).
    Drill(String),
    /// The repository itself.
    Repository,
}

fn now_ns() -> i64 {
    i64::try_from(crate::testhook::now().unix_timestamp_nanos()).unwrap_or(i64::MAX)
}

/// The state folder (module docs).
pub fn state_dir() -> Result<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(d) = env("LUMINA_BACKUP_STATE_DIR") {
        return Ok(d);
    }
    let base = if cfg!(target_os = "macos") {
        env("HOME").map(|h| h.join("Library").join("Application Support"))
    } else if cfg!(windows) {
        env("LOCALAPPDATA").map(|d| d.join("lumina-backup").join("state"))
    } else {
        env("XDG_STATE_HOME").or_else(|| env("HOME").map(|h| h.join(".local").join("state")))
    };
    match base {
        Some(b) if cfg!(windows) => Ok(b),
        Some(b) => Ok(b.join("lumina-backup")),
        None => Err(Error::invalid_input(
            "no state folder for failure reports: set HOME, XDG_STATE_HOME or LUMINA_BACKUP_STATE_DIR",
        )),
    }
}

/// The key naming a repository's file: its canonical folder, or its URL.
fn location_key(location: &Location) -> String {
    match location {
        Location::Local(p) => std::fs::canonicalize(p)
            .unwrap_or_else(|_| p.clone())
            .display()
            .to_string(),
        Location::Remote(_) => location.to_string(),
    }
}

/// The file holding the reports of the repository at `location`, in `dir`.
pub fn path_in(dir: &Path, location: &Location) -> PathBuf {
    let key = location_key(location);
    let hash = blake3::hash(key.as_bytes()).to_hex();
    dir.join(format!("health-{}.json", &hash[..16]))
}

impl Health {
    /// The reports of the repository at `location` (`None`: nothing recorded).
    /// A file that cannot be read or decoded is an error naming it.
    pub fn load(location: &Location) -> Result<Option<Health>> {
        Self::load_in(&state_dir()?, location)
    }

    /// [`Self::load`] from the state folder `dir`.
    pub fn load_in(dir: &Path, location: &Location) -> Result<Option<Health>> {
        let path = path_in(dir, location);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("reading", &path, e)),
        };
        let h: Health = serde_json::from_slice(&bytes).map_err(|e| {
            Error::corrupt(
                path.display().to_string(),
                format!("{e}; delete it (it holds failure reports only)"),
            )
        })?;
        if h.version > VERSION {
            return Err(Error::invalid_input(format!(
                "{} was written by a newer lumina-backup (version {}): upgrade lumina-backup",
                path.display(),
                h.version
            )));
        }
        Ok(Some(h))
    }

    /// The entry of `subject`.
    pub fn entry(&self, subject: &Subject) -> Option<&HealthEntry> {
        match subject {
            Subject::Database(d) => self.databases.get(d),
            Subject::Remote(r) => self.remotes.get(r),
            Subject::Drill(d) => self.drills.get(d),
            Subject::Repository => Some(&self.repository_entry),
        }
    }

    fn entry_mut(&mut self, subject: &Subject) -> &mut HealthEntry {
        match subject {
            Subject::Database(d) => self.databases.entry(d.clone()).or_default(),
            Subject::Remote(r) => self.remotes.entry(r.clone()).or_default(),
            Subject::Drill(d) => self.drills.entry(d.clone()).or_default(),
            Subject::Repository => &mut self.repository_entry,
        }
    }

    /// Records, in the state folder `dir` (`state_dir()`), a success of `subject` (`what`: a snapshot id, ...): the
    /// consecutive count goes back to 0. A success of a database or remote is
    /// also one of the repository.
    pub fn record_success(
        dir: &Path,
        location: &Location,
        subject: &Subject,
        what: &str,
    ) -> Result<()> {
        Self::update(dir, location, |h| {
            let now = now_ns();
            for s in [subject, &Subject::Repository] {
                let e = h.entry_mut(s);
                e.last_success_ns = Some(now);
                e.last_success = Some(what.to_string());
                e.consecutive_failures = 0;
            }
        })
        .map(drop)
    }

    /// Records, in the state folder `dir`, a failure of `subject`; returns its
    /// consecutive count.
    pub fn record_failure(
        dir: &Path,
        location: &Location,
        subject: &Subject,
        operation: &str,
        message: &str,
    ) -> Result<u32> {
        let h = Self::update(dir, location, |h| {
            let e = h.entry_mut(subject);
            e.last_failure = Some(Failure {
                time_ns: now_ns(),
                operation: operation.to_string(),
                message: message.to_string(),
            });
            e.consecutive_failures = e.consecutive_failures.saturating_add(1);
        })?;
        Ok(h.entry(subject).map_or(1, |e| e.consecutive_failures))
    }

    /// Reads (a damaged file starts afresh), changes and writes the file;
    /// one update at a time in this process (the watcher's threads).
    fn update(dir: &Path, location: &Location, change: impl FnOnce(&mut Health)) -> Result<Health> {
        static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
        let path = path_in(dir, location);
        let mut h = Self::load_in(dir, location)
            .ok()
            .flatten()
            .unwrap_or_default();
        h.version = VERSION;
        h.repository = location_key(location);
        change(&mut h);
        std::fs::create_dir_all(dir).map_err(|e| Error::io("creating folder", dir, e))?;
        let mut json = serde_json::to_vec_pretty(&h)
            .map_err(|e| Error::internal(format!("failure report: {e}")))?;
        json.push(b'\n');
        crate::fsutil::write_file_atomic(&path, &json)?;
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_decodes_and_old_fields_default() {
        // The file's shape (README "Failure reports"), as monitors read it.
        let text = r#"{"version":1,"repository":"/r","databases":{"/d.db":{"last_success_ns":5,
            "last_success":"abc","last_failure":{"time_ns":4,"operation":"snapshot","message":"m"},
            "consecutive_failures":0}}}"#;
        let h: Health = serde_json::from_str(text).expect("decodes");
        let e = h.entry(&Subject::Database("/d.db".into())).expect("entry");
        assert_eq!(e.last_success_ns, Some(5));
        assert_eq!(e.last_failure.as_ref().map(|f| f.time_ns), Some(4));
        assert!(h.remotes.is_empty());
        assert_eq!(h.repository_entry, HealthEntry::default());
        let back: Health =
            serde_json::from_str(&serde_json::to_string(&h).expect("encodes")).expect("decodes");
        assert_eq!(back, h);
    }
}
