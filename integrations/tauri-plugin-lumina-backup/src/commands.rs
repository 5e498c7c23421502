//! The commands the frontend invokes (`plugin:lumina-backup|<name>`). Each
//! runs the blocking library call on Tauri's blocking thread pool
//! (`spawn_blocking`), never on the main thread; the long ones report
//! progress as events and can be cancelled (`crate::progress`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use lumina_backup::{
    DiffTarget, InitOptions, Location, OpenOptions, Repository, RestoreOptions, SnapshotFilter,
    SnapshotOptions, VerifyOptions,
};
use tauri::{command, AppHandle, Manager, Runtime, State};

use crate::error::{Error, Result};
use crate::models::{
    DiffAgainst, DiffResult, RepositoryInfo, RestoreCheck, RestoreResult, SnapshotInfo,
    SnapshotResult, StatusResult, VerifyResult,
};
use crate::progress::{emit_to_app, EventProgress};
use crate::LuminaBackup;

/// Runs `f` on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tauri::async_runtime::spawn_blocking(f)
        .await
        .map_err(|e| Error::Task(e.to_string()))?
}

/// A path from the frontend: an absolute path as given, a relative one under
/// the app's data folder (`appDataDir()` in JavaScript).
pub(crate) fn resolve_path<R: Runtime>(app: &AppHandle<R>, path: &str) -> Result<PathBuf> {
    if path.is_empty() {
        return Err(Error::InvalidInput(
            "empty path; give an absolute path or one relative to the app's data folder".into(),
        ));
    }
    let p = Path::new(path);
    if p.is_absolute() {
        return Ok(p.to_path_buf());
    }
    let base = app.path().app_data_dir().map_err(|e| {
        Error::InvalidInput(format!(
            "path {path} is relative and the app's data folder is unknown ({e}); give an absolute path"
        ))
    })?;
    Ok(base.join(p))
}

/// A repository location from the frontend: a URL (`s3://`, `webdav://`...)
/// as given, a folder as [`resolve_path`] resolves it.
pub(crate) fn resolve_location<R: Runtime>(app: &AppHandle<R>, repo: &str) -> Result<Location> {
    match Location::parse(repo)? {
        Location::Local(p) => Ok(Location::Local(resolve_path(app, &p.to_string_lossy())?)),
        remote => Ok(remote),
    }
}

/// Opens the repository at `repo` (creating it first when `create` is set
/// and none is there), replacing the one open before. The passphrase comes
/// from the app (its keychain or a prompt), never from a file.
#[command]
pub(crate) async fn open<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, LuminaBackup>,
    repo: String,
    passphrase: Option<String>,
    create: Option<bool>,
) -> Result<RepositoryInfo> {
    let location = resolve_location(&app, &repo)?;
    let slot = state.slot.clone();
    let lock_wait = state.lock_wait;
    blocking(move || {
        let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
        // Release the previous repository's lock first (it may be this one).
        *slot = None;
        let mut opts = OpenOptions {
            lock_wait,
            ..OpenOptions::default()
        };
        if let Some(pw) = &passphrase {
            opts = opts.with_passphrase(pw.as_str());
        }
        let (repository, created) = match Repository::open_at(&location, &opts) {
            Ok(r) => (r, false),
            Err(e)
                if create.unwrap_or(false)
                    && e.kind() == lumina_backup::ErrorKind::NoRepository =>
            {
                let mut init = InitOptions::default();
                if let Some(pw) = &passphrase {
                    init = init.with_passphrase(pw.as_str());
                }
                Repository::init_at(&location, &init)?;
                (Repository::open_at(&location, &opts)?, true)
            }
            Err(e) => return Err(e.into()),
        };
        let info = RepositoryInfo {
            location: location.to_string(),
            encrypted: repository.encrypted(),
            created,
            format_version: repository.format_version(),
            notices: repository.notices().to_vec(),
        };
        *slot = Some(repository);
        Ok(info)
    })
    .await
}

/// Closes the open repository (releasing its lock); false if none was open.
#[command]
pub(crate) async fn close(state: State<'_, LuminaBackup>) -> Result<bool> {
    let slot = state.slot.clone();
    blocking(move || {
        let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
        Ok(slot.take().is_some())
    })
    .await
}

/// Snapshots the database `db` (live, open by the app in WAL mode or not).
#[command]
#[allow(clippy::too_many_arguments)]
pub(crate) async fn snapshot<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, LuminaBackup>,
    db: String,
    tags: Option<Vec<String>>,
    note: Option<String>,
    operation: Option<String>,
) -> Result<SnapshotResult> {
    let db = resolve_path(&app, &db)?;
    let guard = state.ops.start(operation)?;
    let progress = EventProgress::new(&guard, emit_to_app(app));
    let opts = SnapshotOptions {
        tags: tags.unwrap_or_default(),
        note: note.unwrap_or_default(),
        ..SnapshotOptions::default()
    };
    state
        .run(move |repo| {
            let _guard = guard;
            let summary = repo.snapshot(&db, &opts, &progress)?;
            Ok(SnapshotResult::from(&summary))
        })
        .await
}

/// Snapshots the database `db` before a risky operation: tagged
/// `before:<reason>` (`migration`, `update`, `bulk-import`, `cleanup`, or
/// another single word), kept by the repository's retention rule for such
/// snapshots. Returns what `snapshot` returns.
#[command]
pub(crate) async fn snapshot_before<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, LuminaBackup>,
    db: String,
    reason: String,
    operation: Option<String>,
) -> Result<SnapshotResult> {
    let db = resolve_path(&app, &db)?;
    let guard = state.ops.start(operation)?;
    let progress = EventProgress::new(&guard, emit_to_app(app));
    state
        .run(move |repo| {
            let _guard = guard;
            let summary = repo.snapshot_before_with(&db, &reason, &progress)?;
            Ok(SnapshotResult::from(&summary))
        })
        .await
}

/// The snapshots, oldest first; only those of `db` when given.
#[command]
pub(crate) async fn list<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, LuminaBackup>,
    db: Option<String>,
) -> Result<Vec<SnapshotInfo>> {
    let db = db.map(|d| resolve_path(&app, &d)).transpose()?;
    state
        .run(move |repo| {
            let list = match db {
                Some(db) => repo.list_filtered(&SnapshotFilter {
                    db: Some(lumina_backup::source_key(&db)),
                    ..SnapshotFilter::default()
                })?,
                None => repo.list()?,
            };
            Ok(list.iter().map(SnapshotInfo::from).collect())
        })
        .await
}

/// Row-level differences from `snapshot` to another snapshot or to the live
/// database. `db` says which database `latest` means when the repository
/// holds several.
#[command]
pub(crate) async fn diff<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, LuminaBackup>,
    snapshot: String,
    against: DiffAgainst,
    db: Option<String>,
    operation: Option<String>,
) -> Result<DiffResult> {
    let db = db.map(|d| resolve_path(&app, &d)).transpose()?;
    let against = match against {
        DiffAgainst::Live(p) => DiffAgainst::Live(resolve_path(&app, &p)?.to_string_lossy().into()),
        other => other,
    };
    let guard = state.ops.start(operation)?;
    let progress = EventProgress::new(&guard, emit_to_app(app));
    state
        .run(move |repo| {
            let _guard = guard;
            let old = repo.resolve_in(&snapshot, db.as_deref())?;
            let (report, to) = match &against {
                DiffAgainst::Snapshot(spec) => {
                    let new = repo.resolve_in(spec, db.as_deref())?;
                    let report = repo.diff(&old, DiffTarget::Snapshot(&new), &progress)?;
                    (report, new.id.to_hex())
                }
                DiffAgainst::Live(path) => {
                    let report = repo.diff(&old, DiffTarget::Live(Path::new(path)), &progress)?;
                    (report, format!("live:{path}"))
                }
            };
            Ok(DiffResult::new(old.id.to_hex(), to, report))
        })
        .await
}

/// Restores `snapshot` to `target`. An existing target is replaced only with
/// `force`, after the library saved it as a `pre-restore` snapshot. The app's
/// own connections to `target` must be closed first, or `live` set to copy
/// the image into the open database through SQLite.
#[command]
#[allow(clippy::too_many_arguments)]
pub(crate) async fn restore<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, LuminaBackup>,
    snapshot: String,
    target: String,
    db: Option<String>,
    force: Option<bool>,
    live: Option<bool>,
    check: Option<RestoreCheck>,
    operation: Option<String>,
) -> Result<RestoreResult> {
    let target = resolve_path(&app, &target)?;
    let db = db.map(|d| resolve_path(&app, &d)).transpose()?;
    let guard = state.ops.start(operation)?;
    let progress = EventProgress::new(&guard, emit_to_app(app));
    let opts = RestoreOptions {
        force: force.unwrap_or(false),
        live: live.unwrap_or(false),
        check: check.unwrap_or_default().into(),
        // The quick check is not repeated when the capture's passed on the
        // same bytes (the library's default).
        ..Default::default()
    };
    state
        .run(move |repo| {
            let _guard = guard;
            let snap = repo.resolve_in(&snapshot, db.as_deref())?;
            let report = repo.restore_snapshot(snap, &target, &opts, &progress)?;
            Ok(RestoreResult::from(&report))
        })
        .await
}

/// Checks the repository's structure and history chain; with `readData`
/// also re-reads and re-hashes every byte.
#[command]
pub(crate) async fn verify<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, LuminaBackup>,
    read_data: Option<bool>,
    operation: Option<String>,
) -> Result<VerifyResult> {
    let guard = state.ops.start(operation)?;
    let progress = EventProgress::new(&guard, emit_to_app(app));
    state
        .run(move |repo| {
            let _guard = guard;
            let opts = VerifyOptions::new(read_data.unwrap_or(false));
            let report = repo.verify_with(&opts, &progress)?;
            Ok(VerifyResult::from(&report))
        })
        .await
}

/// The repository's state in brief: per database its newest snapshot, the
/// last recorded failure, sizes.
#[command]
pub(crate) async fn status(state: State<'_, LuminaBackup>) -> Result<StatusResult> {
    state
        .run(|repo| Ok(StatusResult::from(&repo.status()?)))
        .await
}

/// Asks the running operation `operation` to stop; false if none runs under
/// that id. The operation then fails with kind `Cancelled`, the repository
/// as it was.
#[command]
pub(crate) fn cancel(state: State<'_, LuminaBackup>, operation: String) -> bool {
    state.ops.cancel(&operation)
}

impl LuminaBackup {
    /// Runs `f` with the open repository on the blocking pool.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Repository) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let slot = Arc::clone(&self.slot);
        blocking(move || {
            let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
            let repo = slot.as_mut().ok_or(Error::NotOpen)?;
            f(repo)
        })
        .await
    }
}
