//! `rotary`: a self-hosted secrets manager that speaks the AWS Secrets Manager API.
//!
//! `rotary serve` runs the server. Exit codes: 0 ok, 1 runtime failure, 2 usage or
//! configuration error.

mod backup;
mod cli;
mod config;
mod fsperm;
mod keycheck;
mod masterkey;
mod nextkey;
mod passphrase;
mod serve;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// jemalloc instead of glibc's malloc: the request path allocates and frees many small
/// buffers on several threads; jemalloc serves them faster and keeps less memory after
/// bursts (docs/PERFORMANCE.md, "Allocator").
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// A self-hosted secrets manager with automatic rotation, wire-compatible with AWS
/// Secrets Manager.
#[derive(Debug, Parser)]
#[command(name = "rotary", version, about)]
struct Cli {
    #[command(flatten)]
    client: cli::ClientArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server.
    Serve(Box<config::ServeArgs>),
    /// Check and read the audit log in a data directory (offline: no server needed).
    #[command(subcommand)]
    Audit(cli::audit::AuditCommand),
    /// Master key operations on a data directory (offline: stop the server first).
    #[command(subcommand)]
    MasterKey(MasterKeyCommand),
    /// Write a consistent snapshot of the store while the server runs (ciphertext only: the
    /// master key is not in it).
    Backup(backup::BackupArgs),
    /// Create a new data directory from a snapshot written by `rotary backup`.
    Restore(backup::RestoreArgs),
    /// Print a shell completion script: `source <(rotary completions bash)`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    #[command(flatten)]
    Client(cli::ClientCommand),
}

#[derive(Debug, Subcommand)]
enum MasterKeyCommand {
    /// Re-wrap everything the master key seals under a new key; the old key file is kept as
    /// KEYFILE.old and no longer opens the data. A sealed key file stays sealed, with the
    /// same passphrase.
    Rotate(RotateArgs),
    /// Write the next master key to KEYFILE.new (sealed like KEYFILE), for an online
    /// rotation: copy it beside every node's key file and send each node SIGHUP, then run
    /// `rotate --online`. Prints the key's fingerprint; a key already staged is kept.
    Stage(KeyFileArgs),
    /// After an online rotation: re-wrap under KEYFILE anything still sealed under
    /// KEYFILE.old (sealed by a node that switched late). Prints how many; 0 means KEYFILE.old
    /// opens nothing in the data any more.
    Sweep(KeyFileArgs),
    /// Seal the key file with a passphrase (Argon2id + AES-256-GCM), replacing it
    /// atomically; the server then needs the passphrase to start. At a prompt it is asked
    /// twice.
    Seal(KeyFileArgs),
    /// Turn a sealed key file back into a plain one (32 bytes, mode 0600).
    Unseal(KeyFileArgs),
    /// Check that the passphrase opens the sealed key file: exit 0 if it does, 2 if not.
    UnsealTest(KeyFileArgs),
}

/// Which key file a `master-key` command works on, and its passphrase.
#[derive(Debug, clap::Args)]
struct KeyFileArgs {
    /// The data directory [default: ./rotary-data].
    #[arg(long, env = "ROTARY_DATA_DIR", default_value = "rotary-data")]
    data_dir: std::path::PathBuf,
    /// The key file [default: DATA_DIR/master.key].
    #[arg(long, visible_alias = "key-file", env = "ROTARY_MASTER_KEY_FILE")]
    master_key_file: Option<std::path::PathBuf>,
    /// File (mode 0600) holding the key file's passphrase; a trailing newline is ignored
    /// [default: the ROTARY_MASTER_KEY_PASSPHRASE variable, else a prompt at a terminal].
    #[arg(long, env = "ROTARY_MASTER_KEY_PASSPHRASE_FILE")]
    master_key_passphrase_file: Option<std::path::PathBuf>,
    /// `rotate`: the store whose sealed values are re-wrapped, as `rotary serve --store` takes
    /// it (`sqlite://PATH` or `postgres://…`; stop every node first)
    /// [default: sqlite://DATA_DIR/rotary.db].
    #[arg(long, env = "ROTARY_STORE")]
    store: Option<String>,
}

/// `rotary master-key rotate`.
#[derive(Debug, clap::Args)]
struct RotateArgs {
    #[command(flatten)]
    keys: KeyFileArgs,
    /// Re-key while the nodes run, under the key `stage` wrote to KEYFILE.new, which every
    /// node must hold (docs/operations.md, "Rotating it online").
    #[arg(long)]
    online: bool,
    /// With --online: how long to wait for every node to report sealing with the new key
    /// before the final sweep.
    #[arg(
        long,
        default_value_t = 30,
        value_name = "SECONDS",
        requires = "online"
    )]
    wait_seconds: u64,
    /// With --online: re-key even though a node that reported its keys does not hold the
    /// next key (a node that is gone for good; a running one could no longer open what the
    /// others seal).
    #[arg(long, requires = "online")]
    force: bool,
}

impl KeyFileArgs {
    fn key_file(&self) -> std::path::PathBuf {
        self.master_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("master.key"))
    }

    fn passphrase(&self) -> passphrase::Passphrase {
        passphrase::Passphrase::new(self.master_key_passphrase_file.clone())
    }
}

fn master_key(cmd: MasterKeyCommand) -> ExitCode {
    let result = match cmd {
        MasterKeyCommand::Rotate(args) if args.online => rotate_master_key_online(&args),
        MasterKeyCommand::Rotate(args) => rotate_master_key(&args.keys),
        MasterKeyCommand::Stage(args) => stage_master_key(&args),
        MasterKeyCommand::Sweep(args) => sweep_master_key(&args),
        MasterKeyCommand::Seal(args) => seal_master_key(&args),
        MasterKeyCommand::Unseal(args) => unseal_master_key(&args),
        MasterKeyCommand::UnsealTest(args) => unseal_test_master_key(&args),
    };
    match result {
        Ok(message) => {
            println!("{message}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rotary: {e:#}");
            if e.downcast_ref::<keycheck::ConfigError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

/// Runs a `master-key` command's store work on a single-threaded runtime.
fn block_on<T>(work: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("starting the async runtime: {e}"))?
        .block_on(work)
}

fn rotate_master_key(args: &KeyFileArgs) -> anyhow::Result<String> {
    let key = args.key_file();
    let (n, sealed) = block_on(async {
        let store = open_store_to_rekey(args).await?;
        masterkey::rotate(store.as_ref(), &key, &args.passphrase()).await
    })?;
    Ok(format!(
        "Rotated the master key: {n} sealed values re-wrapped; {} is the new key{}, the old one is {} (it no longer opens the data: remove it once the new key is backed up).",
        key.display(),
        if sealed { " (sealed with the same passphrase)" } else { "" },
        masterkey::sibling(&key, ".old").display()
    ))
}

fn stage_master_key(args: &KeyFileArgs) -> anyhow::Result<String> {
    let key = args.key_file();
    let (fingerprint, created) = masterkey::stage(&key, &args.passphrase())?;
    let new = masterkey::sibling(&key, ".new");
    Ok(if created {
        format!(
            "Staged the next master key in {} (fingerprint {fingerprint}). Copy it beside the \
             key file of every node (mode 0600) and send each node SIGHUP, then run `rotary \
             master-key rotate --online`.",
            new.display()
        )
    } else {
        format!(
            "{} already holds a staged key (fingerprint {fingerprint}); it was kept.",
            new.display()
        )
    })
}

fn sweep_master_key(args: &KeyFileArgs) -> anyhow::Result<String> {
    let key = args.key_file();
    let n = block_on(async {
        let store = open_store_to_rekey(args).await?;
        masterkey::sweep(store.as_ref(), &key, &args.passphrase()).await
    })?;
    Ok(format!(
        "Swept: {n} values sealed under {} re-wrapped under {}.",
        masterkey::sibling(&key, ".old").display(),
        key.display()
    ))
}

fn rotate_master_key_online(args: &RotateArgs) -> anyhow::Result<String> {
    let key = args.keys.key_file();
    let outcome = block_on(async {
        let store = open_store_to_rekey(&args.keys).await?;
        masterkey::rotate_online(
            store.as_ref(),
            &key,
            &args.keys.passphrase(),
            masterkey::Online {
                wait: std::time::Duration::from_secs(args.wait_seconds),
                force: args.force,
            },
        )
        .await
    })?;
    let mut message = format!(
        "Rotated the master key online: {} sealed values re-wrapped, {} more swept after the \
         nodes switched; {} is the new key (fingerprint {}{}), the old one is {}.",
        outcome.rekeyed,
        outcome.swept,
        key.display(),
        outcome.fingerprint,
        if outcome.sealed { ", sealed" } else { "" },
        masterkey::sibling(&key, ".old").display()
    );
    if outcome.late.is_empty() {
        message.push_str(
            " Every node seals with the new key. On each other node, replace the key file with \
             the staged one (mv KEYFILE.new KEYFILE); remove the old key once the new one is \
             backed up.",
        );
    } else {
        message.push_str(&format!(
            " These nodes did not report sealing with the new key within {} s: {}. Check them \
             (each switches within a second of seeing the new key check, and logs it), then \
             run `rotary master-key sweep` to re-wrap what they sealed under the old key.",
            args.wait_seconds,
            outcome.late.join(", ")
        ));
    }
    Ok(message)
}

/// The store `master-key rotate` re-keys: `--store`, or the data directory's SQLite file.
async fn open_store_to_rekey(args: &KeyFileArgs) -> anyhow::Result<Box<dyn rotary_store::Store>> {
    use anyhow::Context as _;
    let path = match args.store.as_deref().map(config::store_url).transpose()? {
        Some(config::StoreUrl::Postgres(url)) => {
            let store = rotary_store::PostgresStore::open(&url, Default::default())
                .await
                // The URL may carry a password: never print it.
                .context("opening the PostgreSQL store (--store)")?;
            return Ok(Box::new(store));
        }
        Some(config::StoreUrl::Sqlite(path)) => path,
        None => args.data_dir.join("rotary.db"),
    };
    if !path.exists() {
        anyhow::bail!(keycheck::ConfigError(format!(
            "no store at {}: nothing to re-key",
            path.display()
        )));
    }
    let store = rotary_store::SqliteStore::open(&path)
        .await
        .with_context(|| format!("opening store {}", path.display()))?;
    Ok(Box::new(store))
}

/// The passphrase for a sealed key file, or a configuration error saying how to give one.
fn required_passphrase(
    source: &passphrase::Passphrase,
    confirm: bool,
) -> anyhow::Result<zeroize::Zeroizing<Vec<u8>>> {
    source.get(confirm)?.ok_or_else(|| {
        keycheck::ConfigError(format!(
            "no passphrase given: use --master-key-passphrase-file (or \
             ROTARY_MASTER_KEY_PASSPHRASE_FILE), or {}, or run at a terminal to be asked",
            passphrase::PASSPHRASE_ENV
        ))
        .into()
    })
}

fn seal_master_key(args: &KeyFileArgs) -> anyhow::Result<String> {
    use passphrase::{KdfParams, KeyFile, SealedKey};
    let path = args.key_file();
    let key = match passphrase::read_key_file(&path)? {
        KeyFile::Plain(key) => key,
        KeyFile::Sealed(_) => {
            return Err(keycheck::ConfigError(format!(
                "{} is already sealed; to change the passphrase, run `rotary master-key unseal` \
                 then `seal` again",
                path.display()
            ))
            .into())
        }
    };
    let pass = required_passphrase(&args.passphrase(), true)?;
    passphrase::check_new_passphrase(&pass)?;
    let contents = SealedKey::seal(&key, &pass, KdfParams::DEFAULT)?;
    // Open what is about to replace the only copy of the key before replacing it.
    let reopened = match passphrase::read_key_file_bytes(&contents)? {
        KeyFile::Sealed(sealed) => sealed.open(&pass)?,
        KeyFile::Plain(_) => None,
    };
    if !reopened.is_some_and(|k| k.same_as(&key)) {
        anyhow::bail!(
            "the sealed key did not open again; {} is unchanged",
            path.display()
        );
    }
    passphrase::replace_file(&path, &contents)?;
    let mut message = format!(
        "Sealed the master key in {} (Argon2id, {} MiB, {} passes). The server now needs the \
         passphrase to start: --master-key-passphrase-file, {} or a terminal prompt.",
        path.display(),
        KdfParams::DEFAULT.memory_kib / 1024,
        KdfParams::DEFAULT.iterations,
        passphrase::PASSPHRASE_ENV
    );
    let old = masterkey::sibling(&path, ".old");
    if matches!(passphrase::read_key_file(&old), Ok(KeyFile::Plain(_))) {
        message.push_str(&format!(
            "\nNote: {} (from an earlier rotation) is still a plain key; remove it if it is \
             not needed to open older backups.",
            old.display()
        ));
    }
    Ok(message)
}

fn unseal_master_key(args: &KeyFileArgs) -> anyhow::Result<String> {
    let path = args.key_file();
    let sealed = sealed_key_file(&path)?;
    let pass = required_passphrase(&args.passphrase(), false)?;
    let key = sealed
        .open(&pass)?
        .ok_or_else(|| passphrase::wrong_passphrase(&path))?;
    passphrase::replace_with_plain_key(&path, &key)?;
    Ok(format!(
        "Unsealed the master key in {}: it is a plain key file again (mode 0600), and the \
         server starts without a passphrase.",
        path.display()
    ))
}

fn unseal_test_master_key(args: &KeyFileArgs) -> anyhow::Result<String> {
    let path = args.key_file();
    let sealed = sealed_key_file(&path)?;
    let pass = required_passphrase(&args.passphrase(), false)?;
    sealed
        .open(&pass)?
        .ok_or_else(|| passphrase::wrong_passphrase(&path))?;
    Ok(format!(
        "The passphrase opens the sealed master key in {}.",
        path.display()
    ))
}

/// The sealed key in `path`, or a configuration error when it is a plain key file.
fn sealed_key_file(path: &std::path::Path) -> anyhow::Result<passphrase::SealedKey> {
    match passphrase::read_key_file(path)? {
        passphrase::KeyFile::Sealed(sealed) => Ok(sealed),
        passphrase::KeyFile::Plain(_) => Err(keycheck::ConfigError(format!(
            "{} is not sealed: it is a plain key file (seal it with `rotary master-key seal`)",
            path.display()
        ))
        .into()),
    }
}

/// `rotary … | head` closes standard output early: end quietly, as tools killed by SIGPIPE
/// do, instead of panicking in `println!` (Rust ignores SIGPIPE, and resetting it would need
/// unsafe code).
fn quiet_on_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.contains("failed printing to stdout") && msg.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

/// Whether an error is a write to a closed pipe.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn main() -> ExitCode {
    quiet_on_closed_pipe();
    let cli = Cli::parse();
    match cli.command {
        Command::Client(cmd) => {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("rotary: starting the async runtime: {e}");
                    return ExitCode::from(1);
                }
            };
            match runtime.block_on(cli::run(cli.client, cmd)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) if is_broken_pipe(&e) => ExitCode::from(141),
                Err(e) => {
                    eprintln!("rotary: {e:#}");
                    ExitCode::from(if cli::is_api_error(&e) { 1 } else { 2 })
                }
            }
        }
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "rotary", &mut script);
            match std::io::Write::write_all(&mut std::io::stdout(), &script) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::from(141),
                Err(e) => {
                    eprintln!("rotary: writing the completion script: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Audit(cmd) => cli::audit::run(&cli.client, cmd),
        Command::MasterKey(cmd) => master_key(cmd),
        Command::Backup(args) => backup::backup(args),
        Command::Restore(args) => backup::restore(args),
        Command::Serve(args) => {
            let config = match config::Config::resolve(*args) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("rotary: {e:#}");
                    return ExitCode::from(2);
                }
            };
            serve::init_tracing(&config);
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("rotary: starting the async runtime: {e}");
                    return ExitCode::from(1);
                }
            };
            match runtime.block_on(serve::run(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    // Once: the log goes to standard error too.
                    tracing::error!("{e:#}");
                    // A missing or wrong master key is the operator's to fix, like a bad flag.
                    if e.downcast_ref::<keycheck::ConfigError>().is_some() {
                        ExitCode::from(2)
                    } else {
                        ExitCode::from(1)
                    }
                }
            }
        }
    }
}
