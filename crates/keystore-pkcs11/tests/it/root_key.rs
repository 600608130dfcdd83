//! The default key store's root key inside the HSMs: key material is wrapped and unwrapped there.

use strongroom_keystore::{KeyStoreError, RootKey};
use strongroom_keystore_pkcs11::HsmRootKey;

use crate::fixture::softhsm_test;

const LABEL: &str = "strongroom-root-key";

softhsm_test!(the_root_key_wraps_inside_the_hsms, |fx| {
    let cluster = std::sync::Arc::new(fx.ready(&["hsm-a", "hsm-b"]));
    let root = HsmRootKey::open(cluster.clone(), LABEL).unwrap();
    let material = [0x42u8; 32];
    let wrapped = root.wrap(b"arn:key/1\0material-1", &material).unwrap();
    assert!(
        !wrapped.windows(32).any(|w| w == material),
        "the wrapped blob holds the material in plaintext"
    );
    assert_eq!(
        &root.unwrap(b"arn:key/1\0material-1", &wrapped).unwrap()[..],
        &material
    );
    assert!(matches!(
        root.unwrap(b"arn:key/2\0material-1", &wrapped),
        Err(KeyStoreError::Unauthentic)
    ));
    let mut tampered = wrapped.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    assert!(matches!(
        root.unwrap(b"arn:key/1\0material-1", &tampered),
        Err(KeyStoreError::Unauthentic)
    ));

    // Opening again finds the same key in the HSMs rather than making a new one.
    let again = HsmRootKey::open(cluster, LABEL).unwrap();
    assert_eq!(
        &again.unwrap(b"arn:key/1\0material-1", &wrapped).unwrap()[..],
        &material
    );
    for token in ["hsm-a", "hsm-b"] {
        let session = fx.session(token);
        let template = [cryptoki::object::Attribute::Label(
            LABEL.as_bytes().to_vec(),
        )];
        let found = session.find_objects(&template).unwrap();
        assert_eq!(found.len(), 1, "the root key exists once on {token}");
    }
});
