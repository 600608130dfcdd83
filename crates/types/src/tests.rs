//! Unit tests for identifier parsing and the context encoding.

use std::collections::BTreeMap;

use crate::{AliasName, EncryptionContext, KeyId, KeyMaterialId, KeyRef, KeyRefError, KeySpec};

#[test]
fn key_id_forms() {
    let id: KeyId = "1234ABCD-12ab-34cd-56ef-1234567890ab".parse().unwrap();
    assert_eq!(id.as_str(), "1234abcd-12ab-34cd-56ef-1234567890ab");
    assert!(
        "mrk-1234abcd12ab34cd56ef1234567890ab"
            .parse::<KeyId>()
            .is_ok()
    );
    assert!("mrk-1234".parse::<KeyId>().is_err());
    assert!("1234abcd12ab34cd56ef1234567890ab".parse::<KeyId>().is_err());
    assert!("not-a-key".parse::<KeyId>().is_err());
}

#[test]
fn key_ref_all_four_forms() {
    let id = "1234abcd-12ab-34cd-56ef-1234567890ab";
    assert!(matches!(KeyRef::parse(id), Ok(KeyRef::Id(_))));
    let arn = format!("arn:aws:kms:us-west-2:111122223333:key/{id}");
    match KeyRef::parse(&arn) {
        Ok(KeyRef::KeyArn(ns, key)) => {
            assert_eq!(ns.region.as_str(), "us-west-2");
            assert_eq!(ns.account.as_str(), "111122223333");
            assert_eq!(key.as_str(), id);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(
        KeyRef::parse("alias/my-key"),
        Ok(KeyRef::Alias(_))
    ));
    assert!(matches!(
        KeyRef::parse("arn:aws:kms:us-east-1:111122223333:alias/my/key"),
        Ok(KeyRef::AliasArn(_, _))
    ));
    assert!(matches!(
        KeyRef::parse("arn:aws:kms:us-east-1:1111:key/x"),
        Err(KeyRefError::InvalidArn(_))
    ));
    assert!(matches!(
        KeyRef::parse("arn:aws:s3:::bucket"),
        Err(KeyRefError::InvalidArn(_))
    ));
    assert!(matches!(
        KeyRef::parse("nonsense"),
        Err(KeyRefError::NotFound(_))
    ));
}

#[test]
fn alias_names() {
    assert!("alias/a-b_c:d/e".parse::<AliasName>().is_ok());
    assert!("alias/".parse::<AliasName>().is_err());
    assert!("alias/has space".parse::<AliasName>().is_err());
    assert!("aliasx/a".parse::<AliasName>().is_err());
    assert!("alias/aws/ebs".parse::<AliasName>().unwrap().is_reserved());
    let long = format!("alias/{}", "a".repeat(251));
    assert!(long.parse::<AliasName>().is_err());
}

#[test]
fn material_id_round_trip() {
    let id = KeyMaterialId([0xab; 32]);
    let hex = id.to_hex();
    assert_eq!(hex.len(), 64);
    assert_eq!(hex.parse::<KeyMaterialId>().unwrap(), id);
    assert!("AB".repeat(32).parse::<KeyMaterialId>().is_err());
}

#[test]
fn context_encoding_is_unambiguous() {
    let ctx = |pairs: &[(&str, &str)]| {
        EncryptionContext::new(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        )
    };
    assert_eq!(
        ctx(&[("a", "1"), ("b", "2")]).canonical_bytes(),
        ctx(&[("b", "2"), ("a", "1")]).canonical_bytes()
    );
    assert_ne!(
        ctx(&[("ab", "c")]).canonical_bytes(),
        ctx(&[("a", "bc")]).canonical_bytes()
    );
    assert_ne!(
        ctx(&[]).canonical_bytes(),
        ctx(&[("", "")]).canonical_bytes()
    );
}

#[test]
fn enum_spellings() {
    assert_eq!(
        "SYMMETRIC_DEFAULT".parse::<KeySpec>().unwrap(),
        KeySpec::SymmetricDefault
    );
    let err = "AES".parse::<KeySpec>().unwrap_err();
    assert!(err.to_string().contains("RSA_2048"));
}
