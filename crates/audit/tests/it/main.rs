//! Integration tests: durability under `kill -9`, the delivered layout, and tamper detection.

mod delivery;
mod durability;
mod support;
mod tamper;
