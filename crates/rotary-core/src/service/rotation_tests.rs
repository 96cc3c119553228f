//! State transitions of a rotation, over a real SQLite store with a clock the test moves.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use rotary_crypto::{Keyring, MasterKey};
use rotary_store::SqliteStore;
use rotary_wire::dto::{CreateSecretRequest, RotateSecretRequest, RotationRulesType};
use rotary_wire::Sensitive;

use super::*;
use crate::clock::{Clock, DAY_MS};
use crate::service::ServiceConfig;

struct TestClock(AtomicI64);

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

impl TestClock {
    fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

struct AnyFunction;

impl FunctionDirectory for AnyFunction {
    fn is_invokable(&self, _lambda_arn: &str) -> bool {
        true
    }
}

const FUNCTION: &str = "arn:aws:lambda:us-east-1:000000000000:function:f";

async fn service() -> (SecretsService, Arc<TestClock>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("db")).await.unwrap());
    let clock = Arc::new(TestClock(AtomicI64::new(1_700_000_000_000)));
    let svc = SecretsService::open(
        store,
        Arc::new(Keyring::new(MasterKey::generate())),
        clock.clone(),
        ServiceConfig {
            region: "us-east-1".into(),
            account_id: "000000000000".into(),
            read_cache_bytes: crate::service::DEFAULT_READ_CACHE_BYTES,
            replica_regions: Vec::new(),
        },
    )
    .await
    .unwrap();
    (svc, clock, dir)
}

fn token(i: usize) -> String {
    format!("{i:0>32}")
}

/// Creates secret `name` and configures daily rotation on it; returns its uid and ARN.
async fn configured(svc: &SecretsService, name: &str, immediately: bool) -> (String, String) {
    let cx = Ctx::default();
    svc.create_secret(
        &cx,
        CreateSecretRequest {
            name: Some(name.into()),
            client_request_token: Some(token(1)),
            secret_string: Some(Sensitive::new(r#"{"password":"p"}"#.into())),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let req = RotateSecretRequest {
        secret_id: Some(name.into()),
        client_request_token: Some(token(2)),
        rotation_lambda_arn: Some(FUNCTION.into()),
        rotation_rules: Some(RotationRulesType {
            automatically_after_days: Some(1),
            ..Default::default()
        }),
        rotate_immediately: Some(immediately),
        ..Default::default()
    };
    svc.rotate_secret(&cx, req, &AnyFunction).await.unwrap();
    let (uid, arn, _, _) = svc.rotation_of(name).await.unwrap();
    (uid, arn)
}

async fn config_of(svc: &SecretsService, name: &str) -> RotationConfig {
    svc.rotation_of(name).await.unwrap().2.unwrap()
}

async fn due_ms_of(svc: &SecretsService, name: &str) -> Option<i64> {
    svc.rotation_standings()
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap()
        .due_ms
}

#[tokio::test]
async fn issue_13_test_rotation_finishing_after_the_window_keeps_the_schedule() {
    // See: #13
    let (svc, clock, _dir) = service().await;
    let (uid, arn) = configured(&svc, "t", false).await;
    let planned = config_of(&svc, "t").await.next_rotation_ms.unwrap();
    let due = svc.prepare_rotation(&uid).await.unwrap().unwrap();
    assert!(due.state.test_only);

    // The test run ends after the window RotateSecret planned.
    clock.advance(2 * DAY_MS);
    svc.finish_test_rotation(&arn, &due.state.token, None)
        .await
        .unwrap();

    assert_eq!(config_of(&svc, "t").await.next_rotation_ms, Some(planned));
    let due_ms = due_ms_of(&svc, "t").await.unwrap();
    assert!(
        due_ms <= planned,
        "due {due_ms} after the window's end {planned}"
    );
    assert_eq!(svc.due_rotations(10).await.unwrap(), vec![uid.clone()]);
    let scheduled = svc.prepare_rotation(&uid).await.unwrap().unwrap();
    assert!(!scheduled.state.test_only);
    assert!(scheduled.state.late);
    assert_eq!(scheduled.state.trigger, crate::rotation::Trigger::Schedule);
}

#[tokio::test]
async fn failed_test_rotation_after_the_window_keeps_the_schedule() {
    let (svc, clock, _dir) = service().await;
    let (uid, arn) = configured(&svc, "f", false).await;
    let planned = config_of(&svc, "f").await.next_rotation_ms.unwrap();
    let due = svc.prepare_rotation(&uid).await.unwrap().unwrap();
    clock.advance(2 * DAY_MS);
    svc.finish_test_rotation(&arn, &due.state.token, Some("testSecret failed"))
        .await
        .unwrap();
    let config = config_of(&svc, "f").await;
    assert_eq!(config.next_rotation_ms, Some(planned));
    assert!(config.last_failed());
    assert_eq!(svc.due_rotations(10).await.unwrap(), vec![uid]);
}

#[tokio::test]
async fn test_rotation_finishing_in_time_keeps_the_schedule() {
    let (svc, clock, _dir) = service().await;
    let (uid, arn) = configured(&svc, "i", false).await;
    let planned = config_of(&svc, "i").await.next_rotation_ms.unwrap();
    let due = svc.prepare_rotation(&uid).await.unwrap().unwrap();
    clock.advance(1_000);
    svc.finish_test_rotation(&arn, &due.state.token, None)
        .await
        .unwrap();
    assert_eq!(config_of(&svc, "i").await.next_rotation_ms, Some(planned));
    let due_ms = due_ms_of(&svc, "i").await.unwrap();
    assert!(due_ms > clock.now_ms() && due_ms <= planned);
    assert!(svc.due_rotations(10).await.unwrap().is_empty());
}
