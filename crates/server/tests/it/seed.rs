//! Seed files: keys with fixed ids and preset material, created at start-up and never overwritten.

use std::collections::BTreeMap;
use std::path::PathBuf;

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::KeyState;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::harness::{TempDir, TestServer, decrypt, encrypt, error_code, key_arn};

const KEY_ID: &str = "11111111-2222-4333-8444-555555555555";

fn material(byte: u8) -> String {
    STANDARD.encode([byte; 32])
}

/// Writes `contents` as a seed file in `dir` and returns its path.
fn seed_file(dir: &TempDir, contents: &str) -> PathBuf {
    let path = dir.path().join("seed.toml");
    std::fs::write(&path, contents).expect("write the seed file");
    path
}

fn seed_with_material(byte: u8) -> String {
    format!(
        r#"
[[key]]
id = "{KEY_ID}"
description = "seeded"
material_base64 = "{}"
aliases = ["alias/seeded"]
tags = {{ team = "qa", env = "test" }}
"#,
        material(byte)
    )
}

async fn start_seeded(seed: &TempDir, data: &TempDir, contents: &str) -> TestServer {
    let path = seed_file(seed, contents);
    TestServer::start_in(data.path(), |config| config.seed_file = Some(path)).await
}

#[tokio::test]
async fn a_seeded_key_has_its_id_alias_tags_and_description() {
    let seed = TempDir::new("seed-file");
    let data = TempDir::new("seed-data");
    let server = start_seeded(&seed, &data, &seed_with_material(7)).await;
    let client = server.client();

    let described = client
        .describe_key()
        .key_id("alias/seeded")
        .send()
        .await
        .expect("the alias resolves");
    let tags = client
        .list_resource_tags()
        .key_id(KEY_ID)
        .send()
        .await
        .expect("ListResourceTags");

    let metadata = described.key_metadata().expect("KeyMetadata");
    assert_eq!(metadata.key_id(), KEY_ID);
    assert_eq!(metadata.arn(), Some(key_arn(KEY_ID).as_str()));
    assert_eq!(metadata.description(), Some("seeded"));
    assert_eq!(metadata.key_state(), Some(&KeyState::Enabled));
    let tags: BTreeMap<&str, &str> = tags
        .tags()
        .iter()
        .map(|t| (t.tag_key(), t.tag_value()))
        .collect();
    assert_eq!(tags, BTreeMap::from([("env", "test"), ("team", "qa")]));
}

#[tokio::test]
async fn the_same_seeded_material_decrypts_on_a_second_fresh_server() {
    let seed = TempDir::new("seed-file");
    let first_data = TempDir::new("seed-first");
    let second_data = TempDir::new("seed-second");
    let first = start_seeded(&seed, &first_data, &seed_with_material(7)).await;
    let second = start_seeded(&seed, &second_data, &seed_with_material(7)).await;

    let from_first = encrypt(
        &first.client(),
        "alias/seeded",
        b"portable",
        &[("seed", "yes")],
    )
    .await;
    let from_second = encrypt(&second.client(), KEY_ID, b"and back", &[]).await;
    let first_material = first
        .client()
        .describe_key()
        .key_id(KEY_ID)
        .send()
        .await
        .expect("DescribeKey");
    let second_material = second
        .client()
        .describe_key()
        .key_id(KEY_ID)
        .send()
        .await
        .expect("DescribeKey");

    assert_eq!(
        decrypt(&second.client(), &from_first, &[("seed", "yes")]).await,
        b"portable"
    );
    assert_eq!(
        decrypt(&first.client(), &from_second, &[]).await,
        b"and back"
    );
    let first_material = first_material
        .key_metadata()
        .and_then(|m| m.current_key_material_id())
        .map(str::to_owned);
    let second_material = second_material
        .key_metadata()
        .and_then(|m| m.current_key_material_id())
        .map(str::to_owned);
    assert!(first_material.is_some());
    assert_eq!(
        first_material, second_material,
        "the same id and material give the same KeyMaterialId"
    );
}

#[tokio::test]
async fn different_seeded_material_does_not_decrypt() {
    let seed_a = TempDir::new("seed-file-a");
    let seed_b = TempDir::new("seed-file-b");
    let first_data = TempDir::new("seed-first");
    let second_data = TempDir::new("seed-second");
    let first = start_seeded(&seed_a, &first_data, &seed_with_material(7)).await;
    let second = start_seeded(&seed_b, &second_data, &seed_with_material(8)).await;

    let ciphertext = encrypt(&first.client(), KEY_ID, b"not portable", &[]).await;
    let code = error_code(
        second
            .client()
            .decrypt()
            .ciphertext_blob(Blob::new(ciphertext))
            .send()
            .await,
    );

    assert_eq!(code, "InvalidCiphertextException");
}

#[tokio::test]
async fn seed_options_set_state_rotation_and_namespace() {
    let seed = TempDir::new("seed-file");
    let data = TempDir::new("seed-data");
    let contents = r#"
[[key]]
id = "22222222-2222-4333-8444-555555555555"
enabled = false

[[key]]
id = "33333333-2222-4333-8444-555555555555"
rotation_period_days = 90

[[key]]
id = "44444444-2222-4333-8444-555555555555"
account = "444455556666"
region = "eu-west-1"
aliases = ["alias/elsewhere"]
"#;
    let server = start_seeded(&seed, &data, contents).await;
    let client = server.client();
    let elsewhere = server.client_for("444455556666", "eu-west-1");

    let disabled = client
        .describe_key()
        .key_id("22222222-2222-4333-8444-555555555555")
        .send()
        .await
        .expect("exists");
    let rotation = client
        .get_key_rotation_status()
        .key_id("33333333-2222-4333-8444-555555555555")
        .send()
        .await
        .expect("status");
    let foreign = elsewhere
        .describe_key()
        .key_id("alias/elsewhere")
        .send()
        .await
        .expect("visible in its namespace");
    let hidden = error_code(
        client
            .describe_key()
            .key_id("44444444-2222-4333-8444-555555555555")
            .send()
            .await,
    );

    assert_eq!(
        disabled.key_metadata().and_then(|m| m.key_state()),
        Some(&KeyState::Disabled)
    );
    assert!(rotation.key_rotation_enabled());
    assert_eq!(rotation.rotation_period_in_days(), Some(90));
    let foreign = foreign.key_metadata().expect("KeyMetadata");
    assert_eq!(
        foreign.arn(),
        Some("arn:aws:kms:eu-west-1:444455556666:key/44444444-2222-4333-8444-555555555555")
    );
    assert_eq!(
        hidden, "NotFoundException",
        "the default namespace does not see it"
    );
}

#[tokio::test]
async fn restarting_with_the_same_seed_keeps_later_changes() {
    let seed = TempDir::new("seed-file");
    let data = TempDir::new("seed-data");
    let server = start_seeded(&seed, &data, &seed_with_material(7)).await;
    let client = server.client();
    let ciphertext = encrypt(&client, KEY_ID, b"kept", &[]).await;
    client
        .disable_key()
        .key_id(KEY_ID)
        .send()
        .await
        .expect("DisableKey");
    client
        .update_key_description()
        .key_id(KEY_ID)
        .description("changed")
        .send()
        .await
        .expect("description");
    client
        .untag_resource()
        .key_id(KEY_ID)
        .tag_keys("env")
        .send()
        .await
        .expect("UntagResource");
    server.stop().await;

    let restarted = start_seeded(&seed, &data, &seed_with_material(7)).await;
    let client = restarted.client();
    let described = client
        .describe_key()
        .key_id(KEY_ID)
        .send()
        .await
        .expect("DescribeKey");
    let tags = client
        .list_resource_tags()
        .key_id(KEY_ID)
        .send()
        .await
        .expect("ListResourceTags");
    client
        .enable_key()
        .key_id(KEY_ID)
        .send()
        .await
        .expect("EnableKey");

    let metadata = described.key_metadata().expect("KeyMetadata");
    assert_eq!(
        metadata.key_state(),
        Some(&KeyState::Disabled),
        "the seed did not re-enable the key"
    );
    assert_eq!(
        metadata.description(),
        Some("changed"),
        "the seed did not restore the description"
    );
    let keys: Vec<&str> = tags.tags().iter().map(|t| t.tag_key()).collect();
    assert_eq!(
        keys,
        vec!["team"],
        "the seed did not restore the removed tag"
    );
    assert_eq!(decrypt(&client, &ciphertext, &[]).await, b"kept");
}

#[tokio::test]
async fn seeded_material_of_the_wrong_length_stops_the_server() {
    let seed = TempDir::new("seed-file");
    let data = TempDir::new("seed-data");
    let path = seed_file(
        &seed,
        &format!(
            "[[key]]\nid = \"{KEY_ID}\"\nmaterial_base64 = \"{}\"\n",
            STANDARD.encode([1u8; 16])
        ),
    );

    let failure =
        TestServer::start_failure(data.path(), |config| config.seed_file = Some(path)).await;

    assert!(
        failure.contains("32 bytes"),
        "the error explains the length: {failure}"
    );
}
