//! Configuration values: where each HSM is, where its secrets come from, how the cluster behaves.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cryptoki::types::AuthPin;
use zeroize::Zeroizing;

use crate::error::Error;
use crate::hsm::HsmState;

/// One HSM of a cluster: a token in a PKCS#11 module, named by its label.
///
/// Tokens are found by label rather than slot number because slot numbers change when tokens are
/// added or removed.
#[derive(Debug, Clone)]
pub struct HsmConfig {
    /// Stable name of the device, used in errors, logs and status (for example `hsm-a`).
    pub id: String,
    /// Path of the PKCS#11 shared library; HSMs naming the same path share one loaded module.
    pub module: PathBuf,
    /// Label of the token (`CKA_LABEL` of the token, at most 32 bytes).
    pub token_label: String,
    /// Availability zone of the device, because KMS requires keys to live in two zones.
    pub availability_zone: String,
    /// Where the Security Officer PIN is read from; it is never written in the configuration itself.
    pub so_pin: SecretSource,
}

/// Where a secret is read from, so that configuration files never contain secrets inline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// A file holding the secret; one trailing newline is ignored.
    File(PathBuf),
    /// An environment variable holding the secret.
    Env(String),
}

impl SecretSource {
    /// Reads the secret now, so that it spends as little time in memory as possible.
    pub fn load(&self) -> Result<Pin, Error> {
        let mut secret = match self {
            SecretSource::File(path) => match read_secret_file(path) {
                Ok(text) => text,
                Err(source) => {
                    return Err(Error::Secret {
                        from: path.display().to_string(),
                        source,
                    });
                }
            },
            SecretSource::Env(name) => match std::env::var(name) {
                Ok(text) => Zeroizing::new(text),
                Err(err) => {
                    return Err(Error::Secret {
                        from: format!("environment variable {name}"),
                        source: std::io::Error::new(std::io::ErrorKind::NotFound, err),
                    });
                }
            },
        };
        // Truncating keeps the buffer, so no unzeroized copy is left behind.
        while secret.ends_with('\n') || secret.ends_with('\r') {
            secret.pop();
        }
        if secret.is_empty() {
            return Err(Error::Secret {
                from: self.describe(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, "the secret is empty"),
            });
        }
        Ok(Pin(secret))
    }

    fn describe(&self) -> String {
        match self {
            SecretSource::File(path) => path.display().to_string(),
            SecretSource::Env(name) => format!("environment variable {name}"),
        }
    }
}

/// Reads a small file into a buffer sized up front, so that no reallocation leaves a copy of the
/// secret behind.
fn read_secret_file(path: &Path) -> std::io::Result<Zeroizing<String>> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let capacity = usize::try_from(len).unwrap_or(usize::MAX).saturating_add(1);
    let mut bytes = Zeroizing::new(Vec::with_capacity(capacity.min(64 * 1024)));
    file.read_to_end(&mut bytes)?;
    match String::from_utf8(std::mem::take(&mut *bytes)) {
        Ok(text) => Ok(Zeroizing::new(text)),
        Err(err) => {
            // Wipe the rejected bytes too.
            drop(Zeroizing::new(err.into_bytes()));
            Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the secret is not UTF-8",
            ))
        }
    }
}

/// A PIN or password, wiped from memory when dropped and never printed.
#[derive(Clone)]
pub struct Pin(Zeroizing<String>);

impl Pin {
    /// Wraps a password the caller already holds (for example `KeyStorePassword` from a request).
    pub fn new(secret: String) -> Pin {
        Pin(Zeroizing::new(secret))
    }

    /// Exposes the secret, for callers that must hand it on (for example to store it encrypted).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The secret in the form `cryptoki` takes, itself zeroized on drop.
    pub(crate) fn auth(&self) -> AuthPin {
        // Copying into a buffer of exactly the right size avoids a reallocation that would leave
        // an unzeroized copy behind when the string becomes a boxed str.
        let mut copy = String::with_capacity(self.0.len());
        copy.push_str(&self.0);
        AuthPin::from(copy)
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin(..)")
    }
}

/// Told when an HSM leaves service or comes back, for example to record it in an audit trail.
///
/// Called on the thread that saw the change, after the change; implementations must not block.
pub trait HsmEvents: Send + Sync + 'static {
    /// HSM `hsm` (its configured id) is now in `state`; `error` says what degraded it.
    fn hsm_state_changed(&self, hsm: &str, state: HsmState, error: Option<&str>);
}

/// How a cluster behaves; the defaults suit a KMS custom key store.
#[derive(Clone)]
pub struct ClusterOptions {
    /// Logged-in sessions kept per HSM; operations beyond this wait for a free session.
    pub sessions_per_hsm: usize,
    /// How long an operation waits for a free session before failing with `SessionsExhausted`.
    pub session_wait: Duration,
    /// On how many HSMs a new key must exist before `generate_key` succeeds (CloudHSM's "key
    /// availability quorum"); a cluster with fewer active HSMs cannot create keys.
    pub key_availability_quorum: usize,
    /// Minimum time between two probes of a degraded HSM made on behalf of requests.
    pub probe_interval: Duration,
    /// Where HSM state changes are reported, if anywhere.
    pub events: Option<Arc<dyn HsmEvents>>,
}

impl Default for ClusterOptions {
    fn default() -> ClusterOptions {
        ClusterOptions {
            sessions_per_hsm: 4,
            session_wait: Duration::from_secs(5),
            key_availability_quorum: 2,
            probe_interval: Duration::from_secs(5),
            events: None,
        }
    }
}

impl fmt::Debug for ClusterOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterOptions")
            .field("sessions_per_hsm", &self.sessions_per_hsm)
            .field("session_wait", &self.session_wait)
            .field("key_availability_quorum", &self.key_availability_quorum)
            .field("probe_interval", &self.probe_interval)
            .field("events", &self.events.is_some())
            .finish()
    }
}
