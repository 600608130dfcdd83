//! Multi-Region keys: ReplicateKey, UpdatePrimaryRegion, DescribeKey's `MultiRegionConfiguration`, the
//! deletion rules of multi-Region keys, and keeping the shared properties of related keys in step.
//!
//! Related multi-Region keys share their account and key id and live in different Regions of the same
//! server; each is an ordinary key record in its own namespace, with its own policy, tags, aliases, grants,
//! description and state. The set's membership (which Region is primary, which are replicas) and the
//! per-Region bookkeeping live in storage's `MultiRegionStore`; a primary never replicated has no set.
//!
//! Shared properties come from the primary: the key material (unwrapped with the primary's ARN and wrapped
//! again for each replica's, since the root key binds wrapped material to a key ARN) and the automatic
//! rotation settings. A write to a primary copies them to its replicas ([`Kms::sync_replicas`]); a replica
//! never rotates on its own (its `rotation.next` stays empty), so new material only ever comes from the
//! primary and reaches every replica with the same material id, which is what lets a ciphertext made in
//! one Region decrypt in another. Imported material is the exception: its owner imports it into each key
//! of the set, and a write to the primary only tells the replicas which material to expect and which was
//! rotated in (`import::align_replica_materials`).
//!
//! Transient states are real: a new replica is `Creating`, and both keys of an UpdatePrimaryRegion are
//! `Updating`, for [`TRANSIENT_STATE`] by the service's clock; the state then ends when a request touches
//! the key or the scheduler runs, whichever comes first.
//!
//! **Invariant:** set membership is written before a new replica's key record and removed after a deleted
//! key's record, so after a crash the only inconsistency is a member without a key, which
//! [`Kms::run_multi_region_work`] removes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use strongroom_storage::multi_region::{MultiRegionMember, MultiRegionRole, Transition};
use strongroom_types::{
    Deletion, KeyManager, KeyRecord, KeyRef, KeyState, Namespace, Origin, Region, Tag, Timestamp,
};

use crate::authz::{self, RequestFacts};
use crate::keyring::{Forms, not_found, parse_key_ref, wrap_context};
use crate::keys::{ScheduledDeletion, check_customer_managed, check_policy, dedup_tags};
use crate::state::{self, OpClass};
use crate::tags::check_new_tags;
use crate::{Caller, Error, Kms};

/// How long a new replica stays `Creating`, and the keys of an UpdatePrimaryRegion stay `Updating`.
///
/// AWS documents "a few seconds"; clients are told to retry on `KMSInvalidStateException` meanwhile.
pub const TRANSIENT_STATE: Duration = Duration::from_secs(2);

/// The waiting period of a primary whose deletion was scheduled before this server kept one.
const DEFAULT_DELETION_WINDOW_DAYS: u32 = 30;

/// ReplicateKey's parameters.
#[derive(Debug, Default)]
pub struct ReplicateKeyRequest {
    /// The primary key, by key id or key ARN.
    pub key_id: String,
    /// The Region of the new replica.
    pub replica_region: String,
    /// The replica's key policy; the default key policy when absent.
    pub policy: Option<String>,
    /// Skips the policy lockout safety check.
    pub bypass_policy_lockout_safety_check: bool,
    /// The replica's description.
    pub description: Option<String>,
    /// The replica's tags.
    pub tags: Vec<Tag>,
}

/// A key's place in its set of related multi-Region keys, as DescribeKey shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultiRegionView {
    /// Whether the described key is the primary or a replica.
    pub role: MultiRegionRole,
    /// The primary key's ARN and Region.
    pub primary: RelatedKey,
    /// Every replica's ARN and Region, ordered by Region.
    pub replicas: Vec<RelatedKey>,
    /// The waiting period of a primary in `PendingReplicaDeletion`.
    pub pending_window_days: Option<u32>,
}

/// One key of a set of related multi-Region keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelatedKey {
    /// Its key ARN.
    pub arn: String,
    /// Its Region.
    pub region: Region,
}

/// ReplicateKey's result.
#[derive(Debug)]
pub struct ReplicatedKey {
    /// The new replica, with its policy and tags.
    pub record: KeyRecord,
    /// Its place in the set.
    pub view: MultiRegionView,
}

/// The multi-Region settings of the service: which Regions replicas may go to.
#[derive(Debug)]
pub(crate) struct MultiRegion {
    /// The Regions this server serves; `None` accepts any Region name.
    regions: Option<Vec<Region>>,
    /// Set when the sets may disagree with the key records (at start, after a failed write); the next
    /// scheduled run reconciles them.
    needs_reconcile: AtomicBool,
}

impl Default for MultiRegion {
    fn default() -> MultiRegion {
        MultiRegion {
            regions: None,
            needs_reconcile: AtomicBool::new(true),
        }
    }
}

/// Whether a key reference names a multi-Region key by id or ARN (`mrk-` ids).
pub(crate) fn names_multi_region_key(text: &str) -> bool {
    match parse_key_ref(text) {
        Ok(KeyRef::Id(id)) | Ok(KeyRef::KeyArn(_, id)) => id.as_str().starts_with("mrk-"),
        _ => false,
    }
}

fn namespace_in(namespace: &Namespace, region: &Region) -> Namespace {
    Namespace {
        account: namespace.account.clone(),
        region: region.clone(),
    }
}

fn parse_region(text: &str, field: &str) -> Result<Region, Error> {
    text.parse().map_err(|_| {
        Error::Validation(format!(
            "1 validation error detected: Value '{text}' at '{field}' failed to satisfy constraint: Member \
             must satisfy regular expression pattern: ^([a-z]+-){{2,3}}\\d+$"
        ))
    })
}

fn member_of<'a>(
    members: &'a mut [MultiRegionMember],
    region: &Region,
) -> Option<&'a mut MultiRegionMember> {
    members.iter_mut().find(|member| &member.region == region)
}

/// The set as written for a primary never replicated before: just itself.
fn lone_primary(region: &Region) -> Vec<MultiRegionMember> {
    vec![MultiRegionMember {
        region: region.clone(),
        role: MultiRegionRole::Primary,
        transition: None,
        pending_window_days: None,
    }]
}

/// The primary's Region in a set, or `home` for a primary never replicated.
fn primary_region(members: &[MultiRegionMember], home: &Region) -> Region {
    members
        .iter()
        .find(|member| member.role == MultiRegionRole::Primary)
        .map(|member| member.region.clone())
        .unwrap_or_else(|| home.clone())
}

/// The role of the key in Region `home` in a set (`members` is empty for a primary never replicated).
pub(crate) fn role_in(members: &[MultiRegionMember], home: &Region) -> MultiRegionRole {
    if &primary_region(members, home) == home {
        MultiRegionRole::Primary
    } else {
        MultiRegionRole::Replica
    }
}

fn view_of(record: &KeyRecord, members: &[MultiRegionMember]) -> MultiRegionView {
    let home = &record.namespace.region;
    let primary = primary_region(members, home);
    let related = |region: &Region| RelatedKey {
        arn: namespace_in(&record.namespace, region).key_arn(&record.key_id),
        region: region.clone(),
    };
    let replicas = members
        .iter()
        .filter(|member| member.role == MultiRegionRole::Replica)
        .map(|member| related(&member.region))
        .collect();
    let pending_window_days = match record.state {
        KeyState::PendingReplicaDeletion => Some(
            members
                .iter()
                .find(|member| member.role == MultiRegionRole::Primary)
                .and_then(|member| member.pending_window_days)
                .unwrap_or(DEFAULT_DELETION_WINDOW_DAYS),
        ),
        _ => None,
    };
    MultiRegionView {
        role: role_in(members, home),
        primary: related(&primary),
        replicas,
        pending_window_days,
    }
}

/// The refusal of an operation only a primary key accepts, naming the primary to use instead.
fn not_primary(record: &KeyRecord, primary_arn: &str, instead: &str) -> Error {
    Error::UnsupportedOperation(format!(
        "{} is not a multi-Region primary key: it is a replica. {instead} the primary key, {primary_arn}.",
        record.arn()
    ))
}

/// The key-state rules ReplicateKey and UpdatePrimaryRegion share (the key-state table's rows for them).
fn check_state_for_set_change(record: &KeyRecord, allow_updating: bool) -> Result<(), Error> {
    let arn = record.arn();
    match record.state {
        KeyState::Enabled => Ok(()),
        KeyState::Updating if allow_updating => Ok(()),
        KeyState::Updating => Err(Error::InvalidState(format!("{arn} is updating."))),
        KeyState::Disabled => Err(Error::Disabled(format!("{arn} is disabled."))),
        KeyState::PendingDeletion | KeyState::PendingReplicaDeletion => {
            Err(Error::InvalidState(format!("{arn} is pending deletion.")))
        }
        KeyState::PendingImport => Err(Error::InvalidState(format!("{arn} is pending import."))),
        KeyState::Creating => Err(Error::InvalidState(format!("{arn} is creating."))),
        KeyState::Unavailable => Err(Error::InvalidState(format!("{arn} is unavailable."))),
    }
}

/// The state a new replica takes once created: without material until it is imported, for imported keys.
fn state_after_creation(record: &KeyRecord) -> KeyState {
    match record.origin {
        Origin::External => KeyState::PendingImport,
        _ => KeyState::Enabled,
    }
}

impl Kms {
    /// Lets ReplicateKey and UpdatePrimaryRegion reach only the Regions this server serves.
    pub fn with_regions(mut self, regions: Option<Vec<Region>>) -> Kms {
        self.multi_region.regions = regions;
        self
    }

    /// ReplicateKey: a replica of a multi-Region primary key in another Region, `Creating` at first.
    pub async fn replicate_key(
        &self,
        caller: &Caller,
        req: ReplicateKeyRequest,
    ) -> Result<ReplicatedKey, Error> {
        let replica_region = parse_region(&req.replica_region, "replicaRegion")?;
        if let Some(regions) = &self.multi_region.regions
            && !regions.contains(&replica_region)
        {
            let served: Vec<&str> = regions.iter().map(|r| r.as_str()).collect();
            return Err(Error::UnsupportedOperation(format!(
                "Region {replica_region} is not served by this server, so it cannot hold a replica key. The \
                 server serves {}.",
                served.join(", ")
            )));
        }
        let live = self.resolve(caller, &req.key_id, Forms::IdOrArn).await?;
        // kms:MultiRegionKeyType comes from the cached key.
        let facts = RequestFacts {
            replica_region: Some(replica_region.as_str()),
            request_tags: (!req.tags.is_empty()).then_some(&req.tags[..]),
            ..RequestFacts::default()
        };
        self.authorize(caller, "kms:ReplicateKey", &live, facts)?;
        if !live.record.multi_region {
            return Err(Error::UnsupportedOperation(format!(
                "{} is not a multi-Region key: only a multi-Region primary key (created with MultiRegion \
                 true) can be replicated.",
                live.arn_str()
            )));
        }
        if let Some(policy) = &req.policy {
            check_policy(policy)?;
        }
        check_new_tags(&[], &req.tags)?;

        let _writes = self.writes.lock().await;
        let primary = self.key_for_update(&live).await?;
        check_customer_managed(&primary)?;
        let account = &primary.namespace.account;
        let mut members = self
            .store
            .multi_region_set(account, &primary.key_id)
            .await?;
        let home = &primary.namespace.region;
        let primary_home = primary_region(&members, home);
        if &primary_home != home {
            let primary_arn =
                namespace_in(&primary.namespace, &primary_home).key_arn(&primary.key_id);
            return Err(not_primary(&primary, &primary_arn, "Replicate"));
        }
        check_state_for_set_change(&primary, false)?;
        let replica_namespace = namespace_in(&primary.namespace, &replica_region);
        let replica_arn = replica_namespace.key_arn(&primary.key_id);
        if &replica_region == home {
            return Err(Error::AlreadyExists(format!(
                "{replica_arn} already exists: it is the primary key. A replica must be in a Region other \
                 than its primary key's."
            )));
        }
        if members.iter().any(|member| member.region == replica_region) {
            return Err(Error::AlreadyExists(format!(
                "{replica_arn} already exists: Region {replica_region} already has a replica of this key \
                 (one replica per Region)."
            )));
        }

        let now = self.clock.now();
        let mut replica = primary.clone();
        replica.namespace = replica_namespace;
        replica.created = now;
        replica.description = req.description.unwrap_or_default();
        replica.key_manager = KeyManager::Customer;
        replica.state = KeyState::Creating;
        replica.deletion = None;
        replica.policy = req
            .policy
            .unwrap_or_else(|| strongroom_policy::default_key_policy(account.as_str()));
        replica.tags = dedup_tags(req.tags);
        // A replica never rotates on its own: new material comes from the primary.
        replica.rotation.next = None;
        replica.materials = match primary.origin {
            // A replica of a key with imported material starts without material, as in AWS, but knows
            // which material it must be given (the primary's, imported into it separately).
            Origin::External => crate::import::awaiting_import(&primary.materials),
            _ => self.rewrap_materials(&primary, &replica, &[])?,
        };
        // Making the replica is creating a key in its Region: the caller's identity policies must allow
        // kms:CreateKey there too.
        let create_facts = RequestFacts {
            bypass_lockout_check: Some(req.bypass_policy_lockout_safety_check),
            multi_region_key_type: Some("REPLICA"),
            request_tags: (!replica.tags.is_empty()).then_some(&replica.tags[..]),
            ..RequestFacts::default()
        };
        authz::authorize_identity(
            caller,
            "kms:CreateKey",
            "*",
            &replica,
            self.identities.as_deref(),
            now.millis(),
            create_facts,
        )?;
        authz::authorize_tags_on_create(
            caller,
            &replica,
            self.identities.as_deref(),
            now.millis(),
            create_facts,
        )?;
        if !req.bypass_policy_lockout_safety_check {
            let policy = crate::keys::parse_key_policy(&replica.policy)?;
            // A new replica has no aliases yet.
            let key_facts = RequestFacts {
                resource_aliases: Some(&[]),
                ..create_facts
            };
            authz::check_lockout(
                caller,
                &replica,
                &policy,
                self.identities.as_deref(),
                now.millis(),
                key_facts,
            )?;
        }

        if members.is_empty() {
            members = lone_primary(home);
        }
        members.push(MultiRegionMember {
            region: replica_region.clone(),
            role: MultiRegionRole::Replica,
            transition: Some(Transition {
                until: now.plus(TRANSIENT_STATE),
                state_after: state_after_creation(&primary),
            }),
            pending_window_days: None,
        });
        members.sort_by(|a, b| a.region.cmp(&b.region));
        // Membership first: a crash before the key is written leaves a member without a key, which the
        // scheduled reconciliation removes.
        self.store
            .put_multi_region_set(account, &primary.key_id, &members)
            .await?;
        if let Err(error) = self.insert_key(replica.clone()).await {
            members.retain(|member| member.region != replica_region);
            if members.len() == 1 {
                members.clear();
            }
            self.store
                .put_multi_region_set(account, &primary.key_id, &members)
                .await?;
            return Err(match error {
                Error::AlreadyExists(_) => {
                    Error::AlreadyExists(format!("{replica_arn} already exists."))
                }
                other => other,
            });
        }
        tracing::info!(key_arn = %replica_arn, "replicated a multi-Region key");
        self.events.replica_created(&replica);
        let view = view_of(&replica, &members);
        Ok(ReplicatedKey {
            record: replica,
            view,
        })
    }

    /// UpdatePrimaryRegion: makes the replica in `primary_region` the primary key and the current primary
    /// a replica; both are `Updating` for a moment.
    pub async fn update_primary_region(
        &self,
        caller: &Caller,
        key_id: &str,
        new_primary_region: &str,
    ) -> Result<(), Error> {
        let target_region = parse_region(new_primary_region, "primaryRegion")?;
        let live = self.resolve(caller, key_id, Forms::IdOrArn).await?;
        // kms:MultiRegionKeyType comes from the cached key.
        let facts = RequestFacts {
            primary_region: Some(target_region.as_str()),
            ..RequestFacts::default()
        };
        self.authorize(caller, "kms:UpdatePrimaryRegion", &live, facts)?;
        if !live.record.multi_region {
            return Err(Error::UnsupportedOperation(format!(
                "{} is not a multi-Region key: only a multi-Region primary key has a primary Region to change.",
                live.arn_str()
            )));
        }
        let home = live.record.namespace.region.clone();
        let target_namespace = namespace_in(&live.record.namespace, &target_region);
        if let Some(view) = self.multi_region_view(&live.record).await?
            && view.role == MultiRegionRole::Replica
        {
            return Err(not_primary(
                &live.record,
                &view.primary.arn,
                "Call UpdatePrimaryRegion on",
            ));
        }
        if target_region == home {
            return Err(Error::UnsupportedOperation(format!(
                "{} is already the primary key in Region {home}; name the Region of a replica key.",
                live.arn_str()
            )));
        }
        // The replica's own key policy must allow it too; resolved before taking the write lock, since
        // loading a key may do its scheduled work under that lock.
        let target = self
            .key(&target_namespace, &live.record.key_id)
            .await?
            .ok_or_else(|| not_found(&target_namespace, &live.record.key_id))?;
        self.authorize(caller, "kms:UpdatePrimaryRegion", &target, facts)?;

        let _writes = self.writes.lock().await;
        let mut primary = self.key_for_update(&live).await?;
        check_customer_managed(&primary)?;
        let account = primary.namespace.account.clone();
        let mut members = self
            .store
            .multi_region_set(&account, &primary.key_id)
            .await?;
        let primary_home = primary_region(&members, &home);
        if primary_home != home {
            let primary_arn =
                namespace_in(&primary.namespace, &primary_home).key_arn(&primary.key_id);
            return Err(not_primary(
                &primary,
                &primary_arn,
                "Call UpdatePrimaryRegion on",
            ));
        }
        if !members.iter().any(|member| member.region == target_region) {
            return Err(not_found(&target_namespace, &primary.key_id));
        }
        let mut replica = self.key_for_update(&target).await?;
        check_state_for_set_change(&primary, true)?;
        check_state_for_set_change(&replica, true)?;

        let until = self.clock.now().plus(TRANSIENT_STATE);
        for member in members.iter_mut() {
            let record = if member.region == home {
                member.role = MultiRegionRole::Replica;
                &primary
            } else if member.region == target_region {
                member.role = MultiRegionRole::Primary;
                &replica
            } else {
                continue;
            };
            // A key already Updating returns to the state it had before the first update.
            let state_after = member
                .transition
                .map(|transition| transition.state_after)
                .unwrap_or(record.state);
            member.transition = Some(Transition { until, state_after });
        }
        self.store
            .put_multi_region_set(&account, &primary.key_id, &members)
            .await?;
        // The new primary carries the rotation schedule; the new replica never rotates on its own.
        replica.rotation.next = primary.rotation.next;
        primary.rotation.next = None;
        primary.state = KeyState::Updating;
        replica.state = KeyState::Updating;
        for record in [primary, replica] {
            self.store.put_key(&record).await?;
            // The cached keys take their new roles from the set just written.
            self.recache_key(record).await?;
        }
        tracing::info!(key_id = %live.record.key_id, "moved the primary of a multi-Region key to {target_region}");
        Ok(())
    }

    /// The `MultiRegionConfiguration` of a multi-Region key; `None` for a single-Region key.
    pub async fn multi_region_view(
        &self,
        record: &KeyRecord,
    ) -> Result<Option<MultiRegionView>, Error> {
        if !record.multi_region {
            return Ok(None);
        }
        let members = self
            .store
            .multi_region_set(&record.namespace.account, &record.key_id)
            .await?;
        Ok(Some(view_of(record, &members)))
    }

    /// Refuses a change of the shared rotation settings or material on a replica: they are set on the
    /// primary key and copied to its replicas.
    pub(crate) async fn refuse_on_replica(
        &self,
        caller: &Caller,
        key_id: &str,
        operation: &str,
    ) -> Result<(), Error> {
        if !names_multi_region_key(key_id) {
            return Ok(());
        }
        let live = self.resolve(caller, key_id, Forms::IdOrArn).await?;
        let Some(view) = self.multi_region_view(&live.record).await? else {
            return Ok(());
        };
        match view.role {
            MultiRegionRole::Primary => Ok(()),
            MultiRegionRole::Replica => Err(Error::UnsupportedOperation(format!(
                "{} is a multi-Region replica key: {operation} works only on the primary key, {}, whose \
                 rotation settings and key material its replicas share.",
                live.arn_str(),
                view.primary.arn
            ))),
        }
    }

    /// The ARNs of the replica keys of `record`'s set that do not hold imported material `id` (never
    /// imported, deleted or expired), ordered by Region; empty for a key without replicas. `record` is
    /// taken as it is (the caller may hold a fresher copy than storage); the others are read from storage.
    pub(crate) async fn replicas_lacking(
        &self,
        record: &KeyRecord,
        id: strongroom_types::KeyMaterialId,
    ) -> Result<Vec<String>, Error> {
        if !record.multi_region {
            return Ok(Vec::new());
        }
        let members = self
            .store
            .multi_region_set(&record.namespace.account, &record.key_id)
            .await?;
        let mut lacking = Vec::new();
        for member in members {
            if member.role != MultiRegionRole::Replica {
                continue;
            }
            let namespace = namespace_in(&record.namespace, &member.region);
            let holds = if member.region == record.namespace.region {
                crate::import::holds_material(record, id)
            } else {
                match self.store.key(&namespace, &record.key_id).await? {
                    Some(replica) => crate::import::holds_material(&replica, id),
                    // A member whose key is gone (a crash mid-deletion) is no replica to wait for.
                    None => continue,
                }
            };
            if !holds {
                lacking.push(namespace.key_arn(&record.key_id));
            }
        }
        Ok(lacking)
    }

    /// The automatic rotation settings a key shows: a replica shows its primary's schedule.
    pub(crate) async fn shared_rotation(
        &self,
        record: &KeyRecord,
    ) -> Result<strongroom_types::Rotation, Error> {
        let Some(view) = self.multi_region_view(record).await? else {
            return Ok(record.rotation);
        };
        if view.role == MultiRegionRole::Primary {
            return Ok(record.rotation);
        }
        let primary_namespace = namespace_in(&record.namespace, &view.primary.region);
        match self.store.key(&primary_namespace, &record.key_id).await? {
            Some(primary) => Ok(primary.rotation),
            None => Ok(record.rotation),
        }
    }

    /// ScheduleKeyDeletion of a multi-Region key: a primary with replicas waits in
    /// `PendingReplicaDeletion` until its last replica is deleted, then its waiting period begins.
    pub(crate) async fn schedule_multi_region_deletion(
        &self,
        caller: &Caller,
        key_id: &str,
        days: u32,
        facts: RequestFacts<'_>,
    ) -> Result<ScheduledDeletion, Error> {
        let live = self.resolve(caller, key_id, Forms::IdOrArn).await?;
        self.authorize(caller, "kms:ScheduleKeyDeletion", &live, facts)?;
        let _writes = self.writes.lock().await;
        let mut record = self.key_for_update(&live).await?;
        check_customer_managed(&record)?;
        state::check(&record, OpClass::NotPendingDeletion)?;
        if record.state == KeyState::Updating {
            return Err(Error::InvalidState(format!(
                "{} is updating.",
                record.arn()
            )));
        }
        let account = record.namespace.account.clone();
        let mut members = self
            .store
            .multi_region_set(&account, &record.key_id)
            .await?;
        let home = record.namespace.region.clone();
        let is_primary = primary_region(&members, &home) == home;
        let has_replicas = members
            .iter()
            .any(|member| member.role == MultiRegionRole::Replica);
        let scheduled = if is_primary && has_replicas {
            if let Some(member) = member_of(&mut members, &home) {
                member.pending_window_days = Some(days);
            }
            self.store
                .put_multi_region_set(&account, &record.key_id, &members)
                .await?;
            record.state = KeyState::PendingReplicaDeletion;
            record.deletion = None;
            ScheduledDeletion {
                key_arn: record.arn(),
                deletion_date: None,
                key_state: KeyState::PendingReplicaDeletion,
                pending_window_days: days,
            }
        } else {
            let date = self.clock.now().plus_days(days);
            record.state = KeyState::PendingDeletion;
            record.deletion = Some(Deletion {
                date,
                window_days: days,
            });
            ScheduledDeletion {
                key_arn: record.arn(),
                deletion_date: Some(date),
                key_state: KeyState::PendingDeletion,
                pending_window_days: days,
            }
        };
        self.store.put_key(&record).await?;
        self.cache_key(record).await?;
        Ok(scheduled)
    }

    /// Ends a transient state (`Creating`, `Updating`) whose time is up; call with `writes` held, from the
    /// key's scheduled work. Stores the key if its state changed.
    pub(crate) async fn end_transient_state(
        &self,
        record: &mut KeyRecord,
        now: Timestamp,
    ) -> Result<(), Error> {
        let account = record.namespace.account.clone();
        let mut members = self
            .store
            .multi_region_set(&account, &record.key_id)
            .await?;
        let region = record.namespace.region.clone();
        let transition = member_of(&mut members, &region).and_then(|member| member.transition);
        let state_after = match transition {
            Some(transition) if transition.until > now => return Ok(()),
            Some(transition) => transition.state_after,
            // No record of the transition (a set lost to a crash): end it now rather than never.
            None => match record.state {
                KeyState::Creating => state_after_creation(record),
                _ => KeyState::Enabled,
            },
        };
        if let Some(member) = member_of(&mut members, &region) {
            member.transition = None;
            self.store
                .put_multi_region_set(&account, &record.key_id, &members)
                .await?;
        }
        record.state = state_after;
        self.store.put_key(record).await?;
        tracing::info!(key_arn = %record.arn(), state = %state_after, "a multi-Region key's transient state ended");
        Ok(())
    }

    /// Copies the shared properties of a primary key (material and rotation settings) to its replicas;
    /// call with `writes` held, after the primary was stored. Does nothing for other keys.
    pub(crate) async fn sync_replicas(&self, primary: &KeyRecord) -> Result<(), Error> {
        if !primary.multi_region {
            return Ok(());
        }
        let members = self
            .store
            .multi_region_set(&primary.namespace.account, &primary.key_id)
            .await?;
        let home = &primary.namespace.region;
        if members.is_empty() || &primary_region(&members, home) != home {
            return Ok(());
        }
        let synced = self.copy_to_replicas(primary, &members).await;
        if synced.is_err() {
            // Retried by the next scheduled run.
            self.multi_region
                .needs_reconcile
                .store(true, Ordering::Relaxed);
        }
        synced
    }

    async fn copy_to_replicas(
        &self,
        primary: &KeyRecord,
        members: &[MultiRegionMember],
    ) -> Result<(), Error> {
        for member in members {
            if member.role != MultiRegionRole::Replica {
                continue;
            }
            let namespace = namespace_in(&primary.namespace, &member.region);
            let Some(mut replica) = self.store.key(&namespace, &primary.key_id).await? else {
                continue;
            };
            let before = replica.clone();
            replica.rotation.enabled = primary.rotation.enabled;
            replica.rotation.period_days = primary.rotation.period_days;
            replica.rotation.on_demand_started = primary.rotation.on_demand_started;
            replica.rotation.next = None;
            // Imported material is imported into each key of the set by its owner, not copied; the replica
            // learns of new material and of its rotation.
            if primary.origin == Origin::External {
                crate::import::align_replica_materials(primary, &mut replica);
            } else {
                replica.materials = self.rewrap_materials(primary, &replica, &replica.materials)?;
            }
            if replica != before {
                self.store.put_key(&replica).await?;
                tracing::info!(key_arn = %replica.arn(), "copied shared properties to a multi-Region replica");
                self.cache_key(replica).await?;
            }
        }
        Ok(())
    }

    /// The primary's materials, in its order, wrapped for `replica`'s ARN; a material the replica already
    /// holds (in `existing`) keeps its wrapping.
    fn rewrap_materials(
        &self,
        primary: &KeyRecord,
        replica: &KeyRecord,
        existing: &[strongroom_types::KeyMaterial],
    ) -> Result<Vec<strongroom_types::KeyMaterial>, Error> {
        let mut out = Vec::with_capacity(primary.materials.len());
        for material in &primary.materials {
            if let Some(held) = existing.iter().find(|held| held.id == material.id) {
                out.push(held.clone());
                continue;
            }
            let secret = self
                .root_key
                .unwrap(&wrap_context(primary, &material.id), &material.wrapped)?;
            let mut copy = material.clone();
            copy.wrapped = self
                .root_key
                .wrap(&wrap_context(replica, &material.id), &secret)?;
            out.push(copy);
        }
        Ok(out)
    }

    /// After a multi-Region key was deleted: removes it from its set, and once a primary waiting in
    /// `PendingReplicaDeletion` has no replica left, starts its waiting period. Call with `writes` held.
    pub(crate) async fn multi_region_key_deleted(&self, record: &KeyRecord) -> Result<(), Error> {
        if !record.multi_region {
            return Ok(());
        }
        let account = &record.namespace.account;
        let mut members = self.store.multi_region_set(account, &record.key_id).await?;
        if members.is_empty() {
            return Ok(());
        }
        members.retain(|member| member.region != record.namespace.region);
        let replicas_left = members
            .iter()
            .any(|member| member.role == MultiRegionRole::Replica);
        let primary = members
            .iter()
            .find(|member| member.role == MultiRegionRole::Primary)
            .cloned();
        if let Some(primary_member) = &primary
            && !replicas_left
        {
            let namespace = namespace_in(&record.namespace, &primary_member.region);
            if let Some(mut primary_record) = self.store.key(&namespace, &record.key_id).await?
                && primary_record.state == KeyState::PendingReplicaDeletion
            {
                let days = primary_member
                    .pending_window_days
                    .unwrap_or(DEFAULT_DELETION_WINDOW_DAYS);
                primary_record.state = KeyState::PendingDeletion;
                primary_record.deletion = Some(Deletion {
                    date: self.clock.now().plus_days(days),
                    window_days: days,
                });
                self.store.put_key(&primary_record).await?;
                tracing::info!(key_arn = %primary_record.arn(), "the last replica is deleted: the primary's waiting period begins");
                self.cache_key(primary_record).await?;
            }
        }
        // A primary alone again has no set.
        if !replicas_left {
            members.clear();
        }
        self.store
            .put_multi_region_set(account, &record.key_id, &members)
            .await?;
        Ok(())
    }

    /// The scheduler's share of multi-Region work: ends transient states that are due, and reconciles the
    /// sets with the key records when a crash or a failed write may have left them apart.
    pub(crate) async fn run_multi_region_work(&self) -> Result<usize, Error> {
        let now = self.clock.now();
        let due = self.store.multi_region_transitions_due(now).await?;
        let mut done = 0;
        for (account, key_id) in &due {
            let _writes = self.writes.lock().await;
            let members = self.store.multi_region_set(account, key_id).await?;
            let regions: Vec<Region> = members
                .iter()
                .filter(|member| member.transition.is_some_and(|t| t.until <= now))
                .map(|member| member.region.clone())
                .collect();
            for region in regions {
                let namespace = Namespace {
                    account: account.clone(),
                    region: region.clone(),
                };
                match self.store.key(&namespace, key_id).await? {
                    Some(mut record)
                        if matches!(record.state, KeyState::Creating | KeyState::Updating) =>
                    {
                        self.end_transient_state(&mut record, now).await?;
                        self.cache_key(record).await?;
                    }
                    // The key left its transient state some other way, or is gone: forget the transition.
                    _ => {
                        let mut members = self.store.multi_region_set(account, key_id).await?;
                        if let Some(member) = member_of(&mut members, &region) {
                            member.transition = None;
                        }
                        self.store
                            .put_multi_region_set(account, key_id, &members)
                            .await?;
                    }
                }
                done += 1;
            }
        }
        if self
            .multi_region
            .needs_reconcile
            .swap(false, Ordering::Relaxed)
        {
            let reconciled = self.reconcile_multi_region().await;
            if reconciled.is_err() {
                self.multi_region
                    .needs_reconcile
                    .store(true, Ordering::Relaxed);
            }
            done += reconciled?;
        }
        Ok(done)
    }

    /// Removes members whose key does not exist and copies each primary's shared properties to its
    /// replicas again.
    async fn reconcile_multi_region(&self) -> Result<usize, Error> {
        let sets = self.store.multi_region_sets().await?;
        let _writes = self.writes.lock().await;
        let mut repaired = 0;
        for (account, key_id) in &sets {
            let mut members = self.store.multi_region_set(account, key_id).await?;
            let mut primary = None;
            let mut kept = Vec::with_capacity(members.len());
            for member in members.drain(..) {
                let namespace = Namespace {
                    account: account.clone(),
                    region: member.region.clone(),
                };
                match self.store.key(&namespace, key_id).await? {
                    Some(record) => {
                        if member.role == MultiRegionRole::Primary {
                            primary = Some(record);
                        }
                        kept.push(member);
                    }
                    None => repaired += 1,
                }
            }
            // A primary alone again has no set.
            if !kept
                .iter()
                .any(|member| member.role == MultiRegionRole::Replica)
            {
                kept.clear();
            }
            self.store
                .put_multi_region_set(account, key_id, &kept)
                .await?;
            if let Some(mut primary) = primary {
                // The primary carries the rotation schedule (a crash in UpdatePrimaryRegion may have
                // left it with the replica's empty one).
                if primary.rotation.enabled && primary.rotation.next.is_none() {
                    let period = primary.rotation.period_days.unwrap_or(365);
                    primary.rotation.next = Some(self.clock.now().plus_days(period));
                    self.store.put_key(&primary).await?;
                    self.cache_key(primary.clone()).await?;
                }
                self.copy_to_replicas(&primary, &kept).await?;
            }
        }
        if repaired > 0 {
            tracing::warn!("removed {repaired} multi-Region set members whose keys do not exist");
        }
        Ok(repaired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(name: &str) -> Region {
        name.parse().expect("region")
    }

    fn member(name: &str, role: MultiRegionRole) -> MultiRegionMember {
        MultiRegionMember {
            region: region(name),
            role,
            transition: None,
            pending_window_days: None,
        }
    }

    #[test]
    fn names_multi_region_keys_by_id_and_arn_only() {
        assert!(names_multi_region_key(
            "mrk-1234abcd12ab34cd56ef1234567890ab"
        ));
        assert!(names_multi_region_key(
            "arn:aws:kms:us-east-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab"
        ));
        assert!(!names_multi_region_key(
            "1234abcd-12ab-34cd-56ef-1234567890ab"
        ));
        assert!(!names_multi_region_key("alias/mrk-looks-like-one"));
    }

    #[test]
    fn a_lone_primary_and_a_replica_see_the_same_set() {
        let members = vec![
            member("eu-west-1", MultiRegionRole::Replica),
            member("us-east-1", MultiRegionRole::Primary),
        ];
        assert_eq!(
            primary_region(&members, &region("eu-west-1")),
            region("us-east-1")
        );
        assert_eq!(
            primary_region(&[], &region("eu-west-1")),
            region("eu-west-1")
        );
        assert_eq!(lone_primary(&region("us-east-1")).len(), 1);
    }
}
