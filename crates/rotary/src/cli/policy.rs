//! `rotary policy simulate`: what the policies decide for a user, without running anything.

use std::collections::BTreeMap;

use anyhow::bail;
use clap::Subcommand;
use serde_json::{json, Value};

use super::client::Client;

/// Policy commands.
#[derive(Debug, Subcommand)]
pub(crate) enum PolicyCommand {
    /// Whether USER may perform ACTION on RESOURCE, and the statement that decides.
    Simulate {
        /// The user (name).
        #[arg(long)]
        principal: String,
        /// The action, e.g. secretsmanager:GetSecretValue or rotary:CreateUser.
        #[arg(long)]
        action: String,
        /// The resource ARN (a secret's ARN), or `*`.
        #[arg(long, default_value = "*")]
        resource: String,
        /// An extra condition key, KEY=VALUE (repeatable; repeat a key for several values),
        /// e.g. aws:SourceIp=10.1.2.3 or aws:RequestTag/team=db.
        #[arg(long = "context", value_name = "KEY=VALUE")]
        context: Vec<String>,
    },
}

/// Runs a policy command; exit code 1 on an API error is decided by the caller. A denied
/// simulation is not an error: it prints the decision and exits 0.
pub(super) async fn run(
    client: &Client,
    json_out: bool,
    cmd: &PolicyCommand,
) -> anyhow::Result<()> {
    let PolicyCommand::Simulate {
        principal,
        action,
        resource,
        context,
    } = cmd;
    let mut keys: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for kv in context {
        let Some((k, v)) = kv.split_once('=') else {
            bail!("--context {kv:?} must be KEY=VALUE");
        };
        keys.entry(k.to_owned()).or_default().push(v.to_owned());
    }
    let out = client
        .call(
            "rotary.SimulatePolicy",
            &json!({
                "PrincipalName": principal,
                "Action": action,
                "Resource": resource,
                "Context": keys,
            }),
        )
        .await?;
    if json_out {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    println!("{}", s(&out["Decision"]));
    if let Some(st) = out.get("MatchedStatement").and_then(Value::as_str) {
        println!("  decided by: {st}");
    }
    if let Some(m) = out.get("Message").and_then(Value::as_str) {
        println!("  {m}");
    }
    Ok(())
}
