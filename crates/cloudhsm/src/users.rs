//! Activation and HSM users, the work of `strongroom hsm` (CloudHSM's `cluster activate` and `user`
//! commands), and bringing late HSMs in with the crypto user's password.
//!
//! As with CloudHSM, these are authorized by HSM credentials rather than by IAM alone: managing users
//! needs the admin password (every HSM's Security Officer PIN), and bringing HSMs in needs the crypto
//! user's password.

use strongroom_keystore_pkcs11::{ExportedKeys, HsmConfig, Pin};
use strongroom_storage::clusters::{ClusterRecord, ClusterState, HsmRecord, HsmState};
use strongroom_types::Namespace;

use crate::error::Error;
use crate::{ControlPlane, tokens};

/// CloudHSM's limits on crypto user names and passwords.
const MAX_USERNAME_LEN: usize = 31;
const PASSWORD_LEN: std::ops::RangeInclusive<usize> = 7..=32;

/// What proves the right to change a crypto user's password.
#[derive(Debug, Clone, Copy)]
pub enum PasswordAuthority<'a> {
    /// The user's current password: the user changes it.
    CurrentPassword(&'a Pin),
    /// The admin password: the admin resets it.
    AdminPassword(&'a Pin),
}

/// A user of a cluster's HSMs, as `strongroom hsm list-users` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HsmUser {
    /// The user name; the admin is always `admin`.
    pub username: String,
    /// `unactivated-admin`, `admin` or `crypto-user`, CloudHSM CLI's role names.
    pub role: &'static str,
}

impl ControlPlane {
    /// Activates an initialized cluster: checks that `admin_password` is every HSM's Security Officer
    /// PIN, proves it by establishing the cluster wrapping key as each Security Officer, and makes the
    /// cluster `ACTIVE`.
    pub async fn activate(
        &self,
        namespace: &Namespace,
        cluster_id: &str,
        admin_password: &Pin,
    ) -> Result<ClusterRecord, Error> {
        let _admin = self.admin.lock().await;
        let mut cluster = self.load(namespace, cluster_id).await?;
        match cluster.state {
            ClusterState::Initialized => {}
            ClusterState::Active => {
                return Err(Error::InvalidRequest(format!(
                    "Cluster {cluster_id} is already active."
                )));
            }
            state => {
                return Err(Error::InvalidRequest(format!(
                    "Cluster {cluster_id} is {state}: initialize it with InitializeCluster before activating it."
                )));
            }
        }
        let hsms = self.hsms_of(cluster_id).await?;
        if hsms.is_empty() {
            return Err(Error::InvalidRequest(format!(
                "Cluster {cluster_id} has no HSM: create one with CreateHsm."
            )));
        }
        let configs = self.configs(&hsms)?;
        check_admin_password(&configs, admin_password)?;
        let modules = self.modules.clone();
        tokio::task::spawn_blocking(move || tokens::establish_wrapping_key(&configs, &modules))
            .await??;
        cluster.state = ClusterState::Active;
        cluster.state_message = None;
        self.store.put_cluster(&cluster).await?;
        self.record_backup(&cluster).await?;
        Ok(cluster)
    }

    /// Creates the cluster's crypto user on every HSM with `password`.
    ///
    /// A PKCS#11 token has one normal user, so a cluster has at most one crypto user.
    pub async fn create_crypto_user(
        &self,
        namespace: &Namespace,
        cluster_id: &str,
        admin_password: &Pin,
        username: &str,
        password: &Pin,
    ) -> Result<(), Error> {
        check_username(username)?;
        check_password(password)?;
        let _admin = self.admin.lock().await;
        let mut cluster = self.load(namespace, cluster_id).await?;
        check_active(&cluster)?;
        match cluster.crypto_users.first() {
            None => {}
            Some(existing) if existing == username => {
                return Err(Error::InvalidRequest(format!(
                    "Crypto user {username} already exists on cluster {cluster_id}: change its password with \
                     `strongroom hsm change-password`."
                )));
            }
            Some(existing) => {
                return Err(Error::InvalidRequest(format!(
                    "Cluster {cluster_id} already has crypto user {existing}: its HSMs are PKCS#11 tokens, which have \
                     one normal user each, so a cluster has one crypto user."
                )));
            }
        }
        let hsms = self.hsms_of(cluster_id).await?;
        let configs = self.configs(&hsms)?;
        if configs.is_empty() {
            return Err(Error::InvalidRequest(format!(
                "Cluster {cluster_id} has no HSM to create the user on."
            )));
        }
        check_admin_password(&configs, admin_password)?;
        let modules = self.modules.clone();
        let secret = password.clone();
        tokio::task::spawn_blocking(move || {
            tokens::create_crypto_user(&configs, &modules, &secret)
        })
        .await??;
        cluster.crypto_users = vec![username.to_owned()];
        self.store.put_cluster(&cluster).await?;
        Ok(())
    }

    /// Changes the crypto user's password on every active HSM: as the user when `authority` is its
    /// current password (`C_SetPIN`, rolled back if an HSM refuses), or as the admin when it is the
    /// admin password (`C_InitPIN` as each Security Officer), as CloudHSM's admin can.
    pub async fn change_crypto_user_password(
        &self,
        namespace: &Namespace,
        cluster_id: &str,
        username: &str,
        authority: PasswordAuthority<'_>,
        new: &Pin,
    ) -> Result<(), Error> {
        check_password(new)?;
        let _admin = self.admin.lock().await;
        let cluster = self.load(namespace, cluster_id).await?;
        check_active(&cluster)?;
        if !cluster.crypto_users.iter().any(|user| user == username) {
            return Err(Error::ResourceNotFound(format!(
                "Cluster {cluster_id} has no crypto user {username}."
            )));
        }
        let hsms = self.hsms_of(cluster_id).await?;
        let (active, pending): (Vec<_>, Vec<_>) = hsms
            .into_iter()
            .filter(|hsm| matches!(hsm.state, HsmState::Active | HsmState::CreateInProgress))
            .partition(|hsm| hsm.state == HsmState::Active);
        if active.is_empty() {
            return self
                .bring_in_seeded(&cluster, username, authority, new, pending)
                .await;
        }
        let configs = self.configs(&active)?;
        let old = match authority {
            PasswordAuthority::CurrentPassword(old) => Some(old.clone()),
            PasswordAuthority::AdminPassword(admin) => {
                check_admin_password(&configs, admin)?;
                None
            }
        };
        let modules = self.modules.clone();
        let new = new.clone();
        tokio::task::spawn_blocking(move || match old {
            Some(old) => tokens::change_crypto_user_password(&configs, &modules, &old, &new),
            None => tokens::create_crypto_user(&configs, &modules, &new),
        })
        .await??;
        Ok(())
    }

    /// The admin sets the crypto user's password on HSMs seeded from a backup, in a cluster none of
    /// whose HSMs is active (one created from a backup, or one that lost all its HSMs), which brings
    /// them in: the backup gave them the cluster's keys and certificates, and its users without their
    /// passwords, which never leave the HSMs.
    async fn bring_in_seeded(
        &self,
        cluster: &ClusterRecord,
        username: &str,
        authority: PasswordAuthority<'_>,
        new: &Pin,
        pending: Vec<HsmRecord>,
    ) -> Result<(), Error> {
        let cluster_id = &cluster.cluster_id;
        let PasswordAuthority::AdminPassword(admin) = authority else {
            return Err(Error::InvalidRequest(format!(
                "Cluster {cluster_id} has no active HSM to change {username}'s password on. The HSMs it has were \
                 seeded from a backup: the admin sets the password on them (give --admin-password-file)."
            )));
        };
        let configs = self.configs(&pending)?;
        let modules = self.modules.clone();
        let probe = configs.clone();
        let held =
            tokio::task::spawn_blocking(move || tokens::wrapping_key_ids(&probe, &modules)).await?;
        // Only HSMs that received the lineage's wrapping key (that is, a backup's keys) can serve.
        let mut seeded = Vec::new();
        let mut unseeded = Vec::new();
        for ((hsm, config), id) in pending.into_iter().zip(configs).zip(held) {
            match id {
                Ok(Some(_)) => seeded.push((hsm, config)),
                Ok(None) => unseeded.push(hsm.hsm_id),
                Err(error) => return Err(error),
            }
        }
        if seeded.is_empty() {
            return Err(Error::InvalidRequest(format!(
                "Cluster {cluster_id} has no active HSM, and none of its HSMs was seeded from a backup: create \
                 one with CreateHsm, which seeds it from the cluster's latest backup that holds its keys."
            )));
        }
        if !unseeded.is_empty() {
            tracing::warn!(cluster = %cluster_id, hsms = ?unseeded,
                "HSMs without the cluster's wrapping key stay waiting for `strongroom hsm sync`");
        }
        let configs: Vec<HsmConfig> = seeded.iter().map(|(_, config)| config.clone()).collect();
        check_admin_password(&configs, admin)?;
        let modules = self.modules.clone();
        let secret = new.clone();
        tokio::task::spawn_blocking(move || {
            tokens::create_crypto_user(&configs, &modules, &secret)
        })
        .await??;
        for (mut hsm, _) in seeded {
            hsm.state = HsmState::Active;
            hsm.state_message = None;
            self.store.put_hsm(&hsm).await?;
        }
        Ok(())
    }

    /// The users of a cluster's HSMs: the admin, then the crypto user if there is one.
    pub async fn users(
        &self,
        namespace: &Namespace,
        cluster_id: &str,
    ) -> Result<Vec<HsmUser>, Error> {
        let cluster = self.load(namespace, cluster_id).await?;
        let admin_role = match cluster.state {
            ClusterState::Active | ClusterState::Degraded => "admin",
            _ => "unactivated-admin",
        };
        let mut users = vec![HsmUser {
            username: "admin".to_owned(),
            role: admin_role,
        }];
        users.extend(cluster.crypto_users.iter().map(|name| HsmUser {
            username: name.clone(),
            role: "crypto-user",
        }));
        Ok(users)
    }

    /// Brings the cluster's `CREATE_IN_PROGRESS` HSMs in: logs in as the crypto user with `password`
    /// on the active HSMs and copies the user, the wrapping key, keys and certificates to each new one,
    /// which then becomes `ACTIVE`. Returns the ids of the HSMs brought in.
    pub async fn synchronize_hsms(
        &self,
        namespace: &Namespace,
        cluster_id: &str,
        password: &Pin,
    ) -> Result<Vec<String>, Error> {
        let _admin = self.admin.lock().await;
        let cluster = self.load(namespace, cluster_id).await?;
        check_active(&cluster)?;
        let hsms = self.hsms_of(cluster_id).await?;
        let (members, pending): (Vec<_>, Vec<_>) = hsms
            .into_iter()
            .partition(|hsm| hsm.state == HsmState::Active);
        if pending.is_empty() {
            return Ok(Vec::new());
        }
        if members.is_empty() {
            return Err(Error::InvalidRequest(format!(
                "Cluster {cluster_id} has no active HSM to copy users and keys from. HSMs seeded from a backup \
                 are brought in by the admin setting the crypto user's password: `strongroom hsm change-password \
                 --cluster {cluster_id} --username NAME --admin-password-file FILE --password-file FILE`."
            )));
        }
        let member_configs = self.configs(&members)?;
        let pending_configs = self.configs(&pending)?;
        let modules = self.modules.clone();
        let secret = password.clone();
        let (joined, exported) = tokio::task::spawn_blocking(move || {
            tokens::synchronize(&member_configs, &pending_configs, &modules, &secret)
        })
        .await??;
        self.record_joined(&cluster, pending, &joined, exported)
            .await
    }

    /// Records the `pending` HSMs whose declared ids are in `joined` as `ACTIVE` and returns their
    /// ids. New HSMs joined, and the crypto user was logged in to give them the keys: a backup
    /// follows, as CloudHSM takes one when HSMs are added.
    async fn record_joined(
        &self,
        cluster: &ClusterRecord,
        pending: Vec<HsmRecord>,
        joined: &[String],
        exported: Option<ExportedKeys>,
    ) -> Result<Vec<String>, Error> {
        let mut brought_in = Vec::new();
        for mut hsm in pending {
            if joined.contains(&hsm.declared_hsm) {
                hsm.state = HsmState::Active;
                hsm.state_message = None;
                self.store.put_hsm(&hsm).await?;
                brought_in.push(hsm.hsm_id);
            }
        }
        if !brought_in.is_empty() {
            self.take_backup(cluster, exported).await?;
        }
        Ok(brought_in)
    }

    /// Brings the cluster's waiting HSMs in through the PKCS#11 cluster of a key store connected to
    /// it, which is logged in as the crypto user: no password is needed, and the store keeps serving
    /// requests throughout and uses the new HSMs as soon as they have joined.
    ///
    /// `None` when no key store is connected to the cluster; then [`ControlPlane::synchronize_hsms`]
    /// brings them in with the crypto user's password. Returns the ids of the HSMs brought in.
    pub async fn synchronize_hsms_through_connected_store(
        &self,
        namespace: &Namespace,
        cluster_id: &str,
    ) -> Result<Option<Vec<String>>, Error> {
        let _admin = self.admin.lock().await;
        let cluster = self.load(namespace, cluster_id).await?;
        check_active(&cluster)?;
        let Some(live) = self.live.logged_in(cluster_id) else {
            return Ok(None);
        };
        let pending: Vec<HsmRecord> = self
            .hsms_of(cluster_id)
            .await?
            .into_iter()
            .filter(|hsm| hsm.state != HsmState::Active)
            .collect();
        if pending.is_empty() {
            return Ok(Some(Vec::new()));
        }
        let configs = self.configs(&pending)?;
        let (joined, exported) =
            tokio::task::spawn_blocking(move || tokens::admit(&live, &configs)).await??;
        self.record_joined(&cluster, pending, &joined, exported)
            .await
            .map(Some)
    }
}

/// The admin logs in: `password` must be the Security Officer PIN of every HSM of `configs`. The
/// comparison runs in constant time; the PKCS#11 login that follows (wrapping key, user creation)
/// proves the PIN opens the token.
fn check_admin_password(configs: &[HsmConfig], password: &Pin) -> Result<(), Error> {
    for config in configs {
        let so_pin = config.so_pin.load()?;
        let same = aws_lc_rs::constant_time::verify_slices_are_equal(
            so_pin.expose().as_bytes(),
            password.expose().as_bytes(),
        )
        .is_ok();
        if !same {
            return Err(Error::InvalidRequest(format!(
                "The admin password is not the Security Officer PIN of HSM {} (token '{}'): the admin of a \
                 Strongroom cluster is each token's Security Officer, so every HSM of the cluster must have this \
                 password as its SO PIN.",
                config.id, config.token_label
            )));
        }
    }
    Ok(())
}

fn check_active(cluster: &ClusterRecord) -> Result<(), Error> {
    match cluster.state {
        ClusterState::Active | ClusterState::Degraded => Ok(()),
        state => Err(Error::InvalidRequest(format!(
            "Cluster {} is {state}: activate it with `strongroom hsm activate` first.",
            cluster.cluster_id
        ))),
    }
}

fn check_username(username: &str) -> Result<(), Error> {
    let valid = !username.is_empty()
        && username.len() <= MAX_USERNAME_LEN
        && username
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    match valid {
        true => Ok(()),
        false => Err(Error::InvalidRequest(format!(
            "'{username}' is not a valid user name: use 1 to {MAX_USERNAME_LEN} letters, digits, '_' or '-'."
        ))),
    }
}

fn check_password(password: &Pin) -> Result<(), Error> {
    let len = password.expose().chars().count();
    match PASSWORD_LEN.contains(&len) {
        true => Ok(()),
        false => Err(Error::InvalidRequest(format!(
            "A crypto user's password has {} to {} characters, not {len}.",
            PASSWORD_LEN.start(),
            PASSWORD_LEN.end()
        ))),
    }
}
