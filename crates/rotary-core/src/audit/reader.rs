//! Reading the log from the file: [`verify`] the chain, [`query`] records, and the tail
//! check [`AuditLog::open`](super::AuditLog::open) runs before appending.
//!
//! These read the file directly, so they work with the server stopped or running: the
//! writer appends whole batches with one `write` and rewrites `audit.head` only after an
//! fsync, and [`verify`] reads the head before the log, so a running writer can only make
//! the log longer than the head it compares with.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::record::check_line_hash;
use super::{head_path, AuditError, AuditRecord, Result, GENESIS_HASH};

/// The chain head kept in `audit.head`: the last fsynced record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ChainHead {
    /// Its sequence number.
    pub sequence: u64,
    /// Its hash.
    pub hash: String,
}

/// What [`verify`] found in a whole log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifySummary {
    /// Number of records (= the last sequence number).
    pub records: u64,
    /// `Hash` of the last record ([`GENESIS_HASH`] for an empty log). Keeping this value
    /// somewhere else lets a later verify prove the log was not rewritten up to here.
    pub head_hash: String,
    /// Whether `audit.head` existed and matched; `false` when it is missing (truncation of
    /// the tail cannot be detected then).
    pub head_checked: bool,
}

/// The first thing wrong in a log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", if *.position == 0 { reason.clone() } else { format!("record {position}: {reason}") })]
pub struct VerifyError {
    /// 1-based line of the first bad record, which in a whole log is also its sequence
    /// number; 0 when the file itself could not be read.
    pub position: u64,
    /// What is wrong.
    pub reason: String,
}

fn broken(position: u64, reason: impl Into<String>) -> VerifyError {
    VerifyError {
        position,
        reason: reason.into(),
    }
}

/// Reads `audit.head` beside the log at `log`; `None` if there is none.
pub fn read_head(log: &Path) -> Result<Option<ChainHead>> {
    let path = head_path(log);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| AuditError::Io {
                path,
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(AuditError::Io { path, source }),
    }
}

/// Checks the whole chain of the log at `path` against itself and against `audit.head`.
///
/// Detected, with the 1-based position of the first bad record: an edited byte anywhere in
/// a record (its fields, `PrevHash` or `Hash`); a removed, reordered or duplicated record
/// (sequence or `PrevHash` out of step); removed leading records; a torn last line; a tail
/// cut off after the head was written (the log ends before `audit.head`'s sequence, at
/// position last + 1); a rewritten tail (the record at the head's sequence has another
/// hash). Not detected: a rewrite of the log *and* `audit.head` together by someone who can
/// write the data directory, unless the head hash was kept elsewhere (see docs/audit.md).
pub fn verify(path: &Path) -> Result<VerifySummary, VerifyError> {
    // The head first: a running writer only makes the log longer than this head.
    let head = read_head(path).map_err(|e| broken(0, e.to_string()))?;
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(match head {
                Some(h) if h.sequence > 0 => broken(
                    1,
                    format!("the log is missing but audit.head records {}", h.sequence),
                ),
                _ => broken(0, format!("{}: {e}", path.display())),
            })
        }
        Err(e) => return Err(broken(0, format!("{}: {e}", path.display()))),
    };
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    let mut position = 0u64;
    let mut last_hash = GENESIS_HASH.to_owned();
    let mut hash_at_head = None;
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| broken(position + 1, format!("reading: {e}")))?;
        if n == 0 {
            break;
        }
        position += 1;
        // A running writer's batch can be seen half-written (the file grows page by page):
        // give an incomplete last line a moment to complete before calling it truncated.
        for _ in 0..10 {
            if line.ends_with(b"\n") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
            reader
                .read_until(b'\n', &mut line)
                .map_err(|e| broken(position, format!("reading: {e}")))?;
        }
        let Some(body) = line.strip_suffix(b"\n") else {
            return Err(broken(
                position,
                "incomplete record at the end of the file (truncated or torn write)",
            ));
        };
        let rec = check_record(body, position, &last_hash)?;
        if head.as_ref().is_some_and(|h| h.sequence == rec.sequence) {
            hash_at_head = Some(rec.hash.clone());
        }
        last_hash = rec.hash;
    }
    let head_checked = match head {
        None => false,
        Some(h) if h.sequence > position => {
            return Err(broken(
                position + 1,
                format!(
                    "missing: the log ends after record {position} but audit.head records {} \
                     (the log was truncated)",
                    h.sequence
                ),
            ))
        }
        Some(h) if h.sequence == 0 => true,
        Some(h) => {
            if hash_at_head.as_deref() != Some(h.hash.as_str()) {
                return Err(broken(
                    h.sequence,
                    "Hash differs from the one in audit.head (the log was rewritten from here)",
                ));
            }
            true
        }
    };
    Ok(VerifySummary {
        records: position,
        head_hash: last_hash,
        head_checked,
    })
}

/// Checks one line (without its newline) at `position`, whose predecessor has `prev_hash`.
fn check_record(body: &[u8], position: u64, prev_hash: &str) -> Result<AuditRecord, VerifyError> {
    if body.is_empty() {
        return Err(broken(position, "empty line"));
    }
    let rec: AuditRecord = serde_json::from_slice(body)
        .map_err(|e| broken(position, format!("not a valid audit record ({e})")))?;
    if rec.sequence != position {
        let why = if rec.sequence > position {
            format!(
                "sequence {} where {position} was expected (records before it were removed)",
                rec.sequence
            )
        } else {
            format!(
                "sequence {} where {position} was expected (records were reordered or \
                 duplicated)",
                rec.sequence
            )
        };
        return Err(broken(position, why));
    }
    if rec.prev_hash != prev_hash {
        return Err(broken(
            position,
            "PrevHash does not match the Hash of the record before (a record was removed, \
             reordered or edited)",
        ));
    }
    check_line_hash(body).map_err(|why| broken(position, why))?;
    Ok(rec)
}

/// Which records [`query`] returns. Every set field must match.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// The secret: its full ARN, or its name (with or without the 6-character suffix).
    pub secret: Option<String>,
    /// The caller: its ARN, a user name (the ARN's last path segment), an access key id,
    /// or `root`.
    pub principal: Option<String>,
    /// The operation, `secretsmanager:GetSecretValue` or just `GetSecretValue`
    /// (case-insensitive).
    pub action: Option<String>,
    /// The outcome string (`Allowed`, `Denied`, `AuthenticationFailed`, an error type),
    /// case-insensitive.
    pub outcome: Option<String>,
    /// Records at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Records before this time.
    pub until: Option<OffsetDateTime>,
    /// Keep only the newest `limit` matches.
    pub limit: Option<usize>,
}

impl AuditFilter {
    /// Whether `rec` matches.
    pub fn matches(&self, rec: &AuditRecord) -> bool {
        if let Some(s) = &self.secret {
            let Some(arn) = &rec.secret_arn else {
                return false;
            };
            if !secret_matches(arn, s) {
                return false;
            }
        }
        if let Some(p) = &self.principal {
            let arn = rec.principal_arn.as_deref().unwrap_or("");
            let ok = arn == p
                || (!arn.is_empty() && arn.rsplit('/').next() == Some(p.as_str()))
                || (p == "root" && arn.ends_with(":root"))
                || rec.access_key_id.as_deref() == Some(p.as_str());
            if !ok {
                return false;
            }
        }
        if let Some(a) = &self.action {
            let op = &rec.operation;
            let short = op.rsplit(':').next().unwrap_or(op);
            if !op.eq_ignore_ascii_case(a) && !short.eq_ignore_ascii_case(a) {
                return false;
            }
        }
        if let Some(o) = &self.outcome {
            if !rec.outcome.as_str().eq_ignore_ascii_case(o) {
                return false;
            }
        }
        if self.since.is_some_and(|t| rec.time < t) || self.until.is_some_and(|t| rec.time >= t) {
            return false;
        }
        true
    }
}

fn secret_matches(arn: &str, wanted: &str) -> bool {
    if arn == wanted {
        return true;
    }
    let Some((_, name)) = arn.split_once(":secret:") else {
        return false;
    };
    if name == wanted {
        return true;
    }
    // Names in ARNs carry a `-XXXXXX` suffix.
    name.len() > 7 && name.as_bytes()[name.len() - 7] == b'-' && &name[..name.len() - 7] == wanted
}

/// The records of the log at `path` that match `filter`, oldest first. It does not check
/// the chain (that is [`verify`]); an incomplete last line (a batch being written) is
/// skipped, any other unreadable line is an error.
pub fn query(path: &Path, filter: &AuditFilter) -> Result<Vec<AuditRecord>> {
    let io = |source| AuditError::Io {
        path: path.to_owned(),
        source,
    };
    let mut reader = BufReader::new(File::open(path).map_err(io)?);
    let mut out = VecDeque::new();
    let mut line = Vec::new();
    let mut position = 0u64;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).map_err(io)? == 0 {
            break;
        }
        position += 1;
        let Some(body) = line.strip_suffix(b"\n") else {
            break;
        };
        let rec: AuditRecord = serde_json::from_slice(body).map_err(|e| AuditError::Broken {
            path: path.to_owned(),
            position,
            reason: format!("not a valid audit record ({e})"),
        })?;
        if filter.matches(&rec) {
            if filter.limit == Some(0) {
                continue;
            }
            if filter.limit.is_some_and(|n| out.len() == n) {
                out.pop_front();
            }
            out.push_back(rec);
        }
    }
    Ok(out.into())
}

/// The last record of a log of `len` bytes, checked against its own hash; `None` for an
/// empty log. `Err` holds the reason the tail is broken.
pub(crate) fn last_record(
    file: &mut File,
    len: u64,
) -> std::io::Result<Result<Option<AuditRecord>, String>> {
    const BLOCK: u64 = 64 * 1024;
    const MAX_RECORD: u64 = 16 * 1024 * 1024;
    if len == 0 {
        return Ok(Ok(None));
    }
    let mut start = len;
    let mut tail = Vec::new();
    loop {
        let from = start.saturating_sub(BLOCK);
        let mut block = vec![0u8; (start - from) as usize];
        file.seek(SeekFrom::Start(from))?;
        file.read_exact(&mut block)?;
        block.extend_from_slice(&tail);
        tail = block;
        start = from;
        if tail.last() != Some(&b'\n') {
            return Ok(Err(
                "incomplete record at the end of the file (truncated or torn write)".into(),
            ));
        }
        let body = &tail[..tail.len() - 1];
        if let Some(nl) = body.iter().rposition(|&b| b == b'\n') {
            return Ok(parse_last(&body[nl + 1..]));
        }
        if start == 0 {
            return Ok(parse_last(body));
        }
        if len - start > MAX_RECORD {
            return Ok(Err("the last record is longer than 16 MiB".into()));
        }
    }
}

fn parse_last(body: &[u8]) -> Result<Option<AuditRecord>, String> {
    let rec: AuditRecord = serde_json::from_slice(body)
        .map_err(|e| format!("the last line is not a valid audit record ({e})"))?;
    check_line_hash(body).map_err(str::to_owned)?;
    Ok(Some(rec))
}
