//! `strongroom hsm`: the counterpart of the CloudHSM CLI's `cluster activate` and `user` commands.
//!
//! The commands send Strongroom's `StrongroomHsmAdmin.*` operations to the running server, signed
//! with SigV4 like any request, because only the server process may work on the tokens (see the
//! `strongroom_cloudhsm` documentation). Passwords are read from files, never from the command line.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use serde_json::{Value, json};
use strongroom_keystore_pkcs11::SecretSource;
use zeroize::Zeroizing;

/// The target prefix of the administration operations (see `strongroom_protocol`'s `cloudhsm`).
const ADMIN_TARGET_PREFIX: &str = "StrongroomHsmAdmin.";
/// The largest response the commands expect; the answers are a few hundred bytes.
const MAX_RESPONSE_BYTES: u64 = 1024 * 1024;

/// The `strongroom hsm` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum HsmCommand {
    /// Activate an initialized cluster. The admin (crypto officer) of a cluster is each token's PKCS#11
    /// Security Officer, so the admin password must be the SO PIN of every HSM in the cluster.
    Activate {
        #[command(flatten)]
        target: Target,
        /// A file holding the admin password.
        #[arg(long, value_name = "FILE")]
        admin_password_file: PathBuf,
    },
    /// Create the cluster's crypto user (normally kmsuser) on every HSM, with the same password. Logs in
    /// as the admin to do it.
    CreateUser {
        #[command(flatten)]
        target: Target,
        /// The user name.
        #[arg(long, default_value = "kmsuser")]
        username: String,
        /// A file holding the new user's password (7 to 32 characters).
        #[arg(long, value_name = "FILE")]
        password_file: PathBuf,
        /// A file holding the admin password.
        #[arg(long, value_name = "FILE")]
        admin_password_file: PathBuf,
    },
    /// Change the crypto user's password on every HSM: as the user with its current password, or as the
    /// admin with the admin password.
    ChangePassword {
        #[command(flatten)]
        target: Target,
        /// The user name.
        #[arg(long, default_value = "kmsuser")]
        username: String,
        /// A file holding the new password.
        #[arg(long, value_name = "FILE")]
        password_file: PathBuf,
        /// A file holding the current password.
        #[arg(long, value_name = "FILE", conflicts_with = "admin_password_file")]
        old_password_file: Option<PathBuf>,
        /// A file holding the admin password, to reset the password without the current one.
        #[arg(
            long,
            value_name = "FILE",
            required_unless_present = "old_password_file"
        )]
        admin_password_file: Option<PathBuf>,
    },
    /// List the users of the cluster's HSMs.
    ListUsers {
        #[command(flatten)]
        target: Target,
    },
    /// Bring HSMs created after the crypto user into the cluster, copying users, keys and certificates
    /// to them. Without --password-file, a custom key store connected to the cluster does it (its
    /// sessions are logged in as the crypto user); with it, the crypto user's password does.
    Sync {
        #[command(flatten)]
        target: Target,
        /// A file holding the crypto user's password; not needed while a custom key store is
        /// connected to the cluster.
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
    },
}

/// Which server and cluster, and whose credentials.
#[derive(Debug, clap::Args)]
pub(crate) struct Target {
    #[command(flatten)]
    server: crate::admin_call::Server,
    /// The cluster (cluster-...).
    #[arg(long, value_name = "ID")]
    cluster: String,
}

/// Runs one command and prints what it did.
pub(crate) async fn run(command: HsmCommand) -> anyhow::Result<()> {
    let report = match command {
        HsmCommand::Activate {
            target,
            admin_password_file,
        } => {
            let body = json!({
                "ClusterId": target.cluster,
                "AdminPassword": secret(&admin_password_file)?.as_str(),
            });
            let answer = call(&target, "ActivateCluster", &body).await?;
            format!(
                "cluster {} is {}\n",
                target.cluster,
                answer["State"].as_str().unwrap_or("ACTIVE")
            )
        }
        HsmCommand::CreateUser {
            target,
            username,
            password_file,
            admin_password_file,
        } => {
            let body = json!({
                "ClusterId": target.cluster,
                "Username": username,
                "Password": secret(&password_file)?.as_str(),
                "AdminPassword": secret(&admin_password_file)?.as_str(),
            });
            call(&target, "CreateCryptoUser", &body).await?;
            format!(
                "created crypto user {username} on cluster {}\n",
                target.cluster
            )
        }
        HsmCommand::ChangePassword {
            target,
            username,
            password_file,
            old_password_file,
            admin_password_file,
        } => {
            let mut body = json!({
                "ClusterId": target.cluster,
                "Username": username,
                "Password": secret(&password_file)?.as_str(),
            });
            if let Some(path) = &old_password_file {
                body["OldPassword"] = json!(secret(path)?.as_str());
            }
            if let Some(path) = &admin_password_file {
                body["AdminPassword"] = json!(secret(path)?.as_str());
            }
            call(&target, "ChangeCryptoUserPassword", &body).await?;
            format!(
                "changed the password of {username} on cluster {}\n",
                target.cluster
            )
        }
        HsmCommand::ListUsers { target } => {
            let answer = call(
                &target,
                "ListUsers",
                &json!({ "ClusterId": target.cluster }),
            )
            .await?;
            let mut table = String::from("USERNAME\tROLE\n");
            for user in answer["Users"].as_array().into_iter().flatten() {
                table.push_str(&format!(
                    "{}\t{}\n",
                    user["Username"].as_str().unwrap_or_default(),
                    user["Role"].as_str().unwrap_or_default()
                ));
            }
            table
        }
        HsmCommand::Sync {
            target,
            password_file,
        } => {
            let body = match &password_file {
                Some(file) => json!({
                    "ClusterId": target.cluster,
                    "Password": secret(file)?.as_str(),
                }),
                None => json!({ "ClusterId": target.cluster }),
            };
            let answer = call(&target, "SynchronizeHsms", &body).await?;
            let joined: Vec<&str> = answer["HsmIds"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            match joined.is_empty() {
                true => format!("every HSM of cluster {} is in sync\n", target.cluster),
                false => format!("brought in {}\n", joined.join(", ")),
            }
        }
    };
    let mut out = std::io::stdout().lock();
    std::io::Write::write_all(&mut out, report.as_bytes())?;
    Ok(())
}

/// Reads a password file (one trailing newline is ignored).
fn secret(path: &Path) -> anyhow::Result<Zeroizing<String>> {
    let pin = SecretSource::File(path.to_path_buf())
        .load()
        .with_context(|| format!("read the password in {}", path.display()))?;
    Ok(Zeroizing::new(pin.expose().to_owned()))
}

/// Sends one signed request to the server (see [`crate::admin_call`]).
async fn call(target: &Target, operation: &str, body: &Value) -> anyhow::Result<Value> {
    crate::admin_call::call(
        &target.server,
        "cloudhsm",
        &format!("{ADMIN_TARGET_PREFIX}{operation}"),
        body,
        MAX_RESPONSE_BYTES,
    )
    .await
}
