//! Wrappers for secret material on the wire: zeroized on drop, redacted in `Debug`.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroize;

/// A sensitive string member (`SecretString`, `RandomPassword`).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Sensitive(String);

impl Sensitive {
    /// Wraps a string.
    pub fn new(s: String) -> Self {
        Self(s)
    }
    /// The plaintext; callers must not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl Drop for Sensitive {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for Sensitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl Serialize for Sensitive {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Sensitive {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Sensitive)
    }
}

/// A sensitive blob member (`SecretBinary`): standard base64 with padding on the wire.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Blob(Vec<u8>);

impl Blob {
    /// Wraps bytes.
    pub fn new(b: Vec<u8>) -> Self {
        Self(b)
    }
    /// The plaintext bytes; callers must not log them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Appends the value as a JSON string of standard base64 (which needs no escaping),
    /// encoded in place in `out`.
    pub(crate) fn write_json(&self, out: &mut Vec<u8>) {
        let len = base64::encoded_len(self.0.len(), true).unwrap_or(0);
        out.push(b'"');
        let start = out.len();
        out.resize(start + len, 0);
        let _ = STANDARD.encode_slice(&self.0, &mut out[start..]);
        out.push(b'"');
    }
}

impl Drop for Blob {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut text = STANDARD.encode(&self.0);
        let r = s.serialize_str(&text);
        text.zeroize();
        r
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut text = String::deserialize(d)?;
        let r = STANDARD
            .decode(text.as_bytes())
            .map(Blob)
            // The message must not echo the value.
            .map_err(|_| serde::de::Error::custom("Invalid base64 in a blob member"));
        text.zeroize();
        r
    }
}
