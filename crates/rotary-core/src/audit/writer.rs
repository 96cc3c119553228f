//! [`AuditLog`]: the handle requests use, and the writer thread that owns the file.
//!
//! The writer is a plain thread rather than a tokio task because everything it does is a
//! blocking file operation; requests hand it records through a bounded channel and, when
//! fail-closed, wait on a oneshot for the outcome. One thread owning the chain state is
//! what keeps file order and sequence order the same.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use tokio::sync::oneshot;

use super::reader::{last_record, read_head, ChainHead};
use super::{
    head_path, AuditConfig, AuditError, AuditRecord, Mirror, Result, GENESIS_HASH, QUEUE_CAPACITY,
    SYNC_INTERVAL,
};

type Reply = oneshot::Sender<Result<()>>;

/// How long the writer lets records accumulate after writing a batch nobody waits for.
const COALESCE_PAUSE: std::time::Duration = std::time::Duration::from_millis(2);

enum Msg {
    Record(Box<AuditRecord>, Option<Reply>),
    Flush(Reply),
}

#[derive(Debug, Default)]
struct Counters {
    records: AtomicU64,
    write_errors: AtomicU64,
    dropped: AtomicU64,
    failing: AtomicBool,
}

/// The audit log of one server. Cheap to share (`Arc`); dropping the last handle drains the
/// queue, fsyncs and stops the writer.
#[derive(Debug)]
pub struct AuditLog {
    tx: Option<SyncSender<Msg>>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
    fail_closed: bool,
    path: PathBuf,
}

/// A process killed while appending (a SIGKILL can end a large write between pages) leaves
/// the log ending in part of a line. That record was never written whole, so its request was
/// never answered; the partial line is cut off and its bytes appended to `<log>.torn` as
/// evidence, and the chain continues from the last whole record. Everything else about the
/// tail (an edited line, a log behind `audit.head`) is still refused by the checks after this.
/// Returns the log's length afterwards.
fn cut_torn_tail(file: &mut File, path: &Path, len: u64) -> std::io::Result<u64> {
    use std::io::{Read, Seek, SeekFrom};
    const BLOCK: u64 = 64 * 1024;
    const MAX_RECORD: u64 = 16 * 1024 * 1024;
    if len == 0 {
        return Ok(0);
    }
    let mut last = [0u8; 1];
    file.seek(SeekFrom::Start(len - 1))?;
    file.read_exact(&mut last)?;
    if last[0] == b'\n' {
        return Ok(len);
    }
    // Find the end of the last whole line, no further back than one record can be long.
    let mut end = len;
    let keep = loop {
        let from = end.saturating_sub(BLOCK);
        let mut block = vec![0u8; (end - from) as usize];
        file.seek(SeekFrom::Start(from))?;
        file.read_exact(&mut block)?;
        if let Some(nl) = block.iter().rposition(|&b| b == b'\n') {
            break from + nl as u64 + 1;
        }
        if from == 0 {
            break 0;
        }
        if len - from > MAX_RECORD {
            // Not a torn record: leave it for the checks to refuse.
            return Ok(len);
        }
        end = from;
    };
    let mut torn = vec![0u8; (len - keep) as usize];
    file.seek(SeekFrom::Start(keep))?;
    file.read_exact(&mut torn)?;
    let mut evidence_path = path.as_os_str().to_owned();
    evidence_path.push(".torn");
    let mut evidence = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(&evidence_path)?;
    evidence.write_all(&torn)?;
    evidence.write_all(b"\n")?;
    evidence.sync_data()?;
    file.set_len(keep)?;
    file.sync_data()?;
    tracing::warn!(
        log = %path.display(),
        bytes = torn.len(),
        evidence = %std::path::Path::new(&evidence_path).display(),
        "The audit log ended in a torn record (the process was killed while appending it); \
         its bytes were moved to the evidence file and the chain continues from the last whole record"
    );
    Ok(keep)
}

impl AuditLog {
    /// Opens (creating, mode 0600) the log at `path`, checks that its last record is whole
    /// and not behind `audit.head`, and starts the writer continuing its chain.
    ///
    /// Refuses ([`AuditError::Broken`]) a log whose last line is torn, does not parse or
    /// fails its hash, or which ends before the head: appending to a broken chain would
    /// hide the break. Only the tail is checked here; `rotary audit verify` checks it all.
    pub fn open(path: &Path, config: AuditConfig) -> Result<Arc<AuditLog>> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| AuditError::Io { path, source }
        };
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .open(path)
            .map_err(io(path))?;
        let meta = file.metadata().map_err(io(path))?;
        if !meta.is_file() {
            return Err(AuditError::Io {
                path: path.to_owned(),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "the audit log must be a regular file",
                ),
            });
        }
        let len = cut_torn_tail(&mut file, path, meta.len()).map_err(io(path))?;
        let refuse = |position, reason: String| AuditError::Broken {
            path: path.to_owned(),
            position,
            reason,
        };
        let head = read_head(path)?;
        let last = last_record(&mut file, len)
            .map_err(io(path))?
            .map_err(|reason| refuse(head.as_ref().map_or(0, |h| h.sequence) + 1, reason))?;
        let (sequence, hash) = last
            .map(|r| (r.sequence, r.hash))
            .unwrap_or((0, GENESIS_HASH.to_owned()));
        if let Some(h) = &head {
            if h.sequence > sequence {
                return Err(refuse(
                    sequence + 1,
                    format!(
                        "the log ends after record {sequence} but audit.head records {} \
                         (truncated)",
                        h.sequence
                    ),
                ));
            }
            if h.sequence == sequence && h.hash != hash {
                return Err(refuse(sequence, "Hash differs from audit.head".into()));
            }
        }
        let mirror = match &config.mirror {
            None => None,
            Some(Mirror::Stdout) => Some(Sink::Stdout),
            Some(Mirror::File(p)) => Some(Sink::File(
                OpenOptions::new()
                    .append(true)
                    .create(true)
                    .mode(0o600)
                    .open(p)
                    .map_err(io(p))?,
                p.clone(),
            )),
        };
        let counters = Arc::new(Counters::default());
        let (tx, rx) = mpsc::sync_channel(QUEUE_CAPACITY);
        let writer = Writer {
            path: path.to_owned(),
            file,
            len,
            mirror,
            sequence,
            hash,
            synced: ChainHead {
                sequence,
                hash: String::new(),
            },
            counters: counters.clone(),
            last_error_log: None,
            #[cfg(test)]
            fail_writes: FAIL_WRITES.with(|f| f.get()),
        };
        let thread = std::thread::Builder::new()
            .name("rotary-audit".into())
            .spawn(move || writer.run(rx))
            .map_err(io(path))?;
        Ok(Arc::new(AuditLog {
            tx: Some(tx),
            thread: Some(thread),
            counters,
            fail_closed: config.fail_closed,
            path: path.to_owned(),
        }))
    }

    /// Appends `rec` (its `sequence`, `prev_hash` and `hash` are set by the writer).
    ///
    /// Fail-closed: waits until the line is written to the log and the mirror (not until it
    /// is fsynced, which happens within [`SYNC_INTERVAL`]) and returns the write error, if
    /// any, so the caller can refuse the request. Otherwise returns at once; errors are
    /// logged and counted in [`write_errors_total`](Self::write_errors_total).
    pub async fn record(&self, rec: AuditRecord) -> Result<()> {
        let Some(tx) = &self.tx else {
            return Err(AuditError::Closed);
        };
        if !self.fail_closed {
            return match tx.try_send(Msg::Record(Box::new(rec), None)) {
                Ok(()) => Ok(()),
                Err(TrySendError::Full(_)) => {
                    let n = self.counters.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                    self.counters.write_errors.fetch_add(1, Ordering::Relaxed);
                    // Logged at 1, 2, 4, 8, … drops: an overload must not also flood the log.
                    if n.is_power_of_two() {
                        tracing::error!(dropped_total = n, "Audit queue full; record dropped.");
                    }
                    Ok(())
                }
                Err(TrySendError::Disconnected(_)) => {
                    self.counters.write_errors.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                }
            };
        }
        let (reply, done) = oneshot::channel();
        match tx.try_send(Msg::Record(Box::new(rec), Some(reply))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.counters.write_errors.fetch_add(1, Ordering::Relaxed);
                return Err(AuditError::QueueFull);
            }
            Err(TrySendError::Disconnected(_)) => return Err(AuditError::Closed),
        }
        done.await.map_err(|_| AuditError::Closed)?
    }

    /// Writes and fsyncs everything queued before this call and rewrites `audit.head`; for
    /// graceful shutdown and tests.
    pub async fn flush(&self) -> Result<()> {
        let Some(tx) = &self.tx else {
            return Err(AuditError::Closed);
        };
        let (reply, done) = oneshot::channel();
        // A blocking send: a flush must not be lost to a full queue.
        let tx = tx.clone();
        tokio::task::spawn_blocking(move || tx.send(Msg::Flush(reply)))
            .await
            .map_err(|_| AuditError::Closed)?
            .map_err(|_| AuditError::Closed)?;
        done.await.map_err(|_| AuditError::Closed)?
    }

    /// Records written so far by this process (`rotary_audit_records_total`).
    pub fn records_total(&self) -> u64 {
        self.counters.records.load(Ordering::Relaxed)
    }

    /// Records that could not be written, to the log or the mirror, including dropped ones
    /// (`rotary_audit_write_errors_total`).
    pub fn write_errors_total(&self) -> u64 {
        self.counters.write_errors.load(Ordering::Relaxed)
    }

    /// Records dropped because the queue was full (fail-open only;
    /// `rotary_audit_dropped_total`).
    pub fn dropped_total(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    /// Whether the last write (to the log or the mirror) failed. With `fail_closed`, the
    /// request path can refuse a mutating request up front while this is true, before
    /// doing anything it could not audit; the record itself is written after the operation,
    /// when its outcome is known.
    pub fn is_failing(&self) -> bool {
        self.counters.failing.load(Ordering::Relaxed)
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether requests wait for their record.
    pub fn fail_closed(&self) -> bool {
        self.fail_closed
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        // Closing the channel makes the writer drain, fsync and exit.
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
thread_local! {
    /// Test hook: logs opened on this thread fail every write to the primary file.
    pub(super) static FAIL_WRITES: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

enum Sink {
    Stdout,
    File(File, PathBuf),
}

impl Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(buf)?;
                out.flush()
            }
            Sink::File(f, _) => f.write_all(buf),
        }
    }
}

struct Writer {
    path: PathBuf,
    file: File,
    /// File length after the last whole batch; a failed write is cut back to it.
    len: u64,
    mirror: Option<Sink>,
    sequence: u64,
    hash: String,
    /// The head last written to `audit.head`.
    synced: ChainHead,
    counters: Arc<Counters>,
    last_error_log: Option<Instant>,
    #[cfg(test)]
    fail_writes: bool,
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<Msg>) {
        let mut dirty_since: Option<Instant> = None;
        loop {
            let first = match dirty_since {
                None => match rx.recv() {
                    Ok(m) => m,
                    Err(_) => break,
                },
                Some(t) => {
                    let wait = SYNC_INTERVAL.saturating_sub(t.elapsed());
                    match rx.recv_timeout(wait) {
                        Ok(m) => m,
                        Err(RecvTimeoutError::Timeout) => {
                            let _ = self.sync();
                            dirty_since = None;
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
            };
            let mut batch = vec![first];
            while batch.len() < 4096 {
                match rx.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(_) => break,
                }
            }
            // Nobody waits on a batch without fail-closed records or flushes: after writing
            // it, pause briefly so that records queue up meanwhile instead of each one
            // waking this thread (a futex wake and a context switch per request).
            let someone_waits = batch
                .iter()
                .any(|m| matches!(m, Msg::Record(_, Some(_)) | Msg::Flush(_)));
            let mut flushes = Vec::new();
            let wrote = self.write_batch(batch, &mut flushes);
            if wrote && dirty_since.is_none() {
                dirty_since = Some(Instant::now());
            }
            let due = dirty_since.is_some_and(|t| t.elapsed() >= SYNC_INTERVAL);
            if !flushes.is_empty() || due {
                let res = self.sync();
                dirty_since = None;
                for f in flushes {
                    let _ = f.send(res.as_ref().map(|_| ()).map_err(|e| {
                        AuditError::Write(Arc::new(std::io::Error::new(e.kind(), e.to_string())))
                    }));
                }
            }
            if !someone_waits {
                std::thread::sleep(COALESCE_PAUSE);
            }
        }
        let _ = self.sync();
    }

    /// Seals and writes one batch; replies to fail-closed waiters. Returns whether anything
    /// was written.
    fn write_batch(&mut self, batch: Vec<Msg>, flushes: &mut Vec<Reply>) -> bool {
        let (start_seq, start_hash) = (self.sequence, self.hash.clone());
        let mut buf = Vec::with_capacity(batch.len() * 512);
        let mut waiters = Vec::new();
        for msg in batch {
            match msg {
                Msg::Flush(r) => flushes.push(r),
                Msg::Record(mut rec, reply) => match rec.seal(self.sequence + 1, &self.hash) {
                    Ok(line) => {
                        self.sequence = rec.sequence;
                        self.hash = rec.hash;
                        buf.extend_from_slice(&line);
                        waiters.extend(reply);
                    }
                    Err(e) => {
                        self.error(&format!("encoding a record: {e}"), 1);
                        if let Some(r) = reply {
                            let _ = r.send(Err(AuditError::Write(Arc::new(std::io::Error::new(
                                std::io::ErrorKind::InvalidData,
                                e,
                            )))));
                        }
                    }
                },
            }
        }
        if buf.is_empty() {
            return false;
        }
        let count = self.sequence - start_seq;
        let mut result = self.write_primary(&buf);
        if let Err(e) = &result {
            // Cut off a partial write and rewind the chain, so the next batch continues
            // from the last whole record.
            let _ = self.file.set_len(self.len);
            self.sequence = start_seq;
            self.hash = start_hash;
            self.error(&format!("writing {}: {e}", self.path.display()), count);
        } else {
            self.len += buf.len() as u64;
            self.counters.records.fetch_add(count, Ordering::Relaxed);
            if let Some(m) = &mut self.mirror {
                if let Err(e) = m.write(&buf) {
                    let what = match m {
                        Sink::Stdout => "stdout".to_owned(),
                        Sink::File(_, p) => p.display().to_string(),
                    };
                    self.error(&format!("writing the audit mirror {what}: {e}"), count);
                    result = Err(e);
                }
            }
        }
        self.counters
            .failing
            .store(result.is_err(), Ordering::Relaxed);
        let shared = result.map_err(Arc::new);
        for w in waiters {
            let _ = w.send(shared.clone().map_err(AuditError::Write));
        }
        shared.is_ok()
    }

    fn write_primary(&mut self, buf: &[u8]) -> std::io::Result<()> {
        #[cfg(test)]
        if self.fail_writes {
            return Err(std::io::Error::from_raw_os_error(28)); // ENOSPC
        }
        self.file.write_all(buf)
    }

    /// fsyncs the log and, if the chain moved, rewrites `audit.head` (temp file + rename).
    fn sync(&mut self) -> std::io::Result<()> {
        if let Err(e) = self.file.sync_data() {
            self.error(&format!("fsync of {}: {e}", self.path.display()), 0);
            return Err(e);
        }
        if self.synced.sequence == self.sequence && self.synced.hash == self.hash {
            return Ok(());
        }
        let head = ChainHead {
            sequence: self.sequence,
            hash: self.hash.clone(),
        };
        match write_head(&self.path, &head) {
            Ok(()) => {
                self.synced = head;
                Ok(())
            }
            Err(e) => {
                self.error(
                    &format!("writing {}: {e}", head_path(&self.path).display()),
                    0,
                );
                Err(e)
            }
        }
    }

    /// Counts `records` failed records and logs, at most once a second.
    fn error(&mut self, what: &str, records: u64) {
        self.counters
            .write_errors
            .fetch_add(records, Ordering::Relaxed);
        let now = Instant::now();
        if self
            .last_error_log
            .is_none_or(|t| now.duration_since(t).as_secs() >= 1)
        {
            self.last_error_log = Some(now);
            tracing::error!(
                records,
                errors_total = self.counters.write_errors.load(Ordering::Relaxed),
                "Audit write failed: {what}."
            );
        }
    }
}

fn write_head(log: &Path, head: &ChainHead) -> std::io::Result<()> {
    let path = head_path(log);
    let tmp = path.with_extension("head.tmp");
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    let mut body = serde_json::to_vec(head).map_err(std::io::Error::other)?;
    body.push(b'\n');
    f.write_all(&body)?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)
}
