//! What a KMS custom key store needs from a cluster: a description to check its prerequisites against,
//! and its HSMs opened as a PKCS#11 cluster.

use std::sync::Arc;

use strongroom_keystore_pkcs11::{Cluster as Pkcs11Cluster, ClusterOptions};
use strongroom_storage::clusters::{ClusterState, HsmState};
use strongroom_types::Namespace;

use crate::error::Error;
use crate::{ControlPlane, certificates, tokens};

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
        Ok(Arc::new(cluster))
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
