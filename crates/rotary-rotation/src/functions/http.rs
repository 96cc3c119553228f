//! A rotation function behind an HTTP(S) endpoint: each step is one signed POST.
//!
//! The request body is the event JSON, with headers:
//! - `Content-Type: application/json`
//! - `X-Rotary-Timestamp: <unix seconds>`
//! - `X-Rotary-Signature: v1=<hex HMAC-SHA256(key, "<timestamp>.<body>")>`
//!
//! A 2xx response is success (its body, capped, is the step's output); any other status
//! fails the step with `HTTP <status>: <body excerpt>`; no answer within the timeout is a
//! timeout. Redirects are not followed. The function's `Env` and the invocation's
//! credentials are never sent: an HTTP function holds its own credentials for Rotary.
//!
//! # Verifying a request (receiver side)
//!
//! The scheme is Stripe's webhook signature, so the same receiver code works:
//! 1. Read `X-Rotary-Timestamp` and the raw request body (before any JSON parsing).
//! 2. Compute `HMAC-SHA256(key, timestamp + "." + body)` and hex-encode it (lowercase).
//! 3. `X-Rotary-Signature` is a comma-separated list of `scheme=value`; accept if any `v1`
//!    value equals the computed one, compared in constant time (several `v1` entries may
//!    appear while the key is being rotated).
//! 4. Reject if the timestamp is more than a tolerance (5 minutes is usual) from the
//!    receiver's clock, which bounds replays; to stop replays inside the window, remember the
//!    `(ClientRequestToken, Step, timestamp)` triples seen. Steps are idempotent by design, so
//!    a replayed step is harmless for correct functions.
//!
//! In Python:
//! ```text
//! mac = hmac.new(key, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
//! ok = abs(time.time() - int(ts)) <= 300 and any(
//!     hmac.compare_digest(mac, v) for k, v in (p.split("=", 1) for p in sig.split(","))
//!     if k.strip() == "v1")
//! ```
//! [`verify_signature`] does the same in Rust.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::exec::{one_line, CappedLog};
use super::{FunctionError, Invocation, Output, RotationFunction};

/// Header carrying the signing time, in unix seconds.
pub const TIMESTAMP_HEADER: &str = "X-Rotary-Timestamp";
/// Header carrying `v1=<hex HMAC-SHA256>`.
pub const SIGNATURE_HEADER: &str = "X-Rotary-Signature";
/// Suggested tolerance for [`verify_signature`].
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

/// Longest body excerpt in a failure message.
const EXCERPT_CHARS: usize = 200;

type HmacSha256 = Hmac<Sha256>;

/// POSTs each step's event to a URL, signed with the server's key.
pub struct HttpFunction {
    url: String,
    key: Vec<u8>,
    client: Result<reqwest::Client, String>,
    clock: fn() -> i64,
}

impl fmt::Debug for HttpFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpFunction")
            .field("url", &self.url)
            .field("key", &"[REDACTED]")
            .finish_non_exhaustive()
    }
}

impl HttpFunction {
    /// A function POSTing to `url`, signing with `signing_key`.
    pub fn new(url: String, signing_key: &[u8]) -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("rotary-rotation/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| error_chain(&e));
        Self {
            url,
            key: signing_key.to_vec(),
            client,
            clock: system_unix_seconds,
        }
    }

    /// Uses `clock` (unix seconds) for the timestamp instead of the system clock.
    pub fn with_clock(mut self, clock: fn() -> i64) -> Self {
        self.clock = clock;
        self
    }
}

fn system_unix_seconds() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The `X-Rotary-Signature` value for a body signed at `timestamp`: `v1=<hex>`.
pub fn sign(key: &[u8], timestamp: &str, body: &[u8]) -> String {
    match mac(key, timestamp, body) {
        Some(mac) => format!("v1={}", hex::encode(mac.finalize().into_bytes())),
        None => String::new(),
    }
}

fn mac(key: &[u8], timestamp: &str, body: &[u8]) -> Option<HmacSha256> {
    // HMAC takes keys of any length; the error case cannot happen.
    let mut mac = HmacSha256::new_from_slice(key).ok()?;
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(mac)
}

/// Checks a request's signature: `header` (the `X-Rotary-Signature` value) must hold a
/// `v1=` entry equal (constant-time) to HMAC-SHA256(`key`, `"<timestamp>.<body>"`), and
/// `timestamp` must be within `tolerance_secs` of `now_unix`.
pub fn verify_signature(
    key: &[u8],
    timestamp: &str,
    body: &[u8],
    header: &str,
    now_unix: i64,
    tolerance_secs: i64,
) -> bool {
    let Ok(ts) = timestamp.trim().parse::<i64>() else {
        return false;
    };
    if now_unix.abs_diff(ts) > tolerance_secs.unsigned_abs() {
        return false;
    }
    header
        .split(',')
        .filter_map(|part| part.split_once('='))
        .filter(|(scheme, _)| scheme.trim() == "v1")
        .filter_map(|(_, value)| hex::decode(value.trim()).ok())
        .any(|candidate| {
            mac(key, timestamp, body).is_some_and(|mac| mac.verify_slice(&candidate).is_ok())
        })
}

/// `e` and its sources, joined by `: ` (reqwest's top-level message alone says little).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

#[async_trait::async_trait]
impl RotationFunction for HttpFunction {
    async fn invoke(&self, inv: &Invocation) -> Result<Output, FunctionError> {
        let client = self
            .client
            .as_ref()
            .map_err(|e| FunctionError::Spawn(format!("HTTP client: {e}")))?;
        let body = inv.event.to_json();
        let timestamp = (self.clock)().to_string();
        let signature = sign(&self.key, &timestamp, &body);
        let request = client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(TIMESTAMP_HEADER, &timestamp)
            .header(SIGNATURE_HEADER, signature)
            .body(body);
        let call = async {
            let mut response = request.send().await.map_err(|e| {
                // Never echo the URL: it may carry a token in its query or userinfo.
                let e = e.without_url();
                let text = format!("POST failed: {}", error_chain(&e));
                if e.is_connect() || e.is_builder() {
                    FunctionError::Spawn(text)
                } else {
                    FunctionError::Failed {
                        message: text,
                        output: Output::default(),
                    }
                }
            })?;
            let status = response.status();
            let mut log = CappedLog::default();
            loop {
                match response.chunk().await {
                    Ok(Some(chunk)) => log.push(&chunk),
                    Ok(None) => break,
                    Err(e) => {
                        let note = format!(
                            "\n[rotary: reading the response failed: {}]\n",
                            error_chain(&e.without_url())
                        );
                        log.push(note.as_bytes());
                        break;
                    }
                }
            }
            let output = Output { log: log.finish() };
            if status.is_success() {
                return Ok(output);
            }
            let excerpt = one_line(&output.log, EXCERPT_CHARS);
            let message = if excerpt.is_empty() {
                format!("HTTP {}", status.as_u16())
            } else {
                format!("HTTP {}: {excerpt}", status.as_u16())
            };
            Err(FunctionError::Failed { message, output })
        };
        match tokio::time::timeout(inv.timeout, call).await {
            Ok(result) => result,
            Err(_elapsed) => Err(FunctionError::Timeout(inv.timeout, Output::default())),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::post;
    use axum::Router;

    use super::super::{RotationEvent, Step};
    use super::*;

    const KEY: &[u8] = b"rotary-http-signing-key-for-tests";

    #[derive(Default)]
    struct Seen {
        bodies: Vec<(String, Vec<u8>)>,
    }

    type Shared = Arc<Mutex<Seen>>;

    fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// What a real receiver does: verify first, then act.
    async fn verified(seen: &Shared, headers: &HeaderMap, body: &Bytes) -> bool {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let ok = verify_signature(
            KEY,
            header(headers, TIMESTAMP_HEADER),
            body,
            header(headers, SIGNATURE_HEADER),
            now,
            DEFAULT_TOLERANCE_SECS,
        );
        if ok {
            let content_type = header(headers, "content-type").to_owned();
            seen.lock()
                .unwrap()
                .bodies
                .push((content_type, body.to_vec()));
        }
        ok
    }

    async fn ok_route(
        State(seen): State<Shared>,
        headers: HeaderMap,
        body: Bytes,
    ) -> (StatusCode, &'static str) {
        if verified(&seen, &headers, &body).await {
            (StatusCode::OK, "rotated fine")
        } else {
            (StatusCode::UNAUTHORIZED, "bad signature")
        }
    }

    async fn fail_route() -> (StatusCode, &'static str) {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "database unreachable:\n  connection refused",
        )
    }

    async fn slow_route() -> &'static str {
        tokio::time::sleep(Duration::from_secs(10)).await;
        "too late"
    }

    async fn receiver() -> (SocketAddr, Shared) {
        let seen = Shared::default();
        let app = Router::new()
            .route("/ok", post(ok_route))
            .route("/fail", post(fail_route))
            .route("/slow", post(slow_route))
            .with_state(Arc::clone(&seen));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (addr, seen)
    }

    fn invocation(timeout: Duration) -> Invocation {
        Invocation {
            event: RotationEvent {
                step: Step::FinishSecret,
                secret_id: "arn:aws:secretsmanager:us-east-1:000000000000:secret:db-AbCdEf".into(),
                client_request_token: "11111111-2222-3333-4444-555555555555".into(),
                rotation_token: "rot-token-0123456789-0123456789-0123456789".into(),
            },
            env: vec![("AWS_SECRET_ACCESS_KEY".into(), "must-not-be-sent".into())],
            timeout,
        }
    }

    #[tokio::test]
    async fn http_signed_post_succeeds() {
        let (addr, seen) = receiver().await;
        let f = HttpFunction::new(format!("http://{addr}/ok"), KEY);
        let inv = invocation(Duration::from_secs(10));
        let out = f.invoke(&inv).await.unwrap();
        assert_eq!(out.log, "rotated fine");
        let seen = seen.lock().unwrap();
        assert_eq!(seen.bodies.len(), 1);
        let (content_type, body) = &seen.bodies[0];
        assert_eq!(content_type, "application/json");
        assert_eq!(body, &inv.event.to_json());
        assert!(!String::from_utf8_lossy(body).contains("must-not-be-sent"));
    }

    #[tokio::test]
    async fn http_wrong_key_is_rejected_by_receiver() {
        let (addr, seen) = receiver().await;
        let f = HttpFunction::new(format!("http://{addr}/ok"), b"some-other-key");
        let err = f
            .invoke(&invocation(Duration::from_secs(10)))
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "HTTP 401: bad signature");
        assert!(seen.lock().unwrap().bodies.is_empty());
        // A stale clock is rejected too.
        let f = HttpFunction::new(format!("http://{addr}/ok"), KEY).with_clock(|| 1_000_000);
        let err = f
            .invoke(&invocation(Duration::from_secs(10)))
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "HTTP 401: bad signature");
    }

    #[tokio::test]
    async fn http_non_2xx_fails_with_status_and_excerpt() {
        let (addr, _) = receiver().await;
        let f = HttpFunction::new(format!("http://{addr}/fail"), KEY);
        match f
            .invoke(&invocation(Duration::from_secs(10)))
            .await
            .unwrap_err()
        {
            FunctionError::Failed { message, output } => {
                assert_eq!(
                    message,
                    "HTTP 500: database unreachable: connection refused"
                );
                assert_eq!(output.log, "database unreachable:\n  connection refused");
            }
            other => panic!("unexpected {other:?}"),
        }
        let f = HttpFunction::new(format!("http://{addr}/missing"), KEY);
        let err = f
            .invoke(&invocation(Duration::from_secs(10)))
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "HTTP 404");
    }

    #[tokio::test]
    async fn http_slow_receiver_times_out() {
        let (addr, _) = receiver().await;
        let f = HttpFunction::new(format!("http://{addr}/slow"), KEY);
        let started = Instant::now();
        let err = f
            .invoke(&invocation(Duration::from_millis(500)))
            .await
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(3));
        assert!(
            matches!(err, FunctionError::Timeout(d, _) if d == Duration::from_millis(500)),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn http_connection_refused_is_spawn_error_without_url() {
        // Bind then drop to get a port nothing listens on.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let f = HttpFunction::new(format!("http://user:hunter2@{addr}/x?token=t0p"), KEY);
        let err = f
            .invoke(&invocation(Duration::from_secs(10)))
            .await
            .unwrap_err();
        assert!(matches!(err, FunctionError::Spawn(_)), "{err:?}");
        let text = err.to_string();
        assert!(!text.contains("hunter2") && !text.contains("t0p"), "{text}");
    }

    #[test]
    fn signature_round_trip_and_rejections() {
        let body = br#"{"Step":"createSecret"}"#;
        let ts = "1700000000";
        let sig = sign(KEY, ts, body);
        assert!(sig.starts_with("v1=") && sig.len() == 3 + 64, "{sig}");
        let now = 1_700_000_100;
        assert!(verify_signature(KEY, ts, body, &sig, now, 300));
        // Extra schemes and several v1 values (key rotation) are fine.
        let multi = format!("v0=abc, v1={}, {sig}", "00".repeat(32));
        assert!(verify_signature(KEY, ts, body, &multi, now, 300));
        // Wrong key, tampered body, tampered timestamp, too old, too far ahead, garbage.
        assert!(!verify_signature(b"other", ts, body, &sig, now, 300));
        assert!(!verify_signature(KEY, ts, b"{}", &sig, now, 300));
        assert!(!verify_signature(KEY, "1700000001", body, &sig, now, 300));
        assert!(!verify_signature(KEY, ts, body, &sig, 1_700_000_301, 300));
        assert!(!verify_signature(KEY, ts, body, &sig, 1_699_999_699, 300));
        assert!(!verify_signature(KEY, "not-a-number", body, &sig, now, 300));
        assert!(!verify_signature(KEY, ts, body, "", now, 300));
        assert!(!verify_signature(KEY, ts, body, "v1=zz", now, 300));
        assert!(!verify_signature(
            KEY,
            ts,
            body,
            &sig.replace("v1=", "v2="),
            now,
            300
        ));
        assert!(!verify_signature(
            KEY,
            ts,
            body,
            &sig[..sig.len() - 2],
            now,
            300
        ));
    }

    #[test]
    fn signature_matches_python_hmac() {
        // hmac.new(KEY, b'1700000000.' + body, hashlib.sha256).hexdigest() in Python.
        let sig = sign(KEY, "1700000000", br#"{"Step":"createSecret"}"#);
        assert_eq!(
            sig,
            "v1=bd94d5d8488fb506f6db6ae0344569558e6072304e2eb6546ddb94b0dd57e78e"
        );
    }

    #[test]
    fn debug_redacts_key() {
        let f = HttpFunction::new("http://h/".into(), b"super-secret-key");
        assert!(!format!("{f:?}").contains("super-secret"));
    }
}
