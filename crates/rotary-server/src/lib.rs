//! Rotary's HTTP server: the AWS JSON 1.1 endpoint, `/health` and `/metrics`.
//!
//! Every `POST /` is authenticated with SigV4 before anything else is looked at, then
//! dispatched by `X-Amz-Target` to the domain service. Errors are answered in AWS's shape
//! (`{"__type","Message"}`, `x-amzn-RequestId`), 400 for client errors and 500 for faults.
//!
//! It must never log request bodies or response bodies: they carry secret values.
//!
//! # Invariants
//! - No request reaches an operation without a verified principal; there is no switch that
//!   turns authentication off.

mod dispatch;
mod metrics;
mod router;

pub use metrics::Metrics;
pub use router::{router, AppState, MAX_BODY_BYTES};
