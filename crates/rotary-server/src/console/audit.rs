//! The audit-log page, and the rotation attempts of the last 24 hours for the dashboard.
//!
//! Both read the server's own audit log (`AuditLog::path`) backwards with [`super::tail`].
//! The page is for principals allowed the action `rotary:QueryAuditLog` (resource `*`); each
//! view is itself an audit record. Records hold ids, names, ARNs and outcomes, never a value.

use std::collections::HashMap;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use rotary_core::audit::{AuditFilter, AuditRecord};
use time::macros::format_description;
use time::{Duration, OffsetDateTime, PrimitiveDateTime};

use super::html::{self as h, layout, q};
use super::tail::{scan_back, Scan};
use super::{ApiFail, Console};

/// Records per page.
const PAGE_SIZE: usize = 50;
/// Most bytes of the log one page reads; past them the page offers "Continue".
const PAGE_BUDGET: u64 = 32 << 20;
/// Most bytes of the log the dashboard reads for the last 24 hours.
const DASHBOARD_BUDGET: u64 = 64 << 20;
/// Records are appended in about time order (each request stamps its record before the
/// writer orders them), so a scan for "since T" reads this much further back than T.
const CLOCK_SLACK: Duration = Duration::seconds(60);

/// The filters of the audit page, as the form sends them.
const FIELDS: [(&str, &str, &str); 4] = [
    (
        "principal",
        "Principal",
        "ARN, user name, access key id or root",
    ),
    ("operation", "Operation", "e.g. GetSecretValue"),
    ("secret", "Secret", "name or ARN"),
    (
        "outcome",
        "Outcome",
        "Allowed, Denied, AuthenticationFailed or an error type",
    ),
];

/// `YYYY-MM-DDTHH:MM` (what `<input type="datetime-local">` sends), read as UTC; also a
/// date alone (`YYYY-MM-DD`, midnight UTC).
fn parse_time(s: &str) -> Option<OffsetDateTime> {
    let s = s.trim();
    let full = format_description!("[year]-[month]-[day]T[hour]:[minute]");
    let secs = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    PrimitiveDateTime::parse(s, &full)
        .or_else(|_| PrimitiveDateTime::parse(s, &secs))
        .map(PrimitiveDateTime::assume_utc)
        .ok()
        .or_else(|| {
            time::Date::parse(s, &format_description!("[year]-[month]-[day]"))
                .ok()
                .map(|d| d.midnight().assume_utc())
        })
}

fn time_text(t: OffsetDateTime) -> String {
    t.format(&format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second] UTC"
    ))
    .unwrap_or_default()
}

/// The name in a secret ARN (`…:secret:NAME-XXXXXX`), without the random suffix.
pub(super) fn secret_name(arn: &str) -> &str {
    let name = arn.split_once(":secret:").map_or(arn, |(_, n)| n);
    match name.len().checked_sub(7) {
        Some(cut) if name.as_bytes()[cut] == b'-' => &name[..cut],
        _ => name,
    }
}

pub(super) async fn audit(State(c): State<Console>, req: Request) -> Response {
    let (cx, f) = match c.get(req) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    if let Err(e) = c.authorize_own(&cx, "QueryAuditLog").await {
        return c.fail(&cx, "Audit log", &e, None);
    }
    let value = |k: &str| f.text(k).map(|v| v.chars().take(512).collect::<String>());
    let since_text = value("since");
    let until_text = value("until");
    let mut errors = Vec::new();
    let mut time_of = |t: &Option<String>, what: &str| {
        t.as_deref().and_then(|t| {
            let parsed = parse_time(t);
            if parsed.is_none() {
                errors.push(format!(
                    "{what}: enter a date and time such as 2026-11-30T08:00."
                ));
            }
            parsed
        })
    };
    let filter = AuditFilter {
        principal: value("principal"),
        action: value("operation"),
        secret: value("secret"),
        outcome: value("outcome"),
        since: time_of(&since_text, "From"),
        until: time_of(&until_text, "Until"),
        limit: None,
    };
    let before = f.text("before").and_then(|b| b.parse::<u64>().ok());
    let path = c.app.audit.path().to_owned();
    let scan_filter = filter.clone();
    let read = tokio::task::spawn_blocking(move || {
        let mut rows = Vec::new();
        let stop_at = scan_filter.since.map(|t| t - CLOCK_SLACK);
        let mut past_since = false;
        let scan = scan_back(&path, before, PAGE_BUDGET, |rec| {
            if stop_at.is_some_and(|t| rec.time < t) {
                past_since = true;
                return false;
            }
            if scan_filter.matches(&rec) {
                rows.push(rec);
            }
            rows.len() < PAGE_SIZE
        });
        (rows, scan, past_since)
    })
    .await;
    let (rows, scan, past_since) = match read {
        Ok((rows, Ok(scan), past)) => (rows, scan, past),
        Ok((_, Err(e), _)) => {
            tracing::error!(error = %e, "Reading the audit log for the console failed");
            return c.fail(&cx, "Audit log", &read_failed(), None);
        }
        Err(_) => return c.fail(&cx, "Audit log", &read_failed(), None),
    };
    // The next page continues before the last record read, unless the scan went past
    // `since` (nothing older matches) or reached the start.
    let resume = if past_since { None } else { scan.resume() };
    let budget_hit = matches!(scan, Scan::Budget(_)) && rows.len() < PAGE_SIZE;
    let mut base = String::from("/console/audit?");
    for (k, _, _) in FIELDS {
        if let Some(v) = value(k) {
            base.push_str(&format!("{k}={}&", q(&v)));
        }
    }
    for (k, v) in [("since", &since_text), ("until", &until_text)] {
        if let Some(v) = v {
            base.push_str(&format!("{k}={}&", q(v)));
        }
    }
    let next = resume.map(|o| format!("{base}before={o}"));
    h::page(
        StatusCode::OK,
        layout(
            "Audit log",
            Some(&cx.who()),
            html! {
                p { "Every request, sign-in and rotation step, newest first. Records hold names, ids and outcomes, never a secret value." }
                @for e in &errors { (h::alert("Filter ignored.", e)) }
                form.search.filters method="get" action="/console/audit" role="search" {
                    @for (k, title, help) in FIELDS {
                        div {
                            label for=(format!("f-{k}")) { (title) }
                            input id=(format!("f-{k}")) name=(k) type="text" value=(value(k).unwrap_or_default())
                                placeholder=(help) aria-describedby=(format!("f-{k}-help")) spellcheck="false";
                            small id=(format!("f-{k}-help")) { (help) }
                        }
                    }
                    div {
                        label for="f-since" { "From (UTC)" }
                        input id="f-since" name="since" type="datetime-local" value=(since_text.clone().unwrap_or_default());
                    }
                    div {
                        label for="f-until" { "Until (UTC)" }
                        input id="f-until" name="until" type="datetime-local" value=(until_text.clone().unwrap_or_default());
                    }
                    div { button type="submit" { "Filter" } }
                }
                @if budget_hit {
                    div.alert.ok role="status" {
                        "Read " (PAGE_BUDGET >> 20) " MiB of the log and found " (rows.len()) " matching records so far. "
                        @if let Some(n) = &next { a href=(n) { "Continue searching older records" } }
                    }
                }
                (records_table(&rows))
                nav.pages aria-label="Pages" {
                    @if before.is_some() { a href=(base.trim_end_matches(['&', '?'])) { "Newest" } }
                    @if let (Some(n), false) = (&next, budget_hit) { a href=(n) rel="next" { "Older records" } }
                }
            },
        ),
    )
}

fn read_failed() -> ApiFail {
    ApiFail {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        code: "InternalServiceError".to_owned(),
        message: "The audit log could not be read.".to_owned(),
    }
}

fn records_table(rows: &[AuditRecord]) -> Markup {
    html! {
        table.list id="audit" {
            caption { (rows.len()) " records on this page" }
            thead { tr {
                th scope="col" { "Time" }
                th scope="col" { "Principal" }
                th scope="col" { "Access key" }
                th scope="col" { "Operation" }
                th scope="col" { "Secret" }
                th scope="col" { "Outcome" }
                th scope="col" { "Source" }
                th scope="col" { "Details" }
            } }
            tbody {
                @for r in rows {
                    @let outcome = r.outcome.as_str();
                    tr.failed[outcome != "Allowed"] {
                        td { (time_text(r.time)) }
                        td { code { (r.principal_arn.as_deref().unwrap_or("—")) } }
                        td { code { (r.access_key_id.as_deref().unwrap_or("—")) } }
                        td { (r.operation) }
                        td { @match &r.secret_arn { Some(a) => code title=(a) { (secret_name(a)) }, None => "—" } }
                        td { span.(if outcome == "Allowed" { "good" } else { "bad" }) { (outcome) } }
                        td { (r.source_address.as_deref().unwrap_or("—")) }
                        td {
                            @if let Some(d) = &r.reason {
                                (format!("{:?}", d.kind))
                                @if let Some(p) = &d.policy { " by " (p) }
                                @if let Some(s) = &d.statement { " " (s) }
                                br;
                            }
                            @if let Some(v) = &r.version_id { "Version " code { (v) } br; }
                            @if let Some(fa) = &r.function_arn { "Function " code { (fa.rsplit(':').next().unwrap_or(fa)) } br; }
                            small { "#" (r.sequence) " " (r.request_id) }
                        }
                    }
                }
                @if rows.is_empty() { tr { td colspan="8" { "No records match." } } }
            }
        }
    }
}

/// One rotation attempt seen in the audit log.
pub(super) struct Attempt {
    pub secret_arn: String,
    /// When its last recorded step ended.
    pub time: OffsetDateTime,
    /// `Succeeded` (finishSecret ran), `Failed` (a step failed), `Tested` (only testSecret
    /// ran: RotateImmediately=false) or `Running`.
    pub outcome: &'static str,
    /// Every step seen was testSecret.
    only_test: bool,
    /// The step that failed and its error type.
    pub failed_step: Option<(String, String)>,
}

/// Rotation attempts of the last 24 hours, newest first, from the steps' audit records
/// (`rotation:<step>`, one request id per attempt), and whether the byte budget cut the
/// scan short.
pub(super) async fn recent_rotations(c: &Console) -> Result<(Vec<Attempt>, bool), ApiFail> {
    let path = c.app.audit.path().to_owned();
    let since = OffsetDateTime::now_utc() - Duration::hours(24);
    let read = tokio::task::spawn_blocking(move || {
        let mut by_id: HashMap<String, Attempt> = HashMap::new();
        let mut order: Vec<String> = Vec::new();
        let scan = scan_back(&path, None, DASHBOARD_BUDGET, |rec| {
            if rec.time < since - CLOCK_SLACK {
                return false;
            }
            let Some(step) = rec.operation.strip_prefix("rotation:") else {
                return true;
            };
            if rec.time < since {
                return true;
            }
            let a = by_id.entry(rec.request_id.clone()).or_insert_with(|| {
                order.push(rec.request_id.clone());
                Attempt {
                    secret_arn: rec.secret_arn.clone().unwrap_or_default(),
                    time: rec.time,
                    outcome: "Running",
                    only_test: true,
                    failed_step: None,
                }
            });
            a.only_test &= step == "testSecret";
            let failed = rec.outcome.as_str() != "Allowed";
            if failed {
                a.outcome = "Failed";
                a.failed_step = Some((step.to_owned(), rec.outcome.as_str().to_owned()));
            } else if step == "finishSecret" && a.outcome != "Failed" {
                a.outcome = "Succeeded";
            }
            true
        });
        let list: Vec<Attempt> = order
            .iter()
            .filter_map(|id| by_id.remove(id))
            .map(|mut a| {
                if a.outcome == "Running" && a.only_test {
                    a.outcome = "Tested";
                }
                a
            })
            .collect();
        (list, scan)
    })
    .await
    .map_err(|_| read_failed())?;
    match read {
        (list, Ok(scan)) => Ok((list, matches!(scan, Scan::Budget(_)))),
        (_, Err(e)) => {
            tracing::error!(error = %e, "Reading the audit log for the dashboard failed");
            Err(read_failed())
        }
    }
}

/// The dashboard's "Rotations in the last 24 hours" section.
pub(super) fn recent_section(r: &Result<(Vec<Attempt>, bool), ApiFail>) -> Markup {
    html! {
        section aria-labelledby="recent-h" id="recent" {
            h2 id="recent-h" { "Rotations in the last 24 hours" }
            @match r {
                Err(e) => (e.alert()),
                Ok((list, cut)) => {
                    @let ok = list.iter().filter(|a| a.outcome == "Succeeded").count();
                    @let failed = list.iter().filter(|a| a.outcome == "Failed").count();
                    ul.counts {
                        li data-count="succeeded" { strong { (ok) } " succeeded" }
                        li data-count="failed" { strong.bad[failed > 0] { (failed) } " failed" }
                        li data-count="tested" { strong { (list.iter().filter(|a| a.outcome == "Tested").count()) } " tested only (testSecret)" }
                        li data-count="running" { strong { (list.iter().filter(|a| a.outcome == "Running").count()) } " running" }
                    }
                    @if *cut { p.muted { "Counted over the newest " (DASHBOARD_BUDGET >> 20) " MiB of the audit log." } }
                    @if list.is_empty() { p { "No rotation ran in the last 24 hours." } } @else {
                        table id="recent-rotations" {
                            thead { tr { th scope="col" { "Secret" } th scope="col" { "Outcome" } th scope="col" { "Time" } th scope="col" { "Failed step" } } }
                            tbody {
                                @for a in list.iter().take(20) {
                                    tr.failed[a.outcome == "Failed"] {
                                        td { a href=(format!("/console/secret?id={}", q(&a.secret_arn))) { (secret_name(&a.secret_arn)) } }
                                        td { span.(match a.outcome { "Succeeded" => "good", "Failed" => "bad", _ => "muted" }) { (a.outcome) } }
                                        td { (time_text(a.time)) }
                                        td { @if let Some((st, err)) = &a.failed_step { (st) " (" (err) ")" } }
                                    }
                                }
                            }
                        }
                        @if list.len() > 20 { p { "Showing the latest 20 of " (list.len()) "." } }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_form_times_as_utc() {
        let t = parse_time("2026-11-30T08:05").unwrap();
        assert_eq!(t.unix_timestamp(), 1_796_025_900);
        assert_eq!(
            parse_time("2026-11-30").unwrap().unix_timestamp(),
            1_796_025_900 - 8 * 3600 - 300
        );
        assert!(parse_time("yesterday").is_none());
    }

    #[test]
    fn secret_names_drop_the_suffix() {
        assert_eq!(
            secret_name("arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf"),
            "prod/db"
        );
        assert_eq!(secret_name("plain"), "plain");
    }
}
