//! The master key: 32 random bytes in a file of mode 0600.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, OsRng, Payload};
use aes_gcm::{AeadCore, Aes256Gcm, Key, Nonce};
use rand::RngCore;
use zeroize::Zeroizing;

use crate::{Error, Result, SecretBytes};

const NONCE_LEN: usize = 12;

/// The root of the key hierarchy. Wraps KMS keys and server credentials.
/// A clone is another zeroizing copy: the running server holds the key it seals with and,
/// during an online master-key rotation, a second one.
#[derive(Clone)]
pub struct MasterKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey([REDACTED])")
    }
}

impl MasterKey {
    /// Generates a key in memory (tests and first start).
    pub fn generate() -> Self {
        let mut k = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(k.as_mut());
        Self(k)
    }

    /// Reads the key file; it must hold exactly 32 bytes and be mode 0600 (or stricter).
    pub fn open(path: &Path) -> Result<Self> {
        let name = path.display().to_string();
        let io = |source| Error::Io {
            path: name.clone(),
            source,
        };
        let meta = fs::metadata(path).map_err(io)?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(Error::BadMasterKey {
                path: name,
                reason: "must not be readable by group or others (chmod 600)",
            });
        }
        let bytes = Zeroizing::new(fs::read(path).map_err(io)?);
        let arr: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| Error::BadMasterKey {
                path: name.clone(),
                reason: "must hold exactly 32 bytes",
            })?;
        Ok(Self(Zeroizing::new(arr)))
    }

    /// Creates the key file (mode 0600) with a fresh key; fails if it exists.
    pub fn create(path: &Path) -> Result<Self> {
        let key = Self::generate();
        key.save_new(path)?;
        Ok(key)
    }

    /// Writes this key to a new file (mode 0600, synced); fails if the file exists.
    pub fn save_new(&self, path: &Path) -> Result<()> {
        let name = path.display().to_string();
        let io = |source| Error::Io {
            path: name.clone(),
            source,
        };
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        f.write_all(self.0.as_ref()).map_err(io)?;
        f.sync_all().map_err(io)?;
        Ok(())
    }

    /// Opens the key file, creating it when absent. Returns whether it was created.
    pub fn open_or_create(path: &Path) -> Result<(Self, bool)> {
        if path.exists() {
            Ok((Self::open(path)?, false))
        } else {
            Ok((Self::create(path)?, true))
        }
    }

    /// A key from 32 bytes the caller already holds: a key read from a file, or one derived
    /// from a passphrase to seal the key file with.
    pub fn from_bytes(bytes: Zeroizing<[u8; 32]>) -> Self {
        Self(bytes)
    }

    /// Seals another master key with AAD `label` (nonce ‖ ciphertext), so that a key file can
    /// be stored encrypted under a passphrase-derived key without its bytes leaving this type.
    pub fn wrap_key(&self, label: &[u8], key: &MasterKey) -> Result<Vec<u8>> {
        seal(&self.0, label, key.0.as_ref())
    }

    /// Opens what [`MasterKey::wrap_key`] sealed with the same label.
    pub fn unwrap_key(&self, label: &[u8], sealed: &[u8]) -> Result<MasterKey> {
        let plain = open(&self.0, label, sealed)?;
        let arr: [u8; 32] = plain
            .expose()
            .try_into()
            .map_err(|_| Error::Decrypt("the sealed key is not 32 bytes"))?;
        Ok(Self(Zeroizing::new(arr)))
    }

    /// Whether two keys are the same (constant time is not needed: for tests and checks on
    /// keys the process already holds).
    pub fn same_as(&self, other: &MasterKey) -> bool {
        self.0.as_ref() == other.0.as_ref()
    }

    /// A short public name for this key: the first 8 bytes of HMAC-SHA-256(key,
    /// "rotary-master-key-fingerprint") in hex. It tells two key files apart (and lets nodes
    /// report which key they hold) without revealing anything about the key.
    pub fn fingerprint(&self) -> String {
        use hmac::{Hmac, Mac};
        let Ok(mut mac) = <Hmac<sha2::Sha256> as Mac>::new_from_slice(self.0.as_ref()) else {
            return String::new();
        };
        mac.update(b"rotary-master-key-fingerprint");
        let tag = mac.finalize().into_bytes();
        tag[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Seals `plaintext` (a key or credential) with AAD `label`: nonce ‖ ciphertext.
    pub fn wrap(&self, label: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        seal(&self.0, label, plaintext)
    }

    /// Opens what [`MasterKey::wrap`] sealed with the same label.
    pub fn unwrap(&self, label: &[u8], sealed: &[u8]) -> Result<SecretBytes> {
        open(&self.0, label, sealed)
    }
}

pub(crate) fn seal(key: &[u8; 32], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key));
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let ct = cipher
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| Error::Encrypt)?;
    let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

pub(crate) fn open(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Result<SecretBytes> {
    if sealed.len() < NONCE_LEN + 16 {
        return Err(Error::Decrypt("ciphertext too short"));
    }
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key));
    cipher
        .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
        .map(SecretBytes::new)
        .map_err(|_| Error::Decrypt("authentication failed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_writes_0600_and_open_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("master.key");
        let k = MasterKey::create(&p).unwrap();
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let sealed = k.wrap(b"label", b"payload").unwrap();
        let k2 = MasterKey::open(&p).unwrap();
        assert_eq!(k2.unwrap(b"label", &sealed).unwrap().expose(), b"payload");
        assert!(k2.unwrap(b"other", &sealed).is_err());
        assert!(MasterKey::create(&p).is_err());
    }

    #[test]
    fn wrap_key_round_trip() {
        let kek = MasterKey::from_bytes(Zeroizing::new([7u8; 32]));
        let key = MasterKey::generate();
        let sealed = kek.wrap_key(b"l", &key).unwrap();
        assert!(kek.unwrap_key(b"l", &sealed).unwrap().same_as(&key));
        assert!(kek.unwrap_key(b"m", &sealed).is_err());
        let other = MasterKey::from_bytes(Zeroizing::new([8u8; 32]));
        assert!(other.unwrap_key(b"l", &sealed).is_err());
        // A sealed value of the wrong length is refused.
        let short = kek.wrap(b"l", b"short").unwrap();
        assert!(kek.unwrap_key(b"l", &short).is_err());
    }

    #[test]
    fn open_refuses_group_readable_or_short_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("master.key");
        MasterKey::create(&p).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(
            MasterKey::open(&p),
            Err(Error::BadMasterKey { .. })
        ));
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(&p, b"short").unwrap();
        assert!(matches!(
            MasterKey::open(&p),
            Err(Error::BadMasterKey { .. })
        ));
    }
}
