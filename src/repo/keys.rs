//! Key files: the master key of an encrypted repository, wrapped once per
//! passphrase (`keys/<id>`). Changing a passphrase rewrites key files only.

use std::sync::Arc;

use serde::Serialize;
use zeroize::Zeroizing;

use super::Repository;
use crate::backend::Backend;
use crate::crypto::{self, KdfParams, MasterKey};
use crate::error::{Error, Repr, Result};
use crate::format::{self, Cipher, KeyFile, Kind};

/// A key as `key list` shows it.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct KeyInfo {
    /// Key file id (hex).
    pub id: String,
    /// Creation time, unix seconds.
    pub created: i64,
    /// Label.
    pub label: String,
    /// KDF parameters.
    pub params: KdfParams,
    /// Whether this key opened the repository now.
    pub current: bool,
}

fn wrap_ad(params: &KdfParams, salt: &[u8]) -> Vec<u8> {
    let mut ad = b"lumina-backup key v1".to_vec();
    ad.extend_from_slice(&params.m_cost_kib.to_le_bytes());
    ad.extend_from_slice(&params.t_cost.to_le_bytes());
    ad.extend_from_slice(&params.p_cost.to_le_bytes());
    ad.extend_from_slice(salt);
    ad
}

/// The form of a passphrase that goes into the KDF: Unicode NFC. The same
/// passphrase typed on macOS (which produces NFD) and elsewhere (NFC) must open
/// the same key (store-format.md, "Key files").
fn kdf_input(passphrase: &str) -> Zeroizing<String> {
    use unicode_normalization::UnicodeNormalization;
    Zeroizing::new(passphrase.nfc().collect())
}

/// The passphrase forms `unlock` tries: NFC first, then the bytes as given, for
/// key files written before passphrases were normalised.
fn kdf_candidates(passphrase: &str) -> Vec<Zeroizing<String>> {
    let nfc = kdf_input(passphrase);
    if nfc.as_str() == passphrase {
        vec![nfc]
    } else {
        vec![nfc, Zeroizing::new(passphrase.to_string())]
    }
}

/// Wraps `master` under `passphrase` (normalised to NFC); returns (key id, file
/// bytes, of the repository's format `version`).
pub(crate) fn make_key_file(
    master: &MasterKey,
    passphrase: &str,
    params: KdfParams,
    label: &str,
    version: format::FormatVersion,
) -> Result<(String, Vec<u8>)> {
    if passphrase.is_empty() {
        return Err(Error::invalid_input("the passphrase is empty"));
    }
    let salt = crypto::random_bytes::<16>();
    let kek = crypto::derive_key(kdf_input(passphrase).as_bytes(), &salt, params)
        .map_err(|e| Error::internal(e.to_string()))?;
    let wrapped = crypto::seal_with(&kek, &wrap_ad(&params, &salt), master.to_bytes().as_ref());
    let record = KeyFile {
        kdf: "argon2id".into(),
        params,
        salt: salt.to_vec(),
        wrapped,
        created: time::OffsetDateTime::now_utc().unix_timestamp(),
        label: label.to_string(),
    };
    let body = format::encode_named(&record);
    let id = hex::encode(&crate::id::blake3_of(&body)[..16]);
    Ok((id, format::seal_file(version, Kind::Key, &body)))
}

/// Whether `name` (in `keys/`) is shaped like a key id: 32 lowercase hex
/// characters, the first 16 bytes of the BLAKE3 of the key record
/// ([`make_key_file`]). Other names there are foreign files: they are not key
/// files, whatever they hold (verify names them).
pub(crate) fn is_key_id(name: &str) -> bool {
    name.len() == 32
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The names of the key files in `keys/` (foreign files left out).
pub(crate) fn key_file_ids(backend: &dyn Backend) -> Result<Vec<String>> {
    Ok(backend
        .list(crate::layout::KEYS)?
        .into_iter()
        .filter(|n| is_key_id(n))
        .collect())
}

/// Decodes a key file.
pub(crate) fn read_key_file(id: &str, bytes: &[u8]) -> Result<KeyFile> {
    let object = format!("key {id}");
    let k: KeyFile = crate::store::files::open(&Cipher::Plain, id, bytes)?;
    if k.kdf != "argon2id" || k.salt.len() != 16 {
        return Err(Error::corrupt(
            object,
            format!("unknown kdf {:?} or bad salt", k.kdf),
        ));
    }
    k.params
        .check()
        .map_err(|e| Error::corrupt(format!("key {id}"), e))?;
    Ok(k)
}

/// Tries `passphrase` against every key file; returns the master key and the id
/// of the key that opened it.
pub(crate) fn unlock(backend: &dyn Backend, passphrase: &str) -> Result<(MasterKey, String)> {
    let ids = key_file_ids(backend)?;
    if ids.is_empty() {
        return Err(Error::corrupt(
            "repository",
            "encrypted, but it has no key files",
        ));
    }
    let mut damaged: Vec<Error> = Vec::new();
    let total = ids.len();
    for id in ids {
        let bytes = backend.read(&crate::layout::key(&id))?;
        let k = match read_key_file(&id, &bytes) {
            Ok(k) => k,
            Err(e) => {
                damaged.push(e);
                continue;
            }
        };
        for candidate in kdf_candidates(passphrase) {
            let Ok(kek) = crypto::derive_key(candidate.as_bytes(), &k.salt, k.params) else {
                continue;
            };
            if let Ok(plain) = crypto::open_with(&kek, &wrap_ad(&k.params, &k.salt), &k.wrapped) {
                let plain = Zeroizing::new(plain);
                let master = MasterKey::from_bytes(&plain)
                    .ok_or_else(|| Error::corrupt(format!("key {id}"), "wrong key length"))?;
                return Ok((master, id));
            }
        }
    }
    // A damaged key file may be the one this passphrase opens: say so rather
    // than "wrong passphrase", which would send the user hunting for another.
    match damaged.into_iter().next().map(Error::into_repr) {
        Some(Repr::Corrupt { object, problem }) => Err(Repr::Corrupt {
            object: object.replacen("key ", "key file keys/", 1),
            problem: if total > 1 {
                format!(
                    "{problem} (the passphrase opens none of the other {} key files)",
                    total - 1
                )
            } else {
                problem
            },
        }
        .into()),
        Some(other) => Err(other.into()),
        None => Err(Repr::WrongPassphrase(std::path::PathBuf::from(backend.location())).into()),
    }
}

impl Repository {
    fn master(&self) -> Result<&Arc<MasterKey>> {
        match self.store.cipher() {
            Cipher::Sealed(k) => Ok(k),
            Cipher::Plain => Err(Error::refused(
                "this repository is not encrypted; it has no keys",
            )),
        }
    }

    /// The key files of an encrypted repository.
    pub fn key_list(&self) -> Result<Vec<KeyInfo>> {
        self.master()?;
        let mut out = Vec::new();
        for id in key_file_ids(self.backend.as_ref())? {
            let k = read_key_file(&id, &self.backend.read(&crate::layout::key(&id))?)?;
            out.push(KeyInfo {
                current: self.key_id.as_deref() == Some(&id),
                id,
                created: k.created,
                label: k.label,
                params: k.params,
            });
        }
        out.sort_by_key(|k| k.created);
        Ok(out)
    }

    /// Adds a passphrase; returns the new key's id.
    pub fn key_add(&self, passphrase: &str, params: KdfParams, label: &str) -> Result<String> {
        let master = self.master()?;
        let (id, file) = make_key_file(master, passphrase, params, label, self.store.format())?;
        self.backend.write_atomic(&crate::layout::key(&id), &file)?;
        Ok(id)
    }

    /// Removes a key (by id or unique prefix); never the last one, nor the one
    /// in use. A damaged key file can be removed (it is matched by its name,
    /// not decoded).
    pub fn key_remove(&self, prefix: &str) -> Result<String> {
        self.master()?;
        let keys = key_file_ids(self.backend.as_ref())?;
        let matches: Vec<&String> = keys
            .iter()
            .filter(|id| id.starts_with(prefix) && !prefix.is_empty())
            .collect();
        let key = match matches.as_slice() {
            [one] => *one,
            [] => {
                return Err(Error::invalid_input(format!("no key matches `{prefix}`"))
                    .with_remedy(crate::error::Remedy::ListKeys))
            }
            _ => {
                return Err(Error::invalid_input(format!(
                    "`{prefix}` matches {} keys; give more characters",
                    matches.len()
                )))
            }
        };
        if keys.len() == 1 {
            return Err(Error::refused(
                "refusing to remove the last key: the repository would be unreadable",
            ));
        }
        if self.key_id.as_deref() == Some(key.as_str()) {
            return Err(Error::refused("refusing to remove the key in use; open the repository with another passphrase to remove it"));
        }
        self.backend.remove(&crate::layout::key(key))?;
        self.backend.sync_dir(crate::layout::KEYS)?;
        Ok(key.clone())
    }

    /// Replaces the passphrase in use: writes a new key file, then removes the old one.
    pub fn key_passwd(&mut self, new_passphrase: &str, params: KdfParams) -> Result<String> {
        let old = self
            .key_id
            .clone()
            .ok_or_else(|| Error::refused("this repository is not encrypted"))?;
        let label = self
            .key_list()?
            .into_iter()
            .find(|k| k.id == old)
            .map(|k| k.label)
            .unwrap_or_default();
        let new = self.key_add(new_passphrase, params, &label)?;
        self.backend.remove(&crate::layout::key(&old))?;
        self.backend.sync_dir(crate::layout::KEYS)?;
        self.key_id = Some(new.clone());
        Ok(new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wrap_and_unwrap() {
        let dir = tempfile::tempdir().expect("tempdir");
        let backend = crate::backend::LocalBackend::new(dir.path());
        let master = MasterKey::generate();
        let weak = KdfParams {
            m_cost_kib: 8 * 1024,
            t_cost: 1,
            p_cost: 1,
        };
        let (id, file) =
            make_key_file(&master, "pw", weak, "", format::FormatVersion::NEWEST).expect("wrap");
        backend
            .write_atomic(&format!("keys/{id}"), &file)
            .expect("write");
        let (back, used) = unlock(&backend, "pw").expect("unlock");
        assert_eq!(used, id);
        assert_eq!(*back.to_bytes(), *master.to_bytes());
        assert!(unlock(&backend, "nope").is_err_and(|e| e.is_wrong_password()));
        assert!(make_key_file(&master, "", weak, "", format::FormatVersion::NEWEST).is_err());
    }

    proptest! {
        #[test]
        fn key_file_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300), flip in any::<usize>()) {
            let _ = read_key_file("k", &bytes);
            let master = MasterKey::generate();
            let weak = KdfParams { m_cost_kib: 8 * 1024, t_cost: 1, p_cost: 1 };
            let (_, file) = make_key_file(&master, "pw", weak, "", format::FormatVersion::NEWEST).expect("wrap");
            let mut bad = file.clone();
            let i = flip % (bad.len() * 8);
            bad[i / 8] ^= 1 << (i % 8);
            prop_assert!(read_key_file("k", &bad).is_err());
        }
    }
}
