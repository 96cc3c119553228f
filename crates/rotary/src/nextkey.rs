//! A running node's part in an online master-key rotation (docs/operations.md).
//!
//! `rotary master-key stage` writes the next key to `KEYFILE.new`; the operator copies it
//! beside the key file of every node and sends each node SIGHUP (or restarts it). A node
//! then holds two master keys ([`Keyring::add_master`]): it opens values sealed under
//! either, and keeps sealing under the key that opens the data's key check. Once
//! `rotary master-key rotate --online` has re-wrapped the data under the next key in one
//! transaction, the key check opens with the next key only, and each node, polling the check
//! once a second while it holds two keys, switches its sealing to it ([`Keyring::seal_with`]).
//!
//! Each node reports what it holds in the store, under `master-key-node:<node id>`
//! ([`NodeKeys`]): the rotate command refuses to re-key while a node that reported does not
//! hold the next key (it could no longer open what the others seal), and after the re-key it
//! waits for every node to report sealing under the new key before its final sweep.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rotary_crypto::{Keyring, MasterKey};
use rotary_store::Store;
use serde::{Deserialize, Serialize};

use crate::keycheck::{KEY_CHECK_LABEL, KEY_CHECK_META};
use crate::passphrase::{self, KeyFile, Passphrase};

/// Store metadata keys of the nodes' reports start with this, then the node id.
pub(crate) const NODE_KEYS_META_PREFIX: &str = "master-key-node:";

/// What a node reports about the master keys it holds (fingerprints only).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct NodeKeys {
    /// The node's id (`DATA_DIR/node-id`).
    pub(crate) node: String,
    /// The fingerprint of the key it seals with.
    pub(crate) seals_with: String,
    /// The fingerprint of the second key it holds, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) also_opens: Option<String>,
    /// When it reported, in Unix milliseconds.
    pub(crate) at_ms: i64,
}

impl NodeKeys {
    /// Whether this node opens values sealed under the key with `fingerprint`.
    pub(crate) fn holds(&self, fingerprint: &str) -> bool {
        self.seals_with == fingerprint || self.also_opens.as_deref() == Some(fingerprint)
    }
}

/// Reads `KEYFILE.new` if it exists: a plain key file, or one sealed with the passphrase a
/// file or the environment gives (never a prompt). `Ok(None)` when there is none.
pub(crate) fn read_next_key(
    key_path: &Path,
    passphrase: &Passphrase,
) -> anyhow::Result<Option<MasterKey>> {
    let path = crate::masterkey::sibling(key_path, ".new");
    if !path.exists() {
        return Ok(None);
    }
    match passphrase::read_key_file(&path)? {
        KeyFile::Plain(key) => Ok(Some(key)),
        KeyFile::Sealed(sealed) => {
            let pass = passphrase.get_quietly().ok_or_else(|| {
                anyhow::anyhow!(
                    "{} is sealed and no passphrase file or environment variable gives the \
                     passphrase: restart the node to be asked for it",
                    path.display()
                )
            })?;
            sealed
                .open(&pass)?
                .map(Some)
                .ok_or_else(|| passphrase::wrong_passphrase(&path).into())
        }
    }
}

/// Loads `KEYFILE.new` into the keyring as a second key (if there is one and it is new to the
/// keyring), then reports this node's keys to the store.
pub(crate) async fn load_next_key(
    key_path: &Path,
    passphrase: &Passphrase,
    keyring: &Keyring,
    store: &dyn Store,
    node_id: &str,
) -> anyhow::Result<()> {
    if let Some(next) = read_next_key(key_path, passphrase)? {
        let fingerprint = next.fingerprint();
        if keyring.add_master(next) {
            tracing::info!(
                fingerprint,
                "Holding the next master key from {}: values sealed under it open here",
                crate::masterkey::sibling(key_path, ".new").display()
            );
        }
    }
    report(keyring, store, node_id).await
}

/// Writes this node's [`NodeKeys`] to the store.
pub(crate) async fn report(
    keyring: &Keyring,
    store: &dyn Store,
    node_id: &str,
) -> anyhow::Result<()> {
    let (seals_with, also_opens) = keyring.master_fingerprints();
    let record = NodeKeys {
        node: node_id.to_owned(),
        seals_with,
        also_opens,
        at_ms: crate::serve::unix_ms(),
    };
    store
        .put_meta(
            &format!("{NODE_KEYS_META_PREFIX}{node_id}"),
            &serde_json::to_vec(&record)?,
        )
        .await?;
    Ok(())
}

/// Every node's last report.
pub(crate) async fn reports(store: &dyn Store) -> anyhow::Result<Vec<NodeKeys>> {
    let mut out = Vec::new();
    for (key, value) in store.list_meta(NODE_KEYS_META_PREFIX).await? {
        match serde_json::from_slice::<NodeKeys>(&value) {
            Ok(r) => out.push(r),
            Err(e) => tracing::warn!(key, error = %e, "Ignoring an unreadable node key report"),
        }
    }
    Ok(out)
}

/// While the keyring holds two keys, checks once a second which one opens the data's key
/// check and seals with that one. On the switch it reloads the users' access keys and the
/// rotation functions, whose records it writes back with the sealed member it holds in
/// memory (a last-use flush, a status change): from then on it writes the re-wrapped form.
/// Then it reports the switch to the store, which the rotate command waits for before its
/// final sweep.
pub(crate) fn spawn_seal_key_watch(
    keyring: Arc<Keyring>,
    store: Arc<dyn Store>,
    node_id: String,
    iam: Arc<rotary_server::iam::Iam>,
    registry: Arc<rotary_rotation::FunctionRegistry>,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if keyring.master_fingerprints().1.is_none() {
                continue;
            }
            let check = match store.get_meta(KEY_CHECK_META).await {
                Ok(Some(check)) => check,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "Reading the master key check failed");
                    continue;
                }
            };
            if keyring.seal_with(|k| k.unwrap(KEY_CHECK_LABEL, &check).is_ok()) {
                let (now, _) = keyring.master_fingerprints();
                tracing::info!(
                    fingerprint = now,
                    "The data is now sealed under the next master key: sealing with it"
                );
                if let Err(e) = iam.reload().await {
                    tracing::warn!(error = %e, "Reloading users and access keys failed");
                }
                if let Err(e) = registry.reload().await {
                    tracing::warn!(error = %e, "Reloading rotation functions failed");
                }
                if let Err(e) = report(&keyring, store.as_ref(), &node_id).await {
                    tracing::warn!(error = %e, "Reporting this node's master keys failed");
                }
            }
        }
    });
}
