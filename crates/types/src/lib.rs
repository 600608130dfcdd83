//! The vocabulary every other Strongroom crate speaks.
//!
//! Values here are parsed, never merely validated: a `KeyId`, an `AliasName` or an `AccountId` can only be
//! built through its parser, so code that holds one never re-checks it.
//! This crate does no I/O and knows nothing of JSON, HTTP or SQL.

mod enums;
mod grants;
mod identity;
mod ids;
mod records;
mod time;

pub use crate::enums::{
    DataKeyPairSpec, DataKeySpec, EncapsulationAlgorithm, EncryptionAlgorithm, ExpirationModel,
    ImportState, ImportType, KeyAgreementAlgorithm, KeyManager, KeyMaterialState, KeySpec,
    KeyState, KeyUsage, MacAlgorithm, MessageType, Origin, RotationType, SigningAlgorithm,
    UnknownVariant, WrappingAlgorithm, WrappingKeySpec,
};
pub use crate::grants::GrantRecord;
pub use crate::identity::{
    AccessKey, AccessKeyStatus, Attachment, InlinePolicy, KeyOwner, ManagedPolicy, PolicyOwner,
    Role, Session, SessionSubject, User,
};
pub use crate::ids::{
    AccountId, AliasName, InvalidId, KeyId, KeyMaterialId, KeyRef, KeyRefError, Namespace, Region,
};
pub use crate::records::{
    AliasRecord, Deletion, EncryptionContext, KeyMaterial, KeyRecord, MaterialImport, Rotation, Tag,
};
pub use crate::time::Timestamp;

#[cfg(test)]
mod tests;
