//! Unit tests: identifiers, subnets, the hand-encoded CSR, certificate checks, paging, tags, and the
//! API operations that need no token, against a real SQLite store.

use std::sync::Arc;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, IsCa, Issuer, KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256,
};
use strongroom_keystore::{FileRootKey, RootKey};
use strongroom_keystore_pkcs11::{HsmConfig, ModuleSet, SecretSource};
use strongroom_storage::clusters::{ClusterMode, ClusterState, ClusterStore};
use strongroom_storage::sqlite::SqliteStore;
use strongroom_test_support::TempDir;
use strongroom_test_support::fixtures::{base_time, namespace};
use strongroom_types::{Tag, Timestamp};

use strongroom_keystore_pkcs11::WrappedKey;
use strongroom_storage::clusters::{
    BackupRecord, BackupState, ClusterCertificates, ClusterIdentity,
};

use crate::backup_contents::BackupContents;
use crate::clusters::{paginate, subnet_mappings};
use crate::{
    ClusterFilters, ControlPlane, CreateClusterRequest, Error, HsmSelector, certificates, csr, ids,
    tags,
};

const CLUSTER: &str = "cluster-abcdefgh234";

/// A software RSA key standing in for the HSM's cluster key: its SubjectPublicKeyInfo and a CSR for
/// `CLUSTER` signed with it, built by the same code the HSM path uses.
struct ClusterKey {
    public_key: Vec<u8>,
    csr_der: Vec<u8>,
}

fn cluster_key() -> ClusterKey {
    let key = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
    let public_key = key.public_key().as_der().unwrap().as_ref().to_vec();
    let info = csr::request_info(CLUSTER, &public_key);
    let mut signature = vec![0; key.public_modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &aws_lc_rs::rand::SystemRandom::new(),
        &info,
        &mut signature,
    )
    .unwrap();
    ClusterKey {
        public_key,
        csr_der: csr::request(&info, &signature),
    }
}

/// A self-signed test CA (`customerCA.crt`).
struct TestCa {
    params: CertificateParams,
    key: KeyPair,
    pem: String,
}

impl TestCa {
    fn new(name: &str, algorithm: &'static rcgen::SignatureAlgorithm) -> TestCa {
        let key = KeyPair::generate_for(algorithm).unwrap();
        let mut params = CertificateParams::default();
        let mut subject = DistinguishedName::new();
        subject.push(DnType::CommonName, name);
        params.distinguished_name = subject;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        TestCa {
            pem: csr::pem("CERTIFICATE", cert.der()),
            params,
            key,
        }
    }

    /// An intermediate CA signed by this one.
    fn intermediate(&self, name: &str) -> TestCa {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::default();
        let mut subject = DistinguishedName::new();
        subject.push(DnType::CommonName, name);
        params.distinguished_name = subject;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.signed_by(&key, &self.issuer()).unwrap();
        TestCa {
            pem: csr::pem("CERTIFICATE", cert.der()),
            params,
            key,
        }
    }

    fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::new(self.params.clone(), &self.key)
    }

    /// Signs a CSR as the operator would, returning the certificate PEM.
    fn sign(&self, csr_der: &[u8]) -> String {
        let request = CertificateSigningRequestParams::from_der(&csr_der.to_vec().into())
            .expect("the CSR parses and its signature verifies");
        let cert = request.signed_by(&self.issuer()).unwrap();
        csr::pem("CERTIFICATE", cert.der())
    }
}

fn now_secs() -> i64 {
    Timestamp::from_system_time(std::time::SystemTime::now()).as_secs()
}

fn invalid_message(result: Result<certificates::Checked, Error>) -> String {
    match result {
        Err(Error::InvalidRequest(message)) => message,
        other => panic!("expected InvalidRequest, got {other:?}"),
    }
}

#[test]
fn ids_have_the_cloudhsm_shapes() {
    let cluster = ids::new_cluster_id().unwrap();
    assert!(ids::is_cluster_id(&cluster), "{cluster}");
    assert_eq!(cluster.len(), "cluster-".len() + 11);
    assert!(ids::is_backup_id(&ids::new_backup_id().unwrap()));
    let hsm = ids::new_hsm_id().unwrap();
    assert!(hsm.starts_with("hsm-") && hsm.len() == 15, "{hsm}");
    let eni = ids::new_eni_id().unwrap();
    assert!(eni.starts_with("eni-") && eni.len() == 21, "{eni}");
    let ip: std::net::Ipv4Addr = ids::new_eni_ip().unwrap().parse().unwrap();
    assert_eq!(ip.octets()[0], 10);
    assert!(!ids::is_cluster_id("cluster-short"));
    assert!(
        !ids::is_cluster_id("cluster-abcdefgh189"),
        "8 and 9 are not base32"
    );
    assert!(!ids::is_cluster_id("backup-abcdefgh234"));
    assert_ne!(ids::new_cluster_id().unwrap(), cluster);
}

#[test]
fn subnets_name_their_zones() {
    let subnets = subnet_mappings(&[
        "subnet-us-east-1b".to_owned(),
        "subnet-us-east-1a".to_owned(),
    ])
    .unwrap();
    let zones: Vec<&str> = subnets
        .iter()
        .map(|s| s.availability_zone.as_str())
        .collect();
    assert_eq!(zones, ["us-east-1a", "us-east-1b"]);
    assert_eq!(subnets[0].subnet_id, "subnet-us-east-1a");
    for bad in [
        vec!["subnet-".to_owned()],
        vec!["sn-us-east-1a".to_owned()],
        vec!["subnet-US-EAST-1A".to_owned()],
        vec![
            "subnet-us-east-1a".to_owned(),
            "subnet-us-east-1a".to_owned(),
        ],
        Vec::new(),
    ] {
        assert!(
            matches!(subnet_mappings(&bad), Err(Error::InvalidRequest(_))),
            "{bad:?}"
        );
    }
}

#[test]
fn the_csr_is_a_pkcs10_request_signed_by_the_cluster_key() {
    let key = cluster_key();
    // rcgen verifies the signature while parsing.
    let request = CertificateSigningRequestParams::from_der(&key.csr_der.clone().into()).unwrap();
    let subject = format!("{:?}", request.params.distinguished_name);
    assert!(subject.contains(CLUSTER), "{subject}");
    let pem = csr::pem("CERTIFICATE REQUEST", &key.csr_der);
    assert!(pem.starts_with("-----BEGIN CERTIFICATE REQUEST-----\n"));
    assert!(pem.ends_with("-----END CERTIFICATE REQUEST-----\n"));
    assert!(pem.lines().all(|line| line.len() <= 64));
}

#[test]
fn initialization_accepts_a_certificate_issued_by_the_trust_anchor() {
    let key = cluster_key();
    for algorithm in [&PKCS_RSA_SHA256, &PKCS_ECDSA_P256_SHA256] {
        let ca = TestCa::new("customerCA", algorithm);
        let signed = ca.sign(&key.csr_der);
        let checked = certificates::check(&signed, &ca.pem, &key.public_key, now_secs()).unwrap();
        assert!(!checked.cluster_certificate.is_empty());
        assert!(!checked.trust_anchor.is_empty());
    }
}

#[test]
fn initialization_accepts_intermediates_after_the_cluster_certificate() {
    let key = cluster_key();
    let root = TestCa::new("root", &PKCS_RSA_SHA256);
    let intermediate = root.intermediate("issuing CA");
    let chain = format!("{}{}", intermediate.sign(&key.csr_der), intermediate.pem);
    certificates::check(&chain, &root.pem, &key.public_key, now_secs()).unwrap();
    // Without the intermediate the chain does not reach the anchor.
    let message = invalid_message(certificates::check(
        &intermediate.sign(&key.csr_der),
        &root.pem,
        &key.public_key,
        now_secs(),
    ));
    assert!(message.contains("issued by"), "{message}");
}

#[test]
fn initialization_refuses_what_does_not_chain() {
    let key = cluster_key();
    let ca = TestCa::new("customerCA", &PKCS_RSA_SHA256);
    let signed = ca.sign(&key.csr_der);

    let other_ca = TestCa::new("someone else", &PKCS_RSA_SHA256);
    let message = invalid_message(certificates::check(
        &signed,
        &other_ca.pem,
        &key.public_key,
        now_secs(),
    ));
    assert!(message.contains("issued by 'CN=customerCA'"), "{message}");

    let same_name = TestCa::new("customerCA", &PKCS_RSA_SHA256);
    let message = invalid_message(certificates::check(
        &signed,
        &same_name.pem,
        &key.public_key,
        now_secs(),
    ));
    assert!(message.contains("does not verify"), "{message}");

    let intermediate = ca.intermediate("issuing CA");
    let message = invalid_message(certificates::check(
        &intermediate.sign(&key.csr_der),
        &intermediate.pem,
        &key.public_key,
        now_secs(),
    ));
    assert!(message.contains("self-signed"), "{message}");

    let other_key = cluster_key();
    let message = invalid_message(certificates::check(
        &ca.sign(&other_key.csr_der),
        &ca.pem,
        &key.public_key,
        now_secs(),
    ));
    assert!(message.contains("not this cluster's key"), "{message}");

    let message = invalid_message(certificates::check(
        "not a certificate",
        &ca.pem,
        &key.public_key,
        now_secs(),
    ));
    assert!(message.contains("no PEM certificate"), "{message}");

    let two_anchors = format!("{}{}", ca.pem, other_ca.pem);
    let message = invalid_message(certificates::check(
        &signed,
        &two_anchors,
        &key.public_key,
        now_secs(),
    ));
    assert!(message.contains("exactly one certificate"), "{message}");

    // rcgen's default validity ends in 4096; a clock past it finds the anchor expired.
    let far_future = Timestamp::from_millis(4_200 * 365 * 86_400_000).as_secs();
    let message = invalid_message(certificates::check(
        &signed,
        &ca.pem,
        &key.public_key,
        far_future,
    ));
    assert!(message.contains("not valid now"), "{message}");
}

#[test]
fn a_trust_anchor_that_is_not_a_ca_is_refused() {
    let key = cluster_key();
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, "leaf");
    params.is_ca = IsCa::ExplicitNoCa;
    let anchor = params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(params, &ca_key);
    let request = CertificateSigningRequestParams::from_der(&key.csr_der.clone().into()).unwrap();
    let signed = request.signed_by(&issuer).unwrap();
    let message = invalid_message(certificates::check(
        &csr::pem("CERTIFICATE", signed.der()),
        &csr::pem("CERTIFICATE", anchor.der()),
        &key.public_key,
        now_secs(),
    ));
    assert!(message.contains("not a CA"), "{message}");
}

#[test]
fn pages_resume_after_the_token() {
    let items: Vec<String> = (1..=5).map(|n| format!("item-{n}")).collect();
    let first = paginate(items.clone(), |s| s.as_str(), None, Some(2), 25).unwrap();
    assert_eq!(first.items, ["item-1", "item-2"]);
    assert_eq!(first.next_token.as_deref(), Some("item-2"));
    let second = paginate(items.clone(), |s| s.as_str(), Some("item-2"), Some(2), 25).unwrap();
    assert_eq!(second.items, ["item-3", "item-4"]);
    let last = paginate(items.clone(), |s| s.as_str(), Some("item-4"), Some(2), 25).unwrap();
    assert_eq!(last.items, ["item-5"]);
    assert_eq!(last.next_token, None);
    let capped = paginate(items.clone(), |s| s.as_str(), None, Some(100), 3).unwrap();
    assert_eq!(capped.items.len(), 3);
    assert!(paginate(items.clone(), |s| s.as_str(), Some("gone"), None, 25).is_err());
    assert!(paginate(items, |s| s.as_str(), None, Some(0), 25).is_err());
}

#[test]
fn tags_merge_in_place_and_append() {
    let existing = vec![tag("a", "1"), tag("b", "2")];
    let merged = tags::merge(&existing, &[tag("c", "3"), tag("a", "9"), tag("c", "4")]);
    assert_eq!(merged, vec![tag("a", "9"), tag("b", "2"), tag("c", "4")]);
    assert!(matches!(
        tags::check_new_tags(&[tag("aws:owner", "x")]),
        Err(Error::Tag(_))
    ));
}

fn tag(key: &str, value: &str) -> Tag {
    Tag {
        key: key.to_owned(),
        value: value.to_owned(),
    }
}

/// A control plane on a fresh database, declaring HSMs that need no token until one is assigned.
fn control_plane(dir: &TempDir) -> ControlPlane {
    let store: Arc<dyn ClusterStore> =
        Arc::new(SqliteStore::open(&dir.path().join("strongroom.db")).unwrap());
    let declared = vec![HsmConfig {
        id: "token-a".to_owned(),
        module: "/nonexistent/libpkcs11.so".into(),
        token_label: "token-a".to_owned(),
        availability_zone: "us-east-1a".to_owned(),
        so_pin: SecretSource::Env("STRONGROOM_TEST_UNUSED_SO_PIN".to_owned()),
    }];
    let root_key: Arc<dyn RootKey> =
        Arc::new(FileRootKey::open_or_create(&dir.path().join("root.key")).unwrap());
    ControlPlane::new(
        store,
        declared,
        ModuleSet::new(),
        Arc::new(base_time),
        root_key,
    )
    .unwrap()
}

fn create_request(subnets: &[&str]) -> CreateClusterRequest {
    CreateClusterRequest {
        hsm_type: "hsm2m.medium".to_owned(),
        subnet_ids: subnets.iter().map(|s| (*s).to_owned()).collect(),
        tags: vec![tag("team", "blue")],
        ..CreateClusterRequest::default()
    }
}

#[tokio::test]
async fn clusters_are_created_listed_tagged_and_deleted() {
    let dir = TempDir::new("cloudhsm-clusters");
    let plane = control_plane(&dir);
    let ns = namespace("111122223333", "us-east-1");
    let other = namespace("444455556666", "us-east-1");

    let created = plane
        .create_cluster(
            &ns,
            create_request(&["subnet-us-east-1a", "subnet-us-east-1b"]),
        )
        .await
        .unwrap();
    let record = &created.record;
    assert_eq!(record.state, ClusterState::Uninitialized);
    assert_eq!(record.mode, ClusterMode::Fips);
    assert_eq!(record.backup_retention_days, 90);
    assert_eq!(record.created, base_time());
    assert!(record.security_group.starts_with("sg-"));
    let id = record.cluster_id.clone();

    let mut more = Vec::new();
    for _ in 0..3 {
        let cluster = plane
            .create_cluster(&ns, create_request(&["subnet-us-east-1a"]))
            .await
            .unwrap();
        more.push(cluster.record.cluster_id);
    }
    let mut expected: Vec<String> = more.iter().chain([&id]).cloned().collect();
    expected.sort();
    let mut seen = Vec::new();
    let mut token = None;
    loop {
        let page = plane
            .describe_clusters(&ns, &ClusterFilters::default(), token.as_deref(), Some(3))
            .await
            .unwrap();
        seen.extend(page.items.into_iter().map(|c| c.record.cluster_id));
        match page.next_token {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    assert_eq!(
        seen, expected,
        "pages cover every cluster once, in id order"
    );
    let filters = ClusterFilters::parse(&[
        ("clusterIds".to_owned(), vec![id.clone()]),
        ("states".to_owned(), vec!["UNINITIALIZED".to_owned()]),
        ("vpcIds".to_owned(), vec![crate::VPC_ID.to_owned()]),
    ])
    .unwrap();
    let page = plane
        .describe_clusters(&ns, &filters, None, None)
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    let active_only =
        ClusterFilters::parse(&[("states".to_owned(), vec!["ACTIVE".to_owned()])]).unwrap();
    assert!(
        plane
            .describe_clusters(&ns, &active_only, None, None)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(ClusterFilters::parse(&[("names".to_owned(), Vec::new())]).is_err());
    assert!(
        plane
            .describe_clusters(&other, &ClusterFilters::default(), None, None)
            .await
            .unwrap()
            .items
            .is_empty(),
        "another account sees none of them"
    );

    plane
        .tag_resource(&ns, &id, &[tag("env", "prod"), tag("team", "red")])
        .await
        .unwrap();
    plane
        .untag_resource(&ns, &id, &["env".to_owned()])
        .await
        .unwrap();
    let tags = plane.list_tags(&ns, &id, None, None).await.unwrap();
    assert_eq!(tags.items, vec![tag("team", "red")]);
    assert!(matches!(
        plane.list_tags(&other, &id, None, None).await,
        Err(Error::ResourceNotFound(_))
    ));
    assert!(matches!(
        plane.list_tags(&ns, "vpc-1234", None, None).await,
        Err(Error::InvalidRequest(_))
    ));

    let deleted = plane.delete_cluster(&ns, &id).await.unwrap();
    assert_eq!(deleted.record.state, ClusterState::Deleted);
    assert!(matches!(
        plane.delete_cluster(&ns, &id).await,
        Err(Error::ResourceNotFound(_))
    ));
}

#[tokio::test]
async fn create_cluster_explains_what_it_refuses() {
    let dir = TempDir::new("cloudhsm-refusals");
    let plane = control_plane(&dir);
    let ns = namespace("111122223333", "us-east-1");
    let cases: Vec<(CreateClusterRequest, &str)> = vec![
        (
            CreateClusterRequest {
                hsm_type: "hsm9.huge".to_owned(),
                ..create_request(&["subnet-us-east-1a"])
            },
            "HsmType",
        ),
        (
            CreateClusterRequest {
                hsm_type: "hsm1.medium".to_owned(),
                mode: Some(ClusterMode::NonFips),
                ..create_request(&["subnet-us-east-1a"])
            },
            "FIPS",
        ),
        (
            CreateClusterRequest {
                backup_retention_value: Some("3".to_owned()),
                ..create_request(&["subnet-us-east-1a"])
            },
            "7 to 379",
        ),
        (
            CreateClusterRequest {
                source_backup_id: Some("not-a-backup".to_owned()),
                ..create_request(&["subnet-us-east-1a"])
            },
            "SourceBackupId",
        ),
        (create_request(&["subnet-0123abcd"]), "subnet-<zone>"),
    ];
    for (request, expected) in cases {
        match plane.create_cluster(&ns, request).await {
            Err(Error::InvalidRequest(message)) => {
                assert!(message.contains(expected), "{message}")
            }
            other => panic!("expected InvalidRequest mentioning {expected}, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn hsms_come_only_from_declared_free_tokens_in_the_zone() {
    let dir = TempDir::new("cloudhsm-hsms");
    let plane = control_plane(&dir);
    let ns = namespace("111122223333", "us-east-1");
    let cluster = plane
        .create_cluster(
            &ns,
            create_request(&["subnet-us-east-1a", "subnet-us-east-1b"]),
        )
        .await
        .unwrap()
        .record
        .cluster_id;
    let message = match plane.create_hsm(&ns, &cluster, "us-east-1b", None).await {
        Err(Error::InvalidRequest(message)) => message,
        other => panic!("expected InvalidRequest, got {other:?}"),
    };
    assert!(
        message.contains("No HSM is declared in us-east-1b"),
        "{message}"
    );
    let message = match plane.create_hsm(&ns, &cluster, "us-east-1c", None).await {
        Err(Error::InvalidRequest(message)) => message,
        other => panic!("expected InvalidRequest, got {other:?}"),
    };
    assert!(message.contains("no subnet in us-east-1c"), "{message}");
    // The declared token's module does not exist: the claim is released again.
    assert!(matches!(
        plane.create_hsm(&ns, &cluster, "us-east-1a", None).await,
        Err(Error::Hsm(_))
    ));
    assert!(plane.hsms_of(&cluster).await.unwrap().is_empty());
    assert!(matches!(
        plane
            .delete_hsm(
                &ns,
                &cluster,
                &HsmSelector::HsmId("hsm-abcdefghijk".to_owned())
            )
            .await,
        Err(Error::ResourceNotFound(_))
    ));
    let initialized = plane.initialize_cluster(&ns, &cluster, "x", "y").await;
    assert!(
        matches!(&initialized, Err(Error::InvalidRequest(m)) if m.contains("no CSR")),
        "{initialized:?}"
    );
    // Activation and users wait for initialization.
    let admin = strongroom_keystore_pkcs11::Pin::new("password1".to_owned());
    assert!(matches!(
        plane.activate(&ns, &cluster, &admin).await,
        Err(Error::InvalidRequest(_))
    ));
    assert!(matches!(
        plane
            .create_crypto_user(&ns, &cluster, &admin, "kmsuser", &admin)
            .await,
        Err(Error::InvalidRequest(_))
    ));
    let other = namespace("444455556666", "us-east-1");
    assert!(matches!(
        plane.users(&other, &cluster).await,
        Err(Error::ResourceNotFound(_))
    ));
    let users = plane.users(&ns, &cluster).await.unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].role, "unactivated-admin");
}

#[tokio::test]
async fn backups_are_listed_deleted_and_restored() {
    let dir = TempDir::new("cloudhsm-backups");
    let plane = control_plane(&dir);
    let ns = namespace("111122223333", "us-east-1");
    let cluster = plane
        .create_cluster(&ns, create_request(&["subnet-us-east-1a"]))
        .await
        .unwrap()
        .record;
    plane.record_backup(&cluster).await.unwrap();
    plane.record_backup(&cluster).await.unwrap();
    let all = plane
        .describe_backups(&ns, &[], true, None, None)
        .await
        .unwrap();
    assert_eq!(all.items.len(), 2);
    let id = all.items[0].backup_id.clone();
    let newest_first = plane
        .describe_backups(&ns, &[], false, None, Some(1))
        .await
        .unwrap();
    assert_eq!(newest_first.items[0].backup_id, all.items[1].backup_id);
    assert!(newest_first.next_token.is_some());

    let deleted = plane.delete_backup(&ns, &id).await.unwrap();
    assert_eq!(deleted.state.as_str(), "PENDING_DELETION");
    let pending = plane
        .describe_backups(
            &ns,
            &[("states".to_owned(), vec!["PENDING_DELETION".to_owned()])],
            true,
            None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(pending.items.len(), 1);
    plane.restore_backup(&ns, &id).await.unwrap();
    let kept = plane
        .modify_backup_attributes(&ns, &id, true)
        .await
        .unwrap();
    assert!(kept.never_expires);
    plane
        .tag_resource(&ns, &id, &[tag("k", "v")])
        .await
        .unwrap();
    let by_cluster = plane
        .describe_backups(
            &ns,
            &[("clusterIds".to_owned(), vec![cluster.cluster_id.clone()])],
            true,
            None,
            None,
        )
        .await
        .unwrap();
    assert_eq!(by_cluster.items.len(), 2);
    assert_eq!(by_cluster.items[0].tags, vec![tag("k", "v")]);
}

/// Contents of a backup of an active cluster with kmsuser and two keys, as an HSM would have exported
/// them (the wrapped bytes are opaque here).
fn contents_with_keys(cluster_id: &str) -> BackupContents {
    BackupContents {
        cluster_id: cluster_id.to_owned(),
        activated: true,
        crypto_users: vec!["kmsuser".to_owned()],
        identity: Some(ClusterIdentity {
            key_label: format!("{cluster_id} identity"),
            public_key: vec![0x30, 0x82, 0x01, 0x0a],
            csr_pem:
                "-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n"
                    .to_owned(),
        }),
        certificates: Some(ClusterCertificates {
            cluster_certificate_pem: "cluster certificate".to_owned(),
            trust_anchor_pem: "trust anchor".to_owned(),
        }),
        wrapping_key_id: Some(vec![7; 16]),
        keys: Some(vec![
            WrappedKey {
                label: "arn:aws:kms:us-east-1:111122223333:key/one".to_owned(),
                wrapped: vec![1; 40],
            },
            WrappedKey {
                label: "arn:aws:kms:us-east-1:111122223333:key/two".to_owned(),
                wrapped: vec![2; 40],
            },
        ]),
    }
}

/// Stores a READY backup of `cluster_id` holding `contents`, sealed as the control plane seals them.
async fn store_backup(
    plane: &ControlPlane,
    ns: &strongroom_types::Namespace,
    backup_id: &str,
    contents: Option<&BackupContents>,
) {
    let sealed = contents.map(|c| c.seal(plane.root_key.as_ref(), backup_id).unwrap());
    let backup = BackupRecord {
        backup_id: backup_id.to_owned(),
        cluster_id: CLUSTER.to_owned(),
        namespace: ns.clone(),
        state: BackupState::Ready,
        hsm_type: "hsm2m.medium".to_owned(),
        mode: ClusterMode::Fips,
        never_expires: false,
        created: base_time(),
        deleted: None,
        tags: Vec::new(),
        sealed_contents: sealed,
    };
    plane.store.insert_backup(&backup).await.unwrap();
}

#[test]
fn backup_contents_round_trip_and_open_only_for_their_backup() {
    let contents = contents_with_keys(CLUSTER);
    let encoded = contents.encode();
    assert_eq!(BackupContents::decode(&encoded), Some(contents.clone()));
    assert_eq!(BackupContents::decode(&encoded[..encoded.len() - 1]), None);
    let mut longer = encoded.clone();
    longer.push(0);
    assert_eq!(BackupContents::decode(&longer), None, "trailing bytes");
    assert_eq!(BackupContents::decode(b"something else"), None);
    let empty = BackupContents {
        identity: None,
        certificates: None,
        wrapping_key_id: None,
        keys: None,
        crypto_users: Vec::new(),
        activated: false,
        ..contents.clone()
    };
    assert_eq!(BackupContents::decode(&empty.encode()), Some(empty));

    let dir = TempDir::new("cloudhsm-backup-seal");
    let root_key = FileRootKey::open_or_create(&dir.path().join("root.key")).unwrap();
    let sealed = contents.seal(&root_key, "backup-aaaaaaaaaaa").unwrap();
    // Sealed: neither the labels nor the wrapped keys appear in what is stored.
    assert!(
        !sealed
            .windows(b"key/one".len())
            .any(|window| window == b"key/one")
    );
    assert!(!sealed.windows(40).any(|window| window == [1; 40]));
    assert_eq!(
        BackupContents::open(&root_key, "backup-aaaaaaaaaaa", &sealed).unwrap(),
        contents
    );
    // Bound to its backup: another record's id does not open it.
    assert!(matches!(
        BackupContents::open(&root_key, "backup-bbbbbbbbbbb", &sealed),
        Err(Error::Internal(_))
    ));
}

#[tokio::test]
async fn clusters_are_created_from_backups_that_hold_keys() {
    let dir = TempDir::new("cloudhsm-restore");
    let plane = control_plane(&dir);
    let ns = namespace("111122223333", "us-east-1");
    let other = namespace("444455556666", "us-east-1");
    let contents = contents_with_keys(CLUSTER);
    store_backup(&plane, &ns, "backup-aaaaaaaaaaa", Some(&contents)).await;
    store_backup(&plane, &other, "backup-ccccccccccc", Some(&contents)).await;

    let restore = |source: &str| CreateClusterRequest {
        source_backup_id: Some(source.to_owned()),
        ..create_request(&["subnet-us-east-1a", "subnet-us-east-1b"])
    };
    let created = plane
        .create_cluster(&ns, restore("backup-aaaaaaaaaaa"))
        .await
        .unwrap();
    let record = created.record;
    assert_ne!(record.cluster_id, CLUSTER);
    assert_eq!(record.state, ClusterState::Active, "no InitializeCluster");
    assert_eq!(
        record.source_backup_id.as_deref(),
        Some("backup-aaaaaaaaaaa")
    );
    assert_eq!(record.certificates, contents.certificates);
    assert_eq!(record.identity, contents.identity);
    assert_eq!(record.crypto_users, vec!["kmsuser".to_owned()]);
    assert_eq!(record.mode, ClusterMode::Fips, "the backup's mode");
    let users = plane.users(&ns, &record.cluster_id).await.unwrap();
    assert_eq!(users[0].role, "admin", "the admin was activated");
    assert_eq!(users[1].username, "kmsuser");
    let listed = plane
        .describe_clusters(&ns, &ClusterFilters::default(), None, None)
        .await
        .unwrap();
    assert_eq!(listed.items[0].record, record);

    // By ARN, of this account and Region.
    let by_arn = plane
        .create_cluster(
            &ns,
            restore("arn:aws:cloudhsm:us-east-1:111122223333:backup/backup-aaaaaaaaaaa"),
        )
        .await
        .unwrap();
    assert_eq!(
        by_arn.record.source_backup_id.as_deref(),
        Some("backup-aaaaaaaaaaa")
    );

    // Unknown backups, and backups of another account, by id or by ARN.
    for source in [
        "backup-zzzzzzzzzzz",
        "backup-ccccccccccc",
        "arn:aws:cloudhsm:us-east-1:444455556666:backup/backup-ccccccccccc",
        "arn:aws:cloudhsm:eu-west-1:111122223333:backup/backup-aaaaaaaaaaa",
    ] {
        let refused = plane.create_cluster(&ns, restore(source)).await;
        assert!(
            matches!(&refused, Err(Error::ResourceNotFound(m)) if m.contains("does not exist")),
            "{source}: {refused:?}"
        );
    }
    // Another HSM type or mode than the backup's.
    let refused = plane
        .create_cluster(
            &ns,
            CreateClusterRequest {
                hsm_type: "hsm1.medium".to_owned(),
                ..restore("backup-aaaaaaaaaaa")
            },
        )
        .await;
    assert!(
        matches!(&refused, Err(Error::InvalidRequest(m)) if m.contains("HsmType hsm2m.medium")),
        "{refused:?}"
    );
    let refused = plane
        .create_cluster(
            &ns,
            CreateClusterRequest {
                mode: Some(ClusterMode::NonFips),
                ..restore("backup-aaaaaaaaaaa")
            },
        )
        .await;
    assert!(
        matches!(&refused, Err(Error::InvalidRequest(m)) if m.contains("own mode")),
        "{refused:?}"
    );
    // A deleted backup restores once it is restored itself.
    plane
        .delete_backup(&ns, "backup-aaaaaaaaaaa")
        .await
        .unwrap();
    let refused = plane
        .create_cluster(&ns, restore("backup-aaaaaaaaaaa"))
        .await;
    assert!(
        matches!(&refused, Err(Error::InvalidRequest(m)) if m.contains("PENDING_DELETION")),
        "{refused:?}"
    );
    plane
        .restore_backup(&ns, "backup-aaaaaaaaaaa")
        .await
        .unwrap();
    plane
        .create_cluster(&ns, restore("backup-aaaaaaaaaaa"))
        .await
        .unwrap();
}

#[tokio::test]
async fn backups_without_keys_are_not_restored() {
    let dir = TempDir::new("cloudhsm-restore-refusals");
    let plane = control_plane(&dir);
    let ns = namespace("111122223333", "us-east-1");
    let restore = |source: &str| CreateClusterRequest {
        source_backup_id: Some(source.to_owned()),
        ..create_request(&["subnet-us-east-1a"])
    };
    // A backup from before backups held anything.
    store_backup(&plane, &ns, "backup-aaaaaaaaaaa", None).await;
    let refused = plane
        .create_cluster(&ns, restore("backup-aaaaaaaaaaa"))
        .await;
    assert!(
        matches!(&refused, Err(Error::InvalidRequest(m)) if m.contains("metadata only")),
        "{refused:?}"
    );
    // One taken while no HSM had the crypto user logged in: users and certificates, but no keys.
    let without_keys = BackupContents {
        keys: None,
        ..contents_with_keys(CLUSTER)
    };
    store_backup(&plane, &ns, "backup-bbbbbbbbbbb", Some(&without_keys)).await;
    let refused = plane
        .create_cluster(&ns, restore("backup-bbbbbbbbbbb"))
        .await;
    assert!(
        matches!(&refused, Err(Error::InvalidRequest(m)) if m.contains("not its keys")),
        "{refused:?}"
    );
    // One the control plane took of a cluster not activated yet: nothing to restore.
    let cluster = plane
        .create_cluster(&ns, create_request(&["subnet-us-east-1a"]))
        .await
        .unwrap()
        .record;
    plane.record_backup(&cluster).await.unwrap();
    let filter = [("clusterIds".to_owned(), vec![cluster.cluster_id.clone()])];
    let taken = plane
        .describe_backups(&ns, &filter, false, None, Some(1))
        .await
        .unwrap()
        .items
        .remove(0);
    let opened = plane.backup_contents(&taken).unwrap();
    assert!(!opened.activated);
    assert_eq!(opened.keys, Some(Vec::new()));
    assert_eq!(opened.cluster_id, cluster.cluster_id);
    let refused = plane.create_cluster(&ns, restore(&taken.backup_id)).await;
    assert!(
        matches!(&refused, Err(Error::InvalidRequest(m)) if m.contains("before cluster")),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_deleted_clusters_certificate_is_read_from_its_backups() {
    let dir = TempDir::new("cloudhsm-lineage");
    let plane = control_plane(&dir);
    let ns = namespace("111122223333", "us-east-1");
    // No cluster CLUSTER exists (it was deleted); a backup of metadata only says nothing of it.
    store_backup(&plane, &ns, "backup-aaaaaaaaaaa", None).await;
    assert_eq!(plane.cluster_certificate(&ns, CLUSTER).await.unwrap(), None);
    store_backup(
        &plane,
        &ns,
        "backup-bbbbbbbbbbb",
        Some(&contents_with_keys(CLUSTER)),
    )
    .await;
    assert_eq!(
        plane.cluster_certificate(&ns, CLUSTER).await.unwrap(),
        Some("cluster certificate".to_owned())
    );
    assert_eq!(
        plane
            .cluster_certificate(&namespace("444455556666", "us-east-1"), CLUSTER)
            .await
            .unwrap(),
        None,
        "another account's backups are not looked at"
    );
    assert_eq!(
        plane
            .cluster_certificate(&ns, "cluster-zzzzzzzzzzz")
            .await
            .unwrap(),
        None
    );
    // A cluster that exists answers with its own certificate, here none yet (not initialized).
    let live = plane
        .create_cluster(&ns, create_request(&["subnet-us-east-1a"]))
        .await
        .unwrap()
        .record;
    assert_eq!(
        plane
            .cluster_certificate(&ns, &live.cluster_id)
            .await
            .unwrap(),
        None
    );
}
