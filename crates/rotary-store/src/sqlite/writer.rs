//! Group commit: one thread owns SQLite's writer connection and commits the writes that
//! queued up meanwhile in one transaction, so that one fsync makes many writes durable.
//!
//! The connection is a `rusqlite` one, driven synchronously on that thread with cached
//! prepared statements: a write's statements run back to back, with no hop to another
//! thread per statement. It links the same SQLite library as the readers' `sqlx` pool.
//!
//! A caller's write is acknowledged only after the transaction holding it has committed
//! (`synchronous=FULL`: after the fsync). Writes apply in the order they were queued.
//! A write that fails on its own terms (a compare-and-swap lost, a name taken) fails before
//! it has changed anything, so the others in its batch commit without it. An unexpected
//! failure (I/O, a full disk) rolls the batch back and replays each of its writes in a
//! transaction of its own, so that one write's failure is never another's.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::types::FromSql;
use rusqlite::{ffi, params, Connection, OpenFlags, OptionalExtension, Params};
use sqlx::error::{DatabaseError, ErrorKind};
use tokio::sync::{mpsc, oneshot};

use crate::{Claim, Error, MetaSwap, Result, SecretRow, SecretUpdate, VersionWrite};

/// Writes that wait for one commit at most.
const MAX_BATCH: usize = 256;
/// Writes queued before callers wait to queue.
const QUEUE: usize = 4096;

/// One write, owned so that it can cross to the writer task.
#[derive(Debug)]
pub(super) enum Write {
    Insert(SecretRow, Vec<VersionWrite>),
    Update(SecretUpdate),
    Delete(String),
    /// Deletes a secret only if its deletion date is still at or before `now_ms`.
    DeleteIfDue {
        uid: String,
        now_ms: i64,
    },
    RecordAccess {
        uid: String,
        version_id: String,
        day_ms: i64,
    },
    /// Sets a secret's `replication_due_ms` if its revision is still `revision` (no bump).
    SetReplicationDue {
        uid: String,
        revision: i64,
        due_ms: Option<i64>,
    },
    PutMetaIfAbsent(String, Vec<u8>),
    PutMetas(Vec<(String, Vec<u8>)>),
    /// Replaces values only if every one still holds its expected value.
    PutMetasIfUnchanged(Vec<MetaSwap>),
    DeleteMeta(String),
    PutHistory {
        id: String,
        secret_uid: String,
        started_ms: i64,
        record: String,
    },
    /// Claims a rotation for `lease_ms` of the store's clock.
    Claim {
        uid: String,
        owner: String,
        lease_ms: i64,
    },
    /// Extends a claim that is still held.
    Renew(Claim, i64),
    /// Gives up a claim that is still held.
    Release(Claim),
}

/// What a write answers.
#[derive(Debug)]
pub(super) enum Done {
    /// Whether it changed a row, where the operation says.
    Changed(bool),
    /// The claim a [`Write::Claim`] got, if any.
    Claimed(Option<Claim>),
}

impl Done {
    /// Whether the write changed a row (a claim counts when it was granted).
    pub(super) fn changed(self) -> bool {
        match self {
            Self::Changed(b) => b,
            Self::Claimed(c) => c.is_some(),
        }
    }
}

type Job = (Write, oneshot::Sender<Result<Done>>);

/// The handle callers queue writes on.
#[derive(Debug, Clone)]
pub(super) struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer thread over `conn`, the connection to the database file `db`. The
    /// thread ends (closing the connection) once every handle is dropped and the writes
    /// queued before have been answered.
    pub(super) fn spawn(conn: Connection, db: PathBuf) -> Result<Self> {
        let (tx, rx) = mpsc::channel(QUEUE);
        std::thread::Builder::new()
            .name("rotary-sqlite-writer".into())
            .spawn(move || run(conn, rx, &db))
            .map_err(|e| Error::Backend(sqlx::Error::Io(e)))?;
        Ok(Self { tx })
    }

    /// Queues a write and waits until it is durable (or failed).
    pub(super) async fn write(&self, w: Write) -> Result<Done> {
        self.send(w).await
    }

    /// Queues a write and answers whether it changed a row.
    pub(super) async fn changed(&self, w: Write) -> Result<bool> {
        self.send(w).await.map(Done::changed)
    }

    async fn send(&self, w: Write) -> Result<Done> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((w, reply))
            .await
            .map_err(|_| Error::Corrupt("the store's writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| Error::Corrupt("the store's writer has stopped".into()))?
    }
}

/// Opens the writer connection on the database file `db` (which exists: migrations made
/// it) with the settings every connection of the store has: WAL, `synchronous=FULL` (a
/// commit returns after its fsync), foreign keys enforced, a 10 s busy timeout.
pub(super) fn open(db: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(backend)?;
    conn.busy_timeout(Duration::from_secs(10))
        .map_err(backend)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL;",
    )
    .map_err(backend)?;
    // Every statement the writer runs stays prepared.
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

fn run(conn: Connection, mut rx: mpsc::Receiver<Job>, db: &Path) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while let Some(job) = rx.blocking_recv() {
        batch.push(job);
        // Everything queued meanwhile commits with it.
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        commit_batch(&conn, &mut batch, db);
        batch.clear();
    }
}

/// Why a write in a batch did not apply.
enum Failed {
    /// On its own terms, before changing anything: answer it, keep the batch.
    Refused(Error),
    /// Unexpectedly: the batch must be rolled back.
    Broken(Error),
}

/// Runs one statement of no rows; answers how many rows it changed.
fn exec(conn: &Connection, sql: &str, params: impl Params) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params)
}

/// Runs one statement for its first row's first column, if it has a row.
fn scalar<T: FromSql>(
    conn: &Connection,
    sql: &str,
    params: impl Params,
) -> rusqlite::Result<Option<T>> {
    conn.prepare_cached(sql)?
        .query_row(params, |r| r.get(0))
        .optional()
}

fn commit_batch(conn: &Connection, batch: &mut Vec<Job>, db: &Path) {
    let mut answers: Vec<Result<Done>> = Vec::with_capacity(batch.len());
    let together = (|| {
        exec(conn, "BEGIN IMMEDIATE", []).map_err(backend)?;
        for (w, _) in batch.iter() {
            match apply(conn, w) {
                Ok(done) => answers.push(Ok(done)),
                Err(Failed::Refused(e)) => answers.push(Err(e)),
                Err(Failed::Broken(e)) => return Err(e),
            }
        }
        exec(conn, "COMMIT", []).map_err(backend)?;
        Ok::<_, Error>(())
    })();
    match together {
        Ok(()) => {
            for ((_, reply), answer) in batch.drain(..).zip(answers) {
                let _ = reply.send(answer);
            }
        }
        Err(_) => {
            rollback(conn);
            // One at a time, so the failure is answered to the write that caused it.
            for (w, reply) in batch.drain(..) {
                let _ = reply.send(alone(conn, &w, db));
            }
        }
    }
}

fn rollback(conn: &Connection) {
    // A failed COMMIT or statement may have left the transaction open; close it.
    if !conn.is_autocommit() {
        let _ = exec(conn, "ROLLBACK", []);
    }
}

/// A SQLite failure of the writer connection, as the store reports backend failures: a
/// database error whose code is SQLite's extended result code (as `sqlx` gives it), so
/// that callers and [`classify`] read both connections' failures alike.
#[derive(Debug)]
struct WriteFailure {
    message: String,
    /// The extended result code, for failures SQLite reported.
    code: Option<i32>,
}

impl std::fmt::Display for WriteFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for WriteFailure {}

impl DatabaseError for WriteFailure {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<Cow<'_, str>> {
        self.code.map(|c| c.to_string().into())
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> ErrorKind {
        match self.code {
            Some(ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY) => {
                ErrorKind::UniqueViolation
            }
            Some(ffi::SQLITE_CONSTRAINT_FOREIGNKEY) => ErrorKind::ForeignKeyViolation,
            Some(ffi::SQLITE_CONSTRAINT_NOTNULL) => ErrorKind::NotNullViolation,
            Some(ffi::SQLITE_CONSTRAINT_CHECK) => ErrorKind::CheckViolation,
            _ => ErrorKind::Other,
        }
    }
}

/// The store's error for a failure of the writer connection.
fn backend(e: rusqlite::Error) -> Error {
    let code = match &e {
        rusqlite::Error::SqliteFailure(failure, _) => Some(failure.extended_code),
        _ => None,
    };
    let message = match &e {
        rusqlite::Error::SqliteFailure(failure, Some(message)) => {
            format!("{message} (code {})", failure.extended_code)
        }
        e => e.to_string(),
    };
    Error::Backend(sqlx::Error::Database(Box::new(WriteFailure {
        message,
        code,
    })))
}

/// Whether `e` is a unique (or primary key) constraint violation.
fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(
                f.extended_code,
                ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            )
    )
}

/// Names the failures an operator can act on: a full disk, a read-only store. A file system
/// made read-only under the open database (as the kernel does after an error, with
/// `errors=remount-ro`) fails SQLite's writes with a plain I/O error: the file system is
/// asked whether it still takes changes to the database file.
fn classify(e: Error, db: &Path) -> Error {
    let Error::Backend(sqlx::Error::Database(failure)) = &e else {
        return e;
    };
    // SQLite's primary result codes (the low byte of an extended code).
    match failure
        .code()
        .and_then(|c| c.parse::<i32>().ok())
        .map(|c| c & 0xff)
    {
        Some(13) => Error::Full,
        Some(8) => Error::ReadOnly,
        Some(10) if read_only(db) => Error::ReadOnly,
        _ => e,
    }
}

/// Whether the file system refuses changes to `db`: setting its access time to what it is,
/// a change of nothing that a read-only file system still refuses (`EROFS`).
fn read_only(db: &Path) -> bool {
    let touch = || -> std::io::Result<()> {
        let file = std::fs::File::open(db)?;
        let accessed = file.metadata()?.accessed()?;
        file.set_times(std::fs::FileTimes::new().set_accessed(accessed))
    };
    matches!(touch(), Err(e) if e.kind() == std::io::ErrorKind::ReadOnlyFilesystem)
}

fn alone(conn: &Connection, w: &Write, db: &Path) -> Result<Done> {
    exec(conn, "BEGIN IMMEDIATE", []).map_err(|e| classify(backend(e), db))?;
    let r = match apply(conn, w) {
        Ok(done) => exec(conn, "COMMIT", []).map(|_| done).map_err(backend),
        Err(Failed::Refused(e) | Failed::Broken(e)) => Err(e),
    };
    if r.is_err() {
        rollback(conn);
    }
    r.map_err(|e| classify(e, db))
}

fn broken(e: rusqlite::Error) -> Failed {
    Failed::Broken(backend(e))
}

const UPSERT_VERSION: &str =
    "INSERT INTO versions (secret_uid, version_id, seq, created_ms, last_accessed_ms, \
     stages, kms_key_id, ciphertext) VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
     ON CONFLICT (secret_uid, version_id) DO UPDATE SET stages = excluded.stages, \
     kms_key_id = COALESCE(excluded.kms_key_id, versions.kms_key_id), \
     ciphertext = COALESCE(excluded.ciphertext, versions.ciphertext)";

fn upsert_version(conn: &Connection, uid: &str, v: &VersionWrite) -> Result<(), Failed> {
    exec(
        conn,
        UPSERT_VERSION,
        params![
            uid,
            v.row.version_id,
            v.row.seq,
            v.row.created_ms,
            v.row.last_accessed_ms,
            crate::sql::stages_json(&v.row.stages),
            v.row.kms_key_id,
            v.ciphertext,
        ],
    )
    .map_err(broken)?;
    Ok(())
}

fn apply(conn: &Connection, w: &Write) -> Result<Done, Failed> {
    match w {
        Write::Insert(row, versions) => {
            let r = exec(
                conn,
                "INSERT INTO secrets (uid, namespace, name, arn, created_ms, last_changed_ms, \
                 last_accessed_ms, deleted_ms, rotation_due_ms, replication_due_ms, revision, \
                 doc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                params![
                    row.uid,
                    row.namespace,
                    row.name,
                    row.arn,
                    row.created_ms,
                    row.last_changed_ms,
                    row.last_accessed_ms,
                    row.deleted_ms,
                    row.rotation_due_ms,
                    row.replication_due_ms,
                    row.revision,
                    row.doc,
                ],
            );
            match r {
                Err(e) if is_unique_violation(&e) => {
                    return Err(Failed::Refused(Error::NameTaken(row.name.clone())))
                }
                r => r.map_err(broken)?,
            };
            for v in versions {
                upsert_version(conn, &row.uid, v)?;
            }
            Ok(Done::Changed(true))
        }
        Write::Update(update) => {
            let row = &update.row;
            if let Some(claim) = &update.claim {
                if !claim_held(conn, claim).map_err(broken)? {
                    return Err(Failed::Refused(Error::ClaimLost(claim.uid.clone())));
                }
            }
            let changed = exec(
                conn,
                "UPDATE secrets SET name = ?, arn = ?, last_changed_ms = ?, \
                 last_accessed_ms = ?, deleted_ms = ?, rotation_due_ms = ?, \
                 replication_due_ms = ?, revision = ?, doc = ? WHERE uid = ? AND revision = ?",
                params![
                    row.name,
                    row.arn,
                    row.last_changed_ms,
                    row.last_accessed_ms,
                    row.deleted_ms,
                    row.rotation_due_ms,
                    row.replication_due_ms,
                    row.revision,
                    row.doc,
                    row.uid,
                    row.revision - 1,
                ],
            )
            .map_err(broken)?;
            if changed != 1 {
                return Err(Failed::Refused(Error::Conflict(row.name.clone())));
            }
            for v in &update.upsert_versions {
                upsert_version(conn, &row.uid, v)?;
            }
            for id in &update.delete_versions {
                exec(
                    conn,
                    "DELETE FROM versions WHERE secret_uid = ? AND version_id = ?",
                    params![row.uid, id],
                )
                .map_err(broken)?;
            }
            Ok(Done::Changed(true))
        }
        Write::Delete(uid) => delete_secret(conn, uid).map(Done::Changed),
        Write::DeleteIfDue { uid, now_ms } => {
            // Checked and deleted under the one write lock: a RestoreSecret that committed
            // before this keeps the secret.
            let due: Option<i64> = scalar(
                conn,
                "SELECT 1 FROM secrets WHERE uid = ? AND deleted_ms IS NOT NULL \
                 AND deleted_ms <= ?",
                params![uid, now_ms],
            )
            .map_err(broken)?;
            if due.is_none() {
                return Ok(Done::Changed(false));
            }
            delete_secret(conn, uid).map(Done::Changed)
        }
        Write::RecordAccess {
            uid,
            version_id,
            day_ms,
        } => {
            exec(
                conn,
                "UPDATE secrets SET last_accessed_ms = ? WHERE uid = ?",
                params![day_ms, uid],
            )
            .map_err(broken)?;
            exec(
                conn,
                "UPDATE versions SET last_accessed_ms = ? \
                 WHERE secret_uid = ? AND version_id = ?",
                params![day_ms, uid, version_id],
            )
            .map_err(broken)?;
            Ok(Done::Changed(true))
        }
        Write::SetReplicationDue {
            uid,
            revision,
            due_ms,
        } => {
            let n = exec(
                conn,
                "UPDATE secrets SET replication_due_ms = ? WHERE uid = ? AND revision = ?",
                params![due_ms, uid, revision],
            )
            .map_err(broken)?;
            Ok(Done::Changed(n == 1))
        }
        Write::PutMetaIfAbsent(key, value) => {
            let n = exec(
                conn,
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT DO NOTHING",
                params![key, value],
            )
            .map_err(broken)?;
            Ok(Done::Changed(n == 1))
        }
        Write::PutMetas(entries) => {
            for (key, value) in entries {
                exec(
                    conn,
                    "INSERT INTO meta (key, value) VALUES (?, ?) \
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    params![key, value],
                )
                .map_err(broken)?;
            }
            Ok(Done::Changed(true))
        }
        Write::PutMetasIfUnchanged(swaps) => {
            for swap in swaps {
                let current: Option<Vec<u8>> = conn
                    .query_row(
                        "SELECT value FROM meta WHERE key = ?",
                        params![swap.key],
                        |row| row.get(0),
                    )
                    .optional()
                    .map_err(broken)?;
                if current.as_deref() != Some(swap.expected.as_slice()) {
                    return Ok(Done::Changed(false));
                }
            }
            for swap in swaps {
                exec(
                    conn,
                    "UPDATE meta SET value = ? WHERE key = ?",
                    params![swap.new, swap.key],
                )
                .map_err(broken)?;
            }
            Ok(Done::Changed(true))
        }
        Write::DeleteMeta(key) => {
            let n = exec(conn, "DELETE FROM meta WHERE key = ?", params![key]).map_err(broken)?;
            Ok(Done::Changed(n == 1))
        }
        Write::PutHistory {
            id,
            secret_uid,
            started_ms,
            record,
        } => {
            exec(
                conn,
                "INSERT INTO rotation_history (id, secret_uid, started_ms, record) \
                 VALUES (?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET record = excluded.record",
                params![id, secret_uid, started_ms, record],
            )
            .map_err(broken)?;
            Ok(Done::Changed(true))
        }
        Write::Claim {
            uid,
            owner,
            lease_ms,
        } => claim(conn, uid, owner, *lease_ms)
            .map(Done::Claimed)
            .map_err(broken),
        Write::Renew(claim, lease_ms) => {
            let n = exec(
                conn,
                "UPDATE rotation_claims SET lease_until_ms = ? \
                 WHERE uid = ? AND owner = ? AND fence = ?",
                params![
                    now_ms().saturating_add(*lease_ms),
                    claim.uid,
                    claim.owner,
                    claim.fence
                ],
            )
            .map_err(broken)?;
            Ok(Done::Changed(n == 1))
        }
        Write::Release(claim) => {
            // The row stays (without owner) so that the next claim's fence counts on.
            let n = exec(
                conn,
                "UPDATE rotation_claims SET owner = '', lease_until_ms = 0 \
                 WHERE uid = ? AND owner = ? AND fence = ?",
                params![claim.uid, claim.owner, claim.fence],
            )
            .map_err(broken)?;
            Ok(Done::Changed(n == 1))
        }
    }
}

/// The store's clock (ms since the epoch): leases are measured on it, so that nodes' clocks
/// need not agree (with SQLite there is one node).
#[expect(
    clippy::disallowed_methods,
    reason = "the store has no Rotary clock; leases are wall-clock durations"
)]
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Deletes a secret with its versions, history and claim; returns whether it existed.
fn delete_secret(conn: &Connection, uid: &str) -> Result<bool, Failed> {
    for sql in [
        "DELETE FROM versions WHERE secret_uid = ?",
        "DELETE FROM rotation_history WHERE secret_uid = ?",
        "DELETE FROM rotation_claims WHERE uid = ?",
    ] {
        exec(conn, sql, [uid]).map_err(broken)?;
    }
    let n = exec(conn, "DELETE FROM secrets WHERE uid = ?", [uid]).map_err(broken)?;
    Ok(n == 1)
}

/// Whether `claim` is still the secret's (same owner and fence; an expired lease that
/// nobody took over still counts).
fn claim_held(conn: &Connection, claim: &Claim) -> rusqlite::Result<bool> {
    let held: Option<i64> = scalar(
        conn,
        "SELECT 1 FROM rotation_claims WHERE uid = ? AND owner = ? AND fence = ?",
        params![claim.uid, claim.owner, claim.fence],
    )?;
    Ok(held.is_some())
}

/// Claims a secret's rotation for `owner` (see [`crate::Store::claim_rotation`]); `None`
/// while another owner's lease runs or when the secret does not exist.
fn claim(
    conn: &Connection,
    uid: &str,
    owner: &str,
    lease_ms: i64,
) -> rusqlite::Result<Option<Claim>> {
    let exists: Option<i64> = scalar(conn, "SELECT 1 FROM secrets WHERE uid = ?", [uid])?;
    if exists.is_none() {
        return Ok(None);
    }
    let now = now_ms();
    let until = now.saturating_add(lease_ms);
    let current: Option<(String, i64, i64)> = conn
        .prepare_cached("SELECT owner, fence, lease_until_ms FROM rotation_claims WHERE uid = ?")?
        .query_row([uid], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let fence = match current {
        None => {
            exec(
                conn,
                "INSERT INTO rotation_claims (uid, owner, fence, lease_until_ms) \
                 VALUES (?, ?, 1, ?)",
                params![uid, owner, until],
            )?;
            1
        }
        // Held by `owner` already: extend the lease, keep the fence.
        Some((held_by, fence, _)) if held_by == owner && !owner.is_empty() => {
            exec(
                conn,
                "UPDATE rotation_claims SET lease_until_ms = ? WHERE uid = ?",
                params![until, uid],
            )?;
            fence
        }
        // Another owner's lease still runs.
        Some((held_by, _, lease_until)) if !held_by.is_empty() && lease_until > now => {
            return Ok(None)
        }
        // Released or expired: taken over with the next fence.
        Some((_, fence, _)) => {
            exec(
                conn,
                "UPDATE rotation_claims SET owner = ?, fence = ?, lease_until_ms = ? \
                 WHERE uid = ?",
                params![owner, fence + 1, until, uid],
            )?;
            fence + 1
        }
    };
    Ok(Some(Claim {
        uid: uid.to_owned(),
        owner: owner.to_owned(),
        fence,
    }))
}
