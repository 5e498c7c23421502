//! A file's checksum in a snapshot record ([`super::FileEntry::blake3`]),
//! store-format.md section 4.2: in format 1 the plain BLAKE3 of the file's
//! bytes; from format 2 the **chunk-list digest**, the plain BLAKE3 of
//! `CHUNK_LIST_CONTEXT | (id[32] | len as u64 LE)` for each data chunk of the
//! file in order. Every chunk is checked against its id when read, so the
//! digest needs only the ids (already hashed once per byte) to check the
//! chunks' order, count and lengths: each byte is hashed once, not twice.

use crate::id::ChunkId;

/// What a file's checksum is computed from (by the repository's format:
/// [`super::FormatVersion::checksum`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChecksumKind {
    /// BLAKE3 of the whole file's bytes (format 1).
    WholeFile,
    /// BLAKE3 of the file's chunk list (format 2).
    ChunkList,
}

/// The bytes the chunk-list digest starts with (domain separation from any
/// other BLAKE3 of the repository).
pub const CHUNK_LIST_CONTEXT: &[u8] = b"lumina-backup chunk-list v2\n";

/// Computes a file's checksum of either kind as the file goes by: feed it the
/// bytes ([`FileHasher::data`]) and the data chunks' ids and lengths
/// ([`FileHasher::chunk`]), in file order; each kind uses only its own input.
#[derive(Clone, Debug)]
pub struct FileHasher {
    kind: ChecksumKind,
    hasher: blake3::Hasher,
}

impl FileHasher {
    /// A hasher for a new file.
    pub fn new(kind: ChecksumKind) -> Self {
        let mut hasher = blake3::Hasher::new();
        if kind == ChecksumKind::ChunkList {
            hasher.update(CHUNK_LIST_CONTEXT);
        }
        FileHasher { kind, hasher }
    }

    /// Whether it needs the file's bytes ([`FileHasher::data`]).
    pub fn needs_data(&self) -> bool {
        self.kind == ChecksumKind::WholeFile
    }

    /// The next bytes of the file (ignored for [`ChecksumKind::ChunkList`]).
    pub fn data(&mut self, bytes: &[u8]) {
        if self.kind == ChecksumKind::WholeFile {
            self.hasher.update(bytes);
        }
    }

    /// The next data chunk of the file (ignored for [`ChecksumKind::WholeFile`]).
    pub fn chunk(&mut self, id: &ChunkId, len: u64) {
        if self.kind == ChecksumKind::ChunkList {
            self.hasher.update(&id.0);
            self.hasher.update(&len.to_le_bytes());
        }
    }

    /// The checksum of everything fed so far.
    pub fn finish(&self) -> [u8; 32] {
        *self.hasher.finalize().as_bytes()
    }
}

/// The chunk-list digest of a file whose data chunks are `leaves`, in order.
#[cfg(test)]
pub fn chunk_list_digest(leaves: &[super::TreeEntry]) -> [u8; 32] {
    let mut h = FileHasher::new(ChecksumKind::ChunkList);
    for l in leaves {
        h.chunk(&l.id, l.len);
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::TreeEntry;

    fn leaf(b: u8, len: u64) -> TreeEntry {
        TreeEntry {
            id: ChunkId([b; 32]),
            len,
        }
    }

    #[test]
    fn chunk_list_digest_bytes_are_as_documented() {
        let leaves = [leaf(1, 512), leaf(2, 3)];
        let mut by_hand = b"lumina-backup chunk-list v2\n".to_vec();
        for l in &leaves {
            by_hand.extend_from_slice(&l.id.0);
            by_hand.extend_from_slice(&l.len.to_le_bytes());
        }
        assert_eq!(
            chunk_list_digest(&leaves),
            *blake3::hash(&by_hand).as_bytes()
        );
        assert_eq!(
            chunk_list_digest(&[]),
            *blake3::hash(CHUNK_LIST_CONTEXT).as_bytes()
        );
    }

    #[test]
    fn order_count_and_lengths_change_the_digest() {
        let a = chunk_list_digest(&[leaf(1, 512), leaf(2, 512)]);
        assert_ne!(a, chunk_list_digest(&[leaf(2, 512), leaf(1, 512)]));
        assert_ne!(a, chunk_list_digest(&[leaf(1, 512)]));
        assert_ne!(
            a,
            chunk_list_digest(&[leaf(1, 512), leaf(2, 512), leaf(2, 512)])
        );
        assert_ne!(a, chunk_list_digest(&[leaf(1, 512), leaf(2, 511)]));
    }

    #[test]
    fn each_kind_uses_only_its_input() {
        let mut whole = FileHasher::new(ChecksumKind::WholeFile);
        whole.data(b"abc");
        whole.chunk(&ChunkId([7; 32]), 3);
        assert_eq!(whole.finish(), *blake3::hash(b"abc").as_bytes());
        let mut list = FileHasher::new(ChecksumKind::ChunkList);
        list.data(b"abc");
        list.chunk(&ChunkId([7; 32]), 3);
        assert_eq!(list.finish(), chunk_list_digest(&[leaf(7, 3)]));
    }

    proptest::proptest! {
        /// Any two different chunk lists (ids, lengths, order, count) have
        /// different digests.
        #[test]
        fn different_lists_have_different_digests(
            a in proptest::collection::vec((0u8..4, 0u64..3), 0..6),
            b in proptest::collection::vec((0u8..4, 0u64..3), 0..6),
        ) {
            let list = |v: &[(u8, u64)]| v.iter().map(|(i, l)| leaf(*i, *l)).collect::<Vec<_>>();
            proptest::prop_assert_eq!(
                a == b,
                chunk_list_digest(&list(&a)) == chunk_list_digest(&list(&b))
            );
        }
    }
}
