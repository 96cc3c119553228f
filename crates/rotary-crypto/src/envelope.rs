//! Per-version envelope encryption under named, versioned KMS keys.
//!
//! A KMS key is a name (the key's handle in the store, `alias/aws/secretsmanager` or another
//! alias or key id) with one or more key-material versions; new seals use the newest
//! version, and every version stays loaded so that values sealed under an older one open.
//!
//! Sealed layouts (all lengths big-endian):
//! - version 1 of a key (the only layout before keys had versions, still written for it so
//!   that older servers read it): `0x01 ‖ u16 key-name length ‖ key name ‖ wrapped data key
//!   (12 + 32 + 16) ‖ nonce (12) ‖ AES-256-GCM(ciphertext ‖ tag)`; the wrapped data key's AAD
//!   is the key name;
//! - a later version: `0x02 ‖ u16 key-name length ‖ key name ‖ u32 key version ‖ wrapped data
//!   key ‖ nonce ‖ AES-256-GCM(ciphertext ‖ tag)`; the wrapped data key's AAD binds the
//!   version and the name (see [`data_key_aad`]).
//!
//! The value's AAD is supplied by the caller (secret ARN ‖ version id). Re-wrapping a data key
//! under a newer version ([`Keyring::rewrap`]) changes the header and the wrapped data key
//! only: the value's ciphertext is kept byte for byte.

use std::collections::{BTreeMap, HashMap};

use aes_gcm::aead::OsRng;
use std::sync::{Arc, RwLock};

use rand::RngCore;
use zeroize::Zeroizing;

use crate::master_key::{open, seal};
use crate::{Error, MasterKey, Result, SecretBytes};

const FORMAT_V1: u8 = 1;
const FORMAT_V2: u8 = 2;
const WRAPPED_DK_LEN: usize = 12 + 32 + 16;

/// One key-material version of a KMS key wrapped by the master key, as stored.
#[derive(Debug, Clone)]
pub struct WrappedKey {
    /// The key's name (`alias/aws/secretsmanager`, another alias, or a key id).
    pub name: String,
    /// The key-material version (1 for the first).
    pub version: u32,
    /// Nonce ‖ ciphertext of the 32 key bytes under the master key, with AAD
    /// [`kms_version_label`]`(name, version)`.
    pub sealed: Vec<u8>,
}

type Material = Zeroizing<[u8; 32]>;

/// The unwrapped KMS keys, held in memory only.
pub struct Keyring {
    master: RwLock<MasterKeys>,
    keys: RwLock<HashMap<String, BTreeMap<u32, Material>>>,
    /// Data keys recently unwrapped, by their wrapped form: a read of a value opened before
    /// skips one of its two AES-GCM operations. See [`DATA_KEY_CACHE`].
    data_keys: quick_cache::sync::Cache<[u8; WRAPPED_DK_LEN], Arc<DataKey>>,
}

/// How many unwrapped data keys [`Keyring`] keeps (each value has its own): the most
/// recently useful ones, about 0.9 MiB in all (about 220 bytes each with the map's
/// bookkeeping). A key stays until newer ones push it out or the process ends, and its bytes
/// are zeroed when it is dropped. It adds no exposure beyond the KMS keys that unwrap it,
/// which the keyring holds in memory for the process's life. 16,384 keys (as many as the
/// default read cache holds secrets) let a read spread over 10,000 secrets skip the unwrap
/// too, but took the RSS after reading each of 100,000 secrets from 61 to 65 MiB, past the
/// 64 MiB the project holds itself to.
pub const DATA_KEY_CACHE: usize = 4096;

/// An unwrapped data key, with the KMS key version that wrapped it: a hit must name the same
/// key and version as the value being opened (the wrapped bytes were authenticated under
/// them).
struct DataKey {
    name: Box<str>,
    version: u32,
    key: Material,
}

/// The master keys a node holds: the one it seals with, and during an online master-key
/// rotation a second one that also opens (see [`Keyring::add_master`]).
struct MasterKeys {
    seal: Arc<MasterKey>,
    also: Option<Arc<MasterKey>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keyring([REDACTED])")
    }
}

/// The AAD binding a stored KMS key's first version to its name, under the master key.
pub fn kms_label(name: &str) -> Vec<u8> {
    let mut l = b"rotary-kms-key:".to_vec();
    l.extend_from_slice(name.as_bytes());
    l
}

/// The AAD binding one key-material version of a KMS key to the key's name and the version
/// number, under the master key. Version 1 keeps the label it had before keys had versions
/// ([`kms_label`]); later versions' labels cannot collide with it (another prefix, and the
/// number ends at the first `:`).
pub fn kms_version_label(name: &str, version: u32) -> Vec<u8> {
    if version <= 1 {
        return kms_label(name);
    }
    let mut l = format!("rotary-kms-key-version:{version}:").into_bytes();
    l.extend_from_slice(name.as_bytes());
    l
}

/// The AAD of a data key wrapped by version `version` (≥ 2) of KMS key `name`.
fn data_key_aad(name: &str, version: u32) -> Vec<u8> {
    let mut aad = b"rotary-data-key-v2\0".to_vec();
    aad.extend_from_slice(&version.to_be_bytes());
    aad.extend_from_slice(name.as_bytes());
    aad
}

impl Keyring {
    /// A keyring over a master key with no KMS keys yet.
    pub fn new(master: MasterKey) -> Self {
        Self {
            master: RwLock::new(MasterKeys {
                seal: Arc::new(master),
                also: None,
            }),
            keys: RwLock::new(HashMap::new()),
            data_keys: quick_cache::sync::Cache::new(DATA_KEY_CACHE),
        }
    }

    fn masters(&self) -> (Arc<MasterKey>, Option<Arc<MasterKey>>) {
        let m = self.master.read().unwrap_or_else(|e| e.into_inner());
        (m.seal.clone(), m.also.clone())
    }

    /// Seals a server secret (a KMS key, credentials, a function's environment) under the
    /// master key this node seals with.
    pub fn wrap_master(&self, label: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        self.masters().0.wrap(label, plaintext)
    }

    /// Opens what [`Keyring::wrap_master`] sealed: with the sealing key, or with the second
    /// key while one is held.
    pub fn unwrap_master(&self, label: &[u8], sealed: &[u8]) -> Result<SecretBytes> {
        let (seal, also) = self.masters();
        match seal.unwrap(label, sealed) {
            Ok(plain) => Ok(plain),
            Err(e) => match also {
                Some(other) => other.unwrap(label, sealed),
                None => Err(e),
            },
        }
    }

    /// The fingerprints of the sealing key and of the second key, if one is held.
    pub fn master_fingerprints(&self) -> (String, Option<String>) {
        let (seal, also) = self.masters();
        (seal.fingerprint(), also.map(|k| k.fingerprint()))
    }

    /// Holds `key` as a second master key: values sealed under it open, new seals still use
    /// the current key until [`Keyring::seal_with`] switches. Returns false (and changes
    /// nothing) when it is the sealing key already.
    pub fn add_master(&self, key: MasterKey) -> bool {
        let mut m = self.master.write().unwrap_or_else(|e| e.into_inner());
        if m.seal.same_as(&key) {
            return false;
        }
        m.also = Some(Arc::new(key));
        true
    }

    /// Makes the held second key the sealing key when `opens` says that it (and not the
    /// current one) opens the data; the current key is kept as the second, so values still
    /// sealed under it open. Returns whether it switched.
    pub fn seal_with(&self, opens: impl Fn(&MasterKey) -> bool) -> bool {
        let mut m = self.master.write().unwrap_or_else(|e| e.into_inner());
        let Some(also) = m.also.clone() else {
            return false;
        };
        if opens(&m.seal) || !opens(&also) {
            return false;
        }
        m.also = Some(std::mem::replace(&mut m.seal, also));
        true
    }

    /// Loads one stored key-material version of a KMS key (replacing the same version if it
    /// was loaded).
    pub fn load(&self, wrapped: &WrappedKey) -> Result<()> {
        if wrapped.version == 0 {
            return Err(Error::Decrypt("bad KMS key version"));
        }
        let bytes = self.unwrap_master(
            &kms_version_label(&wrapped.name, wrapped.version),
            &wrapped.sealed,
        )?;
        let arr: [u8; 32] = bytes
            .expose()
            .try_into()
            .map_err(|_| Error::Decrypt("bad KMS key length"))?;
        self.write()
            .entry(wrapped.name.clone())
            .or_default()
            .insert(wrapped.version, Zeroizing::new(arr));
        Ok(())
    }

    /// Whether a KMS key is loaded (any version).
    pub fn contains(&self, name: &str) -> bool {
        self.read().get(name).is_some_and(|v| !v.is_empty())
    }

    /// Whether one key-material version of a KMS key is loaded.
    pub fn contains_version(&self, name: &str, version: u32) -> bool {
        self.read()
            .get(name)
            .is_some_and(|v| v.contains_key(&version))
    }

    /// The loaded versions of a KMS key, oldest first (empty when it is not loaded).
    pub fn versions(&self, name: &str) -> Vec<u32> {
        self.read()
            .get(name)
            .map(|v| v.keys().copied().collect())
            .unwrap_or_default()
    }

    /// The version new seals under KMS key `name` use: the newest loaded.
    pub fn current_version(&self, name: &str) -> Option<u32> {
        self.read()
            .get(name)
            .and_then(|v| v.keys().next_back().copied())
    }

    /// Generates version 1 of a new KMS key, loads it and returns it wrapped for storage.
    pub fn generate(&self, name: &str) -> Result<WrappedKey> {
        let wrapped = self.new_version(name, 1)?;
        self.load(&wrapped)?;
        Ok(wrapped)
    }

    /// Generates key material for version `version` of KMS key `name`, wrapped for storage,
    /// *without* loading it: the caller loads it ([`Keyring::load`]) once it is stored, so
    /// that nothing is sealed under a version the store does not hold.
    pub fn new_version(&self, name: &str, version: u32) -> Result<WrappedKey> {
        if version == 0 {
            return Err(Error::Encrypt);
        }
        let mut k = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(k.as_mut());
        let sealed = self.wrap_master(&kms_version_label(name, version), k.as_ref())?;
        Ok(WrappedKey {
            name: name.to_owned(),
            version,
            sealed,
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, BTreeMap<u32, Material>>> {
        self.keys.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, BTreeMap<u32, Material>>> {
        self.keys.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The newest version of a key and its material.
    fn current(&self, name: &str) -> Result<(u32, Material)> {
        self.read()
            .get(name)
            .and_then(|v| v.iter().next_back().map(|(n, k)| (*n, k.clone())))
            .ok_or_else(|| Error::UnknownKey(name.to_owned()))
    }

    /// One version's material.
    fn material(&self, name: &str, version: u32) -> Result<Material> {
        self.read()
            .get(name)
            .and_then(|v| v.get(&version).cloned())
            .ok_or_else(|| Error::UnknownKey(format!("{name} (version {version})")))
    }

    /// Seals a value under a fresh data key wrapped by the newest version of KMS key
    /// `key_name`.
    pub fn seal(&self, key_name: &str, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        let (version, kek) = self.current(key_name)?;
        let mut dk = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(dk.as_mut());
        let body = seal(&dk, aad, plaintext)?;
        let mut out = header(key_name, version, &kek, &dk)?;
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// The KMS key name recorded in a sealed value.
    pub fn key_name(sealed: &[u8]) -> Result<&str> {
        Ok(parse(sealed)?.name)
    }

    /// The KMS key name and key-material version recorded in a sealed value.
    pub fn key_version(sealed: &[u8]) -> Result<(&str, u32)> {
        let p = parse(sealed)?;
        Ok((p.name, p.version))
    }

    /// Opens a sealed value with the AAD it was sealed with.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<SecretBytes> {
        let p = parse(sealed)?;
        let dk = self.unwrap_data_key(&p)?;
        open(&dk, aad, p.body)
    }

    fn unwrap_data_key(&self, p: &Parsed<'_>) -> Result<Material> {
        let wrapped: [u8; WRAPPED_DK_LEN] = p
            .wrapped_dk
            .try_into()
            .map_err(|_| Error::Decrypt("malformed ciphertext"))?;
        if let Some(hit) = self.data_keys.get(&wrapped) {
            if *hit.name == *p.name && hit.version == p.version {
                return Ok(hit.key.clone());
            }
        }
        let dk = self.unwrap_data_key_uncached(p)?;
        self.data_keys.insert(
            wrapped,
            Arc::new(DataKey {
                name: p.name.into(),
                version: p.version,
                key: dk.clone(),
            }),
        );
        Ok(dk)
    }

    fn unwrap_data_key_uncached(&self, p: &Parsed<'_>) -> Result<Material> {
        let kek = self.material(p.name, p.version)?;
        let dk = if p.version == 1 {
            open(&kek, p.name.as_bytes(), p.wrapped_dk)?
        } else {
            open(&kek, &data_key_aad(p.name, p.version), p.wrapped_dk)?
        };
        let dk: [u8; 32] = dk
            .expose()
            .try_into()
            .map_err(|_| Error::Decrypt("bad data key length"))?;
        Ok(Zeroizing::new(dk))
    }

    /// Re-wraps the data key of a sealed value under the newest loaded version of its KMS
    /// key, keeping the value's ciphertext as it is. `None` when it already uses the newest
    /// version. Needs no AAD and never sees the value's plaintext.
    pub fn rewrap(&self, sealed: &[u8]) -> Result<Option<Vec<u8>>> {
        let p = parse(sealed)?;
        let (current, kek) = self.current(p.name)?;
        if p.version >= current {
            return Ok(None);
        }
        let dk = self.unwrap_data_key(&p)?;
        let mut out = header(p.name, current, &kek, &dk)?;
        out.extend_from_slice(p.body);
        Ok(Some(out))
    }
}

/// The layout's header and the data key wrapped by `kek` (version `version` of `name`).
fn header(name: &str, version: u32, kek: &[u8; 32], dk: &[u8; 32]) -> Result<Vec<u8>> {
    let name_len = u16::try_from(name.len()).map_err(|_| Error::Encrypt)?;
    let mut out = Vec::with_capacity(7 + name.len() + WRAPPED_DK_LEN);
    if version == 1 {
        out.push(FORMAT_V1);
        out.extend_from_slice(&name_len.to_be_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&seal(kek, name.as_bytes(), dk)?);
    } else {
        out.push(FORMAT_V2);
        out.extend_from_slice(&name_len.to_be_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&version.to_be_bytes());
        out.extend_from_slice(&seal(kek, &data_key_aad(name, version), dk)?);
    }
    Ok(out)
}

struct Parsed<'a> {
    name: &'a str,
    version: u32,
    wrapped_dk: &'a [u8],
    body: &'a [u8],
}

fn parse(sealed: &[u8]) -> Result<Parsed<'_>> {
    let bad = Error::Decrypt("malformed ciphertext");
    let (&fmt, rest) = sealed
        .split_first()
        .ok_or(Error::Decrypt("empty ciphertext"))?;
    if !(fmt == FORMAT_V1 || fmt == FORMAT_V2) || rest.len() < 2 {
        return Err(bad);
    }
    let n = u16::from_be_bytes([rest[0], rest[1]]) as usize;
    let rest = &rest[2..];
    let version_len = if fmt == FORMAT_V2 { 4 } else { 0 };
    if rest.len() < n + version_len + WRAPPED_DK_LEN {
        return Err(bad);
    }
    let name = std::str::from_utf8(&rest[..n]).map_err(|_| Error::Decrypt("malformed key name"))?;
    let rest = &rest[n..];
    let (version, rest) = if fmt == FORMAT_V2 {
        let v = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
        if v < 2 {
            return Err(bad);
        }
        (v, &rest[4..])
    } else {
        (1, rest)
    };
    Ok(Parsed {
        name,
        version,
        wrapped_dk: &rest[..WRAPPED_DK_LEN],
        body: &rest[WRAPPED_DK_LEN..],
    })
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
        // Version 1 keeps the layout older servers read.
        assert_eq!(sealed[0], FORMAT_V1);

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
    fn a_cached_data_key_opens_only_what_it_was_unwrapped_for() {
        let ring = Keyring::new(MasterKey::generate());
        ring.generate("key-aaa").unwrap();
        ring.generate("key-bbb").unwrap();
        let sealed = ring.seal("key-aaa", b"arn\0v1", b"hunter2").unwrap();
        // Opened twice: the second open takes the cached data key.
        for _ in 0..2 {
            assert_eq!(ring.open(b"arn\0v1", &sealed).unwrap().expose(), b"hunter2");
        }
        assert!(
            ring.open(b"arn\0v2", &sealed).is_err(),
            "the value's AAD still binds"
        );
        // The same wrapped data key under another key's name (same length): not a hit, and
        // the other key cannot unwrap it.
        let mut renamed = sealed.clone();
        let at = renamed.windows(7).position(|w| w == b"key-aaa").unwrap();
        renamed[at..at + 7].copy_from_slice(b"key-bbb");
        assert!(ring.open(b"arn\0v1", &renamed).is_err());
        // A changed wrapped data key is not a hit either.
        let mut tampered = sealed.clone();
        tampered[at + 7] ^= 1;
        assert!(ring.open(b"arn\0v1", &tampered).is_err());
        assert_eq!(ring.open(b"arn\0v1", &sealed).unwrap().expose(), b"hunter2");
    }

    #[test]
    fn unknown_key_is_an_error() {
        let ring = Keyring::new(MasterKey::generate());
        assert!(matches!(
            ring.seal("nope", b"", b"x"),
            Err(Error::UnknownKey(_))
        ));
    }

    #[test]
    fn old_ciphertext_opens_after_rotation_and_new_seals_use_the_new_version() {
        let ring = Keyring::new(MasterKey::generate());
        let v1 = ring.generate("alias/team").unwrap();
        let old = ring.seal("alias/team", b"aad", b"before").unwrap();
        assert_eq!(Keyring::key_version(&old).unwrap(), ("alias/team", 1));

        // A new version is not used before it is loaded (stored first).
        let v2 = ring.new_version("alias/team", 2).unwrap();
        assert_eq!(ring.current_version("alias/team"), Some(1));
        ring.load(&v2).unwrap();
        assert_eq!(ring.current_version("alias/team"), Some(2));
        assert_eq!(ring.versions("alias/team"), vec![1, 2]);

        let new = ring.seal("alias/team", b"aad", b"after").unwrap();
        assert_eq!(new[0], FORMAT_V2);
        assert_eq!(Keyring::key_version(&new).unwrap(), ("alias/team", 2));
        assert_eq!(ring.open(b"aad", &old).unwrap().expose(), b"before");
        assert_eq!(ring.open(b"aad", &new).unwrap().expose(), b"after");

        // Re-wrapping moves the old value's data key to version 2; the body is unchanged.
        let rewrapped = ring.rewrap(&old).unwrap().unwrap();
        assert_eq!(Keyring::key_version(&rewrapped).unwrap().1, 2);
        assert!(rewrapped.ends_with(&old[old.len() - 30..]));
        assert_eq!(ring.open(b"aad", &rewrapped).unwrap().expose(), b"before");
        assert!(ring.open(b"other", &rewrapped).is_err());
        assert!(ring.rewrap(&new).unwrap().is_none());

        // A node holding version 1 only refuses version 2 values until it loads version 2.
        let lagging = Keyring::new(MasterKey::generate());
        assert!(lagging.load(&v1).is_err()); // another master key
        let a = Keyring::new(MasterKey::from_bytes(Zeroizing::new([3u8; 32])));
        let b = Keyring::new(MasterKey::from_bytes(Zeroizing::new([3u8; 32])));
        let w1 = a.generate("k").unwrap();
        b.load(&w1).unwrap();
        let w2 = a.new_version("k", 2).unwrap();
        a.load(&w2).unwrap();
        let sealed = a.seal("k", b"x", b"v").unwrap();
        assert!(matches!(b.open(b"x", &sealed), Err(Error::UnknownKey(_))));
        b.load(&w2).unwrap();
        assert_eq!(b.open(b"x", &sealed).unwrap().expose(), b"v");
    }

    #[test]
    fn wrong_key_or_version_refuses() {
        let master = || MasterKey::from_bytes(Zeroizing::new([9u8; 32]));
        let ring = Keyring::new(master());
        ring.generate("k1").unwrap();
        ring.generate("k2").unwrap();
        ring.load(&ring.new_version("k1", 2).unwrap()).unwrap();
        let sealed = ring.seal("k1", b"aad", b"secret").unwrap();

        // The header names k1: pointing it at k2 (same length) fails to authenticate.
        let mut renamed = sealed.clone();
        let pos = renamed.windows(2).position(|w| w == b"k1").unwrap();
        renamed[pos + 1] = b'2';
        ring.load(&ring.new_version("k2", 2).unwrap()).unwrap();
        assert!(matches!(
            ring.open(b"aad", &renamed),
            Err(Error::Decrypt(_))
        ));

        // Claiming another version of the same key fails too.
        ring.load(&ring.new_version("k1", 3).unwrap()).unwrap();
        let mut other_version = sealed.clone();
        let vpos = 1 + 2 + 2;
        other_version[vpos..vpos + 4].copy_from_slice(&3u32.to_be_bytes());
        assert!(ring.open(b"aad", &other_version).is_err());
        let mut version_one = sealed.clone();
        version_one[vpos..vpos + 4].copy_from_slice(&1u32.to_be_bytes());
        assert!(ring.open(b"aad", &version_one).is_err());

        // A stored version cannot be loaded as another version or another key.
        let w = ring.new_version("k1", 4).unwrap();
        let as_five = WrappedKey {
            version: 5,
            ..w.clone()
        };
        assert!(ring.load(&as_five).is_err());
        let as_k2 = WrappedKey {
            name: "k2".into(),
            ..w
        };
        assert!(ring.load(&as_k2).is_err());
        assert_eq!(ring.open(b"aad", &sealed).unwrap().expose(), b"secret");
    }

    #[test]
    fn a_second_master_key_opens_and_takes_over_sealing_only_when_the_check_says_so() {
        let old = MasterKey::generate();
        let next = MasterKey::generate();
        let ring = Keyring::new(old.clone());
        let under_old = ring.wrap_master(b"l", b"before").unwrap();
        let under_next = next.wrap(b"l", b"staged").unwrap();
        assert!(ring.unwrap_master(b"l", &under_next).is_err());
        assert!(
            !ring.add_master(old.clone()),
            "the sealing key is not a second key"
        );
        assert!(ring.add_master(next.clone()));
        assert_eq!(
            ring.unwrap_master(b"l", &under_next).unwrap().expose(),
            b"staged"
        );
        // Sealing stays on the old key while the check opens with it.
        let check_old = old.wrap(b"check", b"c").unwrap();
        let opens = |check: &[u8]| {
            let check = check.to_vec();
            move |k: &MasterKey| k.unwrap(b"check", &check).is_ok()
        };
        assert!(!ring.seal_with(opens(&check_old)));
        assert!(old
            .unwrap(b"l", &ring.wrap_master(b"l", b"x").unwrap())
            .is_ok());
        // The check re-keyed: the next key seals, the old one still opens.
        let check_next = next.wrap(b"check", b"c").unwrap();
        assert!(ring.seal_with(opens(&check_next)));
        assert!(!ring.seal_with(opens(&check_next)), "switches once");
        let sealed = ring.wrap_master(b"l", b"after").unwrap();
        assert!(next.unwrap(b"l", &sealed).is_ok() && old.unwrap(b"l", &sealed).is_err());
        assert_eq!(
            ring.unwrap_master(b"l", &under_old).unwrap().expose(),
            b"before"
        );
        assert_eq!(
            ring.master_fingerprints(),
            (next.fingerprint(), Some(old.fingerprint()))
        );
        assert_ne!(old.fingerprint(), next.fingerprint());
        assert_eq!(old.fingerprint().len(), 16);
    }
}
