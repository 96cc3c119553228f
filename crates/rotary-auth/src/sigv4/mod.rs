//! AWS Signature Version 4 verification (header form only; no presigned URLs).
//!
//! Split as the algorithm is: `parse` reads the `Authorization` header, `X-Amz-Date` and
//! the credential scope; `canonical` builds the canonical request and string to sign;
//! `verify` runs the checks in AWS's order, derives (and caches) the signing key and
//! compares signatures.
//!
//! Verification is always strict (issue #9): the payload hash is the SHA-256 of the body the
//! server received (a client's `x-amz-content-sha256`, `UNSIGNED-PAYLOAD` included, must equal
//! it), and every header that selects what a request does or who sends it (`host`,
//! `x-amz-date`, `x-amz-target`, `content-type`, `x-amz-security-token`,
//! `x-amz-content-sha256`) must be signed whenever it is sent. There is no switch for it.
//!
//! Reference: <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html>.
//! Error texts are AWS's, as returned by its JSON services (Coral); see `aws-sm-spec.md` §1.3.

mod canonical;
mod credential;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod parse;
mod precheck;
mod verify;

#[cfg(test)]
mod vectors;

pub use credential::{Credential, CredentialSource, SecretKey};
pub use error::{AuthError, AuthErrorCode};
pub use precheck::precheck;
pub use verify::{Prechecked, Verifier};

/// The only signing algorithm accepted.
const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// Last element of every credential scope.
const TERMINATOR: &str = "aws4_request";

/// Lower-case header names used by SigV4.
mod header {
    pub(super) const AUTHORIZATION: &str = "authorization";
    pub(super) const HOST: &str = "host";
    pub(super) const X_AMZ_DATE: &str = "x-amz-date";
    pub(super) const X_AMZ_SECURITY_TOKEN: &str = "x-amz-security-token";
    pub(super) const X_AMZ_CONTENT_SHA256: &str = "x-amz-content-sha256";
    pub(super) const X_AMZ_TARGET: &str = "x-amz-target";
    pub(super) const CONTENT_TYPE: &str = "content-type";
}

/// The parts of an HTTP request that SigV4 covers, borrowed from the server's request.
///
/// Give the request exactly as received: the signature covers the client's bytes, so nothing
/// may be decoded or re-cased first.
#[derive(Clone, Copy)]
pub struct RequestParts<'a> {
    /// HTTP method, e.g. `POST`.
    pub method: &'a str,
    /// Path as sent on the wire, still percent-encoded, without the query (e.g. `/`).
    pub path: &'a str,
    /// Raw query string without the leading `?`; empty when there is none.
    pub query: &'a str,
    /// Headers in the order received; names in any case, duplicates allowed. Must include
    /// `host` (for HTTP/2, the server adds it from `:authority`).
    pub headers: &'a [(&'a str, &'a [u8])],
    /// The complete request body.
    pub body: &'a [u8],
}

impl<'a> RequestParts<'a> {
    /// Values of every header called `name` (lower case), in the order received, trimmed of
    /// optional whitespace.
    fn header_values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'a [u8]> + 's {
        self.headers
            .iter()
            // Names from hyper are lower case already, as `name` is: compare exactly first.
            .filter(move |(n, _)| *n == name || n.eq_ignore_ascii_case(name))
            .map(|(_, v)| trim_ows(v))
    }

    /// `POST /` without a query, as every API request is: the tests' request.
    #[cfg(test)]
    pub(crate) fn post(headers: &'a [(&'a str, &'a [u8])], body: &'a [u8]) -> Self {
        RequestParts {
            method: "POST",
            path: "/",
            query: "",
            headers,
            body,
        }
    }

    /// The first header called `name` (lower case); later duplicates are ignored, as AWS does.
    fn first_header(&self, name: &str) -> Option<&'a [u8]> {
        self.header_values(name).next()
    }
}

impl std::fmt::Debug for RequestParts<'_> {
    /// Method, path, query and header names only: header values may carry session tokens,
    /// and the body may carry secret values.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| *n).collect();
        f.debug_struct("RequestParts")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("query", &self.query)
            .field("header_names", &names)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// Strips HTTP optional whitespace (spaces and tabs) from both ends.
fn trim_ows(v: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = v.iter().position(|b| !is_ows(b)).unwrap_or(v.len());
    let end = v.iter().rposition(|b| !is_ows(b)).map_or(start, |i| i + 1);
    &v[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trim_ows_strips_spaces_and_tabs_only() {
        assert_eq!(trim_ows(b" \t a b \t"), b"a b");
        assert_eq!(trim_ows(b"   "), b"");
        assert_eq!(trim_ows(b""), b"");
        assert_eq!(trim_ows(b"\na\n"), b"\na\n");
    }

    #[test]
    fn header_lookup_ignores_case_and_keeps_order() {
        let headers: &[(&str, &[u8])] =
            &[("X-Thing", b" one "), ("host", b"h"), ("x-thing", b"two")];
        let req = RequestParts {
            method: "GET",
            path: "/",
            query: "",
            headers,
            body: b"",
        };
        let got: Vec<&[u8]> = req.header_values("x-thing").collect();
        assert_eq!(got, vec![&b"one"[..], &b"two"[..]]);
        assert_eq!(req.first_header("x-thing"), Some(&b"one"[..]));
        assert_eq!(req.first_header("missing"), None);
    }

    #[test]
    fn request_parts_debug_hides_values_and_body() {
        let headers: &[(&str, &[u8])] = &[("x-amz-security-token", b"tok-canary")];
        let req = RequestParts::post(headers, b"body-canary");
        let dbg = format!("{req:?}");
        assert!(!dbg.contains("canary"), "{dbg}");
        assert!(dbg.contains("x-amz-security-token"));
    }
}
