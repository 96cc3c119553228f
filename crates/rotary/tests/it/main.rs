//! End-to-end tests: the real `rotary` binary driven by the AWS SDK for Rust.

// Test support code outside #[test] functions unwraps too: a panic is a failed test.
#![allow(clippy::unwrap_used)]

mod harness;
mod sdk;
mod tls;
