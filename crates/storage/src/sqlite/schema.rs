//! Schema migrations, numbered by SQLite's `PRAGMA user_version`.
//!
//! Migration N (counting from 1) brings a file from `user_version` N-1 to N.
//! A migration, once released, is never edited: a change to the schema is a new migration appended here.

use rusqlite::{Connection, TransactionBehavior};

use crate::StoreError;
use crate::sqlite::{SqliteError, backend};

/// Every migration in order; the schema version of a current file is the length of this list.
pub(super) const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_initial.sql"),
    include_str!("migrations/0002_identities.sql"),
    include_str!("migrations/0003_clusters.sql"),
    include_str!("migrations/0004_key_stores.sql"),
    include_str!("migrations/0005_grants.sql"),
    include_str!("migrations/0006_imported_material.sql"),
    include_str!("migrations/0007_multi_region_and_key_usage.sql"),
    include_str!("migrations/0008_secrets.sql"),
    include_str!("migrations/0009_stacks.sql"),
    include_str!("migrations/0010_key_store_pending_password.sql"),
    include_str!("migrations/0011_hsm_backup_contents.sql"),
];

/// Brings the file's schema up to date in one transaction, so a crash leaves it at the old version.
///
/// A file whose version is newer than this build knows is refused rather than misread.
pub(super) fn migrate(connection: &mut Connection) -> Result<(), StoreError> {
    let transaction = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(backend)?;
    let found: i64 = transaction
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(backend)?;
    let known = MIGRATIONS.len();
    let applied = match usize::try_from(found) {
        Ok(applied) if applied <= known => applied,
        _ => {
            return Err(StoreError::Backend(Box::new(SqliteError::UnknownSchema {
                found,
                known,
            })));
        }
    };
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(applied) {
        transaction.execute_batch(migration).map_err(backend)?;
        transaction
            .pragma_update(None, "user_version", index + 1)
            .map_err(backend)?;
    }
    transaction.commit().map_err(backend)
}
