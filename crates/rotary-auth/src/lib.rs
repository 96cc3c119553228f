//! Request authentication for Rotary: AWS Signature Version 4 verification and the
//! [`Principal`] a verified request acts as.
//!
//! The server hands [`Verifier::verify`] the raw parts of a request plus a
//! [`CredentialSource`]; it gets back the caller's [`Principal`] or an [`AuthError`] whose
//! code and message mirror what AWS Secrets Manager returns (see `aws-sm-spec.md` §1.3).
//! The crate is pure: no I/O, no clock (the caller passes `now`), no logging.
//!
//! It must never log, format or return secret access keys, derived signing keys or request
//! bodies: [`SecretKey`] prints `[REDACTED]`, and error messages only echo what the client
//! itself sent in headers (as AWS does).
//!
//! # Invariants
//! - Every failure is an `Err`; there is no configuration that skips verification.
//! - Signatures and session tokens are compared in constant time.
//! - A cached signing key is only reused for the exact secret it was derived from.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]
#![warn(missing_docs, unreachable_pub)]

pub mod policy;
pub mod principal;
pub mod sigv4;
pub mod table;

pub use principal::{Principal, PrincipalKind};
pub use sigv4::{
    AuthError, AuthErrorCode, Credential, CredentialSource, RequestParts, SecretKey, Verifier,
};
pub use table::{root_credential, root_principal, CredentialTable};
