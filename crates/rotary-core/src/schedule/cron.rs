//! `cron(Minutes Hours Day-of-month Month Day-of-week Year)` expressions, EventBridge style.
//!
//! Secrets Manager restricts EventBridge cron: Minutes must be `0` (windows open on the hour)
//! and Year must be `*`; exactly one of Day-of-month and Day-of-week is `?`. Supported syntax:
//! `,` lists, `-` ranges (names allowed, e.g. `MON-FRI`; a backwards range such as `22-2` wraps
//! around as in Quartz), `*`, `/` increments (`4/12`, `*/6`, and `/8` meaning `0/8`), `L` and
//! `LW` and `<day>W` in Day-of-month, and `L` (Saturday), `<day>L` (last such weekday) and
//! `<day>#<n>` in Day-of-week. Months are 1-12 or JAN-DEC and weekdays 1-7 or SUN-SAT
//! (1 = Sunday), case-insensitive.
//!
//! See: <https://docs.aws.amazon.com/secretsmanager/latest/userguide/rotate-secrets_schedule.html>
//! and <https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-scheduled-rule-pattern.html>.

use super::calendar::{Calendar, DayRule, DomRule, DowRule};
use super::ScheduleError;

/// The allowed values of one cron field.
struct Field {
    name: &'static str,
    min: u8,
    max: u8,
    /// Names for `min`, `min + 1`, ... (empty when the field has none).
    names: &'static [&'static str],
    /// How the allowed values are described in messages.
    allowed: &'static str,
}

const HOURS: Field = Field {
    name: "Hours",
    min: 0,
    max: 23,
    names: &[],
    allowed: "0-23",
};
const DAY_OF_MONTH: Field = Field {
    name: "Day-of-month",
    min: 1,
    max: 31,
    names: &[],
    allowed: "1-31, L, LW or <day>W",
};
const MONTH: Field = Field {
    name: "Month",
    min: 1,
    max: 12,
    names: &[
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ],
    allowed: "1-12 or JAN-DEC",
};
const DAY_OF_WEEK: Field = Field {
    name: "Day-of-week",
    min: 1,
    max: 7,
    names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
    allowed: "1-7 or SUN-SAT, L, <day>L or <day>#<n>",
};

/// Parses the text between `cron(` and `)`; `expr` is the whole expression, for messages.
pub(super) fn parse(expr: &str, inner: &str) -> Result<Calendar, ScheduleError> {
    let err = |msg: String| ScheduleError::new(format!("Invalid ScheduleExpression {expr}: {msg}"));
    let fields: Vec<&str> = inner.split_whitespace().collect();
    let [minutes, hours, dom, month, dow, year] = fields.as_slice() else {
        return Err(err(format!(
            "a cron expression needs 6 fields (Minutes Hours Day-of-month Month Day-of-week \
             Year), but this one has {}.",
            fields.len()
        )));
    };
    if minutes.is_empty() || !minutes.bytes().all(|b| b == b'0') {
        return Err(err(format!(
            "the Minutes field must be 0 because rotation windows start on the hour; got \
             \"{minutes}\"."
        )));
    }
    if *year != "*" {
        return Err(err(format!(
            "the Year field must be * because Secrets Manager does not support rotation \
             schedules more than a year apart; got \"{year}\"."
        )));
    }
    let days = match (*dom == "?", *dow == "?") {
        (true, true) => {
            return Err(err(
                "exactly one of Day-of-month and Day-of-week must be ?, but both are ?.".to_owned(),
            ))
        }
        (false, false) => {
            return Err(err(format!(
                "exactly one of Day-of-month and Day-of-week must be ?, but they are \"{dom}\" \
                 and \"{dow}\"; put ? in the field you are not using, for example \
                 cron(0 8 1 * ? *) or cron(0 8 ? * MON *)."
            )))
        }
        (false, true) => DayRule::Month(parse_day_of_month(dom).map_err(err)?),
        (true, false) => DayRule::Week(parse_day_of_week(dow).map_err(err)?),
    };
    let hours = parse_list(&HOURS, hours).map_err(err)?;
    let months = parse_list(&MONTH, month).map_err(err)?;
    Ok(Calendar {
        // Masks of 0..=23 and 1..=12 fit their types.
        hours: u32::try_from(hours).unwrap_or(0),
        months: u16::try_from(months).unwrap_or(0),
        days,
    })
}

/// Day-of-month: generic items plus `L`, `LW` and `<day>W`.
fn parse_day_of_month(field: &str) -> Result<DomRule, String> {
    let mut rule = DomRule::default();
    for item in split_list(&DAY_OF_MONTH, field)? {
        let upper = item.to_ascii_uppercase();
        if upper == "L" {
            rule.last = true;
        } else if upper == "LW" {
            rule.last_weekday = true;
        } else if let Some(day) = upper.strip_suffix('W') {
            if day.is_empty() {
                return Err(
                    "W in the Day-of-month field needs a day, for example 15W (the weekday \
                     nearest the 15th) or LW (the last weekday)."
                        .to_owned(),
                );
            }
            rule.nearest_weekday |= 1 << parse_value(&DAY_OF_MONTH, day)?;
        } else {
            rule.days |= u32::try_from(parse_item(&DAY_OF_MONTH, item)?).unwrap_or(0);
        }
    }
    Ok(rule)
}

/// Day-of-week: generic items plus `L` (Saturday), `<day>L` and `<day>#<n>`.
fn parse_day_of_week(field: &str) -> Result<DowRule, String> {
    let mut rule = DowRule::default();
    for item in split_list(&DAY_OF_WEEK, field)? {
        let upper = item.to_ascii_uppercase();
        if upper == "L" {
            // "L" alone is the last day of the week, i.e. Saturday.
            rule.days |= 1 << DAY_OF_WEEK.max;
        } else if let Some((day, nth)) = upper.split_once('#') {
            let day = parse_value(&DAY_OF_WEEK, day)?;
            let n = match nth.parse::<u8>() {
                Ok(n @ 1..=5) if nth.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => {
                    return Err(format!(
                        "in \"{item}\" the number after # must be 1-5 (the n-th such weekday of \
                         the month), for example TUE#3."
                    ))
                }
            };
            rule.nth[usize::from(day)] |= 1 << n;
        } else if let Some(day) = upper.strip_suffix('L') {
            rule.last |= 1 << parse_value(&DAY_OF_WEEK, day)?;
        } else {
            rule.days |= u8::try_from(parse_item(&DAY_OF_WEEK, item)?).unwrap_or(0);
        }
    }
    Ok(rule)
}

/// A comma-separated list of generic items, as a bit mask of the allowed values.
fn parse_list(field: &Field, text: &str) -> Result<u64, String> {
    let mut mask = 0;
    for item in split_list(field, text)? {
        mask |= parse_item(field, item)?;
    }
    Ok(mask)
}

/// Splits on commas, rejecting empty items and a `?` that is not the whole field.
fn split_list<'a>(field: &Field, text: &'a str) -> Result<Vec<&'a str>, String> {
    if text.contains('?') {
        return Err(format!(
            "? must be the whole Day-of-month or Day-of-week field and cannot be used in the {} \
             field (\"{text}\").",
            field.name
        ));
    }
    let items: Vec<&str> = text.split(',').collect();
    if items.iter().any(|i| i.is_empty()) {
        return Err(format!(
            "the {} field \"{text}\" has an empty list item.",
            field.name
        ));
    }
    Ok(items)
}

/// `*`, `v`, `a-b`, each optionally followed by `/step`, or `/step` alone (from the minimum).
fn parse_item(field: &Field, item: &str) -> Result<u64, String> {
    let (range, step) = match item.split_once('/') {
        Some((range, step)) => (range, Some(parse_step(field, item, step)?)),
        None => (item, None),
    };
    let (start, end) = if range == "*" || (range.is_empty() && step.is_some()) {
        (field.min, field.max)
    } else if let Some((a, b)) = range.split_once('-') {
        (parse_value(field, a)?, parse_value(field, b)?)
    } else {
        let v = parse_value(field, range)?;
        // "4/12" runs from 4 to the end of the field.
        (v, if step.is_some() { field.max } else { v })
    };
    let step = usize::from(step.unwrap_or(1));
    let span = if end >= start {
        end - start
    } else {
        // A backwards range wraps around (Quartz): 22-2 is 22, 23, 0, 1, 2.
        (field.max - start) + (end - field.min) + 1
    };
    let width = field.max - field.min + 1;
    let mut mask = 0u64;
    for offset in (0..=span).step_by(step) {
        let mut v = start + offset;
        if v > field.max {
            v -= width;
        }
        mask |= 1 << v;
    }
    Ok(mask)
}

/// The increment after `/`: a whole number of at least 1.
fn parse_step(field: &Field, item: &str, step: &str) -> Result<u8, String> {
    match step.parse::<u8>() {
        Ok(n) if n >= 1 && step.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err(format!(
            "the increment in the {} field item \"{item}\" must be a whole number of at least 1.",
            field.name
        )),
    }
}

/// A single number or name of the field.
fn parse_value(field: &Field, text: &str) -> Result<u8, String> {
    let upper = text.to_ascii_uppercase();
    if let Some(i) = field.names.iter().position(|n| *n == upper) {
        // At most 12 names.
        return Ok(field.min + u8::try_from(i).unwrap_or(0));
    }
    match text.parse::<u8>() {
        Ok(v)
            if text.bytes().all(|b| b.is_ascii_digit()) && (field.min..=field.max).contains(&v) =>
        {
            Ok(v)
        }
        _ => Err(format!(
            "\"{text}\" is not a valid {} value (allowed: {}).",
            field.name, field.allowed
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cal(inner: &str) -> Calendar {
        parse(&format!("cron({inner})"), inner).unwrap()
    }

    fn err(inner: &str) -> String {
        parse(&format!("cron({inner})"), inner).unwrap_err().message
    }

    fn bits(mask: u64) -> Vec<u8> {
        (0..64).filter(|b| mask & (1 << b) != 0).collect()
    }

    #[test]
    fn parse_hours_increments_and_lists() {
        assert_eq!(bits(cal("0 /8 * * ? *").hours.into()), vec![0, 8, 16]);
        assert_eq!(bits(cal("0 8/8 * * ? *").hours.into()), vec![8, 16]);
        assert_eq!(bits(cal("0 2/10 * * ? *").hours.into()), vec![2, 12, 22]);
        assert_eq!(bits(cal("0 4/12 * * ? *").hours.into()), vec![4, 16]);
        assert_eq!(bits(cal("0 */6 * * ? *").hours.into()), vec![0, 6, 12, 18]);
        assert_eq!(bits(cal("0 1,9,17 * * ? *").hours.into()), vec![1, 9, 17]);
        assert_eq!(bits(cal("0 8-20/6 * * ? *").hours.into()), vec![8, 14, 20]);
        assert_eq!(bits(cal("0 22-2/4 * * ? *").hours.into()), vec![2, 22]);
        assert_eq!(bits(cal("0 10 * * ? *").hours.into()), vec![10]);
    }

    #[test]
    fn parse_months_with_names_and_steps() {
        assert_eq!(
            bits(cal("0 1 ? 1/3 SUN#1 *").months.into()),
            vec![1, 4, 7, 10]
        );
        assert_eq!(
            bits(cal("0 1 1 FEB,may,Aug ? *").months.into()),
            vec![2, 5, 8]
        );
        assert_eq!(
            bits(cal("0 1 1 NOV-FEB ? *").months.into()),
            vec![1, 2, 11, 12]
        );
        assert_eq!(
            bits(cal("0 1 1 * ? *").months.into()),
            (1..=12).collect::<Vec<_>>()
        );
    }

    #[test]
    fn parse_day_of_week_forms() {
        let DayRule::Week(w) = cal("0 8 ? * MON-FRI *").days else {
            panic!()
        };
        assert_eq!(bits(w.days.into()), vec![2, 3, 4, 5, 6]);
        let DayRule::Week(w) = cal("0 18 ? * SAT *").days else {
            panic!()
        };
        assert_eq!(bits(w.days.into()), vec![7]);
        let DayRule::Week(w) = cal("0 18 ? * L *").days else {
            panic!()
        };
        assert_eq!(bits(w.days.into()), vec![7]);
        let DayRule::Week(w) = cal("0 0 ? * SUN#1 *").days else {
            panic!()
        };
        assert_eq!(w.nth[1], 1 << 1);
        let DayRule::Week(w) = cal("0 0 ? * 3#5,TUE#3 *").days else {
            panic!()
        };
        assert_eq!(w.nth[3], (1 << 5) | (1 << 3));
        let DayRule::Week(w) = cal("0 0 ? * SUNL,6L *").days else {
            panic!()
        };
        assert_eq!(bits(w.last.into()), vec![1, 6]);
        let DayRule::Week(w) = cal("0 0 ? * 2 *").days else {
            panic!()
        };
        assert_eq!(bits(w.days.into()), vec![2]);
        let DayRule::Week(w) = cal("0 0 ? * FRI-MON *").days else {
            panic!()
        };
        assert_eq!(bits(w.days.into()), vec![1, 2, 6, 7]);
    }

    #[test]
    fn parse_day_of_month_forms() {
        let DayRule::Month(d) = cal("0 17 L * ? *").days else {
            panic!()
        };
        assert!(d.last && d.days == 0);
        let DayRule::Month(d) = cal("0 17 LW * ? *").days else {
            panic!()
        };
        assert!(d.last_weekday);
        let DayRule::Month(d) = cal("0 17 15W * ? *").days else {
            panic!()
        };
        assert_eq!(bits(d.nearest_weekday.into()), vec![15]);
        let DayRule::Month(d) = cal("0 16 1,15 * ? *").days else {
            panic!()
        };
        assert_eq!(bits(d.days.into()), vec![1, 15]);
        let DayRule::Month(d) = cal("0 8 1/7 * ? *").days else {
            panic!()
        };
        assert_eq!(bits(d.days.into()), vec![1, 8, 15, 22, 29]);
        let DayRule::Month(d) = cal("0 8 * * ? *").days else {
            panic!()
        };
        assert_eq!(bits(d.days.into()), (1..=31).collect::<Vec<_>>());
    }

    #[test]
    fn parse_rejects_secrets_manager_restrictions() {
        assert!(err("5 10 * * ? *").contains("Minutes field must be 0"));
        assert!(err("* 10 * * ? *").contains("Minutes field must be 0"));
        assert!(err("0/5 10 * * ? *").contains("Minutes field must be 0"));
        assert!(err("0 10 * * ? 2025").contains("Year field must be *"));
        assert!(err("0 10 ? * ? *").contains("both are ?"));
        assert!(err("0 10 * * * *").contains("exactly one of Day-of-month and Day-of-week"));
        assert!(err("0 10 1 * MON *").contains("exactly one of Day-of-month and Day-of-week"));
        assert!(err("0 10 * * ?").contains("6 fields"));
        assert!(err("0 10 * * ? * *").contains("6 fields"));
    }

    #[test]
    fn parse_rejects_bad_values_naming_the_field() {
        assert!(err("0 24 * * ? *").contains("not a valid Hours value"));
        assert!(err("0 -1 * * ? *").contains("Hours"));
        assert!(err("0 10 32 * ? *").contains("not a valid Day-of-month value"));
        assert!(err("0 10 0 * ? *").contains("Day-of-month"));
        assert!(err("0 10 1 13 ? *").contains("not a valid Month value"));
        assert!(err("0 10 1 JANUARY ? *").contains("Month"));
        assert!(err("0 10 ? * 8 *").contains("not a valid Day-of-week value"));
        assert!(err("0 10 ? * 0 *").contains("Day-of-week"));
        assert!(err("0 10 ? * MON#6 *").contains("must be 1-5"));
        assert!(err("0 10 ? * MON# *").contains("must be 1-5"));
        assert!(err("0 10 ? * FOOL *").contains("Day-of-week"));
        assert!(err("0 10 W * ? *").contains("needs a day"));
        assert!(err("0 10 32W * ? *").contains("Day-of-month"));
        assert!(err("0 */0 * * ? *").contains("increment"));
        assert!(err("0 4/x * * ? *").contains("increment"));
        assert!(err("0 1,,2 * * ? *").contains("empty list item"));
        assert!(err("0 ? * * ? *").contains("? must be the whole"));
        assert!(err("0 10 1,? * ? *").contains("? must be the whole"));
        assert!(err("0 10 ? * MON,? *").contains("? must be the whole"));
        assert!(err("0 10 L-2 * ? *").contains("Day-of-month"));
        assert!(err("0 10 ? * 1#1#1 *").contains("must be 1-5"));
    }
}
