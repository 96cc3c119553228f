//! Routes and the request pipeline: header pre-check → body (bounded) → SigV4 → target →
//! content type → operation.

use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use http_body_util::BodyExt;
use rotary_auth::sigv4::Prechecked;
use rotary_auth::{CredentialSource, Principal, PrincipalKind, RequestParts, Verifier};
use rotary_core::{Ctx, OffsetClock, SecretsService};
use rotary_rotation::RotationEngine;
use rotary_wire::dto::KmsOperation;
use rotary_wire::rotary_api::RotaryOperation;
use rotary_wire::{api_error, ApiError, ErrorCode, Operation};

use crate::authz::{Action, Authorizer, RequestInfo};
use crate::dispatch::dispatch;
use crate::iam::Iam;
use crate::limits::{BodyLimits, BodyPermit};
use crate::listener::ConnInfo;
use crate::metrics::Metrics;
use rotary_core::audit::{AuditLog, AuditRecord, DenialReason, Outcome as AuditOutcome};

/// Default largest request body. A 65,536-character SecretString escaped as `\uXXXX` is
/// 384 KiB, so 1 MiB leaves room for the other members; the memory of all bodies together
/// is bounded separately (`--body-memory-bytes`).
pub const MAX_BODY_BYTES: usize = 1 << 20;

const AMZ_JSON: &str = "application/x-amz-json-1.1";

/// SigV4 service name of the API.
const SERVICE: &str = "secretsmanager";

/// Where `/metrics` is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsAccess {
    /// On the main listener, to SigV4-signed `GET`s of any valid principal.
    Signed,
    /// On a separate listener only (`--metrics-listen`); the main listener answers 404.
    Separate,
}

/// Shared state of the handlers. axum's `State` extractor clones it for every request, so it
/// is one `Arc` (one reference-count increment) rather than a dozen and a `String`.
#[derive(Clone)]
pub struct AppState(Arc<AppShared>);

impl AppState {
    /// Wraps what the handlers share.
    pub fn new(shared: AppShared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppShared;

    fn deref(&self) -> &AppShared {
        &self.0
    }
}

/// What the handlers share (see [`AppState`]).
pub struct AppShared {
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
    /// Region of this server (SigV4 scope), for the header pre-check.
    pub region: String,
    /// Body size, time and memory limits.
    pub body_limits: Arc<BodyLimits>,
    /// Where `/metrics` is served.
    pub metrics_access: MetricsAccess,
    /// Policy evaluation for every request.
    pub authorizer: Arc<Authorizer>,
    /// Users, groups, access keys and their policies.
    pub iam: Arc<Iam>,
    /// The hash-chained audit log: one record per request.
    pub audit: Arc<AuditLog>,
}

/// What the request path learned that goes into the audit record.
#[derive(Default)]
struct AuditFacts {
    principal_arn: Option<String>,
    access_key_id: Option<String>,
    secret_arn: Option<String>,
    version_id: Option<String>,
    denial: Option<DenialReason>,
    authentication_failed: bool,
    /// What the answer names, when the operation said so (else the answer is read).
    answer: Option<NamedIds>,
}

/// Error types that mean the caller was not authenticated.
fn is_authentication_error(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::MissingAuthenticationTokenException
            | ErrorCode::UnrecognizedClientException
            | ErrorCode::InvalidSignatureException
            | ErrorCode::IncompleteSignatureException
    )
}

/// The access key id of an `Authorization` header, for the record of a refused request.
fn claimed_access_key(parts: &axum::http::request::Parts) -> Option<String> {
    let auth = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let cred = auth.split("Credential=").nth(1)?;
    let akid = cred.split('/').next()?;
    (!akid.is_empty() && akid.len() <= 128 && akid.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then(|| akid.to_owned())
}

/// The secret and version a request or its answer names, for the audit record.
#[derive(Default, serde::Deserialize)]
pub(crate) struct NamedIds {
    #[serde(rename = "ARN")]
    pub(crate) arn: Option<String>,
    #[serde(rename = "VersionId")]
    pub(crate) version_id: Option<String>,
    #[serde(rename = "ClientRequestToken")]
    pub(crate) token: Option<String>,
}

impl NamedIds {
    fn of(json: &[u8]) -> Self {
        serde_json::from_slice(json).unwrap_or_default()
    }

    /// `VersionId`, or a write's token.
    fn version(self) -> Option<String> {
        self.version_id.or(self.token)
    }
}

/// Rotary operations the server itself answers (besides the rotation and IAM ones).
const SERVER_OPERATIONS: &[&str] = &["SimulatePolicy"];

/// The server's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", post(api).get(crate::console::root))
        .route("/health", get(health))
        .route("/metrics", get(signed_metrics))
        .merge(crate::console::routes(state.clone()))
        .with_state(state)
}

/// The routes of the separate metrics listener (`--metrics-listen`): `/metrics` and
/// `/health`, both unauthenticated.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// `/health` is for load balancers and monitors, not AWS SDKs: plain `application/json`.
async fn health(State(st): State<AppState>) -> Response {
    let (status, body): (StatusCode, &'static [u8]) = match st.service.store().ping().await {
        Ok(()) => (StatusCode::OK, br#"{"status":"ok"}"#),
        Err(e) => {
            tracing::warn!(error = %e, "Health check failed: the store does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                br#"{"status":"unavailable"}"#,
            )
        }
    };
    (
        status,
        [
            (axum::http::header::CONTENT_TYPE, "application/json"),
            (axum::http::header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// `/metrics` on the main listener: 404 when it has its own listener, otherwise only for a
/// SigV4-signed `GET` (empty body) of any valid principal.
async fn signed_metrics(State(st): State<AppState>, req: Request) -> Response {
    if st.metrics_access == MetricsAccess::Separate {
        return StatusCode::NOT_FOUND.into_response();
    }
    let request_id = new_request_id();
    let (parts, _body) = req.into_parts();
    let headers = header_pairs(&parts);
    let signed = RequestParts {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or_default(),
        headers: &headers,
        body: b"",
    };
    match st.verifier.verify(
        &signed,
        st.credentials.as_ref(),
        time::OffsetDateTime::now_utc(),
    ) {
        Ok(_) => metrics(State(st)).await,
        Err(e) => error_response(&auth_error(e), &request_id),
    }
}

async fn metrics(State(st): State<AppState>) -> Response {
    let mut registry = prometheus_client::registry::Registry::default();
    st.metrics.register(&mut registry);
    st.rotation.metrics().register(&mut registry);
    crate::metrics::register_audit(&mut registry, &st.audit);
    let mut r = crate::metrics::encode(&registry).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
    );
    r
}

/// `x-amzn-RequestId` (HTTP/1 writes names in lower case, as AWS's own endpoints do): a
/// constant, so that no answer parses and allocates the name.
const REQUEST_ID_HEADER: header::HeaderName = header::HeaderName::from_static("x-amzn-requestid");

fn json_response(status: StatusCode, body: Vec<u8>, request_id: Option<&str>) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(AMZ_JSON));
    if let Some(id) = request_id.and_then(|id| HeaderValue::from_str(id).ok()) {
        r.headers_mut().insert(REQUEST_ID_HEADER, id);
    }
    r
}

fn error_response(e: &ApiError, request_id: &str) -> Response {
    let status = StatusCode::from_u16(e.code().http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    json_response(status, e.to_body(), Some(request_id))
}

async fn api(State(st): State<AppState>, req: Request) -> Response {
    run(&st, req, None).await
}

/// The API pipeline for one request: SigV4-signed (`session` is `None`), or made by the
/// console for the principal its session signed in as, which then goes through the same
/// authorization, audit, metrics and dispatch as a signed request.
pub(crate) async fn run(st: &AppState, req: Request, session: Option<&Principal>) -> Response {
    let conn = req.extensions().get::<ConnInfo>().copied();
    run_traced(st, req, session, conn).await
}

/// A signed API request that came on `conn`: the listener hands `POST /` here directly (see
/// `listener::serve_api`), without attaching the connection as an extension.
pub(crate) async fn run_on(st: &AppState, req: Request, conn: ConnInfo) -> Response {
    run_traced(st, req, None, Some(conn)).await
}

async fn run_traced(
    st: &AppState,
    req: Request,
    session: Option<&Principal>,
    conn: Option<ConnInfo>,
) -> Response {
    use tracing::Instrument;
    let request_id = new_request_id();
    // Every line logged while the request runs (an internal error's, deep in the service or
    // the store) carries the id the client got in `x-amzn-RequestId`.
    let span = tracing::info_span!("request", request_id = %request_id);
    // Boxed: the pipeline's future is several KiB, and every future that awaits it (up to
    // hyper's slot for the request in flight) would otherwise be moved with it by value.
    Box::pin(run_as(st, req, session, conn, request_id))
        .instrument(span)
        .await
}

async fn run_as(
    st: &AppState,
    req: Request,
    session: Option<&Principal>,
    conn: Option<ConnInfo>,
    request_id: String,
) -> Response {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let op = Target::parse(&target);
    let op_label = op.as_ref().map_or("Unknown", Target::label);
    let mut close = false;
    let mut facts = AuditFacts::default();
    if st.audit.fail_closed() && st.audit.is_failing() {
        // Fail closed: nothing runs that cannot be audited.
        let e = api_error!(
            InternalServiceError,
            "The request cannot be audited, so it was refused."
        );
        return error_response(&e, &request_id);
    }
    let headers = header_pairs(&parts);
    // A console request was authenticated by its session instead.
    let pre = match session {
        Some(_) => Ok(None),
        None => rotary_auth::sigv4::precheck(
            &RequestParts {
                method: parts.method.as_str(),
                path: parts.uri.path(),
                query: parts.uri.query().unwrap_or_default(),
                headers: &headers,
                body: b"",
            },
            &st.region,
            SERVICE,
            st.credentials.as_ref(),
            time::OffsetDateTime::now_utc(),
        )
        .map(Some),
    };
    let (pre, refused) = match pre {
        Ok(p) => (p, None),
        Err(e) => (None, Some(e)),
    };
    let result = match read_body(st, &parts, body, refused).await {
        Err(BodyError::Api(e, closing)) => {
            close = closing;
            facts.authentication_failed = is_authentication_error(e.code());
            Err(e)
        }
        Err(BodyError::TimedOut) => {
            st.metrics
                .record(op_label, "RequestTimeout", started.elapsed().as_secs_f64());
            return body_timeout_response(st, &request_id);
        }
        Ok((body, permit)) => {
            let r = handle(
                st,
                &parts,
                &headers,
                pre,
                body.clone(),
                op,
                &request_id,
                &mut facts,
                session,
                conn,
            )
            .await;
            // An answer naming one secret is read once for its ARN (CreateSecret's exists
            // only now) and version; list answers are not scanned.
            let answer = match (&r, op, facts.answer.take()) {
                (Ok(_), _, Some(named)) => named,
                (Ok(out), Some(Target::Aws(o)), None)
                    if !matches!(o, Operation::ListSecrets | Operation::BatchGetSecretValue) =>
                {
                    NamedIds::of(out)
                }
                _ => NamedIds::default(),
            };
            if facts.secret_arn.is_none() {
                facts.secret_arn = answer.arn.clone();
            }
            facts.version_id = answer.version().or_else(|| NamedIds::of(&body).version());
            drop(permit);
            r
        }
    };
    let outcome = match &result {
        Ok(_) => AuditOutcome::Allowed,
        Err(_) if facts.denial.is_some() => AuditOutcome::Denied,
        Err(e) if facts.authentication_failed || is_authentication_error(e.code()) => {
            AuditOutcome::AuthenticationFailed
        }
        Err(e) => AuditOutcome::Error(e.code().as_str().to_owned()),
    };
    let operation = match op {
        Some(Target::Aws(o)) => ["secretsmanager:", o.name()].concat(),
        Some(t) => format!("rotary:{}", t.label()),
        None if target.is_empty() => "unknown".to_owned(),
        None => format!("unknown:{}", target.chars().take(64).collect::<String>()),
    };
    let now_ms = i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
        .unwrap_or(i64::MAX);
    let mut rec = AuditRecord::new(now_ms, request_id.clone(), operation, outcome);
    if let Some(a) = facts.principal_arn.take() {
        rec = rec.principal(a);
    }
    if let Some(k) = facts
        .access_key_id
        .take()
        .or_else(|| claimed_access_key(&parts))
    {
        rec = rec.access_key(k);
    }
    if let Some(c) = conn {
        rec = rec.source(ip_text(c.peer.ip()));
    }
    if let Some(ua) = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
    {
        // At most 256 characters (a header value is ASCII, so also bytes).
        rec = rec.user_agent(ua.get(..256).unwrap_or(ua));
    }
    if let Some(s) = facts.secret_arn.take() {
        rec = rec.secret(s);
    }
    if let Some(v) = facts.version_id.take() {
        rec = rec.version(v);
    }
    if let Some(d) = facts.denial.take() {
        rec = rec.denied_by(d);
    }
    let result = match st.audit.record(rec).await {
        Err(e) if st.audit.fail_closed() => {
            tracing::error!(request_id, error = %e, "Writing the audit record failed; the request is refused");
            Err(api_error!(
                InternalServiceError,
                "The request cannot be audited, so it was refused."
            ))
        }
        _ => result,
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
            let mut r = error_response(&e, &request_id);
            if close {
                r.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            (r, e.code().as_str())
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
    Rotary(RotaryOperation),
    Iam(&'static str),
    Kms(KmsOperation),
    Server(&'static str),
    Replica(&'static str),
}

impl Target {
    fn parse(target: &str) -> Option<Self> {
        if let Some(op) = Operation::from_target(target) {
            return Some(Target::Aws(op));
        }
        let name = target.strip_prefix(rotary_rotation::api::TARGET_PREFIX)?;
        let find = |ops: &'static [&'static str]| ops.iter().find(|o| **o == name).copied();
        RotaryOperation::from_name(name)
            .map(Target::Rotary)
            .or_else(|| find(crate::iam::OPERATIONS).map(Target::Iam))
            .or_else(|| KmsOperation::from_name(name).map(Target::Kms))
            .or_else(|| find(SERVER_OPERATIONS).map(Target::Server))
            .or_else(|| find(crate::replication::OPERATIONS).map(Target::Replica))
    }

    fn label(&self) -> &'static str {
        match self {
            Target::Aws(op) => op.name(),
            Target::Rotary(op) => op.name(),
            Target::Kms(op) => op.name(),
            Target::Iam(name) | Target::Server(name) | Target::Replica(name) => name,
        }
    }
}

/// Runs one request whose body was read: `pre` is what the SigV4 pre-check of its headers
/// found (`None` for a console request, authenticated by its `session`).
#[allow(clippy::too_many_arguments)]
async fn handle(
    st: &AppState,
    parts: &axum::http::request::Parts,
    headers: &[(&str, &[u8])],
    pre: Option<Prechecked<'_>>,
    body: Bytes,
    op: Option<Target>,
    request_id: &str,
    facts: &mut AuditFacts,
    session: Option<&Principal>,
    conn: Option<ConnInfo>,
) -> Result<Vec<u8>, ApiError> {
    let signed = RequestParts {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or_default(),
        headers,
        body: &body,
    };
    let now = time::OffsetDateTime::now_utc();
    let verified = match (session, pre) {
        (Some(p), _) => Ok(p.clone()),
        (None, Some(pre)) => {
            st.verifier
                .verify_prechecked(&signed, pre, st.credentials.as_ref(), now)
        }
        (None, None) => st.verifier.verify(&signed, st.credentials.as_ref(), now),
    };
    let principal = verified.map_err(|e| {
        facts.authentication_failed = true;
        auth_error(e)
    })?;
    facts.principal_arn = Some(principal.arn.clone());
    facts.access_key_id = Some(principal.access_key_id.clone());
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
    let mut cx = Ctx {
        request_id: request_id.to_owned(),
        caller: principal.arn.clone(),
        prefetched: None,
    };
    tracing::debug!(request_id, operation = op.label(), principal = %principal.arn, "Request authenticated");
    let info = RequestInfo {
        source_ip: conn.map(|c| c.peer.ip()),
        secure_transport: conn.is_some_and(|c| c.tls),
        now,
    };
    if let PrincipalKind::User { .. } = principal.kind {
        let ms = i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX);
        st.iam.note_key_used(&principal.access_key_id, ms);
    }
    let rotary_resource = match op {
        Target::Rotary(op) => rotary_resource(st, op, &body),
        Target::Iam(name) => st.iam.resource_arn(name, &body),
        Target::Aws(_) | Target::Kms(_) | Target::Server(_) | Target::Replica(_) => "*".to_owned(),
    };
    let action = match op {
        Target::Aws(op) => Action::Aws(op),
        Target::Rotary(op) => Action::Rotary(op.name(), &rotary_resource),
        Target::Kms(op) => Action::Rotary(op.name(), &rotary_resource),
        Target::Iam(name) | Target::Server(name) | Target::Replica(name) => {
            Action::Rotary(name, &rotary_resource)
        }
    };
    let allowed = st
        .authorizer
        .authorize(&principal, action, &body, &info)
        .await
        .map_err(|denied| {
            tracing::debug!(request_id, reason = %denied.reason, "Request denied");
            facts.secret_arn = denied.secret_arn;
            facts.denial = Some(denied.audit);
            denied.error
        })?;
    facts.secret_arn = allowed.secret_arn;
    cx.prefetched = allowed.prefetched;
    if let Target::Aws(Operation::PutResourcePolicy) = op {
        check_policy_is_enforceable(&body)?;
    }
    match op {
        Target::Aws(Operation::BatchGetSecretValue) => {
            let out = dispatch(
                st,
                &cx,
                Operation::BatchGetSecretValue,
                &body,
                &mut facts.answer,
            )
            .await?;
            Box::pin(filter_batch(st, &principal, &info, out)).await
        }
        Target::Aws(Operation::ValidateResourcePolicy) => {
            let out = dispatch(
                st,
                &cx,
                Operation::ValidateResourcePolicy,
                &body,
                &mut facts.answer,
            )
            .await?;
            Ok(add_engine_findings(&body, out))
        }
        Target::Aws(op) => dispatch(st, &cx, op, &body, &mut facts.answer).await,
        // Boxed, as dispatch boxes every operation but the hot read (see there).
        Target::Rotary(op) => {
            Box::pin(rotary_rotation::api::handle(
                &st.rotation,
                st.test_clock.as_deref(),
                &cx,
                op,
                &body,
            ))
            .await
        }
        Target::Iam(name) => Box::pin(crate::iam::handle(&st.iam, name, &body)).await,
        Target::Kms(op) => Box::pin(crate::kms::handle(&st.service, &cx, op, &body)).await,
        Target::Server(_) => Box::pin(simulate(st, &body, &info)).await,
        Target::Replica(name) => {
            Box::pin(crate::replication::handle(
                &st.service,
                st.credentials.as_ref(),
                &principal,
                name,
                &body,
            ))
            .await
        }
    }
}

/// `rotary.SimulatePolicy`: the decision for a user, an action and a resource.
async fn simulate(st: &AppState, body: &[u8], info: &RequestInfo) -> Result<Vec<u8>, ApiError> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Req {
        principal_name: Option<String>,
        action: Option<String>,
        resource: Option<String>,
        #[serde(default)]
        context: std::collections::BTreeMap<String, Vec<String>>,
    }
    let req: Req = serde_json::from_slice(body).map_err(|_| {
        api_error!(
            SerializationException,
            "The request body is not a SimulatePolicy request."
        )
    })?;
    let (Some(name), Some(action)) = (req.principal_name, req.action) else {
        return Err(api_error!(
            InvalidParameterException,
            "PrincipalName and Action are required."
        ));
    };
    let Some(principal) = crate::authz::Identities::principal(st.iam.as_ref(), &name) else {
        return Err(api_error!(
            ResourceNotFoundException,
            "The user with name {name} cannot be found."
        ));
    };
    let context: Vec<(String, Vec<String>)> = req.context.into_iter().collect();
    let resource = req.resource.unwrap_or_else(|| "*".to_owned());
    let out = st
        .authorizer
        .simulate(&principal, &action, &resource, &context, info)
        .await;
    serde_json::to_vec(&out).map_err(|_| ApiError::internal())
}

/// The `ResourcePolicy` member of a PutResourcePolicy or ValidateResourcePolicy request.
fn resource_policy_of(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Req {
        #[serde(rename = "ResourcePolicy")]
        resource_policy: Option<String>,
    }
    serde_json::from_slice::<Req>(body)
        .ok()
        .and_then(|r| r.resource_policy)
}

/// A resource policy that passes Secrets Manager's own checks must also compile for the
/// policy engine, or it could be stored and never enforced.
fn check_policy_is_enforceable(body: &[u8]) -> Result<(), ApiError> {
    let Some(text) = resource_policy_of(body) else {
        return Ok(());
    };
    if rotary_core::policy::check(&text).is_err() {
        return Ok(()); // The operation answers with Secrets Manager's own error.
    }
    crate::authz::check_resource_policy(&text)
        .map(|_| ())
        .map_err(|m| ApiError::new(ErrorCode::MalformedPolicyDocumentException, m))
}

/// ValidateResourcePolicy: a policy that passes Secrets Manager's checks is also validated
/// by the policy engine; its errors and security warnings (IAM Access Analyzer's codes) are
/// added to `ValidationErrors` and fail the validation.
fn add_engine_findings(req: &[u8], out: Vec<u8>) -> Vec<u8> {
    use rotary_auth::policy::{limits, validate, PolicyKind};
    let Some(text) = resource_policy_of(req) else {
        return out;
    };
    let Ok(mut doc) = serde_json::from_slice::<serde_json::Value>(&out) else {
        return out;
    };
    if doc.get("PolicyValidationPassed") != Some(&serde_json::Value::Bool(true)) {
        return out;
    }
    let failing: Vec<serde_json::Value> =
        validate(&text, PolicyKind::Resource, limits::RESOURCE_POLICY_CHARS)
            .into_iter()
            .filter(|f| f.fails_validation())
            .map(|f| serde_json::json!({"CheckName": f.issue_code, "ErrorMessage": f.message}))
            .collect();
    if failing.is_empty() {
        return out;
    }
    doc["PolicyValidationPassed"] = serde_json::Value::Bool(false);
    doc["ValidationErrors"] = serde_json::Value::Array(failing);
    serde_json::to_vec(&doc).unwrap_or(out)
}

/// The resource of one of Rotary's own operations: the function it names, or `*`.
fn rotary_resource(st: &AppState, op: RotaryOperation, body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Named {
        #[serde(rename = "Name")]
        name: Option<String>,
    }
    match op {
        RotaryOperation::CreateFunction
        | RotaryOperation::DescribeFunction
        | RotaryOperation::DeleteFunction => {
            match serde_json::from_slice::<Named>(body)
                .ok()
                .and_then(|n| n.name)
            {
                Some(name) if !name.starts_with("arn:") => st.rotation.registry().arn(&name),
                Some(arn) => arn,
                None => "*".to_owned(),
            }
        }
        _ => "*".to_owned(),
    }
}

/// BatchGetSecretValue: each secret is authorized as GetSecretValue on it; a denied one moves
/// from `SecretValues` to `Errors` with AccessDeniedException, as AWS reports it.
async fn filter_batch(
    st: &AppState,
    principal: &Principal,
    info: &RequestInfo,
    out: Vec<u8>,
) -> Result<Vec<u8>, ApiError> {
    let mut doc: serde_json::Value =
        serde_json::from_slice(&out).map_err(|_| ApiError::internal())?;
    let Some(values) = doc.get_mut("SecretValues").and_then(|v| v.as_array_mut()) else {
        return Ok(out);
    };
    let mut kept = Vec::with_capacity(values.len());
    let mut denied = Vec::new();
    for v in values.drain(..) {
        let arn = v
            .get("ARN")
            .and_then(|a| a.as_str())
            .unwrap_or_default()
            .to_owned();
        match st
            .authorizer
            .authorize_batch_member(principal, &arn, info)
            .await
        {
            Ok(_) => kept.push(v),
            Err(d) => denied.push(serde_json::json!({
                "SecretId": arn,
                "ErrorCode": "AccessDeniedException",
                "Message": d.error.message(),
            })),
        }
    }
    if denied.is_empty() {
        return Ok(out);
    }
    *values = kept;
    match doc.get_mut("Errors").and_then(|e| e.as_array_mut()) {
        Some(errors) => errors.extend(denied),
        None => doc["Errors"] = serde_json::Value::Array(denied),
    }
    serde_json::to_vec(&doc).map_err(|_| ApiError::internal())
}

fn auth_error(e: rotary_auth::AuthError) -> ApiError {
    let code = ErrorCode::parse(e.code.as_str()).unwrap_or(ErrorCode::AccessDeniedException);
    ApiError::new(code, e.message)
}

/// The request's headers as SigV4 sees them. HTTP/2 carries the host in `:authority`, which
/// hyper puts in the URI rather than the headers: it is given to SigV4 as `host`.
fn header_pairs(parts: &axum::http::request::Parts) -> Vec<(&str, &[u8])> {
    let mut pairs: Vec<(&str, &[u8])> = parts
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_bytes()))
        .collect();
    if !parts.headers.contains_key(header::HOST) {
        if let Some(authority) = parts.uri.authority() {
            pairs.push(("host", authority.as_str().as_bytes()));
        }
    }
    pairs
}

/// Why a body was not read.
enum BodyError {
    /// Refused with an AWS error: unauthenticated, too large, or no memory for it. `true`
    /// when the rest of the body was not drained, so the connection must close.
    Api(ApiError, bool),
    /// Not received within the body timeout.
    TimedOut,
}

/// A refused body is read and thrown away, up to this many bytes and for this long, so that
/// an HTTP/1.1 client still sending it gets the error instead of a reset connection. Past
/// either bound the error is sent and the connection closed. Nothing is kept.
const DRAIN_MAX_BYTES: usize = 2 << 20;
/// See [`DRAIN_MAX_BYTES`].
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// Reads and discards what is left of `body` within the drain bounds; `true` when it ended.
async fn drain(body: &mut Body) -> bool {
    let discard = async {
        let mut seen = 0usize;
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { return false };
            if let Some(data) = frame.data_ref() {
                seen += data.len();
                if seen > DRAIN_MAX_BYTES {
                    return false;
                }
            }
        }
        true
    };
    tokio::time::timeout(DRAIN_TIME, discard)
        .await
        .unwrap_or(false)
}

/// Refuses a request with `e` after draining what is left of its body.
async fn refuse(body: &mut Body, e: ApiError) -> BodyError {
    let drained = drain(body).await;
    BodyError::Api(e, !drained)
}

/// Whether the client waits for `100 Continue` before sending its body: then a refused body
/// is not drained (polling it would ask the client for it), and the connection is closed.
fn expects_continue(parts: &axum::http::request::Parts) -> bool {
    parts
        .headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// Reads the body, but only for a request whose headers passed the SigV4 pre-check
/// (`refused` is its error otherwise, so an unauthenticated caller never makes the server
/// buffer anything), no larger than the
/// maximum, within the body timeout, and with the bytes reserved from the shared body budget.
/// The permit returns the bytes to the budget when dropped.
async fn read_body(
    st: &AppState,
    parts: &axum::http::request::Parts,
    mut body: Body,
    refused: Option<rotary_auth::AuthError>,
) -> Result<(Bytes, BodyPermit), BodyError> {
    if let Some(e) = refused {
        if expects_continue(parts) {
            return Err(BodyError::Api(auth_error(e), true));
        }
        return Err(refuse(&mut body, auth_error(e)).await);
    }
    let limits = &st.body_limits;
    let too_large = || {
        ApiError::new(
            ErrorCode::SerializationException,
            format!(
                "The request body is larger than the maximum of {} bytes.",
                limits.max_bytes
            ),
        )
    };
    let busy = || {
        api_error!(
            ThrottlingException,
            "Rate exceeded: the server is receiving too many request bodies. Retry later."
        )
    };
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared.filter(|n| *n > limits.max_bytes as u64) {
        // Nothing is kept; a body past the drain bound is not even read.
        if n > DRAIN_MAX_BYTES as u64 || expects_continue(parts) {
            return Err(BodyError::Api(too_large(), true));
        }
        return Err(refuse(&mut body, too_large()).await);
    }
    let declared = declared.map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX));
    let Some(mut permit) = limits.reserve(declared).await else {
        return Err(refuse(&mut body, busy()).await);
    };
    let collect = async {
        let mut buf = bytes::BytesMut::with_capacity(declared);
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| {
                api_error!(
                    SerializationException,
                    "The request body could not be read."
                )
            })?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            let len = buf.len() + data.len();
            if len > limits.max_bytes {
                return Err(too_large());
            }
            if len > permit.bytes() && !permit.grow(limits, len - permit.bytes()).await {
                return Err(busy());
            }
            buf.extend_from_slice(&data);
        }
        Ok(buf.freeze())
    };
    match tokio::time::timeout(limits.timeout, collect).await {
        Ok(Ok(bytes)) => Ok((bytes, permit)),
        Ok(Err(e)) => {
            drop(permit);
            Err(refuse(&mut body, e).await)
        }
        Err(_) => Err(BodyError::TimedOut),
    }
}

/// 408 with an AWS-shaped body; the connection is closed after it.
fn body_timeout_response(st: &AppState, request_id: &str) -> Response {
    let body = serde_json::json!({
        "__type": "RequestTimeoutException",
        "Message": format!(
            "The request body was not received within {} seconds.",
            st.body_limits.timeout.as_secs()
        ),
    });
    let mut r = json_response(
        StatusCode::REQUEST_TIMEOUT,
        body.to_string().into_bytes(),
        Some(request_id),
    );
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// An address as the audit record gives it; IPv4 without the formatting machinery, since
/// every request writes one.
fn ip_text(ip: std::net::IpAddr) -> String {
    let std::net::IpAddr::V4(v4) = ip else {
        return ip.to_string();
    };
    let mut out = String::with_capacity(15);
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        let (h, t, u) = (octet / 100, octet / 10 % 10, octet % 10);
        if h > 0 {
            out.push(char::from(b'0' + h));
        }
        if h > 0 || t > 0 {
            out.push(char::from(b'0' + t));
        }
        out.push(char::from(b'0' + u));
    }
    out
}

/// A request id in the form AWS uses (a UUID v4). It needs to be unique, not secret, so it
/// comes from the thread's user-space generator rather than a system call per request.
fn new_request_id() -> String {
    use rand::Rng as _;
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    uuid::Builder::from_random_bytes(rand::thread_rng().gen())
        .into_uuid()
        .hyphenated()
        .encode_lower(&mut text)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_text_is_the_standard_form() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.30.40",
            "100.200.9.255",
            "1.10.100.109",
            "::1",
            "2001:db8::5",
        ] {
            let addr: std::net::IpAddr = ip.parse().expect("address");
            assert_eq!(ip_text(addr), addr.to_string());
        }
    }

    #[test]
    fn request_ids_are_lower_case_uuids() {
        let id = new_request_id();
        assert_eq!(id.len(), 36);
        assert_eq!(uuid::Uuid::parse_str(&id).expect("uuid").to_string(), id);
        assert_ne!(id, new_request_id());
    }
}
