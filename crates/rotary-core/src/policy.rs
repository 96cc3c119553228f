//! Resource policies: syntax checks and the "broad access" check. Enforcement comes with
//! access control; here policies are validated and stored.

use serde_json::Value;

/// Why a policy is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyProblem {
    /// Not a valid policy document; the text says what is wrong (never echoing values).
    Malformed(String),
}

/// The outcome of validating a syntactically valid policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyReport {
    /// Statements that allow everyone (`"Principal": "*"` or `{"AWS": "*"}`) without a
    /// condition.
    pub grants_public_access: bool,
}

const EFFECTS: [&str; 2] = ["Allow", "Deny"];
const STATEMENT_KEYS: [&str; 8] = [
    "Sid",
    "Effect",
    "Principal",
    "NotPrincipal",
    "Action",
    "NotAction",
    "Resource",
    "Condition",
];

fn malformed(msg: &str) -> PolicyProblem {
    PolicyProblem::Malformed(msg.to_owned())
}

fn is_string_or_strings(v: &Value) -> bool {
    match v {
        Value::String(_) => true,
        Value::Array(a) => !a.is_empty() && a.iter().all(Value::is_string),
        _ => false,
    }
}

fn is_wildcard_principal(p: &Value) -> bool {
    match p {
        Value::String(s) => s == "*",
        Value::Object(m) => m.get("AWS").is_some_and(|aws| match aws {
            Value::String(s) => s == "*",
            Value::Array(a) => a.iter().any(|x| x == "*"),
            _ => false,
        }),
        _ => false,
    }
}

/// Checks an IAM-style resource policy document.
pub fn check(text: &str) -> Result<PolicyReport, PolicyProblem> {
    let doc: Value = serde_json::from_str(text)
        .map_err(|_| malformed("This resource policy contains a syntax error: invalid JSON."))?;
    let Value::Object(doc) = doc else {
        return Err(malformed(
            "This resource policy contains a syntax error: not a JSON object.",
        ));
    };
    if let Some(v) = doc.get("Version") {
        if !matches!(v.as_str(), Some("2012-10-17") | Some("2008-10-17")) {
            return Err(malformed(
                "This resource policy contains an unsupported Version.",
            ));
        }
    }
    let statements = match doc.get("Statement") {
        Some(Value::Array(a)) if !a.is_empty() => a.iter().collect::<Vec<_>>(),
        Some(o @ Value::Object(_)) => vec![o],
        _ => return Err(malformed("This resource policy is missing a Statement.")),
    };
    let mut report = PolicyReport::default();
    for st in statements {
        let Value::Object(st) = st else {
            return Err(malformed("Each Statement must be a JSON object."));
        };
        if let Some(k) = st.keys().find(|k| !STATEMENT_KEYS.contains(&k.as_str())) {
            let _ = k;
            return Err(malformed(
                "This resource policy contains an unsupported statement element.",
            ));
        }
        let effect = st.get("Effect").and_then(Value::as_str);
        if !effect.is_some_and(|e| EFFECTS.contains(&e)) {
            return Err(malformed(
                "Each Statement must have an Effect of Allow or Deny.",
            ));
        }
        let action = st.get("Action").or_else(|| st.get("NotAction"));
        if !action.is_some_and(is_string_or_strings) {
            return Err(malformed(
                "Each Statement must have an Action or NotAction.",
            ));
        }
        if let Some(p) = st.get("Principal").or_else(|| st.get("NotPrincipal")) {
            let ok = match p {
                Value::String(s) => s == "*",
                Value::Object(m) => !m.is_empty() && m.values().all(is_string_or_strings),
                _ => false,
            };
            if !ok {
                return Err(malformed(
                    "This resource policy contains an unsupported principal.",
                ));
            }
        }
        if let Some(r) = st.get("Resource") {
            if !is_string_or_strings(r) {
                return Err(malformed(
                    "The Resource of a Statement must be a string or a list.",
                ));
            }
        }
        if effect == Some("Allow")
            && st.get("Principal").is_some_and(is_wildcard_principal)
            && st.get("Condition").is_none()
        {
            report.grants_public_access = true;
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_a_normal_policy() {
        let p = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
            "Principal":{"AWS":"arn:aws:iam::123456789012:root"},
            "Action":"secretsmanager:GetSecretValue","Resource":"*"}]}"#;
        assert_eq!(
            check(p).unwrap(),
            PolicyReport {
                grants_public_access: false
            }
        );
    }

    #[test]
    fn flags_public_access() {
        for principal in [r#""*""#, r#"{"AWS":"*"}"#, r#"{"AWS":["x","*"]}"#] {
            let p = format!(
                r#"{{"Statement":{{"Effect":"Allow","Principal":{principal},"Action":"*"}}}}"#
            );
            assert!(check(&p).unwrap().grants_public_access, "{principal}");
        }
        let with_condition = r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"*",
            "Condition":{"StringEquals":{"aws:PrincipalAccount":"1"}}}}"#;
        assert!(!check(with_condition).unwrap().grants_public_access);
    }

    #[test]
    fn rejects_malformed_documents() {
        for bad in [
            "not json",
            "[]",
            "{}",
            r#"{"Statement":[]}"#,
            r#"{"Statement":[{"Effect":"Maybe","Action":"*"}]}"#,
            r#"{"Statement":[{"Effect":"Allow"}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Action":"*","Principal":5}]}"#,
            r#"{"Version":"1999","Statement":[{"Effect":"Allow","Action":"*"}]}"#,
            r#"{"Statement":[{"Effect":"Allow","Action":"*","Bogus":1}]}"#,
        ] {
            assert!(
                matches!(check(bad), Err(PolicyProblem::Malformed(_))),
                "{bad}"
            );
        }
    }
}
