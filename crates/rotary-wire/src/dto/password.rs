use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use crate::sensitive::Sensitive;
use crate::validate::{Validate, Violations};

/// `GetRandomPasswordRequest`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetRandomPasswordRequest {
    /// 1..=4096, default 32.
    pub password_length: Option<i64>,
    /// Characters never used.
    pub exclude_characters: Option<String>,
    /// No digits.
    pub exclude_numbers: Option<bool>,
    /// No punctuation.
    pub exclude_punctuation: Option<bool>,
    /// No capitals.
    pub exclude_uppercase: Option<bool>,
    /// No lowercase letters.
    pub exclude_lowercase: Option<bool>,
    /// Allow a space.
    pub include_space: Option<bool>,
    /// At least one of every included class (default true).
    pub require_each_included_type: Option<bool>,
}

impl Validate for GetRandomPasswordRequest {
    fn validate(&self, v: &mut Violations) {
        v.range("passwordLength", self.password_length, 1, 4096);
        v.len(
            "excludeCharacters",
            self.exclude_characters.as_deref(),
            0,
            4096,
        );
    }
}

/// `GetRandomPasswordResponse`.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetRandomPasswordResponse {
    /// The password.
    pub random_password: Option<Sensitive>,
}
