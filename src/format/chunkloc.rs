//! A chunk's location in the index: the one fixed-width record of the index's
//! chunk table (store-format.md section 7, index layout 3). Bytes are pinned by
//! the golden tests.
//!
//! The pack is named by its *pack number*, a u32 the index assigns to each pack
//! it lists (table `pack_ids`), not by its 32-byte id: 28 bytes instead of 58.

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

/// Encoded length of a [`ChunkLoc`] in the index: pack number (4), frame offset
/// (6, a u48), frame stored and raw length (4 + 4), compression (1), chunk
/// offset and length (4 + 4), kind (1).
pub const LOC_LEN: usize = 4 + 6 + 4 + 4 + 1 + 4 + 4 + 1;

/// Largest frame offset a location can hold (2^48 − 1).
pub const MAX_FRAME_OFFSET: u64 = (1 << 48) - 1;

impl ChunkLoc {
    /// Fixed-width encoding for the index, with `pack_no` standing for
    /// [`ChunkLoc::pack`]. `None` when the frame offset exceeds
    /// [`MAX_FRAME_OFFSET`] (a pack of 256 TiB; no writer makes one).
    pub fn encode(&self, pack_no: u32) -> Option<[u8; LOC_LEN]> {
        if self.frame_offset > MAX_FRAME_OFFSET {
            return None;
        }
        let mut b = [0u8; LOC_LEN];
        b[..4].copy_from_slice(&pack_no.to_le_bytes());
        b[4..10].copy_from_slice(&self.frame_offset.to_le_bytes()[..6]);
        b[10..14].copy_from_slice(&self.frame_len.to_le_bytes());
        b[14..18].copy_from_slice(&self.frame_raw_len.to_le_bytes());
        b[18] = self.compression;
        b[19..23].copy_from_slice(&self.offset.to_le_bytes());
        b[23..27].copy_from_slice(&self.len.to_le_bytes());
        b[27] = self.kind;
        Some(b)
    }

    /// The pack number of an encoded location (`None` if `b` is too short).
    pub fn pack_no(b: &[u8]) -> Option<u32> {
        Some(u32::from_le_bytes(b.get(..4)?.try_into().ok()?))
    }

    /// Decodes [`ChunkLoc::encode`]'s output; `pack` turns the pack number
    /// into the pack's id (`None`: a number the index does not list, refused).
    pub fn decode(b: &[u8], pack: impl FnOnce(u32) -> Option<PackId>) -> Result<Self, DecodeError> {
        if b.len() != LOC_LEN {
            return Err(DecodeError::Truncated("chunk location"));
        }
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let mut off = [0u8; 8];
        off[..6].copy_from_slice(&b[4..10]);
        let pack_no = u32_at(0);
        let pack = pack(pack_no).ok_or_else(|| {
            DecodeError::Invalid(format!(
                "chunk location names pack number {pack_no}, not listed"
            ))
        })?;
        let loc = ChunkLoc {
            pack,
            frame_offset: u64::from_le_bytes(off),
            frame_len: u32_at(10),
            frame_raw_len: u32_at(14),
            compression: b[18],
            offset: u32_at(19),
            len: u32_at(23),
            kind: b[27],
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pack_of(n: u32) -> Option<PackId> {
        let mut id = [0u8; 32];
        id[..4].copy_from_slice(&n.to_le_bytes());
        Some(PackId(id))
    }

    #[test]
    fn a_location_is_28_bytes_and_round_trips() {
        let loc = ChunkLoc {
            pack: pack_of(7).expect("id"),
            frame_offset: MAX_FRAME_OFFSET,
            frame_len: 9,
            frame_raw_len: 4096,
            compression: 1,
            offset: 96,
            len: 4000,
            kind: 1,
        };
        let b = loc.encode(7).expect("encodes");
        assert_eq!(b.len(), 28);
        assert_eq!(ChunkLoc::pack_no(&b), Some(7));
        assert_eq!(ChunkLoc::decode(&b, pack_of).expect("decodes"), loc);
        let far = ChunkLoc {
            frame_offset: MAX_FRAME_OFFSET + 1,
            ..loc
        };
        assert!(far.encode(7).is_none());
        assert!(
            ChunkLoc::decode(&b, |_| None).is_err(),
            "unknown pack number"
        );
        assert!(ChunkLoc::decode(&b[..27], pack_of).is_err());
    }

    proptest! {
        /// Any bytes decode to a location or an error, never a panic; what
        /// decodes fits its frame and encodes back to the same bytes.
        #[test]
        fn location_decoder_total(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            if let Ok(loc) = ChunkLoc::decode(&bytes, pack_of) {
                prop_assert!(u64::from(loc.offset) + u64::from(loc.len) <= u64::from(loc.frame_raw_len));
                let no = ChunkLoc::pack_no(&bytes).expect("number");
                prop_assert_eq!(&loc.encode(no).expect("fits")[..], &bytes[..]);
            }
        }

        /// Every location with an offset in range round-trips.
        #[test]
        fn location_round_trips(no in any::<u32>(), off in 0..=MAX_FRAME_OFFSET, fl in any::<u32>(),
                                raw in any::<u32>(), comp in 0u8..2, at in any::<u32>(), len in any::<u32>(), kind in any::<u8>()) {
            let at = at % (raw.max(1));
            let len = len % (raw - at.min(raw)).max(1);
            let loc = ChunkLoc { pack: pack_of(no).expect("id"), frame_offset: off, frame_len: fl,
                                 frame_raw_len: raw, compression: comp, offset: at, len, kind };
            let b = loc.encode(no).expect("fits");
            prop_assert_eq!(ChunkLoc::decode(&b, pack_of).expect("decodes"), loc);
        }
    }
}
