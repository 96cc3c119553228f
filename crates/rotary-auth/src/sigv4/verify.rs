//! The verifier: checks in AWS's order, signing-key derivation and its cache.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use super::error::msg;
use super::{canonical, header, parse, AuthError, Credential, CredentialSource, RequestParts};
use crate::Principal;

/// How far `X-Amz-Date` may be from the server's clock, either way (Secrets Manager: 5 min).
const MAX_SKEW: Duration = Duration::minutes(5);
/// Cached signing keys; the cache is emptied when it would grow past this.
const CACHE_CAPACITY: usize = 1024;

/// Headers that must be in `SignedHeaders` whenever the request carries them, besides `host`
/// and `x-amz-date` (always required). Left unsigned, each lets a captured request be
/// replayed as something else: another operation (`x-amz-target`, issue #9), another body
/// decoding (`content-type`), another session (`x-amz-security-token`) or another body
/// (`x-amz-content-sha256`). Every AWS SDK and the CLI sign all four when they send them.
pub(super) const SIGNED_WHEN_PRESENT: [(&str, &str); 4] = [
    (header::X_AMZ_TARGET, msg::TARGET_NOT_SIGNED),
    (header::CONTENT_TYPE, msg::CONTENT_TYPE_NOT_SIGNED),
    (header::X_AMZ_SECURITY_TOKEN, msg::TOKEN_NOT_SIGNED),
    (header::X_AMZ_CONTENT_SHA256, msg::CONTENT_SHA256_NOT_SIGNED),
];

/// Which headers must be signed. The public API only ever uses [`Strictness::Strict`]; the
/// relaxed mode exists in test builds alone, for AWS's generic test-suite vectors that are
/// not Secrets Manager requests (`post-sts-header-after` leaves its session token unsigned).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Strictness {
    /// `host`, `x-amz-date`, and each of [`SIGNED_WHEN_PRESENT`] that is sent.
    Strict,
    /// `host` and `x-amz-date` only, as generic SigV4.
    #[cfg(test)]
    AwsTestSuite,
}

type HmacSha256 = Hmac<Sha256>;

/// Verifies SigV4 `Authorization` headers for one region and service.
///
/// Cheap to share (`Send + Sync`); it keeps a small cache of derived signing keys so most
/// requests cost two HMACs instead of six.
pub struct Verifier {
    region: String,
    service: String,
    /// Fingerprint of (secret, access key id, date, region, service) → signing key.
    cache: Mutex<HashMap<[u8; 32], Zeroizing<[u8; 32]>>>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("region", &self.region)
            .field("service", &self.service)
            .field("cached_keys", &self.cache.lock().len())
            .finish()
    }
}

impl Verifier {
    /// A verifier accepting signatures scoped to `region` and `service`.
    ///
    /// `service` is `"secretsmanager"`; `region` is the server's region: a credential scope
    /// naming any other region is rejected, as by AWS.
    pub fn new(region: impl Into<String>, service: impl Into<String>) -> Self {
        Self {
            region: region.into(),
            service: service.into(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Authenticates `req`, signed no more than 5 minutes before or after `now`, and returns
    /// the principal of the credential that signed it.
    ///
    /// Checks run in the order AWS runs them, so a request with several problems gets the
    /// error AWS would give: header shape, date format, clock skew, signed-header
    /// requirements, algorithm, credential scope, body hash, access key, signature, session
    /// token.
    ///
    /// Always strict: the body must hash to any `x-amz-content-sha256` sent (so
    /// `UNSIGNED-PAYLOAD` is refused), and `host`, `x-amz-date`, plus `x-amz-target`,
    /// `content-type`, `x-amz-security-token` and `x-amz-content-sha256` when sent, must be
    /// signed.
    pub fn verify(
        &self,
        req: &RequestParts<'_>,
        creds: &dyn CredentialSource,
        now: OffsetDateTime,
    ) -> Result<Principal, AuthError> {
        self.verify_with(req, creds, now, Strictness::Strict)
    }

    fn verify_with(
        &self,
        req: &RequestParts<'_>,
        creds: &dyn CredentialSource,
        now: OffsetDateTime,
        strictness: Strictness,
    ) -> Result<Principal, AuthError> {
        let Some(authorization) = req.first_header(header::AUTHORIZATION) else {
            return Err(AuthError::missing_token());
        };
        let authorization = utf8(authorization);
        let amz_date = req.first_header(header::X_AMZ_DATE).map(utf8);
        let h = header_checks(
            req,
            &authorization,
            amz_date.as_deref(),
            &self.region,
            &self.service,
            now,
            strictness,
        )?;
        // Everything that can be checked without the key is checked before the lookup, so a
        // storage-backed source is not queried for requests that cannot succeed.
        let payload_hash = canonical::payload_hash(req)?;
        let canonical_request = canonical::canonical_request(req, &h.signed, &payload_hash)?;
        let credential = creds
            .lookup(h.scope.access_key_id)
            .ok_or_else(AuthError::unrecognized)?;
        self.check_signature(req, &h, &canonical_request, credential)
    }

    /// Finishes the verification of a request whose headers [`precheck`](super::precheck)
    /// accepted, now with its body: the body hash, the signature and the session token, with
    /// what the pre-check parsed and looked up (the `Authorization` header, its scope, the
    /// credential) instead of doing it again. The clock skew is checked again against `now`,
    /// since the body may have taken a while to arrive.
    ///
    /// `req` must be the request `pre` was made from, with the body added.
    pub fn verify_prechecked(
        &self,
        req: &RequestParts<'_>,
        pre: Prechecked<'_>,
        creds: &dyn CredentialSource,
        now: OffsetDateTime,
    ) -> Result<Principal, AuthError> {
        let Some(Checked {
            headers,
            credential,
        }) = pre.0
        else {
            return self.verify(req, creds, now);
        };
        check_skew(headers.request_time, now)?;
        let payload_hash = canonical::payload_hash(req)?;
        let canonical_request = canonical::canonical_request(req, &headers.signed, &payload_hash)?;
        self.check_signature(req, &headers, &canonical_request, credential)
    }

    /// Compares the signature of the request whose canonical form is `canonical_request`
    /// with the one `credential` gives, then checks its session token.
    fn check_signature(
        &self,
        req: &RequestParts<'_>,
        h: &HeaderChecks<'_>,
        canonical_request: &[u8],
        credential: Credential,
    ) -> Result<Principal, AuthError> {
        let string_to_sign =
            canonical::string_to_sign(h.amz_date, h.scope.parts(), canonical_request);
        let signing_key = self.signing_key(&credential, h.scope.access_key_id, h.scope.date);
        let mut expected = [0u8; 64];
        let mac = hmac_sha256(signing_key.as_slice(), string_to_sign.as_bytes());
        // A 32-byte MAC always fits 64 hex digits.
        let _ = hex::encode_to_slice(mac, &mut expected);
        if !bool::from(expected.as_slice().ct_eq(h.auth.signature.as_bytes())) {
            return Err(AuthError::mismatch());
        }
        check_session_token(req, &credential)?;
        Ok(credential.principal)
    }

    /// `kSigning` for this credential and day, from the cache when the same secret was used
    /// before. The cache key hashes the secret too, so a rotated secret never reuses a key.
    fn signing_key(
        &self,
        credential: &Credential,
        access_key_id: &str,
        date: &str,
    ) -> Zeroizing<[u8; 32]> {
        let secret = credential.secret_access_key.expose();
        let fingerprint = {
            let mut h = Sha256::new();
            h.update(b"rotary-sigv4-signing-key-cache\0");
            for part in [secret, access_key_id, date, &self.region, &self.service] {
                h.update((part.len() as u64).to_le_bytes());
                h.update(part.as_bytes());
            }
            <[u8; 32]>::from(h.finalize())
        };
        if let Some(key) = self.cache.lock().get(&fingerprint) {
            return key.clone();
        }

        let mut k_secret = Zeroizing::new(Vec::with_capacity(4 + secret.len()));
        k_secret.extend_from_slice(b"AWS4");
        k_secret.extend_from_slice(secret.as_bytes());
        let k_date = Zeroizing::new(hmac_sha256(&k_secret, date.as_bytes()));
        let k_region = Zeroizing::new(hmac_sha256(k_date.as_slice(), self.region.as_bytes()));
        let k_service = Zeroizing::new(hmac_sha256(k_region.as_slice(), self.service.as_bytes()));
        let k_signing = Zeroizing::new(hmac_sha256(
            k_service.as_slice(),
            super::TERMINATOR.as_bytes(),
        ));

        let mut cache = self.cache.lock();
        if cache.len() >= CACHE_CAPACITY {
            cache.clear();
        }
        cache.insert(fingerprint, k_signing.clone());
        k_signing
    }

    #[cfg(test)]
    fn cached_keys(&self) -> usize {
        self.cache.lock().len()
    }
}

/// A header value as text: borrowed when it is UTF-8 (every real request), else with the
/// invalid bytes replaced, so that the checks report it as AWS would.
fn utf8(v: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(v) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(v),
    }
}

/// What the checks of the headers alone established, borrowed from the header texts.
pub(super) struct HeaderChecks<'h> {
    pub(super) auth: parse::AuthHeader<'h>,
    pub(super) amz_date: &'h str,
    pub(super) request_time: OffsetDateTime,
    /// `SignedHeaders`, lower case and sorted.
    pub(super) signed: Vec<Cow<'h, str>>,
    pub(super) scope: parse::Scope<'h>,
}

/// The checks that need the headers only, in AWS's order: the `Authorization` header's
/// shape, the date's format and skew, the headers that must be signed, the algorithm, the
/// credential scope. Shared by the verifier and the pre-check, which must give the same
/// errors.
pub(super) fn header_checks<'h>(
    req: &RequestParts<'_>,
    authorization: &'h str,
    amz_date: Option<&'h str>,
    region: &str,
    service: &str,
    now: OffsetDateTime,
    strictness: Strictness,
) -> Result<HeaderChecks<'h>, AuthError> {
    let auth = parse::authorization(authorization, amz_date.is_some())?;
    let amz_date = amz_date.unwrap_or_default();

    let request_time = parse::amz_date(amz_date)?;
    check_skew(request_time, now)?;

    let signed = parse::signed_headers(auth.signed_headers);
    check_signed_headers(req, &signed, strictness)?;

    if auth.algorithm != super::ALGORITHM {
        return Err(AuthError::incomplete(format!(
            "Unsupported AWS 'algorithm': '{}' (only AWS4-HMAC-SHA256 for now). ",
            auth.algorithm
        )));
    }

    let scope = parse::credential(auth.credential)?;
    check_scope(&scope, amz_date, region, service)?;
    Ok(HeaderChecks {
        auth,
        amz_date,
        request_time,
        signed,
        scope,
    })
}

/// A request whose headers passed [`precheck`](super::precheck): what it parsed and the
/// credential it looked up, for [`Verifier::verify_prechecked`] to finish with the body.
/// Borrowed from the request's headers.
pub struct Prechecked<'h>(pub(super) Option<Checked<'h>>);

impl fmt::Debug for Prechecked<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prechecked").finish_non_exhaustive()
    }
}

/// See [`Prechecked`]. Absent when a header was not UTF-8: the verifier then starts over.
pub(super) struct Checked<'h> {
    pub(super) headers: HeaderChecks<'h>,
    pub(super) credential: Credential,
}

/// `host` and `x-amz-date` must be signed (AWS's rule and texts); in strict mode so must each
/// header of [`SIGNED_WHEN_PRESENT`] the request carries. `signed` is lower case. Shared with
/// `precheck`, which must give the same errors.
pub(super) fn check_signed_headers(
    req: &RequestParts<'_>,
    signed: &[Cow<'_, str>],
    strictness: Strictness,
) -> Result<(), AuthError> {
    let is_signed = |name: &str| signed.iter().any(|h| h == name);
    if !is_signed(header::HOST) {
        return Err(AuthError::invalid(msg::HOST_NOT_SIGNED));
    }
    if !is_signed(header::X_AMZ_DATE) {
        return Err(AuthError::invalid(msg::DATE_NOT_SIGNED));
    }
    if strictness == Strictness::Strict {
        for (name, message) in SIGNED_WHEN_PRESENT {
            if req.first_header(name).is_some() && !is_signed(name) {
                return Err(AuthError::invalid(message));
            }
        }
    }
    Ok(())
}

pub(super) fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        // HMAC is defined for keys of every length; `new_from_slice` cannot fail for it.
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Region, service, terminator and date of the scope; AWS reports all that are wrong at
/// once, each sentence followed by a space except the last (date) one. Shared with
/// `precheck`, which must give the same errors.
pub(super) fn check_scope(
    scope: &parse::Scope<'_>,
    amz_date: &str,
    region: &str,
    service: &str,
) -> Result<(), AuthError> {
    let mut message = String::new();
    if scope.region != region {
        message.push_str(&format!(
            "Credential should be scoped to a valid region, not '{}'. ",
            scope.region
        ));
    }
    if scope.service != service {
        message.push_str(&format!(
            "Credential should be scoped to correct service: '{service}'. "
        ));
    }
    if !parse::is_valid_terminator(scope.terminator) {
        message.push_str(&format!(
            "Credential should be scoped with a valid terminator: 'aws4_request', not '{}'. ",
            scope.terminator
        ));
    }
    let request_day = amz_date.get(..8).unwrap_or(amz_date);
    if scope.date != request_day {
        message.push_str(&format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
             from HTTP: '{}' != '{request_day}', from '{amz_date}'.",
            scope.date
        ));
    }
    if message.is_empty() {
        Ok(())
    } else {
        Err(AuthError::invalid(message))
    }
}

/// Rejects requests dated more than [`MAX_SKEW`] from `now`, with AWS's texts.
pub(super) fn check_skew(
    request_time: OffsetDateTime,
    now: OffsetDateTime,
) -> Result<(), AuthError> {
    let now = now.to_offset(time::UtcOffset::UTC);
    let now = now.replace_nanosecond(0).unwrap_or(now);
    let earliest = now.checked_sub(MAX_SKEW).unwrap_or(now);
    let latest = now.checked_add(MAX_SKEW).unwrap_or(now);
    if request_time < earliest {
        return Err(AuthError::invalid(format!(
            "Signature expired: {} is now earlier than {} ({} - 5 min.)",
            parse::format_amz_date(request_time),
            parse::format_amz_date(earliest),
            parse::format_amz_date(now),
        )));
    }
    if request_time > latest {
        return Err(AuthError::invalid(format!(
            "Signature not yet current: {} is still later than {} ({} + 5 min.)",
            parse::format_amz_date(request_time),
            parse::format_amz_date(latest),
            parse::format_amz_date(now),
        )));
    }
    Ok(())
}

/// Temporary credentials need their token, exactly once; long-lived ones must not send one.
/// Checked after the signature, as AWS does, so only a key holder learns about the token.
fn check_session_token(req: &RequestParts<'_>, credential: &Credential) -> Result<(), AuthError> {
    let mut sent = req.header_values(header::X_AMZ_SECURITY_TOKEN);
    let (first, second) = (sent.next(), sent.next());
    let ok = match (&credential.session_token, first, second) {
        (None, None, _) => true,
        (Some(expected), Some(got), None) => bool::from(expected.as_bytes().ct_eq(got)),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(AuthError::unrecognized())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::SystemTime;

    use aws_credential_types::Credentials;
    use aws_sigv4::http_request::{
        sign, PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings,
    };
    use aws_sigv4::sign::v4;
    use proptest::prelude::*;
    use time::macros::datetime;

    use super::*;
    use crate::{AuthErrorCode, PrincipalKind, SecretKey};

    const AKID: &str = "AKIDEXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const REGION: &str = "us-east-1";
    const SERVICE: &str = "secretsmanager";
    const NOW: OffsetDateTime = datetime!(2025-11-06 13:26:08 UTC);

    /// An in-memory credential source; also counts lookups.
    #[derive(Default)]
    struct Keys {
        keys: HashMap<String, Credential>,
        lookups: std::sync::atomic::AtomicUsize,
    }

    impl Keys {
        fn with(mut self, akid: &str, secret: &str, token: Option<&str>) -> Self {
            let principal = Principal {
                account_id: "123456789012".to_owned(),
                arn: format!("arn:aws:iam::123456789012:user/{akid}"),
                access_key_id: akid.to_owned(),
                kind: match token {
                    None => PrincipalKind::User {
                        name: akid.to_owned(),
                    },
                    Some(_) => PrincipalKind::Session {
                        session_name: "rotation".to_owned(),
                        scope: vec![
                            "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf"
                                .to_owned(),
                        ],
                    },
                },
            };
            self.keys.insert(
                akid.to_owned(),
                Credential {
                    secret_access_key: SecretKey::new(secret.to_owned()),
                    session_token: token.map(str::to_owned),
                    principal,
                },
            );
            self
        }

        fn lookups(&self) -> usize {
            self.lookups.load(std::sync::atomic::Ordering::Relaxed)
        }
    }

    impl CredentialSource for Keys {
        fn lookup(&self, access_key_id: &str) -> Option<Credential> {
            self.lookups
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.keys.get(access_key_id).cloned()
        }
    }

    /// An owned request, so tests can mutate it before borrowing it as [`RequestParts`].
    #[derive(Clone, Debug)]
    struct Req {
        method: String,
        path: String,
        query: String,
        headers: Vec<(String, Vec<u8>)>,
        body: Vec<u8>,
    }

    impl Req {
        fn verify(
            &self,
            verifier: &Verifier,
            creds: &dyn CredentialSource,
            now: OffsetDateTime,
        ) -> Result<Principal, AuthError> {
            self.verify_as(verifier, creds, now, Strictness::Strict)
        }

        /// As [`Req::verify`], with only `host` and `x-amz-date` required to be signed.
        fn verify_relaxed(
            &self,
            verifier: &Verifier,
            creds: &dyn CredentialSource,
            now: OffsetDateTime,
        ) -> Result<Principal, AuthError> {
            self.verify_as(verifier, creds, now, Strictness::AwsTestSuite)
        }

        fn verify_as(
            &self,
            verifier: &Verifier,
            creds: &dyn CredentialSource,
            now: OffsetDateTime,
            strictness: Strictness,
        ) -> Result<Principal, AuthError> {
            let headers: Vec<(&str, &[u8])> = self
                .headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_slice()))
                .collect();
            let parts = RequestParts {
                method: &self.method,
                path: &self.path,
                query: &self.query,
                headers: &headers,
                body: &self.body,
            };
            verifier.verify_with(&parts, creds, now, strictness)
        }

        fn header_mut(&mut self, name: &str) -> &mut Vec<u8> {
            &mut self
                .headers
                .iter_mut()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .unwrap_or_else(|| panic!("no header {name}"))
                .1
        }

        fn remove_header(&mut self, name: &str) {
            self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        }

        fn set_authorization(&mut self, value: &str) {
            *self.header_mut("authorization") = value.as_bytes().to_vec();
        }

        fn authorization(&self) -> String {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("authorization"))
                .map(|(_, v)| String::from_utf8(v.clone()).unwrap())
                .unwrap()
        }
    }

    struct SignOpts<'a> {
        region: &'a str,
        service: &'a str,
        secret: &'a str,
        token: Option<&'a str>,
        time: OffsetDateTime,
        checksum_header: bool,
        unsigned_payload: bool,
    }

    impl Default for SignOpts<'_> {
        fn default() -> Self {
            Self {
                region: REGION,
                service: SERVICE,
                secret: SECRET,
                token: None,
                time: NOW,
                checksum_header: false,
                unsigned_payload: false,
            }
        }
    }

    /// Signs with the `aws-sigv4` crate exactly as the Rust SDK does (default settings).
    fn sdk_sign(
        method: &str,
        host: &str,
        path_and_query: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        opts: &SignOpts<'_>,
    ) -> Req {
        let identity = Credentials::new(
            AKID,
            opts.secret,
            opts.token.map(str::to_owned),
            None,
            "test",
        )
        .into();
        let mut settings = SigningSettings::default();
        if opts.checksum_header {
            settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        }
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(opts.region)
            .name(opts.service)
            .time(SystemTime::from(opts.time))
            .settings(settings)
            .build()
            .unwrap()
            .into();
        let mut all: Vec<(&str, &str)> = vec![("host", host)];
        all.extend_from_slice(headers);
        let uri = format!("http://{host}{path_and_query}");
        let signable_body = if opts.unsigned_payload {
            SignableBody::UnsignedPayload
        } else {
            SignableBody::Bytes(body)
        };
        let signable =
            SignableRequest::new(method, uri.clone(), all.iter().copied(), signable_body).unwrap();
        let (instructions, _signature) = sign(signable, &params).unwrap().into_parts();

        let mut out: Vec<(String, Vec<u8>)> = all
            .iter()
            .map(|(n, v)| ((*n).to_owned(), v.as_bytes().to_vec()))
            .collect();
        for (name, value) in instructions.headers() {
            out.push((name.to_owned(), value.as_bytes().to_vec()));
        }
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        Req {
            method: method.to_owned(),
            path: path.to_owned(),
            query: query.to_owned(),
            headers: out,
            body: body.to_vec(),
        }
    }

    /// The headers [`sm_request`] signs besides `host` and those the signer adds.
    const SM_HEADERS: [(&str, &str); 3] = [
        ("content-type", "application/x-amz-json-1.1"),
        ("x-amz-target", "secretsmanager.GetSecretValue"),
        ("content-length", "23"),
    ];

    /// A Secrets Manager call as the Rust SDK sends it to `--endpoint-url http://localhost:4566`.
    fn sm_request(opts: &SignOpts<'_>) -> Req {
        sdk_sign(
            "POST",
            "localhost:4566",
            "/",
            &SM_HEADERS,
            br#"{"SecretId":"db/login"}"#,
            opts,
        )
    }

    /// [`sm_request`], but the headers named in `unsigned` are added after signing: they are
    /// sent, left out of `SignedHeaders`, and the signature stays valid for the rest.
    fn sm_request_leaving_unsigned(unsigned: &[&str], opts: &SignOpts<'_>) -> Req {
        let full = sm_request(opts);
        let leaves = |name: &str| unsigned.contains(&name);
        let kept: Vec<(&str, &str)> = SM_HEADERS
            .iter()
            .copied()
            .filter(|(n, _)| !leaves(n))
            .collect();
        let partial_opts = SignOpts {
            region: opts.region,
            service: opts.service,
            secret: opts.secret,
            token: opts.token.filter(|_| !leaves("x-amz-security-token")),
            time: opts.time,
            checksum_header: opts.checksum_header && !leaves("x-amz-content-sha256"),
            unsigned_payload: opts.unsigned_payload,
        };
        let mut req = sdk_sign(
            "POST",
            "localhost:4566",
            "/",
            &kept,
            &full.body,
            &partial_opts,
        );
        for name in unsigned {
            let (n, v) = full
                .headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .unwrap_or_else(|| panic!("sm_request sends no {name}"));
            req.headers.push((n.clone(), v.clone()));
        }
        let signed = signed_header_names(&req);
        assert!(unsigned.iter().all(|n| !signed.iter().any(|s| s == n)));
        req
    }

    fn verifier() -> Verifier {
        Verifier::new(REGION, SERVICE)
    }

    fn keys() -> Keys {
        Keys::default().with(AKID, SECRET, None)
    }

    fn err(req: &Req) -> AuthError {
        req.verify(&verifier(), &keys(), NOW).unwrap_err()
    }

    fn assert_err(e: &AuthError, code: AuthErrorCode, message: &str) {
        assert_eq!(e.code, code, "{e:?}");
        assert_eq!(e.message, message);
    }

    #[test]
    fn verifier_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Verifier>();
    }

    #[test]
    fn sdk_signed_request_verifies_and_returns_principal() {
        let req = sm_request(&SignOpts::default());
        let p = req.verify(&verifier(), &keys(), NOW).unwrap();
        assert_eq!(p.access_key_id, AKID);
        assert_eq!(
            p.kind,
            PrincipalKind::User {
                name: AKID.to_owned()
            }
        );
    }

    #[test]
    fn sdk_signed_request_with_session_token_verifies() {
        let keys = Keys::default().with(AKID, SECRET, Some("session-token-value"));
        let req = sm_request(&SignOpts {
            token: Some("session-token-value"),
            ..Default::default()
        });
        let p = req.verify(&verifier(), &keys, NOW).unwrap();
        assert!(matches!(p.kind, PrincipalKind::Session { .. }));
    }

    #[test]
    fn sdk_signed_with_content_sha256_header_verifies() {
        let req = sm_request(&SignOpts {
            checksum_header: true,
            ..Default::default()
        });
        assert!(req.headers.iter().any(|(n, _)| n == "x-amz-content-sha256"));
        req.verify(&verifier(), &keys(), NOW).unwrap();

        // A body the claimed hash does not cover: AWS's signature-mismatch error, decided
        // before the key is looked up.
        let mut tampered = req.clone();
        tampered.body = br#"{"SecretId":"db/other"}"#.to_vec();
        let keys = keys();
        assert_err(
            &tampered.verify(&verifier(), &keys, NOW).unwrap_err(),
            AuthErrorCode::InvalidSignature,
            "The request signature we calculated does not match the signature you provided. \
             Check your AWS Secret Access Key and signing method. Consult the service \
             documentation for details.",
        );
        assert_eq!(keys.lookups(), 0);
    }

    #[test]
    fn issue_9_unsigned_payload_is_refused() {
        // See: #9
        let req = sm_request(&SignOpts {
            checksum_header: true,
            unsigned_payload: true,
            ..Default::default()
        });
        assert!(req.headers.iter().any(|(_, v)| v == b"UNSIGNED-PAYLOAD"));
        let keys = keys();
        assert_eq!(
            req.verify(&verifier(), &keys, NOW).unwrap_err(),
            AuthError::mismatch()
        );
        assert_eq!(keys.lookups(), 0);
        // Not even in the test-suite mode: the body hash is never relaxed.
        assert_eq!(
            req.verify_relaxed(&verifier(), &keys, NOW).unwrap_err(),
            AuthError::mismatch()
        );
    }

    #[test]
    fn issue_9_unsigned_payload_replayed_with_another_body_is_refused() {
        // See: #9
        let mut req = sm_request(&SignOpts {
            checksum_header: true,
            unsigned_payload: true,
            ..Default::default()
        });
        req.body = br#"{"SecretId":"db/admin"}"#.to_vec();
        assert_eq!(err(&req), AuthError::mismatch());
    }

    #[test]
    fn issue_9_content_sha256_of_another_body_is_refused() {
        // See: #9
        // Signed (header included) over the hash of a body other than the one sent.
        let signed_for = sm_request(&SignOpts {
            checksum_header: true,
            ..Default::default()
        });
        let mut req = signed_for.clone();
        req.body = br#"{"SecretId":"db/root1"}"#.to_vec();
        assert_eq!(req.body.len(), signed_for.body.len());
        assert_eq!(err(&req), AuthError::mismatch());
        // The hash of the new body, put in after signing: the signature covered the old one.
        let new_hash = hex::encode(Sha256::digest(&req.body));
        *req.header_mut("x-amz-content-sha256") = new_hash.into_bytes();
        assert_eq!(err(&req), AuthError::mismatch());
    }

    #[test]
    fn issue_9_target_replayed_as_another_operation_is_refused() {
        // See: #9
        // A captured DescribeSecret sent again as GetSecretValue: the target is signed.
        let mut req = sdk_sign(
            "POST",
            "localhost:4566",
            "/",
            &[
                ("content-type", "application/x-amz-json-1.1"),
                ("x-amz-target", "secretsmanager.DescribeSecret"),
            ],
            br#"{"SecretId":"db/login"}"#,
            &SignOpts::default(),
        );
        req.verify(&verifier(), &keys(), NOW).unwrap();
        *req.header_mut("x-amz-target") = b"secretsmanager.GetSecretValue".to_vec();
        assert_eq!(err(&req), AuthError::mismatch());
        // A second, unsigned target next to the signed one changes the signed value too.
        let mut req = sm_request(&SignOpts::default());
        req.headers.push((
            "X-Amz-Target".to_owned(),
            b"secretsmanager.DeleteSecret".to_vec(),
        ));
        assert_eq!(err(&req), AuthError::mismatch());
    }

    #[test]
    fn issue_9_unsigned_target_is_refused() {
        // See: #9
        // Signed without X-Amz-Target in SignedHeaders, the target added afterwards: the
        // signature itself is valid (the relaxed mode accepts it), strict mode refuses it.
        let req = sm_request_leaving_unsigned(&["x-amz-target"], &SignOpts::default());
        req.verify_relaxed(&verifier(), &keys(), NOW).unwrap();
        let keys = keys();
        assert_err(
            &req.verify(&verifier(), &keys, NOW).unwrap_err(),
            AuthErrorCode::InvalidSignature,
            "'X-Amz-Target' must be a 'SignedHeader' in the AWS Authorization.",
        );
        assert_eq!(keys.lookups(), 0);
        // Whatever the target is changed to afterwards.
        let mut req = req;
        *req.header_mut("x-amz-target") = b"secretsmanager.GetSecretValue".to_vec();
        assert_eq!(err(&req).message, msg::TARGET_NOT_SIGNED);
    }

    #[test]
    fn issue_9_unsigned_content_type_is_refused() {
        // See: #9
        let req = sm_request_leaving_unsigned(&["content-type"], &SignOpts::default());
        req.verify_relaxed(&verifier(), &keys(), NOW).unwrap();
        assert_err(
            &err(&req),
            AuthErrorCode::InvalidSignature,
            "'Content-Type' must be a 'SignedHeader' in the AWS Authorization.",
        );
    }

    #[test]
    fn issue_9_unsigned_content_sha256_is_refused() {
        // See: #9
        let mut req = sm_request(&SignOpts::default());
        let hash = hex::encode(Sha256::digest(&req.body));
        req.headers
            .push(("X-Amz-Content-Sha256".to_owned(), hash.into_bytes()));
        req.verify_relaxed(&verifier(), &keys(), NOW).unwrap();
        assert_err(
            &err(&req),
            AuthErrorCode::InvalidSignature,
            "'X-Amz-Content-SHA256' must be a 'SignedHeader' in the AWS Authorization.",
        );
    }

    #[test]
    fn issue_9_required_headers_are_checked_in_any_case() {
        // See: #9
        // Header names arrive in any case; SignedHeaders is compared in lower case.
        let mut req = sm_request_leaving_unsigned(&["x-amz-target"], &SignOpts::default());
        for (name, _) in &mut req.headers {
            if name.eq_ignore_ascii_case("x-amz-target") {
                *name = "X-AMZ-TARGET".to_owned();
            }
        }
        assert_eq!(err(&req).message, msg::TARGET_NOT_SIGNED);
        // And a request whose SignedHeaders spell the names in upper case still verifies.
        let mut req = sm_request(&SignOpts::default());
        let auth = req
            .authorization()
            .replace("content-type;host;", "Content-Type;Host;");
        assert_ne!(auth, req.authorization());
        req.set_authorization(&auth);
        req.verify(&verifier(), &keys(), NOW).unwrap();
    }

    #[test]
    fn issue_9_required_headers_only_when_sent() {
        // See: #9
        // A request without Content-Type (or target) need not sign what it does not send.
        let req = sdk_sign(
            "POST",
            "localhost:4566",
            "/",
            &[],
            b"{}",
            &SignOpts::default(),
        );
        req.verify(&verifier(), &keys(), NOW).unwrap();
    }

    #[test]
    fn issue_9_each_unsigned_required_header_is_named() {
        // See: #9
        // Checked in a fixed order, so one unsigned header is reported at a time.
        let keys = Keys::default().with(AKID, SECRET, Some("tok"));
        let opts = SignOpts {
            token: Some("tok"),
            checksum_header: true,
            ..Default::default()
        };
        for (name, message) in SIGNED_WHEN_PRESENT {
            let req = sm_request_leaving_unsigned(&[name], &opts);
            req.verify_relaxed(&verifier(), &keys, NOW).unwrap();
            assert_err(
                &req.verify(&verifier(), &keys, NOW).unwrap_err(),
                AuthErrorCode::InvalidSignature,
                message,
            );
        }
        sm_request(&opts).verify(&verifier(), &keys, NOW).unwrap();
    }

    #[test]
    fn request_without_authorization_is_missing_token() {
        let mut req = sm_request(&SignOpts::default());
        req.remove_header("authorization");
        assert_err(
            &err(&req),
            AuthErrorCode::MissingAuthenticationToken,
            "Missing Authentication Token",
        );
    }

    #[test]
    fn request_with_bearer_token_is_missing_token() {
        let mut req = sm_request(&SignOpts::default());
        req.set_authorization("Bearer eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9");
        assert_err(
            &err(&req),
            AuthErrorCode::MissingAuthenticationToken,
            "Missing Authentication Token",
        );
    }

    #[test]
    fn authorization_without_signature_and_date_is_incomplete() {
        let mut req = sm_request(&SignOpts::default());
        req.remove_header("x-amz-date");
        let header = format!(
            "AWS4-HMAC-SHA256 Credential={AKID}/20251106/{REGION}/{SERVICE}/aws4_request, \
             SignedHeaders=host;x-amz-date"
        );
        req.set_authorization(&header);
        assert_err(
            &err(&req),
            AuthErrorCode::IncompleteSignature,
            &format!(
                "Authorization header requires 'Signature' parameter. Authorization header \
                 requires existence of either a 'X-Amz-Date' or a 'Date' header. \
                 Authorization={header}"
            ),
        );
    }

    #[test]
    fn authorization_without_credential_is_incomplete() {
        let mut req = sm_request(&SignOpts::default());
        let header = "AWS4-HMAC-SHA256 SignedHeaders=host;x-amz-date, Signature=abc";
        req.set_authorization(header);
        assert_err(
            &err(&req),
            AuthErrorCode::IncompleteSignature,
            &format!(
                "Authorization header requires 'Credential' parameter. Authorization={header}"
            ),
        );
    }

    #[test]
    fn authorization_without_signed_headers_is_incomplete() {
        let mut req = sm_request(&SignOpts::default());
        let header = format!(
            "AWS4-HMAC-SHA256 Credential={AKID}/20251106/{REGION}/{SERVICE}/aws4_request, \
             Signature=abc"
        );
        req.set_authorization(&header);
        assert_err(
            &err(&req),
            AuthErrorCode::IncompleteSignature,
            &format!(
                "Authorization header requires 'SignedHeaders' parameter. Authorization={header}"
            ),
        );
    }

    #[test]
    fn malformed_amz_date_is_incomplete() {
        let mut req = sm_request(&SignOpts::default());
        *req.header_mut("x-amz-date") = b"2025-11-06T13:26:08Z".to_vec();
        assert_err(
            &err(&req),
            AuthErrorCode::IncompleteSignature,
            "Date must be in ISO-8601 'basic format'. Got '2025-11-06T13:26:08Z'. See \
             http://en.wikipedia.org/wiki/ISO_8601",
        );
    }

    #[test]
    fn expired_signature_uses_awss_text() {
        // The example in aws-sm-spec.md §1.3.
        let req = sm_request(&SignOpts {
            time: datetime!(2025-11-05 22:08:58 UTC),
            ..Default::default()
        });
        assert_err(
            &err(&req),
            AuthErrorCode::InvalidSignature,
            "Signature expired: 20251105T220858Z is now earlier than 20251106T132108Z \
             (20251106T132608Z - 5 min.)",
        );
    }

    #[test]
    fn future_signature_uses_awss_text() {
        let req = sm_request(&SignOpts {
            time: datetime!(2025-11-06 13:31:09 UTC),
            ..Default::default()
        });
        assert_err(
            &err(&req),
            AuthErrorCode::InvalidSignature,
            "Signature not yet current: 20251106T133109Z is still later than 20251106T133108Z \
             (20251106T132608Z + 5 min.)",
        );
    }

    #[test]
    fn skew_of_exactly_five_minutes_is_accepted() {
        for t in [
            datetime!(2025-11-06 13:21:08 UTC),
            datetime!(2025-11-06 13:31:08 UTC),
        ] {
            let req = sm_request(&SignOpts {
                time: t,
                ..Default::default()
            });
            req.verify(&verifier(), &keys(), NOW).unwrap();
        }
        // Sub-second parts of the server clock are ignored.
        let req = sm_request(&SignOpts {
            time: datetime!(2025-11-06 13:21:08 UTC),
            ..Default::default()
        });
        req.verify(&verifier(), &keys(), datetime!(2025-11-06 13:26:08.999 UTC))
            .unwrap();
    }

    #[test]
    fn skew_is_checked_before_scope_and_key() {
        let keys = keys();
        let mut req = sm_request(&SignOpts {
            time: datetime!(2025-11-05 22:08:58 UTC),
            region: "eu-west-1",
            ..Default::default()
        });
        *req.header_mut("authorization") = req
            .authorization()
            .replace(AKID, "AKIDUNKNOWN")
            .into_bytes();
        let e = req.verify(&verifier(), &keys, NOW).unwrap_err();
        assert!(e.message.starts_with("Signature expired: "), "{e:?}");
        assert_eq!(keys.lookups(), 0);
    }

    #[test]
    fn host_must_be_signed() {
        let mut req = sm_request(&SignOpts::default());
        let auth = req.authorization().replace(
            "SignedHeaders=content-length;content-type;host;",
            "SignedHeaders=content-length;content-type;",
        );
        assert_ne!(auth, req.authorization());
        req.set_authorization(&auth);
        assert_err(
            &err(&req),
            AuthErrorCode::InvalidSignature,
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        );
    }

    #[test]
    fn x_amz_date_must_be_signed() {
        let mut req = sm_request(&SignOpts::default());
        let auth = req.authorization().replace(";x-amz-date;", ";");
        assert_ne!(auth, req.authorization());
        req.set_authorization(&auth);
        assert_err(
            &err(&req),
            AuthErrorCode::InvalidSignature,
            "'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization.",
        );
    }

    #[test]
    fn other_algorithm_is_incomplete() {
        let mut req = sm_request(&SignOpts::default());
        let auth = req
            .authorization()
            .replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA512");
        req.set_authorization(&auth);
        assert_err(
            &err(&req),
            AuthErrorCode::IncompleteSignature,
            "Unsupported AWS 'algorithm': 'AWS4-HMAC-SHA512' (only AWS4-HMAC-SHA256 for now). ",
        );
    }

    #[test]
    fn credential_with_four_parts_is_incomplete() {
        let mut req = sm_request(&SignOpts::default());
        let auth = req.authorization().replace("/aws4_request,", ",");
        req.set_authorization(&auth);
        assert_err(
            &err(&req),
            AuthErrorCode::IncompleteSignature,
            &format!(
                "Credential must have exactly 5 slash-delimited elements, e.g. \
                 keyid/date/region/service/term, got '{AKID}/20251106/{REGION}/{SERVICE}'"
            ),
        );
    }

    #[test]
    fn wrong_region_is_invalid() {
        let req = sm_request(&SignOpts {
            region: "eu-west-1",
            ..Default::default()
        });
        assert_err(
            &err(&req),
            AuthErrorCode::InvalidSignature,
            "Credential should be scoped to a valid region, not 'eu-west-1'. ",
        );
    }

    #[test]
    fn wrong_service_is_invalid() {
        let req = sm_request(&SignOpts {
            service: "dynamodb",
            ..Default::default()
        });
        assert_err(
            &err(&req),
            AuthErrorCode::InvalidSignature,
            "Credential should be scoped to correct service: 'secretsmanager'. ",
        );
    }

    #[test]
    fn wrong_terminator_is_invalid() {
        let mut req = sm_request(&SignOpts::default());
        let auth = req
            .authorization()
            .replace("/aws4_request,", "/aws5_request,");
        req.set_authorization(&auth);
        assert_err(
            &err(&req),
            AuthErrorCode::InvalidSignature,
            "Credential should be scoped with a valid terminator: 'aws4_request', not \
             'aws5_request'. ",
        );
    }

    #[test]
    fn scope_date_must_match_amz_date() {
        let mut req = sm_request(&SignOpts::default());
        let auth = req.authorization().replace("/20251106/", "/20251105/");
        req.set_authorization(&auth);
        assert_err(
            &err(&req),
            AuthErrorCode::InvalidSignature,
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
             from HTTP: '20251105' != '20251106', from '20251106T132608Z'.",
        );
    }

    #[test]
    fn all_scope_errors_are_reported_together() {
        let mut req = sm_request(&SignOpts::default());
        let auth = req.authorization().replace(
            &format!("/20251106/{REGION}/{SERVICE}/aws4_request,"),
            "/b/c/d/e,",
        );
        req.set_authorization(&auth);
        assert_err(
            &err(&req),
            AuthErrorCode::InvalidSignature,
            "Credential should be scoped to a valid region, not 'c'. Credential should be scoped \
             to correct service: 'secretsmanager'. Credential should be scoped with a valid \
             terminator: 'aws4_request', not 'e'. Date in Credential scope does not match \
             YYYYMMDD from ISO-8601 version of date from HTTP: 'b' != '20251106', from \
             '20251106T132608Z'.",
        );
    }

    #[test]
    fn signed_header_absent_from_request_is_incomplete() {
        let mut req = sm_request(&SignOpts::default());
        req.remove_header("x-amz-target");
        let keys = keys();
        let e = req.verify(&verifier(), &keys, NOW).unwrap_err();
        assert_err(
            &e,
            AuthErrorCode::IncompleteSignature,
            "'x-amz-target' is named as a SignedHeader, but it does not exist in the HTTP \
             request.",
        );
        assert_eq!(keys.lookups(), 0);
    }

    #[test]
    fn unknown_access_key_is_unrecognized() {
        let keys = Keys::default().with("AKIDOTHER", SECRET, None);
        let req = sm_request(&SignOpts::default());
        assert_err(
            &req.verify(&verifier(), &keys, NOW).unwrap_err(),
            AuthErrorCode::UnrecognizedClient,
            "The security token included in the request is invalid.",
        );
    }

    #[test]
    fn wrong_secret_is_signature_mismatch() {
        let req = sm_request(&SignOpts {
            secret: "not-the-secret",
            ..Default::default()
        });
        assert_err(
            &err(&req),
            AuthErrorCode::InvalidSignature,
            "The request signature we calculated does not match the signature you provided. \
             Check your AWS Secret Access Key and signing method. Consult the service \
             documentation for details.",
        );
    }

    #[test]
    fn signature_of_other_length_is_mismatch() {
        let mut req = sm_request(&SignOpts::default());
        let auth = req.authorization();
        let (head, sig) = auth.split_once("Signature=").unwrap();
        for bad in ["", &sig[..63], &format!("{sig}0"), &sig.to_uppercase()] {
            req.set_authorization(&format!("{head}Signature={bad}"));
            assert_eq!(err(&req), AuthError::mismatch(), "{bad}");
        }
    }

    #[test]
    fn session_credential_requires_its_token() {
        let keys = Keys::default().with(AKID, SECRET, Some("the-token"));
        // Signed without any token.
        let req = sm_request(&SignOpts::default());
        assert_err(
            &req.verify(&verifier(), &keys, NOW).unwrap_err(),
            AuthErrorCode::UnrecognizedClient,
            "The security token included in the request is invalid.",
        );
        // Signed with another token.
        let req = sm_request(&SignOpts {
            token: Some("other-token"),
            ..Default::default()
        });
        assert_err(
            &req.verify(&verifier(), &keys, NOW).unwrap_err(),
            AuthErrorCode::UnrecognizedClient,
            "The security token included in the request is invalid.",
        );
        // Right token, but sent twice (unsigned, so only the relaxed mode gets that far; a
        // signed one would change the signature).
        let mut req = sm_request(&SignOpts::default());
        for _ in 0..2 {
            req.headers
                .push(("X-Amz-Security-Token".to_owned(), b"the-token".to_vec()));
        }
        assert_eq!(
            req.verify_relaxed(&verifier(), &keys, NOW).unwrap_err(),
            AuthError::unrecognized()
        );
        assert_eq!(
            req.verify(&verifier(), &keys, NOW).unwrap_err().message,
            msg::TOKEN_NOT_SIGNED
        );
        // A signed token sent twice no longer matches the signature.
        let mut req = sm_request(&SignOpts {
            token: Some("the-token"),
            ..Default::default()
        });
        req.headers
            .push(("X-Amz-Security-Token".to_owned(), b"the-token".to_vec()));
        assert_eq!(
            req.verify(&verifier(), &keys, NOW).unwrap_err(),
            AuthError::mismatch()
        );
    }

    #[test]
    fn issue_9_unsigned_session_token_is_refused_even_when_right() {
        // See: #9
        // Like the suite's `post-sts-header-after`: token added after signing. Generic SigV4
        // (the relaxed mode) accepts it when it is the right one; Rotary requires it signed.
        let keys = Keys::default().with(AKID, SECRET, Some("the-token"));
        let mut req = sm_request(&SignOpts::default());
        req.headers
            .push(("X-Amz-Security-Token".to_owned(), b"the-token".to_vec()));
        req.verify_relaxed(&verifier(), &keys, NOW).unwrap();
        assert_err(
            &req.verify(&verifier(), &keys, NOW).unwrap_err(),
            AuthErrorCode::InvalidSignature,
            "'X-Amz-Security-Token' must be a 'SignedHeader' in the AWS Authorization.",
        );
        *req.header_mut("x-amz-security-token") = b"the-tokeN".to_vec();
        assert_eq!(
            req.verify_relaxed(&verifier(), &keys, NOW).unwrap_err(),
            AuthError::unrecognized()
        );
        assert_eq!(
            req.verify(&verifier(), &keys, NOW).unwrap_err().message,
            msg::TOKEN_NOT_SIGNED
        );
    }

    #[test]
    fn long_lived_credential_rejects_a_token() {
        let req = sm_request(&SignOpts {
            token: Some("stray-token"),
            ..Default::default()
        });
        assert_err(
            &err(&req),
            AuthErrorCode::UnrecognizedClient,
            "The security token included in the request is invalid.",
        );
    }

    #[test]
    fn rotated_secret_never_reuses_cached_key() {
        let verifier = verifier();
        let old = sm_request(&SignOpts::default());
        old.verify(&verifier, &keys(), NOW).unwrap();
        assert_eq!(verifier.cached_keys(), 1);

        let rotated = Keys::default().with(AKID, "the-new-secret", None);
        assert_eq!(
            old.verify(&verifier, &rotated, NOW).unwrap_err(),
            AuthError::mismatch()
        );
        let new = sm_request(&SignOpts {
            secret: "the-new-secret",
            ..Default::default()
        });
        new.verify(&verifier, &rotated, NOW).unwrap();
        assert_eq!(
            new.verify(&verifier, &keys(), NOW).unwrap_err(),
            AuthError::mismatch()
        );
    }

    #[test]
    fn cache_is_bounded() {
        let verifier = verifier();
        let mut keys = Keys::default();
        for i in 0..(CACHE_CAPACITY + 10) {
            keys = keys.with(&format!("AKID{i}"), SECRET, None);
        }
        let cred = keys.lookup("AKID0").unwrap();
        for i in 0..(CACHE_CAPACITY + 10) {
            let _ = verifier.signing_key(&cred, &format!("AKID{i}"), "20251106");
            assert!(verifier.cached_keys() <= CACHE_CAPACITY);
        }
        assert_eq!(verifier.cached_keys(), 10);
    }

    #[test]
    fn cached_and_fresh_keys_agree() {
        let verifier = verifier();
        let cred = keys().lookup(AKID).unwrap();
        let fresh = verifier.signing_key(&cred, AKID, "20150830");
        let cached = verifier.signing_key(&cred, AKID, "20150830");
        assert_eq!(*fresh, *cached);
    }

    #[test]
    fn documented_signing_key_example() {
        // IAM docs' "derive a signing key" example: secret as above, 20120215/us-east-1/iam.
        let v = Verifier::new("us-east-1", "iam");
        let cred = keys().lookup(AKID).unwrap();
        assert_eq!(
            hex::encode(*v.signing_key(&cred, AKID, "20120215")),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
    }

    #[test]
    fn debug_output_never_holds_secrets() {
        let v = verifier();
        sm_request(&SignOpts::default())
            .verify(&v, &keys(), NOW)
            .unwrap();
        let dbg = format!("{v:?}");
        assert!(!dbg.contains(SECRET));
        assert!(dbg.contains("cached_keys: 1"), "{dbg}");
    }

    // ---- AWS's SigV4 test suite ----

    /// Parses a test-suite `header-signed-request.txt`.
    fn parse_suite_request(text: &str) -> Req {
        let (head, body) = text.split_once("\n\n").unwrap_or((text, ""));
        let mut lines = head.lines();
        let request_line = lines.next().unwrap();
        let (method, target) = request_line.split_once(' ').unwrap();
        let target = target.strip_suffix(" HTTP/1.1").unwrap_or(target);
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let mut headers: Vec<(String, Vec<u8>)> = Vec::new();
        for line in lines {
            if line.starts_with(' ') || line.starts_with('\t') {
                // obs-fold: the continuation belongs to the previous value.
                let last = headers.last_mut().unwrap();
                last.1.push(b' ');
                last.1.extend_from_slice(line.trim().as_bytes());
            } else {
                let (name, value) = line.split_once(':').unwrap();
                headers.push((name.to_owned(), value.trim().as_bytes().to_vec()));
            }
        }
        Req {
            method: method.to_owned(),
            path: path.to_owned(),
            query: query.to_owned(),
            headers,
            body: body.as_bytes().to_vec(),
        }
    }

    fn run_vector(name: &str) {
        let vector = super::super::vectors::VECTORS
            .iter()
            .find(|v| v.name == name)
            .unwrap_or_else(|| panic!("no vector {name}"));
        let req = parse_suite_request(vector.signed_request);

        // Our canonical request is byte-for-byte AWS's.
        let auth = req.authorization();
        let signed = parse::signed_headers(
            auth.split("SignedHeaders=")
                .nth(1)
                .unwrap()
                .split(',')
                .next()
                .unwrap(),
        );
        let headers: Vec<(&str, &[u8])> = req
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_slice()))
            .collect();
        let parts = RequestParts {
            method: &req.method,
            path: &req.path,
            query: &req.query,
            headers: &headers,
            body: &req.body,
        };
        let creq = canonical::canonical_request(
            &parts,
            &signed,
            &canonical::payload_hash(&parts).unwrap(),
        )
        .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&creq),
            vector.canonical_request,
            "{name}"
        );

        // And the signature verifies at the suite's time, in its region and service: in
        // strict mode, except for the vectors that leave a header Rotary requires unsigned,
        // which strict mode refuses and generic SigV4 (the relaxed mode) accepts.
        let keys = Keys::default().with(AKID, SECRET, vector.session_token);
        let verifier = Verifier::new("us-east-1", "service");
        let now = datetime!(2015-08-30 12:36:00 UTC);
        let not_strict = NOT_STRICT_VECTORS.iter().find(|(n, _)| *n == name);
        let principal = match not_strict {
            None => req.verify(&verifier, &keys, now).unwrap(),
            Some((_, message)) => {
                assert_err(
                    &req.verify(&verifier, &keys, now).unwrap_err(),
                    AuthErrorCode::InvalidSignature,
                    message,
                );
                req.verify_relaxed(&verifier, &keys, now).unwrap()
            }
        };
        assert_eq!(principal.access_key_id, AKID);

        // Any other secret fails.
        let wrong = Keys::default().with(
            AKID,
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEz",
            vector.session_token,
        );
        assert_eq!(
            req.verify_relaxed(&verifier, &wrong, now).unwrap_err(),
            AuthError::mismatch()
        );
    }

    /// Test-suite vectors that are not Secrets Manager requests and leave unsigned a header
    /// that Rotary requires to be signed when sent, with the refusal strict mode gives.
    const NOT_STRICT_VECTORS: [(&str, &str); 1] =
        [("post-sts-header-after", msg::TOKEN_NOT_SIGNED)];

    macro_rules! suite_vectors {
        ($($test:ident => $name:literal,)*) => {
            $(
                #[test]
                fn $test() {
                    run_vector($name);
                }
            )*

            #[test]
            fn every_embedded_vector_has_a_test() {
                let tested = [$($name),*];
                for v in super::super::vectors::VECTORS {
                    assert!(tested.contains(&v.name), "untested vector {}", v.name);
                }
            }
        };
    }

    suite_vectors! {
        suite_get_header_key_duplicate => "get-header-key-duplicate",
        suite_get_header_value_multiline => "get-header-value-multiline",
        suite_get_header_value_order => "get-header-value-order",
        suite_get_header_value_trim => "get-header-value-trim",
        suite_get_relative_normalized => "get-relative-normalized",
        suite_get_relative_relative_normalized => "get-relative-relative-normalized",
        suite_get_slash_dot_slash_normalized => "get-slash-dot-slash-normalized",
        suite_get_slash_normalized => "get-slash-normalized",
        suite_get_slash_pointless_dot_normalized => "get-slash-pointless-dot-normalized",
        suite_get_slashes_normalized => "get-slashes-normalized",
        suite_get_unreserved => "get-unreserved",
        suite_get_vanilla => "get-vanilla",
        suite_get_vanilla_empty_query_key => "get-vanilla-empty-query-key",
        suite_get_vanilla_query => "get-vanilla-query",
        suite_get_vanilla_query_order_encoded => "get-vanilla-query-order-encoded",
        suite_get_vanilla_query_order_key_case => "get-vanilla-query-order-key-case",
        suite_get_vanilla_query_unreserved => "get-vanilla-query-unreserved",
        suite_get_vanilla_utf8_query => "get-vanilla-utf8-query",
        suite_get_vanilla_with_session_token => "get-vanilla-with-session-token",
        suite_post_header_key_case => "post-header-key-case",
        suite_post_header_key_sort => "post-header-key-sort",
        suite_post_header_value_case => "post-header-value-case",
        suite_post_sts_header_after => "post-sts-header-after",
        suite_post_sts_header_before => "post-sts-header-before",
        suite_post_vanilla => "post-vanilla",
        suite_post_vanilla_empty_query_value => "post-vanilla-empty-query-value",
        suite_post_vanilla_query => "post-vanilla-query",
        suite_post_x_www_form_urlencoded => "post-x-www-form-urlencoded",
        suite_post_x_www_form_urlencoded_parameters => "post-x-www-form-urlencoded-parameters",
    }

    // ---- Property tests: anything the SDK signs verifies; any single change is rejected ----

    /// A random request as a Secrets Manager-compatible client might send it.
    #[derive(Debug, Clone)]
    struct Generated {
        path: String,
        query: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        token: Option<String>,
        offset_secs: i64,
    }

    fn generated() -> impl Strategy<Value = Generated> {
        let segment = "[a-zA-Z0-9._~:@!$-]{0,8}";
        let path = prop::collection::vec(segment, 0..4).prop_map(|s| format!("/{}", s.join("/")));
        let query = prop::collection::vec(("[a-zA-Z0-9_.~-]{1,6}", "[a-zA-Z0-9_.~-]{0,6}"), 0..3)
            .prop_map(|kv| {
                kv.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join("&")
            });
        // `x-t…` can never collide with the headers the signer adds itself (`x-amz-*`).
        let header = ("[xX]-[tT][a-zA-Z]{0,2}-[a-z0-9]{1,6}", "[ -~]{0,24}");
        let headers = prop::collection::vec(header, 0..6);
        let body = prop::collection::vec(any::<u8>(), 0..256);
        let token = prop::option::of("[A-Za-z0-9/+=]{16,64}");
        (path, query, headers, body, token, -300i64..=300).prop_map(
            |(path, query, headers, body, token, offset_secs)| Generated {
                path,
                query,
                headers,
                body,
                token,
                offset_secs,
            },
        )
    }

    fn sign_generated(g: &Generated) -> Req {
        let headers: Vec<(&str, &str)> = g
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let path_and_query = if g.query.is_empty() {
            g.path.clone()
        } else {
            format!("{}?{}", g.path, g.query)
        };
        sdk_sign(
            "POST",
            "secrets.internal:8443",
            &path_and_query,
            &headers,
            &g.body,
            &SignOpts {
                token: g.token.as_deref(),
                time: NOW + Duration::seconds(g.offset_secs),
                ..Default::default()
            },
        )
    }

    #[derive(Debug, Clone)]
    enum Mutation {
        BodyByte(prop::sample::Index, u8),
        SignedHeaderValue(prop::sample::Index),
        Date(i64),
        ServerRegion,
        SignatureChar(prop::sample::Index),
        Path,
        Method,
        /// Adds one of the headers that must be signed when sent, unsigned (issue #9).
        UnsignedRequiredHeader(prop::sample::Index),
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            (any::<prop::sample::Index>(), 1u8..=255).prop_map(|(i, x)| Mutation::BodyByte(i, x)),
            any::<prop::sample::Index>().prop_map(Mutation::SignedHeaderValue),
            prop_oneof![-86_400i64..0, 1i64..86_400].prop_map(Mutation::Date),
            Just(Mutation::ServerRegion),
            any::<prop::sample::Index>().prop_map(Mutation::SignatureChar),
            Just(Mutation::Path),
            Just(Mutation::Method),
            any::<prop::sample::Index>().prop_map(Mutation::UnsignedRequiredHeader),
        ]
    }

    fn signed_header_names(req: &Req) -> Vec<String> {
        let auth = req.authorization();
        let list = auth
            .split("SignedHeaders=")
            .nth(1)
            .unwrap()
            .split(',')
            .next()
            .unwrap();
        list.split(';').map(str::to_owned).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn sdk_signed_requests_verify(g in generated()) {
            let keys = Keys::default().with(AKID, SECRET, g.token.as_deref());
            let req = sign_generated(&g);
            let principal = req.verify(&verifier(), &keys, NOW);
            prop_assert!(principal.is_ok(), "{:?} for {:?}", principal, req);
        }

        #[test]
        fn any_single_mutation_is_rejected(g in generated(), m in mutation()) {
            let keys = Keys::default().with(AKID, SECRET, g.token.as_deref());
            let mut req = sign_generated(&g);
            let mut verifier = verifier();
            match &m {
                Mutation::BodyByte(i, x) => {
                    if req.body.is_empty() {
                        req.body.push(*x);
                    } else {
                        let i = i.index(req.body.len());
                        req.body[i] ^= x;
                    }
                }
                Mutation::SignedHeaderValue(i) => {
                    let names = signed_header_names(&req);
                    let name = names[i.index(names.len())].clone();
                    req.header_mut(&name).push(b'!');
                }
                Mutation::Date(delta) => {
                    let date = String::from_utf8(req.header_mut("x-amz-date").clone()).unwrap();
                    let t = parse::amz_date(&date).unwrap() + Duration::seconds(*delta);
                    *req.header_mut("x-amz-date") = parse::format_amz_date(t).into_bytes();
                }
                Mutation::ServerRegion => verifier = Verifier::new("us-west-2", SERVICE),
                Mutation::SignatureChar(i) => {
                    let auth = req.authorization();
                    let (head, sig) = auth.split_once("Signature=").unwrap();
                    let mut sig = sig.as_bytes().to_vec();
                    let i = i.index(sig.len());
                    sig[i] = if sig[i] == b'0' { b'1' } else { b'0' };
                    req.set_authorization(&format!("{head}Signature={}", String::from_utf8(sig).unwrap()));
                }
                Mutation::Path => req.path.push('x'),
                Mutation::Method => req.method = "PUT".to_owned(),
                Mutation::UnsignedRequiredHeader(i) => {
                    let (name, _) = SIGNED_WHEN_PRESENT[i.index(SIGNED_WHEN_PRESENT.len())];
                    let value = match name {
                        header::X_AMZ_CONTENT_SHA256 => hex::encode(Sha256::digest(&req.body)),
                        header::X_AMZ_TARGET => "secretsmanager.GetSecretValue".to_owned(),
                        header::CONTENT_TYPE => "application/x-amz-json-1.1".to_owned(),
                        _ => g.token.clone().unwrap_or_else(|| "token".to_owned()),
                    };
                    req.headers.push((name.to_owned(), value.into_bytes()));
                }
            }
            let result = req.verify(&verifier, &keys, NOW);
            prop_assert!(result.is_err(), "{:?} accepted after {:?}", req, m);
            let e = result.unwrap_err();
            prop_assert!(!e.message.contains(SECRET));
            if req.body.len() >= 8 {
                let body = String::from_utf8_lossy(&req.body);
                prop_assert!(!e.message.contains(body.as_ref()));
            }
        }
    }
}
