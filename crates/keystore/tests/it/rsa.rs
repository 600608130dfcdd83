//! RSA with known private keys: RSASSA-PKCS1-v1_5 signatures (deterministic, so Sign has exact answers)
//! and RSAES-OAEP decryption, through `PrivateKey::from_pkcs8` as an imported or stored key would be.

use strongroom_keystore::{Message, PrivateKey};
use strongroom_types::{EncryptionAlgorithm, SigningAlgorithm};

use crate::signatures::digest_for;
use crate::vectors::{self, Tally, hex};

#[test]
fn rsa_pkcs1_signatures_are_exactly_wycheproofs() {
    let file = vectors::load("rsa_pkcs1_sign.json");
    let mut tally = Tally::default();
    for suite in &file.suites {
        for group in &suite.groups {
            let pkcs8 = hex(group.private_key_pkcs8.as_deref().expect("a private key"));
            let key = PrivateKey::from_pkcs8(suite.spec(), &pkcs8)
                .unwrap_or_else(|e| panic!("{}: the key does not import: {e}", suite.source));
            let algorithm: SigningAlgorithm = group
                .algorithm
                .as_deref()
                .expect("an algorithm")
                .parse()
                .unwrap();
            for case in &group.tests {
                let message = hex(&case.msg);
                let expected = hex(&case.sig);
                let name = format!("{} {algorithm}", case.name(suite));
                let raw = key.sign(algorithm, Message::Raw(&message)).unwrap();
                let digest = digest_for(algorithm, &message).unwrap();
                let over_digest = key.sign(algorithm, Message::Digest(&digest)).unwrap();
                if raw != expected || over_digest != expected {
                    tally.fail(format!("{name}: the signature differs from the vector's"));
                    continue;
                }
                let verified = key
                    .verify(algorithm, Message::Raw(&message), &expected)
                    .map_err(|e| e.to_string());
                tally.check(name, true, verified);
            }
        }
    }
    tally.finish("RSASSA-PKCS1-v1_5 signing", 10, 0);
}

/// The other OAEP algorithm KMS offers, under which a ciphertext must not decrypt.
fn other(algorithm: EncryptionAlgorithm) -> EncryptionAlgorithm {
    match algorithm {
        EncryptionAlgorithm::RsaesOaepSha1 => EncryptionAlgorithm::RsaesOaepSha256,
        _ => EncryptionAlgorithm::RsaesOaepSha1,
    }
}

#[test]
fn rsa_oaep_decryption_matches_wycheproof_with_kms_parameters() {
    let file = vectors::load("rsa_oaep_decrypt.json");
    let mut tally = Tally::default();
    for suite in &file.suites {
        let algorithm: EncryptionAlgorithm = suite.algorithm.as_deref().unwrap().parse().unwrap();
        for group in &suite.groups {
            let pkcs8 = hex(group.private_key_pkcs8.as_deref().expect("a private key"));
            let key = PrivateKey::from_pkcs8(suite.spec(), &pkcs8)
                .unwrap_or_else(|e| panic!("{}: the key does not import: {e}", suite.source));
            for case in &group.tests {
                let name = case.name(suite);
                let message = hex(&case.msg);
                // KMS's RSAES_OAEP_* use an empty label: a ciphertext made with another label is not one
                // of KMS's, however valid it is for Wycheproof.
                let expected = suite.kms_parameters && case.valid() && case.label.is_empty();
                let outcome = match key.decrypt(algorithm, &hex(&case.ct)) {
                    Ok(plaintext) if plaintext.as_slice() == message.as_slice() => Ok(true),
                    Ok(_) => {
                        tally.fail(format!("{name}: decrypted to the wrong plaintext"));
                        continue;
                    }
                    Err(e) => Err(e.to_string()),
                };
                tally.check(name.clone(), expected, outcome);
                if expected {
                    let crossed = key.decrypt(other(algorithm), &hex(&case.ct)).is_ok();
                    tally.check(
                        format!("{name} under {}", other(algorithm)),
                        false,
                        Ok(crossed),
                    );
                    // And the public key encrypts what the private key decrypts.
                    let ciphertext = key.encrypt(algorithm, &message).unwrap();
                    let back = key.decrypt(algorithm, &ciphertext).unwrap();
                    tally.check(
                        format!("{name} re-encrypted"),
                        true,
                        Ok(back.as_slice() == message.as_slice()),
                    );
                }
            }
        }
    }
    tally.finish("RSAES-OAEP", 15, 20);
}
