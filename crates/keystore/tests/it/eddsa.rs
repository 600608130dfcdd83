//! Ed25519: Wycheproof verification cases, and deterministic signing from known seeds (the reference
//! implementation's `sign.input`, whose first lines are RFC 8032's test vectors), where the signature must
//! match byte for byte. Ed25519ph: RFC 8032's known answer, signed from the stored PKCS#8 form of the key
//! (v1 and v2) and verified with the public key alone, and cases derived from it that must fail.

use aws_lc_rs::signature::Ed25519KeyPair;
use strongroom_keystore::{Message, PrivateKey, verify_public};
use strongroom_types::{KeySpec, SigningAlgorithm};

use crate::signatures::verify_file;
use crate::vectors::{self, Tally, hex};

#[test]
fn ed25519_verification_matches_wycheproof() {
    verify_file("ed25519.json").finish("Ed25519 verification", 8, 20);
}

#[test]
fn ed25519_signatures_are_exactly_the_reference_ones() {
    let file = vectors::load("ed25519.json");
    let mut tally = Tally::default();
    for suite in file.suites.iter().filter(|s| !s.tests.is_empty()) {
        for case in &suite.tests {
            let name = case.name(suite);
            // The seed as a PKCS#8 private key, the form keys are stored and imported in.
            let pair = Ed25519KeyPair::from_seed_unchecked(&hex(&case.seed)).unwrap();
            let pkcs8 = pair.to_pkcs8v1().unwrap();
            let key = PrivateKey::from_pkcs8(KeySpec::EccNistEdwards25519, pkcs8.as_ref()).unwrap();
            let public = hex(&case.public_key);
            if !key.public_key_der().ends_with(&public) || key.public_key_der().len() != 44 {
                tally.fail(format!("{name}: the public key differs from the vector's"));
                continue;
            }
            let message = hex(&case.msg);
            let signature = key
                .sign(SigningAlgorithm::Ed25519Sha512, Message::Raw(&message))
                .unwrap();
            if signature != hex(&case.sig) {
                tally.fail(format!("{name}: the signature differs from the vector's"));
                continue;
            }
            let verified = verify_public(
                KeySpec::EccNistEdwards25519,
                key.public_key_der(),
                SigningAlgorithm::Ed25519Sha512,
                Message::Raw(&message),
                &signature,
            )
            .map_err(|e| e.to_string());
            tally.check(name, true, verified);
        }
    }
    tally.finish("Ed25519 signing", 10, 0);
}

/// The key of a vector case as the key store holds it: PKCS#8 v1 (what generation stores) or v2 (with
/// the public key, as an import may bring it).
fn stored_key(seed: &[u8], version_two: bool) -> PrivateKey {
    let pair = Ed25519KeyPair::from_seed_unchecked(seed).unwrap();
    let pkcs8 = if version_two {
        pair.to_pkcs8().unwrap()
    } else {
        pair.to_pkcs8v1().unwrap()
    };
    PrivateKey::from_pkcs8(KeySpec::EccNistEdwards25519, pkcs8.as_ref()).unwrap()
}

#[test]
fn ed25519ph_matches_rfc8032() {
    let file = vectors::load("ed25519ph.json");
    let mut tally = Tally::default();
    for suite in &file.suites {
        for case in &suite.tests {
            let name = case.name(suite);
            let message = hex(&case.msg);
            let expected = hex(&case.sig);
            for version_two in [false, true] {
                let key = stored_key(&hex(&case.seed), version_two);
                if !key.public_key_der().ends_with(&hex(&case.public_key)) {
                    tally.fail(format!("{name}: the public key differs from the vector's"));
                    continue;
                }
                // Ed25519ph is deterministic: a valid case's signature is reproduced byte for byte, from
                // a RAW message and from a DIGEST one alike (KMS prehashes whatever it is given).
                if case.valid() {
                    for message in [Message::Raw(&message), Message::Digest(&message)] {
                        let signature = key
                            .sign(SigningAlgorithm::Ed25519PhSha512, message)
                            .unwrap();
                        if signature != expected {
                            tally.fail(format!(
                                "{name}: the signature from PKCS#8 v{} differs from the vector's",
                                1 + u8::from(version_two)
                            ));
                        }
                    }
                }
                let with_private = key
                    .verify(
                        SigningAlgorithm::Ed25519PhSha512,
                        Message::Raw(&message),
                        &expected,
                    )
                    .map_err(|e| e.to_string());
                tally.check(
                    format!("{name} with the private key"),
                    case.valid(),
                    with_private,
                );
            }
            let public_der = stored_key(&hex(&case.seed), false)
                .public_key_der()
                .to_vec();
            let with_public = verify_public(
                KeySpec::EccNistEdwards25519,
                &public_der,
                SigningAlgorithm::Ed25519PhSha512,
                Message::Raw(&message),
                &expected,
            )
            .map_err(|e| e.to_string());
            tally.check(name.clone(), case.valid(), with_public);
            // Ed25519ph and Ed25519 are separated by RFC 8032's domain prefix: neither signature passes
            // as the other.
            let as_pure = verify_public(
                KeySpec::EccNistEdwards25519,
                &public_der,
                SigningAlgorithm::Ed25519Sha512,
                Message::Raw(&message),
                &expected,
            )
            .map_err(|e| e.to_string());
            tally.check(format!("{name} as pure Ed25519"), false, as_pure);
        }
    }
    tally.finish("Ed25519ph", 3, 16);
}

#[test]
fn ed25519ph_and_pure_ed25519_signatures_are_not_interchangeable() {
    let key = PrivateKey::generate(KeySpec::EccNistEdwards25519).unwrap();
    let message = b"one key, two algorithms";
    let pure = key
        .sign(SigningAlgorithm::Ed25519Sha512, Message::Raw(message))
        .unwrap();
    let prehashed = key
        .sign(SigningAlgorithm::Ed25519PhSha512, Message::Raw(message))
        .unwrap();
    assert_ne!(pure, prehashed);
    let verify = |algorithm, signature: &[u8]| {
        verify_public(
            KeySpec::EccNistEdwards25519,
            key.public_key_der(),
            algorithm,
            Message::Raw(message),
            signature,
        )
        .unwrap()
    };
    assert!(verify(SigningAlgorithm::Ed25519Sha512, &pure));
    assert!(verify(SigningAlgorithm::Ed25519PhSha512, &prehashed));
    assert!(!verify(SigningAlgorithm::Ed25519Sha512, &prehashed));
    assert!(!verify(SigningAlgorithm::Ed25519PhSha512, &pure));
}
