//! The cluster's own objects: certificates stored on every HSM, and a key pair that signs
//! inside the HSM for the cluster CSR.

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey,
};
use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use strongroom_keystore_pkcs11::{Error, KeyPairSpec, SignMechanism};

use crate::fixture::{TOKENS, softhsm_test};

softhsm_test!(certificates_are_stored_on_every_hsm, |fx| {
    let cluster = fx.ready(&["hsm-a", "hsm-b", "hsm-c"]);
    assert!(matches!(
        cluster.read_certificate("cluster-certificate"),
        Err(Error::KeyNotFound { .. })
    ));
    cluster
        .write_certificate("cluster-certificate", b"first")
        .unwrap();
    cluster
        .write_certificate("cluster-certificate", b"second")
        .unwrap();
    assert_eq!(
        cluster.read_certificate("cluster-certificate").unwrap(),
        b"second"
    );
    for (label, _) in TOKENS {
        let session = fx.session(label);
        let found = session
            .find_objects(&[
                Attribute::Class(ObjectClass::DATA),
                Attribute::Label(b"cluster-certificate".to_vec()),
            ])
            .unwrap();
        assert_eq!(found.len(), 1, "one certificate on {label}");
        let attributes = session
            .get_attributes(
                found[0],
                &[
                    AttributeType::Value,
                    AttributeType::Token,
                    AttributeType::Private,
                ],
            )
            .unwrap();
        assert_eq!(
            attributes,
            [
                Attribute::Value(b"second".to_vec()),
                Attribute::Token(true),
                Attribute::Private(false),
            ]
        );
    }
});

softhsm_test!(an_rsa_cluster_key_signs_inside_one_hsm, |fx| {
    let cluster = fx.ready(&["hsm-a", "hsm-b", "hsm-c"]);
    let spki = cluster
        .generate_cluster_key_pair("cluster-csr-key", KeyPairSpec::Rsa2048)
        .unwrap();
    assert_eq!(spki.len(), 294);
    assert_eq!(cluster.public_key("cluster-csr-key").unwrap(), spki);
    let to_be_signed = b"certification request info";
    // Whichever HSM a request lands on, the signature comes from the one holding the key.
    for _ in 0..3 {
        let signature = cluster
            .sign(
                "cluster-csr-key",
                SignMechanism::RsaPkcs1Sha256,
                to_be_signed,
            )
            .unwrap();
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &spki)
            .verify(to_be_signed, &signature)
            .unwrap();
    }
    let mut holders = Vec::new();
    for (label, _) in TOKENS {
        let session = fx.user_session(label);
        let found = session
            .find_objects(&[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::Label(b"cluster-csr-key".to_vec()),
            ])
            .unwrap();
        if let Some(private) = found.first() {
            holders.push(label);
            let attributes = session
                .get_attributes(
                    *private,
                    &[AttributeType::Sensitive, AttributeType::Extractable],
                )
                .unwrap();
            assert_eq!(
                attributes,
                [Attribute::Sensitive(true), Attribute::Extractable(false)]
            );
        }
    }
    assert_eq!(holders.len(), 1, "the private key stays in one HSM");
    assert!(matches!(
        cluster.generate_cluster_key_pair("cluster-csr-key", KeyPairSpec::Rsa2048),
        Err(Error::LabelInUse { .. })
    ));
});

softhsm_test!(an_ec_cluster_key_signs_inside_the_hsm, |fx| {
    let cluster = fx.ready(&["hsm-a", "hsm-b"]);
    let spki = cluster
        .generate_cluster_key_pair("cluster-ec-key", KeyPairSpec::EccNistP256)
        .unwrap();
    let message = b"certification request info";
    let signature = cluster
        .sign("cluster-ec-key", SignMechanism::EcdsaSha256, message)
        .unwrap();
    assert_eq!(signature.len(), 64);
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &spki)
        .verify(message, &signature)
        .unwrap();
    assert!(
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &spki)
            .verify(b"something else", &signature)
            .is_err()
    );
});
