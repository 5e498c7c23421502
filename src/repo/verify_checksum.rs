//! `verify`'s check of every file's recorded checksum against its tree
//! (format 2: the chunk-list digest, store-format.md 4.2), from the tree's
//! nodes alone: no data chunk is read. Snapshots share most files, so each
//! distinct file version (root, size, checksum) is walked once and its outcome
//! reported for every snapshot that names it; decoded tree nodes are kept (up to
//! a bound) because versions of a file share most of their nodes.
//!
//! Format 1's checksum is the BLAKE3 of the file's bytes: checking it means
//! reading every distinct version of every file in full (the cost of restoring
//! each one), far more than `--read-data` reads (each stored chunk once), so
//! verify leaves it to restore, which always checks it.

use std::collections::HashMap;

use super::Problem;
use crate::error::Result;
use crate::format::{ChecksumKind, FileEntry, FileHasher, TreeNode};
use crate::id::{ChunkId, SnapshotId};
use crate::store::tree::TreeReader;
use crate::store::ChunkReader;

/// Tree entries (40 bytes each) kept in decoded nodes before the cache is
/// emptied: about 40 MiB.
const NODE_CACHE_ENTRIES: usize = 1 << 20;

/// One version of a file: root, size, recorded checksum.
type FileKey = (ChunkId, u64, [u8; 32]);

/// What the walk of one file version found.
#[derive(Debug, Clone)]
enum Outcome {
    Ok,
    /// The leaves add up to this many bytes, not the recorded size.
    Size(u64),
    /// The leaves' digest is this, not the recorded checksum.
    Digest([u8; 32]),
}

/// Checks files' recorded checksums against their trees, each version once.
#[derive(Debug)]
pub(super) struct ChecksumCheck {
    kind: ChecksumKind,
    outcomes: HashMap<FileKey, Outcome>,
    nodes: HashMap<ChunkId, TreeNode>,
    cached_entries: usize,
}

impl ChecksumCheck {
    /// A check for a repository whose checksums are of `kind`.
    pub(super) fn new(kind: ChecksumKind) -> Self {
        ChecksumCheck {
            kind,
            outcomes: HashMap::new(),
            nodes: HashMap::new(),
            cached_entries: 0,
        }
    }

    /// The problem with `file` of `snapshot`, if any: its tree's leaves do not
    /// add up to its size or their digest is not its checksum. Call it only for
    /// a file whose structure checked (every node readable, size right). Format
    /// 1 is not checked here (see the module's comment). An error is a failure
    /// to read a node, for the caller to report.
    pub(super) fn check(
        &mut self,
        reader: &mut ChunkReader<'_>,
        snapshot: SnapshotId,
        file: &FileEntry,
    ) -> Result<Option<Problem>> {
        if self.kind != ChecksumKind::ChunkList {
            return Ok(None);
        }
        let key = (file.root, file.size, file.blake3);
        let outcome = match self.outcomes.get(&key) {
            Some(o) => o.clone(),
            None => {
                let (size, digest) = self.walk(reader, file.root)?;
                let o = if size != file.size {
                    Outcome::Size(size)
                } else if digest != file.blake3 {
                    Outcome::Digest(digest)
                } else {
                    Outcome::Ok
                };
                self.outcomes.insert(key, o.clone());
                o
            }
        };
        Ok(match outcome {
            Outcome::Ok => None,
            Outcome::Size(actual) => Some(Problem::FileSize {
                snapshot,
                file: file.name.clone(),
                actual,
                expected: file.size,
            }),
            Outcome::Digest(actual) => Some(Problem::FileChecksum {
                snapshot,
                file: file.name.clone(),
                actual: hex::encode(actual),
                expected: hex::encode(file.blake3),
            }),
        })
    }

    /// The total length and chunk-list digest of the leaves under `root`.
    fn walk(&mut self, reader: &mut ChunkReader<'_>, root: ChunkId) -> Result<(u64, [u8; 32])> {
        let mut tree = TreeReader::new(root);
        let mut hasher = FileHasher::new(ChecksumKind::ChunkList);
        let mut size = 0u64;
        let nodes = &mut self.nodes;
        let cached = &mut self.cached_entries;
        let mut get = |id: &ChunkId| -> Result<TreeNode> {
            if let Some(n) = nodes.get(id) {
                return Ok(n.clone());
            }
            let node = reader.node(id)?;
            if *cached + node.entries.len() > NODE_CACHE_ENTRIES {
                nodes.clear();
                *cached = 0;
            }
            *cached += node.entries.len();
            nodes.insert(*id, node.clone());
            Ok(node)
        };
        while let Some(leaf) = tree.next_leaf(&mut get)? {
            size = size.saturating_add(leaf.len);
            hasher.chunk(&leaf.id, leaf.len);
        }
        Ok((size, hasher.finish()))
    }
}
