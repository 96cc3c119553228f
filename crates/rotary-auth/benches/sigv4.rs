//! SigV4 verification of a Secrets Manager request as an SDK signs it (issue #15).
//!
//! The request is signed once with `aws-sigv4`, the SDKs' signer; each iteration verifies it
//! as the server does for every call: parse, canonical request, string to sign, credential
//! lookup, signing key (from the verifier's cache after the first call, as in steady state)
//! and the constant-time compare.

// criterion_main! generates an undocumented main.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use criterion::{criterion_group, criterion_main, Criterion};
use rotary_auth::sigv4::RequestParts;
use rotary_auth::{root_credential, CredentialTable, SecretKey, Verifier};
use time::macros::datetime;
use time::OffsetDateTime;

const AKID: &str = "AKIABENCH00000000000";
const SECRET: &str = "bench-secret-key";
const HOST: &str = "127.0.0.1:8750";
const NOW: OffsetDateTime = datetime!(2026-11-30 20:00:00 UTC);
const BODY: &[u8] = br#"{"SecretId":"hot-000000"}"#;

/// The headers of a signed GetSecretValue request, in the order a client sends them.
fn signed_headers() -> Vec<(String, String)> {
    let identity = Credentials::new(AKID, SECRET, None, None, "bench").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("secretsmanager")
        .time(SystemTime::from(NOW))
        .settings(SigningSettings::default())
        .build()
        .expect("signing params")
        .into();
    let headers = [
        ("host", HOST),
        ("content-type", "application/x-amz-json-1.1"),
        ("x-amz-target", "secretsmanager.GetSecretValue"),
    ];
    let signable = SignableRequest::new(
        "POST",
        format!("http://{HOST}/"),
        headers.iter().copied(),
        SignableBody::Bytes(BODY),
    )
    .expect("signable request");
    let (instructions, _) = sign(signable, &params).expect("signature").into_parts();
    let mut out: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
    for (name, value) in instructions.headers() {
        out.push((name.to_owned(), value.to_owned()));
    }
    out
}

fn bench_verify(c: &mut Criterion) {
    let owned = signed_headers();
    let headers: Vec<(&str, &[u8])> = owned
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_bytes()))
        .collect();
    let req = RequestParts {
        method: "POST",
        path: "/",
        query: "",
        headers: &headers,
        body: BODY,
    };
    let creds = CredentialTable::new();
    creds.insert(
        AKID.to_owned(),
        root_credential("000000000000", AKID, SecretKey::new(SECRET.to_owned())),
    );
    let verifier = Verifier::new("us-east-1", "secretsmanager");
    verifier
        .verify(&req, &creds, NOW)
        .expect("the SDK-signed request verifies");
    c.bench_function("sigv4_verify_get_secret_value", |b| {
        b.iter(|| verifier.verify(black_box(&req), &creds, NOW))
    });
}

criterion_group!(benches, bench_verify);
criterion_main!(benches);
