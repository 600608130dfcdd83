//! Tests of root-key wrapping and message sealing.

use std::os::unix::fs::PermissionsExt;

use proptest::prelude::*;

use crate::{FileRootKey, KeyStoreError, RootKey, SymmetricKey, material_id};

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("strongroom-keystore-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn root_key_is_created_private_and_reused() {
    let dir = temp_dir("root");
    let path = dir.join("root.key");
    let first = FileRootKey::open_or_create(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let wrapped = first.wrap(b"ctx", b"material").unwrap();
    assert!(!wrapped.windows(8).any(|w| w == b"material"));
    let second = FileRootKey::open_or_create(&path).unwrap();
    assert_eq!(&second.unwrap(b"ctx", &wrapped).unwrap()[..], b"material");
    assert!(matches!(
        second.unwrap(b"other", &wrapped),
        Err(KeyStoreError::Unauthentic)
    ));
}

#[test]
fn root_key_readable_by_others_is_refused() {
    let dir = temp_dir("perm");
    let path = dir.join("root.key");
    FileRootKey::open_or_create(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = FileRootKey::open_or_create(&path)
        .err()
        .expect("must refuse");
    assert!(err.to_string().contains("chmod 600"), "{err}");
}

#[test]
fn seal_open_round_trip_and_aad_binding() {
    let key = SymmetricKey::generate();
    let (nonce, sealed) = key.seal(b"aad", b"hello").unwrap();
    assert_eq!(&key.open(b"aad", &nonce, &sealed).unwrap()[..], b"hello");
    assert!(key.open(b"aaD", &nonce, &sealed).is_err());
    let other = SymmetricKey::generate();
    assert!(other.open(b"aad", &nonce, &sealed).is_err());
    // Two seals of one message differ: the derived key is fresh each time.
    let (_, again) = key.seal(b"aad", b"hello").unwrap();
    assert_ne!(sealed, again);
}

#[test]
fn material_ids_differ_by_key_and_material() {
    let a = material_id("arn:a", &[1; 32]);
    assert_eq!(a, material_id("arn:a", &[1; 32]));
    assert_ne!(a, material_id("arn:b", &[1; 32]));
    assert_ne!(a, material_id("arn:a", &[2; 32]));
}

proptest! {
    #[test]
    fn any_flipped_bit_is_rejected(plaintext in proptest::collection::vec(any::<u8>(), 0..256), bit in 0usize..4096) {
        let key = SymmetricKey::generate();
        let (nonce, mut sealed) = key.seal(b"aad", &plaintext).unwrap();
        let bit = bit % (sealed.len() * 8);
        sealed[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(key.open(b"aad", &nonce, &sealed).is_err());
    }
}
