//! A Tauri v2 plugin for the lumina-backup library:
//! deduplicated, verified snapshots of the app's SQLite database, driven from
//! the frontend.
//!
//! ```rust,ignore
//! // src-tauri/src/lib.rs of the app
//! fn main() {
//!     tauri::Builder::default()
//!         .plugin(tauri_plugin_lumina_backup::init())
//!         .run(tauri::generate_context!())
//!         .expect("error while running tauri application");
//! }
//! ```
//!
//! The frontend (`tauri-plugin-lumina-backup-api`, `guest-js/`) calls
//! `open`, `snapshot`, `snapshot_before`, `list`, `diff`, `restore`,
//! `verify`, `status` and `cancel`; long commands send [`ProgressEvent`]s
//! under [`PROGRESS_EVENT`]. It runs the library's watcher with
//! `watch_start`, `watch_stop`, `watch_status`, `watch_config` (and checks a
//! configuration file with `config_check`); the watcher's events arrive under
//! [`WATCH_EVENT`]. The capability grants `lumina-backup:default`
//! (everything but `restore`) and, where the app offers restoring,
//! `lumina-backup:allow-restore`.
//!
//! The app's Rust side reaches the same repository through
//! [`LuminaBackupExt::lumina_backup`] and [`LuminaBackup::with_repository`]
//! (for example a snapshot before a migration).
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod commands;
mod error;
mod models;
mod progress;
mod watch;
mod watch_config;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use lumina_backup::Repository;
use tauri::plugin::{Builder as PluginBuilder, TauriPlugin};
use tauri::{Manager, Runtime};

pub use error::ConfigProblem;
pub use error::{Error, Result};
pub use models::{
    DatabaseStatus, DiffAgainst, DiffResult, FailureInfo, RepositoryInfo, RestoreCheck,
    RestoreResult, SnapshotInfo, SnapshotResult, StatusResult, TableDiff, VerifyResult,
};
pub use progress::{OperationGuard, Operations, ProgressEvent, ADVANCE_EVERY, PROGRESS_EVENT};
pub use watch::{WatchStatus, WATCH_EVENT};
pub use watch_config::{ConfigCheck, WatchConfig, WatchDatabase, WatchSource};

/// The plugin's name: commands are `plugin:lumina-backup|<command>`,
/// permissions `lumina-backup:<permission>`.
pub const PLUGIN_NAME: &str = "lumina-backup";

/// The plugin's state: the open repository (one per app) and the running
/// operations. Commands wait for each other on the repository: a `list`
/// sent during a long snapshot answers when the snapshot ends.
pub struct LuminaBackup {
    slot: Arc<Mutex<Option<Repository>>>,
    ops: Arc<Operations>,
    lock_wait: Duration,
    watch: Arc<Mutex<watch::WatchSlot>>,
}

impl LuminaBackup {
    /// Runs `f` with the open repository, on the calling thread (blocking: call
    /// it from a background thread or `spawn_blocking`, not the main thread).
    /// Fails with [`Error::NotOpen`] before the frontend (or the app) opened one.
    /// It waits while a command uses the repository; so never call it from a
    /// Rust listener of [`PROGRESS_EVENT`], which runs inside that command.
    pub fn with_repository<T>(
        &self,
        f: impl FnOnce(&mut Repository) -> lumina_backup::Result<T>,
    ) -> Result<T> {
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        let repo = slot.as_mut().ok_or(Error::NotOpen)?;
        Ok(f(repo)?)
    }

    /// Makes `repo` the open repository (replacing and closing the one open
    /// before), for an app that opens it from Rust (with a passphrase from
    /// its keychain, say).
    pub fn set_repository(&self, repo: Repository) {
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        *slot = None;
        *slot = Some(repo);
    }

    /// Asks the running operation `id` to stop; false if none runs.
    pub fn cancel(&self, id: &str) -> bool {
        self.ops.cancel(id)
    }
}

/// Access to the plugin's state from the app's Rust side
/// (`app.lumina_backup()`).
pub trait LuminaBackupExt<R: Runtime> {
    /// The plugin's state.
    fn lumina_backup(&self) -> &LuminaBackup;
}

impl<R: Runtime, T: Manager<R>> LuminaBackupExt<R> for T {
    fn lumina_backup(&self) -> &LuminaBackup {
        self.state::<LuminaBackup>().inner()
    }
}

/// Builds the plugin with non-default settings.
#[derive(Debug, Clone)]
pub struct Builder {
    lock_wait: Duration,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            lock_wait: Duration::from_secs(10),
        }
    }
}

impl Builder {
    /// The default settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long `open` waits for another process (the CLI, a watcher) holding
    /// the repository's lock; 10 seconds by default.
    pub fn lock_wait(mut self, wait: Duration) -> Self {
        self.lock_wait = wait;
        self
    }

    /// The plugin, for `tauri::Builder::plugin`.
    pub fn build<R: Runtime>(self) -> TauriPlugin<R> {
        let lock_wait = self.lock_wait;
        PluginBuilder::new(PLUGIN_NAME)
            .invoke_handler(tauri::generate_handler![
                commands::open,
                commands::close,
                commands::snapshot,
                commands::list,
                commands::diff,
                commands::restore,
                commands::verify,
                commands::status,
                commands::cancel,
                commands::snapshot_before,
                watch::watch_start,
                watch::watch_stop,
                watch::watch_status,
                watch::watch_config,
                watch::config_check,
            ])
            .setup(move |app, _api| {
                app.manage(LuminaBackup {
                    slot: Arc::new(Mutex::new(None)),
                    ops: Arc::new(Operations::default()),
                    lock_wait,
                    watch: Arc::default(),
                });
                Ok(())
            })
            .build()
    }
}

/// The plugin with default settings.
pub fn init<R: Runtime>() -> TauriPlugin<R> {
    Builder::new().build()
}
