//! Key reference forms, table-driven: every operation that takes a key reference is called with the key
//! id, the key ARN, the alias name and the alias ARN.
//!
//! Cryptographic operations and DescribeKey accept all four forms. Management operations take only a key
//! id or key ARN, so an alias there must be refused with `ValidationException` or `NotFoundException`.

use aws_sdk_kms::Client;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{DataKeySpec, KeyState, Tag};

use crate::harness::{Failure, TestServer, alias_arn, create_key, encrypt, failure, key_arn};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    KeyId,
    KeyArn,
    AliasName,
    AliasArn,
}

const FORMS: [Form; 4] = [Form::KeyId, Form::KeyArn, Form::AliasName, Form::AliasArn];

/// Which forms an operation's key parameter takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Takes {
    AnyForm,
    KeyOnly,
}

#[derive(Debug, Clone, Copy)]
enum Operation {
    DescribeKey,
    Encrypt,
    DecryptKeyId,
    ReEncryptSourceKeyId,
    ReEncryptDestinationKeyId,
    GenerateDataKey,
    GenerateDataKeyWithoutPlaintext,
    EnableKey,
    DisableKey,
    ScheduleKeyDeletion,
    CancelKeyDeletion,
    UpdateKeyDescription,
    TagResource,
    UntagResource,
    ListResourceTags,
    GetKeyPolicy,
    PutKeyPolicy,
    ListKeyPolicies,
    EnableKeyRotation,
    DisableKeyRotation,
    GetKeyRotationStatus,
    RotateKeyOnDemand,
    ListKeyRotations,
    CreateAliasTarget,
    UpdateAliasTarget,
    ListAliasesKeyId,
}

const TABLE: &[(Operation, Takes)] = &[
    (Operation::DescribeKey, Takes::AnyForm),
    (Operation::Encrypt, Takes::AnyForm),
    (Operation::DecryptKeyId, Takes::AnyForm),
    (Operation::ReEncryptSourceKeyId, Takes::AnyForm),
    (Operation::ReEncryptDestinationKeyId, Takes::AnyForm),
    (Operation::GenerateDataKey, Takes::AnyForm),
    (Operation::GenerateDataKeyWithoutPlaintext, Takes::AnyForm),
    (Operation::EnableKey, Takes::KeyOnly),
    (Operation::DisableKey, Takes::KeyOnly),
    (Operation::ScheduleKeyDeletion, Takes::KeyOnly),
    (Operation::CancelKeyDeletion, Takes::KeyOnly),
    (Operation::UpdateKeyDescription, Takes::KeyOnly),
    (Operation::TagResource, Takes::KeyOnly),
    (Operation::UntagResource, Takes::KeyOnly),
    (Operation::ListResourceTags, Takes::KeyOnly),
    (Operation::GetKeyPolicy, Takes::KeyOnly),
    (Operation::PutKeyPolicy, Takes::KeyOnly),
    (Operation::ListKeyPolicies, Takes::KeyOnly),
    (Operation::EnableKeyRotation, Takes::KeyOnly),
    (Operation::DisableKeyRotation, Takes::KeyOnly),
    (Operation::GetKeyRotationStatus, Takes::KeyOnly),
    (Operation::RotateKeyOnDemand, Takes::KeyOnly),
    (Operation::ListKeyRotations, Takes::KeyOnly),
    (Operation::CreateAliasTarget, Takes::KeyOnly),
    (Operation::UpdateAliasTarget, Takes::KeyOnly),
    (Operation::ListAliasesKeyId, Takes::KeyOnly),
];

/// A fresh key with an alias, and whatever else the operation under test needs.
struct Fixture {
    key_id: String,
    alias_name: String,
    ciphertext: Vec<u8>,
    other_key_id: String,
    case: usize,
}

impl Fixture {
    fn reference(&self, form: Form) -> String {
        match form {
            Form::KeyId => self.key_id.clone(),
            Form::KeyArn => key_arn(&self.key_id),
            Form::AliasName => self.alias_name.clone(),
            Form::AliasArn => alias_arn(&self.alias_name),
        }
    }
}

async fn fixture(
    client: &Client,
    operation: Operation,
    case: usize,
    other_key_id: &str,
) -> Fixture {
    let (key_id, _) = create_key(client, &format!("{operation:?}")).await;
    let alias_name = format!("alias/forms-{case}");
    client
        .create_alias()
        .alias_name(&alias_name)
        .target_key_id(&key_id)
        .send()
        .await
        .expect("CreateAlias succeeds");
    let ciphertext = encrypt(client, &key_id, b"forms", &[]).await;
    match operation {
        Operation::CancelKeyDeletion => {
            client
                .schedule_key_deletion()
                .key_id(&key_id)
                .pending_window_in_days(7)
                .send()
                .await
                .expect("schedule");
        }
        Operation::EnableKey => {
            client
                .disable_key()
                .key_id(&key_id)
                .send()
                .await
                .expect("DisableKey succeeds");
        }
        Operation::DisableKeyRotation => {
            client
                .enable_key_rotation()
                .key_id(&key_id)
                .send()
                .await
                .expect("EnableKeyRotation succeeds");
        }
        Operation::UpdateAliasTarget => {
            let moving = format!("alias/forms-{case}-moving");
            client
                .create_alias()
                .alias_name(&moving)
                .target_key_id(other_key_id)
                .send()
                .await
                .expect("CreateAlias");
        }
        _ => {}
    }
    Fixture {
        key_id,
        alias_name,
        ciphertext,
        other_key_id: other_key_id.to_owned(),
        case,
    }
}

fn sdk<T, E, R>(result: Result<T, aws_sdk_kms::error::SdkError<E, R>>) -> Result<T, Failure>
where
    T: std::fmt::Debug,
    E: aws_sdk_kms::error::ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    match result {
        Ok(output) => Ok(output),
        Err(error) => Err(failure::<T, E, R>(Err(error))),
    }
}

fn check(ok: bool, what: &str) -> Result<(), Failure> {
    match ok {
        true => Ok(()),
        false => Err(Failure {
            code: "WrongEffect".to_owned(),
            message: what.to_owned(),
        }),
    }
}

/// Calls `operation` with `reference` and checks that it acted on the fixture's key.
async fn run(
    client: &Client,
    operation: Operation,
    fixture: &Fixture,
    reference: &str,
) -> Result<(), Failure> {
    let key_id = fixture.key_id.as_str();
    let arn = key_arn(key_id);
    let state_of = |client: Client, key_id: String| async move {
        let described = client
            .describe_key()
            .key_id(key_id)
            .send()
            .await
            .expect("DescribeKey succeeds");
        described
            .key_metadata()
            .and_then(|m| m.key_state().cloned())
    };
    match operation {
        Operation::DescribeKey => {
            let output = sdk(client.describe_key().key_id(reference).send().await)?;
            check(
                output.key_metadata().map(|m| m.key_id()) == Some(key_id),
                "describes the key",
            )
        }
        Operation::Encrypt => {
            let output = sdk(client
                .encrypt()
                .key_id(reference)
                .plaintext(Blob::new(b"x".as_slice()))
                .send()
                .await)?;
            check(
                output.key_id() == Some(arn.as_str()),
                "encrypts under the key",
            )
        }
        Operation::DecryptKeyId => {
            let output = sdk(client
                .decrypt()
                .ciphertext_blob(Blob::new(fixture.ciphertext.clone()))
                .key_id(reference)
                .send()
                .await)?;
            check(
                output.plaintext().map(|p| p.as_ref()) == Some(b"forms".as_slice()),
                "decrypts",
            )
        }
        Operation::ReEncryptSourceKeyId => {
            let output = sdk(client
                .re_encrypt()
                .ciphertext_blob(Blob::new(fixture.ciphertext.clone()))
                .source_key_id(reference)
                .destination_key_id(&fixture.other_key_id)
                .send()
                .await)?;
            check(
                output.source_key_id() == Some(arn.as_str()),
                "re-encrypts from the key",
            )
        }
        Operation::ReEncryptDestinationKeyId => {
            let other_ciphertext = encrypt(client, &fixture.other_key_id, b"other", &[]).await;
            let output = sdk(client
                .re_encrypt()
                .ciphertext_blob(Blob::new(other_ciphertext))
                .destination_key_id(reference)
                .send()
                .await)?;
            check(
                output.key_id() == Some(arn.as_str()),
                "re-encrypts to the key",
            )
        }
        Operation::GenerateDataKey => {
            let output = sdk(client
                .generate_data_key()
                .key_id(reference)
                .key_spec(DataKeySpec::Aes256)
                .send()
                .await)?;
            check(
                output.key_id() == Some(arn.as_str()),
                "generates under the key",
            )
        }
        Operation::GenerateDataKeyWithoutPlaintext => {
            let output = sdk(client
                .generate_data_key_without_plaintext()
                .key_id(reference)
                .number_of_bytes(16)
                .send()
                .await)?;
            check(
                output.key_id() == Some(arn.as_str()),
                "generates under the key",
            )
        }
        Operation::EnableKey => {
            sdk(client.enable_key().key_id(reference).send().await)?;
            check(
                state_of(client.clone(), fixture.key_id.clone()).await == Some(KeyState::Enabled),
                "enables the key",
            )
        }
        Operation::DisableKey => {
            sdk(client.disable_key().key_id(reference).send().await)?;
            check(
                state_of(client.clone(), fixture.key_id.clone()).await == Some(KeyState::Disabled),
                "disables the key",
            )
        }
        Operation::ScheduleKeyDeletion => {
            let output = sdk(client
                .schedule_key_deletion()
                .key_id(reference)
                .pending_window_in_days(7)
                .send()
                .await)?;
            check(
                output.key_id() == Some(arn.as_str()),
                "schedules the key's deletion",
            )
        }
        Operation::CancelKeyDeletion => {
            sdk(client.cancel_key_deletion().key_id(reference).send().await)?;
            check(
                state_of(client.clone(), fixture.key_id.clone()).await == Some(KeyState::Disabled),
                "cancels deletion",
            )
        }
        Operation::UpdateKeyDescription => {
            sdk(client
                .update_key_description()
                .key_id(reference)
                .description("changed")
                .send()
                .await)?;
            let described = client
                .describe_key()
                .key_id(key_id)
                .send()
                .await
                .expect("DescribeKey succeeds");
            check(
                described.key_metadata().and_then(|m| m.description()) == Some("changed"),
                "changes the description",
            )
        }
        Operation::TagResource => {
            let tag = Tag::builder()
                .tag_key("form")
                .tag_value("yes")
                .build()
                .expect("a tag");
            sdk(client
                .tag_resource()
                .key_id(reference)
                .tags(tag)
                .send()
                .await)?;
            let tags = client
                .list_resource_tags()
                .key_id(key_id)
                .send()
                .await
                .expect("ListResourceTags succeeds");
            check(tags.tags().len() == 1, "tags the key")
        }
        Operation::UntagResource => sdk(client
            .untag_resource()
            .key_id(reference)
            .tag_keys("form")
            .send()
            .await)
        .map(drop),
        Operation::ListResourceTags => {
            sdk(client.list_resource_tags().key_id(reference).send().await).map(drop)
        }
        Operation::GetKeyPolicy => {
            let output = sdk(client.get_key_policy().key_id(reference).send().await)?;
            check(output.policy().is_some(), "returns the policy")
        }
        Operation::PutKeyPolicy => {
            let current = client
                .get_key_policy()
                .key_id(key_id)
                .send()
                .await
                .expect("GetKeyPolicy succeeds");
            let policy = current.policy().expect("a policy").to_owned();
            sdk(client
                .put_key_policy()
                .key_id(reference)
                .policy(policy)
                .send()
                .await)
            .map(drop)
        }
        Operation::ListKeyPolicies => {
            let output = sdk(client.list_key_policies().key_id(reference).send().await)?;
            check(
                output.policy_names() == ["default".to_owned()],
                "lists the policy",
            )
        }
        Operation::EnableKeyRotation => {
            sdk(client.enable_key_rotation().key_id(reference).send().await)?;
            let status = client
                .get_key_rotation_status()
                .key_id(key_id)
                .send()
                .await
                .expect("status");
            check(status.key_rotation_enabled(), "enables rotation")
        }
        Operation::DisableKeyRotation => {
            sdk(client.disable_key_rotation().key_id(reference).send().await)?;
            let status = client
                .get_key_rotation_status()
                .key_id(key_id)
                .send()
                .await
                .expect("status");
            check(!status.key_rotation_enabled(), "disables rotation")
        }
        Operation::GetKeyRotationStatus => {
            let output = sdk(client
                .get_key_rotation_status()
                .key_id(reference)
                .send()
                .await)?;
            check(!output.key_rotation_enabled(), "reports the key's status")
        }
        Operation::RotateKeyOnDemand => {
            sdk(client.rotate_key_on_demand().key_id(reference).send().await).map(drop)
        }
        Operation::ListKeyRotations => {
            sdk(client.list_key_rotations().key_id(reference).send().await).map(drop)
        }
        Operation::CreateAliasTarget => {
            let name = format!("alias/forms-{}-new", fixture.case);
            sdk(client
                .create_alias()
                .alias_name(&name)
                .target_key_id(reference)
                .send()
                .await)?;
            let described = client
                .describe_key()
                .key_id(&name)
                .send()
                .await
                .expect("DescribeKey succeeds");
            check(
                described.key_metadata().map(|m| m.key_id()) == Some(key_id),
                "points the alias at the key",
            )
        }
        Operation::UpdateAliasTarget => {
            let name = format!("alias/forms-{}-moving", fixture.case);
            sdk(client
                .update_alias()
                .alias_name(&name)
                .target_key_id(reference)
                .send()
                .await)?;
            let described = client
                .describe_key()
                .key_id(&name)
                .send()
                .await
                .expect("DescribeKey succeeds");
            check(
                described.key_metadata().map(|m| m.key_id()) == Some(key_id),
                "moves the alias to the key",
            )
        }
        Operation::ListAliasesKeyId => {
            let output = sdk(client.list_aliases().key_id(reference).send().await)?;
            let names: Vec<&str> = output
                .aliases()
                .iter()
                .filter_map(|a| a.alias_name())
                .collect();
            check(
                names == [fixture.alias_name.as_str()],
                "lists the key's alias",
            )
        }
    }
}

#[tokio::test]
async fn every_key_parameter_takes_the_forms_aws_takes() {
    let server = TestServer::start().await;
    let client = server.client();
    let (other_key_id, _) = create_key(&client, "the other key").await;

    let mut mismatches = Vec::new();
    let mut case = 0;
    for &(operation, takes) in TABLE {
        for form in FORMS {
            case += 1;
            let fixture = fixture(&client, operation, case, &other_key_id).await;
            let reference = fixture.reference(form);
            let result = run(&client, operation, &fixture, &reference).await;
            let accepted = takes == Takes::AnyForm || matches!(form, Form::KeyId | Form::KeyArn);
            match (accepted, result) {
                (true, Ok(())) => {}
                (true, Err(failure)) => {
                    mismatches.push(format!(
                        "{operation:?} with {form:?} should succeed, got {failure:?}"
                    ));
                }
                (false, Ok(())) => {
                    mismatches.push(format!("{operation:?} with {form:?} should be refused"))
                }
                (false, Err(failure)) => {
                    if failure.code != "ValidationException" && failure.code != "NotFoundException"
                    {
                        mismatches.push(format!(
                            "{operation:?} with {form:?} should be refused with ValidationException or \
                             NotFoundException, got {failure:?}"
                        ));
                    }
                }
            }
        }
    }

    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

#[tokio::test]
async fn a_refused_alias_form_changes_nothing() {
    let server = TestServer::start().await;
    let client = server.client();
    let (key_id, _) = create_key(&client, "unchanged").await;
    client
        .create_alias()
        .alias_name("alias/unchanged")
        .target_key_id(&key_id)
        .send()
        .await
        .expect("CreateAlias");

    let disable = failure(client.disable_key().key_id("alias/unchanged").send().await);
    let schedule = failure(
        client
            .schedule_key_deletion()
            .key_id(alias_arn("alias/unchanged"))
            .send()
            .await,
    );
    let described = client
        .describe_key()
        .key_id(&key_id)
        .send()
        .await
        .expect("DescribeKey succeeds");

    assert!(
        ["ValidationException", "NotFoundException"].contains(&disable.code.as_str()),
        "{disable:?}"
    );
    assert!(
        ["ValidationException", "NotFoundException"].contains(&schedule.code.as_str()),
        "{schedule:?}"
    );
    assert_eq!(
        described.key_metadata().and_then(|m| m.key_state()),
        Some(&KeyState::Enabled)
    );
}
