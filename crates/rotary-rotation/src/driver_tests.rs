//! The driver over a real service and SQLite store, with a clock the test moves and a store
//! that fails on demand.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use rotary_auth::CredentialTable;
use rotary_core::rotation::{FunctionDirectory, Outcome};
use rotary_core::{Clock, Ctx, SecretsService, ServiceConfig};
use rotary_crypto::{Keyring, MasterKey};
use rotary_store::{
    Lookup, Result, SealedRecord, SecretRecord, SecretRow, SecretUpdate, SqliteStore, Store,
    VersionWrite,
};
use rotary_wire::dto::{CreateSecretRequest, RotateSecretRequest};
use rotary_wire::Sensitive;

use crate::functions::{ExecPolicy, Isolation};
use crate::{EngineConfig, FunctionRegistry, RotationEngine};

struct TestClock(AtomicI64);

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// A SQLite store whose writes that record a completed step fail while `fail_steps` is set
/// (as a full disk or a lost database would).
struct FaultyStore {
    inner: SqliteStore,
    fail_steps: AtomicBool,
}

#[async_trait]
impl Store for FaultyStore {
    async fn find(&self, namespace: &str, by: Lookup<'_>) -> Result<Option<SecretRecord>> {
        self.inner.find(namespace, by).await
    }
    async fn find_sealed(&self, namespace: &str, by: Lookup<'_>) -> Result<Option<SealedRecord>> {
        self.inner.find_sealed(namespace, by).await
    }
    async fn read_ciphertext(&self, uid: &str, version_id: &str) -> Result<Option<Vec<u8>>> {
        self.inner.read_ciphertext(uid, version_id).await
    }
    async fn insert(&self, row: &SecretRow, versions: &[VersionWrite]) -> Result<()> {
        self.inner.insert(row, versions).await
    }
    async fn update(&self, update: &SecretUpdate) -> Result<()> {
        if self.fail_steps.load(Ordering::SeqCst) && update.row.doc.contains("\"next_step\":1") {
            return Err(rotary_store::Error::Conflict("injected".into()));
        }
        self.inner.update(update).await
    }
    async fn delete(&self, uid: &str) -> Result<bool> {
        self.inner.delete(uid).await
    }
    async fn list(&self, namespace: &str) -> Result<Vec<SecretRecord>> {
        self.inner.list(namespace).await
    }
    async fn due_for_purge(&self, now_ms: i64) -> Result<Vec<String>> {
        self.inner.due_for_purge(now_ms).await
    }
    async fn record_access(&self, uid: &str, version_id: &str, day_ms: i64) -> Result<()> {
        self.inner.record_access(uid, version_id, day_ms).await
    }
    async fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.inner.get_meta(key).await
    }
    async fn put_meta_if_absent(&self, key: &str, value: &[u8]) -> Result<bool> {
        self.inner.put_meta_if_absent(key, value).await
    }
    async fn put_meta(&self, key: &str, value: &[u8]) -> Result<()> {
        self.inner.put_meta(key, value).await
    }
    async fn put_metas(&self, entries: &[(String, Vec<u8>)]) -> Result<()> {
        self.inner.put_metas(entries).await
    }
    async fn put_metas_if_unchanged(&self, entries: &[rotary_store::MetaSwap]) -> Result<bool> {
        self.inner.put_metas_if_unchanged(entries).await
    }
    async fn list_meta(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        self.inner.list_meta(prefix).await
    }
    async fn delete_meta(&self, key: &str) -> Result<bool> {
        self.inner.delete_meta(key).await
    }
    async fn due_rotations(&self, now_ms: i64, limit: i64) -> Result<Vec<String>> {
        self.inner.due_rotations(now_ms, limit).await
    }
    async fn due_replications(&self, now_ms: i64, limit: i64) -> Result<Vec<String>> {
        self.inner.due_replications(now_ms, limit).await
    }
    async fn set_replication_due(
        &self,
        uid: &str,
        revision: i64,
        due_ms: Option<i64>,
    ) -> Result<bool> {
        self.inner.set_replication_due(uid, revision, due_ms).await
    }
    async fn put_history(
        &self,
        id: &str,
        secret_uid: &str,
        started_ms: i64,
        record: &str,
    ) -> Result<()> {
        self.inner
            .put_history(id, secret_uid, started_ms, record)
            .await
    }
    async fn list_history(&self, secret_uid: &str, limit: i64) -> Result<Vec<String>> {
        self.inner.list_history(secret_uid, limit).await
    }
    async fn ping(&self) -> Result<()> {
        self.inner.ping().await
    }
    async fn delete_if_due(&self, uid: &str, now_ms: i64) -> Result<bool> {
        self.inner.delete_if_due(uid, now_ms).await
    }
    async fn claim_rotation(
        &self,
        uid: &str,
        owner: &str,
        lease_ms: i64,
    ) -> Result<Option<rotary_store::Claim>> {
        self.inner.claim_rotation(uid, owner, lease_ms).await
    }
    async fn renew_claim(&self, claim: &rotary_store::Claim, lease_ms: i64) -> Result<bool> {
        self.inner.renew_claim(claim, lease_ms).await
    }
    async fn release_claim(&self, claim: &rotary_store::Claim) -> Result<()> {
        self.inner.release_claim(claim).await
    }
}

struct Fixture {
    engine: Arc<RotationEngine>,
    store: Arc<FaultyStore>,
    clock: Arc<TestClock>,
    _dir: tempfile::TempDir,
}

const GENERIC: &str = "arn:aws:lambda:us-east-1:000000000000:function:rotary-generic-password";

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FaultyStore {
        inner: SqliteStore::open(&dir.path().join("db")).await.unwrap(),
        fail_steps: AtomicBool::new(false),
    });
    let clock = Arc::new(TestClock(AtomicI64::new(1_700_000_000_000)));
    let keyring = Arc::new(Keyring::new(MasterKey::generate()));
    let service = SecretsService::open(
        store.clone(),
        keyring.clone(),
        clock.clone(),
        ServiceConfig {
            region: "us-east-1".into(),
            account_id: "000000000000".into(),
            read_cache_bytes: rotary_core::service::DEFAULT_READ_CACHE_BYTES,
            replica_regions: Vec::new(),
        },
    )
    .await
    .unwrap();
    let policy = Arc::new(ExecPolicy::new(
        std::path::Path::new("/nonexistent"),
        Isolation::Unsandboxed,
    ));
    let registry =
        FunctionRegistry::open(store.clone(), keyring, policy, "us-east-1", "000000000000")
            .await
            .unwrap();
    let engine = RotationEngine::new(
        Arc::new(service),
        Arc::new(registry),
        Arc::new(CredentialTable::new()),
        EngineConfig::default(),
    );
    Fixture {
        engine,
        store,
        clock,
        _dir: dir,
    }
}

/// Creates `name` and starts rotating it with the generic password function; returns its
/// uid.
async fn rotating(f: &Fixture, name: &str) -> String {
    rotating_with(f, name, GENERIC, r#"{"username":"u","password":"p"}"#).await
}

/// Creates `name` holding `value` and starts rotating it with `function`; returns its uid.
async fn rotating_with(f: &Fixture, name: &str, function: &str, value: &str) -> String {
    let svc = f.engine.service();
    let cx = Ctx::default();
    let create = CreateSecretRequest {
        name: Some(name.into()),
        client_request_token: Some(format!("{:0>32}", 1)),
        secret_string: Some(Sensitive::new(value.into())),
        ..Default::default()
    };
    svc.create_secret(&cx, create).await.unwrap();
    let rotate = RotateSecretRequest {
        secret_id: Some(name.into()),
        client_request_token: Some(format!("{:0>32}", 2)),
        rotation_lambda_arn: Some(function.into()),
        ..Default::default()
    };
    let directory: &dyn FunctionDirectory = f.engine.registry().as_ref();
    svc.rotate_secret(&cx, rotate, directory).await.unwrap();
    svc.rotation_of(name).await.unwrap().0
}

async fn due_ms_of(f: &Fixture, name: &str) -> Option<i64> {
    f.engine
        .service()
        .rotation_standings()
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap()
        .due_ms
}

#[tokio::test]
async fn issue_13_an_internal_error_backs_the_rotation_off() {
    // See: #13
    let f = fixture().await;
    let uid = rotating(&f, "s").await;
    f.store.fail_steps.store(true, Ordering::SeqCst);
    f.engine.drive(&uid).await;

    // Recording createSecret failed: the rotation waits a backoff before it runs again.
    let now = f.clock.now_ms();
    let due = due_ms_of(&f, "s").await.unwrap();
    assert!(
        due >= now + 30_000,
        "due {due} is not backed off from {now}"
    );
    assert!(f
        .engine
        .service()
        .due_rotations(10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(f.engine.tick().await, 0);

    // Once the fault is gone and the backoff over, the rotation completes.
    f.store.fail_steps.store(false, Ordering::SeqCst);
    f.clock.0.store(due, Ordering::SeqCst);
    assert_eq!(
        f.engine.service().due_rotations(10).await.unwrap(),
        vec![uid.clone()]
    );
    f.engine.drive(&uid).await;
    let (_, _, config, stuck) = f.engine.service().rotation_of("s").await.unwrap();
    let config = config.unwrap();
    assert!(config.in_progress.is_none() && !stuck, "{config:?}");
    assert_eq!(config.last_outcome, Some(Outcome::Succeeded));
}

#[tokio::test]
async fn issue_13_a_rotation_does_not_count_as_an_access() {
    // See: #13
    let f = fixture().await;
    let uid = rotating(&f, "a").await;
    f.engine.drive(&uid).await;
    let svc = f.engine.service();
    let (_, _, config, _) = svc.rotation_of("a").await.unwrap();
    assert_eq!(config.unwrap().last_outcome, Some(Outcome::Succeeded));
    let id = rotary_wire::dto::SecretIdRequest {
        secret_id: Some("a".into()),
    };
    let d = svc.describe_secret(&Ctx::default(), id).await.unwrap();
    assert!(d.last_accessed_date.is_none(), "{:?}", d.last_accessed_date);
}

#[tokio::test]
async fn a_secret_the_rotator_cannot_parse_fails_at_once() {
    // Issue 10: a configuration error is not retried like an outage.
    let f = fixture().await;
    let mysql = "arn:aws:lambda:us-east-1:000000000000:function:rotary-mysql-single-user";
    let uid = rotating_with(
        &f,
        "c",
        mysql,
        r#"{"engine":"mysql","username":"u","password":"p"}"#,
    )
    .await;
    f.engine.drive(&uid).await;
    let svc = f.engine.service();
    let (_, _, config, _) = svc.rotation_of("c").await.unwrap();
    let config = config.unwrap();
    assert!(config.in_progress.is_none(), "{config:?}");
    assert_eq!(config.last_outcome, Some(Outcome::Failed));
    assert_eq!(
        config.last_error.as_deref(),
        Some("createSecret: AWSCURRENT: host key is missing from secret JSON")
    );
    let history = svc.store().list_history(&uid, 10).await.unwrap();
    assert_eq!(history.len(), 1, "{history:?}");
    assert!(
        history[0].contains("\"Outcome\":\"Failed\""),
        "{}",
        history[0]
    );
}
