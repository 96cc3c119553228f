//! The in-memory table of access keys that SigV4 verification looks up.

use std::collections::HashMap;

use parking_lot::RwLock;

use crate::{Credential, CredentialSource, Principal, PrincipalKind, SecretKey};

/// Access keys known to this node. Loaded from the store at start-up.
#[derive(Default)]
pub struct CredentialTable {
    keys: RwLock<HashMap<String, Credential>>,
}

impl CredentialTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a credential.
    pub fn insert(&self, access_key_id: String, credential: Credential) {
        self.keys.write().insert(access_key_id, credential);
    }

    /// Removes a credential (e.g. a session key when its rotation step ends).
    pub fn remove(&self, access_key_id: &str) {
        self.keys.write().remove(access_key_id);
    }
}

impl CredentialSource for CredentialTable {
    fn lookup(&self, access_key_id: &str) -> Option<Credential> {
        self.keys.read().get(access_key_id).cloned()
    }
}

/// The root principal of an account.
pub fn root_principal(account_id: &str, access_key_id: &str) -> Principal {
    Principal {
        account_id: account_id.to_owned(),
        arn: format!("arn:aws:iam::{account_id}:root"),
        access_key_id: access_key_id.to_owned(),
        kind: PrincipalKind::Root,
    }
}

/// A root credential.
pub fn root_credential(account_id: &str, access_key_id: &str, secret: SecretKey) -> Credential {
    Credential {
        secret_access_key: secret,
        session_token: None,
        principal: root_principal(account_id, access_key_id),
    }
}
