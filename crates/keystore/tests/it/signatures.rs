//! Signature verification against public keys alone (ECDSA, RSASSA-PKCS1-v1_5, RSASSA-PSS), and the
//! round trip every signing algorithm must survive: a signature made with `PrivateKey::sign` verifies with
//! nothing but the public key GetPublicKey would return.

use aws_lc_rs::digest;
use strongroom_keystore::{KeyStoreError, Message, PrivateKey, verify_public};
use strongroom_types::{KeySpec, SigningAlgorithm};

use crate::vectors::{self, Case, Suite, Tally, hex};

/// The digest KMS expects in a `DIGEST` message for `algorithm`.
pub(crate) fn digest_for(algorithm: SigningAlgorithm, message: &[u8]) -> Option<Vec<u8>> {
    let hash = match algorithm.digest_len()? {
        32 => &digest::SHA256,
        48 => &digest::SHA384,
        64 => &digest::SHA512,
        other => panic!("no hash of {other} bytes"),
    };
    Some(digest::digest(hash, message).as_ref().to_vec())
}

/// Runs one verification case with the public key, for a raw message and (where the algorithm takes one)
/// for its digest: the two must agree with each other and with the expected outcome.
pub(crate) fn check_case(
    tally: &mut Tally,
    suite: &Suite,
    public_der: &[u8],
    case: &Case,
    expected: bool,
) {
    let spec = suite.spec();
    let algorithm: SigningAlgorithm = suite
        .algorithm
        .as_deref()
        .expect("a signature suite names its algorithm")
        .parse()
        .expect("a signing algorithm");
    let message = hex(&case.msg);
    let signature = hex(&case.sig);
    let outcome = |message: Message<'_>| {
        verify_public(spec, public_der, algorithm, message, &signature).map_err(|e| e.to_string())
    };
    tally.check(case.name(suite), expected, outcome(Message::Raw(&message)));
    if let Some(digest) = digest_for(algorithm, &message) {
        tally.check(
            format!("{} as DIGEST", case.name(suite)),
            expected,
            outcome(Message::Digest(&digest)),
        );
    }
}

/// Every case of a verification file, with the outcome KMS must give.
pub(crate) fn verify_file(name: &str) -> Tally {
    let file = vectors::load(name);
    let mut tally = Tally::default();
    for suite in &file.suites {
        for group in &suite.groups {
            let public_der = hex(group
                .public_key_der
                .as_deref()
                .expect("verification groups carry a public key"));
            for case in &group.tests {
                // An ML-DSA context is never used by KMS, which signs with the empty context.
                let expected = suite.kms_parameters && case.valid() && case.ctx.is_empty();
                check_case(&mut tally, suite, &public_der, case, expected);
            }
        }
    }
    tally
}

#[test]
fn ecdsa_verification_matches_wycheproof_and_nist() {
    verify_file("ecdsa_verify.json").finish("ECDSA", 40, 150);
}

#[test]
fn rsa_pkcs1_verification_matches_wycheproof_and_nist() {
    verify_file("rsa_pkcs1_verify.json").finish("RSASSA-PKCS1-v1_5", 15, 80);
}

#[test]
fn rsa_pss_verification_matches_wycheproof_and_nist_and_holds_kms_parameters() {
    verify_file("rsa_pss_verify.json").finish("RSASSA-PSS", 15, 20);
}

/// Every signing algorithm of every signing key spec: sign with the private key, verify with the public
/// key alone, and reject the signature over another message or after a bit flip.
#[test]
fn every_signing_algorithm_round_trips_through_the_public_key() {
    let pairs: &[(KeySpec, &[SigningAlgorithm])] = &[
        (
            KeySpec::Rsa2048,
            &[
                SigningAlgorithm::RsassaPssSha256,
                SigningAlgorithm::RsassaPssSha384,
                SigningAlgorithm::RsassaPssSha512,
                SigningAlgorithm::RsassaPkcs1V15Sha256,
                SigningAlgorithm::RsassaPkcs1V15Sha384,
                SigningAlgorithm::RsassaPkcs1V15Sha512,
            ],
        ),
        (KeySpec::EccNistP256, &[SigningAlgorithm::EcdsaSha256]),
        (KeySpec::EccNistP384, &[SigningAlgorithm::EcdsaSha384]),
        (KeySpec::EccNistP521, &[SigningAlgorithm::EcdsaSha512]),
        (KeySpec::EccSecgP256k1, &[SigningAlgorithm::EcdsaSha256]),
        (
            KeySpec::EccNistEdwards25519,
            &[
                SigningAlgorithm::Ed25519Sha512,
                SigningAlgorithm::Ed25519PhSha512,
            ],
        ),
        (KeySpec::MlDsa44, &[SigningAlgorithm::MlDsaShake256]),
        (KeySpec::MlDsa65, &[SigningAlgorithm::MlDsaShake256]),
        (KeySpec::MlDsa87, &[SigningAlgorithm::MlDsaShake256]),
    ];
    let message = b"known answers are not enough: the round trip too";
    for &(spec, algorithms) in pairs {
        let key = PrivateKey::generate(spec).unwrap();
        let public = key.public_key_der();
        for &algorithm in algorithms {
            let signature = key.sign(algorithm, Message::Raw(message)).unwrap();
            let verify = |message: Message<'_>, signature: &[u8]| {
                verify_public(spec, public, algorithm, message, signature).unwrap()
            };
            assert!(
                verify(Message::Raw(message), &signature),
                "{spec} {algorithm}"
            );
            assert!(
                !verify(Message::Raw(b"another message"), &signature),
                "{spec} {algorithm}"
            );
            let mut flipped = signature.clone();
            flipped[signature.len() / 2] ^= 0x01;
            assert!(
                !verify(Message::Raw(message), &flipped),
                "{spec} {algorithm}"
            );
            // KMS hashes an ED25519_PH_SHA_512 digest once more, so its DIGEST message is not the
            // message's digest in this sense (eddsa.rs checks it).
            let digest = digest_for(algorithm, message)
                .filter(|_| algorithm != SigningAlgorithm::Ed25519PhSha512);
            if let Some(digest) = digest {
                // A signature over the digest is the signature over the message.
                assert!(
                    verify(Message::Digest(&digest), &signature),
                    "{spec} {algorithm}"
                );
                let over_digest = key.sign(algorithm, Message::Digest(&digest)).unwrap();
                assert!(
                    verify(Message::Raw(message), &over_digest),
                    "{spec} {algorithm}"
                );
            }
        }
    }
}

#[test]
fn verify_public_takes_only_a_subject_public_key_info_of_the_key_spec() {
    let key = PrivateKey::generate(KeySpec::EccNistP256).unwrap();
    let message = b"message";
    let signature = key
        .sign(SigningAlgorithm::EcdsaSha256, Message::Raw(message))
        .unwrap();
    let spki = key.public_key_der();
    let verify = |spec: KeySpec, public: &[u8]| {
        verify_public(
            spec,
            public,
            SigningAlgorithm::EcdsaSha256,
            Message::Raw(message),
            &signature,
        )
    };
    assert!(verify(KeySpec::EccNistP256, spki).unwrap());
    // The bare point (the last 65 bytes of the SPKI) is what aws-lc-rs would accept on its own.
    let point = &spki[spki.len() - 65..];
    assert!(matches!(
        verify(KeySpec::EccNistP256, point),
        Err(KeyStoreError::InvalidInput(_))
    ));
    let mut trailing = spki.to_vec();
    trailing.push(0);
    assert!(matches!(
        verify(KeySpec::EccNistP256, &trailing),
        Err(KeyStoreError::InvalidInput(_))
    ));
    // A P-256 key presented as secp256k1.
    assert!(matches!(
        verify(KeySpec::EccSecgP256k1, spki),
        Err(KeyStoreError::InvalidInput(_))
    ));
    assert!(matches!(
        verify(KeySpec::Hmac256, spki),
        Err(KeyStoreError::Unsupported(_))
    ));
}
