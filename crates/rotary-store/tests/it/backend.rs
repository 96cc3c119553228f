//! The backends the conformance suite runs on, behind one interface.

use std::sync::Arc;

use async_trait::async_trait;
use rotary_store::{
    PgStoreOptions, PostgresStore, SecretRow, SqliteStore, Store, VersionRow, VersionWrite,
};

/// The namespace every test uses.
pub(crate) const NS: &str = "000000000000:us-east-1";

/// A store's data that can be opened, dropped and opened again.
#[async_trait]
pub(crate) trait Backend: Send + Sync {
    /// Opens a store over the backend's data (again after a drop: a restart).
    async fn open(&self) -> Arc<dyn Store>;
    /// Records a migration newer than any this binary has, as a newer Rotary would.
    async fn add_future_migration(&self);
    /// Opens the store expecting failure; returns the error.
    async fn open_err(&self) -> rotary_store::Error;
}

/// One SQLite file in a temp dir.
pub(crate) struct Sqlite {
    dir: tempfile::TempDir,
}

impl Sqlite {
    pub(crate) async fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self) -> std::path::PathBuf {
        self.dir.path().join("db.sqlite")
    }
}

#[async_trait]
impl Backend for Sqlite {
    async fn open(&self) -> Arc<dyn Store> {
        Arc::new(SqliteStore::open(&self.path()).await.unwrap())
    }

    async fn add_future_migration(&self) {
        use sqlx::Connection;
        let url = format!("sqlite://{}", self.path().display());
        let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, \
             execution_time) VALUES (9999, 'from the future', TRUE, x'00', 0)",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
    }

    async fn open_err(&self) -> rotary_store::Error {
        SqliteStore::open(&self.path()).await.unwrap_err()
    }
}

/// A fresh database on the test PostgreSQL.
pub(crate) struct Postgres {
    pub url: String,
}

impl Postgres {
    pub(crate) async fn new() -> Self {
        Self {
            url: rotary_store::testing::database_url().await,
        }
    }
}

#[async_trait]
impl Backend for Postgres {
    async fn open(&self) -> Arc<dyn Store> {
        Arc::new(
            PostgresStore::open(&self.url, PgStoreOptions::default())
                .await
                .unwrap(),
        )
    }

    async fn add_future_migration(&self) {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, \
             execution_time) VALUES (9999, 'from the future', TRUE, '\\x00', 0)",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
    }

    async fn open_err(&self) -> rotary_store::Error {
        PostgresStore::open(&self.url, PgStoreOptions::default())
            .await
            .unwrap_err()
    }
}

/// A secret row with defaults.
pub(crate) fn row(uid: &str, name: &str) -> SecretRow {
    SecretRow {
        uid: uid.into(),
        namespace: NS.into(),
        name: name.into(),
        arn: format!("arn:aws:secretsmanager:us-east-1:000000000000:secret:{name}-abcdef"),
        created_ms: 1,
        last_changed_ms: 1,
        last_accessed_ms: None,
        deleted_ms: None,
        rotation_due_ms: None,
        replication_due_ms: None,
        revision: 1,
        doc: "{}".into(),
    }
}

/// A version to write.
pub(crate) fn version(id: &str, seq: i64, stages: &[&str], ct: Option<&[u8]>) -> VersionWrite {
    VersionWrite {
        row: VersionRow {
            version_id: id.into(),
            seq,
            created_ms: seq,
            last_accessed_ms: None,
            stages: stages.iter().map(|s| s.to_string()).collect(),
            kms_key_id: Some("k".into()),
            has_value: ct.is_some(),
        },
        ciphertext: ct.map(|c| c.to_vec()),
    }
}
