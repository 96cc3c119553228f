//! `rotary kms …`: Rotary's named KMS keys, over `rotary.CreateKey`, `rotary.ListKeys`,
//! `rotary.DescribeKey` and `rotary.RotateKey`. Key material is never sent to the client.

use clap::Subcommand;
use rotary_wire::dto::{CreateKeyRequest, KeyIdRequest, KmsOperation};
use serde_json::{json, Value};

use super::client::Client;
use super::commands::{s, ts};

/// `rotary kms …`
#[derive(Debug, Subcommand)]
pub(crate) enum KmsCommand {
    /// Create a key (a random key id; an alias if given).
    CreateKey {
        /// Alias: `alias/NAME` or `NAME` (letters, digits, '/', '_', '-').
        #[arg(long)]
        alias: Option<String>,
        /// What the key is for.
        #[arg(long)]
        description: Option<String>,
    },
    /// List every key with its aliases and current key-material version.
    List,
    /// Show one key: id, ARN, aliases, versions.
    Describe {
        /// Key id, key ARN, alias name (`alias/NAME`) or alias ARN.
        key: String,
    },
    /// Add a key-material version: new values are sealed under it at once, values sealed
    /// before stay readable.
    Rotate {
        /// Key id, key ARN, alias name (`alias/NAME`) or alias ARN.
        key: String,
    },
}

/// Runs `rotary kms …`.
pub(super) async fn run(client: &Client, json_out: bool, cmd: &KmsCommand) -> anyhow::Result<()> {
    let key_id = |key: &String| KeyIdRequest {
        key_id: Some(key.clone()),
    };
    let (op, body) = match cmd {
        KmsCommand::CreateKey { alias, description } => (
            KmsOperation::CreateKey,
            serde_json::to_value(CreateKeyRequest {
                description: description.clone(),
                alias: alias.clone(),
            })?,
        ),
        KmsCommand::List => (KmsOperation::ListKeys, json!({})),
        KmsCommand::Describe { key } => (
            KmsOperation::DescribeKey,
            serde_json::to_value(key_id(key))?,
        ),
        KmsCommand::Rotate { key } => (KmsOperation::RotateKey, serde_json::to_value(key_id(key))?),
    };
    let out = client.call(&op.target(), &body).await?;
    if json_out {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    match cmd {
        KmsCommand::List => {
            let rows: Vec<Vec<String>> = out["Keys"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|k| {
                    vec![
                        s(&k["KeyId"]).to_owned(),
                        aliases(k),
                        k["CurrentKeyVersion"].to_string(),
                        ts(&k["CreationDate"]),
                        k["Description"].as_str().unwrap_or("").to_owned(),
                    ]
                })
                .collect();
            super::secret::table(
                &["KEY ID", "ALIASES", "VERSION", "CREATED", "DESCRIPTION"],
                &rows,
            );
        }
        _ => print_key(&out["KeyMetadata"]),
    }
    Ok(())
}

fn aliases(k: &Value) -> String {
    let a: Vec<&str> = k["Aliases"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if a.is_empty() {
        "-".to_owned()
    } else {
        a.join(", ")
    }
}

fn print_key(k: &Value) {
    println!("KeyId:             {}", s(&k["KeyId"]));
    println!("Arn:               {}", s(&k["Arn"]));
    println!("Aliases:           {}", aliases(k));
    if let Some(d) = k["Description"].as_str() {
        println!("Description:       {d}");
    }
    println!("CreationDate:      {}", ts(&k["CreationDate"]));
    println!("KeyManager:        {}", s(&k["KeyManager"]));
    println!("KeyState:          {}", s(&k["KeyState"]));
    println!("CurrentKeyVersion: {}", k["CurrentKeyVersion"]);
    for v in k["KeyVersions"].as_array().into_iter().flatten() {
        println!(
            "Version {:<10} {}",
            format!("{}:", v["Version"]),
            ts(&v["CreationDate"])
        );
    }
}
