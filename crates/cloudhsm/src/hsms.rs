//! HSMs: `CreateHsm` assigns a free declared HSM to a cluster, `DeleteHsm` releases it.

use strongroom_keystore_pkcs11::HsmConfig;
use strongroom_storage::StoreError;
use strongroom_storage::clusters::{
    BackupRecord, ClusterRecord, ClusterState, HsmRecord, HsmState,
};
use strongroom_types::Namespace;

use crate::backup_contents::BackupContents;
use crate::clusters::check_not_deleted;
use crate::error::Error;
use crate::{ControlPlane, MAX_HSMS_PER_CLUSTER, certificates, ids, tokens};

/// How `DeleteHsm` names the HSM: exactly one of these is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HsmSelector {
    /// `HsmId`.
    HsmId(String),
    /// `EniId`.
    EniId(String),
    /// `EniIp`.
    EniIp(String),
}

/// What a new HSM needs before it serves, decided from the cluster's stage of bring-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Preparation {
    /// Make the cluster key pair and CSR on it: the first HSM of an uninitialized cluster.
    Identity,
    /// Nothing: an uninitialized cluster that already has its CSR.
    Nothing,
    /// Write the cluster certificate and trust anchor on it (an initialized cluster), and in an
    /// active one also give it the cluster wrapping key.
    Certificates { wrapping_key: bool },
    /// Wait for someone with the crypto user's password: the cluster has users and keys.
    Synchronization,
    /// Seed it from a backup, because no HSM of the cluster is active to copy from: the lineage's
    /// wrapping key by ECDH, then the backup's keys and the certificates. It then waits for the admin
    /// to set the crypto user's password if the cluster has one, and is active at once otherwise.
    Seed,
}

impl ControlPlane {
    /// `CreateHsm`: assigns a free declared HSM in `availability_zone` to the cluster and prepares it
    /// for the cluster's stage of bring-up (see the crate documentation).
    pub async fn create_hsm(
        &self,
        namespace: &Namespace,
        cluster_id: &str,
        availability_zone: &str,
        ip_address: Option<&str>,
    ) -> Result<HsmRecord, Error> {
        let _admin = self.admin.lock().await;
        let mut cluster = self.load(namespace, cluster_id).await?;
        check_not_deleted(&cluster)?;
        let Some(subnet) = cluster
            .subnets
            .iter()
            .find(|subnet| subnet.availability_zone == availability_zone)
            .cloned()
        else {
            let zones: Vec<&str> = cluster
                .subnets
                .iter()
                .map(|subnet| subnet.availability_zone.as_str())
                .collect();
            return Err(Error::InvalidRequest(format!(
                "Cluster {cluster_id} has no subnet in {availability_zone}: its subnets are in {}.",
                zones.join(", ")
            )));
        };
        let members = self.hsms_of(cluster_id).await?;
        if members.len() >= MAX_HSMS_PER_CLUSTER {
            return Err(Error::InvalidRequest(format!(
                "Cluster {cluster_id} has {MAX_HSMS_PER_CLUSTER} HSMs, the most a cluster may have."
            )));
        }
        if let Some(ip) = ip_address
            && !is_ipv4(ip)
        {
            return Err(Error::InvalidRequest(format!(
                "IpAddress '{ip}' is not an IPv4 address."
            )));
        }
        let seedable = matches!(cluster.state, ClusterState::Active | ClusterState::Degraded)
            && (cluster.source_backup_id.is_some() || !cluster.crypto_users.is_empty())
            && !members.iter().any(|hsm| hsm.state == HsmState::Active);
        let seed = match seedable {
            true => self.seed_backup(&cluster).await?,
            false => None,
        };
        let preparation = match (cluster.state, &cluster.identity) {
            (ClusterState::Uninitialized, None) => Preparation::Identity,
            (ClusterState::Uninitialized, Some(_)) => Preparation::Nothing,
            _ if seed.is_some() => Preparation::Seed,
            _ if !cluster.crypto_users.is_empty() => Preparation::Synchronization,
            (ClusterState::Initialized, _) => Preparation::Certificates {
                wrapping_key: false,
            },
            (ClusterState::Active | ClusterState::Degraded, _) => {
                Preparation::Certificates { wrapping_key: true }
            }
            (state, _) => {
                return Err(Error::InvalidRequest(format!(
                    "Cluster {cluster_id} is {state}: HSMs cannot be added now."
                )));
            }
        };

        let (record, config) = self
            .claim(&cluster, &subnet.subnet_id, availability_zone, ip_address)
            .await?;
        let prepared = match (preparation, &seed) {
            (Preparation::Seed, Some((backup, contents))) => {
                self.seed_hsm(&cluster, &config, backup, contents).await
            }
            _ => {
                self.prepare(&mut cluster, &members, &config, preparation)
                    .await
            }
        };
        match prepared {
            Ok(()) => {}
            Err(error) => {
                // The token could not be prepared: release it so that a retry can pick it or another.
                if let Err(release) = self.store.delete_hsm(&record.hsm_id).await {
                    tracing::error!(hsm = %record.hsm_id, error = %release, "failed to release an HSM after a failed CreateHsm");
                }
                return Err(error);
            }
        }
        let mut record = record;
        match preparation {
            Preparation::Seed if !cluster.crypto_users.is_empty() => {
                let backup = seed
                    .as_ref()
                    .map_or("", |(backup, _)| backup.backup_id.as_str());
                record.state_message = Some(format!(
                    "Holds the keys and certificates of backup {backup}. Waiting for the crypto user's password: \
                     the admin sets it on the cluster's seeded HSMs, which brings them in, with `strongroom hsm \
                     change-password --cluster {cluster_id} --username {} --admin-password-file FILE \
                     --password-file FILE`.",
                    cluster.crypto_users.join(", ")
                ));
            }
            Preparation::Synchronization => match self
                .admit_through_connected_store(cluster_id, &config)
                .await
            {
                // As CloudHSM clones a new HSM from the cluster's backup, a key store connected to
                // the cluster gives it the users, keys and certificates at once.
                Some(admitted) => match admitted {
                    Ok(()) => {
                        record.state = HsmState::Active;
                        record.state_message = None;
                    }
                    Err(error) => {
                        tracing::warn!(hsm = %record.hsm_id, %error,
                            "the connected key store could not bring the new HSM in");
                        record.state_message = Some(format!(
                            "The connected key store could not copy users and keys to this HSM ({error}). \
                             Delete it (`aws cloudhsmv2 delete-hsm --cluster-id {cluster_id} --hsm-id {}`) \
                             and create it again once the cause is fixed.",
                            record.hsm_id
                        ));
                    }
                },
                None => {
                    record.state_message = Some(format!(
                        "Waiting for its users and keys: it joins as soon as a custom key store \
                         connects to the cluster (aws kms connect-custom-key-store), or now with \
                         `strongroom hsm sync --cluster {cluster_id} --password-file FILE` holding \
                         the crypto user's password."
                    ));
                }
            },
            _ => {
                record.state = HsmState::Active;
                record.state_message = None;
            }
        }
        self.store.put_hsm(&record).await?;
        self.record_backup(&cluster).await?;
        Ok(record)
    }

    /// Brings the HSM of `config` in through a key store connected to `cluster_id` (whose PKCS#11
    /// cluster is logged in as the crypto user); `None` when no store is connected.
    async fn admit_through_connected_store(
        &self,
        cluster_id: &str,
        config: &HsmConfig,
    ) -> Option<Result<(), Error>> {
        let live = self.live.logged_in(cluster_id)?;
        let config = config.clone();
        let id = config.id.clone();
        let admitted = tokio::task::spawn_blocking(move || {
            tokens::admit(&live, std::slice::from_ref(&config))
        })
        .await;
        Some(match admitted {
            Ok(Ok((joined, _))) if joined.contains(&id) => Ok(()),
            Ok(Ok(_)) => Err(Error::InvalidRequest(format!("HSM {id} did not join."))),
            Ok(Err(error)) => Err(error),
            Err(panicked) => Err(panicked.into()),
        })
    }

    /// Records a free declared HSM of `zone` as the cluster's, trying the next one if another process
    /// claimed it first; the record starts in `CREATE_IN_PROGRESS`.
    async fn claim(
        &self,
        cluster: &ClusterRecord,
        subnet_id: &str,
        zone: &str,
        ip_address: Option<&str>,
    ) -> Result<(HsmRecord, HsmConfig), Error> {
        let in_zone: Vec<&HsmConfig> = self
            .declared
            .iter()
            .filter(|hsm| hsm.availability_zone == zone)
            .collect();
        if in_zone.is_empty() {
            return Err(Error::InvalidRequest(format!(
                "No HSM is declared in {zone}: add an [[hsm]] table with availability_zone = \"{zone}\" to the \
                 server configuration."
            )));
        }
        let assigned = self.store.hsms().await?;
        for candidate in in_zone {
            if assigned.iter().any(|hsm| hsm.declared_hsm == candidate.id) {
                continue;
            }
            let record = HsmRecord {
                hsm_id: ids::new_hsm_id()?,
                cluster_id: cluster.cluster_id.clone(),
                declared_hsm: candidate.id.clone(),
                availability_zone: zone.to_owned(),
                subnet_id: subnet_id.to_owned(),
                eni_id: ids::new_eni_id()?,
                eni_ip: match ip_address {
                    Some(ip) => ip.to_owned(),
                    None => ids::new_eni_ip()?,
                },
                state: HsmState::CreateInProgress,
                state_message: None,
                created: self.now(),
            };
            match self.store.insert_hsm(&record).await {
                Ok(()) => return Ok((record, candidate.clone())),
                // Another process took it between the listing and the insert.
                Err(StoreError::AlreadyExists(_)) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        let holders: Vec<String> = assigned
            .iter()
            .filter(|hsm| hsm.availability_zone == zone)
            .map(|hsm| format!("{} (in {})", hsm.declared_hsm, hsm.cluster_id))
            .collect();
        Err(Error::InvalidRequest(format!(
            "No free HSM in {zone}: every HSM declared there is in use ({}). Declare another [[hsm]] in {zone} \
             or delete an HSM with DeleteHsm.",
            holders.join(", ")
        )))
    }

    /// Does the token work `preparation` calls for on the new HSM `config`.
    async fn prepare(
        &self,
        cluster: &mut ClusterRecord,
        members: &[HsmRecord],
        config: &HsmConfig,
        preparation: Preparation,
    ) -> Result<(), Error> {
        let modules = self.modules.clone();
        let cluster_id = cluster.cluster_id.clone();
        match preparation {
            Preparation::Nothing | Preparation::Synchronization | Preparation::Seed => Ok(()),
            Preparation::Identity => {
                let configs = vec![config.clone()];
                let identity = tokio::task::spawn_blocking(move || {
                    tokens::make_identity(&configs, &modules, &cluster_id)
                })
                .await??;
                cluster.identity = Some(identity);
                self.store.put_cluster(cluster).await?;
                Ok(())
            }
            Preparation::Certificates { wrapping_key } => {
                let Some(installed) = &cluster.certificates else {
                    return Err(Error::internal(
                        "an initialized cluster has no certificates",
                    ));
                };
                // The certificates were checked when they were installed.
                let checked = certificates::reparse(installed)?;
                let new = vec![config.clone()];
                let mut everyone = self.configs(members)?;
                everyone.push(config.clone());
                tokio::task::spawn_blocking(move || {
                    tokens::write_certificates(&new, &modules, &cluster_id, &checked)?;
                    match wrapping_key {
                        true => tokens::establish_wrapping_key(&everyone, &modules),
                        false => Ok(()),
                    }
                })
                .await??;
                Ok(())
            }
        }
    }

    /// Seeds the new HSM `config` of `cluster` from `backup` (see [`Preparation::Seed`]).
    async fn seed_hsm(
        &self,
        cluster: &ClusterRecord,
        config: &HsmConfig,
        backup: &BackupRecord,
        contents: &BackupContents,
    ) -> Result<(), Error> {
        let (Some(installed), Some(wrapping_key_id), Some(keys)) = (
            &contents.certificates,
            &contents.wrapping_key_id,
            &contents.keys,
        ) else {
            return Err(Error::internal("a seed backup lacks certificates or keys"));
        };
        let checked = certificates::reparse(installed)?;
        let (holders, lineage) = self
            .lineage_holders(
                &cluster.namespace,
                &installed.cluster_certificate_pem,
                &config.id,
            )
            .await?;
        let modules = self.modules.clone();
        let target = config.clone();
        let cluster_id = cluster.cluster_id.clone();
        let backup_id = backup.backup_id.clone();
        let wrapping_key_id = wrapping_key_id.clone();
        let keys = keys.clone();
        let added = tokio::task::spawn_blocking(move || {
            let seed = tokens::Seed {
                backup_id: &backup_id,
                wrapping_key_id: &wrapping_key_id,
                keys: &keys,
                certificates: &checked,
                lineage: &lineage,
            };
            tokens::seed(&target, &holders, &modules, &cluster_id, &seed)
        })
        .await??;
        tracing::info!(cluster = %cluster.cluster_id, hsm = %config.id, backup = %backup.backup_id, keys = added,
            "HSM seeded from a backup");
        Ok(())
    }

    /// `DeleteHsm`: releases one HSM of the cluster back to the declared pool; returns its id.
    ///
    /// A key store connected to the cluster stops using the HSM first and goes on with the others,
    /// as a KMS custom key store does when an HSM of its CloudHSM cluster is deleted: the token is
    /// free for other clusters, so no session of this one may stay on it. The token is not wiped
    /// (see the crate documentation).
    pub async fn delete_hsm(
        &self,
        namespace: &Namespace,
        cluster_id: &str,
        selector: &HsmSelector,
    ) -> Result<String, Error> {
        let _admin = self.admin.lock().await;
        let cluster = self.load(namespace, cluster_id).await?;
        let hsms = self.hsms_of(cluster_id).await?;
        let found = hsms.iter().find(|hsm| match selector {
            HsmSelector::HsmId(id) => &hsm.hsm_id == id,
            HsmSelector::EniId(id) => &hsm.eni_id == id,
            HsmSelector::EniIp(ip) => &hsm.eni_ip == ip,
        });
        let Some(hsm) = found else {
            let named = match selector {
                HsmSelector::HsmId(id) => format!("HSM {id}"),
                HsmSelector::EniId(id) => format!("An HSM with network interface {id}"),
                HsmSelector::EniIp(ip) => format!("An HSM with address {ip}"),
            };
            return Err(Error::ResourceNotFound(format!(
                "{named} does not exist in cluster {cluster_id}."
            )));
        };
        let membership = self.membership.write().await;
        for live in self.live.opened(cluster_id) {
            let declared = hsm.declared_hsm.clone();
            tokio::task::spawn_blocking(move || live.remove_hsm(&declared)).await?;
        }
        self.store.delete_hsm(&hsm.hsm_id).await?;
        drop(membership);
        self.record_backup(&cluster).await?;
        Ok(hsm.hsm_id.clone())
    }
}

fn is_ipv4(text: &str) -> bool {
    text.parse::<std::net::Ipv4Addr>().is_ok()
}
