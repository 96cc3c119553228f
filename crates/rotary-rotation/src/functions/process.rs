//! A rotation function that is a shell command, run once per step.
//!
//! The command runs as `sh -c COMMAND` with the event JSON on stdin (then EOF). Its
//! environment is a short pass-through list from the server (`PATH`, `HOME`, locale, TLS CA
//! paths, …), then the function's `Env`, then the invocation's (endpoint, region, temporary
//! credentials), later entries winning. Exit status 0 is success; anything else fails the
//! step with `exited with status N: <last stderr line>`. The working directory is the
//! server's.

use super::exec::{self, Request};
use super::{FunctionError, Invocation, Output, RotationFunction};

/// Runs `sh -c <command>` for each step.
#[derive(Debug, Clone)]
pub struct ProcessFunction {
    command: String,
    env: Vec<(String, String)>,
}

impl ProcessFunction {
    /// A function running `command` with the extra environment `env`.
    pub fn new(command: String, env: Vec<(String, String)>) -> Self {
        Self { command, env }
    }
}

#[async_trait::async_trait]
impl RotationFunction for ProcessFunction {
    async fn invoke(&self, inv: &Invocation) -> Result<Output, FunctionError> {
        let env = self.env.iter().chain(&inv.env).cloned().collect();
        let done = exec::run(Request {
            program: "sh".to_owned(),
            args: vec!["-c".to_owned(), self.command.clone()],
            cwd: None,
            env,
            stdin: inv.event.to_json(),
            timeout: inv.timeout,
            result_marker: None,
        })
        .await?;
        if done.status.success() {
            Ok(done.output)
        } else {
            Err(FunctionError::Failed {
                message: exec::exit_message(done.status, done.last_stderr_line.as_deref()),
                output: done.output,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::super::{RotationEvent, Step, OUTPUT_CAP_BYTES};
    use super::*;

    fn invocation(timeout: Duration, env: &[(&str, &str)]) -> Invocation {
        Invocation {
            event: RotationEvent {
                step: Step::SetSecret,
                secret_id: "arn:aws:secretsmanager:us-east-1:000000000000:secret:db-AbCdEf".into(),
                client_request_token: "11111111-2222-3333-4444-555555555555".into(),
                rotation_token: "rot-token-0123456789-0123456789-0123456789".into(),
            },
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            timeout,
        }
    }

    fn func(command: &str, env: &[(&str, &str)]) -> ProcessFunction {
        ProcessFunction::new(
            command.to_owned(),
            env.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[tokio::test]
    async fn process_exit_zero_succeeds_with_output() {
        let f = func("echo to-stdout; echo to-stderr >&2; echo again", &[]);
        let out = f
            .invoke(&invocation(Duration::from_secs(10), &[]))
            .await
            .unwrap();
        for want in ["to-stdout\n", "to-stderr\n", "again\n"] {
            assert!(out.log.contains(want), "{:?}", out.log);
        }
    }

    #[tokio::test]
    async fn process_exit_nonzero_fails_with_status_and_stderr() {
        let f = func(
            "echo working; echo 'first problem' >&2; echo 'db refused login' >&2; exit 3",
            &[],
        );
        let err = f
            .invoke(&invocation(Duration::from_secs(10), &[]))
            .await
            .unwrap_err();
        match err {
            FunctionError::Failed { message, output } => {
                assert_eq!(message, "exited with status 3: db refused login");
                assert!(output.log.contains("working\n"));
                assert!(output.log.contains("first problem\n"));
            }
            other => panic!("unexpected {other:?}"),
        }
        let err = func("exit 7", &[])
            .invoke(&invocation(Duration::from_secs(10), &[]))
            .await;
        assert_eq!(err.unwrap_err().to_string(), "exited with status 7");
    }

    #[tokio::test]
    async fn process_stdin_is_the_event() {
        let f = func("cat", &[]);
        let inv = invocation(Duration::from_secs(10), &[]);
        let out = f.invoke(&inv).await.unwrap();
        let got: serde_json::Value = serde_json::from_str(out.log.trim()).unwrap();
        assert_eq!(
            got,
            serde_json::json!({
                "Step": "setSecret",
                "SecretId": inv.event.secret_id,
                "ClientRequestToken": inv.event.client_request_token,
                "RotationToken": inv.event.rotation_token,
            })
        );
        // stdin is closed after the event, so a reader sees EOF rather than hanging.
        let out = func("cat >/dev/null; echo eof-seen", &[])
            .invoke(&invocation(Duration::from_secs(10), &[]))
            .await
            .unwrap();
        assert_eq!(out.log, "eof-seen\n");
    }

    #[tokio::test]
    async fn process_env_function_then_invocation_wins() {
        let f = func(
            "echo \"ep=$SECRETS_MANAGER_ENDPOINT region=$AWS_REGION only=$ONLY_FN \
             cfg=$AWS_CONFIG_FILE\"",
            &[("AWS_REGION", "from-function"), ("ONLY_FN", "fn-value")],
        );
        let inv = invocation(
            Duration::from_secs(10),
            &[
                ("SECRETS_MANAGER_ENDPOINT", "http://127.0.0.1:8750"),
                ("AWS_REGION", "eu-west-1"),
            ],
        );
        let out = f.invoke(&inv).await.unwrap();
        assert_eq!(
            out.log,
            "ep=http://127.0.0.1:8750 region=eu-west-1 only=fn-value cfg=/dev/null\n"
        );
    }

    #[tokio::test]
    async fn process_does_not_inherit_server_env() {
        // cargo sets CARGO_MANIFEST_DIR for the test process; it must not reach the function.
        assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
        let f = func(
            "echo \"[${CARGO_MANIFEST_DIR-unset}] path-set=${PATH:+yes}\"",
            &[],
        );
        let out = f
            .invoke(&invocation(Duration::from_secs(10), &[]))
            .await
            .unwrap();
        assert_eq!(out.log, "[unset] path-set=yes\n");
    }

    #[tokio::test]
    async fn process_timeout_kills_whole_group_quickly() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("bg.pid");
        // A background grandchild plus a foreground one; both must die.
        let cmd = format!(
            "echo started; sleep 30 & echo $! > {}; sleep 30",
            pid_file.display()
        );
        let started = Instant::now();
        let err = func(&cmd, &[])
            .invoke(&invocation(Duration::from_millis(700), &[]))
            .await
            .unwrap_err();
        let elapsed = started.elapsed();
        assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
        match err {
            FunctionError::Timeout(d, output) => {
                assert_eq!(d, Duration::from_millis(700));
                assert_eq!(output.log, "started\n");
            }
            other => panic!("unexpected {other:?}"),
        }
        let pid = std::fs::read_to_string(&pid_file).unwrap();
        assert_process_gone(pid.trim());
    }

    #[tokio::test]
    async fn process_background_job_is_killed_after_exit() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("bg.pid");
        // The background job keeps stdout open; the step must still end promptly.
        let cmd = format!("sleep 30 & echo $! > {}; echo done", pid_file.display());
        let started = Instant::now();
        let out = func(&cmd, &[])
            .invoke(&invocation(Duration::from_secs(20), &[]))
            .await
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(out.log, "done\n");
        let pid = std::fs::read_to_string(&pid_file).unwrap();
        assert_process_gone(pid.trim());
    }

    #[tokio::test]
    async fn process_group_is_killed_when_invocation_is_cancelled() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("bg.pid");
        let cmd = format!("sleep 30 & echo $! > {}; sleep 30", pid_file.display());
        let f = func(&cmd, &[]);
        let inv = invocation(Duration::from_secs(60), &[]);
        // Dropping the future (server shutdown, cancelled rotation) must not leak processes.
        let cancelled = tokio::time::timeout(Duration::from_millis(800), f.invoke(&inv)).await;
        assert!(cancelled.is_err());
        let pid = std::fs::read_to_string(&pid_file).unwrap();
        assert_process_gone(pid.trim());
    }

    /// Gone, or a zombie waiting for a reaper that this container may not have.
    fn assert_process_gone(pid: &str) {
        for _ in 0..50 {
            match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                Err(_) => return,
                Ok(stat)
                    if stat
                        .rsplit(')')
                        .next()
                        .unwrap()
                        .trim_start()
                        .starts_with('Z') =>
                {
                    return
                }
                Ok(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        panic!("process {pid} still running");
    }

    #[tokio::test]
    async fn process_output_is_capped_keeping_tail() {
        let f = func(
            "i=0; while [ $i -lt 3000 ]; do echo \"line $i padding padding padding\"; \
                      i=$((i+1)); done; head -c 100000 /dev/zero | tr '\\0' x; echo; echo THE-END",
            &[],
        );
        let out = f
            .invoke(&invocation(Duration::from_secs(30), &[]))
            .await
            .unwrap();
        assert!(out.log.len() <= OUTPUT_CAP_BYTES, "{}", out.log.len());
        assert!(
            out.log.starts_with("[rotary: output truncated"),
            "{}",
            &out.log[..80]
        );
        assert!(out.log.ends_with("THE-END\n"));
        assert!(!out.log.contains("line 0 "));
    }

    #[tokio::test]
    async fn process_missing_command_is_exit_127() {
        let err = func("/nonexistent/rotator", &[])
            .invoke(&invocation(Duration::from_secs(10), &[]))
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("exited with status 127: "), "{msg}");
        assert!(msg.contains("/nonexistent/rotator"), "{msg}");
    }
}
