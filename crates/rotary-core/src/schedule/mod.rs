//! Rotation schedules (temporary: days only; replaced by the full grammar).

/// Parsed RotationRules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    days: i64,
}

/// A schedule error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ScheduleError {
    /// Text for the client.
    pub message: String,
}

/// A window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Start.
    pub start_ms: i64,
    /// End.
    pub end_ms: i64,
}

const DAY: i64 = 86_400_000;

impl Schedule {
    /// Parses.
    pub fn parse(days: Option<i64>, expr: Option<&str>, _d: Option<&str>) -> Result<Self, ScheduleError> {
        match (days, expr) {
            (Some(d), None) => Ok(Self { days: d }),
            _ => Err(ScheduleError { message: "unsupported".into() }),
        }
    }
    /// Next window.
    pub fn next_window(&self, now_ms: i64, last: Option<i64>) -> Option<Window> {
        let base = last.unwrap_or(now_ms).div_euclid(DAY) * DAY;
        let start = base + self.days * DAY;
        Some(Window { start_ms: start, end_ms: start + DAY })
    }
    /// Days.
    pub fn automatically_after_days(&self) -> i64 {
        self.days
    }
}

impl Window {
    /// NextRotationDate.
    pub fn next_rotation_date_ms(&self) -> i64 {
        self.end_ms - 1000
    }
    /// Random instant.
    pub fn random_instant<R: rand::Rng>(&self, rng: &mut R) -> i64 {
        rng.gen_range(self.start_ms..self.end_ms)
    }
}
