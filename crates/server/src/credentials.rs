//! The credentials the server accepts: the administrator access key, IAM access keys and STS sessions,
//! and in `--dev` mode the fixed development keys.
//!
//! The administrator's secret is stored in the database wrapped by the root key, never in plaintext; the
//! only plaintext copy is the 0600 file handed to the operator on first start.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use std::sync::Arc;

use strongroom_iam::Identities;
use strongroom_keystore::{RootKey, random_bytes};
use strongroom_protocol::{Credentials, LookupError, Principal};
use strongroom_storage::Store;
use strongroom_types::AccountId;
use zeroize::Zeroizing;

/// The access key and secret of the development mode's default root.
pub const DEV_ACCESS_KEY: &str = "test";
const DEV_SECRET: &str = "test";
const ADMIN_SETTING: &str = "admin-access-key";
/// File name, in the data directory, of the administrator credentials written on first start.
pub const ADMIN_CREDENTIALS_FILE: &str = "admin-credentials";

struct StoredKey {
    secret: Zeroizing<String>,
    account: AccountId,
    arn: String,
    service: Option<String>,
}

/// The server's credentials, held in memory.
pub(crate) struct ServerCredentials {
    dev: bool,
    default_account: AccountId,
    keys: HashMap<String, StoredKey>,
    identities: Arc<Identities>,
}

impl Credentials for ServerCredentials {
    fn lookup(
        &self,
        access_key_id: &str,
        session_token: Option<&str>,
    ) -> Result<Principal, LookupError> {
        if let Some(key) = self.keys.get(access_key_id) {
            return Ok(Principal {
                secret: key.secret.clone(),
                account: key.account.clone(),
                arn: key.arn.clone(),
                service: key.service.clone(),
            });
        }
        match self.identities.lookup(access_key_id, session_token) {
            Ok(credential) => {
                return Ok(Principal {
                    secret: credential.secret,
                    account: credential.principal.account.clone(),
                    arn: credential.principal.arn.clone(),
                    service: None,
                });
            }
            Err(LookupError::Expired) => return Err(LookupError::Expired),
            Err(LookupError::Unknown) => {}
        }
        if !self.dev {
            return Err(LookupError::Unknown);
        }
        let account = if access_key_id == DEV_ACCESS_KEY {
            self.default_account.clone()
        } else {
            access_key_id.parse().map_err(|_| LookupError::Unknown)?
        };
        let arn = format!("arn:aws:iam::{account}:root");
        Ok(Principal {
            secret: Zeroizing::new(DEV_SECRET.to_owned()),
            account,
            arn,
            service: None,
        })
    }
}

/// Loads the administrator key, creating it (and its 0600 file) on first start.
///
/// Returns the credentials and, when the key was just created, the path of the file holding it.
pub(crate) async fn load(
    store: &dyn Store,
    root_key: &dyn RootKey,
    data_dir: &Path,
    account: &AccountId,
    dev: bool,
    identities: Arc<Identities>,
    services: &[crate::config::ServicePrincipal],
) -> anyhow::Result<(ServerCredentials, Option<PathBuf>)> {
    let mut created = None;
    let (access_key_id, secret) = match store.setting(ADMIN_SETTING).await? {
        Some(stored) => unwrap_admin(root_key, &stored)?,
        None => {
            let access_key_id = format!("SRAK{}", encode_upper(&random_bytes(10)));
            let secret = Zeroizing::new(encode_secret(&random_bytes(30)));
            let mut plain = Zeroizing::new(format!("{access_key_id}\n").into_bytes());
            plain.extend_from_slice(secret.as_bytes());
            let wrapped = root_key.wrap(ADMIN_SETTING.as_bytes(), &plain)?;
            let path = data_dir.join(ADMIN_CREDENTIALS_FILE);
            write_private(&path, &access_key_id, &secret)?;
            store.put_setting(ADMIN_SETTING, &wrapped).await?;
            created = Some(path);
            (access_key_id, secret)
        }
    };
    let mut keys = HashMap::new();
    keys.insert(
        access_key_id,
        StoredKey {
            secret,
            account: account.clone(),
            arn: format!("arn:aws:iam::{account}:root"),
            service: None,
        },
    );
    for service in services {
        keys.insert(
            service.access_key_id.clone(),
            StoredKey {
                secret: service.secret.clone(),
                account: account.clone(),
                arn: format!("{}.amazonaws.com", service.service),
                service: Some(service.service.clone()),
            },
        );
    }
    Ok((
        ServerCredentials {
            dev,
            default_account: account.clone(),
            keys,
            identities,
        },
        created,
    ))
}

fn unwrap_admin(
    root_key: &dyn RootKey,
    stored: &[u8],
) -> anyhow::Result<(String, Zeroizing<String>)> {
    let plain = root_key.unwrap(ADMIN_SETTING.as_bytes(), stored).context(
        "unwrap the stored administrator key: the root key file does not match this database",
    )?;
    let text = std::str::from_utf8(&plain).context("the stored administrator key is corrupt")?;
    let Some((access_key_id, secret)) = text.split_once('\n') else {
        anyhow::bail!("the stored administrator key is corrupt");
    };
    Ok((access_key_id.to_owned(), Zeroizing::new(secret.to_owned())))
}

fn write_private(path: &Path, access_key_id: &str, secret: &str) -> anyhow::Result<()> {
    let contents = Zeroizing::new(format!(
        "# Strongroom administrator credentials, in the AWS shared credentials file format.\n\
         # Keep this file secret. Use it with: AWS_SHARED_CREDENTIALS_FILE={} aws --profile strongroom ...\n\
         [strongroom]\naws_access_key_id = {access_key_id}\naws_secret_access_key = {secret}\n",
        path.display()
    ));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("create {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

/// Base32 (RFC 4648 alphabet) without padding, as AWS access key ids look.
fn encode_upper(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let mut buffer = 0u32;
    let mut bits = 0;
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    out
}

/// A 40-character secret from letters, digits, `+` and `/`, as AWS secret keys look.
fn encode_secret(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n =
            chunk.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b)) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}
