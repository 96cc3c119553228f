//! Rotary's envelope encryption.
//!
//! Each secret version is sealed with AES-256-GCM under a fresh data key; the data key is
//! wrapped by a named key-encryption key (a "KMS key", `alias/aws/secretsmanager` by default)
//! and those keys are wrapped by the master key, a 32-byte file readable by its owner only.
//! The AAD binds each ciphertext to its secret ARN and version id, so a row copied onto
//! another secret or version fails to open.
//!
//! It must never log, print or return plaintext or key material in errors.
//!
//! # Invariants
//! - Nonces and keys come from `OsRng` only.
//! - Key rotation re-wraps keys; it never re-encrypts values.
//! - A KMS key's old key-material versions are never dropped: a value sealed under any of
//!   them opens.

pub mod envelope;
pub mod master_key;
pub mod secret_bytes;
pub mod stored;

pub use envelope::{kms_label, kms_version_label, Keyring, WrappedKey};
pub use master_key::MasterKey;
pub use secret_bytes::SecretBytes;

/// Errors of this crate; they never carry key material or plaintext.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The master key file could not be read or written.
    #[error("master key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The master key file has the wrong size or is readable by others.
    #[error("master key file {path}: {reason}")]
    BadMasterKey {
        /// The file.
        path: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A ciphertext failed to authenticate or is malformed.
    #[error("decryption failed: {0}")]
    Decrypt(&'static str),
    /// Encryption failed.
    #[error("encryption failed")]
    Encrypt,
    /// The KMS key named by a ciphertext is not in the keyring.
    #[error("unknown key {0}")]
    UnknownKey(String),
}

/// Result of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
