//! Rotation schedules: the `RotationRules` grammar (`AutomaticallyAfterDays`,
//! `ScheduleExpression` = `rate()`/`cron()`, `Duration`) and rotation-window arithmetic.
//!
//! Pure and clock-free: callers pass `now_ms` and the last rotation time, so the scheduler can
//! inject its `Clock`. All times are milliseconds since the Unix epoch, UTC.
//!
//! # Invariants
//! - A parsed [`Schedule`] only yields windows that start on the hour, last 1 to 24 hours,
//!   never cross the end of a UTC day, never overlap the next window, and start at least four
//!   hours after the previous window.
//! - Day-based schedules (`AutomaticallyAfterDays`, `rate(N days)`) are anchored on the last
//!   rotation; `cron()` and `rate(N hours)` are anchored on the calendar.
//! - Window searches look at most about five years ahead and then give up (`None`).
//!
//! See: <https://docs.aws.amazon.com/secretsmanager/latest/userguide/rotate-secrets_schedule.html>
//! and <https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_RotationRulesType.html>.

mod calendar;
mod cron;
mod rate;

use self::calendar::{epoch_day, Calendar, Cycle, DAY_MS, HOUR_MS};

/// AWS's text when a RotateSecret request sets both fields (terraform-provider-aws #33329).
const BOTH_MESSAGE: &str =
    "You cannot specify both rotation frequency and schedule expression together.";
/// Out-of-range `AutomaticallyAfterDays` (moto's text for the same check).
const DAYS_RANGE_MESSAGE: &str = "RotationRules.AutomaticallyAfterDays must be within 1-1000.";
/// Longest `ScheduleExpression` the API model accepts.
const MAX_EXPRESSION_LEN: usize = 256;

/// Parsed `RotationRules`: when rotation windows open and how long they stay open.
///
/// Built only by [`Schedule::parse`], so every value satisfies the AWS window rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    kind: Kind,
    /// `RotationRules.Duration` in hours (1..=24), if given.
    duration_hours: Option<u32>,
    /// The `AutomaticallyAfterDays` value DescribeSecret reports, computed once at parse time.
    days_between: i64,
}

/// What drives the windows.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// `AutomaticallyAfterDays N` or `rate(N days)`: a window on the UTC day N days after the
    /// last rotation.
    Days(u32),
    /// `cron()` or `rate(N hours)`: windows at fixed UTC hours on matching days, with what a
    /// scan of the calendar cycle found (computed once at parse time).
    Calendar(Calendar, Cycle),
}

/// Invalid `RotationRules`; `message` is returned to clients as the
/// `InvalidParameterException` text, so it names the field and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ScheduleError {
    /// Client-facing description of the problem.
    pub message: String,
}

impl ScheduleError {
    fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

/// A rotation window `[start_ms, end_ms)` in milliseconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// First instant of the window (inclusive); always on the hour.
    pub start_ms: i64,
    /// End of the window (exclusive); on the hour, at most the following midnight.
    pub end_ms: i64,
}

impl Schedule {
    /// Validates `RotationRules` as given in a RotateSecret request.
    ///
    /// Applies AWS's rules: `AutomaticallyAfterDays` and `ScheduleExpression` are mutually
    /// exclusive and one is required; `AutomaticallyAfterDays` is 1..=1000; `rate()` is
    /// 4..=23 hours or 1..=999 days; `cron()` has Minutes `0`, Year `*`, exactly one `?` among
    /// Day-of-month/Day-of-week, must match some date, and opens windows at least 4 hours
    /// apart; `Duration` is `<n>h` with n in 1..=24 and must not carry any window past the end
    /// of its UTC day or into the next window.
    pub fn parse(
        automatically_after_days: Option<i64>,
        schedule_expression: Option<&str>,
        duration: Option<&str>,
    ) -> Result<Self, ScheduleError> {
        let kind = match (automatically_after_days, schedule_expression) {
            (Some(_), Some(_)) => return Err(ScheduleError::new(BOTH_MESSAGE)),
            (None, None) => {
                return Err(ScheduleError::new(
                    "RotationRules must specify either AutomaticallyAfterDays or \
                     ScheduleExpression.",
                ))
            }
            (Some(days), None) => match u32::try_from(days) {
                Ok(days @ 1..=1000) => Kind::Days(days),
                _ => return Err(ScheduleError::new(DAYS_RANGE_MESSAGE)),
            },
            (None, Some(expr)) => parse_expression(expr)?,
        };
        let duration_hours = duration.map(parse_duration).transpose()?;
        let days_between = match &kind {
            Kind::Days(days) => i64::from(*days),
            Kind::Calendar(cal, cycle) => {
                if let Some(hours) = duration_hours {
                    cal.check_duration(hours)?;
                }
                if cal.in_hours() {
                    1
                } else {
                    // Kept inside the model's 1..=1000 so SDKs can round-trip the value.
                    cycle.min_gap_days.clamp(1, 1000)
                }
            }
        };
        Ok(Self {
            kind,
            duration_hours,
            days_between,
        })
    }

    /// The first window that ends after `now_ms`.
    ///
    /// - `AutomaticallyAfterDays` / `rate(N days)`: windows fall on the UTC days
    ///   `day(last_rotated_ms) + k·N` for k ≥ 1 (with no last rotation, on `day(now_ms) + N`).
    ///   A window that was missed entirely is not returned: callers detect overdue rotations by
    ///   comparing their stored `NextRotationDate` with the clock.
    /// - `cron()` / `rate(N hours)`: calendar windows; a window that started at or before
    ///   `last_rotated_ms` is skipped (that window's rotation already happened; AWS then reports
    ///   the following window as next).
    ///
    /// `None` when nothing matches within about five years, or the time is out of range.
    pub fn next_window(&self, now_ms: i64, last_rotated_ms: Option<i64>) -> Option<Window> {
        self.preview(now_ms, last_rotated_ms, 1).into_iter().next()
    }

    /// The next `n` windows that end after `now_ms`, in order (the schedule preview), with the
    /// same rules as [`Schedule::next_window`]; later windows assume each rotation happens in
    /// its window. Fewer than `n` when the five-year horizon is reached (so a huge `n` from a
    /// client cannot make this loop or allocate without bound).
    pub fn preview(&self, now_ms: i64, last_rotated_ms: Option<i64>, n: usize) -> Vec<Window> {
        match &self.kind {
            Kind::Days(days) => self.day_windows(*days, now_ms, last_rotated_ms, n),
            Kind::Calendar(cal, _) => self.calendar_windows(cal, now_ms, last_rotated_ms, n),
        }
    }

    /// The `AutomaticallyAfterDays` value DescribeSecret reports for this schedule.
    ///
    /// AWS: "In DescribeSecret and ListSecrets, this value is calculated from the rotation
    /// schedule after every successful rotation." For `AutomaticallyAfterDays` and
    /// `rate(N days)` it is N. For `cron()` and `rate(N hours)` it is the smallest number of
    /// whole days between consecutive windows, at least 1: 1 for schedules that rotate more than
    /// once a day, 7 for `cron(0 0 ? * 2 *)` (seen in real DescribeSecret output), 14 for
    /// `cron(0 16 1,15 * ? *)` (the API reference's DescribeSecret example).
    pub fn automatically_after_days(&self) -> i64 {
        self.days_between
    }

    /// Window length in hours for a window opening at `start_hour`: `Duration` if given, else
    /// 1 hour for schedules in hours and the rest of the UTC day otherwise.
    fn window_hours(&self, start_hour: u32, in_hours: bool) -> u32 {
        self.duration_hours
            .unwrap_or(if in_hours { 1 } else { 24 - start_hour })
    }

    fn day_windows(&self, days: u32, now: i64, last: Option<i64>, n: usize) -> Vec<Window> {
        let len = i128::from(self.window_hours(0, false)) * i128::from(HOUR_MS);
        let day_ms = i128::from(DAY_MS);
        let period = i128::from(days) * day_ms;
        let anchor = i128::from(epoch_day(last.unwrap_or(now))) * day_ms;
        // Smallest k >= 1 with anchor + k * period + len > now.
        let k = ((i128::from(now) - len - anchor).div_euclid(period) + 1).max(1);
        // Same horizon as calendar searches, but the first window is always returned (it is
        // at most 1000 days away).
        let horizon = i128::from(now) + i128::from(calendar::SEARCH_DAYS) * day_ms;
        let mut windows = Vec::with_capacity(n.min(64));
        let mut start = anchor + k * period;
        while windows.len() < n && (windows.is_empty() || start <= horizon) {
            match (i64::try_from(start), i64::try_from(start + len)) {
                (Ok(start_ms), Ok(end_ms)) => windows.push(Window { start_ms, end_ms }),
                _ => break,
            }
            start += period;
        }
        windows
    }

    fn calendar_windows(
        &self,
        cal: &Calendar,
        now: i64,
        last: Option<i64>,
        n: usize,
    ) -> Vec<Window> {
        let in_hours = cal.in_hours();
        // Windows never cross midnight, so one that ends after `now` starts on day(now) or
        // later, and one that starts after `last` starts on day(last) or later.
        let first_day = epoch_day(last.map_or(now, |last| last.max(now)));
        cal.starts_from(first_day)
            .filter_map(|start_ms| {
                let hour = u32::try_from(start_ms.rem_euclid(DAY_MS) / HOUR_MS).ok()?;
                let len = i64::from(self.window_hours(hour, in_hours)) * HOUR_MS;
                let end_ms = start_ms.checked_add(len)?;
                let after_last = last.is_none_or(|last| start_ms > last);
                (end_ms > now && after_last).then_some(Window { start_ms, end_ms })
            })
            .take(n)
            .collect()
    }
}

impl Window {
    /// AWS's `NextRotationDate` for this window: "the latest date that rotation will occur",
    /// which real DescribeSecret output shows as the last second of the window, i.e.
    /// `end_ms - 1000` (`…T23:59:59Z` for a whole-day window; `17:59:59Z` for the API
    /// reference's 16:00 + `2h` example). Not the window start.
    pub fn next_rotation_date_ms(&self) -> i64 {
        self.end_ms - 1000
    }

    /// A uniformly random instant in the window: AWS picks the rotation time at random inside
    /// the window to spread load. Drawn from `[start_ms, next_rotation_date_ms()]`, so a
    /// rotation never starts after the `NextRotationDate` reported to clients.
    pub fn random_instant<R: rand::Rng>(&self, rng: &mut R) -> i64 {
        let latest = self.next_rotation_date_ms();
        if latest > self.start_ms {
            rng.gen_range(self.start_ms..=latest)
        } else {
            self.start_ms
        }
    }
}

/// `rate(...)` or `cron(...)`, with the calendar rules that need the whole expression.
fn parse_expression(expr: &str) -> Result<Kind, ScheduleError> {
    if expr.chars().count() > MAX_EXPRESSION_LEN {
        return Err(ScheduleError::new(format!(
            "RotationRules.ScheduleExpression must be at most {MAX_EXPRESSION_LEN} characters."
        )));
    }
    let trimmed = expr.trim();
    let calendar = if let Some(inner) = inner_of(trimmed, "rate(") {
        match rate::parse(trimmed, inner)? {
            rate::Rate::Days(days) => return Ok(Kind::Days(days)),
            rate::Rate::Hours(every) => rate_hours_calendar(every),
        }
    } else if let Some(inner) = inner_of(trimmed, "cron(") {
        cron::parse(trimmed, inner)?
    } else {
        return Err(ScheduleError::new(format!(
            "RotationRules.ScheduleExpression must be a rate() or cron() expression, for example \
             rate(10 days), rate(12 hours) or cron(0 16 1,15 * ? *); got \"{expr}\"."
        )));
    };
    let cycle = calendar.cycle();
    if !cycle.fires {
        return Err(ScheduleError::new(format!(
            "Invalid ScheduleExpression {trimmed}: it never matches a date (check that the \
             Day-of-month or Day-of-week values occur in the selected months)."
        )));
    }
    calendar.check_spacing(trimmed, cycle)?;
    Ok(Kind::Calendar(calendar, cycle))
}

/// The text between `prefix` and a final `)`.
fn inner_of<'a>(expr: &'a str, prefix: &str) -> Option<&'a str> {
    expr.strip_prefix(prefix)?.strip_suffix(')')
}

/// `rate(N hours)`: every N hours from 00:00 UTC, restarting each day, every day.
fn rate_hours_calendar(every: u32) -> Calendar {
    let step = usize::try_from(every).unwrap_or(24).max(1);
    let hours = (0..24u32).step_by(step).fold(0, |mask, h| mask | (1 << h));
    Calendar {
        hours,
        months: 0b1_1111_1111_1110,
        days: calendar::DayRule::Month(calendar::DomRule {
            days: !1,
            ..calendar::DomRule::default()
        }),
    }
}

/// `Duration`: `<n>h` (model pattern `[0-9]+h`, 2-3 characters) with n in 1..=24.
fn parse_duration(text: &str) -> Result<u32, ScheduleError> {
    let digits = text.strip_suffix('h').unwrap_or("");
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ScheduleError::new(format!(
            "RotationRules.Duration must be a whole number of hours followed by h, for example \
             3h; got \"{}\".",
            truncated(text)
        )));
    }
    match digits.parse::<u32>() {
        Ok(hours @ 1..=24) => Ok(hours),
        Ok(0) => Err(ScheduleError::new(
            "RotationRules.Duration must be at least 1h; got 0h.",
        )),
        _ => Err(ScheduleError::new(format!(
            "RotationRules.Duration must be at most 24h because a rotation window cannot extend \
             into the next UTC day; got \"{}\".",
            truncated(text)
        ))),
    }
}

/// Echoes client input in a message without repeating arbitrarily long text.
fn truncated(text: &str) -> String {
    const MAX: usize = 16;
    if text.chars().count() <= MAX {
        text.to_owned()
    } else {
        text.chars().take(MAX).chain("...".chars()).collect()
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use time::macros::datetime;
    use time::OffsetDateTime;

    use super::*;

    fn ms(t: OffsetDateTime) -> i64 {
        i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap()
    }

    fn w(start: OffsetDateTime, end: OffsetDateTime) -> Window {
        Window {
            start_ms: ms(start),
            end_ms: ms(end),
        }
    }

    fn cron(expr: &str) -> Schedule {
        Schedule::parse(None, Some(expr), None).unwrap()
    }

    fn cron_d(expr: &str, duration: &str) -> Schedule {
        Schedule::parse(None, Some(expr), Some(duration)).unwrap()
    }

    fn err(days: Option<i64>, expr: Option<&str>, duration: Option<&str>) -> String {
        Schedule::parse(days, expr, duration).unwrap_err().message
    }

    /// Window starts of the next `n` windows, as RFC-3339-ish strings for readable asserts.
    fn starts(s: &Schedule, now: OffsetDateTime, n: usize) -> Vec<String> {
        s.preview(ms(now), None, n)
            .iter()
            .map(|w| fmt(w.start_ms) + "/" + &((w.end_ms - w.start_ms) / HOUR_MS).to_string())
            .collect()
    }

    fn fmt(ms: i64) -> String {
        let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap();
        format!(
            "{:04}-{:02}-{:02}T{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour()
        )
    }

    // ---- parse: request-level rules -------------------------------------------------------

    #[test]
    fn parse_both_fields_returns_aws_text() {
        assert_eq!(
            err(Some(30), Some("rate(10 days)"), None),
            "You cannot specify both rotation frequency and schedule expression together."
        );
        // The check applies even when each part would be invalid on its own.
        assert_eq!(err(Some(0), Some("garbage"), None), BOTH_MESSAGE);
    }

    #[test]
    fn parse_days_out_of_range_returns_moto_text() {
        for days in [0, -1, 1001, i64::MAX, i64::MIN] {
            assert_eq!(
                err(Some(days), None, None),
                "RotationRules.AutomaticallyAfterDays must be within 1-1000."
            );
        }
        assert!(Schedule::parse(Some(1), None, None).is_ok());
        assert!(Schedule::parse(Some(1000), None, None).is_ok());
    }

    #[test]
    fn parse_neither_field_is_an_error() {
        assert!(err(None, None, None).contains("either AutomaticallyAfterDays or"));
        assert!(err(None, None, Some("2h")).contains("either AutomaticallyAfterDays or"));
    }

    #[test]
    fn parse_garbage_expressions_are_rejected() {
        for expr in [
            "",
            "garbage",
            "rate 10 days",
            "cron(0 10 * * ? *",
            "CRON(0 10 * * ? *)",
        ] {
            assert!(
                err(None, Some(expr), None).contains("must be a rate() or cron()"),
                "{expr}"
            );
        }
        assert!(err(None, Some(&"x".repeat(257)), None).contains("at most 256 characters"));
        assert!(err(None, Some("cron()"), None).contains("6 fields"));
        assert!(err(None, Some("rate()"), None).contains("rate(<value> <unit>)"));
    }

    #[test]
    fn parse_invalid_rates() {
        assert!(err(None, Some("rate(3 hours)"), None).contains("at most every 4 hours"));
        assert!(err(None, Some("rate(0 days)"), None).contains("positive whole number"));
        assert!(err(None, Some("rate(1 minute)"), None).contains("minutes"));
        assert!(err(None, Some("rate(1000 days)"), None).contains("999"));
        // Hour rates restart at midnight: 21:00 and the next 00:00 are only 3 hours apart.
        assert!(err(None, Some("rate(21 hours)"), None).contains("3 hours apart"));
        assert!(Schedule::parse(None, Some("rate(20 hours)"), None).is_ok());
    }

    #[test]
    fn parse_invalid_crons() {
        let e = |x: &str| err(None, Some(x), None);
        assert!(e("cron(30 10 * * ? *)").contains("Minutes field must be 0"));
        assert!(e("cron(0 10 * * ? 2030)").contains("Year field must be *"));
        assert!(e("cron(0 10 ? * ? *)").contains("both are ?"));
        assert!(e("cron(0 10 * * * *)").contains("exactly one of"));
        assert!(e("cron(0 10 * * MON *)").contains("exactly one of"));
        assert!(e("cron(0 0/2 * * ? *)").contains("at least 4 hours apart"));
        assert!(e("cron(0 1,3 * * ? *)").contains("01:00 and 03:00 UTC are 2 hours apart"));
        // 22:00 and 01:00 the next day: only 3 hours.
        assert!(e("cron(0 1,22 * * ? *)").contains("3 hours apart"));
        // Never fires.
        assert!(e("cron(0 0 30 2 ? *)").contains("never matches"));
        assert!(Schedule::parse(None, Some("cron(0 0 ? 2 6#5 *)"), None).is_ok());
        assert!(e("cron(0 0 31 4,6,9,11 ? *)").contains("never matches"));
    }

    #[test]
    fn parse_cross_day_gap_only_counts_consecutive_days() {
        // 01:00 and 22:00 on the 1st and the 15th only: never on consecutive days.
        assert!(Schedule::parse(None, Some("cron(0 1,22 1,15 * ? *)"), None).is_ok());
        // ... but the 1st and 2nd are consecutive.
        assert!(err(None, Some("cron(0 1,22 1,2 * ? *)"), None).contains("next day"));
    }

    #[test]
    fn parse_invalid_durations() {
        let e = |x: &str, d: &str| err(None, Some(x), Some(d));
        assert!(e("cron(0 10 * * ? *)", "25h").contains("at most 24h"));
        assert!(e("cron(0 10 * * ? *)", "100h").contains("at most 24h"));
        assert!(e("cron(0 10 * * ? *)", "0h").contains("at least 1h"));
        assert!(e("cron(0 10 * * ? *)", "2").contains("followed by h"));
        assert!(e("cron(0 10 * * ? *)", "h").contains("followed by h"));
        assert!(e("cron(0 10 * * ? *)", "").contains("followed by h"));
        assert!(e("cron(0 10 * * ? *)", "2H").contains("followed by h"));
        assert!(e("cron(0 10 * * ? *)", "-2h").contains("followed by h"));
        assert!(e("cron(0 10 * * ? *)", "2.5h").contains("followed by h"));
        let m = e("cron(0 22 * * ? *)", "3h");
        assert!(
            m.contains("starts at 22:00 UTC past the end of the UTC day"),
            "{m}"
        );
        let m = e("rate(4 hours)", "5h");
        assert!(m.contains("longer than the 4 hours between"), "{m}");
        assert!(e("cron(0 2/10 * * ? *)", "3h").contains("22:00 UTC past the end"));
        assert!(err(Some(5), None, Some("25h")).contains("at most 24h"));
        assert!(err(None, Some("rate(10 days)"), Some("2")).contains("followed by h"));
    }

    #[test]
    fn parse_valid_durations() {
        assert!(Schedule::parse(None, Some("rate(4 hours)"), Some("4h")).is_ok());
        assert!(Schedule::parse(None, Some("rate(12 hours)"), Some("12h")).is_ok());
        assert!(Schedule::parse(None, Some("cron(0 22 * * ? *)"), Some("2h")).is_ok());
        assert!(Schedule::parse(None, Some("cron(0 0 * * ? *)"), Some("24h")).is_ok());
        assert!(Schedule::parse(None, Some("cron(0 2/10 * * ? *)"), Some("2h")).is_ok());
        assert!(Schedule::parse(None, Some("rate(1 day)"), Some("24h")).is_ok());
        assert!(Schedule::parse(None, Some("rate(1 day)"), Some("01h")).is_ok());
        assert!(Schedule::parse(Some(30), None, Some("3h")).is_ok());
    }

    #[test]
    fn parse_equivalent_day_schedules_are_equal() {
        assert_eq!(
            Schedule::parse(Some(10), None, None),
            Schedule::parse(None, Some("rate(10 days)"), None)
        );
        assert_eq!(cron(" cron(0 10 * * ? *) "), cron("cron(0  10 *  * ? *)"));
    }

    // ---- documented cron examples ---------------------------------------------------------

    #[test]
    fn cron_every_eight_hours_from_midnight() {
        let s = cron("cron(0 /8 * * ? *)");
        assert_eq!(
            starts(&s, datetime!(2024-03-10 05:30 UTC), 4),
            [
                "2024-03-10T08/1",
                "2024-03-10T16/1",
                "2024-03-11T00/1",
                "2024-03-11T08/1"
            ]
        );
        assert_eq!(s.automatically_after_days(), 1);
    }

    #[test]
    fn cron_every_eight_hours_from_eight() {
        let s = cron("cron(0 8/8 * * ? *)");
        assert_eq!(
            starts(&s, datetime!(2024-03-10 17:00 UTC), 3),
            ["2024-03-11T08/1", "2024-03-11T16/1", "2024-03-12T08/1"]
        );
    }

    #[test]
    fn cron_every_ten_hours_resets_each_day() {
        let s = cron("cron(0 2/10 * * ? *)");
        assert_eq!(
            starts(&s, datetime!(2024-03-10 00:00 UTC), 4),
            [
                "2024-03-10T02/1",
                "2024-03-10T12/1",
                "2024-03-10T22/1",
                "2024-03-11T02/1"
            ]
        );
    }

    #[test]
    fn cron_daily_at_ten_runs_to_end_of_day() {
        let s = cron("cron(0 10 * * ? *)");
        let now = datetime!(2024-03-10 11:00 UTC);
        // The 10:00 window is still open at 11:00 (it closes at midnight).
        assert_eq!(
            s.next_window(ms(now), None),
            Some(w(
                datetime!(2024-03-10 10:00 UTC),
                datetime!(2024-03-11 00:00 UTC)
            ))
        );
        assert_eq!(s.automatically_after_days(), 1);
    }

    #[test]
    fn cron_every_saturday_evening() {
        let s = cron("cron(0 18 ? * SAT *)");
        // 2024-03-10 is a Sunday.
        assert_eq!(
            starts(&s, datetime!(2024-03-10 00:00 UTC), 2),
            ["2024-03-16T18/6", "2024-03-23T18/6"]
        );
        assert_eq!(s.automatically_after_days(), 7);
    }

    #[test]
    fn cron_first_of_month() {
        let s = cron("cron(0 8 1 * ? *)");
        assert_eq!(
            starts(&s, datetime!(2024-01-15 00:00 UTC), 3),
            ["2024-02-01T08/16", "2024-03-01T08/16", "2024-04-01T08/16"]
        );
        assert_eq!(s.automatically_after_days(), 28);
    }

    #[test]
    fn cron_first_sunday_every_three_months() {
        let s = cron("cron(0 1 ? 1/3 SUN#1 *)");
        assert_eq!(
            starts(&s, datetime!(2024-01-08 00:00 UTC), 4),
            [
                "2024-04-07T01/23",
                "2024-07-07T01/23",
                "2024-10-06T01/23",
                "2025-01-05T01/23"
            ]
        );
        assert_eq!(s.automatically_after_days(), 84);
    }

    #[test]
    fn cron_last_day_of_month_handles_february_and_leap_years() {
        let s = cron("cron(0 17 L * ? *)");
        assert_eq!(
            starts(&s, datetime!(2024-01-31 18:00 UTC), 4),
            [
                "2024-01-31T17/7",
                "2024-02-29T17/7",
                "2024-03-31T17/7",
                "2024-04-30T17/7"
            ]
        );
        assert_eq!(
            starts(&s, datetime!(2023-02-01 00:00 UTC), 1),
            ["2023-02-28T17/7"]
        );
        assert_eq!(s.automatically_after_days(), 28);
    }

    #[test]
    fn cron_weekdays() {
        let s = cron("cron(0 8 ? * MON-FRI *)");
        // Friday 2024-03-15 after the window opened: Fri (still open), then Mon, Tue.
        assert_eq!(
            starts(&s, datetime!(2024-03-15 09:00 UTC), 3),
            ["2024-03-15T08/16", "2024-03-18T08/16", "2024-03-19T08/16"]
        );
        assert_eq!(s.automatically_after_days(), 1);
    }

    #[test]
    fn cron_first_and_fifteenth_with_two_hour_window() {
        let s = cron_d("cron(0 16 1,15 * ? *)", "2h");
        assert_eq!(
            s.preview(ms(datetime!(2024-02-10 00:00 UTC)), None, 3),
            vec![
                w(
                    datetime!(2024-02-15 16:00 UTC),
                    datetime!(2024-02-15 18:00 UTC)
                ),
                w(
                    datetime!(2024-03-01 16:00 UTC),
                    datetime!(2024-03-01 18:00 UTC)
                ),
                w(
                    datetime!(2024-03-15 16:00 UTC),
                    datetime!(2024-03-15 18:00 UTC)
                ),
            ]
        );
        // The API reference's DescribeSecret example reports 14 for this schedule.
        assert_eq!(s.automatically_after_days(), 14);
        let next = s
            .next_window(ms(datetime!(2024-02-10 00:00 UTC)), None)
            .unwrap();
        assert_eq!(
            next.next_rotation_date_ms(),
            ms(datetime!(2024-02-15 17:59:59 UTC))
        );
    }

    #[test]
    fn cron_first_sunday_of_month_at_midnight() {
        let s = cron("cron(0 0 ? * SUN#1 *)");
        assert_eq!(
            starts(&s, datetime!(2024-03-04 00:00 UTC), 3),
            ["2024-04-07T00/24", "2024-05-05T00/24", "2024-06-02T00/24"]
        );
        assert_eq!(s.automatically_after_days(), 28);
    }

    // ---- other cron features --------------------------------------------------------------

    #[test]
    fn cron_thirty_first_skips_short_months() {
        let s = cron("cron(0 6 31 * ? *)");
        assert_eq!(
            starts(&s, datetime!(2024-01-31 12:00 UTC), 4),
            [
                "2024-01-31T06/18",
                "2024-03-31T06/18",
                "2024-05-31T06/18",
                "2024-07-31T06/18"
            ]
        );
        assert_eq!(s.automatically_after_days(), 31);
    }

    #[test]
    fn cron_leap_day_only() {
        let s = cron("cron(0 0 29 FEB ? *)");
        assert_eq!(
            starts(&s, datetime!(2025-01-01 00:00 UTC), 2),
            ["2028-02-29T00/24"]
        );
        // Four years apart, reported as the model's maximum.
        assert_eq!(s.automatically_after_days(), 1000);
    }

    #[test]
    fn cron_nearest_weekday() {
        // 2024-06-15 is a Saturday -> Friday the 14th; 2024-09-15 a Sunday -> Monday the 16th.
        let s = cron("cron(0 9 15W * ? *)");
        assert_eq!(
            starts(&s, datetime!(2024-06-01 00:00 UTC), 4),
            [
                "2024-06-14T09/15",
                "2024-07-15T09/15",
                "2024-08-15T09/15",
                "2024-09-16T09/15"
            ]
        );
        // 2024-06-01 is a Saturday: 1W moves forward to Monday the 3rd, not back into May.
        let s = cron("cron(0 9 1W * ? *)");
        assert_eq!(
            starts(&s, datetime!(2024-05-20 00:00 UTC), 1),
            ["2024-06-03T09/15"]
        );
        // Last weekday: 2024-03-31 is a Sunday -> Friday the 29th; 2024-08-31 a Saturday.
        let s = cron("cron(0 9 LW * ? *)");
        assert_eq!(
            starts(&s, datetime!(2024-03-01 00:00 UTC), 1),
            ["2024-03-29T09/15"]
        );
        assert_eq!(
            starts(&s, datetime!(2024-08-01 00:00 UTC), 1),
            ["2024-08-30T09/15"]
        );
    }

    #[test]
    fn cron_last_weekday_of_month_and_saturday_l() {
        let s = cron("cron(0 3 ? * SUNL *)");
        assert_eq!(
            starts(&s, datetime!(2024-03-01 00:00 UTC), 2),
            ["2024-03-31T03/21", "2024-04-28T03/21"]
        );
        let s = cron("cron(0 3 ? * 6L *)");
        assert_eq!(
            starts(&s, datetime!(2024-02-01 00:00 UTC), 1),
            ["2024-02-23T03/21"]
        );
        let s = cron("cron(0 3 ? * L *)");
        assert_eq!(
            starts(&s, datetime!(2024-03-10 00:00 UTC), 1),
            ["2024-03-16T03/21"]
        );
    }

    #[test]
    fn cron_third_tuesday() {
        let s = cron("cron(0 10 ? * TUE#3 *)");
        assert_eq!(
            starts(&s, datetime!(2024-03-01 00:00 UTC), 2),
            ["2024-03-19T10/14", "2024-04-16T10/14"]
        );
        // 5th Friday only exists in some months.
        let s = cron("cron(0 10 ? * 6#5 *)");
        assert_eq!(
            starts(&s, datetime!(2024-01-01 00:00 UTC), 2),
            ["2024-03-29T10/14", "2024-05-31T10/14"]
        );
    }

    #[test]
    fn cron_quarterly_second_tuesday_with_names() {
        let s = cron("cron(0 10 ? FEB,MAY,AUG,NOV TUE#2 *)");
        assert_eq!(
            starts(&s, datetime!(2024-12-03 00:00 UTC), 1),
            ["2025-02-11T10/14"]
        );
    }

    // ---- rate() ---------------------------------------------------------------------------

    #[test]
    fn rate_four_hours_from_midnight() {
        let s = Schedule::parse(None, Some("rate(4 hours)"), None).unwrap();
        assert_eq!(
            starts(&s, datetime!(2024-03-10 21:00 UTC), 3),
            ["2024-03-11T00/1", "2024-03-11T04/1", "2024-03-11T08/1"]
        );
        assert_eq!(s.automatically_after_days(), 1);
    }

    #[test]
    fn rate_twelve_hours() {
        let s = Schedule::parse(None, Some("rate(12 hours)"), None).unwrap();
        assert_eq!(
            starts(&s, datetime!(2024-03-10 00:30 UTC), 3),
            ["2024-03-10T00/1", "2024-03-10T12/1", "2024-03-11T00/1"]
        );
    }

    #[test]
    fn rate_hours_not_dividing_a_day_restart_at_midnight() {
        let s = Schedule::parse(None, Some("rate(10 hours)"), None).unwrap();
        assert_eq!(
            starts(&s, datetime!(2024-03-10 01:00 UTC), 3),
            ["2024-03-10T10/1", "2024-03-10T20/1", "2024-03-11T00/1"]
        );
    }

    #[test]
    fn rate_one_day_anchored_on_last_rotation() {
        let s = Schedule::parse(None, Some("rate(1 day)"), None).unwrap();
        let last = ms(datetime!(2024-03-10 15:42 UTC));
        assert_eq!(
            s.next_window(ms(datetime!(2024-03-10 16:00 UTC)), Some(last)),
            Some(w(
                datetime!(2024-03-11 00:00 UTC),
                datetime!(2024-03-12 00:00 UTC)
            ))
        );
        assert_eq!(s.automatically_after_days(), 1);
    }

    #[test]
    fn rate_ten_days_preview_and_duration() {
        let s = Schedule::parse(None, Some("rate(10 days)"), Some("3h")).unwrap();
        let last = ms(datetime!(2024-02-25 09:00 UTC));
        assert_eq!(
            s.preview(ms(datetime!(2024-02-26 00:00 UTC)), Some(last), 2),
            vec![
                w(
                    datetime!(2024-03-06 00:00 UTC),
                    datetime!(2024-03-06 03:00 UTC)
                ),
                w(
                    datetime!(2024-03-16 00:00 UTC),
                    datetime!(2024-03-16 03:00 UTC)
                ),
            ]
        );
        assert_eq!(s.automatically_after_days(), 10);
    }

    // ---- AutomaticallyAfterDays -----------------------------------------------------------

    #[test]
    fn days_thirty_anchored_on_last_rotation() {
        let s = Schedule::parse(Some(30), None, None).unwrap();
        let last = ms(datetime!(2024-01-20 13:14:15 UTC));
        let now = ms(datetime!(2024-01-21 00:00 UTC));
        let next = s.next_window(now, Some(last)).unwrap();
        // 2024 is a leap year: 2024-01-20 + 30 days = 2024-02-19.
        assert_eq!(
            next,
            w(
                datetime!(2024-02-19 00:00 UTC),
                datetime!(2024-02-20 00:00 UTC)
            )
        );
        assert_eq!(
            next.next_rotation_date_ms(),
            ms(datetime!(2024-02-19 23:59:59 UTC))
        );
        assert_eq!(s.automatically_after_days(), 30);
        // Still inside that window: the same window.
        let inside = ms(datetime!(2024-02-19 23:00 UTC));
        assert_eq!(s.next_window(inside, Some(last)), Some(next));
    }

    #[test]
    fn days_without_last_rotation_anchor_on_today() {
        // Real DescribeSecret output: RotateSecret on 2026-02-03 with AutomaticallyAfterDays 30
        // reported NextRotationDate 2026-03-05T23:59:59Z.
        let s = Schedule::parse(Some(30), None, None).unwrap();
        let now = ms(datetime!(2026-02-03 17:42:24 UTC));
        let next = s.next_window(now, None).unwrap();
        assert_eq!(
            next.next_rotation_date_ms(),
            ms(datetime!(2026-03-05 23:59:59 UTC))
        );
    }

    #[test]
    fn days_missed_window_moves_to_the_next_period() {
        let s = Schedule::parse(Some(30), None, None).unwrap();
        let last = ms(datetime!(2024-01-01 10:00 UTC));
        let now = ms(datetime!(2024-03-05 00:00 UTC));
        // Windows on 01-31 and 03-01 have passed; the next one is 03-31.
        assert_eq!(
            s.next_window(now, Some(last)),
            Some(w(
                datetime!(2024-03-31 00:00 UTC),
                datetime!(2024-04-01 00:00 UTC)
            ))
        );
        // Exactly at the end of a window: that window is over.
        let end = ms(datetime!(2024-02-01 00:00 UTC));
        assert_eq!(
            s.next_window(end, Some(last)).map(|w| w.start_ms),
            Some(ms(datetime!(2024-03-01 00:00 UTC)))
        );
    }

    #[test]
    fn days_preview_is_consecutive_periods() {
        let s = Schedule::parse(Some(100), None, None).unwrap();
        let v = s.preview(0, Some(0), 3);
        assert_eq!(v.len(), 3);
        assert_eq!(v[0].start_ms, 100 * DAY_MS);
        assert_eq!(v[2].start_ms, 300 * DAY_MS);
        assert!(v.iter().all(|w| w.end_ms - w.start_ms == DAY_MS));
        assert!(s.preview(0, None, 0).is_empty());
    }

    #[test]
    fn preview_of_huge_count_is_bounded_by_horizon() {
        let now = ms(datetime!(2024-01-01 00:00 UTC));
        let daily = Schedule::parse(Some(1), None, None).unwrap();
        let v = daily.preview(now, None, usize::MAX);
        assert!((1825..=1831).contains(&v.len()), "{}", v.len());
        let slow = Schedule::parse(Some(1000), None, None).unwrap();
        assert_eq!(slow.preview(now, None, usize::MAX).len(), 1);
        let hourly = Schedule::parse(None, Some("rate(4 hours)"), None).unwrap();
        assert_eq!(hourly.preview(now, None, usize::MAX).len(), 6 * 5 * 366);
    }

    #[test]
    fn days_extreme_times_do_not_overflow() {
        let s = Schedule::parse(Some(1000), None, None).unwrap();
        assert_eq!(s.next_window(i64::MAX, None), None);
        assert!(s.next_window(i64::MIN, None).is_some());
        let c = cron("cron(0 0 * * ? *)");
        assert_eq!(c.next_window(i64::MAX, None), None);
        assert_eq!(c.next_window(i64::MIN, None), None);
    }

    // ---- calendar anchoring and last rotation ---------------------------------------------

    #[test]
    fn cron_skips_window_already_rotated_in() {
        // Real DescribeSecret output: cron(0 0 ? * 2 *), rotated Monday 2023-10-16T07:18:02Z,
        // AutomaticallyAfterDays 7, NextRotationDate 2023-10-23T23:59:59Z.
        let s = cron("cron(0 0 ? * 2 *)");
        let last = ms(datetime!(2023-10-16 07:18:02.417 UTC));
        let next = s.next_window(last + 1, Some(last)).unwrap();
        assert_eq!(
            next.next_rotation_date_ms(),
            ms(datetime!(2023-10-23 23:59:59 UTC))
        );
        assert_eq!(s.automatically_after_days(), 7);
        // Without the last rotation the still-open Monday window is next.
        let open = s.next_window(last + 1, None).unwrap();
        assert_eq!(open.start_ms, ms(datetime!(2023-10-16 00:00 UTC)));
    }

    #[test]
    fn cron_last_rotation_before_window_does_not_skip_it() {
        let s = cron_d("cron(0 16 1,15 * ? *)", "2h");
        let last = ms(datetime!(2024-03-15 15:59 UTC));
        let next = s
            .next_window(ms(datetime!(2024-03-15 16:30 UTC)), Some(last))
            .unwrap();
        assert_eq!(next.start_ms, ms(datetime!(2024-03-15 16:00 UTC)));
    }

    #[test]
    fn cron_window_boundaries() {
        let s = cron("cron(0 /8 * * ? *)");
        let at_end = ms(datetime!(2024-03-10 09:00 UTC));
        assert_eq!(
            s.next_window(at_end, None).map(|w| w.start_ms),
            Some(ms(datetime!(2024-03-10 16:00 UTC)))
        );
        let at_start = ms(datetime!(2024-03-10 08:00 UTC));
        assert_eq!(
            s.next_window(at_start, None).map(|w| w.start_ms),
            Some(at_start)
        );
    }

    #[test]
    fn preview_of_hourly_schedule_spans_days() {
        let s = Schedule::parse(None, Some("rate(6 hours)"), Some("2h")).unwrap();
        let v = s.preview(ms(datetime!(2024-03-10 00:00 UTC)), None, 9);
        assert_eq!(v.len(), 9);
        assert_eq!(v[8].start_ms, ms(datetime!(2024-03-12 00:00 UTC)));
        assert!(v.iter().all(|w| w.end_ms - w.start_ms == 2 * HOUR_MS));
        assert!(v
            .windows(2)
            .all(|p| p[1].start_ms - p[0].end_ms >= 2 * HOUR_MS));
    }

    #[test]
    fn preview_is_capped_near_five_years() {
        let s = cron("cron(0 0 29 2 ? *)");
        let v = s.preview(ms(datetime!(2024-03-01 00:00 UTC)), None, 10);
        assert_eq!(v.len(), 1);
        assert_eq!(fmt(v[0].start_ms), "2028-02-29T00");
    }

    // ---- Window ---------------------------------------------------------------------------

    #[test]
    fn random_instant_stays_inside_window() {
        let win = w(
            datetime!(2024-02-15 16:00 UTC),
            datetime!(2024-02-15 18:00 UTC),
        );
        let mut rng = StdRng::seed_from_u64(7);
        let mut min = i64::MAX;
        let mut max = i64::MIN;
        for _ in 0..2000 {
            let t = win.random_instant(&mut rng);
            assert!((win.start_ms..=win.next_rotation_date_ms()).contains(&t));
            min = min.min(t);
            max = max.max(t);
        }
        // Spread over the window rather than stuck at one end.
        assert!(min < win.start_ms + 10 * 60_000 && max > win.end_ms - 10 * 60_000);
        let empty = Window {
            start_ms: 5,
            end_ms: 5,
        };
        assert_eq!(empty.random_instant(&mut rng), 5);
    }

    #[test]
    fn next_rotation_date_is_last_second_of_window() {
        let win = w(
            datetime!(2022-10-07 16:00 UTC),
            datetime!(2022-10-07 18:00 UTC),
        );
        // The API reference example's NextRotationDate: 1665165599 = 2022-10-07T17:59:59Z.
        assert_eq!(win.next_rotation_date_ms(), 1_665_165_599_000);
    }

    #[test]
    fn windows_never_cross_midnight_or_overlap() {
        let cases = [
            ("cron(0 /8 * * ? *)", None),
            ("cron(0 2/10 * * ? *)", Some("2h")),
            ("cron(0 10 * * ? *)", None),
            ("cron(0 16 1,15 * ? *)", Some("2h")),
            ("cron(0 4/12 * * ? *)", Some("8h")),
            ("rate(5 hours)", Some("4h")),
        ];
        for (expr, duration) in cases {
            let s = Schedule::parse(None, Some(expr), duration).unwrap();
            let v = s.preview(ms(datetime!(2024-01-01 00:00 UTC)), None, 200);
            for win in &v {
                assert_eq!(win.start_ms % HOUR_MS, 0, "{expr}");
                assert!(
                    epoch_day(win.start_ms) == epoch_day(win.end_ms - 1),
                    "{expr}"
                );
            }
            for pair in v.windows(2) {
                assert!(pair[0].end_ms <= pair[1].start_ms, "{expr}");
                assert!(pair[1].start_ms - pair[0].start_ms >= 4 * HOUR_MS, "{expr}");
            }
        }
    }
}
