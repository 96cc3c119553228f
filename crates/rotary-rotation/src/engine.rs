//! The rotation engine: finds due rotations from the store's index and drives them, one
//! per secret at a time, a bounded number at once.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use rotary_auth::CredentialTable;
use rotary_core::SecretsService;
use tokio::sync::Semaphore;

use crate::history::Outcome;
use crate::registry::FunctionRegistry;
use crate::webhook::WebhookConfig;

/// Settings of the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// This server's URL, given to functions as `SECRETS_MANAGER_ENDPOINT`.
    pub endpoint_url: String,
    /// Attempts before a rotation is marked failed.
    pub max_attempts: u32,
    /// First retry delay; doubled per attempt, with ±50% jitter.
    pub retry_base: Duration,
    /// Longest retry delay.
    pub retry_cap: Duration,
    /// How often the scheduler looks for due rotations.
    pub poll_interval: Duration,
    /// Rotations run at once.
    pub concurrency: usize,
    /// Failure (and optionally success) notifications.
    pub webhook: Option<WebhookConfig>,
    /// Key signing HTTP function calls (`X-Rotary-Signature`).
    pub http_signing_key: Vec<u8>,
    /// Where each rotation step is audited.
    pub audit: Option<Arc<rotary_core::audit::AuditLog>>,
    /// This node's id in rotation claims (over a shared store).
    pub node_id: String,
    /// Over a shared store: where a step's temporary credentials are published so that a
    /// function's calls reach any node (behind a load balancer), not only the issuing one.
    pub sessions: Option<Arc<dyn SessionShare>>,
    /// How long a rotation claim lasts unless renewed (renewed every third of it while the
    /// rotation runs): how soon another node takes over the rotations of a node that died.
    pub claim_lease: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            endpoint_url: "http://127.0.0.1:8750".into(),
            max_attempts: 5,
            retry_base: Duration::from_secs(60),
            retry_cap: Duration::from_secs(30 * 60),
            poll_interval: Duration::from_secs(1),
            concurrency: 8,
            webhook: None,
            http_signing_key: Vec::new(),
            audit: None,
            node_id: uuid::Uuid::new_v4().to_string(),
            claim_lease: DEFAULT_CLAIM_LEASE,
            sessions: None,
        }
    }
}

/// Publishes a rotation step's temporary credentials to the other nodes sharing the store
/// (implemented by the server, which holds the master key that seals them there).
#[async_trait::async_trait]
pub trait SessionShare: Send + Sync + std::fmt::Debug {
    /// Makes `credential` (access key id `akid`) valid on every node until `expires_ms`
    /// (the system clock's milliseconds).
    async fn publish(&self, akid: &str, credential: &rotary_auth::Credential, expires_ms: i64);
    /// Withdraws it (the step ended).
    async fn revoke(&self, akid: &str);
}

/// How long a rotation claim lasts unless renewed.
pub const DEFAULT_CLAIM_LEASE: Duration = Duration::from_secs(30);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatLabels {
    stat: &'static str,
}

/// Rotation counters for `/metrics`.
#[derive(Debug, Default)]
pub struct RotationMetrics {
    attempts: Family<OutcomeLabels, Counter>,
    lag_seconds: Family<StatLabels, Gauge<f64, AtomicU64>>,
    lag_ms_max: AtomicI64,
}

impl RotationMetrics {
    pub(crate) fn outcome(&self, outcome: Outcome) {
        let outcome = match outcome {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::Retrying => "retrying",
            Outcome::Abandoned => "abandoned",
            // Not an end of an attempt: nothing to count.
            Outcome::InProgress => return,
        };
        self.attempts
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    pub(crate) fn observe_lag(&self, ms: i64) {
        let ms = ms.max(0);
        let max = self.lag_ms_max.fetch_max(ms, Ordering::Relaxed).max(ms);
        for (stat, value) in [("last", ms), ("max", max)] {
            self.lag_seconds
                .get_or_create(&StatLabels { stat })
                .set(value as f64 / 1000.0);
        }
    }

    /// Adds the rotation metrics to `registry`. Every outcome is shown, counted or not.
    pub fn register(&self, registry: &mut Registry) {
        for outcome in ["succeeded", "failed", "retrying", "abandoned"] {
            drop(self.attempts.get_or_create(&OutcomeLabels { outcome }));
        }
        for stat in ["last", "max"] {
            drop(self.lag_seconds.get_or_create(&StatLabels { stat }));
        }
        registry.register(
            "rotary_rotation_attempts",
            "Rotation attempts by outcome",
            self.attempts.clone(),
        );
        registry.register(
            "rotary_rotation_scheduler_lag_seconds",
            "Delay between a rotation's due time and its start (last, max)",
            self.lag_seconds.clone(),
        );
    }
}

/// The engine.
pub struct RotationEngine {
    pub(crate) service: Arc<SecretsService>,
    pub(crate) registry: Arc<FunctionRegistry>,
    pub(crate) credentials: Arc<CredentialTable>,
    pub(crate) config: EngineConfig,
    pub(crate) http: reqwest::Client,
    pub(crate) metrics: RotationMetrics,
    running: Mutex<HashSet<String>>,
    /// Secrets whose last run stopped on an error of Rotary's own: consecutive such errors
    /// and the instant (ms) before which the scheduler leaves the secret alone. Kept in
    /// memory as well as in the store, where the same fault may keep the due time from
    /// moving.
    pub(crate) deferred: Mutex<HashMap<String, (u32, i64)>>,
    permits: Arc<Semaphore>,
}

const BATCH: i64 = 256;

impl RotationEngine {
    /// An engine over a service.
    pub fn new(
        service: Arc<SecretsService>,
        registry: Arc<FunctionRegistry>,
        credentials: Arc<CredentialTable>,
        config: EngineConfig,
    ) -> Arc<Self> {
        let permits = Arc::new(Semaphore::new(config.concurrency.max(1)));
        Arc::new(Self {
            service,
            registry,
            credentials,
            config,
            http: reqwest::Client::new(),
            metrics: RotationMetrics::default(),
            running: Mutex::new(HashSet::new()),
            deferred: Mutex::new(HashMap::new()),
            permits,
        })
    }

    /// The domain service.
    pub fn service(&self) -> &Arc<SecretsService> {
        &self.service
    }

    /// The function registry.
    pub fn registry(&self) -> &Arc<FunctionRegistry> {
        &self.registry
    }

    /// Counters for `/metrics`.
    pub fn metrics(&self) -> &RotationMetrics {
        &self.metrics
    }

    /// Starts the scheduler loop: due rotations are found from the store's index, at
    /// start-up (catching up on windows missed while the server was down), every poll
    /// interval, and whenever RotateSecret makes one due now.
    pub fn spawn(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let engine = self.clone();
        let wakeup = self.service.rotation_wakeup();
        tokio::spawn(async move {
            loop {
                engine.tick().await;
                tokio::select! {
                    () = wakeup.notified() => {}
                    () = tokio::time::sleep(engine.config.poll_interval) => {}
                }
            }
        })
    }

    /// Starts every due rotation not already running; returns how many were started.
    pub async fn tick(self: &Arc<Self>) -> usize {
        let due = match self.service.due_rotations(BATCH).await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "Finding due rotations failed");
                return 0;
            }
        };
        let mut started = 0;
        let now = self.service.clock().now_ms();
        for uid in due {
            if self
                .deferred
                .lock()
                .get(&uid)
                .is_some_and(|&(_, not_before)| not_before > now)
            {
                continue;
            }
            if !self.running.lock().insert(uid.clone()) {
                continue;
            }
            started += 1;
            let engine = self.clone();
            let permits = self.permits.clone();
            tokio::spawn(async move {
                let _permit = permits.acquire_owned().await;
                if engine.service.is_shared() {
                    engine.drive_claimed(&uid).await;
                } else {
                    engine.drive(&uid).await;
                }
                engine.running.lock().remove(&uid);
            });
        }
        started
    }

    /// Over a shared store: claims the rotation of `uid` in the store and drives it only
    /// while this node holds the claim. The claim is renewed in the background; the
    /// rotation's own state writes are fenced by it, so a node that lost its claim (it
    /// stalled past the lease and another node took over) cannot write over the new owner.
    async fn drive_claimed(self: &Arc<Self>, uid: &str) {
        let store = self.service.store().clone();
        let lease_ms = i64::try_from(self.config.claim_lease.as_millis()).unwrap_or(i64::MAX);
        let claim = match store
            .claim_rotation(uid, &self.config.node_id, lease_ms)
            .await
        {
            Ok(Some(c)) => c,
            // Another node runs it.
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(secret_uid = uid, error = %e, "Claiming a rotation failed");
                return;
            }
        };
        let renewer = {
            let (store, claim) = (store.clone(), claim.clone());
            let every = (self.config.claim_lease / 3).max(Duration::from_millis(100));
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    match store.renew_claim(&claim, lease_ms).await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::warn!(secret_uid = %claim.uid, "Lost the claim on a rotation to another node");
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(secret_uid = %claim.uid, error = %e, "Renewing a rotation claim failed");
                        }
                    }
                }
            })
        };
        rotary_core::service::with_claim(claim.clone(), self.drive(uid)).await;
        renewer.abort();
        if let Err(e) = store.release_claim(&claim).await {
            tracing::warn!(secret_uid = uid, error = %e, "Releasing a rotation claim failed");
        }
    }
}
