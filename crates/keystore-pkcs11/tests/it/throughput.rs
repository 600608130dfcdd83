//! Throughput figures through `cryptoki` alone and through the cluster, for docs/PERFORMANCE.md.

use std::time::Instant;

use strongroom_keystore_pkcs11::{RawKey, raw_gcm_throughput};

use crate::fixture::{ARN, softhsm_test, user_pin};

softhsm_test!(raw_and_cluster_gcm_throughput_are_measured, |fx| {
    let cluster = fx.ready(&["hsm-a", "hsm-b", "hsm-c"]);
    cluster.generate_key(ARN).unwrap();
    // Enough for a stable rate, few enough for a test: well under a second at SoftHSM's speed.
    let operations = 5000;
    let session_key = raw_gcm_throughput(
        &fx.module,
        "hsm-a",
        &user_pin(),
        RawKey::Session,
        1024,
        operations,
    )
    .unwrap();
    let token_key = raw_gcm_throughput(
        &fx.module,
        "hsm-a",
        &user_pin(),
        RawKey::Token,
        1024,
        operations,
    )
    .unwrap();
    assert_eq!(token_key.operations, operations);
    assert!(session_key.per_second() > 0.0 && token_key.per_second() > 0.0);

    let payload = vec![0x5a; 1024];
    let started = Instant::now();
    for _ in 0..operations {
        cluster.encrypt(ARN, b"ctx", &payload).unwrap();
    }
    let cluster_per_second = operations as f64 / started.elapsed().as_secs_f64();
    eprintln!(
        "AES-256-GCM encrypt of 1 KiB, one thread: raw cryptoki {:.0}/s with a session key, \
         {:.0}/s with a token key; cluster {:.0}/s",
        session_key.per_second(),
        token_key.per_second(),
        cluster_per_second
    );
    // The measurement keys are gone again.
    assert!(
        fx.user_session("hsm-a")
            .find_objects(&[cryptoki::object::Attribute::Label(
                b"strongroom:throughput".to_vec()
            )])
            .unwrap()
            .is_empty()
    );
});
