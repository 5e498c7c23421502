//! The public API: a repository and the operations the CLI and the desktop app
//! call (snapshot, list, read, restore, verify, rebuild the index).
//!
//! Opening a repository takes its lock for the life of the value (one process at
//! a time), removes temp files left by an interrupted write, and brings the index
//! up to date with the files (the files are the truth; the index is a cache).

mod restore;
mod take;
mod verify;

pub use restore::{RestoreOptions, RestoreReport};
pub use take::{SnapshotOptions, SnapshotSummary};
pub use verify::{RebuildReport, VerifyReport};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::backend::{Backend, LocalBackend};
use crate::chunker::{ByteParams, PageParams};
use crate::error::{Error, Result};
use crate::format::{self, Config, Kind};
use crate::id::{IdHasher, SnapshotId};
use crate::index::{Index, IndexUpdate};
use crate::lock::RepoLock;
use crate::progress::Progress;
use crate::snapshot::{self, Snapshot};
use crate::store::{pack, ChunkStore};

/// Name of the config file.
pub const CONFIG_FILE: &str = "config";
/// Name of the index file.
pub const INDEX_FILE: &str = "index.redb";
/// Name of the lock file.
pub const LOCK_FILE: &str = "lock";

/// How to open a repository.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// How long to wait for another process's lock.
    pub lock_wait: Duration,
    /// What this process is doing (shown to a process waiting for the lock).
    pub purpose: String,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            lock_wait: Duration::from_secs(10),
            purpose: "lumina-backup".into(),
        }
    }
}

/// The defaults chosen by measurement (`docs/chunking-measurement.md`): one chunk
/// per page, 1 MiB zstd-3 frames, fan-out 8 chunk-list trees.
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
        pack_target: 16 << 20,
        tree_fanout: 8,
    }
}

/// An open repository (holding its lock).
pub struct Repository {
    root: PathBuf,
    backend: Arc<LocalBackend>,
    store: ChunkStore,
    index: Index,
    _lock: RepoLock,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("root", &self.root)
            .finish()
    }
}

impl Repository {
    /// Creates a repository at `path` (which must not hold one yet).
    pub fn init(path: &Path) -> Result<Config> {
        let backend = LocalBackend::new(path);
        if backend.exists(CONFIG_FILE)? {
            return Err(Error::RepositoryExists(path.to_path_buf()));
        }
        if path.exists() && !path.is_dir() {
            return Err(Error::BadInput(format!(
                "{} exists and is not a folder",
                path.display()
            )));
        }
        backend.create_dir(path)?;
        for dir in ["packs", "snapshots"] {
            backend.create_dir(&path.join(dir))?;
        }
        let config = default_config();
        config
            .validate()
            .map_err(|e| Error::corrupt("default config", e))?;
        backend.write_atomic(
            CONFIG_FILE,
            &format::seal_file(Kind::Config, &format::encode_named(&config)),
        )?;
        Ok(config)
    }

    /// Opens the repository at `path`, taking its lock.
    pub fn open(path: &Path, opts: &OpenOptions) -> Result<Self> {
        Self::open_inner(path, opts, false)
    }

    /// Opens the repository with a new, empty index file (the old one is
    /// deleted, whatever state it is in) and rebuilds it from the files.
    pub fn open_and_rebuild_index(
        path: &Path,
        opts: &OpenOptions,
        progress: &dyn Progress,
    ) -> Result<(Self, RebuildReport)> {
        let mut repo = Self::open_inner(path, opts, true)?;
        let report = repo.rebuild_index(progress)?;
        Ok((repo, report))
    }

    fn open_inner(path: &Path, opts: &OpenOptions, discard_index: bool) -> Result<Self> {
        let backend = Arc::new(LocalBackend::new(path));
        if !backend.exists(CONFIG_FILE)? {
            return Err(Error::NoRepository(path.to_path_buf()));
        }
        let lock = RepoLock::acquire(&path.join(LOCK_FILE), &opts.purpose, opts.lock_wait)?;
        let bytes = backend.read(CONFIG_FILE)?;
        let body =
            format::open_file(&bytes, Kind::Config).map_err(|e| Error::decode("config", e))?;
        let config: Config = format::decode(body).map_err(|e| Error::decode("config", e))?;
        config.validate().map_err(|e| Error::decode("config", e))?;
        let index_path = path.join(INDEX_FILE);
        if discard_index {
            match std::fs::remove_file(&index_path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("removing", &index_path, e)),
            }
        }
        let index = Index::open(&index_path)?;
        let dynb: Arc<dyn Backend> = backend.clone();
        let store = ChunkStore::new(dynb, config, IdHasher::Plain);
        let repo = Repository {
            root: path.to_path_buf(),
            backend,
            store,
            index,
            _lock: lock,
        };
        repo.cleanup_temp_files()?;
        if !discard_index {
            repo.reconcile()?;
        }
        Ok(repo)
    }

    /// The repository folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The config.
    pub fn config(&self) -> &Config {
        self.store.config()
    }

    fn cleanup_temp_files(&self) -> Result<()> {
        self.backend.remove_temp_files("")?;
        self.backend.remove_temp_files("snapshots")?;
        for dir in self.backend.list("packs")? {
            self.backend.remove_temp_files(&format!("packs/{dir}"))?;
        }
        Ok(())
    }

    /// Brings the index in line with the files: adds packs and snapshots it does
    /// not know (written before a crash that came before the index commit), drops
    /// snapshots whose files are gone.
    fn reconcile(&self) -> Result<()> {
        let mut update = IndexUpdate::default();
        let known_packs: std::collections::HashSet<_> =
            self.index.packs()?.into_iter().map(|(id, _)| id).collect();
        for (id, size) in self.pack_files()? {
            if !known_packs.contains(&id) {
                // A damaged pack is left for verify to report; it is not indexed.
                if let Ok(desc) = self.read_pack_description(&id, size) {
                    update.chunks.extend(pack::locations(id, &desc));
                    update.packs.push((id, size));
                }
            }
        }
        let indexed: std::collections::HashMap<SnapshotId, Vec<u8>> =
            self.index.snapshots()?.into_iter().collect();
        let on_disk = self.snapshot_ids()?;
        for id in &on_disk {
            if !indexed.contains_key(id) {
                let bytes = self.backend.read(&snapshot::snapshot_path(id))?;
                if snapshot::decode_record_file(id, &bytes).is_ok() {
                    let body = format::open_file(&bytes, Kind::Snapshot)
                        .map_err(|e| Error::decode("snapshot", e))?;
                    update.snapshots.push((*id, body.to_vec()));
                }
            }
        }
        let on_disk: std::collections::HashSet<_> = on_disk.into_iter().collect();
        update.remove_snapshots = indexed
            .keys()
            .filter(|id| !on_disk.contains(id))
            .copied()
            .collect();
        if !(update.chunks.is_empty()
            && update.packs.is_empty()
            && update.snapshots.is_empty()
            && update.remove_snapshots.is_empty())
        {
            self.index.apply(&update)?;
        }
        Ok(())
    }

    /// Every pack file present, with its size.
    pub(crate) fn pack_files(&self) -> Result<Vec<(crate::id::PackId, u64)>> {
        let mut out = Vec::new();
        for dir in self.backend.list("packs")? {
            for name in self.backend.list(&format!("packs/{dir}"))? {
                if let Some(id) = crate::id::PackId::from_hex(&name) {
                    let size = self.backend.size(&format!("packs/{dir}/{name}"))?;
                    out.push((id, size));
                }
            }
        }
        Ok(out)
    }

    /// Every snapshot id with a file present.
    pub(crate) fn snapshot_ids(&self) -> Result<Vec<SnapshotId>> {
        Ok(self
            .backend
            .list("snapshots")?
            .iter()
            .filter_map(|n| SnapshotId::from_hex(n))
            .collect())
    }

    /// Reads a pack's trailer and description (two ranged reads).
    pub(crate) fn read_pack_description(
        &self,
        id: &crate::id::PackId,
        size: u64,
    ) -> Result<format::PackDescription> {
        let path = pack::pack_path(id);
        let object = format!("pack {}", id.short());
        if size < (format::HEADER_LEN + pack::TRAILER_LEN) as u64 {
            return Err(Error::corrupt(
                object,
                "shorter than a pack header and trailer",
            ));
        }
        let head = self.backend.read_range(&path, 0, format::HEADER_LEN)?;
        format::decode_header(&head, Kind::Pack).map_err(|e| Error::decode(&object, e))?;
        let trailer =
            self.backend
                .read_range(&path, size - pack::TRAILER_LEN as u64, pack::TRAILER_LEN)?;
        let (off, len, sum) =
            pack::parse_trailer(size, &trailer).map_err(|e| Error::decode(&object, e))?;
        let desc = self.backend.read_range(&path, off, len)?;
        pack::parse_description(&desc, &sum, off).map_err(|e| Error::decode(&object, e))
    }

    /// All snapshots, oldest first.
    pub fn list(&self) -> Result<Vec<Snapshot>> {
        let mut out = Vec::new();
        for (id, body) in self.index.snapshots()? {
            let record = snapshot::decode_record_body(&id, &body)?;
            out.push(Snapshot { id, record });
        }
        out.sort_by_key(|s| (s.record.time_ns, s.id));
        Ok(out)
    }

    /// The snapshot `spec` names (`latest`, an id, or a unique prefix).
    pub fn resolve(&self, spec: &str) -> Result<Snapshot> {
        let all = self.list()?;
        snapshot::resolve(spec, &all).cloned()
    }

    /// Stored size of the repository (packs, snapshots, config, index).
    pub fn stored_bytes(&self) -> Result<u64> {
        let packs: u64 = self.index.packs()?.iter().map(|(_, s)| s).sum();
        Ok(packs)
    }

    pub(crate) fn check_cancel(progress: &dyn Progress) -> Result<()> {
        if progress.cancelled() {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    }
}
