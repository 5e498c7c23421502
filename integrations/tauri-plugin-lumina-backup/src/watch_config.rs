//! The watcher's configuration as the frontend gives and reads it
//! ([`WatchConfig`], camelCase, mirroring the app's `BackupConfig` where it
//! maps), and its translation to and from the library's configuration file
//! ([`ConfigFile`], `~/.lumina/backup.toml`).

use std::path::Path;

use lumina_backup::{
    AppBackupConfig, CloudProvider, ConfigError, ConfigFile, DatabaseConfig, Interval, Retention,
    Schedule, TimeOfDay, Weekday,
};
use serde::{Deserialize, Serialize};

use crate::error::{ConfigProblem, Error, Result};

/// What `watch_start` watches with: a configuration the app gives, or the
/// configuration file. JSON: `{ "config": {...} }` or `{ "file": null }`
/// (the default `~/.lumina/backup.toml`) or `{ "file": "/path/backup.toml" }`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum WatchSource {
    /// The app's settings.
    Config(Box<WatchConfig>),
    /// The configuration file at this path (`None`: `~/.lumina/backup.toml`).
    File(Option<String>),
}

/// A watcher's configuration. The names and values of `schedule`,
/// `retention`, `cloudProvider` and `cloudPath` are the app's `BackupConfig`'s;
/// the rest is what a watcher needs besides (README "Configuration file" of
/// the library has the same keys in snake_case).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WatchConfig {
    /// The repository (a folder or a location URL); absent: the one open in
    /// the plugin.
    #[serde(default)]
    pub repository: Option<String>,
    /// The databases (at least one).
    pub databases: Vec<WatchDatabase>,
    /// `daily`, `weekly`, `monthly`, `manual` (only on change), or an
    /// interval such as `15m` (`BackupConfig.schedule`, plus intervals).
    #[serde(default)]
    pub schedule: Schedule,
    /// Local time of day of a daily, weekly or monthly snapshot (`"03:00"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<TimeOfDay>,
    /// Day of the week of a weekly snapshot (`"monday"`...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weekday: Option<Weekday>,
    /// Day of the month (1 to 28) of a monthly snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub day: Option<u8>,
    /// Also snapshot a database when it changes.
    #[serde(default)]
    pub on_change: bool,
    /// Least time between two snapshots taken on change (`"5s"`; default 60s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_gap: Option<Interval>,
    /// What to keep after each snapshot: a count (`BackupConfig.retention`) or
    /// rules (`{ "keep_daily": 7, ... }`); absent: the repository's stored
    /// policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    /// Remote locations the repository is copied to after each snapshot
    /// (`copy-done` and `failure` events; a remote that is down never holds up
    /// a snapshot).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remotes: Vec<String>,
    /// Restore and check each database's newest snapshot this often (`"7d"`;
    /// `drill-passed` and `failure` events); absent: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_drill: Option<Interval>,
    /// `BackupConfig.cloudProvider`: one more remote, with `cloudPath`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_provider: Option<CloudProvider>,
    /// `BackupConfig.cloudPath`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_path: Option<String>,
    /// How often the databases are looked at (`"1s"`, the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_every: Option<Interval>,
}

/// One watched database, with its own settings where they differ.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WatchDatabase {
    /// The database file (relative: under the app's data folder).
    pub path: String,
    /// Its schedule instead of the configuration's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
    /// Its on-change setting instead of the configuration's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_change: Option<bool>,
    /// Its least gap instead of the configuration's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_gap: Option<Interval>,
    /// Tags of its snapshots.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

/// What `config_check` found in a valid configuration file.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigCheck {
    /// The file checked (or the name given with the text).
    pub path: String,
    /// Whether scheduled backups are on (`enabled`); `watch_start` from this
    /// file refuses to start when off.
    pub enabled: bool,
    /// The watcher's configuration the file gives.
    pub config: WatchConfig,
    /// The app's `BackupConfig` the file gives (its settings screen).
    pub backup_config: AppBackupConfig,
    /// Keys the file sets that the plugin does not act on (`hooks`,
    /// `webhook`: those are run by `lumina-backup watch`).
    pub ignored: Vec<String>,
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Error::Config(ConfigProblem {
            path: Some(e.path.to_string_lossy().into_owned()),
            line: e.line,
            key: e.key,
            message: e.message,
        })
    }
}

/// The configuration from the frontend's JSON, each value checked: a bad one
/// is an [`Error::Config`] naming its key (`databases[0].minGap`).
pub fn from_json(value: serde_json::Value) -> Result<WatchSource> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner().to_string();
        Error::Config(ConfigProblem {
            path: None,
            line: None,
            key: (key != ".").then_some(key),
            message: inner,
        })
    })
}

impl WatchConfig {
    /// The library's configuration file with these settings, checked between
    /// keys as a file is (a weekday without a weekly schedule...).
    pub fn to_file(&self) -> Result<ConfigFile> {
        let mut f = ConfigFile::from_app(&AppBackupConfig::default(), None, Vec::new())
            .map_err(Error::InvalidInput)?;
        f.repository = self.repository.clone();
        f.databases = self
            .databases
            .iter()
            .map(|d| {
                let mut c = DatabaseConfig::new(d.path.clone());
                c.schedule = d.schedule;
                c.on_change = d.on_change;
                c.min_gap = d.min_gap;
                c.tags = d.tags.clone();
                c
            })
            .collect();
        f.schedule = self.schedule;
        f.time = self.time;
        f.weekday = self.weekday;
        f.day = self.day;
        f.on_change = self.on_change;
        f.min_gap = self.min_gap;
        f.retention = self.retention.clone();
        f.remotes = self.remotes.clone();
        f.restore_drill = self.restore_drill;
        f.cloud_provider = self.cloud_provider;
        f.cloud_path = self.cloud_path.clone();
        // The file's checks between keys: the key is exact, the line is one
        // of this text (not the app's), so it is left out.
        ConfigFile::parse(&f.to_toml(), Path::new("watcher configuration")).map_err(|e| {
            Error::Config(ConfigProblem {
                path: None,
                line: None,
                key: e.key.map(|k| camel(&k)),
                message: e.message,
            })
        })
    }

    /// The watcher's configuration a configuration file gives.
    pub fn from_file(f: &ConfigFile) -> WatchConfig {
        WatchConfig {
            repository: f.repository.clone(),
            databases: f
                .databases
                .iter()
                .map(|d| WatchDatabase {
                    path: d.path.clone(),
                    schedule: d.schedule,
                    on_change: d.on_change,
                    min_gap: d.min_gap,
                    tags: d.tags.clone(),
                })
                .collect(),
            schedule: f.schedule,
            time: f.time,
            weekday: f.weekday,
            day: f.day,
            on_change: f.on_change,
            min_gap: f.min_gap,
            retention: f.retention.clone(),
            remotes: f.remotes.clone(),
            restore_drill: f.restore_drill,
            cloud_provider: f.cloud_provider,
            cloud_path: f.cloud_path.clone(),
            check_every: None,
        }
    }
}

/// The keys of a file that the plugin does not act on.
pub fn ignored_keys(f: &ConfigFile) -> Vec<String> {
    let mut keys = Vec::new();
    if f.hooks.on_success.is_some() {
        keys.push("hooks.on_success".to_string());
    }
    if f.hooks.on_failure.is_some() {
        keys.push("hooks.on_failure".to_string());
    }
    if f.webhook.is_some() {
        keys.push("webhook".to_string());
    }
    keys
}

/// A file's snake_case key as the frontend's camelCase one (`min_gap` →
/// `minGap`).
fn camel(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_bad_value_names_its_key() {
        let e = from_json(json!({ "config": {
            "databases": [{ "path": "a.db", "minGap": "soon" }],
        }}))
        .unwrap_err();
        let Error::Config(p) = &e else {
            panic!("{e:?}")
        };
        assert_eq!(p.key.as_deref(), Some("config.databases[0].minGap"));
        assert!(p.message.contains("soon"), "{}", p.message);
    }

    #[test]
    fn checks_between_keys_name_the_camel_case_key() {
        let WatchSource::Config(c) = from_json(json!({ "config": {
            "databases": [{ "path": "a.db" }],
            "schedule": "daily",
            "cloudPath": "backups",
        }}))
        .unwrap() else {
            panic!()
        };
        let Error::Config(p) = c.to_file().unwrap_err() else {
            panic!()
        };
        assert_eq!(p.key.as_deref(), Some("cloudPath"));
    }

    #[test]
    fn a_configuration_goes_to_a_file_and_back() {
        let WatchSource::Config(c) = from_json(json!({ "config": {
            "repository": "/r",
            "databases": [{ "path": "a.db", "onChange": true, "minGap": "5s", "tags": ["x"] }],
            "schedule": "weekly", "time": "03:30", "weekday": "sunday",
            "retention": 4, "cloudProvider": "dropbox", "cloudPath": "b",
        }}))
        .unwrap() else {
            panic!()
        };
        let f = c.to_file().unwrap();
        assert_eq!(f.to_app().schedule, "weekly");
        assert_eq!(f.to_app().retention, 4);
        assert_eq!(WatchConfig::from_file(&f), *c);
        let back = serde_json::to_value(&c).unwrap();
        assert_eq!(back["databases"][0]["minGap"], "5s");
        assert_eq!(back["time"], "03:30");
    }
}
