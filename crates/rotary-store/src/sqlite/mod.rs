//! The embedded SQLite store: one file, WAL, `synchronous=FULL`, one writer connection.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Connection, Row, Sqlite, SqliteConnection, Transaction};

mod writer;
use writer::{Write, Writer};

use crate::sql::{self, Bind, Dialect, Sql};
use crate::sql::{secret_row, version_row};
use crate::{
    Claim, Error, ListOrder, ListQuery, Lookup, MetaSwap, Result, SealedRecord, SecretRecord,
    SecretRow, SecretUpdate, Store, VersionRow, VersionWrite,
};

/// SQLite implementation of [`Store`].
///
/// Writes go to one thread that owns the only writer connection and commits concurrent
/// writes together ([`writer`]: group commit), so they serialize in-process instead of
/// failing with `SQLITE_BUSY`; reads use their own pool and never wait for writers (WAL).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    reader: SqlitePool,
    writer: Writer,
}

const SECRET_COLS: &str = "uid, namespace, name, arn, created_ms, last_changed_ms, \
                           last_accessed_ms, deleted_ms, rotation_due_ms, replication_due_ms, \
                           revision, doc";
const VERSION_COLS: &str =
    "secret_uid, version_id, seq, created_ms, last_accessed_ms, stages, kms_key_id, \
     ciphertext IS NOT NULL AS has_value";
// The lookups as constant text, so that sqlx's statement cache reuses their prepared form.
const FIND_BY_NAME: &str = "SELECT uid, namespace, name, arn, created_ms, last_changed_ms, \
     last_accessed_ms, deleted_ms, rotation_due_ms, replication_due_ms, revision, doc \
     FROM secrets WHERE namespace = ? AND name = ?";
const FIND_BY_ARN: &str = "SELECT uid, namespace, name, arn, created_ms, last_changed_ms, \
     last_accessed_ms, deleted_ms, rotation_due_ms, replication_due_ms, revision, doc \
     FROM secrets WHERE namespace = ? AND arn = ?";
const FIND_BY_UID: &str = "SELECT uid, namespace, name, arn, created_ms, last_changed_ms, \
     last_accessed_ms, deleted_ms, rotation_due_ms, replication_due_ms, revision, doc \
     FROM secrets WHERE uid = ?";
const VERSIONS_OF: &str = "SELECT secret_uid, version_id, seq, created_ms, last_accessed_ms, \
     stages, kms_key_id, ciphertext IS NOT NULL AS has_value FROM versions \
     WHERE secret_uid = ? ORDER BY seq";

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies migrations.
    pub async fn open(path: &Path) -> Result<Self> {
        let url = format!("sqlite://{}", path.display());
        let opts = SqliteConnectOptions::from_str(&url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let mut conn = SqliteConnection::connect_with(&opts).await?;
        let migrator = sqlx::migrate!("./migrations/sqlite");
        let known = migrator.iter().map(|m| m.version).max().unwrap_or(0);
        // A binary older than the data refuses it instead of running on a schema it does
        // not know.
        let found: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
                .fetch_optional(&mut conn)
                .await
                .ok()
                .flatten();
        if let Some(found) = found.filter(|&v| v > known) {
            return Err(Error::NewerSchema { found, known });
        }
        migrator.run_direct(&mut conn).await?;
        conn.close().await?;
        // The writer's own connection, opened once the schema is current.
        let db = path.to_path_buf();
        let writer = tokio::task::spawn_blocking(move || {
            let conn = writer::open(&db)?;
            Writer::spawn(conn, db)
        })
        .await
        .map_err(|e| Error::Corrupt(format!("opening the store's writer: {e}")))??;
        // The service's read cache sits in front of the readers, and the kernel caches the
        // file: each reader keeps a 512 KiB page cache instead of SQLite's 2 MiB default
        // (8 readers at 2 MiB held 16 MiB after one scan of the store). Each reader is a
        // thread with its own malloc arena, which keeps what its reads freed (about 2.4 MiB
        // per reader after reading 100,000 secrets): 4 readers serve the misses of 2 cores.
        let reader = SqlitePoolOptions::new()
            .max_connections(READERS)
            .connect_with(opts.read_only(true).pragma("cache_size", "-512"))
            .await?;
        Ok(Self { reader, writer })
    }
}

/// Reads a secret and its versions' metadata inside `tx`.
async fn find_in(
    tx: &mut Transaction<'_, Sqlite>,
    namespace: &str,
    by: Lookup<'_>,
) -> Result<Option<SecretRecord>> {
    let q = match by {
        Lookup::Name(name) => sqlx::query(FIND_BY_NAME).bind(namespace).bind(name),
        Lookup::Arn(arn) => sqlx::query(FIND_BY_ARN).bind(namespace).bind(arn),
        Lookup::Uid(uid) => sqlx::query(FIND_BY_UID).bind(uid),
    };
    let Some(row) = q.fetch_optional(&mut **tx).await? else {
        return Ok(None);
    };
    let row = secret_row(&row)?;
    let versions = sqlx::query(VERSIONS_OF)
        .bind(&row.uid)
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|r| version_row(r).map(|(_, v)| v))
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(SecretRecord { row, versions }))
}

/// Connections of the read pool.
const READERS: u32 = 4;

/// Matches of a name prefix above which a listing scans its sort order instead of the
/// name index.
const DENSE_PREFIX: i64 = 1000;

#[async_trait]
impl Store for SqliteStore {
    async fn find(&self, namespace: &str, by: Lookup<'_>) -> Result<Option<SecretRecord>> {
        let mut tx = self.reader.begin().await?;
        let found = find_in(&mut tx, namespace, by).await?;
        // Dropping the transaction rolls it back (read-only), even if this future is
        // cancelled: the connection never returns to the pool inside an old snapshot.
        drop(tx);
        Ok(found)
    }

    async fn find_sealed(&self, namespace: &str, by: Lookup<'_>) -> Result<Option<SealedRecord>> {
        let mut tx = self.reader.begin().await?;
        let Some(record) = find_in(&mut tx, namespace, by).await? else {
            return Ok(None);
        };
        let values = sqlx::query(
            "SELECT version_id, ciphertext FROM versions \
             WHERE secret_uid = ? AND ciphertext IS NOT NULL ORDER BY seq",
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
            "SELECT ciphertext FROM versions WHERE secret_uid = ? AND version_id = ?",
        )
        .bind(uid)
        .bind(version_id)
        .fetch_optional(&self.reader)
        .await?;
        Ok(ct.flatten())
    }

    async fn insert(&self, row: &SecretRow, versions: &[VersionWrite]) -> Result<()> {
        self.writer
            .write(Write::Insert(row.clone(), versions.to_vec()))
            .await
            .map(drop)
    }

    async fn update(&self, update: &SecretUpdate) -> Result<()> {
        self.writer
            .write(Write::Update(update.clone()))
            .await
            .map(drop)
    }

    async fn delete(&self, uid: &str) -> Result<bool> {
        self.writer.changed(Write::Delete(uid.to_owned())).await
    }

    async fn list(&self, namespace: &str) -> Result<Vec<SecretRecord>> {
        // One read transaction so secrets and versions are a consistent snapshot; dropped
        // (rolled back) on every path, cancellation included.
        let mut tx = self.reader.begin().await?;
        let rows = sqlx::query(&format!(
            "SELECT {SECRET_COLS} FROM secrets WHERE namespace = ? ORDER BY created_ms, uid"
        ))
        .bind(namespace)
        .fetch_all(&mut *tx)
        .await;
        let versions = sqlx::query(&format!(
            "SELECT {VERSION_COLS} FROM versions WHERE secret_uid IN \
             (SELECT uid FROM secrets WHERE namespace = ?) ORDER BY secret_uid, seq"
        ))
        .bind(namespace)
        .fetch_all(&mut *tx)
        .await;
        drop(tx);
        let mut by_secret: HashMap<String, Vec<VersionRow>> = HashMap::new();
        for r in versions? {
            let (uid, v) = version_row(&r)?;
            by_secret.entry(uid).or_default().push(v);
        }
        rows?
            .iter()
            .map(|r| {
                let row = secret_row(r)?;
                let versions = by_secret.remove(&row.uid).unwrap_or_default();
                Ok(SecretRecord { row, versions })
            })
            .collect()
    }

    async fn list_page(&self, q: &ListQuery) -> Result<Vec<SecretRecord>> {
        // A name prefix narrows through the name index, then the matches are sorted: good
        // when few names match. When many do, scanning the sort order's index and testing
        // names (`+name` keeps SQLite off the name index) stops after one page instead.
        let name_col = if q.order != ListOrder::Name && !q.name_prefixes.is_empty() {
            let mut probe = Sql::new(
                Dialect::Sqlite,
                "SELECT COUNT(*) FROM (SELECT 1 FROM secrets WHERE namespace = ",
            );
            probe.bind(Bind::Text(q.namespace.clone()));
            probe.push(" AND ");
            probe.push_prefix_group("name", &q.name_prefixes[0]);
            probe.push(&format!(" LIMIT {DENSE_PREFIX})"));
            let mut pq = sqlx::query_scalar::<_, i64>(&probe.text);
            for b in &probe.binds {
                pq = match b {
                    Bind::Int(i) => pq.bind(*i),
                    Bind::Text(s) => pq.bind(s.as_str()),
                };
            }
            if pq.fetch_one(&self.reader).await? >= DENSE_PREFIX {
                "+name"
            } else {
                "name"
            }
        } else {
            "name"
        };
        let Sql {
            text: sql, binds, ..
        } = sql::list_page(Dialect::Sqlite, SECRET_COLS, q, name_col);

        let mut tx = self.reader.begin().await?;
        let mut query = sqlx::query(&sql);
        for b in &binds {
            query = match b {
                Bind::Int(i) => query.bind(*i),
                Bind::Text(s) => query.bind(s.as_str()),
            };
        }
        let rows = query
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(secret_row)
            .collect::<Result<Vec<_>>>()?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let marks = vec!["?"; rows.len()].join(", ");
        let vsql = format!(
            "SELECT {VERSION_COLS} FROM versions WHERE secret_uid IN ({marks}) \
             ORDER BY secret_uid, seq"
        );
        let mut vq = sqlx::query(&vsql);
        for r in &rows {
            vq = vq.bind(r.uid.as_str());
        }
        let mut by_secret: HashMap<String, Vec<VersionRow>> = HashMap::new();
        for r in vq.fetch_all(&mut *tx).await? {
            let (uid, v) = version_row(&r)?;
            by_secret.entry(uid).or_default().push(v);
        }
        drop(tx);
        Ok(rows
            .into_iter()
            .map(|row| {
                let versions = by_secret.remove(&row.uid).unwrap_or_default();
                SecretRecord { row, versions }
            })
            .collect())
    }

    async fn due_for_purge(&self, now_ms: i64) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT uid FROM secrets WHERE deleted_ms IS NOT NULL AND deleted_ms <= ?",
        )
        .bind(now_ms)
        .fetch_all(&self.reader)
        .await?)
    }

    async fn delete_if_due(&self, uid: &str, now_ms: i64) -> Result<bool> {
        self.writer
            .changed(Write::DeleteIfDue {
                uid: uid.to_owned(),
                now_ms,
            })
            .await
    }

    async fn record_access(&self, uid: &str, version_id: &str, day_ms: i64) -> Result<()> {
        self.writer
            .write(Write::RecordAccess {
                uid: uid.to_owned(),
                version_id: version_id.to_owned(),
                day_ms,
            })
            .await
            .map(drop)
    }

    async fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(sqlx::query_scalar("SELECT value FROM meta WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.reader)
            .await?)
    }

    async fn put_meta_if_absent(&self, key: &str, value: &[u8]) -> Result<bool> {
        self.writer
            .changed(Write::PutMetaIfAbsent(key.to_owned(), value.to_vec()))
            .await
    }

    async fn put_metas(&self, entries: &[(String, Vec<u8>)]) -> Result<()> {
        self.writer
            .write(Write::PutMetas(entries.to_vec()))
            .await
            .map(drop)
    }

    async fn put_metas_if_unchanged(&self, entries: &[MetaSwap]) -> Result<bool> {
        self.writer
            .changed(Write::PutMetasIfUnchanged(entries.to_vec()))
            .await
    }

    async fn put_meta(&self, key: &str, value: &[u8]) -> Result<()> {
        self.writer
            .write(Write::PutMetas(vec![(key.to_owned(), value.to_vec())]))
            .await
            .map(drop)
    }

    async fn list_meta(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let mut q = Sql::new(Dialect::Sqlite, "SELECT key, value FROM meta WHERE ");
        if prefix.is_empty() {
            q.push("1");
        } else {
            q.push_prefix("key", prefix);
        }
        q.push(" ORDER BY key");
        let mut query = sqlx::query(&q.text);
        for b in &q.binds {
            query = match b {
                Bind::Int(i) => query.bind(*i),
                Bind::Text(s) => query.bind(s.as_str()),
            };
        }
        let rows = query.fetch_all(&self.reader).await?;
        rows.iter()
            .map(|r| Ok((r.try_get("key")?, r.try_get("value")?)))
            .collect()
    }

    async fn delete_meta(&self, key: &str) -> Result<bool> {
        self.writer.changed(Write::DeleteMeta(key.to_owned())).await
    }

    async fn due_rotations(&self, now_ms: i64, limit: i64) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT uid FROM secrets WHERE rotation_due_ms IS NOT NULL AND rotation_due_ms <= ? \
             ORDER BY rotation_due_ms LIMIT ?",
        )
        .bind(now_ms)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?)
    }

    async fn due_replications(&self, now_ms: i64, limit: i64) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT uid FROM secrets WHERE replication_due_ms IS NOT NULL \
             AND replication_due_ms <= ? ORDER BY replication_due_ms LIMIT ?",
        )
        .bind(now_ms)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?)
    }

    async fn set_replication_due(
        &self,
        uid: &str,
        revision: i64,
        due_ms: Option<i64>,
    ) -> Result<bool> {
        self.writer
            .changed(Write::SetReplicationDue {
                uid: uid.to_owned(),
                revision,
                due_ms,
            })
            .await
    }

    async fn put_history(
        &self,
        id: &str,
        secret_uid: &str,
        started_ms: i64,
        record: &str,
    ) -> Result<()> {
        self.writer
            .write(Write::PutHistory {
                id: id.to_owned(),
                secret_uid: secret_uid.to_owned(),
                started_ms,
                record: record.to_owned(),
            })
            .await
            .map(drop)
    }

    async fn list_history(&self, secret_uid: &str, limit: i64) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT record FROM rotation_history WHERE secret_uid = ? \
             ORDER BY started_ms DESC, id DESC LIMIT ?",
        )
        .bind(secret_uid)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?)
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    async fn claim_rotation(&self, uid: &str, owner: &str, lease_ms: i64) -> Result<Option<Claim>> {
        let done = self
            .writer
            .write(Write::Claim {
                uid: uid.to_owned(),
                owner: owner.to_owned(),
                lease_ms,
            })
            .await?;
        Ok(match done {
            writer::Done::Claimed(c) => c,
            writer::Done::Changed(_) => None,
        })
    }

    async fn renew_claim(&self, claim: &Claim, lease_ms: i64) -> Result<bool> {
        self.writer
            .changed(Write::Renew(claim.clone(), lease_ms))
            .await
    }

    async fn release_claim(&self, claim: &Claim) -> Result<()> {
        self.writer
            .changed(Write::Release(claim.clone()))
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests;
