//! Ed25519: Wycheproof verification cases, and deterministic signing from known seeds (the reference
//! implementation's `sign.input`, whose first lines are RFC 8032's test vectors), where the signature must
//! match byte for byte.

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
