//! Deterministic records for tests: the same arguments always build the same record.
//!
//! Determinism lets a test that wrote a record in another process, or before a restart, rebuild it and
//! compare the whole value.

use strongroom_types::{
    AliasName, AliasRecord, KeyId, KeyManager, KeyMaterial, KeyMaterialId, KeyRecord, KeySpec,
    KeyState, KeyUsage, Namespace, Origin, Rotation, Timestamp,
};

/// A fixed instant (2024-01-01T00:00:00Z) that sample records are dated from, so tests never depend on the
/// clock.
pub fn base_time() -> Timestamp {
    Timestamp::from_millis(1_704_067_200_000)
}

/// Parses a namespace; panics on a malformed account or Region, which is a bug in the test.
pub fn namespace(account: &str, region: &str) -> Namespace {
    Namespace {
        account: account
            .parse()
            .unwrap_or_else(|error| panic!("bad test account {account}: {error}")),
        region: region
            .parse()
            .unwrap_or_else(|error| panic!("bad test Region {region}: {error}")),
    }
}

/// The key id numbered `n`; ids sort in the order of their numbers.
pub fn key_id(n: u32) -> KeyId {
    let text = format!("{n:08x}-0000-4000-8000-{n:012x}");
    text.parse()
        .unwrap_or_else(|error| panic!("bad test key id {text}: {error}"))
}

/// Parses an alias name; panics on a malformed one, which is a bug in the test.
pub fn alias_name(name: &str) -> AliasName {
    name.parse()
        .unwrap_or_else(|error| panic!("bad test alias name {name}: {error}"))
}

/// Version `version` of key `n`'s material, with a distinct id and wrapped bytes that include zeros.
pub fn sample_material(n: u32, version: u32) -> KeyMaterial {
    let mut id = [0xa5; 32];
    id[..4].copy_from_slice(&n.to_be_bytes());
    id[4..8].copy_from_slice(&version.to_be_bytes());
    let wrapped = (0..60u32)
        .map(|i| (i.wrapping_mul(7) ^ n ^ version.wrapping_mul(31)) as u8)
        .collect();
    KeyMaterial {
        id: KeyMaterialId(id),
        wrapped,
        created: base_time().plus_days(version),
        rotation_type: None,
        import: None,
    }
}

/// An enabled symmetric customer managed key numbered `n`, with one material, no tags and nothing
/// scheduled, like a key fresh from CreateKey.
pub fn sample_key(namespace: &Namespace, n: u32) -> KeyRecord {
    let key_id = key_id(n);
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{}:root"}},"Action":"kms:*","Resource":"*"}}]}}"#,
        namespace.account
    );
    KeyRecord {
        namespace: namespace.clone(),
        key_id,
        created: Timestamp::from_millis(base_time().millis() + i64::from(n) * 1000),
        description: format!("sample key {n}"),
        key_spec: KeySpec::SymmetricDefault,
        key_usage: KeyUsage::EncryptDecrypt,
        origin: Origin::AwsKms,
        key_manager: KeyManager::Customer,
        state: KeyState::Enabled,
        deletion: None,
        policy,
        rotation: Rotation::OFF,
        materials: vec![sample_material(n, 0)],
        tags: Vec::new(),
        multi_region: false,
    }
}

/// An alias in `namespace` pointing at `target`, created and last updated at [`base_time`].
pub fn sample_alias(namespace: &Namespace, name: &str, target: &KeyId) -> AliasRecord {
    AliasRecord {
        namespace: namespace.clone(),
        name: alias_name(name),
        target: target.clone(),
        created: base_time(),
        updated: base_time(),
    }
}
