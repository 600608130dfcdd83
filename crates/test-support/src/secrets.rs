//! The conformance suite every [`SecretStore`] backend must pass.
//!
//! It starts from and leaves behind a store without secrets in the namespaces it uses, so it can run again
//! on the same store, for instance after reopening it.

use strongroom_storage::StoreError;
use strongroom_storage::secrets::{
    SecretKind, SecretRecord, SecretStore, SecretValueRecord, SecretVersionInfo,
};
use strongroom_types::{Namespace, Tag};

use crate::fixtures::{base_time, namespace};

fn version(id: &str, day: u32, stages: &[&str]) -> SecretVersionInfo {
    SecretVersionInfo {
        version_id: id.to_owned(),
        created: base_time().plus_days(day),
        stages: stages.iter().map(|stage| (*stage).to_owned()).collect(),
    }
}

fn value(id: &str, kind: SecretKind) -> SecretValueRecord {
    SecretValueRecord {
        version_id: id.to_owned(),
        kind,
        key_arn: "arn:aws:kms:us-east-1:111122223333:key/00000001-0000-4000-8000-000000000001"
            .to_owned(),
        encrypted_data_key: id.bytes().chain([0, 1, 2]).collect(),
        // Bytes that are not UTF-8, with zeros, to show blobs round-trip exactly.
        sealed: id.bytes().chain([0, 0xff, 0xfe, 0]).collect(),
    }
}

fn secret(namespace: &Namespace, name: &str) -> SecretRecord {
    SecretRecord {
        namespace: namespace.clone(),
        name: name.to_owned(),
        arn_suffix: "a1B2c3".to_owned(),
        description: None,
        kms_key_id: None,
        created: base_time(),
        last_changed: base_time(),
        last_accessed: None,
        deletion_date: None,
        tags: Vec::new(),
        versions: Vec::new(),
    }
}

/// Runs every check against `store`, which must hold no secrets in the suite's namespaces; panics on the
/// first failure, and leaves those namespaces empty again.
pub async fn check_secret_store(store: &dyn SecretStore) {
    let here = namespace("111122223333", "us-east-1");
    let there = namespace("111122223333", "eu-west-1");
    assert!(
        store.list_secrets(&here).await.expect("list").is_empty(),
        "the suite starts from an empty namespace"
    );
    assert_eq!(store.secret(&here, "db").await.expect("read"), None);

    // A secret with a first version, tags and a description round-trips whole.
    let mut db = secret(&here, "prod/db");
    db.description = Some("the database".to_owned());
    db.kms_key_id = Some("alias/app".to_owned());
    db.tags = vec![
        Tag {
            key: "team".to_owned(),
            value: "storage".to_owned(),
        },
        Tag {
            key: "env".to_owned(),
            value: String::new(),
        },
    ];
    db.versions = vec![version(
        "v1-0000000000000000000000000000000",
        0,
        &["AWSCURRENT"],
    )];
    let first = value("v1-0000000000000000000000000000000", SecretKind::String);
    store
        .insert_secret(&db, Some(&first))
        .await
        .expect("insert");
    assert_eq!(
        store.secret(&here, "prod/db").await.expect("read"),
        Some(db.clone())
    );
    assert_eq!(
        store
            .secret_value(&here, "prod/db", &first.version_id)
            .await
            .expect("read value"),
        Some(first.clone())
    );
    assert_eq!(
        db.arn(),
        "arn:aws:secretsmanager:us-east-1:111122223333:secret:prod/db-a1B2c3"
    );
    assert!(
        store
            .secret(&there, "prod/db")
            .await
            .expect("read")
            .is_none(),
        "namespaces are separate"
    );

    // A name is unique in its namespace; the same name elsewhere is another secret.
    assert!(matches!(
        store.insert_secret(&secret(&here, "prod/db"), None).await,
        Err(StoreError::AlreadyExists(_))
    ));
    store
        .insert_secret(&secret(&there, "prod/db"), None)
        .await
        .expect("the same name in another Region");

    // A new version moves the labels; the record's version list and labels are replaced whole.
    db.versions = vec![
        version("v1-0000000000000000000000000000000", 0, &["AWSPREVIOUS"]),
        version(
            "v2-0000000000000000000000000000000",
            1,
            &["AWSCURRENT", "blue"],
        ),
    ];
    db.last_changed = base_time().plus_days(1);
    db.tags.pop();
    let second = value("v2-0000000000000000000000000000000", SecretKind::Binary);
    store
        .put_secret(&db, Some(&second))
        .await
        .expect("put a version");
    assert_eq!(
        store.secret(&here, "prod/db").await.expect("read"),
        Some(db.clone())
    );
    assert_eq!(
        store
            .secret_value(&here, "prod/db", &second.version_id)
            .await
            .expect("read value"),
        Some(second.clone())
    );

    // A label cannot be on two versions.
    let mut twice = db.clone();
    twice.versions[0].stages.push("blue".to_owned());
    assert!(store.put_secret(&twice, None).await.is_err());
    assert_eq!(
        store.secret(&here, "prod/db").await.expect("read"),
        Some(db.clone()),
        "a refused write changes nothing"
    );

    // A version with no value cannot be listed, and a value must belong to a listed version.
    let mut phantom = db.clone();
    phantom
        .versions
        .push(version("v9-0000000000000000000000000000000", 2, &[]));
    assert!(matches!(
        store.put_secret(&phantom, None).await,
        Err(StoreError::NotFound(_))
    ));
    let stray = value("v8-0000000000000000000000000000000", SecretKind::String);
    assert!(matches!(
        store.put_secret(&db, Some(&stray)).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        store.secret(&here, "prod/db").await.expect("read"),
        Some(db.clone())
    );

    // Dropping a version from the record deletes its value.
    db.versions.remove(0);
    store.put_secret(&db, None).await.expect("drop a version");
    assert_eq!(
        store
            .secret_value(&here, "prod/db", &first.version_id)
            .await
            .expect("read value"),
        None
    );
    assert_eq!(
        store.secret(&here, "prod/db").await.expect("read"),
        Some(db.clone())
    );

    // Updating a secret that does not exist fails.
    assert!(matches!(
        store.put_secret(&secret(&here, "ghost"), None).await,
        Err(StoreError::NotFound(_))
    ));

    // Scheduled deletions are found when due, in every namespace.
    let mut api = secret(&here, "api-key");
    api.deletion_date = Some(base_time().plus_days(7));
    store.insert_secret(&api, None).await.expect("insert");
    assert!(
        store
            .secrets_due(base_time().plus_days(6))
            .await
            .expect("due")
            .is_empty()
    );
    assert_eq!(
        store
            .secrets_due(base_time().plus_days(7))
            .await
            .expect("due"),
        vec![(here.clone(), "api-key".to_owned())]
    );
    api.last_accessed = Some(base_time().plus_days(3));
    api.deletion_date = None;
    store.put_secret(&api, None).await.expect("restore");
    assert!(
        store
            .secrets_due(base_time().plus_days(30))
            .await
            .expect("due")
            .is_empty()
    );

    // Listing is by name, and reads whole records.
    let listed = store.list_secrets(&here).await.expect("list");
    assert_eq!(listed, vec![api.clone(), db.clone()]);

    // Deleting removes the secret, its values and its labels; a new secret of that name starts clean.
    store.delete_secret(&here, "prod/db").await.expect("delete");
    assert!(matches!(
        store.delete_secret(&here, "prod/db").await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        store
            .secret_value(&here, "prod/db", &second.version_id)
            .await
            .expect("read value"),
        None
    );
    let fresh = secret(&here, "prod/db");
    store.insert_secret(&fresh, None).await.expect("re-create");
    assert_eq!(
        store.secret(&here, "prod/db").await.expect("read"),
        Some(fresh)
    );

    for (namespace, name) in [(&here, "prod/db"), (&here, "api-key"), (&there, "prod/db")] {
        store
            .delete_secret(namespace, name)
            .await
            .expect("clean up");
    }
    assert!(store.list_secrets(&here).await.expect("list").is_empty());
    assert!(store.list_secrets(&there).await.expect("list").is_empty());
}
