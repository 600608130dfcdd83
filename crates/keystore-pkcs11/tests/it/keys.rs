//! Backing keys: generation, replication with protective attributes, cryptography across HSMs,
//! deletion, and copying to new or lagging HSMs.

use std::sync::Arc;

use cryptoki::error::{Error as Pkcs11Error, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass};
use strongroom_keystore_pkcs11::{Error, HsmState};

use crate::fixture::{ARN, TOKENS, softhsm_test};

const WRAPPING_KEY_LABEL: &[u8] = b"strongroom:cluster-wrapping-key";
const WORKING_COPY_LABEL: &[u8] = b"strongroom:working-copy";

fn arn(n: u32) -> String {
    format!("arn:aws:kms:us-east-1:111122223333:key/00000000-0000-0000-0000-{n:012}")
}

fn all_true(results: &[strongroom_keystore_pkcs11::HsmResult<bool>]) -> bool {
    results.iter().all(|it| matches!(it.result, Ok(true)))
}

fn all_false(results: &[strongroom_keystore_pkcs11::HsmResult<bool>]) -> bool {
    results.iter().all(|it| matches!(it.result, Ok(false)))
}

softhsm_test!(keys_are_replicated_with_protective_attributes, |fx| {
    let cluster = fx.ready(&["hsm-a", "hsm-b", "hsm-c"]);
    let handles = cluster.generate_key(ARN).unwrap();
    assert_eq!(handles.label, ARN);
    let mut holders: Vec<&str> = handles.replicas.iter().map(|it| it.hsm.as_str()).collect();
    holders.sort_unstable();
    assert_eq!(holders, ["hsm-a", "hsm-b", "hsm-c"]);
    assert!(all_true(&cluster.key_exists(ARN)));

    let mut wrapping_key_ids = Vec::new();
    for (label, _) in TOKENS {
        let session = fx.user_session(label);
        let found = session
            .find_objects(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::Label(ARN.as_bytes().to_vec()),
            ])
            .unwrap();
        assert_eq!(found.len(), 1, "exactly one copy on {label}");
        let key = found[0];
        let attributes = session
            .get_attributes(
                key,
                &[
                    AttributeType::KeyType,
                    AttributeType::ValueLen,
                    AttributeType::Label,
                    AttributeType::Token,
                    AttributeType::Private,
                    AttributeType::Sensitive,
                    AttributeType::Extractable,
                    AttributeType::WrapWithTrusted,
                    AttributeType::Encrypt,
                    AttributeType::Decrypt,
                    AttributeType::Wrap,
                    AttributeType::Unwrap,
                    AttributeType::Derive,
                    AttributeType::Value,
                ],
            )
            .unwrap();
        // SoftHSM leaves CKA_VALUE_LEN at 0 on unwrapped keys and refuses it in the unwrap
        // template, so only the original says 32; the copies decrypt alike (see below), so they
        // hold the same 256 bits.
        let value_len: u64 = match label == handles.replicas[0].hsm {
            true => 32,
            false => 0,
        };
        assert_eq!(
            attributes,
            [
                Attribute::KeyType(KeyType::AES),
                Attribute::ValueLen(value_len.into()),
                Attribute::Label(ARN.as_bytes().to_vec()),
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                // Extractable only under a trusted key; CKA_VALUE is missing: it is sensitive.
                Attribute::Extractable(true),
                Attribute::WrapWithTrusted(true),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
                Attribute::Wrap(false),
                Attribute::Unwrap(false),
                Attribute::Derive(false),
            ],
            "{label}"
        );

        // The crypto user cannot get the key out under a key of its own making...
        let own_key = session
            .generate_key(
                &Mechanism::AesKeyGen,
                &[
                    Attribute::Class(ObjectClass::SECRET_KEY),
                    Attribute::KeyType(KeyType::AES),
                    Attribute::ValueLen(32.into()),
                    Attribute::Token(false),
                    Attribute::Wrap(true),
                ],
            )
            .unwrap();
        assert!(matches!(
            session.wrap_key(&Mechanism::AesKeyWrap, own_key, key),
            Err(Pkcs11Error::Pkcs11(RvError::KeyNotWrappable, _))
        ));
        // ...nor trust that key, nor lift the protections.
        for change in [
            Attribute::Trusted(true),
            Attribute::WrapWithTrusted(false),
            Attribute::Sensitive(false),
        ] {
            let target = match change {
                Attribute::Trusted(_) => own_key,
                _ => key,
            };
            // Keys are also CKA_MODIFIABLE=false, which SoftHSM checks first.
            assert!(
                matches!(
                    session.update_attributes(target, std::slice::from_ref(&change)),
                    Err(Pkcs11Error::Pkcs11(
                        RvError::AttributeReadOnly | RvError::ActionProhibited,
                        _
                    ))
                ),
                "{change:?} on {label}"
            );
        }

        // The cluster wrapping key: trusted, wrap/unwrap only, same id everywhere.
        let wrapping = session
            .find_objects(&[Attribute::Label(WRAPPING_KEY_LABEL.to_vec())])
            .unwrap();
        assert_eq!(wrapping.len(), 1, "one wrapping key on {label}");
        let mut attributes = session
            .get_attributes(
                wrapping[0],
                &[
                    AttributeType::Trusted,
                    AttributeType::Sensitive,
                    AttributeType::Wrap,
                    AttributeType::Unwrap,
                    AttributeType::Encrypt,
                    AttributeType::Decrypt,
                    AttributeType::WrapWithTrusted,
                    AttributeType::Value,
                    AttributeType::Id,
                ],
            )
            .unwrap();
        wrapping_key_ids.push(attributes.pop().unwrap());
        assert_eq!(
            attributes,
            [
                Attribute::Trusted(true),
                Attribute::Sensitive(true),
                Attribute::Wrap(true),
                Attribute::Unwrap(true),
                Attribute::Encrypt(false),
                Attribute::Decrypt(false),
                Attribute::WrapWithTrusted(true),
            ],
            "{label}"
        );
    }
    assert!(wrapping_key_ids.windows(2).all(|it| it[0] == it[1]));
    // Establishing again changes nothing.
    cluster.establish_wrapping_key().unwrap();
});

softhsm_test!(ciphertext_from_one_hsm_decrypts_on_every_other, |fx| {
    let cluster = fx.ready(&["hsm-a", "hsm-b", "hsm-c"]);
    cluster.generate_key(ARN).unwrap();
    for source in cluster.hsms() {
        for aad in [&b""[..], b"encryption context"] {
            let plaintext = format!("sealed on {}", source.id());
            let sealed = source.encrypt(ARN, aad, plaintext.as_bytes()).unwrap();
            assert_eq!(sealed.ciphertext.len(), plaintext.len() + 16);
            for target in cluster.hsms() {
                let opened = target.decrypt(ARN, aad, &sealed).unwrap();
                assert_eq!(
                    &opened[..],
                    plaintext.as_bytes(),
                    "{} -> {}",
                    source.id(),
                    target.id()
                );
            }
        }
    }
    // Nonces come from the HSM and differ.
    let first = cluster.encrypt(ARN, b"", b"same").unwrap();
    let second = cluster.encrypt(ARN, b"", b"same").unwrap();
    assert_ne!(first.iv, second.iv);

    // Tampering is the ciphertext's fault, not the HSM's: nobody is degraded.
    let mut tampered = first.clone();
    tampered.ciphertext[0] ^= 1;
    assert!(matches!(
        cluster.decrypt(ARN, b"", &tampered),
        Err(Error::InvalidCiphertext)
    ));
    assert!(matches!(
        cluster.decrypt(ARN, b"other", &first),
        Err(Error::InvalidCiphertext)
    ));
    let mut truncated = first.clone();
    truncated.ciphertext.truncate(10);
    assert!(matches!(
        cluster.decrypt(ARN, b"", &truncated),
        Err(Error::InvalidCiphertext)
    ));
    assert!(
        cluster
            .status()
            .iter()
            .all(|it| it.state == HsmState::Active)
    );
    assert!(matches!(
        cluster.encrypt("arn:aws:kms:us-east-1:111122223333:key/missing", b"", b"x"),
        Err(Error::KeyNotFound { .. })
    ));
});

softhsm_test!(hsms_of_different_clusters_are_not_mixed, |fx| {
    // Two one-HSM clusters, each with its own wrapping key.
    for id in ["hsm-a", "hsm-b"] {
        let single = fx.open(&[id]);
        single
            .create_crypto_user(&crate::fixture::user_pin())
            .unwrap();
        single.establish_wrapping_key().unwrap();
    }
    let err = fx
        .open(&["hsm-a", "hsm-b"])
        .establish_wrapping_key()
        .unwrap_err();
    assert!(
        matches!(&err, Error::WrappingKeyMismatch { first, second } if first == "hsm-a" && second == "hsm-b"),
        "{err:?}"
    );
    let cluster = fx.open(&["hsm-a"]);
    cluster
        .login_crypto_user(&crate::fixture::user_pin())
        .unwrap();
    let err = cluster.add_hsm(&fx.config("hsm-b")).unwrap_err();
    assert!(matches!(err, Error::WrappingKeyMismatch { .. }), "{err:?}");
    assert_eq!(cluster.hsms().len(), 1);
});

softhsm_test!(labels_must_be_free_and_not_reserved, |fx| {
    let cluster = fx.ready(&["hsm-a", "hsm-b"]);
    cluster.generate_key(ARN).unwrap();
    assert!(matches!(
        cluster.generate_key(ARN),
        Err(Error::LabelInUse { .. })
    ));
    assert!(matches!(
        cluster.generate_key("strongroom:cluster-wrapping-key"),
        Err(Error::InvalidLabel { .. })
    ));
    assert!(matches!(
        cluster.generate_key(""),
        Err(Error::InvalidLabel { .. })
    ));
});

softhsm_test!(keys_need_the_crypto_user, |fx| {
    let cluster = fx.open(&["hsm-a", "hsm-b"]);
    cluster
        .create_crypto_user(&crate::fixture::user_pin())
        .unwrap();
    cluster.establish_wrapping_key().unwrap();
    let err = cluster.generate_key(ARN).unwrap_err();
    assert!(matches!(err, Error::NotLoggedIn { .. }), "{err:?}");
    cluster
        .login_crypto_user(&crate::fixture::user_pin())
        .unwrap();
    cluster.generate_key(ARN).unwrap();
    cluster.logout_crypto_user();
    assert!(matches!(
        cluster.encrypt(ARN, b"", b"x"),
        Err(Error::NotLoggedIn { .. })
    ));
});

softhsm_test!(delete_key_removes_every_copy, |fx| {
    let cluster = fx.ready(&["hsm-a", "hsm-b", "hsm-c"]);
    cluster.generate_key(ARN).unwrap();
    cluster.generate_key(&arn(2)).unwrap();
    assert!(all_true(&cluster.delete_key(ARN)));
    assert!(all_false(&cluster.key_exists(ARN)));
    assert!(matches!(
        cluster.encrypt(ARN, b"", b"x"),
        Err(Error::KeyNotFound { .. })
    ));
    assert!(all_false(&cluster.delete_key(ARN)));
    // Other keys are untouched, and nothing is left on the tokens.
    assert!(all_true(&cluster.key_exists(&arn(2))));
    for (label, _) in TOKENS {
        let found = fx
            .user_session(label)
            .find_objects(&[Attribute::Label(ARN.as_bytes().to_vec())])
            .unwrap();
        assert!(found.is_empty(), "{label}");
    }
});

softhsm_test!(keys_are_used_from_session_copies_gone_with_the_key, |fx| {
    let cluster = fx.ready(&["hsm-a", "hsm-b", "hsm-c"]);
    cluster.generate_key(ARN).unwrap();
    let hsm_a = cluster.hsm("hsm-a").unwrap();
    let sealed = hsm_a.encrypt(ARN, b"", b"x").unwrap();
    for hsm in cluster.hsms() {
        hsm.decrypt(ARN, b"", &sealed).unwrap();
    }
    for (label, _) in TOKENS {
        let session = fx.user_session(label);
        let copies = session
            .find_objects(&[
                Attribute::Label(WORKING_COPY_LABEL.to_vec()),
                Attribute::Token(false),
            ])
            .unwrap();
        // One working copy per HSM however many operations ran, as protected as the key and not
        // extractable even wrapped.
        assert_eq!(copies.len(), 1, "{label}");
        let attributes = session
            .get_attributes(
                copies[0],
                &[
                    AttributeType::Private,
                    AttributeType::Sensitive,
                    AttributeType::Extractable,
                    AttributeType::Encrypt,
                    AttributeType::Decrypt,
                    AttributeType::Wrap,
                    AttributeType::Unwrap,
                    AttributeType::Derive,
                    AttributeType::Modifiable,
                    AttributeType::Value,
                ],
            )
            .unwrap();
        // CKA_VALUE is missing: it is sensitive.
        assert_eq!(
            attributes,
            [
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
                Attribute::Wrap(false),
                Attribute::Unwrap(false),
                Attribute::Derive(false),
                Attribute::Modifiable(false),
            ],
            "{label}"
        );
    }
    // Lookups and listings see the token object only.
    assert!(all_true(&cluster.key_exists(ARN)));
    let report = cluster.synchronize();
    assert!(report.copied_keys.is_empty() && report.failures.is_empty());

    assert!(all_true(&cluster.delete_key(ARN)));
    for (label, _) in TOKENS {
        let session = fx.user_session(label);
        for name in [ARN.as_bytes(), WORKING_COPY_LABEL] {
            let found = session
                .find_objects(&[Attribute::Label(name.to_vec())])
                .unwrap();
            assert!(
                found.is_empty(),
                "no copy of a deleted key is left on {label}"
            );
        }
    }
    assert!(matches!(
        cluster.decrypt(ARN, b"", &sealed),
        Err(Error::KeyNotFound { .. })
    ));
});

softhsm_test!(delete_key_reports_unreachable_hsms, |fx| {
    let cluster = fx.ready(&["hsm-a", "hsm-b", "hsm-c"]);
    cluster.generate_key(ARN).unwrap();
    cluster.hsm("hsm-c").unwrap().simulate_outage(true);
    let results = cluster.delete_key(ARN);
    for result in &results {
        match result.hsm.as_str() {
            "hsm-c" => assert!(
                matches!(&result.result, Err(err) if err.is_device_failure()),
                "{result:?}"
            ),
            _ => assert!(matches!(result.result, Ok(true)), "{result:?}"),
        }
    }
    // The copy left behind is still there once the HSM is back; deleting again finishes the job.
    cluster.hsm("hsm-c").unwrap().simulate_outage(false);
    cluster.probe();
    let again = cluster.delete_key(ARN);
    let leftovers: Vec<&str> = again
        .iter()
        .filter(|it| matches!(it.result, Ok(true)))
        .map(|it| it.hsm.as_str())
        .collect();
    assert_eq!(leftovers, ["hsm-c"]);
});

softhsm_test!(add_hsm_copies_every_key_and_certificate, |fx| {
    let cluster = fx.ready(&["hsm-a", "hsm-b"]);
    let labels: Vec<String> = (1..=3).map(arn).collect();
    for label in &labels {
        cluster.generate_key(label).unwrap();
    }
    cluster
        .write_certificate("cluster-certificate", b"\x30\x03\x02\x01\x01")
        .unwrap();
    let sealed = cluster
        .hsm("hsm-a")
        .unwrap()
        .encrypt(&labels[0], b"ctx", b"payload")
        .unwrap();

    let report = cluster.add_hsm(&fx.config("hsm-c")).unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    let mut copied: Vec<&str> = report
        .copied_keys
        .iter()
        .map(|it| it.label.as_str())
        .collect();
    copied.sort_unstable();
    assert_eq!(
        copied,
        labels.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert!(report.copied_keys.iter().all(|it| it.hsm == "hsm-c"));
    assert_eq!(report.copied_objects.len(), 1);

    let new = cluster.hsm("hsm-c").unwrap();
    assert_eq!(new.availability_zone(), "us-east-1c");
    for label in &labels {
        assert!(new.key_exists(label).unwrap(), "{label}");
    }
    assert_eq!(
        &new.decrypt(&labels[0], b"ctx", &sealed).unwrap()[..],
        b"payload"
    );
    // With the old members down, hsm-c alone serves the certificate and the keys.
    cluster.hsm("hsm-a").unwrap().simulate_outage(true);
    cluster.hsm("hsm-b").unwrap().simulate_outage(true);
    assert_eq!(
        cluster.read_certificate("cluster-certificate").unwrap(),
        b"\x30\x03\x02\x01\x01"
    );
    assert_eq!(
        &cluster.decrypt(&labels[0], b"ctx", &sealed).unwrap()[..],
        b"payload"
    );
    assert!(matches!(
        cluster.add_hsm(&fx.config("hsm-c")),
        Err(Error::DuplicateHsm { .. })
    ));
});

softhsm_test!(
    an_hsm_joins_with_the_clusters_password_and_leaves_again,
    |fx| {
        let cluster = fx.ready(&["hsm-a", "hsm-b"]);
        cluster.generate_key(ARN).unwrap();
        // hsm-c kept a crypto user with another password from an earlier membership.
        fx.open(&["hsm-c"])
            .create_crypto_user(&strongroom_keystore_pkcs11::Pin::new(
                "an-earlier-password".to_owned(),
            ))
            .unwrap();

        let report = cluster.add_hsm(&fx.config("hsm-c")).unwrap();
        assert!(report.failures.is_empty(), "{:?}", report.failures);
        // Logged in with the cluster's password, it holds the key.
        assert!(cluster.hsm("hsm-c").unwrap().key_exists(ARN).unwrap());

        assert!(cluster.remove_hsm("hsm-c"));
        assert!(cluster.hsm("hsm-c").is_none());
        assert_eq!(cluster.hsms().len(), 2);
        assert!(!cluster.remove_hsm("hsm-c"), "removed twice");
        // The others go on serving, and the token left with the cluster's password.
        let sealed = cluster.encrypt(ARN, b"ctx", b"payload").unwrap();
        assert_eq!(
            &cluster.decrypt(ARN, b"ctx", &sealed).unwrap()[..],
            b"payload"
        );
        assert_eq!(fx.check_user_pin("hsm-c", crate::fixture::USER_PIN), Ok(()));
    }
);

softhsm_test!(synchronize_heals_an_hsm_that_missed_a_key, |fx| {
    let cluster = fx.ready(&["hsm-a", "hsm-b", "hsm-c"]);
    let lagging = cluster.hsm("hsm-c").unwrap();
    lagging.simulate_outage(true);
    // Two of three HSMs meet the quorum.
    let handles = cluster.generate_key(ARN).unwrap();
    assert_eq!(handles.replicas.len(), 2);
    lagging.simulate_outage(false);
    cluster.probe();
    assert!(!lagging.key_exists(ARN).unwrap());
    let report = cluster.synchronize();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.copied_keys.len(), 1);
    assert_eq!(report.copied_keys[0].hsm, "hsm-c");
    assert!(lagging.key_exists(ARN).unwrap());
    assert!(cluster.synchronize().copied_keys.is_empty());
});

softhsm_test!(a_key_that_misses_the_quorum_is_not_kept, |fx| {
    let cluster = fx.ready(&["hsm-a", "hsm-b", "hsm-c"]);
    cluster.hsm("hsm-b").unwrap().simulate_outage(true);
    cluster.hsm("hsm-c").unwrap().simulate_outage(true);
    let err = cluster.generate_key(ARN).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InsufficientReplicas {
                replicas: 1,
                required: 2,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!cluster.hsm("hsm-a").unwrap().key_exists(ARN).unwrap());
});

softhsm_test!(random_bytes_come_from_the_cluster, |fx| {
    let cluster = fx.ready(&["hsm-a", "hsm-b"]);
    let first = cluster.random(32).unwrap();
    let second = cluster.random(32).unwrap();
    assert_eq!(first.len(), 32);
    assert_ne!(first, second);
});

softhsm_test!(concurrent_requests_share_bounded_pools, |fx| {
    let configs: Vec<_> = ["hsm-a", "hsm-b", "hsm-c"]
        .iter()
        .map(|id| fx.config(id))
        .collect();
    let options = strongroom_keystore_pkcs11::ClusterOptions {
        sessions_per_hsm: 2,
        ..crate::fixture::Fixture::options()
    };
    let cluster =
        strongroom_keystore_pkcs11::Cluster::open(&configs, &fx.modules, options).unwrap();
    cluster
        .create_crypto_user(&crate::fixture::user_pin())
        .unwrap();
    cluster.establish_wrapping_key().unwrap();
    cluster
        .login_crypto_user(&crate::fixture::user_pin())
        .unwrap();
    cluster.generate_key(ARN).unwrap();
    let cluster = Arc::new(cluster);
    let workers: Vec<_> = (0..8)
        .map(|worker| {
            let cluster = cluster.clone();
            std::thread::spawn(move || {
                for round in 0..25 {
                    let plaintext = format!("worker {worker} round {round}");
                    let sealed = cluster.encrypt(ARN, b"ctx", plaintext.as_bytes()).unwrap();
                    let opened = cluster.decrypt(ARN, b"ctx", &sealed).unwrap();
                    assert_eq!(&opened[..], plaintext.as_bytes());
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    for status in cluster.status() {
        assert!(status.open_sessions <= 2, "{status:?}");
        assert_eq!(status.state, HsmState::Active);
    }
});
