//! Custom key stores of the AWS_CLOUDHSM type: CreateCustomKeyStore, DescribeCustomKeyStores,
//! ConnectCustomKeyStore, DisconnectCustomKeyStore, UpdateCustomKeyStore, DeleteCustomKeyStore.
//!
//! The service does not know the CloudHSM control plane or PKCS#11: the server hands it an
//! [`HsmClusters`], which describes clusters and opens them logged in as `kmsuser` as a
//! [`ConnectedCluster`]. The kmsuser password is stored only wrapped by the root key, bound to the
//! store id; every successful connect rotates it to a new random 32-character value.
//!
//! The rotation is crash-safe, with a write-ahead record: the next password is first recorded,
//! durably and wrapped like the current one, as the store's *pending* password; then every HSM moves
//! to it; then one write promotes it to current and records the store CONNECTED. A server killed at
//! any point therefore leaves every HSM holding the current or the pending password, both recorded.
//! A connection attempt that finds a pending password (after a crash, or an HSM that failed) logs
//! each HSM in with whichever of the two it accepts, moves the others to the pending one, and
//! promotes it. An HSM whose change fails midway rolls nothing back: rolling back means changing
//! HSMs again, which can fail in turn, whereas keeping the pending password leaves the store
//! consistent as it is. That attempt ends FAILED with `INTERNAL_ERROR`, and the next connection
//! finishes the rotation. Neither password reaches a log or the audit trail, and both are zeroized
//! after use.
//!
//! Connecting is asynchronous, as in AWS: `ConnectCustomKeyStore` records the store CONNECTING and
//! returns; a background attempt logs kmsuser in on every HSM, checks each HSM's certificate against
//! the store's trust anchor, rotates the password, and records CONNECTED or FAILED with a
//! `ConnectionErrorCode`, reporting the outcome as a service event. `DisconnectCustomKeyStore` while
//! CONNECTING abandons the attempt: the store is DISCONNECTED at once and the attempt's outcome is
//! discarded (it logs out if it got that far).
//!
//! Connections survive a restart by themselves: at start-up the server calls
//! [`Kms::resume_custom_key_store_connections`], which starts the same background attempt for every
//! store, in every namespace, recorded CONNECTED (its connection died with the old process) or
//! CONNECTING (the old process stopped during an attempt). A CONNECTED store stays CONNECTED while it
//! is re-established, and requests that need it wait for the attempt; a CONNECTING store reads
//! CONNECTING until the attempt ends. DISCONNECTED and FAILED stores are left alone.
//!
//! Locks: a request that changes a store holds `Kms::writes`, then `Connections::state`; an attempt
//! holds its store's `establishing` lock while it logs in, then `Connections::state` while it records
//! the outcome (re-establishing a CONNECTED store does the same). Nothing holding `state` waits for
//! another lock, or for an HSM to log in.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use strongroom_keystore::RootKey;
use strongroom_storage::StoreError;
use strongroom_storage::key_stores::{CustomKeyStoreRecord, KeyStoreStore};
use strongroom_types::Namespace;
use zeroize::Zeroizing;

use crate::pagination::{self, Page};
use crate::{Caller, Error, Kms, ServiceEvents};

/// At most this many custom key stores per account and Region.
pub const MAX_CUSTOM_KEY_STORES: usize = 10;
/// The crypto user KMS logs in as.
pub const KMSUSER: &str = "kmsuser";

/// A cluster as a custom key store sees it.
#[derive(Debug, Clone)]
pub struct ClusterInfo {
    /// Whether the cluster is ACTIVE.
    pub active: bool,
    /// Its HSMs.
    pub hsms: Vec<ClusterHsm>,
    /// The trust anchor installed at initialization.
    pub trust_anchor_pem: Option<String>,
    /// The cluster certificate, which identifies related clusters.
    pub cluster_certificate_pem: Option<String>,
    /// The crypto users of the cluster.
    pub crypto_users: Vec<String>,
}

/// One HSM of a [`ClusterInfo`].
#[derive(Debug, Clone)]
pub struct ClusterHsm {
    /// Its availability zone.
    pub availability_zone: String,
    /// Whether it is ACTIVE.
    pub active: bool,
}

impl ClusterInfo {
    fn active_hsms(&self) -> usize {
        self.hsms.iter().filter(|h| h.active).count()
    }

    fn active_zones(&self) -> usize {
        let mut zones: Vec<&str> = self
            .hsms
            .iter()
            .filter(|h| h.active)
            .map(|h| h.availability_zone.as_str())
            .collect();
        zones.sort_unstable();
        zones.dedup();
        zones.len()
    }
}

/// A failure of an HSM operation, with its detail for the log.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HsmError(pub String);

/// A cluster opened with kmsuser logged in on its active HSMs. Methods block on the HSMs.
pub trait ConnectedCluster: Send + Sync + 'static {
    /// Moves kmsuser to password `new` on every HSM: each HSM changes from the password it logged in
    /// with, and HSMs already holding `new` are left as they are. Rolls nothing back: it stops at the
    /// first HSM that fails, leaving every HSM on the password it logged in with or on `new`.
    fn move_password(&self, new: &str) -> Result<(), HsmError>;
    /// Logs kmsuser out everywhere.
    fn logout(&self);
    /// Generates a persistent, non-extractable AES-256 key labelled `label`.
    fn generate_key(&self, label: &str) -> Result<(), HsmError>;
    /// Deletes the key labelled `label` from every HSM, best effort.
    fn delete_key(&self, label: &str);
    /// Random bytes from an HSM's generator.
    fn random(&self, len: usize) -> Result<Vec<u8>, HsmError>;
    /// AES-GCM encrypts under the key `label`; returns the IV and the ciphertext with its tag.
    fn encrypt(
        &self,
        label: &str,
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>), HsmError>;
    /// Reverses [`ConnectedCluster::encrypt`]; `None` when the ciphertext does not authenticate.
    fn decrypt(
        &self,
        label: &str,
        aad: &[u8],
        iv: &[u8],
        ciphertext: &[u8],
    ) -> Result<Option<Zeroizing<Vec<u8>>>, HsmError>;
}

/// Why a connection attempt failed, as a `ConnectionErrorCode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionError {
    /// The password is not kmsuser's.
    InvalidCredentials,
    /// The cluster is gone.
    ClusterNotFound,
    /// No active HSM.
    InsufficientCloudHsmHsms,
    /// kmsuser is locked out.
    UserLockedOut,
    /// There is no kmsuser.
    UserNotFound,
    /// kmsuser is logged in elsewhere.
    UserLoggedIn,
    /// An HSM could not be reached or authenticated: its certificate does not chain to the trust
    /// anchor, as a CloudHSM client refuses to talk to such an HSM.
    NetworkErrors,
    /// Anything else.
    InternalError,
}

impl ConnectionError {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionError::InvalidCredentials => "INVALID_CREDENTIALS",
            ConnectionError::ClusterNotFound => "CLUSTER_NOT_FOUND",
            ConnectionError::InsufficientCloudHsmHsms => "INSUFFICIENT_CLOUDHSM_HSMS",
            ConnectionError::UserLockedOut => "USER_LOCKED_OUT",
            ConnectionError::UserNotFound => "USER_NOT_FOUND",
            ConnectionError::UserLoggedIn => "USER_LOGGED_IN",
            ConnectionError::NetworkErrors => "NETWORK_ERRORS",
            ConnectionError::InternalError => "INTERNAL_ERROR",
        }
    }
}

/// The CloudHSM clusters of the server, as the service needs them.
#[async_trait]
pub trait HsmClusters: Send + Sync + 'static {
    /// Describes a cluster of `namespace`, `None` if it has none with that id.
    async fn cluster(
        &self,
        namespace: &Namespace,
        cluster_id: &str,
    ) -> Result<Option<ClusterInfo>, Error>;

    /// The cluster certificate of `cluster_id` (the one clusters created from its backups share),
    /// also after the cluster was deleted, from a backup taken of it: moving a key store to a related
    /// cluster is how it survives the loss of its own. `None` when there is neither.
    async fn cluster_certificate(
        &self,
        namespace: &Namespace,
        cluster_id: &str,
    ) -> Result<Option<String>, Error>;

    /// Opens the cluster's active HSMs for store `custom_key_store_id`, logs kmsuser in on each with
    /// the first of `passwords` it accepts (the store's current password, then the pending one of a
    /// rotation that did not finish; `INVALID_CREDENTIALS` when an HSM accepts none), and checks that
    /// each HSM's cluster certificate chains to `trust_anchor_pem` (`NETWORK_ERRORS` when one does
    /// not).
    async fn connect(
        &self,
        namespace: &Namespace,
        cluster_id: &str,
        custom_key_store_id: &str,
        trust_anchor_pem: &str,
        passwords: Vec<Zeroizing<String>>,
    ) -> Result<Arc<dyn ConnectedCluster>, ConnectionError>;

    /// Brings in, through the store connection to `cluster_id` that was just made, the cluster's HSMs
    /// still waiting for their users and keys (created while no store was connected to the cluster).
    /// Returns the ids of the HSMs that joined; none when none was waiting.
    async fn admit_waiting_hsms(
        &self,
        namespace: &Namespace,
        cluster_id: &str,
    ) -> Result<Vec<String>, Error>;
}

/// A change of a custom key store's connection that no request made directly (the end of a
/// connection attempt, or a connection the service dropped), for the audit trail's service events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionChange {
    /// The store's account and Region.
    pub namespace: Namespace,
    /// `CustomKeyStoreId`.
    pub custom_key_store_id: String,
    /// `CustomKeyStoreName`.
    pub name: String,
    /// `CloudHsmClusterId`.
    pub cluster_id: String,
    /// The new `ConnectionState`: CONNECTED, FAILED or DISCONNECTED.
    pub connection_state: &'static str,
    /// The `ConnectionErrorCode` of a FAILED store; for a DISCONNECTED one, why it was dropped.
    pub connection_error: Option<&'static str>,
}

/// The service's custom key store state: records, clusters, and the connections of this process.
#[derive(Default)]
pub(crate) struct CustomKeyStores {
    pub(crate) records: Option<Arc<dyn KeyStoreStore>>,
    pub(crate) clusters: Option<Arc<dyn HsmClusters>>,
    connections: Arc<Connections>,
    /// Which store each key is in, and the calls to the clusters (see `crate::hsm_path`).
    pub(crate) backing_stores: crate::hsm_path::BackingStores,
    pub(crate) hsm_calls: crate::hsm_path::HsmCalls,
}

impl CustomKeyStores {
    pub(crate) fn connected(&self, id: &str) -> Option<Arc<dyn ConnectedCluster>> {
        self.connections.connected(id)
    }
}

/// The connections this process holds and the connection attempts under way.
struct Connections {
    connected: Mutex<HashMap<String, Arc<dyn ConnectedCluster>>>,
    /// The attempt under way for each CONNECTING store, by number; a disconnect forgets it, which
    /// tells the attempt to discard its outcome.
    attempts: Mutex<HashMap<String, u64>>,
    next_attempt: AtomicU64,
    /// Held while a store's connection state is read and changed.
    state: tokio::sync::Mutex<()>,
    /// One lock per store, held by whoever is logging in to its cluster, so that a new attempt does
    /// not race an abandoned one for the HSMs' login state.
    establishing: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Counts ended attempts, so that callers can wait for one to end.
    settled: tokio::sync::watch::Sender<u64>,
}

impl Default for Connections {
    fn default() -> Connections {
        Connections {
            connected: Mutex::default(),
            attempts: Mutex::default(),
            next_attempt: AtomicU64::default(),
            state: tokio::sync::Mutex::default(),
            establishing: Mutex::default(),
            settled: tokio::sync::watch::channel(0).0,
        }
    }
}

impl Connections {
    fn connected(&self, id: &str) -> Option<Arc<dyn ConnectedCluster>> {
        lock(&self.connected).get(id).cloned()
    }

    /// Registers a new attempt for store `id` and returns its number.
    fn begin(&self, id: &str) -> u64 {
        let number = self.next_attempt.fetch_add(1, Ordering::Relaxed);
        lock(&self.attempts).insert(id.to_owned(), number);
        number
    }

    fn in_flight(&self, id: &str) -> bool {
        lock(&self.attempts).contains_key(id)
    }

    /// Whether attempt `number` is still wanted: false once the store was disconnected since.
    fn is_current(&self, id: &str, number: u64) -> bool {
        lock(&self.attempts).get(id) == Some(&number)
    }

    fn end_attempt(&self, id: &str) {
        lock(&self.attempts).remove(id);
    }

    fn establishing(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        lock(&self.establishing)
            .entry(id.to_owned())
            .or_default()
            .clone()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The wire spellings of `ConnectionState`.
pub mod state {
    /// Connected.
    pub const CONNECTED: &str = "CONNECTED";
    /// Never connected, or disconnected.
    pub const DISCONNECTED: &str = "DISCONNECTED";
    /// A connection attempt failed.
    pub const FAILED: &str = "FAILED";
    /// A connection attempt is under way.
    pub const CONNECTING: &str = "CONNECTING";
    /// Disconnecting.
    pub const DISCONNECTING: &str = "DISCONNECTING";
}

/// `CreateCustomKeyStore`'s parameters.
#[derive(Debug, Default)]
pub struct CreateCustomKeyStoreRequest {
    /// `CustomKeyStoreName`.
    pub name: String,
    /// `CloudHsmClusterId`.
    pub cluster_id: Option<String>,
    /// `TrustAnchorCertificate`.
    pub trust_anchor_pem: Option<String>,
    /// `KeyStorePassword`.
    pub key_store_password: Option<Zeroizing<String>>,
    /// `CustomKeyStoreType`.
    pub store_type: Option<String>,
}

/// `UpdateCustomKeyStore`'s parameters.
#[derive(Debug, Default)]
pub struct UpdateCustomKeyStoreRequest {
    /// `CustomKeyStoreId`.
    pub id: String,
    /// `NewCustomKeyStoreName`.
    pub new_name: Option<String>,
    /// `KeyStorePassword`.
    pub key_store_password: Option<Zeroizing<String>>,
    /// `CloudHsmClusterId`.
    pub cluster_id: Option<String>,
}

/// One entry of `DescribeCustomKeyStores`.
#[derive(Debug, Clone)]
pub struct CustomKeyStoreInfo {
    /// `CustomKeyStoreId`.
    pub id: String,
    /// `CustomKeyStoreName`.
    pub name: String,
    /// `CloudHsmClusterId`.
    pub cluster_id: String,
    /// `TrustAnchorCertificate`.
    pub trust_anchor_pem: String,
    /// `ConnectionState`.
    pub connection_state: String,
    /// `ConnectionErrorCode`, when FAILED.
    pub connection_error: Option<String>,
    /// `CreationDate`.
    pub created: strongroom_types::Timestamp,
}

fn info(r: &CustomKeyStoreRecord) -> CustomKeyStoreInfo {
    CustomKeyStoreInfo {
        id: r.custom_key_store_id.clone(),
        name: r.name.clone(),
        cluster_id: r.cluster_id.clone(),
        trust_anchor_pem: r.trust_anchor_pem.clone(),
        connection_state: r.connection_state.clone(),
        connection_error: r.connection_error.clone(),
        created: r.created,
    }
}

fn not_found(id: &str) -> Error {
    Error::CustomKeyStoreNotFound(format!("Custom key store '{id}' does not exist."))
}

fn check_password(password: &str) -> Result<(), Error> {
    let n = password.chars().count();
    if !(7..=32).contains(&n) {
        return Err(Error::Validation(
            "1 validation error detected: Value at 'keyStorePassword' failed to satisfy constraint: \
             Member must have length between 7 and 32"
                .to_owned(),
        ));
    }
    Ok(())
}

fn same_pem(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.split_whitespace().collect::<String>();
    norm(a) == norm(b)
}

fn wrap_context(id: &str) -> Vec<u8> {
    format!("strongroom:custom-key-store:{id}:kmsuser").into_bytes()
}

/// A new random password of 32 letters and digits.
fn random_password() -> Zeroizing<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = Zeroizing::new(String::with_capacity(32));
    while out.len() < 32 {
        for byte in strongroom_keystore::random_bytes(64) {
            // 248 = 4 * 62: rejection sampling keeps the choice uniform.
            if byte < 248 && out.len() < 32 {
                out.push(char::from(ALPHABET[usize::from(byte) % ALPHABET.len()]));
            }
        }
    }
    out
}

impl Kms {
    /// Lets the service run custom key stores over `records` and `clusters`.
    pub fn with_custom_key_stores(
        mut self,
        records: Arc<dyn KeyStoreStore>,
        clusters: Arc<dyn HsmClusters>,
    ) -> Kms {
        self.custom_key_stores.records = Some(records);
        self.custom_key_stores.clusters = Some(clusters);
        self
    }

    fn cks_records(&self) -> Result<&Arc<dyn KeyStoreStore>, Error> {
        self.custom_key_stores.records.as_ref().ok_or_else(|| {
            Error::UnsupportedOperation(
                "Custom key stores are not configured on this server.".to_owned(),
            )
        })
    }

    async fn cks_cluster(
        &self,
        namespace: &Namespace,
        cluster_id: &str,
    ) -> Result<Option<ClusterInfo>, Error> {
        match &self.custom_key_stores.clusters {
            Some(clusters) => clusters.cluster(namespace, cluster_id).await,
            None => Ok(None),
        }
    }

    pub(crate) async fn cks_record(
        &self,
        namespace: &Namespace,
        id: &str,
    ) -> Result<CustomKeyStoreRecord, Error> {
        self.cks_records()?
            .key_store(namespace, id)
            .await?
            .ok_or_else(|| not_found(id))
    }

    fn unwrap_password(&self, record: &CustomKeyStoreRecord) -> Result<Zeroizing<String>, Error> {
        unwrap_password(self.root_key.as_ref(), record)
    }

    /// What a background connection attempt needs, detached from `self`.
    fn connector(&self) -> Result<Connector, Error> {
        let records = self.cks_records()?.clone();
        let clusters = self.custom_key_stores.clusters.clone().ok_or_else(|| {
            Error::UnsupportedOperation(
                "Custom key stores are not configured on this server.".to_owned(),
            )
        })?;
        Ok(Connector {
            records,
            clusters,
            root_key: self.root_key.clone(),
            events: self.events.clone(),
            connections: self.custom_key_stores.connections.clone(),
        })
    }

    /// Checks a cluster meets the prerequisites of Create and Update, and that no other store of
    /// the namespace uses it (or a related cluster).
    async fn check_cluster(
        &self,
        namespace: &Namespace,
        cluster_id: &str,
        others: &[CustomKeyStoreRecord],
    ) -> Result<ClusterInfo, Error> {
        let cluster = self
            .cks_cluster(namespace, cluster_id)
            .await?
            .ok_or_else(|| {
                Error::CloudHsmClusterNotFound(format!(
                    "AWS CloudHSM cluster '{cluster_id}' does not exist in this account and Region."
                ))
            })?;
        for other in others {
            let related = match (
                &cluster.cluster_certificate_pem,
                other.cluster_id == cluster_id,
            ) {
                (_, true) => true,
                (Some(mine), false) => self
                    .cks_cluster(namespace, &other.cluster_id)
                    .await?
                    .and_then(|c| c.cluster_certificate_pem)
                    .is_some_and(|theirs| same_pem(mine, &theirs)),
                (None, false) => false,
            };
            if related {
                return Err(Error::CloudHsmClusterInUse(format!(
                    "AWS CloudHSM cluster '{cluster_id}' (or a related cluster) is already associated with \
                     custom key store '{}'.",
                    other.custom_key_store_id
                )));
            }
        }
        if !cluster.active {
            return Err(Error::CloudHsmClusterNotActive(format!(
                "AWS CloudHSM cluster '{cluster_id}' is not active."
            )));
        }
        if cluster.active_hsms() < 2 || cluster.active_zones() < 2 {
            return Err(Error::CloudHsmClusterInvalidConfiguration(format!(
                "AWS CloudHSM cluster '{cluster_id}' must contain at least two active HSMs in different \
                 Availability Zones."
            )));
        }
        Ok(cluster)
    }

    /// `CreateCustomKeyStore`: records a new DISCONNECTED store; returns its id.
    pub async fn create_custom_key_store(
        &self,
        caller: &Caller,
        req: CreateCustomKeyStoreRequest,
    ) -> Result<String, Error> {
        self.authorize_account(caller, "kms:CreateCustomKeyStore")?;
        let records = self.cks_records()?.clone();
        match req.store_type.as_deref() {
            None | Some("AWS_CLOUDHSM") => {}
            Some(other) => {
                return Err(Error::UnsupportedOperation(format!(
                    "CustomKeyStoreType {other} is not supported by this server; use AWS_CLOUDHSM."
                )));
            }
        }
        let missing = |name: &str| {
            Error::Validation(format!(
                "{name} is required for a custom key store of type AWS_CLOUDHSM."
            ))
        };
        let cluster_id = req.cluster_id.ok_or_else(|| missing("CloudHsmClusterId"))?;
        let trust_anchor = req
            .trust_anchor_pem
            .ok_or_else(|| missing("TrustAnchorCertificate"))?;
        let password = req
            .key_store_password
            .ok_or_else(|| missing("KeyStorePassword"))?;
        check_password(&password)?;
        let namespace = &caller.namespace;
        let _writes = self.writes.lock().await;
        let existing = records.list_key_stores(namespace).await?;
        if let Some(same) = existing.iter().find(|r| r.name == req.name) {
            // An identical retry of a DISCONNECTED store returns the existing id.
            if same.cluster_id == cluster_id
                && same.connection_state == state::DISCONNECTED
                && same_pem(&same.trust_anchor_pem, &trust_anchor)
                && self.unwrap_password(same)?.as_str() == password.as_str()
            {
                return Ok(same.custom_key_store_id.clone());
            }
            return Err(Error::CustomKeyStoreNameInUse(format!(
                "Custom key store name '{}' is already in use in this account and Region.",
                req.name
            )));
        }
        let cluster = self
            .check_cluster(namespace, &cluster_id, &existing)
            .await?;
        let matches = cluster
            .trust_anchor_pem
            .as_deref()
            .is_some_and(|anchor| same_pem(anchor, &trust_anchor));
        if !matches {
            return Err(Error::IncorrectTrustAnchor(format!(
                "The trust anchor certificate does not match the trust anchor of AWS CloudHSM cluster \
                 '{cluster_id}'."
            )));
        }
        if existing.len() >= MAX_CUSTOM_KEY_STORES {
            return Err(Error::LimitExceeded(format!(
                "An account can have at most {MAX_CUSTOM_KEY_STORES} custom key stores in a Region."
            )));
        }
        let hex: String = strongroom_keystore::random_bytes(9)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let id = format!("cks-{}", &hex[..17]);
        let record = CustomKeyStoreRecord {
            wrapped_password: self
                .root_key
                .wrap(&wrap_context(&id), password.as_bytes())?,
            wrapped_pending_password: None,
            custom_key_store_id: id.clone(),
            namespace: namespace.clone(),
            name: req.name,
            cluster_id,
            trust_anchor_pem: trust_anchor,
            connection_state: state::DISCONNECTED.to_owned(),
            connection_error: None,
            created: self.clock.now(),
        };
        match records.insert_key_store(&record).await {
            Ok(()) => Ok(id),
            Err(StoreError::AlreadyExists(_)) => Err(Error::CustomKeyStoreNameInUse(format!(
                "Custom key store name '{}' is already in use in this account and Region.",
                record.name
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// `DescribeCustomKeyStores`: by id, by name, or all, paginated.
    pub async fn describe_custom_key_stores(
        &self,
        caller: &Caller,
        id: Option<&str>,
        name: Option<&str>,
        limit: Option<i64>,
        marker: Option<&str>,
    ) -> Result<Page<CustomKeyStoreInfo>, Error> {
        self.authorize_account(caller, "kms:DescribeCustomKeyStores")?;
        if id.is_some() && name.is_some() {
            return Err(Error::Validation(
                "Specify either CustomKeyStoreId or CustomKeyStoreName, not both.".to_owned(),
            ));
        }
        let limit = pagination::limit(limit, 1000, 1000)?;
        let after = marker.map(pagination::decode).transpose()?;
        let all = match &self.custom_key_stores.records {
            Some(records) => records.list_key_stores(&caller.namespace).await?,
            None => Vec::new(),
        };
        let selected: Vec<CustomKeyStoreInfo> = all
            .iter()
            .filter(|r| id.is_none_or(|id| r.custom_key_store_id == id))
            .filter(|r| name.is_none_or(|name| r.name == name))
            .map(info)
            .collect();
        if selected.is_empty()
            && let Some(wanted) = id.or(name)
        {
            return Err(not_found(wanted));
        }
        let rest: Vec<CustomKeyStoreInfo> = selected
            .into_iter()
            .filter(|s| after.as_deref().is_none_or(|after| s.id.as_str() > after))
            .take(limit + 1)
            .collect();
        Ok(pagination::page(rest, limit, |s| s.id.clone()))
    }

    /// `ConnectCustomKeyStore`: starts connecting the store in the background and returns; the store is
    /// CONNECTING until the attempt ends CONNECTED or FAILED. A CONNECTED or CONNECTING store is left
    /// as it is; a FAILED one must be disconnected first.
    pub async fn connect_custom_key_store(&self, caller: &Caller, id: &str) -> Result<(), Error> {
        self.authorize_account(caller, "kms:ConnectCustomKeyStore")?;
        let namespace = &caller.namespace;
        let connector = self.connector()?;
        let _writes = self.writes.lock().await;
        let _state = connector.connections.state.lock().await;
        let mut record = self.cks_record(namespace, id).await?;
        match record.connection_state.as_str() {
            // A store recorded CONNECTED whose connection this process does not hold (the server
            // restarted since) is being connected again since start-up, or on first use.
            state::CONNECTED => return Ok(()),
            state::CONNECTING if connector.connections.in_flight(id) => return Ok(()),
            // CONNECTING without an attempt: the server stopped during one; start another.
            state::CONNECTING | state::DISCONNECTED => {}
            other => {
                return Err(Error::CustomKeyStoreInvalidState(format!(
                    "Custom key store '{id}' is {other}; disconnect it before connecting it again."
                )));
            }
        }
        // As in AWS, a cluster that is not active is refused at once and the store stays as it is.
        if let Some(cluster) = self.cks_cluster(namespace, &record.cluster_id).await?
            && !cluster.active
        {
            return Err(Error::CloudHsmClusterNotActive(format!(
                "AWS CloudHSM cluster '{}' is not active.",
                record.cluster_id
            )));
        }
        record.connection_state = state::CONNECTING.to_owned();
        record.connection_error = None;
        connector.records.put_key_store(&record).await?;
        let number = connector.connections.begin(id);
        tokio::spawn(
            connector
                .clone()
                .attempt(namespace.clone(), id.to_owned(), number),
        );
        Ok(())
    }

    /// Waits until store `id` is no longer CONNECTING (its connection attempt ended) and describes it;
    /// for callers inside the server that need the outcome of `ConnectCustomKeyStore`.
    pub async fn wait_for_custom_key_store_connection(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<CustomKeyStoreInfo, Error> {
        let connections = &self.custom_key_stores.connections;
        let mut ended = connections.settled.subscribe();
        loop {
            let record = self.cks_record(&caller.namespace, id).await?;
            if record.connection_state != state::CONNECTING || !connections.in_flight(id) {
                return Ok(info(&record));
            }
            // The sender lives as long as `self`, so this only returns when an attempt ends.
            let _ = ended.changed().await;
        }
    }

    /// Resumes, at start-up, the connection of every custom key store of every namespace recorded
    /// CONNECTED or CONNECTING, so that connections survive a restart (graceful or not) without
    /// anyone calling ConnectCustomKeyStore; returns how many attempts it started.
    ///
    /// It returns once the attempts are started: each runs in the background as ConnectCustomKeyStore's
    /// does (kmsuser logs in on every HSM, the certificates are checked, the password rotates) and
    /// records CONNECTED or FAILED with its `ConnectionErrorCode`, reported as a service event.
    /// Requests that need a CONNECTED store meanwhile wait for it; DISCONNECTED and FAILED stores are
    /// left alone. Without custom key stores configured there is nothing to resume.
    pub async fn resume_custom_key_store_connections(&self) -> Result<usize, Error> {
        let Ok(connector) = self.connector() else {
            return Ok(0);
        };
        let mut started = 0;
        for record in connector.records.all_key_stores().await? {
            let (namespace, id) = (record.namespace, record.custom_key_store_id);
            match record.connection_state.as_str() {
                state::CONNECTED => {
                    tracing::info!(
                        custom_key_store_id = %id,
                        "connecting the custom key store again: it was CONNECTED before the restart"
                    );
                    let connector = connector.clone();
                    tokio::spawn(async move {
                        if let Err(e) = connector.restore(&namespace, &id).await {
                            tracing::error!(
                                custom_key_store_id = %id,
                                "failed to connect the custom key store again: {e}"
                            );
                        }
                    });
                }
                state::CONNECTING => {
                    let _state = connector.connections.state.lock().await;
                    // Checked again under the lock: a request may have changed the store since.
                    let current = connector.records.key_store(&namespace, &id).await?;
                    if current.is_none_or(|r| r.connection_state != state::CONNECTING)
                        || connector.connections.in_flight(&id)
                    {
                        continue;
                    }
                    tracing::info!(
                        custom_key_store_id = %id,
                        "connecting the custom key store: the server stopped during its connection attempt"
                    );
                    let number = connector.connections.begin(&id);
                    tokio::spawn(connector.clone().attempt(namespace, id, number));
                }
                _ => continue,
            }
            started += 1;
        }
        Ok(started)
    }

    /// The live connection of store `id`; a store recorded CONNECTED whose connection this process
    /// does not hold (the server restarted since) is connected again first, waiting for it.
    pub(crate) async fn live_cluster(
        &self,
        namespace: &Namespace,
        id: &str,
    ) -> Result<Option<Arc<dyn ConnectedCluster>>, Error> {
        if let Some(cluster) = self.custom_key_stores.connected(id) {
            return Ok(Some(cluster));
        }
        let Ok(connector) = self.connector() else {
            return Ok(None);
        };
        connector.restore(namespace, id).await?;
        Ok(self.custom_key_stores.connected(id))
    }

    /// `DisconnectCustomKeyStore`: logs kmsuser out, or abandons the connection attempt under way; the
    /// store's keys become unavailable.
    pub async fn disconnect_custom_key_store(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<(), Error> {
        self.authorize_account(caller, "kms:DisconnectCustomKeyStore")?;
        let connector = self.connector()?;
        let _writes = self.writes.lock().await;
        let _state = connector.connections.state.lock().await;
        let mut record = self.cks_record(&caller.namespace, id).await?;
        if matches!(
            record.connection_state.as_str(),
            state::DISCONNECTED | state::DISCONNECTING
        ) {
            return Err(Error::CustomKeyStoreInvalidState(format!(
                "Custom key store '{id}' is {}.",
                record.connection_state
            )));
        }
        connector.connections.end_attempt(id);
        let connected = lock(&connector.connections.connected).remove(id);
        if let Some(connected) = connected {
            let _ = tokio::task::spawn_blocking(move || connected.logout()).await;
        }
        record.connection_state = state::DISCONNECTED.to_owned();
        record.connection_error = None;
        connector.records.put_key_store(&record).await?;
        Ok(())
    }

    /// `UpdateCustomKeyStore`: the name at any time; the password and cluster only when DISCONNECTED.
    pub async fn update_custom_key_store(
        &self,
        caller: &Caller,
        req: UpdateCustomKeyStoreRequest,
    ) -> Result<(), Error> {
        self.authorize_account(caller, "kms:UpdateCustomKeyStore")?;
        let namespace = &caller.namespace;
        let records = self.cks_records()?.clone();
        let _writes = self.writes.lock().await;
        let _state = self.custom_key_stores.connections.state.lock().await;
        let mut record = self.cks_record(namespace, &req.id).await?;
        if (req.key_store_password.is_some() || req.cluster_id.is_some())
            && record.connection_state != state::DISCONNECTED
        {
            return Err(Error::CustomKeyStoreInvalidState(format!(
                "Custom key store '{}' must be DISCONNECTED to change its password or cluster; it is {}.",
                req.id, record.connection_state
            )));
        }
        let all = records.list_key_stores(namespace).await?;
        if let Some(name) = req.new_name {
            if all
                .iter()
                .any(|r| r.name == name && r.custom_key_store_id != req.id)
            {
                return Err(Error::CustomKeyStoreNameInUse(format!(
                    "Custom key store name '{name}' is already in use in this account and Region."
                )));
            }
            record.name = name;
        }
        if let Some(password) = req.key_store_password {
            check_password(&password)?;
            record.wrapped_password = self
                .root_key
                .wrap(&wrap_context(&req.id), password.as_bytes())?;
            // The operator says what kmsuser's password is now (after resetting it by hand): a
            // rotation left unfinished no longer describes the HSMs.
            record.wrapped_pending_password = None;
        }
        if let Some(cluster_id) = req.cluster_id
            && cluster_id != record.cluster_id
        {
            let others: Vec<CustomKeyStoreRecord> = all
                .into_iter()
                .filter(|r| r.custom_key_store_id != req.id)
                .collect();
            let new = self.check_cluster(namespace, &cluster_id, &others).await?;
            // The store's cluster may be gone (the reason to move); its backups still say what
            // certificate its lineage has.
            let old = match &self.custom_key_stores.clusters {
                Some(clusters) => {
                    clusters
                        .cluster_certificate(namespace, &record.cluster_id)
                        .await?
                }
                None => None,
            };
            let related = match (new.cluster_certificate_pem.as_deref(), old) {
                (Some(new), Some(old)) => same_pem(new, &old),
                _ => false,
            };
            if !related {
                return Err(Error::CloudHsmClusterNotRelated(format!(
                    "AWS CloudHSM cluster '{cluster_id}' is not related to cluster '{}'.",
                    record.cluster_id
                )));
            }
            record.cluster_id = cluster_id;
        }
        match records.put_key_store(&record).await {
            Err(StoreError::AlreadyExists(_)) => Err(Error::CustomKeyStoreNameInUse(format!(
                "Custom key store name '{}' is already in use in this account and Region.",
                record.name
            ))),
            other => Ok(other?),
        }
    }

    /// `DeleteCustomKeyStore`: only a DISCONNECTED store without keys.
    pub async fn delete_custom_key_store(&self, caller: &Caller, id: &str) -> Result<(), Error> {
        self.authorize_account(caller, "kms:DeleteCustomKeyStore")?;
        let namespace = &caller.namespace;
        let records = self.cks_records()?.clone();
        let _writes = self.writes.lock().await;
        let _state = self.custom_key_stores.connections.state.lock().await;
        let record = self.cks_record(namespace, id).await?;
        if record.connection_state != state::DISCONNECTED {
            return Err(Error::CustomKeyStoreInvalidState(format!(
                "Custom key store '{id}' must be DISCONNECTED to be deleted; it is {}.",
                record.connection_state
            )));
        }
        if records.count_key_store_keys(namespace, id).await? > 0 {
            return Err(Error::CustomKeyStoreHasCmks(format!(
                "Custom key store '{id}' contains KMS keys; schedule their deletion and wait for it \
                 before deleting the store."
            )));
        }
        records.delete_key_store(namespace, id).await?;
        Ok(())
    }
}

fn unwrap_password(
    root_key: &dyn RootKey,
    record: &CustomKeyStoreRecord,
) -> Result<Zeroizing<String>, Error> {
    unwrap_wrapped(root_key, record, &record.wrapped_password)
}

/// Unwraps one of a store's passwords (the current or the pending one, wrapped alike).
fn unwrap_wrapped(
    root_key: &dyn RootKey,
    record: &CustomKeyStoreRecord,
    wrapped: &[u8],
) -> Result<Zeroizing<String>, Error> {
    let bytes = root_key.unwrap(&wrap_context(&record.custom_key_store_id), wrapped)?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| Error::internal(HsmError("stored password is not UTF-8".to_owned())))?;
    Ok(Zeroizing::new(text.to_owned()))
}

/// A connection, logged in on every HSM with one of the store's recorded passwords.
type Established = Result<Arc<dyn ConnectedCluster>, ConnectionError>;

/// Connects stores, in the background or for a request, holding only shared parts of the service.
#[derive(Clone)]
struct Connector {
    records: Arc<dyn KeyStoreStore>,
    clusters: Arc<dyn HsmClusters>,
    root_key: Arc<dyn RootKey>,
    events: Arc<dyn ServiceEvents>,
    connections: Arc<Connections>,
}

impl Connector {
    /// Runs attempt `number` to connect store `id`, in the background, and records its outcome unless
    /// the store was disconnected meanwhile.
    async fn attempt(self, namespace: Namespace, id: String, number: u64) {
        let gate = self.connections.establishing(&id);
        let _one_at_a_time = gate.lock().await;
        let established = self.establish(&namespace, &id).await;
        let _state = self.connections.state.lock().await;
        if !self.connections.is_current(&id, number) {
            tracing::info!(
                custom_key_store_id = %id,
                "the store was disconnected while connecting: the connection attempt is abandoned"
            );
            if let Ok(connected) = established {
                let _ = tokio::task::spawn_blocking(move || connected.logout()).await;
            }
            return;
        }
        if let Err(e) = self.commit(&namespace, &id, established).await {
            tracing::error!(custom_key_store_id = %id, "failed to record a connection attempt: {e}");
        }
        // Only now, with the outcome recorded, is the attempt over.
        self.connections.end_attempt(&id);
        self.connections.settled.send_modify(|ended| *ended += 1);
    }

    /// Connects a store recorded CONNECTED whose connection this process does not hold (after a
    /// restart), at start-up or for a request that needs it; a failure leaves it FAILED. Whoever comes
    /// second waits for the first and finds the connection made.
    async fn restore(&self, namespace: &Namespace, id: &str) -> Result<(), Error> {
        // Only a CONNECTED store is restored; others must not wait for an attempt under way.
        if !self.recorded_connected(namespace, id).await? {
            return Ok(());
        }
        let gate = self.connections.establishing(id);
        let _one_at_a_time = gate.lock().await;
        if self.connections.connected(id).is_some()
            || !self.recorded_connected(namespace, id).await?
        {
            return Ok(());
        }
        let established = self.establish(namespace, id).await;
        let _state = self.connections.state.lock().await;
        // While kmsuser logged in, the store may have been disconnected (and even set connecting
        // again, by an attempt that waits for `gate`): then this outcome is not wanted. Nothing else
        // records a store CONNECTED without `gate`, so CONNECTED here means nobody touched it.
        if !self.recorded_connected(namespace, id).await? {
            tracing::info!(
                custom_key_store_id = %id,
                "the store was disconnected while connecting again: the connection is discarded"
            );
            if let Ok(connected) = established {
                let _ = tokio::task::spawn_blocking(move || connected.logout()).await;
            }
            return Ok(());
        }
        let result = self.commit(namespace, id, established).await;
        self.connections.settled.send_modify(|ended| *ended += 1);
        result
    }

    async fn recorded_connected(&self, namespace: &Namespace, id: &str) -> Result<bool, Error> {
        Ok(self
            .records
            .key_store(namespace, id)
            .await?
            .is_some_and(|record| record.connection_state == state::CONNECTED))
    }

    /// Checks the cluster and logs kmsuser in on its HSMs with the stored password.
    async fn establish(&self, namespace: &Namespace, id: &str) -> Established {
        let internal = |what: &str, e: &dyn std::fmt::Display| {
            tracing::error!(custom_key_store_id = %id, "failed to {what}: {e}");
            ConnectionError::InternalError
        };
        let record = match self.records.key_store(namespace, id).await {
            Ok(Some(record)) => record,
            Ok(None) => return Err(internal("read the store", &"it is gone")),
            Err(e) => return Err(internal("read the store", &e)),
        };
        let cluster = match self.clusters.cluster(namespace, &record.cluster_id).await {
            Ok(Some(cluster)) => cluster,
            Ok(None) => return Err(ConnectionError::ClusterNotFound),
            Err(e) => return Err(internal("describe the cluster", &e)),
        };
        if !cluster.active {
            return Err(internal("connect", &"the cluster is no longer active"));
        }
        if cluster.active_hsms() == 0 {
            return Err(ConnectionError::InsufficientCloudHsmHsms);
        }
        if !cluster.crypto_users.iter().any(|u| u == KMSUSER) {
            return Err(ConnectionError::UserNotFound);
        }
        let mut passwords = Vec::new();
        match unwrap_password(self.root_key.as_ref(), &record) {
            Ok(password) => passwords.push(password),
            Err(e) => return Err(internal("unwrap the kmsuser password", &e)),
        }
        if let Some(wrapped) = &record.wrapped_pending_password {
            tracing::warn!(
                custom_key_store_id = %id,
                "the last rotation of kmsuser's password did not finish (the server stopped or an HSM \
                 failed during it): each HSM is logged in with the current or the next password, and \
                 the rotation is finished"
            );
            match unwrap_wrapped(self.root_key.as_ref(), &record, wrapped) {
                Ok(password) => passwords.push(password),
                Err(e) => return Err(internal("unwrap the next kmsuser password", &e)),
            }
        }
        self.clusters
            .connect(
                namespace,
                &record.cluster_id,
                id,
                &record.trust_anchor_pem,
                passwords,
            )
            .await
    }

    /// Records an attempt's outcome; on success rotates kmsuser's password first, crash-safely (see
    /// [`Connector::rotate`]). Runs with `Connections::state` held.
    async fn commit(
        &self,
        namespace: &Namespace,
        id: &str,
        established: Established,
    ) -> Result<(), Error> {
        let record = self
            .records
            .key_store(namespace, id)
            .await?
            .ok_or_else(|| not_found(id))?;
        let connected = match established {
            Ok(connected) => connected,
            Err(code) => return self.settle(record, state::FAILED, Some(code)).await,
        };
        let record = match self.rotate(record, &connected).await {
            Ok(record) => record,
            Err((record, e)) => {
                let _ = tokio::task::spawn_blocking(move || connected.logout()).await;
                // Whatever the step that failed, the record keeps every password an HSM may hold.
                return match self
                    .settle(record, state::FAILED, Some(ConnectionError::InternalError))
                    .await
                {
                    Ok(()) => e.map_or(Ok(()), Err),
                    Err(also) => Err(also),
                };
            }
        };
        lock(&self.connections.connected).insert(id.to_owned(), connected);
        // Reported even when the store was recorded CONNECTED before (a connection made again after a
        // restart): the connection is new all the same.
        self.report(&record, state::CONNECTED, None);
        self.admit_waiting_hsms(&record);
        Ok(())
    }

    /// Once a connection is committed (kmsuser's password rotated and the store recorded CONNECTED),
    /// brings in through it the cluster's HSMs that waited for a connected store: CreateHsm brings a
    /// new HSM in at once through a connected store, so those are HSMs created while none was, or while
    /// this connection was being made. In the background: the store serves meanwhile, and uses each
    /// HSM as soon as it has joined.
    fn admit_waiting_hsms(&self, record: &CustomKeyStoreRecord) {
        let clusters = self.clusters.clone();
        let namespace = record.namespace.clone();
        let cluster_id = record.cluster_id.clone();
        let store = record.custom_key_store_id.clone();
        tokio::spawn(async move {
            match clusters.admit_waiting_hsms(&namespace, &cluster_id).await {
                Ok(joined) if joined.is_empty() => {}
                Ok(joined) => tracing::info!(
                    custom_key_store_id = %store,
                    cluster_id = %cluster_id,
                    hsms = %joined.join(", "),
                    "HSMs that waited for a connected key store joined the cluster through it"
                ),
                Err(e) => tracing::warn!(
                    custom_key_store_id = %store,
                    cluster_id = %cluster_id,
                    "the HSMs waiting to join the cluster could not be brought in through the newly \
                     connected key store; `strongroom hsm sync --cluster {cluster_id}` tries again: {e}"
                ),
            }
        });
    }

    /// Rotates kmsuser's password on every HSM of a connection and records the store CONNECTED with
    /// it, so that a crash at any point leaves every HSM with a password the record holds:
    ///
    /// 1. the next password is recorded as the store's pending password, durably, beside the current
    ///    one (a pending password left by an earlier attempt is the next password instead: some HSMs
    ///    may hold it already);
    /// 2. every HSM moves to it, each from the password it logged in with;
    /// 3. it is promoted to current, and the pending password cleared, in the same write that records
    ///    the store CONNECTED.
    ///
    /// When a step fails, nothing is rolled back: the record (returned with the error, which is
    /// `None` when the failure is already logged) keeps the pending password, and the next connection
    /// attempt logs each HSM in with whichever of the two it holds and finishes the move.
    async fn rotate(
        &self,
        mut record: CustomKeyStoreRecord,
        connected: &Arc<dyn ConnectedCluster>,
    ) -> Result<CustomKeyStoreRecord, (CustomKeyStoreRecord, Option<Error>)> {
        let id = record.custom_key_store_id.clone();
        let next = match &record.wrapped_pending_password {
            Some(wrapped) => match unwrap_wrapped(self.root_key.as_ref(), &record, wrapped) {
                Ok(next) => next,
                Err(e) => return Err((record, Some(e))),
            },
            None => {
                let next = random_password();
                let wrapped = match self.root_key.wrap(&wrap_context(&id), next.as_bytes()) {
                    Ok(wrapped) => wrapped,
                    Err(e) => return Err((record, Some(e.into()))),
                };
                let mut ahead = record.clone();
                ahead.wrapped_pending_password = Some(wrapped);
                if let Err(e) = self.records.put_key_store(&ahead).await {
                    // Not recorded, so no HSM was changed: the record stays as it was.
                    return Err((record, Some(e.into())));
                }
                record = ahead;
                next
            }
        };
        let moved = {
            let connected = connected.clone();
            tokio::task::spawn_blocking(move || connected.move_password(&next)).await
        };
        if let Err(e) = moved
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.0))
        {
            tracing::error!(
                custom_key_store_id = %id,
                "failed to rotate the kmsuser password on every HSM; each HSM holds the current or the \
                 next password, both recorded, and the next connection attempt finishes the rotation: {e}"
            );
            return Err((record, None));
        }
        let mut promoted = record.clone();
        promoted.wrapped_password = match promoted.wrapped_pending_password.take() {
            Some(wrapped) => wrapped,
            None => {
                return Err((
                    record,
                    Some(Error::internal(HsmError("no pending password".to_owned()))),
                ));
            }
        };
        promoted.connection_state = state::CONNECTED.to_owned();
        promoted.connection_error = None;
        match self.records.put_key_store(&promoted).await {
            Ok(()) => Ok(promoted),
            // Every HSM holds the pending password, which the record still has.
            Err(e) => Err((record, Some(e.into()))),
        }
    }

    /// Disconnects a CONNECTED store on the service's own initiative, because of `reason`, and reports
    /// it; its keys become unavailable, as after DisconnectCustomKeyStore.
    async fn drop_connection(
        &self,
        namespace: &Namespace,
        id: &str,
        reason: ConnectionError,
    ) -> Result<(), Error> {
        let _state = self.connections.state.lock().await;
        let Some(mut record) = self.records.key_store(namespace, id).await? else {
            return Ok(());
        };
        if record.connection_state != state::CONNECTED {
            return Ok(());
        }
        tracing::warn!(
            custom_key_store_id = id,
            reason = reason.as_str(),
            "disconnecting the custom key store"
        );
        let connected = lock(&self.connections.connected).remove(id);
        if let Some(connected) = connected {
            let _ = tokio::task::spawn_blocking(move || connected.logout()).await;
        }
        record.connection_state = state::DISCONNECTED.to_owned();
        record.connection_error = None;
        self.records.put_key_store(&record).await?;
        self.report(&record, state::DISCONNECTED, Some(reason.as_str()));
        Ok(())
    }

    /// Records a store in `new_state` and reports the change.
    async fn settle(
        &self,
        mut record: CustomKeyStoreRecord,
        new_state: &'static str,
        error: Option<ConnectionError>,
    ) -> Result<(), Error> {
        record.connection_state = new_state.to_owned();
        record.connection_error = error.map(|e| e.as_str().to_owned());
        self.records.put_key_store(&record).await?;
        self.report(&record, new_state, error.map(ConnectionError::as_str));
        Ok(())
    }

    fn report(
        &self,
        record: &CustomKeyStoreRecord,
        new_state: &'static str,
        error: Option<&'static str>,
    ) {
        self.events.custom_key_store_connection(&ConnectionChange {
            namespace: record.namespace.clone(),
            custom_key_store_id: record.custom_key_store_id.clone(),
            name: record.name.clone(),
            cluster_id: record.cluster_id.clone(),
            connection_state: new_state,
            connection_error: error,
        });
    }
}

impl Kms {
    /// Decides a request to an API served beside KMS whose actions no resource policy governs (the
    /// CloudHSM API, which custom key stores stand on) by the caller's identity policies alone, as AWS
    /// does: `action` (for example `cloudhsm:CreateHsm`) on `resource` (a cluster or backup ARN, or
    /// `*`). Account roots, and callers IAM does not know (the administrator and `--dev` keys), may do
    /// everything in their account.
    pub fn authorize_identity_action(
        &self,
        caller: &Caller,
        action: &str,
        resource: &str,
    ) -> Result<(), Error> {
        let Some((identities, principal)) = self
            .identities
            .as_ref()
            .and_then(|ids| ids.principal(&caller.access_key_id).map(|p| (ids, p)))
        else {
            return Ok(());
        };
        let now = self.clock.now();
        let mut context = strongroom_policy::MapContext::new();
        context.insert("aws:CurrentTime", [strongroom_iam::iso8601(now)]);
        context.insert("aws:EpochTime", [now.as_secs().to_string()]);
        context.insert("aws:SecureTransport", ["false"]);
        context.insert(
            "aws:RequestedRegion",
            [caller.namespace.region.as_str().to_owned()],
        );
        if let Some(ip) = caller.source_ip {
            context.insert("aws:SourceIp", [ip.to_string()]);
        }
        if let Some(vpc) = &caller.source_vpc {
            context.insert("aws:SourceVpc", [vpc.clone()]);
        }
        if let Some(vpce) = &caller.source_vpce {
            context.insert("aws:SourceVpce", [vpce.clone()]);
        }
        let outcome = identities.evaluate_identity(&principal, action, resource, &context);
        let reason = match (outcome.explicit_deny, outcome.allow) {
            (true, _) => "with an explicit deny in an identity-based policy".to_owned(),
            (false, true) => return Ok(()),
            (false, false) => {
                format!("because no identity-based policy allows the {action} action")
            }
        };
        // AWS names the resource in the refusal only when the action has one.
        let on = match resource {
            "*" => String::new(),
            resource => format!(" on resource: {resource}"),
        };
        Err(Error::AccessDenied(format!(
            "User: {} is not authorized to perform: {action}{on} {reason}",
            caller.arn
        )))
    }
}

/// Where a key of a custom key store lives, for DescribeKey.
#[derive(Debug, Clone)]
pub struct KeyStoreLocation {
    /// `CustomKeyStoreId`.
    pub custom_key_store_id: String,
    /// `CloudHsmClusterId`.
    pub cluster_id: String,
}

/// The key id of a backing key's all-zero material id: a custom key store key has one backing key.
pub(crate) const BACKING_MATERIAL_ID: strongroom_types::KeyMaterialId =
    strongroom_types::KeyMaterialId([0; 32]);

fn unavailable(record: &strongroom_types::KeyRecord) -> Error {
    Error::InvalidState(format!("{} is unavailable.", record.arn()))
}

impl Kms {
    /// Generates the backing key of a new key in store `id` and records where the key lives;
    /// the store must be CONNECTED and its cluster have active HSMs in two zones.
    pub(crate) async fn create_backing_key(
        &self,
        record: &strongroom_types::KeyRecord,
        id: &str,
    ) -> Result<(), Error> {
        let namespace = &record.namespace;
        let store = self.cks_record(namespace, id).await?;
        // A CONNECTED store still being connected again after a restart is waited for.
        let live = match store.connection_state.as_str() {
            state::CONNECTED => self.live_cluster(namespace, id).await?,
            _ => None,
        };
        let connected = match live {
            Some(connected) => connected,
            None => {
                // Read again: connecting again may have just failed.
                let now = self.cks_record(namespace, id).await?.connection_state;
                return Err(Error::CustomKeyStoreInvalidState(format!(
                    "Custom key store '{id}' is not connected; it is {now}."
                )));
            }
        };
        let cluster = self.cks_cluster(namespace, &store.cluster_id).await?;
        if cluster.is_none_or(|c| c.active_hsms() < 2 || c.active_zones() < 2) {
            return Err(Error::CloudHsmClusterInvalidConfiguration(format!(
                "AWS CloudHSM cluster '{}' must contain at least two active HSMs in different \
                 Availability Zones.",
                store.cluster_id
            )));
        }
        let label = record.arn();
        let generated = tokio::task::spawn_blocking(move || connected.generate_key(&label))
            .await
            .map_err(Error::internal)?;
        // As for an external key store the cluster cannot be reached from, CreateKey reports the
        // store's state rather than an internal failure.
        generated.map_err(|e| {
            tracing::warn!(
                custom_key_store_id = id,
                "failed to generate a backing key: {e}"
            );
            Error::CustomKeyStoreInvalidState(format!(
                "KMS cannot create a key in custom key store '{id}': it cannot communicate with \
                 the CloudHSM cluster, or the cluster has too few active HSMs."
            ))
        })?;
        self.cks_records()?
            .insert_key_store_key(namespace, &record.key_id, id)
            .await?;
        Ok(())
    }

    /// Where a key lives, if it is in a custom key store.
    pub async fn key_store_location(
        &self,
        record: &strongroom_types::KeyRecord,
    ) -> Result<Option<KeyStoreLocation>, Error> {
        if record.origin != strongroom_types::Origin::AwsCloudhsm {
            return Ok(None);
        }
        let Some(records) = &self.custom_key_stores.records else {
            return Ok(None);
        };
        let Some(id) = records
            .key_store_of(&record.namespace, &record.key_id)
            .await?
        else {
            return Ok(None);
        };
        let cluster_id = records
            .key_store(&record.namespace, &id)
            .await?
            .map(|s| s.cluster_id)
            .unwrap_or_default();
        Ok(Some(KeyStoreLocation {
            custom_key_store_id: id,
            cluster_id,
        }))
    }

    /// Shows a custom key store key of a store that is not connected as Unavailable (unless it is
    /// pending deletion), as DescribeKey does.
    pub(crate) async fn show_availability(
        &self,
        record: &mut strongroom_types::KeyRecord,
    ) -> Result<(), Error> {
        use strongroom_types::KeyState;
        if record.origin != strongroom_types::Origin::AwsCloudhsm
            || matches!(
                record.state,
                KeyState::PendingDeletion | KeyState::PendingReplicaDeletion
            )
        {
            return Ok(());
        }
        if self.backing_cluster(record).await.is_err() {
            record.state = KeyState::Unavailable;
        }
        Ok(())
    }

    /// The connected cluster holding a key's backing key; `KMSInvalidStateException` ("… is
    /// unavailable.") when its store is not connected.
    pub(crate) async fn backing_cluster(
        &self,
        record: &strongroom_types::KeyRecord,
    ) -> Result<Arc<dyn ConnectedCluster>, Error> {
        let store = self
            .backing_store_id(record)
            .await?
            .ok_or_else(|| unavailable(record))?;
        self.live_cluster(&record.namespace, &store)
            .await?
            .ok_or_else(|| unavailable(record))
    }

    /// Encrypts in the key's cluster under its backing key (labelled with the key ARN).
    pub(crate) async fn hsm_encrypt(
        &self,
        record: &strongroom_types::KeyRecord,
        aad: Vec<u8>,
        plaintext: Zeroizing<Vec<u8>>,
    ) -> Result<(Vec<u8>, Vec<u8>), Error> {
        let cluster = self.backing_cluster(record).await?;
        let label = record.arn();
        let result = self
            .in_cluster(move || cluster.encrypt(&label, &aad, &plaintext))
            .await?;
        match result {
            Ok(value) => Ok(value),
            Err(e) => Err(self.hsm_failure(record, e).await),
        }
    }

    /// Decrypts in the key's cluster; `None` when the ciphertext does not authenticate.
    pub(crate) async fn hsm_decrypt(
        &self,
        record: &strongroom_types::KeyRecord,
        aad: Vec<u8>,
        iv: Vec<u8>,
        ciphertext: Vec<u8>,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, Error> {
        let cluster = self.backing_cluster(record).await?;
        let label = record.arn();
        let result = self
            .in_cluster(move || cluster.decrypt(&label, &aad, &iv, &ciphertext))
            .await?;
        match result {
            Ok(value) => Ok(value),
            Err(e) => Err(self.hsm_failure(record, e).await),
        }
    }

    /// The error of a failed operation in the cluster; when the cluster itself is gone, the store is
    /// disconnected too, since it can never work again as it is.
    async fn hsm_failure(&self, record: &strongroom_types::KeyRecord, e: HsmError) -> Error {
        tracing::warn!(key_id = %record.key_id.as_str(), "custom key store operation failed: {e}");
        if let (Ok(Some(location)), Ok(connector)) =
            (self.key_store_location(record).await, self.connector())
            && let Ok(None) = connector
                .clusters
                .cluster(&record.namespace, &location.cluster_id)
                .await
            && let Err(e) = connector
                .drop_connection(
                    &record.namespace,
                    &location.custom_key_store_id,
                    ConnectionError::ClusterNotFound,
                )
                .await
        {
            tracing::error!(
                custom_key_store_id = %location.custom_key_store_id,
                "failed to disconnect a store whose cluster is gone: {e}"
            );
        }
        Error::InvalidState(format!(
            "{} is unavailable: KMS cannot communicate with your CloudHSM cluster, or the cluster \
             no longer holds the key material.",
            record.arn()
        ))
    }
}

impl Kms {
    /// After a custom key store key is deleted: forgets its store and, when the store is connected,
    /// deletes the backing key from the cluster (best effort, as KMS does).
    pub(crate) async fn forget_backing_key(
        &self,
        record: &strongroom_types::KeyRecord,
    ) -> Result<(), Error> {
        let Some(location) = self.key_store_location(record).await? else {
            return Ok(());
        };
        // A CONNECTED store still being connected again after a restart is waited for.
        if let Some(cluster) = self
            .live_cluster(&record.namespace, &location.custom_key_store_id)
            .await?
        {
            let label = record.arn();
            let _ = tokio::task::spawn_blocking(move || cluster.delete_key(&label)).await;
        } else {
            tracing::warn!(key_arn = %record.arn(), "the custom key store is not connected: the backing key stays in the cluster");
        }
        if let Some(records) = &self.custom_key_stores.records {
            records
                .delete_key_store_key(&record.namespace, &record.key_id)
                .await?;
        }
        self.custom_key_stores
            .backing_stores
            .forget(&record.namespace, &record.key_id);
        Ok(())
    }
}

impl Kms {
    /// Random bytes from the cluster of a CONNECTED store, for GenerateRandom with a CustomKeyStoreId.
    pub(crate) async fn cluster_random(
        &self,
        caller: &Caller,
        id: &str,
        len: usize,
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        self.authorize_account(caller, "kms:GenerateRandom")?;
        let store = match &self.custom_key_stores.records {
            Some(records) => records.key_store(&caller.namespace, id).await?,
            None => None,
        }
        .ok_or_else(|| not_found(id))?;
        let live = match store.connection_state.as_str() {
            state::CONNECTED => self.live_cluster(&caller.namespace, id).await?,
            _ => None,
        };
        let Some(cluster) = live else {
            return Err(Error::CustomKeyStoreInvalidState(format!(
                "Custom key store '{id}' is not connected; it is {}.",
                store.connection_state
            )));
        };
        let bytes = tokio::task::spawn_blocking(move || cluster.random(len))
            .await
            .map_err(Error::internal)?
            .map_err(|e| {
                tracing::warn!(custom_key_store_id = id, "failed to draw random bytes: {e}");
                Error::CustomKeyStoreInvalidState(format!(
                    "KMS cannot communicate with the CloudHSM cluster of custom key store '{id}'."
                ))
            })?;
        Ok(Zeroizing::new(bytes))
    }
}

#[cfg(test)]
mod tests;
