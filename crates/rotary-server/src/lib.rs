//! Rotary's HTTP server: the AWS JSON 1.1 endpoint, `/health`, `/metrics` and the web console
//! (`/console`, see `console`).
//!
//! Every `POST /` has its headers pre-checked (SigV4 shape, known access key, date, scope)
//! before its body is read, then is authenticated with SigV4 before anything else is looked
//! at, then dispatched by `X-Amz-Target` to the domain service. Errors are answered in AWS's
//! shape (`{"__type","Message"}`, `x-amzn-RequestId`), 400 for client errors and 500 for
//! faults.
//!
//! The accept loop ([`serve`]) applies the connection, header, idle, HTTP/2 and TLS settings
//! of [`Limits`]; the handler applies the body limits ([`BodyLimits`]).
//!
//! It must never log request bodies or response bodies: they carry secret values.
//!
//! # Invariants
//! - No request reaches an operation without a verified principal; there is no switch that
//!   turns authentication off.
//! - No request body is read before its headers pass the SigV4 pre-check, and the bodies
//!   held at once never exceed the body memory budget.

pub mod authz;
mod console;
mod dispatch;
pub mod iam;
pub mod kms;
mod limits;
mod listener;
mod metrics;
pub mod replication;
mod router;
pub mod signed_client;
mod tls;

pub use limits::{connections_for_fds, raise_fd_limit, BodyLimits, Limits, RESERVED_FDS};
pub use listener::{serve, serve_api, ConnInfo};
pub use metrics::Metrics;
pub use router::{metrics_router, router, AppShared, AppState, MetricsAccess, MAX_BODY_BYTES};
pub use tls::{TlsError, TlsFiles};
