//! Unit tests of how imported material moves through a multi-Region set: what a replica learns from its
//! primary, and what deleting or expiring material pending rotation leaves behind.

use strongroom_types::{
    ImportState, KeyManager, KeyMaterial, KeyMaterialId, KeyRecord, KeySpec, KeyState, KeyUsage,
    MaterialImport, Origin, Rotation, RotationType, Timestamp,
};

use crate::import::{
    PendingRemoval, align_replica_materials, awaiting_import, expire_materials, remove_material,
};

fn at(day: u32) -> Timestamp {
    Timestamp::from_millis(1_704_067_200_000).plus_days(day)
}

fn id(n: u8) -> KeyMaterialId {
    KeyMaterialId([n; 32])
}

/// Imported material `n`, held (with bytes) or awaiting its import, pending rotation or not.
fn material(n: u8, held: bool, pending_rotation: bool) -> KeyMaterial {
    KeyMaterial {
        id: id(n),
        wrapped: if held { vec![n; 48] } else { Vec::new() },
        created: at(u32::from(n)),
        rotation_type: None,
        import: Some(MaterialImport {
            state: if held {
                ImportState::Imported
            } else {
                ImportState::PendingImport
            },
            expiration_model: None,
            valid_to: None,
            description: Some(format!("material {n}")),
            pending_rotation,
        }),
    }
}

fn key(region: &str, materials: Vec<KeyMaterial>) -> KeyRecord {
    KeyRecord {
        namespace: strongroom_types::Namespace {
            account: "111122223333".parse().expect("account"),
            region: region.parse().expect("region"),
        },
        key_id: "mrk-1234abcd12ab34cd56ef1234567890ab"
            .parse()
            .expect("key id"),
        created: at(0),
        description: String::new(),
        key_spec: KeySpec::SymmetricDefault,
        key_usage: KeyUsage::EncryptDecrypt,
        origin: Origin::External,
        key_manager: KeyManager::Customer,
        state: KeyState::Enabled,
        deletion: None,
        policy: String::new(),
        rotation: Rotation::OFF,
        materials,
        tags: Vec::new(),
        multi_region: true,
    }
}

fn ids(record: &KeyRecord) -> Vec<KeyMaterialId> {
    record
        .materials
        .iter()
        .map(|material| material.id)
        .collect()
}

#[test]
fn a_replica_learns_of_new_material_without_its_bytes() {
    let primary = key(
        "us-east-1",
        vec![material(1, true, false), material(2, true, true)],
    );
    let mut replica = key("eu-west-1", vec![material(1, true, false)]);
    align_replica_materials(&primary, &mut replica);
    assert_eq!(ids(&replica), [id(1), id(2)]);
    let announced = &replica.materials[1];
    assert!(announced.is_pending_rotation());
    assert!(
        !announced.is_present(),
        "only its id, never the primary's bytes"
    );
    assert!(announced.wrapped.is_empty());
    assert_eq!(
        announced
            .import
            .as_ref()
            .and_then(|i| i.description.as_deref()),
        Some("material 2")
    );
    assert_eq!(replica.current_material().map(|m| m.id), Some(id(1)));
    assert_eq!(replica.state, KeyState::Enabled);

    // Aligning again changes nothing, and the replica's own import of it is kept.
    replica.materials[1] = material(2, true, true);
    let before = replica.clone();
    align_replica_materials(&primary, &mut replica);
    assert_eq!(replica, before);
}

#[test]
fn a_rotation_on_the_primary_reaches_the_replica_in_the_primary_order() {
    let mut rotated = material(2, true, false);
    rotated.created = at(40);
    rotated.rotation_type = Some(RotationType::OnDemand);
    let primary = key("us-east-1", vec![material(1, true, false), rotated]);
    // The replica holds both, the new one still pending (as after a crash between the primary's write and
    // the replica's).
    let mut replica = key(
        "eu-west-1",
        vec![material(2, true, true), material(1, true, false)],
    );
    align_replica_materials(&primary, &mut replica);
    assert_eq!(ids(&replica), [id(1), id(2)]);
    let current = replica.current_material().expect("a current material");
    assert_eq!(current.id, id(2));
    assert_eq!(current.created, at(40), "the primary's rotation date");
    assert_eq!(current.rotation_type, Some(RotationType::OnDemand));
    assert!(current.is_present(), "the replica's own bytes");
    assert_eq!(replica.state, KeyState::Enabled);
}

#[test]
fn a_rotated_material_the_replica_lacks_leaves_it_pending_import() {
    let mut rotated = material(2, true, false);
    rotated.rotation_type = Some(RotationType::OnDemand);
    let primary = key("us-east-1", vec![material(1, true, false), rotated]);
    let mut replica = key(
        "eu-west-1",
        vec![material(1, true, false), material(2, false, true)],
    );
    align_replica_materials(&primary, &mut replica);
    assert_eq!(replica.current_material().map(|m| m.id), Some(id(2)));
    assert_eq!(replica.state, KeyState::PendingImport);
}

#[test]
fn material_deleted_from_the_primary_leaves_every_replica() {
    let primary = key("us-east-1", vec![material(1, true, false)]);
    let mut replica = key(
        "eu-west-1",
        vec![material(1, false, false), material(2, true, true)],
    );
    replica.state = KeyState::PendingImport;
    align_replica_materials(&primary, &mut replica);
    assert_eq!(ids(&replica), [id(1)]);
    assert_eq!(
        replica.state,
        KeyState::PendingImport,
        "the replica still waits for its own material"
    );
}

#[test]
fn a_new_replica_awaits_every_material_of_the_primary() {
    let primary = [material(1, true, false), material(2, true, true)];
    let awaited = awaiting_import(&primary);
    assert_eq!(awaited.len(), 2);
    assert!(awaited.iter().all(|material| !material.is_present()));
    assert!(!awaited[0].is_pending_rotation());
    assert!(awaited[1].is_pending_rotation());
}

#[test]
fn pending_material_is_forgotten_or_awaited_again() {
    let mut primary = key(
        "us-east-1",
        vec![material(1, true, false), material(2, true, true)],
    );
    let mut replica = primary.clone();
    remove_material(&mut primary, 1, PendingRemoval::Forget);
    assert_eq!(ids(&primary), [id(1)]);
    remove_material(&mut replica, 1, PendingRemoval::KeepId);
    assert_eq!(ids(&replica), [id(1), id(2)]);
    assert!(replica.materials[1].is_pending_rotation());
    assert!(!replica.materials[1].is_present());
    for record in [&primary, &replica] {
        assert_eq!(
            record.state,
            KeyState::Enabled,
            "pending material is not the key's own"
        );
    }
    // Material the key is permanently associated with makes it wait, whatever `pending` says.
    remove_material(&mut replica, 0, PendingRemoval::KeepId);
    assert_eq!(replica.state, KeyState::PendingImport);
}

#[test]
fn expired_pending_material_keeps_its_id_only_in_multi_region_keys() {
    let expiring = |n: u8| {
        let mut out = material(n, true, true);
        if let Some(import) = &mut out.import {
            import.valid_to = Some(at(10));
        }
        out
    };
    let mut multi_region = key("eu-west-1", vec![material(1, true, false), expiring(2)]);
    let mut single_region = multi_region.clone();
    single_region.multi_region = false;
    assert!(!expire_materials(&mut multi_region, at(9)));
    assert!(expire_materials(&mut multi_region, at(10)));
    assert!(expire_materials(&mut single_region, at(10)));
    assert_eq!(ids(&multi_region), [id(1), id(2)]);
    assert!(!multi_region.materials[1].is_present());
    assert_eq!(ids(&single_region), [id(1)]);
    assert_eq!(multi_region.state, KeyState::Enabled);
}
