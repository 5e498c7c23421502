//! The configuration file (`~/.lumina/backup.toml`): what `watch` (and the
//! app's plugin) runs by itself. It mirrors the app's `BackupConfig`
//! ([`AppBackupConfig`], README "Configuration file") and adds what a service
//! needs (time of day, on-change snapshots, hooks, remotes). Parsed with the
//! `toml` crate; an unknown key or a bad value is an error naming the key and
//! its line ([`ConfigError`]). The passphrase of an encrypted repository is
//! never in the file: only where to find it ([`PassphraseSource`]).

mod app;
mod values;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use app::{AppBackupConfig, CloudProvider};
pub use values::{
    Compression, Interval, PassphraseSource, Retention, RetentionRules, Schedule, TimeOfDay,
    Weekday,
};

/// The parsed configuration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ConfigFile {
    /// Whether scheduled backups run at all (`BackupConfig.enabled`).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Whether the app takes a snapshot before risky operations
    /// (`BackupConfig.autoBackup`; the app calls `Repository::snapshot_before`).
    #[serde(default = "yes")]
    pub auto_backup: bool,
    /// The repository: a folder or a location URL (`~` is the home folder).
    #[serde(default)]
    pub repository: Option<String>,
    /// The databases, each a path or a table with per-database settings.
    #[serde(default)]
    pub databases: Vec<DatabaseConfig>,
    /// When to snapshot (`BackupConfig.schedule`).
    #[serde(default)]
    pub schedule: Schedule,
    /// Local time of day of the daily, weekly and monthly snapshots (`"03:00"`).
    #[serde(default)]
    pub time: Option<TimeOfDay>,
    /// Day of the week of the weekly snapshot (`"monday"`, ...).
    #[serde(default)]
    pub weekday: Option<Weekday>,
    /// Day of the month (1 to 28) of the monthly snapshot.
    #[serde(default)]
    pub day: Option<u8>,
    /// Also snapshot when a database changes (at most once per `min_gap`).
    #[serde(default)]
    pub on_change: bool,
    /// The least time between two snapshots of a database taken on change.
    #[serde(default)]
    pub min_gap: Option<Interval>,
    /// Which snapshots to keep after each snapshot (`BackupConfig.retention`).
    #[serde(default)]
    pub retention: Option<Retention>,
    /// zstd level of a repository `watch` creates (`BackupConfig.compression`).
    #[serde(default)]
    pub compression: Option<Compression>,
    /// Where the passphrase of an encrypted repository comes from
    /// (`BackupConfig.encryption`); `false` or absent: not encrypted.
    #[serde(default)]
    pub encryption: Option<PassphraseSource>,
    /// Remote locations the snapshots are copied to after each snapshot.
    #[serde(default)]
    pub remotes: Vec<String>,
    /// How often `watch` restores each database's newest snapshot to a
    /// temporary file and checks it (`"7d"`); absent: never.
    #[serde(default)]
    pub restore_drill: Option<Interval>,
    /// `BackupConfig.cloudProvider`: one more remote, with `cloud_path`.
    #[serde(default)]
    pub cloud_provider: Option<CloudProvider>,
    /// `BackupConfig.cloudPath`: the folder at the cloud provider.
    #[serde(default)]
    pub cloud_path: Option<String>,
    /// Commands run after each snapshot or failure.
    #[serde(default)]
    pub hooks: Hooks,
    /// An URL that receives every snapshot and failure as a JSON POST.
    #[serde(default)]
    pub webhook: Option<String>,
}

fn yes() -> bool {
    true
}

/// One database: a path, or a table with settings of its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(remote = "Self")]
#[non_exhaustive]
pub struct DatabaseConfig {
    /// The database file (`~` is the home folder).
    pub path: String,
    /// Its schedule, instead of the file's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    /// Its on-change setting, instead of the file's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_change: Option<bool>,
    /// Its least gap between on-change snapshots, instead of the file's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_gap: Option<Interval>,
    /// Tags given to its snapshots.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

impl Serialize for DatabaseConfig {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if *self == DatabaseConfig::new(self.path.clone()) {
            s.serialize_str(&self.path)
        } else {
            DatabaseConfig::serialize(self, s)
        }
    }
}

impl<'de> Deserialize<'de> for DatabaseConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{self, MapAccess, Visitor};
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = DatabaseConfig;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(
                    f,
                    "a database path, or a table with `path` and its own settings"
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DatabaseConfig, E> {
                Ok(DatabaseConfig::new(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<DatabaseConfig, A::Error> {
                DatabaseConfig::deserialize(de::value::MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_any(V)
    }
}

impl DatabaseConfig {
    /// A database with the file's settings.
    pub fn new(path: impl Into<String>) -> Self {
        DatabaseConfig {
            path: path.into(),
            schedule: None,
            on_change: None,
            min_gap: None,
            tags: Vec::new(),
        }
    }
}

/// Commands run by `watch` (with `sh -c`, or `cmd /C` on Windows); the details
/// are in `LUMINA_BACKUP_*` environment variables (README "Hooks").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Hooks {
    /// After each snapshot taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_success: Option<String>,
    /// After each failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<String>,
}

/// A configuration file that cannot be used: where, which key, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfigError {
    /// The file.
    pub path: PathBuf,
    /// Its 1-based line, when known.
    pub line: Option<usize>,
    /// The key (dotted for tables: `hooks.on_success`), when known.
    pub key: Option<String>,
    /// What is wrong and what to do.
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "configuration file {}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, " line {line}")?;
        }
        if let Some(key) = &self.key {
            write!(f, ", key `{key}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

impl From<ConfigError> for crate::Error {
    fn from(e: ConfigError) -> Self {
        crate::Error::invalid_input(e.to_string())
    }
}

impl ConfigFile {
    /// The default path: `~/.lumina/backup.toml`.
    pub fn default_path() -> PathBuf {
        home().join(".lumina").join("backup.toml")
    }

    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<ConfigFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: path.to_path_buf(),
            line: None,
            key: None,
            message: match e.kind() {
                std::io::ErrorKind::NotFound => {
                    "not found: create it (README \"Configuration file\") or give another with --config".to_string()
                }
                _ => format!("cannot be read: {e}"),
            },
        })?;
        Self::parse(&text, path)
    }

    /// Parses and checks `text` (read from `path`, named in errors).
    pub fn parse(text: &str, path: &Path) -> Result<ConfigFile, ConfigError> {
        let config: ConfigFile = toml::from_str(text).map_err(|e| {
            let (line, key) = match e.span() {
                Some(span) => locate(text, span.start),
                None => (None, None),
            };
            ConfigError {
                path: path.to_path_buf(),
                line,
                key,
                message: e.message().trim().to_string(),
            }
        })?;
        config.check().map_err(|(key, message)| ConfigError {
            path: path.to_path_buf(),
            line: line_of_key(text, key),
            key: Some(key.to_string()),
            message,
        })?;
        Ok(config)
    }

    /// The file as TOML text (what [`Self::parse`] reads back).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// Checks between keys (each value was checked when read).
    fn check(&self) -> Result<(), (&'static str, String)> {
        if self.weekday.is_some() && self.schedule != Schedule::Weekly {
            return Err((
                "weekday",
                "only a weekly schedule has a weekday: remove it or set schedule = \"weekly\""
                    .into(),
            ));
        }
        if self.day.is_some() && self.schedule != Schedule::Monthly {
            return Err((
                "day",
                "only a monthly schedule has a day: remove it or set schedule = \"monthly\"".into(),
            ));
        }
        if matches!(self.day, Some(d) if !(1..=28).contains(&d)) {
            return Err((
                "day",
                "the day of the month must be 1 to 28 (every month has it)".into(),
            ));
        }
        if self.time.is_some()
            && !matches!(
                self.schedule,
                Schedule::Daily | Schedule::Weekly | Schedule::Monthly
            )
        {
            return Err((
                "time",
                "only a daily, weekly or monthly schedule has a time of day".into(),
            ));
        }
        if self.cloud_path.is_some() != self.cloud_provider.is_some() {
            return Err((
                "cloud_path",
                "cloud_provider and cloud_path go together: give both or neither".into(),
            ));
        }
        for r in self.remotes() {
            if let Err(e) = crate::Location::parse(&r) {
                return Err(("remotes", e.to_string()));
            }
        }
        if let Some(r) = &self.repository {
            if let Err(e) = crate::Location::parse(r) {
                return Err(("repository", e.to_string()));
            }
        }
        if let Some(Retention::Rules(rules)) = &self.retention {
            if let Err(e) = rules.policy() {
                return Err(("retention", e.to_string()));
            }
        }
        Ok(())
    }

    /// The remote locations: `remotes` and the one `cloud_provider` and
    /// `cloud_path` name.
    pub fn remotes(&self) -> Vec<String> {
        let mut all = self.remotes.clone();
        if let (Some(p), Some(path)) = (self.cloud_provider, &self.cloud_path) {
            all.push(format!("{}:{}", p.scheme(), path.trim_start_matches('/')));
        }
        all
    }

    /// The repository's location (`~` expanded), if the file names one.
    pub fn repository_location(&self) -> Option<Result<crate::Location, crate::Error>> {
        self.repository
            .as_deref()
            .map(|r| crate::Location::parse(&expand_home(r).to_string_lossy()))
    }
}

/// `~` and `~/...` as the home folder.
pub fn expand_home(path: &str) -> PathBuf {
    match path.strip_prefix("~") {
        Some("") => home(),
        Some(rest) if rest.starts_with('/') || rest.starts_with('\\') => home().join(&rest[1..]),
        _ => PathBuf::from(path),
    }
}

fn home() -> PathBuf {
    std::env::var_os("HOME")
        .or_else(|| std::env::var_os("USERPROFILE"))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The 1-based line of byte `offset`, and the dotted key written on that line
/// (under the `[table]` header above it), if the line assigns one.
fn locate(text: &str, offset: usize) -> (Option<usize>, Option<String>) {
    let offset = offset.min(text.len());
    let line_no = text[..offset].matches('\n').count() + 1;
    let mut table = None;
    let mut key = None;
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if i + 1 > line_no {
            break;
        }
        if l.starts_with('[') && !l.starts_with("[[") {
            table = Some(l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
        }
        if i + 1 == line_no {
            key = l
                .split_once('=')
                .map(|(k, _)| k.trim().trim_matches('"').to_string())
                .filter(|k| !k.is_empty() && !k.contains(' ') && !k.starts_with('{'));
            // A header line names its table.
            if key.is_none() && l.starts_with('[') {
                key = table.clone();
                table = None;
            }
        }
    }
    let key = match (table, key) {
        (Some(t), Some(k)) => Some(format!("{t}.{k}")),
        (_, k) => k,
    };
    (Some(line_no), key)
}

/// The line where a top-level `key` is assigned, if it is.
fn line_of_key(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            l.trim_start()
                .strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|i| i + 1)
}

#[cfg(test)]
mod tests;
