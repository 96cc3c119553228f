//! The AWS SDK for Rust against Rotary.

use std::collections::HashSet;

use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use aws_sdk_secretsmanager::primitives::Blob;
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType, Tag};

use crate::harness::Server;

fn code<E: ProvideErrorMetadata>(e: &E) -> (String, String) {
    (
        e.code().unwrap_or_default().to_owned(),
        e.message().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn secret_lifecycle_with_the_rust_sdk() {
    let server = Server::start();
    let c = server.client();
    let created = c
        .create_secret()
        .name("app/db")
        .secret_string(r#"{"password":"first"}"#)
        .description("the app database")
        .tags(Tag::builder().key("env").value("prod").build())
        .send()
        .await
        .unwrap();
    let arn = created.arn().unwrap().to_owned();
    assert!(arn.starts_with("arn:aws:secretsmanager:us-east-1:000000000000:secret:app/db-"));
    assert_eq!(
        arn.len(),
        "arn:aws:secretsmanager:us-east-1:000000000000:secret:app/db-".len() + 6
    );
    let v1 = created.version_id().unwrap().to_owned();

    // Name, full ARN and partial ARN all find it.
    for id in [&"app/db".to_owned(), &arn, &arn[..arn.len() - 7].to_owned()] {
        let got = c.get_secret_value().secret_id(id).send().await.unwrap();
        assert_eq!(got.secret_string(), Some(r#"{"password":"first"}"#));
        assert_eq!(got.version_stages(), ["AWSCURRENT"]);
    }

    let put = c
        .put_secret_value()
        .secret_id("app/db")
        .secret_string("second")
        .send()
        .await
        .unwrap();
    let v2 = put.version_id().unwrap().to_owned();
    let d = c.describe_secret().secret_id(&arn).send().await.unwrap();
    let stages = d.version_ids_to_stages().unwrap();
    assert_eq!(stages[&v1], ["AWSPREVIOUS"]);
    assert_eq!(stages[&v2], ["AWSCURRENT"]);
    assert_eq!(d.description(), Some("the app database"));
    assert_eq!(d.tags()[0].key(), Some("env"));
    assert!(d.rotation_enabled().is_none());
    let prev = c
        .get_secret_value()
        .secret_id("app/db")
        .version_stage("AWSPREVIOUS")
        .send()
        .await
        .unwrap();
    assert_eq!(prev.secret_string(), Some(r#"{"password":"first"}"#));

    // Binary values round-trip byte for byte.
    c.create_secret()
        .name("app/bin")
        .secret_binary(Blob::new(vec![0u8, 1, 2, 0xff]))
        .send()
        .await
        .unwrap();
    let b = c
        .get_secret_value()
        .secret_id("app/bin")
        .send()
        .await
        .unwrap();
    assert_eq!(b.secret_binary().unwrap().as_ref(), &[0u8, 1, 2, 0xff]);
    assert!(b.secret_string().is_none());

    let listed = c
        .list_secrets()
        .filters(
            Filter::builder()
                .key(FilterNameStringType::TagKey)
                .values("env")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let names: Vec<_> = listed
        .secret_list()
        .iter()
        .filter_map(|s| s.name())
        .collect();
    assert_eq!(names, ["app/db"]);

    let del = c
        .delete_secret()
        .secret_id("app/db")
        .recovery_window_in_days(7)
        .send()
        .await
        .unwrap();
    assert!(del.deletion_date().is_some());
    let e = c
        .get_secret_value()
        .secret_id("app/db")
        .send()
        .await
        .unwrap_err();
    let e = e.into_service_error();
    assert!(e.is_invalid_request_exception());
    assert_eq!(
        code(&e).1,
        "You can't perform this operation on the secret because it was marked for deletion."
    );
    c.restore_secret().secret_id("app/db").send().await.unwrap();
    let got = c
        .get_secret_value()
        .secret_id("app/db")
        .send()
        .await
        .unwrap();
    assert_eq!(got.secret_string(), Some("second"));

    c.delete_secret()
        .secret_id("app/db")
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
    let e = c
        .describe_secret()
        .secret_id("app/db")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_resource_not_found_exception());
    assert_eq!(
        code(&e).1,
        "Secrets Manager can't find the specified secret."
    );

    // Re-created with the same name: a new ARN.
    let again = c
        .create_secret()
        .name("app/db")
        .secret_string("x")
        .send()
        .await
        .unwrap();
    assert_ne!(again.arn().unwrap(), arn);
}

#[tokio::test]
async fn tokens_are_idempotent_and_conflicts_are_refused() {
    let server = Server::start();
    let c = server.client();
    let token = "11111111-2222-3333-4444-555555555555";
    let first = c
        .create_secret()
        .name("tok")
        .secret_string("v")
        .client_request_token(token)
        .send()
        .await
        .unwrap();
    let replay = c
        .create_secret()
        .name("tok")
        .secret_string("v")
        .client_request_token(token)
        .send()
        .await
        .unwrap();
    assert_eq!(first.arn(), replay.arn());
    assert_eq!(replay.version_id(), Some(token));
    let e = c
        .create_secret()
        .name("tok")
        .secret_string("other")
        .client_request_token(token)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_resource_exists_exception());
    assert_eq!(
        code(&e).1,
        format!(
            "You can't use ClientRequestToken {token} because that value is already in use for a version of secret {}.",
            first.arn().unwrap()
        )
    );
    let put = c
        .put_secret_value()
        .secret_id("tok")
        .secret_string("v")
        .client_request_token(token)
        .send()
        .await
        .unwrap();
    assert_eq!(put.version_stages(), ["AWSCURRENT"]);
    let versions = c
        .list_secret_version_ids()
        .secret_id("tok")
        .include_deprecated(true)
        .send()
        .await
        .unwrap();
    assert_eq!(versions.versions().len(), 1, "a replay creates no version");
}

#[tokio::test]
async fn concurrent_writers_leave_exactly_one_current_version() {
    let server = Server::start();
    let c = server.client();
    c.create_secret()
        .name("busy")
        .secret_string("0")
        .send()
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            c.put_secret_value()
                .secret_id("busy")
                .secret_string(format!("v{i}"))
                .send()
                .await
                .unwrap()
        }));
    }
    let mut ids = HashSet::new();
    for t in tasks {
        ids.insert(t.await.unwrap().version_id().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 40);
    let all = c
        .list_secret_version_ids()
        .secret_id("busy")
        .include_deprecated(true)
        .send()
        .await
        .unwrap();
    assert_eq!(all.versions().len(), 41);
    let current: Vec<_> = all
        .versions()
        .iter()
        .filter(|v| v.version_stages().contains(&"AWSCURRENT".to_owned()))
        .collect();
    let previous: Vec<_> = all
        .versions()
        .iter()
        .filter(|v| v.version_stages().contains(&"AWSPREVIOUS".to_owned()))
        .collect();
    assert_eq!(current.len(), 1);
    assert_eq!(previous.len(), 1);
}

#[tokio::test]
async fn wrong_keys_are_refused_with_aws_errors() {
    let server = Server::start();
    let unknown = server.client_with_keys("AKIANOTKNOWN00000000", "x");
    let e = unknown
        .list_secrets()
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(code(&e).0, "UnrecognizedClientException");
    let wrong = server.client_with_keys(crate::harness::ACCESS_KEY, "not-the-secret");
    let e = wrong
        .create_secret()
        .name("nope")
        .secret_string("x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e.into_service_error()).0, "InvalidSignatureException");
    // Nothing was created.
    let list = server.client().list_secrets().send().await.unwrap();
    assert!(list.secret_list().is_empty());
}

#[tokio::test]
async fn acknowledged_writes_survive_sigkill() {
    let mut server = Server::start();
    let c = server.client();
    for i in 0..30 {
        c.create_secret()
            .name(format!("dur/{i}"))
            .secret_string(format!("value-{i}"))
            .send()
            .await
            .unwrap();
    }
    for i in 0..30 {
        c.put_secret_value()
            .secret_id(format!("dur/{i}"))
            .secret_string(format!("value-{i}-b"))
            .send()
            .await
            .unwrap();
    }
    server.kill_and_restart();
    let c = server.client();
    for i in 0..30 {
        let got = c
            .get_secret_value()
            .secret_id(format!("dur/{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(got.secret_string(), Some(format!("value-{i}-b").as_str()));
        let prev = c
            .get_secret_value()
            .secret_id(format!("dur/{i}"))
            .version_stage("AWSPREVIOUS")
            .send()
            .await
            .unwrap();
        assert_eq!(prev.secret_string(), Some(format!("value-{i}").as_str()));
    }
}

#[tokio::test]
async fn staging_labels_move_as_aws_moves_them() {
    let server = Server::start();
    let c = server.client();
    let v1 = c
        .create_secret()
        .name("st")
        .secret_string("1")
        .send()
        .await
        .unwrap();
    let v1 = v1.version_id().unwrap().to_owned();
    let v2 = c
        .put_secret_value()
        .secret_id("st")
        .secret_string("2")
        .version_stages("AWSPENDING")
        .send()
        .await
        .unwrap();
    assert_eq!(v2.version_stages(), ["AWSPENDING"]);
    let v2 = v2.version_id().unwrap().to_owned();
    let e = c
        .update_secret_version_stage()
        .secret_id("st")
        .version_stage("AWSCURRENT")
        .move_to_version_id(&v2)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(e.is_invalid_parameter_exception());
    assert_eq!(
        code(&e).1,
        format!("The parameter RemoveFromVersionId can't be empty. Staging label AWSCURRENT is currently attached to version {v1}, so you must explicitly reference that version in RemoveFromVersionId.")
    );
    c.update_secret_version_stage()
        .secret_id("st")
        .version_stage("AWSCURRENT")
        .move_to_version_id(&v2)
        .remove_from_version_id(&v1)
        .send()
        .await
        .unwrap();
    let d = c.describe_secret().secret_id("st").send().await.unwrap();
    let m = d.version_ids_to_stages().unwrap();
    assert_eq!(m[&v1], ["AWSPREVIOUS"]);
    assert_eq!(m[&v2], ["AWSCURRENT", "AWSPENDING"]);
}

fn files_under(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[tokio::test]
async fn no_plaintext_value_reaches_the_data_dir_or_the_log() {
    let mut server = Server::start();
    let c = server.client();
    let canaries: Vec<String> = (0..10)
        .map(|i| format!("canary-{}-{i}", uuid_like()))
        .collect();
    for (i, v) in canaries.iter().enumerate() {
        c.create_secret()
            .name(format!("leak/{i}"))
            .secret_string(v)
            .send()
            .await
            .unwrap();
        c.put_secret_value()
            .secret_id(format!("leak/{i}"))
            .secret_binary(Blob::new(format!("bin-{v}").into_bytes()))
            .send()
            .await
            .unwrap();
        // A conflicting token reuse puts the value in a request that fails.
        let _ = c
            .create_secret()
            .name(format!("leak/{i}"))
            .secret_string(format!("other-{v}"))
            .client_request_token("abcdefabcdefabcdefabcdefabcdefabcdef")
            .send()
            .await;
        c.get_secret_value()
            .secret_id(format!("leak/{i}"))
            .version_stage("AWSPREVIOUS")
            .send()
            .await
            .unwrap();
    }
    // SIGKILL leaves the WAL in place: scan it too.
    server.kill_and_restart();
    let mut files = Vec::new();
    files_under(server.data_dir(), &mut files);
    assert!(files.iter().any(|f| f.ends_with("rotary.db")));
    assert!(files.iter().any(|f| f.ends_with("server.log")));
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        for v in &canaries {
            let found = bytes.windows(v.len()).any(|w| w == v.as_bytes());
            assert!(!found, "plaintext of a secret found in {}", f.display());
        }
    }
}

fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    #[expect(clippy::disallowed_methods, reason = "only a seed for a unique name")]
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{n:x}")
}

#[tokio::test]
async fn rotation_with_the_built_in_generic_password() {
    use aws_sdk_secretsmanager::types::RotationRulesType;
    let server = Server::start();
    let c = server.client();
    let created = c
        .create_secret()
        .name("rot")
        .secret_string(r#"{"username":"app","password":"old-password"}"#)
        .send()
        .await
        .unwrap();
    let old = created.version_id().unwrap().to_owned();
    let rotated = c
        .rotate_secret()
        .secret_id("rot")
        .rotation_lambda_arn(
            "arn:aws:lambda:us-east-1:000000000000:function:rotary-generic-password",
        )
        .rotation_rules(
            RotationRulesType::builder()
                .automatically_after_days(30)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let new = rotated.version_id().unwrap().to_owned();
    let mut done = false;
    for _ in 0..200 {
        let d = c.describe_secret().secret_id("rot").send().await.unwrap();
        let m = d.version_ids_to_stages().cloned().unwrap_or_default();
        if m.get(&new).is_some_and(|s| s == &["AWSCURRENT".to_owned()]) {
            assert_eq!(m[&old], ["AWSPREVIOUS"]);
            assert_eq!(m.len(), 2);
            assert_eq!(d.rotation_enabled(), Some(true));
            assert!(d.last_rotated_date().is_some());
            assert!(d.next_rotation_date().is_some());
            assert_eq!(
                d.rotation_rules().unwrap().automatically_after_days(),
                Some(30)
            );
            done = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(done, "rotation did not complete");
    let v = c.get_secret_value().secret_id("rot").send().await.unwrap();
    let json: serde_json::Value = serde_json::from_str(v.secret_string().unwrap()).unwrap();
    assert_eq!(json["username"], "app");
    let pw = json["password"].as_str().unwrap();
    assert_eq!(pw.len(), 32);
    assert_ne!(pw, "old-password");

    // CancelRotateSecret keeps the function and rules, turns rotation off.
    let cancel = c
        .cancel_rotate_secret()
        .secret_id("rot")
        .send()
        .await
        .unwrap();
    assert!(cancel.version_id().is_none());
    let d = c.describe_secret().secret_id("rot").send().await.unwrap();
    assert_eq!(d.rotation_enabled(), Some(false));
    assert!(d.rotation_lambda_arn().is_some());
    assert!(d.next_rotation_date().is_none());
}
