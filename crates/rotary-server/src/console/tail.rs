//! Reading the audit log backwards, newest record first, for the audit-log page and the
//! dashboard's rotations of the last 24 hours.
//!
//! `rotary_core::audit::query` reads the whole log forwards; a page of the newest records
//! only needs the end of the file. This reader starts at the end (or at a byte offset where
//! an earlier page stopped), reads blocks towards the start and hands each complete record
//! to a visitor, with a bound on the bytes read per request. A byte offset is a stable
//! cursor: the log is append-only, so the records before an offset never change.
//!
//! The records hold no secret values (see `rotary_core::audit::record`); this module only
//! parses and returns them.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use rotary_core::audit::AuditRecord;

/// Bytes read from the file at a time.
const BLOCK: usize = 64 * 1024;
/// A line longer than this is not a record the writer makes; it is skipped.
const MAX_LINE: usize = 4 * 1024 * 1024;

/// Where a backward scan ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scan {
    /// It reached the start of the log.
    Start,
    /// The visitor stopped it after the record at this offset: the next page reads the
    /// records before it.
    Stopped(u64),
    /// It read its byte budget; the records before this offset are still to be read.
    Budget(u64),
}

impl Scan {
    /// The offset a further scan continues before, if any records remain.
    pub(super) fn resume(self) -> Option<u64> {
        match self {
            Scan::Start => None,
            Scan::Stopped(o) | Scan::Budget(o) => Some(o),
        }
    }
}

/// Visits the complete records of the log at `path` that start before `before` (the end
/// of the file when `None`), newest first, until `visit` returns `false`, the start of the
/// file, or about `budget` bytes read. An incomplete last line (a batch being written) and
/// lines that do not parse are passed over. A missing log is an empty one.
pub(super) fn scan_back(
    path: &Path,
    before: Option<u64>,
    budget: u64,
    mut visit: impl FnMut(AuditRecord) -> bool,
) -> std::io::Result<Scan> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Scan::Start),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    let mut end = before.map_or(len, |b| b.min(len));
    // Bytes [pos, end) are in `buf`; lines are taken off its end.
    let mut pos = end;
    let mut buf: Vec<u8> = Vec::new();
    let mut read = 0u64;
    // At the end of the file, a line without its newline is still being written.
    let mut drop_partial_tail = before.is_none_or(|b| b >= len);
    loop {
        // Take every complete line at the end of the buffer.
        loop {
            if drop_partial_tail {
                match buf.iter().rposition(|b| *b == b'\n') {
                    Some(i) => {
                        end -= (buf.len() - i - 1) as u64;
                        buf.truncate(i + 1);
                        drop_partial_tail = false;
                    }
                    None if pos == 0 => return Ok(Scan::Start),
                    None => break,
                }
            }
            // The buffer ends with a newline (or is empty); find the line before it.
            let body_end = buf.len().saturating_sub(1);
            if buf.is_empty() {
                break;
            }
            let start = match buf[..body_end].iter().rposition(|b| *b == b'\n') {
                Some(i) => i + 1,
                None if pos == 0 => 0,
                None => break, // the line starts in a block not read yet
            };
            let offset = pos + start as u64;
            let rec = serde_json::from_slice::<AuditRecord>(&buf[start..body_end]).ok();
            buf.truncate(start);
            end = offset;
            if let Some(rec) = rec {
                if !visit(rec) {
                    return Ok(Scan::Stopped(offset));
                }
            }
        }
        if pos == 0 {
            return Ok(Scan::Start);
        }
        if read >= budget {
            return Ok(Scan::Budget(end));
        }
        if buf.len() > MAX_LINE {
            // A line this long is not a record: skip to the newline before it.
            buf.clear();
            end = pos;
            drop_partial_tail = true;
        }
        let from = pos.saturating_sub(BLOCK as u64);
        let n = usize::try_from(pos - from).unwrap_or(BLOCK);
        let mut block = vec![0u8; n];
        file.seek(SeekFrom::Start(from))?;
        file.read_exact(&mut block)?;
        read += n as u64;
        block.extend_from_slice(&buf);
        buf = block;
        pos = from;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rotary_core::audit::Outcome;
    use std::io::Write;

    fn write_log(path: &Path, n: usize, partial: bool) -> Vec<u64> {
        let mut f = File::create(path).unwrap();
        let mut offsets = Vec::new();
        let mut at = 0u64;
        for i in 0..n {
            let mut rec = AuditRecord::new(
                1_700_000_000_000 + i as i64,
                format!("req-{i}"),
                "secretsmanager:GetSecretValue",
                Outcome::Allowed,
            );
            rec.sequence = i as u64 + 1;
            let mut line = serde_json::to_vec(&rec).unwrap();
            line.push(b'\n');
            offsets.push(at);
            at += line.len() as u64;
            f.write_all(&line).unwrap();
        }
        if partial {
            f.write_all(b"{\"Sequence\":99,\"Ti").unwrap();
        }
        offsets
    }

    fn seqs(path: &Path, before: Option<u64>, budget: u64, stop_after: usize) -> (Vec<u64>, Scan) {
        let mut out = Vec::new();
        let scan = scan_back(path, before, budget, |r| {
            out.push(r.sequence);
            out.len() < stop_after
        })
        .unwrap();
        (out, scan)
    }

    #[test]
    fn newest_first_in_pages_without_loss_or_repeat() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let offsets = write_log(&path, 3000, true);
        let (page1, scan) = seqs(&path, None, u64::MAX, 1000);
        assert_eq!(page1.first(), Some(&3000));
        assert_eq!(page1.len(), 1000);
        assert_eq!(scan, Scan::Stopped(offsets[2000]));
        let (page2, _) = seqs(&path, scan.resume(), u64::MAX, 1000);
        assert_eq!(page2.first(), Some(&2000));
        let (all, scan) = seqs(&path, None, u64::MAX, usize::MAX);
        assert_eq!(all, (1..=3000).rev().collect::<Vec<_>>());
        assert_eq!(scan, Scan::Start);
    }

    #[test]
    fn budget_stops_and_resumes_where_it_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        write_log(&path, 2000, false);
        let mut got = Vec::new();
        let mut before = None;
        loop {
            let (part, scan) = seqs(&path, before, 100_000, usize::MAX);
            got.extend(part);
            match scan {
                Scan::Budget(o) => before = Some(o),
                Scan::Start => break,
                Scan::Stopped(_) => unreachable!(),
            }
        }
        assert_eq!(got, (1..=2000).rev().collect::<Vec<_>>());
    }

    #[test]
    fn missing_log_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let (got, scan) = seqs(&dir.path().join("none"), None, u64::MAX, 10);
        assert!(got.is_empty());
        assert_eq!(scan, Scan::Start);
    }
}
