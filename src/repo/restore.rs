//! Reading files back: `cat` and `restore`. Every chunk is re-hashed, the whole
//! file's BLAKE3 and size are compared with the snapshot record, and a database
//! image passes `PRAGMA integrity_check` before it replaces anything.

use std::fs::OpenOptions;
use std::io::{BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::{Repository, SnapshotOptions};
use crate::backend::local::temp_path_beside;
use crate::error::{Error, Result};
use crate::format::{FileEntry, FileKind, TreeNode};
use crate::id::ChunkId;
use crate::index::IndexReader;
use crate::progress::Progress;
use crate::snapshot::Snapshot;
use crate::sqlite;
use crate::store::tree::TreeReader;
use crate::store::FrameCache;

/// Options of a restore.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Replace an existing target (after saving it as a `pre-restore` snapshot).
    pub force: bool,
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct RestoreReport {
    /// The snapshot restored.
    pub snapshot: Snapshot,
    /// Files written.
    pub written: Vec<PathBuf>,
    /// Bytes written.
    pub bytes: u64,
    /// The safety snapshot of the previous target, if one was taken.
    pub pre_restore: Option<Snapshot>,
    /// Seconds spent in `integrity_check`.
    pub integrity_secs: f64,
}

/// Leaves per batch when streaming a file.
const LEAF_BATCH: usize = 1024;

impl Repository {
    fn node_reader<'a>(
        &'a self,
        reader: &'a IndexReader,
        cache: &'a mut FrameCache,
    ) -> impl FnMut(&ChunkId) -> Result<TreeNode> + 'a {
        move |id: &ChunkId| {
            let loc = reader
                .get(id)?
                .ok_or_else(|| Error::MissingChunk(id.to_hex()))?;
            self.store.read_node(id, &loc, cache)
        }
    }

    /// Streams one file of a snapshot to `out`, verifying every chunk, the size
    /// and the whole-file BLAKE3. On any mismatch it fails (what was written to
    /// `out` must then be discarded by the caller).
    pub fn read_file(
        &self,
        entry: &FileEntry,
        out: &mut dyn Write,
        progress: &dyn Progress,
    ) -> Result<u64> {
        let reader = self.index.reader()?;
        let mut node_cache = FrameCache::default();
        let mut data_cache = FrameCache::default();
        let mut tree = TreeReader::new(entry.root);
        let mut hasher = blake3::Hasher::new();
        let mut written = 0u64;
        progress.phase(&format!("reading {}", entry.name), Some(entry.size));
        loop {
            let mut leaves = Vec::with_capacity(LEAF_BATCH);
            {
                let mut get = self.node_reader(&reader, &mut node_cache);
                while leaves.len() < LEAF_BATCH {
                    match tree.next_leaf(&mut get)? {
                        Some(leaf) => leaves.push(leaf),
                        None => break,
                    }
                }
            }
            if leaves.is_empty() {
                break;
            }
            Repository::check_cancel(progress)?;
            let mut batch_bytes = 0u64;
            for leaf in leaves {
                let loc = reader
                    .get(&leaf.id)?
                    .ok_or_else(|| Error::MissingChunk(leaf.id.to_hex()))?;
                let data = self.store.read_chunk(&leaf.id, &loc, &mut data_cache)?;
                if data.len() as u64 != leaf.len {
                    return Err(Error::corrupt(
                        format!("chunk {}", leaf.id.short()),
                        "length differs from its tree entry",
                    ));
                }
                hasher.update(&data);
                out.write_all(&data)
                    .map_err(|e| Error::io("writing", &entry.name, e))?;
                batch_bytes += data.len() as u64;
            }
            written += batch_bytes;
            progress.advance(batch_bytes);
        }
        if written != entry.size || hasher.finalize().as_bytes() != &entry.blake3 {
            return Err(Error::corrupt(
                format!("file {}", entry.name),
                format!(
                    "reassembled {written} bytes whose checksum does not match the snapshot record"
                ),
            ));
        }
        Ok(written)
    }

    /// Writes one file of a snapshot to a verified temp file beside `target`;
    /// returns the temp path (the caller renames or removes it).
    fn write_verified_temp(
        &self,
        entry: &FileEntry,
        target: &Path,
        progress: &dyn Progress,
    ) -> Result<(PathBuf, u64)> {
        let tmp = temp_path_beside(target);
        let result = (|| {
            let file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(|e| Error::io("creating", &tmp, e))?;
            let mut w = BufWriter::with_capacity(1 << 20, file);
            let n = self.read_file(entry, &mut w, progress)?;
            let file = w
                .into_inner()
                .map_err(|e| Error::io("writing", &tmp, e.into_error()))?;
            file.sync_all().map_err(|e| Error::io("syncing", &tmp, e))?;
            Ok(n)
        })();
        match result {
            Ok(n) => Ok((tmp, n)),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(e)
            }
        }
    }

    /// Restores the database image of snapshot `spec` to `target` (a file path).
    pub fn restore(
        &mut self,
        spec: &str,
        target: &Path,
        opts: &RestoreOptions,
        progress: &dyn Progress,
    ) -> Result<RestoreReport> {
        let snap = self.resolve(spec)?;
        let entry = snap
            .image()
            .ok_or_else(|| {
                Error::corrupt(
                    format!("snapshot {}", snap.id.short()),
                    "has no database image",
                )
            })?
            .clone();
        self.restore_entries(snap, &[entry], target, true, opts, progress)
    }

    /// Restores every file of snapshot `spec` into the folder `dir`.
    pub fn restore_all(
        &mut self,
        spec: &str,
        dir: &Path,
        opts: &RestoreOptions,
        progress: &dyn Progress,
    ) -> Result<RestoreReport> {
        let snap = self.resolve(spec)?;
        if dir.exists() && !dir.is_dir() {
            return Err(Error::BadInput(format!(
                "{} is not a folder",
                dir.display()
            )));
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::io("creating folder", dir, e))?;
        let entries = snap.record.files.clone();
        self.restore_entries(snap, &entries, dir, false, opts, progress)
    }

    fn restore_entries(
        &mut self,
        snap: Snapshot,
        entries: &[FileEntry],
        target: &Path,
        single: bool,
        opts: &RestoreOptions,
        progress: &dyn Progress,
    ) -> Result<RestoreReport> {
        let paths: Vec<PathBuf> = entries
            .iter()
            .map(|e| {
                if single {
                    target.to_path_buf()
                } else {
                    target.join(&e.name)
                }
            })
            .collect();
        for p in &paths {
            if p.is_dir() {
                return Err(Error::BadInput(format!(
                    "{} is a folder; give a file path",
                    p.display()
                )));
            }
            if p.exists() && !opts.force {
                return Err(Error::BadInput(format!(
                    "{} exists; pass --force to replace it (its current state is saved first as a `pre-restore` snapshot)",
                    p.display()
                )));
            }
            if let Some(parent) = p.parent() {
                if !parent.as_os_str().is_empty() && !parent.is_dir() {
                    return Err(Error::BadInput(format!(
                        "folder {} does not exist",
                        parent.display()
                    )));
                }
            }
        }
        // 1. Every file reassembled and verified into temp files; nothing replaced yet.
        let mut temps = Vec::new();
        let mut bytes = 0;
        let mut integrity_secs = 0.0;
        let result = (|| {
            for (entry, path) in entries.iter().zip(&paths) {
                let (tmp, n) = self.write_verified_temp(entry, path, progress)?;
                temps.push(tmp.clone());
                bytes += n;
                if entry.kind == FileKind::Image {
                    progress.phase("integrity_check", None);
                    let t = std::time::Instant::now();
                    sqlite::restore::integrity_check(&tmp)?;
                    integrity_secs += t.elapsed().as_secs_f64();
                }
            }
            Ok(())
        })();
        let cleanup = |temps: &[PathBuf]| {
            for t in temps {
                let _ = std::fs::remove_file(t);
            }
        };
        if let Err(e) = result {
            cleanup(&temps);
            return Err(e);
        }
        // 2. The existing database is saved before it is replaced.
        let mut pre_restore = None;
        for (entry, path) in entries.iter().zip(&paths) {
            if entry.kind == FileKind::Image && path.exists() {
                let opts = SnapshotOptions {
                    tags: vec!["pre-restore".into()],
                    note: format!(
                        "state of {} before restoring {}",
                        path.display(),
                        snap.id.short()
                    ),
                    no_exports: false,
                };
                match self.snapshot(path, &opts, progress) {
                    Ok(s) => pre_restore = Some(s.snapshot),
                    Err(e) => {
                        cleanup(&temps);
                        return Err(match e {
                            Error::NotSqlite { path, why } => Error::BadInput(format!(
                                "{} exists but is not a SQLite database ({why}); move it away first",
                                path.display()
                            )),
                            other => other,
                        });
                    }
                }
            }
        }
        // 3. Swap in.
        for (i, (entry, path)) in entries.iter().zip(&paths).enumerate() {
            let installed = if entry.kind == FileKind::Image {
                sqlite::restore::install(&temps[i], path)
            } else {
                std::fs::rename(&temps[i], path)
                    .map_err(|e| Error::io("renaming into", path, e))
                    .and_then(|_| {
                        crate::backend::local::sync_dir(path.parent().unwrap_or(Path::new(".")))
                    })
            };
            if let Err(e) = installed {
                cleanup(&temps[i..]);
                return Err(e);
            }
        }
        progress.done();
        Ok(RestoreReport {
            snapshot: snap,
            written: paths,
            bytes,
            pre_restore,
            integrity_secs,
        })
    }
}
