//! Integration tests against real SoftHSM2 tokens: users, replication, cryptography, failover.
//!
//! Every test runs in its own process with its own SoftHSM configuration (see `fixture`).

mod failover;
mod fixture;
mod keys;
mod objects;
mod root_key;
mod throughput;
mod users;
