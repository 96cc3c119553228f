//! Authorization of every request: the action, resource and condition keys AWS uses for each
//! operation, evaluated against the caller's identity policies and the secret's resource
//! policy (explicit Deny wins, then any Allow, else deny), with AWS's AccessDenied texts.
//!
//! - The **root** key is the break-glass administrator: no identity policy applies to it. A
//!   resource policy's explicit Deny does (as AWS applies resource-policy denies to every
//!   principal), except on the resource-policy operations themselves, so root can always
//!   repair a policy that locks everyone out.
//! - A **user** is allowed what its inline policies and its groups' allow, or what a secret's
//!   resource policy grants it.
//! - A rotation function's **session** has a session policy: the rotation operations on the
//!   secret being rotated, reading the master secret its value names (`masterarn`), and
//!   GetRandomPassword. Nothing else, whatever a resource policy says.
//!
//! Policies are compiled when written (users' and groups' by the IAM store) or on first use
//! after a change (resource policies, cached by the secret's revision), so a request costs
//! a hash lookup, the secret lookup it needs anyway, and a few pattern matches.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use rotary_auth::policy::{
    access_denied_message, evaluate, limits, Decision, Outcome, Policy, PolicyKind, PolicySource,
    RequestContext,
};
use rotary_auth::{Principal, PrincipalKind};
use rotary_core::audit::{DenialKind, DenialReason};
use rotary_core::{AuthzView, Prefetched, SecretsService};
use rotary_wire::{api_error, ApiError, Operation};
use serde_json::Value;
use time::OffsetDateTime;

/// Users' identity policies and attributes (the IAM store implements it).
pub trait Identities: Send + Sync {
    /// The compiled identity policies of a user: its own and its groups'.
    fn identity_policies(&self, user: &str) -> Option<Arc<[Arc<Policy>]>>;
    /// `(aws:userid, tags)` of a user.
    fn attributes(&self, user: &str) -> Option<(String, Vec<(String, String)>)>;
    /// The principal a user acts as (for `rotary policy simulate`).
    fn principal(&self, user: &str) -> Option<Principal>;
}

/// No users: only root and sessions (tests and start-up).
pub struct NoIdentities;

impl Identities for NoIdentities {
    fn identity_policies(&self, _user: &str) -> Option<Arc<[Arc<Policy>]>> {
        None
    }
    fn attributes(&self, _user: &str) -> Option<(String, Vec<(String, String)>)> {
        None
    }
    fn principal(&self, _user: &str) -> Option<Principal> {
        None
    }
}

impl Identities for crate::iam::Iam {
    fn identity_policies(&self, user: &str) -> Option<Arc<[Arc<Policy>]>> {
        crate::iam::Iam::identity_policies(self, user)
    }
    fn attributes(&self, user: &str) -> Option<(String, Vec<(String, String)>)> {
        let u = self.user(user)?;
        let tags = u
            .tags
            .iter()
            .map(|t| (t.key.clone(), t.value.clone()))
            .collect();
        Some((u.user_id.clone(), tags))
    }
    fn principal(&self, user: &str) -> Option<Principal> {
        let u = self.user(user)?;
        Some(Principal {
            account_id: self.account_id().to_owned(),
            arn: u.arn.clone(),
            access_key_id: String::new(),
            kind: PrincipalKind::User {
                name: u.name.clone(),
            },
        })
    }
}

/// The result of `rotary policy simulate`.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Simulation {
    /// `allowed`, `explicitDeny` or `implicitDeny` (IAM's policy simulator words).
    pub decision: &'static str,
    /// The statement that decided, e.g. `identity policy 1, statement 2 (Sid "Read")`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matched_statement: Option<String>,
    /// The AccessDeniedException text a real request would get.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Facts about the connection that global condition keys expose.
#[derive(Debug, Clone, Copy)]
pub struct RequestInfo {
    /// The client's address (`aws:SourceIp`).
    pub source_ip: Option<IpAddr>,
    /// Whether the request came over TLS (`aws:SecureTransport`).
    pub secure_transport: bool,
    /// Now (`aws:CurrentTime`, `aws:EpochTime`).
    pub now: OffsetDateTime,
}

/// An allowed request, for the audit record.
#[derive(Debug, Clone, Default)]
pub struct Allowed {
    /// The secret the request acts on, when there is one.
    pub secret_arn: Option<String>,
    /// The statement that allowed it, when asked for (`None` for root).
    pub reason: Option<String>,
    /// The secret as loaded for the decision, for the operation to reuse (`Ctx::prefetched`).
    pub prefetched: Option<Arc<Prefetched>>,
}

/// A denied request: the error to answer and the reason for the audit record.
#[derive(Debug)]
pub struct Denied {
    /// AccessDeniedException with AWS's text.
    pub error: ApiError,
    /// Which statement denied, or that nothing allowed.
    pub reason: String,
    /// The same for the audit record.
    pub audit: DenialReason,
    /// The secret the request was for, when it exists.
    pub secret_arn: Option<String>,
}

/// What a request asks to do.
#[derive(Debug, Clone, Copy)]
pub enum Action<'a> {
    /// A Secrets Manager operation.
    Aws(Operation),
    /// One of Rotary's own operations (`rotary:<Op>`), on this resource ARN (or `*`).
    Rotary(&'a str, &'a str),
}

impl Action<'_> {
    fn name(&self) -> String {
        match self {
            Action::Aws(op) => format!("secretsmanager:{}", op.name()),
            Action::Rotary(op, _) => format!("rotary:{op}"),
        }
    }
}

/// Operations a rotation session may call on the secret being rotated.
const SESSION_ACTIONS: &[&str] = &[
    "secretsmanager:DescribeSecret",
    "secretsmanager:GetSecretValue",
    "secretsmanager:PutSecretValue",
    "secretsmanager:UpdateSecretVersionStage",
    "secretsmanager:ListSecretVersionIds",
];

/// A secret's compiled resource policy and the revision it was compiled at.
type CachedPolicy = (i64, Option<Arc<Policy>>);

/// The authorizer.
pub struct Authorizer {
    service: Arc<SecretsService>,
    identities: Arc<dyn Identities>,
    /// Compiled resource policies by secret ARN, with the revision they were compiled at.
    resource_policies: Mutex<HashMap<String, CachedPolicy>>,
}

impl Authorizer {
    /// An authorizer over `service`'s secrets and `identities`' users.
    pub fn new(service: Arc<SecretsService>, identities: Arc<dyn Identities>) -> Self {
        Self {
            service,
            identities,
            resource_policies: Mutex::new(HashMap::new()),
        }
    }

    /// Decides a request.
    pub async fn authorize(
        &self,
        principal: &Principal,
        action: Action<'_>,
        body: &[u8],
        info: &RequestInfo,
    ) -> Result<Allowed, Box<Denied>> {
        let (secret, prefetched) = match action {
            Action::Aws(op) if takes_secret_id(op) => {
                let id = secret_id_of(body);
                match self
                    .service
                    .prefetch(id.as_deref().unwrap_or_default())
                    .await
                {
                    Ok(Some((view, p))) => (Some(view), Some(p)),
                    _ => (None, None),
                }
            }
            _ => (None, None),
        };
        // The account's root may do anything that no resource policy denies it: without a
        // resource policy there is nothing to evaluate, nor a body to read for conditions.
        if matches!(principal.kind, PrincipalKind::Root)
            && secret.as_ref().is_none_or(|s| s.policy.is_none())
        {
            return Ok(Allowed {
                secret_arn: secret.map(|s| s.arn),
                reason: None,
                prefetched,
            });
        }
        let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let mut allowed =
            self.decide(principal, action, &body, secret.as_ref(), info, &[], false)?;
        allowed.prefetched = prefetched;
        Ok(allowed)
    }

    /// What the policies decide for `principal` calling `action` on `resource`, with extra
    /// condition keys; nothing is run.
    pub async fn simulate(
        &self,
        principal: &Principal,
        action: &str,
        resource: &str,
        context: &[(String, Vec<String>)],
        info: &RequestInfo,
    ) -> Simulation {
        let op = action
            .strip_prefix("secretsmanager:")
            .and_then(|name| Operation::ALL.iter().copied().find(|o| o.name() == name));
        let (act, body, secret) = match op {
            Some(op) => {
                let secret = if resource.starts_with("arn:") && takes_secret_id(op) {
                    self.service.authz_view(resource).await.ok().flatten()
                } else {
                    None
                };
                let body = if resource == "*" {
                    Value::Null
                } else {
                    serde_json::json!({ "SecretId": resource })
                };
                (Action::Aws(op), body, secret)
            }
            None => {
                let name = action.strip_prefix("rotary:").unwrap_or(action);
                (Action::Rotary(name, resource), Value::Null, None)
            }
        };
        match self.decide(principal, act, &body, secret.as_ref(), info, context, true) {
            Ok(a) => Simulation {
                decision: "allowed",
                matched_statement: a.reason,
                message: None,
            },
            Err(d) => Simulation {
                decision: if d.reason.starts_with("explicit deny") {
                    "explicitDeny"
                } else {
                    "implicitDeny"
                },
                matched_statement: d.reason.strip_prefix("explicit deny: ").map(str::to_owned),
                message: Some(d.error.message().to_owned()),
            },
        }
    }

    /// Decides GetSecretValue on one secret of a BatchGetSecretValue.
    pub async fn authorize_batch_member(
        &self,
        principal: &Principal,
        secret_arn: &str,
        info: &RequestInfo,
    ) -> Result<Allowed, Box<Denied>> {
        let secret = self.service.authz_view(secret_arn).await.ok().flatten();
        let body = serde_json::json!({ "SecretId": secret_arn });
        self.decide(
            principal,
            Action::Aws(Operation::GetSecretValue),
            &body,
            secret.as_ref(),
            info,
            &[],
            false,
        )
    }

    /// The decision for one request. `extra` adds condition keys (a simulation's); `explain`
    /// names the allowing statement in [`Allowed::reason`] (a simulation shows it).
    #[allow(clippy::too_many_arguments)]
    fn decide(
        &self,
        principal: &Principal,
        action: Action<'_>,
        body: &Value,
        secret: Option<&AuthzView>,
        info: &RequestInfo,
        extra: &[(String, Vec<String>)],
        explain: bool,
    ) -> Result<Allowed, Box<Denied>> {
        let action_name = action.name();
        let resource = self.resource(action, body, secret);
        let resource_policy = match secret {
            Some(view) => match self.resource_policy(view) {
                Ok(p) => p,
                Err(()) if matches!(principal.kind, PrincipalKind::Root) => None,
                Err(()) => {
                    return Err(Box::new(Denied {
                        error: api_error!(
                            AccessDeniedException,
                            "User: {} is not authorized to perform: {action_name} on resource: {resource} because the secret's resource policy cannot be evaluated",
                            principal.arn
                        ),
                        reason: "unreadable resource policy".to_owned(),
                        audit: DenialReason {
                            kind: DenialKind::ImplicitDeny,
                            policy: Some("resource-policy (does not compile)".to_owned()),
                            statement: None,
                        },
                        secret_arn: Some(view.arn.clone()),
                    }))
                }
            },
            None => None,
        };
        let user_policies: Arc<[Arc<Policy>]> = match &principal.kind {
            PrincipalKind::User { name } => self
                .identities
                .identity_policies(name)
                .unwrap_or_else(|| Arc::from(Vec::new())),
            PrincipalKind::Root | PrincipalKind::Session { .. } => Arc::from(Vec::new()),
        };
        let session_policy = match &principal.kind {
            PrincipalKind::Session { scope, .. } => session_policy_for(scope),
            PrincipalKind::Root | PrincipalKind::User { .. } => None,
        };
        // The condition keys are gathered only when a policy to evaluate reads them: most
        // policies decide by action and resource alone, and the keys cost more than that.
        let reads_context = !extra.is_empty()
            || user_policies
                .iter()
                .chain(&resource_policy)
                .chain(&session_policy)
                .any(|p| p.reads_context());
        let mut ctx = if reads_context {
            self.context(
                principal,
                &action_name,
                &resource,
                action,
                body,
                secret,
                info,
            )
        } else {
            RequestContext::for_principal(principal, &action_name, &resource)
        };
        for (key, values) in extra {
            ctx.set(key, values.clone());
        }
        let secret_arn = secret.map(|s| s.arn.clone());
        let decision: Decision<'_> = match &principal.kind {
            PrincipalKind::Root => {
                let repairs_policy = matches!(
                    action,
                    Action::Aws(
                        Operation::GetResourcePolicy
                            | Operation::PutResourcePolicy
                            | Operation::DeleteResourcePolicy
                    )
                );
                let d = if repairs_policy {
                    None
                } else {
                    resource_policy
                        .as_deref()
                        .map(|p| evaluate([], Some(p), &ctx))
                };
                match d {
                    Some(d) if d.outcome == Outcome::ExplicitDeny => d,
                    _ => {
                        return Ok(Allowed {
                            secret_arn,
                            reason: None,
                            prefetched: None,
                        })
                    }
                }
            }
            PrincipalKind::User { .. } => evaluate(
                user_policies.iter().map(|p| &**p),
                resource_policy.as_deref(),
                &ctx,
            ),
            PrincipalKind::Session { .. } => {
                // A session acts only within its session policy; a resource policy's Deny
                // still applies, its Allow grants nothing beyond the session policy.
                let within = session_policy
                    .as_deref()
                    .map(|p| evaluate([p], None, &ctx))
                    .filter(|d| d.outcome == Outcome::Allow);
                match (within, resource_policy.as_deref()) {
                    (Some(_), Some(rp)) => {
                        let d = evaluate([], Some(rp), &ctx);
                        if d.outcome == Outcome::ExplicitDeny {
                            d
                        } else {
                            return Ok(Allowed {
                                secret_arn,
                                reason: Some("session policy".to_owned()),
                                prefetched: None,
                            });
                        }
                    }
                    (Some(_), None) => {
                        return Ok(Allowed {
                            secret_arn,
                            reason: Some("session policy".to_owned()),
                            prefetched: None,
                        })
                    }
                    (None, _) => Decision {
                        outcome: Outcome::ImplicitDeny,
                        statement: None,
                    },
                }
            }
        };
        if decision.is_allowed() {
            return Ok(Allowed {
                secret_arn,
                reason: decision
                    .statement
                    .filter(|_| explain)
                    .map(|s| s.to_string()),
                prefetched: None,
            });
        }
        let reason = match decision.statement {
            Some(s) => format!("explicit deny: {s}"),
            None => "no policy allows it".to_owned(),
        };
        let audit = match decision.statement {
            Some(s) => DenialReason {
                kind: DenialKind::ExplicitDeny,
                policy: Some(match (s.source, &principal.kind) {
                    (PolicySource::Resource, _) => "resource-policy".to_owned(),
                    (_, PrincipalKind::Session { .. }) => "session-policy".to_owned(),
                    (PolicySource::Identity(i), _) => format!("identity-policy-{}", i + 1),
                }),
                statement: Some(
                    s.sid
                        .map_or_else(|| format!("#{}", s.index + 1), str::to_owned),
                ),
            },
            None => DenialReason {
                kind: DenialKind::ImplicitDeny,
                policy: None,
                statement: None,
            },
        };
        let message = access_denied_message(&ctx, &decision).unwrap_or_default();
        Err(Box::new(Denied {
            error: ApiError::new(rotary_wire::ErrorCode::AccessDeniedException, message),
            reason,
            audit,
            secret_arn,
        }))
    }

    /// The resource a request acts on, as AWS names it for the action.
    fn resource(&self, action: Action<'_>, body: &Value, secret: Option<&AuthzView>) -> String {
        let op = match action {
            Action::Rotary(_, resource) => return resource.to_owned(),
            Action::Aws(op) => op,
        };
        if let Some(s) = secret {
            return s.arn.clone();
        }
        let prefix = format!(
            "arn:aws:secretsmanager:{}:{}:secret:",
            self.service.region(),
            self.service.account_id()
        );
        match op {
            Operation::CreateSecret => {
                // The suffix is chosen when the secret is created; policies match it with a
                // wildcard (`secret:prod/*`, `secret:db-*`).
                format!(
                    "{prefix}{}-??????",
                    str_member(body, "Name").unwrap_or_default()
                )
            }
            op if takes_secret_id(op) => match str_member(body, "SecretId") {
                Some(id) if id.starts_with("arn:") => id.to_owned(),
                Some(id) => format!("{prefix}{id}"),
                None => "*".to_owned(),
            },
            _ => "*".to_owned(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn context(
        &self,
        principal: &Principal,
        action: &str,
        resource: &str,
        act: Action<'_>,
        body: &Value,
        secret: Option<&AuthzView>,
        info: &RequestInfo,
    ) -> RequestContext {
        let mut ctx = RequestContext::for_principal(principal, action, resource)
            .with_now(info.now)
            .with_secure_transport(info.secure_transport);
        if let Some(ip) = info.source_ip {
            ctx = ctx.with_source_ip(ip);
        }
        if let PrincipalKind::User { name } = &principal.kind {
            if let Some((user_id, tags)) = self.identities.attributes(name) {
                ctx = ctx.with_userid(user_id);
                for (k, v) in tags {
                    ctx = ctx.with_principal_tag(&k, v);
                }
            }
        }
        if let Some(s) = secret {
            ctx = ctx.with("secretsmanager:SecretId", s.arn.clone());
            for (k, v) in &s.tags {
                ctx = ctx.with_resource_tag(k, v.clone());
            }
        }
        let Action::Aws(op) = act else {
            return ctx;
        };
        let string_keys: &[(&str, &str)] = &[
            ("Name", "secretsmanager:Name"),
            ("Description", "secretsmanager:Description"),
            ("KmsKeyId", "secretsmanager:KmsKeyId"),
            ("VersionId", "secretsmanager:VersionId"),
            ("VersionStage", "secretsmanager:VersionStage"),
            ("RotationLambdaARN", "secretsmanager:RotationLambdaARN"),
        ];
        for (member, key) in string_keys {
            if let Some(v) = str_member(body, member) {
                ctx = ctx.with(key, v.to_owned());
            }
        }
        for (member, key) in [
            (
                "ForceDeleteWithoutRecovery",
                "secretsmanager:ForceDeleteWithoutRecovery",
            ),
            ("BlockPublicPolicy", "secretsmanager:BlockPublicPolicy"),
            (
                "ForceOverwriteReplicaSecret",
                "secretsmanager:ForceOverwriteReplicaSecret",
            ),
        ] {
            if let Some(b) = body.get(member).and_then(Value::as_bool) {
                ctx = ctx.with(key, b.to_string());
            }
        }
        if let Some(n) = body.get("RecoveryWindowInDays").and_then(Value::as_i64) {
            ctx = ctx.with("secretsmanager:RecoveryWindowInDays", n.to_string());
        }
        if let Some(regions) = body.get("AddReplicaRegions").and_then(Value::as_array) {
            let names: Vec<String> = regions
                .iter()
                .filter_map(|r| r.get("Region").and_then(Value::as_str).map(str::to_owned))
                .collect();
            ctx = ctx.with_values("secretsmanager:AddReplicaRegions", names);
        }
        if matches!(op, Operation::CreateSecret | Operation::TagResource) {
            if let Some(tags) = body.get("Tags").and_then(Value::as_array) {
                for t in tags {
                    if let (Some(k), Some(v)) = (
                        t.get("Key").and_then(Value::as_str),
                        t.get("Value").and_then(Value::as_str),
                    ) {
                        ctx = ctx.with_request_tag(k, v.to_owned());
                    }
                }
            }
        }
        if op == Operation::UntagResource {
            if let Some(keys) = body.get("TagKeys").and_then(Value::as_array) {
                let keys: Vec<String> = keys
                    .iter()
                    .filter_map(|k| k.as_str().map(str::to_owned))
                    .collect();
                ctx = ctx.with_values("aws:TagKeys", keys);
            }
        }
        ctx
    }

    /// The secret's compiled resource policy; `Err` when it does not compile.
    fn resource_policy(&self, view: &AuthzView) -> Result<Option<Arc<Policy>>, ()> {
        let Some(text) = &view.policy else {
            return Ok(None);
        };
        if let Some((rev, p)) = self.resource_policies.lock().get(&view.arn) {
            if *rev == view.revision {
                return Ok(p.clone());
            }
        }
        match Policy::parse(text, PolicyKind::Resource, limits::RESOURCE_POLICY_CHARS) {
            Ok(p) => {
                let p = Some(Arc::new(p));
                let mut cache = self.resource_policies.lock();
                if cache.len() > 100_000 {
                    cache.clear();
                }
                cache.insert(view.arn.clone(), (view.revision, p.clone()));
                Ok(p)
            }
            Err(e) => {
                tracing::error!(secret_arn = %view.arn, error = %e.message(), "A stored resource policy does not compile; non-root callers are denied");
                Err(())
            }
        }
    }
}

/// Whether an operation names one secret with `SecretId`.
fn takes_secret_id(op: Operation) -> bool {
    !matches!(
        op,
        Operation::CreateSecret
            | Operation::ListSecrets
            | Operation::GetRandomPassword
            | Operation::BatchGetSecretValue
            | Operation::ValidateResourcePolicy
    )
}

/// The `SecretId` member of a request body, when the body is a JSON object and the member a
/// string; read without building the whole document when the body is well-formed.
fn secret_id_of(body: &[u8]) -> Option<std::borrow::Cow<'_, str>> {
    #[derive(serde::Deserialize)]
    struct Id<'a> {
        #[serde(rename = "SecretId", borrow, default)]
        secret_id: Option<std::borrow::Cow<'a, str>>,
    }
    match serde_json::from_slice::<Id<'_>>(body) {
        Ok(id) => id.secret_id,
        // As the whole document reads it (a repeated member: the last one).
        Err(_) => {
            let doc: Value = serde_json::from_slice(body).ok()?;
            str_member(&doc, "SecretId").map(|id| std::borrow::Cow::Owned(id.to_owned()))
        }
    }
}

fn str_member<'a>(body: &'a Value, name: &str) -> Option<&'a str> {
    body.get(name).and_then(Value::as_str)
}

/// The session policy of rotation credentials: the rotation operations on the first ARN of
/// the scope (the secret being rotated), reads of the others (its master secret), and
/// GetRandomPassword.
fn session_policy_for(scope: &[String]) -> Option<Arc<Policy>> {
    let (rotated, read_only) = scope.split_first()?;
    let mut statements = vec![
        serde_json::json!({"Effect": "Allow", "Action": SESSION_ACTIONS, "Resource": rotated}),
        serde_json::json!({"Effect": "Allow", "Action": "secretsmanager:GetRandomPassword", "Resource": "*"}),
    ];
    if !read_only.is_empty() {
        statements.push(serde_json::json!({
            "Effect": "Allow",
            "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
            "Resource": read_only,
        }));
    }
    let doc = serde_json::json!({"Version": "2012-10-17", "Statement": statements});
    Policy::parse(&doc.to_string(), PolicyKind::Identity, usize::MAX)
        .ok()
        .map(Arc::new)
}

/// Whether a stored or proposed resource policy is valid for the engine: the message of the
/// first problem, for MalformedPolicyDocumentException.
pub fn check_resource_policy(text: &str) -> Result<Policy, String> {
    Policy::parse(text, PolicyKind::Resource, limits::RESOURCE_POLICY_CHARS)
        .map_err(|e| e.message().to_owned())
}
