//! Prometheus metrics: requests by operation and outcome, and request durations.

use std::collections::BTreeMap;
use std::fmt::Write;

use parking_lot::Mutex;

#[derive(Default)]
struct OpStats {
    by_code: BTreeMap<&'static str, u64>,
    seconds_sum: f64,
    count: u64,
    buckets: [u64; BUCKETS.len()],
}

const BUCKETS: [f64; 8] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5];

/// Counters kept by the server. Labels are operation names and error codes only, never
/// secret names.
#[derive(Default)]
pub struct Metrics {
    ops: Mutex<BTreeMap<&'static str, OpStats>>,
}

impl Metrics {
    /// Records one request.
    pub fn record(&self, operation: &'static str, code: &'static str, seconds: f64) {
        let mut ops = self.ops.lock();
        let s = ops.entry(operation).or_default();
        *s.by_code.entry(code).or_default() += 1;
        s.seconds_sum += seconds;
        s.count += 1;
        for (i, b) in BUCKETS.iter().enumerate() {
            if seconds <= *b {
                s.buckets[i] += 1;
            }
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let ops = self.ops.lock();
        let mut out = String::new();
        out.push_str("# HELP rotary_api_requests_total API requests by operation and outcome.\n");
        out.push_str("# TYPE rotary_api_requests_total counter\n");
        for (op, s) in ops.iter() {
            for (code, n) in &s.by_code {
                let _ = writeln!(
                    out,
                    "rotary_api_requests_total{{operation=\"{op}\",code=\"{code}\"}} {n}"
                );
            }
        }
        out.push_str("# HELP rotary_api_request_duration_seconds API request latency.\n");
        out.push_str("# TYPE rotary_api_request_duration_seconds histogram\n");
        for (op, s) in ops.iter() {
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "rotary_api_request_duration_seconds_bucket{{operation=\"{op}\",le=\"{b}\"}} {}",
                    s.buckets[i]
                );
            }
            let _ = writeln!(
                out,
                "rotary_api_request_duration_seconds_bucket{{operation=\"{op}\",le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "rotary_api_request_duration_seconds_sum{{operation=\"{op}\"}} {}",
                s.seconds_sum
            );
            let _ = writeln!(
                out,
                "rotary_api_request_duration_seconds_count{{operation=\"{op}\"}} {}",
                s.count
            );
        }
        out
    }
}
