//! AWS error codes, their HTTP statuses, and the `ApiError` every operation returns.

use std::borrow::Cow;
use std::fmt;

use serde::Serialize;

macro_rules! error_codes {
    ($( $variant:ident => $status:expr ),* $(,)?) => {
        /// The `__type` of an AWS error response; the variant name is the exact wire string.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode { $( #[allow(missing_docs)] $variant ),* }

        impl ErrorCode {
            /// The exact `__type` string.
            pub fn as_str(self) -> &'static str {
                match self { $( ErrorCode::$variant => stringify!($variant) ),* }
            }
            /// The HTTP status AWS answers with.
            pub fn http_status(self) -> u16 {
                match self { $( ErrorCode::$variant => $status ),* }
            }
            /// Every code, for exhaustive tests and metrics.
            pub const ALL: &'static [ErrorCode] = &[ $( ErrorCode::$variant ),* ];
        }
    };
}

// Every client error is 400 on Secrets Manager, ResourceNotFound and AccessDenied included
// (spec §1.2); InternalServiceError is the only modelled fault.
error_codes! {
    ResourceNotFoundException => 400,
    InvalidParameterException => 400,
    InvalidRequestException => 400,
    ResourceExistsException => 400,
    LimitExceededException => 400,
    EncryptionFailure => 400,
    DecryptionFailure => 400,
    MalformedPolicyDocumentException => 400,
    PublicPolicyException => 400,
    PreconditionNotMetException => 400,
    InvalidNextTokenException => 400,
    ValidationException => 400,
    AccessDeniedException => 400,
    SerializationException => 400,
    UnknownOperationException => 400,
    MissingAuthenticationTokenException => 400,
    IncompleteSignatureException => 400,
    InvalidSignatureException => 400,
    UnrecognizedClientException => 400,
    ThrottlingException => 400,
    InternalServiceError => 500,
}

impl ErrorCode {
    /// Parses an exact `__type` string.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error answered to the client: a code and a message that never holds a secret value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    code: ErrorCode,
    message: Cow<'static, str>,
}

impl ApiError {
    /// Builds an error from a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The error code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The message sent to the client.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The generic server fault; the cause is logged by the caller, never sent.
    pub fn internal() -> Self {
        Self::new(
            ErrorCode::InternalServiceError,
            "An error occurred on the server side.",
        )
    }

    /// The JSON body `{"__type": ..., "Message": ...}`.
    pub fn to_body(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct Body<'a> {
            #[serde(rename = "__type")]
            ty: &'a str,
            #[serde(rename = "Message")]
            message: &'a str,
        }
        serde_json::to_vec(&Body {
            ty: self.code.as_str(),
            message: &self.message,
        })
        .unwrap_or_default()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

/// Builds an [`ApiError`]: `api_error!(ResourceNotFoundException, "text {x}")`.
#[macro_export]
macro_rules! api_error {
    ($code:ident, $lit:literal) => {
        $crate::ApiError::new($crate::ErrorCode::$code, format!($lit))
    };
    ($code:ident, $($arg:tt)+) => {
        $crate::ApiError::new($crate::ErrorCode::$code, format!($($arg)+))
    };
}

/// Result with an [`ApiError`].
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_uses_type_and_capital_message() {
        let e = api_error!(
            ResourceNotFoundException,
            "Secrets Manager can't find the specified secret."
        );
        let v: serde_json::Value = serde_json::from_slice(&e.to_body()).unwrap();
        assert_eq!(v["__type"], "ResourceNotFoundException");
        assert_eq!(
            v["Message"],
            "Secrets Manager can't find the specified secret."
        );
    }

    #[test]
    fn only_internal_error_is_a_fault() {
        for c in ErrorCode::ALL {
            let want = if *c == ErrorCode::InternalServiceError {
                500
            } else {
                400
            };
            assert_eq!(c.http_status(), want, "{c}");
            assert_eq!(ErrorCode::parse(c.as_str()), Some(*c));
        }
    }
}
