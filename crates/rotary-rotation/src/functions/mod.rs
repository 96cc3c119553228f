//! Rotation functions that run outside the server: a process, an AWS Lambda Python handler,
//! or an HTTP endpoint. Each receives the Lambda rotation event for one step and succeeds or
//! fails; the rotation driver decides what happens next.
//!
//! Built-in rotators (PostgreSQL, MySQL, …) live beside these and implement the same trait.

mod exec;
pub mod http;
pub mod lambda_py;
pub mod process;
pub mod sandbox;

use std::sync::Arc;
use std::time::Duration;

pub use self::http::{verify_signature, HttpFunction, SIGNATURE_HEADER, TIMESTAMP_HEADER};
pub use self::lambda_py::PythonHandlerFunction;
pub use self::process::ProcessFunction;
pub use self::sandbox::{ExecPolicy, Isolation, Sandbox};

/// Most a step's captured output (and an HTTP response body) may take; the tail is kept.
pub const OUTPUT_CAP_BYTES: usize = 64 * 1024;

/// Longest per-step timeout, the same as AWS Lambda's.
pub const MAX_TIMEOUT_SECONDS: u64 = 900;

/// The rotation steps: the same type the secret's persisted state uses.
pub use rotary_core::rotation::Step;

/// The Lambda rotation event, serialized exactly as
/// `{"Step","SecretId","ClientRequestToken","RotationToken"}`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RotationEvent {
    /// The step to run.
    #[serde(rename = "Step")]
    pub step: Step,
    /// The full ARN of the secret being rotated.
    #[serde(rename = "SecretId")]
    pub secret_id: String,
    /// The version id of the pending version; the same for all four steps and retries.
    #[serde(rename = "ClientRequestToken")]
    pub client_request_token: String,
    /// Opaque token the function may pass to `PutSecretValue(RotationToken=…)`.
    #[serde(rename = "RotationToken")]
    pub rotation_token: String,
}

impl RotationEvent {
    /// The event as the JSON bytes a function receives (stdin, handler `event`, POST body).
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing a struct of strings and a unit enum cannot fail; an empty body would
        // make the function fail loudly rather than run on a wrong event.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Everything one invocation needs besides the function's own config. `Debug` shows the
/// env's names only: its values include temporary credentials.
#[derive(Clone)]
pub struct Invocation {
    /// The event for this step.
    pub event: RotationEvent,
    /// Environment for process and Python functions, set by the caller:
    /// `SECRETS_MANAGER_ENDPOINT`, `AWS_ENDPOINT_URL_SECRETS_MANAGER`, `AWS_REGION`,
    /// `AWS_DEFAULT_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_SESSION_TOKEN`. It overrides the function's own `Env`. Never sent to HTTP
    /// functions.
    pub env: Vec<(String, String)>,
    /// How long the step may take; normally [`FunctionSpec::timeout`].
    pub timeout: Duration,
}

impl std::fmt::Debug for Invocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let env_names: Vec<&str> = self.env.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("Invocation")
            .field("event", &self.event)
            .field("env", &env_names)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// What a step printed: stdout and stderr interleaved line by line as they arrived (or an HTTP
/// response body), capped at [`OUTPUT_CAP_BYTES`] keeping the tail, with a marker line when
/// the head was dropped. The caller redacts secret values before storing it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// The captured text (invalid UTF-8 replaced).
    pub log: String,
}

/// Why a step did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum FunctionError {
    /// The step ran past its timeout and was killed (with its whole process group).
    #[error("timed out after {0:?}")]
    Timeout(Duration, Output),
    /// The function ran and reported failure: non-zero exit, an exception, a non-2xx status.
    #[error("{message}")]
    Failed {
        /// One line saying why, e.g. `ValueError: Unable to log into database`.
        message: String,
        /// Everything captured.
        output: Output,
    },
    /// The function could not be started (interpreter missing, connection refused, …).
    #[error("could not start: {0}")]
    Spawn(String),
    /// The secret's value is not a configuration the function can use (a missing `host`, a
    /// wrong `engine`, …): trying again cannot help, so the rotation fails at once rather
    /// than being retried like an outage.
    #[error("{0}")]
    Config(String),
}

impl FunctionError {
    /// The output captured before the failure, if the function got to run.
    pub fn output(&self) -> Option<&Output> {
        match self {
            FunctionError::Timeout(_, output) | FunctionError::Failed { output, .. } => {
                Some(output)
            }
            FunctionError::Spawn(_) | FunctionError::Config(_) => None,
        }
    }
}

/// Something that can run one rotation step.
#[async_trait::async_trait]
pub trait RotationFunction: Send + Sync {
    /// Runs `inv.event.step` within `inv.timeout`. `Ok` means the step succeeded.
    async fn invoke(&self, inv: &Invocation) -> Result<Output, FunctionError>;
}

/// Registered function configuration, as stored (JSON) and shown by `rotary function describe`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "Type")]
pub enum FunctionSpec {
    /// A program from the function directory, run (without a shell) once per step; the
    /// event JSON is on its stdin.
    Process {
        /// The program and its arguments, split into words like a shell would.
        #[serde(rename = "Command")]
        command: String,
        /// Extra environment, overridden by the invocation's.
        #[serde(rename = "Env", default)]
        env: Vec<(String, String)>,
        /// Per-step timeout, 1..=900.
        #[serde(rename = "TimeoutSeconds")]
        timeout_seconds: u64,
    },
    /// An AWS Lambda Python handler (`lambda_handler(event, context)`), run unmodified.
    PythonHandler {
        /// `module.function`, where `module` may be a dotted package path.
        #[serde(rename = "Handler")]
        handler: String,
        /// Directory holding the module (cwd and first on `sys.path`): relative to the
        /// function directory, or absolute inside it.
        #[serde(rename = "CodeDir")]
        code_dir: String,
        /// Extra environment, overridden by the invocation's.
        #[serde(rename = "Env", default)]
        env: Vec<(String, String)>,
        /// Per-step timeout, 1..=900.
        #[serde(rename = "TimeoutSeconds")]
        timeout_seconds: u64,
    },
    /// An HTTP(S) endpoint that is POSTed the event, signed with the server's key.
    Http {
        /// `http://` or `https://` URL.
        #[serde(rename = "Url")]
        url: String,
        /// Kept for a uniform config; never sent (HTTP functions hold their own credentials).
        #[serde(rename = "Env", default)]
        env: Vec<(String, String)>,
        /// Per-step timeout, 1..=900.
        #[serde(rename = "TimeoutSeconds")]
        timeout_seconds: u64,
    },
    /// A built-in rotator under another name with its own password policy
    /// (`PASSWORD_LENGTH`, `EXCLUDE_CHARACTERS` in `Env`), run in-process.
    Builtin {
        /// The built-in's name, e.g. `rotary-postgresql-single-user`.
        #[serde(rename = "Builtin")]
        builtin: String,
        /// `PASSWORD_LENGTH` and `EXCLUDE_CHARACTERS`.
        #[serde(rename = "Env", default)]
        env: Vec<(String, String)>,
        /// Per-step timeout, 1..=900.
        #[serde(rename = "TimeoutSeconds")]
        timeout_seconds: u64,
    },
}

impl FunctionSpec {
    /// Checks the spec; the error is a sentence for the API's `InvalidParameterException`.
    /// Process and Python functions must come from `policy`'s function directory and be
    /// runnable under it (sandboxed, or explicitly allowed without).
    pub fn validate(&self, policy: &ExecPolicy) -> Result<(), String> {
        match self {
            FunctionSpec::Process {
                command,
                env,
                timeout_seconds,
            } => {
                sandbox::split_command(command)?;
                validate_env(env)?;
                validate_timeout(*timeout_seconds)?;
                policy.resolve_command(command)?;
                policy
                    .sandbox()
                    .map(|_| ())
                    .map_err(|why| format!("Process functions cannot run on this server: {why}."))
            }
            FunctionSpec::PythonHandler {
                handler,
                code_dir,
                env,
                timeout_seconds,
            } => {
                validate_handler(handler)?;
                validate_env(env)?;
                validate_timeout(*timeout_seconds)?;
                policy.resolve_code_dir(code_dir)?;
                policy
                    .sandbox()
                    .map(|_| ())
                    .map_err(|why| format!("Python functions cannot run on this server: {why}."))
            }
            FunctionSpec::Http {
                url,
                env,
                timeout_seconds,
            } => {
                let parsed =
                    reqwest::Url::parse(url).map_err(|e| format!("Url is invalid: {e}"))?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    return Err(format!("Url must be http:// or https://: {url}"));
                }
                if parsed.host_str().is_none_or(str::is_empty) {
                    return Err(format!("Url has no host: {url}"));
                }
                validate_env(env)?;
                validate_timeout(*timeout_seconds)
            }
            FunctionSpec::Builtin {
                env,
                timeout_seconds,
                ..
            } => {
                validate_env(env)?;
                for (k, v) in env {
                    match k.as_str() {
                        "PASSWORD_LENGTH" => match v.parse::<usize>() {
                            Ok(n) if (8..=4096).contains(&n) => {}
                            _ => return Err(format!("PASSWORD_LENGTH must be 8 to 4096, got {v:?}.")),
                        },
                        "EXCLUDE_CHARACTERS" => {}
                        other => {
                            return Err(format!(
                                "A built-in takes only PASSWORD_LENGTH and EXCLUDE_CHARACTERS, not {other}."
                            ))
                        }
                    }
                }
                validate_timeout(*timeout_seconds)
            }
        }
    }

    /// The per-step timeout.
    pub fn timeout(&self) -> Duration {
        let (FunctionSpec::Process {
            timeout_seconds, ..
        }
        | FunctionSpec::PythonHandler {
            timeout_seconds, ..
        }
        | FunctionSpec::Http {
            timeout_seconds, ..
        }
        | FunctionSpec::Builtin {
            timeout_seconds, ..
        }) = self;
        Duration::from_secs(*timeout_seconds)
    }

    /// The function's own environment (`Env`).
    pub fn env(&self) -> &[(String, String)] {
        let (FunctionSpec::Process { env, .. }
        | FunctionSpec::PythonHandler { env, .. }
        | FunctionSpec::Http { env, .. }
        | FunctionSpec::Builtin { env, .. }) = self;
        env
    }
}

fn validate_timeout(secs: u64) -> Result<(), String> {
    if (1..=MAX_TIMEOUT_SECONDS).contains(&secs) {
        Ok(())
    } else {
        Err(format!(
            "TimeoutSeconds must be between 1 and {MAX_TIMEOUT_SECONDS}, got {secs}."
        ))
    }
}

fn validate_env(env: &[(String, String)]) -> Result<(), String> {
    for (key, value) in env {
        if key.is_empty() || key.contains('=') || key.contains('\0') {
            return Err(format!("Env name is invalid: {key:?}"));
        }
        if value.contains('\0') {
            return Err(format!(
                "Env value for {key} must not contain NUL characters."
            ));
        }
    }
    Ok(())
}

fn validate_handler(handler: &str) -> Result<(), String> {
    let Some((module, func)) = handler.rsplit_once('.') else {
        return Err(format!("Handler must be module.function, got {handler:?}."));
    };
    let ok = is_identifier(func) && module.split('.').all(is_identifier);
    if ok {
        Ok(())
    } else {
        Err(format!(
            "Handler must be module.function made of Python identifiers, got {handler:?}."
        ))
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// Builds the executor for a spec; `http_signing_key` is the server's key for HTTP function
/// signatures, `policy` says where process and Python functions come from and how they run.
/// Call [`FunctionSpec::validate`] first: a bad spec builds an executor whose every
/// invocation fails.
///
/// `None` for [`FunctionSpec::Builtin`], which the engine runs in-process.
pub fn executor(
    spec: &FunctionSpec,
    http_signing_key: &[u8],
    policy: &Arc<ExecPolicy>,
) -> Option<Box<dyn RotationFunction>> {
    Some(match spec {
        FunctionSpec::Builtin { .. } => return None,
        FunctionSpec::Process { command, env, .. } => Box::new(ProcessFunction::new(
            command.clone(),
            env.clone(),
            Arc::clone(policy),
        )),
        FunctionSpec::PythonHandler {
            handler,
            code_dir,
            env,
            ..
        } => Box::new(PythonHandlerFunction::new(
            handler.clone(),
            code_dir.into(),
            env.clone(),
            Arc::clone(policy),
        )),
        FunctionSpec::Http { url, .. } => {
            Box::new(HttpFunction::new(url.clone(), http_signing_key))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn step_serializes_camel_case() {
        let names: Vec<String> = Step::ALL
            .iter()
            .map(|s| serde_json::to_string(s).unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "\"createSecret\"",
                "\"setSecret\"",
                "\"testSecret\"",
                "\"finishSecret\""
            ]
        );
        for step in Step::ALL {
            assert_eq!(serde_json::to_string(&step).unwrap(), format!("\"{step}\""));
            let back: Step = serde_json::from_str(&format!("\"{}\"", step.as_str())).unwrap();
            assert_eq!(back, step);
        }
    }

    #[test]
    fn event_serializes_lambda_shape() {
        let ev = RotationEvent {
            step: Step::TestSecret,
            secret_id: "arn:aws:secretsmanager:us-east-1:000000000000:secret:db-AbCdEf".into(),
            client_request_token: "tok-1".into(),
            rotation_token: "rt-1".into(),
        };
        assert_eq!(
            String::from_utf8(ev.to_json()).unwrap(),
            r#"{"Step":"testSecret","SecretId":"arn:aws:secretsmanager:us-east-1:000000000000:secret:db-AbCdEf","ClientRequestToken":"tok-1","RotationToken":"rt-1"}"#
        );
    }

    #[test]
    fn spec_json_round_trip() {
        let specs = [
            FunctionSpec::Process {
                command: "./rotate.sh --verbose".into(),
                env: env(&[("A", "1")]),
                timeout_seconds: 30,
            },
            FunctionSpec::PythonHandler {
                handler: "lambda_function.lambda_handler".into(),
                code_dir: "/opt/rotators/pg".into(),
                env: vec![],
                timeout_seconds: 60,
            },
            FunctionSpec::Http {
                url: "https://rotator.internal/hook".into(),
                env: vec![],
                timeout_seconds: 5,
            },
        ];
        for spec in specs {
            let json = serde_json::to_string(&spec).unwrap();
            let back: FunctionSpec = serde_json::from_str(&json).unwrap();
            assert_eq!(back, spec, "{json}");
        }
        let json = serde_json::to_value(FunctionSpec::Process {
            command: "true".into(),
            env: env(&[("K", "V")]),
            timeout_seconds: 3,
        })
        .unwrap();
        assert_eq!(
            json,
            serde_json::json!({"Type":"Process","Command":"true","Env":[["K","V"]],"TimeoutSeconds":3})
        );
        // Env is optional on input.
        let spec: FunctionSpec =
            serde_json::from_str(r#"{"Type":"Http","Url":"http://h/","TimeoutSeconds":3}"#)
                .unwrap();
        assert_eq!(spec.env(), &[] as &[(String, String)]);
        assert_eq!(spec.timeout(), Duration::from_secs(3));
    }

    /// A function directory with an executable `rot.sh` and a `pg/` code directory.
    fn function_dir() -> (tempfile::TempDir, ExecPolicy) {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("pg")).unwrap();
        let script = dir.path().join("rot.sh");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let policy = ExecPolicy::new(dir.path(), Isolation::Unsandboxed);
        (dir, policy)
    }

    #[test]
    fn validate_accepts_good_specs() {
        let (dir, policy) = function_dir();
        let good = [
            FunctionSpec::Process {
                command: "rot.sh --flag 'two words'".into(),
                env: env(&[("PGHOST", "db")]),
                timeout_seconds: 1,
            },
            FunctionSpec::PythonHandler {
                handler: "pkg.lambda_function.lambda_handler".into(),
                code_dir: dir.path().join("pg").to_string_lossy().into_owned(),
                env: vec![],
                timeout_seconds: 900,
            },
            FunctionSpec::Http {
                url: "http://127.0.0.1:9000/rotate".into(),
                env: vec![],
                timeout_seconds: 30,
            },
        ];
        for spec in good {
            assert_eq!(spec.validate(&policy), Ok(()), "{spec:?}");
        }
        let refused = ExecPolicy::new(dir.path(), Isolation::Refused("no bwrap".into()));
        let spec = FunctionSpec::Process {
            command: "rot.sh".into(),
            env: vec![],
            timeout_seconds: 1,
        };
        assert!(spec.validate(&refused).unwrap_err().contains("no bwrap"));
    }

    #[test]
    fn validate_rejects_bad_specs() {
        let (_dir, policy) = function_dir();
        let dir_s = "pg".to_owned();
        let py = |handler: &str, code_dir: &str| FunctionSpec::PythonHandler {
            handler: handler.into(),
            code_dir: code_dir.into(),
            env: vec![],
            timeout_seconds: 30,
        };
        let http = |url: &str| FunctionSpec::Http {
            url: url.into(),
            env: vec![],
            timeout_seconds: 30,
        };
        let proc_ = |command: &str, env: Vec<(String, String)>, t: u64| FunctionSpec::Process {
            command: command.into(),
            env,
            timeout_seconds: t,
        };
        let cases = [
            (proc_("", vec![], 30), "Command must not be empty"),
            (proc_("   ", vec![], 30), "Command must not be empty"),
            (proc_("rot.sh", vec![], 0), "TimeoutSeconds"),
            (proc_("rot.sh", vec![], 901), "TimeoutSeconds"),
            (proc_("rot.sh", env(&[("A=B", "x")]), 30), "Env name"),
            (proc_("rot.sh", env(&[("", "x")]), 30), "Env name"),
            (
                proc_("sh -c id", vec![], 30),
                "does not exist in the function directory",
            ),
            (
                proc_("/bin/true", vec![], 30),
                "not inside the function directory",
            ),
            (proc_("rot.sh 'open", vec![], 30), "unterminated quote"),
            (py("nodot", &dir_s), "module.function"),
            (py("mod.", &dir_s), "Python identifiers"),
            (py(".func", &dir_s), "Python identifiers"),
            (py("my-mod.handler", &dir_s), "Python identifiers"),
            (py("mod.1handler", &dir_s), "Python identifiers"),
            (py("m.h", "relative/dir"), "does not exist"),
            (py("m.h", "/tmp"), "not inside the function directory"),
            (py("m.h", "../"), "not inside the function directory"),
            (http("ftp://host/x"), "http:// or https://"),
            (http("not a url"), "Url is invalid"),
            (http("file:///etc/passwd"), "http:// or https://"),
        ];
        for (spec, want) in cases {
            let err = spec.validate(&policy).unwrap_err();
            assert!(err.contains(want), "{spec:?}: {err}");
        }
    }

    #[test]
    fn invocation_debug_hides_env_values() {
        let inv = Invocation {
            event: RotationEvent {
                step: Step::CreateSecret,
                secret_id: "s".into(),
                client_request_token: "t".into(),
                rotation_token: "r".into(),
            },
            env: env(&[("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI")]),
            timeout: Duration::from_secs(1),
        };
        let text = format!("{inv:?}");
        assert!(text.contains("AWS_SECRET_ACCESS_KEY") && !text.contains("wJalrXUtnFEMI"));
    }

    #[test]
    fn function_error_display() {
        let e = FunctionError::Timeout(Duration::from_secs(3), Output::default());
        assert_eq!(e.to_string(), "timed out after 3s");
        let e = FunctionError::Failed {
            message: "ValueError: nope".into(),
            output: Output { log: "tb".into() },
        };
        assert_eq!(e.to_string(), "ValueError: nope");
        assert_eq!(e.output().unwrap().log, "tb");
        let e = FunctionError::Spawn("no such file".into());
        assert_eq!(e.to_string(), "could not start: no such file");
        assert!(e.output().is_none());
    }
}
