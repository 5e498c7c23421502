//! zstd compression of stored frames, kept raw when compression does not help.
//!
//! Knows nothing of chunks or files: bytes in, bytes out.

use serde::{Deserialize, Serialize};

/// How a frame's bytes are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[repr(u8)]
pub enum Compression {
    /// Stored as is.
    None = 0,
    /// One zstd frame.
    Zstd = 1,
}

impl Compression {
    /// The on-disk code.
    pub fn code(self) -> u8 {
        self as u8
    }
    /// Parses the on-disk code.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Compression::None),
            1 => Some(Compression::Zstd),
            _ => None,
        }
    }
}

/// Compresses `raw` at `level` (0 = do not compress). Returns the raw bytes
/// unchanged when zstd would not save at least 1/32 of them.
pub fn compress(raw: Vec<u8>, level: i32) -> (Compression, Vec<u8>) {
    if level == 0 || raw.len() < 64 {
        return (Compression::None, raw);
    }
    match zstd::bulk::compress(&raw, level) {
        Ok(packed) if packed.len() + raw.len() / 32 < raw.len() => (Compression::Zstd, packed),
        _ => (Compression::None, raw),
    }
}

/// Reverses [`compress`]; `raw_len` is the expected size, checked exactly.
pub fn decompress(kind: Compression, stored: &[u8], raw_len: usize) -> Result<Vec<u8>, String> {
    match kind {
        Compression::None => {
            if stored.len() != raw_len {
                return Err(format!(
                    "raw frame is {} bytes, expected {raw_len}",
                    stored.len()
                ));
            }
            Ok(stored.to_vec())
        }
        Compression::Zstd => {
            let out = zstd::bulk::decompress(stored, raw_len).map_err(|e| format!("zstd: {e}"))?;
            if out.len() != raw_len {
                return Err(format!(
                    "frame decompressed to {} bytes, expected {raw_len}",
                    out.len()
                ));
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_raw_fallback() {
        let text = b"sunset beach mountain ".repeat(500);
        let (kind, packed) = compress(text.clone(), 3);
        assert_eq!(kind, Compression::Zstd);
        assert!(packed.len() < text.len() / 10);
        assert_eq!(decompress(kind, &packed, text.len()).expect("ok"), text);

        let mut x = 0x1234_5678_9abc_def1_u64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect();
        let (kind, stored) = compress(noise.clone(), 3);
        assert_eq!(kind, Compression::None);
        assert_eq!(stored, noise);
    }

    #[test]
    fn wrong_length_or_garbage_is_an_error() {
        let (kind, packed) = compress(vec![0u8; 10_000], 3);
        assert!(decompress(kind, &packed, 9_999).is_err());
        assert!(decompress(Compression::Zstd, b"not zstd at all", 10).is_err());
        assert!(decompress(Compression::None, b"abc", 4).is_err());
    }
}
