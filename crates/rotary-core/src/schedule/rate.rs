//! `rate(<value> <unit>)` expressions.
//!
//! See: <https://docs.aws.amazon.com/secretsmanager/latest/userguide/rotate-secrets_schedule.html>
//! (unit `hour`, `hours`, `day` or `days`; "as often as every four hours"; "The maximum rotation
//! period is 999 days").

use super::ScheduleError;

/// Shortest allowed `rate()` interval in hours.
pub(super) const MIN_RATE_HOURS: u32 = 4;
/// Longest `rate()` interval in hours; hour rates restart at midnight every day, so anything
/// longer is better written in days.
pub(super) const MAX_RATE_HOURS: u32 = 23;
/// Longest `rate()` interval in days (AWS user guide: "The maximum rotation period is 999 days").
pub(super) const MAX_RATE_DAYS: u32 = 999;

/// A parsed `rate()` expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rate {
    /// `rate(N hours)`: windows every N hours from 00:00 UTC, restarting each day.
    Hours(u32),
    /// `rate(N days)`: a window N days after the last rotation.
    Days(u32),
}

/// Parses the text between `rate(` and `)`; `expr` is the whole expression, for messages.
pub(super) fn parse(expr: &str, inner: &str) -> Result<Rate, ScheduleError> {
    let err = |msg: String| ScheduleError::new(format!("Invalid ScheduleExpression {expr}: {msg}"));
    let parts: Vec<&str> = inner.split_whitespace().collect();
    let [value, unit] = parts.as_slice() else {
        return Err(err(
            "a rate expression must be rate(<value> <unit>) with a positive whole number and a \
             unit of hours or days, for example rate(12 hours) or rate(10 days)."
                .to_owned(),
        ));
    };
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err(format!(
            "the rate value must be a positive whole number; got \"{value}\"."
        )));
    }
    // All digits, so the only failure left is overflow.
    let value: u32 = value.parse().map_err(|_| {
        err(format!(
            "the rate value {value} is too large; the longest interval is rate({MAX_RATE_DAYS} \
             days)."
        ))
    })?;
    if value == 0 {
        return Err(err(
            "the rate value must be a positive whole number; got 0.".to_owned(),
        ));
    }
    match unit.to_ascii_lowercase().as_str() {
        "hour" | "hours" => {
            if value < MIN_RATE_HOURS {
                Err(err(format!(
                    "Secrets Manager can rotate a secret at most every {MIN_RATE_HOURS} hours; \
                     use rate({MIN_RATE_HOURS} hours) or longer."
                )))
            } else if value > MAX_RATE_HOURS {
                Err(err(format!(
                    "a rate in hours must be at most {MAX_RATE_HOURS} hours (hour rates restart \
                     at midnight UTC each day); use a rate in days for longer intervals."
                )))
            } else {
                Ok(Rate::Hours(value))
            }
        }
        "day" | "days" => {
            if value > MAX_RATE_DAYS {
                Err(err(format!(
                    "a rate in days must be at most {MAX_RATE_DAYS} days."
                )))
            } else {
                Ok(Rate::Days(value))
            }
        }
        "minute" | "minutes" => Err(err(format!(
            "Secrets Manager does not support rates in minutes; the shortest interval is \
             rate({MIN_RATE_HOURS} hours)."
        ))),
        other => Err(err(format!(
            "the rate unit must be hour, hours, day or days; got \"{other}\"."
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(inner: &str) -> Result<Rate, ScheduleError> {
        parse(&format!("rate({inner})"), inner)
    }

    #[test]
    fn parse_documented_examples() {
        assert_eq!(p("4 hours"), Ok(Rate::Hours(4)));
        assert_eq!(p("12 hours"), Ok(Rate::Hours(12)));
        assert_eq!(p("1 day"), Ok(Rate::Days(1)));
        assert_eq!(p("10 days"), Ok(Rate::Days(10)));
        assert_eq!(p("8 days"), Ok(Rate::Days(8)));
    }

    #[test]
    fn parse_accepts_either_unit_number_and_extra_spaces() {
        assert_eq!(p("1 days"), Ok(Rate::Days(1)));
        assert_eq!(p("5 hour"), Ok(Rate::Hours(5)));
        assert_eq!(p("  6   hours "), Ok(Rate::Hours(6)));
        assert_eq!(p("999 days"), Ok(Rate::Days(999)));
        assert_eq!(p("23 hours"), Ok(Rate::Hours(23)));
    }

    #[test]
    fn parse_rejects_bad_rates_with_specific_messages() {
        let msg = |s: &str| p(s).unwrap_err().message;
        assert!(
            msg("3 hours").contains("at most every 4 hours"),
            "{}",
            msg("3 hours")
        );
        assert!(msg("0 days").contains("got 0"));
        assert!(msg("1 minute").contains("minutes"));
        assert!(msg("5 minutes").contains("minutes"));
        assert!(msg("1000 days").contains("at most 999 days"));
        assert!(msg("24 hours").contains("at most 23 hours"));
        assert!(msg("-1 days").contains("positive whole number"));
        assert!(msg("1.5 days").contains("positive whole number"));
        assert!(msg("99999999999 days").contains("too large"));
        assert!(msg("10 weeks").contains("got \"weeks\""));
        assert!(msg("10").contains("rate(<value> <unit>)"));
        assert!(msg("").contains("rate(<value> <unit>)"));
        assert!(msg("1 day extra").contains("rate(<value> <unit>)"));
        assert!(msg("days 10").contains("positive whole number"));
    }
}
