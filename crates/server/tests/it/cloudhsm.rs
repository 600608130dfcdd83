//! The CloudHSM v2 API and the `strongroom hsm` commands, driven with the AWS SDK for Rust
//! (`aws-sdk-cloudhsmv2`, which speaks AWS JSON 1.1) against a real server whose declared HSMs are
//! SoftHSM tokens.
//!
//! SoftHSM reads `SOFTHSM2_CONF` once per process and a PKCS#11 library is initialized once per
//! process, so each test that touches tokens re-runs this test binary, filtered to itself, with a
//! private SoftHSM configuration (as `strongroom-keystore-pkcs11`'s tests do); the child initializes
//! the tokens, runs the server in-process, and runs the `strongroom hsm` commands as subprocesses that
//! talk to that server. The test then looks at the tokens itself, in the server's process, which is
//! the only process that works on them.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use aws_credential_types::Credentials;
use aws_sdk_cloudhsmv2::Client;
use aws_sdk_cloudhsmv2::config::retry::RetryConfig;
use aws_sdk_cloudhsmv2::config::timeout::TimeoutConfig;
use aws_sdk_cloudhsmv2::config::{BehaviorVersion, Region};
use aws_sdk_cloudhsmv2::types::{
    BackupRetentionPolicy, BackupRetentionType, ClusterState, HsmState, Tag,
};
use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, IsCa, Issuer, KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256,
};
use strongroom_keystore_pkcs11::{
    Cluster as Pkcs11Cluster, ClusterOptions, HsmConfig, ModuleSet, Pin, SecretSource,
};
use strongroom_server::{Config, DEFAULT_ROOT_KEY_LABEL, Pkcs11RootKey, RootKeyConfig};

use crate::harness::{TestServer, create_key, decrypt, encrypt, failure};

/// Where Debian's `softhsm2` package puts the module; `cargo xtask ci` installs it.
pub(crate) const SOFTHSM: &str = "/usr/lib/softhsm/libsofthsm2.so";
/// Set in the child process to the test's private directory.
const CHILD_DIR: &str = "STRONGROOM_CLOUDHSM_TEST_DIR";
const SO_PIN: &str = "officer-Passw0rd";
pub(crate) const KMSUSER_PASSWORD: &str = "kmsuser-Passw0rd";
/// The declared HSMs: token label and availability zone. Two zones, one of them with two tokens, and
/// a fourth token for the HSM added after the crypto user.
const TOKENS: [(&str, &str); 4] = [
    ("hsm-a", "us-east-1a"),
    ("hsm-b", "us-east-1b"),
    ("hsm-c", "us-east-1a"),
    ("hsm-d", "us-east-1b"),
];
pub(crate) const SUBNETS: [&str; 2] = ["subnet-us-east-1a", "subnet-us-east-1b"];

/// Runs `body` in a child process with a private SoftHSM, or starts that child.
pub(crate) fn with_softhsm<F, Fut>(test_path: &str, body: F)
where
    F: FnOnce(SoftHsm) -> Fut,
    Fut: Future<Output = ()>,
{
    if let Some(dir) = std::env::var_os(CHILD_DIR) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(body(SoftHsm::new(PathBuf::from(dir))));
        return;
    }
    assert!(
        Path::new(SOFTHSM).exists(),
        "SoftHSM is not installed: run `cargo xtask ci` or `apt-get install softhsm2`"
    );
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("softhsm-cloudhsm")
        .join(format!(
            "{}-{}",
            test_path.replace("::", "-"),
            std::process::id()
        ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("tokens")).expect("create the token directory");
    let config = dir.join("softhsm2.conf");
    std::fs::write(
        &config,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
            dir.join("tokens").display()
        ),
    )
    .expect("write the SoftHSM configuration");
    let output = Command::new(std::env::current_exe().expect("the test binary"))
        .args([test_path, "--exact", "--nocapture", "--test-threads=1"])
        .env("SOFTHSM2_CONF", &config)
        .env(CHILD_DIR, &dir)
        .output()
        .expect("run the test in a child process");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the test failed in its SoftHSM child process:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("1 passed"),
        "the child process ran no test:\n{stdout}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The child's private SoftHSM with four fresh tokens (no crypto user), their declarations, and the
/// server's data directory.
pub(crate) struct SoftHsm {
    dir: PathBuf,
    data_dir: PathBuf,
    pub(crate) hsms: Vec<HsmConfig>,
    // Kept so that the module stays loaded for the whole test.
    pub(crate) modules: ModuleSet,
}

impl SoftHsm {
    fn new(dir: PathBuf) -> SoftHsm {
        let so_pin_file = dir.join("so.pin");
        std::fs::write(&so_pin_file, format!("{SO_PIN}\n")).expect("write the SO PIN");
        std::fs::write(dir.join("kmsuser.pw"), KMSUSER_PASSWORD).expect("write the password");
        std::fs::write(dir.join("wrong.pw"), "not-the-SO-pin").expect("write a wrong password");
        let modules = ModuleSet::new();
        let module = modules.load(Path::new(SOFTHSM)).expect("load SoftHSM");
        let so_pin = Pin::new(SO_PIN.to_owned());
        let mut hsms = Vec::new();
        let data_dir = dir.join("data");
        for (label, zone) in TOKENS {
            module
                .initialize_token(&so_pin, label)
                .expect("initialize a token");
            hsms.push(HsmConfig {
                id: label.to_owned(),
                module: PathBuf::from(SOFTHSM),
                token_label: label.to_owned(),
                availability_zone: zone.to_owned(),
                so_pin: SecretSource::File(so_pin_file.clone()),
            });
        }
        std::fs::create_dir_all(&data_dir).expect("create the data directory");
        SoftHsm {
            dir,
            data_dir,
            hsms,
            modules,
        }
    }

    /// The token directories, one per SoftHSM token; removing one takes that HSM away.
    pub(crate) fn token_dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(self.dir.join("tokens"))
            .expect("the token directory")
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| path.is_dir())
            .collect();
        dirs.sort();
        dirs
    }

    /// The directory of the token labelled `label`: SoftHSM names token directories by UUID and keeps
    /// the label, padded to 32 bytes, in each one's `token.object`.
    pub(crate) fn token_dir(&self, label: &str) -> PathBuf {
        let padded = format!("{label:<32}");
        self.token_dirs()
            .into_iter()
            .find(|dir| {
                std::fs::read(dir.join("token.object")).is_ok_and(|bytes| {
                    bytes
                        .windows(padded.len())
                        .any(|window| window == padded.as_bytes())
                })
            })
            .unwrap_or_else(|| panic!("no token directory holds token {label}"))
    }

    /// A server over the declared HSMs, loading SoftHSM through this process's module set, so that the
    /// test can inspect the tokens and inject faults into them.
    pub(crate) async fn server(&self) -> TestServer {
        self.server_with(|_| {}).await
    }

    /// Like [`SoftHsm::server`], after `configure` has adjusted the configuration.
    pub(crate) async fn server_with(&self, configure: impl FnOnce(&mut Config)) -> TestServer {
        let hsms = self.hsms.clone();
        let modules = self.modules.clone();
        TestServer::start_in(&self.data_dir, move |config| {
            config.hsms = hsms;
            config.hsm_modules = modules;
            configure(config);
        })
        .await
    }

    /// The SoftHSM module, as the server loaded it, to inject faults into its tokens.
    pub(crate) fn module(&self) -> strongroom_keystore_pkcs11::Module {
        self.modules
            .load(Path::new(SOFTHSM))
            .expect("SoftHSM is loaded")
    }

    /// Runs `strongroom hsm <args>` against `server` as the default dev-mode root, and returns whether
    /// it succeeded and its output.
    pub(crate) async fn hsm_command(&self, server: &TestServer, args: &[&str]) -> (bool, String) {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_strongroom"))
            .arg("hsm")
            .args(args)
            .arg("--endpoint")
            .arg(server.endpoint())
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("STRONGROOM_LOG", "warn")
            .output()
            .await
            .expect("run strongroom hsm");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), text)
    }

    pub(crate) fn file(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

/// A CloudHSM v2 client for the server, as the default dev-mode root, without retries.
pub(crate) fn client(server: &TestServer) -> Client {
    let credentials = Credentials::new("test", "test", None, None, "strongroom-it");
    let config = aws_sdk_cloudhsmv2::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(credentials)
        .endpoint_url(server.endpoint())
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .operation_timeout(Duration::from_secs(60))
                .build(),
        )
        .build();
    Client::from_conf(config)
}

/// The operator's CA: a self-signed root, as `customerCA.crt` in the CloudHSM guide.
pub(crate) struct CustomerCa {
    params: CertificateParams,
    key: KeyPair,
    pub(crate) pem: String,
}

impl CustomerCa {
    pub(crate) fn new(name: &str) -> CustomerCa {
        let key = KeyPair::generate_for(&PKCS_RSA_SHA256).expect("an RSA key");
        let mut params = CertificateParams::default();
        let mut subject = DistinguishedName::new();
        subject.push(DnType::CommonName, name);
        params.distinguished_name = subject;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).expect("a self-signed CA");
        CustomerCa {
            pem: pem(cert.der()),
            params,
            key,
        }
    }

    /// Signs the cluster CSR (PEM), checking its signature on the way, as `openssl x509 -req` does.
    pub(crate) fn sign(&self, csr_pem: &str) -> String {
        let der = pem_body(csr_pem, "CERTIFICATE REQUEST");
        let request = CertificateSigningRequestParams::from_der(&der.into())
            .expect("the cluster CSR parses and its signature verifies");
        let issuer = Issuer::new(self.params.clone(), &self.key);
        pem(request.signed_by(&issuer).expect("sign the CSR").der())
    }
}

fn pem(der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|chunk| std::str::from_utf8(chunk).expect("base64 is ASCII"))
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

pub(crate) fn pem_body(text: &str, label: &str) -> Vec<u8> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin).expect("a BEGIN line") + begin.len();
    let stop = text.find(&end).expect("an END line");
    let body: String = text[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("valid base64")
}

pub(crate) async fn create_cluster(client: &Client) -> String {
    let created = client
        .create_cluster()
        .hsm_type("hsm2m.medium")
        .set_subnet_ids(Some(SUBNETS.iter().map(|s| (*s).to_owned()).collect()))
        .tag_list(
            Tag::builder()
                .key("team")
                .value("keys")
                .build()
                .expect("a tag"),
        )
        .send()
        .await
        .expect("CreateCluster succeeds");
    let cluster = created
        .cluster()
        .expect("CreateCluster returns the cluster");
    assert_eq!(cluster.state(), Some(&ClusterState::Uninitialized));
    cluster.cluster_id().expect("a cluster id").to_owned()
}

pub(crate) async fn create_hsm(
    client: &Client,
    cluster: &str,
    zone: &str,
) -> aws_sdk_cloudhsmv2::types::Hsm {
    client
        .create_hsm()
        .cluster_id(cluster)
        .availability_zone(zone)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateHsm in {zone} succeeds: {e:?}"))
        .hsm()
        .expect("CreateHsm returns the HSM")
        .clone()
}

pub(crate) async fn describe(client: &Client, cluster: &str) -> aws_sdk_cloudhsmv2::types::Cluster {
    let described = client
        .describe_clusters()
        .filters("clusterIds", vec![cluster.to_owned()])
        .send()
        .await
        .expect("DescribeClusters succeeds");
    let [found] = described.clusters() else {
        panic!("one cluster matches: {described:?}");
    };
    found.clone()
}

#[test]
fn a_cluster_is_brought_up_on_softhsm_and_used_by_its_crypto_user() {
    with_softhsm(
        "cloudhsm::a_cluster_is_brought_up_on_softhsm_and_used_by_its_crypto_user",
        bring_up,
    );
}

async fn bring_up(softhsm: SoftHsm) {
    let server = softhsm.server().await;
    let client = client(&server);

    // CreateCluster, then three HSMs in two zones.
    let cluster = create_cluster(&client).await;
    assert!(
        cluster.starts_with("cluster-") && cluster.len() == 19,
        "{cluster}"
    );
    let first = create_hsm(&client, &cluster, "us-east-1a").await;
    assert!(first.hsm_id().starts_with("hsm-"));
    assert_eq!(first.state(), Some(&HsmState::Active));
    assert_eq!(first.subnet_id(), Some("subnet-us-east-1a"));
    assert!(first.eni_id().is_some_and(|id| id.starts_with("eni-")));
    create_hsm(&client, &cluster, "us-east-1b").await;
    create_hsm(&client, &cluster, "us-east-1a").await;

    // The CSR was made inside the first HSM; the operator's CA signs it.
    let described = describe(&client, &cluster).await;
    assert_eq!(described.hsms().len(), 3);
    assert_eq!(described.vpc_id(), Some("vpc-strongroom"));
    let zones = described.subnet_mapping().expect("a subnet mapping");
    assert_eq!(
        zones.get("us-east-1b").map(String::as_str),
        Some("subnet-us-east-1b")
    );
    let csr = described
        .certificates()
        .and_then(|c| c.cluster_csr())
        .expect("an uninitialized cluster shows its CSR")
        .to_owned();
    let ca = CustomerCa::new("customerCA");
    let signed = ca.sign(&csr);

    let initialized = client
        .initialize_cluster()
        .cluster_id(&cluster)
        .signed_cert(&signed)
        .trust_anchor(&ca.pem)
        .send()
        .await
        .expect("InitializeCluster succeeds");
    assert_eq!(initialized.state(), Some(&ClusterState::Initialized));
    let described = describe(&client, &cluster).await;
    let certificates = described.certificates().expect("certificates");
    assert_eq!(certificates.cluster_certificate(), Some(signed.as_str()));
    assert_eq!(
        certificates.cluster_csr(),
        None,
        "the CSR is gone once initialized"
    );

    // Activation: the admin password must be the SO PIN.
    let (ok, output) = softhsm
        .hsm_command(
            &server,
            &[
                "activate",
                "--cluster",
                &cluster,
                "--admin-password-file",
                &softhsm.file("wrong.pw"),
            ],
        )
        .await;
    assert!(!ok, "a wrong admin password is refused: {output}");
    assert!(output.contains("Security Officer PIN"), "{output}");
    let (ok, output) = softhsm
        .hsm_command(
            &server,
            &[
                "activate",
                "--cluster",
                &cluster,
                "--admin-password-file",
                &softhsm.file("so.pin"),
            ],
        )
        .await;
    assert!(ok, "activate: {output}");
    let (ok, output) = softhsm
        .hsm_command(
            &server,
            &[
                "create-user",
                "--cluster",
                &cluster,
                "--username",
                "kmsuser",
                "--password-file",
                &softhsm.file("kmsuser.pw"),
                "--admin-password-file",
                &softhsm.file("so.pin"),
            ],
        )
        .await;
    assert!(ok, "create-user: {output}");
    let (ok, output) = softhsm
        .hsm_command(&server, &["list-users", "--cluster", &cluster])
        .await;
    assert!(ok, "list-users: {output}");
    assert!(output.contains("admin\tadmin"), "{output}");
    assert!(output.contains("kmsuser\tcrypto-user"), "{output}");

    let described = describe(&client, &cluster).await;
    assert_eq!(described.state(), Some(&ClusterState::Active));
    assert_eq!(described.hsms().len(), 3);
    assert!(
        described
            .hsms()
            .iter()
            .all(|hsm| hsm.state() == Some(&HsmState::Active))
    );

    // kmsuser can log in on every HSM, which all hold the cluster certificate and the wrapping key.
    let declared: Vec<HsmConfig> = softhsm.hsms[..3].to_vec();
    let certificate_der = pem_body(&signed, "CERTIFICATE");
    let label = format!("{cluster} cluster certificate");
    {
        let tokens = Pkcs11Cluster::open(&declared, &softhsm.modules, ClusterOptions::default())
            .expect("open the tokens");
        tokens
            .login_crypto_user(&Pin::new(KMSUSER_PASSWORD.to_owned()))
            .expect("kmsuser logs in on every HSM");
        assert_eq!(
            tokens
                .read_certificate(&label)
                .expect("the cluster certificate is on the HSMs"),
            certificate_der
        );
        tokens
            .generate_key("arn:aws:kms:us-east-1:111122223333:key/it")
            .expect("keys can be made and copied with the wrapping key");
        tokens.logout_crypto_user();
    }

    // An HSM added now waits for the crypto user's password, then joins with `hsm sync`.
    let late = create_hsm(&client, &cluster, "us-east-1b").await;
    assert_eq!(late.state(), Some(&HsmState::CreateInProgress));
    assert!(
        late.state_message()
            .is_some_and(|m| m.contains("strongroom hsm sync"))
    );
    let (ok, output) = softhsm
        .hsm_command(
            &server,
            &[
                "sync",
                "--cluster",
                &cluster,
                "--password-file",
                &softhsm.file("kmsuser.pw"),
            ],
        )
        .await;
    assert!(ok, "sync: {output}");
    let described = describe(&client, &cluster).await;
    assert_eq!(described.hsms().len(), 4);
    assert!(
        described
            .hsms()
            .iter()
            .all(|hsm| hsm.state() == Some(&HsmState::Active)),
        "{described:?}"
    );

    // Every membership change, the activation and the sync that brought HSMs in (with the crypto
    // user logged in, so that it holds the keys) left a backup record.
    let backups = client
        .describe_backups()
        .filters("clusterIds", vec![cluster.clone()])
        .send()
        .await
        .expect("DescribeBackups succeeds");
    assert_eq!(backups.backups().len(), 6, "{backups:?}");
    assert!(
        backups
            .backups()
            .iter()
            .all(|b| b.backup_id().starts_with("backup-")
                && b.cluster_id() == Some(cluster.as_str()))
    );

    // A cluster with HSMs cannot be deleted; without them it can.
    let refused = failure(client.delete_cluster().cluster_id(&cluster).send().await);
    assert_eq!(refused.code, "CloudHsmInvalidRequestException");
    assert!(refused.message.contains("DeleteHsm"), "{}", refused.message);
    for hsm in describe(&client, &cluster).await.hsms() {
        let deleted = client
            .delete_hsm()
            .cluster_id(&cluster)
            .hsm_id(hsm.hsm_id())
            .send()
            .await
            .expect("DeleteHsm succeeds");
        assert_eq!(deleted.hsm_id(), Some(hsm.hsm_id()));
    }
    let deleted = client
        .delete_cluster()
        .cluster_id(&cluster)
        .send()
        .await
        .expect("DeleteCluster succeeds");
    assert_eq!(
        deleted.cluster().and_then(|c| c.state()),
        Some(&ClusterState::Deleted)
    );
    server.stop().await;
}

#[test]
fn bring_up_mistakes_are_refused_with_reasons() {
    with_softhsm(
        "cloudhsm::bring_up_mistakes_are_refused_with_reasons",
        mistakes,
    );
}

async fn mistakes(softhsm: SoftHsm) {
    let server = softhsm.server().await;
    let client = client(&server);
    let cluster = create_cluster(&client).await;

    // InitializeCluster before any HSM made the CSR.
    let ca = CustomerCa::new("customerCA");
    let early = failure(
        client
            .initialize_cluster()
            .cluster_id(&cluster)
            .signed_cert(&ca.pem)
            .trust_anchor(&ca.pem)
            .send()
            .await,
    );
    assert_eq!(early.code, "CloudHsmInvalidRequestException");
    assert!(early.message.contains("CreateHsm"), "{}", early.message);

    create_hsm(&client, &cluster, "us-east-1a").await;
    create_hsm(&client, &cluster, "us-east-1a").await;
    // Both tokens of us-east-1a are taken now.
    let full = failure(
        client
            .create_hsm()
            .cluster_id(&cluster)
            .availability_zone("us-east-1a")
            .send()
            .await,
    );
    assert_eq!(full.code, "CloudHsmInvalidRequestException");
    assert!(
        full.message.contains("No free HSM in us-east-1a"),
        "{}",
        full.message
    );
    let elsewhere = failure(
        client
            .create_hsm()
            .cluster_id(&cluster)
            .availability_zone("us-west-2a")
            .send()
            .await,
    );
    assert!(
        elsewhere.message.contains("no subnet in us-west-2a"),
        "{}",
        elsewhere.message
    );

    let csr = describe(&client, &cluster)
        .await
        .certificates()
        .and_then(|c| c.cluster_csr())
        .expect("a CSR")
        .to_owned();
    let signed = ca.sign(&csr);

    // The wrong trust anchor: another CA.
    let stranger = CustomerCa::new("someone else's CA");
    let wrong_anchor = failure(
        client
            .initialize_cluster()
            .cluster_id(&cluster)
            .signed_cert(&signed)
            .trust_anchor(&stranger.pem)
            .send()
            .await,
    );
    assert_eq!(wrong_anchor.code, "CloudHsmInvalidRequestException");
    assert!(
        wrong_anchor.message.contains("TrustAnchor"),
        "{}",
        wrong_anchor.message
    );

    // A certificate for another key: the CA's own certificate is not the cluster's.
    let other_key = {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("a key");
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, cluster.as_str());
        let issuer = Issuer::new(ca.params.clone(), &ca.key);
        pem(params.signed_by(&key, &issuer).expect("sign").der())
    };
    let wrong_key = failure(
        client
            .initialize_cluster()
            .cluster_id(&cluster)
            .signed_cert(&other_key)
            .trust_anchor(&ca.pem)
            .send()
            .await,
    );
    assert_eq!(wrong_key.code, "CloudHsmInvalidRequestException");
    assert!(
        wrong_key.message.contains("not this cluster's key"),
        "{}",
        wrong_key.message
    );
    assert_eq!(
        describe(&client, &cluster).await.state(),
        Some(&ClusterState::Uninitialized),
        "failed initializations change nothing"
    );

    // Users wait for activation.
    let (ok, output) = softhsm
        .hsm_command(
            &server,
            &[
                "create-user",
                "--cluster",
                &cluster,
                "--password-file",
                &softhsm.file("kmsuser.pw"),
                "--admin-password-file",
                &softhsm.file("so.pin"),
            ],
        )
        .await;
    assert!(!ok && output.contains("activate"), "{output}");

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_answers_without_any_hsm() {
    let server = TestServer::start().await;
    let client = client(&server);
    let cluster = create_cluster(&client).await;

    let listed = client
        .describe_clusters()
        .send()
        .await
        .expect("DescribeClusters succeeds");
    let found = listed
        .clusters()
        .iter()
        .find(|c| c.cluster_id() == Some(cluster.as_str()))
        .expect("the new cluster is listed");
    assert_eq!(found.hsm_type(), Some("hsm2m.medium"));
    assert_eq!(
        found.backup_retention_policy(),
        Some(
            &BackupRetentionPolicy::builder()
                .r#type(BackupRetentionType::Days)
                .value("90")
                .build()
        )
    );
    assert!(found.create_timestamp().is_some());
    assert_eq!(found.tag_list().len(), 1);
    assert!(
        found
            .security_group()
            .is_some_and(|sg| sg.starts_with("sg-"))
    );

    // Pages of one cluster each.
    create_cluster(&client).await;
    let page = client
        .describe_clusters()
        .max_results(1)
        .send()
        .await
        .expect("a first page");
    assert_eq!(page.clusters().len(), 1);
    let token = page.next_token().expect("a next token").to_owned();
    let next = client
        .describe_clusters()
        .max_results(1)
        .next_token(token)
        .send()
        .await
        .expect("a second page");
    assert_eq!(next.clusters().len(), 1);
    assert_ne!(
        next.clusters()[0].cluster_id(),
        page.clusters()[0].cluster_id()
    );

    // Tags.
    client
        .tag_resource()
        .resource_id(&cluster)
        .tag_list(
            Tag::builder()
                .key("env")
                .value("test")
                .build()
                .expect("a tag"),
        )
        .send()
        .await
        .expect("TagResource succeeds");
    client
        .untag_resource()
        .resource_id(&cluster)
        .tag_key_list("team")
        .send()
        .await
        .expect("UntagResource succeeds");
    let tags = client
        .list_tags()
        .resource_id(&cluster)
        .send()
        .await
        .expect("ListTags succeeds");
    let pairs: Vec<(&str, &str)> = tags
        .tag_list()
        .iter()
        .map(|t| (t.key(), t.value()))
        .collect();
    assert_eq!(pairs, [("env", "test")]);
    let reserved = failure(
        client
            .tag_resource()
            .resource_id(&cluster)
            .tag_list(
                Tag::builder()
                    .key("aws:x")
                    .value("y")
                    .build()
                    .expect("a tag"),
            )
            .send()
            .await,
    );
    assert_eq!(reserved.code, "CloudHsmTagException");

    // No HSM is declared on this server.
    let none = failure(
        client
            .create_hsm()
            .cluster_id(&cluster)
            .availability_zone("us-east-1a")
            .send()
            .await,
    );
    assert_eq!(none.code, "CloudHsmInvalidRequestException");
    assert!(
        none.message.contains("No HSM is declared in us-east-1a"),
        "{}",
        none.message
    );

    // Errors AWS's way.
    let missing = failure(
        client
            .delete_cluster()
            .cluster_id("cluster-aaaaaaaaaaa")
            .send()
            .await,
    );
    assert_eq!(missing.code, "CloudHsmResourceNotFoundException");
    let bad_type = failure(
        client
            .create_cluster()
            .hsm_type("hsm9.huge")
            .subnet_ids("subnet-us-east-1a")
            .send()
            .await,
    );
    assert_eq!(bad_type.code, "CloudHsmInvalidRequestException");
    let other_account = failure(
        client_for_account(&server, "444455556666")
            .delete_cluster()
            .cluster_id(&cluster)
            .send()
            .await,
    );
    assert_eq!(
        other_account.code, "CloudHsmResourceNotFoundException",
        "another account cannot see the cluster"
    );
    let backups = client
        .describe_backups()
        .send()
        .await
        .expect("DescribeBackups succeeds");
    assert!(backups.backups().is_empty());

    // A KMS-signed request is not a CloudHSM request.
    let (status, body) = server
        .raw("BaldrApiService.DescribeClusters", "{}", true)
        .await;
    assert_eq!(status, http::StatusCode::BAD_REQUEST);
    assert_eq!(body["__type"], "InvalidSignatureException", "{body}");

    let deleted = client
        .delete_cluster()
        .cluster_id(&cluster)
        .send()
        .await
        .expect("DeleteCluster succeeds");
    assert_eq!(
        deleted.cluster().and_then(|c| c.state()),
        Some(&ClusterState::Deleted)
    );
    server.stop().await;
}

/// A client for dev-mode access key `account` (the root of that account).
fn client_for_account(server: &TestServer, account: &str) -> Client {
    let credentials = Credentials::new(account, "test", None, None, "strongroom-it");
    let config = aws_sdk_cloudhsmv2::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(credentials)
        .endpoint_url(server.endpoint())
        .retry_config(RetryConfig::disabled())
        .build();
    Client::from_conf(config)
}

/// The AWS CLI v1: `STRONGROOM_AWS_CLI`, or the one `cargo xtask ci` installs in `target/awscli`.
fn aws_cli() -> PathBuf {
    if let Some(path) = std::env::var_os("STRONGROOM_AWS_CLI") {
        return PathBuf::from(path);
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/awscli/bin/aws")
}

/// Runs `aws cloudhsmv2 <args>` against `server` and returns its JSON output.
async fn aws_cloudhsmv2(server: &TestServer, args: &[&str]) -> serde_json::Value {
    let cli = aws_cli();
    let output = tokio::process::Command::new(&cli)
        .args([
            "--endpoint-url",
            &server.endpoint(),
            "--output",
            "json",
            "cloudhsmv2",
        ])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env_remove("AWS_PROFILE")
        .output()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}): run `cargo xtask ci`, which installs the AWS CLI there",
                cli.display()
            )
        });
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "aws cloudhsmv2 {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    match stdout.trim() {
        "" => serde_json::Value::Null,
        text => serde_json::from_str(text).expect("the AWS CLI prints JSON"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_aws_cli_v1_manages_clusters() {
    let server = TestServer::start().await;
    let created = aws_cloudhsmv2(
        &server,
        &[
            "create-cluster",
            "--hsm-type",
            "hsm1.medium",
            "--subnet-ids",
            "subnet-us-east-1a",
            "subnet-us-east-1b",
            "--backup-retention-policy",
            "Type=DAYS,Value=30",
        ],
    )
    .await;
    let cluster = created["Cluster"]["ClusterId"]
        .as_str()
        .expect("a cluster id")
        .to_owned();
    assert_eq!(created["Cluster"]["State"], "UNINITIALIZED");
    assert_eq!(created["Cluster"]["BackupRetentionPolicy"]["Value"], "30");
    let described = aws_cloudhsmv2(
        &server,
        &[
            "describe-clusters",
            "--filters",
            &format!("clusterIds={cluster}"),
        ],
    )
    .await;
    assert_eq!(described["Clusters"][0]["ClusterId"], cluster.as_str());
    assert_eq!(described["Clusters"][0]["Mode"], "FIPS");
    aws_cloudhsmv2(
        &server,
        &[
            "tag-resource",
            "--resource-id",
            &cluster,
            "--tag-list",
            "Key=env,Value=cli",
        ],
    )
    .await;
    let tags = aws_cloudhsmv2(&server, &["list-tags", "--resource-id", &cluster]).await;
    assert_eq!(tags["TagList"][0]["Key"], "env");
    let deleted = aws_cloudhsmv2(&server, &["delete-cluster", "--cluster-id", &cluster]).await;
    assert_eq!(deleted["Cluster"]["State"], "DELETED");
    server.stop().await;
}

#[test]
fn hsm_tables_declare_the_hsms() {
    let dir = crate::harness::TempDir::new("hsm-config");
    let path = dir.path().join("strongroom.toml");
    std::fs::write(
        &path,
        format!(
            "[[hsm]]\nmodule = \"{SOFTHSM}\"\ntoken_label = \"hsm-a\"\navailability_zone = \"us-east-1a\"\n\
             so_pin_file = \"secrets/so.pin\"\n\n\
             [[hsm]]\nid = \"second\"\nmodule = \"lib/pkcs11.so\"\ntoken_label = \"hsm-b\"\n\
             availability_zone = \"us-east-1b\"\nso_pin_env = \"HSM_B_SO_PIN\"\n"
        ),
    )
    .expect("write the configuration");
    let file = strongroom_server::ConfigFile::load(&path).expect("the configuration parses");
    let config = strongroom_server::Config::build(file, strongroom_server::Overrides::default())
        .expect("the configuration is valid");
    let [first, second] = config.hsms.as_slice() else {
        panic!("two HSMs: {:?}", config.hsms);
    };
    assert_eq!(first.id, "hsm-a", "the id defaults to the token label");
    assert_eq!(first.module, PathBuf::from(SOFTHSM));
    assert_eq!(
        first.so_pin,
        SecretSource::File(dir.path().join("secrets/so.pin")),
        "paths are relative to the configuration file"
    );
    assert_eq!(second.id, "second");
    assert_eq!(second.module, dir.path().join("lib/pkcs11.so"));
    assert_eq!(second.so_pin, SecretSource::Env("HSM_B_SO_PIN".to_owned()));

    // The SO PIN comes from exactly one place, never from the file itself.
    for table in [
        "[[hsm]]\nmodule = \"m.so\"\ntoken_label = \"t\"\navailability_zone = \"us-east-1a\"\n",
        "[[hsm]]\nmodule = \"m.so\"\ntoken_label = \"t\"\navailability_zone = \"us-east-1a\"\nso_pin_env = \"A\"\nso_pin_file = \"b\"\n",
        "[[hsm]]\nmodule = \"m.so\"\ntoken_label = \"t\"\navailability_zone = \"us-east-1a\"\nso_pin = \"1234\"\n",
    ] {
        std::fs::write(&path, table).expect("write the configuration");
        let refused = strongroom_server::ConfigFile::load(&path).and_then(|file| {
            strongroom_server::Config::build(file, strongroom_server::Overrides::default())
        });
        assert!(refused.is_err(), "{table}");
    }
}

#[test]
fn a_root_key_table_puts_the_root_key_in_a_token() {
    let dir = crate::harness::TempDir::new("root-key-config");
    let path = dir.path().join("strongroom.toml");
    let load = |text: &str| {
        std::fs::write(&path, text).expect("write the configuration");
        strongroom_server::ConfigFile::load(&path).and_then(|file| {
            strongroom_server::Config::build(file, strongroom_server::Overrides::default())
        })
    };
    let config = load("").expect("an empty configuration is valid");
    assert!(matches!(config.root_key, RootKeyConfig::File));
    let config = load(&format!(
        "[root_key]\nmodule = \"{SOFTHSM}\"\ntoken_label = \"root\"\nuser_pin_file = \"secrets/root.pin\"\n"
    ))
    .expect("the configuration is valid");
    let RootKeyConfig::Pkcs11(token) = config.root_key else {
        panic!("the root key is in a token: {:?}", config.root_key);
    };
    assert_eq!(token.module, PathBuf::from(SOFTHSM));
    assert_eq!(token.token_label, "root");
    assert_eq!(
        token.user_pin,
        SecretSource::File(dir.path().join("secrets/root.pin")),
        "paths are relative to the configuration file"
    );
    assert_eq!(token.key_label, DEFAULT_ROOT_KEY_LABEL);
    let config = load(
        "[root_key]\nmodule = \"p11.so\"\ntoken_label = \"root\"\nuser_pin_env = \"ROOT_PIN\"\nkey_label = \"k\"\n",
    )
    .expect("the configuration is valid");
    let RootKeyConfig::Pkcs11(token) = config.root_key else {
        panic!("the root key is in a token");
    };
    assert_eq!(token.user_pin, SecretSource::Env("ROOT_PIN".to_owned()));
    assert_eq!(token.key_label, "k");
    // The user PIN comes from exactly one place, never from the file itself.
    for table in [
        "[root_key]\nmodule = \"m.so\"\ntoken_label = \"t\"\n",
        "[root_key]\nmodule = \"m.so\"\ntoken_label = \"t\"\nuser_pin_env = \"A\"\nuser_pin_file = \"b\"\n",
        "[root_key]\nmodule = \"m.so\"\ntoken_label = \"t\"\nuser_pin = \"1234\"\n",
    ] {
        assert!(load(table).is_err(), "{table}");
    }
}

/// A CloudHSM v2 client signing with `keys`, without retries.
fn client_as(server: &TestServer, keys: &crate::iam::Keys) -> Client {
    let credentials = Credentials::new(
        &keys.access_key_id,
        &keys.secret,
        keys.token.clone(),
        None,
        "strongroom-it",
    );
    let config = aws_sdk_cloudhsmv2::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(credentials)
        .endpoint_url(server.endpoint())
        .retry_config(RetryConfig::disabled())
        .build();
    Client::from_conf(config)
}

/// The CloudHSM API and Strongroom's HSM administration are authorized by identity policies, as AWS
/// authorizes CloudHSM: `cloudhsm:<Operation>` on the cluster's ARN, or on `*` for the operations that
/// name no cluster; the refusal is AWS's AccessDeniedException.
#[tokio::test(flavor = "multi_thread")]
async fn cloudhsm_operations_need_identity_policies() {
    use crate::harness::{ACCOUNT, Signer};
    use crate::iam::{Keys, iam, user_with_key};

    let server = TestServer::start().await;
    let endpoint = server.endpoint();
    let root = client(&server);
    let mine = create_cluster(&root).await;
    let other = create_cluster(&root).await;
    let cluster_arn = |id: &str| format!("arn:aws:cloudhsm:us-east-1:{ACCOUNT}:cluster/{id}");

    let keys = user_with_key(&endpoint, "hsm-admin").await;
    let as_user = client_as(&server, &keys);
    let user_arn = format!("arn:aws:iam::{ACCOUNT}:user/hsm-admin");
    let refused = failure(as_user.describe_clusters().send().await);
    assert_eq!(
        (refused.code.as_str(), refused.message.as_str()),
        (
            "AccessDeniedException",
            format!(
                "User: {user_arn} is not authorized to perform: cloudhsm:DescribeClusters because no \
                 identity-based policy allows the cloudhsm:DescribeClusters action"
            )
            .as_str()
        )
    );
    let refused = failure(as_user.delete_cluster().cluster_id(&mine).send().await);
    assert_eq!(refused.code, "AccessDeniedException");
    assert_eq!(
        refused.message,
        format!(
            "User: {user_arn} is not authorized to perform: cloudhsm:DeleteCluster on resource: {} \
             because no identity-based policy allows the cloudhsm:DeleteCluster action",
            cluster_arn(&mine)
        )
    );
    let admin_request = |operation: &str, cluster: &str| {
        (
            format!("StrongroomHsmAdmin.{operation}"),
            serde_json::json!({ "ClusterId": cluster }).to_string(),
        )
    };
    let signer = Signer {
        access_key: &keys.access_key_id,
        secret: &keys.secret,
        service: "cloudhsm",
        ..Signer::dev()
    };
    let (target, body) = admin_request("ListUsers", &mine);
    let (status, response) = server.raw_as(&target, &body, Some(signer)).await;
    assert_eq!(status, 400, "{response}");
    assert_eq!(response["__type"], "AccessDeniedException", "{response}");
    assert_eq!(
        response["message"],
        format!(
            "User: {user_arn} is not authorized to perform: cloudhsm:ListUsers on resource: {} \
             because no identity-based policy allows the cloudhsm:ListUsers action",
            cluster_arn(&mine)
        )
    );

    // Allowed: listing everything, and tags and users of one cluster only.
    iam(&endpoint, &Keys::dev())
        .put_user_policy()
        .user_name("hsm-admin")
        .policy_name("cloudhsm")
        .policy_document(format!(
            r#"{{"Version":"2012-10-17","Statement":[
            {{"Effect":"Allow","Action":"cloudhsm:DescribeClusters","Resource":"*"}},
            {{"Effect":"Allow","Action":["cloudhsm:ListTags","cloudhsm:ListUsers"],"Resource":"{}"}}]}}"#,
            cluster_arn(&mine)
        ))
        .send()
        .await
        .expect("PutUserPolicy");
    let listed = as_user
        .describe_clusters()
        .send()
        .await
        .expect("DescribeClusters is allowed");
    assert_eq!(listed.clusters().len(), 2);
    as_user
        .list_tags()
        .resource_id(&mine)
        .send()
        .await
        .expect("ListTags on the allowed cluster");
    let refused = failure(as_user.list_tags().resource_id(&other).send().await);
    assert_eq!(refused.code, "AccessDeniedException");
    assert!(
        refused.message.contains(&cluster_arn(&other)),
        "{}",
        refused.message
    );
    let (status, response) = server.raw_as(&target, &body, Some(signer)).await;
    assert_eq!(status, 200, "ListUsers on the allowed cluster: {response}");
    let (target, body) = admin_request("ListUsers", &other);
    let (_, response) = server.raw_as(&target, &body, Some(signer)).await;
    assert_eq!(response["__type"], "AccessDeniedException", "{response}");
    server.stop().await;
}

#[test]
fn the_default_key_stores_root_key_can_live_in_a_pkcs11_token() {
    with_softhsm(
        "cloudhsm::the_default_key_stores_root_key_can_live_in_a_pkcs11_token",
        root_key_in_a_token,
    );
}

async fn root_key_in_a_token(softhsm: SoftHsm) {
    const ROOT_PIN: &str = "root-user-Passw0rd";
    // The operator gives the token a user PIN, as `softhsm2-util --init-token --pin` would.
    let token = Pkcs11Cluster::open(
        &softhsm.hsms[3..4],
        &softhsm.modules,
        ClusterOptions::default(),
    )
    .expect("open hsm-d");
    token
        .create_crypto_user(&Pin::new(ROOT_PIN.to_owned()))
        .expect("set hsm-d's user PIN");
    drop(token);
    let pin_file = softhsm.dir.join("root.pin");
    std::fs::write(&pin_file, format!("{ROOT_PIN}\n")).expect("write the user PIN");
    let root_key = RootKeyConfig::Pkcs11(Pkcs11RootKey {
        module: PathBuf::from(SOFTHSM),
        token_label: "hsm-d".to_owned(),
        user_pin: SecretSource::File(pin_file),
        key_label: DEFAULT_ROOT_KEY_LABEL.to_owned(),
    });

    let server = softhsm
        .server_with(|config| config.root_key = root_key.clone())
        .await;
    let kms = server.client();
    let (key_id, _) = create_key(&kms, "wrapped inside the token").await;
    let ciphertext = encrypt(&kms, &key_id, b"under a root key in an HSM", &[]).await;
    assert_eq!(
        decrypt(&kms, &ciphertext, &[]).await,
        b"under a root key in an HSM"
    );
    server.stop().await;
    assert!(
        !softhsm
            .data_dir
            .join(strongroom_server::ROOT_KEY_FILE)
            .exists(),
        "no root key file is made"
    );

    // The root key is an AES key on the token, and the key material in the database opens only there.
    let token = Pkcs11Cluster::open(
        &softhsm.hsms[3..4],
        &softhsm.modules,
        ClusterOptions::default(),
    )
    .expect("open hsm-d");
    token
        .login_crypto_user(&Pin::new(ROOT_PIN.to_owned()))
        .expect("log in to hsm-d");
    let found = token.key_exists(DEFAULT_ROOT_KEY_LABEL);
    assert!(
        matches!(found.as_slice(), [answer] if matches!(answer.result, Ok(true))),
        "{found:?}"
    );
    token.logout_crypto_user();
    drop(token);
    let server = softhsm
        .server_with(|config| config.root_key = root_key.clone())
        .await;
    let kms = server.client();
    assert_eq!(
        decrypt(&kms, &ciphertext, &[]).await,
        b"under a root key in an HSM",
        "after a restart, keys unwrap inside the token"
    );
    server.stop().await;

    // The data directory cannot be opened without its token, nor an existing one moved into a token.
    let refused = TestServer::start_failure(&softhsm.data_dir, |_| {}).await;
    assert!(refused.contains("PKCS#11 token"), "{refused}");
    let other = crate::harness::TempDir::new("file-root-key");
    TestServer::start_in(other.path(), |_| {})
        .await
        .stop()
        .await;
    let modules = softhsm.modules.clone();
    let refused = TestServer::start_failure(other.path(), |config| {
        config.root_key = root_key.clone();
        config.hsm_modules = modules;
    })
    .await;
    assert!(refused.contains("does not re-wrap"), "{refused}");
}
