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
mod serve;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

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
    /// KEYFILE.old and no longer opens the data.
    Rotate {
        /// The data directory [default: ./rotary-data].
        #[arg(long, env = "ROTARY_DATA_DIR", default_value = "rotary-data")]
        data_dir: std::path::PathBuf,
        /// The key file [default: DATA_DIR/master.key].
        #[arg(long, env = "ROTARY_MASTER_KEY_FILE")]
        master_key_file: Option<std::path::PathBuf>,
    },
}

fn master_key(cmd: MasterKeyCommand) -> ExitCode {
    let MasterKeyCommand::Rotate {
        data_dir,
        master_key_file,
    } = cmd;
    let key = master_key_file.unwrap_or_else(|| data_dir.join("master.key"));
    let store = data_dir.join("rotary.db");
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
    match runtime.block_on(masterkey::rotate(&store, &key)) {
        Ok(n) => {
            println!(
                "Rotated the master key: {n} sealed values re-wrapped; {} is the new key, the old one is {} (it no longer opens the data: remove it once the new key is backed up).",
                key.display(),
                masterkey::sibling(&key, ".old").display()
            );
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
