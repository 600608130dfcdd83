//! Backups that hold a cluster's keys, clusters created from them, and a custom key store moved to
//! such a related cluster, on SoftHSM tokens: the restored tokens hold the keys as the originals did
//! (sensitive, extractable only under a trusted key), and a ciphertext made before the move decrypts
//! through the new cluster's HSMs. Also the refusals: unknown backups, another account's, no HSM left
//! that holds the lineage's wrapping key, and an unrelated cluster for the store. Then the same move
//! made by a stack whose file names the related cluster.

use std::time::Duration;

use aws_credential_types::Credentials;
use aws_sdk_cloudhsmv2::Client;
use aws_sdk_cloudhsmv2::config::retry::RetryConfig;
use aws_sdk_cloudhsmv2::config::{BehaviorVersion, Region};
use aws_sdk_cloudhsmv2::types::{BackupState, ClusterState, HsmState};
use aws_sdk_kms::types::{ConnectionStateType, OriginType};
use strongroom_keystore_pkcs11::{
    ClusterOptions, Fault, Hsm, HsmConfig, Pin, backing_key_protection,
};

use crate::cloudhsm::{
    KMSUSER_PASSWORD, SUBNETS, SoftHsm, client as cloudhsm_client, create_hsm, describe,
    with_softhsm,
};
use crate::custom_key_stores::{active_cluster, connect_store, create_store};
use crate::harness::{TestServer, decrypt, encrypt, failure};

/// Two more tokens than the shared SoftHSM has, one in each zone, for a cluster unrelated to the others.
const EXTRA_TOKENS: [(&str, &str); 2] = [("hsm-e", "us-east-1a"), ("hsm-f", "us-east-1b")];

#[test]
fn a_key_store_moves_to_a_cluster_created_from_a_backup() {
    with_softhsm(
        "cluster_backups::a_key_store_moves_to_a_cluster_created_from_a_backup",
        move_to_a_related_cluster,
    );
}

/// Initializes the extra tokens and returns their declarations.
fn extra_hsms(softhsm: &SoftHsm) -> Vec<HsmConfig> {
    let so_pin_text = std::fs::read_to_string(softhsm.file("so.pin")).expect("the SO PIN file");
    let so_pin = Pin::new(so_pin_text.trim().to_owned());
    let module = softhsm.module();
    EXTRA_TOKENS
        .iter()
        .map(|(label, zone)| {
            module
                .initialize_token(&so_pin, label)
                .expect("initialize a token");
            HsmConfig {
                id: (*label).to_owned(),
                token_label: (*label).to_owned(),
                availability_zone: (*zone).to_owned(),
                ..softhsm.hsms[0].clone()
            }
        })
        .collect()
}

/// A CloudHSM client for another account (dev mode makes any 12-digit access key that account's root).
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

/// Takes a backup of `cluster` that holds the connected store's keys, and returns it, the newest
/// of the cluster's backups.
///
/// Adding an HSM and removing it again each take a backup; the connected store's logged-in HSMs give
/// them the keys. The server's clock stands still; moved on, it orders these backups after the
/// earlier ones.
async fn backup_with_keys(
    server: &TestServer,
    client: &Client,
    cluster: &str,
) -> aws_sdk_cloudhsmv2::types::Backup {
    server.clock().advance(Duration::from_secs(60));
    let passing = create_hsm(client, cluster, "us-east-1a").await;
    server.clock().advance(Duration::from_secs(60));
    client
        .delete_hsm()
        .cluster_id(cluster)
        .hsm_id(passing.hsm_id())
        .send()
        .await
        .expect("DeleteHsm succeeds");
    client
        .describe_backups()
        .filters("clusterIds", vec![cluster.to_owned()])
        .sort_ascending(false)
        .send()
        .await
        .expect("DescribeBackups succeeds")
        .backups()[0]
        .clone()
}

async fn create_from_backup(
    client: &Client,
    backup: &str,
) -> Result<
    aws_sdk_cloudhsmv2::operation::create_cluster::CreateClusterOutput,
    aws_sdk_cloudhsmv2::error::SdkError<
        aws_sdk_cloudhsmv2::operation::create_cluster::CreateClusterError,
    >,
> {
    client
        .create_cluster()
        .hsm_type("hsm2m.medium")
        .set_subnet_ids(Some(SUBNETS.iter().map(|s| (*s).to_owned()).collect()))
        .source_backup_id(backup)
        .send()
        .await
}

fn declared<'a>(all: &'a [HsmConfig], id: &str) -> &'a HsmConfig {
    all.iter()
        .find(|hsm| hsm.id == id)
        .unwrap_or_else(|| panic!("HSM {id} is declared"))
}

async fn move_to_a_related_cluster(softhsm: SoftHsm) {
    let extra = extra_hsms(&softhsm);
    let mut all = softhsm.hsms.clone();
    all.extend(extra.iter().cloned());
    let server = softhsm
        .server_with(move |config| config.hsms.extend(extra))
        .await;
    let kms = server.client();
    let client = cloudhsm_client(&server);

    // The original cluster, on hsm-a and hsm-b, its store connected, a key and a ciphertext.
    let (original, ca) = active_cluster(&softhsm, &server, &["us-east-1a", "us-east-1b"]).await;
    let store = create_store(&kms, "moving", &original, &ca.pem).await;
    connect_store(&kms, &store).await;
    let created = kms
        .create_key()
        .origin(OriginType::AwsCloudhsm)
        .custom_key_store_id(&store)
        .send()
        .await
        .expect("CreateKey in the store succeeds");
    let metadata = created.key_metadata().expect("metadata");
    let key_id = metadata.key_id().to_owned();
    let key_arn = metadata.arn().expect("an ARN").to_owned();
    let context = [("purpose", "move")];
    let ciphertext = encrypt(&kms, &key_id, b"made before the move", &context).await;

    let newest = &backup_with_keys(&server, &client, &original).await;
    assert_eq!(newest.backup_state(), Some(&BackupState::Ready));
    assert_eq!(newest.cluster_id(), Some(original.as_str()));
    // The AWS shape: lineage fields are for copies between Regions, which these are not.
    assert_eq!(newest.source_backup(), None);
    assert_eq!(newest.source_cluster(), None);
    let backup = newest.backup_id().to_owned();

    // What cannot be restored.
    let refused = failure(create_from_backup(&client, "backup-zzzzzzzzzzz").await);
    assert_eq!(refused.code, "CloudHsmResourceNotFoundException");
    let stranger = client_for_account(&server, "444455556666");
    let refused = failure(create_from_backup(&stranger, &backup).await);
    assert_eq!(refused.code, "CloudHsmResourceNotFoundException");
    let arn = format!("arn:aws:cloudhsm:us-east-1:111122223333:backup/{backup}");
    let refused = failure(create_from_backup(&stranger, &arn).await);
    assert_eq!(
        refused.code, "CloudHsmResourceNotFoundException",
        "{}",
        refused.message
    );

    // The related cluster: ACTIVE at once, with the backup's certificate and users.
    let restored = create_from_backup(&client, &arn)
        .await
        .expect("CreateCluster from the backup succeeds");
    let restored = restored.cluster().expect("the cluster");
    assert_eq!(restored.state(), Some(&ClusterState::Active));
    assert_eq!(restored.source_backup_id(), Some(backup.as_str()));
    let restored = restored.cluster_id().expect("an id").to_owned();
    let described = describe(&client, &restored).await;
    assert_eq!(described.source_backup_id(), Some(backup.as_str()));
    assert_eq!(
        described
            .certificates()
            .and_then(|c| c.cluster_certificate()),
        describe(&client, &original)
            .await
            .certificates()
            .and_then(|c| c.cluster_certificate()),
        "related clusters share the cluster certificate"
    );
    assert_eq!(describe(&client, &original).await.source_backup_id(), None);

    // Its HSMs, in two zones, receive the keys from the backup and wait for kmsuser's password.
    for zone in ["us-east-1a", "us-east-1b"] {
        let hsm = create_hsm(&client, &restored, zone).await;
        assert_eq!(hsm.state(), Some(&HsmState::CreateInProgress), "{hsm:?}");
        assert!(
            hsm.state_message()
                .is_some_and(|m| m.contains(&backup) && m.contains("admin")),
            "{hsm:?}"
        );
    }
    let (ok, output) = softhsm
        .hsm_command(
            &server,
            &[
                "change-password",
                "--cluster",
                &restored,
                "--username",
                "kmsuser",
                "--password-file",
                &softhsm.file("kmsuser.pw"),
                "--admin-password-file",
                &softhsm.file("so.pin"),
            ],
        )
        .await;
    assert!(ok, "the admin sets kmsuser's password: {output}");
    let described = describe(&client, &restored).await;
    let mut hsms: Vec<(String, Option<HsmState>)> = described
        .hsms()
        .iter()
        .map(|hsm| {
            (
                hsm.availability_zone().unwrap_or_default().to_owned(),
                hsm.state().cloned(),
            )
        })
        .collect();
    hsms.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        hsms,
        vec![
            ("us-east-1a".to_owned(), Some(HsmState::Active)),
            ("us-east-1b".to_owned(), Some(HsmState::Active)),
        ]
    );

    // The restored tokens (hsm-c and hsm-d) hold the key, as sensitive as the original's.
    let kmsuser = Pin::new(KMSUSER_PASSWORD.to_owned());
    for id in ["hsm-c", "hsm-d"] {
        let hsm = Hsm::open(
            declared(&all, id),
            &softhsm.modules,
            &ClusterOptions::default(),
        )
        .expect("open the token");
        let keys = backing_key_protection(&hsm, &kmsuser).expect("read the token's keys");
        let labels: Vec<&str> = keys.iter().map(|key| key.label.as_str()).collect();
        assert_eq!(labels, vec![key_arn.as_str()], "{id}");
        let key = &keys[0];
        assert!(key.sensitive, "{id}: {key:?}");
        assert!(key.extractable && key.wrap_with_trusted, "{id}: {key:?}");
        assert!(!key.value_readable, "{id}: {key:?}");
    }

    // An unrelated cluster (hsm-e, hsm-f, another CA) is refused as the store's new cluster.
    let (unrelated, _) = active_cluster(&softhsm, &server, &["us-east-1a", "us-east-1b"]).await;
    let refused = failure(
        kms.update_custom_key_store()
            .custom_key_store_id(&store)
            .cloud_hsm_cluster_id(&restored)
            .send()
            .await,
    );
    assert_eq!(
        refused.code, "CustomKeyStoreInvalidStateException",
        "a connected store keeps its cluster"
    );
    kms.disconnect_custom_key_store()
        .custom_key_store_id(&store)
        .send()
        .await
        .expect("DisconnectCustomKeyStore succeeds");
    let refused = failure(
        kms.update_custom_key_store()
            .custom_key_store_id(&store)
            .cloud_hsm_cluster_id(&unrelated)
            .send()
            .await,
    );
    assert_eq!(
        refused.code, "CloudHsmClusterNotRelatedException",
        "{}",
        refused.message
    );

    // The move: disconnected, updated to the related cluster (with the password just set, since the
    // store's connection had rotated the original's), connected again.
    kms.update_custom_key_store()
        .custom_key_store_id(&store)
        .cloud_hsm_cluster_id(&restored)
        .key_store_password(KMSUSER_PASSWORD)
        .send()
        .await
        .expect("UpdateCustomKeyStore to the related cluster succeeds");
    connect_store(&kms, &store).await;
    let described = kms
        .describe_custom_key_stores()
        .custom_key_store_id(&store)
        .send()
        .await
        .expect("DescribeCustomKeyStores succeeds");
    let [moved] = described.custom_key_stores() else {
        panic!("one store: {described:?}");
    };
    assert_eq!(moved.cloud_hsm_cluster_id(), Some(restored.as_str()));
    assert_eq!(
        moved.connection_state(),
        Some(&ConnectionStateType::Connected)
    );
    assert_eq!(
        decrypt(&kms, &ciphertext, &context).await,
        b"made before the move"
    );
    // The original's tokens are not needed for that: take them away.
    let module = softhsm.module();
    for label in ["hsm-a", "hsm-b"] {
        module.inject_fault(label, Some(Fault::Outage));
    }
    let again = encrypt(&kms, &key_id, b"after the move", &context).await;
    assert_eq!(decrypt(&kms, &again, &context).await, b"after the move");
    assert_eq!(
        decrypt(&kms, &ciphertext, &context).await,
        b"made before the move"
    );

    // With no HSM of the lineage reachable, a new cluster from the backup cannot seed an HSM.
    let third = create_from_backup(&client, &backup)
        .await
        .expect("CreateCluster from the backup succeeds")
        .cluster()
        .and_then(|c| c.cluster_id())
        .expect("an id")
        .to_owned();
    client
        .delete_hsm()
        .cluster_id(&unrelated)
        .hsm_id(
            describe(&client, &unrelated)
                .await
                .hsms()
                .iter()
                .find(|hsm| hsm.availability_zone() == Some("us-east-1a"))
                .map(|hsm| hsm.hsm_id())
                .expect("the unrelated cluster's HSM in us-east-1a"),
        )
        .send()
        .await
        .expect("DeleteHsm frees hsm-e");
    for label in ["hsm-c", "hsm-d"] {
        module.inject_fault(label, Some(Fault::Outage));
    }
    let refused = failure(
        client
            .create_hsm()
            .cluster_id(&third)
            .availability_zone("us-east-1a")
            .send()
            .await,
    );
    assert_eq!(
        refused.code, "CloudHsmInvalidRequestException",
        "{}",
        refused.message
    );
    assert!(
        refused
            .message
            .contains("No HSM holding the cluster wrapping key")
            && refused.message.contains(&original)
            && refused.message.contains(&restored),
        "{}",
        refused.message
    );
    assert!(
        describe(&client, &third).await.hsms().is_empty(),
        "the token is released again"
    );
    // Once one comes back, the wrapping key can be had; but hsm-e still holds the unrelated
    // cluster's, and a token takes one cluster's wrapping key only.
    module.inject_fault("hsm-b", None);
    let refused = failure(
        client
            .create_hsm()
            .cluster_id(&third)
            .availability_zone("us-east-1a")
            .send()
            .await,
    );
    assert_eq!(refused.code, "CloudHsmInvalidRequestException");
    assert!(
        refused.message.contains("re-initialize it"),
        "{}",
        refused.message
    );
    for label in ["hsm-a", "hsm-c", "hsm-d"] {
        module.inject_fault(label, None);
    }
    server.stop().await;
}

#[test]
fn a_stack_moves_its_key_store_to_a_cluster_created_from_a_backup() {
    with_softhsm(
        "cluster_backups::a_stack_moves_its_key_store_to_a_cluster_created_from_a_backup",
        stack_moves_its_key_store,
    );
}

/// A stack over a cluster with one HSM in each zone, a key store (on `cluster` when given) and a key.
fn stack_file(softhsm: &SoftHsm, cluster: Option<&str>) -> String {
    let store_cluster = match cluster {
        Some(id) => format!("  cluster: {id}\n"),
        None => String::new(),
    };
    format!(
        "name: moving\nparameters:\n  system: moving\ncluster:\n  hsms:\n    us-east-1a: 1\n    us-east-1b: 1\n  \
         certificate_authority:\n    certificate: {{file: {}}}\n    private_key: {{file: {}}}\n  \
         admin_password: {{file: {}}}\ncrypto_user:\n  password: {{file: {}}}\nkey_store:\n  name: hsm\n\
         {store_cluster}keys:\n  orders:\n    description: Encrypts order records\n    aliases: [orders]\n",
        softhsm.file("ca.crt"),
        softhsm.file("ca.key"),
        softhsm.file("so.pin"),
        softhsm.file("kmsuser.pw"),
    )
}

/// Runs `strongroom stack <args>` against `server` as the dev root: whether it succeeded, and its
/// output.
async fn stack_command(server: &TestServer, args: &[&str]) -> (bool, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_strongroom"))
        .arg("stack")
        .args(args)
        .arg("--endpoint")
        .arg(server.endpoint())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("STRONGROOM_LOG", "warn")
        .output()
        .await
        .expect("run strongroom stack");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|chunk| std::str::from_utf8(chunk).expect("base64 is ASCII"))
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

async fn the_store(kms: &aws_sdk_kms::Client) -> aws_sdk_kms::types::CustomKeyStoresListEntry {
    let described = kms
        .describe_custom_key_stores()
        .send()
        .await
        .expect("DescribeCustomKeyStores succeeds");
    let [store] = described.custom_key_stores() else {
        panic!("one store: {described:?}");
    };
    store.clone()
}

async fn stack_moves_its_key_store(softhsm: SoftHsm) {
    let server = softhsm.server().await;
    let kms = server.client();
    let client = cloudhsm_client(&server);
    let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("an RSA key");
    let mut params = rcgen::CertificateParams::default();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Moving CA");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_certificate = params.self_signed(&ca_key).expect("a self-signed CA");
    std::fs::write(
        softhsm.file("ca.crt"),
        pem("CERTIFICATE", ca_certificate.der()),
    )
    .expect("the CA certificate");
    std::fs::write(
        softhsm.file("ca.key"),
        pem("PRIVATE KEY", &ca_key.serialize_der()),
    )
    .expect("the CA key");

    let first = softhsm.file("moving.yaml");
    std::fs::write(&first, stack_file(&softhsm, None)).expect("write the stack file");
    let (ok, output) = stack_command(&server, &["apply", &first, "--wait"]).await;
    assert!(ok, "{output}");
    let original = the_store(&kms)
        .await
        .cloud_hsm_cluster_id()
        .expect("a cluster")
        .to_owned();
    let alias = "alias/moving/1/orders";
    let context = [("purpose", "stack move")];
    let ciphertext = encrypt(&kms, alias, b"sealed on the stack's cluster", &context).await;

    // A backup with the keys, and a cluster created from it, with an HSM seeded in each zone.
    let backup = backup_with_keys(&server, &client, &original)
        .await
        .backup_id()
        .to_owned();
    let related = create_from_backup(&client, &backup)
        .await
        .expect("CreateCluster from the backup succeeds")
        .cluster()
        .and_then(|c| c.cluster_id())
        .expect("an id")
        .to_owned();
    for zone in ["us-east-1a", "us-east-1b"] {
        create_hsm(&client, &related, zone).await;
    }

    // A move that fails on a later step is undone: the key store goes back to its own cluster,
    // connected, and a second key the same apply made is removed again. The alias the file gives that
    // key already belongs to a key outside the stack, which only the apply finds out.
    let (outsider, _) = crate::harness::create_key(&kms, "outside the stack").await;
    let taken = "alias/moving/1/invoices";
    kms.create_alias()
        .alias_name(taken)
        .target_key_id(&outsider)
        .send()
        .await
        .expect("CreateAlias");
    let failing = softhsm.file("failing.yaml");
    std::fs::write(
        &failing,
        format!(
            "{}  invoices:\n    description: Encrypts invoices\n    aliases: [invoices]\n",
            stack_file(&softhsm, Some(&related))
        ),
    )
    .expect("write the stack file");
    let (ok, output) = stack_command(&server, &["apply", &failing, "--wait"]).await;
    assert!(!ok, "{output}");
    let (_, status) = stack_command(&server, &["status", "moving"]).await;
    let stack = crate::stacks::parse_status(&status);
    assert_eq!(stack["Status"], "ROLLBACK_COMPLETE", "{status}");
    assert!(
        status.contains(&format!(
            "already exists and points at another key, {outsider}"
        )),
        "{status}"
    );
    assert_eq!(
        crate::stacks::steps_in(&stack, "rolled back"),
        ["key-store", "key/invoices"],
        "{status}"
    );
    let store = the_store(&kms).await;
    assert_eq!(store.cloud_hsm_cluster_id(), Some(original.as_str()));
    assert_eq!(
        store.connection_state(),
        Some(&ConnectionStateType::Connected)
    );
    assert_eq!(
        decrypt(&kms, &ciphertext, &context).await,
        b"sealed on the stack's cluster"
    );
    let still = kms
        .describe_key()
        .key_id(taken)
        .send()
        .await
        .expect("DescribeKey");
    assert_eq!(
        still.key_metadata().map(|m| m.key_id()),
        Some(outsider.as_str()),
        "the alias outside the stack is left alone"
    );
    kms.delete_alias()
        .alias_name(taken)
        .send()
        .await
        .expect("DeleteAlias");

    // The file names the related cluster for the key store: the plan says what will happen.
    let moved = softhsm.file("moved.yaml");
    std::fs::write(&moved, stack_file(&softhsm, Some(&related))).expect("write the stack file");
    let (ok, output) = stack_command(&server, &["plan", &moved]).await;
    assert!(ok, "{output}");
    assert!(
        output.contains(&format!("moves the key store to {related}")),
        "{output}"
    );
    assert_eq!(
        the_store(&kms).await.cloud_hsm_cluster_id(),
        Some(original.as_str()),
        "plan changed nothing"
    );
    let (ok, output) = stack_command(&server, &["apply", &moved, "--wait"]).await;
    assert!(ok, "{output}");
    let store = the_store(&kms).await;
    assert_eq!(store.cloud_hsm_cluster_id(), Some(related.as_str()));
    assert_eq!(
        store.connection_state(),
        Some(&ConnectionStateType::Connected)
    );
    let hsms = describe(&client, &related).await;
    assert!(
        hsms.hsms().len() == 2
            && hsms
                .hsms()
                .iter()
                .all(|hsm| hsm.state() == Some(&HsmState::Active)),
        "{hsms:?}"
    );
    // The original's tokens are not needed any more.
    let module = softhsm.module();
    for label in ["hsm-a", "hsm-b"] {
        module.inject_fault(label, Some(Fault::Outage));
    }
    assert_eq!(
        decrypt(&kms, &ciphertext, &context).await,
        b"sealed on the stack's cluster"
    );
    for label in ["hsm-a", "hsm-b"] {
        module.inject_fault(label, None);
    }
    let (ok, output) = stack_command(&server, &["plan", &moved]).await;
    assert!(ok && output.contains("no changes"), "{output}");
    server.stop().await;
}
