//! Taking a snapshot: capture (on its own thread: the pages copied in one read
//! transaction, then everything else read from that copy, `sqlite::staging`)
//! feeds chunks through a bounded channel to the store session on this thread,
//! which hashes and compresses them in parallel. Commit order: packs, then the snapshot
//! file, then the index (see `store-format.md`, "Write order and recovery").

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, SyncSender};

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::export_render::ParentExport;
use super::Repository;
use crate::chunker::{ByteChunker, ByteParams, PageChunker, PageParams};
use crate::error::{Error, PartialData, Repr, Result, StopCause};
use crate::export::{self, Table};
use crate::format::{
    ChecksumKind, FileEntry, FileHasher, FileKind, SnapshotRecord, SqliteInfo, TreeEntry,
    EXPORT_MAP_NAME,
};
use crate::id::{ChunkId, IdHasher, PackId, SnapshotId};
use crate::index::{IndexReader, IndexUpdate};
use crate::progress::{Phase, PhaseInfo, Progress};
use crate::snapshot::{self, Manifest, Snapshot};
use crate::sqlite::capture::{self, Piece};
use crate::sqlite::staging::Removal;
use crate::store::tree::TreeBuilder;
use crate::store::{Added, WriteSession, KIND_DATA, KIND_TREE};

/// Options of a snapshot.
#[derive(Debug, Clone, Default)]
pub struct SnapshotOptions {
    /// Tags to attach.
    pub tags: Vec<String>,
    /// A note.
    pub note: String,
    /// Store the image and manifest only: no JSON exports (and so no consistency
    /// check, which rides along the export pass) even for a Lumina database.
    pub no_exports: bool,
    /// Stage the captured pages in the database's kept copy in the cache folder
    /// (`sqlite::kept`: it takes the database's size on disk between
    /// snapshots, lets the next capture write only the pages that changed and
    /// the exports compare changed leaves cell by cell) instead of a temporary
    /// copy written whole and removed afterwards. Off by default: the kept
    /// copy's first, whole write stays on disk, and its write-back made an
    /// app's fsync-ed commits wait up to 1.7 s on the benchmark machine
    /// (BENCHMARKS.md).
    pub kept_copy: bool,
}

/// What a snapshot did.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SnapshotSummary {
    /// The new snapshot.
    pub snapshot: Snapshot,
    /// Chunks that were new.
    pub new_chunks: u64,
    /// The parent's time when it is later than this snapshot's: the clock went
    /// back since the parent was taken (the history still orders this snapshot
    /// after its parent; the caller should say so).
    pub clock_went_back: Option<i64>,
    /// The database's state equalled its parent's (`sqlite::unchanged`): no
    /// page was read; the snapshot reuses the parent's image, exports and
    /// findings (its manifest's `capture_route` is `unchanged`).
    pub unchanged: bool,
    /// Rows of the JSON exports rendered from the database, and rows in them
    /// (the rest was reused from the parent's export segments); `None` when
    /// the snapshot has no exports or reused its parent's whole.
    pub export_rows: Option<ExportRows>,
}

/// How much of a snapshot's JSON exports was rendered (issue #10 item 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportRows {
    /// Rows rendered from the database.
    pub rendered: u64,
    /// Rows in the four exports.
    pub total: u64,
}

/// A snapshot that added at least this many chunks compacts the index after it
/// when the index file has grown well past its last compacted length
/// ([`crate::index::Index::compact_if_grown`]). redb copies the pages a commit
/// changes and grows its file by doubling, so without compaction the index of a
/// 1 GB database grew to several times its live size (BENCHMARKS.md); compacting
/// after every snapshot, though, made a small snapshot's time grow with history.
const COMPACT_AFTER_CHUNKS: u64 = 1;

/// Bytes of chunks sent per batch from the capture thread.
const BATCH_BYTES: usize = 4 << 20;

/// Chunks hashed per task of the thread pool (64 pages of 4 KiB: 256 KiB).
const MIN_CHUNKS_PER_TASK: usize = 64;

enum Msg {
    Begin {
        name: String,
        image: bool,
        size_hint: Option<u64>,
    },
    /// Chunks with their ids (hashed on the capture thread), and their bytes.
    Chunks(Vec<(ChunkId, Vec<u8>)>, u64),
    /// Chunks already stored (a parent's export segments), appended as they are.
    Reused(Vec<TreeEntry>),
    End {
        size: u64,
        blake3: [u8; 32],
    },
}

/// Runs on the capture thread: cuts pieces into chunks, hashes each chunk
/// (its id; several at once on the thread pool) and computes each file's
/// checksum: from the ids in format 2 (each byte hashed once), from the bytes
/// in format 1.
struct ChunkingSink {
    tx: SyncSender<Msg>,
    ids: IdHasher,
    /// Checksum of the last file finished (the image, when exports start).
    finished: std::rc::Rc<std::cell::Cell<Option<[u8; 32]>>>,
    /// Chunks of the current file so far (exports count their segments' chunks).
    file_chunks: std::rc::Rc<std::cell::Cell<u64>>,
    pages: PageChunker,
    bytes: ByteChunker,
    page_size: Option<usize>,
    checksum: ChecksumKind,
    hasher: FileHasher,
    size: u64,
    batch: Vec<(ChunkId, Vec<u8>)>,
    batch_bytes: usize,
}

impl ChunkingSink {
    fn new(
        tx: SyncSender<Msg>,
        ids: IdHasher,
        checksum: ChecksumKind,
        page: PageParams,
        byte: ByteParams,
    ) -> Self {
        ChunkingSink {
            tx,
            ids,
            finished: Default::default(),
            file_chunks: Default::default(),
            pages: PageChunker::new(page),
            bytes: ByteChunker::new(byte),
            page_size: None,
            checksum,
            hasher: FileHasher::new(checksum),
            size: 0,
            batch: Vec::new(),
            batch_bytes: 0,
        }
    }

    fn send(&self, msg: Msg) -> Result<()> {
        // The receiver is gone only when the main thread stopped (error or cancel).
        self.tx.send(msg).map_err(|_| Error::from(Repr::Cancelled))
    }

    fn flush(&mut self) -> Result<()> {
        if !self.batch.is_empty() {
            let batch = std::mem::take(&mut self.batch);
            let n = std::mem::take(&mut self.batch_bytes) as u64;
            self.send(Msg::Chunks(batch, n))?;
        }
        Ok(())
    }

    /// Hashes chunks just cut (their ids, on the thread pool; in format 2 the
    /// file's checksum follows from them, in order) and adds them to the batch.
    fn take_chunks(&mut self, chunks: Vec<Vec<u8>>) {
        self.file_chunks
            .set(self.file_chunks.get() + chunks.len() as u64);
        use rayon::prelude::*;
        let ids: Vec<ChunkId> = chunks
            .par_iter()
            .with_min_len(MIN_CHUNKS_PER_TASK)
            .map(|c| self.ids.chunk_id(c))
            .collect();
        for (id, c) in ids.into_iter().zip(chunks) {
            self.hasher.chunk(&id, c.len() as u64);
            self.batch_bytes += c.len();
            self.batch.push((id, c));
        }
    }

    /// Ends the current byte chunk here: what the byte chunker holds is cut
    /// into its final chunks.
    fn cut_bytes(&mut self) {
        let mut out = Vec::new();
        self.bytes.finish(&mut |c| out.push(c));
        self.take_chunks(out);
    }

    fn accept(&mut self, piece: Piece) -> Result<()> {
        match piece {
            Piece::Begin {
                name,
                page_size,
                size_hint,
            } => {
                self.page_size = page_size.map(|p| p as usize);
                self.hasher = FileHasher::new(self.checksum);
                self.size = 0;
                self.file_chunks.set(0);
                self.send(Msg::Begin {
                    name,
                    image: page_size.is_some(),
                    size_hint,
                })
            }
            Piece::Data(data) => {
                self.hasher.data(&data);
                self.size += data.len() as u64;
                let mut out = Vec::new();
                match self.page_size {
                    Some(ps) => out.extend(data.chunks(ps).filter_map(|p| self.pages.push(p))),
                    None => self.bytes.push(&data, &mut |c| out.push(c)),
                }
                self.take_chunks(out);
                if self.batch_bytes >= BATCH_BYTES {
                    self.flush()?;
                }
                Ok(())
            }
            Piece::Cut | Piece::Reuse(_) if self.page_size.is_some() => {
                Err(Error::internal("a cut inside a page image"))
            }
            Piece::Cut => {
                self.cut_bytes();
                Ok(())
            }
            Piece::Reuse(entries) => {
                if self.checksum != ChecksumKind::ChunkList {
                    return Err(Error::internal(
                        "reused chunks need the chunk-list checksum",
                    ));
                }
                self.cut_bytes();
                self.flush()?;
                self.file_chunks
                    .set(self.file_chunks.get() + entries.len() as u64);
                for e in &entries {
                    self.hasher.chunk(&e.id, e.len);
                    self.size += e.len;
                }
                self.send(Msg::Reused(entries))
            }
            Piece::End => {
                let mut out = Vec::new();
                match self.page_size {
                    Some(_) => out.extend(self.pages.finish()),
                    None => self.bytes.finish(&mut |c| out.push(c)),
                }
                self.take_chunks(out);
                self.flush()?;
                let blake3 = self.hasher.finish();
                self.finished.set(Some(blake3));
                self.send(Msg::End {
                    size: self.size,
                    blake3,
                })
            }
        }
    }
}

/// What the capture read besides the image (from the captured copy).
struct Extra {
    /// The image equals the parent's: its exports were reused, not rewritten.
    reused_exports: bool,
    /// Rows of the exports rendered, and in all (when exports were written).
    export_rows: Option<ExportRows>,
    lumina: bool,
    tables: Vec<(String, u64)>,
    warnings: Vec<String>,
    /// The quick check's verdict for the manifest (`sqlite::check`).
    quick_check: String,
}

impl Extra {
    /// A raw capture: nothing read through SQLite; the one warning says so.
    fn raw(warning: Option<String>) -> Extra {
        Extra {
            reused_exports: false,
            export_rows: None,
            lumina: false,
            tables: Vec::new(),
            warnings: warning.into_iter().collect(),
            quick_check: "not checked: a raw copy of the file's bytes, not read through SQLite"
                .into(),
        }
    }
}

/// The name the image gets inside the snapshot: the source's file name, unless
/// that would collide with an export or the manifest.
fn image_name(source: &Path) -> String {
    let name = source
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let reserved = name == "manifest.json"
        || name == EXPORT_MAP_NAME
        || Table::all().iter().any(|t| t.file_name() == name);
    if name.is_empty() || reserved {
        "database.db".to_string()
    } else {
        name
    }
}

impl Repository {
    /// Takes a snapshot of the SQLite database at `db` (which may be in use).
    ///
    /// A snapshot that fails before its record is written leaves nothing: the
    /// packs it wrote are dropped from the index and deleted (`repo::partial`).
    /// Cancelled (through `progress`) or out of space, it fails with
    /// an error ([`Error::is_cancelled`] or [`Error::is_no_space`]) whose
    /// [`Error::partial_data`] says what became of that data.
    pub fn snapshot(
        &mut self,
        db: &Path,
        opts: &SnapshotOptions,
        progress: &dyn Progress,
    ) -> Result<SnapshotSummary> {
        crate::progress::operation(progress, |p| self.snapshot_from(db, opts, p, None))
    }

    /// A snapshot of the bytes of the file at `db` as they are, without SQLite
    /// (a damaged database before a restore replaces it); `warning` is recorded in
    /// its manifest. Nobody may write the file meanwhile.
    pub(crate) fn snapshot_raw(
        &mut self,
        db: &Path,
        opts: &SnapshotOptions,
        warning: String,
        progress: &dyn Progress,
    ) -> Result<SnapshotSummary> {
        self.snapshot_from(db, opts, progress, Some(warning))
    }

    /// Takes the snapshot; when it stops before its record is written
    /// (cancelled, disk full), removes the packs it wrote and says so.
    fn snapshot_from(
        &mut self,
        db: &Path,
        opts: &SnapshotOptions,
        progress: &dyn Progress,
        raw: Option<String>,
    ) -> Result<SnapshotSummary> {
        let written = RefCell::new(Vec::new());
        let record = Cell::new(None);
        let err = match self.snapshot_inner(db, opts, progress, raw, &written, &record) {
            Ok(s) => return Ok(s),
            Err(e) => e,
        };
        // Its record was written (the commit point): the snapshot stands, and
        // its packs with it, whatever failed after.
        if let Some(id) = record.get() {
            if self
                .backend
                .exists(&snapshot::snapshot_path(&id))
                .unwrap_or(true)
            {
                return Err(err);
            }
        }
        let packs = written.into_inner();
        let total: u64 = packs.iter().map(|(_, s)| s).sum();
        let removed = if packs.is_empty() {
            0
        } else {
            self.discard_packs(&packs).unwrap_or(0)
        };
        let partial = match (total, total - removed.min(total)) {
            (0, _) => PartialData::None,
            (t, 0) => PartialData::Removed(t),
            (_, left) => PartialData::Left(left),
        };
        let cause = match &err {
            e if matches!(e.repr(), Repr::Cancelled) => Some(StopCause::Cancelled),
            e => super::partial::no_space(e, self.index.path()).map(StopCause::NoSpace),
        };
        match cause {
            Some(cause) => Err(Repr::SnapshotNotRecorded { cause, partial }.into()),
            None => Err(err),
        }
    }

    fn snapshot_inner(
        &mut self,
        db: &Path,
        opts: &SnapshotOptions,
        progress: &dyn Progress,
        raw: Option<String>,
        written: &RefCell<Vec<(PackId, u64)>>,
        record_id: &Cell<Option<SnapshotId>>,
    ) -> Result<SnapshotSummary> {
        let source: PathBuf = std::fs::canonicalize(db).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Repr::NoSuchDatabase(db.to_path_buf()).into(),
            _ => Error::io("resolving", db, e),
        })?;
        for t in &opts.tags {
            snapshot::check_tag(t)?;
        }
        // Reported before the wait for another connection's lock, which the
        // caller may cancel.
        progress.phase(&PhaseInfo::new(Phase::OpenDatabase).detail(&source.to_string_lossy()));
        // No lock yet: the capture's one read transaction begins below.
        let conn = match raw {
            None => Some(capture::open_source_unlocked(&source)?),
            Some(_) => None,
        };
        let source_str = source.to_string_lossy().into_owned();
        // The newest of this database in history order, from the records'
        // heads (not the whole history decoded).
        let (parent_snap, seq) = self.newest_of(&source_str)?;
        let parent = parent_snap.as_ref().map(|s| s.id);
        let parent_time = parent_snap.as_ref().map(|s| s.record.time_ns);
        let now: OffsetDateTime = crate::testhook::now();
        let timestamp = now
            .format(&Rfc3339)
            .map_err(|e| Error::internal(format!("the clock cannot be formatted: {e}")))?;
        let config = self.store.config().clone();
        let img_name = image_name(&source);

        // The parent's chunk list (for exports reuse, dedup hints and unchanged
        // snapshots) is trusted only while the index is known to hold every
        // chunk snapshots reference: after a lost pack the parent may name chunks
        // that are gone, and a new snapshot must never reference a chunk it has
        // not confirmed present.
        let trust_parent = self.index.refs_complete()?;
        let parent_snap = parent_snap.filter(|_| trust_parent);
        // The capture's read transaction begins here, once: the state is read
        // in it, and a database in its parent's state is not read (issue #10
        // item 2); otherwise the same transaction copies the pages.
        let source_state = match &conn {
            Some(c) => {
                use crate::sqlite::unchanged;
                let before = unchanged::before_read(&source);
                capture::begin_read_until(c, &source, &|| progress.cancelled())?;
                unchanged::in_read(c, &source, before)
            }
            None => None,
        };
        if let (Some(p), Some(state), Some(c)) = (&parent_snap, &source_state, &conn) {
            let same = crate::sqlite::unchanged::same(p.record.source_state.as_ref(), state);
            if same {
                // Nothing more is read from the source.
                capture::end_read(c, &source)?;
            }
            let reused = same.then(|| self.reusable(p, opts)).flatten();
            if same && reused.is_none() {
                // The parent cannot serve (rare): the pages are read after all.
                capture::begin_read_until(c, &source, &|| progress.cancelled())?;
            }
            if let Some(reused) = reused {
                let state = state.clone();
                drop(conn);
                let new = super::unchanged::NewSnapshot {
                    source: source_str,
                    parent: p,
                    seq,
                    now,
                    timestamp,
                    state,
                };
                return self.snapshot_unchanged(reused, new, opts, progress, written, record_id);
            }
        }

        let reader = RefCell::new(self.index.reader()?);
        let mut session = self.indexing_session(&reader, written);
        // One batch queued while the next is cut: the store session is the
        // slower side, so a deeper queue only holds more memory (4 MiB a batch).
        let (tx, rx) = sync_channel::<Msg>(1);

        let (source_ref, img_name_ref, timestamp_ref, no_exports) =
            (&source, &img_name, &timestamp, opts.no_exports);
        let staging = if opts.kept_copy {
            capture::Staging::Kept
        } else {
            capture::Staging::Temporary
        };
        let (page_params, byte_params) = (config.page_chunker, config.byte_chunker);
        let id_hasher = self.store.hasher().clone();
        let checksum = self.store.format().checksum();
        let reuse = parent_snap.as_ref().and_then(|p| {
            let all = Table::all().iter().all(|t| p.file(t.file_name()).is_ok());
            let image = p.image()?;
            all.then(|| Reuse {
                image_blake3: image.blake3,
                warnings: p.record.warnings.clone(),
            })
        });
        let reuse_ref = reuse.as_ref();
        let parent_leaves = match parent_snap.as_ref().and_then(|p| p.image()) {
            Some(img) => Some(ParentLeaves {
                reader: crate::store::ChunkReader::new(&self.store, self.index.reader()?),
                tree: crate::store::tree::TreeReader::new(img.root),
                done: false,
            }),
            None => None,
        };
        // The exports wait for the image to be stored (which pages equal the
        // parent's) and for the parent's export map, loaded meanwhile.
        let (handoff_tx, handoff_rx) = std::sync::mpsc::channel::<Handoff>();
        let load_parent = || {
            parent_snap
                .as_ref()
                .map(|p| self.parent_exports(p))
                .unwrap_or_default()
        };
        let page_chunks = page_params.avg_pages == 1 && page_params.max_pages == 1;
        let (files, info, extra, removal) = std::thread::scope(|s| -> Result<_> {
            let capture_thread = s.spawn(move || {
                let conn = conn;
                let mut state =
                    ChunkingSink::new(tx, id_hasher, checksum, page_params, byte_params);
                let finished = state.finished.clone();
                let mut inputs = ExportInputs {
                    handoff: handoff_rx,
                    file_chunks: state.file_chunks.clone(),
                    no_exports,
                    segmented: checksum == ChecksumKind::ChunkList,
                    page_chunks,
                    previous: Default::default(),
                    ids: state.ids.clone(),
                };
                let mut sink = |piece: Piece| state.accept(piece);
                let Some(conn) = conn else {
                    let info =
                        crate::sqlite::raw::capture_raw(source_ref, img_name_ref, &mut sink)?;
                    return Ok((info, Extra::raw(raw), Removal::default()));
                };
                // The copy runs on its own thread; the cancel request is looked
                // at here, while the copy is sent on behind it.
                let tick = || Repository::check_cancel(progress);
                capture::capture_begun(
                    conn,
                    source_ref,
                    img_name_ref,
                    staging,
                    &mut sink,
                    &tick,
                    |image, sink, check, previous| {
                        inputs.previous = previous;
                        read_extra(
                            image,
                            sink,
                            check,
                            timestamp_ref,
                            finished.get(),
                            reuse_ref,
                            inputs,
                        )
                    },
                )
            });
            let files = consume(
                rx,
                &mut session,
                config.tree_fanout,
                progress,
                parent_leaves,
                Some(HandoffTo {
                    tx: handoff_tx,
                    load: &load_parent,
                    parent_ids: opts.kept_copy,
                }),
            );
            let captured = capture_thread
                .join()
                .map_err(|_| Error::internal("the capture thread panicked"))?;
            // A capture error explains a consumer that stopped early, so it wins;
            // but the capture's "cancelled" (the consumer hung up) only echoes
            // the consumer's own error (no space, cancelled), which then wins.
            match (captured, files) {
                (Err(c), Err(e)) if matches!(c.repr(), Repr::Cancelled) => Err(e),
                (Err(e), _) => Err(e),
                (Ok((info, extra, removal)), files) => Ok((files?, info, extra, removal)),
            }
        })?;
        // The temporary copy is removed meanwhile; waited for when this returns.
        let _removal = removal;

        let mut extra = extra;
        if let Some(note) = info.staging_note.clone() {
            extra.warnings.push(note);
        }
        let capture_route = info.capture_route.map(str::to_string);
        let sqlite = SqliteInfo {
            page_size: info.page_size,
            page_count: info.page_count,
            user_version: info.user_version,
            sqlite_version: info.sqlite_version,
            journal_mode: info.journal_mode,
            lumina: extra.lumina,
        };
        let manifest = Manifest {
            manifest_version: 1,
            source: source_str.clone(),
            time: timestamp.clone(),
            sqlite: sqlite.clone(),
            tables: extra.tables.iter().cloned().collect(),
            warnings: extra.warnings.clone(),
            quick_check: Some(extra.quick_check.clone()),
            capture_route,
        };
        let mut manifest_json =
            serde_json::to_vec_pretty(&manifest).map_err(|e| Error::internal(e.to_string()))?;
        manifest_json.push(b'\n');
        let mut files = files;
        if extra.reused_exports {
            if let Some(p) = &parent_snap {
                files.extend(
                    Table::all()
                        .iter()
                        .map(|t| t.file_name())
                        .chain([EXPORT_MAP_NAME])
                        .filter_map(|name| p.file(name).ok().cloned()),
                );
            }
        }
        files.push(put_small_file(
            &mut session,
            "manifest.json",
            FileKind::Manifest,
            manifest_json,
            &config,
            checksum,
        )?);

        let added = session.finish()?;
        let mut record = SnapshotRecord {
            time_ns: i64::try_from(now.unix_timestamp_nanos())
                .map_err(|_| Error::internal("the clock is out of range"))?,
            hostname: gethostname::gethostname().to_string_lossy().into_owned(),
            source: source_str,
            parent,
            tags: opts.tags.clone(),
            note: opts.note.clone(),
            total_bytes: files
                .iter()
                .filter(|f| !f.kind.is_internal())
                .map(|f| f.size)
                .sum(),
            files,
            new_bytes: added.stored_bytes,
            sqlite,
            warnings: extra.warnings,
            seq: Some(seq),
            source_state,
            chain: None,
            origin: None,
        };
        let new_chunks = added.chunks_added;
        let id = self.commit_snapshot(&mut record, added, record_id)?;
        drop(reader);
        if new_chunks >= COMPACT_AFTER_CHUNKS {
            // The snapshot is committed: compaction only returns space, so a
            // failure here must not report the snapshot as failed.
            progress.phase(&PhaseInfo::new(Phase::CompactIndex));
            let _ = self.index.compact_if_grown();
        }
        let snapshot = Snapshot { id, record };
        if extra.reused_exports {
            // Same image as the parent: no row changed. (Best effort: a cache.)
            let _ = self.record_changes(&snapshot, 0);
        }
        let clock_went_back = parent_time.filter(|t| *t > snapshot.record.time_ns);
        Ok(SnapshotSummary {
            snapshot,
            new_chunks,
            clock_went_back,
            unchanged: false,
            export_rows: extra.export_rows,
        })
    }

    /// The commit point of a snapshot (store-format.md 6.3, steps 2 and 3):
    /// writes `record`'s file, then indexes the session's packs and chunks with
    /// the snapshot in one transaction, committed last. `record_id` is set before
    /// the file is written, so a failure's cleanup knows what to remove. The
    /// record is linked after the chain's head first (store-format.md 4.10).
    pub(super) fn commit_snapshot(
        &self,
        record: &mut SnapshotRecord,
        added: Added,
        record_id: &Cell<Option<SnapshotId>>,
    ) -> Result<SnapshotId> {
        record.chain = Some(self.next_chain_link()?);
        let (id, file) = snapshot::encode_record(record, self.store.cipher(), self.store.format());
        record_id.set(Some(id));
        self.backend
            .write_atomic(&snapshot::snapshot_path(&id), &file)?;
        crate::testhook::point("after-snapshot-file");
        self.index.apply(&IndexUpdate {
            chunks: added.locations,
            packs: added.packs,
            snapshots: vec![(id, file)],
            ..Default::default()
        })?;
        Ok(id)
    }
}

impl Repository {
    /// A write session for a snapshot: chunks already in the index (as `reader`
    /// sees it) are skipped, and each pack's chunks are indexed as soon as the
    /// pack is durable (memory stays bounded by one pack; the snapshot itself is
    /// indexed last by the caller). Each pack is pushed to `written` before its
    /// index commit, so a failure there still lets the caller remove it.
    pub(super) fn indexing_session<'s>(
        &'s self,
        reader: &'s RefCell<IndexReader>,
        written: &'s RefCell<Vec<(PackId, u64)>>,
    ) -> WriteSession<'s> {
        let index = &self.index;
        WriteSession::new(&self.store, Box::new(|id| reader.borrow().contains(id))).with_on_pack(
            Box::new(move |pack, size, locs| {
                written.borrow_mut().push((pack, size));
                let update = IndexUpdate {
                    chunks: locs.to_vec(),
                    packs: vec![(pack, size)],
                    ..Default::default()
                };
                index.apply_at(&update, "before-pack-index-commit")?;
                *reader.borrow_mut() = index.reader()?;
                Ok(())
            }),
        )
    }
}

/// The parent's exports, reusable when the image is unchanged.
struct Reuse {
    image_blake3: [u8; 32],
    warnings: Vec<String>,
}

/// What the capture thread needs for segmented exports besides the image.
pub(super) struct ExportInputs {
    /// The store side's [`Handoff`], sent once the image is stored.
    pub handoff: std::sync::mpsc::Receiver<Handoff>,
    /// The chunk counter of the current file ([`ChunkingSink`]).
    pub file_chunks: std::rc::Rc<Cell<u64>>,
    /// `--no-exports`: the image and manifest only.
    pub no_exports: bool,
    /// Format 2 (chunks can be reused by reference) — else exports are whole.
    pub segmented: bool,
    /// One image chunk per page, so [`Handoff::same`] is per page.
    pub page_chunks: bool,
    /// The kept copy's previous bytes of the table leaves the capture rewrote
    /// (checked against [`Handoff::parent_ids`] with `ids` before use).
    pub previous: crate::sqlite::kept::PreviousPages,
    /// The repository's chunk-id hasher.
    pub ids: IdHasher,
}

fn read_extra(
    conn: &rusqlite::Connection,
    sink: &mut capture::Sink<'_>,
    check: crate::sqlite::check::BackgroundCheck,
    timestamp: &str,
    image_blake3: Option<[u8; 32]>,
    reuse: Option<&Reuse>,
    inputs: ExportInputs,
) -> Result<Extra> {
    let no_exports = inputs.no_exports;
    let lumina = export::is_lumina(conn)?;
    let tables = export::row_counts(conn)?;
    let mut warnings = Vec::new();
    let mut export_rows = None;
    if let Some(r) = reuse.filter(|r| lumina && !no_exports && image_blake3 == Some(r.image_blake3))
    {
        // Same image, same rows: the parent's exports (and findings) are this
        // state's exports; skip the most expensive part of a snapshot.
        return Ok(Extra {
            reused_exports: true,
            export_rows: None,
            lumina,
            tables,
            // The parent's warnings include its checks of this same image.
            warnings: r.warnings.clone(),
            quick_check: "not checked again: same image as the parent snapshot".into(),
        });
    }
    if lumina && !no_exports && inputs.segmented {
        let (w, rows) = super::export_write::write_exports(conn, sink, timestamp, inputs)?;
        warnings = w;
        export_rows = Some(rows);
    } else if lumina && !no_exports {
        // The consistency check rides along the export pass (no extra queries).
        let mut scan = export::ConsistencyScan::new();
        for table in Table::all() {
            super::export_write::write_whole(conn, table, timestamp, sink, &mut |row| {
                scan.observe(table, row)
            })?;
        }
        warnings = scan.finish().warnings();
    }
    // Running on the captured copy since the image was staged; waited for last,
    // at most its time budget (see `sqlite::check`).
    let check = check.finish()?;
    warnings.extend(check.warnings);
    Ok(Extra {
        reused_exports: false,
        export_rows,
        lumina,
        tables,
        warnings,
        quick_check: check.quick_check,
    })
}

/// The previous snapshot's image chunk ids, streamed in order: SQLite pages stay
/// in place, so most new chunks equal the parent's at the same position and need
/// no index lookup. Any failure to read the parent only ends the hints.
struct ParentLeaves<'r> {
    reader: crate::store::ChunkReader<'r>,
    tree: crate::store::tree::TreeReader,
    done: bool,
}

impl ParentLeaves<'_> {
    fn next(&mut self) -> Option<ChunkId> {
        if self.done {
            return None;
        }
        match self.reader.next_leaf(&mut self.tree) {
            Ok(Some(e)) => Some(e.id),
            _ => {
                self.done = true;
                None
            }
        }
    }
}

/// What the store side hands the capture thread once the image is stored (the
/// exports need it): which pages equal the parent's, and the parent's exports.
pub(super) struct Handoff {
    /// `same[p - 1]`: page `p` has the parent's page `p`'s chunk id (empty
    /// without a parent).
    pub same: Vec<bool>,
    /// The parent's segmented exports by file name.
    pub parents: HashMap<String, ParentExport>,
    /// The parent's chunk id of pages that differ from it (at most
    /// [`PARENT_IDS_MAX`]; none beyond), to check the kept copy's previous
    /// pages against; empty when the snapshot does not use the kept copy.
    pub parent_ids: HashMap<u32, ChunkId>,
}

/// Most entries of [`Handoff::parent_ids`] (64 MiB of 4 KiB pages).
const PARENT_IDS_MAX: usize = 16_384;

/// Where [`consume`] sends the [`Handoff`], and how it loads the parent's exports.
struct HandoffTo<'a> {
    tx: std::sync::mpsc::Sender<Handoff>,
    load: &'a dyn Fn() -> HashMap<String, ParentExport>,
    /// Collect [`Handoff::parent_ids`]: only a kept copy hands over previous
    /// pages to check against them.
    parent_ids: bool,
}

/// Main-thread side: stores chunk batches and builds each file's tree.
fn consume(
    rx: std::sync::mpsc::Receiver<Msg>,
    session: &mut WriteSession<'_>,
    fanout: u32,
    progress: &dyn Progress,
    mut parent: Option<ParentLeaves<'_>>,
    mut handoff: Option<HandoffTo<'_>>,
) -> Result<Vec<FileEntry>> {
    let mut files = Vec::new();
    let mut current: Option<(String, bool, TreeBuilder)> = None;
    let mut same = Vec::new();
    let mut parent_ids = HashMap::new();
    let collect_ids = handoff.as_ref().is_some_and(|h| h.parent_ids);
    for msg in rx {
        match msg {
            Msg::Begin {
                name,
                image,
                size_hint,
            } => {
                let phase = if image { Phase::Capture } else { Phase::Export };
                progress.phase(&PhaseInfo::new(phase).detail(&name).total(size_hint));
                current = Some((name, image, TreeBuilder::new(fanout)));
            }
            msg @ (Msg::Chunks(..) | Msg::Reused(_)) => {
                Repository::check_cancel(progress)?;
                let (_, image, tree) = current
                    .as_mut()
                    .ok_or_else(|| Error::internal("chunks before a file"))?;
                let (entries, bytes) = match msg {
                    // A page whose id is the parent's at the same position costs
                    // only its hash: no index lookup, no compression.
                    Msg::Chunks(chunks, bytes) => match parent.as_mut().filter(|_| *image) {
                        Some(p) => (
                            session.put_hashed(KIND_DATA, chunks, &mut |id| {
                                let theirs = p.next();
                                let equal = theirs == Some(*id);
                                same.push(equal);
                                if let Some(theirs) = theirs.filter(|_| collect_ids && !equal) {
                                    if parent_ids.len() < PARENT_IDS_MAX {
                                        parent_ids.insert(same.len() as u32, theirs);
                                    }
                                }
                                equal
                            })?,
                            bytes,
                        ),
                        None => (
                            session.put_hashed(KIND_DATA, chunks, &mut |_| false)?,
                            bytes,
                        ),
                    },
                    // Stored already (the parent's export segments).
                    Msg::Reused(entries) => {
                        let bytes = entries.iter().map(|e| e.len).sum();
                        (entries, bytes)
                    }
                    _ => unreachable!("matched above"),
                };
                for e in entries {
                    tree.push(e, &mut |node| session.put(KIND_TREE, node))?;
                }
                progress.advance(bytes);
            }
            Msg::End { size, blake3 } => {
                let (name, image, tree) = current
                    .take()
                    .ok_or_else(|| Error::internal("end before a file"))?;
                let root = tree.finish(&mut |node| session.put(KIND_TREE, node))?;
                let kind = if image {
                    FileKind::Image
                } else if name == EXPORT_MAP_NAME {
                    FileKind::ExportMap
                } else {
                    FileKind::Export
                };
                if image {
                    if let Some(h) = handoff.take() {
                        // The capture thread waits for this before the exports;
                        // it may have stopped (its error then wins).
                        if parent_ids.len() >= PARENT_IDS_MAX {
                            parent_ids.clear();
                        }
                        let _ = h.tx.send(Handoff {
                            same: std::mem::take(&mut same),
                            parents: (h.load)(),
                            parent_ids: std::mem::take(&mut parent_ids),
                        });
                    }
                }
                files.push(FileEntry {
                    name,
                    kind,
                    size,
                    blake3,
                    root,
                });
            }
        }
    }
    Ok(files)
}

/// Stores a small in-memory file (the manifest) and returns its entry, with
/// the checksum of the repository's format (`checksum`).
pub(super) fn put_small_file(
    session: &mut WriteSession<'_>,
    name: &str,
    kind: FileKind,
    data: Vec<u8>,
    config: &crate::format::Config,
    checksum: ChecksumKind,
) -> Result<FileEntry> {
    let mut chunks = Vec::new();
    let mut chunker = ByteChunker::new(config.byte_chunker);
    chunker.push(&data, &mut |c| chunks.push(c));
    chunker.finish(&mut |c| chunks.push(c));
    let mut tree = TreeBuilder::new(config.tree_fanout);
    let mut hasher = FileHasher::new(checksum);
    hasher.data(&data);
    for e in session.put_batch(KIND_DATA, chunks)? {
        hasher.chunk(&e.id, e.len);
        tree.push(e, &mut |node| session.put(KIND_TREE, node))?;
    }
    let root = tree.finish(&mut |node| session.put(KIND_TREE, node))?;
    Ok(FileEntry {
        name: name.to_string(),
        kind,
        size: data.len() as u64,
        blake3: hasher.finish(),
        root,
    })
}
