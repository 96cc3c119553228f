//! A SigV4-signed JSON 1.1 client for Rotary's API.

use anyhow::{anyhow, bail, Context};
use aws_config::BehaviorVersion;
use aws_credential_types::provider::ProvideCredentials;

/// An API error answered by the server.
#[derive(Debug)]
pub(super) struct ApiFailure {
    pub code: String,
    pub message: String,
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ApiFailure {}

/// The endpoint as a base URL: `localhost:8750` (no scheme) means `http://localhost:8750`,
/// as for a server listening on its default plain-HTTP address.
fn normalize_endpoint(endpoint: &str) -> anyhow::Result<String> {
    let endpoint = endpoint.trim();
    let url = if endpoint.contains("://") {
        endpoint.trim_end_matches('/').to_owned()
    } else {
        format!("http://{}", endpoint.trim_end_matches('/'))
    };
    let parsed = reqwest::Url::parse(&url).map_err(|e| {
        anyhow!("endpoint URL {endpoint:?} is not a URL ({e}); give e.g. http://127.0.0.1:8750")
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        bail!("endpoint URL {endpoint:?} must start with http:// or https://");
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        bail!("endpoint URL {endpoint:?} has no host; give e.g. http://127.0.0.1:8750");
    }
    Ok(url)
}

/// A configured client.
pub(super) struct Client {
    endpoint: String,
    region: String,
    credentials: aws_credential_types::Credentials,
    http: reqwest::Client,
}

impl Client {
    /// Resolves endpoint, region and credentials (from `profile` when given).
    pub(super) async fn connect(
        endpoint_url: Option<String>,
        region: Option<String>,
        profile: Option<String>,
    ) -> anyhow::Result<Self> {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(p) = profile {
            loader = loader.profile_name(p);
        }
        let sdk = loader.load().await;
        let endpoint = endpoint_url
            .or_else(|| std::env::var("AWS_ENDPOINT_URL_SECRETS_MANAGER").ok())
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
            .or_else(|| sdk.endpoint_url().map(str::to_owned))
            .unwrap_or_else(|| "http://127.0.0.1:8750".to_owned());
        let region = region
            .or_else(|| sdk.region().map(|r| r.to_string()))
            .unwrap_or_else(|| "us-east-1".to_owned());
        let provider = sdk.credentials_provider().ok_or_else(|| {
            anyhow!(
                "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or a profile"
            )
        })?;
        let credentials = provider.provide_credentials().await.context(
            "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or a profile",
        )?;
        Ok(Self {
            endpoint: normalize_endpoint(&endpoint)?,
            region,
            credentials,
            http: reqwest::Client::new(),
        })
    }

    /// Calls `target` (e.g. `rotary.ListFunctions`) with a JSON body.
    pub(super) async fn call(
        &self,
        target: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        let body = serde_json::to_vec(body)?;
        let url = format!("{}/", self.endpoint);
        let req = rotary_server::signed_client::signed_json_post(
            &self.http,
            &self.endpoint,
            &self.region,
            target,
            body,
            &self.credentials,
        )
        .map_err(|e| anyhow!("{e}"))?;
        let resp = req.send().await.with_context(|| format!("calling {url}"))?;
        let status = resp.status();
        let bytes = resp.bytes().await?;
        let json: serde_json::Value = if bytes.is_empty() {
            serde_json::json!({})
        } else {
            serde_json::from_slice(&bytes).with_context(|| {
                format!("the server answered HTTP {status} with a body that is not JSON")
            })?
        };
        if !status.is_success() {
            let code = json
                .get("__type")
                .and_then(|v| v.as_str())
                .unwrap_or("UnknownError");
            let message = json
                .get("Message")
                .or_else(|| json.get("message"))
                .and_then(|v| v.as_str())
                .unwrap_or("");
            return Err(ApiFailure {
                code: code.to_owned(),
                message: message.to_owned(),
            }
            .into());
        }
        if !json.is_object() {
            bail!("the server answered with JSON that is not an object");
        }
        Ok(json)
    }
}

#[cfg(test)]
mod tests {
    use super::normalize_endpoint;

    #[test]
    fn endpoint_without_scheme_is_http() {
        assert_eq!(
            normalize_endpoint("localhost:8750").unwrap(),
            "http://localhost:8750"
        );
        assert_eq!(normalize_endpoint("https://h:1/").unwrap(), "https://h:1");
        assert!(normalize_endpoint("ftp://h").is_err());
        assert!(normalize_endpoint("http://").is_err());
    }
}
