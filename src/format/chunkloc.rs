//! A chunk's location in the index: the one fixed-width record of the index's
//! chunk table (store-format.md, "Index"). Bytes are pinned by the golden tests.

use super::DecodeError;
use crate::compress::Compression;
use crate::id::PackId;

/// Where a chunk is: enough to read it with one ranged read and one decompression.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkLoc {
    /// The pack holding it.
    pub pack: PackId,
    /// Offset of its frame in the pack.
    pub frame_offset: u64,
    /// Stored length of the frame.
    pub frame_len: u32,
    /// Raw length of the frame.
    pub frame_raw_len: u32,
    /// Frame compression code.
    pub compression: u8,
    /// Offset of the chunk inside the decompressed frame.
    pub offset: u32,
    /// Chunk length.
    pub len: u32,
    /// 0 data, 1 tree node.
    pub kind: u8,
}

/// Encoded length of a [`ChunkLoc`] in the index.
pub const LOC_LEN: usize = 32 + 8 + 4 + 4 + 1 + 4 + 4 + 1;

impl ChunkLoc {
    /// Fixed-width encoding for the index.
    pub fn encode(&self) -> [u8; LOC_LEN] {
        let mut b = [0u8; LOC_LEN];
        b[..32].copy_from_slice(&self.pack.0);
        b[32..40].copy_from_slice(&self.frame_offset.to_le_bytes());
        b[40..44].copy_from_slice(&self.frame_len.to_le_bytes());
        b[44..48].copy_from_slice(&self.frame_raw_len.to_le_bytes());
        b[48] = self.compression;
        b[49..53].copy_from_slice(&self.offset.to_le_bytes());
        b[53..57].copy_from_slice(&self.len.to_le_bytes());
        b[57] = self.kind;
        b
    }

    /// Decodes [`ChunkLoc::encode`]'s output.
    pub fn decode(b: &[u8]) -> Result<Self, DecodeError> {
        if b.len() != LOC_LEN {
            return Err(DecodeError::Truncated("chunk location"));
        }
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let mut pack = [0u8; 32];
        pack.copy_from_slice(&b[..32]);
        let mut off = [0u8; 8];
        off.copy_from_slice(&b[32..40]);
        let loc = ChunkLoc {
            pack: PackId(pack),
            frame_offset: u64::from_le_bytes(off),
            frame_len: u32_at(40),
            frame_raw_len: u32_at(44),
            compression: b[48],
            offset: u32_at(49),
            len: u32_at(53),
            kind: b[57],
        };
        if u64::from(loc.offset) + u64::from(loc.len) > u64::from(loc.frame_raw_len)
            || Compression::from_code(loc.compression).is_none()
        {
            return Err(DecodeError::Invalid(
                "chunk location out of its frame".into(),
            ));
        }
        Ok(loc)
    }
}
