//! Key lifecycle: CreateKey, DescribeKey, ListKeys, EnableKey, DisableKey, UpdateKeyDescription,
//! ScheduleKeyDeletion and CancelKeyDeletion.

use strongroom_policy::PolicyError;
use strongroom_types::{
    Deletion, KeyId, KeyManager, KeyRecord, KeySpec, KeyState, KeyUsage, Origin, Rotation, Tag,
    Timestamp,
};

use crate::authz::{self, RequestFacts};
use crate::keyring::Forms;
use crate::pagination::{self, Page};
use crate::state::{self, OpClass};
use crate::tags::check_new_tags;
use crate::{Caller, Error, Kms};

/// CreateKey's parameters.
#[derive(Debug, Default)]
pub struct CreateKeyRequest {
    /// The key policy; the default key policy when absent.
    pub policy: Option<String>,
    /// A description.
    pub description: Option<String>,
    /// Defaults to ENCRYPT_DECRYPT.
    pub key_usage: Option<KeyUsage>,
    /// The deprecated spelling of `key_spec`.
    pub customer_master_key_spec: Option<KeySpec>,
    /// Defaults to SYMMETRIC_DEFAULT.
    pub key_spec: Option<KeySpec>,
    /// Defaults to AWS_KMS.
    pub origin: Option<Origin>,
    /// A custom key store to create the key in.
    pub custom_key_store_id: Option<String>,
    /// Skips the policy lockout safety check.
    pub bypass_policy_lockout_safety_check: bool,
    /// Tags to attach.
    pub tags: Vec<Tag>,
    /// Whether to create a multi-Region primary key.
    pub multi_region: bool,
    /// An external key store key id.
    pub xks_key_id: Option<String>,
}

/// Refuses a key spec Strongroom cannot create, or a key usage the spec does not allow.
pub(crate) fn check_spec_and_usage(key_spec: KeySpec, key_usage: KeyUsage) -> Result<(), Error> {
    if !key_spec.is_supported() {
        return Err(Error::UnsupportedOperation(format!(
            "KeySpec {key_spec} is not supported: Strongroom has no SM2 implementation (AWS offers SM2 \
             only in its China Regions)."
        )));
    }
    if !key_spec.usages().contains(&key_usage) {
        let allowed: Vec<&str> = key_spec.usages().iter().map(|u| u.as_str()).collect();
        return Err(Error::Validation(format!(
            "KeyUsage {key_usage} is not compatible with KeySpec {key_spec}. Specify KeyUsage {} for this \
             key spec (KeyUsage defaults to ENCRYPT_DECRYPT when not given).",
            allowed.join(" or ")
        )));
    }
    Ok(())
}

/// ScheduleKeyDeletion's result.
#[derive(Debug)]
pub struct ScheduledDeletion {
    /// The key's ARN.
    pub key_arn: String,
    /// When the key will be deleted; `None` for a multi-Region primary waiting for its replicas' deletion.
    pub deletion_date: Option<Timestamp>,
    /// The key's new state.
    pub key_state: KeyState,
    /// The waiting period.
    pub pending_window_days: u32,
}

/// One entry of ListKeys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyListEntry {
    /// The key id.
    pub key_id: KeyId,
    /// The key ARN.
    pub key_arn: String,
}

const DEFAULT_DELETION_WINDOW_DAYS: u32 = 30;

impl Kms {
    /// CreateKey: a new symmetric key in the default key store.
    pub async fn create_key(
        &self,
        caller: &Caller,
        mut req: CreateKeyRequest,
    ) -> Result<KeyRecord, Error> {
        let key_spec = match (req.key_spec, req.customer_master_key_spec) {
            (Some(spec), Some(deprecated)) if spec != deprecated => {
                return Err(Error::Validation(
                    "You cannot specify KeySpec and CustomerMasterKeySpec in the same request. \
                     CustomerMasterKeySpec is deprecated: use KeySpec."
                        .to_owned(),
                ));
            }
            (Some(spec), _) | (None, Some(spec)) => spec,
            (None, None) => KeySpec::SymmetricDefault,
        };
        let key_usage = req.key_usage.unwrap_or(KeyUsage::EncryptDecrypt);
        check_spec_and_usage(key_spec, key_usage)?;
        let origin = req.origin.unwrap_or(Origin::AwsKms);
        let custom_key_store = match (origin, req.custom_key_store_id.take()) {
            (Origin::AwsKms, None) => None,
            (Origin::AwsCloudhsm, Some(id)) => {
                if key_spec != KeySpec::SymmetricDefault {
                    return Err(Error::UnsupportedOperation(format!(
                        "KeySpec {key_spec} is not supported in a custom key store: custom key stores hold \
                         only SYMMETRIC_DEFAULT keys."
                    )));
                }
                if req.multi_region {
                    return Err(Error::UnsupportedOperation(
                        "Multi-Region keys cannot be created in a custom key store.".to_owned(),
                    ));
                }
                Some(id)
            }
            (Origin::AwsCloudhsm, None) => {
                return Err(Error::Validation(
                    "A CustomKeyStoreId is required when Origin is AWS_CLOUDHSM.".to_owned(),
                ));
            }
            // The key starts without material, PendingImport, until ImportKeyMaterial brings it.
            (Origin::External, None) => {
                if matches!(
                    key_spec,
                    KeySpec::MlDsa44 | KeySpec::MlDsa65 | KeySpec::MlDsa87
                ) {
                    return Err(Error::UnsupportedOperation(format!(
                        "KeySpec {key_spec} does not support imported key material: create ML-DSA keys with \
                         Origin AWS_KMS."
                    )));
                }
                None
            }
            (Origin::External, Some(_)) => {
                return Err(Error::UnsupportedOperation(
                    "You cannot import key material into a KMS key in a custom key store: omit \
                     CustomKeyStoreId for Origin EXTERNAL."
                        .to_owned(),
                ));
            }
            (Origin::AwsKms, Some(id)) => {
                // Fails with CustomKeyStoreNotFound for an unknown store.
                self.cks_record(&caller.namespace, &id).await?;
                return Err(Error::UnsupportedOperation(
                    "A key in a custom key store needs Origin AWS_CLOUDHSM.".to_owned(),
                ));
            }
            (origin, _) => {
                return Err(Error::UnsupportedOperation(format!(
                    "Origin {origin} is not supported by this server yet; use AWS_KMS or AWS_CLOUDHSM."
                )));
            }
        };
        if req.xks_key_id.is_some() {
            return Err(Error::Validation(
                "XksKeyId is only valid with Origin EXTERNAL_KEY_STORE and a CustomKeyStoreId."
                    .to_owned(),
            ));
        }
        let policy = match req.policy {
            Some(policy) => {
                check_policy(&policy)?;
                policy
            }
            None => strongroom_policy::default_key_policy(caller.account().as_str()),
        };
        check_new_tags(&[], &req.tags)?;
        let now = self.clock.now();
        let key_id = if req.multi_region {
            KeyId::random_multi_region()
        } else {
            KeyId::random()
        };
        let mut record = KeyRecord {
            namespace: caller.namespace.clone(),
            key_id,
            created: now,
            description: req.description.unwrap_or_default(),
            key_spec,
            key_usage,
            origin,
            key_manager: KeyManager::Customer,
            state: match origin {
                Origin::External => KeyState::PendingImport,
                _ => KeyState::Enabled,
            },
            deletion: None,
            policy,
            rotation: Rotation::OFF,
            materials: Vec::new(),
            tags: dedup_tags(req.tags),
            multi_region: req.multi_region,
        };
        let facts = RequestFacts {
            bypass_lockout_check: Some(req.bypass_policy_lockout_safety_check),
            // CreateKey makes only primary keys; replicas come from ReplicateKey.
            multi_region_key_type: record.multi_region.then_some("PRIMARY"),
            request_tags: (!record.tags.is_empty()).then_some(&record.tags[..]),
            ..RequestFacts::default()
        };
        authz::authorize_identity(
            caller,
            "kms:CreateKey",
            "*",
            &record,
            self.identities.as_deref(),
            now.millis(),
            facts,
        )?;
        authz::authorize_tags_on_create(
            caller,
            &record,
            self.identities.as_deref(),
            now.millis(),
            facts,
        )?;
        if !req.bypass_policy_lockout_safety_check {
            let policy = parse_key_policy(&record.policy)?;
            // A new key has no aliases yet.
            let key_facts = RequestFacts {
                resource_aliases: Some(&[]),
                ..facts
            };
            authz::check_lockout(
                caller,
                &record,
                &policy,
                self.identities.as_deref(),
                now.millis(),
                key_facts,
            )?;
        }
        let _writes = match custom_key_store {
            Some(id) => {
                // The backing key lives in the cluster; the record holds no material.
                self.live_cluster(&caller.namespace, &id).await?;
                let writes = self.writes.lock().await;
                self.create_backing_key(&record, &id).await?;
                writes
            }
            None => {
                if origin != Origin::External {
                    // RSA generation is kept off the async workers (see generate_material).
                    let material = crate::asymmetric::generate_material(record.key_spec).await?;
                    self.push_material(&mut record, &material, None, now)?;
                }
                self.writes.lock().await
            }
        };
        let live = self.insert_key(record).await?;
        Ok(live.record.clone())
    }

    /// DescribeKey: the key's metadata, by any of the four reference forms.
    pub async fn describe_key(&self, caller: &Caller, key_id: &str) -> Result<KeyRecord, Error> {
        let key = self.resolve(caller, key_id, Forms::AnyForm).await?;
        let facts = RequestFacts {
            request_alias: crate::crypto::request_alias(key_id),
            ..RequestFacts::default()
        };
        self.authorize(caller, "kms:DescribeKey", &key, facts)?;
        let mut record = key.record.clone();
        self.show_availability(&mut record).await?;
        Ok(record)
    }

    /// ListKeys: the keys of the caller's account and Region, a page at a time.
    pub async fn list_keys(
        &self,
        caller: &Caller,
        limit: Option<i64>,
        marker: Option<&str>,
    ) -> Result<Page<KeyListEntry>, Error> {
        let limit = pagination::limit(limit, 100, 1000)?;
        self.authorize_account(caller, "kms:ListKeys")?;
        let after = match marker {
            Some(marker) => Some(pagination::decode(marker)?.parse::<KeyId>().map_err(|_| {
                Error::InvalidMarker(format!(
                    "Marker '{marker}' is not valid: pass the NextMarker of a previous response"
                ))
            })?),
            None => None,
        };
        let ids = self
            .store
            .list_keys(&caller.namespace, after.as_ref(), limit + 1)
            .await?;
        let entries = ids
            .into_iter()
            .map(|key_id| KeyListEntry {
                key_arn: caller.namespace.key_arn(&key_id),
                key_id,
            })
            .collect();
        Ok(pagination::page(entries, limit, |entry| {
            entry.key_id.as_str().to_owned()
        }))
    }

    /// EnableKey.
    pub async fn enable_key(&self, caller: &Caller, key_id: &str) -> Result<(), Error> {
        self.set_enabled(caller, key_id, KeyState::Enabled, "kms:EnableKey")
            .await
    }

    /// DisableKey.
    pub async fn disable_key(&self, caller: &Caller, key_id: &str) -> Result<(), Error> {
        self.set_enabled(caller, key_id, KeyState::Disabled, "kms:DisableKey")
            .await
    }

    async fn set_enabled(
        &self,
        caller: &Caller,
        key_id: &str,
        target: KeyState,
        action: &str,
    ) -> Result<(), Error> {
        self.update_key(caller, key_id, action, RequestFacts::default(), |record| {
            state::check(record, OpClass::EnableDisable)?;
            record.state = target;
            Ok(())
        })
        .await
    }

    /// UpdateKeyDescription.
    pub async fn update_key_description(
        &self,
        caller: &Caller,
        key_id: &str,
        description: String,
    ) -> Result<(), Error> {
        let action = "kms:UpdateKeyDescription";
        self.update_key(caller, key_id, action, RequestFacts::default(), |record| {
            state::check(record, OpClass::NotPendingDeletion)?;
            record.description = description;
            Ok(())
        })
        .await
    }

    /// ScheduleKeyDeletion: 7 to 30 days, 30 by default.
    pub async fn schedule_key_deletion(
        &self,
        caller: &Caller,
        key_id: &str,
        pending_window_days: Option<i64>,
    ) -> Result<ScheduledDeletion, Error> {
        let days = match pending_window_days {
            None => DEFAULT_DELETION_WINDOW_DAYS,
            Some(days @ 7..=30) => days as u32,
            Some(days) => {
                return Err(Error::Validation(format!(
                    "1 validation error detected: Value '{days}' at 'pendingWindowInDays' failed to satisfy \
                     constraint: Member must have value between 7 and 30"
                )));
            }
        };
        let facts = RequestFacts {
            pending_window_days,
            ..RequestFacts::default()
        };
        if crate::multi_region::names_multi_region_key(key_id) {
            return self
                .schedule_multi_region_deletion(caller, key_id, days, facts)
                .await;
        }
        let date = self.clock.now().plus_days(days);
        self.update_key(caller, key_id, "kms:ScheduleKeyDeletion", facts, |record| {
            state::check(record, OpClass::NotPendingDeletion)?;
            record.state = KeyState::PendingDeletion;
            record.deletion = Some(Deletion {
                date,
                window_days: days,
            });
            Ok(ScheduledDeletion {
                key_arn: record.arn(),
                deletion_date: Some(date),
                key_state: KeyState::PendingDeletion,
                pending_window_days: days,
            })
        })
        .await
    }

    /// CancelKeyDeletion: the key returns Disabled, as in AWS (PendingImport if it lacks imported material).
    /// Returns the key ARN.
    pub async fn cancel_key_deletion(
        &self,
        caller: &Caller,
        key_id: &str,
    ) -> Result<String, Error> {
        let action = "kms:CancelKeyDeletion";
        self.update_key(caller, key_id, action, RequestFacts::default(), |record| {
            state::check(record, OpClass::PendingDeletionOnly)?;
            record.state = if record.origin == Origin::External && !record.has_all_materials() {
                KeyState::PendingImport
            } else {
                KeyState::Disabled
            };
            record.deletion = None;
            Ok(record.arn())
        })
        .await
    }
}

/// Refuses changes to AWS managed keys, which customers cannot manage.
pub(crate) fn check_customer_managed(record: &KeyRecord) -> Result<(), Error> {
    match record.key_manager {
        KeyManager::Customer => Ok(()),
        KeyManager::Aws => Err(Error::UnsupportedOperation(format!(
            "{} is an AWS managed key; its settings cannot be changed.",
            record.arn()
        ))),
    }
}

/// Parses a key policy document, mapping refusals to the errors KMS returns for them.
pub(crate) fn parse_key_policy(policy: &str) -> Result<strongroom_policy::Policy, Error> {
    strongroom_policy::Policy::parse(policy, strongroom_policy::PolicyKind::KeyPolicy).map_err(
        |e| match e {
            PolicyError::TooLarge(_) => Error::LimitExceeded(e.to_string()),
            PolicyError::Malformed(message) => Error::MalformedPolicyDocument(message),
        },
    )
}

pub(crate) fn check_policy(policy: &str) -> Result<(), Error> {
    strongroom_policy::check_key_policy(policy).map_err(|e| match e {
        PolicyError::TooLarge(_) => Error::LimitExceeded(e.to_string()),
        PolicyError::Malformed(message) => Error::MalformedPolicyDocument(message),
    })
}

/// Keeps the last value of each tag key, in order of first appearance.
pub(crate) fn dedup_tags(tags: Vec<Tag>) -> Vec<Tag> {
    let mut out: Vec<Tag> = Vec::with_capacity(tags.len());
    for tag in tags {
        match out.iter_mut().find(|existing| existing.key == tag.key) {
            Some(existing) => existing.value = tag.value,
            None => out.push(tag),
        }
    }
    out
}

/// The service whose AWS managed key `alias` names, when `caller` is that service acting for its caller.
pub(crate) fn managed_key_service<'a>(
    caller: &Caller,
    alias: &'a strongroom_types::AliasName,
) -> Option<&'a str> {
    let service = alias.as_str().strip_prefix("alias/aws/")?;
    let via = caller.via_service.as_deref()?;
    let expected = format!("{service}.{}.amazonaws.com", caller.namespace.region);
    (via == expected).then_some(service)
}

/// The key policy AWS gives an AWS managed key: the service may use it for the account's principals, and
/// the account may read its metadata.
fn managed_key_policy(account: &str, service: &str, region: &str) -> String {
    format!(
        r#"{{
  "Version" : "2012-10-17",
  "Id" : "auto-{service}-1",
  "Statement" : [ {{
    "Sid" : "Allow access through {service} for all principals in the account that are authorized to use {service}",
    "Effect" : "Allow",
    "Principal" : {{ "AWS" : "*" }},
    "Action" : [ "kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:CreateGrant", "kms:DescribeKey" ],
    "Resource" : "*",
    "Condition" : {{
      "StringEquals" : {{ "kms:CallerAccount" : "{account}", "kms:ViaService" : "{service}.{region}.amazonaws.com" }}
    }}
  }}, {{
    "Sid" : "Allow direct access to key metadata to the account",
    "Effect" : "Allow",
    "Principal" : {{ "AWS" : "arn:aws:iam::{account}:root" }},
    "Action" : [ "kms:Describe*", "kms:Get*", "kms:List*" ],
    "Resource" : "*"
  }} ]
}}"#
    )
}

impl Kms {
    /// Creates the AWS managed key of a service and its `alias/aws/<service>` alias, unless another request
    /// just did; returns the key id.
    pub(crate) async fn create_managed_key(
        &self,
        caller: &Caller,
        alias: &strongroom_types::AliasName,
    ) -> Result<KeyId, Error> {
        let Some(service) = managed_key_service(caller, alias) else {
            return Err(Error::NotFound(format!(
                "Alias {} is not found.",
                caller.namespace.alias_arn(alias)
            )));
        };
        let namespace = &caller.namespace;
        let _writes = self.writes.lock().await;
        if let Some(existing) = self.store.alias(namespace, alias).await? {
            return Ok(existing.target);
        }
        let now = self.clock.now();
        let mut record = KeyRecord {
            namespace: namespace.clone(),
            key_id: KeyId::random(),
            created: now,
            description: format!(
                "Default key that protects my {service} data when no other key is defined"
            ),
            key_spec: KeySpec::SymmetricDefault,
            key_usage: KeyUsage::EncryptDecrypt,
            origin: Origin::AwsKms,
            key_manager: KeyManager::Aws,
            state: KeyState::Enabled,
            deletion: None,
            policy: managed_key_policy(
                namespace.account.as_str(),
                service,
                namespace.region.as_str(),
            ),
            rotation: strongroom_types::Rotation {
                enabled: true,
                period_days: Some(365),
                next: Some(now.plus_days(365)),
                on_demand_started: None,
            },
            materials: Vec::new(),
            tags: Vec::new(),
            multi_region: false,
        };
        self.add_material(&mut record, None, now)?;
        let key_id = record.key_id.clone();
        self.insert_key(record).await?;
        let alias_record = strongroom_types::AliasRecord {
            namespace: namespace.clone(),
            name: alias.clone(),
            target: key_id.clone(),
            created: now,
            updated: now,
        };
        self.store.insert_alias(&alias_record).await?;
        self.cache_alias(namespace, alias, Some(key_id.clone()));
        tracing::info!(key_id = %key_id, "created the AWS managed key {alias}");
        Ok(key_id)
    }
}
