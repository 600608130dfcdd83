//! Durable storage of the CloudHSM-style control plane: clusters, which declared HSM each cluster
//! holds, backup records and tags.
//!
//! The control plane (`strongroom-cloudhsm`) reads these records on every request and holds no copy,
//! so the server and the `strongroom hsm` commands can share one database.
//! Checks that span records (a cluster with HSMs cannot be deleted) belong to the control plane; the
//! store keeps each record whole and guarantees only that one declared HSM belongs to one cluster.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use strongroom_types::{Namespace, Tag, Timestamp, UnknownVariant};

use crate::StoreError;

/// Defines an enumeration of the CloudHSM API with its wire spellings, which are also its stored form.
macro_rules! cloudhsm_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            const NAMES: &'static [&'static str] = &[$($text,)+];

            /// The exact spelling used on the wire and in storage.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownVariant;
            fn from_str(s: &str) -> Result<Self, UnknownVariant> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownVariant { value: s.to_owned(), allowed: Self::NAMES }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

cloudhsm_enum! {
    /// Where a cluster is in its life (`ClusterState`); Strongroom uses the states a bring-up passes
    /// through, and parses the others so that every API value round-trips.
    ClusterState {
        /// Being created.
        CreateInProgress = "CREATE_IN_PROGRESS",
        /// Created; its first HSM makes the cluster CSR.
        Uninitialized = "UNINITIALIZED",
        /// The signed cluster certificate is being installed.
        InitializeInProgress = "INITIALIZE_IN_PROGRESS",
        /// Has its certificate; waits for an administrator to activate it.
        Initialized = "INITIALIZED",
        /// Activated: users can be created and keys used.
        Active = "ACTIVE",
        /// Being updated.
        UpdateInProgress = "UPDATE_IN_PROGRESS",
        /// Being modified.
        ModifyInProgress = "MODIFY_IN_PROGRESS",
        /// A modification is being rolled back.
        RollbackInProgress = "ROLLBACK_IN_PROGRESS",
        /// Being deleted.
        DeleteInProgress = "DELETE_IN_PROGRESS",
        /// Deleted.
        Deleted = "DELETED",
        /// Serving with reduced capacity.
        Degraded = "DEGRADED",
    }
}

cloudhsm_enum! {
    /// Where one HSM is in its life (`HsmState`).
    HsmState {
        /// Assigned to its cluster but not yet holding the cluster's users and keys.
        CreateInProgress = "CREATE_IN_PROGRESS",
        /// Serving.
        Active = "ACTIVE",
        /// Failing.
        Degraded = "DEGRADED",
        /// Being removed.
        DeleteInProgress = "DELETE_IN_PROGRESS",
        /// Removed.
        Deleted = "DELETED",
    }
}

cloudhsm_enum! {
    /// Where a backup is in its life (`BackupState`).
    BackupState {
        /// Being taken.
        CreateInProgress = "CREATE_IN_PROGRESS",
        /// Complete.
        Ready = "READY",
        /// Deleted.
        Deleted = "DELETED",
        /// Deleted, restorable for seven days.
        PendingDeletion = "PENDING_DELETION",
    }
}

cloudhsm_enum! {
    /// Whether a cluster runs in FIPS mode (`ClusterMode`); fixed when the cluster is created.
    ClusterMode {
        /// FIPS-validated mode.
        Fips = "FIPS",
        /// Non-FIPS mode.
        NonFips = "NON_FIPS",
    }
}

/// A cluster: one logical HSM made of declared HSMs, owned by an account in a Region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterRecord {
    /// `cluster-` and 11 base32 characters; unique across accounts and Regions.
    pub cluster_id: String,
    /// The owning account and Region.
    pub namespace: Namespace,
    /// Its life-cycle state.
    pub state: ClusterState,
    /// Why the cluster is in its state, when that needs saying.
    pub state_message: Option<String>,
    /// `hsm1.medium` or `hsm2m.medium`.
    pub hsm_type: String,
    /// FIPS or non-FIPS.
    pub mode: ClusterMode,
    /// Days a backup is kept (7 to 379).
    pub backup_retention_days: u32,
    /// One subnet per availability zone, ordered by zone.
    pub subnets: Vec<SubnetMapping>,
    /// The synthetic security group, `sg-` and 17 hexadecimal digits.
    pub security_group: String,
    /// When the cluster was created.
    pub created: Timestamp,
    /// The cluster's key pair and CSR, made inside its first HSM.
    pub identity: Option<ClusterIdentity>,
    /// The certificates installed by `InitializeCluster`.
    pub certificates: Option<ClusterCertificates>,
    /// Crypto users created on the cluster's HSMs, ordered by name.
    pub crypto_users: Vec<String>,
    /// Tags, in the order they were first added.
    pub tags: Vec<Tag>,
    /// The backup the cluster was created from (`SourceBackupId`), if it was.
    pub source_backup_id: Option<String>,
}

/// A subnet of a cluster and the availability zone it lies in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetMapping {
    /// The zone, for example `us-east-1a`.
    pub availability_zone: String,
    /// The subnet id as the caller gave it.
    pub subnet_id: String,
}

/// The cluster's identity key pair, which signs its CSR and never leaves the HSM that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterIdentity {
    /// The PKCS#11 label of the key pair.
    pub key_label: String,
    /// The public key as SubjectPublicKeyInfo DER, to check the signed certificate against.
    pub public_key: Vec<u8>,
    /// The PKCS#10 request in PEM, signed by the private key.
    pub csr_pem: String,
}

/// The certificates of an initialized cluster, in PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterCertificates {
    /// The cluster certificate the operator's CA issued for the CSR (with any intermediates after it).
    pub cluster_certificate_pem: String,
    /// The operator's self-signed root, which KMS later requires as `TrustAnchorCertificate`.
    pub trust_anchor_pem: String,
}

/// One declared HSM assigned to a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HsmRecord {
    /// `hsm-` and 11 base32 characters.
    pub hsm_id: String,
    /// The cluster holding it.
    pub cluster_id: String,
    /// The id of the declared HSM (the `[[hsm]]` entry of the configuration); unique among records.
    pub declared_hsm: String,
    /// Its availability zone.
    pub availability_zone: String,
    /// The cluster's subnet in that zone.
    pub subnet_id: String,
    /// The synthetic network interface, `eni-` and 17 hexadecimal digits.
    pub eni_id: String,
    /// The synthetic IPv4 address of that interface.
    pub eni_ip: String,
    /// Its life-cycle state.
    pub state: HsmState,
    /// Why the HSM is in its state, when that needs saying.
    pub state_message: Option<String>,
    /// When it was assigned.
    pub created: Timestamp,
}

/// A backup: when the cluster changed membership or was activated, what it was and what it held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupRecord {
    /// `backup-` and 11 base32 characters.
    pub backup_id: String,
    /// The cluster it was taken of (which may since have been deleted).
    pub cluster_id: String,
    /// The owning account and Region.
    pub namespace: Namespace,
    /// Its life-cycle state.
    pub state: BackupState,
    /// The cluster's HSM type when it was taken.
    pub hsm_type: String,
    /// The cluster's mode.
    pub mode: ClusterMode,
    /// Exempt from the retention policy.
    pub never_expires: bool,
    /// When it was taken.
    pub created: Timestamp,
    /// When it was deleted, for a backup pending deletion.
    pub deleted: Option<Timestamp>,
    /// Tags, in the order they were first added.
    pub tags: Vec<Tag>,
    /// What the backup holds (keys wrapped inside an HSM, users without passwords, certificates), sealed by the root key
    /// by the control plane; `None` for a backup of metadata only.
    pub sealed_contents: Option<Vec<u8>>,
}

/// Durable storage of the control plane's records; held as `Arc<dyn ClusterStore>`.
///
/// Records are written whole: `put_cluster` replaces the cluster's subnets, certificates, users and
/// tags at once, so a reader never sees half of an update.
#[async_trait]
pub trait ClusterStore: Send + Sync + 'static {
    /// Adds a cluster; `AlreadyExists` if its id is taken.
    async fn insert_cluster(&self, cluster: &ClusterRecord) -> Result<(), StoreError>;

    /// Replaces a cluster whole; `NotFound` if it does not exist in its namespace.
    async fn put_cluster(&self, cluster: &ClusterRecord) -> Result<(), StoreError>;

    /// Reads one cluster by its id alone, which is unique across namespaces, so that the
    /// `strongroom hsm` commands can name a cluster without its account; API callers compare the
    /// record's namespace with their own.
    async fn cluster(&self, cluster_id: &str) -> Result<Option<ClusterRecord>, StoreError>;

    /// Every cluster of a namespace, ordered by cluster id.
    async fn list_clusters(&self, namespace: &Namespace) -> Result<Vec<ClusterRecord>, StoreError>;

    /// Deletes a cluster with its subnets, users and tags (not its HSM records or backups);
    /// `NotFound` if it does not exist in the namespace.
    async fn delete_cluster(
        &self,
        namespace: &Namespace,
        cluster_id: &str,
    ) -> Result<(), StoreError>;

    /// Assigns a declared HSM to a cluster; `AlreadyExists` if the HSM id is taken or the declared
    /// HSM already belongs to a cluster, which is what makes claiming a free HSM safe.
    async fn insert_hsm(&self, hsm: &HsmRecord) -> Result<(), StoreError>;

    /// Replaces an HSM record whole; `NotFound` if it does not exist.
    async fn put_hsm(&self, hsm: &HsmRecord) -> Result<(), StoreError>;

    /// Releases an HSM; `NotFound` if it does not exist.
    async fn delete_hsm(&self, hsm_id: &str) -> Result<(), StoreError>;

    /// Every HSM record of every cluster, ordered by creation time and then HSM id, because which
    /// declared HSMs are free is a question about all of them.
    async fn hsms(&self) -> Result<Vec<HsmRecord>, StoreError>;

    /// Adds a backup record; `AlreadyExists` if its id is taken.
    async fn insert_backup(&self, backup: &BackupRecord) -> Result<(), StoreError>;

    /// Replaces a backup record whole; `NotFound` if it does not exist in its namespace.
    async fn put_backup(&self, backup: &BackupRecord) -> Result<(), StoreError>;

    /// Deletes a backup record; `NotFound` if it does not exist in the namespace.
    async fn delete_backup(&self, namespace: &Namespace, backup_id: &str)
    -> Result<(), StoreError>;

    /// Every backup of a namespace, ordered by creation time and then backup id.
    async fn backups(&self, namespace: &Namespace) -> Result<Vec<BackupRecord>, StoreError>;
}
