//! The data half of `copy` (store-format.md 6.11): sends the chunks the
//! destination lacks, before any record that needs them.
//!
//! Two ways, by whether the two repositories name chunks alike:
//! - **same ids** (both plain, or both sealed with one master key): the
//!   chunks missing at the destination are found by id; a source pack whose
//!   every indexed chunk is missing is sent whole (its bytes checked against
//!   its name first), the others' missing chunks are re-packed;
//! - **other ids** (plain and encrypted, or two master keys): every file is
//!   read chunk by chunk, each chunk stored under the destination's id, and
//!   its tree and checksum rebuilt with the destination's rules.
//!
//! Whole packs go a few at a time (`copy_packs.rs`); every pack is durable
//! before it is indexed at the destination and indexed before this returns,
//! so an interrupted copy leaves packs the rerun finds (its open indexes
//! them) and does not send again; no record references them until `copy.rs`
//! writes the records. Every chunk
//! read from the source is re-hashed against its id (as `restore` does).

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use super::copy_packs;
use super::Repository;
use crate::error::{Error, Result};
use crate::format::{FileEntry, FileHasher, FileKind, TreeEntry};
use crate::id::{ChunkId, PackId};
use crate::progress::{Phase, PhaseInfo, Progress};
use crate::store::tree::{TreeBuilder, TreeReader};
use crate::store::{ChunkLoc, ChunkReader, WriteSession, KIND_DATA, KIND_TREE};

/// What a copy sent to the destination.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Sent {
    /// Source packs sent whole.
    pub packs_copied: u64,
    /// New packs written at the destination (re-packed or re-chunked data).
    pub packs_written: u64,
    /// Chunks the destination did not have.
    pub chunks: u64,
    /// Bytes of pack files written at the destination.
    pub bytes: u64,
}

/// Every chunk id (tree nodes and data) under the roots of `files`, read
/// through `repo` (each node re-hashed); a node reached twice is walked once.
pub(super) fn referenced(repo: &Repository, files: &[&FileEntry]) -> Result<HashSet<ChunkId>> {
    let mut reader = ChunkReader::with_cache_frames(&repo.store, repo.index.reader()?, 64);
    let mut nodes = HashSet::new();
    let mut out = HashSet::new();
    for f in files {
        let mut stack = vec![f.root];
        while let Some(id) = stack.pop() {
            if !nodes.insert(id) {
                continue;
            }
            out.insert(id);
            let node = reader.node(&id)?;
            for e in node.entries {
                if node.level == 0 {
                    out.insert(e.id);
                } else {
                    stack.push(e.id);
                }
            }
        }
    }
    Ok(out)
}

/// Same ids: sends the chunks of `needed` that `dst` lacks.
pub(super) fn send_same_ids(
    src: &Repository,
    dst: &Repository,
    needed: &HashSet<ChunkId>,
    progress: &dyn Progress,
    sent: &mut Sent,
) -> Result<()> {
    // One pass over the source's index (in key order, no lookups by id):
    // per pack, the chunks it places there and how many of them are needed
    // and missing at the destination. Only counts are kept, so memory does
    // not grow with the number of chunks sent.
    let have = dst.index.reader()?;
    let mut per_pack: HashMap<PackId, (u64, u64)> = HashMap::new();
    let mut found = 0usize;
    src.index.for_each_chunk(&mut |id, loc| {
        let e = per_pack.entry(loc.pack).or_default();
        e.0 += 1;
        if needed.contains(&id) {
            found += 1;
            if !have.contains(&id)? {
                e.1 += 1;
            }
        }
        Ok(())
    })?;
    if found < needed.len() {
        let src_index = src.index.reader()?;
        for id in needed {
            if src_index.get(id)?.is_none() {
                return Err(Error::missing_chunk(id.to_hex()));
            }
        }
    }
    progress.phase(&PhaseInfo::new(Phase::Copy).total(Some(0)));
    let sizes: HashMap<PackId, u64> = src.index.packs()?.into_iter().collect();
    let mut whole = Vec::new();
    let mut partial = HashSet::new();
    for (pack, (indexed, missing)) in per_pack {
        match sizes.get(&pack) {
            _ if missing == 0 => {}
            Some(size) if missing == indexed => whole.push((pack, *size)),
            _ => {
                partial.insert(pack);
            }
        }
    }
    // The needed chunks of the other packs are re-packed: a second pass
    // collects them (none in a fresh copy).
    let mut loose = Vec::new();
    if !partial.is_empty() {
        src.index.for_each_chunk(&mut |id, loc| {
            if partial.contains(&loc.pack) && needed.contains(&id) && !have.contains(&id)? {
                loose.push((id, loc));
            }
            Ok(())
        })?;
    }
    drop(have);
    if whole.is_empty() && loose.is_empty() {
        return Ok(());
    }
    whole.sort_by_key(|(p, _)| *p);
    loose.sort_by_key(|(_, l)| (l.pack, l.frame_offset, l.offset));
    let total = whole.iter().map(|w| w.1).sum::<u64>()
        + loose.iter().map(|(_, l)| u64::from(l.len)).sum::<u64>();
    let to = dst.location.to_string();
    progress.phase(&PhaseInfo::new(Phase::Copy).detail(&to).total(Some(total)));
    let packs = copy_packs::send_whole(src, dst, whole, progress)?;
    sent.packs_copied += packs.packs;
    sent.chunks += packs.chunks;
    sent.bytes += packs.bytes;
    if !loose.is_empty() {
        repack(src, dst, &loose, progress, sent)?;
    }
    Ok(())
}

/// Stores `loose` chunks (same ids) in new destination packs.
fn repack(
    src: &Repository,
    dst: &Repository,
    loose: &[(ChunkId, ChunkLoc)],
    progress: &dyn Progress,
    sent: &mut Sent,
) -> Result<()> {
    let mut reader = ChunkReader::new(&src.store, src.index.reader()?);
    let have = RefCell::new(dst.index.reader()?);
    let written = RefCell::new(Vec::new());
    let mut session = dst.indexing_session(&have, &written);
    for (id, loc) in loose {
        Repository::check_cancel(progress)?;
        let data = reader.chunk_at(id, loc)?;
        session.put_hashed(loc.kind, vec![(*id, data)], &mut |_| false)?;
        progress.advance(u64::from(loc.len));
    }
    let added = session.finish()?;
    sent.chunks += added.chunks_added;
    check_written(dst, &written.into_inner(), sent)
}

/// Reads back the description of each pack a session wrote at the
/// destination (authenticated when sealed): what the destination holds is
/// what was sent.
fn check_written(dst: &Repository, written: &[(PackId, u64)], sent: &mut Sent) -> Result<()> {
    for (pack, size) in written {
        dst.read_pack_description(pack, *size)?;
        sent.packs_written += 1;
        sent.bytes += size;
    }
    Ok(())
}

/// Other ids: re-chunks the files of each snapshot into the destination.
/// Returns, per snapshot, its files as the destination names them (the
/// export map, which names source chunk ids, is left out: it is optional and
/// the next snapshot at the destination renders its exports in full once).
pub(super) fn translate(
    src: &Repository,
    dst: &Repository,
    snapshots: &[&crate::snapshot::Snapshot],
    progress: &dyn Progress,
    sent: &mut Sent,
) -> Result<Vec<Vec<FileEntry>>> {
    let total: u64 = snapshots
        .iter()
        .flat_map(|s| s.record.files.iter())
        .filter(|f| f.kind != FileKind::ExportMap)
        .map(|f| f.size)
        .sum();
    let to = dst.location.to_string();
    progress.phase(&PhaseInfo::new(Phase::Copy).detail(&to).total(Some(total)));
    let mut reader = ChunkReader::with_cache_frames(&src.store, src.index.reader()?, 16);
    let have = RefCell::new(dst.index.reader()?);
    let written = RefCell::new(Vec::new());
    let mut session = dst.indexing_session(&have, &written);
    let fanout = dst.config().tree_fanout;
    let mut out = Vec::new();
    for s in snapshots {
        let mut files = Vec::new();
        for f in &s.record.files {
            if f.kind == FileKind::ExportMap {
                continue;
            }
            files.push(translate_file(
                src,
                &mut reader,
                &mut session,
                fanout,
                f,
                progress,
            )?);
        }
        out.push(files);
    }
    let added = session.finish()?;
    sent.chunks += added.chunks_added;
    check_written(dst, &written.into_inner(), sent)?;
    Ok(out)
}

/// One file: every data chunk read (and re-hashed) from the source, stored
/// under the destination's id, the tree rebuilt; the source's size and
/// checksum are checked on the way.
fn translate_file(
    src: &Repository,
    reader: &mut ChunkReader<'_>,
    session: &mut WriteSession<'_>,
    fanout: u32,
    entry: &FileEntry,
    progress: &dyn Progress,
) -> Result<FileEntry> {
    let kind = src.store.format().checksum();
    let mut walk = TreeReader::new(entry.root);
    let mut builder = TreeBuilder::new(fanout);
    let mut theirs = FileHasher::new(kind);
    let mut ours = FileHasher::new(kind);
    let mut size = 0u64;
    while let Some(leaf) = reader.next_leaf(&mut walk)? {
        Repository::check_cancel(progress)?;
        let loc = reader.locate(&leaf.id)?;
        let data = reader.chunk_at(&leaf.id, &loc)?;
        if theirs.needs_data() {
            theirs.data(&data);
            ours.data(&data);
        }
        theirs.chunk(&leaf.id, leaf.len);
        let len = data.len() as u64;
        let id = session.put(KIND_DATA, data)?;
        ours.chunk(&id, len);
        size += len;
        builder.push(TreeEntry { id, len }, &mut |b| session.put(KIND_TREE, b))?;
        progress.advance(len);
    }
    let root = builder.finish(&mut |b| session.put(KIND_TREE, b))?;
    if size != entry.size || theirs.finish() != entry.blake3 {
        return Err(Error::corrupt(
            format!("file {} of the source", entry.name),
            "its chunks do not add up to its recorded size and checksum; run verify on the source",
        ));
    }
    Ok(FileEntry {
        root,
        blake3: ours.finish(),
        ..entry.clone()
    })
}

/// Checks, before any record is written, that the destination holds every
/// chunk under the roots of `files` (tree nodes read back and re-hashed).
pub(super) fn check_complete(dst: &Repository, files: &[&FileEntry]) -> Result<()> {
    check_indexed(dst, &referenced(dst, files)?)
}

/// Same ids: checks, before any record is written, that the destination's
/// index holds every chunk of `needed` (found by walking the source's trees,
/// every node re-hashed; with shared ids the destination's nodes are the same
/// bytes under the same ids, so its walk would name the same chunks).
pub(super) fn check_indexed(dst: &Repository, needed: &HashSet<ChunkId>) -> Result<()> {
    // In key order: consecutive lookups share their B-tree leaf (random ones
    // in an index larger than its page cache cost a file read each).
    let mut ids: Vec<&ChunkId> = needed.iter().collect();
    ids.sort_unstable();
    let have = dst.index.reader()?;
    for id in ids {
        if !have.contains(id)? {
            return Err(Error::missing_chunk(id.to_hex()));
        }
    }
    Ok(())
}
