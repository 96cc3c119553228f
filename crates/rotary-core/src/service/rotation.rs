//! The rotation operations of the service: RotateSecret, CancelRotateSecret, and the calls
//! the rotation driver makes between steps (spec §5). Each runs one transition of
//! `crate::rotation::transitions` inside one compare-and-swap write, so what must be atomic
//! with the secret's versions and labels (the AWSPENDING placeholder, the completion check
//! and clean-up, the schedule, the persistent `(token, next step)` that lets a rotation
//! resume after a crash) is.

use rotary_wire::dto::{RotateSecretRequest, RotateSecretResponse, SecretIdRequest};
use rotary_wire::validate::Validate;
use rotary_wire::{api_error, ApiError};

use crate::labels::{AWSCURRENT, AWSPENDING};
use crate::rotation::transitions::{self as t, Taken};
use crate::rotation::{
    Completion, DueRotation, FunctionDirectory, Pending, RotationConfig, RotationStanding,
    RotationState, Step, Trigger,
};
use crate::schedule::Schedule;
use crate::secret::{Plain, Secret};
use crate::service::{internal, msg, Ctx, Outcome, SecretsService};

const PREVIOUS_NOT_COMPLETE: &str =
    "A previous rotation isn't complete. That rotation will be reattempted.";
const NO_FUNCTION: &str = "No Lambda rotation function ARN is associated with this secret.";
const NOT_INVOKABLE: &str = "Secrets Manager cannot invoke the specified Lambda function. Ensure that the function policy grants access to the principal secretsmanager.amazonaws.com.";

impl SecretsService {
    /// RotateSecret (spec §5.1): validates, stores the configuration and starts a rotation
    /// (or a test of the configuration when `RotateImmediately` is false). The steps run in
    /// the background.
    pub async fn rotate_secret(
        &self,
        _cx: &Ctx,
        req: RotateSecretRequest,
        functions: &dyn FunctionDirectory,
    ) -> Result<RotateSecretResponse, ApiError> {
        req.check()?;
        let id = req.secret_id.as_deref().unwrap_or_default();
        let token = req
            .client_request_token
            .clone()
            // AWS answers InvalidParameterException for RotateSecret, unlike the writes
            // (CreateSecret, PutSecretValue, UpdateSecret). See: #13
            .ok_or_else(|| api_error!(InvalidParameterException, "{}", msg::TOKEN_REQUIRED))?;
        let existing = self.resolve_live(id).await?;
        if let Some(r) = &req.rotation_rules {
            if r.automatically_after_days.is_some() && r.schedule_expression.is_some() {
                return Err(api_error!(
                    InvalidParameterException,
                    "You cannot specify both rotation frequency and schedule expression together."
                ));
            }
            Schedule::parse(
                r.automatically_after_days,
                r.schedule_expression.as_deref(),
                r.duration.as_deref(),
            )
            .map_err(|e| {
                ApiError::new(rotary_wire::ErrorCode::InvalidParameterException, e.message)
            })?;
        }
        let stored_arn = existing
            .doc
            .rotation
            .as_ref()
            .and_then(|r| r.lambda_arn.clone());
        let lambda_arn = req
            .rotation_lambda_arn
            .clone()
            .filter(|a| !a.is_empty())
            .or(stored_arn)
            .ok_or_else(|| api_error!(InvalidRequestException, "{}", NO_FUNCTION))?;
        if !functions.is_invokable(&lambda_arn) {
            return Err(api_error!(AccessDeniedException, "{}", NOT_INVOKABLE));
        }
        let immediately = req.rotate_immediately.unwrap_or(true);
        // A test rotation seals a copy of AWSCURRENT under a new version id.
        let current = if immediately {
            None
        } else {
            match existing.label_holder(AWSCURRENT) {
                Some(i) if existing.versions[i].row.has_value => {
                    let vid = existing.versions[i].row.version_id.clone();
                    self.token_value(&existing, &vid).await?
                }
                _ => None,
            }
        };
        let test_version = t::new_token();
        let redrive = self
            .mutate_live(id, None, |secret, _| {
                let now = self.now();
                let resp = RotateSecretResponse {
                    arn: Some(secret.row.arn.clone()),
                    name: Some(secret.row.name.clone()),
                    version_id: None,
                };
                // A retried RotateSecret with the token of the rotation in progress.
                let in_progress = secret.doc.rotation.as_ref().and_then(|r| r.in_progress.clone());
                if let Some(state) = &in_progress {
                    if state.token == token && !state.test_only {
                        return Ok(Outcome::Unchanged(Ok(RotateSecretResponse {
                            version_id: Some(token.clone()),
                            ..resp
                        })));
                    }
                }
                if let Some(p) = t::stuck_pending(secret) {
                    // Re-drive the unfinished rotation with its own version id.
                    t::redrive(secret, p, &lambda_arn, now);
                    return Ok(Outcome::Changed(Err(()), None));
                }
                if secret.version_index(&token).is_some() {
                    return Err(api_error!(
                        ResourceExistsException,
                        "You can't use ClientRequestToken {token} because that value is already in use for a version of secret {}.",
                        secret.row.arn
                    ));
                }
                let rotation = secret.doc.rotation.get_or_insert_with(Default::default);
                rotation.enabled = true;
                rotation.lambda_arn = Some(lambda_arn.clone());
                if let Some(r) = &req.rotation_rules {
                    rotation.rules = Some(r.clone());
                }
                rotation.schedule_anchor_ms = Some(now);
                t::schedule_next(secret, now);
                let version_id = if immediately {
                    t::add_placeholder(secret, &token, now);
                    t::begin(secret, &token, Trigger::Api, false, false, now);
                    Some(token.clone())
                } else {
                    let value = current.as_ref().and_then(|c| Plain::unframe(c.expose()));
                    if let Some(value) = value {
                        let kms = secret.doc.kms_key().to_owned();
                        let sealed = self.seal(&kms, &secret.row.arn, &test_version, &value)?;
                        t::add_placeholder(secret, &test_version, now);
                        if let Some(i) = secret.version_index(&test_version) {
                            let v = &mut secret.versions[i];
                            v.new_ciphertext = Some(sealed);
                            v.row.has_value = true;
                            v.row.kms_key_id = Some(kms);
                        }
                        t::begin(secret, &test_version, Trigger::Api, true, false, now);
                    }
                    None
                };
                Ok(Outcome::Changed(Ok(RotateSecretResponse { version_id, ..resp }), Some(now)))
            })
            .await?;
        self.rotation_wakeup.notify_one();
        redrive.map_err(|()| api_error!(InvalidRequestException, "{}", PREVIOUS_NOT_COMPLETE))
    }

    /// CancelRotateSecret (spec §5.6): turns scheduled rotation off, keeps the function and
    /// rules, and stops a rotation in progress without touching labels.
    pub async fn cancel_rotate_secret(
        &self,
        _cx: &Ctx,
        req: SecretIdRequest,
    ) -> Result<RotateSecretResponse, ApiError> {
        req.check()?;
        let id = req.secret_id.as_deref().unwrap_or_default();
        self.mutate_live(id, None, |secret, _| {
            let version_id = t::cancel(secret).map_err(|()| api_error!(
                InvalidRequestException,
                "You tried to enable rotation on a secret that doesn't already have a Lambda function ARN configured and you didn't include such an ARN as a parameter in this call."
            ))?;
            Ok(Outcome::Changed(
                RotateSecretResponse {
                    arn: Some(secret.row.arn.clone()),
                    name: Some(secret.row.name.clone()),
                    version_id,
                },
                Some(self.now()),
            ))
        })
        .await
    }

    /// Secrets whose rotation is due now, most overdue first.
    pub async fn due_rotations(&self, limit: i64) -> Result<Vec<String>, ApiError> {
        self.store
            .due_rotations(self.now(), limit)
            .await
            .map_err(internal)
    }

    /// Takes a due secret: resumes its rotation in progress, starts a scheduled one (or
    /// re-drives a stuck one), or reschedules it when nothing is to be done.
    pub async fn prepare_rotation(&self, uid: &str) -> Result<Option<DueRotation>, ApiError> {
        let Some(arn) = self.arn_of_uid(uid).await? else {
            return Ok(None);
        };
        let result = self
            .mutate(&arn, None, |secret, _| {
                let now = self.now();
                let due_ms = secret.row.rotation_due_ms.unwrap_or(now);
                let due = |secret: &Secret, state: RotationState, started_now| DueRotation {
                    uid: secret.row.uid.clone(),
                    arn: secret.row.arn.clone(),
                    name: secret.row.name.clone(),
                    lambda_arn: secret
                        .doc
                        .rotation
                        .as_ref()
                        .and_then(|r| r.lambda_arn.clone())
                        .unwrap_or_default(),
                    state,
                    started_now,
                    due_ms,
                };
                Ok(match t::take_due(secret, now) {
                    Taken::NotDue => Outcome::Unchanged(None),
                    Taken::Unscheduled => Outcome::Changed(None, None),
                    Taken::Resume(state) => Outcome::Unchanged(Some(due(secret, state, false))),
                    Taken::Started(state) => Outcome::Changed(Some(due(secret, state, true)), None),
                })
            })
            .await;
        match result {
            Err(e) if e.code() == rotary_wire::ErrorCode::ResourceNotFoundException => Ok(None),
            r => r,
        }
    }

    /// The ARN of the secret whose internal id is `uid`, if it still exists (the rotation
    /// driver and the replication shipper know secrets by internal id; writes find them by
    /// ARN).
    pub(crate) async fn arn_of_uid(&self, uid: &str) -> Result<Option<String>, ApiError> {
        let rec = self
            .store
            .find(&self.namespace, rotary_store::Lookup::Uid(uid))
            .await
            .map_err(internal)?;
        Ok(rec.map(|r| r.row.arn))
    }

    /// Checks, before a step, that the rotation is still the one in progress and its
    /// version still carries AWSPENDING.
    pub async fn pending_status(&self, arn: &str, token: &str) -> Result<Pending, ApiError> {
        let Some(secret) = self.find(arn).await? else {
            return Ok(Pending::Abandoned);
        };
        let same = secret
            .doc
            .rotation
            .as_ref()
            .and_then(|r| r.in_progress.as_ref())
            .is_some_and(|s| s.token == token);
        let pending = secret.version_index(token).is_some_and(|i| {
            secret.versions[i]
                .row
                .stages
                .iter()
                .any(|s| s == AWSPENDING)
        });
        Ok(if same && pending {
            Pending::Pending
        } else {
            Pending::Abandoned
        })
    }

    /// Runs `transition` on the secret `arn` in one write; writes only if it changed the
    /// secret. Its value is the transition's.
    async fn transition(
        &self,
        arn: &str,
        transition: impl Fn(&mut Secret, i64) -> bool + Send + Sync,
    ) -> Result<bool, ApiError> {
        self.mutate(arn, None, |secret, _| {
            Ok(if transition(secret, self.now()) {
                Outcome::Changed(true, None)
            } else {
                Outcome::Unchanged(false)
            })
        })
        .await
    }

    /// Records that `step` of the rotation `token` completed; `false` when that rotation
    /// is no longer the one in progress.
    pub async fn step_completed(
        &self,
        arn: &str,
        token: &str,
        step: Step,
    ) -> Result<bool, ApiError> {
        self.transition(arn, |secret, _| t::step_completed(secret, token, step))
            .await
    }

    /// The completion check after finishSecret: success iff the new version holds
    /// AWSCURRENT; then AWSPENDING is removed and the next window planned.
    pub async fn complete_rotation(&self, arn: &str, token: &str) -> Result<Completion, ApiError> {
        self.mutate(arn, None, |secret, _| {
            let now = self.now();
            Ok(match t::complete(secret, token, now) {
                Completion::Succeeded => Outcome::Changed(Completion::Succeeded, Some(now)),
                other => Outcome::Unchanged(other),
            })
        })
        .await
    }

    /// Ends a test rotation: removes the test version and restores the schedule
    /// RotateSecret planned (see [`t::finish_test`]). See: #13
    pub async fn finish_test_rotation(
        &self,
        arn: &str,
        token: &str,
        error: Option<&str>,
    ) -> Result<(), ApiError> {
        self.transition(arn, |secret, now| t::finish_test(secret, token, error, now))
            .await
            .map(drop)
    }

    /// Records a failed attempt: retried from createSecret with the same token at
    /// `retry_at`, or, when `retry_at` is `None`, given up: AWSPENDING stays where it is
    /// (AWSCURRENT untouched) and the next scheduled window or RotateSecret re-drives it.
    pub async fn fail_rotation(
        &self,
        arn: &str,
        token: &str,
        error: &str,
        retry_at: Option<i64>,
    ) -> Result<(), ApiError> {
        self.transition(arn, |secret, now| {
            t::fail(secret, token, error, retry_at, now)
        })
        .await
        .map(drop)
    }

    /// Moves the due time of the rotation `token` to `at_ms` and keeps its progress: the
    /// driver backs off after an error of Rotary's own (not the function's), so a lasting
    /// fault does not re-run the rotation at every scheduler poll. See: #13
    pub async fn defer_rotation(&self, arn: &str, token: &str, at_ms: i64) -> Result<(), ApiError> {
        self.transition(arn, |secret, _| t::defer(secret, token, at_ms))
            .await
            .map(drop)
    }

    /// Drops a rotation whose version lost AWSPENDING (a new value was written meanwhile).
    pub async fn abandon_rotation(&self, arn: &str, token: &str) -> Result<(), ApiError> {
        self.transition(arn, |secret, now| t::abandon(secret, token, now))
            .await
            .map(drop)
    }

    /// The rotation configuration of a secret (for history, compliance and the driver).
    pub async fn rotation_of(
        &self,
        id: &str,
    ) -> Result<(String, String, Option<RotationConfig>, bool), ApiError> {
        let s = self.resolve(id).await?;
        let stuck = t::stuck_pending(&s).is_some();
        Ok((
            s.row.uid.clone(),
            s.row.arn.clone(),
            s.doc.rotation.clone(),
            stuck,
        ))
    }

    /// The rotation standing of every live secret.
    pub async fn rotation_standings(&self) -> Result<Vec<RotationStanding>, ApiError> {
        Ok(self
            .list_matching(&[], false)
            .await?
            .into_iter()
            .map(|s| RotationStanding {
                pending_on_non_current: t::stuck_pending(&s).is_some(),
                due_ms: s.row.rotation_due_ms,
                arn: s.row.arn.clone(),
                name: s.row.name.clone(),
                rotation: s.doc.rotation.clone(),
            })
            .collect())
    }
}

#[cfg(test)]
#[path = "rotation_tests.rs"]
mod tests;
