//! kmsuser's password rotation on connect is crash-safe: the next password is recorded (as the store's
//! pending password) before any HSM changes and promoted once every HSM holds it, so a server killed
//! in between, or an HSM that fails in between, leaves a store that connects next time, by itself
//! after a restart.
//!
//! The kill test runs the real `strongroom` binary (see `cks_restart`) with a test-only pause after
//! each HSM that took the new password (`STRONGROOM_TEST_ONLY_KMSUSER_ROTATION_PAUSE_MS`), and kills
//! it with SIGKILL while the first HSM holds the new password and the others the old one. The failure
//! test runs the server in process on SoftHSM (see `cloudhsm`) and makes one HSM's `C_SetPIN` fail
//! with an injected fault.

use std::path::Path;
use std::time::{Duration, Instant};

use aws_sdk_kms::types::{ConnectionErrorCodeType, ConnectionStateType, OriginType};
use strongroom_keystore_pkcs11::{
    Cluster as Pkcs11Cluster, ClusterOptions, Error as HsmError, Fault, Pin,
};
use strongroom_storage::key_stores::{CustomKeyStoreRecord, KeyStoreStore};
use strongroom_storage::sqlite::SqliteStore;
use strongroom_types::Namespace;

use crate::cks_restart::{Hsms, store_with_a_key};
use crate::cloudhsm::{
    KMSUSER_PASSWORD, SoftHsm, client as cloudhsm_client, describe, with_softhsm,
};
use crate::custom_key_stores::{
    CONNECTION_PATIENCE, active_cluster, connect_store, connection, create_store,
    settled_connection,
};
use crate::harness::{ACCOUNT, REGION, decrypt, encrypt};

/// What the server logs when the test-only pause holds the rotation.
const PAUSED: &str = "TEST ONLY: pausing the kmsuser password rotation";
/// What the server logs when it finds a rotation that did not finish.
const UNFINISHED: &str = "rotation of kmsuser's password did not finish";
const CONTEXT: [(&str, &str); 1] = [("purpose", "rotation")];

fn namespace() -> Namespace {
    Namespace {
        account: ACCOUNT.parse().expect("an account"),
        region: REGION.parse().expect("a Region"),
    }
}

/// Store `id` as recorded in the database of `data_dir`.
async fn recorded(data_dir: &Path, id: &str) -> CustomKeyStoreRecord {
    let store = SqliteStore::open(&data_dir.join(strongroom_server::DATABASE_FILE))
        .expect("open the database");
    store
        .key_store(&namespace(), id)
        .await
        .expect("read the store")
        .expect("the store exists")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_killed_during_the_password_rotation_connects_the_store_after_a_restart() {
    let hsms = Hsms::new("cks-rotation-kill");
    let server = hsms.serve();
    let (store, key) = store_with_a_key(&hsms, &server).await;
    let before = encrypt(&server.kms(), &key, b"written before the crash", &CONTEXT).await;
    server.terminate();
    let settled = recorded(&hsms.path("data"), &store).await;
    assert_eq!(settled.connection_state, "CONNECTED");
    assert_eq!(settled.wrapped_pending_password, None);

    // The restarted server connects the store again, and so rotates kmsuser's password: it pauses once
    // the first HSM holds the new password, and is killed there.
    let server = hsms.serve_with(&[("STRONGROOM_TEST_ONLY_KMSUSER_ROTATION_PAUSE_MS", "600000")]);
    let deadline = Instant::now() + CONNECTION_PATIENCE;
    while server.logged(PAUSED).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the rotation never reached the pause"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.kill9();
    let killed = recorded(&hsms.path("data"), &store).await;
    assert_eq!(killed.connection_state, "CONNECTED");
    assert_eq!(
        killed.wrapped_password, settled.wrapped_password,
        "the current password is the one the HSMs after the first still hold"
    );
    let pending = killed
        .wrapped_pending_password
        .clone()
        .expect("the new password was recorded before the first HSM took it");

    // The next start finishes the rotation by itself: the store is CONNECTED, and what was encrypted
    // before the crash decrypts (the request waits for the connection).
    let server = hsms.serve();
    let kms = server.kms();
    assert_eq!(
        decrypt(&kms, &before, &CONTEXT).await,
        b"written before the crash"
    );
    assert_eq!(
        connection(&kms, &store).await,
        (ConnectionStateType::Connected, None)
    );
    assert!(
        !server.logged(UNFINISHED).is_empty(),
        "the server says it finishes the rotation"
    );
    let after = encrypt(&kms, &key, b"written after the crash", &CONTEXT).await;
    assert_eq!(
        decrypt(&kms, &after, &CONTEXT).await,
        b"written after the crash"
    );
    server.terminate();
    let finished = recorded(&hsms.path("data"), &store).await;
    assert_eq!(finished.connection_state, "CONNECTED");
    assert_eq!(
        finished.wrapped_password, pending,
        "the pending password was promoted"
    );
    assert_eq!(finished.wrapped_pending_password, None);

    // Every HSM holds the promoted password: the store connects once more, rotating again.
    let server = hsms.serve();
    let kms = server.kms();
    assert_eq!(
        decrypt(&kms, &after, &CONTEXT).await,
        b"written after the crash"
    );
    assert!(
        server.logged(UNFINISHED).is_empty(),
        "a finished rotation leaves nothing to finish"
    );
    server.terminate();
    let again = recorded(&hsms.path("data"), &store).await;
    assert_ne!(again.wrapped_password, pending);
    assert_eq!(again.wrapped_pending_password, None);
}

#[test]
fn a_password_change_failing_on_one_hsm_midway_leaves_a_store_that_connects_next_time() {
    with_softhsm(
        "cks_rotation::a_password_change_failing_on_one_hsm_midway_leaves_a_store_that_connects_next_time",
        pin_change_failure,
    );
}

/// Whether kmsuser logs in to the token labelled `label` with `password`; only meaningful while the
/// server has kmsuser logged out of it (PKCS#11 keeps login state per token and process).
fn accepts(softhsm: &SoftHsm, label: &str, password: &str) -> bool {
    let config = softhsm
        .hsms
        .iter()
        .find(|hsm| hsm.token_label == label)
        .cloned()
        .expect("a declared token");
    let cluster = Pkcs11Cluster::open(&[config], &softhsm.modules, ClusterOptions::default())
        .expect("open the token");
    let login = cluster.login_crypto_user(&Pin::new(password.to_owned()));
    cluster.logout_crypto_user();
    match login {
        Ok(()) => true,
        Err(HsmError::InvalidCredentials { .. }) => false,
        Err(e) => panic!("logging in to {label}: {e}"),
    }
}

async fn pin_change_failure(softhsm: SoftHsm) {
    let server = softhsm.server().await;
    let kms = server.client();
    let data_dir = Path::new(&softhsm.file("data")).to_path_buf();
    // Two HSMs, one per zone, so that each zone names its token: hsm-a in us-east-1a, hsm-b in
    // us-east-1b.
    let (cluster, ca) = active_cluster(&softhsm, &server, &["us-east-1a", "us-east-1b"]).await;
    // The store's connection changes the HSMs in the order DescribeClusters lists them.
    let order: Vec<&str> = describe(&cloudhsm_client(&server), &cluster)
        .await
        .hsms()
        .iter()
        .map(|hsm| match hsm.availability_zone() {
            Some("us-east-1a") => "hsm-a",
            Some("us-east-1b") => "hsm-b",
            other => panic!("an HSM in {other:?}"),
        })
        .collect();
    let [first, second] = order.as_slice() else {
        panic!("two HSMs: {order:?}");
    };
    let id = create_store(&kms, "midway", &cluster, &ca.pem).await;

    // The second HSM's C_SetPIN fails during the rotation of the first connection.
    let module = softhsm.module();
    module.inject_fault(second, Some(Fault::PinChangeFailure));
    kms.connect_custom_key_store()
        .custom_key_store_id(&id)
        .send()
        .await
        .expect("ConnectCustomKeyStore is accepted");
    assert_eq!(
        settled_connection(&kms, &id).await,
        (
            ConnectionStateType::Failed,
            Some(ConnectionErrorCodeType::InternalError)
        )
    );
    module.inject_fault(second, None);
    // Nothing was rolled back: the first HSM holds the new password, the second (which failed) the
    // one the store was created with; the store recorded both.
    assert!(!accepts(&softhsm, first, KMSUSER_PASSWORD), "{first} moved");
    assert!(
        accepts(&softhsm, second, KMSUSER_PASSWORD),
        "{second} failed"
    );
    let failed = recorded(&data_dir, &id).await;
    assert_eq!(failed.connection_state, "FAILED");
    assert!(failed.wrapped_pending_password.is_some());

    // The next connection logs each HSM in with the password it holds and finishes the rotation.
    kms.disconnect_custom_key_store()
        .custom_key_store_id(&id)
        .send()
        .await
        .expect("DisconnectCustomKeyStore succeeds");
    connect_store(&kms, &id).await;
    let finished = recorded(&data_dir, &id).await;
    assert_eq!(finished.wrapped_pending_password, None);
    assert_eq!(
        Some(&finished.wrapped_password),
        failed.wrapped_pending_password.as_ref(),
        "the pending password was promoted"
    );
    let key = kms
        .create_key()
        .origin(OriginType::AwsCloudhsm)
        .custom_key_store_id(&id)
        .send()
        .await
        .expect("CreateKey in the store succeeds")
        .key_metadata()
        .expect("metadata")
        .key_id()
        .to_owned();
    let before = encrypt(&kms, &key, b"after the failed rotation", &CONTEXT).await;
    kms.disconnect_custom_key_store()
        .custom_key_store_id(&id)
        .send()
        .await
        .expect("DisconnectCustomKeyStore succeeds");
    for hsm in [first, second] {
        assert!(
            !accepts(&softhsm, hsm, KMSUSER_PASSWORD),
            "{hsm} holds the rotated password"
        );
    }

    // The password recorded works on every HSM: the store connects again, rotating once more.
    connect_store(&kms, &id).await;
    assert_eq!(
        decrypt(&kms, &before, &CONTEXT).await,
        b"after the failed rotation"
    );
    let again = recorded(&data_dir, &id).await;
    assert_eq!(again.wrapped_pending_password, None);
    assert_ne!(again.wrapped_password, finished.wrapped_password);
    server.stop().await;
}
