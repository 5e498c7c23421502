//! Content ids: BLAKE3 digests wrapped in newtypes so a chunk id can never be
//! passed where a snapshot id is expected.
//!
//! Owns: hex formatting and parsing, the short display form, and the id function
//! (`IdHasher`) that names chunks. Knows nothing of files or repositories.

use std::fmt;

/// Length in bytes of every id.
pub const ID_LEN: usize = 32;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub [u8; ID_LEN]);

        impl $name {
            /// The id as lowercase hex (64 characters).
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
            /// The first 12 hex characters, for human output.
            pub fn short(&self) -> String {
                hex::encode(&self.0[..6])
            }
            /// Parses a full 64-character hex id.
            pub fn from_hex(s: &str) -> Option<Self> {
                let mut out = [0u8; ID_LEN];
                hex::decode_to_slice(s, &mut out).ok()?;
                Some(Self(out))
            }
            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8; ID_LEN] {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let bytes: serde_bytes::ByteBuf = serde::Deserialize::deserialize(d)?;
                let arr: [u8; ID_LEN] = bytes.as_slice().try_into().map_err(|_| {
                    serde::de::Error::invalid_length(bytes.len(), &"a 32-byte id")
                })?;
                Ok(Self(arr))
            }
        }
    };
}

id_type!(
    /// Names a stored chunk: BLAKE3 of its plaintext (keyed in encrypted repositories).
    ChunkId
);
id_type!(
    /// Names a snapshot record: BLAKE3 of its encoded bytes.
    SnapshotId
);
id_type!(
    /// Names a pack file: BLAKE3 of the whole file as written.
    PackId
);

/// Plain BLAKE3 of some bytes (whole-file checksums, pack names, record names).
pub fn blake3_of(data: &[u8]) -> [u8; ID_LEN] {
    *blake3::hash(data).as_bytes()
}

/// Computes chunk ids. Plain BLAKE3 for unencrypted repositories; keyed BLAKE3
/// for encrypted ones, so equal plaintext cannot be confirmed from outside.
#[derive(Clone)]
pub enum IdHasher {
    /// `blake3(data)`.
    Plain,
    /// `blake3::keyed_hash(key, data)`.
    Keyed([u8; 32]),
}

impl IdHasher {
    /// The id of `data`.
    pub fn chunk_id(&self, data: &[u8]) -> ChunkId {
        match self {
            IdHasher::Plain => ChunkId(*blake3::hash(data).as_bytes()),
            IdHasher::Keyed(key) => ChunkId(*blake3::keyed_hash(key, data).as_bytes()),
        }
    }
}

impl fmt::Debug for IdHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdHasher::Plain => f.write_str("IdHasher::Plain"),
            IdHasher::Keyed(_) => f.write_str("IdHasher::Keyed(..)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_short() {
        let id = ChunkId(blake3_of(b"abc"));
        assert_eq!(ChunkId::from_hex(&id.to_hex()), Some(id));
        assert_eq!(id.short().len(), 12);
        assert!(id.to_hex().starts_with(&id.short()));
        assert_eq!(ChunkId::from_hex("zz"), None);
        assert_eq!(ChunkId::from_hex(&"a".repeat(63)), None);
    }

    #[test]
    fn keyed_differs_from_plain() {
        let plain = IdHasher::Plain.chunk_id(b"x");
        let keyed = IdHasher::Keyed([7; 32]).chunk_id(b"x");
        assert_ne!(plain, keyed);
        assert_eq!(plain.0, blake3_of(b"x"));
    }

    #[test]
    fn serde_round_trip() {
        let id = SnapshotId([9; 32]);
        let bytes = rmp_serde::to_vec(&id).expect("encode");
        let back: SnapshotId = rmp_serde::from_slice(&bytes).expect("decode");
        assert_eq!(back, id);
        let short: Result<SnapshotId, _> = rmp_serde::from_slice(
            &rmp_serde::to_vec(&serde_bytes::Bytes::new(&[1, 2])).expect("e"),
        );
        assert!(short.is_err());
    }
}
