//! Pack files: frames of chunks followed by a self-description, so the index can
//! be rebuilt from the packs alone.
//!
//! Layout (all integers little-endian; see `store-format.md`):
//! `header(16, kind=Pack) | frame* | description | trailer(48)` where the trailer is
//! `desc_len u32 | reserved u32 | blake3(description) [32] | TRAILER_MAGIC [8]`.

use crate::compress::Compression;
use crate::format::{
    self, ChunkDesc, Cipher, DecodeError, FormatVersion, FrameDesc, Kind, PackDescription,
    FLAG_SEALED, HEADER_LEN,
};
use crate::id::{ChunkId, PackId};

/// Last 8 bytes of every pack.
pub const TRAILER_MAGIC: [u8; 8] = [0x8B, b'P', b'K', b'E', b'N', b'D', b'\r', b'\n'];
/// Length of the trailer.
pub const TRAILER_LEN: usize = 48;

pub use crate::format::ChunkLoc;

/// Path of a pack in the repository.
pub fn pack_path(id: &PackId) -> String {
    crate::layout::pack(id)
}

/// Builds one pack in memory.
#[derive(Debug)]
pub struct PackWriter {
    buf: Vec<u8>,
    frames: Vec<FrameDesc>,
}

impl PackWriter {
    /// An empty pack (header only) with the cipher's flags.
    #[cfg(any(test, feature = "internals"))]
    pub fn new(version: FormatVersion, flags: u8) -> Self {
        Self::with_capacity(version, flags, 1 << 20)
    }

    /// An empty pack whose buffer is sized for `capacity` bytes up front (so it
    /// does not double past the pack target).
    pub fn with_capacity(version: FormatVersion, flags: u8, capacity: usize) -> Self {
        let mut buf = Vec::with_capacity(capacity);
        buf.extend_from_slice(&format::encode_header(version, Kind::Pack, flags, 0));
        PackWriter {
            buf,
            frames: Vec::new(),
        }
    }

    /// Bytes so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether no frame was added.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Appends a stored frame; returns its offset.
    pub fn add_frame(
        &mut self,
        compression: Compression,
        stored: &[u8],
        chunks: Vec<ChunkDesc>,
    ) -> u64 {
        let offset = self.buf.len() as u64;
        let raw_len: u32 = chunks.iter().map(|c| c.len).sum();
        self.buf.extend_from_slice(stored);
        self.frames.push(FrameDesc {
            offset,
            stored_len: u32::try_from(stored.len()).expect("frames are far below 4 GiB"),
            raw_len,
            compression: compression.code(),
            chunks,
        });
        offset
    }

    /// Appends description and trailer; returns the pack's id, bytes, and description.
    pub fn finish(mut self, cipher: &Cipher) -> (PackId, Vec<u8>, PackDescription) {
        let desc = PackDescription {
            frames: std::mem::take(&mut self.frames),
        };
        let encoded = cipher.seal_description(format::encode_compact(&desc));
        let desc_len = u32::try_from(encoded.len()).expect("descriptions are far below 4 GiB");
        self.buf.extend_from_slice(&encoded);
        self.buf.extend_from_slice(&desc_len.to_le_bytes());
        self.buf.extend_from_slice(&0u32.to_le_bytes());
        self.buf
            .extend_from_slice(blake3::hash(&encoded).as_bytes());
        self.buf.extend_from_slice(&TRAILER_MAGIC);
        let id = PackId(crate::id::blake3_of(&self.buf));
        (id, self.buf, desc)
    }
}

/// Parses the trailer (the last [`TRAILER_LEN`] bytes of a pack of `file_len`
/// bytes); returns the description's offset, length and checksum.
pub fn parse_trailer(file_len: u64, trailer: &[u8]) -> Result<(u64, usize, [u8; 32]), DecodeError> {
    if trailer.len() != TRAILER_LEN || file_len < (HEADER_LEN + TRAILER_LEN) as u64 {
        return Err(DecodeError::Truncated("pack trailer"));
    }
    if trailer[40..48] != TRAILER_MAGIC {
        return Err(DecodeError::Truncated(
            "pack trailer magic missing (file cut short?)",
        ));
    }
    let desc_len = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    let room = file_len - (HEADER_LEN + TRAILER_LEN) as u64;
    if u64::from(desc_len) > room {
        return Err(DecodeError::Length {
            field: "desc_len",
            value: desc_len.into(),
            available: room,
        });
    }
    let mut sum = [0u8; 32];
    sum.copy_from_slice(&trailer[8..40]);
    Ok((
        file_len - TRAILER_LEN as u64 - u64::from(desc_len),
        desc_len as usize,
        sum,
    ))
}

/// Decodes and validates a description read from `desc_offset`.
pub fn parse_description(
    desc: &[u8],
    sum: &[u8; 32],
    desc_offset: u64,
    flags: u8,
    cipher: &Cipher,
) -> Result<PackDescription, DecodeError> {
    if blake3::hash(desc).as_bytes() != sum {
        return Err(DecodeError::Checksum);
    }
    let plain = cipher.open_description(flags & FLAG_SEALED != 0, desc)?;
    let d: PackDescription = format::decode(&plain)?;
    d.validate(HEADER_LEN as u64, desc_offset)?;
    Ok(d)
}

/// Parses a whole pack held in memory (verify and tests).
pub fn parse_pack(bytes: &[u8], cipher: &Cipher) -> Result<PackDescription, DecodeError> {
    let header = format::decode_header(bytes, Kind::Pack)?;
    if bytes.len() < HEADER_LEN + TRAILER_LEN {
        return Err(DecodeError::Truncated("pack"));
    }
    let (off, len, sum) = parse_trailer(bytes.len() as u64, &bytes[bytes.len() - TRAILER_LEN..])?;
    let start = usize::try_from(off).map_err(|_| DecodeError::Truncated("pack"))?;
    parse_description(&bytes[start..start + len], &sum, off, header.flags, cipher)
}

/// Locations of every chunk a description lists.
pub fn locations(pack: PackId, desc: &PackDescription) -> Vec<(ChunkId, ChunkLoc)> {
    let mut out = Vec::new();
    for f in &desc.frames {
        let mut offset = 0u32;
        for c in &f.chunks {
            out.push((
                c.id,
                ChunkLoc {
                    pack,
                    frame_offset: f.offset,
                    frame_len: f.stored_len,
                    frame_raw_len: f.raw_len,
                    compression: f.compression,
                    offset,
                    len: c.len,
                    kind: c.kind,
                },
            ));
            offset += c.len;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> (PackId, Vec<u8>, PackDescription) {
        let mut w = PackWriter::new(FormatVersion::NEWEST, 0);
        let a = ChunkDesc {
            id: ChunkId([1; 32]),
            kind: 0,
            len: 3,
        };
        let b = ChunkDesc {
            id: ChunkId([2; 32]),
            kind: 1,
            len: 2,
        };
        w.add_frame(Compression::None, b"abcde", vec![a, b]);
        w.finish(&Cipher::Plain)
    }

    #[test]
    fn pack_round_trip() {
        let (id, bytes, desc) = sample();
        assert_eq!(id.0, crate::id::blake3_of(&bytes));
        assert_eq!(parse_pack(&bytes, &Cipher::Plain).expect("parse"), desc);
        let locs = locations(id, &desc);
        assert_eq!(locs[1].1.offset, 3);
        for (_, loc) in &locs {
            let b = loc.encode(5).expect("encodes");
            assert_eq!(ChunkLoc::decode(&b, |_| Some(id)).expect("loc"), *loc);
        }
    }

    #[test]
    fn truncated_or_flipped_pack_is_refused() {
        let (_, bytes, _) = sample();
        for cut in 0..bytes.len() {
            assert!(
                parse_pack(&bytes[..cut], &Cipher::Plain).is_err(),
                "cut at {cut}"
            );
        }
        let mut bad = bytes.clone();
        let n = bad.len();
        bad[n - TRAILER_LEN - 3] ^= 0x10;
        assert!(parse_pack(&bad, &Cipher::Plain).is_err());
    }

    proptest! {
        #[test]
        fn parse_pack_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400), flip in any::<usize>()) {
            let _ = parse_pack(&bytes, &Cipher::Plain);
            let (_, good, _) = sample();
            let mut bad = good.clone();
            let i = flip % (bad.len() * 8);
            bad[i / 8] ^= 1 << (i % 8);
            let _ = parse_pack(&bad, &Cipher::Plain);
        }
    }
}
