//! Rotary's domain layer: the rules of AWS Secrets Manager over an encrypted store.
//!
//! [`SecretsService`] implements every operation on request/response shapes from
//! `rotary-wire`: secret ids (name, ARN, partial ARN), versions and staging labels,
//! idempotent client request tokens, deletion windows, tags, resource policies, and the
//! random-password generator. It seals every value with `rotary-crypto` before it reaches
//! the store.
//!
//! It must never see HTTP, never hand plaintext to the store, and never put a secret value
//! in an error, a log line or a panic message.
//!
//! # Invariants
//! - Each staging label is on at most one version of a secret; moving `AWSCURRENT` puts
//!   `AWSPREVIOUS` on the version it left.
//! - A replayed request (same token, same value) changes nothing.
//! - Every write is one store transaction, guarded by the secret's revision.

pub mod arn;
pub mod audit;
pub mod cache;
pub mod clock;
pub mod filter;
pub mod labels;
pub mod names;
pub mod policy;
pub mod random_password;
pub mod replication;
pub mod rotation;
pub mod schedule;
pub mod secret;
pub mod service;

pub use clock::{Clock, OffsetClock, SystemClock};
pub use service::{AuthzView, Ctx, Prefetched, SecretsService, ServiceConfig};
