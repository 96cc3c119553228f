//! `rotary schedule preview`: the next rotation windows of a schedule, computed here with the
//! server's own schedule code, so it needs no server and no credentials.

use anyhow::anyhow;
use rotary_core::schedule::Schedule;
use serde_json::{json, Value};

use super::commands::ts;

fn secs(ms: i64) -> Value {
    json!(ms as f64 / 1000.0)
}

/// Prints the next `count` (default 10, at most 100) windows of `expression`: `rate(…)`,
/// `cron(…)`, or a number of days (AutomaticallyAfterDays), starting now.
pub(super) fn preview(
    json_out: bool,
    expression: &str,
    duration: Option<&str>,
    count: Option<usize>,
) -> anyhow::Result<()> {
    let days = expression.trim().parse::<i64>().ok();
    let expr = days.is_none().then_some(expression);
    let schedule = Schedule::parse(days, expr, duration)
        .map_err(|e| anyhow!("schedule {expression:?}: {}", e.message))?;
    let now = time::OffsetDateTime::now_utc();
    let now_ms = (now.unix_timestamp_nanos() / 1_000_000) as i64;
    let windows: Vec<Value> = schedule
        .preview(now_ms, None, count.unwrap_or(10).clamp(1, 100))
        .into_iter()
        .map(|w| {
            json!({
                "Start": secs(w.start_ms),
                "End": secs(w.end_ms),
                "NextRotationDate": secs(w.next_rotation_date_ms()),
            })
        })
        .collect();
    let out = json!({
        "AutomaticallyAfterDays": schedule.automatically_after_days(),
        "Windows": windows,
    });
    if json_out {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "AutomaticallyAfterDays (as DescribeSecret reports it): {}",
        out["AutomaticallyAfterDays"]
    );
    println!(
        "{:<20}  {:<20}  NEXT ROTATION DATE",
        "WINDOW START", "WINDOW END"
    );
    for w in out["Windows"].as_array().into_iter().flatten() {
        println!(
            "{:<20}  {:<20}  {}",
            ts(&w["Start"]),
            ts(&w["End"]),
            ts(&w["NextRotationDate"])
        );
    }
    Ok(())
}
