//! The app's `BackupConfig` (TypeScript, `src/services/storage/backup_manager.ts`
//! in the design), field for field, and its one-to-one mapping to the
//! configuration file (README "Configuration file" has the table).

use serde::{Deserialize, Serialize};

use super::values::Compression;
use super::{ConfigFile, DatabaseConfig, Hooks, PassphraseSource, Retention, Schedule};

/// The app's `BackupConfig`, as its JSON (camelCase) has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct AppBackupConfig {
    /// `enabled`.
    pub enabled: bool,
    /// `autoBackup`: a snapshot before risky operations.
    pub auto_backup: bool,
    /// `schedule`: `daily`, `weekly`, `monthly` or `manual`.
    pub schedule: String,
    /// `retention`: how many backups to keep.
    pub retention: u32,
    /// `compression`.
    pub compression: bool,
    /// `encryption`.
    pub encryption: bool,
    /// `cloudProvider`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_provider: Option<CloudProvider>,
    /// `cloudPath`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_path: Option<String>,
}

impl Default for AppBackupConfig {
    /// The app's `DEFAULT_BACKUP_CONFIG`.
    fn default() -> Self {
        AppBackupConfig {
            enabled: true,
            auto_backup: true,
            schedule: "weekly".into(),
            retention: 4,
            compression: true,
            encryption: false,
            cloud_provider: None,
            cloud_path: None,
        }
    }
}

/// `BackupConfig.cloudProvider`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CloudProvider {
    /// `google-drive` (location `gdrive:PATH`).
    GoogleDrive,
    /// `dropbox` (location `dropbox:PATH`).
    Dropbox,
    /// `onedrive` (location `onedrive:PATH`).
    Onedrive,
}

impl CloudProvider {
    /// The location scheme of this provider.
    pub fn scheme(self) -> &'static str {
        match self {
            CloudProvider::GoogleDrive => "gdrive",
            CloudProvider::Dropbox => "dropbox",
            CloudProvider::Onedrive => "onedrive",
        }
    }
}

/// The environment variable the passphrase is read from when the app's
/// `encryption` is on and the file does not say otherwise.
pub const DEFAULT_PASSPHRASE_ENV: &str = "LUMINA_BACKUP_PASSWORD";

impl ConfigFile {
    /// The configuration file for the app's settings, its repository and
    /// databases.
    pub fn from_app(
        app: &AppBackupConfig,
        repository: Option<String>,
        databases: Vec<String>,
    ) -> Result<ConfigFile, String> {
        let schedule = match app.schedule.as_str() {
            s @ ("daily" | "weekly" | "monthly" | "manual") => Schedule::parse(s)?,
            other => {
                return Err(format!(
                "BackupConfig.schedule `{other}`: the app knows daily, weekly, monthly and manual"
            ))
            }
        };
        Ok(ConfigFile {
            enabled: app.enabled,
            auto_backup: app.auto_backup,
            repository,
            databases: databases.into_iter().map(DatabaseConfig::new).collect(),
            schedule,
            time: None,
            weekday: None,
            day: None,
            on_change: false,
            min_gap: None,
            retention: (app.retention > 0).then_some(Retention::Last(app.retention)),
            compression: Some(Compression::Enabled(app.compression)),
            encryption: Some(if app.encryption {
                PassphraseSource::Env(DEFAULT_PASSPHRASE_ENV.into())
            } else {
                PassphraseSource::None
            }),
            remotes: Vec::new(),
            restore_drill: None,
            cloud_provider: app.cloud_provider,
            cloud_path: app.cloud_path.clone(),
            hooks: Hooks::default(),
            webhook: None,
        })
    }

    /// The app's settings this file gives (what the app's settings screen
    /// shows). A schedule given as a duration shows as `manual`, retention
    /// rules other than a count as 0 (the app has no words for them).
    pub fn to_app(&self) -> AppBackupConfig {
        let schedule = match self.schedule {
            Schedule::Daily => "daily",
            Schedule::Weekly => "weekly",
            Schedule::Monthly => "monthly",
            _ => "manual",
        };
        AppBackupConfig {
            enabled: self.enabled,
            auto_backup: self.auto_backup,
            schedule: schedule.into(),
            retention: match &self.retention {
                Some(Retention::Last(n)) => *n,
                Some(Retention::Rules(r)) => r.keep_last.unwrap_or(0),
                None => 0,
            },
            compression: !matches!(self.compression, Some(Compression::Enabled(false))),
            encryption: !matches!(self.encryption, None | Some(PassphraseSource::None)),
            cloud_provider: self.cloud_provider,
            cloud_path: self.cloud_path.clone(),
        }
    }
}
