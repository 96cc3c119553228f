//! The canonical request and the string to sign.
//!
//! Rules for every service but S3 (which is all Rotary needs):
//! <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html>.
//! The path is normalized (dot segments and empty segments removed) and then URI-encoded
//! *again* although it arrived encoded: the SDKs do the same ("double encoding", see the
//! `double-url-encode` vector in the SigV4 test suite).

use sha2::{Digest, Sha256};
use std::borrow::Cow;

use super::{header, AuthError, RequestParts, ALGORITHM};

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// SigV4's URI encoding: every byte except `A-Z a-z 0-9 - . _ ~` becomes `%XX` (upper case).
fn uri_encode_into(out: &mut String, bytes: &[u8]) {
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX_UPPER[usize::from(b >> 4)]));
            out.push(char::from(HEX_UPPER[usize::from(b & 0x0f)]));
        }
    }
}

/// Canonical URI: the raw (still encoded) path, normalized as RFC 3986 §5.2.4 plus removal of
/// empty segments, each segment URI-encoded. `"/"` stays `"/"`.
pub(crate) fn canonical_uri(path: &str) -> String {
    let keeps_trailing_slash = path.ends_with('/') || path.ends_with("/.") || path.ends_with("/..");
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(path.len() + 8);
    for segment in &segments {
        out.push('/');
        uri_encode_into(&mut out, segment.as_bytes());
    }
    if out.is_empty() || keeps_trailing_slash {
        out.push('/');
    }
    out
}

/// Canonical query string: parameters decoded (`+` is a space, as in the SDKs' form
/// decoding), re-encoded with SigV4's encoding, sorted by name then value, joined with `&`.
pub(crate) fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let (mut ek, mut ev) = (String::new(), String::new());
            uri_encode_into(&mut ek, &form_decode(k));
            uri_encode_into(&mut ev, &form_decode(v));
            (ek, ev)
        })
        .collect();
    pairs.sort_unstable();
    let mut out = String::with_capacity(query.len() + 16);
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// `application/x-www-form-urlencoded` decoding; malformed `%` escapes are kept literally.
fn form_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = |c: u8| char::from(c).to_digit(16);
                match (
                    b.get(i + 1).and_then(|&c| hex(c)),
                    b.get(i + 2).and_then(|&c| hex(c)),
                ) {
                    (Some(hi), Some(lo)) => {
                        // Both digits are < 16, so this fits in a byte.
                        out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'?'));
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    out
}

/// Appends one canonical header value: each received value with runs of spaces collapsed to
/// one (values are already trimmed), several values joined with `,`.
fn push_header_values<'a>(out: &mut Vec<u8>, values: impl Iterator<Item = &'a [u8]>) {
    for (i, value) in values.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let mut prev_space = false;
        for &b in value {
            let space = b == b' ';
            if !(space && prev_space) {
                out.push(b);
            }
            prev_space = space;
        }
    }
}

/// The payload hash for the canonical request: always the SHA-256 of the body received.
///
/// A client may also send `x-amz-content-sha256` (S3's header; no Secrets Manager SDK does).
/// It must then be that same hash, sent once: `UNSIGNED-PAYLOAD`, another hash or a second
/// copy is refused, since a signature over a claimed hash says nothing about the body that
/// arrived, and a captured request could be replayed with any body (issue #9). AWS answers a
/// body its signature does not cover with the signature-mismatch error, so that is the error
/// here too; it is decided before the key lookup, as it needs no key.
pub(crate) fn payload_hash(req: &RequestParts<'_>) -> Result<Sha256Hex, AuthError> {
    let body_hash = Sha256Hex::of(req.body);
    let mut claimed = req.header_values(header::X_AMZ_CONTENT_SHA256);
    match (claimed.next(), claimed.next()) {
        (None, _) => Ok(body_hash),
        (Some(claimed), None) if claimed == body_hash.as_bytes() => Ok(body_hash),
        _ => Err(AuthError::mismatch()),
    }
}

/// A SHA-256 digest in lower-case hex, kept on the stack (every request hashes its body).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sha256Hex([u8; 64]);

impl Sha256Hex {
    pub(crate) fn of(bytes: &[u8]) -> Self {
        let mut out = [0u8; 64];
        // A SHA-256 digest always fits 64 hex digits.
        let _ = hex::encode_to_slice(Sha256::digest(bytes), &mut out);
        Self(out)
    }
}

impl std::ops::Deref for Sha256Hex {
    type Target = str;

    fn deref(&self) -> &str {
        // Hex digits are ASCII.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl std::fmt::Debug for Sha256Hex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self)
    }
}

impl PartialEq<&str> for Sha256Hex {
    fn eq(&self, other: &&str) -> bool {
        &**self == *other
    }
}

/// Every `signed` header (lower case) must be in the request. Headers only, so `precheck`
/// runs it too, before the key lookup, as the verifier does.
pub(crate) fn check_signed_headers_exist(
    req: &RequestParts<'_>,
    signed: &[Cow<'_, str>],
) -> Result<(), AuthError> {
    match signed.iter().find(|name| req.first_header(name).is_none()) {
        Some(name) => Err(AuthError::incomplete(format!(
            "'{name}' is named as a SignedHeader, but it does not exist in the HTTP request."
        ))),
        None => Ok(()),
    }
}

/// The canonical request over exactly the `signed` headers (lower case, sorted).
///
/// Fails if a signed header is absent from the request.
pub(crate) fn canonical_request(
    req: &RequestParts<'_>,
    signed: &[Cow<'_, str>],
    payload_hash: &str,
) -> Result<Vec<u8>, AuthError> {
    let mut out = Vec::with_capacity(256 + req.path.len() + req.query.len());
    out.extend_from_slice(req.method.as_bytes());
    out.push(b'\n');
    // Every API request is `POST /` without a query: those need no work.
    if req.path == "/" {
        out.push(b'/');
    } else {
        out.extend_from_slice(canonical_uri(req.path).as_bytes());
    }
    out.push(b'\n');
    if !req.query.is_empty() {
        out.extend_from_slice(canonical_query(req.query).as_bytes());
    }
    out.push(b'\n');
    check_signed_headers_exist(req, signed)?;
    for name in signed {
        let values = req.header_values(name);
        out.extend_from_slice(name.as_bytes());
        out.push(b':');
        push_header_values(&mut out, values);
        out.push(b'\n');
    }
    out.push(b'\n');
    for (i, name) in signed.iter().enumerate() {
        if i > 0 {
            out.push(b';');
        }
        out.extend_from_slice(name.as_bytes());
    }
    out.push(b'\n');
    out.extend_from_slice(payload_hash.as_bytes());
    Ok(out)
}

/// `AWS4-HMAC-SHA256\n<amz-date>\n<scope>\n<hex sha256(canonical request)>`.
pub(crate) fn string_to_sign(amz_date: &str, scope: [&str; 4], canonical_request: &[u8]) -> String {
    let hash = Sha256Hex::of(canonical_request);
    let mut out = String::with_capacity(ALGORITHM.len() + amz_date.len() + 64 + 96);
    out.push_str(ALGORITHM);
    out.push('\n');
    out.push_str(amz_date);
    out.push('\n');
    for (i, part) in scope.iter().enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.push_str(part);
    }
    out.push('\n');
    out.push_str(&hash);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AuthErrorCode;

    #[test]
    fn uri_root_and_normalization() {
        let cases = [
            ("/", "/"),
            ("", "/"),
            ("//", "/"),
            ("/./", "/"),
            ("/example/..", "/"),
            ("/example1/example2/../..", "/"),
            ("/./example", "/example"),
            ("//example//", "/example/"),
            ("/a/b/.", "/a/b/"),
            ("/../a", "/a"),
            ("/-._~09AZaz", "/-._~09AZaz"),
        ];
        for (path, want) in cases {
            assert_eq!(canonical_uri(path), want, "{path}");
        }
    }

    #[test]
    fn uri_is_encoded_again() {
        // Canonical paths of the test suite's `double-encode-path` and `double-url-encode`.
        assert_eq!(
            canonical_uri("/test/@connections/JBDvjfGEIAMCERw%3D"),
            "/test/%40connections/JBDvjfGEIAMCERw%253D"
        );
        assert_eq!(
            canonical_uri(
                "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-west-2%3A892717189312%3Afunction%3Amy-rusty-fun/invocations"
            ),
            "/2015-03-31/functions/arn%253Aaws%253Alambda%253Aus-west-2%253A892717189312%253Afunction%253Amy-rusty-fun/invocations"
        );
        assert_eq!(canonical_uri("/example%20space/"), "/example%2520space/");
        assert_eq!(canonical_uri("/\u{1234}"), "/%E1%88%B4");
    }

    #[test]
    fn query_sorted_and_encoded() {
        let cases = [
            ("", ""),
            ("Param2=value2&Param1=value1", "Param1=value1&Param2=value2"),
            (
                "Param-3=Value3&Param=Value2&%E1%88%B4=Value1",
                "%E1%88%B4=Value1&Param=Value2&Param-3=Value3",
            ),
            ("\u{1234}=bar", "%E1%88%B4=bar"),
            ("b=2&a&a=1", "a=&a=1&b=2"),
            ("x=a+b%20c%2fd", "x=a%20b%20c%2Fd"),
            ("x=100%&&y=%zz", "x=100%25&y=%25zz"),
        ];
        for (query, want) in cases {
            assert_eq!(canonical_query(query), want, "{query}");
        }
    }

    #[test]
    fn header_values_collapse_spaces_and_join() {
        let mut out = Vec::new();
        push_header_values(&mut out, [&b"\"a   b   c\""[..], b"x  y", b""].into_iter());
        assert_eq!(out, b"\"a b c\",x y,");
    }

    #[test]
    fn payload_hash_of_body_by_default() {
        let r = RequestParts::post(&[], b"");
        assert_eq!(
            payload_hash(&r).unwrap(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn payload_hash_header_must_match_body() {
        let good: &[(&str, &[u8])] = &[(
            "X-Amz-Content-Sha256",
            b"9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
        )];
        assert_eq!(
            payload_hash(&RequestParts::post(good, b"Param1=value1")).unwrap(),
            "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e"
        );
        assert_eq!(
            payload_hash(&RequestParts::post(good, b"Param1=value2")).unwrap_err(),
            AuthError::mismatch()
        );
    }

    #[test]
    fn issue_9_payload_hash_is_always_the_bodys() {
        // See: #9
        let body = b"Param1=value1";
        let hash = "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e";
        let upper = hash.to_ascii_uppercase();
        let twice = format!("{hash},{hash}");
        let refused: [&[(&str, &[u8])]; 6] = [
            &[("x-amz-content-sha256", b"UNSIGNED-PAYLOAD")],
            &[("x-amz-content-sha256", b"unsigned-payload")],
            &[(
                "x-amz-content-sha256",
                b"STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
            )],
            &[("x-amz-content-sha256", b"")],
            &[("x-amz-content-sha256", upper.as_bytes())],
            &[("x-amz-content-sha256", twice.as_bytes())],
        ];
        for headers in refused {
            assert_eq!(
                payload_hash(&RequestParts::post(headers, body)).unwrap_err(),
                AuthError::mismatch(),
                "{headers:?}"
            );
        }
        // The right hash sent twice is refused too: one claim, one body.
        let dup: &[(&str, &[u8])] = &[
            ("x-amz-content-sha256", hash.as_bytes()),
            ("X-Amz-Content-SHA256", hash.as_bytes()),
        ];
        assert_eq!(
            payload_hash(&RequestParts::post(dup, body)).unwrap_err(),
            AuthError::mismatch()
        );
    }

    #[test]
    fn missing_signed_header_is_incomplete() {
        let headers: &[(&str, &[u8])] = &[("host", b"h"), ("x-amz-date", b"20150830T123600Z")];
        let signed = ["accept".into(), "host".into(), "x-amz-date".into()];
        let e = canonical_request(&RequestParts::post(headers, b""), &signed, "x").unwrap_err();
        assert_eq!(e.code, AuthErrorCode::IncompleteSignature);
        assert_eq!(
            e.message,
            "'accept' is named as a SignedHeader, but it does not exist in the HTTP request."
        );
    }

    #[test]
    fn double_url_encode_vector_canonical_request() {
        // `double-url-encode` from the SigV4 test suite (only its canonical request is
        // published with usable inputs).
        let headers: &[(&str, &[u8])] = &[
            ("Host", b"lambda.us-east-2.amazonaws.com"),
            ("X-Amz-Date", b"20210511T154045Z"),
        ];
        let r = RequestParts {
            method: "POST",
            path: "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-west-2%3A892717189312%3Afunction%3Amy-rusty-fun/invocations",
            query: "",
            headers,
            body: b"",
        };
        let signed = ["host".into(), "x-amz-date".into()];
        let creq = canonical_request(&r, &signed, &payload_hash(&r).unwrap()).unwrap();
        assert_eq!(
            String::from_utf8(creq).unwrap(),
            "POST\n\
             /2015-03-31/functions/arn%253Aaws%253Alambda%253Aus-west-2%253A892717189312%253Afunction%253Amy-rusty-fun/invocations\n\
             \n\
             host:lambda.us-east-2.amazonaws.com\n\
             x-amz-date:20210511T154045Z\n\
             \n\
             host;x-amz-date\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn string_to_sign_vector() {
        // `get-vanilla`: header-string-to-sign.txt.
        let creq = "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(
            string_to_sign(
                "20150830T123600Z",
                ["20150830", "us-east-1", "service", "aws4_request"],
                creq.as_bytes()
            ),
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n\
             bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
        );
    }
}
