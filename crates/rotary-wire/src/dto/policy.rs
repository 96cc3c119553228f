use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use crate::validate::{Validate, Violations};

/// `PutResourcePolicyRequest`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutResourcePolicyRequest {
    /// Secret id.
    pub secret_id: Option<String>,
    /// The policy JSON text.
    pub resource_policy: Option<String>,
    /// Refuse policies granting broad access.
    pub block_public_policy: Option<bool>,
}

impl Validate for PutResourcePolicyRequest {
    fn validate(&self, v: &mut Violations) {
        v.required("secretId", &self.secret_id);
        v.len("secretId", self.secret_id.as_deref(), 1, 2048);
        v.required("resourcePolicy", &self.resource_policy);
        v.len_sensitive(
            "resourcePolicy",
            self.resource_policy.as_ref().map(|p| p.chars().count()),
            1,
            20480,
        );
    }
}

/// `ValidateResourcePolicyRequest`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ValidateResourcePolicyRequest {
    /// Optional secret id.
    pub secret_id: Option<String>,
    /// The policy JSON text.
    pub resource_policy: Option<String>,
}

impl Validate for ValidateResourcePolicyRequest {
    fn validate(&self, v: &mut Violations) {
        v.len("secretId", self.secret_id.as_deref(), 1, 2048);
        v.required("resourcePolicy", &self.resource_policy);
        v.len_sensitive(
            "resourcePolicy",
            self.resource_policy.as_ref().map(|p| p.chars().count()),
            1,
            20480,
        );
    }
}

/// `ValidationErrorsEntry`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ValidationErrorsEntry {
    /// Which check failed.
    pub check_name: Option<String>,
    /// Why.
    pub error_message: Option<String>,
}

/// `ValidateResourcePolicyResponse`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ValidateResourcePolicyResponse {
    /// True when no check failed.
    pub policy_validation_passed: Option<bool>,
    /// The failed checks.
    pub validation_errors: Option<Vec<ValidationErrorsEntry>>,
}

/// `GetResourcePolicyResponse`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetResourcePolicyResponse {
    /// ARN.
    #[serde(rename = "ARN")]
    pub arn: Option<String>,
    /// Name.
    pub name: Option<String>,
    /// The policy JSON text, when one is attached.
    pub resource_policy: Option<String>,
}
