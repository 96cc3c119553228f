//! `rotary rotation reset SECRET`: the way out of a failed rotation.
//!
//! A failed rotation leaves AWSPENDING on its version, and while it is there RotateSecret
//! re-drives that rotation ("A previous rotation isn't complete") instead of starting one
//! with a fixed function, and CancelRotateSecret leaves it in place. Removing AWSPENDING
//! (UpdateSecretVersionStage, as one would by hand) ends it: the engine abandons the attempt
//! at its next step, AWSCURRENT is untouched, and the next RotateSecret starts afresh.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{bail, Context};
use rotary_wire::rotary_api::{RotaryOperation, RotationHistoryRequest};
use serde_json::{json, Value};

use super::client::Client;
use super::commands::{s, ts};

const AWSPENDING: &str = "AWSPENDING";
const AWSCURRENT: &str = "AWSCURRENT";

fn has(v: &Value, label: &str) -> bool {
    v["VersionStages"]
        .as_array()
        .is_some_and(|a| a.iter().any(|l| l.as_str() == Some(label)))
}

/// Shows which version holds AWSPENDING and the last attempt, asks (unless `yes`), and
/// removes the label.
pub(super) async fn run(
    client: &Client,
    json_out: bool,
    secret: &str,
    yes: bool,
) -> anyhow::Result<()> {
    let ctx = || format!("secret {secret}");
    let versions = client
        .call(
            "secretsmanager.ListSecretVersionIds",
            &json!({ "SecretId": secret, "IncludeDeprecated": true, "MaxResults": 100 }),
        )
        .await
        .with_context(ctx)?;
    let list: Vec<&Value> = versions["Versions"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let name = s(&versions["Name"]).to_owned();
    let Some(pending) = list.iter().find(|v| has(v, AWSPENDING)) else {
        if json_out {
            println!("{}", json!({ "Name": name, "Reset": false }));
        } else {
            println!("No version of {name} holds AWSPENDING: there is no rotation to reset.");
        }
        return Ok(());
    };
    let pending_id = s(&pending["VersionId"]).to_owned();
    let current = list
        .iter()
        .find(|v| has(v, AWSCURRENT))
        .map(|v| s(&v["VersionId"]).to_owned());
    let history = client
        .call(
            &RotaryOperation::GetRotationHistory.target(),
            &serde_json::to_value(RotationHistoryRequest {
                secret_id: Some(secret.to_owned()),
                max_results: Some(1),
            })?,
        )
        .await
        .with_context(ctx)?;
    let last = &history["Rotations"][0];
    if !json_out {
        println!("Secret:      {name}");
        println!(
            "AWSPENDING:  version {pending_id} (created {})",
            ts(&pending["CreatedDate"])
        );
        println!("AWSCURRENT:  version {}", current.as_deref().unwrap_or("-"));
        if last.is_object() {
            println!(
                "Last attempt: {} (attempt {}, started {}){}",
                s(&last["Outcome"]),
                last["Attempt"],
                ts(&last["StartedAt"]),
                last["Error"]
                    .as_str()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            );
        }
        if current.as_deref() == Some(pending_id.as_str()) {
            println!("AWSPENDING is on the current version: removing it changes no value.");
        }
        println!(
            "This removes AWSPENDING from version {pending_id}: the rotation in progress is \
             abandoned, AWSCURRENT stays where it is, and the next `rotary secret rotate` \
             starts a new rotation."
        );
    }
    if !yes {
        if !std::io::stdin().is_terminal() {
            bail!("standard input is not a terminal: pass --yes to reset without asking");
        }
        print!("Remove AWSPENDING from version {pending_id}? [y/N] ");
        std::io::stdout().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
            println!("Nothing changed.");
            return Ok(());
        }
    }
    client
        .call(
            "secretsmanager.UpdateSecretVersionStage",
            &json!({
                "SecretId": secret,
                "VersionStage": AWSPENDING,
                "RemoveFromVersionId": pending_id,
            }),
        )
        .await
        .with_context(ctx)?;
    if json_out {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({ "Name": name, "Reset": true, "VersionId": pending_id })
            )?
        );
    } else {
        println!("Removed AWSPENDING from version {pending_id} of {name}.");
    }
    Ok(())
}
