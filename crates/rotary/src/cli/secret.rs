//! `rotary secret …`: the Secrets Manager operations on one secret, for people at a shell.
//!
//! Values are read from standard input or a file (`--value-file`), so they stay out of shell
//! history; `--value` exists for throwaway values. A value is never part of an error message:
//! errors name the secret and carry the server's code and message only.
//!
//! `rotary secret get NAME` prints the bare value (SecretBinary as raw bytes), with a newline
//! only when standard output is a terminal, so `$(rotary secret get …)` and `> file` keep
//! the value exactly.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context};
use base64::Engine as _;
use clap::{Args, Subcommand};
use rotary_wire::rotary_api::{FunctionNameRequest, RotaryOperation, RotationHistoryRequest};
use serde_json::{json, Value};
use zeroize::Zeroizing;

use super::client::{ApiFailure, Client};
use super::commands::{s, ts};

/// The stored value does not fit what was asked (`--json-key` on a value that is not a JSON
/// object, or lacks the member): exit 1 like a server error, not 2 like a bad flag. Never
/// holds the value.
#[derive(Debug)]
pub(super) struct ValueMismatch(String);

impl std::fmt::Display for ValueMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ValueMismatch {}

/// Where a value comes from.
#[derive(Debug, Clone, Args)]
pub(crate) struct ValueArgs {
    /// The value itself; `-` reads standard input. A value on the command line lands in shell
    /// history and `ps`: prefer --value-file or standard input.
    #[arg(long, conflicts_with = "value_file")]
    pub value: Option<String>,
    /// A file holding the value; `-` reads standard input. One trailing newline is dropped
    /// from a text value.
    #[arg(long, value_name = "PATH")]
    pub value_file: Option<PathBuf>,
    /// Store the bytes as SecretBinary instead of SecretString.
    #[arg(long)]
    pub binary: bool,
}

/// `rotary secret …`
#[derive(Debug, Subcommand)]
pub(crate) enum SecretCommand {
    /// Create a secret; the value comes from --value-file, --value, or standard input.
    Create {
        /// Secret name (e.g. prod/db).
        name: String,
        #[command(flatten)]
        value: ValueArgs,
        /// Description.
        #[arg(long)]
        description: Option<String>,
        /// KMS key id or alias that encrypts the value [default: alias/aws/secretsmanager].
        #[arg(long)]
        kms_key_id: Option<String>,
        /// Tag KEY=VALUE (repeatable).
        #[arg(long = "tag", value_name = "KEY=VALUE")]
        tags: Vec<String>,
    },
    /// Print the value (AWSCURRENT unless --version-id or --version-stage).
    Get {
        /// Secret name or ARN.
        name: String,
        /// Print only this member of a JSON object value (e.g. password).
        #[arg(long)]
        json_key: Option<String>,
        /// A version id.
        #[arg(long)]
        version_id: Option<String>,
        /// A staging label (e.g. AWSPREVIOUS).
        #[arg(long)]
        version_stage: Option<String>,
    },
    /// Store a new value; it becomes AWSCURRENT unless --version-stage says otherwise.
    Put {
        /// Secret name or ARN.
        name: String,
        #[command(flatten)]
        value: ValueArgs,
        /// Staging label for the new version (repeatable) [default: AWSCURRENT].
        #[arg(long = "version-stage", value_name = "LABEL")]
        version_stages: Vec<String>,
    },
    /// Change the description or KMS key, and with --value/--value-file the value.
    Update {
        /// Secret name or ARN.
        name: String,
        #[command(flatten)]
        value: ValueArgs,
        /// New description.
        #[arg(long)]
        description: Option<String>,
        /// New KMS key id or alias (for values written from now on).
        #[arg(long)]
        kms_key_id: Option<String>,
    },
    /// Show a secret's metadata, rotation configuration and versions (never the value).
    Describe {
        /// Secret name or ARN.
        name: String,
    },
    /// List secrets, one line each.
    List {
        /// Filter KEY=VALUE, KEY one of name, description, tag-key, tag-value,
        /// primary-region, owning-service or all (repeatable; a value starting with `!`
        /// negates).
        #[arg(long = "filter", value_name = "KEY=VALUE")]
        filters: Vec<String>,
        /// Include secrets scheduled for deletion.
        #[arg(long)]
        include_planned_deletion: bool,
    },
    /// Delete a secret after a recovery window (7–30 days, 30 by default), or at once.
    Delete {
        /// Secret name or ARN.
        name: String,
        /// Days before the secret is removed for good.
        #[arg(long, conflicts_with = "force_delete_without_recovery")]
        recovery_window_in_days: Option<i64>,
        /// Remove it now, with no way back.
        #[arg(long)]
        force_delete_without_recovery: bool,
    },
    /// Cancel a scheduled deletion.
    Restore {
        /// Secret name or ARN.
        name: String,
    },
    /// Configure rotation and rotate now (or, with no flags, rotate now with the stored
    /// configuration).
    Rotate {
        /// Secret name or ARN.
        name: String,
        /// Rotation function: a name (built-in or registered) or its ARN.
        #[arg(long)]
        function: Option<String>,
        /// Schedule: `rate(…)` or `cron(…)`.
        #[arg(long, conflicts_with = "after_days")]
        schedule: Option<String>,
        /// Schedule: every N days.
        #[arg(long)]
        after_days: Option<i64>,
        /// Window length, e.g. 2h.
        #[arg(long)]
        duration: Option<String>,
        /// Only check the configuration (testSecret on a copy) instead of rotating now.
        #[arg(long)]
        no_rotate_immediately: bool,
    },
    /// Turn scheduled rotation off (the function and schedule are kept).
    CancelRotation {
        /// Secret name or ARN.
        name: String,
    },
    /// The versions of a secret and their staging labels.
    Versions {
        /// Secret name or ARN.
        name: String,
        /// Include versions without a staging label.
        #[arg(long)]
        include_deprecated: bool,
    },
    /// Add or replace tags.
    Tag {
        /// Secret name or ARN.
        name: String,
        /// KEY=VALUE pairs.
        #[arg(required = true, value_name = "KEY=VALUE")]
        tags: Vec<String>,
    },
    /// Remove tags.
    Untag {
        /// Secret name or ARN.
        name: String,
        /// Tag keys.
        #[arg(required = true, value_name = "KEY")]
        keys: Vec<String>,
    },
    /// Rotation attempts of the secret, newest first, with each step's outcome and output.
    History {
        /// Secret name or ARN.
        name: String,
        /// How many attempts [default: 50].
        #[arg(long)]
        max_results: Option<i64>,
    },
}

/// A value read from the user, wiped from memory when dropped.
struct ReadValue {
    bytes: Zeroizing<Vec<u8>>,
    binary: bool,
}

impl ReadValue {
    /// The request members that carry it: SecretString or SecretBinary.
    fn put_into(&self, body: &mut Value) -> anyhow::Result<()> {
        if self.binary {
            body["SecretBinary"] =
                json!(base64::engine::general_purpose::STANDARD.encode(&*self.bytes));
        } else {
            let text = std::str::from_utf8(&self.bytes)
                .map_err(|_| anyhow!("the value is not UTF-8 text: store it with --binary"))?;
            let text = text
                .strip_suffix("\r\n")
                .or_else(|| text.strip_suffix('\n'))
                .unwrap_or(text);
            body["SecretString"] = json!(text);
        }
        Ok(())
    }
}

fn read_stdin() -> anyhow::Result<Zeroizing<Vec<u8>>> {
    let mut buf = Zeroizing::new(Vec::new());
    std::io::stdin()
        .read_to_end(&mut buf)
        .context("reading the value from standard input")?;
    Ok(buf)
}

/// Reads the value. `implicit_stdin`: with no flag, read standard input when it is not a
/// terminal (create, put); update reads it only when asked with `-`, so a script's open
/// standard input never blocks it.
fn read_value(args: &ValueArgs, implicit_stdin: bool) -> anyhow::Result<Option<ReadValue>> {
    let bytes = match (&args.value, &args.value_file) {
        (Some(v), _) if v == "-" => read_stdin()?,
        (Some(v), _) => Zeroizing::new(v.as_bytes().to_vec()),
        (None, Some(p)) if p.as_os_str() == "-" => read_stdin()?,
        (None, Some(p)) => Zeroizing::new(
            std::fs::read(p).with_context(|| format!("reading --value-file {}", p.display()))?,
        ),
        (None, None) if implicit_stdin && !std::io::stdin().is_terminal() => {
            let b = read_stdin()?;
            if b.is_empty() {
                return Ok(None);
            }
            b
        }
        (None, None) => return Ok(None),
    };
    Ok(Some(ReadValue {
        bytes,
        binary: args.binary,
    }))
}

/// A fresh ClientRequestToken (a random UUID, as the AWS SDKs send).
pub(super) fn new_token() -> String {
    let b: [u8; 16] = rand::random();
    let h = hex::encode(b);
    format!(
        "{}-{}-4{}-{:x}{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        (b[8] & 0x3) | 0x8,
        &h[17..20],
        &h[20..32]
    )
}

fn parse_tags(tags: &[String]) -> anyhow::Result<Vec<Value>> {
    tags.iter()
        .map(|kv| {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| anyhow!("tag {kv:?} must be KEY=VALUE"))?;
            Ok(json!({ "Key": k, "Value": v }))
        })
        .collect()
}

/// Prints rows under a header, columns padded to their widest cell.
pub(super) fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut out = String::new();
        let cells: Vec<&str> = cells.collect();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  ", w = width[i]));
            }
        }
        println!("{}", out.trim_end());
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
}

fn print_json(v: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Calls an operation on secret `name`; errors name the secret.
async fn call(client: &Client, op: &str, name: &str, body: Value) -> anyhow::Result<Value> {
    client
        .call(&format!("secretsmanager.{op}"), &body)
        .await
        .with_context(|| format!("secret {name}"))
}

/// Every page of a paginated call, the list members appended.
async fn all_pages(
    client: &Client,
    op: &str,
    name: &str,
    mut body: Value,
    member: &str,
) -> anyhow::Result<Value> {
    let mut first: Option<Value> = None;
    loop {
        let mut page = call(client, op, name, body.clone()).await?;
        let next = page
            .get("NextToken")
            .and_then(Value::as_str)
            .map(str::to_owned);
        match &mut first {
            None => first = Some(page),
            Some(f) => {
                let more = page[member]
                    .as_array_mut()
                    .map(std::mem::take)
                    .unwrap_or_default();
                if let Some(list) = f[member].as_array_mut() {
                    list.extend(more);
                }
            }
        }
        match next {
            Some(t) => body["NextToken"] = json!(t),
            None => break,
        }
    }
    let mut out = first.unwrap_or_else(|| json!({}));
    if let Some(o) = out.as_object_mut() {
        o.remove("NextToken");
    }
    Ok(out)
}

fn rotation_schedule(rules: &Value) -> String {
    let mut out = match (
        rules["ScheduleExpression"].as_str(),
        rules["AutomaticallyAfterDays"].as_i64(),
    ) {
        (Some(e), _) => e.to_owned(),
        (None, Some(d)) => format!("every {d} days"),
        (None, None) => return "-".into(),
    };
    if let Some(d) = rules["Duration"].as_str() {
        out.push_str(&format!(", window {d}"));
    }
    out
}

fn stages(v: &Value) -> String {
    let labels: Vec<&str> = v
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if labels.is_empty() {
        "-".into()
    } else {
        labels.join(",")
    }
}

/// Prints a GetRotationHistory answer: one row per attempt, its steps with their output
/// beneath, and when a failed attempt will be tried again.
pub(super) fn print_history(out: &Value) {
    println!("{} ({})", s(&out["Name"]), s(&out["ARN"]));
    let attempts: Vec<&Value> = out["Rotations"].as_array().into_iter().flatten().collect();
    if attempts.is_empty() {
        println!("No rotation attempts.");
        return;
    }
    println!(
        "{:<20}  {:<9}  {:<7}  {:<8}  TOKEN",
        "STARTED", "OUTCOME", "ATTEMPT", "TRIGGER"
    );
    for r in attempts {
        let mut flags = String::new();
        if r["Late"].as_bool() == Some(true) {
            flags.push_str("  late");
        }
        if r["TestOnly"].as_bool() == Some(true) {
            flags.push_str("  test-only");
        }
        println!(
            "{:<20}  {:<9}  {:<7}  {:<8}  {}{flags}",
            ts(&r["StartedAt"]),
            s(&r["Outcome"]),
            r["Attempt"].to_string(),
            s(&r["Trigger"]),
            s(&r["Token"])
        );
        for st in r["Steps"].as_array().into_iter().flatten() {
            println!(
                "    {:<13} {:<9} {}",
                s(&st["Step"]),
                st["Outcome"].as_str().unwrap_or("running"),
                st["Error"].as_str().unwrap_or("")
            );
            if let Some(output) = st["Output"].as_str().filter(|o| !o.trim().is_empty()) {
                for l in output.trim_end().lines() {
                    println!("        | {l}");
                }
            }
        }
        if let Some(e) = r["Error"].as_str() {
            println!("    error: {e}");
        }
        if r["NextAttemptAt"].is_number() {
            println!("    next attempt: {}", ts(&r["NextAttemptAt"]));
        }
    }
}

fn print_describe(d: &Value) {
    let mut rows: Vec<(&str, String)> = vec![
        ("Name", s(&d["Name"]).to_owned()),
        ("ARN", s(&d["ARN"]).to_owned()),
        ("Description", s(&d["Description"]).to_owned()),
        (
            "KmsKeyId",
            d["KmsKeyId"]
                .as_str()
                .unwrap_or("alias/aws/secretsmanager")
                .to_owned(),
        ),
        ("Created", ts(&d["CreatedDate"])),
        ("LastChanged", ts(&d["LastChangedDate"])),
        ("LastAccessed", ts(&d["LastAccessedDate"])),
    ];
    if d["DeletedDate"].is_number() {
        rows.push(("DeletionDate", ts(&d["DeletedDate"])));
    }
    let tags: Vec<String> = d["Tags"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| format!("{}={}", s(&t["Key"]), s(&t["Value"])))
        .collect();
    rows.push((
        "Tags",
        if tags.is_empty() {
            "-".into()
        } else {
            tags.join(", ")
        },
    ));
    let enabled = d["RotationEnabled"].as_bool() == Some(true);
    rows.push((
        "RotationStatus",
        if enabled { "Enabled" } else { "Disabled" }.into(),
    ));
    rows.push(("RotationFunction", s(&d["RotationLambdaARN"]).to_owned()));
    rows.push(("RotationSchedule", rotation_schedule(&d["RotationRules"])));
    rows.push(("LastRotated", ts(&d["LastRotatedDate"])));
    rows.push(("NextRotation", ts(&d["NextRotationDate"])));
    for (k, v) in rows {
        println!("{:<17} {v}", format!("{k}:"));
    }
    println!("Versions:");
    let mut versions: Vec<(&String, &Value)> = d["VersionIdsToStages"]
        .as_object()
        .into_iter()
        .flatten()
        .collect();
    versions.sort_by_key(|(_, st)| st.to_string());
    for (id, st) in versions {
        println!("  {id}  {}", stages(st));
    }
}

/// Runs `rotary secret …`.
pub(super) async fn run(
    client: &Client,
    json_out: bool,
    cmd: &SecretCommand,
) -> anyhow::Result<()> {
    match cmd {
        SecretCommand::Create {
            name,
            value,
            description,
            kms_key_id,
            tags,
        } => {
            let mut body = json!({ "Name": name, "ClientRequestToken": new_token() });
            if let Some(v) = read_value(value, true)? {
                v.put_into(&mut body)?;
            }
            if let Some(d) = description {
                body["Description"] = json!(d);
            }
            if let Some(k) = kms_key_id {
                body["KmsKeyId"] = json!(k);
            }
            if !tags.is_empty() {
                body["Tags"] = json!(parse_tags(tags)?);
            }
            let out = call(client, "CreateSecret", name, body).await?;
            if json_out {
                return print_json(&out);
            }
            match out["VersionId"].as_str() {
                Some(v) => println!(
                    "Created {} ({}), version {v}",
                    s(&out["Name"]),
                    s(&out["ARN"])
                ),
                None => println!(
                    "Created {} ({}) with no value",
                    s(&out["Name"]),
                    s(&out["ARN"])
                ),
            }
        }
        SecretCommand::Get {
            name,
            json_key,
            version_id,
            version_stage,
        } => {
            let mut body = json!({ "SecretId": name });
            if let Some(v) = version_id {
                body["VersionId"] = json!(v);
            }
            if let Some(v) = version_stage {
                body["VersionStage"] = json!(v);
            }
            let out = call(client, "GetSecretValue", name, body).await?;
            if json_out && json_key.is_none() {
                return print_json(&out);
            }
            let newline = std::io::stdout().is_terminal();
            let mut stdout = std::io::stdout().lock();
            if let Some(key) = json_key {
                let mismatch = |what: String| ValueMismatch(format!("secret {name}: {what}"));
                let text = out["SecretString"]
                    .as_str()
                    .ok_or_else(|| mismatch("the value is binary, not a JSON object".into()))?;
                let parsed: Value = serde_json::from_str(text)
                    .ok()
                    .filter(Value::is_object)
                    .ok_or_else(|| mismatch("the value is not a JSON object".into()))?;
                let member = parsed
                    .get(key)
                    .ok_or_else(|| mismatch(format!("the value has no member {key:?}")))?;
                let text = match member {
                    Value::String(t) => Zeroizing::new(t.clone()),
                    other => Zeroizing::new(other.to_string()),
                };
                stdout.write_all(text.as_bytes())?;
            } else if let Some(text) = out["SecretString"].as_str() {
                stdout.write_all(text.as_bytes())?;
            } else if let Some(b64) = out["SecretBinary"].as_str() {
                let bytes = Zeroizing::new(
                    base64::engine::general_purpose::STANDARD
                        .decode(b64)
                        .context("the server sent SecretBinary that is not base64")?,
                );
                stdout.write_all(&bytes)?;
                stdout.flush()?;
                return Ok(());
            } else {
                return Err(
                    ValueMismatch(format!("secret {name}: the version has no value")).into(),
                );
            }
            if newline {
                stdout.write_all(b"\n")?;
            }
            stdout.flush()?;
        }
        SecretCommand::Put {
            name,
            value,
            version_stages,
        } => {
            let mut body = json!({ "SecretId": name, "ClientRequestToken": new_token() });
            let v = read_value(value, true)?.ok_or_else(|| {
                anyhow!("no value: give --value-file FILE, --value -, or pipe it on standard input")
            })?;
            v.put_into(&mut body)?;
            if !version_stages.is_empty() {
                body["VersionStages"] = json!(version_stages);
            }
            let out = call(client, "PutSecretValue", name, body).await?;
            if json_out {
                return print_json(&out);
            }
            println!(
                "Stored version {} of {} ({})",
                s(&out["VersionId"]),
                s(&out["Name"]),
                stages(&out["VersionStages"])
            );
        }
        SecretCommand::Update {
            name,
            value,
            description,
            kms_key_id,
        } => {
            let mut body = json!({ "SecretId": name });
            let v = read_value(value, false)?;
            if let Some(v) = &v {
                v.put_into(&mut body)?;
                body["ClientRequestToken"] = json!(new_token());
            }
            if let Some(d) = description {
                body["Description"] = json!(d);
            }
            if let Some(k) = kms_key_id {
                body["KmsKeyId"] = json!(k);
            }
            if v.is_none() && description.is_none() && kms_key_id.is_none() {
                bail!(
                    "nothing to update: give --description, --kms-key-id, --value-file or --value"
                );
            }
            let out = call(client, "UpdateSecret", name, body).await?;
            if json_out {
                return print_json(&out);
            }
            match out["VersionId"].as_str() {
                Some(vid) => println!("Updated {}, new version {vid}", s(&out["Name"])),
                None => println!("Updated {}", s(&out["Name"])),
            }
        }
        SecretCommand::Describe { name } => {
            let out = call(client, "DescribeSecret", name, json!({ "SecretId": name })).await?;
            if json_out {
                return print_json(&out);
            }
            print_describe(&out);
        }
        SecretCommand::List {
            filters,
            include_planned_deletion,
        } => {
            let mut f = Vec::new();
            for kv in filters {
                let (k, v) = kv
                    .split_once('=')
                    .ok_or_else(|| anyhow!("--filter {kv:?} must be KEY=VALUE"))?;
                f.push(json!({ "Key": k, "Values": [v] }));
            }
            let mut body = json!({ "MaxResults": 100 });
            if !f.is_empty() {
                body["Filters"] = json!(f);
            }
            if *include_planned_deletion {
                body["IncludePlannedDeletion"] = json!(true);
            }
            let out = all_pages(client, "ListSecrets", "list", body, "SecretList").await?;
            if json_out {
                return print_json(&out);
            }
            let rows: Vec<Vec<String>> = out["SecretList"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| {
                    let rotation = if e["RotationEnabled"].as_bool() == Some(true) {
                        "Enabled"
                    } else {
                        "Disabled"
                    };
                    let mut desc: String = e["Description"].as_str().unwrap_or("-").to_owned();
                    if desc.chars().count() > 40 {
                        desc = desc.chars().take(39).collect::<String>() + "…";
                    }
                    if e["DeletedDate"].is_number() {
                        desc = format!("(deleted {}) {desc}", ts(&e["DeletedDate"]));
                    }
                    vec![
                        s(&e["Name"]).to_owned(),
                        ts(&e["LastChangedDate"]),
                        ts(&e["LastAccessedDate"]),
                        rotation.to_owned(),
                        ts(&e["NextRotationDate"]),
                        desc,
                    ]
                })
                .collect();
            table(
                &[
                    "NAME",
                    "LAST CHANGED",
                    "LAST ACCESSED",
                    "ROTATION",
                    "NEXT ROTATION",
                    "DESCRIPTION",
                ],
                &rows,
            );
        }
        SecretCommand::Delete {
            name,
            recovery_window_in_days,
            force_delete_without_recovery,
        } => {
            let mut body = json!({ "SecretId": name });
            if let Some(d) = recovery_window_in_days {
                body["RecoveryWindowInDays"] = json!(d);
            }
            if *force_delete_without_recovery {
                body["ForceDeleteWithoutRecovery"] = json!(true);
            }
            let out = call(client, "DeleteSecret", name, body).await?;
            if json_out {
                return print_json(&out);
            }
            if *force_delete_without_recovery {
                println!("Deleted {} for good", s(&out["Name"]));
            } else {
                println!(
                    "Scheduled {} for deletion on {} (`rotary secret restore {}` cancels it)",
                    s(&out["Name"]),
                    ts(&out["DeletionDate"]),
                    s(&out["Name"])
                );
            }
        }
        SecretCommand::Restore { name } => {
            let out = call(client, "RestoreSecret", name, json!({ "SecretId": name })).await?;
            if json_out {
                return print_json(&out);
            }
            println!("Restored {}", s(&out["Name"]));
        }
        SecretCommand::Rotate {
            name,
            function,
            schedule,
            after_days,
            duration,
            no_rotate_immediately,
        } => {
            let mut body = json!({ "SecretId": name, "ClientRequestToken": new_token() });
            if let Some(f) = function {
                let arn = if f.starts_with("arn:") {
                    f.clone()
                } else {
                    let d = client
                        .call(
                            &RotaryOperation::DescribeFunction.target(),
                            &serde_json::to_value(FunctionNameRequest {
                                name: Some(f.clone()),
                                force: None,
                            })?,
                        )
                        .await
                        .with_context(|| format!("rotation function {f}"))?;
                    s(&d["FunctionArn"]).to_owned()
                };
                body["RotationLambdaARN"] = json!(arn);
            }
            let mut rules = json!({});
            if let Some(e) = schedule {
                rules["ScheduleExpression"] = json!(e);
            }
            if let Some(d) = after_days {
                rules["AutomaticallyAfterDays"] = json!(d);
            }
            if let Some(d) = duration {
                rules["Duration"] = json!(d);
            }
            if rules.as_object().is_some_and(|o| !o.is_empty()) {
                body["RotationRules"] = rules;
            }
            if *no_rotate_immediately {
                body["RotateImmediately"] = json!(false);
            }
            let out = call(client, "RotateSecret", name, body)
                .await
                .map_err(|e| {
                    // AWS's wording speaks of Lambda function policies; say what it means here.
                    let unknown_function = e.chain().any(|c| {
                        c.downcast_ref::<ApiFailure>().is_some_and(|f| {
                            f.code == "AccessDeniedException"
                                && f.message.contains("cannot invoke the specified Lambda")
                        })
                    });
                    if unknown_function {
                        e.context(
                            "no rotation function with that ARN is registered on this server \
                             (see `rotary function list`)",
                        )
                    } else {
                        e
                    }
                })?;
            if json_out {
                return print_json(&out);
            }
            match out["VersionId"].as_str() {
                Some(v) => println!(
                    "Rotating {}: new version {v} (`rotary secret history {}` shows the steps)",
                    s(&out["Name"]),
                    s(&out["Name"])
                ),
                None => println!(
                    "Rotation of {} configured; testSecret checks it on a copy of the current value",
                    s(&out["Name"])
                ),
            }
        }
        SecretCommand::CancelRotation { name } => {
            let out = call(
                client,
                "CancelRotateSecret",
                name,
                json!({ "SecretId": name }),
            )
            .await?;
            if json_out {
                return print_json(&out);
            }
            println!("Scheduled rotation of {} is off", s(&out["Name"]));
        }
        SecretCommand::Versions {
            name,
            include_deprecated,
        } => {
            let mut body = json!({ "SecretId": name, "MaxResults": 100 });
            if *include_deprecated {
                body["IncludeDeprecated"] = json!(true);
            }
            let out = all_pages(client, "ListSecretVersionIds", name, body, "Versions").await?;
            if json_out {
                return print_json(&out);
            }
            let rows: Vec<Vec<String>> = out["Versions"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|v| {
                    vec![
                        s(&v["VersionId"]).to_owned(),
                        stages(&v["VersionStages"]),
                        ts(&v["CreatedDate"]),
                        ts(&v["LastAccessedDate"]),
                    ]
                })
                .collect();
            table(&["VERSION ID", "STAGES", "CREATED", "LAST ACCESSED"], &rows);
        }
        SecretCommand::Tag { name, tags } => {
            let body = json!({ "SecretId": name, "Tags": parse_tags(tags)? });
            let out = call(client, "TagResource", name, body).await?;
            if json_out {
                return print_json(&out);
            }
            println!("Tagged {name}");
        }
        SecretCommand::Untag { name, keys } => {
            let body = json!({ "SecretId": name, "TagKeys": keys });
            let out = call(client, "UntagResource", name, body).await?;
            if json_out {
                return print_json(&out);
            }
            println!("Untagged {name}");
        }
        SecretCommand::History { name, max_results } => {
            let req = RotationHistoryRequest {
                secret_id: Some(name.clone()),
                max_results: *max_results,
            };
            let out = client
                .call(
                    &RotaryOperation::GetRotationHistory.target(),
                    &serde_json::to_value(req)?,
                )
                .await
                .with_context(|| format!("secret {name}"))?;
            if json_out {
                return print_json(&out);
            }
            print_history(&out);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_token_is_a_uuid_v4() {
        let t = new_token();
        assert_eq!(t.len(), 36);
        let parts: Vec<&str> = t.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'));
        assert!(matches!(&parts[3][..1], "8" | "9" | "a" | "b"));
    }

    #[test]
    fn text_value_drops_one_trailing_newline() {
        let v = ReadValue {
            bytes: Zeroizing::new(b"abc\n\n".to_vec()),
            binary: false,
        };
        let mut body = json!({});
        v.put_into(&mut body).unwrap();
        assert_eq!(body["SecretString"], "abc\n");
    }

    #[test]
    fn binary_value_is_base64_and_untouched() {
        let v = ReadValue {
            bytes: Zeroizing::new(vec![0, 255, b'\n']),
            binary: true,
        };
        let mut body = json!({});
        v.put_into(&mut body).unwrap();
        assert_eq!(body["SecretBinary"], "AP8K");
    }
}
