//! Imported key material through the SDK: GetParametersForImport, ImportKeyMaterial and
//! DeleteImportedKeyMaterial, with the material wrapped outside Strongroom (aws-lc-rs, as a customer's
//! HSM or OpenSSL would), its expiry, re-import, and on-demand rotation into new imported material.

use std::time::Duration;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::key_wrap::{AES_256, AesKek, KeyWrapPadded};
use aws_lc_rs::rsa::{
    OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OaepAlgorithm, OaepPublicEncryptingKey,
    PublicEncryptingKey,
};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use aws_sdk_kms::Client;
use aws_sdk_kms::operation::import_key_material::ImportKeyMaterialOutput;
use aws_sdk_kms::primitives::{Blob, DateTime};
use aws_sdk_kms::types::{
    AlgorithmSpec, ExpirationModelType, ImportState, ImportType, IncludeKeyMaterial,
    KeyMaterialState, KeyMetadata, KeySpec, KeyState, KeyUsageType, MacAlgorithmSpec, OriginType,
    RotationsListEntry, WrappingKeySpec,
};

use crate::harness::{TempDir, TestServer, decrypt, encrypt, error_code, failure};

const DAY: u64 = 86_400;

/// What GetParametersForImport hands out.
struct Parameters {
    token: Vec<u8>,
    public_key: Vec<u8>,
    algorithm: AlgorithmSpec,
}

fn random(len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    aws_lc_rs::rand::fill(&mut out).expect("random bytes");
    out
}

fn oaep_encrypt(public_der: &[u8], padding: &'static OaepAlgorithm, data: &[u8]) -> Vec<u8> {
    let public = PublicEncryptingKey::from_der(public_der).expect("the wrapping key is RSA SPKI");
    let public = OaepPublicEncryptingKey::new(public).expect("an OAEP key");
    let mut out = vec![0u8; public.ciphertext_size()];
    let len = public
        .encrypt(padding, data, &mut out, None)
        .expect("RSA-OAEP encryption")
        .len();
    out.truncate(len);
    out
}

/// Wraps `material` as a customer does for `algorithm`: RSA-OAEP directly, or an AES-256 key under
/// RSA-OAEP followed by the material under AES key wrap with padding (RFC 5649).
fn wrap(public_der: &[u8], algorithm: &AlgorithmSpec, material: &[u8]) -> Vec<u8> {
    let (padding, hybrid): (&'static OaepAlgorithm, bool) = match algorithm {
        AlgorithmSpec::RsaesOaepSha1 => (&OAEP_SHA1_MGF1SHA1, false),
        AlgorithmSpec::RsaesOaepSha256 => (&OAEP_SHA256_MGF1SHA256, false),
        AlgorithmSpec::RsaAesKeyWrapSha1 => (&OAEP_SHA1_MGF1SHA1, true),
        AlgorithmSpec::RsaAesKeyWrapSha256 => (&OAEP_SHA256_MGF1SHA256, true),
        other => panic!("no wrapping for {other:?}"),
    };
    if !hybrid {
        return oaep_encrypt(public_der, padding, material);
    }
    let aes_key = random(32);
    let mut out = oaep_encrypt(public_der, padding, &aes_key);
    let kek = AesKek::new(&AES_256, &aes_key).expect("an AES-256 key encryption key");
    let mut wrapped = vec![0u8; material.len() + 16];
    let len = kek
        .wrap_with_padding(material, &mut wrapped)
        .expect("AES-KWP")
        .len();
    out.extend_from_slice(&wrapped[..len]);
    out
}

async fn create_external(client: &Client, spec: KeySpec, usage: KeyUsageType) -> KeyMetadata {
    client
        .create_key()
        .origin(OriginType::External)
        .key_spec(spec)
        .key_usage(usage)
        .send()
        .await
        .expect("CreateKey with Origin EXTERNAL succeeds")
        .key_metadata()
        .expect("KeyMetadata")
        .clone()
}

async fn create_symmetric(client: &Client) -> String {
    let metadata = create_external(
        client,
        KeySpec::SymmetricDefault,
        KeyUsageType::EncryptDecrypt,
    )
    .await;
    metadata.key_id().to_owned()
}

async fn import_parameters(
    client: &Client,
    key_id: &str,
    algorithm: AlgorithmSpec,
    spec: WrappingKeySpec,
) -> Parameters {
    let output = client
        .get_parameters_for_import()
        .key_id(key_id)
        .wrapping_algorithm(algorithm.clone())
        .wrapping_key_spec(spec)
        .send()
        .await
        .expect("GetParametersForImport succeeds");
    Parameters {
        token: output
            .import_token()
            .expect("ImportToken")
            .as_ref()
            .to_vec(),
        public_key: output.public_key().expect("PublicKey").as_ref().to_vec(),
        algorithm,
    }
}

/// GetParametersForImport with RSAES_OAEP_SHA_256 and an RSA 2048 wrapping key.
async fn oaep_parameters(client: &Client, key_id: &str) -> Parameters {
    import_parameters(
        client,
        key_id,
        AlgorithmSpec::RsaesOaepSha256,
        WrappingKeySpec::Rsa2048,
    )
    .await
}

/// ImportKeyMaterial with material that never expires.
async fn import(
    client: &Client,
    key_id: &str,
    parameters: &Parameters,
    material: &[u8],
) -> Result<ImportKeyMaterialOutput, (String, String)> {
    import_with(client, key_id, parameters, material, |request| {
        request.expiration_model(ExpirationModelType::KeyMaterialDoesNotExpire)
    })
    .await
}

async fn import_with(
    client: &Client,
    key_id: &str,
    parameters: &Parameters,
    material: &[u8],
    adjust: impl FnOnce(
        aws_sdk_kms::operation::import_key_material::builders::ImportKeyMaterialFluentBuilder,
    )
        -> aws_sdk_kms::operation::import_key_material::builders::ImportKeyMaterialFluentBuilder,
) -> Result<ImportKeyMaterialOutput, (String, String)> {
    let wrapped = wrap(&parameters.public_key, &parameters.algorithm, material);
    let request = client
        .import_key_material()
        .key_id(key_id)
        .import_token(Blob::new(parameters.token.clone()))
        .encrypted_key_material(Blob::new(wrapped));
    match adjust(request).send().await {
        Ok(output) => Ok(output),
        Err(error) => {
            let failure = failure::<ImportKeyMaterialOutput, _, _>(Err(error));
            Err((failure.code, failure.message))
        }
    }
}

fn code_of<T: std::fmt::Debug>(result: Result<T, (String, String)>) -> String {
    match result {
        Ok(output) => panic!("expected an error, got {output:?}"),
        Err((code, _)) => code,
    }
}

async fn describe(client: &Client, key_id: &str) -> KeyMetadata {
    client
        .describe_key()
        .key_id(key_id)
        .send()
        .await
        .expect("DescribeKey succeeds")
        .key_metadata()
        .expect("KeyMetadata")
        .clone()
}

async fn rotations(client: &Client, key_id: &str, all: bool) -> Vec<RotationsListEntry> {
    let include = if all {
        IncludeKeyMaterial::AllKeyMaterial
    } else {
        IncludeKeyMaterial::RotationsOnly
    };
    client
        .list_key_rotations()
        .key_id(key_id)
        .include_key_material(include)
        .send()
        .await
        .expect("ListKeyRotations succeeds")
        .rotations()
        .to_vec()
}

#[tokio::test]
async fn symmetric_material_imports_with_every_wrapping_algorithm_and_key_spec() {
    let server = TestServer::start().await;
    let client = server.client();
    let cases = [
        (AlgorithmSpec::RsaesOaepSha1, WrappingKeySpec::Rsa2048),
        (AlgorithmSpec::RsaesOaepSha256, WrappingKeySpec::Rsa3072),
        (AlgorithmSpec::RsaAesKeyWrapSha1, WrappingKeySpec::Rsa4096),
        (AlgorithmSpec::RsaAesKeyWrapSha256, WrappingKeySpec::Rsa2048),
    ];
    for (algorithm, spec) in cases {
        let label = format!("{algorithm:?} with {spec:?}");
        let created = create_external(
            &client,
            KeySpec::SymmetricDefault,
            KeyUsageType::EncryptDecrypt,
        )
        .await;
        let key_id = created.key_id().to_owned();
        assert_eq!(created.origin(), Some(&OriginType::External), "{label}");
        assert_eq!(
            created.key_state(),
            Some(&KeyState::PendingImport),
            "{label}"
        );
        assert!(
            !created.enabled(),
            "{label}: a key without material is not enabled"
        );
        assert_eq!(created.current_key_material_id(), None, "{label}");
        assert_eq!(created.expiration_model(), None, "{label}");

        let output = client
            .get_parameters_for_import()
            .key_id(&key_id)
            .wrapping_algorithm(algorithm.clone())
            .wrapping_key_spec(spec.clone())
            .send()
            .await
            .expect("GetParametersForImport succeeds");
        assert_eq!(
            output.key_id(),
            created.arn(),
            "{label}: the response names the key ARN"
        );
        let valid_to = output.parameters_valid_to().expect("ParametersValidTo");
        let lifetime = valid_to.as_secs_f64() - server.now_secs();
        assert!(
            (DAY as f64 - 5.0..=DAY as f64).contains(&lifetime),
            "{label}: the parameters are valid for 24 hours, not {lifetime} s"
        );
        let public = output.public_key().expect("PublicKey").as_ref().to_vec();
        let bits = PublicEncryptingKey::from_der(&public)
            .expect("the public key is DER SubjectPublicKeyInfo")
            .key_size_bits();
        let expected_bits = match spec {
            WrappingKeySpec::Rsa2048 => 2048,
            WrappingKeySpec::Rsa3072 => 3072,
            _ => 4096,
        };
        assert_eq!(
            bits, expected_bits,
            "{label}: the wrapping key has the asked size"
        );
        let parameters = Parameters {
            token: output
                .import_token()
                .expect("ImportToken")
                .as_ref()
                .to_vec(),
            public_key: public,
            algorithm: algorithm.clone(),
        };

        let material = random(32);
        let imported = import(&client, &key_id, &parameters, &material)
            .await
            .unwrap_or_else(|e| panic!("{label}: ImportKeyMaterial fails with {e:?}"));
        assert_eq!(imported.key_id(), created.arn(), "{label}");
        let material_id = imported
            .key_material_id()
            .expect("KeyMaterialId")
            .to_owned();
        assert_eq!(material_id.len(), 64, "{label}: a 64-digit hex id");

        let described = describe(&client, &key_id).await;
        assert_eq!(described.key_state(), Some(&KeyState::Enabled), "{label}");
        assert!(described.enabled(), "{label}");
        assert_eq!(
            described.current_key_material_id(),
            Some(material_id.as_str()),
            "{label}"
        );
        assert_eq!(
            described.expiration_model(),
            Some(&ExpirationModelType::KeyMaterialDoesNotExpire),
            "{label}"
        );
        assert_eq!(described.valid_to(), None, "{label}");

        let ciphertext = encrypt(&client, &key_id, b"imported secret", &[("case", &label)]).await;
        assert_eq!(
            decrypt(&client, &ciphertext, &[("case", &label)]).await,
            b"imported secret",
            "{label}: the imported key decrypts what it encrypted"
        );
    }
}

#[tokio::test]
async fn ciphertexts_stay_bound_to_their_key_even_with_the_same_material() {
    let server = TestServer::start().await;
    let client = server.client();
    let material = random(32);
    let first = create_symmetric(&client).await;
    let second = create_symmetric(&client).await;
    let mut ids = Vec::new();
    for key_id in [&first, &second] {
        let parameters = oaep_parameters(&client, key_id).await;
        let output = import(&client, key_id, &parameters, &material)
            .await
            .expect("the same material imports into both keys");
        ids.push(output.key_material_id().expect("KeyMaterialId").to_owned());
    }
    assert_ne!(
        ids[0], ids[1],
        "the material id depends on the key as well as the material"
    );

    let ciphertext = encrypt(&client, &first, b"for the first key only", &[]).await;
    let code = error_code(
        client
            .decrypt()
            .key_id(&second)
            .ciphertext_blob(Blob::new(ciphertext.clone()))
            .send()
            .await,
    );
    assert_eq!(
        code, "IncorrectKeyException",
        "the second key, though it holds the same material, does not decrypt the first key's ciphertext"
    );
    let reencrypted = error_code(
        client
            .re_encrypt()
            .ciphertext_blob(Blob::new(ciphertext.clone()))
            .source_key_id(&second)
            .destination_key_id(&second)
            .send()
            .await,
    );
    assert_eq!(reencrypted, "IncorrectKeyException");
    assert_eq!(
        decrypt(&client, &ciphertext, &[]).await,
        b"for the first key only"
    );
}

#[tokio::test]
async fn deleted_material_comes_back_only_as_the_same_material() {
    let server = TestServer::start().await;
    let client = server.client();
    let key_id = create_symmetric(&client).await;
    let material = random(32);
    let parameters = oaep_parameters(&client, &key_id).await;
    let imported = import(&client, &key_id, &parameters, &material)
        .await
        .expect("the first import succeeds");
    let material_id = imported
        .key_material_id()
        .expect("KeyMaterialId")
        .to_owned();
    let ciphertext = encrypt(&client, &key_id, b"kept across deletion", &[("k", "v")]).await;

    let deleted = client
        .delete_imported_key_material()
        .key_id(&key_id)
        .send()
        .await
        .expect("DeleteImportedKeyMaterial succeeds");
    assert_eq!(deleted.key_material_id(), Some(material_id.as_str()));
    let described = describe(&client, &key_id).await;
    assert_eq!(described.key_state(), Some(&KeyState::PendingImport));
    assert_eq!(described.expiration_model(), None);
    let failure = failure(
        client
            .decrypt()
            .ciphertext_blob(Blob::new(ciphertext.clone()))
            .encryption_context("k", "v")
            .send()
            .await,
    );
    assert_eq!(failure.code, "KMSInvalidStateException");
    assert!(
        failure.message.ends_with("is pending import."),
        "{}",
        failure.message
    );
    let listed = rotations(&client, &key_id, true).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].import_state(), Some(&ImportState::PendingImport));
    assert_eq!(
        listed[0].key_material_state(),
        Some(&KeyMaterialState::Current)
    );

    // Deleting again changes nothing.
    client
        .delete_imported_key_material()
        .key_id(&key_id)
        .send()
        .await
        .expect("deleting deleted material succeeds");

    // The same token serves again (it is valid for 24 hours), but only for the same material.
    let other = import(&client, &key_id, &parameters, &random(32)).await;
    let (code, message) = other.expect_err("different material is refused");
    assert_eq!(code, "IncorrectKeyMaterialException", "{message}");
    let too_short = import(&client, &key_id, &parameters, &random(16)).await;
    assert_eq!(code_of(too_short), "IncorrectKeyMaterialException");
    assert_eq!(
        describe(&client, &key_id).await.key_state(),
        Some(&KeyState::PendingImport)
    );

    let again = import(&client, &key_id, &parameters, &material)
        .await
        .expect("the same material imports again");
    assert_eq!(again.key_material_id(), Some(material_id.as_str()));
    assert_eq!(
        describe(&client, &key_id).await.key_state(),
        Some(&KeyState::Enabled)
    );
    assert_eq!(
        decrypt(&client, &ciphertext, &[("k", "v")]).await,
        b"kept across deletion",
        "re-imported material decrypts ciphertexts from before the deletion"
    );
}

#[tokio::test]
async fn hmac_and_key_pair_material_imports() {
    let server = TestServer::start().await;
    let client = server.client();

    // An HMAC key of a length between the hash's output and its block size.
    let hmac = create_external(&client, KeySpec::Hmac256, KeyUsageType::GenerateVerifyMac).await;
    let hmac_id = hmac.key_id().to_owned();
    let secret = random(48);
    let parameters = oaep_parameters(&client, &hmac_id).await;
    let imported = import(&client, &hmac_id, &parameters, &secret)
        .await
        .expect("HMAC material imports");
    assert!(imported.key_material_id().is_some());
    assert_eq!(
        describe(&client, &hmac_id).await.key_state(),
        Some(&KeyState::Enabled)
    );
    let mac = client
        .generate_mac()
        .key_id(&hmac_id)
        .mac_algorithm(MacAlgorithmSpec::HmacSha256)
        .message(Blob::new(b"message".to_vec()))
        .send()
        .await
        .expect("GenerateMac with the imported key succeeds");
    let expected = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &secret),
        b"message",
    );
    assert_eq!(
        mac.mac().expect("Mac").as_ref(),
        expected.as_ref(),
        "the MAC is the one the imported secret makes"
    );
    let short = import(&client, &hmac_id, &parameters, &random(31)).await;
    assert_eq!(code_of(short), "IncorrectKeyMaterialException");

    // An ECC private key, wrapped directly with RSA-OAEP.
    let ecc = create_external(&client, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    let ecc_id = ecc.key_id().to_owned();
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).expect("a P-256 key");
    let pkcs8 = pair.to_pkcs8v1().expect("PKCS#8");
    let public: PublicKeyX509Der<'static> = pair.public_key().as_der().expect("SPKI");
    let parameters = oaep_parameters(&client, &ecc_id).await;
    import(&client, &ecc_id, &parameters, pkcs8.as_ref())
        .await
        .expect("an ECC private key imports");
    assert_eq!(
        describe(&client, &ecc_id).await.key_state(),
        Some(&KeyState::Enabled)
    );
    let published = client
        .get_public_key()
        .key_id(&ecc_id)
        .send()
        .await
        .expect("GetPublicKey succeeds");
    assert_eq!(
        published.public_key().expect("PublicKey").as_ref(),
        public.as_ref(),
        "the key publishes the imported key's public half"
    );
    let other_pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).expect("a P-256 key");
    let other = import(
        &client,
        &ecc_id,
        &parameters,
        other_pair.to_pkcs8v1().expect("PKCS#8").as_ref(),
    )
    .await;
    assert_eq!(
        code_of(other),
        "IncorrectKeyMaterialException",
        "a key pair takes back only its own private key"
    );
    let with_type = import_with(&client, &ecc_id, &parameters, pkcs8.as_ref(), |request| {
        request
            .expiration_model(ExpirationModelType::KeyMaterialDoesNotExpire)
            .import_type(ImportType::ExistingKeyMaterial)
    })
    .await;
    assert_eq!(
        code_of(with_type),
        "ValidationException",
        "ImportType is for symmetric keys only"
    );

    // An RSA private key needs the hybrid RSA_AES_KEY_WRAP algorithms.
    let rsa = create_external(&client, KeySpec::Rsa2048, KeyUsageType::SignVerify).await;
    let rsa_id = rsa.key_id().to_owned();
    let refused = error_code(
        client
            .get_parameters_for_import()
            .key_id(&rsa_id)
            .wrapping_algorithm(AlgorithmSpec::RsaesOaepSha256)
            .wrapping_key_spec(WrappingKeySpec::Rsa4096)
            .send()
            .await,
    );
    assert_eq!(refused, "UnsupportedOperationException");
    let pair =
        aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("an RSA key");
    let pkcs8: Pkcs8V1Der<'static> = pair.as_der().expect("PKCS#8");
    let public: PublicKeyX509Der<'static> = pair.public_key().as_der().expect("SPKI");
    let parameters = import_parameters(
        &client,
        &rsa_id,
        AlgorithmSpec::RsaAesKeyWrapSha256,
        WrappingKeySpec::Rsa3072,
    )
    .await;
    let imported = import(&client, &rsa_id, &parameters, pkcs8.as_ref())
        .await
        .expect("an RSA private key imports with RSA_AES_KEY_WRAP_SHA_256");
    let rsa_material = imported
        .key_material_id()
        .expect("KeyMaterialId")
        .to_owned();
    let published = client
        .get_public_key()
        .key_id(&rsa_id)
        .send()
        .await
        .expect("GetPublicKey succeeds");
    assert_eq!(
        published.public_key().expect("PublicKey").as_ref(),
        public.as_ref()
    );
    // The key survives deletion and re-import of its private key, under the same material id.
    client
        .delete_imported_key_material()
        .key_id(&rsa_id)
        .send()
        .await
        .expect("DeleteImportedKeyMaterial succeeds");
    assert_eq!(
        error_code(client.get_public_key().key_id(&rsa_id).send().await),
        "KMSInvalidStateException"
    );
    let again = import(&client, &rsa_id, &parameters, pkcs8.as_ref())
        .await
        .expect("the same RSA key imports again");
    assert_eq!(again.key_material_id(), Some(rsa_material.as_str()));
}

#[tokio::test]
async fn import_tokens_are_bound_to_their_key_their_public_key_and_24_hours() {
    let server = TestServer::start().await;
    let client = server.client();
    let key_id = create_symmetric(&client).await;
    let other_key = create_symmetric(&client).await;
    let material = random(32);
    let parameters = oaep_parameters(&client, &key_id).await;

    let foreign = oaep_parameters(&client, &other_key).await;
    let mixed = Parameters {
        token: foreign.token.clone(),
        public_key: foreign.public_key.clone(),
        algorithm: AlgorithmSpec::RsaesOaepSha256,
    };
    let (code, message) = import(&client, &key_id, &mixed, &material)
        .await
        .expect_err("another key's token is refused");
    assert_eq!(code, "InvalidImportTokenException");
    assert!(message.contains(&other_key), "{message}");

    let mut garbage = parameters.token.clone();
    let middle = garbage.len() / 2;
    garbage[middle] ^= 0x40;
    let tampered = Parameters {
        token: garbage,
        public_key: parameters.public_key.clone(),
        algorithm: AlgorithmSpec::RsaesOaepSha256,
    };
    assert_eq!(
        code_of(import(&client, &key_id, &tampered, &material).await),
        "InvalidImportTokenException"
    );

    // The public key of a second response does not go with the first response's token.
    let second = oaep_parameters(&client, &key_id).await;
    let crossed = Parameters {
        token: parameters.token.clone(),
        public_key: second.public_key.clone(),
        algorithm: AlgorithmSpec::RsaesOaepSha256,
    };
    assert_eq!(
        code_of(import(&client, &key_id, &crossed, &material).await),
        "InvalidCiphertextException"
    );
    // Material wrapped with another algorithm than the token's does not unwrap.
    let wrong_algorithm = Parameters {
        token: parameters.token.clone(),
        public_key: parameters.public_key.clone(),
        algorithm: AlgorithmSpec::RsaesOaepSha1,
    };
    assert_eq!(
        code_of(import(&client, &key_id, &wrong_algorithm, &material).await),
        "InvalidCiphertextException"
    );
    assert_eq!(
        describe(&client, &key_id).await.key_state(),
        Some(&KeyState::PendingImport),
        "failed imports change nothing"
    );

    // A day later the token has expired.
    server.clock().advance(Duration::from_secs(DAY + 1));
    let (code, message) = import(&client, &key_id, &parameters, &material)
        .await
        .expect_err("an expired token is refused");
    assert_eq!(code, "ExpiredImportTokenException", "{message}");
    let fresh = oaep_parameters(&client, &key_id).await;
    import(&client, &key_id, &fresh, &material)
        .await
        .expect("a fresh token works");
}

#[tokio::test]
async fn import_tokens_need_no_storage_and_survive_a_restart() {
    let data_dir = TempDir::new("import-restart");
    let server = TestServer::start_in(data_dir.path(), |_| {}).await;
    let client = server.client();
    let key_id = create_symmetric(&client).await;
    let parameters = import_parameters(
        &client,
        &key_id,
        AlgorithmSpec::RsaAesKeyWrapSha256,
        WrappingKeySpec::Rsa2048,
    )
    .await;
    server.stop().await;

    let server = TestServer::start_in(data_dir.path(), |_| {}).await;
    let client = server.client();
    let material = random(32);
    import(&client, &key_id, &parameters, &material)
        .await
        .expect("a token issued before the restart works after it");
    let ciphertext = encrypt(&client, &key_id, b"after restart", &[]).await;
    server.stop().await;

    let server = TestServer::start_in(data_dir.path(), |_| {}).await;
    assert_eq!(
        decrypt(&server.client(), &ciphertext, &[]).await,
        b"after restart",
        "imported material is durable"
    );
    server.stop().await;
}

#[tokio::test]
async fn refused_wrapping_choices_and_keys_without_imported_material() {
    let server = TestServer::start().await;
    let client = server.client();
    let key_id = create_symmetric(&client).await;
    let cases = [
        (AlgorithmSpec::RsaesPkcs1V15, WrappingKeySpec::Rsa2048),
        (AlgorithmSpec::Sm2Pke, WrappingKeySpec::Rsa2048),
        (AlgorithmSpec::RsaesOaepSha256, WrappingKeySpec::Sm2),
    ];
    for (algorithm, spec) in cases {
        let failure = failure(
            client
                .get_parameters_for_import()
                .key_id(&key_id)
                .wrapping_algorithm(algorithm.clone())
                .wrapping_key_spec(spec.clone())
                .send()
                .await,
        );
        assert_eq!(
            failure.code, "UnsupportedOperationException",
            "{algorithm:?} with {spec:?}"
        );
        if algorithm == AlgorithmSpec::RsaesPkcs1V15 {
            assert!(
                failure.message.contains("October 10, 2023"),
                "{}",
                failure.message
            );
        }
    }

    // A key whose material KMS generated has nothing to import or delete.
    let (generated, generated_arn) = crate::harness::create_key(&client, "generated").await;
    let failure = failure(
        client
            .get_parameters_for_import()
            .key_id(&generated)
            .wrapping_algorithm(AlgorithmSpec::RsaesOaepSha256)
            .wrapping_key_spec(WrappingKeySpec::Rsa2048)
            .send()
            .await,
    );
    assert_eq!(failure.code, "UnsupportedOperationException");
    assert_eq!(
        failure.message,
        format!("{generated_arn} origin is AWS_KMS which is not valid for this operation.")
    );
    let parameters = oaep_parameters(&client, &key_id).await;
    let wrapped = wrap(
        &parameters.public_key,
        &AlgorithmSpec::RsaesOaepSha256,
        &random(32),
    );
    assert_eq!(
        error_code(
            client
                .import_key_material()
                .key_id(&generated)
                .import_token(Blob::new(parameters.token.clone()))
                .encrypted_key_material(Blob::new(wrapped))
                .expiration_model(ExpirationModelType::KeyMaterialDoesNotExpire)
                .send()
                .await
        ),
        "UnsupportedOperationException"
    );
    assert_eq!(
        error_code(
            client
                .delete_imported_key_material()
                .key_id(&generated)
                .send()
                .await
        ),
        "UnsupportedOperationException"
    );

    // ML-DSA keys cannot take imported material.
    assert_eq!(
        error_code(
            client
                .create_key()
                .origin(OriginType::External)
                .key_spec(KeySpec::MlDsa65)
                .key_usage(KeyUsageType::SignVerify)
                .send()
                .await
        ),
        "UnsupportedOperationException"
    );

    // ExpirationModel and ValidTo are checked.
    let material = random(32);
    let now = server.now_secs();
    let missing = import_with(&client, &key_id, &parameters, &material, |request| request).await;
    assert_eq!(code_of(missing), "ValidationException");
    let too_far = import_with(&client, &key_id, &parameters, &material, |request| {
        request.valid_to(DateTime::from_secs_f64(now + 366.0 * DAY as f64))
    })
    .await;
    assert_eq!(code_of(too_far), "ValidationException");
    let past = import_with(&client, &key_id, &parameters, &material, |request| {
        request.valid_to(DateTime::from_secs_f64(now - 60.0))
    })
    .await;
    assert_eq!(code_of(past), "ValidationException");
    let both = import_with(&client, &key_id, &parameters, &material, |request| {
        request
            .expiration_model(ExpirationModelType::KeyMaterialDoesNotExpire)
            .valid_to(DateTime::from_secs_f64(now + DAY as f64))
    })
    .await;
    assert_eq!(code_of(both), "ValidationException");
}

#[tokio::test]
async fn expired_material_returns_the_key_to_pending_import() {
    let server = TestServer::start().await;
    let client = server.client();
    let key_id = create_symmetric(&client).await;
    let material = random(32);
    let parameters = oaep_parameters(&client, &key_id).await;
    let valid_to = (server.now_secs() + 3600.0).floor();
    import_with(&client, &key_id, &parameters, &material, |request| {
        request
            .expiration_model(ExpirationModelType::KeyMaterialExpires)
            .valid_to(DateTime::from_secs_f64(valid_to))
    })
    .await
    .expect("an expiring import succeeds");
    let described = describe(&client, &key_id).await;
    assert_eq!(
        described.expiration_model(),
        Some(&ExpirationModelType::KeyMaterialExpires)
    );
    assert_eq!(
        described.valid_to().map(DateTime::as_secs_f64),
        Some(valid_to)
    );
    let listed = rotations(&client, &key_id, true).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0].expiration_model(),
        Some(&ExpirationModelType::KeyMaterialExpires)
    );
    assert_eq!(listed[0].import_state(), Some(&ImportState::Imported));
    let ciphertext = encrypt(&client, &key_id, b"short-lived", &[]).await;

    server.clock().advance(Duration::from_secs(3601));
    let failure = failure(
        client
            .decrypt()
            .ciphertext_blob(Blob::new(ciphertext.clone()))
            .send()
            .await,
    );
    assert_eq!(failure.code, "KMSInvalidStateException");
    let described = describe(&client, &key_id).await;
    assert_eq!(described.key_state(), Some(&KeyState::PendingImport));
    assert_eq!(described.valid_to(), None);
    assert_eq!(
        error_code(
            client
                .encrypt()
                .key_id(&key_id)
                .plaintext(Blob::new(b"x".to_vec()))
                .send()
                .await
        ),
        "KMSInvalidStateException"
    );
    let listed = rotations(&client, &key_id, true).await;
    assert_eq!(listed[0].import_state(), Some(&ImportState::PendingImport));
    assert_eq!(listed[0].expiration_model(), None);
    // The expiry is the service's own act, recorded as CloudTrail does.
    let key_arn = describe(&client, &key_id).await.arn.expect("an ARN");
    let names = crate::audit::service_event_names(&server, &key_arn, 1).await;
    assert_eq!(names, ["DeleteExpiredKeyMaterial"]);

    // Re-importing the same material, now without expiry, brings the key back.
    import(&client, &key_id, &parameters, &material)
        .await
        .expect("the same material imports again");
    assert_eq!(decrypt(&client, &ciphertext, &[]).await, b"short-lived");
    assert_eq!(
        describe(&client, &key_id).await.expiration_model(),
        Some(&ExpirationModelType::KeyMaterialDoesNotExpire)
    );
}

#[tokio::test]
async fn key_states_of_imported_keys_follow_the_key_state_table() {
    let server = TestServer::start().await;
    let client = server.client();
    let key_id = create_symmetric(&client).await;

    // PendingImport: no cryptography, no enabling; deleting nothing succeeds.
    let failure = failure(
        client
            .encrypt()
            .key_id(&key_id)
            .plaintext(Blob::new(b"x".to_vec()))
            .send()
            .await,
    );
    assert_eq!(failure.code, "KMSInvalidStateException");
    assert!(failure.message.ends_with("is pending import."));
    assert_eq!(
        error_code(client.enable_key().key_id(&key_id).send().await),
        "KMSInvalidStateException"
    );
    assert_eq!(
        error_code(client.disable_key().key_id(&key_id).send().await),
        "KMSInvalidStateException"
    );
    let nothing = client
        .delete_imported_key_material()
        .key_id(&key_id)
        .send()
        .await
        .expect("deleting from a key without material succeeds");
    assert_eq!(nothing.key_material_id(), None);
    assert_eq!(
        error_code(client.enable_key_rotation().key_id(&key_id).send().await),
        "UnsupportedOperationException"
    );

    // A disabled key stays disabled through a re-import.
    let material = random(32);
    let parameters = oaep_parameters(&client, &key_id).await;
    import(&client, &key_id, &parameters, &material)
        .await
        .expect("import succeeds");
    client
        .disable_key()
        .key_id(&key_id)
        .send()
        .await
        .expect("DisableKey succeeds");
    import(&client, &key_id, &parameters, &material)
        .await
        .expect("a disabled key takes its material again");
    assert_eq!(
        describe(&client, &key_id).await.key_state(),
        Some(&KeyState::Disabled)
    );

    // PendingDeletion: no new parameters or imports; deletion of material keeps the state.
    client
        .schedule_key_deletion()
        .key_id(&key_id)
        .pending_window_in_days(7)
        .send()
        .await
        .expect("ScheduleKeyDeletion succeeds");
    assert_eq!(
        error_code(
            client
                .get_parameters_for_import()
                .key_id(&key_id)
                .wrapping_algorithm(AlgorithmSpec::RsaesOaepSha256)
                .wrapping_key_spec(WrappingKeySpec::Rsa2048)
                .send()
                .await
        ),
        "KMSInvalidStateException"
    );
    assert_eq!(
        code_of(import(&client, &key_id, &parameters, &material).await),
        "KMSInvalidStateException"
    );
    client
        .delete_imported_key_material()
        .key_id(&key_id)
        .send()
        .await
        .expect("material of a key pending deletion can be deleted");
    assert_eq!(
        describe(&client, &key_id).await.key_state(),
        Some(&KeyState::PendingDeletion)
    );
    // Cancelling deletion of a key without its material leaves it waiting for the material.
    client
        .cancel_key_deletion()
        .key_id(&key_id)
        .send()
        .await
        .expect("CancelKeyDeletion succeeds");
    assert_eq!(
        describe(&client, &key_id).await.key_state(),
        Some(&KeyState::PendingImport)
    );
    import(&client, &key_id, &parameters, &material)
        .await
        .expect("import after cancelled deletion succeeds");
    assert_eq!(
        describe(&client, &key_id).await.key_state(),
        Some(&KeyState::Enabled)
    );
}

#[tokio::test]
async fn new_key_material_becomes_current_on_demand() {
    let server = TestServer::start().await;
    let client = server.client();
    let key_id = create_symmetric(&client).await;
    let first = random(32);
    let second = random(32);
    let parameters = oaep_parameters(&client, &key_id).await;
    let first_id = import(&client, &key_id, &parameters, &first)
        .await
        .expect("the first import succeeds")
        .key_material_id()
        .expect("KeyMaterialId")
        .to_owned();
    let before = encrypt(&client, &key_id, b"under the first material", &[]).await;

    let no_pending = failure(client.rotate_key_on_demand().key_id(&key_id).send().await);
    assert_eq!(no_pending.code, "UnsupportedOperationException");
    assert!(
        no_pending.message.contains("PENDING_ROTATION"),
        "{}",
        no_pending.message
    );
    let with_id = import_with(&client, &key_id, &parameters, &second, |request| {
        request
            .expiration_model(ExpirationModelType::KeyMaterialDoesNotExpire)
            .import_type(ImportType::NewKeyMaterial)
            .key_material_id(first_id.clone())
    })
    .await;
    assert_eq!(code_of(with_id), "ValidationException");
    let already = import_with(&client, &key_id, &parameters, &first, |request| {
        request
            .expiration_model(ExpirationModelType::KeyMaterialDoesNotExpire)
            .import_type(ImportType::NewKeyMaterial)
    })
    .await;
    assert_eq!(code_of(already), "IncorrectKeyMaterialException");

    let second_id = import_with(&client, &key_id, &parameters, &second, |request| {
        request
            .expiration_model(ExpirationModelType::KeyMaterialDoesNotExpire)
            .import_type(ImportType::NewKeyMaterial)
            .key_material_description("second material")
    })
    .await
    .expect("new key material imports")
    .key_material_id()
    .expect("KeyMaterialId")
    .to_owned();
    assert_ne!(first_id, second_id);
    let described = describe(&client, &key_id).await;
    assert_eq!(
        described.current_key_material_id(),
        Some(first_id.as_str()),
        "new material waits for the rotation"
    );
    assert_eq!(described.key_state(), Some(&KeyState::Enabled));
    assert!(rotations(&client, &key_id, false).await.is_empty());
    let listed = rotations(&client, &key_id, true).await;
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].key_material_id(), Some(first_id.as_str()));
    assert_eq!(
        listed[0].key_material_state(),
        Some(&KeyMaterialState::Current)
    );
    assert_eq!(listed[1].key_material_id(), Some(second_id.as_str()));
    assert_eq!(
        listed[1].key_material_state(),
        Some(&KeyMaterialState::PendingRotation)
    );
    assert_eq!(listed[1].rotation_date(), None);
    assert_eq!(listed[1].rotation_type(), None);
    assert_eq!(
        listed[1].key_material_description(),
        Some("second material")
    );
    let third = import_with(&client, &key_id, &parameters, &random(32), |request| {
        request
            .expiration_model(ExpirationModelType::KeyMaterialDoesNotExpire)
            .import_type(ImportType::NewKeyMaterial)
    })
    .await;
    assert_eq!(
        code_of(third),
        "ValidationException",
        "one material at a time waits for rotation"
    );

    client
        .rotate_key_on_demand()
        .key_id(&key_id)
        .send()
        .await
        .expect("RotateKeyOnDemand succeeds");
    assert_eq!(
        describe(&client, &key_id).await.current_key_material_id(),
        Some(second_id.as_str())
    );
    let rotated = rotations(&client, &key_id, false).await;
    assert_eq!(rotated.len(), 1);
    assert_eq!(rotated[0].key_material_id(), Some(second_id.as_str()));
    assert_eq!(
        rotated[0].key_material_state(),
        Some(&KeyMaterialState::Current)
    );
    assert_eq!(
        rotated[0].rotation_type(),
        Some(&aws_sdk_kms::types::RotationType::OnDemand)
    );
    assert!(rotated[0].rotation_date().is_some());
    let after = encrypt(&client, &key_id, b"under the second material", &[]).await;
    assert_eq!(
        decrypt(&client, &before, &[]).await,
        b"under the first material"
    );
    assert_eq!(
        decrypt(&client, &after, &[]).await,
        b"under the second material"
    );

    // Deleting the older material makes the whole key wait for it; it comes back by its id.
    client
        .delete_imported_key_material()
        .key_id(&key_id)
        .key_material_id(&first_id)
        .send()
        .await
        .expect("deleting a non-current material succeeds");
    assert_eq!(
        describe(&client, &key_id).await.key_state(),
        Some(&KeyState::PendingImport)
    );
    let mismatch = import_with(&client, &key_id, &parameters, &first, |request| {
        request
            .expiration_model(ExpirationModelType::KeyMaterialDoesNotExpire)
            .import_type(ImportType::ExistingKeyMaterial)
            .key_material_id(second_id.clone())
    })
    .await;
    assert_eq!(code_of(mismatch), "IncorrectKeyMaterialException");
    import_with(&client, &key_id, &parameters, &first, |request| {
        request
            .expiration_model(ExpirationModelType::KeyMaterialDoesNotExpire)
            .import_type(ImportType::ExistingKeyMaterial)
            .key_material_id(first_id.clone())
    })
    .await
    .expect("the first material imports again by its id");
    assert_eq!(
        describe(&client, &key_id).await.key_state(),
        Some(&KeyState::Enabled)
    );
    assert_eq!(
        decrypt(&client, &before, &[]).await,
        b"under the first material"
    );
    let listed = rotations(&client, &key_id, true).await;
    assert_eq!(
        listed[0].key_material_description(),
        None,
        "a material imported without a description has none"
    );
    assert_eq!(
        listed[1].key_material_description(),
        Some("second material"),
        "the description stays through rotation"
    );
}

#[tokio::test]
async fn key_policies_can_constrain_wrapping_and_expiry() {
    let server = TestServer::start().await;
    let client = server.client();
    let policy = format!(
        r#"{{
  "Version": "2012-10-17",
  "Statement": [
    {{ "Sid": "Account", "Effect": "Allow", "Principal": {{ "AWS": "arn:aws:iam::{ACCOUNT}:root" }},
      "Action": "kms:*", "Resource": "*" }},
    {{ "Sid": "OAEP-SHA-256 only", "Effect": "Deny", "Principal": "*", "Action": "kms:GetParametersForImport",
      "Resource": "*", "Condition": {{ "StringNotEquals": {{ "kms:WrappingAlgorithm": "RSAES_OAEP_SHA_256" }} }} }},
    {{ "Sid": "Expiring material only", "Effect": "Deny", "Principal": "*", "Action": "kms:ImportKeyMaterial",
      "Resource": "*", "Condition": {{ "StringNotEquals": {{ "kms:ExpirationModel": "KEY_MATERIAL_EXPIRES" }} }} }}
  ]
}}"#,
        ACCOUNT = crate::harness::ACCOUNT
    );
    let key_id = client
        .create_key()
        .origin(OriginType::External)
        .policy(policy)
        .send()
        .await
        .expect("CreateKey succeeds")
        .key_metadata()
        .expect("KeyMetadata")
        .key_id()
        .to_owned();
    let denied = error_code(
        client
            .get_parameters_for_import()
            .key_id(&key_id)
            .wrapping_algorithm(AlgorithmSpec::RsaesOaepSha1)
            .wrapping_key_spec(WrappingKeySpec::Rsa2048)
            .send()
            .await,
    );
    assert_eq!(denied, "AccessDeniedException", "kms:WrappingAlgorithm");
    let parameters = oaep_parameters(&client, &key_id).await;
    let material = random(32);
    assert_eq!(
        code_of(import(&client, &key_id, &parameters, &material).await),
        "AccessDeniedException",
        "kms:ExpirationModel"
    );
    let valid_to = server.now_secs() + DAY as f64;
    import_with(&client, &key_id, &parameters, &material, |request| {
        request
            .expiration_model(ExpirationModelType::KeyMaterialExpires)
            .valid_to(DateTime::from_secs_f64(valid_to))
    })
    .await
    .expect("expiring material is allowed");
}
