//! Evaluation of compiled policies against one request, as AWS decides within one account:
//! an applying Deny in any policy wins; otherwise an applying Allow in an identity policy or
//! in the resource policy (whose Principal matches the caller) allows; otherwise the request
//! is implicitly denied.
//!
//! See <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html>
//! and, for conditions over missing and multivalued keys,
//! <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_multi-value-conditions.html>.

use std::net::IpAddr;

use time::OffsetDateTime;

use super::compile::{
    parse_bool, parse_date, parse_number, CompiledStatement, Condition, PrincipalSet, Qualifier,
    StrMode, Test,
};
use super::model::{Effect, Polarity};
use super::pattern::{Case, Vars};
use super::Policy;
use crate::{Principal, PrincipalKind};

/// Everything a policy may test about one request. Condition keys are case-insensitive
/// (ASCII), including the tag key in `…Tag/<key>`, as in AWS.
///
/// Build it once per request: [`RequestContext::new`] sets `aws:PrincipalArn` and
/// `aws:PrincipalAccount`; the `with_*` methods add the other keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestContext {
    principal_arn: String,
    account: String,
    action: String,
    resource: String,
    keys: Vec<(String, Vec<String>)>,
}

impl RequestContext {
    /// A context for `principal_arn` (of `account`) calling `action` (e.g.
    /// `secretsmanager:GetSecretValue`) on `resource` (an ARN, or `*`).
    pub fn new(
        principal_arn: impl Into<String>,
        account: impl Into<String>,
        action: impl Into<String>,
        resource: impl Into<String>,
    ) -> Self {
        let principal_arn = principal_arn.into();
        let account = account.into();
        let keys = vec![
            ("aws:PrincipalArn".to_owned(), vec![principal_arn.clone()]),
            ("aws:PrincipalAccount".to_owned(), vec![account.clone()]),
        ];
        RequestContext {
            principal_arn,
            account,
            action: action.into(),
            resource: resource.into(),
            keys,
        }
    }

    /// A context for a verified [`Principal`]: its ARN and account, plus `aws:username` for a
    /// user. Tags, `aws:userid` and request keys are added with the `with_*` methods.
    pub fn for_principal(
        principal: &Principal,
        action: impl Into<String>,
        resource: impl Into<String>,
    ) -> Self {
        let ctx = Self::new(&*principal.arn, &*principal.account_id, action, resource);
        match &principal.kind {
            PrincipalKind::User { name } => ctx.with_username(&**name),
            PrincipalKind::Root | PrincipalKind::Session { .. } => ctx,
        }
    }

    /// Sets a condition key to one value (replacing any previous values).
    pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.set(key, vec![value.into()]);
        self
    }

    /// Sets a multivalued condition key (e.g. `aws:TagKeys`); an empty list is an empty set.
    pub fn with_values<S: Into<String>>(
        mut self,
        key: &str,
        values: impl IntoIterator<Item = S>,
    ) -> Self {
        self.set(key, values.into_iter().map(Into::into).collect());
        self
    }

    /// Sets `aws:username`.
    pub fn with_username(self, name: impl Into<String>) -> Self {
        self.with("aws:username", name)
    }

    /// Sets `aws:userid`.
    pub fn with_userid(self, id: impl Into<String>) -> Self {
        self.with("aws:userid", id)
    }

    /// Adds `aws:PrincipalTag/<key>`.
    pub fn with_principal_tag(self, key: &str, value: impl Into<String>) -> Self {
        self.with(&format!("aws:PrincipalTag/{key}"), value)
    }

    /// Adds a tag of the secret: `secretsmanager:ResourceTag/<key>` and `aws:ResourceTag/<key>`.
    pub fn with_resource_tag(self, key: &str, value: impl Into<String>) -> Self {
        let value = value.into();
        self.with(&format!("secretsmanager:ResourceTag/{key}"), value.clone())
            .with(&format!("aws:ResourceTag/{key}"), value)
    }

    /// Adds a tag the request sets: `aws:RequestTag/<key>`, and `key` to `aws:TagKeys`.
    pub fn with_request_tag(mut self, key: &str, value: impl Into<String>) -> Self {
        self.set(&format!("aws:RequestTag/{key}"), vec![value.into()]);
        match self.slot_mut("aws:TagKeys") {
            Some(v) => v.push(key.to_owned()),
            None => self
                .keys
                .push(("aws:TagKeys".to_owned(), vec![key.to_owned()])),
        }
        self
    }

    /// Sets `aws:CurrentTime` (RFC 3339) and `aws:EpochTime` (seconds) from the caller's
    /// clock; the engine has none.
    pub fn with_now(mut self, now: OffsetDateTime) -> Self {
        use time::format_description::well_known::Rfc3339;
        if let Ok(text) = now.format(&Rfc3339) {
            self.set("aws:CurrentTime", vec![text]);
        }
        self.with("aws:EpochTime", now.unix_timestamp().to_string())
    }

    /// Sets `aws:SourceIp`.
    pub fn with_source_ip(self, ip: IpAddr) -> Self {
        self.with("aws:SourceIp", ip.to_string())
    }

    /// Sets `aws:SecureTransport`.
    pub fn with_secure_transport(self, tls: bool) -> Self {
        self.with("aws:SecureTransport", tls.to_string())
    }

    /// Sets `key` to `values`, replacing a key of the same name in any case.
    pub fn set(&mut self, key: &str, values: Vec<String>) {
        match self.slot_mut(key) {
            Some(v) => *v = values,
            None => self.keys.push((key.to_owned(), values)),
        }
    }

    fn slot_mut(&mut self, key: &str) -> Option<&mut Vec<String>> {
        self.keys
            .iter_mut()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    }

    /// The values of condition key `key` (any case), if the request has it.
    pub fn values(&self, key: &str) -> Option<&[String]> {
        self.keys
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_slice())
    }

    /// The caller's ARN.
    pub fn principal_arn(&self) -> &str {
        &self.principal_arn
    }

    /// The caller's account id.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The action, e.g. `secretsmanager:GetSecretValue`.
    pub fn action(&self) -> &str {
        &self.action
    }

    /// The resource ARN (or `*`).
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// Whether the caller is its account's root (`arn:<partition>:iam::<account>:root`).
    fn caller_is_root(&self) -> bool {
        self.principal_arn
            .strip_suffix(":root")
            .and_then(|r| r.strip_suffix(self.account.as_str()))
            .is_some_and(|r| r.ends_with(":iam::"))
    }
}

impl Vars for RequestContext {
    fn var(&self, key: &str) -> Option<&str> {
        match self.values(key)? {
            [one] => Some(one),
            _ => None,
        }
    }
}

/// The outcome of an evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// An Allow applied and no Deny did.
    Allow,
    /// A Deny applied.
    ExplicitDeny,
    /// Nothing allowed the request.
    ImplicitDeny,
}

/// Which policy a deciding statement belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicySource {
    /// The identity policy at this index of the list given to [`evaluate`].
    Identity(usize),
    /// The secret's resource policy.
    Resource,
}

/// The statement that decided, for AccessDenied messages, audit records and `simulate`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatementRef<'a> {
    /// The policy it belongs to.
    pub source: PolicySource,
    /// Its 0-based index in that policy.
    pub index: usize,
    /// Its Sid, if it has one.
    pub sid: Option<&'a str>,
}

impl std::fmt::Display for StatementRef<'_> {
    /// E.g. `resource policy, statement 2 (Sid "DenyDelete")` (statement shown 1-based).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.source {
            PolicySource::Identity(i) => write!(f, "identity policy {}", i + 1)?,
            PolicySource::Resource => f.write_str("resource policy")?,
        }
        write!(f, ", statement {}", self.index + 1)?;
        if let Some(sid) = self.sid {
            write!(f, " (Sid \"{sid}\")")?;
        }
        Ok(())
    }
}

/// The decision on one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision<'a> {
    /// Allowed, explicitly denied or implicitly denied.
    pub outcome: Outcome,
    /// The deciding statement: the first applying Deny, else the first applying Allow;
    /// `None` for an implicit deny.
    pub statement: Option<StatementRef<'a>>,
}

impl Decision<'_> {
    /// Whether the request may proceed.
    pub fn is_allowed(&self) -> bool {
        self.outcome == Outcome::Allow
    }
}

/// Decides `ctx` against the caller's identity policies (in order; their index is reported)
/// and the target's resource policy, exactly as AWS does within one account.
///
/// The account root is not subject to identity policies: the caller decides whether to
/// evaluate at all for it. Cost: a few precompiled pattern matches per statement and no
/// allocation (policy variables are resolved by reference); only `StringEqualsIgnoreCase`
/// on a non-ASCII request value lower-cases a copy.
pub fn evaluate<'a, I>(
    identity: I,
    resource: Option<&'a Policy>,
    ctx: &RequestContext,
) -> Decision<'a>
where
    I: IntoIterator<Item = &'a Policy>,
{
    let mut allow: Option<StatementRef<'a>> = None;
    let sources = identity
        .into_iter()
        .enumerate()
        .map(|(i, p)| (PolicySource::Identity(i), p))
        .chain(resource.map(|p| (PolicySource::Resource, p)));
    for (source, policy) in sources {
        for (index, st) in policy.statements.iter().enumerate() {
            if !applies(st, ctx) {
                continue;
            }
            let r = StatementRef {
                source,
                index,
                sid: st.sid.as_deref(),
            };
            match st.effect {
                Effect::Deny => {
                    return Decision {
                        outcome: Outcome::ExplicitDeny,
                        statement: Some(r),
                    }
                }
                Effect::Allow => {
                    allow.get_or_insert(r);
                }
            }
        }
    }
    match allow {
        Some(r) => Decision {
            outcome: Outcome::Allow,
            statement: Some(r),
        },
        None => Decision {
            outcome: Outcome::ImplicitDeny,
            statement: None,
        },
    }
}

/// AWS's AccessDeniedException message for a denied decision; `None` when allowed.
///
/// Texts as IAM phrases them (`aws-sm-spec.md` §1.3): implicit deny `…because no
/// identity-based policy allows the <action> action`, explicit deny `…with an explicit deny
/// in an identity-based policy` / `…in a resource-based policy`.
pub fn access_denied_message(ctx: &RequestContext, decision: &Decision<'_>) -> Option<String> {
    let head = format!(
        "User: {} is not authorized to perform: {} on resource: {}",
        ctx.principal_arn, ctx.action, ctx.resource
    );
    match (decision.outcome, decision.statement.map(|s| s.source)) {
        (Outcome::Allow, _) => None,
        (Outcome::ExplicitDeny, Some(PolicySource::Resource)) => Some(format!(
            "{head} with an explicit deny in a resource-based policy"
        )),
        (Outcome::ExplicitDeny, _) => Some(format!(
            "{head} with an explicit deny in an identity-based policy"
        )),
        (Outcome::ImplicitDeny, _) => Some(format!(
            "{head} because no identity-based policy allows the {} action",
            ctx.action
        )),
    }
}

/// Whether a statement applies to the request: action, resource, principal, conditions.
fn applies(st: &CompiledStatement, ctx: &RequestContext) -> bool {
    let action = match &st.actions {
        Polarity::Is(l) => l
            .iter()
            .any(|p| p.matches(&ctx.action, ctx, Case::AsciiInsensitive)),
        Polarity::Not(l) => !l
            .iter()
            .any(|p| p.matches(&ctx.action, ctx, Case::AsciiInsensitive)),
    };
    if !action {
        return false;
    }
    let resource = match &st.resources {
        Polarity::Is(l) => l
            .iter()
            .any(|p| p.matches(&ctx.resource, ctx, Case::Sensitive)),
        Polarity::Not(l) => !l
            .iter()
            .any(|p| p.matches(&ctx.resource, ctx, Case::Sensitive)),
    };
    if !resource {
        return false;
    }
    let principal = match &st.principal {
        None => true,
        Some(Polarity::Is(set)) => principal_matches(set, ctx, st.effect),
        Some(Polarity::Not(set)) => !principal_excluded(set, ctx),
    };
    principal && st.conditions.iter().all(|c| condition_holds(c, ctx))
}

/// `Principal`: the caller's exact ARN, or everyone; or its account (id or root ARN) — which,
/// within the account, grants only to the root: for other principals an Allow naming the
/// account delegates to their identity policies (AWS's rule), while a Deny naming it applies
/// to every principal of the account.
fn principal_matches(set: &PrincipalSet, ctx: &RequestContext, effect: Effect) -> bool {
    set.everyone
        || set.arns.contains(&ctx.principal_arn)
        || (set.accounts.contains(&ctx.account) && (effect == Effect::Deny || ctx.caller_is_root()))
}

/// `NotPrincipal`: AWS evaluates a request as both the caller and its account, so a caller
/// is excluded only when its account is listed and, unless it is the root, its ARN too.
/// See <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_notprincipal.html>.
fn principal_excluded(set: &PrincipalSet, ctx: &RequestContext) -> bool {
    set.everyone
        || (set.accounts.contains(&ctx.account)
            && (ctx.caller_is_root() || set.arns.contains(&ctx.principal_arn)))
}

/// One condition, with AWS's rules for missing keys, negation (NOR over the policy's
/// values), `…IfExists` and the set qualifiers.
fn condition_holds(c: &Condition, ctx: &RequestContext) -> bool {
    let values = ctx.values(&c.key).filter(|v| !v.is_empty());
    if let Test::Null(must_be_absent) = c.test {
        return values.is_none() == must_be_absent;
    }
    let Some(values) = values else {
        return c.if_exists
            || match c.qualifier {
                Qualifier::ForAllValues => true,
                Qualifier::ForAnyValue => false,
                Qualifier::Single => c.negated,
            };
    };
    let ok = |v: &String| test_matches(&c.test, v, ctx) != c.negated;
    match c.qualifier {
        Qualifier::ForAllValues => values.iter().all(ok),
        Qualifier::ForAnyValue => values.iter().any(ok),
        // A negated operator holds when no request value matches any policy value.
        Qualifier::Single if c.negated => values.iter().all(ok),
        Qualifier::Single => values.iter().any(ok),
    }
}

/// Whether one request value matches any of the condition's policy values (positively).
/// A request value of the wrong type (not an IP, date…) matches nothing.
fn test_matches(test: &Test, v: &str, ctx: &RequestContext) -> bool {
    match test {
        Test::Str {
            mode: StrMode::EqualsIgnoreCase,
            values,
        } => {
            if v.is_ascii() {
                values
                    .iter()
                    .any(|p| p.matches(v, ctx, Case::AsciiInsensitive))
            } else {
                let lower = v.to_lowercase();
                values
                    .iter()
                    .any(|p| p.matches(&lower, ctx, Case::AsciiInsensitive))
            }
        }
        Test::Str { values, .. } => values.iter().any(|p| p.matches(v, ctx, Case::Sensitive)),
        Test::Arn(patterns) => patterns.iter().any(|p| match &p.parts {
            Some(parts) => {
                // The sixth request component keeps its colons (`function:name:alias`).
                let mut req = v.splitn(6, ':');
                parts.iter().all(|part| {
                    req.next()
                        .is_some_and(|r| part.matches(r, ctx, Case::Sensitive))
                })
            }
            None => p.whole.matches(v, ctx, Case::Sensitive),
        }),
        Test::Num { cmp, values } => {
            parse_number(v).is_some_and(|n| values.iter().any(|p| cmp.holds(n, *p)))
        }
        Test::Date { cmp, values } => {
            parse_date(v).is_some_and(|d| values.iter().any(|p| cmp.holds(d, *p)))
        }
        Test::Bool(values) => parse_bool(v).is_some_and(|b| values.contains(&b)),
        Test::Ip(nets) => v
            .trim()
            .parse::<IpAddr>()
            .is_ok_and(|ip| nets.iter().any(|n| n.contains(&ip))),
        Test::Null(_) => false,
    }
}
