//! What each step does to its resource: create, update, delete, and the undo of each for rollbacks.
//!
//! Steps call the services in process as the stack's owner (a [`Caller`] rebuilt from the stack record),
//! so key policies, IAM policies and the services' own checks apply as they would to the owner's requests.
//! Every step can be run again after a crash: creates first look for what an interrupted run may already
//! have made (a cluster tagged with the stack's name, an HSM of the cluster not yet recorded, a key store
//! of the same name on the same cluster, a crypto user present when the step was already running), and
//! deletes accept what is already gone.
//!
//! Deletion never destroys what still protects data: a key store that still has KMS keys is only
//! disconnected, and the cluster (with its HSMs, certificates and users) stays unless the file says
//! `destroy_on_delete: true` (or a rollback undoes the apply that created it) and no key store refers to
//! it. Keys are scheduled for deletion after 7 days, the shortest waiting period AWS allows.
//!
//! HSMs also join and leave a live cluster ([`Removal`] tells a leaving HSM from one that goes with its
//! cluster). A joining HSM of a cluster with a crypto user gets the users, wrapping key, keys and
//! certificates of the others. When a key store is connected to the cluster, that happens through the
//! store's own PKCS#11 sessions, which are logged in as kmsuser, within CreateHsm (or, for a store that
//! connected later, by that connection itself or [`Ctx::bring_in_through_store`], whichever comes
//! first): the store stays connected and its keys keep
//! working while the HSM joins. Otherwise the control plane does
//! it with kmsuser's password: the step resets the password to the file's as the admin, brings the HSM
//! in and gives the store (if there is one) the password. A leaving HSM never takes the cluster below
//! what its key store needs (two active HSMs in different zones); DeleteHsm takes it out of a
//! connected store's sessions, and the store goes on with the others without disconnecting.
//!
//! A key store also moves to a related cluster (one created from a backup of its cluster) when the file
//! names it in `key_store.cluster` ([`Ctx::move_store`]): disconnected, kmsuser's password set to the
//! file's on the new cluster as the admin (which brings the HSMs seeded from the backup in),
//! UpdateCustomKeyStore with the cluster and the password, connected again.
//!
//! Every call that changes something is recorded in the audit trail as the owner's, invoked by
//! [`STACKS_PRINCIPAL`], with the parameters CloudTrail would log and never a password, a PIN, a CA key
//! or a key policy ([`Ctx::kms_call`], [`Ctx::hsm_call`]). Reads (describes and lists) are not recorded.

use std::future::Future;

use serde_json::Value;
use strongroom_cloudhsm::{
    ClusterFilters, ClusterState, CreateClusterRequest, HsmRecord, HsmSelector, HsmState,
    PasswordAuthority, Pin, resource_arn,
};
use strongroom_service::custom_key_stores::{
    CreateCustomKeyStoreRequest, UpdateCustomKeyStoreRequest,
};
use strongroom_service::grants::CreateGrantRequest;
use strongroom_service::keys::CreateKeyRequest;
use strongroom_service::on_behalf::{CallParameter, OnBehalfCall};
use strongroom_service::{Caller, Error as KmsError};
use strongroom_storage::stacks::StackResource;
use strongroom_types::{KeyId, KeySpec, KeyState, KeyUsage, Origin, Tag};
use zeroize::Zeroizing;

use crate::Stacks;
use crate::file::{Parsed, SecretRef};
use crate::plan::Kind;
use crate::{ca, sources};

/// How long an HSM step waits for the server to connect again, by itself after a restart, a key
/// store recorded connected to the step's cluster ([`Ctx::await_store_reconnection`]).
const STORE_RESTORE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// The tag every cluster and key a stack creates carries, naming the stack.
pub(crate) const STACK_TAG: &str = "strongroom:stack";
/// How long a step waits for a key store to finish connecting or disconnecting, and how often it looks.
const SETTLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);
const SETTLE_POLL: std::time::Duration = std::time::Duration::from_millis(200);
/// The waiting period of keys a stack deletes.
const KEY_DELETION_DAYS: i64 = 7;
/// How the audit trail names the stack engine in `userIdentity.invokedBy` of the calls it makes for a
/// stack's owner. AWS names its services `<service>.amazonaws.com`; a name under `strongroom.internal`
/// cannot be mistaken for a call AWS made.
pub(crate) const STACKS_PRINCIPAL: &str = "stacks.strongroom.internal";

/// The request parameters of a recorded call, by their CloudTrail names.
type Params = Vec<(&'static str, CallParameter)>;

/// What a finished step did to the stack's list of resources.
#[derive(Debug)]
pub(crate) enum Effect {
    /// The resource exists with these ids and properties.
    Record(StackResource),
    /// The resource is gone.
    Forget(String),
    /// The resource was kept, for this reason.
    Keep(String, String),
}

/// What a step works with.
pub(crate) struct Ctx<'a> {
    pub(crate) stacks: &'a Stacks,
    pub(crate) caller: &'a Caller,
    pub(crate) stack_name: &'a str,
    pub(crate) parsed: &'a Parsed,
    pub(crate) resources: &'a [StackResource],
}

fn record(logical_id: &str, physical_id: &str, props: &Value) -> Effect {
    Effect::Record(StackResource {
        logical_id: logical_id.to_owned(),
        physical_id: physical_id.to_owned(),
        properties: props.to_string(),
        retained: None,
    })
}

fn text<'v>(props: &'v Value, field: &str) -> &'v str {
    props.get(field).and_then(Value::as_str).unwrap_or_default()
}

fn tags_of(props: &Value) -> Vec<Tag> {
    props
        .get("tags")
        .and_then(Value::as_object)
        .map(|map| {
            map.iter()
                .map(|(key, value)| Tag {
                    key: key.clone(),
                    value: value.as_str().unwrap_or_default().to_owned(),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn kms_failure(what: &str, error: &KmsError) -> String {
    format!("{what} failed: {}: {error}", error.code())
}

fn hsm_failure(what: &str, error: &strongroom_cloudhsm::Error) -> String {
    format!("{what} failed: {error}")
}

/// A text parameter of a recorded call.
fn txt(value: &str) -> CallParameter {
    CallParameter::Text(value.to_owned())
}

/// A list parameter of a recorded call (tag keys, grant operations, subnets).
fn list<S: Into<String>>(items: impl IntoIterator<Item = S>) -> CallParameter {
    CallParameter::List(items.into_iter().map(Into::into).collect())
}

/// The keys of `tags`, which is all the audit trail gets of them (values may describe data).
fn tag_keys(tags: &[Tag]) -> CallParameter {
    list(tags.iter().map(|tag| tag.key.as_str()))
}

impl Ctx<'_> {
    /// Makes the KMS call `call` for the owner and records it in the audit trail as `operation` with
    /// `parameters`, acting on the key `key` when the step knows it.
    async fn kms_call<T>(
        &self,
        operation: &'static str,
        parameters: Params,
        key: Option<&str>,
        call: impl Future<Output = Result<T, KmsError>>,
    ) -> Result<T, KmsError> {
        let outcome = call.await;
        let resources = key.map(|id| self.key_arn(id)).into_iter().collect();
        self.record_kms(operation, parameters, resources, &outcome)
            .await;
        outcome
    }

    /// Records a KMS call this step made for the owner, acting on the keys `resources` (ARNs).
    async fn record_kms<T>(
        &self,
        operation: &'static str,
        parameters: Params,
        resources: Vec<String>,
        outcome: &Result<T, KmsError>,
    ) {
        let call = OnBehalfCall::kms(
            self.caller,
            STACKS_PRINCIPAL,
            operation,
            parameters,
            resources,
            outcome,
        );
        self.stacks.kms.record_on_behalf(call).await;
    }

    /// Makes the CloudHSM call `call` for the owner and records it in the audit trail as `operation`
    /// with `parameters`, acting on the clusters and HSMs `ids` (their ARNs are the record's resources).
    async fn hsm_call<T>(
        &self,
        operation: &'static str,
        parameters: Params,
        ids: &[&str],
        call: impl Future<Output = Result<T, strongroom_cloudhsm::Error>>,
    ) -> Result<T, strongroom_cloudhsm::Error> {
        self.hsm_call_making(operation, parameters, ids, |_| Vec::new(), call)
            .await
    }

    /// Like [`Ctx::hsm_call`], for a call that makes resources: `made` names them from its answer.
    async fn hsm_call_making<T>(
        &self,
        operation: &'static str,
        parameters: Params,
        ids: &[&str],
        made: impl FnOnce(&T) -> Vec<String>,
        call: impl Future<Output = Result<T, strongroom_cloudhsm::Error>>,
    ) -> Result<T, strongroom_cloudhsm::Error> {
        let outcome = call.await;
        let error = outcome
            .as_ref()
            .err()
            .map(|error| (error.code(), error.public_message()));
        let mut named: Vec<String> = ids.iter().map(|id| (*id).to_owned()).collect();
        if let Ok(answer) = &outcome {
            named.extend(made(answer));
        }
        let mut call =
            OnBehalfCall::cloudhsm(self.caller, STACKS_PRINCIPAL, operation, parameters, error);
        call.resources = named
            .iter()
            .filter_map(|id| resource_arn(&self.caller.namespace, id))
            .collect();
        call.resources.dedup();
        self.stacks.kms.record_on_behalf(call).await;
        outcome
    }

    /// The ARN of the owner's key `key_id` (already an ARN, it stays one).
    fn key_arn(&self, key_id: &str) -> String {
        match key_id.parse::<KeyId>() {
            Ok(id) => self.caller.namespace.key_arn(&id),
            Err(_) => key_id.to_owned(),
        }
    }

    fn physical(&self, logical_id: &str) -> Result<String, String> {
        self.resources
            .iter()
            .find(|r| r.logical_id == logical_id)
            .map(|r| r.physical_id.clone())
            .ok_or_else(|| format!("{logical_id} has not been created yet"))
    }

    fn props_of(&self, logical_id: &str) -> Value {
        self.resources
            .iter()
            .find(|r| r.logical_id == logical_id)
            .and_then(|r| serde_json::from_str(&r.properties).ok())
            .unwrap_or(Value::Null)
    }

    async fn secret(&self, source: &SecretRef, what: &str) -> Result<Zeroizing<String>, String> {
        sources::read(&self.stacks.secrets, self.caller, source, what).await
    }

    async fn admin_password(&self) -> Result<Pin, String> {
        let cluster = self
            .parsed
            .file
            .cluster
            .as_ref()
            .ok_or("the file declares no cluster")?;
        let password = self
            .secret(&cluster.admin_password, "admin password")
            .await?;
        Ok(Pin::new(password.to_string()))
    }

    async fn kmsuser_password(&self) -> Result<Zeroizing<String>, String> {
        let user = self
            .parsed
            .file
            .crypto_user
            .as_ref()
            .ok_or("the file declares no crypto_user")?;
        self.secret(&user.password, "crypto user password").await
    }

    async fn cluster_record(
        &self,
        cluster_id: &str,
    ) -> Result<strongroom_cloudhsm::Cluster, String> {
        let filters = ClusterFilters {
            cluster_ids: Some(vec![cluster_id.to_owned()]),
            ..ClusterFilters::default()
        };
        let page = self
            .stacks
            .plane
            .describe_clusters(&self.caller.namespace, &filters, None, None)
            .await
            .map_err(|e| hsm_failure("DescribeClusters", &e))?;
        page.items
            .into_iter()
            .next()
            .ok_or_else(|| format!("cluster {cluster_id} no longer exists"))
    }

    /// The key store's connection state and error code, or `None` if it no longer exists.
    async fn key_store_state(&self, id: &str) -> Result<Option<(String, Option<String>)>, String> {
        match self
            .stacks
            .kms
            .describe_custom_key_stores(self.caller, Some(id), None, None, None)
            .await
        {
            Ok(page) => Ok(page
                .items
                .into_iter()
                .next()
                .map(|info| (info.connection_state, info.connection_error))),
            Err(KmsError::CustomKeyStoreNotFound(_)) => Ok(None),
            Err(e) => Err(kms_failure("DescribeCustomKeyStores", &e)),
        }
    }

    async fn connect(&self, id: &str, log: &mut Vec<String>) -> Result<(), String> {
        let kms = &self.stacks.kms;
        if let Some((state, _)) = self.settled_state(id, "CONNECTING").await?
            && state == "FAILED"
        {
            let parameters = vec![("customKeyStoreId", txt(id))];
            let call = kms.disconnect_custom_key_store(self.caller, id);
            self.kms_call("DisconnectCustomKeyStore", parameters, None, call)
                .await
                .map_err(|e| kms_failure("DisconnectCustomKeyStore", &e))?;
            log.push(format!(
                "disconnected {id}, which had failed to connect before"
            ));
        }
        let parameters = vec![("customKeyStoreId", txt(id))];
        let call = kms.connect_custom_key_store(self.caller, id);
        self.kms_call("ConnectCustomKeyStore", parameters, None, call)
            .await
            .map_err(|e| kms_failure("ConnectCustomKeyStore", &e))?;
        match self.settled_state(id, "CONNECTING").await? {
            Some((state, _)) if state == "CONNECTED" => {
                log.push(format!(
                    "connected {id}; kmsuser's password was rotated to one only Strongroom knows"
                ));
                Ok(())
            }
            Some((state, code)) => Err(format!(
                "key store {id} did not connect: it is {state}{}",
                code.map(|c| format!(" with ConnectionErrorCode {c}"))
                    .unwrap_or_default()
            )),
            None => Err(format!("key store {id} no longer exists")),
        }
    }

    /// The key store's state once it has left the transient state `transient` (connecting happens in the
    /// background, as in AWS); gives up after [`SETTLE_TIMEOUT`].
    async fn settled_state(
        &self,
        id: &str,
        transient: &str,
    ) -> Result<Option<(String, Option<String>)>, String> {
        let deadline = tokio::time::Instant::now() + SETTLE_TIMEOUT;
        loop {
            let state = self.key_store_state(id).await?;
            match &state {
                Some((now, _)) if now == transient && tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(SETTLE_POLL).await;
                }
                _ => return Ok(state),
            }
        }
    }

    async fn disconnect(&self, id: &str, log: &mut Vec<String>) -> Result<bool, String> {
        let was_connected = match self.settled_state(id, "CONNECTING").await? {
            Some((state, _)) if state == "DISCONNECTING" => false,
            Some((state, _)) if state != "DISCONNECTED" => {
                let parameters = vec![("customKeyStoreId", txt(id))];
                let call = self.stacks.kms.disconnect_custom_key_store(self.caller, id);
                self.kms_call("DisconnectCustomKeyStore", parameters, None, call)
                    .await
                    .map_err(|e| kms_failure("DisconnectCustomKeyStore", &e))?;
                log.push(format!("disconnected key store {id}"));
                true
            }
            _ => false,
        };
        self.settled_state(id, "DISCONNECTING").await?;
        Ok(was_connected)
    }

    /// Why the cluster (and what goes with it) must stay, if it must: the file does not say to destroy
    /// it (unless this is a rollback), or a custom key store still refers to it.
    async fn cluster_must_stay(&self, rollback: bool) -> Result<Option<String>, String> {
        let Ok(cluster_id) = self.physical("cluster") else {
            return Ok(None);
        };
        let destroy = self
            .props_of("cluster")
            .get("destroy_on_delete")
            .and_then(Value::as_bool)
            == Some(true);
        let stores = self
            .stacks
            .kms
            .describe_custom_key_stores(self.caller, None, None, None, None)
            .await
            .map_err(|e| kms_failure("DescribeCustomKeyStores", &e))?;
        if let Some(store) = stores.items.iter().find(|s| s.cluster_id == cluster_id) {
            return Ok(Some(format!(
                "kept with cluster {cluster_id}: custom key store {} ({}) still refers to it",
                store.id, store.name
            )));
        }
        if !destroy && !rollback {
            return Ok(Some(format!(
                "kept with cluster {cluster_id}: the stack file does not say destroy_on_delete: true"
            )));
        }
        Ok(None)
    }

    /// The custom key store on `cluster_id`, if one is (a cluster serves at most one), whether the
    /// stack made it or not.
    async fn store_on_cluster(&self, cluster_id: &str) -> Result<Option<String>, String> {
        let stores = self
            .stacks
            .kms
            .describe_custom_key_stores(self.caller, None, None, None, None)
            .await
            .map_err(|e| kms_failure("DescribeCustomKeyStores", &e))?;
        Ok(stores
            .items
            .into_iter()
            .find(|store| store.cluster_id == cluster_id)
            .map(|store| store.id))
    }

    /// Connects the key store `store` again after a step disconnected it, if it was connected or the
    /// stack keeps it connected (which also covers a step run again after a restart, when the store is
    /// found disconnected by the interrupted run).
    async fn restore_connection(
        &self,
        store: &str,
        was_connected: bool,
        log: &mut Vec<String>,
    ) -> Result<(), String> {
        let kept_connected = self.physical("key-store-connection").ok().as_deref() == Some(store);
        match was_connected || kept_connected {
            true => self.connect(store, log).await,
            false => Ok(()),
        }
    }

    /// Sets kmsuser's password on every active HSM of the cluster to the file's, as the admin, and
    /// gives it to the key store on the cluster; with `then_synchronize`, brings the cluster's waiting
    /// HSMs in with it in between (returning their ids).
    ///
    /// A connected key store has rotated kmsuser's password to one only it knows, and a key store's
    /// password can only change while it is disconnected, so the store is disconnected first and
    /// connected again at the end (which rotates the password again), also when something failed on
    /// the way, so that it is not left behind.
    async fn under_file_password(
        &self,
        cluster_id: &str,
        then_synchronize: bool,
        log: &mut Vec<String>,
    ) -> Result<Vec<String>, String> {
        let name = match self.physical("crypto-user") {
            Ok(name) => name,
            Err(_) => match &self.parsed.file.crypto_user {
                Some(user) => user.name.clone(),
                None => return Err("the file declares no crypto_user".to_owned()),
            },
        };
        let admin = self.admin_password().await?;
        let password = self.kmsuser_password().await?;
        let pin = Pin::new(password.to_string());
        let store = self.store_on_cluster(cluster_id).await?;
        let was_connected = match &store {
            Some(store) => self.disconnect(store, log).await?,
            None => false,
        };
        let plane = &self.stacks.plane;
        let ns = &self.caller.namespace;
        let parameters = vec![("clusterId", txt(cluster_id)), ("username", txt(&name))];
        let call = plane.change_crypto_user_password(
            ns,
            cluster_id,
            &name,
            PasswordAuthority::AdminPassword(&admin),
            &pin,
        );
        let outcome = match self
            .hsm_call("ChangeCryptoUserPassword", parameters, &[cluster_id], call)
            .await
        {
            Err(e) => Err(hsm_failure(&format!("Changing the password of {name}"), &e)),
            Ok(()) => {
                log.push(format!(
                    "changed the password of {name} on every HSM of {cluster_id}"
                ));
                let joined = match then_synchronize {
                    true => {
                        let parameters = vec![("clusterId", txt(cluster_id))];
                        let call = plane.synchronize_hsms(ns, cluster_id, &pin);
                        let made = |joined: &Vec<String>| joined.clone();
                        self.hsm_call_making(
                            "SynchronizeHsms",
                            parameters,
                            &[cluster_id],
                            made,
                            call,
                        )
                        .await
                        .map_err(|e| hsm_failure("Bringing the new HSMs in", &e))
                    }
                    false => Ok(Vec::new()),
                };
                // The HSMs now have the file's password, so the key store needs it too, whatever
                // happened since.
                let given = match &store {
                    Some(store) => self.give_password(store, password, log).await,
                    None => Ok(()),
                };
                given.and(joined)
            }
        };
        let reconnected = match &store {
            Some(store) => self.restore_connection(store, was_connected, log).await,
            None => Ok(()),
        };
        let joined = outcome?;
        reconnected?;
        Ok(joined)
    }

    /// Why the HSM `hsm_id` must stay in cluster `cluster_id`, if it must: without it the cluster
    /// would have fewer than the two active HSMs in different availability zones that the key store
    /// `store` needs to connect and make keys (and its keys live only in the HSMs).
    async fn too_few_without(
        &self,
        cluster_id: &str,
        hsm_id: &str,
        store: &str,
    ) -> Result<Option<String>, String> {
        let cluster = self.cluster_record(cluster_id).await?;
        let remaining: Vec<&HsmRecord> = cluster
            .hsms
            .iter()
            .filter(|hsm| hsm.hsm_id != hsm_id && hsm.state == HsmState::Active)
            .collect();
        let mut zones: Vec<&str> = remaining
            .iter()
            .map(|hsm| hsm.availability_zone.as_str())
            .collect();
        zones.sort_unstable();
        zones.dedup();
        if remaining.len() >= 2 && zones.len() >= 2 {
            return Ok(None);
        }
        Ok(Some(format!(
            "HSM {hsm_id} kept: custom key store {store} needs at least two active HSMs in different \
             availability zones in cluster {cluster_id}, and without it the cluster would have {} active HSM(s){}",
            remaining.len(),
            match zones.is_empty() {
                true => String::new(),
                false => format!(" in {}", zones.join(", ")),
            }
        )))
    }

    /// The cluster the key store should be on: the one `key_store.cluster` names (a related cluster it
    /// was moved to), else the stack's own.
    fn store_cluster(&self, props: &Value) -> Result<String, String> {
        match props.get("cluster").and_then(Value::as_str) {
            Some(cluster) => Ok(cluster.to_owned()),
            None => self.physical("cluster"),
        }
    }

    /// Moves the key store `store` to the cluster `target`, which must be related to its cluster
    /// (created from a backup of it): the store is disconnected; kmsuser's password is set to the file's
    /// on `target` as the admin (the new cluster's kmsuser has the password it had when the backup was
    /// taken, which a connection had rotated to one only the store knows, and HSMs seeded from the
    /// backup join the cluster with it); UpdateCustomKeyStore gives the store the cluster and the
    /// password (KMS checks that the clusters are related); and the store is connected again, also when
    /// something failed on the way, so that it is not left behind.
    async fn move_store(
        &self,
        store: &str,
        target: &str,
        log: &mut Vec<String>,
    ) -> Result<(), String> {
        let current = self
            .stacks
            .kms
            .describe_custom_key_stores(self.caller, Some(store), None, None, None)
            .await
            .map_err(|e| kms_failure("DescribeCustomKeyStores", &e))?
            .items
            .into_iter()
            .next()
            .map(|info| info.cluster_id)
            .ok_or_else(|| format!("key store {store} no longer exists"))?;
        if current == target {
            log.push(format!("key store {store} is on cluster {target}"));
            return Ok(());
        }
        let name = match self.physical("crypto-user") {
            Ok(name) => name,
            Err(_) => match &self.parsed.file.crypto_user {
                Some(user) => user.name.clone(),
                None => return Err("the file declares no crypto_user".to_owned()),
            },
        };
        let admin = self.admin_password().await?;
        let password = self.kmsuser_password().await?;
        let pin = Pin::new(password.to_string());
        let was_connected = self.disconnect(store, log).await?;
        let plane = &self.stacks.plane;
        let parameters = vec![("clusterId", txt(target)), ("username", txt(&name))];
        let call = plane.change_crypto_user_password(
            &self.caller.namespace,
            target,
            &name,
            PasswordAuthority::AdminPassword(&admin),
            &pin,
        );
        let outcome = match self
            .hsm_call("ChangeCryptoUserPassword", parameters, &[target], call)
            .await
        {
            Err(e) => Err(hsm_failure(
                &format!("Setting the password of {name} on {target}"),
                &e,
            )),
            Ok(()) => {
                log.push(format!(
                    "set the password of {name} on every HSM of {target} to the file's"
                ));
                let parameters = vec![
                    ("customKeyStoreId", txt(store)),
                    ("cloudHsmClusterId", txt(target)),
                ];
                let request = UpdateCustomKeyStoreRequest {
                    id: store.to_owned(),
                    key_store_password: Some(password),
                    cluster_id: Some(target.to_owned()),
                    ..UpdateCustomKeyStoreRequest::default()
                };
                let call = self
                    .stacks
                    .kms
                    .update_custom_key_store(self.caller, request);
                match self
                    .kms_call("UpdateCustomKeyStore", parameters, None, call)
                    .await
                {
                    Ok(()) => {
                        log.push(format!(
                            "moved key store {store} from cluster {current} to {target}"
                        ));
                        Ok(())
                    }
                    Err(e) => Err(kms_failure("UpdateCustomKeyStore", &e)),
                }
            }
        };
        let reconnected = self.restore_connection(store, was_connected, log).await;
        outcome?;
        reconnected
    }

    /// Tells the disconnected key store `store` kmsuser's new password (UpdateCustomKeyStore).
    async fn give_password(
        &self,
        store: &str,
        password: Zeroizing<String>,
        log: &mut Vec<String>,
    ) -> Result<(), String> {
        let parameters = vec![("customKeyStoreId", txt(store))];
        let request = UpdateCustomKeyStoreRequest {
            id: store.to_owned(),
            key_store_password: Some(password),
            ..UpdateCustomKeyStoreRequest::default()
        };
        let call = self
            .stacks
            .kms
            .update_custom_key_store(self.caller, request);
        self.kms_call("UpdateCustomKeyStore", parameters, None, call)
            .await
            .map_err(|e| kms_failure("UpdateCustomKeyStore", &e))?;
        log.push(format!("gave key store {store} the new password"));
        Ok(())
    }

    /// Brings the new HSM `hsm_id` into the cluster: CloudHSM seeds a new HSM from a backup; here the
    /// crypto user's password lets the control plane copy kmsuser, the wrapping key, the keys and the
    /// certificates to it from the active HSMs.
    async fn bring_in(
        &self,
        cluster_id: &str,
        hsm_id: &str,
        log: &mut Vec<String>,
    ) -> Result<(), String> {
        if self.bring_in_through_store(cluster_id, hsm_id, log).await? {
            return Ok(());
        }
        if self.parsed.file.crypto_user.is_none() {
            return Err(format!(
                "HSM {hsm_id} waits for the crypto user's password to copy users and keys to it, and the file \
                 declares no crypto_user: declare it (with adopt: true if the stack did not create it), or bring \
                 the HSM in outside the stack with strongroom hsm sync"
            ));
        }
        let joined = self.under_file_password(cluster_id, true, log).await?;
        // A store that has just connected brings the HSMs waiting for it in by itself, so this one
        // may have joined before this call.
        if !joined.iter().any(|id| id == hsm_id) && !self.is_active(cluster_id, hsm_id).await? {
            return Err(format!(
                "HSM {hsm_id} did not join cluster {cluster_id}: it is still waiting for its users and keys"
            ));
        }
        log.push(format!(
            "brought HSM {hsm_id} into {cluster_id}: copied kmsuser, the wrapping key, the keys and the \
             certificates to it"
        ));
        Ok(())
    }

    /// Brings the new HSM `hsm_id` in through the key store connected to the cluster, if one is: its
    /// PKCS#11 sessions are logged in as kmsuser, so nothing needs the password and the store keeps
    /// serving requests while the HSM joins. False when no store is connected (then the password
    /// path of [`Ctx::bring_in`] does it).
    async fn bring_in_through_store(
        &self,
        cluster_id: &str,
        hsm_id: &str,
        log: &mut Vec<String>,
    ) -> Result<bool, String> {
        let Some(store) = self.connected_store_on_cluster(cluster_id).await? else {
            return Ok(false);
        };
        let parameters = vec![("clusterId", txt(cluster_id))];
        let call = self
            .stacks
            .plane
            .synchronize_hsms_through_connected_store(&self.caller.namespace, cluster_id);
        let made = |joined: &Option<Vec<String>>| joined.clone().unwrap_or_default();
        let joined = self
            .hsm_call_making("SynchronizeHsms", parameters, &[cluster_id], made, call)
            .await
            .map_err(|e| hsm_failure("Bringing the new HSM in", &e))?;
        // The store disconnected in between: the password path brings the HSM in.
        let Some(joined) = joined else {
            return Ok(false);
        };
        if !joined.iter().any(|id| id == hsm_id) {
            return Err(format!(
                "HSM {hsm_id} did not join cluster {cluster_id}: it is still waiting for its users and keys"
            ));
        }
        log.push(format!(
            "brought HSM {hsm_id} into {cluster_id} through the connected key store {store}, which stayed \
             connected: copied kmsuser, the wrapping key, the keys and the certificates to it"
        ));
        Ok(true)
    }

    /// Whether the HSM `hsm_id` of `cluster_id` is recorded `ACTIVE`.
    async fn is_active(&self, cluster_id: &str, hsm_id: &str) -> Result<bool, String> {
        let cluster = self.cluster_record(cluster_id).await?;
        Ok(cluster
            .hsms
            .iter()
            .any(|hsm| hsm.hsm_id == hsm_id && hsm.state == HsmState::Active))
    }

    /// The custom key store on `cluster_id` if it is connected (once done connecting).
    async fn connected_store_on_cluster(&self, cluster_id: &str) -> Result<Option<String>, String> {
        let Some(store) = self.store_on_cluster(cluster_id).await? else {
            return Ok(None);
        };
        Ok(match self.settled_state(&store, "CONNECTING").await? {
            Some((state, _)) if state == "CONNECTED" => Some(store),
            _ => None,
        })
    }

    /// Waits, for at most [`STORE_RESTORE_PATIENCE`], until a key store recorded connected to
    /// `cluster_id` is connected in this process: after a restart the server connects such stores
    /// again by itself, and an HSM step that ran meanwhile would take the password path (or change
    /// the HSMs) under the reconnection's feet. Returns at once when no store is recorded connected.
    async fn await_store_reconnection(&self, cluster_id: &str) -> Result<(), String> {
        if self.connected_store_on_cluster(cluster_id).await?.is_none() {
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + STORE_RESTORE_PATIENCE;
        while !self.stacks.plane.has_logged_in_cluster(cluster_id)
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// Deletes the HSM `hsm_id`, which has not joined the cluster (no key store uses it), after a
    /// failed attempt to bring it in; best effort, the log says what happened.
    async fn release_pending(&self, cluster_id: &str, hsm_id: &str, log: &mut Vec<String>) {
        let parameters = vec![("clusterId", txt(cluster_id)), ("hsmId", txt(hsm_id))];
        let selector = HsmSelector::HsmId(hsm_id.to_owned());
        let call = self
            .stacks
            .plane
            .delete_hsm(&self.caller.namespace, cluster_id, &selector);
        match self
            .hsm_call("DeleteHsm", parameters, &[cluster_id, hsm_id], call)
            .await
        {
            Ok(_) => log.push(format!(
                "deleted HSM {hsm_id} again, since it could not join the cluster"
            )),
            Err(e) => log.push(hsm_failure(
                &format!("Deleting HSM {hsm_id}, which could not join the cluster,"),
                &e,
            )),
        }
    }
}

/// Creates the resource of a step, or updates it from `before` to `after`.
pub(crate) async fn apply(
    ctx: &Ctx<'_>,
    logical_id: &str,
    before: Option<&Value>,
    after: &Value,
    resumed: bool,
    log: &mut Vec<String>,
) -> Result<Effect, String> {
    let Some(kind) = Kind::of(logical_id) else {
        return Err(format!("{logical_id} is not a resource this engine knows"));
    };
    let plane = &ctx.stacks.plane;
    let kms = &ctx.stacks.kms;
    let ns = &ctx.caller.namespace;
    let existing = ctx.physical(logical_id).ok();
    match (kind, existing) {
        (Kind::Cluster, None) => {
            if resumed {
                let all = plane
                    .describe_clusters(ns, &ClusterFilters::default(), None, None)
                    .await
                    .map_err(|e| hsm_failure("DescribeClusters", &e))?;
                let mine = all.items.iter().find(|c| {
                    c.record
                        .tags
                        .iter()
                        .any(|t| t.key == STACK_TAG && t.value == ctx.stack_name)
                        && c.record.state != ClusterState::Deleted
                });
                if let Some(found) = mine {
                    log.push(format!(
                        "found cluster {} made by the interrupted run",
                        found.record.cluster_id
                    ));
                    return Ok(record(logical_id, &found.record.cluster_id, after));
                }
            }
            let zones: Vec<String> = after
                .get("zones")
                .and_then(Value::as_array)
                .map(|z| {
                    z.iter()
                        .filter_map(Value::as_str)
                        .map(|z| format!("subnet-{z}"))
                        .collect()
                })
                .unwrap_or_default();
            let mut tags = tags_of(after);
            tags.push(Tag {
                key: STACK_TAG.to_owned(),
                value: ctx.stack_name.to_owned(),
            });
            let parameters = vec![
                ("hsmType", txt(text(after, "hsm_type"))),
                ("subnetIds", list(zones.clone())),
                ("tagKeys", tag_keys(&tags)),
            ];
            let request = CreateClusterRequest {
                hsm_type: text(after, "hsm_type").to_owned(),
                subnet_ids: zones.clone(),
                tags,
                ..CreateClusterRequest::default()
            };
            let call = plane.create_cluster(ns, request);
            let made =
                |cluster: &strongroom_cloudhsm::Cluster| vec![cluster.record.cluster_id.clone()];
            let cluster = ctx
                .hsm_call_making("CreateCluster", parameters, &[], made, call)
                .await
                .map_err(|e| hsm_failure("CreateCluster", &e))?;
            log.push(format!(
                "created cluster {} with subnets {}",
                cluster.record.cluster_id,
                zones.join(", ")
            ));
            Ok(record(logical_id, &cluster.record.cluster_id, after))
        }
        (Kind::Cluster, Some(cluster_id)) => {
            let old_tags = before.map(tags_of).unwrap_or_default();
            let new_tags = tags_of(after);
            let removed: Vec<String> = old_tags
                .iter()
                .filter(|t| !new_tags.iter().any(|n| n.key == t.key))
                .map(|t| t.key.clone())
                .collect();
            if !removed.is_empty() {
                let parameters = vec![
                    ("resourceId", txt(&cluster_id)),
                    ("tagKeyList", list(removed.clone())),
                ];
                let call = plane.untag_resource(ns, &cluster_id, &removed);
                ctx.hsm_call("UntagResource", parameters, &[&cluster_id], call)
                    .await
                    .map_err(|e| hsm_failure("UntagResource", &e))?;
                log.push(format!(
                    "removed tags {} from {cluster_id}",
                    removed.join(", ")
                ));
            }
            if !new_tags.is_empty() && new_tags != old_tags {
                let parameters = vec![
                    ("resourceId", txt(&cluster_id)),
                    ("tagKeys", tag_keys(&new_tags)),
                ];
                let call = plane.tag_resource(ns, &cluster_id, &new_tags);
                ctx.hsm_call("TagResource", parameters, &[&cluster_id], call)
                    .await
                    .map_err(|e| hsm_failure("TagResource", &e))?;
                log.push(format!("tagged {cluster_id}"));
            }
            log.push(format!("recorded the settings of {cluster_id}"));
            Ok(record(logical_id, &cluster_id, after))
        }
        (Kind::Hsm, Some(hsm_id)) => Ok(record(logical_id, &hsm_id, after)),
        (Kind::Hsm, None) => {
            let cluster_id = ctx.physical("cluster")?;
            let zone = text(after, "zone");
            let mut hsm: Option<HsmRecord> = None;
            let mut has_crypto_user = false;
            if resumed {
                let known: Vec<&str> = ctx
                    .resources
                    .iter()
                    .filter(|r| Kind::of(&r.logical_id) == Some(Kind::Hsm))
                    .map(|r| r.physical_id.as_str())
                    .collect();
                let cluster = ctx.cluster_record(&cluster_id).await?;
                has_crypto_user = !cluster.record.crypto_users.is_empty();
                hsm = cluster
                    .hsms
                    .into_iter()
                    .find(|h| h.availability_zone == zone && !known.contains(&h.hsm_id.as_str()));
                if let Some(found) = &hsm {
                    log.push(format!(
                        "found HSM {} made by the interrupted run",
                        found.hsm_id
                    ));
                }
            }
            // CreateHsm brings the HSM in through the connected store: let it finish connecting.
            ctx.await_store_reconnection(&cluster_id).await?;
            let hsm = match hsm {
                Some(found) => found,
                None => {
                    let parameters = vec![
                        ("clusterId", txt(&cluster_id)),
                        ("availabilityZone", txt(zone)),
                    ];
                    let call = plane.create_hsm(ns, &cluster_id, zone, None);
                    let made = |hsm: &HsmRecord| vec![hsm.hsm_id.clone()];
                    let hsm = ctx
                        .hsm_call_making("CreateHsm", parameters, &[&cluster_id], made, call)
                        .await
                        .map_err(|e| hsm_failure(&format!("CreateHsm in {zone}"), &e))?;
                    let joined_at_once = hsm.state == HsmState::Active
                        && !ctx
                            .cluster_record(&cluster_id)
                            .await?
                            .record
                            .crypto_users
                            .is_empty();
                    log.push(match joined_at_once {
                        // A key store connected to the cluster brings a new HSM in as it is made.
                        true => format!(
                            "created HSM {id} in {zone} (declared HSM {declared}) and brought HSM {id} in \
                             through the connected key store, which stayed connected: copied kmsuser, the \
                             wrapping key, the keys and the certificates to it",
                            id = hsm.hsm_id,
                            declared = hsm.declared_hsm
                        ),
                        false => format!(
                            "created HSM {} in {zone} (declared HSM {})",
                            hsm.hsm_id, hsm.declared_hsm
                        ),
                    });
                    hsm
                }
            };
            if hsm.state == HsmState::CreateInProgress {
                // The cluster has a crypto user, so the HSM waits for its password to get the users,
                // keys and certificates of the others. An HSM that cannot join goes again, so that
                // the stack's record and the cluster agree.
                if let Err(problem) = ctx.bring_in(&cluster_id, &hsm.hsm_id, log).await {
                    ctx.release_pending(&cluster_id, &hsm.hsm_id, log).await;
                    return Err(problem);
                }
            } else if has_crypto_user
                && ctx.parsed.file.crypto_user.is_some()
                && ctx.connected_store_on_cluster(&cluster_id).await?.is_none()
            {
                // The interrupted run brought the HSM in with the password, but may have stopped
                // before the key store had the password and was connected again: going through it
                // again settles that. A store found connected needs nothing.
                ctx.under_file_password(&cluster_id, true, log).await?;
            }
            Ok(record(logical_id, &hsm.hsm_id, after))
        }
        (Kind::Certificate, Some(physical)) => Ok(record(logical_id, &physical, after)),
        (Kind::Certificate, None) => {
            let cluster_id = ctx.physical("cluster")?;
            let cluster = ctx.cluster_record(&cluster_id).await?;
            if cluster.record.state != ClusterState::Uninitialized {
                log.push(format!(
                    "cluster {cluster_id} is already {}",
                    cluster.record.state
                ));
                return Ok(record(logical_id, &cluster_id, after));
            }
            let Some(identity) = &cluster.record.identity else {
                return Err(format!(
                    "cluster {cluster_id} has no CSR yet: it needs an HSM first"
                ));
            };
            let spec = ctx
                .parsed
                .file
                .cluster
                .as_ref()
                .ok_or("the file declares no cluster")?;
            let certificate = ctx
                .secret(&spec.certificate_authority.certificate, "CA certificate")
                .await?;
            let key = ctx
                .secret(&spec.certificate_authority.private_key, "CA private key")
                .await?;
            let signed = ca::sign_csr(&identity.csr_pem, &certificate, &key)?;
            drop(key);
            log.push(format!("signed the CSR of {cluster_id} with the CA"));
            // The certificates are public but long; DescribeClusters shows them.
            let parameters = vec![("clusterId", txt(&cluster_id))];
            let call = plane.initialize_cluster(ns, &cluster_id, &signed, &certificate);
            ctx.hsm_call("InitializeCluster", parameters, &[&cluster_id], call)
                .await
                .map_err(|e| hsm_failure("InitializeCluster", &e))?;
            log.push(format!(
                "initialized {cluster_id}: its trust anchor is the CA certificate"
            ));
            Ok(record(logical_id, &cluster_id, after))
        }
        (Kind::Activation, Some(physical)) => {
            log.push("recorded where the admin password is".to_owned());
            Ok(record(logical_id, &physical, after))
        }
        (Kind::Activation, None) => {
            let cluster_id = ctx.physical("cluster")?;
            let cluster = ctx.cluster_record(&cluster_id).await?;
            if matches!(
                cluster.record.state,
                ClusterState::Active | ClusterState::Degraded
            ) {
                log.push(format!("cluster {cluster_id} is already active"));
                return Ok(record(logical_id, &cluster_id, after));
            }
            let admin = ctx.admin_password().await?;
            let parameters = vec![("clusterId", txt(&cluster_id))];
            let call = plane.activate(ns, &cluster_id, &admin);
            ctx.hsm_call("ActivateCluster", parameters, &[&cluster_id], call)
                .await
                .map_err(|e| hsm_failure("Activating the cluster", &e))?;
            log.push(format!("activated {cluster_id}"));
            Ok(record(logical_id, &cluster_id, after))
        }
        (Kind::CryptoUser, None) => {
            let cluster_id = ctx.physical("cluster")?;
            let name = text(after, "name");
            let adopt = ctx
                .parsed
                .file
                .crypto_user
                .as_ref()
                .is_some_and(|u| u.adopt);
            let view = plane
                .cluster(ns, &cluster_id)
                .await
                .map_err(|e| hsm_failure("Reading the cluster", &e))?
                .ok_or_else(|| format!("cluster {cluster_id} no longer exists"))?;
            let password = ctx.kmsuser_password().await?;
            let pin = Pin::new(password.to_string());
            if view.crypto_users.iter().any(|u| u == name) {
                if adopt {
                    let parameters = vec![("clusterId", txt(&cluster_id)), ("username", txt(name))];
                    let call = plane.change_crypto_user_password(
                        ns,
                        &cluster_id,
                        name,
                        PasswordAuthority::CurrentPassword(&pin),
                        &pin,
                    );
                    ctx.hsm_call("ChangeCryptoUserPassword", parameters, &[&cluster_id], call)
                        .await
                        .map_err(|e| {
                            hsm_failure(&format!("Checking the password of {name}"), &e)
                        })?;
                    log.push(format!(
                        "took over crypto user {name}, whose password is the file's"
                    ));
                    return Ok(record(logical_id, name, after));
                }
                if resumed {
                    log.push(format!(
                        "crypto user {name} was created by the interrupted run"
                    ));
                    return Ok(record(logical_id, name, after));
                }
                return Err(format!(
                    "crypto user {name} is already present on cluster {cluster_id}, and this stack did not create it: \
                     if it is yours and its password is the one in {}, set crypto_user.adopt: true; otherwise use \
                     another cluster",
                    text(after, "password")
                ));
            }
            let admin = ctx.admin_password().await?;
            let parameters = vec![("clusterId", txt(&cluster_id)), ("username", txt(name))];
            let call = plane.create_crypto_user(ns, &cluster_id, &admin, name, &pin);
            ctx.hsm_call("CreateCryptoUser", parameters, &[&cluster_id], call)
                .await
                .map_err(|e| hsm_failure(&format!("Creating crypto user {name}"), &e))?;
            log.push(format!(
                "created crypto user {name} on every HSM of {cluster_id}"
            ));
            Ok(record(logical_id, name, after))
        }
        (Kind::CryptoUser, Some(name)) => {
            let generation_changed = before.and_then(|b| b.get("generation"))
                != after.get("generation")
                || before.and_then(|b| b.get("password")) != after.get("password");
            if !generation_changed {
                return Ok(record(logical_id, &name, after));
            }
            // The password of the cluster the key store is on, which a move may have changed.
            let cluster_id = ctx.store_cluster(&ctx.props_of("key-store"))?;
            ctx.under_file_password(&cluster_id, false, log).await?;
            Ok(record(logical_id, &name, after))
        }
        (Kind::KeyStore, None) => {
            let cluster_id = ctx.physical("cluster")?;
            let name = text(after, "name");
            let found = match kms
                .describe_custom_key_stores(ctx.caller, None, Some(name), None, None)
                .await
            {
                Ok(page) => page.items.into_iter().next(),
                Err(KmsError::CustomKeyStoreNotFound(_)) => None,
                Err(e) => return Err(kms_failure("DescribeCustomKeyStores", &e)),
            };
            if let Some(existing) = found {
                if existing.cluster_id != cluster_id {
                    return Err(format!(
                        "a custom key store named {name} already exists ({}) on another cluster, {}",
                        existing.id, existing.cluster_id
                    ));
                }
                log.push(format!(
                    "key store {} ({name}) is already there",
                    existing.id
                ));
                return Ok(record(logical_id, &existing.id, after));
            }
            let view = plane
                .cluster(ns, &cluster_id)
                .await
                .map_err(|e| hsm_failure("Reading the cluster", &e))?
                .ok_or_else(|| format!("cluster {cluster_id} no longer exists"))?;
            let password = ctx.kmsuser_password().await?;
            let parameters = vec![
                ("customKeyStoreName", txt(name)),
                ("cloudHsmClusterId", txt(&cluster_id)),
            ];
            let request = CreateCustomKeyStoreRequest {
                name: name.to_owned(),
                cluster_id: Some(cluster_id.clone()),
                trust_anchor_pem: view.trust_anchor_pem,
                key_store_password: Some(password),
                store_type: None,
            };
            let call = kms.create_custom_key_store(ctx.caller, request);
            let id = ctx
                .kms_call("CreateCustomKeyStore", parameters, None, call)
                .await
                .map_err(|e| kms_failure("CreateCustomKeyStore", &e))?;
            log.push(format!(
                "created custom key store {id} ({name}) on {cluster_id}"
            ));
            Ok(record(logical_id, &id, after))
        }
        (Kind::KeyStore, Some(id)) => {
            let old_name = before.map(|b| text(b, "name")).unwrap_or_default();
            let new_name = text(after, "name");
            if old_name != new_name {
                let parameters = vec![
                    ("customKeyStoreId", txt(&id)),
                    ("newCustomKeyStoreName", txt(new_name)),
                ];
                let request = UpdateCustomKeyStoreRequest {
                    id: id.clone(),
                    new_name: Some(new_name.to_owned()),
                    ..UpdateCustomKeyStoreRequest::default()
                };
                let call = kms.update_custom_key_store(ctx.caller, request);
                ctx.kms_call("UpdateCustomKeyStore", parameters, None, call)
                    .await
                    .map_err(|e| kms_failure("UpdateCustomKeyStore", &e))?;
                log.push(format!(
                    "renamed key store {id} from {old_name} to {new_name}"
                ));
            }
            if before.and_then(|b| b.get("cluster")) != after.get("cluster") {
                let target = ctx.store_cluster(after)?;
                ctx.move_store(&id, &target, log).await?;
            }
            Ok(record(logical_id, &id, after))
        }
        (Kind::Connection, _) => {
            let store = ctx.physical("key-store")?;
            match ctx.settled_state(&store, "CONNECTING").await? {
                Some((state, _)) if state == "CONNECTED" => {
                    log.push(format!("key store {store} is connected"))
                }
                _ => ctx.connect(&store, log).await?,
            }
            Ok(record(logical_id, &store, after))
        }
        (Kind::Key, None) => {
            let custom = text(after, "key_store") == "custom";
            let key_spec: KeySpec = text(after, "key_spec")
                .parse()
                .map_err(|_| "bad key spec".to_owned())?;
            let key_usage: KeyUsage = text(after, "key_usage")
                .parse()
                .map_err(|_| "bad key usage".to_owned())?;
            let mut tags = tags_of(after);
            tags.push(Tag {
                key: STACK_TAG.to_owned(),
                value: format!("{}/{logical_id}", ctx.stack_name),
            });
            if resumed && let Some(found) = find_key(ctx, &tags[tags.len() - 1]).await? {
                log.push(format!("found key {found} made by the interrupted run"));
                return Ok(record(logical_id, &found, after));
            }
            // The record has the tags' keys only, and no key policy.
            let mut parameters = vec![
                ("description", txt(text(after, "description"))),
                ("keySpec", txt(key_spec.as_str())),
                ("keyUsage", txt(key_usage.as_str())),
                ("tagKeys", tag_keys(&tags)),
            ];
            let request = CreateKeyRequest {
                policy: after
                    .get("policy")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                description: Some(text(after, "description").to_owned()),
                key_usage: Some(key_usage),
                key_spec: Some(key_spec),
                origin: custom.then_some(Origin::AwsCloudhsm),
                custom_key_store_id: match custom {
                    true => Some(ctx.physical("key-store")?),
                    false => None,
                },
                tags,
                ..CreateKeyRequest::default()
            };
            if let Some(store) = &request.custom_key_store_id {
                parameters.push(("origin", txt("AWS_CLOUDHSM")));
                parameters.push(("customKeyStoreId", txt(store)));
            }
            let outcome = kms.create_key(ctx.caller, request).await;
            let created = outcome.as_ref().map(|key| key.arn()).into_iter();
            ctx.record_kms("CreateKey", parameters, created.collect(), &outcome)
                .await;
            let key = outcome.map_err(|e| kms_failure("CreateKey", &e))?;
            log.push(format!(
                "created key {} ({key_spec}{})",
                key.key_id.as_str(),
                if custom {
                    ", generated inside the HSMs"
                } else {
                    ""
                }
            ));
            Ok(record(logical_id, key.key_id.as_str(), after))
        }
        (Kind::Key, Some(key_id)) => {
            let field_changed = |field: &str| before.and_then(|b| b.get(field)) != after.get(field);
            if field_changed("description") {
                let description = text(after, "description");
                let parameters = vec![("keyId", txt(&key_id)), ("description", txt(description))];
                let call = kms.update_key_description(ctx.caller, &key_id, description.to_owned());
                ctx.kms_call("UpdateKeyDescription", parameters, Some(&key_id), call)
                    .await
                    .map_err(|e| kms_failure("UpdateKeyDescription", &e))?;
                log.push(format!("updated the description of {key_id}"));
            }
            if field_changed("policy") {
                match after.get("policy").and_then(Value::as_str) {
                    Some(policy) => {
                        let parameters =
                            vec![("keyId", txt(&key_id)), ("policyName", txt("default"))];
                        let call =
                            kms.put_key_policy(ctx.caller, &key_id, None, policy.to_owned(), false);
                        ctx.kms_call("PutKeyPolicy", parameters, Some(&key_id), call)
                            .await
                            .map_err(|e| kms_failure("PutKeyPolicy", &e))?;
                        log.push(format!("replaced the key policy of {key_id}"));
                    }
                    None => log.push(format!(
                        "the file no longer gives a policy for {key_id}: its policy is left as it is"
                    )),
                }
            }
            if field_changed("tags") {
                let old = before.map(tags_of).unwrap_or_default();
                let new = tags_of(after);
                let removed: Vec<String> = old
                    .iter()
                    .filter(|t| !new.iter().any(|n| n.key == t.key))
                    .map(|t| t.key.clone())
                    .collect();
                if !removed.is_empty() {
                    let parameters =
                        vec![("keyId", txt(&key_id)), ("tagKeys", list(removed.clone()))];
                    let call = kms.untag_resource(ctx.caller, &key_id, removed);
                    ctx.kms_call("UntagResource", parameters, Some(&key_id), call)
                        .await
                        .map_err(|e| kms_failure("UntagResource", &e))?;
                }
                if !new.is_empty() {
                    let parameters = vec![("keyId", txt(&key_id)), ("tagKeys", tag_keys(&new))];
                    let call = kms.tag_resource(ctx.caller, &key_id, new);
                    ctx.kms_call("TagResource", parameters, Some(&key_id), call)
                        .await
                        .map_err(|e| kms_failure("TagResource", &e))?;
                }
                log.push(format!("updated the tags of {key_id}"));
            }
            Ok(record(logical_id, &key_id, after))
        }
        (Kind::Alias, existing) => {
            let name = text(after, "name");
            let key_id = ctx.physical(text(after, "key"))?;
            let parameters = vec![("aliasName", txt(name)), ("targetKeyId", txt(&key_id))];
            match existing {
                None => {
                    let call = kms.create_alias(ctx.caller, name, &key_id);
                    match ctx
                        .kms_call("CreateAlias", parameters, Some(&key_id), call)
                        .await
                    {
                        Ok(()) => log.push(format!("created {name} for {key_id}")),
                        Err(KmsError::AlreadyExists(_)) => {
                            let target = kms
                                .describe_key(ctx.caller, name)
                                .await
                                .map_err(|e| kms_failure("DescribeKey", &e))?;
                            if target.key_id.as_str() != key_id {
                                return Err(format!(
                                    "alias {name} already exists and points at another key, {}",
                                    target.key_id.as_str()
                                ));
                            }
                            log.push(format!("{name} already points at {key_id}"));
                        }
                        Err(e) => return Err(kms_failure("CreateAlias", &e)),
                    }
                }
                Some(_) => {
                    let call = kms.update_alias(ctx.caller, name, &key_id);
                    ctx.kms_call("UpdateAlias", parameters, Some(&key_id), call)
                        .await
                        .map_err(|e| kms_failure("UpdateAlias", &e))?;
                    log.push(format!("pointed {name} at {key_id}"));
                }
            }
            Ok(record(logical_id, name, after))
        }
        (Kind::Grant, existing) => {
            let key_id = ctx.physical(text(after, "key"))?;
            if let Some(old_grant) = existing {
                let old_key = before
                    .map(|b| ctx.physical(text(b, "key")))
                    .transpose()?
                    .unwrap_or_else(|| key_id.clone());
                revoke(ctx, &old_key, &old_grant, log).await?;
            }
            let operations: Vec<String> = after
                .get("operations")
                .and_then(Value::as_array)
                .map(|ops| {
                    ops.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            let request = CreateGrantRequest {
                key_id: key_id.clone(),
                grantee_principal: text(after, "grantee").to_owned(),
                retiring_principal: after
                    .get("retiring_principal")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                operations,
                name: Some(text(after, "name").to_owned()),
                ..CreateGrantRequest::default()
            };
            let mut parameters = vec![
                ("keyId", txt(&key_id)),
                ("granteePrincipal", txt(&request.grantee_principal)),
                ("operations", list(request.operations.clone())),
                ("name", txt(text(after, "name"))),
            ];
            if let Some(retiring) = &request.retiring_principal {
                parameters.push(("retiringPrincipal", txt(retiring)));
            }
            let call = kms.create_grant(ctx.caller, request);
            let created = ctx
                .kms_call("CreateGrant", parameters, Some(&key_id), call)
                .await
                .map_err(|e| kms_failure("CreateGrant", &e))?;
            log.push(format!("created grant {} on {key_id}", created.grant_id));
            Ok(record(logical_id, &created.grant_id, after))
        }
    }
}

async fn revoke(
    ctx: &Ctx<'_>,
    key_id: &str,
    grant_id: &str,
    log: &mut Vec<String>,
) -> Result<(), String> {
    let parameters = vec![("keyId", txt(key_id)), ("grantId", txt(grant_id))];
    let key = Some(key_id).filter(|id| !id.is_empty());
    let call = ctx
        .stacks
        .kms
        .revoke_grant(ctx.caller, key_id, grant_id, false);
    match ctx.kms_call("RevokeGrant", parameters, key, call).await {
        Ok(()) => log.push(format!("revoked grant {grant_id} on {key_id}")),
        Err(KmsError::NotFound(_)) => log.push(format!("grant {grant_id} was already gone")),
        Err(e) => return Err(kms_failure("RevokeGrant", &e)),
    }
    Ok(())
}

/// The key of the caller's account tagged `tag`, if any (a key an interrupted run created).
async fn find_key(ctx: &Ctx<'_>, tag: &Tag) -> Result<Option<String>, String> {
    let kms = &ctx.stacks.kms;
    let mut marker: Option<String> = None;
    loop {
        let page = kms
            .list_keys(ctx.caller, Some(1000), marker.as_deref())
            .await
            .map_err(|e| kms_failure("ListKeys", &e))?;
        for entry in &page.items {
            if let Ok(key) = kms.describe_key(ctx.caller, entry.key_id.as_str()).await
                && key.state != KeyState::PendingDeletion
                && key.tags.contains(tag)
            {
                return Ok(Some(key.key_id.as_str().to_owned()));
            }
        }
        match page.next_marker {
            Some(next) => marker = Some(next),
            None => return Ok(None),
        }
    }
}

/// Why a resource is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Removal {
    /// The stack is deleted.
    StackDeletion,
    /// An apply whose file no longer declares the resource.
    Change,
    /// A failed apply is undone: the resource was created by it.
    Rollback,
}

/// Deletes (or keeps, saying why) a recorded resource.
pub(crate) async fn delete(
    ctx: &Ctx<'_>,
    resource: &StackResource,
    removal: Removal,
    log: &mut Vec<String>,
) -> Result<Effect, String> {
    let rollback = removal == Removal::Rollback;
    let logical_id = resource.logical_id.as_str();
    let id = resource.physical_id.as_str();
    let props: Value = serde_json::from_str(&resource.properties).unwrap_or(Value::Null);
    let plane = &ctx.stacks.plane;
    let kms = &ctx.stacks.kms;
    let ns = &ctx.caller.namespace;
    let forget = || Effect::Forget(logical_id.to_owned());
    let Some(kind) = Kind::of(logical_id) else {
        return Ok(forget());
    };
    match kind {
        Kind::Grant => {
            let key_id = ctx.physical(text(&props, "key")).unwrap_or_default();
            revoke(ctx, &key_id, id, log).await?;
            Ok(forget())
        }
        Kind::Alias => {
            let target = ctx.physical(text(&props, "key")).ok();
            let parameters = vec![("aliasName", txt(id))];
            let call = kms.delete_alias(ctx.caller, id);
            match ctx
                .kms_call("DeleteAlias", parameters, target.as_deref(), call)
                .await
            {
                Ok(()) => log.push(format!("deleted {id}")),
                Err(KmsError::NotFound(_)) => log.push(format!("{id} was already gone")),
                Err(e) => return Err(kms_failure("DeleteAlias", &e)),
            }
            Ok(forget())
        }
        Kind::Key => {
            let parameters = vec![
                ("keyId", txt(id)),
                (
                    "pendingWindowInDays",
                    CallParameter::Number(KEY_DELETION_DAYS),
                ),
            ];
            let call = kms.schedule_key_deletion(ctx.caller, id, Some(KEY_DELETION_DAYS));
            match ctx
                .kms_call("ScheduleKeyDeletion", parameters, Some(id), call)
                .await
            {
                Ok(scheduled) => log.push(format!(
                    "scheduled key {id} for deletion in {} days",
                    scheduled.pending_window_days
                )),
                Err(KmsError::NotFound(_)) => log.push(format!("key {id} was already gone")),
                Err(KmsError::InvalidState(message)) => log.push(format!(
                    "key {id} was not scheduled for deletion: {message}"
                )),
                Err(e) => return Err(kms_failure("ScheduleKeyDeletion", &e)),
            }
            Ok(forget())
        }
        Kind::Connection => {
            if !ctx.disconnect(id, log).await? {
                log.push(format!("key store {id} was not connected"));
            }
            Ok(forget())
        }
        Kind::KeyStore => {
            if ctx.key_store_state(id).await?.is_none() {
                log.push(format!("key store {id} was already gone"));
                return Ok(forget());
            }
            ctx.disconnect(id, log).await?;
            let wanted =
                rollback || props.get("delete_with_stack").and_then(Value::as_bool) != Some(false);
            if !wanted {
                let reason = format!(
                    "key store {id} kept, disconnected: the stack file says delete_with_stack: false"
                );
                log.push(reason.clone());
                return Ok(Effect::Keep(logical_id.to_owned(), reason));
            }
            let parameters = vec![("customKeyStoreId", txt(id))];
            let call = kms.delete_custom_key_store(ctx.caller, id);
            match ctx
                .kms_call("DeleteCustomKeyStore", parameters, None, call)
                .await
            {
                Ok(()) => {
                    log.push(format!("deleted key store {id}"));
                    Ok(forget())
                }
                Err(KmsError::CustomKeyStoreHasCmks(_)) => {
                    let reason = format!(
                        "key store {id} disconnected, not deleted: it still has KMS keys (keys scheduled for \
                         deletion count until they are deleted); delete the stack again after that"
                    );
                    log.push(reason.clone());
                    Ok(Effect::Keep(logical_id.to_owned(), reason))
                }
                Err(e) => Err(kms_failure("DeleteCustomKeyStore", &e)),
            }
        }
        Kind::CryptoUser | Kind::Activation | Kind::Certificate => {
            if let Some(reason) = ctx.cluster_must_stay(rollback).await? {
                log.push(reason.clone());
                return Ok(Effect::Keep(logical_id.to_owned(), reason));
            }
            log.push(format!("{logical_id} goes with the cluster"));
            Ok(forget())
        }
        Kind::Hsm => {
            // An HSM leaves a cluster that stays (fewer HSMs in the file, or the undoing of an added
            // one), or goes with its cluster when the stack is deleted.
            let leaves_cluster = match removal {
                Removal::StackDeletion => false,
                Removal::Change => ctx.parsed.file.cluster.is_some(),
                Removal::Rollback => true,
            };
            if !leaves_cluster && let Some(reason) = ctx.cluster_must_stay(rollback).await? {
                log.push(reason.clone());
                return Ok(Effect::Keep(logical_id.to_owned(), reason));
            }
            let cluster_id = ctx.physical("cluster")?;
            let store = match leaves_cluster {
                true => ctx.store_on_cluster(&cluster_id).await?,
                false => None,
            };
            if let Some(store) = &store
                && let Some(reason) = ctx.too_few_without(&cluster_id, id, store).await?
            {
                if removal == Removal::Rollback {
                    log.push(reason.clone());
                    return Ok(Effect::Keep(logical_id.to_owned(), reason));
                }
                return Err(reason);
            }
            // DeleteHsm takes the HSM out of a connected key store's sessions before it frees the
            // token for other clusters: the store goes on with the other HSMs, connected throughout.
            if store.is_some() {
                ctx.await_store_reconnection(&cluster_id).await?;
            }
            let parameters = vec![("clusterId", txt(&cluster_id)), ("hsmId", txt(id))];
            let selector = HsmSelector::HsmId(id.to_owned());
            let call = plane.delete_hsm(ns, &cluster_id, &selector);
            let deleted = match ctx
                .hsm_call("DeleteHsm", parameters, &[&cluster_id, id], call)
                .await
            {
                Ok(_) => {
                    log.push(format!("deleted HSM {id}; its token is free again"));
                    Ok(())
                }
                Err(strongroom_cloudhsm::Error::ResourceNotFound(_)) => {
                    log.push(format!("HSM {id} was already gone"));
                    Ok(())
                }
                Err(e) => Err(hsm_failure("DeleteHsm", &e)),
            };
            // A run interrupted by a stop may have left a store the stack keeps connected
            // disconnected (earlier versions disconnected it here): connect it again.
            if let Some(store) = &store
                && ctx.connected_store_on_cluster(&cluster_id).await?.is_none()
            {
                ctx.restore_connection(store, false, log).await?;
            }
            deleted?;
            Ok(forget())
        }
        Kind::Cluster => {
            if let Some(reason) = ctx.cluster_must_stay(rollback).await? {
                log.push(reason.clone());
                return Ok(Effect::Keep(logical_id.to_owned(), reason));
            }
            let parameters = vec![("clusterId", txt(id))];
            let call = plane.delete_cluster(ns, id);
            match ctx.hsm_call("DeleteCluster", parameters, &[id], call).await {
                Ok(_) => log.push(format!("deleted cluster {id}")),
                Err(strongroom_cloudhsm::Error::ResourceNotFound(_)) => {
                    log.push(format!("cluster {id} was already gone"))
                }
                Err(e) => return Err(hsm_failure("DeleteCluster", &e)),
            }
            Ok(forget())
        }
    }
}
