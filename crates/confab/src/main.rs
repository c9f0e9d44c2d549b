//! The `confab` binary: a thin layer of flags over the `confab-server` library.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use confab_server::{App, Config};
use tracing_subscriber::EnvFilter;

/// mimalloc rather than glibc's malloc: a session frees its buffers whenever it goes idle, and
/// glibc spent ~14% of fan-out CPU allocating and consolidating them (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "confab",
    version,
    about = "A chat server that starts on a laptop and grows into a fleet."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a chat node (embedded SQLite, in-process bus and cache unless configured otherwise).
    #[command(after_long_help = long_help())]
    Serve(ServeArgs),
    /// Create or upgrade the store's tables (also done by `serve` at start-up), then exit.
    Migrate(ServeArgs),
    /// Measure a server under load: fanout, hot-room, idle, connect, storm, append, compare.
    Bench(Box<confab_bench::BenchArgs>),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080] (env CONFAB_LISTEN).
    #[arg(long)]
    listen: Option<String>,
    /// Directory for the embedded SQLite store [default: ./confab-data] (env CONFAB_DATA_DIR).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// TOML configuration file; every key is listed below.
    #[arg(long, value_name = "FILE", env = "CONFAB_CONFIG")]
    config: Option<PathBuf>,
}

fn long_help() -> String {
    format!(
        "Configuration: defaults < --config FILE < CONFAB_<KEY> environment variables < flags.\n\
         Every key, with its default (this is confab.example.toml):\n\n{}",
        confab_server::config::EXAMPLE
    )
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Migrate(args) => migrate(args),
        Command::Bench(args) => confab_bench::main(*args),
    }
}

/// The configuration from defaults, the file, the environment and the flags, with logging set up.
fn configure(args: ServeArgs) -> anyhow::Result<Config> {
    let env = std::env::vars().filter(|(k, _)| k != "CONFAB_CONFIG");
    let mut config = Config::load(args.config.as_deref(), env)?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    let filter = EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new(&config.log))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal())
        .init();
    if !config.ignored_env.is_empty() {
        let names = config.ignored_env.join(", ");
        tracing::warn!(%names, "ignoring CONFAB_* environment variables that name no configuration key");
    }
    Ok(config)
}

fn migrate(args: ServeArgs) -> anyhow::Result<()> {
    let config = configure(args)?;
    if config.store.is_empty() {
        std::fs::create_dir_all(&config.data_dir)?;
    }
    let url = config.store_url();
    tokio::runtime::Runtime::new()?
        .block_on(confab_store::migrate(&url, &config.store_options()))?;
    tracing::info!("store tables are up to date");
    Ok(())
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = configure(args)?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let app = App::build(config).await?;
        app.run_until_stopped(shutdown_signal()).await
    })
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
