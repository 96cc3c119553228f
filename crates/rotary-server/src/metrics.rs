//! Prometheus metrics: requests by operation and outcome, and request durations, kept in
//! `prometheus-client` families and exposed with the rotation engine's and the audit log's
//! in the OpenMetrics text format.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Upper bounds of the latency histogram, in seconds.
const BUCKETS: [f64; 8] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5];

/// The content type of [`encode`]'s text.
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    operation: &'static str,
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RegionOutcomeLabels {
    region: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RegionLabels {
    region: String,
}

#[derive(Clone, Copy, Debug)]
struct LatencyHistogram;

impl MetricConstructor<Histogram> for LatencyHistogram {
    fn new_metric(&self) -> Histogram {
        Histogram::new(BUCKETS)
    }
}

/// Counters kept by the server. Labels are operation names and error codes only, never
/// secret names.
#[derive(Debug)]
pub struct Metrics {
    requests: Family<RequestLabels, Counter>,
    durations: Family<OperationLabels, Histogram, LatencyHistogram>,
    replica_sends: Family<RegionOutcomeLabels, Counter>,
    replica_lag: Family<RegionLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    replica_failing: Family<RegionLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: Family::default(),
            durations: Family::new_with_constructor(LatencyHistogram),
            replica_sends: Family::default(),
            replica_lag: Family::default(),
            replica_failing: Family::default(),
        }
    }
}

impl Metrics {
    /// Records one request.
    pub fn record(&self, operation: &'static str, code: &'static str, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels { operation, code })
            .inc();
        self.durations
            .get_or_create(&OperationLabels { operation })
            .observe(seconds);
    }

    /// Records one snapshot sent to a replica region (`applied` or `failed`).
    pub fn record_replica_send(&self, region: &str, applied: bool) {
        self.replica_sends
            .get_or_create(&RegionOutcomeLabels {
                region: region.to_owned(),
                outcome: if applied { "applied" } else { "failed" },
            })
            .inc();
    }

    /// Sets a replica region's lag (the age of the oldest change not applied there yet) and
    /// how many secrets failed to replicate there on their last attempt.
    pub fn set_replica_state(&self, region: &str, lag_seconds: f64, failing: usize) {
        let labels = RegionLabels {
            region: region.to_owned(),
        };
        self.replica_lag.get_or_create(&labels).set(lag_seconds);
        self.replica_failing
            .get_or_create(&labels)
            .set(i64::try_from(failing).unwrap_or(i64::MAX));
    }

    /// Adds the server's metrics to `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "rotary_replication_sends",
            "Secret snapshots sent to replica regions, by region and outcome",
            self.replica_sends.clone(),
        );
        registry.register(
            "rotary_replication_lag_seconds",
            "Age of the oldest change not yet applied in a replica region (0 when in sync)",
            self.replica_lag.clone(),
        );
        registry.register(
            "rotary_replication_failing_secrets",
            "Secrets whose last attempt to replicate to a region failed",
            self.replica_failing.clone(),
        );
        registry.register(
            "rotary_api_requests",
            "API requests by operation and outcome",
            self.requests.clone(),
        );
        registry.register(
            "rotary_api_request_duration_seconds",
            "API request latency",
            self.durations.clone(),
        );
    }
}

/// The audit log's counters, read when metrics are scraped.
pub(crate) fn register_audit(registry: &mut Registry, audit: &rotary_core::audit::AuditLog) {
    for (name, help, value) in [
        (
            "rotary_audit_records",
            "Audit records written",
            audit.records_total(),
        ),
        (
            "rotary_audit_write_errors",
            "Audit records that could not be written",
            audit.write_errors_total(),
        ),
        (
            "rotary_audit_dropped",
            "Audit records dropped (queue full)",
            audit.dropped_total(),
        ),
    ] {
        registry.register(name, help, ConstCounter::new(value));
    }
}

/// The OpenMetrics text of `registry`.
pub(crate) fn encode(registry: &Registry) -> String {
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, registry) {
        tracing::error!(error = %e, "Encoding metrics failed");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_latencies_are_exposed_by_operation() {
        let m = Metrics::default();
        m.record("GetSecretValue", "200", 0.002);
        m.record("GetSecretValue", "200", 3.0);
        m.record("GetSecretValue", "ResourceNotFoundException", 0.0005);
        let mut registry = Registry::default();
        m.register(&mut registry);
        let text = encode(&registry);
        assert!(text
            .contains("rotary_api_requests_total{operation=\"GetSecretValue\",code=\"200\"} 2\n"));
        assert!(text.contains(
            "rotary_api_requests_total{operation=\"GetSecretValue\",code=\"ResourceNotFoundException\"} 1\n"
        ));
        assert!(text.contains(
            "rotary_api_request_duration_seconds_bucket{le=\"0.001\",operation=\"GetSecretValue\"} 1\n"
        ) || text.contains(
            "rotary_api_request_duration_seconds_bucket{operation=\"GetSecretValue\",le=\"0.001\"} 1\n"
        ), "{text}");
        assert!(text.contains(
            "rotary_api_request_duration_seconds_count{operation=\"GetSecretValue\"} 3\n"
        ));
        assert!(text.ends_with("# EOF\n"));
    }
}
