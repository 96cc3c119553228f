//! Rotary's wire layer: the AWS JSON 1.1 protocol of Secrets Manager.
//!
//! This crate holds the request and response shapes (named as in botocore's service model),
//! the error-code table with HTTP statuses, the operation enum parsed from `X-Amz-Target`,
//! and the model constraints (lengths, ranges, enums) that AWS checks before any business
//! rule, reported as `ValidationException` with AWS's wording.
//!
//! It must never know about SQL, HTTP frameworks or encryption; secret values travel in
//! [`Sensitive`] so that `Debug` never prints them.
//!
//! # Invariants
//! - Every error body is `{"__type", "Message"}`, built by serde, never by `format!`.
//! - Members with no value are omitted from responses, never sent as `null`.

pub mod decode;
pub mod dto;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod json;
pub mod operation;
pub mod rotary_api;
pub mod sensitive;
pub mod timestamp;
pub mod validate;

pub use decode::decode_request;
pub use error::{ApiError, ErrorCode};
pub use operation::Operation;
pub use sensitive::{Blob, Sensitive};
pub use timestamp::Timestamp;
