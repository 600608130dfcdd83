//! Python clients against a real server: boto3 and the AWS Encryption SDK, unchanged, pointed at it with
//! `AWS_ENDPOINT_URL_KMS`.
//!
//! The interpreter comes from `STRONGROOM_PYTHON` (set by `cargo xtask ci`, which installs boto3 and the
//! Encryption SDK into `target/python`), or `target/python/bin/python` when that exists.

use std::path::PathBuf;

use crate::harness::TestServer;

pub(crate) fn python() -> PathBuf {
    if let Some(path) = std::env::var_os("STRONGROOM_PYTHON") {
        return PathBuf::from(path);
    }
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    workspace.join("target/python/bin/python")
}

#[tokio::test(flavor = "multi_thread")]
async fn boto3_and_the_encryption_sdk_work_unchanged() {
    let server = TestServer::start().await;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/compat.py");
    let interpreter = python();
    let output = tokio::process::Command::new(&interpreter)
        .arg(&script)
        .env("AWS_ENDPOINT_URL_KMS", server.endpoint())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .output()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}): run `cargo xtask ci`, which installs boto3 and the AWS Encryption SDK there",
                interpreter.display()
            )
        });
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the Python client failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("compatibility: ok"), "{stdout}");
    server.stop().await;
}
