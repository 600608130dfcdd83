//! Imported key material (keys of origin EXTERNAL): GetParametersForImport, ImportKeyMaterial,
//! DeleteImportedKeyMaterial, and the expiry of imported material at its ValidTo.
//!
//! **The import token** is self-contained: the wrapping private key, the key ARN it was issued for, the
//! wrapping algorithm and key spec, and the instant it expires, sealed under the root key (AES-256-GCM
//! with its own additional data, so it cannot pass for wrapped key material). Nothing is stored: any
//! server sharing the root key accepts it, a restart does not invalidate it, and a token from another
//! root key or a tampered one is an `InvalidImportTokenException`. A token works only for the key it
//! was issued for, and only with material wrapped under the public key of the same response; it may be
//! used more than once until it expires 24 hours after it was issued (AWS states the same validity).
//!
//! **Material identity.** A material's `KeyMaterialId` is SHA-256 over the key id and the material (for
//! key pairs, the public key, so a private key re-encoded differently is still the same material).
//! Re-importing must bring material with an id the key already has; anything else is
//! `IncorrectKeyMaterialException`. Deleted or expired material leaves its id behind with import state
//! PENDING_IMPORT, and the key is PendingImport until every material it is permanently associated with
//! is imported again.
//!
//! **Multi-Region keys.** KMS copies no imported material between Regions: the owner imports the same
//! material into every key of the set, and the shared key id gives it the same id everywhere. New material
//! for on-demand rotation goes into the primary (ImportType NEW_KEY_MATERIAL; a replica refuses it); every
//! replica then learns its id without its bytes ([`align_replica_materials`], run whenever the primary is
//! written) and takes it with EXISTING_KEY_MATERIAL. Until every replica holds it, its state is
//! PENDING_MULTI_REGION_IMPORT_AND_ROTATION, and RotateKeyOnDemand on the primary then makes it current in
//! every Region at once (`rotation`). Deleting it from the primary deletes it from the whole set; deleting
//! or expiring it in one replica leaves only that replica waiting for it again.

use std::time::Duration;

use strongroom_keystore::{Material, WrappingKey};
use strongroom_storage::multi_region::MultiRegionRole;
use strongroom_types::{
    ExpirationModel, ImportState, ImportType, KeyMaterial, KeyMaterialId, KeyRecord, KeySpec,
    KeyState, MaterialImport, Origin, Timestamp, WrappingAlgorithm, WrappingKeySpec,
};
use zeroize::Zeroizing;

use crate::authz::RequestFacts;
use crate::keyring::{Forms, wrap_context};
use crate::state::{self, OpClass};
use crate::{Caller, Error, Kms};

/// How long a public key and import token stay usable.
const TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);
/// The furthest ahead ValidTo may be.
const MAX_VALID_TO_DAYS: u32 = 365;
/// The root key's additional data for import tokens; no key material is ever wrapped with it.
const TOKEN_CONTEXT: &[u8] = b"strongroom/v1/import-token";
const TOKEN_VERSION: u8 = 1;

/// GetParametersForImport's result.
#[derive(Debug)]
pub struct ImportParameters {
    /// The key ARN.
    pub key_arn: String,
    /// The sealed import token.
    pub import_token: Vec<u8>,
    /// The wrapping public key, DER SubjectPublicKeyInfo.
    pub public_key: Vec<u8>,
    /// When the token and public key stop working.
    pub parameters_valid_to: Timestamp,
}

/// ImportKeyMaterial's parameters besides the key.
#[derive(Debug)]
pub struct ImportKeyMaterialRequest {
    /// The token from GetParametersForImport.
    pub import_token: Vec<u8>,
    /// The material, wrapped under the token's public key.
    pub encrypted_key_material: Zeroizing<Vec<u8>>,
    /// When the material expires; required with KEY_MATERIAL_EXPIRES (the default).
    pub valid_to: Option<Timestamp>,
    /// Whether the material expires.
    pub expiration_model: Option<ExpirationModel>,
    /// New or previously associated material (symmetric keys only).
    pub import_type: Option<ImportType>,
    /// A description of the material (symmetric keys only).
    pub key_material_description: Option<String>,
    /// The id the material must have (symmetric keys only, never with NEW_KEY_MATERIAL).
    pub key_material_id: Option<String>,
}

/// ImportKeyMaterial's and DeleteImportedKeyMaterial's result.
#[derive(Debug)]
pub struct MaterialOutcome {
    /// The key ARN.
    pub key_arn: String,
    /// The material imported or deleted; `None` when there was none to delete.
    pub key_material_id: Option<KeyMaterialId>,
}

/// What an import token carries.
struct ImportToken {
    key_arn: String,
    algorithm: WrappingAlgorithm,
    spec: WrappingKeySpec,
    valid_to: Timestamp,
    wrapping_key: Zeroizing<Vec<u8>>,
}

impl ImportToken {
    /// Layout: version, algorithm and spec (each a length byte and wire name), valid-to in milliseconds
    /// (8 bytes big-endian), key ARN (2-byte length), then the wrapping private key as PKCS#8 DER.
    fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(self.wrapping_key.len() + 160));
        out.push(TOKEN_VERSION);
        for name in [self.algorithm.as_str(), self.spec.as_str()] {
            out.push(name.len() as u8);
            out.extend_from_slice(name.as_bytes());
        }
        out.extend_from_slice(&self.valid_to.millis().to_be_bytes());
        out.extend_from_slice(&(self.key_arn.len() as u16).to_be_bytes());
        out.extend_from_slice(self.key_arn.as_bytes());
        out.extend_from_slice(&self.wrapping_key);
        out
    }

    fn decode(bytes: &[u8]) -> Option<ImportToken> {
        let mut rest = bytes;
        let mut take = |len: usize| -> Option<&[u8]> {
            if rest.len() < len {
                return None;
            }
            let (head, tail) = rest.split_at(len);
            rest = tail;
            Some(head)
        };
        if take(1)? != [TOKEN_VERSION] {
            return None;
        }
        let algorithm_len = usize::from(take(1)?[0]);
        let algorithm = std::str::from_utf8(take(algorithm_len)?)
            .ok()?
            .parse()
            .ok()?;
        let spec_len = usize::from(take(1)?[0]);
        let spec = std::str::from_utf8(take(spec_len)?).ok()?.parse().ok()?;
        let valid_to = i64::from_be_bytes(take(8)?.try_into().ok()?);
        let arn_len = usize::from(u16::from_be_bytes(take(2)?.try_into().ok()?));
        let key_arn = std::str::from_utf8(take(arn_len)?).ok()?.to_owned();
        Some(ImportToken {
            key_arn,
            algorithm,
            spec,
            valid_to: Timestamp::from_millis(valid_to),
            wrapping_key: Zeroizing::new(rest.to_vec()),
        })
    }
}

fn invalid_token() -> Error {
    Error::InvalidImportToken(
        "The import token is not valid: pass the ImportToken of a GetParametersForImport response from \
         this server, unchanged."
            .to_owned(),
    )
}

/// Refuses keys that cannot hold imported material.
fn check_external(record: &KeyRecord) -> Result<(), Error> {
    match record.origin {
        Origin::External => Ok(()),
        origin => Err(Error::UnsupportedOperation(format!(
            "{} origin is {origin} which is not valid for this operation.",
            record.arn()
        ))),
    }
}

/// The wrapping algorithms GetParametersForImport hands out parameters for, and for which keys.
fn check_wrapping(
    record: &KeyRecord,
    algorithm: WrappingAlgorithm,
    spec: WrappingKeySpec,
) -> Result<(), Error> {
    match algorithm {
        WrappingAlgorithm::RsaesPkcs1V15 => {
            return Err(Error::UnsupportedOperation(
                "AWS KMS stopped supporting the RSAES_PKCS1_V1_5 wrapping algorithm on October 10, 2023. Use \
                 RSAES_OAEP_SHA_256, RSAES_OAEP_SHA_1, RSA_AES_KEY_WRAP_SHA_256 or RSA_AES_KEY_WRAP_SHA_1."
                    .to_owned(),
            ));
        }
        WrappingAlgorithm::Sm2pke => {
            return Err(Error::UnsupportedOperation(
                "WrappingAlgorithm SM2PKE is not supported: Strongroom has no SM2 implementation (AWS offers \
                 SM2 only in its China Regions)."
                    .to_owned(),
            ));
        }
        WrappingAlgorithm::RsaesOaepSha1 | WrappingAlgorithm::RsaesOaepSha256
            if matches!(
                record.key_spec,
                KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096
            ) =>
        {
            return Err(Error::UnsupportedOperation(format!(
                "WrappingAlgorithm {algorithm} cannot wrap the RSA private key of {}: an RSA private key is \
                 larger than one RSA block. Use RSA_AES_KEY_WRAP_SHA_256 or RSA_AES_KEY_WRAP_SHA_1.",
                record.arn()
            )));
        }
        _ => {}
    }
    if spec == WrappingKeySpec::Sm2 {
        return Err(Error::UnsupportedOperation(
            "WrappingKeySpec SM2 is not supported: Strongroom has no SM2 implementation (AWS offers SM2 only \
             in its China Regions)."
                .to_owned(),
        ));
    }
    Ok(())
}

/// The id of imported material: over the key id and the material, or for key pairs the public key.
fn import_material_id(record: &KeyRecord, material: &Material) -> KeyMaterialId {
    let identity = match material.private() {
        Some(private) => private.public_key_der(),
        None => material.secret_bytes(),
    };
    KeyMaterialId(strongroom_keystore::material_id(
        record.key_id.as_str(),
        identity,
    ))
}

/// The ExpirationModel and ValidTo of a request, checked as AWS checks them.
fn expiration(
    req: &ImportKeyMaterialRequest,
    now: Timestamp,
) -> Result<(ExpirationModel, Option<Timestamp>), Error> {
    let model = req
        .expiration_model
        .unwrap_or(ExpirationModel::KeyMaterialExpires);
    match (model, req.valid_to) {
        (ExpirationModel::KeyMaterialExpires, None) => Err(Error::Validation(
            "ValidTo is required when ExpirationModel is KEY_MATERIAL_EXPIRES, which is the default. Set \
             ValidTo, or set ExpirationModel to KEY_MATERIAL_DOES_NOT_EXPIRE."
                .to_owned(),
        )),
        (ExpirationModel::KeyMaterialExpires, Some(valid_to)) => {
            if valid_to <= now {
                return Err(Error::Validation(
                    "ValidTo must be in the future.".to_owned(),
                ));
            }
            if valid_to > now.plus_days(MAX_VALID_TO_DAYS) {
                return Err(Error::Validation(format!(
                    "ValidTo may be at most {MAX_VALID_TO_DAYS} days from now."
                )));
            }
            Ok((model, Some(valid_to)))
        }
        (ExpirationModel::KeyMaterialDoesNotExpire, Some(_)) => Err(Error::Validation(
            "ValidTo is not valid when ExpirationModel is KEY_MATERIAL_DOES_NOT_EXPIRE.".to_owned(),
        )),
        (ExpirationModel::KeyMaterialDoesNotExpire, None) => Ok((model, None)),
    }
}

/// What becomes of material pending rotation when it is deleted or expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PendingRemoval {
    /// It is forgotten: it was never permanently associated with the key (a single-Region key, or the
    /// primary of a multi-Region key, whose replicas then forget it too).
    Forget,
    /// Only its bytes go: the key of a multi-Region set keeps its id and waits for it to be imported again,
    /// since the rest of the set still has it.
    KeepId,
}

/// Takes material out of a key. Material pending rotation is forgotten or wiped as `pending` says, and
/// the key's state does not change (it was never permanently associated); any other material is wiped,
/// keeping its id, and the key waits for it (unless pending deletion).
fn remove_material(record: &mut KeyRecord, index: usize, pending: PendingRemoval) {
    let waits_for_rotation = record.materials[index].is_pending_rotation();
    if waits_for_rotation && pending == PendingRemoval::Forget {
        record.materials.remove(index);
        return;
    }
    let material = &mut record.materials[index];
    material.wrapped = Vec::new();
    if let Some(import) = &mut material.import {
        import.state = ImportState::PendingImport;
        import.expiration_model = None;
        import.valid_to = None;
    }
    if !waits_for_rotation && !record.state.is_pending_deletion() {
        record.state = KeyState::PendingImport;
    }
}

/// A primary's material as a replica knows it before the owner imports it there: its id, description
/// and rotation history, without bytes (import state PENDING_IMPORT), as after DeleteImportedKeyMaterial.
fn awaited(material: &KeyMaterial) -> KeyMaterial {
    let import = material.import.as_ref();
    KeyMaterial {
        id: material.id,
        wrapped: Vec::new(),
        created: material.created,
        rotation_type: material.rotation_type,
        import: Some(MaterialImport {
            state: ImportState::PendingImport,
            expiration_model: None,
            valid_to: None,
            description: import.and_then(|import| import.description.clone()),
            pending_rotation: import.is_some_and(|import| import.pending_rotation),
        }),
    }
}

/// A new multi-Region replica's materials: the primary's materials (including one pending rotation),
/// each awaiting its import.
///
/// AWS does not copy imported material to replicas: the owner imports the same material into each key of
/// the set. The ids (over the shared key id and the material) are what makes "the same" checkable: the
/// replica then takes back only the primary's material (`IncorrectKeyMaterialException` otherwise), and a
/// ciphertext made in one Region names a material id the other Regions hold.
pub(crate) fn awaiting_import(primary: &[KeyMaterial]) -> Vec<KeyMaterial> {
    primary.iter().map(awaited).collect()
}

/// Brings a replica's imported materials in line with its primary's: new material pending rotation in the
/// primary becomes known to the replica (awaiting its import), material the primary no longer has pending
/// is forgotten, and material the primary rotated in is rotated in here too, with the primary's rotation
/// date and type. The replica's own imports (their bytes, expiry and import state) are kept.
///
/// The replica's materials end in the primary's order, so the current material is the same in every
/// Region.
pub(crate) fn align_replica_materials(primary: &KeyRecord, replica: &mut KeyRecord) {
    let mut held = std::mem::take(&mut replica.materials);
    let mut aligned = Vec::with_capacity(primary.materials.len());
    for theirs in &primary.materials {
        let ours = match held.iter().position(|ours| ours.id == theirs.id) {
            Some(index) => held.remove(index),
            // Only new material is announced: the replica knew the rest from its creation on.
            None if theirs.is_pending_rotation() => awaited(theirs),
            None => continue,
        };
        let mut ours = ours;
        if ours.is_pending_rotation() && !theirs.is_pending_rotation() {
            if let Some(import) = &mut ours.import {
                import.pending_rotation = false;
            }
            ours.created = theirs.created;
            ours.rotation_type = theirs.rotation_type;
        }
        aligned.push(ours);
    }
    // What the primary does not have: material pending rotation was deleted from the primary, so from the
    // whole set; anything else stays (the replica is permanently associated with it).
    held.retain(|ours| !ours.is_pending_rotation());
    held.extend(aligned);
    replica.materials = held;
    // A material rotated in that this replica does not hold leaves it without its current material.
    if !replica.has_all_materials()
        && matches!(replica.state, KeyState::Enabled | KeyState::Disabled)
    {
        replica.state = KeyState::PendingImport;
    }
}

/// Whether `record` holds material `id` now (imported, not deleted or expired).
pub(crate) fn holds_material(record: &KeyRecord, id: KeyMaterialId) -> bool {
    record
        .materials
        .iter()
        .any(|material| material.id == id && material.is_present())
}

/// Deletes imported material whose ValidTo has passed; returns whether anything changed.
///
/// Material pending rotation in a multi-Region key keeps its id: the other keys of the set still have it,
/// and the key takes the same material back.
pub(crate) fn expire_materials(record: &mut KeyRecord, now: Timestamp) -> bool {
    let pending = if record.multi_region {
        PendingRemoval::KeepId
    } else {
        PendingRemoval::Forget
    };
    let mut changed = false;
    while let Some(index) = record.materials.iter().position(|material| {
        material.import.as_ref().is_some_and(|import| {
            import.state == ImportState::Imported
                && import.valid_to.is_some_and(|valid_to| valid_to <= now)
        })
    }) {
        remove_material(record, index, pending);
        changed = true;
    }
    changed
}

impl Kms {
    /// GetParametersForImport: a fresh RSA wrapping key and the import token that goes with it.
    pub async fn get_parameters_for_import(
        &self,
        caller: &Caller,
        key_id: &str,
        algorithm: WrappingAlgorithm,
        spec: WrappingKeySpec,
    ) -> Result<ImportParameters, Error> {
        let live = self.resolve(caller, key_id, Forms::IdOrArn).await?;
        let facts = RequestFacts {
            wrapping_algorithm: Some(algorithm.as_str()),
            wrapping_key_spec: Some(spec.as_str()),
            ..RequestFacts::default()
        };
        self.authorize(caller, "kms:GetParametersForImport", &live, facts)?;
        let record = &live.record;
        check_external(record)?;
        state::check(record, OpClass::ImportParameters)?;
        check_wrapping(record, algorithm, spec)?;
        // RSA key generation takes long enough (RSA 4096: up to a second) to keep off the async workers.
        let wrapping = tokio::task::spawn_blocking(move || WrappingKey::generate(spec))
            .await
            .map_err(Error::internal)??;
        let valid_to = self.clock.now().plus(TOKEN_LIFETIME);
        let token = ImportToken {
            key_arn: live.arn(),
            algorithm,
            spec,
            valid_to,
            wrapping_key: Zeroizing::new(wrapping.pkcs8().to_vec()),
        };
        let sealed = self.root_key.wrap(TOKEN_CONTEXT, &token.encode())?;
        Ok(ImportParameters {
            key_arn: live.arn(),
            import_token: sealed,
            public_key: wrapping.public_key_der().to_vec(),
            parameters_valid_to: valid_to,
        })
    }

    /// ImportKeyMaterial: unwraps the material with the token's wrapping key and puts it in the key.
    pub async fn import_key_material(
        &self,
        caller: &Caller,
        key_id: &str,
        req: ImportKeyMaterialRequest,
    ) -> Result<MaterialOutcome, Error> {
        let now = self.clock.now();
        let (expiration_model, valid_to) = expiration(&req, now)?;
        let requested_id = match &req.key_material_id {
            Some(text) => Some(
                text.parse::<KeyMaterialId>()
                    .map_err(|e| Error::Validation(e.0))?,
            ),
            None => None,
        };
        let live = self.resolve(caller, key_id, Forms::IdOrArn).await?;
        let facts = RequestFacts {
            expiration_model: Some(expiration_model.as_str()),
            valid_to: valid_to.map(Timestamp::as_secs),
            ..RequestFacts::default()
        };
        self.authorize(caller, "kms:ImportKeyMaterial", &live, facts)?;
        check_external(&live.record)?;
        state::check(&live.record, OpClass::ImportKeyMaterial)?;
        // A replica takes only what its primary has; new material goes into the primary.
        let primary_arn = match live.multi_region_role {
            Some(MultiRegionRole::Replica) => self
                .multi_region_view(&live.record)
                .await?
                .map(|view| view.primary.arn),
            _ => None,
        };
        let symmetric = live.record.key_spec == KeySpec::SymmetricDefault;
        if !symmetric
            && (req.import_type.is_some()
                || req.key_material_id.is_some()
                || req.key_material_description.is_some())
        {
            return Err(Error::Validation(format!(
                "ImportType, KeyMaterialId and KeyMaterialDescription are only valid for symmetric encryption \
                 keys; {} is a {} key, which only ever has one key material.",
                live.arn_str(),
                live.record.key_spec
            )));
        }

        let opened = self
            .root_key
            .unwrap(TOKEN_CONTEXT, &req.import_token)
            .map_err(|_| invalid_token())?;
        let token = ImportToken::decode(&opened).ok_or_else(invalid_token)?;
        if token.key_arn != live.arn_str() {
            return Err(Error::InvalidImportToken(format!(
                "The import token was issued for {}, not {}: call GetParametersForImport for this key.",
                token.key_arn,
                live.arn_str()
            )));
        }
        if token.valid_to <= now {
            return Err(Error::ExpiredImportToken(
                "The import token has expired: import tokens and their public keys are valid for 24 hours. \
                 Call GetParametersForImport again and wrap the key material with the new public key."
                    .to_owned(),
            ));
        }
        let wrapping = WrappingKey::from_pkcs8(token.spec, &token.wrapping_key)?;
        let bytes = wrapping
            .unwrap(token.algorithm, &req.encrypted_key_material)
            .map_err(|_| {
                Error::InvalidCiphertext(format!(
                    "The encrypted key material could not be decrypted with the wrapping key: wrap it with the \
                     public key from the same GetParametersForImport response as the import token, using \
                     {}.",
                    token.algorithm
                ))
            })?;
        let material = Material::from_bytes(live.record.key_spec, &bytes).map_err(|_| {
            Error::IncorrectKeyMaterial(format!(
                "The key material is not valid for a {} key: {}",
                live.record.key_spec,
                material_shape(live.record.key_spec)
            ))
        })?;
        let id = import_material_id(&live.record, &material);

        let _writes = self.writes.lock().await;
        let mut record = self.key_for_update(&live).await?;
        check_external(&record)?;
        state::check(&record, OpClass::ImportKeyMaterial)?;
        let wrapped = self
            .root_key
            .wrap(&wrap_context(&record, &id), material.secret_bytes())?;
        let import = MaterialImport {
            state: ImportState::Imported,
            expiration_model: Some(expiration_model),
            valid_to,
            description: req.key_material_description,
            pending_rotation: false,
        };
        place_material(
            &mut record,
            Placement {
                id,
                requested_id,
                import_type: req.import_type,
                primary_arn: primary_arn.as_deref(),
            },
            wrapped,
            import,
            now,
        )?;
        if record.state == KeyState::PendingImport && record.has_all_materials() {
            record.state = KeyState::Enabled;
        }
        let key_arn = record.arn();
        self.put_key(record).await?;
        tracing::info!(key_arn = %key_arn, key_material_id = %id.to_hex(), "imported key material");
        Ok(MaterialOutcome {
            key_arn,
            key_material_id: Some(id),
        })
    }

    /// DeleteImportedKeyMaterial: the named material, or the current one.
    pub async fn delete_imported_key_material(
        &self,
        caller: &Caller,
        key_id: &str,
        key_material_id: Option<&str>,
    ) -> Result<MaterialOutcome, Error> {
        let requested = match key_material_id {
            Some(text) => Some(
                text.parse::<KeyMaterialId>()
                    .map_err(|e| Error::Validation(e.0))?,
            ),
            None => None,
        };
        // Material pending rotation deleted from a replica stays known there: the rest of the set has it.
        let pending = match self
            .resolve(caller, key_id, Forms::IdOrArn)
            .await?
            .multi_region_role
        {
            Some(MultiRegionRole::Replica) => PendingRemoval::KeepId,
            _ => PendingRemoval::Forget,
        };
        let action = "kms:DeleteImportedKeyMaterial";
        self.update_key(caller, key_id, action, RequestFacts::default(), |record| {
            check_external(record)?;
            state::check(record, OpClass::DeleteImportedKeyMaterial)?;
            let index = match requested {
                Some(id) => match record.materials.iter().position(|m| m.id == id) {
                    Some(index) => Some(index),
                    None => {
                        return Err(Error::NotFound(format!(
                            "Key material {} is not associated with {}.",
                            id.to_hex(),
                            record.arn()
                        )));
                    }
                },
                None => record
                    .current_material()
                    .and_then(|current| record.materials.iter().position(|m| m.id == current.id)),
            };
            let Some(index) = index else {
                // A key that never had material: nothing to delete, and the state stays PendingImport.
                return Ok(MaterialOutcome {
                    key_arn: record.arn(),
                    key_material_id: None,
                });
            };
            let id = record.materials[index].id;
            remove_material(record, index, pending);
            Ok(MaterialOutcome {
                key_arn: record.arn(),
                key_material_id: Some(id),
            })
        })
        .await
    }
}

/// What an import is of: the material's computed id, and what the request says about it.
struct Placement<'a> {
    /// The id computed from the key and the material.
    id: KeyMaterialId,
    /// The KeyMaterialId the request named.
    requested_id: Option<KeyMaterialId>,
    /// The request's ImportType, if it had one.
    import_type: Option<ImportType>,
    /// The primary key's ARN when the key is a multi-Region replica.
    primary_arn: Option<&'a str>,
}

/// Puts freshly imported material where it belongs: a re-import refreshes the material the key already
/// knows; new material becomes the key's first material, or waits for an on-demand rotation.
fn place_material(
    record: &mut KeyRecord,
    placement: Placement<'_>,
    wrapped: Vec<u8>,
    mut import: MaterialImport,
    now: Timestamp,
) -> Result<(), Error> {
    let Placement {
        id,
        requested_id,
        import_type,
        primary_arn,
    } = placement;
    let arn = record.arn();
    let existing = record.materials.iter().position(|m| m.id == id);
    let import_type = import_type.unwrap_or(if record.materials.is_empty() {
        ImportType::NewKeyMaterial
    } else {
        ImportType::ExistingKeyMaterial
    });
    match import_type {
        ImportType::NewKeyMaterial => {
            if requested_id.is_some() {
                return Err(Error::Validation(
                    "You cannot specify a KeyMaterialId with ImportType NEW_KEY_MATERIAL: the id of new key \
                     material is computed from the key and the material."
                        .to_owned(),
                ));
            }
            if let Some(primary_arn) = primary_arn {
                return Err(Error::UnsupportedOperation(format!(
                    "{arn} is a multi-Region replica key: new key material cannot be imported directly into a \
                     replica. Import it into the primary key, {primary_arn}, with ImportType \
                     NEW_KEY_MATERIAL, then import the same key material into each replica key with ImportType \
                     EXISTING_KEY_MATERIAL."
                )));
            }
            if existing.is_some() {
                return Err(Error::IncorrectKeyMaterial(format!(
                    "This key material is already associated with {arn} as key material {}: re-import it with \
                     ImportType EXISTING_KEY_MATERIAL.",
                    id.to_hex()
                )));
            }
            if !record.materials.is_empty() {
                if let Some(pending) = record.materials.iter().find(|m| m.is_pending_rotation()) {
                    return Err(Error::Validation(format!(
                        "{arn} already has key material {} pending rotation: rotate it in with \
                         RotateKeyOnDemand, or delete it with DeleteImportedKeyMaterial, before importing \
                         other new key material.",
                        pending.id.to_hex()
                    )));
                }
                import.pending_rotation = true;
            }
            record.materials.push(KeyMaterial {
                id,
                wrapped,
                created: now,
                rotation_type: None,
                import: Some(import),
            });
        }
        ImportType::ExistingKeyMaterial => {
            if let Some(requested) = requested_id
                && requested != id
            {
                return Err(Error::IncorrectKeyMaterial(format!(
                    "The key material is not key material {}: its id for {arn} is {}.",
                    requested.to_hex(),
                    id.to_hex()
                )));
            }
            let Some(index) = existing else {
                return Err(Error::IncorrectKeyMaterial(
                    if record.materials.is_empty() {
                        format!(
                            "No key material has been imported into {arn} yet: import the first key material \
                         with ImportType NEW_KEY_MATERIAL (the default for a key without key material)."
                        )
                    } else if let Some(primary_arn) = primary_arn {
                        format!(
                            "The key material is not key material of {arn}. A multi-Region replica takes only \
                             key material that was imported into its primary key, {primary_arn}: import new key \
                             material into the primary key with ImportType NEW_KEY_MATERIAL first, then the \
                             same key material into each replica."
                        )
                    } else if record.multi_region {
                        format!(
                            "The key material is not the key material of {arn}. Related multi-Region keys \
                             share their key material: import into each of them the key material that was \
                             imported into the primary key."
                        )
                    } else {
                        format!(
                            "The key material is not the key material previously imported into {arn}. A key takes \
                         back only its own key material; symmetric encryption keys take new key material with \
                         ImportType NEW_KEY_MATERIAL."
                        )
                    },
                ));
            };
            let material = &mut record.materials[index];
            let previous = material.import.take();
            import.pending_rotation = previous.as_ref().is_some_and(|p| p.pending_rotation);
            if import.description.is_none() {
                import.description = previous.and_then(|p| p.description);
            }
            material.wrapped = wrapped;
            material.import = Some(import);
        }
    }
    Ok(())
}

/// What material of `spec` looks like, for error messages.
fn material_shape(spec: KeySpec) -> String {
    if spec == KeySpec::SymmetricDefault {
        "symmetric key material must be exactly 256 bits (32 bytes).".to_owned()
    } else if let Some(range) = strongroom_keystore::HmacKey::allowed_lens(spec) {
        format!(
            "{spec} key material must be {} to {} bytes.",
            range.start(),
            range.end()
        )
    } else {
        format!("the key material must be a {spec} private key in PKCS #8 DER.")
    }
}

#[cfg(test)]
mod tests;
