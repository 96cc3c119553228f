//! SQLite-only tests: group commit. What every backend must do is in
//! the conformance suite (`tests/it/conformance.rs`).

use super::*;

fn row(uid: &str, name: &str) -> SecretRow {
    SecretRow {
        uid: uid.into(),
        namespace: "000000000000:us-east-1".into(),
        name: name.into(),
        arn: format!("arn:aws:secretsmanager:us-east-1:000000000000:secret:{name}-abcdef"),
        created_ms: 1,
        last_changed_ms: 1,
        last_accessed_ms: None,
        deleted_ms: None,
        rotation_due_ms: None,
        replication_due_ms: None,
        revision: 1,
        doc: "{}".into(),
    }
}

fn version(id: &str, seq: i64, stages: &[&str], ct: Option<&[u8]>) -> VersionWrite {
    VersionWrite {
        row: VersionRow {
            version_id: id.into(),
            seq,
            created_ms: seq,
            last_accessed_ms: None,
            stages: stages.iter().map(|s| s.to_string()).collect(),
            kms_key_id: Some("k".into()),
            has_value: ct.is_some(),
        },
        ciphertext: ct.map(|c| c.to_vec()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_commit_answers_each_write_on_its_own_terms() {
    let dir = tempfile::tempdir().unwrap();
    let s = std::sync::Arc::new(
        SqliteStore::open(&dir.path().join("db.sqlite"))
            .await
            .unwrap(),
    );
    let ns = "000000000000:us-east-1";
    // Concurrent inserts of one name (batched together): exactly one wins.
    let inserts: Vec<_> = (0..50)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move { s.insert(&row(&format!("u{i}"), "same"), &[]).await })
        })
        .collect();
    let mut won = 0;
    for t in inserts {
        match t.await.unwrap() {
            Ok(()) => won += 1,
            Err(Error::NameTaken(_)) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(won, 1);
    let winner = s.find(ns, Lookup::Name("same")).await.unwrap().unwrap();
    // Concurrent compare-and-swaps from one revision: exactly one wins, the others change
    // nothing, and unrelated writes in the same batches commit.
    let updates: Vec<_> = (0..50)
        .map(|i| {
            let s = s.clone();
            let mut next = winner.row.clone();
            next.revision = 2;
            next.doc = format!("{{\"n\":{i}}}");
            tokio::spawn(async move {
                let other_row = row(&format!("o{i}"), &format!("other{i}"));
                let other = s.insert(&other_row, &[]);
                let update = SecretUpdate {
                    row: next,
                    upsert_versions: vec![version(&format!("v{i}"), i, &[], Some(b"x"))],
                    delete_versions: vec![],
                    claim: None,
                };
                let upd = s.update(&update);
                let (a, b) = tokio::join!(other, upd);
                a.unwrap();
                b
            })
        })
        .collect();
    let mut won = 0;
    for t in updates {
        match t.await.unwrap() {
            Ok(()) => won += 1,
            Err(Error::Conflict(_)) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(won, 1);
    let after = s.find(ns, Lookup::Name("same")).await.unwrap().unwrap();
    assert_eq!(after.row.revision, 2);
    assert_eq!(
        after.versions.len(),
        1,
        "only the winner's version was written"
    );
    assert_eq!(s.list(ns).await.unwrap().len(), 51);
}

#[tokio::test]
async fn a_fenced_update_refused_in_a_batch_leaves_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("db.sqlite"))
        .await
        .unwrap();
    s.insert(&row("u1", "a"), &[]).await.unwrap();
    let a = s.claim_rotation("u1", "A", 60_000).await.unwrap().unwrap();
    s.release_claim(&a).await.unwrap();
    let mut next = row("u1", "a");
    next.revision = 2;
    let stale = SecretUpdate {
        row: next,
        upsert_versions: vec![],
        delete_versions: vec![],
        claim: Some(a),
    };
    // Queued together, so that the writer commits them in one batch.
    let other_row = row("u2", "b");
    let (refused, other) = tokio::join!(s.update(&stale), s.insert(&other_row, &[]));
    assert!(matches!(refused, Err(Error::ClaimLost(uid)) if uid == "u1"));
    other.unwrap();
    let ns = "000000000000:us-east-1";
    assert_eq!(
        s.find(ns, Lookup::Uid("u1"))
            .await
            .unwrap()
            .unwrap()
            .row
            .revision,
        1
    );
    assert!(s.find(ns, Lookup::Uid("u2")).await.unwrap().is_some());
}

#[tokio::test]
async fn an_unexpected_failure_is_answered_to_its_write_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let s = SqliteStore::open(&path).await.unwrap();
    // A document that is not JSON fails the tag trigger: not a refusal the writer knows,
    // so the batch is rolled back and each write replayed on its own.
    let mut bad = row("u2", "bad");
    bad.doc = "{not json".into();
    let (row_a, versions_a) = (
        row("u1", "a"),
        [version("v1", 1, &["AWSCURRENT"], Some(b"x"))],
    );
    let row_c = row("u3", "c");
    let (a, b, c) = tokio::join!(
        s.insert(&row_a, &versions_a),
        s.insert(&bad, &[]),
        s.insert(&row_c, &[]),
    );
    a.unwrap();
    assert!(matches!(b, Err(Error::Backend(_))), "{b:?}");
    c.unwrap();
    drop(s);
    let s = SqliteStore::open(&path).await.unwrap();
    let ns = "000000000000:us-east-1";
    let a = s.find(ns, Lookup::Name("a")).await.unwrap().unwrap();
    assert_eq!(a.versions.len(), 1);
    assert_eq!(
        s.read_ciphertext("u1", "v1").await.unwrap().as_deref(),
        Some(&b"x"[..])
    );
    assert!(s.find(ns, Lookup::Name("bad")).await.unwrap().is_none());
    assert!(s.find(ns, Lookup::Name("c")).await.unwrap().is_some());
}

#[tokio::test]
async fn the_writer_connection_is_durable_and_enforces_foreign_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let _s = SqliteStore::open(&path).await.unwrap();
    let conn = writer::open(&path).unwrap();
    let pragma = |name: &str| -> String {
        conn.query_row(&format!("PRAGMA {name}"), [], |r| {
            r.get::<_, rusqlite::types::Value>(0)
        })
        .map(|v| match v {
            rusqlite::types::Value::Integer(i) => i.to_string(),
            rusqlite::types::Value::Text(t) => t,
            other => format!("{other:?}"),
        })
        .unwrap()
    };
    assert_eq!(pragma("journal_mode"), "wal");
    // 2 = FULL: a commit returns after its fsync.
    assert_eq!(pragma("synchronous"), "2");
    assert_eq!(pragma("foreign_keys"), "1");
    assert_eq!(pragma("busy_timeout"), "10000");
    // A version of a secret that does not exist is refused.
    let orphan = conn.execute(
        "INSERT INTO versions (secret_uid, version_id, seq, created_ms, stages) \
         VALUES ('none', 'v', 1, 1, '[]')",
        [],
    );
    assert!(orphan.is_err());
}
