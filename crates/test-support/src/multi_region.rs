//! The conformance suites every [`MultiRegionStore`] and [`KeyUsageStore`] backend must pass.
//!
//! Each starts from and leaves behind a store with no multi-Region sets (or no usage of the keys it uses),
//! so it can run again on the same store, for instance after reopening it.

use std::time::Duration;

use strongroom_storage::StoreError;
use strongroom_storage::key_usage::{KeyUsageRecord, KeyUsageStore};
use strongroom_storage::multi_region::{
    MultiRegionMember, MultiRegionRole, MultiRegionStore, Transition,
};
use strongroom_types::{AccountId, KeyId, KeyState, Region};

use crate::fixtures::{base_time, key_id, namespace};

fn region(name: &str) -> Region {
    name.parse()
        .unwrap_or_else(|error| panic!("bad test Region {name}: {error}"))
}

fn account(digits: &str) -> AccountId {
    digits
        .parse()
        .unwrap_or_else(|error| panic!("bad test account {digits}: {error}"))
}

fn mrk(n: u32) -> KeyId {
    let text = format!("mrk-{n:032x}");
    text.parse()
        .unwrap_or_else(|error| panic!("bad test key id {text}: {error}"))
}

fn member(name: &str, role: MultiRegionRole) -> MultiRegionMember {
    MultiRegionMember {
        region: region(name),
        role,
        transition: None,
        pending_window_days: None,
    }
}

/// Runs every check against `store`, which must hold no multi-Region sets; panics on the first failure,
/// and leaves the store without sets again.
pub async fn check_multi_region_store(store: &dyn MultiRegionStore) {
    let one = account("111122223333");
    let two = account("444455556666");
    let (a, b) = (mrk(1), mrk(2));
    assert!(
        store.multi_region_sets().await.expect("list").is_empty(),
        "the store starts without sets"
    );
    assert!(
        store
            .multi_region_set(&one, &a)
            .await
            .expect("read")
            .is_empty(),
        "a key never replicated has no set"
    );

    // Members come back ordered by Region, whatever order they were written in.
    let mut replica = member("us-west-2", MultiRegionRole::Replica);
    replica.transition = Some(Transition {
        until: base_time().plus(Duration::from_secs(2)),
        state_after: KeyState::Enabled,
    });
    let primary = member("eu-west-1", MultiRegionRole::Primary);
    let written = vec![replica.clone(), primary.clone()];
    store
        .put_multi_region_set(&one, &a, &written)
        .await
        .expect("put a");
    assert_eq!(
        store.multi_region_set(&one, &a).await.expect("read a"),
        vec![primary.clone(), replica.clone()]
    );
    // Another account's set of the same key id is another set.
    store
        .put_multi_region_set(&two, &a, &[member("us-east-1", MultiRegionRole::Primary)])
        .await
        .expect("put a in two");
    store
        .put_multi_region_set(
            &one,
            &b,
            &[
                member("us-east-1", MultiRegionRole::Primary),
                member("ap-south-1", MultiRegionRole::Replica),
            ],
        )
        .await
        .expect("put b");
    assert_eq!(
        store
            .multi_region_set(&one, &a)
            .await
            .expect("read a")
            .len(),
        2
    );
    assert_eq!(
        store.multi_region_sets().await.expect("list"),
        vec![
            (one.clone(), a.clone()),
            (one.clone(), b.clone()),
            (two.clone(), a.clone())
        ]
    );

    // Only sets with a transition that has ended are due.
    assert!(
        store
            .multi_region_transitions_due(base_time().plus(Duration::from_secs(1)))
            .await
            .expect("due")
            .is_empty()
    );
    assert_eq!(
        store
            .multi_region_transitions_due(base_time().plus(Duration::from_secs(2)))
            .await
            .expect("due"),
        vec![(one.clone(), a.clone())]
    );

    // Replacing a set swaps roles and keeps the window of a primary waiting for its replicas.
    let mut swapped = vec![
        member("eu-west-1", MultiRegionRole::Replica),
        member("us-west-2", MultiRegionRole::Primary),
    ];
    swapped[1].pending_window_days = Some(7);
    store
        .put_multi_region_set(&one, &a, &swapped)
        .await
        .expect("swap");
    assert_eq!(
        store.multi_region_set(&one, &a).await.expect("read"),
        swapped
    );
    assert!(
        store
            .multi_region_transitions_due(base_time().plus(Duration::from_secs(3)))
            .await
            .expect("due")
            .is_empty(),
        "the replaced set has no transition left"
    );

    // A set has one primary and one key per Region; a refused write leaves the set as it was.
    let two_primaries = vec![
        member("eu-west-1", MultiRegionRole::Primary),
        member("us-west-2", MultiRegionRole::Primary),
    ];
    assert!(matches!(
        store.put_multi_region_set(&one, &a, &two_primaries).await,
        Err(StoreError::AlreadyExists(_))
    ));
    let same_region = vec![
        member("eu-west-1", MultiRegionRole::Primary),
        member("eu-west-1", MultiRegionRole::Replica),
    ];
    assert!(matches!(
        store.put_multi_region_set(&one, &a, &same_region).await,
        Err(StoreError::AlreadyExists(_))
    ));
    assert_eq!(
        store.multi_region_set(&one, &a).await.expect("read"),
        swapped
    );

    for (owner, key) in [(&one, &a), (&one, &b), (&two, &a)] {
        store
            .put_multi_region_set(owner, key, &[])
            .await
            .expect("remove");
    }
    assert!(store.multi_region_sets().await.expect("list").is_empty());
    assert!(
        store
            .multi_region_set(&one, &a)
            .await
            .expect("read")
            .is_empty()
    );
}

/// Runs every check against `store`; panics on the first failure and leaves no usage behind for the keys
/// it used.
pub async fn check_key_usage_store(store: &dyn KeyUsageStore) {
    let east = namespace("111122223333", "us-east-1");
    let west = namespace("111122223333", "us-west-2");
    let key = key_id(7);
    let usage = |ns: &strongroom_types::Namespace, operation: &str, seconds: u64| KeyUsageRecord {
        namespace: ns.clone(),
        key_id: key.clone(),
        operation: operation.to_owned(),
        used: base_time().plus(Duration::from_secs(seconds)),
        request_id: format!("request-{seconds}"),
        event_id: seconds
            .is_multiple_of(2)
            .then(|| format!("event-{seconds}")),
    };
    assert_eq!(store.key_usage(&east, &key).await.expect("read"), None);

    store
        .put_key_usages(&[usage(&east, "Encrypt", 10), usage(&west, "Decrypt", 11)])
        .await
        .expect("put");
    assert_eq!(
        store.key_usage(&east, &key).await.expect("read"),
        Some(usage(&east, "Encrypt", 10))
    );
    assert_eq!(
        store.key_usage(&west, &key).await.expect("read"),
        Some(usage(&west, "Decrypt", 11)),
        "each Region's key has its own usage"
    );

    // A newer use replaces the old one; an older one (a late batch) does not.
    store
        .put_key_usages(&[usage(&east, "GenerateDataKey", 20)])
        .await
        .expect("newer");
    store
        .put_key_usages(&[usage(&east, "Sign", 15)])
        .await
        .expect("older");
    assert_eq!(
        store.key_usage(&east, &key).await.expect("read"),
        Some(usage(&east, "GenerateDataKey", 20))
    );

    store.delete_key_usage(&east, &key).await.expect("delete");
    store
        .delete_key_usage(&east, &key)
        .await
        .expect("deleting nothing is fine");
    assert_eq!(store.key_usage(&east, &key).await.expect("read"), None);
    assert!(store.key_usage(&west, &key).await.expect("read").is_some());
    store.delete_key_usage(&west, &key).await.expect("delete");
}
