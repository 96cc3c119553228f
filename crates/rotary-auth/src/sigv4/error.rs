//! Authentication errors, shaped like AWS's.

use std::fmt;

/// Why a request failed authentication: an AWS error code plus AWS's message text.
///
/// The message only ever echoes what the client sent in headers (as AWS does); it never
/// holds secret keys, derived keys or body bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct AuthError {
    /// Which AWS error this is; the wire layer maps it to `__type`.
    pub code: AuthErrorCode,
    /// AWS's message text for this failure.
    pub message: String,
}

impl AuthError {
    pub(crate) fn new(code: AuthErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn missing_token() -> Self {
        Self::new(
            AuthErrorCode::MissingAuthenticationToken,
            msg::MISSING_TOKEN,
        )
    }

    pub(crate) fn incomplete(message: impl Into<String>) -> Self {
        Self::new(AuthErrorCode::IncompleteSignature, message)
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(AuthErrorCode::InvalidSignature, message)
    }

    pub(crate) fn mismatch() -> Self {
        Self::invalid(msg::SIGNATURE_MISMATCH)
    }

    pub(crate) fn unrecognized() -> Self {
        Self::new(AuthErrorCode::UnrecognizedClient, msg::INVALID_TOKEN)
    }
}

/// AWS error codes that authentication can produce (all HTTP 400 in Secrets Manager).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthErrorCode {
    /// No usable `Authorization` header at all.
    MissingAuthenticationToken,
    /// The `Authorization` header or the date is malformed or incomplete.
    IncompleteSignature,
    /// Well-formed, but the signature, scope or time does not check out.
    InvalidSignature,
    /// Unknown access key, or a session token that does not belong to it.
    UnrecognizedClient,
    /// Authenticated, but not allowed (produced by policy evaluation, not by SigV4).
    AccessDenied,
}

impl AuthErrorCode {
    /// The exact `__type` string AWS returns for this code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MissingAuthenticationToken => "MissingAuthenticationTokenException",
            Self::IncompleteSignature => "IncompleteSignatureException",
            Self::InvalidSignature => "InvalidSignatureException",
            Self::UnrecognizedClient => "UnrecognizedClientException",
            Self::AccessDenied => "AccessDeniedException",
        }
    }
}

impl fmt::Display for AuthErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Fixed AWS message texts (the variable ones are built where they are detected).
pub(crate) mod msg {
    /// Secrets Manager's text (other AWS front ends say "Request is missing Authentication
    /// Token"); see aws/aws-sdk-cpp#2466.
    pub(crate) const MISSING_TOKEN: &str = "Missing Authentication Token";
    pub(crate) const INVALID_TOKEN: &str = "The security token included in the request is invalid.";
    pub(crate) const SIGNATURE_MISMATCH: &str = "The request signature we calculated does not \
        match the signature you provided. Check your AWS Secret Access Key and signing method. \
        Consult the service documentation for details.";
    // AWS's texts for the two headers it always requires to be signed.
    pub(crate) const HOST_NOT_SIGNED: &str =
        "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.";
    pub(crate) const DATE_NOT_SIGNED: &str =
        "'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization.";
    // Rotary also requires these to be signed when sent (issue #9). AWS has no text for
    // them, so they reuse the shape of its `Host`/`X-Amz-Date` texts, with the same type
    // (InvalidSignatureException).
    pub(crate) const TARGET_NOT_SIGNED: &str =
        "'X-Amz-Target' must be a 'SignedHeader' in the AWS Authorization.";
    pub(crate) const CONTENT_TYPE_NOT_SIGNED: &str =
        "'Content-Type' must be a 'SignedHeader' in the AWS Authorization.";
    pub(crate) const TOKEN_NOT_SIGNED: &str =
        "'X-Amz-Security-Token' must be a 'SignedHeader' in the AWS Authorization.";
    pub(crate) const CONTENT_SHA256_NOT_SIGNED: &str =
        "'X-Amz-Content-SHA256' must be a 'SignedHeader' in the AWS Authorization.";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_aws_type_strings() {
        let all = [
            (
                AuthErrorCode::MissingAuthenticationToken,
                "MissingAuthenticationTokenException",
            ),
            (
                AuthErrorCode::IncompleteSignature,
                "IncompleteSignatureException",
            ),
            (AuthErrorCode::InvalidSignature, "InvalidSignatureException"),
            (
                AuthErrorCode::UnrecognizedClient,
                "UnrecognizedClientException",
            ),
            (AuthErrorCode::AccessDenied, "AccessDeniedException"),
        ];
        for (code, s) in all {
            assert_eq!(code.as_str(), s);
            assert_eq!(code.to_string(), s);
        }
    }

    #[test]
    fn display_is_code_then_message() {
        let e = AuthError::missing_token();
        assert_eq!(
            e.to_string(),
            "MissingAuthenticationTokenException: Missing Authentication Token"
        );
    }

    #[test]
    fn mismatch_text_is_awss() {
        assert_eq!(
            AuthError::mismatch().message,
            "The request signature we calculated does not match the signature you provided. \
             Check your AWS Secret Access Key and signing method. Consult the service \
             documentation for details."
        );
    }
}
