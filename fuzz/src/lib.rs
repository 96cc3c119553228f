//! Shared pieces of Rotary's fuzz targets (see `docs/fuzzing.md`).
//!
//! Every target reads a readable text input, so that seed inputs in `fuzz/corpus/<target>/`
//! can be real request bodies, headers, policies and expressions taken from the tests, and
//! libFuzzer's mutations stay close to real inputs.
//!
//! rotary-core's schedule and filter modules are compiled here straight from their source
//! files: they are pure (they use nothing else of rotary-core), and depending on the whole
//! rotary-core crate would build sqlx, SQLite and tokio with coverage instrumentation, which
//! alone costs minutes of the CI budget. If one of them starts to use `crate::…`, this build
//! fails and the module needs a small `pub` entry point in rotary-core instead.

#[allow(dead_code, unreachable_pub)]
#[path = "../../crates/rotary-core/src/schedule/mod.rs"]
pub mod schedule;

#[allow(dead_code, unreachable_pub)]
#[path = "../../crates/rotary-core/src/filter.rs"]
pub mod filter;

/// FNV-1a of `data`: a cheap, stable way to derive the values a text input does not spell
/// out (a clock reading, a choice), so that different inputs explore different values.
pub fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// `2024-01-01T00:00:00Z` in milliseconds: the base of derived clock readings.
pub const BASE_MS: i64 = 1_704_067_200_000;

/// A clock reading derived from `seed`: within about ten years after [`BASE_MS`].
pub fn derived_ms(seed: u64) -> i64 {
    const TEN_YEARS_MS: u64 = 10 * 366 * 24 * 3_600_000;
    // The remainder is below ten years in milliseconds, far inside i64.
    BASE_MS + i64::try_from(seed % TEN_YEARS_MS).unwrap_or(0)
}
