//! The domain view of a stored secret and the working copy that operations change.

use std::collections::BTreeMap;

use rotary_store::{SecretRecord, SecretRow, SecretUpdate, VersionRow, VersionWrite};
use rotary_wire::dto::{ArnNameResponse, DescribeSecretResponse, Tag};
use rotary_wire::Timestamp;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::labels::VersionLabels;
use crate::replication::Replication;
use crate::rotation::{describe_rotation, RotationConfig};

/// The KMS key used when a secret names none.
pub const DEFAULT_KMS_KEY: &str = "alias/aws/secretsmanager";
/// How version listings name the default key.
pub const DEFAULT_KMS_KEY_LISTED: &str = "DefaultEncryptionKey";

/// Secret metadata kept as JSON in the store's `doc` column. New fields must be optional
/// so that documents written by older servers still load.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretDoc {
    /// Description; `None` when never set or cleared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// KMS key; `None` for the default key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    /// Tags in insertion order; `None` if never tagged, empty after all were removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<(String, String)>>,
    /// Resource policy JSON text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// Partner type of a managed external secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_type: Option<String>,
    /// Rotation configuration and progress, once RotateSecret configured it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<RotationConfig>,
    /// Cross-region replication: the replicas of a primary, or a replica's primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication: Option<Replication>,
}

impl SecretDoc {
    /// The KMS key that seals new versions.
    pub fn kms_key(&self) -> &str {
        self.kms_key_id.as_deref().unwrap_or(DEFAULT_KMS_KEY)
    }

    /// Whether the secret is a replica of a secret in another region (read-only here).
    pub fn is_replica(&self) -> bool {
        self.replication
            .as_ref()
            .is_some_and(Replication::is_replica)
    }

    /// `PrimaryRegion`: a replica's primary region, or `own` for a primary with replicas;
    /// `None` for a secret that is not replicated.
    pub fn primary_region<'a>(&'a self, own: &'a str) -> Option<&'a str> {
        let r = self.replication.as_ref()?;
        match &r.primary_region {
            Some(p) => Some(p),
            None if !r.replicas.is_empty() => Some(own),
            None => None,
        }
    }

    /// The owning service, from the reserved tag.
    pub fn owning_service(&self) -> Option<&str> {
        self.tags
            .as_ref()?
            .iter()
            .find_map(|(k, v)| (k == "aws:secretsmanager:owningService").then_some(v.as_str()))
    }
}

/// A version in a working copy.
#[derive(Debug, Clone)]
pub struct Version {
    /// Stored metadata (labels may be changed by the operation).
    pub row: VersionRow,
    /// A sealed value to write with this change.
    pub new_ciphertext: Option<Vec<u8>>,
    /// Whether the version is inserted by this change.
    pub is_new: bool,
}

/// A secret loaded for reading or changing.
#[derive(Debug, Clone)]
pub struct Secret {
    /// Stored row.
    pub row: SecretRow,
    /// Parsed metadata.
    pub doc: SecretDoc,
    /// Versions, oldest first.
    pub versions: Vec<Version>,
    original: Vec<VersionRow>,
    deleted_versions: Vec<String>,
}

/// The plaintext of a version as framed before sealing: a kind byte, then the bytes. The
/// kind is inside the ciphertext so it is authenticated with the value.
pub enum Plain<'a> {
    /// `SecretString`.
    Text(&'a str),
    /// `SecretBinary`.
    Binary(&'a [u8]),
}

const KIND_TEXT: u8 = b'S';
const KIND_BINARY: u8 = b'B';

impl Plain<'_> {
    /// Frames the value for sealing.
    pub fn frame(&self) -> Zeroizing<Vec<u8>> {
        let (kind, bytes) = match self {
            Plain::Text(s) => (KIND_TEXT, s.as_bytes()),
            Plain::Binary(b) => (KIND_BINARY, *b),
        };
        let mut out = Zeroizing::new(Vec::with_capacity(bytes.len() + 1));
        out.push(kind);
        out.extend_from_slice(bytes);
        out
    }

    /// Reads a framed value.
    pub fn unframe(framed: &[u8]) -> Option<Plain<'_>> {
        match framed.split_first()? {
            (&KIND_TEXT, rest) => std::str::from_utf8(rest).ok().map(Plain::Text),
            (&KIND_BINARY, rest) => Some(Plain::Binary(rest)),
            _ => None,
        }
    }
}

/// AAD binding a sealed value to its secret and version.
pub fn value_aad(arn: &str, version_id: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(arn.len() + version_id.len() + 1);
    aad.extend_from_slice(arn.as_bytes());
    aad.push(0);
    aad.extend_from_slice(version_id.as_bytes());
    aad
}

impl Secret {
    /// Loads a stored record; an unreadable `doc` is reported as corrupt.
    pub fn from_record(rec: SecretRecord) -> Result<Self, serde_json::Error> {
        let doc = serde_json::from_str(&rec.row.doc)?;
        Ok(Self {
            original: Vec::new(),
            versions: rec
                .versions
                .into_iter()
                .map(|row| Version {
                    row,
                    new_ciphertext: None,
                    is_new: false,
                })
                .collect(),
            row: rec.row,
            doc,
            deleted_versions: Vec::new(),
        })
    }

    /// Starts a change of this working copy: remembers its version rows as they are, so
    /// that [`Self::into_update`] writes only the versions the change touched (without it,
    /// every version is written). Copies kept for reading (the read cache) do not carry
    /// these rows twice.
    pub fn begin_change(&mut self) {
        self.original = self.versions.iter().map(|v| v.row.clone()).collect();
    }

    /// The `ARN` + `Name` response.
    pub fn arn_name(&self) -> ArnNameResponse {
        ArnNameResponse {
            arn: Some(self.row.arn.clone()),
            name: Some(self.row.name.clone()),
        }
    }

    /// Whether the secret is scheduled for deletion.
    pub fn is_deleted(&self) -> bool {
        self.row.deleted_ms.is_some()
    }

    /// Index of the version with this id.
    pub fn version_index(&self, id: &str) -> Option<usize> {
        self.versions.iter().position(|v| v.row.version_id == id)
    }

    /// Index of the version holding `label`.
    pub fn label_holder(&self, label: &str) -> Option<usize> {
        self.versions
            .iter()
            .position(|v| v.row.stages.iter().any(|s| s == label))
    }

    /// Labels of every version, for the pure functions of [`crate::labels`].
    pub fn labels(&self) -> Vec<VersionLabels> {
        self.versions
            .iter()
            .map(|v| VersionLabels {
                id: v.row.version_id.clone(),
                stages: v.row.stages.iter().cloned().collect(),
            })
            .collect()
    }

    /// Writes labels computed by [`crate::labels`] back.
    pub fn set_labels(&mut self, labels: Vec<VersionLabels>) {
        for (v, l) in self.versions.iter_mut().zip(labels) {
            v.row.stages = l.stages.into_iter().collect();
        }
    }

    /// The next version sequence number.
    pub fn next_seq(&self) -> i64 {
        self.versions.iter().map(|v| v.row.seq).max().unwrap_or(0) + 1
    }

    /// Removes a version (pruning).
    pub fn remove_version(&mut self, idx: usize) {
        let v = self.versions.remove(idx);
        if !v.is_new {
            self.deleted_versions.push(v.row.version_id);
        }
    }

    /// The store update for this working copy: bumps the revision, writes new versions,
    /// versions whose labels changed, and filled values.
    pub fn into_update(
        mut self,
        doc_changed_at: Option<i64>,
    ) -> Result<SecretUpdate, serde_json::Error> {
        self.row.doc = serde_json::to_string(&self.doc)?;
        self.row.revision += 1;
        // A change to a primary with replicas makes them stale: the row, written in this
        // same transaction, is the outbox the replication shipper reads.
        self.row.replication_due_ms = self
            .doc
            .replication
            .as_ref()
            .is_some_and(Replication::has_work)
            .then_some(0);
        if let Some(ms) = doc_changed_at {
            self.row.last_changed_ms = ms;
        }
        let original = &self.original;
        let upsert_versions = self
            .versions
            .into_iter()
            .filter(|v| {
                v.is_new
                    || v.new_ciphertext.is_some()
                    || original
                        .iter()
                        .find(|o| o.version_id == v.row.version_id)
                        .is_none_or(|o| o.stages != v.row.stages)
            })
            .map(|v| VersionWrite {
                row: v.row,
                ciphertext: v.new_ciphertext,
            })
            .collect();
        Ok(SecretUpdate {
            row: self.row,
            upsert_versions,
            delete_versions: self.deleted_versions,
            claim: None,
        })
    }

    /// Labelled versions → sorted labels (`VersionIdsToStages`); `None` when there are none.
    pub fn version_stages_map(&self) -> Option<BTreeMap<String, Vec<String>>> {
        let map: BTreeMap<_, _> = self
            .versions
            .iter()
            .filter(|v| !v.row.stages.is_empty())
            .map(|v| (v.row.version_id.clone(), sorted(&v.row.stages)))
            .collect();
        (!map.is_empty()).then_some(map)
    }

    /// The DescribeSecret view (also the body of a ListSecrets entry).
    pub fn describe(&self) -> DescribeSecretResponse {
        let mut out = DescribeSecretResponse {
            arn: Some(self.row.arn.clone()),
            name: Some(self.row.name.clone()),
            secret_type: self.doc.secret_type.clone(),
            description: self.doc.description.clone().filter(|d| !d.is_empty()),
            kms_key_id: self.doc.kms_key_id.clone(),
            last_changed_date: Some(Timestamp(self.row.last_changed_ms)),
            last_accessed_date: self.row.last_accessed_ms.map(Timestamp),
            deleted_date: self.row.deleted_ms.map(Timestamp),
            tags: self.doc.tags.as_ref().map(|t| {
                t.iter()
                    .map(|(k, v)| Tag {
                        key: Some(k.clone()),
                        value: Some(v.clone()),
                    })
                    .collect()
            }),
            version_ids_to_stages: self.version_stages_map(),
            owning_service: self.doc.owning_service().map(str::to_owned),
            created_date: Some(Timestamp(self.row.created_ms)),
            ..Default::default()
        };
        if let Some(r) = &self.doc.rotation {
            describe_rotation(r, &mut out);
        }
        out
    }
}

/// Labels sorted lexicographically, as AWS returns them.
pub fn sorted(stages: &[String]) -> Vec<String> {
    let mut out = stages.to_vec();
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_roundtrip_keeps_kind() {
        let f = Plain::Text("héllo").frame();
        assert!(matches!(Plain::unframe(&f), Some(Plain::Text("héllo"))));
        let f = Plain::Binary(&[0, 1, 2, 0xff]).frame();
        assert!(matches!(
            Plain::unframe(&f),
            Some(Plain::Binary([0, 1, 2, 0xff]))
        ));
        assert!(Plain::unframe(b"").is_none());
        assert!(Plain::unframe(b"X").is_none());
    }

    #[test]
    fn sorted_labels() {
        let s = sorted(&["one".into(), "two".into(), "three".into()]);
        assert_eq!(s, vec!["one", "three", "two"]);
    }
}
