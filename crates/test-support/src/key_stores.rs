//! The conformance suite every [`KeyStoreStore`] backend must pass.
//!
//! It starts from and leaves behind a store with no custom key stores, so it can run again on the
//! same store, for instance after reopening it.

use strongroom_storage::StoreError;
use strongroom_storage::key_stores::{CustomKeyStoreRecord, KeyStoreStore};
use strongroom_types::KeyId;

use crate::fixtures::{base_time, namespace};

fn record(id: &str, account: &str, name: &str) -> CustomKeyStoreRecord {
    CustomKeyStoreRecord {
        custom_key_store_id: id.to_owned(),
        namespace: namespace(account, "us-east-1"),
        name: name.to_owned(),
        cluster_id: "cluster-abcdefghijk".to_owned(),
        trust_anchor_pem: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
            .to_owned(),
        wrapped_password: vec![1, 2, 3],
        wrapped_pending_password: None,
        connection_state: "DISCONNECTED".to_owned(),
        connection_error: None,
        created: base_time(),
    }
}

/// Runs every check against `store`, which must hold no custom key stores; panics on the first
/// failure, and leaves the store empty again.
pub async fn check_key_store_store(store: &dyn KeyStoreStore) {
    let one = namespace("111122223333", "us-east-1");
    let two = namespace("444455556666", "us-east-1");
    assert!(
        store.all_key_stores().await.expect("list all").is_empty(),
        "the store starts empty"
    );

    let a = record("cks-00000000000000001", "111122223333", "alpha");
    let b = record("cks-00000000000000002", "111122223333", "beta");
    let other = record("cks-00000000000000003", "444455556666", "alpha");
    store.insert_key_store(&b).await.expect("insert b");
    store.insert_key_store(&a).await.expect("insert a");
    store
        .insert_key_store(&other)
        .await
        .expect("the same name in another account");
    assert!(matches!(
        store.insert_key_store(&a).await,
        Err(StoreError::AlreadyExists(_))
    ));
    let mut same_name = record("cks-00000000000000004", "111122223333", "alpha");
    assert!(matches!(
        store.insert_key_store(&same_name).await,
        Err(StoreError::AlreadyExists(_))
    ));
    assert_eq!(
        store.list_key_stores(&one).await.expect("list"),
        vec![a.clone(), b.clone()]
    );
    assert_eq!(
        store
            .key_store(&two, &a.custom_key_store_id)
            .await
            .expect("read"),
        None
    );
    assert_eq!(
        store.all_key_stores().await.expect("list all"),
        vec![a.clone(), b.clone(), other.clone()],
        "every namespace's stores, by account and id"
    );

    let mut changed = a.clone();
    changed.connection_state = "FAILED".to_owned();
    changed.connection_error = Some("INVALID_CREDENTIALS".to_owned());
    changed.wrapped_password = vec![9; 40];
    store.put_key_store(&changed).await.expect("put");
    assert_eq!(
        store
            .key_store(&one, &a.custom_key_store_id)
            .await
            .expect("read"),
        Some(changed.clone())
    );
    // A rotation records the next password beside the current one, then promotes it; each step is
    // read back whole.
    changed.connection_state = "CONNECTING".to_owned();
    changed.connection_error = None;
    changed.wrapped_pending_password = Some(vec![7; 40]);
    store
        .put_key_store(&changed)
        .await
        .expect("record a pending password");
    assert_eq!(
        store
            .key_store(&one, &a.custom_key_store_id)
            .await
            .expect("read"),
        Some(changed.clone()),
        "the pending password is kept beside the current one"
    );
    assert_eq!(
        store.all_key_stores().await.expect("list all")[0],
        changed,
        "listing every store reads the pending password too"
    );
    changed.wrapped_password = changed
        .wrapped_pending_password
        .take()
        .expect("a pending password");
    changed.connection_state = "CONNECTED".to_owned();
    store.put_key_store(&changed).await.expect("promote it");
    let promoted = store
        .key_store(&one, &a.custom_key_store_id)
        .await
        .expect("read")
        .expect("the store exists");
    assert_eq!(promoted, changed);
    assert_eq!(promoted.wrapped_password, vec![7; 40]);
    assert_eq!(promoted.wrapped_pending_password, None);
    changed.name = "beta".to_owned();
    assert!(matches!(
        store.put_key_store(&changed).await,
        Err(StoreError::AlreadyExists(_))
    ));
    same_name.name = "gamma".to_owned();
    assert!(matches!(
        store.put_key_store(&same_name).await,
        Err(StoreError::NotFound(_))
    ));

    let key: KeyId = "1234abcd-12ab-34cd-56ef-1234567890ab"
        .parse()
        .expect("a key id");
    assert_eq!(store.key_store_of(&one, &key).await.expect("read"), None);
    store
        .insert_key_store_key(&one, &key, &a.custom_key_store_id)
        .await
        .expect("insert key");
    assert_eq!(
        store.key_store_of(&one, &key).await.expect("read"),
        Some(a.custom_key_store_id.clone())
    );
    assert_eq!(store.key_store_of(&two, &key).await.expect("read"), None);
    assert_eq!(
        store
            .count_key_store_keys(&one, &a.custom_key_store_id)
            .await
            .expect("count"),
        1
    );
    store
        .delete_key_store_key(&one, &key)
        .await
        .expect("forget key");
    assert_eq!(
        store
            .count_key_store_keys(&one, &a.custom_key_store_id)
            .await
            .expect("count"),
        0
    );

    for (ns, r) in [(&one, &a), (&one, &b), (&two, &other)] {
        store
            .delete_key_store(ns, &r.custom_key_store_id)
            .await
            .expect("delete");
    }
    assert!(matches!(
        store.delete_key_store(&one, &a.custom_key_store_id).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(store.list_key_stores(&one).await.expect("list").is_empty());
    assert!(store.list_key_stores(&two).await.expect("list").is_empty());
    assert!(store.all_key_stores().await.expect("list all").is_empty());
}
