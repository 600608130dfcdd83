//! The `strongroom` command: parses the command line and hands over to the library.

mod admin_call;
mod hsm_cli;
mod stack_cli;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use strongroom_server::{Config, ConfigFile, DEFAULT_LISTEN, Overrides};
use strongroom_service::SystemClock;
use tracing_subscriber::EnvFilter;

/// mimalloc instead of the system allocator: a request allocates and frees dozens of small buffers
/// (headers, JSON, base64), and glibc's malloc was about a tenth of the server's CPU time under load
/// (docs/PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Measure a running server: requests per second and latency for a no-op endpoint, Encrypt (512 bytes),
    /// Decrypt and GenerateDataKey, over signed keep-alive connections. Prints a Markdown table.
    Bench(BenchArgs),
    /// Work with the audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Manage accounts.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Administer the HSMs of CloudHSM clusters, like the CloudHSM CLI: activate a cluster, manage its
    /// crypto user, bring in HSMs added after the crypto user. Talks to the running server.
    #[command(subcommand)]
    Hsm(hsm_cli::HsmCommand),
    /// Provision from stack files: an HSM cluster, its key store and its keys, brought up step by step by
    /// the server (docs/STACKS.md). Talks to the running server.
    #[command(subcommand)]
    Stack(stack_cli::StackCommand),
}

#[derive(Debug, Subcommand)]
enum AccountCommand {
    /// Create an account and print its root access key in the AWS shared credentials file format. The
    /// secret is shown only this once. A server running on the same data directory accepts the key after
    /// its next scheduler run (a minute by default).
    Create(AccountCreateArgs),
}

#[derive(Debug, clap::Args)]
struct AccountCreateArgs {
    /// The server's data directory (default ./strongroom-data).
    #[arg(long, value_name = "DIR", default_value = "strongroom-data")]
    data_dir: PathBuf,
    /// The new account's id: 12 digits.
    account_id: String,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Validate delivered CloudTrail log and digest files for a time range, like
    /// `aws cloudtrail validate-logs`: reports valid, modified, deleted and missing files, and exits with a
    /// failure status if any is not valid.
    Verify(VerifyArgs),
}

#[derive(Debug, clap::Args)]
struct VerifyArgs {
    /// The server's data directory.
    #[arg(long, value_name = "DIR", default_value = "strongroom-data")]
    data_dir: PathBuf,
    /// The audit trail's directory, when the server was given one (default DATA_DIR/audit).
    #[arg(long, value_name = "DIR")]
    audit_dir: Option<PathBuf>,
    /// The account whose trail to check.
    #[arg(long, default_value = "111122223333")]
    account_id: String,
    /// The Region whose trail to check.
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Start of the range, RFC 3339 (for example 2026-11-22T00:00:00Z).
    #[arg(long)]
    start_time: String,
    /// End of the range, RFC 3339; now by default.
    #[arg(long)]
    end_time: Option<String>,
    /// The DER public key that verifies digests; by default the one the server published in the audit
    /// trail's directory.
    #[arg(long, value_name = "FILE")]
    public_key: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct BenchArgs {
    #[command(flatten)]
    server: admin_call::Server,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Seconds each phase runs.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// A symmetric key to use; by default the benchmark creates one.
    #[arg(long)]
    key_id: Option<String>,
    /// Also measure Sign (ECC_NIST_P256, RSA_2048), Verify and GenerateMac, and compare each with the
    /// in-process cost of the same cryptography.
    #[arg(long)]
    asymmetric: bool,
    /// Threads the benchmark client runs on (default: one per CPU). The client shares the machine
    /// with the server when both run on it; fewer client threads leave the server more room but can
    /// make the client itself the limit of the fastest phases.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    client_threads: Option<u16>,
    /// Measure without a server or a network instead: start a development server inside this
    /// command, on a temporary data directory and without an audit trail, and time Encrypt, Decrypt
    /// and GenerateDataKey requests handed straight to it one at a time (no sockets, no HTTP parsing).
    #[arg(long, conflicts_with_all = ["connections", "key_id", "asymmetric", "client_threads"])]
    in_process: bool,
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
    /// Directory for the audit trail: its journal, query index, log files and digests (default
    /// DATA_DIR/audit). Every request waits for this disk's flush; a disk of its own keeps it fast.
    #[arg(long, value_name = "DIR")]
    audit_dir: Option<PathBuf>,
    /// Record nothing in the audit trail. Exists only to measure what auditing costs; never use it for real
    /// keys.
    #[arg(long)]
    dangerous_disable_audit: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("STRONGROOM_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Serve(args) => runtime(None)?.block_on(serve(args)),
        // The benchmark client's threads compete with the server's when both share a machine.
        Command::Bench(args) => runtime(args.client_threads)?.block_on(bench(args)),
        Command::Audit(AuditCommand::Verify(args)) => verify_audit(args),
        Command::Account(AccountCommand::Create(args)) => {
            runtime(None)?.block_on(create_account(args))
        }
        Command::Hsm(command) => runtime(None)?.block_on(hsm_cli::run(command)),
        Command::Stack(command) => runtime(None)?.block_on(stack_cli::run(command)),
    }
}

/// The async runtime a command runs on: `threads` worker threads, or one per CPU.
fn runtime(threads: Option<u16>) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = threads {
        builder.worker_threads(usize::from(threads));
    }
    builder
        .enable_all()
        .build()
        .context("start the async runtime")
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
        dangerous_disable_audit: args.dangerous_disable_audit,
        audit_dir: args.audit_dir,
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
    let server = strongroom_server::Server::start(listener, config, Arc::new(SystemClock)).await?;
    // Printed once start-up is complete, so scripts using port 0 can find the address and use it at once.
    eprintln!("strongroom listening on http://{}", server.local_addr()?);
    server.serve(shutdown_signal()).await
}

async fn create_account(args: AccountCreateArgs) -> anyhow::Result<()> {
    let account = args
        .account_id
        .parse()
        .map_err(|e: strongroom_types::InvalidId| anyhow::anyhow!("{e}"))?;
    let (access_key_id, secret) =
        strongroom_server::create_account(&args.data_dir, &account).await?;
    let profile = zeroize::Zeroizing::new(format!(
        "[{account}]\naws_access_key_id = {access_key_id}\naws_secret_access_key = {}\n",
        secret.as_str()
    ));
    let mut out = std::io::stdout().lock();
    std::io::Write::write_all(&mut out, profile.as_bytes())?;
    Ok(())
}

async fn bench(args: BenchArgs) -> anyhow::Result<()> {
    if args.in_process {
        let rows =
            strongroom_server::edge_bench::run(std::time::Duration::from_secs(args.duration))
                .await?;
        let text = strongroom_server::edge_bench::to_markdown(&rows);
        let mut out = std::io::stdout().lock();
        std::io::Write::write_all(&mut out, text.as_bytes())?;
        return Ok(());
    }
    let options = strongroom_bench::BenchOptions {
        endpoint: args.server.endpoint,
        connections: args.connections,
        duration: std::time::Duration::from_secs(args.duration),
        region: args.server.region,
        access_key_id: args.server.access_key_id,
        secret_access_key: args.server.secret_access_key,
        key_id: args.key_id,
        asymmetric: args.asymmetric,
    };
    let report = strongroom_bench::run(&options).await?;
    let threads = tokio::runtime::Handle::current().metrics().num_workers();
    let mut text = format!(
        "Client: {threads} thread(s), {} connection(s), {} s per phase.\n\n",
        options.connections,
        options.duration.as_secs()
    );
    text.push_str(&report.to_markdown());
    if args.asymmetric {
        let raw = tokio::task::spawn_blocking(move || {
            strongroom_bench::measure_in_process(options.duration)
        })
        .await??;
        text.push('\n');
        text.push_str(&report.compare_in_process(&raw));
    }
    let mut out = std::io::stdout().lock();
    std::io::Write::write_all(&mut out, text.as_bytes())?;
    Ok(())
}

fn verify_audit(args: VerifyArgs) -> anyhow::Result<()> {
    use time::format_description::well_known::Rfc3339;
    let parse = |text: &str| {
        time::OffsetDateTime::parse(text, &Rfc3339).with_context(|| {
            format!("'{text}' is not an RFC 3339 time such as 2026-11-22T00:00:00Z")
        })
    };
    let start = parse(&args.start_time)?;
    let end = match &args.end_time {
        Some(text) => parse(text)?,
        None => time::OffsetDateTime::now_utc(),
    };
    let audit_dir = strongroom_server::audit_location(&args.data_dir, args.audit_dir.as_deref());
    let key_path = args
        .public_key
        .unwrap_or_else(|| audit_dir.join(strongroom_server::AUDIT_PUBLIC_KEY_FILE));
    let key = std::fs::read(&key_path)
        .with_context(|| format!("read the public key {}", key_path.display()))?;
    let report = strongroom_audit::verify(
        &audit_dir,
        &args.account_id,
        &args.region,
        start,
        end,
        &[key],
    );
    let mut out = std::io::stdout().lock();
    std::io::Write::write_all(&mut out, format!("{report}\n").as_bytes())?;
    if !report.is_ok() {
        anyhow::bail!("the audit trail did not validate");
    }
    Ok(())
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
