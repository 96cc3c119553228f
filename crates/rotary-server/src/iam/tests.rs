use std::path::{Path, PathBuf};
use std::sync::Arc;

use rotary_auth::policy::{evaluate, RequestContext};
use rotary_auth::{CredentialSource, PrincipalKind};
use rotary_crypto::{Keyring, MasterKey};
use rotary_store::SqliteStore;
use serde_json::{json, Value};

use super::*;

const ACCOUNT: &str = "123456789012";

fn allow(action: &str, resource: &str) -> String {
    json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": action, "Resource": resource}]
    })
    .to_string()
}

fn deny(action: &str, resource: &str) -> String {
    json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Deny", "Action": action, "Resource": resource}]
    })
    .to_string()
}

struct Env {
    dir: tempfile::TempDir,
    keyring: Arc<Keyring>,
    iam: Iam,
}

impl Env {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let keyring = Arc::new(Keyring::new(MasterKey::generate()));
        let iam = open(dir.path(), keyring.clone()).await;
        Env { dir, keyring, iam }
    }

    async fn reopen(self) -> Self {
        let Env { dir, keyring, iam } = self;
        drop(iam);
        let iam = open(dir.path(), keyring.clone()).await;
        Env { dir, keyring, iam }
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("db.sqlite")
    }

    async fn call(&self, op: &str, body: Value) -> Result<Value, ApiError> {
        let out = handle(&self.iam, op, body.to_string().as_bytes()).await?;
        Ok(serde_json::from_slice(&out).unwrap())
    }
}

async fn open(dir: &Path, keyring: Arc<Keyring>) -> Iam {
    let store = SqliteStore::open(&dir.join("db.sqlite")).await.unwrap();
    Iam::open(Arc::new(store), keyring, ACCOUNT).await.unwrap()
}

use rotary_wire::ApiError;

fn allowed(iam: &Iam, user: &str, action: &str, resource: &str) -> bool {
    let policies = iam.identity_policies(user).unwrap();
    let u = iam.user(user).unwrap();
    let cx = RequestContext::new(u.arn.clone(), ACCOUNT, action, resource);
    evaluate(policies.iter().map(|p| &**p), None, &cx).is_allowed()
}

#[tokio::test]
async fn user_create_get_list_delete() {
    let env = Env::new().await;
    let iam = &env.iam;
    let u = iam
        .create_user(
            "alice",
            None,
            vec![Tag {
                key: "team".into(),
                value: "a".into(),
            }],
        )
        .await
        .unwrap();
    assert_eq!(u.arn, format!("arn:aws:iam::{ACCOUNT}:user/alice"));
    assert_eq!(u.path, "/");
    assert!(
        u.user_id.starts_with("AIDA") && u.user_id.len() == 21,
        "{}",
        u.user_id
    );
    assert!(u
        .user_id
        .chars()
        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()));
    let b = iam
        .create_user("bob", Some("/eng/ops/"), vec![])
        .await
        .unwrap();
    assert_eq!(b.arn, format!("arn:aws:iam::{ACCOUNT}:user/eng/ops/bob"));

    // Names are unique without regard to case, as in IAM.
    let e = iam.create_user("Alice", None, vec![]).await.unwrap_err();
    assert!(matches!(e, IamError::EntityAlreadyExists(_)), "{e}");
    assert_eq!(iam.get_user("ALICE").unwrap().name, "alice");

    let names: Vec<String> = iam
        .list_users(None)
        .iter()
        .map(|u| u.name.clone())
        .collect();
    assert_eq!(names, ["alice", "bob"]);
    let eng: Vec<String> = iam
        .list_users(Some("/eng/"))
        .iter()
        .map(|u| u.name.clone())
        .collect();
    assert_eq!(eng, ["bob"]);

    iam.delete_user("bob").await.unwrap();
    assert!(matches!(
        iam.get_user("bob").unwrap_err(),
        IamError::NoSuchEntity(_)
    ));
    assert!(matches!(
        iam.delete_user("bob").await.unwrap_err(),
        IamError::NoSuchEntity(_)
    ));
    assert_eq!(iam.list_users(None).len(), 1);
}

#[tokio::test]
async fn name_path_and_tag_validation() {
    let env = Env::new().await;
    let long65 = "a".repeat(65);
    let long64 = "a".repeat(64);
    // (name, path, ok)
    let cases: &[(&str, Option<&str>, bool)] = &[
        ("ok_name+=,.@-1", None, true),
        (&long64, None, true),
        (&long65, None, false),
        ("", None, false),
        ("has space", None, false),
        ("slash/name", None, false),
        ("ünïcode", None, false),
        ("p1", Some("/"), true),
        ("p2", Some("/a/b/"), true),
        ("p3", Some("a/"), false),
        ("p4", Some("/a"), false),
        ("p5", Some("//"), false),
        ("p7", Some("/x/y//"), true),
        ("p6", Some("/a b/"), false),
    ];
    for (name, path, ok) in cases {
        let r = env.iam.create_user(name, *path, vec![]).await;
        assert_eq!(r.is_ok(), *ok, "{name:?} {path:?}: {r:?}");
        if let Err(e) = r {
            assert!(matches!(e, IamError::InvalidInput(_)), "{e}");
        }
    }
    let tag = |k: &str, v: &str| Tag {
        key: k.into(),
        value: v.into(),
    };
    let tag_cases: Vec<(Vec<Tag>, bool)> = vec![
        (vec![tag("team", "a"), tag("env", "")], true),
        (vec![tag("aws:thing", "x")], false),
        (vec![tag("AWS:thing", "x")], false),
        (vec![tag("", "x")], false),
        (vec![tag("k", &"v".repeat(257))], false),
        (vec![tag("k", "a"), tag("K", "b")], false),
        (vec![tag("bad*key", "x")], false),
        ((0..51).map(|i| tag(&format!("k{i}"), "v")).collect(), false),
    ];
    for (i, (tags, ok)) in tag_cases.into_iter().enumerate() {
        let r = env.iam.create_user(&format!("t{i}"), None, tags).await;
        assert_eq!(r.is_ok(), ok, "case {i}: {r:?}");
    }
}

#[tokio::test]
async fn tag_untag_user() {
    let env = Env::new().await;
    let iam = &env.iam;
    iam.create_user("alice", None, vec![]).await.unwrap();
    let t = |k: &str, v: &str| Tag {
        key: k.into(),
        value: v.into(),
    };
    iam.tag_user("alice", vec![t("team", "a"), t("env", "prod")])
        .await
        .unwrap();
    iam.tag_user("alice", vec![t("Team", "b")]).await.unwrap();
    assert_eq!(
        iam.user("alice").unwrap().tags,
        [t("Team", "b"), t("env", "prod")]
    );
    iam.untag_user("alice", &["TEAM".into(), "absent".into()])
        .await
        .unwrap();
    assert_eq!(iam.user("alice").unwrap().tags, [t("env", "prod")]);
    let many: Vec<Tag> = (0..50).map(|i| t(&format!("k{i}"), "v")).collect();
    let e = iam.tag_user("alice", many).await.unwrap_err();
    assert!(matches!(e, IamError::LimitExceeded(_)), "{e}");
    assert_eq!(iam.user("alice").unwrap().tags.len(), 1);
}

#[tokio::test]
async fn access_keys_limit_status_and_credentials() {
    let env = Env::new().await;
    let iam = &env.iam;
    iam.create_user("alice", None, vec![]).await.unwrap();
    let k1 = iam.create_access_key("alice").await.unwrap();
    let k2 = iam.create_access_key("alice").await.unwrap();
    for k in [&k1, &k2] {
        let id = &k.info.access_key_id;
        assert!(id.starts_with("AKIA") && id.len() == 20, "{id}");
        assert_eq!(k.secret_access_key.expose().len(), 40);
        assert_eq!(k.info.status, KeyStatus::Active);
        assert!(!format!("{k:?}").contains(k.secret_access_key.expose()));
    }
    let e = iam.create_access_key("alice").await.unwrap_err();
    assert!(matches!(e, IamError::LimitExceeded(_)), "{e}");
    assert_eq!(iam.list_access_keys("alice").unwrap().len(), 2);

    let akid = k1.info.access_key_id.clone();
    let c = iam.lookup(&akid).unwrap();
    assert_eq!(c.secret_access_key.expose(), k1.secret_access_key.expose());
    assert_eq!(
        c.principal.arn,
        format!("arn:aws:iam::{ACCOUNT}:user/alice")
    );
    assert_eq!(c.principal.access_key_id, akid);
    assert_eq!(c.principal.account_id, ACCOUNT);
    assert_eq!(
        c.principal.kind,
        PrincipalKind::User {
            name: "alice".into()
        }
    );
    assert!(c.session_token.is_none());

    iam.update_access_key(None, &akid, KeyStatus::Inactive)
        .await
        .unwrap();
    assert!(
        iam.lookup(&akid).is_none(),
        "an inactive key is no credential"
    );
    iam.update_access_key(Some("alice"), &akid, KeyStatus::Active)
        .await
        .unwrap();
    assert!(iam.lookup(&akid).is_some());
    let e = iam
        .update_access_key(Some("bob"), &akid, KeyStatus::Inactive)
        .await
        .unwrap_err();
    assert!(matches!(e, IamError::NoSuchEntity(_)), "{e}");

    // A user with keys cannot be deleted.
    let e = iam.delete_user("alice").await.unwrap_err();
    assert!(matches!(e, IamError::DeleteConflict(_)), "{e}");

    iam.delete_access_key(None, &akid).await.unwrap();
    assert!(iam.lookup(&akid).is_none());
    assert!(iam.lookup("AKIANOTAKEY000000000").is_none());
    iam.delete_access_key(Some("alice"), &k2.info.access_key_id)
        .await
        .unwrap();
    // The quota frees up with deletion.
    iam.create_access_key("alice").await.unwrap();
}

#[tokio::test]
async fn secret_only_in_create_answer_never_in_store() {
    let env = Env::new().await;
    env.call("CreateUser", json!({"UserName": "alice"}))
        .await
        .unwrap();
    let out = env
        .call("CreateAccessKey", json!({"UserName": "alice"}))
        .await
        .unwrap();
    let key = &out["AccessKey"];
    let secret = key["SecretAccessKey"].as_str().unwrap().to_owned();
    let akid = key["AccessKeyId"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 40);
    assert_eq!(key["Status"], "Active");
    assert_eq!(key["UserName"], "alice");

    // No other answer holds it.
    for (op, body) in [
        ("ListAccessKeys", json!({"UserName": "alice"})),
        ("GetUser", json!({"UserName": "alice"})),
        ("ListUsers", json!({})),
    ] {
        let text = env.call(op, body).await.unwrap().to_string();
        assert!(!text.contains(&secret), "{op} leaked the secret");
    }
    // Errors about the key don't either.
    let e = env
        .call("CreateAccessKey", json!({"UserName": "nobody"}))
        .await
        .unwrap_err();
    assert!(!e.message().contains(&secret));
    assert!(!format!("{:?}", env.iam).contains(&secret));

    // Another write so the WAL holds recent pages, then scan the database files.
    env.iam.note_key_used(&akid, 1_700_000_000_000);
    env.iam.flush_last_used().await.unwrap();
    let mut scanned = 0;
    let mut akid_seen = false;
    for suffix in ["", "-wal", "-shm"] {
        let mut p = env.db().into_os_string();
        p.push(suffix);
        if let Ok(bytes) = std::fs::read(&p) {
            scanned += bytes.len();
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "secret found in {p:?}"
            );
            akid_seen |= bytes.windows(akid.len()).any(|w| w == akid.as_bytes());
        }
    }
    assert!(scanned > 0);
    assert!(
        akid_seen,
        "the files should hold the key id (sanity check of the scan)"
    );

    // After reopening, the secret is unsealed and still verifies.
    let env = env.reopen().await;
    let c = env.iam.lookup(&akid).unwrap();
    assert_eq!(c.secret_access_key.expose(), secret);
}

#[tokio::test]
async fn sealed_secret_is_bound_to_its_key_id() {
    let env = Env::new().await;
    env.iam.create_user("alice", None, vec![]).await.unwrap();
    let k1 = env.iam.create_access_key("alice").await.unwrap();
    let k2 = env.iam.create_access_key("alice").await.unwrap();
    let store = SqliteStore::open(&env.db()).await.unwrap();
    let key1 = format!("{KEY_PREFIX}{}", k1.info.access_key_id);
    let key2 = format!("{KEY_PREFIX}{}", k2.info.access_key_id);
    let mut r1: Value =
        serde_json::from_slice(&store.get_meta(&key1).await.unwrap().unwrap()).unwrap();
    let r2: Value = serde_json::from_slice(&store.get_meta(&key2).await.unwrap().unwrap()).unwrap();
    // Swap in the other key's sealed secret: unsealing must fail.
    r1["SealedSecret"] = r2["SealedSecret"].clone();
    store
        .put_meta(&key1, &serde_json::to_vec(&r1).unwrap())
        .await
        .unwrap();
    let Env { dir, keyring, iam } = env;
    drop(iam);
    let store = SqliteStore::open(&dir.path().join("db.sqlite"))
        .await
        .unwrap();
    let e = Iam::open(Arc::new(store), keyring, ACCOUNT)
        .await
        .unwrap_err();
    assert!(matches!(e, IamError::Seal(_)), "{e}");
}

#[tokio::test]
async fn groups_members_and_delete_conflicts() {
    let env = Env::new().await;
    let iam = &env.iam;
    iam.create_user("alice", None, vec![]).await.unwrap();
    let g = iam.create_group("devs", None).await.unwrap();
    assert_eq!(g.arn, format!("arn:aws:iam::{ACCOUNT}:group/devs"));
    assert!(g.group_id.starts_with("AGPA"));
    assert!(matches!(
        iam.create_group("DEVS", None).await.unwrap_err(),
        IamError::EntityAlreadyExists(_)
    ));
    iam.create_group("ops", Some("/infra/")).await.unwrap();
    assert_eq!(
        iam.get_group("ops").unwrap().arn,
        format!("arn:aws:iam::{ACCOUNT}:group/infra/ops")
    );

    iam.add_user_to_group("devs", "ALICE").await.unwrap();
    iam.add_user_to_group("devs", "alice").await.unwrap(); // idempotent
    assert_eq!(iam.get_group("devs").unwrap().members, ["alice"]);
    let groups: Vec<String> = iam
        .groups_for_user("alice")
        .unwrap()
        .into_iter()
        .map(|g| g.name)
        .collect();
    assert_eq!(groups, ["devs"]);
    assert!(matches!(
        iam.add_user_to_group("devs", "nobody").await.unwrap_err(),
        IamError::NoSuchEntity(_)
    ));
    assert!(matches!(
        iam.add_user_to_group("nogroup", "alice").await.unwrap_err(),
        IamError::NoSuchEntity(_)
    ));

    assert!(matches!(
        iam.delete_user("alice").await.unwrap_err(),
        IamError::DeleteConflict(_)
    ));
    assert!(matches!(
        iam.delete_group("devs").await.unwrap_err(),
        IamError::DeleteConflict(_)
    ));
    iam.remove_user_from_group("devs", "alice").await.unwrap();
    assert!(matches!(
        iam.remove_user_from_group("devs", "alice")
            .await
            .unwrap_err(),
        IamError::NoSuchEntity(_)
    ));
    iam.put_group_policy("devs", "p", &allow("secretsmanager:*", "*"))
        .await
        .unwrap();
    assert!(matches!(
        iam.delete_group("devs").await.unwrap_err(),
        IamError::DeleteConflict(_)
    ));
    iam.delete_group_policy("devs", "p").await.unwrap();
    iam.delete_group("devs").await.unwrap();
    iam.delete_user("alice").await.unwrap();
    assert_eq!(iam.list_groups(None).len(), 1);
}

#[tokio::test]
async fn policies_compiled_and_combined_from_groups() {
    let env = Env::new().await;
    let iam = &env.iam;
    iam.create_user("alice", None, vec![]).await.unwrap();
    iam.create_group("readers", None).await.unwrap();
    iam.create_group("no-prod", None).await.unwrap();
    let read = "secretsmanager:GetSecretValue";
    let prod = "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf";
    let dev = "arn:aws:secretsmanager:us-east-1:123456789012:secret:dev/db-AbCdEf";

    assert_eq!(iam.identity_policies("alice").unwrap().len(), 0);
    assert!(iam.identity_policies("nobody").is_none());
    assert!(!allowed(iam, "alice", read, dev));

    iam.put_group_policy("readers", "read", &allow(read, "*"))
        .await
        .unwrap();
    // Not a member yet: nothing changes for alice.
    assert!(!allowed(iam, "alice", read, dev));
    iam.add_user_to_group("readers", "alice").await.unwrap();
    assert!(allowed(iam, "alice", read, dev));
    assert!(allowed(iam, "alice", read, prod));

    iam.add_user_to_group("no-prod", "alice").await.unwrap();
    iam.put_group_policy(
        "no-prod",
        "deny",
        &deny(
            "secretsmanager:*",
            "arn:aws:secretsmanager:*:*:secret:prod/*",
        ),
    )
    .await
    .unwrap();
    assert!(allowed(iam, "alice", read, dev));
    assert!(!allowed(iam, "alice", read, prod));

    iam.put_user_policy("alice", "own", &allow("secretsmanager:DescribeSecret", dev))
        .await
        .unwrap();
    assert_eq!(iam.identity_policies("alice").unwrap().len(), 3);
    assert!(allowed(iam, "alice", "secretsmanager:DescribeSecret", dev));

    // Replacing a policy under the same name replaces it.
    iam.put_user_policy("alice", "own", &allow("secretsmanager:ListSecrets", "*"))
        .await
        .unwrap();
    assert_eq!(iam.identity_policies("alice").unwrap().len(), 3);
    assert!(!allowed(iam, "alice", "secretsmanager:DescribeSecret", dev));
    assert_eq!(iam.list_user_policies("alice").unwrap(), ["own"]);
    assert_eq!(
        iam.get_user_policy("alice", "own").unwrap(),
        allow("secretsmanager:ListSecrets", "*")
    );

    iam.remove_user_from_group("no-prod", "alice")
        .await
        .unwrap();
    assert!(allowed(iam, "alice", read, prod));
    iam.delete_group_policy("readers", "read").await.unwrap();
    assert!(!allowed(iam, "alice", read, prod));
    assert_eq!(iam.list_group_policies("no-prod").unwrap(), ["deny"]);
    assert!(matches!(
        iam.get_user_policy("alice", "absent").unwrap_err(),
        IamError::NoSuchEntity(_)
    ));
    assert!(matches!(
        iam.delete_user_policy("alice", "absent").await.unwrap_err(),
        IamError::NoSuchEntity(_)
    ));
}

#[tokio::test]
async fn malformed_or_oversize_policy_changes_nothing() {
    let env = Env::new().await;
    let iam = &env.iam;
    iam.create_user("alice", None, vec![]).await.unwrap();
    iam.put_user_policy("alice", "p", &allow("secretsmanager:GetSecretValue", "*"))
        .await
        .unwrap();
    let big = allow("secretsmanager:GetSecretValue", &"x".repeat(2_100));
    let filler = allow(
        "secretsmanager:GetSecretValue",
        &format!("arn:aws:secretsmanager:*:*:secret:{}", "y".repeat(950)),
    );
    let with_principal = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"}]})
    .to_string();
    // (policy name, document, expected error)
    let cases: &[(&str, &str, &str)] = &[
        ("q", "not json", "MalformedPolicyDocument"),
        ("q", "{}", "MalformedPolicyDocument"),
        ("q", &with_principal, "MalformedPolicyDocument"),
        (
            "p",
            r#"{"Statement": [{"Effect": "Maybe", "Action": "*", "Resource": "*"}]}"#,
            "MalformedPolicyDocument",
        ),
        ("q", &big, "LimitExceeded"),
        ("bad name", &filler, "InvalidInput"),
        ("q", "", "InvalidInput"),
    ];
    for (name, doc, want) in cases {
        let e = iam.put_user_policy("alice", name, doc).await.unwrap_err();
        assert_eq!(e.aws_name(), *want, "{name} {doc}: {e}");
        assert_eq!(iam.list_user_policies("alice").unwrap(), ["p"]);
        assert_eq!(iam.identity_policies("alice").unwrap().len(), 1);
    }
    // Aggregate size: two policies that each fit but together exceed the user's 2,048.
    iam.put_user_policy("alice", "f1", &filler).await.unwrap();
    let e = iam
        .put_user_policy("alice", "f2", &filler)
        .await
        .unwrap_err();
    assert!(matches!(e, IamError::LimitExceeded(_)), "{e}");
    // Groups have the larger 5,120 quota.
    iam.create_group("g", None).await.unwrap();
    iam.put_group_policy("g", "f1", &filler).await.unwrap();
    iam.put_group_policy("g", "f2", &filler).await.unwrap();

    // The engine's message reaches the API.
    let e = env
        .call(
            "PutUserPolicy",
            json!({"UserName": "alice", "PolicyName": "x", "PolicyDocument": with_principal}),
        )
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        rotary_wire::ErrorCode::MalformedPolicyDocumentException
    );
    assert!(e.message().contains("Principal"), "{}", e.message());
    let env = env.reopen().await;
    assert_eq!(env.iam.list_user_policies("alice").unwrap(), ["f1", "p"]);
}

#[tokio::test]
async fn reopen_loads_everything() {
    let env = Env::new().await;
    let iam = &env.iam;
    let alice = iam
        .create_user(
            "alice",
            Some("/team/"),
            vec![Tag {
                key: "team".into(),
                value: "a".into(),
            }],
        )
        .await
        .unwrap();
    let k = iam.create_access_key("alice").await.unwrap();
    let k2 = iam.create_access_key("alice").await.unwrap();
    let akid = k.info.access_key_id.clone();
    iam.update_access_key(None, &k2.info.access_key_id, KeyStatus::Inactive)
        .await
        .unwrap();
    iam.create_group("readers", None).await.unwrap();
    iam.add_user_to_group("readers", "alice").await.unwrap();
    iam.put_group_policy(
        "readers",
        "read",
        &allow("secretsmanager:GetSecretValue", "*"),
    )
    .await
    .unwrap();
    iam.put_user_policy("alice", "own", &allow("secretsmanager:ListSecrets", "*"))
        .await
        .unwrap();
    iam.note_key_used(&akid, 1_700_000_000_000);
    iam.note_key_used(&akid, 1_600_000_000_000); // older: ignored
    assert_eq!(
        iam.list_access_keys("alice").unwrap()[0]
            .last_used_ms
            .or(iam.list_access_keys("alice").unwrap()[1].last_used_ms),
        Some(1_700_000_000_000)
    );
    assert_eq!(iam.flush_last_used().await.unwrap(), 1);
    assert_eq!(
        iam.flush_last_used().await.unwrap(),
        0,
        "nothing new to write"
    );

    let env = env.reopen().await;
    let iam = &env.iam;
    assert_eq!(*iam.user("alice").unwrap(), *alice);
    assert_eq!(iam.identity_policies("alice").unwrap().len(), 2);
    assert!(allowed(iam, "alice", "secretsmanager:GetSecretValue", "*"));
    assert!(iam.lookup(&akid).is_some());
    assert!(iam.lookup(&k2.info.access_key_id).is_none());
    let keys = iam.list_access_keys("alice").unwrap();
    assert_eq!(keys.len(), 2);
    let used = keys.iter().find(|x| x.access_key_id == akid).unwrap();
    assert_eq!(used.last_used_ms, Some(1_700_000_000_000));
    assert_eq!(iam.get_group("readers").unwrap().members, ["alice"]);
}

#[tokio::test]
async fn api_shapes_and_errors() {
    let env = Env::new().await;
    let u = env
        .call(
            "CreateUser",
            json!({"UserName": "alice", "Tags": [{"Key": "team", "Value": "a"}]}),
        )
        .await
        .unwrap();
    assert_eq!(u["User"]["UserName"], "alice");
    assert_eq!(
        u["User"]["Arn"],
        format!("arn:aws:iam::{ACCOUNT}:user/alice")
    );
    assert_eq!(u["User"]["Path"], "/");
    assert!(u["User"]["CreateDate"].is_number());
    assert_eq!(u["User"]["Tags"][0]["Key"], "team");

    // (op, body, error code)
    let cases: &[(&str, Value, rotary_wire::ErrorCode)] = &[
        (
            "CreateUser",
            json!({"UserName": "alice"}),
            ErrorCode::ResourceExistsException,
        ),
        (
            "CreateUser",
            json!({}),
            ErrorCode::InvalidParameterException,
        ),
        (
            "CreateUser",
            json!({"UserName": "a b"}),
            ErrorCode::InvalidParameterException,
        ),
        (
            "CreateUser",
            json!({"UserName": 5}),
            ErrorCode::SerializationException,
        ),
        (
            "GetUser",
            json!({"UserName": "nobody"}),
            ErrorCode::ResourceNotFoundException,
        ),
        (
            "GetGroup",
            json!({"GroupName": "nogroup"}),
            ErrorCode::ResourceNotFoundException,
        ),
        (
            "UpdateAccessKey",
            json!({"AccessKeyId": "AKIAX", "Status": "On"}),
            ErrorCode::InvalidParameterException,
        ),
        (
            "DeleteAccessKey",
            json!({"AccessKeyId": "AKIAX"}),
            ErrorCode::ResourceNotFoundException,
        ),
        (
            "ListUsers",
            json!({"MaxItems": 0}),
            ErrorCode::InvalidParameterException,
        ),
        ("Nope", json!({}), ErrorCode::UnknownOperationException),
    ];
    use rotary_wire::ErrorCode;
    for (op, body, code) in cases {
        let e = env.call(op, body.clone()).await.unwrap_err();
        assert_eq!(e.code(), *code, "{op} {body}: {}", e.message());
    }

    for i in 0..5 {
        env.call("CreateUser", json!({"UserName": format!("u{i}")}))
            .await
            .unwrap();
    }
    let p1 = env.call("ListUsers", json!({"MaxItems": 4})).await.unwrap();
    assert_eq!(p1["Users"].as_array().unwrap().len(), 4);
    assert_eq!(p1["IsTruncated"], true);
    let p2 = env
        .call("ListUsers", json!({"MaxItems": 4, "Marker": p1["Marker"]}))
        .await
        .unwrap();
    assert_eq!(p2["Users"].as_array().unwrap().len(), 2);
    assert_eq!(p2["IsTruncated"], false);

    env.call("CreateGroup", json!({"GroupName": "devs"}))
        .await
        .unwrap();
    env.call(
        "AddUserToGroup",
        json!({"GroupName": "devs", "UserName": "alice"}),
    )
    .await
    .unwrap();
    let g = env
        .call("GetGroup", json!({"GroupName": "devs"}))
        .await
        .unwrap();
    assert_eq!(g["Users"][0]["UserName"], "alice");
    let doc = allow("secretsmanager:GetSecretValue", "*");
    env.call(
        "PutUserPolicy",
        json!({"UserName": "alice", "PolicyName": "p", "PolicyDocument": doc}),
    )
    .await
    .unwrap();
    let got = env
        .call(
            "GetUserPolicy",
            json!({"UserName": "alice", "PolicyName": "p"}),
        )
        .await
        .unwrap();
    assert_eq!(got["PolicyDocument"], doc);
    let names = env
        .call("ListUserPolicies", json!({"UserName": "alice"}))
        .await
        .unwrap();
    assert_eq!(names["PolicyNames"], json!(["p"]));

    let k = env
        .call("CreateAccessKey", json!({"UserName": "alice"}))
        .await
        .unwrap();
    let akid = k["AccessKey"]["AccessKeyId"].as_str().unwrap();
    env.call(
        "UpdateAccessKey",
        json!({"AccessKeyId": akid, "Status": "Inactive"}),
    )
    .await
    .unwrap();
    let l = env
        .call("ListAccessKeys", json!({"UserName": "alice"}))
        .await
        .unwrap();
    assert_eq!(l["AccessKeyMetadata"][0]["Status"], "Inactive");
    assert!(l["AccessKeyMetadata"][0].get("SecretAccessKey").is_none());
}

#[tokio::test]
async fn resource_arns() {
    let env = Env::new().await;
    env.iam
        .create_user("alice", Some("/team/"), vec![])
        .await
        .unwrap();
    let k = env.iam.create_access_key("alice").await.unwrap();
    env.iam.create_group("devs", None).await.unwrap();
    let user = format!("arn:aws:iam::{ACCOUNT}:user/team/alice");
    let group = format!("arn:aws:iam::{ACCOUNT}:group/devs");
    let cases: Vec<(&str, Value, String)> = vec![
        ("GetUser", json!({"UserName": "alice"}), user.clone()),
        (
            "CreateUser",
            json!({"UserName": "bob", "Path": "/x/"}),
            format!("arn:aws:iam::{ACCOUNT}:user/x/bob"),
        ),
        ("PutUserPolicy", json!({"UserName": "ALICE"}), user.clone()),
        (
            "CreateAccessKey",
            json!({"UserName": "alice"}),
            user.clone(),
        ),
        (
            "DeleteAccessKey",
            json!({"AccessKeyId": k.info.access_key_id}),
            user.clone(),
        ),
        (
            "UpdateAccessKey",
            json!({"AccessKeyId": "AKIAUNKNOWN"}),
            "*".into(),
        ),
        (
            "AddUserToGroup",
            json!({"GroupName": "devs", "UserName": "alice"}),
            group.clone(),
        ),
        (
            "PutGroupPolicy",
            json!({"GroupName": "devs"}),
            group.clone(),
        ),
        ("ListUsers", json!({}), "*".into()),
        ("ListGroups", json!({}), "*".into()),
        ("GetUser", json!({}), "*".into()),
    ];
    for (op, body, want) in cases {
        assert_eq!(
            env.iam.resource_arn(op, body.to_string().as_bytes()),
            want,
            "{op} {body}"
        );
    }
    assert_eq!(env.iam.resource_arn("GetUser", b"not json"), "*");
    for op in OPERATIONS {
        // Every listed operation is handled (never UnknownOperation).
        let e = handle(&env.iam, op, b"{}").await;
        if let Err(e) = e {
            assert_ne!(
                e.code(),
                rotary_wire::ErrorCode::UnknownOperationException,
                "{op}"
            );
        }
    }
}

#[tokio::test]
async fn concurrent_key_creation_respects_the_limit() {
    let env = Env::new().await;
    env.iam.create_user("alice", None, vec![]).await.unwrap();
    let iam = Arc::new(env.iam);
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let iam = iam.clone();
            tokio::spawn(async move { iam.create_access_key("alice").await })
        })
        .collect();
    let mut created = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => created += 1,
            Err(e) => assert!(matches!(e, IamError::LimitExceeded(_)), "{e}"),
        }
    }
    assert_eq!(created, 2);
    assert_eq!(iam.list_access_keys("alice").unwrap().len(), 2);
}

#[tokio::test]
async fn last_used_noted_in_memory_and_flushed_by_the_task() {
    let env = Env::new().await;
    env.iam.create_user("alice", None, vec![]).await.unwrap();
    let k = env.iam.create_access_key("alice").await.unwrap();
    let akid = k.info.access_key_id.clone();
    let Env { dir, keyring, iam } = env;
    let iam = Arc::new(iam);
    // Unknown keys are ignored.
    iam.note_key_used("AKIAUNKNOWN", 5);
    iam.note_key_used(&akid, 1_700_000_000_000);
    assert_eq!(
        iam.list_access_keys("alice").unwrap()[0].last_used_ms,
        Some(1_700_000_000_000)
    );
    let task = Iam::spawn_last_used_flusher(&iam, std::time::Duration::from_millis(20));
    let store = SqliteStore::open(&dir.path().join("db.sqlite"))
        .await
        .unwrap();
    let key = format!("{KEY_PREFIX}{akid}");
    let mut flushed = false;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let rec: Value =
            serde_json::from_slice(&store.get_meta(&key).await.unwrap().unwrap()).unwrap();
        if rec["LastUsedDate"] == json!(1_700_000_000_000i64) {
            flushed = true;
            break;
        }
    }
    assert!(flushed, "the flusher wrote the last use");
    drop(iam);
    // The task ends once the Iam is gone.
    tokio::time::timeout(std::time::Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
    let _ = keyring;
}
