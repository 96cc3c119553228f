//! CreateSecret, PutSecretValue, UpdateSecret, UpdateSecretVersionStage.

use rotary_crypto::SecretBytes;
use rotary_store::{SecretRow, VersionRow, VersionWrite};
use rotary_wire::dto::{
    ArnNameResponse, CreateSecretRequest, CreateSecretResponse, PutSecretValueRequest,
    PutSecretValueResponse, Tag, UpdateSecretRequest, UpdateSecretResponse,
    UpdateSecretVersionStageRequest,
};
use rotary_wire::validate::Validate;
use rotary_wire::{api_error, ApiError, Blob, Sensitive};

use super::replication::in_progress;
use super::{internal, msg, Ctx, Outcome, SecretsService};
use crate::clock::DAY_MS;
use crate::labels::{self, AWSCURRENT, MAX_LABELS_PER_SECRET};
use crate::replication::Replication;
use crate::secret::{sorted, Plain, Secret, SecretDoc, Version};
use crate::{arn, names};

/// Most versions a secret keeps; unlabelled versions older than a day are pruned past it.
pub(super) const MAX_VERSIONS: usize = 100;
/// Most tags on a secret.
pub(super) const MAX_TAGS: usize = 50;

/// The value of a request, if any; both members at once is an error.
pub(crate) fn request_value<'a>(
    s: &'a Option<Sensitive>,
    b: &'a Option<Blob>,
) -> Result<Option<Plain<'a>>, ApiError> {
    match (s, b) {
        (Some(_), Some(_)) => Err(api_error!(
            InvalidParameterException,
            "{}",
            msg::BOTH_VALUES
        )),
        (Some(s), None) => Ok(Some(Plain::Text(s.expose()))),
        (None, Some(b)) => Ok(Some(Plain::Binary(b.expose()))),
        (None, None) => Ok(None),
    }
}

/// Checks tags given to CreateSecret or TagResource and returns them as pairs.
pub(crate) fn check_tags(tags: &[Tag]) -> Result<Vec<(String, String)>, ApiError> {
    let mut out: Vec<(String, String)> = Vec::with_capacity(tags.len());
    for t in tags {
        let Some(key) = t.key.clone() else {
            return Err(api_error!(
                InvalidParameterException,
                "Each tag must have a Key."
            ));
        };
        if key.starts_with("aws:") {
            return Err(api_error!(
                InvalidParameterException,
                "Tag keys that start with aws: are reserved for AWS use."
            ));
        }
        if out.iter().any(|(k, _)| *k == key) {
            return Err(api_error!(
                InvalidParameterException,
                "Duplicate tag keys are not allowed in one request: {key}"
            ));
        }
        out.push((key, t.value.clone().unwrap_or_default()));
    }
    Ok(out)
}

fn token_in_use(token: &str, arn: &str) -> ApiError {
    api_error!(
        ResourceExistsException,
        "You can't use ClientRequestToken {token} because that value is already in use for a version of secret {arn}."
    )
}

/// What writing a value with a token did.
pub(crate) enum Written {
    /// The token's version already holds this value: nothing changed.
    Replay(usize),
    /// A version was created or a placeholder filled.
    New(usize),
}

impl SecretsService {
    /// Writes `value` as version `token` of `secret` (new version or placeholder fill), moves
    /// labels (`stages` as given, or `AWSCURRENT` by default) and prunes old versions.
    pub(crate) fn write_value(
        &self,
        secret: &mut Secret,
        existing: Option<&SecretBytes>,
        token: &str,
        value: &Plain<'_>,
        stages: Option<&[String]>,
    ) -> Result<Written, ApiError> {
        let now = self.now();
        let idx = match secret.version_index(token) {
            Some(i) if secret.versions[i].row.has_value => {
                let same = existing.is_some_and(|e| e.expose() == value.frame().as_slice());
                return if same {
                    Ok(Written::Replay(i))
                } else {
                    Err(token_in_use(token, &secret.row.arn))
                };
            }
            Some(i) => {
                // The valueless placeholder a rotation created: fill it.
                let kms = secret.doc.kms_key().to_owned();
                let sealed = self.seal(&kms, &secret.row.arn, token, value)?;
                let v = &mut secret.versions[i];
                v.new_ciphertext = Some(sealed);
                v.row.has_value = true;
                v.row.kms_key_id = Some(kms);
                i
            }
            None => {
                let kms = secret.doc.kms_key().to_owned();
                let sealed = self.seal(&kms, &secret.row.arn, token, value)?;
                secret.versions.push(Version {
                    row: VersionRow {
                        version_id: token.to_owned(),
                        seq: secret.next_seq(),
                        created_ms: now,
                        last_accessed_ms: None,
                        stages: Vec::new(),
                        kms_key_id: Some(kms),
                        has_value: true,
                    },
                    new_ciphertext: Some(sealed),
                    is_new: true,
                });
                secret.versions.len() - 1
            }
        };
        let mut l = secret.labels();
        match stages {
            None => labels::make_current(&mut l, idx),
            Some(stages) => labels::move_labels(&mut l, idx, stages),
        }
        if labels::count(&l) > MAX_LABELS_PER_SECRET {
            return Err(api_error!(
                LimitExceededException,
                "{}",
                msg::TOO_MANY_LABELS
            ));
        }
        secret.set_labels(l);
        prune(secret, now)?;
        let idx = secret.version_index(token).ok_or_else(ApiError::internal)?;
        if secret.versions[idx]
            .row
            .stages
            .iter()
            .any(|s| s == AWSCURRENT)
        {
            crate::rotation::transitions::value_written(secret, now);
        }
        Ok(Written::New(idx))
    }

    /// CreateSecret.
    pub async fn create_secret(
        &self,
        _cx: &Ctx,
        req: CreateSecretRequest,
    ) -> Result<CreateSecretResponse, ApiError> {
        req.check()?;
        let name = req.name.as_deref().unwrap_or_default();
        names::check(name)?;
        let value = request_value(&req.secret_string, &req.secret_binary)?;
        let token = req.client_request_token.as_deref();
        if value.is_some() && token.is_none() {
            return Err(api_error!(
                InvalidRequestException,
                "{}",
                msg::TOKEN_REQUIRED
            ));
        }
        let replicas = self.new_replicas(
            &[],
            req.add_replica_regions.as_deref().unwrap_or_default(),
            req.force_overwrite_replica_secret.unwrap_or(false),
        )?;
        let tags = req.tags.as_deref().map(check_tags).transpose()?;
        if tags.as_ref().is_some_and(|t| t.len() > MAX_TAGS) {
            return Err(api_error!(
                InvalidParameterException,
                "A secret can have at most 50 tags."
            ));
        }
        let kms_key_id = req.kms_key_id.clone().filter(|k| !k.is_empty());
        if let Some(k) = &kms_key_id {
            self.ensure_kms_key(k).await?;
        }
        let doc = SecretDoc {
            description: req.description.clone().filter(|d| !d.is_empty()),
            kms_key_id,
            tags,
            policy: None,
            secret_type: req.secret_type.clone(),
            rotation: None,
            replication: (!replicas.is_empty()).then(|| Replication {
                replicas: replicas.clone(),
                ..Default::default()
            }),
        };
        loop {
            if let Some(existing) = self.find(name).await? {
                return self
                    .create_over_existing(&existing, token, value.as_ref())
                    .await;
            }
            let now = self.now();
            let arn = arn::new_secret_arn(&self.config.region, &self.config.account_id, name);
            let mut versions = Vec::new();
            if let (Some(value), Some(token)) = (&value, token) {
                let kms = doc.kms_key().to_owned();
                versions.push(VersionWrite {
                    ciphertext: Some(self.seal(&kms, &arn, token, value)?),
                    row: VersionRow {
                        version_id: token.to_owned(),
                        seq: 1,
                        created_ms: now,
                        last_accessed_ms: None,
                        stages: vec![AWSCURRENT.to_owned()],
                        kms_key_id: Some(kms),
                        has_value: true,
                    },
                });
            }
            let row = SecretRow {
                uid: uuid::Uuid::new_v4().to_string(),
                namespace: self.namespace.clone(),
                name: name.to_owned(),
                arn: arn.clone(),
                created_ms: now,
                last_changed_ms: now,
                last_accessed_ms: None,
                deleted_ms: None,
                rotation_due_ms: None,
                replication_due_ms: (!replicas.is_empty()).then_some(0),
                revision: 1,
                doc: serde_json::to_string(&doc).map_err(internal)?,
            };
            let inserted = self.store.insert(&row, &versions).await;
            // The name and ARN may have resolved to a secret purged since.
            self.cache.forget_ids(&[name, &arn]);
            match inserted {
                Ok(()) => {
                    if !replicas.is_empty() {
                        self.replication_wakeup.notify_one();
                    }
                    return Ok(CreateSecretResponse {
                        arn: Some(arn),
                        name: Some(name.to_owned()),
                        version_id: value.and(token).map(str::to_owned),
                        replication_status: (!replicas.is_empty())
                            .then(|| replicas.iter().map(in_progress).collect()),
                    });
                }
                // Created concurrently: answer as if it existed when we looked.
                Err(rotary_store::Error::NameTaken(_)) => continue,
                Err(e) => return Err(super::write_failed(e)),
            }
        }
    }

    async fn create_over_existing(
        &self,
        existing: &Secret,
        token: Option<&str>,
        value: Option<&Plain<'_>>,
    ) -> Result<CreateSecretResponse, ApiError> {
        if existing.is_deleted() {
            return Err(api_error!(
                InvalidRequestException,
                "{}",
                msg::CREATE_OVER_DELETED
            ));
        }
        if let (Some(token), Some(value)) = (token, value) {
            if existing.version_index(token).is_some() {
                let stored = self.token_value(existing, token).await?;
                if stored.is_some_and(|s| s.expose() == value.frame().as_slice()) {
                    return Ok(CreateSecretResponse {
                        arn: Some(existing.row.arn.clone()),
                        name: Some(existing.row.name.clone()),
                        version_id: Some(token.to_owned()),
                        replication_status: None,
                    });
                }
                return Err(token_in_use(token, &existing.row.arn));
            }
        }
        Err(api_error!(
            ResourceExistsException,
            "The operation failed because the secret {} already exists.",
            existing.row.name
        ))
    }

    /// PutSecretValue.
    pub async fn put_secret_value(
        &self,
        _cx: &Ctx,
        req: PutSecretValueRequest,
    ) -> Result<PutSecretValueResponse, ApiError> {
        req.check()?;
        let value = request_value(&req.secret_string, &req.secret_binary)?
            .ok_or_else(|| api_error!(InvalidRequestException, "{}", msg::NO_VALUE))?;
        let token = req
            .client_request_token
            .as_deref()
            .ok_or_else(|| api_error!(InvalidRequestException, "{}", msg::TOKEN_REQUIRED))?;
        let id = req.secret_id.as_deref().unwrap_or_default();
        self.mutate_live(id, Some(token), |secret, existing| {
            let written = self.write_value(
                secret,
                existing,
                token,
                &value,
                req.version_stages.as_deref(),
            )?;
            let (Written::Replay(i) | Written::New(i)) = written;
            let resp = PutSecretValueResponse {
                arn: Some(secret.row.arn.clone()),
                name: Some(secret.row.name.clone()),
                version_id: Some(token.to_owned()),
                version_stages: Some(sorted(&secret.versions[i].row.stages)),
            };
            Ok(match written {
                Written::Replay(_) => Outcome::Unchanged(resp),
                Written::New(_) => Outcome::Changed(resp, Some(self.now())),
            })
        })
        .await
    }

    /// UpdateSecret.
    pub async fn update_secret(
        &self,
        _cx: &Ctx,
        req: UpdateSecretRequest,
    ) -> Result<UpdateSecretResponse, ApiError> {
        req.check()?;
        let value = request_value(&req.secret_string, &req.secret_binary)?;
        let token = req.client_request_token.as_deref();
        if value.is_some() && token.is_none() {
            return Err(api_error!(
                InvalidRequestException,
                "{}",
                msg::TOKEN_REQUIRED
            ));
        }
        if let Some(k) = req.kms_key_id.as_deref().filter(|k| !k.is_empty()) {
            self.ensure_kms_key(k).await?;
        }
        let id = req.secret_id.as_deref().unwrap_or_default();
        let value_token = value.as_ref().and(token);
        self.mutate_live(id, value_token, |secret, existing| {
            let mut changed = false;
            if let Some(d) = &req.description {
                secret.doc.description = Some(d.clone()).filter(|d| !d.is_empty());
                changed = true;
            }
            if let Some(k) = &req.kms_key_id {
                // New versions are sealed with the new key; existing ones stay readable
                // under the key that sealed them.
                secret.doc.kms_key_id = Some(k.clone()).filter(|k| !k.is_empty());
                changed = true;
            }
            if let Some(t) = &req.secret_type {
                secret.doc.secret_type = Some(t.clone()).filter(|t| !t.is_empty());
                changed = true;
            }
            let mut version_id = None;
            if let (Some(value), Some(token)) = (&value, token) {
                if let Written::New(_) = self.write_value(secret, existing, token, value, None)? {
                    changed = true;
                }
                version_id = Some(token.to_owned());
            }
            let resp = UpdateSecretResponse {
                arn: Some(secret.row.arn.clone()),
                name: Some(secret.row.name.clone()),
                version_id,
            };
            Ok(if changed {
                Outcome::Changed(resp, Some(self.now()))
            } else {
                Outcome::Unchanged(resp)
            })
        })
        .await
    }

    /// UpdateSecretVersionStage.
    pub async fn update_secret_version_stage(
        &self,
        _cx: &Ctx,
        req: UpdateSecretVersionStageRequest,
    ) -> Result<ArnNameResponse, ApiError> {
        req.check()?;
        let id = req.secret_id.as_deref().unwrap_or_default();
        let label = req.version_stage.as_deref().unwrap_or_default();
        self.mutate_live(id, None, |secret, _| {
            let resp = secret.arn_name();
            let version = |id: &str| {
                secret.version_index(id).ok_or_else(|| {
                    api_error!(InvalidParameterException, "Not a valid version: {id}")
                })
            };
            let holder = secret.label_holder(label);
            let remove = req.remove_from_version_id.as_deref();
            let mut l = secret.labels();
            match (req.move_to_version_id.as_deref(), remove) {
                (Some(to), remove) => {
                    let target = version(to)?;
                    if let Some(remove) = remove {
                        version(remove)?;
                    }
                    match holder {
                        Some(h) if h == target => return Ok(Outcome::Unchanged(resp)),
                        Some(h) => {
                            let on = &secret.versions[h].row.version_id;
                            match remove {
                                None => return Err(api_error!(
                                    InvalidParameterException,
                                    "The parameter RemoveFromVersionId can't be empty. Staging label {label} is currently attached to version {on}, so you must explicitly reference that version in RemoveFromVersionId."
                                )),
                                Some(r) if r != on => return Err(api_error!(
                                    InvalidParameterException,
                                    "The parameter RemoveFromVersionId is not the version that staging label {label} is attached to. Staging label {label} is currently attached to version {on}."
                                )),
                                Some(_) => {}
                            }
                        }
                        None => {}
                    }
                    labels::move_one(&mut l, target, label);
                }
                (None, Some(from)) => {
                    let from = version(from)?;
                    if holder != Some(from) {
                        return Err(api_error!(
                            InvalidParameterException,
                            "The staging label {label} is not attached to version {}.",
                            secret.versions[from].row.version_id
                        ));
                    }
                    if label == AWSCURRENT {
                        return Err(api_error!(
                            InvalidParameterException,
                            "You can only move staging label AWSCURRENT to a different secret version. It can't be completely removed."
                        ));
                    }
                    l[from].stages.remove(label);
                }
                (None, None) => {
                    return Err(api_error!(
                        InvalidParameterException,
                        "You must specify MoveToVersionId, RemoveFromVersionId, or both."
                    ))
                }
            }
            if labels::count(&l) > MAX_LABELS_PER_SECRET {
                return Err(api_error!(LimitExceededException, "{}", msg::TOO_MANY_LABELS));
            }
            secret.set_labels(l);
            Ok(Outcome::Changed(resp, Some(self.now())))
        })
        .await
    }
}

/// Drops the oldest unlabelled versions older than a day while there are more than
/// [`MAX_VERSIONS`]; if that is not enough the write is refused.
fn prune(secret: &mut Secret, now: i64) -> Result<(), ApiError> {
    while secret.versions.len() > MAX_VERSIONS {
        let victim = secret
            .versions
            .iter()
            .position(|v| v.row.stages.is_empty() && !v.is_new && v.row.created_ms <= now - DAY_MS);
        match victim {
            Some(i) => secret.remove_version(i),
            None => {
                return Err(api_error!(
                    LimitExceededException,
                    "{}",
                    msg::TOO_MANY_VERSIONS
                ))
            }
        }
    }
    Ok(())
}
