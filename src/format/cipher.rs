//! Sealing of repository objects: plaintext, or XChaCha20-Poly1305 under the
//! master key with associated data binding each object to its kind and name.
//!
//! Associated data (see `store-format.md`, "Crypto"):
//! - small files (config, snapshot records): the 16-byte header, then the object's
//!   name (`config`, or the snapshot id in hex);
//! - frames: `"frame" | raw length (u32 LE) | compression code (u8)` (a frame's
//!   chunks are re-hashed with the keyed id function after opening, so a frame
//!   moved elsewhere is caught there);
//! - pack descriptions: `"pack-description"`.

use std::sync::Arc;

use super::{
    frame_file, unframe_file, DecodeError, FormatVersion, Header, Kind, FLAG_SEALED, HEADER_LEN,
};
use crate::crypto::MasterKey;
use crate::id::IdHasher;

/// How objects of a repository are stored.
#[derive(Clone, Debug)]
pub enum Cipher {
    /// Unencrypted repository.
    Plain,
    /// Encrypted repository.
    Sealed(Arc<MasterKey>),
}

impl Cipher {
    /// Whether objects are encrypted.
    pub fn is_sealed(&self) -> bool {
        matches!(self, Cipher::Sealed(_))
    }

    /// The envelope flags this cipher writes.
    pub fn flags(&self) -> u8 {
        if self.is_sealed() {
            FLAG_SEALED
        } else {
            0
        }
    }

    /// The id function for chunks and records.
    pub fn id_hasher(&self) -> IdHasher {
        match self {
            Cipher::Plain => IdHasher::Plain,
            Cipher::Sealed(k) => k.id_hasher(),
        }
    }

    /// A complete small file of format `version` holding `body`, sealed and
    /// bound to `name` if encrypted.
    pub fn write_file(
        &self,
        version: FormatVersion,
        kind: Kind,
        name: &str,
        body: &[u8],
    ) -> Vec<u8> {
        match self {
            Cipher::Plain => frame_file(version, kind, 0, body),
            Cipher::Sealed(k) => {
                let sealed_len = body.len() + crate::crypto::SEAL_OVERHEAD;
                let header = super::encode_header(
                    version,
                    kind,
                    FLAG_SEALED,
                    u32::try_from(sealed_len).expect("records are far below 4 GiB"),
                );
                let sealed = k.seal(&file_ad(&header, name), body);
                frame_file(version, kind, FLAG_SEALED, &sealed)
            }
        }
    }

    /// Checks and opens a small file written by [`Cipher::write_file`].
    pub fn read_file(&self, kind: Kind, name: &str, bytes: &[u8]) -> Result<Vec<u8>, DecodeError> {
        let (header, body) = unframe_file(bytes, kind)?;
        self.open_body(&header, bytes, name, body)
    }

    fn open_body(
        &self,
        header: &Header,
        bytes: &[u8],
        name: &str,
        body: &[u8],
    ) -> Result<Vec<u8>, DecodeError> {
        let sealed = header.flags & FLAG_SEALED != 0;
        match (self, sealed) {
            (Cipher::Plain, false) => Ok(body.to_vec()),
            (Cipher::Plain, true) => Err(DecodeError::NeedsKey),
            (Cipher::Sealed(_), false) => Err(DecodeError::Unsealed),
            (Cipher::Sealed(k), true) => {
                let mut head = [0u8; HEADER_LEN];
                head.copy_from_slice(&bytes[..HEADER_LEN]);
                Ok(k.open(&file_ad(&head, name), body)?)
            }
        }
    }

    /// Seals a frame's stored bytes (after compression); plaintext passes through.
    pub fn seal_frame(&self, raw_len: u32, compression: u8, stored: Vec<u8>) -> Vec<u8> {
        match self {
            Cipher::Plain => stored,
            Cipher::Sealed(k) => k.seal(&frame_ad(raw_len, compression), &stored),
        }
    }

    /// Opens a frame sealed by [`Cipher::seal_frame`].
    pub fn open_frame(
        &self,
        raw_len: u32,
        compression: u8,
        stored: &[u8],
    ) -> Result<Vec<u8>, DecodeError> {
        match self {
            Cipher::Plain => Ok(stored.to_vec()),
            Cipher::Sealed(k) => Ok(k.open(&frame_ad(raw_len, compression), stored)?),
        }
    }

    /// Seals a pack description.
    pub fn seal_description(&self, desc: Vec<u8>) -> Vec<u8> {
        match self {
            Cipher::Plain => desc,
            Cipher::Sealed(k) => k.seal(DESCRIPTION_AD, &desc),
        }
    }

    /// Opens a pack description; `sealed` is the pack header's flag.
    pub fn open_description(&self, sealed: bool, stored: &[u8]) -> Result<Vec<u8>, DecodeError> {
        match (self, sealed) {
            (Cipher::Plain, false) => Ok(stored.to_vec()),
            (Cipher::Plain, true) => Err(DecodeError::NeedsKey),
            (Cipher::Sealed(_), false) => Err(DecodeError::Unsealed),
            (Cipher::Sealed(k), true) => Ok(k.open(DESCRIPTION_AD, stored)?),
        }
    }
}

const DESCRIPTION_AD: &[u8] = b"pack-description";

fn file_ad(header: &[u8; HEADER_LEN], name: &str) -> Vec<u8> {
    let mut ad = header.to_vec();
    ad.extend_from_slice(name.as_bytes());
    ad
}

/// Associated data of a frame.
fn frame_ad(raw_len: u32, compression: u8) -> Vec<u8> {
    let mut ad = b"frame".to_vec();
    ad.extend_from_slice(&raw_len.to_le_bytes());
    ad.push(compression);
    ad
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn files_bind_kind_and_name_and_refuse_downgrade() {
        let c = Cipher::Sealed(Arc::new(MasterKey::generate()));
        let f = c.write_file(FormatVersion::NEWEST, Kind::Snapshot, "abc", b"body");
        assert_eq!(
            c.read_file(Kind::Snapshot, "abc", &f).expect("open"),
            b"body"
        );
        assert!(matches!(
            c.read_file(Kind::Snapshot, "abd", &f),
            Err(DecodeError::Crypto(_))
        ));
        assert!(matches!(
            c.read_file(Kind::Config, "abc", &f),
            Err(DecodeError::WrongKind { .. })
        ));
        assert!(matches!(
            Cipher::Plain.read_file(Kind::Snapshot, "abc", &f),
            Err(DecodeError::NeedsKey)
        ));
        let plain = Cipher::Plain.write_file(FormatVersion::NEWEST, Kind::Snapshot, "abc", b"body");
        assert!(matches!(
            c.read_file(Kind::Snapshot, "abc", &plain),
            Err(DecodeError::Unsealed)
        ));
        assert!(!f.windows(4).any(|w| w == b"body"));
    }

    proptest! {
        #[test]
        fn every_flipped_bit_of_a_sealed_file_is_detected(body in proptest::collection::vec(any::<u8>(), 0..100), bit in any::<usize>()) {
            let c = Cipher::Sealed(Arc::new(MasterKey::generate()));
            let f = c.write_file(FormatVersion::NEWEST, Kind::Config, "config", &body);
            let mut bad = f.clone();
            let i = bit % (bad.len() * 8);
            bad[i / 8] ^= 1 << (i % 8);
            prop_assert!(c.read_file(Kind::Config, "config", &bad).is_err());
        }

        #[test]
        fn frames_bound_to_their_description(data in proptest::collection::vec(any::<u8>(), 0..100)) {
            let c = Cipher::Sealed(Arc::new(MasterKey::generate()));
            let sealed = c.seal_frame(7, 1, data.clone());
            prop_assert_eq!(c.open_frame(7, 1, &sealed).expect("open"), data);
            prop_assert!(c.open_frame(8, 1, &sealed).is_err());
            prop_assert!(c.open_frame(7, 0, &sealed).is_err());
        }
    }
}
