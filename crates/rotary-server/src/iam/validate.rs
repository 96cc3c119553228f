//! Input rules of IAM names, paths and tags, from AWS IAM's API reference
//! (<https://docs.aws.amazon.com/IAM/latest/APIReference/API_CreateUser.html>) and quotas
//! (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html>).

use super::{IamError, Tag};

/// Longest user name.
pub(crate) const USER_NAME_MAX: usize = 64;
/// Longest group name.
pub(crate) const GROUP_NAME_MAX: usize = 128;
/// Longest inline policy name.
pub(crate) const POLICY_NAME_MAX: usize = 128;
/// Longest path.
pub(crate) const PATH_MAX: usize = 512;
/// Most tags on a user.
pub(crate) const TAGS_MAX: usize = 50;
const TAG_KEY_MAX: usize = 128;
const TAG_VALUE_MAX: usize = 256;

/// `[\w+=,.@-]`: the characters of IAM user, group and policy names.
fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_+=,.@-".contains(c)
}

/// A name of `what` (`userName`, `groupName`, `policyName`) between 1 and `max` characters
/// of `[\w+=,.@-]`.
pub(crate) fn name(what: &str, value: &str, max: usize) -> Result<(), IamError> {
    let len = value.chars().count();
    if len == 0 || len > max {
        return Err(IamError::InvalidInput(format!(
            "1 validation error detected: Value at '{what}' failed to satisfy constraint: \
             Member must have length between 1 and {max}."
        )));
    }
    if !value.chars().all(name_char) {
        return Err(IamError::InvalidInput(format!(
            "1 validation error detected: Value '{value}' at '{what}' failed to satisfy \
             constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]+"
        )));
    }
    Ok(())
}

/// A path: `/`, or `/…/` of printable ASCII without spaces, at most 512 characters.
pub(crate) fn path(value: &str) -> Result<(), IamError> {
    let ok = value.len() <= PATH_MAX
        && (value == "/"
            || (value.len() >= 3
                && value.starts_with('/')
                && value.ends_with('/')
                && value.chars().all(|c| ('\u{21}'..='\u{7e}').contains(&c))));
    if ok {
        Ok(())
    } else {
        Err(IamError::InvalidInput(format!(
            "1 validation error detected: Value '{value}' at 'path' failed to satisfy \
             constraint: Member must be / or begin and end with / and hold only printable \
             ASCII characters without spaces, at most {PATH_MAX} long."
        )))
    }
}

fn tag_char(c: char) -> bool {
    c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c)
}

/// A tag key: 1–128 characters of `[\p{L}\p{Z}\p{N}_.:/=+\-@]`, not starting with `aws:`.
pub(crate) fn tag_key(key: &str) -> Result<(), IamError> {
    let len = key.chars().count();
    if len == 0 || len > TAG_KEY_MAX || !key.chars().all(tag_char) {
        return Err(IamError::InvalidInput(format!(
            "1 validation error detected: Value '{key}' at 'tags.key' failed to satisfy \
             constraint: Member must have length between 1 and {TAG_KEY_MAX} and satisfy \
             regular expression pattern: [\\p{{L}}\\p{{Z}}\\p{{N}}_.:/=+\\-@]+"
        )));
    }
    if key.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("aws:")) {
        return Err(IamError::InvalidInput(
            "Tag keys starting with 'aws:' are reserved for AWS use.".to_owned(),
        ));
    }
    Ok(())
}

/// Tags of one request: valid keys and values, no key twice (keys compare without case, as
/// IAM does for users).
pub(crate) fn tags(tags: &[Tag]) -> Result<(), IamError> {
    if tags.len() > TAGS_MAX {
        return Err(IamError::LimitExceeded(format!(
            "The number of tags has reached the maximum limit of {TAGS_MAX}."
        )));
    }
    for (i, t) in tags.iter().enumerate() {
        tag_key(&t.key)?;
        if t.value.chars().count() > TAG_VALUE_MAX || !t.value.chars().all(tag_char) {
            return Err(IamError::InvalidInput(format!(
                "1 validation error detected: Value at 'tags.{}.member.value' failed to \
                 satisfy constraint: Member must have length less than or equal to \
                 {TAG_VALUE_MAX} and satisfy regular expression pattern: \
                 [\\p{{L}}\\p{{Z}}\\p{{N}}_.:/=+\\-@]*",
                i + 1
            )));
        }
        if tags[..i].iter().any(|o| o.key.eq_ignore_ascii_case(&t.key)) {
            return Err(IamError::InvalidInput(format!(
                "Duplicate tag keys found: {}. Tag keys are case insensitive.",
                t.key
            )));
        }
    }
    Ok(())
}
