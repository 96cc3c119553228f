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

use super::verify::{header_checks, Checked, HeaderChecks, Prechecked, Strictness};
use super::{canonical, header, AuthError, Credential, CredentialSource, RequestParts};

/// Checks everything about `req` that does not need its body, for a server of `region` and
/// `service`, at `now`. `req.body` is ignored (pass an empty slice).
///
/// `Ok` means only that the request may be worth reading: it names a known access key, is
/// dated within the window and is scoped to this server. It is not authenticated until
/// [`Verifier::verify`](super::Verifier::verify) accepts it with its body.
pub fn precheck<'h>(
    req: &RequestParts<'h>,
    region: &str,
    service: &str,
    creds: &dyn CredentialSource,
    now: OffsetDateTime,
) -> Result<Prechecked<'h>, AuthError> {
    let Some(authorization) = req.first_header(header::AUTHORIZATION) else {
        return Err(AuthError::missing_token());
    };
    let amz_date = req.first_header(header::X_AMZ_DATE);
    let (Ok(authorization), Ok(amz_date)) = (
        std::str::from_utf8(authorization),
        amz_date.map(std::str::from_utf8).transpose(),
    ) else {
        // A header that is not UTF-8: checked as the verifier reads it (invalid bytes
        // replaced), and verified from scratch later.
        let authorization = String::from_utf8_lossy(authorization);
        let amz_date = amz_date.map(String::from_utf8_lossy);
        let checked = header_checks(
            req,
            &authorization,
            amz_date.as_deref(),
            region,
            service,
            now,
            Strictness::Strict,
        )?;
        lookup(req, &checked, creds)?;
        return Ok(Prechecked(None));
    };
    let headers = header_checks(
        req,
        authorization,
        amz_date,
        region,
        service,
        now,
        Strictness::Strict,
    )?;
    let credential = lookup(req, &headers, creds)?;
    Ok(Prechecked(Some(Checked {
        headers,
        credential,
    })))
}

/// The last two header-only checks: every signed header present, then the access key known.
fn lookup(
    req: &RequestParts<'_>,
    checked: &HeaderChecks<'_>,
    creds: &dyn CredentialSource,
) -> Result<Credential, AuthError> {
    // The verifier builds the canonical request, which needs every signed header, before it
    // looks the key up; so an unknown key must not hide a missing signed header here either.
    canonical::check_signed_headers_exist(req, &checked.signed)?;
    creds
        .lookup(checked.scope.access_key_id)
        .ok_or_else(AuthError::unrecognized)
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

    /// Owned headers as [`RequestParts`] takes them.
    fn pairs(headers: &[(String, Vec<u8>)]) -> Vec<(&str, &[u8])> {
        headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_slice()))
            .collect()
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
        let req = RequestParts::post(&headers, b"");
        let pre = precheck(&req, "us-east-1", "secretsmanager", &keys(), NOW);
        // Whatever the pre-check refuses, full verification refuses the same way.
        if let Err(e) = &pre {
            let full = Verifier::new("us-east-1", "secretsmanager")
                .verify(&req, &keys(), NOW)
                .unwrap_err();
            assert_eq!(&full, e);
        }
        pre.map(|_| ())
    }

    /// A request signed with the key of [`keys`], as the SDKs sign it.
    fn signed_request(body: &[u8]) -> (Vec<(String, Vec<u8>)>, Vec<u8>) {
        let date = "20251106T132608Z";
        let mut headers: Vec<(String, Vec<u8>)> = vec![
            ("host".into(), b"localhost".to_vec()),
            ("x-amz-date".into(), date.as_bytes().to_vec()),
            (
                "x-amz-target".into(),
                b"secretsmanager.ListSecrets".to_vec(),
            ),
            (
                "content-type".into(),
                b"application/x-amz-json-1.1".to_vec(),
            ),
        ];
        let mut signed: Vec<String> = headers.iter().map(|(n, _)| n.clone()).collect();
        signed.sort();
        let pairs = pairs(&headers);
        let auth = crate::sigv4::fuzzing::sign(
            &RequestParts::post(&pairs, body),
            "secret",
            "AKIDEXAMPLE",
            date,
            "us-east-1",
            "secretsmanager",
            &signed,
        )
        .expect("signs");
        headers.push(("authorization".into(), auth.into_bytes()));
        (headers, body.to_vec())
    }

    /// Pre-check, then the verification finished with the body `sent` (the body signed may
    /// differ), against verifying from scratch: the same result.
    fn both(headers: &[(String, Vec<u8>)], sent: &[u8]) -> Result<Principal, AuthError> {
        let pairs = pairs(headers);
        let head = RequestParts::post(&pairs, b"");
        let full = RequestParts::post(&pairs, sent);
        let v = Verifier::new("us-east-1", "secretsmanager");
        let pre = precheck(&head, "us-east-1", "secretsmanager", &keys(), NOW)?;
        let finished = v.verify_prechecked(&full, pre, &keys(), NOW);
        let scratch = v.verify(&full, &keys(), NOW);
        assert_eq!(
            finished.as_ref().map(|p| p.arn.clone()),
            scratch.as_ref().map(|p| p.arn.clone())
        );
        finished
    }

    #[test]
    fn finishing_a_precheck_verifies_the_body_and_signature() {
        let (headers, body) = signed_request(b"{}");
        assert_eq!(
            both(&headers, &body).expect("verified").arn,
            "arn:aws:iam::123456789012:root"
        );
        let err = both(&headers, b"{\"MaxResults\":1}").unwrap_err();
        assert_eq!(err.code, AuthErrorCode::InvalidSignature);
    }

    #[test]
    fn finishing_a_precheck_checks_the_clock_again() {
        let (headers, body) = signed_request(b"{}");
        let pairs = pairs(&headers);
        let req = RequestParts::post(&pairs, &body);
        let pre = precheck(&req, "us-east-1", "secretsmanager", &keys(), NOW).expect("passes");
        // The body took ten minutes to arrive.
        let later = NOW + time::Duration::minutes(10);
        let err = Verifier::new("us-east-1", "secretsmanager")
            .verify_prechecked(&req, pre, &keys(), later)
            .unwrap_err();
        assert_eq!(err.code, AuthErrorCode::InvalidSignature);
        assert!(
            err.message.starts_with("Signature expired"),
            "{}",
            err.message
        );
    }

    #[test]
    fn a_header_that_is_not_utf8_is_verified_from_scratch() {
        let (mut headers, body) = signed_request(b"{}");
        let auth = headers.last_mut().expect("authorization");
        auth.1.truncate(auth.1.len() - 2);
        auth.1.extend_from_slice(&[0xff, 0xfe]);
        let err = both(&headers, &body).unwrap_err();
        assert_eq!(err.code, AuthErrorCode::InvalidSignature);
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
