//! `rotary function …`, `rotary rotation history`, `rotary compliance`,
//! `rotary schedule preview`.

use std::collections::BTreeMap;

use anyhow::bail;
use clap::{Args, Subcommand};
use rotary_wire::rotary_api::{
    CreateFunctionRequest, FunctionNameRequest, RotaryOperation, RotationHistoryRequest,
};
use serde_json::{json, Value};

use super::client::{ApiFailure, Client};

/// Options every client command takes.
#[derive(Debug, Clone, Args)]
pub(crate) struct ClientArgs {
    /// Server URL [default: AWS_ENDPOINT_URL_SECRETS_MANAGER, AWS_ENDPOINT_URL, the
    /// profile's endpoint_url, or http://127.0.0.1:8750].
    #[arg(long, global = true)]
    pub endpoint_url: Option<String>,
    /// Region of the signature [default: AWS_REGION / the profile's, else us-east-1].
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// `text` (default) or `json`.
    #[arg(long, global = true, default_value = "text")]
    pub output: String,
    /// AWS profile for credentials, region and endpoint_url [default: AWS_PROFILE, else
    /// `default`].
    #[arg(long, global = true)]
    pub profile: Option<String>,
}

/// Client commands.
#[derive(Debug, Subcommand)]
pub(crate) enum ClientCommand {
    /// Secrets: create, get, put, update, describe, list, delete, restore, rotate, versions,
    /// tags, rotation history.
    #[command(subcommand)]
    Secret(super::secret::SecretCommand),
    /// Register, list, show and remove rotation functions.
    #[command(subcommand)]
    Function(FunctionCommand),
    /// Rotation history of a secret.
    #[command(subcommand)]
    Rotation(RotationCommand),
    /// Secrets with rotation off, overdue, failed, or stuck with AWSPENDING.
    Compliance,
    /// Show what a schedule expression means.
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// Users: create, list, delete, tag, inline policies.
    #[command(subcommand)]
    User(super::iam::UserCommand),
    /// Access keys of users: create (the secret is shown once), list, (de)activate, delete.
    #[command(subcommand)]
    Key(super::iam::KeyCommand),
    /// Groups of users and their inline policies.
    #[command(subcommand)]
    Group(super::iam::GroupCommand),
    /// Policy tools: `simulate` what the policies decide for a user.
    #[command(subcommand)]
    Policy(super::policy::PolicyCommand),
    /// KMS keys: create (with an alias), list, describe, rotate.
    #[command(subcommand)]
    Kms(super::kms::KmsCommand),
}

/// `rotary function …`
#[derive(Debug, Subcommand)]
pub(crate) enum FunctionCommand {
    /// Register a function: exactly one of --command, --python-handler (with --code-dir),
    /// --url or --builtin.
    Create {
        /// Function name (letters, digits, '-', '_').
        name: String,
        /// A program in the server's function directory and its arguments (split like a
        /// shell would, never run by one), run once per step in the sandbox, the event JSON
        /// on stdin.
        #[arg(long)]
        command: Option<String>,
        /// A Lambda handler `module.function` (e.g. lambda_function.lambda_handler).
        #[arg(long)]
        python_handler: Option<String>,
        /// Directory holding the handler's code (with --python-handler), inside the server's
        /// function directory: relative to it, or absolute.
        #[arg(long)]
        code_dir: Option<String>,
        /// URL POSTed the event (signed with X-Rotary-Signature).
        #[arg(long)]
        url: Option<String>,
        /// A built-in rotator under this name, with its own password policy given by
        /// --env PASSWORD_LENGTH=N and --env EXCLUDE_CHARACTERS=...
        #[arg(long)]
        builtin: Option<String>,
        /// Environment variable for the function, KEY=VALUE (repeatable).
        #[arg(long = "env", value_name = "KEY=VALUE")]
        env: Vec<String>,
        /// Per-step timeout in seconds (1–900) [default: 30].
        #[arg(long)]
        timeout: Option<u64>,
    },
    /// List built-in and registered functions.
    List,
    /// Show one function.
    Describe {
        /// Name or ARN.
        name: String,
    },
    /// Remove a registered function; refused while secrets rotate with it, unless --force.
    Delete {
        /// Name.
        name: String,
        /// Remove it even though secrets name it (their next rotation then fails).
        #[arg(long)]
        force: bool,
    },
}

/// `rotary rotation …`
#[derive(Debug, Subcommand)]
pub(crate) enum RotationCommand {
    /// Every rotation attempt of a secret, newest first.
    History {
        /// Secret name or ARN.
        secret: String,
        /// How many attempts [default: 50].
        #[arg(long)]
        max_results: Option<i64>,
    },
    /// The way out of a failed rotation: show which version holds AWSPENDING, then remove
    /// AWSPENDING from it (AWSCURRENT is not touched), so the next RotateSecret starts afresh.
    Reset {
        /// Secret name or ARN.
        secret: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

/// `rotary schedule …`
#[derive(Debug, Subcommand)]
pub(crate) enum ScheduleCommand {
    /// The next rotation windows of an expression: `rate(…)`, `cron(…)`, or a number of days.
    Preview {
        /// `cron(0 8 ? * MON-FRI *)`, `rate(12 hours)` or `30` (AutomaticallyAfterDays).
        expression: String,
        /// Window length, e.g. `2h`.
        #[arg(long)]
        duration: Option<String>,
        /// How many windows [default: 10].
        #[arg(long)]
        count: Option<usize>,
    },
}

pub(super) fn ts(v: &Value) -> String {
    let Some(secs) = v.as_f64() else {
        return "-".into();
    };
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp_nanos((secs * 1e9) as i128) else {
        return secs.to_string();
    };
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z");
    t.format(&fmt).unwrap_or_else(|_| secs.to_string())
}

pub(super) fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("-")
}

/// Runs a client command; exit code 1 on an API error is decided by the caller.
pub(crate) async fn run(args: ClientArgs, cmd: ClientCommand) -> anyhow::Result<()> {
    let json_out = match args.output.as_str() {
        "json" => true,
        "text" => false,
        other => bail!("--output {other:?} must be text or json"),
    };
    // Needs no server (and so no credentials).
    if let ClientCommand::Schedule(ScheduleCommand::Preview {
        expression,
        duration,
        count,
    }) = &cmd
    {
        return super::schedule::preview(json_out, expression, duration.as_deref(), *count);
    }
    let client = Client::connect(
        args.endpoint_url.clone(),
        args.region.clone(),
        args.profile.clone(),
    )
    .await?;
    let (op, body) = match &cmd {
        ClientCommand::Secret(c) => return super::secret::run(&client, json_out, c).await,
        ClientCommand::Rotation(RotationCommand::Reset { secret, yes }) => {
            return super::reset::run(&client, json_out, secret, *yes).await
        }
        ClientCommand::User(c) => return super::iam::run_user(&client, json_out, c).await,
        ClientCommand::Key(c) => return super::iam::run_key(&client, json_out, c).await,
        ClientCommand::Group(c) => return super::iam::run_group(&client, json_out, c).await,
        ClientCommand::Policy(c) => return super::policy::run(&client, json_out, c).await,
        ClientCommand::Kms(c) => return super::kms::run(&client, json_out, c).await,
        ClientCommand::Function(FunctionCommand::Create {
            name,
            command,
            python_handler,
            code_dir,
            url,
            builtin,
            env,
            timeout,
        }) => {
            let mut vars = BTreeMap::new();
            for kv in env {
                let Some((k, v)) = kv.split_once('=') else {
                    bail!("--env {kv:?} must be KEY=VALUE")
                };
                vars.insert(k.to_owned(), v.to_owned());
            }
            let req = CreateFunctionRequest {
                name: Some(name.clone()),
                command: command.clone(),
                python_handler: python_handler.clone(),
                code_dir: code_dir.clone(),
                url: url.clone(),
                builtin: builtin.clone(),
                env: vars,
                timeout_seconds: *timeout,
            };
            (RotaryOperation::CreateFunction, serde_json::to_value(req)?)
        }
        ClientCommand::Function(FunctionCommand::List) => {
            (RotaryOperation::ListFunctions, json!({}))
        }
        ClientCommand::Function(FunctionCommand::Describe { name }) => {
            let req = FunctionNameRequest {
                name: Some(name.clone()),
                force: None,
            };
            (
                RotaryOperation::DescribeFunction,
                serde_json::to_value(req)?,
            )
        }
        ClientCommand::Function(FunctionCommand::Delete { name, force }) => {
            let req = FunctionNameRequest {
                name: Some(name.clone()),
                force: force.then_some(true),
            };
            (RotaryOperation::DeleteFunction, serde_json::to_value(req)?)
        }
        ClientCommand::Rotation(RotationCommand::History {
            secret,
            max_results,
        }) => {
            let req = RotationHistoryRequest {
                secret_id: Some(secret.clone()),
                max_results: *max_results,
            };
            (
                RotaryOperation::GetRotationHistory,
                serde_json::to_value(req)?,
            )
        }
        ClientCommand::Compliance => (RotaryOperation::GetComplianceReport, json!({})),
        ClientCommand::Schedule(ScheduleCommand::Preview {
            expression,
            duration,
            count,
        }) => return super::schedule::preview(json_out, expression, duration.as_deref(), *count),
    };
    let out = client.call(&op.target(), &body).await?;
    if json_out {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    print_text(&cmd, &out);
    Ok(())
}

fn print_text(cmd: &ClientCommand, out: &Value) {
    match cmd {
        ClientCommand::User(_)
        | ClientCommand::Key(_)
        | ClientCommand::Group(_)
        | ClientCommand::Policy(_)
        | ClientCommand::Kms(_)
        | ClientCommand::Secret(_)
        | ClientCommand::Schedule(_) => {}
        ClientCommand::Function(FunctionCommand::List) => {
            let rows: Vec<Vec<String>> = out["Functions"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|f| {
                    vec![
                        s(&f["Name"]).to_owned(),
                        function_kind(f).to_owned(),
                        s(&f["FunctionArn"]).to_owned(),
                    ]
                })
                .collect();
            super::secret::table(&["NAME", "KIND", "ARN"], &rows);
        }
        ClientCommand::Function(FunctionCommand::Delete { name, .. }) => {
            println!("Deleted {name}")
        }
        ClientCommand::Function(_) => print_function(out),
        ClientCommand::Rotation(_) => super::secret::print_history(out),
        ClientCommand::Compliance => {
            println!(
                "{} secrets checked, {} with findings",
                out["SecretsChecked"], out["NonCompliant"]
            );
            for sec in out["Secrets"].as_array().into_iter().flatten() {
                println!("{}", s(&sec["Name"]));
                for f in sec["Findings"].as_array().into_iter().flatten() {
                    println!("    {:<28} {}", s(&f["Check"]), s(&f["Detail"]));
                }
            }
        }
    }
}

/// `built-in`, `process`, `python` or `http`: one word for every kind, in list and describe.
fn function_kind(f: &Value) -> &str {
    if let Some(kind) = f["Kind"].as_str() {
        return kind;
    }
    if f["BuiltIn"].as_bool() == Some(true) {
        return "built-in";
    }
    match f["Type"].as_str().unwrap_or("-") {
        "Process" => "process",
        "PythonHandler" => "python",
        "Http" => "http",
        "Builtin" => "built-in",
        other => other,
    }
}

/// One function as `Field: value` lines, in the same order for every kind; Env values are
/// never shown (the server only sends their names).
fn print_function(f: &Value) {
    let mut rows: Vec<(String, String)> = vec![
        ("Name".into(), s(&f["Name"]).to_owned()),
        ("Kind".into(), function_kind(f).to_owned()),
        ("ARN".into(), s(&f["FunctionArn"]).to_owned()),
    ];
    for (k, v) in f.as_object().into_iter().flatten() {
        if matches!(
            k.as_str(),
            "Name" | "FunctionArn" | "BuiltIn" | "Type" | "Kind"
        ) {
            continue;
        }
        let text = match v {
            Value::Null => continue,
            Value::String(text) => text.clone(),
            Value::Array(a) => {
                let items: Vec<&str> = a.iter().map(s).collect();
                if items.is_empty() {
                    "-".into()
                } else {
                    items.join(", ")
                }
            }
            other => other.to_string(),
        };
        rows.push((k.clone(), text));
    }
    for (k, v) in rows {
        println!("{:<15} {v}", format!("{k}:"));
    }
}

/// Whether an error came from the server (exit code 1) rather than from usage (2).
pub(crate) fn is_api_error(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.is::<ApiFailure>() || c.is::<reqwest::Error>() || c.is::<super::secret::ValueMismatch>()
    })
}
