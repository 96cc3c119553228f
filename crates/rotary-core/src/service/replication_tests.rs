//! Replication between two services in one process: what the shipper exports from the
//! primary is applied to the replica as `rotary.ApplyReplica` would (the transport sealing
//! is `rotary-server`'s and tested there).

use std::sync::Arc;

use rotary_crypto::{Keyring, MasterKey};
use rotary_store::SqliteStore;
use rotary_wire::dto::{
    CreateSecretRequest, DeleteSecretRequest, GetSecretValueRequest, PutSecretValueRequest,
    ReplicaRegionType, SecretIdRequest,
};
use rotary_wire::{ErrorCode, Sensitive};

use super::*;
use crate::replication::Snapshot;
use crate::SystemClock;

async fn service(region: &str, peers: &[&str]) -> (SecretsService, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("db")).await.unwrap());
    let svc = SecretsService::open(
        store,
        Arc::new(Keyring::new(MasterKey::generate())),
        Arc::new(SystemClock),
        ServiceConfig {
            region: region.into(),
            account_id: "000000000000".into(),
            read_cache_bytes: crate::service::DEFAULT_READ_CACHE_BYTES,
            replica_regions: peers.iter().map(|p| (*p).to_owned()).collect(),
        },
    )
    .await
    .unwrap();
    (svc, dir)
}

fn token(i: usize) -> String {
    format!("{i:0>32}")
}

fn id(name: &str) -> SecretIdRequest {
    SecretIdRequest {
        secret_id: Some(name.into()),
    }
}

async fn create_replicated(svc: &SecretsService, name: &str, value: &str) -> String {
    svc.create_secret(
        &Ctx::default(),
        CreateSecretRequest {
            name: Some(name.into()),
            client_request_token: Some(token(1)),
            secret_string: Some(Sensitive::new(value.into())),
            add_replica_regions: Some(vec![ReplicaRegionType {
                region: Some("us-west-2".into()),
                kms_key_id: None,
            }]),
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .arn
    .unwrap()
}

async fn put(svc: &SecretsService, name: &str, i: usize, value: &str) -> Result<(), ApiError> {
    svc.put_secret_value(
        &Ctx::default(),
        PutSecretValueRequest {
            secret_id: Some(name.into()),
            client_request_token: Some(token(i)),
            secret_string: Some(Sensitive::new(value.into())),
            ..Default::default()
        },
    )
    .await
    .map(|_| ())
}

/// The primary's due secret, exported and applied to the replica; returns the snapshot
/// and whether it was applied.
async fn ship(primary: &SecretsService, replica: &SecretsService) -> (Snapshot, bool) {
    let due = primary.due_replications(10).await.unwrap();
    assert_eq!(due.len(), 1, "one secret is due");
    let export = primary.export_replication(&due[0]).await.unwrap().unwrap();
    assert_eq!(export.replicas.len(), 1);
    let applied = replica
        .apply_replica(&export.snapshot, &export.values)
        .await
        .unwrap();
    assert!(primary
        .replication_sent(&export.uid, export.revision, None)
        .await
        .unwrap());
    (export.snapshot, applied)
}

async fn value(svc: &SecretsService, name: &str) -> String {
    svc.get_secret_value(
        &Ctx::default(),
        GetSecretValueRequest {
            secret_id: Some(name.into()),
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .secret_string
    .unwrap()
    .expose()
    .to_owned()
}

#[tokio::test]
async fn a_replica_follows_its_primary_and_ignores_old_or_repeated_snapshots() {
    let (primary, _d1) = service("us-east-1", &["us-west-2"]).await;
    let (replica, _d2) = service("us-west-2", &["us-east-1"]).await;
    let arn = create_replicated(&primary, "db", "v1").await;
    let (first, applied) = ship(&primary, &replica).await;
    assert!(applied);
    assert!(primary.due_replications(10).await.unwrap().is_empty());
    assert_eq!(value(&replica, "db").await, "v1");
    let d = replica
        .describe_secret(&Ctx::default(), id("db"))
        .await
        .unwrap();
    assert_eq!(
        d.arn.as_deref(),
        Some(&*arn.replace("us-east-1", "us-west-2"))
    );
    assert_eq!(d.primary_region.as_deref(), Some("us-east-1"));

    put(&primary, "db", 2, "v2").await.unwrap();
    let (second, applied) = ship(&primary, &replica).await;
    assert!(applied);
    assert_eq!(value(&replica, "db").await, "v2");
    // The same snapshot again, or the older one late: nothing changes.
    let none: Vec<Option<rotary_crypto::SecretBytes>> = Vec::new();
    let stale = primary
        .export_replication(&first_uid(&primary).await)
        .await
        .unwrap()
        .unwrap();
    assert!(!replica.apply_replica(&second, &stale.values).await.unwrap());
    let mut old = first.clone();
    old.versions.truncate(1);
    assert!(!replica
        .apply_replica(&old, &stale.values[..1])
        .await
        .unwrap());
    assert_eq!(value(&replica, "db").await, "v2");
    // A snapshot whose values do not match its versions is refused.
    assert!(replica.apply_replica(&second, &none).await.is_err());
    let statuses = primary
        .describe_secret(&Ctx::default(), id("db"))
        .await
        .unwrap()
        .replication_status
        .unwrap();
    assert_eq!(statuses.len(), 1);
    assert_eq!(statuses[0].status.as_deref(), Some("InProgress"));
}

async fn first_uid(svc: &SecretsService) -> String {
    svc.resolve("db").await.unwrap().row.uid
}

#[tokio::test]
async fn replicas_are_read_only_and_primaries_with_replicas_are_not_deleted() {
    let (primary, _d1) = service("us-east-1", &["us-west-2"]).await;
    let (replica, _d2) = service("us-west-2", &["us-east-1"]).await;
    create_replicated(&primary, "db", "v1").await;
    ship(&primary, &replica).await;
    let e = put(&replica, "db", 2, "x").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidRequestException);
    assert_eq!(e.message(), msg::REPLICA_READ_ONLY);
    let del = |force| DeleteSecretRequest {
        secret_id: Some("db".into()),
        recovery_window_in_days: None,
        force_delete_without_recovery: Some(force),
    };
    for force in [false, true] {
        let e = replica
            .delete_secret(&Ctx::default(), del(force))
            .await
            .unwrap_err();
        assert_eq!(e.message(), msg::REPLICA_READ_ONLY);
        let e = primary
            .delete_secret(&Ctx::default(), del(force))
            .await
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidParameterException);
        assert_eq!(
            e.message(),
            "You can't delete secret db that still has replica regions [us-west-2]"
        );
    }
    assert_eq!(value(&replica, "db").await, "v1");
    // Promoted, it is a secret of its own.
    replica
        .stop_replication_to_replica(&Ctx::default(), id("db"))
        .await
        .unwrap();
    put(&replica, "db", 3, "mine").await.unwrap();
    assert_eq!(value(&replica, "db").await, "mine");
    let e = replica
        .stop_replication_to_replica(&Ctx::default(), id("db"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidRequestException);
}

#[tokio::test]
async fn another_secret_of_the_name_is_replaced_only_when_forced() {
    let (primary, _d1) = service("us-east-1", &["us-west-2"]).await;
    let (replica, _d2) = service("us-west-2", &["us-east-1"]).await;
    replica
        .create_secret(
            &Ctx::default(),
            CreateSecretRequest {
                name: Some("db".into()),
                client_request_token: Some(token(9)),
                secret_string: Some(Sensitive::new("local".into())),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    create_replicated(&primary, "db", "v1").await;
    let due = primary.due_replications(10).await.unwrap();
    let export = primary.export_replication(&due[0]).await.unwrap().unwrap();
    let e = replica
        .apply_replica(&export.snapshot, &export.values)
        .await
        .unwrap_err();
    assert_eq!(e.message(), msg::REPLICA_NAME_TAKEN);
    assert_eq!(value(&replica, "db").await, "local");
    let mut forced = export.snapshot.clone();
    forced.force_overwrite = true;
    assert!(replica
        .apply_replica(&forced, &export.values)
        .await
        .unwrap());
    assert_eq!(value(&replica, "db").await, "v1");
}

#[tokio::test]
async fn a_change_after_the_export_keeps_the_secret_due() {
    let (primary, _d1) = service("us-east-1", &["us-west-2"]).await;
    create_replicated(&primary, "db", "v1").await;
    let due = primary.due_replications(10).await.unwrap();
    let export = primary.export_replication(&due[0]).await.unwrap().unwrap();
    put(&primary, "db", 2, "v2").await.unwrap();
    assert!(!primary
        .replication_sent(&export.uid, export.revision, None)
        .await
        .unwrap());
    assert_eq!(primary.due_replications(10).await.unwrap(), due);
}

#[tokio::test]
async fn only_configured_other_regions_take_replicas() {
    let (primary, _d) = service("us-east-1", &["us-west-2"]).await;
    for (region, text) in [
        ("us-east-1", msg::INVALID_REPLICA_REGION.to_owned()),
        (
            "eu-west-1",
            "Rotary has no peer for region eu-west-1: add it to [[regions]] in the server's configuration.".to_owned(),
        ),
    ] {
        let e = primary
            .create_secret(
                &Ctx::default(),
                CreateSecretRequest {
                    name: Some("db".into()),
                    add_replica_regions: Some(vec![ReplicaRegionType {
                        region: Some(region.into()),
                        kms_key_id: None,
                    }]),
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidParameterException);
        assert_eq!(e.message(), text);
    }
    assert!(primary.find("db").await.unwrap().is_none());
}

#[tokio::test]
async fn statuses_follow_the_recorded_outcomes() {
    let (primary, _d) = service("us-east-1", &["us-west-2"]).await;
    create_replicated(&primary, "db", "v1").await;
    let st = first_status(&primary).await;
    assert_eq!(
        (st.status.as_deref(), st.status_message.as_deref()),
        (Some("InProgress"), None)
    );
    let uid = primary.resolve("db").await.unwrap().row.uid;
    let rev = primary.resolve("db").await.unwrap().row.revision;
    let outcome = |ok: bool, revision: i64| crate::replication::ReplicaOutcome {
        revision,
        ok,
        message: (!ok).then(|| "Region us-west-2 could not be reached".to_owned()),
        at_ms: 1_700_000_000_000,
        last_accessed_ms: ok.then_some(1_699_920_000_000),
    };
    primary
        .record_replica_outcome(&uid, "us-west-2", Some(outcome(true, rev)))
        .await
        .unwrap();
    let st = first_status(&primary).await;
    assert_eq!(st.status.as_deref(), Some("InSync"));
    assert_eq!(
        st.last_accessed_date,
        Some(rotary_wire::Timestamp(1_699_920_000_000))
    );
    put(&primary, "db", 2, "v2").await.unwrap();
    let st = first_status(&primary).await;
    assert_eq!(st.status.as_deref(), Some("InProgress"));
    assert_eq!(
        st.status_message.as_deref(),
        Some("Newer changes are being sent; the region was last in sync at 2023-11-14T22:13:20Z.")
    );
    primary
        .record_replica_outcome(&uid, "us-west-2", Some(outcome(false, rev + 1)))
        .await
        .unwrap();
    let st = first_status(&primary).await;
    assert_eq!(st.status.as_deref(), Some("Failed"));
    assert_eq!(
        st.status_message.as_deref(),
        Some("Region us-west-2 could not be reached")
    );
}

async fn first_status(svc: &SecretsService) -> rotary_wire::dto::ReplicationStatusType {
    svc.describe_secret(&Ctx::default(), id("db"))
        .await
        .unwrap()
        .replication_status
        .unwrap()
        .remove(0)
}
