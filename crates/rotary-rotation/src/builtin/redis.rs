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
//!   it; absent or anything else probes the port with a plaintext `PING` (no credentials)
//!   and uses plaintext if it answers in RESP, else TLS (see `speaks_plaintext`).
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
use rotary_wire::Sensitive;
use serde_json::{Map, Value};

use super::{failed, SecretOps, EXCLUDED_CHARACTERS};
use crate::functions::{FunctionError, Invocation, Output, RotationFunction, Step};

const DEFAULT_PORT: u16 = 6379;
const PASSWORD_LENGTH: usize = 32;
/// Per connection attempt and per command.
const TIMEOUT: Duration = Duration::from_secs(5);
/// How long the plaintext probe waits for an answer before assuming TLS.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Rotates the password of the Redis ACL user named in the secret.
pub struct RedisRotator {
    ops: Arc<dyn SecretOps>,
}

#[async_trait]
impl RotationFunction for RedisRotator {
    async fn invoke(&self, inv: &Invocation) -> Result<Output, FunctionError> {
        let ev = &inv.event;
        let (arn, token) = (ev.secret_id.as_str(), ev.client_request_token.as_str());
        let step = ev.step;
        let log = match step {
            Step::CreateSecret => self.create(arn, token).await,
            Step::SetSecret => self.set(arn, token).await,
            Step::TestSecret => self.test(arn, token).await,
            Step::FinishSecret => self
                .ops
                .make_current(arn, token)
                .await
                .map(|()| "AWSCURRENT is on the new version".to_owned()),
        };
        log.map(|l| Output {
            log: format!("{step}: {l}"),
        })
        .map_err(|e| failed(format!("{step}: {e}")))
    }
}

impl RedisRotator {
    /// The function over secret operations.
    pub fn new(ops: Arc<dyn SecretOps>) -> Self {
        Self { ops }
    }

    async fn secret(
        &self,
        arn: &str,
        token: Option<&str>,
        stage: &str,
    ) -> Result<RedisSecret, String> {
        let value = self
            .ops
            .get_value(arn, token, stage)
            .await
            .map_err(|e| format!("reading {stage}: {e}"))?
            .ok_or_else(|| format!("the secret has no {stage} value"))?;
        RedisSecret::parse(value.expose()).map_err(|e| format!("{stage}: {e}"))
    }

    async fn create(&self, arn: &str, token: &str) -> Result<String, String> {
        let current = self.secret(arn, None, AWSCURRENT).await?;
        if self
            .ops
            .get_value(arn, Some(token), AWSPENDING)
            .await?
            .is_some()
        {
            return Ok("the pending version already has a value".into());
        }
        let mut fields = current.fields.clone();
        let password = self
            .ops
            .random_password(PASSWORD_LENGTH, EXCLUDED_CHARACTERS)?;
        fields.insert("password".into(), Value::String(password));
        let value = Sensitive::new(
            serde_json::to_string(&fields).map_err(|e| format!("encoding the value: {e}"))?,
        );
        self.ops
            .put_pending(arn, token, value.expose())
            .await
            .map_err(|e| format!("storing the pending value: {e}"))?;
        Ok("stored a new password as AWSPENDING".into())
    }

    async fn set(&self, arn: &str, token: &str) -> Result<String, String> {
        let current = self.secret(arn, None, AWSCURRENT).await?;
        let pending = self.secret(arn, Some(token), AWSPENDING).await?;
        let target = pending.endpoint();
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
        let target = pending.endpoint();
        let mut conn = connect(&pending)
            .await
            .map_err(|e| format!("unable to log into {target} with the pending secret: {e}"))?;
        let pong: Result<String, RedisError> = redis::cmd("PING").query_async(&mut conn).await;
        pong.map_err(|e| format!("PING on {target}: {}", redis_error_text(&e, &pending)))?;
        Ok(format!("logged into {target} with the pending secret"))
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tls {
    Required,
    Disabled,
    Preferred,
}

struct RedisSecret {
    fields: Map<String, Value>,
    host: String,
    port: u16,
    username: String,
    password: Sensitive,
    tls: Tls,
}

impl RedisSecret {
    /// The error names the missing or bad key, never a value.
    fn parse(value: &str) -> Result<Self, String> {
        let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(value) else {
            return Err("the secret value is not a JSON object".into());
        };
        for key in ["host", "username", "password"] {
            match fields.get(key) {
                None | Some(Value::Null) => {
                    return Err(format!("{key} key is missing from secret JSON"))
                }
                Some(Value::String(s)) if !s.is_empty() => {}
                Some(Value::String(_)) => return Err(format!("{key} must not be empty")),
                Some(_) => return Err(format!("{key} must be a string")),
            }
        }
        match fields.get("engine") {
            None | Some(Value::Null) => {}
            Some(Value::String(e)) if e == "redis" => {}
            Some(_) => {
                return Err(
                    "engine must be 'redis' (or absent) to use this rotation function".into(),
                )
            }
        }
        let text = |key: &str| match fields.get(key) {
            Some(Value::String(s)) => s.clone(),
            _ => String::new(),
        };
        let port = match fields.get("port") {
            None | Some(Value::Null) => Some(DEFAULT_PORT),
            Some(Value::Number(n)) => n.as_u64().and_then(|p| u16::try_from(p).ok()),
            Some(Value::String(s)) => s.trim().parse::<u16>().ok(),
            Some(_) => None,
        }
        .filter(|p| *p != 0)
        .ok_or("port must be a number between 1 and 65535")?;
        let tls = match fields.get("ssl") {
            Some(Value::Bool(true)) => Tls::Required,
            Some(Value::Bool(false)) => Tls::Disabled,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Tls::Required,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Tls::Disabled,
            _ => Tls::Preferred,
        };
        Ok(Self {
            host: text("host"),
            username: text("username"),
            password: Sensitive::new(text("password")),
            port,
            tls,
            fields,
        })
    }

    fn endpoint(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------------------------

/// Why a login failed: the server refused it, or it could not be reached.
#[derive(Debug)]
enum ConnectError {
    Denied(String),
    Unreachable(String),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectError::Denied(m) | ConnectError::Unreachable(m) => f.write_str(m),
        }
    }
}

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
        let s = RedisSecret::parse(r#"{"host":"h","username":"app","password":"pw"}"#).unwrap();
        assert_eq!((s.port, s.tls), (6379, Tls::Preferred));
        let s = RedisSecret::parse(
            r#"{"engine":"redis","host":"h","username":"app","password":"pw","port":"7000","ssl":"true"}"#,
        )
        .unwrap();
        assert_eq!((s.port, s.tls), (7000, Tls::Required));
        for key in ["host", "username", "password"] {
            let mut v = serde_json::json!({"host":"h","username":"app","password":"s3cret-pw"});
            v.as_object_mut().unwrap().remove(key);
            let e = RedisSecret::parse(&v.to_string()).err().unwrap();
            assert_eq!(e, format!("{key} key is missing from secret JSON"));
        }
        let e = RedisSecret::parse(
            r#"{"engine":"mysql","host":"h","username":"app","password":"s3cret-pw"}"#,
        )
        .err()
        .unwrap();
        assert!(e.contains("engine must be 'redis'") && !e.contains("s3cret"));
        let e =
            RedisSecret::parse(r#"{"host":"h","username":"app","password":"s3cret-pw","port":0}"#)
                .err()
                .unwrap();
        assert!(e.starts_with("port must be"));
    }

    #[test]
    fn endpoint_brackets_ipv6() {
        let s = RedisSecret::parse(r#"{"host":"::1","username":"a","password":"p"}"#).unwrap();
        assert_eq!(s.endpoint(), "[::1]:6379");
    }
}
