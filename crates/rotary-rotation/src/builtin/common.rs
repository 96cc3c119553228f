//! What the built-in database rotators share: the check of a secret's configuration before
//! each step, one parser of database secrets with one set of messages, one reading of `ssl`,
//! and one connect-error type. Each rotator keeps only what differs (engines, defaults,
//! the SQL or ACL dialect).

use rotary_core::labels::{AWSCURRENT, AWSPENDING};
use rotary_wire::Sensitive;
use serde_json::{Map, Value};

use super::{failed, SecretOps, EXCLUDED_CHARACTERS};
use crate::functions::{FunctionError, Invocation, Output, RotationEvent, RotationFunction, Step};

/// What one database rotator does in each step; the blanket [`RotationFunction`] impl below is
/// the template that runs them the same way for every database. Errors are texts without values.
#[async_trait::async_trait]
pub(crate) trait DbSteps: Send + Sync {
    /// The secret operations the rotator works through.
    fn ops(&self) -> &dyn SecretOps;
    /// The rotator's parser of a secret value of `stage` (see [`check_config`]).
    fn check(&self, text: &str, stage: &str) -> Result<(), String>;
    /// createSecret: a new password (and, alternating, the other user) as AWSPENDING.
    async fn create(&self, arn: &str, token: &str) -> Result<String, String>;
    /// Whether the rotator alternates two users (setSecret is then [`Self::set_alternating`]).
    fn alternating(&self) -> bool {
        false
    }
    /// setSecret, single user: the user's own password changes to the pending one.
    async fn set(&self, arn: &str, token: &str) -> Result<String, String>;
    /// setSecret, alternating users: the other user gets the pending password (created by
    /// the master user when it does not exist yet).
    async fn set_alternating(&self, _arn: &str, _token: &str) -> Result<String, String> {
        Err("this rotator does not alternate users".into())
    }
    /// testSecret: the pending credentials log in.
    async fn test(&self, arn: &str, token: &str) -> Result<String, String>;
}

/// Every database rotator runs its steps the same way: the configuration check, the step,
/// and finishSecret (the same for every database: AWSCURRENT moves to the pending version).
/// The output and the error start with the step's name.
#[async_trait::async_trait]
impl<S: DbSteps> RotationFunction for S {
    async fn invoke(&self, inv: &Invocation) -> Result<Output, FunctionError> {
        run_step(self, inv).await
    }
}

async fn run_step<S: DbSteps + ?Sized>(
    steps: &S,
    inv: &Invocation,
) -> Result<Output, FunctionError> {
    let ev = &inv.event;
    check_config(steps.ops(), ev, |text, stage| steps.check(text, stage)).await?;
    let (arn, token) = (ev.secret_id.as_str(), ev.client_request_token.as_str());
    let step = ev.step;
    let log = match step {
        Step::CreateSecret => steps.create(arn, token).await,
        Step::SetSecret if steps.alternating() => steps.set_alternating(arn, token).await,
        Step::SetSecret => steps.set(arn, token).await,
        Step::TestSecret => steps.test(arn, token).await,
        Step::FinishSecret => steps
            .ops()
            .make_current(arn, token)
            .await
            .map(|()| "AWSCURRENT is on the new version".to_owned()),
    };
    log.map(|l| Output {
        log: format!("{step}: {l}"),
    })
    .map_err(|e| failed(format!("{step}: {e}")))
}

/// Length of generated passwords, AWS's template default.
pub(crate) const PASSWORD_LENGTH: usize = 32;

/// createSecret of a database secret, as AWS's templates do it: nothing to do when the
/// pending version has a value already; else AWSCURRENT's JSON (`current`, every member
/// kept) with a new password and, for the alternating strategy, `username` set to
/// `other_user`, stored as AWSPENDING.
pub(crate) async fn store_pending(
    ops: &dyn SecretOps,
    arn: &str,
    token: &str,
    current: &Map<String, Value>,
    other_user: Option<String>,
) -> Result<String, String> {
    if ops.get_value(arn, Some(token), AWSPENDING).await?.is_some() {
        return Ok("the pending version already has a value".into());
    }
    let mut fields = current.clone();
    let log = match other_user {
        Some(user) => {
            let log = format!("stored a new password for user {user} as AWSPENDING");
            fields.insert("username".into(), Value::String(user));
            log
        }
        None => "stored a new password as AWSPENDING".to_owned(),
    };
    let password = ops.random_password(PASSWORD_LENGTH, EXCLUDED_CHARACTERS)?;
    fields.insert("password".into(), Value::String(password));
    let value = Sensitive::new(Value::Object(fields).to_string());
    ops.put_pending(arn, token, value.expose())
        .await
        .map_err(|e| format!("storing the pending value: {e}"))?;
    Ok(log)
}

/// Reads the value of `stage` (of version `token`, when given) and parses it; the errors
/// name the stage, never a value.
pub(crate) async fn read_secret<T>(
    ops: &dyn SecretOps,
    arn: &str,
    token: Option<&str>,
    stage: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, String> {
    let value = ops
        .get_value(arn, token, stage)
        .await
        .map_err(|e| format!("reading {stage}: {e}"))?
        .ok_or_else(|| format!("the secret has no {stage} value"))?;
    parse(value.expose()).map_err(|e| format!("{stage}: {e}"))
}

/// Reads and parses the values a step works from before it runs: AWSCURRENT for every step
/// but finishSecret, and the pending value (once createSecret has stored it) for setSecret
/// and testSecret. A value that does not parse is a configuration error (a missing `host`, a
/// wrong `engine`): the step fails at once with the parser's message, and the driver does not
/// retry it as it would an outage. A value that cannot be read is left to the step, which
/// reports it as before.
///
/// `parse(text, stage)` is the rotator's own parser; its message must hold no value.
pub(crate) async fn check_config(
    ops: &dyn SecretOps,
    ev: &RotationEvent,
    parse: impl Fn(&str, &str) -> Result<(), String>,
) -> Result<(), FunctionError> {
    let token = ev.client_request_token.as_str();
    let reads: &[(Option<&str>, &str)] = match ev.step {
        Step::CreateSecret => &[(None, AWSCURRENT)],
        Step::SetSecret | Step::TestSecret => &[(None, AWSCURRENT), (Some(token), AWSPENDING)],
        Step::FinishSecret => &[],
    };
    for &(version_id, stage) in reads {
        if let Ok(Some(text)) = ops.get_value(&ev.secret_id, version_id, stage).await {
            parse(text.expose(), stage)
                .map_err(|e| FunctionError::Config(format!("{}: {e}", ev.step)))?;
        }
    }
    Ok(())
}

/// The `ssl` member of a database secret, read one way by every rotator: `true` (or
/// `"true"`) requires TLS, `false` (or `"false"`) never uses it, absent (or null) tries TLS
/// and falls back to plaintext. Anything else is a configuration error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tls {
    /// TLS or nothing.
    Required,
    /// Plaintext only.
    Disabled,
    /// TLS, else plaintext.
    Preferred,
}

/// Why a login failed: the server refused it (wrong password, unknown user or database), or
/// it could not be reached (refused, timed out, TLS). Texts hold no secret value.
#[derive(Debug)]
pub(crate) enum ConnectError {
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

/// What one database's secrets look like beyond the members all share.
pub(crate) struct SecretRules {
    /// The `engine` values accepted.
    pub engines: &'static [&'static str],
    /// How the message for a wrong `engine` names them, e.g. `'postgres'`.
    pub engine_text: &'static str,
    /// Whether `engine` must be present (AWS's SQL templates require it).
    pub engine_required: bool,
    /// The port when the secret has none.
    pub default_port: u16,
}

/// A database secret's members, checked one way with one set of messages, as AWS's
/// templates check them (`get_secret_dict`): each message names the key at fault, never a
/// value. `fields` is the whole JSON object, which createSecret writes back with a new
/// password (members the rotator does not know are kept).
pub(crate) struct DbFields {
    pub fields: Map<String, Value>,
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: Sensitive,
    pub dbname: Option<String>,
    pub tls: Tls,
    pub masterarn: Option<String>,
}

impl DbFields {
    /// Parses a rotated secret; `masterarn` is required for the alternating-users strategy.
    pub(crate) fn parse(text: &str, rules: &SecretRules, masterarn: bool) -> Result<Self, String> {
        let fields = object(text)?;
        match string_member(&fields, "engine")? {
            None if !rules.engine_required => {}
            None => {
                return Err(format!(
                    "engine key is missing from secret JSON; it must be {}",
                    rules.engine_text
                ))
            }
            Some(e) if rules.engines.contains(&e) => {}
            Some(_) => return Err(wrong_engine(rules)),
        }
        let host = host(&fields)?;
        let username = required(&fields, "username")?;
        if username.is_empty() {
            return Err("username must not be empty".into());
        }
        let password = required(&fields, "password")?;
        let masterarn = if masterarn {
            let arn = required(&fields, "masterarn")?;
            if arn.is_empty() {
                return Err("masterarn must not be empty".into());
            }
            Some(arn.to_owned())
        } else {
            None
        };
        Ok(Self {
            host,
            username: username.to_owned(),
            password: Sensitive::new(password.to_owned()),
            port: port(&fields)?.unwrap_or(rules.default_port),
            dbname: string_member(&fields, "dbname")?
                .filter(|d| !d.is_empty())
                .map(str::to_owned),
            tls: tls(&fields)?.unwrap_or(Tls::Preferred),
            masterarn,
            fields,
        })
    }

    /// `host:port`, an IPv6 address in brackets.
    pub(crate) fn address(&self) -> String {
        address(&self.host, self.port)
    }
}

/// The message for an `engine` this rotator does not handle (AWS's text).
pub(crate) fn wrong_engine(rules: &SecretRules) -> String {
    format!(
        "Database engine must be set to {} in order to use this rotation function",
        rules.engine_text
    )
}

/// `host:port`, an IPv6 address in brackets.
pub(crate) fn address(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The secret value as a JSON object.
pub(crate) fn object(text: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => Ok(m),
        // serde_json's message holds positions, never content; leave it out all the same.
        _ => Err("the secret value is not a JSON object".into()),
    }
}

/// A string member; `None` when absent or null.
pub(crate) fn string_member<'a>(
    m: &'a Map<String, Value>,
    key: &str,
) -> Result<Option<&'a str>, String> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("{key} must be a string")),
    }
}

/// A string member that must be present.
pub(crate) fn required<'a>(m: &'a Map<String, Value>, key: &str) -> Result<&'a str, String> {
    string_member(m, key)?.ok_or_else(|| format!("{key} key is missing from secret JSON"))
}

/// `host`: a host name or an IP address. A Unix socket path is refused: the drivers read a
/// leading `/` as one, and a socket would let peer authentication stand in for the password
/// being rotated.
pub(crate) fn host(m: &Map<String, Value>) -> Result<String, String> {
    let host = required(m, "host")?.trim();
    if host.is_empty() {
        return Err("host must not be empty".into());
    }
    if host.starts_with('/') || host.starts_with('@') {
        return Err(
            "host must be a host name or IP address (Unix sockets are not supported)".into(),
        );
    }
    Ok(host.to_owned())
}

/// `port`, a number or a string (AWS's templates call `int(...)`), 1..=65535; `None` when
/// absent or null.
pub(crate) fn port(m: &Map<String, Value>) -> Result<Option<u16>, String> {
    let port = match m.get("port") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_u64().and_then(|p| u16::try_from(p).ok()),
        Some(Value::String(s)) => s.trim().parse::<u16>().ok(),
        Some(_) => None,
    };
    port.filter(|p| *p != 0)
        .map(Some)
        .ok_or_else(|| "port must be a number between 1 and 65535".to_owned())
}

/// `ssl` (see [`Tls`]); `None` when absent or null.
pub(crate) fn tls(m: &Map<String, Value>) -> Result<Option<Tls>, String> {
    match m.get("ssl") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(true)) => Ok(Some(Tls::Required)),
        Some(Value::Bool(false)) => Ok(Some(Tls::Disabled)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(Tls::Required)),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(Tls::Disabled)),
        Some(_) => Err("ssl must be true or false".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: SecretRules = SecretRules {
        engines: &["mysql", "mariadb"],
        engine_text: "'mysql' or 'mariadb'",
        engine_required: true,
        default_port: 3306,
    };

    fn parse(extra: &str) -> Result<DbFields, String> {
        DbFields::parse(
            &format!(
                r#"{{"engine":"mysql","host":"h","username":"u","password":"s3cret-pw"{extra}}}"#
            ),
            &RULES,
            false,
        )
    }

    #[test]
    fn parse_applies_defaults_and_reads_optional_members() {
        let s = parse("").unwrap();
        assert_eq!(
            (s.port, s.tls, s.dbname.as_deref()),
            (3306, Tls::Preferred, None)
        );
        let s = parse(r#","port":"7000","ssl":"TRUE","dbname":"d""#).unwrap();
        assert_eq!(
            (s.port, s.tls, s.dbname.as_deref()),
            (7000, Tls::Required, Some("d"))
        );
        assert_eq!(parse(r#","ssl":false"#).unwrap().tls, Tls::Disabled);
    }

    #[test]
    fn parse_errors_name_the_key_never_a_value() {
        for key in ["host", "username", "password"] {
            let mut v = serde_json::json!({"engine":"mysql","host":"h","username":"u","password":"s3cret-pw"});
            v.as_object_mut().unwrap().remove(key);
            let e = DbFields::parse(&v.to_string(), &RULES, false)
                .err()
                .unwrap();
            assert_eq!(e, format!("{key} key is missing from secret JSON"));
        }
        let cases = [
            (r#","port":0"#, "port must be a number between 1 and 65535"),
            (
                r#","port":"x""#,
                "port must be a number between 1 and 65535",
            ),
            (r#","ssl":"maybe""#, "ssl must be true or false"),
            (r#","dbname":7"#, "dbname must be a string"),
        ];
        for (extra, want) in cases {
            assert_eq!(parse(extra).err().unwrap(), want, "{extra}");
        }
        let e = DbFields::parse(
            r#"{"engine":"redis","host":"h","username":"u","password":"s3cret-pw"}"#,
            &RULES,
            false,
        )
        .err()
        .unwrap();
        assert_eq!(e, "Database engine must be set to 'mysql' or 'mariadb' in order to use this rotation function");
        let e = DbFields::parse(
            r#"{"host":"/tmp","username":"u","password":"s3cret-pw","engine":"mysql"}"#,
            &RULES,
            false,
        )
        .err()
        .unwrap();
        assert!(e.starts_with("host must be a host name"), "{e}");
        let e = parse("").map(|_| ()).and_then(|()| {
            DbFields::parse(
                r#"{"engine":"mysql","host":"h","username":"u","password":"s3cret-pw"}"#,
                &RULES,
                true,
            )
            .map(|_| ())
        });
        assert_eq!(
            e.err().unwrap(),
            "masterarn key is missing from secret JSON"
        );
        assert_eq!(
            DbFields::parse("[1]", &RULES, false).err().unwrap(),
            "the secret value is not a JSON object"
        );
    }

    #[test]
    fn address_brackets_ipv6() {
        assert_eq!(address("::1", 6379), "[::1]:6379");
        assert_eq!(address("db", 5432), "db:5432");
    }
}
