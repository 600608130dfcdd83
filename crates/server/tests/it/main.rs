//! The server's one integration test binary: a real Strongroom on a local port, driven end to end with
//! the AWS SDK for Rust, hand-built HTTP requests, and the `strongroom` binary itself.
//!
//! Each module covers one area of the KMS API; `harness` holds the servers and shared helpers.

mod aliases;
mod ansible;
mod asymmetric;
mod audit;
mod authorization;
mod authz_scenarios;
mod benchmark;
mod cks_restart;
mod cks_rotation;
mod cloudhsm;
mod cluster_backups;
mod cluster_health;
mod crypto;
mod custom_key_stores;
mod durability;
mod grants;
mod harness;
mod iam;
mod import;
mod interop;
mod key_forms;
mod key_policy;
mod key_state;
mod keys;
mod last_usage;
mod multi_region;
mod multi_region_import;
mod namespaces;
mod protocol;
mod python;
mod root_key_replicas;
mod rotation;
mod secrets;
mod seed;
mod stacks;
mod tags;
