//! Service tests over a real SQLite store with a clock the test moves.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use rotary_crypto::{Keyring, MasterKey};
use rotary_store::SqliteStore;
use rotary_wire::dto::{
    CreateSecretRequest, DeleteSecretRequest, GetSecretValueRequest, ListSecretVersionIdsRequest,
    PutSecretValueRequest, SecretIdRequest,
};
use rotary_wire::{ErrorCode, Sensitive};

use super::*;
use crate::clock::DAY_MS;

struct TestClock(AtomicI64);

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

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

fn id(name: &str) -> SecretIdRequest {
    SecretIdRequest {
        secret_id: Some(name.into()),
    }
}

#[tokio::test]
async fn purge_removes_secrets_when_their_window_ends() {
    let (svc, clock, _dir) = service().await;
    let cx = Ctx::default();
    for name in ["a", "b"] {
        svc.create_secret(
            &cx,
            CreateSecretRequest {
                name: Some(name.into()),
                client_request_token: Some(token(1)),
                secret_string: Some(Sensitive::new("v".into())),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    }
    let del = DeleteSecretRequest {
        secret_id: Some("a".into()),
        recovery_window_in_days: Some(7),
        force_delete_without_recovery: None,
    };
    svc.delete_secret(&cx, del).await.unwrap();
    clock.0.fetch_add(7 * DAY_MS - 1, Ordering::SeqCst);
    assert_eq!(svc.purge_due().await.unwrap(), 0);
    assert!(svc
        .describe_secret(&cx, id("a"))
        .await
        .unwrap()
        .deleted_date
        .is_some());
    clock.0.fetch_add(1, Ordering::SeqCst);
    assert_eq!(svc.purge_due().await.unwrap(), 1);
    let e = svc.describe_secret(&cx, id("a")).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::ResourceNotFoundException);
    assert!(svc.describe_secret(&cx, id("b")).await.is_ok());
}

#[tokio::test]
async fn last_accessed_date_is_the_day_of_the_last_read() {
    let (svc, clock, _dir) = service().await;
    let cx = Ctx::default();
    let req = CreateSecretRequest {
        name: Some("r".into()),
        client_request_token: Some(token(1)),
        secret_string: Some(Sensitive::new("v".into())),
        ..Default::default()
    };
    svc.create_secret(&cx, req).await.unwrap();
    assert!(svc
        .describe_secret(&cx, id("r"))
        .await
        .unwrap()
        .last_accessed_date
        .is_none());
    let get = || GetSecretValueRequest {
        secret_id: Some("r".into()),
        ..Default::default()
    };
    svc.get_secret_value(&cx, get()).await.unwrap();
    let day = crate::clock::day_start(clock.now_ms());
    let d = svc.describe_secret(&cx, id("r")).await.unwrap();
    assert_eq!(d.last_accessed_date.unwrap().millis(), day);
    clock.0.fetch_add(DAY_MS, Ordering::SeqCst);
    svc.get_secret_value(&cx, get()).await.unwrap();
    let d = svc.describe_secret(&cx, id("r")).await.unwrap();
    assert_eq!(d.last_accessed_date.unwrap().millis(), day + DAY_MS);
}

#[tokio::test]
async fn versions_past_100_are_pruned_only_when_older_than_a_day() {
    let (svc, clock, _dir) = service().await;
    let cx = Ctx::default();
    let req = CreateSecretRequest {
        name: Some("p".into()),
        client_request_token: Some(token(0)),
        secret_string: Some(Sensitive::new("v0".into())),
        ..Default::default()
    };
    svc.create_secret(&cx, req).await.unwrap();
    let put = |i: usize| PutSecretValueRequest {
        secret_id: Some("p".into()),
        client_request_token: Some(token(i)),
        secret_string: Some(Sensitive::new(format!("v{i}"))),
        ..Default::default()
    };
    for i in 1..100 {
        svc.put_secret_value(&cx, put(i)).await.unwrap();
    }
    // 100 versions, all younger than a day: the 101st is refused and changes nothing.
    let e = svc.put_secret_value(&cx, put(100)).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::LimitExceededException);
    let list = |deprecated| ListSecretVersionIdsRequest {
        secret_id: Some("p".into()),
        include_deprecated: Some(deprecated),
        ..Default::default()
    };
    let all = svc.list_secret_version_ids(&cx, list(true)).await.unwrap();
    assert_eq!(all.versions.unwrap().len(), 100);

    clock.0.fetch_add(DAY_MS + 1, Ordering::SeqCst);
    svc.put_secret_value(&cx, put(100)).await.unwrap();
    let all = svc
        .list_secret_version_ids(&cx, list(true))
        .await
        .unwrap()
        .versions
        .unwrap();
    assert_eq!(all.len(), 100);
    let ids: Vec<_> = all.iter().map(|v| v.version_id.clone().unwrap()).collect();
    assert!(
        !ids.contains(&token(0)),
        "the oldest deprecated version was pruned"
    );
    assert!(ids.contains(&token(100)));
    let labelled = svc.list_secret_version_ids(&cx, list(false)).await.unwrap();
    assert_eq!(labelled.versions.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_writers_to_one_secret_all_succeed() {
    let (svc, _clock, _dir) = service().await;
    let svc = Arc::new(svc);
    let cx = Ctx::default();
    let req = CreateSecretRequest {
        name: Some("hot".into()),
        client_request_token: Some(token(0)),
        secret_string: Some(Sensitive::new("v0".into())),
        ..Default::default()
    };
    svc.create_secret(&cx, req).await.unwrap();
    let writers: Vec<_> = (1..=64)
        .map(|i| {
            let svc = svc.clone();
            tokio::spawn(async move {
                let req = PutSecretValueRequest {
                    secret_id: Some("hot".into()),
                    client_request_token: Some(token(i)),
                    secret_string: Some(Sensitive::new(format!("v{i}"))),
                    ..Default::default()
                };
                svc.put_secret_value(&Ctx::default(), req).await
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap().expect("every writer succeeds");
    }
    let versions = svc
        .list_secret_version_ids(
            &cx,
            ListSecretVersionIdsRequest {
                secret_id: Some("hot".into()),
                include_deprecated: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .versions
        .unwrap();
    let current: Vec<_> = versions
        .iter()
        .filter(|v| {
            v.version_stages
                .as_ref()
                .is_some_and(|s| s.iter().any(|l| l == "AWSCURRENT"))
        })
        .collect();
    assert_eq!(current.len(), 1, "exactly one AWSCURRENT");
    // The value read back is the one AWSCURRENT names (no stale cached copy).
    let got = svc
        .get_secret_value(
            &cx,
            GetSecretValueRequest {
                secret_id: Some("hot".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(got.version_id, current[0].version_id);
    let n: usize = got.version_id.unwrap().parse().unwrap();
    assert_eq!(got.secret_string.unwrap().expose(), &format!("v{n}"));
}

#[tokio::test]
async fn reads_after_a_write_see_the_write() {
    let (svc, _clock, _dir) = service().await;
    let cx = Ctx::default();
    let req = CreateSecretRequest {
        name: Some("c".into()),
        client_request_token: Some(token(1)),
        secret_string: Some(Sensitive::new("one".into())),
        ..Default::default()
    };
    svc.create_secret(&cx, req).await.unwrap();
    let get = || GetSecretValueRequest {
        secret_id: Some("c".into()),
        ..Default::default()
    };
    for i in 2..6 {
        // Warm the cache, then write, then read.
        svc.get_secret_value(&cx, get()).await.unwrap();
        let put = PutSecretValueRequest {
            secret_id: Some("c".into()),
            client_request_token: Some(token(i)),
            secret_string: Some(Sensitive::new(format!("value {i}"))),
            ..Default::default()
        };
        svc.put_secret_value(&cx, put).await.unwrap();
        let got = svc.get_secret_value(&cx, get()).await.unwrap();
        assert_eq!(got.secret_string.unwrap().expose(), &format!("value {i}"));
    }
    // Deleted and recreated under the same name: the new secret, not the cached old one.
    svc.delete_secret(
        &cx,
        DeleteSecretRequest {
            secret_id: Some("c".into()),
            recovery_window_in_days: None,
            force_delete_without_recovery: Some(true),
        },
    )
    .await
    .unwrap();
    let e = svc.get_secret_value(&cx, get()).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::ResourceNotFoundException);
    let req = CreateSecretRequest {
        name: Some("c".into()),
        client_request_token: Some(token(9)),
        secret_string: Some(Sensitive::new("reborn".into())),
        ..Default::default()
    };
    svc.create_secret(&cx, req).await.unwrap();
    let got = svc.get_secret_value(&cx, get()).await.unwrap();
    assert_eq!(got.secret_string.unwrap().expose(), "reborn");
}
