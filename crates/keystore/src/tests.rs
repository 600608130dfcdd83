//! Tests of root-key wrapping and message sealing.

use std::os::unix::fs::PermissionsExt;

use proptest::prelude::*;

use crate::{FileRootKey, KeyStoreError, RootKey, SymmetricKey, material_id};

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("strongroom-keystore-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn root_key_is_created_private_and_reused() {
    let dir = temp_dir("root");
    let path = dir.join("root.key");
    let first = FileRootKey::open_or_create(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let wrapped = first.wrap(b"ctx", b"material").unwrap();
    assert!(!wrapped.windows(8).any(|w| w == b"material"));
    let second = FileRootKey::open_or_create(&path).unwrap();
    assert_eq!(&second.unwrap(b"ctx", &wrapped).unwrap()[..], b"material");
    assert!(matches!(
        second.unwrap(b"other", &wrapped),
        Err(KeyStoreError::Unauthentic)
    ));
}

#[test]
fn root_key_readable_by_others_is_refused() {
    let dir = temp_dir("perm");
    let path = dir.join("root.key");
    FileRootKey::open_or_create(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = FileRootKey::open_or_create(&path)
        .err()
        .expect("must refuse");
    assert!(err.to_string().contains("chmod 600"), "{err}");
}

#[test]
fn seal_open_round_trip_and_aad_binding() {
    let key = SymmetricKey::generate();
    let (nonce, sealed) = key.seal(b"aad", b"hello").unwrap();
    assert_eq!(&key.open(b"aad", &nonce, &sealed).unwrap()[..], b"hello");
    assert!(key.open(b"aaD", &nonce, &sealed).is_err());
    let other = SymmetricKey::generate();
    assert!(other.open(b"aad", &nonce, &sealed).is_err());
    // Two seals of one message differ: the derived key is fresh each time.
    let (_, again) = key.seal(b"aad", b"hello").unwrap();
    assert_ne!(sealed, again);
}

#[test]
fn material_ids_differ_by_key_and_material() {
    let a = material_id("arn:a", &[1; 32]);
    assert_eq!(a, material_id("arn:a", &[1; 32]));
    assert_ne!(a, material_id("arn:b", &[1; 32]));
    assert_ne!(a, material_id("arn:a", &[2; 32]));
}

proptest! {
    #[test]
    fn any_flipped_bit_is_rejected(plaintext in proptest::collection::vec(any::<u8>(), 0..256), bit in 0usize..4096) {
        let key = SymmetricKey::generate();
        let (nonce, mut sealed) = key.seal(b"aad", &plaintext).unwrap();
        let bit = bit % (sealed.len() * 8);
        sealed[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(key.open(b"aad", &nonce, &sealed).is_err());
    }
}

mod import {
    use aws_lc_rs::key_wrap::{AES_256, AesKek, KeyWrapPadded};
    use aws_lc_rs::rsa::{
        OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OaepAlgorithm, OaepPublicEncryptingKey,
        PublicEncryptingKey,
    };
    use strongroom_types::{WrappingAlgorithm, WrappingKeySpec};

    use crate::{KeyStoreError, WrappingKey};

    /// What a customer does with the public key: RSA-OAEP encryption.
    fn oaep_encrypt(public_der: &[u8], padding: &'static OaepAlgorithm, data: &[u8]) -> Vec<u8> {
        let public =
            OaepPublicEncryptingKey::new(PublicEncryptingKey::from_der(public_der).unwrap())
                .unwrap();
        let mut out = vec![0u8; public.ciphertext_size()];
        let len = public.encrypt(padding, data, &mut out, None).unwrap().len();
        out.truncate(len);
        out
    }

    /// RSA_AES_KEY_WRAP: an AES-256 key under RSA-OAEP, then the material under AES-KWP.
    fn rsa_aes_wrap(public_der: &[u8], padding: &'static OaepAlgorithm, data: &[u8]) -> Vec<u8> {
        let aes_key = crate::random_bytes(32);
        let mut out = oaep_encrypt(public_der, padding, &aes_key);
        let kek = AesKek::new(&AES_256, &aes_key).unwrap();
        let mut wrapped = vec![0u8; data.len() + 16];
        let len = kek.wrap_with_padding(data, &mut wrapped).unwrap().len();
        out.extend_from_slice(&wrapped[..len]);
        out
    }

    #[test]
    fn every_wrapping_algorithm_round_trips() {
        let key = WrappingKey::generate(WrappingKeySpec::Rsa2048).unwrap();
        let material = crate::random_bytes(32);
        let large = crate::random_bytes(1217);
        let cases = [
            (
                WrappingAlgorithm::RsaesOaepSha1,
                oaep_encrypt(key.public_key_der(), &OAEP_SHA1_MGF1SHA1, &material),
                &material,
            ),
            (
                WrappingAlgorithm::RsaesOaepSha256,
                oaep_encrypt(key.public_key_der(), &OAEP_SHA256_MGF1SHA256, &material),
                &material,
            ),
            (
                WrappingAlgorithm::RsaAesKeyWrapSha1,
                rsa_aes_wrap(key.public_key_der(), &OAEP_SHA1_MGF1SHA1, &large),
                &large,
            ),
            (
                WrappingAlgorithm::RsaAesKeyWrapSha256,
                rsa_aes_wrap(key.public_key_der(), &OAEP_SHA256_MGF1SHA256, &large),
                &large,
            ),
        ];
        for (algorithm, wrapped, expected) in cases {
            let unwrapped = key.unwrap(algorithm, &wrapped).unwrap();
            assert_eq!(&unwrapped[..], &expected[..], "{algorithm}");
        }
    }

    #[test]
    fn the_wrong_algorithm_key_or_bytes_fail_alike() {
        let key = WrappingKey::generate(WrappingKeySpec::Rsa2048).unwrap();
        let other = WrappingKey::generate(WrappingKeySpec::Rsa2048).unwrap();
        let material = crate::random_bytes(32);
        let wrapped = oaep_encrypt(key.public_key_der(), &OAEP_SHA256_MGF1SHA256, &material);
        let mut tampered = wrapped.clone();
        tampered[10] ^= 1;
        let hybrid = rsa_aes_wrap(key.public_key_der(), &OAEP_SHA256_MGF1SHA256, &material);
        let mut truncated_hybrid = hybrid.clone();
        truncated_hybrid.truncate(hybrid.len() - 8);
        let failures = [
            key.unwrap(WrappingAlgorithm::RsaesOaepSha1, &wrapped),
            key.unwrap(WrappingAlgorithm::RsaAesKeyWrapSha256, &wrapped),
            other.unwrap(WrappingAlgorithm::RsaesOaepSha256, &wrapped),
            key.unwrap(WrappingAlgorithm::RsaesOaepSha256, &tampered),
            key.unwrap(WrappingAlgorithm::RsaAesKeyWrapSha1, &hybrid),
            key.unwrap(WrappingAlgorithm::RsaAesKeyWrapSha256, &truncated_hybrid),
        ];
        for (index, failure) in failures.into_iter().enumerate() {
            assert!(
                matches!(failure, Err(KeyStoreError::Unauthentic)),
                "case {index} must fail as unauthentic"
            );
        }
        assert!(matches!(
            key.unwrap(WrappingAlgorithm::RsaesPkcs1V15, &wrapped),
            Err(KeyStoreError::Unsupported(_))
        ));
    }

    #[test]
    fn a_wrapping_key_survives_its_pkcs8_and_checks_its_size() {
        let key = WrappingKey::generate(WrappingKeySpec::Rsa3072).unwrap();
        let again = WrappingKey::from_pkcs8(WrappingKeySpec::Rsa3072, key.pkcs8()).unwrap();
        assert_eq!(again.public_key_der(), key.public_key_der());
        let material = crate::random_bytes(32);
        let wrapped = oaep_encrypt(key.public_key_der(), &OAEP_SHA1_MGF1SHA1, &material);
        assert_eq!(
            &again
                .unwrap(WrappingAlgorithm::RsaesOaepSha1, &wrapped)
                .unwrap()[..],
            &material[..]
        );
        assert!(WrappingKey::from_pkcs8(WrappingKeySpec::Rsa2048, key.pkcs8()).is_err());
        assert!(matches!(
            WrappingKey::generate(WrappingKeySpec::Sm2),
            Err(KeyStoreError::Unsupported(_))
        ));
    }
}

#[test]
fn ml_kem_keys_round_trip_through_their_stored_bytes() {
    use strongroom_types::KeySpec;
    for spec in [KeySpec::MlKem512, KeySpec::MlKem768, KeySpec::MlKem1024] {
        let key = match crate::PrivateKey::generate(spec) {
            Ok(key) => key,
            Err(e) => panic!("{spec}: {e:?}"),
        };
        let again = crate::PrivateKey::from_pkcs8(spec, key.pkcs8()).expect("reloads");
        let (ciphertext, secret) = key.encapsulate().expect("encapsulates");
        assert_eq!(
            again.decapsulate(&ciphertext).expect("decapsulates"),
            secret
        );
        assert_eq!(key.public_key_der(), again.public_key_der());
    }
}
