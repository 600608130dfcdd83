//! Key rotation through the SDK: EnableKeyRotation, DisableKeyRotation, GetKeyRotationStatus,
//! RotateKeyOnDemand, ListKeyRotations, and automatic rotation once the clock passes NextRotationDate.

use std::time::Duration;

use aws_sdk_kms::Client;
use aws_sdk_kms::types::{IncludeKeyMaterial, KeyMaterialState, RotationType, RotationsListEntry};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::harness::{TempDir, TestServer, create_key, decrypt, encrypt, error_code};

const DAY: f64 = 86_400.0;

async fn current_material(client: &Client, key_id: &str) -> String {
    let described = client
        .describe_key()
        .key_id(key_id)
        .send()
        .await
        .expect("DescribeKey succeeds");
    let metadata = described.key_metadata().expect("KeyMetadata");
    metadata
        .current_key_material_id()
        .expect("a CurrentKeyMaterialId")
        .to_owned()
}

async fn rotations(
    client: &Client,
    key_id: &str,
    include: Option<IncludeKeyMaterial>,
) -> Vec<RotationsListEntry> {
    let output = client
        .list_key_rotations()
        .key_id(key_id)
        .set_include_key_material(include)
        .send()
        .await
        .expect("ListKeyRotations succeeds");
    assert!(!output.truncated());
    output.rotations().to_vec()
}

/// The KeyMaterialId that Decrypt reports for `ciphertext`; the SDK in use predates that member.
async fn decrypting_material(
    server: &TestServer,
    ciphertext: &[u8],
    context: &[(&str, &str)],
) -> String {
    let context: serde_json::Map<String, serde_json::Value> = context
        .iter()
        .map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v)))
        .collect();
    let body = serde_json::json!({ "CiphertextBlob": STANDARD.encode(ciphertext), "EncryptionContext": context });
    let (status, response) = server
        .raw("TrentService.Decrypt", &body.to_string(), true)
        .await;
    assert_eq!(status, http::StatusCode::OK, "Decrypt succeeds: {response}");
    let material = response["KeyMaterialId"]
        .as_str()
        .expect("Decrypt reports a KeyMaterialId")
        .to_owned();
    assert!(
        material.len() == 64
            && material
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "a KeyMaterialId is 64 lowercase hex digits: {material}"
    );
    material
}

#[tokio::test]
async fn enable_and_disable_rotation_show_in_the_status() {
    let server = TestServer::start().await;
    let client = server.client();
    let (key_id, arn) = create_key(&client, "rotating").await;
    let now = server.now_secs();

    let initial = client
        .get_key_rotation_status()
        .key_id(&key_id)
        .send()
        .await
        .expect("status");
    client
        .enable_key_rotation()
        .key_id(&key_id)
        .send()
        .await
        .expect("EnableKeyRotation succeeds");
    let enabled = client
        .get_key_rotation_status()
        .key_id(&arn)
        .send()
        .await
        .expect("status");
    client
        .disable_key_rotation()
        .key_id(&key_id)
        .send()
        .await
        .expect("DisableKeyRotation succeeds");
    let disabled = client
        .get_key_rotation_status()
        .key_id(&key_id)
        .send()
        .await
        .expect("status");

    assert!(
        !initial.key_rotation_enabled(),
        "rotation is off for a new key"
    );
    assert!(enabled.key_rotation_enabled());
    assert_eq!(
        enabled.rotation_period_in_days(),
        Some(365),
        "the default period is 365 days"
    );
    let next = enabled
        .next_rotation_date()
        .expect("a NextRotationDate")
        .as_secs_f64();
    assert!(
        (next - (now + 365.0 * DAY)).abs() < 60.0,
        "the first rotation is a period from now"
    );
    assert_eq!(enabled.key_id(), Some(arn.as_str()));
    assert!(!disabled.key_rotation_enabled());
    assert!(disabled.next_rotation_date().is_none());
}

#[tokio::test]
async fn rotation_period_must_be_90_to_2560_days() {
    let server = TestServer::start().await;
    let client = server.client();
    let (key_id, _) = create_key(&client, "rotating").await;

    let too_short = error_code(
        client
            .enable_key_rotation()
            .key_id(&key_id)
            .rotation_period_in_days(89)
            .send()
            .await,
    );
    let too_long = error_code(
        client
            .enable_key_rotation()
            .key_id(&key_id)
            .rotation_period_in_days(2561)
            .send()
            .await,
    );
    let untouched = client
        .get_key_rotation_status()
        .key_id(&key_id)
        .send()
        .await
        .expect("status");
    client
        .enable_key_rotation()
        .key_id(&key_id)
        .rotation_period_in_days(90)
        .send()
        .await
        .expect("90 days is allowed");
    let shortest = client
        .get_key_rotation_status()
        .key_id(&key_id)
        .send()
        .await
        .expect("status");
    client
        .enable_key_rotation()
        .key_id(&key_id)
        .rotation_period_in_days(2560)
        .send()
        .await
        .expect("2560 is allowed");
    let longest = client
        .get_key_rotation_status()
        .key_id(&key_id)
        .send()
        .await
        .expect("status");

    assert_eq!(too_short, "ValidationException");
    assert_eq!(too_long, "ValidationException");
    assert!(
        !untouched.key_rotation_enabled(),
        "a refused request changes nothing"
    );
    assert_eq!(shortest.rotation_period_in_days(), Some(90));
    assert_eq!(longest.rotation_period_in_days(), Some(2560));
}

#[tokio::test]
async fn rotate_on_demand_keeps_old_ciphertexts_decryptable() {
    let server = TestServer::start().await;
    let client = server.client();
    let (key_id, _) = create_key(&client, "rotating").await;
    let original = current_material(&client, &key_id).await;
    let old_ciphertext = encrypt(&client, &key_id, b"before rotation", &[("when", "before")]).await;

    let rotated = client
        .rotate_key_on_demand()
        .key_id(&key_id)
        .send()
        .await
        .expect("RotateKeyOnDemand succeeds");
    let new_material = current_material(&client, &key_id).await;
    let new_ciphertext = encrypt(&client, &key_id, b"after rotation", &[]).await;

    assert!(
        rotated.key_id().is_some_and(|id| id.ends_with(&key_id)),
        "names the key: {:?}",
        rotated.key_id()
    );
    assert_ne!(new_material, original, "rotation makes new key material");
    assert_eq!(
        decrypt(&client, &old_ciphertext, &[("when", "before")]).await,
        b"before rotation"
    );
    assert_eq!(
        decrypt(&client, &new_ciphertext, &[]).await,
        b"after rotation"
    );
    assert_eq!(
        decrypting_material(&server, &old_ciphertext, &[("when", "before")]).await,
        original
    );
    assert_eq!(
        decrypting_material(&server, &new_ciphertext, &[]).await,
        new_material
    );
}

#[tokio::test]
async fn list_key_rotations_shows_rotations_and_optionally_the_original_material() {
    let server = TestServer::start().await;
    let client = server.client();
    let (key_id, _) = create_key(&client, "rotating").await;
    let original = current_material(&client, &key_id).await;

    let before = rotations(&client, &key_id, None).await;
    client
        .rotate_key_on_demand()
        .key_id(&key_id)
        .send()
        .await
        .expect("RotateKeyOnDemand succeeds");
    let current = current_material(&client, &key_id).await;
    let only_rotations = rotations(&client, &key_id, None).await;
    let explicit = rotations(&client, &key_id, Some(IncludeKeyMaterial::RotationsOnly)).await;
    let everything = rotations(&client, &key_id, Some(IncludeKeyMaterial::AllKeyMaterial)).await;

    assert!(before.is_empty(), "a new key has no rotations: {before:?}");
    assert_eq!(only_rotations.len(), 1);
    assert_eq!(only_rotations[0].key_material_id(), Some(current.as_str()));
    assert_eq!(
        only_rotations[0].rotation_type(),
        Some(&RotationType::OnDemand)
    );
    assert_eq!(
        only_rotations[0].key_material_state(),
        Some(&KeyMaterialState::Current)
    );
    assert_eq!(only_rotations[0].key_id(), Some(key_id.as_str()));
    assert!(only_rotations[0].rotation_date().is_some());
    assert_eq!(explicit, only_rotations);
    let materials: Vec<Option<&str>> = everything
        .iter()
        .map(|entry| entry.key_material_id())
        .collect();
    assert_eq!(
        materials,
        vec![Some(original.as_str()), Some(current.as_str())],
        "oldest first, original included"
    );
    assert_eq!(
        everything[0].key_material_state(),
        Some(&KeyMaterialState::NonCurrent)
    );
    assert_eq!(
        everything[1].key_material_state(),
        Some(&KeyMaterialState::Current)
    );
}

#[tokio::test]
async fn rotation_happens_once_the_clock_passes_the_next_rotation_date() {
    let server = TestServer::start().await;
    let client = server.client();
    let (key_id, _) = create_key(&client, "rotating").await;
    let original = current_material(&client, &key_id).await;
    let old_ciphertext = encrypt(&client, &key_id, b"before", &[]).await;
    client
        .enable_key_rotation()
        .key_id(&key_id)
        .rotation_period_in_days(90)
        .send()
        .await
        .expect("enable rotation");
    let status = client
        .get_key_rotation_status()
        .key_id(&key_id)
        .send()
        .await
        .expect("status");
    let first_due = status
        .next_rotation_date()
        .expect("a NextRotationDate")
        .as_secs_f64();

    server.clock().advance(Duration::from_secs(89 * 86_400));
    let not_yet = current_material(&client, &key_id).await;
    server.clock().advance(Duration::from_secs(2 * 86_400));
    let rotated = current_material(&client, &key_id).await;
    let listed = rotations(&client, &key_id, None).await;
    let after = client
        .get_key_rotation_status()
        .key_id(&key_id)
        .send()
        .await
        .expect("status");

    assert_eq!(not_yet, original, "no rotation before NextRotationDate");
    assert_ne!(rotated, original, "rotated once NextRotationDate passed");
    assert_eq!(listed.len(), 1, "one rotation: {listed:?}");
    assert_eq!(listed[0].rotation_type(), Some(&RotationType::Automatic));
    assert_eq!(listed[0].key_material_id(), Some(rotated.as_str()));
    let next = after
        .next_rotation_date()
        .expect("a NextRotationDate")
        .as_secs_f64();
    assert!(
        next > server.now_secs(),
        "the next rotation is in the future"
    );
    assert!(
        (next - (first_due + 90.0 * DAY)).abs() < 60.0,
        "the next rotation is one period later"
    );
    assert_eq!(
        decrypt(&client, &old_ciphertext, &[]).await,
        b"before",
        "old ciphertexts still decrypt"
    );
    let new_ciphertext = encrypt(&client, &key_id, b"after", &[]).await;
    assert_eq!(
        decrypting_material(&server, &new_ciphertext, &[]).await,
        rotated
    );
}

#[tokio::test]
async fn disabled_keys_do_not_rotate_until_enabled_again() {
    let server = TestServer::start().await;
    let client = server.client();
    let (key_id, _) = create_key(&client, "rotating").await;
    let original = current_material(&client, &key_id).await;
    client
        .enable_key_rotation()
        .key_id(&key_id)
        .rotation_period_in_days(90)
        .send()
        .await
        .expect("enable rotation");
    client
        .disable_key()
        .key_id(&key_id)
        .send()
        .await
        .expect("DisableKey succeeds");

    server.clock().advance(Duration::from_secs(100 * 86_400));
    let while_disabled = current_material(&client, &key_id).await;
    client
        .enable_key()
        .key_id(&key_id)
        .send()
        .await
        .expect("EnableKey succeeds");
    let after_enable = current_material(&client, &key_id).await;

    assert_eq!(while_disabled, original, "a disabled key does not rotate");
    assert_ne!(
        after_enable, original,
        "an overdue rotation happens once the key is enabled"
    );
}

#[tokio::test]
async fn rotation_operations_follow_the_key_state_table() {
    let server = TestServer::start().await;
    let client = server.client();
    let (disabled_id, disabled_arn) = create_key(&client, "disabled").await;
    client
        .disable_key()
        .key_id(&disabled_id)
        .send()
        .await
        .expect("DisableKey succeeds");
    let (pending_id, pending_arn) = create_key(&client, "pending").await;
    client
        .schedule_key_deletion()
        .key_id(&pending_id)
        .pending_window_in_days(7)
        .send()
        .await
        .expect("schedule");

    let enable_disabled = crate::harness::failure(
        client
            .enable_key_rotation()
            .key_id(&disabled_id)
            .send()
            .await,
    );
    let disable_disabled = error_code(
        client
            .disable_key_rotation()
            .key_id(&disabled_id)
            .send()
            .await,
    );
    let on_demand_disabled = error_code(
        client
            .rotate_key_on_demand()
            .key_id(&disabled_id)
            .send()
            .await,
    );
    let status_disabled = client
        .get_key_rotation_status()
        .key_id(&disabled_id)
        .send()
        .await;
    let enable_pending = crate::harness::failure(
        client
            .enable_key_rotation()
            .key_id(&pending_id)
            .send()
            .await,
    );
    let on_demand_pending = error_code(
        client
            .rotate_key_on_demand()
            .key_id(&pending_id)
            .send()
            .await,
    );
    let status_pending = client
        .get_key_rotation_status()
        .key_id(&pending_id)
        .send()
        .await;

    assert_eq!(enable_disabled.code, "DisabledException");
    assert_eq!(
        enable_disabled.message,
        format!("{disabled_arn} is disabled.")
    );
    assert_eq!(disable_disabled, "DisabledException");
    assert_eq!(on_demand_disabled, "DisabledException");
    assert!(
        status_disabled.is_ok(),
        "GetKeyRotationStatus works on disabled keys: {status_disabled:?}"
    );
    assert_eq!(enable_pending.code, "KMSInvalidStateException");
    assert_eq!(
        enable_pending.message,
        format!("{pending_arn} is pending deletion.")
    );
    assert_eq!(on_demand_pending, "KMSInvalidStateException");
    assert!(
        status_pending.is_ok(),
        "GetKeyRotationStatus works on keys pending deletion: {status_pending:?}"
    );
}

#[tokio::test]
async fn rotation_status_is_false_while_the_key_is_pending_deletion() {
    let server = TestServer::start().await;
    let client = server.client();
    let (key_id, _) = create_key(&client, "rotating, then deleted").await;
    client
        .enable_key_rotation()
        .key_id(&key_id)
        .send()
        .await
        .expect("EnableKeyRotation succeeds");
    client
        .schedule_key_deletion()
        .key_id(&key_id)
        .pending_window_in_days(7)
        .send()
        .await
        .expect("ScheduleKeyDeletion succeeds");
    let pending = client
        .get_key_rotation_status()
        .key_id(&key_id)
        .send()
        .await
        .expect("GetKeyRotationStatus works on keys pending deletion");
    client
        .cancel_key_deletion()
        .key_id(&key_id)
        .send()
        .await
        .expect("CancelKeyDeletion succeeds");
    let cancelled = client
        .get_key_rotation_status()
        .key_id(&key_id)
        .send()
        .await
        .expect("status");

    assert!(
        !pending.key_rotation_enabled(),
        "a key pending deletion reports rotation off"
    );
    assert_eq!(pending.rotation_period_in_days(), None);
    assert_eq!(pending.next_rotation_date(), None);
    assert!(
        cancelled.key_rotation_enabled(),
        "cancelling the deletion brings the rotation setting back"
    );
    assert_eq!(cancelled.rotation_period_in_days(), Some(365));
}

#[tokio::test]
async fn list_key_rotations_pages_through_every_rotation_once() {
    let server = TestServer::start().await;
    let client = server.client();
    let (key_id, _) = create_key(&client, "rotating").await;
    for _ in 0..3 {
        client
            .rotate_key_on_demand()
            .key_id(&key_id)
            .send()
            .await
            .expect("RotateKeyOnDemand succeeds");
    }
    let everything = rotations(&client, &key_id, None).await;

    let mut seen = Vec::new();
    let mut marker: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = client
            .list_key_rotations()
            .key_id(&key_id)
            .limit(1)
            .set_marker(marker.clone())
            .send()
            .await
            .expect("ListKeyRotations succeeds");
        pages += 1;
        seen.extend(
            page.rotations()
                .iter()
                .filter_map(|r| r.key_material_id().map(str::to_owned)),
        );
        if !page.truncated() {
            break;
        }
        marker = Some(
            page.next_marker()
                .expect("a truncated page has a NextMarker")
                .to_owned(),
        );
        assert!(pages < 10, "pagination must end");
    }

    assert_eq!(pages, 3);
    let expected: Vec<String> = everything
        .iter()
        .filter_map(|r| r.key_material_id().map(str::to_owned))
        .collect();
    assert_eq!(seen, expected);
    assert_eq!(expected.len(), 3);
}

#[tokio::test]
async fn a_key_may_be_rotated_on_demand_at_most_25_times() {
    let server = TestServer::start().await;
    let client = server.client();
    let (key_id, _) = create_key(&client, "rotating").await;

    for count in 1..=25 {
        let result = client.rotate_key_on_demand().key_id(&key_id).send().await;
        assert!(
            result.is_ok(),
            "on-demand rotation {count} succeeds: {result:?}"
        );
    }
    let twenty_sixth = error_code(client.rotate_key_on_demand().key_id(&key_id).send().await);

    assert_eq!(twenty_sixth, "LimitExceededException");
    assert_eq!(
        rotations(&client, &key_id, Some(IncludeKeyMaterial::AllKeyMaterial))
            .await
            .len(),
        26
    );
}

#[tokio::test]
async fn an_automatic_rotation_done_on_access_is_stored() {
    let data_dir = TempDir::new("rotation-restart");
    let server = TestServer::start_in(data_dir.path(), |_| {}).await;
    let client = server.client();
    let (key_id, _) = create_key(&client, "rotating").await;
    let old_ciphertext = encrypt(&client, &key_id, b"before", &[]).await;
    client
        .enable_key_rotation()
        .key_id(&key_id)
        .rotation_period_in_days(90)
        .send()
        .await
        .expect("enable rotation");
    server.clock().advance(Duration::from_secs(91 * 86_400));
    let rotated = current_material(&client, &key_id).await;
    let new_ciphertext = encrypt(&client, &key_id, b"after", &[]).await;
    server.stop().await;

    let restarted = TestServer::start_in(data_dir.path(), |_| {}).await;
    let client = restarted.client();
    let after_restart = current_material(&client, &key_id).await;
    let listed = rotations(&client, &key_id, None).await;

    assert_eq!(
        after_restart, rotated,
        "the rotation was stored, not only cached"
    );
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].rotation_type(), Some(&RotationType::Automatic));
    assert_eq!(decrypt(&client, &old_ciphertext, &[]).await, b"before");
    assert_eq!(decrypt(&client, &new_ciphertext, &[]).await, b"after");
}
