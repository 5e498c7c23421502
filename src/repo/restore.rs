//! Reading files back: `cat` and `restore`. Every chunk is re-hashed, the whole
//! file's BLAKE3 and size are compared with the snapshot record, and a database
//! image passes `PRAGMA integrity_check` before it replaces anything.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;

use super::{Repository, SnapshotOptions};
use crate::backend::local::AtomicFile;
use crate::error::{Error, Result};
use crate::format::{FileEntry, FileKind, TreeNode};
use crate::id::{ChunkId, PackId};
use crate::index::IndexReader;
use crate::progress::Progress;
use crate::snapshot::Snapshot;
use crate::sqlite;
use crate::store::tree::TreeReader;
use crate::store::{ChunkLoc, FrameCache};

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
        let mut frames: HashMap<(PackId, u64), Arc<Vec<u8>>> = HashMap::new();
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
            let buf = self.read_batch(&reader, &leaves, &mut frames)?;
            hasher.update_rayon(&buf);
            out.write_all(&buf)
                .map_err(|e| Error::io("writing", &entry.name, e))?;
            written += buf.len() as u64;
            progress.advance(buf.len() as u64);
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

    /// Reads a batch of leaves into one buffer: frames fetched in order, then
    /// decoded in parallel; every chunk re-hashed in parallel. `frames` carries the
    /// last frame over to the next batch (consecutive chunks share frames).
    fn read_batch(
        &self,
        reader: &IndexReader,
        leaves: &[crate::format::TreeEntry],
        frames: &mut HashMap<(PackId, u64), Arc<Vec<u8>>>,
    ) -> Result<Vec<u8>> {
        let locs = leaves
            .iter()
            .map(|l| {
                reader
                    .get(&l.id)?
                    .ok_or_else(|| Error::MissingChunk(l.id.to_hex()))
            })
            .collect::<Result<Vec<ChunkLoc>>>()?;
        let mut wanted: Vec<&ChunkLoc> = Vec::new();
        let mut seen: HashSet<(PackId, u64)> = HashSet::new();
        for loc in &locs {
            let key = (loc.pack, loc.frame_offset);
            if !frames.contains_key(&key) && seen.insert(key) {
                wanted.push(loc);
            }
        }
        let stored = wanted
            .iter()
            .map(|l| self.store.fetch_frame(l))
            .collect::<Result<Vec<_>>>()?;
        let decoded = wanted
            .par_iter()
            .zip(stored.par_iter())
            .map(|(l, s)| {
                self.store
                    .decode_frame(l, s)
                    .map(|raw| ((l.pack, l.frame_offset), Arc::new(raw)))
            })
            .collect::<Result<Vec<_>>>()?;
        frames.extend(decoded);
        let total: usize = leaves.iter().map(|l| l.len as usize).sum();
        let mut buf = Vec::with_capacity(total);
        let mut spans = Vec::with_capacity(leaves.len());
        for (leaf, loc) in leaves.iter().zip(&locs) {
            let raw = &frames[&(loc.pack, loc.frame_offset)];
            let data = raw
                .get(loc.offset as usize..(loc.offset + loc.len) as usize)
                .ok_or_else(|| {
                    Error::corrupt(format!("chunk {}", leaf.id.short()), "outside its frame")
                })?;
            if data.len() as u64 != leaf.len {
                return Err(Error::corrupt(
                    format!("chunk {}", leaf.id.short()),
                    "length differs from its tree entry",
                ));
            }
            spans.push((buf.len(), data.len()));
            buf.extend_from_slice(data);
        }
        leaves
            .par_iter()
            .zip(locs.par_iter())
            .zip(spans.par_iter())
            .try_for_each(|((leaf, loc), (at, len))| {
                self.store.check_chunk(&leaf.id, &buf[*at..at + len], loc)
            })?;
        // Keep only the last frame: the next batch most likely starts inside it.
        if let Some(last) = locs.last() {
            let key = (last.pack, last.frame_offset);
            frames.retain(|k, _| *k == key);
        }
        Ok(buf)
    }

    /// Writes one file of a snapshot to a verified temp file beside `target`;
    /// returns the temp path (the caller renames or removes it). Temp files of an
    /// earlier restore of the same target that was killed are removed first.
    fn write_verified_temp(
        &self,
        entry: &FileEntry,
        target: &Path,
        progress: &dyn Progress,
    ) -> Result<(PathBuf, u64)> {
        remove_stale_temps(target);
        // Dropped on error, the AtomicFile removes its temp file.
        let mut file = AtomicFile::create(target)?;
        let n = self.read_file(entry, &mut file, progress)?;
        Ok((file.keep_temp()?, n))
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
        self.restore_snapshot(snap, target, opts, progress)
    }

    /// Restores the newest snapshot of `db` (or of the repository's only database)
    /// taken at or before `time_ns` to `target`.
    pub fn restore_at(
        &mut self,
        db: Option<&Path>,
        time_ns: i64,
        target: &Path,
        opts: &RestoreOptions,
        progress: &dyn Progress,
    ) -> Result<RestoreReport> {
        let snap = self.snapshot_at(db, time_ns)?;
        self.restore_snapshot(snap, target, opts, progress)
    }

    /// Restores the database image of `snap` to `target`.
    pub fn restore_snapshot(
        &mut self,
        snap: Snapshot,
        target: &Path,
        opts: &RestoreOptions,
        progress: &dyn Progress,
    ) -> Result<RestoreReport> {
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

    /// Restores every file of `snap` into the folder `dir`.
    pub fn restore_all(
        &mut self,
        snap: Snapshot,
        dir: &Path,
        opts: &RestoreOptions,
        progress: &dyn Progress,
    ) -> Result<RestoreReport> {
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
                        crate::backend::local::sync_dir(crate::backend::local::parent_dir(path))
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

/// Removes `.tmp-<name>-<16 hex>` files beside `target`: what a killed restore of
/// this target left (see `backend::local::temp_path_beside`).
fn remove_stale_temps(target: &Path) {
    let Some(name) = target.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return;
    };
    let prefix = format!("{}{name}-", crate::backend::local::TEMP_PREFIX);
    let dir = crate::backend::local::parent_dir(target);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        if let Some(rest) = file.strip_prefix(&prefix) {
            if rest.len() == 16 && rest.bytes().all(|b| b.is_ascii_hexdigit()) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}
