//! The web console at `/console`: server-rendered pages (maud), one small script and one
//! style sheet embedded in the binary.
//!
//! Sign-in checks an access key pair against the same credentials SigV4 uses; the session
//! then stands in for the signature. Every action builds the AWS-API JSON request an SDK
//! would send and runs it through the router's pipeline ([`crate::router::run`]) as the
//! session's principal, so it gets the same authorization, audit record, metrics and
//! dispatch as a signed request. Every POST form carries the session's CSRF token.
//!
//! Sessions live in this process's memory: they are per node and end on restart.
//! Secret values are only rendered into the answer of an explicit reveal (never cached) and
//! are never logged.

mod audit;
mod groups;
mod html;
mod page;
mod ratelimit;
mod session;
mod tail;
mod users;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use maud::html;
use serde_json::Value;

use crate::listener::ConnInfo;
use crate::router::AppState;
use html::{layout, Who};
use session::{Session, Sessions, SESSION_COOKIE, SIGNIN_COOKIE};

/// The outcome recorded for a sign-in refused by the rate limit.
const THROTTLED: &str = "ThrottlingException";

/// Largest console form body.
const MAX_FORM_BYTES: usize = 1 << 20;

const CSS: &str = include_str!("../../assets/console/console.css");
const JS: &str = include_str!("../../assets/console/console.js");

/// State of the console's handlers.
#[derive(Clone)]
pub(crate) struct Console {
    app: AppState,
    sessions: Arc<Sessions>,
    /// Failed sign-ins per client address and per access key id.
    signin_limits: Arc<ratelimit::SignInLimits>,
}

/// The console's routes, to merge into the server's router.
pub(crate) fn routes<S>(app: AppState) -> Router<S> {
    let c = Console {
        app,
        sessions: Arc::new(Sessions::default()),
        signin_limits: Arc::new(ratelimit::SignInLimits::default()),
    };
    Router::new()
        .route("/console", get(home))
        .route("/console/", get(home))
        .route("/console/assets/console.css", get(css))
        .route("/console/assets/console.js", get(js))
        .route("/console/signin", get(signin_form).post(signin))
        .route("/console/signout", axum::routing::post(signout))
        .route("/console/dashboard", get(page::dashboard))
        .route("/console/functions", get(page::functions))
        .route("/console/secrets", get(page::secrets))
        .route(
            "/console/secrets/new",
            get(page::new_secret_form).post(page::create_secret),
        )
        .route("/console/secret", get(page::details))
        .route("/console/secret/value", axum::routing::post(page::reveal))
        .route("/console/secret/put", axum::routing::post(page::put_value))
        .route("/console/secret/delete", axum::routing::post(page::delete))
        .route(
            "/console/secret/restore",
            axum::routing::post(page::restore),
        )
        .route(
            "/console/secret/rotate",
            axum::routing::post(page::rotate_now),
        )
        .route(
            "/console/secret/cancel-rotation",
            axum::routing::post(page::cancel_rotation),
        )
        .route(
            "/console/secret/rotation",
            get(page::rotation_form).post(page::save_rotation),
        )
        .route("/console/secret/tag", axum::routing::post(page::tag))
        .route("/console/secret/untag", axum::routing::post(page::untag))
        .route(
            "/console/secret/policy",
            get(page::policy_form).post(page::save_policy),
        )
        .route(
            "/console/secret/policy/delete",
            axum::routing::post(page::delete_policy),
        )
        .route(
            "/console/secret/reset",
            get(page::reset_form).post(page::reset),
        )
        .route("/console/preview", get(page::preview))
        .route("/console/groups", get(groups::groups))
        .route("/console/group", get(groups::group))
        .route("/console/users", get(users::users))
        .route("/console/user", get(users::user))
        .route("/console/user/key", axum::routing::post(users::update_key))
        .route(
            "/console/users/create",
            axum::routing::post(users::create_user),
        )
        .route(
            "/console/user/delete",
            axum::routing::post(users::delete_user),
        )
        .route(
            "/console/user/key/create",
            axum::routing::post(users::create_key),
        )
        .route(
            "/console/user/key/delete",
            axum::routing::post(users::delete_key),
        )
        .route(
            "/console/user/policy",
            axum::routing::post(users::put_policy),
        )
        .route(
            "/console/user/policy/delete",
            axum::routing::post(users::delete_policy),
        )
        .route("/console/audit", get(audit::audit))
        .with_state(c)
}

/// `GET /`: the console.
pub(crate) async fn root() -> Response {
    html::redirect("/console")
}

async fn home(State(c): State<Console>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    match c.signed_in(&parts) {
        Some(_) => html::redirect("/console/secrets"),
        None => html::redirect("/console/signin"),
    }
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut r = Response::new(Body::from(body));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    html::secure_headers(r.headers_mut());
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

async fn css() -> Response {
    asset(CSS, "text/css; charset=utf-8")
}

async fn js() -> Response {
    asset(JS, "text/javascript; charset=utf-8")
}

/// A signed-in request.
pub(super) struct Cx {
    id: String,
    sess: Session,
    conn: Option<ConnInfo>,
    user_agent: String,
}

impl Cx {
    fn who(&self) -> Who<'_> {
        Who {
            arn: &self.sess.principal.arn,
            csrf: &self.sess.csrf,
        }
    }

    fn csrf(&self) -> &str {
        &self.sess.csrf
    }
}

/// A decoded `application/x-www-form-urlencoded` body or query string.
pub(super) struct Form(Vec<(String, String)>);

impl Form {
    fn parse(bytes: &[u8]) -> Self {
        Form(form_urlencoded::parse(bytes).into_owned().collect())
    }

    fn query(parts: &Parts) -> Self {
        Self::parse(parts.uri.query().unwrap_or_default().as_bytes())
    }

    /// The first value of `key`.
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `key`, trimmed, when not empty.
    fn text(&self, key: &str) -> Option<&str> {
        self.get(key).map(str::trim).filter(|v| !v.is_empty())
    }

    /// Every value of `key`, in order.
    fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// An API error as the console shows it.
pub(super) struct ApiFail {
    status: StatusCode,
    code: String,
    message: String,
}

impl ApiFail {
    fn is_access_denied(&self) -> bool {
        self.code == "AccessDeniedException"
    }

    /// The alert for this error.
    fn alert(&self) -> maud::Markup {
        if self.is_access_denied() {
            html::alert("Access denied.", &self.message)
        } else {
            html::alert(&format!("{}:", self.code), &self.message)
        }
    }
}

impl Console {
    /// The live session of a request, if its key is still active for the same principal.
    fn signed_in(&self, parts: &Parts) -> Option<Cx> {
        let id = session::cookie(&parts.headers, SESSION_COOKIE)?;
        let sess = self.sessions.get(id)?;
        // A key deactivated or deleted since sign-in ends the session.
        let still = self
            .app
            .credentials
            .lookup(&sess.principal.access_key_id)
            .is_some_and(|c| c.principal.arn == sess.principal.arn);
        if !still {
            self.sessions.remove(id);
            return None;
        }
        Some(Cx {
            id: id.to_owned(),
            sess,
            conn: parts.extensions.get::<ConnInfo>().copied(),
            user_agent: user_agent(parts),
        })
    }

    /// A signed-in GET: the context and the query, or a redirect to sign-in.
    fn get(&self, req: Request) -> Result<(Cx, Form), Box<Response>> {
        let (parts, _) = req.into_parts();
        let cx = self
            .signed_in(&parts)
            .ok_or_else(|| Box::new(html::redirect("/console/signin")))?;
        Ok((cx, Form::query(&parts)))
    }

    /// A signed-in POST with the session's CSRF token: the context and the form. Without a
    /// session: a redirect to sign-in; with a missing or wrong token: 403.
    async fn post(&self, req: Request) -> Result<(Cx, Form), Box<Response>> {
        let (parts, body) = req.into_parts();
        let cx = self
            .signed_in(&parts)
            .ok_or_else(|| Box::new(html::redirect("/console/signin")))?;
        let form = read_form(body).await?;
        if !cx.sess.csrf_ok(form.get("csrf")) {
            return Err(Box::new(csrf_refused(Some(&cx))));
        }
        Ok((cx, form))
    }

    /// Runs one API operation (`secretsmanager.X` or `rotary.X`) as the session's principal
    /// through the router's pipeline: authorization, audit record, metrics, dispatch.
    async fn call(&self, cx: &Cx, target: &str, body: &Value) -> Result<Value, ApiFail> {
        let bytes = serde_json::to_vec(body).map_err(|_| internal())?;
        let mut req = Request::builder()
            .method("POST")
            .uri("/")
            .header("x-amz-target", target)
            .header(header::CONTENT_TYPE, "application/x-amz-json-1.1")
            .header(header::CONTENT_LENGTH, bytes.len())
            .header(header::USER_AGENT, &cx.user_agent)
            .body(Body::from(bytes))
            .map_err(|_| internal())?;
        if let Some(conn) = cx.conn {
            req.extensions_mut().insert(conn);
        }
        let resp = crate::router::run(&self.app, req, Some(&cx.sess.principal)).await;
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 64 << 20)
            .await
            .map_err(|_| internal())?;
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(v);
        }
        let code = html::s(&v, "__type").to_owned();
        let message = v
            .get("Message")
            .or_else(|| v.get("message"))
            .and_then(Value::as_str)
            .unwrap_or("The request failed.")
            .to_owned();
        Err(ApiFail {
            status: match code.as_str() {
                "AccessDeniedException" => StatusCode::FORBIDDEN,
                "ResourceNotFoundException" => StatusCode::NOT_FOUND,
                _ => status,
            },
            code: if code.is_empty() {
                "Error".to_owned()
            } else {
                code
            },
            message,
        })
    }

    /// Authorizes one of Rotary's own actions that the console answers itself
    /// (`rotary:<op>` on `*`, e.g. `rotary:QueryAuditLog`) for the session's principal, with
    /// the same policy evaluation as the API, and writes its audit record (with the denial
    /// reason when refused). With a fail-closed audit log, an action that cannot be audited
    /// is refused.
    async fn authorize_own(&self, cx: &Cx, op: &str) -> Result<(), ApiFail> {
        let info = crate::authz::RequestInfo {
            source_ip: cx.conn.map(|c| c.peer.ip()),
            secure_transport: cx.conn.is_some_and(|c| c.tls),
            now: time::OffsetDateTime::now_utc(),
        };
        let decision = self
            .app
            .authorizer
            .authorize(
                &cx.sess.principal,
                crate::authz::Action::Rotary(op, "*"),
                b"{}",
                &info,
            )
            .await;
        let outcome = match &decision {
            Ok(_) => rotary_core::audit::Outcome::Allowed,
            Err(_) => rotary_core::audit::Outcome::Denied,
        };
        let mut rec = rotary_core::audit::AuditRecord::new(
            now_ms(),
            uuid::Uuid::new_v4().to_string(),
            format!("rotary:{op}"),
            outcome,
        )
        .principal(cx.sess.principal.arn.clone())
        .access_key(cx.sess.principal.access_key_id.clone())
        .user_agent(cx.user_agent.clone());
        if let Some(conn) = cx.conn {
            rec = rec.source(conn.peer.ip().to_string());
        }
        if let Err(d) = &decision {
            rec = rec.denied_by(d.audit.clone());
        }
        if !self.audit(rec).await {
            return Err(ApiFail {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                code: "InternalServiceError".to_owned(),
                message: "The request cannot be audited, so it was refused.".to_owned(),
            });
        }
        decision.map(|_| ()).map_err(|d| ApiFail {
            status: StatusCode::FORBIDDEN,
            code: "AccessDeniedException".to_owned(),
            message: d.error.message().to_owned(),
        })
    }

    /// Writes a record the console makes itself (sign-in, its own actions). `false` when
    /// the log is fail-closed and the write failed: the action must then be refused.
    async fn audit(&self, rec: rotary_core::audit::AuditRecord) -> bool {
        match self.app.audit.record(rec).await {
            Err(e) if self.app.audit.fail_closed() => {
                tracing::error!(error = %e, "Writing a console audit record failed; the action is refused");
                false
            }
            _ => true,
        }
    }

    /// A page that only says what went wrong.
    fn fail(&self, cx: &Cx, title: &str, f: &ApiFail, back: Option<&str>) -> Response {
        html::page(
            f.status,
            layout(
                title,
                Some(&cx.who()),
                html! {
                    (f.alert())
                    @if let Some(b) = back { p { a href=(b) { "Back" } } }
                },
            ),
        )
    }
}

/// Now, in milliseconds since the Unix epoch (the audit record's time).
fn now_ms() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
        .unwrap_or(i64::MAX)
}

fn internal() -> ApiFail {
    ApiFail {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        code: "InternalServiceError".to_owned(),
        message: "The console could not make the request.".to_owned(),
    }
}

/// The audit record's user agent: the browser's, marked as the console's (printable ASCII
/// only, so it is always a valid header value).
fn user_agent(parts: &Parts) -> String {
    let ua = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    format!(
        "rotary-console ({})",
        ua.chars()
            .filter(|c| c.is_ascii_graphic() || *c == ' ')
            .take(200)
            .collect::<String>()
    )
}

async fn read_form(body: Body) -> Result<Form, Box<Response>> {
    let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
        .await
        .map_err(|_| {
            Box::new(html::page(
                StatusCode::PAYLOAD_TOO_LARGE,
                layout(
                    "Form too large",
                    None,
                    html::alert("Refused.", "The form is larger than the console accepts."),
                ),
            ))
        })?;
    Ok(Form::parse(&bytes))
}

fn csrf_refused(cx: Option<&Cx>) -> Response {
    let who = cx.map(Cx::who);
    html::page(
        StatusCode::FORBIDDEN,
        layout(
            "Request refused",
            who.as_ref(),
            html! {
                (html::alert("Refused:", "the form's CSRF token is missing or wrong. Reload the page and try again."))
            },
        ),
    )
}

fn signin_page(token: &str, error: Option<&str>) -> maud::Markup {
    layout(
        "Sign in",
        None,
        html! {
            @if let Some(e) = error { (html::alert("Sign-in failed.", e)) }
            form.card method="post" action="/console/signin" autocomplete="off" {
                (html::csrf_field(token))
                p { "Sign in with an access key pair: the root key or an IAM user's key." }
                label for="akid" { "Access key ID" }
                input id="akid" name="access_key_id" type="text" required autofocus
                    spellcheck="false" autocapitalize="off";
                label for="secret" { "Secret access key" }
                input id="secret" name="secret_access_key" type="password" required;
                button type="submit" { "Sign in" }
            }
        },
    )
}

/// The sign-in form, with a fresh double-submit CSRF token in a cookie and the form.
fn signin_response(parts: &Parts, status: StatusCode, error: Option<&str>) -> Response {
    let token = session::random_token();
    let mut r = html::page(status, signin_page(&token, error));
    let tls = parts.extensions.get::<ConnInfo>().is_some_and(|c| c.tls);
    let cookie = session::set_cookie(SIGNIN_COOKIE, &token, session::IDLE, tls);
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

async fn signin_form(State(c): State<Console>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    if c.signed_in(&parts).is_some() {
        return html::redirect("/console/secrets");
    }
    signin_response(&parts, StatusCode::OK, None)
}

async fn signin(State(c): State<Console>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let form = match read_form(body).await {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let cookie_token = session::cookie(&parts.headers, SIGNIN_COOKIE);
    let csrf_ok = match (cookie_token, form.get("csrf")) {
        (Some(a), Some(b)) => !a.is_empty() && session::same(a, b),
        _ => false,
    };
    if !csrf_ok {
        return csrf_refused(None);
    }
    let akid = form.text("access_key_id").unwrap_or_default();
    let secret = form.get("secret_access_key").unwrap_or_default();
    let conn = parts.extensions.get::<ConnInfo>().copied();
    let valid_akid =
        !akid.is_empty() && akid.len() <= 128 && akid.bytes().all(|b| b.is_ascii_alphanumeric());
    // Only well-formed key ids are counted, so junk ids cannot fill the limiter's table.
    let limit_key = if valid_akid { akid } else { "" };
    let addr = conn.map(|c| c.peer.ip());
    let now = std::time::Instant::now();
    // A locked address or key id is refused before the secret is even compared; otherwise
    // the comparison's failure or success is counted at once.
    let attempt = c.signin_limits.attempt(addr, limit_key, now, || {
        // Long-lived keys only: temporary (session-token) credentials are for functions.
        c.app
            .credentials
            .lookup(akid)
            .filter(|cred| cred.session_token.is_none())
            .filter(|cred| session::same(cred.secret_access_key.expose(), secret))
            .map(|cred| cred.principal)
    });
    let (principal, locked) = match attempt {
        Ok(p) => (p, None),
        Err(wait) => (None, Some(wait)),
    };
    let outcome = match (&principal, locked) {
        (Some(_), _) => rotary_core::audit::Outcome::Allowed,
        (None, Some(_)) => rotary_core::audit::Outcome::Error(THROTTLED.to_owned()),
        (None, None) => rotary_core::audit::Outcome::AuthenticationFailed,
    };
    let mut rec = rotary_core::audit::AuditRecord::new(
        now_ms(),
        uuid::Uuid::new_v4().to_string(),
        "console:SignIn".to_owned(),
        outcome,
    )
    .user_agent(user_agent(&parts));
    if valid_akid {
        rec = rec.access_key(akid.to_owned());
    }
    if let Some(p) = &principal {
        rec = rec.principal(p.arn.clone());
    }
    if let Some(conn) = conn {
        rec = rec.source(conn.peer.ip().to_string());
    }
    if !c.audit(rec).await {
        return signin_response(
            &parts,
            StatusCode::INTERNAL_SERVER_ERROR,
            Some("The sign-in cannot be audited, so it was refused."),
        );
    }
    if let Some(wait) = locked {
        tracing::info!(source = ?addr, "Console sign-in refused: too many failed attempts");
        let minutes = wait.as_secs().div_ceil(60).max(1);
        return signin_response(
            &parts,
            StatusCode::TOO_MANY_REQUESTS,
            Some(&format!(
                "Too many failed sign-ins from this address or with this access key ID. \
                 Sign-in is refused for {minutes} more minute{}; try again later.",
                if minutes == 1 { "" } else { "s" }
            )),
        );
    }
    let Some(principal) = principal else {
        return signin_response(
            &parts,
            StatusCode::UNAUTHORIZED,
            Some("The access key ID or the secret access key is wrong, or the key is not active."),
        );
    };
    tracing::info!(principal = %principal.arn, "Console sign-in");
    let id = c.sessions.create(principal);
    let tls = conn.is_some_and(|c| c.tls);
    let mut r = html::redirect("/console/secrets");
    for cookie in [
        session::set_cookie(SESSION_COOKIE, &id, session::MAX_AGE, tls),
        session::set_cookie(SIGNIN_COOKIE, "", std::time::Duration::ZERO, tls),
    ] {
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            r.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    r
}

async fn signout(State(c): State<Console>, req: Request) -> Response {
    let (cx, _) = match c.post(req).await {
        Ok(v) => v,
        Err(r) => return *r,
    };
    c.sessions.remove(&cx.id);
    let tls = cx.conn.is_some_and(|c| c.tls);
    let mut r = html::redirect("/console/signin");
    let cookie = session::set_cookie(SESSION_COOKIE, "", std::time::Duration::ZERO, tls);
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_keeps_repeated_keys_in_order() {
        let f = Form::parse(b"key=a&value=1&key=b&value=2&name=+x%2Fy+&empty=");
        assert_eq!(f.all("key"), ["a", "b"]);
        assert_eq!(f.get("value"), Some("1"));
        assert_eq!(f.text("name"), Some("x/y"));
        assert_eq!(f.text("empty"), None);
        assert_eq!(f.get("missing"), None);
    }

    #[test]
    fn user_agent_is_always_a_valid_header_value() {
        let (mut parts, _) = Request::new(Body::empty()).into_parts();
        parts.headers.insert(
            header::USER_AGENT,
            HeaderValue::from_bytes(b"Mozilla/5.0 \xc3\xa9t\xc3\xa9\tx").unwrap(),
        );
        let ua = user_agent(&parts);
        assert!(ua.starts_with("rotary-console ("), "{ua}");
        assert!(HeaderValue::from_str(&ua).is_ok());
    }
}
