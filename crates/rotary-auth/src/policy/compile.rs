//! Compilation of a parsed document into the form evaluation uses: done once, when a policy
//! is written, so that a request costs pattern matches and comparisons only.
//!
//! Condition operators: <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html>.

use ipnet::IpNet;

use super::model::{
    self, ConditionEntry, Effect, Polarity, PolicyDocument, PrincipalEntry, Version,
};
use super::pattern::{split_arn, Pattern};
use super::{PolicyError, PolicyKind};

/// A compiled policy, ready to evaluate. Build it with [`Policy::parse`] when the policy is
/// written; keep it (e.g. in an `Arc`) for every request.
#[derive(Clone, Debug)]
pub struct Policy {
    kind: PolicyKind,
    document: PolicyDocument,
    pub(crate) statements: Vec<CompiledStatement>,
    reads_context: bool,
}

impl Policy {
    /// Parses and compiles `text` as a policy of `kind`, at most `max_chars` characters long
    /// with whitespace excluded (see [`super::limits`]).
    pub fn parse(text: &str, kind: PolicyKind, max_chars: usize) -> Result<Self, PolicyError> {
        Self::compile(model::parse(text, kind, max_chars)?, kind)
    }

    /// Compiles an already parsed document (refusing bad IPs, dates, numbers, booleans and
    /// unknown condition operators).
    pub fn compile(document: PolicyDocument, kind: PolicyKind) -> Result<Self, PolicyError> {
        let vars = document.effective_version().supports_variables();
        let statements = document
            .statements
            .iter()
            .enumerate()
            .map(|(i, st)| {
                compile_statement(st, vars)
                    .map_err(|m| PolicyError::statement(i, st.sid.as_deref(), &m))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let reads_context = statements.iter().any(|st| {
            !st.conditions.is_empty()
                || st
                    .actions
                    .inner()
                    .iter()
                    .chain(st.resources.inner())
                    .any(Pattern::has_vars)
        });
        Ok(Policy {
            kind,
            document,
            statements,
            reads_context,
        })
    }

    /// Whether evaluating the policy reads the request's condition keys: a statement has a
    /// `Condition`, or an action or resource names a policy variable (`${aws:username}`).
    /// A policy that does not decides every request from its principal, action and
    /// resource alone, so a caller may leave the other keys out of the context.
    pub fn reads_context(&self) -> bool {
        self.reads_context
    }

    /// The parsed document this policy was compiled from.
    pub fn document(&self) -> &PolicyDocument {
        &self.document
    }

    /// Whether this is an identity-based or a resource-based policy.
    pub fn kind(&self) -> PolicyKind {
        self.kind
    }

    /// The language version the policy is evaluated with.
    pub fn version(&self) -> Version {
        self.document.effective_version()
    }
}

/// A statement with every pattern and value precompiled.
#[derive(Clone, Debug)]
pub(crate) struct CompiledStatement {
    pub(crate) sid: Option<String>,
    pub(crate) effect: Effect,
    pub(crate) actions: Polarity<Vec<Pattern>>,
    pub(crate) resources: Polarity<Vec<Pattern>>,
    pub(crate) principal: Option<Polarity<PrincipalSet>>,
    pub(crate) conditions: Vec<Condition>,
}

/// The principals a `Principal`/`NotPrincipal` element lists.
#[derive(Clone, Debug, Default)]
pub(crate) struct PrincipalSet {
    pub(crate) everyone: bool,
    pub(crate) accounts: Vec<String>,
    pub(crate) arns: Vec<String>,
}

/// How a condition treats a multivalued (or missing) context key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Qualifier {
    /// No set operator.
    Single,
    /// `ForAnyValue:` — at least one request value must satisfy the operator.
    ForAnyValue,
    /// `ForAllValues:` — every request value must satisfy it (true when there are none).
    ForAllValues,
}

/// Numeric and date comparisons: request value `cmp` policy value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    pub(crate) fn holds<T: PartialOrd>(self, request: T, policy: T) -> bool {
        match self {
            Cmp::Eq => request == policy,
            Cmp::Lt => request < policy,
            Cmp::Le => request <= policy,
            Cmp::Gt => request > policy,
            Cmp::Ge => request >= policy,
        }
    }
}

/// String operator family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StrMode {
    Equals,
    EqualsIgnoreCase,
    Like,
}

/// An ARN pattern matched component by component (`ArnEquals`/`ArnLike`, which AWS treats
/// alike): each of the six `:`-separated parts may hold `*` and `?`.
#[derive(Clone, Debug)]
pub(crate) struct ArnPattern {
    /// Per-component patterns when the value has six components.
    pub(crate) parts: Option<Vec<Pattern>>,
    /// Whole-value pattern otherwise (e.g. `*` or a lone variable).
    pub(crate) whole: Pattern,
}

/// The positive test an operator applies to one request value.
#[derive(Clone, Debug)]
pub(crate) enum Test {
    Str {
        mode: StrMode,
        values: Vec<Pattern>,
    },
    Arn(Vec<ArnPattern>),
    Num {
        cmp: Cmp,
        values: Vec<f64>,
    },
    Date {
        cmp: Cmp,
        values: Vec<i128>,
    },
    Bool(Vec<bool>),
    Ip(Vec<IpNet>),
    /// `Null`: `true` means "the key must be absent".
    Null(bool),
}

/// One compiled condition (one operator applied to one key).
#[derive(Clone, Debug)]
pub(crate) struct Condition {
    pub(crate) key: String,
    pub(crate) qualifier: Qualifier,
    pub(crate) if_exists: bool,
    /// `StringNotEquals`, `NotIpAddress`, …: true when no value matches (NOR).
    pub(crate) negated: bool,
    pub(crate) test: Test,
}

fn compile_statement(st: &model::Statement, vars: bool) -> Result<CompiledStatement, String> {
    let map_list = |p: &Polarity<Vec<String>>, f: &dyn Fn(&str) -> Pattern| match p {
        Polarity::Is(l) => Polarity::Is(l.iter().map(|s| f(s)).collect()),
        Polarity::Not(l) => Polarity::Not(l.iter().map(|s| f(s)).collect()),
    };
    // Actions are case-insensitive in IAM; no variables in actions.
    let actions = map_list(&st.action, &|a| {
        Pattern::new(&a.to_ascii_lowercase(), true, false)
    });
    let resources = map_list(&st.resource, &|r| Pattern::new(r, true, vars));
    let principal = st.principal.as_ref().map(|p| {
        let set = |entries: &Vec<PrincipalEntry>| {
            let mut s = PrincipalSet::default();
            for e in entries {
                match e {
                    PrincipalEntry::Everyone => s.everyone = true,
                    PrincipalEntry::Account(a) => s.accounts.push(a.clone()),
                    PrincipalEntry::Arn(a) => s.arns.push(a.clone()),
                    PrincipalEntry::Service(_) => {}
                }
            }
            s
        };
        match p {
            Polarity::Is(l) => Polarity::Is(set(l)),
            Polarity::Not(l) => Polarity::Not(set(l)),
        }
    });
    let conditions = st
        .conditions
        .iter()
        .map(|c| compile_condition(c, vars))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(CompiledStatement {
        sid: st.sid.clone(),
        effect: st.effect,
        actions,
        resources,
        principal,
        conditions,
    })
}

/// The operator families, after removing qualifier, `IfExists` and negation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    Str(StrMode),
    Arn,
    Num(Cmp),
    Date(Cmp),
    Bool,
    Ip,
    Null,
}

/// Resolves an operator name (matched case-insensitively) to (family, negated).
fn base_operator(name: &str) -> Option<(Family, bool)> {
    const TABLE: &[(&str, Family, bool)] = &[
        ("StringEquals", Family::Str(StrMode::Equals), false),
        ("StringNotEquals", Family::Str(StrMode::Equals), true),
        (
            "StringEqualsIgnoreCase",
            Family::Str(StrMode::EqualsIgnoreCase),
            false,
        ),
        (
            "StringNotEqualsIgnoreCase",
            Family::Str(StrMode::EqualsIgnoreCase),
            true,
        ),
        ("StringLike", Family::Str(StrMode::Like), false),
        ("StringNotLike", Family::Str(StrMode::Like), true),
        ("NumericEquals", Family::Num(Cmp::Eq), false),
        ("NumericNotEquals", Family::Num(Cmp::Eq), true),
        ("NumericLessThan", Family::Num(Cmp::Lt), false),
        ("NumericLessThanEquals", Family::Num(Cmp::Le), false),
        ("NumericGreaterThan", Family::Num(Cmp::Gt), false),
        ("NumericGreaterThanEquals", Family::Num(Cmp::Ge), false),
        ("DateEquals", Family::Date(Cmp::Eq), false),
        ("DateNotEquals", Family::Date(Cmp::Eq), true),
        ("DateLessThan", Family::Date(Cmp::Lt), false),
        ("DateLessThanEquals", Family::Date(Cmp::Le), false),
        ("DateGreaterThan", Family::Date(Cmp::Gt), false),
        ("DateGreaterThanEquals", Family::Date(Cmp::Ge), false),
        ("Bool", Family::Bool, false),
        ("IpAddress", Family::Ip, false),
        ("NotIpAddress", Family::Ip, true),
        ("ArnEquals", Family::Arn, false),
        ("ArnLike", Family::Arn, false),
        ("ArnNotEquals", Family::Arn, true),
        ("ArnNotLike", Family::Arn, true),
        ("Null", Family::Null, false),
    ];
    TABLE
        .iter()
        .find(|(n, _, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, f, neg)| (*f, *neg))
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    (s.len() >= prefix.len()
        && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes()))
    .then(|| &s[prefix.len()..])
}

fn strip_suffix_ci<'a>(s: &'a str, suffix: &str) -> Option<&'a str> {
    let cut = s.len().checked_sub(suffix.len())?;
    (s.is_char_boundary(cut) && s.as_bytes()[cut..].eq_ignore_ascii_case(suffix.as_bytes()))
        .then(|| &s[..cut])
}

fn compile_condition(c: &ConditionEntry, vars: bool) -> Result<Condition, String> {
    let op = c.operator.as_str();
    let unknown = || format!("uses unknown condition operator \"{op}\"");
    let (qualifier, rest) = if let Some(r) = strip_prefix_ci(op, "ForAnyValue:") {
        (Qualifier::ForAnyValue, r)
    } else if let Some(r) = strip_prefix_ci(op, "ForAllValues:") {
        (Qualifier::ForAllValues, r)
    } else {
        (Qualifier::Single, op)
    };
    let (if_exists, base) = match strip_suffix_ci(rest, "IfExists") {
        Some(b) => (true, b),
        None => (false, rest),
    };
    let (family, negated) = base_operator(base).ok_or_else(unknown)?;
    if family == Family::Null && (if_exists || qualifier != Qualifier::Single) {
        return Err(unknown());
    }
    let key = &c.key;
    let bad = |what: &str, v: &str| {
        format!("has condition {op} on {key} with value \"{v}\", which is not {what}")
    };
    let test = match family {
        Family::Str(mode) => Test::Str {
            mode,
            values: c
                .values
                .iter()
                .map(|v| {
                    let mut p = Pattern::new(v, mode == StrMode::Like, vars);
                    if mode == StrMode::EqualsIgnoreCase {
                        p.lowercase_literals();
                    }
                    p
                })
                .collect(),
        },
        Family::Arn => Test::Arn(c.values.iter().map(|v| arn_pattern(v, vars)).collect()),
        Family::Num(cmp) => Test::Num {
            cmp,
            values: c
                .values
                .iter()
                .map(|v| parse_number(v).ok_or_else(|| bad("a number", v)))
                .collect::<Result<_, _>>()?,
        },
        Family::Date(cmp) => Test::Date {
            cmp,
            values: c
                .values
                .iter()
                .map(|v| parse_date(v).ok_or_else(|| bad("an ISO 8601 date or epoch seconds", v)))
                .collect::<Result<_, _>>()?,
        },
        Family::Bool => Test::Bool(
            c.values
                .iter()
                .map(|v| parse_bool(v).ok_or_else(|| bad("\"true\" or \"false\"", v)))
                .collect::<Result<_, _>>()?,
        ),
        Family::Ip => Test::Ip(
            c.values
                .iter()
                .map(|v| {
                    parse_cidr(v).ok_or_else(|| bad("an IPv4 or IPv6 address or CIDR block", v))
                })
                .collect::<Result<_, _>>()?,
        ),
        Family::Null => {
            let [v] = c.values.as_slice() else {
                return Err(format!(
                    "has condition Null on {key} with more than one value"
                ));
            };
            Test::Null(parse_bool(v).ok_or_else(|| bad("\"true\" or \"false\"", v))?)
        }
    };
    Ok(Condition {
        key: key.clone(),
        qualifier,
        if_exists,
        negated,
        test,
    })
}

fn arn_pattern(v: &str, vars: bool) -> ArnPattern {
    let parts = split_arn(v);
    ArnPattern {
        parts: (parts.len() == 6)
            .then(|| parts.iter().map(|p| Pattern::new(p, true, vars)).collect()),
        whole: Pattern::new(v, true, vars),
    }
}

/// A decimal number (integers and decimals, as IAM's numeric operators take).
pub(crate) fn parse_number(v: &str) -> Option<f64> {
    let t = v.trim();
    let ok = !t.is_empty()
        && t.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.'));
    ok.then(|| t.parse::<f64>().ok())
        .flatten()
        .filter(|f| f.is_finite())
}

/// `true`/`false`, case-insensitively.
pub(crate) fn parse_bool(v: &str) -> Option<bool> {
    if v.eq_ignore_ascii_case("true") {
        Some(true)
    } else if v.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// An address (as a /32 or /128) or a CIDR block, IPv4 or IPv6.
pub(crate) fn parse_cidr(v: &str) -> Option<IpNet> {
    let t = v.trim();
    t.parse::<IpNet>()
        .ok()
        .or_else(|| t.parse::<std::net::IpAddr>().ok().map(IpNet::from))
        .map(|n| n.trunc())
}

/// A date as Unix nanoseconds: epoch seconds, RFC 3339 / ISO 8601 date-time (with `Z` or an
/// offset, optional fraction), a date-time without zone (UTC), or a plain date (midnight UTC).
pub(crate) fn parse_date(v: &str) -> Option<i128> {
    use time::format_description::well_known::Rfc3339;
    use time::macros::format_description;
    use time::{Date, OffsetDateTime, PrimitiveDateTime};
    let t = v.trim();
    if !t.is_empty()
        && t.bytes()
            .enumerate()
            .all(|(i, b)| b.is_ascii_digit() || (i == 0 && b == b'-'))
    {
        let secs: i64 = t.parse().ok()?;
        return Some(i128::from(secs) * 1_000_000_000);
    }
    if let Ok(d) = OffsetDateTime::parse(t, &Rfc3339) {
        return Some(d.unix_timestamp_nanos());
    }
    if let Ok(d) = PrimitiveDateTime::parse(
        t,
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"),
    ) {
        return Some(d.assume_utc().unix_timestamp_nanos());
    }
    if let Ok(d) = PrimitiveDateTime::parse(
        t,
        format_description!("[year]-[month]-[day]T[hour]:[minute]Z"),
    ) {
        return Some(d.assume_utc().unix_timestamp_nanos());
    }
    Date::parse(t, format_description!("[year]-[month]-[day]"))
        .ok()
        .map(|d| d.midnight().assume_utc().unix_timestamp_nanos())
}
