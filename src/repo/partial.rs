//! Removing the partial data of a write that failed before its commit point:
//! the packs a snapshot wrote before it was cancelled or ran out of space, the
//! new packs of a prune whose repacking ran out of space or was cancelled.
//!
//! Safety argument (the lock is held exclusively throughout): a pack written by
//! a session that never committed holds only chunks that no committed snapshot
//! references — a snapshot session writes only chunks the index did not know,
//! and its own record was never written; a prune's new packs are referenced by
//! nothing until its index transaction, which did not happen. The index stops
//! pointing into the packs (one transaction) *before* their files are deleted,
//! so at every moment each indexed location points into a pack that exists. A
//! crash between the two leaves unindexed pack files, which the next open
//! indexes (as dead data) and the next prune deletes.

use std::path::PathBuf;

use super::Repository;
use crate::error::{Error, Repr, Result};
use crate::id::PackId;
use crate::index::IndexUpdate;
use crate::store::pack;

/// If `e` is a failed write for lack of space, the file being written.
pub(crate) fn no_space(e: &Error, index: &std::path::Path) -> Option<PathBuf> {
    match e.repr() {
        Repr::Io { path, source, .. } if crate::platform::is_no_space_error(source) => {
            Some(path.clone())
        }
        // redb reports its I/O errors as text.
        Repr::Redb(r) if crate::platform::is_no_space_text(&r.to_string()) => {
            Some(index.to_path_buf())
        }
        _ => None,
    }
}

impl Repository {
    /// Removes `packs` (written by a session that did not commit): first their
    /// index entries (chunks located in them, and the packs), then the files.
    /// Returns the bytes removed. A pack whose description cannot be read is
    /// left (prune deals with it), as is everything when the index cannot be
    /// updated.
    pub(crate) fn discard_packs(&self, packs: &[(PackId, u64)]) -> Result<u64> {
        if packs.is_empty() {
            return Ok(0);
        }
        let mut update = IndexUpdate::default();
        let mut doomed = Vec::new();
        {
            let reader = self.index.reader()?;
            for (id, size) in packs {
                let Ok(desc) = self.read_pack_description(id, *size) else {
                    continue;
                };
                for (chunk, _) in pack::locations(*id, &desc) {
                    if reader.get(&chunk)?.is_some_and(|l| l.pack == *id) {
                        update.remove_chunks.push(chunk);
                    }
                }
                update.remove_packs.push(*id);
                doomed.push((*id, *size));
            }
        }
        self.index.apply(&update)?;
        let mut dirs = std::collections::BTreeSet::new();
        let mut removed = 0;
        for (id, size) in doomed {
            let path = pack::pack_path(&id);
            self.backend.remove(&path)?;
            removed += size;
            dirs.insert(crate::layout::dir_of(&path).to_string());
        }
        for dir in dirs {
            self.backend.sync_dir(&dir)?;
        }
        Ok(removed)
    }

    /// Pack files on disk that the index does not list (for prune: the new packs
    /// of a repack that never reached its index transaction).
    pub(crate) fn unindexed_packs(&self) -> Result<Vec<(PackId, u64)>> {
        let indexed: std::collections::HashSet<PackId> =
            self.index.packs()?.into_iter().map(|(id, _)| id).collect();
        Ok(self
            .pack_files()?
            .into_iter()
            .filter(|(id, _)| !indexed.contains(id))
            .collect())
    }
}
