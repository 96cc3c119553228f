//! Users, their access keys, groups and inline policies (the IAM API), read-only apart from
//! activating and deactivating a key.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use serde_json::{json, Value};

use super::html::{self as h, date, layout, q, s};
use super::{Console, Form};

/// Users per page.
const PAGE_SIZE: i64 = 50;

fn user_link(name: &str) -> String {
    format!("/console/user?name={}", q(name))
}

fn array(v: &Value, key: &str) -> Vec<Value> {
    v.get(key)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

pub(super) async fn users(State(c): State<Console>, req: Request) -> Response {
    let (cx, f) = match c.get(req) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let mut body = json!({ "MaxItems": PAGE_SIZE });
    if let Some(m) = f.text("marker") {
        body["Marker"] = json!(m);
    }
    let v = match c.call(&cx, "rotary.ListUsers", &body).await {
        Ok(v) => v,
        Err(e) => return c.fail(&cx, "Users", &e, None),
    };
    let users = array(&v, "Users");
    let next = v
        .get("Marker")
        .and_then(Value::as_str)
        .filter(|_| v.get("IsTruncated").and_then(Value::as_bool) == Some(true));
    h::page(
        StatusCode::OK,
        layout(
            "Users",
            Some(&cx.who()),
            html! {
                p { "IAM users of this server. Create users and keys with " code { "rotary user" } " and " code { "rotary key" } " (see docs/access.md)." }
                table.list id="users" {
                    thead { tr { th scope="col" { "User name" } th scope="col" { "ARN" } th scope="col" { "Created" } } }
                    tbody {
                        @for u in &users {
                            tr {
                                td { a href=(user_link(s(u, "UserName"))) { (s(u, "UserName")) } }
                                td { code { (s(u, "Arn")) } }
                                td { (date(u.get("CreateDate"))) }
                            }
                        }
                        @if users.is_empty() { tr { td colspan="3" { "No users." } } }
                    }
                }
                @if let Some(m) = next {
                    nav.pages aria-label="Pages" { a rel="next" href=(format!("/console/users?marker={}", q(m))) { "Next page" } }
                }
            },
        ),
    )
}

pub(super) async fn user(State(c): State<Console>, req: Request) -> Response {
    let (cx, f) = match c.get(req) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let name = f.get("name").unwrap_or_default().to_owned();
    let who = json!({ "UserName": name });
    let u = match c.call(&cx, "rotary.GetUser", &who).await {
        Ok(v) => v.get("User").cloned().unwrap_or(Value::Null),
        Err(e) => return c.fail(&cx, &format!("User {name}"), &e, Some("/console/users")),
    };
    let keys = c.call(&cx, "rotary.ListAccessKeys", &who).await;
    let groups = c.call(&cx, "rotary.ListGroupsForUser", &who).await;
    let policy_names = c.call(&cx, "rotary.ListUserPolicies", &who).await;
    let mut policies = Vec::new();
    if let Ok(p) = &policy_names {
        for pn in array(p, "PolicyNames").iter().filter_map(Value::as_str) {
            let doc = c
                .call(
                    &cx,
                    "rotary.GetUserPolicy",
                    &json!({ "UserName": name, "PolicyName": pn }),
                )
                .await
                .map(|v| {
                    let text = s(&v, "PolicyDocument");
                    serde_json::from_str::<Value>(text)
                        .ok()
                        .and_then(|j| serde_json::to_string_pretty(&j).ok())
                        .unwrap_or_else(|| text.to_owned())
                });
            policies.push((pn.to_owned(), doc));
        }
    }
    let msg = match f.get("msg") {
        Some("key-updated") => Some("Access key updated."),
        _ => None,
    };
    h::page(
        StatusCode::OK,
        layout(
            &format!("User {name}"),
            Some(&cx.who()),
            html! {
                @if let Some(m) = msg { (h::notice(m)) }
                dl.grid {
                    dt { "ARN" } dd { code { (s(&u, "Arn")) } }
                    dt { "Created" } dd { (date(u.get("CreateDate"))) }
                }
                h2 { "Access keys" }
                @match &keys {
                    Err(e) => (e.alert()),
                    Ok(k) => table id="keys" {
                        thead { tr { th scope="col" { "Access key ID" } th scope="col" { "Status" } th scope="col" { "Created" } th scope="col" { "Last used" } th scope="col" { span.visually-hidden { "Actions" } } } }
                        tbody {
                            @for key in array(k, "AccessKeyMetadata") {
                                @let active = s(&key, "Status") == "Active";
                                tr {
                                    td { code { (s(&key, "AccessKeyId")) } }
                                    td { span.(if active { "good" } else { "muted" }) { (s(&key, "Status")) } }
                                    td { (date(key.get("CreateDate"))) }
                                    td { (date(key.get("LastUsedDate"))) }
                                    td {
                                        form.inline method="post" action="/console/user/key" {
                                            (h::csrf_field(cx.csrf()))
                                            input type="hidden" name="name" value=(name);
                                            input type="hidden" name="key" value=(s(&key, "AccessKeyId"));
                                            input type="hidden" name="status" value=(if active { "Inactive" } else { "Active" });
                                            button type="submit" { (if active { "Deactivate" } else { "Activate" }) }
                                        }
                                    }
                                }
                            }
                        }
                    },
                }
                h2 { "Groups" }
                @match &groups {
                    Err(e) => (e.alert()),
                    Ok(g) => {
                        @let list = array(g, "Groups");
                        @if list.is_empty() { p { "In no group." } } @else {
                            ul { @for gr in &list { li { (s(gr, "GroupName")) } } }
                        }
                    }
                }
                h2 { "Inline policies" }
                @if let Err(e) = &policy_names { (e.alert()) }
                @if policies.is_empty() && policy_names.is_ok() { p { "None." } }
                @for (pn, doc) in &policies {
                    h3 { (pn) }
                    @match doc { Ok(d) => pre { (d) }, Err(e) => (e.alert()) }
                }
            },
        ),
    )
}

/// Activates or deactivates a key (UpdateAccessKey). A deactivated key's console sessions end
/// at their next request.
pub(super) async fn update_key(State(c): State<Console>, req: Request) -> Response {
    let (cx, f): (_, Form) = match c.post(req).await {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let name = f.get("name").unwrap_or_default().to_owned();
    let status = if f.get("status") == Some("Active") {
        "Active"
    } else {
        "Inactive"
    };
    let body = json!({
        "UserName": name,
        "AccessKeyId": f.get("key").unwrap_or_default(),
        "Status": status,
    });
    match c.call(&cx, "rotary.UpdateAccessKey", &body).await {
        Ok(_) => h::redirect(&format!("{}&msg=key-updated", user_link(&name))),
        Err(e) => c.fail(&cx, &format!("User {name}"), &e, Some(&user_link(&name))),
    }
}
