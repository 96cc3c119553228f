//! GetSecretValue, BatchGetSecretValue, DescribeSecret, ListSecretVersionIds.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rotary_wire::dto::{
    ApiErrorType, BatchGetSecretValueRequest, BatchGetSecretValueResponse, DescribeSecretResponse,
    GetSecretValueRequest, GetSecretValueResponse, ListSecretVersionIdsRequest,
    ListSecretVersionIdsResponse, SecretIdRequest, SecretVersionsListEntry,
};
use rotary_wire::validate::Validate;
use rotary_wire::{api_error, ApiError, Blob, Sensitive, Timestamp};

use super::list::{parse_filters, Page};
use super::{deleted_error, internal, msg, Ctx, SecretsService};
use crate::cache::CachedSecret;
use crate::clock::day_start;
use crate::labels::AWSCURRENT;
use crate::secret::{sorted, Plain, Secret};

fn stage_not_found(stage: &str) -> ApiError {
    api_error!(
        ResourceNotFoundException,
        "Secrets Manager can't find the specified secret value for staging label: {stage}"
    )
}

fn version_not_found(id: &str) -> ApiError {
    api_error!(
        ResourceNotFoundException,
        "Secrets Manager can't find the specified secret value for VersionId: {id}"
    )
}

impl SecretsService {
    /// GetSecretValue.
    pub async fn get_secret_value(
        &self,
        cx: &Ctx,
        req: GetSecretValueRequest,
    ) -> Result<GetSecretValueResponse, ApiError> {
        req.check()?;
        let id = req.secret_id.as_deref().unwrap_or_default();
        let loaded;
        let cached = match cx.prefetched(id) {
            Some(s) => s,
            None => {
                loaded = self.resolve_cached(id).await?;
                &loaded
            }
        };
        self.read_value(
            &cached.secret,
            Some(cached),
            req.version_id.as_deref(),
            req.version_stage.as_deref(),
        )
        .await
    }

    /// Reads one version of a loaded secret (GetSecretValue rules, spec §3.4); its sealed
    /// value comes from `cached` when that holds it, else from the store.
    async fn read_value(
        &self,
        secret: &Secret,
        cached: Option<&CachedSecret>,
        version_id: Option<&str>,
        stage: Option<&str>,
    ) -> Result<GetSecretValueResponse, ApiError> {
        if secret.is_deleted() {
            return Err(deleted_error());
        }
        // What the cache found once, when `cached` holds this very secret.
        let cached = cached.filter(|c| std::ptr::eq(&c.secret, secret));
        let idx = match (version_id, stage) {
            (Some(id), Some(stage)) => {
                let i = secret
                    .version_index(id)
                    .ok_or_else(|| version_not_found(id))?;
                if !secret.versions[i].row.stages.iter().any(|s| s == stage) {
                    return Err(api_error!(
                        InvalidRequestException,
                        "You provided a VersionStage that is not associated to the provided VersionId."
                    ));
                }
                if !secret.versions[i].row.has_value {
                    return Err(stage_not_found(stage));
                }
                i
            }
            (Some(id), None) => secret
                .version_index(id)
                .filter(|&i| secret.versions[i].row.has_value)
                .ok_or_else(|| version_not_found(id))?,
            (None, stage) => {
                let stage = stage.unwrap_or(AWSCURRENT);
                let holder = match cached {
                    Some(c) if stage == AWSCURRENT => c.current(),
                    _ => secret.label_holder(stage),
                };
                holder
                    .filter(|&i| secret.versions[i].row.has_value)
                    .ok_or_else(|| stage_not_found(stage))?
            }
        };
        let v = &secret.versions[idx].row;
        let read;
        let sealed = match cached.and_then(|c| c.sealed_at(idx)) {
            Some(sealed) => sealed,
            None => {
                read = self
                    .store
                    .read_ciphertext(&secret.row.uid, &v.version_id)
                    .await
                    .map_err(internal)?
                    .ok_or_else(|| version_not_found(&v.version_id))?;
                &read
            }
        };
        let plain = self
            .open_value(&secret.row.arn, &v.version_id, sealed)
            .await?;
        let (secret_string, secret_binary) = match Plain::unframe(plain.expose()) {
            Some(Plain::Text(s)) => (Some(Sensitive::new(s.to_owned())), None),
            Some(Plain::Binary(b)) => (None, Some(Blob::new(b.to_vec()))),
            None => return Err(api_error!(DecryptionFailure, "{}", msg::DECRYPTION_FAILURE)),
        };
        // LastAccessedDate has day granularity: write it at most once per secret per day.
        let today = day_start(self.now());
        if secret.row.last_accessed_ms != Some(today) || v.last_accessed_ms != Some(today) {
            let recorded = self
                .store
                .record_access(&secret.row.uid, &v.version_id, today)
                .await;
            match &recorded {
                Ok(()) => self
                    .cache
                    .record_access(&secret.row.uid, &v.version_id, today),
                Err(_) => self.cache.invalidate(&secret.row.uid),
            }
            if let Err(e) = recorded {
                tracing::warn!(error = %e, "Recording LastAccessedDate failed");
            }
        }
        Ok(GetSecretValueResponse {
            arn: Some(secret.row.arn.clone()),
            name: Some(secret.row.name.clone()),
            version_id: Some(v.version_id.clone()),
            secret_binary,
            secret_string,
            version_stages: Some(sorted(&v.stages)),
            created_date: Some(Timestamp(v.created_ms)),
        })
    }

    /// BatchGetSecretValue.
    pub async fn batch_get_secret_value(
        &self,
        _cx: &Ctx,
        req: BatchGetSecretValueRequest,
    ) -> Result<BatchGetSecretValueResponse, ApiError> {
        req.check()?;
        if req.secret_id_list.is_some() == req.filters.is_some() {
            return Err(api_error!(
                InvalidParameterException,
                "Either 'SecretIdList' or 'Filters' must be provided, but not both."
            ));
        }
        let mut values = Vec::new();
        let mut errors = Vec::new();
        let mut next_token = None;
        if let Some(ids) = &req.secret_id_list {
            if req.max_results.is_some() {
                return Err(api_error!(
                    InvalidParameterException,
                    "'Filters' not specified. 'Filters' must also be specified when 'MaxResults' is provided."
                ));
            }
            for id in ids {
                let r = match self.load(id).await {
                    Ok(Some(c)) => self.read_value(&c.secret, Some(&c), None, None).await,
                    Ok(None) => Err(api_error!(ResourceNotFoundException, "{}", msg::NOT_FOUND)),
                    Err(e) => Err(e),
                };
                match r {
                    Ok(v) => values.push(v),
                    Err(e) if e.code() == rotary_wire::ErrorCode::InternalServiceError => {
                        return Err(e)
                    }
                    Err(e) => errors.push(ApiErrorType {
                        secret_id: Some(id.clone()),
                        error_code: Some(e.code().as_str().to_owned()),
                        message: Some(e.message().to_owned()),
                    }),
                }
            }
        } else {
            let filters = parse_filters(req.filters.as_deref().unwrap_or_default())?;
            let page = Page::from_token(req.next_token.as_deref())?;
            let limit = req.max_results.unwrap_or(20) as usize;
            let (items, next) = self.list_page(&filters, false, page, limit).await?;
            next_token = next;
            for s in items {
                match self.read_value(&s, None, None, None).await {
                    Ok(v) => values.push(v),
                    Err(e) if e.code() == rotary_wire::ErrorCode::InternalServiceError => {
                        return Err(e)
                    }
                    Err(e) => errors.push(ApiErrorType {
                        secret_id: Some(s.row.arn.clone()),
                        error_code: Some(e.code().as_str().to_owned()),
                        message: Some(e.message().to_owned()),
                    }),
                }
            }
        }
        Ok(BatchGetSecretValueResponse {
            secret_values: Some(values),
            next_token,
            errors: Some(errors),
        })
    }

    /// DescribeSecret. Works on secrets scheduled for deletion; never updates
    /// LastAccessedDate.
    pub async fn describe_secret(
        &self,
        cx: &Ctx,
        req: SecretIdRequest,
    ) -> Result<DescribeSecretResponse, ApiError> {
        req.check()?;
        let id = req.secret_id.as_deref().unwrap_or_default();
        if let Some(cached) = cx.prefetched(id) {
            return self.describe_full(&cached.secret).await;
        }
        let cached = self.resolve_cached(id).await?;
        self.describe_full(&cached.secret).await
    }

    /// ListSecretVersionIds: labelled versions (all with `IncludeDeprecated`), oldest first.
    pub async fn list_secret_version_ids(
        &self,
        _cx: &Ctx,
        req: ListSecretVersionIdsRequest,
    ) -> Result<ListSecretVersionIdsResponse, ApiError> {
        req.check()?;
        let secret = self
            .resolve_live(req.secret_id.as_deref().unwrap_or_default())
            .await?;
        let include_deprecated = req.include_deprecated.unwrap_or(false);
        let start = match req.next_token.as_deref() {
            None => 0,
            Some(t) => decode_seq(t)?,
        };
        let limit = req.max_results.unwrap_or(100) as usize;
        let mut matching = secret
            .versions
            .iter()
            .filter(|v| include_deprecated || !v.row.stages.is_empty())
            .filter(|v| v.row.seq > start);
        let versions: Vec<_> = matching.by_ref().take(limit).collect();
        let next_token = match (matching.next(), versions.last()) {
            (Some(_), Some(last)) => Some(encode_seq(last.row.seq)),
            _ => None,
        };
        Ok(ListSecretVersionIdsResponse {
            versions: Some(
                versions
                    .into_iter()
                    .map(|v| SecretVersionsListEntry {
                        version_id: Some(v.row.version_id.clone()),
                        version_stages: (!v.row.stages.is_empty()).then(|| sorted(&v.row.stages)),
                        last_accessed_date: v.row.last_accessed_ms.map(Timestamp),
                        created_date: Some(Timestamp(v.row.created_ms)),
                        kms_key_ids: Some(
                            vec![self.listed_kms_key_id(v.row.kms_key_id.as_deref())],
                        ),
                    })
                    .collect(),
            ),
            next_token,
            arn: Some(secret.row.arn.clone()),
            name: Some(secret.row.name.clone()),
        })
    }
}

fn encode_seq(seq: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("v1:{seq}"))
}

fn decode_seq(token: &str) -> Result<i64, ApiError> {
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("v1:").and_then(|n| n.parse().ok()))
        .ok_or_else(|| api_error!(InvalidNextTokenException, "{}", msg::BAD_NEXT_TOKEN))
}
