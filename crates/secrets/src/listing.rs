//! Reading secrets' metadata: DescribeSecret and ListSecrets (filters, sorting, pages).

use strongroom_service::Caller;
use strongroom_storage::secrets::SecretRecord;

use crate::{Error, SecretMetadata, SecretsManager};

/// The page size when ListSecrets names none.
const DEFAULT_MAX_RESULTS: usize = 100;

/// One ListSecrets filter: a secret matches when any value matches the attribute the key names.
#[derive(Debug, Clone)]
pub struct Filter {
    /// `description`, `name`, `tag-key`, `tag-value`, `primary-region`, `owning-service` or `all`.
    pub key: String,
    /// Prefixes to match; a leading `!` negates one.
    pub values: Vec<String>,
}

/// ListSecrets's parameters.
#[derive(Debug, Default)]
pub struct ListSecretsRequest {
    /// Include secrets scheduled for deletion.
    pub include_planned_deletion: bool,
    /// Page size, 1 to 100.
    pub max_results: Option<i64>,
    /// Where the previous page ended.
    pub next_token: Option<String>,
    /// Filters, all of which a secret must pass.
    pub filters: Vec<Filter>,
    /// `asc` (the default) or `desc`.
    pub sort_order: Option<String>,
    /// `created-date` (the default), `last-accessed-date`, `last-changed-date` or `name`.
    pub sort_by: Option<String>,
}

/// ListSecrets's result.
#[derive(Debug)]
pub struct ListSecretsResponse {
    /// One page of secrets.
    pub secrets: Vec<SecretMetadata>,
    /// Where the next page starts, if there is one.
    pub next_token: Option<String>,
}

/// Whether `record` passes one filter.
pub(crate) fn matches(record: &SecretRecord, filter: &Filter) -> bool {
    filter.values.iter().any(|value| {
        let (negated, prefix) = match value.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, value.as_str()),
        };
        let region = record.namespace.region.as_str();
        let found = match filter.key.as_str() {
            "name" => record.name.starts_with(prefix),
            "description" => record.description.as_deref().is_some_and(|description| {
                description
                    .to_lowercase()
                    .starts_with(&prefix.to_lowercase())
            }),
            "tag-key" => record.tags.iter().any(|tag| tag.key.starts_with(prefix)),
            "tag-value" => record.tags.iter().any(|tag| tag.value.starts_with(prefix)),
            "primary-region" => region.starts_with(prefix),
            // No secret here is managed by another service.
            "owning-service" => false,
            // Every word must start one of the secret's attributes, in any case.
            "all" => {
                let attributes: Vec<String> = [record.name.as_str(), region]
                    .into_iter()
                    .chain(record.description.as_deref())
                    .chain(record.tags.iter().map(|tag| tag.key.as_str()))
                    .chain(record.tags.iter().map(|tag| tag.value.as_str()))
                    .map(str::to_lowercase)
                    .collect();
                prefix.split_whitespace().all(|word| {
                    let word = word.to_lowercase();
                    attributes
                        .iter()
                        .any(|attribute| attribute.starts_with(&word))
                })
            }
            _ => false,
        };
        found != negated
    })
}

impl SecretsManager {
    /// DescribeSecret: a secret's metadata, including a scheduled deletion.
    pub async fn describe_secret(
        &self,
        caller: &Caller,
        secret_id: &str,
    ) -> Result<SecretMetadata, Error> {
        let record = self
            .resolve(caller, secret_id, "secretsmanager:DescribeSecret")
            .await?;
        Ok(SecretMetadata::of(&record))
    }

    /// ListSecrets: the namespace's secrets, filtered, sorted and paged.
    pub async fn list_secrets(
        &self,
        caller: &Caller,
        req: ListSecretsRequest,
    ) -> Result<ListSecretsResponse, Error> {
        self.authorize(caller, "secretsmanager:ListSecrets", "*", None)?;
        let limit = match req.max_results {
            None => DEFAULT_MAX_RESULTS,
            Some(n @ 1..=100) => n as usize,
            Some(n) => {
                return Err(Error::InvalidParameter(format!(
                    "MaxResults must be between 1 and 100, not {n}."
                )));
            }
        };
        let start = match req.next_token.as_deref() {
            None => 0,
            Some(token) => parse_token(token)?,
        };
        let now = self.now();
        let mut records: Vec<SecretRecord> = self
            .store
            .list_secrets(&caller.namespace)
            .await?
            .into_iter()
            // A secret whose recovery window has ended is gone, whether or not the scheduler has run.
            .filter(|record| record.deletion_date.is_none_or(|date| date > now))
            .filter(|record| req.include_planned_deletion || record.deletion_date.is_none())
            .filter(|record| req.filters.iter().all(|filter| matches(record, filter)))
            .collect();
        let by_name = |a: &SecretRecord, b: &SecretRecord| a.name.cmp(&b.name);
        match req.sort_by.as_deref().unwrap_or("created-date") {
            "name" => records.sort_by(by_name),
            "last-changed-date" => {
                records.sort_by(|a, b| a.last_changed.cmp(&b.last_changed).then(by_name(a, b)))
            }
            "last-accessed-date" => {
                records.sort_by(|a, b| a.last_accessed.cmp(&b.last_accessed).then(by_name(a, b)))
            }
            _ => records.sort_by(|a, b| a.created.cmp(&b.created).then(by_name(a, b))),
        }
        if req.sort_order.as_deref() == Some("desc") {
            records.reverse();
        }
        let end = start.saturating_add(limit).min(records.len());
        let page = records.get(start..end).unwrap_or_default();
        let next_token = (end < records.len()).then(|| format!("{TOKEN_PREFIX}{end}"));
        Ok(ListSecretsResponse {
            secrets: page.iter().map(SecretMetadata::of).collect(),
            next_token,
        })
    }
}

/// Tokens are the offset of the next page in the sorted, filtered list.
const TOKEN_PREFIX: &str = "strongroom-secrets-offset-";

fn parse_token(token: &str) -> Result<usize, Error> {
    token
        .strip_prefix(TOKEN_PREFIX)
        .and_then(|offset| offset.parse().ok())
        .ok_or_else(|| {
            Error::InvalidNextToken(
                "The NextToken value is invalid: pass the token the previous ListSecrets call returned."
                    .to_owned(),
            )
        })
}
