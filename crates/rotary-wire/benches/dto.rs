//! JSON 1.1 decode of a GetSecretValue request and encode of its response (issue #15), with
//! serde_json as the server does.

// criterion_main! generates an undocumented main.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use rotary_wire::dto::{GetSecretValueRequest, GetSecretValueResponse};
use rotary_wire::validate::Validate;
use rotary_wire::{Sensitive, Timestamp};

const REQUEST: &[u8] = br#"{"SecretId":"hot-000000"}"#;

fn response() -> GetSecretValueResponse {
    GetSecretValueResponse {
        arn: Some("arn:aws:secretsmanager:us-east-1:000000000000:secret:hot-000000-AbCdEf".into()),
        name: Some("hot-000000".into()),
        version_id: Some("0b4c6f9e-3a53-4f1e-9d2a-6c1b8f0e7d21".into()),
        secret_binary: None,
        secret_string: Some(Sensitive::new(
            r#"{"username": "app", "password": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}"#.into(),
        )),
        version_stages: Some(vec!["AWSCURRENT".into()]),
        created_date: Some(Timestamp(1_764_532_800_123)),
    }
}

fn bench_dto(c: &mut Criterion) {
    let mut g = c.benchmark_group("wire_get_secret_value");
    g.bench_function("decode_request", |b| {
        b.iter(|| serde_json::from_slice::<GetSecretValueRequest>(black_box(REQUEST)))
    });
    g.bench_function("decode_and_validate_request", |b| {
        b.iter(|| {
            let req: GetSecretValueRequest =
                serde_json::from_slice(black_box(REQUEST)).expect("decodes");
            req.check().is_ok()
        })
    });
    let resp = response();
    g.bench_function("encode_response", |b| {
        b.iter(|| serde_json::to_vec(black_box(&resp)))
    });
    g.finish();
}

criterion_group!(benches, bench_dto);
criterion_main!(benches);
