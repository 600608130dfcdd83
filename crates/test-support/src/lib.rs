//! Shared fixtures and conformance suites for tests.
//!
//! A backend proves itself by passing a suite here: every [`Store`](strongroom_storage::Store) runs
//! [`check_store`], so the SQLite and PostgreSQL backends cannot drift apart in behaviour.
//! Fixtures in [`fixtures`] build deterministic records, so a test can rebuild what it wrote and compare.

mod clusters;
pub mod fixtures;
mod identities;
mod key_stores;
mod multi_region;
mod secrets;
mod stacks;
mod store;
mod temp_dir;

pub use crate::clusters::check_cluster_store;
pub use crate::identities::check_identity_store;
pub use crate::key_stores::check_key_store_store;
pub use crate::multi_region::{check_key_usage_store, check_multi_region_store};
pub use crate::secrets::check_secret_store;
pub use crate::stacks::check_stack_store;
pub use crate::store::check_store;
pub use crate::temp_dir::TempDir;
