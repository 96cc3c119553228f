//! Built-in rotation functions, run in-process against the domain service.
//!
//! Each built-in is a [`RotationFunction`] over [`SecretOps`], the few secret operations
//! AWS's rotation templates call (GetSecretValue with VersionId and VersionStage,
//! PutSecretValue into AWSPENDING, DescribeSecret to find AWSCURRENT,
//! UpdateSecretVersionStage, GetRandomPassword).

mod common;
mod generic;
mod mysql;
mod postgres;
mod redis;

use std::sync::Arc;

use async_trait::async_trait;
use rotary_core::labels::{AWSCURRENT, AWSPENDING};
use rotary_core::random_password::{self, PasswordSpec};
use rotary_core::service::rotation_read::StoredValue;
use rotary_core::{Ctx, SecretsService};
use rotary_wire::dto::{PutSecretValueRequest, SecretIdRequest, UpdateSecretVersionStageRequest};
use rotary_wire::Sensitive;

pub use generic::GenericPassword;

use crate::functions::{FunctionError, Output, RotationFunction};
use crate::registry::Builtin;

/// Characters generated passwords leave out, as AWS's database templates do: they break
/// connection strings, `.pgpass` files and shells.
pub const EXCLUDED_CHARACTERS: &str = ":/@\"'\\";

/// A failed step with `message` (which must hold no secret value).
pub(crate) fn failed(message: impl Into<String>) -> FunctionError {
    FunctionError::Failed {
        message: message.into(),
        output: Output::default(),
    }
}

/// Replaces each non-empty string of `secrets` in `text` by `[REDACTED]`, longest first.
pub(crate) fn scrub(text: impl Into<String>, secrets: &[&str]) -> String {
    let mut secrets: Vec<&str> = secrets.iter().copied().filter(|s| !s.is_empty()).collect();
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets
        .into_iter()
        .fold(text.into(), |t, s| t.replace(s, "[REDACTED]"))
}

/// The secret operations a built-in rotator needs. Errors are texts without values.
#[async_trait]
pub trait SecretOps: Send + Sync {
    /// The string value of a version; `Ok(None)` when it does not exist or has no value.
    async fn get_value(
        &self,
        secret_id: &str,
        version_id: Option<&str>,
        stage: &str,
    ) -> Result<Option<Sensitive>, String>;
    /// Stores `value` as version `token` with label AWSPENDING.
    async fn put_pending(&self, secret_id: &str, token: &str, value: &str) -> Result<(), String>;
    /// The id of the version holding AWSCURRENT.
    async fn current_version(&self, secret_id: &str) -> Result<Option<String>, String>;
    /// Moves AWSCURRENT to `token` (from the version that holds it).
    async fn make_current(&self, secret_id: &str, token: &str) -> Result<(), String>;
    /// A random password of `length` without the characters of `exclude`.
    fn random_password(&self, length: usize, exclude: &str) -> Result<String, String>;
}

/// [`SecretOps`] over the in-process service, generating passwords under a policy.
pub struct ServiceOps {
    service: Arc<SecretsService>,
    policy: PasswordPolicy,
}

impl ServiceOps {
    /// Wraps the service; `policy` replaces the length and excluded characters the rotator
    /// asks for.
    pub fn new(service: Arc<SecretsService>, policy: PasswordPolicy) -> Self {
        Self { service, policy }
    }

    fn cx() -> Ctx {
        Ctx {
            request_id: uuid::Uuid::new_v4().to_string(),
            caller: "rotary-built-in-rotator".into(),
            prefetched: None,
        }
    }
}

#[async_trait]
impl SecretOps for ServiceOps {
    async fn get_value(
        &self,
        secret_id: &str,
        version_id: Option<&str>,
        stage: &str,
    ) -> Result<Option<Sensitive>, String> {
        // Rotary's own read: it does not count as an access (LastAccessedDate). See: #13
        match self
            .service
            .peek_value(secret_id, version_id, Some(stage))
            .await
        {
            Ok(Some(StoredValue::Text(s))) => Ok(Some(s)),
            Ok(Some(StoredValue::Binary(_))) => Err(format!(
                "the {stage} value of {secret_id} is binary, not a string"
            )),
            Ok(None) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    async fn put_pending(&self, secret_id: &str, token: &str, value: &str) -> Result<(), String> {
        let req = PutSecretValueRequest {
            secret_id: Some(secret_id.to_owned()),
            client_request_token: Some(token.to_owned()),
            secret_string: Some(Sensitive::new(value.to_owned())),
            version_stages: Some(vec![AWSPENDING.to_owned()]),
            ..Default::default()
        };
        self.service
            .put_secret_value(&Self::cx(), req)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    async fn current_version(&self, secret_id: &str) -> Result<Option<String>, String> {
        let d = self
            .service
            .describe_secret(
                &Self::cx(),
                SecretIdRequest {
                    secret_id: Some(secret_id.to_owned()),
                },
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok(d.version_ids_to_stages
            .unwrap_or_default()
            .into_iter()
            .find_map(|(v, s)| s.iter().any(|l| l == AWSCURRENT).then_some(v)))
    }

    async fn make_current(&self, secret_id: &str, token: &str) -> Result<(), String> {
        let current = self.current_version(secret_id).await?;
        if current.as_deref() == Some(token) {
            return Ok(());
        }
        let req = UpdateSecretVersionStageRequest {
            secret_id: Some(secret_id.to_owned()),
            version_stage: Some(AWSCURRENT.to_owned()),
            move_to_version_id: Some(token.to_owned()),
            remove_from_version_id: current,
        };
        self.service
            .update_secret_version_stage(&Self::cx(), req)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn random_password(&self, length: usize, exclude: &str) -> Result<String, String> {
        let spec = PasswordSpec {
            length: self.policy.length.unwrap_or(length),
            exclude_characters: self
                .policy
                .exclude_characters
                .as_deref()
                .unwrap_or(exclude)
                .to_owned(),
            ..PasswordSpec::default()
        };
        random_password::generate(&spec)
            .map(|p| p.to_string())
            .map_err(|e| e.to_string())
    }
}

/// Password policy of a built-in registered under its own name: replaces the length and
/// excluded characters the rotator asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// `PASSWORD_LENGTH`.
    pub length: Option<usize>,
    /// `EXCLUDE_CHARACTERS`.
    pub exclude_characters: Option<String>,
}

impl PasswordPolicy {
    /// Reads `PASSWORD_LENGTH` and `EXCLUDE_CHARACTERS` from a function's `Env`.
    pub fn from_env(env: &[(String, String)]) -> Self {
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        Self {
            length: get("PASSWORD_LENGTH").and_then(|v| v.parse().ok()),
            exclude_characters: get("EXCLUDE_CHARACTERS"),
        }
    }
}

/// The executor of a built-in.
pub fn executor(
    builtin: Builtin,
    service: Arc<SecretsService>,
    policy: PasswordPolicy,
) -> Box<dyn RotationFunction> {
    let ops: Arc<dyn SecretOps> = Arc::new(ServiceOps::new(service, policy));
    match builtin {
        Builtin::GenericPassword => Box::new(GenericPassword::new(ops)),
        Builtin::PostgresSingleUser => Box::new(postgres::PostgresRotator::new(ops, false)),
        Builtin::PostgresAlternatingUsers => Box::new(postgres::PostgresRotator::new(ops, true)),
        Builtin::MysqlSingleUser => Box::new(mysql::MysqlRotator::new(ops, false)),
        Builtin::MysqlAlternatingUsers => Box::new(mysql::MysqlRotator::new(ops, true)),
        Builtin::RedisSingleUser => Box::new(redis::RedisRotator::new(ops)),
    }
}
