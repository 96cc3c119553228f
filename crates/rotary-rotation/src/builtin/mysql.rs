//! `rotary-mysql-single-user` and `rotary-mysql-alternating-users`: AWS's MySQL/MariaDB
//! rotation templates (`SecretsManagerRDSMySQLRotationSingleUser` / `…MultiUser`, and the
//! MariaDB variants) as built-ins. See docs/rotation.md for what the database user needs.
//!
//! - **Secret JSON**: `engine` (`mysql`, `aurora-mysql` or `mariadb`), `host`, `username`,
//!   `password`; `port` (number or string, default 3306), `dbname`, `ssl`; the alternating
//!   strategy adds `masterarn`. Other members are carried over unchanged.
//! - **Passwords** never appear in an error or a log line. Neither MySQL nor MariaDB accepts a
//!   placeholder in `IDENTIFIED BY` or `PASSWORD(…)` (both answer a syntax error to
//!   `PREPARE`), so the password goes in as a string literal escaped by the driver
//!   (`mysql_async::Value::as_sql`) for the session's `NO_BACKSLASH_ESCAPES` setting, as
//!   AWS's templates do with pymysql. Values compared against the server's tables are bound
//!   parameters; user and host names are backtick-quoted identifiers.
//! - **TLS** (`ssl`): `true` requires it (certificate and host name verified against the
//!   built-in web roots and the system bundle), `false` never uses it, absent tries TLS and
//!   falls back to plaintext unless the server refused the login itself; anything else is a
//!   configuration error (the shared parser, builtin/common.rs).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, Row, SslOpts};
use rotary_core::labels::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use rotary_wire::Sensitive;

use super::common::{
    address, read_secret, store_pending, ConnectError, DbFields, DbSteps, SecretRules, Tls,
    PASSWORD_LENGTH,
};
use super::{scrub, SecretOps, EXCLUDED_CHARACTERS};

/// `engine` values this function rotates.
const ENGINES: [&str; 3] = ["mysql", "aurora-mysql", "mariadb"];
const DEFAULT_PORT: u16 = 3306;
/// Per connection attempt; a step may try TLS then plaintext for pending, current and
/// previous, within the driver's 30 s step timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const CLONE_SUFFIX: &str = "_clone";
/// Longest user name of any supported server (MariaDB's 80). createSecret checks this bound;
/// setSecret checks the server's own limit (MySQL 5.7.8+: 32, older MySQL: 16).
const MAX_USERNAME_CHARS: usize = 80;
/// CA bundles added to the built-in roots when present (Debian/Ubuntu, Amazon Linux/RHEL).
const SYSTEM_CA_BUNDLES: [&str; 2] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
];

/// Rotates a MySQL or MariaDB user's password: the user itself (single user), or, with a
/// master user, the other of `user` / `user_clone` (alternating users).
pub(super) struct MysqlRotator {
    ops: Arc<dyn SecretOps>,
    alternating: bool,
}

#[async_trait]
impl DbSteps for MysqlRotator {
    fn ops(&self) -> &dyn SecretOps {
        self.ops.as_ref()
    }

    fn check(&self, text: &str, stage: &str) -> Result<(), String> {
        parse_secret(text, self.alternating)
            .map(drop)
            .map_err(|e| format!("{stage}: {e}"))
    }

    async fn create(&self, arn: &str, token: &str) -> Result<String, String> {
        let current = self.secret(arn, None, AWSCURRENT).await?;
        let other_user = if self.alternating {
            let user = alternate_username(&current.username);
            check_username_length(&user, MAX_USERNAME_CHARS)?;
            Some(user)
        } else {
            None
        };
        store_pending(self.ops.as_ref(), arn, token, &current.fields, other_user).await
    }

    fn alternating(&self) -> bool {
        self.alternating
    }

    /// AWS's single-user setSecret: done if pending already logs in; else log in with
    /// current (or previous) and change the user's own password.
    async fn set(&self, arn: &str, token: &str) -> Result<String, String> {
        let current = self.secret(arn, None, AWSCURRENT).await?;
        let pending = self.secret(arn, Some(token), AWSPENDING).await?;
        let target = pending.endpoint();
        if pending_logs_in(&pending).await? {
            return Ok(format!("the pending password already works on {target}"));
        }
        if pending.username != current.username || pending.host != current.host {
            return Err(
                "the pending secret's username or host differs from AWSCURRENT's".to_owned(),
            );
        }
        let (mut conn, used) = match self
            .login_current_or_previous(arn, &current, &pending)
            .await
        {
            Ok(v) => v,
            Err(causes) => {
                return Err(format!(
                    "unable to log into {target} with the previous, current or pending secret \
                     ({causes})"
                ))
            }
        };
        let result = async {
            let server = ServerInfo::query(&mut conn).await?;
            let literal = password_literal(&mut conn, pending.password.expose()).await?;
            let sql = Sensitive::new(server.set_password_sql(None, &literal));
            conn.query_drop(sql.expose())
                .await
                .map_err(|e| sql_error("changing the password", &e, &pending))?;
            Ok::<_, String>(server)
        }
        .await;
        disconnect(conn).await;
        let server = result.map_err(|e| format!("on {target}: {e}"))?;
        Ok(format!(
            "logged in with {used} and set the new password on {target} ({})",
            server.text
        ))
    }

    /// AWS's multi-user setSecret: done if pending logs in; else check current logs in,
    /// then as the master user create the other user if needed (same host part, the
    /// current user's grants and TLS requirements) and set its password.
    async fn set_alternating(&self, arn: &str, token: &str) -> Result<String, String> {
        let current = self.secret(arn, None, AWSCURRENT).await?;
        let pending = self.secret(arn, Some(token), AWSPENDING).await?;
        let target = pending.endpoint();
        if pending_logs_in(&pending).await? {
            return Ok(format!("the pending user already logs in on {target}"));
        }
        if pending.username != alternate_username(&current.username) || pending.host != current.host
        {
            return Err(
                "the pending secret's username is not the alternate of AWSCURRENT's, \
                        or its host differs"
                    .to_owned(),
            );
        }
        // The current credentials must work (AWS's check against a confused deputy), and
        // give the account's host part.
        let ep = current.endpoint();
        let mut conn = connect(&ep, &current.username, current.password.expose())
            .await
            .map_err(|e| format!("unable to log into {ep} with the current secret: {e}"))?;
        let who = first_text(&mut conn, "SELECT CURRENT_USER()").await;
        disconnect(conn).await;
        let who = who.map_err(|e| format!("on {ep}: reading CURRENT_USER(): {e}"))?;
        let (current_user, account_host) = who
            .rsplit_once('@')
            .map(|(u, h)| (u.to_owned(), h.to_owned()))
            .ok_or_else(|| format!("on {ep}: CURRENT_USER() is not user@host"))?;

        let master_arn = current
            .masterarn
            .as_deref()
            .ok_or("masterarn key is missing from secret JSON")?;
        let master_value = self
            .ops
            .get_value(master_arn, None, AWSCURRENT)
            .await
            .map_err(|e| format!("reading the master secret: {e}"))?
            .ok_or("the master secret has no AWSCURRENT value")?;
        let mut master = parse_secret(master_value.expose(), false)
            .map_err(|e| format!("master secret: {e}"))?;
        if master.host != current.host {
            return Err("the master secret's host differs from AWSCURRENT's".to_owned());
        }
        master.dbname.clone_from(&current.dbname);
        let mep = master.endpoint();
        let mut conn = connect(&mep, &master.username, master.password.expose())
            .await
            .map_err(|e| format!("unable to log into {mep} with the master secret: {e}"))?;
        let clone = CloneJob {
            current_user: &current_user,
            host: &account_host,
            pending: &pending,
            // Placeholder password for a newly created user, never stored: until the last
            // statement sets the pending password nobody can log in as it, so "pending
            // logs in" above means the user is complete.
            throwaway: Sensitive::new(
                self.ops
                    .random_password(PASSWORD_LENGTH, EXCLUDED_CHARACTERS)?,
            ),
        };
        let result = clone.run(&mut conn).await;
        disconnect(conn).await;
        let log = result.map_err(|e| format!("on {mep} as the master user: {e}"))?;
        Ok(format!("{log} on {target}"))
    }

    async fn test(&self, arn: &str, token: &str) -> Result<String, String> {
        let pending = self.secret(arn, Some(token), AWSPENDING).await?;
        let ep = pending.endpoint();
        let mut conn = connect(&ep, &pending.username, pending.password.expose())
            .await
            .map_err(|e| format!("unable to log into {ep} with the pending secret: {e}"))?;
        let r = conn.query_drop("SELECT NOW()").await;
        disconnect(conn).await;
        r.map_err(|e| sql_error("SELECT NOW()", &e, &pending))?;
        Ok(format!("logged into {ep} with the pending secret"))
    }
}

impl MysqlRotator {
    /// The function over secret operations; `alternating` selects the alternating-users
    /// strategy.
    pub(super) fn new(ops: Arc<dyn SecretOps>, alternating: bool) -> Self {
        Self { ops, alternating }
    }

    async fn secret(
        &self,
        arn: &str,
        token: Option<&str>,
        stage: &str,
    ) -> Result<DbSecret, String> {
        read_secret(self.ops.as_ref(), arn, token, stage, |v| {
            parse_secret(v, self.alternating)
        })
        .await
    }

    /// Logs in with current, else with previous (with current's `ssl` setting, and only if
    /// it names the same user and host as pending). The error lists each cause.
    async fn login_current_or_previous(
        &self,
        arn: &str,
        current: &DbSecret,
        pending: &DbSecret,
    ) -> Result<(Conn, &'static str), String> {
        let ep = current.endpoint();
        let current_err = match connect(&ep, &current.username, current.password.expose()).await {
            Ok(conn) => return Ok((conn, "AWSCURRENT")),
            Err(e) => e.to_string(),
        };
        // AWSPREVIOUS is optional: a missing or malformed one is simply not tried.
        let previous = self.secret(arn, None, AWSPREVIOUS).await.ok();
        let Some(previous) =
            previous.filter(|p| p.username == pending.username && p.host == pending.host)
        else {
            return Err(format!("current: {current_err}"));
        };
        let mut ep = previous.endpoint();
        ep.tls = current.tls;
        match connect(&ep, &previous.username, previous.password.expose()).await {
            Ok(conn) => Ok((conn, "AWSPREVIOUS")),
            Err(e) => Err(format!("current: {current_err}; previous: {e}")),
        }
    }
}

/// Whether the pending credentials already log in (setSecret then has nothing to do); an
/// unreachable server is an error.
async fn pending_logs_in(pending: &DbSecret) -> Result<bool, String> {
    let target = pending.endpoint();
    match connect(&target, &pending.username, pending.password.expose()).await {
        Ok(conn) => {
            disconnect(conn).await;
            Ok(true)
        }
        Err(ConnectError::Unreachable(e)) => Err(format!("cannot reach {target}: {e}")),
        Err(ConnectError::Denied(_)) => Ok(false),
    }
}

/// `user` ↔ `user_clone`, as AWS's multi-user templates alternate.
fn alternate_username(user: &str) -> String {
    match user.strip_suffix(CLONE_SUFFIX) {
        Some(base) => base.to_owned(),
        None => format!("{user}{CLONE_SUFFIX}"),
    }
}

fn check_username_length(user: &str, limit: usize) -> Result<(), String> {
    let n = user.chars().count();
    if n > limit {
        return Err(format!(
            "the alternate username is {n} characters long; this server allows {limit}"
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The secret
// ---------------------------------------------------------------------------------------------

/// What MySQL and MariaDB secrets look like.
const RULES: SecretRules = SecretRules {
    engines: &ENGINES,
    engine_text: "'mysql', 'aurora-mysql' or 'mariadb'",
    engine_required: true,
    default_port: DEFAULT_PORT,
};

/// A parsed database secret (the shared parser, see [`DbFields`]).
type DbSecret = DbFields;

/// Checks the JSON as AWS's templates do: the error names the key at fault, never a value.
fn parse_secret(value: &str, need_masterarn: bool) -> Result<DbSecret, String> {
    DbFields::parse(value, &RULES, need_masterarn)
}

/// Where a secret connects.
trait EndpointOf {
    fn endpoint(&self) -> Endpoint;
}

impl EndpointOf for DbSecret {
    fn endpoint(&self) -> Endpoint {
        Endpoint {
            host: self.host.clone(),
            port: self.port,
            dbname: self.dbname.clone(),
            tls: self.tls,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------------------------

/// Where to connect; displays as `host:port`.
struct Endpoint {
    host: String,
    port: u16,
    dbname: Option<String>,
    tls: Tls,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&address(&self.host, self.port))
    }
}

async fn connect(ep: &Endpoint, user: &str, password: &str) -> Result<Conn, ConnectError> {
    match ep.tls {
        Tls::Required => connect_once(ep, user, password, true).await,
        Tls::Disabled => connect_once(ep, user, password, false).await,
        Tls::Preferred => match connect_once(ep, user, password, true).await {
            Ok(conn) => Ok(conn),
            Err(ConnectError::Denied(m)) => Err(ConnectError::Denied(m)),
            Err(ConnectError::Unreachable(tls)) => connect_once(ep, user, password, false)
                .await
                .map_err(|e| match e {
                    ConnectError::Denied(m) => ConnectError::Denied(m),
                    ConnectError::Unreachable(m) => {
                        ConnectError::Unreachable(format!("{m} (with TLS: {tls})"))
                    }
                }),
        },
    }
}

async fn connect_once(
    ep: &Endpoint,
    user: &str,
    password: &str,
    tls: bool,
) -> Result<Conn, ConnectError> {
    let mut opts = OptsBuilder::default()
        .ip_or_hostname(ep.host.as_str())
        .tcp_port(ep.port)
        .user(Some(user))
        .pass(Some(password))
        .db_name(ep.dbname.as_deref())
        // The driver would otherwise switch to the server's Unix socket for a loopback
        // host, which logs in as a different account ('user'@'localhost').
        .prefer_socket(false)
        .stmt_cache_size(0);
    if tls {
        install_crypto_provider();
        opts = opts.ssl_opts(ssl_opts());
    }
    match tokio::time::timeout(CONNECT_TIMEOUT, Conn::new(opts)).await {
        Err(_) => Err(ConnectError::Unreachable(format!(
            "no answer within {}s",
            CONNECT_TIMEOUT.as_secs()
        ))),
        Ok(Err(mysql_async::Error::Server(e))) => Err(ConnectError::Denied(format!(
            "ERROR {} ({}): {}",
            e.code, e.state, e.message
        ))),
        Ok(Err(e)) => Err(ConnectError::Unreachable(e.to_string())),
        Ok(Ok(conn)) => Ok(conn),
    }
}

/// rustls needs a process-wide provider when more than one is compiled in (the workspace
/// has both ring and aws-lc-rs); the first caller's choice wins, later calls do nothing.
fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn ssl_opts() -> SslOpts {
    let roots = SYSTEM_CA_BUNDLES
        .iter()
        .map(Path::new)
        .filter(|p| p.is_file())
        .map(|p| p.to_path_buf().into())
        .collect();
    SslOpts::default().with_root_certs(roots)
}

async fn disconnect(conn: Conn) {
    // The work is done or failed already; a failed goodbye changes nothing.
    let _ = conn.disconnect().await;
}

/// A statement's error, without any secret the statement or the server's echo of it held.
fn sql_error(what: &str, e: &mysql_async::Error, secret: &DbSecret) -> String {
    let text = match e {
        mysql_async::Error::Server(s) => format!("ERROR {} ({}): {}", s.code, s.state, s.message),
        other => other.to_string(),
    };
    format!("{what}: {}", scrub(&text, &[secret.password.expose()]))
}

/// A column as text (binary columns lossily), `None` for NULL.
fn column_text(row: &Row, i: usize) -> Option<String> {
    match row.as_ref(i)? {
        mysql_async::Value::NULL => None,
        mysql_async::Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        v => Some(v.as_sql(true).trim_matches('\'').to_owned()),
    }
}

async fn first_text(conn: &mut Conn, sql: &str) -> Result<String, String> {
    let row: Option<Row> = conn.query_first(sql).await.map_err(|e| e.to_string())?;
    row.as_ref()
        .and_then(|r| column_text(r, 0))
        .ok_or_else(|| "no value".to_owned())
}

/// The password as a SQL string literal for this session's quoting rules.
async fn password_literal(conn: &mut Conn, password: &str) -> Result<Sensitive, String> {
    let no_backslash = no_backslash_escapes(conn).await?;
    Ok(Sensitive::new(
        mysql_async::Value::from(password).as_sql(no_backslash),
    ))
}

async fn no_backslash_escapes(conn: &mut Conn) -> Result<bool, String> {
    let mode = first_text(conn, "SELECT @@SESSION.sql_mode")
        .await
        .map_err(|e| format!("reading sql_mode: {e}"))?;
    Ok(mode.to_ascii_uppercase().contains("NO_BACKSLASH_ESCAPES"))
}

/// What `SELECT VERSION()` says, which picks the statements.
struct ServerInfo {
    text: String,
    mariadb: bool,
    version: (u32, u32, u32),
}

impl ServerInfo {
    async fn query(conn: &mut Conn) -> Result<Self, String> {
        let text = first_text(conn, "SELECT VERSION()")
            .await
            .map_err(|e| format!("SELECT VERSION(): {e}"))?;
        Ok(Self::parse(&text))
    }

    fn parse(text: &str) -> Self {
        let mut nums = text
            .split(|c: char| !c.is_ascii_digit())
            .take(3)
            .map(|n| n.parse::<u32>().unwrap_or(0));
        let version = (
            nums.next().unwrap_or(0),
            nums.next().unwrap_or(0),
            nums.next().unwrap_or(0),
        );
        let product = if text.to_ascii_lowercase().contains("mariadb") {
            "MariaDB"
        } else {
            "MySQL"
        };
        Self {
            text: format!("{product} {}.{}.{}", version.0, version.1, version.2),
            mariadb: product == "MariaDB",
            version,
        }
    }

    /// `ALTER USER` exists from MariaDB 10.2 and MySQL 5.7.6.
    fn has_alter_user(&self) -> bool {
        if self.mariadb {
            self.version >= (10, 2, 0)
        } else {
            self.version >= (5, 7, 6)
        }
    }

    fn username_limit(&self) -> usize {
        if self.mariadb {
            80
        } else if self.version >= (5, 7, 8) {
            32
        } else {
            16
        }
    }

    /// Sets the password of `account` (`None`: the logged-in user). MariaDB and old MySQL:
    /// `SET PASSWORD … = PASSWORD(…)` (AWS's MariaDB template); MySQL 5.7.6+ (8.0 has no
    /// `PASSWORD()`): `ALTER USER … IDENTIFIED BY …`, which keeps the account's plugin.
    fn set_password_sql(&self, account: Option<&str>, literal: &Sensitive) -> String {
        let literal = literal.expose();
        if self.mariadb || !self.has_alter_user() {
            match account {
                Some(a) => format!("SET PASSWORD FOR {a} = PASSWORD({literal})"),
                None => format!("SET PASSWORD = PASSWORD({literal})"),
            }
        } else {
            let a = account.unwrap_or("CURRENT_USER()");
            format!("ALTER USER {a} IDENTIFIED BY {literal}")
        }
    }

    /// A TLS requirement clause applied to `account`.
    fn require_sql(&self, account: &str, clause: &str) -> String {
        if self.has_alter_user() {
            format!("ALTER USER {account} REQUIRE {clause}")
        } else {
            format!("GRANT USAGE ON *.* TO {account} REQUIRE {clause}")
        }
    }
}

/// A name as a backtick-quoted identifier; backticks inside are doubled. Identifier
/// quoting does not depend on `NO_BACKSLASH_ESCAPES` or `ANSI_QUOTES`.
fn quote_ident(name: &str) -> Result<String, String> {
    if name.contains('\0') {
        return Err("a user or host name contains a NUL character".into());
    }
    Ok(format!("`{}`", name.replace('`', "``")))
}

fn account_name(user: &str, host: &str) -> Result<String, String> {
    Ok(format!("{}@{}", quote_ident(user)?, quote_ident(host)?))
}

/// The ways SHOW GRANTS may print `user@host`: backticks (MariaDB, MySQL 8) or single
/// quotes (older MySQL) with either escape style.
fn grantee_spellings(user: &str, host: &str) -> Vec<String> {
    let bq = |s: &str| format!("`{}`", s.replace('`', "``"));
    let sq_backslash = |s: &str| format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"));
    let sq_double = |s: &str| format!("'{}'", s.replace('\'', "''"));
    let mut v = vec![
        format!("{}@{}", bq(user), bq(host)),
        format!("{}@{}", sq_backslash(user), sq_backslash(host)),
        format!("{}@{}", sq_double(user), sq_double(host)),
    ];
    v.dedup();
    v
}

/// One SHOW GRANTS row for `user@host` rewritten for `new_account`: the privileges and
/// `WITH GRANT/ADMIN OPTION` and resource limits are kept; the password hash (`IDENTIFIED
/// BY PASSWORD …`) and TLS clause are dropped (TLS is copied separately). `Ok(None)` for a
/// row that grants nothing to copy.
fn rewrite_grant(
    row: &str,
    user: &str,
    host: &str,
    new_account: &str,
) -> Result<Option<String>, String> {
    let kind = ["GRANT ", "REVOKE ", "SET DEFAULT ROLE "]
        .into_iter()
        .find(|k| row.starts_with(k));
    let Some(kind) = kind else {
        return Ok(None);
    };
    let keyword = match kind {
        "REVOKE " => " FROM ",
        "SET DEFAULT ROLE " => " FOR ",
        _ => " TO ",
    };
    let found = grantee_spellings(user, host)
        .into_iter()
        .filter_map(|g| {
            let pat = format!("{keyword}{g}");
            row.rfind(&pat).map(|at| (at, at + pat.len()))
        })
        .filter(|(_, end)| row[*end..].is_empty() || row[*end..].starts_with(' '))
        .max();
    let Some((start, end)) = found else {
        return Err(format!(
            "a `{}` row of SHOW GRANTS does not name the user as expected",
            kind.trim_end()
        ));
    };
    let tail = &row[end..];
    let keep = [" WITH GRANT OPTION", " WITH ADMIN OPTION", " WITH MAX_"]
        .into_iter()
        .filter_map(|m| tail.find(m))
        .min()
        .map_or("", |at| &tail[at..]);
    Ok(Some(format!(
        "{}{keyword}{new_account}{keep}",
        &row[..start]
    )))
}

/// `GRANT role TO …` (no `ON`): the grantor must hold the role with ADMIN OPTION.
fn is_role_grant(sql: &str) -> bool {
    sql.starts_with("GRANT ")
        && sql
            .split(" TO ")
            .next()
            .is_some_and(|p| !p.contains(" ON "))
}

/// The master user's part of alternating users.
struct CloneJob<'a> {
    current_user: &'a str,
    host: &'a str,
    pending: &'a DbSecret,
    throwaway: Sensitive,
}

impl CloneJob<'_> {
    async fn run(&self, conn: &mut Conn) -> Result<String, String> {
        let pending = self.pending;
        let server = ServerInfo::query(conn).await?;
        check_username_length(&pending.username, server.username_limit())?;
        let clone = account_name(&pending.username, self.host)?;
        let current = account_name(self.current_user, self.host)?;
        let no_backslash = no_backslash_escapes(conn).await?;
        let err = |what: &str| {
            let what = what.to_owned();
            move |e: mysql_async::Error| sql_error(&what, &e, pending)
        };

        let exists: Option<u64> = conn
            .exec_first(
                "SELECT COUNT(*) FROM mysql.user WHERE User = ? AND Host = ?",
                (&pending.username, self.host),
            )
            .await
            .map_err(err("looking the user up in mysql.user"))?;
        let mut log = Vec::new();
        if exists.unwrap_or(0) == 0 {
            let literal = Sensitive::new(
                mysql_async::Value::from(self.throwaway.expose()).as_sql(no_backslash),
            );
            let sql = Sensitive::new(format!(
                "CREATE USER {clone} IDENTIFIED BY {}",
                literal.expose()
            ));
            conn.query_drop(sql.expose())
                .await
                .map_err(err("CREATE USER"))?;
            log.push("created the user");
        }

        let rows: Vec<Row> = conn
            .query(format!("SHOW GRANTS FOR {current}"))
            .await
            .map_err(err("SHOW GRANTS for the current user"))?;
        let mut copied = 0;
        for row in &rows {
            let Some(text) = column_text(row, 0) else {
                continue;
            };
            if let Some(sql) = rewrite_grant(&text, self.current_user, self.host, &clone)? {
                let what = if is_role_grant(&sql) {
                    "copying a role of the current user (the master user needs the role \
                     WITH ADMIN OPTION)"
                } else {
                    "copying a grant of the current user"
                };
                conn.query_drop(&sql).await.map_err(err(what))?;
                copied += 1;
            }
        }

        let tls: Option<Row> = conn
            .exec_first(
                "SELECT ssl_type, ssl_cipher, x509_issuer, x509_subject FROM mysql.user \
                 WHERE User = ? AND Host = ?",
                (self.current_user, self.host),
            )
            .await
            .map_err(err("reading the current user's TLS requirements"))?;
        let col = |i| {
            tls.as_ref()
                .and_then(|r| column_text(r, i))
                .unwrap_or_default()
        };
        let lit = |s: String| mysql_async::Value::from(s).as_sql(no_backslash);
        let ssl_type = col(0).to_ascii_uppercase();
        let clause = match ssl_type.as_str() {
            "" => "NONE".to_owned(),
            "ANY" => "SSL".to_owned(),
            "X509" => "X509".to_owned(),
            _ => {
                let parts: Vec<String> =
                    [("CIPHER", col(1)), ("ISSUER", col(2)), ("SUBJECT", col(3))]
                        .into_iter()
                        .filter(|(_, v)| !v.is_empty())
                        .map(|(k, v)| format!("{k} {}", lit(v)))
                        .collect();
                if parts.is_empty() {
                    "SSL".to_owned()
                } else {
                    parts.join(" AND ")
                }
            }
        };
        conn.query_drop(server.require_sql(&clone, &clause))
            .await
            .map_err(err("copying the TLS requirements"))?;

        let literal = Sensitive::new(
            mysql_async::Value::from(pending.password.expose()).as_sql(no_backslash),
        );
        let sql = Sensitive::new(server.set_password_sql(Some(&clone), &literal));
        conn.query_drop(sql.expose())
            .await
            .map_err(err("setting the password"))?;
        log.push("copied the grants and TLS requirements");
        Ok(format!(
            "{} ({copied} grant statements, ssl_type {:?}) and set the new password of the \
             alternate user ({})",
            log.join(", "),
            if ssl_type.is_empty() {
                "NONE"
            } else {
                ssl_type.as_str()
            },
            server.text
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(json: serde_json::Value) -> Result<DbSecret, String> {
        parse_secret(&json.to_string(), false)
    }

    #[test]
    fn parse_accepts_aws_shapes_and_defaults() {
        let s = secret(serde_json::json!({
            "engine": "mariadb", "host": "db", "username": "app", "password": "pw",
            "extra": 1
        }))
        .unwrap();
        assert_eq!(
            (s.port, s.tls, s.dbname.as_deref()),
            (3306, Tls::Preferred, None)
        );
        assert_eq!(s.fields.get("extra"), Some(&serde_json::json!(1)));
        let s = secret(serde_json::json!({
            "engine": "aurora-mysql", "host": "db", "username": "app", "password": "pw",
            "port": "3307", "ssl": "TRUE", "dbname": "appdb"
        }))
        .unwrap();
        assert_eq!(
            (s.port, s.tls, s.dbname.as_deref()),
            (3307, Tls::Required, Some("appdb"))
        );
        let s = secret(serde_json::json!({
            "engine": "mysql", "host": "db", "username": "app", "password": "pw",
            "port": 3308, "ssl": false
        }))
        .unwrap();
        assert_eq!((s.port, s.tls), (3308, Tls::Disabled));
    }

    #[test]
    fn parse_errors_name_the_key_never_a_value() {
        let base = serde_json::json!({
            "engine": "mysql", "host": "db", "username": "app", "password": "s3cret-pw"
        });
        for key in ["host", "username", "password"] {
            let mut v = base.clone();
            v.as_object_mut().unwrap().remove(key);
            let e = secret(v).err().unwrap();
            assert_eq!(e, format!("{key} key is missing from secret JSON"));
        }
        let e = parse_secret(&base.to_string(), true).err().unwrap();
        assert_eq!(e, "masterarn key is missing from secret JSON");
        let mut v = base.clone();
        v["engine"] = "postgres".into();
        assert!(secret(v).err().unwrap().contains("'mysql'"));
        let mut v = base.clone();
        v.as_object_mut().unwrap().remove("engine");
        assert!(secret(v)
            .err()
            .unwrap()
            .starts_with("engine key is missing"));
        for port in [
            serde_json::json!(0),
            serde_json::json!(70000),
            serde_json::json!("x"),
        ] {
            let mut v = base.clone();
            v["port"] = port;
            assert!(!secret(v).err().unwrap().contains("s3cret"));
        }
        assert!(parse_secret("not json s3cret-pw", false)
            .err()
            .unwrap()
            .contains("not a JSON object"));
    }

    #[test]
    fn usernames_alternate() {
        assert_eq!(alternate_username("app"), "app_clone");
        assert_eq!(alternate_username("app_clone"), "app");
        assert!(check_username_length(&"a".repeat(80), 80).is_ok());
        assert!(check_username_length(&"a".repeat(81), 80).is_err());
    }

    #[test]
    fn identifiers_are_backtick_quoted() {
        assert_eq!(account_name("o'neil", "%").unwrap(), "`o'neil`@`%`");
        assert_eq!(
            account_name("back`tick", "10.%").unwrap(),
            "`back``tick`@`10.%`"
        );
        assert!(quote_ident("a\0b").is_err());
    }

    #[test]
    fn versions_pick_statements() {
        let pw = Sensitive::new("'p'".into());
        let maria = ServerInfo::parse("10.11.19-MariaDB-0+deb12u1");
        assert!(maria.mariadb && maria.version == (10, 11, 19) && maria.username_limit() == 80);
        assert_eq!(
            maria.set_password_sql(None, &pw),
            "SET PASSWORD = PASSWORD('p')"
        );
        assert_eq!(
            maria.set_password_sql(Some("`a`@`%`"), &pw),
            "SET PASSWORD FOR `a`@`%` = PASSWORD('p')"
        );
        let my8 = ServerInfo::parse("8.0.36");
        assert!(!my8.mariadb && my8.username_limit() == 32);
        assert_eq!(
            my8.set_password_sql(None, &pw),
            "ALTER USER CURRENT_USER() IDENTIFIED BY 'p'"
        );
        assert_eq!(
            my8.require_sql("`a`@`%`", "SSL"),
            "ALTER USER `a`@`%` REQUIRE SSL"
        );
        let my56 = ServerInfo::parse("5.6.51-log");
        assert_eq!(my56.username_limit(), 16);
        assert_eq!(
            my56.set_password_sql(None, &pw),
            "SET PASSWORD = PASSWORD('p')"
        );
        assert_eq!(
            my56.require_sql("`a`@`%`", "NONE"),
            "GRANT USAGE ON *.* TO `a`@`%` REQUIRE NONE"
        );
    }

    #[test]
    fn password_literals_follow_the_session_escaping() {
        let v = mysql_async::Value::from("a'b\\c");
        assert_eq!(v.as_sql(false), r"'a\'b\\c'");
        assert_eq!(v.as_sql(true), r"'a''b\c'");
    }

    #[test]
    fn grants_are_rewritten_for_the_clone() {
        let clone = "`app_clone`@`%`";
        let cases = [
            (
                "GRANT USAGE ON *.* TO `app`@`%` IDENTIFIED BY PASSWORD '*6AE72354FBCD'",
                "GRANT USAGE ON *.* TO `app_clone`@`%`",
            ),
            (
                "GRANT SELECT ON `appdb`.* TO `app`@`%`",
                "GRANT SELECT ON `appdb`.* TO `app_clone`@`%`",
            ),
            (
                "GRANT INSERT ON `a TO b`.`t` TO `app`@`%` WITH GRANT OPTION",
                "GRANT INSERT ON `a TO b`.`t` TO `app_clone`@`%` WITH GRANT OPTION",
            ),
            (
                "GRANT USAGE ON *.* TO 'app'@'%' IDENTIFIED BY PASSWORD '*AB' REQUIRE SSL \
                 WITH MAX_QUERIES_PER_HOUR 5",
                "GRANT USAGE ON *.* TO `app_clone`@`%` WITH MAX_QUERIES_PER_HOUR 5",
            ),
            ("GRANT `r1` TO `app`@`%`", "GRANT `r1` TO `app_clone`@`%`"),
            (
                "SET DEFAULT ROLE `r1` FOR `app`@`%`",
                "SET DEFAULT ROLE `r1` FOR `app_clone`@`%`",
            ),
            (
                "REVOKE INSERT ON `mysql`.* FROM `app`@`%`",
                "REVOKE INSERT ON `mysql`.* FROM `app_clone`@`%`",
            ),
        ];
        for (row, want) in cases {
            assert_eq!(
                rewrite_grant(row, "app", "%", clone).unwrap().as_deref(),
                Some(want)
            );
        }
        assert!(is_role_grant("GRANT `r1` TO `x`@`%`"));
        assert!(!is_role_grant("GRANT SELECT ON `d`.* TO `x`@`%`"));
        // A different user with the same prefix is not our grantee.
        assert!(rewrite_grant("GRANT SELECT ON *.* TO `app2`@`%`", "app", "%", clone).is_err());
        assert_eq!(
            rewrite_grant("-- something else", "app", "%", clone).unwrap(),
            None
        );
        // Hostile names.
        let hostile = [
            ("GRANT SELECT ON `d`.* TO `o'neil`@`%`", "o'neil"),
            ("GRANT SELECT ON `d`.* TO `back``tick`@`%`", "back`tick"),
            ("GRANT SELECT ON `d`.* TO 'o\\'neil'@'%'", "o'neil"),
        ];
        for (row, user) in hostile {
            assert_eq!(
                rewrite_grant(row, user, "%", "`x`@`%`").unwrap().as_deref(),
                Some("GRANT SELECT ON `d`.* TO `x`@`%`"),
                "{row}"
            );
        }
    }

    #[test]
    fn scrub_removes_secrets() {
        assert_eq!(
            scrub("near 'hunter2' at line 1", &["hunter2", ""]),
            "near '[REDACTED]' at line 1"
        );
    }
}
