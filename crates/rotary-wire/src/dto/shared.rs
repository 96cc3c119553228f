use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use crate::validate::Violations;

/// `Tag`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    /// Tag key.
    pub key: Option<String>,
    /// Tag value.
    pub value: Option<String>,
}

/// `Filter` of ListSecrets and BatchGetSecretValue.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Filter {
    /// Filter key.
    pub key: Option<String>,
    /// Filter values.
    pub values: Option<Vec<String>>,
}

/// `ReplicaRegionType`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReplicaRegionType {
    /// Region.
    pub region: Option<String>,
    /// KMS key.
    pub kms_key_id: Option<String>,
}

/// `ReplicationStatusType`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReplicationStatusType {
    /// Region.
    pub region: Option<String>,
    /// KMS key.
    pub kms_key_id: Option<String>,
    /// Status.
    pub status: Option<String>,
    /// Status message.
    pub status_message: Option<String>,
    /// Day of the last read of the replica.
    pub last_accessed_date: Option<crate::timestamp::Timestamp>,
}

/// A region name as the model constrains it (`RegionType`): `^([a-z]+-)+\d+$`, 1..128.
pub fn is_region_name(s: &str) -> bool {
    let Some((head, digits)) = s.rsplit_once('-') else {
        return false;
    };
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && head
            .split('-')
            .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()))
}

/// The model's pattern for a region.
pub const REGION_PATTERN: &str = r"^([a-z]+-)+\d+$";

/// Checks an `AddReplicaRegions` list (`AddReplicaRegionListType`, at least one entry).
pub fn validate_replica_regions(
    v: &mut crate::validate::Violations,
    path: &str,
    regions: Option<&[ReplicaRegionType]>,
) {
    v.list_len(path, regions, 1, usize::MAX);
    for (i, r) in regions.unwrap_or_default().iter().enumerate() {
        let region = format!("{path}.{}.member.region", i + 1);
        v.len(&region, r.region.as_deref(), 1, 128);
        if let Some(name) = r.region.as_deref() {
            v.pattern(&region, Some(name), is_region_name(name), REGION_PATTERN);
        }
        v.len(
            &format!("{path}.{}.member.kmsKeyId", i + 1),
            r.kms_key_id.as_deref(),
            0,
            2048,
        );
    }
}

/// The filter keys AWS accepts.
pub const FILTER_KEYS: [&str; 7] = [
    "description",
    "name",
    "tag-key",
    "tag-value",
    "primary-region",
    "owning-service",
    "all",
];

fn is_filter_value(s: &str) -> bool {
    // ^\!?[a-zA-Z0-9 :_@\/\+\=\.\-\!]*$
    let rest = s.strip_prefix('!').unwrap_or(s);
    rest.chars()
        .all(|c| c.is_ascii_alphanumeric() || " :_@/+=.-!".contains(c))
}

pub(crate) fn validate_tags(v: &mut Violations, path: &str, tags: Option<&[Tag]>) {
    if let Some(tags) = tags {
        for (i, t) in tags.iter().enumerate() {
            v.len(
                &format!("{path}.{}.member.key", i + 1),
                t.key.as_deref(),
                1,
                128,
            );
            v.len(
                &format!("{path}.{}.member.value", i + 1),
                t.value.as_deref(),
                0,
                256,
            );
        }
    }
}

pub(crate) fn validate_filters(v: &mut Violations, filters: Option<&[Filter]>) {
    let Some(filters) = filters else { return };
    v.list_len("filters", Some(filters), 0, 10);
    for (i, f) in filters.iter().enumerate() {
        let n = i + 1;
        v.one_of(
            &format!("filters.{n}.member.key"),
            f.key.as_deref(),
            &FILTER_KEYS,
        );
        if let Some(values) = &f.values {
            v.list_len(&format!("filters.{n}.member.values"), Some(values), 1, 10);
            for (j, val) in values.iter().enumerate() {
                let path = format!("filters.{n}.member.values.{}.member", j + 1);
                v.len(&path, Some(val), 0, 512);
                v.pattern(
                    &path,
                    Some(val),
                    is_filter_value(val),
                    r"^\!?[a-zA-Z0-9 :_@\/\+\=\.\-\!]*$",
                );
            }
        }
    }
}
