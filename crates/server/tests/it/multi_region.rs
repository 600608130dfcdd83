//! Multi-Region keys end to end: ReplicateKey, UpdatePrimaryRegion, DescribeKey's MultiRegionConfiguration,
//! cross-Region decryption, shared rotation, independent per-Region properties, the deletion rules, and
//! imported key material imported into each key of the set.

use std::time::Duration;

use aws_lc_rs::rsa::{OAEP_SHA256_MGF1SHA256, OaepPublicEncryptingKey, PublicEncryptingKey};
use aws_sdk_kms::Client;
use aws_sdk_kms::primitives::{Blob, DateTime};
use aws_sdk_kms::types::{
    AlgorithmSpec, ExpirationModelType, KeyMetadata, KeyState, MultiRegionKeyType, OriginType, Tag,
    WrappingKeySpec,
};
use strongroom_service::multi_region::TRANSIENT_STATE;

use crate::harness::{
    ACCOUNT, Failure, TempDir, TestServer, create_key, decrypt, encrypt, failure,
};

const EAST: &str = "us-east-1";
const WEST: &str = "eu-west-1";
const SOUTH: &str = "ap-south-1";

fn arn_in(region: &str, key_id: &str) -> String {
    format!("arn:aws:kms:{region}:{ACCOUNT}:key/{key_id}")
}

async fn create_mrk(client: &Client) -> String {
    let created = client
        .create_key()
        .multi_region(true)
        .description("primary")
        .send()
        .await
        .expect("CreateKey with MultiRegion");
    created
        .key_metadata()
        .expect("metadata")
        .key_id()
        .to_owned()
}

async fn describe(client: &Client, key_id: &str) -> KeyMetadata {
    client
        .describe_key()
        .key_id(key_id)
        .send()
        .await
        .expect("DescribeKey succeeds")
        .key_metadata()
        .expect("metadata")
        .clone()
}

/// The key's type, primary Region and replica Regions, as DescribeKey shows them.
fn configuration(metadata: &KeyMetadata) -> (MultiRegionKeyType, String, Vec<String>) {
    let config = metadata
        .multi_region_configuration()
        .expect("a multi-Region key has a MultiRegionConfiguration");
    let primary = config.primary_key().expect("a primary key");
    let key_id = metadata.key_id();
    assert_eq!(
        primary.arn(),
        Some(arn_in(primary.region().unwrap_or_default(), key_id).as_str())
    );
    let replicas = config
        .replica_keys()
        .iter()
        .map(|replica| {
            let region = replica.region().expect("a Region").to_owned();
            assert_eq!(replica.arn(), Some(arn_in(&region, key_id).as_str()));
            region
        })
        .collect();
    (
        config.multi_region_key_type().expect("a type").clone(),
        primary.region().expect("a Region").to_owned(),
        replicas,
    )
}

/// Replicates `key_id` from `from` into `region`, then moves the clock past the replica's Creating state.
async fn replicate(server: &TestServer, from: &Client, key_id: &str, region: &str) {
    from.replicate_key()
        .key_id(key_id)
        .replica_region(region)
        .send()
        .await
        .expect("ReplicateKey succeeds");
    server.clock().advance(TRANSIENT_STATE);
}

#[tokio::test]
async fn a_replica_has_the_same_key_id_and_is_creating_at_first() {
    let server = TestServer::start().await;
    let east = server.client();
    let west = server.client_for("test", WEST);
    let key_id = create_mrk(&east).await;
    assert!(key_id.starts_with("mrk-"), "{key_id}");

    let replicated = east
        .replicate_key()
        .key_id(arn_in(EAST, &key_id))
        .replica_region(WEST)
        .description("replica")
        .tags(
            Tag::builder()
                .tag_key("team")
                .tag_value("west")
                .build()
                .expect("tag"),
        )
        .send()
        .await
        .expect("ReplicateKey succeeds");
    let metadata = replicated.replica_key_metadata().expect("replica metadata");
    assert_eq!(metadata.key_id(), key_id);
    assert_eq!(metadata.arn(), Some(arn_in(WEST, &key_id).as_str()));
    assert_eq!(metadata.key_state(), Some(&KeyState::Creating));
    assert!(!metadata.enabled());
    assert_eq!(metadata.description(), Some("replica"));
    assert_eq!(metadata.multi_region(), Some(true));
    assert_eq!(
        configuration(metadata),
        (
            MultiRegionKeyType::Replica,
            EAST.to_owned(),
            vec![WEST.to_owned()]
        )
    );
    let policy = replicated.replica_policy().expect("the replica's policy");
    assert!(
        policy.contains(&format!("arn:aws:iam::{ACCOUNT}:root")),
        "the default key policy: {policy}"
    );
    // The replica Region records the replica's creation as a CreateKey service event.
    let names = crate::audit::service_event_names(&server, &arn_in(WEST, &key_id), 1).await;
    assert_eq!(names, ["CreateKey"]);
    let tags: Vec<(&str, &str)> = replicated
        .replica_tags()
        .iter()
        .map(|tag| (tag.tag_key(), tag.tag_value()))
        .collect();
    assert_eq!(tags, vec![("team", "west")]);

    // While Creating, the replica can be managed but not used.
    let creating = failure(
        west.encrypt()
            .key_id(&key_id)
            .plaintext(Blob::new(b"x".as_slice()))
            .send()
            .await,
    );
    assert_eq!(creating.code, "KMSInvalidStateException");
    assert!(
        creating.message.contains("is creating"),
        "{}",
        creating.message
    );
    west.update_key_description()
        .key_id(&key_id)
        .description("renamed while creating")
        .send()
        .await
        .expect("management works while Creating");

    server.clock().advance(TRANSIENT_STATE);
    let replica = describe(&west, &key_id).await;
    assert_eq!(replica.key_state(), Some(&KeyState::Enabled));
    assert!(replica.enabled());
    let primary = describe(&east, &key_id).await;
    assert_eq!(
        configuration(&primary),
        (
            MultiRegionKeyType::Primary,
            EAST.to_owned(),
            vec![WEST.to_owned()]
        )
    );
    assert_eq!(
        primary.current_key_material_id(),
        replica.current_key_material_id(),
        "the replica has the primary's key material"
    );
    // A second replica is listed by every key of the set.
    replicate(&server, &east, &key_id, SOUTH).await;
    let (_, _, replicas) = configuration(&describe(&west, &key_id).await);
    assert_eq!(replicas, vec![SOUTH.to_owned(), WEST.to_owned()]);
}

#[tokio::test]
async fn ciphertexts_decrypt_in_every_region_of_the_set() {
    let server = TestServer::start().await;
    let east = server.client();
    let west = server.client_for("test", WEST);
    let key_id = create_mrk(&east).await;
    replicate(&server, &east, &key_id, WEST).await;

    let context = [("purpose", "multi-region")];
    let from_east = encrypt(&east, &key_id, b"made in us-east-1", &context).await;
    assert_eq!(
        decrypt(&west, &from_east, &context).await,
        b"made in us-east-1"
    );
    let from_west = encrypt(&west, &key_id, b"made in eu-west-1", &[]).await;
    assert_eq!(decrypt(&east, &from_west, &[]).await, b"made in eu-west-1");

    // The Region that decrypts answers with its own key's ARN.
    let decrypted = west
        .decrypt()
        .ciphertext_blob(Blob::new(from_east.clone()))
        .encryption_context("purpose", "multi-region")
        .send()
        .await
        .expect("Decrypt in the replica Region");
    assert_eq!(decrypted.key_id(), Some(arn_in(WEST, &key_id).as_str()));

    // A data key made in the replica Region opens in the primary's.
    let data_key = west
        .generate_data_key()
        .key_id(arn_in(WEST, &key_id))
        .number_of_bytes(32)
        .send()
        .await
        .expect("GenerateDataKey in the replica Region");
    let plaintext = data_key.plaintext().expect("plaintext").as_ref().to_vec();
    let wrapped = data_key
        .ciphertext_blob()
        .expect("ciphertext")
        .as_ref()
        .to_vec();
    assert_eq!(decrypt(&east, &wrapped, &[]).await, plaintext);

    // The encryption context still binds.
    let wrong_context = failure(
        west.decrypt()
            .ciphertext_blob(Blob::new(from_east))
            .encryption_context("purpose", "other")
            .send()
            .await,
    );
    assert_eq!(wrong_context.code, "InvalidCiphertextException");
}

#[tokio::test]
async fn policy_tags_description_and_aliases_are_each_keys_own() {
    let server = TestServer::start().await;
    let east = server.client();
    let west = server.client_for("test", WEST);
    let key_id = create_mrk(&east).await;
    east.tag_resource()
        .key_id(&key_id)
        .tags(
            Tag::builder()
                .tag_key("home")
                .tag_value("east")
                .build()
                .expect("tag"),
        )
        .send()
        .await
        .expect("TagResource");
    let replica_policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"replica","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{ACCOUNT}:root"}},"Action":"kms:*","Resource":"*"}}]}}"#
    );
    east.replicate_key()
        .key_id(&key_id)
        .replica_region(WEST)
        .policy(&replica_policy)
        .description("west copy")
        .send()
        .await
        .expect("ReplicateKey with a policy");
    server.clock().advance(TRANSIENT_STATE);

    east.update_key_description()
        .key_id(&key_id)
        .description("east changed")
        .send()
        .await
        .expect("UpdateKeyDescription");
    east.create_alias()
        .alias_name("alias/only-east")
        .target_key_id(&key_id)
        .send()
        .await
        .expect("CreateAlias");

    let replica = describe(&west, &key_id).await;
    assert_eq!(replica.description(), Some("west copy"));
    let policy = west
        .get_key_policy()
        .key_id(&key_id)
        .send()
        .await
        .expect("GetKeyPolicy")
        .policy()
        .expect("policy")
        .to_owned();
    assert_eq!(policy, replica_policy);
    let primary_policy = east
        .get_key_policy()
        .key_id(&key_id)
        .send()
        .await
        .expect("GetKeyPolicy")
        .policy()
        .expect("policy")
        .to_owned();
    assert_ne!(primary_policy, replica_policy);
    let west_tags = west
        .list_resource_tags()
        .key_id(&key_id)
        .send()
        .await
        .expect("ListResourceTags");
    assert!(
        west_tags.tags().is_empty(),
        "the primary's tags are not copied"
    );
    let by_alias = failure(west.describe_key().key_id("alias/only-east").send().await);
    assert_eq!(by_alias.code, "NotFoundException");

    // Disabling the replica leaves the primary enabled.
    west.disable_key()
        .key_id(&key_id)
        .send()
        .await
        .expect("DisableKey");
    assert_eq!(
        describe(&east, &key_id).await.key_state(),
        Some(&KeyState::Enabled)
    );
    assert_eq!(
        describe(&west, &key_id).await.key_state(),
        Some(&KeyState::Disabled)
    );
}

#[tokio::test]
async fn rotation_is_set_on_the_primary_and_reaches_every_replica() {
    let server = TestServer::start().await;
    let east = server.client();
    let west = server.client_for("test", WEST);
    let key_id = create_mrk(&east).await;
    replicate(&server, &east, &key_id, WEST).await;

    east.enable_key_rotation()
        .key_id(&key_id)
        .rotation_period_in_days(90)
        .send()
        .await
        .expect("EnableKeyRotation on the primary");
    let primary_status = east
        .get_key_rotation_status()
        .key_id(&key_id)
        .send()
        .await
        .expect("status");
    let replica_status = west
        .get_key_rotation_status()
        .key_id(&key_id)
        .send()
        .await
        .expect("status");
    assert!(replica_status.key_rotation_enabled());
    assert_eq!(replica_status.rotation_period_in_days(), Some(90));
    assert_eq!(
        replica_status.next_rotation_date(),
        primary_status.next_rotation_date()
    );

    // The replica's shared properties cannot be changed there.
    for refused in [
        failure(west.enable_key_rotation().key_id(&key_id).send().await),
        failure(west.disable_key_rotation().key_id(&key_id).send().await),
    ] {
        assert_eq!(refused.code, "UnsupportedOperationException");
        assert!(refused.message.contains("replica"), "{}", refused.message);
    }
    let on_demand = failure(west.rotate_key_on_demand().key_id(&key_id).send().await);
    assert_eq!(on_demand.code, "UnsupportedOperationException");

    // On-demand rotation on the primary: new material, in both Regions.
    east.rotate_key_on_demand()
        .key_id(&key_id)
        .send()
        .await
        .expect("RotateKeyOnDemand on the primary");
    let after_on_demand = encrypt(&east, &key_id, b"after on-demand", &[]).await;
    assert_eq!(
        decrypt(&west, &after_on_demand, &[]).await,
        b"after on-demand"
    );

    // Automatic rotation, due when the primary is next used.
    server
        .clock()
        .advance(std::time::Duration::from_secs(91 * 24 * 3600));
    let after_automatic = encrypt(&east, &key_id, b"after automatic", &[]).await;
    assert_eq!(
        decrypt(&west, &after_automatic, &[]).await,
        b"after automatic"
    );

    let materials = |client: Client| {
        let key_id = key_id.clone();
        async move {
            let listed = client
                .list_key_rotations()
                .key_id(&key_id)
                .include_key_material(aws_sdk_kms::types::IncludeKeyMaterial::AllKeyMaterial)
                .send()
                .await
                .expect("ListKeyRotations");
            listed
                .rotations()
                .iter()
                .map(|r| r.key_material_id().unwrap_or_default().to_owned())
                .collect::<Vec<_>>()
        }
    };
    let east_materials = materials(east.clone()).await;
    assert_eq!(east_materials.len(), 3, "{east_materials:?}");
    assert_eq!(materials(west.clone()).await, east_materials);
}

#[tokio::test]
async fn update_primary_region_swaps_the_roles() {
    let server = TestServer::start().await;
    let east = server.client();
    let west = server.client_for("test", WEST);
    let key_id = create_mrk(&east).await;
    east.enable_key_rotation()
        .key_id(&key_id)
        .send()
        .await
        .expect("EnableKeyRotation");
    replicate(&server, &east, &key_id, WEST).await;

    east.update_primary_region()
        .key_id(&key_id)
        .primary_region(WEST)
        .send()
        .await
        .expect("UpdatePrimaryRegion");
    let old_primary = describe(&east, &key_id).await;
    let new_primary = describe(&west, &key_id).await;
    assert_eq!(old_primary.key_state(), Some(&KeyState::Updating));
    assert_eq!(new_primary.key_state(), Some(&KeyState::Updating));
    assert_eq!(
        configuration(&old_primary),
        (
            MultiRegionKeyType::Replica,
            WEST.to_owned(),
            vec![EAST.to_owned()]
        )
    );
    assert_eq!(
        configuration(&new_primary),
        (
            MultiRegionKeyType::Primary,
            WEST.to_owned(),
            vec![EAST.to_owned()]
        )
    );
    // Updating keys still do cryptography, but refuse some management.
    let ciphertext = encrypt(&east, &key_id, b"while updating", &[]).await;
    assert_eq!(decrypt(&west, &ciphertext, &[]).await, b"while updating");
    let disable = failure(east.disable_key().key_id(&key_id).send().await);
    assert_eq!(disable.code, "KMSInvalidStateException");
    assert!(
        disable.message.contains("is updating"),
        "{}",
        disable.message
    );
    let schedule = failure(
        west.schedule_key_deletion()
            .key_id(&key_id)
            .pending_window_in_days(7)
            .send()
            .await,
    );
    assert_eq!(schedule.code, "KMSInvalidStateException");

    server.clock().advance(TRANSIENT_STATE);
    assert_eq!(
        describe(&east, &key_id).await.key_state(),
        Some(&KeyState::Enabled)
    );
    assert_eq!(
        describe(&west, &key_id).await.key_state(),
        Some(&KeyState::Enabled)
    );

    // Only the new primary replicates and sets rotation; the schedule moved with it.
    let from_old = failure(
        east.replicate_key()
            .key_id(&key_id)
            .replica_region(SOUTH)
            .send()
            .await,
    );
    assert_eq!(from_old.code, "UnsupportedOperationException");
    assert!(
        from_old.message.contains("not a multi-Region primary key"),
        "{}",
        from_old.message
    );
    let rotation = west
        .get_key_rotation_status()
        .key_id(&key_id)
        .send()
        .await
        .expect("status");
    assert!(rotation.key_rotation_enabled());
    assert!(rotation.next_rotation_date().is_some());
    assert_eq!(
        failure(east.rotate_key_on_demand().key_id(&key_id).send().await).code,
        "UnsupportedOperationException"
    );
    west.rotate_key_on_demand()
        .key_id(&key_id)
        .send()
        .await
        .expect("RotateKeyOnDemand on the new primary");
    let rotated = encrypt(&west, &key_id, b"rotated in west", &[]).await;
    assert_eq!(decrypt(&east, &rotated, &[]).await, b"rotated in west");
    replicate(&server, &west, &key_id, SOUTH).await;
    let (_, primary, replicas) = configuration(&describe(&east, &key_id).await);
    assert_eq!(primary, WEST);
    assert_eq!(replicas, vec![SOUTH.to_owned(), EAST.to_owned()]);
}

#[tokio::test]
async fn update_primary_region_refuses_what_aws_refuses() {
    let server = TestServer::start().await;
    let east = server.client();
    let key_id = create_mrk(&east).await;
    let update = |key: String, region: &'static str| {
        let east = east.clone();
        async move {
            failure(
                east.update_primary_region()
                    .key_id(key)
                    .primary_region(region)
                    .send()
                    .await,
            )
        }
    };
    let no_replica = update(key_id.clone(), WEST).await;
    assert_eq!(no_replica.code, "NotFoundException");
    assert!(
        no_replica.message.contains(&arn_in(WEST, &key_id)),
        "{}",
        no_replica.message
    );
    let same_region = update(key_id.clone(), EAST).await;
    assert_eq!(same_region.code, "UnsupportedOperationException");
    let (single, _) = create_key(&east, "single-Region").await;
    assert_eq!(
        update(single, WEST).await.code,
        "UnsupportedOperationException"
    );

    replicate(&server, &east, &key_id, WEST).await;
    let west = server.client_for("test", WEST);
    let on_replica = failure(
        west.update_primary_region()
            .key_id(&key_id)
            .primary_region(SOUTH)
            .send()
            .await,
    );
    assert_eq!(on_replica.code, "UnsupportedOperationException");
    west.disable_key()
        .key_id(&key_id)
        .send()
        .await
        .expect("DisableKey");
    assert_eq!(update(key_id.clone(), WEST).await.code, "DisabledException");
}

#[tokio::test]
async fn replicate_key_refuses_what_aws_refuses() {
    let data_dir = TempDir::new("multi-region-errors");
    let server = TestServer::start_in(data_dir.path(), |config| {
        config.regions = Some(
            [EAST, WEST, SOUTH]
                .iter()
                .map(|r| r.parse().expect("a Region"))
                .collect(),
        );
    })
    .await;
    let east = server.client();
    let west = server.client_for("test", WEST);
    let replicate_into = |key: String, region: &'static str| {
        let east = east.clone();
        async move {
            failure(
                east.replicate_key()
                    .key_id(key)
                    .replica_region(region)
                    .send()
                    .await,
            )
        }
    };

    let (single, _) = create_key(&east, "single-Region").await;
    let not_multi_region = replicate_into(single, WEST).await;
    assert_eq!(not_multi_region.code, "UnsupportedOperationException");
    assert!(
        not_multi_region.message.contains("not a multi-Region key"),
        "{}",
        not_multi_region.message
    );

    let key_id = create_mrk(&east).await;
    let same_region = replicate_into(key_id.clone(), EAST).await;
    assert_eq!(same_region.code, "AlreadyExistsException");
    let unserved = replicate_into(key_id.clone(), "us-west-2").await;
    assert_eq!(unserved.code, "UnsupportedOperationException");
    assert!(
        unserved.message.contains("us-west-2"),
        "{}",
        unserved.message
    );
    let malformed = replicate_into(key_id.clone(), "Mars").await;
    assert_eq!(malformed.code, "ValidationException");
    let by_alias = {
        east.create_alias()
            .alias_name("alias/mrk")
            .target_key_id(&key_id)
            .send()
            .await
            .expect("CreateAlias");
        replicate_into("alias/mrk".to_owned(), WEST).await
    };
    assert_eq!(by_alias.code, "ValidationException");

    replicate(&server, &east, &key_id, WEST).await;
    let again = replicate_into(key_id.clone(), WEST).await;
    assert_eq!(again.code, "AlreadyExistsException");
    assert!(
        again.message.contains(&arn_in(WEST, &key_id)),
        "{}",
        again.message
    );
    let from_replica = failure(
        west.replicate_key()
            .key_id(&key_id)
            .replica_region(SOUTH)
            .send()
            .await,
    );
    assert_eq!(from_replica.code, "UnsupportedOperationException");

    // Another account can neither see nor replicate the key.
    let other = server.client_for("444455556666", EAST);
    let cross_account = failure(
        other
            .replicate_key()
            .key_id(arn_in(EAST, &key_id))
            .replica_region(SOUTH)
            .send()
            .await,
    );
    assert_eq!(cross_account.code, "AccessDeniedException");

    east.disable_key()
        .key_id(&key_id)
        .send()
        .await
        .expect("DisableKey");
    assert_eq!(
        replicate_into(key_id.clone(), SOUTH).await.code,
        "DisabledException"
    );
    let (_, _, replicas) = configuration(&describe(&east, &key_id).await);
    assert_eq!(
        replicas,
        vec![WEST.to_owned()],
        "no refused request made a replica"
    );
}

#[tokio::test]
async fn a_primary_with_replicas_waits_for_their_deletion() {
    let server = TestServer::start().await;
    let east = server.client();
    let west = server.client_for("test", WEST);
    let key_id = create_mrk(&east).await;
    replicate(&server, &east, &key_id, WEST).await;

    let scheduled = east
        .schedule_key_deletion()
        .key_id(&key_id)
        .pending_window_in_days(7)
        .send()
        .await
        .expect("ScheduleKeyDeletion of the primary");
    assert_eq!(
        scheduled.key_state(),
        Some(&KeyState::PendingReplicaDeletion)
    );
    assert_eq!(
        scheduled.deletion_date(),
        None,
        "no date while replicas remain"
    );
    assert_eq!(scheduled.pending_window_in_days(), Some(7));
    let primary = describe(&east, &key_id).await;
    assert_eq!(primary.key_state(), Some(&KeyState::PendingReplicaDeletion));
    assert_eq!(primary.pending_deletion_window_in_days(), Some(7));
    assert_eq!(primary.deletion_date(), None);
    let refused = failure(
        east.encrypt()
            .key_id(&key_id)
            .plaintext(Blob::new(b"x".as_slice()))
            .send()
            .await,
    );
    assert_eq!(refused.code, "KMSInvalidStateException");
    assert_eq!(
        failure(
            east.replicate_key()
                .key_id(&key_id)
                .replica_region(SOUTH)
                .send()
                .await
        )
        .code,
        "KMSInvalidStateException"
    );
    // The replica still works, and its primary waits however long it takes.
    let ciphertext = encrypt(&west, &key_id, b"still usable", &[]).await;
    server
        .clock()
        .advance(std::time::Duration::from_secs(60 * 24 * 3600));
    assert_eq!(
        describe(&east, &key_id).await.key_state(),
        Some(&KeyState::PendingReplicaDeletion)
    );
    assert_eq!(decrypt(&west, &ciphertext, &[]).await, b"still usable");

    // Cancelling and scheduling again behaves the same way.
    let cancelled = east
        .cancel_key_deletion()
        .key_id(&key_id)
        .send()
        .await
        .expect("CancelKeyDeletion");
    assert_eq!(cancelled.key_id(), Some(arn_in(EAST, &key_id).as_str()));
    assert_eq!(
        describe(&east, &key_id).await.key_state(),
        Some(&KeyState::Disabled)
    );
    east.schedule_key_deletion()
        .key_id(&key_id)
        .pending_window_in_days(8)
        .send()
        .await
        .expect("ScheduleKeyDeletion again");

    // Deleting the last replica starts the primary's waiting period.
    let replica_scheduled = west
        .schedule_key_deletion()
        .key_id(&key_id)
        .pending_window_in_days(7)
        .send()
        .await
        .expect("ScheduleKeyDeletion of the replica");
    assert_eq!(
        replica_scheduled.key_state(),
        Some(&KeyState::PendingDeletion)
    );
    assert!(replica_scheduled.deletion_date().is_some());
    server
        .clock()
        .advance(std::time::Duration::from_secs(7 * 24 * 3600 + 1));
    let deleted = failure(west.describe_key().key_id(&key_id).send().await);
    assert_eq!(deleted.code, "NotFoundException");
    let primary = describe(&east, &key_id).await;
    assert_eq!(primary.key_state(), Some(&KeyState::PendingDeletion));
    assert_eq!(primary.pending_deletion_window_in_days(), None);
    let expected = server.now_secs() + 8.0 * 24.0 * 3600.0;
    let date = primary
        .deletion_date()
        .expect("a deletion date now")
        .as_secs_f64();
    assert!((date - expected).abs() < 2.0, "{date} vs {expected}");
    assert_eq!(
        configuration(&primary),
        (MultiRegionKeyType::Primary, EAST.to_owned(), Vec::new())
    );
    server
        .clock()
        .advance(std::time::Duration::from_secs(8 * 24 * 3600 + 1));
    assert_eq!(
        failure(east.describe_key().key_id(&key_id).send().await).code,
        "NotFoundException"
    );
}

#[tokio::test]
async fn the_set_survives_a_restart() {
    let data_dir = TempDir::new("multi-region-restart");
    let server = TestServer::start_in(data_dir.path(), |_| {}).await;
    let east = server.client();
    let key_id = create_mrk(&east).await;
    replicate(&server, &east, &key_id, WEST).await;
    let ciphertext = encrypt(&east, &key_id, b"before restart", &[]).await;
    let west = server.client_for("test", WEST);
    assert_eq!(
        describe(&west, &key_id).await.key_state(),
        Some(&KeyState::Enabled)
    );
    server.stop().await;

    let server = TestServer::start_in(data_dir.path(), |_| {}).await;
    let west = server.client_for("test", WEST);
    let replica = describe(&west, &key_id).await;
    assert_eq!(replica.key_state(), Some(&KeyState::Enabled));
    assert_eq!(
        configuration(&replica),
        (
            MultiRegionKeyType::Replica,
            EAST.to_owned(),
            vec![WEST.to_owned()]
        )
    );
    assert_eq!(decrypt(&west, &ciphertext, &[]).await, b"before restart");
}

/// Wraps `material` for ImportKeyMaterial under the public key of a GetParametersForImport response
/// (RSAES_OAEP_SHA_256 with an RSA 2048 wrapping key), as the key's owner does outside KMS.
async fn wrapped_for(client: &Client, key_id: &str, material: &[u8]) -> (Vec<u8>, Vec<u8>) {
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
    let mut out = vec![0u8; public.ciphertext_size()];
    let len = public
        .encrypt(&OAEP_SHA256_MGF1SHA256, material, &mut out, None)
        .expect("RSA-OAEP")
        .len();
    out.truncate(len);
    (parameters.import_token().unwrap().as_ref().to_vec(), out)
}

/// ImportKeyMaterial of `material` that never expires, or expires at `valid_to`; the material's id.
async fn import_into(
    client: &Client,
    key_id: &str,
    material: &[u8],
    valid_to: Option<DateTime>,
) -> Result<String, Failure> {
    let (token, wrapped) = wrapped_for(client, key_id, material).await;
    let request = client
        .import_key_material()
        .key_id(key_id)
        .import_token(Blob::new(token))
        .encrypted_key_material(Blob::new(wrapped));
    let request = match valid_to {
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

/// Multi-Region keys with imported key material, as AWS has them: KMS copies no imported material, the
/// owner imports the same material into the primary and into each replica (each with its own token and
/// expiry), and then a ciphertext made in one Region decrypts in the other. A replica takes only the
/// primary's material, and the keys' states are independent.
#[tokio::test]
async fn imported_material_is_imported_into_each_key_of_the_set() {
    let server = TestServer::start().await;
    let east = server.client();
    let west = server.client_for("test", WEST);
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
    assert!(key_id.starts_with("mrk-"), "{key_id}");
    assert_eq!(
        describe(&east, &key_id).await.key_state(),
        Some(&KeyState::PendingImport)
    );
    // A primary without material cannot be replicated yet.
    let pending = failure(
        east.replicate_key()
            .key_id(&key_id)
            .replica_region(WEST)
            .send()
            .await,
    );
    assert_eq!(pending.code, "KMSInvalidStateException");
    assert!(
        pending.message.contains("pending import"),
        "{}",
        pending.message
    );

    let mut material = vec![0u8; 32];
    aws_lc_rs::rand::fill(&mut material).unwrap();
    let primary_material = import_into(&east, &key_id, &material, None)
        .await
        .expect("import into the primary");
    let ciphertext = encrypt(&east, &key_id, b"made under imported material", &[]).await;

    replicate(&server, &east, &key_id, WEST).await;
    let replica = describe(&west, &key_id).await;
    assert_eq!(replica.key_state(), Some(&KeyState::PendingImport));
    assert_eq!(replica.origin(), Some(&OriginType::External));
    let refused = failure(
        west.decrypt()
            .ciphertext_blob(Blob::new(ciphertext.clone()))
            .send()
            .await,
    );
    assert_eq!(
        refused.code, "KMSInvalidStateException",
        "{}",
        refused.message
    );

    // The replica's token is its own: one issued for the primary does not import into it.
    let (east_token, east_wrapped) = wrapped_for(&east, &key_id, &material).await;
    let foreign = failure(
        west.import_key_material()
            .key_id(&key_id)
            .import_token(Blob::new(east_token))
            .encrypted_key_material(Blob::new(east_wrapped))
            .expiration_model(ExpirationModelType::KeyMaterialDoesNotExpire)
            .send()
            .await,
    );
    assert_eq!(foreign.code, "InvalidImportTokenException");
    // Other material than the primary's is refused, and the replica keeps waiting.
    let mut other = vec![0u8; 32];
    aws_lc_rs::rand::fill(&mut other).unwrap();
    let incorrect = import_into(&west, &key_id, &other, None)
        .await
        .expect_err("other material");
    assert_eq!(incorrect.code, "IncorrectKeyMaterialException");
    assert!(
        incorrect.message.contains("primary key"),
        "{}",
        incorrect.message
    );
    assert_eq!(
        describe(&west, &key_id).await.key_state(),
        Some(&KeyState::PendingImport)
    );

    // The same material, with an expiry of its own: the replica is Enabled with the primary's material id.
    let valid_to = DateTime::from_secs(server.now_secs() as i64 + 2 * 86_400);
    let replica_material = import_into(&west, &key_id, &material, Some(valid_to))
        .await
        .expect("import into the replica");
    assert_eq!(replica_material, primary_material);
    let replica = describe(&west, &key_id).await;
    assert_eq!(replica.key_state(), Some(&KeyState::Enabled));
    assert_eq!(
        replica.current_key_material_id(),
        Some(primary_material.as_str())
    );
    assert_eq!(
        replica.expiration_model(),
        Some(&ExpirationModelType::KeyMaterialExpires)
    );
    assert_eq!(
        describe(&east, &key_id).await.expiration_model(),
        Some(&ExpirationModelType::KeyMaterialDoesNotExpire)
    );
    assert_eq!(
        decrypt(&west, &ciphertext, &[]).await,
        b"made under imported material"
    );
    let from_west = encrypt(&west, &key_id, b"made in the replica Region", &[]).await;
    assert_eq!(
        decrypt(&east, &from_west, &[]).await,
        b"made in the replica Region"
    );

    // States are independent: deleting the primary's material leaves the replica working...
    east.delete_imported_key_material()
        .key_id(&key_id)
        .send()
        .await
        .expect("DeleteImportedKeyMaterial on the primary");
    assert_eq!(
        describe(&east, &key_id).await.key_state(),
        Some(&KeyState::PendingImport)
    );
    assert_eq!(
        decrypt(&west, &ciphertext, &[]).await,
        b"made under imported material"
    );
    import_into(&east, &key_id, &material, None)
        .await
        .expect("the primary takes its material back");
    // ...and the replica's material expiring leaves the primary working.
    server.clock().advance(Duration::from_secs(3 * 86_400));
    assert_eq!(
        describe(&west, &key_id).await.key_state(),
        Some(&KeyState::PendingImport)
    );
    assert_eq!(
        describe(&east, &key_id).await.key_state(),
        Some(&KeyState::Enabled)
    );
    assert_eq!(
        decrypt(&east, &from_west, &[]).await,
        b"made in the replica Region"
    );
}
