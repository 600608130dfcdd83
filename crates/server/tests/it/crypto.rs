//! Cryptographic operations through the SDK: Encrypt, Decrypt, ReEncrypt, GenerateDataKey,
//! GenerateDataKeyWithoutPlaintext and GenerateRandom, with encryption contexts, tampering, size limits
//! and dry runs.

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{DataKeySpec, EncryptionAlgorithmSpec};

use crate::harness::{TestServer, create_key, decrypt, encrypt, error_code, failure};

const CONTEXT: &[(&str, &str)] = &[("purpose", "test"), ("tenant", "blue")];

/// A named attempt to decrypt a blob with an encryption context.
type Attempt<'a> = (&'static str, &'a [u8], Vec<(&'static str, &'static str)>);

#[tokio::test]
async fn encrypt_then_decrypt_returns_the_plaintext_and_names_the_key() {
    let server = TestServer::start().await;
    let client = server.client();
    let (key_id, arn) = create_key(&client, "crypto").await;

    let encrypted = client
        .encrypt()
        .key_id(&key_id)
        .plaintext(Blob::new(b"attack at dawn".as_slice()))
        .encryption_context("purpose", "test")
        .encryption_context("tenant", "blue")
        .send()
        .await
        .expect("Encrypt succeeds");
    let ciphertext = encrypted.ciphertext_blob().expect("a ciphertext").clone();
    let decrypted = client
        .decrypt()
        .ciphertext_blob(ciphertext.clone())
        .encryption_context("tenant", "blue")
        .encryption_context("purpose", "test")
        .send()
        .await
        .expect("Decrypt succeeds");

    assert_eq!(
        encrypted.key_id(),
        Some(arn.as_str()),
        "Encrypt names the key by ARN"
    );
    assert_eq!(
        encrypted.encryption_algorithm(),
        Some(&EncryptionAlgorithmSpec::SymmetricDefault)
    );
    assert!(
        !ciphertext
            .as_ref()
            .windows(14)
            .any(|w| w == b"attack at dawn"),
        "the plaintext is not visible"
    );
    assert_eq!(
        decrypted.plaintext().map(|p| p.as_ref()),
        Some(b"attack at dawn".as_slice())
    );
    assert_eq!(
        decrypted.key_id(),
        Some(arn.as_str()),
        "Decrypt names the key by ARN"
    );
    assert_eq!(
        decrypted.encryption_algorithm(),
        Some(&EncryptionAlgorithmSpec::SymmetricDefault)
    );
}

#[tokio::test]
async fn encrypting_twice_gives_different_ciphertexts() {
    let server = TestServer::start().await;
    let client = server.client();
    let (key_id, _) = create_key(&client, "crypto").await;

    let first = encrypt(&client, &key_id, b"same", &[]).await;
    let second = encrypt(&client, &key_id, b"same", &[]).await;

    assert_ne!(first, second, "encryption is randomized");
    assert_eq!(decrypt(&client, &first, &[]).await, b"same");
    assert_eq!(decrypt(&client, &second, &[]).await, b"same");
}

#[tokio::test]
async fn decrypt_requires_exactly_the_encryption_context() {
    let server = TestServer::start().await;
    let client = server.client();
    let (key_id, _) = create_key(&client, "context").await;
    let ciphertext = encrypt(&client, &key_id, b"bound", CONTEXT).await;
    let without_context = encrypt(&client, &key_id, b"unbound", &[]).await;

    let attempts: Vec<Attempt<'_>> = vec![
        ("missing context", &ciphertext, vec![]),
        ("one pair missing", &ciphertext, vec![("purpose", "test")]),
        (
            "different value",
            &ciphertext,
            vec![("purpose", "test"), ("tenant", "red")],
        ),
        (
            "different case",
            &ciphertext,
            vec![("purpose", "Test"), ("tenant", "blue")],
        ),
        (
            "extra pair",
            &ciphertext,
            vec![("purpose", "test"), ("tenant", "blue"), ("extra", "x")],
        ),
        (
            "context where none was given",
            &without_context,
            vec![("purpose", "test")],
        ),
    ];
    for (what, blob, context) in attempts {
        let mut request = client.decrypt().ciphertext_blob(Blob::new(blob));
        for (name, value) in context {
            request = request.encryption_context(name, value);
        }
        let code = error_code(request.send().await);
        assert_eq!(code, "InvalidCiphertextException", "{what}");
    }
    assert_eq!(decrypt(&client, &ciphertext, CONTEXT).await, b"bound");
}

#[tokio::test]
async fn generate_data_key_by_spec_and_by_length_returns_matching_plaintext() {
    let server = TestServer::start().await;
    let client = server.client();
    let (key_id, arn) = create_key(&client, "data keys").await;

    let cases = [
        (Some(DataKeySpec::Aes128), None, 16),
        (Some(DataKeySpec::Aes256), None, 32),
        (None, Some(1), 1),
        (None, Some(1024), 1024),
    ];
    for (spec, length, expected) in cases {
        let output = client
            .generate_data_key()
            .key_id(&key_id)
            .set_key_spec(spec.clone())
            .set_number_of_bytes(length)
            .encryption_context("purpose", "test")
            .send()
            .await
            .expect("GenerateDataKey succeeds");
        let plaintext = output
            .plaintext()
            .expect("a plaintext data key")
            .as_ref()
            .to_vec();
        let ciphertext = output
            .ciphertext_blob()
            .expect("an encrypted data key")
            .as_ref()
            .to_vec();

        assert_eq!(plaintext.len(), expected, "{spec:?} {length:?}");
        assert_eq!(output.key_id(), Some(arn.as_str()));
        assert_eq!(
            decrypt(&client, &ciphertext, &[("purpose", "test")]).await,
            plaintext,
            "{spec:?} {length:?}"
        );
    }
}

#[tokio::test]
async fn generate_data_key_needs_exactly_one_of_spec_and_length_in_range() {
    let server = TestServer::start().await;
    let client = server.client();
    let (key_id, _) = create_key(&client, "data keys").await;

    let both = error_code(
        client
            .generate_data_key()
            .key_id(&key_id)
            .key_spec(DataKeySpec::Aes256)
            .number_of_bytes(32)
            .send()
            .await,
    );
    let neither = error_code(client.generate_data_key().key_id(&key_id).send().await);
    let zero = error_code(
        client
            .generate_data_key()
            .key_id(&key_id)
            .number_of_bytes(0)
            .send()
            .await,
    );
    let too_long = error_code(
        client
            .generate_data_key()
            .key_id(&key_id)
            .number_of_bytes(1025)
            .send()
            .await,
    );
    let without_plaintext_neither = error_code(
        client
            .generate_data_key_without_plaintext()
            .key_id(&key_id)
            .send()
            .await,
    );

    assert_eq!(both, "ValidationException");
    assert_eq!(neither, "ValidationException");
    assert_eq!(zero, "ValidationException");
    assert_eq!(too_long, "ValidationException");
    assert_eq!(without_plaintext_neither, "ValidationException");
}

#[tokio::test]
async fn generate_data_key_without_plaintext_returns_only_a_decryptable_ciphertext() {
    let server = TestServer::start().await;
    let client = server.client();
    let (key_id, arn) = create_key(&client, "data keys").await;

    let output = client
        .generate_data_key_without_plaintext()
        .key_id(&key_id)
        .key_spec(DataKeySpec::Aes256)
        .encryption_context("purpose", "test")
        .send()
        .await
        .expect("GenerateDataKeyWithoutPlaintext succeeds");
    let by_length = client
        .generate_data_key_without_plaintext()
        .key_id(&key_id)
        .number_of_bytes(7)
        .send()
        .await
        .expect("GenerateDataKeyWithoutPlaintext by length succeeds");

    assert_eq!(output.key_id(), Some(arn.as_str()));
    let ciphertext = output
        .ciphertext_blob()
        .expect("an encrypted data key")
        .as_ref()
        .to_vec();
    assert_eq!(
        decrypt(&client, &ciphertext, &[("purpose", "test")])
            .await
            .len(),
        32
    );
    let ciphertext = by_length
        .ciphertext_blob()
        .expect("an encrypted data key")
        .as_ref()
        .to_vec();
    assert_eq!(decrypt(&client, &ciphertext, &[]).await.len(), 7);
}

#[tokio::test]
async fn generate_random_returns_the_requested_number_of_bytes() {
    let server = TestServer::start().await;
    let client = server.client();

    for length in [1, 2, 31, 32, 1023, 1024] {
        let output = client
            .generate_random()
            .number_of_bytes(length)
            .send()
            .await
            .expect("GenerateRandom succeeds");
        assert_eq!(
            output.plaintext().map(|p| p.as_ref().len()),
            Some(length as usize)
        );
    }
    let first = client
        .generate_random()
        .number_of_bytes(32)
        .send()
        .await
        .expect("GenerateRandom succeeds");
    let second = client
        .generate_random()
        .number_of_bytes(32)
        .send()
        .await
        .expect("GenerateRandom succeeds");

    assert_ne!(
        first.plaintext(),
        second.plaintext(),
        "two random draws differ"
    );
}

#[tokio::test]
async fn generate_random_refuses_lengths_out_of_range() {
    let server = TestServer::start().await;
    let client = server.client();

    let zero = error_code(client.generate_random().number_of_bytes(0).send().await);
    let too_long = error_code(client.generate_random().number_of_bytes(1025).send().await);
    let negative = error_code(client.generate_random().number_of_bytes(-1).send().await);

    assert_eq!(zero, "ValidationException");
    assert_eq!(too_long, "ValidationException");
    assert_eq!(negative, "ValidationException");
}

#[tokio::test]
async fn re_encrypt_moves_a_ciphertext_to_another_key_and_context() {
    let server = TestServer::start().await;
    let client = server.client();
    let (source_id, source_arn) = create_key(&client, "source").await;
    let (destination_id, destination_arn) = create_key(&client, "destination").await;
    let ciphertext = encrypt(&client, &source_id, b"moving", CONTEXT).await;

    let output = client
        .re_encrypt()
        .ciphertext_blob(Blob::new(ciphertext.clone()))
        .source_encryption_context("purpose", "test")
        .source_encryption_context("tenant", "blue")
        .destination_key_id(&destination_id)
        .destination_encryption_context("moved", "yes")
        .send()
        .await
        .expect("ReEncrypt succeeds");
    let moved = output
        .ciphertext_blob()
        .expect("a new ciphertext")
        .as_ref()
        .to_vec();
    let with_source = client
        .re_encrypt()
        .ciphertext_blob(Blob::new(ciphertext.clone()))
        .source_key_id(&source_id)
        .source_encryption_context("purpose", "test")
        .source_encryption_context("tenant", "blue")
        .destination_key_id(&destination_arn)
        .send()
        .await
        .expect("ReEncrypt with the right SourceKeyId succeeds");

    assert_eq!(output.source_key_id(), Some(source_arn.as_str()));
    assert_eq!(output.key_id(), Some(destination_arn.as_str()));
    assert_eq!(
        output.source_encryption_algorithm(),
        Some(&EncryptionAlgorithmSpec::SymmetricDefault)
    );
    assert_eq!(
        output.destination_encryption_algorithm(),
        Some(&EncryptionAlgorithmSpec::SymmetricDefault)
    );
    let decrypted = client
        .decrypt()
        .ciphertext_blob(Blob::new(moved.clone()))
        .key_id(&destination_id)
        .encryption_context("moved", "yes")
        .send()
        .await
        .expect("the new ciphertext decrypts under the destination key");
    assert_eq!(
        decrypted.plaintext().map(|p| p.as_ref()),
        Some(b"moving".as_slice())
    );
    assert_eq!(decrypted.key_id(), Some(destination_arn.as_str()));
    let old_context = error_code(
        client
            .decrypt()
            .ciphertext_blob(Blob::new(moved.clone()))
            .send()
            .await,
    );
    assert_eq!(
        old_context, "InvalidCiphertextException",
        "the new ciphertext is bound to the new context"
    );
    let as_source = error_code(
        client
            .decrypt()
            .ciphertext_blob(Blob::new(moved))
            .key_id(&source_id)
            .send()
            .await,
    );
    assert_eq!(
        as_source, "IncorrectKeyException",
        "the new ciphertext is not the source key's"
    );
    let unbound = with_source
        .ciphertext_blob()
        .expect("a new ciphertext")
        .as_ref()
        .to_vec();
    assert_eq!(decrypt(&client, &unbound, &[]).await, b"moving");
}

#[tokio::test]
async fn re_encrypt_with_the_wrong_source_key_is_incorrect_key() {
    let server = TestServer::start().await;
    let client = server.client();
    let (source_id, _) = create_key(&client, "source").await;
    let (other_id, _) = create_key(&client, "other").await;
    let ciphertext = encrypt(&client, &source_id, b"moving", &[]).await;

    let code = error_code(
        client
            .re_encrypt()
            .ciphertext_blob(Blob::new(ciphertext))
            .source_key_id(&other_id)
            .destination_key_id(&other_id)
            .send()
            .await,
    );

    assert_eq!(code, "IncorrectKeyException");
}

#[tokio::test]
async fn decrypt_naming_another_key_is_incorrect_key() {
    let server = TestServer::start().await;
    let client = server.client();
    let (key_id, arn) = create_key(&client, "right").await;
    let (other_id, _) = create_key(&client, "wrong").await;
    let ciphertext = encrypt(&client, &key_id, b"mine", &[]).await;

    let wrong = error_code(
        client
            .decrypt()
            .ciphertext_blob(Blob::new(ciphertext.clone()))
            .key_id(&other_id)
            .send()
            .await,
    );
    let right = client
        .decrypt()
        .ciphertext_blob(Blob::new(ciphertext))
        .key_id(&arn)
        .send()
        .await
        .expect("Decrypt naming the right key succeeds");

    assert_eq!(wrong, "IncorrectKeyException");
    assert_eq!(
        right.plaintext().map(|p| p.as_ref()),
        Some(b"mine".as_slice())
    );
}

#[tokio::test]
async fn tampered_ciphertexts_are_invalid() {
    let server = TestServer::start().await;
    let client = server.client();
    let (key_id, _) = create_key(&client, "tamper").await;
    let ciphertext = encrypt(&client, &key_id, b"do not touch", CONTEXT).await;

    // Flipping every bit of any one byte, anywhere in the blob, must be detected.
    for position in 0..ciphertext.len() {
        let mut tampered = ciphertext.clone();
        tampered[position] ^= 0xff;
        let mut request = client.decrypt().ciphertext_blob(Blob::new(tampered));
        for (name, value) in CONTEXT {
            request = request.encryption_context(*name, *value);
        }
        let code = error_code(request.send().await);
        assert_eq!(
            code,
            "InvalidCiphertextException",
            "byte {position} of {} flipped",
            ciphertext.len()
        );
    }
    // Flipping a single low bit in the last bytes (the authentication tag) must be detected too.
    for position in ciphertext.len() - 16..ciphertext.len() {
        let mut tampered = ciphertext.clone();
        tampered[position] ^= 0x01;
        let mut request = client.decrypt().ciphertext_blob(Blob::new(tampered));
        for (name, value) in CONTEXT {
            request = request.encryption_context(*name, *value);
        }
        assert_eq!(
            error_code(request.send().await),
            "InvalidCiphertextException",
            "bit 0 of byte {position}"
        );
    }
    assert_eq!(
        decrypt(&client, &ciphertext, CONTEXT).await,
        b"do not touch",
        "the original still decrypts"
    );
}

#[tokio::test]
async fn truncated_extended_and_random_ciphertexts_are_invalid() {
    let server = TestServer::start().await;
    let client = server.client();
    let (key_id, _) = create_key(&client, "tamper").await;
    let ciphertext = encrypt(&client, &key_id, b"do not touch", &[]).await;

    let mut extended = ciphertext.clone();
    extended.push(0);
    let candidates: Vec<(String, Vec<u8>)> = vec![
        ("one byte".to_owned(), ciphertext[..1].to_vec()),
        ("ten bytes".to_owned(), ciphertext[..10].to_vec()),
        (
            "half".to_owned(),
            ciphertext[..ciphertext.len() / 2].to_vec(),
        ),
        (
            "all but the last byte".to_owned(),
            ciphertext[..ciphertext.len() - 1].to_vec(),
        ),
        (
            "all but the tag".to_owned(),
            ciphertext[..ciphertext.len() - 16].to_vec(),
        ),
        ("one byte appended".to_owned(), extended),
        (
            "random bytes".to_owned(),
            (0..200u32).map(|i| (i * 37 % 251) as u8).collect(),
        ),
    ];
    for (what, blob) in candidates {
        let code = error_code(
            client
                .decrypt()
                .ciphertext_blob(Blob::new(blob))
                .send()
                .await,
        );
        assert_eq!(code, "InvalidCiphertextException", "{what}");
    }
}

#[tokio::test]
async fn plaintext_may_be_1_to_4096_bytes() {
    let server = TestServer::start().await;
    let client = server.client();
    let (key_id, _) = create_key(&client, "sizes").await;

    let largest = vec![0x5a; 4096];
    let ciphertext = encrypt(&client, &key_id, &largest, &[]).await;
    let one = encrypt(&client, &key_id, b"1", &[]).await;
    let too_large = error_code(
        client
            .encrypt()
            .key_id(&key_id)
            .plaintext(Blob::new(vec![0x5a; 4097]))
            .send()
            .await,
    );
    let empty = error_code(
        client
            .encrypt()
            .key_id(&key_id)
            .plaintext(Blob::new(Vec::new()))
            .send()
            .await,
    );

    assert_eq!(decrypt(&client, &ciphertext, &[]).await, largest);
    assert_eq!(decrypt(&client, &one, &[]).await, b"1");
    assert_eq!(too_large, "ValidationException");
    assert_eq!(empty, "ValidationException");
}

#[tokio::test]
async fn dry_runs_that_would_succeed_fail_with_dry_run_operation() {
    let server = TestServer::start().await;
    let client = server.client();
    let (key_id, _) = create_key(&client, "dry").await;
    let (other_id, _) = create_key(&client, "other").await;
    let ciphertext = encrypt(&client, &key_id, b"dry", &[]).await;

    let encrypt = error_code(
        client
            .encrypt()
            .key_id(&key_id)
            .plaintext(Blob::new(b"x".as_slice()))
            .dry_run(true)
            .send()
            .await,
    );
    let decrypt = error_code(
        client
            .decrypt()
            .ciphertext_blob(Blob::new(ciphertext.clone()))
            .dry_run(true)
            .send()
            .await,
    );
    let data_key = error_code(
        client
            .generate_data_key()
            .key_id(&key_id)
            .key_spec(DataKeySpec::Aes256)
            .dry_run(true)
            .send()
            .await,
    );
    let without_plaintext = error_code(
        client
            .generate_data_key_without_plaintext()
            .key_id(&key_id)
            .number_of_bytes(16)
            .dry_run(true)
            .send()
            .await,
    );
    let re_encrypt = error_code(
        client
            .re_encrypt()
            .ciphertext_blob(Blob::new(ciphertext.clone()))
            .destination_key_id(&other_id)
            .dry_run(true)
            .send()
            .await,
    );

    assert_eq!(encrypt, "DryRunOperationException");
    assert_eq!(decrypt, "DryRunOperationException");
    assert_eq!(data_key, "DryRunOperationException");
    assert_eq!(without_plaintext, "DryRunOperationException");
    assert_eq!(re_encrypt, "DryRunOperationException");
}

#[tokio::test]
async fn decrypt_dry_run_ignoring_the_ciphertext_checks_only_the_key() {
    let server = TestServer::start().await;
    let (key_id, _) = create_key(&server.client(), "dry").await;
    let garbage = "AQIDBAUGBwgJCgsMDQ4PEA==";
    let body = |key_id: &str| {
        serde_json::json!({
            "CiphertextBlob": garbage,
            "KeyId": key_id,
            "DryRun": true,
            "DryRunModifiers": ["IGNORE_CIPHERTEXT"],
        })
        .to_string()
    };

    // The SDK in use predates DryRunModifiers, so the request is sent by hand.
    let (status, ignored) = server
        .raw("TrentService.Decrypt", &body(&key_id), true)
        .await;
    let (_, missing_key) = server
        .raw("TrentService.Decrypt", &body("alias/not-there"), true)
        .await;
    let without_modifier =
        serde_json::json!({ "CiphertextBlob": garbage, "DryRun": true }).to_string();
    let (_, checked) = server
        .raw("TrentService.Decrypt", &without_modifier, true)
        .await;

    assert_eq!(status, http::StatusCode::BAD_REQUEST);
    assert_eq!(ignored["__type"], "DryRunOperationException");
    assert_eq!(missing_key["__type"], "NotFoundException");
    assert_eq!(
        checked["__type"], "InvalidCiphertextException",
        "without the modifier the ciphertext is checked"
    );
}

#[tokio::test]
async fn dry_runs_report_the_real_error_when_the_call_would_fail() {
    let server = TestServer::start().await;
    let client = server.client();
    let (key_id, arn) = create_key(&client, "dry").await;
    let ciphertext = encrypt(&client, &key_id, b"dry", &[]).await;
    let mut tampered = ciphertext.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x01;

    let bad_ciphertext = error_code(
        client
            .decrypt()
            .ciphertext_blob(Blob::new(tampered))
            .dry_run(true)
            .send()
            .await,
    );
    client
        .disable_key()
        .key_id(&key_id)
        .send()
        .await
        .expect("DisableKey succeeds");
    let disabled = failure(
        client
            .encrypt()
            .key_id(&key_id)
            .plaintext(Blob::new(b"x".as_slice()))
            .dry_run(true)
            .send()
            .await,
    );

    assert_eq!(bad_ciphertext, "InvalidCiphertextException");
    assert_eq!(disabled.code, "DisabledException");
    assert_eq!(disabled.message, format!("{arn} is disabled."));
}

#[tokio::test]
async fn asymmetric_algorithms_with_a_symmetric_key_are_invalid_key_usage() {
    let server = TestServer::start().await;
    let client = server.client();
    let (key_id, _) = create_key(&client, "symmetric").await;
    let ciphertext = encrypt(&client, &key_id, b"x", &[]).await;

    let encrypt = error_code(
        client
            .encrypt()
            .key_id(&key_id)
            .plaintext(Blob::new(b"x".as_slice()))
            .encryption_algorithm(EncryptionAlgorithmSpec::RsaesOaepSha256)
            .send()
            .await,
    );
    let decrypt = error_code(
        client
            .decrypt()
            .ciphertext_blob(Blob::new(ciphertext.clone()))
            .key_id(&key_id)
            .encryption_algorithm(EncryptionAlgorithmSpec::RsaesOaepSha256)
            .send()
            .await,
    );
    let explicit = client
        .decrypt()
        .ciphertext_blob(Blob::new(ciphertext))
        .encryption_algorithm(EncryptionAlgorithmSpec::SymmetricDefault)
        .send()
        .await;

    assert_eq!(encrypt, "InvalidKeyUsageException");
    assert_eq!(decrypt, "InvalidKeyUsageException");
    assert!(
        explicit.is_ok(),
        "SYMMETRIC_DEFAULT may be named explicitly: {explicit:?}"
    );
}

#[tokio::test]
async fn generate_random_from_an_unknown_custom_key_store_is_refused() {
    let server = TestServer::start().await;
    let client = server.client();

    let code = error_code(
        client
            .generate_random()
            .number_of_bytes(16)
            .custom_key_store_id("cks-1234567890abcdef0")
            .send()
            .await,
    );

    assert_eq!(code, "CustomKeyStoreNotFoundException");
}
