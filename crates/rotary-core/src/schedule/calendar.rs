//! Calendar-anchored schedules (`cron()` and `rate(N hours)`): which UTC days fire, at which
//! hours, and the window rules that depend on them.
//!
//! Days are counted as "epoch days" (whole UTC days since 1970-01-01, as `i64`), which keeps
//! the arithmetic in plain integers; `time` is only used to turn an epoch day into a
//! year/month/day/weekday.

use time::{Date, Month};

use super::ScheduleError;

/// One hour in milliseconds.
pub(super) const HOUR_MS: i64 = 3_600_000;
/// One UTC day in milliseconds (Unix time has no leap seconds).
pub(super) const DAY_MS: i64 = 24 * HOUR_MS;
/// How far ahead window searches look before giving up (about five years).
pub(super) const SEARCH_DAYS: i64 = 5 * 366;
/// Minimum distance between two window starts, in hours (AWS: "as often as every four hours").
pub(super) const MIN_GAP_HOURS: u32 = 4;

/// Julian day number of 1970-01-01.
const UNIX_EPOCH_JULIAN_DAY: i64 = 2_440_588;
/// Epoch day of 2001-01-01. Weekdays and leap years repeat every 28 years between 1901 and
/// 2099, so scanning 2001..=2028 sees every (leap year, weekday of 1 January) combination.
const CYCLE_START_DAY: i64 = 11_323;
/// Number of days in the 28-year cycle 2001..=2028 (7 leap years).
const CYCLE_DAYS: i64 = 28 * 365 + 7;

/// A calendar schedule: windows open at every hour in `hours` on every day that matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Calendar {
    /// Bit `h` set: a window opens at `h`:00 UTC on each matching day (h in 0..=23).
    pub(super) hours: u32,
    /// Bit `m` set: month `m` matches (m in 1..=12).
    pub(super) months: u16,
    /// The day-of-month or day-of-week rule (exactly one of the two cron fields is `?`).
    pub(super) days: DayRule,
}

/// Which field of the cron expression selects days.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum DayRule {
    /// Day-of-month is set and day-of-week is `?`.
    Month(DomRule),
    /// Day-of-week is set and day-of-month is `?`.
    Week(DowRule),
}

/// Day-of-month selection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct DomRule {
    /// Bit `d` set: day `d` (1..=31); days past the end of a month never match.
    pub(super) days: u32,
    /// `L`: the last day of the month.
    pub(super) last: bool,
    /// `LW`: the last weekday (Monday to Friday) of the month.
    pub(super) last_weekday: bool,
    /// Bit `d` set (`dW`): the weekday nearest to day `d`, without leaving the month.
    pub(super) nearest_weekday: u32,
}

/// Day-of-week selection, weekdays numbered 1 = Sunday .. 7 = Saturday.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct DowRule {
    /// Bit `w` set: every weekday `w`.
    pub(super) days: u8,
    /// Bit `w` set (`wL`): the last weekday `w` of the month.
    pub(super) last: u8,
    /// `nth[w]` bit `n` set (`w#n`): the `n`-th weekday `w` of the month (n in 1..=5).
    pub(super) nth: [u8; 8],
}

/// What a scan of the whole 28-year calendar cycle found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Cycle {
    /// Whether any day matches at all.
    pub(super) fires: bool,
    /// Whether two consecutive days can both match.
    pub(super) consecutive_days: bool,
    /// Smallest number of days between two consecutive matching days (0 if fewer than two).
    pub(super) min_gap_days: i64,
}

impl Calendar {
    /// The start hours in ascending order.
    pub(super) fn start_hours(&self) -> Vec<u32> {
        (0..24).filter(|h| self.hours & (1 << h) != 0).collect()
    }

    /// Whether windows open more than once on a matching day ("a schedule in hours").
    pub(super) fn in_hours(&self) -> bool {
        self.hours.count_ones() > 1
    }

    /// Whether the UTC day `epoch_day` matches the month and day rules.
    pub(super) fn matches_day(&self, epoch_day: i64) -> bool {
        let Some(date) = date_of(epoch_day) else {
            return false;
        };
        let month = date.month();
        if self.months & (1 << u8::from(month)) == 0 {
            return false;
        }
        let day = date.day();
        let len = month_length(month, date.year());
        let weekday = date.weekday().number_from_sunday();
        match &self.days {
            DayRule::Month(rule) => rule.matches(day, len, weekday),
            DayRule::Week(rule) => rule.matches(day, len, weekday),
        }
    }

    /// Window start times (ms) from the first hour of `first_day` onwards, in order, looking at
    /// no more than [`SEARCH_DAYS`] days.
    pub(super) fn starts_from(&self, first_day: i64) -> Starts<'_> {
        Starts {
            calendar: self,
            next_day: first_day,
            end_day: first_day.saturating_add(SEARCH_DAYS),
            current_day: first_day,
            hours_left: 0,
        }
    }

    /// Scans one 28-year cycle; used at parse time for validation and the computed
    /// `AutomaticallyAfterDays`.
    pub(super) fn cycle(&self) -> Cycle {
        let mut previous: Option<i64> = None;
        let mut cycle = Cycle {
            fires: false,
            consecutive_days: false,
            min_gap_days: 0,
        };
        // One extra month so the gap across the end of the cycle (December -> January) counts.
        for day in CYCLE_START_DAY..CYCLE_START_DAY + CYCLE_DAYS + 31 {
            if !self.matches_day(day) {
                continue;
            }
            cycle.fires = true;
            if let Some(prev) = previous {
                let gap = day - prev;
                if gap == 1 {
                    cycle.consecutive_days = true;
                }
                if cycle.min_gap_days == 0 || gap < cycle.min_gap_days {
                    cycle.min_gap_days = gap;
                }
            }
            previous = Some(day);
        }
        cycle
    }

    /// Enforces "windows at least four hours apart" (within a day, and from the last window of
    /// a day to the first window of the next day when two consecutive days can match).
    pub(super) fn check_spacing(&self, expr: &str, cycle: Cycle) -> Result<(), ScheduleError> {
        let hours = self.start_hours();
        for pair in hours.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            if b - a < MIN_GAP_HOURS {
                return Err(ScheduleError::new(format!(
                    "Invalid ScheduleExpression {expr}: rotation windows must be at least \
                     {MIN_GAP_HOURS} hours apart, but the windows at {a:02}:00 and {b:02}:00 UTC \
                     are {} apart.",
                    plural_hours(b - a)
                )));
            }
        }
        if let (Some(&first), Some(&last)) = (hours.first(), hours.last()) {
            let wrap = 24 - last + first;
            if hours.len() > 1 && cycle.consecutive_days && wrap < MIN_GAP_HOURS {
                return Err(ScheduleError::new(format!(
                    "Invalid ScheduleExpression {expr}: rotation windows must be at least \
                     {MIN_GAP_HOURS} hours apart, but the window at {last:02}:00 UTC and the \
                     {first:02}:00 UTC window of the next day are {} apart.",
                    plural_hours(wrap)
                )));
            }
        }
        Ok(())
    }

    /// Enforces the `Duration` rules: the window must not reach into the next window of the
    /// same day, nor past the end of the UTC day.
    pub(super) fn check_duration(&self, duration_hours: u32) -> Result<(), ScheduleError> {
        let hours = self.start_hours();
        for pair in hours.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            if duration_hours > b - a {
                return Err(ScheduleError::new(format!(
                    "RotationRules.Duration {duration_hours}h is longer than the {} between the \
                     rotation windows at {a:02}:00 and {b:02}:00 UTC; a rotation window must not \
                     extend into the next rotation window.",
                    plural_hours(b - a)
                )));
            }
        }
        if let Some(&last) = hours.last() {
            if last + duration_hours > 24 {
                return Err(ScheduleError::new(format!(
                    "RotationRules.Duration {duration_hours}h would extend the rotation window \
                     that starts at {last:02}:00 UTC past the end of the UTC day; the start hour \
                     plus the duration must be at most 24 hours."
                )));
            }
        }
        Ok(())
    }
}

impl DomRule {
    fn matches(&self, day: u8, len: u8, weekday: u8) -> bool {
        if self.days & (1 << day) != 0 {
            return true;
        }
        if self.last && day == len {
            return true;
        }
        let weekday_of = |d: u8| weekday_of(day, weekday, d);
        if self.last_weekday && day == nearest_weekday(len, len, weekday_of(len)) {
            return true;
        }
        if self.nearest_weekday != 0 {
            for target in 1..=len {
                if self.nearest_weekday & (1 << target) != 0
                    && day == nearest_weekday(target, len, weekday_of(target))
                {
                    return true;
                }
            }
        }
        false
    }
}

impl DowRule {
    fn matches(&self, day: u8, len: u8, weekday: u8) -> bool {
        let bit = 1u8 << weekday;
        if self.days & bit != 0 {
            return true;
        }
        if self.last & bit != 0 && day + 7 > len {
            return true;
        }
        let nth = (day - 1) / 7 + 1;
        self.nth[usize::from(weekday)] & (1 << nth) != 0
    }
}

/// Iterator over window start times of a [`Calendar`], in milliseconds since the epoch.
#[derive(Debug)]
pub(super) struct Starts<'a> {
    calendar: &'a Calendar,
    /// The next day to test.
    next_day: i64,
    /// The first day not to test.
    end_day: i64,
    /// The matching day whose hours are being yielded.
    current_day: i64,
    /// Hours of `current_day` not yet yielded.
    hours_left: u32,
}

impl Iterator for Starts<'_> {
    type Item = i64;

    fn next(&mut self) -> Option<i64> {
        loop {
            if self.hours_left != 0 {
                let hour = i64::from(self.hours_left.trailing_zeros());
                self.hours_left &= self.hours_left - 1;
                return self
                    .current_day
                    .checked_mul(DAY_MS)?
                    .checked_add(hour * HOUR_MS);
            }
            if self.next_day >= self.end_day {
                return None;
            }
            let day = self.next_day;
            self.next_day += 1;
            if self.calendar.matches_day(day) {
                self.current_day = day;
                self.hours_left = self.calendar.hours;
            }
        }
    }
}

/// The UTC date of an epoch day, or `None` outside `time`'s range.
fn date_of(epoch_day: i64) -> Option<Date> {
    let julian = i32::try_from(epoch_day.checked_add(UNIX_EPOCH_JULIAN_DAY)?).ok()?;
    Date::from_julian_day(julian).ok()
}

/// The epoch day (whole UTC days since 1970-01-01) containing `ms`.
pub(super) fn epoch_day(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS)
}

/// Number of days in `month` of `year`.
fn month_length(month: Month, year: i32) -> u8 {
    month.length(year)
}

/// Weekday (1 = Sunday .. 7 = Saturday) of day `target` in the month, given that day `day`
/// falls on `weekday`.
fn weekday_of(day: u8, weekday: u8, target: u8) -> u8 {
    let offset = (i16::from(target) - i16::from(day)).rem_euclid(7);
    // `offset` is in 0..7, so the sum is in 1..=13 and the result in 1..=7.
    let w = i16::from(weekday) + offset;
    u8::try_from((w - 1) % 7 + 1).unwrap_or(1)
}

/// The weekday (Monday to Friday) nearest to day `target`, never leaving the month (Quartz /
/// EventBridge `W`): a Saturday moves back to Friday unless it is the 1st (then forward to
/// Monday the 3rd); a Sunday moves forward to Monday unless it is the last day (then back to
/// Friday).
fn nearest_weekday(target: u8, len: u8, target_weekday: u8) -> u8 {
    match target_weekday {
        7 if target == 1 => 3,
        7 => target - 1,
        1 if target == len => target - 2,
        1 => target + 1,
        _ => target,
    }
}

/// "1 hour" / "N hours".
pub(super) fn plural_hours(n: u32) -> String {
    if n == 1 {
        "1 hour".to_owned()
    } else {
        format!("{n} hours")
    }
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    fn day(d: Date) -> i64 {
        i64::from(d.to_julian_day()) - UNIX_EPOCH_JULIAN_DAY
    }

    #[test]
    fn epoch_constants_match_the_calendar() {
        assert_eq!(day(date!(1970 - 01 - 01)), 0);
        assert_eq!(day(date!(2001 - 01 - 01)), CYCLE_START_DAY);
        assert_eq!(day(date!(2029 - 01 - 01)) - CYCLE_START_DAY, CYCLE_DAYS);
        assert_eq!(date_of(0), Some(date!(1970 - 01 - 01)));
        assert_eq!(epoch_day(-1), -1);
        assert_eq!(epoch_day(DAY_MS), 1);
    }

    #[test]
    fn weekday_of_other_days_in_month() {
        // 2024-03-01 is a Friday (6); 2024-03-03 a Sunday (1); 2024-02-26 a Monday.
        assert_eq!(weekday_of(1, 6, 3), 1);
        assert_eq!(weekday_of(1, 6, 1), 6);
        assert_eq!(weekday_of(3, 1, 1), 6);
        assert_eq!(weekday_of(31, 1, 1), 6);
    }

    #[test]
    fn nearest_weekday_stays_in_month() {
        assert_eq!(nearest_weekday(1, 30, 7), 3); // Saturday the 1st -> Monday the 3rd
        assert_eq!(nearest_weekday(15, 30, 7), 14);
        assert_eq!(nearest_weekday(15, 30, 1), 16);
        assert_eq!(nearest_weekday(30, 30, 1), 28); // Sunday the last -> Friday
        assert_eq!(nearest_weekday(10, 30, 4), 10);
    }

    #[test]
    fn starts_iterates_hours_then_days() {
        let cal = Calendar {
            hours: (1 << 2) | (1 << 12),
            months: 0b1_1111_1111_1110,
            days: DayRule::Month(DomRule {
                days: 1 << 1,
                ..DomRule::default()
            }),
        };
        let first = day(date!(2024 - 01 - 01));
        let starts: Vec<i64> = cal.starts_from(first).take(3).collect();
        let feb = day(date!(2024 - 02 - 01));
        assert_eq!(
            starts,
            vec![
                first * DAY_MS + 2 * HOUR_MS,
                first * DAY_MS + 12 * HOUR_MS,
                feb * DAY_MS + 2 * HOUR_MS
            ]
        );
    }

    #[test]
    fn starts_gives_up_after_search_horizon() {
        let never = Calendar {
            hours: 1,
            months: 1 << 2,
            days: DayRule::Month(DomRule {
                days: 1 << 30,
                ..DomRule::default()
            }),
        };
        assert_eq!(never.starts_from(0).next(), None);
        assert!(!never.cycle().fires);
    }

    #[test]
    fn starts_stops_outside_time_range() {
        let every = Calendar {
            hours: 1,
            months: 0b1_1111_1111_1110,
            days: DayRule::Month(DomRule {
                days: u32::MAX,
                ..DomRule::default()
            }),
        };
        assert_eq!(every.starts_from(i64::MAX / DAY_MS).next(), None);
        assert_eq!(every.starts_from(i64::MAX - 10).next(), None);
    }

    /// Independent, naive day predicates (walking dates with `time`) for the special cron
    /// forms, checked against `matches_day` for every day of 2001..=2030.
    #[test]
    fn matches_day_agrees_with_naive_predicates() {
        use time::{Duration, Weekday};

        use super::super::cron;

        fn is_weekend(d: Date) -> bool {
            matches!(d.weekday(), Weekday::Saturday | Weekday::Sunday)
        }
        fn is_last(d: Date) -> bool {
            (d + Duration::days(1)).month() != d.month()
        }
        // Weekday nearest to `target` in d's month, found by searching outwards.
        fn nearest(d: Date, target: u8) -> Option<u8> {
            let t = d.replace_day(target).ok()?;
            if !is_weekend(t) {
                return Some(target);
            }
            for delta in 1..=3i64 {
                for cand in [t - Duration::days(delta), t + Duration::days(delta)] {
                    if cand.month() == t.month() && !is_weekend(cand) {
                        return Some(cand.day());
                    }
                }
            }
            None
        }
        type Pred = Box<dyn Fn(Date) -> bool>;
        let cases: Vec<(&str, Pred)> = vec![
            ("0 0 L * ? *", Box::new(is_last)),
            (
                "0 0 LW * ? *",
                Box::new(|d| {
                    !is_weekend(d)
                        && (1..=3).all(|k| {
                            let n = d + Duration::days(k);
                            n.month() != d.month() || is_weekend(n)
                        })
                }),
            ),
            (
                "0 0 15W * ? *",
                Box::new(|d| nearest(d, 15) == Some(d.day())),
            ),
            ("0 0 1W * ? *", Box::new(|d| nearest(d, 1) == Some(d.day()))),
            (
                "0 0 31W * ? *",
                Box::new(|d| nearest(d, 31) == Some(d.day())),
            ),
            (
                "0 0 ? * SUN#1 *",
                Box::new(|d| d.weekday() == Weekday::Sunday && d.day() <= 7),
            ),
            (
                "0 0 ? 1/3 TUE#3 *",
                Box::new(|d| {
                    d.weekday() == Weekday::Tuesday
                        && (15..=21).contains(&d.day())
                        && matches!(u8::from(d.month()), 1 | 4 | 7 | 10)
                }),
            ),
            (
                "0 0 ? * 6L *",
                Box::new(|d| {
                    d.weekday() == Weekday::Friday && (d + Duration::days(7)).month() != d.month()
                }),
            ),
            ("0 0 ? * MON-FRI *", Box::new(|d| !is_weekend(d))),
            (
                "0 0 29 2 ? *",
                Box::new(|d| u8::from(d.month()) == 2 && d.day() == 29),
            ),
            (
                "0 0 1/10 * ? *",
                Box::new(|d| matches!(d.day(), 1 | 11 | 21 | 31)),
            ),
        ];
        for (expr, expected) in cases {
            let cal = cron::parse(expr, expr).unwrap();
            let mut d = date!(2001 - 01 - 01);
            while d.year() <= 2030 {
                assert_eq!(cal.matches_day(day(d)), expected(d), "{expr} on {d}");
                d = d.next_day().unwrap();
            }
        }
    }
}
