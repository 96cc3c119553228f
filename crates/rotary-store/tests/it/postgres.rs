//! What only the PostgreSQL store has: a change feed between nodes, concurrent
//! migrations by nodes starting together, recovery from a database restart, TLS modes.

use std::time::{Duration, Instant};

use rotary_store::testing::{self, PgServer};
use rotary_store::{Change, Error, PgStoreOptions, PostgresStore, SecretUpdate, Store};
use tokio::sync::broadcast;

use crate::backend::{row, Postgres};

/// The next change of a feed, within a few seconds.
async fn next_change(rx: &mut broadcast::Receiver<Change>) -> Change {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("no change within 10 s")
        .expect("feed closed")
}

async fn open(url: &str) -> PostgresStore {
    PostgresStore::open(url, PgStoreOptions::default())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_one_node_reaches_the_others_feed() {
    let db = Postgres::new().await;
    let writer = open(&db.url).await;
    let reader = open(&db.url).await;
    let mut rx = reader.changes().expect("PostgreSQL has a change feed");

    let mut r = row("u1", "a");
    r.deleted_ms = Some(5);
    writer.insert(&r, &[]).await.unwrap();
    assert_eq!(
        next_change(&mut rx).await,
        Change::Secret {
            uid: "u1".into(),
            revision: Some(1)
        }
    );
    let mut next = r.clone();
    next.revision = 2;
    writer
        .update(&SecretUpdate {
            row: next.clone(),
            upsert_versions: vec![],
            delete_versions: vec![],
            claim: None,
        })
        .await
        .unwrap();
    assert_eq!(
        next_change(&mut rx).await,
        Change::Secret {
            uid: "u1".into(),
            revision: Some(2)
        }
    );
    // A refused write announces nothing: the next notice is the next real change.
    assert!(writer
        .update(&SecretUpdate {
            row: next,
            upsert_versions: vec![],
            delete_versions: vec![],
            claim: None,
        })
        .await
        .is_err());
    // Nor does recording a replication's due time (the revision stays: caches stay valid).
    assert!(writer.set_replication_due("u1", 2, Some(7)).await.unwrap());
    writer.put_meta("kms:a", b"1").await.unwrap();
    assert_eq!(
        next_change(&mut rx).await,
        Change::Meta {
            key: "kms:a".into()
        }
    );
    assert!(writer.put_meta_if_absent("kms:b", b"1").await.unwrap());
    assert_eq!(
        next_change(&mut rx).await,
        Change::Meta {
            key: "kms:b".into()
        }
    );
    writer
        .put_metas(&[("m1".into(), vec![1]), ("m2".into(), vec![2])])
        .await
        .unwrap();
    assert_eq!(
        next_change(&mut rx).await,
        Change::Meta { key: "m1".into() }
    );
    assert_eq!(
        next_change(&mut rx).await,
        Change::Meta { key: "m2".into() }
    );
    assert!(writer.delete_meta("m1").await.unwrap());
    assert_eq!(
        next_change(&mut rx).await,
        Change::Meta { key: "m1".into() }
    );
    assert!(writer.delete_if_due("u1", 10).await.unwrap());
    assert_eq!(
        next_change(&mut rx).await,
        Change::Secret {
            uid: "u1".into(),
            revision: None
        }
    );
    writer.insert(&row("u2", "b"), &[]).await.unwrap();
    assert!(matches!(next_change(&mut rx).await, Change::Secret { .. }));
    assert!(writer.delete("u2").await.unwrap());
    assert_eq!(
        next_change(&mut rx).await,
        Change::Secret {
            uid: "u2".into(),
            revision: None
        }
    );
    // The writer's own feed sees its writes too (after older notices still on their way).
    let mut own = writer.changes().unwrap();
    writer.put_meta("x", b"1").await.unwrap();
    while next_change(&mut own).await != (Change::Meta { key: "x".into() }) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_together_migrate_once() {
    let db = Postgres::new().await;
    let opens: Vec<_> = (0..3)
        .map(|_| {
            let url = db.url.clone();
            tokio::spawn(async move { PostgresStore::open(&url, PgStoreOptions::default()).await })
        })
        .collect();
    let mut stores = Vec::new();
    for o in opens {
        stores.push(o.await.unwrap().unwrap());
    }
    stores[0].insert(&row("u1", "a"), &[]).await.unwrap();
    for s in &stores {
        assert_eq!(s.list(crate::backend::NS).await.unwrap().len(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_fails_requests_then_recovers_and_resyncs() {
    let server = tokio::task::spawn_blocking(|| PgServer::start().unwrap())
        .await
        .unwrap();
    let url = testing::create_database(&server.url("postgres")).await;
    let options = PgStoreOptions {
        acquire_timeout: Duration::from_secs(1),
        connect_timeout: Duration::from_secs(1),
        ..PgStoreOptions::default()
    };
    let s = PostgresStore::open(&url, options.clone()).await.unwrap();
    let mut rx = s.changes().unwrap();
    s.insert(&row("u1", "a"), &[]).await.unwrap();
    assert!(matches!(next_change(&mut rx).await, Change::Secret { .. }));

    let server = tokio::task::spawn_blocking(move || {
        server.stop().unwrap();
        server
    })
    .await
    .unwrap();
    // Down: requests fail quickly with a backend error, and nothing is half-written.
    let started = Instant::now();
    match s.insert(&row("u2", "b"), &[]).await {
        Err(Error::Backend(_)) => {}
        other => panic!("expected a backend error, got {other:?}"),
    }
    assert!(matches!(s.ping().await, Err(Error::Backend(_))));
    assert!(started.elapsed() < Duration::from_secs(10));

    let server = tokio::task::spawn_blocking(move || {
        server.start_again().unwrap();
        server
    })
    .await
    .unwrap();
    // Up again: the pool reconnects by itself; the feed reconnects and asks for a resync.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match s.insert(&row("u2", "b"), &[]).await {
            Ok(()) => break,
            Err(Error::Backend(e)) if Instant::now() < deadline => {
                eprintln!("not yet: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the store did not recover: {e}"),
        }
    }
    let mut resynced = false;
    while let Ok(Ok(change)) = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
        if change == Change::Resync {
            resynced = true;
            break;
        }
    }
    assert!(resynced, "the feed sends Resync after reconnecting");
    // And notices flow again.
    s.put_meta("after", b"1").await.unwrap();
    loop {
        if next_change(&mut rx).await
            == (Change::Meta {
                key: "after".into(),
            })
        {
            break;
        }
    }
    let listed = s.list(crate::backend::NS).await.unwrap();
    assert_eq!(listed.len(), 2, "acknowledged writes survived the restart");
    drop(s);
    tokio::task::spawn_blocking(move || drop(server))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_modes_against_a_server_without_tls() {
    let db = Postgres::new().await;
    if std::env::var(testing::EXTERNAL_URL_ENV).is_ok() {
        // An external server may well have TLS; the throwaway one has none.
        return;
    }
    for mode in ["disable", "prefer"] {
        let url = format!("{}?sslmode={mode}", db.url);
        let s = open(&url).await;
        s.ping().await.unwrap();
    }
    for mode in ["require", "verify-ca", "verify-full"] {
        let url = format!("{}?sslmode={mode}", db.url);
        match PostgresStore::open(&url, PgStoreOptions::default()).await {
            Err(Error::Backend(_)) => {}
            other => panic!("sslmode={mode} against a server without TLS: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_fails_open_quickly() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let r = PostgresStore::open(
        &format!("postgres://postgres@127.0.0.1:{port}/x"),
        PgStoreOptions {
            connect_timeout: Duration::from_secs(1),
            ..PgStoreOptions::default()
        },
    )
    .await;
    assert!(matches!(r, Err(Error::Backend(_))));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_is_verified_as_the_url_says() {
    let server = tokio::task::spawn_blocking(|| PgServer::start_tls().unwrap())
        .await
        .unwrap();
    let ca = server.ca_cert().unwrap();
    let ca = ca.display();
    let url =
        testing::create_database(&format!("{}?sslmode=require", server.url("postgres"))).await;
    let url = url.split('?').next().unwrap().to_owned();
    let localhost = url.replace("127.0.0.1", "localhost");
    for (url, works) in [
        // The server takes TLS only.
        (format!("{url}?sslmode=disable"), false),
        (format!("{url}?sslmode=prefer"), true),
        (format!("{url}?sslmode=require"), true),
        (format!("{url}?sslmode=verify-ca&sslrootcert={ca}"), true),
        (format!("{url}?sslmode=verify-full&sslrootcert={ca}"), true),
        (
            format!("{localhost}?sslmode=verify-full&sslrootcert={ca}"),
            true,
        ),
        // Not signed by a CA the client trusts.
        (format!("{url}?sslmode=verify-full"), false),
        (format!("{url}?sslmode=verify-ca"), false),
    ] {
        let opened = PostgresStore::open(&url, PgStoreOptions::default()).await;
        match (opened, works) {
            (Ok(s), true) => s.ping().await.unwrap(),
            (Err(Error::Backend(_)), false) => {}
            (other, _) => panic!("{url}: {other:?}"),
        }
    }
    tokio::task::spawn_blocking(move || drop(server))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_store_closes_its_connections_and_feed() {
    use sqlx::Connection;
    let db = Postgres::new().await;
    let s = open(&db.url).await;
    let mut rx = s.changes().unwrap();
    s.ping().await.unwrap();
    let dbname = db.url.rsplit('/').next().unwrap().to_owned();
    let mut admin = sqlx::PgConnection::connect(&testing::with_database(&db.url, "postgres"))
        .await
        .unwrap();
    assert!(
        connections(&mut admin, &dbname).await >= 2,
        "a query connection and the feed's"
    );
    drop(s);
    // The feed ends: its subscribers see the channel close.
    let closed = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
    assert!(matches!(
        closed,
        Ok(Err(broadcast::error::RecvError::Closed))
    ));
    let deadline = Instant::now() + Duration::from_secs(10);
    while connections(&mut admin, &dbname).await > 0 {
        assert!(
            Instant::now() < deadline,
            "connections left open after drop"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Connections open to database `dbname`.
async fn connections(admin: &mut sqlx::PgConnection, dbname: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM pg_stat_activity WHERE datname = $1")
        .bind(dbname)
        .fetch_one(admin)
        .await
        .unwrap()
}
