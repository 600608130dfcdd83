//! The `strongroom` command: parses the command line and hands over to the library.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use strongroom_server::{Config, ConfigFile, DEFAULT_LISTEN, Overrides};
use strongroom_service::SystemClock;
use tracing_subscriber::EnvFilter;

/// Strongroom: a key management service that speaks the AWS KMS API.
#[derive(Debug, Parser)]
#[command(name = "strongroom", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server. Point AWS clients at it with `--endpoint-url http://ADDRESS`.
    Serve(ServeArgs),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Address and port to listen on (default 127.0.0.1:9444, reachable from this machine only).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Directory for the database, the root key and the administrator credentials (default ./strongroom-data).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The default account id (12 digits; default 111122223333).
    #[arg(long, value_name = "ID")]
    account_id: Option<String>,
    /// Development mode: access key `test` with secret `test` is the root of the default account, and any
    /// 12-digit access key is the root of that account. Never use it for real keys.
    #[arg(long)]
    dev: bool,
    /// A TOML configuration file; command-line options override its values.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// A seed file of keys, aliases and tags to create at start (existing ones are left unchanged).
    #[arg(long, value_name = "FILE")]
    seed: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("STRONGROOM_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Runtime::new().context("start the async runtime")?;
    match cli.command {
        Command::Serve(args) => runtime.block_on(serve(args)),
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let file = match &args.config {
        Some(path) => ConfigFile::load(path)?,
        None => ConfigFile::default(),
    };
    let overrides = Overrides {
        listen: args.listen,
        data_dir: args.data_dir,
        account_id: args.account_id,
        dev: args.dev,
        seed_file: args.seed,
    };
    let config = Config::build(file, overrides)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| {
            format!(
                "listen on {} (choose another address with --listen, default {DEFAULT_LISTEN})",
                config.listen
            )
        })?;
    let address = listener.local_addr()?;
    // The first line on standard error names the bound address, so scripts using port 0 can find it.
    eprintln!("strongroom listening on http://{address}");
    strongroom_server::run(listener, config, Arc::new(SystemClock), shutdown_signal()).await
}

/// Completes on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down: finishing requests in flight");
}
