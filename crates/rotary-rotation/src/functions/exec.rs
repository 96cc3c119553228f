//! Runs one child process for a step (shared by process and Python functions).
//!
//! The child gets its own process group, the event on stdin (then EOF), and a cleared
//! environment rebuilt from a short pass-through list plus what the caller gives. Its stdout
//! and stderr are read concurrently and merged line by line into one capped log. When the
//! step ends — by exit or by timeout — the whole group is sent SIGKILL, so `sh -c 'sleep 100'`
//! grandchildren and stray background jobs die with it.
//!
//! Group killing uses `nix::sys::signal::killpg`, a safe wrapper (the workspace forbids
//! `unsafe`); the group is created with tokio's safe `Command::process_group(0)`. A process
//! that leaves the group on purpose (`setsid`, double fork into a new group) escapes; we then
//! stop reading its pipes after a grace period instead of waiting for them.

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc as StdArc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio::task::JoinHandle;

use super::sandbox::Sandbox;
use super::{FunctionError, Output, OUTPUT_CAP_BYTES};

/// Variables copied from the server's environment; everything else (notably any `ROTARY_*`
/// secrets and the server's own AWS credentials) is withheld.
const PASSTHROUGH_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TMPDIR",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "PYENV_ROOT",
    "PYENV_VERSION",
    "VIRTUAL_ENV",
];

/// Set before the function's and the invocation's env (which may override them), so an AWS
/// SDK in the function uses only the credentials it is given and never the server user's
/// `~/.aws` profiles or instance metadata.
const DEFAULT_ENV: &[(&str, &str)] = &[
    ("AWS_CONFIG_FILE", "/dev/null"),
    ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
];

/// Set for sandboxed steps, before the function's and the invocation's env.
const SANDBOX_ENV: &[(&str, &str)] = &[("HOME", "/tmp"), ("TMPDIR", "/tmp")];

/// How long to keep reading output after the main process is gone.
const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// A line longer than this is logged in pieces.
const MAX_PARTIAL_LINE: usize = 8 * 1024;
/// Longest last-stderr-line kept for an error message.
const MAX_MESSAGE_CHARS: usize = 1024;

/// One process to run.
pub(super) struct Request {
    pub program: String,
    pub args: Vec<String>,
    pub cwd: Option<PathBuf>,
    /// Applied in order after the pass-through and default variables; later entries win.
    pub env: Vec<(String, String)>,
    pub stdin: Vec<u8>,
    pub timeout: Duration,
    /// A stderr line starting with this is a machine-readable result: kept out of the log
    /// and returned in [`Finished::result_line`] (without the prefix).
    pub result_marker: Option<&'static str>,
    /// Run inside this sandbox (see [`super::sandbox`]); `None` runs the program directly.
    pub sandbox: Option<StdArc<Sandbox>>,
}

/// A process that exited within its timeout.
pub(super) struct Finished {
    pub status: ExitStatus,
    pub output: Output,
    pub last_stderr_line: Option<String>,
    pub result_line: Option<String>,
}

/// Spawns `req`, feeds stdin, captures output and enforces the timeout.
pub(super) async fn run(req: Request) -> Result<Finished, FunctionError> {
    let mut cmd = match &req.sandbox {
        Some(sandbox) => {
            let (bwrap, args) = sandbox.wrap(
                std::path::Path::new(&req.program),
                &req.args,
                req.cwd.as_deref(),
            );
            let mut cmd = Command::new(bwrap);
            cmd.args(args).current_dir("/");
            cmd
        }
        None => {
            let mut cmd = Command::new(&req.program);
            cmd.args(&req.args);
            if let Some(dir) = &req.cwd {
                cmd.current_dir(dir);
            }
            cmd
        }
    };
    cmd.env_clear();
    for key in PASSTHROUGH_ENV {
        if let Some(value) = std::env::var_os(key) {
            cmd.env(key, value);
        }
    }
    for (key, value) in std::env::vars_os() {
        if key.to_str().is_some_and(|k| k.starts_with("LC_")) {
            cmd.env(key, value);
        }
    }
    cmd.envs(DEFAULT_ENV.iter().copied());
    if req.sandbox.is_some() {
        // The server user's home is hidden and the sandbox's /tmp is the only writable place.
        cmd.envs(SANDBOX_ENV.iter().copied());
    }
    cmd.envs(req.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);

    let mut child = cmd
        .spawn()
        .map_err(|e| FunctionError::Spawn(format!("{}: {e}", req.program)))?;
    // Declared after `child` so it drops first: the group is killed while the leader is not
    // yet reaped (its pid, and so the group id, cannot be reused meanwhile).
    let mut group = GroupGuard::new(child.id());

    let capture = Arc::new(Mutex::new(Capture::default()));
    let mut tasks = Tasks(Vec::new());
    if let Some(mut stdin) = child.stdin.take() {
        let input = req.stdin;
        tasks.0.push(tokio::spawn(async move {
            // A function that ignores stdin may exit before reading it: EPIPE is fine.
            let _ = stdin.write_all(&input).await;
            let _ = stdin.shutdown().await;
        }));
    }
    if let Some(stdout) = child.stdout.take() {
        let sink = Sink::new(Arc::clone(&capture), false, None);
        tasks.0.push(tokio::spawn(pump(stdout, sink)));
    }
    if let Some(stderr) = child.stderr.take() {
        let sink = Sink::new(Arc::clone(&capture), true, req.result_marker);
        tasks.0.push(tokio::spawn(pump(stderr, sink)));
    }

    let waited = tokio::time::timeout(req.timeout, child.wait()).await;
    let outcome = match waited {
        Ok(Ok(status)) => {
            // The step is over once the main process exits (Lambda freezes the sandbox at
            // that point); stragglers it left in the background are killed.
            group.kill();
            Ok(status)
        }
        Ok(Err(e)) => {
            group.kill();
            let _ = child.start_kill();
            Err(format!("waiting for the process failed: {e}"))
        }
        Err(_elapsed) => {
            group.kill();
            let _ = child.start_kill();
            let _ = tokio::time::timeout(DRAIN_GRACE, child.wait()).await;
            Err(String::new())
        }
    };
    tasks.drain(&capture).await;

    let (output, last_stderr_line, result_line) = {
        let mut cap = lock(&capture);
        let log = std::mem::take(&mut cap.log);
        (
            Output { log: log.finish() },
            cap.last_stderr_line.take(),
            cap.result_line.take(),
        )
    };
    match outcome {
        Ok(status) => Ok(Finished {
            status,
            output,
            last_stderr_line,
            result_line,
        }),
        Err(message) if message.is_empty() => Err(FunctionError::Timeout(req.timeout, output)),
        Err(message) => Err(FunctionError::Failed { message, output }),
    }
}

/// `exited with status N[: last stderr line]`, or `killed by signal N[: …]`.
pub(super) fn exit_message(status: ExitStatus, last_stderr_line: Option<&str>) -> String {
    let base = match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => "exited abnormally".to_owned(),
    };
    match last_stderr_line {
        Some(line) => format!("{base}: {line}"),
        None => base,
    }
}

/// Collapses whitespace runs (newlines included) to one space and caps the length, for
/// one-line error messages.
pub(super) fn one_line(text: &str, max_chars: usize) -> String {
    let mut out = String::new();
    for (i, word) in text.split_whitespace().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(word);
        if out.chars().count() > max_chars {
            out = out.chars().take(max_chars).collect();
            out.push('…');
            break;
        }
    }
    out
}

/// Sends SIGKILL to the child's process group once, on [`GroupGuard::kill`] or on drop (the
/// invocation future was cancelled).
struct GroupGuard(Option<Pid>);

impl GroupGuard {
    fn new(pid: Option<u32>) -> Self {
        Self(pid.and_then(|p| i32::try_from(p).ok()).map(Pid::from_raw))
    }

    fn kill(&mut self) {
        if let Some(pgid) = self.0.take() {
            // ESRCH (group already gone) is the normal case after a clean exit.
            let _ = killpg(pgid, Signal::SIGKILL);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Background I/O tasks, aborted if the invocation is dropped.
struct Tasks(Vec<JoinHandle<()>>);

impl Tasks {
    /// Waits up to [`DRAIN_GRACE`] for the pipes to close, then gives up on them.
    async fn drain(&mut self, capture: &Mutex<Capture>) {
        let all = async {
            for task in &mut self.0 {
                let _ = task.await;
            }
        };
        if tokio::time::timeout(DRAIN_GRACE, all).await.is_err() {
            lock(capture).log.push(
                b"\n[rotary: output pipes still open after the process ended; stopped reading]\n",
            );
        }
        for task in &self.0 {
            task.abort();
        }
    }
}

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

#[derive(Default)]
struct Capture {
    log: CappedLog,
    last_stderr_line: Option<String>,
    result_line: Option<String>,
}

fn lock(capture: &Mutex<Capture>) -> MutexGuard<'_, Capture> {
    // A panicking reader leaves consistent data behind; keep what it captured.
    capture
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Where one stream's lines go.
struct Sink {
    capture: Arc<Mutex<Capture>>,
    is_stderr: bool,
    marker: Option<&'static str>,
}

impl Sink {
    fn new(capture: Arc<Mutex<Capture>>, is_stderr: bool, marker: Option<&'static str>) -> Self {
        Self {
            capture,
            is_stderr,
            marker,
        }
    }

    fn line(&self, bytes: &[u8]) {
        let mut cap = lock(&self.capture);
        if self.is_stderr {
            let text = String::from_utf8_lossy(bytes);
            let text = text.trim_end_matches(['\n', '\r']);
            if let Some(rest) = self.marker.and_then(|m| text.strip_prefix(m)) {
                cap.result_line = Some(rest.to_owned());
                return;
            }
            let trimmed = text.trim();
            if !trimmed.is_empty() {
                cap.last_stderr_line = Some(one_line(trimmed, MAX_MESSAGE_CHARS));
            }
        }
        cap.log.push(bytes);
        if !bytes.ends_with(b"\n") {
            cap.log.push(b"\n");
        }
    }
}

/// Reads a stream to EOF, handing complete lines (or long pieces) to `sink`.
async fn pump<R: AsyncRead + Unpin>(mut reader: R, sink: Sink) {
    let mut buf = vec![0u8; 8192];
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let n = match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buf[..n]);
        let mut start = 0;
        while let Some(pos) = pending[start..].iter().position(|&b| b == b'\n') {
            let end = start + pos + 1;
            sink.line(&pending[start..end]);
            start = end;
        }
        pending.drain(..start);
        if pending.len() >= MAX_PARTIAL_LINE {
            sink.line(&pending);
            pending.clear();
        }
    }
    if !pending.is_empty() {
        sink.line(&pending);
    }
}

/// A byte log that keeps only its last [`OUTPUT_CAP_BYTES`].
#[derive(Debug, Default)]
pub(super) struct CappedLog {
    buf: Vec<u8>,
    dropped: u64,
}

impl CappedLog {
    /// Appends bytes, dropping the oldest once well past the cap (amortized).
    pub(super) fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() > 2 * OUTPUT_CAP_BYTES {
            self.trim_to(OUTPUT_CAP_BYTES);
        }
    }

    fn trim_to(&mut self, keep: usize) {
        if self.buf.len() > keep {
            let excess = self.buf.len() - keep;
            self.buf.drain(..excess);
            self.dropped += excess as u64;
        }
    }

    /// The text, at most [`OUTPUT_CAP_BYTES`] bytes: the tail, preceded by a marker line
    /// saying how much was dropped.
    pub(super) fn finish(mut self) -> String {
        self.trim_to(OUTPUT_CAP_BYTES);
        if self.dropped == 0 {
            let text = String::from_utf8_lossy(&self.buf).into_owned();
            if text.len() <= OUTPUT_CAP_BYTES {
                return text;
            }
            // Replacement characters grew it past the cap: fall through and cut.
        }
        // Leave room for the marker (its length varies with the count; 64 bytes is plenty).
        self.trim_to(OUTPUT_CAP_BYTES - 64);
        let mut tail = String::from_utf8_lossy(&self.buf).into_owned();
        while tail.len() > OUTPUT_CAP_BYTES - 64 {
            let mut cut = tail.len() - (OUTPUT_CAP_BYTES - 64);
            while !tail.is_char_boundary(cut) {
                cut += 1;
            }
            tail.drain(..cut);
        }
        // Start at a line boundary when one is near, so the first line is whole.
        if let Some(pos) = tail.get(..256).and_then(|head| head.find('\n')) {
            tail.drain(..=pos);
        }
        format!("[rotary: output truncated, earlier bytes dropped]\n{tail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_log_keeps_small_output() {
        let mut log = CappedLog::default();
        log.push(b"hello\n");
        log.push(b"world\n");
        assert_eq!(log.finish(), "hello\nworld\n");
    }

    #[test]
    fn capped_log_keeps_tail_and_marks() {
        let mut log = CappedLog::default();
        for i in 0..20_000 {
            log.push(format!("line {i}\n").as_bytes());
        }
        let text = log.finish();
        assert!(text.len() <= OUTPUT_CAP_BYTES, "{}", text.len());
        assert!(text.starts_with("[rotary: output truncated"));
        assert!(text.ends_with("line 19999\n"));
        // The first kept line is whole.
        let second = text.lines().nth(1).unwrap();
        assert!(second.starts_with("line "), "{second}");
    }

    #[test]
    fn capped_log_cuts_on_char_boundary() {
        let mut log = CappedLog::default();
        log.push("é".repeat(OUTPUT_CAP_BYTES).as_bytes());
        let text = log.finish();
        assert!(text.len() <= OUTPUT_CAP_BYTES);
        assert!(text.ends_with('é'));
    }

    #[test]
    fn one_line_collapses_and_caps() {
        assert_eq!(one_line("  a\n b\t\tc ", 100), "a b c");
        assert_eq!(one_line("abcdef", 3), "abc…");
    }
}
