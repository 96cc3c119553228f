//! The audit log: one hash-chained record per request and per rotation step.
//!
//! Records are appended as JSON lines to `DATA_DIR/audit.log` (mode 0600) by one writer
//! thread fed by a bounded channel, which batches whatever is queued into one `write` and
//! calls `fdatasync` at most every [`SYNC_INTERVAL`]. After each fsync the chain head (last
//! sequence and hash) is written to the sidecar `DATA_DIR/audit.head` through a temporary
//! file and a rename, so the head never claims a record that is not durable. Optionally the
//! same lines go to a mirror (stdout or a file) for log shippers. See docs/audit.md.
//!
//! It must never hold a secret value, password, access-key secret or request body:
//! [`AuditRecord`] has no field for one.
//!
//! # Invariants
//! - Record `n` (1-based) has `Sequence` n and `PrevHash` = `Hash` of record n−1
//!   ([`GENESIS_HASH`] for the first); `Hash` is SHA-256 over the line's bytes before
//!   `,"Hash":"`. Only the writer thread assigns sequence numbers, so file order is chain order.
//! - `audit.head` names a record that was fsynced; the log may run ahead of it, never behind.
//! - [`AuditLog::open`] refuses a log whose last record is torn or edited, or which ends
//!   before the head, instead of continuing a broken chain.
//! - With `fail_closed`, [`AuditLog::record`] returns only after the line was written to the
//!   log (and mirror); a write error reaches the caller, which must refuse the request.

mod reader;
mod record;
mod writer;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use reader::{query, read_head, verify, AuditFilter, ChainHead, VerifyError, VerifySummary};
pub use record::{AuditRecord, DenialKind, DenialReason, Outcome, GENESIS_HASH};
pub use writer::AuditLog;

/// The log's file name inside the data directory.
pub const LOG_FILE: &str = "audit.log";

/// How often queued records are fsynced (and the head rewritten) at most. Records written
/// between two fsyncs are in the page cache: a power loss (not a process crash) loses them.
pub const SYNC_INTERVAL: Duration = Duration::from_millis(100);

/// How many records may wait for the writer before [`AuditLog::record`] gives up on one.
pub const QUEUE_CAPACITY: usize = 65_536;

/// Where the head of the chain of the log at `log` is kept: the same path with the
/// extension `head` (`audit.log` → `audit.head`).
pub fn head_path(log: &std::path::Path) -> PathBuf {
    log.with_extension("head")
}

/// A second destination for every line, for log shippers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mirror {
    /// The server's standard output.
    Stdout,
    /// A file, appended to and created with mode 0600.
    File(PathBuf),
}

/// How the log is written.
#[derive(Debug, Clone, Default)]
pub struct AuditConfig {
    /// Also write every line here.
    pub mirror: Option<Mirror>,
    /// Make [`AuditLog::record`] wait for the write and report its failure, so that the
    /// server refuses requests it cannot audit (Vault's behaviour). Off: records are queued
    /// and write errors are logged and counted.
    pub fail_closed: bool,
}

/// Audit errors. They carry paths and positions, never record contents beyond ids.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A file could not be opened, read or written.
    #[error("audit log {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The existing log does not continue a whole chain; the server must not append to it.
    #[error(
        "audit log {path} is broken at record {position}: {reason}; run `rotary audit verify \
         --data-dir DIR`, keep the file as evidence and move it (and audit.head) aside to \
         start a new chain"
    )]
    Broken {
        /// The file.
        path: PathBuf,
        /// 1-based line of the first bad record.
        position: u64,
        /// What is wrong.
        reason: String,
    },
    /// Writing the record (to the log or the mirror) failed; with `fail_closed` the request
    /// must be refused.
    #[error("writing the audit record failed: {0}")]
    Write(Arc<std::io::Error>),
    /// The queue to the writer is full (the disk is too slow or stuck).
    #[error("the audit queue is full")]
    QueueFull,
    /// The writer thread has stopped.
    #[error("the audit writer has stopped")]
    Closed,
}

/// `Result` with [`AuditError`].
pub type Result<T, E = AuditError> = std::result::Result<T, E>;
