//! Durability with the real binary: everything acknowledged survives a graceful restart and a SIGKILL,
//! and a production (non-dev) start writes private administrator credentials that work.

use std::collections::{BTreeMap, HashSet};
use std::os::unix::fs::PermissionsExt;

use aws_sdk_kms::Client;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeyState, Tag};

use crate::harness::{
    ACCOUNT, ProcessServer, REGION, TempDir, create_key, decrypt, encrypt, error_code, sdk_client,
};

/// What `populate` wrote, for `verify` to find again.
struct World {
    main_key: String,
    disabled_key: String,
    pending_key: String,
    policy: String,
    materials: Vec<String>,
    ciphertext: Vec<u8>,
    bulk_keys: Vec<String>,
}

const CONTEXT: &[(&str, &str)] = &[("durable", "yes")];

async fn populate(client: &Client) -> World {
    let (main_key, _) = create_key(client, "main key").await;
    client
        .create_alias()
        .alias_name("alias/durable")
        .target_key_id(&main_key)
        .send()
        .await
        .expect("CreateAlias");
    client
        .create_alias()
        .alias_name("alias/durable-2")
        .target_key_id(&main_key)
        .send()
        .await
        .expect("CreateAlias");
    let tag = |k: &str, v: &str| {
        Tag::builder()
            .tag_key(k)
            .tag_value(v)
            .build()
            .expect("a tag")
    };
    client
        .tag_resource()
        .key_id(&main_key)
        .tags(tag("team", "vault"))
        .tags(tag("tier", "1"))
        .send()
        .await
        .expect("tag");
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "durable",
            "Effect": "Allow",
            "Principal": { "AWS": format!("arn:aws:iam::{ACCOUNT}:root") },
            "Action": "kms:*",
            "Resource": "*",
        }],
    })
    .to_string();
    client
        .put_key_policy()
        .key_id(&main_key)
        .policy(&policy)
        .send()
        .await
        .expect("PutKeyPolicy");
    client
        .enable_key_rotation()
        .key_id(&main_key)
        .rotation_period_in_days(180)
        .send()
        .await
        .expect("rotation");
    client
        .update_key_description()
        .key_id(&main_key)
        .description("described")
        .send()
        .await
        .expect("description");
    let ciphertext = encrypt(client, "alias/durable", b"survives restarts", CONTEXT).await;
    client
        .rotate_key_on_demand()
        .key_id(&main_key)
        .send()
        .await
        .expect("RotateKeyOnDemand");
    let materials = all_materials(client, &main_key).await;

    let (disabled_key, _) = create_key(client, "disabled key").await;
    client
        .disable_key()
        .key_id(&disabled_key)
        .send()
        .await
        .expect("DisableKey");
    let (pending_key, _) = create_key(client, "pending key").await;
    client
        .schedule_key_deletion()
        .key_id(&pending_key)
        .pending_window_in_days(10)
        .send()
        .await
        .expect("schedule");

    // A burst of writes, each acknowledged before the next, right before the server goes away.
    let mut bulk_keys = Vec::new();
    for index in 0..10 {
        let (key_id, _) = create_key(client, &format!("bulk {index}")).await;
        client
            .create_alias()
            .alias_name(format!("alias/bulk-{index}"))
            .target_key_id(&key_id)
            .send()
            .await
            .expect("alias");
        bulk_keys.push(key_id);
    }
    World {
        main_key,
        disabled_key,
        pending_key,
        policy,
        materials,
        ciphertext,
        bulk_keys,
    }
}

async fn all_materials(client: &Client, key_id: &str) -> Vec<String> {
    let output = client
        .list_key_rotations()
        .key_id(key_id)
        .include_key_material(aws_sdk_kms::types::IncludeKeyMaterial::AllKeyMaterial)
        .send()
        .await
        .expect("ListKeyRotations succeeds");
    output
        .rotations()
        .iter()
        .filter_map(|r| r.key_material_id().map(str::to_owned))
        .collect()
}

async fn verify(client: &Client, world: &World) {
    let main = client
        .describe_key()
        .key_id("alias/durable")
        .send()
        .await
        .expect("the alias resolves");
    let main = main.key_metadata().expect("KeyMetadata");
    assert_eq!(main.key_id(), world.main_key);
    assert_eq!(main.description(), Some("described"));
    assert_eq!(main.key_state(), Some(&KeyState::Enabled));

    let aliases = client
        .list_aliases()
        .key_id(&world.main_key)
        .send()
        .await
        .expect("ListAliases");
    let names: HashSet<&str> = aliases
        .aliases()
        .iter()
        .filter_map(|a| a.alias_name())
        .collect();
    assert_eq!(names, HashSet::from(["alias/durable", "alias/durable-2"]));

    let tags = client
        .list_resource_tags()
        .key_id(&world.main_key)
        .send()
        .await
        .expect("ListResourceTags");
    let tags: BTreeMap<&str, &str> = tags
        .tags()
        .iter()
        .map(|t| (t.tag_key(), t.tag_value()))
        .collect();
    assert_eq!(tags, BTreeMap::from([("team", "vault"), ("tier", "1")]));

    let policy = client
        .get_key_policy()
        .key_id(&world.main_key)
        .send()
        .await
        .expect("GetKeyPolicy");
    assert_eq!(policy.policy(), Some(world.policy.as_str()));

    let rotation = client
        .get_key_rotation_status()
        .key_id(&world.main_key)
        .send()
        .await
        .expect("status");
    assert!(rotation.key_rotation_enabled());
    assert_eq!(rotation.rotation_period_in_days(), Some(180));
    assert_eq!(
        all_materials(client, &world.main_key).await,
        world.materials,
        "every key material survives"
    );

    assert_eq!(
        decrypt(client, &world.ciphertext, CONTEXT).await,
        b"survives restarts"
    );
    let fresh = encrypt(client, &world.main_key, b"after restart", &[]).await;
    assert_eq!(decrypt(client, &fresh, &[]).await, b"after restart");

    let disabled = client
        .describe_key()
        .key_id(&world.disabled_key)
        .send()
        .await
        .expect("DescribeKey");
    assert_eq!(
        disabled.key_metadata().and_then(|m| m.key_state()),
        Some(&KeyState::Disabled)
    );
    let pending = client
        .describe_key()
        .key_id(&world.pending_key)
        .send()
        .await
        .expect("DescribeKey");
    let pending = pending.key_metadata().expect("KeyMetadata");
    assert_eq!(pending.key_state(), Some(&KeyState::PendingDeletion));
    assert!(pending.deletion_date().is_some());

    let listed: HashSet<String> = {
        let page = client
            .list_keys()
            .limit(1000)
            .send()
            .await
            .expect("ListKeys");
        page.keys()
            .iter()
            .filter_map(|k| k.key_id().map(str::to_owned))
            .collect()
    };
    for (index, key_id) in world.bulk_keys.iter().enumerate() {
        assert!(listed.contains(key_id), "bulk key {index} survives");
        let by_alias = client
            .describe_key()
            .key_id(format!("alias/bulk-{index}"))
            .send()
            .await
            .expect("bulk alias");
        assert_eq!(
            by_alias.key_metadata().map(|m| m.key_id()),
            Some(key_id.as_str())
        );
    }
    assert_eq!(
        listed.len(),
        3 + world.bulk_keys.len(),
        "no key appeared or vanished"
    );
}

#[tokio::test]
async fn everything_survives_a_graceful_restart() {
    let data_dir = TempDir::new("sigterm");
    let server = ProcessServer::start_dev(data_dir.path());
    let world = populate(&server.client()).await;

    let status = server.terminate();
    let restarted = ProcessServer::start_dev(data_dir.path());
    verify(&restarted.client(), &world).await;

    assert!(
        status.success(),
        "SIGTERM makes the server exit cleanly: {status:?}"
    );
    let restarted_status = restarted.terminate();
    assert!(restarted_status.success(), "{restarted_status:?}");
}

#[tokio::test]
async fn acknowledged_writes_survive_sigkill() {
    let data_dir = TempDir::new("sigkill");
    let server = ProcessServer::start_dev(data_dir.path());
    let world = populate(&server.client()).await;

    server.kill9();
    let restarted = ProcessServer::start_dev(data_dir.path());
    verify(&restarted.client(), &world).await;

    // A second crash, this time right after a single write, loses nothing either.
    let (late_key, _) = create_key(&restarted.client(), "written just before the crash").await;
    restarted.kill9();
    let again = ProcessServer::start_dev(data_dir.path());
    let described = again.client().describe_key().key_id(&late_key).send().await;
    assert!(
        described.is_ok(),
        "the last acknowledged key survives: {described:?}"
    );
}

/// Reads `[strongroom]`'s access key and secret from an AWS credentials file.
fn parse_credentials(text: &str) -> (String, String) {
    let mut in_profile = false;
    let mut access_key = None;
    let mut secret = None;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_profile = line == "[strongroom]";
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        if !in_profile {
            continue;
        }
        match name.trim() {
            "aws_access_key_id" => access_key = Some(value.trim().to_owned()),
            "aws_secret_access_key" => secret = Some(value.trim().to_owned()),
            _ => {}
        }
    }
    (
        access_key.expect("an aws_access_key_id"),
        secret.expect("an aws_secret_access_key"),
    )
}

#[tokio::test]
async fn a_production_start_writes_private_admin_credentials_that_work() {
    let data_dir = TempDir::new("admin");
    let server = ProcessServer::start(data_dir.path(), &[]);
    let path = data_dir
        .path()
        .join(strongroom_server::ADMIN_CREDENTIALS_FILE);

    let mode = std::fs::metadata(&path)
        .expect("the credentials file exists")
        .permissions()
        .mode();
    let text = std::fs::read_to_string(&path).expect("read the credentials file");
    let (access_key, secret) = parse_credentials(&text);
    let admin = sdk_client(server.address(), &access_key, &secret, REGION);
    let (key_id, arn) = create_key(&admin, "admin's key").await;
    let listed = admin
        .list_keys()
        .send()
        .await
        .expect("ListKeys as the administrator");
    let dev = error_code(server.client().list_keys().send().await);
    let dev_account = error_code(
        sdk_client(server.address(), "444455556666", "test", REGION)
            .list_keys()
            .send()
            .await,
    );
    let wrong_secret = error_code(
        sdk_client(server.address(), &access_key, "wrong", REGION)
            .list_keys()
            .send()
            .await,
    );

    assert_eq!(
        mode & 0o777,
        0o600,
        "only the owner may read the credentials: {:o}",
        mode & 0o777
    );
    assert!(!access_key.is_empty() && !secret.is_empty());
    assert!(
        arn.starts_with(&format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/")),
        "{arn}"
    );
    assert!(
        listed
            .keys()
            .iter()
            .any(|k| k.key_id() == Some(key_id.as_str()))
    );
    assert_eq!(
        dev, "UnrecognizedClientException",
        "without --dev, test/test is not accepted"
    );
    assert_eq!(
        dev_account, "UnrecognizedClientException",
        "without --dev, account ids are not access keys"
    );
    assert_eq!(wrong_secret, "InvalidSignatureException");

    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    let restarted = ProcessServer::start(data_dir.path(), &[]);
    let text_after = std::fs::read_to_string(&path).expect("read the credentials file");
    let admin = sdk_client(restarted.address(), &access_key, &secret, REGION);
    let described = admin.describe_key().key_id(&key_id).send().await;
    let encrypted = admin
        .encrypt()
        .key_id(&key_id)
        .plaintext(Blob::new(b"x".as_slice()))
        .send()
        .await;

    assert_eq!(
        text_after, text,
        "a restart keeps the same administrator credentials"
    );
    assert!(
        described.is_ok(),
        "the administrator still works after a restart: {described:?}"
    );
    assert!(encrypted.is_ok(), "{encrypted:?}");
}
