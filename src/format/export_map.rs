//! The export map (`exports.map`, store-format.md section 11.3): how each JSON
//! export of a snapshot was cut into segments, so the next snapshot renders
//! again only the segments whose rows changed and reuses the others' chunks.
//!
//! Owns the map's encoding (a MessagePack array record, version 1) and its
//! validation. Knows nothing of pages or SQL: `repo::export_plan` fills it.

use serde::{Deserialize, Serialize};

use super::{decode, encode_compact, DecodeError};

/// The map's name inside a snapshot.
pub const EXPORT_MAP_NAME: &str = "exports.map";

/// The version this build writes and reads.
pub const EXPORT_MAP_VERSION: u32 = 1;

/// Most tables a map describes (the four Lumina tables).
const MAX_TABLES: usize = 16;

/// The export map of one snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportMap {
    /// [`EXPORT_MAP_VERSION`].
    pub version: u32,
    /// One entry per export file that was cut into segments.
    pub tables: Vec<TableMap>,
}

/// How one export file was cut, and the facts about its table's pages the next
/// snapshot needs to know which rows may have changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableMap {
    /// The export file's name (`metadata.json`).
    pub file: String,
    /// Digest of everything the rendering depends on besides the rows (schema,
    /// page layout, export format); a map of another context is not used.
    #[serde(with = "serde_bytes")]
    pub context: [u8; 32],
    /// Index leaves per segment on average (the segment cut divisor).
    pub group: u32,
    /// Every page of the table's b-tree (interior and leaves), ascending, as
    /// LEB128 differences from the previous one (the first from 0).
    #[serde(with = "serde_bytes")]
    pub pages: Vec<u8>,
    /// For each leaf of the table holding rows that overflow: the leaf and
    /// every overflow page of its cells.
    pub overflow: Vec<(u32, Vec<u32>)>,
    /// Chunks of the file before the first segment (the header).
    pub head_chunks: u32,
    /// The segments in file order; the chunks after the last one are the trailer.
    pub segments: Vec<Segment>,
}

/// One segment: the rows of a run of index leaves, chunked on its own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// Digest of what the segment's bytes are a function of (section 11.3).
    #[serde(with = "serde_bytes")]
    pub fingerprint: [u8; 32],
    /// Its chunks in the file.
    pub chunks: u32,
    /// Its bytes.
    pub bytes: u64,
    /// Its rows.
    pub rows: u64,
}

impl ExportMap {
    /// The map's bytes (a MessagePack array).
    pub fn encode(&self) -> Vec<u8> {
        encode_compact(self)
    }

    /// Decodes and validates a map.
    pub fn decode(bytes: &[u8]) -> Result<ExportMap, DecodeError> {
        let map: ExportMap = decode(bytes)?;
        if map.version != EXPORT_MAP_VERSION {
            return Err(DecodeError::Invalid(format!(
                "export map version {} is not {EXPORT_MAP_VERSION}",
                map.version
            )));
        }
        if map.tables.len() > MAX_TABLES {
            return Err(DecodeError::Invalid(
                "export map lists too many tables".into(),
            ));
        }
        for t in &map.tables {
            t.validate()?;
        }
        Ok(map)
    }
}

impl TableMap {
    fn validate(&self) -> Result<(), DecodeError> {
        if self.group == 0 {
            return Err(DecodeError::Invalid(format!(
                "export map of {}: group 0",
                self.file
            )));
        }
        self.page_list()?;
        Ok(())
    }

    /// The table's pages, ascending.
    pub fn page_list(&self) -> Result<Vec<u32>, DecodeError> {
        let bad = |what: &str| DecodeError::Invalid(format!("export map of {}: {what}", self.file));
        let mut out = Vec::new();
        let mut at = 0usize;
        let mut last = 0u64;
        while at < self.pages.len() {
            let (delta, used) = leb128(&self.pages[at..]).ok_or_else(|| bad("bad page list"))?;
            at += used;
            let page = last + delta;
            if delta == 0 || page > u64::from(u32::MAX) {
                return Err(bad("page list not ascending"));
            }
            out.push(page as u32);
            last = page;
        }
        Ok(out)
    }

    /// Encodes ascending `pages` for [`TableMap::pages`].
    pub fn encode_pages(pages: &[u32]) -> Vec<u8> {
        let mut out = Vec::with_capacity(pages.len() + 8);
        let mut last = 0u32;
        for &p in pages {
            let mut d = u64::from(p.wrapping_sub(last));
            loop {
                let byte = (d & 0x7f) as u8;
                d >>= 7;
                if d == 0 {
                    out.push(byte);
                    break;
                }
                out.push(byte | 0x80);
            }
            last = p;
        }
        out
    }
}

/// One unsigned LEB128 value (at most 10 bytes) and its length.
fn leb128(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &byte) in b.iter().enumerate().take(10) {
        let part = u64::from(byte & 0x7f);
        if i == 9 && part > 1 {
            return None;
        }
        v |= part << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample(pages: Vec<u32>) -> ExportMap {
        ExportMap {
            version: EXPORT_MAP_VERSION,
            tables: vec![TableMap {
                file: "metadata.json".into(),
                context: [7; 32],
                group: 3,
                pages: TableMap::encode_pages(&pages),
                overflow: vec![(5, vec![9, 10])],
                head_chunks: 1,
                segments: vec![Segment {
                    fingerprint: [1; 32],
                    chunks: 2,
                    bytes: 100_000,
                    rows: 40,
                }],
            }],
        }
    }

    #[test]
    fn refuses_other_versions_and_bad_page_lists() {
        let mut m = sample(vec![2, 3, 90_000]);
        m.version = 2;
        assert!(ExportMap::decode(&m.encode()).is_err());
        let mut m = sample(vec![2]);
        m.tables[0].pages = vec![0x80]; // unterminated
        assert!(ExportMap::decode(&m.encode()).is_err());
        let mut m = sample(vec![2]);
        m.tables[0].pages = vec![2, 0]; // not ascending
        assert!(ExportMap::decode(&m.encode()).is_err());
        let mut m = sample(vec![2]);
        m.tables[0].group = 0;
        assert!(ExportMap::decode(&m.encode()).is_err());
    }

    proptest! {
        #[test]
        fn round_trips(mut pages in proptest::collection::vec(1u32.., 0..200)) {
            pages.sort_unstable();
            pages.dedup();
            let m = sample(pages.clone());
            let back = ExportMap::decode(&m.encode()).expect("decode");
            prop_assert_eq!(&back, &m);
            prop_assert_eq!(back.tables[0].page_list().expect("pages"), pages);
        }

        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = ExportMap::decode(&bytes);
        }

        #[test]
        fn never_panics_on_damaged_maps(at in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let mut b = sample(vec![1, 2, 300, 70_000]).encode();
            let i = at.index(b.len());
            b[i] = byte;
            // One byte can turn the table count to 0: then there is no table to read.
            if let Some(t) = ExportMap::decode(&b).ok().and_then(|m| m.tables.into_iter().next()) {
                let _ = t.page_list();
            }
        }
    }
}
