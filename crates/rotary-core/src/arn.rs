//! Secret ARNs: `arn:aws:secretsmanager:<region>:<account>:secret:<name>-<6 chars>`.

use rand::distributions::{Alphanumeric, DistString};
use rand::rngs::OsRng;

/// Length of the random suffix AWS appends to a secret's name in its ARN.
pub const SUFFIX_LEN: usize = 6;

/// Builds a new ARN with a fresh random suffix (`[A-Za-z0-9]{6}`, CSPRNG).
pub fn new_secret_arn(region: &str, account: &str, name: &str) -> String {
    let suffix = Alphanumeric.sample_string(&mut OsRng, SUFFIX_LEN);
    format!("arn:aws:secretsmanager:{region}:{account}:secret:{name}-{suffix}")
}

/// The parts of a secret ARN that matter for lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedArn<'a> {
    /// Region segment.
    pub region: &'a str,
    /// Account segment.
    pub account: &'a str,
    /// Everything after `secret:` (a name, possibly with the suffix).
    pub resource: &'a str,
}

/// Parses `arn:<partition>:secretsmanager:<region>:<account>:secret:<resource>`.
pub fn parse(arn: &str) -> Option<ParsedArn<'_>> {
    let mut parts = arn.splitn(7, ':');
    let (Some("arn"), Some(_partition), Some("secretsmanager")) =
        (parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let region = parts.next()?;
    let account = parts.next()?;
    if parts.next()? != "secret" {
        return None;
    }
    let resource = parts.next()?;
    if resource.is_empty() {
        return None;
    }
    Some(ParsedArn {
        region,
        account,
        resource,
    })
}

/// The Lambda-style ARN of a function name (used by rotation).
pub fn lambda_arn(region: &str, account: &str, name: &str) -> String {
    format!("arn:aws:lambda:{region}:{account}:function:{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_arn_has_six_char_suffix() {
        let a = new_secret_arn("us-east-1", "000000000000", "db/pass");
        let (prefix, suffix) = a.rsplit_once('-').unwrap();
        assert_eq!(
            prefix,
            "arn:aws:secretsmanager:us-east-1:000000000000:secret:db/pass"
        );
        assert_eq!(suffix.len(), 6);
        assert!(suffix.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, new_secret_arn("us-east-1", "000000000000", "db/pass"));
    }

    #[test]
    fn parses_full_and_partial_arns() {
        let p = parse("arn:aws:secretsmanager:us-east-1:000000000000:secret:a:b-xyz").unwrap();
        assert_eq!(p.region, "us-east-1");
        assert_eq!(p.account, "000000000000");
        assert_eq!(p.resource, "a:b-xyz");
        assert!(parse("arn:aws:lambda:us-east-1:0:function:f").is_none());
        assert!(parse("arn:aws:secretsmanager:us-east-1:0:secret:").is_none());
        assert!(parse("not-an-arn").is_none());
    }
}
