//! ReplicateSecretToRegions, RemoveRegionsFromReplication and StopReplicationToReplica; the
//! replication members of DescribeSecret and ListSecrets; and what the replication shipper
//! (primary side) and `rotary.ApplyReplica` / `rotary.DeleteReplica` (replica side) call.
//! See [`crate::replication`] for the model.

use std::collections::BTreeMap;

use rotary_crypto::SecretBytes;
use rotary_store::{Lookup, SecretRow, SecretUpdate, VersionRow, VersionWrite};
use rotary_wire::dto::{
    DescribeSecretResponse, RemoveRegionsFromReplicationRequest, ReplicaRegionType,
    ReplicateSecretToRegionsRequest, ReplicationResponse, ReplicationStatusType, SecretIdRequest,
    StopReplicationToReplicaResponse,
};
use rotary_wire::validate::Validate;
use rotary_wire::{api_error, ApiError};

use super::{internal, msg, write_failed, Ctx, Outcome, SecretsService, MAX_WRITE_ATTEMPTS};
use crate::names;
use crate::replication::{
    replica_arn, status_key, Export, Replica, ReplicaOutcome, Replication, Snapshot,
    SnapshotVersion,
};
use crate::secret::{Plain, Secret, SecretDoc, DEFAULT_KMS_KEY};

/// Prefix of the tombstones of deleted primaries whose replicas are still to be deleted.
const TOMBSTONE_PREFIX: &str = "replication-tombstone:";

fn tombstone_key(uid: &str) -> String {
    format!("{TOMBSTONE_PREFIX}{uid}")
}

/// A deleted primary's replicas still to delete.
#[derive(serde::Serialize, serde::Deserialize)]
struct Tombstone {
    name: String,
    regions: Vec<String>,
}

/// The status of a replica just added.
pub(crate) fn in_progress(r: &Replica) -> ReplicationStatusType {
    ReplicationStatusType {
        region: Some(r.region.clone()),
        kms_key_id: r.kms_key_id.clone(),
        status: Some("InProgress".to_owned()),
        ..Default::default()
    }
}

/// A Lambda ARN of region `from` moved to region `to` (same account and function); any
/// other ARN as it is.
fn lambda_arn_in(arn: &str, from: &str, to: &str) -> String {
    let parts: Vec<&str> = arn.splitn(5, ':').collect();
    match parts.as_slice() {
        ["arn", partition, "lambda", region, rest] if *region == from => {
            format!("arn:{partition}:lambda:{to}:{rest}")
        }
        _ => arn.to_owned(),
    }
}

/// A time in ms as RFC 3339 (UTC).
fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

fn not_a_replica() -> ApiError {
    api_error!(
        InvalidRequestException,
        "The secret is not a replica. Call StopReplicationToReplica in the region of a replica secret."
    )
}

impl SecretsService {
    /// `existing` replicas plus the `add`ed regions (a region already there takes the new
    /// settings). Each must be another region that this server has a peer for.
    pub(crate) fn new_replicas(
        &self,
        existing: &[Replica],
        add: &[ReplicaRegionType],
        force: bool,
    ) -> Result<Vec<Replica>, ApiError> {
        let mut out = existing.to_vec();
        for r in add {
            let region = r.region.as_deref().unwrap_or_default();
            if region == self.config.region {
                return Err(api_error!(
                    InvalidParameterException,
                    "{}",
                    msg::INVALID_REPLICA_REGION
                ));
            }
            if !self.config.replica_regions.iter().any(|p| p == region) {
                return Err(api_error!(
                    InvalidParameterException,
                    "Rotary has no peer for region {region}: add it to [[regions]] in the server's configuration."
                ));
            }
            let replica = Replica {
                region: region.to_owned(),
                kms_key_id: r.kms_key_id.clone().filter(|k| !k.is_empty()),
                force_overwrite: force,
            };
            match out.iter_mut().find(|x| x.region == region) {
                Some(x) => *x = replica,
                None => out.push(replica),
            }
        }
        Ok(out)
    }

    /// ReplicateSecretToRegions.
    pub async fn replicate_secret_to_regions(
        &self,
        _cx: &Ctx,
        req: ReplicateSecretToRegionsRequest,
    ) -> Result<ReplicationResponse, ApiError> {
        req.check()?;
        let id = req.secret_id.as_deref().unwrap_or_default();
        let add = req.add_replica_regions.as_deref().unwrap_or_default();
        let force = req.force_overwrite_replica_secret.unwrap_or(false);
        self.mutate_live(id, None, |secret, _| {
            let repl = secret
                .doc
                .replication
                .get_or_insert_with(Replication::default);
            let all = self.new_replicas(&repl.replicas, add, force)?;
            repl.removing
                .retain(|r| !all.iter().any(|x| &x.region == r));
            repl.replicas = all;
            Ok(Outcome::Changed((), None))
        })
        .await?;
        self.replication_response(id).await
    }

    /// RemoveRegionsFromReplication: the regions leave the secret's replication now and
    /// their replicas are deleted there by the shipper, at once or when the region is back.
    pub async fn remove_regions_from_replication(
        &self,
        _cx: &Ctx,
        req: RemoveRegionsFromReplicationRequest,
    ) -> Result<ReplicationResponse, ApiError> {
        req.check()?;
        let id = req.secret_id.as_deref().unwrap_or_default();
        let regions = req.remove_replica_regions.as_deref().unwrap_or_default();
        self.mutate_live(id, None, |secret, _| {
            let name = secret.row.name.clone();
            let repl = secret
                .doc
                .replication
                .get_or_insert_with(Replication::default);
            for r in regions {
                if !repl.replicas.iter().any(|x| &x.region == r) {
                    return Err(api_error!(
                        InvalidParameterException,
                        "The secret {name} is not replicated to region {r}."
                    ));
                }
            }
            repl.replicas.retain(|x| !regions.contains(&x.region));
            for r in regions {
                if !repl.removing.contains(r) {
                    repl.removing.push(r.clone());
                }
            }
            Ok(Outcome::Changed((), None))
        })
        .await?;
        self.replication_response(id).await
    }

    /// The answer of ReplicateSecretToRegions and RemoveRegionsFromReplication: the
    /// primary's ARN and every region's status after the change.
    async fn replication_response(&self, id: &str) -> Result<ReplicationResponse, ApiError> {
        let secret = self.resolve(id).await?;
        Ok(ReplicationResponse {
            arn: Some(secret.row.arn.clone()),
            replication_status: Some(self.replica_statuses(&secret).await?),
        })
    }

    /// StopReplicationToReplica, in the replica's region: the replica becomes a standalone
    /// secret here.
    pub async fn stop_replication_to_replica(
        &self,
        _cx: &Ctx,
        req: SecretIdRequest,
    ) -> Result<StopReplicationToReplicaResponse, ApiError> {
        req.check()?;
        let id = req.secret_id.as_deref().unwrap_or_default();
        let arn = self
            .mutate_any(id, None, |secret, _| {
                let Some(primary) = secret
                    .doc
                    .replication
                    .as_ref()
                    .and_then(|r| r.primary_region.clone())
                else {
                    return Err(not_a_replica());
                };
                secret.doc.replication = None;
                // The rotation function named in the primary's region is looked up under
                // the same name here.
                if let Some(r) = secret.doc.rotation.as_mut() {
                    if let Some(arn) = r.lambda_arn.as_deref() {
                        r.lambda_arn = Some(lambda_arn_in(arn, &primary, &self.config.region));
                    }
                }
                // Rotation moves here with the secret: a rotation the primary left midway
                // is taken over as a crashed node's would be; otherwise the next one is
                // planned.
                let now = self.now();
                match secret.doc.rotation.as_ref() {
                    Some(r) if r.enabled && r.in_progress.is_some() => {
                        secret.row.rotation_due_ms = Some(now);
                    }
                    Some(r) if r.enabled => {
                        crate::rotation::transitions::schedule_next(secret, now)
                    }
                    _ => {}
                }
                Ok(Outcome::Changed(secret.row.arn.clone(), Some(now)))
            })
            .await?;
        tracing::info!(secret_arn = %arn, "Promoted a replica to a standalone secret");
        Ok(StopReplicationToReplicaResponse { arn: Some(arn) })
    }

    /// DescribeSecret's view of a secret, with `PrimaryRegion` and `ReplicationStatus`.
    pub(crate) async fn describe_full(
        &self,
        secret: &Secret,
    ) -> Result<DescribeSecretResponse, ApiError> {
        let mut out = secret.describe();
        out.primary_region = secret
            .doc
            .primary_region(&self.config.region)
            .map(str::to_owned);
        if secret
            .doc
            .replication
            .as_ref()
            .is_some_and(|r| !r.replicas.is_empty())
        {
            out.replication_status = Some(self.replica_statuses(secret).await?);
        }
        Ok(out)
    }

    /// Each replica's status: `InSync` once the region applied the secret's current
    /// revision, `Failed` (with why) when the last attempt failed, `InProgress` otherwise.
    pub(crate) async fn replica_statuses(
        &self,
        secret: &Secret,
    ) -> Result<Vec<ReplicationStatusType>, ApiError> {
        let Some(repl) = &secret.doc.replication else {
            return Ok(Vec::new());
        };
        if repl.replicas.is_empty() {
            return Ok(Vec::new());
        }
        let outcomes = self.replica_outcomes(&secret.row.uid).await?;
        Ok(repl
            .replicas
            .iter()
            .map(|r| {
                let mut st = in_progress(r);
                match outcomes.get(&r.region) {
                    Some(o) if !o.ok => {
                        st.status = Some("Failed".to_owned());
                        st.status_message = o.message.clone();
                    }
                    Some(o) if o.revision >= secret.row.revision => {
                        st.last_accessed_date = o.last_accessed_ms.map(rotary_wire::Timestamp);
                        st.status = Some("InSync".to_owned());
                        st.status_message = Some("Replication succeeded".to_owned());
                    }
                    // Applied an older revision: how far behind it is.
                    Some(o) => {
                        st.last_accessed_date = o.last_accessed_ms.map(rotary_wire::Timestamp);
                        st.status_message = Some(format!(
                            "Newer changes are being sent; the region was last in sync at {}.",
                            rfc3339(o.at_ms)
                        ));
                    }
                    None => {}
                }
                st
            })
            .collect())
    }

    async fn replica_outcomes(
        &self,
        uid: &str,
    ) -> Result<BTreeMap<String, ReplicaOutcome>, ApiError> {
        let raw = self
            .store
            .get_meta(&status_key(uid))
            .await
            .map_err(internal)?;
        Ok(raw
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default())
    }

    /// Records the outcome of sending secret `uid` to `region`.
    pub async fn record_replica_outcome(
        &self,
        uid: &str,
        region: &str,
        outcome: Option<ReplicaOutcome>,
    ) -> Result<(), ApiError> {
        let mut all = self.replica_outcomes(uid).await?;
        match outcome {
            Some(o) => all.insert(region.to_owned(), o),
            None => all.remove(region),
        };
        let key = status_key(uid);
        if all.is_empty() {
            self.store.delete_meta(&key).await.map_err(write_failed)?;
            return Ok(());
        }
        let bytes = serde_json::to_vec(&all).map_err(internal)?;
        self.store
            .put_meta(&key, &bytes)
            .await
            .map_err(write_failed)
    }

    /// Secrets whose replicas are due to be sent, most overdue first.
    pub async fn due_replications(&self, limit: i64) -> Result<Vec<String>, ApiError> {
        self.store
            .due_replications(self.now(), limit)
            .await
            .map_err(internal)
    }

    /// Marks secret `uid` sent as of `revision`: no longer due (`None`), or due again at
    /// `retry_at_ms` after a failure. False when the secret changed since (it is due anyway).
    pub async fn replication_sent(
        &self,
        uid: &str,
        revision: i64,
        retry_at_ms: Option<i64>,
    ) -> Result<bool, ApiError> {
        self.store
            .set_replication_due(uid, revision, retry_at_ms)
            .await
            .map_err(write_failed)
    }

    /// The replica of secret `uid` in `region` was deleted there: the region leaves the
    /// secret's list of replicas to delete.
    pub async fn replica_removed(&self, uid: &str, region: &str) -> Result<(), ApiError> {
        let Some(arn) = self.arn_of_uid(uid).await? else {
            return Ok(());
        };
        self.mutate_any(&arn, None, |secret, _| {
            let Some(repl) = secret.doc.replication.as_mut() else {
                return Ok(Outcome::Unchanged(()));
            };
            if !repl.removing.iter().any(|r| r == region) {
                return Ok(Outcome::Unchanged(()));
            }
            repl.removing.retain(|r| r != region);
            if !repl.has_work() && !repl.is_replica() {
                secret.doc.replication = None;
            }
            Ok(Outcome::Changed((), None))
        })
        .await?;
        self.record_replica_outcome(uid, region, None).await
    }

    /// A forced replica (`ForceOverwriteReplicaSecret`) was applied in `region`: later
    /// snapshots are not forced, so a secret there that stops being this replica (promoted)
    /// is never overwritten by them.
    pub async fn replica_force_applied(&self, uid: &str, region: &str) -> Result<(), ApiError> {
        let Some(arn) = self.arn_of_uid(uid).await? else {
            return Ok(());
        };
        self.mutate(&arn, None, |secret, _| {
            let Some(r) = secret
                .doc
                .replication
                .as_mut()
                .and_then(|r| r.replicas.iter_mut().find(|x| x.region == region))
                .filter(|x| x.force_overwrite)
            else {
                return Ok(Outcome::Unchanged(()));
            };
            r.force_overwrite = false;
            Ok(Outcome::Changed((), None))
        })
        .await
    }

    /// Before secret `secret` leaves the store: the replicas it still had to delete are
    /// kept as a tombstone (server value `replication-tombstone:<uid>`) for the shipper, so
    /// a region that was down when they were removed still loses them.
    pub(crate) async fn keep_replica_tombstone(&self, secret: &Secret) -> Result<(), ApiError> {
        let Some(repl) = &secret.doc.replication else {
            return Ok(());
        };
        if repl.removing.is_empty() {
            return Ok(());
        }
        let t = Tombstone {
            name: secret.row.name.clone(),
            regions: repl.removing.clone(),
        };
        let bytes = serde_json::to_vec(&t).map_err(internal)?;
        self.store
            .put_meta(&tombstone_key(&secret.row.uid), &bytes)
            .await
            .map_err(write_failed)
    }

    /// The tombstones of deleted primaries: `(key, secret name, regions)` whose replicas
    /// are still to be deleted.
    pub async fn replica_tombstones(&self) -> Result<Vec<(String, String, Vec<String>)>, ApiError> {
        let rows = self
            .store
            .list_meta(TOMBSTONE_PREFIX)
            .await
            .map_err(internal)?;
        Ok(rows
            .into_iter()
            .filter_map(|(k, v)| {
                let t: Tombstone = serde_json::from_slice(&v).ok()?;
                Some((k, t.name, t.regions))
            })
            .collect())
    }

    /// A tombstone's replica in `region` was deleted: the region leaves it, and the
    /// tombstone goes with its last region.
    pub async fn tombstone_region_done(&self, key: &str, region: &str) -> Result<(), ApiError> {
        let Some(raw) = self.store.get_meta(key).await.map_err(internal)? else {
            return Ok(());
        };
        let Ok(mut t) = serde_json::from_slice::<Tombstone>(&raw) else {
            self.store.delete_meta(key).await.map_err(write_failed)?;
            return Ok(());
        };
        t.regions.retain(|r| r != region);
        if t.regions.is_empty() {
            self.store.delete_meta(key).await.map_err(write_failed)?;
            return Ok(());
        }
        let bytes = serde_json::to_vec(&t).map_err(internal)?;
        self.store.put_meta(key, &bytes).await.map_err(write_failed)
    }

    /// What the shipper sends for secret `uid`: its snapshot with the values opened, and
    /// the regions to update and to clean up. `None` when the secret is gone.
    pub async fn export_replication(&self, uid: &str) -> Result<Option<Export>, ApiError> {
        let Some(sealed) = self
            .store
            .find_sealed("", Lookup::Uid(uid))
            .await
            .map_err(internal)?
        else {
            return Ok(None);
        };
        let secret = Secret::from_record(sealed.record).map_err(internal)?;
        let repl = secret.doc.replication.clone().unwrap_or_default();
        let mut versions = Vec::with_capacity(secret.versions.len());
        let mut values = Vec::with_capacity(secret.versions.len());
        for v in &secret.versions {
            let id = &v.row.version_id;
            let value = match sealed.values.iter().find(|(vid, _)| vid == id) {
                Some((_, c)) if v.row.has_value => {
                    Some(self.open_value(&secret.row.arn, id, c).await?)
                }
                _ => None,
            };
            versions.push(SnapshotVersion {
                version_id: id.clone(),
                seq: v.row.seq,
                created_ms: v.row.created_ms,
                stages: v.row.stages.clone(),
                value: None,
            });
            values.push(value);
        }
        let doc = &secret.doc;
        Ok(Some(Export {
            uid: secret.row.uid.clone(),
            revision: secret.row.revision,
            snapshot: Snapshot {
                name: secret.row.name.clone(),
                primary_arn: secret.row.arn.clone(),
                primary_region: self.config.region.clone(),
                revision: secret.row.revision,
                created_ms: secret.row.created_ms,
                last_changed_ms: secret.row.last_changed_ms,
                description: doc.description.clone(),
                tags: doc.tags.clone(),
                policy: doc.policy.clone(),
                secret_type: doc.secret_type.clone(),
                rotation: doc.rotation.clone(),
                kms_key_id: None,
                force_overwrite: false,
                versions,
            },
            values,
            replicas: if repl.is_replica() {
                Vec::new()
            } else {
                repl.replicas
            },
            removing: repl.removing,
        }))
    }

    /// Applies a primary's snapshot in this (the replica's) region: creates the replica or
    /// brings it to the snapshot's revision, sealing new values under the replica's KMS
    /// key. `values` are the versions' framed plaintexts, by the snapshot's order. Returns
    /// false when the replica already holds that revision or a newer one.
    pub async fn apply_replica(
        &self,
        snap: &Snapshot,
        values: &[Option<SecretBytes>],
    ) -> Result<bool, ApiError> {
        names::check(&snap.name)?;
        if snap.primary_region == self.config.region {
            return Err(api_error!(
                InvalidParameterException,
                "{}",
                msg::INVALID_REPLICA_REGION
            ));
        }
        if values.len() != snap.versions.len() {
            return Err(api_error!(
                InvalidParameterException,
                "The snapshot's values do not match its versions."
            ));
        }
        let arn = replica_arn(
            &snap.primary_arn,
            &self.config.region,
            &self.config.account_id,
        )
        .ok_or_else(|| {
            api_error!(
                InvalidParameterException,
                "PrimaryArn is not a secret's ARN."
            )
        })?;
        let kms = snap.kms_key_id.clone().filter(|k| !k.is_empty());
        if let Some(k) = &kms {
            self.ensure_kms_key(k).await?;
        }
        let kms_name = kms.clone().unwrap_or_else(|| DEFAULT_KMS_KEY.to_owned());
        let doc = SecretDoc {
            description: snap.description.clone(),
            kms_key_id: kms,
            tags: snap.tags.clone(),
            policy: snap.policy.clone(),
            secret_type: snap.secret_type.clone(),
            rotation: snap.rotation.clone(),
            replication: Some(Replication {
                primary_region: Some(snap.primary_region.clone()),
                source_revision: Some(snap.revision),
                ..Default::default()
            }),
        };
        let doc_text = serde_json::to_string(&doc).map_err(internal)?;
        let seal = |i: usize, vid: &str| -> Result<Option<Vec<u8>>, ApiError> {
            let Some(framed) = &values[i] else {
                return Ok(None);
            };
            let plain = Plain::unframe(framed.expose()).ok_or_else(|| {
                api_error!(
                    InvalidParameterException,
                    "A replicated value is not a framed secret value."
                )
            })?;
            self.seal(&kms_name, &arn, vid, &plain).map(Some)
        };
        // A version the replica does not hold yet, its value sealed here.
        let new_version = |i: usize, v: &SnapshotVersion| -> Result<VersionWrite, ApiError> {
            let ciphertext = seal(i, &v.version_id)?;
            Ok(VersionWrite {
                row: VersionRow {
                    version_id: v.version_id.clone(),
                    seq: v.seq,
                    created_ms: v.created_ms,
                    last_accessed_ms: None,
                    stages: v.stages.clone(),
                    kms_key_id: Some(kms_name.clone()),
                    has_value: ciphertext.is_some(),
                },
                ciphertext,
            })
        };
        for _ in 0..MAX_WRITE_ATTEMPTS {
            let existing = self
                .store
                .find(&self.namespace, Lookup::Name(&snap.name))
                .await
                .map_err(internal)?;
            let Some(rec) = existing else {
                let mut versions = Vec::with_capacity(snap.versions.len());
                for (i, v) in snap.versions.iter().enumerate() {
                    versions.push(new_version(i, v)?);
                }
                let row = SecretRow {
                    uid: uuid::Uuid::new_v4().to_string(),
                    namespace: self.namespace.clone(),
                    name: snap.name.clone(),
                    arn: arn.clone(),
                    created_ms: snap.created_ms,
                    last_changed_ms: snap.last_changed_ms,
                    last_accessed_ms: None,
                    deleted_ms: None,
                    rotation_due_ms: None,
                    replication_due_ms: None,
                    revision: 1,
                    doc: doc_text.clone(),
                };
                let inserted = self.store.insert(&row, &versions).await;
                self.cache.forget_ids(&[&snap.name, &arn]);
                match inserted {
                    Ok(()) => return Ok(true),
                    Err(rotary_store::Error::NameTaken(_)) => continue,
                    Err(e) => return Err(write_failed(e)),
                }
            };
            let secret = Secret::from_record(rec).map_err(internal)?;
            let held = secret.doc.replication.as_ref();
            let ours = secret.row.arn == arn
                && held.and_then(|r| r.primary_region.as_deref())
                    == Some(snap.primary_region.as_str());
            if !ours {
                if !snap.force_overwrite {
                    if secret.row.arn == arn {
                        return Err(api_error!(
                            ResourceExistsException,
                            "The replica in this region was promoted to a standalone secret (StopReplicationToReplica); remove the region from the primary's replication."
                        ));
                    }
                    return Err(api_error!(
                        ResourceExistsException,
                        "{}",
                        msg::REPLICA_NAME_TAKEN
                    ));
                }
                self.delete_stored(&secret.row.uid).await?;
                tracing::info!(secret_arn = %secret.row.arn, "Overwrote a secret with a replica (ForceOverwriteReplicaSecret)");
                continue;
            }
            if held
                .and_then(|r| r.source_revision)
                .is_some_and(|r| r >= snap.revision)
            {
                return Ok(false);
            }
            let mut upsert_versions = Vec::new();
            for (i, v) in snap.versions.iter().enumerate() {
                match secret
                    .versions
                    .iter()
                    .find(|x| x.row.version_id == v.version_id)
                {
                    Some(old) => {
                        let fill = !old.row.has_value && values[i].is_some();
                        if !fill && old.row.stages == v.stages {
                            continue;
                        }
                        let mut row = old.row.clone();
                        row.stages = v.stages.clone();
                        let ciphertext = if fill { seal(i, &v.version_id)? } else { None };
                        row.has_value = row.has_value || ciphertext.is_some();
                        upsert_versions.push(VersionWrite { row, ciphertext });
                    }
                    None => upsert_versions.push(new_version(i, v)?),
                }
            }
            let delete_versions = secret
                .versions
                .iter()
                .filter(|x| {
                    !snap
                        .versions
                        .iter()
                        .any(|v| v.version_id == x.row.version_id)
                })
                .map(|x| x.row.version_id.clone())
                .collect();
            let mut row = secret.row.clone();
            row.revision += 1;
            row.doc = doc_text.clone();
            row.last_changed_ms = snap.last_changed_ms;
            row.rotation_due_ms = None;
            row.replication_due_ms = None;
            let update = SecretUpdate {
                row,
                upsert_versions,
                delete_versions,
                claim: None,
            };
            let written = self.store.update(&update).await;
            self.cache.invalidate(&secret.row.uid);
            match written {
                Ok(()) => return Ok(true),
                Err(rotary_store::Error::Conflict(_)) => continue,
                Err(e) => return Err(write_failed(e)),
            }
        }
        Err(api_error!(ThrottlingException, "Rate exceeded"))
    }

    /// The day of the last read of the replica named `name` here (LastAccessedDate), which
    /// the primary shows in the region's `ReplicationStatus`.
    pub async fn replica_last_accessed(&self, name: &str) -> Result<Option<i64>, ApiError> {
        Ok(self
            .load(name)
            .await?
            .filter(|c| c.secret.doc.is_replica())
            .and_then(|c| c.secret.row.last_accessed_ms))
    }

    /// Deletes the replica named `name` of a primary in `primary_region`, if this region
    /// holds one (a secret of that name that is not such a replica is left alone). Returns
    /// whether one was deleted.
    pub async fn delete_replica(&self, name: &str, primary_region: &str) -> Result<bool, ApiError> {
        names::check(name)?;
        let Some(rec) = self
            .store
            .find(&self.namespace, Lookup::Name(name))
            .await
            .map_err(internal)?
        else {
            return Ok(false);
        };
        let secret = Secret::from_record(rec).map_err(internal)?;
        let is_ours = secret
            .doc
            .replication
            .as_ref()
            .and_then(|r| r.primary_region.as_deref())
            == Some(primary_region);
        if !is_ours {
            return Ok(false);
        }
        self.delete_stored(&secret.row.uid).await?;
        tracing::info!(secret_arn = %secret.row.arn, "Deleted a replica removed from replication by its primary");
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::lambda_arn_in;

    #[test]
    fn a_promoted_replica_names_its_function_in_its_own_region() {
        assert_eq!(
            lambda_arn_in(
                "arn:aws:lambda:us-east-1:000000000000:function:rotary-generic-password",
                "us-east-1",
                "us-west-2"
            ),
            "arn:aws:lambda:us-west-2:000000000000:function:rotary-generic-password"
        );
        for other in [
            "arn:aws:lambda:eu-west-1:000000000000:function:f",
            "arn:aws:secretsmanager:us-east-1:0:secret:x",
            "not an arn",
        ] {
            assert_eq!(lambda_arn_in(other, "us-east-1", "us-west-2"), other);
        }
    }
}
