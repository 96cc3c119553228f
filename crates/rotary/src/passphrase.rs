//! Passphrase-sealed master key files, like Vault's unseal: the 32-byte master key stored
//! encrypted (AES-256-GCM) under a key derived from a passphrase with Argon2id, so that a
//! copy of the data directory together with its key file is not enough to read the secrets.
//!
//! The sealed file is text, so that `open` tells it from a plain key file (always exactly 32
//! bytes) and an operator can see what it is:
//!
//! ```text
//! rotary-sealed-master-key v1
//! kdf: argon2id
//! argon2-version: 19
//! memory-kib: 65536
//! iterations: 3
//! parallelism: 1
//! salt: BASE64 (16 random bytes)
//! cipher: aes-256-gcm
//! sealed-key: BASE64 (nonce ‖ ciphertext ‖ tag)
//! ```
//!
//! The Argon2id parameters and the salt live in the file, so later versions can raise them
//! and still open older files. Everything before the `sealed-key` line is the AAD of the
//! sealed key: a header changed on disk fails to open like a wrong passphrase. Parameters read
//! from a file are bounded, so a tampered file cannot make the server allocate gigabytes.
//!
//! The passphrase comes from a file (`--master-key-passphrase-file`), the environment
//! (`ROTARY_MASTER_KEY_PASSPHRASE`) or, when standard input is a terminal, a prompt without
//! echo; it is read only when the key file is sealed, kept in a zeroized buffer, and never
//! printed or logged.

use std::io::{IsTerminal, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::Context;
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use rand::RngCore;
use rotary_crypto::MasterKey;
use zeroize::Zeroizing;

use crate::keycheck::ConfigError;

/// First line of a sealed key file, with its format version.
const MAGIC: &str = "rotary-sealed-master-key v1";
/// What every version's first line starts with: tells a sealed file from a plain one.
const MAGIC_PREFIX: &[u8] = b"rotary-sealed-master-key ";
/// Environment variable holding the passphrase itself.
pub(crate) const PASSPHRASE_ENV: &str = "ROTARY_MASTER_KEY_PASSPHRASE";
/// Passphrases shorter than this are refused when sealing.
const MIN_PASSPHRASE_CHARS: usize = 8;
const SALT_LEN: usize = 16;

/// Argon2id cost parameters, stored in each sealed file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KdfParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over the memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl KdfParams {
    /// What `seal` uses: 64 MiB, 3 passes, 1 lane (RFC 9106's second recommended option):
    /// a fraction of a second once per start, costly for anyone guessing passphrases.
    pub(crate) const DEFAULT: Self = Self {
        memory_kib: 64 * 1024,
        iterations: 3,
        parallelism: 1,
    };

    /// Refuses costs no sealed file of ours has, so a tampered header cannot make the server
    /// allocate more than 4 GiB or spin for minutes.
    fn check(self) -> Result<Self, &'static str> {
        if !(1..=64).contains(&self.parallelism) {
            return Err("parallelism must be between 1 and 64");
        }
        if !(1..=64).contains(&self.iterations) {
            return Err("iterations must be between 1 and 64");
        }
        if self.memory_kib < 8 * self.parallelism || self.memory_kib > 4 * 1024 * 1024 {
            return Err("memory-kib must be between 8 × parallelism and 4194304");
        }
        Ok(self)
    }
}

/// What a key file holds.
pub(crate) enum KeyFile {
    /// 32 bytes in clear.
    Plain(MasterKey),
    /// A key sealed under a passphrase.
    Sealed(SealedKey),
}

/// A parsed sealed key file; opening it needs the passphrase.
#[derive(Debug)]
pub(crate) struct SealedKey {
    /// The Argon2id costs the file was sealed with.
    pub params: KdfParams,
    salt: Vec<u8>,
    /// Everything before the `sealed-key` line: the AAD.
    header: String,
    sealed: Vec<u8>,
}

impl SealedKey {
    /// Seals `key` under `passphrase` with a fresh salt; returns the file's bytes.
    pub(crate) fn seal(
        key: &MasterKey,
        passphrase: &[u8],
        params: KdfParams,
    ) -> anyhow::Result<Vec<u8>> {
        let params = params.check().map_err(anyhow::Error::msg)?;
        let mut salt = [0u8; SALT_LEN];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        let b64 = base64::engine::general_purpose::STANDARD;
        let header = format!(
            "{MAGIC}\nkdf: argon2id\nargon2-version: 19\nmemory-kib: {}\niterations: {}\n\
             parallelism: {}\nsalt: {}\ncipher: aes-256-gcm\n",
            params.memory_kib,
            params.iterations,
            params.parallelism,
            b64.encode(salt)
        );
        let kek = derive(passphrase, &salt, params)?;
        let sealed = kek.wrap_key(header.as_bytes(), key)?;
        Ok(format!("{header}sealed-key: {}\n", b64.encode(sealed)).into_bytes())
    }

    /// Parses a sealed key file's text (without opening the key).
    fn parse(text: &[u8]) -> Result<Self, String> {
        let text = std::str::from_utf8(text).map_err(|_| "it is not UTF-8 text".to_owned())?;
        let first = text.lines().next().unwrap_or_default();
        if first != MAGIC {
            return Err(format!(
                "its first line is {first:?}, not {MAGIC:?}: it may come from a newer Rotary"
            ));
        }
        let body = text
            .strip_suffix('\n')
            .ok_or_else(|| "it does not end with a newline (truncated?)".to_owned())?;
        let mut lines = body.lines().skip(1);
        let mut field = |name: &str| -> Result<&str, String> {
            let line = lines
                .next()
                .ok_or_else(|| format!("the {name} line is missing"))?;
            line.strip_prefix(name)
                .and_then(|l| l.strip_prefix(": "))
                .ok_or_else(|| format!("expected the {name} line, found {line:?}"))
        };
        let number = |name: &str, v: &str| -> Result<u32, String> {
            v.parse()
                .map_err(|_| format!("{name} {v:?} is not a number"))
        };
        let b64 = base64::engine::general_purpose::STANDARD;
        if field("kdf")? != "argon2id" {
            return Err("the kdf must be argon2id".into());
        }
        if field("argon2-version")? != "19" {
            return Err("the argon2-version must be 19".into());
        }
        let memory_kib = number("memory-kib", field("memory-kib")?)?;
        let iterations = number("iterations", field("iterations")?)?;
        let parallelism = number("parallelism", field("parallelism")?)?;
        let params = KdfParams {
            memory_kib,
            iterations,
            parallelism,
        }
        .check()?;
        let salt = b64
            .decode(field("salt")?)
            .map_err(|_| "the salt is not base64".to_owned())?;
        if !(SALT_LEN..=64).contains(&salt.len()) {
            return Err("the salt must have 16 to 64 bytes".into());
        }
        if field("cipher")? != "aes-256-gcm" {
            return Err("the cipher must be aes-256-gcm".into());
        }
        let sealed = b64
            .decode(field("sealed-key")?)
            .map_err(|_| "the sealed key is not base64".to_owned())?;
        if lines.next().is_some() {
            return Err("it has lines after sealed-key".into());
        }
        let header_len = text
            .find("\nsealed-key: ")
            .map(|i| i + 1)
            .ok_or_else(|| "the sealed-key line is missing".to_owned())?;
        Ok(Self {
            params,
            salt,
            header: text[..header_len].to_owned(),
            sealed,
        })
    }

    /// Opens the key, or `None` when the passphrase does not open it (or the file was
    /// changed: AES-GCM cannot tell the two apart).
    pub(crate) fn open(&self, passphrase: &[u8]) -> anyhow::Result<Option<MasterKey>> {
        let kek = derive(passphrase, &self.salt, self.params)?;
        Ok(kek.unwrap_key(self.header.as_bytes(), &self.sealed).ok())
    }
}

/// Argon2id(passphrase, salt) → a 32-byte key (zeroized on drop inside [`MasterKey`]).
fn derive(passphrase: &[u8], salt: &[u8], params: KdfParams) -> anyhow::Result<MasterKey> {
    let params = Params::new(
        params.memory_kib,
        params.iterations,
        params.parallelism,
        Some(32),
    )
    .map_err(|e| anyhow::anyhow!("Argon2id parameters: {e}"))?;
    let mut out = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase, salt, out.as_mut())
        .map_err(|e| anyhow::anyhow!("deriving the key from the passphrase: {e}"))?;
    Ok(MasterKey::from_bytes(out))
}

/// Reads a key file: plain (exactly 32 bytes) or sealed. The file must be mode 0600 or
/// stricter. Every failure is a [`ConfigError`] naming the file.
pub(crate) fn read_key_file(path: &Path) -> anyhow::Result<KeyFile> {
    let meta = std::fs::metadata(path)
        .map_err(|e| ConfigError(format!("master key file {}: {e}", path.display())))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(ConfigError(format!(
            "master key file {}: must not be readable by group or others (chmod 600)",
            path.display()
        ))
        .into());
    }
    let bytes = Zeroizing::new(
        std::fs::read(path)
            .map_err(|e| ConfigError(format!("master key file {}: {e}", path.display())))?,
    );
    key_file_from_bytes(path, &bytes)
}

/// Parses bytes written by [`SealedKey::seal`] (to check them before they replace a file).
pub(crate) fn read_key_file_bytes(bytes: &[u8]) -> anyhow::Result<KeyFile> {
    key_file_from_bytes(Path::new("(new sealed file)"), bytes)
}

fn key_file_from_bytes(path: &Path, bytes: &[u8]) -> anyhow::Result<KeyFile> {
    // A sealed file is always longer than 32 bytes, so the two cannot be confused.
    if let Ok(arr) = <[u8; 32]>::try_from(bytes) {
        return Ok(KeyFile::Plain(MasterKey::from_bytes(Zeroizing::new(arr))));
    }
    if bytes.starts_with(MAGIC_PREFIX) {
        return SealedKey::parse(bytes).map(KeyFile::Sealed).map_err(|why| {
            ConfigError(format!(
                "master key file {} is not a valid sealed key file: {why}",
                path.display()
            ))
            .into()
        });
    }
    Err(ConfigError(format!(
        "master key file {}: must hold exactly 32 bytes, or be a sealed key file written by \
         `rotary master-key seal`",
        path.display()
    ))
    .into())
}

/// Opens a key file, asking `passphrase` for the passphrase only when the file is sealed.
/// A sealed file without a passphrase, or one the passphrase does not open, is a
/// [`ConfigError`] (exit 2).
pub(crate) fn open_key_file(path: &Path, passphrase: &Passphrase) -> anyhow::Result<MasterKey> {
    match read_key_file(path)? {
        KeyFile::Plain(key) => {
            if passphrase.is_given() {
                tracing::warn!(
                    path = %path.display(),
                    "A master key passphrase was given but the key file is not sealed; seal it \
                     with `rotary master-key seal`"
                );
            }
            Ok(key)
        }
        KeyFile::Sealed(sealed) => {
            let pass = passphrase.get(false)?.ok_or_else(|| {
                ConfigError(format!(
                    "the master key in {} is sealed with a passphrase and none was given: set \
                     --master-key-passphrase-file (or ROTARY_MASTER_KEY_PASSPHRASE_FILE), or \
                     {PASSPHRASE_ENV}, or start from a terminal to be asked for it",
                    path.display()
                ))
            })?;
            sealed
                .open(&pass)?
                .ok_or_else(|| wrong_passphrase(path).into())
        }
    }
}

/// The refusal for a passphrase that does not open a sealed key file.
pub(crate) fn wrong_passphrase(path: &Path) -> ConfigError {
    ConfigError(format!(
        "the passphrase does not open the sealed master key in {} (wrong passphrase, or the \
         file was changed)",
        path.display()
    ))
}

/// Writes `contents` to `path` atomically: a temporary file beside it (mode 0600), synced,
/// renamed over `path`, and the directory synced. A crash leaves either the old file or
/// the new one, never a mix.
pub(crate) fn replace_file(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let tmp = crate::masterkey::sibling(path, ".tmp");
    // A leftover from a crash of an earlier run; it is not the key file.
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(contents)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    drop(f);
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    crate::masterkey::sync_dir(path)
}

/// Replaces `path` atomically with `key` in clear (32 bytes, mode 0600): `unseal`.
pub(crate) fn replace_with_plain_key(path: &Path, key: &MasterKey) -> anyhow::Result<()> {
    let tmp = crate::masterkey::sibling(path, ".tmp");
    let _ = std::fs::remove_file(&tmp);
    key.save_new(&tmp)?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    crate::masterkey::sync_dir(path)
}

/// Writes a new sealed key file at `path` (mode 0600, synced); fails if it exists.
pub(crate) fn save_new_sealed(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(contents)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    crate::masterkey::sync_dir(path)
}

/// Where the passphrase comes from, read once and kept (zeroized on drop) so that one
/// command never asks twice: a file, else `ROTARY_MASTER_KEY_PASSPHRASE`, else a prompt
/// when standard input is a terminal.
pub(crate) struct Passphrase {
    file: Option<PathBuf>,
    cached: Mutex<Option<Zeroizing<Vec<u8>>>>,
}

impl Passphrase {
    /// A source reading `file` when given.
    pub(crate) fn new(file: Option<PathBuf>) -> Self {
        Self {
            file,
            cached: Mutex::new(None),
        }
    }

    /// Whether a file or the environment variable gives a passphrase (no prompt needed).
    pub(crate) fn is_given(&self) -> bool {
        self.file.is_some() || std::env::var_os(PASSPHRASE_ENV).is_some()
    }

    /// The passphrase, or `None` when no source has one. `confirm`: at a prompt, ask twice
    /// and refuse when the answers differ (for sealing, where a typo would lose the key).
    pub(crate) fn get(&self, confirm: bool) -> anyhow::Result<Option<Zeroizing<Vec<u8>>>> {
        let mut cached = self
            .cached
            .lock()
            .map_err(|_| anyhow::anyhow!("passphrase lock poisoned"))?;
        if let Some(p) = cached.as_ref() {
            return Ok(Some(p.clone()));
        }
        let read = match self.read_file_or_env()? {
            Some(p) => p,
            None if std::io::stdin().is_terminal() => prompt(confirm)?,
            None => return Ok(None),
        };
        *cached = Some(read.clone());
        Ok(Some(read))
    }

    /// The passphrase already read, or one a file or the environment gives; never prompts.
    pub(crate) fn get_quietly(&self) -> Option<Zeroizing<Vec<u8>>> {
        if let Ok(cached) = self.cached.lock() {
            if let Some(p) = cached.as_ref() {
                return Some(p.clone());
            }
        }
        self.read_file_or_env().ok().flatten()
    }

    fn read_file_or_env(&self) -> anyhow::Result<Option<Zeroizing<Vec<u8>>>> {
        if let Some(path) = &self.file {
            return read_passphrase_file(path).map(Some);
        }
        Ok(std::env::var_os(PASSPHRASE_ENV).map(|v| Zeroizing::new(v.as_bytes().to_vec())))
    }
}

/// Reads a passphrase file (mode 0600 or stricter, like every secret given by path); one
/// trailing newline is not part of the passphrase.
fn read_passphrase_file(path: &Path) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    let config = |msg: String| -> anyhow::Error { ConfigError(msg).into() };
    crate::fsperm::check_key_file(path, "the master key passphrase file")
        .map_err(|e| config(format!("{e:#}")))?;
    let mut bytes = Zeroizing::new(std::fs::read(path).map_err(|e| {
        config(format!(
            "reading the master key passphrase file {}: {e}",
            path.display()
        ))
    })?);
    if bytes.ends_with(b"\n") {
        bytes.pop();
        if bytes.ends_with(b"\r") {
            bytes.pop();
        }
    }
    if bytes.is_empty() {
        return Err(config(format!(
            "the master key passphrase file {} is empty",
            path.display()
        )));
    }
    Ok(bytes)
}

/// Asks at the terminal without echo (once, or twice when `confirm`).
fn prompt(confirm: bool) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    let ask = |text: &str| -> anyhow::Result<Zeroizing<Vec<u8>>> {
        let answer = Zeroizing::new(
            rpassword::prompt_password(text).context("reading the passphrase at the terminal")?,
        );
        Ok(Zeroizing::new(answer.as_bytes().to_vec()))
    };
    let first = ask("Master key passphrase: ")?;
    if confirm && ask("Master key passphrase (again): ")? != first {
        return Err(ConfigError("the two passphrases differ: nothing was changed".into()).into());
    }
    Ok(first)
}

/// Refuses a passphrase too short to seal with.
pub(crate) fn check_new_passphrase(pass: &[u8]) -> anyhow::Result<()> {
    let chars = String::from_utf8_lossy(pass).chars().count();
    if chars < MIN_PASSPHRASE_CHARS {
        return Err(ConfigError(format!(
            "the passphrase must have at least {MIN_PASSPHRASE_CHARS} characters"
        ))
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cheap parameters: the tests check the format, not the cost.
    const FAST: KdfParams = KdfParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    fn write_0600(path: &Path, bytes: &[u8]) {
        std::fs::write(path, bytes).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    #[test]
    fn seal_open_round_trip() {
        let key = MasterKey::generate();
        let file = SealedKey::seal(&key, b"correct horse", FAST).unwrap();
        let text = String::from_utf8(file.clone()).unwrap();
        assert!(text.starts_with("rotary-sealed-master-key v1\nkdf: argon2id\n"));
        assert!(text.contains("memory-kib: 64\n"));
        let sealed = SealedKey::parse(&file).unwrap();
        assert_eq!(sealed.params, FAST);
        assert!(sealed
            .open(b"correct horse")
            .unwrap()
            .unwrap()
            .same_as(&key));
        // A fresh salt each time.
        let again = SealedKey::seal(&key, b"correct horse", FAST).unwrap();
        assert_ne!(file, again);
    }

    #[test]
    fn seal_wrong_passphrase_opens_nothing() {
        let key = MasterKey::generate();
        let sealed =
            SealedKey::parse(&SealedKey::seal(&key, b"correct horse", FAST).unwrap()).unwrap();
        assert!(sealed.open(b"correct hors").unwrap().is_none());
        assert!(sealed.open(b"").unwrap().is_none());
    }

    #[test]
    fn seal_tampered_file_refused() {
        let key = MasterKey::generate();
        let file = String::from_utf8(SealedKey::seal(&key, b"pw-pw-pw", FAST).unwrap()).unwrap();
        // A changed cost parameter: parses, but the header is the AAD, so it does not open.
        let changed = file.replace("iterations: 1\n", "iterations: 2\n");
        let sealed = SealedKey::parse(changed.as_bytes()).unwrap();
        assert!(sealed.open(b"pw-pw-pw").unwrap().is_none());
        // A flipped bit in the sealed key.
        let (head, tail) = file.split_once("sealed-key: ").unwrap();
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut bytes = b64.decode(tail.trim_end()).unwrap();
        bytes[20] ^= 1;
        let flipped = format!("{head}sealed-key: {}\n", b64.encode(bytes));
        let sealed = SealedKey::parse(flipped.as_bytes()).unwrap();
        assert!(sealed.open(b"pw-pw-pw").unwrap().is_none());
        // Malformed files are refused before any derivation.
        for bad in [
            file.replace("kdf: argon2id", "kdf: scrypt"),
            file.replace("memory-kib: 64", "memory-kib: 99999999"),
            file.replace("rotary-sealed-master-key v1", "rotary-sealed-master-key v2"),
            file.replace("cipher: aes-256-gcm\n", ""),
            file.trim_end().to_owned(),
            format!("{file}extra: 1\n"),
        ] {
            assert!(SealedKey::parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn read_key_file_detects_format() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain.key");
        MasterKey::create(&plain).unwrap();
        assert!(matches!(read_key_file(&plain).unwrap(), KeyFile::Plain(_)));
        let key = MasterKey::generate();
        let sealed_path = dir.path().join("sealed.key");
        write_0600(
            &sealed_path,
            &SealedKey::seal(&key, b"pw-pw-pw", FAST).unwrap(),
        );
        assert!(matches!(
            read_key_file(&sealed_path).unwrap(),
            KeyFile::Sealed(_)
        ));
        // Neither: refused as a configuration error.
        let junk = dir.path().join("junk.key");
        write_0600(&junk, b"not a key");
        let err = read_key_file(&junk).err().unwrap();
        assert!(err.downcast_ref::<ConfigError>().is_some());
        // Loose mode: refused.
        std::fs::set_permissions(&sealed_path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(read_key_file(&sealed_path).is_err());
    }

    #[test]
    fn open_key_file_with_passphrase_file() {
        let dir = tempfile::tempdir().unwrap();
        let key = MasterKey::generate();
        let key_path = dir.path().join("master.key");
        write_0600(
            &key_path,
            &SealedKey::seal(&key, b"pw-pw-pw", FAST).unwrap(),
        );
        let pass_path = dir.path().join("pass");
        write_0600(&pass_path, b"pw-pw-pw\n");
        let opened = open_key_file(&key_path, &Passphrase::new(Some(pass_path.clone()))).unwrap();
        assert!(opened.same_as(&key));
        write_0600(&pass_path, b"wrong-pw\n");
        let err = open_key_file(&key_path, &Passphrase::new(Some(pass_path.clone())))
            .err()
            .unwrap();
        assert!(err.downcast_ref::<ConfigError>().is_some());
        assert!(
            err.to_string().contains("passphrase does not open"),
            "{err}"
        );
        // A passphrase file others can read is refused.
        std::fs::set_permissions(&pass_path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(open_key_file(&key_path, &Passphrase::new(Some(pass_path))).is_err());
    }

    #[test]
    fn replace_file_is_0600_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("master.key");
        write_0600(&p, b"old");
        replace_file(&p, b"new").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(!crate::masterkey::sibling(&p, ".tmp").exists());
    }

    #[test]
    fn default_params_are_accepted() {
        assert_eq!(KdfParams::DEFAULT.check(), Ok(KdfParams::DEFAULT));
        assert!(check_new_passphrase(b"short").is_err());
        assert!(check_new_passphrase(b"long enough").is_ok());
    }
}
