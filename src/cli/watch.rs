//! `watch`: the library's [`Watcher`] with settings from the configuration
//! file and the command line (flags win), one line per event, hooks and the
//! webhook, and SIGTERM/SIGINT stopping it within seconds.

use std::path::PathBuf;
use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

use clap::Args;

use lumina_backup::{
    ConfigFile, Error, Interval, Location, OpenOptions, PassphraseSource, Repository, Schedule,
    Slot, Trigger, WatchEvent, WatchOptions, WatchedDatabase, Watcher,
};

use super::common::{default_db, Ctx};
use super::notify::Notifier;
use super::output::{bytes, clean, count};
use super::signals;

/// `watch` arguments.
#[derive(Args, Debug)]
pub(super) struct WatchArgs {
    /// The databases (default: the configuration file's, else ~/.lumina/lumina.db).
    dbs: Vec<PathBuf>,
    /// Snapshot every DURATION (15m, 1h, 1d ...), instead of the file's schedule.
    #[arg(long, value_name = "DURATION")]
    every: Option<Interval>,
    /// Also snapshot when a database changes.
    #[arg(long)]
    on_change: bool,
    /// Least time between two snapshots taken on change (default 60s).
    #[arg(long, value_name = "DURATION")]
    min_gap: Option<Interval>,
    /// The configuration file (default ~/.lumina/backup.toml, if it exists).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Command run after each snapshot (`sh -c`; details in LUMINA_BACKUP_* variables).
    #[arg(long, value_name = "CMD")]
    on_success: Option<String>,
    /// Command run after each failure (`sh -c`; details in LUMINA_BACKUP_* variables).
    #[arg(long, value_name = "CMD")]
    on_failure: Option<String>,
    /// URL receiving each snapshot and failure as a JSON POST.
    #[arg(long, value_name = "URL")]
    webhook: Option<String>,
    /// Restore and check each database's newest snapshot this often (7d, 1d ...).
    #[arg(long, value_name = "DURATION")]
    restore_drill: Option<Interval>,
    /// How often the databases are looked at (default 1s).
    #[arg(long, value_name = "DURATION", default_value = "1s")]
    check_every: Interval,
}

/// The configuration file `watch` and `config check` read: `--config FILE`
/// (which must exist), else `~/.lumina/backup.toml` if it exists.
pub(super) fn load_config(path: Option<&PathBuf>) -> Result<Option<ConfigFile>, Error> {
    match path {
        Some(p) => Ok(Some(ConfigFile::load(p)?)),
        None => {
            let p = ConfigFile::default_path();
            if p.exists() {
                Ok(Some(ConfigFile::load(&p)?))
            } else {
                Ok(None)
            }
        }
    }
}

/// The passphrase from the configuration file's source.
fn passphrase(source: &PassphraseSource) -> Result<Option<zeroize::Zeroizing<String>>, Error> {
    let first_line = |text: &str, what: &str| {
        let line = text.lines().next().unwrap_or("").to_string();
        if line.is_empty() {
            Err(Error::invalid_input(format!(
                "the passphrase from {what} is empty (configuration key `encryption`)"
            )))
        } else {
            Ok(Some(zeroize::Zeroizing::new(line)))
        }
    };
    match source {
        PassphraseSource::Env(name) => match std::env::var(name) {
            Ok(v) => first_line(&v, &format!("environment variable {name}")),
            Err(_) => Err(Error::invalid_input(format!(
                "the configuration file takes the passphrase from environment variable {name}, which is not set"
            ))),
        },
        PassphraseSource::File(f) => {
            let path = lumina_backup::expand_home(f);
            let text = zeroize::Zeroizing::new(std::fs::read_to_string(&path).map_err(|e| {
                Error::invalid_input(format!(
                    "cannot read the passphrase file {} (configuration key `encryption`): {e}",
                    path.display()
                ))
            })?);
            first_line(&text, &path.display().to_string())
        }
        PassphraseSource::Command(cmd) => {
            let out = super::notify::shell(cmd)
                .stderr(std::process::Stdio::inherit())
                .output()
                .map_err(|e| Error::invalid_input(format!("cannot run the passphrase command: {e}")))?;
            if !out.status.success() {
                return Err(Error::invalid_input(format!(
                    "the passphrase command failed ({}): fix it (configuration key `encryption`)",
                    out.status
                )));
            }
            let text = zeroize::Zeroizing::new(String::from_utf8_lossy(&out.stdout).into_owned());
            first_line(&text, "the passphrase command")
        }
        _ => Ok(None),
    }
}

/// The watcher's options from the file and the flags.
fn options(ctx: &Ctx, args: &WatchArgs, file: Option<&ConfigFile>) -> Result<WatchOptions, Error> {
    let location = match (&ctx.global.repo, file.and_then(|f| f.repository_location())) {
        (Some(text), _) => Location::parse(text)?,
        (None, Some(loc)) => loc?,
        (None, None) => ctx.location()?,
    };
    if let (None, Some(f)) = (&ctx.global.repo, file.filter(|f| f.repository.is_some())) {
        create_if_missing(ctx, &location, f)?;
    }
    let mut open = OpenOptions {
        lock_wait: Duration::from_secs(ctx.global.lock_wait),
        purpose: "watch".into(),
        passphrase: None,
    };
    if Repository::is_encrypted_at(&location)? {
        open.passphrase = match (
            ctx.passphrase_given(),
            file.and_then(|f| f.encryption.as_ref()),
        ) {
            (false, Some(src)) => passphrase(src)?,
            _ => Some(ctx.passphrase(false)?),
        };
    }
    let (schedule, on_change, min_gap, slot) = match file {
        Some(f) => {
            let slot = Slot {
                time: f.time.unwrap_or_default(),
                weekday: f.weekday.map_or(0, |w| w.from_monday()),
                day: f.day.unwrap_or(1),
            };
            (f.schedule, f.on_change, f.min_gap, slot)
        }
        None => (Schedule::Manual, false, None, Slot::default()),
    };
    let schedule = args.every.map_or(schedule, Schedule::Every);
    let on_change = on_change || args.on_change;
    let min_gap = args
        .min_gap
        .or(min_gap)
        .map_or(Duration::from_secs(60), |i| i.0);
    let databases: Vec<WatchedDatabase> = if !args.dbs.is_empty() {
        args.dbs
            .iter()
            .map(|p| watched(p.clone(), schedule, slot, on_change, min_gap, &[]))
            .collect()
    } else if let Some(f) = file.filter(|f| !f.databases.is_empty()) {
        f.databases
            .iter()
            .map(|d| {
                watched(
                    lumina_backup::expand_home(&d.path),
                    args.every
                        .map(Schedule::Every)
                        .or(d.schedule)
                        .unwrap_or(schedule),
                    slot,
                    args.on_change || d.on_change.unwrap_or(on_change),
                    args.min_gap.or(d.min_gap).map_or(min_gap, |i| i.0),
                    &d.tags,
                )
            })
            .collect()
    } else {
        vec![watched(
            default_db(),
            schedule,
            slot,
            on_change,
            min_gap,
            &[],
        )]
    };
    let mut opts = WatchOptions::new(location, open, databases);
    opts.check_every = args.check_every.0;
    opts.tz = ctx.tz.clone();
    opts.restore_drill = args
        .restore_drill
        .or(file.and_then(|f| f.restore_drill))
        .map(|i| i.0);
    if let Some(f) = file {
        opts.remotes = f.remotes();
        if let Some(r) = &f.retention {
            opts.retention = Some(r.policy().map_err(|e| {
                Error::invalid_input(format!("configuration key `retention`: {e}"))
            })?);
        }
    }
    Ok(opts)
}

/// Creates the repository the configuration file names when nothing is
/// there yet (the app's first run), with the file's compression and
/// encryption.
fn create_if_missing(ctx: &Ctx, location: &Location, f: &ConfigFile) -> Result<(), Error> {
    match Repository::is_encrypted_at(location) {
        Err(e) if e.kind() == lumina_backup::ErrorKind::NoRepository => {}
        _ => return Ok(()),
    }
    let passphrase = match (ctx.passphrase_given(), f.encryption.as_ref()) {
        (_, None | Some(PassphraseSource::None)) => None,
        (false, Some(src)) => passphrase(src)?,
        (true, Some(_)) => Some(ctx.passphrase(true)?),
    };
    let encrypted = passphrase.is_some();
    let level = f.compression.map(|c| c.zstd_level());
    let init = lumina_backup::InitOptions {
        passphrase,
        zstd_level: level,
        ..Default::default()
    };
    Repository::init_at(location, &init)?;
    ctx.say(format!(
        "created the repository {} named by the configuration file ({}, zstd level {})",
        clean(&location.to_string()),
        if encrypted {
            "encrypted"
        } else {
            "not encrypted"
        },
        level.unwrap_or(3)
    ));
    Ok(())
}

fn watched(
    path: PathBuf,
    schedule: Schedule,
    slot: Slot,
    on_change: bool,
    min_gap: Duration,
    tags: &[String],
) -> WatchedDatabase {
    let mut d = WatchedDatabase::new(path, schedule);
    d.slot = slot;
    d.on_change = on_change;
    d.min_gap = min_gap;
    d.tags = tags.to_vec();
    d
}

pub(super) fn run(ctx: &Ctx, args: WatchArgs) -> Result<i32, Error> {
    let file = load_config(args.config.as_ref())?;
    if let Some(f) = file.as_ref().filter(|f| !f.enabled) {
        let _ = f;
        ctx.say("scheduled backups are disabled in the configuration file (enabled = false): nothing to do");
        return Ok(0);
    }
    let opts = options(ctx, &args, file.as_ref())?;
    let hooks = file.as_ref().map(|f| f.hooks.clone()).unwrap_or_default();
    let notifier = Notifier::start(
        args.on_success.clone().or(hooks.on_success),
        args.on_failure.clone().or(hooks.on_failure),
        args.webhook
            .clone()
            .or_else(|| file.as_ref().and_then(|f| f.webhook.clone())),
        opts.location.to_string(),
    );
    signals::install();
    let (watcher, events) = Watcher::start(opts)?;
    // The signal sets the watcher's flag at once, so a snapshot under way is
    // cancelled at its next check (the loop below also wakes the thread).
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(sig, watcher.stop_flag());
    }
    let mut asked = false;
    loop {
        if !asked && signals::received().is_some() {
            asked = true;
            watcher.request_stop();
        }
        // Once a second: this loop only turns a signal into `request_stop`
        // (which wakes the watcher's sleep); the flag registered above already
        // cancels a snapshot under way. Polling every 100 ms cost an idle
        // watcher most of its CPU time (benches/watch.rs, BENCHMARKS.md).
        match events.recv_timeout(Duration::from_secs(1)) {
            Ok(event) => {
                show(ctx, &event);
                notifier.send(&event);
                if matches!(event, WatchEvent::Stopped { .. }) {
                    break;
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    watcher.stop()?;
    notifier.finish(Duration::from_secs(5));
    Ok(0)
}

/// One line per event: JSON with `--json`, else text (failures on stderr).
fn show(ctx: &Ctx, e: &WatchEvent) {
    if ctx.global.json {
        // One line per event (JSON Lines).
        match serde_json::to_string(e) {
            Ok(line) => println!("{line}"),
            Err(err) => eprintln!("lumina-backup: cannot encode an event: {err}"),
        }
        return;
    }
    let line = match e {
        WatchEvent::Started { databases } => format!(
            "watching {}",
            databases
                .iter()
                .map(|d| clean(&d.display().to_string()))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        WatchEvent::SnapshotTaken {
            db,
            snapshot,
            trigger,
            new_bytes,
            forgotten,
        } => {
            let why = match trigger {
                Trigger::Schedule => "scheduled",
                Trigger::Change => "changed",
            };
            let mut l = format!(
                "snapshot {} of {} ({why}), {} new",
                snapshot.get(..12).unwrap_or(snapshot),
                clean(&db.display().to_string()),
                bytes(*new_bytes)
            );
            if *forgotten > 0 {
                l.push_str(&format!(
                    "; retention forgot {}",
                    count(*forgotten as u64, "snapshot")
                ));
            }
            l
        }
        WatchEvent::SkippedUnchanged { db, .. } => {
            format!(
                "{} unchanged: no snapshot",
                clean(&db.display().to_string())
            )
        }
        WatchEvent::CopyDone {
            remote,
            copied,
            removed,
            bytes_sent,
        } => {
            let mut l = format!("{} holds every snapshot", clean(remote));
            if *copied > 0 || *removed > 0 {
                l.push_str(&format!(
                    " (sent {}, {}",
                    count(*copied as u64, "snapshot"),
                    bytes(*bytes_sent)
                ));
                if *removed > 0 {
                    l.push_str(&format!(
                        "; removed {} forgotten here",
                        count(*removed, "snapshot")
                    ));
                }
                l.push(')');
            }
            l
        }
        WatchEvent::DrillPassed { db, snapshot, .. } => format!(
            "restore drill of {} passed (snapshot {snapshot} restored and checked)",
            clean(&db.display().to_string())
        ),
        WatchEvent::Failure {
            db,
            remote,
            operation,
            message,
            consecutive,
            retry_in,
            ..
        } => {
            let what = match (db, remote) {
                (Some(d), _) => format!(" of {}", clean(&d.display().to_string())),
                (None, Some(r)) => format!(" to {}", clean(r)),
                (None, None) => String::new(),
            };
            eprintln!(
                "lumina-backup: {operation}{what} failed ({consecutive} in a row): {message}; trying again in {}",
                Interval(Duration::from_secs(retry_in.as_secs().max(1)))
            );
            return;
        }
        WatchEvent::Notice { message } => {
            eprintln!("lumina-backup: {message}");
            return;
        }
        WatchEvent::Stopped { abandoned } => {
            if *abandoned {
                "stopped (the snapshot under way was abandoned; nothing of it was recorded)".into()
            } else {
                "stopped".into()
            }
        }
        _ => format!("{e:?}"),
    };
    ctx.say(line);
}
