//! The transitions of a secret's rotation state, as plain functions on a working copy of
//! the secret (spec §5). The service runs each inside one compare-and-swap write
//! (`service/rotation.rs`); here they are pure, so every transition is tested on its own.
//!
//! Each function that may leave the secret as it was returns whether it changed anything,
//! so the caller writes only real changes.

use rand::rngs::OsRng;
use rotary_store::VersionRow;

use super::state::{schedule_of, Completion, Outcome, RotationState, Step, Trigger};
use crate::labels::{self, AWSCURRENT, AWSPENDING};
use crate::secret::{Secret, Version};

/// A fresh version id (ClientRequestToken) or history id.
pub(crate) fn new_token() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn rotation_token() -> String {
    format!("{}-{}", uuid::Uuid::new_v4(), uuid::Uuid::new_v4().simple())
}

/// Whether AWSPENDING sits on a version that is not AWSCURRENT (a rotation in progress or
/// left unfinished); its index.
pub(crate) fn stuck_pending(secret: &Secret) -> Option<usize> {
    let p = secret.label_holder(AWSPENDING)?;
    (secret.label_holder(AWSCURRENT) != Some(p)).then_some(p)
}

/// The rotation in progress, if it is the one of `token`.
fn in_progress<'a>(secret: &'a mut Secret, token: &str) -> Option<&'a mut RotationState> {
    secret
        .doc
        .rotation
        .as_mut()
        .and_then(|r| r.in_progress.as_mut())
        .filter(|s| s.token == token)
}

/// Plans the next scheduled rotation of `secret` after `now`: sets NextRotationDate (the
/// window's end) and the due time (a random instant inside the window); clears both when
/// rotation is off or has no schedule.
pub(crate) fn schedule_next(secret: &mut Secret, now: i64) {
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
pub(crate) fn value_written(secret: &mut Secret, now: i64) {
    let Some(rotation) = secret.doc.rotation.as_mut() else {
        return;
    };
    if !rotation.enabled || rotation.in_progress.is_some() {
        return;
    }
    rotation.schedule_anchor_ms = Some(now);
    schedule_next(secret, now);
}

/// Adds the valueless AWSPENDING placeholder version `token` (spec §5.3 a.2).
pub(crate) fn add_placeholder(secret: &mut Secret, token: &str, now: i64) {
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

/// Starts a rotation of version `token`, due at once: from createSecret, or from
/// testSecret alone for a test rotation.
pub(crate) fn begin(
    secret: &mut Secret,
    token: &str,
    trigger: Trigger,
    test_only: bool,
    late: bool,
    now: i64,
) {
    let rotation = secret.doc.rotation.get_or_insert_with(Default::default);
    rotation.in_progress = Some(RotationState {
        token: token.to_owned(),
        rotation_token: rotation_token(),
        next_step: Some(if test_only {
            Step::TestSecret
        } else {
            Step::CreateSecret
        }),
        attempt: 1,
        started_ms: now,
        trigger,
        test_only,
        late,
        history_id: new_token(),
    });
    secret.row.rotation_due_ms = Some(now);
}

/// RotateSecret on a secret whose AWSPENDING is left on version `pending` (spec §5.1):
/// rotation is turned on and the unfinished rotation is run again with its own version id,
/// unless one is already in progress.
pub(crate) fn redrive(secret: &mut Secret, pending: usize, lambda_arn: &str, now: i64) {
    let pending_id = secret.versions[pending].row.version_id.clone();
    let rotation = secret.doc.rotation.get_or_insert_with(Default::default);
    if rotation.lambda_arn.is_none() {
        rotation.lambda_arn = Some(lambda_arn.to_owned());
    }
    rotation.enabled = true;
    if rotation.in_progress.is_none() {
        begin(secret, &pending_id, Trigger::Redrive, false, false, now);
    }
    secret.row.rotation_due_ms = Some(now);
}

/// What the scheduler found on a secret it took as due.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Taken {
    /// Not due (yet, or any more): nothing changed.
    NotDue,
    /// Nothing to rotate (no configuration, no function, deleted or disabled): it was taken
    /// off the schedule. The secret changed.
    Unscheduled,
    /// A rotation in progress to resume; nothing changed.
    Resume(RotationState),
    /// A rotation started now (scheduled, or a re-drive of AWSPENDING left on a version).
    /// The secret changed.
    Started(RotationState),
}

/// The scheduler takes a due secret: resumes its rotation in progress, starts a scheduled
/// one (or re-drives a stuck one), or takes it off the schedule when nothing is to be done.
pub(crate) fn take_due(secret: &mut Secret, now: i64) -> Taken {
    let Some(rotation) = secret.doc.rotation.as_ref() else {
        secret.row.rotation_due_ms = None;
        return Taken::Unscheduled;
    };
    if secret.row.rotation_due_ms.is_none_or(|d| d > now) {
        return Taken::NotDue;
    }
    if rotation.lambda_arn.is_none() {
        secret.row.rotation_due_ms = None;
        return Taken::Unscheduled;
    }
    if let Some(state) = rotation.in_progress.clone() {
        return Taken::Resume(state);
    }
    if secret.is_deleted() || !rotation.enabled {
        secret.row.rotation_due_ms = None;
        return Taken::Unscheduled;
    }
    let late = rotation.next_rotation_ms.is_some_and(|end| now > end);
    if let Some(p) = stuck_pending(secret) {
        let token = secret.versions[p].row.version_id.clone();
        begin(secret, &token, Trigger::Redrive, false, late, now);
    } else {
        let token = new_token();
        add_placeholder(secret, &token, now);
        begin(secret, &token, Trigger::Schedule, false, late, now);
    }
    match secret
        .doc
        .rotation
        .as_ref()
        .and_then(|r| r.in_progress.clone())
    {
        Some(state) => Taken::Started(state),
        None => Taken::Unscheduled,
    }
}

/// Records that `step` of the rotation `token` completed. `false` (nothing changed) when
/// that rotation is no longer the one in progress.
pub(crate) fn step_completed(secret: &mut Secret, token: &str, step: Step) -> bool {
    let Some(state) = in_progress(secret, token) else {
        return false;
    };
    state.next_step = step.next();
    true
}

/// The completion check after finishSecret: success iff the new version holds AWSCURRENT;
/// then AWSPENDING is removed from it, the outcome recorded and the next window planned.
/// Only [`Completion::Succeeded`] changes the secret.
pub(crate) fn complete(secret: &mut Secret, token: &str, now: i64) -> Completion {
    if in_progress(secret, token).is_none() {
        return Completion::Gone;
    }
    let Some(i) = secret.version_index(token) else {
        return Completion::Gone;
    };
    let stages = &mut secret.versions[i].row.stages;
    if !stages.iter().any(|s| s == AWSCURRENT) {
        return Completion::NotCurrent;
    }
    stages.retain(|s| s != AWSPENDING);
    let rotation = secret.doc.rotation.get_or_insert_with(Default::default);
    rotation.in_progress = None;
    rotation.last_rotated_ms = Some(now);
    rotation.last_outcome = Some(Outcome::Succeeded);
    rotation.last_error = None;
    schedule_next(secret, now);
    Completion::Succeeded
}

/// Ends the test rotation `token`: removes the test version and restores the schedule
/// RotateSecret planned. The plan is made as of the test's start, not its end: a test that
/// ends after the window must not push the window a period further (the scheduled rotation
/// then runs at once, late).
pub(crate) fn finish_test(secret: &mut Secret, token: &str, error: Option<&str>, now: i64) -> bool {
    let Some(started_ms) = in_progress(secret, token)
        .filter(|s| s.test_only)
        .map(|s| s.started_ms)
    else {
        return false;
    };
    if let Some(i) = secret.version_index(token) {
        secret.remove_version(i);
    }
    let rotation = secret.doc.rotation.get_or_insert_with(Default::default);
    rotation.in_progress = None;
    if let Some(e) = error {
        rotation.last_outcome = Some(Outcome::Failed);
        rotation.last_error = Some(e.to_owned());
    }
    schedule_next(secret, started_ms.min(now));
    true
}

/// Records a failed attempt of the rotation `token`: retried from createSecret with the
/// same token at `retry_at`, or, when `retry_at` is `None`, given up: AWSPENDING stays
/// where it is (AWSCURRENT untouched) and the next scheduled window or RotateSecret
/// re-drives it.
pub(crate) fn fail(
    secret: &mut Secret,
    token: &str,
    error: &str,
    retry_at: Option<i64>,
    now: i64,
) -> bool {
    let Some(state) = in_progress(secret, token) else {
        return false;
    };
    match retry_at {
        Some(at) => {
            state.attempt += 1;
            state.next_step = Some(Step::CreateSecret);
            state.history_id = new_token();
            secret.row.rotation_due_ms = Some(at);
        }
        None => {
            let rotation = secret.doc.rotation.get_or_insert_with(Default::default);
            rotation.in_progress = None;
            rotation.last_outcome = Some(Outcome::Failed);
            schedule_next(secret, now);
        }
    }
    if let Some(rotation) = secret.doc.rotation.as_mut() {
        rotation.last_error = Some(error.to_owned());
    }
    true
}

/// Moves the due time of the rotation `token` to `at_ms`, keeping its progress: the
/// driver backs off after an error of Rotary's own (not the function's), so a lasting
/// fault does not re-run the rotation at every scheduler poll.
pub(crate) fn defer(secret: &mut Secret, token: &str, at_ms: i64) -> bool {
    if in_progress(secret, token).is_none() || secret.row.rotation_due_ms == Some(at_ms) {
        return false;
    }
    secret.row.rotation_due_ms = Some(at_ms);
    true
}

/// Drops the rotation `token`, whose version lost AWSPENDING (a new value was written
/// meanwhile), and plans the next window.
pub(crate) fn abandon(secret: &mut Secret, token: &str, now: i64) -> bool {
    if in_progress(secret, token).is_none() {
        return false;
    }
    let rotation = secret.doc.rotation.get_or_insert_with(Default::default);
    rotation.in_progress = None;
    rotation.last_outcome = Some(Outcome::Abandoned);
    schedule_next(secret, now);
    true
}

/// CancelRotateSecret (spec §5.6): turns scheduled rotation off, keeps the function and
/// rules, and stops a rotation in progress without touching labels. Returns the version id
/// of the stopped (or stuck) rotation; `Err` when no function was ever configured.
pub(crate) fn cancel(secret: &mut Secret) -> Result<Option<String>, ()> {
    let Some(rotation) = secret
        .doc
        .rotation
        .as_mut()
        .filter(|r| r.lambda_arn.is_some())
    else {
        return Err(());
    };
    rotation.enabled = false;
    rotation.next_rotation_ms = None;
    let cancelled = rotation.in_progress.take().filter(|s| !s.test_only);
    secret.row.rotation_due_ms = None;
    Ok(cancelled
        .map(|s| s.token)
        .or_else(|| stuck_pending(secret).map(|i| secret.versions[i].row.version_id.clone())))
}

#[cfg(test)]
#[path = "transitions_tests.rs"]
mod tests;
