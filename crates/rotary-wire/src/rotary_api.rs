//! Rotary's own API beside Secrets Manager's (`X-Amz-Target: rotary.<Operation>`):
//! rotation functions, rotation history, compliance, schedule preview and the test clock.
//!
//! The operations are an enum, so the server dispatches with a `match` the compiler checks;
//! the requests are shared by the server (which decodes them) and the CLI (which encodes
//! them), so the two cannot drift apart.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use crate::Timestamp;

/// Target prefix of Rotary's API.
pub const TARGET_PREFIX: &str = "rotary.";

/// An operation of Rotary's rotation API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RotaryOperation {
    /// Registers a rotation function.
    CreateFunction,
    /// The built-in and registered functions.
    ListFunctions,
    /// One function.
    DescribeFunction,
    /// Removes a registered function.
    DeleteFunction,
    /// A secret's rotation attempts, newest first.
    GetRotationHistory,
    /// Secrets whose rotation needs attention.
    GetComplianceReport,
    /// The next windows of a schedule.
    PreviewSchedule,
    /// Moves the test clock (servers started with `--test-clock` only).
    AdvanceTestClock,
}

impl RotaryOperation {
    /// Every operation.
    pub const ALL: [RotaryOperation; 8] = [
        RotaryOperation::CreateFunction,
        RotaryOperation::ListFunctions,
        RotaryOperation::DescribeFunction,
        RotaryOperation::DeleteFunction,
        RotaryOperation::GetRotationHistory,
        RotaryOperation::GetComplianceReport,
        RotaryOperation::PreviewSchedule,
        RotaryOperation::AdvanceTestClock,
    ];

    /// The operation's name (the target without the prefix).
    pub fn name(self) -> &'static str {
        match self {
            RotaryOperation::CreateFunction => "CreateFunction",
            RotaryOperation::ListFunctions => "ListFunctions",
            RotaryOperation::DescribeFunction => "DescribeFunction",
            RotaryOperation::DeleteFunction => "DeleteFunction",
            RotaryOperation::GetRotationHistory => "GetRotationHistory",
            RotaryOperation::GetComplianceReport => "GetComplianceReport",
            RotaryOperation::PreviewSchedule => "PreviewSchedule",
            RotaryOperation::AdvanceTestClock => "AdvanceTestClock",
        }
    }

    /// The operation of a name (without the prefix).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.name() == name)
    }

    /// The `X-Amz-Target` of the operation (`rotary.ListFunctions`).
    pub fn target(self) -> String {
        format!("{TARGET_PREFIX}{}", self.name())
    }
}

/// `rotary.CreateFunction`: exactly one of `Command`, `PythonHandler` (with `CodeDir`),
/// `Url` or `Builtin`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateFunctionRequest {
    /// The function's name.
    pub name: Option<String>,
    /// A program run per step, the event on its standard input.
    pub command: Option<String>,
    /// `module.function` of a Lambda-style Python handler.
    pub python_handler: Option<String>,
    /// Where the handler's code is.
    pub code_dir: Option<String>,
    /// An HTTPS endpoint called per step.
    pub url: Option<String>,
    /// A built-in rotator, registered under its own name with its own settings.
    pub builtin: Option<String>,
    /// Environment (stored sealed: values may be credentials).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Per-step timeout.
    pub timeout_seconds: Option<u64>,
}

/// `rotary.DescribeFunction` and `rotary.DeleteFunction`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FunctionNameRequest {
    /// The function's name or ARN.
    pub name: Option<String>,
    /// DeleteFunction: delete even though secrets rotate with it.
    pub force: Option<bool>,
}

/// A function as ListFunctions and DescribeFunction show it.
#[skip_serializing_none]
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct FunctionDescription {
    /// Name.
    pub name: String,
    /// ARN, as secrets name it.
    pub function_arn: String,
    /// One of the server's own built-ins.
    pub built_in: bool,
    /// What a built-in does.
    pub description: Option<String>,
    /// The registered settings (`Kind`, `Command`, `EnvNames`, …; never `Env` values).
    #[serde(flatten)]
    pub spec: serde_json::Map<String, serde_json::Value>,
}

/// `rotary.ListFunctions` answer.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListFunctionsResponse {
    /// Built-ins first, then registered functions.
    pub functions: Vec<FunctionDescription>,
}

/// `rotary.GetRotationHistory`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RotationHistoryRequest {
    /// Name or ARN of the secret.
    pub secret_id: Option<String>,
    /// Most attempts to return (1–1000, default 50).
    pub max_results: Option<i64>,
}

/// `rotary.GetRotationHistory` answer; `R` is the attempt record.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RotationHistoryResponse<R> {
    /// The secret's ARN.
    #[serde(rename = "ARN")]
    pub arn: Option<String>,
    /// Its name.
    pub name: Option<String>,
    /// Attempts, newest first.
    pub rotations: Vec<R>,
}

/// One finding of a compliance report.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Finding {
    /// `RotationDisabled`, `RotationOverdue`, `RotationFailing`, `LastRotationFailed` or
    /// `PendingOnNonCurrentVersion`.
    pub check: &'static str,
    /// What was found, for people.
    pub detail: String,
}

/// A secret with findings.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct NonCompliantSecret {
    /// ARN.
    #[serde(rename = "ARN")]
    pub arn: String,
    /// Name.
    pub name: String,
    /// What needs attention.
    pub findings: Vec<Finding>,
}

/// `rotary.GetComplianceReport` answer.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ComplianceReport {
    /// Live secrets looked at.
    pub secrets_checked: usize,
    /// How many have findings.
    pub non_compliant: usize,
    /// Those secrets.
    pub secrets: Vec<NonCompliantSecret>,
}

/// `rotary.PreviewSchedule`: rules as RotateSecret takes them.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PreviewScheduleRequest {
    /// `rate(…)` or `cron(…)`.
    pub schedule_expression: Option<String>,
    /// Days between rotations.
    pub automatically_after_days: Option<i64>,
    /// Window length, `<n>h`.
    pub duration: Option<String>,
    /// How many windows (1–100, default 10).
    pub count: Option<usize>,
    /// Epoch seconds to preview from (default: now).
    pub start_time: Option<f64>,
    /// Epoch seconds of the last rotation, for day-based schedules.
    pub last_rotated_date: Option<f64>,
}

/// One rotation window.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ScheduleWindow {
    /// Opens.
    pub start: Timestamp,
    /// Closes.
    pub end: Timestamp,
    /// What DescribeSecret would show as NextRotationDate.
    pub next_rotation_date: Timestamp,
}

/// `rotary.PreviewSchedule` answer.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PreviewScheduleResponse {
    /// As DescribeSecret would report the rules.
    pub automatically_after_days: Option<i64>,
    /// The next windows.
    pub windows: Vec<ScheduleWindow>,
}

/// `rotary.AdvanceTestClock`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AdvanceTestClockRequest {
    /// How far to move the clock forward.
    pub seconds: Option<i64>,
}

/// `rotary.AdvanceTestClock` answer.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AdvanceTestClockResponse {
    /// The server's time now.
    pub now: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for op in RotaryOperation::ALL {
            assert_eq!(RotaryOperation::from_name(op.name()), Some(op));
            assert_eq!(op.target(), format!("rotary.{}", op.name()));
        }
        assert_eq!(RotaryOperation::from_name("Nope"), None);
    }

    #[test]
    fn requests_encode_as_the_server_decodes_them() {
        let req = CreateFunctionRequest {
            name: Some("f".into()),
            command: Some("/bin/true".into()),
            env: BTreeMap::from([("K".into(), "v".into())]),
            ..Default::default()
        };
        let json = serde_json::to_string(&req).unwrap();
        assert_eq!(
            json,
            r#"{"Name":"f","Command":"/bin/true","Env":{"K":"v"}}"#
        );
        assert_eq!(
            serde_json::from_str::<CreateFunctionRequest>(&json).unwrap(),
            req
        );
        let json = serde_json::to_string(&FunctionNameRequest {
            name: Some("f".into()),
            force: None,
        })
        .unwrap();
        assert_eq!(json, r#"{"Name":"f"}"#);
    }
}
