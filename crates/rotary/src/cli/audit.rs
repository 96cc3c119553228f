//! `rotary audit verify|query|tail`: read the audit log straight from the data directory.
//!
//! These commands are offline: they open `DIR/audit.log` (and `DIR/audit.head`) with the
//! reader's own file permissions, so they need read access to the data directory (mode 0700,
//! owned by the server's user), and work whether the server is running or stopped. They
//! never contact a server; remote query through Rotary's API can come later.
//!
//! Exit codes: 0 ok; 1 the chain is broken (`verify`); 2 usage error or unreadable file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use rotary_core::audit::{self, AuditFilter, AuditRecord};
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime};

use super::ClientArgs;

/// `rotary audit …`
#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Check the hash chain of DIR/audit.log: exit 0 and the record count when it is whole,
    /// exit 1 naming the first broken record otherwise.
    Verify(DataDir),
    /// Records matching every given filter, oldest first.
    Query {
        #[command(flatten)]
        dir: DataDir,
        /// Secret name or ARN.
        #[arg(long)]
        secret: Option<String>,
        /// Principal ARN, user name, access key id, or `root`.
        #[arg(long)]
        principal: Option<String>,
        /// Operation, e.g. `secretsmanager:GetSecretValue` or `GetSecretValue`.
        #[arg(long)]
        action: Option<String>,
        /// `Allowed`, `Denied`, `AuthenticationFailed`, or an error type such as
        /// `ResourceNotFoundException`.
        #[arg(long)]
        outcome: Option<String>,
        /// From this time on: RFC 3339, a date (`2026-11-30`, UTC), or an age (`15m`, `2h`,
        /// `7d`).
        #[arg(long)]
        since: Option<String>,
        /// Before this time (same forms as --since).
        #[arg(long)]
        until: Option<String>,
        /// Only the newest N matches.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// The last N records.
    Tail {
        #[command(flatten)]
        dir: DataDir,
        /// How many records.
        #[arg(short = 'n', long = "lines", default_value_t = 20)]
        n: usize,
    },
}

/// Where the log is.
#[derive(Debug, Args)]
pub(crate) struct DataDir {
    /// The server's data directory, holding audit.log.
    #[arg(long, env = "ROTARY_DATA_DIR", default_value = "rotary-data")]
    data_dir: PathBuf,
}

impl DataDir {
    fn log(&self) -> PathBuf {
        self.data_dir.join(audit::LOG_FILE)
    }
}

/// Runs an audit command and returns the process exit code.
pub(crate) fn run(args: &ClientArgs, cmd: AuditCommand) -> ExitCode {
    let json_out = match args.output.as_str() {
        "json" => true,
        "text" => false,
        other => {
            eprintln!("rotary: --output {other:?} must be text or json");
            return ExitCode::from(2);
        }
    };
    let res = match cmd {
        AuditCommand::Verify(dir) => return verify(&dir.log(), json_out),
        AuditCommand::Query {
            dir,
            secret,
            principal,
            action,
            outcome,
            since,
            until,
            limit,
        } => filter(since, until).and_then(|(since, until)| {
            let f = AuditFilter {
                secret,
                principal,
                action,
                outcome,
                since,
                until,
                limit,
            };
            print_records(&dir.log(), &f, json_out)
        }),
        AuditCommand::Tail { dir, n } => print_records(
            &dir.log(),
            &AuditFilter {
                limit: Some(n),
                ..Default::default()
            },
            json_out,
        ),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rotary: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn verify(log: &Path, json_out: bool) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match audit::verify(log) {
        Ok(s) => {
            if json_out {
                let v = json!({
                    "Valid": true,
                    "Records": s.records,
                    "HeadHash": s.head_hash,
                    "HeadChecked": s.head_checked,
                });
                let _ = writeln!(out, "{v:#}");
            } else {
                let _ = writeln!(
                    out,
                    "{}: chain whole, {} records, head {}",
                    log.display(),
                    s.records,
                    s.head_hash
                );
            }
            if !s.head_checked && s.records > 0 {
                eprintln!(
                    "rotary: warning: {} is missing, so a truncated tail cannot be detected",
                    audit::head_path(log).display()
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) if e.position == 0 => {
            eprintln!("rotary: {}", e.reason);
            ExitCode::from(2)
        }
        Err(e) => {
            if json_out {
                let v = json!({ "Valid": false, "Position": e.position, "Reason": e.reason });
                let _ = writeln!(out, "{v:#}");
            }
            eprintln!(
                "rotary: {}: chain broken at record {}: {}",
                log.display(),
                e.position,
                e.reason
            );
            ExitCode::from(1)
        }
    }
}

type TimeRange = (Option<OffsetDateTime>, Option<OffsetDateTime>);

fn filter(since: Option<String>, until: Option<String>) -> anyhow::Result<TimeRange> {
    let now = OffsetDateTime::now_utc();
    let parse = |flag: &str, v: Option<String>| -> anyhow::Result<Option<OffsetDateTime>> {
        v.map(|s| parse_time(&s, now).with_context(|| format!("--{flag} {s:?}")))
            .transpose()
    };
    Ok((parse("since", since)?, parse("until", until)?))
}

/// RFC 3339, a UTC date, or an age before `now` (`30s`, `15m`, `2h`, `7d`).
fn parse_time(s: &str, now: OffsetDateTime) -> anyhow::Result<OffsetDateTime> {
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(t);
    }
    let date_fmt = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(d) = Date::parse(s, &date_fmt) {
        return Ok(d.midnight().assume_utc());
    }
    let (num, unit) = s.split_at(s.len().saturating_sub(1));
    let Ok(n) = num.parse::<i64>() else {
        bail!(
            "must be RFC 3339 (2026-11-30T16:00:00Z), a date (2026-11-30) or an age (15m, 2h, 7d)"
        )
    };
    let age = match unit {
        "s" => time::Duration::seconds(n),
        "m" => time::Duration::minutes(n),
        "h" => time::Duration::hours(n),
        "d" => time::Duration::days(n),
        _ => bail!("an age ends in s, m, h or d"),
    };
    Ok(now - age)
}

fn print_records(log: &Path, f: &AuditFilter, json_out: bool) -> anyhow::Result<()> {
    let recs = audit::query(log, f)?;
    let mut out = std::io::stdout().lock();
    if json_out {
        let _ = writeln!(out, "{}", serde_json::to_string_pretty(&recs)?);
        return Ok(());
    }
    for r in &recs {
        let _ = writeln!(out, "{}", text_line(r));
    }
    Ok(())
}

fn text_line(r: &AuditRecord) -> String {
    let time_fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    let mut line = format!(
        "{:>6} {} {:<22} {:<36} {}",
        r.sequence,
        r.time.format(&time_fmt).unwrap_or_default(),
        r.outcome.as_str(),
        r.operation,
        r.principal_arn
            .as_deref()
            .or(r.access_key_id.as_deref())
            .unwrap_or("-"),
    );
    if let Some(s) = &r.secret_arn {
        line.push(' ');
        line.push_str(s);
    }
    if let Some(v) = &r.version_id {
        line.push_str(&format!(" version={v}"));
    }
    if let Some(f) = &r.function_arn {
        line.push_str(&format!(" function={f}"));
    }
    if let Some(reason) = &r.reason {
        line.push_str(&format!(
            " reason={:?}{}{}",
            reason.kind,
            reason
                .policy
                .as_deref()
                .map(|p| format!(" policy={p}"))
                .unwrap_or_default(),
            reason
                .statement
                .as_deref()
                .map(|s| format!(" statement={s}"))
                .unwrap_or_default()
        ));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_time_accepts_rfc3339_dates_and_ages() {
        let now = OffsetDateTime::parse("2026-11-30T16:00:00Z", &Rfc3339).unwrap();
        assert_eq!(
            parse_time("2026-11-29T10:00:00.5Z", now).unwrap(),
            OffsetDateTime::parse("2026-11-29T10:00:00.5Z", &Rfc3339).unwrap()
        );
        assert_eq!(
            parse_time("2026-11-29", now).unwrap(),
            OffsetDateTime::parse("2026-11-29T00:00:00Z", &Rfc3339).unwrap()
        );
        assert_eq!(
            parse_time("2h", now).unwrap(),
            now - time::Duration::hours(2)
        );
        assert_eq!(
            parse_time("7d", now).unwrap(),
            now - time::Duration::days(7)
        );
        assert!(parse_time("yesterday", now).is_err());
        assert!(parse_time("5y", now).is_err());
    }
}
