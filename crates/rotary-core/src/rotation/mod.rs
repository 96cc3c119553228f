//! Rotation state kept with each secret (spec §5): the persisted types and their typed
//! names (`state`), the transitions that move them (`transitions`, pure functions on a
//! secret), and how DescribeSecret shows them.
//!
//! The operations that run the transitions inside a write (RotateSecret,
//! CancelRotateSecret, and the driver's calls) are in `service/rotation.rs`; the driver
//! that runs the four steps is the crate `rotary-rotation`.

mod state;
pub(crate) mod transitions;

use rotary_wire::Timestamp;
pub use state::{
    schedule_of, Completion, DueRotation, Outcome, Pending, RotationConfig, RotationStanding,
    RotationState, Step, Trigger,
};

/// Decides whether a rotation function ARN can be invoked. Implemented by the function
/// registry of `rotary-rotation`.
pub trait FunctionDirectory: Send + Sync {
    /// Whether `lambda_arn` names a function this server can invoke.
    fn is_invokable(&self, lambda_arn: &str) -> bool;
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
