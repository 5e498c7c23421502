//! Reading files back: `cat` and `restore`. Every chunk is re-hashed, the whole
//! file's BLAKE3 and size are compared with the snapshot record
//! ([`crate::store::stream`] does the reading, in parallel), and a database image
//! passes `PRAGMA quick_check` (or the check chosen) before it replaces anything;
//! its one fsync runs while SQLite checks it. `restore_guard` holds what is
//! checked and saved before that.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::{restore_guard, Repository};
use crate::error::{Error, Result};
use crate::format::{FileEntry, FileKind};
use crate::fsutil::AtomicFile;
use crate::progress::{operation, Phase, PhaseInfo, Progress};
use crate::snapshot::Snapshot;
use crate::sqlite;
use crate::sqlite::target::{self, Ownership};
use crate::store::stream;

/// Options of a restore.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Replace an existing target (after saving it as a `pre-restore` snapshot).
    pub force: bool,
    /// SQLite's check of the restored image before it is installed (the
    /// checksums are always verified).
    pub check: Check,
    /// With [`Check::Quick`]: run the quick check even when the snapshot
    /// records that the capture's quick check passed on these same bytes
    /// (without it, that check is not repeated: every chunk and the whole
    /// file are verified by checksum, so the image is byte for byte the one
    /// checked, and SQLite would answer the same).
    pub recheck: bool,
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
    /// Seconds spent in SQLite's `quick_check` or `integrity_check` (whichever
    /// [`RestoreOptions::check`] chose).
    pub integrity_secs: f64,
    /// Seconds spent in `PRAGMA foreign_key_check` ([`Check::Full`] only).
    pub foreign_key_secs: Option<f64>,
    /// The quick check was not run again: the capture's quick check passed
    /// on these same bytes (see [`RestoreOptions::recheck`]).
    pub checked_at_capture: bool,
}

impl Repository {
    /// Streams one file of a snapshot to `out`, verifying every chunk, the size
    /// and the file's checksum (store-format.md 4.2: the chunk-list digest in
    /// format 2, the whole-file BLAKE3 in format 1). On any mismatch it fails (what was written to
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
        progress.phase(
            &PhaseInfo::new(Phase::ReadFile)
                .detail(&entry.name)
                .total(Some(entry.size)),
        );
        let streamed = stream::stream_file(
            &entry.name,
            &self.store,
            self.index.reader()?,
            entry.root,
            self.store.format().checksum(),
            out,
            &mut |n| {
                Repository::check_cancel(progress)?;
                progress.advance(n);
                Ok(())
            },
        )?;
        if streamed.bytes != entry.size || streamed.checksum != entry.blake3 {
            return Err(Error::corrupt(
                format!("file {}", entry.name),
                format!(
                    "reassembled {} bytes whose checksum does not match the snapshot record",
                    streamed.bytes
                ),
            ));
        }
        Ok(streamed.bytes)
    }

    /// Checks, from `entry`'s tree nodes alone (no data chunk read), that its
    /// chunks add up to its size and, in format 2, that their list has its
    /// checksum: a writer that cannot take back what it wrote (stdout) calls it
    /// before [`Repository::read_file`], which checks it again at the end.
    /// Format 1's checksum needs the bytes: only the size is checked here.
    pub fn check_chunk_list(&self, entry: &FileEntry) -> Result<()> {
        use crate::format::ChecksumKind;
        let mut reader = crate::store::ChunkReader::new(&self.store, self.index.reader()?);
        let (size, digest) =
            crate::store::tree::size_and_list_digest(entry.root, &mut |id| reader.node(id))?;
        let digest_ok =
            self.store.format().checksum() != ChecksumKind::ChunkList || digest == entry.blake3;
        if size != entry.size || !digest_ok {
            return Err(Error::corrupt(
                format!("file {}", entry.name),
                format!(
                    "its chunk list ({size} bytes) does not match the snapshot record; \
                     nothing was written"
                ),
            ));
        }
        Ok(())
    }

    /// Writes one file of a snapshot to a temp file beside `target`, every chunk
    /// and the whole file verified, and gives it the owner, group and mode of an
    /// existing `target`, or for a new one 0666 less the umask (the user's file,
    /// not a repository file). Returns the temp path (the caller renames or
    /// removes it) and the open file, written but not yet fsynced: the caller
    /// fsyncs it once, while SQLite checks it. Temp files of an earlier restore of
    /// the same target that was killed are removed first.
    fn write_verified_temp(
        &self,
        entry: &FileEntry,
        target: &Path,
        progress: &dyn Progress,
    ) -> Result<(PathBuf, std::fs::File, u64)> {
        remove_stale_temps(target);
        let keep = Ownership::of(target);
        let mode = if keep.is_some() { 0o600 } else { 0o666 };
        // Dropped on error, the AtomicFile removes its temp file.
        let mut file = AtomicFile::create_with_mode(target, mode)?;
        let n = self.read_file(entry, &mut file, progress)?;
        let (tmp, f) = file.into_unsynced()?;
        if let Some(k) = keep {
            if let Err(e) = k.apply(&tmp, target) {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        }
        Ok((tmp, f, n))
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
        let entry = snap.image_entry()?.clone();
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
        let entries: Vec<_> = snap.user_files().cloned().collect();
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
        let mut times = sqlite::restore::CheckTimes::default();
        let checked_at_capture =
            opts.check == Check::Quick && !opts.recheck && self.capture_check_passed(&snap);
        let check = if checked_at_capture {
            Check::None
        } else {
            opts.check
        };
        let result = (|| {
            for ((entry, path), shown) in entries.iter().zip(&paths).zip(&shown) {
                let (tmp, file, n) = self.write_verified_temp(entry, path, progress)?;
                temps.push(tmp.clone());
                bytes += n;
                if entry.kind != FileKind::Image {
                    sync_temp(&file, &tmp)?;
                    continue;
                }
                progress.phase(&PhaseInfo::new(Phase::CheckImage).detail(&shown.to_string_lossy()));
                // The one fsync of the file runs while SQLite checks it (from
                // the page cache); both must succeed before anything is replaced.
                let (synced, checked) = std::thread::scope(|s| {
                    let sync = s.spawn(|| sync_temp(&file, &tmp));
                    let checked = sqlite::restore::check_image(&tmp, shown, check);
                    let synced = sync
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                    (synced, checked)
                });
                let t = checked?;
                synced?;
                times.check_secs += t.check_secs;
                if let Some(fk) = t.foreign_key_secs {
                    *times.foreign_key_secs.get_or_insert(0.0) += fk;
                }
                if opts.live && path.exists() {
                    sqlite::restore::check_live_fit(&tmp, shown)?;
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
                install_file(&temps[i], path).map(|aside| set_aside.extend(aside))
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
            integrity_secs: times.check_secs,
            foreign_key_secs: times.foreign_key_secs,
            checked_at_capture,
        })
    }

    /// Whether the capture's quick check passed on the image of `snap`: its
    /// manifest says `ok`, or says the image is its parent's (`not checked
    /// again: …`) and the parent's passed, with the same image entry. Any doubt (no
    /// manifest, unreadable, over the time budget, failed): false, and the
    /// restore checks.
    fn capture_check_passed(&self, snap: &Snapshot) -> bool {
        let mut snap = snap.clone();
        // A chain of unchanged snapshots each refers to its parent.
        for _ in 0..64 {
            let Some(verdict) = self.manifest_quick_check(&snap) else {
                return false;
            };
            if verdict == "ok" {
                return true;
            }
            // Both ways a snapshot reuses its parent's image say so: "same image as
            // the parent snapshot" (a capture that found the same bytes) and
            // "unchanged since the parent snapshot (its check: …)" (no page read).
            if !verdict.starts_with("not checked again:") {
                return false;
            }
            let Some(parent) = snap.record.parent.and_then(|id| {
                let record = self.read_record(&id).ok()?;
                Some(Snapshot { id, record })
            }) else {
                return false;
            };
            let root = |s: &Snapshot| s.image().map(|f| (f.root, f.blake3, f.size));
            if root(&parent).is_none() || root(&parent) != root(&snap) {
                return false;
            }
            snap = parent;
        }
        false
    }

    /// The `quick_check` verdict of a snapshot's manifest, if it can be read.
    fn manifest_quick_check(&self, snap: &Snapshot) -> Option<String> {
        let entry = snap.file("manifest.json").ok()?;
        if entry.size > 1 << 20 {
            return None;
        }
        let mut bytes = Vec::new();
        self.read_file(entry, &mut bytes, &crate::progress::NoProgress)
            .ok()?;
        let m: crate::snapshot::Manifest = serde_json::from_slice(&bytes).ok()?;
        m.quick_check
    }
}

/// The one fsync of a restored temp file (its folder is fsynced after the rename).
fn sync_temp(file: &std::fs::File, tmp: &Path) -> Result<()> {
    file.sync_all().map_err(|e| Error::io("syncing", tmp, e))
}

/// Renames the verified `temp` onto `path` (a file of the snapshot that is not
/// its database). An existing `path` whose bytes differ is first renamed aside,
/// so nothing the user had is lost; returns that name.
fn install_file(temp: &Path, path: &Path) -> Result<Option<PathBuf>> {
    let mut aside = None;
    if path.exists() {
        // Compared with the verified temp file itself (whatever the format's
        // checksum is); an unreadable file counts as different.
        if !same_bytes(path, temp).unwrap_or(false) {
            aside = Some(target::move_aside_as(path, "pre-restore")?);
        }
    }
    std::fs::rename(temp, path).map_err(|e| Error::io("renaming into", path, e))?;
    crate::fsutil::sync_dir(crate::fsutil::parent_dir(path))?;
    Ok(aside)
}

/// Whether files `a` and `b` hold the same bytes (read a piece at a time).
fn same_bytes(a: &Path, b: &Path) -> std::io::Result<bool> {
    use std::io::Read;
    let (mut fa, mut fb) = (std::fs::File::open(a)?, std::fs::File::open(b)?);
    if fa.metadata()?.len() != fb.metadata()?.len() {
        return Ok(false);
    }
    let (mut ba, mut bb) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    loop {
        let n = fa.read(&mut ba)?;
        if n == 0 {
            // Same length: `b` ends here too.
            return Ok(true);
        }
        fb.read_exact(&mut bb[..n])?;
        if ba[..n] != bb[..n] {
            return Ok(false);
        }
    }
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

#[cfg(test)]
pub(super) mod tests {
    use std::cell::RefCell;

    use super::*;
    use crate::format::{ChecksumKind, FormatVersion, TreeEntry};
    use crate::id::ChunkId;
    use crate::progress::NoProgress;
    use crate::store::tree::TreeBuilder;
    use crate::store::{ChunkReader, KIND_TREE};

    /// A format-2 repository holding one snapshot of a database of a dozen
    /// distinct pages; returns the repository and the snapshot's image entry.
    fn repo_with_snapshot(dir: &Path) -> (Repository, FileEntry) {
        let db = dir.join("app.db");
        let c = rusqlite::Connection::open(&db).expect("db");
        c.execute_batch(
            "PRAGMA page_size = 1024; CREATE TABLE t(x TEXT);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40)
             INSERT INTO t SELECT printf('%d-%s', i, hex(randomblob(200))) FROM n;",
        )
        .expect("fill");
        drop(c);
        let root = dir.join("repo");
        Repository::init(&root).expect("init");
        let mut repo = Repository::open(&root, &crate::repo::OpenOptions::default()).expect("open");
        assert_eq!(repo.store.format(), FormatVersion::NEWEST);
        let opts = crate::repo::SnapshotOptions {
            no_exports: true,
            ..Default::default()
        };
        let s = repo.snapshot(&db, &opts, &NoProgress).expect("snapshot");
        let image = s.snapshot.image().expect("image").clone();
        (repo, image)
    }

    /// The leaves of the tree under `root` (shared with `verify_checksum`'s tests).
    pub(in crate::repo) fn leaves(repo: &Repository, root: ChunkId) -> Vec<TreeEntry> {
        ChunkReader::new(&repo.store, repo.index.reader().expect("reader"))
            .leaves(root)
            .expect("leaves")
    }

    /// Stores a tree listing `list` (chunks the repository holds); returns its root.
    pub(in crate::repo) fn store_tree(repo: &Repository, list: &[TreeEntry]) -> ChunkId {
        let reader = RefCell::new(repo.index.reader().expect("reader"));
        let written = RefCell::new(Vec::new());
        let mut session = repo.indexing_session(&reader, &written);
        let mut tree = TreeBuilder::new(repo.store.config().tree_fanout);
        for e in list {
            tree.push(*e, &mut |node| session.put(KIND_TREE, node))
                .expect("push");
        }
        let root = tree
            .finish(&mut |node| session.put(KIND_TREE, node))
            .expect("finish");
        session.finish().expect("session");
        root
    }

    fn read(repo: &Repository, entry: &FileEntry) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        repo.read_file(entry, &mut out, &NoProgress).map(|_| out)
    }

    /// Format 2: every chunk checks against its id, and the chunk-list digest
    /// in the record catches a tree whose (valid, stored) chunks are in another
    /// order, fewer, or other chunks of the same length.
    #[test]
    fn format_2_restore_detects_a_reordered_missing_or_substituted_chunk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (repo, image) = repo_with_snapshot(dir.path());
        let list = leaves(&repo, image.root);
        assert!(list.len() >= 8, "{} pages", list.len());
        assert_eq!(
            image.blake3,
            crate::format::checksum::chunk_list_digest(&list),
            "the record holds the chunk-list digest"
        );
        let bytes = read(&repo, &image).expect("the snapshot reads");
        assert_eq!(bytes.len() as u64, image.size);
        assert_eq!(repo.store.format().checksum(), ChecksumKind::ChunkList);

        // The same list stored again is the same tree, and reads.
        assert_eq!(store_tree(&repo, &list), image.root);

        let (a, b) = (2, 5);
        assert_ne!(list[a].id, list[b].id, "distinct pages");
        let mut reordered = list.clone();
        reordered.swap(a, b);
        let mut substituted = list.clone();
        substituted[a] = list[b];
        let mut missing = list.clone();
        missing.remove(a);
        for (what, damaged, same_size) in [
            ("reordered", reordered, true),
            ("substituted", substituted, true),
            ("missing", missing, false),
        ] {
            let root = store_tree(&repo, &damaged);
            let entry = FileEntry {
                root,
                ..image.clone()
            };
            let e = read(&repo, &entry).expect_err(what);
            assert_eq!(e.kind(), crate::ErrorKind::Corrupt, "{what}: {e}");
            assert!(
                e.to_string().contains("checksum does not match"),
                "{what}: {e}"
            );
            if same_size {
                // Only the digest tells: the size is right, every chunk is valid.
                let total: u64 = damaged.iter().map(|l| l.len).sum();
                assert_eq!(total, image.size, "{what}");
            }
        }
    }
}
