//! Rotation notifications: a POST of the attempt record to a configured URL, retried.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::history::AttemptRecord;

/// Where and when to notify.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// URL POSTed on failure (and on success when `on_success`).
    pub url: String,
    /// Also notify successful rotations.
    pub on_success: bool,
    /// Key of the `X-Rotary-Signature` HMAC.
    pub signing_key: Vec<u8>,
}

const ATTEMPTS: u32 = 5;

/// Sends `record` as JSON; retries with backoff on failure, in the background.
pub fn notify(
    client: reqwest::Client,
    config: WebhookConfig,
    event: &'static str,
    record: AttemptRecord,
) {
    tokio::spawn(async move {
        let body =
            match serde_json::to_vec(&serde_json::json!({ "Event": event, "Rotation": record })) {
                Ok(b) => b,
                Err(_) => return,
            };
        let ts = time::OffsetDateTime::now_utc().unix_timestamp().to_string();
        let mut mac = match Hmac::<Sha256>::new_from_slice(&config.signing_key) {
            Ok(m) => m,
            Err(_) => return,
        };
        mac.update(ts.as_bytes());
        mac.update(b".");
        mac.update(&body);
        let sig = format!("v1={}", hex::encode(mac.finalize().into_bytes()));
        let mut delay = Duration::from_millis(500);
        for attempt in 1..=ATTEMPTS {
            let r = client
                .post(&config.url)
                .header("Content-Type", "application/json")
                .header("X-Rotary-Event", event)
                .header("X-Rotary-Timestamp", &ts)
                .header("X-Rotary-Signature", &sig)
                .body(body.clone())
                .timeout(Duration::from_secs(10))
                .send()
                .await;
            match r {
                Ok(resp) if resp.status().is_success() => return,
                Ok(resp) => {
                    tracing::warn!(attempt, status = %resp.status(), "Rotation webhook refused")
                }
                Err(e) => tracing::warn!(attempt, error = %e, "Rotation webhook failed"),
            }
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
        tracing::error!(url = %config.url, "Rotation webhook gave up after {ATTEMPTS} attempts");
    });
}
