//! Configuration: command-line flags > `ROTARY_*` environment variables > TOML file >
//! defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;
use serde::Deserialize;

/// Flags of `rotary serve`. Each is also an environment variable and a key of the TOML
/// config file.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct ServeArgs {
    /// TOML configuration file; its keys are the flag names with `_` for `-`.
    #[arg(long, env = "ROTARY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory for the database, the master key and first-start credentials
    /// [default: ./rotary-data].
    #[arg(long, env = "ROTARY_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8750].
    #[arg(long, env = "ROTARY_LISTEN")]
    pub listen: Option<String>,
    /// Region of this server: ARNs and SigV4 scope [default: us-east-1].
    #[arg(long, env = "ROTARY_REGION")]
    pub region: Option<String>,
    /// Account id in ARNs, 12 digits [default: 000000000000].
    #[arg(long, env = "ROTARY_ACCOUNT_ID")]
    pub account_id: Option<String>,
    /// Store URL: `sqlite://PATH`, or `postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?sslmode=..]`
    /// for several nodes over one PostgreSQL database [default: sqlite://DATA_DIR/rotary.db].
    #[arg(long, env = "ROTARY_STORE")]
    pub store: Option<String>,
    /// Connections this node opens to a PostgreSQL store [default: 16].
    #[arg(long, env = "ROTARY_STORE_POOL_SIZE")]
    pub store_pool_size: Option<u32>,
    /// This node's name in rotation claims and logs, unique among the nodes sharing a store
    /// [default: the host name and a random suffix].
    #[arg(long, env = "ROTARY_NODE_ID")]
    pub node_id: Option<String>,
    /// Master key file, mode 0600; several nodes may share one [default: DATA_DIR/master.key].
    #[arg(long, env = "ROTARY_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
    /// File (mode 0600) holding the passphrase of a sealed master key file; a trailing
    /// newline is ignored [default: the ROTARY_MASTER_KEY_PASSPHRASE variable, else a prompt
    /// when standard input is a terminal].
    #[arg(long, env = "ROTARY_MASTER_KEY_PASSPHRASE_FILE")]
    pub master_key_passphrase_file: Option<PathBuf>,
    /// Log format: `text` or `json` [default: text].
    #[arg(long, env = "ROTARY_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// URL rotation functions use to reach this server [default: http://LISTEN, with
    /// 127.0.0.1 for an unspecified address].
    #[arg(long, env = "ROTARY_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Memory for the read cache of secrets (metadata and sealed values, never plaintext),
    /// in MiB; 0 turns it off [default: 20].
    #[arg(long, env = "ROTARY_READ_CACHE_MIB")]
    pub read_cache_mib: Option<u64>,
    /// Rotation engine flags (boxed with the HTTP ones: they make the struct large).
    #[command(flatten)]
    pub rotation: Box<RotationArgs>,
    /// Key file (mode 0600) signing HTTP function calls and webhooks
    /// [default: DATA_DIR/signing.key, created on first start].
    #[arg(long, env = "ROTARY_SIGNING_KEY_FILE")]
    pub signing_key_file: Option<PathBuf>,
    /// Enable `rotary.AdvanceTestClock`, which moves the server's clock forward. For tests
    /// only: never in production.
    #[arg(long, env = "ROTARY_TEST_CLOCK", num_args = 0..=1, default_missing_value = "true")]
    pub test_clock: Option<bool>,
    /// With --test-clock: move the clock forward by this many seconds at start-up, as if the
    /// server had been down that long. For tests only.
    #[arg(long, env = "ROTARY_TEST_CLOCK_SKIP_SECONDS")]
    pub test_clock_skip_seconds: Option<i64>,
    /// Directory holding rotation function code [default: DATA_DIR/functions].
    #[arg(long, env = "ROTARY_FUNCTION_DIR")]
    pub function_dir: Option<PathBuf>,
    /// Run process and Python rotation functions without the bubblewrap sandbox when bwrap
    /// is unavailable; logged at start-up. Never in production.
    #[arg(long, env = "ROTARY_ALLOW_UNSANDBOXED_FUNCTIONS", num_args = 0..=1, default_missing_value = "true")]
    pub allow_unsandboxed_functions: Option<bool>,
    /// A directory that sandboxed rotation functions may write, bound read-write at the same
    /// path (repeatable; the env variable takes a comma-separated list) [default: none].
    #[arg(
        long = "function-writable-dir",
        env = "ROTARY_FUNCTION_WRITABLE_DIRS",
        value_delimiter = ','
    )]
    pub function_writable_dirs: Vec<PathBuf>,
    /// Also write every audit record, as a JSON line, to this file, or to standard output
    /// with `-` (for log shippers) [default: none].
    #[arg(long, env = "ROTARY_AUDIT_MIRROR")]
    pub audit_mirror: Option<String>,
    /// Refuse requests whose audit record cannot be written (as Vault does) [default: false].
    #[arg(long, env = "ROTARY_AUDIT_FAIL_CLOSED", num_args = 0..=1, default_missing_value = "true")]
    pub audit_fail_closed: Option<bool>,
    /// HTTP server limits, TLS and the metrics listener (boxed: they make the struct large).
    #[command(flatten)]
    pub http: Box<HttpArgs>,
}

/// Flags of the rotation engine.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct RotationArgs {
    /// Attempts before a rotation is marked failed [default: 5].
    #[arg(long, env = "ROTARY_ROTATION_MAX_ATTEMPTS")]
    pub rotation_max_attempts: Option<u32>,
    /// First retry delay of a failed rotation, doubled per attempt with jitter
    /// [default: 60].
    #[arg(long, env = "ROTARY_ROTATION_RETRY_BASE_SECONDS")]
    pub rotation_retry_base_seconds: Option<u64>,
    /// Longest retry delay [default: 1800].
    #[arg(long, env = "ROTARY_ROTATION_RETRY_CAP_SECONDS")]
    pub rotation_retry_cap_seconds: Option<u64>,
    /// Rotations run at once [default: 8].
    #[arg(long, env = "ROTARY_ROTATION_CONCURRENCY")]
    pub rotation_concurrency: Option<usize>,
    /// Over a shared (PostgreSQL) store: how long a node's claim on a running rotation lasts
    /// unless renewed, i.e. how soon another node takes over the rotations of a node that
    /// died [default: 30].
    #[arg(long, env = "ROTARY_ROTATION_CLAIM_LEASE_SECONDS")]
    pub rotation_claim_lease_seconds: Option<u64>,
    /// URL POSTed (JSON, signed) when a rotation fails.
    #[arg(long, env = "ROTARY_ROTATION_WEBHOOK_URL")]
    pub rotation_webhook_url: Option<String>,
    /// Also POST the webhook when a rotation succeeds.
    #[arg(long, env = "ROTARY_ROTATION_WEBHOOK_ON_SUCCESS", num_args = 0..=1, default_missing_value = "true")]
    pub rotation_webhook_on_success: Option<bool>,
}

/// Flags of the HTTP server: limits and timeouts, TLS, the metrics listener.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct HttpArgs {
    /// Seconds a client has to send a request's headers (and to finish a TLS handshake)
    /// [default: 10].
    #[arg(long, env = "ROTARY_HEADER_TIMEOUT_SECONDS")]
    pub header_timeout_seconds: Option<u64>,
    /// Seconds a client has to send a whole request body [default: 30].
    #[arg(long, env = "ROTARY_BODY_TIMEOUT_SECONDS")]
    pub body_timeout_seconds: Option<u64>,
    /// Seconds a connection may stay idle before it is closed [default: 60].
    #[arg(long, env = "ROTARY_IDLE_TIMEOUT_SECONDS")]
    pub idle_timeout_seconds: Option<u64>,
    /// Largest request head, request line and headers [default: 16384].
    #[arg(long, env = "ROTARY_MAX_HEADER_BYTES")]
    pub max_header_bytes: Option<usize>,
    /// Largest request body [default: 1048576].
    #[arg(long, env = "ROTARY_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Bytes of request bodies held at once over all requests [default: 67108864].
    #[arg(long, env = "ROTARY_BODY_MEMORY_BYTES")]
    pub body_memory_bytes: Option<usize>,
    /// Connections served at once; lowered to fit the open-files limit [default: 4096].
    #[arg(long, env = "ROTARY_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// HTTP/2 streams open at once per connection [default: 100].
    #[arg(long, env = "ROTARY_HTTP2_MAX_STREAMS")]
    pub http2_max_streams: Option<u32>,
    /// PEM certificate chain for TLS; with --tls-key. Reloaded on SIGHUP.
    #[arg(long, env = "ROTARY_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for TLS; with --tls-cert. Reloaded on SIGHUP.
    #[arg(long, env = "ROTARY_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Serve /metrics and /health on this separate address; the main listener's /metrics
    /// then answers 404. Without it, /metrics needs a SigV4-signed GET.
    #[arg(long, env = "ROTARY_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
}

/// The TOML file: the same keys as the flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    listen: Option<String>,
    region: Option<String>,
    account_id: Option<String>,
    store: Option<String>,
    store_pool_size: Option<u32>,
    node_id: Option<String>,
    master_key_file: Option<PathBuf>,
    master_key_passphrase_file: Option<PathBuf>,
    log_format: Option<String>,
    public_url: Option<String>,
    read_cache_mib: Option<u64>,
    rotation_max_attempts: Option<u32>,
    rotation_retry_base_seconds: Option<u64>,
    rotation_retry_cap_seconds: Option<u64>,
    rotation_concurrency: Option<usize>,
    rotation_claim_lease_seconds: Option<u64>,
    rotation_webhook_url: Option<String>,
    rotation_webhook_on_success: Option<bool>,
    signing_key_file: Option<PathBuf>,
    test_clock: Option<bool>,
    test_clock_skip_seconds: Option<i64>,
    function_dir: Option<PathBuf>,
    allow_unsandboxed_functions: Option<bool>,
    function_writable_dirs: Option<Vec<PathBuf>>,
    audit_mirror: Option<String>,
    audit_fail_closed: Option<bool>,
    header_timeout_seconds: Option<u64>,
    body_timeout_seconds: Option<u64>,
    idle_timeout_seconds: Option<u64>,
    max_header_bytes: Option<usize>,
    max_body_bytes: Option<usize>,
    body_memory_bytes: Option<usize>,
    max_connections: Option<usize>,
    http2_max_streams: Option<u32>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    metrics_listen: Option<String>,
    /// Other regions this server replicates secrets to.
    #[serde(default)]
    regions: Vec<RegionConfig>,
}

/// A `[[regions]]` entry of the TOML file: a peer region (docs/replication.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegionConfig {
    /// The peer's region (its `--region`).
    pub name: String,
    /// The peer's API URL.
    pub endpoint: String,
    /// A secret on this server holding the access key to use there.
    pub credentials_secret: String,
    /// PEM CA certificates for the peer's TLS certificate.
    pub ca_file: Option<PathBuf>,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The resolved, validated configuration.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub region: String,
    pub account_id: String,
    /// The SQLite file (when `postgres_url` is not set).
    pub store_path: PathBuf,
    /// The PostgreSQL store's URL, when the store is PostgreSQL.
    pub postgres_url: Option<String>,
    /// Connections to a PostgreSQL store.
    pub store_pool_size: u32,
    /// This node's id in rotation claims; `None`: the one kept in the data directory
    /// ([`node_id`]).
    pub node_id: Option<String>,
    pub master_key_file: PathBuf,
    /// The passphrase file of a sealed master key file.
    pub master_key_passphrase_file: Option<PathBuf>,
    pub log_format: LogFormat,
    pub public_url: String,
    /// Budget of the read cache in bytes (0: off).
    pub read_cache_bytes: u64,
    pub rotation_max_attempts: u32,
    pub rotation_retry_base: std::time::Duration,
    pub rotation_retry_cap: std::time::Duration,
    pub rotation_concurrency: usize,
    /// Lease of a rotation claim over a shared store.
    pub rotation_claim_lease: std::time::Duration,
    pub rotation_webhook_url: Option<String>,
    pub rotation_webhook_on_success: bool,
    pub signing_key_file: PathBuf,
    pub test_clock: bool,
    pub test_clock_skip_seconds: i64,
    /// Directory holding rotation function code.
    pub function_dir: PathBuf,
    /// Run process/Python functions without bubblewrap when it is unavailable.
    pub allow_unsandboxed_functions: bool,
    /// Directories sandboxed functions may write.
    pub function_writable_dirs: Vec<PathBuf>,
    /// Where audit records are mirrored: `-` for stdout, or a file.
    pub audit_mirror: Option<String>,
    /// Whether requests are refused when their audit record cannot be written.
    pub audit_fail_closed: bool,
    /// Limits and timeouts of the HTTP server.
    pub limits: rotary_server::Limits,
    /// TLS certificate and key files, when serving HTTPS.
    pub tls: Option<TlsPaths>,
    /// Separate address for /metrics and /health.
    pub metrics_listen: Option<SocketAddr>,
    /// Peer regions (`[[regions]]`).
    pub regions: Vec<RegionConfig>,
}

/// The PEM files of `--tls-cert` and `--tls-key`.
#[derive(Debug, Clone)]
pub(crate) struct TlsPaths {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Config {
    /// Files a sandboxed rotation function must not see besides the data directory, the
    /// keys and the store: key material and configuration given by path.
    pub(crate) fn sandbox_hidden_paths(&self) -> Vec<PathBuf> {
        // The passphrase file too: functions must not read what opens the master key.
        self.tls
            .iter()
            .map(|t| t.key.clone())
            .chain(self.master_key_passphrase_file.clone())
            .collect()
    }
}

fn is_region(r: &str) -> bool {
    // ^([a-z]+-)+\d+$
    let Some((head, digits)) = r.rsplit_once('-') else {
        return false;
    };
    !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit())
        && head
            .split('-')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
}

impl Config {
    /// Applies flags > env (both via clap) > file > defaults, and validates.
    pub(crate) fn resolve(args: ServeArgs) -> anyhow::Result<Self> {
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?;
                toml::from_str::<FileConfig>(&text)
                    .with_context(|| format!("parsing config file {}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let data_dir = args
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| "rotary-data".into());
        let listen = args
            .listen
            .or(file.listen)
            .unwrap_or_else(|| "127.0.0.1:8750".into());
        let listen: SocketAddr = listen
            .parse()
            .with_context(|| format!("--listen {listen:?} is not an address"))?;
        let region = args
            .region
            .or(file.region)
            .unwrap_or_else(|| "us-east-1".into());
        if !is_region(&region) {
            bail!("--region {region:?} is not a region name like us-east-1");
        }
        let account_id = args
            .account_id
            .or(file.account_id)
            .unwrap_or_else(|| "000000000000".into());
        if account_id.len() != 12 || !account_id.chars().all(|c| c.is_ascii_digit()) {
            bail!("--account-id {account_id:?} must be 12 digits");
        }
        let (store_path, postgres_url) = match args.store.or(file.store) {
            None => (data_dir.join("rotary.db"), None),
            Some(url) => match store_url(&url)? {
                StoreUrl::Sqlite(path) => (path, None),
                StoreUrl::Postgres(url) => (data_dir.join("rotary.db"), Some(url)),
            },
        };
        let store_pool_size = args.store_pool_size.or(file.store_pool_size).unwrap_or(16);
        if !(1..=1000).contains(&store_pool_size) {
            bail!("--store-pool-size {store_pool_size} must be between 1 and 1000");
        }
        let node_id = match args.node_id.or(file.node_id) {
            Some(id) if id.is_empty() || id.len() > 128 => {
                bail!("--node-id must have 1 to 128 characters")
            }
            id => id,
        };
        let master_key_file = args
            .master_key_file
            .or(file.master_key_file)
            .unwrap_or_else(|| data_dir.join("master.key"));
        let log_format = match args.log_format.or(file.log_format).as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => bail!("--log-format {other:?} must be text or json"),
        };
        let tls = match (
            args.http.tls_cert.or(file.tls_cert),
            args.http.tls_key.or(file.tls_key),
        ) {
            (Some(cert), Some(key)) => Some(TlsPaths { cert, key }),
            (None, None) => None,
            _ => bail!("--tls-cert and --tls-key go together: give both or neither"),
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let public_url = match args.public_url.or(file.public_url) {
            Some(u) if u.starts_with("http://") || u.starts_with("https://") => {
                u.trim_end_matches('/').to_owned()
            }
            Some(u) => bail!("--public-url {u:?} must start with http:// or https://"),
            None if listen.ip().is_unspecified() => {
                format!("{scheme}://127.0.0.1:{}", listen.port())
            }
            None => format!("{scheme}://{listen}"),
        };
        let regions = file.regions;
        for (i, r) in regions.iter().enumerate() {
            if !is_region(&r.name) {
                bail!(
                    "[[regions]] name {:?} is not a region name like us-west-2",
                    r.name
                );
            }
            if r.name == region {
                bail!("[[regions]] {:?} is this server's own region", r.name);
            }
            if regions[..i].iter().any(|o| o.name == r.name) {
                bail!("[[regions]] {:?} is listed twice", r.name);
            }
            if !(r.endpoint.starts_with("http://") || r.endpoint.starts_with("https://")) {
                bail!(
                    "[[regions]] {:?}: endpoint {:?} must start with http:// or https://",
                    r.name,
                    r.endpoint
                );
            }
            if r.credentials_secret.is_empty() {
                bail!("[[regions]] {:?}: credentials_secret is empty", r.name);
            }
        }
        let metrics_listen = match args.http.metrics_listen.or(file.metrics_listen) {
            None => None,
            Some(a) => Some(
                a.parse::<SocketAddr>()
                    .with_context(|| format!("--metrics-listen {a:?} is not an address"))?,
            ),
        };
        let limits = resolve_limits(
            LimitArgs {
                header_timeout_seconds: args.http.header_timeout_seconds,
                body_timeout_seconds: args.http.body_timeout_seconds,
                idle_timeout_seconds: args.http.idle_timeout_seconds,
                max_header_bytes: args.http.max_header_bytes,
                max_body_bytes: args.http.max_body_bytes,
                body_memory_bytes: args.http.body_memory_bytes,
                max_connections: args.http.max_connections,
                http2_max_streams: args.http.http2_max_streams,
            },
            LimitArgs {
                header_timeout_seconds: file.header_timeout_seconds,
                body_timeout_seconds: file.body_timeout_seconds,
                idle_timeout_seconds: file.idle_timeout_seconds,
                max_header_bytes: file.max_header_bytes,
                max_body_bytes: file.max_body_bytes,
                body_memory_bytes: file.body_memory_bytes,
                max_connections: file.max_connections,
                http2_max_streams: file.http2_max_streams,
            },
        )?;
        let secs = std::time::Duration::from_secs;
        let rotation_claim_lease = secs(
            args.rotation
                .rotation_claim_lease_seconds
                .or(file.rotation_claim_lease_seconds)
                .unwrap_or(30),
        );
        if !(1..=3600).contains(&rotation_claim_lease.as_secs()) {
            bail!("--rotation-claim-lease-seconds must be between 1 and 3600");
        }
        let rotation_max_attempts = args
            .rotation
            .rotation_max_attempts
            .or(file.rotation_max_attempts)
            .unwrap_or(5);
        if rotation_max_attempts == 0 {
            bail!("--rotation-max-attempts must be at least 1");
        }
        let rotation_retry_base = secs(
            args.rotation
                .rotation_retry_base_seconds
                .or(file.rotation_retry_base_seconds)
                .unwrap_or(60),
        );
        let rotation_retry_cap = secs(
            args.rotation
                .rotation_retry_cap_seconds
                .or(file.rotation_retry_cap_seconds)
                .unwrap_or(1800),
        );
        let rotation_concurrency = args
            .rotation
            .rotation_concurrency
            .or(file.rotation_concurrency)
            .unwrap_or(8)
            .max(1);
        let rotation_webhook_url = args
            .rotation
            .rotation_webhook_url
            .or(file.rotation_webhook_url);
        if let Some(u) = &rotation_webhook_url {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                bail!("--rotation-webhook-url {u:?} must start with http:// or https://");
            }
        }
        let rotation_webhook_on_success = args
            .rotation
            .rotation_webhook_on_success
            .or(file.rotation_webhook_on_success)
            .unwrap_or(false);
        let signing_key_file = args
            .signing_key_file
            .or(file.signing_key_file)
            .unwrap_or_else(|| data_dir.join("signing.key"));
        let test_clock = args.test_clock.or(file.test_clock).unwrap_or(false);
        let test_clock_skip_seconds = args
            .test_clock_skip_seconds
            .or(file.test_clock_skip_seconds)
            .unwrap_or(0);
        if test_clock_skip_seconds != 0 && !test_clock {
            bail!("--test-clock-skip-seconds needs --test-clock");
        }
        let function_dir = args
            .function_dir
            .or(file.function_dir)
            .unwrap_or_else(|| data_dir.join("functions"));
        let allow_unsandboxed_functions = args
            .allow_unsandboxed_functions
            .or(file.allow_unsandboxed_functions)
            .unwrap_or(false);
        let function_writable_dirs = if args.function_writable_dirs.is_empty() {
            file.function_writable_dirs.unwrap_or_default()
        } else {
            args.function_writable_dirs
        };
        for dir in &function_writable_dirs {
            if !dir.is_absolute() {
                bail!(
                    "--function-writable-dir {} must be an absolute path",
                    dir.display()
                );
            }
        }
        let read_cache_mib = args.read_cache_mib.or(file.read_cache_mib).unwrap_or(20);
        if read_cache_mib > 1 << 20 {
            bail!("--read-cache-mib {read_cache_mib} is more than 1 TiB");
        }
        Ok(Self {
            data_dir,
            listen,
            region,
            account_id,
            store_path,
            postgres_url,
            store_pool_size,
            node_id,
            master_key_file,
            master_key_passphrase_file: args
                .master_key_passphrase_file
                .or(file.master_key_passphrase_file),
            log_format,
            public_url,
            read_cache_bytes: read_cache_mib << 20,
            rotation_max_attempts,
            rotation_retry_base,
            rotation_retry_cap,
            rotation_concurrency,
            rotation_claim_lease,
            rotation_webhook_url,
            rotation_webhook_on_success,
            signing_key_file,
            test_clock,
            test_clock_skip_seconds,
            function_dir,
            allow_unsandboxed_functions,
            function_writable_dirs,
            limits,
            audit_mirror: args.audit_mirror.or(file.audit_mirror),
            audit_fail_closed: args
                .audit_fail_closed
                .or(file.audit_fail_closed)
                .unwrap_or(false),
            tls,
            metrics_listen,
            regions,
        })
    }
}

/// The limit settings from one source (flags/env, or the file).
struct LimitArgs {
    header_timeout_seconds: Option<u64>,
    body_timeout_seconds: Option<u64>,
    idle_timeout_seconds: Option<u64>,
    max_header_bytes: Option<usize>,
    max_body_bytes: Option<usize>,
    body_memory_bytes: Option<usize>,
    max_connections: Option<usize>,
    http2_max_streams: Option<u32>,
}

fn resolve_limits(args: LimitArgs, file: LimitArgs) -> anyhow::Result<rotary_server::Limits> {
    let d = rotary_server::Limits::default();
    let secs = |flag: &str, v: Option<u64>, default: std::time::Duration| match v {
        None => Ok(default),
        Some(0) => bail!("--{flag} must be at least 1"),
        Some(s) if s > 86_400 => bail!("--{flag} must be at most 86400"),
        Some(s) => Ok(std::time::Duration::from_secs(s)),
    };
    let header_read_timeout = secs(
        "header-timeout-seconds",
        args.header_timeout_seconds.or(file.header_timeout_seconds),
        d.header_read_timeout,
    )?;
    let body_timeout = secs(
        "body-timeout-seconds",
        args.body_timeout_seconds.or(file.body_timeout_seconds),
        d.body_timeout,
    )?;
    let idle_timeout = secs(
        "idle-timeout-seconds",
        args.idle_timeout_seconds.or(file.idle_timeout_seconds),
        d.idle_timeout,
    )?;
    let max_header_bytes = args
        .max_header_bytes
        .or(file.max_header_bytes)
        .unwrap_or(d.max_header_bytes);
    if !(1024..=1 << 20).contains(&max_header_bytes) {
        bail!("--max-header-bytes must be between 1024 and 1048576");
    }
    let max_body_bytes = args
        .max_body_bytes
        .or(file.max_body_bytes)
        .unwrap_or(d.max_body_bytes);
    if !(1024..=64 << 20).contains(&max_body_bytes) {
        bail!("--max-body-bytes must be between 1024 and 67108864");
    }
    let body_memory_bytes = args
        .body_memory_bytes
        .or(file.body_memory_bytes)
        .unwrap_or(d.body_memory_bytes);
    if body_memory_bytes < max_body_bytes || body_memory_bytes > 1 << 40 {
        bail!(
            "--body-memory-bytes must be at least --max-body-bytes ({max_body_bytes}) and at \
             most 2^40"
        );
    }
    let max_connections = args
        .max_connections
        .or(file.max_connections)
        .unwrap_or(d.max_connections);
    if max_connections == 0 {
        bail!("--max-connections must be at least 1");
    }
    let h2_max_streams = args
        .http2_max_streams
        .or(file.http2_max_streams)
        .unwrap_or(d.h2_max_streams);
    if h2_max_streams == 0 {
        bail!("--http2-max-streams must be at least 1");
    }
    Ok(rotary_server::Limits {
        header_read_timeout,
        body_timeout,
        idle_timeout,
        max_header_bytes,
        max_body_bytes,
        max_connections,
        h2_max_streams,
        body_memory_bytes,
    })
}

/// Where the store is.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum StoreUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

pub(crate) fn store_url(url: &str) -> anyhow::Result<StoreUrl> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        if path.is_empty() {
            bail!("--store {url:?} names no file");
        }
        return Ok(StoreUrl::Sqlite(Path::new(path).to_path_buf()));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(StoreUrl::Postgres(url.to_owned()));
    }
    // The URL may hold a password: name only its scheme.
    let scheme = url.split_once("://").map_or("", |(s, _)| s);
    bail!("--store must be sqlite://PATH or postgres://USER@HOST/DB, not a {scheme:?} URL")
}

/// The node id kept in `DATA_DIR/node-id`, made on first start from the host name and a
/// random suffix. Kept across restarts so that a restarted node resumes the rotations it had
/// claimed at once instead of waiting for its old claims' leases to run out.
pub(crate) fn node_id(config: &Config) -> anyhow::Result<String> {
    if let Some(id) = &config.node_id {
        return Ok(id.clone());
    }
    let path = config.data_dir.join("node-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let id = if host.is_empty() {
        format!("node-{suffix}")
    } else {
        format!("{host}-{suffix}")
    };
    std::fs::write(&path, format!("{id}\n"))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let c = Config::resolve(ServeArgs::default()).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8750");
        assert_eq!(c.region, "us-east-1");
        assert_eq!(c.account_id, "000000000000");
        assert_eq!(c.store_path, Path::new("rotary-data/rotary.db"));
        assert_eq!(c.master_key_file, Path::new("rotary-data/master.key"));
        assert_eq!(c.function_dir, Path::new("rotary-data/functions"));
        assert!(!c.allow_unsandboxed_functions);
        assert_eq!(c.limits.header_read_timeout.as_secs(), 10);
        assert_eq!(c.limits.body_timeout.as_secs(), 30);
        assert_eq!(c.limits.idle_timeout.as_secs(), 60);
        assert_eq!(c.limits.max_header_bytes, 16384);
        assert_eq!(c.limits.max_body_bytes, 1 << 20);
        assert_eq!(c.limits.body_memory_bytes, 64 << 20);
        assert_eq!(c.limits.max_connections, 4096);
        assert_eq!(c.limits.h2_max_streams, 100);
        assert!(c.tls.is_none() && c.metrics_listen.is_none());
        assert_eq!(c.public_url, "http://127.0.0.1:8750");
    }

    #[test]
    fn limits_tls_and_metrics_from_file_and_flags() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("rotary.toml");
        std::fs::write(
            &f,
            "header_timeout_seconds = 2\nbody_timeout_seconds = 5\nidle_timeout_seconds = 7\n\
             max_header_bytes = 8192\nmax_body_bytes = 65536\nbody_memory_bytes = 1048576\n\
             max_connections = 100\nhttp2_max_streams = 10\ntls_cert = \"c.pem\"\n\
             tls_key = \"k.pem\"\nmetrics_listen = \"127.0.0.1:9100\"\n",
        )
        .unwrap();
        let c = Config::resolve(ServeArgs {
            config: Some(f.clone()),
            http: Box::new(HttpArgs {
                max_connections: Some(50),
                ..Default::default()
            }),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.limits.header_read_timeout.as_secs(), 2);
        assert_eq!(c.limits.body_timeout.as_secs(), 5);
        assert_eq!(c.limits.idle_timeout.as_secs(), 7);
        assert_eq!(c.limits.max_header_bytes, 8192);
        assert_eq!(c.limits.max_body_bytes, 65536);
        assert_eq!(c.limits.body_memory_bytes, 1 << 20);
        assert_eq!(c.limits.max_connections, 50);
        assert_eq!(c.limits.h2_max_streams, 10);
        assert_eq!(c.sandbox_hidden_paths(), [PathBuf::from("k.pem")]);
        let tls = c.tls.unwrap();
        assert_eq!(tls.cert, Path::new("c.pem"));
        assert_eq!(tls.key, Path::new("k.pem"));
        assert_eq!(c.metrics_listen.unwrap().port(), 9100);
        assert_eq!(c.public_url, "https://127.0.0.1:8750");
        for bad in [
            ServeArgs {
                http: Box::new(HttpArgs {
                    tls_cert: Some("c.pem".into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ServeArgs {
                http: Box::new(HttpArgs {
                    header_timeout_seconds: Some(0),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ServeArgs {
                http: Box::new(HttpArgs {
                    max_body_bytes: Some(10),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ServeArgs {
                http: Box::new(HttpArgs {
                    max_body_bytes: Some(1 << 20),
                    body_memory_bytes: Some(1024),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ServeArgs {
                http: Box::new(HttpArgs {
                    max_connections: Some(0),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ServeArgs {
                http: Box::new(HttpArgs {
                    http2_max_streams: Some(0),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ServeArgs {
                http: Box::new(HttpArgs {
                    metrics_listen: Some("nowhere".into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ] {
            assert!(Config::resolve(bad).is_err());
        }
    }

    #[test]
    fn function_dir_and_unsandboxed_from_file_and_flags() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("rotary.toml");
        std::fs::write(
            &f,
            "function_dir = \"/srv/fns\"\nallow_unsandboxed_functions = true\n",
        )
        .unwrap();
        let c = Config::resolve(ServeArgs {
            config: Some(f.clone()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.function_dir, Path::new("/srv/fns"));
        assert!(c.allow_unsandboxed_functions);
        let c = Config::resolve(ServeArgs {
            config: Some(f),
            function_dir: Some("/other".into()),
            allow_unsandboxed_functions: Some(false),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.function_dir, Path::new("/other"));
        assert!(!c.allow_unsandboxed_functions);
    }

    #[test]
    fn flags_beat_file_and_bad_values_fail() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("rotary.toml");
        std::fs::write(&f, "region = \"eu-west-1\"\nlisten = \"127.0.0.1:9000\"\n").unwrap();
        let c = Config::resolve(ServeArgs {
            config: Some(f.clone()),
            listen: Some("127.0.0.1:9001".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.region, "eu-west-1");
        assert_eq!(c.listen.port(), 9001);
        std::fs::write(&f, "bogus = 1\n").unwrap();
        assert!(Config::resolve(ServeArgs {
            config: Some(f),
            ..Default::default()
        })
        .is_err());
        for bad in [
            ServeArgs {
                region: Some("Mars".into()),
                ..Default::default()
            },
            ServeArgs {
                account_id: Some("12".into()),
                ..Default::default()
            },
            ServeArgs {
                listen: Some("nowhere".into()),
                ..Default::default()
            },
            ServeArgs {
                store: Some("mysql://x".into()),
                ..Default::default()
            },
            ServeArgs {
                log_format: Some("xml".into()),
                ..Default::default()
            },
        ] {
            assert!(Config::resolve(bad).is_err());
        }
    }
}
