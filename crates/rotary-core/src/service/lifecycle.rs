//! DeleteSecret and RestoreSecret.

use rotary_wire::dto::{
    ArnNameResponse, DeleteSecretRequest, DeleteSecretResponse, SecretIdRequest,
};
use rotary_wire::validate::Validate;
use rotary_wire::{api_error, ApiError, Timestamp};

use super::{Ctx, Outcome, SecretsService};
use crate::arn;
use crate::clock::DAY_MS;

/// Recovery window bounds in days.
const WINDOW_DAYS: std::ops::RangeInclusive<i64> = 7..=30;
const DEFAULT_WINDOW_DAYS: i64 = 30;

impl SecretsService {
    /// DeleteSecret: schedules deletion after the recovery window, or deletes now when forced.
    pub async fn delete_secret(
        &self,
        _cx: &Ctx,
        req: DeleteSecretRequest,
    ) -> Result<DeleteSecretResponse, ApiError> {
        req.check()?;
        let force = req.force_delete_without_recovery.unwrap_or(false);
        if force && req.recovery_window_in_days.is_some() {
            return Err(api_error!(
                InvalidParameterException,
                "You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays."
            ));
        }
        let days = req.recovery_window_in_days.unwrap_or(DEFAULT_WINDOW_DAYS);
        if !WINDOW_DAYS.contains(&days) {
            return Err(api_error!(
                InvalidParameterException,
                "The RecoveryWindowInDays value must be between 7 and 30 days (inclusive)."
            ));
        }
        let id = req.secret_id.as_deref().unwrap_or_default();
        if let Some(secret) = self.find(id).await? {
            check_deletable(id, &secret)?;
        }
        if force {
            let now = self.now();
            return match self.find(id).await? {
                Some(secret) => {
                    check_deletable(id, &secret)?;
                    self.keep_replica_tombstone(&secret).await?;
                    self.delete_stored(&secret.row.uid).await?;
                    tracing::info!(secret_arn = %secret.row.arn, "Deleted a secret without recovery");
                    Ok(DeleteSecretResponse {
                        arn: Some(secret.row.arn),
                        name: Some(secret.row.name),
                        deletion_date: Some(Timestamp(now)),
                    })
                }
                // AWS answers a forced delete of an unknown secret with success.
                None => Ok(DeleteSecretResponse {
                    arn: Some(if id.starts_with("arn:") {
                        id.to_owned()
                    } else {
                        arn::new_secret_arn(&self.config.region, &self.config.account_id, id)
                    }),
                    name: Some(arn::parse(id).map_or(id, |p| p.resource).to_owned()),
                    deletion_date: Some(Timestamp(now)),
                }),
            };
        }
        self.mutate_live(id, None, |secret, _| {
            check_deletable(id, secret)?;
            let now = self.now();
            let when = now + days * DAY_MS;
            secret.row.deleted_ms = Some(when);
            Ok(Outcome::Changed(
                DeleteSecretResponse {
                    arn: Some(secret.row.arn.clone()),
                    name: Some(secret.row.name.clone()),
                    deletion_date: Some(Timestamp(when)),
                },
                Some(now),
            ))
        })
        .await
    }

    /// RestoreSecret: cancels a scheduled deletion; a no-op on a live secret.
    pub async fn restore_secret(
        &self,
        _cx: &Ctx,
        req: SecretIdRequest,
    ) -> Result<ArnNameResponse, ApiError> {
        req.check()?;
        let id = req.secret_id.as_deref().unwrap_or_default();
        self.mutate(id, None, |secret, _| {
            let resp = secret.arn_name();
            if !secret.is_deleted() {
                return Ok(Outcome::Unchanged(resp));
            }
            secret.row.deleted_ms = None;
            Ok(Outcome::Changed(resp, Some(self.now())))
        })
        .await
    }
}

/// A replica is deleted only through its primary, and a primary only once it has no
/// replicas (RemoveRegionsFromReplication deletes them), as AWS refuses both.
fn check_deletable(id: &str, secret: &crate::secret::Secret) -> Result<(), ApiError> {
    if secret.doc.is_replica() {
        return Err(super::replica_error());
    }
    let regions: Vec<&str> = secret
        .doc
        .replication
        .iter()
        .flat_map(|r| r.replicas.iter().map(|x| x.region.as_str()))
        .collect();
    if regions.is_empty() {
        return Ok(());
    }
    Err(api_error!(
        InvalidParameterException,
        "You can't delete secret {id} that still has replica regions [{}]",
        regions.join(",")
    ))
}
