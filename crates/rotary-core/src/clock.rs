//! Time, injected so that tests can move it.

use std::time::{SystemTime, UNIX_EPOCH};

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[expect(
        clippy::disallowed_methods,
        reason = "this is the clock everything else reads"
    )]
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}

/// The system clock shifted by an offset that tests move forward (enabled only by the
/// server's `--test-clock` flag), so schedules can be tested without waiting days.
#[derive(Debug, Default)]
pub struct OffsetClock {
    offset_ms: std::sync::atomic::AtomicI64,
}

impl OffsetClock {
    /// The current offset from the system clock.
    pub fn offset_ms(&self) -> i64 {
        self.offset_ms.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Sets the offset (as another node sharing the store moved it).
    pub fn set_offset_ms(&self, ms: i64) {
        self.offset_ms
            .store(ms, std::sync::atomic::Ordering::SeqCst);
    }

    /// Moves the clock forward (or back) by `ms`; returns the new time.
    pub fn advance(&self, ms: i64) -> i64 {
        self.offset_ms
            .fetch_add(ms, std::sync::atomic::Ordering::SeqCst);
        self.now_ms()
    }
}

impl Clock for OffsetClock {
    fn now_ms(&self) -> i64 {
        SystemClock.now_ms() + self.offset_ms.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;

/// Start of the UTC day holding `ms`.
pub fn day_start(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS) * DAY_MS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_start_truncates_to_midnight_utc() {
        assert_eq!(day_start(1523477145713), 1523404800000);
        assert_eq!(day_start(1523404800000), 1523404800000);
    }
}
