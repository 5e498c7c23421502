//! Encryption: the master key, sealing with XChaCha20-Poly1305, and passphrase
//! key derivation with Argon2id.
//!
//! Owns: key material (zeroized on drop), nonces (random, 192 bits), the sealed
//! layout `nonce (24) | ciphertext | tag (16)`. Knows nothing of files: callers
//! pass the associated data that binds a sealed object to its kind and name.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::id::IdHasher;

/// Nonce length.
pub const NONCE_LEN: usize = 24;
/// Authentication tag length.
pub const TAG_LEN: usize = 16;
/// Bytes a sealed object adds to its plaintext.
pub const SEAL_OVERHEAD: usize = NONCE_LEN + TAG_LEN;
/// Length of the master key material (encryption key + chunk-id key).
pub const MASTER_LEN: usize = 64;

/// Why opening failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    /// Shorter than a nonce and a tag.
    #[error("sealed object is truncated")]
    Truncated,
    /// Authentication failed: wrong key, or the bytes or their name were changed.
    #[error("authentication failed (wrong key, or the object was altered or renamed)")]
    Authentication,
    /// The KDF parameters are unusable.
    #[error("bad key derivation parameters: {0}")]
    Kdf(String),
}

/// The repository's master key: one key for sealing, one for chunk ids.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MasterKey {
    enc: [u8; 32],
    id: [u8; 32],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// A new random key (OS randomness).
    pub fn generate() -> Self {
        let mut k = MasterKey {
            enc: [0; 32],
            id: [0; 32],
        };
        rand::rngs::OsRng.fill_bytes(&mut k.enc);
        rand::rngs::OsRng.fill_bytes(&mut k.id);
        k
    }

    /// The key material, for wrapping.
    pub fn to_bytes(&self) -> Zeroizing<[u8; MASTER_LEN]> {
        let mut out = Zeroizing::new([0u8; MASTER_LEN]);
        out[..32].copy_from_slice(&self.enc);
        out[32..].copy_from_slice(&self.id);
        out
    }

    /// Rebuilds a key from [`MasterKey::to_bytes`].
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        if b.len() != MASTER_LEN {
            return None;
        }
        let mut k = MasterKey {
            enc: [0; 32],
            id: [0; 32],
        };
        k.enc.copy_from_slice(&b[..32]);
        k.id.copy_from_slice(&b[32..]);
        Some(k)
    }

    /// Keyed BLAKE3 for chunk and record ids.
    pub fn id_hasher(&self) -> IdHasher {
        IdHasher::Keyed(self.id)
    }

    /// Seals `plaintext` bound to `ad`.
    pub fn seal(&self, ad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        seal_with(&self.enc, ad, plaintext)
    }

    /// Opens an object sealed by [`MasterKey::seal`] with the same `ad`.
    pub fn open(&self, ad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        open_with(&self.enc, ad, sealed)
    }
}

/// Seals with a raw 32-byte key: `nonce | ciphertext | tag`.
pub fn seal_with(key: &[u8; 32], ad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let cipher = XChaCha20Poly1305::new(key.into());
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let ct = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: ad,
            },
        )
        .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory sizes");
    let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    out
}

/// Opens with a raw 32-byte key.
pub fn open_with(key: &[u8; 32], ad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if sealed.len() < SEAL_OVERHEAD {
        return Err(CryptoError::Truncated);
    }
    let cipher = XChaCha20Poly1305::new(key.into());
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    cipher
        .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: ad })
        .map_err(|_| CryptoError::Authentication)
}

/// Argon2id parameters, stored with each key file so they can be raised later.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Iterations.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl Default for KdfParams {
    /// 64 MiB, 8 passes, 1 lane: about 0.3 s on the benchmark machine (BENCHMARKS.md),
    /// with memory kept under the 100 MiB peak the snapshot path aims for.
    fn default() -> Self {
        KdfParams {
            m_cost_kib: 64 * 1024,
            t_cost: 8,
            p_cost: 1,
        }
    }
}

impl KdfParams {
    /// Refuses parameters too weak to protect a key, or absurd ones from a damaged file.
    pub fn check(&self) -> Result<(), CryptoError> {
        let ok = (8 * 1024..=4 * 1024 * 1024).contains(&self.m_cost_kib)
            && (1..=100).contains(&self.t_cost)
            && (1..=16).contains(&self.p_cost);
        if ok {
            Ok(())
        } else {
            Err(CryptoError::Kdf(format!("{self:?} out of range")))
        }
    }
}

/// Derives a key-encryption key from a passphrase.
pub fn derive_key(
    passphrase: &[u8],
    salt: &[u8],
    params: KdfParams,
) -> Result<Zeroizing<[u8; 32]>, CryptoError> {
    params.check()?;
    let p = argon2::Params::new(params.m_cost_kib, params.t_cost, params.p_cost, Some(32))
        .map_err(|e| CryptoError::Kdf(e.to_string()))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, p);
    let mut out = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(passphrase, salt, out.as_mut())
        .map_err(|e| CryptoError::Kdf(e.to_string()))?;
    Ok(out)
}

/// Random bytes (salts).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn seal_open_and_bindings() {
        let k = MasterKey::generate();
        let sealed = k.seal(b"snapshot:abc", b"secret");
        assert_eq!(k.open(b"snapshot:abc", &sealed).expect("open"), b"secret");
        assert_eq!(
            k.open(b"snapshot:abd", &sealed),
            Err(CryptoError::Authentication)
        );
        assert_eq!(
            MasterKey::generate().open(b"snapshot:abc", &sealed),
            Err(CryptoError::Authentication)
        );
        assert_eq!(k.open(b"x", &sealed[..10]), Err(CryptoError::Truncated));
        // Fresh nonce each time.
        assert_ne!(k.seal(b"a", b"same"), k.seal(b"a", b"same"));
        let back = MasterKey::from_bytes(k.to_bytes().as_ref()).expect("bytes");
        assert_eq!(
            back.open(b"snapshot:abc", &sealed).expect("open"),
            b"secret"
        );
    }

    #[test]
    fn kdf_is_deterministic_and_checked() {
        let p = KdfParams {
            m_cost_kib: 8 * 1024,
            t_cost: 1,
            p_cost: 1,
        };
        let a = derive_key(b"pw", b"saltsaltsaltsalt", p).expect("kdf");
        let b = derive_key(b"pw", b"saltsaltsaltsalt", p).expect("kdf");
        let c = derive_key(b"pw2", b"saltsaltsaltsalt", p).expect("kdf");
        assert_eq!(*a, *b);
        assert_ne!(*a, *c);
        assert!(derive_key(
            b"pw",
            b"saltsaltsaltsalt",
            KdfParams {
                m_cost_kib: 1,
                t_cost: 1,
                p_cost: 1
            }
        )
        .is_err());
    }

    proptest! {
        #[test]
        fn round_trip_and_every_bit_flip_fails(data in proptest::collection::vec(any::<u8>(), 0..300), ad in proptest::collection::vec(any::<u8>(), 0..40), bit in any::<usize>()) {
            let k = MasterKey::generate();
            let sealed = k.seal(&ad, &data);
            prop_assert_eq!(k.open(&ad, &sealed).expect("open"), data);
            let mut bad = sealed.clone();
            let i = bit % (bad.len() * 8);
            bad[i / 8] ^= 1 << (i % 8);
            prop_assert!(k.open(&ad, &bad).is_err());
        }

        #[test]
        fn open_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = MasterKey::generate().open(b"", &bytes);
        }
    }
}
