//! The delivered layout: CloudTrail's file names, contents, digests and chain links.

use aws_lc_rs::digest::{SHA256, digest};
use serde_json::Value;
use strongroom_audit::verify;
use time::OffsetDateTime;

use crate::support::{
    ACCOUNT, OTHER_ACCOUNT, OTHER_REGION, REGION, TempDir, encrypt, files_under, gunzip, open_log,
};

fn hex_sha256(bytes: &[u8]) -> String {
    digest(&SHA256, bytes)
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn log_files(root: &std::path::Path, account: &str, region: &str) -> Vec<String> {
    files_under(root, &format!("AWSLogs/{account}/CloudTrail/{region}"))
}

fn digest_files(root: &std::path::Path, account: &str, region: &str) -> Vec<String> {
    files_under(
        root,
        &format!("AWSLogs/{account}/CloudTrail-Digest/{region}"),
    )
    .into_iter()
    .filter(|key| key.ends_with(".json.gz"))
    .collect()
}

fn records(root: &std::path::Path, key: &str) -> Vec<Value> {
    let content: Value = serde_json::from_slice(&gunzip(&root.join(key))).unwrap();
    content["Records"].as_array().unwrap().clone()
}

/// Checks `key` against `AWSLogs/<a>/CloudTrail/<r>/YYYY/MM/DD/<a>_CloudTrail_<r>_<YYYYMMDDTHHmmZ>_<16>.json.gz`.
fn assert_log_file_name(key: &str, account: &str, region: &str) {
    let parts: Vec<&str> = key.split('/').collect();
    assert_eq!(parts.len(), 8, "{key}");
    assert_eq!(
        &parts[..4],
        ["AWSLogs", account, "CloudTrail", region],
        "{key}"
    );
    let (year, month, day) = (parts[4], parts[5], parts[6]);
    assert!(
        year.len() == 4 && month.len() == 2 && day.len() == 2,
        "{key}"
    );
    let name = parts[7]
        .strip_prefix(&format!("{account}_CloudTrail_{region}_"))
        .and_then(|rest| rest.strip_suffix(".json.gz"))
        .unwrap_or_else(|| panic!("bad log file name {key}"));
    let (stamp, suffix) = name.split_once('_').unwrap();
    assert_eq!(stamp.len(), "20261122T1015Z".len(), "{key}");
    assert!(stamp.starts_with(&format!("{year}{month}{day}T")), "{key}");
    assert!(stamp.ends_with('Z'), "{key}");
    assert_eq!(suffix.len(), 16, "{key}");
    assert!(
        suffix.bytes().all(|byte| byte.is_ascii_alphanumeric()),
        "{key}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_writes_cloudtrail_layout_per_account_and_region() {
    let dir = TempDir::new("layout");
    let log = open_log(&dir).await;
    let mut events = Vec::new();
    for _ in 0..3 {
        events.push(encrypt(ACCOUNT, ACCOUNT, REGION));
    }
    events.push(encrypt(ACCOUNT, ACCOUNT, OTHER_REGION));
    events.push(encrypt(OTHER_ACCOUNT, OTHER_ACCOUNT, REGION));
    // Alice of the first account uses a key of the other account: both accounts get the event.
    let cross = encrypt(ACCOUNT, OTHER_ACCOUNT, REGION);
    let cross_request = cross.request_id.clone();
    events.push(cross);
    log.record(events).await.unwrap();
    log.flush_now().await.unwrap();

    let root = log.dir();
    let mine = log_files(root, ACCOUNT, REGION);
    let mine_elsewhere = log_files(root, ACCOUNT, OTHER_REGION);
    let theirs = log_files(root, OTHER_ACCOUNT, REGION);
    assert_eq!((mine.len(), mine_elsewhere.len(), theirs.len()), (1, 1, 1));
    for (key, account, region) in [
        (&mine[0], ACCOUNT, REGION),
        (&mine_elsewhere[0], ACCOUNT, OTHER_REGION),
        (&theirs[0], OTHER_ACCOUNT, REGION),
    ] {
        assert_log_file_name(key, account, region);
        for record in records(root, key) {
            assert_eq!(record["recipientAccountId"], account);
            assert_eq!(record["awsRegion"], region);
            assert_eq!(record["eventVersion"], "1.11");
        }
    }
    let mine_records = records(root, &mine[0]);
    let their_records = records(root, &theirs[0]);
    assert_eq!((mine_records.len(), their_records.len()), (4, 2));
    let shared = |records: &[Value]| {
        records
            .iter()
            .find(|record| record["requestID"] == serde_json::json!(cross_request))
            .map(|record| (record["sharedEventID"].clone(), record["eventID"].clone()))
            .unwrap()
    };
    let (shared_mine, id_mine) = shared(&mine_records);
    let (shared_theirs, id_theirs) = shared(&their_records);
    assert!(shared_mine.is_string());
    assert_eq!(shared_mine, shared_theirs);
    assert_ne!(id_mine, id_theirs);

    // No plaintext reached any delivered file.
    for key in files_under(root, "AWSLogs") {
        let bytes = match key.ends_with(".json.gz") {
            true => gunzip(&root.join(&key)),
            false => std::fs::read(root.join(&key)).unwrap(),
        };
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains("UExBSU5URVhULU1BUktFUg=="), "{key}");
    }

    // Once everything is delivered the journal holds its empty active segment, and the delivered
    // segment is kept (renamed) for LookupEvents until its events expire. The segment after the
    // active one may be waiting, prepared (zeros only), beside them.
    let mut journal: Vec<_> = std::fs::read_dir(root.join("journal"))
        .unwrap()
        .flatten()
        .map(|entry| {
            let name = entry.file_name().into_string().unwrap();
            let bytes = std::fs::read(entry.path()).unwrap();
            (name, bytes)
        })
        .filter(|(name, _)| !name.ends_with(".prepared"))
        .collect();
    journal.sort();
    let names: Vec<_> = journal.iter().map(|(name, _)| name).collect();
    assert_eq!(journal.len(), 2, "{names:?}");
    assert!(
        journal[0].0.ends_with(".kept") && !journal[0].1.is_empty(),
        "{names:?}"
    );
    assert!(journal[1].0.ends_with(".journal"), "{names:?}");
    assert!(
        journal[1].1.iter().all(|byte| *byte == 0),
        "the active segment holds no frame yet: {names:?}"
    );

    // One digest per account and Region, listing that chain's log file.
    for (account, region, log_key) in [
        (ACCOUNT, REGION, &mine[0]),
        (ACCOUNT, OTHER_REGION, &mine_elsewhere[0]),
        (OTHER_ACCOUNT, REGION, &theirs[0]),
    ] {
        let digests = digest_files(root, account, region);
        assert_eq!(digests.len(), 1);
        let key = &digests[0];
        let name = key.rsplit('/').next().unwrap();
        assert!(name.starts_with(&format!(
            "{account}_CloudTrail-Digest_{region}_strongroom_{region}_"
        )));
        let raw = gunzip(&root.join(key));
        let digest: Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(digest["awsAccountId"], account);
        assert_eq!(digest["digestS3Object"], key.as_str());
        assert_eq!(digest["digestS3Bucket"], "strongroom-audit");
        assert_eq!(digest["digestSignatureAlgorithm"], "SHA256withRSA");
        assert_eq!(
            digest["digestPublicKeyFingerprint"],
            log.public_key_fingerprint()
        );
        for field in [
            "previousDigestS3Bucket",
            "previousDigestS3Object",
            "previousDigestHashValue",
            "previousDigestHashAlgorithm",
            "previousDigestSignature",
        ] {
            assert!(digest[field].is_null(), "{field} of the first digest");
        }
        let listed = digest["logFiles"].as_array().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0]["s3Object"], log_key.as_str());
        assert_eq!(listed[0]["hashAlgorithm"], "SHA-256");
        assert_eq!(
            listed[0]["hashValue"],
            hex_sha256(&gunzip(&root.join(log_key)))
        );
        let signature: Value =
            serde_json::from_slice(&std::fs::read(root.join(format!("{key}.sig"))).unwrap())
                .unwrap();
        assert_eq!(signature["signature-algorithm"], "SHA256withRSA");
        assert_eq!(signature["signature"].as_str().unwrap().len(), 512);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digests_chain_to_their_predecessors_and_verify() {
    let dir = TempDir::new("chain");
    let log = open_log(&dir).await;
    let start = OffsetDateTime::now_utc() - time::Duration::hours(1);
    for _ in 0..2 {
        log.record(vec![encrypt(ACCOUNT, ACCOUNT, REGION)])
            .await
            .unwrap();
        log.flush_now().await.unwrap();
    }
    let root = log.dir();
    let digests = digest_files(root, ACCOUNT, REGION);
    assert_eq!(digests.len(), 2);
    let first_raw = gunzip(&root.join(&digests[0]));
    let first: Value = serde_json::from_slice(&first_raw).unwrap();
    let second: Value = serde_json::from_slice(&gunzip(&root.join(&digests[1]))).unwrap();
    let first_signature: Value =
        serde_json::from_slice(&std::fs::read(root.join(format!("{}.sig", digests[0]))).unwrap())
            .unwrap();
    assert_eq!(second["previousDigestS3Object"], digests[0].as_str());
    assert_eq!(second["previousDigestS3Bucket"], "strongroom-audit");
    assert_eq!(second["previousDigestHashAlgorithm"], "SHA-256");
    assert_eq!(second["previousDigestHashValue"], hex_sha256(&first_raw));
    assert_eq!(
        second["previousDigestSignature"],
        first_signature["signature"]
    );
    assert_eq!(second["digestStartTime"], first["digestEndTime"]);

    let end = OffsetDateTime::now_utc() + time::Duration::hours(1);
    let report = verify(root, ACCOUNT, REGION, start, end, &[log.public_key_der()]);
    assert!(report.is_ok(), "{report}");
    let (found_start, found_end) = report.found.unwrap();
    let expected = format!(
        "Results requested for {} to {}\nResults found for {} to {}:\n\n2/2 digest files valid\n2/2 log files valid\n",
        stamp(start),
        stamp(end),
        stamp(found_start),
        stamp(found_end),
    );
    assert_eq!(report.to_string(), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_trail_reports_no_digests() {
    let dir = TempDir::new("empty");
    let log = open_log(&dir).await;
    let start = OffsetDateTime::now_utc() - time::Duration::hours(1);
    let end = start + time::Duration::hours(2);
    let report = verify(
        log.dir(),
        ACCOUNT,
        REGION,
        start,
        end,
        &[log.public_key_der()],
    );
    assert!(report.is_ok());
    assert_eq!(
        report.to_string(),
        format!(
            "Results requested for {} to {}\nNo digests found\n",
            stamp(start),
            stamp(end)
        )
    );
}

fn stamp(time: OffsetDateTime) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    time.format(format).unwrap()
}
