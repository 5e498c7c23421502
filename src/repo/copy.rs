//! `copy`: sends snapshots to another repository (store-format.md 6.11),
//! creating it when it does not exist, sending only what it lacks, and
//! carrying the history chain.
//!
//! Three ways, chosen from the two repositories:
//! - [`CopyMode::Mirror`]: same chunk ids, every snapshot, and a destination
//!   whose records all come from the source. Packs, snapshot records and chain
//!   events are sent byte for byte, so the destination has the same ids, the
//!   same chain and the same head; deletions recorded at the source remove
//!   the snapshots at the destination too.
//! - [`CopyMode::Rechain`]: same chunk ids, but a subset of the snapshots, or a
//!   destination with a history of its own. The data is sent as it is; each
//!   snapshot gets a new record (its link on the destination's chain, its
//!   `origin`), so a new id.
//! - [`CopyMode::Translate`]: the chunk ids differ (plain and encrypted, or
//!   two master keys): every file is re-chunked into the destination's ids,
//!   then the records are written as in `Rechain`.
//!
//! Order: data first (each pack durable, then indexed; all before any record), then a
//! check that the destination holds every chunk of what it is about to
//! reference, then the records (the commit point of each snapshot), in chain
//! order. A rerun after an interruption finds what arrived and sends the rest.
//! The source is only read.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::copy_data::{self, Sent};
use super::{ChainHead, InitOptions, Like, OpenOptions, Repository};
use crate::backend::Location;
use crate::crypto::KdfParams;
use crate::error::{Error, ErrorKind, Result};
use crate::format::{Cipher, FileEntry};
use crate::id::SnapshotId;
use crate::index::IndexUpdate;
use crate::layout;
use crate::progress::Progress;
use crate::snapshot::{self, Snapshot};

/// How to copy ([`Repository::copy_to`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CopyOptions {
    /// The destination's passphrase: needed when it is encrypted; when it is
    /// created, it is encrypted with this passphrase.
    pub passphrase: Option<zeroize::Zeroizing<String>>,
    /// Argon2id parameters of a new destination's key file.
    pub kdf: KdfParams,
    /// Allow an encrypted source's snapshots into an unencrypted destination
    /// (refused otherwise: a copy must not silently drop the encryption).
    pub allow_plain: bool,
    /// A new encrypted destination gets a master key of its own (its chunk
    /// ids then differ from the source's: every copy re-chunks) instead of the
    /// source's master key wrapped under its passphrase.
    pub new_key: bool,
    /// How long to wait for the destination's lock.
    pub lock_wait: Duration,
    /// What this process is doing (shown to a process waiting for the lock).
    pub purpose: String,
}

impl Default for CopyOptions {
    fn default() -> Self {
        let open = OpenOptions::default();
        CopyOptions {
            passphrase: None,
            kdf: KdfParams::default(),
            allow_plain: false,
            new_key: false,
            lock_wait: open.lock_wait,
            purpose: "copy".into(),
        }
    }
}

impl CopyOptions {
    /// These options with the destination's passphrase.
    pub fn with_passphrase(mut self, passphrase: impl Into<String>) -> Self {
        self.passphrase = Some(zeroize::Zeroizing::new(passphrase.into()));
        self
    }
}

/// How a copy carried the snapshots (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum CopyMode {
    /// Byte for byte: same ids, same chain, same head.
    Mirror,
    /// Same data, new records linked on the destination's own chain.
    Rechain,
    /// Data re-chunked into the destination's ids, new records.
    Translate,
}

/// What a copy did.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct CopyReport {
    /// The destination.
    pub destination: String,
    /// Whether the destination was created by this copy.
    pub created: bool,
    /// How the snapshots were carried.
    pub mode: CopyMode,
    /// Snapshots written at the destination: (source id, destination id), hex.
    pub copied: Vec<(String, String)>,
    /// Snapshots the destination already held.
    pub already_present: u64,
    /// Snapshots not copied because the source's history chain does not
    /// vouch for them (inserted or forged records; `Rechain`/`Translate`
    /// would make them look genuine), by source id.
    pub skipped_untrusted: Vec<String>,
    /// Chain events sent byte for byte (`Mirror`).
    pub chain_events_copied: u64,
    /// Annotations written at the destination for tags or notes changed at
    /// the source since an earlier copy (`Rechain`, `Translate`).
    pub annotations_written: u64,
    /// Snapshots removed at the destination because a deletion the source
    /// recorded removed them (`Mirror`).
    pub snapshots_removed: u64,
    /// Source packs sent whole.
    pub packs_copied: u64,
    /// New packs written at the destination.
    pub packs_written: u64,
    /// Chunks the destination did not have.
    pub chunks_sent: u64,
    /// Bytes written at the destination: packs and records.
    pub bytes_sent: u64,
    /// The destination's history chain head after the copy.
    pub chain_head: Option<ChainHead>,
}

/// A record to send in `Mirror` mode: its chain position (0: before the
/// chain), id, path and bytes, and whether it is a snapshot record.
struct Verbatim {
    n: u64,
    id: SnapshotId,
    path: String,
    bytes: Vec<u8>,
    snapshot: bool,
}

impl Repository {
    /// Copies `only` (every snapshot when `None`) to the repository at
    /// `dest`, creating it (with the same chunking parameters and format, so
    /// chunks deduplicate across the two) when nothing is there. Sends only
    /// the data and snapshots it lacks; a second copy sends nothing. Takes the
    /// destination's write lock; only reads this repository.
    ///
    /// Refused (exit 2): a destination that is this repository, whose
    /// chunking parameters or format differ, an encrypted source to an
    /// unencrypted destination without [`CopyOptions::allow_plain`], a wrong
    /// or missing destination passphrase.
    pub fn copy_to(
        &self,
        dest: &Location,
        only: Option<&[SnapshotId]>,
        opts: &CopyOptions,
        progress: &dyn Progress,
    ) -> Result<CopyReport> {
        crate::progress::operation(progress, |p| self.copy_inner(dest, only, opts, p))
    }

    fn copy_inner(
        &self,
        dest: &Location,
        only: Option<&[SnapshotId]>,
        opts: &CopyOptions,
        progress: &dyn Progress,
    ) -> Result<CopyReport> {
        if same_place(&self.location, dest) {
            return Err(Error::invalid_input(format!(
                "{dest} is the repository being copied; give another destination"
            )));
        }
        let all = self.list()?;
        let chosen: Vec<&Snapshot> = match only {
            None => all.iter().collect(),
            Some(ids) => {
                let want: HashSet<&SnapshotId> = ids.iter().collect();
                for id in ids {
                    if !all.iter().any(|s| s.id == *id) {
                        return Err(Error::invalid_input(format!(
                            "snapshot {} is not in {}; list them with `snapshots`",
                            id.short(),
                            self.location
                        )));
                    }
                }
                all.iter().filter(|s| want.contains(&s.id)).collect()
            }
        };
        let created = self.ensure_destination(dest, opts)?;
        let dst = Repository::open_at(
            dest,
            &OpenOptions {
                lock_wait: opts.lock_wait,
                purpose: opts.purpose.clone(),
                passphrase: opts.passphrase.clone(),
            },
        )?;
        self.check_compatible(&dst, opts)?;
        let same_ids = same_ids(self.store.cipher(), dst.store.cipher());
        let src_chain = self.chain_state()?;
        let mode = if !same_ids {
            CopyMode::Translate
        } else if only.is_none() && self.follows(&dst, &src_chain.report)? {
            CopyMode::Mirror
        } else {
            CopyMode::Rechain
        };
        let mut report = CopyReport {
            destination: dest.to_string(),
            created,
            mode,
            copied: Vec::new(),
            already_present: 0,
            skipped_untrusted: Vec::new(),
            chain_events_copied: 0,
            annotations_written: 0,
            snapshots_removed: 0,
            packs_copied: 0,
            packs_written: 0,
            chunks_sent: 0,
            bytes_sent: 0,
            chain_head: None,
        };
        let mut sent = Sent::default();
        if mode == CopyMode::Mirror {
            self.mirror(
                &dst,
                &chosen,
                &src_chain.report,
                progress,
                &mut sent,
                &mut report,
            )?;
        } else {
            self.rechain(
                &dst,
                &chosen,
                &src_chain.report,
                mode,
                progress,
                &mut sent,
                &mut report,
            )?;
        }
        report.packs_copied = sent.packs_copied;
        report.packs_written = sent.packs_written;
        report.chunks_sent = sent.chunks;
        report.bytes_sent += sent.bytes;
        report.chain_head = dst.chain_head()?;
        Ok(report)
    }

    /// Creates the destination when no repository is there; returns whether
    /// it did.
    fn ensure_destination(&self, dest: &Location, opts: &CopyOptions) -> Result<bool> {
        let encrypted = match Repository::is_encrypted_at(dest) {
            Ok(e) => Some(e),
            Err(e) if e.kind() == ErrorKind::NoRepository => None,
            Err(e) => return Err(e),
        };
        let sealed = self.store.cipher().is_sealed();
        match encrypted {
            Some(false) if sealed && !opts.allow_plain => Err(Error::invalid_input(format!(
                "{} is encrypted and {dest} is not: copying would store its snapshots unencrypted; \
                 copy to an encrypted repository, or allow it explicitly (--to-plain)",
                self.location
            ))),
            Some(_) => Ok(false),
            None => {
                if sealed && opts.passphrase.is_none() && !opts.allow_plain {
                    return Err(Error::invalid_input(format!(
                        "{} is encrypted: give the new repository {dest} a passphrase \
                         (--to-password-file FILE or LUMINA_BACKUP_TO_PASSWORD), or create it \
                         unencrypted explicitly (--to-plain)",
                        self.location
                    )));
                }
                let master = match self.store.cipher() {
                    Cipher::Sealed(m) if !opts.new_key => Some(Arc::clone(m)),
                    _ => None,
                };
                let like = Like {
                    config: self.config().clone(),
                    version: self.store.format(),
                    master,
                };
                let init = InitOptions {
                    passphrase: opts.passphrase.clone(),
                    kdf: opts.kdf,
                    force: false,
                    zstd_level: None,
                };
                Repository::init_like(dest, &init, Some(&like))?;
                Ok(true)
            }
        }
    }

    /// Refuses a destination whose chunking or format differs (its chunks
    /// would not deduplicate with the source's, and records carry the
    /// format's checksums), or an encrypted source into a plain destination.
    fn check_compatible(&self, dst: &Repository, opts: &CopyOptions) -> Result<()> {
        let (a, b) = (self.config(), dst.config());
        let mut diffs = Vec::new();
        if a.page_chunker != b.page_chunker {
            diffs.push("page chunking");
        }
        if a.byte_chunker != b.byte_chunker {
            diffs.push("byte chunking");
        }
        if a.tree_fanout != b.tree_fanout {
            diffs.push("tree fan-out");
        }
        if !diffs.is_empty() {
            return Err(Error::invalid_input(format!(
                "{} has other chunking parameters ({}) than {}: its chunks would never \
                 deduplicate with the source's; copy to a new location (copy creates it with \
                 the same parameters)",
                dst.location,
                diffs.join(", "),
                self.location
            )));
        }
        if self.store.format() != dst.store.format() {
            return Err(Error::invalid_input(format!(
                "{} has store format {} and {} format {}: copy needs one format; copy to a new \
                 location",
                dst.location,
                dst.format_version(),
                self.location,
                self.format_version()
            )));
        }
        if self.store.cipher().is_sealed() && !dst.store.cipher().is_sealed() && !opts.allow_plain {
            return Err(Error::invalid_input(format!(
                "{} is encrypted and {} is not; allow it explicitly (--to-plain)",
                self.location, dst.location
            )));
        }
        Ok(())
    }

    /// Whether every record of `dst` (snapshot records and chain events) is
    /// one of this repository's, present or removed on its chain: then `dst`
    /// holds a part of this history and can be brought up to it verbatim.
    fn follows(&self, dst: &Repository, chain: &crate::chain::ChainReport) -> Result<bool> {
        let mut ours: HashSet<SnapshotId> = self
            .index
            .snapshots()?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        ours.extend(self.event_ids()?);
        ours.extend(chain.members.iter().copied());
        let theirs = dst
            .index
            .snapshots()?
            .into_iter()
            .map(|(id, _)| id)
            .chain(dst.event_ids()?);
        for id in theirs {
            if !ours.contains(&id) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The ids of the files in `chain/`.
    fn event_ids(&self) -> Result<Vec<SnapshotId>> {
        Ok(self
            .backend
            .list(layout::CHAIN)?
            .iter()
            .filter_map(|n| SnapshotId::from_hex(n))
            .collect())
    }

    /// `Mirror`: data, then every record the destination lacks in chain
    /// order, then the deletions applied.
    fn mirror(
        &self,
        dst: &Repository,
        chosen: &[&Snapshot],
        chain: &crate::chain::ChainReport,
        progress: &dyn Progress,
        sent: &mut Sent,
        report: &mut CopyReport,
    ) -> Result<()> {
        let theirs: HashSet<SnapshotId> = dst
            .index
            .snapshots()?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        let missing: Vec<&Snapshot> = chosen
            .iter()
            .copied()
            .filter(|s| !theirs.contains(&s.id))
            .collect();
        report.already_present = (chosen.len() - missing.len()) as u64;
        let files: Vec<&FileEntry> = missing.iter().flat_map(|s| s.record.files.iter()).collect();
        let needed = copy_data::referenced(self, &files)?;
        copy_data::send_same_ids(self, dst, &needed, progress, sent)?;
        copy_data::check_indexed(dst, &needed)?;
        // The records, oldest link first: an interruption leaves a prefix of
        // the chain, which verifies and which the rerun extends.
        let mut records = Vec::new();
        let files_of: HashMap<SnapshotId, Vec<u8>> = self.index.snapshots()?.into_iter().collect();
        for s in &missing {
            let bytes = files_of
                .get(&s.id)
                .cloned()
                .ok_or_else(|| Error::internal("a listed snapshot is not indexed"))?;
            records.push(Verbatim {
                n: s.record.chain.as_ref().map_or(0, |l| l.n),
                id: s.id,
                path: snapshot::snapshot_path(&s.id),
                bytes,
                snapshot: true,
            });
        }
        let their_events: HashSet<SnapshotId> = dst.event_ids()?.into_iter().collect();
        for id in self.event_ids()? {
            if their_events.contains(&id) {
                continue;
            }
            let path = layout::chain_event(&id);
            let bytes = self.backend.read(&path)?;
            // Unreadable events (damaged, forged) are not carried.
            let Ok(event) = super::chain::decode_event_file(&id, &bytes, self.store.cipher())
            else {
                continue;
            };
            records.push(Verbatim {
                n: event.chain.n,
                id,
                path,
                bytes,
                snapshot: false,
            });
        }
        records.sort_by_key(|r| (r.n, r.id));
        for r in records {
            Repository::check_cancel(progress)?;
            dst.backend.write_atomic(&r.path, &r.bytes)?;
            crate::testhook::point("copy-after-record");
            report.bytes_sent += r.bytes.len() as u64;
            if r.snapshot {
                dst.index.apply(&IndexUpdate {
                    snapshots: vec![(r.id, r.bytes)],
                    ..Default::default()
                })?;
                report.copied.push((r.id.to_hex(), r.id.to_hex()));
            } else {
                report.chain_events_copied += 1;
            }
        }
        // Deletions the source recorded: the snapshots they removed go at the
        // destination too (the deletion is on its chain already, as forget
        // writes it before removing files).
        let ours: HashSet<SnapshotId> = self
            .index
            .snapshots()?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        let gone: Vec<SnapshotId> = dst
            .index
            .snapshots()?
            .into_iter()
            .map(|(id, _)| id)
            .filter(|id| chain.removed.contains(id) && !ours.contains(id))
            .collect();
        if !gone.is_empty() {
            for id in &gone {
                dst.backend.remove(&snapshot::snapshot_path(id))?;
            }
            dst.backend.sync_dir(layout::SNAPSHOTS)?;
            dst.index.apply(&IndexUpdate {
                remove_snapshots: gone.clone(),
                ..Default::default()
            })?;
            for id in &gone {
                // A cache: best effort.
                let _ = dst.backend.remove(&layout::changes(id));
            }
            report.snapshots_removed = gone.len() as u64;
        }
        Ok(())
    }

    /// `Rechain` and `Translate`: data, then one new record per snapshot the
    /// destination lacks, linked on its chain, in history order.
    #[allow(clippy::too_many_arguments)]
    fn rechain(
        &self,
        dst: &Repository,
        chosen: &[&Snapshot],
        chain: &crate::chain::ChainReport,
        mode: CopyMode,
        progress: &dyn Progress,
        sent: &mut Sent,
        report: &mut CopyReport,
    ) -> Result<()> {
        // What the destination holds already: by id (same ids) or by the
        // `origin` its copies record.
        let theirs = dst.list()?;
        let mut held: HashMap<SnapshotId, &Snapshot> = HashMap::new();
        for s in &theirs {
            held.insert(s.id, s);
            if let Some(o) = s.record.origin {
                held.entry(o).or_insert(s);
            }
        }
        let find = |s: &Snapshot| -> Option<&Snapshot> {
            held.get(&s.id)
                .copied()
                .or_else(|| s.record.origin.and_then(|o| held.get(&o).copied()))
        };
        let mut todo = Vec::new();
        for s in chosen {
            if !chain.trusted.contains(&s.id) {
                report.skipped_untrusted.push(s.id.to_hex());
                continue;
            }
            match find(s) {
                Some(d) => {
                    report.already_present += 1;
                    // Tags or note changed at the source since: annotate.
                    if d.record.tags != s.record.tags || d.record.note != s.record.note {
                        dst.record_annotation(&d.id, &s.record.tags, &s.record.note)?;
                        report.annotations_written += 1;
                    }
                }
                None => todo.push(*s),
            }
        }
        let new_files: Vec<Vec<FileEntry>> = if mode == CopyMode::Translate {
            let new_files = copy_data::translate(self, dst, &todo, progress, sent)?;
            let all_files: Vec<&FileEntry> = new_files.iter().flatten().collect();
            copy_data::check_complete(dst, &all_files)?;
            new_files
        } else {
            let files: Vec<&FileEntry> = todo.iter().flat_map(|s| s.record.files.iter()).collect();
            let needed = copy_data::referenced(self, &files)?;
            copy_data::send_same_ids(self, dst, &needed, progress, sent)?;
            copy_data::check_indexed(dst, &needed)?;
            todo.iter().map(|s| s.record.files.clone()).collect()
        };
        let mut mapped: HashMap<SnapshotId, SnapshotId> = HashMap::new();
        for (s, files) in todo.iter().zip(new_files) {
            Repository::check_cancel(progress)?;
            let parent = s.record.parent.and_then(|p| {
                mapped
                    .get(&p)
                    .copied()
                    .or_else(|| held.get(&p).map(|d| d.id))
            });
            let mut record = s.record.clone();
            record.files = files;
            record.parent = parent;
            record.origin = Some(s.id);
            record.chain = Some(dst.next_chain_link()?);
            let (id, file) =
                snapshot::encode_record(&record, dst.store.cipher(), dst.store.format());
            dst.backend
                .write_atomic(&snapshot::snapshot_path(&id), &file)?;
            crate::testhook::point("copy-after-record");
            report.bytes_sent += file.len() as u64;
            dst.index.apply(&IndexUpdate {
                snapshots: vec![(id, file)],
                ..Default::default()
            })?;
            mapped.insert(s.id, id);
            report.copied.push((s.id.to_hex(), id.to_hex()));
        }
        Ok(())
    }
}

/// Whether two repositories name chunks and records alike and seal alike
/// (both plain, or one master key): then packs and records can be sent as
/// they are.
fn same_ids(a: &Cipher, b: &Cipher) -> bool {
    match (a, b) {
        (Cipher::Plain, Cipher::Plain) => true,
        (Cipher::Sealed(x), Cipher::Sealed(y)) => *x.to_bytes() == *y.to_bytes(),
        _ => false,
    }
}

/// Whether two locations name the same repository (local paths compared
/// canonically).
fn same_place(a: &Location, b: &Location) -> bool {
    match (a, b) {
        (Location::Local(x), Location::Local(y)) => {
            let canon = |p: &std::path::Path| std::fs::canonicalize(p).unwrap_or(p.to_path_buf());
            canon(x) == canon(y)
        }
        _ => a.to_string() == b.to_string(),
    }
}
