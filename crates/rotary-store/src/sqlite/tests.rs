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

#[tokio::test]
async fn insert_find_update_delete() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("db.sqlite"))
        .await
        .unwrap();
    let ns = "000000000000:us-east-1";
    s.insert(
        &row("u1", "a"),
        &[version("v1", 1, &["AWSCURRENT"], Some(b"ct1"))],
    )
    .await
    .unwrap();
    assert!(matches!(
        s.insert(&row("u2", "a"), &[]).await,
        Err(Error::NameTaken(_))
    ));

    let rec = s.find(ns, Lookup::Name("a")).await.unwrap().unwrap();
    assert_eq!(rec.versions.len(), 1);
    assert!(rec.versions[0].has_value);
    let by_arn = s
        .find(ns, Lookup::Arn(&rec.row.arn))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_arn, rec);
    assert_eq!(
        s.read_ciphertext("u1", "v1").await.unwrap().unwrap(),
        b"ct1"
    );

    // A placeholder, then filled; the old version's labels change in the same update.
    let mut r2 = rec.row.clone();
    r2.revision = 2;
    let upd = SecretUpdate {
        row: r2.clone(),
        upsert_versions: vec![version("v2", 2, &["AWSPENDING"], None)],
        delete_versions: vec![],
    };
    s.update(&upd).await.unwrap();
    assert!(
        matches!(s.update(&upd).await, Err(Error::Conflict(_))),
        "stale revision"
    );
    assert_eq!(s.read_ciphertext("u1", "v2").await.unwrap(), None);
    let mut r3 = r2.clone();
    r3.revision = 3;
    s.update(&SecretUpdate {
        row: r3,
        upsert_versions: vec![
            version("v2", 2, &["AWSCURRENT", "AWSPENDING"], Some(b"ct2")),
            version("v1", 1, &["AWSPREVIOUS"], None),
        ],
        delete_versions: vec![],
    })
    .await
    .unwrap();
    let rec = s.find(ns, Lookup::Name("a")).await.unwrap().unwrap();
    assert_eq!(rec.versions[0].stages, vec!["AWSPREVIOUS"]);
    assert!(rec.versions[0].has_value, "stage change keeps the value");
    assert_eq!(
        s.read_ciphertext("u1", "v1").await.unwrap().unwrap(),
        b"ct1"
    );
    assert_eq!(
        s.read_ciphertext("u1", "v2").await.unwrap().unwrap(),
        b"ct2"
    );

    s.record_access("u1", "v2", 86_400_000).await.unwrap();
    let listed = s.list(ns).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].row.last_accessed_ms, Some(86_400_000));
    assert_eq!(listed[0].row.revision, 3, "reads do not bump the revision");

    assert!(s.delete("u1").await.unwrap());
    assert!(s.find(ns, Lookup::Name("a")).await.unwrap().is_none());
    assert_eq!(s.read_ciphertext("u1", "v1").await.unwrap(), None);
}

#[tokio::test]
async fn meta_and_purge_index() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("db.sqlite"))
        .await
        .unwrap();
    assert!(s.put_meta_if_absent("kms:a", b"1").await.unwrap());
    assert!(!s.put_meta_if_absent("kms:a", b"2").await.unwrap());
    s.put_meta("cred:x", b"3").await.unwrap();
    assert_eq!(s.get_meta("kms:a").await.unwrap().unwrap(), b"1");
    assert_eq!(
        s.list_meta("kms:").await.unwrap(),
        vec![("kms:a".to_string(), b"1".to_vec())]
    );

    let mut r = row("u1", "gone");
    r.deleted_ms = Some(100);
    s.insert(&r, &[]).await.unwrap();
    s.insert(&row("u2", "kept"), &[]).await.unwrap();
    assert!(s.due_for_purge(99).await.unwrap().is_empty());
    assert_eq!(s.due_for_purge(100).await.unwrap(), vec!["u1".to_string()]);
}

#[tokio::test]
async fn due_rotations_and_history() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("db.sqlite"))
        .await
        .unwrap();
    let mut a = row("u1", "a");
    a.rotation_due_ms = Some(50);
    let mut b = row("u2", "b");
    b.rotation_due_ms = Some(10);
    s.insert(&a, &[]).await.unwrap();
    s.insert(&b, &[]).await.unwrap();
    s.insert(&row("u3", "c"), &[]).await.unwrap();
    assert_eq!(
        s.due_rotations(100, 10).await.unwrap(),
        vec!["u2".to_string(), "u1".to_string()]
    );
    assert_eq!(
        s.due_rotations(20, 10).await.unwrap(),
        vec!["u2".to_string()]
    );
    assert!(s
        .find("000000000000:us-east-1", Lookup::Uid("u3"))
        .await
        .unwrap()
        .is_some());

    s.put_history("h1", "u1", 1, "{\"n\":1}").await.unwrap();
    s.put_history("h2", "u1", 2, "{\"n\":2}").await.unwrap();
    s.put_history("h1", "u1", 1, "{\"n\":3}").await.unwrap();
    assert_eq!(
        s.list_history("u1", 10).await.unwrap(),
        vec!["{\"n\":2}", "{\"n\":3}"]
    );
    assert!(s.delete("u1").await.unwrap());
    assert!(s.list_history("u1", 10).await.unwrap().is_empty());
    assert!(s.delete_meta("nope").await.is_ok());
}

/// Polls `f` `polls` times (letting SQLite's worker thread run in between), then drops it:
/// a request whose client went away mid-read.
async fn cancel_after<F: std::future::Future>(f: F, polls: usize) {
    let mut f = std::pin::pin!(f);
    for _ in 0..polls {
        let ready =
            std::future::poll_fn(|cx| std::task::Poll::Ready(f.as_mut().poll(cx).is_ready())).await;
        if ready {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_micros(20)).await;
    }
}

#[tokio::test]
async fn cancelled_reads_leave_no_snapshot_behind() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("db.sqlite"))
        .await
        .unwrap();
    let ns = "000000000000:us-east-1";
    s.insert(
        &row("u1", "a"),
        &[version("v1", 1, &["AWSCURRENT"], Some(b"ct1"))],
    )
    .await
    .unwrap();
    // Cancel reads at every point of their progress, on every pooled connection.
    for polls in 1..200 {
        cancel_after(s.list(ns), polls).await;
        cancel_after(s.find(ns, Lookup::Name("a")), polls).await;
        cancel_after(s.find_sealed(ns, Lookup::Name("a")), polls).await;
    }
    let mut next = row("u1", "a");
    next.revision = 2;
    s.update(&SecretUpdate {
        row: next,
        upsert_versions: vec![version("v2", 2, &["AWSCURRENT"], Some(b"ct2"))],
        delete_versions: vec![],
    })
    .await
    .unwrap();
    // Every connection of the read pool sees the write.
    for _ in 0..32 {
        let listed = s.list(ns).await.unwrap();
        assert_eq!(listed[0].row.revision, 2);
        let found = s.find(ns, Lookup::Name("a")).await.unwrap().unwrap();
        assert_eq!(found.row.revision, 2);
        assert_eq!(found.versions.len(), 2);
        let sealed = s.find_sealed(ns, Lookup::Uid("u1")).await.unwrap().unwrap();
        assert_eq!(sealed.values.len(), 2);
    }
}

#[tokio::test]
async fn find_sealed_reads_values_with_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("db.sqlite"))
        .await
        .unwrap();
    let ns = "000000000000:us-east-1";
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
    let sealed = s.find_sealed(ns, Lookup::Name("a")).await.unwrap().unwrap();
    assert_eq!(sealed.record.versions.len(), 3);
    assert_eq!(
        sealed.values,
        vec![
            ("v1".into(), b"ct1".to_vec()),
            ("v3".into(), b"ct3".to_vec())
        ]
    );
    assert!(s
        .find_sealed(ns, Lookup::Name("b"))
        .await
        .unwrap()
        .is_none());
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
async fn acknowledged_writes_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    {
        let s = std::sync::Arc::new(SqliteStore::open(&path).await.unwrap());
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
    }
    let s = SqliteStore::open(&path).await.unwrap();
    assert_eq!(s.list("000000000000:us-east-1").await.unwrap().len(), 200);
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
async fn page_all(s: &SqliteStore, base: &ListQuery, limit: i64) -> Vec<String> {
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

#[tokio::test]
async fn list_page_sorts_pages_and_narrows_in_the_query() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("db.sqlite"))
        .await
        .unwrap();
    let ns = "000000000000:us-east-1";
    let mut rows = Vec::new();
    for i in 0..40i64 {
        let name = format!(
            "{}/svc{:02}",
            ["prod", "dev", "prod-eu"][i as usize % 3],
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
    s.update(&SecretUpdate {
        row: deleted,
        upsert_versions: vec![],
        delete_versions: vec![],
    })
    .await
    .unwrap();

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
                    namespace: ns.into(),
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
                        page_all(&s, &q, limit).await,
                        expected,
                        "{order:?} {descending}"
                    );
                }
            }
        }
    }

    let q = |names: Vec<Vec<&str>>, tags: Vec<Vec<&str>>| ListQuery {
        namespace: ns.into(),
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
    let prod = page_all(&s, &q(vec![vec!["prod/"]], vec![]), 5).await;
    assert_eq!(prod.len(), 14);
    assert!(prod.iter().all(|n| n.starts_with("prod/")));
    let either = page_all(&s, &q(vec![vec!["prod/", "dev/"]], vec![]), 5).await;
    assert_eq!(either.len(), 27);
    let both = page_all(&s, &q(vec![vec!["prod"], vec!["prod-"]], vec![]), 5).await;
    assert_eq!(both.len(), 13);
    assert_eq!(
        page_all(&s, &q(vec![], vec![vec!["te"]]), 5).await.len(),
        20
    );
    assert_eq!(
        page_all(&s, &q(vec![], vec![vec!["env"]]), 5).await.len(),
        10
    );
    let team_prod = page_all(&s, &q(vec![vec!["prod/"]], vec![vec!["team"]]), 5).await;
    assert_eq!(team_prod.len(), 7);
    // Non-ASCII prefixes fall back to a substring comparison.
    assert!(page_all(&s, &q(vec![vec!["prodé"]], vec![]), 5)
        .await
        .is_empty());

    // Tags follow the document through updates and deletion.
    let mut retagged = rows[2].clone();
    retagged.doc = serde_json::json!({ "tags": [["owner", "x"]] }).to_string();
    retagged.revision = 2;
    s.update(&SecretUpdate {
        row: retagged,
        upsert_versions: vec![],
        delete_versions: vec![],
    })
    .await
    .unwrap();
    assert_eq!(
        page_all(&s, &q(vec![], vec![vec!["owner"]]), 5).await.len(),
        1
    );
    s.delete("u02").await.unwrap();
    assert!(page_all(&s, &q(vec![], vec![vec!["owner"]]), 5)
        .await
        .is_empty());
}

#[tokio::test]
async fn a_store_newer_than_the_binary_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    drop(SqliteStore::open(&path).await.unwrap());
    // What a newer binary leaves behind: a migration this one does not have.
    let url = format!("sqlite://{}", path.display());
    let mut conn = SqliteConnection::connect(&url).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, \
         execution_time) VALUES (9999, 'from the future', TRUE, x'00', 0)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    match SqliteStore::open(&path).await {
        Err(Error::NewerSchema { found, known }) => {
            assert_eq!(found, 9999);
            assert!(known >= 3);
        }
        other => panic!("expected NewerSchema, got {other:?}"),
    }
}

#[tokio::test]
async fn list_page_with_a_dense_name_prefix_keeps_the_order() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("db.sqlite"))
        .await
        .unwrap();
    let ns = "000000000000:us-east-1";
    // 1,100 secrets under one prefix (dense: scanned in creation order) and 3 under another
    // (sparse: found through the name index), names not in creation order.
    for i in 0..1103i64 {
        let name = if i % 400 == 7 {
            format!("s/{i:04}")
        } else {
            format!("d/{:04}", 5000 - i)
        };
        s.insert(&tagged(&format!("u{i:05}"), &name, i, &[]), &[])
            .await
            .unwrap();
    }
    let q = |prefix: &str| ListQuery {
        namespace: ns.into(),
        order: ListOrder::Created,
        descending: false,
        after: None,
        include_deleted: false,
        name_prefixes: vec![vec![prefix.into()]],
        tag_key_prefixes: vec![],
        limit: 0,
    };
    let dense = page_all(&s, &q("d/"), 100).await;
    assert_eq!(dense.len(), 1100);
    let expected: Vec<String> = (0..1103)
        .filter(|i| i % 400 != 7)
        .map(|i| format!("d/{:04}", 5000 - i))
        .collect();
    assert_eq!(dense, expected);
    assert_eq!(
        page_all(&s, &q("s/"), 100).await,
        vec!["s/0007", "s/0407", "s/0807"]
    );
}
