//! A CloudHSM-style control plane over HSMs the operator owns: the `cloudhsmv2` API's clusters,
//! HSMs, backups and tags, and the bring-up that makes a cluster usable by a KMS custom key store.
//!
//! # Declared HSMs
//!
//! AWS creates HSMs on demand; Strongroom cannot, so the operator declares the HSMs it may use, each a
//! PKCS#11 token in an availability zone (`[[hsm]]` tables in the server configuration, one
//! [`HsmConfig`] each). `CreateHsm` assigns a free declared HSM in the requested zone to the cluster,
//! and `DeleteHsm` releases it. A declared HSM should be a freshly initialized token: the control plane
//! does not wipe tokens (PKCS#11 can only re-initialize a token by `C_InitToken` on its slot, which
//! the PKCS#11 layer reserves for provisioning), so a released token keeps its objects until the
//! operator re-initializes it.
//!
//! # Subnets and availability zones
//!
//! There is no VPC, so a subnet id names its zone: `subnet-us-east-1a` is a subnet in `us-east-1a`
//! (the zone is written as AWS writes zones, with at least one hyphen, so that AWS's hexadecimal
//! subnet ids are refused rather than taken for zones).
//! `CreateCluster` maps each of its `SubnetIds` that way, one subnet per zone, and `CreateHsm` accepts
//! the zones of the cluster's subnets. The VPC is always `vpc-strongroom`; security groups, network
//! interfaces and their addresses are synthetic names with the shapes AWS uses, and nothing listens on
//! them.
//!
//! # Bring-up, and the roles on a token
//!
//! The steps are CloudHSM's (`CreateCluster`, `CreateHsm`, sign the `ClusterCsr`, `InitializeCluster`,
//! activate, create `kmsuser`); what each does to the tokens:
//!
//! 1. The first HSM of an uninitialized cluster generates the cluster's RSA 2048 key pair and signs
//!    the cluster CSR (subject `CN=<cluster id>`, `sha256WithRSAEncryption`) inside the token.
//! 2. `InitializeCluster` checks that the trust anchor is a self-signed CA, that the signed certificate
//!    carries the cluster key and chains to the anchor, and writes both certificates onto every HSM of
//!    the cluster as public data objects. The cluster becomes `INITIALIZED`.
//! 3. Activation (`strongroom hsm activate`) sets up the admin. CloudHSM's admin (crypto officer) is
//!    the PKCS#11 Security Officer, and a token's SO PIN is chosen when the token is initialized and
//!    read from the operator's files (`so_pin_file`/`so_pin_env`); so activating checks that the given
//!    admin password equals the SO PIN of every HSM of the cluster, then proves it by logging in as the
//!    Security Officer on each to establish the cluster wrapping key that later carries keys between
//!    HSMs. The cluster becomes `ACTIVE`. (Changing the SO PIN with `C_SetPIN` would need the PKCS#11
//!    layer to offer it; the operator changes SO PINs with the token's own tools and updates the file.)
//! 4. `strongroom hsm create-user`, which logs in as the admin (the admin password again), creates the
//!    crypto user (the PKCS#11 normal user) on every HSM with the same password. A token has one normal user, so a cluster has one crypto user, normally
//!    `kmsuser`.
//!
//! Steps 1 and 2 need a logged-in PKCS#11 user, because the PKCS#11 layer generates, signs and writes
//! objects in the crypto user's sessions, yet CloudHSM does this before any user exists. Until the
//! cluster has a crypto user the control plane therefore sets the token's user PIN (as the Security
//! Officer, with `C_InitPIN`) to a random one-time password for its own session and forgets it
//! afterwards; `create-user` later sets the real password the same way, and objects survive PIN
//! changes. Once the cluster has a crypto user, an HSM added while a custom key store is connected to
//! the cluster joins at once through the store's PKCS#11 cluster, which is logged in as the crypto user
//! (CloudHSM clones a new HSM from a backup instead). Otherwise the control plane no longer touches the
//! user PIN: the HSM stays `CREATE_IN_PROGRESS` until it is brought in, through a key store connected
//! since ([`ControlPlane::synchronize_hsms_through_connected_store`], which the service calls once a
//! store's connection is recorded, and `strongroom hsm sync`) or by
//! someone holding the crypto user's password ([`ControlPlane::synchronize_hsms`], `strongroom hsm sync
//! --password-file`), which copies users, the wrapping key, keys and certificates to it; when no HSM of
//! the cluster is active, the new HSM is seeded from a backup instead (see Backups).
//!
//! # Who runs what
//!
//! Everything that touches tokens runs in the server process, including the work of the
//! `strongroom hsm` commands (activate, users, sync), which send it to the running server as
//! Strongroom's own `StrongroomHsmAdmin.*` operations, signed like any other request. That is where
//! CloudHSM's CLI differs: it talks to the HSMs directly. Here a second process working on the tokens
//! would leave the server with a stale view of them, because a PKCS#11 library caches token state per
//! process (SoftHSM reads a token's PIN data once, so a server would not see a crypto user created by
//! another process until restarted). The control plane holds no PKCS#11 session between operations,
//! and every operation reads its records from the database.
//!
//! Like CloudHSM's, these operations are authorized by HSM credentials as well as by the request's
//! signature: activating and managing users needs the admin password, bringing HSMs in needs the crypto
//! user's password.
//!
//! # Backups
//!
//! A backup is taken whenever an HSM is added or removed, when a cluster is activated, and when
//! `strongroom hsm sync` brings HSMs in, as CloudHSM takes them, and `DescribeBackups` lists them in
//! AWS's shape. Each holds what the cluster is made of (module `backup_contents`): its users (names and
//! roles; passwords stay in the HSMs), its certificates and identity, the id of its cluster wrapping
//! key, and every backing key, exported from one active HSM wrapped under the cluster wrapping key, the
//! way HSMs carry keys between each other, so a key never leaves a token in plaintext. The whole is
//! sealed by the server's root key with the backup id bound. Exporting needs the crypto user logged
//! in: the control plane uses the PKCS#11 cluster of a connected custom key store, or the sync's own
//! login; a backup taken with neither holds users and certificates but not keys, and cannot be
//! restored.
//!
//! `CreateCluster` with `SourceBackupId` makes an `ACTIVE` cluster with the backup's certificates,
//! identity and users, related to the original (same cluster certificate). While none of a cluster's
//! HSMs is active (a cluster created from a backup, or one that lost all its HSMs), `CreateHsm` seeds
//! the new HSM from the cluster's newest backup holding keys (else the one it was created from): the
//! token receives the lineage's cluster wrapping key by ECDH, as the Security Officers of both tokens,
//! from any HSM of a cluster of the same lineage that holds it (preferring tokens no connected key
//! store is using); then, under a one-time crypto-user password, the backup's keys are unwrapped into
//! it and the certificates written. The crypto user's real password is set by the admin
//! (`strongroom hsm change-password` with the admin password), which brings the seeded HSMs in: the
//! backup never holds it, and a connected key store has usually rotated it to one only the store
//! knows. Unlike CloudHSM, a backup is bound to its lineage's wrapping key, which lives only in
//! tokens: with no HSM holding it reachable, `CreateHsm` says so and the backup cannot be restored.
//! `RestoreBackup` is CloudHSM's: it undoes a pending deletion.
//!
//! # For the KMS side
//!
//! [`ControlPlane::cluster`] describes a cluster as a custom key store needs it (state, HSMs and their
//! zones, trust anchor, cluster certificate) and [`ControlPlane::open_pkcs11_cluster`] opens its active
//! HSMs as a [`strongroom_keystore_pkcs11::Cluster`], with the control plane's own `ModuleSet`, in the
//! server process, for the reason above.

mod backup_contents;
mod backups;
mod certificates;
mod clusters;
mod csr;
mod error;
mod hsms;
mod ids;
mod kms;
mod tags;
mod tokens;
mod users;

use std::sync::Arc;

use strongroom_keystore::RootKey;
use strongroom_keystore_pkcs11::{HsmConfig, ModuleSet};
use strongroom_storage::clusters::ClusterStore;
use strongroom_types::{Namespace, Timestamp};

pub use crate::clusters::{ClusterFilters, CreateClusterRequest};
pub use crate::error::Error;
pub use crate::hsms::HsmSelector;
pub use crate::ids::resource_arn;
pub use crate::kms::{ClusterView, HsmView};
pub use crate::users::{HsmUser, PasswordAuthority};
// Passwords cross the API as the PKCS#11 layer's wiped-on-drop type.
pub use strongroom_keystore_pkcs11::Pin;
// The records are the control plane's vocabulary as much as the store's: its answers are made of them.
pub use strongroom_storage::clusters::{
    BackupRecord, BackupState, ClusterCertificates, ClusterIdentity, ClusterMode, ClusterRecord,
    ClusterState, HsmRecord, HsmState, SubnetMapping,
};

/// The hardware types a cluster can be created with.
pub const HSM_TYPES: &[&str] = &["hsm1.medium", "hsm2m.medium"];
/// The VPC every cluster reports, since there is no VPC.
pub const VPC_ID: &str = "vpc-strongroom";
/// At most this many HSMs per cluster, CloudHSM's quota.
pub const MAX_HSMS_PER_CLUSTER: usize = 28;

/// Where the control plane reads the time, so that tests can move it.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// The control plane: clusters of declared HSMs, kept in a [`ClusterStore`].
///
/// Cheap to share behind an `Arc`; every method takes `&self`.
pub struct ControlPlane {
    store: Arc<dyn ClusterStore>,
    declared: Vec<HsmConfig>,
    modules: ModuleSet,
    clock: Clock,
    /// Seals what backups hold, with each backup's id bound.
    root_key: Arc<dyn RootKey>,
    /// Serializes operations that change clusters within this process, so that, for example, two
    /// `CreateHsm` calls never claim the same declared HSM.
    admin: tokio::sync::Mutex<()>,
    /// The PKCS#11 clusters opened for custom key stores, for the live health `DescribeClusters` shows.
    live: kms::LiveClusters,
    /// Read while a PKCS#11 cluster is opened from the HSM records and registered in `live`; written
    /// while an HSM leaves (taken out of every open cluster, then its record deleted). So no cluster
    /// opened at the same moment as a `DeleteHsm` keeps the HSM, whose token is then free for others.
    membership: tokio::sync::RwLock<()>,
}

/// A cluster as the API describes it: its record and the HSMs it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// The cluster.
    pub record: ClusterRecord,
    /// Its HSMs, in the order they were created.
    pub hsms: Vec<HsmRecord>,
}

/// One page of a listing and the token for the next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Where the next page starts; `None` on the last page.
    pub next_token: Option<String>,
}

impl ControlPlane {
    /// A control plane over `declared` HSMs (from the configuration), keeping its records in `store`
    /// and sealing what its backups hold with `root_key`.
    ///
    /// Nothing is opened yet: tokens are opened by the operations that need them, so a server whose
    /// HSMs are unreachable still starts and can say so per request.
    pub fn new(
        store: Arc<dyn ClusterStore>,
        declared: Vec<HsmConfig>,
        modules: ModuleSet,
        clock: Clock,
        root_key: Arc<dyn RootKey>,
    ) -> Result<ControlPlane, Error> {
        for (index, hsm) in declared.iter().enumerate() {
            if hsm.id.is_empty() || hsm.availability_zone.is_empty() {
                return Err(Error::InvalidRequest(format!(
                    "declared HSM number {} needs an id and an availability zone",
                    index + 1
                )));
            }
            if declared[..index].iter().any(|other| other.id == hsm.id) {
                return Err(Error::InvalidRequest(format!(
                    "two declared HSMs have the id '{}'; give each [[hsm]] a distinct id",
                    hsm.id
                )));
            }
        }
        Ok(ControlPlane {
            store,
            declared,
            modules,
            clock,
            root_key,
            admin: tokio::sync::Mutex::new(()),
            live: kms::LiveClusters::default(),
            membership: tokio::sync::RwLock::new(()),
        })
    }

    /// The declared HSMs, in configuration order.
    pub fn declared_hsms(&self) -> &[HsmConfig] {
        &self.declared
    }

    fn now(&self) -> Timestamp {
        (self.clock)()
    }

    /// The declared HSM with this id, for an assignment that refers to it.
    fn declared(&self, id: &str) -> Result<&HsmConfig, Error> {
        match self.declared.iter().find(|hsm| hsm.id == id) {
            Some(hsm) => Ok(hsm),
            None => Err(Error::InvalidRequest(format!(
                "The declared HSM '{id}' is assigned to a cluster but no longer in the configuration: \
                 declare it again as an [[hsm]] table."
            ))),
        }
    }

    /// The configurations of `hsms`, in order.
    fn configs(&self, hsms: &[HsmRecord]) -> Result<Vec<HsmConfig>, Error> {
        hsms.iter()
            .map(|hsm| self.declared(&hsm.declared_hsm).cloned())
            .collect()
    }

    /// The cluster `cluster_id` of `namespace`; not found if it belongs to another.
    async fn load(&self, namespace: &Namespace, cluster_id: &str) -> Result<ClusterRecord, Error> {
        match self.store.cluster(cluster_id).await? {
            Some(record) if &record.namespace == namespace => Ok(record),
            _ => Err(not_found_cluster(cluster_id)),
        }
    }

    /// The HSMs of one cluster, in creation order.
    async fn hsms_of(&self, cluster_id: &str) -> Result<Vec<HsmRecord>, Error> {
        let all = self.store.hsms().await?;
        Ok(all
            .into_iter()
            .filter(|hsm| hsm.cluster_id == cluster_id)
            .collect())
    }

    /// Records a backup of `cluster` as it is now (see the crate documentation for what it holds),
    /// exporting its keys through a PKCS#11 cluster of it that has the crypto user logged in, if this
    /// process has one open.
    async fn record_backup(&self, cluster: &ClusterRecord) -> Result<(), Error> {
        self.take_backup(cluster, None).await
    }
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("declared", &self.declared)
            .finish_non_exhaustive()
    }
}

fn not_found_cluster(cluster_id: &str) -> Error {
    Error::ResourceNotFound(format!("Cluster {cluster_id} does not exist."))
}

#[cfg(test)]
mod tests;
