//! The audit trail end to end: one CloudTrail record per request, found with LookupEvents, free of
//! secrets, delivered as signed files that `strongroom audit verify` validates and tampering breaks.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::harness::{ProcessServer, Signer, TempDir, TestServer, create_key, encrypt};

const LOOKUP: &str = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents";
const PLAINTEXT: &[u8] = b"audit-plaintext-marker-7c1f";

fn cloudtrail_signer(access_key: &str) -> Signer<'_> {
    Signer {
        access_key,
        service: "cloudtrail",
        ..Signer::dev()
    }
}

async fn lookup(server: &TestServer, access_key: &str, body: Value) -> Vec<Value> {
    let (status, response) = server
        .raw_as(
            LOOKUP,
            &body.to_string(),
            Some(cloudtrail_signer(access_key)),
        )
        .await;
    assert_eq!(status, 200, "{response}");
    response["Events"].as_array().cloned().unwrap_or_default()
}

/// The names of the service events (`AwsServiceEvent`) recorded for `key_arn` in the dev account and
/// the key's Region, polling briefly until at least `expected` are there: they are recorded in the
/// background.
pub(crate) async fn service_event_names(
    server: &TestServer,
    key_arn: &str,
    expected: usize,
) -> Vec<String> {
    // arn:aws:kms:REGION:ACCOUNT:key/ID; LookupEvents answers for the Region it is sent to.
    let region = key_arn.split(':').nth(3).expect("a key ARN");
    let signer = Signer {
        region,
        ..cloudtrail_signer("test")
    };
    let mut names = Vec::new();
    for _ in 0..50 {
        let (status, response) = server
            .raw_as(LOOKUP, &json!({}).to_string(), Some(signer))
            .await;
        assert_eq!(status, 200, "{response}");
        names = response["Events"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(record)
            .filter(|r| r["eventType"] == "AwsServiceEvent" && r["resources"][0]["ARN"] == key_arn)
            .filter_map(|r| r["eventName"].as_str().map(str::to_owned))
            .collect();
        if names.len() >= expected {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    names
}

fn record(entry: &Value) -> Value {
    serde_json::from_str(
        entry["CloudTrailEvent"]
            .as_str()
            .expect("each entry carries its record"),
    )
    .expect("the record is JSON")
}

#[tokio::test(flavor = "multi_thread")]
async fn every_request_is_recorded_and_can_be_looked_up() {
    let server = TestServer::start().await;
    let client = server.client();
    let (key_id, key_arn) = create_key(&client, "audited").await;
    encrypt(&client, &key_id, PLAINTEXT, &[("purpose", "audit")]).await;
    // A denied request (another account), a malformed one, and one with a bad signature.
    let other = server.client_for("444455556666", "us-east-1");
    let _ = other.describe_key().key_id(&key_arn).send().await;
    let (status, _) = server.raw("TrentService.Encrypt", "{not json", true).await;
    assert_eq!(status, 400);

    let events = lookup(&server, "test", json!({})).await;
    let names: Vec<&str> = events
        .iter()
        .filter_map(|e| e["EventName"].as_str())
        .collect();
    assert!(
        names.contains(&"CreateKey") && names.contains(&"Encrypt"),
        "{names:?}"
    );

    let encrypt_event = events
        .iter()
        .map(record)
        .find(|r| r["eventName"] == "Encrypt" && r["errorCode"].is_null())
        .expect("a successful Encrypt record");
    assert_eq!(encrypt_event["eventSource"], "kms.amazonaws.com");
    assert_eq!(encrypt_event["userIdentity"]["type"], "Root");
    assert_eq!(encrypt_event["requestParameters"]["keyId"], key_id.as_str());
    assert_eq!(
        encrypt_event["requestParameters"]["encryptionContext"]["purpose"],
        "audit"
    );
    assert_eq!(encrypt_event["resources"][0]["ARN"], key_arn.as_str());
    assert!(
        encrypt_event["responseElements"].is_null(),
        "{encrypt_event}"
    );
    assert!(
        !encrypt_event.to_string().contains("audit-plaintext-marker"),
        "{encrypt_event}"
    );

    let malformed = events
        .iter()
        .map(record)
        .find(|r| r["errorCode"] == "SerializationException")
        .expect("the malformed request was recorded");
    assert_eq!(malformed["eventName"], "Encrypt");

    // The denied cross-account request is recorded for the key's owner too.
    let denied = events
        .iter()
        .map(record)
        .find(|r| r["eventName"] == "DescribeKey" && r["errorCode"] == "AccessDeniedException")
        .expect("the denied request is in the owner's trail");
    assert_eq!(denied["userIdentity"]["accountId"], "444455556666");

    // Filtering by event name, and another account sees only its own events.
    let only_creates = lookup(
        &server,
        "test",
        json!({"LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": "CreateKey"}]}),
    )
    .await;
    assert!(!only_creates.is_empty() && only_creates.iter().all(|e| e["EventName"] == "CreateKey"));
    let theirs = lookup(&server, "444455556666", json!({})).await;
    assert!(
        theirs
            .iter()
            .all(|e| record(e)["userIdentity"]["accountId"] == "444455556666"),
        "{theirs:?}"
    );
    assert!(
        !theirs.iter().any(|e| e["EventName"] == "CreateKey"),
        "{theirs:?}"
    );
    server.stop().await;
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// Runs `strongroom audit verify` on `data_dir` with `extra` arguments: whether it passed, and
/// what it printed.
fn verify(data_dir: &Path, extra: &[&std::ffi::OsStr]) -> (bool, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_strongroom"))
        .args(["audit", "verify", "--data-dir"])
        .arg(data_dir)
        .args(["--start-time", "2020-01-01T00:00:00Z"])
        .args(extra)
        .output()
        .expect("strongroom audit verify runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// Runs `strongroom serve` on `data_dir` with `extra` arguments, creates a key, encrypts
/// `PLAINTEXT` under it, and stops the server cleanly, which delivers the trail.
fn serve_one_encrypt(data_dir: &Path, extra: &[&str]) {
    let server = ProcessServer::start(data_dir, extra);
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let client = server.client();
        let (key_id, _) = create_key(&client, "audited").await;
        encrypt(&client, &key_id, PLAINTEXT, &[]).await;
    });
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
}

#[test]
fn delivered_files_verify_and_tampering_is_caught() {
    let dir = TempDir::new("audit-verify");
    serve_one_encrypt(dir.path(), &["--dev"]);

    let (ok, report) = verify(dir.path(), &[]);
    assert!(ok, "a fresh trail must verify:\n{report}");

    let mut files = Vec::new();
    files_under(&dir.path().join("audit"), &mut files);
    for file in &files {
        let bytes = std::fs::read(file).expect("readable");
        assert!(
            !bytes.windows(PLAINTEXT.len()).any(|w| w == PLAINTEXT),
            "plaintext found in {}",
            file.display()
        );
    }
    let log = files
        .iter()
        .find(|p| {
            p.to_string_lossy().contains("/CloudTrail/")
                && p.to_string_lossy().ends_with(".json.gz")
        })
        .expect("a delivered log file");
    let mut bytes = std::fs::read(log).expect("readable");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(log, bytes).expect("writable");
    let (ok, report) = verify(dir.path(), &[]);
    assert!(!ok, "a changed log file must fail verification:\n{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn iam_calls_are_recorded_without_their_parameters() {
    let server = TestServer::start().await;
    let admin = crate::iam::iam(&server.endpoint(), &crate::iam::Keys::dev());
    admin
        .create_user()
        .user_name("audited-user")
        .send()
        .await
        .expect("CreateUser");
    let duplicate = admin.create_user().user_name("audited-user").send().await;
    assert!(
        duplicate.is_err(),
        "a second CreateUser of the same name fails"
    );

    let events = lookup(
        &server,
        "test",
        json!({"LookupAttributes": [{"AttributeKey": "EventSource", "AttributeValue": "iam.amazonaws.com"}]}),
    )
    .await;
    let records: Vec<Value> = events.iter().map(record).collect();
    let creates: Vec<&Value> = records
        .iter()
        .filter(|r| r["eventName"] == "CreateUser")
        .collect();
    assert_eq!(creates.len(), 2, "{records:?}");
    assert!(creates.iter().any(|r| r["errorCode"].is_null()));
    assert!(
        creates
            .iter()
            .any(|r| r["errorCode"] == "EntityAlreadyExists"),
        "{creates:?}"
    );
    assert!(
        creates
            .iter()
            .all(|r| r["userIdentity"]["type"] == "Root" && r["requestParameters"].is_null())
    );
    server.stop().await;
}

#[test]
fn the_trail_can_live_in_a_directory_of_its_own() {
    let dir = TempDir::new("audit-own-dir");
    let data_dir = dir.path().join("data");
    let audit_dir = dir.path().join("trail");
    serve_one_encrypt(
        &data_dir,
        &[
            "--dev",
            "--audit-dir",
            audit_dir.to_str().expect("a UTF-8 path"),
        ],
    );

    // Nothing of the trail is in the data directory; all of it is in the directory given.
    assert!(!data_dir.join("audit").exists());
    let mut files = Vec::new();
    files_under(&audit_dir, &mut files);
    assert!(
        files
            .iter()
            .any(|p| p.to_string_lossy().contains("/AWSLogs/")
                && p.to_string_lossy().ends_with(".json.gz")),
        "{files:?}"
    );
    assert!(audit_dir.join("journal").is_dir(), "{files:?}");

    // `audit verify` finds it when told where it is, and fails when looking in the data directory.
    let (ok, report) = verify(&data_dir, &["--audit-dir".as_ref(), audit_dir.as_os_str()]);
    assert!(ok, "{report}");
    let (ok, report) = verify(&data_dir, &[]);
    assert!(!ok, "{report}");
    assert!(report.contains("public key"), "{report}");
}

#[test]
fn the_configuration_file_places_the_trail_and_the_command_line_wins() {
    use strongroom_server::{Config, ConfigFile, Overrides};
    let dir = TempDir::new("audit-dir-config");
    let path = dir.path().join("strongroom.toml");
    std::fs::write(&path, "data_dir = \"data\"\naudit_dir = \"trail\"\n").unwrap();
    let config = Config::build(ConfigFile::load(&path).unwrap(), Overrides::default()).unwrap();
    // Relative to the configuration file, like the data directory.
    assert_eq!(config.audit_location(), dir.path().join("trail"));

    let overrides = Overrides {
        audit_dir: Some("/elsewhere/trail".into()),
        ..Overrides::default()
    };
    let config = Config::build(ConfigFile::load(&path).unwrap(), overrides).unwrap();
    assert_eq!(
        config.audit_location(),
        std::path::Path::new("/elsewhere/trail")
    );

    std::fs::write(&path, "data_dir = \"data\"\n").unwrap();
    let config = Config::build(ConfigFile::load(&path).unwrap(), Overrides::default()).unwrap();
    assert_eq!(
        config.audit_location(),
        dir.path().join("data").join("audit")
    );
}

#[test]
fn every_answered_request_is_in_the_trail_after_kill_9_under_load() {
    use aws_sdk_kms::operation::RequestId;
    use std::sync::{Arc, Mutex};

    let dir = TempDir::new("audit-kill9");
    let server = ProcessServer::start_dev(dir.path());
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let answered = Arc::new(Mutex::new(Vec::<String>::new()));
    let tasks = runtime.block_on(async {
        let client = server.client();
        let (key_id, _) = create_key(&client, "under load").await;
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let client = client.clone();
            let key_id = key_id.clone();
            let answered = answered.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    let request = client
                        .encrypt()
                        .key_id(&key_id)
                        .plaintext(aws_sdk_kms::primitives::Blob::new(PLAINTEXT));
                    match request.send().await {
                        Ok(output) => {
                            let id = output.request_id().expect("a request id").to_owned();
                            answered.lock().unwrap_or_else(|p| p.into_inner()).push(id);
                        }
                        Err(_) => return,
                    }
                }
            }));
        }
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        tasks
    });
    server.kill9();
    runtime.block_on(async {
        for task in tasks {
            let _ = task.await;
        }
    });
    let answered = answered.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert!(
        answered.len() > 50,
        "the load ran: {} answered requests",
        answered.len()
    );

    runtime.block_on(async {
        let server = TestServer::start_in(dir.path(), |_| {}).await;
        let mut recorded = std::collections::HashSet::new();
        let mut token: Option<String> = None;
        loop {
            let mut body = json!({"MaxResults": 50});
            if let Some(token) = &token {
                body["NextToken"] = json!(token);
            }
            let (status, response) = server
                .raw_as(LOOKUP, &body.to_string(), Some(cloudtrail_signer("test")))
                .await;
            assert_eq!(status, 200, "{response}");
            for entry in response["Events"].as_array().cloned().unwrap_or_default() {
                if let Some(id) = record(&entry)["requestID"].as_str() {
                    recorded.insert(id.to_owned());
                }
            }
            match response["NextToken"].as_str() {
                Some(next) => token = Some(next.to_owned()),
                None => break,
            }
        }
        let missing: Vec<&String> = answered
            .iter()
            .filter(|id| !recorded.contains(*id))
            .collect();
        assert!(
            missing.is_empty(),
            "{} of {} answered requests have no audit record",
            missing.len(),
            answered.len()
        );
        server.stop().await;
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn automatic_rotation_and_deletion_are_recorded_as_service_events() {
    let server = TestServer::start().await;
    let client = server.client();
    let (key_id, key_arn) = create_key(&client, "service events").await;
    client
        .enable_key_rotation()
        .key_id(&key_id)
        .rotation_period_in_days(90)
        .send()
        .await
        .expect("enable rotation");
    server
        .clock()
        .advance(std::time::Duration::from_secs(91 * 86_400));
    client
        .describe_key()
        .key_id(&key_id)
        .send()
        .await
        .expect("the access rotates the key");
    client
        .schedule_key_deletion()
        .key_id(&key_id)
        .pending_window_in_days(7)
        .send()
        .await
        .expect("schedule");
    server
        .clock()
        .advance(std::time::Duration::from_secs(8 * 86_400));
    let gone = client.describe_key().key_id(&key_id).send().await;
    assert!(gone.is_err(), "the key is deleted");

    let names = service_event_names(&server, &key_arn, 2).await;
    assert!(
        names.contains(&"RotateKey".to_owned()) && names.contains(&"DeleteKey".to_owned()),
        "{names:?}"
    );
    server.stop().await;
}
