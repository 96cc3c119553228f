//! Built-in rotation functions, run in-process against the domain service.

use std::sync::Arc;

use async_trait::async_trait;
use rotary_core::labels::{AWSCURRENT, AWSPENDING};
use rotary_core::random_password::{self, PasswordSpec};
use rotary_core::{Ctx, SecretsService};
use rotary_wire::dto::{
    GetSecretValueRequest, PutSecretValueRequest, SecretIdRequest, UpdateSecretVersionStageRequest,
};
use rotary_wire::{ErrorCode, Sensitive};

use crate::functions::{FunctionError, Invocation, Output, RotationFunction, Step};

/// Characters the generic password leaves out: they break connection strings and shells.
pub const EXCLUDED_CHARACTERS: &str = ":/@\"'\\";

/// `rotary-generic-password`: a new random password in the secret's existing shape.
pub struct GenericPassword {
    service: Arc<SecretsService>,
}

fn failed(message: impl Into<String>) -> FunctionError {
    FunctionError::Failed {
        message: message.into(),
        output: Output::default(),
    }
}

impl GenericPassword {
    /// The function over a service.
    pub fn new(service: Arc<SecretsService>) -> Self {
        Self { service }
    }

    async fn create(&self, cx: &Ctx, arn: &str, token: &str) -> Result<String, FunctionError> {
        let get = |version_id: Option<&str>, stage: &str| GetSecretValueRequest {
            secret_id: Some(arn.to_owned()),
            version_id: version_id.map(str::to_owned),
            version_stage: Some(stage.to_owned()),
        };
        let current = self
            .service
            .get_secret_value(cx, get(None, AWSCURRENT))
            .await
            .map_err(|e| failed(format!("createSecret: reading AWSCURRENT: {e}")))?;
        match self
            .service
            .get_secret_value(cx, get(Some(token), AWSPENDING))
            .await
        {
            Ok(_) => return Ok("createSecret: the pending version already has a value".into()),
            Err(e) if e.code() == ErrorCode::ResourceNotFoundException => {}
            Err(e) => return Err(failed(format!("createSecret: reading AWSPENDING: {e}"))),
        }
        let Some(current) = current.secret_string else {
            return Err(failed(
                "createSecret: rotary-generic-password rotates string secrets only",
            ));
        };
        let spec = PasswordSpec {
            exclude_characters: EXCLUDED_CHARACTERS.to_owned(),
            ..PasswordSpec::default()
        };
        let password = random_password::generate(&spec).map_err(|e| failed(e.to_string()))?;
        let new_value = match serde_json::from_str::<serde_json::Value>(current.expose()) {
            Ok(serde_json::Value::Object(mut m)) => {
                m.insert(
                    "password".into(),
                    serde_json::Value::String(password.to_string()),
                );
                serde_json::to_string(&m).map_err(|e| failed(e.to_string()))?
            }
            _ => password.to_string(),
        };
        self.service
            .put_secret_value(
                cx,
                PutSecretValueRequest {
                    secret_id: Some(arn.to_owned()),
                    client_request_token: Some(token.to_owned()),
                    secret_string: Some(Sensitive::new(new_value)),
                    version_stages: Some(vec![AWSPENDING.to_owned()]),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| failed(format!("createSecret: storing the pending value: {e}")))?;
        Ok("createSecret: stored a new password as AWSPENDING".into())
    }

    async fn finish(&self, cx: &Ctx, arn: &str, token: &str) -> Result<String, FunctionError> {
        let d = self
            .service
            .describe_secret(
                cx,
                SecretIdRequest {
                    secret_id: Some(arn.to_owned()),
                },
            )
            .await
            .map_err(|e| failed(format!("finishSecret: {e}")))?;
        let current = d
            .version_ids_to_stages
            .unwrap_or_default()
            .into_iter()
            .find_map(|(v, s)| s.iter().any(|l| l == AWSCURRENT).then_some(v));
        if current.as_deref() == Some(token) {
            return Ok("finishSecret: already AWSCURRENT".into());
        }
        self.service
            .update_secret_version_stage(
                cx,
                UpdateSecretVersionStageRequest {
                    secret_id: Some(arn.to_owned()),
                    version_stage: Some(AWSCURRENT.to_owned()),
                    move_to_version_id: Some(token.to_owned()),
                    remove_from_version_id: current,
                },
            )
            .await
            .map_err(|e| failed(format!("finishSecret: {e}")))?;
        Ok("finishSecret: moved AWSCURRENT to the new version".into())
    }
}

#[async_trait]
impl RotationFunction for GenericPassword {
    async fn invoke(&self, inv: &Invocation) -> Result<Output, FunctionError> {
        let cx = Ctx {
            request_id: uuid::Uuid::new_v4().to_string(),
            caller: "rotary-generic-password".into(),
        };
        let ev = &inv.event;
        let log = match ev.step {
            Step::CreateSecret => {
                self.create(&cx, &ev.secret_id, &ev.client_request_token)
                    .await?
            }
            Step::SetSecret => "setSecret: nothing to set for a generic password".into(),
            Step::TestSecret => "testSecret: nothing to test for a generic password".into(),
            Step::FinishSecret => {
                self.finish(&cx, &ev.secret_id, &ev.client_request_token)
                    .await?
            }
        };
        Ok(Output { log })
    }
}
