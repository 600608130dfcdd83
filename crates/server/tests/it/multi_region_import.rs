//! On-demand rotation of multi-Region keys with imported key material, through the SDK, as AWS documents
//! it: new key material is imported into the primary key (ImportType NEW_KEY_MATERIAL), then the same
//! material into each replica (EXISTING_KEY_MATERIAL); its state is PENDING_MULTI_REGION_IMPORT_AND_ROTATION
//! until every replica holds it and PENDING_ROTATION after; RotateKeyOnDemand on the primary then makes it
//! current in every Region at once, and refuses while a replica lacks it.

use std::time::Duration;

use aws_lc_rs::rsa::{OAEP_SHA256_MGF1SHA256, OaepPublicEncryptingKey, PublicEncryptingKey};
use aws_sdk_kms::Client;
use aws_sdk_kms::primitives::{Blob, DateTime};
use aws_sdk_kms::types::{
    AlgorithmSpec, ExpirationModelType, ImportState, ImportType, IncludeKeyMaterial,
    KeyMaterialState, KeyState, OriginType, RotationType, RotationsListEntry, WrappingKeySpec,
};
use strongroom_service::multi_region::TRANSIENT_STATE;

use crate::harness::{ACCOUNT, Failure, TestServer, encrypt, failure};

const EAST: &str = "us-east-1";
const WEST: &str = "eu-west-1";
const SOUTH: &str = "ap-south-1";

fn arn_in(region: &str, key_id: &str) -> String {
    format!("arn:aws:kms:{region}:{ACCOUNT}:key/{key_id}")
}

fn material() -> Vec<u8> {
    let mut out = vec![0u8; 32];
    aws_lc_rs::rand::fill(&mut out).expect("random bytes");
    out
}

/// How one ImportKeyMaterial call is made besides its key and material.
#[derive(Default)]
struct Import<'a> {
    import_type: Option<ImportType>,
    key_material_id: Option<&'a str>,
    valid_to: Option<DateTime>,
}

/// ImportKeyMaterial of `material` into `key_id`, wrapped as the key's owner does outside KMS under the
/// public key of a fresh GetParametersForImport (RSAES_OAEP_SHA_256, RSA 2048); the material's id.
async fn import(
    client: &Client,
    key_id: &str,
    material: &[u8],
    how: Import<'_>,
) -> Result<String, Failure> {
    let parameters = client
        .get_parameters_for_import()
        .key_id(key_id)
        .wrapping_algorithm(AlgorithmSpec::RsaesOaepSha256)
        .wrapping_key_spec(WrappingKeySpec::Rsa2048)
        .send()
        .await
        .expect("GetParametersForImport succeeds");
    let public = PublicEncryptingKey::from_der(parameters.public_key().unwrap().as_ref())
        .expect("an RSA public key");
    let public = OaepPublicEncryptingKey::new(public).expect("an OAEP key");
    let mut wrapped = vec![0u8; public.ciphertext_size()];
    let len = public
        .encrypt(&OAEP_SHA256_MGF1SHA256, material, &mut wrapped, None)
        .expect("RSA-OAEP")
        .len();
    wrapped.truncate(len);
    let request = client
        .import_key_material()
        .key_id(key_id)
        .import_token(Blob::new(parameters.import_token().unwrap().as_ref()))
        .encrypted_key_material(Blob::new(wrapped))
        .set_import_type(how.import_type)
        .set_key_material_id(how.key_material_id.map(str::to_owned));
    let request = match how.valid_to {
        Some(valid_to) => request
            .expiration_model(ExpirationModelType::KeyMaterialExpires)
            .valid_to(valid_to),
        None => request.expiration_model(ExpirationModelType::KeyMaterialDoesNotExpire),
    };
    match request.send().await {
        Ok(output) => Ok(output.key_material_id().expect("KeyMaterialId").to_owned()),
        Err(error) => Err(failure::<(), _, _>(Err(error))),
    }
}

/// New key material for on-demand rotation, into the primary.
fn new_material<'a>() -> Import<'a> {
    Import {
        import_type: Some(ImportType::NewKeyMaterial),
        ..Import::default()
    }
}

/// Key material the key set already has, named by its id.
fn existing(id: &str) -> Import<'_> {
    Import {
        import_type: Some(ImportType::ExistingKeyMaterial),
        key_material_id: Some(id),
        ..Import::default()
    }
}

/// A multi-Region primary of origin EXTERNAL in us-east-1 holding `first`, with a replica holding the same
/// material in each of `regions`; the key id and the first material's id.
async fn imported_set(server: &TestServer, first: &[u8], regions: &[&str]) -> (String, String) {
    let east = server.client();
    let key_id = east
        .create_key()
        .origin(OriginType::External)
        .multi_region(true)
        .send()
        .await
        .expect("CreateKey with Origin EXTERNAL and MultiRegion")
        .key_metadata()
        .unwrap()
        .key_id()
        .to_owned();
    let first_id = import(&east, &key_id, first, Import::default())
        .await
        .expect("the first material imports into the primary");
    for region in regions {
        add_replica(server, &key_id, region).await;
        let client = server.client_for("test", region);
        let id = import(&client, &key_id, first, Import::default())
            .await
            .expect("the first material imports into the replica");
        assert_eq!(
            id, first_id,
            "the same material has the same id in every Region"
        );
    }
    (key_id, first_id)
}

/// ReplicateKey into `region`, then the clock past the replica's Creating state.
async fn add_replica(server: &TestServer, key_id: &str, region: &str) {
    server
        .client()
        .replicate_key()
        .key_id(key_id)
        .replica_region(region)
        .send()
        .await
        .expect("ReplicateKey succeeds");
    server.clock().advance(TRANSIENT_STATE);
}

/// ListKeyRotations with ALL_KEY_MATERIAL or ROTATIONS_ONLY.
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

/// Each material's id, KeyMaterialState and ImportState, as ListKeyRotations with ALL_KEY_MATERIAL shows
/// them, oldest first.
async fn states(client: &Client, key_id: &str) -> Vec<(String, KeyMaterialState, ImportState)> {
    rotations(client, key_id, true)
        .await
        .iter()
        .map(|entry| {
            (
                entry.key_material_id().expect("KeyMaterialId").to_owned(),
                entry
                    .key_material_state()
                    .expect("KeyMaterialState")
                    .clone(),
                entry.import_state().expect("ImportState").clone(),
            )
        })
        .collect()
}

async fn current_material(client: &Client, key_id: &str) -> Option<String> {
    client
        .describe_key()
        .key_id(key_id)
        .send()
        .await
        .expect("DescribeKey succeeds")
        .key_metadata()
        .expect("KeyMetadata")
        .current_key_material_id()
        .map(str::to_owned)
}

async fn key_state(client: &Client, key_id: &str) -> KeyState {
    client
        .describe_key()
        .key_id(key_id)
        .send()
        .await
        .expect("DescribeKey succeeds")
        .key_metadata()
        .expect("KeyMetadata")
        .key_state()
        .expect("KeyState")
        .clone()
}

/// Decrypts in the Region of `client`; the plaintext and the id of the material that decrypted it.
async fn decrypt_with(client: &Client, ciphertext: &[u8]) -> (Vec<u8>, String) {
    let output = client
        .decrypt()
        .ciphertext_blob(Blob::new(ciphertext))
        .send()
        .await
        .expect("Decrypt succeeds");
    (
        output.plaintext().expect("Plaintext").as_ref().to_vec(),
        output.key_material_id().expect("KeyMaterialId").to_owned(),
    )
}

async fn rotate(client: &Client, key_id: &str) -> Result<(), Failure> {
    match client.rotate_key_on_demand().key_id(key_id).send().await {
        Ok(_) => Ok(()),
        Err(error) => Err(failure::<(), _, _>(Err(error))),
    }
}

/// The whole flow across a primary and two replicas: the material's state at each stage in every Region,
/// the rotation refused until the last replica holds the material, then made in every Region at once;
/// old ciphertexts keep decrypting everywhere and new ones, made under the new material in any Region,
/// decrypt in every other.
#[tokio::test]
async fn new_material_rotates_in_every_region_of_the_set() {
    let server = TestServer::start().await;
    let east = server.client();
    let west = server.client_for("test", WEST);
    let south = server.client_for("test", SOUTH);
    let regions = [(&east, EAST), (&west, WEST), (&south, SOUTH)];
    let first = material();
    let (key_id, first_id) = imported_set(&server, &first, &[WEST, SOUTH]).await;
    let before = encrypt(&east, &key_id, b"under the first material", &[]).await;

    let second = material();
    let second_id = import(&east, &key_id, &second, new_material())
        .await
        .expect("new key material imports into the primary");
    assert_ne!(second_id, first_id);
    use ImportState::{Imported, PendingImport};
    use KeyMaterialState::{
        Current, NonCurrent, PendingMultiRegionImportAndRotation, PendingRotation,
    };
    let waiting = |replica_holds: bool| {
        vec![
            (first_id.clone(), Current, Imported),
            (
                second_id.clone(),
                PendingMultiRegionImportAndRotation,
                if replica_holds {
                    Imported
                } else {
                    PendingImport
                },
            ),
        ]
    };
    // The primary holds it; the replicas know its id and wait for it.
    assert_eq!(states(&east, &key_id).await, waiting(true));
    assert_eq!(states(&west, &key_id).await, waiting(false));
    assert_eq!(states(&south, &key_id).await, waiting(false));
    let pending = &rotations(&east, &key_id, true).await[1];
    assert_eq!(pending.rotation_date(), None);
    assert_eq!(pending.rotation_type(), None);
    assert!(
        rotations(&west, &key_id, false).await.is_empty(),
        "material pending rotation is no rotation yet"
    );
    for (client, region) in regions {
        assert_eq!(
            current_material(client, &key_id).await.as_deref(),
            Some(first_id.as_str()),
            "{region} still encrypts under the first material"
        );
        assert_eq!(key_state(client, &key_id).await, KeyState::Enabled);
    }

    let refused = rotate(&east, &key_id)
        .await
        .expect_err("no replica holds it");
    assert_eq!(
        refused.code, "KMSInvalidStateException",
        "{}",
        refused.message
    );
    assert!(
        refused
            .message
            .contains("PENDING_MULTI_REGION_IMPORT_AND_ROTATION")
            && refused.message.contains(&arn_in(WEST, &key_id))
            && refused.message.contains(&arn_in(SOUTH, &key_id)),
        "{}",
        refused.message
    );

    // One replica takes it (named by its id): the other still lacks it, so nothing changes yet.
    let in_west = import(&west, &key_id, &second, existing(&second_id))
        .await
        .expect("the primary's new material imports into a replica");
    assert_eq!(in_west, second_id);
    assert_eq!(states(&east, &key_id).await, waiting(true));
    assert_eq!(states(&west, &key_id).await, waiting(true));
    assert_eq!(states(&south, &key_id).await, waiting(false));
    let refused = rotate(&east, &key_id)
        .await
        .expect_err("one replica lacks it");
    assert_eq!(refused.code, "KMSInvalidStateException");
    assert!(
        refused.message.contains(&arn_in(SOUTH, &key_id))
            && !refused.message.contains(&arn_in(WEST, &key_id)),
        "only the replica that lacks it is named: {}",
        refused.message
    );

    // The last replica takes it (ImportType EXISTING_KEY_MATERIAL by default, without the id).
    import(&south, &key_id, &second, Import::default())
        .await
        .expect("the primary's new material imports into the last replica");
    let ready = vec![
        (first_id.clone(), Current, Imported),
        (second_id.clone(), PendingRotation, Imported),
    ];
    for (client, region) in regions {
        assert_eq!(states(client, &key_id).await, ready, "{region}");
        assert_eq!(
            current_material(client, &key_id).await.as_deref(),
            Some(first_id.as_str()),
            "{region} waits for the rotation"
        );
    }

    // The rotation is made on the primary only.
    let on_replica = rotate(&west, &key_id).await.expect_err("a replica");
    assert_eq!(on_replica.code, "UnsupportedOperationException");
    assert!(
        on_replica.message.contains(&arn_in(EAST, &key_id)),
        "{}",
        on_replica.message
    );
    rotate(&east, &key_id)
        .await
        .expect("RotateKeyOnDemand on the primary succeeds");

    let rotated = vec![
        (first_id.clone(), NonCurrent, Imported),
        (second_id.clone(), Current, Imported),
    ];
    let primary_rotation = rotations(&east, &key_id, false).await;
    assert_eq!(primary_rotation.len(), 1);
    let rotation_date = primary_rotation[0].rotation_date().cloned();
    assert!(rotation_date.is_some());
    for (client, region) in regions {
        assert_eq!(states(client, &key_id).await, rotated, "{region}");
        assert_eq!(
            current_material(client, &key_id).await.as_deref(),
            Some(second_id.as_str()),
            "{region}"
        );
        let listed = rotations(client, &key_id, false).await;
        assert_eq!(listed.len(), 1, "{region}");
        assert_eq!(listed[0].key_material_id(), Some(second_id.as_str()));
        assert_eq!(listed[0].rotation_type(), Some(&RotationType::OnDemand));
        assert_eq!(
            listed[0].rotation_date().cloned(),
            rotation_date,
            "{region} shows the primary's rotation"
        );
    }

    // Old ciphertexts decrypt everywhere under the first material; new ones, made in any Region, are
    // under the second material and decrypt in every Region.
    for (client, region) in regions {
        assert_eq!(
            decrypt_with(client, &before).await,
            (b"under the first material".to_vec(), first_id.clone()),
            "{region}"
        );
    }
    for (maker, made_in) in regions {
        let plaintext = format!("made in {made_in} after the rotation");
        let ciphertext = encrypt(maker, &key_id, plaintext.as_bytes(), &[]).await;
        for (client, region) in regions {
            assert_eq!(
                decrypt_with(client, &ciphertext).await,
                (plaintext.as_bytes().to_vec(), second_id.clone()),
                "made in {made_in}, decrypted in {region}"
            );
        }
    }
}

/// What AWS refuses along the way: new material straight into a replica, material the primary does not
/// have, different material under the id of the pending one, a second new material at once; and how
/// deleting or expiring the pending material acts on the set (from the primary: gone everywhere; from a
/// replica: that replica waits for it again).
#[tokio::test]
async fn importing_new_material_into_a_set_refuses_what_aws_refuses() {
    let server = TestServer::start().await;
    let east = server.client();
    let west = server.client_for("test", WEST);
    let first = material();
    let (key_id, first_id) = imported_set(&server, &first, &[WEST]).await;
    let primary_arn = arn_in(EAST, &key_id);
    let second = material();

    // New material goes into the primary first, never straight into a replica.
    let into_replica = import(&west, &key_id, &second, new_material())
        .await
        .expect_err("NEW_KEY_MATERIAL into a replica");
    assert_eq!(into_replica.code, "UnsupportedOperationException");
    assert!(
        into_replica.message.contains(&primary_arn)
            && into_replica.message.contains("EXISTING_KEY_MATERIAL"),
        "{}",
        into_replica.message
    );
    let unknown = import(&west, &key_id, &second, Import::default())
        .await
        .expect_err("material the primary does not have");
    assert_eq!(unknown.code, "IncorrectKeyMaterialException");
    assert!(
        unknown.message.contains(&primary_arn),
        "{}",
        unknown.message
    );
    assert_eq!(states(&west, &key_id).await.len(), 1);

    let second_id = import(&east, &key_id, &second, new_material())
        .await
        .expect("new key material imports into the primary");
    // Different material under the pending material's id, or under no id, is not that material.
    let other = material();
    let impostor = import(&west, &key_id, &other, existing(&second_id))
        .await
        .expect_err("other material under the id of the new one");
    assert_eq!(impostor.code, "IncorrectKeyMaterialException");
    assert!(
        impostor.message.contains(&second_id),
        "{}",
        impostor.message
    );
    let impostor = import(&west, &key_id, &other, Import::default())
        .await
        .expect_err("other material");
    assert_eq!(impostor.code, "IncorrectKeyMaterialException");
    // The right material under the first material's id is refused too.
    let misnamed = import(&west, &key_id, &second, existing(&first_id))
        .await
        .expect_err("the new material under the first one's id");
    assert_eq!(misnamed.code, "IncorrectKeyMaterialException");
    // One new material waits for rotation at a time.
    let another = import(&east, &key_id, &other, new_material())
        .await
        .expect_err("a second new material");
    assert_eq!(another.code, "ValidationException");

    // The replica's copy deleted: only that replica waits for it again.
    import(&west, &key_id, &second, existing(&second_id))
        .await
        .expect("the replica takes the new material");
    assert_eq!(
        states(&east, &key_id).await[1].1,
        KeyMaterialState::PendingRotation
    );
    west.delete_imported_key_material()
        .key_id(&key_id)
        .key_material_id(&second_id)
        .send()
        .await
        .expect("DeleteImportedKeyMaterial of the pending material in the replica");
    let in_west = states(&west, &key_id).await;
    assert_eq!(
        in_west[1],
        (
            second_id.clone(),
            KeyMaterialState::PendingMultiRegionImportAndRotation,
            ImportState::PendingImport
        )
    );
    assert_eq!(
        states(&east, &key_id).await[1],
        (
            second_id.clone(),
            KeyMaterialState::PendingMultiRegionImportAndRotation,
            ImportState::Imported
        )
    );
    assert_eq!(
        key_state(&west, &key_id).await,
        KeyState::Enabled,
        "material pending rotation is not the key's own yet"
    );
    assert_eq!(
        rotate(&east, &key_id)
            .await
            .expect_err("the replica lacks it")
            .code,
        "KMSInvalidStateException"
    );

    // The replica's copy expiring acts the same.
    let valid_to = DateTime::from_secs(server.now_secs() as i64 + 86_400);
    import(
        &west,
        &key_id,
        &second,
        Import {
            valid_to: Some(valid_to),
            ..existing(&second_id)
        },
    )
    .await
    .expect("the replica takes the new material again, until tomorrow");
    assert_eq!(
        states(&west, &key_id).await[1].1,
        KeyMaterialState::PendingRotation
    );
    server.clock().advance(Duration::from_secs(2 * 86_400));
    assert_eq!(
        states(&west, &key_id).await[1],
        (
            second_id.clone(),
            KeyMaterialState::PendingMultiRegionImportAndRotation,
            ImportState::PendingImport
        )
    );
    assert_eq!(key_state(&west, &key_id).await, KeyState::Enabled);

    // Deleted from the primary, it is gone from the whole set, and other material can take its place.
    east.delete_imported_key_material()
        .key_id(&key_id)
        .key_material_id(&second_id)
        .send()
        .await
        .expect("DeleteImportedKeyMaterial of the pending material in the primary");
    for client in [&east, &west] {
        let listed = states(client, &key_id).await;
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].0, first_id);
    }
    let nothing = rotate(&east, &key_id).await.expect_err("nothing pending");
    assert_eq!(nothing.code, "UnsupportedOperationException");
    let other_id = import(&east, &key_id, &other, new_material())
        .await
        .expect("other new material imports in its place");
    assert_eq!(
        states(&west, &key_id).await[1],
        (
            other_id.clone(),
            KeyMaterialState::PendingMultiRegionImportAndRotation,
            ImportState::PendingImport
        )
    );

    // A replica made while material waits must take it too before the rotation.
    import(&west, &key_id, &other, existing(&other_id))
        .await
        .expect("the first replica takes the other material");
    add_replica(&server, &key_id, SOUTH).await;
    let south = server.client_for("test", SOUTH);
    assert_eq!(
        states(&south, &key_id).await,
        vec![
            (
                first_id.clone(),
                KeyMaterialState::Current,
                ImportState::PendingImport
            ),
            (
                other_id.clone(),
                KeyMaterialState::PendingMultiRegionImportAndRotation,
                ImportState::PendingImport
            ),
        ]
    );
    let refused = rotate(&east, &key_id)
        .await
        .expect_err("the new replica lacks it");
    assert!(
        refused.message.contains(&arn_in(SOUTH, &key_id)),
        "{}",
        refused.message
    );
    import(&south, &key_id, &first, Import::default())
        .await
        .expect("the new replica takes the first material");
    import(&south, &key_id, &other, existing(&other_id))
        .await
        .expect("the new replica takes the other material");
    assert_eq!(key_state(&south, &key_id).await, KeyState::Enabled);
    rotate(&east, &key_id)
        .await
        .expect("the rotation succeeds once every replica holds it");
    for client in [&east, &west, &south] {
        assert_eq!(
            current_material(client, &key_id).await.as_deref(),
            Some(other_id.as_str())
        );
    }
}
