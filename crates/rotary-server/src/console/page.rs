//! The console's pages. Each one calls the API as the signed-in principal
//! ([`Console::call`]) and renders the answer.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use maud::{html, Markup};
use serde_json::{json, Map, Value};

use super::html::{self as h, date, day, layout, q, s};
use super::{ApiFail, Console, Cx, Form};

/// Secrets per page of the list.
const PAGE_SIZE: i64 = 25;
/// Interval presets of the rotation form, in days.
const PRESET_DAYS: [i64; 5] = [1, 7, 30, 60, 90];
/// Windows the rotation form previews.
const PREVIEW_COUNT: usize = 5;

/// Unwraps a `Result<_, Response>` in a handler.
macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(r) => return *r,
        }
    };
}

/// What an action did, named in the redirect's `msg` (fixed texts only: nothing from the
/// query is echoed).
fn message(key: Option<&str>) -> Option<&'static str> {
    Some(match key? {
        "created" => "Secret stored.",
        "value-saved" => "New secret value stored (it is now AWSCURRENT).",
        "deleted" => "Secret scheduled for deletion. You can restore it until the deletion date.",
        "restored" => "Secret restored.",
        "rotating" => "Rotation started. Its progress shows in the rotation history below.",
        "rotation-saved" => "Rotation configuration saved.",
        "cancelled" => "Rotation cancelled: scheduled rotation is off.",
        "tagged" => "Tag saved.",
        "untagged" => "Tag removed.",
        "policy-saved" => "Resource policy saved.",
        "policy-deleted" => "Resource policy deleted.",
        "reset" => "AWSPENDING removed: the failed rotation is abandoned. Fix the function or choose another one, then rotate.",
        _ => return None,
    })
}

/// The ClientRequestToken of a write: the form's (rendered once per form, so a form sent
/// twice makes one version), or a new one. SDKs fill it in the same way.
fn token_of(f: &Form) -> String {
    f.text("token")
        .filter(|t| {
            (32..=64).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
        })
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned)
}

/// The hidden ClientRequestToken field of a form that writes a version.
fn token_field() -> Markup {
    html! { input type="hidden" name="token" value=(uuid::Uuid::new_v4().to_string()); }
}

fn secret_link(name: &str) -> String {
    format!("/console/secret?id={}", q(name))
}

fn ok_page(cx: &Cx, title: &str, body: Markup) -> Response {
    h::page(StatusCode::OK, layout(title, Some(&cx.who()), body))
}

// ---------------------------------------------------------------------------------------
// Secrets list
// ---------------------------------------------------------------------------------------

/// Rotation status of a secret from its ListSecrets / DescribeSecret entry.
fn rotation_status(v: &Value, now: f64) -> (&'static str, &'static str) {
    if v.get("DeletedDate").is_some_and(|d| !d.is_null()) {
        return ("Scheduled for deletion", "warn");
    }
    if v.get("RotationEnabled").and_then(Value::as_bool) == Some(true) {
        let overdue = v
            .get("NextRotationDate")
            .and_then(Value::as_f64)
            .is_some_and(|n| n < now);
        if overdue {
            return ("Overdue", "bad");
        }
        return ("Enabled", "good");
    }
    ("Disabled", "muted")
}

fn now_secs() -> f64 {
    time::OffsetDateTime::now_utc().unix_timestamp() as f64
}

const SEARCH_FIELDS: [(&str, &str); 5] = [
    ("all", "All fields"),
    ("name", "Name"),
    ("description", "Description"),
    ("tag-key", "Tag key"),
    ("tag-value", "Tag value"),
];

/// Server-side sort keys of ListSecrets and their column titles.
const SORTS: [(&str, &str); 3] = [
    ("name", "Name"),
    ("last-changed-date", "Last changed"),
    ("last-accessed-date", "Last accessed"),
];

/// Rotation statuses the list filters on and shows, in the order shown.
const STATUSES: [&str; 5] = [
    "Enabled",
    "Disabled",
    "Overdue",
    "Failing",
    "Scheduled for deletion",
];

/// Entries of ListSecrets asked for per call while a status filter is on: one call reads
/// this many secrets, so the filter fills a page with few calls when matches are rare.
const FILTER_CHUNK: i64 = 100;
/// Most ListSecrets calls one filtered page makes; past them the page shows what it found
/// and a "Continue" link, so a rare status over 100k secrets never makes one slow request.
const MAX_CHUNKS: usize = 40;

/// Every rotation status of a list entry, with its CSS class: the primary one (Enabled,
/// Disabled or Scheduled for deletion), then Overdue and Failing when they apply.
/// `failing` holds the ARNs whose last rotation failed or is being retried.
fn statuses(
    v: &Value,
    now: f64,
    failing: &std::collections::HashSet<String>,
) -> Vec<(&'static str, &'static str)> {
    let mut out = vec![match rotation_status(v, now) {
        ("Overdue", _) => ("Enabled", "good"),
        other => other,
    }];
    if rotation_status(v, now).0 == "Overdue" {
        out.push(("Overdue", "bad"));
    }
    if failing.contains(s(v, "ARN")) {
        out.push(("Failing", "bad"));
    }
    out
}

/// Where a page of the list starts: the ListSecrets `NextToken` of the chunk it starts in
/// (`None`: the first chunk) and how many of that chunk's entries earlier pages showed or
/// passed over.
#[derive(Debug, Clone, Default, PartialEq)]
struct Cursor {
    token: Option<String>,
    skip: usize,
}

/// One ListSecrets answer: its entries and the `NextToken` after them.
struct Chunk {
    entries: Vec<Value>,
    next: Option<String>,
}

/// A page of the list.
#[derive(Debug, Default)]
struct ListPage {
    rows: Vec<Value>,
    /// Where the next page starts; `None` when the listing ended.
    next: Option<Cursor>,
    /// Entries read (matching or not).
    scanned: usize,
    /// The page is not full because the chunk budget ran out (not because the listing
    /// ended): `next` continues the search.
    partial: bool,
}

/// Reads chunks from `start` with `fetch` until `page` entries pass `keep`, the listing
/// ends, or `max_chunks` chunks were read. A page that fills in the middle of a chunk
/// continues, on the next page, with the rest of that chunk (same token, larger `skip`), so
/// no match is lost or shown twice.
async fn filtered_page<F, Fut>(
    start: Cursor,
    page: usize,
    max_chunks: usize,
    mut fetch: F,
    keep: impl Fn(&Value) -> bool,
) -> Result<ListPage, ApiFail>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: std::future::Future<Output = Result<Chunk, ApiFail>>,
{
    let mut cur = start;
    let mut out = ListPage::default();
    for _ in 0..max_chunks {
        let chunk = fetch(cur.token.clone()).await?;
        let len = chunk.entries.len();
        for (i, e) in chunk.entries.into_iter().enumerate().skip(cur.skip) {
            out.scanned += 1;
            if !keep(&e) {
                continue;
            }
            out.rows.push(e);
            if out.rows.len() >= page {
                out.next = if i + 1 < len {
                    Some(Cursor {
                        token: cur.token,
                        skip: i + 1,
                    })
                } else {
                    chunk.next.map(|t| Cursor {
                        token: Some(t),
                        skip: 0,
                    })
                };
                return Ok(out);
            }
        }
        match chunk.next {
            Some(t) => {
                cur = Cursor {
                    token: Some(t),
                    skip: 0,
                }
            }
            None => return Ok(out),
        }
    }
    out.next = Some(cur);
    out.partial = true;
    Ok(out)
}

/// The ARNs of secrets whose rotation is failing: the last attempt failed, or it failed and
/// is being retried (the compliance report's `LastRotationFailed` and `RotationFailing`).
async fn failing_arns(c: &Console, cx: &Cx) -> Result<std::collections::HashSet<String>, ApiFail> {
    let report = c.call(cx, "rotary.GetComplianceReport", &json!({})).await?;
    Ok(report
        .get("Secrets")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter(|sec| {
                    sec.get("Findings")
                        .and_then(Value::as_array)
                        .is_some_and(|f| {
                            f.iter().any(|x| {
                                matches!(
                                    x.get("Check").and_then(Value::as_str),
                                    Some("RotationFailing" | "LastRotationFailed")
                                )
                            })
                        })
                })
                .map(|sec| s(sec, "ARN").to_owned())
                .collect()
        })
        .unwrap_or_default())
}

pub(super) async fn secrets(State(c): State<Console>, req: Request) -> Response {
    let (cx, f) = tri!(c.get(req));
    let query = f.text("q").unwrap_or_default();
    let field = f
        .get("field")
        .filter(|v| SEARCH_FIELDS.iter().any(|(k, _)| k == v))
        .unwrap_or("all");
    let sort = f
        .get("sort")
        .filter(|v| SORTS.iter().any(|(k, _)| k == v))
        .unwrap_or("name");
    let order = if f.get("order") == Some("desc") {
        "desc"
    } else {
        "asc"
    };
    let status_filter = f
        .get("status")
        .filter(|v| STATUSES.contains(v))
        .unwrap_or_default();
    let start = Cursor {
        token: f.text("next").map(str::to_owned),
        skip: f
            .text("skip")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
            .min(FILTER_CHUNK as usize),
    };
    let base = format!(
        "/console/secrets?q={}&field={}&status={}&sort={sort}&order={order}",
        q(query),
        field,
        q(status_filter)
    );
    // Failing is known from the compliance report; without permission for it the list
    // still shows the other statuses.
    let failing = failing_arns(&c, &cx).await;
    let failing_set = failing.as_ref().cloned().unwrap_or_default();
    let now = now_secs();
    // Without a status filter a page is one ListSecrets call; with one, chunks of
    // FILTER_CHUNK are read until the page is full.
    let chunk_size = if status_filter.is_empty() {
        PAGE_SIZE
    } else {
        FILTER_CHUNK
    };
    let fetch = |token: Option<String>| {
        let mut body = json!({
            "MaxResults": chunk_size,
            "SortBy": sort,
            "SortOrder": order,
            "IncludePlannedDeletion": true,
        });
        if !query.is_empty() {
            body["Filters"] = json!([{ "Key": field, "Values": [query] }]);
        }
        if let Some(t) = token {
            body["NextToken"] = json!(t);
        }
        let (c, cx) = (&c, &cx);
        async move {
            let v = c.call(cx, "secretsmanager.ListSecrets", &body).await?;
            Ok(Chunk {
                entries: v
                    .get("SecretList")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
                next: v
                    .get("NextToken")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            })
        }
    };
    let keep = |e: &Value| {
        status_filter.is_empty()
            || statuses(e, now, &failing_set)
                .iter()
                .any(|(st, _)| *st == status_filter)
    };
    let listed =
        match filtered_page(start.clone(), PAGE_SIZE as usize, MAX_CHUNKS, fetch, keep).await {
            Ok(p) => p,
            Err(e) => return c.fail(&cx, "Secrets", &e, None),
        };
    let next_link = listed.next.as_ref().map(|n| {
        let mut l = base.clone();
        if let Some(t) = &n.token {
            l.push_str(&format!("&next={}", q(t)));
        }
        if n.skip > 0 {
            l.push_str(&format!("&skip={}", n.skip));
        }
        l
    });
    let sort_link = |key: &str| {
        let o = if sort == key && order == "asc" {
            "desc"
        } else {
            "asc"
        };
        format!(
            "/console/secrets?q={}&field={}&status={}&sort={key}&order={o}",
            q(query),
            field,
            q(status_filter)
        )
    };
    let aria = |key: &str| {
        (sort == key).then_some(if order == "asc" {
            "ascending"
        } else {
            "descending"
        })
    };
    let entries = &listed.rows;
    ok_page(
        &cx,
        "Secrets",
        html! {
            p { a.button href="/console/secrets/new" { "Store a new secret" } }
            form.search method="get" action="/console/secrets" role="search" {
                label for="q" { "Search" }
                input id="q" name="q" type="search" value=(query);
                label for="field" { "in" }
                select id="field" name="field" {
                    @for (k, t) in SEARCH_FIELDS {
                        option value=(k) selected[k == field] { (t) }
                    }
                }
                label for="status" { "Rotation status" }
                select id="status" name="status" {
                    option value="" selected[status_filter.is_empty()] { "Any" }
                    @for k in STATUSES {
                        option value=(k) selected[k == status_filter] { (k) }
                    }
                }
                input type="hidden" name="sort" value=(sort);
                input type="hidden" name="order" value=(order);
                button type="submit" { "Search" }
            }
            @if let Err(e) = &failing {
                @if status_filter == "Failing" {
                    (e.alert())
                } @else {
                    p.muted { "The Failing status needs permission for rotary:GetComplianceReport; it is not shown." }
                }
            }
            @if listed.partial {
                div.alert.ok role="status" id="partial" {
                    "Searched " (listed.scanned) " secrets and found " (entries.len()) " with rotation status "
                    (status_filter) " so far. "
                    @if let Some(l) = &next_link { a href=(l) rel="next" { "Continue searching" } }
                }
            }
            table.list id="secrets" {
                caption {
                    "Secrets (" (entries.len()) " on this page"
                    @if !status_filter.is_empty() { ", rotation status " (status_filter) }
                    ")"
                }
                thead { tr {
                    @for (key, title) in SORTS.iter().take(1) {
                        th scope="col" aria-sort=[aria(key)] { a href=(sort_link(key)) { (title) } }
                    }
                    th scope="col" data-client-sort="text" { button.link type="button" { "Description" } }
                    @for (key, title) in SORTS.iter().skip(1) {
                        th scope="col" aria-sort=[aria(key)] { a href=(sort_link(key)) { (title) } }
                    }
                    th scope="col" data-client-sort="text" { button.link type="button" { "Rotation status" } }
                    th scope="col" data-client-sort="text" { button.link type="button" { "Next rotation" } }
                } }
                tbody {
                    @for e in entries {
                        tr {
                            td { a href=(secret_link(s(e, "Name"))) { (s(e, "Name")) } }
                            td { (s(e, "Description")) }
                            td { (date(e.get("LastChangedDate"))) }
                            td { (day(e.get("LastAccessedDate"))) }
                            td data-status {
                                @for (i, (status, class)) in statuses(e, now, &failing_set).into_iter().enumerate() {
                                    @if i > 0 { " " }
                                    span.(class) { (status) }
                                }
                            }
                            td { (date(e.get("NextRotationDate"))) }
                        }
                    }
                    @if entries.is_empty() {
                        tr { td colspan="6" { "No secrets match." } }
                    }
                }
            }
            nav.pages aria-label="Pages" {
                @if start != Cursor::default() {
                    a href=(base) { "First page" }
                }
                @if let (Some(l), false) = (&next_link, listed.partial) {
                    a href=(l) rel="next" { "Next page" }
                }
            }
        },
    )
}

// ---------------------------------------------------------------------------------------
// Store a new secret
// ---------------------------------------------------------------------------------------

/// Key/value rows or plaintext: the value editor of the create and edit forms.
fn value_editor() -> Markup {
    html! {
        fieldset.value-editor {
            legend { "Secret value" }
            div.radios {
                input type="radio" id="kind-kv" name="kind" value="kv" checked;
                label for="kind-kv" { "Key/value pairs" }
                input type="radio" id="kind-plain" name="kind" value="plaintext";
                label for="kind-plain" { "Plaintext" }
            }
            div.kv data-kind="kv" {
                table.rows {
                    thead { tr { th scope="col" { "Key" } th scope="col" { "Value" } } }
                    tbody data-rows {
                        @for i in 0..3 {
                            tr {
                                td { input type="text" name="key" aria-label=(format!("Key {}", i + 1)) autocomplete="off"; }
                                td { input type="password" name="value" aria-label=(format!("Value {}", i + 1)) autocomplete="new-password"; }
                            }
                        }
                    }
                }
                button.link type="button" data-add-row { "Add row" }
            }
            div.plain data-kind="plaintext" {
                label for="plaintext" { "Plaintext value" }
                textarea id="plaintext" name="plaintext" rows="4" autocomplete="off" spellcheck="false" {}
            }
        }
    }
}

/// The SecretString of a value editor: a JSON object of the non-empty rows, or the text.
fn value_of(f: &Form) -> Result<String, &'static str> {
    if f.get("kind") == Some("plaintext") {
        let v = f.get("plaintext").unwrap_or_default();
        if v.is_empty() {
            return Err("Enter the plaintext value.");
        }
        return Ok(v.to_owned());
    }
    let keys = f.all("key");
    let values = f.all("value");
    let mut obj = Map::new();
    for (i, k) in keys.iter().enumerate() {
        let k = k.trim();
        if k.is_empty() {
            continue;
        }
        if obj.contains_key(k) {
            return Err("Each key may appear only once.");
        }
        let v = values.get(i).copied().unwrap_or_default();
        obj.insert(k.to_owned(), Value::String(v.to_owned()));
    }
    if obj.is_empty() {
        return Err("Enter at least one key and value.");
    }
    serde_json::to_string(&Value::Object(obj)).map_err(|_| "The value could not be encoded.")
}

/// The customer KMS keys the principal may list (`rotary.ListKeys`), as (value, label)
/// suggestions for the encryption key field: an alias when the key has one, else its id.
/// Without permission (or keys) the field is free text only.
async fn kms_choices(c: &Console, cx: &Cx) -> Vec<(String, String)> {
    let Ok(v) = c.call(cx, "rotary.ListKeys", &json!({})).await else {
        return Vec::new();
    };
    v.get("Keys")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|k| s(k, "KeyManager") != "AWS")
        .map(|k| {
            let value = k
                .get("Aliases")
                .and_then(Value::as_array)
                .and_then(|a| a.first())
                .and_then(Value::as_str)
                .unwrap_or_else(|| s(k, "KeyId"))
                .to_owned();
            let label = match s(k, "Description") {
                "" => s(k, "KeyId").to_owned(),
                d => format!("{d} ({})", s(k, "KeyId")),
            };
            (value, label)
        })
        .collect()
}

fn new_secret_page(cx: &Cx, f: &Form, error: Option<Markup>, keys: &[(String, String)]) -> Markup {
    layout(
        "Store a new secret",
        Some(&cx.who()),
        html! {
            @if let Some(e) = error { (e) }
            form.card method="post" action="/console/secrets/new" autocomplete="off" {
                (h::csrf_field(cx.csrf()))
                (token_field())
                label for="name" { "Secret name" }
                input id="name" name="name" type="text" required maxlength="512" value=(f.get("name").unwrap_or_default())
                    aria-describedby="name-help";
                small id="name-help" { "Letters, digits and /_+=.@-" }
                label for="description" { "Description (optional)" }
                input id="description" name="description" type="text" maxlength="2048" value=(f.get("description").unwrap_or_default());
                (value_editor())
                label for="kms" { "Encryption key (KMS key ID, ARN or alias; empty for the default)" }
                input id="kms" name="kms_key_id" type="text" value=(f.get("kms_key_id").unwrap_or_default())
                    list=[(!keys.is_empty()).then_some("kms-keys")] spellcheck="false" autocapitalize="off";
                @if !keys.is_empty() {
                    datalist id="kms-keys" {
                        @for (value, label) in keys { option value=(value) { (label) } }
                    }
                }
                fieldset {
                    legend { "Tags (optional)" }
                    table.rows {
                        thead { tr { th scope="col" { "Key" } th scope="col" { "Value" } } }
                        tbody data-rows {
                            @for i in 0..2 {
                                tr {
                                    td { input type="text" name="tag_key" aria-label=(format!("Tag key {}", i + 1)); }
                                    td { input type="text" name="tag_value" aria-label=(format!("Tag value {}", i + 1)); }
                                }
                            }
                        }
                    }
                    button.link type="button" data-add-row { "Add tag" }
                }
                button type="submit" { "Store" }
            }
        },
    )
}

pub(super) async fn new_secret_form(State(c): State<Console>, req: Request) -> Response {
    let (cx, _) = tri!(c.get(req));
    h::page(
        StatusCode::OK,
        new_secret_page(&cx, &Form(Vec::new()), None, &kms_choices(&c, &cx).await),
    )
}

pub(super) async fn create_secret(State(c): State<Console>, req: Request) -> Response {
    let (cx, f) = tri!(c.post(req).await);
    let name = f.text("name").unwrap_or_default().to_owned();
    let value = match value_of(&f) {
        Ok(v) => v,
        Err(m) => {
            return h::page(
                StatusCode::BAD_REQUEST,
                new_secret_page(
                    &cx,
                    &f,
                    Some(h::alert("Not stored:", m)),
                    &kms_choices(&c, &cx).await,
                ),
            )
        }
    };
    let mut body =
        json!({ "Name": name, "SecretString": value, "ClientRequestToken": token_of(&f) });
    if let Some(d) = f.text("description") {
        body["Description"] = json!(d);
    }
    if let Some(k) = f.text("kms_key_id") {
        body["KmsKeyId"] = json!(k);
    }
    let tag_values = f.all("tag_value");
    let tags: Vec<Value> = f
        .all("tag_key")
        .iter()
        .enumerate()
        .filter(|(_, k)| !k.trim().is_empty())
        .map(|(i, k)| json!({"Key": k.trim(), "Value": tag_values.get(i).copied().unwrap_or_default()}))
        .collect();
    if !tags.is_empty() {
        body["Tags"] = Value::Array(tags);
    }
    match c.call(&cx, "secretsmanager.CreateSecret", &body).await {
        Ok(_) => h::redirect(&format!("{}&msg=created", secret_link(&name))),
        Err(e) => h::page(
            e.status,
            new_secret_page(&cx, &f, Some(e.alert()), &kms_choices(&c, &cx).await),
        ),
    }
}

// ---------------------------------------------------------------------------------------
// Secret details
// ---------------------------------------------------------------------------------------

/// The schedule of rotation rules in words.
fn schedule_words(rules: Option<&Value>) -> String {
    let Some(r) = rules else {
        return "—".to_owned();
    };
    if let Some(e) = r.get("ScheduleExpression").and_then(Value::as_str) {
        if let Some(inner) = e.strip_prefix("rate(").and_then(|x| x.strip_suffix(')')) {
            return format!("Every {inner}");
        }
        return format!("On the schedule {e}");
    }
    match r.get("AutomaticallyAfterDays").and_then(Value::as_i64) {
        Some(1) => "Every day".to_owned(),
        Some(n) => format!("Every {n} days"),
        None => "—".to_owned(),
    }
}

/// The last path segment of a function ARN.
fn function_name(arn: &str) -> &str {
    arn.rsplit(':').next().unwrap_or(arn)
}

fn is_failure(outcome: &str) -> bool {
    matches!(outcome, "Failed" | "Retrying" | "Abandoned")
}

fn history_section(history: &Result<Value, ApiFail>) -> Markup {
    html! {
        section aria-labelledby="history-h" {
            h2 id="history-h" { "Rotation history" }
            @match history {
                Err(e) => (e.alert()),
                Ok(h) => {
                    @let attempts = h.get("Rotations").and_then(Value::as_array).cloned().unwrap_or_default();
                    @if attempts.is_empty() { p { "No rotation has run." } }
                    @for a in &attempts {
                        @let outcome = s(a, "Outcome");
                        div.attempt.failed[is_failure(outcome)] data-outcome=(outcome) {
                            h3 {
                                (date(a.get("StartedAt"))) " — "
                                span.(if is_failure(outcome) { "bad" } else if outcome == "Succeeded" { "good" } else { "muted" }) { (outcome) }
                                " (" (s(a, "Trigger")) ", attempt " (a.get("Attempt").and_then(Value::as_u64).unwrap_or(0)) ")"
                            }
                            dl {
                                dt { "Version" } dd { code { (s(a, "Token")) } }
                                @if a.get("TestOnly").and_then(Value::as_bool) == Some(true) {
                                    dt { "Mode" } dd { "Test only (testSecret)" }
                                }
                                @if let Some(st) = a.get("FailedStep").and_then(Value::as_str) { dt { "Failed step" } dd { (st) } }
                                @if let Some(err) = a.get("Error").and_then(Value::as_str) { dt { "Error" } dd.bad { (err) } }
                                @if a.get("NextAttemptAt").is_some_and(|n| !n.is_null()) { dt { "Next retry" } dd { (date(a.get("NextAttemptAt"))) } }
                                dt { "Ended" } dd { (date(a.get("EndedAt"))) }
                            }
                            @let steps = a.get("Steps").and_then(Value::as_array).cloned().unwrap_or_default();
                            @if !steps.is_empty() {
                                table.steps {
                                    caption { "Steps" }
                                    thead { tr { th scope="col" { "Step" } th scope="col" { "Outcome" } th scope="col" { "Started" } th scope="col" { "Error" } th scope="col" { "Output" } } }
                                    tbody {
                                        @for st in &steps {
                                            tr.failed[st.get("Error").is_some_and(|e| !e.is_null())] {
                                                td { (s(st, "Step")) }
                                                td { (s(st, "Outcome")) }
                                                td { (date(st.get("StartedAt"))) }
                                                td { (s(st, "Error")) }
                                                td { @if let Some(o) = st.get("Output").and_then(Value::as_str) { pre { (o) } } }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

pub(super) async fn details(State(c): State<Console>, req: Request) -> Response {
    let (cx, f) = tri!(c.get(req));
    let id = f.get("id").unwrap_or_default().to_owned();
    let d = match c
        .call(
            &cx,
            "secretsmanager.DescribeSecret",
            &json!({ "SecretId": id }),
        )
        .await
    {
        Ok(v) => v,
        Err(e) => return c.fail(&cx, &format!("Secret {id}"), &e, Some("/console/secrets")),
    };
    let name = s(&d, "Name").to_owned();
    let versions = c
        .call(
            &cx,
            "secretsmanager.ListSecretVersionIds",
            &json!({ "SecretId": name, "IncludeDeprecated": true }),
        )
        .await;
    let history = c
        .call(
            &cx,
            "rotary.GetRotationHistory",
            &json!({ "SecretId": name, "MaxResults": 20 }),
        )
        .await;
    let now = now_secs();
    let (status, class) = rotation_status(&d, now);
    let failing = history
        .as_ref()
        .ok()
        .and_then(|h| h.get("Rotations"))
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .is_some_and(|a| is_failure(s(a, "Outcome")));
    let deleted = d.get("DeletedDate").is_some_and(|v| !v.is_null());
    let pending = versions.as_ref().ok().and_then(pending_version);
    let rules = d.get("RotationRules");
    let tags = d
        .get("Tags")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let csrf = cx.csrf();
    let action_form = |action: &str, label: &str, extra: Markup| {
        html! {
            form.inline method="post" action=(action) {
                (h::csrf_field(csrf))
                input type="hidden" name="id" value=(name);
                (extra)
                button type="submit" { (label) }
            }
        }
    };
    ok_page(
        &cx,
        &format!("Secret {name}"),
        html! {
            @if let Some(m) = message(f.get("msg")) { (h::notice(m)) }
            @if deleted {
                div.alert.error role="status" {
                    "This secret is scheduled for deletion on " (date(d.get("DeletedDate"))) ". "
                    (action_form("/console/secret/restore", "Restore secret", html! {}))
                }
            }
            section aria-labelledby="overview-h" {
                h2 id="overview-h" { "Overview" }
                dl.grid {
                    dt { "Secret name" } dd { (name) }
                    dt { "Secret ARN" } dd { code { (s(&d, "ARN")) } }
                    dt { "Description" } dd { (s(&d, "Description")) }
                    dt { "Encryption key" } dd { @match d.get("KmsKeyId").and_then(Value::as_str) { Some(k) => code { (k) }, None => "aws/secretsmanager (default)" } }
                    dt { "Created" } dd { (date(d.get("CreatedDate"))) }
                    dt { "Last changed" } dd { (date(d.get("LastChangedDate"))) }
                    dt { "Last retrieved" } dd { (day(d.get("LastAccessedDate"))) }
                }
                h3 { "Tags" }
                @if tags.is_empty() { p { "No tags." } } @else {
                    table id="tags" { thead { tr { th scope="col" { "Key" } th scope="col" { "Value" } th scope="col" { span.visually-hidden { "Actions" } } } }
                        tbody { @for t in &tags { tr {
                            td { (s(t, "Key")) } td { (s(t, "Value")) }
                            td { (action_form("/console/secret/untag", "Remove", html! {
                                input type="hidden" name="tag_key" value=(s(t, "Key"));
                            })) }
                        } } } }
                }
                form.inline method="post" action="/console/secret/tag" {
                    (h::csrf_field(csrf))
                    input type="hidden" name="id" value=(name);
                    label for="new-tag-key" { "Tag key" }
                    input id="new-tag-key" name="tag_key" type="text" required maxlength="128";
                    label for="new-tag-value" { "Tag value" }
                    input id="new-tag-value" name="tag_value" type="text" maxlength="256";
                    button type="submit" { "Add tag" }
                }
                p { a href=(format!("/console/secret/policy?id={}", q(&name))) { "Resource policy" } }
                @if let Some(primary) = d.get("PrimaryRegion").and_then(Value::as_str) {
                    h3 { "Replication" }
                    @if d.get("ReplicationStatus").is_none() {
                        p id="replica-of" { "A read-only replica of the secret in " strong { (primary) } ". Change it in its primary region." }
                    } @else {
                        table id="replicas" {
                            thead { tr { th scope="col" { "Region" } th scope="col" { "Status" } th scope="col" { "Message" } th scope="col" { "Encryption key" } } }
                            tbody { @for r in d.get("ReplicationStatus").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default() { tr {
                                td { (s(r, "Region")) }
                                td class=(if s(r, "Status") == "Failed" { "failed" } else { "" }) { (s(r, "Status")) }
                                td { (s(r, "StatusMessage")) }
                                td { @match r.get("KmsKeyId").and_then(Value::as_str) { Some(k) => code { (k) }, None => "default" } }
                            } } }
                        }
                    }
                }
            }
            section aria-labelledby="value-h" {
                h2 id="value-h" { "Secret value" }
                p { "The value is shown only when you ask for it; each retrieval is a GetSecretValue in the audit log." }
                (action_form("/console/secret/value", "Retrieve secret value", html! {}))
                details {
                    summary { "Edit secret value" }
                    form.card method="post" action="/console/secret/put" autocomplete="off" {
                        (h::csrf_field(csrf))
                        input type="hidden" name="id" value=(name);
                        (token_field())
                        (value_editor())
                        button type="submit" { "Save new value" }
                    }
                }
            }
            section aria-labelledby="rotation-h" {
                h2 id="rotation-h" { "Rotation configuration" }
                dl.grid id="rotation" {
                    dt { "Rotation status" }
                    dd {
                        span.(class) data-rotation-status { (if status == "Overdue" || status == "Enabled" { "Enabled" } else { "Disabled" }) }
                        @if status == "Overdue" { " " span.bad { "Overdue" } }
                        @if failing { " " span.bad { "Failing" } }
                    }
                    dt { "Schedule" } dd { (schedule_words(rules)) }
                    dt { "Schedule expression" } dd { code { (rules.map(|r| s(r, "ScheduleExpression")).filter(|e| !e.is_empty()).unwrap_or("—")) } }
                    dt { "Window duration" } dd { (rules.map(|r| s(r, "Duration")).filter(|e| !e.is_empty()).unwrap_or("—")) }
                    dt { "Rotation function" } dd { @match d.get("RotationLambdaARN").and_then(Value::as_str) { Some(a) => code title=(a) { (function_name(a)) }, None => "—" } }
                    dt { "Last rotated" } dd { (date(d.get("LastRotatedDate"))) }
                    dt { "Next rotation" } dd { (date(d.get("NextRotationDate"))) }
                }
                @if let Some(p) = &pending {
                    div.alert.error role="note" {
                        "AWSPENDING is on version " code { (s(p, "VersionId")) } ": a rotation is in progress or failed. "
                        "While it is there, Rotate re-runs that rotation. "
                        a href=(format!("/console/secret/reset?id={}", q(&name))) { "Reset failed rotation…" }
                    }
                }
                p.actions {
                    a.button href=(format!("/console/secret/rotation?id={}", q(&name))) { "Edit rotation" }
                    (action_form("/console/secret/rotate", "Rotate secret immediately", token_field()))
                    (action_form("/console/secret/cancel-rotation", "Cancel rotation", html! {}))
                }
            }
            (history_section(&history))
            section aria-labelledby="versions-h" {
                h2 id="versions-h" { "Versions" }
                @match &versions {
                    Err(e) => (e.alert()),
                    Ok(v) => table {
                        thead { tr { th scope="col" { "Version ID" } th scope="col" { "Staging labels" } th scope="col" { "Created" } th scope="col" { "Last retrieved" } th scope="col" { span.visually-hidden { "Actions" } } } }
                        tbody {
                            @for ver in v.get("Versions").and_then(Value::as_array).cloned().unwrap_or_default() {
                                tr {
                                    td { code { (s(&ver, "VersionId")) } }
                                    td { @for l in ver.get("VersionStages").and_then(Value::as_array).cloned().unwrap_or_default() { span.label { (l.as_str().unwrap_or_default()) } " " } }
                                    td { (date(ver.get("CreatedDate"))) }
                                    td { (day(ver.get("LastAccessedDate"))) }
                                    td { (action_form("/console/secret/value", "Retrieve", html! {
                                        input type="hidden" name="version" value=(s(&ver, "VersionId"));
                                    })) }
                                }
                            }
                        }
                    }
                }
            }
            @if !deleted {
                section aria-labelledby="delete-h" {
                    h2 id="delete-h" { "Delete secret" }
                    form.inline method="post" action="/console/secret/delete" {
                        (h::csrf_field(csrf))
                        input type="hidden" name="id" value=(name);
                        label for="window" { "Recovery window (days, 7–30)" }
                        input id="window" name="window" type="number" min="7" max="30" value="30" required;
                        button.danger type="submit" { "Schedule deletion" }
                    }
                }
            }
        },
    )
}

/// A POST on one secret: the API call, then back to its page with `msg`.
async fn secret_action(
    c: &Console,
    req: Request,
    target: &str,
    body: impl Fn(&str, &Form) -> Result<Value, &'static str>,
    msg: &str,
) -> Response {
    let (cx, f) = tri!(c.post(req).await);
    let id = f.get("id").unwrap_or_default().to_owned();
    let back = secret_link(&id);
    let req_body = match body(&id, &f) {
        Ok(b) => b,
        Err(m) => {
            let fail = ApiFail {
                status: StatusCode::BAD_REQUEST,
                code: "InvalidParameterException".to_owned(),
                message: m.to_owned(),
            };
            return c.fail(&cx, &format!("Secret {id}"), &fail, Some(&back));
        }
    };
    match c.call(&cx, target, &req_body).await {
        Ok(_) => h::redirect(&format!("{back}&msg={msg}")),
        Err(e) => c.fail(&cx, &format!("Secret {id}"), &e, Some(&back)),
    }
}

pub(super) async fn put_value(State(c): State<Console>, req: Request) -> Response {
    secret_action(
        &c,
        req,
        "secretsmanager.PutSecretValue",
        |id, f| {
            Ok(json!({
                "SecretId": id,
                "SecretString": value_of(f)?,
                "ClientRequestToken": token_of(f),
            }))
        },
        "value-saved",
    )
    .await
}

pub(super) async fn delete(State(c): State<Console>, req: Request) -> Response {
    secret_action(
        &c,
        req,
        "secretsmanager.DeleteSecret",
        |id, f| {
            let days = f
                .text("window")
                .and_then(|w| w.parse::<i64>().ok())
                .filter(|d| (7..=30).contains(d))
                .ok_or("The recovery window is a number of days from 7 to 30.")?;
            Ok(json!({ "SecretId": id, "RecoveryWindowInDays": days }))
        },
        "deleted",
    )
    .await
}

pub(super) async fn restore(State(c): State<Console>, req: Request) -> Response {
    secret_action(
        &c,
        req,
        "secretsmanager.RestoreSecret",
        |id, _| Ok(json!({ "SecretId": id })),
        "restored",
    )
    .await
}

pub(super) async fn rotate_now(State(c): State<Console>, req: Request) -> Response {
    secret_action(
        &c,
        req,
        "secretsmanager.RotateSecret",
        |id, f| Ok(json!({ "SecretId": id, "ClientRequestToken": token_of(f) })),
        "rotating",
    )
    .await
}

pub(super) async fn tag(State(c): State<Console>, req: Request) -> Response {
    secret_action(
        &c,
        req,
        "secretsmanager.TagResource",
        |id, f| {
            let key = f.text("tag_key").ok_or("Enter the tag key.")?;
            let value = f.get("tag_value").unwrap_or_default();
            Ok(json!({ "SecretId": id, "Tags": [{ "Key": key, "Value": value }] }))
        },
        "tagged",
    )
    .await
}

pub(super) async fn untag(State(c): State<Console>, req: Request) -> Response {
    secret_action(
        &c,
        req,
        "secretsmanager.UntagResource",
        |id, f| {
            let key = f.get("tag_key").ok_or("Name the tag to remove.")?;
            Ok(json!({ "SecretId": id, "TagKeys": [key] }))
        },
        "untagged",
    )
    .await
}

pub(super) async fn delete_policy(State(c): State<Console>, req: Request) -> Response {
    secret_action(
        &c,
        req,
        "secretsmanager.DeleteResourcePolicy",
        |id, _| Ok(json!({ "SecretId": id })),
        "policy-deleted",
    )
    .await
}

// ---------------------------------------------------------------------------------------
// Resource policy
// ---------------------------------------------------------------------------------------

fn policy_page(
    cx: &Cx,
    name: &str,
    policy: &str,
    block_public: bool,
    outcome: Option<Markup>,
) -> Markup {
    layout(
        &format!("Resource policy: {name}"),
        Some(&cx.who()),
        html! {
            @if let Some(o) = outcome { (o) }
            form.card method="post" action="/console/secret/policy" {
                (h::csrf_field(cx.csrf()))
                input type="hidden" name="id" value=(name);
                label for="policy" { "Policy document (JSON)" }
                textarea id="policy" name="policy" rows="16" spellcheck="false" { (policy) }
                div.check {
                    input id="block" name="block_public" type="checkbox" value="1" checked[block_public];
                    label for="block" { "Block a policy that grants access to everyone (BlockPublicPolicy)" }
                }
                p.actions {
                    button type="submit" name="action" value="validate" { "Validate" }
                    button type="submit" name="action" value="save" { "Save policy" }
                    a href=(secret_link(name)) { "Back to the secret" }
                }
            }
            form.inline method="post" action="/console/secret/policy/delete" {
                (h::csrf_field(cx.csrf()))
                input type="hidden" name="id" value=(name);
                button.danger type="submit" { "Delete policy" }
            }
        },
    )
}

/// The ValidateResourcePolicy answer as a notice or an alert listing the failed checks.
fn validation_result(v: &Value) -> Markup {
    if v.get("PolicyValidationPassed").and_then(Value::as_bool) == Some(true) {
        return h::notice("The policy is valid.");
    }
    html! {
        div.alert.error role="alert" {
            strong { "The policy is not valid:" }
            ul {
                @for e in v.get("ValidationErrors").and_then(Value::as_array).cloned().unwrap_or_default() {
                    li { (s(&e, "CheckName")) ": " (s(&e, "ErrorMessage")) }
                }
            }
        }
    }
}

pub(super) async fn policy_form(State(c): State<Console>, req: Request) -> Response {
    let (cx, f) = tri!(c.get(req));
    let id = f.get("id").unwrap_or_default().to_owned();
    let v = match c
        .call(
            &cx,
            "secretsmanager.GetResourcePolicy",
            &json!({ "SecretId": id }),
        )
        .await
    {
        Ok(v) => v,
        Err(e) => return c.fail(&cx, "Resource policy", &e, Some(&secret_link(&id))),
    };
    let policy = v
        .get("ResourcePolicy")
        .and_then(Value::as_str)
        .map(|p| {
            serde_json::from_str::<Value>(p)
                .ok()
                .and_then(|j| serde_json::to_string_pretty(&j).ok())
                .unwrap_or_else(|| p.to_owned())
        })
        .unwrap_or_default();
    let name = s(&v, "Name").to_owned();
    let notice = message(f.get("msg")).map(h::notice);
    h::page(
        StatusCode::OK,
        policy_page(&cx, &name, &policy, true, notice),
    )
}

pub(super) async fn save_policy(State(c): State<Console>, req: Request) -> Response {
    let (cx, f) = tri!(c.post(req).await);
    let id = f.get("id").unwrap_or_default().to_owned();
    let policy = f.get("policy").unwrap_or_default().to_owned();
    let block = f.get("block_public").is_some();
    let v = match c
        .call(
            &cx,
            "secretsmanager.ValidateResourcePolicy",
            &json!({ "SecretId": id, "ResourcePolicy": policy }),
        )
        .await
    {
        Ok(v) => v,
        Err(e) => {
            return h::page(
                e.status,
                policy_page(&cx, &id, &policy, block, Some(e.alert())),
            )
        }
    };
    let passed = v.get("PolicyValidationPassed").and_then(Value::as_bool) == Some(true);
    if f.get("action") != Some("save") || !passed {
        let status = if passed {
            StatusCode::OK
        } else {
            StatusCode::BAD_REQUEST
        };
        return h::page(
            status,
            policy_page(&cx, &id, &policy, block, Some(validation_result(&v))),
        );
    }
    match c
        .call(
            &cx,
            "secretsmanager.PutResourcePolicy",
            &json!({ "SecretId": id, "ResourcePolicy": policy, "BlockPublicPolicy": block }),
        )
        .await
    {
        Ok(_) => h::redirect(&format!(
            "/console/secret/policy?id={}&msg=policy-saved",
            q(&id)
        )),
        Err(e) => h::page(
            e.status,
            policy_page(&cx, &id, &policy, block, Some(e.alert())),
        ),
    }
}

fn has_label(v: &Value, label: &str) -> bool {
    v.get("VersionStages")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|l| l.as_str() == Some(label)))
}

/// The version holding AWSPENDING when it is not also AWSCURRENT (a rotation in progress or
/// failed), from a ListSecretVersionIds answer.
fn pending_version(versions: &Value) -> Option<Value> {
    versions
        .get("Versions")
        .and_then(Value::as_array)?
        .iter()
        .find(|v| has_label(v, "AWSPENDING") && !has_label(v, "AWSCURRENT"))
        .cloned()
}

/// "Reset failed rotation": shows what it will do, then (POST) removes AWSPENDING from the
/// failed version with UpdateSecretVersionStage, as `rotary rotation reset` does.
pub(super) async fn reset_form(State(c): State<Console>, req: Request) -> Response {
    let (cx, f) = tri!(c.get(req));
    let id = f.get("id").unwrap_or_default().to_owned();
    let back = secret_link(&id);
    let versions = match c
        .call(
            &cx,
            "secretsmanager.ListSecretVersionIds",
            &json!({ "SecretId": id, "IncludeDeprecated": true, "MaxResults": 100 }),
        )
        .await
    {
        Ok(v) => v,
        Err(e) => return c.fail(&cx, "Reset failed rotation", &e, Some(&back)),
    };
    let name = s(&versions, "Name").to_owned();
    let history = c
        .call(
            &cx,
            "rotary.GetRotationHistory",
            &json!({ "SecretId": name, "MaxResults": 1 }),
        )
        .await
        .ok();
    let last = history
        .as_ref()
        .and_then(|h| h.get("Rotations"))
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .cloned();
    let current = versions
        .get("Versions")
        .and_then(Value::as_array)
        .and_then(|a| a.iter().find(|v| has_label(v, "AWSCURRENT")))
        .map(|v| s(v, "VersionId").to_owned());
    let pending = pending_version(&versions);
    ok_page(
        &cx,
        &format!("Reset failed rotation: {name}"),
        html! {
            @match &pending {
                None => p { "No version of " (name) " holds AWSPENDING apart from AWSCURRENT: there is no rotation to reset. " a href=(back) { "Back" } },
                Some(p) => {
                    dl.grid {
                        dt { "AWSPENDING" } dd { "version " code { (s(p, "VersionId")) } " (created " (date(p.get("CreatedDate"))) ")" }
                        dt { "AWSCURRENT" } dd { "version " code { (current.as_deref().unwrap_or("—")) } }
                        @if let Some(a) = &last {
                            dt { "Last attempt" } dd {
                                (s(a, "Outcome")) " (attempt " (a.get("Attempt").and_then(Value::as_u64).unwrap_or(0)) ", started " (date(a.get("StartedAt"))) ")"
                                @if let Some(e) = a.get("Error").and_then(Value::as_str) { ": " (e) }
                            }
                        }
                    }
                    p {
                        "This removes AWSPENDING from version " code { (s(p, "VersionId")) } ": the rotation in progress is abandoned, "
                        "AWSCURRENT stays where it is, and the next rotation starts afresh (with the function you choose)."
                    }
                    form.inline method="post" action="/console/secret/reset" {
                        (h::csrf_field(cx.csrf()))
                        input type="hidden" name="id" value=(name);
                        input type="hidden" name="version" value=(s(p, "VersionId"));
                        button.danger type="submit" { "Remove AWSPENDING" }
                        a href=(back) { "Cancel" }
                    }
                }
            }
        },
    )
}

pub(super) async fn reset(State(c): State<Console>, req: Request) -> Response {
    secret_action(
        &c,
        req,
        "secretsmanager.UpdateSecretVersionStage",
        |id, f| {
            let version = f.text("version").ok_or("Name the version to reset.")?;
            Ok(json!({
                "SecretId": id,
                "VersionStage": "AWSPENDING",
                "RemoveFromVersionId": version,
            }))
        },
        "reset",
    )
    .await
}

pub(super) async fn cancel_rotation(State(c): State<Console>, req: Request) -> Response {
    secret_action(
        &c,
        req,
        "secretsmanager.CancelRotateSecret",
        |id, _| Ok(json!({ "SecretId": id })),
        "cancelled",
    )
    .await
}

/// "Retrieve secret value": one GetSecretValue, answered with `Cache-Control: no-store`.
pub(super) async fn reveal(State(c): State<Console>, req: Request) -> Response {
    let (cx, f) = tri!(c.post(req).await);
    let id = f.get("id").unwrap_or_default().to_owned();
    let back = secret_link(&id);
    let mut body = json!({ "SecretId": id });
    if let Some(version) = f.text("version") {
        body["VersionId"] = json!(version);
    }
    let v = match c.call(&cx, "secretsmanager.GetSecretValue", &body).await {
        Ok(v) => v,
        Err(e) => return c.fail(&cx, &format!("Secret value of {id}"), &e, Some(&back)),
    };
    let text = v.get("SecretString").and_then(Value::as_str);
    let pairs = text
        .and_then(|t| serde_json::from_str::<Map<String, Value>>(t).ok())
        .filter(|m| !m.is_empty());
    let mut r = ok_page(
        &cx,
        &format!("Secret value of {}", s(&v, "Name")),
        html! {
            p {
                "Version " code { (s(&v, "VersionId")) } " ("
                @for (i, l) in v.get("VersionStages").and_then(Value::as_array).cloned().unwrap_or_default().iter().enumerate() {
                    @if i > 0 { ", " } (l.as_str().unwrap_or_default())
                }
                "). This page is not cached; leaving it hides the value."
            }
            div id="secret-value" {
                @if let Some(m) = &pairs {
                    table {
                        thead { tr { th scope="col" { "Key" } th scope="col" { "Value" } } }
                        tbody { @for (k, val) in m { tr { td { (k) } td { code { @match val.as_str() { Some(t) => (t), None => (val.to_string()) } } } } } }
                    }
                } @else if let Some(t) = text {
                    pre { (t) }
                } @else {
                    p { "Binary value (base64):" } pre { (s(&v, "SecretBinary")) }
                }
            }
            p { a.button href=(back) { "Hide value" } }
        },
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

// ---------------------------------------------------------------------------------------
// Rotation configuration
// ---------------------------------------------------------------------------------------

/// `RotationRules` from the rotation form.
fn rules_of(f: &Form) -> Result<Value, &'static str> {
    let mut rules = Map::new();
    match f.get("schedule").unwrap_or("30") {
        "expression" => {
            let e = f
                .text("expression")
                .ok_or("Enter a rate() or cron() expression.")?;
            rules.insert("ScheduleExpression".into(), json!(e));
        }
        "days" => {
            let n = f
                .text("days")
                .and_then(|d| d.parse::<i64>().ok())
                .ok_or("Enter the number of days between rotations (1–1000).")?;
            rules.insert("AutomaticallyAfterDays".into(), json!(n));
        }
        preset => {
            let n = preset.parse::<i64>().map_err(|_| "Choose a schedule.")?;
            rules.insert("AutomaticallyAfterDays".into(), json!(n));
        }
    }
    if let Some(d) = f.text("duration") {
        rules.insert("Duration".into(), json!(d));
    }
    Ok(Value::Object(rules))
}

/// The PreviewSchedule request of a rotation form.
fn preview_body(f: &Form) -> Result<Value, &'static str> {
    let mut body = rules_of(f)?;
    body["Count"] = json!(PREVIEW_COUNT);
    Ok(body)
}

fn preview_list(p: &Result<Value, String>) -> Markup {
    html! {
        @match p {
            Err(m) => p.bad role="alert" { (m) },
            Ok(v) => ol {
                @for w in v.get("Windows").and_then(Value::as_array).cloned().unwrap_or_default() {
                    li { (date(w.get("Start"))) " – " (date(w.get("End"))) }
                }
            },
        }
    }
}

fn rotation_page(
    cx: &Cx,
    name: &str,
    f: &Form,
    functions: &[(String, String)],
    preview: Option<&Result<Value, String>>,
    error: Option<Markup>,
) -> Markup {
    let schedule = f.get("schedule").unwrap_or("30");
    let function = f.get("function").unwrap_or_default();
    let immediately = f.get("rotate_immediately").is_some();
    layout(
        &format!("Edit rotation: {name}"),
        Some(&cx.who()),
        html! {
            @if let Some(e) = error { (e) }
            form.card id="rotation-form" method="post" action="/console/secret/rotation" {
                (h::csrf_field(cx.csrf()))
                (token_field())
                input type="hidden" name="id" value=(name);
                p { "Saving enables automatic rotation with this schedule and function." }
                fieldset {
                    legend { "Rotation schedule" }
                    label for="schedule" { "Interval" }
                    select id="schedule" name="schedule" data-preview {
                        @for d in PRESET_DAYS {
                            option value=(d) selected[schedule == d.to_string()] { (if d == 1 { "Every day".to_owned() } else { format!("Every {d} days") }) }
                        }
                        option value="days" selected[schedule == "days"] { "Custom number of days" }
                        option value="expression" selected[schedule == "expression"] { "Schedule expression: rate() or cron()" }
                    }
                    div data-when="days" {
                        label for="days" { "Days between rotations (custom)" }
                        input id="days" name="days" type="number" min="1" max="1000" value=(f.get("days").unwrap_or_default()) data-preview;
                    }
                    div data-when="expression" {
                        label for="expression" { "Schedule expression" }
                        input id="expression" name="expression" type="text" value=(f.get("expression").unwrap_or_default())
                            placeholder="cron(0 8 ? * MON-FRI *)" aria-describedby="expression-help" spellcheck="false" data-preview;
                        small id="expression-help" {
                            "rate(N hours|days) or cron(minutes hours day-of-month month day-of-week year), in UTC; "
                            "for example " code { "rate(10 days)" } " or " code { "cron(0 16 1,15 * ? *)" } "."
                        }
                    }
                    label for="duration" { "Window duration (optional, e.g. 3h)" }
                    input id="duration" name="duration" type="text" value=(f.get("duration").unwrap_or_default()) data-preview;
                }
                section aria-labelledby="preview-h" {
                    h2 id="preview-h" { "Next " (PREVIEW_COUNT) " rotation windows" }
                    div id="preview" aria-live="polite" {
                        @if let Some(p) = preview { (preview_list(p)) } @else { p { "Choose a schedule to see its windows." } }
                    }
                    button.link type="submit" name="action" value="preview" { "Preview" }
                }
                label for="function" { "Rotation function" }
                select id="function" name="function" required {
                    @for (n, arn) in functions {
                        option value=(arn) selected[arn == function || n == function] { (n) }
                    }
                }
                div.check {
                    input id="immediately" name="rotate_immediately" type="checkbox" value="1" checked[immediately];
                    label for="immediately" { "Rotate immediately when saved (otherwise only testSecret runs now)" }
                }
                button type="submit" name="action" value="save" { "Save" }
                " " a href=(secret_link(name)) { "Cancel" }
            }
        },
    )
}

/// Built-in and registered functions: (name, ARN).
async fn function_choices(c: &Console, cx: &Cx) -> Result<Vec<(String, String)>, ApiFail> {
    let v = c.call(cx, "rotary.ListFunctions", &json!({})).await?;
    Ok(v.get("Functions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|f| (s(f, "Name").to_owned(), s(f, "FunctionArn").to_owned()))
        .collect())
}

pub(super) async fn rotation_form(State(c): State<Console>, req: Request) -> Response {
    let (cx, f) = tri!(c.get(req));
    let id = f.get("id").unwrap_or_default().to_owned();
    let d = match c
        .call(
            &cx,
            "secretsmanager.DescribeSecret",
            &json!({ "SecretId": id }),
        )
        .await
    {
        Ok(v) => v,
        Err(e) => return c.fail(&cx, "Edit rotation", &e, Some(&secret_link(&id))),
    };
    let functions = match function_choices(&c, &cx).await {
        Ok(v) => v,
        Err(e) => return c.fail(&cx, "Edit rotation", &e, Some(&secret_link(&id))),
    };
    // The form starts from the current configuration.
    let mut fields: Vec<(String, String)> = Vec::new();
    let rules = d.get("RotationRules");
    let expr = rules
        .map(|r| s(r, "ScheduleExpression"))
        .unwrap_or_default();
    let days = rules
        .and_then(|r| r.get("AutomaticallyAfterDays"))
        .and_then(Value::as_i64);
    if !expr.is_empty() && !expr.starts_with("rate(") {
        fields.push(("schedule".into(), "expression".into()));
        fields.push(("expression".into(), expr.into()));
    } else if let Some(n) = days {
        if PRESET_DAYS.contains(&n) {
            fields.push(("schedule".into(), n.to_string()));
        } else {
            fields.push(("schedule".into(), "days".into()));
            fields.push(("days".into(), n.to_string()));
        }
    } else if !expr.is_empty() {
        fields.push(("schedule".into(), "expression".into()));
        fields.push(("expression".into(), expr.into()));
    }
    if let Some(dur) = rules.map(|r| s(r, "Duration")).filter(|x| !x.is_empty()) {
        fields.push(("duration".into(), dur.into()));
    }
    if let Some(fun) = d.get("RotationLambdaARN").and_then(Value::as_str) {
        fields.push(("function".into(), fun.into()));
    }
    fields.push(("rotate_immediately".into(), "1".into()));
    let form = Form(fields);
    let name = s(&d, "Name").to_owned();
    h::page(
        StatusCode::OK,
        rotation_page(&cx, &name, &form, &functions, None, None),
    )
}

pub(super) async fn save_rotation(State(c): State<Console>, req: Request) -> Response {
    let (cx, f) = tri!(c.post(req).await);
    let id = f.get("id").unwrap_or_default().to_owned();
    let functions = match function_choices(&c, &cx).await {
        Ok(v) => v,
        Err(e) => return c.fail(&cx, "Edit rotation", &e, Some(&secret_link(&id))),
    };
    let preview = match preview_body(&f) {
        Ok(b) => c
            .call(&cx, "rotary.PreviewSchedule", &b)
            .await
            .map_err(|e| e.message),
        Err(m) => Err(m.to_owned()),
    };
    if f.get("action") == Some("preview") {
        return h::page(
            StatusCode::OK,
            rotation_page(&cx, &id, &f, &functions, Some(&preview), None),
        );
    }
    let rules = match rules_of(&f) {
        Ok(r) => r,
        Err(m) => {
            return h::page(
                StatusCode::BAD_REQUEST,
                rotation_page(
                    &cx,
                    &id,
                    &f,
                    &functions,
                    Some(&preview),
                    Some(h::alert("Not saved:", m)),
                ),
            )
        }
    };
    let body = json!({
        "SecretId": id,
        "RotationLambdaARN": f.get("function").unwrap_or_default(),
        "RotationRules": rules,
        "RotateImmediately": f.get("rotate_immediately").is_some(),
        "ClientRequestToken": token_of(&f),
    });
    match c.call(&cx, "secretsmanager.RotateSecret", &body).await {
        Ok(_) => h::redirect(&format!("{}&msg=rotation-saved", secret_link(&id))),
        Err(e) => h::page(
            e.status,
            rotation_page(&cx, &id, &f, &functions, Some(&preview), Some(e.alert())),
        ),
    }
}

/// The rotation form's live preview: `{"Windows": [...]}` or `{"Error": "..."}` as JSON.
pub(super) async fn preview(State(c): State<Console>, req: Request) -> Response {
    let (cx, f) = match c.get(req) {
        Ok(v) => v,
        Err(_) => {
            return json_answer(
                StatusCode::UNAUTHORIZED,
                &json!({"Error": "Sign in again."}),
            )
        }
    };
    let out = match preview_body(&f) {
        Ok(b) => c
            .call(&cx, "rotary.PreviewSchedule", &b)
            .await
            .map_err(|e| e.message),
        Err(m) => Err(m.to_owned()),
    };
    match out {
        Ok(v) => {
            let windows: Vec<Value> = v
                .get("Windows")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|w| json!({"Start": date(w.get("Start")), "End": date(w.get("End"))}))
                .collect();
            json_answer(StatusCode::OK, &json!({ "Windows": windows }))
        }
        Err(m) => json_answer(StatusCode::OK, &json!({ "Error": m })),
    }
}

fn json_answer(status: StatusCode, v: &Value) -> Response {
    let mut r = Response::new(Body::from(v.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h::secure_headers(r.headers_mut());
    r
}

// ---------------------------------------------------------------------------------------
// Dashboard and functions
// ---------------------------------------------------------------------------------------

const CHECKS: [(&str, &str); 5] = [
    ("RotationFailing", "Rotation failing (being retried)"),
    ("RotationDisabled", "Rotation disabled"),
    ("RotationOverdue", "Rotation overdue"),
    ("LastRotationFailed", "Last rotation failed"),
    (
        "PendingOnNonCurrentVersion",
        "Stuck with AWSPENDING on a non-current version",
    ),
];

pub(super) async fn dashboard(State(c): State<Console>, req: Request) -> Response {
    let (cx, _) = tri!(c.get(req));
    let report = match c.call(&cx, "rotary.GetComplianceReport", &json!({})).await {
        Ok(v) => v,
        Err(e) => return c.fail(&cx, "Dashboard", &e, None),
    };
    // Read from the audit log's rotation-step records; shown to whoever may read the
    // compliance report, which already names every secret and its rotation state.
    let recent = super::audit::recent_rotations(&c).await;
    let secrets = report
        .get("Secrets")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let with = |check: &str| -> Vec<Value> {
        secrets
            .iter()
            .filter(|s| {
                s.get("Findings")
                    .and_then(Value::as_array)
                    .is_some_and(|f| {
                        f.iter()
                            .any(|x| x.get("Check").and_then(Value::as_str) == Some(check))
                    })
            })
            .cloned()
            .collect()
    };
    ok_page(
        &cx,
        "Dashboard",
        html! {
            p {
                (report.get("SecretsChecked").and_then(Value::as_u64).unwrap_or(0)) " secrets checked, "
                (report.get("NonCompliant").and_then(Value::as_u64).unwrap_or(0)) " with findings."
            }
            ul.counts {
                @for (check, title) in CHECKS {
                    li { a href=(format!("#{check}")) { strong { (with(check).len()) } " " (title) } }
                }
            }
            (super::audit::recent_section(&recent))
            @for (check, title) in CHECKS {
                @let list = with(check);
                section aria-labelledby=(check) {
                    h2 id=(check) { (title) " (" (list.len()) ")" }
                    @if list.is_empty() { p { "None." } } @else {
                        ul {
                            @for sec in list.iter().take(100) {
                                li {
                                    a href=(secret_link(s(sec, "Name"))) { (s(sec, "Name")) }
                                    @for fnd in sec.get("Findings").and_then(Value::as_array).cloned().unwrap_or_default() {
                                        @if s(&fnd, "Check") == check { " — " (s(&fnd, "Detail")) }
                                    }
                                }
                            }
                        }
                        @if list.len() > 100 { p { "And " (list.len() - 100) " more." } }
                    }
                }
            }
        },
    )
}

/// Secrets shown per function on the functions page; the rest are counted.
const SECRETS_PER_FUNCTION: usize = 20;

/// The secrets that name each function (by function name) as their rotation function, with
/// whether their scheduled rotation is on, sorted by name.
type SecretsByFunction = std::collections::HashMap<String, Vec<(String, bool)>>;

/// Which secrets rotate with which function. Read from the rotation standings the compliance
/// report is made of (one scan, however many secrets), so it is shown to principals allowed
/// `rotary:GetComplianceReport`, which already names every secret with its rotation state;
/// that authorization is audited like any other.
async fn secrets_by_function(c: &Console, cx: &Cx) -> Result<SecretsByFunction, ApiFail> {
    c.authorize_own(cx, "GetComplianceReport").await?;
    let standings = c
        .app
        .service
        .rotation_standings()
        .await
        .map_err(|e| ApiFail {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: e.code().as_str().to_owned(),
            message: e.message().to_owned(),
        })?;
    let registry = c.app.rotation.registry();
    let mut out = SecretsByFunction::new();
    for st in standings {
        let Some(r) = st.rotation else { continue };
        let Some(name) = r.lambda_arn.as_deref().and_then(|a| registry.name_of(a)) else {
            continue;
        };
        out.entry(name.to_owned())
            .or_default()
            .push((st.name, r.enabled));
    }
    for v in out.values_mut() {
        v.sort();
    }
    Ok(out)
}

pub(super) async fn functions(State(c): State<Console>, req: Request) -> Response {
    let (cx, _) = tri!(c.get(req));
    let v = match c.call(&cx, "rotary.ListFunctions", &json!({})).await {
        Ok(v) => v,
        Err(e) => return c.fail(&cx, "Rotation functions", &e, None),
    };
    let list = v
        .get("Functions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let users = secrets_by_function(&c, &cx).await;
    ok_page(
        &cx,
        "Rotation functions",
        html! {
            @if users.is_err() {
                p.muted { "Which secrets use each function needs permission for rotary:GetComplianceReport; it is not shown." }
            }
            table.list id="functions" {
                thead { tr {
                    th scope="col" { "Name" } th scope="col" { "Kind" } th scope="col" { "Description" }
                    th scope="col" { "Secrets" } th scope="col" { "ARN" }
                } }
                tbody {
                    @for f in &list {
                        @let builtin = f.get("BuiltIn").and_then(Value::as_bool) == Some(true);
                        @let used = users.as_ref().ok().and_then(|u| u.get(s(f, "Name")));
                        tr {
                            td { (s(f, "Name")) }
                            td { @if builtin { "Built-in" } @else { "Registered" } }
                            td {
                                @if builtin { (s(f, "Description")) } @else {
                                    @for key in ["Command", "PythonHandler", "Url", "Builtin"] {
                                        @if let Some(x) = f.get(key).and_then(Value::as_str) { (key) ": " code { (x) } }
                                    }
                                }
                            }
                            td data-secrets {
                                @match used {
                                    None if users.is_ok() => span.muted { "None" },
                                    None => span.muted { "—" },
                                    Some(secrets) => {
                                        ul.plain {
                                            @for (name, enabled) in secrets.iter().take(SECRETS_PER_FUNCTION) {
                                                li {
                                                    a href=(secret_link(name)) { (name) }
                                                    @if !enabled { " " span.muted { "(rotation off)" } }
                                                }
                                            }
                                        }
                                        @if secrets.len() > SECRETS_PER_FUNCTION {
                                            p { "And " (secrets.len() - SECRETS_PER_FUNCTION) " more." }
                                        }
                                    }
                                }
                            }
                            td { code { (s(f, "FunctionArn")) } }
                        }
                    }
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Form {
        Form(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn value_of_rows_builds_json_object() {
        let f = form(&[
            ("kind", "kv"),
            ("key", "user"),
            ("value", "admin"),
            ("key", ""),
            ("value", ""),
            ("key", "password"),
            ("value", "p@ss"),
        ]);
        assert_eq!(
            value_of(&f).unwrap(),
            r#"{"user":"admin","password":"p@ss"}"#
        );
        let dup = form(&[("key", "a"), ("value", "1"), ("key", "a"), ("value", "2")]);
        assert!(value_of(&dup).is_err());
        assert!(value_of(&form(&[("kind", "kv")])).is_err());
        assert_eq!(
            value_of(&form(&[("kind", "plaintext"), ("plaintext", "x y")])).unwrap(),
            "x y"
        );
    }

    #[test]
    fn rules_of_form() {
        assert_eq!(
            rules_of(&form(&[("schedule", "30")])).unwrap(),
            json!({"AutomaticallyAfterDays": 30})
        );
        assert_eq!(
            rules_of(&form(&[
                ("schedule", "expression"),
                ("expression", " cron(0 8 * * ? *) "),
                ("duration", "2h")
            ]))
            .unwrap(),
            json!({"ScheduleExpression": "cron(0 8 * * ? *)", "Duration": "2h"})
        );
        assert!(rules_of(&form(&[("schedule", "expression")])).is_err());
        assert!(rules_of(&form(&[("schedule", "days"), ("days", "x")])).is_err());
    }

    #[test]
    fn rotation_status_of_entries() {
        assert_eq!(rotation_status(&json!({}), 10.0).0, "Disabled");
        assert_eq!(
            rotation_status(
                &json!({"RotationEnabled": true, "NextRotationDate": 20.0}),
                10.0
            )
            .0,
            "Enabled"
        );
        assert_eq!(
            rotation_status(
                &json!({"RotationEnabled": true, "NextRotationDate": 5.0}),
                10.0
            )
            .0,
            "Overdue"
        );
        assert_eq!(
            rotation_status(&json!({"DeletedDate": 1.0}), 10.0).0,
            "Scheduled for deletion"
        );
    }

    /// A listing of `n` entries served in chunks of `size`, with `Failing` on every
    /// `every`-th one; counts the chunks fetched.
    fn listing(n: usize, size: usize) -> impl Fn(Option<String>) -> Result<Chunk, ApiFail> {
        move |token: Option<String>| {
            let from: usize = token.map_or(0, |t| t.parse().unwrap());
            let to = (from + size).min(n);
            Ok(Chunk {
                entries: (from..to).map(|i| json!({ "Name": i })).collect(),
                next: (to < n).then(|| to.to_string()),
            })
        }
    }

    fn run_page(
        n: usize,
        every: usize,
        start: Cursor,
        max_chunks: usize,
        fetched: &std::cell::Cell<usize>,
    ) -> ListPage {
        let list = listing(n, 10);
        let fetch = |t: Option<String>| {
            fetched.set(fetched.get() + 1);
            std::future::ready(list(t))
        };
        let keep = |e: &Value| (e["Name"].as_u64().unwrap() as usize).is_multiple_of(every);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(filtered_page(start, 4, max_chunks, fetch, keep))
            .unwrap_or_else(|_| panic!("fetch failed"))
    }

    fn names(p: &ListPage) -> Vec<u64> {
        p.rows.iter().map(|e| e["Name"].as_u64().unwrap()).collect()
    }

    #[test]
    fn filtered_pages_fill_across_chunks_without_loss_or_repeat() {
        let fetched = std::cell::Cell::new(0);
        // Matches every 7th of 100 entries (0, 7, …, 98): 15 of them, pages of 4.
        let mut all = Vec::new();
        let mut cur = Cursor::default();
        loop {
            let p = run_page(100, 7, cur.clone(), 50, &fetched);
            assert!(!p.partial);
            let got = names(&p);
            match p.next {
                Some(n) => {
                    // Never a short page with a "next" link.
                    assert_eq!(got.len(), 4, "{got:?}");
                    all.extend(got);
                    cur = n;
                }
                None => {
                    all.extend(got);
                    break;
                }
            }
        }
        assert_eq!(all, (0..100).step_by(7).collect::<Vec<u64>>());
    }

    #[test]
    fn filtered_page_stops_at_the_chunk_budget_with_a_continue_cursor() {
        let fetched = std::cell::Cell::new(0);
        // One match in 1000 entries, chunks of 10, at most 3 chunks per page.
        let p = run_page(1000, 500, Cursor::default(), 3, &fetched);
        assert_eq!(names(&p), vec![0]);
        assert!(p.partial);
        assert_eq!(p.scanned, 30);
        assert_eq!(fetched.get(), 3);
        assert_eq!(
            p.next,
            Some(Cursor {
                token: Some("30".into()),
                skip: 0
            })
        );
    }

    #[test]
    fn statuses_show_overdue_and_failing_next_to_enabled() {
        let failing: std::collections::HashSet<String> = ["arn:f".to_owned()].into();
        let e = json!({"ARN": "arn:f", "RotationEnabled": true, "NextRotationDate": 5.0});
        assert_eq!(
            statuses(&e, 10.0, &failing),
            vec![("Enabled", "good"), ("Overdue", "bad"), ("Failing", "bad")]
        );
        assert_eq!(
            statuses(&json!({"ARN": "arn:x"}), 10.0, &failing),
            vec![("Disabled", "muted")]
        );
    }

    #[test]
    fn messages_are_fixed_texts() {
        assert!(message(Some("created")).is_some());
        assert!(message(Some("<script>")).is_none());
    }
}
