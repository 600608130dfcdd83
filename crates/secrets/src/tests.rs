//! Unit tests of the pure parts: names, staging labels, version pruning, filters and value comparison.

use strongroom_storage::secrets::{SecretRecord, SecretVersionInfo};
use strongroom_types::{Namespace, Tag, Timestamp};
use zeroize::Zeroizing;

use crate::lifecycle::valid_name;
use crate::listing::{Filter, matches};
use crate::values::{MAX_VERSIONS, attach_stages, prune_versions};
use crate::{AWSCURRENT, AWSPREVIOUS, SecretValue};

fn version(id: &str, stages: &[&str]) -> SecretVersionInfo {
    SecretVersionInfo {
        version_id: id.to_owned(),
        created: Timestamp::from_millis(0),
        stages: stages.iter().map(|s| (*s).to_owned()).collect(),
    }
}

fn stages_of(versions: &[SecretVersionInfo]) -> Vec<(String, Vec<String>)> {
    versions
        .iter()
        .map(|v| (v.version_id.clone(), v.stages.clone()))
        .collect()
}

fn labels(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn names_allow_only_the_documented_characters() {
    for name in ["db", "prod/db-password", "a+b=c.d@e_f", "A1"] {
        assert!(valid_name(name), "{name}");
    }
    for name in ["", "with space", "semi;colon", "ünï", "tab\t", "star*"] {
        assert!(!valid_name(name), "{name:?}");
    }
}

#[test]
fn a_new_current_version_makes_the_old_one_previous() {
    let mut versions = vec![version("v1", &[AWSPREVIOUS]), version("v2", &[AWSCURRENT])];
    versions.push(version("v3", &[]));
    attach_stages(&mut versions, 2, &labels(&[AWSCURRENT]));
    assert_eq!(
        stages_of(&versions),
        vec![
            ("v1".to_owned(), labels(&[])),
            ("v2".to_owned(), labels(&[AWSPREVIOUS])),
            ("v3".to_owned(), labels(&[AWSCURRENT])),
        ]
    );
}

#[test]
fn custom_labels_move_without_touching_the_current_version() {
    let mut versions = vec![version("v1", &[AWSCURRENT, "blue"]), version("v2", &[])];
    attach_stages(&mut versions, 1, &labels(&["blue", "green"]));
    assert_eq!(
        stages_of(&versions),
        vec![
            ("v1".to_owned(), labels(&[AWSCURRENT])),
            ("v2".to_owned(), labels(&["blue", "green"])),
        ]
    );
}

#[test]
fn pruning_drops_only_old_versions_without_labels() {
    let day = 24 * 60 * 60 * 1000;
    let now = Timestamp::from_millis(10 * day);
    let mut versions: Vec<SecretVersionInfo> = (0..MAX_VERSIONS + 3)
        .map(|n| SecretVersionInfo {
            version_id: format!("v{n}"),
            created: Timestamp::from_millis(n as i64),
            stages: Vec::new(),
        })
        .collect();
    versions[0].stages.push("keep".to_owned());
    let last = versions.len() - 1;
    versions[last].created = now;
    versions[last].stages.push(AWSCURRENT.to_owned());
    prune_versions(&mut versions, now);
    assert_eq!(versions.len(), MAX_VERSIONS);
    let ids: Vec<&str> = versions.iter().map(|v| v.version_id.as_str()).collect();
    assert_eq!(
        &ids[..3],
        &["v0", "v4", "v5"],
        "labelled v0 stays; v1..v3 go"
    );

    // Versions made in the last day are all kept, however many there are.
    let mut recent: Vec<SecretVersionInfo> = (0..MAX_VERSIONS + 2)
        .map(|n| SecretVersionInfo {
            version_id: format!("r{n}"),
            created: now,
            stages: Vec::new(),
        })
        .collect();
    prune_versions(&mut recent, now);
    assert_eq!(recent.len(), MAX_VERSIONS + 2);
}

fn record() -> SecretRecord {
    SecretRecord {
        namespace: Namespace {
            account: "111122223333".parse().expect("account"),
            region: "eu-west-1".parse().expect("region"),
        },
        name: "prod/Db".to_owned(),
        arn_suffix: "abcdef".to_owned(),
        description: Some("Orders Database".to_owned()),
        kms_key_id: None,
        created: Timestamp::from_millis(0),
        last_changed: Timestamp::from_millis(0),
        last_accessed: None,
        deletion_date: None,
        tags: vec![Tag {
            key: "team".to_owned(),
            value: "payments".to_owned(),
        }],
        versions: Vec::new(),
    }
}

fn filter(key: &str, values: &[&str]) -> Filter {
    Filter {
        key: key.to_owned(),
        values: labels(values),
    }
}

#[test]
fn filters_match_prefixes_with_the_documented_case_rules() {
    let secret = record();
    let cases = [
        (filter("name", &["prod/"]), true),
        (filter("name", &["prod/db"]), false),
        (filter("name", &["!prod"]), false),
        (filter("name", &["!dev", "x"]), true),
        (filter("description", &["orders"]), true),
        (filter("description", &["database"]), false),
        (filter("tag-key", &["te"]), true),
        (filter("tag-value", &["Pay"]), false),
        (filter("primary-region", &["eu-"]), true),
        (filter("owning-service", &["rds"]), false),
        (filter("all", &["PAY prod"]), true),
        (filter("all", &["pay nothing"]), false),
    ];
    for (filter, expected) in cases {
        assert_eq!(matches(&secret, &filter), expected, "{filter:?}");
    }
}

#[test]
fn values_compare_by_kind_and_bytes() {
    let text = |s: &str| SecretValue::String(Zeroizing::new(s.to_owned()));
    let bytes = |b: &[u8]| SecretValue::Binary(Zeroizing::new(b.to_vec()));
    assert!(text("hunter2").same_as(&text("hunter2")));
    assert!(!text("hunter2").same_as(&text("hunter3")));
    assert!(!text("hunter2").same_as(&text("hunter22")));
    assert!(
        !text("abc").same_as(&bytes(b"abc")),
        "a string is not the same as its bytes"
    );
    assert!(bytes(&[0, 1]).same_as(&bytes(&[0, 1])));
    assert_eq!(format!("{:?}", text("hunter2")), "SecretValue::String(***)");
}
