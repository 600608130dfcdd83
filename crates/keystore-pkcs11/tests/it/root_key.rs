//! The default key store's root key inside the HSMs: key material is wrapped and unwrapped there,
//! and the key is kept on several tokens, copied only wrapped, and checked to be one key.

use cryptoki::error::{Error as Pkcs11Error, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass};
use strongroom_keystore::{KeyStoreError, RootKey};
use strongroom_keystore_pkcs11::{
    Fault, HsmRootKey, KeyCheck, RootKeyCopy, RootKeyError, RootKeyExpectation, RootKeyReport,
    RootKeyToken, SecretSource,
};

use crate::fixture::{Fixture, USER_PIN, softhsm_test, user_pin};

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

/// Makes the crypto user (the user PIN) on `labels`, as an operator initializing the tokens would.
fn give_user_pins(fx: &crate::fixture::Fixture, labels: &[&str]) {
    let cluster = fx.open(labels);
    cluster.create_crypto_user(&user_pin()).unwrap();
}

/// A root-key token of the fixture; with its Security Officer PIN when `so_pin`.
fn token(fx: &crate::fixture::Fixture, label: &str, so_pin: bool) -> RootKeyToken {
    let pin_file = fx.dir.join("root-user.pin");
    std::fs::write(&pin_file, format!("{USER_PIN}\n")).unwrap();
    let config = fx.config(label);
    RootKeyToken {
        module: config.module,
        token_label: label.to_owned(),
        user_pin: SecretSource::File(pin_file),
        so_pin: so_pin.then_some(config.so_pin),
    }
}

fn open(
    fx: &crate::fixture::Fixture,
    tokens: &[RootKeyToken],
    expected: RootKeyExpectation<'_>,
) -> Result<(HsmRootKey, RootKeyReport), RootKeyError> {
    HsmRootKey::open_replicated(tokens, LABEL, expected, &fx.modules, Fixture::options())
}

fn left_out(report: &RootKeyReport) -> Vec<&str> {
    report.left_out.iter().map(|it| it.token.as_str()).collect()
}

softhsm_test!(the_root_key_is_copied_wrapped_to_an_empty_token, |fx| {
    give_user_pins(&fx, &["hsm-a", "hsm-b"]);
    let (a, b) = (token(&fx, "hsm-a", true), token(&fx, "hsm-b", true));

    // A single token: the key is made there, and its check is what the caller records.
    let only = std::slice::from_ref(&a);
    let (root, report) = open(&fx, only, RootKeyExpectation::New).unwrap();
    assert_eq!(report.generated_on.as_deref(), Some("hsm-a"));
    assert_eq!(report.serving, ["hsm-a"]);
    assert!(report.copies.is_empty() && report.left_out.is_empty());
    let check = report.check;
    assert_eq!(KeyCheck::from_bytes(&check.to_bytes()), Some(check.clone()));
    assert_eq!(KeyCheck::from_bytes(&check.to_bytes()[..20]), None);
    let material = [0x5au8; 32];
    let wrapped = root.wrap(b"arn:key/1\0material-1", &material).unwrap();
    drop(root);

    // A second, empty token listed: it receives a copy at start, and both serve.
    let (root, report) = open(
        &fx,
        &[a.clone(), b.clone()],
        RootKeyExpectation::Matching(&check),
    )
    .unwrap();
    assert_eq!(report.generated_on, None);
    assert_eq!(
        report.copies,
        [RootKeyCopy {
            from: "hsm-a".to_owned(),
            to: "hsm-b".to_owned()
        }]
    );
    assert_eq!(report.serving, ["hsm-a", "hsm-b"]);
    assert_eq!(
        &root.unwrap(b"arn:key/1\0material-1", &wrapped).unwrap()[..],
        &material
    );
    drop(root);

    // The copy is the same protected key: sensitive, never readable, extractable only under a
    // trusted key (which the crypto user cannot make), so never in plaintext outside a token.
    for label in ["hsm-a", "hsm-b"] {
        let session = fx.user_session(label);
        let found = session
            .find_objects(&[Attribute::Label(LABEL.as_bytes().to_vec())])
            .unwrap();
        assert_eq!(found.len(), 1, "one root key on {label}");
        let attributes = session
            .get_attributes(
                found[0],
                &[
                    AttributeType::Private,
                    AttributeType::Sensitive,
                    AttributeType::Extractable,
                    AttributeType::WrapWithTrusted,
                    AttributeType::Modifiable,
                    AttributeType::Encrypt,
                    AttributeType::Decrypt,
                    AttributeType::Wrap,
                    AttributeType::Unwrap,
                    AttributeType::Value,
                ],
            )
            .unwrap();
        assert_eq!(
            attributes,
            [
                Attribute::Private(true),
                Attribute::Sensitive(true),
                // PKCS#11 wraps no CKA_EXTRACTABLE=false key, so a lost token could never be
                // replaced; CKA_WRAP_WITH_TRUSTED limits extraction to trusted wrapping keys.
                Attribute::Extractable(true),
                Attribute::WrapWithTrusted(true),
                Attribute::Modifiable(false),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
                Attribute::Wrap(false),
                Attribute::Unwrap(false),
            ],
            "{label}: CKA_VALUE is not returned"
        );
        let own_key = session
            .generate_key(
                &Mechanism::AesKeyGen,
                &[
                    Attribute::Class(ObjectClass::SECRET_KEY),
                    Attribute::KeyType(KeyType::AES),
                    Attribute::ValueLen(32.into()),
                    Attribute::Token(false),
                    Attribute::Wrap(true),
                ],
            )
            .unwrap();
        assert!(
            matches!(
                session.wrap_key(&Mechanism::AesKeyWrap, own_key, found[0]),
                Err(Pkcs11Error::Pkcs11(RvError::KeyNotWrappable, _))
            ),
            "{label}"
        );
    }

    // Each token alone opens what the other wrapped.
    let (root, report) = open(
        &fx,
        std::slice::from_ref(&b),
        RootKeyExpectation::Matching(&check),
    )
    .unwrap();
    assert_eq!(report.serving, ["hsm-b"]);
    let wrapped_on_b = root.wrap(b"arn:key/2\0material-1", &material).unwrap();
    drop(root);
    let (root, _) = open(
        &fx,
        std::slice::from_ref(&a),
        RootKeyExpectation::Matching(&check),
    )
    .unwrap();
    assert_eq!(
        &root
            .unwrap(b"arn:key/2\0material-1", &wrapped_on_b)
            .unwrap()[..],
        &material
    );
    drop(root);
});

softhsm_test!(a_replicated_root_key_serves_while_a_token_is_out, |fx| {
    give_user_pins(&fx, &["hsm-a", "hsm-b"]);
    let (a, b) = (token(&fx, "hsm-a", true), token(&fx, "hsm-b", true));
    let (root, report) = open(&fx, &[a.clone(), b.clone()], RootKeyExpectation::New).unwrap();
    assert_eq!(report.generated_on.as_deref(), Some("hsm-a"));
    assert_eq!(report.serving, ["hsm-a", "hsm-b"]);
    let check = report.check;
    let material = [0x5au8; 32];
    let wrapped = root.wrap(b"arn:key/1\0material-1", &material).unwrap();
    drop(root);

    // A running root key keeps serving when either token fails, and takes a token back.
    let (root, _) = open(
        &fx,
        &[a.clone(), b.clone()],
        RootKeyExpectation::Matching(&check),
    )
    .unwrap();
    for (down, up) in [("hsm-a", "hsm-b"), ("hsm-b", "hsm-a")] {
        fx.module.inject_fault(up, None);
        fx.module.inject_fault(down, Some(Fault::Outage));
        for round in 0..6u8 {
            assert_eq!(
                &root.unwrap(b"arn:key/1\0material-1", &wrapped).unwrap()[..],
                &material,
                "{down} down, round {round}"
            );
            let again = root.wrap(b"ctx", &[round; 32]).unwrap();
            assert_eq!(&root.unwrap(b"ctx", &again).unwrap()[..], &[round; 32]);
        }
    }
    fx.module.inject_fault("hsm-b", Some(Fault::Outage));
    fx.module.inject_fault("hsm-a", Some(Fault::Outage));
    assert!(matches!(
        root.unwrap(b"arn:key/1\0material-1", &wrapped),
        Err(KeyStoreError::Crypto)
    ));
    fx.module.inject_fault("hsm-a", None);
    assert_eq!(
        &root.unwrap(b"arn:key/1\0material-1", &wrapped).unwrap()[..],
        &material,
        "a token that answers again serves again"
    );
    drop(root);

    // At start, one token holding the key is enough: the others are left out, with the reason.
    let (root, report) = open(
        &fx,
        &[a.clone(), b.clone()],
        RootKeyExpectation::Matching(&check),
    )
    .unwrap();
    assert_eq!(report.serving, ["hsm-a"]);
    assert_eq!(left_out(&report), ["hsm-b"]);
    assert_eq!(
        &root.unwrap(b"arn:key/1\0material-1", &wrapped).unwrap()[..],
        &material
    );
    drop(root);
    fx.module.inject_fault("hsm-b", None);
    let broken_pin = RootKeyToken {
        user_pin: SecretSource::File(fx.dir.join("no-such.pin")),
        ..a.clone()
    };
    let missing = RootKeyToken {
        token_label: "hsm-gone".to_owned(),
        ..a.clone()
    };
    let (root, report) = open(
        &fx,
        &[broken_pin, missing, b.clone()],
        RootKeyExpectation::Matching(&check),
    )
    .unwrap();
    assert_eq!(report.serving, ["hsm-b"]);
    assert_eq!(left_out(&report), ["hsm-a", "hsm-gone"]);
    assert!(
        report.left_out[0].reason.contains("no-such.pin"),
        "{:?}",
        report.left_out
    );
    assert!(
        !format!("{report:?}").contains(USER_PIN),
        "no PIN in the report"
    );
    assert_eq!(
        &root.unwrap(b"arn:key/1\0material-1", &wrapped).unwrap()[..],
        &material
    );
});

softhsm_test!(tokens_holding_different_root_keys_are_refused, |fx| {
    give_user_pins(&fx, &["hsm-a", "hsm-b", "hsm-c"]);
    let (a, b, c) = (
        token(&fx, "hsm-a", true),
        token(&fx, "hsm-b", true),
        token(&fx, "hsm-c", false),
    );
    let (root, report) = open(&fx, std::slice::from_ref(&a), RootKeyExpectation::New).unwrap();
    let check_a = report.check;
    drop(root);
    let (root, _) = open(&fx, std::slice::from_ref(&b), RootKeyExpectation::New).unwrap();
    drop(root);

    let refused = open(&fx, &[a.clone(), b.clone()], RootKeyExpectation::New).err();
    assert!(
        matches!(&refused, Some(RootKeyError::Mismatch { first, second, .. })
            if first == "hsm-a" && second == "hsm-b"),
        "{refused:?}"
    );
    let message = refused.unwrap().to_string();
    assert!(message.contains("different keys"), "{message}");
    let refused = open(
        &fx,
        std::slice::from_ref(&b),
        RootKeyExpectation::Matching(&check_a),
    )
    .err();
    assert!(
        matches!(&refused, Some(RootKeyError::NotTheRecordedKey { token, .. }) if token == "hsm-b"),
        "{refused:?}"
    );
    // One token with the right key does not make the other acceptable.
    let refused = open(
        &fx,
        &[a.clone(), b.clone()],
        RootKeyExpectation::Matching(&check_a),
    )
    .err();
    assert!(
        matches!(&refused, Some(RootKeyError::NotTheRecordedKey { token, .. }) if token == "hsm-b"),
        "{refused:?}"
    );

    // Data wrapped by a key that no token holds: no new key is made in its place.
    for expected in [
        RootKeyExpectation::Existing,
        RootKeyExpectation::Matching(&check_a),
    ] {
        let refused = open(&fx, std::slice::from_ref(&c), expected).err();
        assert!(
            matches!(refused, Some(RootKeyError::Missing { .. })),
            "{refused:?}"
        );
    }
    let found = fx
        .user_session("hsm-c")
        .find_objects(&[Attribute::Label(LABEL.as_bytes().to_vec())])
        .unwrap();
    assert!(found.is_empty(), "no key was made on hsm-c");

    // Copying needs both Security Officers; without one, the token is left out and says why.
    let (root, report) = open(
        &fx,
        &[a.clone(), c.clone()],
        RootKeyExpectation::Matching(&check_a),
    )
    .unwrap();
    assert_eq!(report.serving, ["hsm-a"]);
    assert_eq!(left_out(&report), ["hsm-c"]);
    assert!(
        report.left_out[0].reason.contains("Security Officer PIN"),
        "{:?}",
        report.left_out
    );
    drop(root);
    let listed_twice = open(&fx, &[a.clone(), a.clone()], RootKeyExpectation::New).err();
    assert!(
        matches!(listed_twice, Some(RootKeyError::DuplicateToken { .. })),
        "{listed_twice:?}"
    );
});
