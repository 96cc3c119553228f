//! Cross-region replication between Rotary servers: the shipper that sends each primary
//! secret's snapshot to its replica regions, and the peer-facing operations that apply it
//! (`rotary.ApplyReplica`, `rotary.DeleteReplica`).
//!
//! A region's peer is reached at its endpoint with SigV4 under an access key of a
//! principal there (read from a secret on this server, so the key is kept sealed like any
//! secret). Values cross sealed: each is encrypted with AES-256-GCM under a key derived
//! from that access key's secret key and a per-request salt, bound to the secret's name,
//! version and revision, so a peer reached over plain HTTP still sees no plaintext on the
//! wire. TLS is used where the peer serves it (`ca_file` for a private CA).
//!
//! The shipper is at-least-once and idempotent: the replica applies only revisions newer
//! than the one it holds, so a snapshot sent twice, late, or by two nodes changes nothing.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use rand::RngCore;
use rotary_auth::{CredentialSource, Principal};
use rotary_core::replication::{Export, ReplicaOutcome, Snapshot};
use rotary_core::{Ctx, SecretsService};
use rotary_crypto::SecretBytes;
use rotary_wire::dto::GetSecretValueRequest;
use rotary_wire::{api_error, ApiError};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

/// The peer-facing operations (`rotary.<name>`).
pub const OPERATIONS: &[&str] = &["ApplyReplica", "DeleteReplica"];

/// Another region: a Rotary server (or cluster) that holds replicas of this one's secrets.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Its region (its `--region`).
    pub region: String,
    /// Its API URL.
    pub endpoint: String,
    /// A secret on this server holding `{"AccessKeyId": ..., "SecretAccessKey": ...}` of a
    /// principal there allowed `rotary:ApplyReplica` and `rotary:DeleteReplica`.
    pub credentials_secret: String,
    /// PEM CA certificates to trust for its TLS certificate, besides the system's roots.
    pub ca_file: Option<PathBuf>,
}

/// The body of `rotary.ApplyReplica`.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ApplyRequest {
    /// Salt of the transport key (base64).
    salt: String,
    /// The snapshot; each version's `Value` sealed under the transport key.
    snapshot: Snapshot,
}

/// The answer of `rotary.ApplyReplica`.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ApplyResponse {
    /// Whether the snapshot changed the replica (false: it held that revision already).
    applied: bool,
    /// The replica's LastAccessedDate (ms), if it was ever read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_accessed_ms: Option<i64>,
}

/// The body of `rotary.DeleteReplica`.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DeleteRequest {
    name: String,
    primary_region: String,
}

const TRANSPORT_INFO: &[u8] = b"rotary replication transport v1\0";

/// The transport key of one request: HMAC-SHA-256 under the access key's secret key of the
/// label and the request's salt.
fn transport_key(secret_access_key: &str, salt: &[u8]) -> Zeroizing<[u8; 32]> {
    #[expect(clippy::unwrap_used, reason = "HMAC takes a key of any length")]
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret_access_key.as_bytes()).unwrap();
    mac.update(TRANSPORT_INFO);
    mac.update(salt);
    Zeroizing::new(mac.finalize().into_bytes().into())
}

fn value_aad(name: &str, version_id: &str, revision: i64) -> Vec<u8> {
    format!("{name}\0{version_id}\0{revision}").into_bytes()
}

fn seal_for_transport(key: &[u8; 32], aad: &[u8], framed: &[u8]) -> Option<String> {
    let cipher = Aes256Gcm::new_from_slice(key).ok()?;
    let mut nonce = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let ct = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: framed, aad })
        .ok()?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    Some(B64.encode(out))
}

fn open_from_transport(key: &[u8; 32], aad: &[u8], sealed: &str) -> Option<SecretBytes> {
    let raw = B64.decode(sealed).ok()?;
    if raw.len() < 12 + 16 {
        return None;
    }
    let (nonce, ct) = raw.split_at(12);
    let cipher = Aes256Gcm::new_from_slice(key).ok()?;
    cipher
        .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
        .ok()
        .map(SecretBytes::new)
}

/// Runs a peer-facing operation for an authenticated, authorized caller.
pub(crate) async fn handle(
    service: &SecretsService,
    credentials: &dyn CredentialSource,
    principal: &Principal,
    name: &str,
    body: &[u8],
) -> Result<Vec<u8>, ApiError> {
    let bad = || {
        api_error!(
            SerializationException,
            "The request body is not a {name} request."
        )
    };
    match name {
        "ApplyReplica" => {
            let req: ApplyRequest = serde_json::from_slice(body).map_err(|_| bad())?;
            let salt = B64.decode(&req.salt).map_err(|_| bad())?;
            let cred = credentials
                .lookup(&principal.access_key_id)
                .ok_or_else(|| {
                    api_error!(
                        AccessDeniedException,
                        "Replicas are written with an access key, not a console session."
                    )
                })?;
            let key = transport_key(cred.secret_access_key.expose(), &salt);
            let snap = &req.snapshot;
            let mut values = Vec::with_capacity(snap.versions.len());
            for v in &snap.versions {
                values.push(match &v.value {
                    None => None,
                    Some(sealed) => Some(
                        open_from_transport(
                            &key,
                            &value_aad(&snap.name, &v.version_id, snap.revision),
                            sealed,
                        )
                        .ok_or_else(|| {
                            api_error!(
                                InvalidParameterException,
                                "A replicated value does not open under the transport key."
                            )
                        })?,
                    ),
                });
            }
            let applied = service.apply_replica(snap, &values).await?;
            let last_accessed_ms = service.replica_last_accessed(&snap.name).await?;
            Ok(serde_json::to_vec(&ApplyResponse {
                applied,
                last_accessed_ms,
            })
            .unwrap_or_default())
        }
        "DeleteReplica" => {
            let req: DeleteRequest = serde_json::from_slice(body).map_err(|_| bad())?;
            let deleted = service
                .delete_replica(&req.name, &req.primary_region)
                .await?;
            Ok(serde_json::to_vec(&serde_json::json!({ "Deleted": deleted })).unwrap_or_default())
        }
        _ => Err(api_error!(
            UnknownOperationException,
            "The operation requested is not known to Secrets Manager."
        )),
    }
}

/// A failure to send to a peer, as the replica's status shows it.
#[derive(Debug)]
struct SendError(String);

/// The access key pair of a peer.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PeerKey {
    access_key_id: String,
    secret_access_key: String,
}

impl Drop for PeerKey {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.secret_access_key.zeroize();
    }
}

/// Sends secrets' snapshots to their replica regions.
pub struct Shipper {
    service: Arc<SecretsService>,
    peers: HashMap<String, (Peer, reqwest::Client)>,
    /// Per region: consecutive failed calls and when to try it again. While a region is
    /// backing off, secrets are not sent to it (each would wait out its timeouts) and are
    /// due again when it is next tried.
    health: parking_lot::Mutex<HashMap<String, RegionHealth>>,
    /// Per region: the secrets with a change not applied there yet, since when; and the
    /// secrets whose last attempt failed there.
    pending: parking_lot::Mutex<HashMap<String, RegionBacklog>>,
    metrics: Arc<crate::Metrics>,
}

#[derive(Default)]
struct RegionHealth {
    failures: u32,
    retry_at: Option<std::time::Instant>,
}

#[derive(Default)]
struct RegionBacklog {
    since: HashMap<String, std::time::Instant>,
    failing: std::collections::HashSet<String>,
}

/// Secrets taken per round.
const BATCH: i64 = 64;
/// How often the outbox is looked at when nothing wakes the shipper.
const POLL: Duration = Duration::from_secs(1);
/// First and longest wait before a failed secret is sent again.
const RETRY_BASE_MS: u64 = 500;
const RETRY_CAP_MS: u64 = 8_000;

impl Shipper {
    /// A shipper for `peers`; fails when a peer's CA file does not load.
    pub fn new(
        service: Arc<SecretsService>,
        peers: Vec<Peer>,
        metrics: Arc<crate::Metrics>,
    ) -> Result<Self, String> {
        let mut map = HashMap::new();
        for p in peers {
            let mut builder = reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .connect_timeout(Duration::from_secs(5));
            if let Some(ca) = &p.ca_file {
                let pem = std::fs::read(ca).map_err(|e| {
                    format!(
                        "reading ca_file {} of region {}: {e}",
                        ca.display(),
                        p.region
                    )
                })?;
                for cert in reqwest::Certificate::from_pem_bundle(&pem)
                    .map_err(|e| format!("ca_file {} of region {}: {e}", ca.display(), p.region))?
                {
                    builder = builder.add_root_certificate(cert);
                }
            }
            let client = builder
                .build()
                .map_err(|e| format!("HTTP client for region {}: {e}", p.region))?;
            map.insert(p.region.clone(), (p, client));
        }
        let pending = map
            .keys()
            .map(|r| (r.clone(), RegionBacklog::default()))
            .collect();
        let shipper = Self {
            service,
            peers: map,
            health: parking_lot::Mutex::new(HashMap::new()),
            pending: parking_lot::Mutex::new(pending),
            metrics,
        };
        shipper.publish_backlog();
        Ok(shipper)
    }

    /// Runs until the process ends: sends whatever the outbox holds, then waits for a
    /// write to wake it or for the next poll.
    pub async fn run(self: Arc<Self>) {
        let wakeup = self.service.replication_wakeup();
        loop {
            let notified = wakeup.notified();
            let due = match self.service.due_replications(BATCH).await {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(error = %e, "Reading the replication outbox failed");
                    Vec::new()
                }
            };
            for uid in &due {
                self.ship(uid).await;
            }
            self.clear_tombstones().await;
            self.publish_backlog();
            if due.len() as i64 >= BATCH {
                continue;
            }
            tokio::select! {
                () = notified => {}
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// Publishes each region's lag and failing count.
    fn publish_backlog(&self) {
        let pending = self.pending.lock();
        for (region, b) in pending.iter() {
            let lag = b
                .since
                .values()
                .map(|t| t.elapsed().as_secs_f64())
                .fold(0.0, f64::max);
            self.metrics.set_replica_state(region, lag, b.failing.len());
        }
    }

    /// Notes the outcome of sending secret `uid` to `region` (`None`: no longer sent there).
    fn note(&self, uid: &str, region: &str, outcome: Option<bool>) {
        let mut pending = self.pending.lock();
        let Some(b) = pending.get_mut(region) else {
            return;
        };
        match outcome {
            Some(true) | None => {
                b.since.remove(uid);
                b.failing.remove(uid);
            }
            Some(false) => {
                b.since
                    .entry(uid.to_owned())
                    .or_insert_with(std::time::Instant::now);
                b.failing.insert(uid.to_owned());
            }
        }
    }

    /// The regions this shipper sends to.
    fn regions(&self) -> Vec<String> {
        self.pending.lock().keys().cloned().collect()
    }

    /// Sends one secret to its replica regions and deletes its removed replicas.
    async fn ship(&self, uid: &str) {
        {
            // A change waits from now, unless it was already waiting.
            let mut pending = self.pending.lock();
            for b in pending.values_mut() {
                b.since
                    .entry(uid.to_owned())
                    .or_insert_with(std::time::Instant::now);
            }
        }
        let export = match self.service.export_replication(uid).await {
            Ok(Some(e)) => e,
            Ok(None) => {
                for r in self.regions() {
                    self.note(uid, &r, None);
                }
                return;
            }
            Err(e) => {
                tracing::warn!(secret_uid = %uid, error = %e, "Reading a secret to replicate failed");
                self.retry_later(uid, None, &[]).await;
                return;
            }
        };
        for r in self.regions() {
            if !export.replicas.iter().any(|x| x.region == r) {
                self.note(uid, &r, None);
            }
        }
        let mut failed: Vec<&str> = Vec::new();
        for region in &export.removing {
            if self.backing_off(region) {
                failed.push(region);
                continue;
            }
            let req = DeleteRequest {
                name: export.snapshot.name.clone(),
                primary_region: export.snapshot.primary_region.clone(),
            };
            let body = serde_json::to_vec(&req).unwrap_or_default();
            match self.call(region, "rotary.DeleteReplica", body).await {
                Ok(_) => {
                    if let Err(e) = self.service.replica_removed(uid, region).await {
                        tracing::warn!(secret_uid = %uid, region, error = %e, "Recording a deleted replica failed");
                        failed.push(region);
                    }
                }
                Err(SendError(message)) => {
                    tracing::warn!(secret_uid = %uid, region, error = %message, "Deleting a replica failed; it will be retried");
                    failed.push(region);
                }
            }
        }
        for replica in &export.replicas {
            if self.backing_off(&replica.region) {
                failed.push(&replica.region);
                self.note(uid, &replica.region, Some(false));
                continue;
            }
            let outcome = match self.send_snapshot(&export, &replica.region, replica).await {
                Ok(last_accessed_ms) => {
                    self.note(uid, &replica.region, Some(true));
                    self.metrics.record_replica_send(&replica.region, true);
                    if replica.force_overwrite {
                        if let Err(e) = self
                            .service
                            .replica_force_applied(uid, &replica.region)
                            .await
                        {
                            tracing::warn!(secret_uid = %uid, error = %e, "Clearing a replica's overwrite flag failed");
                        }
                    }
                    ReplicaOutcome {
                        revision: export.revision,
                        ok: true,
                        message: None,
                        at_ms: self.service.clock().now_ms(),
                        last_accessed_ms,
                    }
                }
                Err(SendError(message)) => {
                    tracing::warn!(secret_uid = %uid, region = %replica.region, error = %message, "Replicating a secret failed; it will be retried");
                    self.note(uid, &replica.region, Some(false));
                    self.metrics.record_replica_send(&replica.region, false);
                    failed.push(&replica.region);
                    ReplicaOutcome {
                        revision: export.revision,
                        ok: false,
                        message: Some(message),
                        at_ms: self.service.clock().now_ms(),
                        last_accessed_ms: None,
                    }
                }
            };
            if let Err(e) = self
                .service
                .record_replica_outcome(uid, &replica.region, Some(outcome))
                .await
            {
                tracing::warn!(secret_uid = %uid, error = %e, "Recording a replication status failed");
            }
        }
        if !failed.is_empty() {
            self.retry_later(uid, Some(export.revision), &failed).await;
        } else {
            if let Err(e) = self
                .service
                .replication_sent(uid, export.revision, None)
                .await
            {
                tracing::warn!(secret_uid = %uid, error = %e, "Clearing a secret's replication mark failed");
            }
        }
    }

    /// Marks a secret due again when the regions it failed in are next tried (or after
    /// the base wait).
    async fn retry_later(&self, uid: &str, revision: Option<i64>, regions: &[&str]) {
        let now = std::time::Instant::now();
        let wait = {
            let health = self.health.lock();
            regions
                .iter()
                .filter_map(|r| health.get(*r)?.retry_at)
                .map(|t| t.saturating_duration_since(now))
                .max()
                .unwrap_or_default()
                .max(Duration::from_millis(RETRY_BASE_MS))
        };
        let at =
            self.service.clock().now_ms() + i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
        let revision = match revision {
            Some(r) => r,
            None => match self.service.store().revision(uid).await {
                Ok(Some(r)) => r,
                _ => return,
            },
        };
        if let Err(e) = self.service.replication_sent(uid, revision, Some(at)).await {
            tracing::warn!(secret_uid = %uid, error = %e, "Postponing a replication failed");
        }
    }

    /// Whether `region` failed lately and is not to be tried before its backoff ends.
    fn backing_off(&self, region: &str) -> bool {
        self.health
            .lock()
            .get(region)
            .and_then(|h| h.retry_at)
            .is_some_and(|t| t > std::time::Instant::now())
    }

    /// Records a call to `region`: a success resets its backoff, a failure doubles it.
    fn called(&self, region: &str, ok: bool) {
        let mut health = self.health.lock();
        let h = health.entry(region.to_owned()).or_default();
        if ok {
            *h = RegionHealth::default();
            return;
        }
        h.failures = h.failures.saturating_add(1);
        let wait = RETRY_BASE_MS
            .saturating_mul(1 << h.failures.min(16).saturating_sub(1))
            .min(RETRY_CAP_MS);
        h.retry_at = Some(std::time::Instant::now() + Duration::from_millis(wait));
    }

    /// Deletes the replicas that deleted primaries left to delete.
    async fn clear_tombstones(&self) {
        let tombstones = match self.service.replica_tombstones().await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "Reading replication tombstones failed");
                return;
            }
        };
        for (key, name, regions) in tombstones {
            for region in regions {
                if !self.peers.contains_key(&region) || self.backing_off(&region) {
                    continue;
                }
                let req = DeleteRequest {
                    name: name.clone(),
                    primary_region: self.service.region().to_owned(),
                };
                let body = serde_json::to_vec(&req).unwrap_or_default();
                match self.call(&region, "rotary.DeleteReplica", body).await {
                    Ok(_) => {
                        if let Err(e) = self.service.tombstone_region_done(&key, &region).await {
                            tracing::warn!(error = %e, "Recording a deleted replica failed");
                        }
                    }
                    Err(SendError(message)) => {
                        tracing::warn!(region, error = %message, "Deleting the replica of a deleted secret failed; it will be retried");
                    }
                }
            }
        }
    }

    /// Sends the snapshot to `region`; returns the replica's LastAccessedDate there.
    async fn send_snapshot(
        &self,
        export: &Export,
        region: &str,
        replica: &rotary_core::replication::Replica,
    ) -> Result<Option<i64>, SendError> {
        let key = self.peer_key(region).await?;
        let mut salt = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        let tkey = transport_key(&key.secret_access_key, &salt);
        let mut snapshot = export.snapshot.clone();
        snapshot.kms_key_id = replica.kms_key_id.clone();
        snapshot.force_overwrite = replica.force_overwrite;
        for (v, value) in snapshot.versions.iter_mut().zip(&export.values) {
            v.value = match value {
                None => None,
                Some(framed) => Some(
                    seal_for_transport(
                        &tkey,
                        &value_aad(&snapshot.name, &v.version_id, snapshot.revision),
                        framed.expose(),
                    )
                    .ok_or_else(|| SendError("Sealing a value for the trip failed.".into()))?,
                ),
            };
        }
        let body = serde_json::to_vec(&ApplyRequest {
            salt: B64.encode(salt),
            snapshot,
        })
        .map_err(|e| SendError(format!("Encoding the snapshot failed: {e}")))?;
        let answer = self
            .call_with(region, "rotary.ApplyReplica", body, &key)
            .await?;
        Ok(serde_json::from_slice::<ApplyResponse>(&answer)
            .ok()
            .and_then(|a| a.last_accessed_ms))
    }

    /// The access key this server uses in `region`, from its credentials secret.
    async fn peer_key(&self, region: &str) -> Result<PeerKey, SendError> {
        let Some((peer, _)) = self.peers.get(region) else {
            return Err(SendError(format!(
                "This server has no peer for region {region}: add it to [[regions]] in the server's configuration."
            )));
        };
        let resp = self
            .service
            .get_secret_value(
                &Ctx::default(),
                GetSecretValueRequest {
                    secret_id: Some(peer.credentials_secret.clone()),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| {
                SendError(format!(
                    "The credentials secret {} of region {region} cannot be read: {}",
                    peer.credentials_secret,
                    e.message()
                ))
            })?;
        let text = resp
            .secret_string
            .as_ref()
            .map(|s| s.expose().to_owned())
            .map(Zeroizing::new)
            .unwrap_or_default();
        serde_json::from_str::<PeerKey>(&text).map_err(|_| {
            SendError(format!(
                "The credentials secret {} of region {region} must hold JSON with AccessKeyId and SecretAccessKey.",
                peer.credentials_secret
            ))
        })
    }

    async fn call(&self, region: &str, target: &str, body: Vec<u8>) -> Result<Vec<u8>, SendError> {
        let key = self.peer_key(region).await?;
        self.call_with(region, target, body, &key).await
    }

    /// A SigV4-signed call to a peer; an error answer becomes its message.
    async fn call_with(
        &self,
        region: &str,
        target: &str,
        body: Vec<u8>,
        key: &PeerKey,
    ) -> Result<Vec<u8>, SendError> {
        let Some((peer, http)) = self.peers.get(region) else {
            return Err(SendError(format!("No peer for region {region}.")));
        };
        let credentials = aws_credential_types::Credentials::new(
            key.access_key_id.clone(),
            key.secret_access_key.clone(),
            None,
            None,
            "rotary-replication",
        );
        let req = crate::signed_client::signed_json_post(
            http,
            &peer.endpoint,
            region,
            target,
            body,
            &credentials,
        )
        .map_err(|e| SendError(format!("Calling region {region}: {e}.")))?;
        let resp = req.send().await.map_err(|e| {
            self.called(region, false);
            SendError(format!(
                "Region {region} could not be reached at {}: {}",
                peer.endpoint,
                error_chain(&e)
            ))
        })?;
        // The region answered: it is up, whatever it said.
        self.called(region, true);
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| SendError(format!("Region {region} did not answer in full: {e}")))?;
        if status.is_success() {
            return Ok(bytes.to_vec());
        }
        let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let message = json
            .get("Message")
            .or_else(|| json.get("message"))
            .and_then(|m| m.as_str())
            .map(str::to_owned)
            .unwrap_or_else(|| format!("Region {region} answered HTTP {status}."));
        Err(SendError(message))
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_opens_only_with_the_same_key_and_binding() {
        let key = transport_key("secret", b"salt");
        let aad = value_aad("db", "v1", 3);
        let sealed = seal_for_transport(&key, &aad, b"Shunter2").unwrap();
        assert!(!sealed.contains("hunter2"));
        let opened = open_from_transport(&key, &aad, &sealed).unwrap();
        assert_eq!(opened.expose(), b"Shunter2");
        // Another secret key, salt, version or revision: nothing opens.
        assert!(open_from_transport(&transport_key("other", b"salt"), &aad, &sealed).is_none());
        assert!(open_from_transport(&transport_key("secret", b"pepper"), &aad, &sealed).is_none());
        assert!(open_from_transport(&key, &value_aad("db", "v2", 3), &sealed).is_none());
        assert!(open_from_transport(&key, &value_aad("db", "v1", 4), &sealed).is_none());
        assert!(open_from_transport(&key, &aad, "not base64!").is_none());
    }
}
