//! The rotation state persisted in each secret's metadata document, and the typed names of
//! its parts (steps, triggers, outcomes) shared by the driver, history, metrics and the API.
//!
//! A leaf module: it knows nothing of the service or the store, so the types can be tested
//! and reused on their own. Documents written by older servers must keep loading: new
//! fields are optional, and the persisted encodings below are kept as they were.

use rotary_wire::dto::RotationRulesType;
use serde::{Deserialize, Serialize};

use crate::schedule::Schedule;

/// One of the four rotation steps, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Step {
    /// Generate the new value and store it as `AWSPENDING`.
    #[serde(rename = "createSecret")]
    CreateSecret,
    /// Set the pending credentials in the target service.
    #[serde(rename = "setSecret")]
    SetSecret,
    /// Check the pending credentials work.
    #[serde(rename = "testSecret")]
    TestSecret,
    /// Move `AWSCURRENT` to the pending version.
    #[serde(rename = "finishSecret")]
    FinishSecret,
}

impl Step {
    /// All steps in the order the driver runs them.
    pub const ALL: [Step; 4] = [
        Step::CreateSecret,
        Step::SetSecret,
        Step::TestSecret,
        Step::FinishSecret,
    ];

    /// The step's name as it appears in the event (`createSecret`, …); templates compare it
    /// literally.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::CreateSecret => "createSecret",
            Step::SetSecret => "setSecret",
            Step::TestSecret => "testSecret",
            Step::FinishSecret => "finishSecret",
        }
    }

    /// The step after this one; `None` after finishSecret.
    pub fn next(self) -> Option<Step> {
        match self {
            Step::CreateSecret => Some(Step::SetSecret),
            Step::SetSecret => Some(Step::TestSecret),
            Step::TestSecret => Some(Step::FinishSecret),
            Step::FinishSecret => None,
        }
    }

    /// The steps from this one to the last, in order.
    pub fn from_here(self) -> impl Iterator<Item = Step> {
        Step::ALL.into_iter().filter(move |s| *s >= self)
    }

    fn index(self) -> u8 {
        match self {
            Step::CreateSecret => 0,
            Step::SetSecret => 1,
            Step::TestSecret => 2,
            Step::FinishSecret => 3,
        }
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What started a rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// RotateSecret.
    Api,
    /// The secret's schedule.
    Schedule,
    /// An unfinished rotation (AWSPENDING left on a version) run again.
    Redrive,
}

impl Trigger {
    /// The name in history records and metrics (`api`, `schedule`, `redrive`).
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Api => "api",
            Trigger::Schedule => "schedule",
            Trigger::Redrive => "redrive",
        }
    }
}

/// How a rotation attempt (or one of its steps) ended, as the secret's state, history
/// records and metrics name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Outcome {
    /// Still running.
    InProgress,
    /// Done: AWSCURRENT moved (or, for a test rotation, testSecret passed).
    // Secrets' documents written by older servers spell the final outcomes in lower case.
    #[serde(alias = "succeeded")]
    Succeeded,
    /// Given up (or a step failed).
    #[serde(alias = "failed")]
    Failed,
    /// Failed; tried again after a backoff.
    Retrying,
    /// A new value was written meanwhile, or the rotation was cancelled.
    #[serde(alias = "abandoned")]
    Abandoned,
}

impl Outcome {
    /// The name in history records and metrics (`Succeeded`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::InProgress => "InProgress",
            Outcome::Succeeded => "Succeeded",
            Outcome::Failed => "Failed",
            Outcome::Retrying => "Retrying",
            Outcome::Abandoned => "Abandoned",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
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
    /// Outcome of the last finished attempt: succeeded, failed or abandoned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_outcome: Option<Outcome>,
    /// Error of the last failed attempt (never a secret value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl RotationConfig {
    /// Whether the last finished attempt failed.
    pub fn last_failed(&self) -> bool {
        self.last_outcome == Some(Outcome::Failed)
    }
}

/// A rotation in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationState {
    /// The ClientRequestToken: id of the pending version, the same for every step and retry.
    pub token: String,
    /// The RotationToken sent in events.
    pub rotation_token: String,
    /// The next step to run; `None` once finishSecret has returned and only the completion
    /// check is left.
    #[serde(with = "next_step_index")]
    pub next_step: Option<Step>,
    /// Attempt number, from 1.
    pub attempt: u32,
    /// When the rotation started.
    pub started_ms: i64,
    /// What started it.
    pub trigger: Trigger,
    /// Only `testSecret` runs, on a copy of AWSCURRENT (RotateImmediately=false).
    #[serde(default)]
    pub test_only: bool,
    /// Started after its window ended (the server was down).
    #[serde(default)]
    pub late: bool,
    /// Id of the history record of this rotation.
    pub history_id: String,
}

impl RotationState {
    /// The steps this attempt still has to run, in order: testSecret alone for a test
    /// rotation, else from the next step to finishSecret.
    pub fn remaining_steps(&self) -> Vec<Step> {
        if self.test_only {
            return vec![Step::TestSecret];
        }
        self.next_step
            .map(|s| s.from_here().collect())
            .unwrap_or_default()
    }
}

/// `next_step` is persisted as the step's index (0 createSecret … 3 finishSecret, 4 when
/// every step has run), the encoding documents have always used.
mod next_step_index {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::Step;

    pub(super) fn serialize<S: Serializer>(step: &Option<Step>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(step.map_or(4, Step::index))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Step>, D::Error> {
        match u8::deserialize(d)? {
            4 => Ok(None),
            i => Step::ALL
                .into_iter()
                .find(|s| s.index() == i)
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom(format!("no rotation step {i}"))),
        }
    }
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

#[cfg(test)]
mod tests {
    use super::*;

    fn state(next_step: Option<Step>, test_only: bool) -> RotationState {
        RotationState {
            token: "t".into(),
            rotation_token: "r".into(),
            next_step,
            attempt: 1,
            started_ms: 0,
            trigger: Trigger::Api,
            test_only,
            late: false,
            history_id: "h".into(),
        }
    }

    #[test]
    fn documents_of_older_servers_load_unchanged() {
        let old = r#"{"enabled":true,"in_progress":{"token":"t","rotation_token":"r","next_step":1,"attempt":2,"started_ms":5,"trigger":"redrive","history_id":"h"},"last_outcome":"failed"}"#;
        let c: RotationConfig = serde_json::from_str(old).unwrap();
        let s = c.in_progress.as_ref().unwrap();
        assert_eq!(s.next_step, Some(Step::SetSecret));
        assert_eq!(s.trigger, Trigger::Redrive);
        assert!(c.last_failed());
        let again = serde_json::to_value(&c).unwrap();
        assert_eq!(again["in_progress"]["next_step"], 1);
        assert_eq!(again["in_progress"]["trigger"], "redrive");
        for (i, step) in [
            (0, Some(Step::CreateSecret)),
            (3, Some(Step::FinishSecret)),
            (4, None),
        ] {
            let json = old.replace("\"next_step\":1", &format!("\"next_step\":{i}"));
            let c: RotationConfig = serde_json::from_str(&json).unwrap();
            assert_eq!(c.in_progress.unwrap().next_step, step);
        }
        let bad = old.replace("\"next_step\":1", "\"next_step\":5");
        assert!(serde_json::from_str::<RotationConfig>(&bad).is_err());
    }

    #[test]
    fn remaining_steps_follow_the_next_step() {
        assert_eq!(
            state(Some(Step::CreateSecret), false).remaining_steps(),
            Step::ALL
        );
        assert_eq!(
            state(Some(Step::TestSecret), false).remaining_steps(),
            [Step::TestSecret, Step::FinishSecret]
        );
        assert!(state(None, false).remaining_steps().is_empty());
        assert_eq!(
            state(Some(Step::TestSecret), true).remaining_steps(),
            [Step::TestSecret]
        );
        assert_eq!(Step::FinishSecret.next(), None);
        assert_eq!(Step::CreateSecret.next(), Some(Step::SetSecret));
    }

    #[test]
    fn names_match_the_wire() {
        let names: Vec<String> = Step::ALL
            .iter()
            .map(|s| serde_json::to_string(s).unwrap())
            .collect();
        assert_eq!(
            names,
            [
                r#""createSecret""#,
                r#""setSecret""#,
                r#""testSecret""#,
                r#""finishSecret""#
            ]
        );
        assert_eq!(
            serde_json::to_string(&Outcome::Retrying).unwrap(),
            r#""Retrying""#
        );
        assert_eq!(
            serde_json::to_string(&Trigger::Schedule).unwrap(),
            r#""schedule""#
        );
    }
}
