//! Server configuration: one value, built once at start-up from an optional TOML file and the command
//! line (which wins), then passed explicitly to whatever needs it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;
use strongroom_keystore_pkcs11::{HsmConfig, ModuleSet, RootKeyToken, SecretSource};
use strongroom_types::{AccountId, Region};

/// The address the server listens on when none is configured: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9444";
/// The data directory used when none is configured.
pub(crate) const DEFAULT_DATA_DIR: &str = "strongroom-data";
/// The default account.
pub(crate) const DEFAULT_ACCOUNT_ID: &str = "111122223333";

/// Everything the server needs to know to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Where the database, the root key and the administrator credentials live.
    pub data_dir: PathBuf,
    /// The default account: `--dev` credentials and the administrator key belong to it.
    pub account_id: AccountId,
    /// Development mode: access key `test` / secret `test` is the root of the default account, and any
    /// 12-digit access key is the root of that account (secret `test`). Never for production.
    pub dev: bool,
    /// Regions the server accepts; `None` accepts any Region name.
    pub regions: Option<Vec<Region>>,
    /// A seed file of keys, aliases and tags loaded at start without overwriting existing data.
    pub seed_file: Option<PathBuf>,
    /// How often keys due for deletion or rotation are looked for (they are also handled when used).
    pub scheduler_interval: Duration,
    /// How long LookupEvents can find an audit event; delivered log files are never removed.
    pub audit_retention: Duration,
    /// Where the audit trail lives (journal, query index, delivered log files and digests), when
    /// not in `audit/` under the data directory; see [`Config::audit_location`].
    pub audit_dir: Option<PathBuf>,
    /// Serve without an audit trail. Only for measuring what the trail costs; never in production.
    pub dangerous_disable_audit: bool,
    /// The HSMs the CloudHSM control plane may put in clusters (`[[hsm]]` tables); none by default.
    pub hsms: Vec<HsmConfig>,
    /// Where the default key store's root key lives: `root.key` in the data directory, or PKCS#11
    /// tokens (`[root_key]` and its `[[root_key.replica]]` tables).
    pub root_key: RootKeyConfig,
    /// The PKCS#11 modules the HSMs are loaded from, loaded on first use; tests running the server in
    /// their own process pass the set they already loaded, to inspect tokens and inject faults.
    pub hsm_modules: ModuleSet,
    /// Address ranges treated as VPCs, and proxies whose `X-Forwarded-For` is believed.
    pub network: strongroom_protocol::NetworkContext,
    /// Services that call on behalf of callers (`kms:ViaService`), with their own credentials.
    pub service_principals: Vec<ServicePrincipal>,
}

/// Where the root key of the default key store lives; it wraps every key's material at rest, and the
/// secrets IAM and the server keep.
#[derive(Debug, Clone, Default)]
pub enum RootKeyConfig {
    /// A random 256-bit key in `root.key` in the data directory (mode 0600), made on first start.
    #[default]
    File,
    /// An AES-256 key inside a PKCS#11 token, made there on first start and never readable (it leaves
    /// the token only wrapped under a trusted key): key material is wrapped and unwrapped inside it.
    Pkcs11(Pkcs11RootKey),
    /// The same AES-256 key on several PKCS#11 tokens, so that losing one loses nothing: a
    /// `[root_key]` table with `[[root_key.replica]]` tables (or with a Security Officer PIN).
    Pkcs11Replicated(ReplicatedRootKey),
}

/// A root key kept on several PKCS#11 tokens: made in one, copied to the others only wrapped,
/// served by any of them.
#[derive(Debug, Clone)]
pub struct ReplicatedRootKey {
    /// The root key's label, the same on every token.
    pub key_label: String,
    /// The tokens, the `[root_key]` table's first, then each `[[root_key.replica]]` in order.
    pub tokens: Vec<RootKeyToken>,
}

impl RootKeyConfig {
    /// The tokens and label of a root key kept in PKCS#11 tokens, whichever form configured it;
    /// `None` for `root.key`.
    pub fn pkcs11(&self) -> Option<ReplicatedRootKey> {
        match self {
            RootKeyConfig::File => None,
            RootKeyConfig::Pkcs11(token) => Some(ReplicatedRootKey {
                key_label: token.key_label.clone(),
                tokens: vec![RootKeyToken {
                    module: token.module.clone(),
                    token_label: token.token_label.clone(),
                    user_pin: token.user_pin.clone(),
                    so_pin: None,
                }],
            }),
            RootKeyConfig::Pkcs11Replicated(replicated) => Some(replicated.clone()),
        }
    }
}

/// A root key in a PKCS#11 token, from a `[root_key]` table.
#[derive(Debug, Clone)]
pub struct Pkcs11RootKey {
    /// The PKCS#11 library.
    pub module: PathBuf,
    /// The token's label.
    pub token_label: String,
    /// Where the PIN of the token's user (`CKU_USER`) is read from; never the configuration itself.
    pub user_pin: SecretSource,
    /// The label of the root key on the token.
    pub key_label: String,
}

/// The label the root key gets on its token when `[root_key]` does not say.
pub const DEFAULT_ROOT_KEY_LABEL: &str = "strongroom-root-key";

/// A service allowed to call on behalf of other principals, such as an operator's own `s3`-like service.
#[derive(Debug, Clone)]
pub struct ServicePrincipal {
    /// The service name; requests it makes carry `kms:ViaService` = `<service>.<region>.amazonaws.com`.
    pub service: String,
    /// The access key id it signs with.
    pub access_key_id: String,
    /// Its secret access key.
    pub secret: zeroize::Zeroizing<String>,
}

impl Config {
    /// A development configuration for `data_dir`: default account, any Region, `--dev` credentials.
    pub fn dev(data_dir: PathBuf) -> Config {
        let overrides = Overrides {
            data_dir: Some(data_dir),
            dev: true,
            ..Overrides::default()
        };
        // The defaults are constants that always parse, and an empty file reads nothing from disk.
        Config::build(ConfigFile::default(), overrides)
            .unwrap_or_else(|e| unreachable!("the default configuration is valid: {e}"))
    }
}

/// The configuration file's schema; every field is optional and unknown fields are errors.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Address to listen on.
    pub listen: Option<String>,
    /// Data directory.
    pub data_dir: Option<PathBuf>,
    /// Default account id.
    pub account_id: Option<String>,
    /// Development mode.
    pub dev: Option<bool>,
    /// Regions served; any Region when absent.
    pub regions: Option<Vec<String>>,
    /// Seed file, relative to the configuration file.
    pub seed_file: Option<PathBuf>,
    /// Seconds between scheduler runs.
    pub scheduler_interval_seconds: Option<u64>,
    /// Days LookupEvents keeps events (90 by default).
    pub audit_retention_days: Option<u64>,
    /// Directory for the audit trail (`audit` in the data directory by default), relative to the
    /// configuration file.
    pub audit_dir: Option<PathBuf>,
    /// Declared HSMs, one `[[hsm]]` table each.
    pub hsm: Option<Vec<HsmTable>>,
    /// `[[network]]` tables: address ranges treated as VPCs (`aws:SourceVpc`, `aws:SourceVpce`).
    pub network: Option<Vec<NetworkTable>>,
    /// `[[service_principal]]` tables: services that call on behalf of callers.
    pub service_principal: Option<Vec<ServicePrincipalTable>>,
    /// Proxies (address ranges) whose `X-Forwarded-For` header names the client for `aws:SourceIp`.
    pub trusted_proxies: Option<Vec<String>>,
    /// `[root_key]`: the root key in a PKCS#11 token instead of `root.key`.
    pub root_key: Option<RootKeyTable>,
}

/// The `[root_key]` table: a PKCS#11 token whose user PIN comes from a file or the environment, and
/// the tokens holding copies of the key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootKeyTable {
    /// The PKCS#11 library, relative to the configuration file.
    pub module: PathBuf,
    /// The token's label.
    pub token_label: String,
    /// A file holding the token's user PIN, relative to the configuration file.
    pub user_pin_file: Option<PathBuf>,
    /// An environment variable holding the token's user PIN.
    pub user_pin_env: Option<String>,
    /// A file holding the token's Security Officer PIN, needed only to copy the key to a replica.
    pub so_pin_file: Option<PathBuf>,
    /// An environment variable holding the token's Security Officer PIN.
    pub so_pin_env: Option<String>,
    /// The root key's label on the token; `strongroom-root-key` when absent.
    pub key_label: Option<String>,
    /// `[[root_key.replica]]` tables: more tokens holding the same key.
    pub replica: Option<Vec<RootKeyReplicaTable>>,
}

/// One `[[root_key.replica]]` table: another token holding a copy of the root key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootKeyReplicaTable {
    /// The PKCS#11 library, relative to the configuration file.
    pub module: PathBuf,
    /// The token's label.
    pub token_label: String,
    /// A file holding the token's user PIN, relative to the configuration file.
    pub user_pin_file: Option<PathBuf>,
    /// An environment variable holding the token's user PIN.
    pub user_pin_env: Option<String>,
    /// A file holding the token's Security Officer PIN, needed only to copy the key to or from it.
    pub so_pin_file: Option<PathBuf>,
    /// An environment variable holding the token's Security Officer PIN.
    pub so_pin_env: Option<String>,
}

/// One `[[hsm]]` table: a PKCS#11 token the CloudHSM control plane may assign to a cluster.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HsmTable {
    /// A stable name for the HSM; the token label when absent.
    pub id: Option<String>,
    /// The PKCS#11 library, relative to the configuration file.
    pub module: PathBuf,
    /// The token's label.
    pub token_label: String,
    /// The availability zone the HSM stands for, for example `us-east-1a`.
    pub availability_zone: String,
    /// A file holding the token's Security Officer PIN, relative to the configuration file.
    pub so_pin_file: Option<PathBuf>,
    /// An environment variable holding the token's Security Officer PIN.
    pub so_pin_env: Option<String>,
}

impl ConfigFile {
    /// Reads and parses a configuration file; paths in it are taken relative to the file's directory.
    pub fn load(path: &Path) -> anyhow::Result<ConfigFile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("read the configuration file {}", path.display()))?;
        let mut file: ConfigFile = toml::from_str(&text)
            .with_context(|| format!("parse the configuration file {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        file.data_dir = file.data_dir.map(|dir| base.join(dir));
        file.seed_file = file.seed_file.map(|seed| base.join(seed));
        file.audit_dir = file.audit_dir.map(|dir| base.join(dir));
        for service in file.service_principal.iter_mut().flatten() {
            service.secret_file = base.join(&service.secret_file);
        }
        for hsm in file.hsm.iter_mut().flatten() {
            hsm.module = base.join(&hsm.module);
            hsm.so_pin_file = hsm.so_pin_file.as_ref().map(|pin| base.join(pin));
        }
        if let Some(root_key) = file.root_key.as_mut() {
            root_key.module = base.join(&root_key.module);
            root_key.user_pin_file = root_key.user_pin_file.as_ref().map(|pin| base.join(pin));
            root_key.so_pin_file = root_key.so_pin_file.as_ref().map(|pin| base.join(pin));
            for replica in root_key.replica.iter_mut().flatten() {
                replica.module = base.join(&replica.module);
                replica.user_pin_file = replica.user_pin_file.as_ref().map(|pin| base.join(pin));
                replica.so_pin_file = replica.so_pin_file.as_ref().map(|pin| base.join(pin));
            }
        }
        Ok(file)
    }
}

/// One `[[service_principal]]` table; the secret comes from a file, never from this file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServicePrincipalTable {
    /// The service name, for example `s3`.
    pub service: String,
    /// The access key id it signs with.
    pub access_key_id: String,
    /// A file holding its secret access key (mode 0600).
    pub secret_file: PathBuf,
}

/// One `[[network]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkTable {
    /// Source addresses, for example `10.0.0.0/16`.
    pub cidr: String,
    /// The VPC id requests from there carry, for example `vpc-0123456789abcdef0`.
    pub vpc_id: String,
    /// The VPC endpoint id they carry, if any.
    pub vpc_endpoint_id: Option<String>,
}

/// Values given on the command line; each one overrides the file.
#[derive(Debug, Default)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<String>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--account-id`.
    pub account_id: Option<String>,
    /// `--dev`.
    pub dev: bool,
    /// `--seed`.
    pub seed_file: Option<PathBuf>,
    /// `--dangerous-disable-audit`.
    pub dangerous_disable_audit: bool,
    /// `--audit-dir`.
    pub audit_dir: Option<PathBuf>,
}

impl Config {
    /// Combines a configuration file (or none) with command-line overrides, checking every value.
    pub fn build(file: ConfigFile, overrides: Overrides) -> anyhow::Result<Config> {
        let listen = overrides
            .listen
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen = listen.parse().with_context(|| {
            format!("'{listen}' is not a listen address: use IP:PORT, for example {DEFAULT_LISTEN}")
        })?;
        let account = overrides
            .account_id
            .or(file.account_id)
            .unwrap_or_else(|| DEFAULT_ACCOUNT_ID.to_owned());
        let account_id = account
            .parse()
            .map_err(|e: strongroom_types::InvalidId| anyhow::anyhow!("{e}"))?;
        let regions = match file.regions {
            None => None,
            Some(names) => Some(
                names
                    .iter()
                    .map(|name| {
                        name.parse()
                            .map_err(|e: strongroom_types::InvalidId| anyhow::anyhow!("{e}"))
                    })
                    .collect::<anyhow::Result<Vec<Region>>>()?,
            ),
        };
        let mut network = strongroom_protocol::NetworkContext::default();
        for table in file.network.iter().flatten() {
            let range = table
                .cidr
                .parse()
                .map_err(|e: String| anyhow::anyhow!("[[network]] cidr: {e}"))?;
            network.vpcs.push(strongroom_protocol::VpcMapping {
                range,
                vpc_id: table.vpc_id.clone(),
                vpc_endpoint_id: table.vpc_endpoint_id.clone(),
            });
        }
        for proxy in file.trusted_proxies.iter().flatten() {
            network.trusted_proxies.push(
                proxy
                    .parse()
                    .map_err(|e: String| anyhow::anyhow!("trusted_proxies: {e}"))?,
            );
        }
        let mut service_principals = Vec::new();
        for table in file.service_principal.iter().flatten() {
            let secret = std::fs::read_to_string(&table.secret_file).with_context(|| {
                format!(
                    "read the secret of service principal {} from {}",
                    table.service,
                    table.secret_file.display()
                )
            })?;
            service_principals.push(ServicePrincipal {
                service: table.service.clone(),
                access_key_id: table.access_key_id.clone(),
                secret: zeroize::Zeroizing::new(secret.trim().to_owned()),
            });
        }
        let hsms = file
            .hsm
            .unwrap_or_default()
            .into_iter()
            .map(hsm_config)
            .collect::<anyhow::Result<Vec<HsmConfig>>>()?;
        let root_key = match file.root_key {
            None => RootKeyConfig::File,
            Some(table) => root_key_config(table)?,
        };
        Ok(Config {
            hsms,
            root_key,
            hsm_modules: ModuleSet::new(),
            network,
            service_principals,
            listen,
            data_dir: overrides
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            account_id,
            dev: overrides.dev || file.dev.unwrap_or(false),
            dangerous_disable_audit: overrides.dangerous_disable_audit,
            regions,
            seed_file: overrides.seed_file.or(file.seed_file),
            scheduler_interval: Duration::from_secs(
                file.scheduler_interval_seconds.unwrap_or(60).max(1),
            ),
            audit_retention: Duration::from_secs(
                file.audit_retention_days.unwrap_or(90).max(1) * 86_400,
            ),
            audit_dir: overrides.audit_dir.or(file.audit_dir),
        })
    }

    /// The audit trail's directory: the one configured, or `audit` in the data directory.
    ///
    /// Every commit of the trail waits for a flush of its disk, and a flush also waits for
    /// whatever else was written to that disk; a disk of its own keeps those waits short.
    pub fn audit_location(&self) -> PathBuf {
        crate::audit_location(&self.data_dir, self.audit_dir.as_deref())
    }
}

/// Checks one `[[hsm]]` table: exactly one source for the SO PIN, which is never written inline.
fn hsm_config(table: HsmTable) -> anyhow::Result<HsmConfig> {
    let so_pin = match (table.so_pin_file, table.so_pin_env) {
        (Some(file), None) => SecretSource::File(file),
        (None, Some(variable)) => SecretSource::Env(variable),
        _ => anyhow::bail!(
            "[[hsm]] with token_label '{}' needs exactly one of so_pin_file and so_pin_env",
            table.token_label
        ),
    };
    Ok(HsmConfig {
        id: table.id.unwrap_or_else(|| table.token_label.clone()),
        module: table.module,
        token_label: table.token_label,
        availability_zone: table.availability_zone,
        so_pin,
    })
}

/// Checks the `[root_key]` table and its replicas: exactly one source for each user PIN and at most
/// one for each Security Officer PIN, never written inline; every token listed once.
fn root_key_config(table: RootKeyTable) -> anyhow::Result<RootKeyConfig> {
    let key_label = table
        .key_label
        .unwrap_or_else(|| DEFAULT_ROOT_KEY_LABEL.to_owned());
    if key_label.is_empty() {
        anyhow::bail!("[root_key] key_label must not be empty");
    }
    let first = root_key_token(
        "[root_key]",
        table.module,
        table.token_label,
        (table.user_pin_file, table.user_pin_env),
        (table.so_pin_file, table.so_pin_env),
    )?;
    let replicas = table.replica.unwrap_or_default();
    if replicas.is_empty() && first.so_pin.is_none() {
        // The single-token form, as before replicas existed.
        return Ok(RootKeyConfig::Pkcs11(Pkcs11RootKey {
            module: first.module,
            token_label: first.token_label,
            user_pin: first.user_pin,
            key_label,
        }));
    }
    let mut tokens = vec![first];
    for replica in replicas {
        let token = root_key_token(
            "[[root_key.replica]]",
            replica.module,
            replica.token_label,
            (replica.user_pin_file, replica.user_pin_env),
            (replica.so_pin_file, replica.so_pin_env),
        )?;
        if tokens.iter().any(|it| it.token_label == token.token_label) {
            anyhow::bail!(
                "[root_key] lists token_label '{}' twice: each replica is a token of its own, with a label of \
                 its own",
                token.token_label
            );
        }
        tokens.push(token);
    }
    Ok(RootKeyConfig::Pkcs11Replicated(ReplicatedRootKey {
        key_label,
        tokens,
    }))
}

/// One token of the root key from its table (`table` names it in errors).
fn root_key_token(
    table: &str,
    module: PathBuf,
    token_label: String,
    user_pin: (Option<PathBuf>, Option<String>),
    so_pin: (Option<PathBuf>, Option<String>),
) -> anyhow::Result<RootKeyToken> {
    let user_pin = match user_pin {
        (Some(file), None) => SecretSource::File(file),
        (None, Some(variable)) => SecretSource::Env(variable),
        _ => anyhow::bail!(
            "{table} with token_label '{token_label}' needs exactly one of user_pin_file and user_pin_env"
        ),
    };
    let so_pin = match so_pin {
        (None, None) => None,
        (Some(file), None) => Some(SecretSource::File(file)),
        (None, Some(variable)) => Some(SecretSource::Env(variable)),
        (Some(_), Some(_)) => anyhow::bail!(
            "{table} with token_label '{token_label}' takes at most one of so_pin_file and so_pin_env"
        ),
    };
    Ok(RootKeyToken {
        module,
        token_label,
        user_pin,
        so_pin,
    })
}
