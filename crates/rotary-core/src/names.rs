//! Secret name rules (spec §2.2, §4.6).

use rotary_wire::{api_error, ApiError};

/// AWS's text for a name with characters outside the allowed set.
pub const INVALID_NAME: &str = "Invalid name. Must be a valid name containing alphanumeric \
                                characters, or any of the following: -/_+=.@!";

/// Whether `c` may appear in a secret name: ASCII letters, digits and `/_+=.@-`.
pub fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "/_+=.@-".contains(c)
}

/// Checks a secret name (or a SecretId that is not an ARN).
pub fn check(name: &str) -> Result<(), ApiError> {
    if name.is_empty() || !name.chars().all(is_name_char) {
        return Err(api_error!(ValidationException, "{}", INVALID_NAME));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_aws_charset_and_rejects_the_rest() {
        assert!(check("Valid/_+=.@-Name-a1b2c3-").is_ok());
        for bad in ["a b", "a*", "a?", "a]", "a\\b", "a\u{0}", "ä", "rds!x", ""] {
            let e = check(bad).unwrap_err();
            assert_eq!(e.message(), INVALID_NAME, "{bad:?}");
        }
    }
}
