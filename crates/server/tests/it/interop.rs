//! Interoperability with an independent implementation: the Python `cryptography` package (bundling its
//! own OpenSSL or AWS-LC, not the server's aws-lc-rs), run by `tests/python/interop.py`.
//!
//! Signatures made by Strongroom verify outside with the DER public key from GetPublicKey, as RAW and as
//! DIGEST messages, and for ML-DSA over a mu computed outside (EXTERNAL_MU), both ways (Ed25519ph,
//! ED25519_PH_SHA_512, is not checked here: `cryptography` has no Ed25519ph); signatures made outside
//! with the same algorithm have the same encoding and do not verify under a KMS key; RSA-OAEP ciphertexts made outside with the public key decrypt inside; ECDH
//! secrets derived inside equal those computed outside; data key pairs work as key pairs outside; and
//! keys made outside and imported work both ways (signatures made outside verify inside, ciphertexts
//! made inside decrypt outside, MACs agree).

use aws_lc_rs::digest;
use aws_sdk_kms::Client;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{
    AlgorithmSpec, DataKeyPairSpec, EncryptionAlgorithmSpec, ExpirationModelType,
    KeyAgreementAlgorithmSpec, KeySpec, KeyUsageType, MacAlgorithmSpec, MessageType, OriginType,
    SigningAlgorithmSpec, WrappingKeySpec,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::harness::{TestServer, create_key, failure};
use crate::python::python;

/// Every signing key spec with each of its algorithms.
const SIGNING: &[(KeySpec, &[SigningAlgorithmSpec])] = &[
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
    (
        KeySpec::Rsa3072,
        &[
            SigningAlgorithmSpec::RsassaPssSha384,
            SigningAlgorithmSpec::RsassaPkcs1V15Sha256,
        ],
    ),
    (
        KeySpec::Rsa4096,
        &[
            SigningAlgorithmSpec::RsassaPssSha512,
            SigningAlgorithmSpec::RsassaPkcs1V15Sha512,
        ],
    ),
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

const MESSAGE: &[u8] = b"signed inside, verified outside";

fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

fn unb64(value: &Value) -> Vec<u8> {
    STANDARD
        .decode(
            value
                .as_str()
                .unwrap_or_else(|| panic!("not a string: {value}")),
        )
        .expect("base64")
}

/// Runs `checks` through the independent implementation and returns one result per check; a check that
/// raised there fails the test with its error.
async fn outside(checks: &[Value]) -> Vec<Value> {
    let script =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/interop.py");
    let interpreter = python();
    let mut child = tokio::process::Command::new(&interpreter)
        .arg(&script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}): run `cargo xtask ci`, which installs the cryptography package there",
                interpreter.display()
            )
        });
    let input = serde_json::to_vec(&json!({ "checks": checks })).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&input).await.unwrap();
    drop(stdin);
    let output = child.wait_with_output().await.unwrap();
    assert!(
        output.status.success(),
        "interop.py failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results: Vec<Value> = serde_json::from_slice(&output.stdout).expect("JSON results");
    assert_eq!(results.len(), checks.len());
    for (check, result) in checks.iter().zip(&results) {
        assert!(
            result.get("error").is_none(),
            "the outside check {} failed: {}",
            check["op"],
            result["error"]
        );
    }
    results
}

async fn create(client: &Client, spec: &KeySpec, usage: KeyUsageType) -> String {
    client
        .create_key()
        .key_spec(spec.clone())
        .key_usage(usage)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CreateKey {spec:?}: {e:?}"))
        .key_metadata()
        .unwrap()
        .key_id()
        .to_owned()
}

async fn public_key(client: &Client, key_id: &str) -> Vec<u8> {
    client
        .get_public_key()
        .key_id(key_id)
        .send()
        .await
        .expect("GetPublicKey")
        .public_key()
        .expect("a public key")
        .as_ref()
        .to_vec()
}

async fn sign(
    client: &Client,
    key_id: &str,
    algorithm: &SigningAlgorithmSpec,
    message: &[u8],
    message_type: MessageType,
) -> Vec<u8> {
    client
        .sign()
        .key_id(key_id)
        .signing_algorithm(algorithm.clone())
        .message(Blob::new(message))
        .message_type(message_type)
        .send()
        .await
        .unwrap_or_else(|e| panic!("Sign {algorithm:?}: {e:?}"))
        .signature()
        .unwrap()
        .as_ref()
        .to_vec()
}

/// The digest a DIGEST message holds for `algorithm`, if it takes one (RSA and ECDSA do).
fn digest_for(algorithm: &SigningAlgorithmSpec, message: &[u8]) -> Option<Vec<u8>> {
    let name = algorithm.as_str();
    if !name.starts_with("RSASSA_") && !name.starts_with("ECDSA_") {
        return None;
    }
    let hash = match &name[name.len() - 3..] {
        "256" => &digest::SHA256,
        "384" => &digest::SHA384,
        _ => &digest::SHA512,
    };
    Some(digest::digest(hash, message).as_ref().to_vec())
}

fn verify_check(
    public: &[u8],
    algorithm: &SigningAlgorithmSpec,
    message: &[u8],
    message_type: &str,
    signature: &[u8],
) -> Value {
    json!({
        "op": "verify",
        "publicKey": b64(public),
        "algorithm": algorithm.as_str(),
        "message": b64(message),
        "messageType": message_type,
        "signature": b64(signature),
    })
}

/// One KMS key per signing spec, with its GetPublicKey answer.
async fn signing_keys(client: &Client) -> Vec<(KeySpec, String, Vec<u8>)> {
    let mut keys = Vec::new();
    for (spec, _) in SIGNING {
        let key_id = create(client, spec, KeyUsageType::SignVerify).await;
        let public = public_key(client, &key_id).await;
        keys.push((spec.clone(), key_id, public));
    }
    keys
}

#[tokio::test(flavor = "multi_thread")]
async fn signatures_made_by_strongroom_verify_outside_with_the_public_key() {
    let server = TestServer::start().await;
    let client = server.client();
    let mut checks = Vec::new();
    let mut expected = Vec::new();
    for ((spec, key_id, public), (_, algorithms)) in signing_keys(&client).await.iter().zip(SIGNING)
    {
        for algorithm in *algorithms {
            let name = format!("{spec:?} {algorithm:?}");
            let signature = sign(&client, key_id, algorithm, MESSAGE, MessageType::Raw).await;
            checks.push(verify_check(public, algorithm, MESSAGE, "RAW", &signature));
            expected.push((format!("{name} RAW"), true));
            // The outside verifier does reject: another message fails.
            checks.push(verify_check(
                public,
                algorithm,
                b"another message",
                "RAW",
                &signature,
            ));
            expected.push((format!("{name} RAW, another message"), false));
            if let Some(digest) = digest_for(algorithm, MESSAGE) {
                // A signature over a DIGEST message is the signature over the message it hashes.
                let over_digest =
                    sign(&client, key_id, algorithm, &digest, MessageType::Digest).await;
                checks.push(verify_check(
                    public,
                    algorithm,
                    MESSAGE,
                    "RAW",
                    &over_digest,
                ));
                expected.push((format!("{name} DIGEST, verified over the message"), true));
                checks.push(verify_check(
                    public, algorithm, &digest, "DIGEST", &signature,
                ));
                expected.push((format!("{name} RAW, verified over the digest"), true));
            }
        }
    }
    let results = outside(&checks).await;
    for ((name, valid), result) in expected.iter().zip(&results) {
        assert_eq!(result["valid"], json!(valid), "{name}: {result}");
        if name.contains("ECDSA") {
            assert_eq!(result["encoding"], "DER", "{name}: canonical DER");
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn signatures_made_outside_have_the_same_form_and_do_not_verify_under_a_kms_key() {
    let server = TestServer::start().await;
    let client = server.client();
    let keys = signing_keys(&client).await;
    let mut ours = Vec::new();
    let mut checks = Vec::new();
    for ((spec, key_id, public), (_, algorithms)) in keys.iter().zip(SIGNING) {
        for algorithm in *algorithms {
            let signature = sign(&client, key_id, algorithm, MESSAGE, MessageType::Raw).await;
            checks.push(verify_check(public, algorithm, MESSAGE, "RAW", &signature));
            checks.push(json!({
                "op": "signOutside",
                "keySpec": spec.as_str(),
                "algorithm": algorithm.as_str(),
                "message": b64(MESSAGE),
            }));
            ours.push((
                spec.clone(),
                key_id.clone(),
                public.clone(),
                algorithm.clone(),
            ));
        }
    }
    let results = outside(&checks).await;
    let mut second_round = Vec::new();
    for ((spec, key_id, public, algorithm), pair) in ours.iter().zip(results.chunks(2)) {
        let (inside, made_outside) = (&pair[0], &pair[1]);
        let name = format!("{spec:?} {algorithm:?}");
        assert_eq!(inside["valid"], true, "{name}");
        assert_eq!(
            inside["encoding"], made_outside["encoding"],
            "{name}: a KMS signature is encoded as one made outside"
        );
        let foreign = unb64(&made_outside["signature"]);
        // KMS verifies only with its own key: a signature by another key is invalid, not an error.
        let refused = failure(
            client
                .verify()
                .key_id(key_id)
                .signing_algorithm(algorithm.clone())
                .message(Blob::new(MESSAGE))
                .message_type(MessageType::Raw)
                .signature(Blob::new(foreign.clone()))
                .send()
                .await,
        );
        assert_eq!(refused.code, "KMSInvalidSignatureException", "{name}");
        // Outside, the foreign signature verifies with its own key and not with the KMS key.
        let foreign_public = unb64(&made_outside["publicKey"]);
        second_round.push(verify_check(
            &foreign_public,
            algorithm,
            MESSAGE,
            "RAW",
            &foreign,
        ));
        second_round.push(verify_check(public, algorithm, MESSAGE, "RAW", &foreign));
    }
    let results = outside(&second_round).await;
    for (index, pair) in results.chunks(2).enumerate() {
        let (spec, _, _, algorithm) = &ours[index];
        assert_eq!(pair[0]["valid"], true, "{spec:?} {algorithm:?}: own key");
        assert_eq!(pair[1]["valid"], false, "{spec:?} {algorithm:?}: KMS key");
    }
    server.stop().await;
}

/// ML-DSA's EXTERNAL_MU, as a client would use it: mu is computed outside from the public key and the
/// message (`cryptography`'s MLDSAMuHasher), KMS signs mu, and the signature verifies outside as an
/// ordinary ML-DSA signature of the whole message and over mu; a KMS signature of the whole message
/// verifies in KMS and outside over that mu.
#[tokio::test(flavor = "multi_thread")]
async fn ml_dsa_external_mu_computed_outside_signs_and_verifies_both_ways() {
    let server = TestServer::start().await;
    let client = server.client();
    let algorithm = SigningAlgorithmSpec::MlDsaShake256;
    let message = b"hashed into mu outside, signed inside";
    let mut keys = Vec::new();
    let mut checks = Vec::new();
    for spec in [KeySpec::MlDsa44, KeySpec::MlDsa65, KeySpec::MlDsa87] {
        let key_id = create(&client, &spec, KeyUsageType::SignVerify).await;
        let public = public_key(&client, &key_id).await;
        checks.push(json!({ "op": "mlDsaMu", "publicKey": b64(&public), "message": b64(message) }));
        keys.push((spec, key_id, public));
    }
    let mus = outside(&checks).await;
    let mut checks = Vec::new();
    let mut expected = Vec::new();
    for ((spec, key_id, public), result) in keys.iter().zip(&mus) {
        let mu = unb64(&result["mu"]);
        assert_eq!(mu.len(), 64, "{spec:?}");
        let over_mu = sign(&client, key_id, &algorithm, &mu, MessageType::ExternalMu).await;
        let over_message = sign(&client, key_id, &algorithm, message, MessageType::Raw).await;
        for (name, signature) in [("over mu", &over_mu), ("over the message", &over_message)] {
            for message_type in [MessageType::Raw, MessageType::ExternalMu] {
                let valid = client
                    .verify()
                    .key_id(key_id)
                    .signing_algorithm(algorithm.clone())
                    .message(Blob::new(if message_type == MessageType::Raw {
                        message.as_slice()
                    } else {
                        mu.as_slice()
                    }))
                    .message_type(message_type.clone())
                    .signature(Blob::new(signature.clone()))
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("{spec:?} {name}: Verify {message_type:?}: {e:?}"))
                    .signature_valid();
                assert!(valid, "{spec:?} {name}: KMS Verify {message_type:?}");
            }
            checks.push(verify_check(public, &algorithm, message, "RAW", signature));
            expected.push((format!("{spec:?} {name}, verified over the message"), true));
            checks.push(verify_check(
                public,
                &algorithm,
                &mu,
                "EXTERNAL_MU",
                signature,
            ));
            expected.push((format!("{spec:?} {name}, verified over mu"), true));
            checks.push(verify_check(
                public,
                &algorithm,
                b"another message",
                "RAW",
                signature,
            ));
            expected.push((format!("{spec:?} {name}, another message"), false));
        }
    }
    let results = outside(&checks).await;
    for ((name, valid), result) in expected.iter().zip(&results) {
        assert_eq!(result["valid"], json!(valid), "{name}: {result}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ciphertexts_made_outside_with_the_public_key_decrypt_inside() {
    let server = TestServer::start().await;
    let client = server.client();
    let algorithms = [
        EncryptionAlgorithmSpec::RsaesOaepSha1,
        EncryptionAlgorithmSpec::RsaesOaepSha256,
    ];
    let mut cases = Vec::new();
    let mut checks = Vec::new();
    for (spec, longest) in [
        (KeySpec::Rsa2048, [214, 190]),
        (KeySpec::Rsa3072, [342, 318]),
        (KeySpec::Rsa4096, [470, 446]),
    ] {
        let key_id = create(&client, &spec, KeyUsageType::EncryptDecrypt).await;
        let public = public_key(&client, &key_id).await;
        for (algorithm, longest) in algorithms.iter().zip(longest) {
            for len in [0, 1, longest] {
                let plaintext: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
                checks.push(json!({
                    "op": "oaepEncrypt",
                    "publicKey": b64(&public),
                    "algorithm": algorithm.as_str(),
                    "plaintext": b64(&plaintext),
                }));
                cases.push((spec.clone(), key_id.clone(), algorithm.clone(), plaintext));
            }
        }
    }
    let results = outside(&checks).await;
    for ((spec, key_id, algorithm, plaintext), result) in cases.iter().zip(&results) {
        let name = format!("{spec:?} {algorithm:?} {} bytes", plaintext.len());
        let ciphertext = unb64(&result["ciphertext"]);
        let decrypted = client
            .decrypt()
            .key_id(key_id)
            .encryption_algorithm(algorithm.clone())
            .ciphertext_blob(Blob::new(ciphertext.clone()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{name}: Decrypt: {e:?}"));
        assert_eq!(
            decrypted.plaintext().unwrap().as_ref(),
            plaintext.as_slice(),
            "{name}"
        );
        assert_eq!(decrypted.encryption_algorithm(), Some(algorithm), "{name}");
        // The same ciphertext under the other OAEP hash does not decrypt.
        let other = if *algorithm == EncryptionAlgorithmSpec::RsaesOaepSha1 {
            EncryptionAlgorithmSpec::RsaesOaepSha256
        } else {
            EncryptionAlgorithmSpec::RsaesOaepSha1
        };
        let refused = failure(
            client
                .decrypt()
                .key_id(key_id)
                .encryption_algorithm(other)
                .ciphertext_blob(Blob::new(ciphertext))
                .send()
                .await,
        );
        assert_eq!(refused.code, "InvalidCiphertextException", "{name}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn shared_secrets_derived_inside_equal_those_computed_outside() {
    let server = TestServer::start().await;
    let client = server.client();
    let mut keys = Vec::new();
    let mut checks = Vec::new();
    for spec in [
        KeySpec::EccNistP256,
        KeySpec::EccNistP384,
        KeySpec::EccNistP521,
    ] {
        let key_id = create(&client, &spec, KeyUsageType::KeyAgreement).await;
        let public = public_key(&client, &key_id).await;
        checks.push(json!({ "op": "ecdh", "publicKey": b64(&public) }));
        keys.push((spec, key_id));
    }
    let results = outside(&checks).await;
    for ((spec, key_id), result) in keys.iter().zip(&results) {
        let derived = client
            .derive_shared_secret()
            .key_id(key_id)
            .key_agreement_algorithm(KeyAgreementAlgorithmSpec::Ecdh)
            .public_key(Blob::new(unb64(&result["publicKey"])))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{spec:?}: DeriveSharedSecret: {e:?}"));
        assert_eq!(
            derived.shared_secret().unwrap().as_ref(),
            unb64(&result["secret"]).as_slice(),
            "{spec:?}"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn data_key_pairs_are_working_key_pairs_outside() {
    let server = TestServer::start().await;
    let client = server.client();
    let (wrapping_key, _) = create_key(&client, "wraps data key pairs").await;
    let pairs = [
        (DataKeyPairSpec::Rsa2048, Some("RSASSA_PSS_SHA_256")),
        (DataKeyPairSpec::Rsa3072, Some("RSASSA_PKCS1_V1_5_SHA_384")),
        (DataKeyPairSpec::Rsa4096, Some("RSASSA_PSS_SHA_512")),
        (DataKeyPairSpec::EccNistP256, Some("ECDSA_SHA_256")),
        (DataKeyPairSpec::EccNistP384, Some("ECDSA_SHA_384")),
        (DataKeyPairSpec::EccNistP521, Some("ECDSA_SHA_512")),
        (DataKeyPairSpec::EccSecgP256K1, Some("ECDSA_SHA_256")),
        (
            DataKeyPairSpec::EccNistEdwards25519,
            Some("ED25519_SHA_512"),
        ),
    ];
    let mut checks = Vec::new();
    let mut agreements = Vec::new();
    for (spec, signing) in &pairs {
        let pair = client
            .generate_data_key_pair()
            .key_id(&wrapping_key)
            .key_pair_spec(spec.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("GenerateDataKeyPair {spec:?}: {e:?}"));
        let private = pair.private_key_plaintext().unwrap().as_ref().to_vec();
        let public = pair.public_key().unwrap().as_ref().to_vec();
        let mut check = json!({
            "op": "dataKeyPair",
            "privateKey": b64(&private),
            "publicKey": b64(&public),
            "signingAlgorithm": signing,
        });
        if spec.as_str().starts_with("RSA") {
            check["encryptionAlgorithm"] = json!("RSAES_OAEP_SHA_256");
        }
        // A NIST-curve pair agrees with a KMS key agreement key on the same curve.
        let agreement_spec = match spec {
            DataKeyPairSpec::EccNistP256 => Some(KeySpec::EccNistP256),
            DataKeyPairSpec::EccNistP384 => Some(KeySpec::EccNistP384),
            DataKeyPairSpec::EccNistP521 => Some(KeySpec::EccNistP521),
            _ => None,
        };
        if let Some(agreement_spec) = agreement_spec {
            let kms_key = create(&client, &agreement_spec, KeyUsageType::KeyAgreement).await;
            check["peerPublicKey"] = json!(b64(&public_key(&client, &kms_key).await));
            agreements.push((checks.len(), kms_key, public.clone()));
        }
        checks.push(check);
    }
    let results = outside(&checks).await;
    for ((spec, signing), result) in pairs.iter().zip(&results) {
        assert_eq!(result["publicKeyMatches"], true, "{spec:?}: {result}");
        if signing.is_some() {
            assert_eq!(result["signatureVerifies"], true, "{spec:?}: {result}");
        }
        if spec.as_str().starts_with("RSA") {
            assert_eq!(result["decrypts"], true, "{spec:?}: {result}");
        }
    }
    assert_eq!(agreements.len(), 3);
    for (index, kms_key, pair_public) in agreements {
        let derived = client
            .derive_shared_secret()
            .key_id(&kms_key)
            .key_agreement_algorithm(KeyAgreementAlgorithmSpec::Ecdh)
            .public_key(Blob::new(pair_public))
            .send()
            .await
            .expect("DeriveSharedSecret");
        assert_eq!(
            derived.shared_secret().unwrap().as_ref(),
            unb64(&results[index]["secret"]).as_slice(),
            "{:?}",
            pairs[index].0
        );
    }
    server.stop().await;
}

/// What an imported key is checked with.
enum Use {
    Sign(SigningAlgorithmSpec),
    Encrypt(EncryptionAlgorithmSpec),
    Agree,
    Mac(MacAlgorithmSpec, usize),
}

/// Keys made outside and imported (wrapped outside as AWS documents): the other way round. A signature
/// made outside verifies with KMS Verify, a ciphertext made by KMS Encrypt decrypts outside, a MAC made
/// outside verifies with VerifyMac, and GetPublicKey returns the public key made outside.
#[tokio::test(flavor = "multi_thread")]
async fn keys_made_outside_and_imported_interoperate_both_ways() {
    let server = TestServer::start().await;
    let client = server.client();
    let cases = [
        (
            KeySpec::Rsa2048,
            KeyUsageType::SignVerify,
            Use::Sign(SigningAlgorithmSpec::RsassaPssSha256),
        ),
        (
            KeySpec::Rsa3072,
            KeyUsageType::EncryptDecrypt,
            Use::Encrypt(EncryptionAlgorithmSpec::RsaesOaepSha256),
        ),
        (
            KeySpec::Rsa4096,
            KeyUsageType::SignVerify,
            Use::Sign(SigningAlgorithmSpec::RsassaPkcs1V15Sha512),
        ),
        (
            KeySpec::EccNistP256,
            KeyUsageType::SignVerify,
            Use::Sign(SigningAlgorithmSpec::EcdsaSha256),
        ),
        (
            KeySpec::EccNistP521,
            KeyUsageType::SignVerify,
            Use::Sign(SigningAlgorithmSpec::EcdsaSha512),
        ),
        (
            KeySpec::EccSecgP256K1,
            KeyUsageType::SignVerify,
            Use::Sign(SigningAlgorithmSpec::EcdsaSha256),
        ),
        (KeySpec::EccNistP384, KeyUsageType::KeyAgreement, Use::Agree),
        (
            KeySpec::EccNistEdwards25519,
            KeyUsageType::SignVerify,
            Use::Sign(SigningAlgorithmSpec::Ed25519Sha512),
        ),
        (
            KeySpec::Hmac256,
            KeyUsageType::GenerateVerifyMac,
            Use::Mac(MacAlgorithmSpec::HmacSha256, 64),
        ),
        (
            KeySpec::Hmac512,
            KeyUsageType::GenerateVerifyMac,
            Use::Mac(MacAlgorithmSpec::HmacSha512, 100),
        ),
    ];
    let mut keys = Vec::new();
    let mut checks = Vec::new();
    for (spec, usage, key_use) in &cases {
        let key_id = client
            .create_key()
            .key_spec(spec.clone())
            .key_usage(usage.clone())
            .origin(OriginType::External)
            .send()
            .await
            .unwrap_or_else(|e| panic!("CreateKey EXTERNAL {spec:?}: {e:?}"))
            .key_metadata()
            .unwrap()
            .key_id()
            .to_owned();
        // Key pairs travel under RSA_AES_KEY_WRAP (an RSA private key exceeds one RSA block); HMAC keys
        // directly under RSA-OAEP.
        let wrapping = match key_use {
            Use::Mac(..) => AlgorithmSpec::RsaesOaepSha256,
            _ => AlgorithmSpec::RsaAesKeyWrapSha256,
        };
        let parameters = client
            .get_parameters_for_import()
            .key_id(&key_id)
            .wrapping_algorithm(wrapping.clone())
            .wrapping_key_spec(WrappingKeySpec::Rsa2048)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GetParametersForImport {spec:?}: {e:?}"));
        let mut check = json!({
            "op": "importKey",
            "keySpec": spec.as_str(),
            "wrappingAlgorithm": wrapping.as_str(),
            "wrappingPublicKey": b64(parameters.public_key().unwrap().as_ref()),
            "message": b64(MESSAGE),
        });
        match key_use {
            Use::Sign(algorithm) => check["signingAlgorithm"] = json!(algorithm.as_str()),
            Use::Agree => check["keyAgreement"] = json!(true),
            Use::Mac(_, len) => check["keyLength"] = json!(len),
            Use::Encrypt(_) => {}
        }
        checks.push(check);
        keys.push((key_id, parameters.import_token().unwrap().clone()));
    }
    let results = outside(&checks).await;
    let mut decryptions = Vec::new();
    let mut expected_plaintexts = Vec::new();
    for (((spec, _, key_use), (key_id, token)), made) in cases.iter().zip(&keys).zip(&results) {
        client
            .import_key_material()
            .key_id(key_id)
            .import_token(token.clone())
            .encrypted_key_material(Blob::new(unb64(&made["encryptedKeyMaterial"])))
            .expiration_model(ExpirationModelType::KeyMaterialDoesNotExpire)
            .send()
            .await
            .unwrap_or_else(|e| panic!("ImportKeyMaterial {spec:?}: {e:?}"));
        if !matches!(key_use, Use::Mac(..)) {
            assert_eq!(
                public_key(&client, key_id).await,
                unb64(&made["publicKey"]),
                "{spec:?}: GetPublicKey returns the public key made outside"
            );
        }
        match key_use {
            Use::Sign(algorithm) => {
                let verified = client
                    .verify()
                    .key_id(key_id)
                    .signing_algorithm(algorithm.clone())
                    .message(Blob::new(MESSAGE))
                    .message_type(MessageType::Raw)
                    .signature(Blob::new(unb64(&made["signature"])))
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("{spec:?}: a signature made outside: {e:?}"));
                assert!(verified.signature_valid(), "{spec:?}");
            }
            Use::Encrypt(algorithm) => {
                let plaintext = b"encrypted inside, decrypted outside".to_vec();
                let ciphertext = client
                    .encrypt()
                    .key_id(key_id)
                    .encryption_algorithm(algorithm.clone())
                    .plaintext(Blob::new(plaintext.clone()))
                    .send()
                    .await
                    .expect("Encrypt")
                    .ciphertext_blob()
                    .unwrap()
                    .as_ref()
                    .to_vec();
                decryptions.push(json!({
                    "op": "oaepDecrypt",
                    "privateKey": made["privateKey"],
                    "algorithm": algorithm.as_str(),
                    "ciphertext": b64(&ciphertext),
                }));
                expected_plaintexts.push((spec.clone(), plaintext));
            }
            Use::Agree => {
                let derived = client
                    .derive_shared_secret()
                    .key_id(key_id)
                    .key_agreement_algorithm(KeyAgreementAlgorithmSpec::Ecdh)
                    .public_key(Blob::new(unb64(&made["peerPublicKey"])))
                    .send()
                    .await
                    .expect("DeriveSharedSecret");
                assert_eq!(
                    derived.shared_secret().unwrap().as_ref(),
                    unb64(&made["secret"]).as_slice(),
                    "{spec:?}"
                );
            }
            Use::Mac(algorithm, _) => {
                let mac = unb64(&made["mac"]);
                let generated = client
                    .generate_mac()
                    .key_id(key_id)
                    .mac_algorithm(algorithm.clone())
                    .message(Blob::new(MESSAGE))
                    .send()
                    .await
                    .expect("GenerateMac");
                assert_eq!(
                    generated.mac().unwrap().as_ref(),
                    mac.as_slice(),
                    "{spec:?}"
                );
                let verified = client
                    .verify_mac()
                    .key_id(key_id)
                    .mac_algorithm(algorithm.clone())
                    .message(Blob::new(MESSAGE))
                    .mac(Blob::new(mac))
                    .send()
                    .await
                    .expect("VerifyMac");
                assert!(verified.mac_valid(), "{spec:?}");
            }
        }
    }
    let results = outside(&decryptions).await;
    assert_eq!(results.len(), 1);
    for ((spec, plaintext), result) in expected_plaintexts.iter().zip(&results) {
        assert_eq!(unb64(&result["plaintext"]), *plaintext, "{spec:?}");
    }
    server.stop().await;
}
