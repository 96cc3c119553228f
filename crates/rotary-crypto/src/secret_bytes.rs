//! Plaintext bytes held in memory only while needed.

use std::fmt;

use zeroize::Zeroize;

/// Plaintext secret material: zeroized on drop, `[REDACTED]` in `Debug`, no `Serialize`.
#[derive(Clone, Default)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    /// Wraps bytes.
    pub fn new(b: Vec<u8>) -> Self {
        Self(b)
    }
    /// The plaintext; callers must not log it.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for SecretBytes {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}
