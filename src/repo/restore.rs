//! Reading files back: `cat` and `restore`. Every chunk is re-hashed, the whole
//! file's BLAKE3 and size are compared with the snapshot record, and a database
//! image passes `PRAGMA integrity_check` (or the check chosen) before it replaces
//! anything; `restore_guard` holds what is checked and saved before that.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;

use super::{restore_guard, Repository};
use crate::error::{Error, Result};
use crate::format::{FileEntry, FileKind};
use crate::fsutil::AtomicFile;
use crate::id::PackId;
use crate::progress::{operation, Phase, PhaseInfo, Progress};
use crate::snapshot::Snapshot;
use crate::sqlite;
use crate::sqlite::target::{self, Ownership};
use crate::store::tree::TreeReader;
use crate::store::{ChunkLoc, ChunkReader};

/// Options of a restore.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Replace an existing target (after saving it as a `pre-restore` snapshot).
    pub force: bool,
    /// SQLite's check of the restored image before it is installed (the
    /// checksums are always verified).
    pub check: Check,
    /// Restore into the existing database through SQLite (backup API) instead of
    /// replacing the file, so that applications holding connections see the
    /// restored content. Without it, a target another process has open is
    /// refused ([`ErrorKind::InUse`](crate::ErrorKind::InUse), with
    /// [`Remedy::Live`](crate::Remedy::Live)): the application must close its connections
    /// first, then call [`Repository::restore_snapshot`].
    pub live: bool,
}

pub use crate::sqlite::restore::Check;

/// What a restore did.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RestoreReport {
    /// The snapshot restored.
    pub snapshot: Snapshot,
    /// Files written (symbolic links followed: the files that hold the bytes).
    pub written: Vec<PathBuf>,
    /// Bytes written.
    pub bytes: u64,
    /// The safety snapshot of the previous target, if one was taken.
    pub pre_restore: Option<Snapshot>,
    /// The safety snapshot is a raw copy of a database SQLite could not read.
    pub pre_restore_raw: bool,
    /// With a hot journal beside the target: the first safety snapshot, of the
    /// bytes as found (the journal not rolled back), taken before SQLite rolled
    /// the journal back; `pre_restore` is then the state after the rollback.
    pub pre_restore_as_found: Option<Snapshot>,
    /// The image was copied into the existing database through SQLite
    /// (`--live` onto an existing file); false when a file was installed.
    pub live: bool,
    /// Files kept by renaming them aside (replaced non-database files, stale
    /// journals), with their new names.
    pub set_aside: Vec<PathBuf>,
    /// Seconds spent in SQLite's check.
    pub integrity_secs: f64,
}

/// Leaves per batch when streaming a file.
const LEAF_BATCH: usize = 1024;

impl Repository {
    /// Streams one file of a snapshot to `out`, verifying every chunk, the size
    /// and the whole-file BLAKE3. On any mismatch it fails (what was written to
    /// `out` must then be discarded by the caller).
    pub fn read_file(
        &self,
        entry: &FileEntry,
        out: &mut dyn Write,
        progress: &dyn Progress,
    ) -> Result<u64> {
        operation(progress, |p| self.read_file_inner(entry, out, p))
    }

    fn read_file_inner(
        &self,
        entry: &FileEntry,
        out: &mut dyn Write,
        progress: &dyn Progress,
    ) -> Result<u64> {
        let mut reader = ChunkReader::new(&self.store, self.index.reader()?);
        let mut frames: HashMap<(PackId, u64), Arc<Vec<u8>>> = HashMap::new();
        let mut tree = TreeReader::new(entry.root);
        let mut hasher = blake3::Hasher::new();
        let mut written = 0u64;
        progress.phase(
            &PhaseInfo::new(Phase::ReadFile)
                .detail(&entry.name)
                .total(Some(entry.size)),
        );
        loop {
            let mut leaves = Vec::with_capacity(LEAF_BATCH);
            while leaves.len() < LEAF_BATCH {
                match reader.next_leaf(&mut tree)? {
                    Some(leaf) => leaves.push(leaf),
                    None => break,
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
        reader: &ChunkReader<'_>,
        leaves: &[crate::format::TreeEntry],
        frames: &mut HashMap<(PackId, u64), Arc<Vec<u8>>>,
    ) -> Result<Vec<u8>> {
        let locs = leaves
            .iter()
            .map(|l| reader.locate(&l.id))
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
    /// earlier restore of the same target that was killed are removed first. The
    /// temp file gets the owner, group and mode of an existing `target`, or for a
    /// new one 0666 less the umask (the user's file, not a repository file).
    fn write_verified_temp(
        &self,
        entry: &FileEntry,
        target: &Path,
        progress: &dyn Progress,
    ) -> Result<(PathBuf, u64)> {
        remove_stale_temps(target);
        let keep = Ownership::of(target);
        let mode = if keep.is_some() { 0o600 } else { 0o666 };
        // Dropped on error, the AtomicFile removes its temp file.
        let mut file = AtomicFile::create_with_mode(target, mode)?;
        let n = self.read_file(entry, &mut file, progress)?;
        let tmp = file.keep_temp()?;
        if let Some(k) = keep {
            if let Err(e) = k.apply(&tmp, target) {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        }
        Ok((tmp, n))
    }

    /// Restores the database image of snapshot `spec` to `target` (a file path).
    pub fn restore(
        &mut self,
        spec: &str,
        target: &Path,
        opts: &RestoreOptions,
        progress: &dyn Progress,
    ) -> Result<RestoreReport> {
        operation(progress, |p| {
            let snap = self.resolve(spec)?;
            self.restore_snapshot(snap, target, opts, p)
        })
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
        operation(progress, |p| {
            let snap = self.snapshot_at(db, time_ns)?;
            self.restore_snapshot(snap, target, opts, p)
        })
    }

    /// Restores the database image of `snap` to `target`.
    pub fn restore_snapshot(
        &mut self,
        snap: Snapshot,
        target: &Path,
        opts: &RestoreOptions,
        progress: &dyn Progress,
    ) -> Result<RestoreReport> {
        operation(progress, |p| {
            self.restore_snapshot_inner(snap, target, opts, p)
        })
    }

    fn restore_snapshot_inner(
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
        operation(progress, |p| self.restore_all_inner(snap, dir, opts, p))
    }

    fn restore_all_inner(
        &mut self,
        snap: Snapshot,
        dir: &Path,
        opts: &RestoreOptions,
        progress: &dyn Progress,
    ) -> Result<RestoreReport> {
        if dir.exists() && !dir.is_dir() {
            return Err(Error::invalid_input(format!(
                "{} is not a folder",
                dir.display()
            )));
        }
        restore_guard::refuse_inside_repository(dir)?;
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
        let shown: Vec<PathBuf> = entries
            .iter()
            .map(|e| {
                if single {
                    target.to_path_buf()
                } else {
                    target.join(&e.name)
                }
            })
            .collect();
        // Symbolic links are kept: the file they name is restored.
        let paths = shown
            .iter()
            .map(|p| target::resolve_links(p))
            .collect::<Result<Vec<_>>>()?;
        for ((entry, p), shown) in entries.iter().zip(&paths).zip(&shown) {
            if p.is_dir() {
                return Err(Error::invalid_input(format!(
                    "{} is a folder; give a file path",
                    shown.display()
                )));
            }
            if p.exists() && !opts.force {
                if !single {
                    return Err(Error::refused(format!(
                        "{} exists; a forced restore replaces the snapshot's files in {} (the database is first saved as a `pre-restore` snapshot; any other file whose content differs is renamed to NAME.pre-restore-PID)",
                        shown.display(),
                        target.display()
                    ))
                    .with_remedy(crate::error::Remedy::Force));
                }
                return Err(Error::refused(format!(
                    "{} exists; a forced restore replaces it (its current state is saved first as a `pre-restore` snapshot)",
                    shown.display()
                ))
                .with_remedy(crate::error::Remedy::Force));
            }
            if let Some(parent) = p.parent() {
                if !parent.as_os_str().is_empty() && !parent.is_dir() {
                    return Err(Error::invalid_input(format!(
                        "folder {} does not exist",
                        parent.display()
                    )));
                }
            }
            restore_guard::refuse_inside_repository(p)?;
            if entry.kind == FileKind::Image && p.exists() && !opts.live {
                restore_guard::refuse_in_use(shown, p)?;
                restore_guard::refuse_hard_links(shown, p)?;
            }
        }
        // 1. Every file reassembled and verified into temp files; nothing replaced yet.
        let mut temps = Vec::new();
        let mut bytes = 0;
        let mut integrity_secs = 0.0;
        let result = (|| {
            for ((entry, path), shown) in entries.iter().zip(&paths).zip(&shown) {
                let (tmp, n) = self.write_verified_temp(entry, path, progress)?;
                temps.push(tmp.clone());
                bytes += n;
                if entry.kind == FileKind::Image {
                    progress
                        .phase(&PhaseInfo::new(Phase::CheckImage).detail(&shown.to_string_lossy()));
                    let t = std::time::Instant::now();
                    sqlite::restore::check_image(&tmp, shown, opts.check)?;
                    integrity_secs += t.elapsed().as_secs_f64();
                    if opts.live && path.exists() {
                        sqlite::restore::check_live_fit(&tmp, shown)?;
                    }
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
        // 2. The existing database is saved before it is replaced; a journal that
        // is not its own is set aside first, so SQLite never rolls it into it.
        let mut pre_restore = None;
        let mut pre_restore_raw = false;
        let mut as_found = None;
        let mut set_aside = Vec::new();
        for ((entry, path), shown) in entries.iter().zip(&paths).zip(&shown) {
            if entry.kind == FileKind::Image && path.exists() {
                let saved = (|| {
                    if !opts.live {
                        set_aside.extend(target::settle_journal(path, || {
                            as_found =
                                Some(self.save_before_rollback(shown, path, &snap, progress)?);
                            Ok(())
                        })?);
                    }
                    self.save_pre_restore(shown, path, &snap, progress)
                })();
                match saved {
                    Ok((s, raw)) => {
                        pre_restore = Some(s);
                        pre_restore_raw = raw;
                    }
                    Err(e) => {
                        cleanup(&temps);
                        return Err(e);
                    }
                }
            }
        }
        // 3. Swap in.
        let mut live = false;
        for (i, (entry, path)) in entries.iter().zip(&paths).enumerate() {
            let installed = if entry.kind == FileKind::Image {
                if opts.live && path.exists() {
                    live = true;
                    sqlite::restore::install_live(&temps[i], path).map(|()| {
                        let _ = std::fs::remove_file(&temps[i]);
                    })
                } else {
                    sqlite::restore::install(&temps[i], path).map(|aside| set_aside.extend(aside))
                }
            } else {
                install_file(&temps[i], path, entry).map(|aside| set_aside.extend(aside))
            };
            if let Err(e) = installed {
                cleanup(&temps[i..]);
                return Err(e);
            }
        }
        Ok(RestoreReport {
            snapshot: snap,
            written: paths,
            bytes,
            pre_restore,
            pre_restore_raw,
            pre_restore_as_found: as_found,
            live,
            set_aside,
            integrity_secs,
        })
    }
}

/// Renames the verified `temp` onto `path` (a file of the snapshot that is not
/// its database). An existing `path` whose bytes differ is first renamed aside,
/// so nothing the user had is lost; returns that name.
fn install_file(temp: &Path, path: &Path, entry: &FileEntry) -> Result<Option<PathBuf>> {
    let mut aside = None;
    if path.exists() {
        let same = std::fs::read(path)
            .map(|b| b.len() as u64 == entry.size && blake3::hash(&b).as_bytes() == &entry.blake3)
            .unwrap_or(false);
        if !same {
            aside = Some(target::move_aside_as(path, "pre-restore")?);
        }
    }
    std::fs::rename(temp, path).map_err(|e| Error::io("renaming into", path, e))?;
    crate::fsutil::sync_dir(crate::fsutil::parent_dir(path))?;
    Ok(aside)
}

/// Removes `.tmp-<name>-<16 hex>` files beside `target`: what a killed restore of
/// this target left (see `fsutil::temp_path_beside`).
fn remove_stale_temps(target: &Path) {
    let Some(name) = target.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return;
    };
    let prefix = format!("{}{name}-", crate::fsutil::TEMP_PREFIX);
    let dir = crate::fsutil::parent_dir(target);
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
