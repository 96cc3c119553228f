//! How KMS keys are kept in the store's metadata table.
//!
//! - `kms:<name>` holds a key and its first key-material version: either the 60 sealed bytes
//!   alone (the form written before keys had ids, and still written for keys created on
//!   first use, so that older servers read them), or a JSON record with the key's id,
//!   description and creation time ([`StoredKey`]).
//! - `kms-version:<name>:<n>` holds version `n` ≥ 2 ([`StoredVersion`]). Each version is a
//!   key of its own, written only if absent, so two nodes rotating one key at once cannot
//!   overwrite each other's version: one of them gets the number, the other retries.
//!
//! Every sealed member is wrapped by the master key with AAD
//! [`kms_version_label`](crate::kms_version_label)`(name, version)`.

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::{kms_version_label, Error, MasterKey, Result, WrappedKey};

/// Prefix of the metadata keys holding KMS keys (`kms:<name>`).
pub const KMS_META_PREFIX: &str = "kms:";
/// Prefix of the metadata keys holding later key-material versions
/// (`kms-version:<name>:<n>`).
pub const KMS_VERSION_META_PREFIX: &str = "kms-version:";

/// Length of a sealed 32-byte key: nonce (12) ‖ ciphertext (32) ‖ tag (16).
const SEALED_KEY_LEN: usize = 60;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A KMS key's record (`kms:<name>`), with its first key-material version.
#[derive(Debug, Clone, Default)]
pub struct StoredKey {
    /// The key id; `None` in the bare form (the reader derives one from the name).
    pub key_id: Option<String>,
    /// The description given when the key was created.
    pub description: Option<String>,
    /// When the key was created (ms since the epoch), when known.
    pub created_ms: Option<i64>,
    /// Version 1's material, sealed by the master key.
    pub sealed: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct KeyJson {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    created_ms: Option<i64>,
    sealed: String,
}

/// A later key-material version's record (`kms-version:<name>:<n>`).
#[derive(Debug, Clone)]
pub struct StoredVersion {
    /// When the version was created (ms since the epoch).
    pub created_ms: Option<i64>,
    /// The material, sealed by the master key.
    pub sealed: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct VersionJson {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    created_ms: Option<i64>,
    sealed: String,
}

fn malformed() -> Error {
    Error::Decrypt("malformed stored KMS key")
}

impl StoredKey {
    /// Reads a `kms:<name>` value in either form.
    pub fn decode(value: &[u8]) -> Result<Self> {
        if value.len() == SEALED_KEY_LEN {
            return Ok(Self {
                sealed: value.to_vec(),
                ..Self::default()
            });
        }
        let j: KeyJson = serde_json::from_slice(value).map_err(|_| malformed())?;
        Ok(Self {
            key_id: j.key_id,
            description: j.description,
            created_ms: j.created_ms,
            sealed: B64.decode(j.sealed).map_err(|_| malformed())?,
        })
    }

    /// The stored form: the bare sealed bytes when there is nothing else to keep, else JSON.
    pub fn encode(&self) -> Vec<u8> {
        if self.key_id.is_none() && self.description.is_none() && self.created_ms.is_none() {
            return self.sealed.clone();
        }
        let j = KeyJson {
            key_id: self.key_id.clone(),
            description: self.description.clone(),
            created_ms: self.created_ms,
            sealed: B64.encode(&self.sealed),
        };
        serde_json::to_vec(&j).unwrap_or_default()
    }

    /// Version 1 of key `name`, to load into a keyring.
    pub fn wrapped(&self, name: &str) -> WrappedKey {
        WrappedKey {
            name: name.to_owned(),
            version: 1,
            sealed: self.sealed.clone(),
        }
    }
}

impl StoredVersion {
    /// Reads a `kms-version:` value.
    pub fn decode(value: &[u8]) -> Result<Self> {
        let j: VersionJson = serde_json::from_slice(value).map_err(|_| malformed())?;
        Ok(Self {
            created_ms: j.created_ms,
            sealed: B64.decode(j.sealed).map_err(|_| malformed())?,
        })
    }

    /// The stored form.
    pub fn encode(&self) -> Vec<u8> {
        let j = VersionJson {
            created_ms: self.created_ms,
            sealed: B64.encode(&self.sealed),
        };
        serde_json::to_vec(&j).unwrap_or_default()
    }
}

/// The metadata key of version `version` (≥ 2) of key `name`.
pub fn version_meta_key(name: &str, version: u32) -> String {
    format!("{KMS_VERSION_META_PREFIX}{name}:{version}")
}

/// The key name and version of a `kms-version:<name>:<n>` metadata key.
pub fn parse_version_meta_key(key: &str) -> Option<(&str, u32)> {
    let rest = key.strip_prefix(KMS_VERSION_META_PREFIX)?;
    let (name, n) = rest.rsplit_once(':')?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u32 = n.parse().ok()?;
    (n >= 2 && !name.is_empty()).then_some((name, n))
}

/// Re-wraps a stored KMS key or key version (metadata `key`, value `value`) from master key
/// `old` to `new`, keeping its form. `None` when `key` holds no KMS key.
pub fn rewrap_stored(
    key: &str,
    value: &[u8],
    old: &MasterKey,
    new: &MasterKey,
) -> Result<Option<Vec<u8>>> {
    if let Some(name) = key.strip_prefix(KMS_META_PREFIX) {
        let mut k = StoredKey::decode(value)?;
        let label = kms_version_label(name, 1);
        let plain = old.unwrap(&label, &k.sealed)?;
        k.sealed = new.wrap(&label, plain.expose())?;
        return Ok(Some(k.encode()));
    }
    if let Some((name, n)) = parse_version_meta_key(key) {
        let mut v = StoredVersion::decode(value)?;
        let label = kms_version_label(name, n);
        let plain = old.unwrap(&label, &v.sealed)?;
        v.sealed = new.wrap(&label, plain.expose())?;
        return Ok(Some(v.encode()));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Keyring;

    #[test]
    fn bare_and_json_forms_round_trip_and_rewrap() {
        let old = MasterKey::generate();
        let new = MasterKey::generate();
        let ring = Keyring::new(old.clone());
        let w1 = ring.generate("alias/a").unwrap();
        let bare = StoredKey {
            sealed: w1.sealed.clone(),
            ..StoredKey::default()
        };
        assert_eq!(bare.encode(), w1.sealed);
        let decoded = StoredKey::decode(&bare.encode()).unwrap();
        assert!(decoded.key_id.is_none());
        ring.load(&decoded.wrapped("alias/a")).unwrap();

        let full = StoredKey {
            key_id: Some("1234".into()),
            description: Some("d".into()),
            created_ms: Some(5),
            sealed: w1.sealed.clone(),
        };
        let decoded = StoredKey::decode(&full.encode()).unwrap();
        assert_eq!(decoded.key_id.as_deref(), Some("1234"));
        assert_eq!(decoded.created_ms, Some(5));
        assert!(StoredKey::decode(b"{not json").is_err());

        let w2 = ring.new_version("alias/a", 2).unwrap();
        let v = StoredVersion {
            created_ms: Some(7),
            sealed: w2.sealed.clone(),
        };
        let vkey = version_meta_key("alias/a", 2);
        assert_eq!(parse_version_meta_key(&vkey), Some(("alias/a", 2)));
        assert_eq!(parse_version_meta_key("kms-version:a:b"), None);
        assert_eq!(parse_version_meta_key("kms-version:a:1"), None);
        assert_eq!(
            parse_version_meta_key("kms-version:x:y:3"),
            Some(("x:y", 3))
        );

        // Master-key rotation re-wraps both records, keeping their form.
        let rw_key = rewrap_stored("kms:alias/a", &full.encode(), &old, &new)
            .unwrap()
            .unwrap();
        let rw_bare = rewrap_stored("kms:alias/a", &bare.encode(), &old, &new)
            .unwrap()
            .unwrap();
        assert_eq!(rw_bare.len(), 60);
        let rw_ver = rewrap_stored(&vkey, &v.encode(), &old, &new)
            .unwrap()
            .unwrap();
        assert!(rewrap_stored("other", b"x", &old, &new).unwrap().is_none());
        let fresh = Keyring::new(new);
        let k = StoredKey::decode(&rw_key).unwrap();
        assert_eq!(k.description.as_deref(), Some("d"));
        fresh.load(&k.wrapped("alias/a")).unwrap();
        fresh
            .load(&StoredKey::decode(&rw_bare).unwrap().wrapped("alias/a"))
            .unwrap();
        let vv = StoredVersion::decode(&rw_ver).unwrap();
        assert_eq!(vv.created_ms, Some(7));
        fresh
            .load(&WrappedKey {
                name: "alias/a".into(),
                version: 2,
                sealed: vv.sealed,
            })
            .unwrap();
        // The same material: a value sealed by the old keyring opens with the new one.
        let sealed = ring.seal("alias/a", b"aad", b"v").unwrap();
        assert_eq!(fresh.open(b"aad", &sealed).unwrap().expose(), b"v");
    }
}
