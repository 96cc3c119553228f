//! `rotary master-key rotate`: re-wraps everything the master key seals under a new key, with
//! the server stopped (every node, over a shared PostgreSQL store).
//!
//! The master key seals (AAD in brackets): the KMS keys (`kms:<name>` [`rotary-kms-key:<name>`]
//! and their later key-material versions `kms-version:<name>:<n>`
//! [`rotary-kms-key-version:<n>:<name>`]; they in turn wrap every secret version's data key,
//! which therefore needs no change), the
//! root credentials (`root-credentials`), the key check (`master-key-check`), the `SealedEnv`
//! of each registered function (`function:<name>`), the `SealedSecret` of each access key
//! (`iam:key:<akid>`) and the rotation sessions published for other nodes
//! (`session:<akid>` [`rotary-session:<akid>`]). Steps, each leaving a data directory that one of the two keys opens:
//!
//! 1. the new key is written to `KEYFILE.new` (0600, synced);
//! 2. one store transaction replaces every sealed value with its re-wrapped form and the key
//!    check with the new key's — the commit point: before it the data opens with the old
//!    key, after it with the new one;
//! 3. `KEYFILE` is renamed to `KEYFILE.old` and `KEYFILE.new` to `KEYFILE` (directory synced).
//!
//! When a crash falls between 2 and 3, `rotary serve` finds that `KEYFILE` does not open the
//! data (or is missing) and says that `KEYFILE.new` does (see [`crate::keycheck`]).
//! `KEYFILE.old` stays until the operator removes it; it no longer opens the data.
//!
//! A key file sealed with a passphrase ([`crate::passphrase`]) stays sealed: the new key is
//! sealed with the same passphrase and Argon2id costs (and a fresh salt) before it is
//! written, so no step puts a key in clear on disk.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use base64::Engine as _;
use rotary_crypto::MasterKey;
use rotary_store::Store;

use crate::keycheck::{self, ConfigError, KEY_CHECK_META};
use crate::passphrase::{self, KeyFile, Passphrase, SealedKey};
use crate::serve::{ROOT_CREDENTIALS_LABEL, ROOT_CREDENTIALS_META};

/// `KEYFILE` with `suffix` appended (`master.key.new`).
pub(crate) fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

/// The key in `key_path`, which must open `store`'s data (a missing or wrong key file is
/// refused as `rotary serve` refuses it).
async fn open_current_key(
    store: &dyn Store,
    key_path: &Path,
    passphrase: &Passphrase,
) -> anyhow::Result<MasterKey> {
    let (key, _) = keycheck::open_master_key(
        key_path,
        passphrase,
        store,
        ROOT_CREDENTIALS_META,
        ROOT_CREDENTIALS_LABEL,
    )
    .await?;
    Ok(key)
}

/// Rotates the master key of `store`, whose key is `key_path`. Returns the number of values
/// re-wrapped and whether the key file is sealed.
pub(crate) async fn rotate(
    store: &dyn Store,
    key_path: &Path,
    passphrase: &Passphrase,
) -> anyhow::Result<(usize, bool)> {
    // The current key must open the data (this also refuses a missing key file).
    let old = open_current_key(store, key_path, passphrase).await?;
    let new = MasterKey::generate();
    // A sealed key file: the new one is sealed too, with the passphrase that opened the old
    // one (already read, so no second prompt).
    let sealed_new = match passphrase::read_key_file(key_path)? {
        KeyFile::Plain(_) => None,
        KeyFile::Sealed(sealed) => {
            let pass = passphrase
                .get(false)?
                .ok_or_else(|| passphrase::wrong_passphrase(key_path))?;
            Some(SealedKey::seal(&new, &pass, sealed.params)?)
        }
    };
    let mut entries = Vec::new();
    for (key, value) in store.list_meta("").await? {
        if let Some(v) = rewrap(&key, &value, &old, &new)? {
            entries.push((key, v));
        }
    }
    let new_path = sibling(key_path, ".new");
    let old_path = sibling(key_path, ".old");
    if old_path.exists() {
        bail!(ConfigError(format!(
            "{} exists from an earlier rotation: remove it (it no longer opens the data) and run again",
            old_path.display()
        )));
    }
    let _ = std::fs::remove_file(&new_path);
    match &sealed_new {
        None => write_key(&new_path, &new)?,
        Some(contents) => passphrase::save_new_sealed(&new_path, contents)?,
    }
    store.put_metas(&entries).await?; // the commit point
    std::fs::rename(key_path, &old_path)
        .with_context(|| format!("renaming {} to {}", key_path.display(), old_path.display()))?;
    std::fs::rename(&new_path, key_path)
        .with_context(|| format!("renaming {} to {}", new_path.display(), key_path.display()))?;
    sync_dir(key_path)?;
    Ok((entries.len(), sealed_new.is_some()))
}

/// How `rotary master-key rotate --online` behaves.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Online {
    /// How long to wait, after the re-key, for every node to report sealing with the new key.
    pub(crate) wait: std::time::Duration,
    /// Re-key even though a node that reported does not hold the next key (a node that is
    /// gone for good).
    pub(crate) force: bool,
}

/// What an online rotation did.
#[derive(Debug)]
pub(crate) struct OnlineOutcome {
    /// Values re-wrapped in the re-key transaction.
    pub(crate) rekeyed: usize,
    /// Values sealed under the old key after the re-key (by a node that had not switched
    /// yet) and re-wrapped by the final sweep.
    pub(crate) swept: usize,
    /// The fingerprint of the new key.
    pub(crate) fingerprint: String,
    /// Nodes that did not report sealing with the new key in time.
    pub(crate) late: Vec<String>,
    /// Whether the key file is sealed with a passphrase.
    pub(crate) sealed: bool,
}

/// `rotary master-key stage`: writes the next key to `KEYFILE.new` (sealed with the same
/// passphrase when the key file is sealed), unless one is staged already. Returns the
/// staged key's fingerprint and whether this call created it.
pub(crate) fn stage(key_path: &Path, passphrase: &Passphrase) -> anyhow::Result<(String, bool)> {
    // The current key must open (a sealed file: with the passphrase the new one gets).
    let current = passphrase::open_key_file(key_path, passphrase)?;
    if let Some(next) = crate::nextkey::read_next_key(key_path, passphrase)? {
        if next.same_as(&current) {
            bail!(ConfigError(format!(
                "{} holds the current key: remove it and stage again",
                sibling(key_path, ".new").display()
            )));
        }
        return Ok((next.fingerprint(), false));
    }
    let next = MasterKey::generate();
    let new_path = sibling(key_path, ".new");
    match passphrase::read_key_file(key_path)? {
        KeyFile::Plain(_) => write_key(&new_path, &next)?,
        KeyFile::Sealed(sealed) => {
            let pass = passphrase
                .get(false)?
                .ok_or_else(|| passphrase::wrong_passphrase(key_path))?;
            passphrase::save_new_sealed(&new_path, &SealedKey::seal(&next, &pass, sealed.params)?)?;
        }
    }
    Ok((next.fingerprint(), true))
}

/// `rotary master-key rotate --online`: re-keys a store that running nodes serve, under the
/// key staged in `KEYFILE.new` that every node holds (see [`crate::nextkey`]).
///
/// 1. Every node that reported its keys must hold the staged key (unless `force`).
/// 2. One transaction re-wraps every value sealed under the old key and the key check, each
///    only if it is unchanged since it was read (a node may update an access key meanwhile:
///    then it is read and re-wrapped again). This is the commit point.
/// 3. The nodes see the key check change and seal with the new key; this waits until each
///    reports so (at most `wait`).
/// 4. A sweep re-wraps what a node sealed under the old key between 2 and its switch.
/// 5. `KEYFILE` becomes `KEYFILE.old` and `KEYFILE.new` becomes `KEYFILE`.
///
/// Run again after a crash, it finishes the job: values already under the new key are
/// left as they are.
pub(crate) async fn rotate_online(
    store: &dyn Store,
    key_path: &Path,
    passphrase: &Passphrase,
    online: Online,
) -> anyhow::Result<OnlineOutcome> {
    let old = passphrase::open_key_file(key_path, passphrase)?;
    let new_path = sibling(key_path, ".new");
    let new = crate::nextkey::read_next_key(key_path, passphrase)?.ok_or_else(|| {
        ConfigError(format!(
            "no next key is staged at {}: run `rotary master-key stage`, copy that file beside \
             the key file of every node and send each node SIGHUP, then run this again",
            new_path.display()
        ))
    })?;
    if new.same_as(&old) {
        bail!(ConfigError(format!(
            "{} holds the current key: remove it and stage again",
            new_path.display()
        )));
    }
    let check = store.get_meta(KEY_CHECK_META).await?.ok_or_else(|| {
        ConfigError("this store has no master key check: start a node on it first".into())
    })?;
    let opens = |k: &MasterKey| k.unwrap(keycheck::KEY_CHECK_LABEL, &check).is_ok();
    if !opens(&old) && !opens(&new) {
        bail!(ConfigError(format!(
            "neither {} nor {} opens this data",
            key_path.display(),
            new_path.display()
        )));
    }
    let fingerprint = new.fingerprint();
    let nodes = crate::nextkey::reports(store).await?;
    let missing: Vec<&crate::nextkey::NodeKeys> =
        nodes.iter().filter(|n| !n.holds(&fingerprint)).collect();
    if !missing.is_empty() && !online.force {
        let list = missing
            .iter()
            .map(|n| format!("{} (reported {})", n.node, age(n.at_ms)))
            .collect::<Vec<_>>()
            .join(", ");
        bail!(ConfigError(format!(
            "not every node holds the next key {fingerprint}: {list}. Copy {} beside its key \
             file and send it SIGHUP (or restart it); a node that is gone for good: --force. \
             Nothing was changed",
            new_path.display()
        )));
    }
    let rekeyed = rekey(store, &old, &new).await?;
    // Wait for the nodes that hold the key to seal with it.
    let waiting: Vec<String> = nodes
        .iter()
        .filter(|n| n.holds(&fingerprint))
        .map(|n| n.node.clone())
        .collect();
    let deadline = tokio::time::Instant::now() + online.wait;
    let late = loop {
        let reports = crate::nextkey::reports(store).await?;
        let late: Vec<String> = waiting
            .iter()
            .filter(|id| {
                !reports
                    .iter()
                    .any(|r| &r.node == *id && r.seals_with == fingerprint)
            })
            .cloned()
            .collect();
        if late.is_empty() || tokio::time::Instant::now() >= deadline {
            break late;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let swept = rekey(store, &old, &new).await?;
    let old_path = sibling(key_path, ".old");
    if old_path.exists() {
        bail!(ConfigError(format!(
            "the data is now on the new key, but {} exists from an earlier rotation: remove it, \
             then rename {} to {} and {} to {}",
            old_path.display(),
            key_path.display(),
            old_path.display(),
            new_path.display(),
            key_path.display()
        )));
    }
    std::fs::rename(key_path, &old_path)
        .with_context(|| format!("renaming {} to {}", key_path.display(), old_path.display()))?;
    std::fs::rename(&new_path, key_path)
        .with_context(|| format!("renaming {} to {}", new_path.display(), key_path.display()))?;
    sync_dir(key_path)?;
    let sealed = matches!(passphrase::read_key_file(key_path)?, KeyFile::Sealed(_));
    Ok(OnlineOutcome {
        rekeyed,
        swept,
        fingerprint,
        late,
        sealed,
    })
}

/// `rotary master-key sweep`: re-wraps under `KEYFILE` (which must open the data) whatever
/// is still sealed under `KEYFILE.old`. Returns how many values it re-wrapped.
pub(crate) async fn sweep(
    store: &dyn Store,
    key_path: &Path,
    passphrase: &Passphrase,
) -> anyhow::Result<usize> {
    let new = open_current_key(store, key_path, passphrase).await?;
    let old_path = sibling(key_path, ".old");
    if !old_path.exists() {
        bail!(ConfigError(format!(
            "{} does not exist: there is no old key to sweep",
            old_path.display()
        )));
    }
    let old = passphrase::open_key_file(&old_path, passphrase)?;
    rekey(store, &old, &new).await
}

/// Re-wraps, in one conditional transaction, every value of `store` sealed under `old`;
/// values already under `new` stay. Retried (re-read) while running nodes change some of
/// them meanwhile. Returns how many were re-wrapped.
async fn rekey(store: &dyn Store, old: &MasterKey, new: &MasterKey) -> anyhow::Result<usize> {
    for _ in 0..20 {
        let mut swaps = Vec::new();
        for (key, value) in store.list_meta("").await? {
            match rewrap(&key, &value, old, new) {
                Ok(Some(v)) => swaps.push(rotary_store::MetaSwap {
                    key,
                    expected: value,
                    new: v,
                }),
                Ok(None) => {}
                // Already under the new key (re-wrapping it from the new key works).
                Err(_) if rewrap(&key, &value, new, new).is_ok() => {}
                Err(e) => return Err(e),
            }
        }
        if swaps.is_empty() || store.put_metas_if_unchanged(&swaps).await? {
            return Ok(swaps.len());
        }
    }
    bail!(
        "the store's sealed values kept changing while they were re-wrapped: run the command again"
    )
}

/// "5 s ago", "3 min ago", for a report's time.
fn age(at_ms: i64) -> String {
    let secs = (crate::serve::unix_ms() - at_ms).max(0) / 1000;
    if secs < 120 {
        format!("{secs} s ago")
    } else if secs < 7200 {
        format!("{} min ago", secs / 60)
    } else {
        format!("{} h ago", secs / 3600)
    }
}

/// The re-wrapped form of one metadata value, or `None` when the master key does not seal it.
fn rewrap(
    key: &str,
    value: &[u8],
    old: &MasterKey,
    new: &MasterKey,
) -> anyhow::Result<Option<Vec<u8>>> {
    let raw = |label: &[u8]| -> anyhow::Result<Option<Vec<u8>>> {
        let plain = old
            .unwrap(label, value)
            .map_err(|_| anyhow::anyhow!("{key} does not open with the current master key"))?;
        Ok(Some(new.wrap(label, plain.expose())?))
    };
    // KMS keys: `kms:<name>` (bare or a JSON record) and their later key-material versions
    // (`kms-version:<name>:<n>`), each re-wrapped in the form it has.
    if key.starts_with(rotary_crypto::stored::KMS_META_PREFIX)
        || key.starts_with(rotary_crypto::stored::KMS_VERSION_META_PREFIX)
    {
        return rotary_crypto::stored::rewrap_stored(key, value, old, new)
            .map_err(|_| anyhow::anyhow!("{key} does not open with the current master key"));
    }
    if key == ROOT_CREDENTIALS_META {
        return raw(ROOT_CREDENTIALS_LABEL);
    }
    if key == KEY_CHECK_META {
        return raw(keycheck::KEY_CHECK_LABEL);
    }
    if let Some(name) = key.strip_prefix("function:") {
        let label = rotary_rotation::FunctionRegistry::env_label(name);
        return json_member(key, value, "SealedEnv", &label, old, new);
    }
    // Rotation sessions published for the other nodes (short-lived, but one issued just
    // before a rotation must still open on every node after it).
    if let Some(akid) = key.strip_prefix(crate::serve::SESSION_META_PREFIX) {
        return raw(&crate::serve::session_label(akid));
    }
    if key.starts_with("iam:key:") {
        let akid = serde_json::from_slice::<serde_json::Value>(value)
            .ok()
            .and_then(|v| v.get("AccessKeyId")?.as_str().map(str::to_owned))
            .ok_or_else(|| anyhow::anyhow!("{key} is not an access key record"))?;
        let label = rotary_server::iam::key_label(&akid);
        return json_member(key, value, "SealedSecret", &label, old, new);
    }
    Ok(None)
}

/// Re-wraps the base64 member `member` of a JSON record.
fn json_member(
    key: &str,
    value: &[u8],
    member: &str,
    label: &[u8],
    old: &MasterKey,
    new: &MasterKey,
) -> anyhow::Result<Option<Vec<u8>>> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut json: serde_json::Value =
        serde_json::from_slice(value).with_context(|| format!("{key} is not JSON"))?;
    let Some(sealed) = json.get(member).and_then(|v| v.as_str()) else {
        return Ok(None);
    };
    let bytes = b64
        .decode(sealed)
        .with_context(|| format!("{key}: {member} is not base64"))?;
    let plain = old
        .unwrap(label, &bytes)
        .map_err(|_| anyhow::anyhow!("{key} does not open with the current master key"))?;
    let resealed = new.wrap(label, plain.expose())?;
    json[member] = serde_json::Value::String(b64.encode(resealed));
    Ok(Some(serde_json::to_vec(&json)?))
}

fn write_key(path: &Path, key: &MasterKey) -> anyhow::Result<()> {
    key.save_new(path)?;
    sync_dir(path)
}

/// Syncs the directory holding `file`, so a rename or a new file survives a crash.
pub(crate) fn sync_dir(file: &Path) -> anyhow::Result<()> {
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("syncing {}", dir.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_rotation_sessions_are_rewrapped() {
        let (old, new) = (MasterKey::generate(), MasterKey::generate());
        let label = crate::serve::session_label("ASIAEXAMPLE");
        let record = br#"{"secret":"s","token":"t","expires_ms":1}"#;
        let sealed = old.wrap(&label, record).expect("wraps");
        let key = format!("{}ASIAEXAMPLE", crate::serve::SESSION_META_PREFIX);
        let rewrapped = rewrap(&key, &sealed, &old, &new)
            .expect("re-wraps")
            .expect("the master key seals it");
        assert_eq!(
            new.unwrap(&label, &rewrapped).expect("opens").expose(),
            record
        );
        assert!(old.unwrap(&label, &rewrapped).is_err());
        // Bound to its access key id: under another id's label it does not open.
        let other = crate::serve::session_label("ASIAOTHER");
        assert!(new.unwrap(&other, &rewrapped).is_err());
        // Already under the new key: refused from the old one, as `rekey` expects.
        assert!(rewrap(&key, &rewrapped, &old, &new).is_err());
    }
}
