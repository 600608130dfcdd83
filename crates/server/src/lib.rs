//! The `strongroom` server: configuration, start-up, and the serving loop.
//!
//! `main.rs` only parses the command line; everything else is here so tests can run a real server
//! in-process with [`run`].

mod config;
mod credentials;
mod seed;

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use strongroom_keystore::FileRootKey;
use strongroom_protocol::Regions;
use strongroom_service::{Clock, Kms};
use strongroom_storage::sqlite::SqliteStore;

pub use crate::config::{Config, ConfigFile, DEFAULT_LISTEN, Overrides};
pub use crate::credentials::{ADMIN_CREDENTIALS_FILE, DEV_ACCESS_KEY};

/// File name of the root key in the data directory.
pub const ROOT_KEY_FILE: &str = "root.key";
/// File name of the SQLite database in the data directory.
pub const DATABASE_FILE: &str = "strongroom.db";
/// Directory, in the data directory, of the audit trail: journal, index and delivered CloudTrail files.
pub const AUDIT_DIR: &str = "audit";
/// File name, in the data directory, of the RSA key that signs audit digests (mode 0600).
pub const AUDIT_SIGNING_KEY_FILE: &str = "audit-signing.key";
/// File name, in the audit directory, of the published DER public key that verifies digests.
pub const AUDIT_PUBLIC_KEY_FILE: &str = "digest-public-key.der";

/// Serves the KMS API on `listener` until `shutdown` completes, then finishes in-flight requests.
///
/// `clock` is the service's clock; the binary always passes `SystemClock`, tests may pass a `ManualClock`.
pub async fn run(
    listener: tokio::net::TcpListener,
    config: Config,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    Server::start(listener, config, clock)
        .await?
        .serve(shutdown)
        .await
}

/// A server that has finished starting (data directory, root key, database, credentials, seed file) and is
/// ready to serve; the binary announces its address only then.
pub struct Server {
    listener: tokio::net::TcpListener,
    config: Config,
    kms: Arc<Kms>,
    app: axum::Router,
    audit: strongroom_audit::AuditLog,
}

impl Server {
    /// Opens everything the server needs; fails with a message an operator can act on.
    pub async fn start(
        listener: tokio::net::TcpListener,
        config: Config,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Server> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("create the data directory {}", config.data_dir.display()))?;
        let root_key = Arc::new(FileRootKey::open_or_create(
            &config.data_dir.join(ROOT_KEY_FILE),
        )?);
        let store = Arc::new(SqliteStore::open(&config.data_dir.join(DATABASE_FILE))?);
        let (credentials, created) = credentials::load(
            store.as_ref(),
            root_key.as_ref(),
            &config.data_dir,
            &config.account_id,
            config.dev,
        )
        .await?;
        if let Some(path) = created {
            tracing::warn!(
                "created the administrator access key for account {}; it is in {} (mode 0600): keep it secret",
                config.account_id,
                path.display()
            );
        }
        if config.dev {
            tracing::warn!(
                "DEVELOPMENT MODE: access key 'test' with secret 'test' is the root of account {}, and any 12-digit \
                 access key is the root of that account. Do not use --dev for real keys.",
                config.account_id
            );
        }
        let kms = Arc::new(Kms::new(store, root_key, clock));
        if let Some(seed_file) = &config.seed_file {
            let created = seed::load(&kms, seed_file, &config.account_id).await?;
            tracing::info!("seed file {}: {created} keys created", seed_file.display());
        }
        let regions = match &config.regions {
            Some(regions) => Regions::Only(regions.clone()),
            None => Regions::Any,
        };
        let audit_dir = config.data_dir.join(AUDIT_DIR);
        let mut audit_config = strongroom_audit::AuditConfig::new(
            &audit_dir,
            config.data_dir.join(AUDIT_SIGNING_KEY_FILE),
        );
        audit_config.retention = config.audit_retention;
        let audit = strongroom_audit::AuditLog::open(audit_config)
            .await
            .with_context(|| format!("open the audit trail in {}", audit_dir.display()))?;
        // Publish the digest-signing public key, so anyone can verify delivered digests.
        std::fs::write(
            audit_dir.join(AUDIT_PUBLIC_KEY_FILE),
            audit.public_key_der(),
        )
        .with_context(|| format!("write the audit public key in {}", audit_dir.display()))?;
        let trail = strongroom_protocol::Trail {
            log: audit.clone(),
            default_account: config.account_id.to_string(),
        };
        let app =
            strongroom_protocol::router(kms.clone(), Arc::new(credentials), regions, Some(trail));
        Ok(Server {
            listener,
            config,
            kms,
            app,
            audit,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes, then finishes requests in flight and stops the scheduler.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Server {
            listener,
            config,
            kms,
            app,
            audit,
        } = self;
        let (stop_scheduler, mut scheduler_stopped) = tokio::sync::watch::channel(false);
        let scheduler = {
            let interval = config.scheduler_interval;
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(interval) => {}
                        _ = scheduler_stopped.changed() => return,
                    }
                    match kms.run_scheduled_work().await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!("scheduled work done on {n} keys"),
                        Err(e) => tracing::error!("failed to run scheduled key work: {e:#}"),
                    }
                }
            })
        };
        tracing::info!(
            "Strongroom is serving the KMS API on http://{}",
            listener.local_addr()?
        );
        let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
            .context("serve HTTP")?;
        let _ = stop_scheduler.send(true);
        let _ = scheduler.await;
        // Deliver what the journal holds, so the log files and digests cover every request served.
        if let Err(e) = audit.flush_now().await {
            tracing::error!("failed to deliver the audit trail at shutdown: {e:#}");
        }
        tracing::info!("Strongroom stopped");
        Ok(())
    }
}
