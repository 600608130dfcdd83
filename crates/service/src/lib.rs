//! The key management service: every KMS operation, over storage and key stores.
//!
//! This crate knows nothing of HTTP, JSON or SQL. Each operation is a method of [`Kms`] with one shape:
//! `async fn op(&self, caller: &Caller, req: OpRequest) -> Result<OpResponse, Error>`.
//! Operations are grouped by domain: [`keys`], [`crypto`], [`aliases`], [`tags`], [`rotation`],
//! [`key_policy`].
//!
//! **Invariant:** every write to keys or aliases happens under `Kms::writes`, then updates the in-memory
//! key cache; reads never wait for writes.

pub mod aliases;
pub mod asymmetric;
mod authz;
mod ciphertext;
mod clock;
pub mod crypto;
pub mod custom_key_stores;
mod error;
pub mod grants;
mod hsm_path;
pub mod import;
pub mod key_policy;
mod keyring;
pub mod keys;
pub mod last_usage;
pub mod multi_region;
pub mod on_behalf;
mod pagination;
pub mod rotation;
pub mod seed;
mod state;
pub mod tags;

use std::sync::Arc;

use strongroom_keystore::RootKey;
use strongroom_storage::Store;
use strongroom_types::{AccountId, Namespace};

pub use crate::clock::{Clock, ManualClock, SystemClock};
pub use crate::error::Error;
pub use crate::pagination::Page;

use crate::keyring::Keyring;

/// Who is making a request, as established by the protocol layer's authentication.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The account and the Region of the request (from the credential scope).
    pub namespace: Namespace,
    /// The caller's principal ARN, for example `arn:aws:iam::111122223333:root`.
    pub arn: String,
    /// The access key that signed the request.
    pub access_key_id: String,
    /// The network address the request came from (`aws:SourceIp`).
    pub source_ip: Option<std::net::IpAddr>,
    /// The VPC the request is treated as coming from (`aws:SourceVpc`), per the server's network settings.
    pub source_vpc: Option<String>,
    /// The VPC endpoint it is treated as coming through (`aws:SourceVpce`).
    pub source_vpce: Option<String>,
    /// The service that made the request on the caller's behalf (`kms:ViaService`), such as
    /// `s3.us-east-1.amazonaws.com`.
    pub via_service: Option<String>,
}

impl Caller {
    /// The caller's account.
    pub fn account(&self) -> &AccountId {
        &self.namespace.account
    }
}

/// What the service does on its own, without a request: recorded as service events in the audit trail.
///
/// Called after the change is durable; implementations must not block (the server's records them in the
/// background).
pub trait ServiceEvents: Send + Sync + 'static {
    /// Automatic rotation gave `key` new current material.
    fn key_rotated(&self, key: &strongroom_types::KeyRecord);
    /// `key` was deleted at the end of its waiting period.
    fn key_deleted(&self, key: &strongroom_types::KeyRecord);
    /// Imported key material of `key` reached its `ValidTo` and was deleted (CloudTrail's
    /// `DeleteExpiredKeyMaterial`).
    fn key_material_expired(&self, key: &strongroom_types::KeyRecord);
    /// ReplicateKey created `replica` in its Region (CloudTrail records a `CreateKey` there).
    fn replica_created(&self, replica: &strongroom_types::KeyRecord);
    /// A custom key store's connection changed on its own: a connection attempt ended, or the service
    /// dropped a connection.
    fn custom_key_store_connection(&self, change: &custom_key_stores::ConnectionChange);
}

/// Reports nothing; for services without an audit trail (unit tests).
struct NoServiceEvents;

impl ServiceEvents for NoServiceEvents {
    fn key_rotated(&self, _key: &strongroom_types::KeyRecord) {}
    fn key_deleted(&self, _key: &strongroom_types::KeyRecord) {}
    fn key_material_expired(&self, _key: &strongroom_types::KeyRecord) {}
    fn replica_created(&self, _replica: &strongroom_types::KeyRecord) {}
    fn custom_key_store_connection(&self, _change: &custom_key_stores::ConnectionChange) {}
}

/// The key management service; one per server, shared by every request.
pub struct Kms {
    store: Arc<dyn Store>,
    root_key: Arc<dyn RootKey>,
    clock: Arc<dyn Clock>,
    keyring: Keyring,
    /// Serializes writes to keys and aliases so read-modify-write sequences never interleave.
    writes: tokio::sync::Mutex<()>,
    /// IAM users and roles, whose identity policies count where a key policy delegates to the account.
    identities: Option<Arc<strongroom_iam::Identities>>,
    /// Where the service reports what it does on its own (the audit trail's service events).
    events: Arc<dyn ServiceEvents>,
    /// Custom key stores: their records, the HSM clusters, and the connected stores.
    custom_key_stores: custom_key_stores::CustomKeyStores,
    /// The Regions replicas may go to, and whether multi-Region sets need reconciling.
    multi_region: multi_region::MultiRegion,
    /// Each key's last cryptographic use, kept in memory between writes to storage.
    last_usage: last_usage::UsageTracker,
    /// Where calls made in process for a caller are reported (the audit trail).
    on_behalf: Arc<dyn on_behalf::OnBehalfCalls>,
}

impl Kms {
    /// Builds the service over its storage, the root key of the default key store, and a clock.
    pub fn new(store: Arc<dyn Store>, root_key: Arc<dyn RootKey>, clock: Arc<dyn Clock>) -> Kms {
        Kms {
            store,
            root_key,
            clock,
            keyring: Keyring::default(),
            writes: tokio::sync::Mutex::new(()),
            identities: None,
            events: Arc::new(NoServiceEvents),
            custom_key_stores: Default::default(),
            multi_region: Default::default(),
            last_usage: Default::default(),
            on_behalf: Arc::new(on_behalf::NoOnBehalfCalls),
        }
    }

    /// Sends the calls Strongroom's components make for a caller (see [`on_behalf`]) to `calls`.
    pub fn with_on_behalf_calls(mut self, calls: Arc<dyn on_behalf::OnBehalfCalls>) -> Kms {
        self.on_behalf = calls;
        self
    }

    /// Records a call a component made in process for a caller, once it is durable.
    pub async fn record_on_behalf(&self, call: on_behalf::OnBehalfCall) {
        self.on_behalf.record(call).await;
    }

    /// Reports automatic rotations and deletions to `events` (the server sends them to the audit trail).
    pub fn with_service_events(mut self, events: Arc<dyn ServiceEvents>) -> Kms {
        self.events = events;
        self
    }

    /// Lets authorization consult IAM identity policies; without it every caller is an account root.
    pub fn with_identities(mut self, identities: Arc<strongroom_iam::Identities>) -> Kms {
        self.identities = Some(identities);
        self
    }

    /// The service's clock.
    pub fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }

    /// The storage backend, for server settings that live beside the keys.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The root key of the default key store.
    pub fn root_key(&self) -> &Arc<dyn RootKey> {
        &self.root_key
    }

    /// Checks `caller` may perform `action` on a loaded key, with the request's condition facts.
    pub(crate) fn authorize(
        &self,
        caller: &Caller,
        action: &str,
        key: &keyring::LiveKey,
        facts: authz::RequestFacts<'_>,
    ) -> Result<(), Error> {
        // What the cache keeps with the key; only borrowed here, computed into values if a policy asks.
        let facts = authz::RequestFacts {
            resource_aliases: Some(&key.aliases),
            multi_region_key_type: facts
                .multi_region_key_type
                .or(key.multi_region_role.map(|role| role.as_str())),
            ..facts
        };
        authz::authorize(
            caller,
            action,
            key.arn_str(),
            &key.record,
            &key.policy,
            &key.grants,
            self.identities.as_deref(),
            self.clock.now().millis(),
            facts,
        )
    }

    /// Checks `caller` may perform `action`, which acts on no key (ListKeys, ListAliases, GenerateRandom),
    /// against its identity policies on resource `*`.
    pub(crate) fn authorize_account(&self, caller: &Caller, action: &str) -> Result<(), Error> {
        authz::authorize_account_action(
            caller,
            action,
            self.identities.as_deref(),
            self.clock.now().millis(),
            authz::RequestFacts::default(),
        )
    }
}

#[cfg(test)]
mod tests;
