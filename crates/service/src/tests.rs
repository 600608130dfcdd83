//! Service tests that need no HTTP: the ciphertext format under mutation, and scheduled work.

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use strongroom_keystore::FileRootKey;
use strongroom_storage::sqlite::SqliteStore;
use strongroom_types::{EncryptionContext, KeyState};
use zeroize::Zeroizing;

use crate::crypto::{DecryptRequest, EncryptRequest};
use crate::keys::CreateKeyRequest;
use crate::{Caller, Error, Kms, ManualClock};

struct Fixture {
    kms: Kms,
    clock: Arc<ManualClock>,
    caller: Caller,
}

fn fixture(name: &str) -> Fixture {
    let dir =
        std::env::temp_dir().join(format!("strongroom-service-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = Arc::new(SqliteStore::open(&dir.join("db")).unwrap());
    let root = Arc::new(FileRootKey::open_or_create(&dir.join("root.key")).unwrap());
    let clock = Arc::new(ManualClock::starting_now());
    let kms = Kms::new(store, root, clock.clone());
    let caller = Caller {
        namespace: strongroom_types::Namespace {
            account: "111122223333".parse().unwrap(),
            region: "us-east-1".parse().unwrap(),
        },
        arn: "arn:aws:iam::111122223333:root".to_owned(),
        access_key_id: "test".to_owned(),
        source_ip: None,
        source_vpc: None,
        source_vpce: None,
        via_service: None,
    };
    Fixture { kms, clock, caller }
}

fn context(pairs: &[(&str, &str)]) -> EncryptionContext {
    EncryptionContext::new(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

async fn encrypt(f: &Fixture, key_id: &str, plaintext: &[u8]) -> Vec<u8> {
    let req = EncryptRequest {
        key_id: key_id.to_owned(),
        plaintext: Zeroizing::new(plaintext.to_vec()),
        context: context(&[("purpose", "test")]),
        algorithm: None,
        dry_run: false,
    };
    f.kms.encrypt(&f.caller, req).await.unwrap().ciphertext
}

async fn decrypt(f: &Fixture, blob: Vec<u8>) -> Result<Zeroizing<Vec<u8>>, Error> {
    let req = DecryptRequest {
        ciphertext: Some(blob),
        context: context(&[("purpose", "test")]),
        ..Default::default()
    };
    f.kms.decrypt(&f.caller, req).await.map(|res| res.plaintext)
}

#[test]
fn every_single_byte_change_is_rejected() {
    let rt = runtime();
    rt.block_on(async {
        let f = fixture("bytes");
        let key = f
            .kms
            .create_key(&f.caller, CreateKeyRequest::default())
            .await
            .unwrap();
        let blob = encrypt(&f, key.key_id.as_str(), b"attack at dawn").await;
        assert_eq!(
            &decrypt(&f, blob.clone()).await.unwrap()[..],
            b"attack at dawn"
        );
        for index in 0..blob.len() {
            let mut changed = blob.clone();
            changed[index] ^= 0x01;
            assert!(
                decrypt(&f, changed).await.is_err(),
                "a change at byte {index} was accepted"
            );
        }
        for len in 0..blob.len() {
            assert!(
                decrypt(&f, blob[..len].to_vec()).await.is_err(),
                "truncation to {len} bytes was accepted"
            );
        }
    });
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn any_mutation_is_rejected(
        plaintext in proptest::collection::vec(any::<u8>(), 1..512),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
        extra in proptest::collection::vec(any::<u8>(), 0..3),
    ) {
        let rt = runtime();
        rt.block_on(async {
            let f = fixture("prop");
            let key = f.kms.create_key(&f.caller, CreateKeyRequest::default()).await.unwrap();
            let mut blob = encrypt(&f, key.key_id.as_str(), &plaintext).await;
            for (index, delta) in &edits {
                let at = index.index(blob.len());
                blob[at] ^= delta;
            }
            blob.extend_from_slice(&extra);
            let result = decrypt(&f, blob).await;
            prop_assert!(result.is_err(), "a mutated ciphertext decrypted");
            Ok(())
        })?;
    }
}

#[test]
fn deletion_and_rotation_happen_when_due() {
    let rt = runtime();
    rt.block_on(async {
        let f = fixture("due");
        let key = f
            .kms
            .create_key(&f.caller, CreateKeyRequest::default())
            .await
            .unwrap();
        let id = key.key_id.as_str().to_owned();
        f.kms
            .enable_key_rotation(&f.caller, &id, Some(90))
            .await
            .unwrap();
        let old = encrypt(&f, &id, b"old").await;
        f.clock.advance(Duration::from_secs(91 * 86_400));
        let rotated = f.kms.describe_key(&f.caller, &id).await.unwrap();
        assert_eq!(
            rotated.materials.len(),
            2,
            "automatic rotation did not happen"
        );
        assert_eq!(&decrypt(&f, old).await.unwrap()[..], b"old");
        let scheduled = f
            .kms
            .schedule_key_deletion(&f.caller, &id, Some(7))
            .await
            .unwrap();
        assert_eq!(scheduled.key_state, KeyState::PendingDeletion);
        f.clock.advance(Duration::from_secs(6 * 86_400));
        assert_eq!(f.kms.run_scheduled_work().await.unwrap(), 0);
        f.clock.advance(Duration::from_secs(2 * 86_400));
        assert_eq!(f.kms.run_scheduled_work().await.unwrap(), 1);
        assert!(matches!(
            f.kms.describe_key(&f.caller, &id).await,
            Err(Error::NotFound(_))
        ));
    });
}

/// The scheduler, not only a request touching the key, deletes imported material at its ValidTo.
#[test]
fn imported_material_expires_on_schedule() {
    use aws_lc_rs::rsa::{OAEP_SHA256_MGF1SHA256, OaepPublicEncryptingKey, PublicEncryptingKey};
    use strongroom_types::{
        ExpirationModel, ImportState, Origin, WrappingAlgorithm, WrappingKeySpec,
    };

    use crate::import::ImportKeyMaterialRequest;

    let rt = runtime();
    rt.block_on(async {
        let f = fixture("import-expiry");
        let created = f
            .kms
            .create_key(
                &f.caller,
                CreateKeyRequest {
                    origin: Some(Origin::External),
                    ..CreateKeyRequest::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(created.state, KeyState::PendingImport);
        assert!(created.materials.is_empty());
        let id = created.key_id.as_str().to_owned();
        let parameters = f
            .kms
            .get_parameters_for_import(
                &f.caller,
                &id,
                WrappingAlgorithm::RsaesOaepSha256,
                WrappingKeySpec::Rsa2048,
            )
            .await
            .unwrap();
        let public = OaepPublicEncryptingKey::new(
            PublicEncryptingKey::from_der(&parameters.public_key).unwrap(),
        )
        .unwrap();
        let mut wrapped = vec![0u8; public.ciphertext_size()];
        let len = public
            .encrypt(&OAEP_SHA256_MGF1SHA256, &[7u8; 32], &mut wrapped, None)
            .unwrap()
            .len();
        wrapped.truncate(len);
        let valid_to = crate::Clock::now(f.clock.as_ref()).plus(Duration::from_secs(3600));
        f.kms
            .import_key_material(
                &f.caller,
                &id,
                ImportKeyMaterialRequest {
                    import_token: parameters.import_token,
                    encrypted_key_material: Zeroizing::new(wrapped),
                    valid_to: Some(valid_to),
                    expiration_model: Some(ExpirationModel::KeyMaterialExpires),
                    import_type: None,
                    key_material_description: None,
                    key_material_id: None,
                },
            )
            .await
            .unwrap();
        let ciphertext = encrypt(&f, &id, b"expiring").await;

        assert_eq!(f.kms.run_scheduled_work().await.unwrap(), 0);
        f.clock.advance(Duration::from_secs(3600));
        assert_eq!(f.kms.run_scheduled_work().await.unwrap(), 1);
        // Read storage directly: the scheduler did the work, no request touched the key.
        let stored = f
            .kms
            .store()
            .key(&f.caller.namespace, &created.key_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.state, KeyState::PendingImport);
        assert!(
            stored.materials[0].wrapped.is_empty(),
            "the material is wiped"
        );
        let import = stored.materials[0].import.as_ref().unwrap();
        assert_eq!(import.state, ImportState::PendingImport);
        assert_eq!(import.valid_to, None);
        assert_eq!(f.kms.run_scheduled_work().await.unwrap(), 0);
        assert!(matches!(
            decrypt(&f, ciphertext).await,
            Err(Error::InvalidState(_))
        ));
    });
}
