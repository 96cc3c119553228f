//! Users, their access keys, groups and inline policies: each page and action is one or
//! more calls of Rotary's IAM API (`rotary.CreateUser`, `rotary.CreateAccessKey`, …) through
//! the router's pipeline as the signed-in principal, so the same authorization
//! (`rotary:<Op>` on the user's ARN) and audit records apply as for `rotary user` and
//! `rotary key`.
//!
//! A new access key's secret is in the answer to the POST that created it, once: it is never
//! stored by the console, never put in a redirect, and the page is `Cache-Control: no-store`
//! like every console page.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use serde_json::{json, Value};

use super::html::{self as h, date, layout, q, s};
use super::{Console, Cx, Form};

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
                @if f.get("msg") == Some("user-deleted") { (h::notice("User deleted.")) }
                p { "IAM users of this server (see docs/access.md). Each action here is the IAM API call " code { "rotary user" } " and " code { "rotary key" } " make." }
                form.inline method="post" action="/console/users/create" {
                    (h::csrf_field(cx.csrf()))
                    label for="new-user" { "New user name" }
                    input id="new-user" name="name" type="text" required maxlength="64"
                        pattern="[A-Za-z0-9_+=,.@-]+" spellcheck="false" autocapitalize="off";
                    button type="submit" { "Create user" }
                }
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
    render_user(&c, &cx, &name, message(f.get("msg")), None).await
}

/// What an action did, named in the redirect's `msg` (fixed texts only).
fn message(key: Option<&str>) -> Option<&'static str> {
    Some(match key? {
        "key-updated" => "Access key updated.",
        "key-deleted" => "Access key deleted.",
        "user-created" => "User created. Attach a policy and create an access key.",
        "policy-saved" => "Policy saved.",
        "policy-deleted" => "Policy removed.",
        _ => return None,
    })
}

/// A key created just now: its id and secret, shown on this answer only.
struct NewKey {
    id: String,
    secret: String,
}

/// The user page, with a notice and (right after CreateAccessKey) the new key's secret.
async fn render_user(
    c: &Console,
    cx: &Cx,
    name: &str,
    msg: Option<&str>,
    new_key: Option<NewKey>,
) -> Response {
    let name = name.to_owned();
    let who = json!({ "UserName": name });
    let u = match c.call(cx, "rotary.GetUser", &who).await {
        Ok(v) => v.get("User").cloned().unwrap_or(Value::Null),
        Err(e) => return c.fail(cx, &format!("User {name}"), &e, Some("/console/users")),
    };
    let keys = c.call(cx, "rotary.ListAccessKeys", &who).await;
    let groups = c.call(cx, "rotary.ListGroupsForUser", &who).await;
    let policy_names = c.call(cx, "rotary.ListUserPolicies", &who).await;
    let mut policies = Vec::new();
    if let Ok(p) = &policy_names {
        for pn in array(p, "PolicyNames").iter().filter_map(Value::as_str) {
            let doc = c
                .call(
                    cx,
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
    let key_count = keys
        .as_ref()
        .map_or(0, |k| array(k, "AccessKeyMetadata").len());
    h::page(
        StatusCode::OK,
        layout(
            &format!("User {name}"),
            Some(&cx.who()),
            html! {
                @if let Some(m) = msg { (h::notice(m)) }
                @if let Some(k) = &new_key {
                    div.alert.error.newkey role="alert" id="new-key" {
                        strong { "Save this secret access key now." }
                        " It is shown only this once: Rotary keeps it sealed and never shows it again. If it is lost, delete the key and create another."
                        dl.grid {
                            dt { "Access key ID" } dd { code data-new-key-id { (k.id) } }
                            dt { "Secret access key" } dd { code data-new-key-secret { (k.secret) } }
                        }
                    }
                }
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
                                        form.inline method="post" action="/console/user/key/delete" {
                                            (h::csrf_field(cx.csrf()))
                                            input type="hidden" name="name" value=(name);
                                            input type="hidden" name="key" value=(s(&key, "AccessKeyId"));
                                            button.danger type="submit" aria-label=(format!("Delete key {}", s(&key, "AccessKeyId"))) { "Delete" }
                                        }
                                    }
                                }
                            }
                        }
                    },
                }
                @if key_count < crate::iam::ACCESS_KEYS_PER_USER {
                    form.inline method="post" action="/console/user/key/create" {
                        (h::csrf_field(cx.csrf()))
                        input type="hidden" name="name" value=(name);
                        button type="submit" { "Create access key" }
                    }
                } @else {
                    p.muted { "A user has at most " (crate::iam::ACCESS_KEYS_PER_USER) " access keys: delete one to create another." }
                }
                h2 { "Groups" }
                @match &groups {
                    Err(e) => (e.alert()),
                    Ok(g) => {
                        @let list = array(g, "Groups");
                        @if list.is_empty() { p { "In no group." } } @else {
                            ul { @for gr in &list { li { a href=(format!("/console/group?name={}", q(s(gr, "GroupName")))) { (s(gr, "GroupName")) } } } }
                        }
                    }
                }
                h2 { "Inline policies" }
                @if let Err(e) = &policy_names { (e.alert()) }
                @if policies.is_empty() && policy_names.is_ok() { p { "None." } }
                @for (pn, doc) in &policies {
                    h3 { (pn) }
                    @match doc { Ok(d) => pre { (d) }, Err(e) => (e.alert()) }
                    form.inline method="post" action="/console/user/policy/delete" {
                        (h::csrf_field(cx.csrf()))
                        input type="hidden" name="name" value=(name);
                        input type="hidden" name="policy" value=(pn);
                        button.danger type="submit" aria-label=(format!("Detach policy {pn}")) { "Detach" }
                    }
                }
                details {
                    summary { "Attach an inline policy" }
                    form.card method="post" action="/console/user/policy" {
                        (h::csrf_field(cx.csrf()))
                        input type="hidden" name="name" value=(name);
                        label for="policy-name" { "Policy name" }
                        input id="policy-name" name="policy" type="text" required maxlength="128"
                            pattern="[A-Za-z0-9_+=,.@-]+" spellcheck="false";
                        label for="policy-doc" { "Policy document (JSON)" }
                        textarea id="policy-doc" name="document" rows="10" required spellcheck="false" {
                            "{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": [\n    {\"Effect\": \"Allow\", \"Action\": \"secretsmanager:GetSecretValue\", \"Resource\": \"*\"}\n  ]\n}"
                        }
                        small { "Replaces a policy of the same name. Checked by the policy engine when saved." }
                        button type="submit" { "Save policy" }
                    }
                }
                h2 { "Delete user" }
                p { "A user with access keys, inline policies or groups cannot be deleted: remove them first." }
                form.inline method="post" action="/console/user/delete" {
                    (h::csrf_field(cx.csrf()))
                    input type="hidden" name="name" value=(name);
                    button.danger type="submit" { "Delete user" }
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

fn back_to(name: &str) -> String {
    user_link(name)
}

/// A user action: one IAM call with `body` built from the form, then a redirect to the user
/// page with `msg`, or the error with a link back.
async fn user_action(
    c: &Console,
    req: Request,
    target: &str,
    body: impl FnOnce(&str, &Form) -> Value,
    msg: &str,
) -> Response {
    let (cx, f): (_, Form) = match c.post(req).await {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let name = f.get("name").unwrap_or_default().to_owned();
    match c.call(&cx, target, &body(&name, &f)).await {
        Ok(_) => h::redirect(&format!("{}&msg={msg}", user_link(&name))),
        Err(e) => c.fail(&cx, &format!("User {name}"), &e, Some(&back_to(&name))),
    }
}

/// CreateUser.
pub(super) async fn create_user(State(c): State<Console>, req: Request) -> Response {
    user_action(
        &c,
        req,
        "rotary.CreateUser",
        |name, _| json!({ "UserName": name }),
        "user-created",
    )
    .await
}

/// DeleteUser: refused (DeleteConflict) while the user has keys, policies or groups.
pub(super) async fn delete_user(State(c): State<Console>, req: Request) -> Response {
    let (cx, f): (_, Form) = match c.post(req).await {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let name = f.get("name").unwrap_or_default().to_owned();
    match c
        .call(&cx, "rotary.DeleteUser", &json!({ "UserName": name }))
        .await
    {
        Ok(_) => h::redirect("/console/users?msg=user-deleted"),
        Err(e) => c.fail(&cx, &format!("User {name}"), &e, Some(&back_to(&name))),
    }
}

/// CreateAccessKey: the answer is the user page with the new secret shown once.
pub(super) async fn create_key(State(c): State<Console>, req: Request) -> Response {
    let (cx, f): (_, Form) = match c.post(req).await {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let name = f.get("name").unwrap_or_default().to_owned();
    match c
        .call(&cx, "rotary.CreateAccessKey", &json!({ "UserName": name }))
        .await
    {
        Ok(v) => {
            let k = v.get("AccessKey").cloned().unwrap_or(Value::Null);
            let new_key = NewKey {
                id: s(&k, "AccessKeyId").to_owned(),
                secret: s(&k, "SecretAccessKey").to_owned(),
            };
            render_user(&c, &cx, &name, Some("Access key created."), Some(new_key)).await
        }
        Err(e) => c.fail(&cx, &format!("User {name}"), &e, Some(&back_to(&name))),
    }
}

/// DeleteAccessKey. Sessions signed in with the key end at their next request.
pub(super) async fn delete_key(State(c): State<Console>, req: Request) -> Response {
    user_action(
        &c,
        req,
        "rotary.DeleteAccessKey",
        |name, f| json!({ "UserName": name, "AccessKeyId": f.get("key").unwrap_or_default() }),
        "key-deleted",
    )
    .await
}

/// PutUserPolicy: attaches (or replaces) an inline policy.
pub(super) async fn put_policy(State(c): State<Console>, req: Request) -> Response {
    user_action(
        &c,
        req,
        "rotary.PutUserPolicy",
        |name, f| {
            json!({
                "UserName": name,
                "PolicyName": f.text("policy").unwrap_or_default(),
                "PolicyDocument": f.get("document").unwrap_or_default(),
            })
        },
        "policy-saved",
    )
    .await
}

/// DeleteUserPolicy: detaches an inline policy.
pub(super) async fn delete_policy(State(c): State<Console>, req: Request) -> Response {
    user_action(
        &c,
        req,
        "rotary.DeleteUserPolicy",
        |name, f| json!({ "UserName": name, "PolicyName": f.get("policy").unwrap_or_default() }),
        "policy-deleted",
    )
    .await
}
