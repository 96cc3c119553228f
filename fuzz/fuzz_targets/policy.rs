//! IAM policy parsing, compilation, validation and evaluation (crates/rotary-auth/src/policy).
//!
//! Input: a policy document (JSON text), parsed as an identity and as a resource policy.
//!
//! Properties:
//! - parsing, compiling, validating and evaluating never panic;
//! - `validate` reports MALFORMED_POLICY exactly when `Policy::parse` refuses the text, and
//!   BROAD_ACCESS exactly when `is_public` holds;
//! - parsing depends only on the JSON value: the same value pretty-printed parses to the same
//!   document (or the same error); the size limit holds exactly at `policy_size`;
//! - evaluation follows AWS's order: the deciding statement exists and has the outcome's
//!   effect; adding an allow-everything identity policy turns every implicit deny into an
//!   allow and never overrides an explicit deny; a policy listed twice decides the same;
//!   an AccessDenied message exists exactly for a denied request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rotary_auth::policy::{
    access_denied_message, evaluate, is_public, parse, policy_size, validate, Effect, Outcome,
    Policy, PolicyKind, PolicySource, RequestContext,
};
use serde_json::Value;

/// No size limit: the round trip re-spaces the text, and sizes are checked elsewhere.
const NO_LIMIT: usize = usize::MAX;

const ALLOW_ALL: &str =
    r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let allow_all = Policy::parse(ALLOW_ALL, PolicyKind::Identity, NO_LIMIT).expect("valid");
    for kind in [PolicyKind::Identity, PolicyKind::Resource] {
        let parsed = Policy::parse(text, kind, NO_LIMIT);
        let findings = validate(text, kind, NO_LIMIT);
        let malformed = findings.iter().any(|f| f.issue_code == "MALFORMED_POLICY");
        assert_eq!(malformed, parsed.is_err(), "validate disagrees with parse");

        if let Ok(value) = serde_json::from_str::<Value>(text) {
            let pretty = serde_json::to_string_pretty(&value).expect("a Value prints");
            assert_eq!(
                parse(&pretty, kind, NO_LIMIT),
                parse(text, kind, NO_LIMIT),
                "pretty-printing the JSON changes the parse"
            );
        }

        // The size limit counts characters without whitespace, exactly at the boundary.
        let size = policy_size(text);
        assert_eq!(
            parse(text, kind, size).is_ok(),
            parse(text, kind, NO_LIMIT).is_ok()
        );
        if size > 0 {
            assert!(
                parse(text, kind, size - 1).is_err(),
                "a policy over the limit parses"
            );
        }

        let Ok(policy) = parsed else { continue };
        let broad = findings.iter().any(|f| f.issue_code == "BROAD_ACCESS");
        assert_eq!(
            broad,
            is_public(&policy),
            "BROAD_ACCESS disagrees with is_public"
        );

        for ctx in contexts(&policy) {
            let (ids, res): (Vec<&Policy>, Option<&Policy>) = match kind {
                PolicyKind::Identity => (vec![&policy], None),
                PolicyKind::Resource => (vec![], Some(&policy)),
            };
            let d = evaluate(ids.iter().copied(), res, &ctx);
            if let Some(r) = d.statement {
                let st = &policy.document().statements[r.index];
                let effect = match d.outcome {
                    Outcome::Allow => Effect::Allow,
                    _ => Effect::Deny,
                };
                assert_eq!(st.effect, effect, "deciding statement has the wrong effect");
                assert_eq!(r.sid, st.sid.as_deref());
                let expected = match kind {
                    PolicyKind::Identity => PolicySource::Identity(0),
                    PolicyKind::Resource => PolicySource::Resource,
                };
                assert_eq!(r.source, expected);
            } else {
                assert_eq!(d.outcome, Outcome::ImplicitDeny);
            }
            assert_eq!(access_denied_message(&ctx, &d).is_none(), d.is_allowed());

            let twice: Vec<&Policy> = ids.iter().copied().chain(ids.iter().copied()).collect();
            assert_eq!(evaluate(twice, res, &ctx).outcome, d.outcome);

            let with_allow = evaluate(ids.iter().copied().chain([&allow_all]), res, &ctx);
            let expected = match d.outcome {
                Outcome::ExplicitDeny => Outcome::ExplicitDeny,
                _ => Outcome::Allow,
            };
            assert_eq!(
                with_allow.outcome, expected,
                "deny must win, allow must apply"
            );
        }
    }
});

/// Request contexts that the policy's own strings can match: its first action and resource
/// with wildcards filled in, condition keys set to their first values, plus a fixed one.
fn contexts(policy: &Policy) -> Vec<RequestContext> {
    let fill = |s: &str| s.replace('*', "x").replace('?', "y");
    let doc = policy.document();
    let mut out = vec![RequestContext::new(
        "arn:aws:iam::123456789012:user/alice",
        "123456789012",
        "secretsmanager:GetSecretValue",
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf",
    )
    .with_username("alice")];
    for st in doc.statements.iter().take(4) {
        let action = st
            .action
            .inner()
            .first()
            .map_or_else(String::new, |a| fill(a));
        let resource = st
            .resource
            .inner()
            .first()
            .map_or_else(String::new, |r| fill(r));
        let mut ctx = RequestContext::new(
            "arn:aws:iam::123456789012:user/alice",
            "123456789012",
            action,
            resource,
        );
        for c in &st.conditions {
            ctx.set(&c.key, c.values.iter().take(1).map(|v| fill(v)).collect());
        }
        out.push(ctx);
    }
    out
}
