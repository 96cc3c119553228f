//! Tags, resource policies and GetRandomPassword.

use rotary_wire::dto::{
    ArnNameResponse, EmptyResponse, GetRandomPasswordRequest, GetRandomPasswordResponse,
    GetResourcePolicyResponse, PutResourcePolicyRequest, SecretIdRequest, TagResourceRequest,
    UntagResourceRequest, ValidateResourcePolicyRequest, ValidateResourcePolicyResponse,
    ValidationErrorsEntry,
};
use rotary_wire::validate::Validate;
use rotary_wire::{api_error, ApiError, Sensitive};

use super::write::{check_tags, MAX_TAGS};
use super::{Ctx, Outcome, SecretsService};
use crate::policy::{self, PolicyProblem};
use crate::random_password::{self, PasswordSpec};

const PUBLIC_POLICY: &str =
    "This resource policy grants public access to the secret. Remove the wildcard principal or add a condition, or call PutResourcePolicy with BlockPublicPolicy set to false.";

fn malformed(p: PolicyProblem) -> ApiError {
    let PolicyProblem::Malformed(m) = p;
    ApiError::new(rotary_wire::ErrorCode::MalformedPolicyDocumentException, m)
}

impl SecretsService {
    /// TagResource: adds tags, overwriting values of existing keys.
    pub async fn tag_resource(
        &self,
        _cx: &Ctx,
        req: TagResourceRequest,
    ) -> Result<EmptyResponse, ApiError> {
        req.check()?;
        let new = check_tags(req.tags.as_deref().unwrap_or_default())?;
        let id = req.secret_id.as_deref().unwrap_or_default();
        self.mutate_live(id, None, |secret, _| {
            let tags = secret.doc.tags.get_or_insert_with(Vec::new);
            for (k, v) in &new {
                match tags.iter_mut().find(|(tk, _)| tk == k) {
                    Some(t) => t.1 = v.clone(),
                    None => tags.push((k.clone(), v.clone())),
                }
            }
            if tags.len() > MAX_TAGS {
                return Err(api_error!(
                    InvalidParameterException,
                    "A secret can have at most 50 tags."
                ));
            }
            Ok(Outcome::Changed(EmptyResponse {}, Some(self.now())))
        })
        .await
    }

    /// UntagResource: removes tag keys; absent keys are ignored.
    pub async fn untag_resource(
        &self,
        _cx: &Ctx,
        req: UntagResourceRequest,
    ) -> Result<EmptyResponse, ApiError> {
        req.check()?;
        let keys = req.tag_keys.clone().unwrap_or_default();
        let id = req.secret_id.as_deref().unwrap_or_default();
        self.mutate_live(id, None, |secret, _| {
            // Removing the last tag leaves `[]`, which DescribeSecret reports as `Tags: []`.
            let tags = secret.doc.tags.get_or_insert_with(Vec::new);
            tags.retain(|(k, _)| !keys.contains(k));
            Ok(Outcome::Changed(EmptyResponse {}, Some(self.now())))
        })
        .await
    }

    /// PutResourcePolicy: validates and stores the policy (enforcement comes with access
    /// control).
    pub async fn put_resource_policy(
        &self,
        _cx: &Ctx,
        req: PutResourcePolicyRequest,
    ) -> Result<ArnNameResponse, ApiError> {
        req.check()?;
        let text = req.resource_policy.clone().unwrap_or_default();
        let report = policy::check(&text).map_err(malformed)?;
        if req.block_public_policy.unwrap_or(false) && report.grants_public_access {
            return Err(api_error!(PublicPolicyException, "{}", PUBLIC_POLICY));
        }
        let id = req.secret_id.as_deref().unwrap_or_default();
        self.mutate_live(id, None, |secret, _| {
            secret.doc.policy = Some(text.clone());
            Ok(Outcome::Changed(secret.arn_name(), Some(self.now())))
        })
        .await
    }

    /// GetResourcePolicy.
    pub async fn get_resource_policy(
        &self,
        _cx: &Ctx,
        req: SecretIdRequest,
    ) -> Result<GetResourcePolicyResponse, ApiError> {
        req.check()?;
        let secret = self
            .resolve_live(req.secret_id.as_deref().unwrap_or_default())
            .await?;
        Ok(GetResourcePolicyResponse {
            arn: Some(secret.row.arn.clone()),
            name: Some(secret.row.name.clone()),
            resource_policy: secret.doc.policy.clone(),
        })
    }

    /// DeleteResourcePolicy (idempotent).
    pub async fn delete_resource_policy(
        &self,
        _cx: &Ctx,
        req: SecretIdRequest,
    ) -> Result<ArnNameResponse, ApiError> {
        req.check()?;
        let id = req.secret_id.as_deref().unwrap_or_default();
        self.mutate_live(id, None, |secret, _| {
            let resp = secret.arn_name();
            if secret.doc.policy.take().is_none() {
                return Ok(Outcome::Unchanged(resp));
            }
            Ok(Outcome::Changed(resp, Some(self.now())))
        })
        .await
    }

    /// ValidateResourcePolicy: malformed JSON is an error; grammar and broad-access problems
    /// are reported in `ValidationErrors`.
    pub async fn validate_resource_policy(
        &self,
        _cx: &Ctx,
        req: ValidateResourcePolicyRequest,
    ) -> Result<ValidateResourcePolicyResponse, ApiError> {
        req.check()?;
        if let Some(id) = req.secret_id.as_deref() {
            self.resolve(id).await?;
        }
        let text = req.resource_policy.as_deref().unwrap_or_default();
        if serde_json::from_str::<serde_json::Value>(text).is_err() {
            return Err(api_error!(
                MalformedPolicyDocumentException,
                "This resource policy contains a syntax error: invalid JSON."
            ));
        }
        let mut errors = Vec::new();
        match policy::check(text) {
            Err(PolicyProblem::Malformed(m)) => errors.push(ValidationErrorsEntry {
                check_name: Some("SYNTAX_CHECK".to_owned()),
                error_message: Some(m),
            }),
            Ok(r) if r.grants_public_access => errors.push(ValidationErrorsEntry {
                check_name: Some("BROAD_ACCESS_CHECK".to_owned()),
                error_message: Some(PUBLIC_POLICY.to_owned()),
            }),
            Ok(_) => {}
        }
        Ok(ValidateResourcePolicyResponse {
            policy_validation_passed: Some(errors.is_empty()),
            validation_errors: Some(errors),
        })
    }

    /// GetRandomPassword.
    pub async fn get_random_password(
        &self,
        _cx: &Ctx,
        req: GetRandomPasswordRequest,
    ) -> Result<GetRandomPasswordResponse, ApiError> {
        req.check()?;
        let spec = PasswordSpec {
            length: req.password_length.unwrap_or(32) as usize,
            exclude_characters: req.exclude_characters.clone().unwrap_or_default(),
            exclude_numbers: req.exclude_numbers.unwrap_or(false),
            exclude_punctuation: req.exclude_punctuation.unwrap_or(false),
            exclude_uppercase: req.exclude_uppercase.unwrap_or(false),
            exclude_lowercase: req.exclude_lowercase.unwrap_or(false),
            include_space: req.include_space.unwrap_or(false),
            require_each_included_type: req.require_each_included_type.unwrap_or(true),
        };
        let password = random_password::generate(&spec).map_err(|e| {
            ApiError::new(
                rotary_wire::ErrorCode::InvalidParameterException,
                e.to_string(),
            )
        })?;
        Ok(GetRandomPasswordResponse {
            random_password: Some(Sensitive::new(password.to_string())),
        })
    }
}
