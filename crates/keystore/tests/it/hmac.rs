//! HMAC (GenerateMac and VerifyMac's primitive) against Wycheproof and RFC 4231.
//!
//! `HmacKey` takes only the key lengths KMS accepts for each spec (the hash's output length up to its block
//! length). Vectors with other key lengths still apply through RFC 2104's definition: a key shorter than
//! the block is zero-padded to it, and a longer one is replaced by its hash, so the same MAC comes from
//! the key zero-padded to the spec's generated length, or from the key's hash. Both are checked, and so
//! is the refusal of the original length.

use aws_lc_rs::digest;
use strongroom_keystore::{HmacKey, KeyStoreError};
use strongroom_types::KeySpec;

use crate::vectors::{self, Tally, hex};

/// The hash and block length of an HMAC spec.
fn hash_of(spec: KeySpec) -> (&'static digest::Algorithm, usize) {
    match spec {
        KeySpec::Hmac224 => (&digest::SHA224, 64),
        KeySpec::Hmac256 => (&digest::SHA256, 64),
        KeySpec::Hmac384 => (&digest::SHA384, 128),
        KeySpec::Hmac512 => (&digest::SHA512, 128),
        other => panic!("{other} is not an HMAC spec"),
    }
}

/// A key KMS accepts for `spec` that computes the same MAC as `key`, and whether `key` itself is one.
fn equivalent_key(spec: KeySpec, key: &[u8]) -> (Vec<u8>, bool) {
    let allowed = HmacKey::allowed_lens(spec).unwrap();
    if allowed.contains(&key.len()) {
        return (key.to_vec(), true);
    }
    let (hash, block) = hash_of(spec);
    if key.len() > block {
        return (digest::digest(hash, key).as_ref().to_vec(), false);
    }
    let mut padded = key.to_vec();
    padded.resize(HmacKey::generated_len(spec).unwrap(), 0);
    (padded, false)
}

#[test]
fn hmac_tags_match_wycheproof_and_rfc_4231() {
    let file = vectors::load("hmac.json");
    let mut tally = Tally::default();
    for suite in &file.suites {
        let spec = suite.spec();
        let full_tag = HmacKey::generated_len(spec).unwrap() * 8;
        for group in &suite.groups {
            for case in &group.tests {
                let name = format!(
                    "{} (key {} bits, tag {} bits)",
                    case.name(suite),
                    case.key.len() * 4,
                    group.tag_size
                );
                let raw_key = hex(&case.key);
                let (key, accepted_as_is) = equivalent_key(spec, &raw_key);
                if !accepted_as_is {
                    let refused = matches!(
                        HmacKey::from_bytes(spec, &raw_key),
                        Err(KeyStoreError::InvalidMaterial(_))
                    );
                    tally.check(
                        format!("{name}: the key length itself"),
                        false,
                        Ok(!refused),
                    );
                }
                let key = HmacKey::from_bytes(spec, &key).unwrap();
                let message = hex(&case.msg);
                let tag = hex(&case.tag);
                // KMS compares whole tags: a truncated tag never verifies, even a correct one.
                let expected = case.valid() && group.tag_size == full_tag;
                tally.check(name.clone(), expected, Ok(key.verify(&message, &tag)));
                if case.valid() {
                    let computed = key.sign(&message);
                    if !computed.starts_with(&tag) || computed.len() * 8 != full_tag {
                        tally.fail(format!("{name}: GenerateMac computes another tag"));
                    }
                }
            }
        }
    }
    tally.finish("HMAC", 50, 100);
}

#[test]
fn hmac_key_lengths_are_those_kms_accepts() {
    for (spec, low, high) in [
        (KeySpec::Hmac224, 28, 64),
        (KeySpec::Hmac256, 32, 64),
        (KeySpec::Hmac384, 48, 128),
        (KeySpec::Hmac512, 64, 128),
    ] {
        for len in [low, high] {
            assert!(
                HmacKey::from_bytes(spec, &vec![7; len]).is_ok(),
                "{spec} {len}"
            );
        }
        for len in [low - 1, high + 1] {
            assert!(
                HmacKey::from_bytes(spec, &vec![7; len]).is_err(),
                "{spec} {len}"
            );
        }
    }
}
