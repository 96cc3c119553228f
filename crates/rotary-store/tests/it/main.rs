//! The store's integration tests: one conformance suite run against every backend
//! (`conformance`), and what only PostgreSQL has (`postgres`: the change feed between
//! nodes, concurrent migrations, a server restart, TLS modes).
//!
//! PostgreSQL tests start a throwaway server once for this binary
//! (`rotary_store::testing`), or use `ROTARY_TEST_POSTGRES_URL`; each test gets a database
//! of its own.

// Test support code outside #[test] functions unwraps too: a panic is a failed test.
#![allow(clippy::unwrap_used)]

mod backend;
mod conformance;
mod postgres;
