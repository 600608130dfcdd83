//! Backups of a cluster's backing keys, and seeding a new token from one.
//!
//! A backup holds every backing key of a cluster exactly as HSMs carry keys between each other: wrapped
//! inside an HSM under the cluster wrapping key (`CKM_AES_KEY_WRAP`), the one form in which a backing
//! key ever leaves a token. Restoring it onto a new token therefore needs that token to hold the same
//! cluster wrapping key first, which it gets by ECDH from an HSM that holds it ([`copy_wrapping_key`],
//! the path [`Cluster::establish_wrapping_key`] and [`Cluster::add_hsm`] take); then the crypto user
//! unwraps the keys into it ([`import_backing_keys`]). A backup is so bound to its wrapping key, which
//! lives only in tokens: with no token holding it left, the backup's keys cannot be recovered.

use cryptoki::error::{Error as Pkcs11Error, RvError};
use cryptoki::object::{Attribute, AttributeType};
use cryptoki::session::UserType;
use zeroize::Zeroizing;

use crate::attributes;
use crate::cluster::Cluster;
use crate::config::Pin;
use crate::error::{self, Error, Role};
use crate::hsm::{Hsm, HsmState};

/// One backing key as a backup holds it.
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// The key's label, the KMS key ARN.
    pub label: String,
    /// The key wrapped under the cluster wrapping key (RFC 3394 AES key wrap), inside an HSM.
    pub wrapped: Vec<u8>,
}

impl std::fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WrappedKey")
            .field("label", &self.label)
            .field("wrapped_len", &self.wrapped.len())
            .finish()
    }
}

/// What one HSM exported for a backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedKeys {
    /// The HSM the keys were exported from.
    pub hsm: String,
    /// The `CKA_ID` of the cluster wrapping key the keys are wrapped under, which names the lineage
    /// of clusters able to unwrap them.
    pub wrapping_key_id: Vec<u8>,
    /// Every backing key of that HSM, by label.
    pub keys: Vec<WrappedKey>,
}

/// How a token protects one backing key, as PKCS#11 reports it: for checking that a restored token holds
/// its keys as the original did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackingKeyProtection {
    /// The key's label.
    pub label: String,
    /// `CKA_SENSITIVE`: the value can never be read.
    pub sensitive: bool,
    /// `CKA_EXTRACTABLE`: the key can be wrapped at all.
    pub extractable: bool,
    /// `CKA_WRAP_WITH_TRUSTED`: only under a key the Security Officer marked trusted.
    pub wrap_with_trusted: bool,
    /// Whether the token handed out `CKA_VALUE`; never, for a sensitive key.
    pub value_readable: bool,
}

/// Exports every backing key of one active HSM of `cluster`, in which the crypto user is logged in,
/// each wrapped inside that HSM under the cluster wrapping key; HSMs that fail are skipped for the
/// next one.
pub fn export_backing_keys(cluster: &Cluster) -> Result<ExportedKeys, Error> {
    let mut last = None;
    for hsm in cluster.hsms() {
        if hsm.state() != HsmState::Active {
            continue;
        }
        match export_from(&hsm) {
            Ok(exported) => return Ok(exported),
            Err(err) if err.is_worth_retrying_elsewhere() => {
                tracing::debug!(hsm = %hsm.id(), error = %err, "backup export retried on another HSM");
                last = Some(err);
            }
            Err(err) => return Err(err),
        }
    }
    Err(last.unwrap_or(Error::NoActiveHsm))
}

fn export_from(hsm: &Hsm) -> Result<ExportedKeys, Error> {
    let Some(wrapping_key_id) = hsm.wrapping_key_id()? else {
        return Err(Error::WrappingKeyMissing {
            hsm: hsm.id().to_owned(),
        });
    };
    let mut labels = hsm.backing_key_labels()?;
    labels.sort();
    let mut keys = Vec::new();
    for label in labels {
        let wrapped = Zeroizing::new(hsm.export_backing_key(&label)?);
        keys.push(WrappedKey {
            label,
            wrapped: wrapped.to_vec(),
        });
    }
    Ok(ExportedKeys {
        hsm: hsm.id().to_owned(),
        wrapping_key_id,
        keys,
    })
}

/// The `CKA_ID` of the cluster wrapping key `hsm`'s token holds, if any; the key is a public object,
/// so this needs no login.
pub fn wrapping_key_id(hsm: &Hsm) -> Result<Option<Vec<u8>>, Error> {
    hsm.wrapping_key_id()
}

/// Gives `to` the cluster wrapping key of `from` through an ECDH-agreed transport key, both HSMs acting
/// as their Security Officer (so each one's crypto-user sessions are closed for the while); the key is
/// never in host memory. Refuses a `to` that already holds another cluster's wrapping key.
pub fn copy_wrapping_key(from: &Hsm, to: &Hsm) -> Result<(), Error> {
    let Some(wanted) = from.wrapping_key_id()? else {
        return Err(Error::WrappingKeyMissing {
            hsm: from.id().to_owned(),
        });
    };
    match to.wrapping_key_id()? {
        None => from.send_wrapping_key(to),
        Some(id) if id == wanted => Ok(()),
        Some(_) => Err(Error::WrappingKeyMismatch {
            first: from.id().to_owned(),
            second: to.id().to_owned(),
        }),
    }
}

/// Unwraps `keys` into `hsm`, whose crypto user is logged in and which holds the cluster wrapping key
/// they are wrapped under, each as a backing key like the original (sensitive, extractable only under
/// a trusted key). Keys the token already holds are left as they are. Returns how many were added.
pub fn import_backing_keys(hsm: &Hsm, keys: &[WrappedKey]) -> Result<usize, Error> {
    let mut added = 0;
    for key in keys {
        match hsm.import_backing_key(&key.label, &key.wrapped) {
            Ok(_) => added += 1,
            Err(Error::LabelInUse { .. }) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(added)
}

/// How `hsm`'s token protects each of its backing keys, read in a session of the crypto user with
/// `pin` (or of whoever this process already logged in as that user).
pub fn backing_key_protection(hsm: &Hsm, pin: &Pin) -> Result<Vec<BackingKeyProtection>, Error> {
    let module = hsm.module();
    let slot = module.find_token(hsm.token_label())?;
    let classify = |err| error::classify(hsm.id(), err);
    let session = module.pkcs11().open_ro_session(slot).map_err(classify)?;
    match session.login(UserType::User, Some(&pin.auth())) {
        Ok(()) | Err(Pkcs11Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
        Err(err) => return Err(error::login_error(hsm.id(), Role::CryptoUser, err)),
    }
    let objects = session
        .find_objects(&attributes::all_backing_keys())
        .map_err(classify)?;
    let mut found = Vec::new();
    for object in objects {
        let values = session
            .get_attributes(
                object,
                &[
                    AttributeType::Label,
                    AttributeType::Sensitive,
                    AttributeType::Extractable,
                    AttributeType::WrapWithTrusted,
                    AttributeType::Value,
                ],
            )
            .map_err(classify)?;
        let mut protection = BackingKeyProtection {
            label: String::new(),
            sensitive: false,
            extractable: false,
            wrap_with_trusted: false,
            value_readable: false,
        };
        for value in values {
            match value {
                Attribute::Label(label) => {
                    protection.label = String::from_utf8_lossy(&label).into_owned();
                }
                Attribute::Sensitive(flag) => protection.sensitive = flag,
                Attribute::Extractable(flag) => protection.extractable = flag,
                Attribute::WrapWithTrusted(flag) => protection.wrap_with_trusted = flag,
                Attribute::Value(bytes) => {
                    // Wiped at once: only whether the token gave it out matters.
                    let _ = Zeroizing::new(bytes);
                    protection.value_readable = true;
                }
                _ => {}
            }
        }
        found.push(protection);
    }
    found.sort_by(|a, b| a.label.cmp(&b.label));
    Ok(found)
}
