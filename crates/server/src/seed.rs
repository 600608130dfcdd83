//! The seed file: keys with fixed ids (and, if wanted, fixed key material), their aliases and tags,
//! created at start-up unless they already exist.
//!
//! ```toml
//! [[key]]
//! id = "11111111-2222-3333-4444-555555555555"
//! description = "Test key with known material"
//! material_base64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="   # optional: 32 bytes
//! aliases = ["alias/test"]
//! tags = { Owner = "qa" }
//! # account = "111122223333"   region = "us-east-1"   enabled = true   rotation_period_days = 365
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use base64::Engine;
use serde::Deserialize;
use strongroom_service::Kms;
use strongroom_service::seed::{SeedKey, SeedOutcome};
use strongroom_types::{AccountId, Namespace, Tag};
use zeroize::Zeroizing;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedFile {
    #[serde(default)]
    key: Vec<SeedEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedEntry {
    id: String,
    account: Option<String>,
    region: Option<String>,
    #[serde(default)]
    description: String,
    material_base64: Option<String>,
    enabled: Option<bool>,
    policy: Option<String>,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    rotation_period_days: Option<u32>,
}

/// The Region seeded keys go to when the entry names none.
const DEFAULT_SEED_REGION: &str = "us-east-1";

/// Loads every key of the seed file at `path`; returns how many were created.
pub(crate) async fn load(
    kms: &Kms,
    path: &Path,
    default_account: &AccountId,
) -> anyhow::Result<usize> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("read the seed file {}", path.display()))?;
    let file: SeedFile =
        toml::from_str(&text).with_context(|| format!("parse the seed file {}", path.display()))?;
    let mut created = 0;
    for (index, entry) in file.key.into_iter().enumerate() {
        let what = format!(
            "seed file {}, key {} ({})",
            path.display(),
            index + 1,
            entry.id
        );
        let seed = to_seed(entry, default_account).with_context(|| what.clone())?;
        match kms
            .seed_key(seed)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| what.clone())?
        {
            SeedOutcome::Created => created += 1,
            SeedOutcome::AlreadyPresent => tracing::debug!("{what} exists already; left unchanged"),
        }
    }
    Ok(created)
}

fn to_seed(entry: SeedEntry, default_account: &AccountId) -> anyhow::Result<SeedKey> {
    let parse_err = |e: strongroom_types::InvalidId| anyhow::anyhow!("{e}");
    let account = match entry.account {
        Some(account) => account.parse().map_err(parse_err)?,
        None => default_account.clone(),
    };
    let region = entry
        .region
        .as_deref()
        .unwrap_or(DEFAULT_SEED_REGION)
        .parse()
        .map_err(parse_err)?;
    let material = match entry.material_base64 {
        Some(text) => Some(Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .context("material_base64 is not valid base64")?,
        )),
        None => None,
    };
    Ok(SeedKey {
        namespace: Namespace { account, region },
        key_id: entry.id.parse().map_err(parse_err)?,
        description: entry.description,
        material,
        enabled: entry.enabled.unwrap_or(true),
        policy: entry.policy,
        aliases: entry
            .aliases
            .iter()
            .map(|a| a.parse().map_err(parse_err))
            .collect::<anyhow::Result<_>>()?,
        tags: entry
            .tags
            .into_iter()
            .map(|(key, value)| Tag { key, value })
            .collect(),
        rotation_period_days: entry.rotation_period_days,
    })
}
