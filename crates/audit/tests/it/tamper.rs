//! Tamper detection: every kind of change to delivered files makes `verify` fail.
//!
//! Each test builds a trail of three digests, each listing one log file, changes it the way an
//! intruder might, and checks both the verdicts and the report's wording.

use std::path::Path;

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use serde_json::Value;
use strongroom_audit::{
    AuditLog, DigestOutcome, LogFileOutcome, VerifyReport, fingerprint, verify,
};
use time::OffsetDateTime;

use crate::support::{ACCOUNT, REGION, TempDir, encrypt, files_under, gunzip, gzip, open_log};

struct Trail {
    _dir: TempDir,
    log: AuditLog,
    digests: Vec<String>,
    log_files: Vec<String>,
}

impl Trail {
    async fn build(name: &str) -> Trail {
        let dir = TempDir::new(name);
        let log = open_log(&dir).await;
        for _ in 0..3 {
            log.record(vec![
                encrypt(ACCOUNT, ACCOUNT, REGION),
                encrypt(ACCOUNT, ACCOUNT, REGION),
            ])
            .await
            .unwrap();
            log.flush_now().await.unwrap();
        }
        let root = log.dir().to_path_buf();
        let digests: Vec<String> = files_under(
            &root,
            &format!("AWSLogs/{ACCOUNT}/CloudTrail-Digest/{REGION}"),
        )
        .into_iter()
        .filter(|key| key.ends_with(".json.gz"))
        .collect();
        let mut log_files = Vec::new();
        for key in &digests {
            let digest: Value = serde_json::from_slice(&gunzip(&root.join(key))).unwrap();
            for file in digest["logFiles"].as_array().unwrap() {
                log_files.push(file["s3Object"].as_str().unwrap().to_owned());
            }
        }
        assert_eq!((digests.len(), log_files.len()), (3, 3));
        let trail = Trail {
            _dir: dir,
            log,
            digests,
            log_files,
        };
        let report = trail.verify();
        assert!(report.is_ok(), "the untouched trail must verify:\n{report}");
        trail
    }

    fn root(&self) -> &Path {
        self.log.dir()
    }

    fn verify(&self) -> VerifyReport {
        self.verify_with(&[self.log.public_key_der()])
    }

    fn verify_with(&self, keys: &[Vec<u8>]) -> VerifyReport {
        let now = OffsetDateTime::now_utc();
        verify(
            self.root(),
            ACCOUNT,
            REGION,
            now - time::Duration::hours(1),
            now + time::Duration::hours(1),
            keys,
        )
    }

    fn digest_outcome(report: &VerifyReport, key: &str) -> DigestOutcome {
        report
            .digests
            .iter()
            .find(|check| check.key == key)
            .map(|check| check.outcome.clone())
            .unwrap_or_else(|| panic!("{key} was not examined:\n{report}"))
    }

    fn log_outcome(report: &VerifyReport, key: &str) -> LogFileOutcome {
        report
            .log_files
            .iter()
            .find(|check| check.key == key)
            .map(|check| check.outcome.clone())
            .unwrap_or_else(|| panic!("{key} was not examined:\n{report}"))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intact_trail_reports_every_file_valid() {
    let trail = Trail::build("intact").await;
    let text = trail.verify().to_string();
    assert!(text.contains("3/3 digest files valid\n"), "{text}");
    assert!(text.contains("3/3 log files valid\n"), "{text}");
    assert!(!text.contains("INVALID"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_byte_in_a_log_file_is_caught() {
    let trail = Trail::build("log-byte").await;
    let path = trail.root().join(&trail.log_files[1]);
    let mut content = gunzip(&path);
    let position = content.len() / 2;
    content[position] ^= 0x01;
    std::fs::write(&path, gzip(&content)).unwrap();

    let report = trail.verify();
    assert!(!report.is_ok());
    assert_eq!(
        Trail::log_outcome(&report, &trail.log_files[1]),
        LogFileOutcome::Modified
    );
    let text = report.to_string();
    assert!(
        text.contains(&format!(
            "Log file\t{}\tINVALID: hash value doesn't match",
            trail.log_files[1]
        )),
        "{text}"
    );
    assert!(
        text.contains("2/3 log files valid, 1/3 log files INVALID"),
        "{text}"
    );
    assert!(text.contains("3/3 digest files valid"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_byte_in_the_compressed_file_is_caught() {
    let trail = Trail::build("gzip-byte").await;
    let path = trail.root().join(&trail.log_files[0]);
    let mut bytes = std::fs::read(&path).unwrap();
    let position = bytes.len() / 2;
    bytes[position] ^= 0x40;
    std::fs::write(&path, bytes).unwrap();

    let report = trail.verify();
    assert!(!report.is_ok());
    assert!(matches!(
        Trail::log_outcome(&report, &trail.log_files[0]),
        LogFileOutcome::Modified | LogFileOutcome::InvalidFormat
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_log_file_is_caught() {
    let trail = Trail::build("log-deleted").await;
    std::fs::remove_file(trail.root().join(&trail.log_files[2])).unwrap();

    let report = trail.verify();
    assert!(!report.is_ok());
    assert_eq!(
        Trail::log_outcome(&report, &trail.log_files[2]),
        LogFileOutcome::NotFound
    );
    assert!(report.to_string().contains("INVALID: not found"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_added_log_file_is_caught() {
    let trail = Trail::build("log-added").await;
    // A forged file named as if delivered a minute before the first digest.
    let original = &trail.log_files[0];
    let (dir, name) = original.rsplit_once('/').unwrap();
    let (head, rest) = name.split_at(format!("{ACCOUNT}_CloudTrail_{REGION}_").len());
    let stamp = &rest[..14];
    let minute_stamp = time::macros::format_description!("[year][month][day]T[hour][minute]Z");
    let earlier = (time::PrimitiveDateTime::parse(stamp, minute_stamp).unwrap()
        - time::Duration::minutes(1))
    .format(minute_stamp)
    .unwrap();
    let forged = format!("{dir}/{head}{earlier}_FORGEDFORGED0000.json.gz");
    std::fs::copy(trail.root().join(original), trail.root().join(&forged)).unwrap();

    let report = trail.verify();
    assert!(!report.is_ok());
    assert_eq!(
        Trail::log_outcome(&report, &forged),
        LogFileOutcome::NotInAnyDigest
    );
    assert!(
        report
            .to_string()
            .contains("INVALID: not listed in any digest")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_digest_is_caught() {
    let trail = Trail::build("digest-deleted").await;
    std::fs::remove_file(trail.root().join(&trail.digests[1])).unwrap();

    let report = trail.verify();
    assert!(!report.is_ok());
    assert_eq!(
        Trail::digest_outcome(&report, &trail.digests[1]),
        DigestOutcome::NotFound
    );
    assert_eq!(
        Trail::digest_outcome(&report, &trail.digests[2]),
        DigestOutcome::Valid
    );
    assert_eq!(
        Trail::digest_outcome(&report, &trail.digests[0]),
        DigestOutcome::Valid
    );
    let text = report.to_string();
    assert!(
        text.contains(&format!(
            "Digest file\t{}\tINVALID: not found",
            trail.digests[1]
        )),
        "{text}"
    );
    assert!(
        text.contains("2/3 digest files valid, 1/3 digest files INVALID"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapped_digests_are_caught() {
    let trail = Trail::build("digest-swapped").await;
    let root = trail.root();
    for suffix in ["", ".sig"] {
        let first = root.join(format!("{}{suffix}", trail.digests[0]));
        let second = root.join(format!("{}{suffix}", trail.digests[1]));
        let parked = root.join("parked");
        std::fs::rename(&first, &parked).unwrap();
        std::fs::rename(&second, &first).unwrap();
        std::fs::rename(&parked, &second).unwrap();
    }

    let report = trail.verify();
    assert!(!report.is_ok());
    assert_eq!(
        Trail::digest_outcome(&report, &trail.digests[1]),
        DigestOutcome::Moved
    );
    assert!(
        report
            .to_string()
            .contains("INVALID: has been moved from its original location")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_replaced_by_another_is_caught() {
    let trail = Trail::build("digest-replaced").await;
    let root = trail.root();
    for suffix in ["", ".sig"] {
        std::fs::copy(
            root.join(format!("{}{suffix}", trail.digests[0])),
            root.join(format!("{}{suffix}", trail.digests[1])),
        )
        .unwrap();
    }

    let report = trail.verify();
    assert!(!report.is_ok());
    assert_eq!(
        Trail::digest_outcome(&report, &trail.digests[1]),
        DigestOutcome::Moved
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_inserted_into_the_chain_is_caught() {
    let trail = Trail::build("digest-inserted").await;
    let root = trail.root();
    // A copy of the first digest under a name one second earlier: valid-looking, but unlinked.
    let original = &trail.digests[0];
    let stamp_start = original.len() - "20261122T101530Z.json.gz".len();
    let stamp = &original[stamp_start..stamp_start + 16];
    let when = time::PrimitiveDateTime::parse(
        stamp,
        time::macros::format_description!("[year][month][day]T[hour][minute][second]Z"),
    )
    .unwrap()
        - time::Duration::seconds(1);
    let earlier = when
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .unwrap();
    let inserted = format!("{}{earlier}.json.gz", &original[..stamp_start]);
    assert!(!trail.digests.contains(&inserted));
    std::fs::copy(root.join(original), root.join(&inserted)).unwrap();
    std::fs::copy(
        root.join(format!("{original}.sig")),
        root.join(format!("{inserted}.sig")),
    )
    .unwrap();

    let report = trail.verify();
    assert!(!report.is_ok());
    assert!(matches!(
        Trail::digest_outcome(&report, &inserted),
        DigestOutcome::NotInChain | DigestOutcome::Moved
    ));
}

/// Rewrites a digest to list a doctored log file, and signs it with a key the trail never used.
fn forge_digest(trail: &Trail, keep_our_fingerprint: bool) -> (String, Vec<u8>) {
    let root = trail.root();
    let log_path = root.join(&trail.log_files[1]);
    let mut content = gunzip(&log_path);
    let position = content.len() / 2;
    content[position] ^= 0x01;
    std::fs::write(&log_path, gzip(&content)).unwrap();

    let key = &trail.digests[1];
    let mut forged: Value = serde_json::from_slice(&gunzip(&root.join(key))).unwrap();
    forged["logFiles"][0]["hashValue"] = Value::String(hex(digest(&SHA256, &content).as_ref()));
    let attacker = KeyPair::generate(KeySize::Rsa2048).unwrap();
    let attacker_public = attacker.public_key().as_ref().to_vec();
    if !keep_our_fingerprint {
        forged["digestPublicKeyFingerprint"] = Value::String(fingerprint(&attacker_public));
    }
    let raw = serde_json::to_vec(&forged).unwrap();
    let to_sign = format!(
        "{}\n{}/{}\n{}\n{}",
        forged["digestEndTime"].as_str().unwrap(),
        forged["digestS3Bucket"].as_str().unwrap(),
        forged["digestS3Object"].as_str().unwrap(),
        hex(digest(&SHA256, &raw).as_ref()),
        forged["previousDigestSignature"].as_str().unwrap_or("null"),
    );
    let mut signature = vec![0; attacker.public_modulus_len()];
    attacker
        .sign(
            &RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            to_sign.as_bytes(),
            &mut signature,
        )
        .unwrap();
    std::fs::write(root.join(key), gzip(&raw)).unwrap();
    std::fs::write(
        root.join(format!("{key}.sig")),
        serde_json::to_vec(&serde_json::json!({
            "signature": hex(&signature),
            "signature-algorithm": "SHA256withRSA"
        }))
        .unwrap(),
    )
    .unwrap();
    (key.clone(), attacker_public)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_signed_by_another_key_is_caught() {
    let trail = Trail::build("forged-fingerprint").await;
    let (key, attacker_public) = forge_digest(&trail, false);

    let report = trail.verify();
    assert!(!report.is_ok());
    assert!(matches!(
        Trail::digest_outcome(&report, &key),
        DigestOutcome::UnknownPublicKey(_)
    ));
    assert!(
        report
            .to_string()
            .contains("INVALID: public key not found for fingerprint")
    );

    // Even if the verifier were handed the attacker's key as well, the chain gives it away:
    // the next digest recorded the genuine digest's hash and signature.
    let report = trail.verify_with(&[trail.log.public_key_der(), attacker_public]);
    assert!(!report.is_ok(), "{report}");
    assert_eq!(
        Trail::digest_outcome(&report, &trail.digests[1]),
        DigestOutcome::ChainBroken
    );
    assert!(
        report
            .to_string()
            .contains("INVALID: hash or signature doesn't match the next digest's record of it")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_signature_under_our_fingerprint_is_caught() {
    let trail = Trail::build("forged-signature").await;
    let (key, _) = forge_digest(&trail, true);

    let report = trail.verify();
    assert!(!report.is_ok());
    assert_eq!(
        Trail::digest_outcome(&report, &key),
        DigestOutcome::BadSignature
    );
    assert!(
        report
            .to_string()
            .contains("INVALID: signature verification failed")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_modified_digest_is_caught() {
    let trail = Trail::build("digest-modified").await;
    let path = trail.root().join(&trail.digests[0]);
    let mut digest: Value = serde_json::from_slice(&gunzip(&path)).unwrap();
    digest["logFiles"] = Value::Array(Vec::new());
    std::fs::write(&path, gzip(&serde_json::to_vec(&digest).unwrap())).unwrap();

    let report = trail.verify();
    assert!(!report.is_ok());
    assert_eq!(
        Trail::digest_outcome(&report, &trail.digests[0]),
        DigestOutcome::BadSignature
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_with_the_wrong_public_key_fails() {
    let trail = Trail::build("wrong-key").await;
    let stranger = KeyPair::generate(KeySize::Rsa2048).unwrap();
    let report = trail.verify_with(&[stranger.public_key().as_ref().to_vec()]);
    assert!(!report.is_ok());
    assert!(
        report
            .digests
            .iter()
            .all(|check| matches!(check.outcome, DigestOutcome::UnknownPublicKey(_)))
    );
}
