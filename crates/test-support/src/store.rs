//! The conformance suite every [`Store`] backend must pass.
//!
//! Each check starts from and leaves behind a store with no keys or aliases, so checks do not depend on
//! each other's leftovers and `keys_due`, which looks across namespaces, sees only what its own check wrote.
//! Settings cannot be deleted through the trait; their check uses names no other check touches.

use std::fmt;

use strongroom_storage::{Store, StoreError};
use strongroom_types::{
    AliasRecord, Deletion, ExpirationModel, ImportState, KeyId, KeyManager, KeyRecord, KeySpec,
    KeyState, KeyUsage, MaterialImport, Namespace, Origin, Rotation, RotationType, Tag, Timestamp,
};

use crate::fixtures::{
    alias_name, base_time, key_id, namespace, sample_alias, sample_key, sample_material,
};

/// Runs every check against `store`, which must hold no keys or aliases; panics with a description of the
/// first failure.
///
/// The suite leaves no keys or aliases behind, only settings under names starting with `check_store/`, so
/// it can run again on the same store, for instance after reopening it.
pub async fn check_store(store: &dyn Store) {
    let spaces = Spaces::new();
    check_empty(
        store,
        &spaces,
        "before the suite (check_store needs an empty store)",
    )
    .await;

    check_key_round_trip(store, &spaces).await;
    check_every_enum_value(store, &spaces).await;
    check_put_key(store, &spaces).await;
    check_delete_key(store, &spaces).await;
    check_list_keys(store, &spaces).await;
    check_keys_due(store, &spaces).await;
    check_imported_materials(store, &spaces).await;
    check_aliases(store, &spaces).await;
    check_list_aliases(store, &spaces).await;
    check_namespace_isolation(store, &spaces).await;
    check_concurrent_writers(store, &spaces).await;
    check_settings(store).await;

    check_empty(store, &spaces, "after the suite").await;
}

/// Four namespaces: two accounts, each in two Regions, so isolation is checked along both axes.
struct Spaces {
    /// Account 1 in `us-east-1`, where most checks work.
    home: Namespace,
    /// Account 1 in `eu-west-1`: same account, other Region.
    other_region: Namespace,
    /// Account 2 in `us-east-1`: other account, same Region.
    other_account: Namespace,
    /// Account 2 in `eu-west-1`: both differ.
    other_both: Namespace,
}

impl Spaces {
    fn new() -> Spaces {
        Spaces {
            home: namespace("111111111111", "us-east-1"),
            other_region: namespace("111111111111", "eu-west-1"),
            other_account: namespace("222222222222", "us-east-1"),
            other_both: namespace("222222222222", "eu-west-1"),
        }
    }

    fn all(&self) -> [&Namespace; 4] {
        [
            &self.home,
            &self.other_region,
            &self.other_account,
            &self.other_both,
        ]
    }
}

async fn check_empty(store: &dyn Store, spaces: &Spaces, when: &str) {
    for space in spaces.all() {
        let keys = must(store.list_keys(space, None, usize::MAX).await, "list_keys");
        assert!(keys.is_empty(), "{when}: {space:?} holds keys {keys:?}");
        let aliases = must(
            store.list_aliases(space, None, None, usize::MAX).await,
            "list_aliases",
        );
        assert!(
            aliases.is_empty(),
            "{when}: {space:?} holds aliases {aliases:?}"
        );
    }
    let due = must(
        store.keys_due(Timestamp::from_millis(i64::MAX)).await,
        "keys_due",
    );
    assert!(due.is_empty(), "{when}: keys_due reports {due:?}");
}

/// A key using every optional field, with materials and tags in orders no sort would produce.
fn rich_key(namespace: &Namespace, n: u32) -> KeyRecord {
    let mut key = sample_key(namespace, n);
    key.description = format!(
        "rich key {n}: \"quoted\", 'single', ünïcödé, 🔑, line\nbreak, and a NUL-free tail"
    );
    key.key_spec = KeySpec::Rsa4096;
    key.key_usage = KeyUsage::SignVerify;
    key.state = KeyState::PendingDeletion;
    key.deletion = Some(Deletion {
        date: base_time().plus_days(30),
        window_days: 30,
    });
    // A long policy, as the 32 KiB limit allows.
    key.policy = format!(
        "{{\"Statement\":[{}]}}",
        "{\"Effect\":\"Allow\"},".repeat(1500)
    );
    key.rotation = Rotation {
        enabled: true,
        period_days: Some(365),
        next: Some(base_time().plus_days(365)),
        on_demand_started: Some(base_time().plus_days(2)),
    };
    // Ids descend and creation times are not monotonic, so only the stored position gives this order.
    let mut first = sample_material(n, 9);
    first.created = base_time().plus_days(5);
    let mut second = sample_material(n, 4);
    second.created = base_time().plus_days(1);
    second.rotation_type = Some(RotationType::Automatic);
    second.wrapped = vec![0; 4096];
    let mut third = sample_material(n, 1);
    third.created = base_time().plus_days(3);
    third.rotation_type = Some(RotationType::OnDemand);
    third.wrapped = Vec::new();
    key.materials = vec![first, second, third];
    key.tags = vec![
        tag("zeta", "last letter"),
        tag("Alpha", ""),
        tag("mid", "ünïcödé"),
        tag("aardvark", "1"),
    ];
    key.multi_region = true;
    key
}

async fn check_key_round_trip(store: &dyn Store, spaces: &Spaces) {
    let home = &spaces.home;
    let absent = must(store.key(home, &key_id(1)).await, "key of an absent key");
    assert_eq!(absent, None, "key() of a key never inserted");

    let rich = rich_key(home, 1);
    must(store.insert_key(&rich).await, "insert_key of a rich key");
    assert_eq!(
        read_key(store, home, &rich.key_id).await,
        Some(rich.clone()),
        "a rich key reads back whole"
    );

    let mut bare = sample_key(home, 2);
    bare.description = String::new();
    bare.origin = Origin::External;
    bare.state = KeyState::PendingImport;
    bare.materials = Vec::new();
    must(
        store.insert_key(&bare).await,
        "insert_key of a key with no material",
    );
    assert_eq!(
        read_key(store, home, &bare.key_id).await,
        Some(bare.clone()),
        "a key with no material reads back"
    );

    let mut clash = sample_key(home, 1);
    clash.description = "a different key with a taken id".to_owned();
    let res = store.insert_key(&clash).await;
    assert_already_exists(&res, "insert_key with a taken id");
    assert_eq!(
        read_key(store, home, &rich.key_id).await,
        Some(rich.clone()),
        "a refused insert changes nothing"
    );

    must(store.delete_key(home, &rich.key_id).await, "delete_key");
    must(store.delete_key(home, &bare.key_id).await, "delete_key");
}

async fn check_every_enum_value(store: &dyn Store, spaces: &Spaces) {
    let home = &spaces.home;
    let rotation_types = [
        None,
        Some(RotationType::Automatic),
        Some(RotationType::OnDemand),
    ];
    let count = [
        KeySpec::ALL.len(),
        KeyUsage::ALL.len(),
        Origin::ALL.len(),
        KeyManager::ALL.len(),
        KeyState::ALL.len(),
    ]
    .into_iter()
    .max()
    .unwrap_or(0);
    let mut written = Vec::new();
    for i in 0..count {
        let n = 100 + i as u32;
        let mut key = sample_key(home, n);
        key.key_spec = KeySpec::ALL[i % KeySpec::ALL.len()];
        key.key_usage = KeyUsage::ALL[i % KeyUsage::ALL.len()];
        key.origin = Origin::ALL[i % Origin::ALL.len()];
        key.key_manager = KeyManager::ALL[i % KeyManager::ALL.len()];
        key.state = KeyState::ALL[i % KeyState::ALL.len()];
        let mut material = sample_material(n, 1);
        material.rotation_type = rotation_types[i % rotation_types.len()];
        key.materials.push(material);
        must(store.insert_key(&key).await, "insert_key");
        written.push(key);
    }
    for key in &written {
        assert_eq!(
            read_key(store, home, &key.key_id).await.as_ref(),
            Some(key),
            "every enum spelling reads back"
        );
        must(store.delete_key(home, &key.key_id).await, "delete_key");
    }
}

async fn check_put_key(store: &dyn Store, spaces: &Spaces) {
    let home = &spaces.home;
    let absent = sample_key(home, 10);
    let res = store.put_key(&absent).await;
    assert_not_found(&res, "put_key of an absent key");
    assert_eq!(
        read_key(store, home, &absent.key_id).await,
        None,
        "a refused put_key creates nothing"
    );

    let original = rich_key(home, 10);
    must(store.insert_key(&original).await, "insert_key");

    // Every field changes, and there are fewer materials and tags than before.
    let mut replacement = sample_key(home, 10);
    replacement.created = base_time().plus_days(100);
    replacement.description = "replaced".to_owned();
    replacement.key_spec = KeySpec::Hmac256;
    replacement.key_usage = KeyUsage::GenerateVerifyMac;
    replacement.origin = Origin::External;
    replacement.key_manager = KeyManager::Aws;
    replacement.state = KeyState::Disabled;
    replacement.deletion = None;
    replacement.policy = "{}".to_owned();
    replacement.rotation = Rotation {
        enabled: false,
        period_days: Some(90),
        next: None,
        on_demand_started: None,
    };
    replacement.materials = vec![sample_material(10, 7)];
    replacement.tags = vec![tag("mid", "changed"), tag("new", "tag")];
    replacement.multi_region = false;
    must(store.put_key(&replacement).await, "put_key");
    assert_eq!(
        read_key(store, home, &original.key_id).await,
        Some(replacement.clone()),
        "put_key replaces whole"
    );

    // Growing again must not resurrect anything from the first version.
    let mut grown = replacement.clone();
    grown.materials = (20..24)
        .map(|version| sample_material(10, version))
        .collect();
    grown.materials[3].rotation_type = Some(RotationType::OnDemand);
    grown.tags = Vec::new();
    must(store.put_key(&grown).await, "put_key");
    assert_eq!(
        read_key(store, home, &original.key_id).await,
        Some(grown.clone()),
        "put_key with more materials"
    );

    let mut elsewhere = grown.clone();
    elsewhere.namespace = spaces.other_region.clone();
    let res = store.put_key(&elsewhere).await;
    assert_not_found(
        &res,
        "put_key of a key id that exists only in another namespace",
    );
    assert_eq!(
        read_key(store, &spaces.other_region, &grown.key_id).await,
        None,
        "a refused put_key creates nothing"
    );
    assert_eq!(
        read_key(store, home, &grown.key_id).await,
        Some(grown.clone()),
        "other namespaces are untouched"
    );

    must(store.delete_key(home, &grown.key_id).await, "delete_key");
}

async fn check_delete_key(store: &dyn Store, spaces: &Spaces) {
    let home = &spaces.home;
    let other = &spaces.other_region;
    let res = store.delete_key(home, &key_id(20)).await;
    assert_not_found(&res, "delete_key of an absent key");

    let doomed = rich_key(home, 20);
    let kept = sample_key(home, 21);
    // The same key id in another namespace, with an alias of the same name.
    let twin = sample_key(other, 20);
    for key in [&doomed, &kept, &twin] {
        must(store.insert_key(key).await, "insert_key");
    }
    let doomed_aliases = [
        sample_alias(home, "alias/doomed-1", &doomed.key_id),
        sample_alias(home, "alias/doomed-2", &doomed.key_id),
    ];
    let kept_alias = sample_alias(home, "alias/kept", &kept.key_id);
    let twin_alias = sample_alias(other, "alias/doomed-1", &twin.key_id);
    for alias in doomed_aliases.iter().chain([&kept_alias, &twin_alias]) {
        must(store.insert_alias(alias).await, "insert_alias");
    }

    must(store.delete_key(home, &doomed.key_id).await, "delete_key");
    assert_eq!(
        read_key(store, home, &doomed.key_id).await,
        None,
        "a deleted key is gone"
    );
    for alias in &doomed_aliases {
        assert_eq!(
            read_alias(store, alias).await,
            None,
            "delete_key deletes the aliases pointing at the key"
        );
    }
    let remaining = must(
        store.list_aliases(home, None, None, usize::MAX).await,
        "list_aliases",
    );
    assert_eq!(
        remaining,
        vec![kept_alias.clone()],
        "delete_key keeps aliases of other keys"
    );
    assert_eq!(
        read_key(store, home, &kept.key_id).await,
        Some(kept.clone()),
        "delete_key keeps other keys"
    );
    assert_eq!(
        read_key(store, other, &twin.key_id).await,
        Some(twin.clone()),
        "delete_key keeps other namespaces"
    );
    assert_eq!(
        read_alias(store, &twin_alias).await,
        Some(twin_alias.clone()),
        "delete_key keeps other namespaces"
    );

    let res = store.delete_key(home, &doomed.key_id).await;
    assert_not_found(&res, "delete_key of a key deleted already");

    // A new key with the old id starts bare: no materials, tags or aliases survive from the old one.
    let mut reborn = sample_key(home, 20);
    reborn.materials = Vec::new();
    must(
        store.insert_key(&reborn).await,
        "insert_key with the id of a deleted key",
    );
    assert_eq!(
        read_key(store, home, &reborn.key_id).await,
        Some(reborn.clone()),
        "nothing survives delete_key"
    );
    let reborn_aliases = must(
        store
            .list_aliases(home, Some(&reborn.key_id), None, usize::MAX)
            .await,
        "list_aliases",
    );
    assert_eq!(
        reborn_aliases,
        Vec::new(),
        "aliases do not survive delete_key"
    );

    must(store.delete_key(home, &reborn.key_id).await, "delete_key");
    must(store.delete_key(home, &kept.key_id).await, "delete_key");
    must(store.delete_key(other, &twin.key_id).await, "delete_key");
    assert_eq!(
        read_alias(store, &kept_alias).await,
        None,
        "delete_key deletes the aliases pointing at the key"
    );
    assert_eq!(
        read_alias(store, &twin_alias).await,
        None,
        "delete_key deletes the aliases pointing at the key"
    );
}

async fn check_list_keys(store: &dyn Store, spaces: &Spaces) {
    let home = &spaces.home;
    // Even numbers 100 to 148, inserted out of order; odd numbers make markers that fall between keys.
    let numbers: Vec<u32> = (0..25u32).map(|i| 100 + 2 * ((i * 7) % 25)).collect();
    for &n in &numbers {
        must(store.insert_key(&sample_key(home, n)).await, "insert_key");
    }
    // Neighbours whose ids interleave with the home keys, in the other three namespaces.
    for space in [
        &spaces.other_region,
        &spaces.other_account,
        &spaces.other_both,
    ] {
        for n in [99, 101, 124, 149] {
            must(store.insert_key(&sample_key(space, n)).await, "insert_key");
        }
    }
    let mut expected: Vec<KeyId> = numbers.iter().map(|&n| key_id(n)).collect();
    expected.sort();

    let all = must(store.list_keys(home, None, usize::MAX).await, "list_keys");
    assert_eq!(
        all, expected,
        "list_keys returns the namespace's keys in ascending order"
    );
    let all = must(store.list_keys(home, None, 1000).await, "list_keys");
    assert_eq!(all, expected, "a limit above the count returns everything");
    let none = must(store.list_keys(home, None, 0).await, "list_keys");
    assert_eq!(none, Vec::new(), "limit 0 returns nothing");
    let first = must(store.list_keys(home, None, 1).await, "list_keys");
    assert_eq!(first, expected[..1], "limit 1 returns the first key");

    for limit in [1, 5, 10, 24, 25, 26] {
        let mut pages = Vec::new();
        let mut collected: Vec<KeyId> = Vec::new();
        loop {
            // A backend that ignores the marker would page forever.
            assert!(
                pages.len() <= expected.len(),
                "paging with limit {limit} does not end: {collected:?}"
            );
            let page = must(
                store.list_keys(home, collected.last(), limit).await,
                "list_keys",
            );
            assert!(
                page.len() <= limit,
                "a page of {} keys exceeds the limit {limit}",
                page.len()
            );
            let done = page.len() < limit;
            pages.push(page.len());
            collected.extend(page);
            if done {
                break;
            }
        }
        assert_eq!(
            collected, expected,
            "paging with limit {limit} visits every key once, in order"
        );
        let full_pages = expected.len() / limit;
        assert_eq!(
            pages.len(),
            full_pages + 1,
            "paging with limit {limit} takes {pages:?}"
        );
    }

    let after_last = must(
        store.list_keys(home, expected.last(), 10).await,
        "list_keys",
    );
    assert_eq!(after_last, Vec::new(), "nothing comes after the last key");
    let after_gap = must(
        store.list_keys(home, Some(&key_id(105)), 3).await,
        "list_keys",
    );
    assert_eq!(
        after_gap,
        vec![key_id(106), key_id(108), key_id(110)],
        "a marker between keys starts at the next one"
    );
    let after_start = must(
        store.list_keys(home, Some(&key_id(0)), usize::MAX).await,
        "list_keys",
    );
    assert_eq!(
        after_start, expected,
        "a marker before every key starts at the first"
    );
    let after_end = must(
        store.list_keys(home, Some(&key_id(1000)), usize::MAX).await,
        "list_keys",
    );
    assert_eq!(
        after_end,
        Vec::new(),
        "a marker after every key returns nothing"
    );

    for space in [
        &spaces.other_region,
        &spaces.other_account,
        &spaces.other_both,
    ] {
        let listed = must(store.list_keys(space, None, usize::MAX).await, "list_keys");
        assert_eq!(
            listed,
            vec![key_id(99), key_id(101), key_id(124), key_id(149)],
            "list_keys of {space:?}"
        );
        for n in [99, 101, 124, 149] {
            must(store.delete_key(space, &key_id(n)).await, "delete_key");
        }
    }
    for &n in &numbers {
        must(store.delete_key(home, &key_id(n)).await, "delete_key");
    }
}

async fn check_keys_due(store: &dyn Store, spaces: &Spaces) {
    let home = &spaces.home;
    let now = base_time().plus_days(100);
    let millisecond = std::time::Duration::from_millis(1);
    let before = Timestamp::from_millis(now.millis() - 1);
    let after = now.plus(millisecond);

    let pending = |n: u32, date: Timestamp| {
        let mut key = sample_key(home, n);
        key.state = KeyState::PendingDeletion;
        key.deletion = Some(Deletion {
            date,
            window_days: 7,
        });
        key
    };
    let rotating = |n: u32, enabled: bool, next: Option<Timestamp>| {
        let mut key = sample_key(home, n);
        key.rotation = Rotation {
            enabled,
            period_days: Some(365),
            next,
            on_demand_started: None,
        };
        key
    };
    let deletion_passed = pending(30, before);
    let deletion_now = pending(31, now);
    let deletion_later = pending(32, after);
    let rotation_passed = rotating(33, true, Some(before));
    let rotation_now = rotating(34, true, Some(now));
    let rotation_later = rotating(35, true, Some(after));
    // A stale next rotation date while rotation is off is not work to do.
    let rotation_off = rotating(36, false, Some(before));
    let rotation_unscheduled = rotating(37, true, None);
    let mut both_due = pending(38, before);
    both_due.rotation = Rotation {
        enabled: true,
        period_days: Some(90),
        next: Some(before),
        on_demand_started: None,
    };
    let idle = sample_key(home, 39);
    let mut elsewhere = sample_key(&spaces.other_both, 30);
    elsewhere.state = KeyState::PendingDeletion;
    elsewhere.deletion = Some(Deletion {
        date: before,
        window_days: 7,
    });
    let mut rotating_elsewhere = sample_key(&spaces.other_account, 40);
    rotating_elsewhere.rotation = Rotation {
        enabled: true,
        period_days: Some(90),
        next: Some(now),
        on_demand_started: None,
    };

    let keys = [
        &deletion_passed,
        &deletion_now,
        &deletion_later,
        &rotation_passed,
        &rotation_now,
        &rotation_later,
        &rotation_off,
        &rotation_unscheduled,
        &both_due,
        &idle,
        &elsewhere,
        &rotating_elsewhere,
    ];
    for key in keys {
        must(store.insert_key(key).await, "insert_key");
    }

    let due_now = [
        &deletion_passed,
        &deletion_now,
        &rotation_passed,
        &rotation_now,
        &both_due,
        &elsewhere,
        &rotating_elsewhere,
    ];
    assert_due(store, now, &due_now, "at the boundary instant").await;
    let due_later = [
        &deletion_passed,
        &deletion_now,
        &deletion_later,
        &rotation_passed,
        &rotation_now,
        &rotation_later,
        &both_due,
        &elsewhere,
        &rotating_elsewhere,
    ];
    assert_due(store, after, &due_later, "one millisecond later").await;
    assert_due(
        store,
        Timestamp::from_millis(before.millis() - 1),
        &[],
        "before anything is due",
    )
    .await;

    // Work that is done (deletion cancelled, rotation rescheduled) stops being due.
    let mut cancelled = deletion_passed.clone();
    cancelled.state = KeyState::Disabled;
    cancelled.deletion = None;
    must(store.put_key(&cancelled).await, "put_key");
    let mut rescheduled = rotation_passed.clone();
    rescheduled.rotation.next = Some(now.plus_days(365));
    must(store.put_key(&rescheduled).await, "put_key");
    let due_after_updates = [
        &deletion_now,
        &rotation_now,
        &both_due,
        &elsewhere,
        &rotating_elsewhere,
    ];
    assert_due(
        store,
        now,
        &due_after_updates,
        "after cancelling and rescheduling",
    )
    .await;

    for key in keys {
        must(
            store.delete_key(&key.namespace, &key.key_id).await,
            "delete_key",
        );
    }
}

/// Imported materials keep every import field, and an import's ValidTo makes its key due.
async fn check_imported_materials(store: &dyn Store, spaces: &Spaces) {
    let home = &spaces.home;
    let now = base_time().plus_days(200);
    let before = Timestamp::from_millis(now.millis() - 1);
    let after = now.plus(std::time::Duration::from_millis(1));
    let imported = |n: u32, version: u32, valid_to: Option<Timestamp>| {
        let mut material = sample_material(n, version);
        material.import = Some(MaterialImport {
            state: ImportState::Imported,
            expiration_model: Some(match valid_to {
                Some(_) => ExpirationModel::KeyMaterialExpires,
                None => ExpirationModel::KeyMaterialDoesNotExpire,
            }),
            valid_to,
            description: None,
            pending_rotation: false,
        });
        material
    };
    let external = |n: u32| {
        let mut key = sample_key(home, n);
        key.origin = Origin::External;
        key.materials = Vec::new();
        key
    };

    // Every shape an import takes: expiring with a description, deleted (no bytes, only the id), pending
    // rotation without expiry, and generated material beside them.
    let mut rich = external(60);
    let mut first = imported(60, 1, Some(now.plus_days(30)));
    if let Some(import) = &mut first.import {
        import.description = Some("first: ünïcödé and spaces".to_owned());
    }
    let mut deleted = imported(60, 2, None);
    deleted.wrapped = Vec::new();
    deleted.rotation_type = Some(RotationType::OnDemand);
    if let Some(import) = &mut deleted.import {
        import.state = ImportState::PendingImport;
        import.expiration_model = None;
        import.description = Some(String::new());
    }
    let mut pending = imported(60, 3, None);
    if let Some(import) = &mut pending.import {
        import.pending_rotation = true;
    }
    rich.state = KeyState::PendingImport;
    rich.materials = vec![first, deleted, pending, sample_material(60, 4)];
    must(store.insert_key(&rich).await, "insert_key with imports");
    assert_eq!(
        read_key(store, home, &rich.key_id).await,
        Some(rich.clone()),
        "imported materials read back whole"
    );
    let mut changed = rich.clone();
    changed.materials.swap(0, 2);
    if let Some(import) = &mut changed.materials[1].import {
        import.state = ImportState::Imported;
        import.expiration_model = Some(ExpirationModel::KeyMaterialExpires);
        import.valid_to = Some(now.plus_days(1));
    }
    changed.materials[1].wrapped = vec![7; 40];
    must(store.put_key(&changed).await, "put_key with imports");
    assert_eq!(
        read_key(store, home, &rich.key_id).await,
        Some(changed.clone()),
        "put_key replaces imports"
    );
    must(store.delete_key(home, &rich.key_id).await, "delete_key");

    // Expiry is scheduled work: a key is due once any imported material's ValidTo has come.
    let mut expired = external(61);
    expired.materials = vec![imported(61, 1, None), imported(61, 2, Some(before))];
    let mut expiring_now = external(62);
    expiring_now.materials = vec![imported(62, 1, Some(now))];
    let mut expiring_later = external(63);
    expiring_later.materials = vec![imported(63, 1, Some(after))];
    let mut never = external(64);
    never.materials = vec![imported(64, 1, None)];
    let mut pending_expired = external(65);
    let mut pending = imported(65, 2, Some(before));
    if let Some(import) = &mut pending.import {
        import.pending_rotation = true;
    }
    pending_expired.materials = vec![imported(65, 1, None), pending];
    let keys = [
        &expired,
        &expiring_now,
        &expiring_later,
        &never,
        &pending_expired,
    ];
    for key in keys {
        must(store.insert_key(key).await, "insert_key");
    }
    assert_due(
        store,
        now,
        &[&expired, &expiring_now, &pending_expired],
        "when imported material expires",
    )
    .await;
    // Once expiry is done (the material wiped, its ValidTo cleared), the key is no longer due.
    let mut done = expired.clone();
    done.state = KeyState::PendingImport;
    done.materials[1].wrapped = Vec::new();
    if let Some(import) = &mut done.materials[1].import {
        import.state = ImportState::PendingImport;
        import.expiration_model = None;
        import.valid_to = None;
    }
    must(store.put_key(&done).await, "put_key");
    assert_due(
        store,
        after,
        &[&expiring_now, &expiring_later, &pending_expired],
        "after the expiry was done",
    )
    .await;
    for key in keys {
        must(
            store.delete_key(&key.namespace, &key.key_id).await,
            "delete_key",
        );
    }
}

async fn assert_due(store: &dyn Store, now: Timestamp, expected: &[&KeyRecord], when: &str) {
    let due = must(store.keys_due(now).await, "keys_due");
    let mut sorted = due.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        due.len(),
        "keys_due {when} lists a key twice: {due:?}"
    );
    let mut wanted: Vec<(Namespace, KeyId)> = expected
        .iter()
        .map(|key| (key.namespace.clone(), key.key_id.clone()))
        .collect();
    wanted.sort();
    assert_eq!(sorted, wanted, "keys_due {when}");
}

async fn check_aliases(store: &dyn Store, spaces: &Spaces) {
    let home = &spaces.home;
    let other = &spaces.other_account;
    let first = sample_key(home, 50);
    let second = sample_key(home, 51);
    let foreign = sample_key(other, 52);
    for key in [&first, &second, &foreign] {
        must(store.insert_key(key).await, "insert_key");
    }

    let alias = sample_alias(home, "alias/app", &first.key_id);
    assert_eq!(
        read_alias(store, &alias).await,
        None,
        "alias() of an alias never inserted"
    );
    let res = store.put_alias(&alias).await;
    assert_not_found(&res, "put_alias of an absent alias");
    assert_eq!(
        read_alias(store, &alias).await,
        None,
        "a refused put_alias creates nothing"
    );
    let res = store.delete_alias(home, &alias.name).await;
    assert_not_found(&res, "delete_alias of an absent alias");

    must(store.insert_alias(&alias).await, "insert_alias");
    assert_eq!(
        read_alias(store, &alias).await,
        Some(alias.clone()),
        "an alias reads back"
    );
    let clash = sample_alias(home, "alias/app", &second.key_id);
    let res = store.insert_alias(&clash).await;
    assert_already_exists(&res, "insert_alias with a taken name");
    assert_eq!(
        read_alias(store, &alias).await,
        Some(alias.clone()),
        "a refused insert changes nothing"
    );

    // The same name is free in every other namespace.
    let namesake = sample_alias(other, "alias/app", &foreign.key_id);
    must(
        store.insert_alias(&namesake).await,
        "insert_alias of the same name in another namespace",
    );
    assert_eq!(
        read_alias(store, &namesake).await,
        Some(namesake.clone()),
        "namespaces hold their own aliases"
    );
    let mut cross = alias.clone();
    cross.namespace = spaces.other_region.clone();
    assert_eq!(
        read_alias(store, &cross).await,
        None,
        "an alias is not visible from another Region"
    );

    let mut repointed = alias.clone();
    repointed.target = second.key_id.clone();
    repointed.updated = base_time().plus_days(3);
    must(store.put_alias(&repointed).await, "put_alias");
    assert_eq!(
        read_alias(store, &repointed).await,
        Some(repointed.clone()),
        "put_alias changes target and time"
    );
    assert_eq!(
        read_alias(store, &namesake).await,
        Some(namesake.clone()),
        "put_alias leaves other namespaces"
    );

    must(store.delete_alias(home, &alias.name).await, "delete_alias");
    assert_eq!(
        read_alias(store, &alias).await,
        None,
        "a deleted alias is gone"
    );
    let res = store.delete_alias(home, &alias.name).await;
    assert_not_found(&res, "delete_alias of an alias deleted already");
    let res = store.put_alias(&repointed).await;
    assert_not_found(&res, "put_alias of a deleted alias");
    assert_eq!(
        read_key(store, home, &second.key_id).await,
        Some(second.clone()),
        "delete_alias keeps the key"
    );
    assert_eq!(
        read_alias(store, &namesake).await,
        Some(namesake.clone()),
        "delete_alias leaves other namespaces"
    );

    must(
        store.delete_alias(other, &namesake.name).await,
        "delete_alias",
    );
    for key in [&first, &second, &foreign] {
        must(
            store.delete_key(&key.namespace, &key.key_id).await,
            "delete_key",
        );
    }
}

async fn check_list_aliases(store: &dyn Store, spaces: &Spaces) {
    let home = &spaces.home;
    let first = sample_key(home, 60);
    let second = sample_key(home, 61);
    let unaliased = sample_key(home, 62);
    let neighbour = sample_key(&spaces.other_region, 60);
    for key in [&first, &second, &unaliased, &neighbour] {
        must(store.insert_key(key).await, "insert_key");
    }
    // Names whose byte order differs from case-insensitive and natural orders.
    let names = [
        "alias/beta_1",
        "alias/Zeta",
        "alias/alpha",
        "alias/alpha/child",
        "alias/alpha-2",
        "alias/aws/ebs",
        "alias/0day",
        "alias/a:b",
        "alias/alpha_",
        "alias/B",
        "alias/b",
        "alias/z10",
        "alias/z9",
    ];
    let mut expected = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let target = if i % 3 == 0 {
            &second.key_id
        } else {
            &first.key_id
        };
        let mut alias = sample_alias(home, name, target);
        alias.updated = base_time().plus_days(i as u32);
        must(store.insert_alias(&alias).await, "insert_alias");
        expected.push(alias);
    }
    // Neighbours with the same names and target id in another Region.
    for name in ["alias/alpha", "alias/b", "alias/zz"] {
        must(
            store
                .insert_alias(&sample_alias(&spaces.other_region, name, &neighbour.key_id))
                .await,
            "insert_alias",
        );
    }
    expected.sort_by(|left, right| left.name.cmp(&right.name));
    let of_first: Vec<AliasRecord> = expected
        .iter()
        .filter(|alias| alias.target == first.key_id)
        .cloned()
        .collect();
    let of_second: Vec<AliasRecord> = expected
        .iter()
        .filter(|alias| alias.target == second.key_id)
        .cloned()
        .collect();

    let all = must(
        store.list_aliases(home, None, None, usize::MAX).await,
        "list_aliases",
    );
    assert_eq!(
        all, expected,
        "list_aliases returns the namespace's aliases in ascending byte order of name"
    );
    let none = must(
        store.list_aliases(home, None, None, 0).await,
        "list_aliases",
    );
    assert_eq!(none, Vec::new(), "limit 0 returns nothing");

    for (target, wanted) in [
        (None, &expected),
        (Some(&first.key_id), &of_first),
        (Some(&second.key_id), &of_second),
    ] {
        let listed = must(
            store.list_aliases(home, target, None, usize::MAX).await,
            "list_aliases",
        );
        assert_eq!(&listed, wanted, "list_aliases with target {target:?}");
        for limit in [1, 2, 4, wanted.len(), wanted.len() + 1] {
            let mut collected: Vec<AliasRecord> = Vec::new();
            for round in 0.. {
                // A backend that ignores the marker would page forever.
                assert!(
                    round <= wanted.len(),
                    "paging with limit {limit} does not end: {collected:?}"
                );
                let after = collected.last().map(|alias| &alias.name);
                let page = must(
                    store.list_aliases(home, target, after, limit).await,
                    "list_aliases",
                );
                assert!(
                    page.len() <= limit,
                    "a page of {} aliases exceeds the limit {limit}",
                    page.len()
                );
                let done = page.len() < limit;
                collected.extend(page);
                if done {
                    break;
                }
            }
            assert_eq!(
                &collected, wanted,
                "paging with target {target:?} and limit {limit}"
            );
        }
    }

    // "alias/alpha0" is absent and sorts after "alias/alpha/child" and "alias/alpha-2" and before "alias/alpha_".
    let marker = alias_name("alias/alpha0");
    let after_gap = must(
        store.list_aliases(home, None, Some(&marker), 2).await,
        "list_aliases",
    );
    let wanted: Vec<AliasRecord> = expected
        .iter()
        .filter(|alias| alias.name > marker)
        .take(2)
        .cloned()
        .collect();
    assert_eq!(
        after_gap, wanted,
        "a marker between names starts at the next one"
    );
    let after_gap = must(
        store
            .list_aliases(home, Some(&first.key_id), Some(&marker), usize::MAX)
            .await,
        "list_aliases",
    );
    let wanted: Vec<AliasRecord> = of_first
        .iter()
        .filter(|alias| alias.name > marker)
        .cloned()
        .collect();
    assert_eq!(
        after_gap, wanted,
        "a marker between names, with a target filter"
    );
    let last = expected.last().map(|alias| &alias.name);
    let after_last = must(
        store.list_aliases(home, None, last, 10).await,
        "list_aliases",
    );
    assert_eq!(after_last, Vec::new(), "nothing comes after the last alias");

    let of_unaliased = must(
        store
            .list_aliases(home, Some(&unaliased.key_id), None, usize::MAX)
            .await,
        "list_aliases",
    );
    assert_eq!(of_unaliased, Vec::new(), "a key without aliases lists none");
    let of_absent = must(
        store
            .list_aliases(home, Some(&key_id(69)), None, usize::MAX)
            .await,
        "list_aliases",
    );
    assert_eq!(of_absent, Vec::new(), "an absent target lists none");
    let neighbours = must(
        store
            .list_aliases(&spaces.other_region, None, None, usize::MAX)
            .await,
        "list_aliases",
    );
    let names: Vec<&str> = neighbours.iter().map(|alias| alias.name.as_str()).collect();
    assert_eq!(
        names,
        ["alias/alpha", "alias/b", "alias/zz"],
        "list_aliases of another Region"
    );
    let neighbours_of_first = must(
        store
            .list_aliases(&spaces.other_region, Some(&first.key_id), None, 100)
            .await,
        "list_aliases",
    );
    assert_eq!(
        neighbours_of_first.len(),
        3,
        "the same key id in another Region has its own aliases"
    );

    for key in [&first, &second, &unaliased, &neighbour] {
        must(
            store.delete_key(&key.namespace, &key.key_id).await,
            "delete_key",
        );
    }
}

async fn check_namespace_isolation(store: &dyn Store, spaces: &Spaces) {
    let mut twins = Vec::new();
    for (i, space) in spaces.all().into_iter().enumerate() {
        let mut key = sample_key(space, 70);
        key.description = format!("twin {i}");
        key.tags = vec![tag("space", &i.to_string())];
        must(
            store.insert_key(&key).await,
            "insert_key of the same key id in another namespace",
        );
        must(
            store
                .insert_alias(&sample_alias(space, "alias/twin", &key.key_id))
                .await,
            "insert_alias",
        );
        twins.push(key);
    }
    for key in &twins {
        assert_eq!(
            read_key(store, &key.namespace, &key.key_id).await.as_ref(),
            Some(key),
            "each namespace has its own"
        );
        let listed = must(
            store.list_keys(&key.namespace, None, usize::MAX).await,
            "list_keys",
        );
        assert_eq!(
            listed,
            vec![key.key_id.clone()],
            "list_keys sees only its namespace"
        );
    }

    let mut changed = twins[2].clone();
    changed.description = "changed in one namespace".to_owned();
    must(store.put_key(&changed).await, "put_key");
    twins[2] = changed;
    must(
        store
            .delete_key(&twins[1].namespace, &twins[1].key_id)
            .await,
        "delete_key",
    );
    let deleted = twins.remove(1);
    assert_eq!(
        read_key(store, &deleted.namespace, &deleted.key_id).await,
        None,
        "the deleted twin is gone"
    );
    let alias = must(
        store
            .alias(&deleted.namespace, &alias_name("alias/twin"))
            .await,
        "alias",
    );
    assert_eq!(alias, None, "the deleted twin's alias is gone");
    for key in &twins {
        assert_eq!(
            read_key(store, &key.namespace, &key.key_id).await.as_ref(),
            Some(key),
            "other twins are untouched"
        );
        let alias = must(
            store.alias(&key.namespace, &alias_name("alias/twin")).await,
            "alias",
        );
        assert!(alias.is_some(), "other twins keep their aliases");
    }

    for key in &twins {
        must(
            store.delete_key(&key.namespace, &key.key_id).await,
            "delete_key",
        );
    }
}

/// Writers racing on one key leave one whole version, and a reader never sees a mix of two.
async fn check_concurrent_writers(store: &dyn Store, spaces: &Spaces) {
    let home = &spaces.home;
    let mut wide = rich_key(home, 80);
    wide.description = "wide".to_owned();
    wide.materials = (0..6).map(|version| sample_material(80, version)).collect();
    let mut narrow = sample_key(home, 80);
    narrow.description = "narrow".to_owned();
    narrow.materials = vec![sample_material(80, 50)];
    narrow.tags = vec![tag("only", "one")];
    must(store.insert_key(&narrow).await, "insert_key");

    let write = |key: KeyRecord| async move {
        for _ in 0..20 {
            must(store.put_key(&key).await, "put_key");
        }
    };
    let read = async {
        for _ in 0..40 {
            let seen = read_key(store, home, &narrow.key_id).await;
            let whole = seen.as_ref() == Some(&wide) || seen.as_ref() == Some(&narrow);
            assert!(
                whole,
                "a reader saw a key that is neither version: {seen:?}"
            );
        }
    };
    let others = async {
        for n in 81..89 {
            must(store.insert_key(&sample_key(home, n)).await, "insert_key");
        }
    };
    tokio::join!(write(wide.clone()), write(narrow.clone()), read, others);

    let last = read_key(store, home, &narrow.key_id).await;
    assert!(
        last.as_ref() == Some(&wide) || last.as_ref() == Some(&narrow),
        "the last write wins whole: {last:?}"
    );
    let listed = must(store.list_keys(home, None, usize::MAX).await, "list_keys");
    assert_eq!(
        listed,
        (80..89).map(key_id).collect::<Vec<_>>(),
        "concurrent inserts all land"
    );
    for n in 80..89 {
        must(store.delete_key(home, &key_id(n)).await, "delete_key");
    }
}

async fn check_settings(store: &dyn Store) {
    let name = "check_store/admin";
    let other = "check_store/other ünïcödé";
    let never = "check_store/never written";
    assert_eq!(
        must(store.setting(never).await, "setting"),
        None,
        "a setting never written is absent"
    );

    must(
        store.put_setting(name, b"first value, quite long").await,
        "put_setting",
    );
    assert_eq!(
        must(store.setting(name).await, "setting"),
        Some(b"first value, quite long".to_vec()),
        "a setting reads back"
    );
    must(store.put_setting(name, b"short").await, "put_setting");
    assert_eq!(
        must(store.setting(name).await, "setting"),
        Some(b"short".to_vec()),
        "put_setting overwrites whole"
    );

    let binary: Vec<u8> = (0..=255u8).chain([0, 0, 255]).collect();
    must(store.put_setting(other, &binary).await, "put_setting");
    assert_eq!(
        must(store.setting(other).await, "setting"),
        Some(binary),
        "binary values read back exactly"
    );
    assert_eq!(
        must(store.setting(name).await, "setting"),
        Some(b"short".to_vec()),
        "settings are independent"
    );

    must(store.put_setting(name, b"").await, "put_setting");
    assert_eq!(
        must(store.setting(name).await, "setting"),
        Some(Vec::new()),
        "an empty value is not an absent one"
    );
    assert_eq!(
        must(store.setting("check_store/ADMIN").await, "setting"),
        None,
        "setting names are case-sensitive"
    );
}

async fn read_key(store: &dyn Store, namespace: &Namespace, key_id: &KeyId) -> Option<KeyRecord> {
    must(store.key(namespace, key_id).await, "key")
}

async fn read_alias(store: &dyn Store, alias: &AliasRecord) -> Option<AliasRecord> {
    must(store.alias(&alias.namespace, &alias.name).await, "alias")
}

fn tag(key: &str, value: &str) -> Tag {
    Tag {
        key: key.to_owned(),
        value: value.to_owned(),
    }
}

/// Unwraps a result the check expects to succeed, naming the call that failed.
#[track_caller]
fn must<T>(res: Result<T, StoreError>, call: &str) -> T {
    match res {
        Ok(value) => value,
        Err(error) => panic!("{call} failed: {error} ({error:?})"),
    }
}

#[track_caller]
fn assert_already_exists<T: fmt::Debug>(res: &Result<T, StoreError>, what: &str) {
    match res {
        Err(StoreError::AlreadyExists(_)) => {}
        other => panic!("{what}: expected AlreadyExists, got {other:?}"),
    }
}

#[track_caller]
fn assert_not_found<T: fmt::Debug>(res: &Result<T, StoreError>, what: &str) {
    match res {
        Err(StoreError::NotFound(_)) => {}
        other => panic!("{what}: expected NotFound, got {other:?}"),
    }
}
