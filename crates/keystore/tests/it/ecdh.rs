//! ECDH (DeriveSharedSecret's primitive): the raw shared secret for a known private scalar and a peer's
//! DER public key, from Wycheproof (including public keys that must be refused: wrong curve, points off
//! the curve, invalid encodings) and NIST CAVP's KAS ECC ZZ-only tests.

use aws_lc_rs::agreement;
use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use strongroom_keystore::PrivateKey;
use strongroom_types::KeySpec;

use crate::vectors::{self, Tally, hex};

/// A private key of `spec` with the scalar `private` (big-endian, with or without leading zeros), as
/// PKCS#8 through aws-lc-rs and then imported like any stored key.
fn key_from_scalar(spec: KeySpec, private: &[u8]) -> PrivateKey {
    let (algorithm, len) = match spec {
        KeySpec::EccNistP256 => (&agreement::ECDH_P256, 32),
        KeySpec::EccNistP384 => (&agreement::ECDH_P384, 48),
        KeySpec::EccNistP521 => (&agreement::ECDH_P521, 66),
        other => panic!("{other} does no key agreement"),
    };
    let significant: Vec<u8> = private.iter().copied().skip_while(|b| *b == 0).collect();
    assert!(significant.len() <= len, "a scalar longer than the curve");
    let mut scalar = vec![0u8; len - significant.len()];
    scalar.extend_from_slice(&significant);
    let key = agreement::PrivateKey::from_private_key(algorithm, &scalar).unwrap();
    let pkcs8: Pkcs8V1Der<'static> = key.as_der().unwrap();
    PrivateKey::from_pkcs8(spec, pkcs8.as_ref()).unwrap()
}

#[test]
fn ecdh_shared_secrets_match_wycheproof_and_nist() {
    let file = vectors::load("ecdh.json");
    let mut tally = Tally::default();
    for suite in &file.suites {
        // NIST's failing cases carry a wrong Z for a valid peer key; Wycheproof's carry a peer key that
        // must be refused outright.
        let wrong_secret_cases = suite.source.starts_with("NIST");
        for case in &suite.tests {
            let name = case.name(suite);
            let key = key_from_scalar(suite.spec(), &hex(&case.private));
            let derived = key.derive_shared_secret(&hex(&case.public));
            match (case.valid(), wrong_secret_cases, derived) {
                (true, _, Ok(secret)) => tally.check(
                    name,
                    true,
                    Ok(secret.as_slice() == hex(&case.shared).as_slice()),
                ),
                (false, true, Ok(secret)) => tally.check(
                    name,
                    false,
                    Ok(secret.as_slice() == hex(&case.shared).as_slice()),
                ),
                (expected, _, Ok(_)) => tally.check(name, expected, Ok(true)),
                (expected, _, Err(e)) => tally.check(name, expected, Err(e.to_string())),
            }
        }
    }
    tally.finish("ECDH", 30, 30);
}

#[test]
fn ecdh_agrees_both_ways_and_refuses_other_curves() {
    for spec in [
        KeySpec::EccNistP256,
        KeySpec::EccNistP384,
        KeySpec::EccNistP521,
    ] {
        let ours = PrivateKey::generate(spec).unwrap();
        let theirs = PrivateKey::generate(spec).unwrap();
        let one = ours.derive_shared_secret(theirs.public_key_der()).unwrap();
        let other = theirs.derive_shared_secret(ours.public_key_der()).unwrap();
        assert_eq!(one.as_slice(), other.as_slice(), "{spec}");
        let expected_len = match spec {
            KeySpec::EccNistP256 => 32,
            KeySpec::EccNistP384 => 48,
            _ => 66,
        };
        assert_eq!(one.len(), expected_len, "{spec}: the raw x-coordinate");
    }
    let p256 = PrivateKey::generate(KeySpec::EccNistP256).unwrap();
    let p384 = PrivateKey::generate(KeySpec::EccNistP384).unwrap();
    assert!(p256.derive_shared_secret(p384.public_key_der()).is_err());
    let k1 = PrivateKey::generate(KeySpec::EccSecgP256k1).unwrap();
    assert!(p256.derive_shared_secret(k1.public_key_der()).is_err());
    // secp256k1 keys sign only: KMS offers no key agreement on them.
    assert!(k1.derive_shared_secret(p256.public_key_der()).is_err());
}
