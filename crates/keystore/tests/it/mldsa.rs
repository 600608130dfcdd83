//! ML-DSA (FIPS 204), pure, with the empty context KMS uses: Wycheproof verification cases, key
//! generation from a seed against NIST ACVP, and Wycheproof's seed-format PKCS#8 keys imported as stored
//! keys would be.
//!
//! Signing is hedged (randomized) in aws-lc-rs, so signatures cannot be compared with the vectors'
//! deterministic ones: signing is checked by round trip, verification by the vectors.

use aws_lc_rs::signature::{self, PqdsaKeyPair, PqdsaSigningAlgorithm};
use strongroom_keystore::{Message, PrivateKey};
use strongroom_types::{KeySpec, SigningAlgorithm};

use crate::signatures::verify_file;
use crate::vectors::{self, Tally, hex};

fn algorithm(spec: KeySpec) -> &'static PqdsaSigningAlgorithm {
    match spec {
        KeySpec::MlDsa44 => &signature::ML_DSA_44_SIGNING,
        KeySpec::MlDsa65 => &signature::ML_DSA_65_SIGNING,
        KeySpec::MlDsa87 => &signature::ML_DSA_87_SIGNING,
        other => panic!("{other} is not ML-DSA"),
    }
}

#[test]
fn ml_dsa_verification_matches_wycheproof() {
    verify_file("mldsa.json").finish("ML-DSA verification", 3, 10);
}

#[test]
fn ml_dsa_keys_from_seeds_match_acvp_and_wycheproof() {
    let file = vectors::load("mldsa.json");
    let mut tally = Tally::default();
    for suite in &file.suites {
        let spec = suite.spec();
        for case in &suite.key_gen {
            let name = format!("{} tcId {}", suite.source, case.tc_id);
            let pair = PqdsaKeyPair::from_seed(algorithm(spec), &hex(&case.seed)).unwrap();
            let pkcs8 = pair.to_pkcs8v1().unwrap();
            let key = PrivateKey::from_pkcs8(spec, pkcs8.as_ref()).unwrap();
            let public = hex(&case.pk);
            tally.check(name, true, Ok(key.public_key_der().ends_with(&public)));
        }
        for group in suite
            .groups
            .iter()
            .filter(|g| g.private_key_pkcs8.is_some())
        {
            let name = format!("{} seed key", suite.source);
            let imported =
                PrivateKey::from_pkcs8(spec, &hex(group.private_key_pkcs8.as_deref().unwrap()))
                    .unwrap();
            let public_der = hex(group.public_key_der.as_deref().unwrap());
            tally.check(
                format!("{name}: PKCS#8 import"),
                true,
                Ok(imported.public_key_der() == public_der.as_slice()),
            );
            let seed = hex(group.private_seed.as_deref().unwrap());
            let from_seed = PqdsaKeyPair::from_seed(algorithm(spec), &seed).unwrap();
            let regenerated =
                PrivateKey::from_pkcs8(spec, from_seed.to_pkcs8v1().unwrap().as_ref()).unwrap();
            tally.check(
                format!("{name}: from the seed"),
                true,
                Ok(regenerated.public_key_der() == public_der.as_slice()),
            );
            // The imported key verifies the vectors' signatures made with it, and its own.
            for case in &group.tests {
                let expected = case.valid() && case.ctx.is_empty();
                let verified = imported
                    .verify(
                        SigningAlgorithm::MlDsaShake256,
                        Message::Raw(&hex(&case.msg)),
                        &hex(&case.sig),
                    )
                    .map_err(|e| e.to_string());
                tally.check(
                    format!("{} with the private key", case.name(suite)),
                    expected,
                    verified,
                );
            }
            let message = b"ML-DSA round trip";
            let signature = imported
                .sign(SigningAlgorithm::MlDsaShake256, Message::Raw(message))
                .unwrap();
            let verified = imported
                .verify(
                    SigningAlgorithm::MlDsaShake256,
                    Message::Raw(message),
                    &signature,
                )
                .map_err(|e| e.to_string());
            tally.check(format!("{name}: sign and verify"), true, verified);
        }
    }
    tally.finish("ML-DSA keys", 12, 3);
}
