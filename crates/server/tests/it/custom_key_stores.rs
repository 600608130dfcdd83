//! Custom key stores of the AWS_CLOUDHSM type over SoftHSM tokens: the prerequisites checked by
//! CreateCustomKeyStore, the asynchronous connection life cycle with kmsuser's password rotation and
//! the HSMs' certificates checked against the trust anchor, failover, and deletion.
//!
//! Uses the SoftHSM child-process scheme and bring-up helpers of the `cloudhsm` tests. Faults are
//! injected into the tokens through the SoftHSM module the server shares with the test.

use std::time::{Duration, Instant};

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{
    ConnectionErrorCodeType, ConnectionStateType, DataKeySpec, KeyState, OriginType,
};
use serde_json::{Value, json};
use strongroom_keystore_pkcs11::{Cluster as Pkcs11Cluster, ClusterOptions, Fault, Pin};

use crate::cloudhsm::{
    CustomerCa, KMSUSER_PASSWORD, SoftHsm, client as cloudhsm_client, create_cluster, create_hsm,
    describe, pem_body, with_softhsm,
};
use crate::harness::{Signer, TestServer, create_key, decrypt, encrypt, failure};

/// Creates a cluster with HSMs in `zones`, initializes it under a new CA, activates it and creates
/// kmsuser; returns the cluster id and the CA.
pub(crate) async fn active_cluster(
    softhsm: &SoftHsm,
    server: &TestServer,
    zones: &[&str],
) -> (String, CustomerCa) {
    let client = cloudhsm_client(server);
    let cluster = create_cluster(&client).await;
    for zone in zones {
        create_hsm(&client, &cluster, zone).await;
    }
    let csr = describe(&client, &cluster)
        .await
        .certificates()
        .and_then(|c| c.cluster_csr())
        .expect("a CSR")
        .to_owned();
    let ca = CustomerCa::new("customerCA");
    client
        .initialize_cluster()
        .cluster_id(&cluster)
        .signed_cert(ca.sign(&csr))
        .trust_anchor(&ca.pem)
        .send()
        .await
        .expect("InitializeCluster succeeds");
    let so_pin = softhsm.file("so.pin");
    let (ok, output) = softhsm
        .hsm_command(
            server,
            &[
                "activate",
                "--cluster",
                &cluster,
                "--admin-password-file",
                &so_pin,
            ],
        )
        .await;
    assert!(ok, "activate: {output}");
    let (ok, output) = softhsm
        .hsm_command(
            server,
            &[
                "create-user",
                "--cluster",
                &cluster,
                "--username",
                "kmsuser",
                "--password-file",
                &softhsm.file("kmsuser.pw"),
                "--admin-password-file",
                &so_pin,
            ],
        )
        .await;
    assert!(ok, "create-user: {output}");
    (cluster, ca)
}

pub(crate) async fn connection(
    kms: &aws_sdk_kms::Client,
    id: &str,
) -> (ConnectionStateType, Option<ConnectionErrorCodeType>) {
    let described = kms
        .describe_custom_key_stores()
        .custom_key_store_id(id)
        .send()
        .await
        .expect("DescribeCustomKeyStores succeeds");
    let [store] = described.custom_key_stores() else {
        panic!("one store: {described:?}");
    };
    (
        store.connection_state().expect("a state").clone(),
        store.connection_error_code().cloned(),
    )
}

/// How long a connection attempt may take before a test gives up on it; attempts on SoftHSM take well
/// under a second, so reaching this means the attempt hangs.
pub(crate) const CONNECTION_PATIENCE: Duration = Duration::from_secs(120);

/// The store's state once its connection attempt has ended: ConnectCustomKeyStore returns while the
/// store is still CONNECTING, so tests poll, as AWS's guide tells callers to.
pub(crate) async fn settled_connection(
    kms: &aws_sdk_kms::Client,
    id: &str,
) -> (ConnectionStateType, Option<ConnectionErrorCodeType>) {
    let deadline = Instant::now() + CONNECTION_PATIENCE;
    loop {
        let (state, code) = connection(kms, id).await;
        if state != ConnectionStateType::Connecting {
            return (state, code);
        }
        assert!(
            Instant::now() < deadline,
            "store {id} is still CONNECTING after {CONNECTION_PATIENCE:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Connects store `id` and waits for the attempt to end CONNECTED.
/// Creates a custom key store named `name` on `cluster` with kmsuser's password, and returns its id.
pub(crate) async fn create_store(
    kms: &aws_sdk_kms::Client,
    name: &str,
    cluster: &str,
    trust_anchor_pem: &str,
) -> String {
    kms.create_custom_key_store()
        .custom_key_store_name(name)
        .cloud_hsm_cluster_id(cluster)
        .trust_anchor_certificate(trust_anchor_pem)
        .key_store_password(KMSUSER_PASSWORD)
        .send()
        .await
        .expect("CreateCustomKeyStore succeeds")
        .custom_key_store_id()
        .expect("an id")
        .to_owned()
}

pub(crate) async fn connect_store(kms: &aws_sdk_kms::Client, id: &str) {
    kms.connect_custom_key_store()
        .custom_key_store_id(id)
        .send()
        .await
        .expect("ConnectCustomKeyStore is accepted");
    assert_eq!(
        settled_connection(kms, id).await,
        (ConnectionStateType::Connected, None)
    );
}

/// The PKCS#11 label of a cluster's certificate on its HSMs (as the control plane writes it).
fn certificate_label(cluster: &str) -> String {
    format!("{cluster} cluster certificate")
}

#[test]
fn a_custom_key_store_is_created_connected_and_deleted_on_softhsm() {
    with_softhsm(
        "custom_key_stores::a_custom_key_store_is_created_connected_and_deleted_on_softhsm",
        life_cycle,
    );
}

async fn life_cycle(softhsm: SoftHsm) {
    let server = softhsm.server().await;
    let kms = server.client();
    let (cluster, ca) = active_cluster(
        &softhsm,
        &server,
        &["us-east-1a", "us-east-1b", "us-east-1a"],
    )
    .await;

    // Prerequisites.
    let other_ca = CustomerCa::new("someone else");
    let refused = failure(
        kms.create_custom_key_store()
            .custom_key_store_name("store")
            .cloud_hsm_cluster_id(&cluster)
            .trust_anchor_certificate(&other_ca.pem)
            .key_store_password(KMSUSER_PASSWORD)
            .send()
            .await,
    );
    assert_eq!(
        refused.code, "IncorrectTrustAnchorException",
        "{}",
        refused.message
    );
    let refused = failure(
        kms.create_custom_key_store()
            .custom_key_store_name("store")
            .cloud_hsm_cluster_id("cluster-aaaaaaaaaaa")
            .trust_anchor_certificate(&ca.pem)
            .key_store_password(KMSUSER_PASSWORD)
            .send()
            .await,
    );
    assert_eq!(refused.code, "CloudHsmClusterNotFoundException");

    // A store with the wrong password is created, then fails to connect.
    let create = |password: &'static str| {
        kms.create_custom_key_store()
            .custom_key_store_name("store")
            .cloud_hsm_cluster_id(&cluster)
            .trust_anchor_certificate(&ca.pem)
            .key_store_password(password)
            .send()
    };
    let id = create("wrong-password")
        .await
        .expect("CreateCustomKeyStore succeeds")
        .custom_key_store_id()
        .expect("an id")
        .to_owned();
    assert!(id.starts_with("cks-") && id.len() == 21, "{id}");
    let again = create("wrong-password")
        .await
        .expect("an identical retry succeeds");
    assert_eq!(again.custom_key_store_id(), Some(id.as_str()));
    let refused = failure(create("other-password").await);
    assert_eq!(refused.code, "CustomKeyStoreNameInUseException");
    let refused = failure(
        kms.create_custom_key_store()
            .custom_key_store_name("second")
            .cloud_hsm_cluster_id(&cluster)
            .trust_anchor_certificate(&ca.pem)
            .key_store_password(KMSUSER_PASSWORD)
            .send()
            .await,
    );
    assert_eq!(refused.code, "CloudHsmClusterInUseException");
    assert_eq!(
        connection(&kms, &id).await,
        (ConnectionStateType::Disconnected, None)
    );

    kms.connect_custom_key_store()
        .custom_key_store_id(&id)
        .send()
        .await
        .expect("ConnectCustomKeyStore is accepted");
    assert_eq!(
        settled_connection(&kms, &id).await,
        (
            ConnectionStateType::Failed,
            Some(ConnectionErrorCodeType::InvalidCredentials)
        )
    );
    let refused = failure(
        kms.connect_custom_key_store()
            .custom_key_store_id(&id)
            .send()
            .await,
    );
    assert_eq!(refused.code, "CustomKeyStoreInvalidStateException");
    kms.disconnect_custom_key_store()
        .custom_key_store_id(&id)
        .send()
        .await
        .expect("DisconnectCustomKeyStore succeeds");
    assert_eq!(
        connection(&kms, &id).await,
        (ConnectionStateType::Disconnected, None)
    );
    kms.delete_custom_key_store()
        .custom_key_store_id(&id)
        .send()
        .await
        .expect("DeleteCustomKeyStore succeeds");
    let refused = failure(
        kms.describe_custom_key_stores()
            .custom_key_store_id(&id)
            .send()
            .await,
    );
    assert_eq!(refused.code, "CustomKeyStoreNotFoundException");

    // The right password connects.
    let id = create(KMSUSER_PASSWORD)
        .await
        .expect("CreateCustomKeyStore succeeds")
        .custom_key_store_id()
        .expect("an id")
        .to_owned();
    let refused = failure(
        kms.update_custom_key_store()
            .custom_key_store_id(&id)
            .key_store_password("short")
            .send()
            .await,
    );
    assert_eq!(refused.code, "ValidationException");
    kms.update_custom_key_store()
        .custom_key_store_id(&id)
        .new_custom_key_store_name("renamed")
        .send()
        .await
        .expect("UpdateCustomKeyStore succeeds");
    let refused = failure(
        kms.create_key()
            .origin(OriginType::AwsCloudhsm)
            .custom_key_store_id(&id)
            .send()
            .await,
    );
    assert_eq!(refused.code, "CustomKeyStoreInvalidStateException");

    // An HSM whose cluster certificate does not chain to the store's trust anchor is not trusted:
    // the connection fails with NETWORK_ERRORS, as a CloudHSM client refuses such an HSM.
    let hsm_a = Pkcs11Cluster::open(
        &softhsm.hsms[..1],
        &softhsm.modules,
        ClusterOptions::default(),
    )
    .expect("open hsm-a");
    let kmsuser = Pin::new(KMSUSER_PASSWORD.to_owned());
    hsm_a.login_crypto_user(&kmsuser).expect("kmsuser logs in");
    let genuine = hsm_a
        .read_certificate(&certificate_label(&cluster))
        .expect("hsm-a holds the cluster certificate");
    let impostor = pem_body(&CustomerCa::new("impostor").pem, "CERTIFICATE");
    hsm_a
        .write_certificate(&certificate_label(&cluster), &impostor)
        .expect("replace hsm-a's certificate");
    hsm_a.logout_crypto_user();
    kms.connect_custom_key_store()
        .custom_key_store_id(&id)
        .send()
        .await
        .expect("ConnectCustomKeyStore is accepted");
    assert_eq!(
        settled_connection(&kms, &id).await,
        (
            ConnectionStateType::Failed,
            Some(ConnectionErrorCodeType::NetworkErrors)
        )
    );
    // Each attempt's end is a service event in the audit trail.
    let failures = |events: &[Value]| -> Vec<String> {
        events
            .iter()
            .filter(|event| {
                event["eventType"] == "AwsServiceEvent"
                    && event["serviceEventDetails"]["connectionState"] == "FAILED"
            })
            .filter_map(|event| event["serviceEventDetails"]["connectionErrorCode"].as_str())
            .map(str::to_owned)
            .collect()
    };
    let events = service_events_until(&server, "ConnectCustomKeyStore", |events| {
        failures(events).len() >= 2
    })
    .await;
    let mut codes = failures(&events);
    codes.sort();
    assert_eq!(codes, ["INVALID_CREDENTIALS", "NETWORK_ERRORS"]);
    kms.disconnect_custom_key_store()
        .custom_key_store_id(&id)
        .send()
        .await
        .expect("DisconnectCustomKeyStore succeeds");
    hsm_a
        .login_crypto_user(&kmsuser)
        .expect("the failed attempt left the password as it was");
    hsm_a
        .write_certificate(&certificate_label(&cluster), &genuine)
        .expect("put hsm-a's certificate back");
    hsm_a.logout_crypto_user();
    drop(hsm_a);

    // Connecting is asynchronous: while an HSM does not answer, ConnectCustomKeyStore has returned
    // and the store is CONNECTING; disconnecting then abandons the attempt.
    let module = softhsm.module();
    module.inject_fault("hsm-a", Some(Fault::Stall));
    kms.connect_custom_key_store()
        .custom_key_store_id(&id)
        .send()
        .await
        .expect("ConnectCustomKeyStore returns while an HSM hangs");
    assert_eq!(
        connection(&kms, &id).await,
        (ConnectionStateType::Connecting, None)
    );
    kms.connect_custom_key_store()
        .custom_key_store_id(&id)
        .send()
        .await
        .expect("connecting a CONNECTING store is accepted");
    let refused = failure(
        kms.create_key()
            .origin(OriginType::AwsCloudhsm)
            .custom_key_store_id(&id)
            .send()
            .await,
    );
    assert_eq!(refused.code, "CustomKeyStoreInvalidStateException");
    kms.disconnect_custom_key_store()
        .custom_key_store_id(&id)
        .send()
        .await
        .expect("DisconnectCustomKeyStore abandons the attempt");
    assert_eq!(
        connection(&kms, &id).await,
        (ConnectionStateType::Disconnected, None)
    );
    module.inject_fault("hsm-a", None);
    connect_store(&kms, &id).await;
    let listed = kms
        .describe_custom_key_stores()
        .custom_key_store_name("renamed")
        .send()
        .await
        .expect("DescribeCustomKeyStores by name");
    assert_eq!(
        listed.custom_key_stores()[0].cloud_hsm_cluster_id(),
        Some(cluster.as_str())
    );

    let random = kms
        .generate_random()
        .number_of_bytes(32)
        .custom_key_store_id(&id)
        .send()
        .await
        .expect("GenerateRandom from the cluster succeeds");
    assert_eq!(random.plaintext().map(|b| b.as_ref().len()), Some(32));

    // A key in the store: its backing key is made in the cluster, and it encrypts there.
    let created = kms
        .create_key()
        .origin(OriginType::AwsCloudhsm)
        .custom_key_store_id(&id)
        .send()
        .await
        .expect("CreateKey in the custom key store succeeds");
    let metadata = created.key_metadata().expect("metadata");
    let key_id = metadata.key_id().to_owned();
    let arn = metadata.arn().expect("an ARN").to_owned();
    assert_eq!(metadata.custom_key_store_id(), Some(id.as_str()));
    assert_eq!(metadata.cloud_hsm_cluster_id(), Some(cluster.as_str()));
    assert_eq!(metadata.origin(), Some(&OriginType::AwsCloudhsm));
    let described = kms
        .describe_key()
        .key_id(&key_id)
        .send()
        .await
        .expect("DescribeKey");
    let metadata = described.key_metadata().expect("metadata");
    assert_eq!(metadata.custom_key_store_id(), Some(id.as_str()));
    assert_eq!(metadata.key_state(), Some(&KeyState::Enabled));

    let context = [("purpose", "it")];
    let ciphertext = encrypt(&kms, &key_id, b"in the HSM", &context).await;
    assert_eq!(ciphertext[0], 2, "format version 2");
    assert_eq!(decrypt(&kms, &ciphertext, &context).await, b"in the HSM");
    let refused = failure(
        kms.decrypt()
            .ciphertext_blob(Blob::new(ciphertext.clone()))
            .encryption_context("purpose", "other")
            .send()
            .await,
    );
    assert_eq!(refused.code, "InvalidCiphertextException");
    let data_key = kms
        .generate_data_key()
        .key_id(&key_id)
        .key_spec(DataKeySpec::Aes256)
        .send()
        .await
        .expect("GenerateDataKey succeeds");
    let plaintext = data_key.plaintext().expect("a plaintext").as_ref().to_vec();
    let blob = data_key
        .ciphertext_blob()
        .expect("a blob")
        .as_ref()
        .to_vec();
    assert_eq!(decrypt(&kms, &blob, &[]).await, plaintext);
    let (software_key, _) = create_key(&kms, "software").await;
    let moved = kms
        .re_encrypt()
        .ciphertext_blob(Blob::new(ciphertext.clone()))
        .source_encryption_context("purpose", "it")
        .destination_key_id(&software_key)
        .send()
        .await
        .expect("ReEncrypt out of the store succeeds");
    let moved = moved.ciphertext_blob().expect("a blob").as_ref().to_vec();
    assert_eq!(decrypt(&kms, &moved, &[]).await, b"in the HSM");
    let back = kms
        .re_encrypt()
        .ciphertext_blob(Blob::new(moved))
        .destination_key_id(&key_id)
        .send()
        .await
        .expect("ReEncrypt into the store succeeds");
    let back = back.ciphertext_blob().expect("a blob").as_ref().to_vec();
    assert_eq!(decrypt(&kms, &back, &[]).await, b"in the HSM");
    let refused = failure(kms.enable_key_rotation().key_id(&key_id).send().await);
    assert_eq!(refused.code, "UnsupportedOperationException");

    let refused = failure(
        kms.update_custom_key_store()
            .custom_key_store_id(&id)
            .key_store_password(KMSUSER_PASSWORD)
            .send()
            .await,
    );
    assert_eq!(refused.code, "CustomKeyStoreInvalidStateException");
    let refused = failure(
        kms.delete_custom_key_store()
            .custom_key_store_id(&id)
            .send()
            .await,
    );
    assert_eq!(refused.code, "CustomKeyStoreInvalidStateException");

    // Disconnected: the key is unavailable, and the store cannot be deleted while it has keys.
    kms.disconnect_custom_key_store()
        .custom_key_store_id(&id)
        .send()
        .await
        .expect("DisconnectCustomKeyStore succeeds");
    let described = kms
        .describe_key()
        .key_id(&key_id)
        .send()
        .await
        .expect("DescribeKey");
    assert_eq!(
        described.key_metadata().and_then(|m| m.key_state()),
        Some(&KeyState::Unavailable)
    );
    let refused = failure(
        kms.encrypt()
            .key_id(&key_id)
            .plaintext(Blob::new(b"x".to_vec()))
            .send()
            .await,
    );
    assert_eq!(refused.code, "KMSInvalidStateException");
    assert!(
        refused.message.ends_with("is unavailable."),
        "{}",
        refused.message
    );
    let refused = failure(
        kms.decrypt()
            .ciphertext_blob(Blob::new(ciphertext.clone()))
            .encryption_context("purpose", "it")
            .send()
            .await,
    );
    assert_eq!(refused.code, "KMSInvalidStateException");
    let refused = failure(
        kms.delete_custom_key_store()
            .custom_key_store_id(&id)
            .send()
            .await,
    );
    assert_eq!(refused.code, "CustomKeyStoreHasCMKsException");

    // Connecting rotated kmsuser's password: the operator's password no longer works. The operator
    // resets it as the admin, finds the backing key on every HSM by its label, the key ARN, and tells
    // the store the new password.
    let tokens = Pkcs11Cluster::open(
        &softhsm.hsms[..3],
        &softhsm.modules,
        ClusterOptions::default(),
    )
    .expect("open the tokens");
    assert!(
        tokens
            .login_crypto_user(&Pin::new(KMSUSER_PASSWORD.to_owned()))
            .is_err(),
        "the password was rotated"
    );
    let (ok, output) = softhsm
        .hsm_command(
            &server,
            &[
                "change-password",
                "--cluster",
                &cluster,
                "--password-file",
                &softhsm.file("kmsuser.pw"),
                "--admin-password-file",
                &softhsm.file("so.pin"),
            ],
        )
        .await;
    assert!(ok, "change-password: {output}");
    tokens
        .login_crypto_user(&Pin::new(KMSUSER_PASSWORD.to_owned()))
        .expect("kmsuser logs in with the reset password");
    let found = tokens.key_exists(&arn);
    assert_eq!(found.len(), 3);
    assert!(
        found.iter().all(|hsm| matches!(hsm.result, Ok(true))),
        "every HSM holds the backing key labelled {arn}: {found:?}"
    );
    tokens.logout_crypto_user();
    drop(tokens);
    kms.update_custom_key_store()
        .custom_key_store_id(&id)
        .key_store_password(KMSUSER_PASSWORD)
        .send()
        .await
        .expect("UpdateCustomKeyStore succeeds");
    connect_store(&kms, &id).await;
    assert_eq!(decrypt(&kms, &ciphertext, &context).await, b"in the HSM");

    // Two active HSMs in one zone are not enough to create keys.
    let client = cloudhsm_client(&server);
    let in_b = describe(&client, &cluster)
        .await
        .hsms()
        .iter()
        .find(|h| h.availability_zone() == Some("us-east-1b"))
        .expect("an HSM in us-east-1b")
        .hsm_id()
        .to_owned();
    client
        .delete_hsm()
        .cluster_id(&cluster)
        .hsm_id(&in_b)
        .send()
        .await
        .expect("DeleteHsm succeeds");
    let refused = failure(
        kms.create_key()
            .origin(OriginType::AwsCloudhsm)
            .custom_key_store_id(&id)
            .send()
            .await,
    );
    assert_eq!(
        refused.code, "CloudHsmClusterInvalidConfigurationException",
        "{}",
        refused.message
    );

    // Once its key is deleted (and its backing key removed from the cluster), the store can go.
    kms.schedule_key_deletion()
        .key_id(&key_id)
        .pending_window_in_days(7)
        .send()
        .await
        .expect("ScheduleKeyDeletion succeeds");
    server
        .clock()
        .advance(std::time::Duration::from_secs(8 * 86_400));
    let refused = failure(kms.describe_key().key_id(&key_id).send().await);
    assert_eq!(refused.code, "NotFoundException");
    kms.disconnect_custom_key_store()
        .custom_key_store_id(&id)
        .send()
        .await
        .expect("DisconnectCustomKeyStore succeeds");
    kms.delete_custom_key_store()
        .custom_key_store_id(&id)
        .send()
        .await
        .expect("DeleteCustomKeyStore succeeds once the store has no keys");
    server.stop().await;
}

#[test]
fn losing_hsms_under_load_loses_no_request_and_service_resumes_when_they_return() {
    with_softhsm(
        "custom_key_stores::losing_hsms_under_load_loses_no_request_and_service_resumes_when_they_return",
        hsm_loss,
    );
}

/// Runs Encrypt and Decrypt from four tasks, `rounds` each, and calls `fault` once a tenth of the
/// requests are done, while the others still run; every request must succeed.
async fn load_through(kms: &aws_sdk_kms::Client, key_id: &str, rounds: u32, fault: impl FnOnce()) {
    let progress = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let mut tasks = Vec::new();
    for task in 0..4u8 {
        let kms = kms.clone();
        let key_id = key_id.to_owned();
        let progress = progress.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = 0u32;
            for round in 0..rounds {
                let plaintext = format!("task {task} round {round}");
                let ciphertext =
                    encrypt(&kms, &key_id, plaintext.as_bytes(), &[("task", "load")]).await;
                assert_eq!(
                    decrypt(&kms, &ciphertext, &[("task", "load")]).await,
                    plaintext.as_bytes()
                );
                done += 1;
                progress.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            done
        }));
    }
    let total = 4 * rounds;
    while progress.load(std::sync::atomic::Ordering::SeqCst) < total / 10 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    fault();
    let at_fault = progress.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        at_fault < total,
        "the load must still be running when the HSM fails"
    );
    let mut completed = 0;
    for task in tasks {
        completed += task
            .await
            .expect("no request failed while another HSM could serve it");
    }
    assert_eq!(completed, total);
}

/// The labels of the SoftHSM tokens that still answer (a token whose directory was removed does not).
fn answering_tokens(softhsm: &SoftHsm) -> Vec<String> {
    let module = softhsm.module();
    let pkcs11 = module.pkcs11();
    let slots = pkcs11.get_slots_with_token().expect("list the slots");
    slots
        .into_iter()
        .filter_map(|slot| pkcs11.get_token_info(slot).ok())
        .filter(|info| info.token_initialized())
        .map(|info| info.label().trim_end().to_owned())
        .collect()
}

async fn hsm_loss(softhsm: SoftHsm) {
    let server = softhsm.server().await;
    let kms = server.client();
    let (cluster, ca) = active_cluster(
        &softhsm,
        &server,
        &["us-east-1a", "us-east-1b", "us-east-1a"],
    )
    .await;
    let id = create_store(&kms, "resilient", &cluster, &ca.pem).await;
    connect_store(&kms, &id).await;
    let key = kms
        .create_key()
        .origin(OriginType::AwsCloudhsm)
        .custom_key_store_id(&id)
        .send()
        .await
        .expect("CreateKey in the store succeeds");
    let key_id = key.key_metadata().expect("metadata").key_id().to_owned();
    let members = ["hsm-a", "hsm-b", "hsm-c"];

    // One HSM's token disappears under load.
    let lost = softhsm.token_dir("hsm-b");
    load_through(&kms, &key_id, 150, || {
        std::fs::remove_dir_all(&lost).expect("remove hsm-b's token");
    })
    .await;

    // A second HSM's module fails every call under load: the last one serves alone.
    let mut answering: Vec<String> = answering_tokens(&softhsm)
        .into_iter()
        .filter(|label| members.contains(&label.as_str()))
        .collect();
    answering.sort();
    assert_eq!(answering, ["hsm-a", "hsm-c"], "hsm-b's token is gone");
    let module = softhsm.module();
    load_through(&kms, &key_id, 100, || {
        module.inject_fault(&answering[0], Some(Fault::Outage));
    })
    .await;
    let before = encrypt(&kms, &key_id, b"before the outage", &[]).await;

    // Every HSM gone: the key's operations fail with the documented errors, never a 500, and the store
    // stays CONNECTED.
    module.inject_fault(&answering[1], Some(Fault::Outage));
    let refused = failure(
        kms.encrypt()
            .key_id(&key_id)
            .plaintext(Blob::new(b"x".to_vec()))
            .send()
            .await,
    );
    assert_eq!(
        refused.code, "KMSInvalidStateException",
        "{}",
        refused.message
    );
    assert!(
        refused
            .message
            .contains("cannot communicate with your CloudHSM cluster"),
        "{}",
        refused.message
    );
    let refused = failure(
        kms.decrypt()
            .ciphertext_blob(Blob::new(before.clone()))
            .send()
            .await,
    );
    assert_eq!(
        refused.code, "KMSInvalidStateException",
        "{}",
        refused.message
    );
    let refused = failure(
        kms.generate_data_key()
            .key_id(&key_id)
            .key_spec(DataKeySpec::Aes256)
            .send()
            .await,
    );
    assert_eq!(
        refused.code, "KMSInvalidStateException",
        "{}",
        refused.message
    );
    let refused = failure(
        kms.generate_random()
            .number_of_bytes(16)
            .custom_key_store_id(&id)
            .send()
            .await,
    );
    assert_eq!(
        refused.code, "CustomKeyStoreInvalidStateException",
        "{}",
        refused.message
    );
    let refused = failure(
        kms.create_key()
            .origin(OriginType::AwsCloudhsm)
            .custom_key_store_id(&id)
            .send()
            .await,
    );
    assert_eq!(
        refused.code, "CustomKeyStoreInvalidStateException",
        "{}",
        refused.message
    );
    assert_eq!(
        connection(&kms, &id).await,
        (ConnectionStateType::Connected, None)
    );
    let described = kms
        .describe_key()
        .key_id(&key_id)
        .send()
        .await
        .expect("DescribeKey");
    assert_eq!(
        described.key_metadata().and_then(|m| m.key_state()),
        Some(&KeyState::Enabled),
        "a failing cluster does not change the key's state"
    );

    // The HSMs come back: service resumes by itself, without reconnecting the store.
    module.inject_fault(&answering[0], None);
    module.inject_fault(&answering[1], None);
    let deadline = Instant::now() + CONNECTION_PATIENCE;
    let resumed = loop {
        match kms
            .encrypt()
            .key_id(&key_id)
            .plaintext(Blob::new(b"after".to_vec()))
            .send()
            .await
        {
            Ok(out) => break out.ciphertext_blob().expect("a blob").as_ref().to_vec(),
            Err(e) => {
                let code = e
                    .as_service_error()
                    .and_then(|e| e.meta().code())
                    .map(str::to_owned);
                assert_eq!(code.as_deref(), Some("KMSInvalidStateException"), "{e:?}");
                assert!(
                    Instant::now() < deadline,
                    "service did not resume within {CONNECTION_PATIENCE:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(decrypt(&kms, &resumed, &[]).await, b"after");
    assert_eq!(decrypt(&kms, &before, &[]).await, b"before the outage");

    // The audit trail has the connection and every HSM leaving and rejoining service.
    let hsm_changes = |events: &[Value]| -> Vec<(String, String)> {
        events
            .iter()
            .map(|event| {
                assert_eq!(event["eventType"], "AwsServiceEvent");
                assert_eq!(
                    event["serviceEventDetails"]["customKeyStoreId"],
                    id.as_str()
                );
                assert_eq!(event["serviceEventDetails"]["clusterId"], cluster.as_str());
                assert!(
                    event["serviceEventDetails"]["hsmId"]
                        .as_str()
                        .is_some_and(|hsm| hsm.starts_with("hsm-") && hsm.len() > 10),
                    "the HSM is named by its CloudHSM id: {event}"
                );
                (
                    event["additionalEventData"]["declaredHsm"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                    event["serviceEventDetails"]["hsmState"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                )
            })
            .collect()
    };
    let expected = [
        ("hsm-a", "DEGRADED"),
        ("hsm-a", "ACTIVE"),
        ("hsm-b", "DEGRADED"),
        ("hsm-c", "DEGRADED"),
        ("hsm-c", "ACTIVE"),
    ];
    let changes = service_events_until(&server, "HsmStateChange", |events| {
        let changes = hsm_changes(events);
        expected
            .iter()
            .all(|(hsm, state)| changes.contains(&((*hsm).to_owned(), (*state).to_owned())))
    })
    .await;
    let degraded = changes
        .iter()
        .filter(|event| event["serviceEventDetails"]["hsmState"] == "DEGRADED")
        .find(|event| event["additionalEventData"]["declaredHsm"] == "hsm-b")
        .expect("hsm-b's loss is recorded");
    assert!(
        degraded["serviceEventDetails"]["error"].is_string(),
        "{degraded}"
    );
    let connected = service_events_until(&server, "ConnectCustomKeyStore", |events| {
        events
            .iter()
            .any(|event| event["eventType"] == "AwsServiceEvent")
    })
    .await;
    let connected = connected
        .iter()
        .find(|event| event["eventType"] == "AwsServiceEvent")
        .expect("the connection is a service event");
    assert_eq!(
        connected["serviceEventDetails"]["connectionState"],
        "CONNECTED"
    );
    assert_eq!(
        connected["serviceEventDetails"]["customKeyStoreId"],
        id.as_str()
    );
    assert_eq!(
        connected["additionalEventData"]["clusterId"],
        cluster.as_str()
    );
    assert_eq!(
        connected["additionalEventData"]["customKeyStoreName"],
        "resilient"
    );
    assert_eq!(connected["userIdentity"]["invokedBy"], "AWS Internal");

    // The cluster is deleted under the connected store: once its HSMs fail, the store is disconnected
    // by the service, and its keys are unavailable.
    let client = cloudhsm_client(&server);
    for hsm in describe(&client, &cluster).await.hsms() {
        client
            .delete_hsm()
            .cluster_id(&cluster)
            .hsm_id(hsm.hsm_id())
            .send()
            .await
            .expect("DeleteHsm succeeds");
    }
    client
        .delete_cluster()
        .cluster_id(&cluster)
        .send()
        .await
        .expect("DeleteCluster succeeds");
    module.inject_fault("hsm-a", Some(Fault::Outage));
    module.inject_fault("hsm-c", Some(Fault::Outage));
    let refused = failure(
        kms.encrypt()
            .key_id(&key_id)
            .plaintext(Blob::new(b"x".to_vec()))
            .send()
            .await,
    );
    assert_eq!(
        refused.code, "KMSInvalidStateException",
        "{}",
        refused.message
    );
    assert_eq!(
        connection(&kms, &id).await,
        (ConnectionStateType::Disconnected, None)
    );
    let described = kms
        .describe_key()
        .key_id(&key_id)
        .send()
        .await
        .expect("DescribeKey");
    assert_eq!(
        described.key_metadata().and_then(|m| m.key_state()),
        Some(&KeyState::Unavailable)
    );
    let dropped = service_events_until(&server, "DisconnectCustomKeyStore", |events| {
        !events.is_empty()
    })
    .await;
    assert_eq!(dropped[0]["eventType"], "AwsServiceEvent");
    assert_eq!(
        dropped[0]["serviceEventDetails"]["connectionState"],
        "DISCONNECTED"
    );
    assert_eq!(
        dropped[0]["serviceEventDetails"]["reason"],
        "CLUSTER_NOT_FOUND"
    );
    assert_eq!(
        dropped[0]["serviceEventDetails"]["customKeyStoreId"],
        id.as_str()
    );
    server.stop().await;
}

/// The audit records named `event_name`, looked up with LookupEvents until `complete` holds of them:
/// service events are recorded in the background.
async fn service_events_until(
    server: &TestServer,
    event_name: &str,
    complete: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let signer = Signer {
        service: "cloudtrail",
        ..Signer::dev()
    };
    let body = json!({
        "LookupAttributes": [{ "AttributeKey": "EventName", "AttributeValue": event_name }],
    })
    .to_string();
    let deadline = Instant::now() + CONNECTION_PATIENCE;
    loop {
        let (status, response) = server
            .raw_as(
                "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents",
                &body,
                Some(signer),
            )
            .await;
        assert_eq!(status, 200, "{response}");
        let records: Vec<Value> = response["Events"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|entry| entry["CloudTrailEvent"].as_str())
            .map(|text| serde_json::from_str(text).expect("each record is JSON"))
            .collect();
        if complete(&records) {
            return records;
        }
        assert!(
            Instant::now() < deadline,
            "the audit trail lacks {event_name} events: {records:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What one custom key store operation (or GenerateRandom from a store) returned for `client`: `Ok`, or
/// the error code and message.
async fn store_action(client: &aws_sdk_kms::Client, action: &str) -> Result<(), (String, String)> {
    const STORE: &str = "cks-0123456789abcdef0";
    let refused = |failure: crate::harness::Failure| (failure.code, failure.message);
    match action {
        "kms:CreateCustomKeyStore" => client
            .create_custom_key_store()
            .custom_key_store_name("store")
            .cloud_hsm_cluster_id("cluster-aaaaaaaaaaa")
            .trust_anchor_certificate(CustomerCa::new("anchor").pem)
            .key_store_password(KMSUSER_PASSWORD)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| refused(failure::<(), _, _>(Err(e)))),
        "kms:DescribeCustomKeyStores" => client
            .describe_custom_key_stores()
            .send()
            .await
            .map(|_| ())
            .map_err(|e| refused(failure::<(), _, _>(Err(e)))),
        "kms:ConnectCustomKeyStore" => client
            .connect_custom_key_store()
            .custom_key_store_id(STORE)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| refused(failure::<(), _, _>(Err(e)))),
        "kms:DisconnectCustomKeyStore" => client
            .disconnect_custom_key_store()
            .custom_key_store_id(STORE)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| refused(failure::<(), _, _>(Err(e)))),
        "kms:UpdateCustomKeyStore" => client
            .update_custom_key_store()
            .custom_key_store_id(STORE)
            .new_custom_key_store_name("renamed")
            .send()
            .await
            .map(|_| ())
            .map_err(|e| refused(failure::<(), _, _>(Err(e)))),
        "kms:DeleteCustomKeyStore" => client
            .delete_custom_key_store()
            .custom_key_store_id(STORE)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| refused(failure::<(), _, _>(Err(e)))),
        "kms:GenerateRandom" => client
            .generate_random()
            .number_of_bytes(8)
            .custom_key_store_id(STORE)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| refused(failure::<(), _, _>(Err(e)))),
        other => panic!("not a custom key store action: {other}"),
    }
}

/// The custom key store operations name no key, so identity policies on `*` decide them, as in AWS: an
/// IAM user without a policy is refused with AWS's wording, one whose policy allows them gets as far as
/// the store (which does not exist here), and an explicit deny wins. Account roots may do them all.
#[tokio::test(flavor = "multi_thread")]
async fn custom_key_store_operations_need_identity_policies() {
    use crate::iam::{Keys, iam, kms, user_with_key};

    let server = TestServer::start().await;
    let endpoint = server.endpoint();
    let root = server.client();
    let actions = [
        (
            "kms:CreateCustomKeyStore",
            "CloudHsmClusterNotFoundException",
        ),
        ("kms:DescribeCustomKeyStores", ""),
        (
            "kms:ConnectCustomKeyStore",
            "CustomKeyStoreNotFoundException",
        ),
        (
            "kms:DisconnectCustomKeyStore",
            "CustomKeyStoreNotFoundException",
        ),
        (
            "kms:UpdateCustomKeyStore",
            "CustomKeyStoreNotFoundException",
        ),
        (
            "kms:DeleteCustomKeyStore",
            "CustomKeyStoreNotFoundException",
        ),
        ("kms:GenerateRandom", "CustomKeyStoreNotFoundException"),
    ];
    let past_authorization = |outcome: Result<(), (String, String)>, expected: &str| match outcome {
        Ok(()) => expected.is_empty(),
        Err((code, _)) => code == expected,
    };
    for (action, expected) in actions {
        let outcome = store_action(&root, action).await;
        assert!(
            past_authorization(outcome.clone(), expected),
            "the root may {action}: {outcome:?}"
        );
    }

    let operator = user_with_key(&endpoint, "hsm-operator").await;
    let as_operator = kms(&endpoint, &operator);
    let operator_arn = format!("arn:aws:iam::{}:user/hsm-operator", crate::harness::ACCOUNT);
    for (action, _) in actions {
        assert_eq!(
            store_action(&as_operator, action).await,
            Err((
                "AccessDeniedException".to_owned(),
                format!(
                    "User: {operator_arn} is not authorized to perform: {action} because no \
                     identity-based policy allows the {action} action"
                )
            ))
        );
    }
    let names: Vec<String> = actions
        .iter()
        .map(|(action, _)| format!("\"{action}\""))
        .collect();
    let admin = iam(&endpoint, &Keys::dev());
    admin
        .put_user_policy()
        .user_name("hsm-operator")
        .policy_name("key-stores")
        .policy_document(format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":[{}],"Resource":"*"}}]}}"#,
            names.join(",")
        ))
        .send()
        .await
        .expect("PutUserPolicy");
    for (action, expected) in actions {
        let outcome = store_action(&as_operator, action).await;
        assert!(
            past_authorization(outcome.clone(), expected),
            "{action} is allowed: {outcome:?}"
        );
    }
    admin
        .put_user_policy()
        .user_name("hsm-operator")
        .policy_name("no-deleting")
        .policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"kms:DeleteCustomKeyStore","Resource":"*"}]}"#,
        )
        .send()
        .await
        .expect("PutUserPolicy");
    assert_eq!(
        store_action(&as_operator, "kms:DeleteCustomKeyStore").await,
        Err((
            "AccessDeniedException".to_owned(),
            format!(
                "User: {operator_arn} is not authorized to perform: kms:DeleteCustomKeyStore with an \
                 explicit deny in an identity-based policy"
            )
        ))
    );
    server.stop().await;
}

#[test]
fn hsms_join_and_leave_a_cluster_while_its_key_store_stays_connected() {
    with_softhsm(
        "custom_key_stores::hsms_join_and_leave_a_cluster_while_its_key_store_stays_connected",
        membership,
    );
}

#[test]
fn an_hsm_created_while_the_store_is_disconnected_joins_through_it_once_connected() {
    with_softhsm(
        "custom_key_stores::an_hsm_created_while_the_store_is_disconnected_joins_through_it_once_connected",
        late_join,
    );
}

async fn late_join(softhsm: SoftHsm) {
    let server = softhsm.server().await;
    let kms = server.client();
    let cloudhsm = cloudhsm_client(&server);
    let (cluster, store, sealed) = store_on_two_hsms(&softhsm, &server, "late-join").await;
    kms.disconnect_custom_key_store()
        .custom_key_store_id(&store)
        .send()
        .await
        .expect("DisconnectCustomKeyStore succeeds");

    // With no store connected, the new HSM waits for its users and keys; kmsuser's password is one
    // only the store knows, so a sync without it needs a connected store.
    let added = create_hsm(&cloudhsm, &cluster, "us-east-1a").await;
    assert_eq!(
        added.state(),
        Some(&aws_sdk_cloudhsmv2::types::HsmState::CreateInProgress),
        "{added:?}"
    );
    let message = added.state_message().unwrap_or_default();
    assert!(
        message.contains("as soon as a custom key store connects")
            && message.contains(&format!("strongroom hsm sync --cluster {cluster}")),
        "{message}"
    );
    let (ok, output) = softhsm
        .hsm_command(&server, &["sync", "--cluster", &cluster])
        .await;
    assert!(!ok, "{output}");
    assert!(
        output.contains(&format!(
            "No custom key store is connected to cluster {cluster}"
        )),
        "{output}"
    );

    // Connecting the store brings the waiting HSM in, with nobody asking.
    connect_store(&kms, &store).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let joined = describe(&cloudhsm, &cluster).await;
        if joined
            .hsms()
            .iter()
            .all(|hsm| hsm.state() == Some(&aws_sdk_cloudhsmv2::types::HsmState::Active))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the waiting HSM never joined once the store connected: {joined:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The store, connected throughout, serves the key from the new HSM alone.
    served_by_the_new_hsm_alone(&softhsm, &kms, &store, &sealed).await;
    let (ok, output) = softhsm
        .hsm_command(&server, &["sync", "--cluster", &cluster])
        .await;
    assert!(ok && output.contains("is in sync"), "{output}");
    server.stop().await;
}

/// Decrypts `sealed` until it works again after a fault was cleared (the store probes HSMs it found
/// failing now and then, not at every request).
async fn decrypts_again(kms: &aws_sdk_kms::Client, sealed: &[u8], plaintext: &[u8]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match kms
            .decrypt()
            .ciphertext_blob(Blob::new(sealed.to_vec()))
            .send()
            .await
        {
            Ok(opened) => {
                assert_eq!(opened.plaintext().expect("a plaintext").as_ref(), plaintext);
                return;
            }
            Err(error) => assert!(
                Instant::now() < deadline,
                "Decrypt still fails after the fault was cleared: {error:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Checks that `store` is connected and, with hsm-a and hsm-b in an outage, still decrypts `sealed`
/// (so from the HSM that joined), then ends the outage.
async fn served_by_the_new_hsm_alone(
    softhsm: &SoftHsm,
    kms: &aws_sdk_kms::Client,
    store: &str,
    sealed: &[u8],
) {
    assert_eq!(
        connection(kms, store).await,
        (ConnectionStateType::Connected, None)
    );
    let module = softhsm.module();
    module.inject_fault("hsm-a", Some(Fault::Outage));
    module.inject_fault("hsm-b", Some(Fault::Outage));
    decrypts_again(kms, sealed, PLAINTEXT_BEFORE_JOINING).await;
    module.inject_fault("hsm-a", None);
    module.inject_fault("hsm-b", None);
}

/// What [`store_on_two_hsms`] encrypted.
const PLAINTEXT_BEFORE_JOINING: &[u8] = b"made before the HSM joined";

/// A connected store `name` on a new cluster of hsm-a (us-east-1a) and hsm-b (us-east-1b), with one
/// key: returns the cluster, the store and a ciphertext of [`PLAINTEXT_BEFORE_JOINING`] under the key.
async fn store_on_two_hsms(
    softhsm: &SoftHsm,
    server: &TestServer,
    name: &str,
) -> (String, String, Vec<u8>) {
    let kms = server.client();
    let (cluster, ca) = active_cluster(softhsm, server, &["us-east-1a", "us-east-1b"]).await;
    let store = create_store(&kms, name, &cluster, &ca.pem).await;
    connect_store(&kms, &store).await;
    let key_id = kms
        .create_key()
        .custom_key_store_id(&store)
        .origin(OriginType::AwsCloudhsm)
        .send()
        .await
        .expect("CreateKey in the store")
        .key_metadata()
        .map(|m| m.key_id().to_owned())
        .expect("a key id");
    let sealed = kms
        .encrypt()
        .key_id(&key_id)
        .plaintext(Blob::new(PLAINTEXT_BEFORE_JOINING.to_vec()))
        .send()
        .await
        .expect("Encrypt in the HSMs")
        .ciphertext_blob()
        .expect("a ciphertext")
        .as_ref()
        .to_vec();
    (cluster, store, sealed)
}

async fn membership(softhsm: SoftHsm) {
    let server = softhsm.server().await;
    let kms = server.client();
    let cloudhsm = cloudhsm_client(&server);
    let (cluster, store, sealed) = store_on_two_hsms(&softhsm, &server, "membership").await;
    let plaintext = PLAINTEXT_BEFORE_JOINING;

    // As CloudHSM clones a new HSM from the cluster's backup, CreateHsm brings hsm-c in through the
    // connected store at once: it is ACTIVE, and the store, still connected, uses it.
    let added = create_hsm(&cloudhsm, &cluster, "us-east-1a").await;
    assert_eq!(
        added.state(),
        Some(&aws_sdk_cloudhsmv2::types::HsmState::Active),
        "{added:?}"
    );
    served_by_the_new_hsm_alone(&softhsm, &kms, &store, &sealed).await;

    // DeleteHsm takes hsm-c out of the store, which stays connected: with the two others down,
    // nothing serves the key any more, until they answer again.
    let module = softhsm.module();
    decrypts_again(&kms, &sealed, plaintext).await;
    cloudhsm
        .delete_hsm()
        .cluster_id(&cluster)
        .hsm_id(added.hsm_id())
        .send()
        .await
        .expect("DeleteHsm succeeds");
    assert_eq!(
        connection(&kms, &store).await,
        (ConnectionStateType::Connected, None)
    );
    module.inject_fault("hsm-a", Some(Fault::Outage));
    module.inject_fault("hsm-b", Some(Fault::Outage));
    let refused = failure(
        kms.decrypt()
            .ciphertext_blob(Blob::new(sealed.clone()))
            .send()
            .await,
    );
    assert_eq!(
        refused.code, "KMSInvalidStateException",
        "{}",
        refused.message
    );
    module.inject_fault("hsm-a", None);
    module.inject_fault("hsm-b", None);
    decrypts_again(&kms, &sealed, plaintext).await;
    server.stop().await;
}
