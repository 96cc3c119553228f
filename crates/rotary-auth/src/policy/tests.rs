//! Table-driven tests of the policy engine: every operator and qualifier, missing keys,
//! variables, wildcards, evaluation order, AWS's Secrets Manager example policies, parse
//! errors, public-policy checks and a no-panic property.

use std::net::IpAddr;

use proptest::prelude::*;

use super::*;

const ACCT: &str = "123456789012";
const ALICE: &str = "arn:aws:iam::123456789012:user/alice";
const BOB: &str = "arn:aws:iam::123456789012:user/bob";
const ROOT: &str = "arn:aws:iam::123456789012:root";
const SECRET: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf";
const GET: &str = "secretsmanager:GetSecretValue";
const BIG: usize = 100_000;

fn identity(json: &str) -> Policy {
    match Policy::parse(json, PolicyKind::Identity, BIG) {
        Ok(p) => p,
        Err(e) => panic!("identity policy refused: {e}\n{json}"),
    }
}

fn resource(json: &str) -> Policy {
    match Policy::parse(json, PolicyKind::Resource, BIG) {
        Ok(p) => p,
        Err(e) => panic!("resource policy refused: {e}\n{json}"),
    }
}

fn ctx_for(principal: &str, action: &str, res: &str) -> RequestContext {
    let name = principal.rsplit('/').next().unwrap_or("");
    RequestContext::new(principal, ACCT, action, res)
        .with_username(name)
        .with_userid(format!("AIDA{}", name.to_uppercase()))
}

fn ctx(action: &str, res: &str) -> RequestContext {
    ctx_for(ALICE, action, res)
}

fn outcome(ids: &[&Policy], res: Option<&Policy>, c: &RequestContext) -> Outcome {
    evaluate(ids.iter().copied(), res, c).outcome
}

fn allowed(ids: &[&Policy], c: &RequestContext) -> bool {
    outcome(ids, None, c) == Outcome::Allow
}

// ---------------------------------------------------------------- conditions

/// One condition row: operator, key, policy values (JSON), request values (None = key
/// missing), expected "the Allow statement applies".
type Row = (
    &'static str,
    &'static str,
    &'static str,
    Option<&'static [&'static str]>,
    bool,
);

#[rustfmt::skip]
const CONDITION_ROWS: &[Row] = &[
    // String operators
    ("StringEquals", "secretsmanager:Name", r#""abc""#, Some(&["abc"]), true),
    ("StringEquals", "secretsmanager:Name", r#""abc""#, Some(&["ABC"]), false),
    ("StringEquals", "secretsmanager:Name", r#""abc""#, None, false),
    ("StringEquals", "secretsmanager:Name", r#"["abc","def"]"#, Some(&["def"]), true),
    ("StringEquals", "secretsmanager:Name", r#""a*""#, Some(&["abc"]), false),
    ("StringEquals", "secretsmanager:Name", r#""a*""#, Some(&["a*"]), true),
    ("StringNotEquals", "secretsmanager:Name", r#"["a","b"]"#, Some(&["a"]), false),
    ("StringNotEquals", "secretsmanager:Name", r#"["a","b"]"#, Some(&["c"]), true),
    ("StringNotEquals", "secretsmanager:Name", r#"["a","b"]"#, None, true),
    ("StringEqualsIgnoreCase", "secretsmanager:Name", r#""AbC""#, Some(&["aBc"]), true),
    ("StringEqualsIgnoreCase", "secretsmanager:Name", r#""ÉTÉ""#, Some(&["été"]), true),
    ("StringEqualsIgnoreCase", "secretsmanager:Name", r#""abc""#, Some(&["abd"]), false),
    ("StringNotEqualsIgnoreCase", "secretsmanager:Name", r#""abc""#, Some(&["ABC"]), false),
    ("StringNotEqualsIgnoreCase", "secretsmanager:Name", r#""abc""#, Some(&["x"]), true),
    ("StringNotEqualsIgnoreCase", "secretsmanager:Name", r#""abc""#, None, true),
    ("StringLike", "secretsmanager:Name", r#""prod/*""#, Some(&["prod/db"]), true),
    ("StringLike", "secretsmanager:Name", r#""prod/*""#, Some(&["dev/db"]), false),
    ("StringLike", "secretsmanager:Name", r#""a?c""#, Some(&["abc"]), true),
    ("StringLike", "secretsmanager:Name", r#""a?c""#, Some(&["abbc"]), false),
    ("StringLike", "secretsmanager:Name", r#""prod/*""#, None, false),
    ("StringNotLike", "secretsmanager:Name", r#""prod/*""#, Some(&["dev/x"]), true),
    ("StringNotLike", "secretsmanager:Name", r#""prod/*""#, Some(&["prod/x"]), false),
    ("StringNotLike", "secretsmanager:Name", r#""prod/*""#, None, true),
    ("StringEqualsIfExists", "secretsmanager:Name", r#""a""#, None, true),
    ("StringEqualsIfExists", "secretsmanager:Name", r#""a""#, Some(&["b"]), false),
    ("StringEqualsIfExists", "secretsmanager:Name", r#""a""#, Some(&["a"]), true),
    ("StringNotEqualsIfExists", "secretsmanager:Name", r#""a""#, None, true),
    ("StringNotEqualsIfExists", "secretsmanager:Name", r#""a""#, Some(&["a"]), false),
    ("StringLikeIfExists", "secretsmanager:Name", r#""p*""#, None, true),
    // Operators and keys are case-insensitive; tag keys too.
    ("stringequals", "SECRETSMANAGER:NAME", r#""abc""#, Some(&["abc"]), true),
    // Numeric operators
    ("NumericEquals", "secretsmanager:RecoveryWindowInDays", "7", Some(&["7"]), true),
    ("NumericEquals", "secretsmanager:RecoveryWindowInDays", r#""7""#, Some(&["7.0"]), true),
    ("NumericEquals", "secretsmanager:RecoveryWindowInDays", "7", Some(&["8"]), false),
    ("NumericEquals", "secretsmanager:RecoveryWindowInDays", "7", Some(&["x"]), false),
    ("NumericEquals", "secretsmanager:RecoveryWindowInDays", "7", None, false),
    ("NumericNotEquals", "secretsmanager:RecoveryWindowInDays", "7", Some(&["7"]), false),
    ("NumericNotEquals", "secretsmanager:RecoveryWindowInDays", "7", Some(&["8"]), true),
    ("NumericNotEquals", "secretsmanager:RecoveryWindowInDays", "7", None, true),
    ("NumericLessThan", "secretsmanager:RecoveryWindowInDays", "30", Some(&["7"]), true),
    ("NumericLessThan", "secretsmanager:RecoveryWindowInDays", "30", Some(&["30"]), false),
    ("NumericLessThanEquals", "secretsmanager:RecoveryWindowInDays", "30", Some(&["30"]), true),
    ("NumericLessThanEquals", "secretsmanager:RecoveryWindowInDays", "30", Some(&["31"]), false),
    ("NumericGreaterThan", "secretsmanager:RecoveryWindowInDays", "7", Some(&["8"]), true),
    ("NumericGreaterThan", "secretsmanager:RecoveryWindowInDays", "7", Some(&["7"]), false),
    ("NumericGreaterThanEquals", "secretsmanager:RecoveryWindowInDays", "7", Some(&["7"]), true),
    ("NumericGreaterThanEquals", "secretsmanager:RecoveryWindowInDays", "7", Some(&["6.5"]), false),
    ("NumericLessThanIfExists", "secretsmanager:RecoveryWindowInDays", "30", None, true),
    ("NumericGreaterThanEqualsIfExists", "secretsmanager:RecoveryWindowInDays", "7", Some(&["1"]), false),
    // Date operators (ISO 8601 and epoch seconds on either side)
    ("DateLessThan", "aws:CurrentTime", r#""2026-01-01T00:00:00Z""#, Some(&["2025-12-31T23:59:59Z"]), true),
    ("DateLessThan", "aws:CurrentTime", r#""2026-01-01T00:00:00Z""#, Some(&["2026-01-01T00:00:00Z"]), false),
    ("DateLessThanEquals", "aws:CurrentTime", r#""2026-01-01T00:00:00Z""#, Some(&["2026-01-01T00:00:00Z"]), true),
    ("DateGreaterThan", "aws:CurrentTime", r#""2025-01-01""#, Some(&["2025-06-01T00:00:00Z"]), true),
    ("DateGreaterThan", "aws:CurrentTime", r#""2025-01-01""#, Some(&["2024-06-01T00:00:00Z"]), false),
    ("DateGreaterThanEquals", "aws:CurrentTime", r#""1735689600""#, Some(&["2025-01-01T00:00:00Z"]), true),
    ("DateGreaterThanEquals", "aws:CurrentTime", "1735689600", Some(&["2024-12-31T23:59:59+00:00"]), false),
    ("DateEquals", "aws:EpochTime", r#""2025-01-01T00:00:00Z""#, Some(&["1735689600"]), true),
    ("DateEquals", "aws:CurrentTime", r#""2025-01-01T01:00:00+01:00""#, Some(&["2025-01-01T00:00:00Z"]), true),
    ("DateNotEquals", "aws:EpochTime", r#""2025-01-01T00:00:00Z""#, Some(&["1735689600"]), false),
    ("DateNotEquals", "aws:EpochTime", r#""2025-01-01T00:00:00Z""#, Some(&["1735689601"]), true),
    ("DateNotEquals", "aws:EpochTime", r#""2025-01-01T00:00:00Z""#, None, true),
    ("DateLessThan", "aws:CurrentTime", r#""2026-01-01T00:00:00Z""#, None, false),
    ("DateLessThanIfExists", "aws:CurrentTime", r#""2026-01-01T00:00:00Z""#, None, true),
    ("DateLessThan", "aws:CurrentTime", r#""2026-01-01T00:00:00Z""#, Some(&["yesterday"]), false),
    // Bool
    ("Bool", "aws:SecureTransport", r#""true""#, Some(&["true"]), true),
    ("Bool", "aws:SecureTransport", r#""true""#, Some(&["false"]), false),
    ("Bool", "aws:SecureTransport", r#""true""#, None, false),
    ("Bool", "aws:SecureTransport", "true", Some(&["TRUE"]), true),
    ("Bool", "aws:SecureTransport", "false", Some(&["false"]), true),
    ("BoolIfExists", "aws:SecureTransport", r#""false""#, None, true),
    ("BoolIfExists", "aws:SecureTransport", r#""false""#, Some(&["true"]), false),
    // IP addresses (IPv4 and IPv6, CIDRs and bare addresses)
    ("IpAddress", "aws:SourceIp", r#""203.0.113.0/24""#, Some(&["203.0.113.9"]), true),
    ("IpAddress", "aws:SourceIp", r#""203.0.113.0/24""#, Some(&["198.51.100.1"]), false),
    ("IpAddress", "aws:SourceIp", r#""2001:db8::/32""#, Some(&["2001:db8::1"]), true),
    ("IpAddress", "aws:SourceIp", r#""2001:db8::/32""#, Some(&["203.0.113.9"]), false),
    ("IpAddress", "aws:SourceIp", r#""10.0.0.1""#, Some(&["10.0.0.1"]), true),
    ("IpAddress", "aws:SourceIp", r#""10.0.0.1/8""#, Some(&["10.9.9.9"]), true),
    ("IpAddress", "aws:SourceIp", r#""10.0.0.0/8""#, None, false),
    ("IpAddress", "aws:SourceIp", r#""10.0.0.0/8""#, Some(&["not-an-ip"]), false),
    ("NotIpAddress", "aws:SourceIp", r#"["203.0.113.0/24","2001:db8::/32"]"#, Some(&["198.51.100.1"]), true),
    ("NotIpAddress", "aws:SourceIp", r#"["203.0.113.0/24","2001:db8::/32"]"#, Some(&["2001:db8::5"]), false),
    ("NotIpAddress", "aws:SourceIp", r#"["203.0.113.0/24","2001:db8::/32"]"#, None, true),
    ("IpAddressIfExists", "aws:SourceIp", r#""10.0.0.0/8""#, None, true),
    // ARN operators: six components, each with its own wildcards
    ("ArnEquals", "secretsmanager:RotationLambdaARN", r#""arn:aws:lambda:us-east-1:123456789012:function:rot""#, Some(&["arn:aws:lambda:us-east-1:123456789012:function:rot"]), true),
    ("ArnEquals", "secretsmanager:RotationLambdaARN", r#""arn:aws:lambda:us-east-1:123456789012:function:rot""#, Some(&["arn:aws:lambda:us-east-1:123456789012:function:other"]), false),
    ("ArnLike", "secretsmanager:RotationLambdaARN", r#""arn:aws:lambda:*:123456789012:function:rot-*""#, Some(&["arn:aws:lambda:eu-west-1:123456789012:function:rot-pg"]), true),
    ("ArnLike", "secretsmanager:RotationLambdaARN", r#""arn:aws:lambda:*:123456789012:function:rot-*""#, Some(&["arn:aws:lambda:eu-west-1:999999999999:function:rot-pg"]), false),
    ("ArnLike", "secretsmanager:RotationLambdaARN", r#""arn:aws:lambda:us-east-1:*:function:x""#, Some(&["arn:aws:lambda:us-east-1:1:extra:function:x"]), false),
    ("ArnLike", "secretsmanager:RotationLambdaARN", r#""arn:aws:*""#, Some(&["arn:aws:lambda:us-east-1:1:function:x"]), true),
    ("ArnLike", "secretsmanager:RotationLambdaARN", r#""arn:aws:lambda:*:*:function:*""#, Some(&["not-an-arn"]), false),
    ("ArnNotEquals", "secretsmanager:RotationLambdaARN", r#""arn:aws:lambda:us-east-1:123456789012:function:rot""#, Some(&["arn:aws:lambda:us-east-1:123456789012:function:rot"]), false),
    ("ArnNotEquals", "secretsmanager:RotationLambdaARN", r#""arn:aws:lambda:us-east-1:123456789012:function:rot""#, Some(&["arn:aws:lambda:us-east-1:123456789012:function:x"]), true),
    ("ArnNotLike", "secretsmanager:RotationLambdaARN", r#""arn:aws:lambda:*:*:function:rot*""#, Some(&["arn:aws:lambda:us-east-1:1:function:rot1"]), false),
    ("ArnNotLike", "secretsmanager:RotationLambdaARN", r#""arn:aws:lambda:*:*:function:rot*""#, None, true),
    ("ArnLikeIfExists", "secretsmanager:RotationLambdaARN", r#""arn:aws:lambda:*:*:function:rot*""#, None, true),
    // Null
    ("Null", "aws:TagKeys", r#""true""#, None, true),
    ("Null", "aws:TagKeys", r#""true""#, Some(&["a"]), false),
    ("Null", "aws:TagKeys", r#""true""#, Some(&[]), true),
    ("Null", "aws:TagKeys", r#""false""#, Some(&["a"]), true),
    ("Null", "aws:TagKeys", "false", None, false),
    // Set qualifiers over a multivalued key
    ("ForAllValues:StringEquals", "aws:TagKeys", r#"["a","b"]"#, Some(&["a"]), true),
    ("ForAllValues:StringEquals", "aws:TagKeys", r#"["a","b"]"#, Some(&["a", "c"]), false),
    ("ForAllValues:StringEquals", "aws:TagKeys", r#"["a","b"]"#, None, true),
    ("ForAllValues:StringEquals", "aws:TagKeys", r#"["a","b"]"#, Some(&[]), true),
    ("ForAnyValue:StringEquals", "aws:TagKeys", r#"["a","b"]"#, Some(&["c", "b"]), true),
    ("ForAnyValue:StringEquals", "aws:TagKeys", r#"["a","b"]"#, Some(&["c"]), false),
    ("ForAnyValue:StringEquals", "aws:TagKeys", r#"["a","b"]"#, None, false),
    ("ForAnyValue:StringEquals", "aws:TagKeys", r#"["a","b"]"#, Some(&[]), false),
    ("ForAllValues:StringNotEquals", "aws:TagKeys", r#""x""#, Some(&["a", "b"]), true),
    ("ForAllValues:StringNotEquals", "aws:TagKeys", r#""x""#, Some(&["a", "x"]), false),
    ("ForAnyValue:StringNotEquals", "aws:TagKeys", r#""x""#, Some(&["x", "a"]), true),
    ("ForAnyValue:StringNotEquals", "aws:TagKeys", r#""x""#, Some(&["x"]), false),
    ("ForAllValues:StringLike", "aws:TagKeys", r#""team-*""#, Some(&["team-a", "team-b"]), true),
    ("ForAllValues:StringLike", "aws:TagKeys", r#""team-*""#, Some(&["team-a", "owner"]), false),
    ("ForAnyValue:StringEqualsIfExists", "aws:TagKeys", r#""a""#, None, true),
    ("forallvalues:stringequalsignorecase", "aws:TagKeys", r#""A""#, Some(&["a"]), true),
    // Without a qualifier, a multivalued key matches when any value does (negated: none)
    ("StringEquals", "aws:TagKeys", r#""a""#, Some(&["c", "a"]), true),
    ("StringNotEquals", "aws:TagKeys", r#""a""#, Some(&["c", "a"]), false),
    ("StringNotEquals", "aws:TagKeys", r#""a""#, Some(&["c", "d"]), true),
    // Policy variables in condition values
    ("StringEquals", "secretsmanager:ResourceTag/owner", r#""${aws:username}""#, Some(&["alice"]), true),
    ("StringEquals", "secretsmanager:ResourceTag/owner", r#""${aws:username}""#, Some(&["bob"]), false),
    ("StringLike", "secretsmanager:Name", r#""${aws:username}/*""#, Some(&["alice/db"]), true),
    ("StringLike", "secretsmanager:Name", r#""${aws:username}/*""#, Some(&["bob/db"]), false),
    ("StringEquals", "secretsmanager:Name", r#""${aws:PrincipalTag/team}""#, Some(&["payments"]), true),
    ("StringEquals", "secretsmanager:Name", r#""${aws:PrincipalTag/missing}""#, Some(&[""]), false),
    ("StringEquals", "secretsmanager:Name", r#""${aws:PrincipalTag/missing, 'none'}""#, Some(&["none"]), true),
    ("StringEquals", "secretsmanager:Name", r#""a${*}b""#, Some(&["a*b"]), true),
    ("StringLike", "secretsmanager:Name", r#""a${?}*""#, Some(&["a?x"]), true),
    ("StringLike", "secretsmanager:Name", r#""a${?}*""#, Some(&["abx"]), false),
    ("StringEqualsIgnoreCase", "secretsmanager:Name", r#""${aws:username}""#, Some(&["ALICE"]), true),
    ("ArnEquals", "aws:PrincipalArn", r#""arn:aws:iam::123456789012:user/${aws:username}""#, Some(&[ALICE]), true),
    ("StringEquals", "aws:userid", r#""${aws:userid}""#, Some(&["AIDAALICE"]), true),
];

fn condition_policy(op: &str, key: &str, values: &str, version: &str) -> String {
    format!(
        r#"{{"Version":"{version}","Statement":{{"Effect":"Allow","Action":"{GET}","Resource":"*","Condition":{{"{op}":{{"{key}":{values}}}}}}}}}"#
    )
}

#[test]
fn condition_operators_qualifiers_and_missing_keys() {
    for (i, (op, key, values, request, want)) in CONDITION_ROWS.iter().enumerate() {
        let p = identity(&condition_policy(op, key, values, "2012-10-17"));
        // Set the key under a different case than the policy spells it.
        let mut c = ctx(GET, SECRET).with_principal_tag("team", "payments");
        if let Some(vals) = request {
            c.set(
                &key.to_ascii_uppercase(),
                vals.iter().map(|v| v.to_string()).collect(),
            );
        }
        assert_eq!(
            allowed(&[&p], &c),
            *want,
            "row {i}: {op} {key} {values} vs {request:?}"
        );
    }
}

#[test]
fn condition_multiple_keys_and_operators_are_anded() {
    let p = identity(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"secretsmanager:*","Resource":"*",
           "Condition":{"StringEquals":{"secretsmanager:Name":"a","secretsmanager:VersionStage":"AWSCURRENT"},
                        "Bool":{"aws:SecureTransport":"true"}}}}"#,
    );
    let base = ctx(GET, SECRET)
        .with("secretsmanager:Name", "a")
        .with("secretsmanager:VersionStage", "AWSCURRENT");
    assert!(allowed(&[&p], &base.clone().with_secure_transport(true)));
    assert!(!allowed(&[&p], &base.clone().with_secure_transport(false)));
    assert!(!allowed(
        &[&p],
        &base
            .with("secretsmanager:Name", "b")
            .with_secure_transport(true)
    ));
}

#[test]
fn condition_tag_keys_are_case_insensitive() {
    let p = identity(&condition_policy(
        "StringEquals",
        "secretsmanager:ResourceTag/Team",
        r#""x""#,
        "2012-10-17",
    ));
    assert!(allowed(
        &[&p],
        &ctx(GET, SECRET).with_resource_tag("team", "x")
    ));
    assert!(
        !allowed(&[&p], &ctx(GET, SECRET).with_resource_tag("team", "X")),
        "values stay case-sensitive"
    );
    let a = identity(&condition_policy(
        "StringEquals",
        "aws:resourcetag/TEAM",
        r#""x""#,
        "2012-10-17",
    ));
    assert!(allowed(
        &[&a],
        &ctx(GET, SECRET).with_resource_tag("Team", "x")
    ));
}

#[test]
fn condition_variables_are_literal_in_version_2008() {
    let p = identity(&condition_policy(
        "StringEquals",
        "secretsmanager:Name",
        r#""${aws:username}""#,
        "2008-10-17",
    ));
    assert!(!allowed(
        &[&p],
        &ctx(GET, SECRET).with("secretsmanager:Name", "alice")
    ));
    assert!(allowed(
        &[&p],
        &ctx(GET, SECRET).with("secretsmanager:Name", "${aws:username}")
    ));
}

#[test]
fn context_for_principal_sets_username_for_users_only() {
    let user = crate::Principal {
        account_id: ACCT.into(),
        arn: ALICE.into(),
        access_key_id: "AKIAEXAMPLE".into(),
        kind: crate::PrincipalKind::User {
            name: "alice".into(),
        },
    };
    let c = RequestContext::for_principal(&user, GET, SECRET);
    assert_eq!(c.principal_arn(), ALICE);
    assert_eq!(c.account(), ACCT);
    assert_eq!(c.action(), GET);
    assert_eq!(c.resource(), SECRET);
    assert_eq!(c.values("aws:username"), Some(&["alice".to_string()][..]));
    let root = crate::Principal {
        arn: ROOT.into(),
        kind: crate::PrincipalKind::Root,
        ..user
    };
    assert_eq!(
        RequestContext::for_principal(&root, GET, SECRET).values("aws:username"),
        None
    );
}

#[test]
fn condition_context_helpers_set_aws_keys() {
    let now = time::macros::datetime!(2025-06-01 12:00 UTC);
    let c = ctx(GET, SECRET)
        .with_now(now)
        .with_source_ip(IpAddr::from([192, 0, 2, 7]))
        .with_request_tag("a", "1")
        .with_request_tag("b", "2");
    assert_eq!(
        c.values("aws:currenttime"),
        Some(&["2025-06-01T12:00:00Z".to_string()][..])
    );
    assert_eq!(
        c.values("AWS:EPOCHTIME"),
        Some(&["1748779200".to_string()][..])
    );
    assert_eq!(c.values("aws:TagKeys").map(<[String]>::len), Some(2));
    assert_eq!(c.values("aws:PrincipalArn"), Some(&[ALICE.to_string()][..]));
    let p = identity(&condition_policy(
        "DateLessThan",
        "aws:CurrentTime",
        r#""2025-06-02""#,
        "2012-10-17",
    ));
    assert!(allowed(&[&p], &c));
    let ip = identity(&condition_policy(
        "IpAddress",
        "aws:SourceIp",
        r#""192.0.2.0/24""#,
        "2012-10-17",
    ));
    assert!(allowed(&[&ip], &c));
    let rt = identity(&condition_policy(
        "StringEquals",
        "aws:RequestTag/b",
        r#""2""#,
        "2012-10-17",
    ));
    assert!(allowed(&[&rt], &c));
}

// ---------------------------------------------------------------- actions and resources

fn allow(action: &str, res: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":{action},"Resource":{res}}}]}}"#
    )
}

#[test]
fn action_and_resource_matching_table() {
    #[rustfmt::skip]
    let rows: &[(&str, &str, &str, &str, bool)] = &[
        // (Action JSON, Resource JSON, request action, request resource, allowed)
        (r#""secretsmanager:getsecretvalue""#, r#""*""#, GET, SECRET, true),
        (r#""SecretsManager:GET*""#, r#""*""#, GET, SECRET, true),
        (r#""secretsmanager:Get*""#, r#""*""#, "secretsmanager:DescribeSecret", SECRET, false),
        (r#""secretsmanager:*""#, r#""*""#, "secretsmanager:DeleteSecret", SECRET, true),
        (r#""*""#, r#""*""#, "rotary:CreateUser", "*", true),
        (r#""secretsmanager:*""#, r#""*""#, "rotary:CreateUser", "*", false),
        (r#""secretsmanager:?etSecretValue""#, r#""*""#, GET, SECRET, true),
        (r#"["secretsmanager:DescribeSecret","secretsmanager:GetSecretValue"]"#, r#""*""#, GET, SECRET, true),
        // `*` spans `:` and `/` in resources; `?` is one character; case-sensitive
        (r#""secretsmanager:*""#, r#""arn:aws:secretsmanager:*""#, GET, SECRET, true),
        (r#""secretsmanager:*""#, r#""arn:aws:secretsmanager:*:123456789012:secret:prod/*""#, GET, SECRET, true),
        (r#""secretsmanager:*""#, r#""arn:aws:secretsmanager:*:123456789012:secret:dev/*""#, GET, SECRET, false),
        (r#""secretsmanager:*""#, r#""arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-??????""#, GET, SECRET, true),
        (r#""secretsmanager:*""#, r#""arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-?????""#, GET, SECRET, false),
        (r#""secretsmanager:*""#, r#""arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db""#, GET, SECRET, false),
        (r#""secretsmanager:*""#, r#""arn:aws:secretsmanager:us-east-1:123456789012:secret:PROD/*""#, GET, SECRET, false),
        (r#""secretsmanager:*""#, r#""arn:aws:secretsmanager:*:*:*""#, GET, SECRET, true),
        (r#""secretsmanager:*""#, r#"["arn:aws:secretsmanager:*:*:secret:x-*","*"]"#, GET, SECRET, true),
        (r#""secretsmanager:ListSecrets""#, r#""*""#, "secretsmanager:ListSecrets", "*", true),
    ];
    for (i, (a, r, act, res, want)) in rows.iter().enumerate() {
        let p = identity(&allow(a, r));
        assert_eq!(
            allowed(&[&p], &ctx(act, res)),
            *want,
            "row {i}: {a} {r} vs {act} {res}"
        );
    }
}

#[test]
fn not_action_and_not_resource() {
    let na = identity(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","NotAction":"secretsmanager:Delete*","Resource":"*"}}"#,
    );
    assert!(allowed(&[&na], &ctx(GET, SECRET)));
    assert!(!allowed(
        &[&na],
        &ctx("secretsmanager:DeleteSecret", SECRET)
    ));
    let nr = identity(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"secretsmanager:*","NotResource":"arn:aws:secretsmanager:*:*:secret:prod/*"}}"#,
    );
    assert!(!allowed(&[&nr], &ctx(GET, SECRET)));
    assert!(allowed(
        &[&nr],
        &ctx(
            GET,
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:dev/x-AbCdEf"
        )
    ));
    // Deny with NotAction: deny everything except reading.
    let deny = identity(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},
        {"Effect":"Deny","NotAction":["secretsmanager:GetSecretValue","secretsmanager:DescribeSecret"],"Resource":"*"}]}"#,
    );
    assert!(allowed(&[&deny], &ctx(GET, SECRET)));
    assert_eq!(
        outcome(
            &[&deny],
            None,
            &ctx("secretsmanager:PutSecretValue", SECRET)
        ),
        Outcome::ExplicitDeny
    );
}

#[test]
fn variables_in_resource() {
    let p = identity(&allow(
        r#""secretsmanager:*""#,
        r#""arn:aws:secretsmanager:*:*:secret:${aws:username}/*""#,
    ));
    let own = "arn:aws:secretsmanager:us-east-1:123456789012:secret:alice/db-AbCdEf";
    let other = "arn:aws:secretsmanager:us-east-1:123456789012:secret:bob/db-AbCdEf";
    assert!(allowed(&[&p], &ctx(GET, own)));
    assert!(!allowed(&[&p], &ctx(GET, other)));
    assert!(allowed(&[&p], &ctx_for(BOB, GET, other)));
    // No username (e.g. the root or a session): the variable does not resolve, no match.
    let anonymous = RequestContext::new(ALICE, ACCT, GET, own);
    assert!(!allowed(&[&p], &anonymous));
    // A username holding `*` is matched literally, not as a wildcard.
    let star = RequestContext::new(ALICE, ACCT, GET, own).with_username("*");
    assert!(!allowed(&[&p], &star));
    // Version 2008-10-17 (or none): literal text.
    let old = identity(
        r#"{"Version":"2008-10-17","Statement":{"Effect":"Allow","Action":"secretsmanager:*","Resource":"arn:aws:secretsmanager:*:*:secret:${aws:username}/*"}}"#,
    );
    assert!(!allowed(&[&old], &ctx(GET, own)));
    let none = identity(
        r#"{"Statement":{"Effect":"Allow","Action":"secretsmanager:*","Resource":"arn:aws:secretsmanager:*:*:secret:${aws:username}/*"}}"#,
    );
    assert!(!allowed(&[&none], &ctx(GET, own)));
    // Principal tags and ARN variables.
    let team = identity(&allow(
        r#""secretsmanager:*""#,
        r#""arn:aws:secretsmanager:*:*:secret:${aws:PrincipalTag/team}/*""#,
    ));
    let pay = "arn:aws:secretsmanager:us-east-1:123456789012:secret:payments/key-AbCdEf";
    assert!(allowed(
        &[&team],
        &ctx(GET, pay).with_principal_tag("team", "payments")
    ));
    assert!(!allowed(
        &[&team],
        &ctx(GET, pay).with_principal_tag("team", "search")
    ));
    assert!(!allowed(&[&team], &ctx(GET, pay)));
}

// ---------------------------------------------------------------- evaluation order

const ALLOW_ALL: &str = r#"{"Version":"2012-10-17","Statement":{"Sid":"All","Effect":"Allow","Action":"secretsmanager:*","Resource":"*"}}"#;

#[test]
fn deny_beats_allow_across_identity_policies() {
    let a = identity(ALLOW_ALL);
    let d = identity(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"secretsmanager:ListSecrets","Resource":"*"},
        {"Sid":"NoRead","Effect":"Deny","Action":"secretsmanager:GetSecretValue","Resource":"*"}]}"#,
    );
    let c = ctx(GET, SECRET);
    let dec = evaluate([&a, &d], None, &c);
    assert_eq!(dec.outcome, Outcome::ExplicitDeny);
    assert_eq!(
        dec.statement,
        Some(StatementRef {
            source: PolicySource::Identity(1),
            index: 1,
            sid: Some("NoRead")
        })
    );
    let ok = evaluate(
        [&a, &d],
        None,
        &ctx("secretsmanager:DescribeSecret", SECRET),
    );
    assert_eq!(ok.outcome, Outcome::Allow);
    assert_eq!(
        ok.statement.map(|s| (s.source, s.index, s.sid)),
        Some((PolicySource::Identity(0), 0, Some("All")))
    );
    assert_eq!(
        evaluate([], None, &c),
        Decision {
            outcome: Outcome::ImplicitDeny,
            statement: None
        }
    );
}

#[test]
fn resource_policy_allows_a_second_principal() {
    let rp = resource(&format!(
        r#"{{"Version":"2012-10-17","Statement":{{"Sid":"Bob","Effect":"Allow","Principal":{{"AWS":"{BOB}"}},"Action":"secretsmanager:GetSecretValue","Resource":"*"}}}}"#
    ));
    let dec = evaluate([], Some(&rp), &ctx_for(BOB, GET, SECRET));
    assert_eq!(dec.outcome, Outcome::Allow);
    assert_eq!(
        dec.statement.map(|s| s.source),
        Some(PolicySource::Resource)
    );
    assert_eq!(
        outcome(&[], Some(&rp), &ctx(GET, SECRET)),
        Outcome::ImplicitDeny
    );
    assert_eq!(
        outcome(
            &[],
            Some(&rp),
            &ctx_for(BOB, "secretsmanager:DeleteSecret", SECRET)
        ),
        Outcome::ImplicitDeny
    );
}

#[test]
fn resource_deny_beats_identity_allow() {
    let a = identity(ALLOW_ALL);
    let rp = resource(&format!(
        r#"{{"Version":"2012-10-17","Statement":{{"Effect":"Deny","Principal":{{"AWS":["{ALICE}"]}},"Action":"secretsmanager:*","Resource":"*"}}}}"#
    ));
    let c = ctx(GET, SECRET);
    let dec = evaluate([&a], Some(&rp), &c);
    assert_eq!(dec.outcome, Outcome::ExplicitDeny);
    assert_eq!(
        dec.statement.map(|s| s.source),
        Some(PolicySource::Resource)
    );
    assert_eq!(
        access_denied_message(&c, &dec).as_deref(),
        Some("User: arn:aws:iam::123456789012:user/alice is not authorized to perform: secretsmanager:GetSecretValue on resource: arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf with an explicit deny in a resource-based policy")
    );
    // Bob is not named by the Deny and is allowed by the same identity policy.
    assert_eq!(
        outcome(&[&a], Some(&rp), &ctx_for(BOB, GET, SECRET)),
        Outcome::Allow
    );
    // An identity Deny still wins over a resource-policy Allow.
    let d = identity(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny","Action":"*","Resource":"*"}}"#,
    );
    let everyone = resource(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}}"#,
    );
    assert_eq!(outcome(&[&d], Some(&everyone), &c), Outcome::ExplicitDeny);
}

#[test]
fn account_principal_deny_applies_to_every_principal_of_the_account() {
    let rp = resource(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny","Principal":{"AWS":"123456789012"},"Action":"secretsmanager:*","Resource":"*"}}"#,
    );
    let allow = identity(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#,
    );
    assert_eq!(
        outcome(&[&allow], Some(&rp), &ctx_for(ALICE, GET, SECRET)),
        Outcome::ExplicitDeny
    );
    assert_eq!(
        outcome(&[], Some(&rp), &ctx_for(ROOT, GET, SECRET)),
        Outcome::ExplicitDeny
    );
}

#[test]
fn principal_forms() {
    #[rustfmt::skip]
    let rows: &[(&str, &str, bool)] = &[
        // (Principal JSON, caller, statement applies)
        (r#""*""#, ALICE, true),
        (r#"{"AWS":"*"}"#, "arn:aws:iam::999999999999:user/eve", true),
        // Naming the account allows only its root by itself; other principals of the account
        // need an identity policy (AWS's delegation rule).
        (r#"{"AWS":"123456789012"}"#, ALICE, false),
        (r#"{"AWS":"arn:aws:iam::123456789012:root"}"#, ALICE, false),
        (r#"{"AWS":"arn:aws:iam::123456789012:root"}"#, ROOT, true),
        (r#"{"AWS":"123456789012"}"#, ROOT, true),
        (r#"{"AWS":"999999999999"}"#, ALICE, false),
        (r#"{"AWS":["arn:aws:iam::123456789012:user/bob"]}"#, ALICE, false),
        (r#"{"AWS":["arn:aws:iam::123456789012:user/bob", "arn:aws:iam::123456789012:user/alice"]}"#, ALICE, true),
        (r#"{"Service":"secretsmanager.amazonaws.com"}"#, ALICE, false),
    ];
    for (i, (principal, caller, want)) in rows.iter().enumerate() {
        let rp = resource(&format!(
            r#"{{"Version":"2012-10-17","Statement":{{"Effect":"Allow","Principal":{principal},"Action":"secretsmanager:*","Resource":"*"}}}}"#
        ));
        let got = outcome(&[], Some(&rp), &ctx_for(caller, GET, SECRET)) == Outcome::Allow;
        assert_eq!(got, *want, "row {i}: {principal} vs {caller}");
    }
}

#[test]
fn not_principal_excludes_only_caller_and_account_together() {
    let deny = |listed: &str| {
        resource(&format!(
            r#"{{"Version":"2012-10-17","Statement":{{"Effect":"Deny","NotPrincipal":{{"AWS":{listed}}},"Action":"secretsmanager:*","Resource":"*"}}}}"#
        ))
    };
    let a = identity(ALLOW_ALL);
    let both = deny(&format!(r#"["{ALICE}","{ROOT}"]"#));
    assert_eq!(
        outcome(&[&a], Some(&both), &ctx(GET, SECRET)),
        Outcome::Allow
    );
    assert_eq!(
        outcome(&[&a], Some(&both), &ctx_for(BOB, GET, SECRET)),
        Outcome::ExplicitDeny
    );
    assert_eq!(
        outcome(&[&a], Some(&both), &ctx_for(ROOT, GET, SECRET)),
        Outcome::Allow
    );
    // Listing only the user is not enough in AWS: the account is still denied.
    let user_only = deny(&format!(r#""{ALICE}""#));
    assert_eq!(
        outcome(&[&a], Some(&user_only), &ctx(GET, SECRET)),
        Outcome::ExplicitDeny
    );
    let star = deny(r#""*""#);
    assert_eq!(
        outcome(&[&a], Some(&star), &ctx(GET, SECRET)),
        Outcome::Allow
    );
}

#[test]
fn access_denied_messages_follow_aws() {
    let c = ctx(GET, SECRET);
    let implicit = evaluate([], None, &c);
    assert_eq!(
        access_denied_message(&c, &implicit).as_deref(),
        Some("User: arn:aws:iam::123456789012:user/alice is not authorized to perform: secretsmanager:GetSecretValue on resource: arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf because no identity-based policy allows the secretsmanager:GetSecretValue action")
    );
    let d = identity(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny","Action":"*","Resource":"*"}}"#,
    );
    let explicit = evaluate([&d], None, &c);
    assert_eq!(
        access_denied_message(&c, &explicit).as_deref(),
        Some("User: arn:aws:iam::123456789012:user/alice is not authorized to perform: secretsmanager:GetSecretValue on resource: arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf with an explicit deny in an identity-based policy")
    );
    let a = identity(ALLOW_ALL);
    assert_eq!(access_denied_message(&c, &evaluate([&a], None, &c)), None);
    let r = StatementRef {
        source: PolicySource::Resource,
        index: 1,
        sid: Some("X"),
    };
    assert_eq!(r.to_string(), "resource policy, statement 2 (Sid \"X\")");
    let r = StatementRef {
        source: PolicySource::Identity(0),
        index: 0,
        sid: None,
    };
    assert_eq!(r.to_string(), "identity policy 1, statement 1");
}

// ---------------------------------------------------------------- AWS user guide examples

#[test]
fn aws_example_read_one_secret() {
    let p = identity(
        r#"{
          "Version": "2012-10-17",
          "Statement": [{
            "Effect": "Allow",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf"
          }]
        }"#,
    );
    assert!(allowed(&[&p], &ctx(GET, SECRET)));
    assert!(!allowed(
        &[&p],
        &ctx("secretsmanager:PutSecretValue", SECRET)
    ));
    assert!(!allowed(
        &[&p],
        &ctx(
            GET,
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/other-AbCdEf"
        )
    ));
}

#[test]
fn aws_example_tag_based_access() {
    let p = identity(
        r#"{
          "Version": "2012-10-17",
          "Statement": [
            {
              "Effect": "Allow",
              "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
              "Resource": "*",
              "Condition": {"StringEquals": {"secretsmanager:ResourceTag/ServerName": "ServerABC"}}
            },
            {
              "Effect": "Allow",
              "Action": "secretsmanager:GetSecretValue",
              "Resource": "*",
              "Condition": {"StringEquals": {"aws:ResourceTag/AccessProject": "${aws:PrincipalTag/AccessProject}"}}
            }
          ]
        }"#,
    );
    assert!(allowed(
        &[&p],
        &ctx(GET, SECRET).with_resource_tag("ServerName", "ServerABC")
    ));
    assert!(!allowed(
        &[&p],
        &ctx(GET, SECRET).with_resource_tag("ServerName", "ServerXYZ")
    ));
    assert!(!allowed(&[&p], &ctx(GET, SECRET)));
    let abac = ctx(GET, SECRET).with_principal_tag("AccessProject", "alpha");
    assert!(allowed(
        &[&p],
        &abac.clone().with_resource_tag("AccessProject", "alpha")
    ));
    assert!(!allowed(
        &[&p],
        &abac.with_resource_tag("AccessProject", "beta")
    ));
}

#[test]
fn aws_example_deny_unless_from_ip_range() {
    let a = identity(ALLOW_ALL);
    let d = identity(
        r#"{
          "Version": "2012-10-17",
          "Statement": {
            "Effect": "Deny",
            "Action": "secretsmanager:*",
            "Resource": "*",
            "Condition": {"NotIpAddress": {"aws:SourceIp": ["192.0.2.0/24", "203.0.113.0/24"]}}
          }
        }"#,
    );
    let from = |ip: [u8; 4]| ctx(GET, SECRET).with_source_ip(IpAddr::from(ip));
    assert_eq!(
        outcome(&[&a, &d], None, &from([192, 0, 2, 5])),
        Outcome::Allow
    );
    assert_eq!(
        outcome(&[&a, &d], None, &from([203, 0, 113, 200])),
        Outcome::Allow
    );
    assert_eq!(
        outcome(&[&a, &d], None, &from([198, 51, 100, 1])),
        Outcome::ExplicitDeny
    );
    assert_eq!(
        outcome(&[&a, &d], None, &ctx(GET, SECRET)),
        Outcome::ExplicitDeny,
        "missing SourceIp: NotIpAddress holds"
    );
}

#[test]
fn aws_example_deny_delete_without_recovery() {
    let a = identity(ALLOW_ALL);
    let d = identity(
        r#"{
          "Version": "2012-10-17",
          "Statement": {
            "Effect": "Deny",
            "Action": "secretsmanager:DeleteSecret",
            "Resource": "*",
            "Condition": {"Bool": {"secretsmanager:ForceDeleteWithoutRecovery": "true"}}
          }
        }"#,
    );
    let del = || ctx("secretsmanager:DeleteSecret", SECRET);
    assert_eq!(
        outcome(
            &[&a, &d],
            None,
            &del().with("secretsmanager:ForceDeleteWithoutRecovery", "true")
        ),
        Outcome::ExplicitDeny
    );
    assert_eq!(
        outcome(
            &[&a, &d],
            None,
            &del().with("secretsmanager:ForceDeleteWithoutRecovery", "false")
        ),
        Outcome::Allow
    );
    assert_eq!(
        outcome(
            &[&a, &d],
            None,
            &del().with("secretsmanager:RecoveryWindowInDays", "7")
        ),
        Outcome::Allow
    );
}

#[test]
fn aws_example_rotate_only_with_one_function() {
    let p = identity(
        r#"{
          "Version": "2012-10-17",
          "Statement": {
            "Effect": "Allow",
            "Action": "secretsmanager:RotateSecret",
            "Resource": "*",
            "Condition": {"ArnEquals": {"secretsmanager:RotationLambdaARN": "arn:aws:lambda:us-east-1:123456789012:function:rotary-postgresql-single-user"}}
          }
        }"#,
    );
    let rot = |f: &str| {
        ctx("secretsmanager:RotateSecret", SECRET).with(
            "secretsmanager:RotationLambdaARN",
            format!("arn:aws:lambda:us-east-1:123456789012:function:{f}"),
        )
    };
    assert!(allowed(&[&p], &rot("rotary-postgresql-single-user")));
    assert!(!allowed(&[&p], &rot("rotary-generic-password")));
    assert!(!allowed(&[&p], &ctx("secretsmanager:RotateSecret", SECRET)));
}

#[test]
fn aws_example_username_in_resource() {
    let p = identity(
        r#"{
          "Version": "2012-10-17",
          "Statement": {
            "Effect": "Allow",
            "Action": ["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"],
            "Resource": "arn:aws:secretsmanager:*:123456789012:secret:users/${aws:username}/*"
          }
        }"#,
    );
    let mine = "arn:aws:secretsmanager:us-east-1:123456789012:secret:users/alice/token-AbCdEf";
    assert!(allowed(&[&p], &ctx(GET, mine)));
    assert!(!allowed(&[&p], &ctx_for(BOB, GET, mine)));
}

// ---------------------------------------------------------------- parsing

#[test]
fn parse_errors_name_statement_and_fault() {
    let st = |body: &str| {
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"A","Effect":"Allow","Action":"secretsmanager:*","Resource":"*"}},{body}]}}"#
        )
    };
    let rs = |body: &str| {
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"A","Effect":"Allow","Principal":"*","Action":"secretsmanager:*","Resource":"*"}},{body}]}}"#
        )
    };
    #[rustfmt::skip]
    let rows: Vec<(PolicyKind, String, &str)> = vec![
        (PolicyKind::Identity, "not json".into(), "not valid JSON"),
        (PolicyKind::Identity, "[]".into(), "must be a JSON object"),
        (PolicyKind::Identity, r#"{"Version":"2012-10-17"}"#.into(), "must contain a Statement"),
        (PolicyKind::Identity, r#"{"Version":"2012-10-17","Statement":[]}"#.into(), "at least one statement"),
        (PolicyKind::Identity, r#"{"Version":"2012-10-17","Statement":"x"}"#.into(), "object or a list"),
        (PolicyKind::Identity, r#"{"Version":"2013-01-01","Statement":{}}"#.into(), "Version must be"),
        (PolicyKind::Identity, r#"{"Version":"2012-10-17","Statements":[]}"#.into(), "unknown element \"Statements\""),
        (PolicyKind::Identity, st(r#""x""#), "Statement 2 is not a JSON object"),
        (PolicyKind::Identity, st(r#"{"Sid":"B","Effect":"allow","Action":"secretsmanager:*","Resource":"*"}"#), "Statement 2 (Sid \"B\") has an Effect other than"),
        (PolicyKind::Identity, st(r#"{"Action":"secretsmanager:*","Resource":"*"}"#), "Statement 2 has no Effect"),
        (PolicyKind::Identity, st(r#"{"Effect":"Allow","Action":"a:b","NotAction":"a:c","Resource":"*"}"#), "both Action and NotAction"),
        (PolicyKind::Identity, st(r#"{"Effect":"Allow","Resource":"*"}"#), "must contain Action or NotAction"),
        (PolicyKind::Identity, st(r#"{"Effect":"Allow","Action":[],"Resource":"*"}"#), "empty Action list"),
        (PolicyKind::Identity, st(r#"{"Effect":"Allow","Action":"GetSecretValue","Resource":"*"}"#), "prefixed by a service"),
        (PolicyKind::Identity, st(r#"{"Effect":"Allow","Action":"a:b","Resource":"*","NotResource":"*"}"#), "both Resource and NotResource"),
        (PolicyKind::Identity, st(r#"{"Effect":"Allow","Action":"a:b"}"#), "must contain Resource or NotResource"),
        (PolicyKind::Identity, st(r#"{"Effect":"Allow","Action":"a:b","Resource":"mysecret"}"#), "not an ARN"),
        (PolicyKind::Identity, st(r#"{"Effect":"Allow","Action":"a:b","Resource":["*",1]}"#), "Resource that is not a string"),
        (PolicyKind::Identity, st(r#"{"Effect":"Allow","Action":"a:b","Resource":"*","Principal":"*"}"#), "identity-based policies must not specify"),
        (PolicyKind::Resource, st(r#"{"Effect":"Allow","Action":"a:b","Resource":"*"}"#), "Statement 1 (Sid \"A\") must contain Principal"),
        (PolicyKind::Identity, st(r#"{"Effect":"Allow","Action":"a:b","Resource":"*","Conditions":{}}"#), "unknown element \"Conditions\""),
        (PolicyKind::Identity, st(r#"{"Sid":"A","Effect":"Allow","Action":"a:b","Resource":"*"}"#), "reuses a Sid"),
        (PolicyKind::Identity, st( r#"{"Effect":"Allow","Action":"a:b","Resource":"*","Condition":{"StringEqualz":{"a:b":"c"}}}"#),
            "unknown condition operator \"StringEqualz\"",
        ),
        (PolicyKind::Identity, st( r#"{"Effect":"Allow","Action":"a:b","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.300/8"}}}"#),
            "not an IPv4 or IPv6",
        ),
        (PolicyKind::Identity, st( r#"{"Effect":"Allow","Action":"a:b","Resource":"*","Condition":{"DateLessThan":{"aws:CurrentTime":"tomorrow"}}}"#),
            "not an ISO 8601 date",
        ),
        (PolicyKind::Identity, st( r#"{"Effect":"Allow","Action":"a:b","Resource":"*","Condition":{"NumericLessThan":{"a:b":"ten"}}}"#),
            "not a number",
        ),
        (PolicyKind::Identity, st( r#"{"Effect":"Allow","Action":"a:b","Resource":"*","Condition":{"Bool":{"a:b":"yes"}}}"#),
            "not \"true\" or \"false\"",
        ),
        (PolicyKind::Identity, st( r#"{"Effect":"Allow","Action":"a:b","Resource":"*","Condition":{"Null":{"a:b":["true","false"]}}}"#),
            "more than one value",
        ),
        (PolicyKind::Identity, st( r#"{"Effect":"Allow","Action":"a:b","Resource":"*","Condition":{"NullIfExists":{"a:b":"true"}}}"#),
            "unknown condition operator",
        ),
        (PolicyKind::Identity, st( r#"{"Effect":"Allow","Action":"a:b","Resource":"*","Condition":{"StringEquals":{"nokey":"x"}}}"#),
            "not prefixed by a service",
        ),
        (PolicyKind::Identity, st( r#"{"Effect":"Allow","Action":"a:b","Resource":"*","Condition":{"StringEquals":{"a:b":{"x":1}}}}"#),
            "whose value is not a string",
        ),
        (PolicyKind::Identity, st( r#"{"Effect":"Allow","Action":"a:b","Resource":"*","Condition":{"StringEquals":{"a:b":[]}}}"#),
            "non-empty list",
        ),
        (PolicyKind::Identity, st(r#"{"Effect":"Allow","Action":"a:b","Resource":"*","Condition":"x"}"#), "Condition that is not an object"),
        (PolicyKind::Resource, rs(r#"{"Effect":"Allow","Principal":{"AWS":"alice"},"Action":"a:b","Resource":"*"}"#), "Statement 2 has an invalid principal \"alice\""),
        (PolicyKind::Resource, rs( r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/*"},"Action":"a:b","Resource":"*"}"#),
            "invalid principal",
        ),
        (PolicyKind::Resource, rs(r#"{"Effect":"Allow","Principal":{"Federated":"x"},"Action":"a:b","Resource":"*"}"#), "unsupported Principal type"),
        (PolicyKind::Resource, rs(r#"{"Effect":"Allow","Principal":"alice","Action":"a:b","Resource":"*"}"#), "neither \"*\" nor an object"),
        (PolicyKind::Resource, rs( r#"{"Effect":"Allow","Principal":"*","NotPrincipal":"*","Action":"a:b","Resource":"*"}"#),
            "both Principal and NotPrincipal",
        ),
    ];
    for (i, (kind, text, want)) in rows.iter().enumerate() {
        match Policy::parse(text, *kind, BIG) {
            Ok(_) => panic!("row {i}: accepted {text}"),
            Err(e) => {
                assert!(
                    e.message().contains(want),
                    "row {i}: {:?} lacks {want:?}",
                    e.message()
                );
                assert!(
                    e.message().ends_with('.'),
                    "row {i}: {:?} is not a sentence",
                    e.message()
                );
            }
        }
    }
}

#[test]
fn parse_accepts_aws_shapes() {
    let doc = parse(
        r#"{"Version":"2012-10-17","Id":"x","Statement":{"Sid":"s","Effect":"Deny","NotPrincipal":{"AWS":["123456789012","arn:aws:sts::123456789012:assumed-role/r/s"]},
            "NotAction":"secretsmanager:Get*","NotResource":["arn:aws:secretsmanager:*:*:secret:a"],
            "Condition":{"NumericLessThan":{"secretsmanager:RecoveryWindowInDays":30},"Bool":{"aws:SecureTransport":false}}}}"#,
        PolicyKind::Resource,
        BIG,
    )
    .unwrap();
    assert_eq!(doc.version, Some(Version::V2012_10_17));
    assert_eq!(doc.id.as_deref(), Some("x"));
    let st = &doc.statements[0];
    assert_eq!(st.effect, Effect::Deny);
    assert!(matches!(st.action, Polarity::Not(_)));
    assert_eq!(
        st.principal,
        Some(Polarity::Not(vec![
            PrincipalEntry::Account(ACCT.into()),
            PrincipalEntry::Arn("arn:aws:sts::123456789012:assumed-role/r/s".into()),
        ]))
    );
    assert_eq!(st.conditions[0].values, vec!["30".to_string()]);
    assert_eq!(st.conditions[1].values, vec!["false".to_string()]);
    assert_eq!(doc.effective_version(), Version::V2012_10_17);
    let none = parse(
        r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#,
        PolicyKind::Identity,
        BIG,
    )
    .unwrap();
    assert_eq!(none.effective_version(), Version::V2008_10_17);
}

#[test]
fn parse_size_limits_exclude_whitespace() {
    let compact = ALLOW_ALL;
    let n = policy_size(compact);
    assert!(Policy::parse(compact, PolicyKind::Identity, n).is_ok());
    let err = Policy::parse(compact, PolicyKind::Identity, n - 1).unwrap_err();
    assert!(err.message().contains("more than the limit"), "{err}");
    let spaced = compact.replace(',', " ,\n\t ");
    assert_eq!(policy_size(&spaced), n);
    assert!(Policy::parse(&spaced, PolicyKind::Identity, n).is_ok());
    const { assert!(limits::USER_INLINE_POLICY_CHARS < limits::GROUP_INLINE_POLICY_CHARS) };
    const { assert!(limits::GROUP_INLINE_POLICY_CHARS < limits::RESOURCE_POLICY_CHARS) };
}

// ---------------------------------------------------------------- public policy and validation

#[test]
fn is_public_table() {
    #[rustfmt::skip]
    let rows: &[(&str, bool)] = &[
        (r#"{"Effect":"Allow","Principal":"*","Action":"secretsmanager:GetSecretValue","Resource":"*"}"#, true),
        (r#"{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"secretsmanager:*","Resource":"*"}"#, true),
        (r#"{"Effect":"Allow","Principal":{"AWS":["arn:aws:iam::123456789012:user/bob","*"]},"Action":"secretsmanager:*","Resource":"*"}"#, true),
        (r#"{"Effect":"Allow","NotPrincipal":{"AWS":"arn:aws:iam::123456789012:user/bob"},"Action":"secretsmanager:*","Resource":"*"}"#, true),
        (r#"{"Effect":"Deny","Principal":"*","Action":"secretsmanager:*","Resource":"*"}"#, false),
        (r#"{"Effect":"Allow","Principal":{"AWS":"123456789012"},"Action":"secretsmanager:*","Resource":"*"}"#, false),
        (r#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/bob"},"Action":"secretsmanager:*","Resource":"*"}"#, false),
        (r#"{"Effect":"Allow","Principal":"*","Action":"secretsmanager:*","Resource":"*","Condition":{"StringEquals":{"aws:PrincipalAccount":"123456789012"}}}"#, false),
        (r#"{"Effect":"Allow","Principal":"*","Action":"secretsmanager:*","Resource":"*","Condition":{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::123456789012:user/*"}}}"#, false),
        (r#"{"Effect":"Allow","Principal":"*","Action":"secretsmanager:*","Resource":"*","Condition":{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*:user/*"}}}"#, true),
        (r#"{"Effect":"Allow","Principal":"*","Action":"secretsmanager:*","Resource":"*","Condition":{"StringLike":{"aws:PrincipalAccount":"*"}}}"#, true),
        (r#"{"Effect":"Allow","Principal":"*","Action":"secretsmanager:*","Resource":"*","Condition":{"StringNotEquals":{"aws:PrincipalAccount":"999999999999"}}}"#, true),
        (r#"{"Effect":"Allow","Principal":"*","Action":"secretsmanager:*","Resource":"*","Condition":{"StringEqualsIfExists":{"aws:PrincipalAccount":"123456789012"}}}"#, true),
        (r#"{"Effect":"Allow","Principal":"*","Action":"secretsmanager:*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"true"}}}"#, true),
    ];
    for (i, (st, want)) in rows.iter().enumerate() {
        let p = resource(&format!(r#"{{"Version":"2012-10-17","Statement":[{st}]}}"#));
        assert_eq!(is_public(&p), *want, "row {i}: {st}");
    }
}

#[test]
fn validate_reports_findings() {
    let codes = |text: &str| -> Vec<&'static str> {
        validate(text, PolicyKind::Resource, limits::RESOURCE_POLICY_CHARS)
            .iter()
            .map(|f| f.issue_code)
            .collect()
    };
    let good = format!(
        r#"{{"Version":"2012-10-17","Statement":{{"Effect":"Allow","Principal":{{"AWS":"{BOB}"}},"Action":"secretsmanager:GetSecretValue","Resource":"*"}}}}"#
    );
    assert!(codes(&good).is_empty());
    assert_eq!(codes("{"), vec!["MALFORMED_POLICY"]);
    let public = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Principal":"*","Action":"secretsmanager:GetSecretValue","Resource":"*"}}"#;
    assert_eq!(codes(public), vec!["BROAD_ACCESS"]);
    let sloppy = r#"{"Statement":[
        {"Effect":"Allow","NotPrincipal":{"AWS":"123456789012"},"NotAction":"secretsmanager:GetSecretValue","Resource":"*"},
        {"Effect":"Deny","Principal":"*","Action":["secretsmanager:GetSecretValu","secretsmanager:Describe*"],"Resource":"*",
         "Condition":{"StringEquals":{"secretsmanager:Nmae":"x","aws:Whatever":"y","aws:ResourceTag/k":"v"}}}]}"#;
    let got = codes(sloppy);
    for want in [
        "MISSING_VERSION",
        "BROAD_ACCESS",
        "ALLOW_WITH_NOT_PRINCIPAL",
        "ALLOW_WITH_NOT_ACTION",
        "INVALID_ACTION",
        "INVALID_CONDITION_KEY",
        "UNKNOWN_CONDITION_KEY",
    ] {
        assert!(got.contains(&want), "{want} missing from {got:?}");
    }
    let findings = validate(sloppy, PolicyKind::Resource, limits::RESOURCE_POLICY_CHARS);
    assert!(findings.iter().any(Finding::fails_validation));
    let only_warning = validate(
        r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":"123456789012"},"Action":"secretsmanager:GetSecretValue","Resource":"*"}}"#,
        PolicyKind::Resource,
        BIG,
    );
    assert_eq!(only_warning.len(), 1);
    assert_eq!(only_warning[0].finding_type, FindingType::Warning);
    assert!(!only_warning[0].fails_validation());
}

// ---------------------------------------------------------------- robustness and cost

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let words = prop::sample::select(vec![
        "Version",
        "2012-10-17",
        "2008-10-17",
        "Statement",
        "Sid",
        "Effect",
        "Allow",
        "Deny",
        "Action",
        "NotAction",
        "Resource",
        "NotResource",
        "Principal",
        "NotPrincipal",
        "Condition",
        "AWS",
        "*",
        "secretsmanager:*",
        "arn:aws:secretsmanager:*",
        "StringLike",
        "ForAllValues:StringEquals",
        "NumericLessThanIfExists",
        "DateLessThan",
        "IpAddress",
        "Null",
        "Bool",
        "ArnLike",
        "aws:SourceIp",
        "aws:TagKeys",
        "aws:CurrentTime",
        "${aws:username}",
        "${",
        "}",
        "10.0.0.0/8",
        "123456789012",
        "arn:aws:iam::123456789012:root",
        "true",
        "2025-01-01",
        "?",
        "",
    ]);
    let leaf = prop_oneof![
        words.clone().prop_map(|s| Value::String(s.to_owned())),
        any::<String>().prop_map(Value::String),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| Value::Number(n.into())),
        Just(Value::Null),
    ];
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((words.clone(), inner), 0..6).prop_map(|kv| {
                Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

proptest! {
    #[test]
    fn parse_never_panics_on_arbitrary_text(text in any::<String>()) {
        let _ = Policy::parse(&text, PolicyKind::Identity, BIG);
        let _ = Policy::parse(&text, PolicyKind::Resource, BIG);
    }

    #[test]
    fn parse_and_evaluate_never_panic_on_arbitrary_json(v in json_value(), action in "[a-zA-Z:*?]{0,12}", res in ".{0,20}") {
        let text = v.to_string();
        for kind in [PolicyKind::Identity, PolicyKind::Resource] {
            let _ = validate(&text, kind, BIG);
            if let Ok(p) = Policy::parse(&text, kind, BIG) {
                let c = ctx(&action, &res).with("aws:SourceIp", res.clone()).with("aws:CurrentTime", res.clone());
                let _ = evaluate([&p], Some(&p), &c);
                let _ = is_public(&p);
            }
        }
    }
}

/// A ten-statement policy, as the issue's throughput target describes.
fn ten_statements() -> Policy {
    let mut sts = Vec::new();
    for i in 0..9 {
        sts.push(format!(
            r#"{{"Sid":"S{i}","Effect":"Allow","Action":["secretsmanager:DescribeSecret","secretsmanager:List*"],"Resource":"arn:aws:secretsmanager:*:123456789012:secret:team{i}/*","Condition":{{"StringEquals":{{"aws:ResourceTag/team":"t{i}"}},"Bool":{{"aws:SecureTransport":"true"}}}}}}"#
        ));
    }
    sts.push(r#"{"Sid":"Read","Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"arn:aws:secretsmanager:*:123456789012:secret:${aws:username}/*","Condition":{"IpAddress":{"aws:SourceIp":["10.0.0.0/8","2001:db8::/32"]}}}"#.to_owned());
    identity(&format!(
        r#"{{"Version":"2012-10-17","Statement":[{}]}}"#,
        sts.join(",")
    ))
}

#[test]
fn eval_policy_is_shareable_across_threads() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<Policy>();
    shareable::<RequestContext>();
}

#[test]
fn eval_ten_statement_policy_decides() {
    let p = ten_statements();
    let c = ctx(
        GET,
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:alice/db-AbCdEf",
    )
    .with_source_ip(IpAddr::from([10, 1, 2, 3]))
    .with_secure_transport(true)
    .with_resource_tag("team", "t3");
    let d = evaluate([&p], None, &c);
    assert_eq!(d.statement.and_then(|s| s.sid), Some("Read"));
}

/// Found by the policy fuzz target (fuzz/regressions/policy/version-large-number): the error
/// for a numeric Version echoed the number, whose printed form changes when the document is
/// re-spaced (serde_json's float reading is not exact). The error now names the type.
#[test]
fn a_non_string_version_is_named_by_its_type() {
    let text =
        r#"{"Version":24691777777777777777777777777777777777777777773578024,"Statements":[]}"#;
    let value: serde_json::Value = serde_json::from_str(text).expect("json");
    let pretty = serde_json::to_string_pretty(&value).expect("prints");
    let err = parse(text, PolicyKind::Identity, usize::MAX).expect_err("refused");
    assert_eq!(
        err.message(),
        "The policy Version must be \"2012-10-17\" or \"2008-10-17\", not a number."
    );
    assert_eq!(parse(&pretty, PolicyKind::Identity, usize::MAX), Err(err));
    let err = parse(
        r#"{"Version":"2010-01-01","Statement":[]}"#,
        PolicyKind::Identity,
        9999,
    )
    .expect_err("refused");
    assert_eq!(
        err.message(),
        "The policy Version must be \"2012-10-17\" or \"2008-10-17\", not \"2010-01-01\"."
    );
}

/// A numeric condition value parses to the same document whether the text is compact or
/// re-spaced: serde_json reads floats exactly (`float_roundtrip`), so printing the value and
/// reading it back gives the same number.
#[test]
fn a_large_numeric_condition_value_survives_re_spacing() {
    let text = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*",
        "Condition":{"NumericLessThan":{"aws:EpochTime":24691777777777777777777777777777777777777777773578024}}}}"#;
    let value: serde_json::Value = serde_json::from_str(text).expect("json");
    let pretty = serde_json::to_string_pretty(&value).expect("prints");
    assert_eq!(
        parse(&pretty, PolicyKind::Identity, usize::MAX),
        parse(text, PolicyKind::Identity, usize::MAX)
    );
}

/// Not a timed assertion: prints the cost per evaluation. Run with
/// `cargo test -p rotary-auth --release policy::tests::bench -- --ignored --nocapture`.
#[test]
#[ignore]
fn bench_eval_ten_statement_policy() {
    let p = ten_statements();
    let c = ctx(
        GET,
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:alice/db-AbCdEf",
    )
    .with_source_ip(IpAddr::from([10, 1, 2, 3]))
    .with_secure_transport(true)
    .with_resource_tag("team", "t3");
    let n = 200_000u32;
    let start = std::time::Instant::now();
    let mut allowed = 0u32;
    for _ in 0..n {
        allowed += u32::from(std::hint::black_box(evaluate([&p], None, &c)).is_allowed());
    }
    let per = start.elapsed() / n;
    assert_eq!(allowed, n);
    println!("ten-statement policy: {per:?} per evaluation");
}

#[test]
fn a_policy_reads_the_context_only_with_conditions_or_variables() {
    let plain = identity(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"secretsmanager:Get*","Resource":"arn:aws:secretsmanager:*:*:secret:app/*"}]}"#,
    );
    assert!(!plain.reads_context());
    let conditioned = identity(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"secretsmanager:*","Resource":"*"},{"Effect":"Deny","Action":"*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}"#,
    );
    assert!(conditioned.reads_context());
    let variable = identity(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"secretsmanager:*","Resource":"arn:aws:secretsmanager:*:*:secret:${aws:username}/*"}]}"#,
    );
    assert!(variable.reads_context());
    // Before 2012-10-17, `${…}` is literal text.
    let literal = identity(
        r#"{"Version":"2008-10-17","Statement":[{"Effect":"Allow","Action":"secretsmanager:*","Resource":"arn:aws:secretsmanager:*:*:secret:${aws:username}/*"}]}"#,
    );
    assert!(!literal.reads_context());
    // Without the keys, a policy that does not read them decides as with them.
    let res = "arn:aws:secretsmanager:us-east-1:123456789012:secret:app/db-AbCdEf";
    let full = ctx(GET, res)
        .with_source_ip(IpAddr::from([10, 1, 2, 3]))
        .with_secure_transport(true);
    assert!(allowed(&[&plain], &ctx(GET, res)));
    assert!(allowed(&[&plain], &full));
}
