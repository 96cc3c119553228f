//! Entry points for the fuzz targets (`fuzz/`) and property tests; not an API.
//!
//! They expose the parsing stages of SigV4 one by one, plus [`sign`], which signs a request
//! the way the SDKs do (from the same canonical request the verifier builds), so a target
//! can check that a request signed correctly is accepted.

use std::borrow::Cow;
use time::OffsetDateTime;

use super::{canonical, parse, verify, AuthError, RequestParts, ALGORITHM, TERMINATOR};

/// The parameters of an `Authorization` header, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationParts {
    /// The scheme, e.g. `AWS4-HMAC-SHA256`.
    pub algorithm: String,
    /// `Credential=`.
    pub credential: String,
    /// `SignedHeaders=`.
    pub signed_headers: String,
    /// `Signature=`.
    pub signature: String,
}

/// Parses an `Authorization` header value (see `parse::authorization`).
pub fn authorization(header: &str, has_date: bool) -> Result<AuthorizationParts, AuthError> {
    parse::authorization(header, has_date).map(|h| AuthorizationParts {
        algorithm: h.algorithm.to_owned(),
        credential: h.credential.to_owned(),
        signed_headers: h.signed_headers.to_owned(),
        signature: h.signature.to_owned(),
    })
}

/// Splits `Credential=` into its five parts: access key id, date, region, service,
/// terminator.
pub fn credential(value: &str) -> Result<[&str; 5], AuthError> {
    parse::credential(value).map(|s| [s.access_key_id, s.date, s.region, s.service, s.terminator])
}

/// `SignedHeaders=` as the sorted, lower-case list the canonical request uses.
pub fn signed_headers(value: &str) -> Vec<String> {
    parse::signed_headers(value)
        .into_iter()
        .map(Cow::into_owned)
        .collect()
}

/// Parses `X-Amz-Date`.
pub fn amz_date(value: &str) -> Result<OffsetDateTime, AuthError> {
    parse::amz_date(value)
}

/// Formats a time as `X-Amz-Date`.
pub fn format_amz_date(t: OffsetDateTime) -> String {
    parse::format_amz_date(t)
}

/// The canonical URI of a raw path.
pub fn canonical_uri(path: &str) -> String {
    canonical::canonical_uri(path)
}

/// The canonical query string of a raw query.
pub fn canonical_query(query: &str) -> String {
    canonical::canonical_query(query)
}

/// The `Authorization` header value that signs `req` with `secret` for `access_key_id`, at
/// `amz_date` (which `req` must carry as `x-amz-date`), in `region` and `service`, covering
/// the `signed` headers (lower case, sorted, each present in `req`).
#[allow(clippy::too_many_arguments)]
pub fn sign(
    req: &RequestParts<'_>,
    secret: &str,
    access_key_id: &str,
    amz_date: &str,
    region: &str,
    service: &str,
    signed: &[String],
) -> Result<String, AuthError> {
    let day = amz_date.get(..8).unwrap_or(amz_date);
    let scope = format!("{day}/{region}/{service}/{TERMINATOR}");
    let payload_hash = canonical::payload_hash(req)?;
    let names: Vec<Cow<'_, str>> = signed.iter().map(|n| Cow::Borrowed(n.as_str())).collect();
    let canonical_request = canonical::canonical_request(req, &names, &payload_hash)?;
    let string_to_sign = canonical::string_to_sign(
        amz_date,
        [day, region, service, TERMINATOR],
        &canonical_request,
    );
    let mut key = verify::hmac_sha256(format!("AWS4{secret}").as_bytes(), day.as_bytes());
    for part in [region, service, TERMINATOR] {
        key = verify::hmac_sha256(&key, part.as_bytes());
    }
    let signature = hex::encode(verify::hmac_sha256(&key, string_to_sign.as_bytes()));
    Ok(format!(
        "{ALGORITHM} Credential={access_key_id}/{scope}, SignedHeaders={}, Signature={signature}",
        signed.join(";")
    ))
}
