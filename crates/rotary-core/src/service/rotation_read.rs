//! Reads for Rotary's own use: the rotation driver and the built-in rotators.
//!
//! They differ from GetSecretValue in two ways, both on purpose. They never record an access
//! (LastAccessedDate tells an operator whether clients still use a secret; the rotation
//! reading it would make every rotated secret look used). And a value is opened only when
//! asked for, one version at a time, so the driver can look at labels between steps without
//! decrypting anything. See: #13

use rotary_wire::{ApiError, Blob, Sensitive};

use super::{internal, SecretsService};
use crate::secret::Plain;

/// A version's value, opened.
#[derive(Clone)]
pub enum StoredValue {
    /// `SecretString`.
    Text(Sensitive),
    /// `SecretBinary`.
    Binary(Blob),
}

impl StoredValue {
    /// The string value, if it is one.
    pub fn text(&self) -> Option<&str> {
        match self {
            StoredValue::Text(s) => Some(s.expose()),
            StoredValue::Binary(_) => None,
        }
    }
}

/// One version of a secret, without its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionInfo {
    /// The version id.
    pub version_id: String,
    /// Its staging labels.
    pub stages: Vec<String>,
    /// Whether it holds a value (a rotation's placeholder does not, until createSecret).
    pub has_value: bool,
}

impl VersionInfo {
    /// Whether the version carries `stage`.
    pub fn has_stage(&self, stage: &str) -> bool {
        self.stages.iter().any(|s| s == stage)
    }
}

impl SecretsService {
    /// The versions of secret `id` with their labels, opening no value; `None` when the
    /// secret does not exist.
    pub async fn versions_of(&self, id: &str) -> Result<Option<Vec<VersionInfo>>, ApiError> {
        let Some(cached) = self.load(id).await? else {
            return Ok(None);
        };
        Ok(Some(
            cached
                .secret
                .versions
                .iter()
                .map(|v| VersionInfo {
                    version_id: v.row.version_id.clone(),
                    stages: v.row.stages.clone(),
                    has_value: v.row.has_value,
                })
                .collect(),
        ))
    }

    /// The value of secret `id`'s version `version_id` (when given; it must then carry
    /// `stage` too, if that is given) or of the holder of `stage` (AWSCURRENT by default),
    /// opened without recording an access. `None` when the secret or the version does not
    /// exist or has no value yet.
    pub async fn peek_value(
        &self,
        id: &str,
        version_id: Option<&str>,
        stage: Option<&str>,
    ) -> Result<Option<StoredValue>, ApiError> {
        let Some(cached) = self.load(id).await? else {
            return Ok(None);
        };
        let secret = &cached.secret;
        let has_stage =
            |i: usize, stage: &str| secret.versions[i].row.stages.iter().any(|s| s == stage);
        let idx = match (version_id, stage) {
            (Some(v), stage) => secret
                .version_index(v)
                .filter(|&i| stage.is_none_or(|s| has_stage(i, s))),
            (None, stage) => secret.label_holder(stage.unwrap_or(crate::labels::AWSCURRENT)),
        };
        let Some(row) = idx.map(|i| &secret.versions[i].row).filter(|r| r.has_value) else {
            return Ok(None);
        };
        let read;
        let sealed = match cached.sealed(&row.version_id) {
            Some(sealed) => sealed,
            None => {
                let Some(found) = self
                    .store
                    .read_ciphertext(&secret.row.uid, &row.version_id)
                    .await
                    .map_err(internal)?
                else {
                    return Ok(None);
                };
                read = found;
                &read
            }
        };
        let plain = self
            .open_value(&secret.row.arn, &row.version_id, sealed)
            .await?;
        Ok(match Plain::unframe(plain.expose()) {
            Some(Plain::Text(s)) => Some(StoredValue::Text(Sensitive::new(s.to_owned()))),
            Some(Plain::Binary(b)) => Some(StoredValue::Binary(Blob::new(b.to_vec()))),
            None => return Err(internal("a stored value has no frame")),
        })
    }
}
