//! Throwaway PostgreSQL servers for tests (cargo feature `testing`).
//!
//! [`database_url`] gives each test a fresh, empty database (`CREATE DATABASE t_…`) on a
//! server shared by the whole test binary, started on first use; tests run in parallel
//! without seeing each other. With `ROTARY_TEST_POSTGRES_URL` set (a superuser URL of any
//! server, e.g. `postgres://postgres:pw@db:5432/postgres`), the databases are made there
//! instead. A test that stops and starts its server makes one of its own with
//! [`PgServer::start`].
//!
//! A server is `postgres` from `/usr/lib/postgresql/<newest>/bin` (or `ROTARY_TEST_PG_BIN`,
//! or `initdb`'s directory on PATH), run with `initdb --auth=trust` in a temp dir, listening
//! on 127.0.0.1 on a free port, `fsync=on`. As root the data belongs to the `postgres`
//! user and the binaries run through `setpriv --reuid=postgres` (initdb refuses root).
//! The server is spawned with `setpriv --pdeathsig KILL` from a thread that lives as long
//! as the test process, so it dies with the process however that ends; stale temp dirs of
//! dead processes are removed by the next run. Missing binaries are a panic with the fix
//! in its message: these tests are never skipped.

use std::io;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};

/// The environment variable naming an external server to use instead of a throwaway one.
pub const EXTERNAL_URL_ENV: &str = "ROTARY_TEST_POSTGRES_URL";
/// The environment variable naming the directory of the PostgreSQL server binaries.
pub const BIN_DIR_ENV: &str = "ROTARY_TEST_PG_BIN";
/// Temp dirs of throwaway servers start with this, then `<pid>-<n>`.
const DIR_PREFIX: &str = "rotary-test-pg-";

/// A throwaway PostgreSQL server; stopped and removed when dropped.
#[derive(Debug)]
pub struct PgServer {
    bin: PathBuf,
    root: PathBuf,
    port: u16,
    as_postgres: bool,
    tls: bool,
    child: Mutex<Option<Child>>,
}

impl PgServer {
    /// Runs initdb in a fresh temp dir and starts the server on a free port; returns once
    /// it accepts connections. Blocking (call it from `spawn_blocking` or `block_in_place`
    /// inside async code). Panics when the PostgreSQL binaries are missing.
    pub fn start() -> io::Result<Self> {
        Self::start_with(false)
    }

    /// Like [`PgServer::start`], with TLS: a throwaway CA ([`PgServer::ca_cert`]) signs a
    /// certificate for `localhost` and `127.0.0.1`, and the server accepts only TLS
    /// connections over TCP (`hostssl` in pg_hba.conf). Needs `openssl` on PATH.
    pub fn start_tls() -> io::Result<Self> {
        Self::start_with(true)
    }

    fn start_with(tls: bool) -> io::Result<Self> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        sweep_stale_dirs();
        let bin = bin_dir();
        let as_postgres = running_as_root();
        let root = std::env::temp_dir().join(format!(
            "{DIR_PREFIX}{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(root.join("sock"))?;
        if as_postgres {
            run(Command::new("chown")
                .arg("-R")
                .arg("postgres:postgres")
                .arg(&root))?;
        }
        let port = free_port()?;
        let server = Self {
            bin,
            root,
            port,
            as_postgres,
            tls,
            child: Mutex::new(None),
        };
        let mut initdb = server.command("initdb", false);
        initdb
            .arg("-D")
            .arg(server.data_dir())
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ])
            .arg("--no-sync")
            .stdout(Stdio::null());
        run(&mut initdb)?;
        if tls {
            server.make_certs()?;
        }
        server.start_again()?;
        Ok(server)
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The superuser URL of database `db`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Stops the server (fast shutdown: connections are closed, nothing committed is
    /// lost) and waits until it has exited. Blocking.
    pub fn stop(&self) -> io::Result<()> {
        let mut stop = self.command("pg_ctl", false);
        stop.arg("stop")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", "fast", "-w"])
            .stdout(Stdio::null());
        run(&mut stop)?;
        if let Some(mut child) = self.child.lock().unwrap_or_else(|e| e.into_inner()).take() {
            child.wait()?;
        }
        Ok(())
    }

    /// Starts the (stopped) server again on the same data and port; returns once it
    /// accepts connections. Blocking.
    pub fn start_again(&self) -> io::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join("server.log"))?;
        let mut postgres = self.command("postgres", true);
        postgres
            .arg("-D")
            .arg(self.data_dir())
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-k")
            .arg(self.root.join("sock"))
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=on"])
            .args(["-c", "max_connections=300", "-c", "shared_buffers=32MB"]);
        if self.tls {
            let tls = self.root.join("tls");
            postgres
                .args(["-c", "ssl=on", "-c"])
                .arg(format!(
                    "ssl_cert_file={}",
                    tls.join("server.crt").display()
                ))
                .arg("-c")
                .arg(format!("ssl_key_file={}", tls.join("server.key").display()));
        }
        postgres
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = spawn_for_life(postgres)?;
        *self.child.lock().unwrap_or_else(|e| e.into_inner()) = Some(child);
        self.wait_ready()
    }

    /// The CA certificate that signed a TLS server's certificate (for `sslrootcert`).
    pub fn ca_cert(&self) -> Option<PathBuf> {
        self.tls.then(|| self.root.join("tls").join("ca.crt"))
    }

    /// Makes the throwaway CA and server certificate, and lets only TLS in over TCP.
    fn make_certs(&self) -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let d = self.root.join("tls");
        std::fs::create_dir_all(&d)?;
        std::fs::write(
            d.join("ca.cnf"),
            "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = Rotary Test CA\n\
             [v3_ca]\nbasicConstraints = critical,CA:TRUE\n\
             keyUsage = critical,keyCertSign,cRLSign\nsubjectKeyIdentifier = hash\n",
        )?;
        std::fs::write(
            d.join("server.cnf"),
            "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = localhost\n\
             [v3_srv]\nbasicConstraints = critical,CA:FALSE\n\
             keyUsage = critical,digitalSignature\nextendedKeyUsage = serverAuth\n\
             subjectAltName = DNS:localhost,IP:127.0.0.1\n",
        )?;
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let openssl = |args: &[&str]| {
            let mut cmd = Command::new("openssl");
            cmd.args(args).current_dir(&d);
            run(&mut cmd)
        };
        let mut ca = vec!["req", "-x509", "-config", "ca.cnf", "-extensions", "v3_ca"];
        ca.extend(ec);
        ca.extend(["-keyout", "ca.key", "-out", "ca.crt", "-days", "3"]);
        openssl(&ca)?;
        let mut csr = vec!["req", "-new", "-config", "server.cnf"];
        csr.extend(ec);
        csr.extend(["-keyout", "server.key", "-out", "server.csr"]);
        openssl(&csr)?;
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-set_serial",
            "2",
            "-days",
            "3",
            "-extfile",
            "server.cnf",
            "-extensions",
            "v3_srv",
            "-out",
            "server.crt",
        ])?;
        std::fs::set_permissions(d.join("server.key"), std::fs::Permissions::from_mode(0o600))?;
        std::fs::write(
            self.data_dir().join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
        )?;
        if self.as_postgres {
            run(Command::new("chown")
                .arg("-R")
                .arg("postgres:postgres")
                .arg(&self.root))?;
        }
        Ok(())
    }

    fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    /// A command running `program` from the server binaries, as `postgres` when we are
    /// root, and killed with this process when `tied`.
    fn command(&self, program: &str, tied: bool) -> Command {
        let mut cmd = Command::new("setpriv");
        if self.as_postgres {
            cmd.args(["--reuid=postgres", "--regid=postgres", "--init-groups"]);
        }
        if tied {
            cmd.args(["--pdeathsig", "KILL"]);
        }
        cmd.arg("--").arg(self.bin.join(program));
        cmd
    }

    fn wait_ready(&self) -> io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .status()?;
            if ready.success() {
                return Ok(());
            }
            if let Some(child) = self
                .child
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_mut()
            {
                if let Some(status) = child.try_wait()? {
                    return Err(io::Error::other(format!(
                        "postgres exited with {status}; see {}",
                        self.root.join("server.log").display()
                    )));
                }
            }
            if Instant::now() > deadline {
                return Err(io::Error::other("postgres did not start within 60 s"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// The server shared by this test binary, started on first use. Blocking.
pub fn shared_server() -> &'static PgServer {
    static SHARED: OnceLock<PgServer> = OnceLock::new();
    SHARED.get_or_init(|| {
        let server = match PgServer::start() {
            Ok(s) => s,
            Err(e) => panic!("starting a throwaway PostgreSQL for the tests failed: {e}"),
        };
        // A static is never dropped: a watcher tied to this process like the server
        // removes the temp dir once both are gone.
        let mut watcher = Command::new("setpriv");
        watcher
            .args(["--pdeathsig", "TERM", "--", "sh", "-c"])
            .arg(
                "trap 'sleep 1; rm -rf \"$0\"; exit 0' TERM; \
                 while :; do sleep 1; done",
            )
            .arg(&server.root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let _ = spawn_for_life(watcher);
        server
    })
}

/// The URL of a fresh, empty database for one test: on `ROTARY_TEST_POSTGRES_URL`'s
/// server when set, else on [`shared_server`].
pub async fn database_url() -> String {
    let admin = match std::env::var(EXTERNAL_URL_ENV) {
        Ok(url) if !url.is_empty() => url,
        _ => tokio::task::spawn_blocking(|| shared_server().url("postgres"))
            .await
            .unwrap_or_else(|e| panic!("starting the test PostgreSQL panicked: {e}")),
    };
    create_database(&admin).await
}

/// Creates a database with a fresh name on the server of `admin_url` (a URL whose user may
/// create databases) and returns its URL (the same URL with the database replaced).
pub async fn create_database(admin_url: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    #[expect(clippy::disallowed_methods, reason = "only a seed for a unique name")]
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let name = format!(
        "t_{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let mut conn = PgConnection::connect(admin_url)
        .await
        .unwrap_or_else(|e| panic!("connecting to the test PostgreSQL failed: {e}"));
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE {name} failed: {e}"));
    let _ = conn.close().await;
    with_database(admin_url, &name)
}

/// `url` with its database replaced by `db` (query parameters such as `sslmode` kept).
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    format!("{}/{db}{query}", &base[..path_start])
}

fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var(BIN_DIR_ENV) {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return bin;
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .find(|p| p.join("initdb").exists() && p.join("postgres").exists())
    });
    on_path.unwrap_or_else(|| {
        panic!(
            "PostgreSQL server binaries (initdb, postgres, pg_ctl) not found under \
             /usr/lib/postgresql/*/bin or on PATH: install them (apt-get install postgresql), \
             set {BIN_DIR_ENV} to their directory, or set {EXTERNAL_URL_ENV} to a server's URL"
        )
    })
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn run(cmd: &mut Command) -> io::Result<()> {
    let out = cmd.stdout(Stdio::null()).output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "{:?} failed ({}): {}",
            cmd.get_program(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

type SpawnJob = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawns `cmd` from a thread that lives as long as the process: `--pdeathsig` fires when
/// the spawning *thread* exits, and test threads (and runtimes' workers) exit early.
fn spawn_for_life(cmd: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnJob>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnJob>();
        std::thread::Builder::new()
            .name("test-pg-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .unwrap_or_else(|e| panic!("spawning the test server thread failed: {e}"));
        Mutex::new(tx)
    });
    let (reply, answer) = mpsc::channel();
    spawner
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((cmd, reply))
        .map_err(|_| io::Error::other("the test server thread stopped"))?;
    answer
        .recv()
        .map_err(|_| io::Error::other("the test server thread stopped"))?
}

/// Removes the temp dirs of servers whose test process is gone (killed before its
/// statics could clean up).
fn sweep_stale_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(DIR_PREFIX)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next() else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn with_database_replaces_only_the_database() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/postgres?sslmode=require", "t_1"),
            "postgres://u:p@h:5432/t_1?sslmode=require"
        );
        assert_eq!(with_database("postgres://h", "t_1"), "postgres://h/t_1");
        assert_eq!(
            with_database("postgresql://h:1/", "t_1"),
            "postgresql://h:1/t_1"
        );
    }
}
