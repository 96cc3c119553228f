//! The IAM JSON policy grammar: a document parsed into plain data, with AWS's structural
//! checks, before any compilation.
//!
//! Reference: <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_grammar.html>.
//! Errors are one sentence naming the statement (1-based, with its Sid when it has one) and
//! the fault; the server returns them as MalformedPolicyDocumentException messages.

use serde_json::{Map, Value};

use super::{PolicyError, PolicyKind};

/// The policy language version of a document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// `2012-10-17`: the current language, with policy variables.
    V2012_10_17,
    /// `2008-10-17`, or no `Version` at all: `${…}` is literal text.
    V2008_10_17,
}

impl Version {
    /// Whether `${…}` policy variables are substituted.
    pub fn supports_variables(self) -> bool {
        self == Version::V2012_10_17
    }
}

/// Whether a statement allows or denies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// `"Effect": "Allow"`.
    Allow,
    /// `"Effect": "Deny"`.
    Deny,
}

/// A parsed (not yet compiled) policy document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyDocument {
    /// `Version`; `None` when absent (evaluated as 2008-10-17).
    pub version: Option<Version>,
    /// `Id`, if any.
    pub id: Option<String>,
    /// The statements, in document order.
    pub statements: Vec<Statement>,
}

impl PolicyDocument {
    /// The version the document is evaluated with (absent means 2008-10-17, as in AWS).
    pub fn effective_version(&self) -> Version {
        self.version.unwrap_or(Version::V2008_10_17)
    }
}

/// A list that a statement uses either positively or negated (`Action` vs `NotAction`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Polarity<T> {
    /// `Action`, `Resource`, `Principal`.
    Is(T),
    /// `NotAction`, `NotResource`, `NotPrincipal`.
    Not(T),
}

impl<T> Polarity<T> {
    /// The inner list, whatever the polarity.
    pub fn inner(&self) -> &T {
        match self {
            Polarity::Is(t) | Polarity::Not(t) => t,
        }
    }
}

/// One entry of a `Principal` element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrincipalEntry {
    /// `"*"` or `{"AWS": "*"}`: everyone, including anonymous callers.
    Everyone,
    /// A 12-digit account id, or `arn:aws:iam::<account>:root`.
    Account(String),
    /// Any other principal ARN (user, role, assumed role…), matched exactly.
    Arn(String),
    /// `{"Service": "…"}`: never a Rotary caller, kept so documents round-trip.
    Service(String),
}

/// One `operator: {key: values}` entry of a `Condition` element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConditionEntry {
    /// The operator as written, e.g. `ForAnyValue:StringLikeIfExists`.
    pub operator: String,
    /// The condition key as written, e.g. `secretsmanager:ResourceTag/team`.
    pub key: String,
    /// The values (JSON numbers and booleans as their text), ORed.
    pub values: Vec<String>,
}

/// One statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    /// `Sid`, if any.
    pub sid: Option<String>,
    /// `Effect`.
    pub effect: Effect,
    /// `Action` or `NotAction` (always present).
    pub action: Polarity<Vec<String>>,
    /// `Resource` or `NotResource` (always present).
    pub resource: Polarity<Vec<String>>,
    /// `Principal` or `NotPrincipal` (resource policies only).
    pub principal: Option<Polarity<Vec<PrincipalEntry>>>,
    /// `Condition` entries, ANDed.
    pub conditions: Vec<ConditionEntry>,
}

/// Counts the characters AWS counts against policy size quotas: whitespace is not counted.
pub fn policy_size(text: &str) -> usize {
    text.chars().filter(|c| !c.is_whitespace()).count()
}

/// Parses a policy document of `kind`, refusing one longer than `max_chars` characters
/// (whitespace excluded; see [`super::limits`]).
pub fn parse(
    text: &str,
    kind: PolicyKind,
    max_chars: usize,
) -> Result<PolicyDocument, PolicyError> {
    let size = policy_size(text);
    if size > max_chars {
        return Err(PolicyError::document(format!(
            "The policy document is {size} characters long (whitespace excluded), more than the limit of {max_chars}."
        )));
    }
    let value: Value = serde_json::from_str(text).map_err(|e| {
        PolicyError::document(format!(
            "The policy document is not valid JSON (line {}, column {}).",
            e.line(),
            e.column()
        ))
    })?;
    let Value::Object(top) = value else {
        return Err(PolicyError::document(
            "The policy document must be a JSON object.".into(),
        ));
    };
    let mut version = None;
    let mut id = None;
    let mut statement = None;
    for (k, v) in &top {
        match k.as_str() {
            "Version" => {
                version = Some(match v.as_str() {
                    Some("2012-10-17") => Version::V2012_10_17,
                    Some("2008-10-17") => Version::V2008_10_17,
                    _ => {
                        return Err(PolicyError::document(format!(
                            "The policy Version must be \"2012-10-17\" or \"2008-10-17\", not {}.",
                            describe(v)
                        )))
                    }
                })
            }
            "Id" => {
                id = Some(
                    v.as_str()
                        .ok_or_else(|| {
                            PolicyError::document("The policy Id must be a string.".into())
                        })?
                        .to_owned(),
                )
            }
            "Statement" => statement = Some(v),
            other => {
                return Err(PolicyError::document(format!(
                    "The policy document has an unknown element \"{other}\"."
                )))
            }
        }
    }
    let statement = statement.ok_or_else(|| {
        PolicyError::document("The policy document must contain a Statement element.".into())
    })?;
    let raw: Vec<&Value> = match statement {
        Value::Array(items) => items.iter().collect(),
        Value::Object(_) => vec![statement],
        _ => {
            return Err(PolicyError::document(
                "The Statement element must be an object or a list of objects.".into(),
            ))
        }
    };
    if raw.is_empty() {
        return Err(PolicyError::document(
            "The policy document must contain at least one statement.".into(),
        ));
    }
    let mut statements = Vec::with_capacity(raw.len());
    for (index, value) in raw.into_iter().enumerate() {
        let st = parse_statement(value, index, kind)?;
        if let Some(sid) = &st.sid {
            if statements
                .iter()
                .any(|s: &Statement| s.sid.as_deref() == Some(sid))
            {
                return Err(PolicyError::statement(
                    index,
                    Some(sid),
                    "reuses a Sid; statement ids must be unique within a policy",
                ));
            }
        }
        statements.push(st);
    }
    Ok(PolicyDocument {
        version,
        id,
        statements,
    })
}

/// Parses statement `index` (0-based).
fn parse_statement(
    value: &Value,
    index: usize,
    kind: PolicyKind,
) -> Result<Statement, PolicyError> {
    let Value::Object(obj) = value else {
        return Err(PolicyError::statement(index, None, "is not a JSON object"));
    };
    // The Sid first, so that every later error can name it.
    let sid = match obj.get("Sid") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            return Err(PolicyError::statement(
                index,
                None,
                "has a Sid that is not a string",
            ))
        }
    };
    let sid_ref = sid.as_deref();
    let err = |msg: &str| PolicyError::statement(index, sid_ref, msg);
    for k in obj.keys() {
        if !matches!(
            k.as_str(),
            "Sid"
                | "Effect"
                | "Action"
                | "NotAction"
                | "Resource"
                | "NotResource"
                | "Principal"
                | "NotPrincipal"
                | "Condition"
        ) {
            return Err(err(&format!("has an unknown element \"{k}\"")));
        }
    }
    let effect = match obj.get("Effect") {
        Some(Value::String(s)) if s == "Allow" => Effect::Allow,
        Some(Value::String(s)) if s == "Deny" => Effect::Deny,
        Some(_) => {
            return Err(err(
                "has an Effect other than \"Allow\" or \"Deny\" (case-sensitive)",
            ))
        }
        None => return Err(err("has no Effect")),
    };
    let action = match pick(obj, "Action", "NotAction").map_err(|m| err(&m))? {
        None => return Err(err("must contain Action or NotAction")),
        Some((v, neg)) => {
            let list = string_list(v)
                .ok_or_else(|| err("has an Action that is not a string or a list of strings"))?;
            if list.is_empty() {
                return Err(err("has an empty Action list"));
            }
            for a in &list {
                check_action(a).map_err(|m| err(&m))?;
            }
            polarity(list, neg)
        }
    };
    let resource = match pick(obj, "Resource", "NotResource").map_err(|m| err(&m))? {
        None => return Err(err("must contain Resource or NotResource")),
        Some((v, neg)) => {
            let list = string_list(v)
                .ok_or_else(|| err("has a Resource that is not a string or a list of strings"))?;
            if list.is_empty() {
                return Err(err("has an empty Resource list"));
            }
            for r in &list {
                if r != "*" && !r.starts_with("arn:") {
                    return Err(err(&format!(
                        "has Resource \"{r}\", which is not an ARN or \"*\""
                    )));
                }
            }
            polarity(list, neg)
        }
    };
    let principal =
        match (
            pick(obj, "Principal", "NotPrincipal").map_err(|m| err(&m))?,
            kind,
        ) {
            (Some(_), PolicyKind::Identity) => return Err(err(
                "has a Principal or NotPrincipal, which identity-based policies must not specify",
            )),
            (None, PolicyKind::Resource) => {
                return Err(err(
                    "must contain Principal or NotPrincipal in a resource-based policy",
                ))
            }
            (None, PolicyKind::Identity) => None,
            (Some((v, neg)), PolicyKind::Resource) => {
                Some(polarity(parse_principal(v).map_err(|m| err(&m))?, neg))
            }
        };
    let conditions = match obj.get("Condition") {
        None => Vec::new(),
        Some(v) => parse_conditions(v).map_err(|m| err(&m))?,
    };
    Ok(Statement {
        sid,
        effect,
        action,
        resource,
        principal,
        conditions,
    })
}

/// Names a JSON value for an error message: a string is quoted, anything else is named by its
/// type. Numbers are not echoed, because their printed form is not exact (a large number
/// reads back differently), and an error must depend only on the document's value.
fn describe(v: &Value) -> String {
    match v {
        Value::String(_) => v.to_string(),
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(_) => "a number".into(),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

fn polarity<T>(t: T, negated: bool) -> Polarity<T> {
    if negated {
        Polarity::Not(t)
    } else {
        Polarity::Is(t)
    }
}

/// Exactly one of `yes` / `no` (or neither): the value and whether it was the negated form.
fn pick<'a>(
    obj: &'a Map<String, Value>,
    yes: &str,
    no: &str,
) -> Result<Option<(&'a Value, bool)>, String> {
    match (obj.get(yes), obj.get(no)) {
        (Some(_), Some(_)) => Err(format!("has both {yes} and {no}; use exactly one")),
        (Some(v), None) => Ok(Some((v, false))),
        (None, Some(v)) => Ok(Some((v, true))),
        (None, None) => Ok(None),
    }
}

/// A string or a list of strings.
fn string_list(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().map(str::to_owned))
            .collect(),
        _ => None,
    }
}

/// `*`, or `vendor:pattern` with a plain vendor prefix (AWS: "Actions/Conditions must be
/// prefaced by a vendor").
fn check_action(a: &str) -> Result<(), String> {
    if a == "*" {
        return Ok(());
    }
    match a.split_once(':') {
        Some((vendor, name))
            if !vendor.is_empty()
                && vendor.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !name.is_empty()
                && !name.contains(':') =>
        {
            Ok(())
        }
        _ => Err(format!(
            "has Action \"{a}\", which is not \"*\" or prefixed by a service, e.g. \"secretsmanager:GetSecretValue\""
        )),
    }
}

fn parse_principal(v: &Value) -> Result<Vec<PrincipalEntry>, String> {
    match v {
        Value::String(s) if s == "*" => Ok(vec![PrincipalEntry::Everyone]),
        Value::Object(map) if !map.is_empty() => {
            let mut out = Vec::new();
            for (ty, vals) in map {
                let list = string_list(vals).filter(|l| !l.is_empty()).ok_or_else(|| {
                    format!("has a Principal \"{ty}\" that is not a string or a list of strings")
                })?;
                for p in list {
                    out.push(match ty.as_str() {
                        "AWS" => aws_principal(&p)?,
                        "Service" => PrincipalEntry::Service(p),
                        _ => {
                            return Err(format!(
                                "has an unsupported Principal type \"{ty}\"; use \"AWS\" or \"*\""
                            ))
                        }
                    });
                }
            }
            Ok(out)
        }
        _ => Err(
            "has a Principal that is neither \"*\" nor an object such as {\"AWS\": \"arn:…\"}"
                .into(),
        ),
    }
}

fn aws_principal(p: &str) -> Result<PrincipalEntry, String> {
    if p == "*" {
        return Ok(PrincipalEntry::Everyone);
    }
    if is_account_id(p) {
        return Ok(PrincipalEntry::Account(p.to_owned()));
    }
    let parts: Vec<&str> = p.splitn(6, ':').collect();
    let valid = parts.len() == 6
        && parts[0] == "arn"
        && !parts[1].is_empty()
        && matches!(parts[2], "iam" | "sts")
        && is_account_id(parts[4])
        && !parts[5].is_empty()
        && !p.contains(['*', '?']);
    if !valid {
        return Err(format!("has an invalid principal \"{p}\""));
    }
    if parts[2] == "iam" && parts[5] == "root" {
        Ok(PrincipalEntry::Account(parts[4].to_owned()))
    } else {
        Ok(PrincipalEntry::Arn(p.to_owned()))
    }
}

/// Twelve ASCII digits.
pub(crate) fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

fn parse_conditions(v: &Value) -> Result<Vec<ConditionEntry>, String> {
    let Value::Object(ops) = v else {
        return Err("has a Condition that is not an object".into());
    };
    let mut out = Vec::new();
    for (op, keys) in ops {
        let Value::Object(keys) = keys else {
            return Err(format!(
                "has condition operator {op} whose value is not an object of keys"
            ));
        };
        if keys.is_empty() {
            return Err(format!(
                "has condition operator {op} with no condition keys"
            ));
        }
        for (key, vals) in keys {
            match key.split_once(':') {
                Some((p, n)) if !p.is_empty() && !n.is_empty() => {}
                _ => return Err(format!("has condition key \"{key}\", which is not prefixed by a service, e.g. \"aws:SourceIp\"")),
            }
            let scalar = |x: &Value| match x {
                Value::String(s) => Some(s.clone()),
                Value::Bool(b) => Some(b.to_string()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            };
            let values: Option<Vec<String>> = match vals {
                Value::Array(items) => items.iter().map(scalar).collect(),
                other => scalar(other).map(|s| vec![s]),
            };
            let values = values
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("has condition {op} on {key} whose value is not a string, number, boolean or a non-empty list of them"))?;
            out.push(ConditionEntry {
                operator: op.clone(),
                key: key.clone(),
                values,
            });
        }
    }
    Ok(out)
}
