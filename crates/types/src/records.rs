//! What Strongroom keeps about keys and aliases, as storage backends persist it.

use std::collections::BTreeMap;

use crate::enums::{
    ExpirationModel, ImportState, KeyManager, KeySpec, KeyState, KeyUsage, Origin, RotationType,
};
use crate::ids::{AliasName, KeyId, KeyMaterialId, Namespace};
use crate::time::Timestamp;

/// Everything about one KMS key; the key material is held only wrapped by the key store's root key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// The account and Region that own the key.
    pub namespace: Namespace,
    /// The key id.
    pub key_id: KeyId,
    /// When the key was created.
    pub created: Timestamp,
    /// The customer's description (0 to 8192 characters).
    pub description: String,
    /// The type of key material.
    pub key_spec: KeySpec,
    /// What the key may be used for.
    pub key_usage: KeyUsage,
    /// Where the key material came from.
    pub origin: Origin,
    /// Customer or AWS managed.
    pub key_manager: KeyManager,
    /// The lifecycle state.
    pub state: KeyState,
    /// Set while the key is pending deletion.
    pub deletion: Option<Deletion>,
    /// The key policy document, exactly as given.
    pub policy: String,
    /// The automatic rotation settings.
    pub rotation: Rotation,
    /// Every version of the key material, oldest first; the last one is current.
    pub materials: Vec<KeyMaterial>,
    /// Tags in the order they were first added.
    pub tags: Vec<Tag>,
    /// Whether the key is a multi-Region key.
    pub multi_region: bool,
}

impl KeyRecord {
    /// The ARN of this key.
    pub fn arn(&self) -> String {
        self.namespace.key_arn(&self.key_id)
    }

    /// The material new encryptions use: the newest one that is not waiting for an on-demand rotation.
    pub fn current_material(&self) -> Option<&KeyMaterial> {
        self.materials
            .iter()
            .rev()
            .find(|material| !material.is_pending_rotation())
    }

    /// Imported materials the key is permanently associated with (not waiting for rotation) and that are
    /// in the key now.
    fn associated_imports(&self) -> impl Iterator<Item = &MaterialImport> {
        self.materials
            .iter()
            .filter(|material| !material.is_pending_rotation())
            .filter_map(|material| material.import.as_ref())
            .filter(|import| import.state == ImportState::Imported)
    }

    /// DescribeKey's `ExpirationModel`: whether any imported material of the key expires; `None` unless the
    /// key holds imported material.
    pub fn expiration_model(&self) -> Option<ExpirationModel> {
        if self.origin != Origin::External {
            return None;
        }
        let mut imports = self.associated_imports().peekable();
        imports.peek()?;
        if imports.any(|import| import.valid_to.is_some()) {
            Some(ExpirationModel::KeyMaterialExpires)
        } else {
            Some(ExpirationModel::KeyMaterialDoesNotExpire)
        }
    }

    /// DescribeKey's `ValidTo`: the earliest expiry of the imported materials the key is permanently
    /// associated with.
    pub fn valid_to(&self) -> Option<Timestamp> {
        self.associated_imports()
            .filter_map(|import| import.valid_to)
            .min()
    }

    /// The earliest instant any imported material (pending rotation or not) expires: when the key next
    /// has scheduled work for its materials.
    pub fn next_material_expiry(&self) -> Option<Timestamp> {
        self.materials
            .iter()
            .filter_map(|material| material.import.as_ref())
            .filter(|import| import.state == ImportState::Imported)
            .filter_map(|import| import.valid_to)
            .min()
    }

    /// Whether every material the key is permanently associated with is in the key, and there is at
    /// least one: what an EXTERNAL key needs to leave PendingImport.
    pub fn has_all_materials(&self) -> bool {
        let mut associated = self
            .materials
            .iter()
            .filter(|material| !material.is_pending_rotation())
            .peekable();
        associated.peek().is_some() && associated.all(KeyMaterial::is_present)
    }
}

/// When a key pending deletion will be deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deletion {
    /// The instant deletion happens.
    pub date: Timestamp,
    /// The waiting period that was asked for, in days.
    pub window_days: u32,
}

/// Automatic rotation settings of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// Whether automatic rotation is on.
    pub enabled: bool,
    /// The rotation period in days (90 to 2560); kept while rotation is off, as AWS does.
    pub period_days: Option<u32>,
    /// When the next automatic rotation is due, while rotation is on.
    pub next: Option<Timestamp>,
    /// When an on-demand rotation was last started.
    pub on_demand_started: Option<Timestamp>,
}

impl Rotation {
    /// Rotation off, as a new key starts.
    pub const OFF: Rotation = Rotation {
        enabled: false,
        period_days: None,
        next: None,
        on_demand_started: None,
    };
}

/// One version of a key's material, wrapped by the key store's root key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyMaterial {
    /// Identifies this version inside ciphertexts and on the wire.
    pub id: KeyMaterialId,
    /// The material, encrypted under the root key; never plaintext.
    ///
    /// Empty while imported material is deleted or expired (import state PENDING_IMPORT): only its id
    /// remains, so the key can recognise the same material when it is imported again.
    pub wrapped: Vec<u8>,
    /// When this version was created; for rotated-in imported material, when the rotation completed.
    pub created: Timestamp,
    /// How this version came about; `None` for the key's first material and for imported material that
    /// waits for an on-demand rotation.
    pub rotation_type: Option<RotationType>,
    /// How the material was imported, for keys of origin EXTERNAL; `None` for material a key store made.
    pub import: Option<MaterialImport>,
}

impl KeyMaterial {
    /// Whether the material is in the key now: always for generated material; for imported material,
    /// until it is deleted or expires.
    pub fn is_present(&self) -> bool {
        self.import
            .as_ref()
            .is_none_or(|import| import.state == ImportState::Imported)
    }

    /// Whether this is imported material waiting for RotateKeyOnDemand to make it current.
    pub fn is_pending_rotation(&self) -> bool {
        self.import
            .as_ref()
            .is_some_and(|import| import.pending_rotation)
    }
}

/// The import of one material version into a key of origin EXTERNAL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaterialImport {
    /// IMPORTED, or PENDING_IMPORT once the material was deleted or expired.
    pub state: ImportState,
    /// Whether the current import expires; `None` while the material is not imported.
    pub expiration_model: Option<ExpirationModel>,
    /// When the current import expires; set only while imported with KEY_MATERIAL_EXPIRES.
    pub valid_to: Option<Timestamp>,
    /// The customer's description of the material (symmetric keys only), kept across re-imports.
    pub description: Option<String>,
    /// Imported as NEW_KEY_MATERIAL and waiting for RotateKeyOnDemand; not yet permanently associated
    /// with the key.
    pub pending_rotation: bool,
}

/// A resource tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    /// 1 to 128 characters.
    pub key: String,
    /// 0 to 256 characters.
    pub value: String,
}

/// An alias and the key it points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasRecord {
    /// The account and Region that own the alias.
    pub namespace: Namespace,
    /// The alias name.
    pub name: AliasName,
    /// The key it points at, in the same namespace.
    pub target: KeyId,
    /// When the alias was created.
    pub created: Timestamp,
    /// When the alias was last pointed at a key.
    pub updated: Timestamp,
}

/// An encryption context: string pairs bound to a ciphertext, compared exactly and in any order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EncryptionContext(BTreeMap<String, String>);

impl EncryptionContext {
    /// Builds a context from its pairs.
    pub fn new(pairs: BTreeMap<String, String>) -> EncryptionContext {
        EncryptionContext(pairs)
    }

    /// The pairs, ordered by key.
    pub fn pairs(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A canonical, unambiguous byte encoding: pairs sorted by key, each string length-prefixed.
    ///
    /// Two contexts have equal encodings exactly when they hold the same pairs, which is what makes it
    /// safe as additional authenticated data.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&(self.0.len() as u32).to_be_bytes());
        for (key, value) in &self.0 {
            for part in [key, value] {
                out.extend_from_slice(&(part.len() as u32).to_be_bytes());
                out.extend_from_slice(part.as_bytes());
            }
        }
        out
    }
}
