//! [`SecretsService`]: every Secrets Manager operation, on wire shapes.

mod kms;
mod lifecycle;
mod list;
mod misc;
mod read;
mod replication;
mod rotation;
pub mod rotation_read;
mod write;

use std::sync::Arc;

use rotary_crypto::{Keyring, SecretBytes};
use rotary_store::{Change, Lookup, SealedRecord, Store};
use rotary_wire::{api_error, ApiError};

use crate::arn;
use crate::cache::{CachedSecret, SecretCache};
use crate::clock::Clock;
use crate::names;
use crate::secret::{value_aad, Plain, Secret, DEFAULT_KMS_KEY};

/// AWS's texts, in one place.
pub mod msg {
    /// Unknown secret.
    pub const NOT_FOUND: &str = "Secrets Manager can't find the specified secret.";
    /// Operation on a secret scheduled for deletion.
    pub const MARKED_FOR_DELETION: &str =
        "You can't perform this operation on the secret because it was marked for deletion.";
    /// CreateSecret over a name scheduled for deletion.
    pub const CREATE_OVER_DELETED: &str =
        "You can't create this secret because a secret with this name is already scheduled for deletion.";
    /// A write without a token.
    pub const TOKEN_REQUIRED: &str =
        "You must provide a ClientRequestToken value. We recommend a UUID-type value.";
    /// Both value members.
    pub const BOTH_VALUES: &str =
        "You can't specify both a binary secret value and a string secret value in the same secret.";
    /// PutSecretValue without a value.
    pub const NO_VALUE: &str = "You must provide either SecretString or SecretBinary.";
    /// Version quota.
    pub const TOO_MANY_VERSIONS: &str =
        "You have exceeded the maximum number of versions for this secret.";
    /// Label quota.
    pub const TOO_MANY_LABELS: &str =
        "You have exceeded the maximum number of staging labels attached across all versions of this secret.";
    /// KMS decrypt failure.
    pub const DECRYPTION_FAILURE: &str =
        "Secrets Manager can't decrypt the protected secret text using the provided KMS key.";
    /// Bad pagination token.
    pub const BAD_NEXT_TOKEN: &str = "The NextToken value is invalid.";
    /// A write to a replica.
    pub const REPLICA_READ_ONLY: &str =
        "Operation not permitted on a replica secret. Call must be made in primary secret's region.";
    /// A replica region equal to the primary's.
    pub const INVALID_REPLICA_REGION: &str = "Invalid replica region.";
    /// A replica region that already holds another secret of the name.
    pub const REPLICA_NAME_TAKEN: &str = "Secret with this name already exists in this region";
}

/// Who is calling and for which request; passed to every operation.
#[derive(Debug, Clone, Default)]
pub struct Ctx {
    /// The request id sent back in `x-amzn-RequestId`.
    pub request_id: String,
    /// ARN of the authenticated principal.
    pub caller: String,
    /// The secret authorization already loaded for this request, so that a read
    /// (GetSecretValue, DescribeSecret) does not load it a second time.
    pub prefetched: Option<Arc<Prefetched>>,
}

/// A secret loaded by [`SecretsService::prefetch`] for one request.
pub struct Prefetched {
    id: String,
    secret: Arc<CachedSecret>,
}

impl std::fmt::Debug for Prefetched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prefetched").field("id", &self.id).finish()
    }
}

impl Ctx {
    /// The prefetched secret, if it was loaded for exactly this id.
    pub(crate) fn prefetched(&self, id: &str) -> Option<&Arc<CachedSecret>> {
        self.prefetched
            .as_deref()
            .filter(|p| p.id == id)
            .map(|p| &p.secret)
    }
}

/// A secret as authorization sees it (see [`SecretsService::authz_view`]).
#[derive(Debug, Clone)]
pub struct AuthzView {
    /// Name.
    pub name: String,
    /// ARN.
    pub arn: String,
    /// Description.
    pub description: Option<String>,
    /// KMS key id as set (`None`: the default key).
    pub kms_key_id: Option<String>,
    /// Tags.
    pub tags: Vec<(String, String)>,
    /// Resource policy JSON text.
    pub policy: Option<String>,
    /// Rotation function ARN.
    pub rotation_lambda_arn: Option<String>,
    /// Revision of the secret's row; changes with every write (a cache key).
    pub revision: i64,
}

/// Settings of the service.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Region of the ARNs minted.
    pub region: String,
    /// Account of the ARNs minted.
    pub account_id: String,
    /// Budget of the read cache in bytes (0 turns it off); see [`crate::cache`].
    pub read_cache_bytes: u64,
    /// The other regions this server replicates secrets to (its configured peers).
    pub replica_regions: Vec<String>,
}

/// The read cache's budget when none is configured: room for about 16,000 typical secrets.
pub const DEFAULT_READ_CACHE_BYTES: u64 = 16 << 20;

/// The Secrets Manager operations over a store and a keyring.
pub struct SecretsService {
    pub(crate) store: Arc<dyn Store>,
    keyring: Arc<Keyring>,
    clock: Arc<dyn Clock>,
    pub(crate) config: ServiceConfig,
    pub(crate) namespace: String,
    /// Woken when a rotation becomes due now (RotateSecret).
    pub(crate) rotation_wakeup: Arc<tokio::sync::Notify>,
    /// Woken when a write leaves replicas to update or delete.
    pub(crate) replication_wakeup: Arc<tokio::sync::Notify>,
    /// Parsed secrets and their sealed values (see [`crate::cache`]).
    pub(crate) cache: SecretCache,
    /// Whether other nodes write to the store too (it announces changes): a cached secret
    /// is then served only after its revision is checked against the store.
    shared: bool,
    /// Writes to one secret queue here instead of racing on its revision.
    write_queues: Vec<tokio::sync::Mutex<()>>,
    /// The loaded KMS keys' ids and versions (see [`kms`]).
    kms: kms::KmsIndex,
}

tokio::task_local! {
    /// The rotation claim the current task writes under (the rotation driver's task): its
    /// writes to the claimed secret are fenced by it.
    static CLAIM: rotary_store::Claim;
}

/// Runs `fut` with every write it makes to the claim's secret fenced by `claim`: once
/// another node has taken the rotation over, those writes fail instead of landing.
pub async fn with_claim<F: std::future::Future>(claim: rotary_store::Claim, fut: F) -> F::Output {
    CLAIM.scope(claim, fut).await
}

/// Stripes of the per-secret write queues.
const WRITE_QUEUES: usize = 256;

/// How often an optimistic write is retried when the secret changed under it.
const MAX_WRITE_ATTEMPTS: usize = 16;

/// What a mutation did.
pub(crate) enum Outcome<T> {
    /// Nothing to write (a replay or a no-op).
    Unchanged(T),
    /// Write the working copy; `Some(ms)` also sets LastChangedDate.
    Changed(T, Option<i64>),
}

impl SecretsService {
    /// Opens the service: loads the KMS keys from the store, creating the default one on
    /// first start.
    pub async fn open(
        store: Arc<dyn Store>,
        keyring: Arc<Keyring>,
        clock: Arc<dyn Clock>,
        config: ServiceConfig,
    ) -> Result<Self, ApiError> {
        let namespace = format!("{}:{}", config.account_id, config.region);
        let shared = store.changes().is_some();
        let svc = Self {
            store,
            keyring,
            clock,
            cache: SecretCache::new(config.read_cache_bytes),
            shared,
            config,
            namespace,
            rotation_wakeup: Arc::new(tokio::sync::Notify::new()),
            replication_wakeup: Arc::new(tokio::sync::Notify::new()),
            write_queues: (0..WRITE_QUEUES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            kms: kms::KmsIndex::default(),
        };
        svc.load_kms_keys().await?;
        svc.ensure_kms_key(DEFAULT_KMS_KEY).await?;
        Ok(svc)
    }

    /// Applies changes announced by the store (made by any node sharing it) to this node's
    /// caches: a secret's cached copy older than the announced revision is dropped, a KMS key
    /// is (re)loaded, and everything is dropped when notices may have been lost. `None`
    /// when the store has no other writers.
    pub fn watch_changes(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        use tokio::sync::broadcast::error::RecvError;
        let mut rx = self.store.changes()?;
        let weak = Arc::downgrade(self);
        Some(tokio::spawn(async move {
            loop {
                let change = match rx.recv().await {
                    Ok(c) => c,
                    Err(RecvError::Lagged(_)) => Change::Resync,
                    Err(RecvError::Closed) => return,
                };
                let Some(svc) = weak.upgrade() else { return };
                svc.apply_change(change).await;
            }
        }))
    }

    async fn apply_change(&self, change: Change) {
        match change {
            Change::Secret {
                uid,
                revision: Some(revision),
            } => {
                self.cache.invalidate_below(&uid, revision);
            }
            Change::Secret {
                uid,
                revision: None,
            } => self.cache.invalidate(&uid),
            Change::Meta { key } => {
                self.kms_meta_changed(&key).await;
            }
            Change::Resync => {
                self.cache.clear();
                if let Err(e) = self.load_kms_keys().await {
                    tracing::warn!(error = %e, "Reloading the KMS keys failed");
                }
            }
        }
    }

    /// Whether other nodes share the store (it announces their changes): rotations are then
    /// claimed in the store before they run.
    pub fn is_shared(&self) -> bool {
        self.shared
    }

    /// The store (for health checks).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Notified when a rotation becomes due immediately.
    pub fn rotation_wakeup(&self) -> Arc<tokio::sync::Notify> {
        self.rotation_wakeup.clone()
    }

    /// The clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Woken when a write leaves replicas to update or delete (the replication shipper
    /// waits on it).
    pub fn replication_wakeup(&self) -> Arc<tokio::sync::Notify> {
        self.replication_wakeup.clone()
    }

    /// The configured region.
    pub fn region(&self) -> &str {
        &self.config.region
    }

    /// The configured account.
    pub fn account_id(&self) -> &str {
        &self.config.account_id
    }

    pub(crate) fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Finds a secret by name, full ARN or partial ARN (spec §2.2): a working copy.
    pub(crate) async fn find(&self, id: &str) -> Result<Option<Secret>, ApiError> {
        Ok(self.load(id).await?.map(|c| c.secret.clone()))
    }

    /// Finds a secret with its sealed values, from the read cache or the store.
    pub(crate) async fn load(&self, id: &str) -> Result<Option<Arc<CachedSecret>>, ApiError> {
        if let Some(hit) = self.cache.get(id) {
            if !self.shared {
                return Ok(Some(hit));
            }
            // Another node may have written since the copy was cached and its notice may
            // still be on the way: one indexed lookup of the revision makes the read see
            // every write acknowledged before it (the copy still saves the decode and the
            // ciphertext reads).
            let uid = &hit.secret.row.uid;
            let ticket = self.cache.ticket();
            let current = self.store.revision(uid).await.map_err(internal)?;
            if current == Some(hit.secret.row.revision) {
                return Ok(Some(hit));
            }
            self.cache.invalidate(uid);
            return self.load_stored(id, ticket).await;
        }
        let ticket = self.cache.ticket();
        self.load_stored(id, ticket).await
    }

    /// Reads a secret from the store and caches it unless a write invalidated anything
    /// since `ticket`.
    async fn load_stored(
        &self,
        id: &str,
        ticket: crate::cache::FillTicket,
    ) -> Result<Option<Arc<CachedSecret>>, ApiError> {
        let sealed = if id.starts_with("arn:") {
            self.find_arn(id).await?
        } else {
            names::check(id)?;
            self.store
                .find_sealed(&self.namespace, Lookup::Name(id))
                .await
                .map_err(internal)?
        };
        let Some(SealedRecord { record, values }) = sealed else {
            return Ok(None);
        };
        let entry = Arc::new(CachedSecret::new(
            Secret::from_record(record).map_err(internal)?,
            values,
        ));
        self.cache.fill(id, entry.clone(), ticket);
        Ok(Some(entry))
    }

    async fn find_arn(&self, id: &str) -> Result<Option<SealedRecord>, ApiError> {
        if let Some(rec) = self
            .store
            .find_sealed(&self.namespace, Lookup::Arn(id))
            .await
            .map_err(internal)?
        {
            return Ok(Some(rec));
        }
        // A partial ARN (no suffix), or a name that itself ends like a suffix.
        let Some(p) = arn::parse(id) else {
            return Ok(None);
        };
        if p.region != self.config.region || p.account != self.config.account_id {
            return Ok(None);
        }
        self.store
            .find_sealed(&self.namespace, Lookup::Name(p.resource))
            .await
            .map_err(internal)
    }

    /// The ARN of a secret id, if it exists (for authorization checks).
    pub async fn arn_of(&self, id: &str) -> Result<Option<String>, ApiError> {
        Ok(self.load(id).await?.map(|s| s.secret.row.arn.clone()))
    }

    /// What authorization looks at for a secret id, if the secret exists: its ARN, name,
    /// tags, resource policy and the settings that condition keys expose. No values.
    pub async fn authz_view(&self, id: &str) -> Result<Option<AuthzView>, ApiError> {
        Ok(self.prefetch(id).await?.map(|(view, _)| view))
    }

    /// Loads a secret once for a request: its [`AuthzView`], and the loaded secret to put in
    /// [`Ctx::prefetched`] so that a read operation uses it instead of loading it again.
    pub async fn prefetch(
        &self,
        id: &str,
    ) -> Result<Option<(AuthzView, Arc<Prefetched>)>, ApiError> {
        let Some(cached) = self.load(id).await? else {
            return Ok(None);
        };
        let secret = &cached.secret;
        let doc = &secret.doc;
        let view = AuthzView {
            name: secret.row.name.clone(),
            arn: secret.row.arn.clone(),
            description: doc.description.clone(),
            kms_key_id: doc.kms_key_id.clone(),
            tags: doc.tags.clone().unwrap_or_default(),
            policy: doc.policy.clone(),
            rotation_lambda_arn: doc.rotation.as_ref().and_then(|r| r.lambda_arn.clone()),
            revision: secret.row.revision,
        };
        let prefetched = Arc::new(Prefetched {
            id: id.to_owned(),
            secret: cached,
        });
        Ok(Some((view, prefetched)))
    }

    /// Like [`Self::find`] but a missing secret is `ResourceNotFoundException`.
    pub(crate) async fn resolve(&self, id: &str) -> Result<Secret, ApiError> {
        Ok(self.resolve_cached(id).await?.secret.clone())
    }

    /// Like [`Self::load`] but a missing secret is `ResourceNotFoundException`.
    pub(crate) async fn resolve_cached(&self, id: &str) -> Result<Arc<CachedSecret>, ApiError> {
        self.load(id)
            .await?
            .ok_or_else(|| api_error!(ResourceNotFoundException, "{}", msg::NOT_FOUND))
    }

    /// Like [`Self::resolve`], refusing a secret scheduled for deletion.
    pub(crate) async fn resolve_live(&self, id: &str) -> Result<Secret, ApiError> {
        let secret = self.resolve(id).await?;
        if secret.is_deleted() {
            return Err(deleted_error());
        }
        Ok(secret)
    }

    /// Like [`Self::mutate`], refusing a secret scheduled for deletion.
    pub(crate) async fn mutate_live<T>(
        &self,
        id: &str,
        token: Option<&str>,
        f: impl Fn(&mut Secret, Option<&SecretBytes>) -> Result<Outcome<T>, ApiError>,
    ) -> Result<T, ApiError> {
        self.mutate(id, token, |secret, existing| {
            if secret.is_deleted() {
                return Err(deleted_error());
            }
            f(secret, existing)
        })
        .await
    }

    /// Loads, changes and writes one secret, retrying if it changed concurrently. A
    /// replica is refused: it changes only through its primary.
    ///
    /// When `token` names a version that holds a value, its framed plaintext is passed to
    /// `f`, so idempotent replays can be told from conflicting reuse of a token.
    pub(crate) async fn mutate<T>(
        &self,
        id: &str,
        token: Option<&str>,
        f: impl Fn(&mut Secret, Option<&SecretBytes>) -> Result<Outcome<T>, ApiError>,
    ) -> Result<T, ApiError> {
        self.mutate_any(id, token, |secret, existing| {
            if secret.doc.is_replica() {
                return Err(replica_error());
            }
            f(secret, existing)
        })
        .await
    }

    /// [`Self::mutate`] without the replica guard (promoting a replica).
    pub(crate) async fn mutate_any<T>(
        &self,
        id: &str,
        token: Option<&str>,
        f: impl Fn(&mut Secret, Option<&SecretBytes>) -> Result<Outcome<T>, ApiError>,
    ) -> Result<T, ApiError> {
        // Writers to one secret take turns, so they don't lose compare-and-swaps to each
        // other; the retries below are for writes from other nodes.
        let queue = {
            let first = self.resolve(id).await?;
            self.write_queue(&first.row.uid)
        };
        let _turn = queue.lock().await;
        for _ in 0..MAX_WRITE_ATTEMPTS {
            let cached = self.resolve_cached(id).await?;
            self.load_secret_kms_key(&cached.secret).await?;
            let mut secret = cached.secret.clone();
            secret.begin_change();
            let existing = match token {
                Some(t) => self.token_value(&secret, t).await?,
                None => None,
            };
            match f(&mut secret, existing.as_ref())? {
                Outcome::Unchanged(t) => return Ok(t),
                Outcome::Changed(t, changed_at) => {
                    self.rewrap_stale(&mut secret, &cached);
                    // The state after the write, for the cache: version rows, and the
                    // sealed values new or kept.
                    let versions: Vec<_> = secret.versions.iter().map(|v| v.row.clone()).collect();
                    let sealed: Vec<(String, Vec<u8>)> = secret
                        .versions
                        .iter()
                        .filter_map(|v| {
                            let id = &v.row.version_id;
                            v.new_ciphertext
                                .clone()
                                .or_else(|| cached.sealed(id).map(<[u8]>::to_vec))
                                .map(|c| (id.clone(), c))
                        })
                        .collect();
                    let mut update = secret.into_update(changed_at).map_err(internal)?;
                    update.claim = CLAIM
                        .try_with(Clone::clone)
                        .ok()
                        .filter(|c| c.uid == update.row.uid);
                    let replicate = update.row.replication_due_ms.is_some();
                    match self.store.update(&update).await {
                        Ok(()) => {
                            if replicate {
                                self.replication_wakeup.notify_one();
                            }
                            let rec = rotary_store::SecretRecord {
                                row: update.row,
                                versions,
                            };
                            match Secret::from_record(rec) {
                                Ok(s) => self
                                    .cache
                                    .replace(id, Arc::new(CachedSecret::new(s, sealed))),
                                Err(_) => self.cache.invalidate(&cached.secret.row.uid),
                            }
                            return Ok(t);
                        }
                        // Changed elsewhere: the cached copy is old.
                        Err(rotary_store::Error::Conflict(_)) => {
                            self.cache.invalidate(&cached.secret.row.uid);
                        }
                        Err(rotary_store::Error::ClaimLost(uid)) => {
                            self.cache.invalidate(&uid);
                            tracing::warn!(secret_uid = %uid, "The rotation was taken over by another node; this node's write was not made");
                            return Err(api_error!(
                                InternalServiceError,
                                "The rotation of this secret was taken over by another node."
                            ));
                        }
                        Err(e) => {
                            self.cache.invalidate(&cached.secret.row.uid);
                            return Err(write_failed(e));
                        }
                    }
                }
            }
        }
        Err(api_error!(ThrottlingException, "Rate exceeded"))
    }

    /// The write queue of a secret (a stripe shared by a few secrets).
    fn write_queue(&self, uid: &str) -> &tokio::sync::Mutex<()> {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        let h = BuildHasherDefault::<DefaultHasher>::default().hash_one(uid);
        &self.write_queues[(h % WRITE_QUEUES as u64) as usize]
    }

    /// Deletes a secret from the store and the read cache.
    pub(crate) async fn delete_stored(&self, uid: &str) -> Result<bool, ApiError> {
        let result = self.store.delete(uid).await;
        self.cache.invalidate(uid);
        result.map_err(write_failed)
    }

    /// The framed plaintext of the version whose id is `token`, if it has a value.
    pub(crate) async fn token_value(
        &self,
        secret: &Secret,
        token: &str,
    ) -> Result<Option<SecretBytes>, ApiError> {
        let Some(i) = secret.version_index(token) else {
            return Ok(None);
        };
        if !secret.versions[i].row.has_value {
            return Ok(None);
        }
        let sealed = self
            .store
            .read_ciphertext(&secret.row.uid, token)
            .await
            .map_err(internal)?
            .ok_or_else(ApiError::internal)?;
        self.open_value(&secret.row.arn, token, &sealed)
            .await
            .map(Some)
    }

    /// Seals a value for a version of `arn` under KMS key `kms`.
    pub(crate) fn seal(
        &self,
        kms: &str,
        arn: &str,
        version_id: &str,
        value: &Plain<'_>,
    ) -> Result<Vec<u8>, ApiError> {
        // `kms` is the KmsKeyId as the secret names it: an id, ARN or alias of a loaded key.
        let name = self.kms_name(kms).unwrap_or_else(|| kms.to_owned());
        self.keyring.seal(&name, &value_aad(arn, version_id), &value.frame()).map_err(|e| {
            tracing::error!(error = %e, "Sealing a secret value failed");
            api_error!(EncryptionFailure, "Secrets Manager can't encrypt the protected secret text using the provided KMS key.")
        })
    }

    /// Opens a sealed value of a version of `arn`. A KMS key or key version this node has
    /// not loaded yet (created or rotated by another node sharing the store) is loaded from
    /// the store first.
    pub(crate) async fn open_value(
        &self,
        arn: &str,
        version_id: &str,
        sealed: &[u8],
    ) -> Result<SecretBytes, ApiError> {
        let aad = value_aad(arn, version_id);
        let mut opened = self.keyring.open(&aad, sealed);
        if opened.is_err() && self.load_kms_key_for(sealed).await? {
            opened = self.keyring.open(&aad, sealed);
        }
        opened.map_err(|e| {
            tracing::error!(error = %e, arn, version_id, "Opening a secret value failed");
            api_error!(DecryptionFailure, "{}", msg::DECRYPTION_FAILURE)
        })
    }

    /// Purges secrets whose recovery window has ended; returns how many.
    pub async fn purge_due(&self) -> Result<usize, ApiError> {
        let due = self
            .store
            .due_for_purge(self.now())
            .await
            .map_err(internal)?;
        let mut n = 0;
        for uid in due {
            if let Some(rec) = self
                .store
                .find("", Lookup::Uid(&uid))
                .await
                .map_err(internal)?
            {
                if let Ok(secret) = Secret::from_record(rec) {
                    self.keep_replica_tombstone(&secret).await?;
                }
            }
            // Only what is still due: a RestoreSecret that committed since the listing
            // (on any node) keeps its secret.
            let deleted = self.store.delete_if_due(&uid, self.now()).await;
            self.cache.invalidate(&uid);
            if deleted.map_err(write_failed)? {
                tracing::info!(secret_uid = %uid, "Purged a secret whose recovery window ended");
                n += 1;
            }
        }
        Ok(n)
    }
}

/// A failed store write as the client sees it: a full disk or a read-only store is said
/// so (the write was not made; reads still work), anything else is `internal`.
pub(crate) fn write_failed(e: rotary_store::Error) -> ApiError {
    match e {
        rotary_store::Error::Full | rotary_store::Error::ReadOnly => {
            tracing::error!(error = %e, "A write was refused by the store");
            api_error!(
                InternalServiceError,
                "The server's storage is {}: the change was not made. Reads still work; retry once the operator has fixed the storage.",
                if matches!(e, rotary_store::Error::Full) { "full" } else { "read-only" }
            )
        }
        e => internal(e),
    }
}

/// Logs an unexpected failure and turns it into `InternalServiceError`.
pub(crate) fn internal(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "Internal failure");
    ApiError::internal()
}

pub(crate) fn replica_error() -> ApiError {
    api_error!(InvalidRequestException, "{}", msg::REPLICA_READ_ONLY)
}

pub(crate) fn deleted_error() -> ApiError {
    api_error!(InvalidRequestException, "{}", msg::MARKED_FOR_DELETION)
}

#[cfg(test)]
mod replication_tests;
#[cfg(test)]
mod tests;
