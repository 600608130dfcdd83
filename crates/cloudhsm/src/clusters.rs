//! Clusters: `CreateCluster`, `DescribeClusters`, `ModifyCluster`, `InitializeCluster`, `DeleteCluster`.

use std::collections::HashMap;

use strongroom_storage::clusters::{
    BackupRecord, BackupState, ClusterCertificates, ClusterMode, ClusterRecord, ClusterState,
    HsmRecord, SubnetMapping,
};
use strongroom_types::{Namespace, Tag};

use crate::backup_contents::BackupContents;
use crate::error::Error;
use crate::{Cluster, ControlPlane, HSM_TYPES, Page, VPC_ID, certificates, ids, tags, tokens};

/// Default and bounds of `BackupRetentionPolicy` in days.
const DEFAULT_RETENTION_DAYS: u32 = 90;
const RETENTION_DAYS: std::ops::RangeInclusive<u32> = 7..=379;
/// `DescribeClusters` pages hold at most this many clusters.
const MAX_CLUSTERS_PER_PAGE: usize = 25;

/// The parameters of `CreateCluster`, already read from the wire.
#[derive(Debug, Clone, Default)]
pub struct CreateClusterRequest {
    /// `hsm1.medium` or `hsm2m.medium`.
    pub hsm_type: String,
    /// Subnet ids, each naming its zone (`subnet-us-east-1a`).
    pub subnet_ids: Vec<String>,
    /// FIPS or non-FIPS; FIPS when absent.
    pub mode: Option<ClusterMode>,
    /// `BackupRetentionPolicy.Type`; only `DAYS` exists.
    pub backup_retention_type: Option<String>,
    /// `BackupRetentionPolicy.Value`, days as a decimal string.
    pub backup_retention_value: Option<String>,
    /// `SourceBackupId`, an id or ARN: the backup whose certificates, users and keys the new cluster
    /// inherits.
    pub source_backup_id: Option<String>,
    /// `NetworkType`; only `IPV4` is served.
    pub network_type: Option<String>,
    /// Tags for the new cluster.
    pub tags: Vec<Tag>,
}

/// `DescribeClusters` filters; each present filter must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterFilters {
    /// `clusterIds`.
    pub cluster_ids: Option<Vec<String>>,
    /// `vpcIds`.
    pub vpc_ids: Option<Vec<String>>,
    /// `states`.
    pub states: Option<Vec<ClusterState>>,
}

impl ClusterFilters {
    /// Reads the API's `Filters` map, refusing names `DescribeClusters` does not know.
    pub fn parse(filters: &[(String, Vec<String>)]) -> Result<ClusterFilters, Error> {
        let mut parsed = ClusterFilters::default();
        for (name, values) in filters {
            match name.as_str() {
                "clusterIds" => parsed.cluster_ids = Some(values.clone()),
                "vpcIds" => parsed.vpc_ids = Some(values.clone()),
                "states" => {
                    let mut states = Vec::new();
                    for value in values {
                        states.push(value.parse().map_err(|e| {
                            Error::InvalidRequest(format!("Filter 'states': {e}."))
                        })?);
                    }
                    parsed.states = Some(states);
                }
                other => {
                    return Err(Error::InvalidRequest(format!(
                        "Filter '{other}' is not supported by DescribeClusters: use clusterIds, vpcIds or states."
                    )));
                }
            }
        }
        Ok(parsed)
    }

    fn matches(&self, cluster: &ClusterRecord) -> bool {
        let any = |values: &Option<Vec<String>>, actual: &str| {
            values
                .as_ref()
                .is_none_or(|values| values.iter().any(|v| v == actual))
        };
        any(&self.cluster_ids, &cluster.cluster_id)
            && any(&self.vpc_ids, VPC_ID)
            && self
                .states
                .as_ref()
                .is_none_or(|states| states.contains(&cluster.state))
    }
}

impl ControlPlane {
    /// `CreateCluster`: a new, uninitialized cluster with no HSMs; or, with `SourceBackupId`, an
    /// `ACTIVE` cluster that inherits the backup's certificates, users and keys (its HSMs receive the
    /// keys when they are created, see the crate documentation).
    pub async fn create_cluster(
        &self,
        namespace: &Namespace,
        request: CreateClusterRequest,
    ) -> Result<Cluster, Error> {
        if !HSM_TYPES.contains(&request.hsm_type.as_str()) {
            return Err(Error::InvalidRequest(format!(
                "HsmType '{}' is not supported: use one of {}.",
                request.hsm_type,
                HSM_TYPES.join(", ")
            )));
        }
        let mode = request.mode.unwrap_or(ClusterMode::Fips);
        if request.hsm_type == "hsm1.medium" && mode == ClusterMode::NonFips {
            return Err(Error::InvalidRequest(
                "hsm1.medium clusters run in FIPS mode only: use Mode FIPS or HsmType hsm2m.medium."
                    .to_owned(),
            ));
        }
        let restored = match &request.source_backup_id {
            Some(source) => Some(self.restorable(namespace, source, &request).await?),
            None => None,
        };
        let mode = match &restored {
            Some((backup, _)) => backup.mode,
            None => mode,
        };
        match request.network_type.as_deref() {
            None | Some("IPV4") => {}
            Some(other) => {
                return Err(Error::InvalidRequest(format!(
                    "NetworkType {other} is not supported: Strongroom clusters are IPV4."
                )));
            }
        }
        let backup_retention_days = retention_days(
            request.backup_retention_type.as_deref(),
            request.backup_retention_value.as_deref(),
        )?
        .unwrap_or(DEFAULT_RETENTION_DAYS);
        let subnets = subnet_mappings(&request.subnet_ids)?;
        tags::check_new_tags(&request.tags)?;
        let mut record = ClusterRecord {
            cluster_id: ids::new_cluster_id()?,
            namespace: namespace.clone(),
            state: ClusterState::Uninitialized,
            state_message: None,
            hsm_type: request.hsm_type,
            mode,
            backup_retention_days,
            subnets,
            security_group: ids::new_security_group()?,
            created: self.now(),
            identity: None,
            certificates: None,
            crypto_users: Vec::new(),
            tags: tags::merge(&[], &request.tags),
            source_backup_id: None,
        };
        if let Some((backup, contents)) = restored {
            // As in CloudHSM, a cluster created from a backup needs no initialization or activation.
            record.state = ClusterState::Active;
            record.identity = contents.identity;
            record.certificates = contents.certificates;
            record.crypto_users = contents.crypto_users;
            record.state_message = Some(format!(
                "Created from backup {} of cluster {}: each HSM created while none is active receives the \
                 backup's keys and certificates.",
                backup.backup_id, backup.cluster_id
            ));
            record.source_backup_id = Some(backup.backup_id);
        }
        self.store.insert_cluster(&record).await?;
        Ok(Cluster {
            record,
            hsms: Vec::new(),
        })
    }

    /// The backup `source` (an id, or an ARN of this account and Region) names, opened and checked to
    /// be one a cluster can be created from with `request`.
    async fn restorable(
        &self,
        namespace: &Namespace,
        source: &str,
        request: &CreateClusterRequest,
    ) -> Result<(BackupRecord, BackupContents), Error> {
        let backup_id = match source.strip_prefix("arn:") {
            None => source,
            Some(_) => {
                let here = format!(
                    "arn:aws:cloudhsm:{}:{}:backup/",
                    namespace.region.as_str(),
                    namespace.account.as_str()
                );
                match source.strip_prefix(here.as_str()) {
                    Some(id) => id,
                    None => {
                        return Err(Error::ResourceNotFound(format!(
                            "Backup {source} does not exist in account {} and Region {}: Strongroom does not \
                             share backups between accounts or Regions.",
                            namespace.account.as_str(),
                            namespace.region.as_str()
                        )));
                    }
                }
            }
        };
        if !ids::is_backup_id(backup_id) {
            return Err(Error::InvalidRequest(format!(
                "SourceBackupId '{source}' is not a backup id (backup- and 11 to 16 characters) or a backup ARN."
            )));
        }
        let backup = self.backup(namespace, backup_id).await?;
        if backup.state != BackupState::Ready {
            return Err(Error::InvalidRequest(format!(
                "Backup {backup_id} is {}: a cluster is created only from a READY backup (restore a deleted one \
                 with RestoreBackup first).",
                backup.state
            )));
        }
        if backup.hsm_type != request.hsm_type {
            return Err(Error::InvalidRequest(format!(
                "Backup {backup_id} was taken of a {} cluster: create the cluster with HsmType {}.",
                backup.hsm_type, backup.hsm_type
            )));
        }
        if let Some(mode) = request.mode
            && mode != backup.mode
        {
            return Err(Error::InvalidRequest(format!(
                "Backup {backup_id} was taken of a {} cluster, and a backup restores only into its own mode: \
                 omit Mode or give {}.",
                backup.mode, backup.mode
            )));
        }
        let contents = self.backup_contents(&backup)?;
        let (Some(_), Some(_), true) = (
            &contents.certificates,
            &contents.wrapping_key_id,
            contents.activated,
        ) else {
            return Err(Error::InvalidRequest(format!(
                "Backup {backup_id} was taken before cluster {} was activated: it holds no users or keys to \
                 restore. Create a new cluster instead.",
                contents.cluster_id
            )));
        };
        if contents.keys.is_none() {
            return Err(Error::InvalidRequest(format!(
                "Backup {backup_id} holds the users and certificates of cluster {} but not its keys: it was taken \
                 while no HSM of the cluster had the crypto user logged in in this server. Create the cluster from \
                 a backup taken while its custom key store was connected (or by `strongroom hsm sync`).",
                contents.cluster_id
            )));
        }
        Ok((backup, contents))
    }

    /// `DescribeClusters`: the namespace's clusters matching `filters`, by id, a page at a time.
    ///
    /// An `ACTIVE` cluster and its HSMs show the live health this server finds of them (`DEGRADED`
    /// while an HSM fails, see [`ControlPlane::overlay_live_health`]), and the `states` filter
    /// matches what is shown.
    pub async fn describe_clusters(
        &self,
        namespace: &Namespace,
        filters: &ClusterFilters,
        next_token: Option<&str>,
        max_results: Option<i64>,
    ) -> Result<Page<Cluster>, Error> {
        let records = self.store.list_clusters(namespace).await?;
        let mut hsms: HashMap<String, Vec<HsmRecord>> = HashMap::new();
        for hsm in self.store.hsms().await? {
            hsms.entry(hsm.cluster_id.clone()).or_default().push(hsm);
        }
        let mut matching: Vec<Cluster> = Vec::new();
        for record in records {
            let mut cluster = Cluster {
                hsms: hsms.remove(&record.cluster_id).unwrap_or_default(),
                record,
            };
            self.overlay_live_health(&mut cluster);
            if filters.matches(&cluster.record) {
                matching.push(cluster);
            }
        }
        paginate(
            matching,
            |cluster| cluster.record.cluster_id.as_str(),
            next_token,
            max_results,
            MAX_CLUSTERS_PER_PAGE,
        )
    }

    /// `ModifyCluster`: changes the backup retention; the HSM type can be "changed" only to itself,
    /// because declared HSMs are what they are.
    pub async fn modify_cluster(
        &self,
        namespace: &Namespace,
        cluster_id: &str,
        hsm_type: Option<&str>,
        backup_retention: Option<(Option<&str>, Option<&str>)>,
    ) -> Result<Cluster, Error> {
        let _admin = self.admin.lock().await;
        let mut record = self.load(namespace, cluster_id).await?;
        check_not_deleted(&record)?;
        if let Some(hsm_type) = hsm_type
            && hsm_type != record.hsm_type
        {
            return Err(Error::InvalidRequest(format!(
                "Cluster {cluster_id} runs on declared {} HSMs; Strongroom cannot migrate it to {hsm_type}.",
                record.hsm_type
            )));
        }
        if let Some((kind, value)) = backup_retention
            && let Some(days) = retention_days(kind, value)?
        {
            record.backup_retention_days = days;
        }
        self.store.put_cluster(&record).await?;
        let hsms = self.hsms_of(cluster_id).await?;
        Ok(Cluster { record, hsms })
    }

    /// `InitializeCluster`: checks the signed cluster certificate and the trust anchor, writes both onto
    /// every HSM of the cluster, and makes the cluster `INITIALIZED`.
    ///
    /// The work is done before this returns, so the state reported is already `INITIALIZED` rather
    /// than CloudHSM's transient `INITIALIZE_IN_PROGRESS`.
    pub async fn initialize_cluster(
        &self,
        namespace: &Namespace,
        cluster_id: &str,
        signed_cert: &str,
        trust_anchor: &str,
    ) -> Result<ClusterRecord, Error> {
        let _admin = self.admin.lock().await;
        let mut record = self.load(namespace, cluster_id).await?;
        if record.state != ClusterState::Uninitialized {
            return Err(Error::InvalidRequest(format!(
                "Cluster {cluster_id} is {}, not UNINITIALIZED: a cluster is initialized once.",
                record.state
            )));
        }
        let Some(identity) = &record.identity else {
            return Err(Error::InvalidRequest(format!(
                "Cluster {cluster_id} has no CSR yet: create its first HSM with CreateHsm, then sign the ClusterCsr \
                 that DescribeClusters returns."
            )));
        };
        let hsms = self.hsms_of(cluster_id).await?;
        if hsms.is_empty() {
            return Err(Error::InvalidRequest(format!(
                "Cluster {cluster_id} has no HSM to install the certificate on: create one with CreateHsm."
            )));
        }
        let checked = certificates::check(
            signed_cert,
            trust_anchor,
            &identity.public_key,
            self.now().as_secs(),
        )?;
        let configs = self.configs(&hsms)?;
        let modules = self.modules.clone();
        let id = cluster_id.to_owned();
        tokio::task::spawn_blocking(move || {
            tokens::write_certificates(&configs, &modules, &id, &checked)
        })
        .await??;
        record.state = ClusterState::Initialized;
        record.state_message =
            Some("Cluster is initialized: activate it with `strongroom hsm activate`.".to_owned());
        record.certificates = Some(ClusterCertificates {
            cluster_certificate_pem: signed_cert.to_owned(),
            trust_anchor_pem: trust_anchor.to_owned(),
        });
        self.store.put_cluster(&record).await?;
        Ok(record)
    }

    /// `DeleteCluster`: removes a cluster that has no HSMs; its backups stay. Returns the cluster as it
    /// was, in state `DELETED`.
    pub async fn delete_cluster(
        &self,
        namespace: &Namespace,
        cluster_id: &str,
    ) -> Result<Cluster, Error> {
        let _admin = self.admin.lock().await;
        let mut record = self.load(namespace, cluster_id).await?;
        let hsms = self.hsms_of(cluster_id).await?;
        if !hsms.is_empty() {
            let ids: Vec<&str> = hsms.iter().map(|hsm| hsm.hsm_id.as_str()).collect();
            return Err(Error::InvalidRequest(format!(
                "Cluster {cluster_id} still has {} HSM(s) ({}): delete them with DeleteHsm first.",
                hsms.len(),
                ids.join(", ")
            )));
        }
        self.store.delete_cluster(namespace, cluster_id).await?;
        record.state = ClusterState::Deleted;
        record.state_message = None;
        Ok(Cluster {
            record,
            hsms: Vec::new(),
        })
    }
}

/// Refuses work on a cluster that is going away.
pub(crate) fn check_not_deleted(record: &ClusterRecord) -> Result<(), Error> {
    match record.state {
        ClusterState::Deleted | ClusterState::DeleteInProgress => Err(Error::InvalidRequest(
            format!("Cluster {} is {}.", record.cluster_id, record.state),
        )),
        _ => Ok(()),
    }
}

/// Maps subnet ids to zones: `subnet-<zone>` is a subnet in `<zone>`, one per zone.
pub(crate) fn subnet_mappings(subnet_ids: &[String]) -> Result<Vec<SubnetMapping>, Error> {
    if subnet_ids.is_empty() {
        return Err(Error::InvalidRequest(
            "SubnetIds needs at least one subnet, such as subnet-us-east-1a.".to_owned(),
        ));
    }
    let mut subnets: Vec<SubnetMapping> = Vec::new();
    for subnet_id in subnet_ids {
        let zone = subnet_id
            .strip_prefix("subnet-")
            .filter(|zone| is_zone_name(zone))
            .ok_or_else(|| {
                Error::InvalidRequest(format!(
                    "Subnet id '{subnet_id}' does not name an availability zone: Strongroom has no VPC, so a subnet \
                     is written subnet-<zone>, for example subnet-us-east-1a."
                ))
            })?;
        if subnets.iter().any(|s| s.availability_zone == zone) {
            return Err(Error::InvalidRequest(format!(
                "SubnetIds has two subnets in {zone}: give one subnet per availability zone."
            )));
        }
        subnets.push(SubnetMapping {
            availability_zone: zone.to_owned(),
            subnet_id: subnet_id.clone(),
        });
    }
    subnets.sort_by(|a, b| a.availability_zone.cmp(&b.availability_zone));
    Ok(subnets)
}

/// Whether `zone` is written like an availability zone: lowercase letters, digits and hyphens,
/// starting with a letter and with at least one hyphen, so that AWS's hexadecimal subnet ids
/// (`subnet-0123abcd`) are not mistaken for zones.
fn is_zone_name(zone: &str) -> bool {
    zone.starts_with(|c: char| c.is_ascii_lowercase())
        && zone.contains('-')
        && zone
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Reads `BackupRetentionPolicy`; `None` when neither part is given.
fn retention_days(kind: Option<&str>, value: Option<&str>) -> Result<Option<u32>, Error> {
    match kind {
        None | Some("DAYS") => {}
        Some(other) => {
            return Err(Error::InvalidRequest(format!(
                "BackupRetentionPolicy Type '{other}' is not supported: use DAYS."
            )));
        }
    }
    let Some(value) = value else {
        return Ok(None);
    };
    match value.parse::<u32>() {
        Ok(days) if RETENTION_DAYS.contains(&days) => Ok(Some(days)),
        _ => Err(Error::InvalidRequest(format!(
            "BackupRetentionPolicy Value '{value}' must be a number of days from {} to {}.",
            RETENTION_DAYS.start(),
            RETENTION_DAYS.end()
        ))),
    }
}

/// One page of `items` (in their listing order), resuming after the item whose id is `token`.
///
/// The token is the id of the last item of the previous page, so pages stay consistent while items
/// are added; a token whose item was deleted in between is refused rather than silently restarting.
pub(crate) fn paginate<T>(
    items: Vec<T>,
    id: impl Fn(&T) -> &str,
    token: Option<&str>,
    max_results: Option<i64>,
    page_limit: usize,
) -> Result<Page<T>, Error> {
    let start = match token {
        None => 0,
        Some(token) => match items.iter().position(|item| id(item) == token) {
            Some(index) => index + 1,
            None => {
                return Err(Error::InvalidRequest(
                    "NextToken is not valid: it names nothing in this listing any more. Start again without it."
                        .to_owned(),
                ));
            }
        },
    };
    let size = match max_results {
        Some(n) if n >= 1 => usize::try_from(n).unwrap_or(page_limit).min(page_limit),
        Some(n) => {
            return Err(Error::InvalidRequest(format!(
                "MaxResults must be at least 1, not {n}."
            )));
        }
        None => page_limit,
    };
    let rest: Vec<T> = items.into_iter().skip(start).collect();
    let more = rest.len() > size;
    let page: Vec<T> = rest.into_iter().take(size).collect();
    let next_token = match (more, page.last()) {
        (true, Some(last)) => Some(id(last).to_owned()),
        _ => None,
    };
    Ok(Page {
        items: page,
        next_token,
    })
}
