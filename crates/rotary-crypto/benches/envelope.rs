//! Envelope encryption of one secret version (issue #15): `open` is on every
//! GetSecretValue (unwrap the data key, then decrypt the value), `seal` on every write.

// criterion_main! generates an undocumented main.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use rotary_crypto::{Keyring, MasterKey};

const KMS_KEY: &str = "alias/aws/secretsmanager";
const AAD: &[u8] =
    b"arn:aws:secretsmanager:us-east-1:000000000000:secret:bench/db-AbCdEf0b4c6f9e-3a53-4f1e-9d2a-6c1b8f0e7d21";
const VALUE: &[u8] = br#"{"username": "app", "password": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}"#;

fn bench_envelope(c: &mut Criterion) {
    let keyring = Keyring::new(MasterKey::generate());
    keyring.generate(KMS_KEY).expect("KMS key");
    let sealed = keyring.seal(KMS_KEY, AAD, VALUE).expect("seal");
    assert_eq!(keyring.open(AAD, &sealed).expect("open").expose(), VALUE);

    let mut g = c.benchmark_group("envelope");
    g.bench_function("open", |b| {
        b.iter(|| keyring.open(black_box(AAD), black_box(&sealed)))
    });
    g.bench_function("seal", |b| {
        b.iter(|| keyring.seal(KMS_KEY, black_box(AAD), black_box(VALUE)))
    });
    g.finish();
}

criterion_group!(benches, bench_envelope);
criterion_main!(benches);
