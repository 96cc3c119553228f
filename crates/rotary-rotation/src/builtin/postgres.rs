//! `rotary-postgresql-single-user` and `rotary-postgresql-alternating-users`: AWS's
//! PostgreSQL rotation templates (`SecretsManagerRDSPostgreSQLRotationSingleUser` and
//! `…MultiUser`, spec §5.10–§5.12) as built-ins, step for step.
//!
//! The secret is AWS's JSON: `engine` (`postgres` or `aurora-postgresql`), `host`,
//! `username`, `password`, optional `dbname` (default `postgres`), `port` (default 5432,
//! number or string) and `ssl`; alternating users add `masterarn`, the ARN or name of a
//! secret holding a superuser's `host`, `username`, `password` (and optionally `port`).
//! Other members are kept. New passwords are 32 characters without `:/@"'\`, as AWS's
//! defaults: built-ins have no environment to override them (AWS's `PASSWORD_LENGTH` and
//! `EXCLUDE_CHARACTERS`); a custom policy needs a registered function.
//!
//! # Setting a password
//! PostgreSQL takes no bind parameters in utility statements (`ALTER ROLE … PASSWORD $1`
//! is a syntax error), so the statement is text. The server quotes both parts itself:
//! `SELECT quote_ident($1), quote_literal($2)` binds the role name and the password as
//! ordinary parameters and returns them as SQL tokens, with the quoting rules of *that*
//! server (`quote_literal` writes `E'…'` when a backslash needs it, whatever
//! `standard_conforming_strings` says). The result is spliced into `ALTER ROLE` or
//! `CREATE ROLE` and sent with the simple-query protocol, whose multi-statement string runs
//! as one transaction (`CREATE ROLE` and its `GRANT` commit together). AWS's template does
//! the same with `quote_ident` and its driver's literal escaping. The plaintext password
//! reaches the server, which hashes it with its `password_encryption`; a server logging
//! DDL (`log_statement = 'ddl'`) logs it, as with AWS's function.
//!
//! # Alternating users
//! As AWS's template: the current credentials must log in, the master secret's host must be
//! the secret's, and the master creates `<user>_clone` with `GRANT <user>` on the first
//! rotation, then only changes passwords. One addition: an existing pending role is changed
//! only if the `_clone` role is a member of the base role (what that first `GRANT` made).
//! Every secret can name the master, so without it a secret for a self-made role
//! `admin_clone` would have the master reset the password of an existing role `admin`.
//!
//! # TLS
//! `ssl: true` requires TLS, `ssl: false` never uses it, and without `ssl` TLS is tried
//! first and plaintext on failure (AWS's `get_ssl_config`), except when no server answered
//! or it refused the password over TLS: passwords do not depend on the transport, and a
//! second failed login would only add noise to the server's log.
//! Certificates are verified against the host name (libpq's `verify-full`) with the Mozilla
//! roots, the system bundle (`/etc/ssl/certs/ca-certificates.crt`) and the file named by
//! `SSL_CERT_FILE`, when those exist. Connecting times out after 5 seconds.
//!
//! # Invariants
//! No password (the secret's, the pending one or the master's) appears in a returned error
//! or log line: errors carry the step, host, port, user and the server's reason, and are
//! scrubbed of every password the step holds before they leave.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use rotary_core::labels::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use rotary_wire::Sensitive;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use serde_json::{Map, Value};
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::common::{self, store_pending, DbFields, DbSteps, SecretRules, Tls};
use super::{scrub, SecretOps};

/// How long one connection attempt (TCP, TLS and authentication) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Appended to or stripped from the username by the alternating-users rotator.
const CLONE_SUFFIX: &str = "_clone";
/// PostgreSQL's longest identifier (NAMEDATALEN − 1), in bytes.
const MAX_IDENTIFIER_BYTES: usize = 63;
/// The Debian/Ubuntu/Alpine system CA bundle, used when present.
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
const DEFAULT_PORT: u16 = 5432;
const DEFAULT_DBNAME: &str = "postgres";
const ENGINES: [&str; 2] = ["postgres", "aurora-postgresql"];

/// Rotates a PostgreSQL user's password: its own (single user), or alternately that of
/// `user` and `user_clone`, the clone created on the first rotation by the master user of
/// `masterarn` and granted the original user's role (alternating users).
pub(super) struct PostgresRotator {
    ops: Arc<dyn SecretOps>,
    alternating: bool,
    /// Built on first TLS use; an error (no crypto provider) is kept and reported per use.
    tls: OnceLock<Result<rustls::ClientConfig, String>>,
}

/// Everything needed to log in; `Debug` hides the password.
#[derive(Debug)]
struct Login {
    host: String,
    port: u16,
    dbname: String,
    username: String,
    password: Sensitive,
    tls: Tls,
}

impl Login {
    /// `host:port` for messages, an IPv6 address in brackets (as every rotator writes it).
    fn addr(&self) -> String {
        common::address(&self.host, self.port)
    }
}

/// A validated database secret.
#[derive(Debug)]
struct DbSecret {
    login: Login,
    /// The master secret's id (alternating users).
    masterarn: Option<String>,
}

/// Why a connection attempt failed. `unreachable` means no server answered (refused,
/// timed out, name not resolved): another user or plaintext cannot help.
#[derive(Debug)]
struct ConnectError {
    unreachable: bool,
    /// The server refused the password (SQLSTATE 28P01).
    bad_password: bool,
    cause: String,
}

/// `user` ↔ `user_clone`, as AWS's `get_alt_username`.
fn alt_username(username: &str) -> Result<String, String> {
    if let Some(base) = username.strip_suffix(CLONE_SUFFIX) {
        return Ok(base.to_owned());
    }
    let alt = format!("{username}{CLONE_SUFFIX}");
    if alt.len() > MAX_IDENTIFIER_BYTES {
        return Err(format!(
            "unable to clone user {username}: with '{CLONE_SUFFIX}' appended the username \
             would exceed {MAX_IDENTIFIER_BYTES} characters"
        ));
    }
    Ok(alt)
}

/// What PostgreSQL secrets look like.
const RULES: SecretRules = SecretRules {
    engines: &ENGINES,
    engine_text: "'postgres'",
    engine_required: true,
    default_port: DEFAULT_PORT,
};

/// The value of `what` (a stage) as a JSON object.
fn parse_object(text: &str, what: &str) -> Result<Map<String, Value>, String> {
    common::object(text).map_err(|e| format!("{what}: {e}"))
}

/// Validates a rotated secret (AWSCURRENT, AWSPENDING or AWSPREVIOUS) with the shared
/// parser, as AWS's `get_secret_dict` does; `what` names it in errors.
fn parse_secret(text: &str, what: &str, alternating: bool) -> Result<DbSecret, String> {
    let s = DbFields::parse(text, &RULES, alternating).map_err(|e| format!("{what}: {e}"))?;
    Ok(DbSecret {
        login: Login {
            host: s.host,
            port: s.port,
            dbname: s.dbname.unwrap_or_else(|| DEFAULT_DBNAME.to_owned()),
            username: s.username,
            password: s.password,
            tls: s.tls,
        },
        masterarn: s.masterarn,
    })
}

/// The master secret: `host`, `username`, `password` required; `port` defaults to the
/// rotated secret's, `ssl` too; the database is always the rotated secret's (AWS copies
/// `dbname` from it); `engine`, if present, must be PostgreSQL's.
fn parse_master(text: &str, of: &Login) -> Result<Login, String> {
    let parse = || -> Result<Login, String> {
        let m = common::object(text)?;
        if let Some(engine) = common::string_member(&m, "engine")? {
            if !ENGINES.contains(&engine) {
                return Err(common::wrong_engine(&RULES));
            }
        }
        Ok(Login {
            host: common::host(&m)?,
            port: common::port(&m)?.unwrap_or(of.port),
            dbname: of.dbname.clone(),
            username: common::required(&m, "username")?.to_owned(),
            password: Sensitive::new(common::required(&m, "password")?.to_owned()),
            tls: common::tls(&m)?.unwrap_or(of.tls),
        })
    };
    parse().map_err(|e| format!("the master secret: {e}"))
}

/// `error`, then each distinct cause: `db error: FATAL: password authentication failed…`.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut last = text.clone();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if part != last && !last.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        last = part;
        source = s.source();
    }
    text.replace('\n', " ")
}

fn classify(e: &tokio_postgres::Error) -> ConnectError {
    // tokio-postgres has no public error kind; these are the texts of `Kind::Connect`
    // (socket connect, resolution, connect_timeout) and `Kind::Timeout`.
    let top = e.to_string();
    ConnectError {
        unreachable: top == "error connecting to server" || top == "timeout waiting for server",
        bad_password: e.code() == Some(&SqlState::INVALID_PASSWORD),
        cause: error_chain(e),
    }
}

fn build_tls_config() -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let mut bundles = vec![std::path::PathBuf::from(SYSTEM_CA_BUNDLE)];
    if let Some(file) = std::env::var_os("SSL_CERT_FILE") {
        bundles.push(file.into());
    }
    for path in bundles.iter().filter(|p| p.is_file()) {
        match CertificateDer::pem_file_iter(path) {
            Ok(certs) => {
                let (added, skipped) = roots.add_parsable_certificates(certs.flatten());
                tracing::debug!(path = %path.display(), added, skipped, "Loaded CA certificates");
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "Reading a CA bundle failed")
            }
        }
    }
    // An explicit provider: the workspace links both ring and aws-lc-rs, so rustls cannot
    // pick a process default.
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS configuration: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(config)
}

impl PostgresRotator {
    /// The rotator over secret operations; `alternating` selects the alternating-users
    /// strategy.
    pub(super) fn new(ops: Arc<dyn SecretOps>, alternating: bool) -> Self {
        Self {
            ops,
            alternating,
            tls: OnceLock::new(),
        }
    }

    fn tls_config(&self) -> Result<rustls::ClientConfig, String> {
        self.tls.get_or_init(build_tls_config).clone()
    }

    async fn connect_once(&self, login: &Login, tls: bool) -> Result<Client, ConnectError> {
        let mut cfg = tokio_postgres::Config::new();
        cfg.host(&login.host)
            .port(login.port)
            .user(&login.username)
            .password(login.password.expose())
            .dbname(&login.dbname)
            .application_name("rotary-rotator")
            .connect_timeout(CONNECT_TIMEOUT);
        let attempt = async {
            if tls {
                cfg.ssl_mode(SslMode::Require);
                let config = self.tls_config().map_err(|cause| ConnectError {
                    unreachable: false,
                    bad_password: false,
                    cause,
                })?;
                let (client, connection) = cfg
                    .connect(MakeRustlsConnect::new(config))
                    .await
                    .map_err(|e| classify(&e))?;
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                Ok(client)
            } else {
                cfg.ssl_mode(SslMode::Disable);
                let (client, connection) = cfg.connect(NoTls).await.map_err(|e| classify(&e))?;
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                Ok(client)
            }
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
            Ok(r) => r,
            Err(_) => Err(ConnectError {
                unreachable: true,
                bad_password: false,
                cause: format!("no answer within {}s", CONNECT_TIMEOUT.as_secs()),
            }),
        }
    }

    /// Logs in with `login`'s TLS mode. Errors never hold the password (the server's
    /// messages name the user, not the password; scrubbed all the same).
    async fn connect(&self, login: &Login) -> Result<Client, ConnectError> {
        let result = match login.tls {
            Tls::Required => self.connect_once(login, true).await,
            Tls::Disabled => self.connect_once(login, false).await,
            Tls::Preferred => match self.connect_once(login, true).await {
                Ok(c) => Ok(c),
                Err(e) if e.unreachable || e.bad_password => Err(e),
                Err(tls_err) => match self.connect_once(login, false).await {
                    Ok(c) => Ok(c),
                    Err(mut e) => {
                        if !tls_err.cause.contains("server does not support TLS") {
                            e.cause = format!("{}; over TLS: {}", e.cause, tls_err.cause);
                        }
                        Err(e)
                    }
                },
            },
        };
        result.map_err(|mut e| {
            e.cause = scrub(e.cause, &[login.password.expose()]);
            e
        })
    }

    async fn read(
        &self,
        arn: &str,
        token: Option<&str>,
        stage: &str,
    ) -> Result<Option<Sensitive>, String> {
        self.ops
            .get_value(arn, token, stage)
            .await
            .map_err(|e| format!("reading {stage}: {e}"))
    }

    async fn current(&self, arn: &str) -> Result<DbSecret, String> {
        let text = self
            .read(arn, None, AWSCURRENT)
            .await?
            .ok_or_else(|| "the secret has no AWSCURRENT value to rotate".to_owned())?;
        parse_secret(text.expose(), AWSCURRENT, self.alternating)
    }

    async fn pending(&self, arn: &str, token: &str) -> Result<DbSecret, String> {
        let text = self
            .read(arn, Some(token), AWSPENDING)
            .await?
            .ok_or_else(|| format!("version {token} has no AWSPENDING value"))?;
        parse_secret(text.expose(), AWSPENDING, self.alternating)
    }
}

fn unreachable(login: &Login, e: &ConnectError) -> String {
    format!("unable to reach {}: {}", login.addr(), e.cause)
}

fn sql_error(login: &Login, doing: &str, user: &str, e: &tokio_postgres::Error) -> String {
    scrub(
        format!(
            "{doing} user {user} on {} failed: {}",
            login.addr(),
            error_chain(e)
        ),
        &[login.password.expose()],
    )
}

/// The server's quoting of a role name and a password (see the module docs).
async fn quote(
    client: &Client,
    role: &str,
    password: &str,
    login: &Login,
) -> Result<(String, Sensitive), String> {
    let row = client
        .query_one(
            "SELECT quote_ident($1), quote_literal($2)",
            &[&role, &password],
        )
        .await
        .map_err(|e| sql_error(login, "quoting", role, &e))?;
    Ok((row.get(0), Sensitive::new(row.get(1))))
}

#[async_trait]
impl DbSteps for PostgresRotator {
    fn ops(&self) -> &dyn SecretOps {
        self.ops.as_ref()
    }

    fn check(&self, text: &str, stage: &str) -> Result<(), String> {
        parse_secret(text, stage, self.alternating).map(drop)
    }

    async fn create(&self, arn: &str, token: &str) -> Result<String, String> {
        let text = self
            .read(arn, None, AWSCURRENT)
            .await?
            .ok_or_else(|| "the secret has no AWSCURRENT value to rotate".to_owned())?;
        let current = parse_secret(text.expose(), AWSCURRENT, self.alternating)?;
        let fields = parse_object(text.expose(), AWSCURRENT)?;
        let other_user = if self.alternating {
            Some(alt_username(&current.login.username)?)
        } else {
            None
        };
        store_pending(self.ops.as_ref(), arn, token, &fields, other_user).await
    }

    fn alternating(&self) -> bool {
        self.alternating
    }

    /// Single user: the user changes its own password, logged in with the current (or
    /// else the previous) password.
    async fn set(&self, arn: &str, token: &str) -> Result<String, String> {
        let previous = match self.read(arn, None, AWSPREVIOUS).await {
            // AWS ignores a missing or malformed AWSPREVIOUS.
            Ok(Some(text)) => parse_secret(text.expose(), AWSPREVIOUS, false).ok(),
            _ => None,
        };
        let current = self.current(arn).await?;
        let pending = self.pending(arn, token).await?;
        let (p, c) = (&pending.login, &current.login);
        let pending_err = match self.connect(p).await {
            Ok(_) => return Ok("the pending password already works; nothing to set".into()),
            Err(e) if e.unreachable => return Err(unreachable(p, &e)),
            Err(e) => e,
        };
        if p.username != c.username {
            return Err(format!(
                "the pending username {} differs from the current username {}",
                p.username, c.username
            ));
        }
        if p.host != c.host {
            return Err(format!(
                "the pending host {} differs from the current host {}",
                p.host, c.host
            ));
        }
        let mut tried = vec![format!("pending: {}", pending_err.cause)];
        let mut client = None;
        match self.connect(c).await {
            Ok(cl) => client = Some((cl, AWSCURRENT)),
            Err(e) if e.unreachable => return Err(unreachable(c, &e)),
            Err(e) => tried.push(format!("current: {}", e.cause)),
        }
        if client.is_none() {
            if let Some(prev) =
                previous.filter(|s| s.login.username == p.username && s.login.host == p.host)
            {
                // AWS logs in with the previous password using the current TLS setting.
                let mut login = prev.login;
                login.tls = c.tls;
                match self.connect(&login).await {
                    Ok(cl) => client = Some((cl, AWSPREVIOUS)),
                    Err(e) => tried.push(format!("previous: {}", e.cause)),
                }
            }
        }
        let Some((client, with)) = client else {
            return Err(format!(
                "unable to log into {} with the previous, current or pending credentials of \
                 user {} ({})",
                p.addr(),
                p.username,
                tried.join("; ")
            ));
        };
        let (role, literal) = quote(&client, &p.username, p.password.expose(), p).await?;
        let sql = Sensitive::new(format!(
            "ALTER ROLE {role} WITH PASSWORD {}",
            literal.expose()
        ));
        client
            .batch_execute(sql.expose())
            .await
            .map_err(|e| sql_error(p, "changing the password of", &p.username, &e))?;
        Ok(format!(
            "changed the password of user {} on {}, logged in with the {with} password",
            p.username,
            p.addr()
        ))
    }

    /// Alternating users: the master user sets the password of the user that is not
    /// current, creating it (a member of the current user's role) on the first rotation.
    async fn set_alternating(&self, arn: &str, token: &str) -> Result<String, String> {
        let current = self.current(arn).await?;
        let pending = self.pending(arn, token).await?;
        let (p, c) = (&pending.login, &current.login);
        match self.connect(p).await {
            Ok(_) => return Ok("the pending password already works; nothing to set".into()),
            Err(e) if e.unreachable => return Err(unreachable(p, &e)),
            Err(_) => {}
        }
        let expected = alt_username(&c.username)?;
        if p.username != expected {
            return Err(format!(
                "the pending username {} is not the alternate ({expected}) of the current \
                 username {}",
                p.username, c.username
            ));
        }
        if p.host != c.host {
            return Err(format!(
                "the pending host {} differs from the current host {}",
                p.host, c.host
            ));
        }
        // The current credentials must work before the master acts on the secret's word.
        if let Err(e) = self.connect(c).await {
            return Err(if e.unreachable {
                unreachable(c, &e)
            } else {
                format!(
                    "unable to log into {} with the current credentials of user {}: {}",
                    c.addr(),
                    c.username,
                    e.cause
                )
            });
        }
        let masterarn = current.masterarn.as_deref().unwrap_or_default();
        let master_text = self
            .ops
            .get_value(masterarn, None, AWSCURRENT)
            .await
            .map_err(|e| format!("reading the master secret {masterarn}: {e}"))?
            .ok_or_else(|| format!("the master secret {masterarn} has no AWSCURRENT value"))?;
        let master = parse_master(master_text.expose(), c)?;
        if master.host != c.host {
            return Err(format!(
                "the master secret's host {} is not the secret's host {}",
                master.host, c.host
            ));
        }
        let secrets = [
            master.password.expose(),
            p.password.expose(),
            c.password.expose(),
        ];
        let client = self.connect(&master).await.map_err(|e| {
            scrub(
                if e.unreachable {
                    unreachable(&master, &e)
                } else {
                    format!(
                        "unable to log into {} with the master credentials of user {}: {}",
                        master.addr(),
                        master.username,
                        e.cause
                    )
                },
                &secrets,
            )
        })?;
        // The clone is whichever name has the suffix; `adopted`: it is a direct member of
        // the base role, as the first rotation's GRANT made it.
        let (base, clone) = if p.username.ends_with(CLONE_SUFFIX) {
            (&c.username, &p.username)
        } else {
            (&p.username, &c.username)
        };
        let row = client
            .query_one(
                "SELECT quote_ident($1), quote_literal($2), quote_ident($3), \
                 EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1), \
                 EXISTS (SELECT 1 FROM pg_catalog.pg_auth_members m \
                         JOIN pg_catalog.pg_roles b ON b.oid = m.roleid \
                         JOIN pg_catalog.pg_roles k ON k.oid = m.member \
                         WHERE b.rolname = $4 AND k.rolname = $5)",
                &[&p.username, &p.password.expose(), &c.username, base, clone],
            )
            .await
            .map_err(|e| scrub(sql_error(p, "quoting", &p.username, &e), &secrets))?;
        let role: String = row.get(0);
        let literal = Sensitive::new(row.get::<_, String>(1));
        let member_of: String = row.get(2);
        let exists: bool = row.get(3);
        let adopted: bool = row.get(4);
        // Beyond AWS: the master acts for any secret that names it, so a secret for a role
        // `x_clone` someone could create would otherwise let rotation reset the password of
        // an existing (say superuser) role `x`. Only a pair the first rotation linked, or an
        // operator linked with `GRANT x TO x_clone`, is rotated.
        if exists && !adopted {
            return Err(format!(
                "refusing to change the password of the existing role {}: {clone} is not a \
                 member of {base}, so the two are not an alternating pair (to make them one, \
                 run GRANT {} TO {} as the master user)",
                p.username,
                if base == &p.username {
                    &role
                } else {
                    &member_of
                },
                if clone == &p.username {
                    &role
                } else {
                    &member_of
                },
            ));
        }
        let (sql, done) = if exists {
            (
                format!("ALTER ROLE {role} WITH PASSWORD {}", literal.expose()),
                "changed the password of",
            )
        } else {
            (
                format!(
                    "CREATE ROLE {role} WITH LOGIN PASSWORD {}; GRANT {member_of} TO {role}",
                    literal.expose()
                ),
                "created",
            )
        };
        let sql = Sensitive::new(sql);
        client.batch_execute(sql.expose()).await.map_err(|e| {
            scrub(
                sql_error(p, "setting the password of", &p.username, &e),
                &secrets,
            )
        })?;
        Ok(if exists {
            format!("{done} user {} on {}", p.username, p.addr())
        } else {
            format!(
                "{done} user {} on {} with the privileges of {}",
                p.username,
                p.addr(),
                c.username
            )
        })
    }

    async fn test(&self, arn: &str, token: &str) -> Result<String, String> {
        let pending = self.pending(arn, token).await?;
        let p = &pending.login;
        let client = self.connect(p).await.map_err(|e| {
            format!(
                "unable to log into {} with the pending credentials of user {}: {}",
                p.addr(),
                p.username,
                e.cause
            )
        })?;
        client
            .simple_query("SELECT NOW()")
            .await
            .map_err(|e| format!("SELECT NOW() on {} failed: {}", p.addr(), error_chain(&e)))?;
        Ok(format!(
            "logged into {} as {} with the pending password",
            p.addr(),
            p.username
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(extra: &str) -> String {
        format!(
            r#"{{"engine":"postgres","host":"db.internal","username":"app","password":"pw-secret-1"{extra}}}"#
        )
    }

    #[test]
    fn addresses_bracket_ipv6() {
        let s = parse_secret(&secret("").replace("db.internal", "::1"), AWSCURRENT, false).unwrap();
        assert_eq!(s.login.addr(), "[::1]:5432");
    }

    #[test]
    fn parse_applies_defaults() {
        let s = parse_secret(&secret(""), AWSCURRENT, false).unwrap();
        assert_eq!(s.login.host, "db.internal");
        assert_eq!(s.login.port, 5432);
        assert_eq!(s.login.dbname, "postgres");
        assert_eq!(s.login.username, "app");
        assert_eq!(s.login.password.expose(), "pw-secret-1");
        assert_eq!(s.login.tls, Tls::Preferred);
        assert!(s.masterarn.is_none());
    }

    #[test]
    fn parse_reads_optional_members() {
        let s = parse_secret(
            &secret(r#","port":"6543","dbname":"shop","ssl":"TRUE","masterarn":"m","x":1"#),
            AWSCURRENT,
            true,
        )
        .unwrap();
        assert_eq!((s.login.port, s.login.dbname.as_str()), (6543, "shop"));
        assert_eq!(s.login.tls, Tls::Required);
        assert_eq!(s.masterarn.as_deref(), Some("m"));
        let s = parse_secret(&secret(r#","port":5433,"ssl":false"#), AWSCURRENT, false).unwrap();
        assert_eq!((s.login.port, s.login.tls), (5433, Tls::Disabled));
        let aurora = secret("").replace("\"postgres\"", "\"aurora-postgresql\"");
        assert!(parse_secret(&aurora, AWSCURRENT, false).is_ok());
    }

    #[test]
    fn parse_names_missing_and_mistyped_keys() {
        for key in ["engine", "host", "username", "password"] {
            let mut m: Map<String, Value> = serde_json::from_str(&secret("")).unwrap();
            m.remove(key);
            let err = parse_secret(&Value::Object(m).to_string(), AWSCURRENT, false).unwrap_err();
            let want = if key == "engine" {
                "AWSCURRENT: engine key is missing from secret JSON; it must be 'postgres'"
                    .to_owned()
            } else {
                format!("AWSCURRENT: {key} key is missing from secret JSON")
            };
            assert_eq!(err, want);
        }
        let err = parse_secret(&secret(""), AWSCURRENT, true).unwrap_err();
        assert!(err.contains("masterarn key is missing"), "{err}");
        let cases = [
            (r#","port":"abc""#, "port must be"),
            (r#","port":70000"#, "port must be"),
            (r#","port":0"#, "port must be"),
            (r#","port":true"#, "port must be"),
            (r#","ssl":"maybe""#, "ssl must be"),
            (r#","ssl":1"#, "ssl must be"),
            (r#","dbname":5"#, "dbname must be"),
        ];
        for (extra, want) in cases {
            let err = parse_secret(&secret(extra), AWSCURRENT, false).unwrap_err();
            assert!(err.contains(want), "{extra}: {err}");
            assert!(!err.contains("pw-secret-1"), "{err}");
        }
        let wrong = secret("").replace("\"postgres\"", "\"mysql\"");
        assert_eq!(
            parse_secret(&wrong, AWSCURRENT, false).unwrap_err(),
            format!("AWSCURRENT: {}", common::wrong_engine(&RULES))
        );
        let mistyped = secret("").replace("\"app\"", "7");
        assert!(parse_secret(&mistyped, AWSCURRENT, false)
            .unwrap_err()
            .contains("AWSCURRENT: username must be a string"));
        let socket = secret("").replace("db.internal", "/var/run/postgresql");
        assert!(parse_secret(&socket, AWSCURRENT, false)
            .unwrap_err()
            .contains("Unix sockets"));
        assert_eq!(
            parse_secret("pw-secret-1", AWSCURRENT, false).unwrap_err(),
            "AWSCURRENT: the secret value is not a JSON object"
        );
    }

    #[test]
    fn master_inherits_port_tls_and_database() {
        let of = parse_secret(
            &secret(r#","port":6000,"dbname":"shop","ssl":true"#),
            AWSCURRENT,
            false,
        )
        .unwrap()
        .login;
        let m = parse_master(
            r#"{"host":"db.internal","username":"admin","password":"master-pw","dbname":"x"}"#,
            &of,
        )
        .unwrap();
        assert_eq!(
            (m.port, m.dbname.as_str(), m.tls),
            (6000, "shop", Tls::Required)
        );
        let m = parse_master(
            r#"{"engine":"postgres","host":"db.internal","username":"admin","password":"p","port":7000,"ssl":false}"#,
            &of,
        )
        .unwrap();
        assert_eq!((m.port, m.tls), (7000, Tls::Disabled));
        let err = parse_master(r#"{"host":"h","username":"admin"}"#, &of).unwrap_err();
        assert_eq!(
            err,
            "the master secret: password key is missing from secret JSON"
        );
    }

    #[test]
    fn alt_username_toggles_clone_suffix() {
        assert_eq!(alt_username("app").unwrap(), "app_clone");
        assert_eq!(alt_username("app_clone").unwrap(), "app");
        assert_eq!(alt_username("o'neil").unwrap(), "o'neil_clone");
        let long = "u".repeat(57);
        assert_eq!(alt_username(&long).unwrap().len(), 63);
        assert!(alt_username(&"u".repeat(58)).unwrap_err().contains("63"));
    }

    #[test]
    fn scrub_removes_every_secret() {
        let out = scrub(
            "a pw-long-1 b pw-long-12 c".to_owned(),
            &["pw-long-1", "", "pw-long-12"],
        );
        assert_eq!(out, "a [REDACTED] b [REDACTED] c");
    }

    #[test]
    fn tls_config_builds() {
        assert!(build_tls_config().is_ok());
    }
}
