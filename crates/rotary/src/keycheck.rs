//! Whether the master key the server has is the one that opens its data.
//!
//! The first start stores a key check with the data: a known text sealed under the master
//! key (`master-key-check` in the store's metadata). Every later start opens it before
//! anything else, so a missing or wrong key file is reported as exactly that, and nothing
//! is created or changed:
//! - data and no key file: refuse, naming the path where the key was expected (a new key
//!   would not open the data, so none is created);
//! - a key file that does not open the check: refuse, it is the wrong key;
//! - data written before the check existed: the key must open the stored root credentials,
//!   then the check is added.
//!
//! These refusals are configuration errors: `rotary serve` exits with status 2.

use std::path::Path;

use rotary_crypto::MasterKey;
use rotary_store::Store;

/// Store metadata key of the key check.
pub const KEY_CHECK_META: &str = "master-key-check";
/// AAD of the key check.
pub const KEY_CHECK_LABEL: &[u8] = b"rotary-master-key-check";
const KEY_CHECK_TEXT: &[u8] = b"rotary master key check v1";

/// A start-up refusal caused by configuration or files the operator controls (exit 2).
#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Opens the master key for `store`, creating it only for a store that holds nothing yet.
/// Returns the key and whether it was created.
pub async fn open_master_key(
    path: &Path,
    store: &dyn Store,
    root_credentials_meta: &str,
    root_credentials_label: &[u8],
) -> anyhow::Result<(MasterKey, bool)> {
    let check = store.get_meta(KEY_CHECK_META).await?;
    let root = store.get_meta(root_credentials_meta).await?;
    let holds_data = check.is_some() || root.is_some();
    if !path.exists() {
        if holds_data {
            return Err(ConfigError(format!(
                "the master key is missing: {} does not exist, and this data is sealed under a \
                 master key. Put the original key file back there (or give its path with \
                 --master-key-file); a new key would not open the data, so none was created{}",
                path.display(),
                interrupted_rotation(path, check.as_deref())
            ))
            .into());
        }
        let key = MasterKey::create(path)?;
        store.put_meta(KEY_CHECK_META, &seal_check(&key)?).await?;
        return Ok((key, true));
    }
    let key = MasterKey::open(path).map_err(|e| ConfigError(e.to_string()))?;
    let wrong_key = || {
        ConfigError(format!(
            "the master key in {} does not open this data: it is not the key the data was \
             sealed with. Nothing was changed; start with the original key file{}",
            path.display(),
            interrupted_rotation(path, check.as_deref())
        ))
    };
    match (check.as_deref(), root) {
        (Some(sealed), _) => {
            key.unwrap(KEY_CHECK_LABEL, sealed)
                .map_err(|_| wrong_key())?;
        }
        (None, Some(sealed_root)) => {
            // Data from before the key check: the root credentials prove the key.
            key.unwrap(root_credentials_label, &sealed_root)
                .map_err(|_| wrong_key())?;
            store.put_meta(KEY_CHECK_META, &seal_check(&key)?).await?;
            tracing::info!("Added a master key check to this data");
        }
        (None, None) => {
            store.put_meta(KEY_CHECK_META, &seal_check(&key)?).await?;
        }
    }
    Ok((key, false))
}

/// When `KEYFILE.new` (from `rotary master-key rotate`) opens the check: a sentence saying so.
fn interrupted_rotation(path: &Path, check: Option<&[u8]>) -> String {
    let Some(check) = check else {
        return String::new();
    };
    let new = crate::masterkey::sibling(path, ".new");
    match MasterKey::open(&new) {
        Ok(k) if k.unwrap(KEY_CHECK_LABEL, check).is_ok() => format!(
            ". {} opens it: a master-key rotation was interrupted after the data was re-keyed; \
             move {} aside and rename {} to {}",
            new.display(),
            path.display(),
            new.display(),
            path.display()
        ),
        _ => String::new(),
    }
}

fn seal_check(key: &MasterKey) -> anyhow::Result<Vec<u8>> {
    Ok(key.wrap(KEY_CHECK_LABEL, KEY_CHECK_TEXT)?)
}

#[cfg(test)]
mod tests {
    use rotary_store::SqliteStore;

    use super::*;

    const META: &str = "root-credentials";
    const LABEL: &[u8] = b"rotary-root-credentials";

    #[tokio::test]
    async fn key_check_cases() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("r.db")).await.unwrap();
        let key_path = dir.path().join("master.key");

        // First start: created, and the check stored.
        let (key, created) = open_master_key(&key_path, &store, META, LABEL)
            .await
            .unwrap();
        assert!(created);
        store
            .put_meta(META, &key.wrap(LABEL, b"{}").unwrap())
            .await
            .unwrap();
        // Right key.
        let (_, created) = open_master_key(&key_path, &store, META, LABEL)
            .await
            .unwrap();
        assert!(!created);
        // Missing key: refused, nothing created.
        let original = std::fs::read(&key_path).unwrap();
        std::fs::remove_file(&key_path).unwrap();
        let err = open_master_key(&key_path, &store, META, LABEL)
            .await
            .unwrap_err();
        assert!(err.downcast_ref::<ConfigError>().is_some());
        assert!(
            err.to_string().contains("the master key is missing"),
            "{err}"
        );
        assert!(err.to_string().contains(&key_path.display().to_string()));
        assert!(!key_path.exists());
        // Wrong key: refused.
        MasterKey::create(&key_path).unwrap();
        let err = open_master_key(&key_path, &store, META, LABEL)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("does not open this data"), "{err}");
        // Data from before the check, with the right key: the check is added.
        std::fs::remove_file(&key_path).unwrap();
        std::fs::write(&key_path, &original).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
        store.delete_meta(KEY_CHECK_META).await.unwrap();
        open_master_key(&key_path, &store, META, LABEL)
            .await
            .unwrap();
        assert!(store.get_meta(KEY_CHECK_META).await.unwrap().is_some());
        // ... and with a wrong key, refused before anything is written.
        store.delete_meta(KEY_CHECK_META).await.unwrap();
        std::fs::remove_file(&key_path).unwrap();
        MasterKey::create(&key_path).unwrap();
        assert!(open_master_key(&key_path, &store, META, LABEL)
            .await
            .is_err());
        assert!(store.get_meta(KEY_CHECK_META).await.unwrap().is_none());
    }
}
