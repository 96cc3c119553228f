//! The store conformance suite: every test is one async fn over a [`Backend`], run on
//! SQLite and on PostgreSQL by [`matrix!`]. A backend passes when it answers exactly like
//! the others: same results, same errors.

use std::sync::Arc;
use std::time::Duration;

use rotary_store::{Error, ListOrder, ListQuery, Lookup, SecretRow, SecretUpdate, Store};

use crate::backend::{row, version, Backend, NS};

/// Runs each listed test against every backend: `sqlite::<test>` and `postgres::<test>`.
macro_rules! matrix {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(&crate::backend::Sqlite::new().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test(&crate::backend::Postgres::new().await).await;
                }
            )*
        }
    };
}

matrix!(
    insert_find_update_delete,
    find_sealed_reads_values_with_metadata,
    meta_values,
    purge_and_delete_if_due,
    due_rotations_and_history,
    replication_outbox,
    concurrent_inserts_of_one_name_have_one_winner,
    concurrent_compare_and_swaps_have_one_winner,
    claims_are_leased_and_fenced,
    concurrent_claims_have_one_winner,
    a_purge_racing_a_fenced_update_fails_neither_way,
    list_page_sorts_pages_and_narrows_in_the_query,
    list_page_with_a_dense_name_prefix_keeps_the_order,
    acknowledged_writes_survive_reopening,
    cancelled_reads_leave_no_snapshot_behind,
    a_store_newer_than_the_binary_is_refused,
);

fn update(row: SecretRow) -> SecretUpdate {
    SecretUpdate {
        row,
        upsert_versions: vec![],
        delete_versions: vec![],
        claim: None,
    }
}

async fn insert_find_update_delete(b: &dyn Backend) {
    let s = b.open().await;
    s.ping().await.unwrap();
    s.insert(
        &row("u1", "a"),
        &[version("v1", 1, &["AWSCURRENT"], Some(b"ct1"))],
    )
    .await
    .unwrap();
    assert!(matches!(
        s.insert(&row("u2", "a"), &[]).await,
        Err(Error::NameTaken(n)) if n == "a"
    ));
    assert!(s.find(NS, Lookup::Uid("u2")).await.unwrap().is_none());
    assert!(s
        .find("other:ns", Lookup::Name("a"))
        .await
        .unwrap()
        .is_none());

    let rec = s.find(NS, Lookup::Name("a")).await.unwrap().unwrap();
    assert_eq!(rec.row, row("u1", "a"));
    assert_eq!(rec.versions.len(), 1);
    assert!(rec.versions[0].has_value);
    assert_eq!(rec.versions[0].stages, vec!["AWSCURRENT"]);
    assert_eq!(rec.versions[0].kms_key_id.as_deref(), Some("k"));
    let by_arn = s
        .find(NS, Lookup::Arn(&rec.row.arn))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_arn, rec);
    assert_eq!(s.find(NS, Lookup::Uid("u1")).await.unwrap().unwrap(), rec);
    assert_eq!(
        s.read_ciphertext("u1", "v1").await.unwrap().unwrap(),
        b"ct1"
    );
    assert_eq!(s.read_ciphertext("u1", "nope").await.unwrap(), None);

    // A placeholder, then filled; the old version's labels change in the same update.
    let mut r2 = rec.row.clone();
    r2.revision = 2;
    r2.rotation_due_ms = Some(5);
    let upd = SecretUpdate {
        upsert_versions: vec![version("v2", 2, &["AWSPENDING"], None)],
        ..update(r2.clone())
    };
    s.update(&upd).await.unwrap();
    assert!(
        matches!(s.update(&upd).await, Err(Error::Conflict(n)) if n == "a"),
        "stale revision"
    );
    let mut missing = row("zz", "zz");
    missing.revision = 2;
    assert!(matches!(
        s.update(&update(missing)).await,
        Err(Error::Conflict(_))
    ));
    assert_eq!(s.read_ciphertext("u1", "v2").await.unwrap(), None);
    let mut r3 = r2.clone();
    r3.revision = 3;
    r3.doc = "{\"description\":\"d\"}".into();
    s.update(&SecretUpdate {
        upsert_versions: vec![
            version("v2", 2, &["AWSCURRENT", "AWSPENDING"], Some(b"ct2")),
            version("v1", 1, &["AWSPREVIOUS"], None),
        ],
        ..update(r3.clone())
    })
    .await
    .unwrap();
    let rec = s.find(NS, Lookup::Name("a")).await.unwrap().unwrap();
    assert_eq!(rec.row, r3);
    assert_eq!(rec.versions[0].stages, vec!["AWSPREVIOUS"]);
    assert!(rec.versions[0].has_value, "stage change keeps the value");
    assert_eq!(rec.versions[1].stages, vec!["AWSCURRENT", "AWSPENDING"]);
    assert_eq!(
        s.read_ciphertext("u1", "v1").await.unwrap().unwrap(),
        b"ct1"
    );
    assert_eq!(
        s.read_ciphertext("u1", "v2").await.unwrap().unwrap(),
        b"ct2"
    );

    // Deleting a version.
    let mut r4 = r3.clone();
    r4.revision = 4;
    s.update(&SecretUpdate {
        delete_versions: vec!["v1".into()],
        ..update(r4)
    })
    .await
    .unwrap();
    let rec = s.find(NS, Lookup::Name("a")).await.unwrap().unwrap();
    assert_eq!(rec.versions.len(), 1);
    assert_eq!(s.read_ciphertext("u1", "v1").await.unwrap(), None);
    // The revision a node checks a cached copy against.
    assert_eq!(s.revision("u1").await.unwrap(), Some(4));
    assert_eq!(s.revision("zz").await.unwrap(), None);

    s.record_access("u1", "v2", 86_400_000).await.unwrap();
    let listed = s.list(NS).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].row.last_accessed_ms, Some(86_400_000));
    assert_eq!(listed[0].versions[0].last_accessed_ms, Some(86_400_000));
    assert_eq!(listed[0].row.revision, 4, "reads do not bump the revision");
    assert!(s.list("other:ns").await.unwrap().is_empty());

    assert!(s.delete("u1").await.unwrap());
    assert!(!s.delete("u1").await.unwrap());
    assert_eq!(s.revision("u1").await.unwrap(), None);
    assert!(s.find(NS, Lookup::Name("a")).await.unwrap().is_none());
    assert_eq!(s.read_ciphertext("u1", "v2").await.unwrap(), None);
    // The name is free again.
    s.insert(&row("u3", "a"), &[]).await.unwrap();
}

async fn find_sealed_reads_values_with_metadata(b: &dyn Backend) {
    let s = b.open().await;
    s.insert(
        &row("u1", "a"),
        &[
            version("v1", 1, &["AWSPREVIOUS"], Some(b"ct1")),
            version("v2", 2, &["AWSPENDING"], None),
            version("v3", 3, &["AWSCURRENT"], Some(b"ct3")),
        ],
    )
    .await
    .unwrap();
    let sealed = s.find_sealed(NS, Lookup::Name("a")).await.unwrap().unwrap();
    assert_eq!(sealed.record.versions.len(), 3);
    assert!(!sealed.record.versions[1].has_value);
    assert_eq!(
        sealed.values,
        vec![
            ("v1".into(), b"ct1".to_vec()),
            ("v3".into(), b"ct3".to_vec())
        ]
    );
    assert_eq!(
        sealed.record,
        s.find(NS, Lookup::Name("a")).await.unwrap().unwrap()
    );
    assert!(s
        .find_sealed(NS, Lookup::Name("b"))
        .await
        .unwrap()
        .is_none());
}

async fn meta_values(b: &dyn Backend) {
    let s = b.open().await;
    assert_eq!(s.get_meta("kms:a").await.unwrap(), None);
    assert!(s.put_meta_if_absent("kms:a", b"1").await.unwrap());
    assert!(!s.put_meta_if_absent("kms:a", b"2").await.unwrap());
    s.put_meta("cred:x", b"3").await.unwrap();
    s.put_meta("cred:x", b"4").await.unwrap();
    assert_eq!(s.get_meta("kms:a").await.unwrap().unwrap(), b"1");
    assert_eq!(s.get_meta("cred:x").await.unwrap().unwrap(), b"4");
    s.put_metas(&[
        ("kms:c".into(), b"5".to_vec()),
        ("kms:b".into(), vec![0, 255, 0]),
    ])
    .await
    .unwrap();
    assert_eq!(
        s.list_meta("kms:").await.unwrap(),
        vec![
            ("kms:a".to_string(), b"1".to_vec()),
            ("kms:b".to_string(), vec![0, 255, 0]),
            ("kms:c".to_string(), b"5".to_vec()),
        ]
    );
    assert_eq!(s.list_meta("").await.unwrap().len(), 4);
    assert!(s.list_meta("nope").await.unwrap().is_empty());
    s.put_meta("clé:1", b"7").await.unwrap();
    assert_eq!(s.list_meta("clé").await.unwrap().len(), 1);
    assert_eq!(s.list_meta("cl\u{7f}").await.unwrap().len(), 0);
    assert!(s.delete_meta("clé:1").await.unwrap());
    assert!(s.delete_meta("kms:a").await.unwrap());
    assert!(!s.delete_meta("kms:a").await.unwrap());
    assert_eq!(s.get_meta("kms:a").await.unwrap(), None);
    assert!(s.put_meta_if_absent("kms:a", b"6").await.unwrap());

    // Conditional replacement: all or none, and only over the values read before.
    let swap = |key: &str, expected: &[u8], new: &[u8]| rotary_store::MetaSwap {
        key: key.into(),
        expected: expected.to_vec(),
        new: new.to_vec(),
    };
    assert!(!s
        .put_metas_if_unchanged(&[swap("kms:a", b"6", b"A"), swap("kms:b", b"stale", b"B")])
        .await
        .unwrap());
    assert_eq!(s.get_meta("kms:a").await.unwrap().unwrap(), b"6");
    assert!(!s
        .put_metas_if_unchanged(&[swap("absent", b"", b"x")])
        .await
        .unwrap());
    assert_eq!(s.get_meta("absent").await.unwrap(), None);
    assert!(s
        .put_metas_if_unchanged(&[swap("kms:a", b"6", b"A"), swap("kms:b", &[0, 255, 0], b"B")])
        .await
        .unwrap());
    assert_eq!(s.get_meta("kms:a").await.unwrap().unwrap(), b"A");
    assert_eq!(s.get_meta("kms:b").await.unwrap().unwrap(), b"B");
}

async fn purge_and_delete_if_due(b: &dyn Backend) {
    let s = b.open().await;
    let mut gone = row("u1", "gone");
    gone.deleted_ms = Some(100);
    s.insert(&gone, &[version("v1", 1, &["AWSCURRENT"], Some(b"ct"))])
        .await
        .unwrap();
    s.put_history("h1", "u1", 1, "{}").await.unwrap();
    let claim = s.claim_rotation("u1", "A", 60_000).await.unwrap().unwrap();
    assert_eq!(claim.fence, 1);
    let mut restored = row("u2", "restored");
    restored.deleted_ms = Some(100);
    s.insert(&restored, &[]).await.unwrap();
    s.insert(&row("u3", "live"), &[]).await.unwrap();
    assert!(s.due_for_purge(99).await.unwrap().is_empty());
    let mut due = s.due_for_purge(100).await.unwrap();
    due.sort();
    assert_eq!(due, vec!["u1", "u2"]);

    // A RestoreSecret commits between the purge's listing and its delete.
    restored.deleted_ms = None;
    restored.revision = 2;
    s.update(&update(restored)).await.unwrap();

    assert!(!s.delete_if_due("u1", 99).await.unwrap(), "not yet due");
    assert!(s.delete_if_due("u1", 100).await.unwrap());
    assert!(!s.delete_if_due("u1", 100).await.unwrap(), "already gone");
    assert!(!s.delete_if_due("u2", 100).await.unwrap(), "restored");
    assert!(!s.delete_if_due("u3", 100).await.unwrap(), "never deleted");
    assert!(!s.delete_if_due("nope", 100).await.unwrap());
    assert!(s.find(NS, Lookup::Uid("u1")).await.unwrap().is_none());
    assert_eq!(s.read_ciphertext("u1", "v1").await.unwrap(), None);
    assert!(s.list_history("u1", 10).await.unwrap().is_empty());
    assert!(s.find(NS, Lookup::Uid("u2")).await.unwrap().is_some());
    assert!(s.find(NS, Lookup::Uid("u3")).await.unwrap().is_some());
    assert!(s.due_for_purge(i64::MAX).await.unwrap().is_empty());

    // The claim went with the secret: a secret under the same id starts counting again.
    s.insert(&row("u1", "gone"), &[]).await.unwrap();
    let again = s.claim_rotation("u1", "B", 60_000).await.unwrap().unwrap();
    assert_eq!(again.fence, 1);
}

async fn due_rotations_and_history(b: &dyn Backend) {
    let s = b.open().await;
    let mut a = row("u1", "a");
    a.rotation_due_ms = Some(50);
    let mut b2 = row("u2", "b");
    b2.rotation_due_ms = Some(10);
    s.insert(&a, &[]).await.unwrap();
    s.insert(&b2, &[]).await.unwrap();
    s.insert(&row("u3", "c"), &[]).await.unwrap();
    assert_eq!(s.due_rotations(100, 10).await.unwrap(), vec!["u2", "u1"]);
    assert_eq!(s.due_rotations(100, 1).await.unwrap(), vec!["u2"]);
    assert_eq!(s.due_rotations(20, 10).await.unwrap(), vec!["u2"]);
    assert!(s.due_rotations(9, 10).await.unwrap().is_empty());

    s.put_history("h1", "u1", 1, "{\"n\":1}").await.unwrap();
    s.put_history("h2", "u1", 2, "{\"n\":2}").await.unwrap();
    s.put_history("h1", "u1", 1, "{\"n\":3}").await.unwrap();
    s.put_history("h3", "u2", 1, "{\"n\":4}").await.unwrap();
    assert_eq!(
        s.list_history("u1", 10).await.unwrap(),
        vec!["{\"n\":2}", "{\"n\":3}"]
    );
    assert_eq!(s.list_history("u1", 1).await.unwrap(), vec!["{\"n\":2}"]);
    assert!(s.delete("u1").await.unwrap());
    assert!(s.list_history("u1", 10).await.unwrap().is_empty());
    assert_eq!(s.list_history("u2", 10).await.unwrap().len(), 1);
}

async fn replication_outbox(b: &dyn Backend) {
    let s = b.open().await;
    let mut a = row("u1", "a");
    a.replication_due_ms = Some(50);
    let mut b2 = row("u2", "b");
    b2.replication_due_ms = Some(10);
    let mut c = row("u3", "c");
    c.replication_due_ms = Some(200);
    s.insert(&a, &[]).await.unwrap();
    s.insert(&b2, &[]).await.unwrap();
    s.insert(&c, &[]).await.unwrap();
    s.insert(&row("u4", "d"), &[]).await.unwrap();
    // Listed once due, most overdue first; never-due secrets and rotations are apart.
    assert_eq!(s.due_replications(100, 10).await.unwrap(), vec!["u2", "u1"]);
    assert_eq!(s.due_replications(100, 1).await.unwrap(), vec!["u2"]);
    assert_eq!(s.due_replications(10, 10).await.unwrap(), vec!["u2"]);
    assert!(s.due_replications(9, 10).await.unwrap().is_empty());
    assert_eq!(
        s.due_replications(i64::MAX, 10).await.unwrap(),
        vec!["u2", "u1", "u3"]
    );
    assert!(s.due_rotations(i64::MAX, 10).await.unwrap().is_empty());
    let found = s.find(NS, Lookup::Uid("u1")).await.unwrap().unwrap();
    assert_eq!(found.row, a);
    assert_eq!(
        s.find_sealed(NS, Lookup::Name("c"))
            .await
            .unwrap()
            .unwrap()
            .record
            .row
            .replication_due_ms,
        Some(200)
    );

    // An update writes the column like any other.
    let mut a2 = a.clone();
    a2.revision = 2;
    a2.replication_due_ms = Some(5);
    a2.doc = "{\"n\":2}".into();
    s.update(&update(a2.clone())).await.unwrap();
    assert_eq!(
        s.find(NS, Lookup::Uid("u1")).await.unwrap().unwrap().row,
        a2
    );
    assert_eq!(s.due_replications(100, 10).await.unwrap(), vec!["u1", "u2"]);
    let mut a3 = a2.clone();
    a3.revision = 3;
    a3.replication_due_ms = None;
    s.update(&update(a3.clone())).await.unwrap();
    assert_eq!(
        s.find(NS, Lookup::Uid("u1")).await.unwrap().unwrap().row,
        a3
    );
    assert_eq!(s.due_replications(100, 10).await.unwrap(), vec!["u2"]);
    let listed = s.list(NS).await.unwrap();
    let dues: Vec<_> = listed
        .iter()
        .map(|r| (r.row.uid.as_str(), r.row.replication_due_ms))
        .collect();
    assert_eq!(
        dues,
        vec![
            ("u1", None),
            ("u2", Some(10)),
            ("u3", Some(200)),
            ("u4", None)
        ]
    );
    let page = s
        .list_page(&ListQuery {
            namespace: NS.into(),
            order: ListOrder::Name,
            descending: false,
            after: None,
            include_deleted: false,
            name_prefixes: vec![],
            tag_key_prefixes: vec![],
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(
        page.iter().map(|r| r.row.clone()).collect::<Vec<_>>(),
        listed.iter().map(|r| r.row.clone()).collect::<Vec<_>>()
    );

    // Set under the revision read: only the column changes, the revision and document stay.
    assert!(s.set_replication_due("u2", 1, None).await.unwrap());
    let after = s.find(NS, Lookup::Uid("u2")).await.unwrap().unwrap().row;
    assert_eq!(after.replication_due_ms, None);
    assert_eq!((after.revision, after.doc.as_str()), (1, "{}"));
    assert_eq!(
        after,
        SecretRow {
            replication_due_ms: None,
            ..b2.clone()
        }
    );
    assert_eq!(s.revision("u2").await.unwrap(), Some(1));
    assert_eq!(
        s.due_replications(100, 10).await.unwrap(),
        Vec::<String>::new()
    );
    assert!(s.set_replication_due("u4", 1, Some(70)).await.unwrap());
    let after = s.find(NS, Lookup::Uid("u4")).await.unwrap().unwrap().row;
    assert_eq!(
        (after.replication_due_ms, after.revision, after.doc.as_str()),
        (Some(70), 1, "{}")
    );
    assert_eq!(s.due_replications(100, 10).await.unwrap(), vec!["u4"]);
    // The update that follows still sees the revision it read.
    let mut d2 = after.clone();
    d2.revision = 2;
    s.update(&update(d2)).await.unwrap();

    // A stale revision (the secret changed since) changes nothing.
    assert!(!s.set_replication_due("u1", 2, Some(1)).await.unwrap());
    assert_eq!(
        s.find(NS, Lookup::Uid("u1")).await.unwrap().unwrap().row,
        a3
    );
    assert!(!s.set_replication_due("u3", 0, None).await.unwrap());
    assert_eq!(
        s.find(NS, Lookup::Uid("u3"))
            .await
            .unwrap()
            .unwrap()
            .row
            .replication_due_ms,
        Some(200)
    );
    assert!(!s.set_replication_due("nope", 1, Some(1)).await.unwrap());
    assert!(s.find(NS, Lookup::Uid("nope")).await.unwrap().is_none());

    // A deleted secret leaves the outbox.
    assert_eq!(
        s.due_replications(i64::MAX, 10).await.unwrap(),
        vec!["u4", "u3"]
    );
    assert!(s.delete("u3").await.unwrap());
    assert_eq!(s.due_replications(i64::MAX, 10).await.unwrap(), vec!["u4"]);
    assert!(!s.set_replication_due("u3", 1, Some(1)).await.unwrap());
    assert_eq!(s.due_replications(i64::MAX, 10).await.unwrap(), vec!["u4"]);
}

async fn concurrent_inserts_of_one_name_have_one_winner(b: &dyn Backend) {
    let s = b.open().await;
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
            Err(Error::NameTaken(n)) => assert_eq!(n, "same"),
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(s.list(NS).await.unwrap().len(), 1);
}

async fn concurrent_compare_and_swaps_have_one_winner(b: &dyn Backend) {
    let s = b.open().await;
    s.insert(&row("u", "same"), &[]).await.unwrap();
    let read = s.find(NS, Lookup::Name("same")).await.unwrap().unwrap();
    // 50 writers from one revision: exactly one wins, the others change nothing, and
    // unrelated writes made at the same time commit.
    let updates: Vec<_> = (0..50)
        .map(|i| {
            let s = s.clone();
            let mut next = read.row.clone();
            next.revision = 2;
            next.doc = format!("{{\"n\":{i}}}");
            tokio::spawn(async move {
                let other_row = row(&format!("o{i}"), &format!("other{i}"));
                let other = s.insert(&other_row, &[]);
                let upd = SecretUpdate {
                    upsert_versions: vec![version(&format!("v{i}"), i, &[], Some(b"x"))],
                    ..update(next)
                };
                let upd = s.update(&upd);
                let (a, b) = tokio::join!(other, upd);
                a.unwrap();
                b.map(|()| i)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for t in updates {
        match t.await.unwrap() {
            Ok(i) => winners.push(i),
            Err(Error::Conflict(n)) => assert_eq!(n, "same"),
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(winners.len(), 1);
    let after = s.find(NS, Lookup::Name("same")).await.unwrap().unwrap();
    assert_eq!(after.row.revision, 2);
    assert_eq!(after.row.doc, format!("{{\"n\":{}}}", winners[0]));
    assert_eq!(
        after.versions.len(),
        1,
        "only the winner's version was written"
    );
    assert_eq!(after.versions[0].version_id, format!("v{}", winners[0]));
    assert_eq!(s.list(NS).await.unwrap().len(), 51);
}

async fn claims_are_leased_and_fenced(b: &dyn Backend) {
    let s = b.open().await;
    s.insert(&row("u1", "a"), &[]).await.unwrap();
    assert_eq!(
        s.claim_rotation("nope", "A", 60_000).await.unwrap(),
        None,
        "no claim on a missing secret"
    );

    // A claims; B is refused while A's lease runs; A re-claims and keeps its fence.
    let a = s.claim_rotation("u1", "A", 1500).await.unwrap().unwrap();
    assert_eq!((a.uid.as_str(), a.owner.as_str(), a.fence), ("u1", "A", 1));
    assert_eq!(s.claim_rotation("u1", "B", 1500).await.unwrap(), None);
    assert_eq!(
        s.claim_rotation("u1", "A", 1500).await.unwrap(),
        Some(a.clone())
    );
    assert!(s.renew_claim(&a, 1500).await.unwrap());

    // After A's lease runs out, B takes over with the next fence; A's renewal then fails.
    tokio::time::sleep(Duration::from_millis(1700)).await;
    let b_claim = s.claim_rotation("u1", "B", 60_000).await.unwrap().unwrap();
    assert_eq!((b_claim.owner.as_str(), b_claim.fence), ("B", 2));
    assert!(!s.renew_claim(&a, 60_000).await.unwrap());
    assert_eq!(s.claim_rotation("u1", "A", 60_000).await.unwrap(), None);

    // A's fenced update fails and changes nothing; B's works.
    let mut next = row("u1", "a");
    next.revision = 2;
    next.doc = "{\"by\":\"A\"}".into();
    let by_a = SecretUpdate {
        upsert_versions: vec![version("v1", 1, &["AWSCURRENT"], Some(b"ct"))],
        claim: Some(a.clone()),
        ..update(next)
    };
    match s.update(&by_a).await {
        Err(Error::ClaimLost(uid)) => assert_eq!(uid, "u1"),
        other => panic!("expected ClaimLost, got {other:?}"),
    }
    let rec = s.find(NS, Lookup::Uid("u1")).await.unwrap().unwrap();
    assert_eq!((rec.row.revision, rec.versions.len()), (1, 0));
    let by_b = SecretUpdate {
        claim: Some(b_claim.clone()),
        ..by_a.clone()
    };
    s.update(&by_b).await.unwrap();
    let rec = s.find(NS, Lookup::Uid("u1")).await.unwrap().unwrap();
    assert_eq!((rec.row.revision, rec.versions.len()), (2, 1));
    // The claim does not replace the revision check.
    assert!(matches!(s.update(&by_b).await, Err(Error::Conflict(_))));

    // A claim whose lease ran out is still held while nobody takes it: renewable, and
    // writes under it still pass.
    let short = s.claim_rotation("u1", "B", 1).await.unwrap().unwrap();
    assert_eq!(short, b_claim);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(s.renew_claim(&b_claim, 60_000).await.unwrap());

    // Releasing a lost claim changes nothing; a released claim is free at once and the
    // fence keeps counting.
    s.release_claim(&a).await.unwrap();
    assert_eq!(s.claim_rotation("u1", "C", 60_000).await.unwrap(), None);
    s.release_claim(&b_claim).await.unwrap();
    assert!(!s.renew_claim(&b_claim, 60_000).await.unwrap());
    let mut again = rec.row.clone();
    again.revision = 3;
    let released = SecretUpdate {
        claim: Some(b_claim.clone()),
        ..update(again)
    };
    assert!(matches!(
        s.update(&released).await,
        Err(Error::ClaimLost(_))
    ));
    let c = s.claim_rotation("u1", "C", 60_000).await.unwrap().unwrap();
    assert_eq!(c.fence, 3);
    // A claim released and taken again by its former owner still gets a new fence.
    s.release_claim(&c).await.unwrap();
    let c2 = s.claim_rotation("u1", "C", 60_000).await.unwrap().unwrap();
    assert_eq!(c2.fence, 4);
}

async fn concurrent_claims_have_one_winner(b: &dyn Backend) {
    let s = b.open().await;
    s.insert(&row("u1", "a"), &[]).await.unwrap();
    let claims: Vec<_> = (0..20)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                s.claim_rotation("u1", &format!("node{i}"), 60_000)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut won = Vec::new();
    for t in claims {
        if let Some(c) = t.await.unwrap() {
            won.push(c);
        }
    }
    assert_eq!(won.len(), 1);
    assert_eq!(won[0].fence, 1);
}

async fn a_purge_racing_a_fenced_update_fails_neither_way(b: &dyn Backend) {
    let s = b.open().await;
    for i in 0..20 {
        let uid = format!("u{i}");
        let mut r = row(&uid, &format!("n{i}"));
        r.deleted_ms = Some(1);
        s.insert(&r, &[]).await.unwrap();
        let claim = s.claim_rotation(&uid, "A", 60_000).await.unwrap().unwrap();
        r.revision = 2;
        let fenced = SecretUpdate {
            upsert_versions: vec![version("v1", 1, &["AWSCURRENT"], Some(b"ct"))],
            claim: Some(claim),
            ..update(r)
        };
        let (written, purged) = tokio::join!(s.update(&fenced), s.delete_if_due(&uid, 10));
        // Either order is fine; a database-level failure (a deadlock) is not.
        match written {
            Ok(()) | Err(Error::ClaimLost(_) | Error::Conflict(_)) => {}
            Err(e) => panic!("the update failed: {e}"),
        }
        assert!(purged.unwrap(), "still due either way");
        assert!(s.find(NS, Lookup::Uid(&uid)).await.unwrap().is_none());
    }
}

fn tagged(uid: &str, name: &str, created: i64, tags: &[(&str, &str)]) -> SecretRow {
    let mut r = row(uid, name);
    r.created_ms = created;
    r.last_changed_ms = 1000 - created;
    r.last_accessed_ms = (created % 3 != 0).then_some(created / 3);
    let tags: Vec<(String, String)> = tags
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    r.doc = serde_json::json!({ "tags": tags }).to_string();
    r
}

/// Pages through a listing `limit` at a time; returns the names in order.
async fn page_all(s: &dyn Store, base: &ListQuery, limit: i64) -> Vec<String> {
    let mut q = base.clone();
    q.limit = limit;
    let mut names = Vec::new();
    loop {
        let page = s.list_page(&q).await.unwrap();
        assert!(page.len() as i64 <= limit);
        let Some(last) = page.last() else { break };
        q.after = Some((q.order.key_of(&last.row), last.row.uid.clone()));
        names.extend(page.iter().map(|r| r.row.name.clone()));
        if (page.len() as i64) < limit {
            break;
        }
    }
    names
}

async fn list_page_sorts_pages_and_narrows_in_the_query(b: &dyn Backend) {
    let s = b.open().await;
    let s = s.as_ref();
    let mut rows = Vec::new();
    for i in 0..40i64 {
        // Mixed case and punctuation: the order is bytewise whatever the database's locale.
        let name = format!(
            "{}/svc{:02}",
            ["prod", "dev", "prod-eu", "Prod_x"][i as usize % 4],
            40 - i
        );
        let tags: Vec<(&str, &str)> = match i % 4 {
            0 => vec![("team", "a")],
            1 => vec![("env", "prod"), ("team", "b")],
            _ => vec![],
        };
        // Some creation times repeat: the uid breaks ties.
        let r = tagged(&format!("u{i:02}"), &name, i / 2, &tags);
        s.insert(&r, &[version("v1", 1, &["AWSCURRENT"], Some(b"c"))])
            .await
            .unwrap();
        rows.push(r);
    }
    let mut deleted = rows[5].clone();
    deleted.deleted_ms = Some(1);
    deleted.revision = 2;
    s.update(&update(deleted)).await.unwrap();

    for order in [
        ListOrder::Created,
        ListOrder::Name,
        ListOrder::LastChanged,
        ListOrder::LastAccessed,
    ] {
        for descending in [false, true] {
            for include_deleted in [false, true] {
                let mut expected: Vec<&SecretRow> = rows
                    .iter()
                    .filter(|r| include_deleted || r.uid != "u05")
                    .collect();
                expected.sort_by(|a, b| (order.key_of(a), &a.uid).cmp(&(order.key_of(b), &b.uid)));
                if descending {
                    expected.reverse();
                }
                let expected: Vec<String> = expected.iter().map(|r| r.name.clone()).collect();
                let q = ListQuery {
                    namespace: NS.into(),
                    order,
                    descending,
                    after: None,
                    include_deleted,
                    name_prefixes: vec![],
                    tag_key_prefixes: vec![],
                    limit: 0,
                };
                for limit in [1, 7, 100] {
                    assert_eq!(
                        page_all(s, &q, limit).await,
                        expected,
                        "{order:?} {descending}"
                    );
                }
            }
        }
    }
    // Pages carry their versions.
    let first = s
        .list_page(&ListQuery {
            namespace: NS.into(),
            order: ListOrder::Name,
            descending: false,
            after: None,
            include_deleted: true,
            name_prefixes: vec![],
            tag_key_prefixes: vec![],
            limit: 3,
        })
        .await
        .unwrap();
    assert!(first.iter().all(|r| r.versions.len() == 1));

    let q = |names: Vec<Vec<&str>>, tags: Vec<Vec<&str>>| ListQuery {
        namespace: NS.into(),
        order: ListOrder::Name,
        descending: false,
        after: None,
        include_deleted: true,
        name_prefixes: names
            .into_iter()
            .map(|g| g.into_iter().map(String::from).collect())
            .collect(),
        tag_key_prefixes: tags
            .into_iter()
            .map(|g| g.into_iter().map(String::from).collect())
            .collect(),
        limit: 0,
    };
    let prod = page_all(s, &q(vec![vec!["prod/"]], vec![]), 5).await;
    assert_eq!(prod.len(), 10);
    assert!(prod.iter().all(|n| n.starts_with("prod/")));
    let either = page_all(s, &q(vec![vec!["prod/", "dev/"]], vec![]), 5).await;
    assert_eq!(either.len(), 20);
    let both = page_all(s, &q(vec![vec!["prod"], vec!["prod-"]], vec![]), 5).await;
    assert_eq!(both.len(), 10);
    // Prefixes are case-sensitive.
    assert_eq!(
        page_all(s, &q(vec![vec!["Prod"]], vec![]), 5).await.len(),
        10
    );
    assert_eq!(page_all(s, &q(vec![], vec![vec!["te"]]), 5).await.len(), 20);
    assert_eq!(
        page_all(s, &q(vec![], vec![vec!["env"]]), 5).await.len(),
        10
    );
    let team_prod = page_all(s, &q(vec![vec!["prod/"]], vec![vec!["team"]]), 5).await;
    assert_eq!(team_prod.len(), 10);
    let team_dev = page_all(s, &q(vec![vec!["dev/"]], vec![vec!["env"]]), 5).await;
    assert_eq!(team_dev.len(), 10);
    let untagged = page_all(s, &q(vec![vec!["prod-"]], vec![vec!["team"]]), 5).await;
    assert!(untagged.is_empty());
    // Non-ASCII prefixes fall back to a substring comparison (counted in characters).
    assert!(page_all(s, &q(vec![vec!["prodé"]], vec![]), 5)
        .await
        .is_empty());
    s.insert(&tagged("u99", "prodé1", 99, &[("clé", "v")]), &[])
        .await
        .unwrap();
    assert_eq!(
        page_all(s, &q(vec![vec!["prodé"]], vec![]), 5).await,
        vec!["prodé1"]
    );
    assert_eq!(
        page_all(
            s,
            &q(vec![vec!["prod\u{7f}", "prodé"]], vec![vec!["cl\u{e9}"]]),
            5
        )
        .await,
        vec!["prodé1"]
    );
    s.delete("u99").await.unwrap();

    // Tags follow the document through updates and deletion.
    let mut retagged = rows[2].clone();
    retagged.doc = serde_json::json!({ "tags": [["owner", "x"]] }).to_string();
    retagged.revision = 2;
    s.update(&update(retagged)).await.unwrap();
    assert_eq!(
        page_all(s, &q(vec![], vec![vec!["owner"]]), 5).await.len(),
        1
    );
    s.delete("u02").await.unwrap();
    assert!(page_all(s, &q(vec![], vec![vec!["owner"]]), 5)
        .await
        .is_empty());
}

async fn list_page_with_a_dense_name_prefix_keeps_the_order(b: &dyn Backend) {
    let s = b.open().await;
    // 1,100 secrets under one prefix (dense) and 3 under another (sparse), names not in
    // creation order; written 8 at a time.
    let rows: Vec<SecretRow> = (0..1103i64)
        .map(|i| {
            let name = if i % 400 == 7 {
                format!("s/{i:04}")
            } else {
                format!("d/{:04}", 5000 - i)
            };
            tagged(&format!("u{i:05}"), &name, i, &[])
        })
        .collect();
    for chunk in rows.chunks(8) {
        let mut writes = tokio::task::JoinSet::new();
        for r in chunk.iter().map(Clone::clone) {
            let s = s.clone();
            writes.spawn(async move { s.insert(&r, &[]).await });
        }
        while let Some(r) = writes.join_next().await {
            r.unwrap().unwrap();
        }
    }
    let q = |prefix: &str| ListQuery {
        namespace: NS.into(),
        order: ListOrder::Created,
        descending: false,
        after: None,
        include_deleted: false,
        name_prefixes: vec![vec![prefix.into()]],
        tag_key_prefixes: vec![],
        limit: 0,
    };
    let dense = page_all(s.as_ref(), &q("d/"), 100).await;
    let expected: Vec<String> = (0..1103)
        .filter(|i| i % 400 != 7)
        .map(|i| format!("d/{:04}", 5000 - i))
        .collect();
    assert_eq!(dense, expected);
    assert_eq!(
        page_all(s.as_ref(), &q("s/"), 100).await,
        vec!["s/0007", "s/0407", "s/0807"]
    );
}

async fn acknowledged_writes_survive_reopening(b: &dyn Backend) {
    {
        let s = b.open().await;
        let writes: Vec<_> = (0..200)
            .map(|i| {
                let s = s.clone();
                tokio::spawn(async move {
                    s.insert(
                        &row(&format!("u{i}"), &format!("n{i}")),
                        &[version("v1", 1, &["AWSCURRENT"], Some(b"ct"))],
                    )
                    .await
                })
            })
            .collect();
        for w in writes {
            w.await.unwrap().unwrap();
        }
        s.put_meta("k", b"v").await.unwrap();
        s.claim_rotation("u1", "A", 60_000).await.unwrap().unwrap();
        // Dropped with no goodbye: what a crash leaves behind, as far as the store knows.
        drop(s);
    }
    let s: Arc<dyn Store> = b.open().await;
    let listed = s.list(NS).await.unwrap();
    assert_eq!(listed.len(), 200);
    assert!(listed.iter().all(|r| r.versions.len() == 1));
    assert_eq!(s.read_ciphertext("u7", "v1").await.unwrap().unwrap(), b"ct");
    assert_eq!(s.get_meta("k").await.unwrap().unwrap(), b"v");
    // Claims survive too: a restarted node does not steal a running lease.
    assert_eq!(s.claim_rotation("u1", "B", 60_000).await.unwrap(), None);
    // A second open over the same data works alongside.
    let again = b.open().await;
    assert_eq!(again.list(NS).await.unwrap().len(), 200);
}

/// Polls `f` `polls` times (letting the driver's I/O run in between), then drops it: a
/// request whose client went away mid-read.
async fn cancel_after<F: std::future::Future>(f: F, polls: usize) {
    let mut f = std::pin::pin!(f);
    for _ in 0..polls {
        let ready =
            std::future::poll_fn(|cx| std::task::Poll::Ready(f.as_mut().poll(cx).is_ready())).await;
        if ready {
            return;
        }
        tokio::time::sleep(Duration::from_micros(20)).await;
    }
}

async fn cancelled_reads_leave_no_snapshot_behind(b: &dyn Backend) {
    let s = b.open().await;
    s.insert(
        &row("u1", "a"),
        &[version("v1", 1, &["AWSCURRENT"], Some(b"ct1"))],
    )
    .await
    .unwrap();
    let page = ListQuery {
        namespace: NS.into(),
        order: ListOrder::Name,
        descending: false,
        after: None,
        include_deleted: false,
        name_prefixes: vec![vec!["a".into()]],
        tag_key_prefixes: vec![],
        limit: 10,
    };
    // Cancel reads at every point of their progress, on every pooled connection.
    for polls in 1..150 {
        cancel_after(s.list(NS), polls).await;
        cancel_after(s.find(NS, Lookup::Name("a")), polls).await;
        cancel_after(s.find_sealed(NS, Lookup::Name("a")), polls).await;
        cancel_after(s.list_page(&page), polls).await;
    }
    let mut next = row("u1", "a");
    next.revision = 2;
    s.update(&SecretUpdate {
        upsert_versions: vec![version("v2", 2, &["AWSCURRENT"], Some(b"ct2"))],
        ..update(next)
    })
    .await
    .unwrap();
    // Every pooled connection sees the write.
    for _ in 0..32 {
        let listed = s.list(NS).await.unwrap();
        assert_eq!(listed[0].row.revision, 2);
        let found = s.find(NS, Lookup::Name("a")).await.unwrap().unwrap();
        assert_eq!(found.row.revision, 2);
        assert_eq!(found.versions.len(), 2);
        let sealed = s.find_sealed(NS, Lookup::Uid("u1")).await.unwrap().unwrap();
        assert_eq!(sealed.values.len(), 2);
        assert_eq!(s.list_page(&page).await.unwrap()[0].row.revision, 2);
    }
}

async fn a_store_newer_than_the_binary_is_refused(b: &dyn Backend) {
    drop(b.open().await);
    b.add_future_migration().await;
    match b.open_err().await {
        Error::NewerSchema { found, known } => {
            assert_eq!(found, 9999);
            assert!(known >= 5);
        }
        other => panic!("expected NewerSchema, got {other:?}"),
    }
}
