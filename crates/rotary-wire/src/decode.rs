//! Request body → typed request: the JSON 1.1 decoding rule every operation uses.

use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Decodes a request body into the request shape `T`. A body of only whitespace counts as
/// `{}` (SDKs send no body for operations without members); errors are
/// `SerializationException` and their text never echoes the input, which may hold secret
/// values.
pub fn decode_request<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => crate::api_error!(
            SerializationException,
            "A member of the request has the wrong JSON type, or the body is not a JSON object."
        ),
        _ => crate::api_error!(
            SerializationException,
            "The request body is not valid JSON."
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dto::{GetSecretValueRequest, ListSecretsRequest};
    use crate::ErrorCode;

    #[test]
    fn decode_empty_body_is_an_empty_request() {
        for body in [&b""[..], b"  \n\t"] {
            let req: ListSecretsRequest = decode_request(body).unwrap();
            assert!(req.filters.is_none() && req.max_results.is_none());
        }
    }

    #[test]
    fn decode_errors_are_serialization_exceptions_without_the_input() {
        let e = decode_request::<GetSecretValueRequest>(br#"{"SecretId": 7}"#).unwrap_err();
        assert_eq!(e.code(), ErrorCode::SerializationException);
        assert!(e.message().contains("wrong JSON type"));
        let e = decode_request::<GetSecretValueRequest>(br#"{"SecretId": "canary"#).unwrap_err();
        assert_eq!(e.code(), ErrorCode::SerializationException);
        assert!(!e.message().contains("canary"));
    }
}
