//! The PostgreSQL store: several stateless Rotary nodes over one database.
//!
//! Each method is one transaction of its own on a pooled connection: reads in one
//! REPEATABLE READ read-only snapshot, writes at READ COMMITTED with row locks (the revision
//! compare-and-swap is an `UPDATE … WHERE revision = $n`, which PostgreSQL re-checks on the
//! newest row after waiting for a concurrent writer, so exactly one of several racing
//! writers wins). A write is acknowledged after its commit, with the server's
//! `synchronous_commit` (on by default: flushed to the WAL).
//!
//! Every write announces itself with `pg_notify` inside its transaction, so the notice is
//! delivered exactly when the change becomes visible; [`PostgresStore::changes`] hands them
//! out (see [`feed`]).

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{Connection, Postgres, Row, Transaction};
use tokio::sync::{broadcast, oneshot};

mod feed;

use crate::sql::{self, Bind, Dialect, Sql};
use crate::sql::{secret_row, version_row};
use crate::{
    Change, Claim, Error, ListQuery, Lookup, MetaSwap, Result, SealedRecord, SecretRecord,
    SecretRow, SecretUpdate, Store, VersionRow, VersionWrite,
};

/// How a [`PostgresStore`] connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgStoreOptions {
    /// Most connections the store's pool opens for queries (the change feed holds one more).
    pub max_connections: u32,
    /// How long opening one connection may take.
    pub connect_timeout: Duration,
    /// How long a request waits for a pooled connection before failing with
    /// [`Error::Backend`] (the database is unreachable or every connection is busy).
    pub acquire_timeout: Duration,
}

impl Default for PgStoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            connect_timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// PostgreSQL implementation of [`Store`]. Clones share the pool and the change feed; the
/// feed's task stops when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    changes: broadcast::Sender<Change>,
    /// Dropped with the last clone: tells the feed's task to stop.
    _shutdown: Arc<oneshot::Sender<()>>,
}

/// The channel every write notifies.
const CHANNEL: &str = "rotary_changes";
/// Changes buffered for a slow subscriber before it sees `Lagged` (and must resync).
const FEED_CAPACITY: usize = 4096;

const SECRET_COLS: &str = "uid, namespace, name, arn, created_ms, last_changed_ms, \
                           last_accessed_ms, deleted_ms, rotation_due_ms, replication_due_ms, \
                           revision, doc";
const VERSION_COLS: &str =
    "secret_uid, version_id, seq, created_ms, last_accessed_ms, stages, kms_key_id, \
     ciphertext IS NOT NULL AS has_value";
const FIND_BY_NAME: &str = "SELECT uid, namespace, name, arn, created_ms, last_changed_ms, \
     last_accessed_ms, deleted_ms, rotation_due_ms, replication_due_ms, revision, doc \
     FROM secrets WHERE namespace = $1 AND name = $2";
const FIND_BY_ARN: &str = "SELECT uid, namespace, name, arn, created_ms, last_changed_ms, \
     last_accessed_ms, deleted_ms, rotation_due_ms, replication_due_ms, revision, doc \
     FROM secrets WHERE namespace = $1 AND arn = $2";
const FIND_BY_UID: &str = "SELECT uid, namespace, name, arn, created_ms, last_changed_ms, \
     last_accessed_ms, deleted_ms, rotation_due_ms, replication_due_ms, revision, doc \
     FROM secrets WHERE uid = $1";
const VERSIONS_OF: &str = "SELECT secret_uid, version_id, seq, created_ms, last_accessed_ms, \
     stages, kms_key_id, ciphertext IS NOT NULL AS has_value FROM versions \
     WHERE secret_uid = $1 ORDER BY seq";
/// Reads see one snapshot and can write nothing.
const BEGIN_READ: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
/// The database's clock in ms since the epoch: leases are measured on it, so that nodes'
/// clocks need not agree. `clock_timestamp()`, not `now()`: the time of the statement, not
/// of the transaction's start.
const DB_NOW_MS: &str = "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT";

impl PostgresStore {
    /// Connects to the database at `url` (libpq-style: `postgres://user:pass@host:port/db`,
    /// TLS from `sslmode` = disable/prefer/require/verify-ca/verify-full and `sslrootcert`,
    /// `sslcert`, `sslkey`), applies migrations under an advisory lock (so that several
    /// nodes starting at once migrate once), and starts listening for changes.
    pub async fn open(url: &str, options: PgStoreOptions) -> Result<Self> {
        // sqlx's TLS uses rustls' process-wide provider, which rustls cannot choose by
        // itself when a build enables more than one (ring here, aws-lc-rs for other crates):
        // name ring, unless the process installed one already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let connect = PgConnectOptions::from_str(url)?;
        migrate(&connect, options.connect_timeout).await?;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            // A connection that died with the server is noticed before it is handed out.
            .test_before_acquire(true)
            .connect_lazy_with(connect.clone());
        let (changes, _) = broadcast::channel(FEED_CAPACITY);
        let (shutdown, stopped) = oneshot::channel();
        feed::start(connect, &options, changes.clone(), stopped).await?;
        Ok(Self {
            pool,
            changes,
            _shutdown: Arc::new(shutdown),
        })
    }

    /// Begins a write transaction.
    async fn begin(&self) -> Result<Transaction<'static, Postgres>> {
        Ok(self.pool.begin().await?)
    }

    /// Begins a read-only snapshot.
    async fn begin_read(&self) -> Result<Transaction<'static, Postgres>> {
        Ok(self.pool.begin_with(BEGIN_READ).await?)
    }
}

/// Applies the migrations on a connection of its own (the advisory lock is the session's:
/// it goes with the connection whatever happens), refusing a schema newer than this binary.
async fn migrate(connect: &PgConnectOptions, timeout: Duration) -> Result<()> {
    let mut conn = tokio::time::timeout(timeout, PgConnection::connect_with(connect))
        .await
        .map_err(|_| {
            sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connecting to PostgreSQL timed out",
            ))
        })??;
    let migrator = sqlx::migrate!("./migrations/postgres");
    let known = migrator.iter().map(|m| m.version).max().unwrap_or(0);
    let newer = |found: Option<i64>| found.filter(|&v| v > known);
    if let Some(found) = newer(applied_version(&mut conn).await) {
        return Err(Error::NewerSchema { found, known });
    }
    // sqlx's migrator takes `pg_advisory_lock` before it creates its table or applies
    // anything, and releases it after: concurrent opens wait for each other and then find
    // the migrations applied.
    let run = migrator.run_direct(&mut conn).await;
    if let Err(sqlx::migrate::MigrateError::VersionMissing(_)) = &run {
        // A newer binary migrated between the check above and the lock.
        if let Some(found) = newer(applied_version(&mut conn).await) {
            return Err(Error::NewerSchema { found, known });
        }
    }
    run?;
    let _ = conn.close().await;
    Ok(())
}

/// The highest migration applied; `None` on a fresh database.
async fn applied_version(conn: &mut PgConnection) -> Option<i64> {
    sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
        .fetch_optional(&mut *conn)
        .await
        .ok()
        .flatten()
        .flatten()
}

/// Reads a secret and its versions' metadata inside `tx`.
async fn find_in(
    tx: &mut PgConnection,
    namespace: &str,
    by: Lookup<'_>,
) -> Result<Option<SecretRecord>> {
    let q = match by {
        Lookup::Name(name) => sqlx::query(FIND_BY_NAME).bind(namespace).bind(name),
        Lookup::Arn(arn) => sqlx::query(FIND_BY_ARN).bind(namespace).bind(arn),
        Lookup::Uid(uid) => sqlx::query(FIND_BY_UID).bind(uid),
    };
    let Some(row) = q.fetch_optional(&mut *tx).await? else {
        return Ok(None);
    };
    let row = secret_row(&row)?;
    let versions = sqlx::query(VERSIONS_OF)
        .bind(&row.uid)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| version_row(r).map(|(_, v)| v))
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(SecretRecord { row, versions }))
}

/// The versions' metadata of `uids`, grouped by secret.
async fn versions_of(
    tx: &mut PgConnection,
    uids: &[String],
) -> Result<HashMap<String, Vec<VersionRow>>> {
    let mut by_secret: HashMap<String, Vec<VersionRow>> = HashMap::new();
    let rows = sqlx::query(&format!(
        "SELECT {VERSION_COLS} FROM versions WHERE secret_uid = ANY($1) \
         ORDER BY secret_uid, seq"
    ))
    .bind(uids)
    .fetch_all(&mut *tx)
    .await?;
    for r in rows {
        let (uid, v) = version_row(&r)?;
        by_secret.entry(uid).or_default().push(v);
    }
    Ok(by_secret)
}

fn with_versions(
    rows: Vec<SecretRow>,
    mut by_secret: HashMap<String, Vec<VersionRow>>,
) -> Vec<SecretRecord> {
    rows.into_iter()
        .map(|row| {
            let versions = by_secret.remove(&row.uid).unwrap_or_default();
            SecretRecord { row, versions }
        })
        .collect()
}

fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>,
    binds: &'q [Bind],
) -> sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments> {
    for b in binds {
        q = match b {
            Bind::Int(i) => q.bind(*i),
            Bind::Text(s) => q.bind(s.as_str()),
        };
    }
    q
}

async fn upsert_version(conn: &mut PgConnection, uid: &str, v: &VersionWrite) -> Result<()> {
    sqlx::query(
        "INSERT INTO versions (secret_uid, version_id, seq, created_ms, last_accessed_ms, \
         stages, kms_key_id, ciphertext) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (secret_uid, version_id) DO UPDATE SET stages = excluded.stages, \
         kms_key_id = COALESCE(excluded.kms_key_id, versions.kms_key_id), \
         ciphertext = COALESCE(excluded.ciphertext, versions.ciphertext)",
    )
    .bind(uid)
    .bind(&v.row.version_id)
    .bind(v.row.seq)
    .bind(v.row.created_ms)
    .bind(v.row.last_accessed_ms)
    .bind(sql::stages_json(&v.row.stages))
    .bind(&v.row.kms_key_id)
    .bind(&v.ciphertext)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Rewrites a secret's tag index from its document (what SQLite's triggers do).
async fn write_tags(conn: &mut PgConnection, uid: &str, doc: &str, fresh: bool) -> Result<()> {
    if !fresh {
        sqlx::query("DELETE FROM secret_tags WHERE secret_uid = $1")
            .bind(uid)
            .execute(&mut *conn)
            .await?;
    }
    let (keys, values): (Vec<String>, Vec<String>) = sql::doc_tags(doc).into_iter().unzip();
    if !keys.is_empty() {
        sqlx::query(
            "INSERT INTO secret_tags (secret_uid, key, value) \
             SELECT $1, k, v FROM UNNEST($2::TEXT[], $3::TEXT[]) AS t (k, v)",
        )
        .bind(uid)
        .bind(&keys)
        .bind(&values)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Announces a change to every node; delivered when (and only if) the transaction commits.
async fn notify(conn: &mut PgConnection, change: &Change) -> Result<()> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(feed::payload(change))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Deletes a secret with its versions, history, tags and claim.
///
/// Row locks are taken in the order every write takes them, claim before secret (a fenced
/// update locks its claim, then the secret), so that two writes never wait for each other.
async fn delete_secret(conn: &mut PgConnection, uid: &str) -> Result<bool> {
    sqlx::query("DELETE FROM rotation_claims WHERE uid = $1")
        .bind(uid)
        .execute(&mut *conn)
        .await?;
    let n = sqlx::query("DELETE FROM secrets WHERE uid = $1")
        .bind(uid)
        .execute(&mut *conn)
        .await?;
    if n.rows_affected() == 0 {
        return Ok(false);
    }
    for sql in [
        "DELETE FROM versions WHERE secret_uid = $1",
        "DELETE FROM rotation_history WHERE secret_uid = $1",
        "DELETE FROM secret_tags WHERE secret_uid = $1",
    ] {
        sqlx::query(sql).bind(uid).execute(&mut *conn).await?;
    }
    notify(
        conn,
        &Change::Secret {
            uid: uid.to_owned(),
            revision: None,
        },
    )
    .await?;
    Ok(true)
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

#[async_trait]
impl Store for PostgresStore {
    async fn find(&self, namespace: &str, by: Lookup<'_>) -> Result<Option<SecretRecord>> {
        let mut tx = self.begin_read().await?;
        let found = find_in(&mut tx, namespace, by).await?;
        // Dropping the transaction rolls it back (read-only), cancellation included.
        drop(tx);
        Ok(found)
    }

    async fn find_sealed(&self, namespace: &str, by: Lookup<'_>) -> Result<Option<SealedRecord>> {
        let mut tx = self.begin_read().await?;
        let Some(record) = find_in(&mut tx, namespace, by).await? else {
            return Ok(None);
        };
        let values = sqlx::query(
            "SELECT version_id, ciphertext FROM versions \
             WHERE secret_uid = $1 AND ciphertext IS NOT NULL ORDER BY seq",
        )
        .bind(&record.row.uid)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| Ok((r.try_get("version_id")?, r.try_get("ciphertext")?)))
        .collect::<Result<Vec<_>>>()?;
        Ok(Some(SealedRecord { record, values }))
    }

    async fn read_ciphertext(&self, uid: &str, version_id: &str) -> Result<Option<Vec<u8>>> {
        let ct: Option<Option<Vec<u8>>> = sqlx::query_scalar(
            "SELECT ciphertext FROM versions WHERE secret_uid = $1 AND version_id = $2",
        )
        .bind(uid)
        .bind(version_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(ct.flatten())
    }

    async fn insert(&self, row: &SecretRow, versions: &[VersionWrite]) -> Result<()> {
        let mut tx = self.begin().await?;
        let r = sqlx::query(
            "INSERT INTO secrets (uid, namespace, name, arn, created_ms, last_changed_ms, \
             last_accessed_ms, deleted_ms, rotation_due_ms, replication_due_ms, revision, doc) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
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
        .bind(row.replication_due_ms)
        .bind(row.revision)
        .bind(&row.doc)
        .execute(&mut *tx)
        .await;
        match r {
            Err(e) if is_unique_violation(&e) => return Err(Error::NameTaken(row.name.clone())),
            r => r?,
        };
        for v in versions {
            upsert_version(&mut tx, &row.uid, v).await?;
        }
        write_tags(&mut tx, &row.uid, &row.doc, true).await?;
        notify(
            &mut tx,
            &Change::Secret {
                uid: row.uid.clone(),
                revision: Some(row.revision),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn update(&self, update: &SecretUpdate) -> Result<()> {
        let row = &update.row;
        let mut tx = self.begin().await?;
        if let Some(claim) = &update.claim {
            // FOR SHARE: a takeover of the claim (an UPDATE of its row) waits for this
            // write to commit, or this check waits for the takeover and sees it.
            let held: Option<i32> = sqlx::query_scalar(
                "SELECT 1 FROM rotation_claims WHERE uid = $1 AND owner = $2 AND fence = $3 \
                 FOR SHARE",
            )
            .bind(&claim.uid)
            .bind(&claim.owner)
            .bind(claim.fence)
            .fetch_optional(&mut *tx)
            .await?;
            if held.is_none() {
                return Err(Error::ClaimLost(claim.uid.clone()));
            }
        }
        let done = sqlx::query(
            "UPDATE secrets SET name = $1, arn = $2, last_changed_ms = $3, \
             last_accessed_ms = $4, deleted_ms = $5, rotation_due_ms = $6, \
             replication_due_ms = $7, revision = $8, doc = $9 WHERE uid = $10 AND revision = $11",
        )
        .bind(&row.name)
        .bind(&row.arn)
        .bind(row.last_changed_ms)
        .bind(row.last_accessed_ms)
        .bind(row.deleted_ms)
        .bind(row.rotation_due_ms)
        .bind(row.replication_due_ms)
        .bind(row.revision)
        .bind(&row.doc)
        .bind(&row.uid)
        .bind(row.revision - 1)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Err(Error::Conflict(row.name.clone()));
        }
        for v in &update.upsert_versions {
            upsert_version(&mut tx, &row.uid, v).await?;
        }
        for id in &update.delete_versions {
            sqlx::query("DELETE FROM versions WHERE secret_uid = $1 AND version_id = $2")
                .bind(&row.uid)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        write_tags(&mut tx, &row.uid, &row.doc, false).await?;
        notify(
            &mut tx,
            &Change::Secret {
                uid: row.uid.clone(),
                revision: Some(row.revision),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete(&self, uid: &str) -> Result<bool> {
        let mut tx = self.begin().await?;
        let done = delete_secret(&mut tx, uid).await?;
        tx.commit().await?;
        Ok(done)
    }

    async fn list(&self, namespace: &str) -> Result<Vec<SecretRecord>> {
        let mut tx = self.begin_read().await?;
        let rows = sqlx::query(&format!(
            "SELECT {SECRET_COLS} FROM secrets WHERE namespace = $1 ORDER BY created_ms, uid"
        ))
        .bind(namespace)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(secret_row)
        .collect::<Result<Vec<_>>>()?;
        let mut by_secret: HashMap<String, Vec<VersionRow>> = HashMap::new();
        let versions = sqlx::query(&format!(
            "SELECT {VERSION_COLS} FROM versions WHERE secret_uid IN \
             (SELECT uid FROM secrets WHERE namespace = $1) ORDER BY secret_uid, seq"
        ))
        .bind(namespace)
        .fetch_all(&mut *tx)
        .await?;
        drop(tx);
        for r in versions {
            let (uid, v) = version_row(&r)?;
            by_secret.entry(uid).or_default().push(v);
        }
        Ok(with_versions(rows, by_secret))
    }

    async fn list_page(&self, q: &ListQuery) -> Result<Vec<SecretRecord>> {
        // PostgreSQL's planner chooses between the name index and the sort order's index
        // from its statistics: no hint needed (unlike SQLite).
        let page = sql::list_page(Dialect::Postgres, SECRET_COLS, q, "name");
        let mut tx = self.begin_read().await?;
        let rows = bind_all(sqlx::query(&page.text), &page.binds)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(secret_row)
            .collect::<Result<Vec<_>>>()?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let uids: Vec<String> = rows.iter().map(|r| r.uid.clone()).collect();
        let by_secret = versions_of(&mut tx, &uids).await?;
        drop(tx);
        Ok(with_versions(rows, by_secret))
    }

    async fn due_for_purge(&self, now_ms: i64) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT uid FROM secrets WHERE deleted_ms IS NOT NULL AND deleted_ms <= $1",
        )
        .bind(now_ms)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn delete_if_due(&self, uid: &str, now_ms: i64) -> Result<bool> {
        let mut tx = self.begin().await?;
        // Claim before secret, as every write locks them (see `delete_secret`).
        sqlx::query("SELECT 1 FROM rotation_claims WHERE uid = $1 FOR UPDATE")
            .bind(uid)
            .execute(&mut *tx)
            .await?;
        // The row lock taken here orders this against a concurrent RestoreSecret: whichever
        // commits second sees the other's result (READ COMMITTED re-checks the condition
        // on the newest row).
        let due: Option<i32> = sqlx::query_scalar(
            "SELECT 1 FROM secrets WHERE uid = $1 AND deleted_ms IS NOT NULL \
             AND deleted_ms <= $2 FOR UPDATE",
        )
        .bind(uid)
        .bind(now_ms)
        .fetch_optional(&mut *tx)
        .await?;
        if due.is_none() {
            return Ok(false);
        }
        let done = delete_secret(&mut tx, uid).await?;
        tx.commit().await?;
        Ok(done)
    }

    async fn record_access(&self, uid: &str, version_id: &str, day_ms: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE secrets SET last_accessed_ms = $1 WHERE uid = $2")
            .bind(day_ms)
            .bind(uid)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE versions SET last_accessed_ms = $1 WHERE secret_uid = $2 AND version_id = $3",
        )
        .bind(day_ms)
        .bind(uid)
        .bind(version_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn put_meta_if_absent(&self, key: &str, value: &[u8]) -> Result<bool> {
        let mut tx = self.begin().await?;
        let r = sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT DO NOTHING")
            .bind(key)
            .bind(value)
            .execute(&mut *tx)
            .await?;
        let stored = r.rows_affected() == 1;
        if stored {
            notify(
                &mut tx,
                &Change::Meta {
                    key: key.to_owned(),
                },
            )
            .await?;
        }
        tx.commit().await?;
        Ok(stored)
    }

    async fn put_meta(&self, key: &str, value: &[u8]) -> Result<()> {
        self.put_metas(&[(key.to_owned(), value.to_vec())]).await
    }

    async fn put_metas(&self, entries: &[(String, Vec<u8>)]) -> Result<()> {
        let mut tx = self.begin().await?;
        for (key, value) in entries {
            sqlx::query(
                "INSERT INTO meta (key, value) VALUES ($1, $2) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .bind(key)
            .bind(value)
            .execute(&mut *tx)
            .await?;
            notify(&mut tx, &Change::Meta { key: key.clone() }).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn put_metas_if_unchanged(&self, entries: &[MetaSwap]) -> Result<bool> {
        let mut tx = self.begin().await?;
        for swap in entries {
            let current: Option<Vec<u8>> =
                sqlx::query_scalar("SELECT value FROM meta WHERE key = $1 FOR UPDATE")
                    .bind(&swap.key)
                    .fetch_optional(&mut *tx)
                    .await?;
            if current.as_deref() != Some(swap.expected.as_slice()) {
                tx.rollback().await?;
                return Ok(false);
            }
        }
        for swap in entries {
            sqlx::query("UPDATE meta SET value = $1 WHERE key = $2")
                .bind(&swap.new)
                .bind(&swap.key)
                .execute(&mut *tx)
                .await?;
            notify(
                &mut tx,
                &Change::Meta {
                    key: swap.key.clone(),
                },
            )
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn list_meta(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let mut q = Sql::new(Dialect::Postgres, "SELECT key, value FROM meta WHERE ");
        if prefix.is_empty() {
            q.push("TRUE");
        } else {
            q.push_prefix("key", prefix);
        }
        q.push(" ORDER BY key");
        let rows = bind_all(sqlx::query(&q.text), &q.binds)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("key")?, r.try_get("value")?)))
            .collect()
    }

    async fn delete_meta(&self, key: &str) -> Result<bool> {
        let mut tx = self.begin().await?;
        let r = sqlx::query("DELETE FROM meta WHERE key = $1")
            .bind(key)
            .execute(&mut *tx)
            .await?;
        let deleted = r.rows_affected() == 1;
        if deleted {
            notify(
                &mut tx,
                &Change::Meta {
                    key: key.to_owned(),
                },
            )
            .await?;
        }
        tx.commit().await?;
        Ok(deleted)
    }

    async fn due_rotations(&self, now_ms: i64, limit: i64) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT uid FROM secrets WHERE rotation_due_ms IS NOT NULL \
             AND rotation_due_ms <= $1 ORDER BY rotation_due_ms LIMIT $2",
        )
        .bind(now_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn due_replications(&self, now_ms: i64, limit: i64) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT uid FROM secrets WHERE replication_due_ms IS NOT NULL \
             AND replication_due_ms <= $1 ORDER BY replication_due_ms LIMIT $2",
        )
        .bind(now_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn set_replication_due(
        &self,
        uid: &str,
        revision: i64,
        due_ms: Option<i64>,
    ) -> Result<bool> {
        // One statement, no notice: the revision stays, so every cached copy stays valid.
        // The row lock it takes orders it after a concurrent update of the secret, whose
        // new revision then fails the condition (READ COMMITTED re-checks the newest row).
        let r = sqlx::query(
            "UPDATE secrets SET replication_due_ms = $1 WHERE uid = $2 AND revision = $3",
        )
        .bind(due_ms)
        .bind(uid)
        .bind(revision)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn put_history(
        &self,
        id: &str,
        secret_uid: &str,
        started_ms: i64,
        record: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO rotation_history (id, secret_uid, started_ms, record) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO UPDATE SET record = excluded.record",
        )
        .bind(id)
        .bind(secret_uid)
        .bind(started_ms)
        .bind(record)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn list_history(&self, secret_uid: &str, limit: i64) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT record FROM rotation_history WHERE secret_uid = $1 \
             ORDER BY started_ms DESC, id DESC LIMIT $2",
        )
        .bind(secret_uid)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn revision(&self, uid: &str) -> Result<Option<i64>> {
        // One indexed lookup, checked before every cache hit: no transaction needed.
        Ok(
            sqlx::query_scalar("SELECT revision FROM secrets WHERE uid = $1")
                .bind(uid)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn claim_rotation(&self, uid: &str, owner: &str, lease_ms: i64) -> Result<Option<Claim>> {
        // One statement: a first claim inserts fence 1; otherwise the row is locked and
        // taken when it is `owner`'s (fence kept), released, or expired (fence + 1). Racing
        // claimers serialize on the row, and each sees the winner's lease.
        let fence: Option<i64> = sqlx::query_scalar(&format!(
            "INSERT INTO rotation_claims AS c (uid, owner, fence, lease_until_ms) \
             SELECT uid, $2, 1, {DB_NOW_MS} + $3 FROM secrets WHERE uid = $1 \
             ON CONFLICT (uid) DO UPDATE SET \
               owner = excluded.owner, \
               fence = CASE WHEN c.owner = excluded.owner AND excluded.owner <> '' \
                       THEN c.fence ELSE c.fence + 1 END, \
               lease_until_ms = excluded.lease_until_ms \
             WHERE (c.owner = excluded.owner AND excluded.owner <> '') OR c.owner = '' \
               OR c.lease_until_ms <= {DB_NOW_MS} \
             RETURNING c.fence"
        ))
        .bind(uid)
        .bind(owner)
        .bind(lease_ms)
        .fetch_optional(&self.pool)
        .await?;
        Ok(fence.map(|fence| Claim {
            uid: uid.to_owned(),
            owner: owner.to_owned(),
            fence,
        }))
    }

    async fn renew_claim(&self, claim: &Claim, lease_ms: i64) -> Result<bool> {
        let r = sqlx::query(&format!(
            "UPDATE rotation_claims SET lease_until_ms = {DB_NOW_MS} + $4 \
             WHERE uid = $1 AND owner = $2 AND fence = $3"
        ))
        .bind(&claim.uid)
        .bind(&claim.owner)
        .bind(claim.fence)
        .bind(lease_ms)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn release_claim(&self, claim: &Claim) -> Result<()> {
        // The row stays (without owner) so that the next claim's fence counts on.
        sqlx::query(
            "UPDATE rotation_claims SET owner = '', lease_until_ms = 0 \
             WHERE uid = $1 AND owner = $2 AND fence = $3",
        )
        .bind(&claim.uid)
        .bind(&claim.owner)
        .bind(claim.fence)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    fn changes(&self) -> Option<broadcast::Receiver<Change>> {
        Some(self.changes.subscribe())
    }
}
