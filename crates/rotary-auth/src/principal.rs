//! Who a verified request acts as.

/// The identity behind a request whose signature verified.
///
/// Produced only by [`crate::Verifier::verify`] (from the [`crate::Credential`] that the
/// [`crate::CredentialSource`] returned); policy evaluation and auditing use it afterwards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// 12-digit account id the principal belongs to.
    pub account_id: String,
    /// ARN of the principal, e.g. `arn:aws:iam::123456789012:user/alice`.
    pub arn: String,
    /// Access key id the request was signed with (not secret; AWS logs it too).
    pub access_key_id: String,
    /// What kind of principal this is.
    pub kind: PrincipalKind,
}

/// The kind of a [`Principal`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrincipalKind {
    /// The account root: not subject to identity policies.
    Root,
    /// A long-lived user.
    User {
        /// User name (the last part of its ARN).
        name: String,
    },
    /// Temporary credentials (they carry a session token), e.g. issued to a rotation function.
    Session {
        /// Name of the session, for audit.
        session_name: String,
        /// ARNs of the secrets this session may act on; empty means none. The first is the
        /// secret being rotated (read and write); the others may only be read (its master
        /// secret).
        scope: Vec<String>,
    },
}
