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
//! The key file may be sealed with a passphrase ([`crate::passphrase`]); a sealed file with
//! no passphrase, or one the passphrase does not open, is refused the same way. On a first
//! start with a passphrase given by file or environment, the new key is created sealed.
//!
//! These refusals are configuration errors: `rotary serve` exits with status 2.

use std::path::Path;

use rotary_crypto::MasterKey;
use rotary_store::Store;

use crate::passphrase::{self, KdfParams, KeyFile, Passphrase, SealedKey};

/// Store metadata key of the key check.
pub(crate) const KEY_CHECK_META: &str = "master-key-check";
/// AAD of the key check.
pub(crate) const KEY_CHECK_LABEL: &[u8] = b"rotary-master-key-check";
const KEY_CHECK_TEXT: &[u8] = b"rotary master key check v1";

/// A start-up refusal caused by configuration or files the operator controls (exit 2).
#[derive(Debug)]
pub(crate) struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Opens the master key for `store`, creating it only for a store that holds nothing yet.
/// Returns the key and whether it was created. `passphrase` is asked only for a sealed key
/// file (or to create a sealed one when a file or the environment gives it).
pub(crate) async fn open_master_key(
    path: &Path,
    passphrase: &Passphrase,
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
                interrupted_rotation(path, check.as_deref(), passphrase)
            ))
            .into());
        }
        let key = create_key(path, passphrase)?;
        store.put_meta(KEY_CHECK_META, &seal_check(&key)?).await?;
        return Ok((key, true));
    }
    let key = passphrase::open_key_file(path, passphrase)?;
    let wrong_key = || {
        ConfigError(format!(
            "the master key in {} does not open this data: it is not the key the data was \
             sealed with. Nothing was changed; start with the original key file{}",
            path.display(),
            interrupted_rotation(path, check.as_deref(), passphrase)
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

/// A new key file at `path`: sealed when a file or the environment gives a passphrase (never
/// prompted for: a first start must not stop at a prompt the operator did not ask for).
fn create_key(path: &Path, passphrase: &Passphrase) -> anyhow::Result<MasterKey> {
    if !passphrase.is_given() {
        return Ok(MasterKey::create(path)?);
    }
    let key = MasterKey::generate();
    let pass = passphrase
        .get(false)?
        .ok_or_else(|| ConfigError("the master key passphrase source gave no passphrase".into()))?;
    passphrase::check_new_passphrase(&pass)?;
    passphrase::save_new_sealed(path, &SealedKey::seal(&key, &pass, KdfParams::DEFAULT)?)?;
    tracing::info!(path = %path.display(), "The new master key is sealed with the passphrase");
    Ok(key)
}

/// When `KEYFILE.new` (from `rotary master-key rotate`) opens the check: a sentence saying so.
/// A sealed `KEYFILE.new` is tried with a passphrase already given, never a new prompt.
fn interrupted_rotation(path: &Path, check: Option<&[u8]>, passphrase: &Passphrase) -> String {
    let Some(check) = check else {
        return String::new();
    };
    let new = crate::masterkey::sibling(path, ".new");
    let opened = match passphrase::read_key_file(&new) {
        Ok(KeyFile::Plain(k)) => Some(k),
        Ok(KeyFile::Sealed(sealed)) => passphrase
            .get_quietly()
            .and_then(|p| sealed.open(&p).ok().flatten()),
        Err(_) => None,
    };
    match opened {
        Some(k) if k.unwrap(KEY_CHECK_LABEL, check).is_ok() => format!(
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
        let none = Passphrase::new(None);

        // First start: created, and the check stored.
        let (key, created) = open_master_key(&key_path, &none, &store, META, LABEL)
            .await
            .unwrap();
        assert!(created);
        store
            .put_meta(META, &key.wrap(LABEL, b"{}").unwrap())
            .await
            .unwrap();
        // Right key.
        let (_, created) = open_master_key(&key_path, &none, &store, META, LABEL)
            .await
            .unwrap();
        assert!(!created);
        // Missing key: refused, nothing created.
        let original = std::fs::read(&key_path).unwrap();
        std::fs::remove_file(&key_path).unwrap();
        let err = open_master_key(&key_path, &none, &store, META, LABEL)
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
        let err = open_master_key(&key_path, &none, &store, META, LABEL)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("does not open this data"), "{err}");
        // Data from before the check, with the right key: the check is added.
        std::fs::remove_file(&key_path).unwrap();
        std::fs::write(&key_path, &original).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
        store.delete_meta(KEY_CHECK_META).await.unwrap();
        open_master_key(&key_path, &none, &store, META, LABEL)
            .await
            .unwrap();
        assert!(store.get_meta(KEY_CHECK_META).await.unwrap().is_some());
        // ... and with a wrong key, refused before anything is written.
        store.delete_meta(KEY_CHECK_META).await.unwrap();
        std::fs::remove_file(&key_path).unwrap();
        MasterKey::create(&key_path).unwrap();
        assert!(open_master_key(&key_path, &none, &store, META, LABEL)
            .await
            .is_err());
        assert!(store.get_meta(KEY_CHECK_META).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn sealed_key_cases() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("r.db")).await.unwrap();
        let key_path = dir.path().join("master.key");
        let write_0600 = |path: &Path, bytes: &[u8]| {
            let _ = std::fs::remove_file(path);
            std::fs::write(path, bytes).unwrap();
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
        };
        let fast = KdfParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        };
        let (key, _) = open_master_key(&key_path, &Passphrase::new(None), &store, META, LABEL)
            .await
            .unwrap();
        write_0600(
            &key_path,
            &SealedKey::seal(&key, b"right passphrase", fast).unwrap(),
        );
        let pass_file = dir.path().join("pass");
        // The right passphrase opens the data.
        write_0600(&pass_file, b"right passphrase\n");
        let right = Passphrase::new(Some(pass_file.clone()));
        let (opened, created) = open_master_key(&key_path, &right, &store, META, LABEL)
            .await
            .unwrap();
        assert!(!created && opened.same_as(&key));
        // No passphrase (tests have no terminal on stdin): refused, exit 2.
        if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
            let err = open_master_key(&key_path, &Passphrase::new(None), &store, META, LABEL)
                .await
                .unwrap_err();
            assert!(err.downcast_ref::<ConfigError>().is_some());
            assert!(err.to_string().contains("none was given"), "{err}");
        }
        // A wrong passphrase: refused, exit 2.
        write_0600(&pass_file, b"wrong passphrase\n");
        let wrong = Passphrase::new(Some(pass_file.clone()));
        let err = open_master_key(&key_path, &wrong, &store, META, LABEL)
            .await
            .unwrap_err();
        assert!(err.downcast_ref::<ConfigError>().is_some());
        assert!(
            err.to_string().contains("passphrase does not open"),
            "{err}"
        );
        // A sealed KEYFILE.new that opens the data is named when the key file is wrong.
        write_0600(&pass_file, b"right passphrase\n");
        let new_path = crate::masterkey::sibling(&key_path, ".new");
        write_0600(
            &new_path,
            &SealedKey::seal(&key, b"right passphrase", fast).unwrap(),
        );
        write_0600(
            &key_path,
            &SealedKey::seal(&MasterKey::generate(), b"right passphrase", fast).unwrap(),
        );
        let err = open_master_key(&key_path, &right, &store, META, LABEL)
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("rotation was interrupted"),
            "{err}"
        );
    }
}
