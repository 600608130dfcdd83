//! Grants: CreateGrant, ListGrants, ListRetirableGrants, RetireGrant, RevokeGrant.
//!
//! A grant lets one principal perform some operations on one key, optionally only with a given
//! encryption context. Authorization consults a key's grants (cached with the key) when neither the key
//! policy nor IAM policies allow a request; grants never override an explicit deny. Strongroom is
//! strongly consistent, so a grant works at once and grant tokens only need to be well formed.

use std::collections::BTreeMap;

use strongroom_storage::StoreError;
use strongroom_types::{EncryptionContext, GrantRecord, KeySpec};

use crate::authz::RequestFacts;
use crate::keyring::{Forms, parse_key_ref};
use crate::pagination::{self, Page};
use crate::state::{self, OpClass};
use crate::{Caller, Error, Kms};

/// Operations a grant on a symmetric encryption key may allow.
const SYMMETRIC_OPERATIONS: &[&str] = &[
    "Decrypt",
    "Encrypt",
    "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext",
    "ReEncryptFrom",
    "ReEncryptTo",
    "CreateGrant",
    "RetireGrant",
    "DescribeKey",
];
/// The most grants one key may have.
const MAX_GRANTS_PER_KEY: usize = 50_000;
/// Grant tokens start with this, so tokens from elsewhere are told apart.
const TOKEN_PREFIX: &str = "SRGT1";

/// CreateGrant's parameters.
#[derive(Debug, Default)]
pub struct CreateGrantRequest {
    /// The key, by key id or key ARN.
    pub key_id: String,
    /// Who the grant is for.
    pub grantee_principal: String,
    /// Who may retire it, besides the grantee and the issuing account.
    pub retiring_principal: Option<String>,
    /// Grant operation names.
    pub operations: Vec<String>,
    /// `Constraints.EncryptionContextEquals`.
    pub context_equals: Option<BTreeMap<String, String>>,
    /// `Constraints.EncryptionContextSubset`.
    pub context_subset: Option<BTreeMap<String, String>>,
    /// A name that makes retries idempotent.
    pub name: Option<String>,
    /// Check everything, create nothing.
    pub dry_run: bool,
}

/// CreateGrant's result.
#[derive(Debug)]
pub struct CreatedGrant {
    /// The grant id.
    pub grant_id: String,
    /// A token for the grant.
    pub grant_token: String,
}

/// How RetireGrant names the grant.
#[derive(Debug)]
pub enum RetireTarget {
    /// By its token.
    Token(String),
    /// By key (ARN) and grant id.
    Id {
        /// The key.
        key_id: String,
        /// The grant.
        grant_id: String,
    },
}

fn random_hex(bytes: usize) -> String {
    hex(&strongroom_keystore::random_bytes(bytes))
}

fn token_for(grant: &GrantRecord) -> String {
    format!(
        "{TOKEN_PREFIX}{}{}{}",
        grant.grant_id,
        random_hex(16),
        hex(grant.namespace.key_arn(&grant.key_id).as_bytes())
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads a token back into the key ARN and grant id it names.
fn parse_token(token: &str) -> Result<(String, String), Error> {
    let invalid = || {
        Error::InvalidGrantToken(
            "The grant token is not valid: use a token CreateGrant returned.".to_owned(),
        )
    };
    let rest = token.strip_prefix(TOKEN_PREFIX).ok_or_else(invalid)?;
    if rest.len() < 96 || !rest.is_char_boundary(96) {
        return Err(invalid());
    }
    let (grant_id, rest) = rest.split_at(64);
    let arn_hex = &rest[32..];
    if arn_hex.len() % 2 != 0 {
        return Err(invalid());
    }
    let mut arn = Vec::with_capacity(arn_hex.len() / 2);
    for pair in arn_hex.as_bytes().chunks(2) {
        let text = std::str::from_utf8(pair).map_err(|_| invalid())?;
        arn.push(u8::from_str_radix(text, 16).map_err(|_| invalid())?);
    }
    Ok((
        String::from_utf8(arn).map_err(|_| invalid())?,
        grant_id.to_owned(),
    ))
}

/// Checks the grant tokens a request carries: at most 10, each one this server issued.
pub fn check_grant_tokens(tokens: &[String]) -> Result<(), Error> {
    for token in tokens {
        parse_token(token)?;
    }
    Ok(())
}

impl Kms {
    /// CreateGrant.
    pub async fn create_grant(
        &self,
        caller: &Caller,
        req: CreateGrantRequest,
    ) -> Result<CreatedGrant, Error> {
        let live = self
            .resolve(caller, &req.key_id, Forms::IdOrArnCrossAccount)
            .await?;
        let constraint_types: Vec<String> = [
            (req.context_equals.is_some(), "EncryptionContextEquals"),
            (req.context_subset.is_some(), "EncryptionContextSubset"),
        ]
        .into_iter()
        .filter(|(present, _)| *present)
        .map(|(_, name)| name.to_owned())
        .collect();
        // kms:EncryptionContext:* and kms:EncryptionContextKeys test the grant's constraint, as AWS
        // documents for CreateGrant (a request naming both constraints is refused below).
        let constraint = match (&req.context_equals, &req.context_subset) {
            (Some(pairs), _) | (None, Some(pairs)) => Some(EncryptionContext::new(pairs.clone())),
            (None, None) => None,
        };
        let facts = RequestFacts {
            encryption_context: constraint.as_ref(),
            grant_operations: Some(&req.operations),
            grant_constraint_types: (!constraint_types.is_empty()).then_some(&constraint_types[..]),
            grantee_principal: Some(&req.grantee_principal),
            retiring_principal: req.retiring_principal.as_deref(),
            ..RequestFacts::default()
        };
        self.authorize(caller, "kms:CreateGrant", &live, facts)?;
        let record = &live.record;
        state::check(record, OpClass::CreateGrant)?;
        if req.operations.is_empty() {
            return Err(Error::Validation(
                "A grant must allow at least one operation.".to_owned(),
            ));
        }
        if record.key_spec == KeySpec::SymmetricDefault
            && let Some(bad) = req
                .operations
                .iter()
                .find(|op| !SYMMETRIC_OPERATIONS.contains(&op.as_str()))
        {
            return Err(Error::Validation(format!(
                "Grant operation {bad} is not valid for a symmetric encryption key; use one of {}.",
                SYMMETRIC_OPERATIONS.join(", ")
            )));
        }
        if req.context_equals.is_some() && req.context_subset.is_some() {
            return Err(Error::Validation(
                "Specify either EncryptionContextEquals or EncryptionContextSubset in Constraints, not both.".to_owned(),
            ));
        }
        if req.dry_run {
            return Err(Error::DryRunOperation);
        }
        let _writes = self.writes.lock().await;
        let existing = self
            .store
            .grants_for_key(&record.namespace, &record.key_id)
            .await?;
        let mut operations = req.operations.clone();
        operations.sort();
        operations.dedup();
        if let Some(name) = &req.name
            && let Some(same) = existing.iter().find(|grant| {
                grant.name.as_deref() == Some(name.as_str())
                    && grant.grantee_principal == req.grantee_principal
                    && grant.retiring_principal == req.retiring_principal
                    && grant.operations == operations
                    && grant.context_equals == req.context_equals
                    && grant.context_subset == req.context_subset
            })
        {
            return Ok(CreatedGrant {
                grant_id: same.grant_id.clone(),
                grant_token: token_for(same),
            });
        }
        if existing.len() >= MAX_GRANTS_PER_KEY {
            return Err(Error::LimitExceeded(format!(
                "{} already has {MAX_GRANTS_PER_KEY} grants, the most a key may have.",
                record.arn()
            )));
        }
        let grant = GrantRecord {
            namespace: record.namespace.clone(),
            key_id: record.key_id.clone(),
            grant_id: random_hex(32),
            name: req.name,
            grantee_principal: req.grantee_principal,
            retiring_principal: req.retiring_principal,
            operations,
            context_equals: req.context_equals,
            context_subset: req.context_subset,
            issuing_account: caller.account().clone(),
            created: self.clock.now(),
        };
        self.store.insert_grant(&grant).await?;
        self.refresh_grants(&grant.namespace, &grant.key_id).await?;
        Ok(CreatedGrant {
            grant_token: token_for(&grant),
            grant_id: grant.grant_id,
        })
    }

    /// ListGrants: the grants on a key, optionally one grant or one grantee's.
    pub async fn list_grants(
        &self,
        caller: &Caller,
        key_id: &str,
        grant_id: Option<&str>,
        grantee_principal: Option<&str>,
        limit: Option<i64>,
        marker: Option<&str>,
    ) -> Result<Page<GrantRecord>, Error> {
        let limit = pagination::limit(limit, 50, 100)?;
        let live = self
            .resolve(caller, key_id, Forms::IdOrArnCrossAccount)
            .await?;
        self.authorize(caller, "kms:ListGrants", &live, RequestFacts::default())?;
        let grants: Vec<GrantRecord> = live
            .grants
            .iter()
            .filter(|grant| grant_id.is_none_or(|id| grant.grant_id == id))
            .filter(|grant| grantee_principal.is_none_or(|p| grant.grantee_principal == p))
            .cloned()
            .collect();
        page_after(grants, limit, marker)
    }

    /// ListRetirableGrants: grants, on keys of any account, that `retiring_principal` may retire.
    pub async fn list_retirable_grants(
        &self,
        _caller: &Caller,
        retiring_principal: &str,
        limit: Option<i64>,
        marker: Option<&str>,
    ) -> Result<Page<GrantRecord>, Error> {
        let limit = pagination::limit(limit, 50, 100)?;
        let grants = self.store.grants_retirable_by(retiring_principal).await?;
        page_after(grants, limit, marker)
    }

    /// RevokeGrant: deletes a grant, as authorized by `kms:RevokeGrant` on the key.
    pub async fn revoke_grant(
        &self,
        caller: &Caller,
        key_id: &str,
        grant_id: &str,
        dry_run: bool,
    ) -> Result<(), Error> {
        let live = self
            .resolve(caller, key_id, Forms::IdOrArnCrossAccount)
            .await?;
        self.authorize(caller, "kms:RevokeGrant", &live, RequestFacts::default())?;
        if !live.grants.iter().any(|grant| grant.grant_id == grant_id) {
            return Err(Error::NotFound(format!(
                "Grant ID {grant_id} not found on {}",
                live.record.arn()
            )));
        }
        if dry_run {
            return Err(Error::DryRunOperation);
        }
        self.delete_grant(&live.record.namespace, &live.record.key_id, grant_id)
            .await
    }

    /// RetireGrant: deletes a grant, as allowed by the grant itself: its retiring principal, its grantee when
    /// it allows RetireGrant (a role named there includes its sessions), or the account that created it. That
    /// account, and an account named as the retiring principal, may delegate retiring to their IAM principals
    /// with `kms:RetireGrant` in identity policies; key policies play no part, as in AWS KMS.
    pub async fn retire_grant(
        &self,
        caller: &Caller,
        target: RetireTarget,
        dry_run: bool,
    ) -> Result<(), Error> {
        let (key_ref, grant_id) = match target {
            RetireTarget::Token(token) => parse_token(&token)?,
            RetireTarget::Id { key_id, grant_id } => (key_id, grant_id),
        };
        let (namespace, key_id) = match parse_key_ref(&key_ref)? {
            strongroom_types::KeyRef::KeyArn(namespace, key_id) => (namespace, key_id),
            strongroom_types::KeyRef::Id(key_id) => (caller.namespace.clone(), key_id),
            _ => {
                return Err(Error::InvalidArn(format!(
                    "RetireGrant needs the key ARN, not '{key_ref}'."
                )));
            }
        };
        let grants = self.store.grants_for_key(&namespace, &key_id).await?;
        let Some(grant) = grants.iter().find(|grant| grant.grant_id == grant_id) else {
            return Err(Error::NotFound(format!(
                "Grant ID {grant_id} not found on {}",
                namespace.key_arn(&key_id)
            )));
        };
        let identity = self
            .identities
            .as_deref()
            .and_then(|identities| identities.principal(&caller.access_key_id));
        let role_arn = identity
            .as_ref()
            .and_then(|principal| principal.role_arn.as_deref());
        let names_caller = |arn: &str| arn == caller.arn || Some(arn) == role_arn;
        let retiring = grant
            .retiring_principal
            .as_deref()
            .is_some_and(names_caller);
        let grantee = names_caller(&grant.grantee_principal)
            && grant.operations.iter().any(|op| op == "RetireGrant");
        let caller_account_root = format!("arn:aws:iam::{}:root", caller.account());
        let account_may_retire = &grant.issuing_account == caller.account()
            || grant.retiring_principal.as_deref() == Some(caller_account_root.as_str());
        let mut allowed = retiring || grantee;
        if !allowed && account_may_retire {
            // An account root passes its own identity check; an IAM principal needs kms:RetireGrant on the key.
            let live = self
                .key(&namespace, &key_id)
                .await?
                .ok_or_else(|| crate::keyring::not_found(&namespace, &key_id))?;
            allowed = crate::authz::authorize_identity(
                caller,
                "kms:RetireGrant",
                live.arn_str(),
                &live.record,
                self.identities.as_deref(),
                self.clock.now().millis(),
                RequestFacts::default(),
            )
            .is_ok();
        }
        if !allowed {
            return Err(Error::AccessDenied(format!(
                "User: {} is not authorized to retire grant {grant_id}: only its retiring principal, its grantee (when \
                 the grant allows RetireGrant), or the account that created it and the principals it allows \
                 kms:RetireGrant may",
                caller.arn
            )));
        }
        if dry_run {
            return Err(Error::DryRunOperation);
        }
        self.delete_grant(&namespace, &key_id, &grant_id).await
    }

    async fn delete_grant(
        &self,
        namespace: &strongroom_types::Namespace,
        key_id: &strongroom_types::KeyId,
        grant_id: &str,
    ) -> Result<(), Error> {
        let _writes = self.writes.lock().await;
        match self.store.delete_grant(namespace, key_id, grant_id).await {
            Ok(()) => {}
            Err(StoreError::NotFound(_)) => {
                return Err(Error::NotFound(format!(
                    "Grant ID {grant_id} not found on {}",
                    namespace.key_arn(key_id)
                )));
            }
            Err(e) => return Err(e.into()),
        }
        self.refresh_grants(namespace, key_id).await
    }
}

/// Pages grants (already in creation order) after a marker naming the last grant id returned.
fn page_after(
    grants: Vec<GrantRecord>,
    limit: usize,
    marker: Option<&str>,
) -> Result<Page<GrantRecord>, Error> {
    let start = match marker {
        None => 0,
        Some(marker) => {
            let after = pagination::decode(marker)?;
            match grants.iter().position(|grant| grant.grant_id == after) {
                Some(index) => index + 1,
                None => {
                    return Err(Error::InvalidMarker(format!(
                        "Marker '{marker}' is not valid for these grants"
                    )));
                }
            }
        }
    };
    let items = grants.into_iter().skip(start).take(limit + 1).collect();
    Ok(pagination::page(items, limit, |grant: &GrantRecord| {
        grant.grant_id.clone()
    }))
}
