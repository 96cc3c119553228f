use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use super::secret::RotationRulesType;
use crate::validate::{Validate, Violations};

fn is_duration(d: &str) -> bool {
    d.strip_suffix('h')
        .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
}

fn is_schedule_chars(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "()#?*-/, ".contains(c))
}

/// `RotateSecretRequest`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RotateSecretRequest {
    /// Secret id.
    pub secret_id: Option<String>,
    /// Idempotency token and id of the new version.
    pub client_request_token: Option<String>,
    /// Rotation function.
    #[serde(rename = "RotationLambdaARN")]
    pub rotation_lambda_arn: Option<String>,
    /// Schedule.
    pub rotation_rules: Option<RotationRulesType>,
    /// Rotate now (default true) or only test the configuration.
    pub rotate_immediately: Option<bool>,
    /// Managed external secrets: partner metadata.
    pub external_secret_rotation_metadata: Option<serde_json::Value>,
    /// Managed external secrets: role.
    pub external_secret_rotation_role_arn: Option<String>,
}

impl Validate for RotateSecretRequest {
    fn validate(&self, v: &mut Violations) {
        v.required("secretId", &self.secret_id);
        v.len("secretId", self.secret_id.as_deref(), 1, 2048);
        v.len(
            "clientRequestToken",
            self.client_request_token.as_deref(),
            32,
            64,
        );
        v.len(
            "rotationLambdaARN",
            self.rotation_lambda_arn.as_deref(),
            0,
            2048,
        );
        if let Some(r) = &self.rotation_rules {
            v.range(
                "rotationRules.automaticallyAfterDays",
                r.automatically_after_days,
                1,
                1000,
            );
            v.len("rotationRules.duration", r.duration.as_deref(), 2, 3);
            if let Some(d) = r.duration.as_deref() {
                v.pattern("rotationRules.duration", Some(d), is_duration(d), "[0-9]h");
            }
            v.len(
                "rotationRules.scheduleExpression",
                r.schedule_expression.as_deref(),
                1,
                256,
            );
            if let Some(s) = r.schedule_expression.as_deref() {
                v.pattern(
                    "rotationRules.scheduleExpression",
                    Some(s),
                    is_schedule_chars(s),
                    r"[0-9A-Za-z\(\)#\?\*\-\/, ]+",
                );
            }
        }
    }
}

/// `RotateSecretResponse`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RotateSecretResponse {
    /// ARN.
    #[serde(rename = "ARN")]
    pub arn: Option<String>,
    /// Name.
    pub name: Option<String>,
    /// The new (pending) version, when a rotation started.
    pub version_id: Option<String>,
}

/// `CancelRotateSecretResponse`.
pub type CancelRotateSecretResponse = RotateSecretResponse;
