//! IAM groups, read-only: the list, and each group's members and inline policies. Each page
//! is calls of Rotary's IAM API (`rotary.ListGroups`, `rotary.GetGroup`,
//! `rotary.ListGroupPolicies`, `rotary.GetGroupPolicy`) as the signed-in principal, with the
//! same authorization and audit records as `rotary group`. Groups and memberships are
//! changed with the CLI or the API.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use serde_json::{json, Value};

use super::html::{self as h, date, layout, q, s};
use super::{Console, Form};

/// Groups per page.
const PAGE_SIZE: i64 = 50;

fn group_link(name: &str) -> String {
    format!("/console/group?name={}", q(name))
}

fn user_link(name: &str) -> String {
    format!("/console/user?name={}", q(name))
}

fn array(v: &Value, key: &str) -> Vec<Value> {
    v.get(key)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// `GET /console/groups`: every group, a page of ListGroups at a time.
pub(super) async fn groups(State(c): State<Console>, req: Request) -> Response {
    let (cx, f): (_, Form) = match c.get(req) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let mut body = json!({ "MaxItems": PAGE_SIZE });
    if let Some(m) = f.text("marker") {
        body["Marker"] = json!(m);
    }
    let v = match c.call(&cx, "rotary.ListGroups", &body).await {
        Ok(v) => v,
        Err(e) => return c.fail(&cx, "Groups", &e, None),
    };
    let groups = array(&v, "Groups");
    let next = v
        .get("Marker")
        .and_then(Value::as_str)
        .filter(|_| v.get("IsTruncated").and_then(Value::as_bool) == Some(true));
    h::page(
        StatusCode::OK,
        layout(
            "Groups",
            Some(&cx.who()),
            html! {
                p { "IAM groups of this server (see docs/access.md): a group's policies apply to each of its members. Groups and their members are managed with " code { "rotary group" } " or the IAM API." }
                table.list id="groups" {
                    thead { tr { th scope="col" { "Group name" } th scope="col" { "ARN" } th scope="col" { "Created" } } }
                    tbody {
                        @for g in &groups {
                            tr {
                                td { a href=(group_link(s(g, "GroupName"))) { (s(g, "GroupName")) } }
                                td { code { (s(g, "Arn")) } }
                                td { (date(g.get("CreateDate"))) }
                            }
                        }
                        @if groups.is_empty() { tr { td colspan="3" { "No groups." } } }
                    }
                }
                @if let Some(m) = next {
                    nav.pages aria-label="Pages" { a rel="next" href=(format!("/console/groups?marker={}", q(m))) { "Next page" } }
                }
            },
        ),
    )
}

/// `GET /console/group?name=G`: the group, its members and its inline policies.
pub(super) async fn group(State(c): State<Console>, req: Request) -> Response {
    let (cx, f): (_, Form) = match c.get(req) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let name = f.get("name").unwrap_or_default().to_owned();
    let title = format!("Group {name}");
    let who = json!({ "GroupName": name });
    let v = match c.call(&cx, "rotary.GetGroup", &who).await {
        Ok(v) => v,
        Err(e) => return c.fail(&cx, &title, &e, Some("/console/groups")),
    };
    let g = v.get("Group").cloned().unwrap_or(Value::Null);
    let members = array(&v, "Users");
    let policy_names = c.call(&cx, "rotary.ListGroupPolicies", &who).await;
    let mut policies = Vec::new();
    if let Ok(p) = &policy_names {
        for pn in array(p, "PolicyNames").iter().filter_map(Value::as_str) {
            let doc = c
                .call(
                    &cx,
                    "rotary.GetGroupPolicy",
                    &json!({ "GroupName": name, "PolicyName": pn }),
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
    h::page(
        StatusCode::OK,
        layout(
            &title,
            Some(&cx.who()),
            html! {
                p { a href="/console/groups" { "All groups" } }
                dl.grid {
                    dt { "ARN" } dd { code { (s(&g, "Arn")) } }
                    dt { "Created" } dd { (date(g.get("CreateDate"))) }
                }
                h2 { "Members (" (members.len()) ")" }
                @if members.is_empty() { p { "No members." } } @else {
                    table id="members" {
                        thead { tr { th scope="col" { "User name" } th scope="col" { "ARN" } } }
                        tbody {
                            @for u in &members {
                                tr {
                                    td { a href=(user_link(s(u, "UserName"))) { (s(u, "UserName")) } }
                                    td { code { (s(u, "Arn")) } }
                                }
                            }
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
