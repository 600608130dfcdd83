//! ML-DSA (FIPS 204), pure, with the empty context KMS uses: Wycheproof verification cases, key
//! generation from a seed against NIST ACVP, and Wycheproof's seed-format PKCS#8 keys imported as stored
//! keys would be. External μ (KMS's EXTERNAL_MU): the stored key's seed gives RustCrypto's `ml-dsa` the
//! same key as aws-lc-rs, signatures over μ and over the whole message are interchangeable both ways, and
//! Wycheproof's cases verify over μ.
//!
//! Signing is hedged (randomized) in aws-lc-rs, so signatures cannot be compared with the vectors'
//! deterministic ones: signing is checked by round trip, verification by the vectors.

use aws_lc_rs::encoding::AsRawBytes;
use aws_lc_rs::signature::{self, KeyPair, PqdsaKeyPair, PqdsaSigningAlgorithm};
use ml_dsa::signature::digest::Update;
use ml_dsa::{
    EncodedVerifyingKey, Keypair as _, MlDsa44, MlDsa65, MlDsa87, MlDsaParams, Seed, SigningKey,
    VerifyingKey,
};
use strongroom_keystore::{KeyStoreError, Message, PrivateKey, verify_public};
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

/// The raw public key at the end of an ML-DSA SubjectPublicKeyInfo.
fn raw_public(spec: KeySpec, spki: &[u8]) -> &[u8] {
    let len = match spec {
        KeySpec::MlDsa44 => 1312,
        KeySpec::MlDsa65 => 1952,
        _ => 2592,
    };
    &spki[spki.len().saturating_sub(len)..]
}

/// μ = SHAKE256(SHAKE256(pk, 64) || 0 || len(ctx) || ctx || M, 64), computed by RustCrypto's `ml-dsa`
/// (the library the key store signs μ with; aws-lc-rs then checks what it signed as a whole message).
fn mu(spec: KeySpec, public_raw: &[u8], message: &[u8], ctx: &[u8]) -> Option<Vec<u8>> {
    fn with<P: MlDsaParams>(raw: &[u8], message: &[u8], ctx: &[u8]) -> Option<Vec<u8>> {
        let encoded = EncodedVerifyingKey::<P>::try_from(raw).ok()?;
        let key = VerifyingKey::<P>::decode(&encoded);
        let mu = key
            .compute_mu(
                |shake| {
                    shake.update(message);
                    Ok(())
                },
                ctx,
            )
            .ok()?;
        Some(mu.to_vec())
    }
    match spec {
        KeySpec::MlDsa44 => with::<MlDsa44>(public_raw, message, ctx),
        KeySpec::MlDsa65 => with::<MlDsa65>(public_raw, message, ctx),
        _ => with::<MlDsa87>(public_raw, message, ctx),
    }
}

const SPECS: [KeySpec; 3] = [KeySpec::MlDsa44, KeySpec::MlDsa65, KeySpec::MlDsa87];

/// The stored form of a generated key is PKCS#8 with the 32-byte seed (RFC 9881's `seed` choice), and
/// RustCrypto's `ml-dsa` derives the same public key from that seed as aws-lc-rs: the key store can hand
/// its keys to either library without a new storage format.
#[test]
fn stored_ml_dsa_keys_carry_their_seed_and_both_libraries_derive_the_same_key() {
    for spec in SPECS {
        let key = PrivateKey::generate(spec).unwrap();
        let pkcs8 = key.pkcs8();
        assert_eq!(pkcs8.len(), 54, "{spec}: seed-only PKCS#8");
        assert_eq!(&pkcs8[20..22], &[0x80, 0x20], "{spec}: [0] IMPLICIT seed");
        let seed = &pkcs8[22..];
        let again = PqdsaKeyPair::from_seed(algorithm(spec), seed).unwrap();
        let public = raw_public(spec, key.public_key_der());
        assert_eq!(again.public_key().as_ref(), public, "{spec}: aws-lc-rs");
        let xi = Seed::try_from(seed).unwrap();
        let rust_crypto = match spec {
            KeySpec::MlDsa44 => SigningKey::<MlDsa44>::from_seed(&xi)
                .verifying_key()
                .encode()
                .to_vec(),
            KeySpec::MlDsa65 => SigningKey::<MlDsa65>::from_seed(&xi)
                .verifying_key()
                .encode()
                .to_vec(),
            _ => SigningKey::<MlDsa87>::from_seed(&xi)
                .verifying_key()
                .encode()
                .to_vec(),
        };
        assert_eq!(rust_crypto, public, "{spec}: ml-dsa");
    }
}

/// A signature over μ is an ordinary ML-DSA signature of the message behind μ (aws-lc-rs verifies it as
/// one), and an ordinary signature made by aws-lc-rs verifies over μ: the two ways KMS's EXTERNAL_MU
/// meets RAW.
#[test]
fn external_mu_and_whole_message_signatures_are_the_same_signatures() {
    let message = b"hashed by the caller into mu, verified whole";
    for spec in SPECS {
        let key = PrivateKey::generate(spec).unwrap();
        let public = key.public_key_der();
        let mu = mu(spec, raw_public(spec, public), message, b"").unwrap();
        let algorithm = SigningAlgorithm::MlDsaShake256;
        let over_mu = key.sign(algorithm, Message::ExternalMu(&mu)).unwrap();
        // Hedged: a second signature over the same μ differs.
        assert_ne!(
            key.sign(algorithm, Message::ExternalMu(&mu)).unwrap(),
            over_mu,
            "{spec}"
        );
        let whole = |message: &[u8], signature: &[u8]| {
            verify_public(spec, public, algorithm, Message::Raw(message), signature).unwrap()
        };
        assert!(whole(message, &over_mu), "{spec}: aws-lc-rs accepts it");
        assert!(!whole(b"another message", &over_mu), "{spec}");
        assert!(
            key.verify(algorithm, Message::Raw(message), &over_mu)
                .unwrap(),
            "{spec}"
        );

        let over_message = key.sign(algorithm, Message::Raw(message)).unwrap();
        let by_mu = |mu: &[u8], signature: &[u8]| {
            verify_public(spec, public, algorithm, Message::ExternalMu(mu), signature).unwrap()
        };
        assert!(by_mu(&mu, &over_message), "{spec}: ml-dsa accepts it");
        assert!(by_mu(&mu, &over_mu), "{spec}");
        let mut other = mu.clone();
        other[0] ^= 1;
        assert!(!by_mu(&other, &over_message), "{spec}");
        let mut flipped = over_message.clone();
        flipped[over_message.len() / 2] ^= 1;
        assert!(!by_mu(&mu, &flipped), "{spec}");
        assert!(!by_mu(&mu, &over_message[1..]), "{spec}: truncated");
        assert!(
            key.verify(algorithm, Message::ExternalMu(&mu), &over_message)
                .unwrap(),
            "{spec}"
        );

        for wrong in [&mu[..63], &[mu.as_slice(), &[0]].concat()] {
            assert!(matches!(
                key.sign(algorithm, Message::ExternalMu(wrong)),
                Err(KeyStoreError::InvalidInput(_))
            ));
        }
    }
    // Only ML-DSA takes a μ.
    let ecdsa = PrivateKey::generate(KeySpec::EccNistP256).unwrap();
    assert!(matches!(
        ecdsa.sign(SigningAlgorithm::EcdsaSha256, Message::ExternalMu(&[0; 64])),
        Err(KeyStoreError::Unsupported(_))
    ));
}

/// Wycheproof's verification cases over μ, computed with each case's context: μ carries the context,
/// so a signature made with one verifies as an EXTERNAL_MU message, unlike as a RAW one.
#[test]
fn ml_dsa_verification_over_mu_matches_wycheproof() {
    let file = vectors::load("mldsa.json");
    let mut tally = Tally::default();
    for suite in &file.suites {
        let spec = suite.spec();
        for group in &suite.groups {
            let public_der = hex(group.public_key_der.as_deref().unwrap());
            for case in &group.tests {
                let message = hex(&case.msg);
                let mu = mu(
                    spec,
                    raw_public(spec, &public_der),
                    &message,
                    &hex(&case.ctx),
                )
                .unwrap_or_else(|| vec![0; 64]);
                let verified = verify_public(
                    spec,
                    &public_der,
                    SigningAlgorithm::MlDsaShake256,
                    Message::ExternalMu(&mu),
                    &hex(&case.sig),
                )
                .map_err(|e| e.to_string());
                tally.check(
                    format!("{} over mu", case.name(suite)),
                    case.valid(),
                    verified,
                );
            }
        }
    }
    tally.finish("ML-DSA over mu", 6, 5);
}

/// A key whose PKCS#8 holds the seed with the expanded key signs over μ; one holding only the expanded
/// key (which aws-lc-rs accepts, but from which the seed cannot be recovered) still signs whole messages
/// and refuses μ with a clear error.
#[test]
fn external_mu_needs_the_seed_in_the_stored_key() {
    fn der(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        match content.len() {
            len @ 0..=0x7f => out.push(len as u8),
            len @ 0x80..=0xff => out.extend_from_slice(&[0x81, len as u8]),
            len => out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]),
        }
        out.extend_from_slice(content);
        out
    }
    let spec = KeySpec::MlDsa65;
    let generated = PrivateKey::generate(spec).unwrap();
    let seed = &generated.pkcs8()[22..];
    let pair = PqdsaKeyPair::from_seed(algorithm(spec), seed).unwrap();
    let expanded = pair.private_key().as_raw_bytes().unwrap();
    let pkcs8 = |private: Vec<u8>| {
        let identifier = der(
            0x30,
            &[
                0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03, 0x12,
            ],
        );
        der(
            0x30,
            &[der(0x02, &[0]), identifier, der(0x04, &private)].concat(),
        )
    };
    let both = pkcs8(der(
        0x30,
        &[der(0x04, seed), der(0x04, expanded.as_ref())].concat(),
    ));
    let expanded_only = pkcs8(der(0x04, expanded.as_ref()));
    let message = b"mu needs the seed";
    let public = generated.public_key_der();
    let mu = mu(spec, raw_public(spec, public), message, b"").unwrap();
    let algorithm = SigningAlgorithm::MlDsaShake256;

    let with_both = PrivateKey::from_pkcs8(spec, &both).unwrap();
    assert_eq!(with_both.public_key_der(), public);
    let signature = with_both.sign(algorithm, Message::ExternalMu(&mu)).unwrap();
    assert!(verify_public(spec, public, algorithm, Message::Raw(message), &signature).unwrap());

    let without_seed = PrivateKey::from_pkcs8(spec, &expanded_only).unwrap();
    assert_eq!(without_seed.public_key_der(), public);
    let signature = without_seed.sign(algorithm, Message::Raw(message)).unwrap();
    assert!(
        verify_public(
            spec,
            public,
            algorithm,
            Message::ExternalMu(&mu),
            &signature
        )
        .unwrap()
    );
    match without_seed.sign(algorithm, Message::ExternalMu(&mu)) {
        Err(KeyStoreError::Unsupported(text)) => assert!(text.contains("seed"), "{text}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}
