//! Unit tests of the SQLite backend that need its insides: the query plans of its statements.
//!
//! The shared conformance suite and the file-level tests (reopening, crashing, migrating) live in
//! `tests/it`; these tests check that no statement scans a table, at a size where a scan would hurt.

use rusqlite::types::Null;
use rusqlite::{Connection, TransactionBehavior, params_from_iter};
use strongroom_test_support::TempDir;
use strongroom_test_support::fixtures::{base_time, key_id, namespace, sample_alias, sample_key};
use strongroom_types::{Deletion, KeyState, Rotation};

use crate::Store;
use crate::sqlite::{SqliteStore, aliases, key_usage, keys, lock, multi_region};

/// Enough keys that a full scan would show, in the plan if not yet in the time.
const MANY: u32 = 100_000;

/// Every statement that looks rows up, with the index searches its plan must contain.
const LOOKUPS: &[(&str, &str, &[&str])] = &[
    ("SELECT_KEY", keys::SELECT_KEY, &[KEY_BY_ID]),
    ("UPDATE_KEY", keys::UPDATE_KEY, &[KEY_BY_ID]),
    ("DELETE_KEY", keys::DELETE_KEY, &[KEY_BY_ID]),
    (
        "SELECT_MATERIALS",
        keys::SELECT_MATERIALS,
        &[MATERIALS_BY_KEY],
    ),
    (
        "DELETE_MATERIALS",
        keys::DELETE_MATERIALS,
        &[MATERIALS_BY_KEY],
    ),
    ("SELECT_TAGS", keys::SELECT_TAGS, &[TAGS_BY_KEY]),
    ("DELETE_TAGS", keys::DELETE_TAGS, &[TAGS_BY_KEY]),
    (
        "DELETE_ALIASES_OF_KEY",
        keys::DELETE_ALIASES_OF_KEY,
        &["aliases_by_target (account=? AND region=? AND target=?)"],
    ),
    (
        "LIST_KEYS",
        keys::LIST_KEYS,
        &["sqlite_autoindex_keys_1 (account=? AND region=? AND key_id>?)"],
    ),
    (
        "KEYS_DUE",
        keys::KEYS_DUE,
        &[
            "USING INDEX keys_by_deletion_date",
            "USING INDEX keys_by_rotation_next",
        ],
    ),
    ("UPDATE_ALIAS", aliases::UPDATE_ALIAS, &[ALIAS_BY_NAME]),
    ("DELETE_ALIAS", aliases::DELETE_ALIAS, &[ALIAS_BY_NAME]),
    ("SELECT_ALIAS", aliases::SELECT_ALIAS, &[ALIAS_BY_NAME]),
    (
        "LIST_ALIASES",
        aliases::LIST_ALIASES,
        &["sqlite_autoindex_aliases_1 (account=? AND region=? AND name>?)"],
    ),
    (
        "LIST_ALIASES_OF_TARGET",
        aliases::LIST_ALIASES_OF_TARGET,
        &["aliases_by_target (account=? AND region=? AND target=? AND name>?)"],
    ),
    (
        "SELECT_SETTING",
        crate::sqlite::SELECT_SETTING,
        &["USING PRIMARY KEY (name=?)"],
    ),
    (
        "SELECT_SET",
        multi_region::SELECT_SET,
        &["USING PRIMARY KEY (account=? AND key_id=?)"],
    ),
    (
        "DELETE_SET",
        multi_region::DELETE_SET,
        &["USING PRIMARY KEY (account=? AND key_id=?)"],
    ),
    (
        "TRANSITIONS_DUE",
        multi_region::TRANSITIONS_DUE,
        &["INDEX multi_region_keys_by_transition (transition_until"],
    ),
    (
        "SELECT_KEY_USAGE",
        key_usage::SELECT,
        &["USING PRIMARY KEY (account=? AND region=? AND key_id=?)"],
    ),
    (
        "DELETE_KEY_USAGE",
        key_usage::DELETE,
        &["USING PRIMARY KEY (account=? AND region=? AND key_id=?)"],
    ),
];

const KEY_BY_ID: &str = "USING INDEX sqlite_autoindex_keys_1 (account=? AND region=? AND key_id=?)";
const MATERIALS_BY_KEY: &str =
    "USING INDEX sqlite_autoindex_key_materials_1 (account=? AND region=? AND key_id=?)";
const TAGS_BY_KEY: &str = "USING PRIMARY KEY (account=? AND region=? AND key_id=?)";
const ALIAS_BY_NAME: &str =
    "USING INDEX sqlite_autoindex_aliases_1 (account=? AND region=? AND name=?)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_use_indexes_at_a_hundred_thousand_keys() {
    let dir = TempDir::new("sqlite-plans");
    let store = SqliteStore::open(&dir.path().join("plans.sqlite")).expect("open");
    let home = namespace("111111111111", "us-east-1");
    let neighbour = namespace("111111111111", "eu-west-1");
    let now = base_time().plus_days(1000);

    // One transaction for all rows: a commit per key would measure the disk, not the schema.
    {
        let mut connection = lock(&store.writer);
        let transaction = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .expect("begin");
        for n in 0..MANY {
            let space = if n % 10 == 9 { &neighbour } else { &home };
            let mut key = sample_key(space, n);
            // Every thousandth key has work due, in the past or the future, so both partial indexes hold rows.
            if n % 1000 == 0 {
                key.state = KeyState::PendingDeletion;
                key.deletion = Some(Deletion {
                    date: base_time().plus_days(n / 1000 * 20),
                    window_days: 7,
                });
            }
            if n % 1000 == 500 {
                let next = Some(base_time().plus_days(n / 1000 * 20));
                key.rotation = Rotation {
                    enabled: true,
                    period_days: Some(365),
                    next,
                    on_demand_started: None,
                };
            }
            keys::insert(&transaction, &key).expect("insert a key");
            aliases::insert(
                &transaction,
                &sample_alias(space, &format!("alias/key-{n:06}"), &key.key_id),
            )
            .expect("insert an alias");
        }
        transaction.commit().expect("commit");
    }

    {
        let connection = lock(&store.writer);
        for (name, sql, searches) in LOOKUPS {
            let plan = query_plan(&connection, sql);
            let scans: Vec<&String> = plan
                .iter()
                .filter(|step| step.starts_with("SCAN"))
                .collect();
            assert!(scans.is_empty(), "{name} scans a table: {plan:?}");
            for search in *searches {
                let found = plan
                    .iter()
                    .any(|step| step.starts_with("SEARCH") && step.contains(search));
                assert!(found, "{name} does not search {search}: {plan:?}");
            }
        }
        // Pages come out in index order; sorting a whole namespace per page would not scale.
        // Only KEYS_DUE sorts, and then only the keys that are due.
        for (name, sql) in [
            ("LIST_KEYS", keys::LIST_KEYS),
            ("LIST_ALIASES", aliases::LIST_ALIASES),
            ("LIST_ALIASES_OF_TARGET", aliases::LIST_ALIASES_OF_TARGET),
        ] {
            let plan = query_plan(&connection, sql);
            assert!(
                !plan.iter().any(|step| step.contains("TEMP B-TREE")),
                "{name} sorts: {plan:?}"
            );
        }
    }

    // The answers stay right at this size.
    let listed = store
        .list_keys(&home, Some(&key_id(MANY - 30)), 5)
        .await
        .expect("list_keys");
    let wanted: Vec<_> = (MANY - 29..MANY)
        .filter(|n| n % 10 != 9)
        .take(5)
        .map(key_id)
        .collect();
    assert_eq!(listed, wanted);
    let due = store.keys_due(now).await.expect("keys_due");
    // Dates are base + 20 days per thousand keys, so those numbered below 50,000 are due by day 1000.
    let expected = (0..MANY)
        .filter(|n| n % 1000 == 0 || n % 1000 == 500)
        .filter(|n| n / 1000 * 20 <= 1000)
        .count();
    assert_eq!(due.len(), expected);
    let target = key_id(12_345);
    let aliases = store
        .list_aliases(&home, Some(&target), None, 10)
        .await
        .expect("list_aliases");
    assert_eq!(
        aliases
            .iter()
            .map(|alias| alias.name.as_str())
            .collect::<Vec<_>>(),
        ["alias/key-012345"]
    );
    let deleted = store.delete_key(&home, &target).await;
    assert!(deleted.is_ok(), "delete_key: {deleted:?}");
    let aliases = store
        .list_aliases(&home, Some(&target), None, 10)
        .await
        .expect("list_aliases");
    assert!(aliases.is_empty(), "delete_key removes the key's aliases");
}

/// The `detail` column of `EXPLAIN QUERY PLAN`, one entry per step, with every parameter bound to NULL.
fn query_plan(connection: &Connection, sql: &str) -> Vec<String> {
    let mut statement = connection
        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .expect("prepare");
    let nulls = params_from_iter(std::iter::repeat_n(Null, statement.parameter_count()));
    let rows = statement
        .query_map(nulls, |row| row.get::<_, String>(3))
        .expect("explain");
    rows.collect::<Result<Vec<_>, _>>().expect("plan rows")
}
