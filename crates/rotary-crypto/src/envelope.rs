//! Per-version envelope encryption under named KMS keys.
//!
//! Sealed layout (all lengths big-endian):
//! `0x01 ‖ u16 key-name length ‖ key name ‖ wrapped data key (12 + 32 + 16) ‖ nonce (12) ‖
//! AES-256-GCM(ciphertext ‖ tag)`. The wrapped data key's AAD is the key name; the value's
//! AAD is supplied by the caller (secret ARN ‖ version id).

use std::collections::HashMap;

use aes_gcm::aead::OsRng;
use std::sync::RwLock;

use rand::RngCore;
use zeroize::Zeroizing;

use crate::master_key::{open, seal};
use crate::{Error, MasterKey, Result, SecretBytes};

const FORMAT_V1: u8 = 1;
const WRAPPED_DK_LEN: usize = 12 + 32 + 16;

/// A KMS key wrapped by the master key, as stored.
#[derive(Debug, Clone)]
pub struct WrappedKey {
    /// The key's name (`alias/aws/secretsmanager` or a user-given id).
    pub name: String,
    /// Nonce ‖ ciphertext of the 32 key bytes under the master key.
    pub sealed: Vec<u8>,
}

/// The unwrapped KMS keys, held in memory only.
pub struct Keyring {
    master: MasterKey,
    keys: RwLock<HashMap<String, Zeroizing<[u8; 32]>>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keyring([REDACTED])")
    }
}

/// The AAD binding a stored KMS key to its name, under the master key.
pub fn kms_label(name: &str) -> Vec<u8> {
    let mut l = b"rotary-kms-key:".to_vec();
    l.extend_from_slice(name.as_bytes());
    l
}

impl Keyring {
    /// A keyring over a master key with no KMS keys yet.
    pub fn new(master: MasterKey) -> Self {
        Self {
            master,
            keys: RwLock::new(HashMap::new()),
        }
    }

    /// The master key (to wrap other server secrets).
    pub fn master(&self) -> &MasterKey {
        &self.master
    }

    /// Loads a stored KMS key.
    pub fn load(&self, wrapped: &WrappedKey) -> Result<()> {
        let bytes = self
            .master
            .unwrap(&kms_label(&wrapped.name), &wrapped.sealed)?;
        let arr: [u8; 32] = bytes
            .expose()
            .try_into()
            .map_err(|_| Error::Decrypt("bad KMS key length"))?;
        self.write()
            .insert(wrapped.name.clone(), Zeroizing::new(arr));
        Ok(())
    }

    /// Whether a KMS key is loaded.
    pub fn contains(&self, name: &str) -> bool {
        self.read().contains_key(name)
    }

    /// Generates a new KMS key, loads it and returns it wrapped for storage.
    pub fn generate(&self, name: &str) -> Result<WrappedKey> {
        let mut k = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(k.as_mut());
        let sealed = self.master.wrap(&kms_label(name), k.as_ref())?;
        self.write().insert(name.to_owned(), k);
        Ok(WrappedKey {
            name: name.to_owned(),
            sealed,
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Zeroizing<[u8; 32]>>> {
        self.keys.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Zeroizing<[u8; 32]>>> {
        self.keys.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Seals a value under a fresh data key wrapped by KMS key `key_name`.
    pub fn seal(&self, key_name: &str, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        let kek = self
            .read()
            .get(key_name)
            .cloned()
            .ok_or_else(|| Error::UnknownKey(key_name.to_owned()))?;
        let mut dk = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(dk.as_mut());
        let wrapped_dk = seal(&kek, key_name.as_bytes(), dk.as_ref())?;
        let body = seal(&dk, aad, plaintext)?;
        let name_len = u16::try_from(key_name.len()).map_err(|_| Error::Encrypt)?;
        let mut out = Vec::with_capacity(3 + key_name.len() + wrapped_dk.len() + body.len());
        out.push(FORMAT_V1);
        out.extend_from_slice(&name_len.to_be_bytes());
        out.extend_from_slice(key_name.as_bytes());
        out.extend_from_slice(&wrapped_dk);
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// The KMS key name recorded in a sealed value.
    pub fn key_name(sealed: &[u8]) -> Result<&str> {
        Ok(parse(sealed)?.0)
    }

    /// Opens a sealed value with the AAD it was sealed with.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<SecretBytes> {
        let (name, wrapped_dk, body) = parse(sealed)?;
        let kek = self
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| Error::UnknownKey(name.to_owned()))?;
        let dk = open(&kek, name.as_bytes(), wrapped_dk)?;
        let dk: [u8; 32] = dk
            .expose()
            .try_into()
            .map_err(|_| Error::Decrypt("bad data key length"))?;
        let dk = Zeroizing::new(dk);
        open(&dk, aad, body)
    }
}

fn parse(sealed: &[u8]) -> Result<(&str, &[u8], &[u8])> {
    let bad = Error::Decrypt("malformed ciphertext");
    let (&fmt, rest) = sealed
        .split_first()
        .ok_or(Error::Decrypt("empty ciphertext"))?;
    if fmt != FORMAT_V1 || rest.len() < 2 {
        return Err(bad);
    }
    let n = u16::from_be_bytes([rest[0], rest[1]]) as usize;
    let rest = &rest[2..];
    if rest.len() < n + WRAPPED_DK_LEN {
        return Err(bad);
    }
    let name = std::str::from_utf8(&rest[..n]).map_err(|_| Error::Decrypt("malformed key name"))?;
    let rest = &rest[n..];
    Ok((name, &rest[..WRAPPED_DK_LEN], &rest[WRAPPED_DK_LEN..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_roundtrip_and_aad_binding() {
        let ring = Keyring::new(MasterKey::generate());
        let stored = ring.generate("alias/aws/secretsmanager").unwrap();
        let sealed = ring
            .seal("alias/aws/secretsmanager", b"arn\0v1", b"hunter2")
            .unwrap();
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(ring.open(b"arn\0v1", &sealed).unwrap().expose(), b"hunter2");
        assert!(ring.open(b"arn\0v2", &sealed).is_err());
        assert_eq!(
            Keyring::key_name(&sealed).unwrap(),
            "alias/aws/secretsmanager"
        );

        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(ring.open(b"arn\0v1", &tampered).is_err());
        assert!(ring.open(b"arn\0v1", &sealed[..10]).is_err());

        // Two seals of one value differ (fresh data key and nonce).
        let again = ring
            .seal("alias/aws/secretsmanager", b"arn\0v1", b"hunter2")
            .unwrap();
        assert_ne!(sealed, again);

        // A second keyring over another master key cannot load the stored key.
        let other = Keyring::new(MasterKey::generate());
        assert!(other.load(&stored).is_err());
    }

    #[test]
    fn unknown_key_is_an_error() {
        let ring = Keyring::new(MasterKey::generate());
        assert!(matches!(
            ring.seal("nope", b"", b"x"),
            Err(Error::UnknownKey(_))
        ));
    }
}
