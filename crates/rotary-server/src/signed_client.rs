//! A SigV4-signed JSON 1.1 `POST` to a Rotary (or Secrets Manager) endpoint, signed with the
//! `aws-sigv4` crate as the AWS SDKs sign: what the `rotary` CLI and the replication shipper
//! send.

use std::time::SystemTime;

use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;

/// Builds the request of `target` (e.g. `rotary.ApplyReplica`) with `body` to `base_url`
/// (`http[s]://host[:port]`), signed for `region` and service `secretsmanager`. The error is
/// a sentence for the operator.
pub fn signed_json_post(
    http: &reqwest::Client,
    base_url: &str,
    region: &str,
    target: &str,
    body: Vec<u8>,
    credentials: &aws_credential_types::Credentials,
) -> Result<reqwest::RequestBuilder, String> {
    let url = format!("{}/", base_url.trim_end_matches('/'));
    let parsed = reqwest::Url::parse(&url)
        .map_err(|e| format!("the endpoint {base_url} is not a URL: {e}"))?;
    let host = match (parsed.host_str(), parsed.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        (None, _) => return Err(format!("the endpoint {base_url} has no host")),
    };
    let headers = [
        ("host", host.as_str()),
        ("content-type", "application/x-amz-json-1.1"),
        ("x-amz-target", target),
    ];
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("secretsmanager")
        .time(wall_clock())
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| format!("signing failed: {e}"))?
        .into();
    let signable = SignableRequest::new(
        "POST",
        url.clone(),
        headers.iter().copied(),
        SignableBody::Bytes(&body),
    )
    .map_err(|e| format!("signing failed: {e}"))?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| format!("signing failed: {e}"))?
        .into_parts();
    let mut req = http.post(&url).body(body);
    for (name, value) in headers.iter().filter(|(n, _)| *n != "host") {
        req = req.header(*name, *value);
    }
    for (name, value) in instructions.headers() {
        req = req.header(name, value);
    }
    Ok(req)
}

/// The signing time: SigV4 is checked against the server's wall clock, never a test clock.
#[expect(
    clippy::disallowed_methods,
    reason = "a request's signing time is wall-clock time"
)]
fn wall_clock() -> SystemTime {
    SystemTime::now()
}
