//! File modes of what the server keeps on disk: the data directory 0700, every file in it
//! (database, WAL, key files, credentials) 0600, and key files refused when others can read
//! them.
//!
//! The server sets its umask to 077 first, so everything it or SQLite creates afterwards is
//! private; [`secure_data_dir`] tightens what an older version or an operator left looser,
//! with a log line for each change.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{bail, Context};

/// Mode of the data directory.
pub(crate) const DIR_MODE: u32 = 0o700;
/// Mode of every file in it.
pub(crate) const FILE_MODE: u32 = 0o600;

/// Makes files the process creates from now on private to its user (umask 077).
pub(crate) fn private_umask() {
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
}

/// Sets `dir` to 0700 and every regular file directly in it to 0600 when they are looser.
/// `keep` names entries left alone: the function directory, which the sandboxed functions'
/// user must be able to read, and the key files, which are refused rather than tightened
/// when loose.
pub(crate) fn secure_data_dir(dir: &Path, keep: &[&Path]) -> anyhow::Result<()> {
    tighten(dir, DIR_MODE)?;
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("reading data dir {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("reading data dir {}", dir.display()))?;
        let path = entry.path();
        if keep.iter().any(|k| paths_equal(k, &path)) {
            continue;
        }
        let meta = std::fs::symlink_metadata(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        if meta.is_file() {
            tighten(&path, FILE_MODE)?;
        } else if meta.is_dir() {
            tighten(&path, DIR_MODE)?;
        }
    }
    Ok(())
}

/// Sets a file (and its SQLite `-wal`/`-shm` companions, when they exist) to 0600 when looser.
pub(crate) fn secure_store_file(path: &Path) -> anyhow::Result<()> {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let p = Path::new(&p);
        if p.exists() {
            tighten(p, FILE_MODE)?;
        }
    }
    Ok(())
}

/// Refuses a key file that its group or others can read or write.
pub(crate) fn check_key_file(path: &Path, what: &str) -> anyhow::Result<()> {
    let mode = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        bail!(
            "{what} {} is mode {:o}: it must not be readable by group or others (chmod 600)",
            path.display(),
            mode & 0o777
        );
    }
    Ok(())
}

fn paths_equal(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Removes group and other bits beyond `max` from `path`'s mode; logs when it changes.
fn tighten(path: &Path, max: u32) -> anyhow::Result<()> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    let mode = meta.permissions().mode() & 0o7777;
    let wanted = mode & max;
    if wanted != mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(wanted))
            .with_context(|| format!("setting the mode of {}", path.display()))?;
        tracing::warn!(
            path = %path.display(),
            from = format!("{mode:o}"),
            to = format!("{wanted:o}"),
            "Tightened file permissions"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn secure_data_dir_tightens_dir_and_files_but_keeps_function_dir() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("data");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        for name in ["rotary.db", "rotary.db-wal", "signing.key"] {
            std::fs::write(dir.join(name), "x").unwrap();
            std::fs::set_permissions(dir.join(name), std::fs::Permissions::from_mode(0o644))
                .unwrap();
        }
        let functions = dir.join("functions");
        std::fs::create_dir(&functions).unwrap();
        std::fs::set_permissions(&functions, std::fs::Permissions::from_mode(0o755)).unwrap();
        secure_data_dir(&dir, &[&functions]).unwrap();
        assert_eq!(mode(&dir), 0o700);
        for name in ["rotary.db", "rotary.db-wal", "signing.key"] {
            assert_eq!(mode(&dir.join(name)), 0o600, "{name}");
        }
        assert_eq!(mode(&functions), 0o755);
    }

    #[test]
    fn store_companions_are_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.db");
        for p in [db.clone(), dir.path().join("x.db-shm")] {
            std::fs::write(&p, "x").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o664)).unwrap();
        }
        secure_store_file(&db).unwrap();
        assert_eq!(mode(&db), 0o600);
        assert_eq!(mode(&dir.path().join("x.db-shm")), 0o600);
    }

    #[test]
    fn key_files_readable_by_others_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("signing.key");
        std::fs::write(&key, "00").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = check_key_file(&key, "signing key").unwrap_err().to_string();
        assert!(err.contains("chmod 600") && err.contains("644"), "{err}");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        check_key_file(&key, "signing key").unwrap();
    }
}
