//! Asymmetric and HMAC keys through the SDK: CreateKey for every spec, Sign and Verify (RAW and DIGEST,
//! Ed25519ph, ML-DSA's EXTERNAL_MU), GetPublicKey, GenerateMac and VerifyMac, DeriveSharedSecret, RSA
//! Encrypt/Decrypt/ReEncrypt and the data key pairs, with their error paths and key states.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_kms::Client;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{
    DataKeyPairSpec, EncryptionAlgorithmSpec, KeyAgreementAlgorithmSpec, KeySpec, KeyUsageType,
    MacAlgorithmSpec, MessageType, SigningAlgorithmSpec,
};
use strongroom_keystore::{Message, verify_public};
use strongroom_types::SigningAlgorithm;

use crate::harness::{TestServer, create_key, failure};

async fn create(client: &Client, spec: KeySpec, usage: KeyUsageType) -> String {
    let created = client
        .create_key()
        .key_spec(spec.clone())
        .key_usage(usage.clone())
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateKey {spec:?} {usage:?}: {e:?}"));
    created
        .key_metadata()
        .expect("metadata")
        .key_id()
        .to_owned()
}

async fn sign(
    client: &Client,
    key_id: &str,
    message: &[u8],
    message_type: MessageType,
    algorithm: SigningAlgorithmSpec,
) -> Vec<u8> {
    client
        .sign()
        .key_id(key_id)
        .message(Blob::new(message))
        .message_type(message_type)
        .signing_algorithm(algorithm.clone())
        .send()
        .await
        .unwrap_or_else(|e| panic!("Sign with {algorithm:?}: {e:?}"))
        .signature()
        .expect("a signature")
        .as_ref()
        .to_vec()
}

async fn verify(
    client: &Client,
    key_id: &str,
    message: &[u8],
    message_type: MessageType,
    algorithm: SigningAlgorithmSpec,
    signature: &[u8],
) -> Result<bool, String> {
    match client
        .verify()
        .key_id(key_id)
        .message(Blob::new(message))
        .message_type(message_type)
        .signing_algorithm(algorithm)
        .signature(Blob::new(signature))
        .send()
        .await
    {
        Ok(out) => Ok(out.signature_valid()),
        Err(e) => Err(failure::<(), _, _>(Err(e)).code),
    }
}

/// Every signing spec with each of its algorithms: a signature verifies, and a changed message or
/// signature does not.
#[tokio::test]
async fn every_signing_spec_signs_and_verifies_with_each_of_its_algorithms() {
    let server = TestServer::start().await;
    let client = server.client();
    let cases: &[(KeySpec, &[SigningAlgorithmSpec])] = &[
        (
            KeySpec::Rsa2048,
            &[
                SigningAlgorithmSpec::RsassaPssSha256,
                SigningAlgorithmSpec::RsassaPssSha384,
                SigningAlgorithmSpec::RsassaPssSha512,
                SigningAlgorithmSpec::RsassaPkcs1V15Sha256,
                SigningAlgorithmSpec::RsassaPkcs1V15Sha384,
                SigningAlgorithmSpec::RsassaPkcs1V15Sha512,
            ],
        ),
        (KeySpec::Rsa3072, &[SigningAlgorithmSpec::RsassaPssSha256]),
        (KeySpec::EccNistP256, &[SigningAlgorithmSpec::EcdsaSha256]),
        (KeySpec::EccNistP384, &[SigningAlgorithmSpec::EcdsaSha384]),
        (KeySpec::EccNistP521, &[SigningAlgorithmSpec::EcdsaSha512]),
        (KeySpec::EccSecgP256K1, &[SigningAlgorithmSpec::EcdsaSha256]),
        (
            KeySpec::EccNistEdwards25519,
            &[SigningAlgorithmSpec::Ed25519Sha512],
        ),
        (KeySpec::MlDsa44, &[SigningAlgorithmSpec::MlDsaShake256]),
        (KeySpec::MlDsa65, &[SigningAlgorithmSpec::MlDsaShake256]),
        (KeySpec::MlDsa87, &[SigningAlgorithmSpec::MlDsaShake256]),
    ];
    let message = b"the quick brown fox";
    for (spec, algorithms) in cases {
        let key_id = create(&client, spec.clone(), KeyUsageType::SignVerify).await;
        let described = client.describe_key().key_id(&key_id).send().await.unwrap();
        let metadata = described.key_metadata().unwrap();
        assert_eq!(metadata.key_spec(), Some(spec));
        for algorithm in *algorithms {
            assert!(
                metadata.signing_algorithms().contains(algorithm),
                "{spec:?} lists {algorithm:?}"
            );
            let signature = sign(
                &client,
                &key_id,
                message,
                MessageType::Raw,
                algorithm.clone(),
            )
            .await;
            assert_eq!(
                verify(
                    &client,
                    &key_id,
                    message,
                    MessageType::Raw,
                    algorithm.clone(),
                    &signature
                )
                .await,
                Ok(true),
                "{spec:?} {algorithm:?}"
            );
            assert_eq!(
                verify(
                    &client,
                    &key_id,
                    b"the quick brown fax",
                    MessageType::Raw,
                    algorithm.clone(),
                    &signature
                )
                .await,
                Err("KMSInvalidSignatureException".to_owned()),
                "{spec:?} {algorithm:?}: another message"
            );
            let mut altered = signature.clone();
            let last = altered.len() - 1;
            altered[last] ^= 1;
            assert_eq!(
                verify(
                    &client,
                    &key_id,
                    message,
                    MessageType::Raw,
                    algorithm.clone(),
                    &altered
                )
                .await,
                Err("KMSInvalidSignatureException".to_owned()),
                "{spec:?} {algorithm:?}: altered signature"
            );
        }
    }
}

/// A DIGEST message is the hash of the message: signing the digest verifies against the raw message, and
/// the other way round; a digest of the wrong length is refused.
#[tokio::test]
async fn digest_messages_are_not_hashed_again() {
    let server = TestServer::start().await;
    let client = server.client();
    let message = b"digest me";
    let sha256 = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, message);
    let sha512 = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA512, message);
    let cases = [
        (
            KeySpec::EccNistP256,
            SigningAlgorithmSpec::EcdsaSha256,
            sha256.as_ref(),
        ),
        (
            KeySpec::Rsa2048,
            SigningAlgorithmSpec::RsassaPssSha256,
            sha256.as_ref(),
        ),
        (
            KeySpec::Rsa2048,
            SigningAlgorithmSpec::RsassaPkcs1V15Sha512,
            sha512.as_ref(),
        ),
        (
            KeySpec::EccNistP521,
            SigningAlgorithmSpec::EcdsaSha512,
            sha512.as_ref(),
        ),
    ];
    for (spec, algorithm, digest) in cases {
        let key_id = create(&client, spec.clone(), KeyUsageType::SignVerify).await;
        let from_digest = sign(
            &client,
            &key_id,
            digest,
            MessageType::Digest,
            algorithm.clone(),
        )
        .await;
        assert_eq!(
            verify(
                &client,
                &key_id,
                message,
                MessageType::Raw,
                algorithm.clone(),
                &from_digest
            )
            .await,
            Ok(true),
            "{spec:?} {algorithm:?}: a digest signature verifies against the message"
        );
        let from_raw = sign(
            &client,
            &key_id,
            message,
            MessageType::Raw,
            algorithm.clone(),
        )
        .await;
        assert_eq!(
            verify(
                &client,
                &key_id,
                digest,
                MessageType::Digest,
                algorithm.clone(),
                &from_raw
            )
            .await,
            Ok(true),
            "{spec:?} {algorithm:?}: a message signature verifies against the digest"
        );
        let short = failure(
            client
                .sign()
                .key_id(&key_id)
                .message(Blob::new(&digest[..20]))
                .message_type(MessageType::Digest)
                .signing_algorithm(algorithm.clone())
                .send()
                .await,
        );
        assert_eq!(
            short.code, "ValidationException",
            "{spec:?}: {}",
            short.message
        );
        assert!(short.message.contains("Digest"), "{}", short.message);
    }
    let ed = create(
        &client,
        KeySpec::EccNistEdwards25519,
        KeyUsageType::SignVerify,
    )
    .await;
    let refused = failure(
        client
            .sign()
            .key_id(&ed)
            .message(Blob::new(sha512.as_ref()))
            .message_type(MessageType::Digest)
            .signing_algorithm(SigningAlgorithmSpec::Ed25519Sha512)
            .send()
            .await,
    );
    assert_eq!(refused.code, "ValidationException", "{}", refused.message);
}

/// ED25519_PH_SHA_512 takes the message's SHA-512 digest as a DIGEST message and, as AWS documents,
/// hashes it once more: the signature is Ed25519ph (RFC 8032) with those 64 bytes as its message, which
/// anyone can check with the public key alone. RAW is refused, as AWS refuses it.
#[tokio::test]
async fn ed25519ph_signs_a_sha512_digest_and_verifies_with_the_public_key() {
    let server = TestServer::start().await;
    let client = server.client();
    let key_id = create(
        &client,
        KeySpec::EccNistEdwards25519,
        KeyUsageType::SignVerify,
    )
    .await;
    let described = client.describe_key().key_id(&key_id).send().await.unwrap();
    assert_eq!(
        described.key_metadata().unwrap().signing_algorithms(),
        &[
            SigningAlgorithmSpec::Ed25519Sha512,
            SigningAlgorithmSpec::Ed25519PhSha512
        ]
    );
    let public = client
        .get_public_key()
        .key_id(&key_id)
        .send()
        .await
        .unwrap();
    assert_eq!(
        public.signing_algorithms(),
        &[
            SigningAlgorithmSpec::Ed25519Sha512,
            SigningAlgorithmSpec::Ed25519PhSha512
        ]
    );
    let public = public.public_key().unwrap().as_ref().to_vec();

    let message = b"a message longer than KMS would take whole, hashed by the caller";
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA512, message);
    let ph = SigningAlgorithmSpec::Ed25519PhSha512;
    let signature = sign(
        &client,
        &key_id,
        digest.as_ref(),
        MessageType::Digest,
        ph.clone(),
    )
    .await;
    assert_eq!(signature.len(), 64);
    // Ed25519ph is deterministic (RFC 8032): the same digest gives the same signature.
    assert_eq!(
        sign(
            &client,
            &key_id,
            digest.as_ref(),
            MessageType::Digest,
            ph.clone()
        )
        .await,
        signature
    );
    // With the public key alone, as anyone outside KMS would check it.
    let outside = |message: &[u8], algorithm, signature: &[u8]| {
        verify_public(
            strongroom_types::KeySpec::EccNistEdwards25519,
            &public,
            algorithm,
            Message::Raw(message),
            signature,
        )
        .unwrap()
    };
    assert!(outside(
        digest.as_ref(),
        SigningAlgorithm::Ed25519PhSha512,
        &signature
    ));
    assert!(!outside(
        message,
        SigningAlgorithm::Ed25519PhSha512,
        &signature
    ));
    assert!(!outside(
        digest.as_ref(),
        SigningAlgorithm::Ed25519Sha512,
        &signature
    ));

    assert_eq!(
        verify(
            &client,
            &key_id,
            digest.as_ref(),
            MessageType::Digest,
            ph.clone(),
            &signature
        )
        .await,
        Ok(true)
    );
    let other = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA512, b"another message");
    assert_eq!(
        verify(
            &client,
            &key_id,
            other.as_ref(),
            MessageType::Digest,
            ph.clone(),
            &signature
        )
        .await,
        Err("KMSInvalidSignatureException".to_owned())
    );
    // Pure Ed25519 over the same bytes is another signature, and a truncated one is merely invalid.
    assert_eq!(
        verify(
            &client,
            &key_id,
            digest.as_ref(),
            MessageType::Raw,
            SigningAlgorithmSpec::Ed25519Sha512,
            &signature
        )
        .await,
        Err("KMSInvalidSignatureException".to_owned())
    );
    assert_eq!(
        verify(
            &client,
            &key_id,
            digest.as_ref(),
            MessageType::Digest,
            ph.clone(),
            &signature[..63]
        )
        .await,
        Err("KMSInvalidSignatureException".to_owned())
    );

    for (message, message_type, wording) in [
        (message.as_slice(), MessageType::Raw, "Message type RAW"),
        (
            &digest.as_ref()[..32],
            MessageType::Digest,
            "Digest is invalid length",
        ),
        (digest.as_ref(), MessageType::ExternalMu, "EXTERNAL_MU"),
    ] {
        let refused = failure(
            client
                .sign()
                .key_id(&key_id)
                .message(Blob::new(message))
                .message_type(message_type.clone())
                .signing_algorithm(ph.clone())
                .send()
                .await,
        );
        assert_eq!(
            refused.code, "ValidationException",
            "{message_type:?}: {}",
            refused.message
        );
        assert!(refused.message.contains(wording), "{}", refused.message);
        let refused = failure(
            client
                .verify()
                .key_id(&key_id)
                .message(Blob::new(message))
                .message_type(message_type.clone())
                .signing_algorithm(ph.clone())
                .signature(Blob::new(signature.clone()))
                .send()
                .await,
        );
        assert_eq!(refused.code, "ValidationException", "{message_type:?}");
    }
    // Without MessageType the message is RAW, which Ed25519ph does not take.
    let refused = failure(
        client
            .sign()
            .key_id(&key_id)
            .message(Blob::new(digest.as_ref()))
            .signing_algorithm(ph.clone())
            .send()
            .await,
    );
    assert_eq!(refused.code, "ValidationException", "{}", refused.message);
}

/// ML_DSA_SHAKE_256 with MessageType EXTERNAL_MU signs and verifies a 64-byte mu (the message
/// representative the caller computed); interop.rs checks against an independent implementation that the
/// signatures are ordinary ML-DSA signatures of the message behind mu. Lengths other than 64 bytes, and
/// EXTERNAL_MU with any other algorithm, are refused; so is DIGEST with ML-DSA.
#[tokio::test]
async fn ml_dsa_signs_and_verifies_an_external_mu() {
    let server = TestServer::start().await;
    let client = server.client();
    let algorithm = SigningAlgorithmSpec::MlDsaShake256;
    let mu: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(37) ^ 0x5a).collect();
    let mut other_mu = mu.clone();
    other_mu[63] ^= 1;
    for spec in [KeySpec::MlDsa44, KeySpec::MlDsa65, KeySpec::MlDsa87] {
        let key_id = create(&client, spec.clone(), KeyUsageType::SignVerify).await;
        let signature = sign(
            &client,
            &key_id,
            &mu,
            MessageType::ExternalMu,
            algorithm.clone(),
        )
        .await;
        // Hedged signing, as AWS signs ML-DSA: the same mu gives another signature each time.
        let again = sign(
            &client,
            &key_id,
            &mu,
            MessageType::ExternalMu,
            algorithm.clone(),
        )
        .await;
        assert_ne!(signature, again, "{spec:?}");
        for signature in [&signature, &again] {
            assert_eq!(
                verify(
                    &client,
                    &key_id,
                    &mu,
                    MessageType::ExternalMu,
                    algorithm.clone(),
                    signature
                )
                .await,
                Ok(true),
                "{spec:?}"
            );
        }
        assert_eq!(
            verify(
                &client,
                &key_id,
                &other_mu,
                MessageType::ExternalMu,
                algorithm.clone(),
                &signature
            )
            .await,
            Err("KMSInvalidSignatureException".to_owned()),
            "{spec:?}: another mu"
        );
        // The same 64 bytes as a RAW message are another message.
        assert_eq!(
            verify(
                &client,
                &key_id,
                &mu,
                MessageType::Raw,
                algorithm.clone(),
                &signature
            )
            .await,
            Err("KMSInvalidSignatureException".to_owned()),
            "{spec:?}: mu as a RAW message"
        );
        for (message, message_type, wording) in [
            (&mu[..63], MessageType::ExternalMu, "64-byte mu"),
            (
                &[mu.as_slice(), &[0]].concat()[..],
                MessageType::ExternalMu,
                "64-byte mu",
            ),
            (&mu[..], MessageType::Digest, "Message type DIGEST"),
        ] {
            let refused = failure(
                client
                    .sign()
                    .key_id(&key_id)
                    .message(Blob::new(message))
                    .message_type(message_type.clone())
                    .signing_algorithm(algorithm.clone())
                    .send()
                    .await,
            );
            assert_eq!(
                refused.code, "ValidationException",
                "{spec:?} {message_type:?}: {}",
                refused.message
            );
            assert!(refused.message.contains(wording), "{}", refused.message);
            let refused = failure(
                client
                    .verify()
                    .key_id(&key_id)
                    .message(Blob::new(message))
                    .message_type(message_type.clone())
                    .signing_algorithm(algorithm.clone())
                    .signature(Blob::new(signature.clone()))
                    .send()
                    .await,
            );
            assert_eq!(refused.code, "ValidationException", "{spec:?}");
        }
    }
    let ecdsa = create(&client, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    let refused = failure(
        client
            .sign()
            .key_id(&ecdsa)
            .message(Blob::new(&mu[..32]))
            .message_type(MessageType::ExternalMu)
            .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
            .send()
            .await,
    );
    assert_eq!(refused.code, "ValidationException", "{}", refused.message);
    assert!(
        refused.message.contains("EXTERNAL_MU"),
        "{}",
        refused.message
    );
}

/// The longest pause of a ticker that wakes every 5 ms on the test's runtime while `work` runs, with how
/// long `work` took.
async fn longest_stall<F: std::future::Future<Output = ()>>(work: F) -> (Duration, Duration) {
    let longest = Arc::new(Mutex::new(Duration::ZERO));
    let ticker = tokio::spawn({
        let longest = longest.clone();
        async move {
            let mut last = Instant::now();
            loop {
                tokio::time::sleep(Duration::from_millis(5)).await;
                let now = Instant::now();
                let mut longest = longest.lock().unwrap();
                *longest = (*longest).max(now - last);
                last = now;
            }
        }
    });
    let started = Instant::now();
    work.await;
    let took = started.elapsed();
    ticker.abort();
    let stall = *longest.lock().unwrap();
    (stall, took)
}

/// RSA key generation (CreateKey, GenerateDataKeyPair) runs on the blocking pool: on this single-threaded
/// runtime, which the server shares with the test, generating an RSA 4096 key on the async worker would
/// stop everything, this ticker included, for the whole generation.
#[tokio::test(flavor = "current_thread")]
async fn rsa_key_generation_does_not_stall_the_runtime() {
    let server = TestServer::start().await;
    let client = server.client();
    let (symmetric, _) = create_key(&client, "wraps data key pairs").await;
    let (stall, took) = longest_stall(async {
        create(&client, KeySpec::Rsa4096, KeyUsageType::SignVerify).await;
    })
    .await;
    assert!(
        stall < took / 2,
        "CreateKey RSA_4096 took {took:?}; the runtime stalled for {stall:?}"
    );
    let (stall, took) = longest_stall(async {
        client
            .generate_data_key_pair()
            .key_id(&symmetric)
            .key_pair_spec(DataKeyPairSpec::Rsa4096)
            .send()
            .await
            .expect("GenerateDataKeyPair RSA_4096");
    })
    .await;
    assert!(
        stall < took / 2,
        "GenerateDataKeyPair RSA_4096 took {took:?}; the runtime stalled for {stall:?}"
    );
}

#[tokio::test]
async fn algorithms_and_usages_that_do_not_fit_the_key_are_refused() {
    let server = TestServer::start().await;
    let client = server.client();
    let ecc = create(&client, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    let wrong_algorithm = failure(
        client
            .sign()
            .key_id(&ecc)
            .message(Blob::new(b"m".as_slice()))
            .signing_algorithm(SigningAlgorithmSpec::EcdsaSha384)
            .send()
            .await,
    );
    assert_eq!(wrong_algorithm.code, "InvalidKeyUsageException");
    assert!(
        wrong_algorithm.message.contains("ECDSA_SHA_384"),
        "{}",
        wrong_algorithm.message
    );

    let (symmetric, _) = create_key(&client, "symmetric").await;
    let not_signing = failure(
        client
            .sign()
            .key_id(&symmetric)
            .message(Blob::new(b"m".as_slice()))
            .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
            .send()
            .await,
    );
    assert_eq!(not_signing.code, "InvalidKeyUsageException");
    let no_public_key = failure(client.get_public_key().key_id(&symmetric).send().await);
    assert_eq!(no_public_key.code, "UnsupportedOperationException");
    let not_mac = failure(
        client
            .generate_mac()
            .key_id(&ecc)
            .message(Blob::new(b"m".as_slice()))
            .mac_algorithm(MacAlgorithmSpec::HmacSha256)
            .send()
            .await,
    );
    assert_eq!(not_mac.code, "InvalidKeyUsageException");
    let signing_key_encrypts = failure(
        client
            .encrypt()
            .key_id(&ecc)
            .plaintext(Blob::new(b"m".as_slice()))
            .encryption_algorithm(EncryptionAlgorithmSpec::RsaesOaepSha256)
            .send()
            .await,
    );
    assert_eq!(signing_key_encrypts.code, "InvalidKeyUsageException");
    let rsa = create(&client, KeySpec::Rsa2048, KeyUsageType::EncryptDecrypt).await;
    let data_key_from_rsa = failure(
        client
            .generate_data_key()
            .key_id(&rsa)
            .key_spec(aws_sdk_kms::types::DataKeySpec::Aes256)
            .send()
            .await,
    );
    assert_eq!(data_key_from_rsa.code, "InvalidKeyUsageException");

    // CreateKey refuses usages the spec does not have, and SM2.
    for (spec, usage) in [
        (KeySpec::EccNistP256, KeyUsageType::EncryptDecrypt),
        (KeySpec::Hmac256, KeyUsageType::EncryptDecrypt),
        (KeySpec::Rsa2048, KeyUsageType::GenerateVerifyMac),
        (KeySpec::MlDsa65, KeyUsageType::KeyAgreement),
        (KeySpec::SymmetricDefault, KeyUsageType::SignVerify),
    ] {
        let refused = failure(
            client
                .create_key()
                .key_spec(spec.clone())
                .key_usage(usage.clone())
                .send()
                .await,
        );
        assert_eq!(refused.code, "ValidationException", "{spec:?} {usage:?}");
    }
    let hmac_without_usage = failure(client.create_key().key_spec(KeySpec::Hmac256).send().await);
    assert_eq!(hmac_without_usage.code, "ValidationException");
    assert!(
        hmac_without_usage.message.contains("GENERATE_VERIFY_MAC"),
        "{}",
        hmac_without_usage.message
    );
    let sm2 = failure(
        client
            .create_key()
            .key_spec(KeySpec::Sm2)
            .key_usage(KeyUsageType::SignVerify)
            .send()
            .await,
    );
    assert_eq!(sm2.code, "UnsupportedOperationException");
}

#[tokio::test]
async fn get_public_key_and_describe_key_list_what_the_key_can_do() {
    let server = TestServer::start().await;
    let client = server.client();
    let rsa = create(&client, KeySpec::Rsa4096, KeyUsageType::EncryptDecrypt).await;
    let public = client
        .get_public_key()
        .key_id(&rsa)
        .send()
        .await
        .expect("GetPublicKey");
    assert_eq!(public.key_spec(), Some(&KeySpec::Rsa4096));
    assert_eq!(public.key_usage(), Some(&KeyUsageType::EncryptDecrypt));
    assert_eq!(
        public.encryption_algorithms(),
        &[
            EncryptionAlgorithmSpec::RsaesOaepSha1,
            EncryptionAlgorithmSpec::RsaesOaepSha256
        ]
    );
    assert!(public.signing_algorithms().is_empty());
    let der = public.public_key().expect("a public key").as_ref();
    // DER SubjectPublicKeyInfo: a SEQUENCE holding the rsaEncryption OID.
    assert_eq!(der[0], 0x30);
    let rsa_oid = [
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
    ];
    assert!(
        der.windows(rsa_oid.len()).any(|w| w == rsa_oid),
        "rsaEncryption OID"
    );
    assert!(der.len() > 512, "a 4096-bit modulus");

    let agreement = create(&client, KeySpec::EccNistP384, KeyUsageType::KeyAgreement).await;
    let described = client
        .describe_key()
        .key_id(&agreement)
        .send()
        .await
        .unwrap();
    let metadata = described.key_metadata().unwrap();
    assert_eq!(
        metadata.key_agreement_algorithms(),
        &[KeyAgreementAlgorithmSpec::Ecdh]
    );
    assert!(metadata.signing_algorithms().is_empty());
    assert!(metadata.encryption_algorithms().is_empty());

    let hmac = create(&client, KeySpec::Hmac384, KeyUsageType::GenerateVerifyMac).await;
    let described = client.describe_key().key_id(&hmac).send().await.unwrap();
    assert_eq!(
        described.key_metadata().unwrap().mac_algorithms(),
        &[MacAlgorithmSpec::HmacSha384]
    );

    // The key-state table: a disabled key gives no public key.
    client.disable_key().key_id(&rsa).send().await.unwrap();
    let disabled = failure(client.get_public_key().key_id(&rsa).send().await);
    assert_eq!(disabled.code, "DisabledException");
}

#[tokio::test]
async fn hmac_keys_generate_and_verify_macs() {
    let server = TestServer::start().await;
    let client = server.client();
    let cases = [
        (KeySpec::Hmac224, MacAlgorithmSpec::HmacSha224, 28),
        (KeySpec::Hmac256, MacAlgorithmSpec::HmacSha256, 32),
        (KeySpec::Hmac384, MacAlgorithmSpec::HmacSha384, 48),
        (KeySpec::Hmac512, MacAlgorithmSpec::HmacSha512, 64),
    ];
    for (spec, algorithm, len) in cases {
        let key_id = create(&client, spec.clone(), KeyUsageType::GenerateVerifyMac).await;
        let generated = client
            .generate_mac()
            .key_id(&key_id)
            .message(Blob::new(b"hello".as_slice()))
            .mac_algorithm(algorithm.clone())
            .send()
            .await
            .expect("GenerateMac");
        let mac = generated.mac().unwrap().as_ref().to_vec();
        assert_eq!(mac.len(), len, "{spec:?}");
        assert_eq!(generated.mac_algorithm(), Some(&algorithm));
        let again = client
            .generate_mac()
            .key_id(&key_id)
            .message(Blob::new(b"hello".as_slice()))
            .mac_algorithm(algorithm.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(again.mac().unwrap().as_ref(), mac, "HMAC is deterministic");
        let verified = client
            .verify_mac()
            .key_id(&key_id)
            .message(Blob::new(b"hello".as_slice()))
            .mac_algorithm(algorithm.clone())
            .mac(Blob::new(mac.clone()))
            .send()
            .await
            .expect("VerifyMac");
        assert!(verified.mac_valid());
        let mut wrong = mac.clone();
        wrong[0] ^= 0x80;
        for (message, tag) in [
            (b"hello".as_slice(), wrong.clone()),
            (b"hellO".as_slice(), mac.clone()),
        ] {
            let refused = failure(
                client
                    .verify_mac()
                    .key_id(&key_id)
                    .message(Blob::new(message))
                    .mac_algorithm(algorithm.clone())
                    .mac(Blob::new(tag))
                    .send()
                    .await,
            );
            assert_eq!(refused.code, "KMSInvalidMacException");
        }
        let other_algorithm = if algorithm == MacAlgorithmSpec::HmacSha256 {
            MacAlgorithmSpec::HmacSha512
        } else {
            MacAlgorithmSpec::HmacSha256
        };
        let mismatch = failure(
            client
                .generate_mac()
                .key_id(&key_id)
                .message(Blob::new(b"hello".as_slice()))
                .mac_algorithm(other_algorithm)
                .send()
                .await,
        );
        assert_eq!(mismatch.code, "InvalidKeyUsageException");
    }
}

#[tokio::test]
async fn two_key_agreement_keys_derive_the_same_secret() {
    let server = TestServer::start().await;
    let client = server.client();
    for spec in [
        KeySpec::EccNistP256,
        KeySpec::EccNistP384,
        KeySpec::EccNistP521,
    ] {
        let alice = create(&client, spec.clone(), KeyUsageType::KeyAgreement).await;
        let bob = create(&client, spec.clone(), KeyUsageType::KeyAgreement).await;
        let public = |key: String| {
            let client = client.clone();
            async move {
                client
                    .get_public_key()
                    .key_id(key)
                    .send()
                    .await
                    .unwrap()
                    .public_key()
                    .unwrap()
                    .clone()
            }
        };
        let alice_public = public(alice.clone()).await;
        let bob_public = public(bob.clone()).await;
        let derive = |key: String, peer: Blob| {
            let client = client.clone();
            async move {
                let out = client
                    .derive_shared_secret()
                    .key_id(key)
                    .key_agreement_algorithm(KeyAgreementAlgorithmSpec::Ecdh)
                    .public_key(peer)
                    .send()
                    .await
                    .expect("DeriveSharedSecret");
                assert_eq!(out.key_origin().map(|o| o.as_str()), Some("AWS_KMS"));
                out.shared_secret().unwrap().as_ref().to_vec()
            }
        };
        let one = derive(alice.clone(), bob_public).await;
        let two = derive(bob.clone(), alice_public.clone()).await;
        assert_eq!(one, two, "{spec:?}: both sides agree");
        assert!(!one.is_empty());
        let own = derive(alice.clone(), alice_public).await;
        assert_ne!(own, one);

        let garbage = failure(
            client
                .derive_shared_secret()
                .key_id(&alice)
                .key_agreement_algorithm(KeyAgreementAlgorithmSpec::Ecdh)
                .public_key(Blob::new(b"not a public key".as_slice()))
                .send()
                .await,
        );
        assert_eq!(garbage.code, "ValidationException", "{}", garbage.message);
    }
    let signing = create(&client, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    let peer = create(&client, KeySpec::EccNistP256, KeyUsageType::KeyAgreement).await;
    let peer_public = client.get_public_key().key_id(&peer).send().await.unwrap();
    let refused = failure(
        client
            .derive_shared_secret()
            .key_id(&signing)
            .key_agreement_algorithm(KeyAgreementAlgorithmSpec::Ecdh)
            .public_key(peer_public.public_key().unwrap().clone())
            .send()
            .await,
    );
    assert_eq!(refused.code, "InvalidKeyUsageException");
}

#[tokio::test]
async fn rsa_keys_encrypt_decrypt_and_re_encrypt() {
    let server = TestServer::start().await;
    let client = server.client();
    let rsa = create(&client, KeySpec::Rsa2048, KeyUsageType::EncryptDecrypt).await;
    for (algorithm, max) in [
        (EncryptionAlgorithmSpec::RsaesOaepSha1, 214),
        (EncryptionAlgorithmSpec::RsaesOaepSha256, 190),
    ] {
        let plaintext = vec![7u8; max];
        let encrypted = client
            .encrypt()
            .key_id(&rsa)
            .plaintext(Blob::new(plaintext.clone()))
            .encryption_algorithm(algorithm.clone())
            .send()
            .await
            .expect("Encrypt");
        let blob = encrypted.ciphertext_blob().unwrap().clone();
        assert_eq!(blob.as_ref().len(), 256, "bare RSA-OAEP output");
        let decrypted = client
            .decrypt()
            .key_id(&rsa)
            .ciphertext_blob(blob.clone())
            .encryption_algorithm(algorithm.clone())
            .send()
            .await
            .expect("Decrypt");
        assert_eq!(decrypted.plaintext().unwrap().as_ref(), plaintext);
        assert_eq!(decrypted.encryption_algorithm(), Some(&algorithm));

        let too_long = failure(
            client
                .encrypt()
                .key_id(&rsa)
                .plaintext(Blob::new(vec![7u8; max + 1]))
                .encryption_algorithm(algorithm.clone())
                .send()
                .await,
        );
        assert_eq!(too_long.code, "ValidationException", "{}", too_long.message);

        // Without the KeyId the bare RSA ciphertext names no key.
        let no_key = failure(client.decrypt().ciphertext_blob(blob.clone()).send().await);
        assert_eq!(no_key.code, "InvalidCiphertextException");
        let other = if algorithm == EncryptionAlgorithmSpec::RsaesOaepSha1 {
            EncryptionAlgorithmSpec::RsaesOaepSha256
        } else {
            EncryptionAlgorithmSpec::RsaesOaepSha1
        };
        let wrong_algorithm = failure(
            client
                .decrypt()
                .key_id(&rsa)
                .ciphertext_blob(blob)
                .encryption_algorithm(other)
                .send()
                .await,
        );
        assert_eq!(wrong_algorithm.code, "InvalidCiphertextException");
    }
    let dry = failure(
        client
            .decrypt()
            .key_id(&rsa)
            .encryption_algorithm(EncryptionAlgorithmSpec::RsaesOaepSha256)
            .dry_run(true)
            .dry_run_modifiers(aws_sdk_kms::types::DryRunModifierType::IgnoreCiphertext)
            .send()
            .await,
    );
    assert_eq!(dry.code, "DryRunOperationException", "{}", dry.message);
    let no_algorithm = failure(
        client
            .encrypt()
            .key_id(&rsa)
            .plaintext(Blob::new(b"x".as_slice()))
            .send()
            .await,
    );
    assert_eq!(no_algorithm.code, "InvalidKeyUsageException");
    let with_context = failure(
        client
            .encrypt()
            .key_id(&rsa)
            .plaintext(Blob::new(b"x".as_slice()))
            .encryption_algorithm(EncryptionAlgorithmSpec::RsaesOaepSha256)
            .encryption_context("k", "v")
            .send()
            .await,
    );
    assert_eq!(with_context.code, "ValidationException");

    // ReEncrypt from a symmetric key to the RSA key and back.
    let (symmetric, symmetric_arn) = create_key(&client, "symmetric").await;
    let sealed = client
        .encrypt()
        .key_id(&symmetric)
        .plaintext(Blob::new(b"moving house".as_slice()))
        .encryption_context("room", "kitchen")
        .send()
        .await
        .unwrap();
    let to_rsa = client
        .re_encrypt()
        .ciphertext_blob(sealed.ciphertext_blob().unwrap().clone())
        .source_encryption_context("room", "kitchen")
        .destination_key_id(&rsa)
        .destination_encryption_algorithm(EncryptionAlgorithmSpec::RsaesOaepSha256)
        .send()
        .await
        .expect("ReEncrypt to RSA");
    assert_eq!(to_rsa.source_key_id(), Some(symmetric_arn.as_str()));
    assert_eq!(
        to_rsa.destination_encryption_algorithm(),
        Some(&EncryptionAlgorithmSpec::RsaesOaepSha256)
    );
    let back = client
        .re_encrypt()
        .ciphertext_blob(to_rsa.ciphertext_blob().unwrap().clone())
        .source_key_id(&rsa)
        .source_encryption_algorithm(EncryptionAlgorithmSpec::RsaesOaepSha256)
        .destination_key_id(&symmetric)
        .destination_encryption_context("room", "attic")
        .send()
        .await
        .expect("ReEncrypt from RSA");
    assert_eq!(
        back.source_encryption_algorithm(),
        Some(&EncryptionAlgorithmSpec::RsaesOaepSha256)
    );
    let opened = client
        .decrypt()
        .ciphertext_blob(back.ciphertext_blob().unwrap().clone())
        .encryption_context("room", "attic")
        .send()
        .await
        .unwrap();
    assert_eq!(opened.plaintext().unwrap().as_ref(), b"moving house");

    client.disable_key().key_id(&rsa).send().await.unwrap();
    let disabled = failure(
        client
            .encrypt()
            .key_id(&rsa)
            .plaintext(Blob::new(b"x".as_slice()))
            .encryption_algorithm(EncryptionAlgorithmSpec::RsaesOaepSha256)
            .send()
            .await,
    );
    assert_eq!(disabled.code, "DisabledException");
}

#[tokio::test]
async fn data_key_pairs_come_with_their_private_key_encrypted_under_the_kms_key() {
    let server = TestServer::start().await;
    let client = server.client();
    let (key_id, key_arn) = create_key(&client, "wraps key pairs").await;
    for spec in [
        DataKeyPairSpec::Rsa2048,
        DataKeyPairSpec::EccNistP256,
        DataKeyPairSpec::EccNistP521,
        DataKeyPairSpec::EccSecgP256K1,
        DataKeyPairSpec::EccNistEdwards25519,
    ] {
        let pair = client
            .generate_data_key_pair()
            .key_id(&key_id)
            .key_pair_spec(spec.clone())
            .encryption_context("owner", "alice")
            .send()
            .await
            .unwrap_or_else(|e| panic!("GenerateDataKeyPair {spec:?}: {e:?}"));
        assert_eq!(pair.key_id(), Some(key_arn.as_str()));
        assert_eq!(pair.key_pair_spec(), Some(&spec));
        let private = pair
            .private_key_plaintext()
            .expect("a private key")
            .as_ref()
            .to_vec();
        assert_eq!(private[0], 0x30, "PKCS#8 DER");
        assert_eq!(pair.public_key().unwrap().as_ref()[0], 0x30, "SPKI DER");
        let opened = client
            .decrypt()
            .ciphertext_blob(pair.private_key_ciphertext_blob().unwrap().clone())
            .encryption_context("owner", "alice")
            .send()
            .await
            .expect("the encrypted private key decrypts");
        assert_eq!(opened.plaintext().unwrap().as_ref(), private, "{spec:?}");

        let hidden = client
            .generate_data_key_pair_without_plaintext()
            .key_id(&key_id)
            .key_pair_spec(spec.clone())
            .send()
            .await
            .expect("GenerateDataKeyPairWithoutPlaintext");
        assert!(hidden.public_key().is_some());
        assert!(hidden.private_key_ciphertext_blob().is_some());
    }
    // The wrapping key must be a symmetric encryption key.
    let rsa = create(&client, KeySpec::Rsa2048, KeyUsageType::EncryptDecrypt).await;
    let refused = failure(
        client
            .generate_data_key_pair()
            .key_id(&rsa)
            .key_pair_spec(DataKeyPairSpec::EccNistP256)
            .send()
            .await,
    );
    assert_eq!(refused.code, "InvalidKeyUsageException");
    let sm2 = failure(
        client
            .generate_data_key_pair()
            .key_id(&key_id)
            .key_pair_spec(DataKeyPairSpec::Sm2)
            .send()
            .await,
    );
    assert_eq!(sm2.code, "UnsupportedOperationException");
}

#[tokio::test]
async fn dry_runs_check_everything_and_do_nothing() {
    let server = TestServer::start().await;
    let client = server.client();
    let ecc = create(&client, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    let dry = failure(
        client
            .sign()
            .key_id(&ecc)
            .message(Blob::new(b"m".as_slice()))
            .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
            .dry_run(true)
            .send()
            .await,
    );
    assert_eq!(dry.code, "DryRunOperationException");
    let dry_but_wrong = failure(
        client
            .sign()
            .key_id(&ecc)
            .message(Blob::new(b"m".as_slice()))
            .signing_algorithm(SigningAlgorithmSpec::RsassaPssSha256)
            .dry_run(true)
            .send()
            .await,
    );
    assert_eq!(dry_but_wrong.code, "InvalidKeyUsageException");
    let hmac = create(&client, KeySpec::Hmac256, KeyUsageType::GenerateVerifyMac).await;
    let dry_mac = failure(
        client
            .generate_mac()
            .key_id(&hmac)
            .message(Blob::new(b"m".as_slice()))
            .mac_algorithm(MacAlgorithmSpec::HmacSha256)
            .dry_run(true)
            .send()
            .await,
    );
    assert_eq!(dry_mac.code, "DryRunOperationException");
}

#[tokio::test]
async fn asymmetric_keys_survive_a_restart() {
    let data = crate::harness::TempDir::new("asymmetric-restart");
    let server = TestServer::start_in(data.path(), |_| {}).await;
    let client = server.client();
    let ecc = create(&client, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    let hmac = create(&client, KeySpec::Hmac512, KeyUsageType::GenerateVerifyMac).await;
    let public_before = client.get_public_key().key_id(&ecc).send().await.unwrap();
    let signature = sign(
        &client,
        &ecc,
        b"kept",
        MessageType::Raw,
        SigningAlgorithmSpec::EcdsaSha256,
    )
    .await;
    let mac = client
        .generate_mac()
        .key_id(&hmac)
        .message(Blob::new(b"kept".as_slice()))
        .mac_algorithm(MacAlgorithmSpec::HmacSha512)
        .send()
        .await
        .unwrap();
    server.stop().await;

    let server = TestServer::start_in(data.path(), |_| {}).await;
    let client = server.client();
    let public_after = client.get_public_key().key_id(&ecc).send().await.unwrap();
    assert_eq!(public_before.public_key(), public_after.public_key());
    assert_eq!(
        verify(
            &client,
            &ecc,
            b"kept",
            MessageType::Raw,
            SigningAlgorithmSpec::EcdsaSha256,
            &signature
        )
        .await,
        Ok(true)
    );
    let verified = client
        .verify_mac()
        .key_id(&hmac)
        .message(Blob::new(b"kept".as_slice()))
        .mac_algorithm(MacAlgorithmSpec::HmacSha512)
        .mac(mac.mac().unwrap().clone())
        .send()
        .await
        .unwrap();
    assert!(verified.mac_valid());
}

/// ML-KEM: Encapsulate and Decapsulate agree; a secret encapsulated outside Strongroom with the public key
/// from GetPublicKey decapsulates inside; a wrong length is refused and an altered ciphertext yields a
/// different secret (implicit rejection).
#[tokio::test]
async fn ml_kem_keys_encapsulate_and_decapsulate() {
    use aws_lc_rs::kem;
    use aws_sdk_kms::types::EncapsulationAlgorithmSpec;

    let server = TestServer::start().await;
    let client = server.client();
    let cases = [
        (KeySpec::MlKem512, &kem::ML_KEM_512, 800, 768),
        (KeySpec::MlKem768, &kem::ML_KEM_768, 1184, 1088),
        (KeySpec::MlKem1024, &kem::ML_KEM_1024, 1568, 1568),
    ];
    for (spec, algorithm, public_len, ciphertext_len) in cases {
        let key_id = create(&client, spec.clone(), KeyUsageType::EncapsulateDecapsulate).await;
        let described = client.describe_key().key_id(&key_id).send().await.unwrap();
        assert_eq!(
            described.key_metadata().unwrap().encapsulation_algorithms(),
            &[EncapsulationAlgorithmSpec::MlKem]
        );
        let encapsulated = client
            .encapsulate()
            .key_id(&key_id)
            .encapsulation_algorithm(EncapsulationAlgorithmSpec::MlKem)
            .send()
            .await
            .expect("Encapsulate");
        let blob = encapsulated
            .shared_secret_ciphertext_blob()
            .unwrap()
            .clone();
        assert_eq!(blob.as_ref().len(), ciphertext_len, "{spec:?}");
        let secret = encapsulated.shared_secret().unwrap().as_ref().to_vec();
        assert_eq!(secret.len(), 32);
        let decapsulate = |blob: Blob| {
            let client = client.clone();
            let key_id = key_id.clone();
            async move {
                client
                    .decapsulate()
                    .key_id(key_id)
                    .encapsulation_algorithm(EncapsulationAlgorithmSpec::MlKem)
                    .shared_secret_ciphertext_blob(blob)
                    .send()
                    .await
            }
        };
        let back = decapsulate(blob.clone()).await.expect("Decapsulate");
        assert_eq!(back.shared_secret().unwrap().as_ref(), secret, "{spec:?}");

        // Outside: the raw encapsulation key is the last `public_len` bytes of the SPKI's BIT STRING.
        let public = client
            .get_public_key()
            .key_id(&key_id)
            .send()
            .await
            .unwrap();
        let der = public.public_key().unwrap().as_ref();
        assert_eq!(der[0], 0x30);
        let raw = &der[der.len() - public_len..];
        let outside =
            kem::EncapsulationKey::new(algorithm, raw).expect("a valid ML-KEM public key");
        let (ciphertext, outside_secret) = outside.encapsulate().unwrap();
        let inside = decapsulate(Blob::new(ciphertext.as_ref())).await.unwrap();
        assert_eq!(
            inside.shared_secret().unwrap().as_ref(),
            outside_secret.as_ref(),
            "{spec:?}"
        );

        let mut altered = blob.as_ref().to_vec();
        altered[0] ^= 1;
        let rejected = decapsulate(Blob::new(altered))
            .await
            .expect("implicit rejection answers");
        assert_ne!(rejected.shared_secret().unwrap().as_ref(), secret);
        let short = failure(decapsulate(Blob::new(&blob.as_ref()[1..])).await);
        assert_eq!(short.code, "InvalidCiphertextException");
    }
    let (symmetric, _) = create_key(&client, "not ML-KEM").await;
    let refused = failure(
        client
            .encapsulate()
            .key_id(&symmetric)
            .encapsulation_algorithm(EncapsulationAlgorithmSpec::MlKem)
            .send()
            .await,
    );
    assert_eq!(refused.code, "InvalidKeyUsageException");
}
