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
pub struct ServeArgs {
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
    /// Store URL: `sqlite://PATH` [default: sqlite://DATA_DIR/rotary.db].
    #[arg(long, env = "ROTARY_STORE")]
    pub store: Option<String>,
    /// Master key file, mode 0600; several nodes may share one [default: DATA_DIR/master.key].
    #[arg(long, env = "ROTARY_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
    /// Log format: `text` or `json` [default: text].
    #[arg(long, env = "ROTARY_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// URL rotation functions use to reach this server [default: http://LISTEN, with
    /// 127.0.0.1 for an unspecified address].
    #[arg(long, env = "ROTARY_PUBLIC_URL")]
    pub public_url: Option<String>,
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
    /// URL POSTed (JSON, signed) when a rotation fails.
    #[arg(long, env = "ROTARY_ROTATION_WEBHOOK_URL")]
    pub rotation_webhook_url: Option<String>,
    /// Also POST the webhook when a rotation succeeds.
    #[arg(long, env = "ROTARY_ROTATION_WEBHOOK_ON_SUCCESS", num_args = 0..=1, default_missing_value = "true")]
    pub rotation_webhook_on_success: Option<bool>,
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
    master_key_file: Option<PathBuf>,
    log_format: Option<String>,
    public_url: Option<String>,
    rotation_max_attempts: Option<u32>,
    rotation_retry_base_seconds: Option<u64>,
    rotation_retry_cap_seconds: Option<u64>,
    rotation_concurrency: Option<usize>,
    rotation_webhook_url: Option<String>,
    rotation_webhook_on_success: Option<bool>,
    signing_key_file: Option<PathBuf>,
    test_clock: Option<bool>,
    test_clock_skip_seconds: Option<i64>,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The resolved, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub region: String,
    pub account_id: String,
    pub store_path: PathBuf,
    pub master_key_file: PathBuf,
    pub log_format: LogFormat,
    pub public_url: String,
    pub rotation_max_attempts: u32,
    pub rotation_retry_base: std::time::Duration,
    pub rotation_retry_cap: std::time::Duration,
    pub rotation_concurrency: usize,
    pub rotation_webhook_url: Option<String>,
    pub rotation_webhook_on_success: bool,
    pub signing_key_file: PathBuf,
    pub test_clock: bool,
    pub test_clock_skip_seconds: i64,
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
    pub fn resolve(args: ServeArgs) -> anyhow::Result<Self> {
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
        let store_path = match args.store.or(file.store) {
            None => data_dir.join("rotary.db"),
            Some(url) => store_path(&url)?,
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
        let public_url = match args.public_url.or(file.public_url) {
            Some(u) if u.starts_with("http://") || u.starts_with("https://") => {
                u.trim_end_matches('/').to_owned()
            }
            Some(u) => bail!("--public-url {u:?} must start with http:// or https://"),
            None if listen.ip().is_unspecified() => format!("http://127.0.0.1:{}", listen.port()),
            None => format!("http://{listen}"),
        };
        let secs = std::time::Duration::from_secs;
        let rotation_max_attempts = args
            .rotation_max_attempts
            .or(file.rotation_max_attempts)
            .unwrap_or(5);
        if rotation_max_attempts == 0 {
            bail!("--rotation-max-attempts must be at least 1");
        }
        let rotation_retry_base = secs(
            args.rotation_retry_base_seconds
                .or(file.rotation_retry_base_seconds)
                .unwrap_or(60),
        );
        let rotation_retry_cap = secs(
            args.rotation_retry_cap_seconds
                .or(file.rotation_retry_cap_seconds)
                .unwrap_or(1800),
        );
        let rotation_concurrency = args
            .rotation_concurrency
            .or(file.rotation_concurrency)
            .unwrap_or(8)
            .max(1);
        let rotation_webhook_url = args.rotation_webhook_url.or(file.rotation_webhook_url);
        if let Some(u) = &rotation_webhook_url {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                bail!("--rotation-webhook-url {u:?} must start with http:// or https://");
            }
        }
        let rotation_webhook_on_success = args
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
        Ok(Self {
            data_dir,
            listen,
            region,
            account_id,
            store_path,
            master_key_file,
            log_format,
            public_url,
            rotation_max_attempts,
            rotation_retry_base,
            rotation_retry_cap,
            rotation_concurrency,
            rotation_webhook_url,
            rotation_webhook_on_success,
            signing_key_file,
            test_clock,
            test_clock_skip_seconds,
        })
    }
}

fn store_path(url: &str) -> anyhow::Result<PathBuf> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        if path.is_empty() {
            bail!("--store {url:?} names no file");
        }
        return Ok(Path::new(path).to_path_buf());
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        bail!("--store: PostgreSQL is not supported yet; use sqlite://PATH");
    }
    bail!("--store {url:?} must be sqlite://PATH")
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
