//! The protocol edge, with hand-built HTTP requests: authentication failures, malformed bodies, unknown
//! and unsupported operations, and the shape of every error response.

use http::StatusCode;
use serde_json::Value;

use std::time::{Duration, SystemTime};

use crate::harness::{Signer, TestServer, create_key};

/// Checks the properties every error response must have, and returns its `__type`.
fn error_type(status: StatusCode, body: &Value) -> String {
    assert_ne!(status, StatusCode::OK, "an error response: {body}");
    assert_ne!(
        status,
        StatusCode::NOT_FOUND,
        "no response is a 404: {body}"
    );
    assert!(
        !status.is_server_error(),
        "a client fault is not a server error ({status}): {body}"
    );
    let code = body["__type"]
        .as_str()
        .unwrap_or_else(|| panic!("the error body has a __type: {body}"));
    let message = body["message"]
        .as_str()
        .unwrap_or_else(|| panic!("the error body has a message: {body}"));
    assert!(!message.is_empty(), "the message says something: {body}");
    code.to_owned()
}

#[tokio::test]
async fn a_signed_request_built_by_hand_succeeds() {
    let server = TestServer::start().await;
    let (key_id, _) = create_key(&server.client(), "raw").await;

    let (status, body) = server.raw("TrentService.ListKeys", "{}", true).await;
    let (described_status, described) = server
        .raw(
            "TrentService.DescribeKey",
            &format!(r#"{{"KeyId":"{key_id}"}}"#),
            true,
        )
        .await;
    let (empty_status, empty_body) = server.raw("TrentService.ListKeys", "", true).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["Keys"][0]["KeyId"], key_id.as_str());
    assert_eq!(body["Truncated"], false);
    assert_eq!(described_status, StatusCode::OK, "{described}");
    assert_eq!(described["KeyMetadata"]["KeyId"], key_id.as_str());
    assert!(
        described["KeyMetadata"]["CreationDate"].is_number(),
        "timestamps are epoch seconds: {described}"
    );
    assert_eq!(
        empty_status,
        StatusCode::OK,
        "an empty body is an empty input: {empty_body}"
    );
}

#[tokio::test]
async fn a_request_without_authorization_is_refused_with_403() {
    let server = TestServer::start().await;

    let (status, body) = server.raw("TrentService.ListKeys", "{}", false).await;

    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        error_type(status, &body),
        "MissingAuthenticationTokenException"
    );
}

#[tokio::test]
async fn an_unknown_access_key_is_an_unrecognized_client() {
    let server = TestServer::start().await;

    let (status, body) = server
        .raw_as(
            "TrentService.ListKeys",
            "{}",
            Some(Signer {
                access_key: "AKIAIOSFODNN7EXAMPLE",
                ..Signer::dev()
            }),
        )
        .await;

    assert_eq!(error_type(status, &body), "UnrecognizedClientException");
}

#[tokio::test]
async fn a_wrong_secret_is_an_invalid_signature() {
    let server = TestServer::start().await;

    let (status, body) = server
        .raw_as(
            "TrentService.ListKeys",
            "{}",
            Some(Signer {
                secret: "not-the-secret",
                ..Signer::dev()
            }),
        )
        .await;
    let other_account = Signer {
        access_key: "444455556666",
        secret: "wrong",
        ..Signer::dev()
    };
    let (dev_status, dev_body) = server
        .raw_as("TrentService.ListKeys", "{}", Some(other_account))
        .await;

    assert_eq!(error_type(status, &body), "InvalidSignatureException");
    assert_eq!(
        error_type(dev_status, &dev_body),
        "InvalidSignatureException"
    );
}

#[tokio::test]
async fn malformed_json_is_a_serialization_error() {
    let server = TestServer::start().await;

    let cases = [
        ("not JSON", "{not json"),
        ("truncated", r#"{"KeyId": "abc""#),
        ("an array", "[]"),
        ("a string", r#""KeyId""#),
    ];
    for (what, body) in cases {
        let (status, response) = server.raw("TrentService.DescribeKey", body, true).await;
        assert_eq!(
            error_type(status, &response),
            "SerializationException",
            "{what}"
        );
    }
}

#[tokio::test]
async fn a_member_of_the_wrong_json_type_is_a_serialization_error() {
    let server = TestServer::start().await;
    let (key_id, _) = create_key(&server.client(), "types").await;

    let cases = [
        ("DescribeKey", r#"{"KeyId": 5}"#.to_owned()),
        ("DescribeKey", r#"{"KeyId": ["a"]}"#.to_owned()),
        ("ListKeys", r#"{"Limit": "ten"}"#.to_owned()),
        (
            "Encrypt",
            format!(r#"{{"KeyId": "{key_id}", "Plaintext": 12}}"#),
        ),
        (
            "Encrypt",
            format!(r#"{{"KeyId": "{key_id}", "Plaintext": "eA==", "EncryptionContext": ["a"]}}"#),
        ),
        (
            "Encrypt",
            format!(r#"{{"KeyId": "{key_id}", "Plaintext": "eA==", "DryRun": "yes"}}"#),
        ),
    ];
    for (operation, body) in cases {
        let (status, response) = server
            .raw(&format!("TrentService.{operation}"), &body, true)
            .await;
        assert_eq!(
            error_type(status, &response),
            "SerializationException",
            "{operation} {body}"
        );
    }
}

#[tokio::test]
async fn a_missing_required_member_is_a_validation_error_naming_it() {
    let server = TestServer::start().await;

    let (status, body) = server.raw("TrentService.DescribeKey", "{}", true).await;
    let (null_status, null_body) = server
        .raw("TrentService.DescribeKey", r#"{"KeyId": null}"#, true)
        .await;
    let (encrypt_status, encrypt_body) = server
        .raw("TrentService.Encrypt", r#"{"Plaintext": "eA=="}"#, true)
        .await;
    let (plaintext_status, plaintext_body) = server
        .raw("TrentService.Encrypt", r#"{"KeyId": "alias/x"}"#, true)
        .await;

    assert_eq!(error_type(status, &body), "ValidationException");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("'keyId'")),
        "names keyId: {body}"
    );
    assert_eq!(error_type(null_status, &null_body), "ValidationException");
    assert_eq!(
        error_type(encrypt_status, &encrypt_body),
        "ValidationException"
    );
    assert!(
        encrypt_body["message"]
            .as_str()
            .is_some_and(|m| m.contains("'keyId'")),
        "names keyId: {encrypt_body}"
    );
    assert_eq!(
        error_type(plaintext_status, &plaintext_body),
        "ValidationException"
    );
    assert!(
        plaintext_body["message"]
            .as_str()
            .is_some_and(|m| m.contains("'plaintext'")),
        "names plaintext: {plaintext_body}"
    );
}

#[tokio::test]
async fn model_constraints_are_validation_errors() {
    let server = TestServer::start().await;
    let (key_id, _) = create_key(&server.client(), "constraints").await;

    let cases = [
        (
            "GenerateDataKey",
            format!(r#"{{"KeyId": "{key_id}", "KeySpec": "AES_512"}}"#),
        ),
        ("ListKeys", r#"{"Limit": 0}"#.to_owned()),
        ("DescribeKey", r#"{"KeyId": ""}"#.to_owned()),
        (
            "Encrypt",
            format!(r#"{{"KeyId": "{key_id}", "Plaintext": ""}}"#),
        ),
        (
            "ScheduleKeyDeletion",
            format!(r#"{{"KeyId": "{key_id}", "PendingWindowInDays": 31}}"#),
        ),
    ];
    for (operation, body) in cases {
        let (status, response) = server
            .raw(&format!("TrentService.{operation}"), &body, true)
            .await;
        assert_eq!(
            error_type(status, &response),
            "ValidationException",
            "{operation} {body}"
        );
    }
}

#[tokio::test]
async fn an_unknown_target_is_an_unknown_operation() {
    let server = TestServer::start().await;

    let targets = [
        "TrentService.Frobnicate",
        "OtherService.ListKeys",
        "ListKeys",
        "TrentService.",
    ];
    for target in targets {
        let (status, body) = server.raw(target, "{}", true).await;
        assert_eq!(
            error_type(status, &body),
            "UnknownOperationException",
            "{target}"
        );
    }
}

/// Every operation of the KMS model reaches a handler: an empty request gets a validation error or an
/// answer, never "does not support yet".
#[tokio::test]
async fn every_operation_in_the_kms_model_is_implemented() {
    let server = TestServer::start().await;
    let model: serde_json::Value =
        serde_json::from_str(include_str!("../../../protocol/model/kms-2014-11-01.json"))
            .expect("the embedded model parses");
    let operations = model["operations"]
        .as_object()
        .expect("the model lists operations");
    assert!(operations.len() >= 54, "{} operations", operations.len());
    for name in operations.keys() {
        let (status, response) = server
            .raw(&format!("TrentService.{name}"), "{}", true)
            .await;
        let message = response["message"].as_str().unwrap_or_default();
        assert!(
            !message.contains("does not support yet"),
            "{name}: {status} {response}"
        );
        assert_ne!(
            status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{name}: {response}"
        );
    }
}

#[tokio::test]
async fn every_error_is_json_with_a_type_and_a_message_and_never_404_or_500() {
    let server = TestServer::start().await;
    let (key_id, _) = create_key(&server.client(), "errors").await;
    let missing = "00000000-0000-4000-8000-000000000000";

    let requests: Vec<(String, String, bool)> = vec![
        ("TrentService.ListKeys".to_owned(), "{}".to_owned(), false),
        (
            "TrentService.DescribeKey".to_owned(),
            format!(r#"{{"KeyId": "{missing}"}}"#),
            true,
        ),
        (
            "TrentService.DescribeKey".to_owned(),
            r#"{"KeyId": "arn:aws:kms:nonsense"}"#.to_owned(),
            true,
        ),
        (
            "TrentService.Decrypt".to_owned(),
            r#"{"CiphertextBlob": "AAAA"}"#.to_owned(),
            true,
        ),
        (
            "TrentService.Decrypt".to_owned(),
            r#"{"CiphertextBlob": "not base64!"}"#.to_owned(),
            true,
        ),
        (
            "TrentService.Encrypt".to_owned(),
            format!(r#"{{"KeyId": "{key_id}", "Plaintext": "eA==", "DryRun": true}}"#),
            true,
        ),
        (
            "TrentService.CreateAlias".to_owned(),
            format!(r#"{{"AliasName": "alias/aws/x", "TargetKeyId": "{key_id}"}}"#),
            true,
        ),
        (
            "TrentService.CreateAlias".to_owned(),
            format!(r#"{{"AliasName": "no-prefix", "TargetKeyId": "{key_id}"}}"#),
            true,
        ),
        (
            "TrentService.GetKeyPolicy".to_owned(),
            format!(r#"{{"KeyId": "{key_id}", "PolicyName": "x"}}"#),
            true,
        ),
        (
            "TrentService.PutKeyPolicy".to_owned(),
            format!(r#"{{"KeyId": "{key_id}", "Policy": "{{"}}"#),
            true,
        ),
        (
            "TrentService.ListKeys".to_owned(),
            r#"{"Marker": "bogus"}"#.to_owned(),
            true,
        ),
        (
            "TrentService.CancelKeyDeletion".to_owned(),
            format!(r#"{{"KeyId": "{key_id}"}}"#),
            true,
        ),
        (
            "TrentService.GenerateRandom".to_owned(),
            "{}".to_owned(),
            true,
        ),
        (
            "TrentService.Sign".to_owned(),
            format!(
                r#"{{"KeyId": "{key_id}", "Message": "aGk=", "SigningAlgorithm": "ECDSA_SHA_256"}}"#
            ),
            true,
        ),
        ("".to_owned(), "{}".to_owned(), true),
    ];
    for (target, body, sign) in requests {
        let (status, response) = server.raw(&target, &body, sign).await;
        let code = error_type(status, &response);
        assert!(
            code.ends_with("Exception"),
            "{target} {body}: __type {code}"
        );
    }
}

#[tokio::test]
async fn a_body_changed_after_signing_is_an_invalid_signature() {
    let server = TestServer::start().await;
    let (key_id, _) = create_key(&server.client(), "signed").await;

    let signer = Signer {
        signed_body: Some(r#"{"KeyId":"alias/other"}"#),
        ..Signer::dev()
    };
    let (status, body) = server
        .raw_as(
            "TrentService.DescribeKey",
            &format!(r#"{{"KeyId":"{key_id}"}}"#),
            Some(signer),
        )
        .await;

    assert_eq!(error_type(status, &body), "InvalidSignatureException");
}

#[tokio::test]
async fn a_signature_for_another_service_is_refused() {
    let server = TestServer::start().await;

    let (status, body) = server
        .raw_as(
            "TrentService.ListKeys",
            "{}",
            Some(Signer {
                service: "s3",
                ..Signer::dev()
            }),
        )
        .await;

    assert_eq!(error_type(status, &body), "InvalidSignatureException");
}

#[tokio::test]
async fn a_signature_more_than_5_minutes_old_or_ahead_is_refused() {
    let server = TestServer::start().await;
    let list_keys_signed_at = |time: SystemTime| {
        let server = &server;
        async move {
            server
                .raw_as(
                    "TrentService.ListKeys",
                    "{}",
                    Some(Signer {
                        time,
                        ..Signer::dev()
                    }),
                )
                .await
        }
    };
    // X-Amz-Date has a resolution of one second and the server reads its clock a moment after the
    // client, so the accepted cases stay a minute inside the limit and the refused ones a minute outside.
    for minutes in [6, 20] {
        let offset = Duration::from_secs(minutes * 60);
        for (label, time) in [
            ("behind", SystemTime::now() - offset),
            ("ahead", SystemTime::now() + offset),
        ] {
            let (status, body) = list_keys_signed_at(time).await;
            assert_eq!(
                error_type(status, &body),
                "InvalidSignatureException",
                "{minutes} minutes {label}: {body}"
            );
            let message = body["message"].as_str().unwrap_or_default();
            assert!(
                message.starts_with("Signature expired")
                    || message.starts_with("Signature not yet current"),
                "{minutes} minutes {label}: {message}"
            );
        }
    }
    for (label, time) in [
        ("behind", SystemTime::now() - Duration::from_secs(4 * 60)),
        ("ahead", SystemTime::now() + Duration::from_secs(4 * 60)),
    ] {
        let (status, body) = list_keys_signed_at(time).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "four minutes {label} is within the tolerated skew: {body}"
        );
    }
}

#[tokio::test]
async fn responses_carry_the_json_content_type_and_a_request_id() {
    let server = TestServer::start().await;

    let (ok_status, ok_headers, _) = server
        .raw_response("TrentService.ListKeys", "{}", Some(Signer::dev()))
        .await;
    let (error_status, error_headers, error_body) = server
        .raw_response("TrentService.DescribeKey", "{}", Some(Signer::dev()))
        .await;

    assert_eq!(ok_status, StatusCode::OK);
    for (what, headers) in [("success", &ok_headers), ("error", &error_headers)] {
        let content_type = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        assert_eq!(content_type, Some("application/x-amz-json-1.1"), "{what}");
        let request_id = headers
            .get("x-amzn-requestid")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(!request_id.is_empty(), "{what} has an x-amzn-RequestId");
    }
    assert_eq!(error_status, StatusCode::BAD_REQUEST);
    let error_type_header = error_headers
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok());
    assert_eq!(error_type_header, error_body["__type"].as_str());
}

#[tokio::test]
async fn an_unparseable_key_id_is_not_found() {
    let server = TestServer::start().await;

    let (status, body) = server
        .raw(
            "TrentService.DescribeKey",
            r#"{"KeyId": "not-a-key"}"#,
            true,
        )
        .await;

    assert_eq!(error_type(status, &body), "NotFoundException");
}
