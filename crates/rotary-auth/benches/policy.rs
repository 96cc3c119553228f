//! Policy evaluation with a 10-statement identity policy (issue #15), the shape that
//! scripts/bench/get-secret-value.sh signs with as `user`: nine statements that do not apply
//! (other actions and resources, each with a tag condition) and the allowing one last, so
//! every statement is tested.

// criterion_main! generates an undocumented main.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use rotary_auth::policy::{evaluate, limits, Outcome, Policy, PolicyKind, RequestContext};

const SECRET_ARN: &str = "arn:aws:secretsmanager:us-east-1:000000000000:secret:bench/db-AbCdEf";

fn ten_statements() -> String {
    let mut statements: Vec<String> = (0..9)
        .map(|i| {
            format!(
                r#"{{"Sid":"Other{i}","Effect":"Allow","Action":"secretsmanager:Describe{i}",
                "Resource":"arn:aws:secretsmanager:*:*:secret:team{i}/*",
                "Condition":{{"StringEquals":{{"aws:ResourceTag/team":"t{i}"}}}}}}"#
            )
        })
        .collect();
    statements.push(
        r#"{"Sid":"Read","Effect":"Allow","Action":"secretsmanager:GetSecretValue",
        "Resource":"arn:aws:secretsmanager:*:*:secret:bench/*"}"#
            .to_owned(),
    );
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{}]}}"#,
        statements.join(",")
    )
}

fn bench_evaluate(c: &mut Criterion) {
    let policy = Policy::parse(
        &ten_statements(),
        PolicyKind::Identity,
        limits::ROLE_INLINE_POLICY_CHARS,
    )
    .expect("the benchmark policy parses");
    let allowed = RequestContext::new(
        "arn:aws:iam::000000000000:user/bench",
        "000000000000",
        "secretsmanager:GetSecretValue",
        SECRET_ARN,
    )
    .with_username("bench")
    .with_resource_tag("team", "t1");
    let denied = RequestContext::new(
        "arn:aws:iam::000000000000:user/bench",
        "000000000000",
        "secretsmanager:PutSecretValue",
        SECRET_ARN,
    )
    .with_username("bench");
    assert_eq!(evaluate([&policy], None, &allowed).outcome, Outcome::Allow);
    assert_eq!(
        evaluate([&policy], None, &denied).outcome,
        Outcome::ImplicitDeny
    );
    let mut g = c.benchmark_group("policy_evaluate_10_statements");
    g.bench_function("allow_by_last", |b| {
        b.iter(|| evaluate([&policy], None, black_box(&allowed)).outcome)
    });
    g.bench_function("implicit_deny", |b| {
        b.iter(|| evaluate([&policy], None, black_box(&denied)).outcome)
    });
    g.finish();
}

criterion_group!(benches, bench_evaluate);
criterion_main!(benches);
