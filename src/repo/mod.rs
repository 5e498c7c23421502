//! The public API: a repository and the operations the CLI and the desktop app
//! call (snapshot, list, read, restore, verify, rebuild the index).
//!
//! Opening a repository takes its lock for the life of the value (one process at
//! a time), removes temp files left by an interrupted write, and brings the index
//! up to date with the files (the files are the truth; the index is a cache).

mod before;
pub mod cache;
mod chain;
mod copy;
mod copy_data;
mod copy_packs;
mod diff;
mod drill;
mod export_plan;
mod export_render;
mod export_write;
mod exports;
mod files;
mod forget;
mod init;
mod inside;
mod keys;
mod partial;
mod problem;
mod prune;
mod query;
mod repair;
mod restore;
mod restore_guard;
mod status;
mod take;
mod unchanged;
mod verify;
mod verify_checksum;

pub use chain::ChainHead;
pub use copy::{CopyMode, CopyOptions, CopyReport};
pub use diff::DiffTarget;
pub use drill::DrillReport;
pub use exports::{export_database, import_file, ExportFormat, ExportRequest, ExportedFile};
pub use forget::{refuse_dangers, ForgetReport};
pub use inside::{refuse_inside_repository, repository_holding};
pub use keys::KeyInfo;
pub use problem::{Damage, Problem};
pub use prune::{PackAction, PackPlan, PrunePlan, PruneReport, DEFAULT_MAX_UNUSED};
pub use query::{QuerySink, SqlValue};
pub use repair::{RemovedSnapshot, SnapshotRepairPlan, TrimmedSnapshot};
pub use status::{DatabaseStatus, Status};

pub use restore::{Check, RestoreOptions, RestoreReport};
pub use take::{ExportRows, SnapshotOptions, SnapshotSummary};
pub use verify::{RebuildReport, VerifyOptions, VerifyReport};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::backend::{Backend, LocalBackend, Location};
use crate::chunker::{ByteParams, PageParams};
use crate::crypto::{KdfParams, MasterKey};
use crate::error::{Error, Repr, Result};
use crate::format::Cipher;
use crate::format::{self, Config, FormatVersion, Kind};
use crate::id::SnapshotId;
use crate::index::{Index, IndexUpdate};
use crate::layout;
use crate::lock::{ObjectLock, RepoLock};
use crate::progress::Progress;
use crate::snapshot::{self, Snapshot};
use crate::store::{pack, ChunkStore};

/// Name of the config file.
pub const CONFIG_FILE: &str = crate::layout::CONFIG;
/// Name of the index file.
pub const INDEX_FILE: &str = crate::layout::INDEX;
/// Name of the lock file.
pub const LOCK_FILE: &str = crate::layout::LOCK;
/// The folder of a remote repository's cache that holds its tree frames
/// (`store::node_cache`).
const NODE_CACHE_DIR: &str = "trees";

/// Said when a damaged index is replaced on open.
const INDEX_REBUILT_NOTICE: &str = "index.redb could not be read (damaged or of another version); \
     rebuilt it from the pack and snapshot files (the index is only a cache)";

/// How to open a repository.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// How long to wait for another process's lock.
    pub lock_wait: Duration,
    /// What this process is doing (shown to a process waiting for the lock);
    /// by default the program's file name.
    pub purpose: String,
    /// The passphrase, for an encrypted repository.
    pub passphrase: Option<zeroize::Zeroizing<String>>,
}

/// How to create a repository.
#[derive(Debug, Clone, Default)]
pub struct InitOptions {
    /// Encrypt with a new master key wrapped by this passphrase.
    pub passphrase: Option<zeroize::Zeroizing<String>>,
    /// Argon2id parameters for the key file.
    pub kdf: KdfParams,
    /// Create the repository in a folder that already holds other files.
    pub force: bool,
    /// The zstd level of its packs, 1 (fastest) to 19 (smallest); `None`:
    /// the default, 3.
    pub zstd_level: Option<i32>,
}

impl OpenOptions {
    /// These options with a passphrase (for an encrypted repository).
    pub fn with_passphrase(mut self, passphrase: impl Into<String>) -> Self {
        self.passphrase = Some(zeroize::Zeroizing::new(passphrase.into()));
        self
    }
}

impl InitOptions {
    /// These options with a passphrase: the repository is encrypted.
    pub fn with_passphrase(mut self, passphrase: impl Into<String>) -> Self {
        self.passphrase = Some(zeroize::Zeroizing::new(passphrase.into()));
        self
    }
}

/// The running program's file name (what a lock holder is shown as by
/// default), or "an application" when it cannot be known.
fn program_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "an application".into())
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            lock_wait: Duration::from_secs(10),
            purpose: program_name(),
            passphrase: None,
        }
    }
}

/// The defaults chosen by measurement (`docs/chunking-measurement.md`): one chunk
/// per page, 1 MiB zstd-3 frames, fan-out 8 chunk-list trees; 8 MiB packs keep the
/// snapshot writer under 100 MiB of memory (BENCHMARKS.md).
pub fn default_config() -> Config {
    Config {
        repo_id: hex::encode(rand::random::<[u8; 16]>()),
        created: time::OffsetDateTime::now_utc().unix_timestamp(),
        page_chunker: PageParams {
            avg_pages: 1,
            max_pages: 1,
        },
        byte_chunker: ByteParams::default(),
        zstd_level: 3,
        frame_target: 1 << 20,
        pack_target: 8 << 20,
        tree_fanout: 8,
    }
}

/// The form in which snapshot records name their source: the canonical absolute
/// path when the file exists, else the path as given.
pub fn source_key(db: &Path) -> String {
    std::fs::canonicalize(db)
        .unwrap_or_else(|_| db.to_path_buf())
        .to_string_lossy()
        .into_owned()
}

/// What a new repository takes from an existing one (`copy` creating its
/// destination): the config's parameters (a new `repo_id` and `created`), the
/// format, and the master key (sealed with the new repository's passphrase).
pub(crate) struct Like {
    /// The config to copy the parameters of.
    pub config: Config,
    /// The store format.
    pub version: FormatVersion,
    /// The master key to reuse, if any.
    pub master: Option<Arc<MasterKey>>,
}

/// An open repository (holding its lock: exclusive, or shared when opened
/// read-only).
pub struct Repository {
    /// The local folder, or for a remote repository its URL (for messages).
    root: PathBuf,
    /// Where the repository is.
    location: Location,
    /// The repository's files, reached only through the [`Backend`] seam (the
    /// same backend the store writes packs through).
    backend: Arc<dyn Backend>,
    store: ChunkStore,
    index: Index,
    key_id: Option<String>,
    /// Things the open did that the user should hear about (an index rebuilt).
    notices: Vec<String>,
    /// The `flock` of a local repository, or of a remote one's local cache;
    /// None only for a read-only open of a local repository without a lock
    /// file.
    _lock: Option<RepoLock>,
    /// A remote repository's lock object (store-format.md section 6.10).
    _object_lock: Option<ObjectLock>,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("root", &self.root)
            .finish()
    }
}

/// The last remote config read by [`Repository::is_encrypted_at`], with its
/// location and when: taken (once) by the next open of that location within
/// [`PEEK_VALID`] (a CLI command opens right after asking; an application that
/// asks and opens much later reads the config again).
static PEEKED_CONFIG: std::sync::Mutex<Option<(String, std::time::Instant, Vec<u8>)>> =
    std::sync::Mutex::new(None);

/// How long a peeked config may stand in for a read.
const PEEK_VALID: Duration = Duration::from_secs(5);

impl Repository {
    /// Creates an unencrypted repository at `path` (which must not hold one yet).
    pub fn init(path: &Path) -> Result<Config> {
        Self::init_with(path, &InitOptions::default())
    }

    /// Creates a repository at `location` (a folder or a remote store),
    /// encrypted if a passphrase is given.
    pub fn init_at(location: &Location, opts: &InitOptions) -> Result<Config> {
        Self::init_like(location, opts, None)
    }

    /// [`Self::init_at`], with the config's chunking, the format and the
    /// master key of `like` when given (`copy` creating its destination).
    pub(crate) fn init_like(
        location: &Location,
        opts: &InitOptions,
        like: Option<&Like>,
    ) -> Result<Config> {
        match location {
            Location::Local(path) => Self::init_local(path, opts, like),
            Location::Remote(remote) => {
                let backend = crate::backend::open_remote(remote)?.writable;
                let shown = PathBuf::from(location.to_string());
                if backend.exists(CONFIG_FILE)? {
                    return Err(Repr::RepositoryExists(shown).into());
                }
                let others = backend.list("")?;
                if !others.is_empty() && !opts.force {
                    return Err(Error::refused(format!(
                        "{location} is not empty ({} entries) and holds no repository; give a new or empty location, or force creating the repository among its files",
                        others.len()
                    ))
                    .with_remedy(crate::error::Remedy::Force));
                }
                Self::write_new(backend.as_ref(), opts, like)
            }
        }
    }

    /// Creates a repository at `path`, encrypted if a passphrase is given.
    pub fn init_with(path: &Path, opts: &InitOptions) -> Result<Config> {
        Self::init_local(path, opts, None)
    }

    fn init_local(path: &Path, opts: &InitOptions, like: Option<&Like>) -> Result<Config> {
        let backend = LocalBackend::new(path);
        init::check_target(path)?;
        if backend.exists(CONFIG_FILE)? {
            return Err(Repr::RepositoryExists(path.to_path_buf()).into());
        }
        init::check_not_inside_a_repository(path)?;
        init::check_empty(path, opts.force)?;
        let existed = path.is_dir();
        backend.create_dir(path)?;
        if existed {
            init::make_private(path);
        }
        for dir in layout::INIT_DIRS {
            backend.create_dir(&path.join(dir))?;
        }
        // Created once here, so locking never needs new bytes (a full disk).
        RepoLock::create_file(&path.join(LOCK_FILE))?;
        Self::write_new(&backend, opts, like)
    }

    /// Writes a new repository's key file (encrypted) and config, the config
    /// last: a location without it is not a repository.
    fn write_new(backend: &dyn Backend, opts: &InitOptions, like: Option<&Like>) -> Result<Config> {
        let mut config = default_config();
        let mut version = FormatVersion::NEWEST;
        if let Some(like) = like {
            config = Config {
                repo_id: config.repo_id,
                created: config.created,
                ..like.config.clone()
            };
            version = like.version;
        } else if let Some(level) = opts.zstd_level {
            if !(1..=19).contains(&level) {
                return Err(Error::invalid_input(format!(
                    "{level} is not a zstd level: give 1 (fastest) to 19 (smallest)"
                )));
            }
            config.zstd_level = level;
        }
        config
            .validate()
            .map_err(|e| Error::corrupt("default config", e))?;
        let cipher = match &opts.passphrase {
            None => Cipher::Plain,
            Some(pw) => {
                let master = match like.and_then(|l| l.master.as_ref()) {
                    Some(m) => MasterKey::from_bytes(m.to_bytes().as_ref())
                        .ok_or_else(|| Error::internal("a master key of the wrong length"))?,
                    None => MasterKey::generate(),
                };
                let (id, file) = keys::make_key_file(&master, pw, opts.kdf, "", version)?;
                backend.write_atomic(&layout::key(&id), &file)?;
                Cipher::Sealed(Arc::new(master))
            }
        };
        // The config is written last: a folder without it is not a repository yet.
        crate::store::files::save(backend, &cipher, version, "", &config)?;
        Ok(config)
    }

    /// Whether the repository at `location` is encrypted (reads only the
    /// config header). For a remote store the config's bytes are kept for the
    /// next open of the same location in this process, which uses them once
    /// instead of reading them again (the config never changes after `init`).
    pub fn is_encrypted_at(location: &Location) -> Result<bool> {
        match location {
            Location::Local(path) => Self::is_encrypted(path),
            Location::Remote(remote) => {
                let backend = crate::backend::open_remote(remote)?.read_only;
                let shown = PathBuf::from(location.to_string());
                let bytes = Self::config_bytes(&shown, backend.as_ref())?;
                let sealed = Self::decode_header(&bytes)?.flags & format::FLAG_SEALED != 0;
                // The open that usually follows reads these bytes instead of
                // asking the server again (one paid request less per command).
                *PEEKED_CONFIG.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((backend.location(), std::time::Instant::now(), bytes));
                Ok(sealed)
            }
        }
    }

    /// Whether the repository at `path` is encrypted (reads only the config header).
    pub fn is_encrypted(path: &Path) -> Result<bool> {
        let backend = LocalBackend::new(path);
        if !backend.exists(CONFIG_FILE)? {
            return Err(Repr::NoRepository(path.to_path_buf()).into());
        }
        Ok(Self::config_header(&backend)?.flags & format::FLAG_SEALED != 0)
    }

    /// The config's envelope header: whether it is sealed, and the
    /// repository's format (reads only the config).
    fn config_header(backend: &dyn Backend) -> Result<format::Header> {
        Self::decode_header(&backend.read(CONFIG_FILE)?)
    }

    /// The config's envelope header, from its bytes.
    fn decode_header(bytes: &[u8]) -> Result<format::Header> {
        format::decode_header(bytes, Kind::Config).map_err(|e| Error::decode("config", e))
    }

    /// The config's bytes (a remote one peeked by [`Repository::is_encrypted_at`]
    /// is taken, once), or [`Repr::NoRepository`] (named `shown`) when
    /// there is none. A local folder is asked whether the file exists first
    /// (as always); a remote store gets one GET, whose "not found" means no
    /// repository: a HEAD before it would be one more paid request for every
    /// command.
    fn config_bytes(shown: &Path, backend: &dyn Backend) -> Result<Vec<u8>> {
        if backend.is_remote() {
            let mut peeked = PEEKED_CONFIG.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((at, when, bytes)) = peeked.take() {
                if at == backend.location() && when.elapsed() < PEEK_VALID {
                    return Ok(bytes);
                }
            }
        }
        if !backend.is_remote() && !backend.exists(CONFIG_FILE)? {
            return Err(Repr::NoRepository(shown.to_path_buf()).into());
        }
        backend.read(CONFIG_FILE).map_err(|e| {
            if backend.is_remote() && e.is_io_not_found() {
                Repr::NoRepository(shown.to_path_buf()).into()
            } else {
                e
            }
        })
    }

    /// Opens the repository at `path`, taking its lock.
    pub fn open(path: &Path, opts: &OpenOptions) -> Result<Self> {
        Self::open_inner(path, opts, false)
    }

    /// Opens the repository at `location` (a folder or a remote store),
    /// taking its lock: a remote repository's lock object, exclusive, and the
    /// `flock` of its local index cache.
    pub fn open_at(location: &Location, opts: &OpenOptions) -> Result<Self> {
        match location {
            Location::Local(path) => Self::open(path, opts),
            Location::Remote(_) => Self::open_remote(location, opts, false, false),
        }
    }

    /// Opens the repository at `location` for reading only (see
    /// [`Self::open_read_only`]). A remote repository still gets a shared lock
    /// object (so a prune waits for it) and its local index cache is brought
    /// up to date; nothing else is written to the store.
    pub fn open_read_only_at(location: &Location, opts: &OpenOptions) -> Result<Self> {
        match location {
            Location::Local(path) => Self::open_read_only(path, opts),
            Location::Remote(_) => Self::open_remote(location, opts, true, false),
        }
    }

    /// Opens the repository at `location` with its index rebuilt from the
    /// files (see [`Self::open_and_rebuild_index`]); for a remote repository
    /// the local cache is deleted and rebuilt.
    pub fn open_and_rebuild_index_at(
        location: &Location,
        opts: &OpenOptions,
        progress: &dyn Progress,
    ) -> Result<(Self, RebuildReport)> {
        match location {
            Location::Local(path) => Self::open_and_rebuild_index(path, opts, progress),
            Location::Remote(_) => crate::progress::operation(progress, |p| {
                let mut repo = Self::open_remote(location, opts, false, true)?;
                let report = repo.rebuild_index(p)?;
                Ok((repo, report))
            }),
        }
    }

    /// Opens a remote repository: config and keys, the cache's `flock`, the
    /// lock object, the cached index, then the reconcile.
    fn open_remote(
        location: &Location,
        opts: &OpenOptions,
        read_only: bool,
        discard_index: bool,
    ) -> Result<Self> {
        let Location::Remote(remote) = location else {
            return Err(Error::internal("open_remote on a local location"));
        };
        let pair = crate::backend::open_remote(remote)?;
        let shown = PathBuf::from(location.to_string());
        let (cipher, key_id, config, version) =
            Self::read_config(&shown, pair.read_only.as_ref(), opts)?;
        let cache = cache::dir(&config.repo_id)?;
        let local = RepoLock::acquire(&cache.join(LOCK_FILE), &opts.purpose, opts.lock_wait)?;
        let mut notices = Vec::new();
        let object_lock = ObjectLock::acquire(
            pair.writable.clone(),
            &cipher,
            version,
            &opts.purpose,
            !read_only,
            opts.lock_wait,
            &mut notices,
        )?;
        let index_path = cache.join(INDEX_FILE);
        if discard_index {
            Self::fresh_index(&index_path)?;
        }
        let index = match Index::open(&index_path) {
            Ok(index) => index,
            Err(e) if e.is_index_damage() => {
                notices.push(INDEX_REBUILT_NOTICE.to_string());
                Self::fresh_index(&index_path)?
            }
            Err(e) => return Err(e),
        };
        let backend = if read_only {
            pair.read_only
        } else {
            pair.writable
        };
        let store = ChunkStore::new(backend.clone(), config, cipher, version)
            .with_node_cache(&cache.join(NODE_CACHE_DIR));
        let mut repo = Repository {
            root: shown,
            location: location.clone(),
            backend,
            store,
            index,
            key_id,
            notices,
            _lock: Some(local),
            _object_lock: Some(object_lock),
        };
        if !read_only {
            repo.cleanup_temp_files()?;
        }
        if !discard_index {
            repo.reconcile()?;
        }
        Ok(repo)
    }

    /// The repository's files, for the file-by-file checks of `files`.
    pub(crate) fn files(&self) -> files::Files<'_> {
        if self.backend.is_remote() {
            files::Files::Remote(self.backend.as_ref())
        } else {
            files::Files::Local(&self.root)
        }
    }

    /// Where the repository is.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// Whether the repository is on a remote store.
    pub fn is_remote(&self) -> bool {
        self.location.is_remote()
    }

    /// Opens the repository at `path` for reading only: nothing in it is created,
    /// written or removed, so it works on a read-only mount or a full disk. The
    /// lock is taken shared (readers run together; writers wait), or not at all
    /// when the repository has no lock file and cannot get one. Temp files of
    /// an interrupted write are left alone, and an index that lags behind the
    /// files (or is missing) is brought up to date in memory only.
    /// Every write method fails with
    /// [`ErrorKind::ReadOnly`](crate::ErrorKind::ReadOnly).
    pub fn open_read_only(path: &Path, opts: &OpenOptions) -> Result<Self> {
        let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new_read_only(path));
        let (cipher, key_id, config, version) = Self::read_config(path, backend.as_ref(), opts)?;
        let lock = RepoLock::acquire_shared(&path.join(LOCK_FILE), opts.lock_wait)?;
        let index = Index::open_read_only(&path.join(INDEX_FILE))?;
        let mut repo = Repository {
            root: path.to_path_buf(),
            location: Location::Local(path.to_path_buf()),
            store: ChunkStore::new(backend.clone(), config, cipher, version),
            backend,
            index,
            key_id,
            notices: Vec::new(),
            _lock: lock,
            _object_lock: None,
        };
        repo.reconcile()?;
        Ok(repo)
    }

    /// Opens the repository with a new, empty index file (the old one is
    /// deleted, whatever state it is in) and rebuilds it from the files.
    pub fn open_and_rebuild_index(
        path: &Path,
        opts: &OpenOptions,
        progress: &dyn Progress,
    ) -> Result<(Self, RebuildReport)> {
        crate::progress::operation(progress, |p| {
            let mut repo = Self::open_inner(path, opts, true)?;
            let report = repo.rebuild_index(p)?;
            Ok((repo, report))
        })
    }

    fn open_inner(path: &Path, opts: &OpenOptions, discard_index: bool) -> Result<Self> {
        let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(path));
        let (cipher, key_id, config, version) = Self::read_config(path, backend.as_ref(), opts)?;
        let lock = RepoLock::acquire(&path.join(LOCK_FILE), &opts.purpose, opts.lock_wait)?;
        let index_path = path.join(INDEX_FILE);
        if discard_index {
            match std::fs::remove_file(&index_path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("removing", &index_path, e)),
            }
        }
        // The index is a cache: one that cannot be opened is rebuilt from the files.
        let mut notices = Vec::new();
        let index = match Index::open(&index_path) {
            Ok(index) => index,
            Err(e) if !discard_index && e.is_index_damage() => {
                notices.push(INDEX_REBUILT_NOTICE.to_string());
                Self::fresh_index(&index_path)?
            }
            Err(e) => return Err(e),
        };
        let store = ChunkStore::new(backend.clone(), config, cipher, version);
        let mut repo = Repository {
            root: path.to_path_buf(),
            location: Location::Local(path.to_path_buf()),
            backend,
            store,
            index,
            key_id,
            notices,
            _lock: Some(lock),
            _object_lock: None,
        };
        repo.cleanup_temp_files()?;
        if !discard_index {
            match repo.reconcile() {
                Err(e) if e.is_index_damage() && repo.notices.is_empty() => {
                    // Damage the open's check did not reach: rebuild once.
                    let fresh = Self::fresh_index(&index_path)?;
                    let old = std::mem::replace(&mut repo.index, fresh);
                    // Closing a damaged redb file may itself trip an assertion.
                    let _ = crate::index::guard::guarded("closing the index", || {
                        drop(old);
                        Ok(())
                    });
                    repo.notices.push(INDEX_REBUILT_NOTICE.to_string());
                    repo.reconcile()?;
                }
                other => other?,
            }
        }
        Ok(repo)
    }

    /// Deletes the index file and creates an empty one in its place (filled by
    /// the reconcile that follows).
    fn fresh_index(index_path: &Path) -> Result<Index> {
        match std::fs::remove_file(index_path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("removing", index_path, e)),
        }
        Index::open(index_path)
    }

    /// What the open did that the user should hear about, one line each (for
    /// example "the index was damaged and has been rebuilt from the files").
    pub fn notices(&self) -> &[String] {
        &self.notices
    }

    /// Unlocks (if encrypted) and decodes the config; touches no file. Also
    /// returns the key's id and the repository's format (the config's).
    fn read_config(
        path: &Path,
        backend: &dyn Backend,
        opts: &OpenOptions,
    ) -> Result<(Cipher, Option<String>, Config, FormatVersion)> {
        // Read once: the header and the config come from the same bytes.
        let bytes = Self::config_bytes(path, backend)?;
        // Keys are checked before anything is locked or opened: a wrong passphrase
        // touches no file.
        let header = Self::decode_header(&bytes)?;
        let (cipher, key_id) = if header.flags & format::FLAG_SEALED != 0 {
            let pw = opts
                .passphrase
                .as_ref()
                .ok_or_else(|| Error::from(Repr::PassphraseRequired(path.to_path_buf())))?;
            let (master, id) = keys::unlock(backend, pw)?;
            (Cipher::Sealed(Arc::new(master)), Some(id))
        } else {
            // Downgrade protection: a plaintext config beside real key files
            // (names shaped like key ids) was swapped in. Other files in
            // `keys/` are foreign files, named by verify.
            if !keys::key_file_ids(backend)?.is_empty() {
                return Err(Error::corrupt(
                    "config",
                    "stored in plaintext but the repository has key files (tampered?)",
                ));
            }
            (Cipher::Plain, None)
        };
        let config: Config = crate::store::files::open(&cipher, "", &bytes)?;
        Ok((cipher, key_id, config, FormatVersion::of(&header)))
    }

    /// The repository folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The config.
    pub fn config(&self) -> &Config {
        self.store.config()
    }

    /// The repository's store format version (1 or 2; store-format.md section 8).
    pub fn format_version(&self) -> u16 {
        self.store.format().get()
    }

    /// What the checksum of a snapshot's files (`FileEntry::blake3`) holds in
    /// this repository: `"blake3"` in format 1 (the BLAKE3 of the file's bytes,
    /// as `b3sum` prints it), `"chunk-list-v2"` in format 2 (the digest of the
    /// file's ordered chunk ids and lengths, store-format.md section 4.2, which
    /// no other tool computes).
    pub fn checksum_kind(&self) -> &'static str {
        match self.store.format().checksum() {
            crate::format::ChecksumKind::WholeFile => "blake3",
            crate::format::ChecksumKind::ChunkList => "chunk-list-v2",
        }
    }

    /// Whether the repository is encrypted.
    pub fn encrypted(&self) -> bool {
        self.store.cipher().is_sealed()
    }

    fn cleanup_temp_files(&self) -> Result<()> {
        if self.backend.is_remote() {
            // One recursive listing (a remote backend clears the subtree).
            self.backend.remove_temp_files("")?;
            return Ok(());
        }
        self.backend.remove_temp_files("")?;
        self.backend.remove_temp_files(layout::SNAPSHOTS)?;
        self.backend.remove_temp_files(layout::CHAIN)?;
        for dir in self.backend.list(layout::PACKS)? {
            self.backend.remove_temp_files(&layout::pack_dir(&dir))?;
        }
        Ok(())
    }

    /// Brings the index in line with the files: adds packs and snapshots it does
    /// not know (written before a crash that came before the index commit), drops
    /// snapshots whose files are gone.
    ///
    /// A pack found on disk adds only locations of chunks the index does not
    /// have: an indexed location always points into a present, indexed pack, and
    /// after an interrupted prune the unindexed pack may be an old pack whose
    /// chunks the index already moved to a new one (store-format.md, "Prune
    /// protocol"). Such a pack is indexed with no live chunk pointing into it,
    /// and the next prune deletes it.
    fn reconcile(&mut self) -> Result<()> {
        let mut update = IndexUpdate::default();
        let present: std::collections::HashMap<_, _> = self.pack_files()?.into_iter().collect();
        self.store.retain_cached_packs(&|p| present.contains_key(p));
        let indexed_packs = self.index.packs()?;
        let known_packs: std::collections::HashSet<_> =
            indexed_packs.iter().map(|(id, _)| *id).collect();
        // Packs the index lists whose file is gone or changed size: their chunks
        // are not there to read, so they must not count as stored (a snapshot
        // would dedup against them and reference data it cannot restore).
        let lost: std::collections::HashSet<_> = indexed_packs
            .iter()
            .filter(|(id, size)| present.get(id) != Some(size))
            .map(|(id, _)| *id)
            .collect();
        if !lost.is_empty() {
            update.remove_chunks = self.index.chunks_in_packs(&lost)?;
            update.remove_packs = lost.iter().copied().collect();
            update.refs_complete = Some(false);
        }
        let reader = self.index.reader()?;
        let mut adding = std::collections::HashSet::new();
        let dropped: std::collections::HashSet<_> = update.remove_chunks.iter().copied().collect();
        for (id, size) in &present {
            let (id, size) = (*id, *size);
            if known_packs.contains(&id) && !lost.contains(&id) && !dropped.is_empty() {
                // Another copy of a lost chunk (left by an interrupted prune) in
                // an indexed pack is as good as the lost one.
                if let Ok(desc) = self.read_pack_description(&id, size) {
                    for (chunk, loc) in pack::locations(id, &desc) {
                        if dropped.contains(&chunk) && adding.insert(chunk) {
                            update.chunks.push((chunk, loc));
                        }
                    }
                }
            } else if !known_packs.contains(&id) {
                // A damaged pack is left for verify to report; it is not indexed.
                if let Ok(desc) = self.read_pack_description(&id, size) {
                    for (chunk, loc) in pack::locations(id, &desc) {
                        let absent = !reader.contains(&chunk)? || dropped.contains(&chunk);
                        if absent && adding.insert(chunk) {
                            update.chunks.push((chunk, loc));
                        }
                    }
                    update.packs.push((id, size));
                }
            }
        }
        drop(reader);
        if !lost.is_empty() {
            // On a remote repository another machine's prune deletes packs
            // (the live chunks moved to new packs, indexed just above; the
            // dead ones are gone for good): only chunks found nowhere else
            // are worth a word, and the listing cannot tell a prune from a
            // loss, so the line says both.
            let missing = dropped.iter().filter(|c| !adding.contains(*c)).count();
            if self.backend.is_remote() {
                if missing == 0 {
                    update.refs_complete = None;
                } else {
                    self.notices.push(format!(
                        "{} pack(s) in the local index cache are gone from the store and {missing} of their chunks are in no other pack: \
                         expected after a prune from another machine; if none ran, run verify",
                        lost.len()
                    ));
                }
            } else {
                let mut names: Vec<String> = lost.iter().map(|id| id.short()).collect();
                names.sort();
                self.notices.push(format!(
                    "{} pack file(s) listed in the index are missing or changed size ({}); \
                     their {} chunks count as lost and the next snapshot stores them again; \
                     a verify names the snapshots that are damaged",
                    lost.len(),
                    names.join(", "),
                    update.remove_chunks.len()
                ));
            }
        }
        let indexed: std::collections::HashMap<SnapshotId, Vec<u8>> =
            self.index.snapshots()?.into_iter().collect();
        let on_disk = self.snapshot_ids()?;
        for id in &on_disk {
            if !indexed.contains_key(id) {
                let bytes = self.backend.read(&snapshot::snapshot_path(id))?;
                if snapshot::decode_record_file(id, &bytes, self.store.cipher()).is_ok() {
                    update.snapshots.push((*id, bytes));
                }
            }
        }
        let on_disk: std::collections::HashSet<_> = on_disk.into_iter().collect();
        update.remove_snapshots = indexed
            .keys()
            .filter(|id| !on_disk.contains(id))
            .copied()
            .collect();
        if !update.is_empty() {
            self.index.apply(&update)?;
        }
        if !self.index.refs_complete()? && self.index.snapshots()?.is_empty() {
            // No snapshot, nothing to reference: trivially complete.
            self.index.apply(&IndexUpdate {
                refs_complete: Some(true),
                ..Default::default()
            })?;
        }
        Ok(())
    }

    /// Every pack file present, with its size.
    pub(crate) fn pack_files(&self) -> Result<Vec<(crate::id::PackId, u64)>> {
        let mut out = Vec::new();
        // A remote store lists the whole tree with sizes in a few requests
        // (not one listing per folder and one size request per pack).
        if let Some(tree) = self.backend.list_tree(layout::PACKS)? {
            for (path, size) in tree {
                let Some((dir, name)) = path.split_once('/') else {
                    continue;
                };
                if dir.len() != 2 || !name.starts_with(dir) {
                    continue;
                }
                if let Some(id) = crate::id::PackId::from_hex(name) {
                    out.push((id, size));
                }
            }
            return Ok(out);
        }
        // Only `packs/<2 hex>/<64 hex>` names are packs; anything else there is a
        // foreign file, skipped (verify names them).
        for dir in self.backend.list(layout::PACKS)? {
            if dir.len() != 2 || !dir.bytes().all(|b| b.is_ascii_hexdigit()) {
                continue;
            }
            for name in self.backend.list(&layout::pack_dir(&dir))? {
                if !name.starts_with(&dir) {
                    continue;
                }
                if let Some(id) = crate::id::PackId::from_hex(&name) {
                    let size = self.backend.size(&layout::pack_in(&dir, &name))?;
                    out.push((id, size));
                }
            }
        }
        Ok(out)
    }

    /// The snapshot file of `id`, read and decoded (authenticated when encrypted).
    pub(crate) fn read_record(&self, id: &SnapshotId) -> Result<crate::format::SnapshotRecord> {
        let bytes = self.backend.read(&snapshot::snapshot_path(id))?;
        snapshot::decode_record_file(id, &bytes, self.store.cipher())
    }

    /// Every snapshot id with a file present.
    pub(crate) fn snapshot_ids(&self) -> Result<Vec<SnapshotId>> {
        Ok(self
            .backend
            .list(layout::SNAPSHOTS)?
            .iter()
            .filter_map(|n| SnapshotId::from_hex(n))
            .collect())
    }

    /// Reads a pack's trailer and description ([`ChunkStore::read_pack_description`]).
    pub(crate) fn read_pack_description(
        &self,
        id: &crate::id::PackId,
        size: u64,
    ) -> Result<format::PackDescription> {
        self.store.read_pack_description(id, size)
    }

    /// All snapshots, oldest first: by time, and each database's in the order
    /// of its history (after a clock went back, a snapshot still comes after
    /// its parent).
    pub fn list(&self) -> Result<Vec<Snapshot>> {
        let mut out = Vec::new();
        for (id, file) in self.index.snapshots()? {
            let record = snapshot::decode_record_file(&id, &file, self.store.cipher())?;
            out.push(Snapshot { id, record });
        }
        self.apply_annotations(&mut out)?;
        Ok(snapshot::order::order(out))
    }

    /// The newest snapshot of the database recorded as `source` (the last in
    /// its history, as [`Self::list`] orders it) and the `seq` its next
    /// snapshot gets. Decodes only the heads of the other records
    /// (`snapshot::Head`) and the newest one in full: a new snapshot's cost
    /// barely grows with the history.
    pub(crate) fn newest_of(&self, source: &str) -> Result<(Option<Snapshot>, u64)> {
        let mut group = Vec::new();
        let mut files = std::collections::HashMap::new();
        for (id, file) in self.index.snapshots()? {
            let head = snapshot::decode_head_file(&id, &file, self.store.cipher())?;
            if head.source == source {
                group.push(head);
                files.insert(id, file);
            }
        }
        let (newest, seq) = snapshot::order::newest(group);
        let newest = match newest {
            Some(h) => {
                let file = files.get(&h.id).expect("each head's file was kept");
                let record = snapshot::decode_record_file(&h.id, file, self.store.cipher())?;
                Some(Snapshot { id: h.id, record })
            }
            None => None,
        };
        Ok((newest, seq))
    }

    /// Snapshots passing `filter`, oldest first.
    pub fn list_filtered(&self, filter: &snapshot::Filter) -> Result<Vec<Snapshot>> {
        Ok(self
            .list()?
            .into_iter()
            .filter(|s| filter.matches(s))
            .collect())
    }

    /// The newest snapshot of `db` taken at or before `time_ns`, skipping
    /// `pre-restore` safety copies as `latest` does;
    /// `db` may be given as any path to the database. Before the first:
    /// [`ErrorKind::BeforeFirstSnapshot`](crate::ErrorKind::BeforeFirstSnapshot),
    /// carrying the earliest one ([`Error::earliest_snapshot`]).
    pub fn snapshot_at(&self, db: Option<&Path>, time_ns: i64) -> Result<Snapshot> {
        let all = self.list()?;
        let db = db.map(source_key);
        snapshot::at(&all, db.as_deref(), time_ns).cloned()
    }

    /// The snapshot `spec` names (`latest`, an id, or a unique prefix);
    /// `latest` needs a repository of one database (see [`Self::resolve_in`]).
    pub fn resolve(&self, spec: &str) -> Result<Snapshot> {
        self.resolve_in(spec, None)
    }

    /// The snapshot `spec` names; `latest` is the newest snapshot of `db` (any
    /// path to the database), or without `db` of the repository's only
    /// database (several: exit 2 naming them), that is not a `pre-restore`
    /// safety copy unless the database has nothing else.
    /// An id names any snapshot.
    pub fn resolve_in(&self, spec: &str, db: Option<&Path>) -> Result<Snapshot> {
        let all = self.list()?;
        let db = db.map(source_key);
        snapshot::resolve(spec, &all, db.as_deref()).cloned()
    }

    /// Whether the repository has snapshots of the database at `path` (any
    /// path to it).
    pub fn is_source(&self, path: &Path) -> Result<bool> {
        let key = source_key(path);
        Ok(self.list()?.iter().any(|s| s.record.source == key))
    }

    /// Stored size of the repository (packs, snapshots, config, index).
    pub fn stored_bytes(&self) -> Result<u64> {
        let packs: u64 = self.index.packs()?.iter().map(|(_, s)| s).sum();
        Ok(packs)
    }

    pub(crate) fn check_cancel(progress: &dyn Progress) -> Result<()> {
        if progress.cancelled() {
            Err(Error::from(Repr::Cancelled))
        } else {
            Ok(())
        }
    }
}
