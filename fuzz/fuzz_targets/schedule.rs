//! RotationRules: `rate()`/`cron()` expressions, `Duration` and the rotation windows they
//! open (crates/rotary-core/src/schedule).
//!
//! Input: lines `<ScheduleExpression or days=N>`, `<Duration>`, `<now ms>`, `<last rotation
//! ms>`; lines 2 to 4 may be missing or empty. A `now` or last rotation that is not a number
//! is derived from the input, within ten years of 2024.
//!
//! Properties, for every schedule that parses:
//! - parsing never panics and is deterministic;
//! - `AutomaticallyAfterDays` as reported is within the model's 1..=1000;
//! - the next window ends after `now`, starts after the last rotation, and is the first
//!   window of the preview; a later `now` never gives an earlier next window;
//! - every window starts on the hour, lasts 1 to 24 hours and ends by the next UTC midnight;
//!   windows are in order, do not overlap, and start at least 4 hours apart;
//! - a random rotation instant lies inside its window, no later than `NextRotationDate`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rand::rngs::StdRng;
use rand::SeedableRng;
use rotary_fuzz::schedule::Schedule;
use rotary_fuzz::{derived_ms, fnv1a};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
const THREE_DAYS_MS: u64 = 3 * 24 * 3_600_000;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let seed = fnv1a(data);
    let mut lines = text.split('\n');
    let rule = lines.next().unwrap_or_default();
    let duration = lines.next().filter(|d| !d.is_empty());
    let now = lines
        .next()
        .and_then(|n| n.trim().parse::<i64>().ok())
        .unwrap_or_else(|| derived_ms(seed));
    let last = match lines.next() {
        None | Some("") => None,
        Some(l) => Some(
            l.trim()
                .parse::<i64>()
                .unwrap_or_else(|_| derived_ms(seed >> 7)),
        ),
    };
    let (days, expr) = match rule.strip_prefix("days=") {
        Some(n) => (Some(n.trim().parse::<i64>().unwrap_or(0)), None),
        None => (None, Some(rule)),
    };

    let Ok(schedule) = Schedule::parse(days, expr, duration) else {
        return;
    };
    assert_eq!(
        Schedule::parse(days, expr, duration).as_ref(),
        Ok(&schedule)
    );
    assert!((1..=1000).contains(&schedule.automatically_after_days()));

    let n = usize::try_from(seed % 8).unwrap_or(0) + 1;
    let windows = schedule.preview(now, last, n);
    assert_eq!(schedule.next_window(now, last), windows.first().copied());
    for w in &windows {
        assert!(
            w.end_ms > now,
            "a window ends at or before now: {w:?} now={now}"
        );
        if let Some(last) = last {
            assert!(
                w.start_ms > last,
                "a window starts before the last rotation: {w:?}"
            );
        }
        assert_eq!(w.start_ms.rem_euclid(HOUR_MS), 0, "not on the hour: {w:?}");
        let len = w.end_ms - w.start_ms;
        assert!(
            (HOUR_MS..=DAY_MS).contains(&len),
            "window length {len}: {w:?}"
        );
        let next_midnight = w.start_ms.div_euclid(DAY_MS) * DAY_MS + DAY_MS;
        assert!(w.end_ms <= next_midnight, "crosses midnight: {w:?}");
        let mut rng = StdRng::seed_from_u64(seed);
        let at = w.random_instant(&mut rng);
        assert!(w.start_ms <= at && at <= w.next_rotation_date_ms().max(w.start_ms));
    }
    // Later clocks never give an earlier next window.
    let step = i64::try_from((seed >> 16) % THREE_DAYS_MS).unwrap_or(0);
    let later = now.saturating_add(step);
    if let (Some(a), Some(b)) = (windows.first(), schedule.next_window(later, last)) {
        assert!(
            b.start_ms >= a.start_ms,
            "next window moved back: {a:?} then {b:?}"
        );
    }
    for pair in windows.windows(2) {
        assert!(
            pair[1].start_ms >= pair[0].end_ms,
            "windows overlap: {pair:?}"
        );
        assert!(
            pair[1].start_ms - pair[0].start_ms >= 4 * HOUR_MS,
            "too close: {pair:?}"
        );
    }
});
