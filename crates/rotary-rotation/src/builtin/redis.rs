//! `rotary-redis-single-user`: a Redis ACL user changes its own password, in the shape of
//! AWS's single-user database templates.
//!
//! - **Secret JSON**: `host`, `username` (the ACL user; `default` is allowed), `password`;
//!   `port` (number or string, default 6379), `ssl`, and `engine`, which must be `redis` when
//!   present. Other members are carried over unchanged.
//! - **setSecret** logs in (`AUTH user password`) with the pending password (done if it
//!   works), else with current, else previous, and runs `ACL SETUSER <user> resetpass
//!   ><pending>` as the user itself, each rule a separate RESP argument. Like the SQL
//!   single-user templates, the old password stops working at once. The user therefore needs
//!   permission for that command on itself, e.g. `user app on >pw ~* &* +@all` or at least
//!   `+acl|setuser` next to its other permissions. `ACL SAVE` follows when the server has an
//!   ACL file and the user may run it; otherwise the step output says the change is in memory
//!   only, so it survives restarts only if the operator persists it (`CONFIG REWRITE`).
//! - **TLS** (`ssl`): `true` requires it (server certificate verified), `false` never uses
//!   it; absent, it probes the port with a plaintext `PING` (no credentials) and uses
//!   plaintext if it answers in RESP, else TLS (see `speaks_plaintext`). Anything else is a
//!   configuration error (the shared parser, builtin/common.rs).
//! - Passwords never appear in errors or the step output.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::acl::Rule;
use redis::aio::MultiplexedConnection;
use redis::{
    AsyncCommands, AsyncConnectionConfig, Client, ConnectionAddr, ConnectionInfo, ErrorKind,
    RedisConnectionInfo, RedisError,
};
use rotary_core::labels::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};

use super::common::{
    read_secret, store_pending, ConnectError, DbFields, DbSteps, SecretRules, Tls,
};
use super::SecretOps;

const DEFAULT_PORT: u16 = 6379;
/// Per connection attempt and per command.
const TIMEOUT: Duration = Duration::from_secs(5);
/// How long the plaintext probe waits for an answer before assuming TLS.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Rotates the password of the Redis ACL user named in the secret.
pub(super) struct RedisRotator {
    ops: Arc<dyn SecretOps>,
}

#[async_trait]
impl DbSteps for RedisRotator {
    fn ops(&self) -> &dyn SecretOps {
        self.ops.as_ref()
    }

    fn check(&self, text: &str, stage: &str) -> Result<(), String> {
        parse_secret(text)
            .map(drop)
            .map_err(|e| format!("{stage}: {e}"))
    }

    async fn create(&self, arn: &str, token: &str) -> Result<String, String> {
        let current = self.secret(arn, None, AWSCURRENT).await?;
        store_pending(self.ops.as_ref(), arn, token, &current.fields, None).await
    }

    async fn set(&self, arn: &str, token: &str) -> Result<String, String> {
        let current = self.secret(arn, None, AWSCURRENT).await?;
        let pending = self.secret(arn, Some(token), AWSPENDING).await?;
        let target = pending.address();
        match connect(&pending).await {
            Ok(_) => return Ok(format!("the pending password already works on {target}")),
            Err(ConnectError::Unreachable(e)) => return Err(format!("cannot reach {target}: {e}")),
            Err(ConnectError::Denied(_)) => {}
        }
        if pending.username != current.username || pending.host != current.host {
            return Err(
                "the pending secret's username or host differs from AWSCURRENT's".to_owned(),
            );
        }
        let (mut conn, used) = match connect(&current).await {
            Ok(c) => (c, "AWSCURRENT"),
            Err(current_err) => {
                // AWSPREVIOUS is optional: a missing or malformed one is simply not tried.
                let previous = self
                    .secret(arn, None, AWSPREVIOUS)
                    .await
                    .ok()
                    .filter(|p| p.username == pending.username && p.host == pending.host);
                let Some(mut previous) = previous else {
                    return Err(format!(
                        "unable to log into {target} with the previous, current or pending \
                         secret (current: {current_err})"
                    ));
                };
                previous.tls = current.tls;
                match connect(&previous).await {
                    Ok(c) => (c, "AWSPREVIOUS"),
                    Err(e) => {
                        return Err(format!(
                            "unable to log into {target} with the previous, current or \
                             pending secret (current: {current_err}; previous: {e})"
                        ))
                    }
                }
            }
        };
        let rules = [
            Rule::ResetPass,
            Rule::AddPass(pending.password.expose().to_owned()),
        ];
        let set: Result<(), RedisError> = conn
            .acl_setuser_rules(pending.username.as_str(), &rules)
            .await;
        drop(rules);
        set.map_err(|e| {
            let hint = if is_no_permission(&e) {
                "; the user needs permission for ACL SETUSER on itself (+acl|setuser)"
            } else {
                ""
            };
            format!(
                "on {target}: ACL SETUSER as the user itself failed: {}{hint}",
                redis_error_text(&e, &pending)
            )
        })?;
        let saved: Result<(), RedisError> = conn.acl_save().await;
        let persisted = match saved {
            Ok(()) => "saved to the ACL file".to_owned(),
            Err(e) => format!(
                "not saved to an ACL file ({}): the change is in memory only",
                redis_error_text(&e, &pending)
            ),
        };
        Ok(format!(
            "logged in with {used} and set the new password on {target}; {persisted}"
        ))
    }

    async fn test(&self, arn: &str, token: &str) -> Result<String, String> {
        let pending = self.secret(arn, Some(token), AWSPENDING).await?;
        let target = pending.address();
        let mut conn = connect(&pending)
            .await
            .map_err(|e| format!("unable to log into {target} with the pending secret: {e}"))?;
        let pong: Result<String, RedisError> = redis::cmd("PING").query_async(&mut conn).await;
        pong.map_err(|e| format!("PING on {target}: {}", redis_error_text(&e, &pending)))?;
        Ok(format!("logged into {target} with the pending secret"))
    }
}

impl RedisRotator {
    /// The function over secret operations.
    pub(super) fn new(ops: Arc<dyn SecretOps>) -> Self {
        Self { ops }
    }

    async fn secret(
        &self,
        arn: &str,
        token: Option<&str>,
        stage: &str,
    ) -> Result<RedisSecret, String> {
        read_secret(self.ops.as_ref(), arn, token, stage, parse_secret).await
    }
}

fn is_no_permission(e: &RedisError) -> bool {
    e.code() == Some("NOPERM") || e.to_string().contains("NOPERM")
}

/// An error's text without the secret's password.
fn redis_error_text(e: &RedisError, secret: &RedisSecret) -> String {
    let text = e.to_string();
    let pw = secret.password.expose();
    if pw.is_empty() {
        text
    } else {
        text.replace(pw, "[REDACTED]")
    }
}

// ---------------------------------------------------------------------------------------------
// The secret
// ---------------------------------------------------------------------------------------------

/// What Redis secrets look like: `engine` may be absent.
const RULES: SecretRules = SecretRules {
    engines: &["redis"],
    engine_text: "'redis'",
    engine_required: false,
    default_port: DEFAULT_PORT,
};

/// A parsed Redis secret (the shared parser, see [`DbFields`]).
type RedisSecret = DbFields;

/// The error names the key at fault, never a value.
fn parse_secret(value: &str) -> Result<RedisSecret, String> {
    DbFields::parse(value, &RULES, false)
}

// ---------------------------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------------------------

/// A connection authenticated (`AUTH username password`) as the secret's user.
async fn connect(s: &RedisSecret) -> Result<MultiplexedConnection, ConnectError> {
    match s.tls {
        Tls::Required => match connect_once(s, true).await {
            Err(ConnectError::Unreachable(e)) if speaks_plaintext(s).await == Ok(true) => Err(
                ConnectError::Unreachable(format!("TLS failed ({e}); the port speaks plaintext")),
            ),
            r => r,
        },
        Tls::Disabled => connect_once(s, false).await,
        Tls::Preferred => {
            let plaintext = speaks_plaintext(s)
                .await
                .map_err(ConnectError::Unreachable)?;
            connect_once(s, !plaintext).await
        }
    }
}

/// Whether the port answers a plaintext `PING` (sent before any credential) in RESP.
///
/// Trying TLS first, as the SQL templates do, does not work for Redis: a plaintext Redis
/// waits for the end of a line that a TLS ClientHello never sends, so every probe would
/// last the whole timeout. A TLS port instead rejects `PING\r\n` as a bad record at once.
/// Like the SQL servers' TLS negotiation, this can be downgraded by an active attacker;
/// set `ssl: true` to rule that out.
async fn speaks_plaintext(s: &RedisSecret) -> Result<bool, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = (s.host.as_str(), s.port);
    let mut stream = tokio::time::timeout(TIMEOUT, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| format!("no answer within {}s", TIMEOUT.as_secs()))?
        .map_err(|e| e.to_string())?;
    if stream.write_all(b"PING\r\n").await.is_err() {
        return Ok(false);
    }
    let mut first = [0u8; 1];
    let answer = tokio::time::timeout(PROBE_TIMEOUT, stream.read(&mut first)).await;
    Ok(matches!(answer, Ok(Ok(1))) && matches!(first[0], b'+' | b'-'))
}

async fn connect_once(s: &RedisSecret, tls: bool) -> Result<MultiplexedConnection, ConnectError> {
    let addr = if tls {
        install_crypto_provider();
        ConnectionAddr::TcpTls {
            host: s.host.clone(),
            port: s.port,
            insecure: false,
            tls_params: None,
        }
    } else {
        ConnectionAddr::Tcp(s.host.clone(), s.port)
    };
    let info = ConnectionInfo {
        addr,
        redis: RedisConnectionInfo {
            username: Some(s.username.clone()),
            password: Some(s.password.expose().to_owned()),
            ..Default::default()
        },
    };
    let client = Client::open(info).map_err(|e| ConnectError::Unreachable(e.to_string()))?;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(TIMEOUT)
        .set_response_timeout(TIMEOUT);
    // The outer timeout also bounds the TLS handshake against a server that never answers.
    match tokio::time::timeout(
        TIMEOUT + Duration::from_secs(1),
        client.get_multiplexed_async_connection_with_config(&config),
    )
    .await
    {
        Err(_) => Err(ConnectError::Unreachable(format!(
            "no answer within {}s",
            TIMEOUT.as_secs()
        ))),
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => {
            let text = redis_error_text(&e, s);
            if e.kind() == ErrorKind::AuthenticationFailed
                || e.code().is_some_and(|c| c == "WRONGPASS" || c == "NOAUTH")
            {
                Err(ConnectError::Denied(text))
            } else {
                Err(ConnectError::Unreachable(text))
            }
        }
    }
}

/// See the MySQL rotator: rustls needs one process-wide provider when several are built in.
fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_defaults_and_errors() {
        let s = parse_secret(r#"{"host":"h","username":"app","password":"pw"}"#).unwrap();
        assert_eq!((s.port, s.tls), (6379, Tls::Preferred));
        let s = parse_secret(
            r#"{"engine":"redis","host":"h","username":"app","password":"pw","port":"7000","ssl":"true"}"#,
        )
        .unwrap();
        assert_eq!((s.port, s.tls), (7000, Tls::Required));
        for key in ["host", "username", "password"] {
            let mut v = serde_json::json!({"host":"h","username":"app","password":"s3cret-pw"});
            v.as_object_mut().unwrap().remove(key);
            let e = parse_secret(&v.to_string()).err().unwrap();
            assert_eq!(e, format!("{key} key is missing from secret JSON"));
        }
        let e = parse_secret(
            r#"{"engine":"mysql","host":"h","username":"app","password":"s3cret-pw"}"#,
        )
        .err()
        .unwrap();
        assert!(e.contains("engine must be set to 'redis'") && !e.contains("s3cret"));
        let e = parse_secret(r#"{"host":"h","username":"app","password":"s3cret-pw","port":0}"#)
            .err()
            .unwrap();
        assert!(e.starts_with("port must be"));
    }

    #[test]
    fn endpoint_brackets_ipv6() {
        let s = parse_secret(r#"{"host":"::1","username":"a","password":"p"}"#).unwrap();
        assert_eq!(s.address(), "[::1]:6379");
    }
}
