//! `rotary-generic-password`: a new random password in the secret's existing shape.

use std::sync::Arc;

use async_trait::async_trait;
use rotary_core::labels::{AWSCURRENT, AWSPENDING};

use super::{failed, SecretOps, EXCLUDED_CHARACTERS};
use crate::functions::{FunctionError, Invocation, Output, RotationFunction, Step};

/// Sets a new random password: the `password` member of a JSON object secret, or the
/// whole string. There is no target system, so setSecret and testSecret do nothing.
pub struct GenericPassword {
    ops: Arc<dyn SecretOps>,
}

impl GenericPassword {
    /// The function over secret operations.
    pub fn new(ops: Arc<dyn SecretOps>) -> Self {
        Self { ops }
    }

    async fn create(&self, arn: &str, token: &str) -> Result<String, FunctionError> {
        let current = self
            .ops
            .get_value(arn, None, AWSCURRENT)
            .await
            .map_err(|e| failed(format!("reading AWSCURRENT: {e}")))?
            .ok_or_else(|| failed("the secret has no AWSCURRENT value to rotate"))?;
        if self
            .ops
            .get_value(arn, Some(token), AWSPENDING)
            .await
            .map_err(failed)?
            .is_some()
        {
            return Ok("createSecret: the pending version already has a value".into());
        }
        let password = self
            .ops
            .random_password(32, EXCLUDED_CHARACTERS)
            .map_err(failed)?;
        let new_value = match serde_json::from_str::<serde_json::Value>(current.expose()) {
            Ok(serde_json::Value::Object(mut m)) => {
                m.insert("password".into(), serde_json::Value::String(password));
                serde_json::to_string(&m).map_err(|e| failed(e.to_string()))?
            }
            _ => password,
        };
        self.ops
            .put_pending(arn, token, &new_value)
            .await
            .map_err(|e| failed(format!("storing the pending value: {e}")))?;
        Ok("createSecret: stored a new password as AWSPENDING".into())
    }
}

#[async_trait]
impl RotationFunction for GenericPassword {
    async fn invoke(&self, inv: &Invocation) -> Result<Output, FunctionError> {
        let ev = &inv.event;
        let log = match ev.step {
            Step::CreateSecret => self.create(&ev.secret_id, &ev.client_request_token).await?,
            Step::SetSecret => "setSecret: nothing to set for a generic password".into(),
            Step::TestSecret => "testSecret: nothing to test for a generic password".into(),
            Step::FinishSecret => {
                self.ops
                    .make_current(&ev.secret_id, &ev.client_request_token)
                    .await
                    .map_err(|e| failed(format!("finishSecret: {e}")))?;
                "finishSecret: AWSCURRENT is on the new version".into()
            }
        };
        Ok(Output { log })
    }
}
