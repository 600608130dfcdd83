//! Fuzz target: parsing any input as a policy of any kind never panics, and whatever parses evaluates
//! against sample requests without panicking.
//!
//! The body lives in `strongroom_policy::fuzz_policy_parse`, where a proptest also runs it on stable Rust.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    strongroom_policy::fuzz_policy_parse(data);
});
