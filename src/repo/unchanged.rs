//! A snapshot of a database whose state equals its parent's
//! ([`crate::sqlite::unchanged`]): no page is read. The snapshot is still
//! recorded (the caller asked for one), with the parent's image tree, exports
//! and findings, and a new `manifest.json` saying so (`capture_route`
//! `unchanged`); it adds one small pack (the manifest) and its record.

use std::cell::{Cell, RefCell};

use super::take::{put_small_file, SnapshotOptions, SnapshotSummary};
use super::Repository;
use crate::error::{Error, Result};
use crate::export::Table;
use crate::format::{FileEntry, FileKind, SnapshotRecord, SourceState};
use crate::id::{PackId, SnapshotId};
use crate::progress::{NoProgress, Progress};
use crate::snapshot::{Manifest, Snapshot};

/// The manifest's `capture_route` of a snapshot whose pages were not read.
pub const ROUTE: &str = "unchanged";

/// Everything a new snapshot takes from its unchanged parent.
pub(super) struct Reused {
    files: Vec<FileEntry>,
    manifest: Manifest,
}

/// What the new snapshot is, besides what it reuses.
pub(super) struct NewSnapshot<'a> {
    pub source: String,
    pub parent: &'a Snapshot,
    pub seq: u64,
    pub now: time::OffsetDateTime,
    pub timestamp: String,
    pub state: SourceState,
}

impl Repository {
    /// What an unchanged snapshot would reuse from `parent`, or `None` when the
    /// parent cannot serve (no image, a raw capture, exports wanted that it
    /// lacks, a manifest that cannot be read): then the pages are read.
    pub(super) fn reusable(&self, parent: &Snapshot, opts: &SnapshotOptions) -> Option<Reused> {
        let r = &parent.record;
        let image = parent.image()?.clone();
        if r.sqlite.journal_mode == "unknown" {
            return None;
        }
        let mut files = vec![image];
        if r.sqlite.lumina && !opts.no_exports {
            for t in Table::all() {
                files.push(parent.file(t.file_name()).ok()?.clone());
            }
            // The segment map goes with the exports it describes (if any).
            files.extend(parent.file(crate::format::EXPORT_MAP_NAME).ok().cloned());
        }
        let entry = parent.file("manifest.json").ok()?;
        let mut bytes = Vec::new();
        self.read_file(entry, &mut bytes, &NoProgress).ok()?;
        let manifest: Manifest = serde_json::from_slice(&bytes).ok()?;
        Some(Reused { files, manifest })
    }

    /// Records the snapshot `new` of an unchanged database. `progress` may
    /// cancel it; `written` and `record_id` serve the caller's cleanup as in a
    /// capture.
    pub(super) fn snapshot_unchanged(
        &mut self,
        reused: Reused,
        new: NewSnapshot<'_>,
        opts: &SnapshotOptions,
        progress: &dyn Progress,
        written: &RefCell<Vec<(PackId, u64)>>,
        record_id: &Cell<Option<SnapshotId>>,
    ) -> Result<SnapshotSummary> {
        // Cancelled before anything is written: the snapshot records nothing.
        Repository::check_cancel(progress)?;
        let parent = new.parent;
        let Reused {
            mut files,
            mut manifest,
        } = reused;
        let parent_check = manifest.quick_check.as_deref().unwrap_or("not recorded");
        manifest.quick_check = Some(format!(
            "not checked again: unchanged since the parent snapshot (its check: {parent_check})"
        ));
        manifest.time = new.timestamp;
        manifest.capture_route = Some(ROUTE.to_string());
        let mut json = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| Error::internal(format!("manifest: {e}")))?;
        json.push(b'\n');

        let config = self.store.config().clone();
        let reader = RefCell::new(self.index.reader()?);
        let mut session = self.indexing_session(&reader, written);
        files.push(put_small_file(
            &mut session,
            "manifest.json",
            FileKind::Manifest,
            json,
            &config,
            self.store.format().checksum(),
        )?);
        let added = session.finish()?;
        Repository::check_cancel(progress)?;
        let pr = &parent.record;
        let mut record = SnapshotRecord {
            time_ns: i64::try_from(new.now.unix_timestamp_nanos())
                .map_err(|_| Error::internal("the clock is out of range"))?,
            hostname: gethostname::gethostname().to_string_lossy().into_owned(),
            source: new.source,
            parent: Some(parent.id),
            tags: opts.tags.clone(),
            note: opts.note.clone(),
            total_bytes: files
                .iter()
                .filter(|f| !f.kind.is_internal())
                .map(|f| f.size)
                .sum(),
            files,
            new_bytes: added.stored_bytes,
            sqlite: pr.sqlite.clone(),
            warnings: pr.warnings.clone(),
            seq: Some(new.seq),
            source_state: Some(new.state),
            chain: None,
            origin: None,
        };
        let new_chunks = added.chunks_added;
        let id = self.commit_snapshot(&mut record, added, record_id)?;
        drop(reader);
        // As after a capture: compact when redb's copy-on-write commits have
        // grown the file well past its last compaction (the snapshot stands
        // whatever this does).
        let _ = self.index.compact_if_grown();
        let snapshot = Snapshot { id, record };
        // No row changed. (Best effort: a cache.)
        let _ = self.record_changes(&snapshot, 0);
        let clock_went_back = Some(pr.time_ns).filter(|t| *t > snapshot.record.time_ns);
        Ok(SnapshotSummary {
            snapshot,
            new_chunks,
            clock_went_back,
            unchanged: true,
            export_rows: None,
        })
    }
}
