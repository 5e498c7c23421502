//! Snapshots before a risky operation (a migration, an update, a bulk import, a
//! clean-up): tagged `before:<reason>`, with a note, and kept by a retention
//! rule of their own (`keep-before`, default 30 days from now; see
//! [`crate::retention`]) instead of being counted by keep-last and the calendar
//! rules, so a burst of migrations cannot push the regular snapshots out.

use std::path::Path;

use super::take::{SnapshotOptions, SnapshotSummary};
use super::Repository;
use crate::error::{Error, Result};
use crate::progress::{NoProgress, Progress};
use crate::retention::BEFORE_TAG_PREFIX;

/// Whether `reason` can name an operation: letters, digits, `-`, `_`, `.`.
fn check_reason(reason: &str) -> Result<()> {
    let ok = !reason.is_empty()
        && reason.len() <= 64
        && reason
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_input(format!(
            "reason {reason:?} cannot name an operation: use up to 64 letters, digits, '-', '_' or '.' (e.g. migration, update, bulk-import, cleanup)"
        )))
    }
}

impl Repository {
    /// Takes a snapshot of `db` before a risky operation named by `reason`
    /// (`migration`, `update`, `bulk-import`, `cleanup`, ...): tagged
    /// `before:<reason>`, with the note `before <reason>`. Retention keeps it
    /// while younger than `keep-before` (30 days by default) and does not count
    /// it among the regular snapshots. An unchanged database costs no page read
    /// (the snapshot reuses its parent's image).
    pub fn snapshot_before(&mut self, db: &Path, reason: &str) -> Result<SnapshotSummary> {
        self.snapshot_before_with(db, reason, &NoProgress)
    }

    /// [`Self::snapshot_before`] with progress (and cancellation).
    pub fn snapshot_before_with(
        &mut self,
        db: &Path,
        reason: &str,
        progress: &dyn Progress,
    ) -> Result<SnapshotSummary> {
        check_reason(reason)?;
        let opts = SnapshotOptions {
            tags: vec![format!("{BEFORE_TAG_PREFIX}{reason}")],
            note: format!("before {reason}"),
            ..SnapshotOptions::default()
        };
        self.snapshot(db, &opts, progress)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_single_words() {
        for ok in ["migration", "update-2.1", "bulk_import"] {
            assert!(check_reason(ok).is_ok(), "{ok}");
        }
        for bad in ["", "two words", "a,b", "x:y", &"a".repeat(65)] {
            let e = check_reason(bad).expect_err(bad);
            assert!(e.is_user_error(), "{bad}");
        }
    }
}
