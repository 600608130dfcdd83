//! Integration tests of the SQLite backend: the shared conformance suite, plus what only a file can show:
//! reopening, crashing, migrating and reading rows damaged behind the backend's back.

#[cfg(unix)]
mod crash;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::Connection;
use strongroom_storage::sqlite::SqliteStore;
use strongroom_storage::{Store, StoreError};
use strongroom_test_support::fixtures::{
    alias_name, base_time, key_id, namespace, sample_alias, sample_key, sample_material,
};
use strongroom_test_support::{
    TempDir, check_cluster_store, check_identity_store, check_key_store_store,
    check_key_usage_store, check_multi_region_store, check_secret_store, check_stack_store,
    check_store,
};
use strongroom_types::{Deletion, Tag};

#[tokio::test]
async fn passes_the_conformance_suite() {
    let dir = TempDir::new("sqlite-conformance");
    let store = open(&database(&dir));
    check_store(&store).await;
}

#[tokio::test]
async fn passes_the_conformance_suite_again_after_reopening() {
    let dir = TempDir::new("sqlite-conformance-reopen");
    let path = database(&dir);
    check_store(&open(&path)).await;
    check_store(&open(&path)).await;
}

#[tokio::test]
async fn passes_the_identity_conformance_suite() {
    let dir = TempDir::new("sqlite-identities");
    let path = database(&dir);
    check_identity_store(&open(&path)).await;
    check_identity_store(&open(&path)).await;
}

#[tokio::test]
async fn passes_the_cluster_conformance_suite() {
    let dir = TempDir::new("sqlite-clusters");
    let path = database(&dir);
    check_cluster_store(&open(&path)).await;
    check_cluster_store(&open(&path)).await;
}

#[tokio::test]
async fn passes_the_custom_key_store_conformance_suite() {
    let dir = TempDir::new("sqlite-key-stores");
    let path = database(&dir);
    check_key_store_store(&open(&path)).await;
    check_key_store_store(&open(&path)).await;
}

#[tokio::test]
async fn passes_the_multi_region_conformance_suite() {
    let dir = TempDir::new("sqlite-multi-region");
    let path = database(&dir);
    check_multi_region_store(&open(&path)).await;
    check_multi_region_store(&open(&path)).await;
}

#[tokio::test]
async fn passes_the_key_usage_conformance_suite() {
    let dir = TempDir::new("sqlite-key-usage");
    let path = database(&dir);
    check_key_usage_store(&open(&path)).await;
    check_key_usage_store(&open(&path)).await;
}

#[tokio::test]
async fn passes_the_secret_conformance_suite() {
    let dir = TempDir::new("sqlite-secrets");
    let path = database(&dir);
    check_secret_store(&open(&path)).await;
    check_secret_store(&open(&path)).await;
}

#[tokio::test]
async fn passes_the_stack_conformance_suite() {
    let dir = TempDir::new("sqlite-stacks");
    let path = database(&dir);
    check_stack_store(&open(&path)).await;
    check_stack_store(&open(&path)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn serves_concurrent_tasks() {
    let dir = TempDir::new("sqlite-concurrent");
    let store: Arc<dyn Store> = Arc::new(open(&database(&dir)));
    let home = namespace("111111111111", "us-east-1");
    let mut tasks = Vec::new();
    for n in 0..64 {
        let store = Arc::clone(&store);
        let home = home.clone();
        tasks.push(tokio::spawn(async move {
            let key = sample_key(&home, n);
            store.insert_key(&key).await.expect("insert_key");
            let read = store.key(&home, &key.key_id).await.expect("key");
            assert_eq!(read, Some(key), "a task reads its own write");
        }));
    }
    for task in tasks {
        task.await.expect("task");
    }
    let listed = store
        .list_keys(&home, None, usize::MAX)
        .await
        .expect("list_keys");
    assert_eq!(listed, (0..64).map(key_id).collect::<Vec<_>>());
}

#[tokio::test]
async fn reopening_keeps_every_record() {
    let dir = TempDir::new("sqlite-reopen");
    let path = database(&dir);
    let home = namespace("111111111111", "us-east-1");
    let away = namespace("222222222222", "ap-southeast-2");
    let mut keys = Vec::new();
    for (space, n) in [(&home, 1), (&home, 2), (&away, 1)] {
        let mut key = sample_key(space, n);
        key.tags = vec![
            Tag {
                key: "b".to_owned(),
                value: "first".to_owned(),
            },
            Tag {
                key: "a".to_owned(),
                value: "second".to_owned(),
            },
        ];
        keys.push(key);
    }
    let alias = sample_alias(&home, "alias/kept", &key_id(2));
    {
        let store = open(&path);
        for key in &keys {
            store.insert_key(key).await.expect("insert_key");
        }
        store.insert_alias(&alias).await.expect("insert_alias");
        store
            .put_setting("admin", b"wrapped credentials")
            .await
            .expect("put_setting");
    }

    let store = open(&path);
    for key in &keys {
        let read = store.key(&key.namespace, &key.key_id).await.expect("key");
        assert_eq!(read.as_ref(), Some(key), "a key survives reopening");
    }
    let read = store.alias(&home, &alias.name).await.expect("alias");
    assert_eq!(read, Some(alias), "an alias survives reopening");
    let setting = store.setting("admin").await.expect("setting");
    assert_eq!(
        setting.as_deref(),
        Some(&b"wrapped credentials"[..]),
        "a setting survives reopening"
    );
}

#[tokio::test]
async fn creates_the_schema_in_a_new_or_empty_file() {
    // Every migration file in the source tree is applied: the current version is their count.
    let migrations = std::fs::read_dir(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/sqlite/migrations"
    ))
    .expect("list the migrations")
    .filter(|entry| {
        entry
            .as_ref()
            .is_ok_and(|e| e.path().extension().is_some_and(|ext| ext == "sql"))
    })
    .count() as i64;
    assert!(migrations >= 11, "found only {migrations} migrations");
    let dir = TempDir::new("sqlite-migrate");
    let fresh = dir.path().join("fresh.sqlite");
    let empty = dir.path().join("empty.sqlite");
    std::fs::write(&empty, b"").expect("create an empty file");
    for path in [&fresh, &empty] {
        let store = open(path);
        assert_eq!(
            user_version(path),
            migrations,
            "{} is at the current schema version",
            path.display()
        );
        let journal_mode: String = raw(path)
            .pragma_query_value(None, "journal_mode", |row| row.get(0))
            .expect("journal_mode");
        assert_eq!(journal_mode, "wal", "the file is in write-ahead-log mode");
        check_store(&store).await;
    }
    // Opening a current file again applies nothing and keeps the version.
    drop(open(&fresh));
    assert_eq!(user_version(&fresh), migrations);
}

#[test]
fn refuses_a_schema_newer_than_it_knows() {
    let dir = TempDir::new("sqlite-too-new");
    let path = database(&dir);
    drop(open(&path));
    raw(&path)
        .pragma_update(None, "user_version", 99)
        .expect("set user_version");
    match SqliteStore::open(&path) {
        Err(StoreError::Backend(error)) => {
            assert!(
                error.to_string().contains("schema version 99"),
                "the error names the version: {error}"
            );
        }
        other => panic!("expected a backend error, got {other:?}"),
    }
}

#[test]
fn refuses_a_file_that_is_not_a_database() {
    let dir = TempDir::new("sqlite-garbage");
    let path = database(&dir);
    std::fs::write(&path, vec![0x42; 8192]).expect("write garbage");
    let res = SqliteStore::open(&path);
    assert!(
        matches!(res, Err(StoreError::Backend(_))),
        "expected a backend error, got {res:?}"
    );
}

#[tokio::test]
async fn reports_corrupt_rows_by_name() {
    let dir = TempDir::new("sqlite-corrupt");
    let path = database(&dir);
    let store = open(&path);
    let home = namespace("111111111111", "us-east-1");
    let mut key = sample_key(&home, 7);
    key.materials.push(sample_material(7, 1));
    key.deletion = Some(Deletion {
        date: base_time(),
        window_days: 7,
    });
    store.insert_key(&key).await.expect("insert_key");
    store
        .insert_alias(&sample_alias(&home, "alias/broken", &key.key_id))
        .await
        .expect("insert_alias");
    let key_id = key.key_id.as_str();

    let damage = |sql: &str| {
        raw(&path)
            .execute(sql, [])
            .unwrap_or_else(|error| panic!("{sql}: {error}"));
    };
    let expect_corrupt = |res: Result<String, StoreError>, names: &[&str]| match res {
        Err(StoreError::Backend(error)) => {
            let message = error.to_string();
            for name in names {
                assert!(message.contains(name), "'{message}' should mention {name}");
            }
        }
        other => panic!("expected a backend error, got {other:?}"),
    };

    damage("UPDATE keys SET key_spec = 'ROT13'");
    expect_corrupt(
        store
            .key(&home, &key.key_id)
            .await
            .map(|key| format!("{key:?}")),
        &[key_id, "key_spec", "ROT13"],
    );
    damage("UPDATE keys SET key_spec = 'SYMMETRIC_DEFAULT', rotation_period_days = -1");
    expect_corrupt(
        store
            .key(&home, &key.key_id)
            .await
            .map(|key| format!("{key:?}")),
        &[key_id, "rotation_period_days"],
    );
    damage("UPDATE keys SET rotation_period_days = NULL");
    damage("UPDATE key_materials SET rotation_type = 'SIDEWAYS' WHERE position = 1");
    expect_corrupt(
        store
            .key(&home, &key.key_id)
            .await
            .map(|key| format!("{key:?}")),
        &["key_materials", key_id, "position 1", "rotation_type"],
    );
    damage("UPDATE key_materials SET rotation_type = NULL");
    let healed = store.key(&home, &key.key_id).await.expect("key");
    assert_eq!(
        healed.map(|read| read.materials.len()),
        Some(2),
        "the repaired key reads again"
    );

    damage("UPDATE aliases SET target = 'not-a-key-id'");
    expect_corrupt(
        store
            .list_aliases(&home, None, None, 10)
            .await
            .map(|aliases| format!("{aliases:?}")),
        &["alias/broken", "target", "not-a-key-id"],
    );
    expect_corrupt(
        store
            .alias(&home, &alias_name("alias/broken"))
            .await
            .map(|alias| format!("{alias:?}")),
        &["alias/broken", "target"],
    );

    damage("UPDATE keys SET account = 'nobody'");
    let due = store.keys_due(base_time()).await;
    expect_corrupt(
        due.map(|due| format!("{due:?}")),
        &["nobody", key_id, "account"],
    );
}

fn database(dir: &TempDir) -> PathBuf {
    dir.path().join("strongroom.sqlite")
}

fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(path)
        .unwrap_or_else(|error| panic!("open {}: {error} ({error:?})", path.display()))
}

/// A plain connection to the file, for looking and damaging behind the store's back.
fn raw(path: &Path) -> Connection {
    Connection::open(path).unwrap_or_else(|error| panic!("open {}: {error}", path.display()))
}

fn user_version(path: &Path) -> i64 {
    raw(path)
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .expect("user_version")
}
