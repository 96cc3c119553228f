//! A rotation function that is a program from the function directory, run once per step.
//!
//! The `Command` is split into words like a POSIX shell would (quotes and escapes, no
//! expansion) and run without a shell; its first word must resolve to an executable file
//! inside the function directory, checked again before every step (see [`super::sandbox`]).
//! The event JSON is on stdin (then EOF). The environment is a short pass-through list from
//! the server (`PATH`, locale, TLS CA paths, …), then the function's `Env`, then the
//! invocation's (endpoint, region, temporary credentials), later entries winning. Exit
//! status 0 is success; anything else fails the step with `exited with status N: <last
//! stderr line>`. Sandboxed, it runs in the sandbox's `/tmp`; unsandboxed, in the function
//! directory.

use std::sync::Arc;

use super::exec::{self, Request};
use super::sandbox::ExecPolicy;
use super::{FunctionError, Invocation, Output, RotationFunction};

/// Runs the program of a `Command` for each step.
#[derive(Debug, Clone)]
pub struct ProcessFunction {
    command: String,
    env: Vec<(String, String)>,
    policy: Arc<ExecPolicy>,
}

impl ProcessFunction {
    /// A function running `command` with the extra environment `env` under `policy`.
    pub fn new(command: String, env: Vec<(String, String)>, policy: Arc<ExecPolicy>) -> Self {
        Self {
            command,
            env,
            policy,
        }
    }
}

#[async_trait::async_trait]
impl RotationFunction for ProcessFunction {
    async fn invoke(&self, inv: &Invocation) -> Result<Output, FunctionError> {
        let sandbox = self.policy.sandbox().map_err(FunctionError::Spawn)?;
        let (program, args) = self
            .policy
            .resolve_command(&self.command)
            .map_err(FunctionError::Spawn)?;
        let env = self.env.iter().chain(&inv.env).cloned().collect();
        let cwd = sandbox
            .is_none()
            .then(|| self.policy.function_dir().to_path_buf());
        let done = exec::run(Request {
            program: program.to_string_lossy().into_owned(),
            args,
            cwd,
            env,
            stdin: inv.event.to_json(),
            timeout: inv.timeout,
            result_marker: None,
            sandbox,
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
pub(crate) mod tests {
    use std::time::{Duration, Instant};

    use super::super::sandbox::Isolation;
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

    /// A function whose program is a `/bin/sh` script with `body`, installed in a fresh
    /// function directory (kept alive by the returned guard), run unsandboxed: these tests
    /// are about the executor; the sandbox has its own tests in `sandbox_run`.
    fn func(body: &str, env: &[(&str, &str)]) -> ProcessFunction {
        let (f, dir) = func_in(body, env, |_| Isolation::Unsandboxed);
        std::mem::forget(dir);
        f
    }

    pub(crate) fn func_in(
        body: &str,
        env: &[(&str, &str)],
        isolation: impl FnOnce(&std::path::Path) -> Isolation,
    ) -> (ProcessFunction, tempfile::TempDir) {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let script = dir.path().join("step.sh");
        std::fs::write(&script, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let policy = Arc::new(ExecPolicy::new(dir.path(), isolation(dir.path())));
        let env = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        (ProcessFunction::new("step.sh".to_owned(), env, policy), dir)
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
    async fn process_program_outside_function_dir_is_refused_at_run() {
        let (f, dir) = func_in("echo ran", &[], |_| Isolation::Unsandboxed);
        // The installed program is replaced by a symlink to a program outside.
        let script = dir.path().join("step.sh");
        std::fs::remove_file(&script).unwrap();
        std::os::unix::fs::symlink("/bin/echo", &script).unwrap();
        let err = f
            .invoke(&invocation(Duration::from_secs(10), &[]))
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("not inside the function directory"), "{msg}");
        std::fs::remove_file(&script).unwrap();
        let err = f
            .invoke(&invocation(Duration::from_secs(10), &[]))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
    }

    #[tokio::test]
    async fn process_refused_isolation_never_runs() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let (f, _d) = func_in(&format!("touch {}", marker.display()), &[], |_| {
            Isolation::Refused("bubblewrap (bwrap) is not installed".into())
        });
        let err = f
            .invoke(&invocation(Duration::from_secs(10), &[]))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("bwrap"), "{err}");
        assert!(!marker.exists());
    }
}

/// The sandbox as a function sees it. These need bubblewrap (`apt-get install bubblewrap`;
/// `.ci/run` installs it) and fail without it rather than skip.
#[cfg(test)]
mod sandbox_run {
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;
    use std::time::Duration;

    use super::super::sandbox::{Isolation, Sandbox};
    use super::super::{RotationEvent, Step};
    use super::tests::func_in;
    use super::*;

    fn invocation() -> Invocation {
        Invocation {
            event: RotationEvent {
                step: Step::SetSecret,
                secret_id: "arn:aws:secretsmanager:us-east-1:000000000000:secret:db-AbCdEf".into(),
                client_request_token: "11111111-2222-3333-4444-555555555555".into(),
                rotation_token: "rot-token".into(),
            },
            env: vec![("AWS_SECRET_ACCESS_KEY".into(), "session-secret".into())],
            timeout: Duration::from_secs(20),
        }
    }

    /// A data directory like the server's (0700, a 0600 key) and a sandbox hiding it.
    fn private_dir() -> (tempfile::TempDir, std::path::PathBuf) {
        let data = tempfile::tempdir().unwrap();
        let key = data.path().join("master.key");
        std::fs::write(&key, "MASTER-KEY-CANARY").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        (data, key)
    }

    fn sandbox(hidden: &[&Path], function_dir: &Path) -> Isolation {
        let sandbox = Sandbox::detect(
            hidden.iter().map(|p| p.to_path_buf()).collect(),
            function_dir,
            vec![],
        )
        .expect("bubblewrap must be installed for these tests (apt-get install bubblewrap)");
        Isolation::Sandboxed(std::sync::Arc::new(sandbox))
    }

    #[tokio::test]
    async fn sandboxed_step_sees_no_keys_no_server_and_leaves_nothing_behind() {
        let (data, key) = private_dir();
        let outside_key = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(outside_key.path(), "SIGNING-KEY-CANARY").unwrap();
        let canary = format!("rotary-canary-{}", std::process::id());
        let body = format!(
            r#"
echo "uid=$(id -u)"
cat {key} 2>/dev/null || echo "no-master-key"
cat {signing} 2>/dev/null | grep -q CANARY && echo "read-signing-key" || echo "no-signing-key"
ls {data} 2>/dev/null | grep -q master && echo "listed-data-dir" || echo "no-data-dir"
ppid_env=$(cat /proc/{server}/environ 2>/dev/null | tr '\0' '\n' | grep -c CARGO)
echo "server-environ-lines=${{ppid_env:-0}}"
echo "secret=$AWS_SECRET_ACCESS_KEY home=$HOME"
touch /tmp/scratch && echo "tmp-writable"
setsid sh -c 'exec -a {canary} sleep 300' </dev/null >/dev/null 2>&1 &
sleep 0.2
echo done
"#,
            key = key.display(),
            signing = outside_key.path().display(),
            data = data.path().display(),
            server = std::process::id(),
        );
        let hidden = [data.path(), outside_key.path()];
        let (f, _dir) = func_in(&body, &[], |fdir| sandbox(&hidden, fdir));
        let out = f.invoke(&invocation()).await.unwrap();
        let log = out.log;
        let is_root = nix::unistd::geteuid().is_root();
        if is_root {
            assert!(log.contains("uid=65534\n"), "{log}");
        }
        for want in [
            "no-master-key\n",
            "no-signing-key\n",
            "no-data-dir\n",
            "server-environ-lines=0\n",
            "secret=session-secret home=/tmp\n",
            "tmp-writable\n",
            "done\n",
        ] {
            assert!(log.contains(want), "missing {want:?} in {log}");
        }
        assert!(!log.contains("MASTER-KEY-CANARY"), "{log}");
        // The setsid child is gone with the step: no process anywhere carries the canary.
        for _ in 0..50 {
            if !process_with_arg0(&canary) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("a process started by the step survived it: {canary}");
    }

    #[tokio::test]
    async fn sandboxed_step_timeout_kills_everything() {
        let canary = format!("rotary-timeout-canary-{}", std::process::id());
        let body = format!(
            "setsid sh -c 'exec -a {canary} sleep 300' </dev/null >/dev/null 2>&1 &\necho started\nsleep 300"
        );
        let (f, _dir) = func_in(&body, &[], |fdir| sandbox(&[], fdir));
        let mut inv = invocation();
        inv.timeout = Duration::from_millis(1500);
        let err = f.invoke(&inv).await.unwrap_err();
        assert!(matches!(err, FunctionError::Timeout(..)), "{err:?}");
        for _ in 0..100 {
            if !process_with_arg0(&canary) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("a process started by the step survived its timeout: {canary}");
    }

    /// Whether a live (non-zombie) process's argv[0] is `arg0`.
    fn process_with_arg0(arg0: &str) -> bool {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return false;
        };
        entries.flatten().any(|e| {
            let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let first = cmdline.split(|b| *b == 0).next().unwrap_or_default();
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            let zombie = stat
                .rsplit(')')
                .next()
                .is_some_and(|s| s.trim_start().starts_with('Z'));
            first == arg0.as_bytes() && !zombie
        })
    }
}
