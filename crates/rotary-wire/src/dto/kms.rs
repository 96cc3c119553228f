//! Rotary's KMS key operations (`rotary.CreateKey`, `rotary.ListKeys`, `rotary.DescribeKey`,
//! `rotary.RotateKey`), with AWS KMS's member names where KMS has them. No shape carries key
//! material.

use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use crate::timestamp::Timestamp;
use crate::validate::{Validate, Violations};

/// A KMS key operation of Rotary's API (`X-Amz-Target: rotary.<Name>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KmsOperation {
    /// A new key, with an optional alias.
    CreateKey,
    /// Every key.
    ListKeys,
    /// One key.
    DescribeKey,
    /// A new key-material version.
    RotateKey,
}

impl KmsOperation {
    /// Every operation.
    pub const ALL: [KmsOperation; 4] = [
        KmsOperation::CreateKey,
        KmsOperation::ListKeys,
        KmsOperation::DescribeKey,
        KmsOperation::RotateKey,
    ];

    /// The operation's name (the target without `rotary.`; the action is `rotary:<name>`).
    pub fn name(self) -> &'static str {
        match self {
            KmsOperation::CreateKey => "CreateKey",
            KmsOperation::ListKeys => "ListKeys",
            KmsOperation::DescribeKey => "DescribeKey",
            KmsOperation::RotateKey => "RotateKey",
        }
    }

    /// The operation of a name (without the prefix).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.name() == name)
    }

    /// The `X-Amz-Target` of the operation (`rotary.RotateKey`).
    pub fn target(self) -> String {
        format!("rotary.{}", self.name())
    }
}

/// `CreateKeyRequest`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateKeyRequest {
    /// What the key is for (0..8192 characters, as KMS).
    pub description: Option<String>,
    /// An alias for the key: `alias/NAME` or `NAME` (letters, digits, `/_-`).
    pub alias: Option<String>,
}

impl Validate for CreateKeyRequest {
    fn validate(&self, v: &mut Violations) {
        v.len("description", self.description.as_deref(), 0, 8192);
        v.len("alias", self.alias.as_deref(), 1, 256);
    }
}

/// `ListKeysRequest` (no members: every key is listed).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListKeysRequest {}

impl Validate for ListKeysRequest {
    fn validate(&self, _v: &mut Violations) {}
}

/// `DescribeKeyRequest` and `RotateKeyRequest`: a key by id, key ARN, alias name or alias ARN.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyIdRequest {
    /// The key.
    pub key_id: Option<String>,
}

impl Validate for KeyIdRequest {
    fn validate(&self, v: &mut Violations) {
        v.required("keyId", &self.key_id);
        v.len("keyId", self.key_id.as_deref(), 1, 2048);
    }
}

/// One key-material version of a key (its material is never shown).
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyVersionEntry {
    /// 1 for the first; each rotation adds the next number.
    pub version: u32,
    /// When the version was made, when known.
    pub creation_date: Option<Timestamp>,
}

/// `KeyMetadata`: what Rotary knows about a key.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyMetadata {
    /// The key id (UUID form).
    pub key_id: String,
    /// `arn:aws:kms:<region>:<account>:key/<id>`.
    pub arn: String,
    /// Alias names (`alias/NAME`) that resolve to the key.
    pub aliases: Vec<String>,
    /// Description given at creation.
    pub description: Option<String>,
    /// Creation time, when known (keys created before keys had ids don't record it).
    pub creation_date: Option<Timestamp>,
    /// `AWS` for the default key `alias/aws/secretsmanager`, `CUSTOMER` for others.
    pub key_manager: String,
    /// Always `Enabled`.
    pub key_state: String,
    /// The version new values are sealed under.
    pub current_key_version: u32,
    /// Every version, oldest first; all of them open the values they sealed.
    pub key_versions: Vec<KeyVersionEntry>,
}

/// Response of CreateKey, DescribeKey and RotateKey.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyMetadataResponse {
    /// The key.
    pub key_metadata: KeyMetadata,
}

/// `ListKeysResponse`.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListKeysResponse {
    /// Every key, by alias then id.
    pub keys: Vec<KeyMetadata>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_and_requests_round_trip() {
        for op in KmsOperation::ALL {
            assert_eq!(KmsOperation::from_name(op.name()), Some(op));
            assert_eq!(op.target(), format!("rotary.{}", op.name()));
        }
        assert_eq!(KmsOperation::from_name("CreateFunction"), None);
        let req = CreateKeyRequest {
            description: None,
            alias: Some("alias/team".into()),
        };
        assert_eq!(
            serde_json::to_string(&req).unwrap(),
            r#"{"Alias":"alias/team"}"#
        );
        let req = KeyIdRequest {
            key_id: Some("k".into()),
        };
        let json = serde_json::to_string(&req).unwrap();
        assert_eq!(json, r#"{"KeyId":"k"}"#);
        let back: KeyIdRequest = serde_json::from_str(&json).unwrap();
        assert_eq!(back.key_id.as_deref(), Some("k"));
    }
}
