//! Where process and Python rotation functions may come from, and the sandbox they run in.
//!
//! A process or Python function runs code on the server's host, so two rules hold for both:
//!
//! - **Only the operator installs functions.** The program of a `Command` and the `CodeDir` of
//!   a Python handler must resolve (symlinks followed) to a path inside the function
//!   directory (`rotary serve --function-dir`). This is checked when the function is
//!   registered and again before every step, so a file swapped for a symlink afterwards is
//!   refused too. Commands are split into words like a POSIX shell would (quotes, escapes)
//!   but never run by a shell.
//! - **Every step runs in a bubblewrap sandbox** (`bwrap`): the host's file system read-only,
//!   with the data directory, the master key, the signing key, the store and the server
//!   user's home replaced by empty directories (or `/dev/null` for files); a private
//!   writable `/tmp`; a fresh `/proc` and PID namespace, so the server's `/proc` entries are
//!   out of sight and every process the step started dies with it; the network shared (a
//!   function must reach its database and Rotary's endpoint). A root server additionally
//!   drops the step to an unprivileged user (`nobody` by default) with `setpriv`, with no
//!   capabilities and `no_new_privs`.
//!
//! When bubblewrap is missing, such functions are refused (at registration and at run time)
//! unless the operator started the server with `--allow-unsandboxed-functions`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// The unprivileged user a root server runs function steps as (`nobody` on Debian).
pub const DEFAULT_UID: u32 = 65534;
/// Its group (`nogroup`).
pub const DEFAULT_GID: u32 = 65534;

/// How process and Python functions are found and run. Built once by the server.
#[derive(Debug, Clone)]
pub struct ExecPolicy {
    function_dir: PathBuf,
    isolation: Isolation,
}

/// Whether steps run sandboxed.
#[derive(Debug, Clone)]
pub enum Isolation {
    /// In the sandbox.
    Sandboxed(Arc<Sandbox>),
    /// Directly, because the operator allowed it with bubblewrap missing.
    Unsandboxed,
    /// Not at all: bubblewrap is missing and the operator did not allow running without it.
    Refused(String),
}

impl ExecPolicy {
    /// A policy for functions installed in `function_dir` (made absolute and canonical when
    /// it exists).
    pub fn new(function_dir: &Path, isolation: Isolation) -> Self {
        let function_dir =
            std::fs::canonicalize(function_dir).unwrap_or_else(|_| function_dir.to_path_buf());
        Self {
            function_dir,
            isolation,
        }
    }

    /// The function directory.
    pub fn function_dir(&self) -> &Path {
        &self.function_dir
    }

    /// The sandbox, when steps run in one.
    pub fn sandbox(&self) -> Result<Option<Arc<Sandbox>>, String> {
        match &self.isolation {
            Isolation::Sandboxed(s) => Ok(Some(Arc::clone(s))),
            Isolation::Unsandboxed => Ok(None),
            Isolation::Refused(why) => Err(why.clone()),
        }
    }

    /// Splits a `Command` into the program (resolved inside the function directory) and its
    /// arguments. The error is one sentence for the API and the rotation history.
    pub fn resolve_command(&self, command: &str) -> Result<(PathBuf, Vec<String>), String> {
        let words = split_command(command)?;
        let (program, args) = words
            .split_first()
            .ok_or_else(|| "Command must not be empty.".to_owned())?;
        let path = self.resolve_inside(program, "Command's program")?;
        let meta = std::fs::metadata(&path)
            .map_err(|e| format!("Command's program {program} cannot be read: {e}."))?;
        if !meta.is_file() {
            return Err(format!("Command's program {program} is not a file."));
        }
        if meta.permissions().mode() & 0o111 == 0 {
            return Err(format!("Command's program {program} is not executable."));
        }
        Ok((path, args.to_vec()))
    }

    /// Resolves a Python handler's `CodeDir` inside the function directory.
    pub fn resolve_code_dir(&self, code_dir: &str) -> Result<PathBuf, String> {
        let path = self.resolve_inside(code_dir, "CodeDir")?;
        if !path.is_dir() {
            return Err(format!("CodeDir is not an existing directory: {code_dir}"));
        }
        Ok(path)
    }

    /// `name` (absolute, or relative to the function directory), canonicalized, if it lies
    /// inside the function directory.
    fn resolve_inside(&self, name: &str, what: &str) -> Result<PathBuf, String> {
        let given = Path::new(name);
        let joined = if given.is_absolute() {
            given.to_path_buf()
        } else {
            self.function_dir.join(given)
        };
        let outside = || {
            format!(
                "{what} {name} is not inside the function directory {}; an operator installs \
                 functions there.",
                self.function_dir.display()
            )
        };
        // Refuse `..` before touching the file system, so a missing file outside the
        // directory is reported as outside rather than as missing.
        if given.components().any(|c| c == Component::ParentDir) {
            return Err(outside());
        }
        let real = std::fs::canonicalize(&joined).map_err(|_| {
            if joined.starts_with(&self.function_dir) {
                format!("{what} {name} does not exist in the function directory.")
            } else {
                outside()
            }
        })?;
        if real.starts_with(&self.function_dir) {
            Ok(real)
        } else {
            Err(outside())
        }
    }
}

/// Splits a command line into words as a POSIX shell would, without expanding anything.
pub fn split_command(command: &str) -> Result<Vec<String>, String> {
    if command.contains('\0') {
        return Err("Command must not contain NUL characters.".to_owned());
    }
    let words = shlex::split(command)
        .ok_or_else(|| "Command has an unterminated quote or escape.".to_owned())?;
    if words.is_empty() {
        return Err("Command must not be empty.".to_owned());
    }
    Ok(words)
}

/// A bubblewrap sandbox configuration.
#[derive(Debug, Clone)]
pub struct Sandbox {
    bwrap: PathBuf,
    /// Paths the function must not see: directories become empty, files `/dev/null`.
    hidden: Vec<PathBuf>,
    /// Read-only binds applied after hiding (the function directory).
    visible: Vec<PathBuf>,
    /// Read-write binds applied last (operator's `--function-writable-dir`).
    writable: Vec<PathBuf>,
    /// `(uid, gid)` to drop to; `Some` only when the server runs as root.
    drop_to: Option<(u32, u32)>,
    setpriv: PathBuf,
}

impl Sandbox {
    /// Finds `bwrap` and checks that it can build a sandbox on this host. `hidden` are the
    /// server's private paths; `function_dir` is made visible again even when it lies inside
    /// one of them; `writable` are directories a function may write.
    pub fn detect(
        hidden: Vec<PathBuf>,
        function_dir: &Path,
        writable: Vec<PathBuf>,
    ) -> Result<Self, String> {
        let bwrap = find_program("bwrap").ok_or_else(|| {
            "bubblewrap (bwrap) is not installed; install the bubblewrap package".to_owned()
        })?;
        let is_root = nix::unistd::geteuid().is_root();
        let setpriv = find_program("setpriv").unwrap_or_else(|| PathBuf::from("/usr/bin/setpriv"));
        let mut hidden: Vec<PathBuf> = hidden
            .into_iter()
            .map(|p| std::fs::canonicalize(&p).unwrap_or(p))
            .collect();
        // The server user's home holds its own credentials (~/.aws, shell history).
        if let Some(home) = std::env::var_os("HOME").map(PathBuf::from) {
            if home.is_absolute() && home != Path::new("/") {
                hidden.push(std::fs::canonicalize(&home).unwrap_or(home));
            }
        }
        hidden.sort();
        hidden.dedup();
        // A path inside a hidden directory is hidden with it; masking it again would only
        // create an empty mount point that shows its name.
        let dirs: Vec<PathBuf> = hidden.iter().filter(|p| p.is_dir()).cloned().collect();
        hidden.retain(|p| !dirs.iter().any(|d| p != d && p.starts_with(d)));
        let function_dir =
            std::fs::canonicalize(function_dir).unwrap_or_else(|_| function_dir.to_path_buf());
        let sandbox = Self {
            bwrap,
            hidden,
            visible: vec![function_dir],
            writable,
            drop_to: is_root.then_some((DEFAULT_UID, DEFAULT_GID)),
            setpriv,
        };
        sandbox.probe()?;
        Ok(sandbox)
    }

    /// Runs `true` in the sandbox once, so a host where bubblewrap cannot create namespaces
    /// is found at start-up rather than at 3 a.m.
    fn probe(&self) -> Result<(), String> {
        let (program, args) = self.wrap(Path::new("true"), &[], None);
        let out = std::process::Command::new(&program)
            .args(&args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| format!("{} could not be started: {e}", program.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            let err = String::from_utf8_lossy(&out.stderr);
            Err(format!(
                "bubblewrap cannot create a sandbox on this host: {}",
                err.trim()
            ))
        }
    }

    /// The program and arguments that run `program args` inside the sandbox, in `cwd` (the
    /// sandbox's `/tmp` when `None`).
    pub fn wrap(
        &self,
        program: &Path,
        args: &[String],
        cwd: Option<&Path>,
    ) -> (PathBuf, Vec<String>) {
        let mut a: Vec<String> = Vec::with_capacity(48 + args.len());
        let mut push = |items: &[&str]| a.extend(items.iter().map(|s| (*s).to_owned()));
        push(&["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]);
        push(&[
            "--perms", "1777", "--tmpfs", "/tmp", "--perms", "1777", "--tmpfs", "/var/tmp",
        ]);
        push(&["--perms", "1777", "--tmpfs", "/dev/shm"]);
        for path in &self.hidden {
            let p = path.to_string_lossy();
            if path.is_dir() {
                push(&["--perms", "0755", "--tmpfs", &p]);
            } else if path.exists() {
                push(&["--ro-bind", "/dev/null", &p]);
            }
        }
        for path in &self.visible {
            if path.is_dir() {
                let p = path.to_string_lossy();
                push(&["--ro-bind", &p, &p]);
            }
        }
        for path in &self.writable {
            if path.is_dir() {
                let p = path.to_string_lossy();
                push(&["--bind", &p, &p]);
            }
        }
        push(&[
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--hostname",
            "rotary-function",
            "--die-with-parent",
            "--new-session",
        ]);
        let cwd = cwd.map_or_else(|| "/tmp".to_owned(), |c| c.to_string_lossy().into_owned());
        push(&["--chdir", &cwd]);
        if let Some((uid, gid)) = self.drop_to {
            push(&["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--"]);
            a.push(self.setpriv.to_string_lossy().into_owned());
            a.push(format!("--reuid={uid}"));
            a.push(format!("--regid={gid}"));
            a.extend(
                [
                    "--clear-groups",
                    "--no-new-privs",
                    "--inh-caps=-all",
                    "--bounding-set=-all",
                    "--",
                ]
                .map(str::to_owned),
            );
        } else {
            a.push("--".to_owned());
        }
        a.push(program.to_string_lossy().into_owned());
        a.extend(args.iter().cloned());
        (self.bwrap.clone(), a)
    }

    /// Whether steps drop to an unprivileged user.
    pub fn drops_privileges(&self) -> bool {
        self.drop_to.is_some()
    }
}

/// The first executable called `name` on `PATH`, or in the usual system directories.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin", "/bin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy_in(dir: &Path) -> ExecPolicy {
        ExecPolicy::new(dir, Isolation::Unsandboxed)
    }

    fn write_exec(path: &Path, body: &str) {
        std::fs::write(path, body).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn split_command_is_shell_words_without_expansion() {
        assert_eq!(
            split_command(r#"rotate.sh --name 'a b' "c d" e\ f $HOME"#).unwrap(),
            ["rotate.sh", "--name", "a b", "c d", "e f", "$HOME"]
        );
        assert!(split_command("  ").is_err());
        assert!(split_command("x 'open").is_err());
        assert!(split_command("x\0y").is_err());
    }

    #[test]
    fn resolve_command_accepts_programs_inside_only() {
        let root = tempfile::tempdir().unwrap();
        let fdir = root.path().join("functions");
        std::fs::create_dir(&fdir).unwrap();
        std::fs::create_dir(fdir.join("pg")).unwrap();
        write_exec(&fdir.join("rot.sh"), "#!/bin/sh\n");
        write_exec(&fdir.join("pg/rot"), "#!/bin/sh\n");
        std::fs::write(fdir.join("plain.txt"), "x").unwrap();
        write_exec(&root.path().join("outside.sh"), "#!/bin/sh\n");
        std::os::unix::fs::symlink(root.path().join("outside.sh"), fdir.join("link.sh")).unwrap();
        std::os::unix::fs::symlink("/bin/sh", fdir.join("sh")).unwrap();
        let p = policy_in(&fdir);
        let real = std::fs::canonicalize(&fdir).unwrap();

        let (prog, args) = p.resolve_command("rot.sh a 'b c'").unwrap();
        assert_eq!(prog, real.join("rot.sh"));
        assert_eq!(args, ["a", "b c"]);
        assert_eq!(p.resolve_command("pg/rot").unwrap().0, real.join("pg/rot"));
        let abs = format!("{}/rot.sh", fdir.display());
        assert_eq!(p.resolve_command(&abs).unwrap().0, real.join("rot.sh"));

        for (cmd, want) in [
            (
                "sh -c 'cat /etc/shadow'",
                "not inside the function directory",
            ),
            ("/bin/sh -c id", "not inside the function directory"),
            ("../outside.sh", "not inside the function directory"),
            ("link.sh", "not inside the function directory"),
            ("missing.sh", "does not exist in the function directory"),
            ("plain.txt", "is not executable"),
            ("pg", "is not a file"),
            ("", "must not be empty"),
        ] {
            let err = p.resolve_command(cmd).unwrap_err();
            assert!(err.contains(want), "{cmd:?}: {err}");
        }
        let abs_outside = format!("{}/outside.sh", root.path().display());
        assert!(p.resolve_command(&abs_outside).is_err());
    }

    #[test]
    fn resolve_code_dir_inside_only() {
        let root = tempfile::tempdir().unwrap();
        let fdir = root.path().join("functions");
        std::fs::create_dir_all(fdir.join("pg")).unwrap();
        let p = policy_in(&fdir);
        assert!(p.resolve_code_dir("pg").is_ok());
        assert!(p
            .resolve_code_dir(&fdir.join("pg").to_string_lossy())
            .is_ok());
        assert!(p.resolve_code_dir(".").is_ok());
        for bad in ["..", "/tmp", "../functions/pg/.."] {
            assert!(p.resolve_code_dir(bad).is_err(), "{bad}");
        }
        assert!(p
            .resolve_code_dir("missing")
            .unwrap_err()
            .contains("does not exist"));
    }

    #[test]
    fn refused_isolation_reports_why() {
        let p = ExecPolicy::new(
            Path::new("/nonexistent"),
            Isolation::Refused("no bwrap".into()),
        );
        assert_eq!(p.sandbox().unwrap_err(), "no bwrap");
    }
}
