//! The conformance suite every [`ClusterStore`] backend must pass.
//!
//! Each check starts from and leaves behind a store with no clusters, HSM assignments or backups, so
//! the suite can run again on the same store, for instance after reopening it.

use std::fmt;

use strongroom_storage::StoreError;
use strongroom_storage::clusters::{
    BackupRecord, BackupState, ClusterCertificates, ClusterIdentity, ClusterMode, ClusterRecord,
    ClusterState, ClusterStore, HsmRecord, HsmState, SubnetMapping,
};
use strongroom_types::{Namespace, Tag, Timestamp};

use crate::fixtures::{base_time, namespace};

const ONE: (&str, &str) = ("111122223333", "us-east-1");
const TWO: (&str, &str) = ("444455556666", "us-east-1");

/// Runs every check against `store`, which must hold no cluster records; panics with a description of
/// the first failure, and leaves the store empty again.
pub async fn check_cluster_store(store: &dyn ClusterStore) {
    check_empty(
        store,
        "before the suite (check_cluster_store needs an empty store)",
    )
    .await;
    check_clusters(store).await;
    check_hsms(store).await;
    check_backups(store).await;
    check_empty(store, "after the suite").await;
}

async fn check_empty(store: &dyn ClusterStore, when: &str) {
    for (account, region) in [ONE, TWO] {
        let ns = namespace(account, region);
        assert_eq!(
            must(store.list_clusters(&ns).await, "list_clusters"),
            Vec::new(),
            "{when}: the store holds clusters"
        );
        assert_eq!(
            must(store.backups(&ns).await, "backups"),
            Vec::new(),
            "{when}: the store holds backups"
        );
    }
    assert_eq!(
        must(store.hsms().await, "hsms"),
        Vec::new(),
        "{when}: the store holds HSM assignments"
    );
}

async fn check_clusters(store: &dyn ClusterStore) {
    let one = namespace(ONE.0, ONE.1);
    let two = namespace(TWO.0, TWO.1);
    let first = sample_cluster(&one, "cluster-aaaaaaaaaaa");
    let second = sample_cluster(&one, "cluster-bbbbbbbbbbb");
    let theirs = sample_cluster(&two, "cluster-ccccccccccc");
    // Inserted out of order: listing sorts by id.
    must(store.insert_cluster(&second).await, "insert_cluster");
    must(store.insert_cluster(&first).await, "insert_cluster");
    must(store.insert_cluster(&theirs).await, "insert_cluster");
    assert_already_exists(
        &store.insert_cluster(&first).await,
        "a second cluster with the same id",
    );
    assert_eq!(
        must(store.list_clusters(&one).await, "list_clusters"),
        vec![first.clone(), second.clone()],
        "a namespace lists its own clusters in id order"
    );
    assert_eq!(
        must(store.cluster(&first.cluster_id).await, "cluster"),
        Some(first.clone())
    );
    assert_eq!(
        must(store.cluster("cluster-ddddddddddd").await, "cluster"),
        None,
        "a missing cluster reads as None"
    );

    // A bring-up fills in every optional part; put_cluster replaces the record whole.
    let mut changed = first.clone();
    changed.state = ClusterState::Active;
    changed.state_message = Some("activated".to_owned());
    changed.identity = Some(ClusterIdentity {
        key_label: "cluster-aaaaaaaaaaa/identity".to_owned(),
        public_key: vec![0x30, 0x82, 0x01, 0x22, 0x00, 0xff],
        csr_pem: "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n"
            .to_owned(),
    });
    changed.certificates = Some(ClusterCertificates {
        cluster_certificate_pem: "cluster certificate".to_owned(),
        trust_anchor_pem: "trust anchor".to_owned(),
    });
    changed.crypto_users = vec!["alice".to_owned(), "kmsuser".to_owned()];
    changed.tags = vec![tag("z", "last"), tag("env", "prod"), tag("a", "")];
    changed.subnets = vec![subnet("us-east-1a", "subnet-0aaaaaaaaaaaaaaaa")];
    changed.backup_retention_days = 30;
    must(store.put_cluster(&changed).await, "put_cluster");
    assert_eq!(
        must(store.cluster(&first.cluster_id).await, "cluster"),
        Some(changed.clone()),
        "put_cluster replaces state, identity, certificates, users, subnets and tags, keeping the tags' order"
    );
    let mut back = changed.clone();
    back.identity = None;
    back.certificates = None;
    back.crypto_users = Vec::new();
    back.tags = Vec::new();
    back.state_message = None;
    back.source_backup_id = None;
    must(store.put_cluster(&back).await, "put_cluster");
    assert_eq!(
        must(store.cluster(&first.cluster_id).await, "cluster"),
        Some(back),
        "optional parts can be cleared again"
    );
    let mut elsewhere = first.clone();
    elsewhere.namespace = two.clone();
    assert_not_found(
        &store.put_cluster(&elsewhere).await,
        "put_cluster into another namespace",
    );
    let missing = sample_cluster(&one, "cluster-ddddddddddd");
    assert_not_found(
        &store.put_cluster(&missing).await,
        "put_cluster of a missing cluster",
    );

    assert_not_found(
        &store.delete_cluster(&two, &first.cluster_id).await,
        "delete_cluster from another namespace",
    );
    for (ns, cluster) in [(&one, &first), (&one, &second), (&two, &theirs)] {
        must(
            store.delete_cluster(ns, &cluster.cluster_id).await,
            "delete_cluster",
        );
    }
    assert_not_found(
        &store.delete_cluster(&one, &first.cluster_id).await,
        "deleting a cluster twice",
    );
    // A cluster created again under the same id starts without the old children.
    must(store.insert_cluster(&first).await, "insert_cluster again");
    assert_eq!(
        must(store.cluster(&first.cluster_id).await, "cluster"),
        Some(first.clone())
    );
    must(
        store.delete_cluster(&one, &first.cluster_id).await,
        "delete_cluster",
    );
}

async fn check_hsms(store: &dyn ClusterStore) {
    let a = sample_hsm("hsm-aaaaaaaaaaa", "cluster-aaaaaaaaaaa", "token-a", 1);
    let b = sample_hsm("hsm-bbbbbbbbbbb", "cluster-aaaaaaaaaaa", "token-b", 2);
    must(store.insert_hsm(&b).await, "insert_hsm");
    must(store.insert_hsm(&a).await, "insert_hsm");
    assert_eq!(
        must(store.hsms().await, "hsms"),
        vec![a.clone(), b.clone()],
        "HSMs are listed in creation order"
    );
    let same_id = sample_hsm("hsm-aaaaaaaaaaa", "cluster-bbbbbbbbbbb", "token-c", 3);
    assert_already_exists(
        &store.insert_hsm(&same_id).await,
        "a second HSM with the same id",
    );
    let same_token = sample_hsm("hsm-ccccccccccc", "cluster-bbbbbbbbbbb", "token-a", 3);
    assert_already_exists(
        &store.insert_hsm(&same_token).await,
        "a declared HSM claimed by a second cluster",
    );

    let mut changed = a.clone();
    changed.state = HsmState::Active;
    changed.state_message = None;
    must(store.put_hsm(&changed).await, "put_hsm");
    assert_eq!(must(store.hsms().await, "hsms"), vec![changed, b.clone()]);
    assert_not_found(
        &store.put_hsm(&same_token).await,
        "put_hsm of a missing HSM",
    );

    must(store.delete_hsm(&a.hsm_id).await, "delete_hsm");
    assert_not_found(&store.delete_hsm(&a.hsm_id).await, "deleting an HSM twice");
    // A released declared HSM can be claimed again.
    must(
        store.insert_hsm(&same_token).await,
        "insert_hsm of a released HSM",
    );
    must(store.delete_hsm(&same_token.hsm_id).await, "delete_hsm");
    must(store.delete_hsm(&b.hsm_id).await, "delete_hsm");
}

async fn check_backups(store: &dyn ClusterStore) {
    let one = namespace(ONE.0, ONE.1);
    let two = namespace(TWO.0, TWO.1);
    let later = sample_backup(&one, "backup-bbbbbbbbbbb", 20);
    let earlier = sample_backup(&one, "backup-zzzzzzzzzzz", 10);
    let theirs = sample_backup(&two, "backup-ccccccccccc", 5);
    for backup in [&later, &earlier, &theirs] {
        must(store.insert_backup(backup).await, "insert_backup");
    }
    assert_already_exists(
        &store.insert_backup(&later).await,
        "a second backup with the same id",
    );
    assert_eq!(
        must(store.backups(&one).await, "backups"),
        vec![earlier.clone(), later.clone()],
        "backups are listed by creation time"
    );

    let mut changed = later.clone();
    changed.state = BackupState::PendingDeletion;
    changed.deleted = Some(base_time().plus_days(3));
    changed.never_expires = true;
    changed.tags = vec![tag("b", "2"), tag("a", "1")];
    changed.sealed_contents = None;
    must(store.put_backup(&changed).await, "put_backup");
    assert_eq!(
        must(store.backups(&one).await, "backups"),
        vec![earlier.clone(), changed.clone()],
        "put_backup replaces state, deletion time, expiry, tags and contents"
    );
    let mut elsewhere = later.clone();
    elsewhere.namespace = two.clone();
    assert_not_found(
        &store.put_backup(&elsewhere).await,
        "put_backup into another namespace",
    );

    assert_not_found(
        &store.delete_backup(&two, &later.backup_id).await,
        "delete_backup from another namespace",
    );
    must(
        store.delete_backup(&one, &later.backup_id).await,
        "delete_backup",
    );
    must(
        store.delete_backup(&one, &earlier.backup_id).await,
        "delete_backup",
    );
    must(
        store.delete_backup(&two, &theirs.backup_id).await,
        "delete_backup",
    );
    assert_not_found(
        &store.delete_backup(&one, &later.backup_id).await,
        "deleting a backup twice",
    );
    // A backup recorded again under the same id starts without the old tags.
    must(store.insert_backup(&later).await, "insert_backup again");
    assert_eq!(
        must(store.backups(&one).await, "backups"),
        vec![later.clone()]
    );
    must(
        store.delete_backup(&one, &later.backup_id).await,
        "delete_backup",
    );
}

fn sample_cluster(ns: &Namespace, cluster_id: &str) -> ClusterRecord {
    ClusterRecord {
        cluster_id: cluster_id.to_owned(),
        namespace: ns.clone(),
        state: ClusterState::Uninitialized,
        state_message: Some("waiting for its first HSM".to_owned()),
        hsm_type: "hsm2m.medium".to_owned(),
        mode: ClusterMode::NonFips,
        backup_retention_days: 90,
        subnets: vec![
            subnet("us-east-1a", "subnet-us-east-1a"),
            subnet("us-east-1b", "subnet-us-east-1b"),
        ],
        security_group: "sg-0123456789abcdef0".to_owned(),
        created: base_time(),
        identity: None,
        certificates: None,
        crypto_users: Vec::new(),
        tags: vec![tag("team", "blue")],
        source_backup_id: Some("backup-bbbbbbbbbbb".to_owned()),
    }
}

fn sample_hsm(hsm_id: &str, cluster_id: &str, declared: &str, minute: i64) -> HsmRecord {
    HsmRecord {
        hsm_id: hsm_id.to_owned(),
        cluster_id: cluster_id.to_owned(),
        declared_hsm: declared.to_owned(),
        availability_zone: "us-east-1a".to_owned(),
        subnet_id: "subnet-us-east-1a".to_owned(),
        eni_id: "eni-0123456789abcdef0".to_owned(),
        eni_ip: "10.0.1.17".to_owned(),
        state: HsmState::CreateInProgress,
        state_message: Some("waiting for synchronization".to_owned()),
        created: at_minute(minute),
    }
}

fn sample_backup(ns: &Namespace, backup_id: &str, minute: i64) -> BackupRecord {
    BackupRecord {
        backup_id: backup_id.to_owned(),
        cluster_id: "cluster-aaaaaaaaaaa".to_owned(),
        namespace: ns.clone(),
        state: BackupState::Ready,
        hsm_type: "hsm2m.medium".to_owned(),
        mode: ClusterMode::Fips,
        never_expires: false,
        created: at_minute(minute),
        deleted: None,
        tags: vec![tag("kind", "automatic")],
        sealed_contents: Some(vec![0, 1, 2, 3, 254]),
    }
}

fn at_minute(minute: i64) -> Timestamp {
    Timestamp::from_millis(base_time().millis() + minute * 60_000)
}

fn subnet(zone: &str, id: &str) -> SubnetMapping {
    SubnetMapping {
        availability_zone: zone.to_owned(),
        subnet_id: id.to_owned(),
    }
}

fn tag(key: &str, value: &str) -> Tag {
    Tag {
        key: key.to_owned(),
        value: value.to_owned(),
    }
}

fn must<T>(result: Result<T, StoreError>, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(error) => panic!("{what} failed: {error}"),
    }
}

fn assert_already_exists<T: fmt::Debug>(result: &Result<T, StoreError>, what: &str) {
    assert!(
        matches!(result, Err(StoreError::AlreadyExists(_))),
        "{what}: expected AlreadyExists, got {result:?}"
    );
}

fn assert_not_found<T: fmt::Debug>(result: &Result<T, StoreError>, what: &str) {
    assert!(
        matches!(result, Err(StoreError::NotFound(_))),
        "{what}: expected NotFound, got {result:?}"
    );
}
