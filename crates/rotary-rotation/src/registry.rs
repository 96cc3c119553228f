//! Rotation functions by Lambda-style ARN: the built-ins and those registered through
//! Rotary's API (stored in the store's metadata as `function:<name>`).
//!
//! A function's `Env` may hold credentials (an HTTP function's token, a database CA
//! password), so it is stored sealed under the master key (`SealedEnv`, AES-256-GCM, bound
//! to the function's name) and never in clear; the API shows only the variable names.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use parking_lot::RwLock;
use rotary_core::rotation::FunctionDirectory;
use rotary_crypto::Keyring;
use rotary_store::Store;

use crate::functions::{ExecPolicy, FunctionSpec};

const META_PREFIX: &str = "function:";
/// Stored member holding the sealed `Env`.
const SEALED_ENV: &str = "SealedEnv";

/// Built-in rotation functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// A fresh random password in the secret's existing shape.
    GenericPassword,
    /// PostgreSQL, the user changes its own password.
    PostgresSingleUser,
    /// PostgreSQL, alternating between `user` and `user_clone` via a master secret.
    PostgresAlternatingUsers,
    /// MySQL / MariaDB, the user changes its own password.
    MysqlSingleUser,
    /// MySQL / MariaDB, alternating users via a master secret.
    MysqlAlternatingUsers,
    /// Redis ACL user, changes its own password.
    RedisSingleUser,
}

impl Builtin {
    /// Every built-in.
    pub const ALL: [Builtin; 6] = [
        Builtin::GenericPassword,
        Builtin::PostgresSingleUser,
        Builtin::PostgresAlternatingUsers,
        Builtin::MysqlSingleUser,
        Builtin::MysqlAlternatingUsers,
        Builtin::RedisSingleUser,
    ];

    /// The function name.
    pub fn name(self) -> &'static str {
        match self {
            Builtin::GenericPassword => "rotary-generic-password",
            Builtin::PostgresSingleUser => "rotary-postgresql-single-user",
            Builtin::PostgresAlternatingUsers => "rotary-postgresql-alternating-users",
            Builtin::MysqlSingleUser => "rotary-mysql-single-user",
            Builtin::MysqlAlternatingUsers => "rotary-mysql-alternating-users",
            Builtin::RedisSingleUser => "rotary-redis-single-user",
        }
    }

    /// What it does.
    pub fn description(self) -> &'static str {
        match self {
            Builtin::GenericPassword => {
                "Sets a new random password: the `password` member of a JSON object secret, or the whole string"
            }
            Builtin::PostgresSingleUser => "PostgreSQL: the user in the secret changes its own password",
            Builtin::PostgresAlternatingUsers => {
                "PostgreSQL: alternates between user and user_clone, changed with the master secret (masterarn)"
            }
            Builtin::MysqlSingleUser => "MySQL/MariaDB: the user in the secret changes its own password",
            Builtin::MysqlAlternatingUsers => {
                "MySQL/MariaDB: alternates between user and user_clone, changed with the master secret (masterarn)"
            }
            Builtin::RedisSingleUser => "Redis: the ACL user in the secret changes its own password",
        }
    }
}

/// What an ARN resolves to.
#[derive(Debug, Clone)]
pub enum Resolved {
    /// A built-in.
    Builtin(Builtin),
    /// A registered function.
    Registered(FunctionSpec),
}

/// The function registry.
pub struct FunctionRegistry {
    store: Arc<dyn Store>,
    keyring: Arc<Keyring>,
    policy: Arc<ExecPolicy>,
    region: String,
    account_id: String,
    registered: RwLock<BTreeMap<String, FunctionSpec>>,
}

/// Errors of registration.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Bad name or spec.
    #[error("{0}")]
    Invalid(String),
    /// Name taken.
    #[error("A function named {0} already exists.")]
    Exists(String),
    /// Unknown.
    #[error("No function named {0} is registered.")]
    NotFound(String),
    /// Store failure.
    #[error("storage: {0}")]
    Store(#[from] rotary_store::Error),
    /// Sealing or opening a function's `Env` failed.
    #[error("sealing function Env: {0}")]
    Seal(String),
}

/// Whether `name` is a valid function name: 1–64 of `A-Za-z0-9-_`.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl FunctionRegistry {
    /// Loads registered functions from the store. A function stored with its `Env` in
    /// clear (before Env was sealed) is re-stored sealed.
    pub async fn open(
        store: Arc<dyn Store>,
        keyring: Arc<Keyring>,
        policy: Arc<ExecPolicy>,
        region: &str,
        account_id: &str,
    ) -> Result<Self, RegistryError> {
        let registry = Self {
            store,
            keyring,
            policy,
            region: region.to_owned(),
            account_id: account_id.to_owned(),
            registered: RwLock::new(BTreeMap::new()),
        };
        registry.reload().await?;
        Ok(registry)
    }

    /// Whether a server-wide store key holds a registered function.
    pub fn is_function_key(key: &str) -> bool {
        key.starts_with(META_PREFIX)
    }

    /// (Re)loads the registered functions from the store: at start-up, and when another
    /// node sharing the store changed one.
    pub async fn reload(&self) -> Result<(), RegistryError> {
        let mut registered = BTreeMap::new();
        for (key, value) in self.store.list_meta(META_PREFIX).await? {
            let name = key[META_PREFIX.len()..].to_owned();
            match self.unseal(&name, &value) {
                Ok((spec, was_clear)) => {
                    if was_clear {
                        let sealed = self.seal(&name, &spec)?;
                        self.store.put_meta(&key, &sealed).await?;
                        tracing::info!(function = %name, "Sealed the stored Env of a rotation function");
                    }
                    registered.insert(name, spec);
                }
                Err(e) => tracing::error!(key, error = %e, "Skipping an unreadable function"),
            }
        }
        *self.registered.write() = registered;
        Ok(())
    }

    /// The AAD binding a stored function's `SealedEnv` (base64, in the `function:<name>`
    /// record) to its name, under the master key.
    pub fn env_label(name: &str) -> Vec<u8> {
        format!("rotary-function-env:{name}").into_bytes()
    }

    /// The stored form of a spec: its JSON with `Env` replaced by `SealedEnv`.
    fn seal(&self, name: &str, spec: &FunctionSpec) -> Result<Vec<u8>, RegistryError> {
        let seal_err = |e: &dyn std::fmt::Display| RegistryError::Seal(e.to_string());
        let mut json = serde_json::to_value(spec).map_err(|e| seal_err(&e))?;
        let env =
            zeroize::Zeroizing::new(serde_json::to_vec(spec.env()).map_err(|e| seal_err(&e))?);
        let sealed = self
            .keyring
            .wrap_master(&Self::env_label(name), &env)
            .map_err(|e| seal_err(&e))?;
        if let Some(obj) = json.as_object_mut() {
            obj.remove("Env");
            obj.insert(
                SEALED_ENV.to_owned(),
                base64::engine::general_purpose::STANDARD
                    .encode(sealed)
                    .into(),
            );
        }
        serde_json::to_vec(&json).map_err(|e| seal_err(&e))
    }

    /// A spec from its stored form; `true` when its `Env` was stored in clear.
    fn unseal(&self, name: &str, stored: &[u8]) -> Result<(FunctionSpec, bool), RegistryError> {
        let seal_err = |e: &dyn std::fmt::Display| RegistryError::Seal(e.to_string());
        let mut json: serde_json::Value =
            serde_json::from_slice(stored).map_err(|e| seal_err(&e))?;
        let sealed = json
            .as_object_mut()
            .and_then(|o| o.remove(SEALED_ENV))
            .and_then(|v| v.as_str().map(str::to_owned));
        let Some(sealed) = sealed else {
            let spec = serde_json::from_value(json).map_err(|e| seal_err(&e))?;
            return Ok((spec, true));
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(sealed)
            .map_err(|e| seal_err(&e))?;
        let env = self
            .keyring
            .unwrap_master(&Self::env_label(name), &bytes)
            .map_err(|e| seal_err(&e))?;
        let env: serde_json::Value =
            serde_json::from_slice(env.expose()).map_err(|e| seal_err(&e))?;
        if let Some(obj) = json.as_object_mut() {
            obj.insert("Env".to_owned(), env);
        }
        let spec = serde_json::from_value(json).map_err(|e| seal_err(&e))?;
        Ok((spec, false))
    }

    /// Where process and Python functions come from and how they run.
    pub fn policy(&self) -> &Arc<ExecPolicy> {
        &self.policy
    }

    /// The ARN of a function name.
    pub fn arn(&self, name: &str) -> String {
        format!(
            "arn:aws:lambda:{}:{}:function:{name}",
            self.region, self.account_id
        )
    }

    /// The function name of an ARN of this server's region and account (a plain name is
    /// accepted too).
    pub fn name_of<'a>(&self, arn: &'a str) -> Option<&'a str> {
        if !arn.starts_with("arn:") {
            return valid_name(arn).then_some(arn);
        }
        let rest = arn.strip_prefix("arn:aws:lambda:")?;
        let (region, rest) = rest.split_once(':')?;
        let (account, rest) = rest.split_once(':')?;
        let name = rest.strip_prefix("function:")?;
        // An alias or version qualifier is accepted and ignored.
        let name = name.split(':').next()?;
        (region == self.region && account == self.account_id && valid_name(name)).then_some(name)
    }

    /// Resolves an ARN.
    pub fn resolve(&self, arn: &str) -> Option<Resolved> {
        let name = self.name_of(arn)?;
        if let Some(b) = Builtin::ALL.into_iter().find(|b| b.name() == name) {
            return Some(Resolved::Builtin(b));
        }
        self.registered
            .read()
            .get(name)
            .cloned()
            .map(Resolved::Registered)
    }

    /// Registers a function.
    pub async fn create(&self, name: &str, spec: FunctionSpec) -> Result<(), RegistryError> {
        if !valid_name(name) {
            return Err(RegistryError::Invalid(format!(
                "Invalid function name {name:?}: use 1 to 64 letters, digits, '-' or '_'."
            )));
        }
        if name.starts_with("rotary-") {
            return Err(RegistryError::Invalid(
                "Function names starting with rotary- are reserved for built-in functions."
                    .to_owned(),
            ));
        }
        spec.validate(&self.policy)
            .map_err(RegistryError::Invalid)?;
        if let FunctionSpec::Builtin { builtin, .. } = &spec {
            if !Builtin::ALL.iter().any(|b| b.name() == builtin) {
                return Err(RegistryError::Invalid(format!(
                    "No built-in function is named {builtin}."
                )));
            }
        }
        let json = self.seal(name, &spec)?;
        if !self
            .store
            .put_meta_if_absent(&format!("{META_PREFIX}{name}"), &json)
            .await?
        {
            return Err(RegistryError::Exists(name.to_owned()));
        }
        self.registered.write().insert(name.to_owned(), spec);
        Ok(())
    }

    /// Removes a registered function.
    pub async fn delete(&self, name: &str) -> Result<(), RegistryError> {
        if !self
            .store
            .delete_meta(&format!("{META_PREFIX}{name}"))
            .await?
        {
            return Err(RegistryError::NotFound(name.to_owned()));
        }
        self.registered.write().remove(name);
        Ok(())
    }

    /// Registered functions by name.
    pub fn list(&self) -> Vec<(String, FunctionSpec)> {
        self.registered
            .read()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

impl FunctionDirectory for FunctionRegistry {
    fn is_invokable(&self, lambda_arn: &str) -> bool {
        self.resolve(lambda_arn).is_some()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use rotary_crypto::MasterKey;
    use rotary_store::SqliteStore;

    use super::*;
    use crate::functions::Isolation;

    async fn open(store: Arc<dyn Store>, keyring: Arc<Keyring>) -> FunctionRegistry {
        let policy = Arc::new(ExecPolicy::new(
            Path::new("/nonexistent"),
            Isolation::Unsandboxed,
        ));
        FunctionRegistry::open(store, keyring, policy, "us-east-1", "000000000000")
            .await
            .unwrap()
    }

    fn http(env: &[(&str, &str)]) -> FunctionSpec {
        FunctionSpec::Http {
            url: "http://127.0.0.1:9/hook".into(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            timeout_seconds: 5,
        }
    }

    #[tokio::test]
    async fn registry_env_is_sealed_at_rest_and_clear_env_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("r.db")).await.unwrap());
        let keyring = Arc::new(Keyring::new(MasterKey::generate()));
        let reg = open(store.clone(), keyring.clone()).await;
        let spec = http(&[("API_TOKEN", "env-canary-0123456789")]);
        reg.create("hook", spec.clone()).await.unwrap();
        let stored = store.get_meta("function:hook").await.unwrap().unwrap();
        let text = String::from_utf8_lossy(&stored);
        assert!(
            !text.contains("env-canary") && !text.contains("API_TOKEN"),
            "{text}"
        );
        assert!(text.contains(SEALED_ENV), "{text}");

        // A function stored in clear by an older version is sealed when loaded.
        let legacy = http(&[("LEGACY", "legacy-canary-9876543210")]);
        store
            .put_meta("function:old", &serde_json::to_vec(&legacy).unwrap())
            .await
            .unwrap();
        let reg = open(store.clone(), keyring.clone()).await;
        let by_name: BTreeMap<_, _> = reg.list().into_iter().collect();
        assert_eq!(by_name["hook"], spec);
        assert_eq!(by_name["old"], legacy);
        let stored = store.get_meta("function:old").await.unwrap().unwrap();
        assert!(!String::from_utf8_lossy(&stored).contains("legacy-canary"));

        // Sealed to the function's name: moved under another name, it does not open.
        store.put_meta("function:moved", &stored).await.unwrap();
        let reg = open(store, Arc::new(Keyring::new(MasterKey::generate()))).await;
        assert!(reg.list().is_empty(), "another master key opens nothing");
    }
}
