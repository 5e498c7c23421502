//! Checking the repository (`verify`, `verify --read-data`) and rebuilding the
//! index from the files (`repair index`).
//!
//! Verify never stops at the first problem: it names every damaged object it
//! finds, so the user learns the full extent of the damage at once.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use super::verify_checksum::ChecksumCheck;
use super::{files, OpenOptions, Problem, Repository};
use crate::compress::{self, Compression};
use crate::error::{Error, ErrorKind, Repr, Result};
use crate::id::{ChunkId, PackId};
use crate::index::IndexUpdate;
use crate::progress::{operation, Phase, PhaseInfo, Progress};
use crate::snapshot;
use crate::store::fetch::PackReadAhead;
use crate::store::tree::TreeReader;
use crate::store::{pack, ChunkReader};

/// The outcome of `verify`.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct VerifyReport {
    /// True when no problem was found.
    pub ok: bool,
    /// Each problem, naming the object.
    pub problems: Vec<Problem>,
    /// Snapshots whose structure was walked.
    pub snapshots_checked: u64,
    /// Chunks checked: the referenced chunks whose presence was checked, or
    /// with read-data the chunks re-hashed if those are more.
    pub chunks_checked: u64,
    /// Chunks referenced: distinct chunk ids (data and tree nodes) that the
    /// snapshots name, as `prune` and `status` count them.
    pub chunks_referenced: u64,
    /// Chunks stored: distinct chunk ids indexed in pack files present, as
    /// `prune`, `status` and `repair index` count them.
    pub chunks_stored: u64,
    /// Chunks missing: referenced chunks (data or tree nodes) that no pack
    /// holds (their pack was lost). The chunks below a missing tree node are
    /// unknown and not counted.
    pub chunks_missing: u64,
    /// Packs checked.
    pub packs_checked: u64,
    /// Bytes read and re-hashed (read-data).
    pub bytes_read: u64,
    /// The history chain's newest record (none before the chain began).
    pub chain_head: Option<super::ChainHead>,
    /// The restore drills run (`--restore-test`).
    pub restore_tests: Vec<super::DrillReport>,
}

/// What `verify` checks besides the repository's structure (which it always
/// checks unless `chain_only`) and the history chain (always).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct VerifyOptions {
    /// Also read and re-hash every byte of data.
    pub read_data: bool,
    /// Check only the history chain (`verify --chain`): no pack or tree is read.
    pub chain_only: bool,
    /// A chain head recorded earlier (a full id or a prefix of at least 8 hex
    /// characters) that the chain must still hold (`--expect-head`): catches
    /// a repository rolled back to an older copy.
    pub expect_head: Option<String>,
    /// Restore drills (`--restore-test`): `Some(None)` drills the newest
    /// snapshot of each database, `Some(Some(spec))` the snapshot `spec` names.
    pub restore_test: Option<Option<String>>,
}

impl VerifyOptions {
    /// The structure check, with every byte re-hashed when `read_data`.
    pub fn new(read_data: bool) -> Self {
        VerifyOptions {
            read_data,
            ..Default::default()
        }
    }
}

/// The outcome of an index rebuild.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct RebuildReport {
    /// Packs indexed.
    pub packs: u64,
    /// Chunks stored: distinct chunk ids indexed (a chunk found in several
    /// packs counts once).
    pub chunks: u64,
    /// The same count under the name `verify`, `prune` and `status` use.
    pub chunks_stored: u64,
    /// Snapshots indexed.
    pub snapshots: u64,
    /// Files that could not be read, with why (left out of the index).
    pub skipped: Vec<String>,
    /// Foreign files and folders in the repository folder (left alone).
    pub foreign: Vec<String>,
}

impl Repository {
    /// Checks the repository. Structure always: config, every snapshot file, every
    /// pack's description, every tree node, that every chunk a snapshot needs
    /// is indexed in a pack that exists, and (format 2) that every file's tree
    /// lists the chunks its recorded checksum names, in order. With `read_data`, every pack is read in
    /// full: its name must be the BLAKE3 of its bytes, every frame must decompress
    /// and every chunk must match its id.
    pub fn verify(&self, read_data: bool, progress: &dyn Progress) -> Result<VerifyReport> {
        self.verify_with(&VerifyOptions::new(read_data), progress)
    }

    /// Checks the repository as `opts` asks: the structure (unless
    /// `chain_only`), the history chain (missing, replaced, reordered or
    /// inserted records, broken links, forged records, the expected head), and
    /// restore drills. Every finding is a [`Problem`].
    pub fn verify_with(
        &self,
        opts: &VerifyOptions,
        progress: &dyn Progress,
    ) -> Result<VerifyReport> {
        operation(progress, |p| {
            let mut r = if opts.chain_only {
                VerifyReport::default()
            } else {
                self.verify_inner(opts.read_data, p)?
            };
            let mut st = self.chain_state()?;
            if let Some(head) = &opts.expect_head {
                st.report.expect_head(head);
            }
            r.problems
                .extend(st.unreadable.into_iter().map(Problem::Chain));
            r.problems.extend(
                st.report
                    .problems
                    .iter()
                    .map(|c| Problem::Chain(c.to_string())),
            );
            r.chain_head = st.report.head.map(|h| super::ChainHead::new(h.id, h.n));
            if let Some(spec) = &opts.restore_test {
                for drill in self.restore_drills(spec.as_deref(), p)? {
                    r.problems.extend(drill.problems.iter().map(|x| {
                        Problem::RestoreDrill(format!(
                            "restore drill of snapshot {}: {x}",
                            drill.snapshot
                        ))
                    }));
                    r.restore_tests.push(drill);
                }
            }
            r.ok = r.problems.is_empty();
            Ok(r)
        })
    }

    fn verify_inner(&self, read_data: bool, progress: &dyn Progress) -> Result<VerifyReport> {
        let mut r = VerifyReport::default();
        let mut damaged_packs: HashSet<PackId> = HashSet::new();
        let in_files =
            files::foreign_entries(self.files())
                .into_iter()
                .chain(files::small_file_problems(
                    self.files(),
                    Some(self.store.cipher()),
                ));
        r.problems.extend(in_files.map(Problem::RepositoryFile));
        let mut referenced: HashSet<ChunkId> = HashSet::new();
        let mut nodes_seen: HashSet<ChunkId> = HashSet::new();

        // Packs: present, right size, description readable (or fully re-hashed).
        let present: HashMap<PackId, u64> = self.pack_files()?.into_iter().collect();
        let indexed = self.index.packs()?;
        let total: u64 = indexed.iter().map(|(_, s)| s).sum();
        let phase = if read_data {
            Phase::ReadData
        } else {
            Phase::VerifyPacks
        };
        progress.phase(&PhaseInfo::new(phase).total(Some(total)));
        // With --read-data the packs that are present and whole are read ahead
        // (in this loop's order) while the one before is checked.
        let mut ahead = read_data.then(|| {
            let whole = indexed
                .iter()
                .filter(|(id, size)| present.get(id) == Some(size))
                .map(|(id, _)| *id)
                .collect();
            PackReadAhead::start(&self.store, whole)
        });
        for (id, size) in &indexed {
            Repository::check_cancel(progress)?;
            r.packs_checked += 1;
            let damaged = |e: Error| Problem::PackDamaged {
                pack: *id,
                damage: (&e).into(),
            };
            let problem = match present.get(id) {
                None => Some(Problem::PackMissing { pack: *id }),
                Some(actual) if actual != size => Some(Problem::PackSize {
                    pack: *id,
                    actual: *actual,
                    expected: *size,
                }),
                Some(_) if read_data => {
                    let bytes = match ahead.as_mut() {
                        Some(a) => a.take(id),
                        None => Err(Error::internal("no pack reader")),
                    };
                    bytes
                        .and_then(|b| self.check_pack_data(id, &b, &mut r))
                        .err()
                        .map(damaged)
                }
                Some(_) => self.read_pack_description(id, *size).err().map(damaged),
            };
            if let Some(p) = problem {
                r.problems.push(p);
                damaged_packs.insert(*id);
            }
            progress.advance(*size);
        }
        for id in present.keys() {
            if !indexed.iter().any(|(p, _)| p == id) {
                r.problems.push(Problem::PackNotIndexed { pack: *id });
            }
        }

        // Snapshots: files decode, and every chunk they need is reachable.
        // Tree nodes from the store itself, never from a remote store's local
        // node cache: verify checks what the repository holds.
        let store = self.store.without_node_cache();
        let mut reader = ChunkReader::new(&store, self.index.reader()?);
        let mut checked: HashSet<ChunkId> = HashSet::new();
        // Referenced chunks that are not stored (lost leaves and tree nodes).
        let mut missing_leaves: HashSet<ChunkId> = HashSet::new();
        let mut missing_nodes: HashSet<ChunkId> = HashSet::new();
        // Subtrees already walked without a problem: snapshots share most of their
        // trees, so each distinct subtree is walked once. A damaged subtree never
        // enters this set, so it is reported for every snapshot that needs it.
        let mut good_nodes: HashSet<ChunkId> = HashSet::new();
        // Each file's recorded checksum against its tree (format 2), once per
        // distinct file version.
        let mut checksums = ChecksumCheck::new(self.store.format().checksum());
        let ids = self.snapshot_ids()?;
        progress.phase(&PhaseInfo::new(Phase::VerifySnapshots).total(Some(ids.len() as u64)));
        for id in ids {
            Repository::check_cancel(progress)?;
            progress.advance(1);
            r.snapshots_checked += 1;
            let rec = match self.read_record(&id) {
                Ok(rec) => rec,
                Err(e) => {
                    r.problems.push(Problem::SnapshotUnreadable {
                        snapshot: id,
                        damage: (&e).into(),
                    });
                    continue;
                }
            };
            for file in &rec.files {
                let mut tree = TreeReader::new(file.root);
                let mut size = 0u64;
                let mut walked: Vec<ChunkId> = Vec::new();
                let mut skip = |e: &crate::format::TreeEntry| {
                    let seen = good_nodes.contains(&e.id);
                    if !seen {
                        walked.push(e.id);
                    }
                    seen
                };
                // The walk goes on past a missing chunk (the walker has already
                // stepped over it), so every chunk the file names is counted and
                // all its missing ones are known; the first problem is reported.
                let mut first: Option<Error> = None;
                let mut missing_here = 0u64;
                let result = (|| {
                    loop {
                        // A node a snapshot names is referenced, found or not.
                        let mut get = |nid: &ChunkId| {
                            nodes_seen.insert(*nid);
                            reader.node(nid).inspect_err(|e| {
                                if matches!(e.repr(), Repr::MissingChunk(_)) {
                                    missing_nodes.insert(*nid);
                                }
                            })
                        };
                        let (leaf, is_leaf) = match tree.next(&mut get, &mut skip) {
                            Ok(Some(next)) => next,
                            Ok(None) => return Ok(()),
                            Err(e) if e.kind() == ErrorKind::MissingData => {
                                missing_here += 1;
                                first.get_or_insert(e);
                                continue;
                            }
                            Err(e) => return Err(e),
                        };
                        size += leaf.len;
                        if !is_leaf {
                            continue;
                        }
                        referenced.insert(leaf.id);
                        // Only chunks found intact are remembered, so a damaged one is
                        // reported for every snapshot that needs it.
                        if checked.contains(&leaf.id) {
                            continue;
                        }
                        match reader.lookup(&leaf.id)? {
                            None => {
                                missing_leaves.insert(leaf.id);
                                missing_here += 1;
                                first.get_or_insert(Error::missing_chunk(leaf.id.to_hex()));
                            }
                            Some(loc) if damaged_packs.contains(&loc.pack) => {
                                first.get_or_insert(Error::corrupt(
                                    format!("chunk {}", leaf.id.short()),
                                    format!("is in damaged pack {}", loc.pack.to_hex()),
                                ));
                            }
                            Some(_) => {
                                checked.insert(leaf.id);
                            }
                        }
                    }
                })()
                .and_then(|()| first.map_or(Ok(()), Err));
                match result {
                    Err(e) if e.kind() == ErrorKind::MissingData => {
                        r.problems.push(Problem::ChunkMissing {
                            snapshot: id,
                            file: file.name.clone(),
                            chunk: e.object().unwrap_or_default().to_string(),
                            more: missing_here.saturating_sub(1),
                        })
                    }
                    Err(e) => r.problems.push(Problem::FileDamaged {
                        snapshot: id,
                        file: file.name.clone(),
                        damage: (&e).into(),
                    }),
                    Ok(()) if size != file.size => r.problems.push(Problem::FileSize {
                        snapshot: id,
                        file: file.name.clone(),
                        actual: size,
                        expected: file.size,
                    }),
                    Ok(()) => {
                        good_nodes.extend(walked.drain(..));
                        match checksums.check(&mut reader, id, file) {
                            Ok(None) => {}
                            Ok(Some(p)) => r.problems.push(p),
                            Err(e) => r.problems.push(Problem::FileDamaged {
                                snapshot: id,
                                file: file.name.clone(),
                                damage: (&e).into(),
                            }),
                        }
                    }
                }
            }
        }
        referenced.extend(nodes_seen);
        r.chunks_referenced = referenced.len() as u64;
        missing_leaves.extend(missing_nodes);
        r.chunks_missing = missing_leaves.len() as u64;
        r.chunks_stored = self.index.chunk_count()?;
        r.chunks_checked = r.chunks_checked.max(r.chunks_referenced);
        r.ok = r.problems.is_empty();
        if r.ok {
            // Every referenced chunk is indexed: snapshots may trust their
            // parent's chunk list again (best effort; a read-only repository
            // simply keeps checking).
            let _ = self.index.apply(&IndexUpdate {
                refs_complete: Some(true),
                ..Default::default()
            });
        }
        Ok(r)
    }

    fn check_pack_data(&self, id: &PackId, bytes: &[u8], r: &mut VerifyReport) -> Result<()> {
        r.bytes_read += bytes.len() as u64;
        let object = format!("pack {}", id.to_hex());
        if crate::id::blake3_of(bytes) != id.0 {
            return Err(Error::corrupt(
                object,
                "content does not match its name (bytes changed)",
            ));
        }
        let desc =
            pack::parse_pack(bytes, self.store.cipher()).map_err(|e| Error::decode(&object, e))?;
        let cipher = self.store.cipher();
        let frames: Vec<_> = desc.frames.iter().collect();
        use rayon::prelude::*;
        let hasher = self.store.hasher().clone();
        let counts: Vec<Result<u64>> = frames
            .par_iter()
            .map(|f| {
                let start = f.offset as usize;
                let stored = bytes
                    .get(start..start + f.stored_len as usize)
                    .ok_or_else(|| Error::corrupt(&object, "frame outside the file"))?;
                let kind = Compression::from_code(f.compression)
                    .ok_or_else(|| Error::corrupt(&object, "unknown compression"))?;
                let stored = cipher
                    .open_frame(f.raw_len, f.compression, stored)
                    .map_err(|e| Error::corrupt(format!("{object} frame at {}", f.offset), e))?;
                let raw = compress::decompress(kind, &stored, f.raw_len as usize)
                    .map_err(|e| Error::corrupt(format!("{object} frame at {}", f.offset), e))?;
                let mut at = 0usize;
                for c in &f.chunks {
                    let data = &raw[at..at + c.len as usize];
                    if hasher.chunk_id(data) != c.id {
                        return Err(Error::corrupt(
                            format!("chunk {} in {object}", c.id.short()),
                            "content does not match its checksum",
                        ));
                    }
                    at += c.len as usize;
                }
                Ok(f.chunks.len() as u64)
            })
            .collect();
        for c in counts {
            r.chunks_checked += c?;
        }
        Ok(())
    }

    /// Rebuilds the index from the pack and snapshot files.
    pub fn rebuild_index(&mut self, progress: &dyn Progress) -> Result<RebuildReport> {
        operation(progress, |p| self.rebuild_index_inner(p))
    }

    fn rebuild_index_inner(&mut self, progress: &dyn Progress) -> Result<RebuildReport> {
        let mut report = RebuildReport::default();
        let mut update = IndexUpdate::default();
        let packs = self.pack_files()?;
        progress.phase(&PhaseInfo::new(Phase::RebuildIndex).total(Some(packs.len() as u64)));
        for (id, size) in packs {
            Repository::check_cancel(progress)?;
            match self.read_pack_description(&id, size) {
                Ok(desc) => {
                    let locs = pack::locations(id, &desc);
                    report.chunks += locs.len() as u64;
                    update.chunks.extend(locs);
                    update.packs.push((id, size));
                    report.packs += 1;
                }
                Err(e) => report.skipped.push(e.to_string()),
            }
            progress.advance(1);
        }
        for id in self.snapshot_ids()? {
            let bytes = self.backend.read(&snapshot::snapshot_path(&id))?;
            match snapshot::decode_record_file(&id, &bytes, self.store.cipher()) {
                Ok(_) => {
                    update.snapshots.push((id, bytes));
                    report.snapshots += 1;
                }
                Err(e) => report.skipped.push(e.to_string()),
            }
        }
        report.foreign = files::foreign_entries(self.files());
        self.index.clear()?;
        self.index.apply(&update)?;
        report.chunks = self.index.chunk_count()?;
        report.chunks_stored = report.chunks;
        Ok(report)
    }
}

impl Repository {
    /// `verify` of the repository at `path`, also when it cannot be opened: a
    /// damaged config or key file is then reported as a problem (with the
    /// other small files and foreign files that can be checked without the
    /// key), not returned as an error. `opts` is `None` when the open options
    /// could not be made (the config's header is unreadable). Errors that are
    /// not damage (locked, wrong passphrase, no repository) are returned.
    pub fn verify_at(
        location: &crate::backend::Location,
        opts: Option<&OpenOptions>,
        read_data: bool,
        progress: &dyn Progress,
    ) -> Result<VerifyReport> {
        Self::verify_at_with(location, opts, &VerifyOptions::new(read_data), progress)
    }

    /// [`Repository::verify_at`] with the checks `what` asks for.
    pub fn verify_at_with(
        location: &crate::backend::Location,
        opts: Option<&OpenOptions>,
        what: &VerifyOptions,
        progress: &dyn Progress,
    ) -> Result<VerifyReport> {
        operation(progress, |p| Self::verify_at_inner(location, opts, what, p))
    }

    fn verify_at_inner(
        location: &crate::backend::Location,
        opts: Option<&OpenOptions>,
        what: &VerifyOptions,
        progress: &dyn Progress,
    ) -> Result<VerifyReport> {
        let opened = match opts {
            // Writable when it can be (a clean verify records that the index
            // holds every referenced chunk); read-only on a read-only mount.
            Some(o) => match Repository::open_at(location, o) {
                Err(e) if e.kind() == ErrorKind::ReadOnly => {
                    Repository::open_read_only_at(location, o)
                }
                other => other,
            },
            None => Err(Error::corrupt("config", "its header cannot be read")),
        };
        match opened {
            Ok(repo) => repo.verify_with(what, progress),
            Err(e) if e.kind() == ErrorKind::Corrupt => {
                let remote;
                let where_ = match location {
                    crate::backend::Location::Local(path) => files::Files::Local(path),
                    crate::backend::Location::Remote(r) => {
                        remote = crate::backend::open_remote(r)?.read_only;
                        files::Files::Remote(remote.as_ref())
                    }
                };
                if where_.read(super::CONFIG_FILE).is_err() {
                    return Err(e);
                }
                let mut r = VerifyReport::default();
                let in_files = files::foreign_entries(where_)
                    .into_iter()
                    .chain(files::small_file_problems(where_, None));
                r.problems.extend(in_files.map(Problem::RepositoryFile));
                r.problems.push(Problem::RepositoryFile(format!(
                    "the repository cannot be opened ({e}); nothing else was checked"
                )));
                Ok(r)
            }
            Err(e) => Err(e),
        }
    }
}
