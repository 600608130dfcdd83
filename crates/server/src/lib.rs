//! The `strongroom` server: configuration, start-up, and the serving loop.
//!
//! `main.rs` only parses the command line; everything else is here so tests can run a real server
//! in-process with [`run`].

mod config;
mod credentials;
pub mod edge_bench;
mod hsm_clusters;
mod seed;
mod service_events;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use strongroom_iam::Identities;
use strongroom_keystore::{FileRootKey, RootKey};
use strongroom_protocol::Regions;
use strongroom_service::{Clock, Kms};
use strongroom_storage::sqlite::SqliteStore;
use strongroom_types::AccountId;
use zeroize::Zeroizing;

pub use crate::config::{
    Config, ConfigFile, DEFAULT_LISTEN, DEFAULT_ROOT_KEY_LABEL, Overrides, Pkcs11RootKey,
    ReplicatedRootKey, RootKeyConfig, ServicePrincipal,
};
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

/// The audit trail's directory: `audit_dir` when one was given (`--audit-dir`, `audit_dir` in the
/// configuration file), else [`AUDIT_DIR`] in the data directory. The server and `audit verify`
/// both find the trail through this.
pub fn audit_location(data_dir: &Path, audit_dir: Option<&Path>) -> PathBuf {
    match audit_dir {
        Some(dir) => dir.to_path_buf(),
        None => data_dir.join(AUDIT_DIR),
    }
}

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

/// Creates an account's root access key in the data directory, for `strongroom account create`; returns
/// the access key id and the secret, which are shown once.
///
/// A running server on the same data directory picks the account up at its next scheduler run.
pub async fn create_account(
    data_dir: &std::path::Path,
    account: &AccountId,
) -> anyhow::Result<(String, Zeroizing<String>)> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("create the data directory {}", data_dir.display()))?;
    if data_dir.join(hsm_clusters::PKCS11_ROOT_KEY_MARKER).exists() {
        anyhow::bail!(
            "the root key of {} is in a PKCS#11 token: create the account's keys through the running server's \
             IAM API instead",
            data_dir.display()
        );
    }
    let root_key: Arc<dyn RootKey> =
        Arc::new(FileRootKey::open_or_create(&data_dir.join(ROOT_KEY_FILE))?);
    let store = Arc::new(SqliteStore::open(&data_dir.join(DATABASE_FILE))?);
    let identities =
        load_identities(&store, &root_key, Arc::new(strongroom_service::SystemClock)).await?;
    let key = identities
        .create_account(account)
        .await
        .with_context(|| format!("create account {account}"))?;
    Ok((key.info.access_key_id, key.secret))
}

async fn load_identities(
    store: &Arc<SqliteStore>,
    root_key: &Arc<dyn RootKey>,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<Identities> {
    let now: strongroom_iam::Clock = Arc::new(move || clock.now());
    Identities::load(store.clone(), root_key.clone(), now)
        .await
        .context("load IAM identities")
}

/// The CloudHSM control plane over the HSMs `config` declares, keeping its records in `store` and
/// sealing what its backups hold with `root_key`.
///
/// The server serves it as the CloudHSM v2 API and as Strongroom's HSM administration operations,
/// which `strongroom hsm` calls.
pub fn cloudhsm_control_plane(
    config: &Config,
    store: Arc<SqliteStore>,
    clock: Arc<dyn Clock>,
    root_key: Arc<dyn RootKey>,
) -> anyhow::Result<Arc<strongroom_cloudhsm::ControlPlane>> {
    let now: strongroom_cloudhsm::Clock = Arc::new(move || clock.now());
    let plane = strongroom_cloudhsm::ControlPlane::new(
        store,
        config.hsms.clone(),
        config.hsm_modules.clone(),
        now,
        root_key,
    )
    .context("check the [[hsm]] declarations")?;
    Ok(Arc::new(plane))
}

/// TEST ONLY: the pause before every stack step, from `STRONGROOM_TEST_ONLY_STACK_STEP_DELAY_MS`, so that
/// the server's tests can kill it between two steps deterministically; zero (no pause) when unset.
fn test_only_stack_step_delay() -> std::time::Duration {
    let millis = std::env::var("STRONGROOM_TEST_ONLY_STACK_STEP_DELAY_MS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(0);
    std::time::Duration::from_millis(millis)
}

/// A server that has finished starting (data directory, root key, database, credentials, seed file) and is
/// ready to serve; the binary announces its address only then.
pub struct Server {
    listener: tokio::net::TcpListener,
    config: Config,
    kms: Arc<Kms>,
    identities: Arc<Identities>,
    secrets: Arc<strongroom_secrets::SecretsManager>,
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
        let root_key = hsm_clusters::open_root_key(&config).await?;
        let store = Arc::new(SqliteStore::open(&config.data_dir.join(DATABASE_FILE))?);
        let identities = Arc::new(load_identities(&store, &root_key, clock.clone()).await?);
        let (credentials, created) = credentials::load(
            store.as_ref(),
            root_key.as_ref(),
            &config.data_dir,
            &config.account_id,
            config.dev,
            identities.clone(),
            &config.service_principals,
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
        let cloudhsm =
            cloudhsm_control_plane(&config, store.clone(), clock.clone(), root_key.clone())?;
        let audit_dir = config.audit_location();
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
        let secret_store: Arc<dyn strongroom_storage::secrets::SecretStore> = store.clone();
        let stack_store: Arc<dyn strongroom_storage::stacks::StackStore> = store.clone();
        let events = Arc::new(service_events::AuditedServiceEvents::new(
            audit.clone(),
            config.dangerous_disable_audit,
        ));
        let kms = Arc::new(
            Kms::new(store.clone(), root_key, clock.clone())
                .with_identities(identities.clone())
                .with_service_events(events.clone())
                .with_custom_key_stores(
                    store,
                    Arc::new(hsm_clusters::ControlPlaneClusters(cloudhsm.clone(), events)),
                )
                .with_regions(config.regions.clone())
                .with_on_behalf_calls(Arc::new(strongroom_protocol::OnBehalfTrail::new(
                    (!config.dangerous_disable_audit).then(|| audit.clone()),
                ))),
        );
        kms.start_key_usage_tracking()
            .await
            .context("load the key usage tracking start date")?;
        let secrets = Arc::new(
            strongroom_secrets::SecretsManager::new(kms.clone(), secret_store)
                .with_identities(identities.clone()),
        );
        let stacks = Arc::new(strongroom_stacks::Stacks::new(
            kms.clone(),
            cloudhsm.clone(),
            secrets.clone(),
            stack_store,
            clock.clone(),
            strongroom_stacks::StacksOptions {
                test_only_step_delay: test_only_stack_step_delay(),
            },
        ));
        let resumed = stacks
            .resume()
            .await
            .context("resume the stacks in progress")?;
        if resumed > 0 {
            tracing::info!("resumed {resumed} stacks whose steps were in progress");
        }
        if let Some(seed_file) = &config.seed_file {
            let created = seed::load(&kms, seed_file, &config.account_id).await?;
            tracing::info!("seed file {}: {created} keys created", seed_file.display());
        }
        let regions = match &config.regions {
            Some(regions) => Regions::Only(regions.clone()),
            None => Regions::Any,
        };
        let trail = strongroom_protocol::Trail {
            log: audit.clone(),
            default_account: config.account_id.to_string(),
        };
        let app = strongroom_protocol::router(
            kms.clone(),
            Arc::new(credentials),
            regions,
            config.network.clone(),
            (!config.dangerous_disable_audit).then_some(trail),
            Some(identities.clone()),
            Some(cloudhsm),
            Some(secrets.clone()),
            Some(stacks),
        );
        if config.dangerous_disable_audit {
            tracing::warn!(
                "the audit trail is DISABLED (--dangerous-disable-audit): requests are not recorded"
            );
        }
        Ok(Server {
            listener,
            config,
            kms,
            identities,
            secrets,
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
            identities,
            secrets,
            app,
            audit,
        } = self;
        // Custom key stores connected (or connecting) before the restart connect again in the
        // background; this only starts the attempts.
        match kms.resume_custom_key_store_connections().await {
            Ok(0) => {}
            Ok(n) => tracing::info!("custom key stores to connect again after the restart: {n}"),
            Err(e) => tracing::error!("failed to resume the custom key stores' connections: {e:#}"),
        }
        let (stop_scheduler, mut scheduler_stopped) = tokio::sync::watch::channel(false);
        let scheduler = {
            let interval = config.scheduler_interval;
            let kms = kms.clone();
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
                    match secrets.delete_due_secrets().await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(
                            "deleted {n} secrets at the end of their recovery window"
                        ),
                        Err(e) => {
                            tracing::error!("failed to delete secrets due for deletion: {e:#}")
                        }
                    }
                    // Picks up accounts made by `strongroom account create` while the server runs.
                    if let Err(e) = identities.reload().await {
                        tracing::error!("failed to reload IAM identities: {e:#}");
                    }
                }
            })
        };
        tracing::info!(
            "Strongroom is serving the KMS API on http://{}",
            listener.local_addr()?
        );
        let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
        axum::serve(without_nagle(listener), app)
            .with_graceful_shutdown(shutdown)
            .await
            .context("serve HTTP")?;
        let _ = stop_scheduler.send(true);
        let _ = scheduler.await;
        // Key usage is kept in memory between scheduler runs; write what is left.
        if let Err(e) = kms.persist_key_usage().await {
            tracing::error!("failed to write key usage at shutdown: {e:#}");
        }
        // Deliver what the journal holds, so the log files and digests cover every request served.
        if let Err(e) = audit.flush_now().await {
            tracing::error!("failed to deliver the audit trail at shutdown: {e:#}");
        }
        tracing::info!("Strongroom stopped");
        Ok(())
    }
}

/// Turns off Nagle's algorithm on every accepted connection.
///
/// Each response is written in one go, but a response longer than one TCP segment (a page of
/// ListKeys, say) would otherwise keep its last, partial segment back until the client acknowledged
/// the others, and clients that delay their acknowledgements would see every such response arrive
/// up to 200 ms late.
fn without_nagle(
    listener: tokio::net::TcpListener,
) -> axum::serve::TapIo<tokio::net::TcpListener, fn(&mut tokio::net::TcpStream)> {
    use axum::serve::ListenerExt;
    fn set_nodelay(connection: &mut tokio::net::TcpStream) {
        if let Err(e) = connection.set_nodelay(true) {
            tracing::debug!("could not turn off Nagle's algorithm on a connection: {e}");
        }
    }
    listener.tap_io(set_nodelay as fn(&mut tokio::net::TcpStream))
}

#[cfg(test)]
mod tests {
    use axum::serve::Listener;

    #[tokio::test]
    async fn accepted_connections_send_without_delay() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let mut listener = super::without_nagle(listener);
        let client = tokio::net::TcpStream::connect(address).await.unwrap();
        assert!(
            !client.nodelay().unwrap(),
            "a new socket starts with Nagle on"
        );
        let (accepted, peer) = listener.accept().await;
        assert_eq!(peer, client.local_addr().unwrap());
        assert!(accepted.nodelay().unwrap());
    }
}
