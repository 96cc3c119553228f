//! Rotation history: one record per attempt, kept in the store.

use rotary_core::rotation::{Step, Trigger};
use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

/// One step of an attempt.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StepRecord {
    /// The step.
    pub step: Step,
    /// Start (epoch seconds).
    pub started_at: f64,
    /// End (epoch seconds).
    pub ended_at: Option<f64>,
    /// `Succeeded` or `Failed`; `None` while it runs.
    pub outcome: Option<Outcome>,
    /// Why it failed.
    pub error: Option<String>,
    /// What the function printed, with secret values redacted.
    pub output: Option<String>,
}

/// One rotation attempt.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AttemptRecord {
    /// Record id.
    pub id: String,
    /// The secret.
    #[serde(rename = "ARN")]
    pub arn: String,
    /// ClientRequestToken (the new version id).
    pub token: String,
    /// What started the rotation.
    pub trigger: Trigger,
    /// Attempt number of this rotation, from 1.
    pub attempt: u32,
    /// Started after its window ended.
    pub late: bool,
    /// Only testSecret ran (RotateImmediately=false).
    pub test_only: bool,
    /// Start (epoch seconds).
    pub started_at: f64,
    /// End (epoch seconds).
    pub ended_at: Option<f64>,
    /// How the attempt ended (`InProgress` while it runs).
    pub outcome: Outcome,
    /// The step that failed.
    pub failed_step: Option<Step>,
    /// Why it failed.
    pub error: Option<String>,
    /// Next try, when the outcome is `Retrying` (epoch seconds).
    pub next_attempt_at: Option<f64>,
    /// Steps run in this attempt.
    pub steps: Vec<StepRecord>,
}

/// How an attempt (or a step) ended: the type the secret's state uses.
pub use rotary_core::rotation::Outcome;

/// Milliseconds → epoch seconds.
pub fn secs(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// Replaces every occurrence of each secret in `text` with `[REDACTED]`.
pub fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_owned();
    for s in secrets {
        if s.len() >= 4 && out.contains(s.as_str()) {
            out = out.replace(s.as_str(), "[REDACTED]");
        }
    }
    out
}

/// Members of a JSON secret whose values are credentials.
fn is_credential_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "passwd",
        "secret",
        "token",
        "key",
        "credential",
        "pass",
    ]
    .iter()
    .any(|w| k.contains(w))
}

/// The strings to redact for a secret value: the whole value and, for a JSON object, every
/// credential-like member (`password`, `secret`, `token`, `…key`), since functions print
/// passwords on their own. Hosts and user names stay readable in errors.
pub fn redaction_terms(value: &str) -> Vec<String> {
    let mut terms = vec![value.to_owned()];
    if let Ok(serde_json::Value::Object(m)) = serde_json::from_str::<serde_json::Value>(value) {
        for (k, v) in &m {
            if let serde_json::Value::String(s) = v {
                if is_credential_key(k) && s.len() >= 4 {
                    terms.push(s.clone());
                }
            }
        }
    }
    // Longest first, so a value containing another is replaced whole.
    terms.sort_by_key(|t| std::cmp::Reverse(t.len()));
    terms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_whole_values_and_json_members() {
        let terms = redaction_terms(r#"{"username":"app","password":"hunter2-long"}"#);
        let out = redact("setting password hunter2-long for app", &terms);
        assert_eq!(out, "setting password [REDACTED] for app");
        let terms = redaction_terms(r#"{"host":"db.internal","password":"pw-12345"}"#);
        assert_eq!(
            redact("db.internal refused pw-12345", &terms),
            "db.internal refused [REDACTED]"
        );
        assert_eq!(redact("abc", &terms), "abc");
    }
}
