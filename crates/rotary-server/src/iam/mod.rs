//! Principals: IAM users, their access keys, groups, and inline identity policies.
//!
//! Everything lives in the store's metadata table (`iam:user:<name>`, `iam:group:<name>`,
//! `iam:key:<access key id>`, names lower-cased because IAM names are unique without regard
//! to case) and in an in-memory cache loaded by [`Iam::open`] and updated after every
//! durable change. The request path reads only the cache: [`Iam::lookup`]
//! (`CredentialSource`), [`Iam::identity_policies`] and [`Iam::user`] are one hash lookup
//! under a read lock, with each user's policies (its own inline policies, then those of its
//! groups) compiled when written and combined in advance.
//!
//! Access-key secrets are sealed under the master key (label bound to the key id) before
//! they reach the store; in memory they are [`SecretKey`]s (zeroized, `[REDACTED]` in Debug).
//! The secret leaves the server once, in [`Iam::create_access_key`]'s answer.
//!
//! # Invariants
//! - The store is written before the cache, under one async lock, so the cache never shows
//!   a change that is not durable and two changes never interleave.
//! - Only Active keys are credentials; an inactive or deleted key is unknown.
//! - A policy that does not compile is refused and changes nothing; one stored that no longer
//!   compiles makes [`Iam::open`] fail rather than silently dropping a Deny.
//! - `note_key_used` never writes the store; [`Iam::flush_last_used`] does.

pub mod api;
mod validate;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use base64::Engine as _;
use parking_lot::RwLock;
use rand::distributions::{Alphanumeric, DistString, Uniform};
use rand::rngs::OsRng;
use rand::Rng;
use rotary_auth::policy::{limits, policy_size, Policy, PolicyKind};
use rotary_auth::{Credential, CredentialSource, Principal, PrincipalKind, SecretKey};
use rotary_core::{Clock, SystemClock};
use rotary_crypto::Keyring;
use rotary_store::Store;
use serde::{Deserialize, Serialize};

pub use api::{handle, OPERATIONS};

const USER_PREFIX: &str = "iam:user:";
const GROUP_PREFIX: &str = "iam:group:";
const KEY_PREFIX: &str = "iam:key:";

/// Most access keys a user may hold (AWS's quota).
pub const ACCESS_KEYS_PER_USER: usize = 2;
/// Most groups a user may belong to (AWS's quota).
pub const GROUPS_PER_USER: usize = 10;
/// Most users (AWS's default quota).
pub const USERS_MAX: usize = 5_000;
/// Most groups (AWS's default quota).
pub const GROUPS_MAX: usize = 300;

/// Why an IAM operation failed. The message variants carry AWS IAM's wording; none holds a
/// secret.
#[derive(Debug, thiserror::Error)]
pub enum IamError {
    /// IAM's `NoSuchEntity`.
    #[error("{0}")]
    NoSuchEntity(String),
    /// IAM's `EntityAlreadyExists`.
    #[error("{0}")]
    EntityAlreadyExists(String),
    /// IAM's `DeleteConflict`: the entity still has dependents.
    #[error("{0}")]
    DeleteConflict(String),
    /// IAM's `LimitExceeded`.
    #[error("{0}")]
    LimitExceeded(String),
    /// IAM's `MalformedPolicyDocument`, with the policy engine's message.
    #[error("{0}")]
    MalformedPolicyDocument(String),
    /// IAM's `InvalidInput` / `ValidationError`.
    #[error("{0}")]
    InvalidInput(String),
    /// The store failed.
    #[error("IAM storage: {0}")]
    Store(#[from] rotary_store::Error),
    /// A stored record cannot be read back.
    #[error("corrupt IAM record {key}: {reason}")]
    Corrupt {
        /// Store key.
        key: String,
        /// What is wrong (never the record's content).
        reason: String,
    },
    /// Sealing or unsealing an access-key secret failed.
    #[error("sealing access key {0} failed")]
    Seal(String),
}

impl IamError {
    /// AWS IAM's error name for this error.
    pub fn aws_name(&self) -> &'static str {
        match self {
            IamError::NoSuchEntity(_) => "NoSuchEntity",
            IamError::EntityAlreadyExists(_) => "EntityAlreadyExists",
            IamError::DeleteConflict(_) => "DeleteConflict",
            IamError::LimitExceeded(_) => "LimitExceeded",
            IamError::MalformedPolicyDocument(_) => "MalformedPolicyDocument",
            IamError::InvalidInput(_) => "InvalidInput",
            IamError::Store(_) | IamError::Corrupt { .. } | IamError::Seal(_) => "ServiceFailure",
        }
    }
}

/// A tag on a user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    /// Key (unique per user without regard to case).
    pub key: String,
    /// Value (may be empty).
    #[serde(default)]
    pub value: String,
}

/// Status of an access key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyStatus {
    /// Signs requests.
    Active,
    /// Kept, but unknown to signature verification.
    Inactive,
}

impl KeyStatus {
    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Active => "Active",
            KeyStatus::Inactive => "Inactive",
        }
    }

    /// Parses `Active` / `Inactive` (exact, as IAM).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "Active" => Some(KeyStatus::Active),
            "Inactive" => Some(KeyStatus::Inactive),
            _ => None,
        }
    }
}

/// A user as the request path and the API see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserInfo {
    /// User name, in the case it was created with.
    pub name: String,
    /// Path (`/` by default).
    pub path: String,
    /// `arn:aws:iam::<account>:user<path><name>`.
    pub arn: String,
    /// `AIDA…`, for `aws:userid`.
    pub user_id: String,
    /// Creation time, ms since the epoch.
    pub create_date_ms: i64,
    /// Tags, for `aws:PrincipalTag/<key>`.
    pub tags: Vec<Tag>,
}

/// A group as the API sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupInfo {
    /// Group name.
    pub name: String,
    /// Path (`/` by default).
    pub path: String,
    /// `arn:aws:iam::<account>:group<path><name>`.
    pub arn: String,
    /// `AGPA…`.
    pub group_id: String,
    /// Creation time, ms since the epoch.
    pub create_date_ms: i64,
    /// Member user names, sorted.
    pub members: Vec<String>,
}

/// An access key's metadata (never its secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessKeyInfo {
    /// `AKIA…`.
    pub access_key_id: String,
    /// Owner.
    pub user_name: String,
    /// Active or Inactive.
    pub status: KeyStatus,
    /// Creation time, ms since the epoch.
    pub create_date_ms: i64,
    /// Last time a request signed with it was authenticated, ms since the epoch.
    pub last_used_ms: Option<i64>,
}

/// A newly created access key: the only value that holds its secret.
#[derive(Clone, Debug)]
pub struct NewAccessKey {
    /// Its metadata.
    pub info: AccessKeyInfo,
    /// The secret; `[REDACTED]` in Debug.
    pub secret_access_key: SecretKey,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UserRecord {
    user_name: String,
    user_id: String,
    path: String,
    create_date: i64,
    #[serde(default)]
    tags: Vec<Tag>,
    /// Inline policies: name → document as written.
    #[serde(default)]
    policies: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GroupRecord {
    group_name: String,
    group_id: String,
    path: String,
    create_date: i64,
    /// Member user names (as the users spell them), sorted.
    #[serde(default)]
    members: Vec<String>,
    #[serde(default)]
    policies: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct KeyRecord {
    access_key_id: String,
    user_name: String,
    status: KeyStatus,
    create_date: i64,
    #[serde(default)]
    last_used_date: Option<i64>,
    /// The secret, wrapped by the master key, base64.
    sealed_secret: String,
}

struct UserEntry {
    rec: UserRecord,
    info: Arc<UserInfo>,
    compiled: BTreeMap<String, Arc<Policy>>,
    /// Own policies then each group's, in group-name order.
    effective: Arc<[Arc<Policy>]>,
}

struct GroupEntry {
    rec: GroupRecord,
    compiled: BTreeMap<String, Arc<Policy>>,
}

struct KeyEntry {
    rec: KeyRecord,
    secret: SecretKey,
    principal: Principal,
    /// Latest use noted in memory (0: never).
    last_used: AtomicI64,
    /// Latest use written to the store (0: never).
    persisted: AtomicI64,
}

impl KeyEntry {
    fn last_used(&self) -> Option<i64> {
        Some(self.last_used.load(Ordering::Relaxed)).filter(|t| *t > 0)
    }

    fn info(&self) -> AccessKeyInfo {
        AccessKeyInfo {
            access_key_id: self.rec.access_key_id.clone(),
            user_name: self.rec.user_name.clone(),
            status: self.rec.status,
            create_date_ms: self.rec.create_date,
            last_used_ms: self.last_used(),
        }
    }

    /// The record to store, with the latest noted use.
    fn record(&self) -> KeyRecord {
        let mut rec = self.rec.clone();
        rec.last_used_date = self.last_used();
        rec
    }
}

#[derive(Default)]
struct State {
    users: HashMap<String, UserEntry>,
    groups: HashMap<String, GroupEntry>,
    keys: HashMap<String, KeyEntry>,
}

impl State {
    fn user(&self, name: &str) -> Result<&UserEntry, IamError> {
        self.users
            .get(&name.to_ascii_lowercase())
            .ok_or_else(|| no_user(name))
    }

    fn group(&self, name: &str) -> Result<&GroupEntry, IamError> {
        self.groups
            .get(&name.to_ascii_lowercase())
            .ok_or_else(|| no_group(name))
    }

    fn groups_of(&self, user: &str) -> Vec<&GroupEntry> {
        let mut out: Vec<&GroupEntry> = self
            .groups
            .values()
            .filter(|g| g.rec.members.iter().any(|m| m.eq_ignore_ascii_case(user)))
            .collect();
        out.sort_by(|a, b| a.rec.group_name.cmp(&b.rec.group_name));
        out
    }

    /// Recomputes a user's combined policies.
    fn refresh_effective(&mut self, user_key: &str) {
        let Some(u) = self.users.get(user_key) else {
            return;
        };
        let mut all: Vec<Arc<Policy>> = u.compiled.values().cloned().collect();
        for g in self.groups_of(&u.rec.user_name) {
            all.extend(g.compiled.values().cloned());
        }
        if let Some(u) = self.users.get_mut(user_key) {
            u.effective = all.into();
        }
    }
}

fn no_user(name: &str) -> IamError {
    IamError::NoSuchEntity(format!("The user with name {name} cannot be found."))
}

fn no_group(name: &str) -> IamError {
    IamError::NoSuchEntity(format!("The group with name {name} cannot be found."))
}

fn no_key(id: &str) -> IamError {
    IamError::NoSuchEntity(format!("The Access Key with id {id} cannot be found."))
}

/// The AAD binding a stored access-key secret (`SealedSecret`, base64, in the
/// `iam:key:<akid>` record) to its key id, under the master key.
pub fn key_label(akid: &str) -> Vec<u8> {
    format!("rotary-iam-access-key:{akid}").into_bytes()
}

/// `n` characters of `A-Z2-7`, the alphabet of AWS's key ids.
fn base32ish(n: usize) -> String {
    let upper = Uniform::new_inclusive(b'A', b'Z');
    let digits = Uniform::new_inclusive(b'2', b'7');
    (0..n)
        .map(|i| {
            if i % 3 == 0 {
                OsRng.sample(digits)
            } else {
                OsRng.sample(upper)
            }
        })
        .map(char::from)
        .collect()
}

fn compile_all(
    key: &str,
    policies: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, Arc<Policy>>, IamError> {
    policies
        .iter()
        .map(|(name, text)| {
            Policy::parse(text, PolicyKind::Identity, usize::MAX)
                .map(|p| (name.clone(), Arc::new(p)))
                .map_err(|e| IamError::Corrupt {
                    key: key.to_owned(),
                    reason: format!("inline policy {name} no longer compiles: {}", e.message()),
                })
        })
        .collect()
}

/// Where a policy is attached: the owner and the size limit of its policies together.
#[derive(Clone, Copy)]
enum Owner<'a> {
    User(&'a str),
    Group(&'a str),
}

impl Owner<'_> {
    fn limit(self) -> usize {
        match self {
            Owner::User(_) => limits::USER_INLINE_POLICY_CHARS,
            Owner::Group(_) => limits::GROUP_INLINE_POLICY_CHARS,
        }
    }

    fn describe(self) -> String {
        match self {
            Owner::User(n) => format!("user {n}"),
            Owner::Group(n) => format!("group {n}"),
        }
    }
}

/// Users, groups, access keys and inline policies, persisted in the store and cached.
pub struct Iam {
    store: Arc<dyn Store>,
    keyring: Arc<Keyring>,
    account_id: String,
    clock: Arc<dyn Clock>,
    state: RwLock<State>,
    /// Serializes changes: store first, then cache.
    write: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Iam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.state.read();
        f.debug_struct("Iam")
            .field("account_id", &self.account_id)
            .field("users", &s.users.len())
            .field("groups", &s.groups.len())
            .field("keys", &s.keys.len())
            .finish()
    }
}

impl Iam {
    /// Loads every user, group and key from the store (unsealing key secrets) and compiles
    /// every inline policy.
    pub async fn open(
        store: Arc<dyn Store>,
        keyring: Arc<Keyring>,
        account_id: &str,
    ) -> Result<Self, IamError> {
        let iam = Iam {
            store,
            keyring,
            account_id: account_id.to_owned(),
            clock: Arc::new(SystemClock),
            state: RwLock::new(State::default()),
            write: tokio::sync::Mutex::new(()),
        };
        let state = iam.load().await?;
        *iam.state.write() = state;
        Ok(iam)
    }

    /// Reloads every user, group and key from the store: how a change made by another node
    /// sharing the store reaches this one. Waits for this node's own writes to finish.
    pub async fn reload(&self) -> Result<(), IamError> {
        let _write = self.write.lock().await;
        let state = self.load().await?;
        *self.state.write() = state;
        Ok(())
    }

    /// Whether a server-wide store key holds IAM state (users, groups, keys).
    pub fn is_iam_key(key: &str) -> bool {
        [USER_PREFIX, GROUP_PREFIX, KEY_PREFIX]
            .iter()
            .any(|p| key.starts_with(p))
    }

    /// Uses `clock` for creation dates (the server's test clock, or a test's).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    async fn load(&self) -> Result<State, IamError> {
        fn parse<T: serde::de::DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, IamError> {
            serde_json::from_slice(bytes).map_err(|e| IamError::Corrupt {
                key: key.to_owned(),
                reason: format!(
                    "not a valid record (line {}, column {})",
                    e.line(),
                    e.column()
                ),
            })
        }
        let mut state = State::default();
        for (key, bytes) in self.store.list_meta(USER_PREFIX).await? {
            let rec: UserRecord = parse(&key, &bytes)?;
            let compiled = compile_all(&key, &rec.policies)?;
            let info = Arc::new(self.user_info(&rec));
            state.users.insert(
                rec.user_name.to_ascii_lowercase(),
                UserEntry {
                    rec,
                    info,
                    compiled,
                    effective: Arc::from(Vec::new()),
                },
            );
        }
        for (key, bytes) in self.store.list_meta(GROUP_PREFIX).await? {
            let rec: GroupRecord = parse(&key, &bytes)?;
            let compiled = compile_all(&key, &rec.policies)?;
            state.groups.insert(
                rec.group_name.to_ascii_lowercase(),
                GroupEntry { rec, compiled },
            );
        }
        for (key, bytes) in self.store.list_meta(KEY_PREFIX).await? {
            let rec: KeyRecord = parse(&key, &bytes)?;
            let Some(user) = state.users.get(&rec.user_name.to_ascii_lowercase()) else {
                tracing::warn!(access_key_id = %rec.access_key_id, "Access key of a missing user ignored");
                continue;
            };
            let secret = self.unseal(&rec)?;
            let principal = self.principal(&user.info, &rec.access_key_id);
            let used = rec.last_used_date.unwrap_or(0);
            state.keys.insert(
                rec.access_key_id.clone(),
                KeyEntry {
                    rec,
                    secret,
                    principal,
                    last_used: AtomicI64::new(used),
                    persisted: AtomicI64::new(used),
                },
            );
        }
        let users: Vec<String> = state.users.keys().cloned().collect();
        for u in users {
            state.refresh_effective(&u);
        }
        Ok(state)
    }

    fn seal(&self, akid: &str, secret: &SecretKey) -> Result<String, IamError> {
        let sealed = self
            .keyring
            .wrap_master(&key_label(akid), secret.expose().as_bytes())
            .map_err(|_| IamError::Seal(akid.to_owned()))?;
        Ok(base64::engine::general_purpose::STANDARD.encode(sealed))
    }

    fn unseal(&self, rec: &KeyRecord) -> Result<SecretKey, IamError> {
        let akid = &rec.access_key_id;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&rec.sealed_secret)
            .map_err(|_| IamError::Seal(akid.clone()))?;
        let plain = self
            .keyring
            .unwrap_master(&key_label(akid), &bytes)
            .map_err(|_| IamError::Seal(akid.clone()))?;
        let text = std::str::from_utf8(plain.expose()).map_err(|_| IamError::Seal(akid.clone()))?;
        Ok(SecretKey::new(text.to_owned()))
    }

    fn principal(&self, user: &UserInfo, akid: &str) -> Principal {
        Principal {
            account_id: self.account_id.clone(),
            arn: user.arn.clone(),
            access_key_id: akid.to_owned(),
            kind: PrincipalKind::User {
                name: user.name.clone(),
            },
        }
    }

    fn user_info(&self, rec: &UserRecord) -> UserInfo {
        UserInfo {
            name: rec.user_name.clone(),
            path: rec.path.clone(),
            arn: self.user_arn_with_path(&rec.path, &rec.user_name),
            user_id: rec.user_id.clone(),
            create_date_ms: rec.create_date,
            tags: rec.tags.clone(),
        }
    }

    fn group_info(&self, rec: &GroupRecord) -> GroupInfo {
        GroupInfo {
            name: rec.group_name.clone(),
            path: rec.path.clone(),
            arn: self.group_arn_with_path(&rec.path, &rec.group_name),
            group_id: rec.group_id.clone(),
            create_date_ms: rec.create_date,
            members: rec.members.clone(),
        }
    }

    /// The account id principals belong to.
    pub fn account_id(&self) -> &str {
        &self.account_id
    }

    /// `arn:aws:iam::<account>:user<path><name>`.
    pub fn user_arn_with_path(&self, path: &str, name: &str) -> String {
        format!("arn:aws:iam::{}:user{path}{name}", self.account_id)
    }

    /// `arn:aws:iam::<account>:group<path><name>`.
    pub fn group_arn_with_path(&self, path: &str, name: &str) -> String {
        format!("arn:aws:iam::{}:group{path}{name}", self.account_id)
    }

    // ---- request path -------------------------------------------------------------------

    /// A user's identity policies (its inline policies, then its groups'), compiled; `None`
    /// for an unknown user. One hash lookup, no parsing.
    pub fn identity_policies(&self, user_name: &str) -> Option<Arc<[Arc<Policy>]>> {
        let s = self.state.read();
        s.users
            .get(&user_name.to_ascii_lowercase())
            .map(|u| u.effective.clone())
    }

    /// A user's ARN, id and tags (for `aws:PrincipalTag/…`, `aws:username`, `aws:userid`).
    pub fn user(&self, name: &str) -> Option<Arc<UserInfo>> {
        let s = self.state.read();
        s.users
            .get(&name.to_ascii_lowercase())
            .map(|u| u.info.clone())
    }

    /// Notes that a request signed with `akid` was authenticated at `now_ms`. In memory only
    /// (an atomic under a read lock); [`Iam::flush_last_used`] persists it.
    pub fn note_key_used(&self, akid: &str, now_ms: i64) {
        let s = self.state.read();
        if let Some(k) = s.keys.get(akid) {
            k.last_used.fetch_max(now_ms, Ordering::Relaxed);
        }
    }

    /// Writes the last-used times noted since the previous flush; returns how many keys were
    /// written. The server calls it every minute (and at shutdown).
    pub async fn flush_last_used(&self) -> Result<usize, IamError> {
        let _w = self.write.lock().await;
        let pending: Vec<(String, KeyRecord, i64)> = {
            let s = self.state.read();
            s.keys
                .values()
                .filter_map(|k| {
                    let used = k.last_used.load(Ordering::Relaxed);
                    (used > k.persisted.load(Ordering::Relaxed))
                        .then(|| (k.rec.access_key_id.clone(), k.record(), used))
                })
                .collect()
        };
        let mut written = 0;
        for (akid, rec, used) in pending {
            self.put(&format!("{KEY_PREFIX}{akid}"), &rec).await?;
            if let Some(k) = self.state.read().keys.get(&akid) {
                k.persisted.fetch_max(used, Ordering::Relaxed);
            }
            written += 1;
        }
        Ok(written)
    }

    /// Spawns a task that runs [`Iam::flush_last_used`] every `period` (the server uses one
    /// minute) until the `Iam` is dropped. Failures are logged and retried next period.
    pub fn spawn_last_used_flusher(
        iam: &Arc<Iam>,
        period: std::time::Duration,
    ) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(iam);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(iam) = weak.upgrade() else {
                    break;
                };
                if let Err(e) = iam.flush_last_used().await {
                    tracing::warn!(error = %e, "Writing access keys' last use failed");
                }
            }
        })
    }

    async fn put<T: Serialize>(&self, key: &str, value: &T) -> Result<(), IamError> {
        let bytes = serde_json::to_vec(value).map_err(|e| IamError::Corrupt {
            key: key.to_owned(),
            reason: e.to_string(),
        })?;
        self.store.put_meta(key, &bytes).await?;
        Ok(())
    }

    async fn put_new<T: Serialize>(&self, key: &str, value: &T) -> Result<bool, IamError> {
        let bytes = serde_json::to_vec(value).map_err(|e| IamError::Corrupt {
            key: key.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(self.store.put_meta_if_absent(key, &bytes).await?)
    }

    // ---- users --------------------------------------------------------------------------

    /// Creates a user.
    pub async fn create_user(
        &self,
        name: &str,
        path: Option<&str>,
        tags: Vec<Tag>,
    ) -> Result<Arc<UserInfo>, IamError> {
        validate::name("userName", name, validate::USER_NAME_MAX)?;
        let path = path.unwrap_or("/");
        validate::path(path)?;
        validate::tags(&tags)?;
        let _w = self.write.lock().await;
        let lower = name.to_ascii_lowercase();
        {
            let s = self.state.read();
            if s.users.contains_key(&lower) {
                return Err(user_exists(name));
            }
            if s.users.len() >= USERS_MAX {
                return Err(IamError::LimitExceeded(format!(
                    "Cannot exceed quota for UsersPerAccount: {USERS_MAX}"
                )));
            }
        }
        let rec = UserRecord {
            user_name: name.to_owned(),
            user_id: format!("AIDA{}", base32ish(17)),
            path: path.to_owned(),
            create_date: self.clock.now_ms(),
            tags,
            policies: BTreeMap::new(),
        };
        if !self.put_new(&format!("{USER_PREFIX}{lower}"), &rec).await? {
            return Err(user_exists(name));
        }
        let info = Arc::new(self.user_info(&rec));
        self.state.write().users.insert(
            lower,
            UserEntry {
                rec,
                info: info.clone(),
                compiled: BTreeMap::new(),
                effective: Arc::from(Vec::new()),
            },
        );
        Ok(info)
    }

    /// One user.
    pub fn get_user(&self, name: &str) -> Result<Arc<UserInfo>, IamError> {
        Ok(self.state.read().user(name)?.info.clone())
    }

    /// Users whose path starts with `path_prefix` (all by default), sorted by name.
    pub fn list_users(&self, path_prefix: Option<&str>) -> Vec<Arc<UserInfo>> {
        let s = self.state.read();
        let mut out: Vec<Arc<UserInfo>> = s
            .users
            .values()
            .filter(|u| path_prefix.is_none_or(|p| u.rec.path.starts_with(p)))
            .map(|u| u.info.clone())
            .collect();
        out.sort_by_key(|u| u.name.to_ascii_lowercase());
        out
    }

    /// Deletes a user that has no access keys, inline policies or group memberships (as
    /// IAM, which answers DeleteConflict otherwise).
    pub async fn delete_user(&self, name: &str) -> Result<(), IamError> {
        let _w = self.write.lock().await;
        let lower = name.to_ascii_lowercase();
        {
            let s = self.state.read();
            let u = s.user(name)?;
            if s.keys.values().any(|k| k.rec.user_name == u.rec.user_name) {
                return Err(IamError::DeleteConflict(
                    "Cannot delete entity, must delete access keys first.".to_owned(),
                ));
            }
            if !u.rec.policies.is_empty() {
                return Err(IamError::DeleteConflict(
                    "Cannot delete entity, must delete policies first.".to_owned(),
                ));
            }
            if !s.groups_of(&u.rec.user_name).is_empty() {
                return Err(IamError::DeleteConflict(
                    "Cannot delete entity, must remove user from all groups first.".to_owned(),
                ));
            }
        }
        self.store
            .delete_meta(&format!("{USER_PREFIX}{lower}"))
            .await?;
        self.state.write().users.remove(&lower);
        Ok(())
    }

    /// Stores a changed user record and refreshes its cache entry (info and policies).
    async fn save_user(
        &self,
        rec: UserRecord,
        compiled: Option<BTreeMap<String, Arc<Policy>>>,
    ) -> Result<(), IamError> {
        let lower = rec.user_name.to_ascii_lowercase();
        self.put(&format!("{USER_PREFIX}{lower}"), &rec).await?;
        let info = Arc::new(self.user_info(&rec));
        let mut s = self.state.write();
        if let Some(u) = s.users.get_mut(&lower) {
            u.rec = rec;
            u.info = info;
            if let Some(c) = compiled {
                u.compiled = c;
            }
        }
        s.refresh_effective(&lower);
        Ok(())
    }

    /// Adds tags to a user, replacing the value of a key it already has.
    pub async fn tag_user(&self, name: &str, tags: Vec<Tag>) -> Result<(), IamError> {
        validate::tags(&tags)?;
        let _w = self.write.lock().await;
        let mut rec = self.state.read().user(name)?.rec.clone();
        for t in tags {
            match rec
                .tags
                .iter_mut()
                .find(|o| o.key.eq_ignore_ascii_case(&t.key))
            {
                Some(o) => *o = t,
                None => rec.tags.push(t),
            }
        }
        if rec.tags.len() > validate::TAGS_MAX {
            return Err(IamError::LimitExceeded(format!(
                "The number of tags has reached the maximum limit of {}.",
                validate::TAGS_MAX
            )));
        }
        self.save_user(rec, None).await
    }

    /// Removes tags from a user (keys compare without case; absent keys are ignored).
    pub async fn untag_user(&self, name: &str, keys: &[String]) -> Result<(), IamError> {
        if keys.len() > validate::TAGS_MAX {
            return Err(IamError::InvalidInput(format!(
                "At most {} tag keys can be removed at once.",
                validate::TAGS_MAX
            )));
        }
        for k in keys {
            validate::tag_key(k)?;
        }
        let _w = self.write.lock().await;
        let mut rec = self.state.read().user(name)?.rec.clone();
        rec.tags
            .retain(|t| !keys.iter().any(|k| k.eq_ignore_ascii_case(&t.key)));
        self.save_user(rec, None).await
    }

    // ---- access keys --------------------------------------------------------------------

    /// Creates an Active access key for a user (at most two per user). The answer is the
    /// only place the secret ever appears.
    pub async fn create_access_key(&self, user_name: &str) -> Result<NewAccessKey, IamError> {
        let _w = self.write.lock().await;
        let info = {
            let s = self.state.read();
            let u = s.user(user_name)?;
            let held = s
                .keys
                .values()
                .filter(|k| k.rec.user_name == u.rec.user_name)
                .count();
            if held >= ACCESS_KEYS_PER_USER {
                return Err(IamError::LimitExceeded(format!(
                    "Cannot exceed quota for AccessKeysPerUser: {ACCESS_KEYS_PER_USER}"
                )));
            }
            u.info.clone()
        };
        let secret = SecretKey::new(Alphanumeric.sample_string(&mut OsRng, 40));
        for _ in 0..8 {
            let akid = format!("AKIA{}", base32ish(16));
            if self.state.read().keys.contains_key(&akid) {
                continue;
            }
            let rec = KeyRecord {
                access_key_id: akid.clone(),
                user_name: info.name.clone(),
                status: KeyStatus::Active,
                create_date: self.clock.now_ms(),
                last_used_date: None,
                sealed_secret: self.seal(&akid, &secret)?,
            };
            if !self.put_new(&format!("{KEY_PREFIX}{akid}"), &rec).await? {
                continue;
            }
            let entry = KeyEntry {
                principal: self.principal(&info, &akid),
                secret: secret.clone(),
                rec,
                last_used: AtomicI64::new(0),
                persisted: AtomicI64::new(0),
            };
            let out = NewAccessKey {
                info: entry.info(),
                secret_access_key: secret,
            };
            self.state.write().keys.insert(akid, entry);
            return Ok(out);
        }
        Err(IamError::Seal(
            "no free access key id after 8 attempts".to_owned(),
        ))
    }

    /// A user's access keys, oldest first.
    pub fn list_access_keys(&self, user_name: &str) -> Result<Vec<AccessKeyInfo>, IamError> {
        let s = self.state.read();
        let u = s.user(user_name)?;
        let mut out: Vec<AccessKeyInfo> = s
            .keys
            .values()
            .filter(|k| k.rec.user_name == u.rec.user_name)
            .map(KeyEntry::info)
            .collect();
        out.sort_by(|a, b| {
            (a.create_date_ms, &a.access_key_id).cmp(&(b.create_date_ms, &b.access_key_id))
        });
        Ok(out)
    }

    /// The owner of a key (checking `user_name` when given, as IAM does).
    fn key_owner(&self, s: &State, user_name: Option<&str>, akid: &str) -> Result<(), IamError> {
        let k = s.keys.get(akid).ok_or_else(|| no_key(akid))?;
        if let Some(u) = user_name {
            s.user(u)?;
            if !k.rec.user_name.eq_ignore_ascii_case(u) {
                return Err(no_key(akid));
            }
        }
        Ok(())
    }

    /// Activates or deactivates a key; an inactive key is unknown to verification.
    pub async fn update_access_key(
        &self,
        user_name: Option<&str>,
        akid: &str,
        status: KeyStatus,
    ) -> Result<(), IamError> {
        let _w = self.write.lock().await;
        let rec = {
            let s = self.state.read();
            self.key_owner(&s, user_name, akid)?;
            let Some(k) = s.keys.get(akid) else {
                return Err(no_key(akid));
            };
            let mut rec = k.record();
            rec.status = status;
            rec
        };
        self.put(&format!("{KEY_PREFIX}{akid}"), &rec).await?;
        if let Some(k) = self.state.write().keys.get_mut(akid) {
            k.rec.status = status;
            k.persisted
                .fetch_max(rec.last_used_date.unwrap_or(0), Ordering::Relaxed);
        }
        Ok(())
    }

    /// Deletes a key.
    pub async fn delete_access_key(
        &self,
        user_name: Option<&str>,
        akid: &str,
    ) -> Result<(), IamError> {
        let _w = self.write.lock().await;
        self.key_owner(&self.state.read(), user_name, akid)?;
        self.store
            .delete_meta(&format!("{KEY_PREFIX}{akid}"))
            .await?;
        self.state.write().keys.remove(akid);
        Ok(())
    }

    /// The user name a key belongs to.
    pub fn key_user(&self, akid: &str) -> Option<String> {
        self.state
            .read()
            .keys
            .get(akid)
            .map(|k| k.rec.user_name.clone())
    }

    // ---- groups -------------------------------------------------------------------------

    /// Creates a group.
    pub async fn create_group(
        &self,
        name: &str,
        path: Option<&str>,
    ) -> Result<GroupInfo, IamError> {
        validate::name("groupName", name, validate::GROUP_NAME_MAX)?;
        let path = path.unwrap_or("/");
        validate::path(path)?;
        let _w = self.write.lock().await;
        let lower = name.to_ascii_lowercase();
        {
            let s = self.state.read();
            if s.groups.contains_key(&lower) {
                return Err(group_exists(name));
            }
            if s.groups.len() >= GROUPS_MAX {
                return Err(IamError::LimitExceeded(format!(
                    "Cannot exceed quota for GroupsPerAccount: {GROUPS_MAX}"
                )));
            }
        }
        let rec = GroupRecord {
            group_name: name.to_owned(),
            group_id: format!("AGPA{}", base32ish(17)),
            path: path.to_owned(),
            create_date: self.clock.now_ms(),
            members: Vec::new(),
            policies: BTreeMap::new(),
        };
        if !self
            .put_new(&format!("{GROUP_PREFIX}{lower}"), &rec)
            .await?
        {
            return Err(group_exists(name));
        }
        let info = self.group_info(&rec);
        self.state.write().groups.insert(
            lower,
            GroupEntry {
                rec,
                compiled: BTreeMap::new(),
            },
        );
        Ok(info)
    }

    /// One group with its members.
    pub fn get_group(&self, name: &str) -> Result<GroupInfo, IamError> {
        let s = self.state.read();
        Ok(self.group_info(&s.group(name)?.rec))
    }

    /// Groups whose path starts with `path_prefix` (all by default), sorted by name.
    pub fn list_groups(&self, path_prefix: Option<&str>) -> Vec<GroupInfo> {
        let s = self.state.read();
        let mut out: Vec<GroupInfo> = s
            .groups
            .values()
            .filter(|g| path_prefix.is_none_or(|p| g.rec.path.starts_with(p)))
            .map(|g| self.group_info(&g.rec))
            .collect();
        out.sort_by_key(|g| g.name.to_ascii_lowercase());
        out
    }

    /// Deletes a group that has no members and no inline policies.
    pub async fn delete_group(&self, name: &str) -> Result<(), IamError> {
        let _w = self.write.lock().await;
        let lower = name.to_ascii_lowercase();
        {
            let s = self.state.read();
            let g = s.group(name)?;
            if !g.rec.members.is_empty() {
                return Err(IamError::DeleteConflict(
                    "Cannot delete entity, must remove users from group first.".to_owned(),
                ));
            }
            if !g.rec.policies.is_empty() {
                return Err(IamError::DeleteConflict(
                    "Cannot delete entity, must delete policies first.".to_owned(),
                ));
            }
        }
        self.store
            .delete_meta(&format!("{GROUP_PREFIX}{lower}"))
            .await?;
        self.state.write().groups.remove(&lower);
        Ok(())
    }

    /// Stores a changed group record and refreshes the policies of its old and new members.
    async fn save_group(
        &self,
        rec: GroupRecord,
        compiled: Option<BTreeMap<String, Arc<Policy>>>,
        also_refresh: Option<&str>,
    ) -> Result<(), IamError> {
        let lower = rec.group_name.to_ascii_lowercase();
        self.put(&format!("{GROUP_PREFIX}{lower}"), &rec).await?;
        let mut s = self.state.write();
        let mut refresh: Vec<String> = rec.members.iter().map(|m| m.to_ascii_lowercase()).collect();
        refresh.extend(also_refresh.map(str::to_ascii_lowercase));
        if let Some(g) = s.groups.get_mut(&lower) {
            g.rec = rec;
            if let Some(c) = compiled {
                g.compiled = c;
            }
        }
        for u in refresh {
            s.refresh_effective(&u);
        }
        Ok(())
    }

    /// Adds a user to a group (no-op if it is a member already, as IAM).
    pub async fn add_user_to_group(&self, group: &str, user: &str) -> Result<(), IamError> {
        let _w = self.write.lock().await;
        let rec = {
            let s = self.state.read();
            let g = s.group(group)?;
            let u = s.user(user)?;
            if g.rec.members.contains(&u.rec.user_name) {
                return Ok(());
            }
            if s.groups_of(&u.rec.user_name).len() >= GROUPS_PER_USER {
                return Err(IamError::LimitExceeded(format!(
                    "Cannot exceed quota for GroupsPerUser: {GROUPS_PER_USER}"
                )));
            }
            let mut rec = g.rec.clone();
            rec.members.push(u.rec.user_name.clone());
            rec.members.sort_by_key(|m| m.to_ascii_lowercase());
            rec
        };
        self.save_group(rec, None, None).await
    }

    /// Removes a user from a group.
    pub async fn remove_user_from_group(&self, group: &str, user: &str) -> Result<(), IamError> {
        let _w = self.write.lock().await;
        let (rec, name) = {
            let s = self.state.read();
            let g = s.group(group)?;
            let u = s.user(user)?;
            if !g.rec.members.contains(&u.rec.user_name) {
                return Err(IamError::NoSuchEntity(format!(
                    "The user with name {} is not a member of group {}.",
                    u.rec.user_name, g.rec.group_name
                )));
            }
            let mut rec = g.rec.clone();
            rec.members.retain(|m| *m != u.rec.user_name);
            (rec, u.rec.user_name.clone())
        };
        self.save_group(rec, None, Some(&name)).await
    }

    /// The groups a user belongs to, sorted by name.
    pub fn groups_for_user(&self, user: &str) -> Result<Vec<GroupInfo>, IamError> {
        let s = self.state.read();
        let u = s.user(user)?;
        Ok(s.groups_of(&u.rec.user_name)
            .into_iter()
            .map(|g| self.group_info(&g.rec))
            .collect())
    }

    // ---- inline policies ----------------------------------------------------------------

    /// Checks a policy for `owner` that already has `existing` policies: the aggregate size
    /// (LimitExceeded) and the grammar (MalformedPolicyDocument).
    fn check_policy(
        owner: Owner<'_>,
        existing: &BTreeMap<String, String>,
        policy_name: &str,
        document: &str,
    ) -> Result<Policy, IamError> {
        validate::name("policyName", policy_name, validate::POLICY_NAME_MAX)?;
        if document.trim().is_empty() {
            return Err(IamError::InvalidInput(
                "1 validation error detected: Value at 'policyDocument' failed to satisfy \
                 constraint: Member must have length greater than or equal to 1."
                    .to_owned(),
            ));
        }
        let others: usize = existing
            .iter()
            .filter(|(n, _)| n.as_str() != policy_name)
            .map(|(_, t)| policy_size(t))
            .sum();
        let limit = owner.limit();
        if others + policy_size(document) > limit {
            return Err(IamError::LimitExceeded(format!(
                "Maximum policy size of {limit} bytes exceeded for {}",
                owner.describe()
            )));
        }
        Policy::parse(document, PolicyKind::Identity, limit)
            .map_err(|e| IamError::MalformedPolicyDocument(e.message().to_owned()))
    }

    /// Adds or replaces an inline policy of a user, compiled now.
    pub async fn put_user_policy(
        &self,
        user: &str,
        policy_name: &str,
        document: &str,
    ) -> Result<(), IamError> {
        let _w = self.write.lock().await;
        let (mut rec, mut compiled) = {
            let s = self.state.read();
            let u = s.user(user)?;
            (u.rec.clone(), u.compiled.clone())
        };
        let policy = Self::check_policy(
            Owner::User(&rec.user_name),
            &rec.policies,
            policy_name,
            document,
        )?;
        rec.policies
            .insert(policy_name.to_owned(), document.to_owned());
        compiled.insert(policy_name.to_owned(), Arc::new(policy));
        self.save_user(rec, Some(compiled)).await
    }

    /// An inline policy's document, as written.
    pub fn get_user_policy(&self, user: &str, policy_name: &str) -> Result<String, IamError> {
        let s = self.state.read();
        let u = s.user(user)?;
        u.rec
            .policies
            .get(policy_name)
            .cloned()
            .ok_or_else(|| no_policy("user", policy_name))
    }

    /// Deletes an inline policy of a user.
    pub async fn delete_user_policy(&self, user: &str, policy_name: &str) -> Result<(), IamError> {
        let _w = self.write.lock().await;
        let (mut rec, mut compiled) = {
            let s = self.state.read();
            let u = s.user(user)?;
            (u.rec.clone(), u.compiled.clone())
        };
        if rec.policies.remove(policy_name).is_none() {
            return Err(no_policy("user", policy_name));
        }
        compiled.remove(policy_name);
        self.save_user(rec, Some(compiled)).await
    }

    /// Names of a user's inline policies, sorted.
    pub fn list_user_policies(&self, user: &str) -> Result<Vec<String>, IamError> {
        let s = self.state.read();
        Ok(s.user(user)?.rec.policies.keys().cloned().collect())
    }

    /// Adds or replaces an inline policy of a group; its members' policies change with it.
    pub async fn put_group_policy(
        &self,
        group: &str,
        policy_name: &str,
        document: &str,
    ) -> Result<(), IamError> {
        let _w = self.write.lock().await;
        let (mut rec, mut compiled) = {
            let s = self.state.read();
            let g = s.group(group)?;
            (g.rec.clone(), g.compiled.clone())
        };
        let policy = Self::check_policy(
            Owner::Group(&rec.group_name),
            &rec.policies,
            policy_name,
            document,
        )?;
        rec.policies
            .insert(policy_name.to_owned(), document.to_owned());
        compiled.insert(policy_name.to_owned(), Arc::new(policy));
        self.save_group(rec, Some(compiled), None).await
    }

    /// A group inline policy's document, as written.
    pub fn get_group_policy(&self, group: &str, policy_name: &str) -> Result<String, IamError> {
        let s = self.state.read();
        let g = s.group(group)?;
        g.rec
            .policies
            .get(policy_name)
            .cloned()
            .ok_or_else(|| no_policy("group", policy_name))
    }

    /// Deletes an inline policy of a group.
    pub async fn delete_group_policy(
        &self,
        group: &str,
        policy_name: &str,
    ) -> Result<(), IamError> {
        let _w = self.write.lock().await;
        let (mut rec, mut compiled) = {
            let s = self.state.read();
            let g = s.group(group)?;
            (g.rec.clone(), g.compiled.clone())
        };
        if rec.policies.remove(policy_name).is_none() {
            return Err(no_policy("group", policy_name));
        }
        compiled.remove(policy_name);
        self.save_group(rec, Some(compiled), None).await
    }

    /// Names of a group's inline policies, sorted.
    pub fn list_group_policies(&self, group: &str) -> Result<Vec<String>, IamError> {
        let s = self.state.read();
        Ok(s.group(group)?.rec.policies.keys().cloned().collect())
    }
}

fn user_exists(name: &str) -> IamError {
    IamError::EntityAlreadyExists(format!("User with name {name} already exists."))
}

fn group_exists(name: &str) -> IamError {
    IamError::EntityAlreadyExists(format!("Group with name {name} already exists."))
}

fn no_policy(kind: &str, name: &str) -> IamError {
    IamError::NoSuchEntity(format!(
        "The {kind} policy with name {name} cannot be found."
    ))
}

impl CredentialSource for Iam {
    /// Active keys only: an inactive or deleted key is unknown.
    fn lookup(&self, access_key_id: &str) -> Option<Credential> {
        let s = self.state.read();
        let k = s.keys.get(access_key_id)?;
        (k.rec.status == KeyStatus::Active).then(|| Credential {
            secret_access_key: k.secret.clone(),
            session_token: None,
            principal: k.principal.clone(),
        })
    }
}
