//! A file's chunk list as a content-defined Merkle tree of nodes, stored as
//! chunks themselves, so the list deduplicates like the data: a snapshot after a
//! small change stores only the nodes on the paths to the changed chunks.
//!
//! A node is cut after an entry whose id's first four bytes, as a little-endian
//! u32, have their low `log2(fanout)` bits zero (or at `8 * fanout` entries); the
//! same rule applies at every level. The root is always a node.

use crate::error::{Error, Result};
use crate::format::{self, TreeEntry, TreeNode};
use crate::id::ChunkId;

/// Builds a tree from leaf entries pushed in file order.
#[derive(Debug)]
pub struct TreeBuilder {
    mask: u32,
    max: usize,
    levels: Vec<Vec<TreeEntry>>,
}

/// Stores one encoded node and returns its id.
pub type PutNode<'a> = dyn FnMut(Vec<u8>) -> Result<ChunkId> + 'a;

impl TreeBuilder {
    /// A builder whose nodes hold `fanout` entries on average (power of two).
    pub fn new(fanout: u32) -> Self {
        TreeBuilder {
            mask: fanout.max(2) - 1,
            max: fanout.max(2) as usize * 8,
            levels: Vec::new(),
        }
    }

    /// Appends a data chunk.
    pub fn push(&mut self, entry: TreeEntry, put: &mut PutNode<'_>) -> Result<()> {
        self.push_at(0, entry, put)
    }

    fn push_at(&mut self, level: usize, entry: TreeEntry, put: &mut PutNode<'_>) -> Result<()> {
        if self.levels.len() <= level {
            self.levels.push(Vec::new());
        }
        self.levels[level].push(entry);
        let b = entry.id.0;
        let cut = (u32::from_le_bytes([b[0], b[1], b[2], b[3]]) & self.mask) == 0
            || self.levels[level].len() >= self.max;
        if cut {
            let parent = self.close(level, put)?;
            self.push_at(level + 1, parent, put)?;
        }
        Ok(())
    }

    fn close(&mut self, level: usize, put: &mut PutNode<'_>) -> Result<TreeEntry> {
        let entries = std::mem::take(&mut self.levels[level]);
        let len = entries.iter().map(|e| e.len).sum();
        let node = TreeNode {
            level: u8::try_from(level).map_err(|_| Error::index("tree too deep"))?,
            entries,
        };
        let id = put(format::encode_compact(&node))?;
        Ok(TreeEntry { id, len })
    }

    /// Closes every open node; returns the root node's id.
    pub fn finish(mut self, put: &mut PutNode<'_>) -> Result<ChunkId> {
        let mut level = 0;
        loop {
            if self.levels.len() <= level {
                self.levels.push(Vec::new());
            }
            let above_empty = self.levels[level + 1..].iter().all(Vec::is_empty);
            let here = self.levels[level].len();
            if level > 0 && here == 1 && above_empty {
                return Ok(self.levels[level][0].id);
            }
            if here == 0 && !(level == 0 && above_empty) {
                level += 1;
                continue;
            }
            let parent = self.close(level, put)?;
            if self.levels.len() <= level + 1 {
                self.levels.push(Vec::new());
            }
            self.levels[level + 1].push(parent);
            level += 1;
        }
    }
}

/// Reads one node by id (fetch, verify, decode).
pub type GetNode<'a> = dyn FnMut(&ChunkId) -> Result<TreeNode> + 'a;

/// The total length of the leaves under `root` and their chunk-list digest
/// (store-format.md 4.2, a format-2 file's checksum), from the tree's nodes
/// alone (read through `get`); no data chunk is read.
pub fn size_and_list_digest(root: ChunkId, get: &mut GetNode<'_>) -> Result<(u64, [u8; 32])> {
    let mut tree = TreeReader::new(root);
    let mut hasher = format::FileHasher::new(format::ChecksumKind::ChunkList);
    let mut size = 0u64;
    while let Some(leaf) = tree.next_leaf(get)? {
        size = size.saturating_add(leaf.len);
        hasher.chunk(&leaf.id, leaf.len);
    }
    Ok((size, hasher.finish()))
}

/// Walks a tree's leaves in order, holding one node per level.
#[derive(Debug)]
pub struct TreeReader {
    stack: Vec<(TreeNode, usize)>,
    root: Option<ChunkId>,
}

impl TreeReader {
    /// A reader for the tree under `root`.
    pub fn new(root: ChunkId) -> Self {
        TreeReader {
            stack: Vec::new(),
            root: Some(root),
        }
    }

    /// The next data chunk entry, or `None` at the end.
    pub fn next_leaf(&mut self, get: &mut GetNode<'_>) -> Result<Option<TreeEntry>> {
        Ok(self.next(get, &mut |_| false)?.map(|(e, _)| e))
    }

    /// Like [`TreeReader::next_leaf`], but a child node for which `skip` returns
    /// true is not read: it is returned as `(entry, false)` (a whole subtree of
    /// `entry.len` bytes) instead of its leaves. Walks over many snapshots use it
    /// to visit each distinct subtree once. Leaves come as `(entry, true)`.
    pub fn next(
        &mut self,
        get: &mut GetNode<'_>,
        skip: &mut dyn FnMut(&TreeEntry) -> bool,
    ) -> Result<Option<(TreeEntry, bool)>> {
        if let Some(root) = self.root.take() {
            let node = get(&root)?;
            self.stack.push((node, 0));
        }
        loop {
            let Some((node, idx)) = self.stack.last_mut() else {
                return Ok(None);
            };
            if *idx >= node.entries.len() {
                self.stack.pop();
                continue;
            }
            let entry = node.entries[*idx];
            *idx += 1;
            if node.level == 0 {
                return Ok(Some((entry, true)));
            }
            if skip(&entry) {
                return Ok(Some((entry, false)));
            }
            let want = node.level - 1;
            let child = get(&entry.id)?;
            if child.level != want {
                return Err(Error::corrupt(
                    format!("tree node {}", entry.id.short()),
                    format!("level {} where {want} was expected", child.level),
                ));
            }
            self.stack.push((child, 0));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn build(ids: &[ChunkId], fanout: u32, store: &mut HashMap<ChunkId, Vec<u8>>) -> ChunkId {
        let mut put = |bytes: Vec<u8>| -> Result<ChunkId> {
            let id = ChunkId(crate::id::blake3_of(&bytes));
            store.insert(id, bytes);
            Ok(id)
        };
        let mut b = TreeBuilder::new(fanout);
        for id in ids {
            b.push(TreeEntry { id: *id, len: 4096 }, &mut put)
                .expect("push");
        }
        b.finish(&mut put).expect("finish")
    }

    fn read(root: ChunkId, store: &HashMap<ChunkId, Vec<u8>>) -> Vec<ChunkId> {
        let mut get = |id: &ChunkId| -> Result<TreeNode> {
            let bytes = store
                .get(id)
                .ok_or_else(|| Error::missing_chunk(id.to_hex()))?;
            format::decode_tree_node(bytes).map_err(|e| Error::decode("node", e))
        };
        let mut r = TreeReader::new(root);
        let mut out = Vec::new();
        while let Some(e) = r.next_leaf(&mut get).expect("leaf") {
            out.push(e.id);
        }
        out
    }

    fn ids(n: usize, salt: u8) -> Vec<ChunkId> {
        (0..n)
            .map(|i| {
                ChunkId(crate::id::blake3_of(
                    &[&(i as u64).to_le_bytes()[..], &[salt]].concat(),
                ))
            })
            .collect()
    }

    #[test]
    fn round_trip_many_sizes() {
        for n in [0, 1, 2, 3, 15, 16, 17, 100, 1000, 5000] {
            let mut store = HashMap::new();
            let list = ids(n, 0);
            let root = build(&list, 4, &mut store);
            assert_eq!(read(root, &store), list, "n = {n}");
        }
    }

    #[test]
    fn small_change_adds_few_nodes() {
        let mut store = HashMap::new();
        let list = ids(20_000, 0);
        build(&list, 16, &mut store);
        let before = store.len();
        let mut edited = list.clone();
        edited[12_345] = ChunkId([7; 32]);
        let root = build(&edited, 16, &mut store);
        assert_eq!(read(root, &store), edited);
        let added = store.len() - before;
        assert!(added <= 8, "one changed leaf added {added} nodes");
    }
}
