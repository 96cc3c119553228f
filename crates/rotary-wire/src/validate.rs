//! Model constraints (botocore's `service-2.json`) checked before any business rule.
//!
//! AWS reports them as `ValidationException` with one sentence per violation, e.g.
//! `1 validation error detected: Value 'x' at 'passwordLength' failed to satisfy constraint:
//! Member must have value less than or equal to 4096`.

use crate::error::{ApiError, ErrorCode};

/// Collects violations in request order.
#[derive(Debug, Default)]
pub struct Violations(Vec<String>);

/// Implemented by every request shape.
pub trait Validate {
    /// Records every model-constraint violation of the request.
    fn validate(&self, v: &mut Violations);

    /// Runs [`Validate::validate`] and turns violations into a `ValidationException`.
    fn check(&self) -> Result<(), ApiError> {
        let mut v = Violations::default();
        self.validate(&mut v);
        v.into_result()
    }
}

fn quote(value: &str) -> String {
    format!("Value '{value}'")
}

impl Violations {
    fn push(&mut self, value: Option<String>, path: &str, constraint: &str) {
        let value = value.unwrap_or_else(|| "Value".to_owned());
        self.0.push(format!(
            "{value} at '{path}' failed to satisfy constraint: {constraint}"
        ));
    }

    /// A required member that is absent.
    pub fn required<T>(&mut self, path: &str, field: &Option<T>) {
        if field.is_none() {
            self.0.push(format!(
                "Value null at '{path}' failed to satisfy constraint: Member must not be null"
            ));
        }
    }

    /// String length in characters, `min..=max`; the value is echoed.
    pub fn len(&mut self, path: &str, field: Option<&str>, min: usize, max: usize) {
        if let Some(s) = field {
            let n = s.chars().count();
            // The quoted value is formatted only for a violation (every request checks).
            if n < min || n > max {
                self.len_value(path, Some(quote(s)), n, min, max);
            }
        }
    }

    /// Length check for a sensitive member: the value is never echoed.
    pub fn len_sensitive(&mut self, path: &str, len: Option<usize>, min: usize, max: usize) {
        if let Some(n) = len {
            self.len_value(path, None, n, min, max);
        }
    }

    fn len_value(&mut self, path: &str, value: Option<String>, n: usize, min: usize, max: usize) {
        if n < min {
            let c = format!("Member must have length greater than or equal to {min}");
            self.push(value, path, &c);
        } else if n > max {
            let c = format!("Member must have length less than or equal to {max}");
            self.push(value, path, &c);
        }
    }

    /// Numeric range `min..=max`.
    pub fn range(&mut self, path: &str, field: Option<i64>, min: i64, max: i64) {
        if let Some(n) = field {
            if n < min {
                let c = format!("Member must have value greater than or equal to {min}");
                self.push(Some(quote(&n.to_string())), path, &c);
            } else if n > max {
                let c = format!("Member must have value less than or equal to {max}");
                self.push(Some(quote(&n.to_string())), path, &c);
            }
        }
    }

    /// Enum membership.
    pub fn one_of(&mut self, path: &str, field: Option<&str>, allowed: &[&str]) {
        if let Some(s) = field {
            if !allowed.contains(&s) {
                let c = format!(
                    "Member must satisfy enum value set: [{}]",
                    allowed.join(", ")
                );
                self.push(Some(quote(s)), path, &c);
            }
        }
    }

    /// A pattern check done by the caller; `ok` says whether it matched.
    pub fn pattern(&mut self, path: &str, field: Option<&str>, ok: bool, regex: &str) {
        if let (Some(s), false) = (field, ok) {
            let c = format!("Member must satisfy regular expression pattern: {regex}");
            self.push(Some(quote(s)), path, &c);
        }
    }

    /// List length `min..=max`.
    pub fn list_len<T>(&mut self, path: &str, field: Option<&[T]>, min: usize, max: usize) {
        if let Some(l) = field {
            if l.len() < min {
                let c = format!("Member must have length greater than or equal to {min}");
                self.push(None, path, &c);
            } else if l.len() > max {
                let c = format!("Member must have length less than or equal to {max}");
                self.push(None, path, &c);
            }
        }
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok` or a `ValidationException` listing every violation.
    pub fn into_result(self) -> Result<(), ApiError> {
        match self.0.len() {
            0 => Ok(()),
            1 => Err(ApiError::new(
                ErrorCode::ValidationException,
                format!("1 validation error detected: {}", self.0[0]),
            )),
            n => Err(ApiError::new(
                ErrorCode::ValidationException,
                format!("{n} validation errors detected: {}", self.0.join("; ")),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_and_many_violations_use_aws_wording() {
        let mut v = Violations::default();
        v.range("passwordLength", Some(5000), 1, 4096);
        let e = v.into_result().unwrap_err();
        assert_eq!(
            e.message(),
            "1 validation error detected: Value '5000' at 'passwordLength' failed to satisfy \
             constraint: Member must have value less than or equal to 4096"
        );
        let mut v = Violations::default();
        v.required::<String>("secretId", &None);
        v.len_sensitive("secretString", Some(70000), 1, 65536);
        let e = v.into_result().unwrap_err();
        assert_eq!(
            e.message(),
            "2 validation errors detected: Value null at 'secretId' failed to satisfy constraint: \
             Member must not be null; Value at 'secretString' failed to satisfy constraint: \
             Member must have length less than or equal to 65536"
        );
    }
}
