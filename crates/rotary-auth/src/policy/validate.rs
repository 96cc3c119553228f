//! Checks on a resource policy beyond grammar: does it grant public access
//! (BlockPublicPolicy → PublicPolicyException), and the findings ValidateResourcePolicy
//! returns, modelled on IAM Access Analyzer's policy checks
//! (<https://docs.aws.amazon.com/IAM/latest/UserGuide/access-analyzer-reference-policy-checks.html>).

use super::compile::{CompiledStatement, Condition, Qualifier, Test};
use super::model::{Effect, Polarity};
use super::pattern::{Case, Pattern, Vars};
use super::{Policy, PolicyKind, Version};

/// Severity of a [`Finding`], as Access Analyzer grades them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FindingType {
    /// The policy is invalid or cannot do what it says.
    Error,
    /// The policy grants access more broadly than is safe (e.g. to everyone).
    SecurityWarning,
    /// The policy works but does not follow best practice.
    Warning,
    /// An improvement that changes nothing in effect.
    Suggestion,
}

/// One result of [`validate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Severity.
    pub finding_type: FindingType,
    /// Stable code, e.g. `BROAD_ACCESS`; ValidateResourcePolicy's `CheckName`.
    pub issue_code: &'static str,
    /// One sentence; ValidateResourcePolicy's `ErrorMessage`.
    pub message: String,
    /// The 0-based statement the finding is about, if one.
    pub statement: Option<usize>,
}

impl Finding {
    /// Whether this finding makes validation fail (`PolicyValidationPassed: false`): errors
    /// and security warnings do; warnings and suggestions do not.
    pub fn fails_validation(&self) -> bool {
        matches!(
            self.finding_type,
            FindingType::Error | FindingType::SecurityWarning
        )
    }
}

/// Every Secrets Manager IAM action, for spotting misspelled ones.
const SECRETSMANAGER_ACTIONS: &[&str] = &[
    "BatchGetSecretValue",
    "CancelRotateSecret",
    "CreateSecret",
    "DeleteResourcePolicy",
    "DeleteSecret",
    "DescribeSecret",
    "GetRandomPassword",
    "GetResourcePolicy",
    "GetSecretValue",
    "ListSecretVersionIds",
    "ListSecrets",
    "PutResourcePolicy",
    "PutSecretValue",
    "RemoveRegionsFromReplication",
    "ReplicateSecretToRegions",
    "RestoreSecret",
    "RotateSecret",
    "StopReplicationToReplica",
    "TagResource",
    "UntagResource",
    "UpdateSecret",
    "UpdateSecretVersionStage",
    "ValidateResourcePolicy",
];

/// Secrets Manager's condition keys (tag keys are prefixes).
const SECRETSMANAGER_KEYS: &[&str] = &[
    "secretsmanager:SecretId",
    "secretsmanager:Name",
    "secretsmanager:SecretPrimaryRegion",
    "secretsmanager:VersionStage",
    "secretsmanager:VersionId",
    "secretsmanager:Description",
    "secretsmanager:KmsKeyId",
    "secretsmanager:RotationLambdaARN",
    "secretsmanager:ForceDeleteWithoutRecovery",
    "secretsmanager:ForceOverwriteReplicaSecret",
    "secretsmanager:RecoveryWindowInDays",
    "secretsmanager:BlockPublicPolicy",
    "secretsmanager:AddReplicaRegions",
    "secretsmanager:ModifyRotationRules",
    "secretsmanager:RotateImmediately",
    "secretsmanager:resource/AllowRotationLambdaArn",
];

/// Global condition keys Rotary knows (others are reported as warnings, not errors).
const GLOBAL_KEYS: &[&str] = &[
    "aws:SourceIp",
    "aws:SecureTransport",
    "aws:CurrentTime",
    "aws:EpochTime",
    "aws:PrincipalArn",
    "aws:PrincipalAccount",
    "aws:username",
    "aws:userid",
    "aws:TagKeys",
    "aws:PrincipalType",
    "aws:RequestedRegion",
    "aws:UserAgent",
    "aws:MultiFactorAuthPresent",
    "aws:PrincipalOrgID",
    "aws:SourceAccount",
    "aws:SourceArn",
    "aws:CalledVia",
    "aws:ViaAWSService",
];

/// Prefixes of keys whose last part is a tag key.
const TAG_KEY_PREFIXES: &[&str] = &[
    "secretsmanager:ResourceTag/",
    "aws:ResourceTag/",
    "aws:RequestTag/",
    "aws:PrincipalTag/",
];

/// Keys that, tested positively with exact values, confine a statement to known callers.
const RESTRICTING_KEYS: &[&str] = &[
    "aws:PrincipalArn",
    "aws:PrincipalAccount",
    "aws:SourceAccount",
    "aws:SourceArn",
    "aws:PrincipalOrgID",
    "aws:userid",
    "aws:username",
];

struct NoVars;
impl Vars for NoVars {
    fn var(&self, _: &str) -> Option<&str> {
        None
    }
}

/// Whether a resource policy grants access to everyone: an Allow statement whose Principal
/// is `*` (or which uses NotPrincipal) and that no condition confines to known principals
/// or accounts (`aws:PrincipalArn`, `aws:PrincipalAccount`, `aws:SourceAccount`, … tested
/// with exact values). This is what BlockPublicPolicy refuses.
pub fn is_public(policy: &Policy) -> bool {
    policy.statements.iter().any(statement_is_public)
}

fn statement_is_public(st: &CompiledStatement) -> bool {
    if st.effect != Effect::Allow {
        return false;
    }
    let everyone = match &st.principal {
        Some(Polarity::Is(set)) => set.everyone,
        Some(Polarity::Not(_)) => true,
        None => false,
    };
    everyone && !st.conditions.iter().any(restricts)
}

/// A positive, non-IfExists condition on a restricting key whose values are all exact
/// (an ARN may hold wildcards outside its account part).
fn restricts(c: &Condition) -> bool {
    if c.negated || c.if_exists || c.qualifier == Qualifier::ForAllValues {
        return false;
    }
    if !RESTRICTING_KEYS
        .iter()
        .any(|k| k.eq_ignore_ascii_case(&c.key))
    {
        return false;
    }
    match &c.test {
        Test::Str { values, .. } => values.iter().all(|p| !p.has_wildcards()),
        Test::Arn(values) => values.iter().all(|p| match &p.parts {
            Some(parts) => parts
                .get(4)
                .is_some_and(|a| !a.has_wildcards() && !a.has_vars()),
            None => false,
        }),
        _ => false,
    }
}

/// Checks `text` as a policy of `kind` and returns findings: `MALFORMED_POLICY` (error) when
/// it does not parse (then nothing else is checked), `BROAD_ACCESS` (security warning) for
/// statements that grant everyone access, plus invalid actions and condition keys, missing
/// Version and other best-practice warnings.
pub fn validate(text: &str, kind: PolicyKind, max_chars: usize) -> Vec<Finding> {
    let policy = match Policy::parse(text, kind, max_chars) {
        Ok(p) => p,
        Err(e) => {
            return vec![Finding {
                finding_type: FindingType::Error,
                issue_code: "MALFORMED_POLICY",
                message: e.message().to_owned(),
                statement: e.statement_index(),
            }]
        }
    };
    let mut out = Vec::new();
    let doc = policy.document();
    match doc.version {
        None => out.push(Finding {
            finding_type: FindingType::Warning,
            issue_code: "MISSING_VERSION",
            message: "The policy has no Version; add \"Version\": \"2012-10-17\" so that policy variables work.".into(),
            statement: None,
        }),
        Some(Version::V2008_10_17) => out.push(Finding {
            finding_type: FindingType::Suggestion,
            issue_code: "OLD_VERSION",
            message: "The policy uses Version 2008-10-17, in which policy variables are literal text; use 2012-10-17.".into(),
            statement: None,
        }),
        Some(Version::V2012_10_17) => {}
    }
    let has_vars = text.contains("${");
    if has_vars && !doc.effective_version().supports_variables() {
        out.push(Finding {
            finding_type: FindingType::Warning,
            issue_code: "POLICY_VARIABLES_NOT_SUPPORTED",
            message: "The policy contains ${…} but its Version is not 2012-10-17, so it is matched literally.".into(),
            statement: None,
        });
    }
    for (i, (st, parsed)) in policy.statements.iter().zip(&doc.statements).enumerate() {
        let name = match &st.sid {
            Some(sid) => format!("Statement {} (Sid \"{sid}\")", i + 1),
            None => format!("Statement {}", i + 1),
        };
        let mut push = |finding_type, issue_code, message: String| {
            out.push(Finding {
                finding_type,
                issue_code,
                message,
                statement: Some(i),
            })
        };
        if statement_is_public(st) {
            push(
                FindingType::SecurityWarning,
                "BROAD_ACCESS",
                format!("{name} allows access to every principal (\"*\"); name the principals or confine it with an aws:PrincipalArn or aws:PrincipalAccount condition."),
            );
        }
        if st.effect == Effect::Allow && matches!(st.principal, Some(Polarity::Not(_))) {
            push(
                FindingType::SecurityWarning,
                "ALLOW_WITH_NOT_PRINCIPAL",
                format!(
                    "{name} uses Allow with NotPrincipal, which allows every principal not listed."
                ),
            );
        }
        if st.effect == Effect::Allow && matches!(st.actions, Polarity::Not(_)) {
            push(
                FindingType::Warning,
                "ALLOW_WITH_NOT_ACTION",
                format!("{name} uses Allow with NotAction, which allows every action not listed, including future ones."),
            );
        }
        for a in parsed.action.inner() {
            let Some(op) = strip_prefix_ci(a, "secretsmanager:") else {
                continue;
            };
            let pat = Pattern::new(&op.to_ascii_lowercase(), true, false);
            if !SECRETSMANAGER_ACTIONS
                .iter()
                .any(|k| pat.matches(k, &NoVars, Case::AsciiInsensitive))
            {
                push(
                    FindingType::Error,
                    "INVALID_ACTION",
                    format!(
                        "{name} names action \"{a}\", which matches no Secrets Manager action."
                    ),
                );
            }
        }
        for c in &parsed.conditions {
            let key = c.key.as_str();
            let known_tag = TAG_KEY_PREFIXES
                .iter()
                .any(|p| strip_prefix_ci(key, p).is_some_and(|k| !k.is_empty()));
            if known_tag {
                continue;
            }
            if strip_prefix_ci(key, "secretsmanager:").is_some()
                && !SECRETSMANAGER_KEYS
                    .iter()
                    .any(|k| k.eq_ignore_ascii_case(key))
            {
                push(
                    FindingType::Error,
                    "INVALID_CONDITION_KEY",
                    format!("{name} uses condition key \"{key}\", which Secrets Manager does not define."),
                );
            } else if strip_prefix_ci(key, "aws:").is_some()
                && !GLOBAL_KEYS.iter().any(|k| k.eq_ignore_ascii_case(key))
            {
                push(
                    FindingType::Warning,
                    "UNKNOWN_CONDITION_KEY",
                    format!("{name} uses global condition key \"{key}\", which Rotary never sets, so it is always missing."),
                );
            }
        }
    }
    out
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    (s.len() >= prefix.len()
        && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes()))
    .then(|| &s[prefix.len()..])
}
