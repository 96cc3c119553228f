//! End-to-end tests: the real `rotary` binary driven by the AWS SDK for Rust.

mod harness;
mod sdk;
mod tls;
