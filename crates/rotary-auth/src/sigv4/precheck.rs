//! The checks of SigV4 that need no body, run before the server reads one (issue #9).
//!
//! An unauthenticated client must not make the server buffer a request body. [`precheck`]
//! runs, in the verifier's order, every check that looks at headers only: the
//! `Authorization` header's shape, the `X-Amz-Date` format and clock skew, the headers that
//! must be signed, the algorithm, the credential scope (region, service, terminator, day),
//! whether every signed header is present and whether the access key is known. A request failing any of them gets the same error that
//! [`Verifier::verify`](super::Verifier::verify) would give it; one that passes is still
//! fully verified, body hash and signature included, once the body is read.
//!
//! The one difference: the verifier computes the body hash (and so can report a body that
//! does not match `x-amz-content-sha256`) before the checks that follow it (every signed
//! header present, the access key known); here those are reported first, since the body is
//! not read yet.

use time::OffsetDateTime;

use super::verify::{check_scope, check_signed_headers, check_skew, Strictness};
use super::{canonical, header, parse, AuthError, CredentialSource, RequestParts};

/// Checks everything about `req` that does not need its body, for a server of `region` and
/// `service`, at `now`. `req.body` is ignored (pass an empty slice).
///
/// `Ok` means only that the request may be worth reading: it names a known access key, is
/// dated within the window and is scoped to this server. It is not authenticated until
/// [`Verifier::verify`](super::Verifier::verify) accepts it with its body.
pub fn precheck(
    req: &RequestParts<'_>,
    region: &str,
    service: &str,
    creds: &dyn CredentialSource,
    now: OffsetDateTime,
) -> Result<(), AuthError> {
    let Some(authorization) = req.first_header(header::AUTHORIZATION) else {
        return Err(AuthError::missing_token());
    };
    let authorization = String::from_utf8_lossy(authorization);
    let amz_date = req
        .first_header(header::X_AMZ_DATE)
        .map(String::from_utf8_lossy);
    let auth = parse::authorization(&authorization, amz_date.is_some())?;
    let amz_date = amz_date.unwrap_or_default();

    let request_time = parse::amz_date(&amz_date)?;
    check_skew(request_time, now)?;

    let signed = parse::signed_headers(auth.signed_headers);
    check_signed_headers(req, &signed, Strictness::Strict)?;

    if auth.algorithm != super::ALGORITHM {
        return Err(AuthError::incomplete(format!(
            "Unsupported AWS 'algorithm': '{}' (only AWS4-HMAC-SHA256 for now). ",
            auth.algorithm
        )));
    }

    let scope = parse::credential(auth.credential)?;
    check_scope(&scope, &amz_date, region, service)?;

    // The verifier builds the canonical request, which needs every signed header, before it
    // looks the key up; so an unknown key must not hide a missing signed header here either.
    canonical::check_signed_headers_exist(req, &signed)?;

    if creds.lookup(scope.access_key_id).is_none() {
        return Err(AuthError::unrecognized());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use time::macros::datetime;

    use super::*;
    use crate::sigv4::{Credential, SecretKey, Verifier};
    use crate::{AuthErrorCode, Principal, PrincipalKind};

    const NOW: OffsetDateTime = datetime!(2025-11-06 13:26:08 UTC);
    const GOOD_AUTH: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20251106/us-east-1/secretsmanager/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=00";

    struct Keys(HashMap<String, Credential>);

    impl CredentialSource for Keys {
        fn lookup(&self, access_key_id: &str) -> Option<Credential> {
            self.0.get(access_key_id).cloned()
        }
    }

    fn keys() -> Keys {
        let principal = Principal {
            account_id: "123456789012".to_owned(),
            arn: "arn:aws:iam::123456789012:root".to_owned(),
            access_key_id: "AKIDEXAMPLE".to_owned(),
            kind: PrincipalKind::User {
                name: "root".to_owned(),
            },
        };
        Keys(HashMap::from([(
            "AKIDEXAMPLE".to_owned(),
            Credential {
                secret_access_key: SecretKey::new("secret".to_owned()),
                session_token: None,
                principal,
            },
        )]))
    }

    fn run(auth: Option<&str>, date: &str) -> Result<(), AuthError> {
        let mut headers: Vec<(&str, &[u8])> = vec![
            ("host", b"localhost"),
            ("x-amz-date", date.as_bytes()),
            ("x-amz-target", b"secretsmanager.ListSecrets"),
            ("content-type", b"application/x-amz-json-1.1"),
        ];
        if let Some(a) = auth {
            headers.push(("authorization", a.as_bytes()));
        }
        let req = RequestParts {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            body: b"",
        };
        let pre = precheck(&req, "us-east-1", "secretsmanager", &keys(), NOW);
        // Whatever the pre-check refuses, full verification refuses the same way.
        if let Err(e) = &pre {
            let full = Verifier::new("us-east-1", "secretsmanager")
                .verify(&req, &keys(), NOW)
                .unwrap_err();
            assert_eq!(&full, e);
        }
        pre
    }

    #[test]
    fn well_formed_known_key_passes() {
        assert!(run(Some(GOOD_AUTH), "20251106T132608Z").is_ok());
    }

    #[test]
    fn refusals_match_full_verification() {
        let cases: [(Option<&str>, &str, AuthErrorCode); 7] = [
            (None, "20251106T132608Z", AuthErrorCode::MissingAuthenticationToken),
            (
                Some("AWS4-HMAC-SHA256 Credential=x"),
                "20251106T132608Z",
                AuthErrorCode::IncompleteSignature,
            ),
            (Some(GOOD_AUTH), "2025-11-06", AuthErrorCode::IncompleteSignature),
            (Some(GOOD_AUTH), "20251106T120000Z", AuthErrorCode::InvalidSignature),
            (
                Some("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20251106/eu-west-1/secretsmanager/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=00"),
                "20251106T132608Z",
                AuthErrorCode::InvalidSignature,
            ),
            (
                Some("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20251106/us-east-1/secretsmanager/aws4_request, SignedHeaders=host;x-amz-date, Signature=00"),
                "20251106T132608Z",
                AuthErrorCode::InvalidSignature,
            ),
            (
                Some("AWS4-HMAC-SHA256 Credential=NOBODY/20251106/us-east-1/secretsmanager/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=00"),
                "20251106T132608Z",
                AuthErrorCode::UnrecognizedClient,
            ),
        ];
        for (auth, date, code) in cases {
            let e = run(auth, date).unwrap_err();
            assert_eq!(e.code, code, "{auth:?} {date}: {e}");
        }
    }

    // See: #12 (found by the `sigv4` fuzz target; input in fuzz/regressions/sigv4/).
    #[test]
    fn issue_12_missing_signed_header_is_reported_before_an_unknown_key() {
        let auth = "AWS4-HMAC-SHA256 Credential=NOBODY/20251106/us-east-1/secretsmanager/aws4_request, SignedHeaders=content-type;host;my-header2;x-amz-date;x-amz-target, Signature=00";
        let e = run(Some(auth), "20251106T132608Z").unwrap_err();
        assert_eq!(e.code, AuthErrorCode::IncompleteSignature);
        assert_eq!(
            e.message,
            "'my-header2' is named as a SignedHeader, but it does not exist in the HTTP request."
        );
        // With a known key too: the request is not worth reading.
        let auth = auth.replace("NOBODY", "AKIDEXAMPLE");
        let e = run(Some(&auth), "20251106T132608Z").unwrap_err();
        assert_eq!(e.code, AuthErrorCode::IncompleteSignature);
    }
}
