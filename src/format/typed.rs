//! Typed repository files: [`RepoFile`] ties a record type to its record kind,
//! its path in the layout and the name its seal binds, so one generic pair
//! ([`encode_file`], [`decode_file`]) frames, seals, checks and decodes every
//! small file (config, key files, retention settings, status, change
//! summaries). Reading and writing them through a backend is
//! `crate::store::files`. Snapshot records are not among them: their name is
//! the keyed hash of their body, checked between unsealing and decoding
//! (`crate::snapshot::decode_record_file`), and packs are not small files.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{
    decode, encode_named, unframe_file, ChangeSummary, Cipher, Config, DecodeError, FormatVersion,
    KeyFile, Kind, RetentionSettings, StatusRecord, FLAG_SEALED,
};
use crate::layout;

/// A record stored as a small repository file of its own.
pub trait RepoFile: Serialize + DeserializeOwned {
    /// The envelope's record kind.
    const KIND: Kind;
    /// Never sealed, even in an encrypted repository (key files, read before
    /// the master key is known).
    const NEVER_SEALED: bool = false;
    /// Path of the file called `name` in the layout (`name` is empty for the
    /// repository's single files such as `config`).
    fn path(name: &str) -> String;
    /// The name a sealed file's associated data binds (its path).
    fn bound_name(name: &str) -> String {
        Self::path(name)
    }
    /// What messages call the file.
    fn object(name: &str) -> String;
    /// Checks the decoded values' ranges.
    fn check(&self) -> Result<(), DecodeError> {
        Ok(())
    }
}

fn cipher_for<T: RepoFile>(cipher: &Cipher) -> &Cipher {
    if T::NEVER_SEALED {
        &Cipher::Plain
    } else {
        cipher
    }
}

/// The complete file for `value`: envelope, body (a named MessagePack map),
/// checksum; sealed and bound to its name when `cipher` seals.
pub fn encode_file<T: RepoFile>(
    cipher: &Cipher,
    version: FormatVersion,
    name: &str,
    value: &T,
) -> Vec<u8> {
    cipher_for::<T>(cipher).write_file(version, T::KIND, &T::bound_name(name), &encode_named(value))
}

/// Checks the envelope (magic, version, kind, length, checksum), opens the
/// seal, decodes and checks the record.
pub fn decode_file<T: RepoFile>(
    cipher: &Cipher,
    name: &str,
    bytes: &[u8],
) -> Result<T, DecodeError> {
    let body = cipher_for::<T>(cipher).read_file(T::KIND, &T::bound_name(name), bytes)?;
    let value: T = decode(&body)?;
    value.check()?;
    Ok(value)
}

/// What can be checked without the key: the envelope always, and the record
/// when the file is not sealed.
pub fn check_envelope<T: RepoFile>(bytes: &[u8]) -> Result<(), DecodeError> {
    let (header, body) = unframe_file(bytes, T::KIND)?;
    if header.flags & FLAG_SEALED == 0 {
        decode::<T>(body)?.check()?;
    }
    Ok(())
}

impl RepoFile for Config {
    const KIND: Kind = Kind::Config;
    fn path(_: &str) -> String {
        layout::CONFIG.into()
    }
    fn object(_: &str) -> String {
        "config".into()
    }
    fn check(&self) -> Result<(), DecodeError> {
        self.validate()
    }
}

impl RepoFile for KeyFile {
    const KIND: Kind = Kind::Key;
    const NEVER_SEALED: bool = true;
    fn path(id: &str) -> String {
        layout::key(id)
    }
    fn object(id: &str) -> String {
        format!("key {id}")
    }
}

impl RepoFile for RetentionSettings {
    const KIND: Kind = Kind::Retention;
    fn path(_: &str) -> String {
        layout::RETENTION.into()
    }
    fn object(_: &str) -> String {
        "retention settings".into()
    }
}

impl RepoFile for StatusRecord {
    const KIND: Kind = Kind::Status;
    fn path(_: &str) -> String {
        layout::STATUS.into()
    }
    fn object(_: &str) -> String {
        "status".into()
    }
}

/// Change summaries are named by the snapshot's hex id.
impl RepoFile for ChangeSummary {
    const KIND: Kind = Kind::Changes;
    fn path(id: &str) -> String {
        format!("{}/{id}", layout::CHANGES)
    }
    fn object(id: &str) -> String {
        format!("change summary {}", Self::path(id))
    }
}

/// A lock object of a remote repository (store-format.md section 6.10): who
/// holds the repository and since when. Sealed in an encrypted repository.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LockRecord {
    /// Host name of the holder.
    pub host: String,
    /// Process id of the holder on that host.
    pub pid: u32,
    /// What the holder is doing (`snapshot`, `prune`, ...).
    pub purpose: String,
    /// An exclusive lock (a writer) or a shared one (a reader).
    pub exclusive: bool,
    /// When the lock was taken, unix nanoseconds.
    pub created_ns: i64,
    /// When the holder last rewrote it, unix nanoseconds.
    pub refreshed_ns: i64,
}

/// Lock objects are named by a random 32-hex id.
impl RepoFile for LockRecord {
    const KIND: Kind = Kind::Lock;
    fn path(id: &str) -> String {
        format!("{}/{id}", layout::LOCKS)
    }
    fn object(id: &str) -> String {
        format!("lock object {}", Self::path(id))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::crypto::MasterKey;

    fn status() -> StatusRecord {
        StatusRecord {
            time_ns: 5,
            operation: "snapshot".into(),
            db: "a.db".into(),
            message: "disk full".into(),
        }
    }

    #[test]
    fn round_trip_plain_and_sealed() {
        let sealed = Cipher::Sealed(Arc::new(MasterKey::generate()));
        for cipher in [Cipher::Plain, sealed] {
            let file = encode_file(&cipher, FormatVersion::NEWEST, "", &status());
            assert_eq!(
                decode_file::<StatusRecord>(&cipher, "", &file),
                Ok(status())
            );
            assert_eq!(check_envelope::<StatusRecord>(&file), Ok(()));
        }
    }

    #[test]
    fn the_same_bytes_as_the_hand_written_files() {
        let file = encode_file(&Cipher::Plain, FormatVersion::NEWEST, "", &status());
        let by_hand = Cipher::Plain.write_file(
            FormatVersion::NEWEST,
            Kind::Status,
            "status",
            &encode_named(&status()),
        );
        assert_eq!(file, by_hand);
    }

    #[test]
    fn wrong_kind_damage_and_wrong_key_are_refused() {
        let key = Cipher::Sealed(Arc::new(MasterKey::generate()));
        let other = Cipher::Sealed(Arc::new(MasterKey::generate()));
        let file = encode_file(&key, FormatVersion::NEWEST, "", &status());
        assert!(matches!(
            decode_file::<RetentionSettings>(&key, "", &file),
            Err(DecodeError::WrongKind { .. })
        ));
        let mut bad = file.clone();
        bad[20] ^= 1;
        assert_eq!(
            decode_file::<StatusRecord>(&key, "", &bad),
            Err(DecodeError::Checksum)
        );
        assert!(check_envelope::<StatusRecord>(&bad).is_err());
        assert!(decode_file::<StatusRecord>(&other, "", &file).is_err());
        assert_eq!(
            decode_file::<StatusRecord>(&Cipher::Plain, "", &file),
            Err(DecodeError::NeedsKey)
        );
        // A summary is bound to its name: moved to another name, it fails.
        let rec = ChangeSummary {
            parent: crate::id::SnapshotId([1; 32]),
            changed_rows: 3,
        };
        let f = encode_file(&key, FormatVersion::NEWEST, "aa", &rec);
        assert_eq!(decode_file::<ChangeSummary>(&key, "aa", &f), Ok(rec));
        assert!(decode_file::<ChangeSummary>(&key, "bb", &f).is_err());
    }

    #[test]
    fn key_files_are_never_sealed() {
        let key = Cipher::Sealed(Arc::new(MasterKey::generate()));
        let k = KeyFile {
            kdf: "argon2id".into(),
            params: crate::crypto::KdfParams::default(),
            salt: vec![0; 16],
            wrapped: vec![1; 72],
            created: 1,
            label: String::new(),
        };
        let file = encode_file(&key, FormatVersion::NEWEST, "ab", &k);
        assert_eq!(decode_file::<KeyFile>(&Cipher::Plain, "ab", &file), Ok(k));
        assert_eq!(file[super::super::OFF_FLAGS] & FLAG_SEALED, 0);
    }
}
