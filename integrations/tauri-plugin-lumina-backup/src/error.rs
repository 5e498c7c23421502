//! The plugin's error: what the frontend receives when a command fails, as a
//! typed object `{ kind, message, remedy?, path?, line?, key? }` (see
//! `guest-js/index.ts`, `BackupError`), never a bare string.

use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The library refused or failed; its kind and message are passed on.
    #[error(transparent)]
    Backup(#[from] lumina_backup::Error),
    /// A command that needs the repository ran before `open` (or after `close`).
    #[error("no backup repository is open; open one first")]
    NotOpen,
    /// The frontend's arguments are not usable (an empty path, an operation id
    /// already in use).
    #[error("{0}")]
    InvalidInput(String),
    /// The background task running the library call did not finish (it
    /// panicked); the repository is as the library left it after a failure.
    #[error("the backup task stopped unexpectedly: {0}")]
    Task(String),
    /// A watcher's configuration (a file, or the app's) that cannot be used:
    /// which key, on which line of which file, and why.
    #[error("{0}")]
    Config(ConfigProblem),
    /// `watch_start` while a watcher runs: one watcher per app.
    #[error("a watcher is already running; stop it first (watch_stop) to start one with another configuration")]
    WatchRunning,
}

/// Where a watcher's configuration is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The configuration file (`None`: the configuration the app gave).
    pub path: Option<String>,
    /// Its 1-based line, when known (files only).
    pub line: Option<usize>,
    /// The key: dotted in a file (`hooks.on_success`), camelCase with
    /// indices in the app's (`config.databases[0].minGap`).
    pub key: Option<String>,
    /// What is wrong and what to do.
    pub message: String,
}

impl std::fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.path {
            Some(path) => write!(f, "configuration file {path}")?,
            None => write!(f, "watcher configuration")?,
        }
        if let Some(line) = self.line {
            write!(f, " line {line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ", key `{key}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Result alias of the plugin.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The kind the frontend matches on: the library's [`lumina_backup::ErrorKind`]
    /// name (`WrongPassword`, `Cancelled`, `InUse`...), or the plugin's own
    /// `NotOpen`, `InvalidInput`, `Internal`, `Config`, `WatchRunning`.
    pub fn kind(&self) -> String {
        match self {
            Error::Backup(e) => format!("{:?}", e.kind()),
            Error::NotOpen => "NotOpen".into(),
            Error::InvalidInput(_) => "InvalidInput".into(),
            Error::Task(_) => "Internal".into(),
            Error::Config(_) => "Config".into(),
            Error::WatchRunning => "WatchRunning".into(),
        }
    }

    /// What the app can change in its request to get past the error, in the
    /// library's terms (`force`, `live`, `notLive`...), when known.
    pub fn remedy(&self) -> Option<&'static str> {
        use lumina_backup::Remedy;
        let Error::Backup(e) = self else { return None };
        Some(match e.remedy()? {
            Remedy::Force => "force",
            Remedy::Live => "live",
            Remedy::NotLive => "notLive",
            Remedy::WeakerCheck => "weakerCheck",
            Remedy::NoCheck => "noCheck",
            Remedy::AllowEmpty => "allowEmpty",
            Remedy::NameDatabase => "nameDatabase",
            Remedy::GiveRules => "giveRules",
            Remedy::ExportJson => "exportJson",
            Remedy::TakeSnapshot(_) => "takeSnapshot",
            Remedy::ListKeys => "listKeys",
            _ => "other",
        })
    }
}

impl Serialize for Error {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let (path, line, key) = match self {
            Error::Backup(e) => (
                e.path().map(|p| p.to_string_lossy().into_owned()),
                None,
                None,
            ),
            Error::Config(p) => (p.path.clone(), p.line, p.key.clone()),
            _ => (None, None, None),
        };
        let mut s = serializer.serialize_struct("Error", 6)?;
        s.serialize_field("kind", &self.kind())?;
        s.serialize_field("message", &self.to_string())?;
        s.serialize_field("remedy", &self.remedy())?;
        s.serialize_field("path", &path)?;
        s.serialize_field("line", &line)?;
        s.serialize_field("key", &key)?;
        s.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_kind_message_and_nulls() {
        let v = serde_json::to_value(Error::NotOpen).unwrap();
        assert_eq!(v["kind"], "NotOpen");
        assert_eq!(v["message"], "no backup repository is open; open one first");
        assert!(v["remedy"].is_null() && v["path"].is_null());
    }

    #[test]
    fn library_errors_keep_their_kind_and_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nothing-here");
        let e = lumina_backup::Repository::open(&missing, &Default::default()).unwrap_err();
        let v = serde_json::to_value(Error::from(e)).unwrap();
        assert_eq!(v["kind"], "NoRepository");
        assert!(v["message"].as_str().unwrap().contains("nothing-here"));
    }
}
