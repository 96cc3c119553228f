use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use super::shared::{
    is_region_name, validate_filters, validate_replica_regions, validate_tags, Filter,
    ReplicaRegionType, ReplicationStatusType, Tag, REGION_PATTERN,
};
use crate::sensitive::{Blob, Sensitive};
use crate::timestamp::Timestamp;
use crate::validate::{Validate, Violations};

/// Largest secret value: 65,536 bytes (UTF-8 bytes for strings, decoded bytes for binaries).
pub const MAX_SECRET_BYTES: usize = 65_536;

fn secret_id(v: &mut Violations, id: &Option<String>) {
    v.required("secretId", id);
    v.len("secretId", id.as_deref(), 1, 2048);
}

fn value(v: &mut Violations, s: &Option<Sensitive>, b: &Option<Blob>) {
    v.len_sensitive(
        "secretString",
        s.as_ref().map(|s| s.expose().len()),
        1,
        MAX_SECRET_BYTES,
    );
    v.len_sensitive(
        "secretBinary",
        b.as_ref().map(|b| b.expose().len()),
        1,
        MAX_SECRET_BYTES,
    );
}

fn token(v: &mut Violations, path: &str, t: Option<&str>) {
    v.len(path, t, 32, 64);
}

/// A request that names only a secret (DescribeSecret, RestoreSecret, Get/DeleteResourcePolicy).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SecretIdRequest {
    /// Name, ARN or partial ARN.
    pub secret_id: Option<String>,
}

impl Validate for SecretIdRequest {
    fn validate(&self, v: &mut Violations) {
        secret_id(v, &self.secret_id);
    }
}

/// A response of just `ARN` and `Name`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ArnNameResponse {
    /// ARN.
    #[serde(rename = "ARN")]
    pub arn: Option<String>,
    /// Name.
    pub name: Option<String>,
}

/// An empty response body `{}`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EmptyResponse {}

/// `CreateSecretRequest`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateSecretRequest {
    /// Name.
    pub name: Option<String>,
    /// Idempotency token and id of the first version.
    pub client_request_token: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// KMS key.
    pub kms_key_id: Option<String>,
    /// Binary value.
    pub secret_binary: Option<Blob>,
    /// String value.
    pub secret_string: Option<Sensitive>,
    /// Tags.
    pub tags: Option<Vec<Tag>>,
    /// Replicas.
    pub add_replica_regions: Option<Vec<ReplicaRegionType>>,
    /// Overwrite replicas.
    pub force_overwrite_replica_secret: Option<bool>,
    /// Partner type of a managed external secret.
    #[serde(rename = "Type")]
    pub secret_type: Option<String>,
}

impl Validate for CreateSecretRequest {
    fn validate(&self, v: &mut Violations) {
        v.required("name", &self.name);
        v.len("name", self.name.as_deref(), 1, 512);
        token(
            v,
            "clientRequestToken",
            self.client_request_token.as_deref(),
        );
        v.len("description", self.description.as_deref(), 0, 2048);
        v.len("kmsKeyId", self.kms_key_id.as_deref(), 0, 2048);
        value(v, &self.secret_string, &self.secret_binary);
        validate_tags(v, "tags", self.tags.as_deref());
        v.len("type", self.secret_type.as_deref(), 0, 256);
        if self.add_replica_regions.is_some() {
            validate_replica_regions(v, "addReplicaRegions", self.add_replica_regions.as_deref());
        }
    }
}

/// `CreateSecretResponse`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateSecretResponse {
    /// ARN.
    #[serde(rename = "ARN")]
    pub arn: Option<String>,
    /// Name.
    pub name: Option<String>,
    /// The first version, when a value was given.
    pub version_id: Option<String>,
    /// Replication status.
    pub replication_status: Option<Vec<ReplicationStatusType>>,
}

/// `GetSecretValueRequest`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetSecretValueRequest {
    /// Secret id.
    pub secret_id: Option<String>,
    /// Version id.
    pub version_id: Option<String>,
    /// Staging label.
    pub version_stage: Option<String>,
}

impl Validate for GetSecretValueRequest {
    fn validate(&self, v: &mut Violations) {
        secret_id(v, &self.secret_id);
        v.len("versionId", self.version_id.as_deref(), 32, 64);
        v.len("versionStage", self.version_stage.as_deref(), 1, 256);
    }
}

/// `GetSecretValueResponse`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetSecretValueResponse {
    /// ARN.
    #[serde(rename = "ARN")]
    pub arn: Option<String>,
    /// Name.
    pub name: Option<String>,
    /// Version id.
    pub version_id: Option<String>,
    /// Binary value.
    pub secret_binary: Option<Blob>,
    /// String value.
    pub secret_string: Option<Sensitive>,
    /// Labels on the version, sorted.
    pub version_stages: Option<Vec<String>>,
    /// When the version was created.
    pub created_date: Option<Timestamp>,
}

impl GetSecretValueResponse {
    /// The answer's JSON, as serde would write it but without its per-byte escaping (the hot
    /// read writes one for every request; see [`crate::json`]).
    pub fn to_json(&self) -> Vec<u8> {
        let value_len = self.secret_string.as_ref().map_or(0, |s| s.expose().len())
            + self
                .secret_binary
                .as_ref()
                .map_or(0, |b| b.expose().len() * 4 / 3 + 4);
        let mut out = Vec::with_capacity(256 + value_len);
        let mut o = crate::json::Object::new(&mut out);
        o.opt_str("ARN", self.arn.as_deref());
        o.opt_str("Name", self.name.as_deref());
        o.opt_str("VersionId", self.version_id.as_deref());
        if let Some(b) = &self.secret_binary {
            b.write_json(o.key("SecretBinary"));
        }
        o.opt_str(
            "SecretString",
            self.secret_string.as_ref().map(Sensitive::expose),
        );
        if let Some(stages) = &self.version_stages {
            o.str_array("VersionStages", stages.iter().map(String::as_str));
        }
        if let Some(t) = &self.created_date {
            // A number: serde's own (integer or shortest float) form, no string to escape.
            let _ = o.serde("CreatedDate", t);
        }
        o.finish();
        out
    }
}

/// `SecretValueEntry` of BatchGetSecretValue.
pub type SecretValueEntry = GetSecretValueResponse;

/// `BatchGetSecretValueRequest`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BatchGetSecretValueRequest {
    /// Ids to read.
    pub secret_id_list: Option<Vec<String>>,
    /// Or filters.
    pub filters: Option<Vec<Filter>>,
    /// Page size with filters.
    pub max_results: Option<i64>,
    /// Continuation.
    pub next_token: Option<String>,
}

impl Validate for BatchGetSecretValueRequest {
    fn validate(&self, v: &mut Violations) {
        if let Some(ids) = &self.secret_id_list {
            v.list_len("secretIdList", Some(ids), 1, 20);
            for (i, id) in ids.iter().enumerate() {
                v.len(&format!("secretIdList.{}.member", i + 1), Some(id), 1, 2048);
            }
        }
        validate_filters(v, self.filters.as_deref());
        v.range("maxResults", self.max_results, 1, 20);
        v.len("nextToken", self.next_token.as_deref(), 1, 4096);
    }
}

/// `APIErrorType` of BatchGetSecretValue.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ApiErrorType {
    /// The id as given.
    pub secret_id: Option<String>,
    /// Error code.
    pub error_code: Option<String>,
    /// Error message.
    pub message: Option<String>,
}

/// `BatchGetSecretValueResponse`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct BatchGetSecretValueResponse {
    /// Values read.
    pub secret_values: Option<Vec<SecretValueEntry>>,
    /// Continuation.
    pub next_token: Option<String>,
    /// Per-secret failures.
    pub errors: Option<Vec<ApiErrorType>>,
}

/// `PutSecretValueRequest`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutSecretValueRequest {
    /// Secret id.
    pub secret_id: Option<String>,
    /// Idempotency token and new version id.
    pub client_request_token: Option<String>,
    /// Binary value.
    pub secret_binary: Option<Blob>,
    /// String value.
    pub secret_string: Option<Sensitive>,
    /// Labels for the new version.
    pub version_stages: Option<Vec<String>>,
    /// Token of the rotation this write belongs to.
    pub rotation_token: Option<Sensitive>,
}

impl Validate for PutSecretValueRequest {
    fn validate(&self, v: &mut Violations) {
        secret_id(v, &self.secret_id);
        token(
            v,
            "clientRequestToken",
            self.client_request_token.as_deref(),
        );
        value(v, &self.secret_string, &self.secret_binary);
        if let Some(stages) = &self.version_stages {
            v.list_len("versionStages", Some(stages), 1, 20);
            for (i, s) in stages.iter().enumerate() {
                v.len(&format!("versionStages.{}.member", i + 1), Some(s), 1, 256);
            }
        }
        v.len_sensitive(
            "rotationToken",
            self.rotation_token
                .as_ref()
                .map(|t| t.expose().chars().count()),
            36,
            256,
        );
    }
}

/// `PutSecretValueResponse`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutSecretValueResponse {
    /// ARN.
    #[serde(rename = "ARN")]
    pub arn: Option<String>,
    /// Name.
    pub name: Option<String>,
    /// Version id.
    pub version_id: Option<String>,
    /// Labels now on the version.
    pub version_stages: Option<Vec<String>>,
}

/// `UpdateSecretRequest`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateSecretRequest {
    /// Secret id.
    pub secret_id: Option<String>,
    /// Idempotency token.
    pub client_request_token: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// KMS key.
    pub kms_key_id: Option<String>,
    /// Binary value.
    pub secret_binary: Option<Blob>,
    /// String value.
    pub secret_string: Option<Sensitive>,
    /// Partner type.
    #[serde(rename = "Type")]
    pub secret_type: Option<String>,
}

impl Validate for UpdateSecretRequest {
    fn validate(&self, v: &mut Violations) {
        secret_id(v, &self.secret_id);
        token(
            v,
            "clientRequestToken",
            self.client_request_token.as_deref(),
        );
        v.len("description", self.description.as_deref(), 0, 2048);
        v.len("kmsKeyId", self.kms_key_id.as_deref(), 0, 2048);
        value(v, &self.secret_string, &self.secret_binary);
        v.len("type", self.secret_type.as_deref(), 0, 256);
    }
}

/// `UpdateSecretResponse`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateSecretResponse {
    /// ARN.
    #[serde(rename = "ARN")]
    pub arn: Option<String>,
    /// Name.
    pub name: Option<String>,
    /// New version, when a value was given.
    pub version_id: Option<String>,
}

/// `UpdateSecretVersionStageRequest`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateSecretVersionStageRequest {
    /// Secret id.
    pub secret_id: Option<String>,
    /// The label to move.
    pub version_stage: Option<String>,
    /// Version the label is on now.
    pub remove_from_version_id: Option<String>,
    /// Version to put it on.
    pub move_to_version_id: Option<String>,
}

impl Validate for UpdateSecretVersionStageRequest {
    fn validate(&self, v: &mut Violations) {
        secret_id(v, &self.secret_id);
        v.required("versionStage", &self.version_stage);
        v.len("versionStage", self.version_stage.as_deref(), 1, 256);
        v.len(
            "removeFromVersionId",
            self.remove_from_version_id.as_deref(),
            32,
            64,
        );
        v.len(
            "moveToVersionId",
            self.move_to_version_id.as_deref(),
            32,
            64,
        );
    }
}

/// `RotationRulesType`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RotationRulesType {
    /// Days between rotations.
    pub automatically_after_days: Option<i64>,
    /// Window length, `<n>h`.
    pub duration: Option<String>,
    /// `rate(...)` or `cron(...)`.
    pub schedule_expression: Option<String>,
}

/// `DescribeSecretResponse`; also the body of `SecretListEntry`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeSecretResponse {
    /// ARN.
    #[serde(rename = "ARN")]
    pub arn: Option<String>,
    /// Name.
    pub name: Option<String>,
    /// Partner type.
    #[serde(rename = "Type")]
    pub secret_type: Option<String>,
    /// Description, when non-empty.
    pub description: Option<String>,
    /// KMS key, when not the default.
    pub kms_key_id: Option<String>,
    /// Rotation on/off, once configured.
    pub rotation_enabled: Option<bool>,
    /// Rotation function.
    #[serde(rename = "RotationLambdaARN")]
    pub rotation_lambda_arn: Option<String>,
    /// Rotation schedule.
    pub rotation_rules: Option<RotationRulesType>,
    /// Last successful rotation.
    pub last_rotated_date: Option<Timestamp>,
    /// Last change of any kind.
    pub last_changed_date: Option<Timestamp>,
    /// Day of the last read.
    pub last_accessed_date: Option<Timestamp>,
    /// Scheduled deletion time.
    pub deleted_date: Option<Timestamp>,
    /// End of the next rotation window.
    pub next_rotation_date: Option<Timestamp>,
    /// Tags: absent if never tagged, empty after all were removed.
    pub tags: Option<Vec<Tag>>,
    /// Labelled versions (DescribeSecret).
    pub version_ids_to_stages: Option<BTreeMap<String, Vec<String>>>,
    /// Labelled versions (ListSecrets).
    pub secret_versions_to_stages: Option<BTreeMap<String, Vec<String>>>,
    /// Owning service.
    pub owning_service: Option<String>,
    /// Creation time.
    pub created_date: Option<Timestamp>,
    /// Primary region of replicated secrets.
    pub primary_region: Option<String>,
    /// Replication status.
    pub replication_status: Option<Vec<ReplicationStatusType>>,
}

/// `SecretListEntry`.
pub type SecretListEntry = DescribeSecretResponse;

/// `ListSecretsRequest`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListSecretsRequest {
    /// Include secrets scheduled for deletion.
    pub include_planned_deletion: Option<bool>,
    /// Page size.
    pub max_results: Option<i64>,
    /// Continuation.
    pub next_token: Option<String>,
    /// Filters (AND).
    pub filters: Option<Vec<Filter>>,
    /// `asc` or `desc`.
    pub sort_order: Option<String>,
    /// Sort key.
    pub sort_by: Option<String>,
}

/// Sort orders.
pub const SORT_ORDERS: [&str; 2] = ["asc", "desc"];
/// Sort keys.
pub const SORT_BYS: [&str; 4] = [
    "created-date",
    "last-accessed-date",
    "last-changed-date",
    "name",
];

impl Validate for ListSecretsRequest {
    fn validate(&self, v: &mut Violations) {
        v.range("maxResults", self.max_results, 1, 100);
        v.len("nextToken", self.next_token.as_deref(), 1, 4096);
        validate_filters(v, self.filters.as_deref());
        v.one_of("sortOrder", self.sort_order.as_deref(), &SORT_ORDERS);
        v.one_of("sortBy", self.sort_by.as_deref(), &SORT_BYS);
    }
}

/// `ListSecretsResponse`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListSecretsResponse {
    /// Page of secrets.
    pub secret_list: Option<Vec<SecretListEntry>>,
    /// Continuation.
    pub next_token: Option<String>,
}

/// `ListSecretVersionIdsRequest`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListSecretVersionIdsRequest {
    /// Secret id.
    pub secret_id: Option<String>,
    /// Page size.
    pub max_results: Option<i64>,
    /// Continuation.
    pub next_token: Option<String>,
    /// Include unlabelled versions.
    pub include_deprecated: Option<bool>,
}

impl Validate for ListSecretVersionIdsRequest {
    fn validate(&self, v: &mut Violations) {
        secret_id(v, &self.secret_id);
        v.range("maxResults", self.max_results, 1, 100);
        v.len("nextToken", self.next_token.as_deref(), 1, 4096);
    }
}

/// `SecretVersionsListEntry`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SecretVersionsListEntry {
    /// Version id.
    pub version_id: Option<String>,
    /// Labels; absent on deprecated versions.
    pub version_stages: Option<Vec<String>>,
    /// Day of the last read.
    pub last_accessed_date: Option<Timestamp>,
    /// Creation time.
    pub created_date: Option<Timestamp>,
    /// Keys that encrypt the version.
    pub kms_key_ids: Option<Vec<String>>,
}

/// `ListSecretVersionIdsResponse`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListSecretVersionIdsResponse {
    /// Page of versions.
    pub versions: Option<Vec<SecretVersionsListEntry>>,
    /// Continuation.
    pub next_token: Option<String>,
    /// ARN.
    #[serde(rename = "ARN")]
    pub arn: Option<String>,
    /// Name.
    pub name: Option<String>,
}

/// `DeleteSecretRequest`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteSecretRequest {
    /// Secret id.
    pub secret_id: Option<String>,
    /// 7..=30 days, default 30.
    pub recovery_window_in_days: Option<i64>,
    /// Delete now.
    pub force_delete_without_recovery: Option<bool>,
}

impl Validate for DeleteSecretRequest {
    fn validate(&self, v: &mut Violations) {
        secret_id(v, &self.secret_id);
    }
}

/// `DeleteSecretResponse`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteSecretResponse {
    /// ARN.
    #[serde(rename = "ARN")]
    pub arn: Option<String>,
    /// Name.
    pub name: Option<String>,
    /// When the secret will be (or was) deleted.
    pub deletion_date: Option<Timestamp>,
}

/// `TagResourceRequest`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagResourceRequest {
    /// Secret id.
    pub secret_id: Option<String>,
    /// Tags to add or overwrite.
    pub tags: Option<Vec<Tag>>,
}

impl Validate for TagResourceRequest {
    fn validate(&self, v: &mut Violations) {
        secret_id(v, &self.secret_id);
        v.required("tags", &self.tags);
        validate_tags(v, "tags", self.tags.as_deref());
    }
}

/// `UntagResourceRequest`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UntagResourceRequest {
    /// Secret id.
    pub secret_id: Option<String>,
    /// Keys to remove.
    pub tag_keys: Option<Vec<String>>,
}

impl Validate for UntagResourceRequest {
    fn validate(&self, v: &mut Violations) {
        secret_id(v, &self.secret_id);
        v.required("tagKeys", &self.tag_keys);
        if let Some(keys) = &self.tag_keys {
            for (i, k) in keys.iter().enumerate() {
                v.len(&format!("tagKeys.{}.member", i + 1), Some(k), 1, 128);
            }
        }
    }
}

/// `ReplicateSecretToRegionsRequest`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReplicateSecretToRegionsRequest {
    /// Secret id (of the primary).
    pub secret_id: Option<String>,
    /// Regions to replicate to.
    pub add_replica_regions: Option<Vec<ReplicaRegionType>>,
    /// Overwrite a secret of the same name in a replica region.
    pub force_overwrite_replica_secret: Option<bool>,
}

impl Validate for ReplicateSecretToRegionsRequest {
    fn validate(&self, v: &mut Violations) {
        secret_id(v, &self.secret_id);
        v.required("addReplicaRegions", &self.add_replica_regions);
        validate_replica_regions(v, "addReplicaRegions", self.add_replica_regions.as_deref());
    }
}

/// `RemoveRegionsFromReplicationRequest`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RemoveRegionsFromReplicationRequest {
    /// Secret id (of the primary).
    pub secret_id: Option<String>,
    /// Regions whose replicas are deleted.
    pub remove_replica_regions: Option<Vec<String>>,
}

impl Validate for RemoveRegionsFromReplicationRequest {
    fn validate(&self, v: &mut Violations) {
        secret_id(v, &self.secret_id);
        v.required("removeReplicaRegions", &self.remove_replica_regions);
        v.list_len(
            "removeReplicaRegions",
            self.remove_replica_regions.as_deref(),
            1,
            usize::MAX,
        );
        for (i, r) in self
            .remove_replica_regions
            .as_deref()
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let path = format!("removeReplicaRegions.{}.member", i + 1);
            v.len(&path, Some(r), 1, 128);
            v.pattern(&path, Some(r), is_region_name(r), REGION_PATTERN);
        }
    }
}

/// The response of ReplicateSecretToRegions and RemoveRegionsFromReplication.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReplicationResponse {
    /// ARN of the primary.
    #[serde(rename = "ARN")]
    pub arn: Option<String>,
    /// Every replica's status after the change.
    pub replication_status: Option<Vec<ReplicationStatusType>>,
}

/// `StopReplicationToReplicaResponse`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct StopReplicationToReplicaResponse {
    /// ARN of the promoted secret.
    #[serde(rename = "ARN")]
    pub arn: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_secret_value_json_is_what_serde_writes() {
        let full = GetSecretValueResponse {
            arn: Some("arn:aws:secretsmanager:us-east-1:000000000000:secret:db-AbCdEf".into()),
            name: Some("db/\"quoted\"\\name\n".into()),
            version_id: Some("6b9f6b4e-8c4a-4f7e-9a53-3f1c2d4e5f60".into()),
            secret_binary: None,
            secret_string: Some(Sensitive::new(
                "{\"username\":\"app\",\"password\":\"p\\u0001\u{1}é€\"}".into(),
            )),
            version_stages: Some(vec!["AWSCURRENT".into(), "custom\t".into()]),
            created_date: Some(Timestamp(1_523_477_145_713)),
        };
        let mut cases = vec![full.clone(), GetSecretValueResponse::default()];
        cases.push(GetSecretValueResponse {
            created_date: Some(Timestamp(1_523_404_800_000)),
            version_stages: Some(Vec::new()),
            secret_string: Some(Sensitive::new(String::new())),
            ..full.clone()
        });
        for n in 0..6 {
            cases.push(GetSecretValueResponse {
                secret_string: None,
                secret_binary: Some(Blob::new((0..n).map(|i| 250 - i * 61).collect())),
                created_date: Some(Timestamp(-1)),
                ..full.clone()
            });
        }
        for r in &cases {
            assert_eq!(
                String::from_utf8(r.to_json()).unwrap(),
                serde_json::to_string(r).unwrap()
            );
        }
    }
}
