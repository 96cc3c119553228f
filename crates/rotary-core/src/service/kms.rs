//! Named KMS keys: ids, ARNs and aliases, key-material versions and their rotation, and
//! Rotary's operations on keys (`rotary.CreateKey`, `ListKeys`, `DescribeKey`, `RotateKey`).
//!
//! A key is stored under a *name* (`kms:<name>`, see [`rotary_crypto::stored`]): its alias
//! (`alias/NAME`) when it has one, else its key id. The name is what a sealed value records,
//! so it never changes. Every key also has a stable key id (a UUID) and the ARN
//! `arn:aws:kms:<region>:<account>:key/<id>`. Keys stored before keys had ids carry none: their
//! id is derived from their name ([`derived_key_id`]), the same on every node, so nothing has
//! to be written to give them one.
//!
//! A `KmsKeyId` (CreateSecret, UpdateSecret) or `KeyId` (the key operations) may be the key
//! id, the key ARN, the alias name or the alias ARN; all resolve to the same key. An alias
//! that does not exist yet is created on first use by CreateSecret and UpdateSecret (Rotary
//! is its own KMS); an unknown key id or key ARN is refused.
//!
//! Rotation adds a key-material version at once: it is stored (`kms-version:<name>:<n>`,
//! written only if absent), then loaded, and new values are sealed under it from then on.
//! Old versions are never dropped, so every value sealed before stays readable. Data keys
//! wrapped under an older version are re-wrapped lazily: the next write of a secret re-wraps
//! the data keys of all its versions ([`SecretsService::rewrap_stale`]) without touching the
//! values' ciphertext. Over a shared store, other nodes load the new version on its change
//! notice, and a node that opens a value sealed under a version it has not loaded yet loads
//! it from the store first (see [`SecretsService::open_value`]).

use std::collections::BTreeMap;
use std::sync::RwLock;

use rotary_crypto::stored::{
    parse_version_meta_key, version_meta_key, StoredKey, StoredVersion, KMS_META_PREFIX,
    KMS_VERSION_META_PREFIX,
};
use rotary_crypto::{Keyring, WrappedKey};
use rotary_wire::dto::{
    CreateKeyRequest, KeyIdRequest, KeyMetadata, KeyMetadataResponse, KeyVersionEntry,
    ListKeysRequest, ListKeysResponse,
};
use rotary_wire::validate::Validate;
use rotary_wire::{api_error, ApiError, Timestamp};

use super::{internal, write_failed, Ctx, SecretsService};
use crate::cache::CachedSecret;
use crate::secret::{Secret, DEFAULT_KMS_KEY, DEFAULT_KMS_KEY_LISTED};

/// The description AWS gives the default key.
const DEFAULT_KEY_DESCRIPTION: &str =
    "Default key that protects my Secrets Manager data when no other key is defined";

/// How often a rotation retries when other nodes took the next version numbers first.
const MAX_ROTATE_ATTEMPTS: usize = 8;

/// What this node knows about a key besides its material (which is in the keyring).
#[derive(Debug, Clone)]
struct KeyMeta {
    key_id: String,
    description: Option<String>,
    created_ms: Option<i64>,
    /// Creation time of each loaded version, when recorded.
    versions: BTreeMap<u32, Option<i64>>,
}

/// The loaded keys' ids, descriptions and version dates, by key name: a cache of the store.
#[derive(Debug, Default)]
pub(crate) struct KmsIndex {
    keys: RwLock<BTreeMap<String, KeyMeta>>,
}

impl KmsIndex {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, KeyMeta>> {
        self.keys.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, KeyMeta>> {
        self.keys.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// The key id of a key stored without one: a UUID (version 8, RFC 9562) made from a hash of
/// its name, so every node derives the same id.
pub(crate) fn derived_key_id(name: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(b"rotary-kms-key-id\0")
        .chain_update(name.as_bytes())
        .finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    uuid::Uuid::from_bytes(b).hyphenated().to_string()
}

/// What a `KmsKeyId` / `KeyId` names.
enum KeyRef {
    /// `alias/NAME` (given so, or as an alias ARN of this server).
    Alias(String),
    /// A key id (given so, or as a key ARN of this server); also a bare name.
    Id(String),
    /// An ARN of another region, account or service.
    Other,
}

/// Whether `alias` (`alias/NAME`) is a valid alias name: NAME is 1..=250 of letters, digits,
/// `/`, `_` and `-`.
fn valid_alias(alias: &str) -> bool {
    alias.strip_prefix("alias/").is_some_and(|n| {
        !n.is_empty()
            && n.len() <= 250
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-'))
    })
}

impl SecretsService {
    fn classify_kms(&self, given: &str) -> KeyRef {
        let Some(rest) = given.strip_prefix("arn:") else {
            return if given.starts_with("alias/") {
                KeyRef::Alias(given.to_owned())
            } else {
                KeyRef::Id(given.to_owned())
            };
        };
        let mut parts = rest.splitn(5, ':');
        let (Some(_partition), Some("kms"), Some(region), Some(account), Some(resource)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return KeyRef::Other;
        };
        if region != self.config.region || account != self.config.account_id {
            return KeyRef::Other;
        }
        if resource.starts_with("alias/") {
            KeyRef::Alias(resource.to_owned())
        } else if let Some(id) = resource.strip_prefix("key/") {
            KeyRef::Id(id.to_owned())
        } else {
            KeyRef::Other
        }
    }

    /// The ARN of key id `id`.
    fn key_arn(&self, id: &str) -> String {
        format!(
            "arn:aws:kms:{}:{}:key/{id}",
            self.config.region, self.config.account_id
        )
    }

    /// The name of the loaded key a `KmsKeyId` resolves to: its id, key ARN, alias name or
    /// alias ARN, or (keys stored before keys had ids) the exact name it was stored under.
    pub(crate) fn kms_name(&self, given: &str) -> Option<String> {
        let idx = self.kms.read();
        if idx.contains_key(given) {
            return Some(given.to_owned());
        }
        match self.classify_kms(given) {
            KeyRef::Alias(a) => idx.contains_key(&a).then_some(a),
            KeyRef::Id(id) => {
                if idx.contains_key(&id) {
                    return Some(id);
                }
                idx.iter()
                    .find(|(_, m)| m.key_id == id)
                    .map(|(name, _)| name.clone())
            }
            KeyRef::Other => None,
        }
    }

    /// Like [`Self::kms_name`], reloading the keys from the store on a miss (another node
    /// may have created the key).
    async fn find_kms_key(&self, given: &str) -> Result<Option<String>, ApiError> {
        if let Some(name) = self.kms_name(given) {
            return Ok(Some(name));
        }
        self.load_kms_keys().await?;
        Ok(self.kms_name(given))
    }

    /// The error for a key that does not exist, in KMS's words.
    fn kms_not_found(&self, code: rotary_wire::ErrorCode, given: &str) -> ApiError {
        let text = match self.classify_kms(given) {
            KeyRef::Alias(a) => format!(
                "Alias arn:aws:kms:{}:{}:{a} is not found.",
                self.config.region, self.config.account_id
            ),
            KeyRef::Id(id) => format!("Key '{}' does not exist", self.key_arn(&id)),
            KeyRef::Other => format!("Key '{given}' does not exist"),
        };
        ApiError::new(code, text)
    }

    /// Makes sure the KMS key a secret names exists and is loaded. An alias that does not
    /// exist yet is created (Rotary is its own KMS); an unknown key id or ARN is refused
    /// with `InvalidParameterException`, as Secrets Manager does.
    pub(crate) async fn ensure_kms_key(&self, given: &str) -> Result<(), ApiError> {
        if self.find_kms_key(given).await?.is_some() {
            return Ok(());
        }
        let KeyRef::Alias(alias) = self.classify_kms(given) else {
            return Err(
                self.kms_not_found(rotary_wire::ErrorCode::InvalidParameterException, given)
            );
        };
        if !valid_alias(&alias) {
            return Err(api_error!(
                InvalidParameterException,
                "Invalid KMS key alias {alias}: an alias is alias/ followed by 1 to 250 letters, digits, '/', '_' or '-'."
            ));
        }
        // The bare form (no id, no dates), as such keys were always stored: older servers
        // sharing the store read it.
        self.create_stored_key(&alias, StoredKey::default()).await?;
        Ok(())
    }

    /// Stores a new key named `name` (`record` without its material) unless one is stored
    /// under that name, then loads whichever the store holds. Returns whether it was new.
    async fn create_stored_key(&self, name: &str, mut record: StoredKey) -> Result<bool, ApiError> {
        let wrapped = self.keyring.new_version(name, 1).map_err(internal)?;
        record.sealed = wrapped.sealed;
        let created = self
            .store
            .put_meta_if_absent(&format!("{KMS_META_PREFIX}{name}"), &record.encode())
            .await
            .map_err(write_failed)?;
        // Ours, or the one another node stored first: only what the store holds is used.
        if !self.load_kms_key(name).await? {
            return Err(ApiError::internal());
        }
        Ok(created)
    }

    /// Loads a stored key record into the keyring and the index.
    fn install_key(&self, name: &str, value: &[u8]) -> Result<(), ApiError> {
        let rec = StoredKey::decode(value).map_err(internal)?;
        self.keyring.load(&rec.wrapped(name)).map_err(internal)?;
        let mut idx = self.kms.write();
        let meta = idx.entry(name.to_owned()).or_insert_with(|| KeyMeta {
            key_id: String::new(),
            description: None,
            created_ms: None,
            versions: BTreeMap::new(),
        });
        meta.key_id = rec.key_id.unwrap_or_else(|| derived_key_id(name));
        meta.description = rec.description;
        meta.created_ms = rec.created_ms;
        meta.versions.insert(1, rec.created_ms);
        Ok(())
    }

    /// Loads a stored later version of key `name` into the keyring and the index.
    fn install_version(&self, name: &str, version: u32, value: &[u8]) -> Result<(), ApiError> {
        let rec = StoredVersion::decode(value).map_err(internal)?;
        self.keyring
            .load(&WrappedKey {
                name: name.to_owned(),
                version,
                sealed: rec.sealed,
            })
            .map_err(internal)?;
        if let Some(meta) = self.kms.write().get_mut(name) {
            meta.versions.insert(version, rec.created_ms);
        }
        Ok(())
    }

    /// Loads every KMS key and key version in the store.
    pub(crate) async fn load_kms_keys(&self) -> Result<(), ApiError> {
        let keys = self
            .store
            .list_meta(KMS_META_PREFIX)
            .await
            .map_err(internal)?;
        for (key, value) in keys {
            self.install_key(&key[KMS_META_PREFIX.len()..], &value)?;
        }
        let versions = self
            .store
            .list_meta(KMS_VERSION_META_PREFIX)
            .await
            .map_err(internal)?;
        for (key, value) in versions {
            if let Some((name, n)) = parse_version_meta_key(&key) {
                self.install_version(name, n, &value)?;
            }
        }
        Ok(())
    }

    /// Loads (or reloads) key `name` and all its versions from the store; returns whether
    /// it is stored.
    pub(crate) async fn load_kms_key(&self, name: &str) -> Result<bool, ApiError> {
        let Some(value) = self
            .store
            .get_meta(&format!("{KMS_META_PREFIX}{name}"))
            .await
            .map_err(internal)?
        else {
            return Ok(false);
        };
        self.install_key(name, &value)?;
        let prefix = format!("{KMS_VERSION_META_PREFIX}{name}:");
        for (key, value) in self.store.list_meta(&prefix).await.map_err(internal)? {
            match parse_version_meta_key(&key) {
                Some((n, v)) if n == name => self.install_version(name, v, &value)?,
                _ => {}
            }
        }
        Ok(true)
    }

    /// Reacts to a change notice of a metadata key; whether it was a KMS key's.
    pub(crate) async fn kms_meta_changed(&self, key: &str) -> bool {
        let name = match key.strip_prefix(KMS_META_PREFIX) {
            Some(name) => name,
            None => match parse_version_meta_key(key) {
                Some((name, _)) => name,
                None => return false,
            },
        };
        if let Err(e) = self.load_kms_key(name).await {
            tracing::warn!(error = %e, key = name, "Reloading a KMS key failed");
        }
        true
    }

    /// Opens-on-miss support: whether the key version a sealed value names is loaded; if
    /// not, it is loaded from the store (another node may have rotated the key).
    pub(crate) async fn load_kms_key_for(&self, sealed: &[u8]) -> Result<bool, ApiError> {
        let Ok((name, version)) = Keyring::key_version(sealed) else {
            return Ok(false);
        };
        if self.keyring.contains_version(name, version) {
            return Ok(false);
        }
        self.load_kms_key(name).await?;
        Ok(self.keyring.contains_version(name, version))
    }

    /// Before a write that may seal under a secret's KMS key: a key another node created
    /// (whose change notice has not arrived yet) is loaded from the store, so the seal finds
    /// it. Costs nothing when the key is loaded.
    pub(crate) async fn load_secret_kms_key(&self, secret: &Secret) -> Result<(), ApiError> {
        if let Some(given) = secret.doc.kms_key_id.as_deref().filter(|k| !k.is_empty()) {
            if self.kms_name(given).is_none() {
                self.find_kms_key(given).await?;
            }
        }
        Ok(())
    }

    /// Lazy re-wrap: before a secret is written, the data key of every version still
    /// wrapped under an older version of its KMS key is re-wrapped under the newest one. The
    /// values' ciphertext is kept; a version that cannot be re-wrapped is left as it is (it
    /// stays readable under its old key version).
    pub(crate) fn rewrap_stale(&self, secret: &mut Secret, cached: &CachedSecret) {
        for v in secret
            .versions
            .iter_mut()
            .filter(|v| v.new_ciphertext.is_none())
        {
            let Some(sealed) = cached.sealed(&v.row.version_id) else {
                continue;
            };
            match self.keyring.rewrap(sealed) {
                Ok(Some(rewrapped)) => v.new_ciphertext = Some(rewrapped),
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!(error = %e, version_id = %v.row.version_id, "A data key was not re-wrapped");
                }
            }
        }
    }

    /// How ListSecretVersionIds names the key of a version sealed under `stored` (the
    /// `KmsKeyId` it was sealed with): `DefaultEncryptionKey` for the default key, else the
    /// key's ARN (the text as stored when the key is not loaded).
    pub(crate) fn listed_kms_key_id(&self, stored: Option<&str>) -> String {
        let Some(given) = stored.filter(|k| *k != DEFAULT_KMS_KEY) else {
            return DEFAULT_KMS_KEY_LISTED.to_owned();
        };
        match self.kms_name(given) {
            Some(name) if name == DEFAULT_KMS_KEY => DEFAULT_KMS_KEY_LISTED.to_owned(),
            Some(name) => self
                .kms
                .read()
                .get(&name)
                .map_or_else(|| given.to_owned(), |m| self.key_arn(&m.key_id)),
            None => given.to_owned(),
        }
    }

    /// Adds a key-material version to key `name` and returns its number. The version is
    /// stored first (only if no other node took the number), then loaded, so nothing is
    /// sealed under a version the store does not hold.
    async fn rotate_kms_key(&self, name: &str) -> Result<u32, ApiError> {
        for _ in 0..MAX_ROTATE_ATTEMPTS {
            if !self.load_kms_key(name).await? {
                return Err(
                    self.kms_not_found(rotary_wire::ErrorCode::ResourceNotFoundException, name)
                );
            }
            let next = self.keyring.current_version(name).unwrap_or(1) + 1;
            let wrapped = self.keyring.new_version(name, next).map_err(internal)?;
            let rec = StoredVersion {
                created_ms: Some(self.now()),
                sealed: wrapped.sealed,
            }
            .encode();
            if self
                .store
                .put_meta_if_absent(&version_meta_key(name, next), &rec)
                .await
                .map_err(write_failed)?
            {
                self.install_version(name, next, &rec)?;
                tracing::info!(key = name, version = next, "Rotated a KMS key");
                return Ok(next);
            }
        }
        Err(api_error!(ThrottlingException, "Rate exceeded"))
    }

    /// The metadata of loaded key `name`.
    fn key_metadata(&self, name: &str) -> Option<KeyMetadata> {
        let meta = self.kms.read().get(name)?.clone();
        let versions = self.keyring.versions(name);
        let default = name == DEFAULT_KMS_KEY;
        Some(KeyMetadata {
            arn: self.key_arn(&meta.key_id),
            aliases: if name != meta.key_id {
                vec![name.to_owned()]
            } else {
                Vec::new()
            },
            description: meta
                .description
                .clone()
                .or_else(|| default.then(|| DEFAULT_KEY_DESCRIPTION.to_owned())),
            creation_date: meta.created_ms.map(Timestamp),
            key_manager: if default { "AWS" } else { "CUSTOMER" }.to_owned(),
            key_state: "Enabled".to_owned(),
            current_key_version: versions.last().copied().unwrap_or(1),
            key_versions: versions
                .iter()
                .map(|v| KeyVersionEntry {
                    version: *v,
                    creation_date: meta.versions.get(v).copied().flatten().map(Timestamp),
                })
                .collect(),
            key_id: meta.key_id,
        })
    }

    /// Resolves a `KeyId` of a key operation to a key name, refreshed from the store.
    async fn resolve_key(&self, req: &KeyIdRequest) -> Result<String, ApiError> {
        req.check()?;
        let given = req.key_id.as_deref().unwrap_or_default();
        let Some(name) = self.find_kms_key(given).await? else {
            return Err(
                self.kms_not_found(rotary_wire::ErrorCode::ResourceNotFoundException, given)
            );
        };
        // Versions other nodes added since this node loaded the key.
        self.load_kms_key(&name).await?;
        Ok(name)
    }

    fn metadata_response(&self, name: &str) -> Result<KeyMetadataResponse, ApiError> {
        Ok(KeyMetadataResponse {
            key_metadata: self.key_metadata(name).ok_or_else(ApiError::internal)?,
        })
    }

    /// `rotary.CreateKey`: a new key with a random id, and the alias if one is given.
    pub async fn create_key(
        &self,
        _cx: &Ctx,
        req: CreateKeyRequest,
    ) -> Result<KeyMetadataResponse, ApiError> {
        req.check()?;
        let key_id = uuid::Uuid::new_v4().to_string();
        let name = match req.alias.as_deref() {
            Some(a) => {
                let alias = if a.starts_with("alias/") {
                    a.to_owned()
                } else {
                    format!("alias/{a}")
                };
                if !valid_alias(&alias) {
                    return Err(api_error!(
                        InvalidParameterException,
                        "Alias must be alias/ followed by 1 to 250 letters, digits, '/', '_' or '-'."
                    ));
                }
                if alias.starts_with("alias/aws/") {
                    return Err(api_error!(
                        InvalidParameterException,
                        "Aliases that begin with alias/aws/ are reserved for AWS managed keys."
                    ));
                }
                if self.find_kms_key(&alias).await?.is_some() {
                    return Err(self.alias_exists(&alias));
                }
                alias
            }
            None => key_id.clone(),
        };
        let record = StoredKey {
            key_id: Some(key_id),
            description: req.description.filter(|d| !d.is_empty()),
            created_ms: Some(self.now()),
            sealed: Vec::new(),
        };
        if !self.create_stored_key(&name, record).await? {
            return Err(self.alias_exists(&name));
        }
        self.metadata_response(&name)
    }

    fn alias_exists(&self, alias: &str) -> ApiError {
        api_error!(
            ResourceExistsException,
            "An alias with the name arn:aws:kms:{}:{}:{alias} already exists",
            self.config.region,
            self.config.account_id
        )
    }

    /// `rotary.ListKeys`: every key, those with an alias first (by alias), then by id.
    pub async fn list_keys(
        &self,
        _cx: &Ctx,
        req: ListKeysRequest,
    ) -> Result<ListKeysResponse, ApiError> {
        req.check()?;
        self.load_kms_keys().await?;
        let names: Vec<String> = self.kms.read().keys().cloned().collect();
        let mut keys: Vec<KeyMetadata> =
            names.iter().filter_map(|n| self.key_metadata(n)).collect();
        keys.sort_by(|a, b| {
            (a.aliases.is_empty(), a.aliases.first(), &a.key_id).cmp(&(
                b.aliases.is_empty(),
                b.aliases.first(),
                &b.key_id,
            ))
        });
        Ok(ListKeysResponse { keys })
    }

    /// `rotary.DescribeKey`.
    pub async fn describe_key(
        &self,
        _cx: &Ctx,
        req: KeyIdRequest,
    ) -> Result<KeyMetadataResponse, ApiError> {
        let name = self.resolve_key(&req).await?;
        self.metadata_response(&name)
    }

    /// `rotary.RotateKey`: adds a key-material version at once; new values are sealed under
    /// it, older values stay readable, and data keys move to it lazily (module docs).
    pub async fn rotate_key(
        &self,
        _cx: &Ctx,
        req: KeyIdRequest,
    ) -> Result<KeyMetadataResponse, ApiError> {
        let name = self.resolve_key(&req).await?;
        self.rotate_kms_key(&name).await?;
        self.metadata_response(&name)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rotary_crypto::MasterKey;
    use rotary_store::{SqliteStore, Store};
    use rotary_wire::dto::{CreateSecretRequest, GetSecretValueRequest, PutSecretValueRequest};
    use rotary_wire::{ErrorCode, Sensitive};
    use zeroize::Zeroizing;

    use super::*;
    use crate::clock::SystemClock;
    use crate::service::ServiceConfig;

    fn master() -> MasterKey {
        MasterKey::from_bytes(Zeroizing::new([5u8; 32]))
    }

    async fn node(store: Arc<dyn Store>) -> SecretsService {
        SecretsService::open(
            store,
            Arc::new(Keyring::new(master())),
            Arc::new(SystemClock),
            ServiceConfig {
                region: "us-east-1".into(),
                account_id: "000000000000".into(),
                read_cache_bytes: crate::service::DEFAULT_READ_CACHE_BYTES,
                replica_regions: Vec::new(),
            },
        )
        .await
        .unwrap()
    }

    fn key(id: &str) -> KeyIdRequest {
        KeyIdRequest {
            key_id: Some(id.into()),
        }
    }

    async fn get(svc: &SecretsService, name: &str, version: Option<&str>) -> String {
        svc.get_secret_value(
            &Ctx::default(),
            GetSecretValueRequest {
                secret_id: Some(name.into()),
                version_id: version.map(str::to_owned),
                version_stage: None,
            },
        )
        .await
        .unwrap()
        .secret_string
        .unwrap()
        .expose()
        .to_owned()
    }

    async fn stored(svc: &SecretsService, name: &str, version: &str) -> Vec<u8> {
        let uid = svc.find(name).await.unwrap().unwrap().row.uid;
        svc.store
            .read_ciphertext(&uid, version)
            .await
            .unwrap()
            .unwrap()
    }

    #[tokio::test]
    async fn legacy_key_gets_an_id_and_rotation_keeps_old_values_readable() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("db")).await.unwrap());
        // A key stored by name only, as before keys had ids.
        let legacy = Keyring::new(master())
            .new_version("alias/legacy", 1)
            .unwrap();
        store
            .put_meta("kms:alias/legacy", &legacy.sealed)
            .await
            .unwrap();
        let a = node(store.clone()).await;
        let b = node(store.clone()).await; // another node over the same store, no notices
        let cx = Ctx::default();

        let k = a.describe_key(&cx, key("alias/legacy")).await.unwrap();
        let k = k.key_metadata;
        assert_eq!(k.key_id, derived_key_id("alias/legacy"));
        assert_eq!(
            k.arn,
            format!("arn:aws:kms:us-east-1:000000000000:key/{}", k.key_id)
        );
        for form in [
            k.key_id.clone(),
            k.arn.clone(),
            "arn:aws:kms:us-east-1:000000000000:alias/legacy".to_owned(),
        ] {
            let d = b.describe_key(&cx, key(&form)).await.unwrap();
            assert_eq!(d.key_metadata.key_id, k.key_id);
        }
        // An ARN of another account names no key here.
        let other = b
            .describe_key(&cx, key("arn:aws:kms:us-east-1:111122223333:alias/legacy"))
            .await
            .unwrap_err();
        assert_eq!(other.code(), ErrorCode::ResourceNotFoundException);

        let v1 = format!("{:0>32}", 1);
        let v2 = format!("{:0>32}", 2);
        a.create_secret(
            &cx,
            CreateSecretRequest {
                name: Some("s".into()),
                client_request_token: Some(v1.clone()),
                secret_string: Some(Sensitive::new("one".into())),
                kms_key_id: Some(k.arn.clone()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(
            Keyring::key_version(&stored(&a, "s", &v1).await).unwrap(),
            ("alias/legacy", 1)
        );

        let r = a.rotate_key(&cx, key(&k.key_id)).await.unwrap();
        assert_eq!(r.key_metadata.current_key_version, 2);
        assert_eq!(r.key_metadata.key_versions.len(), 2);
        a.put_secret_value(
            &cx,
            PutSecretValueRequest {
                secret_id: Some("s".into()),
                client_request_token: Some(v2.clone()),
                secret_string: Some(Sensitive::new("two".into())),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        // The new value is sealed under version 2; the old one's data key was re-wrapped.
        for v in [&v1, &v2] {
            let sealed = stored(&a, "s", v).await;
            assert_eq!(Keyring::key_version(&sealed).unwrap(), ("alias/legacy", 2));
        }
        assert_eq!(get(&a, "s", Some(&v1)).await, "one");
        assert_eq!(get(&a, "s", None).await, "two");

        // Node b never loaded version 2: it loads it on the miss.
        assert!(!b.keyring.contains_version("alias/legacy", 2));
        assert_eq!(get(&b, "s", None).await, "two");
        assert_eq!(get(&b, "s", Some(&v1)).await, "one");
        assert!(b.keyring.contains_version("alias/legacy", 2));

        // A key made through node a, unknown to node b (no notices here): b writes under it.
        let made = a
            .create_key(
                &cx,
                CreateKeyRequest {
                    alias: Some("made-on-a".into()),
                    description: None,
                },
            )
            .await
            .unwrap()
            .key_metadata;
        a.create_secret(
            &cx,
            CreateSecretRequest {
                name: Some("t".into()),
                client_request_token: Some(v1.clone()),
                secret_string: Some(Sensitive::new("t-one".into())),
                kms_key_id: Some(made.key_id.clone()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert!(b.kms_name(&made.key_id).is_none());
        b.put_secret_value(
            &cx,
            PutSecretValueRequest {
                secret_id: Some("t".into()),
                client_request_token: Some(v2.clone()),
                secret_string: Some(Sensitive::new("t-two".into())),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(get(&a, "t", None).await, "t-two");
        assert_eq!(
            Keyring::key_version(&stored(&a, "t", &v2).await).unwrap(),
            ("alias/made-on-a", 1)
        );

        // A value whose header claims another version of the key does not open.
        let mut wrong = stored(&a, "s", &v2).await;
        let at = 1 + 2 + "alias/legacy".len();
        wrong[at..at + 4].copy_from_slice(&3u32.to_be_bytes());
        a.rotate_key(&cx, key("alias/legacy")).await.unwrap();
        let arn = a.find("s").await.unwrap().unwrap().row.arn;
        let e = a.open_value(&arn, &v2, &wrong).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::DecryptionFailure);
        // Under another secret's AAD it does not open either.
        let right = stored(&a, "s", &v2).await;
        assert!(a.open_value(&arn, &v1, &right).await.is_err());
        assert_eq!(
            a.open_value(&arn, &v2, &right).await.unwrap().expose(),
            b"Stwo"
        );

        // The first version stayed in the bare stored form.
        let bare = store.get_meta("kms:alias/legacy").await.unwrap().unwrap();
        assert_eq!(bare, legacy.sealed);
    }

    #[tokio::test]
    async fn unknown_key_ids_are_refused_and_aliases_made_on_first_use() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("db")).await.unwrap());
        let svc = node(store.clone()).await;
        let cx = Ctx::default();
        let e = svc
            .ensure_kms_key("0b3e2c54-5d4f-4a4e-9d7e-1f2a3b4c5d6e")
            .await
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidParameterException);
        svc.ensure_kms_key("alias/made-on-use").await.unwrap();
        let d = svc
            .describe_key(&cx, key("alias/made-on-use"))
            .await
            .unwrap();
        assert_eq!(d.key_metadata.key_id, derived_key_id("alias/made-on-use"));
        assert!(
            store
                .get_meta("kms:alias/made-on-use")
                .await
                .unwrap()
                .unwrap()
                .len()
                == 60
        );
        let e = svc.ensure_kms_key("alias/bad name").await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidParameterException);
        let listed = svc.list_keys(&cx, ListKeysRequest {}).await.unwrap().keys;
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].aliases, vec![DEFAULT_KMS_KEY.to_owned()]);
        assert_eq!(listed[0].key_manager, "AWS");
    }

    #[test]
    fn derived_ids_are_stable_uuids() {
        let a = derived_key_id("alias/aws/secretsmanager");
        assert_eq!(a, derived_key_id("alias/aws/secretsmanager"));
        assert_ne!(a, derived_key_id("alias/other"));
        let u = uuid::Uuid::parse_str(&a).unwrap();
        assert_eq!(u.get_version_num(), 8);
        assert_eq!(a.len(), 36);
    }

    #[test]
    fn alias_names() {
        assert!(valid_alias("alias/team-a/prod_1"));
        assert!(!valid_alias("alias/"));
        assert!(!valid_alias("team"));
        assert!(!valid_alias("alias/bad name"));
    }
}
