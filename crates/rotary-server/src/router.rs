//! Routes and the request pipeline: body cap → SigV4 → target → content type → operation.

use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use rotary_auth::{CredentialSource, Principal, PrincipalKind, RequestParts, Verifier};
use rotary_core::{Ctx, OffsetClock, SecretsService};
use rotary_rotation::RotationEngine;
use rotary_wire::{api_error, ApiError, ErrorCode, Operation};

use crate::dispatch::dispatch;
use crate::metrics::Metrics;

/// Largest request body accepted. A 65,536-character secret escaped as `\uXXXX` is under
/// 400 KiB, so 1 MiB leaves room without letting a client make the server buffer more.
pub const MAX_BODY_BYTES: usize = 1 << 20;

const AMZ_JSON: &str = "application/x-amz-json-1.1";

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AppState {
    /// The domain service.
    pub service: Arc<SecretsService>,
    /// The rotation engine.
    pub rotation: Arc<RotationEngine>,
    /// The test clock, when the server runs with `--test-clock`.
    pub test_clock: Option<Arc<OffsetClock>>,
    /// SigV4 verification (caches signing keys).
    pub verifier: Arc<Verifier>,
    /// Access keys.
    pub credentials: Arc<dyn CredentialSource>,
    /// Counters.
    pub metrics: Arc<Metrics>,
}

/// The server's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", post(api))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn health(State(st): State<AppState>) -> Response {
    match st.service.store().ping().await {
        Ok(()) => json_response(StatusCode::OK, br#"{"status":"ok"}"#.to_vec(), None),
        Err(e) => {
            tracing::warn!(error = %e, "Health check failed: the store does not answer");
            json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                br#"{"status":"unavailable"}"#.to_vec(),
                None,
            )
        }
    }
}

async fn metrics(State(st): State<AppState>) -> Response {
    let mut text = st.metrics.render();
    text.push_str(&st.rotation.metrics().render());
    let mut r = text.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    r
}

fn json_response(status: StatusCode, body: Vec<u8>, request_id: Option<&str>) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(AMZ_JSON));
    if let Some(id) = request_id.and_then(|id| HeaderValue::from_str(id).ok()) {
        r.headers_mut().insert("x-amzn-RequestId", id);
    }
    r
}

fn error_response(e: &ApiError, request_id: &str) -> Response {
    let status = StatusCode::from_u16(e.code().http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    json_response(status, e.to_body(), Some(request_id))
}

async fn api(State(st): State<AppState>, req: Request) -> Response {
    let started = Instant::now();
    let request_id = uuid::Uuid::new_v4().to_string();
    let (parts, body) = req.into_parts();
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let op = Target::parse(&target);
    let op_label = op.as_ref().map_or("Unknown", Target::label);
    let result = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Err(_) => Err(api_error!(
            SerializationException,
            "The request body is larger than the maximum of 1048576 bytes."
        )),
        Ok(body) => handle(&st, &parts, body, op, &request_id).await,
    };
    let (response, code) = match result {
        Ok(body) => (json_response(StatusCode::OK, body, Some(&request_id)), "OK"),
        Err(e) => {
            if e.code() == ErrorCode::InternalServiceError {
                tracing::warn!(
                    request_id,
                    operation = op_label,
                    "Request failed with a server fault"
                );
            } else {
                tracing::debug!(
                    request_id,
                    operation = op_label,
                    code = e.code().as_str(),
                    "Request refused"
                );
            }
            (error_response(&e, &request_id), e.code().as_str())
        }
    };
    st.metrics
        .record(op_label, code, started.elapsed().as_secs_f64());
    response
}

/// An operation of either API.
#[derive(Debug, Clone, Copy)]
enum Target {
    Aws(Operation),
    Rotary(&'static str),
}

impl Target {
    fn parse(target: &str) -> Option<Self> {
        if let Some(op) = Operation::from_target(target) {
            return Some(Target::Aws(op));
        }
        let name = target.strip_prefix(rotary_rotation::api::TARGET_PREFIX)?;
        rotary_rotation::api::OPERATIONS
            .iter()
            .find(|o| **o == name)
            .map(|o| Target::Rotary(o))
    }

    fn label(&self) -> &'static str {
        match self {
            Target::Aws(op) => op.name(),
            Target::Rotary(name) => name,
        }
    }
}

/// What temporary rotation credentials may do: read and write the secret being rotated.
const SESSION_OPERATIONS: [Operation; 6] = [
    Operation::DescribeSecret,
    Operation::GetSecretValue,
    Operation::PutSecretValue,
    Operation::UpdateSecretVersionStage,
    Operation::ListSecretVersionIds,
    Operation::GetRandomPassword,
];

/// Session credentials (issued to rotation functions) act only on the secrets in their
/// scope. Root and users are not restricted here; policies come with access control.
async fn authorize(
    st: &AppState,
    principal: &Principal,
    op: &Target,
    body: &[u8],
) -> Result<(), ApiError> {
    let PrincipalKind::Session { scope, .. } = &principal.kind else {
        return Ok(());
    };
    let deny = |action: &str, resource: &str| {
        api_error!(
            AccessDeniedException,
            "User: {} is not authorized to perform: secretsmanager:{action} on resource: {resource} because no identity-based policy allows the secretsmanager:{action} action",
            principal.arn
        )
    };
    let Target::Aws(op) = op else {
        return Err(deny(op.label(), "*"));
    };
    if !SESSION_OPERATIONS.contains(op) {
        return Err(deny(op.name(), "*"));
    }
    if *op == Operation::GetRandomPassword {
        return Ok(());
    }
    #[derive(serde::Deserialize)]
    struct Id {
        #[serde(rename = "SecretId")]
        secret_id: Option<String>,
    }
    let id = serde_json::from_slice::<Id>(body)
        .ok()
        .and_then(|i| i.secret_id)
        .unwrap_or_default();
    match st.service.arn_of(&id).await? {
        Some(arn) if scope.contains(&arn) => Ok(()),
        _ => Err(deny(op.name(), &id)),
    }
}

async fn handle(
    st: &AppState,
    parts: &axum::http::request::Parts,
    body: Bytes,
    op: Option<Target>,
    request_id: &str,
) -> Result<Vec<u8>, ApiError> {
    let headers: Vec<(&str, &[u8])> = parts
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_bytes()))
        .collect();
    let path = parts.uri.path();
    let query = parts.uri.query().unwrap_or_default();
    let signed = RequestParts {
        method: parts.method.as_str(),
        path,
        query,
        headers: &headers,
        body: &body,
    };
    let now = time::OffsetDateTime::now_utc();
    let principal = st
        .verifier
        .verify(&signed, st.credentials.as_ref(), now)
        .map_err(|e| {
            let code =
                ErrorCode::parse(e.code.as_str()).unwrap_or(ErrorCode::AccessDeniedException);
            ApiError::new(code, e.message)
        })?;
    let Some(op) = op else {
        return Err(api_error!(
            UnknownOperationException,
            "The operation requested is not known to Secrets Manager."
        ));
    };
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let media = content_type.split(';').next().unwrap_or_default().trim();
    if !(media.starts_with("application/x-amz-json-") || media == "application/json") {
        return Err(api_error!(
            SerializationException,
            "Unsupported Content-Type. Send application/x-amz-json-1.1."
        ));
    }
    let cx = Ctx {
        request_id: request_id.to_owned(),
        caller: principal.arn.clone(),
    };
    tracing::debug!(request_id, operation = op.label(), principal = %principal.arn, "Request authenticated");
    authorize(st, &principal, &op, &body).await?;
    match op {
        Target::Aws(op) => dispatch(st, &cx, op, &body).await,
        Target::Rotary(name) => {
            rotary_rotation::api::handle(&st.rotation, st.test_clock.as_deref(), &cx, name, &body)
                .await
        }
    }
}
