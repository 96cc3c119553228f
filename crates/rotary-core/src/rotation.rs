//! Rotation state kept with each secret, and the operations that move it: RotateSecret,
//! CancelRotateSecret, and the transitions the rotation driver makes (spec §5).
//!
//! The driver (crate `rotary-rotation`) runs the four steps; this module owns what must be
//! atomic with the secret's versions and labels: the AWSPENDING placeholder, the completion
//! check and clean-up, the schedule, and the persistent `(token, next step)` that lets a
//! rotation resume after a crash.

use rand::rngs::OsRng;
use rotary_store::VersionRow;
use rotary_wire::dto::{
    RotateSecretRequest, RotateSecretResponse, RotationRulesType, SecretIdRequest,
};
use rotary_wire::validate::Validate;
use rotary_wire::{api_error, ApiError, Timestamp};
use serde::{Deserialize, Serialize};

use crate::labels::{self, AWSCURRENT, AWSPENDING};
use crate::schedule::Schedule;
use crate::secret::{Plain, Secret, Version};
use crate::service::{internal, msg, Ctx, Outcome, SecretsService};

/// Decides whether a rotation function ARN can be invoked. Implemented by the function
/// registry of `rotary-rotation`.
pub trait FunctionDirectory: Send + Sync {
    /// Whether `lambda_arn` names a function this server can invoke.
    fn is_invokable(&self, lambda_arn: &str) -> bool;
}

/// Rotation settings and progress of one secret, stored in its metadata document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationConfig {
    /// Whether scheduled rotation is on.
    pub enabled: bool,
    /// The rotation function.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lambda_arn: Option<String>,
    /// The rules as the user gave them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<RotationRulesType>,
    /// Last successful rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rotated_ms: Option<i64>,
    /// End of the next rotation window (`NextRotationDate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_rotation_ms: Option<i64>,
    /// The rotation in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_progress: Option<RotationState>,
    /// Start of the day-based schedule: RotateSecret, the last rotation, or the last value
    /// written by hand (a manual change counts as a rotation for `AutomaticallyAfterDays`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_anchor_ms: Option<i64>,
    /// Outcome of the last finished attempt: `succeeded`, `failed` or `abandoned`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_outcome: Option<String>,
    /// Error of the last failed attempt (never a secret value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// A rotation in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationState {
    /// The ClientRequestToken: id of the pending version, the same for every step and retry.
    pub token: String,
    /// The RotationToken sent in events.
    pub rotation_token: String,
    /// Index of the next step to run (0 createSecret … 3 finishSecret, 4 = done).
    pub next_step: u8,
    /// Attempt number, from 1.
    pub attempt: u32,
    /// When the rotation started.
    pub started_ms: i64,
    /// `api`, `schedule` or `redrive`.
    pub trigger: String,
    /// Only `testSecret` runs, on a copy of AWSCURRENT (RotateImmediately=false).
    #[serde(default)]
    pub test_only: bool,
    /// Started after its window ended (the server was down).
    #[serde(default)]
    pub late: bool,
    /// Id of the history record of this rotation.
    pub history_id: String,
}

/// A rotation the driver should run now.
#[derive(Debug, Clone)]
pub struct DueRotation {
    /// Internal id.
    pub uid: String,
    /// Secret ARN (the event's SecretId).
    pub arn: String,
    /// Secret name.
    pub name: String,
    /// Function to invoke.
    pub lambda_arn: String,
    /// State (token, next step, attempt).
    pub state: RotationState,
    /// Whether this call started it (as opposed to resuming one).
    pub started_now: bool,
    /// When it was due (for the scheduler-lag metric).
    pub due_ms: i64,
}

/// What the completion check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    /// AWSCURRENT is on the new version; AWSPENDING was removed.
    Succeeded,
    /// finishSecret returned but AWSCURRENT did not move.
    NotCurrent,
    /// The rotation is no longer the one in progress (abandoned or cancelled).
    Gone,
}

/// Where the pending version stands between steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pending {
    /// Still AWSPENDING: go on.
    Pending,
    /// The rotation state no longer names this token, or AWSPENDING was moved away
    /// (someone wrote a new value): abandoned.
    Abandoned,
}

const PREVIOUS_NOT_COMPLETE: &str =
    "A previous rotation isn't complete. That rotation will be reattempted.";
const NO_FUNCTION: &str = "No Lambda rotation function ARN is associated with this secret.";
const NOT_INVOKABLE: &str = "Secrets Manager cannot invoke the specified Lambda function. Ensure that the function policy grants access to the principal secretsmanager.amazonaws.com.";

/// The step names, in order.
pub const STEPS: [&str; 4] = ["createSecret", "setSecret", "testSecret", "finishSecret"];

fn new_token() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn rotation_token() -> String {
    format!("{}-{}", uuid::Uuid::new_v4(), uuid::Uuid::new_v4().simple())
}

/// The schedule of stored rules, if any.
pub fn schedule_of(rules: Option<&RotationRulesType>) -> Option<Schedule> {
    let r = rules?;
    Schedule::parse(
        r.automatically_after_days,
        r.schedule_expression.as_deref(),
        r.duration.as_deref(),
    )
    .ok()
}

/// Whether AWSPENDING sits on a version that is not AWSCURRENT (a rotation in progress).
fn stuck_pending(secret: &Secret) -> Option<usize> {
    let p = secret.label_holder(AWSPENDING)?;
    (secret.label_holder(AWSCURRENT) != Some(p)).then_some(p)
}

impl SecretsService {
    /// Plans the next scheduled rotation of `secret` after `now`: sets NextRotationDate (the
    /// window's end) and the due time (a random instant inside the window).
    fn schedule_next(&self, secret: &mut Secret, now: i64) {
        let rotation = secret.doc.rotation.get_or_insert_with(Default::default);
        let anchor = rotation.schedule_anchor_ms.max(rotation.last_rotated_ms);
        let window = schedule_of(rotation.rules.as_ref()).and_then(|s| s.next_window(now, anchor));
        match (rotation.enabled, window) {
            (true, Some(w)) => {
                rotation.next_rotation_ms = Some(w.next_rotation_date_ms());
                let at = w.random_instant(&mut OsRng).max(now);
                secret.row.rotation_due_ms = Some(at);
            }
            _ => {
                rotation.next_rotation_ms = None;
                secret.row.rotation_due_ms = None;
            }
        }
    }

    /// A value written by hand restarts a day-based schedule (spec §5.7); a rotation in
    /// progress is left to the driver, which records it abandoned and replans.
    pub(crate) fn value_written(&self, secret: &mut Secret, now: i64) {
        let Some(rotation) = secret.doc.rotation.as_mut() else {
            return;
        };
        if !rotation.enabled || rotation.in_progress.is_some() {
            return;
        }
        rotation.schedule_anchor_ms = Some(now);
        self.schedule_next(secret, now);
    }

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
        let test_version = new_token();
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
                if let Some(p) = stuck_pending(secret) {
                    // Re-drive the unfinished rotation with its own version id.
                    let pending_id = secret.versions[p].row.version_id.clone();
                    let rotation = secret.doc.rotation.get_or_insert_with(Default::default);
                    if rotation.lambda_arn.is_none() {
                        rotation.lambda_arn = Some(lambda_arn.clone());
                    }
                    rotation.enabled = true;
                    if rotation.in_progress.is_none() {
                        rotation.in_progress = Some(RotationState {
                            token: pending_id,
                            rotation_token: rotation_token(),
                            next_step: 0,
                            attempt: 1,
                            started_ms: now,
                            trigger: "redrive".into(),
                            test_only: false,
                            late: false,
                            history_id: new_token(),
                        });
                    }
                    secret.row.rotation_due_ms = Some(now);
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
                self.schedule_next(secret, now);
                let version_id = if immediately {
                    self.add_placeholder(secret, &token, now);
                    self.begin(secret, &token, "api", false, false, now);
                    Some(token.clone())
                } else {
                    let value = current.as_ref().and_then(|c| Plain::unframe(c.expose()));
                    if let Some(value) = value {
                        let kms = secret.doc.kms_key().to_owned();
                        let sealed = self.seal(&kms, &secret.row.arn, &test_version, &value)?;
                        self.add_placeholder(secret, &test_version, now);
                        if let Some(i) = secret.version_index(&test_version) {
                            let v = &mut secret.versions[i];
                            v.new_ciphertext = Some(sealed);
                            v.row.has_value = true;
                            v.row.kms_key_id = Some(kms);
                        }
                        self.begin(secret, &test_version, "api", true, false, now);
                    }
                    None
                };
                Ok(Outcome::Changed(Ok(RotateSecretResponse { version_id, ..resp }), Some(now)))
            })
            .await?;
        self.rotation_wakeup.notify_one();
        redrive.map_err(|()| api_error!(InvalidRequestException, "{}", PREVIOUS_NOT_COMPLETE))
    }

    /// Adds the valueless AWSPENDING placeholder version (spec §5.3 a.2).
    fn add_placeholder(&self, secret: &mut Secret, token: &str, now: i64) {
        secret.versions.push(Version {
            row: VersionRow {
                version_id: token.to_owned(),
                seq: secret.next_seq(),
                created_ms: now,
                last_accessed_ms: None,
                stages: Vec::new(),
                kms_key_id: None,
                has_value: false,
            },
            new_ciphertext: None,
            is_new: true,
        });
        let idx = secret.versions.len() - 1;
        let mut l = secret.labels();
        labels::move_one(&mut l, idx, AWSPENDING);
        secret.set_labels(l);
    }

    fn begin(
        &self,
        secret: &mut Secret,
        token: &str,
        trigger: &str,
        test_only: bool,
        late: bool,
        now: i64,
    ) {
        let rotation = secret.doc.rotation.get_or_insert_with(Default::default);
        rotation.in_progress = Some(RotationState {
            token: token.to_owned(),
            rotation_token: rotation_token(),
            next_step: if test_only { 2 } else { 0 },
            attempt: 1,
            started_ms: now,
            trigger: trigger.to_owned(),
            test_only,
            late,
            history_id: new_token(),
        });
        secret.row.rotation_due_ms = Some(now);
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
            let Some(rotation) = secret.doc.rotation.as_mut().filter(|r| r.lambda_arn.is_some()) else {
                return Err(api_error!(
                    InvalidRequestException,
                    "You tried to enable rotation on a secret that doesn't already have a Lambda function ARN configured and you didn't include such an ARN as a parameter in this call."
                ));
            };
            rotation.enabled = false;
            rotation.next_rotation_ms = None;
            let cancelled = rotation.in_progress.take().filter(|s| !s.test_only);
            secret.row.rotation_due_ms = None;
            let version_id = cancelled
                .map(|s| s.token)
                .or_else(|| stuck_pending(secret).map(|i| secret.versions[i].row.version_id.clone()));
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
                let Some(rotation) = secret.doc.rotation.clone() else {
                    secret.row.rotation_due_ms = None;
                    return Ok(Outcome::Changed(None, None));
                };
                if secret.row.rotation_due_ms.is_none_or(|d| d > now) {
                    return Ok(Outcome::Unchanged(None));
                }
                let Some(lambda_arn) = rotation.lambda_arn.clone() else {
                    secret.row.rotation_due_ms = None;
                    return Ok(Outcome::Changed(None, None));
                };
                let (uid, arn, name) = (
                    secret.row.uid.clone(),
                    secret.row.arn.clone(),
                    secret.row.name.clone(),
                );
                let due_ms = secret.row.rotation_due_ms.unwrap_or(now);
                let due = |state: RotationState, started_now| DueRotation {
                    uid: uid.clone(),
                    arn: arn.clone(),
                    name: name.clone(),
                    lambda_arn: lambda_arn.clone(),
                    state,
                    started_now,
                    due_ms,
                };
                if let Some(state) = rotation.in_progress.clone() {
                    return Ok(Outcome::Unchanged(Some(due(state, false))));
                }
                if secret.is_deleted() || !rotation.enabled {
                    secret.row.rotation_due_ms = None;
                    return Ok(Outcome::Changed(None, None));
                }
                let late = rotation.next_rotation_ms.is_some_and(|end| now > end);
                if let Some(p) = stuck_pending(secret) {
                    let token = secret.versions[p].row.version_id.clone();
                    self.begin(secret, &token, "redrive", false, late, now);
                } else {
                    let token = new_token();
                    self.add_placeholder(secret, &token, now);
                    self.begin(secret, &token, "schedule", false, late, now);
                }
                let state = secret
                    .doc
                    .rotation
                    .as_ref()
                    .and_then(|r| r.in_progress.clone());
                Ok(Outcome::Changed(state.map(|s| due(s, true)), None))
            })
            .await;
        match result {
            Err(e) if e.code() == rotary_wire::ErrorCode::ResourceNotFoundException => Ok(None),
            r => r,
        }
    }

    async fn arn_of_uid(&self, uid: &str) -> Result<Option<String>, ApiError> {
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

    /// Records that step `step` (index) of the rotation `token` completed.
    pub async fn step_completed(&self, arn: &str, token: &str, step: u8) -> Result<bool, ApiError> {
        self.mutate(arn, None, |secret, _| {
            let Some(state) = secret
                .doc
                .rotation
                .as_mut()
                .and_then(|r| r.in_progress.as_mut())
                .filter(|s| s.token == token)
            else {
                return Ok(Outcome::Unchanged(false));
            };
            state.next_step = step + 1;
            Ok(Outcome::Changed(true, None))
        })
        .await
    }

    /// The completion check after finishSecret: success iff the new version holds
    /// AWSCURRENT; then AWSPENDING is removed and the next window planned.
    pub async fn complete_rotation(&self, arn: &str, token: &str) -> Result<Completion, ApiError> {
        self.mutate(arn, None, |secret, _| {
            let now = self.now();
            let ours = secret
                .doc
                .rotation
                .as_ref()
                .and_then(|r| r.in_progress.as_ref())
                .is_some_and(|s| s.token == token);
            if !ours {
                return Ok(Outcome::Unchanged(Completion::Gone));
            }
            let Some(i) = secret.version_index(token) else {
                return Ok(Outcome::Unchanged(Completion::Gone));
            };
            if !secret.versions[i]
                .row
                .stages
                .iter()
                .any(|s| s == AWSCURRENT)
            {
                return Ok(Outcome::Unchanged(Completion::NotCurrent));
            }
            secret.versions[i].row.stages.retain(|s| s != AWSPENDING);
            let rotation = secret.doc.rotation.get_or_insert_with(Default::default);
            rotation.in_progress = None;
            rotation.last_rotated_ms = Some(now);
            rotation.last_outcome = Some("succeeded".into());
            rotation.last_error = None;
            self.schedule_next(secret, now);
            Ok(Outcome::Changed(Completion::Succeeded, Some(now)))
        })
        .await
    }

    /// Ends a test rotation: removes the test version and restores the schedule RotateSecret
    /// planned. The plan is made as of the test's start, not its end: a test that ends after
    /// the window must not push the window a period further (the scheduled rotation then
    /// runs at once, late). See: #13
    pub async fn finish_test_rotation(
        &self,
        arn: &str,
        token: &str,
        error: Option<&str>,
    ) -> Result<(), ApiError> {
        self.mutate(arn, None, |secret, _| {
            let now = self.now();
            let Some(started_ms) = secret
                .doc
                .rotation
                .as_ref()
                .and_then(|r| r.in_progress.as_ref())
                .filter(|s| s.token == token && s.test_only)
                .map(|s| s.started_ms)
            else {
                return Ok(Outcome::Unchanged(()));
            };
            if let Some(i) = secret.version_index(token) {
                secret.remove_version(i);
            }
            let rotation = secret.doc.rotation.get_or_insert_with(Default::default);
            rotation.in_progress = None;
            if let Some(e) = error {
                rotation.last_outcome = Some("failed".into());
                rotation.last_error = Some(e.to_owned());
            }
            self.schedule_next(secret, started_ms.min(now));
            Ok(Outcome::Changed((), None))
        })
        .await
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
        self.mutate(arn, None, |secret, _| {
            let now = self.now();
            let Some(rotation) = secret.doc.rotation.as_mut() else {
                return Ok(Outcome::Unchanged(()));
            };
            let Some(state) = rotation.in_progress.as_mut().filter(|s| s.token == token) else {
                return Ok(Outcome::Unchanged(()));
            };
            rotation.last_error = Some(error.to_owned());
            match retry_at {
                Some(at) => {
                    state.attempt += 1;
                    state.next_step = 0;
                    state.history_id = new_token();
                    secret.row.rotation_due_ms = Some(at);
                }
                None => {
                    rotation.in_progress = None;
                    rotation.last_outcome = Some("failed".into());
                    self.schedule_next(secret, now);
                }
            }
            Ok(Outcome::Changed((), None))
        })
        .await
    }

    /// Moves the due time of the rotation `token` to `at_ms` and keeps its progress: the
    /// driver backs off after an error of Rotary's own (not the function's), so a lasting
    /// fault does not re-run the rotation at every scheduler poll. See: #13
    pub async fn defer_rotation(&self, arn: &str, token: &str, at_ms: i64) -> Result<(), ApiError> {
        self.mutate(arn, None, |secret, _| {
            let ours = secret
                .doc
                .rotation
                .as_ref()
                .and_then(|r| r.in_progress.as_ref())
                .is_some_and(|s| s.token == token);
            if !ours || secret.row.rotation_due_ms == Some(at_ms) {
                return Ok(Outcome::Unchanged(()));
            }
            secret.row.rotation_due_ms = Some(at_ms);
            Ok(Outcome::Changed((), None))
        })
        .await
    }

    /// Drops a rotation whose version lost AWSPENDING (a new value was written meanwhile).
    pub async fn abandon_rotation(&self, arn: &str, token: &str) -> Result<(), ApiError> {
        self.mutate(arn, None, |secret, _| {
            let now = self.now();
            let Some(rotation) = secret.doc.rotation.as_mut() else {
                return Ok(Outcome::Unchanged(()));
            };
            if rotation
                .in_progress
                .as_ref()
                .is_none_or(|s| s.token != token)
            {
                return Ok(Outcome::Unchanged(()));
            }
            rotation.in_progress = None;
            rotation.last_outcome = Some("abandoned".into());
            self.schedule_next(secret, now);
            Ok(Outcome::Changed((), None))
        })
        .await
    }

    /// The rotation configuration of a secret (for history, compliance and the driver).
    pub async fn rotation_of(
        &self,
        id: &str,
    ) -> Result<(String, String, Option<RotationConfig>, bool), ApiError> {
        let s = self.resolve(id).await?;
        let stuck = stuck_pending(&s).is_some();
        Ok((
            s.row.uid.clone(),
            s.row.arn.clone(),
            s.doc.rotation.clone(),
            stuck,
        ))
    }
}

/// Fills the rotation members of DescribeSecret / ListSecrets entries.
pub fn describe_rotation(
    rotation: &RotationConfig,
    out: &mut rotary_wire::dto::DescribeSecretResponse,
) {
    if rotation.lambda_arn.is_none() && !rotation.enabled {
        return;
    }
    out.rotation_enabled = Some(rotation.enabled);
    out.rotation_lambda_arn = rotation.lambda_arn.clone();
    out.rotation_rules = rotation.rules.clone().map(|mut r| {
        if r.automatically_after_days.is_none() {
            r.automatically_after_days =
                schedule_of(Some(&r)).map(|s| s.automatically_after_days());
        }
        r
    });
    if rotation.enabled {
        out.last_rotated_date = rotation.last_rotated_ms.map(Timestamp);
        out.next_rotation_date = rotation.next_rotation_ms.map(Timestamp);
    }
}

/// One secret's rotation standing, for compliance reports.
#[derive(Debug, Clone)]
pub struct RotationStanding {
    /// ARN.
    pub arn: String,
    /// Name.
    pub name: String,
    /// Rotation configuration, if ever configured.
    pub rotation: Option<RotationConfig>,
    /// AWSPENDING is on a version other than AWSCURRENT.
    pub pending_on_non_current: bool,
    /// When the scheduler runs the secret's rotation next (a retry's time while one is
    /// failing).
    pub due_ms: Option<i64>,
}

impl SecretsService {
    /// The rotation standing of every live secret.
    pub async fn rotation_standings(&self) -> Result<Vec<RotationStanding>, ApiError> {
        Ok(self
            .list_matching(&[], false)
            .await?
            .into_iter()
            .map(|s| RotationStanding {
                pending_on_non_current: stuck_pending(&s).is_some(),
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
