//! A rotation function written for AWS Lambda's Python runtime, run unmodified.
//!
//! Each step runs `python3 -u -B -c RUNNER HANDLER CODE_DIR TIMEOUT_MS` with the code
//! directory as working directory and first on `sys.path`/`PYTHONPATH`. The embedded
//! [`RUNNER`] does what the Lambda runtime does for one invocation:
//! - installs a root logging handler on stderr with Lambda's text format
//!   (`[LEVEL]\t<time>\t<request id>\t<message>`), so the templates'
//!   `logger = logging.getLogger(); logger.setLevel(logging.INFO)` output is captured;
//! - reads the event JSON from stdin, imports the handler's module and calls
//!   `func(event, context)` with a `LambdaContext` (`function_name`, `function_version`,
//!   `invoked_function_arn`, `memory_limit_in_mb`, `aws_request_id`, `log_group_name`,
//!   `log_stream_name`, `identity`, `client_context`, `get_remaining_time_in_millis()`,
//!   `log()`);
//! - on an exception prints the traceback to stderr, reports `{errorType, errorMessage}` on
//!   a marker line that the executor strips from the log, and exits 1.
//!
//! The environment is built as for process functions (see [`super::process`]), plus
//! `PYTHONUNBUFFERED=1` and `PYTHONPATH`, so `boto3.client('secretsmanager',
//! endpoint_url=os.environ['SECRETS_MANAGER_ENDPOINT'])` gets the invocation's endpoint
//! and credentials. `AWS_LAMBDA_FUNCTION_NAME` and `ROTARY_FUNCTION_ARN`, when the caller
//! sets them, name the context's function; otherwise the module name is used.
//!
//! The interpreter is `$ROTARY_PYTHON` (read when the executor is built) or `python3`; it
//! must have the handler's dependencies (`boto3`, database drivers) installed.

use std::path::PathBuf;
use std::sync::Arc;

use super::exec::{self, Request};
use super::sandbox::ExecPolicy;
use super::{FunctionError, Invocation, Output, RotationFunction};

/// Prefix of the stderr line on which the runner reports an exception.
const ERROR_MARKER: &str = "\u{1e}ROTARY-LAMBDA-ERROR ";

/// The Python program that hosts one handler invocation (see the module docs).
pub const RUNNER: &str = r#"
import importlib, json, logging, os, sys, time, traceback, uuid

_START = time.monotonic()
_MARKER = "\x1eROTARY-LAMBDA-ERROR "


def _report(error_type, message):
    sys.stderr.write(_MARKER + json.dumps({"errorType": error_type, "errorMessage": message}))
    sys.stderr.write("\n")
    sys.stderr.flush()


class LambdaContext(object):
    def __init__(self, name, timeout_ms, request_id):
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        self._deadline = _START + timeout_ms / 1000.0
        self.function_name = name
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.invoked_function_arn = os.environ.get("ROTARY_FUNCTION_ARN") or (
            "arn:aws:lambda:%s:000000000000:function:%s" % (region, name))
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        self.aws_request_id = request_id
        self.log_group_name = "/aws/lambda/" + name
        self.log_stream_name = time.strftime("%Y/%m/%d") + "/[$LATEST]" + uuid.uuid4().hex
        self.identity = None
        self.client_context = None
        self.tenant_id = None

    def get_remaining_time_in_millis(self):
        return max(0, int((self._deadline - time.monotonic()) * 1000))

    def log(self, msg):
        sys.stdout.write(str(msg))
        sys.stdout.flush()


class _RequestIdFilter(logging.Filter):
    def __init__(self, request_id):
        logging.Filter.__init__(self)
        self.request_id = request_id

    def filter(self, record):
        record.aws_request_id = self.request_id
        return True


def _setup_logging(request_id):
    handler = logging.StreamHandler(sys.stderr)
    formatter = logging.Formatter(
        "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s",
        "%Y-%m-%dT%H:%M:%S")
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    handler.addFilter(_RequestIdFilter(request_id))
    root = logging.getLogger()
    root.addHandler(handler)
    level = os.environ.get("AWS_LAMBDA_LOG_LEVEL")
    if level:
        root.setLevel(level.upper())


def _main():
    handler_name, code_dir, timeout_ms = sys.argv[1], sys.argv[2], int(sys.argv[3])
    request_id = str(uuid.uuid4())
    _setup_logging(request_id)
    try:
        event = json.load(sys.stdin)
    except Exception as e:
        _report("Runtime.InvalidEvent", "Could not read the event: %s" % e)
        return 1
    if code_dir not in sys.path:
        sys.path.insert(0, code_dir)
    module_name, _, func_name = handler_name.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except Exception as e:
        traceback.print_exc()
        _report("Runtime.ImportModuleError",
                "Unable to import module '%s': %s" % (module_name, e))
        return 1
    func = getattr(module, func_name, None)
    if not callable(func):
        _report("Runtime.HandlerNotFound",
                "Handler '%s' missing on module '%s'" % (func_name, module_name))
        return 1
    name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME") or module_name
    context = LambdaContext(name, timeout_ms, request_id)
    try:
        func(event, context)
    except Exception as e:
        traceback.print_exc()
        _report(type(e).__name__, str(e))
        return 1
    return 0


_code = _main()
try:
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
finally:
    # Like Lambda freezing the sandbox: leftover non-daemon threads do not hold the step.
    os._exit(_code)
"#;

/// Runs a Lambda Python handler (`module.function`) from a code directory.
#[derive(Debug, Clone)]
pub struct PythonHandlerFunction {
    handler: String,
    /// As registered: relative to the function directory, or absolute inside it.
    code_dir: PathBuf,
    env: Vec<(String, String)>,
    python: String,
    policy: Arc<ExecPolicy>,
}

impl PythonHandlerFunction {
    /// A function calling `handler` from `code_dir` (inside the function directory of
    /// `policy`), with the extra environment `env`. The interpreter is `$ROTARY_PYTHON` or
    /// `python3`.
    pub fn new(
        handler: String,
        code_dir: PathBuf,
        env: Vec<(String, String)>,
        policy: Arc<ExecPolicy>,
    ) -> Self {
        let python = std::env::var("ROTARY_PYTHON")
            .ok()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "python3".to_owned());
        Self {
            handler,
            code_dir,
            env,
            python,
            policy,
        }
    }

    /// Uses `python` (a path or a name on `PATH`) as the interpreter.
    pub fn with_interpreter(mut self, python: impl Into<String>) -> Self {
        self.python = python.into();
        self
    }
}

#[derive(serde::Deserialize)]
struct LambdaError {
    #[serde(rename = "errorType")]
    error_type: String,
    #[serde(rename = "errorMessage")]
    error_message: String,
}

/// `ValueError: Unable to log into database`, or just the type when the message is empty.
fn error_message(result_line: &str) -> Option<String> {
    let err: LambdaError = serde_json::from_str(result_line).ok()?;
    let message = exec::one_line(&err.error_message, 1024);
    Some(if message.is_empty() {
        err.error_type
    } else {
        format!("{}: {message}", err.error_type)
    })
}

#[async_trait::async_trait]
impl RotationFunction for PythonHandlerFunction {
    async fn invoke(&self, inv: &Invocation) -> Result<Output, FunctionError> {
        let sandbox = self.policy.sandbox().map_err(FunctionError::Spawn)?;
        let code_path = self
            .policy
            .resolve_code_dir(&self.code_dir.to_string_lossy())
            .map_err(FunctionError::Spawn)?;
        let code_dir = code_path.to_string_lossy().into_owned();
        let mut env: Vec<(String, String)> = vec![
            ("PYTHONUNBUFFERED".to_owned(), "1".to_owned()),
            ("PYTHONDONTWRITEBYTECODE".to_owned(), "1".to_owned()),
        ];
        env.extend(self.env.iter().chain(&inv.env).cloned());
        let python_path = match env.iter().rev().find(|(k, _)| k == "PYTHONPATH") {
            Some((_, extra)) if !extra.is_empty() => format!("{code_dir}:{extra}"),
            _ => code_dir.clone(),
        };
        env.push(("PYTHONPATH".to_owned(), python_path));

        let timeout_ms = inv.timeout.as_millis().to_string();
        let done = exec::run(Request {
            program: self.python.clone(),
            args: vec![
                "-u".to_owned(),
                "-B".to_owned(),
                "-c".to_owned(),
                RUNNER.to_owned(),
                self.handler.clone(),
                code_dir,
                timeout_ms,
            ],
            cwd: Some(code_path),
            env,
            stdin: inv.event.to_json(),
            timeout: inv.timeout,
            result_marker: Some(ERROR_MARKER),
            sandbox,
        })
        .await?;
        if done.status.success() {
            return Ok(done.output);
        }
        let message = done
            .result_line
            .as_deref()
            .and_then(error_message)
            .unwrap_or_else(|| exec::exit_message(done.status, done.last_stderr_line.as_deref()));
        Err(FunctionError::Failed {
            message,
            output: done.output,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::{Duration, Instant};

    use super::super::{RotationEvent, Step};
    use super::*;

    fn invocation(timeout: Duration) -> Invocation {
        Invocation {
            event: RotationEvent {
                step: Step::CreateSecret,
                secret_id: "arn:aws:secretsmanager:us-east-1:000000000000:secret:db-AbCdEf".into(),
                client_request_token: "11111111-2222-3333-4444-555555555555".into(),
                rotation_token: "rot-token-0123456789-0123456789-0123456789".into(),
            },
            env: vec![
                (
                    "SECRETS_MANAGER_ENDPOINT".into(),
                    "http://127.0.0.1:8750".into(),
                ),
                (
                    "AWS_ENDPOINT_URL_SECRETS_MANAGER".into(),
                    "http://127.0.0.1:8750".into(),
                ),
                ("AWS_REGION".into(), "eu-central-1".into()),
                ("AWS_DEFAULT_REGION".into(), "eu-central-1".into()),
                ("AWS_ACCESS_KEY_ID".into(), "AKIAROTARYTEST".into()),
                ("AWS_SECRET_ACCESS_KEY".into(), "not-a-real-secret".into()),
                ("AWS_SESSION_TOKEN".into(), "session".into()),
            ],
            timeout,
        }
    }

    fn code_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, body) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, body).unwrap();
        }
        dir
    }

    fn func(handler: &str, dir: &Path) -> PythonHandlerFunction {
        let policy = Arc::new(ExecPolicy::new(
            dir,
            super::super::sandbox::Isolation::Unsandboxed,
        ));
        PythonHandlerFunction::new(handler.to_owned(), ".".into(), vec![], policy)
    }

    #[tokio::test]
    async fn python_handler_success_sees_event_context_and_env() {
        let dir = code_dir(&[(
            "lambda_function.py",
            r#"
import os

def lambda_handler(event, context):
    print("step=%s token=%s" % (event["Step"], event["ClientRequestToken"]))
    print("arn=%s rt=%s" % (event["SecretId"], event["RotationToken"]))
    print("fn=%s mem=%s req=%d" % (context.function_name, context.memory_limit_in_mb,
                                   len(context.aws_request_id)))
    remaining = context.get_remaining_time_in_millis()
    print("remaining_ok=%s" % (0 < remaining <= 20000))
    print("endpoint=%s region=%s" % (os.environ["SECRETS_MANAGER_ENDPOINT"],
                                     os.environ["AWS_REGION"]))
    print("cwd_is_code_dir=%s" % (os.getcwd() == os.path.dirname(os.path.abspath(__file__))))
    return {"ok": True}
"#,
        )]);
        let out = func("lambda_function.lambda_handler", dir.path())
            .invoke(&invocation(Duration::from_secs(20)))
            .await
            .unwrap();
        for want in [
            "step=createSecret token=11111111-2222-3333-4444-555555555555\n",
            "arn=arn:aws:secretsmanager:us-east-1:000000000000:secret:db-AbCdEf \
             rt=rot-token-0123456789-0123456789-0123456789\n",
            "fn=lambda_function mem=128 req=36\n",
            "remaining_ok=True\n",
            "endpoint=http://127.0.0.1:8750 region=eu-central-1\n",
            "cwd_is_code_dir=True\n",
        ] {
            assert!(out.log.contains(want), "missing {want:?} in {:?}", out.log);
        }
    }

    #[tokio::test]
    async fn python_handler_raise_fails_with_exception_line() {
        let dir = code_dir(&[(
            "rotator.py",
            r#"
def handler(event, context):
    print("about to fail")
    raise ValueError("Unable to log into database")
"#,
        )]);
        let err = func("rotator.handler", dir.path())
            .invoke(&invocation(Duration::from_secs(20)))
            .await
            .unwrap_err();
        match err {
            FunctionError::Failed { message, output } => {
                assert_eq!(message, "ValueError: Unable to log into database");
                assert!(output.log.contains("about to fail\n"));
                assert!(output.log.contains("Traceback (most recent call last):"));
                assert!(output
                    .log
                    .contains("ValueError: Unable to log into database\n"));
                assert!(
                    !output.log.contains("ROTARY-LAMBDA-ERROR"),
                    "{}",
                    output.log
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn python_handler_imports_sibling_and_package_modules() {
        let dir = code_dir(&[
            (
                "helper.py",
                "def greet():\n    return 'hello from helper'\n",
            ),
            ("pkg/__init__.py", ""),
            (
                "pkg/entry.py",
                "import helper\n\ndef main(event, context):\n    print(helper.greet())\n",
            ),
        ]);
        let out = func("pkg.entry.main", dir.path())
            .invoke(&invocation(Duration::from_secs(20)))
            .await
            .unwrap();
        assert_eq!(out.log, "hello from helper\n");
    }

    #[tokio::test]
    async fn python_handler_logging_reaches_output() {
        // The AWS templates' logging setup, verbatim.
        let dir = code_dir(&[(
            "lambda_function.py",
            r#"
import logging

logger = logging.getLogger()
logger.setLevel(logging.INFO)

def lambda_handler(event, context):
    logger.info("createSecret: Successfully put secret for ARN %s and version %s." % (
        event["SecretId"], event["ClientRequestToken"]))
    logging.getLogger("child").warning("a warning from a child logger")
    logger.debug("not shown")
"#,
        )]);
        let out = func("lambda_function.lambda_handler", dir.path())
            .invoke(&invocation(Duration::from_secs(20)))
            .await
            .unwrap();
        assert!(
            out.log.contains("[INFO]\t")
                && out
                    .log
                    .contains("\tcreateSecret: Successfully put secret for ARN "),
            "{}",
            out.log
        );
        assert!(out.log.contains("[WARNING]\t"), "{}", out.log);
        assert!(out.log.contains("a warning from a child logger\n"));
        assert!(!out.log.contains("not shown"));
    }

    #[tokio::test]
    async fn python_handler_timeout_kills_quickly() {
        let dir = code_dir(&[(
            "slow.py",
            "import time\n\ndef handler(event, context):\n    print('sleeping')\n    \
             time.sleep(30)\n",
        )]);
        let started = Instant::now();
        let err = func("slow.handler", dir.path())
            .invoke(&invocation(Duration::from_millis(1500)))
            .await
            .unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "{:?}",
            started.elapsed()
        );
        match err {
            FunctionError::Timeout(d, output) => {
                assert_eq!(d, Duration::from_millis(1500));
                assert_eq!(output.log, "sleeping\n");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn python_handler_missing_module_or_function() {
        let dir = code_dir(&[("present.py", "x = 1\n")]);
        let err = func("absent.handler", dir.path())
            .invoke(&invocation(Duration::from_secs(20)))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Runtime.ImportModuleError: Unable to import module 'absent': \
             No module named 'absent'"
        );
        let err = func("present.handler", dir.path())
            .invoke(&invocation(Duration::from_secs(20)))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Runtime.HandlerNotFound: Handler 'handler' missing on module 'present'"
        );
    }

    #[tokio::test]
    async fn python_handler_sys_exit_reports_status() {
        let dir = code_dir(&[(
            "m.py",
            "import sys\n\ndef h(event, context):\n    sys.stderr.write('bye\\n')\n    \
             sys.exit(4)\n",
        )]);
        let err = func("m.h", dir.path())
            .invoke(&invocation(Duration::from_secs(20)))
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "exited with status 4: bye");
    }

    #[tokio::test]
    async fn python_missing_interpreter_is_spawn_error() {
        let dir = code_dir(&[]);
        let err = func("m.h", dir.path())
            .with_interpreter("/nonexistent/python3")
            .invoke(&invocation(Duration::from_secs(20)))
            .await
            .unwrap_err();
        assert!(matches!(err, FunctionError::Spawn(_)), "{err:?}");
        assert!(err.to_string().contains("/nonexistent/python3"));
    }

    /// The templates' client construction, when boto3 is installed (skipped otherwise).
    #[tokio::test]
    async fn python_handler_boto3_client_uses_endpoint() {
        let has_boto3 = std::process::Command::new("python3")
            .args(["-c", "import boto3"])
            .status()
            .is_ok_and(|s| s.success());
        if !has_boto3 {
            eprintln!("boto3 not installed; skipping");
            return;
        }
        let dir = code_dir(&[(
            "lambda_function.py",
            r#"
import os
import boto3

def lambda_handler(event, context):
    client = boto3.client('secretsmanager', endpoint_url=os.environ['SECRETS_MANAGER_ENDPOINT'])
    creds = client._request_signer._credentials
    print("endpoint=%s region=%s key=%s" % (client.meta.endpoint_url, client.meta.region_name,
                                            creds.access_key))
"#,
        )]);
        let out = func("lambda_function.lambda_handler", dir.path())
            .invoke(&invocation(Duration::from_secs(60)))
            .await
            .unwrap();
        assert!(
            out.log.contains(
                "endpoint=http://127.0.0.1:8750 region=eu-central-1 key=AKIAROTARYTEST\n"
            ),
            "{}",
            out.log
        );
    }
}
