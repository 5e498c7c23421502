//! Content-defined chunking.
//!
//! Two chunkers, both deterministic functions of the bytes (so equal content gives
//! equal chunks, whatever snapshot it came from):
//!
//! * [`PageChunker`] for SQLite database images: cut points only at page
//!   boundaries, chosen by a hash of the page just ended. SQLite rewrites pages in
//!   place, so page-aligned chunks stay identical when rows elsewhere change, and a
//!   content-defined choice of *which* boundaries to cut at keeps chunks stable when
//!   pages are inserted in the middle of a file. With `avg_pages = 1` every page is a
//!   chunk.
//! * [`ByteChunker`] for everything else (JSON exports, manifests): FastCDC (2020)
//!   over a byte stream, fed incrementally with bounded memory.
//!
//! Knows nothing of storage, ids or SQLite.

use serde::{Deserialize, Serialize};

/// Parameters of the page chunker; stored in the repository config so every
/// snapshot of a repository cuts the same way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageParams {
    /// Average pages per chunk; a power of two (1 = every page is a chunk).
    pub avg_pages: u32,
    /// Hard upper bound of pages per chunk.
    pub max_pages: u32,
}

/// Parameters of the byte chunker (FastCDC 2020), stored in the repository config.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByteParams {
    /// Minimum chunk size in bytes.
    pub min: u32,
    /// Average (target) chunk size in bytes.
    pub avg: u32,
    /// Maximum chunk size in bytes.
    pub max: u32,
}

impl Default for PageParams {
    fn default() -> Self {
        PageParams {
            avg_pages: 1,
            max_pages: 1,
        }
    }
}

impl Default for ByteParams {
    fn default() -> Self {
        ByteParams {
            min: 2 * 1024,
            avg: 4 * 1024,
            max: 16 * 1024,
        }
    }
}

impl PageParams {
    /// Checks that the parameters are usable (read from a config file).
    pub fn is_valid(&self) -> bool {
        self.avg_pages >= 1
            && self.avg_pages.is_power_of_two()
            && self.max_pages >= self.avg_pages
            && self.max_pages <= 4096
    }
}

impl ByteParams {
    /// Checks the limits FastCDC accepts.
    pub fn is_valid(&self) -> bool {
        (fastcdc::v2020::MINIMUM_MIN..=fastcdc::v2020::MINIMUM_MAX).contains(&self.min)
            && (fastcdc::v2020::AVERAGE_MIN..=fastcdc::v2020::AVERAGE_MAX).contains(&self.avg)
            && (fastcdc::v2020::MAXIMUM_MIN..=fastcdc::v2020::MAXIMUM_MAX).contains(&self.max)
            && self.min <= self.avg
            && self.avg <= self.max
    }
}

/// A fast, stable 64-bit hash of one page (word-wise multiply-xor). Only used to
/// choose cut points; it is pinned by a golden test because changing it changes
/// every chunk boundary.
pub fn page_cut_hash(page: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h: u64 = 0x243F_6A88_85A3_08D3 ^ page.len() as u64;
    let mut words = page.chunks_exact(8);
    for w in &mut words {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        h = (h ^ u64::from_le_bytes(b)).wrapping_mul(K).rotate_left(29);
    }
    for &byte in words.remainder() {
        h = (h ^ u64::from(byte)).wrapping_mul(K);
    }
    h ^ (h >> 31)
}

/// Groups pages into chunks. Push pages in order; a completed chunk is returned
/// as soon as its last page arrives; call [`PageChunker::finish`] at the end.
#[derive(Debug)]
pub struct PageChunker {
    mask: u64,
    max_pages: u32,
    buf: Vec<u8>,
    pages: u32,
}

impl PageChunker {
    /// A chunker with the given parameters (must be valid).
    pub fn new(params: PageParams) -> Self {
        debug_assert!(params.is_valid());
        PageChunker {
            mask: u64::from(params.avg_pages.max(1)) - 1,
            max_pages: params.max_pages.max(1),
            buf: Vec::new(),
            pages: 0,
        }
    }

    /// Adds one page; returns a finished chunk if this page ends one.
    pub fn push(&mut self, page: &[u8]) -> Option<Vec<u8>> {
        self.buf.extend_from_slice(page);
        self.pages += 1;
        let cut = self.pages >= self.max_pages || (page_cut_hash(page) & self.mask) == 0;
        if cut {
            self.pages = 0;
            Some(std::mem::take(&mut self.buf))
        } else {
            None
        }
    }

    /// The last, partial chunk, if any pages are pending.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        self.pages = 0;
        if self.buf.is_empty() {
            None
        } else {
            Some(std::mem::take(&mut self.buf))
        }
    }
}

/// FastCDC over a byte stream fed in pieces. Holds at most about
/// `window + max` bytes.
#[derive(Debug)]
pub struct ByteChunker {
    params: ByteParams,
    buf: Vec<u8>,
    window: usize,
}

impl ByteChunker {
    /// A chunker with the given parameters (must be valid).
    pub fn new(params: ByteParams) -> Self {
        debug_assert!(params.is_valid());
        ByteChunker {
            params,
            buf: Vec::new(),
            window: (params.max as usize) * 16,
        }
    }

    /// Adds bytes; calls `emit` with every chunk that is now final.
    pub fn push(&mut self, data: &[u8], emit: &mut dyn FnMut(Vec<u8>)) {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= self.window {
            self.cut(false, emit);
        }
    }

    /// Emits every remaining chunk.
    pub fn finish(&mut self, emit: &mut dyn FnMut(Vec<u8>)) {
        self.cut(true, emit);
    }

    fn cut(&mut self, at_end: bool, emit: &mut dyn FnMut(Vec<u8>)) {
        if self.buf.is_empty() {
            return;
        }
        let p = self.params;
        let cuts: Vec<(usize, usize)> =
            fastcdc::v2020::FastCDC::new(&self.buf, p.min, p.avg, p.max)
                .map(|c| (c.offset, c.length))
                .collect();
        // Every chunk but the last ended on a content cut or at `max`: final. The
        // last one ended where the buffer ends, which is a cut only at the end.
        let keep = if at_end {
            cuts.len()
        } else {
            cuts.len().saturating_sub(1)
        };
        let mut consumed = 0;
        for &(offset, length) in &cuts[..keep] {
            emit(self.buf[offset..offset + length].to_vec());
            consumed = offset + length;
        }
        self.buf.drain(..consumed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn seeded(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    fn byte_chunks(data: &[u8], params: ByteParams, piece: usize) -> Vec<Vec<u8>> {
        let mut c = ByteChunker::new(params);
        let mut out = Vec::new();
        for part in data.chunks(piece.max(1)) {
            c.push(part, &mut |ch| out.push(ch));
        }
        c.finish(&mut |ch| out.push(ch));
        out
    }

    /// Golden: a change here changes every chunk boundary, so dedup against
    /// existing repositories. Bump the chunker version in the config if intended.
    #[test]
    fn golden_page_cut_hash() {
        let data = seeded(4096 * 4, 1);
        let hashes: Vec<u64> = data.chunks(4096).map(page_cut_hash).collect();
        let again: Vec<u64> = data.chunks(4096).map(page_cut_hash).collect();
        assert_eq!(hashes, again);
        assert_eq!(format!("{:016x}", hashes[0]), GOLDEN_PAGE_HASH_0);
    }
    const GOLDEN_PAGE_HASH_0: &str = "1bd4fd721018736e";

    #[test]
    fn golden_fastcdc_cut_points() {
        let data = seeded(1 << 20, 42);
        let lens: Vec<usize> = byte_chunks(&data, ByteParams::default(), 1 << 20)
            .iter()
            .map(Vec::len)
            .collect();
        assert_eq!(lens.iter().sum::<usize>(), 1 << 20);
        assert_eq!(format!("{:?}", &lens[..6]), GOLDEN_FASTCDC);
    }
    const GOLDEN_FASTCDC: &str = "[4711, 5639, 6761, 4023, 5396, 2073]";

    #[test]
    fn every_page_a_chunk_with_avg_one() {
        let mut c = PageChunker::new(PageParams {
            avg_pages: 1,
            max_pages: 1,
        });
        let data = seeded(4096 * 3, 3);
        let chunks: Vec<_> = data.chunks(4096).filter_map(|p| c.push(p)).collect();
        assert_eq!(chunks.len(), 3);
        assert!(c.finish().is_none());
    }

    #[test]
    fn inserting_a_page_keeps_later_chunks() {
        let params = PageParams {
            avg_pages: 4,
            max_pages: 64,
        };
        let pages: Vec<Vec<u8>> = (0..400).map(|i| seeded(4096, i + 10)).collect();
        let chunk_all = |pages: &[Vec<u8>]| {
            let mut c = PageChunker::new(params);
            let mut out: Vec<Vec<u8>> = pages.iter().filter_map(|p| c.push(p)).collect();
            out.extend(c.finish());
            out
        };
        let a = chunk_all(&pages);
        let mut edited = pages.clone();
        edited.insert(100, seeded(4096, 9999));
        let b = chunk_all(&edited);
        let shared = b.iter().filter(|c| a.contains(c)).count();
        assert!(shared + 3 >= a.len(), "shared {shared} of {}", a.len());
    }

    proptest! {
        #[test]
        fn byte_chunks_concatenate_to_input(data in proptest::collection::vec(any::<u8>(), 0..300_000), piece in 1usize..100_000) {
            let params = ByteParams { min: 1024, avg: 4096, max: 16384 };
            let chunks = byte_chunks(&data, params, piece);
            prop_assert_eq!(chunks.concat(), data.clone());
            for c in &chunks[..chunks.len().saturating_sub(1)] {
                prop_assert!(c.len() >= 1024 && c.len() <= 16384);
            }
            // Independent of how the stream was split into pieces.
            prop_assert_eq!(chunks, byte_chunks(&data, params, data.len()));
        }

        #[test]
        fn page_chunks_concatenate_to_input(npages in 0usize..200, avg_log in 0u32..4, seed in any::<u64>()) {
            let params = PageParams { avg_pages: 1 << avg_log, max_pages: 16 };
            let data = seeded(npages * 512, seed);
            let mut c = PageChunker::new(params);
            let mut out: Vec<Vec<u8>> = data.chunks(512).filter_map(|p| c.push(p)).collect();
            out.extend(c.finish());
            for ch in &out {
                prop_assert!(ch.len() % 512 == 0 && ch.len() <= 16 * 512 && !ch.is_empty());
            }
            prop_assert_eq!(out.concat(), data);
        }
    }
}
