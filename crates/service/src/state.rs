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
}

/// Checks `key` against the key-state table for an operation of `class`.
pub(crate) fn check(key: &KeyRecord, class: OpClass) -> Result<(), Error> {
    let arn = key.arn();
    let state = key.state;
    let pending_deletion = || Error::InvalidState(format!("{arn} is pending deletion."));
    match class {
        OpClass::Crypto => match state {
            KeyState::Enabled | KeyState::Updating => Ok(()),
            KeyState::Disabled => Err(Error::Disabled(format!("{arn} is disabled."))),
            KeyState::PendingDeletion | KeyState::PendingReplicaDeletion => Err(pending_deletion()),
            KeyState::PendingImport => {
                Err(Error::InvalidState(format!("{arn} is pending import.")))
            }
            KeyState::Unavailable => Err(Error::InvalidState(format!("{arn} is unavailable."))),
            KeyState::Creating => Err(Error::InvalidState(format!("{arn} is creating."))),
        },
        OpClass::EnableDisable => match state {
            KeyState::Enabled | KeyState::Disabled | KeyState::Unavailable => Ok(()),
            KeyState::PendingDeletion | KeyState::PendingReplicaDeletion => Err(pending_deletion()),
            KeyState::PendingImport => {
                Err(Error::InvalidState(format!("{arn} is pending import.")))
            }
            KeyState::Creating => Err(Error::InvalidState(format!("{arn} is creating."))),
            KeyState::Updating => Err(Error::InvalidState(format!("{arn} is updating."))),
        },
        OpClass::Rotation => match state {
            KeyState::Enabled | KeyState::Updating => Ok(()),
            KeyState::Disabled => Err(Error::Disabled(format!("{arn} is disabled."))),
            KeyState::PendingDeletion | KeyState::PendingReplicaDeletion => Err(pending_deletion()),
            KeyState::PendingImport => Err(Error::UnsupportedOperation(format!(
                "{arn} origin is {} which is not valid for this operation.",
                key.origin
            ))),
            KeyState::Unavailable => Err(Error::UnsupportedOperation(format!(
                "{arn} is in a custom key store, which does not support rotation."
            ))),
            KeyState::Creating => Err(Error::InvalidState(format!("{arn} is creating."))),
        },
        OpClass::NotPendingDeletion => match state {
            KeyState::PendingDeletion | KeyState::PendingReplicaDeletion => Err(pending_deletion()),
            _ => Ok(()),
        },
        OpClass::PendingDeletionOnly => match state {
            KeyState::PendingDeletion | KeyState::PendingReplicaDeletion => Ok(()),
            _ => Err(Error::InvalidState(format!(
                "{arn} is not pending deletion."
            ))),
        },
    }
}
