//! What the control plane does to the tokens themselves, through the PKCS#11 layer.
//!
//! Every function here blocks on PKCS#11 calls; callers run them with `spawn_blocking`. Each opens a
//! `Cluster` over just the HSMs it needs and drops it at the end, so no session outlives an operation,
//! except [`admit`], which works in a connected key store's cluster.

use std::sync::Arc;

use strongroom_keystore_pkcs11::{
    Cluster, ClusterOptions, ExportedKeys, Hsm, HsmConfig, KeyPairSpec, ModuleSet, Pin,
    SignMechanism, WrappedKey, copy_wrapping_key, export_backing_keys, import_backing_keys,
    wrapping_key_id,
};
use strongroom_storage::clusters::ClusterIdentity;

use crate::backups::Holder;
use crate::certificates::Checked;
use crate::error::Error;
use crate::{csr, ids};

/// The PKCS#11 label of a cluster's identity key pair.
pub(crate) fn identity_label(cluster_id: &str) -> String {
    format!("{cluster_id} identity")
}

/// The PKCS#11 label of a cluster's certificate on its HSMs.
pub(crate) fn certificate_label(cluster_id: &str) -> String {
    format!("{cluster_id} cluster certificate")
}

/// The PKCS#11 label of a cluster's trust anchor on its HSMs.
pub(crate) fn trust_anchor_label(cluster_id: &str) -> String {
    format!("{cluster_id} trust anchor")
}

fn open(configs: &[HsmConfig], modules: &ModuleSet) -> Result<Cluster, Error> {
    Ok(Cluster::open(configs, modules, ClusterOptions::default())?)
}

/// Runs `work` with the crypto user logged in on `configs` under a one-time password, for clusters that
/// have no crypto user yet (see the crate documentation); the password is forgotten afterwards.
fn with_bootstrap_user<T>(
    configs: &[HsmConfig],
    modules: &ModuleSet,
    work: impl FnOnce(&Cluster) -> Result<T, Error>,
) -> Result<T, Error> {
    let cluster = open(configs, modules)?;
    let password = Pin::new(ids::new_bootstrap_password()?);
    cluster.create_crypto_user(&password)?;
    cluster.login_crypto_user(&password)?;
    let res = work(&cluster);
    cluster.logout_crypto_user();
    res
}

/// Generates the cluster key pair inside the first of `configs` and signs the cluster CSR with it.
pub(crate) fn make_identity(
    configs: &[HsmConfig],
    modules: &ModuleSet,
    cluster_id: &str,
) -> Result<ClusterIdentity, Error> {
    let label = identity_label(cluster_id);
    with_bootstrap_user(configs, modules, |cluster| {
        let public_key = cluster.generate_cluster_key_pair(&label, KeyPairSpec::Rsa2048)?;
        let info = csr::request_info(cluster_id, &public_key);
        let signature = cluster.sign(&label, SignMechanism::RsaPkcs1Sha256, &info)?;
        let request = csr::request(&info, &signature);
        Ok(ClusterIdentity {
            key_label: label.clone(),
            public_key,
            csr_pem: csr::pem("CERTIFICATE REQUEST", &request),
        })
    })
}

/// Writes the cluster certificate and the trust anchor onto every HSM of `configs`, which belong to a
/// cluster without crypto users.
pub(crate) fn write_certificates(
    configs: &[HsmConfig],
    modules: &ModuleSet,
    cluster_id: &str,
    certificates: &Checked,
) -> Result<(), Error> {
    with_bootstrap_user(configs, modules, |cluster| {
        cluster.write_certificate(
            &certificate_label(cluster_id),
            &certificates.cluster_certificate,
        )?;
        cluster.write_certificate(&trust_anchor_label(cluster_id), &certificates.trust_anchor)?;
        Ok(())
    })
}

/// Gives every HSM of `configs` the same cluster wrapping key, logging in as each one's Security
/// Officer; this is also the proof that every SO PIN opens its token.
pub(crate) fn establish_wrapping_key(
    configs: &[HsmConfig],
    modules: &ModuleSet,
) -> Result<(), Error> {
    let cluster = open(configs, modules)?;
    cluster.establish_wrapping_key()?;
    Ok(())
}

/// Creates (or resets) the crypto user on every HSM of `configs` and checks the password by logging
/// in once.
pub(crate) fn create_crypto_user(
    configs: &[HsmConfig],
    modules: &ModuleSet,
    password: &Pin,
) -> Result<(), Error> {
    let cluster = open(configs, modules)?;
    cluster.create_crypto_user(password)?;
    cluster.login_crypto_user(password)?;
    cluster.logout_crypto_user();
    Ok(())
}

/// Changes the crypto user's password on every HSM, knowing the old one (`C_SetPIN` as the user,
/// rolled back everywhere if one HSM refuses).
pub(crate) fn change_crypto_user_password(
    configs: &[HsmConfig],
    modules: &ModuleSet,
    old: &Pin,
    new: &Pin,
) -> Result<(), Error> {
    let cluster = open(configs, modules)?;
    cluster.change_crypto_user_password(old, new)?;
    Ok(())
}

/// Brings `newcomers` into the cluster formed by `members`: logs in with the crypto user's password,
/// sets it as each newcomer's user PIN (as its Security Officer), then copies the wrapping key, every
/// key and every certificate to it.
///
/// Returns the ids of the newcomers brought in, and the cluster's keys exported for a backup while the
/// crypto user is logged in (`None` if that failed); a copy that failed for one key is logged and makes
/// the whole call fail, so the HSM is not reported ready without it.
pub(crate) fn synchronize(
    members: &[HsmConfig],
    newcomers: &[HsmConfig],
    modules: &ModuleSet,
    password: &Pin,
) -> Result<(Vec<String>, Option<ExportedKeys>), Error> {
    let cluster = open(members, modules)?;
    cluster.login_crypto_user(password)?;
    let mut joined = Vec::new();
    let mut outcome = Ok(());
    for newcomer in newcomers {
        // The admin (each token's Security Officer) gives the newcomer the crypto user with the
        // cluster's password, whatever user PIN the token was initialized with or kept from an
        // earlier membership, as CloudHSM's new HSMs get their users from the cluster's backup.
        if let Err(error) = open(std::slice::from_ref(newcomer), modules)
            .and_then(|token| Ok(token.create_crypto_user(password)?))
        {
            outcome = Err(error);
            break;
        }
        match cluster.add_hsm(newcomer) {
            Ok(report) if report.failures.is_empty() => joined.push(newcomer.id.clone()),
            Ok(report) => {
                for failure in &report.failures {
                    tracing::error!(hsm = %failure.hsm, label = ?failure.label, error = %failure.error,
                        "copying to a new HSM failed");
                }
                outcome = Err(Error::InvalidRequest(format!(
                    "HSM {} joined, but {} object(s) could not be copied to it; see the log and run the sync again.",
                    newcomer.id,
                    report.failures.len()
                )));
                break;
            }
            Err(error) => {
                outcome = Err(error.into());
                break;
            }
        }
    }
    let exported = match outcome {
        Ok(()) => export_backing_keys(&cluster)
            .inspect_err(|error| tracing::warn!(%error, "keys not exported for the backup"))
            .ok(),
        Err(_) => None,
    };
    cluster.logout_crypto_user();
    outcome.map(|()| (joined, exported))
}

/// Adds `newcomers` to `cluster`, an open PKCS#11 cluster whose crypto user is logged in (a
/// connected key store's), and exports its keys for the backup that follows. Returns the ids of the
/// newcomers that joined; stops at the first that cannot.
pub(crate) fn admit(
    cluster: &Cluster,
    newcomers: &[HsmConfig],
) -> Result<(Vec<String>, Option<ExportedKeys>), Error> {
    let mut joined = Vec::new();
    for newcomer in newcomers {
        // Joined already, by an earlier run that stopped before recording it.
        if cluster.hsm(&newcomer.id).is_some() {
            joined.push(newcomer.id.clone());
            continue;
        }
        let report = cluster.add_hsm(newcomer)?;
        if !report.failures.is_empty() {
            for failure in &report.failures {
                tracing::error!(hsm = %failure.hsm, label = ?failure.label, error = %failure.error,
                    "copying to a new HSM failed");
            }
            // It lacks keys: the store must not send requests to it.
            cluster.remove_hsm(&newcomer.id);
            return Err(Error::InvalidRequest(format!(
                "HSM {} joined, but {} object(s) could not be copied to it; see the log and run the sync again.",
                newcomer.id,
                report.failures.len()
            )));
        }
        joined.push(newcomer.id.clone());
    }
    let exported = export_backing_keys(cluster)
        .inspect_err(|error| tracing::warn!(%error, "keys not exported for the backup"))
        .ok();
    Ok((joined, exported))
}

/// The id of the cluster wrapping key held by the first of `configs` that answers; `None` if none does
/// or none holds one. Needs no login: the key is a public object.
pub(crate) fn first_wrapping_key_id(configs: &[HsmConfig], modules: &ModuleSet) -> Option<Vec<u8>> {
    configs.iter().find_map(|config| {
        let hsm = Hsm::open(config, modules, &ClusterOptions::default()).ok()?;
        wrapping_key_id(&hsm).ok().flatten()
    })
}

/// What a backup gives a new token: the lineage's wrapping key, wrapped keys and certificates.
pub(crate) struct Seed<'a> {
    /// The backup's id, for messages.
    pub(crate) backup_id: &'a str,
    /// The `CKA_ID` of the wrapping key the keys are wrapped under.
    pub(crate) wrapping_key_id: &'a [u8],
    /// The keys.
    pub(crate) keys: &'a [WrappedKey],
    /// The certificates, written under the new cluster's labels.
    pub(crate) certificates: &'a Checked,
    /// The clusters of the lineage, for messages.
    pub(crate) lineage: &'a [String],
}

/// Seeds the token of `target` from a backup, for a cluster none of whose HSMs is active: gives it the
/// lineage's cluster wrapping key by ECDH from the first of `holders` that holds it (as both tokens'
/// Security Officers), then, as a crypto user under a one-time password that is forgotten afterwards,
/// unwraps the backup's keys into it and writes the cluster's certificates. The crypto user's real
/// password is set later by the admin (see the crate documentation). Returns how many keys it added.
pub(crate) fn seed(
    target: &HsmConfig,
    holders: &[Holder],
    modules: &ModuleSet,
    cluster_id: &str,
    seed: &Seed<'_>,
) -> Result<usize, Error> {
    let options = ClusterOptions::default();
    let receiver = Hsm::open(target, modules, &options)?;
    let mut tried = Vec::new();
    let mut copied = wrapping_key_id(&receiver)?.as_deref() == Some(seed.wrapping_key_id);
    for holder in holders {
        if copied {
            break;
        }
        let source: Arc<Hsm> = match &holder.live {
            Some(live) => live.clone(),
            None => match Hsm::open(&holder.config, modules, &options) {
                Ok(hsm) => Arc::new(hsm),
                Err(error) => {
                    tried.push(format!("{} ({error})", holder.config.id));
                    continue;
                }
            },
        };
        match wrapping_key_id(&source) {
            Ok(Some(id)) if id == seed.wrapping_key_id => {}
            Ok(_) => {
                tried.push(format!(
                    "{} (holds another wrapping key or none)",
                    holder.config.id
                ));
                continue;
            }
            Err(error) => {
                tried.push(format!("{} ({error})", holder.config.id));
                continue;
            }
        }
        match copy_wrapping_key(&source, &receiver) {
            Ok(()) => copied = true,
            // A receiver that holds another lineage's key cannot take this one: no other holder helps.
            Err(error @ strongroom_keystore_pkcs11::Error::WrappingKeyMismatch { .. }) => {
                return Err(Error::InvalidRequest(format!(
                    "The token of HSM {} already holds the wrapping key of another cluster ({error}): \
                     re-initialize it before it joins a cluster created from backup {}.",
                    target.id, seed.backup_id
                )));
            }
            Err(error) => tried.push(format!("{} ({error})", holder.config.id)),
        }
    }
    drop(receiver);
    if !copied {
        let tried = match tried.is_empty() {
            true => "none is declared".to_owned(),
            false => format!("tried {}", tried.join(", ")),
        };
        return Err(Error::InvalidRequest(format!(
            "No HSM holding the cluster wrapping key of backup {} is reachable ({tried}). Unlike a CloudHSM \
             backup, a Strongroom backup is bound to the wrapping key of its clusters' lineage ({}), which \
             lives only in their HSMs' tokens: bring one of those HSMs back, then retry CreateHsm.",
            seed.backup_id,
            seed.lineage.join(", ")
        )));
    }
    with_bootstrap_user(std::slice::from_ref(target), modules, |cluster| {
        let Some(hsm) = cluster.hsms().into_iter().next() else {
            return Err(Error::internal("a one-HSM cluster has no HSM"));
        };
        let added = import_backing_keys(&hsm, seed.keys)?;
        cluster.write_certificate(
            &certificate_label(cluster_id),
            &seed.certificates.cluster_certificate,
        )?;
        cluster.write_certificate(
            &trust_anchor_label(cluster_id),
            &seed.certificates.trust_anchor,
        )?;
        Ok(added)
    })
}

/// The id of the cluster wrapping key the token of each of `configs` holds, in order.
pub(crate) fn wrapping_key_ids(
    configs: &[HsmConfig],
    modules: &ModuleSet,
) -> Vec<Result<Option<Vec<u8>>, Error>> {
    configs
        .iter()
        .map(|config| {
            let hsm = Hsm::open(config, modules, &ClusterOptions::default())?;
            Ok(wrapping_key_id(&hsm)?)
        })
        .collect()
}
