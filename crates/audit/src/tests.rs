//! Unit tests: record shapes, redaction, group commit and LookupEvents.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use time::macros::datetime;

use crate::{
    ApiCall, AuditConfig, AuditLog, Error, Event, KMS_EVENT_SOURCE, LookupAttributeKey,
    LookupQuery, Resource, ServiceEvent, TlsDetails, UserIdentity, kms_read_only,
    kms_response_elements, redact_kms_request,
};

const ACCOUNT: &str = "111122223333";
const OTHER_ACCOUNT: &str = "444455556666";
const KEY_ID: &str = "1234abcd-12ab-34cd-56ef-1234567890ab";

fn key_arn(account: &str) -> String {
    format!("arn:aws:kms:us-east-1:{account}:key/{KEY_ID}")
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(members) => members,
        _ => panic!("expected a JSON object"),
    }
}

fn alice() -> UserIdentity {
    UserIdentity::iam_user(
        ACCOUNT,
        "Alice",
        "AIDAEXAMPLEALICE",
        Some("AKIAEXAMPLEALICE"),
    )
}

fn api_call(operation: &str, body: Value) -> ApiCall {
    ApiCall {
        user_identity: alice(),
        event_time: datetime!(2026-11-22 10:15:30.250 UTC),
        event_source: KMS_EVENT_SOURCE.to_owned(),
        event_name: operation.to_owned(),
        aws_region: "us-east-1".to_owned(),
        source_ip: "192.0.2.10".to_owned(),
        user_agent: "aws-sdk-rust/1.0".to_owned(),
        request_id: Some("f3423043-63bc-11e4-bc2b-4198b6150d5c".to_owned()),
        request_parameters: redact_kms_request(operation, &object(body)),
        response_elements: Value::Null,
        error_code: None,
        error_message: None,
        read_only: kms_read_only(operation),
        resources: vec![Resource::kms_key(&key_arn(ACCOUNT), ACCOUNT)],
        recipient_account_id: ACCOUNT.to_owned(),
        additional_event_data: None,
        tls_details: None,
    }
}

/// Serialises an event with a fixed id, so it can be compared with a golden record.
fn golden(mut event: Event) -> String {
    event.event_id = "00000000-0000-4000-8000-000000000000".to_owned();
    serde_json::to_string_pretty(&event).unwrap()
}

#[test]
fn encrypt_event_matches_cloudtrail_shape() {
    let mut call = api_call(
        "Encrypt",
        json!({
            "KeyId": KEY_ID,
            "Plaintext": "c2VjcmV0LXBsYWludGV4dA==",
            "EncryptionContext": {"Department": "Engineering"},
            "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"
        }),
    );
    call.additional_event_data = Some(json!({"keyMaterialId": "ab12"}));
    call.tls_details = Some(TlsDetails {
        tls_version: "TLSv1.3".to_owned(),
        cipher_suite: "TLS_AES_256_GCM_SHA384".to_owned(),
        client_provided_host_header: "kms.us-east-1.amazonaws.com".to_owned(),
    });
    let expected = r#"{
  "eventVersion": "1.11",
  "userIdentity": {
    "type": "IAMUser",
    "principalId": "AIDAEXAMPLEALICE",
    "arn": "arn:aws:iam::111122223333:user/Alice",
    "accountId": "111122223333",
    "accessKeyId": "AKIAEXAMPLEALICE",
    "userName": "Alice"
  },
  "eventTime": "2026-11-22T10:15:30Z",
  "eventSource": "kms.amazonaws.com",
  "eventName": "Encrypt",
  "awsRegion": "us-east-1",
  "sourceIPAddress": "192.0.2.10",
  "userAgent": "aws-sdk-rust/1.0",
  "requestParameters": {
    "encryptionAlgorithm": "SYMMETRIC_DEFAULT",
    "encryptionContext": {
      "Department": "Engineering"
    },
    "keyId": "1234abcd-12ab-34cd-56ef-1234567890ab"
  },
  "responseElements": null,
  "additionalEventData": {
    "keyMaterialId": "ab12"
  },
  "requestID": "f3423043-63bc-11e4-bc2b-4198b6150d5c",
  "eventID": "00000000-0000-4000-8000-000000000000",
  "readOnly": true,
  "resources": [
    {
      "ARN": "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
      "accountId": "111122223333",
      "type": "AWS::KMS::Key"
    }
  ],
  "eventType": "AwsApiCall",
  "managementEvent": true,
  "recipientAccountId": "111122223333",
  "eventCategory": "Management",
  "tlsDetails": {
    "tlsVersion": "TLSv1.3",
    "cipherSuite": "TLS_AES_256_GCM_SHA384",
    "clientProvidedHostHeader": "kms.us-east-1.amazonaws.com"
  }
}"#;
    assert_eq!(golden(call.into_event()), expected);
}

#[test]
fn denied_decrypt_event_records_the_error() {
    let mut call = api_call(
        "Decrypt",
        json!({
            "CiphertextBlob": "AQIDAHhSecretCiphertextBytes",
            "EncryptionContext": {"Project": "Alpha"},
            "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"
        }),
    );
    call.user_identity = UserIdentity::assumed_role(
        ACCOUNT,
        "Reader",
        "AROAEXAMPLEREADER",
        "build-42",
        Some("ASIAEXAMPLETEMP"),
        datetime!(2026-11-22 09:00:00 UTC),
        false,
    );
    call.error_code = Some("AccessDenied".to_owned());
    call.error_message = Some(
        "User: arn:aws:sts::111122223333:assumed-role/Reader/build-42 is not authorized to perform: kms:Decrypt"
            .to_owned(),
    );
    let expected = r#"{
  "eventVersion": "1.11",
  "userIdentity": {
    "type": "AssumedRole",
    "principalId": "AROAEXAMPLEREADER:build-42",
    "arn": "arn:aws:sts::111122223333:assumed-role/Reader/build-42",
    "accountId": "111122223333",
    "accessKeyId": "ASIAEXAMPLETEMP",
    "sessionContext": {
      "sessionIssuer": {
        "type": "Role",
        "principalId": "AROAEXAMPLEREADER",
        "arn": "arn:aws:iam::111122223333:role/Reader",
        "accountId": "111122223333",
        "userName": "Reader"
      },
      "attributes": {
        "creationDate": "2026-11-22T09:00:00Z",
        "mfaAuthenticated": "false"
      }
    }
  },
  "eventTime": "2026-11-22T10:15:30Z",
  "eventSource": "kms.amazonaws.com",
  "eventName": "Decrypt",
  "awsRegion": "us-east-1",
  "sourceIPAddress": "192.0.2.10",
  "userAgent": "aws-sdk-rust/1.0",
  "errorCode": "AccessDenied",
  "errorMessage": "User: arn:aws:sts::111122223333:assumed-role/Reader/build-42 is not authorized to perform: kms:Decrypt",
  "requestParameters": {
    "encryptionAlgorithm": "SYMMETRIC_DEFAULT",
    "encryptionContext": {
      "Project": "Alpha"
    }
  },
  "responseElements": null,
  "requestID": "f3423043-63bc-11e4-bc2b-4198b6150d5c",
  "eventID": "00000000-0000-4000-8000-000000000000",
  "readOnly": true,
  "resources": [
    {
      "ARN": "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
      "accountId": "111122223333",
      "type": "AWS::KMS::Key"
    }
  ],
  "eventType": "AwsApiCall",
  "managementEvent": true,
  "recipientAccountId": "111122223333",
  "eventCategory": "Management"
}"#;
    assert_eq!(golden(call.into_event()), expected);
}

#[test]
fn malformed_request_event_has_null_parameters_and_no_resources() {
    let mut call = api_call("Encrypt", json!({}));
    call.request_parameters = Value::Null;
    call.resources = Vec::new();
    call.error_code = Some("SerializationException".to_owned());
    call.error_message = Some("Start of structure or map found where not expected.".to_owned());
    let expected = r#"{
  "eventVersion": "1.11",
  "userIdentity": {
    "type": "IAMUser",
    "principalId": "AIDAEXAMPLEALICE",
    "arn": "arn:aws:iam::111122223333:user/Alice",
    "accountId": "111122223333",
    "accessKeyId": "AKIAEXAMPLEALICE",
    "userName": "Alice"
  },
  "eventTime": "2026-11-22T10:15:30Z",
  "eventSource": "kms.amazonaws.com",
  "eventName": "Encrypt",
  "awsRegion": "us-east-1",
  "sourceIPAddress": "192.0.2.10",
  "userAgent": "aws-sdk-rust/1.0",
  "errorCode": "SerializationException",
  "errorMessage": "Start of structure or map found where not expected.",
  "requestParameters": null,
  "responseElements": null,
  "requestID": "f3423043-63bc-11e4-bc2b-4198b6150d5c",
  "eventID": "00000000-0000-4000-8000-000000000000",
  "readOnly": true,
  "eventType": "AwsApiCall",
  "managementEvent": true,
  "recipientAccountId": "111122223333",
  "eventCategory": "Management"
}"#;
    assert_eq!(golden(call.into_event()), expected);
}

#[test]
fn create_key_event_keeps_policy_and_key_metadata() {
    let mut call = api_call(
        "CreateKey",
        json!({
            "Description": "orders",
            "KeySpec": "SYMMETRIC_DEFAULT",
            "KeyUsage": "ENCRYPT_DECRYPT",
            "Policy": "{\"Version\":\"2012-10-17\"}",
            "Tags": [{"TagKey": "team", "TagValue": "payments"}],
            "BypassPolicyLockoutSafetyCheck": false
        }),
    );
    call.response_elements = kms_response_elements(
        "CreateKey",
        &object(json!({
            "KeyMetadata": {
                "AWSAccountId": ACCOUNT,
                "KeyId": KEY_ID,
                "Arn": key_arn(ACCOUNT),
                "CreationDate": 1_660_171_107.0,
                "Enabled": true,
                "KeyState": "Enabled",
                "EncryptionAlgorithms": ["SYMMETRIC_DEFAULT"]
            }
        })),
    );
    let event = call.into_event();
    assert!(!event.read_only);
    assert_eq!(
        event.request_parameters,
        json!({
            "bypassPolicyLockoutSafetyCheck": false,
            "description": "orders",
            "keySpec": "SYMMETRIC_DEFAULT",
            "keyUsage": "ENCRYPT_DECRYPT",
            "policy": "{\"Version\":\"2012-10-17\"}",
            "tags": [{"tagKey": "team", "tagValue": "payments"}]
        })
    );
    assert_eq!(
        event.response_elements,
        json!({
            "keyMetadata": {
                "AWSAccountId": ACCOUNT,
                "arn": key_arn(ACCOUNT),
                "creationDate": "Aug 10, 2022, 10:38:27 PM",
                "enabled": true,
                "encryptionAlgorithms": ["SYMMETRIC_DEFAULT"],
                "keyId": KEY_ID,
                "keyState": "Enabled"
            }
        })
    );
}

#[test]
fn rotate_key_service_event_matches_cloudtrail_shape() {
    let event = ServiceEvent {
        account_id: ACCOUNT.to_owned(),
        event_time: datetime!(2026-11-22 00:00:07 UTC),
        event_name: "RotateKey".to_owned(),
        aws_region: "us-east-1".to_owned(),
        resources: vec![Resource::kms_key(&key_arn(ACCOUNT), ACCOUNT)],
        response_elements: Value::Null,
        additional_event_data: None,
        service_event_details: Some(json!({"rotationType": "AUTOMATIC", "keyOrigin": "AWS_KMS"})),
    }
    .into_event();
    let expected = r#"{
  "eventVersion": "1.11",
  "userIdentity": {
    "accountId": "111122223333",
    "invokedBy": "AWS Internal"
  },
  "eventTime": "2026-11-22T00:00:07Z",
  "eventSource": "kms.amazonaws.com",
  "eventName": "RotateKey",
  "awsRegion": "us-east-1",
  "sourceIPAddress": "AWS Internal",
  "userAgent": "AWS Internal",
  "requestParameters": null,
  "responseElements": null,
  "eventID": "00000000-0000-4000-8000-000000000000",
  "readOnly": false,
  "resources": [
    {
      "ARN": "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
      "accountId": "111122223333",
      "type": "AWS::KMS::Key"
    }
  ],
  "eventType": "AwsServiceEvent",
  "managementEvent": true,
  "recipientAccountId": "111122223333",
  "serviceEventDetails": {
    "keyOrigin": "AWS_KMS",
    "rotationType": "AUTOMATIC"
  },
  "eventCategory": "Management"
}"#;
    assert_eq!(golden(event), expected);
}

#[test]
fn records_round_trip_through_json() {
    let event = api_call("Encrypt", json!({"KeyId": KEY_ID})).into_event();
    let text = serde_json::to_string(&event).unwrap();
    let back: Event = serde_json::from_str(&text).unwrap();
    assert_eq!(back, event);
}

#[test]
fn cross_account_event_is_copied_to_both_accounts() {
    let mut call = api_call("Encrypt", json!({"KeyId": key_arn(OTHER_ACCOUNT)}));
    call.resources = vec![Resource::kms_key(&key_arn(OTHER_ACCOUNT), OTHER_ACCOUNT)];
    call.recipient_account_id = OTHER_ACCOUNT.to_owned();
    let copies = call.into_event().into_recipient_copies();
    assert_eq!(copies.len(), 2);
    assert_eq!(copies[0].recipient_account_id, OTHER_ACCOUNT);
    assert_eq!(copies[1].recipient_account_id, ACCOUNT);
    assert_ne!(copies[0].event_id, copies[1].event_id);
    assert!(copies[0].shared_event_id.is_some());
    assert_eq!(copies[0].shared_event_id, copies[1].shared_event_id);

    let same_account = api_call("Encrypt", json!({"KeyId": KEY_ID})).into_event();
    let copies = same_account.into_recipient_copies();
    assert_eq!(copies.len(), 1);
    assert_eq!(copies[0].shared_event_id, None);
}

/// Requests and responses of every KMS operation that carries secrets, each secret a marker.
fn secret_bearing_messages() -> Vec<(&'static str, Value, Value)> {
    vec![
        (
            "Encrypt",
            json!({"KeyId": KEY_ID, "Plaintext": "SECRET-PLAINTEXT-1", "GrantTokens": ["SECRET-GRANT-TOKEN-1"]}),
            json!({"CiphertextBlob": "SECRET-CIPHERTEXT-1", "KeyId": key_arn(ACCOUNT)}),
        ),
        (
            "Decrypt",
            json!({
                "CiphertextBlob": "SECRET-CIPHERTEXT-2",
                "Recipient": {"AttestationDocument": "SECRET-ATTESTATION", "KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256"}
            }),
            json!({"Plaintext": "SECRET-PLAINTEXT-2", "CiphertextForRecipient": "SECRET-RECIPIENT"}),
        ),
        (
            "ReEncrypt",
            json!({"CiphertextBlob": "SECRET-CIPHERTEXT-3", "DestinationKeyId": KEY_ID}),
            json!({"CiphertextBlob": "SECRET-CIPHERTEXT-4"}),
        ),
        (
            "GenerateDataKey",
            json!({"KeyId": KEY_ID, "KeySpec": "AES_256"}),
            json!({"Plaintext": "SECRET-PLAINTEXT-3", "CiphertextBlob": "SECRET-CIPHERTEXT-5"}),
        ),
        (
            "GenerateDataKeyPair",
            json!({"KeyId": KEY_ID, "KeyPairSpec": "RSA_2048"}),
            json!({"PrivateKeyPlaintext": "SECRET-PRIVATE-KEY", "PrivateKeyCiphertextBlob": "SECRET-CIPHERTEXT-6", "PublicKey": "SECRET-PUBLIC-KEY-1"}),
        ),
        (
            "GenerateRandom",
            json!({"NumberOfBytes": 32}),
            json!({"Plaintext": "SECRET-RANDOM"}),
        ),
        (
            "Sign",
            json!({"KeyId": KEY_ID, "Message": "SECRET-MESSAGE-1", "MessageType": "RAW", "SigningAlgorithm": "RSASSA_PSS_SHA_256"}),
            json!({"Signature": "SECRET-SIGNATURE-1"}),
        ),
        (
            "Verify",
            json!({"KeyId": KEY_ID, "Message": "SECRET-MESSAGE-2", "Signature": "SECRET-SIGNATURE-2", "SigningAlgorithm": "RSASSA_PSS_SHA_256"}),
            json!({"SignatureValid": true}),
        ),
        (
            "GenerateMac",
            json!({"KeyId": KEY_ID, "Message": "SECRET-MESSAGE-3", "MacAlgorithm": "HMAC_SHA_256"}),
            json!({"Mac": "SECRET-MAC-1"}),
        ),
        (
            "VerifyMac",
            json!({"KeyId": KEY_ID, "Message": "SECRET-MESSAGE-4", "Mac": "SECRET-MAC-2", "MacAlgorithm": "HMAC_SHA_256"}),
            json!({"MacValid": true}),
        ),
        (
            "DeriveSharedSecret",
            json!({"KeyId": KEY_ID, "PublicKey": "SECRET-PUBLIC-KEY-2", "KeyAgreementAlgorithm": "ECDH"}),
            json!({"SharedSecret": "SECRET-SHARED"}),
        ),
        (
            "GetParametersForImport",
            json!({"KeyId": KEY_ID, "WrappingAlgorithm": "RSAES_OAEP_SHA_256"}),
            json!({"ImportToken": "SECRET-IMPORT-TOKEN-1", "PublicKey": "SECRET-PUBLIC-KEY-3"}),
        ),
        (
            "ImportKeyMaterial",
            json!({"KeyId": KEY_ID, "ImportToken": "SECRET-IMPORT-TOKEN-2", "EncryptedKeyMaterial": "SECRET-KEY-MATERIAL", "ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE"}),
            json!({"KeyId": key_arn(ACCOUNT), "KeyMaterialId": "ab12"}),
        ),
        (
            "CreateCustomKeyStore",
            json!({
                "CustomKeyStoreName": "store",
                "KeyStorePassword": "SECRET-PASSWORD-1",
                "XksProxyAuthenticationCredential": {"AccessKeyId": "SECRET-XKS-ID", "RawSecretAccessKey": "SECRET-XKS-KEY"}
            }),
            json!({"CustomKeyStoreId": "cks-1234567890abcdef0"}),
        ),
        (
            "UpdateCustomKeyStore",
            json!({"CustomKeyStoreId": "cks-1234567890abcdef0", "KeyStorePassword": "SECRET-PASSWORD-2"}),
            json!({}),
        ),
        (
            "CreateGrant",
            json!({"KeyId": KEY_ID, "GranteePrincipal": "arn:aws:iam::111122223333:role/Reader", "Operations": ["Decrypt"], "GrantTokens": ["SECRET-GRANT-TOKEN-2"]}),
            json!({"GrantId": "0c237476", "GrantToken": "SECRET-GRANT-TOKEN-3"}),
        ),
        (
            "RetireGrant",
            json!({"GrantToken": "SECRET-GRANT-TOKEN-4"}),
            json!({}),
        ),
    ]
}

#[test]
fn no_secret_survives_redaction() {
    for (operation, request, response) in secret_bearing_messages() {
        let mut call = api_call(operation, request);
        call.response_elements = kms_response_elements(operation, &object(response));
        let record = serde_json::to_string(&call.into_event()).unwrap();
        assert!(
            !record.contains("SECRET-"),
            "{operation} leaked a secret into its record: {record}"
        );
    }
}

#[test]
fn redaction_keeps_what_cloudtrail_keeps() {
    let parameters = redact_kms_request(
        "ReEncrypt",
        &object(json!({
            "CiphertextBlob": "AAAA",
            "SourceEncryptionContext": {"KeyId": "kept verbatim"},
            "DestinationKeyId": KEY_ID,
            "DestinationEncryptionAlgorithm": "RSAES_OAEP_SHA_256"
        })),
    );
    assert_eq!(
        parameters,
        json!({
            "destinationEncryptionAlgorithm": "RSAES_OAEP_SHA_256",
            "destinationKeyId": KEY_ID,
            "sourceEncryptionContext": {"KeyId": "kept verbatim"}
        })
    );
    let parameters = redact_kms_request(
        "GenerateDataKey",
        &object(json!({"KeyId": KEY_ID, "NumberOfBytes": 64})),
    );
    assert_eq!(parameters, json!({"keyId": KEY_ID, "numberOfBytes": 64}));
    let granted = kms_response_elements(
        "CreateGrant",
        &object(json!({"GrantId": "0c237476", "GrantToken": "token"})),
    );
    assert_eq!(granted, json!({"grantId": "0c237476"}));
    assert_eq!(kms_response_elements("EnableKey", &Map::new()), Value::Null);
}

#[test]
fn unknown_operations_log_no_parameters() {
    let parameters = redact_kms_request("ExportEverything", &object(json!({"Anything": "x"})));
    assert_eq!(parameters, Value::Null);
}

#[test]
fn read_only_follows_cloudtrail_examples() {
    for operation in [
        "Encrypt",
        "Decrypt",
        "GenerateDataKey",
        "Sign",
        "Verify",
        "DescribeKey",
        "ListAliases",
        "GetKeyPolicy",
    ] {
        assert!(kms_read_only(operation), "{operation} should be read-only");
    }
    for operation in [
        "CreateKey",
        "ScheduleKeyDeletion",
        "PutKeyPolicy",
        "TagResource",
        "CreateAlias",
        "RotateKeyOnDemand",
    ] {
        assert!(
            !kms_read_only(operation),
            "{operation} should not be read-only"
        );
    }
}

/// A fresh directory under the system's temporary directory, removed when dropped.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(name: &str) -> TempDir {
        let path =
            std::env::temp_dir().join(format!("strongroom-audit-{name}-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn open_log(dir: &TempDir) -> AuditLog {
    let mut config = AuditConfig::new(dir.0.join("audit"), dir.0.join("keys/digest.pk8"));
    // Long windows keep the periodic task out of the way; tests deliver with flush_now.
    config.file_window = Duration::from_secs(3600);
    AuditLog::open(config).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_commit_shares_flushes_between_concurrent_callers() {
    let dir = TempDir::new("group-commit");
    let log = open_log(&dir).await;

    // Baseline: one caller at a time pays one flush per event.
    let sequential = 200;
    let before = log.fsync_count();
    let started = Instant::now();
    for _ in 0..sequential {
        let event = api_call("Encrypt", json!({"KeyId": KEY_ID})).into_event();
        log.record(vec![event]).await.unwrap();
    }
    let sequential_elapsed = started.elapsed();
    let sequential_flushes = log.fsync_count() - before;
    assert_eq!(sequential_flushes, sequential);

    // Group commit: many concurrent callers, each waiting for its own acknowledgement before
    // recording the next event, share flushes.
    let workers: u32 = 64;
    let per_worker: u32 = 80;
    let concurrent = workers * per_worker;
    let before = log.fsync_count();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..per_worker {
                let event = api_call("Encrypt", json!({"KeyId": KEY_ID})).into_event();
                log.record(vec![event]).await?;
            }
            Ok::<(), Error>(())
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let concurrent_elapsed = started.elapsed();
    let concurrent_flushes = log.fsync_count() - before;

    let sequential_rate = sequential as f64 / sequential_elapsed.as_secs_f64();
    let concurrent_rate = f64::from(concurrent) / concurrent_elapsed.as_secs_f64();
    eprintln!(
        "one flush per event: {sequential} events, {sequential_flushes} flushes, {sequential_rate:.0} events/s; \
         group commit, {workers} callers: {concurrent} events, {concurrent_flushes} flushes, {concurrent_rate:.0} events/s"
    );
    // At least two events per flush on average: a bound loose enough for a machine busy with other work
    // (which shortens batches), yet one that fails whenever callers stop sharing flushes.
    assert!(
        concurrent_flushes * 2 < u64::from(concurrent),
        "{concurrent} records from {workers} callers took {concurrent_flushes} flushes"
    );

    let page = log.lookup(ACCOUNT, LookupQuery::default()).await.unwrap();
    assert_eq!(page.events.len(), 50);
    assert!(page.next_token.is_some());
}

#[test]
fn the_writer_waits_for_more_callers_only_after_a_large_flush() {
    // A lone caller, or a few, never wait for company: their flush starts at once.
    for last_batch in 0..8 {
        assert!(!crate::journal::gathers_after(last_batch), "{last_batch}");
    }
    // Under load the writer gathers a larger batch before it flushes.
    for last_batch in [8, 16, 4096] {
        assert!(crate::journal::gathers_after(last_batch), "{last_batch}");
    }
}

/// Records `count` Encrypt events a second apart, newest last, and returns their ids.
async fn record_series(log: &AuditLog, account: &str, count: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..count {
        let mut call = api_call(
            if i % 2 == 0 { "Encrypt" } else { "DescribeKey" },
            json!({"KeyId": KEY_ID}),
        );
        call.event_time = datetime!(2026-11-22 10:00:00 UTC) + time::Duration::seconds(i as i64);
        call.user_identity = UserIdentity::iam_user(
            account,
            "Alice",
            "AIDAEXAMPLEALICE",
            Some("AKIAEXAMPLEALICE"),
        );
        call.resources = vec![Resource::kms_key(&key_arn(account), account)];
        call.recipient_account_id = account.to_owned();
        let event = call.into_event();
        ids.push(event.event_id.clone());
        log.record(vec![event]).await.unwrap();
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookup_pages_newest_first_and_isolates_accounts() {
    let dir = TempDir::new("lookup-pages");
    let log = open_log(&dir).await;
    let ids = record_series(&log, ACCOUNT, 5).await;
    let other_ids = record_series(&log, OTHER_ACCOUNT, 3).await;

    let mut seen = Vec::new();
    let mut query = LookupQuery {
        max_results: Some(2),
        ..LookupQuery::default()
    };
    loop {
        let page = log.lookup(ACCOUNT, query.clone()).await.unwrap();
        assert!(page.events.len() <= 2);
        seen.extend(page.events.iter().map(|event| event.event_id.clone()));
        match page.next_token {
            Some(token) => query.next_token = Some(token),
            None => break,
        }
    }
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first);
    assert!(seen.iter().all(|id| !other_ids.contains(id)));

    // A token is bound to its account and parameters.
    let first = log
        .lookup(
            ACCOUNT,
            LookupQuery {
                max_results: Some(1),
                ..LookupQuery::default()
            },
        )
        .await
        .unwrap();
    let token = first.next_token.unwrap();
    let stolen = log
        .lookup(
            OTHER_ACCOUNT,
            LookupQuery {
                max_results: Some(1),
                next_token: Some(token.clone()),
                ..LookupQuery::default()
            },
        )
        .await;
    assert!(matches!(stolen, Err(Error::InvalidNextToken)));
    let changed = log
        .lookup(
            ACCOUNT,
            LookupQuery {
                max_results: Some(1),
                next_token: Some(token),
                attributes: vec![(LookupAttributeKey::EventName, "Encrypt".to_owned())],
                ..LookupQuery::default()
            },
        )
        .await;
    assert!(matches!(changed, Err(Error::InvalidNextToken)));
    let garbage = log
        .lookup(
            ACCOUNT,
            LookupQuery {
                next_token: Some("not-a-token".to_owned()),
                ..LookupQuery::default()
            },
        )
        .await;
    assert!(matches!(garbage, Err(Error::InvalidNextToken)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookup_filters_by_each_attribute() {
    let dir = TempDir::new("lookup-filters");
    let log = open_log(&dir).await;
    let ids = record_series(&log, ACCOUNT, 4).await;
    let mut service = ServiceEvent {
        account_id: ACCOUNT.to_owned(),
        event_time: datetime!(2026-11-22 11:00:00 UTC),
        event_name: "RotateKey".to_owned(),
        aws_region: "us-east-1".to_owned(),
        resources: vec![Resource::kms_key(&key_arn(ACCOUNT), ACCOUNT)],
        response_elements: Value::Null,
        additional_event_data: None,
        service_event_details: None,
    };
    service.event_name = "RotateKey".to_owned();
    log.record(vec![service.into_event()]).await.unwrap();

    let count = |key: LookupAttributeKey, value: &str| {
        let log = log.clone();
        let value = value.to_owned();
        async move {
            log.lookup(
                ACCOUNT,
                LookupQuery {
                    attributes: vec![(key, value)],
                    ..LookupQuery::default()
                },
            )
            .await
            .unwrap()
            .events
            .len()
        }
    };
    assert_eq!(count(LookupAttributeKey::EventId, &ids[1]).await, 1);
    assert_eq!(count(LookupAttributeKey::EventName, "Encrypt").await, 2);
    assert_eq!(count(LookupAttributeKey::EventName, "RotateKey").await, 1);
    assert_eq!(count(LookupAttributeKey::ReadOnly, "true").await, 4);
    assert_eq!(count(LookupAttributeKey::ReadOnly, "false").await, 1);
    assert_eq!(count(LookupAttributeKey::Username, "Alice").await, 4);
    assert_eq!(
        count(LookupAttributeKey::AccessKeyId, "AKIAEXAMPLEALICE").await,
        4
    );
    assert_eq!(
        count(LookupAttributeKey::EventSource, KMS_EVENT_SOURCE).await,
        5
    );
    assert_eq!(
        count(LookupAttributeKey::ResourceType, "AWS::KMS::Key").await,
        5
    );
    assert_eq!(
        count(LookupAttributeKey::ResourceName, &key_arn(ACCOUNT)).await,
        5
    );
    assert_eq!(
        count(LookupAttributeKey::ResourceName, &key_arn(OTHER_ACCOUNT)).await,
        0
    );

    let page = log
        .lookup(
            ACCOUNT,
            LookupQuery {
                attributes: vec![(LookupAttributeKey::EventId, ids[0].clone())],
                ..LookupQuery::default()
            },
        )
        .await
        .unwrap();
    let entry = &page.events[0];
    assert_eq!(entry.event_name, "Encrypt");
    assert_eq!(entry.read_only, "true");
    assert_eq!(entry.username.as_deref(), Some("Alice"));
    assert_eq!(
        entry.resources[0].resource_name.as_deref(),
        Some(key_arn(ACCOUNT).as_str())
    );
    let record: Event = serde_json::from_str(&entry.cloud_trail_event).unwrap();
    assert_eq!(record.event_id, ids[0]);

    // Time range: the second and third events only.
    let page = log
        .lookup(
            ACCOUNT,
            LookupQuery {
                start_time: Some(datetime!(2026-11-22 10:00:01 UTC)),
                end_time: Some(datetime!(2026-11-22 10:00:02 UTC)),
                ..LookupQuery::default()
            },
        )
        .await
        .unwrap();
    let found: Vec<&str> = page
        .events
        .iter()
        .map(|event| event.event_id.as_str())
        .collect();
    assert_eq!(found, [ids[2].as_str(), ids[1].as_str()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookup_rejects_invalid_requests() {
    let dir = TempDir::new("lookup-invalid");
    let log = open_log(&dir).await;
    let two = LookupQuery {
        attributes: vec![
            (LookupAttributeKey::EventName, "Encrypt".to_owned()),
            (LookupAttributeKey::Username, "Alice".to_owned()),
        ],
        ..LookupQuery::default()
    };
    assert!(matches!(
        log.lookup(ACCOUNT, two).await,
        Err(Error::InvalidLookupAttributes(_))
    ));
    for size in [0, 51] {
        let query = LookupQuery {
            max_results: Some(size),
            ..LookupQuery::default()
        };
        assert!(matches!(
            log.lookup(ACCOUNT, query).await,
            Err(Error::InvalidMaxResults(_))
        ));
    }
    let backwards = LookupQuery {
        start_time: Some(datetime!(2026-11-22 11:00:00 UTC)),
        end_time: Some(datetime!(2026-11-22 10:00:00 UTC)),
        ..LookupQuery::default()
    };
    assert!(matches!(
        log.lookup(ACCOUNT, backwards).await,
        Err(Error::InvalidTimeRange)
    ));
    assert!(matches!(
        "Color".parse::<LookupAttributeKey>(),
        Err(Error::InvalidLookupAttributes(_))
    ));
    assert_eq!(
        "ResourceName".parse::<LookupAttributeKey>().unwrap(),
        LookupAttributeKey::ResourceName
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_expires_index_rows_but_not_delivered_files() {
    let dir = TempDir::new("retention");
    let log = open_log(&dir).await;
    // record_series dates its events on this day.
    let recorded_at = datetime!(2026-11-22 10:00:00 UTC);
    let ids = record_series(&log, ACCOUNT, 3).await;
    log.flush_now().await.unwrap();
    let delivered = count_files(&log.dir().join("AWSLogs"));
    assert!(
        delivered >= 3,
        "expected a log file, a digest and its signature"
    );
    let journal_dir = log.dir().join("journal");
    let kept = crate::journal::list_kept(&journal_dir).unwrap();
    assert_eq!(kept.len(), 1, "the delivered segment is kept for lookups");

    // 89 days later everything is still visible, read back from the kept segment; 91 days later
    // nothing is, and the kept segment is gone.
    let removed = log
        .expire(recorded_at + time::Duration::days(89))
        .await
        .unwrap();
    assert_eq!(removed, 0);
    let page = log.lookup(ACCOUNT, LookupQuery::default()).await.unwrap();
    assert_eq!(page.events.len(), 3);
    for event in &page.events {
        let record: serde_json::Value = serde_json::from_str(&event.cloud_trail_event).unwrap();
        assert_eq!(record["eventID"], event.event_id.as_str());
        assert!(ids.contains(&event.event_id));
    }
    let removed = log
        .expire(recorded_at + time::Duration::days(91))
        .await
        .unwrap();
    assert_eq!(removed, 3);
    assert!(
        log.lookup(ACCOUNT, LookupQuery::default())
            .await
            .unwrap()
            .events
            .is_empty()
    );
    assert!(crate::journal::list_kept(&journal_dir).unwrap().is_empty());
    assert_eq!(count_files(&log.dir().join("AWSLogs")), delivered);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_of_schema_version_1_is_migrated_with_its_records() {
    let dir = TempDir::new("migrate");
    std::fs::create_dir_all(dir.0.join("audit")).unwrap();
    let record = r#"{"eventVersion":"1.08","eventID":"legacy-event","eventName":"Encrypt"}"#;
    {
        let connection =
            rusqlite::Connection::open(dir.0.join("audit").join(crate::index::INDEX_FILE)).unwrap();
        connection
            .execute_batch(
                "CREATE TABLE events (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT,
                    event_id TEXT NOT NULL UNIQUE,
                    account TEXT NOT NULL,
                    region TEXT NOT NULL,
                    event_time INTEGER NOT NULL,
                    event_name TEXT NOT NULL,
                    read_only TEXT NOT NULL,
                    username TEXT,
                    access_key_id TEXT,
                    event_source TEXT NOT NULL,
                    record TEXT NOT NULL
                );
                CREATE INDEX events_by_time ON events (account, event_time, seq);",
            )
            .unwrap();
        connection
            .execute(
                "INSERT INTO events (event_id, account, region, event_time, event_name, read_only,
                                     username, access_key_id, event_source, record)
                 VALUES ('legacy-event', ?1, 'us-east-1', ?2, 'Encrypt', 'false', 'alice',
                         'AKIDLEGACY', 'kms.amazonaws.com', ?3)",
                rusqlite::params![
                    ACCOUNT,
                    datetime!(2026-11-22 09:00:00 UTC).unix_timestamp(),
                    record
                ],
            )
            .unwrap();
    }
    let log = open_log(&dir).await;
    let new_ids = record_series(&log, ACCOUNT, 2).await;
    let page = log.lookup(ACCOUNT, LookupQuery::default()).await.unwrap();
    assert_eq!(page.events.len(), 3);
    assert_eq!(page.events[2].event_id, "legacy-event");
    assert_eq!(page.events[2].cloud_trail_event, record);
    for id in ["legacy-event", new_ids[0].as_str()] {
        let query = LookupQuery {
            attributes: vec![(LookupAttributeKey::EventId, id.to_owned())],
            ..LookupQuery::default()
        };
        let page = log.lookup(ACCOUNT, query).await.unwrap();
        assert_eq!(page.events.len(), 1, "{id}");
        assert_eq!(page.events[0].event_id, id);
    }
}

/// How many records the delivered log files under `dir` hold (digests not counted).
fn delivered_records(dir: &std::path::Path) -> usize {
    use std::io::Read;
    let mut count = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type().unwrap().is_dir() {
                pending.push(path);
            } else if name.ends_with(".json.gz") && !name.contains("CloudTrail-Digest") {
                let mut json = Vec::new();
                flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap())
                    .read_to_end(&mut json)
                    .unwrap();
                let file: Value = serde_json::from_slice(&json).unwrap();
                count += file["Records"].as_array().unwrap().len();
            }
        }
    }
    count
}

fn count_files(dir: &std::path::Path) -> usize {
    let mut count = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            match entry.file_type().unwrap().is_dir() {
                true => pending.push(entry.path()),
                false => count += 1,
            }
        }
    }
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_key_is_private_and_stable_across_opens() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("signing-key");
    let first = open_log(&dir).await;
    let fingerprint = first.public_key_fingerprint();
    drop(first);
    let mode = std::fs::metadata(dir.0.join("keys/digest.pk8"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let second = open_log(&dir).await;
    assert_eq!(second.public_key_fingerprint(), fingerprint);
    assert_eq!(crate::fingerprint(&second.public_key_der()), fingerprint);
}

#[test]
fn invalid_event_locations_are_rejected() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let dir = TempDir::new("invalid-event");
        let log = open_log(&dir).await;
        let mut call = api_call("Encrypt", json!({}));
        call.aws_region = "../../etc".to_owned();
        let outcome = log.record(vec![call.into_event()]).await;
        assert!(matches!(outcome, Err(Error::InvalidEvent(_))));
    });
}

#[test]
fn java_style_names_and_dates() {
    assert_eq!(crate::kms::decapitalize("KeyId"), "keyId");
    assert_eq!(crate::kms::decapitalize("AWSAccountId"), "AWSAccountId");
    assert_eq!(
        crate::kms::decapitalize("XksProxyUriPath"),
        "xksProxyUriPath"
    );
    let response = kms_response_elements(
        "ScheduleKeyDeletion",
        &object(json!({"KeyId": KEY_ID, "DeletionDate": 1_767_225_600, "PendingWindowInDays": 7})),
    );
    assert_eq!(
        response,
        json!({"deletionDate": "Jan 1, 2026, 12:00:00 AM", "keyId": KEY_ID, "pendingWindowInDays": 7})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_audit_log_on_the_same_directory_is_refused() {
    let dir = TempDir::new("locked");
    let first = open_log(&dir).await;
    let mut config = AuditConfig::new(dir.0.join("audit"), dir.0.join("keys/digest.pk8"));
    config.file_window = Duration::from_secs(3600);
    let second = AuditLog::open(config.clone()).await;
    assert!(matches!(second, Err(Error::Locked)));
    drop(first);
    // Once the first has closed, the directory can be opened again.
    AuditLog::open(config).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_truncates_a_torn_frame_and_keeps_acknowledged_events() {
    use std::io::Write;
    let dir = TempDir::new("torn");
    let log = open_log(&dir).await;
    let ids = record_series(&log, ACCOUNT, 3).await;
    drop(log);
    // What a power cut in the middle of a write could leave: a header promising more than exists.
    let journal = dir.0.join("audit/journal");
    let segments = crate::journal::list_segments(&journal).unwrap();
    let last = crate::journal::segment_path(&journal, *segments.last().unwrap());
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&last)
        .unwrap();
    file.write_all(b"SRJ1\xff\x00\x00\x00torn").unwrap();
    drop(file);

    let log = open_log(&dir).await;
    let page = log.lookup(ACCOUNT, LookupQuery::default()).await.unwrap();
    let mut found: Vec<String> = page
        .events
        .into_iter()
        .map(|event| event.event_id)
        .collect();
    found.sort();
    let mut expected = ids;
    expected.sort();
    assert_eq!(found, expected);
    // The recovered events were delivered at open, so the journal holds only the new segment.
    assert_eq!(crate::journal::list_segments(&journal).unwrap().len(), 1);
    log.record(vec![api_call("Encrypt", json!({})).into_event()])
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_the_index_never_saw_are_indexed_when_their_segment_is_delivered() {
    // A journal written without its indexer, as a crash can leave batches nobody indexed.
    let dir = TempDir::new("unindexed");
    let journal = dir.0.join("audit/journal");
    std::fs::create_dir_all(&journal).unwrap();
    let events: Vec<Event> = (0..3)
        .map(|_| api_call("Encrypt", json!({"KeyId": KEY_ID})).into_event())
        .collect();
    let mut ids: Vec<String> = events.iter().map(|e| e.event_id.clone()).collect();
    let lines: Vec<String> = events
        .iter()
        .map(|e| serde_json::to_string(e).unwrap())
        .collect();
    tokio::task::spawn_blocking(move || {
        let (commands, thread) = start_writer(&journal, 1);
        for line in &lines {
            append_line(&commands, line);
        }
        drop(commands);
        thread.join().unwrap();
    })
    .await
    .unwrap();

    let log = open_log(&dir).await;
    assert_eq!(
        delivered_records(&dir.0),
        3,
        "the recovered segment is delivered at open"
    );
    let page = log.lookup(ACCOUNT, LookupQuery::default()).await.unwrap();
    let mut found: Vec<String> = page.events.into_iter().map(|e| e.event_id).collect();
    found.sort();
    ids.sort();
    assert_eq!(
        found, ids,
        "delivery indexed the events the indexer never saw"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preallocated_tail_is_not_a_torn_frame() {
    let dir = TempDir::new("preallocated");
    let log = open_log(&dir).await;
    let ids = record_series(&log, ACCOUNT, 3).await;
    drop(log);
    let journal = dir.0.join("audit/journal");
    let segments = crate::journal::list_segments(&journal).unwrap();
    let last = crate::journal::segment_path(&journal, *segments.last().unwrap());
    let contents = crate::journal::read_segment(&last).unwrap();
    assert_eq!(contents.lines.len(), 3);
    assert!(
        contents.file_len > contents.valid_len,
        "the active segment is preallocated ahead of its frames"
    );
    assert!(
        !contents.torn,
        "zeros after the last frame are not a torn frame"
    );

    // A frame torn inside the preallocated zeros is found and cut off.
    let mut torn = b"SRJ1\xff\x00\x00\x00torn".to_vec();
    torn.resize(64, 0);
    std::os::unix::fs::FileExt::write_all_at(
        &std::fs::OpenOptions::new().write(true).open(&last).unwrap(),
        &torn,
        contents.valid_len,
    )
    .unwrap();
    assert!(crate::journal::read_segment(&last).unwrap().torn);

    let log = open_log(&dir).await;
    let page = log.lookup(ACCOUNT, LookupQuery::default()).await.unwrap();
    let mut found: Vec<String> = page
        .events
        .into_iter()
        .map(|event| event.event_id)
        .collect();
    found.sort();
    let mut expected = ids;
    expected.sort();
    assert_eq!(found, expected);
}

/// CPU time (user + system, in clock ticks) per thread name, from `/proc/self/task`.
fn cpu_ticks_by_thread() -> std::collections::BTreeMap<String, u64> {
    let mut ticks = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return ticks;
    };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = stat[open + 1..close].to_owned();
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        // After the name: state is field 3, utime field 14 and stime field 15 (1-based).
        let used = fields
            .get(11)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            + fields
                .get(12)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        *ticks.entry(name).or_default() += used;
    }
    ticks
}

/// A micro-benchmark, not a timing assertion: 64 concurrent callers each record single events.
///
/// Run it with `cargo test --release -p strongroom-audit record_throughput -- --nocapture`; it
/// prints events/s and the CPU each thread spent, including the index catching up for a lookup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_throughput_of_64_concurrent_callers() {
    let dir = TempDir::new("throughput");
    let log = open_log(&dir).await;
    let workers: u32 = 64;
    let per_worker: u32 = if cfg!(debug_assertions) { 20 } else { 800 };
    let total = workers * per_worker;
    let before = cpu_ticks_by_thread();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..per_worker {
                let event = api_call("Encrypt", json!({"KeyId": KEY_ID})).into_event();
                log.record(vec![event]).await?;
            }
            Ok::<(), Error>(())
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let recorded = started.elapsed();
    let page = log.lookup(ACCOUNT, LookupQuery::default()).await.unwrap();
    let looked_up = started.elapsed();
    assert_eq!(page.events.len(), 50);
    let after = cpu_ticks_by_thread();
    let mut spent = Vec::new();
    let mut all = 0;
    for (name, ticks) in &after {
        let used = ticks - before.get(name).copied().unwrap_or(0).min(*ticks);
        all += used;
        spent.push(format!("{name}={}ms", used * 10));
    }
    eprintln!(
        "{total} events from {workers} callers: {:.0} events/s recorded, {} fsyncs, lookup caught up \
         after {:.0} ms; CPU {:.1} us/event ({})",
        f64::from(total) / recorded.as_secs_f64(),
        log.fsync_count(),
        (looked_up - recorded).as_secs_f64() * 1000.0,
        (all * 10_000) as f64 / f64::from(total),
        spent.join(", ")
    );
    // Delivery: log files (parse, group, gzip, hash), their index rows, and digests.
    let before = cpu_ticks_by_thread();
    let started = Instant::now();
    log.flush_now().await.unwrap();
    let delivered = started.elapsed();
    let after = cpu_ticks_by_thread();
    let used: u64 = after
        .iter()
        .map(|(name, ticks)| ticks - before.get(name).copied().unwrap_or(0).min(*ticks))
        .sum();
    eprintln!(
        "delivering the {total} events took {:.0} ms: CPU {:.1} us/event",
        delivered.as_secs_f64() * 1000.0,
        (used * 10_000) as f64 / f64::from(total),
    );
    assert!(
        delivered_records(&dir.0) == total as usize,
        "every event is in a delivered log file"
    );
}

#[test]
fn event_ids_are_unique_time_ordered_uuids_whose_index_keys_differ() {
    // 4,096 ids: the counter's low 12 bits (in the indexed half) take every value once.
    let ids: Vec<String> = (0..4_096).map(|_| crate::event::new_event_id()).collect();
    let unique: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "event ids repeat");
    let keys: std::collections::HashSet<i64> =
        ids.iter().map(|id| crate::index::event_key(id)).collect();
    // Even ids made within one millisecond differ there.
    assert_eq!(keys.len(), ids.len(), "index keys repeat");
    for id in &ids {
        let uuid = uuid::Uuid::parse_str(id).expect("a UUID");
        assert_eq!(uuid.get_version_num(), 7, "{id}");
    }
    let first = uuid::Uuid::parse_str(&ids[0])
        .unwrap()
        .get_timestamp()
        .unwrap();
    let last = uuid::Uuid::parse_str(&ids[ids.len() - 1])
        .unwrap()
        .get_timestamp()
        .unwrap();
    assert!(first.to_unix() <= last.to_unix());
}

/// A batch as the journal writer hands it to the indexer: `events` Encrypt events, placed in
/// segment `number` so that batches never share a `seq`.
fn index_batch(number: u64, events: usize) -> crate::journal::IndexBatch {
    let event = api_call("Encrypt", json!({"KeyId": KEY_ID})).into_event();
    let entries = (0..events)
        .map(|i| {
            (
                crate::index::IndexEntry::new(event.clone()),
                i * 100..i * 100 + 90,
            )
        })
        .collect();
    crate::journal::IndexBatch {
        number,
        segment: number,
        records: vec![(
            0,
            crate::journal::Records {
                payload: Vec::new(),
                entries,
            },
        )],
    }
}

fn batch_numbers(batches: &[crate::journal::IndexBatch]) -> Vec<u64> {
    batches.iter().map(|batch| batch.number).collect()
}

#[test]
fn queued_batches_fall_due_on_catch_up_count_age_and_shutdown() {
    use crate::audit_log::{INDEX_INTERVAL, INDEX_PENDING_EVENTS, IndexQueue, IndexSender};
    use std::sync::Arc;

    let queue = Arc::new(IndexQueue::default());
    let sender = IndexSender::new(Arc::clone(&queue));
    let mut taken = Vec::new();

    // A lookup's catch-up takes what is queued at once.
    sender.push(index_batch(1, 1));
    sender.catch_up();
    let started = Instant::now();
    assert!(!queue.take_due(&mut taken));
    assert!(started.elapsed() < INDEX_INTERVAL);
    assert_eq!(batch_numbers(&taken), [1]);
    taken.clear();

    // So does reaching the pending event count.
    sender.push(index_batch(2, INDEX_PENDING_EVENTS - 1));
    sender.push(index_batch(3, 1));
    let started = Instant::now();
    assert!(!queue.take_due(&mut taken));
    assert!(started.elapsed() < INDEX_INTERVAL);
    assert_eq!(batch_numbers(&taken), [2, 3]);
    taken.clear();

    // A batch queued while the indexer waits on an empty queue wakes it, so the oldest batch's
    // clock runs: it falls due after INDEX_INTERVAL with no other wake. Should that wake be
    // missing, a catch-up after 30 s ends the wait and the elapsed time shows it.
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let pusher = {
        let sender = sender.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            sender.push(index_batch(4, 1));
            sender.push(index_batch(5, 1));
            let _ = finished.recv_timeout(Duration::from_secs(30));
            sender.catch_up();
        })
    };
    let started = Instant::now();
    assert!(!queue.take_due(&mut taken));
    let waited = started.elapsed();
    assert!(waited >= INDEX_INTERVAL, "{waited:?}");
    assert!(waited < Duration::from_secs(20), "{waited:?}");
    assert_eq!(batch_numbers(&taken), [4, 5]);
    taken.clear();
    drop(done);

    // Once every sender is gone, what is queued is taken at once, and the indexer is told to stop.
    sender.push(index_batch(6, 1));
    drop(sender);
    pusher.join().unwrap();
    let started = Instant::now();
    assert!(queue.take_due(&mut taken));
    assert!(started.elapsed() < INDEX_INTERVAL);
    assert_eq!(batch_numbers(&taken), [6]);
}

#[test]
fn the_indexer_indexes_everything_queued_when_its_senders_are_gone() {
    use crate::audit_log::{INDEX_INTERVAL, IndexQueue, IndexSender, run_indexer};
    use std::sync::Arc;

    let dir = TempDir::new("indexer-shutdown");
    let connection = crate::index::open(&dir.0, false).unwrap();
    let queue = Arc::new(IndexQueue::default());
    let sender = IndexSender::new(Arc::clone(&queue));
    let (indexed_sender, indexed) = tokio::sync::watch::channel(0);
    let indexer = {
        let queue = Arc::clone(&queue);
        std::thread::spawn(move || run_indexer(connection, &queue, &indexed_sender))
    };
    for number in 1..=3 {
        sender.push(index_batch(number, 2));
    }
    let started = Instant::now();
    drop(sender);
    indexer.join().unwrap();
    assert!(
        started.elapsed() < INDEX_INTERVAL,
        "the indexer waited for the batches to fall due instead of stopping"
    );
    assert_eq!(*indexed.borrow(), 3);
    let connection = crate::index::open(&dir.0, false).unwrap();
    let rows: i64 = connection
        .query_row("SELECT count(*) FROM events", [], |row| row.get(0))
        .unwrap();
    assert_eq!(rows, 6);
    let page_size: i64 = connection
        .pragma_query_value(None, "page_size", |row| row.get(0))
        .unwrap();
    assert_eq!(page_size, 16 * 1024, "a new index file has large pages");
}

#[test]
fn indexed_rows_keep_each_events_values_when_neighbours_differ() {
    use crate::index::{self, IndexEntry};
    use crate::journal::Location;

    // Consecutive events that share some values and differ in others, including NULLs and
    // empty resource lists: each row must hold its own event's values.
    let mut events = Vec::new();
    for (i, account) in [ACCOUNT, ACCOUNT, OTHER_ACCOUNT, ACCOUNT, ACCOUNT]
        .into_iter()
        .enumerate()
    {
        let mut call = api_call("Encrypt", json!({"KeyId": KEY_ID}));
        call.recipient_account_id = account.to_owned();
        call.resources = match i {
            1 | 4 => Vec::new(),
            _ => vec![Resource::kms_key(&key_arn(account), account)],
        };
        if i == 2 {
            call.user_identity = UserIdentity::iam_user(account, "Bob", "AIDAEXAMPLEBOB", None);
        }
        let mut event = call.into_event();
        if i == 3 {
            event.event_name = "Decrypt".to_owned();
            event.aws_region = "eu-west-1".to_owned();
        }
        events.push(event);
    }
    // Account, Region, operation, username, access key and resource ARNs.
    type Row = (
        String,
        String,
        String,
        Option<String>,
        Option<String>,
        Vec<String>,
    );
    let expected: Vec<Row> = events
        .iter()
        .map(|event| {
            (
                event.recipient_account_id.clone(),
                event.aws_region.clone(),
                event.event_name.clone(),
                event.user_identity.lookup_username(),
                event.user_identity.access_key_id.clone(),
                event.resources.iter().map(|r| r.arn.clone()).collect(),
            )
        })
        .collect();
    let entries: Vec<IndexEntry> = events.into_iter().map(IndexEntry::new).collect();

    let dir = TempDir::new("insert-values");
    let mut connection = index::open(&dir.0, false).unwrap();
    // Twice, so the second call runs on the cached statement; the rows are already there.
    for _ in 0..2 {
        let transaction = connection.transaction().unwrap();
        index::insert_events(
            &transaction,
            entries.iter().enumerate().map(|(i, entry)| {
                let location = Location {
                    segment: 1,
                    offset: i as u64 * 100,
                    len: 90,
                };
                (entry, location)
            }),
        )
        .unwrap();
        transaction.commit().unwrap();
    }
    let mut select = connection
        .prepare(
            "SELECT account, region, event_name, username, access_key_id, resources
             FROM events ORDER BY seq",
        )
        .unwrap();
    let stored: Vec<Row> = select
        .query_map([], |row| {
            let resources: Option<String> = row.get(5)?;
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
                resources
                    .as_deref()
                    .map(index::decode_resources)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(_, arn)| arn)
                    .collect(),
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(stored, expected);
    assert_eq!(stored[2].3.as_deref(), Some("Bob"));
    assert_eq!(stored[2].4, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resources_are_found_exactly_whatever_characters_they_hold() {
    let dir = TempDir::new("resource-text");
    let log = open_log(&dir).await;
    // The index separates resources with control characters; these hold them, and the escape.
    let odd_type = "Odd\u{1f}Type";
    let odd_arn = "arn:odd\u{1e}name\u{1f}x\u{1d}1\u{1d}";
    let resources = vec![
        Resource {
            arn: odd_arn.to_owned(),
            account_id: ACCOUNT.to_owned(),
            resource_type: odd_type.to_owned(),
        },
        Resource::kms_key(&key_arn(ACCOUNT), ACCOUNT),
    ];
    let mut call = api_call("Encrypt", json!({"KeyId": KEY_ID}));
    call.resources = resources.clone();
    log.record(vec![call.into_event()]).await.unwrap();
    let mut bare = api_call("ListKeys", json!({}));
    bare.resources = Vec::new();
    log.record(vec![bare.into_event()]).await.unwrap();

    let page = log.lookup(ACCOUNT, LookupQuery::default()).await.unwrap();
    assert_eq!(page.events.len(), 2);
    let found: Vec<(Option<&str>, Option<&str>)> = page.events[1]
        .resources
        .iter()
        .map(|r| (r.resource_type.as_deref(), r.resource_name.as_deref()))
        .collect();
    assert_eq!(
        found,
        [
            (Some(odd_type), Some(odd_arn)),
            (Some("AWS::KMS::Key"), Some(key_arn(ACCOUNT).as_str())),
        ]
    );
    assert!(page.events[0].resources.is_empty());

    let count = |key: LookupAttributeKey, value: String| {
        let log = log.clone();
        async move {
            let query = LookupQuery {
                attributes: vec![(key, value)],
                ..LookupQuery::default()
            };
            log.lookup(ACCOUNT, query).await.unwrap().events.len()
        }
    };
    let name = LookupAttributeKey::ResourceName;
    let kind = LookupAttributeKey::ResourceType;
    assert_eq!(count(name, odd_arn.to_owned()).await, 1);
    assert_eq!(count(name, key_arn(ACCOUNT)).await, 1);
    assert_eq!(count(kind, odd_type.to_owned()).await, 1);
    assert_eq!(count(kind, "AWS::KMS::Key".to_owned()).await, 1);
    // Parts of a type or ARN, a type given as a name and the reverse, and text spanning a type
    // and its ARN match nothing.
    for (key, value) in [
        (name, "arn:odd".to_owned()),
        (name, "name".to_owned()),
        (name, "x\u{1d}1".to_owned()),
        (kind, "Odd".to_owned()),
        (name, odd_type.to_owned()),
        (kind, odd_arn.to_owned()),
        (name, "AWS::KMS::Key".to_owned()),
        (kind, format!("AWS::KMS::Key\u{1f}{}", key_arn(ACCOUNT))),
        (name, format!("{odd_arn}\u{1e}AWS::KMS::Key")),
    ] {
        assert_eq!(count(key, value.clone()).await, 0, "{key:?} {value:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_of_schema_version_2_is_migrated_with_its_resources() {
    let dir = TempDir::new("migrate-v2");
    std::fs::create_dir_all(dir.0.join("audit")).unwrap();
    let index_path = dir.0.join("audit").join(crate::index::INDEX_FILE);
    let alias_arn = format!("arn:aws:kms:us-east-1:{ACCOUNT}:alias/legacy");
    let records = [
        r#"{"eventID":"legacy-with-resources"}"#,
        r#"{"eventID":"legacy-without-resources"}"#,
        r#"{"eventID":"legacy-other-account"}"#,
    ];
    {
        let connection = rusqlite::Connection::open(&index_path).unwrap();
        // The version 2 layout of the LookupEvents tables.
        connection
            .execute_batch(
                "CREATE TABLE events (
                    seq INTEGER PRIMARY KEY,
                    event_id TEXT NOT NULL,
                    event_key INTEGER NOT NULL,
                    account TEXT NOT NULL,
                    region TEXT NOT NULL,
                    event_time INTEGER NOT NULL,
                    event_name TEXT NOT NULL,
                    read_only TEXT NOT NULL,
                    username TEXT,
                    access_key_id TEXT,
                    event_source TEXT NOT NULL,
                    record_len INTEGER NOT NULL,
                    record TEXT
                );
                CREATE INDEX events_by_time ON events (account, event_time, seq);
                CREATE INDEX events_by_key ON events (event_key);
                CREATE TABLE event_resources (
                    event_seq INTEGER NOT NULL,
                    resource_type TEXT,
                    resource_name TEXT
                );
                CREATE INDEX event_resources_by_event ON event_resources (event_seq);
                PRAGMA user_version = 2;",
            )
            .unwrap();
        let at = datetime!(2026-11-22 09:00:00 UTC).unix_timestamp();
        for (seq, (id, account)) in [
            ("legacy-with-resources", ACCOUNT),
            ("legacy-without-resources", ACCOUNT),
            ("legacy-other-account", OTHER_ACCOUNT),
        ]
        .into_iter()
        .enumerate()
        {
            let record = records[seq];
            connection
                .execute(
                    "INSERT INTO events (seq, event_id, event_key, account, region, event_time,
                                         event_name, read_only, username, access_key_id,
                                         event_source, record_len, record)
                     VALUES (?1, ?2, ?3, ?4, 'us-east-1', ?5, 'Encrypt', 'false', 'alice',
                             'AKIDLEGACY', 'kms.amazonaws.com', ?6, ?7)",
                    rusqlite::params![
                        seq as i64 + 1,
                        id,
                        crate::index::event_key(id),
                        account,
                        at + seq as i64,
                        record.len() as i64,
                        record
                    ],
                )
                .unwrap();
        }
        // Two resources for the first event, inserted in the order they must come back in, and
        // one for the event of the other account.
        for (seq, resource_type, arn) in [
            (1, "AWS::KMS::Key", key_arn(ACCOUNT)),
            (3, "AWS::KMS::Key", key_arn(OTHER_ACCOUNT)),
            (1, "AWS::KMS::Alias", alias_arn.clone()),
        ] {
            connection
                .execute(
                    "INSERT INTO event_resources (event_seq, resource_type, resource_name)
                     VALUES (?1, ?2, ?3)",
                    rusqlite::params![seq, resource_type, arn],
                )
                .unwrap();
        }
    }

    let log = open_log(&dir).await;
    let new_ids = record_series(&log, ACCOUNT, 2).await;
    let page = log.lookup(ACCOUNT, LookupQuery::default()).await.unwrap();
    let ids: Vec<&str> = page.events.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(
        ids,
        [
            new_ids[1].as_str(),
            new_ids[0].as_str(),
            "legacy-without-resources",
            "legacy-with-resources"
        ]
    );
    let legacy = &page.events[3];
    assert_eq!(legacy.cloud_trail_event, records[0]);
    assert_eq!(legacy.username.as_deref(), Some("alice"));
    assert_eq!(legacy.access_key_id.as_deref(), Some("AKIDLEGACY"));
    assert_eq!(
        legacy.resources,
        [
            crate::LookupResource {
                resource_type: Some("AWS::KMS::Key".to_owned()),
                resource_name: Some(key_arn(ACCOUNT)),
            },
            crate::LookupResource {
                resource_type: Some("AWS::KMS::Alias".to_owned()),
                resource_name: Some(alias_arn.clone()),
            },
        ]
    );
    assert!(page.events[2].resources.is_empty());

    // The migrated resources are found like new ones.
    let lookup = |account: &'static str, key: LookupAttributeKey, value: String| {
        let log = log.clone();
        async move {
            let query = LookupQuery {
                attributes: vec![(key, value)],
                ..LookupQuery::default()
            };
            let page = log.lookup(account, query).await.unwrap();
            page.events
                .into_iter()
                .map(|e| e.event_id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        lookup(ACCOUNT, LookupAttributeKey::ResourceName, alias_arn).await,
        ["legacy-with-resources"]
    );
    assert_eq!(
        lookup(
            ACCOUNT,
            LookupAttributeKey::ResourceType,
            "AWS::KMS::Alias".to_owned()
        )
        .await,
        ["legacy-with-resources"]
    );
    assert_eq!(
        lookup(ACCOUNT, LookupAttributeKey::ResourceName, key_arn(ACCOUNT))
            .await
            .len(),
        3
    );
    assert_eq!(
        lookup(
            OTHER_ACCOUNT,
            LookupAttributeKey::ResourceName,
            key_arn(OTHER_ACCOUNT)
        )
        .await,
        ["legacy-other-account"]
    );

    {
        let connection = rusqlite::Connection::open(&index_path).unwrap();
        let version: i64 = connection
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();
        assert_eq!(version, 3);
        let leftovers: i64 = connection
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name LIKE 'event_resources%'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(
            leftovers, 0,
            "the version 2 resource table and index are dropped"
        );
    }

    // Expiry removes the migrated rows of both accounts, and only them.
    let removed = log
        .expire(datetime!(2026-11-22 09:30:00 UTC) + time::Duration::days(90))
        .await
        .unwrap();
    assert_eq!(removed, 3);
    let page = log.lookup(ACCOUNT, LookupQuery::default()).await.unwrap();
    let ids: Vec<&str> = page.events.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(ids, [new_ids[1].as_str(), new_ids[0].as_str()]);
}

/// Starts a journal writer on its own thread, as `AuditLog::open` does, over `dir`.
fn start_writer(
    dir: &std::path::Path,
    first: u64,
) -> (
    tokio::sync::mpsc::Sender<crate::journal::Command>,
    std::thread::JoinHandle<()>,
) {
    use crate::audit_log::{IndexQueue, IndexSender};
    let index = IndexSender::new(std::sync::Arc::new(IndexQueue::default()));
    let writer = crate::journal::Writer::start(
        dir,
        first,
        Duration::from_secs(3600),
        std::sync::Arc::default(),
        index,
    )
    .unwrap();
    let (commands, receiver) = tokio::sync::mpsc::channel(16);
    let thread = std::thread::spawn(move || writer.run(receiver));
    (commands, thread)
}

/// Appends one line through the writer and waits until it is durable.
fn append_line(commands: &tokio::sync::mpsc::Sender<crate::journal::Command>, line: &str) {
    let (ack, acked) = tokio::sync::oneshot::channel();
    let records = crate::journal::Records {
        payload: format!("{line}\n").into_bytes(),
        entries: Vec::new(),
    };
    commands
        .blocking_send(crate::journal::Command::Append { records, ack })
        .unwrap();
    acked.blocking_recv().unwrap().unwrap();
}

fn rotate(commands: &tokio::sync::mpsc::Sender<crate::journal::Command>) -> u64 {
    let (ack, sealed) = tokio::sync::oneshot::channel();
    commands
        .blocking_send(crate::journal::Command::Rotate { ack })
        .unwrap();
    sealed.blocking_recv().unwrap().unwrap()
}

fn prepared_files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".prepared"))
        .collect();
    names.sort();
    names
}

#[test]
fn rotation_switches_to_a_segment_prepared_in_advance() {
    use crate::journal::{PREALLOCATION_BYTES, prepared_path, read_segment, segment_path};
    let dir = TempDir::new("prepared");
    let (commands, writer) = start_writer(&dir.0, 1);
    append_line(&commands, r#"{"n":1}"#);

    assert_eq!(rotate(&commands), 2);
    let sealed = read_segment(&segment_path(&dir.0, 1)).unwrap();
    assert_eq!(sealed.lines, vec![r#"{"n":1}"#]);
    assert_eq!(
        sealed.file_len, sealed.valid_len,
        "a sealed segment ends with its frame"
    );
    // Segment 2 is the prepared file under its journal name: already full size before any write.
    assert!(!prepared_path(&dir.0, 2).exists());
    let active = std::fs::metadata(segment_path(&dir.0, 2)).unwrap().len();
    assert!(active >= PREALLOCATION_BYTES, "{active}");

    append_line(&commands, r#"{"n":2}"#);
    let contents = read_segment(&segment_path(&dir.0, 2)).unwrap();
    assert_eq!(contents.lines, vec![r#"{"n":2}"#]);
    assert_eq!(
        contents.offsets,
        vec![16],
        "the first frame starts the segment"
    );
    assert!(!contents.torn);
    assert_eq!(
        contents.file_len, active,
        "a frame inside the prepared space does not extend the file"
    );

    // Closing the journal waits for the helper and leaves no prepared file behind.
    drop(commands);
    writer.join().unwrap();
    assert_eq!(prepared_files(&dir.0), Vec::<String>::new());
}

#[test]
fn a_segment_is_prepared_about_as_large_as_the_last_one_grew() {
    use crate::journal::{PREALLOCATION_BYTES, prepared_size, segment_path};
    let dir = TempDir::new("prepared-size");
    let len = |number| {
        std::fs::metadata(segment_path(&dir.0, number))
            .unwrap()
            .len()
    };
    let (commands, writer) = start_writer(&dir.0, 1);
    assert_eq!(
        prepared_size(0),
        PREALLOCATION_BYTES + PREALLOCATION_BYTES / 8
    );
    assert_eq!(prepared_size(9 << 20), (16 << 20) + PREALLOCATION_BYTES / 8);
    assert_eq!(prepared_size(1 << 40), (64 << 20) + PREALLOCATION_BYTES / 8);

    // Segment 1 grows past one preallocation step (9 frames of 1 MiB)...
    let line = format!(r#"{{"pad":"{}"}}"#, "x".repeat(1024 * 1024));
    for _ in 0..9 {
        append_line(&commands, &line);
    }
    assert_eq!(rotate(&commands), 2);
    assert!(len(1) > 9 << 20, "{}", len(1));
    // ...while segment 2 had been prepared when the journal opened, at the smallest size.
    assert_eq!(len(2), prepared_size(0));

    append_line(&commands, r#"{"n":1}"#);
    assert_eq!(rotate(&commands), 3);
    // Segment 3 was prepared when segment 1 was sealed, so it is as large as segment 1 grew.
    assert_eq!(len(3), prepared_size(len(1)));
    assert_eq!(len(3), (16 << 20) + PREALLOCATION_BYTES / 8);

    append_line(&commands, r#"{"n":2}"#);
    assert_eq!(rotate(&commands), 4);
    // Segment 2 held one small frame, so segment 4 is back to the smallest size.
    assert!(len(2) < 1024, "{}", len(2));
    assert_eq!(len(4), prepared_size(0));
    drop(commands);
    writer.join().unwrap();
}

#[test]
fn recovery_removes_prepared_segments_and_keeps_an_empty_renamed_one() {
    use crate::journal::{prepared_path, recover, segment_path};
    let dir = TempDir::new("prepared-recovery");
    // A crash while segment 4 was being prepared, and one right after segment 3 was renamed
    // into place but before anything was written to it.
    std::fs::write(prepared_path(&dir.0, 4), vec![0u8; 4096]).unwrap();
    std::fs::write(segment_path(&dir.0, 3), vec![0u8; 4096]).unwrap();

    assert_eq!(recover(&dir.0).unwrap(), vec![3]);
    assert_eq!(prepared_files(&dir.0), Vec::<String>::new());
    assert_eq!(
        std::fs::metadata(segment_path(&dir.0, 3)).unwrap().len(),
        0,
        "zeros are preallocation, cut off"
    );
}

#[test]
fn a_rotation_that_cannot_name_the_next_segment_stops_the_journal() {
    use crate::journal::{Command, Records, read_segment, segment_path};
    let dir = TempDir::new("rotation-fails");
    let (commands, writer) = start_writer(&dir.0, 1);
    append_line(&commands, r#"{"n":1}"#);
    // A non-empty directory where segment 2 should go: neither a rename nor a create can use it.
    let blocker = segment_path(&dir.0, 2);
    std::fs::create_dir(&blocker).unwrap();
    std::fs::write(blocker.join("in-the-way"), b"x").unwrap();

    let (ack, sealed) = tokio::sync::oneshot::channel();
    commands.blocking_send(Command::Rotate { ack }).unwrap();
    assert!(matches!(
        sealed.blocking_recv().unwrap(),
        Err(crate::Error::JournalFailed)
    ));
    // Nothing more is acknowledged: segment 1 is sealed and must not grow.
    let (ack, acked) = tokio::sync::oneshot::channel();
    let records = Records {
        payload: b"{\"n\":2}\n".to_vec(),
        entries: Vec::new(),
    };
    commands
        .blocking_send(Command::Append { records, ack })
        .unwrap();
    assert!(matches!(
        acked.blocking_recv().unwrap(),
        Err(crate::Error::JournalFailed)
    ));
    let contents = read_segment(&segment_path(&dir.0, 1)).unwrap();
    assert_eq!(contents.lines, vec![r#"{"n":1}"#]);
    assert_eq!(contents.file_len, contents.valid_len);
    drop(commands);
    writer.join().unwrap();
}

#[test]
fn a_segment_that_could_not_be_prepared_is_created_at_rotation() {
    use crate::journal::{prepared_path, read_segment, segment_path};
    let dir = TempDir::new("prepare-fails");
    // A directory in the prepared file's place: the helper thread cannot create it.
    std::fs::create_dir(prepared_path(&dir.0, 2)).unwrap();
    let (commands, writer) = start_writer(&dir.0, 1);
    append_line(&commands, r#"{"n":1}"#);

    assert_eq!(rotate(&commands), 2);
    // The writer created segment 2 itself, empty, and writes to it as before.
    append_line(&commands, r#"{"n":2}"#);
    let contents = read_segment(&segment_path(&dir.0, 2)).unwrap();
    assert_eq!(contents.lines, vec![r#"{"n":2}"#]);
    assert!(!contents.torn);
    drop(commands);
    writer.join().unwrap();
}
