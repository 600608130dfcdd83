//! The CloudHSM control plane as the KMS service's [`HsmClusters`]: custom key stores describe
//! clusters through it and connect to them as `kmsuser` over PKCS#11. Each connection probes its HSMs
//! in the background and reports HSMs leaving and rejoining service to the audit trail.
//!
//! Also the default key store's root key, when the configuration puts it in PKCS#11 tokens.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use base64::Engine;
use strongroom_cloudhsm::{ClusterState, ControlPlane, HsmState};
use strongroom_keystore::{FileRootKey, RootKey};
use strongroom_keystore_pkcs11::{
    Cluster, ClusterOptions, Error as HsmErr, HealthMonitor, HsmEvents, HsmRootKey,
    HsmState as Pkcs11HsmState, KeyCheck, Pin, RootKeyExpectation, Sealed,
};
use strongroom_service::Error;
use strongroom_service::custom_key_stores::{
    ClusterHsm, ClusterInfo, ConnectedCluster, ConnectionError, HsmClusters, HsmError,
};
use strongroom_types::Namespace;
use zeroize::Zeroizing;

use crate::config::Config;
use crate::service_events::{AuditedServiceEvents, HsmStateChange};

/// The control plane, seen by the service, with the audit trail that hears of HSM state changes.
pub(crate) struct ControlPlaneClusters(
    pub(crate) Arc<ControlPlane>,
    pub(crate) Arc<AuditedServiceEvents>,
);

/// Reports the HSM state changes of one connected store's cluster to the audit trail, naming each HSM
/// as the CloudHSM API does.
struct HsmAudit {
    events: Arc<AuditedServiceEvents>,
    namespace: Namespace,
    cluster_id: String,
    custom_key_store_id: String,
    /// By declared HSM id: the API's HSM id and the availability zone.
    hsms: HashMap<String, (String, String)>,
}

impl HsmEvents for HsmAudit {
    fn hsm_state_changed(&self, hsm: &str, state: Pkcs11HsmState, error: Option<&str>) {
        let (hsm_id, zone) = self
            .hsms
            .get(hsm)
            .map(|(id, zone)| (id.as_str(), zone.as_str()))
            .unwrap_or((hsm, ""));
        self.events.hsm_state_changed(&HsmStateChange {
            namespace: &self.namespace,
            custom_key_store_id: &self.custom_key_store_id,
            cluster_id: &self.cluster_id,
            hsm_id,
            declared_hsm: hsm,
            availability_zone: zone,
            state: match state {
                Pkcs11HsmState::Active => "ACTIVE",
                Pkcs11HsmState::Degraded => "DEGRADED",
            },
            error,
        });
    }
}

#[async_trait]
impl HsmClusters for ControlPlaneClusters {
    async fn cluster(
        &self,
        namespace: &Namespace,
        cluster_id: &str,
    ) -> Result<Option<ClusterInfo>, Error> {
        let view = self
            .0
            .cluster(namespace, cluster_id)
            .await
            .map_err(Error::internal)?;
        Ok(view.map(|view| ClusterInfo {
            active: view.state == ClusterState::Active,
            hsms: view
                .hsms
                .into_iter()
                .map(|hsm| ClusterHsm {
                    availability_zone: hsm.availability_zone,
                    active: hsm.state == HsmState::Active,
                })
                .collect(),
            trust_anchor_pem: view.trust_anchor_pem,
            cluster_certificate_pem: view.cluster_certificate_pem,
            crypto_users: view.crypto_users,
        }))
    }

    async fn cluster_certificate(
        &self,
        namespace: &Namespace,
        cluster_id: &str,
    ) -> Result<Option<String>, Error> {
        self.0
            .cluster_certificate(namespace, cluster_id)
            .await
            .map_err(Error::internal)
    }

    async fn connect(
        &self,
        namespace: &Namespace,
        cluster_id: &str,
        custom_key_store_id: &str,
        trust_anchor_pem: &str,
        passwords: Vec<Zeroizing<String>>,
    ) -> Result<Arc<dyn ConnectedCluster>, ConnectionError> {
        let view = match self.0.cluster(namespace, cluster_id).await {
            Ok(Some(view)) => view,
            Ok(None) => return Err(ConnectionError::ClusterNotFound),
            Err(e) => {
                tracing::error!(cluster_id, "failed to describe the cluster: {e:#}");
                return Err(ConnectionError::InternalError);
            }
        };
        let audit = HsmAudit {
            events: self.1.clone(),
            namespace: namespace.clone(),
            cluster_id: cluster_id.to_owned(),
            custom_key_store_id: custom_key_store_id.to_owned(),
            hsms: view
                .hsms
                .iter()
                .map(|hsm| {
                    (
                        hsm.declared_hsm.clone(),
                        (hsm.hsm_id.clone(), hsm.availability_zone.clone()),
                    )
                })
                .collect(),
        };
        let options = ClusterOptions {
            probe_interval: PROBE_INTERVAL,
            events: Some(Arc::new(audit)),
            ..ClusterOptions::default()
        };
        let cluster = match self
            .0
            .open_pkcs11_cluster(namespace, cluster_id, options)
            .await
        {
            Ok(cluster) => cluster,
            Err(strongroom_cloudhsm::Error::ResourceNotFound(_)) => {
                return Err(ConnectionError::ClusterNotFound);
            }
            Err(e) => {
                tracing::error!(cluster_id, "failed to open the cluster: {e:#}");
                return Err(ConnectionError::InternalError);
            }
        };
        let pins: Vec<Pin> = passwords
            .iter()
            .map(|password| Pin::new(password.to_string()))
            .collect();
        let login = {
            let cluster = cluster.clone();
            tokio::task::spawn_blocking(move || cluster.login_crypto_user_with_any(&pins)).await
        };
        match login {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Err(match e {
                    HsmErr::InvalidCredentials { .. } => ConnectionError::InvalidCredentials,
                    HsmErr::UserLockedOut { .. } => ConnectionError::UserLockedOut,
                    HsmErr::UserNotFound { .. } => ConnectionError::UserNotFound,
                    HsmErr::UserLoggedIn { .. } => ConnectionError::UserLoggedIn,
                    HsmErr::NoActiveHsm => ConnectionError::InsufficientCloudHsmHsms,
                    other => {
                        tracing::error!(cluster_id, "failed to log kmsuser in: {other:#}");
                        ConnectionError::InternalError
                    }
                });
            }
            Err(e) => {
                tracing::error!(cluster_id, "failed to log kmsuser in: {e:#}");
                return Err(ConnectionError::InternalError);
            }
        }
        // Like a CloudHSM client, trust no HSM whose certificate does not chain to the trust anchor.
        let checked = {
            let (plane, cluster, anchor) =
                (self.0.clone(), cluster.clone(), trust_anchor_pem.to_owned());
            tokio::task::spawn_blocking(move || {
                plane.check_hsm_certificates(&cluster, &view, &anchor)
            })
            .await
        };
        let refusal = match checked {
            Ok(Ok(())) => {
                // Degraded HSMs come back, and are reported, even when no request needs them.
                let monitor = cluster.spawn_health_monitor(PROBE_INTERVAL);
                return Ok(Arc::new(Pkcs11Connected {
                    cluster,
                    _monitor: monitor,
                }));
            }
            Ok(Err(reason)) => {
                tracing::error!(
                    cluster_id,
                    custom_key_store_id,
                    "an HSM does not authenticate against the store's trust anchor: {reason}"
                );
                ConnectionError::NetworkErrors
            }
            Err(e) => {
                tracing::error!(cluster_id, "failed to check the HSMs' certificates: {e:#}");
                ConnectionError::InternalError
            }
        };
        let _ = tokio::task::spawn_blocking(move || cluster.logout_crypto_user()).await;
        Err(refusal)
    }

    async fn admit_waiting_hsms(
        &self,
        namespace: &Namespace,
        cluster_id: &str,
    ) -> Result<Vec<String>, Error> {
        match self
            .0
            .synchronize_hsms_through_connected_store(namespace, cluster_id)
            .await
        {
            Ok(joined) => Ok(joined.unwrap_or_default()),
            Err(e) => Err(Error::internal(e)),
        }
    }
}

/// How often a connected cluster's HSMs are probed, and the least time between two probes of a
/// degraded HSM made on behalf of requests: how soon HSMs that come back serve again.
const PROBE_INTERVAL: Duration = Duration::from_secs(2);

/// A PKCS#11 cluster with kmsuser logged in, and the monitor that probes its HSMs while it lives.
struct Pkcs11Connected {
    cluster: Arc<Cluster>,
    _monitor: HealthMonitor,
}

fn hsm_error(e: HsmErr) -> HsmError {
    HsmError(format!("{e:#}"))
}

/// TEST ONLY: how long a rotation of kmsuser's password pauses after each HSM that took the new
/// password, from `STRONGROOM_TEST_ONLY_KMSUSER_ROTATION_PAUSE_MS`, so that the server's tests can
/// kill it deterministically while some HSMs hold the new password and others the old one. Read only
/// when a rotation runs; no pause when unset.
fn test_only_rotation_pause() -> Option<Duration> {
    let millis: u64 = std::env::var("STRONGROOM_TEST_ONLY_KMSUSER_ROTATION_PAUSE_MS")
        .ok()?
        .parse()
        .ok()?;
    Some(Duration::from_millis(millis))
}

impl ConnectedCluster for Pkcs11Connected {
    fn move_password(&self, new: &str) -> Result<(), HsmError> {
        let pause = test_only_rotation_pause();
        self.cluster
            .move_crypto_user_password(&Pin::new(new.to_owned()), |hsm| {
                tracing::debug!(hsm, "kmsuser's new password is set on the HSM");
                if let Some(pause) = pause {
                    tracing::warn!(
                        hsm,
                        "TEST ONLY: pausing the kmsuser password rotation for {pause:?}"
                    );
                    std::thread::sleep(pause);
                }
            })
            .map_err(hsm_error)
    }

    fn logout(&self) {
        self.cluster.logout_crypto_user();
    }

    fn generate_key(&self, label: &str) -> Result<(), HsmError> {
        self.cluster
            .generate_key(label)
            .map(|_| ())
            .map_err(hsm_error)
    }

    fn random(&self, len: usize) -> Result<Vec<u8>, HsmError> {
        self.cluster.random(len).map_err(hsm_error)
    }

    fn delete_key(&self, label: &str) {
        for hsm in self.cluster.delete_key(label) {
            if let Err(e) = hsm.result {
                tracing::warn!(hsm = %hsm.hsm, "failed to delete backing key {label}: {e:#}");
            }
        }
    }

    fn encrypt(
        &self,
        label: &str,
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>), HsmError> {
        let sealed = self
            .cluster
            .encrypt(label, aad, plaintext)
            .map_err(hsm_error)?;
        Ok((sealed.iv.to_vec(), sealed.ciphertext))
    }

    fn decrypt(
        &self,
        label: &str,
        aad: &[u8],
        iv: &[u8],
        ciphertext: &[u8],
    ) -> Result<Option<Zeroizing<Vec<u8>>>, HsmError> {
        let Ok(iv) = <[u8; 12]>::try_from(iv) else {
            return Ok(None);
        };
        let sealed = Sealed {
            iv,
            ciphertext: ciphertext.to_vec(),
        };
        match self.cluster.decrypt(label, aad, &sealed) {
            Ok(plaintext) => Ok(Some(plaintext)),
            Err(HsmErr::InvalidCiphertext) => Ok(None),
            Err(e) => Err(hsm_error(e)),
        }
    }
}

/// File name, in the data directory, recording that the root key is in PKCS#11 tokens, which key it
/// is (its label, and a check that only that key opens), and the token it was first made in, so that
/// the data directory is never opened with another root key.
pub(crate) const PKCS11_ROOT_KEY_MARKER: &str = "root-key.pkcs11";

/// What `root-key.pkcs11` records: lines `name = value`. Data directories made before replicas
/// existed have no `check` line; it is added at their next start.
struct RootKeyRecord {
    text: String,
    token_label: Option<String>,
    key_label: Option<String>,
    check: Option<KeyCheck>,
}

impl RootKeyRecord {
    fn parse(text: String, path: &Path) -> anyhow::Result<RootKeyRecord> {
        let field = |name: &str| {
            text.lines().find_map(|line| {
                let (key, value) = line.split_once(" = ")?;
                (key == name).then(|| value.to_owned())
            })
        };
        let check = match field("check") {
            None => None,
            Some(encoded) => {
                let check = base64::engine::general_purpose::STANDARD
                    .decode(encoded.trim())
                    .ok()
                    .and_then(|bytes| KeyCheck::from_bytes(&bytes));
                match check {
                    Some(check) => Some(check),
                    None => anyhow::bail!(
                        "{} records an unreadable root key check: restore the file from a backup of this data \
                         directory",
                        path.display()
                    ),
                }
            }
        };
        Ok(RootKeyRecord {
            token_label: field("token_label"),
            key_label: field("key_label"),
            check,
            text,
        })
    }
}

fn check_line(check: &KeyCheck) -> String {
    format!(
        "check = {}\n",
        base64::engine::general_purpose::STANDARD.encode(check.to_bytes())
    )
}

/// Replaces `path` with `text` so that a crash leaves either the old or the new file.
fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let temporary = path.with_extension("pkcs11.new");
    std::fs::write(&temporary, text).with_context(|| format!("write {}", temporary.display()))?;
    std::fs::rename(&temporary, path).with_context(|| format!("write {}", path.display()))
}

/// The default key store's root key as `config` says: `root.key` in the data directory, or an AES key
/// inside PKCS#11 tokens, logged in as each token's user for the life of the server.
///
/// A data directory keeps the kind of root key it started with: everything at rest is wrapped by it,
/// and Strongroom does not re-wrap, so switching is refused with a message saying why. With several
/// tokens, a token without the key gets a copy, tokens that cannot be used are left out with a warning,
/// and tokens holding another key than the one recorded for the data directory are refused.
pub(crate) async fn open_root_key(config: &Config) -> anyhow::Result<Arc<dyn RootKey>> {
    let file = config.data_dir.join(crate::ROOT_KEY_FILE);
    let marker = config.data_dir.join(PKCS11_ROOT_KEY_MARKER);
    let Some(replicated) = config.root_key.pkcs11() else {
        if marker.exists() {
            anyhow::bail!(
                "the root key of data directory {} is in a PKCS#11 token ({}): configure that token in \
                 [root_key]; Strongroom cannot read this data directory without it",
                config.data_dir.display(),
                marker.display()
            );
        }
        return Ok(Arc::new(FileRootKey::open_or_create(&file)?));
    };
    let Some(first) = replicated.tokens.first().cloned() else {
        anyhow::bail!("[root_key] lists no token");
    };
    if file.exists() {
        anyhow::bail!(
            "data directory {} already keeps its keys under {}: a root key in a PKCS#11 token is for a new \
             data directory (Strongroom does not re-wrap existing keys)",
            config.data_dir.display(),
            file.display()
        );
    }
    let recorded = match std::fs::read_to_string(&marker) {
        Ok(text) => Some(RootKeyRecord::parse(text, &marker)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(e).with_context(|| format!("read {}", marker.display()));
        }
    };
    if let Some(recorded) = &recorded {
        // Without a recorded check, the token named in the record must be among those listed.
        let token_listed = replicated
            .tokens
            .iter()
            .any(|token| recorded.token_label.as_deref() == Some(token.token_label.as_str()));
        if recorded.key_label.as_deref() != Some(replicated.key_label.as_str())
            || (recorded.check.is_none() && !token_listed)
        {
            anyhow::bail!(
                "data directory {} keeps its keys under another PKCS#11 root key ({}): \n{}",
                config.data_dir.display(),
                marker.display(),
                recorded.text
            );
        }
    }

    let options = ClusterOptions {
        // The root key is never made through the cluster; a key on one token is enough to serve.
        key_availability_quorum: 1,
        probe_interval: PROBE_INTERVAL,
        ..ClusterOptions::default()
    };
    let modules = config.hsm_modules.clone();
    let recorded_check = recorded.as_ref().map(|it| it.check.clone());
    let (tokens, key_label) = (replicated.tokens.clone(), replicated.key_label.clone());
    let (root_key, report) = tokio::task::spawn_blocking(move || {
        let expected = match &recorded_check {
            None => RootKeyExpectation::New,
            Some(None) => RootKeyExpectation::Existing,
            Some(Some(check)) => RootKeyExpectation::Matching(check),
        };
        HsmRootKey::open_replicated(&tokens, &key_label, expected, &modules, options)
    })
    .await
    .context("open the root key's tokens")?
    .context("open the root key in its PKCS#11 tokens")?;

    match &recorded {
        None => {
            let text = format!(
                "module = {}\ntoken_label = {}\nkey_label = {}\n{}",
                first.module.display(),
                first.token_label,
                replicated.key_label,
                check_line(&report.check)
            );
            write_atomically(&marker, &text)?;
        }
        Some(recorded) if recorded.check.is_none() => {
            let mut text = recorded.text.clone();
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&check_line(&report.check));
            write_atomically(&marker, &text)?;
        }
        Some(_) => {}
    }
    tracing::info!(
        tokens = %report.serving.join(", "),
        key = %replicated.key_label,
        "the root key is in PKCS#11 tokens"
    );
    if !report.left_out.is_empty() {
        let left_out: Vec<&str> = report.left_out.iter().map(|it| it.token.as_str()).collect();
        tracing::warn!(
            serving = %report.serving.join(", "),
            not_used = %left_out.join(", "),
            "the root key is not served by every listed token: Strongroom runs without the redundancy \
             configured until those tokens are back (a token that answers again is used after a restart)"
        );
    }
    Ok(Arc::new(root_key))
}
