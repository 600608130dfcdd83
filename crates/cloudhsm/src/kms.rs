//! What a KMS custom key store needs from a cluster: a description to check its prerequisites against,
//! and its HSMs opened as a PKCS#11 cluster.
//!
//! The control plane remembers, weakly, every PKCS#11 cluster it opened (the connections of custom
//! key stores, whose health monitors probe their HSMs every few seconds), so that `DescribeClusters`
//! can show the live health of the HSMs they cover ([`LiveClusters`]).

use std::sync::{Arc, Mutex, PoisonError, Weak};

use strongroom_keystore_pkcs11::{
    Cluster as Pkcs11Cluster, ClusterOptions, HsmState as Pkcs11HsmState, HsmStatus,
};
use strongroom_storage::clusters::{ClusterState, HsmState};
use strongroom_types::Namespace;

use crate::error::Error;
use crate::{Cluster, ControlPlane, certificates, tokens};

/// A cluster as a custom key store sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterView {
    /// The cluster's id.
    pub cluster_id: String,
    /// Its state; a key store needs `ACTIVE`.
    pub state: ClusterState,
    /// Its HSMs, in creation order; a key store needs active ones in two zones.
    pub hsms: Vec<HsmView>,
    /// The trust anchor given at initialization, which `CreateCustomKeyStore` must match.
    pub trust_anchor_pem: Option<String>,
    /// The cluster certificate (with any intermediates), which identifies related clusters.
    pub cluster_certificate_pem: Option<String>,
    /// The crypto users; a key store needs `kmsuser`.
    pub crypto_users: Vec<String>,
}

/// One HSM of a [`ClusterView`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HsmView {
    /// The API's `hsm-…` id.
    pub hsm_id: String,
    /// The declared HSM behind it, the id its PKCS#11 `Hsm` has.
    pub declared_hsm: String,
    /// Its availability zone.
    pub availability_zone: String,
    /// `ACTIVE` when it holds the cluster's users and keys.
    pub state: HsmState,
}

impl ControlPlane {
    /// The cluster `cluster_id` of `namespace`, or `None` if the namespace has no such cluster.
    pub async fn cluster(
        &self,
        namespace: &Namespace,
        cluster_id: &str,
    ) -> Result<Option<ClusterView>, Error> {
        let record = match self.store.cluster(cluster_id).await? {
            Some(record) if &record.namespace == namespace => record,
            _ => return Ok(None),
        };
        let hsms = self.hsms_of(cluster_id).await?;
        let (cluster_certificate_pem, trust_anchor_pem) = match record.certificates {
            Some(certificates) => (
                Some(certificates.cluster_certificate_pem),
                Some(certificates.trust_anchor_pem),
            ),
            None => (None, None),
        };
        Ok(Some(ClusterView {
            cluster_id: record.cluster_id,
            state: record.state,
            hsms: hsms
                .into_iter()
                .map(|hsm| HsmView {
                    hsm_id: hsm.hsm_id,
                    declared_hsm: hsm.declared_hsm,
                    availability_zone: hsm.availability_zone,
                    state: hsm.state,
                })
                .collect(),
            trust_anchor_pem,
            cluster_certificate_pem,
            crypto_users: record.crypto_users,
        }))
    }

    /// The cluster certificate of `cluster_id` in `namespace`: the cluster's own while it exists, else
    /// the one a backup taken of it holds (backups outlive their cluster). `None` when the namespace
    /// has neither, or only backups of metadata.
    pub async fn cluster_certificate(
        &self,
        namespace: &Namespace,
        cluster_id: &str,
    ) -> Result<Option<String>, Error> {
        if let Some(view) = self.cluster(namespace, cluster_id).await? {
            return Ok(view.cluster_certificate_pem);
        }
        for backup in self.store.backups(namespace).await? {
            if backup.cluster_id != cluster_id || backup.sealed_contents.is_none() {
                continue;
            }
            if let Some(certificates) = self.backup_contents(&backup)?.certificates {
                return Ok(Some(certificates.cluster_certificate_pem));
            }
        }
        Ok(None)
    }

    /// Opens the cluster's `ACTIVE` HSMs as one PKCS#11 cluster, nobody logged in yet; the caller logs
    /// in as the crypto user.
    ///
    /// HSMs still `CREATE_IN_PROGRESS` are left out because they lack the crypto user; bring them in
    /// first with [`ControlPlane::synchronize_hsms`], which needs the crypto user's password.
    pub async fn open_pkcs11_cluster(
        &self,
        namespace: &Namespace,
        cluster_id: &str,
        options: ClusterOptions,
    ) -> Result<Arc<Pkcs11Cluster>, Error> {
        let _membership = self.membership.read().await;
        self.load(namespace, cluster_id).await?;
        let hsms = self.hsms_of(cluster_id).await?;
        let active: Vec<_> = hsms
            .into_iter()
            .filter(|hsm| hsm.state == HsmState::Active)
            .collect();
        let configs = self.configs(&active)?;
        let modules = self.modules.clone();
        let cluster =
            tokio::task::spawn_blocking(move || Pkcs11Cluster::open(&configs, &modules, options))
                .await??;
        let cluster = Arc::new(cluster);
        self.live.register(cluster_id, &cluster);
        Ok(cluster)
    }

    /// Whether a PKCS#11 cluster of `cluster_id` is open in this process with the crypto user logged
    /// in, as while a custom key store is connected to it.
    pub fn has_logged_in_cluster(&self, cluster_id: &str) -> bool {
        self.live.logged_in(cluster_id).is_some()
    }
}

/// The PKCS#11 clusters this process opened, by cluster id, held weakly: a cluster stays here as long
/// as whoever opened it (a connected custom key store) keeps it, and no longer.
///
/// They are where the server's knowledge of its HSMs' health lives: every operation that fails on an
/// HSM marks it degraded there, and the health monitor of a connected store probes each HSM every few
/// seconds and brings it back once it answers. No separate probe is made for `DescribeClusters`.
#[derive(Debug, Default)]
pub(crate) struct LiveClusters {
    opened: Mutex<Vec<(String, Weak<Pkcs11Cluster>)>>,
}

impl LiveClusters {
    fn register(&self, cluster_id: &str, cluster: &Arc<Pkcs11Cluster>) {
        let mut opened = self.opened.lock().unwrap_or_else(PoisonError::into_inner);
        opened.retain(|(_, weak)| weak.strong_count() > 0);
        opened.push((cluster_id.to_owned(), Arc::downgrade(cluster)));
    }

    /// The open PKCS#11 clusters of `cluster_id`, oldest first; empty when none is open.
    pub(crate) fn opened(&self, cluster_id: &str) -> Vec<Arc<Pkcs11Cluster>> {
        let mut opened = self.opened.lock().unwrap_or_else(PoisonError::into_inner);
        opened.retain(|(_, weak)| weak.strong_count() > 0);
        opened
            .iter()
            .filter(|(id, _)| id == cluster_id)
            .filter_map(|(_, weak)| weak.upgrade())
            .collect()
    }

    /// The newest open PKCS#11 cluster of `cluster_id` with the crypto user logged in (a connected
    /// key store's); `None` when there is none.
    pub(crate) fn logged_in(&self, cluster_id: &str) -> Option<Arc<Pkcs11Cluster>> {
        self.opened(cluster_id)
            .into_iter()
            .rev()
            .find(|cluster| cluster.is_logged_in())
    }

    /// The health of every HSM of the open PKCS#11 clusters of `cluster_id`; empty when none is open.
    fn statuses(&self, cluster_id: &str) -> Vec<HsmStatus> {
        let live = self.opened(cluster_id);
        live.iter().flat_map(|cluster| cluster.status()).collect()
    }
}

impl ControlPlane {
    /// Shows, at read time, what this server currently finds of an `ACTIVE` cluster's HSMs: an `ACTIVE`
    /// HSM that an open PKCS#11 cluster (a connected custom key store's) finds failing is `DEGRADED`,
    /// with a `StateMessage` saying what is wrong, and the cluster is `DEGRADED` while any of its HSMs
    /// is; both read as recorded again once the HSM answers. The records do not change.
    ///
    /// HSMs that no open cluster covers (no store connected to the cluster, or an HSM added since the
    /// store connected) read as recorded: their health is unknown, and nothing is probed to find out.
    pub(crate) fn overlay_live_health(&self, cluster: &mut Cluster) {
        if cluster.record.state != ClusterState::Active {
            return;
        }
        let statuses = self.live.statuses(&cluster.record.cluster_id);
        if statuses.is_empty() {
            return;
        }
        let mut degraded = Vec::new();
        for hsm in &mut cluster.hsms {
            if hsm.state != HsmState::Active {
                continue;
            }
            // Any open cluster that finds the HSM failing is believed: they all probe it.
            let failing = statuses
                .iter()
                .find(|s| s.id == hsm.declared_hsm && s.state == Pkcs11HsmState::Degraded);
            let Some(status) = failing else {
                continue;
            };
            let what = status
                .last_error
                .as_deref()
                .unwrap_or("it stopped answering");
            hsm.state = HsmState::Degraded;
            hsm.state_message = Some(format!(
                "The HSM is not answering: its last operation or health check failed ({what}). \
                 Requests go to the cluster's other HSMs until it answers again; Strongroom checks it \
                 every few seconds."
            ));
            degraded.push(format!("{} in {}", hsm.hsm_id, hsm.availability_zone));
        }
        if degraded.is_empty() {
            return;
        }
        let total = cluster.hsms.len();
        let count = degraded.len();
        let (verb, until) = match count {
            1 => ("is", "it answers"),
            _ => ("are", "they answer"),
        };
        cluster.record.state = ClusterState::Degraded;
        cluster.record.state_message = Some(format!(
            "{count} of the cluster's {total} HSMs {verb} not answering ({}): the cluster serves with \
             reduced capacity until {until} again.",
            degraded.join(", ")
        ));
    }
}

impl ControlPlane {
    /// Checks that every HSM of `cluster` that answers holds a certificate of cluster `cluster_id` that
    /// chains to `trust_anchor_pem`, as the CloudHSM client authenticates each HSM before a custom key
    /// store uses it; HSMs that do not answer are left to the failover. Blocks on PKCS#11, and needs the
    /// crypto user logged in. The error names the HSM and says what is wrong.
    pub fn check_hsm_certificates(
        &self,
        cluster: &Pkcs11Cluster,
        view: &ClusterView,
        trust_anchor_pem: &str,
    ) -> Result<(), String> {
        let Some(chain) = &view.cluster_certificate_pem else {
            return Err(format!("cluster {} has no certificate", view.cluster_id));
        };
        let now = self.now().as_secs();
        let label = tokens::certificate_label(&view.cluster_id);
        for answer in cluster.read_certificate_everywhere(&label) {
            match answer.result {
                Ok(der) => certificates::chains_to(&der, chain, trust_anchor_pem, now)
                    .map_err(|reason| format!("HSM {}: {reason}", answer.hsm))?,
                Err(e) if e.is_device_failure() => {}
                Err(e) => {
                    return Err(format!(
                        "HSM {} has no readable cluster certificate: {e}",
                        answer.hsm
                    ));
                }
            }
        }
        Ok(())
    }
}
