//! The crate's one error type, with variants named by what went wrong rather than by PKCS#11 code.
//!
//! Callers branch on these: the KMS layer turns the login variants into a custom key store's
//! `ConnectionErrorCode`, `NoActiveHsm` into `KMSInvalidStateException`, and so on.

use std::path::PathBuf;

use cryptoki::error::{Error as Pkcs11Error, RvError};

/// Everything that can go wrong in an HSM cluster.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A password was refused (`CKR_PIN_INCORRECT`); CloudHSM's `INVALID_CREDENTIALS`.
    #[error("the {role} password was refused by HSM {hsm}")]
    InvalidCredentials {
        /// The HSM that refused it.
        hsm: String,
        /// Whose password it was.
        role: Role,
    },
    /// Too many failed logins locked the user out (`CKR_PIN_LOCKED`); `USER_LOCKED_OUT`.
    #[error("the {role} is locked out of HSM {hsm}")]
    UserLockedOut {
        /// The HSM that locked the user.
        hsm: String,
        /// Who is locked out.
        role: Role,
    },
    /// The token has no crypto user yet (`CKR_USER_PIN_NOT_INITIALIZED`); `USER_NOT_FOUND`.
    #[error("HSM {hsm} has no crypto user")]
    UserNotFound {
        /// The HSM without a crypto user.
        hsm: String,
    },
    /// Someone is already logged in to the token; `USER_LOGGED_IN`.
    #[error("another login is active on HSM {hsm}")]
    UserLoggedIn {
        /// The HSM with the other login.
        hsm: String,
    },
    /// A key operation was attempted before `login_crypto_user`.
    #[error("the crypto user is not logged in to HSM {hsm}")]
    NotLoggedIn {
        /// The HSM without a login.
        hsm: String,
    },
    /// The token refused a new password as too short, too long or malformed.
    #[error("HSM {hsm} refused the new password as malformed")]
    InvalidPassword {
        /// The HSM that refused it.
        hsm: String,
    },
    /// A password change failed on one HSM; the HSMs already changed were set back.
    #[error(
        "changing the crypto user's password failed on HSM {hsm}; rolled back on {rolled_back:?}, rollback failed on {rollback_failed:?}"
    )]
    PasswordChangeFailed {
        /// The HSM where the change failed.
        hsm: String,
        /// Why it failed there.
        #[source]
        source: Box<Error>,
        /// HSMs that were changed and have been set back to the old password.
        rolled_back: Vec<String>,
        /// HSMs left with the new password because setting them back failed too.
        rollback_failed: Vec<String>,
    },
    /// Moving the crypto user to a new password stopped at one HSM; nothing was rolled back, so the
    /// HSMs in `moved` hold the new password and the others their old one.
    #[error(
        "moving the crypto user to its new password stopped at HSM {hsm}; HSMs holding it: {moved:?}"
    )]
    PasswordMoveStopped {
        /// The HSM where the change failed.
        hsm: String,
        /// Why it failed there.
        #[source]
        source: Box<Error>,
        /// HSMs that hold the new password.
        moved: Vec<String>,
    },
    /// No HSM of the cluster answers.
    #[error("no HSM of the cluster is active")]
    NoActiveHsm,
    /// No HSM holds an object with this label.
    #[error("no key labelled {label}")]
    KeyNotFound {
        /// The label looked for.
        label: String,
    },
    /// An object with this label already exists, so a new one would make the label ambiguous.
    #[error("an object labelled {label} already exists")]
    LabelInUse {
        /// The label in use.
        label: String,
    },
    /// A label is reserved for the cluster's own objects or is not acceptable to PKCS#11.
    #[error("the label {label:?} cannot be used: {reason}")]
    InvalidLabel {
        /// The label refused.
        label: String,
        /// Why.
        reason: &'static str,
    },
    /// The ciphertext, its IV or its additional data do not authenticate under the key.
    #[error("the ciphertext does not authenticate")]
    InvalidCiphertext,
    /// A new key reached fewer HSMs than the key availability quorum and was removed again.
    #[error("key {label} reached {replicas} HSMs but {required} are required")]
    InsufficientReplicas {
        /// The key's label.
        label: String,
        /// On how many HSMs it was created.
        replicas: usize,
        /// The quorum.
        required: usize,
    },
    /// The HSM has no cluster wrapping key, so keys cannot be copied to or from it.
    #[error("HSM {hsm} holds no cluster wrapping key")]
    WrappingKeyMissing {
        /// The HSM without it.
        hsm: String,
    },
    /// Two HSMs hold different cluster wrapping keys: they belong to different clusters.
    #[error("HSMs {first} and {second} hold different cluster wrapping keys")]
    WrappingKeyMismatch {
        /// One HSM.
        first: String,
        /// The other.
        second: String,
    },
    /// No token with this label exists in the module.
    #[error("no token labelled {label} in {}", module.display())]
    TokenNotFound {
        /// The token label looked for.
        label: String,
        /// The module searched.
        module: PathBuf,
    },
    /// A token with this label already exists, so initializing another would make it ambiguous.
    #[error("a token labelled {label} already exists in {}", module.display())]
    TokenExists {
        /// The label.
        label: String,
        /// The module.
        module: PathBuf,
    },
    /// Every slot of the module already holds an initialized token.
    #[error("no free slot to initialize a token in {}", module.display())]
    NoFreeSlot {
        /// The module.
        module: PathBuf,
    },
    /// An HSM with this id is already part of the cluster.
    #[error("an HSM with id {hsm} is already in the cluster")]
    DuplicateHsm {
        /// The id.
        hsm: String,
    },
    /// Every session of the HSM stayed busy for the whole waiting time.
    #[error("all {size} sessions of HSM {hsm} are busy")]
    SessionsExhausted {
        /// The busy HSM.
        hsm: String,
        /// The pool size.
        size: usize,
    },
    /// The HSM does not offer something this crate needs.
    #[error("HSM {hsm} does not support {what}")]
    Unsupported {
        /// The HSM.
        hsm: String,
        /// What is missing.
        what: &'static str,
    },
    /// The device failed or stopped answering; the HSM has been marked degraded.
    #[error("HSM {hsm} failed")]
    Device {
        /// The failing HSM.
        hsm: String,
        /// The PKCS#11 error.
        #[source]
        source: Pkcs11Error,
    },
    /// The device answered but refused the request, for a reason with no variant of its own.
    #[error("HSM {hsm} refused the request")]
    Rejected {
        /// The refusing HSM.
        hsm: String,
        /// The PKCS#11 error.
        #[source]
        source: Pkcs11Error,
    },
    /// The PKCS#11 module could not be loaded or initialized.
    #[error("cannot load the PKCS#11 module {}", module.display())]
    Module {
        /// The module's path.
        module: PathBuf,
        /// Why.
        #[source]
        source: Pkcs11Error,
    },
    /// A secret could not be read from its source.
    #[error("cannot read a secret from {from}")]
    Secret {
        /// The file or variable.
        from: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// An argument is out of range.
    #[error("invalid argument: {reason}")]
    InvalidArgument {
        /// What is wrong.
        reason: &'static str,
    },
}

/// Whose credentials an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The PKCS#11 Security Officer, CloudHSM's admin (crypto officer).
    CryptoOfficer,
    /// The PKCS#11 normal user, CloudHSM's crypto user (`kmsuser`).
    CryptoUser,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Role::CryptoOfficer => f.write_str("crypto officer"),
            Role::CryptoUser => f.write_str("crypto user"),
        }
    }
}

impl Error {
    /// Whether the device, not the request, is at fault; the HSM has then been marked degraded.
    pub fn is_device_failure(&self) -> bool {
        matches!(self, Error::Device { .. })
    }

    /// Whether the error is about credentials (a refused, locked, missing or busy login).
    pub fn is_credential_failure(&self) -> bool {
        matches!(
            self,
            Error::InvalidCredentials { .. }
                | Error::UserLockedOut { .. }
                | Error::UserNotFound { .. }
                | Error::UserLoggedIn { .. }
        )
    }

    /// Whether another HSM of the cluster may well succeed where this one failed.
    pub(crate) fn is_worth_retrying_elsewhere(&self) -> bool {
        self.is_device_failure()
            || self.is_credential_failure()
            || matches!(
                self,
                Error::SessionsExhausted { .. } | Error::NotLoggedIn { .. }
            )
    }
}

/// Return codes after which the device, the token or the session cannot be trusted to work.
pub(crate) fn is_device_code(code: RvError) -> bool {
    matches!(
        code,
        RvError::DeviceError
            | RvError::DeviceMemory
            | RvError::DeviceRemoved
            | RvError::GeneralError
            | RvError::FunctionFailed
            | RvError::SessionHandleInvalid
            | RvError::SessionClosed
            | RvError::TokenNotPresent
            | RvError::TokenNotRecognized
            | RvError::CryptokiNotInitialized
            | RvError::UserNotLoggedIn
    )
}

/// The PKCS#11 return code inside a `cryptoki` error, if it has one.
pub(crate) fn code(err: &Pkcs11Error) -> Option<RvError> {
    match err {
        Pkcs11Error::Pkcs11(code, _) => Some(*code),
        _ => None,
    }
}

/// Classifies a failed PKCS#11 call of `hsm` as a device failure or a refusal.
pub(crate) fn classify(hsm: &str, err: Pkcs11Error) -> Error {
    match code(&err) {
        Some(code) if is_device_code(code) => Error::Device {
            hsm: hsm.to_owned(),
            source: err,
        },
        _ => Error::Rejected {
            hsm: hsm.to_owned(),
            source: err,
        },
    }
}

/// Classifies a failed `C_Login` or `C_SetPIN`, keeping the meaning of credential failures.
pub(crate) fn login_error(hsm: &str, role: Role, err: Pkcs11Error) -> Error {
    let hsm_owned = hsm.to_owned();
    match code(&err) {
        Some(RvError::PinIncorrect) => Error::InvalidCredentials {
            hsm: hsm_owned,
            role,
        },
        Some(RvError::PinLocked) => Error::UserLockedOut {
            hsm: hsm_owned,
            role,
        },
        Some(RvError::UserPinNotInitialized) => Error::UserNotFound { hsm: hsm_owned },
        Some(RvError::UserAlreadyLoggedIn | RvError::UserAnotherAlreadyLoggedIn) => {
            Error::UserLoggedIn { hsm: hsm_owned }
        }
        Some(RvError::PinLenRange | RvError::PinInvalid | RvError::PinTooWeak) => {
            Error::InvalidPassword { hsm: hsm_owned }
        }
        _ => classify(hsm, err),
    }
}
