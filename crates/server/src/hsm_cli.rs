//! `strongroom hsm`: the counterpart of the CloudHSM CLI's `cluster activate` and `user` commands.
//!
//! The commands send Strongroom's `StrongroomHsmAdmin.*` operations to the running server, signed
//! with SigV4 like any request, because only the server process may work on the tokens (see the
//! `strongroom_cloudhsm` documentation). Passwords are read from files, never from the command line.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, bail};
use clap::Subcommand;
use http::header::{CONTENT_TYPE, HOST};
use http::{HeaderMap, HeaderValue, Method, Uri};
use serde_json::{Value, json};
use strongroom_keystore_pkcs11::SecretSource;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
    /// to them; needs the crypto user's password.
    Sync {
        #[command(flatten)]
        target: Target,
        /// A file holding the crypto user's password.
        #[arg(long, value_name = "FILE")]
        password_file: PathBuf,
    },
}

/// Which server and cluster, and whose credentials.
#[derive(Debug, clap::Args)]
pub(crate) struct Target {
    /// The server's URL (http only: run the command on the server's host or over a trusted network).
    #[arg(long, default_value = "http://127.0.0.1:9444")]
    endpoint: String,
    /// The Region of the cluster.
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Access key id of the cluster's account.
    #[arg(long, env = "AWS_ACCESS_KEY_ID", default_value = "test")]
    access_key_id: String,
    /// Secret access key.
    #[arg(
        long,
        env = "AWS_SECRET_ACCESS_KEY",
        default_value = "test",
        hide_env_values = true
    )]
    secret_access_key: String,
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
            let body = json!({
                "ClusterId": target.cluster,
                "Password": secret(&password_file)?.as_str(),
            });
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

/// Sends one signed administration request over a fresh HTTP/1.1 connection and returns the JSON
/// answer, or the server's error as `<code>: <message>`.
async fn call(target: &Target, operation: &str, body: &Value) -> anyhow::Result<Value> {
    let endpoint: Uri = target
        .endpoint
        .parse()
        .with_context(|| format!("'{}' is not a URL", target.endpoint))?;
    if endpoint.scheme_str() != Some("http") {
        bail!(
            "only http:// endpoints are supported, not '{}'",
            target.endpoint
        );
    }
    let Some(authority) = endpoint.authority().cloned() else {
        bail!("'{}' names no host", target.endpoint);
    };
    let payload = Zeroizing::new(serde_json::to_vec(body)?);
    let mut headers = HeaderMap::new();
    headers.insert(HOST, HeaderValue::from_str(authority.as_str())?);
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    headers.insert(
        "x-amz-target",
        HeaderValue::from_str(&format!("{ADMIN_TARGET_PREFIX}{operation}"))?,
    );
    strongroom_sigv4::sign(
        &Method::POST,
        &Uri::from_static("/"),
        &mut headers,
        &payload,
        &target.access_key_id,
        &target.secret_access_key,
        &target.region,
        "cloudhsm",
        SystemTime::now(),
    );
    let mut request = Zeroizing::new(Vec::new());
    request.extend_from_slice(b"POST / HTTP/1.1\r\n");
    for (name, value) in &headers {
        request.extend_from_slice(name.as_str().as_bytes());
        request.extend_from_slice(b": ");
        request.extend_from_slice(value.as_bytes());
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(
        format!(
            "content-length: {}\r\nconnection: close\r\n\r\n",
            payload.len()
        )
        .as_bytes(),
    );
    request.extend_from_slice(&payload);

    let address = match authority.port_u16() {
        Some(_) => authority.as_str().to_owned(),
        None => format!("{}:80", authority.host()),
    };
    let mut stream = tokio::net::TcpStream::connect(&address)
        .await
        .with_context(|| {
            format!("connect to the server at {address} (is `strongroom serve` running there?)")
        })?;
    stream.write_all(&request).await?;
    let mut response = Vec::new();
    stream
        .take(MAX_RESPONSE_BYTES)
        .read_to_end(&mut response)
        .await
        .context("read the server's answer")?;
    let (status, answer) = parse_response(&response)?;
    if status == 200 {
        return Ok(answer);
    }
    bail!(
        "{}: {}",
        answer["__type"].as_str().unwrap_or("error"),
        answer["message"]
            .as_str()
            .unwrap_or("the server refused the request")
    )
}

/// The status and JSON body of an HTTP/1.1 response with a `content-length` (or ending at the close).
fn parse_response(response: &[u8]) -> anyhow::Result<(u16, Value)> {
    let Some(split) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
        bail!("the server's answer is not HTTP");
    };
    let head = String::from_utf8_lossy(&response[..split]);
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .context("the server's answer has no status")?;
    let mut body = &response[split + 4..];
    for line in lines {
        if let Some((name, value)) = line.split_once(':')
            && name.trim().eq_ignore_ascii_case("content-length")
            && let Ok(length) = value.trim().parse::<usize>()
        {
            body = &body[..length.min(body.len())];
        }
    }
    let answer = serde_json::from_slice(body).with_context(|| {
        format!(
            "the server answered {status} without JSON: {}",
            String::from_utf8_lossy(body)
        )
    })?;
    Ok((status, answer))
}
