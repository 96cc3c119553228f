//! `rotary serve`: first-start initialisation, then the HTTP server and background jobs.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use rand::distributions::{Alphanumeric, DistString, Uniform};
use rand::rngs::OsRng;
use rand::Rng;
use rotary_auth::{root_credential, CredentialTable, SecretKey, Verifier};
use rotary_core::audit::{AuditConfig, AuditLog, Mirror};
use rotary_core::{Clock, OffsetClock, SecretsService, ServiceConfig, SystemClock};
use rotary_crypto::Keyring;
use rotary_rotation::api::TEST_CLOCK_META;
use rotary_rotation::functions::{ExecPolicy, Isolation, Sandbox};
use rotary_rotation::webhook::WebhookConfig;
use rotary_rotation::{EngineConfig, FunctionRegistry, RotationEngine};
use rotary_server::authz::Authorizer;
use rotary_server::iam::Iam;
use rotary_server::{AppShared, AppState, BodyLimits, Metrics, MetricsAccess, TlsFiles};
use rotary_store::{PgStoreOptions, PostgresStore, SqliteStore, Store};
use serde::{Deserialize, Serialize};
use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogFormat};
use crate::{fsperm, keycheck};

/// Store metadata key of the sealed root credentials.
pub(crate) const ROOT_CREDENTIALS_META: &str = "root-credentials";
/// AAD of the sealed root credentials.
pub(crate) const ROOT_CREDENTIALS_LABEL: &[u8] = b"rotary-root-credentials";
/// How often secrets whose recovery window ended are purged.
const PURGE_INTERVAL: Duration = Duration::from_secs(60);

/// Sets up logging to stderr.
pub(crate) fn init_tracing(config: &Config) {
    let filter = EnvFilter::try_from_env("ROTARY_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[derive(Serialize, Deserialize)]
struct RootKeys {
    access_key_id: String,
    secret_access_key: String,
}

impl Drop for RootKeys {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.secret_access_key);
    }
}

fn generate_root_keys() -> RootKeys {
    let upper = Uniform::new_inclusive(b'A', b'Z');
    let digits = Uniform::new_inclusive(b'2', b'7');
    let akid: String = (0..16)
        .map(|i| if i % 3 == 0 { OsRng.sample(digits) } else { OsRng.sample(upper) } as char)
        .collect();
    RootKeys {
        access_key_id: format!("AKIA{akid}"),
        secret_access_key: Alphanumeric.sample_string(&mut OsRng, 40),
    }
}

fn write_0600(path: &std::path::Path, contents: &[u8]) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(contents)?;
    f.sync_all()?;
    Ok(())
}

/// Loads the root key pair, creating it on first start (from the environment if given).
async fn root_keys(
    config: &Config,
    store: &dyn Store,
    keyring: &Keyring,
) -> anyhow::Result<RootKeys> {
    let from_env = match (
        std::env::var("ROTARY_ROOT_ACCESS_KEY_ID").ok(),
        std::env::var("ROTARY_ROOT_SECRET_ACCESS_KEY").ok(),
    ) {
        (Some(a), Some(s)) if !a.is_empty() && !s.is_empty() => Some(RootKeys {
            access_key_id: a,
            secret_access_key: s,
        }),
        (None, None) => None,
        _ => bail!(
            "set both ROTARY_ROOT_ACCESS_KEY_ID and ROTARY_ROOT_SECRET_ACCESS_KEY, or neither"
        ),
    };
    let stored = match store.get_meta(ROOT_CREDENTIALS_META).await? {
        Some(sealed) => {
            let plain = keyring
                .unwrap_master(ROOT_CREDENTIALS_LABEL, &sealed)
                .context("the stored root credentials do not open with this master key")?;
            Some(
                serde_json::from_slice::<RootKeys>(plain.expose())
                    .context("reading root credentials")?,
            )
        }
        None => None,
    };
    let seal = |keys: &RootKeys| -> anyhow::Result<Vec<u8>> {
        let json = zeroize::Zeroizing::new(serde_json::to_vec(keys)?);
        Ok(keyring.wrap_master(ROOT_CREDENTIALS_LABEL, &json)?)
    };
    match (from_env, stored) {
        (Some(env), stored) => {
            let same = stored.as_ref().is_some_and(|s| {
                s.access_key_id == env.access_key_id && s.secret_access_key == env.secret_access_key
            });
            if !same {
                store.put_meta(ROOT_CREDENTIALS_META, &seal(&env)?).await?;
                tracing::info!(access_key_id = %env.access_key_id, "Root access key set from the environment");
            }
            Ok(env)
        }
        (None, Some(stored)) => Ok(stored),
        (None, None) => {
            let keys = generate_root_keys();
            store.put_meta(ROOT_CREDENTIALS_META, &seal(&keys)?).await?;
            let file = config.data_dir.join("root-credentials");
            let text = zeroize::Zeroizing::new(format!(
                "[default]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
                keys.access_key_id, keys.secret_access_key
            ));
            write_0600(&file, text.as_bytes())?;
            // Printed once, on first start only, so the operator can keep them.
            println!(
                "Rotary root credentials (also in {}, mode 0600):",
                file.display()
            );
            println!("  AWS_ACCESS_KEY_ID={}", keys.access_key_id);
            println!("  AWS_SECRET_ACCESS_KEY={}", keys.secret_access_key);
            Ok(keys)
        }
    }
}

/// Opens the configured store: the SQLite file, or the PostgreSQL database that several
/// nodes share.
async fn open_store(config: &Config, node_id: &str) -> anyhow::Result<Arc<dyn Store>> {
    let refuse_newer = |what: &str, e: rotary_store::Error| -> anyhow::Error {
        keycheck::ConfigError(format!("{what}: {e}")).into()
    };
    if let Some(url) = &config.postgres_url {
        let options = PgStoreOptions {
            max_connections: config.store_pool_size,
            ..PgStoreOptions::default()
        };
        let store = match PostgresStore::open(url, options).await {
            Err(e @ rotary_store::Error::NewerSchema { .. }) => {
                return Err(refuse_newer("the PostgreSQL store", e))
            }
            // The URL may carry a password: never print it.
            r => r.context("opening the PostgreSQL store (--store)")?,
        };
        tracing::info!(node_id, "Serving from the shared PostgreSQL store");
        return Ok(Arc::new(store));
    }
    let store = match SqliteStore::open(&config.store_path).await {
        Err(e @ rotary_store::Error::NewerSchema { .. }) => {
            return Err(refuse_newer(&config.store_path.display().to_string(), e))
        }
        r => r.with_context(|| format!("opening store {}", config.store_path.display()))?,
    };
    fsperm::secure_store_file(&config.store_path)?;
    Ok(Arc::new(store))
}

/// Over a store shared with other nodes: applies their changes to this node's copies of
/// server-wide state (users and keys, rotation functions, the test clock). Secrets and KMS
/// keys are the service's own ([`SecretsService::watch_changes`]).
fn watch_shared_state(
    store: &Arc<dyn Store>,
    iam: Arc<Iam>,
    registry: Arc<FunctionRegistry>,
    test_clock: Option<Arc<OffsetClock>>,
) -> Option<tokio::task::JoinHandle<()>> {
    use rotary_store::Change;
    use tokio::sync::broadcast::error::RecvError;
    let mut changes = store.changes()?;
    let store = store.clone();
    Some(tokio::spawn(async move {
        loop {
            let change = match changes.recv().await {
                Ok(c) => c,
                Err(RecvError::Lagged(_)) => Change::Resync,
                Err(RecvError::Closed) => return,
            };
            let (all, key) = match &change {
                Change::Meta { key } => (false, key.as_str()),
                Change::Resync => (true, ""),
                Change::Secret { .. } => continue,
            };
            if all || Iam::is_iam_key(key) {
                if let Err(e) = iam.reload().await {
                    tracing::warn!(error = %e, "Reloading users and access keys failed");
                }
            }
            if all || FunctionRegistry::is_function_key(key) {
                if let Err(e) = registry.reload().await {
                    tracing::warn!(error = %e, "Reloading rotation functions failed");
                }
            }
            if let Some(clock) = test_clock
                .as_ref()
                .filter(|_| all || key == TEST_CLOCK_META)
            {
                match store.get_meta(TEST_CLOCK_META).await {
                    Ok(Some(v)) => {
                        if let Some(ms) = std::str::from_utf8(&v).ok().and_then(|v| v.parse().ok())
                        {
                            clock.set_offset_ms(ms);
                        }
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = %e, "Reading the test clock failed"),
                }
            }
        }
    }))
}

/// Runs the server until SIGINT or SIGTERM.
pub(crate) async fn run(config: Config) -> anyhow::Result<()> {
    // Bind first: a port that is taken must fail the start before anything is created or
    // new root credentials are printed.
    let listener =
        bind(config.listen).with_context(|| format!("listening on {}", config.listen))?;
    let metrics_listener = match config.metrics_listen {
        Some(addr) => {
            Some(bind(addr).with_context(|| format!("listening on {addr} (--metrics-listen)"))?)
        }
        None => None,
    };
    fsperm::private_umask();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&config.data_dir)
        .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    // Key files are not tightened but refused when loose (they may have been read already).
    fsperm::secure_data_dir(
        &config.data_dir,
        &[
            &config.function_dir,
            &config.master_key_file,
            &config.signing_key_file,
        ],
    )?;
    let node_id = crate::config::node_id(&config)?;
    let store = open_store(&config, &node_id).await?;
    // Read only if the key file is sealed; zeroized when dropped after the key is open.
    let passphrase = crate::passphrase::Passphrase::new(config.master_key_passphrase_file.clone());
    let (master, created) = keycheck::open_master_key(
        &config.master_key_file,
        &passphrase,
        store.as_ref(),
        ROOT_CREDENTIALS_META,
        ROOT_CREDENTIALS_LABEL,
    )
    .await?;
    if created {
        tracing::info!(path = %config.master_key_file.display(), "Created a new master key");
    }
    let keyring = Arc::new(Keyring::new(master));
    // An online master-key rotation in progress: the next key, staged beside the key file,
    // opens values too (crate::nextkey).
    crate::nextkey::load_next_key(
        &config.master_key_file,
        &passphrase,
        &keyring,
        store.as_ref(),
        &node_id,
    )
    .await
    .context("loading the next master key")?;
    drop(passphrase);
    reload_next_key_on_sighup(&config, keyring.clone(), store.clone(), node_id.clone())?;
    let test_clock = config.test_clock.then(|| Arc::new(OffsetClock::default()));
    if let Some(c) = &test_clock {
        let stored = store.get_meta(TEST_CLOCK_META).await?;
        let stored: i64 = stored
            .and_then(|v| String::from_utf8(v).ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        c.advance(stored + config.test_clock_skip_seconds.saturating_mul(1000));
        store
            .put_meta(TEST_CLOCK_META, c.offset_ms().to_string().as_bytes())
            .await?;
    }
    let clock: Arc<dyn Clock> = match &test_clock {
        Some(c) => {
            tracing::warn!("The test clock is on: rotary.AdvanceTestClock can move time. Never use this in production.");
            c.clone()
        }
        None => Arc::new(SystemClock),
    };
    let service = SecretsService::open(
        store.clone(),
        keyring.clone(),
        clock,
        ServiceConfig {
            region: config.region.clone(),
            account_id: config.account_id.clone(),
            read_cache_bytes: config.read_cache_bytes,
            replica_regions: config.regions.iter().map(|r| r.name.clone()).collect(),
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("opening the secrets service: {e}"))?;
    let service = Arc::new(service);
    let _change_watch = service.watch_changes();

    let keys = root_keys(&config, store.as_ref(), &keyring).await?;
    let iam = Arc::new(
        Iam::open(store.clone(), keyring.clone(), &config.account_id)
            .await
            .map_err(|e| anyhow::anyhow!("loading users and access keys: {e}"))?
            .with_clock(service.clock().clone()),
    );
    let _flusher = Iam::spawn_last_used_flusher(&iam, Duration::from_secs(60));
    let credentials = Arc::new(CredentialTable::new());
    credentials.insert(
        keys.access_key_id.clone(),
        root_credential(
            &config.account_id,
            &keys.access_key_id,
            SecretKey::new(keys.secret_access_key.clone()),
        ),
    );
    drop(keys);

    let signing_key = signing_key(&config.signing_key_file)
        .map_err(|e| keycheck::ConfigError(format!("{e:#}")))?;
    let policy = Arc::new(function_policy(&config)?);
    let registry = Arc::new(
        FunctionRegistry::open(
            store.clone(),
            keyring.clone(),
            policy,
            &config.region,
            &config.account_id,
        )
        .await
        .context("loading rotation functions")?,
    );
    let audit = AuditLog::open(
        &config.data_dir.join(rotary_core::audit::LOG_FILE),
        AuditConfig {
            mirror: match config.audit_mirror.as_deref() {
                None | Some("") => None,
                Some("-") => Some(Mirror::Stdout),
                Some(path) => Some(Mirror::File(path.into())),
            },
            fail_closed: config.audit_fail_closed,
        },
    )
    .map_err(|e| anyhow::anyhow!("opening the audit log: {e}"))?;
    let shared_sessions = service.is_shared().then(|| {
        Arc::new(SharedSessions {
            store: store.clone(),
            keyring: keyring.clone(),
        })
    });
    let _shared_watch =
        watch_shared_state(&store, iam.clone(), registry.clone(), test_clock.clone());
    crate::nextkey::spawn_seal_key_watch(
        keyring.clone(),
        store.clone(),
        node_id.clone(),
        iam.clone(),
        registry.clone(),
    );
    let engine = RotationEngine::new(
        service.clone(),
        registry,
        credentials.clone(),
        EngineConfig {
            endpoint_url: config.public_url.clone(),
            max_attempts: config.rotation_max_attempts,
            retry_base: config.rotation_retry_base,
            retry_cap: config.rotation_retry_cap,
            poll_interval: Duration::from_secs(1),
            concurrency: config.rotation_concurrency,
            webhook: config
                .rotation_webhook_url
                .clone()
                .map(|url| WebhookConfig {
                    url,
                    on_success: config.rotation_webhook_on_success,
                    signing_key: signing_key.to_vec(),
                }),
            http_signing_key: signing_key.to_vec(),
            audit: Some(audit.clone()),
            node_id,
            claim_lease: config.rotation_claim_lease,
            sessions: shared_sessions
                .clone()
                .map(|s| s as Arc<dyn rotary_rotation::SessionShare>),
        },
    );

    let limits = server_limits(&config);
    let tls = match &config.tls {
        Some(t) => Some(Arc::new(TlsFiles::load(&t.cert, &t.key).map_err(|e| {
            keycheck::ConfigError(format!("loading the TLS certificate and key: {e:#}"))
        })?)),
        None => None,
    };
    let metrics = Arc::new(Metrics::default());
    let state = AppState::new(AppShared {
        service: service.clone(),
        rotation: engine.clone(),
        test_clock,
        verifier: Arc::new(Verifier::new(config.region.clone(), "secretsmanager")),
        credentials: Arc::new(KeyChain {
            table: credentials.clone(),
            iam: iam.clone(),
            sessions: shared_sessions.clone(),
        }),
        metrics: metrics.clone(),
        region: config.region.clone(),
        body_limits: Arc::new(BodyLimits::new(&limits)),
        metrics_access: if config.metrics_listen.is_some() {
            MetricsAccess::Separate
        } else {
            MetricsAccess::Signed
        },
        authorizer: Arc::new(Authorizer::new(service.clone(), iam.clone())),
        iam: iam.clone(),
        audit: audit.clone(),
    });

    let purger = service.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PURGE_INTERVAL);
        loop {
            tick.tick().await;
            if let Err(e) = purger.purge_due().await {
                tracing::warn!(error = %e, "Purging deleted secrets failed");
            }
        }
    });

    tracing::info!(
        address = %listener.local_addr()?,
        tls = tls.is_some(),
        max_connections = limits.max_connections,
        region = %config.region,
        data_dir = %config.data_dir.display(),
        "Rotary is listening"
    );
    if tls.is_none() && !config.listen.ip().is_loopback() {
        tracing::warn!(
            address = %config.listen,
            "SERVING PLAIN HTTP ON A NON-LOOPBACK ADDRESS: access keys, signatures and secret \
             values cross the network in clear text. Use --tls-cert and --tls-key, or listen on \
             127.0.0.1 behind a TLS-terminating proxy."
        );
    }
    if let Some(tls) = &tls {
        reload_tls_on_sighup(tls.clone())?;
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    tokio::spawn(async move {
        shutdown().await;
        let _ = stop_tx.send(true);
    });
    let metrics_server = metrics_listener.map(|ml| {
        if let Ok(addr) = ml.local_addr() {
            tracing::info!(address = %addr, "Serving /metrics and /health");
        }
        let metrics_limits = rotary_server::Limits {
            max_connections: 64,
            ..limits.clone()
        };
        tokio::spawn(rotary_server::serve(
            ml,
            rotary_server::metrics_router(state.clone()),
            metrics_limits,
            None,
            stopped(),
        ))
    });
    // Started after the listener is bound: rotations missed while the server was down run
    // now, and their functions can reach the endpoint.
    engine.spawn();
    if !config.regions.is_empty() {
        let peers = config
            .regions
            .iter()
            .map(|r| rotary_server::replication::Peer {
                region: r.name.clone(),
                endpoint: r.endpoint.clone(),
                credentials_secret: r.credentials_secret.clone(),
                ca_file: r.ca_file.clone(),
            })
            .collect();
        let shipper =
            rotary_server::replication::Shipper::new(service.clone(), peers, metrics.clone())
                .map_err(|e| anyhow::anyhow!(e))?;
        tokio::spawn(Arc::new(shipper).run());
        tracing::info!(regions = ?config.regions.iter().map(|r| &r.name).collect::<Vec<_>>(), "Replicating secrets to other regions");
    }
    rotary_server::serve_api(listener, state, limits, tls, stopped())
        .await
        .context("serving")?;
    if let Some(m) = metrics_server {
        let _ = m.await;
    }
    if let Err(e) = audit.flush().await {
        tracing::error!(error = %e, "Flushing the audit log at shutdown failed");
    }
    tracing::info!("Rotary stopped");
    Ok(())
}

/// The configured limits, with the connection limit lowered to fit the open-files limit
/// (raised first to its hard limit).
fn server_limits(config: &Config) -> rotary_server::Limits {
    let mut limits = config.limits.clone();
    match rotary_server::raise_fd_limit() {
        Ok(fds) => {
            let fit = rotary_server::connections_for_fds(limits.max_connections, fds);
            if fit < limits.max_connections {
                tracing::warn!(
                    max_connections = limits.max_connections,
                    open_files_limit = fds,
                    lowered_to = fit,
                    "--max-connections does not fit the open-files limit; lowered"
                );
                limits.max_connections = fit;
            }
        }
        Err(e) => tracing::warn!(error = %e, "Could not raise the open-files limit"),
    }
    limits
}

/// A listening socket with a backlog deep enough to hold callers while connection slots
/// are freed.
fn bind(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// On SIGHUP, reads the TLS certificate and key again; new connections use them. A pair that
/// does not load is logged and the previous one stays in use.
fn reload_tls_on_sighup(tls: Arc<TlsFiles>) -> anyhow::Result<()> {
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("installing the SIGHUP handler")?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            match tls.reload() {
                Ok(()) => tracing::info!("Reloaded the TLS certificate and key"),
                Err(e) => tracing::error!(
                    error = %e,
                    "Reloading the TLS certificate and key failed; the previous ones stay in use"
                ),
            }
        }
    });
    Ok(())
}

/// On SIGHUP, reads the next master key staged beside the key file (`KEYFILE.new`), for an
/// online master-key rotation; a sealed one needs the passphrase from a file or the
/// environment. A key that does not load is logged and nothing changes.
fn reload_next_key_on_sighup(
    config: &Config,
    keyring: Arc<Keyring>,
    store: Arc<dyn Store>,
    node_id: String,
) -> anyhow::Result<()> {
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("installing the SIGHUP handler")?;
    let key_path = config.master_key_file.clone();
    let passphrase_file = config.master_key_passphrase_file.clone();
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            let passphrase = crate::passphrase::Passphrase::new(passphrase_file.clone());
            if let Err(e) = crate::nextkey::load_next_key(
                &key_path,
                &passphrase,
                &keyring,
                store.as_ref(),
                &node_id,
            )
            .await
            {
                tracing::error!(error = %format!("{e:#}"), "Loading the next master key failed");
            }
        }
    });
    Ok(())
}

/// The key signing HTTP function calls and webhooks: read from its file, or created there
/// (32 random bytes, hex, mode 0600) on first start.
fn signing_key(path: &std::path::Path) -> anyhow::Result<zeroize::Zeroizing<Vec<u8>>> {
    if path.exists() {
        fsperm::check_key_file(path, "the signing key")?;
        let text = zeroize::Zeroizing::new(
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
        );
        let key = hex::decode(text.trim())
            .with_context(|| format!("{} must hold a hex key", path.display()))?;
        if key.len() < 16 {
            bail!("{} must hold at least 16 bytes of key", path.display());
        }
        return Ok(zeroize::Zeroizing::new(key));
    }
    let mut key = vec![0u8; 32];
    rand::RngCore::fill_bytes(&mut OsRng, &mut key);
    write_0600(path, hex::encode(&key).as_bytes())?;
    tracing::info!(path = %path.display(), "Created the key that signs HTTP function calls and webhooks");
    Ok(zeroize::Zeroizing::new(key))
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// Creates the function directory (mode 0755: the sandboxed functions' user reads it) and
/// decides how process and Python functions run: in the bubblewrap sandbox, without it when
/// bubblewrap is missing and the operator allowed that, or not at all.
fn function_policy(config: &Config) -> anyhow::Result<ExecPolicy> {
    use std::os::unix::fs::PermissionsExt;
    let dir = &config.function_dir;
    if !dir.exists() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the function directory {}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("setting the mode of {}", dir.display()))?;
        tracing::info!(path = %dir.display(), "Created the (empty) rotation function directory");
    }
    if std::fs::metadata(dir)?.permissions().mode() & 0o002 != 0 {
        bail!(keycheck::ConfigError(format!(
            "the function directory {} is writable by everyone; only the operator may install functions (chmod o-w)",
            dir.display()
        )));
    }
    let mut hidden = vec![
        config.data_dir.clone(),
        config.master_key_file.clone(),
        config.signing_key_file.clone(),
    ];
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = config.store_path.as_os_str().to_owned();
        p.push(suffix);
        hidden.push(p.into());
    }
    hidden.extend(config.sandbox_hidden_paths());
    let isolation = match Sandbox::detect(hidden, dir, config.function_writable_dirs.clone()) {
        Ok(sandbox) => {
            tracing::info!(
                function_dir = %dir.display(),
                unprivileged_user = sandbox.drops_privileges(),
                "Process and Python rotation functions run in the bubblewrap sandbox"
            );
            Isolation::Sandboxed(Arc::new(sandbox))
        }
        Err(why) if config.allow_unsandboxed_functions => {
            tracing::warn!(
                reason = %why,
                "--allow-unsandboxed-functions: process and Python rotation functions run WITHOUT a sandbox, as the server's user, and can read its keys"
            );
            Isolation::Unsandboxed
        }
        Err(why) => {
            tracing::warn!(
                reason = %why,
                "Process and Python rotation functions are disabled: no sandbox (install bubblewrap, or start with --allow-unsandboxed-functions)"
            );
            Isolation::Refused(format!(
                "{why}; the server refuses to run functions unsandboxed unless started with --allow-unsandboxed-functions"
            ))
        }
    };
    Ok(ExecPolicy::new(dir, isolation))
}

/// Access keys: the root key and rotation sessions (in memory), then users' keys, then
/// (over a shared store) rotation sessions issued by other nodes.
struct KeyChain {
    table: Arc<CredentialTable>,
    iam: Arc<Iam>,
    sessions: Option<Arc<SharedSessions>>,
}

impl rotary_auth::CredentialSource for KeyChain {
    fn lookup(&self, access_key_id: &str) -> Option<rotary_auth::Credential> {
        self.table
            .lookup(access_key_id)
            .or_else(|| self.iam.lookup(access_key_id))
            .or_else(|| {
                self.sessions
                    .as_ref()
                    .filter(|_| access_key_id.starts_with("ASIA"))
                    .and_then(|s| s.lookup_blocking(access_key_id))
            })
    }
}

/// Rotation steps' temporary credentials in the shared store, sealed under the master key,
/// so that a function's call that a load balancer sends to another node is accepted there.
#[derive(Clone)]
struct SharedSessions {
    store: Arc<dyn Store>,
    keyring: Arc<Keyring>,
}

impl std::fmt::Debug for SharedSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedSessions")
    }
}

/// A published session, as sealed in the store.
#[derive(serde::Serialize, serde::Deserialize)]
struct SessionRecord {
    secret: String,
    token: String,
    account_id: String,
    arn: String,
    session_name: String,
    scope: Vec<String>,
    expires_ms: i64,
}

/// Where a published rotation session is kept: `session:<access key id>`, its record sealed
/// under the master key with [`session_label`].
pub(crate) const SESSION_META_PREFIX: &str = "session:";

/// The AAD of a published rotation session's record.
pub(crate) fn session_label(akid: &str) -> Vec<u8> {
    format!("rotary-session:{akid}").into_bytes()
}

#[expect(
    clippy::disallowed_methods,
    reason = "session credentials expire on the wall clock, as SigV4 timestamps do, not the test clock"
)]
pub(crate) fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl SharedSessions {
    /// Reads a session published by another node. Credential lookup is synchronous (it
    /// runs inside SigV4 verification), so this blocks the worker thread on one indexed
    /// read; only access key ids of the session form that no table knows get here.
    fn lookup_blocking(&self, akid: &str) -> Option<rotary_auth::Credential> {
        let handle = tokio::runtime::Handle::try_current().ok()?;
        if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
            return None;
        }
        let key = format!("{SESSION_META_PREFIX}{akid}");
        let sealed = tokio::task::block_in_place(|| handle.block_on(self.store.get_meta(&key)))
            .map_err(|e| tracing::warn!(error = %e, "Reading a shared rotation session failed"))
            .ok()??;
        let json = self
            .keyring
            .unwrap_master(&session_label(akid), &sealed)
            .ok()?;
        let rec: SessionRecord = serde_json::from_slice(json.expose()).ok()?;
        if rec.expires_ms <= unix_ms() {
            return None;
        }
        Some(rotary_auth::Credential {
            secret_access_key: SecretKey::new(rec.secret),
            session_token: Some(rec.token),
            principal: rotary_auth::Principal {
                account_id: rec.account_id,
                arn: rec.arn,
                access_key_id: akid.to_owned(),
                kind: rotary_auth::PrincipalKind::Session {
                    session_name: rec.session_name,
                    scope: rec.scope,
                },
            },
        })
    }
}

#[async_trait::async_trait]
impl rotary_rotation::SessionShare for SharedSessions {
    async fn publish(&self, akid: &str, credential: &rotary_auth::Credential, expires_ms: i64) {
        let rotary_auth::PrincipalKind::Session {
            session_name,
            scope,
        } = &credential.principal.kind
        else {
            return;
        };
        let rec = SessionRecord {
            secret: credential.secret_access_key.expose().to_owned(),
            token: credential.session_token.clone().unwrap_or_default(),
            account_id: credential.principal.account_id.clone(),
            arn: credential.principal.arn.clone(),
            session_name: session_name.clone(),
            scope: scope.clone(),
            expires_ms,
        };
        let sealed = serde_json::to_vec(&rec)
            .map_err(anyhow::Error::from)
            .and_then(|json| Ok(self.keyring.wrap_master(&session_label(akid), &json)?));
        let result = match sealed {
            Ok(sealed) => self
                .store
                .put_meta(&format!("{SESSION_META_PREFIX}{akid}"), &sealed)
                .await
                .map_err(anyhow::Error::from),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "Publishing a rotation session to the other nodes failed");
        }
    }

    async fn revoke(&self, akid: &str) {
        if let Err(e) = self
            .store
            .delete_meta(&format!("{SESSION_META_PREFIX}{akid}"))
            .await
        {
            tracing::warn!(error = %e, "Withdrawing a rotation session failed");
        }
    }
}
