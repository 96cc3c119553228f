//! `rotary user …`, `rotary key …`, `rotary group …`: principals and their inline policies,
//! over Rotary's IAM operations (`rotary.CreateUser`, …).
//!
//! The secret access key is printed by `rotary key create` only, once; no other command can
//! show it again.

use std::io::Read;

use anyhow::{bail, Context};
use clap::Subcommand;
use serde_json::{json, Value};

use super::client::Client;

/// `rotary user …`
#[derive(Debug, Subcommand)]
pub(crate) enum UserCommand {
    /// Create a user.
    Create {
        /// User name (1–64 of letters, digits and `_+=,.@-`).
        name: String,
        /// Path, `/` by default (e.g. `/team-a/`); it becomes part of the ARN.
        #[arg(long)]
        path: Option<String>,
        /// Tag KEY=VALUE (repeatable).
        #[arg(long = "tag", value_name = "KEY=VALUE")]
        tags: Vec<String>,
    },
    /// Show a user.
    Get {
        /// User name.
        name: String,
    },
    /// List users.
    List {
        /// Only users whose path starts with this.
        #[arg(long)]
        path_prefix: Option<String>,
    },
    /// Delete a user (it must have no access keys, policies or group memberships).
    Delete {
        /// User name.
        name: String,
    },
    /// Add or replace tags on a user.
    Tag {
        /// User name.
        name: String,
        /// KEY=VALUE pairs.
        #[arg(required = true, value_name = "KEY=VALUE")]
        tags: Vec<String>,
    },
    /// Remove tags from a user.
    Untag {
        /// User name.
        name: String,
        /// Tag keys.
        #[arg(required = true, value_name = "KEY")]
        keys: Vec<String>,
    },
    /// The groups a user belongs to.
    Groups {
        /// User name.
        name: String,
    },
    /// Add or replace an inline policy of a user.
    PutPolicy {
        /// User name.
        user: String,
        /// Policy name.
        policy_name: String,
        /// File holding the IAM JSON policy; `-` reads standard input.
        #[arg(long)]
        document: String,
    },
    /// Print an inline policy of a user.
    GetPolicy {
        /// User name.
        user: String,
        /// Policy name.
        policy_name: String,
    },
    /// Delete an inline policy of a user.
    DeletePolicy {
        /// User name.
        user: String,
        /// Policy name.
        policy_name: String,
    },
    /// Names of a user's inline policies.
    ListPolicies {
        /// User name.
        user: String,
    },
}

/// `rotary key …`
#[derive(Debug, Subcommand)]
pub(crate) enum KeyCommand {
    /// Create an access key for a user (at most two per user). The secret is shown once.
    Create {
        /// User name.
        user: String,
    },
    /// A user's access keys, with status and last use.
    List {
        /// User name.
        user: String,
    },
    /// Make a key unusable (it can be activated again).
    Deactivate {
        /// Access key id.
        key_id: String,
    },
    /// Make an inactive key usable again.
    Activate {
        /// Access key id.
        key_id: String,
    },
    /// Delete a key for good.
    Delete {
        /// Access key id.
        key_id: String,
    },
}

/// `rotary group …`
#[derive(Debug, Subcommand)]
pub(crate) enum GroupCommand {
    /// Create a group.
    Create {
        /// Group name (1–128 of letters, digits and `_+=,.@-`).
        name: String,
        /// Path, `/` by default.
        #[arg(long)]
        path: Option<String>,
    },
    /// Show a group and its members.
    Get {
        /// Group name.
        name: String,
    },
    /// List groups.
    List {
        /// Only groups whose path starts with this.
        #[arg(long)]
        path_prefix: Option<String>,
    },
    /// Delete a group (it must have no members and no policies).
    Delete {
        /// Group name.
        name: String,
    },
    /// Add a user to a group.
    AddUser {
        /// Group name.
        group: String,
        /// User name.
        user: String,
    },
    /// Remove a user from a group.
    RemoveUser {
        /// Group name.
        group: String,
        /// User name.
        user: String,
    },
    /// Add or replace an inline policy of a group.
    PutPolicy {
        /// Group name.
        group: String,
        /// Policy name.
        policy_name: String,
        /// File holding the IAM JSON policy; `-` reads standard input.
        #[arg(long)]
        document: String,
    },
    /// Print an inline policy of a group.
    GetPolicy {
        /// Group name.
        group: String,
        /// Policy name.
        policy_name: String,
    },
    /// Delete an inline policy of a group.
    DeletePolicy {
        /// Group name.
        group: String,
        /// Policy name.
        policy_name: String,
    },
    /// Names of a group's inline policies.
    ListPolicies {
        /// Group name.
        group: String,
    },
}

fn tags(pairs: &[String]) -> anyhow::Result<Value> {
    let mut out = Vec::new();
    for kv in pairs {
        let Some((k, v)) = kv.split_once('=') else {
            bail!("tag {kv:?} must be KEY=VALUE")
        };
        out.push(json!({ "Key": k, "Value": v }));
    }
    Ok(Value::Array(out))
}

fn read_document(path: &str) -> anyhow::Result<String> {
    if path == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading the policy document from standard input")?;
        Ok(s)
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {path}"))
    }
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("-")
}

fn ts(v: &Value) -> String {
    let Some(secs) = v.as_f64() else {
        return "-".into();
    };
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp_nanos((secs * 1e9) as i128) else {
        return secs.to_string();
    };
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z");
    t.format(&fmt).unwrap_or_else(|_| secs.to_string())
}

fn print(out: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(out)?);
    Ok(())
}

fn print_user(u: &Value) {
    println!("UserName: {}", s(&u["UserName"]));
    println!("Arn: {}", s(&u["Arn"]));
    println!("UserId: {}", s(&u["UserId"]));
    println!("Path: {}", s(&u["Path"]));
    println!("CreateDate: {}", ts(&u["CreateDate"]));
    for t in u["Tags"].as_array().into_iter().flatten() {
        println!(
            "Tag: {}={}",
            s(&t["Key"]),
            t["Value"].as_str().unwrap_or("")
        );
    }
}

fn print_names(out: &Value) {
    for n in out["PolicyNames"].as_array().into_iter().flatten() {
        println!("{}", s(n));
    }
}

fn print_groups(out: &Value) {
    for g in out["Groups"].as_array().into_iter().flatten() {
        println!("{:<40} {}", s(&g["GroupName"]), s(&g["Arn"]));
    }
}

/// Runs `rotary user …`.
pub(super) async fn run_user(
    client: &Client,
    json_out: bool,
    cmd: &UserCommand,
) -> anyhow::Result<()> {
    let (target, body) = match cmd {
        UserCommand::Create {
            name,
            path,
            tags: t,
        } => {
            let mut body = json!({ "UserName": name });
            if let Some(p) = path {
                body["Path"] = json!(p);
            }
            if !t.is_empty() {
                body["Tags"] = tags(t)?;
            }
            ("rotary.CreateUser", body)
        }
        UserCommand::Get { name } => ("rotary.GetUser", json!({ "UserName": name })),
        UserCommand::List { path_prefix } => {
            let mut body = json!({});
            if let Some(p) = path_prefix {
                body["PathPrefix"] = json!(p);
            }
            ("rotary.ListUsers", body)
        }
        UserCommand::Delete { name } => ("rotary.DeleteUser", json!({ "UserName": name })),
        UserCommand::Tag { name, tags: t } => (
            "rotary.TagUser",
            json!({ "UserName": name, "Tags": tags(t)? }),
        ),
        UserCommand::Untag { name, keys } => (
            "rotary.UntagUser",
            json!({ "UserName": name, "TagKeys": keys }),
        ),
        UserCommand::Groups { name } => ("rotary.ListGroupsForUser", json!({ "UserName": name })),
        UserCommand::PutPolicy {
            user,
            policy_name,
            document,
        } => (
            "rotary.PutUserPolicy",
            json!({
                "UserName": user,
                "PolicyName": policy_name,
                "PolicyDocument": read_document(document)?,
            }),
        ),
        UserCommand::GetPolicy { user, policy_name } => (
            "rotary.GetUserPolicy",
            json!({ "UserName": user, "PolicyName": policy_name }),
        ),
        UserCommand::DeletePolicy { user, policy_name } => (
            "rotary.DeleteUserPolicy",
            json!({ "UserName": user, "PolicyName": policy_name }),
        ),
        UserCommand::ListPolicies { user } => {
            ("rotary.ListUserPolicies", json!({ "UserName": user }))
        }
    };
    let out = client.call(target, &body).await?;
    if json_out {
        return print(&out);
    }
    match cmd {
        UserCommand::Create { .. } | UserCommand::Get { .. } => print_user(&out["User"]),
        UserCommand::List { .. } => {
            for u in out["Users"].as_array().into_iter().flatten() {
                println!("{:<40} {}", s(&u["UserName"]), s(&u["Arn"]));
            }
        }
        UserCommand::Delete { name } => println!("Deleted user {name}"),
        UserCommand::Tag { name, .. } | UserCommand::Untag { name, .. } => {
            println!("Updated the tags of {name}")
        }
        UserCommand::Groups { .. } => print_groups(&out),
        UserCommand::PutPolicy {
            user, policy_name, ..
        } => println!("Put policy {policy_name} on user {user}"),
        UserCommand::GetPolicy { .. } => println!("{}", s(&out["PolicyDocument"])),
        UserCommand::DeletePolicy { user, policy_name } => {
            println!("Deleted policy {policy_name} of user {user}")
        }
        UserCommand::ListPolicies { .. } => print_names(&out),
    }
    Ok(())
}

/// Runs `rotary key …`.
pub(super) async fn run_key(
    client: &Client,
    json_out: bool,
    cmd: &KeyCommand,
) -> anyhow::Result<()> {
    let update = |id: &str, status: &str| {
        (
            "rotary.UpdateAccessKey",
            json!({ "AccessKeyId": id, "Status": status }),
        )
    };
    let (target, body) = match cmd {
        KeyCommand::Create { user } => ("rotary.CreateAccessKey", json!({ "UserName": user })),
        KeyCommand::List { user } => ("rotary.ListAccessKeys", json!({ "UserName": user })),
        KeyCommand::Deactivate { key_id } => update(key_id, "Inactive"),
        KeyCommand::Activate { key_id } => update(key_id, "Active"),
        KeyCommand::Delete { key_id } => {
            ("rotary.DeleteAccessKey", json!({ "AccessKeyId": key_id }))
        }
    };
    let out = client.call(target, &body).await?;
    match cmd {
        KeyCommand::Create { .. } => {
            let key = &out["AccessKey"];
            if json_out {
                // Exactly the AccessKey object: {"AccessKeyId", "SecretAccessKey", …}.
                return print(key);
            }
            println!("AccessKeyId: {}", s(&key["AccessKeyId"]));
            println!("SecretAccessKey: {}", s(&key["SecretAccessKey"]));
            eprintln!("The secret access key is shown only now; keep it.");
        }
        _ if json_out => print(&out)?,
        KeyCommand::List { .. } => {
            for k in out["AccessKeyMetadata"].as_array().into_iter().flatten() {
                println!(
                    "{:<22} {:<9} created {}  last used {}",
                    s(&k["AccessKeyId"]),
                    s(&k["Status"]),
                    ts(&k["CreateDate"]),
                    if k["LastUsedDate"].is_null() {
                        "never".to_owned()
                    } else {
                        ts(&k["LastUsedDate"])
                    }
                );
            }
        }
        KeyCommand::Deactivate { key_id } => println!("Deactivated {key_id}"),
        KeyCommand::Activate { key_id } => println!("Activated {key_id}"),
        KeyCommand::Delete { key_id } => println!("Deleted {key_id}"),
    }
    Ok(())
}

/// Runs `rotary group …`.
pub(super) async fn run_group(
    client: &Client,
    json_out: bool,
    cmd: &GroupCommand,
) -> anyhow::Result<()> {
    let (target, body) = match cmd {
        GroupCommand::Create { name, path } => {
            let mut body = json!({ "GroupName": name });
            if let Some(p) = path {
                body["Path"] = json!(p);
            }
            ("rotary.CreateGroup", body)
        }
        GroupCommand::Get { name } => ("rotary.GetGroup", json!({ "GroupName": name })),
        GroupCommand::List { path_prefix } => {
            let mut body = json!({});
            if let Some(p) = path_prefix {
                body["PathPrefix"] = json!(p);
            }
            ("rotary.ListGroups", body)
        }
        GroupCommand::Delete { name } => ("rotary.DeleteGroup", json!({ "GroupName": name })),
        GroupCommand::AddUser { group, user } => (
            "rotary.AddUserToGroup",
            json!({ "GroupName": group, "UserName": user }),
        ),
        GroupCommand::RemoveUser { group, user } => (
            "rotary.RemoveUserFromGroup",
            json!({ "GroupName": group, "UserName": user }),
        ),
        GroupCommand::PutPolicy {
            group,
            policy_name,
            document,
        } => (
            "rotary.PutGroupPolicy",
            json!({
                "GroupName": group,
                "PolicyName": policy_name,
                "PolicyDocument": read_document(document)?,
            }),
        ),
        GroupCommand::GetPolicy { group, policy_name } => (
            "rotary.GetGroupPolicy",
            json!({ "GroupName": group, "PolicyName": policy_name }),
        ),
        GroupCommand::DeletePolicy { group, policy_name } => (
            "rotary.DeleteGroupPolicy",
            json!({ "GroupName": group, "PolicyName": policy_name }),
        ),
        GroupCommand::ListPolicies { group } => {
            ("rotary.ListGroupPolicies", json!({ "GroupName": group }))
        }
    };
    let out = client.call(target, &body).await?;
    if json_out {
        return print(&out);
    }
    match cmd {
        GroupCommand::Create { .. } => {
            println!(
                "{} {}",
                s(&out["Group"]["GroupName"]),
                s(&out["Group"]["Arn"])
            )
        }
        GroupCommand::Get { .. } => {
            println!("GroupName: {}", s(&out["Group"]["GroupName"]));
            println!("Arn: {}", s(&out["Group"]["Arn"]));
            println!("CreateDate: {}", ts(&out["Group"]["CreateDate"]));
            for u in out["Users"].as_array().into_iter().flatten() {
                println!("Member: {}", s(&u["UserName"]));
            }
        }
        GroupCommand::List { .. } => print_groups(&out),
        GroupCommand::Delete { name } => println!("Deleted group {name}"),
        GroupCommand::AddUser { group, user } => println!("Added {user} to {group}"),
        GroupCommand::RemoveUser { group, user } => println!("Removed {user} from {group}"),
        GroupCommand::PutPolicy {
            group, policy_name, ..
        } => println!("Put policy {policy_name} on group {group}"),
        GroupCommand::GetPolicy { .. } => println!("{}", s(&out["PolicyDocument"])),
        GroupCommand::DeletePolicy { group, policy_name } => {
            println!("Deleted policy {policy_name} of group {group}")
        }
        GroupCommand::ListPolicies { .. } => print_names(&out),
    }
    Ok(())
}
