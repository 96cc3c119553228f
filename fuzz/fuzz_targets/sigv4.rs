//! SigV4 parsing and verification (crates/rotary-auth/src/sigv4).
//!
//! Input: an HTTP/1.1-like request, e.g.
//! ```text
//! POST /?a=b
//! host: secretsmanager.us-east-1.amazonaws.com
//! x-amz-date: 20251106T132608Z
//! authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/…, SignedHeaders=…, Signature=…
//!
//! {"SecretId": "x"}
//! ```
//! The clock is the request's `x-amz-date` moved by up to ±400 s (derived from the input),
//! so the skew check passes or fails. The server's service is `secretsmanager`, or `service`
//! when the credential scope names it (AWS's test-suite vectors, `fuzz/corpus/sigv4`).
//!
//! Properties:
//! - parsing and verification never panic;
//! - `Authorization` parameters are pieces of the header; `Credential` splits into five parts
//!   that join back to it; `X-Amz-Date` re-formats to the same text;
//! - canonical query strings are a fixed point (canonicalizing one again changes nothing),
//!   canonical URIs are rooted, encoded and have no empty segment;
//! - `precheck` agrees with `verify`: it gives verify's error, except that it may report a
//!   missing signed header or an unknown key where verify reports a body that does not match
//!   its claimed hash; anything verify accepts passes it; and `verify_prechecked` finishes
//!   what it passes with verify's result;
//! - the same request signed correctly by the client algorithm is accepted as the key's
//!   principal, and is refused once its body changes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rotary_auth::sigv4::fuzzing as sig;
use rotary_auth::sigv4::precheck;
use rotary_auth::{
    AuthErrorCode, Credential, CredentialSource, Principal, PrincipalKind, RequestParts, SecretKey,
    Verifier,
};
use rotary_fuzz::fnv1a;
use time::OffsetDateTime;

const REGION: &str = "us-east-1";
const SERVICE: &str = "secretsmanager";
/// The service of AWS's generic SigV4 test-suite vectors.
const TEST_SUITE_SERVICE: &str = "service";
const AKID: &str = "AKIDEXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const TEMP_AKID: &str = "ASIATEMPEXAMPLE";
const TOKEN: &str = "session-token-example";

/// Two keys: a long-lived one and a temporary one with a session token.
struct Keys;

impl CredentialSource for Keys {
    fn lookup(&self, access_key_id: &str) -> Option<Credential> {
        let token = match access_key_id {
            AKID => None,
            TEMP_AKID => Some(TOKEN.to_owned()),
            _ => return None,
        };
        Some(Credential {
            secret_access_key: SecretKey::new(SECRET.to_owned()),
            session_token: token,
            principal: principal(access_key_id),
        })
    }
}

fn principal(access_key_id: &str) -> Principal {
    Principal {
        account_id: "123456789012".to_owned(),
        arn: format!("arn:aws:iam::123456789012:user/{access_key_id}"),
        access_key_id: access_key_id.to_owned(),
        kind: PrincipalKind::User {
            name: access_key_id.to_owned(),
        },
    }
}

/// An owned request parsed from the input text.
struct Req {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

impl Req {
    fn parse(data: &[u8]) -> Req {
        let (head, body) = match find(data, b"\n\n") {
            Some(i) => (&data[..i], &data[i + 2..]),
            None => (data, &[][..]),
        };
        let mut lines = head.split(|&b| b == b'\n');
        let first = String::from_utf8_lossy(lines.next().unwrap_or_default()).into_owned();
        let (method, target) = first.split_once(' ').unwrap_or((&first, "/"));
        // `GET / HTTP/1.1`, as AWS's test-suite vectors write it.
        let target = match target.rsplit_once(' ') {
            Some((t, version)) if version.starts_with("HTTP/") => t,
            _ => target,
        };
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let headers = lines
            .filter_map(|line| {
                let i = line.iter().position(|&b| b == b':')?;
                let name = String::from_utf8_lossy(&line[..i]).into_owned();
                Some((name, line[i + 1..].to_vec()))
            })
            .collect();
        Req {
            method: method.to_owned(),
            path: path.to_owned(),
            query: query.to_owned(),
            headers,
            body: body.to_vec(),
        }
    }

    fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    fn with_parts<T>(&self, f: impl FnOnce(&RequestParts<'_>) -> T) -> T {
        let headers: Vec<(&str, &[u8])> = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_slice()))
            .collect();
        f(&RequestParts {
            method: &self.method,
            path: &self.path,
            query: &self.query,
            headers: &headers,
            body: &self.body,
        })
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fuzz_target!(|data: &[u8]| {
    let req = Req::parse(data);
    let seed = fnv1a(data);
    let date_text = req.header("x-amz-date").map(trimmed);
    let request_time = date_text.as_deref().and_then(|d| sig::amz_date(d).ok());
    let skew = i64::try_from(seed % 801).unwrap_or(0) - 400;
    let now = request_time
        .and_then(|t| t.checked_add(time::Duration::seconds(skew)))
        .unwrap_or(time::macros::datetime!(2025-11-06 13:26:08 UTC));

    let service = match req.header("authorization") {
        Some(a) if find(a, b"/service/").is_some() => TEST_SUITE_SERVICE,
        _ => SERVICE,
    };

    parsing_properties(&req, date_text.as_deref());
    precheck_agrees_with_verify(&req, now, service);
    signed_request_is_accepted(&req, now, service);
});

fn trimmed(v: &[u8]) -> String {
    String::from_utf8_lossy(v)
        .trim_matches(|c| c == ' ' || c == '\t')
        .to_owned()
}

fn parsing_properties(req: &Req, date_text: Option<&str>) {
    if let Some(header) = req.header("authorization").map(trimmed) {
        if let Ok(h) = sig::authorization(&header, date_text.is_some()) {
            assert!(h.algorithm.starts_with("AWS4-"));
            for part in [&h.credential, &h.signed_headers, &h.signature] {
                assert!(header.contains(part.as_str()));
                assert!(!part.contains(|c: char| c == ',' || c.is_ascii_whitespace()));
            }
            if let Ok(parts) = sig::credential(&h.credential) {
                assert_eq!(parts.join("/"), h.credential.trim_end_matches('/'));
                assert!(parts.iter().all(|p| !p.contains('/')));
            }
            let names = sig::signed_headers(&h.signed_headers);
            assert!(names.windows(2).all(|w| w[0] <= w[1]), "not sorted");
        }
    }
    if let Some(d) = date_text {
        if let Ok(t) = sig::amz_date(d) {
            assert_eq!(sig::format_amz_date(t), d, "X-Amz-Date does not round-trip");
        }
    }
    let unreserved = |c: char| c.is_ascii_alphanumeric() || "-._~%".contains(c);
    let q = sig::canonical_query(&req.query);
    assert!(
        q.chars().all(|c| unreserved(c) || c == '=' || c == '&'),
        "{q}"
    );
    assert_eq!(
        sig::canonical_query(&q),
        q,
        "canonical query is not a fixed point"
    );
    let uri = sig::canonical_uri(&req.path);
    assert!(uri.starts_with('/'), "{uri}");
    assert!(uri.chars().all(|c| unreserved(c) || c == '/'), "{uri}");
    assert!(uri == "/" || !uri.contains("//"), "{uri}");
}

fn precheck_agrees_with_verify(req: &Req, now: OffsetDateTime, service: &str) {
    let verifier = Verifier::new(REGION, service);
    let (pre, full) = req.with_parts(|parts| {
        let head_only = RequestParts {
            body: b"",
            ..*parts
        };
        let full = verifier.verify(parts, &Keys, now);
        let pre = precheck(&head_only, REGION, service, &Keys, now).map(|checked| {
            // Finishing the pre-check with the body decides as verifying from scratch.
            let finished = verifier.verify_prechecked(parts, checked, &Keys, now);
            assert_eq!(
                finished.as_ref().map(|p| p.arn.clone()),
                full.as_ref().map(|p| p.arn.clone()),
                "verify_prechecked and verify disagree"
            );
        });
        (pre, full)
    });
    match (&pre, &full) {
        (Ok(()), _) => {}
        (Err(p), Ok(_)) => panic!("precheck refuses ({p}) what verify accepts"),
        (Err(p), Err(f)) if p == f => {}
        // The one documented difference: verify checks the body against its claimed hash
        // before the signed headers' presence and the key, which precheck reports first.
        (Err(p), Err(f))
            if f.code == AuthErrorCode::InvalidSignature
                && f.message
                    .starts_with("The request signature we calculated does not match")
                && (p.code == AuthErrorCode::UnrecognizedClient
                    || p.message.contains("is named as a SignedHeader")) => {}
        (Err(p), Err(f)) => panic!("precheck says {p}, verify says {f}"),
    }
}

/// Is `name` an HTTP header name (RFC 9110 token)?
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn signed_request_is_accepted(req: &Req, now: OffsetDateTime, service: &str) {
    // The request as an SDK would send it: the input's method, path, query, body and plain
    // headers (valid names, values without control characters), plus host and x-amz-date.
    const SET_BY_SIGNER: [&str; 5] = [
        "authorization",
        "host",
        "x-amz-date",
        "x-amz-content-sha256",
        "x-amz-security-token",
    ];
    let amz_date = sig::format_amz_date(now);
    let mut headers: Vec<(String, Vec<u8>)> = vec![
        (
            "host".to_owned(),
            b"secretsmanager.us-east-1.amazonaws.com".to_vec(),
        ),
        ("x-amz-date".to_owned(), amz_date.clone().into_bytes()),
    ];
    for (name, value) in &req.headers {
        if !is_token(name) || SET_BY_SIGNER.iter().any(|s| name.eq_ignore_ascii_case(s)) {
            continue;
        }
        let value: Vec<u8> = value
            .iter()
            .copied()
            .filter(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
            .collect();
        headers.push((name.clone(), value));
    }
    let mut signed: Vec<String> = headers
        .iter()
        .map(|(n, _)| n.to_ascii_lowercase())
        .collect();
    signed.sort_unstable();
    signed.dedup();
    let mut clean = Req {
        method: req.method.clone(),
        path: req.path.clone(),
        query: req.query.clone(),
        headers,
        body: req.body.clone(),
    };
    let authorization = clean
        .with_parts(|p| sig::sign(p, SECRET, AKID, &amz_date, REGION, service, &signed))
        .expect("every signed header is present");
    clean
        .headers
        .push(("authorization".to_owned(), authorization.into_bytes()));

    let verifier = Verifier::new(REGION, service);
    let got = clean.with_parts(|p| verifier.verify(p, &Keys, now));
    match got {
        Ok(p) => assert_eq!(p, principal(AKID)),
        Err(e) => panic!("a correctly signed request is refused: {e}"),
    }
    clean.body.push(b'!');
    let got = clean.with_parts(|p| verifier.verify(p, &Keys, now));
    assert!(got.is_err(), "a request whose body changed is accepted");
}
