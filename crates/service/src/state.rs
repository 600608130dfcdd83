//! The key-state table: which operation each key state permits, and the exact error otherwise.

use strongroom_types::{KeyRecord, KeyState};

use crate::Error;

/// Groups of operations that the key-state table treats alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpClass {
    /// Encrypt, Decrypt, ReEncrypt, GenerateDataKey*: only Enabled (and Updating) keys.
    Crypto,
    /// EnableKey, DisableKey.
    EnableDisable,
    /// Enable/DisableKeyRotation and RotateKeyOnDemand.
    Rotation,
    /// CreateAlias, TagResource, UntagResource, UpdateKeyDescription, ScheduleKeyDeletion, UpdateAlias target.
    NotPendingDeletion,
    /// CancelKeyDeletion.
    PendingDeletionOnly,
    /// CreateGrant: like cryptography, but keys of a disconnected custom key store accept grants.
    CreateGrant,
    /// GetParametersForImport (on keys of origin EXTERNAL).
    ImportParameters,
    /// ImportKeyMaterial (on keys of origin EXTERNAL).
    ImportKeyMaterial,
    /// DeleteImportedKeyMaterial (on keys of origin EXTERNAL).
    DeleteImportedKeyMaterial,
}

/// Checks `key` against the key-state table for an operation of `class`.
pub(crate) fn check(key: &KeyRecord, class: OpClass) -> Result<(), Error> {
    // Formatted only when an error is returned: this check runs on every cryptographic request.
    let arn = || key.arn();
    let state = key.state;
    let pending_deletion = || Error::InvalidState(format!("{} is pending deletion.", arn()));
    match class {
        OpClass::Crypto => match state {
            KeyState::Enabled | KeyState::Updating => Ok(()),
            KeyState::Disabled => Err(Error::Disabled(format!("{} is disabled.", arn()))),
            KeyState::PendingDeletion | KeyState::PendingReplicaDeletion => Err(pending_deletion()),
            KeyState::PendingImport => {
                Err(Error::InvalidState(format!("{} is pending import.", arn())))
            }
            KeyState::Unavailable => Err(Error::InvalidState(format!("{} is unavailable.", arn()))),
            KeyState::Creating => Err(Error::InvalidState(format!("{} is creating.", arn()))),
        },
        OpClass::EnableDisable => match state {
            KeyState::Enabled | KeyState::Disabled | KeyState::Unavailable => Ok(()),
            KeyState::PendingDeletion | KeyState::PendingReplicaDeletion => Err(pending_deletion()),
            KeyState::PendingImport => {
                Err(Error::InvalidState(format!("{} is pending import.", arn())))
            }
            KeyState::Creating => Err(Error::InvalidState(format!("{} is creating.", arn()))),
            KeyState::Updating => Err(Error::InvalidState(format!("{} is updating.", arn()))),
        },
        OpClass::Rotation => match state {
            KeyState::Enabled | KeyState::Updating => Ok(()),
            KeyState::Disabled => Err(Error::Disabled(format!("{} is disabled.", arn()))),
            KeyState::PendingDeletion | KeyState::PendingReplicaDeletion => Err(pending_deletion()),
            KeyState::PendingImport => Err(Error::UnsupportedOperation(format!(
                "{} origin is {} which is not valid for this operation.",
                arn(),
                key.origin
            ))),
            KeyState::Unavailable => Err(Error::UnsupportedOperation(format!(
                "{} is in a custom key store, which does not support rotation.",
                arn()
            ))),
            KeyState::Creating => Err(Error::InvalidState(format!("{} is creating.", arn()))),
        },
        OpClass::NotPendingDeletion => match state {
            KeyState::PendingDeletion | KeyState::PendingReplicaDeletion => Err(pending_deletion()),
            _ => Ok(()),
        },
        OpClass::CreateGrant => match state {
            KeyState::Unavailable => Ok(()),
            _ => check(key, OpClass::Crypto),
        },
        OpClass::ImportParameters | OpClass::ImportKeyMaterial => match state {
            KeyState::Enabled | KeyState::Disabled | KeyState::PendingImport => Ok(()),
            KeyState::Updating if class == OpClass::ImportKeyMaterial => Ok(()),
            KeyState::PendingDeletion | KeyState::PendingReplicaDeletion => Err(pending_deletion()),
            KeyState::Creating => Err(Error::InvalidState(format!("{} is creating.", arn()))),
            KeyState::Updating => Err(Error::InvalidState(format!("{} is updating.", arn()))),
            KeyState::Unavailable => Err(Error::UnsupportedOperation(format!(
                "{} is in a custom key store, which cannot hold imported key material.",
                arn()
            ))),
        },
        OpClass::DeleteImportedKeyMaterial => match state {
            KeyState::Creating => Err(Error::InvalidState(format!("{} is creating.", arn()))),
            KeyState::Updating => Err(Error::InvalidState(format!("{} is updating.", arn()))),
            KeyState::Unavailable => Err(Error::UnsupportedOperation(format!(
                "{} is in a custom key store, which cannot hold imported key material.",
                arn()
            ))),
            _ => Ok(()),
        },
        OpClass::PendingDeletionOnly => match state {
            KeyState::PendingDeletion | KeyState::PendingReplicaDeletion => Ok(()),
            _ => Err(Error::InvalidState(format!(
                "{} is not pending deletion.",
                arn()
            ))),
        },
    }
}
