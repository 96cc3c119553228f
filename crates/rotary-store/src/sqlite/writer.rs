//! Group commit: one task owns SQLite's writer connection and commits the writes that
//! queued up meanwhile in one transaction, so that one fsync makes many writes durable.
//!
//! A caller's write is acknowledged only after the transaction holding it has committed
//! (`synchronous=FULL`: after the fsync). Writes apply in the order they were queued.
//! A write that fails on its own terms (a compare-and-swap lost, a name taken) fails before
//! it has changed anything, so the others in its batch commit without it. An unexpected
//! failure (I/O, a full disk) rolls the batch back and replays each of its writes in a
//! transaction of its own, so that one write's failure is never another's.

use std::path::{Path, PathBuf};

use sqlx::sqlite::SqliteConnection;
use sqlx::Connection;
use tokio::sync::{mpsc, oneshot};

use crate::{Claim, Error, Result, SecretRow, SecretUpdate, VersionWrite};

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
    PutMetaIfAbsent(String, Vec<u8>),
    PutMetas(Vec<(String, Vec<u8>)>),
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
    /// Starts the writer task over `conn`, the connection to the database file `db`.
    pub(super) fn spawn(conn: SqliteConnection, db: PathBuf) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(conn, rx, db));
        Self { tx }
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

async fn run(mut conn: SqliteConnection, mut rx: mpsc::Receiver<Job>, db: PathBuf) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        commit_batch(&mut conn, &mut batch, &db).await;
        batch.clear();
    }
    let _ = conn.close().await;
}

/// Why a write in a batch did not apply.
enum Failed {
    /// On its own terms, before changing anything: answer it, keep the batch.
    Refused(Error),
    /// Unexpectedly: the batch must be rolled back.
    Broken(Error),
}

async fn commit_batch(conn: &mut SqliteConnection, batch: &mut Vec<Job>, db: &Path) {
    let mut answers: Vec<Result<Done>> = Vec::with_capacity(batch.len());
    let together = async {
        sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
        for (w, _) in batch.iter() {
            match apply(conn, w).await {
                Ok(done) => answers.push(Ok(done)),
                Err(Failed::Refused(e)) => answers.push(Err(e)),
                Err(Failed::Broken(e)) => return Err(e),
            }
        }
        sqlx::query("COMMIT").execute(&mut *conn).await?;
        Ok::<_, Error>(())
    }
    .await;
    match together {
        Ok(()) => {
            for ((_, reply), answer) in batch.drain(..).zip(answers) {
                let _ = reply.send(answer);
            }
        }
        Err(_) => {
            rollback(conn).await;
            // One at a time, so the failure is answered to the write that caused it.
            for (w, reply) in batch.drain(..) {
                let _ = reply.send(alone(conn, &w, db).await);
            }
        }
    }
}

async fn rollback(conn: &mut SqliteConnection) {
    // A failed COMMIT or statement may have left the transaction open; close it.
    let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
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

async fn alone(conn: &mut SqliteConnection, w: &Write, db: &Path) -> Result<Done> {
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut *conn)
        .await
        .map_err(|e| classify(e.into(), db))?;
    let r = match apply(conn, w).await {
        Ok(done) => sqlx::query("COMMIT")
            .execute(&mut *conn)
            .await
            .map(|_| done)
            .map_err(Error::from),
        Err(Failed::Refused(e) | Failed::Broken(e)) => Err(e),
    };
    if r.is_err() {
        let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
    }
    r.map_err(|e| classify(e, db))
}

fn broken(e: impl Into<Error>) -> Failed {
    Failed::Broken(e.into())
}

async fn apply(conn: &mut SqliteConnection, w: &Write) -> Result<Done, Failed> {
    match w {
        Write::Insert(row, versions) => {
            let r = sqlx::query(
                "INSERT INTO secrets (uid, namespace, name, arn, created_ms, last_changed_ms, \
                 last_accessed_ms, deleted_ms, rotation_due_ms, revision, doc) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&row.uid)
            .bind(&row.namespace)
            .bind(&row.name)
            .bind(&row.arn)
            .bind(row.created_ms)
            .bind(row.last_changed_ms)
            .bind(row.last_accessed_ms)
            .bind(row.deleted_ms)
            .bind(row.rotation_due_ms)
            .bind(row.revision)
            .bind(&row.doc)
            .execute(&mut *conn)
            .await;
            match r {
                Err(e) if super::is_unique_violation(&e) => {
                    return Err(Failed::Refused(Error::NameTaken(row.name.clone())))
                }
                r => r.map_err(broken)?,
            };
            for v in versions {
                super::upsert_version(conn, &row.uid, v)
                    .await
                    .map_err(broken)?;
            }
            Ok(Done::Changed(true))
        }
        Write::Update(update) => {
            let row = &update.row;
            if let Some(claim) = &update.claim {
                if !claim_held(conn, claim).await.map_err(broken)? {
                    return Err(Failed::Refused(Error::ClaimLost(claim.uid.clone())));
                }
            }
            let done = sqlx::query(
                "UPDATE secrets SET name = ?, arn = ?, last_changed_ms = ?, \
                 last_accessed_ms = ?, deleted_ms = ?, rotation_due_ms = ?, revision = ?, \
                 doc = ? WHERE uid = ? AND revision = ?",
            )
            .bind(&row.name)
            .bind(&row.arn)
            .bind(row.last_changed_ms)
            .bind(row.last_accessed_ms)
            .bind(row.deleted_ms)
            .bind(row.rotation_due_ms)
            .bind(row.revision)
            .bind(&row.doc)
            .bind(&row.uid)
            .bind(row.revision - 1)
            .execute(&mut *conn)
            .await
            .map_err(broken)?;
            if done.rows_affected() != 1 {
                return Err(Failed::Refused(Error::Conflict(row.name.clone())));
            }
            for v in &update.upsert_versions {
                super::upsert_version(conn, &row.uid, v)
                    .await
                    .map_err(broken)?;
            }
            for id in &update.delete_versions {
                sqlx::query("DELETE FROM versions WHERE secret_uid = ? AND version_id = ?")
                    .bind(&row.uid)
                    .bind(id)
                    .execute(&mut *conn)
                    .await
                    .map_err(broken)?;
            }
            Ok(Done::Changed(true))
        }
        Write::Delete(uid) => delete_secret(conn, uid).await.map(Done::Changed),
        Write::DeleteIfDue { uid, now_ms } => {
            // Checked and deleted under the one write lock: a RestoreSecret that committed
            // before this keeps the secret.
            let due: Option<i64> = sqlx::query_scalar(
                "SELECT 1 FROM secrets WHERE uid = ? AND deleted_ms IS NOT NULL \
                 AND deleted_ms <= ?",
            )
            .bind(uid)
            .bind(now_ms)
            .fetch_optional(&mut *conn)
            .await
            .map_err(broken)?;
            if due.is_none() {
                return Ok(Done::Changed(false));
            }
            delete_secret(conn, uid).await.map(Done::Changed)
        }
        Write::RecordAccess {
            uid,
            version_id,
            day_ms,
        } => {
            sqlx::query("UPDATE secrets SET last_accessed_ms = ? WHERE uid = ?")
                .bind(day_ms)
                .bind(uid)
                .execute(&mut *conn)
                .await
                .map_err(broken)?;
            sqlx::query(
                "UPDATE versions SET last_accessed_ms = ? \
                 WHERE secret_uid = ? AND version_id = ?",
            )
            .bind(day_ms)
            .bind(uid)
            .bind(version_id)
            .execute(&mut *conn)
            .await
            .map_err(broken)?;
            Ok(Done::Changed(true))
        }
        Write::PutMetaIfAbsent(key, value) => {
            let r =
                sqlx::query("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT DO NOTHING")
                    .bind(key)
                    .bind(value)
                    .execute(&mut *conn)
                    .await
                    .map_err(broken)?;
            Ok(Done::Changed(r.rows_affected() == 1))
        }
        Write::PutMetas(entries) => {
            for (key, value) in entries {
                sqlx::query(
                    "INSERT INTO meta (key, value) VALUES (?, ?) \
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                )
                .bind(key)
                .bind(value)
                .execute(&mut *conn)
                .await
                .map_err(broken)?;
            }
            Ok(Done::Changed(true))
        }
        Write::DeleteMeta(key) => {
            let r = sqlx::query("DELETE FROM meta WHERE key = ?")
                .bind(key)
                .execute(&mut *conn)
                .await
                .map_err(broken)?;
            Ok(Done::Changed(r.rows_affected() == 1))
        }
        Write::PutHistory {
            id,
            secret_uid,
            started_ms,
            record,
        } => {
            sqlx::query(
                "INSERT INTO rotation_history (id, secret_uid, started_ms, record) \
                 VALUES (?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET record = excluded.record",
            )
            .bind(id)
            .bind(secret_uid)
            .bind(started_ms)
            .bind(record)
            .execute(&mut *conn)
            .await
            .map_err(broken)?;
            Ok(Done::Changed(true))
        }
        Write::Claim {
            uid,
            owner,
            lease_ms,
        } => claim(conn, uid, owner, *lease_ms)
            .await
            .map(Done::Claimed)
            .map_err(broken),
        Write::Renew(claim, lease_ms) => {
            let r = sqlx::query(
                "UPDATE rotation_claims SET lease_until_ms = ? \
                 WHERE uid = ? AND owner = ? AND fence = ?",
            )
            .bind(now_ms().saturating_add(*lease_ms))
            .bind(&claim.uid)
            .bind(&claim.owner)
            .bind(claim.fence)
            .execute(&mut *conn)
            .await
            .map_err(broken)?;
            Ok(Done::Changed(r.rows_affected() == 1))
        }
        Write::Release(claim) => {
            // The row stays (without owner) so that the next claim's fence counts on.
            let r = sqlx::query(
                "UPDATE rotation_claims SET owner = '', lease_until_ms = 0 \
                 WHERE uid = ? AND owner = ? AND fence = ?",
            )
            .bind(&claim.uid)
            .bind(&claim.owner)
            .bind(claim.fence)
            .execute(&mut *conn)
            .await
            .map_err(broken)?;
            Ok(Done::Changed(r.rows_affected() == 1))
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
async fn delete_secret(conn: &mut SqliteConnection, uid: &str) -> Result<bool, Failed> {
    for sql in [
        "DELETE FROM versions WHERE secret_uid = ?",
        "DELETE FROM rotation_history WHERE secret_uid = ?",
        "DELETE FROM rotation_claims WHERE uid = ?",
    ] {
        sqlx::query(sql)
            .bind(uid)
            .execute(&mut *conn)
            .await
            .map_err(broken)?;
    }
    let n = sqlx::query("DELETE FROM secrets WHERE uid = ?")
        .bind(uid)
        .execute(&mut *conn)
        .await
        .map_err(broken)?;
    Ok(n.rows_affected() == 1)
}

/// Whether `claim` is still the secret's (same owner and fence; an expired lease that
/// nobody took over still counts).
async fn claim_held(conn: &mut SqliteConnection, claim: &Claim) -> Result<bool> {
    let held: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM rotation_claims WHERE uid = ? AND owner = ? AND fence = ?",
    )
    .bind(&claim.uid)
    .bind(&claim.owner)
    .bind(claim.fence)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(held.is_some())
}

/// Claims a secret's rotation for `owner` (see [`crate::Store::claim_rotation`]); `None`
/// while another owner's lease runs or when the secret does not exist.
async fn claim(
    conn: &mut SqliteConnection,
    uid: &str,
    owner: &str,
    lease_ms: i64,
) -> Result<Option<Claim>> {
    let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM secrets WHERE uid = ?")
        .bind(uid)
        .fetch_optional(&mut *conn)
        .await?;
    if exists.is_none() {
        return Ok(None);
    }
    let now = now_ms();
    let until = now.saturating_add(lease_ms);
    let current: Option<(String, i64, i64)> =
        sqlx::query_as("SELECT owner, fence, lease_until_ms FROM rotation_claims WHERE uid = ?")
            .bind(uid)
            .fetch_optional(&mut *conn)
            .await?;
    let fence = match current {
        None => {
            sqlx::query(
                "INSERT INTO rotation_claims (uid, owner, fence, lease_until_ms) \
                 VALUES (?, ?, 1, ?)",
            )
            .bind(uid)
            .bind(owner)
            .bind(until)
            .execute(&mut *conn)
            .await?;
            1
        }
        // Held by `owner` already: extend the lease, keep the fence.
        Some((held_by, fence, _)) if held_by == owner && !owner.is_empty() => {
            sqlx::query("UPDATE rotation_claims SET lease_until_ms = ? WHERE uid = ?")
                .bind(until)
                .bind(uid)
                .execute(&mut *conn)
                .await?;
            fence
        }
        // Another owner's lease still runs.
        Some((held_by, _, lease_until)) if !held_by.is_empty() && lease_until > now => {
            return Ok(None)
        }
        // Released or expired: taken over with the next fence.
        Some((_, fence, _)) => {
            sqlx::query(
                "UPDATE rotation_claims SET owner = ?, fence = ?, lease_until_ms = ? \
                 WHERE uid = ?",
            )
            .bind(owner)
            .bind(fence + 1)
            .bind(until)
            .bind(uid)
            .execute(&mut *conn)
            .await?;
            fence + 1
        }
    };
    Ok(Some(Claim {
        uid: uid.to_owned(),
        owner: owner.to_owned(),
        fence,
    }))
}
