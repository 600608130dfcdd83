//! Shared fixtures: temporary directories, audit logs and sample events.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use flate2::read::GzDecoder;
use serde_json::json;
use strongroom_audit::{
    ApiCall, AuditConfig, AuditLog, Event, KMS_EVENT_SOURCE, Resource, UserIdentity, kms_read_only,
    redact_kms_request,
};
use time::OffsetDateTime;

pub(crate) const ACCOUNT: &str = "111122223333";
pub(crate) const OTHER_ACCOUNT: &str = "444455556666";
pub(crate) const REGION: &str = "us-east-1";
pub(crate) const OTHER_REGION: &str = "eu-west-1";

/// A fresh directory under the system's temporary directory, removed when dropped.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!(
            "strongroom-audit-it-{name}-{}",
            uuid::Uuid::new_v4()
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(crate) fn config(dir: &Path) -> AuditConfig {
    let mut config = AuditConfig::new(dir.join("audit"), dir.join("keys/digest.pk8"));
    // Long windows keep the periodic task out of the way; tests deliver with flush_now.
    config.file_window = Duration::from_secs(3600);
    config
}

pub(crate) async fn open_log(dir: &TempDir) -> AuditLog {
    AuditLog::open(config(&dir.0)).await.unwrap()
}

pub(crate) fn key_arn(account: &str, region: &str) -> String {
    format!("arn:aws:kms:{region}:{account}:key/1234abcd-12ab-34cd-56ef-1234567890ab")
}

/// An Encrypt call by Alice of `caller_account` with a key of `key_account` in `region`.
pub(crate) fn encrypt(caller_account: &str, key_account: &str, region: &str) -> Event {
    let arn = key_arn(key_account, region);
    let body = json!({"KeyId": arn, "Plaintext": "UExBSU5URVhULU1BUktFUg=="});
    let body = match body {
        serde_json::Value::Object(body) => body,
        _ => unreachable!("a JSON object literal"),
    };
    ApiCall {
        user_identity: UserIdentity::iam_user(
            caller_account,
            "Alice",
            "AIDAEXAMPLEALICE",
            Some("AKIAEXAMPLEALICE"),
        ),
        event_time: OffsetDateTime::now_utc(),
        event_source: KMS_EVENT_SOURCE.to_owned(),
        event_name: "Encrypt".to_owned(),
        aws_region: region.to_owned(),
        source_ip: "192.0.2.10".to_owned(),
        user_agent: "it".to_owned(),
        request_id: Some(uuid::Uuid::new_v4().to_string()),
        request_parameters: redact_kms_request("Encrypt", &body),
        response_elements: serde_json::Value::Null,
        error_code: None,
        error_message: None,
        read_only: kms_read_only("Encrypt"),
        resources: vec![Resource::kms_key(&arn, key_account)],
        recipient_account_id: key_account.to_owned(),
        additional_event_data: None,
        tls_details: None,
    }
    .into_event()
}

/// Every file under `root/relative`, as paths relative to `root`, sorted.
pub(crate) fn files_under(root: &Path, relative: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending = vec![relative.to_owned()];
    while let Some(relative) = pending.pop() {
        let entries = match std::fs::read_dir(root.join(&relative)) {
            Ok(entries) => entries,
            Err(_) => continue,
        };
        for entry in entries.flatten() {
            let key = format!("{relative}/{}", entry.file_name().to_string_lossy());
            match entry.file_type().unwrap().is_dir() {
                true => pending.push(key),
                false => found.push(key),
            }
        }
    }
    found.sort();
    found
}

pub(crate) fn gunzip(path: &Path) -> Vec<u8> {
    let compressed = std::fs::read(path).unwrap();
    let mut out = Vec::new();
    GzDecoder::new(compressed.as_slice())
        .read_to_end(&mut out)
        .unwrap();
    out
}

pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}
