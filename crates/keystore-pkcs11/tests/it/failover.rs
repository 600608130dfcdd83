//! Load balancing and failover: requests spread over active HSMs, route around failed ones, and
//! return to them once they answer again.

use std::time::{Duration, Instant};

use strongroom_keystore_pkcs11::{Cluster, Error, HsmState};

use crate::fixture::{ARN, softhsm_test};

fn operations(cluster: &Cluster) -> Vec<(String, u64)> {
    cluster
        .status()
        .into_iter()
        .map(|it| (it.id, it.operations))
        .collect()
}

fn state(cluster: &Cluster, id: &str) -> HsmState {
    cluster.hsm(id).unwrap().state()
}

/// Encrypts and decrypts `rounds` times, asserting every request succeeds.
fn traffic(cluster: &Cluster, rounds: usize) {
    for round in 0..rounds {
        let plaintext = format!("round {round}");
        let sealed = cluster.encrypt(ARN, b"ctx", plaintext.as_bytes()).unwrap();
        let opened = cluster.decrypt(ARN, b"ctx", &sealed).unwrap();
        assert_eq!(&opened[..], plaintext.as_bytes());
    }
}

softhsm_test!(load_is_spread_over_active_hsms, |fx| {
    let cluster = fx.ready(&["hsm-a", "hsm-b", "hsm-c"]);
    cluster.generate_key(ARN).unwrap();
    let before = operations(&cluster);
    traffic(&cluster, 30);
    let after = operations(&cluster);
    for ((id, start), (_, end)) in before.iter().zip(&after) {
        let served = end - start;
        eprintln!("{id} served {served} of 60 requests");
        // Round robin among idle HSMs gives 20 each; allow for the rotation's phase.
        assert!((15..=25).contains(&served), "{id} served {served}");
    }
});

softhsm_test!(an_hsm_in_outage_is_routed_around_and_comes_back, |fx| {
    let cluster = fx.ready(&["hsm-a", "hsm-b", "hsm-c"]);
    cluster.generate_key(ARN).unwrap();
    let sealed_before = cluster.encrypt(ARN, b"ctx", b"before the outage").unwrap();
    let hsm_b = cluster.hsm("hsm-b").unwrap();
    hsm_b.simulate_outage(true);

    // No request fails while other HSMs are active.
    traffic(&cluster, 30);
    assert_eq!(state(&cluster, "hsm-b"), HsmState::Degraded);
    let status = hsm_b.status();
    assert_eq!(status.open_sessions, 0);
    assert!(status.last_error.is_some());
    let served_while_down = hsm_b.status().operations;
    traffic(&cluster, 10);
    assert_eq!(
        hsm_b.status().operations,
        served_while_down,
        "no traffic to a degraded HSM"
    );
    // Probes do not bring it back while it is down.
    cluster.probe();
    assert_eq!(state(&cluster, "hsm-b"), HsmState::Degraded);

    hsm_b.simulate_outage(false);
    let statuses = cluster.probe();
    assert!(
        statuses.iter().all(|it| it.state == HsmState::Active),
        "{statuses:?}"
    );
    traffic(&cluster, 15);
    assert!(
        hsm_b.status().operations > served_while_down,
        "traffic returns to hsm-b"
    );
    assert_eq!(
        &hsm_b.decrypt(ARN, b"ctx", &sealed_before).unwrap()[..],
        b"before the outage"
    );
});

softhsm_test!(the_health_monitor_brings_an_hsm_back, |fx| {
    let cluster = fx.ready(&["hsm-a", "hsm-b"]);
    cluster.generate_key(ARN).unwrap();
    let monitor = cluster.spawn_health_monitor(Duration::from_millis(20));
    let hsm_a = cluster.hsm("hsm-a").unwrap();
    hsm_a.simulate_outage(true);
    traffic(&cluster, 4);
    assert_eq!(hsm_a.state(), HsmState::Degraded);
    hsm_a.simulate_outage(false);
    let deadline = Instant::now() + Duration::from_secs(5);
    while hsm_a.state() != HsmState::Active {
        assert!(
            Instant::now() < deadline,
            "the monitor did not bring hsm-a back"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(monitor);
    traffic(&cluster, 4);
});

softhsm_test!(no_active_hsm_when_every_hsm_fails, |fx| {
    let cluster = fx.ready(&["hsm-a", "hsm-b", "hsm-c"]);
    cluster.generate_key(ARN).unwrap();
    for hsm in cluster.hsms() {
        hsm.simulate_outage(true);
    }
    assert!(matches!(
        cluster.encrypt(ARN, b"", b"x"),
        Err(Error::NoActiveHsm)
    ));
    assert!(matches!(cluster.random(4), Err(Error::NoActiveHsm)));
    assert!(
        cluster
            .status()
            .iter()
            .all(|it| it.state == HsmState::Degraded)
    );
    for hsm in cluster.hsms() {
        hsm.simulate_outage(false);
    }
    // With every HSM down, a request probes them itself rather than failing forever.
    traffic(&cluster, 3);
    assert!(
        cluster
            .status()
            .iter()
            .all(|it| it.state == HsmState::Active)
    );
});

softhsm_test!(a_vanished_token_is_detected_and_routed_around, |fx| {
    let cluster = fx.ready(&["hsm-a", "hsm-b", "hsm-c"]);
    cluster.generate_key(ARN).unwrap();
    // Warm every HSM's handle cache so that hsm-c fails on a stale handle, not a lookup.
    traffic(&cluster, 6);
    let moved = fx.dir.join("hsm-c-moved-away");
    std::fs::rename(fx.token_dir("hsm-c"), &moved).unwrap();

    traffic(&cluster, 30);
    cluster.probe();
    assert_eq!(state(&cluster, "hsm-c"), HsmState::Degraded);
    assert_eq!(state(&cluster, "hsm-a"), HsmState::Active);
    assert_eq!(state(&cluster, "hsm-b"), HsmState::Active);
    // SoftHSM 2.6 keeps a token it lost track of unusable for the rest of the process, even
    // when the directory returns, so recovery is shown with simulated outages instead.
});
