//! Credentials a [`super::Verifier`] checks signatures against.

use std::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::Principal;

/// A secret access key.
///
/// Zeroized on drop; `Debug` and `Display` print `[REDACTED]`. It deliberately has no
/// `Serialize` and no `PartialEq` (comparing secrets is the verifier's job, in constant time).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretKey(String);

impl SecretKey {
    /// Wraps a secret access key (e.g. `wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY`).
    pub fn new(s: String) -> Self {
        Self(s)
    }

    /// The key itself. Only for deriving signing keys; never log or return it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

impl fmt::Display for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// What a [`CredentialSource`] knows about one access key id.
#[derive(Clone, Debug)]
pub struct Credential {
    /// The secret the client signs with.
    pub secret_access_key: SecretKey,
    /// For temporary credentials: the token the client must send as `X-Amz-Security-Token`.
    /// `None` for long-lived keys, which must then not send a token at all.
    pub session_token: Option<String>,
    /// Who requests signed with this key act as.
    pub principal: Principal,
}

/// Looks up credentials by access key id (s3s's `S3Auth`).
///
/// Called at most once per request, after the request's shape, time and scope have been
/// checked, so a source backed by storage is not hit by obviously bad requests.
pub trait CredentialSource: Send + Sync {
    /// The credential for `access_key_id`, or `None` if the key is unknown, disabled or
    /// expired (the client then gets `UnrecognizedClientException`).
    fn lookup(&self, access_key_id: &str) -> Option<Credential>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PrincipalKind;

    #[test]
    fn secret_key_never_prints() {
        let k = SecretKey::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".to_owned());
        assert_eq!(format!("{k:?}"), "[REDACTED]");
        assert_eq!(format!("{k}"), "[REDACTED]");
        assert_eq!(format!("{:#?}", k.clone()), "[REDACTED]");
        assert_eq!(k.expose(), "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
    }

    #[test]
    fn credential_debug_hides_secret() {
        let c = Credential {
            secret_access_key: SecretKey::new("super-secret-canary".to_owned()),
            session_token: None,
            principal: Principal {
                account_id: "123456789012".to_owned(),
                arn: "arn:aws:iam::123456789012:root".to_owned(),
                access_key_id: "AKID".to_owned(),
                kind: PrincipalKind::Root,
            },
        };
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("canary"), "{dbg}");
        assert!(dbg.contains("[REDACTED]"));
    }
}
