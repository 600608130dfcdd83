//! The crypto user: creation, login failures with their meaning, consistent password changes, and
//! password moves that stop midway and are finished later.

use cryptoki::error::RvError;
use cryptoki::session::UserType;
use strongroom_keystore_pkcs11::{Error, Fault, HsmConfig, Pin, Role, SecretSource};

use crate::fixture::{ARN, TOKENS, USER_PIN, softhsm_test, user_pin};

const NEW_PIN: &str = "rotated-Passw0rd";

softhsm_test!(login_before_the_user_exists_is_user_not_found, |fx| {
    let cluster = fx.open(&["hsm-a", "hsm-b"]);
    let err = cluster.login_crypto_user(&user_pin()).unwrap_err();
    assert!(
        matches!(&err, Error::UserNotFound { hsm } if hsm == "hsm-a"),
        "{err:?}"
    );
});

softhsm_test!(a_wrong_password_is_invalid_credentials, |fx| {
    let cluster = fx.open(&["hsm-a", "hsm-b", "hsm-c"]);
    cluster.create_crypto_user(&user_pin()).unwrap();
    let wrong = Pin::new("not-the-Passw0rd".to_owned());
    // CloudHSM locks a user after 5 failures (USER_LOCKED_OUT, from CKR_PIN_LOCKED). SoftHSM 2.6
    // never locks: it only raises CKF_USER_PIN_COUNT_LOW, so every attempt stays a plain refusal.
    for _ in 0..7 {
        let err = cluster.login_crypto_user(&wrong).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidCredentials { hsm, role: Role::CryptoUser } if hsm == "hsm-a"),
            "{err:?}"
        );
    }
    let info = fx
        .module
        .pkcs11()
        .get_token_info(fx.session("hsm-a").get_session_info().unwrap().slot_id())
        .unwrap();
    assert!(info.user_pin_count_low());
    assert!(!info.user_pin_locked());
    // A failed login leaves nobody logged in, and the right password still works.
    cluster.login_crypto_user(&user_pin()).unwrap();
    cluster.random(8).unwrap();
});

softhsm_test!(another_login_on_a_token_is_user_logged_in, |fx| {
    let cluster = fx.open(&["hsm-a", "hsm-b"]);
    cluster.create_crypto_user(&user_pin()).unwrap();
    let officer = fx.session("hsm-b");
    officer
        .login(
            UserType::So,
            Some(&cryptoki::types::AuthPin::from("officer-Passw0rd")),
        )
        .unwrap();
    let err = cluster.login_crypto_user(&user_pin()).unwrap_err();
    assert!(
        matches!(&err, Error::UserLoggedIn { hsm } if hsm == "hsm-b"),
        "{err:?}"
    );
    drop(officer);
    cluster.login_crypto_user(&user_pin()).unwrap();
});

softhsm_test!(a_wrong_officer_pin_is_reported_as_such, |fx| {
    let bad_pin_file = fx.dir.join("wrong-so.pin");
    std::fs::write(&bad_pin_file, "not-the-officer\n").unwrap();
    let config = HsmConfig {
        so_pin: SecretSource::File(bad_pin_file),
        ..fx.config("hsm-a")
    };
    let cluster = strongroom_keystore_pkcs11::Cluster::open(
        &[config],
        &fx.modules,
        crate::fixture::Fixture::options(),
    )
    .unwrap();
    let err = cluster.create_crypto_user(&user_pin()).unwrap_err();
    assert!(
        matches!(
            &err,
            Error::InvalidCredentials {
                role: Role::CryptoOfficer,
                ..
            }
        ),
        "{err:?}"
    );
});

softhsm_test!(a_password_change_reaches_every_hsm, |fx| {
    let cluster = fx.ready(&["hsm-a", "hsm-b", "hsm-c"]);
    cluster.generate_key(ARN).unwrap();
    let sealed = cluster.encrypt(ARN, b"context", b"before").unwrap();
    let new = Pin::new(NEW_PIN.to_owned());
    cluster
        .change_crypto_user_password(&user_pin(), &new)
        .unwrap();
    // The pools log in again with the new password.
    for hsm in cluster.hsms() {
        assert_eq!(
            &hsm.decrypt(ARN, b"context", &sealed).unwrap()[..],
            b"before"
        );
    }
    drop(cluster);
    for (label, _) in TOKENS {
        assert_eq!(fx.check_user_pin(label, NEW_PIN), Ok(()), "{label}");
        assert_eq!(
            fx.check_user_pin(label, USER_PIN),
            Err(RvError::PinIncorrect),
            "{label}"
        );
    }
});

softhsm_test!(a_password_change_failing_midway_is_rolled_back, |fx| {
    let cluster = fx.ready(&["hsm-a", "hsm-b", "hsm-c"]);
    // Someone changed hsm-b's password behind the cluster's back.
    let drift = fx.user_session("hsm-b");
    drift
        .set_pin(
            &cryptoki::types::AuthPin::from(USER_PIN),
            &cryptoki::types::AuthPin::from("drifted-Passw0rd"),
        )
        .unwrap();
    drop(drift);

    let new = Pin::new(NEW_PIN.to_owned());
    let err = cluster
        .change_crypto_user_password(&user_pin(), &new)
        .unwrap_err();
    match &err {
        Error::PasswordChangeFailed {
            hsm,
            source,
            rolled_back,
            rollback_failed,
        } => {
            assert_eq!(hsm, "hsm-b");
            assert!(
                matches!(**source, Error::InvalidCredentials { .. }),
                "{source:?}"
            );
            assert_eq!(rolled_back, &["hsm-a".to_owned()]);
            assert!(rollback_failed.is_empty());
        }
        other => panic!("unexpected {other:?}"),
    }
    drop(cluster);
    for label in ["hsm-a", "hsm-c"] {
        assert_eq!(fx.check_user_pin(label, USER_PIN), Ok(()), "{label}");
        assert_eq!(
            fx.check_user_pin(label, NEW_PIN),
            Err(RvError::PinIncorrect),
            "{label}"
        );
    }
});

softhsm_test!(a_password_change_with_an_hsm_down_is_rolled_back, |fx| {
    let cluster = fx.ready(&["hsm-a", "hsm-b", "hsm-c"]);
    cluster.hsm("hsm-c").unwrap().simulate_outage(true);
    let new = Pin::new(NEW_PIN.to_owned());
    let err = cluster
        .change_crypto_user_password(&user_pin(), &new)
        .unwrap_err();
    match &err {
        Error::PasswordChangeFailed {
            hsm,
            source,
            rolled_back,
            ..
        } => {
            assert_eq!(hsm, "hsm-c");
            assert!(source.is_device_failure(), "{source:?}");
            assert_eq!(rolled_back, &["hsm-a".to_owned(), "hsm-b".to_owned()]);
        }
        other => panic!("unexpected {other:?}"),
    }
    // The cluster still works with the old password.
    cluster.hsm("hsm-c").unwrap().simulate_outage(false);
    cluster.probe();
    cluster.generate_key(ARN).unwrap();
    drop(cluster);
    for (label, _) in TOKENS {
        assert_eq!(fx.check_user_pin(label, USER_PIN), Ok(()), "{label}");
    }
});

softhsm_test!(
    a_password_move_stopped_midway_is_finished_with_both_passwords,
    |fx| {
        let cluster = fx.ready(&["hsm-a", "hsm-b", "hsm-c"]);
        cluster.generate_key(ARN).unwrap();
        let sealed = cluster.encrypt(ARN, b"context", b"before").unwrap();
        let new = Pin::new(NEW_PIN.to_owned());
        // hsm-b's C_SetPIN fails: hsm-a keeps the new password, nothing is rolled back.
        fx.module
            .inject_fault("hsm-b", Some(Fault::PinChangeFailure));
        let mut heard = Vec::new();
        let err = cluster
            .move_crypto_user_password(&new, |hsm| heard.push(hsm.to_owned()))
            .unwrap_err();
        match &err {
            Error::PasswordMoveStopped { hsm, source, moved } => {
                assert_eq!(hsm, "hsm-b");
                assert!(source.is_device_failure(), "{source:?}");
                assert_eq!(moved, &["hsm-a".to_owned()]);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(heard, ["hsm-a"]);
        fx.module.inject_fault("hsm-b", None);
        drop(cluster);
        assert_eq!(fx.check_user_pin("hsm-a", NEW_PIN), Ok(()));
        for label in ["hsm-b", "hsm-c"] {
            assert_eq!(fx.check_user_pin(label, USER_PIN), Ok(()), "{label}");
        }

        // One password alone no longer logs in everywhere; both do, each HSM with its own.
        let cluster = fx.open(&["hsm-a", "hsm-b", "hsm-c"]);
        let err = cluster.login_crypto_user(&user_pin()).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidCredentials { hsm, .. } if hsm == "hsm-a"),
            "{err:?}"
        );
        let err = cluster.login_crypto_user(&new).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidCredentials { hsm, .. } if hsm == "hsm-b"),
            "{err:?}"
        );
        cluster
            .login_crypto_user_with_any(&[user_pin(), new.clone()])
            .unwrap();
        for hsm in cluster.hsms() {
            assert_eq!(
                &hsm.decrypt(ARN, b"context", &sealed).unwrap()[..],
                b"before",
                "{}",
                hsm.id()
            );
        }
        // Finishing the move changes only the HSMs still on the old password.
        let mut heard = Vec::new();
        cluster
            .move_crypto_user_password(&new, |hsm| heard.push(hsm.to_owned()))
            .unwrap();
        assert_eq!(heard, ["hsm-a", "hsm-b", "hsm-c"]);
        for hsm in cluster.hsms() {
            assert_eq!(
                &hsm.decrypt(ARN, b"context", &sealed).unwrap()[..],
                b"before"
            );
        }
        drop(cluster);
        for (label, _) in TOKENS {
            assert_eq!(fx.check_user_pin(label, NEW_PIN), Ok(()), "{label}");
            assert_eq!(
                fx.check_user_pin(label, USER_PIN),
                Err(RvError::PinIncorrect),
                "{label}"
            );
        }
        let err = fx
            .open(&["hsm-a"])
            .login_crypto_user_with_any(&[])
            .unwrap_err();
        assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
    }
);

softhsm_test!(
    requests_during_a_password_move_never_log_in_with_the_old_password,
    |fx| {
        let cluster = fx.ready(&["hsm-a", "hsm-b"]);
        cluster.generate_key(ARN).unwrap();
        let passwords = [Pin::new(NEW_PIN.to_owned()), user_pin()];
        let stop = std::sync::atomic::AtomicBool::new(false);
        let (served, failures) = std::thread::scope(|scope| {
            // Requests keep opening sessions, which log in with the password each HSM is known to
            // hold, while the password moves back and forth underneath them.
            let requests = scope.spawn(|| {
                let (mut served, mut failures) = (0, Vec::new());
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    match cluster.encrypt(ARN, b"context", b"during the move") {
                        Ok(_) => served += 1,
                        Err(e) => failures.push(e.to_string()),
                    }
                }
                (served, failures)
            });
            for round in 0..100 {
                cluster
                    .move_crypto_user_password(&passwords[round % 2], |_| {})
                    .unwrap();
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            requests.join().unwrap()
        });
        assert!(failures.is_empty(), "{failures:?}");
        assert!(served > 0);
        // An HSM that was refused a login would be degraded until a probe found it back.
        for status in cluster.status() {
            assert_eq!(
                status.state,
                strongroom_keystore_pkcs11::HsmState::Active,
                "{status:?}"
            );
        }
        drop(cluster);
        for label in ["hsm-a", "hsm-b"] {
            assert_eq!(fx.check_user_pin(label, USER_PIN), Ok(()), "{label}");
        }
    }
);
