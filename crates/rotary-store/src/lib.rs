//! Rotary's storage: the [`Store`] trait, its embedded SQLite implementation
//! ([`SqliteStore`]) and its PostgreSQL one for several nodes over one database
//! ([`PostgresStore`]).
//!
//! The store persists secrets, versions and server metadata. It sees only ciphertext: every
//! secret value arrives already sealed by `rotary-crypto`, and it never decrypts anything.
//! Both backends pass one conformance suite (`tests/it/conformance.rs`): same results, same
//! errors. With the `testing` feature, [`testing`] starts throwaway PostgreSQL servers.
//!
//! # Invariants
//! - Each trait method is one transaction: a version insert and the label moves that go with
//!   it commit together or not at all.
//! - A method returns only after its write is durable (SQLite: WAL with `synchronous=FULL`;
//!   PostgreSQL: after COMMIT, with the server's `synchronous_commit`).
//! - A write fenced by a rotation [`Claim`] commits only while that claim is held.
//! - Read-modify-write callers pass the revision they read; a concurrent change makes the
//!   write fail with [`Error::Conflict`] instead of silently overwriting it.

pub mod postgres;
mod sql;
pub mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;

use async_trait::async_trait;

pub use postgres::{PgStoreOptions, PostgresStore};
pub use sqlite::SqliteStore;

/// Errors of the store. They carry ids and names, never values.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A secret with this name already exists in the namespace.
    #[error("a secret named {0} already exists")]
    NameTaken(String),
    /// The secret changed since it was read.
    #[error("secret {0} was changed concurrently")]
    Conflict(String),
    /// The disk holding the store is full: the write was not made.
    #[error("the store's disk is full")]
    Full,
    /// The store cannot be written (a read-only file or file system): the write was not made.
    #[error("the store is read-only")]
    ReadOnly,
    /// The rotation claim a write was fenced by is no longer held: another node took the
    /// rotation over. The write was not made.
    #[error("the rotation claim on secret {0} was lost")]
    ClaimLost(String),
    /// The backend failed.
    #[error("storage backend: {0}")]
    Backend(#[from] sqlx::Error),
    /// Migrations failed.
    #[error("storage migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored row is malformed.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The data was written by a newer Rotary: its schema has migrations this binary does
    /// not know. Migrations are forward-only; run the newer binary (or restore a backup).
    #[error(
        "the store's schema is at version {found}, newer than this binary's {known}: \
         it was written by a newer Rotary; run that version (schema changes are forward-only)"
    )]
    NewerSchema {
        /// Highest migration applied to the store.
        found: i64,
        /// Highest migration this binary has.
        known: i64,
    },
}

/// Result of the store.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A secret's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRow {
    /// Internal id, never shown to clients.
    pub uid: String,
    /// `<account>:<region>`.
    pub namespace: String,
    /// Name, unique in the namespace.
    pub name: String,
    /// Full ARN.
    pub arn: String,
    /// Creation time (ms).
    pub created_ms: i64,
    /// Last change (ms).
    pub last_changed_ms: i64,
    /// Day of the last read (ms at 00:00 UTC).
    pub last_accessed_ms: Option<i64>,
    /// Scheduled deletion time (ms), when scheduled.
    pub deleted_ms: Option<i64>,
    /// When the rotation scheduler should next look at the secret (ms), if ever.
    pub rotation_due_ms: Option<i64>,
    /// When the replication shipper should next send the secret to its replica regions
    /// (ms), if ever: set by the write that makes the replicas stale, in the same
    /// transaction, so the row itself is the durable outbox.
    pub replication_due_ms: Option<i64>,
    /// Bumped by every update.
    pub revision: i64,
    /// Other metadata as JSON, owned by the domain layer.
    pub doc: String,
}

/// A version's metadata (no value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRow {
    /// Version id (the ClientRequestToken that created it).
    pub version_id: String,
    /// Creation order within the secret.
    pub seq: i64,
    /// Creation time (ms).
    pub created_ms: i64,
    /// Day of the last read (ms at 00:00 UTC).
    pub last_accessed_ms: Option<i64>,
    /// Staging labels.
    pub stages: Vec<String>,
    /// KMS key that sealed the value.
    pub kms_key_id: Option<String>,
    /// Whether a value is stored (false for a rotation placeholder).
    pub has_value: bool,
}

/// A secret with its versions' metadata, oldest version first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRecord {
    /// The secret.
    pub row: SecretRow,
    /// Its versions by `seq`.
    pub versions: Vec<VersionRow>,
}

/// A secret with its versions' metadata and the sealed value of every version that has one,
/// all read in one snapshot: what the read path caches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedRecord {
    /// The secret and its versions' metadata.
    pub record: SecretRecord,
    /// `(version id, sealed value)` for each version that holds a value, by `seq`.
    pub values: Vec<(String, Vec<u8>)>,
}

/// A version to insert, or the new state of an existing one.
#[derive(Debug, Clone)]
pub struct VersionWrite {
    /// Metadata. For an existing version only `stages` (and a value, if given) change.
    pub row: VersionRow,
    /// Sealed value; `None` keeps what is stored (or stores no value for a new version).
    pub ciphertext: Option<Vec<u8>>,
}

/// An atomic change to one secret.
#[derive(Debug, Clone)]
pub struct SecretUpdate {
    /// The new row; its `revision` must be the one read plus one.
    pub row: SecretRow,
    /// Versions to insert or update.
    pub upsert_versions: Vec<VersionWrite>,
    /// Versions to delete.
    pub delete_versions: Vec<String>,
    /// A rotation claim the write is fenced by: the update fails with
    /// [`Error::ClaimLost`] unless this claim (owner and fence) is still the secret's.
    pub claim: Option<Claim>,
}

/// A node's claim on a secret's rotation (see [`Store::claim_rotation`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The secret's internal id.
    pub uid: String,
    /// The claiming node's id.
    pub owner: String,
    /// Fencing token: bumped every time the claim changes hands, so a node that lost its
    /// claim cannot write under it.
    pub fence: i64,
}

/// A change made through the store, announced to every node sharing it (see
/// [`Store::changes`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A secret was inserted or updated to `revision` (`Some`), or deleted (`None`).
    Secret {
        /// Internal id.
        uid: String,
        /// The revision it now has; `None` when deleted.
        revision: Option<i64>,
    },
    /// A server-wide value was stored, replaced or deleted.
    Meta {
        /// Its key.
        key: String,
    },
    /// Notices may have been lost (the listening connection dropped and came back): every
    /// cached copy of stored state must be dropped.
    Resync,
}

/// The order of a listing (ListSecrets' `SortBy`); ties are broken by the internal id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListOrder {
    /// Creation time.
    Created,
    /// Name (byte order).
    Name,
    /// Last change.
    LastChanged,
    /// Day of the last read; never-read secrets as -1.
    LastAccessed,
}

/// A position in a listing: the sort key of the last secret returned.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum ListKey {
    /// For time orders.
    Int(i64),
    /// For the name order.
    Str(String),
}

/// One page of a listing, narrowed by what indexes can serve. The caller applies the full
/// filter semantics to what comes back; these conditions only ever narrow to a superset.
#[derive(Debug, Clone)]
pub struct ListQuery {
    /// `<account>:<region>`.
    pub namespace: String,
    /// Sort order.
    pub order: ListOrder,
    /// Descending.
    pub descending: bool,
    /// Start strictly after this `(key, uid)` in the order.
    pub after: Option<(ListKey, String)>,
    /// Include secrets scheduled for deletion.
    pub include_deleted: bool,
    /// Groups of name prefixes: a secret must match some prefix of every group.
    pub name_prefixes: Vec<Vec<String>>,
    /// Groups of tag-key prefixes: a secret must have a tag key matching some prefix of
    /// every group.
    pub tag_key_prefixes: Vec<Vec<String>>,
    /// Most secrets to return.
    pub limit: i64,
}

impl ListOrder {
    /// The sort key of a row in this order.
    pub fn key_of(self, row: &SecretRow) -> ListKey {
        match self {
            Self::Created => ListKey::Int(row.created_ms),
            Self::Name => ListKey::Str(row.name.clone()),
            Self::LastChanged => ListKey::Int(row.last_changed_ms),
            Self::LastAccessed => ListKey::Int(row.last_accessed_ms.unwrap_or(-1)),
        }
    }
}

/// How a secret is looked up.
#[derive(Debug, Clone, Copy)]
pub enum Lookup<'a> {
    /// By name.
    Name(&'a str),
    /// By full ARN.
    Arn(&'a str),
    /// By internal id (the scheduler).
    Uid(&'a str),
}

/// One conditional replacement of a server-wide value: `key` is set to `new` only if it
/// still holds `expected` ([`Store::put_metas_if_unchanged`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaSwap {
    /// The metadata key.
    pub key: String,
    /// The value it must still hold.
    pub expected: Vec<u8>,
    /// The value it gets.
    pub new: Vec<u8>,
}

/// Persistent storage of secrets. Implementations: [`SqliteStore`] (embedded) and
/// [`PostgresStore`] (shared by several nodes).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// A secret with its versions' metadata, read in one snapshot.
    async fn find(&self, namespace: &str, by: Lookup<'_>) -> Result<Option<SecretRecord>>;
    /// A secret with its versions' metadata and sealed values, read in one snapshot.
    async fn find_sealed(&self, namespace: &str, by: Lookup<'_>) -> Result<Option<SealedRecord>>;
    /// The sealed value of a version; `None` if the version is absent or has no value.
    async fn read_ciphertext(&self, uid: &str, version_id: &str) -> Result<Option<Vec<u8>>>;
    /// Inserts a new secret with its first versions; [`Error::NameTaken`] if the name is used.
    async fn insert(&self, row: &SecretRow, versions: &[VersionWrite]) -> Result<()>;
    /// Applies `update` if the stored revision is `update.row.revision - 1`, else
    /// [`Error::Conflict`].
    async fn update(&self, update: &SecretUpdate) -> Result<()>;
    /// Deletes a secret and its versions; returns whether it existed.
    async fn delete(&self, uid: &str) -> Result<bool>;
    /// Every secret of a namespace with its versions' metadata.
    async fn list(&self, namespace: &str) -> Result<Vec<SecretRecord>>;
    /// One page of a sorted listing with its versions' metadata (see [`ListQuery`]).
    ///
    /// The default reads the whole namespace and narrows it in memory (name prefixes only);
    /// backends answer it from indexes.
    async fn list_page(&self, query: &ListQuery) -> Result<Vec<SecretRecord>> {
        let mut all: Vec<(ListKey, SecretRecord)> = self
            .list(&query.namespace)
            .await?
            .into_iter()
            .filter(|r| query.include_deleted || r.row.deleted_ms.is_none())
            .filter(|r| {
                query
                    .name_prefixes
                    .iter()
                    .all(|g| g.iter().any(|p| r.row.name.starts_with(p.as_str())))
            })
            .map(|r| (query.order.key_of(&r.row), r))
            .collect();
        let cmp = |a: &(ListKey, SecretRecord), b: &(ListKey, SecretRecord)| {
            (&a.0, &a.1.row.uid).cmp(&(&b.0, &b.1.row.uid))
        };
        all.sort_by(|a, b| {
            if query.descending {
                cmp(b, a)
            } else {
                cmp(a, b)
            }
        });
        Ok(all
            .into_iter()
            .filter(|(k, r)| match &query.after {
                None => true,
                Some((ak, au)) => {
                    let pos = (k, &r.row.uid).cmp(&(ak, au));
                    if query.descending {
                        pos.is_lt()
                    } else {
                        pos.is_gt()
                    }
                }
            })
            .take(usize::try_from(query.limit).unwrap_or(0))
            .map(|(_, r)| r)
            .collect())
    }
    /// Ids of secrets whose scheduled deletion time is at or before `now_ms`.
    async fn due_for_purge(&self, now_ms: i64) -> Result<Vec<String>>;
    /// Deletes a secret and its versions only if it is still scheduled for deletion at or
    /// before `now_ms` (a RestoreSecret that committed since [`Store::due_for_purge`] keeps
    /// it); returns whether it was deleted.
    async fn delete_if_due(&self, uid: &str, now_ms: i64) -> Result<bool>;
    /// Records the day of a read on the secret and the version (no revision bump).
    async fn record_access(&self, uid: &str, version_id: &str, day_ms: i64) -> Result<()>;
    /// A server-wide value.
    async fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Stores a server-wide value unless the key exists; returns whether it was stored.
    async fn put_meta_if_absent(&self, key: &str, value: &[u8]) -> Result<bool>;
    /// Stores or replaces a server-wide value.
    async fn put_meta(&self, key: &str, value: &[u8]) -> Result<()>;
    /// Stores or replaces several server-wide values in one transaction: all or none
    /// (master-key rotation re-wraps every sealed value at once).
    async fn put_metas(&self, entries: &[(String, Vec<u8>)]) -> Result<()>;
    /// Replaces several server-wide values in one transaction, each only if it still holds
    /// the value read before (`(key, expected, new)`): all or none. Returns false, changing
    /// nothing, when any of them changed or is gone (an online master-key rotation re-wraps
    /// values that running nodes may update meanwhile).
    async fn put_metas_if_unchanged(&self, entries: &[MetaSwap]) -> Result<bool>;
    /// Server-wide values whose key starts with `prefix`.
    async fn list_meta(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>>;
    /// Deletes a server-wide value; returns whether it existed.
    async fn delete_meta(&self, key: &str) -> Result<bool>;
    /// Ids of secrets whose rotation is due at or before `now_ms`, most overdue first.
    async fn due_rotations(&self, now_ms: i64, limit: i64) -> Result<Vec<String>>;
    /// Ids of secrets whose replicas are due to be sent (`replication_due_ms <= now_ms`),
    /// most overdue first, at most `limit` of them.
    async fn due_replications(&self, now_ms: i64, limit: i64) -> Result<Vec<String>>;
    /// Sets `replication_due_ms` of secret `uid` to `due_ms` if its revision is still
    /// `revision`; false if the secret changed or is gone. Changes nothing else: not the
    /// revision (a write that is not a change of the secret: the replication shipper
    /// records a send, or the next try, without racing the writes it ships), and it
    /// announces no change to other nodes (cached copies stay valid).
    async fn set_replication_due(
        &self,
        uid: &str,
        revision: i64,
        due_ms: Option<i64>,
    ) -> Result<bool>;
    /// Stores or replaces a rotation history record.
    async fn put_history(
        &self,
        id: &str,
        secret_uid: &str,
        started_ms: i64,
        record: &str,
    ) -> Result<()>;
    /// A secret's rotation history records, newest first.
    async fn list_history(&self, secret_uid: &str, limit: i64) -> Result<Vec<String>>;
    /// Whether the backend answers (for `/health`).
    async fn ping(&self) -> Result<()>;
    /// Claims the rotation of secret `uid` for `owner` for `lease_ms` milliseconds of the
    /// store's own clock (so nodes' clocks need not agree). Succeeds when nobody holds the
    /// claim, its lease has expired, or `owner` holds it already (the lease is extended
    /// and the fence kept); a claim taken from nobody or from an expired holder gets the
    /// previous fence plus one. `None` while another owner's lease runs, or when the secret
    /// does not exist (a claim row lives only as long as its secret).
    async fn claim_rotation(&self, uid: &str, owner: &str, lease_ms: i64) -> Result<Option<Claim>>;
    /// Extends a claim for `lease_ms` from now if it is still held (same owner and
    /// fence, even if its lease ran out meanwhile and nobody took it); false if lost.
    async fn renew_claim(&self, claim: &Claim, lease_ms: i64) -> Result<bool>;
    /// Gives up a claim if still held (the next claim of the secret keeps counting fences).
    async fn release_claim(&self, claim: &Claim) -> Result<()>;
    /// The current revision of secret `uid`, `None` if it does not exist: how a node
    /// sharing the store with others checks a cached copy before serving it.
    async fn revision(&self, uid: &str) -> Result<Option<i64>> {
        Ok(self
            .find("", Lookup::Uid(uid))
            .await?
            .map(|r| r.row.revision))
    }
    /// Changes made through this store by any node, for invalidating caches. `None` when
    /// the store has no other writers than this process (embedded SQLite), whose own
    /// writes its caches already see.
    fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<Change>> {
        None
    }
}
