//! `rotary backup` and `rotary restore`: online snapshots of the SQLite store.
//!
//! `backup` runs `VACUUM INTO` on a read-only connection of its own, beside a running server:
//! SQLite copies the database as of one read transaction (WAL readers never block the
//! writer, and the writer never blocks them), so the snapshot is consistent however many
//! writes land meanwhile. The snapshot is written to a private temporary file next to the
//! output, checked, synced, and only then renamed to the output name, which was reserved
//! first (created empty, mode 0600, never overwritten).
//!
//! The file holds what the store holds: ciphertext. Secret values, KMS keys, root
//! credentials and function environments are sealed under the master key, which lives in
//! its own file and is never in a backup: it has to be kept (and restored) separately.
//!
//! `restore` checks that the file is a whole Rotary database (integrity check, the store's
//! tables) before it creates anything, then writes `NEW/rotary.db` (0600) in a new data
//! directory (0700) that `rotary serve` opens once the master key is put beside it.
//!
//! Exit codes: 0 ok; 1 the copy failed; 2 usage error or refusal (output exists, target not
//! empty, not a Rotary database, no store).

use std::fs::{DirBuilder, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection, Row};

use crate::fsperm;

/// Tables every Rotary SQLite store has (migrations 0001 and on).
const REQUIRED_TABLES: &[&str] = &["_sqlx_migrations", "meta", "secrets", "versions"];
/// The store's file name in a data directory.
const DB_FILE: &str = "rotary.db";
/// The master key's file name in a data directory.
const KEY_FILE: &str = "master.key";

/// `rotary backup`
#[derive(Debug, Args)]
pub(crate) struct BackupArgs {
    /// The server's data directory, holding rotary.db.
    #[arg(long, env = "ROTARY_DATA_DIR", default_value = "rotary-data")]
    data_dir: PathBuf,
    /// The store, `sqlite://PATH`, when it is not DATA_DIR/rotary.db.
    #[arg(long, env = "ROTARY_STORE")]
    store: Option<String>,
    /// Where the server's master key is (only named in the output) [default:
    /// DATA_DIR/master.key].
    #[arg(long, env = "ROTARY_MASTER_KEY_FILE")]
    master_key_file: Option<PathBuf>,
    /// The snapshot file to write; it must not exist.
    #[arg(long)]
    out: PathBuf,
}

/// `rotary restore`
#[derive(Debug, Args)]
pub(crate) struct RestoreArgs {
    /// A snapshot written by `rotary backup`.
    #[arg(long)]
    from: PathBuf,
    /// The data directory to create; it must not exist or be empty.
    #[arg(long)]
    data_dir: PathBuf,
}

/// A refusal the operator fixes by changing the command or the files (exit 2).
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

fn refuse(msg: String) -> anyhow::Error {
    Refused(msg).into()
}

/// What a snapshot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Summary {
    secrets: i64,
    versions: i64,
}

/// Runs `rotary backup` and returns the exit code.
pub(crate) fn backup(args: BackupArgs) -> ExitCode {
    finish(run_async(backup_inner(args)))
}

/// Runs `rotary restore` and returns the exit code.
pub(crate) fn restore(args: RestoreArgs) -> ExitCode {
    finish(run_async(restore_inner(args)))
}

fn run_async<F: std::future::Future<Output = anyhow::Result<()>>>(f: F) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(f)
}

fn finish(res: anyhow::Result<()>) -> ExitCode {
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rotary: {e:#}");
            if e.downcast_ref::<Refused>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

/// `--store` as a file path; the same forms `rotary serve` accepts.
fn store_path(data_dir: &Path, store: Option<&str>) -> anyhow::Result<PathBuf> {
    let Some(url) = store else {
        return Ok(data_dir.join(DB_FILE));
    };
    if let Some(path) = url.strip_prefix("sqlite://") {
        if path.is_empty() {
            return Err(refuse(format!("--store {url:?} names no file")));
        }
        return Ok(PathBuf::from(path));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Err(refuse(
            "--store: rotary backup covers the SQLite store; back up PostgreSQL with pg_dump \
             or point-in-time recovery (see docs/operations.md)"
                .to_owned(),
        ));
    }
    Err(refuse(format!("--store {url:?} must be sqlite://PATH")))
}

/// `path` with `suffix` appended to its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

fn utf8(path: &Path) -> anyhow::Result<&str> {
    path.to_str()
        .ok_or_else(|| refuse(format!("{} is not a UTF-8 path", path.display())))
}

/// One connection to the database at `path`, read-only, never creating it.
async fn open_read_only(path: &Path) -> anyhow::Result<SqliteConnection> {
    let opts = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false)
        .read_only(true)
        .busy_timeout(Duration::from_secs(30))
        .disable_statement_logging();
    let conn = SqliteConnection::connect_with(&opts)
        .await
        .with_context(|| format!("opening {}", path.display()))?;
    Ok(conn)
}

/// Creates `path` empty with mode 0600; fails when it exists.
fn create_private(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(fsperm::FILE_MODE)
        .open(path)
}

/// Copies the database behind `conn` into `dest` (an empty file) as of one read transaction.
async fn vacuum_into(conn: &mut SqliteConnection, dest: &Path) -> anyhow::Result<()> {
    sqlx::query("VACUUM INTO ?")
        .bind(utf8(dest)?)
        .execute(&mut *conn)
        .await
        .with_context(|| format!("writing the snapshot to {}", dest.display()))?;
    Ok(())
}

/// Refuses a database that is damaged or is not a Rotary store; counts what it holds.
async fn check_rotary_db(conn: &mut SqliteConnection, path: &Path) -> anyhow::Result<Summary> {
    let not_rotary = |why: String| {
        refuse(format!(
            "{} is not a Rotary database: {why}",
            path.display()
        ))
    };
    let rows = sqlx::query("PRAGMA integrity_check")
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| not_rotary(e.to_string()))?;
    let mut problems = Vec::new();
    for r in &rows {
        let line: String = r.try_get(0).map_err(|e| not_rotary(e.to_string()))?;
        if line != "ok" {
            problems.push(line);
        }
    }
    if !problems.is_empty() {
        problems.truncate(5);
        return Err(refuse(format!(
            "{} failed SQLite's integrity check: {}",
            path.display(),
            problems.join("; ")
        )));
    }
    let tables: Vec<String> = sqlx::query("SELECT name FROM sqlite_master WHERE type = 'table'")
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| not_rotary(e.to_string()))?
        .iter()
        .map(|r| r.try_get::<String, _>(0))
        .collect::<Result<_, _>>()
        .map_err(|e| not_rotary(e.to_string()))?;
    let missing: Vec<&str> = REQUIRED_TABLES
        .iter()
        .copied()
        .filter(|t| !tables.iter().any(|have| have == t))
        .collect();
    if !missing.is_empty() {
        return Err(not_rotary(format!(
            "it has no {} table{}",
            missing.join(", "),
            if missing.len() == 1 { "" } else { "s" }
        )));
    }
    let row = sqlx::query(
        "SELECT (SELECT COUNT(*) FROM secrets) AS secrets, \
         (SELECT COUNT(*) FROM versions) AS versions",
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| not_rotary(e.to_string()))?;
    Ok(Summary {
        secrets: row.try_get("secrets")?,
        versions: row.try_get("versions")?,
    })
}

/// Flushes `path`'s data and its directory entry to disk.
fn sync_file_and_dir(path: &Path) -> anyhow::Result<()> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("syncing {}", path.display()))?;
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        File::open(dir)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("syncing {}", dir.display()))?;
    }
    Ok(())
}

async fn backup_inner(args: BackupArgs) -> anyhow::Result<()> {
    fsperm::private_umask();
    let db = store_path(&args.data_dir, args.store.as_deref())?;
    if !db.is_file() {
        return Err(refuse(format!(
            "no store at {}: give the server's --data-dir (or --store sqlite://PATH)",
            db.display()
        )));
    }
    let key = args
        .master_key_file
        .clone()
        .unwrap_or_else(|| args.data_dir.join(KEY_FILE));
    // Reserve the output name: never overwrite, and nobody else gets to read it.
    create_private(&args.out).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            refuse(format!(
                "{} already exists: rotary backup does not overwrite; choose a new name",
                args.out.display()
            ))
        } else {
            refuse(format!("creating {}: {e}", args.out.display()))
        }
    })?;
    let tmp = with_suffix(&args.out, &format!(".tmp-{}", std::process::id()));
    let res = write_snapshot(&db, &tmp, &args.out).await;
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
        let _ = std::fs::remove_file(&args.out);
    }
    let summary = res?;
    let size = std::fs::metadata(&args.out).map(|m| m.len()).unwrap_or(0);
    println!(
        "Backed up {} to {}: {} secrets, {} versions, {size} bytes, mode 0600.",
        db.display(),
        args.out.display(),
        summary.secrets,
        summary.versions
    );
    println!(
        "The file holds only ciphertext: secret values, KMS keys and credentials are sealed \
         under the master key, which is NOT in the backup. The server's key is expected at {}; \
         keep a copy of it separately from the backup (without it nothing in the backup can \
         be read; with both, everything can).",
        key.display()
    );
    Ok(())
}

/// Snapshots `db` into `tmp`, checks it, and renames it to `out`.
async fn write_snapshot(db: &Path, tmp: &Path, out: &Path) -> anyhow::Result<Summary> {
    create_private(tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut src = open_read_only(db).await?;
    vacuum_into(&mut src, tmp).await?;
    src.close().await.ok();
    // SQLite may have recreated the file: make sure it is private either way.
    std::fs::set_permissions(tmp, std::fs::Permissions::from_mode(fsperm::FILE_MODE))
        .with_context(|| format!("setting the mode of {}", tmp.display()))?;
    let mut snap = open_read_only(tmp).await?;
    let summary = check_rotary_db(&mut snap, db).await;
    snap.close().await.ok();
    let summary = summary?;
    sync_file_and_dir(tmp)?;
    std::fs::rename(tmp, out)
        .with_context(|| format!("renaming {} to {}", tmp.display(), out.display()))?;
    sync_file_and_dir(out)?;
    Ok(summary)
}

async fn restore_inner(args: RestoreArgs) -> anyhow::Result<()> {
    fsperm::private_umask();
    let from = &args.from;
    if !from.is_file() {
        return Err(refuse(format!("{} is not a file", from.display())));
    }
    let dir = &args.data_dir;
    let db = dir.join(DB_FILE);
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(refuse(format!(
                    "{} is not empty{}: restore only into a new or empty data directory",
                    dir.display(),
                    if db.exists() {
                        " (it already holds a database)"
                    } else {
                        ""
                    }
                )));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(refuse(format!("{}: {e}", dir.display())));
        }
    }
    // Check the snapshot before creating anything.
    let mut src = open_read_only(from)
        .await
        .map_err(|e| refuse(format!("{e:#}")))?;
    let summary = match check_rotary_db(&mut src, from).await {
        Ok(s) => s,
        Err(e) => {
            src.close().await.ok();
            return Err(e);
        }
    };
    let created_dir = !dir.exists();
    DirBuilder::new()
        .recursive(true)
        .mode(fsperm::DIR_MODE)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(fsperm::DIR_MODE))
        .with_context(|| format!("setting the mode of {}", dir.display()))?;
    let res = write_restored(&mut src, &db).await;
    src.close().await.ok();
    if let Err(e) = res {
        let _ = std::fs::remove_file(&db);
        if created_dir {
            let _ = std::fs::remove_dir(dir);
        }
        return Err(e);
    }
    println!(
        "Restored {} into {} ({} secrets, {} versions); {} is mode 0700, {} mode 0600.",
        from.display(),
        db.display(),
        summary.secrets,
        summary.versions,
        dir.display(),
        db.display()
    );
    println!(
        "The backup holds only ciphertext. Before `rotary serve --data-dir {}`, copy the master \
         key file the data was sealed with to {} (mode 0600), or give its path with \
         --master-key-file: without it the server refuses to start.",
        dir.display(),
        dir.join(KEY_FILE).display()
    );
    println!(
        "Not in the backup either: signing.key (signatures of HTTP functions and webhooks; copy \
         it too, or a new one is made), the functions/ directory and the audit log \
         (audit.log, audit.head)."
    );
    Ok(())
}

/// Copies the snapshot behind `src` into `db` (created 0600) and checks the copy.
async fn write_restored(src: &mut SqliteConnection, db: &Path) -> anyhow::Result<()> {
    create_private(db).with_context(|| format!("creating {}", db.display()))?;
    vacuum_into(src, db).await?;
    std::fs::set_permissions(db, std::fs::Permissions::from_mode(fsperm::FILE_MODE))
        .with_context(|| format!("setting the mode of {}", db.display()))?;
    let mut copy = open_read_only(db).await?;
    let res = check_rotary_db(&mut copy, db).await;
    copy.close().await.ok();
    res?;
    sync_file_and_dir(db)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls() {
        let d = Path::new("d");
        assert_eq!(store_path(d, None).unwrap(), Path::new("d/rotary.db"));
        assert_eq!(
            store_path(d, Some("sqlite:///x/y.db")).unwrap(),
            Path::new("/x/y.db")
        );
        assert!(store_path(d, Some("sqlite://")).is_err());
        let e = store_path(d, Some("postgres://h/db")).unwrap_err();
        assert!(e.to_string().contains("pg_dump"), "{e}");
        assert!(e.downcast_ref::<Refused>().is_some());
    }
}
