//! On-disk encoding: the envelope every repository file starts with, and the
//! records inside (see `store-format.md`, which this module mirrors).
//!
//! Owns: magic bytes, format version, record kinds, named offsets, and rmp-serde
//! encode/decode of every record. Knows nothing of where bytes live. Every decoder
//! checks lengths before slicing and returns [`DecodeError`], never panics.

pub mod chain;
pub mod checksum;
pub mod chunkloc;
pub mod cipher;
pub mod export_map;
#[cfg(test)]
mod golden;
pub mod records;
pub mod typed;

pub use chain::{ChainEvent, ChainLink, EventKind, RemovedEntry};
pub use checksum::{ChecksumKind, FileHasher};
pub use chunkloc::ChunkLoc;
pub use cipher::Cipher;
pub use export_map::{ExportMap, TableMap, EXPORT_MAP_NAME};
pub use records::*;

/// First 8 bytes of every repository file: a non-ASCII byte, a name, CR LF
/// (catches text-mode transfers, as PNG's signature does).
pub const MAGIC: [u8; 8] = [0x8B, b'L', b'U', b'M', b'B', b'K', b'\r', b'\n'];

/// Newest format version this build reads and writes (`init` creates
/// repositories of it; older ones keep being written in their own format).
pub const FORMAT_VERSION: u16 = FormatVersion::NEWEST.0;

/// A repository's store format version (store-format.md section 8): every file
/// of the repository is written with it in its envelope, and it says what a
/// [`FileEntry`]'s checksum is ([`FormatVersion::checksum`]). Learned from the
/// config file's envelope when a repository is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FormatVersion(u16);

impl FormatVersion {
    /// Format 1: a file's checksum is the BLAKE3 of its bytes.
    pub const V1: FormatVersion = FormatVersion(1);
    /// Format 2: a file's checksum is the digest of its chunk list.
    pub const V2: FormatVersion = FormatVersion(2);
    /// What `init` creates.
    pub const NEWEST: FormatVersion = FormatVersion::V2;

    /// The version of a decoded header (which [`decode_header`] checked to be
    /// one this build reads).
    pub fn of(header: &Header) -> FormatVersion {
        FormatVersion(header.version)
    }

    /// The number in envelopes.
    pub fn get(self) -> u16 {
        self.0
    }

    /// What [`FileEntry::blake3`] holds in a repository of this format.
    pub fn checksum(self) -> ChecksumKind {
        if self > FormatVersion::V1 {
            ChecksumKind::ChunkList
        } else {
            ChecksumKind::WholeFile
        }
    }
}

impl std::fmt::Display for FormatVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Length of the envelope header.
pub const HEADER_LEN: usize = 16;
/// Offset of the little-endian u16 format version.
pub const OFF_VERSION: usize = 8;
/// Offset of the record kind byte.
pub const OFF_KIND: usize = 10;
/// Offset of the flags byte.
pub const OFF_FLAGS: usize = 11;
/// Offset of the little-endian u32 body length (0 for packs, whose length is the file's).
pub const OFF_BODY_LEN: usize = 12;
/// Length of the BLAKE3 checksum that ends every non-pack file.
pub const CHECKSUM_LEN: usize = 32;

/// Flag bit: the body is sealed (encrypted with the repository's master key).
pub const FLAG_SEALED: u8 = 0x01;

/// What a file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// The repository config.
    Config = 1,
    /// A snapshot record.
    Snapshot = 2,
    /// A pack of chunks.
    Pack = 3,
    /// A key file (the master key wrapped by a passphrase).
    Key = 4,
    /// Retention settings (the rules `forget` applies by default).
    Retention = 5,
    /// The status log (last failure).
    Status = 6,
    /// Rows changed by a snapshot against its parent (`changes/<id>`).
    Changes = 7,
    /// A lock object of a remote repository (`locks/<id>`).
    Lock = 8,
    /// A chain event: a tag/note annotation or a deletion (`chain/<id>`).
    ChainEvent = 9,
}

impl Kind {
    fn from_code(code: u8) -> Option<Kind> {
        match code {
            1 => Some(Kind::Config),
            2 => Some(Kind::Snapshot),
            3 => Some(Kind::Pack),
            4 => Some(Kind::Key),
            5 => Some(Kind::Retention),
            6 => Some(Kind::Status),
            7 => Some(Kind::Changes),
            8 => Some(Kind::Lock),
            9 => Some(Kind::ChainEvent),
            _ => None,
        }
    }
}

/// Why bytes could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// Shorter than its fixed parts.
    #[error("truncated: {0}")]
    Truncated(&'static str),
    /// Does not start with the magic bytes.
    #[error("not a lumina-backup file (bad magic)")]
    BadMagic,
    /// Written by a newer format.
    #[error("format version {found} is newer than {supported}")]
    TooNew {
        /// Version in the file.
        found: u16,
        /// Highest supported.
        supported: u16,
    },
    /// Format version 0 or otherwise impossible.
    #[error("invalid format version {0}")]
    BadVersion(u16),
    /// The kind byte is not the expected kind.
    #[error("wrong record kind {found} (expected {expected})")]
    WrongKind {
        /// Found code.
        found: u8,
        /// Expected code.
        expected: u8,
    },
    /// A flag this build does not understand, or sealed data without a key.
    #[error("unsupported flags {0:#04x}")]
    Flags(u8),
    /// The checksum does not match the content.
    #[error("checksum mismatch")]
    Checksum,
    /// A length field disagrees with the data.
    #[error("length field {field} = {value} does not fit the {available} bytes present")]
    Length {
        /// Which field.
        field: &'static str,
        /// Its value.
        value: u64,
        /// Bytes available.
        available: u64,
    },
    /// rmp-serde could not decode the body.
    #[error("record does not decode: {0}")]
    Record(String),
    /// A decoded value breaks an invariant.
    #[error("invalid record: {0}")]
    Invalid(String),
    /// A sealed object failed to open.
    #[error("{0}")]
    Crypto(#[from] crate::crypto::CryptoError),
    /// A sealed object, but no key to open it.
    #[error("the object is encrypted and no key was given")]
    NeedsKey,
    /// A plaintext object in an encrypted repository (refused: a downgrade attempt
    /// or a foreign file).
    #[error("a plaintext object in an encrypted repository")]
    Unsealed,
}

/// A parsed envelope header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Format version of the file.
    pub version: u16,
    /// Record kind.
    pub kind: Kind,
    /// Flag bits.
    pub flags: u8,
    /// Body length (non-pack files).
    pub body_len: u32,
}

/// Encodes a header of format `version`.
pub fn encode_header(
    version: FormatVersion,
    kind: Kind,
    flags: u8,
    body_len: u32,
) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(&MAGIC);
    h[OFF_VERSION..OFF_VERSION + 2].copy_from_slice(&version.get().to_le_bytes());
    h[OFF_KIND] = kind as u8;
    h[OFF_FLAGS] = flags;
    h[OFF_BODY_LEN..OFF_BODY_LEN + 4].copy_from_slice(&body_len.to_le_bytes());
    h
}

/// Decodes and checks a header against the expected kind.
pub fn decode_header(bytes: &[u8], expected: Kind) -> Result<Header, DecodeError> {
    if bytes.len() < HEADER_LEN {
        return Err(DecodeError::Truncated("header"));
    }
    if bytes[..8] != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    let version = u16::from_le_bytes([bytes[OFF_VERSION], bytes[OFF_VERSION + 1]]);
    if version == 0 {
        return Err(DecodeError::BadVersion(version));
    }
    if version > FORMAT_VERSION {
        return Err(DecodeError::TooNew {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let code = bytes[OFF_KIND];
    let kind = Kind::from_code(code)
        .filter(|k| *k == expected)
        .ok_or(DecodeError::WrongKind {
            found: code,
            expected: expected as u8,
        })?;
    let flags = bytes[OFF_FLAGS];
    if flags & !FLAG_SEALED != 0 {
        return Err(DecodeError::Flags(flags));
    }
    let mut len = [0u8; 4];
    len.copy_from_slice(&bytes[OFF_BODY_LEN..OFF_BODY_LEN + 4]);
    Ok(Header {
        version,
        kind,
        flags,
        body_len: u32::from_le_bytes(len),
    })
}

/// Wraps a body into a complete small file of format `version`: header, body,
/// BLAKE3 checksum.
pub fn seal_file(version: FormatVersion, kind: Kind, body: &[u8]) -> Vec<u8> {
    frame_file(version, kind, 0, body)
}

/// Header (with `flags`), body, checksum.
pub(crate) fn frame_file(version: FormatVersion, kind: Kind, flags: u8, body: &[u8]) -> Vec<u8> {
    let body_len = u32::try_from(body.len()).expect("records are far below 4 GiB");
    let mut out = Vec::with_capacity(HEADER_LEN + body.len() + CHECKSUM_LEN);
    out.extend_from_slice(&encode_header(version, kind, flags, body_len));
    out.extend_from_slice(body);
    let sum = blake3::hash(&out);
    out.extend_from_slice(sum.as_bytes());
    out
}

/// Checks a small plaintext file made by [`seal_file`] and returns its body.
#[cfg(any(test, feature = "internals"))]
pub fn open_file(bytes: &[u8], expected: Kind) -> Result<&[u8], DecodeError> {
    let (header, body) = unframe_file(bytes, expected)?;
    if header.flags & FLAG_SEALED != 0 {
        return Err(DecodeError::NeedsKey);
    }
    Ok(body)
}

/// Checks header, length and checksum of a small file; returns header and body.
pub(crate) fn unframe_file(bytes: &[u8], expected: Kind) -> Result<(Header, &[u8]), DecodeError> {
    let header = decode_header(bytes, expected)?;
    let body_len = header.body_len as usize;
    let expected_len = HEADER_LEN + body_len + CHECKSUM_LEN;
    if bytes.len() != expected_len {
        return Err(DecodeError::Length {
            field: "body_len",
            value: header.body_len.into(),
            available: bytes.len() as u64,
        });
    }
    let (content, sum) = bytes.split_at(HEADER_LEN + body_len);
    if blake3::hash(content).as_bytes()[..] != sum[..] {
        return Err(DecodeError::Checksum);
    }
    Ok((header, &content[HEADER_LEN..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn small_file_round_trip_and_damage() {
        let file = seal_file(FormatVersion::V1, Kind::Snapshot, b"hello");
        assert_eq!(open_file(&file, Kind::Snapshot), Ok(&b"hello"[..]));
        assert_eq!(
            open_file(&file, Kind::Config),
            Err(DecodeError::WrongKind {
                found: 2,
                expected: 1
            })
        );
        assert!(matches!(
            open_file(&file[..file.len() - 1], Kind::Snapshot),
            Err(DecodeError::Length { .. })
        ));
        let mut newer = file.clone();
        newer[OFF_VERSION] = 9;
        assert_eq!(
            open_file(&newer, Kind::Snapshot),
            Err(DecodeError::TooNew {
                found: 9,
                supported: 2
            })
        );
        assert_eq!(
            open_file(b"short", Kind::Snapshot),
            Err(DecodeError::Truncated("header"))
        );
    }

    #[test]
    fn golden_header_bytes() {
        assert_eq!(
            hex::encode(encode_header(FormatVersion::V1, Kind::Pack, 0, 0)),
            "8b4c554d424b0d0a0100030000000000"
        );
        assert_eq!(
            hex::encode(encode_header(FormatVersion::V2, Kind::Pack, 0, 0)),
            "8b4c554d424b0d0a0200030000000000"
        );
    }

    proptest! {
        #[test]
        fn any_flipped_bit_is_detected(body in proptest::collection::vec(any::<u8>(), 0..200), bit in any::<usize>()) {
            let file = seal_file(FormatVersion::NEWEST, Kind::Config, &body);
            let mut bad = file.clone();
            let i = bit % (bad.len() * 8);
            bad[i / 8] ^= 1 << (i % 8);
            prop_assert!(open_file(&bad, Kind::Config).is_err());
        }

        #[test]
        fn open_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = open_file(&bytes, Kind::Snapshot);
            let _ = decode_header(&bytes, Kind::Pack);
        }
    }
}
