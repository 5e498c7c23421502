//! The watcher commands: one library [`Watcher`] per app, started with the
//! app's configuration or the configuration file, its [`WatchEvent`]s
//! forwarded in order as [`WATCH_EVENT`] Tauri events by a thread that ends
//! when the watcher stops (after the last event, `stopped`).
//!
//! The watcher shares the repository the plugin holds open (`open`) when it
//! watches the same location, so the repository lock the plugin holds does
//! not refuse it; snapshots and plugin commands then wait for each other.
//! Otherwise it opens the repository itself for each snapshot.
//!
//! Progress of the watcher's own snapshots is not forwarded (only their
//! outcome, as `snapshot-taken` or `failure` events).

use std::collections::BTreeMap;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use lumina_backup::{
    ConfigFile, Location, OpenOptions, PassphraseSource, Repository, Slot, WatchEvent,
    WatchOptions, WatchedDatabase, Watcher,
};
use serde::Serialize;
use serde_json::Value;
use tauri::{command, AppHandle, Emitter, Runtime, State};

use crate::commands::{blocking, resolve_location, resolve_path};
use crate::error::{Error, Result};
use crate::watch_config::{self, ConfigCheck, WatchConfig, WatchSource};
use crate::LuminaBackup;

/// The event name the watcher's events are emitted under; the payload is the
/// library's [`WatchEvent`] JSON, tagged by `event` (`started`,
/// `snapshot-taken`, `skipped-unchanged`, `copy-done`, `failure`, `notice`,
/// `stopped`). They are emitted from the forwarding thread: a Rust listener
/// must not stop the watcher itself (`watch_stop` joins that thread).
pub const WATCH_EVENT: &str = "lumina-backup://watch";

/// The watcher of the app, if one was started.
#[derive(Default)]
pub(crate) struct WatchSlot {
    running: Option<Running>,
    /// The configuration it runs (or last ran) with, and where it came from.
    config: Option<WatchConfig>,
    source: Option<String>,
    /// Its last events: per database, and the last of all.
    last: Arc<Mutex<LastEvents>>,
}

struct Running {
    watcher: Watcher,
    forwarder: JoinHandle<()>,
}

#[derive(Default, Clone)]
struct LastEvents {
    per_db: BTreeMap<String, Value>,
    last: Option<Value>,
}

/// What `watch_status` returns.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WatchStatus {
    /// Whether a watcher runs.
    pub running: bool,
    /// `config` (the app's) or the configuration file's path; `None` before
    /// the first `watch_start`.
    pub source: Option<String>,
    /// The configuration it runs (or last ran) with.
    pub config: Option<WatchConfig>,
    /// The last event concerning each database (by its path as watched).
    pub last_events: BTreeMap<String, Value>,
    /// The last event of all.
    pub last_event: Option<Value>,
}

/// Starts the watcher (module docs). A second start while one runs fails
/// with kind `WatchRunning`: stop it first to change its configuration.
/// Returns the configuration it runs with (the repository and intervals
/// filled in).
#[command]
pub(crate) async fn watch_start<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, LuminaBackup>,
    source: Value,
    passphrase: Option<String>,
) -> Result<WatchConfig> {
    let source = watch_config::from_json(source)?;
    let slot = Arc::clone(&state.slot);
    let watch = Arc::clone(&state.watch);
    let lock_wait = state.lock_wait;
    blocking(move || {
        let running = |w: &WatchSlot| w.running.as_ref().is_some_and(|r| r.watcher.is_running());
        if running(&watch.lock().unwrap_or_else(PoisonError::into_inner)) {
            return Err(Error::WatchRunning);
        }
        // The options are made without holding the watcher's state, which
        // `watch_status` reads on the main thread: finding the open
        // repository may wait for a long command.
        let (file, source_name, check_every) = match source {
            WatchSource::Config(c) => (c.to_file()?, "config".to_string(), c.check_every),
            WatchSource::File(path) => {
                let path = match path {
                    Some(p) => resolve_path(&app, &p)?,
                    None => ConfigFile::default_path(),
                };
                let f = ConfigFile::load(&path)?;
                if !f.enabled {
                    return Err(Error::InvalidInput(format!(
                        "scheduled backups are off in {} (enabled = false): turn them on to watch",
                        path.display()
                    )));
                }
                (f, path.to_string_lossy().into_owned(), None)
            }
        };
        let (opts, config) = options(&app, &slot, &file, check_every, lock_wait, passphrase)?;
        let mut w = watch.lock().unwrap_or_else(PoisonError::into_inner);
        // Another start won meanwhile.
        if running(&w) {
            return Err(Error::WatchRunning);
        }
        // A watcher that ended by itself: its thread and forwarder are done.
        if let Some(old) = w.running.take() {
            let _ = old.watcher.stop();
            let _ = old.forwarder.join();
        }
        let (watcher, events) = Watcher::start(opts)?;
        w.last = Arc::new(Mutex::new(LastEvents::default()));
        let forwarder = forward(app.clone(), events, Arc::clone(&w.last))?;
        w.running = Some(Running { watcher, forwarder });
        w.config = Some(config.clone());
        w.source = Some(source_name);
        Ok(config)
    })
    .await
}

/// Stops the watcher: a snapshot under way is abandoned (it records
/// nothing), the watcher's thread and the forwarding thread are joined (off
/// the main thread), so the `stopped` event was emitted when this returns.
/// False if no watcher ran.
#[command]
pub(crate) async fn watch_stop(state: State<'_, LuminaBackup>) -> Result<bool> {
    let watch = Arc::clone(&state.watch);
    blocking(move || {
        let running = watch
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .running
            .take();
        let Some(r) = running else { return Ok(false) };
        let stopped = r.watcher.stop();
        r.forwarder
            .join()
            .map_err(|_| Error::Task("the watch event forwarder panicked".into()))?;
        stopped?;
        Ok(true)
    })
    .await
}

/// Whether a watcher runs, its configuration and its last events.
#[command]
pub(crate) fn watch_status(state: State<'_, LuminaBackup>) -> WatchStatus {
    let w = state.watch.lock().unwrap_or_else(PoisonError::into_inner);
    let last = w
        .last
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    WatchStatus {
        running: w.running.as_ref().is_some_and(|r| r.watcher.is_running()),
        source: w.source.clone(),
        config: w.config.clone(),
        last_events: last.per_db,
        last_event: last.last,
    }
}

/// The configuration the watcher runs (or last ran) with; `null` before
/// the first `watch_start`.
#[command]
pub(crate) fn watch_config(state: State<'_, LuminaBackup>) -> Option<WatchConfig> {
    let w = state.watch.lock().unwrap_or_else(PoisonError::into_inner);
    w.config.clone()
}

/// Checks a configuration file: `text` (named `path`, or `backup.toml`, in
/// errors), else the file at `path`, else `~/.lumina/backup.toml`. A problem
/// is an error of kind `Config` with its `path`, `line` and `key`.
#[command]
pub(crate) async fn config_check<R: Runtime>(
    app: AppHandle<R>,
    text: Option<String>,
    path: Option<String>,
) -> Result<ConfigCheck> {
    blocking(move || {
        let (f, path) = match (text, path) {
            (Some(text), path) => {
                let name = path.unwrap_or_else(|| "backup.toml".into());
                (ConfigFile::parse(&text, name.as_ref())?, name)
            }
            (None, Some(p)) => {
                let p = resolve_path(&app, &p)?;
                (ConfigFile::load(&p)?, p.to_string_lossy().into_owned())
            }
            (None, None) => {
                let p = ConfigFile::default_path();
                (ConfigFile::load(&p)?, p.to_string_lossy().into_owned())
            }
        };
        Ok(ConfigCheck {
            path,
            enabled: f.enabled,
            config: WatchConfig::from_file(&f),
            backup_config: f.to_app(),
            ignored: watch_config::ignored_keys(&f),
        })
    })
    .await
}

/// Sends the watcher's events to the frontend, in order, and keeps the last
/// ones; ends when the watcher's channel closes (after `stopped`).
fn forward<R: Runtime>(
    app: AppHandle<R>,
    events: Receiver<WatchEvent>,
    last: Arc<Mutex<LastEvents>>,
) -> Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("lumina-backup-watch-events".into())
        .spawn(move || {
            for event in events {
                let value = serde_json::to_value(&event).unwrap_or(Value::Null);
                {
                    let mut l = last.lock().unwrap_or_else(PoisonError::into_inner);
                    if let Some(db) = value.get("db").and_then(Value::as_str) {
                        l.per_db.insert(db.to_string(), value.clone());
                    }
                    l.last = Some(value.clone());
                }
                let _ = app.emit(WATCH_EVENT, value);
            }
        })
        .map_err(|e| Error::Task(format!("cannot start the watch event forwarder: {e}")))
}

/// The library's watcher options from a checked configuration, and the
/// configuration as it runs (repository and check interval filled in).
fn options<R: Runtime>(
    app: &AppHandle<R>,
    slot: &lumina_backup::SharedRepository,
    f: &ConfigFile,
    check_every: Option<lumina_backup::Interval>,
    lock_wait: Duration,
    passphrase: Option<String>,
) -> Result<(WatchOptions, WatchConfig)> {
    let mut config = WatchConfig::from_file(f);
    let location =
        match &f.repository {
            Some(r) => resolve_location(app, &lumina_backup::expand_home(r).to_string_lossy())?,
            None => {
                let open = slot.lock().unwrap_or_else(PoisonError::into_inner);
                match open.as_ref() {
                    Some(repo) => repo.location().clone(),
                    None => return Err(Error::InvalidInput(
                        "the watcher has no repository: name one (repository) or open one first"
                            .into(),
                    )),
                }
            }
        };
    config.repository = Some(location.to_string());
    let mut open = OpenOptions {
        lock_wait,
        purpose: "watch".into(),
        passphrase: None,
    };
    if let Some(pw) = passphrase {
        open = open.with_passphrase(pw);
    } else if shared_location(slot) != Some(location.clone())
        && Repository::is_encrypted_at(&location)?
    {
        if let Some(pw) = from_source(f.encryption.as_ref())? {
            open = open.with_passphrase(pw);
        }
    }
    let slot_of = Slot {
        time: f.time.unwrap_or_default(),
        weekday: f.weekday.map_or(0, |w| w.from_monday()),
        day: f.day.unwrap_or(1),
    };
    let gap = |g: Option<lumina_backup::Interval>| g.map_or(Duration::from_secs(60), |i| i.0);
    let databases = f
        .databases
        .iter()
        .map(|d| {
            let path = resolve_path(app, &lumina_backup::expand_home(&d.path).to_string_lossy())?;
            let mut w = WatchedDatabase::new(path, d.schedule.unwrap_or(f.schedule));
            w.slot = slot_of;
            w.on_change = d.on_change.unwrap_or(f.on_change);
            w.min_gap = gap(d.min_gap.or(f.min_gap));
            w.tags = d.tags.clone();
            Ok(w)
        })
        .collect::<Result<Vec<_>>>()?;
    let mut opts = WatchOptions::new(location, open, databases);
    if let Some(every) = check_every {
        opts.check_every = every.0;
    }
    config.check_every = Some(lumina_backup::Interval(opts.check_every));
    opts.remotes = f.remotes();
    opts.restore_drill = f.restore_drill.map(|i| i.0);
    if let Some(r) = &f.retention {
        opts.retention = Some(r.policy().map_err(|e| {
            Error::InvalidInput(format!("watcher configuration, key `retention`: {e}"))
        })?);
    }
    opts.shared = Some(Arc::clone(slot));
    Ok((opts, config))
}

/// The location of the repository open in the plugin, if one is.
fn shared_location(slot: &lumina_backup::SharedRepository) -> Option<Location> {
    let open = slot.lock().unwrap_or_else(PoisonError::into_inner);
    open.as_ref().map(|r| r.location().clone())
}

/// The passphrase from a configuration file's `encryption` source (an
/// environment variable or a file; a command is left to the app, which
/// passes `passphrase`).
fn from_source(source: Option<&PassphraseSource>) -> Result<Option<String>> {
    let first_line = |text: &str, what: &str| -> Result<Option<String>> {
        match text.lines().next().filter(|l| !l.is_empty()) {
            Some(l) => Ok(Some(l.to_string())),
            None => Err(Error::InvalidInput(format!(
                "the passphrase from {what} is empty (configuration key `encryption`)"
            ))),
        }
    };
    match source {
        Some(PassphraseSource::Env(name)) => match std::env::var(name) {
            Ok(v) => first_line(&v, &format!("environment variable {name}")),
            Err(_) => Err(Error::InvalidInput(format!(
                "the repository is encrypted and environment variable {name} (configuration key `encryption`) is not set: set it or pass the passphrase"
            ))),
        },
        Some(PassphraseSource::File(file)) => {
            let path = lumina_backup::expand_home(file);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                Error::InvalidInput(format!(
                    "cannot read the passphrase file {} (configuration key `encryption`): {e}",
                    path.display()
                ))
            })?;
            first_line(&text, &path.display().to_string())
        }
        _ => Err(Error::InvalidInput(
            "the repository is encrypted: pass the passphrase to watch_start (or open the repository first)"
                .into(),
        )),
    }
}
