//! Cross-region replication as the domain sees it: what a secret's document says about its
//! replicas (on a primary) or its primary (on a replica), the snapshot a primary sends to a
//! replica region, and the status of each replica.
//!
//! A primary's row carries `replication_due_ms`, set by every write that changes a secret
//! with replicas in the same transaction: the row is the durable outbox. The shipper (in
//! `rotary-server`) sends a full snapshot of the secret to each replica region and clears
//! the mark only if the secret has not changed since it read it. A snapshot carries the
//! primary's revision; a replica applies only a revision newer than the one it holds, so
//! snapshots sent twice or out of order change nothing, and a replica that was down catches
//! up with one snapshot that holds every version.

use rotary_crypto::SecretBytes;
use serde::{Deserialize, Serialize};

use crate::rotation::RotationConfig;

/// Replication state in a secret's document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replication {
    /// On a replica: the region of its primary. A replica is read-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_region: Option<String>,
    /// On a replica: the primary's revision it holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_revision: Option<i64>,
    /// On a primary: the regions it is replicated to, in the order they were added.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<Replica>,
    /// On a primary: regions removed from replication whose replica is still to be deleted
    /// there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removing: Vec<String>,
}

impl Replication {
    /// Whether the document is a replica's.
    pub fn is_replica(&self) -> bool {
        self.primary_region.is_some()
    }

    /// Whether a primary has anything to send (replicas to update or to delete).
    pub fn has_work(&self) -> bool {
        !self.replicas.is_empty() || !self.removing.is_empty()
    }
}

/// One replica region of a primary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replica {
    /// The region.
    pub region: String,
    /// The KMS key the replica's values are sealed under there; `None` for its default key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    /// Replace a secret of the same name that is not this secret's replica
    /// (`ForceOverwriteReplicaSecret`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force_overwrite: bool,
}

/// The last outcome of sending a secret to one replica region, kept in the store (server
/// value `replication-status:<uid>`) so that every node reports the same status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaOutcome {
    /// The primary's revision that was sent.
    pub revision: i64,
    /// Whether the replica region applied it.
    pub ok: bool,
    /// Why it failed (no secret value in it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When (ms).
    pub at_ms: i64,
    /// The replica's LastAccessedDate as the region reported it with this outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_accessed_ms: Option<i64>,
}

/// The server-value key of a secret's replica outcomes.
pub fn status_key(uid: &str) -> String {
    format!("replication-status:{uid}")
}

/// A version in a [`Snapshot`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SnapshotVersion {
    /// Version id.
    pub version_id: String,
    /// Creation order.
    pub seq: i64,
    /// Creation time (ms).
    pub created_ms: i64,
    /// Staging labels.
    pub stages: Vec<String>,
    /// The value sealed for the trip (see `rotary-server`'s replication transport); `None`
    /// for a rotation placeholder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// The whole state of a primary secret as a replica region receives it
/// (`rotary.ApplyReplica`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Snapshot {
    /// The secret's name (the same in every region).
    pub name: String,
    /// The primary's ARN; the replica's is the same in its own region.
    pub primary_arn: String,
    /// The primary's region.
    pub primary_region: String,
    /// The primary's revision this snapshot shows.
    pub revision: i64,
    /// Creation time (ms).
    pub created_ms: i64,
    /// Last change (ms).
    pub last_changed_ms: i64,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<(String, String)>>,
    /// Resource policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// Partner type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_type: Option<String>,
    /// Rotation configuration (shown by the replica; rotation runs only in the primary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<RotationConfig>,
    /// The KMS key in the replica region; `None` for its default key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    /// Replace a secret of the same name that is not this secret's replica.
    #[serde(default)]
    pub force_overwrite: bool,
    /// Every version, oldest first.
    pub versions: Vec<SnapshotVersion>,
}

/// A snapshot read from the primary's store, values opened (framed plaintext, zeroized on
/// drop), for the shipper to seal for each replica region.
pub struct Export {
    /// The secret's internal id.
    pub uid: String,
    /// The revision read.
    pub revision: i64,
    /// The snapshot without values and without the per-region `kms_key_id` and
    /// `force_overwrite`.
    pub snapshot: Snapshot,
    /// Each version's framed plaintext, by the snapshot's version order.
    pub values: Vec<Option<SecretBytes>>,
    /// Regions to send the snapshot to.
    pub replicas: Vec<Replica>,
    /// Regions whose replica is to be deleted.
    pub removing: Vec<String>,
}

/// The replica ARN of a primary ARN: the same ARN in `region` and `account`.
pub fn replica_arn(primary_arn: &str, region: &str, account: &str) -> Option<String> {
    let parts: Vec<&str> = primary_arn.splitn(6, ':').collect();
    let [arn, partition, service, _, _, rest] = parts.as_slice() else {
        return None;
    };
    (*arn == "arn" && *service == "secretsmanager")
        .then(|| format!("{arn}:{partition}:{service}:{region}:{account}:{rest}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_arn_swaps_region_and_account_only() {
        assert_eq!(
            replica_arn(
                "arn:aws:secretsmanager:us-east-1:000000000000:secret:db/prod-AbC123",
                "eu-west-1",
                "111111111111"
            )
            .as_deref(),
            Some("arn:aws:secretsmanager:eu-west-1:111111111111:secret:db/prod-AbC123")
        );
        assert_eq!(
            replica_arn("arn:aws:kms:us-east-1:0:key/x", "a-1", "0"),
            None
        );
        assert_eq!(replica_arn("not an arn", "a-1", "0"), None);
    }

    #[test]
    fn a_document_without_replication_loads() {
        let r: Replication = serde_json::from_str("{}").unwrap();
        assert!(!r.is_replica() && !r.has_work());
    }
}
