//! DescribeClusters shows the live health of HSMs: an HSM the running server finds failing reads
//! DEGRADED, with a StateMessage saying what is wrong, and its cluster DEGRADED, until it answers again.
//!
//! Uses the SoftHSM child-process scheme of the `cloudhsm` tests and the bring-up helpers of the
//! `custom_key_stores` tests; faults are injected into a token through the SoftHSM module the server
//! shares with the test, and the cluster is read with the CloudHSM SDK over HTTP.

use std::time::{Duration, Instant};

use aws_sdk_cloudhsmv2::types::{Cluster, ClusterState, HsmState};
use strongroom_keystore_pkcs11::Fault;

use crate::cloudhsm::{
    KMSUSER_PASSWORD, SoftHsm, client as cloudhsm_client, describe, with_softhsm,
};
use crate::custom_key_stores::{CONNECTION_PATIENCE, active_cluster, connect_store, create_store};
use crate::harness::{decrypt, encrypt};

/// The zone of the only HSM of the cluster in it: `hsm-b`, the second declared token, is the one
/// CreateHsm picks in us-east-1b.
const FAILING_ZONE: &str = "us-east-1b";

#[test]
fn describe_clusters_shows_a_failing_hsm_degraded_until_it_answers_again() {
    with_softhsm(
        "cluster_health::describe_clusters_shows_a_failing_hsm_degraded_until_it_answers_again",
        health,
    );
}

/// Describes the cluster until `done` holds of it.
async fn describe_until(
    client: &aws_sdk_cloudhsmv2::Client,
    cluster: &str,
    what: &str,
    done: impl Fn(&Cluster) -> bool,
) -> Cluster {
    let deadline = Instant::now() + CONNECTION_PATIENCE;
    loop {
        let described = describe(client, cluster).await;
        if done(&described) {
            return described;
        }
        assert!(
            Instant::now() < deadline,
            "the cluster never showed {what}: {described:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The states of the cluster's HSMs with their zones, sorted (HSMs created in the same instant are
/// listed in no particular order).
fn hsm_states(cluster: &Cluster) -> Vec<(String, HsmState)> {
    let mut states: Vec<(String, HsmState)> = cluster
        .hsms()
        .iter()
        .map(|hsm| {
            (
                hsm.availability_zone().unwrap_or_default().to_owned(),
                hsm.state().expect("a state").clone(),
            )
        })
        .collect();
    states.sort_by(|a, b| (&a.0, a.1.as_str()).cmp(&(&b.0, b.1.as_str())));
    states
}

async fn health(softhsm: SoftHsm) {
    let server = softhsm.server().await;
    let kms = server.client();
    let client = cloudhsm_client(&server);
    let (cluster, ca) = active_cluster(
        &softhsm,
        &server,
        &["us-east-1a", FAILING_ZONE, "us-east-1a"],
    )
    .await;
    let id = create_store(&kms, "watched", &cluster, &ca.pem).await;
    connect_store(&kms, &id).await;
    let key = kms
        .create_key()
        .origin(aws_sdk_kms::types::OriginType::AwsCloudhsm)
        .custom_key_store_id(&id)
        .send()
        .await
        .expect("CreateKey in the store succeeds")
        .key_metadata()
        .expect("metadata")
        .key_id()
        .to_owned();
    let healthy = describe(&client, &cluster).await;
    assert_eq!(healthy.state(), Some(&ClusterState::Active));
    assert!(
        hsm_states(&healthy)
            .iter()
            .all(|(_, state)| *state == HsmState::Active),
        "{healthy:?}"
    );

    // hsm-b fails: the connected store's health monitor finds it, and DescribeClusters says so.
    let module = softhsm.module();
    module.inject_fault("hsm-b", Some(Fault::Outage));
    let degraded = describe_until(&client, &cluster, "hsm-b DEGRADED", |c| {
        hsm_states(c).contains(&(FAILING_ZONE.to_owned(), HsmState::Degraded))
    })
    .await;
    assert_eq!(
        hsm_states(&degraded),
        [
            ("us-east-1a".to_owned(), HsmState::Active),
            ("us-east-1a".to_owned(), HsmState::Active),
            (FAILING_ZONE.to_owned(), HsmState::Degraded),
        ]
    );
    assert_eq!(degraded.state(), Some(&ClusterState::Degraded));
    let failing = degraded
        .hsms()
        .iter()
        .find(|hsm| hsm.availability_zone() == Some(FAILING_ZONE))
        .expect("the failing HSM");
    let hsm_message = failing.state_message().expect("a DEGRADED HSM says why");
    assert!(
        hsm_message.contains("not answering") && hsm_message.contains("other HSMs"),
        "{hsm_message}"
    );
    let cluster_message = degraded
        .state_message()
        .expect("a DEGRADED cluster says why");
    assert!(
        cluster_message.contains("1 of the cluster's 3 HSMs is not answering")
            && cluster_message.contains(failing.hsm_id()),
        "{cluster_message}"
    );
    for message in [hsm_message, cluster_message] {
        assert!(
            !message.contains(KMSUSER_PASSWORD) && !message.contains("officer-Passw0rd"),
            "no secret in {message}"
        );
    }
    // The `states` filter matches what is shown.
    let listed = client
        .describe_clusters()
        .filters("states", vec!["DEGRADED".to_owned()])
        .send()
        .await
        .expect("DescribeClusters with a states filter");
    assert_eq!(
        listed
            .clusters()
            .iter()
            .filter_map(|c| c.cluster_id())
            .collect::<Vec<_>>(),
        [cluster.as_str()]
    );
    // The cluster still serves, with the other HSMs.
    let sealed = encrypt(&kms, &key, b"while degraded", &[]).await;
    assert_eq!(decrypt(&kms, &sealed, &[]).await, b"while degraded");

    // hsm-b answers again: ACTIVE again, and so is the cluster, as recorded.
    module.inject_fault("hsm-b", None);
    let recovered = describe_until(&client, &cluster, "every HSM ACTIVE again", |c| {
        c.state() == Some(&ClusterState::Active)
    })
    .await;
    assert_eq!(recovered.state_message(), healthy.state_message());
    for now in recovered.hsms() {
        let then = healthy
            .hsms()
            .iter()
            .find(|then| then.hsm_id() == now.hsm_id())
            .expect("the same HSMs");
        assert_eq!(now.state(), Some(&HsmState::Active));
        assert_eq!(now.state_message(), then.state_message());
    }

    // With no store connected, the server holds no view of the HSMs' health: they read as recorded.
    kms.disconnect_custom_key_store()
        .custom_key_store_id(&id)
        .send()
        .await
        .expect("DisconnectCustomKeyStore succeeds");
    module.inject_fault("hsm-b", Some(Fault::Outage));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let unknown = describe(&client, &cluster).await;
    assert_eq!(unknown.state(), Some(&ClusterState::Active));
    assert!(
        hsm_states(&unknown)
            .iter()
            .all(|(_, state)| *state == HsmState::Active),
        "{unknown:?}"
    );
    module.inject_fault("hsm-b", None);
    server.stop().await;
}
