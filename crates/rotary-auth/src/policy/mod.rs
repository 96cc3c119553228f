//! IAM policy engine: parse, compile and evaluate AWS IAM JSON policies, with AWS's
//! semantics, for identity-based policies (users, groups) and resource-based policies
//! (a secret's resource policy).
//!
//! Split by stage: `model` parses the JSON grammar and checks the structure; `compile`
//! turns a document into a [`Policy`] once, when it is written (patterns precompiled,
//! operators resolved to enums, CIDRs, dates and numbers parsed); `eval` decides a request
//! against compiled policies without JSON and, except for variable-free lookups, without
//! allocating; `validate` answers BlockPublicPolicy and ValidateResourcePolicy.
//!
//! References: the IAM JSON policy reference
//! (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements.html>) and
//! policy evaluation logic
//! (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html>).
//!
//! # Invariants
//! - Any explicit Deny that applies wins; then any applying Allow; otherwise implicit deny.
//! - Evaluation never panics and never fails: what cannot be matched does not match.
//! - Pure: no I/O, no clock (the caller puts the time in the [`RequestContext`]), no logs.

mod compile;
mod eval;
mod model;
mod pattern;
mod validate;

#[cfg(test)]
mod tests;

pub use compile::Policy;
pub use eval::{
    access_denied_message, evaluate, Decision, Outcome, PolicySource, RequestContext, StatementRef,
};
pub use model::{
    parse, policy_size, ConditionEntry, Effect, Polarity, PolicyDocument, PrincipalEntry,
    Statement, Version,
};
pub use validate::{is_public, validate, Finding, FindingType};

/// Size quotas, in characters with whitespace excluded (as AWS counts them).
///
/// From AWS's IAM and Secrets Manager quotas
/// (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html>): AWS
/// applies the user and group figures to the *aggregate* of a principal's inline policies;
/// the caller sums [`policy_size`] over them when it needs the aggregate check.
pub mod limits {
    /// Aggregate inline policy size of a user.
    pub const USER_INLINE_POLICY_CHARS: usize = 2_048;
    /// Aggregate inline policy size of a group.
    pub const GROUP_INLINE_POLICY_CHARS: usize = 5_120;
    /// Aggregate inline policy size of a role (here: a session policy).
    pub const ROLE_INLINE_POLICY_CHARS: usize = 10_240;
    /// A secret's resource policy (Secrets Manager's `ResourcePolicy` is 1..20480 long; the
    /// wire layer checks the raw length, this engine the whitespace-free one).
    pub const RESOURCE_POLICY_CHARS: usize = 20_480;
}

/// Which kind of policy a document is: it decides whether `Principal` is required or
/// forbidden.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyKind {
    /// Attached to a user, group or session: no `Principal`.
    Identity,
    /// Attached to a secret: every statement names a `Principal` or `NotPrincipal`.
    Resource,
}

/// Why a policy document was refused: one sentence, fit for a
/// MalformedPolicyDocumentException message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PolicyError {
    message: String,
    statement: Option<usize>,
}

impl PolicyError {
    /// An error about the whole document.
    fn document(message: String) -> Self {
        PolicyError {
            message,
            statement: None,
        }
    }

    /// An error about statement `index` (0-based; shown 1-based with its Sid).
    fn statement(index: usize, sid: Option<&str>, fault: &str) -> Self {
        let message = match sid {
            Some(sid) => format!("Statement {} (Sid \"{sid}\") {fault}.", index + 1),
            None => format!("Statement {} {fault}.", index + 1),
        };
        PolicyError {
            message,
            statement: Some(index),
        }
    }

    /// The message, one sentence.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The 0-based index of the faulty statement, when the fault is in one.
    pub fn statement_index(&self) -> Option<usize> {
        self.statement
    }
}
