//! The page layout and small rendering helpers shared by the console's pages.

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use maud::{html, Markup, DOCTYPE};
use serde_json::Value;

/// Who is signed in, for the page header.
pub(super) struct Who<'a> {
    pub arn: &'a str,
    pub csrf: &'a str,
}

/// A whole page: header with navigation and sign-out, then `body` under an `h1` of `title`.
pub(super) fn layout(title: &str, who: Option<&Who<'_>>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Rotary console" }
                link rel="stylesheet" href="/console/assets/console.css";
                script src="/console/assets/console.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    span.brand { "Rotary" }
                    @if let Some(w) = who {
                        nav aria-label="Main" {
                            a href="/console/dashboard" { "Dashboard" }
                            a href="/console/secrets" { "Secrets" }
                            a href="/console/functions" { "Functions" }
                            a href="/console/users" { "Users" }
                            a href="/console/groups" { "Groups" }
                            a href="/console/audit" { "Audit log" }
                        }
                        span.who { "Signed in as " code { (w.arn) } }
                        form.inline method="post" action="/console/signout" {
                            (csrf_field(w.csrf))
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main id="main" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// The hidden CSRF field every POST form carries.
pub(super) fn csrf_field(token: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(token); }
}

/// An HTML answer. Console pages are never cached and never framed.
pub(super) fn page(status: StatusCode, markup: Markup) -> Response {
    let mut r = Response::new(Body::from(markup.into_string()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    secure_headers(h);
    r
}

/// Headers on every console answer.
pub(super) fn secure_headers(h: &mut axum::http::HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

/// `303 See Other` to `to` (a console path built by the console itself).
pub(super) fn redirect(to: &str) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    secure_headers(r.headers_mut());
    r
}

/// Percent-encodes a query value.
pub(super) fn q(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// An epoch-seconds JSON number as `YYYY-MM-DD HH:MM UTC`, or an em dash.
pub(super) fn date(v: Option<&Value>) -> String {
    let Some(secs) = v.and_then(Value::as_f64) else {
        return "—".to_owned();
    };
    date_secs(secs)
}

/// An epoch-seconds JSON number as `YYYY-MM-DD` (LastAccessedDate is kept to the day).
pub(super) fn day(v: Option<&Value>) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    v.and_then(Value::as_f64)
        .and_then(|secs| time::OffsetDateTime::from_unix_timestamp(secs.floor() as i64).ok())
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_else(|| "—".to_owned())
}

/// Epoch seconds as `YYYY-MM-DD HH:MM UTC`.
pub(super) fn date_secs(secs: f64) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    time::OffsetDateTime::from_unix_timestamp(secs.floor() as i64)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_else(|| "—".to_owned())
}

/// A string member of a JSON object, or `""`.
pub(super) fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// An alert box (`role="alert"`) for errors.
pub(super) fn alert(title: &str, message: &str) -> Markup {
    html! {
        div.alert.error role="alert" {
            strong { (title) } " " (message)
        }
    }
}

/// A status box for what an action did.
pub(super) fn notice(message: &str) -> Markup {
    html! { div.alert.ok role="status" { (message) } }
}
