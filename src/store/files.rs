//! Reading and writing the small typed repository files
//! ([`crate::format::typed::RepoFile`]) through a backend: one generic get and
//! one save, so every small file is read, unsealed, checked (envelope, kind,
//! version, checksum, ranges) and decoded the same way, and written atomically.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::format::typed::{decode_file, encode_file, RepoFile};
use crate::format::{Cipher, FormatVersion};

/// Decodes the bytes of the file `name` of type `T`; a failure names the file
/// as `T::object(name)`.
pub fn open<T: RepoFile>(cipher: &Cipher, name: &str, bytes: &[u8]) -> Result<T> {
    decode_file(cipher, name, bytes).map_err(|e| Error::decode(T::object(name), e))
}

/// Reads and decodes the file `name` of type `T`.
pub fn get<T: RepoFile>(backend: &dyn Backend, cipher: &Cipher, name: &str) -> Result<T> {
    let bytes = backend.read(&T::path(name))?;
    open(cipher, name, &bytes)
}

/// Like [`get`], but `None` when the file does not exist.
pub fn get_optional<T: RepoFile>(
    backend: &dyn Backend,
    cipher: &Cipher,
    name: &str,
) -> Result<Option<T>> {
    if !backend.exists(&T::path(name))? {
        return Ok(None);
    }
    get(backend, cipher, name).map(Some)
}

/// Encodes `value` (sealed when `cipher` seals) and writes it atomically.
pub fn save<T: RepoFile>(
    backend: &dyn Backend,
    cipher: &Cipher,
    version: FormatVersion,
    name: &str,
    value: &T,
) -> Result<()> {
    backend.write_atomic(&T::path(name), &encode_file(cipher, version, name, value))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::backend::LocalBackend;
    use crate::crypto::MasterKey;
    use crate::format::{RetentionSettings, StatusRecord};

    #[test]
    fn save_get_round_trip_and_errors_name_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = LocalBackend::new(dir.path());
        let key = Cipher::Sealed(Arc::new(MasterKey::generate()));
        assert_eq!(
            get_optional::<RetentionSettings>(&b, &key, "").expect("absent"),
            None
        );
        let rules = RetentionSettings {
            keep_last: Some(3),
            ..Default::default()
        };
        save(&b, &key, FormatVersion::NEWEST, "", &rules).expect("save");
        assert_eq!(
            get::<RetentionSettings>(&b, &key, "").expect("get"),
            rules.clone()
        );
        assert_eq!(
            get_optional::<RetentionSettings>(&b, &key, "").expect("present"),
            Some(rules)
        );
        // Another key: refused, naming the file as before.
        let other = Cipher::Sealed(Arc::new(MasterKey::generate()));
        let e = get::<RetentionSettings>(&b, &other, "").expect_err("wrong key");
        assert!(e.to_string().contains("retention settings"), "{e}");
        // Another kind in its place: refused.
        std::fs::copy(dir.path().join("retention"), dir.path().join("status")).expect("copy");
        let e = get::<StatusRecord>(&b, &key, "").expect_err("wrong kind");
        assert!(e.to_string().contains("status"), "{e}");
        // Damaged: refused.
        let mut bytes = std::fs::read(dir.path().join("retention")).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(dir.path().join("retention"), bytes).expect("write");
        assert!(get::<RetentionSettings>(&b, &key, "").is_err());
    }
}
