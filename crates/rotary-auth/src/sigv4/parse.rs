//! Parsing the `Authorization` header, `X-Amz-Date` and the credential scope.
//!
//! The error texts and the order of checks follow what AWS's JSON services return; dynalite
//! (mhart/dynalite, `index.js`) recorded them from DynamoDB and they match the reports of
//! Secrets Manager, STS and SES errors in SDK issue trackers.

use std::borrow::Cow;

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

use super::{AuthError, TERMINATOR};

/// The three parameters of `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…,
/// Signature=…`, borrowed from the header.
/// No `PartialEq`: it holds a signature (STYLE B4).
#[derive(Debug)]
pub(crate) struct AuthHeader<'h> {
    pub(crate) algorithm: &'h str,
    pub(crate) credential: &'h str,
    pub(crate) signed_headers: &'h str,
    pub(crate) signature: &'h str,
}

/// Parses an `Authorization` header value. `has_date` says whether the request carries an
/// `X-Amz-Date` header, which AWS reports together with missing parameters. (SigV4 also allows
/// dating a request by `Date`; Rotary does not, since `x-amz-date` must be signed anyway and
/// every SDK sends it.)
pub(crate) fn authorization(header: &str, has_date: bool) -> Result<AuthHeader<'_>, AuthError> {
    let header = header.trim();
    // AWS treats a non-SigV4 scheme (`Bearer …`, SigV2) as no credentials at all.
    if !header.starts_with("AWS4-") {
        return Err(AuthError::missing_token());
    }
    let (algorithm, params) = header
        .split_once(|c: char| c.is_ascii_whitespace())
        .unwrap_or((header, ""));

    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    // AWS splits on commas *and* whitespace: `Credential= AKID/…` is reported as the pair
    // `'AKID/…' not a valid key=value pair`.
    for param in split_params(params) {
        let Some((key, value)) = param.split_once('=') else {
            return Err(AuthError::incomplete(format!(
                "'{param}' not a valid key=value pair (missing equal-sign) in Authorization \
                 header: '{header}'."
            )));
        };
        // Later duplicates win; unknown keys are ignored.
        match key {
            "Credential" => credential = Some(value),
            "SignedHeaders" => signed_headers = Some(value),
            "Signature" => signature = Some(value),
            _ => {}
        }
    }

    match (credential, signed_headers, signature, has_date) {
        (Some(credential), Some(signed_headers), Some(signature), true) => Ok(AuthHeader {
            algorithm,
            credential,
            signed_headers,
            signature,
        }),
        _ => {
            let mut message = String::new();
            if credential.is_none() {
                message.push_str("Authorization header requires 'Credential' parameter. ");
            }
            if signature.is_none() {
                message.push_str("Authorization header requires 'Signature' parameter. ");
            }
            if signed_headers.is_none() {
                message.push_str("Authorization header requires 'SignedHeaders' parameter. ");
            }
            if !has_date {
                message.push_str(
                    "Authorization header requires existence of either a 'X-Amz-Date' or a \
                     'Date' header. ",
                );
            }
            message.push_str("Authorization=");
            message.push_str(header);
            Err(AuthError::incomplete(message))
        }
    }
}

/// The non-empty pieces of `params` between commas and ASCII whitespace. Cut at byte
/// positions: the separators are ASCII, so every cut falls on a character boundary (no
/// character-by-character decoding, no UTF-8 check of the pieces), and the header is read on
/// every request.
fn split_params(params: &str) -> impl Iterator<Item = &str> {
    let is_separator = |b: u8| b == b',' || b.is_ascii_whitespace();
    let bytes = params.as_bytes();
    let mut at = 0;
    std::iter::from_fn(move || {
        while at < bytes.len() && is_separator(bytes[at]) {
            at += 1;
        }
        let start = at;
        while at < bytes.len() && !is_separator(bytes[at]) {
            at += 1;
        }
        // Both ends are at a separator or an end of the string: character boundaries.
        (start < at).then(|| params.get(start..at)).flatten()
    })
}

/// Splits `SignedHeaders` into lower-case names, sorted as SigV4 requires.
pub(crate) fn signed_headers(value: &str) -> Vec<Cow<'_, str>> {
    // SDKs send the names in lower case already: borrow them then.
    let mut names: Vec<Cow<'_, str>> = value
        .split(';')
        .map(|n| {
            if n.bytes().any(|b| b.is_ascii_uppercase()) {
                Cow::Owned(n.to_ascii_lowercase())
            } else {
                Cow::Borrowed(n)
            }
        })
        .collect();
    names.sort_unstable();
    names
}

/// The five parts of `Credential=AKID/YYYYMMDD/region/service/aws4_request`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Scope<'c> {
    pub(crate) access_key_id: &'c str,
    pub(crate) date: &'c str,
    pub(crate) region: &'c str,
    pub(crate) service: &'c str,
    pub(crate) terminator: &'c str,
}

impl Scope<'_> {
    /// Date, region, service and terminator: the scope of the string to sign.
    pub(crate) fn parts(&self) -> [&str; 4] {
        [self.date, self.region, self.service, self.terminator]
    }

    /// `date/region/service/terminator`, as it appears in the string to sign.
    #[cfg(test)]
    pub(crate) fn to_scope_string(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.date, self.region, self.service, self.terminator
        )
    }
}

/// Splits the `Credential` parameter. Only the element count is checked here; the values are
/// checked against the server's region and service by the verifier.
pub(crate) fn credential(value: &str) -> Result<Scope<'_>, AuthError> {
    // AWS ignores trailing slashes when counting.
    let mut parts = value.trim_end_matches('/').split('/');
    match (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) {
        (Some(access_key_id), Some(date), Some(region), Some(service), Some(terminator), None) => {
            Ok(Scope {
                access_key_id,
                date,
                region,
                service,
                terminator,
            })
        }
        _ => Err(AuthError::incomplete(format!(
            "Credential must have exactly 5 slash-delimited elements, e.g. \
             keyid/date/region/service/term, got '{value}'"
        ))),
    }
}

/// Whether the scope's terminator is the SigV4 one.
pub(crate) fn is_valid_terminator(terminator: &str) -> bool {
    terminator == TERMINATOR
}

/// Parses `X-Amz-Date` (ISO 8601 basic format, UTC: `20150830T123600Z`).
pub(crate) fn amz_date(value: &str) -> Result<OffsetDateTime, AuthError> {
    parse_basic_iso8601(value).ok_or_else(|| {
        AuthError::incomplete(format!(
            "Date must be in ISO-8601 'basic format'. Got '{value}'. See \
             http://en.wikipedia.org/wiki/ISO_8601"
        ))
    })
}

fn parse_basic_iso8601(value: &str) -> Option<OffsetDateTime> {
    let b = value.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u32> {
        b[from..to].iter().try_fold(0u32, |acc, &d| {
            d.is_ascii_digit().then(|| acc * 10 + u32::from(d - b'0'))
        })
    };
    let year = i32::try_from(num(0, 4)?).ok()?;
    let month = Month::try_from(u8::try_from(num(4, 6)?).ok()?).ok()?;
    let day = u8::try_from(num(6, 8)?).ok()?;
    let hour = u8::try_from(num(9, 11)?).ok()?;
    let minute = u8::try_from(num(11, 13)?).ok()?;
    let second = u8::try_from(num(13, 15)?).ok()?;
    let date = Date::from_calendar_date(year, month, day).ok()?;
    let time = Time::from_hms(hour, minute, second).ok()?;
    Some(PrimitiveDateTime::new(date, time).assume_utc())
}

/// Formats a time as ISO 8601 basic format in UTC, whole seconds (`20150830T123600Z`).
pub(crate) fn format_amz_date(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AuthErrorCode;

    const FULL: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31";

    #[test]
    fn authorization_parses_sdk_format() {
        let h = authorization(FULL, true).unwrap();
        assert_eq!(h.algorithm, "AWS4-HMAC-SHA256");
        assert_eq!(
            h.credential,
            "AKIDEXAMPLE/20150830/us-east-1/service/aws4_request"
        );
        assert_eq!(h.signed_headers, "host;x-amz-date");
        assert_eq!(
            h.signature,
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    #[test]
    fn authorization_accepts_no_spaces_and_extra_whitespace() {
        let h = authorization(
            "  AWS4-HMAC-SHA256   Credential=a/b/c/d/e,SignedHeaders=host,Signature=00  ",
            true,
        )
        .unwrap();
        assert_eq!(h.credential, "a/b/c/d/e");
        assert_eq!(h.signed_headers, "host");
        assert_eq!(h.signature, "00");
    }

    #[test]
    fn authorization_later_duplicate_wins() {
        let h = authorization(
            "AWS4-HMAC-SHA256 Credential=a/b/c/d/e, Credential=f/g/h/i/j, SignedHeaders=host, Signature=1",
            true,
        )
        .unwrap();
        assert_eq!(h.credential, "f/g/h/i/j");
    }

    #[test]
    fn authorization_other_scheme_is_missing_token() {
        for h in ["Bearer abc", "AWS AKID:sig", "", "   "] {
            let e = authorization(h, true).unwrap_err();
            assert_eq!(e.code, AuthErrorCode::MissingAuthenticationToken, "{h}");
            assert_eq!(e.message, "Missing Authentication Token");
        }
    }

    #[test]
    fn authorization_missing_equal_sign_names_the_pair() {
        // The shape AWS returned in aws/aws-sdk-go#289 (a space inside the credential).
        let h = "AWS4-HMAC-SHA256 Credential=AKIAXXXXXXXXXX /20150620/us-east-1/cloudformation/aws4_request, SignedHeaders=host;x-amz-date, Signature=240c";
        let e = authorization(h, true).unwrap_err();
        assert_eq!(e.code, AuthErrorCode::IncompleteSignature);
        assert_eq!(
            e.message,
            format!(
                "'/20150620/us-east-1/cloudformation/aws4_request' not a valid key=value pair \
                 (missing equal-sign) in Authorization header: '{h}'."
            )
        );
    }

    #[test]
    fn authorization_lists_every_missing_part_then_the_header() {
        let e = authorization("AWS4-HMAC-SHA256 Credential=ABCDEF", false).unwrap_err();
        assert_eq!(e.code, AuthErrorCode::IncompleteSignature);
        assert_eq!(
            e.message,
            "Authorization header requires 'Signature' parameter. Authorization header requires \
             'SignedHeaders' parameter. Authorization header requires existence of either a \
             'X-Amz-Date' or a 'Date' header. Authorization=AWS4-HMAC-SHA256 Credential=ABCDEF"
        );

        let e = authorization("AWS4-HMAC-SHA256", true).unwrap_err();
        assert_eq!(
            e.message,
            "Authorization header requires 'Credential' parameter. Authorization header requires \
             'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. \
             Authorization=AWS4-HMAC-SHA256"
        );
    }

    #[test]
    fn authorization_empty_values_count_as_present() {
        let h = authorization(
            "AWS4-HMAC-SHA256 Credential=, SignedHeaders=, Signature=",
            true,
        )
        .unwrap();
        assert_eq!((h.credential, h.signed_headers, h.signature), ("", "", ""));
    }

    #[test]
    fn signed_headers_are_lowercased_and_sorted() {
        assert_eq!(
            signed_headers("X-Amz-Date;Host;content-type"),
            ["content-type", "host", "x-amz-date"]
        );
        assert_eq!(signed_headers(""), [""]);
    }

    #[test]
    fn credential_splits_five_parts() {
        let s = credential("AKID/20150830/us-east-1/service/aws4_request").unwrap();
        assert_eq!(s.access_key_id, "AKID");
        assert_eq!(
            s.to_scope_string(),
            "20150830/us-east-1/service/aws4_request"
        );
        // Trailing slashes are ignored, as by AWS.
        assert_eq!(credential("a/b/c/d/e//").unwrap().terminator, "e");
    }

    #[test]
    fn credential_wrong_count_is_incomplete() {
        for c in ["a/b/c/d", "a/b/c/d/e/f", "AKIDEXAMPLE", ""] {
            let e = credential(c).unwrap_err();
            assert_eq!(e.code, AuthErrorCode::IncompleteSignature);
            assert_eq!(
                e.message,
                format!(
                    "Credential must have exactly 5 slash-delimited elements, e.g. \
                     keyid/date/region/service/term, got '{c}'"
                )
            );
        }
    }

    #[test]
    fn amz_date_round_trips() {
        let t = amz_date("20150830T123600Z").unwrap();
        assert_eq!(t, time::macros::datetime!(2015-08-30 12:36:00 UTC));
        assert_eq!(format_amz_date(t), "20150830T123600Z");
    }

    #[test]
    fn amz_date_rejects_other_formats() {
        for d in [
            "201",
            "2015-08-30T12:36:00Z",
            "20150830T123600",
            "20151330T123600Z",
            "20150830T246000Z",
            "20150830T1236+0Z",
            "Sun, 30 Aug 2015 12:36:00 GMT",
        ] {
            let e = amz_date(d).unwrap_err();
            assert_eq!(e.code, AuthErrorCode::IncompleteSignature);
            assert_eq!(
                e.message,
                format!(
                    "Date must be in ISO-8601 'basic format'. Got '{d}'. See \
                     http://en.wikipedia.org/wiki/ISO_8601"
                )
            );
        }
    }

    #[test]
    fn format_amz_date_uses_utc() {
        let t = time::macros::datetime!(2015-08-30 14:36:00.9 +02:00);
        assert_eq!(format_amz_date(t), "20150830T123600Z");
    }
}
