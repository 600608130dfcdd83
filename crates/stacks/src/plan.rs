//! From a parsed file to what it means: the desired resources, and the plan that moves the recorded
//! resources to them.
//!
//! Each resource has a logical id (`cluster`, `hsm/us-east-1a/1`, `cluster-certificate`,
//! `cluster-activation`, `crypto-user`, `key-store`, `key-store-connection`, `key/<name>`,
//! `alias/<alias>`, `grant/<key>/<grant>`) and properties, a small JSON object that never holds a secret
//! (secret references are kept as where-to-find-it text). The plan compares properties: a resource only
//! in the file is created, one only in the record is deleted, one whose properties differ is updated if
//! the engine can make that change, and otherwise the whole plan is refused with the reason before
//! anything is touched.
//!
//! A zone's HSM count is the number of its `hsm/<zone>/<n>` resources, so changing it creates or
//! deletes HSMs; those leaving a cluster that stays are deleted after those joining it, and a file that
//! leaves its key store fewer than two zones with HSMs is refused.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use strongroom_storage::stacks::StackResource;

use crate::file::{KeyLocation, Parsed, policy_json};

/// What kind of resource a logical id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Cluster,
    Hsm,
    Certificate,
    Activation,
    CryptoUser,
    KeyStore,
    Connection,
    Key,
    Alias,
    Grant,
}

impl Kind {
    pub(crate) fn of(logical_id: &str) -> Option<Kind> {
        let kind = match logical_id {
            "cluster" => Kind::Cluster,
            "cluster-certificate" => Kind::Certificate,
            "cluster-activation" => Kind::Activation,
            "crypto-user" => Kind::CryptoUser,
            "key-store" => Kind::KeyStore,
            "key-store-connection" => Kind::Connection,
            id if id.starts_with("hsm/") => Kind::Hsm,
            id if id.starts_with("key/") => Kind::Key,
            id if id.starts_with("alias/") => Kind::Alias,
            id if id.starts_with("grant/") => Kind::Grant,
            _ => return None,
        };
        Some(kind)
    }
}

/// One resource as the file wants it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Desired {
    pub(crate) logical_id: String,
    pub(crate) props: Value,
}

/// What a step does to its resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Make it.
    Create,
    /// Change it in place.
    Update,
    /// Remove it (or keep it, with the reason, when deletion rules say so).
    Delete,
}

impl Action {
    /// The spelling in step records and plans.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Action> {
        match text {
            "create" => Some(Action::Create),
            "update" => Some(Action::Update),
            "delete" => Some(Action::Delete),
            _ => None,
        }
    }
}

/// One change of a plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// What happens.
    pub action: Action,
    /// To which resource.
    pub logical_id: String,
    /// In words, for people.
    pub detail: String,
    /// The properties before the change (updates and deletes).
    pub(crate) before: Option<Value>,
    /// The properties after it (creates and updates).
    pub(crate) after: Option<Value>,
}

/// What applying a file would do.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// The changes, in the order the steps run.
    pub changes: Vec<Change>,
    /// Changes the engine cannot make, with the reason; a plan with refusals is not applied.
    pub refusals: Vec<String>,
}

/// The resources `parsed` declares, in the order they are created.
pub(crate) fn desired(parsed: &Parsed) -> Vec<Desired> {
    let file = &parsed.file;
    let mut out = Vec::new();
    let mut push = |logical_id: String, props: Value| out.push(Desired { logical_id, props });
    if let Some(cluster) = &file.cluster {
        let zones: Vec<&String> = cluster.hsms.keys().collect();
        push(
            "cluster".to_owned(),
            json!({
                "hsm_type": cluster.hsm_type,
                "zones": zones,
                "tags": cluster.tags,
                "destroy_on_delete": cluster.destroy_on_delete,
            }),
        );
        for (zone, count) in &cluster.hsms {
            for n in 1..=*count {
                push(format!("hsm/{zone}/{n}"), json!({ "zone": zone }));
            }
        }
        push(
            "cluster-certificate".to_owned(),
            json!({
                "certificate": cluster.certificate_authority.certificate.to_string(),
                "private_key": cluster.certificate_authority.private_key.to_string(),
            }),
        );
        push(
            "cluster-activation".to_owned(),
            json!({ "admin_password": cluster.admin_password.to_string() }),
        );
    }
    if let Some(user) = &file.crypto_user {
        push(
            "crypto-user".to_owned(),
            json!({
                "name": user.name,
                "password": user.password.to_string(),
                "generation": user.generation,
            }),
        );
    }
    if let Some(store) = &file.key_store {
        let mut props = json!({
            "name": parsed.qualified(&store.name, "-"),
            "delete_with_stack": store.delete_with_stack,
        });
        // Only when given, so that the records of stacks written before it compare equal.
        if let Some(cluster) = &store.cluster {
            props["cluster"] = json!(cluster);
        }
        push("key-store".to_owned(), props);
        push("key-store-connection".to_owned(), json!({}));
    }
    for (name, key) in &file.keys {
        let location = match parsed.location(key) {
            KeyLocation::Custom => "custom",
            KeyLocation::Default => "default",
        };
        let policy = key.policy.as_ref().and_then(|p| policy_json(p).ok());
        push(
            format!("key/{name}"),
            json!({
                "key_store": location,
                "description": key.description,
                "key_spec": key.key_spec.clone().unwrap_or_else(|| "SYMMETRIC_DEFAULT".to_owned()),
                "key_usage": key.key_usage.clone().unwrap_or_else(|| "ENCRYPT_DECRYPT".to_owned()),
                "policy": policy,
                "tags": key.tags,
            }),
        );
    }
    for (name, key) in &file.keys {
        for alias in &key.aliases {
            let qualified = format!("alias/{}", parsed.qualified(alias, "/"));
            push(
                qualified.clone(),
                json!({ "name": qualified, "key": format!("key/{name}") }),
            );
        }
        for grant in &key.grants {
            let mut operations = grant.operations.clone();
            operations.sort();
            push(
                format!("grant/{name}/{}", grant.name),
                json!({
                    "key": format!("key/{name}"),
                    "name": grant.name,
                    "grantee": grant.grantee,
                    "operations": operations,
                    "retiring_principal": grant.retiring_principal,
                }),
            );
        }
    }
    out
}

/// Compares `desired` with the `recorded` resources.
pub(crate) fn plan(desired: &[Desired], recorded: &[StackResource]) -> Plan {
    let mut plan = Plan::default();
    let props_of = |resource: &StackResource| -> Value {
        serde_json::from_str(&resource.properties).unwrap_or(Value::Null)
    };
    let recorded_ids: Vec<&str> = recorded.iter().map(|r| r.logical_id.as_str()).collect();
    let initialized = recorded_ids.contains(&"cluster-certificate");
    let keeps_cluster = desired.iter().any(|d| d.logical_id == "cluster");
    if let Some(refusal) = too_few_hsms(desired) {
        plan.refusals.push(refusal);
    }
    // Deletions first, newest first, so that dependants go before what they depend on. HSMs leaving a
    // cluster that stays go last instead, after the HSMs that join it, so that the cluster never has
    // fewer HSMs on the way than it has at the end.
    let mut removed_hsms = Vec::new();
    for resource in recorded.iter().rev() {
        if desired.iter().any(|d| d.logical_id == resource.logical_id) {
            continue;
        }
        let props = props_of(resource);
        let is_hsm = Kind::of(&resource.logical_id) == Some(Kind::Hsm);
        let detail = match is_hsm && keeps_cluster {
            true => format!(
                "delete {} ({}; DeleteHsm releases its token)",
                resource.logical_id,
                zone_change(&props, desired, recorded)
            ),
            false => format!("delete {}", describe(&resource.logical_id, &props)),
        };
        let change = Change {
            action: Action::Delete,
            logical_id: resource.logical_id.clone(),
            detail,
            before: Some(props),
            after: None,
        };
        match is_hsm && keeps_cluster {
            true => removed_hsms.push(change),
            false => plan.changes.push(change),
        }
    }
    for wanted in desired {
        let Some(existing) = recorded.iter().find(|r| r.logical_id == wanted.logical_id) else {
            if Kind::of(&wanted.logical_id) == Some(Kind::KeyStore)
                && let Some(cluster) = wanted.props.get("cluster").and_then(Value::as_str)
            {
                plan.refusals.push(format!(
                    "key-store: cluster {cluster} is where an existing key store moves to; a new key store is \
                     created on the stack's own cluster: remove key_store.cluster, apply, then set it"
                ));
                continue;
            }
            let detail = match Kind::of(&wanted.logical_id) == Some(Kind::Hsm) && initialized {
                true => format!(
                    "create {} ({}; CreateHsm, then the cluster's users, wrapping key, keys and certificates \
                     are copied to it)",
                    wanted.logical_id,
                    zone_change(&wanted.props, desired, recorded)
                ),
                false => format!("create {}", describe(&wanted.logical_id, &wanted.props)),
            };
            plan.changes.push(Change {
                action: Action::Create,
                logical_id: wanted.logical_id.clone(),
                detail,
                before: None,
                after: Some(wanted.props.clone()),
            });
            continue;
        };
        let before = props_of(existing);
        if before == wanted.props && existing.retained.is_none() {
            continue;
        }
        let changed: Vec<&str> = field_names(&wanted.props)
            .into_iter()
            .filter(|field| before.get(field) != wanted.props.get(field))
            .collect();
        let refused: Vec<&str> = changed
            .iter()
            .copied()
            .filter(|field| fixed_fields(&wanted.logical_id).contains(field))
            .collect();
        if !refused.is_empty() {
            for field in refused {
                plan.refusals.push(format!(
                    "{}: {field} cannot change (from {} to {}): {}",
                    wanted.logical_id,
                    before.get(field).unwrap_or(&Value::Null),
                    wanted.props.get(field).unwrap_or(&Value::Null),
                    why_fixed(&wanted.logical_id, field)
                ));
            }
            continue;
        }
        // The key store's cluster (a field absent on either side means the stack's own cluster).
        let moved = Kind::of(&wanted.logical_id) == Some(Kind::KeyStore)
            && before.get("cluster") != wanted.props.get("cluster");
        let detail = match (changed.is_empty(), &existing.retained) {
            (true, Some(_)) => format!(
                "take back {} (kept when the stack was deleted)",
                wanted.logical_id
            ),
            _ if moved => {
                let target = wanted
                    .props
                    .get("cluster")
                    .and_then(Value::as_str)
                    .unwrap_or("the stack's own cluster");
                let rest: Vec<&str> = changed
                    .iter()
                    .copied()
                    .filter(|field| *field != "cluster")
                    .collect();
                let rest = match rest.is_empty() {
                    true => String::new(),
                    false => format!("; {}", rest.join(", ")),
                };
                format!(
                    "update {}: moves the key store to {target}, which must be related to its cluster (created \
                     from a backup of it): the store is disconnected, kmsuser's password is set to the file's on the \
                     new cluster as the admin, UpdateCustomKeyStore names the new cluster, and the store is connected \
                     again{rest}",
                    wanted.logical_id
                )
            }
            _ => format!("update {}: {}", wanted.logical_id, changed.join(", ")),
        };
        plan.changes.push(Change {
            action: Action::Update,
            logical_id: wanted.logical_id.clone(),
            detail,
            before: Some(before),
            after: Some(wanted.props.clone()),
        });
    }
    plan.changes.extend(removed_hsms);
    plan
}

/// The zone of an HSM's properties.
pub(crate) fn zone_of(props: &Value) -> &str {
    props
        .get("zone")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// How many HSMs of `resources` (logical id and properties) are in each zone.
fn hsms_per_zone<'r>(
    resources: impl Iterator<Item = (&'r str, &'r Value)>,
) -> BTreeMap<&'r str, usize> {
    let mut counts = BTreeMap::new();
    for (logical_id, props) in resources {
        if Kind::of(logical_id) == Some(Kind::Hsm) {
            *counts.entry(zone_of(props)).or_insert(0) += 1;
        }
    }
    counts
}

/// The change of the HSM count of the zone of an HSM (`props`) in words, such as `us-east-1a: 1 -> 2
/// HSMs`.
fn zone_change(props: &Value, desired: &[Desired], recorded: &[StackResource]) -> String {
    let zone = zone_of(props);
    let wanted = hsms_per_zone(desired.iter().map(|d| (d.logical_id.as_str(), &d.props)));
    let recorded_props: Vec<(&str, Value)> = recorded
        .iter()
        .map(|r| {
            let props = serde_json::from_str(&r.properties).unwrap_or(Value::Null);
            (r.logical_id.as_str(), props)
        })
        .collect();
    let now = hsms_per_zone(recorded_props.iter().map(|(id, props)| (*id, props)));
    format!(
        "{zone}: {} -> {} HSMs",
        now.get(zone).copied().unwrap_or(0),
        wanted.get(zone).copied().unwrap_or(0)
    )
}

/// Why the desired HSMs are too few for the file's custom key store, if they are: a key store needs
/// two active HSMs in different availability zones, to be created, to connect and to make keys.
fn too_few_hsms(desired: &[Desired]) -> Option<String> {
    let has_cluster = desired.iter().any(|d| d.logical_id == "cluster");
    let has_store = desired.iter().any(|d| d.logical_id == "key-store");
    if !has_cluster || !has_store {
        return None;
    }
    let counts = hsms_per_zone(desired.iter().map(|d| (d.logical_id.as_str(), &d.props)));
    if counts.len() >= 2 {
        return None;
    }
    let left = match counts.keys().next() {
        Some(zone) => format!("leaves HSMs in {zone} only"),
        None => "leaves no HSM".to_owned(),
    };
    Some(format!(
        "cluster: hsms: the custom key store needs at least two active HSMs in different availability zones, and \
         the file {left}; keep at least one HSM in two zones (the key store's keys live only in the HSMs)"
    ))
}

fn field_names(props: &Value) -> Vec<&str> {
    props
        .as_object()
        .map(|map| map.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

/// Properties the engine cannot change on an existing resource.
fn fixed_fields(logical_id: &str) -> &'static [&'static str] {
    match Kind::of(logical_id) {
        Some(Kind::Cluster) => &["hsm_type", "zones"],
        Some(Kind::Certificate) => &["certificate", "private_key"],
        Some(Kind::CryptoUser) => &["name"],
        Some(Kind::Key) => &["key_store", "key_spec", "key_usage"],
        _ => &[],
    }
}

fn why_fixed(logical_id: &str, field: &str) -> &'static str {
    match (Kind::of(logical_id), field) {
        (Some(Kind::Cluster), "hsm_type") => {
            "a cluster runs on the HSMs it was created with; declare a new stack for another type"
        }
        (Some(Kind::Cluster), _) => {
            "a cluster's subnets (availability zones) are fixed at creation; declare a new stack for another cluster"
        }
        (Some(Kind::Certificate), _) => {
            "a cluster is initialized once, under one CA; its trust anchor cannot change"
        }
        (Some(Kind::CryptoUser), _) => "a cluster's crypto user cannot be renamed",
        (Some(Kind::Key), "key_store") => {
            "a key's material cannot move between key stores; declare a new key and delete the old one"
        }
        (Some(Kind::Key), _) => {
            "KMS cannot change a key's spec or usage; declare a new key and delete the old one"
        }
        _ => "this property is fixed",
    }
}

/// A resource in words, for plans and logs.
pub(crate) fn describe(logical_id: &str, props: &Value) -> String {
    let text = |field: &str| {
        props
            .get(field)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    match Kind::of(logical_id) {
        Some(Kind::Cluster) => {
            let zones: Vec<&str> = props
                .get("zones")
                .and_then(Value::as_array)
                .map(|zones| zones.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            format!("cluster ({}, zones {})", text("hsm_type"), zones.join(", "))
        }
        Some(Kind::Hsm) => format!("{logical_id} (an HSM in {})", text("zone")),
        Some(Kind::Certificate) => format!(
            "cluster-certificate (CSR signed by the CA in {})",
            text("certificate")
        ),
        Some(Kind::Activation) => "cluster-activation".to_owned(),
        Some(Kind::CryptoUser) => format!("crypto-user {}", text("name")),
        Some(Kind::KeyStore) => format!("key-store {}", text("name")),
        Some(Kind::Connection) => "key-store-connection".to_owned(),
        Some(Kind::Key) => format!(
            "{logical_id} ({}, {} key store)",
            text("key_spec"),
            text("key_store")
        ),
        Some(Kind::Alias) => format!("{} -> {}", text("name"), text("key")),
        Some(Kind::Grant) => format!("{logical_id} (for {})", text("grantee")),
        None => logical_id.to_owned(),
    }
}
