//! Aliases: CreateAlias, UpdateAlias, DeleteAlias, ListAliases.

use strongroom_storage::StoreError;
use strongroom_types::{AliasName, AliasRecord, KeyManager};

use crate::authz::RequestFacts;
use crate::keyring::Forms;
use crate::pagination::{self, Page};
use crate::state::{self, OpClass};
use crate::{Caller, Error, Kms};

/// The most aliases one key may have.
const MAX_ALIASES_PER_KEY: usize = 50;

fn parse_alias(name: &str) -> Result<AliasName, Error> {
    let alias: AliasName = name
        .parse()
        .map_err(|e: strongroom_types::InvalidId| Error::InvalidAliasName(e.0))?;
    Ok(alias)
}

impl Kms {
    /// CreateAlias: points a new alias at a customer managed key.
    pub async fn create_alias(
        &self,
        caller: &Caller,
        alias_name: &str,
        target_key_id: &str,
    ) -> Result<(), Error> {
        let alias = parse_alias(alias_name)?;
        if alias.is_reserved() {
            return Err(Error::InvalidAliasName(format!(
                "Alias {alias} is not valid: names beginning with alias/aws/ are reserved for AWS managed keys."
            )));
        }
        let target = self.resolve(caller, target_key_id, Forms::IdOrArn).await?;
        self.authorize(caller, "kms:CreateAlias", &target, RequestFacts::default())?;
        let _writes = self.writes.lock().await;
        let record = self.key_for_update(&target).await?;
        state::check(&record, OpClass::NotPendingDeletion)?;
        if record.key_manager == KeyManager::Aws {
            return Err(Error::UnsupportedOperation(format!(
                "{} is an AWS managed key; aliases can only point at customer managed keys.",
                record.arn()
            )));
        }
        let existing = self
            .store
            .list_aliases(
                &caller.namespace,
                Some(&record.key_id),
                None,
                MAX_ALIASES_PER_KEY + 1,
            )
            .await?;
        if existing.len() >= MAX_ALIASES_PER_KEY {
            return Err(Error::LimitExceeded(format!(
                "{} already has {MAX_ALIASES_PER_KEY} aliases, the most a key may have.",
                record.arn()
            )));
        }
        let now = self.clock.now();
        let new = AliasRecord {
            namespace: caller.namespace.clone(),
            name: alias.clone(),
            target: record.key_id.clone(),
            created: now,
            updated: now,
        };
        match self.store.insert_alias(&new).await {
            Ok(()) => {}
            Err(StoreError::AlreadyExists(_)) => {
                return Err(Error::AlreadyExists(format!(
                    "An alias with the name {} already exists",
                    caller.namespace.alias_arn(&alias)
                )));
            }
            Err(e) => return Err(e.into()),
        }
        self.cache_alias(&caller.namespace, &alias, Some(record.key_id));
        Ok(())
    }

    /// UpdateAlias: points an existing alias at another key of the same type and usage.
    pub async fn update_alias(
        &self,
        caller: &Caller,
        alias_name: &str,
        target_key_id: &str,
    ) -> Result<(), Error> {
        let alias = parse_alias(alias_name)?;
        let target = self.resolve(caller, target_key_id, Forms::IdOrArn).await?;
        self.authorize(caller, "kms:UpdateAlias", &target, RequestFacts::default())?;
        self.authorize_alias_key(caller, "kms:UpdateAlias", &alias)
            .await?;
        let _writes = self.writes.lock().await;
        let Some(mut existing) = self.store.alias(&caller.namespace, &alias).await? else {
            return Err(Error::NotFound(format!(
                "Alias {} is not found.",
                caller.namespace.alias_arn(&alias)
            )));
        };
        let record = self.key_for_update(&target).await?;
        state::check(&record, OpClass::NotPendingDeletion)?;
        if let Some(current) = self.store.key(&caller.namespace, &existing.target).await?
            && (current.key_spec != record.key_spec || current.key_usage != record.key_usage)
        {
            return Err(Error::Validation(format!(
                "Alias {alias} points at a {} {} key; it can only be moved to a key of the same KeySpec and \
                 KeyUsage, not {} {}.",
                current.key_spec, current.key_usage, record.key_spec, record.key_usage
            )));
        }
        let previous = std::mem::replace(&mut existing.target, record.key_id.clone());
        existing.updated = self.clock.now();
        self.store.put_alias(&existing).await?;
        self.cache_alias_move(
            &caller.namespace,
            &alias,
            Some(&previous),
            Some(record.key_id),
        );
        Ok(())
    }

    /// DeleteAlias; the key it pointed at is unaffected.
    pub async fn delete_alias(&self, caller: &Caller, alias_name: &str) -> Result<(), Error> {
        let alias = parse_alias(alias_name)?;
        self.authorize_alias_key(caller, "kms:DeleteAlias", &alias)
            .await?;
        let _writes = self.writes.lock().await;
        // The key it points at loses it from its alias names (`kms:ResourceAliases`).
        let previous = self
            .store
            .alias(&caller.namespace, &alias)
            .await?
            .map(|record| record.target);
        match self.store.delete_alias(&caller.namespace, &alias).await {
            Ok(()) => {}
            Err(StoreError::NotFound(_)) => {
                return Err(Error::NotFound(format!(
                    "Alias {} is not found.",
                    caller.namespace.alias_arn(&alias)
                )));
            }
            Err(e) => return Err(e.into()),
        }
        self.cache_alias_move(&caller.namespace, &alias, previous.as_ref(), None);
        Ok(())
    }

    /// ListAliases: the aliases of the caller's account and Region, optionally only those of one key.
    pub async fn list_aliases(
        &self,
        caller: &Caller,
        key_id: Option<&str>,
        limit: Option<i64>,
        marker: Option<&str>,
    ) -> Result<Page<AliasRecord>, Error> {
        let limit = pagination::limit(limit, 50, 100)?;
        // Even with a KeyId, AWS authorizes kms:ListAliases on `*`, by identity policies alone.
        self.authorize_account(caller, "kms:ListAliases")?;
        let target = match key_id {
            Some(key_id) => Some(
                self.resolve(caller, key_id, Forms::IdOrArn)
                    .await?
                    .record
                    .key_id
                    .clone(),
            ),
            None => None,
        };
        let after = match marker {
            Some(marker) => Some(pagination::decode(marker)?.parse::<AliasName>().map_err(
                |_| {
                    Error::InvalidMarker(format!(
                        "Marker '{marker}' is not valid: pass the NextMarker of a previous response"
                    ))
                },
            )?),
            None => None,
        };
        let aliases = self
            .store
            .list_aliases(
                &caller.namespace,
                target.as_ref(),
                after.as_ref(),
                limit + 1,
            )
            .await?;
        Ok(pagination::page(aliases, limit, |alias: &AliasRecord| {
            alias.name.as_str().to_owned()
        }))
    }

    /// Checks `action` against the key an alias points at now; a missing alias is reported by the caller.
    async fn authorize_alias_key(
        &self,
        caller: &Caller,
        action: &str,
        alias: &AliasName,
    ) -> Result<(), Error> {
        let Some(current) = self.store.alias(&caller.namespace, alias).await? else {
            return Ok(());
        };
        match self.key(&caller.namespace, &current.target).await? {
            Some(key) => self.authorize(caller, action, &key, RequestFacts::default()),
            None => Ok(()),
        }
    }
}
