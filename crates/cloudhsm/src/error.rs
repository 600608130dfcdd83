//! The control plane's errors, one variant per CloudHSM error code the API reports.

use strongroom_storage::StoreError;

/// What went wrong; the protocol edge maps each variant to its `CloudHsm…Exception`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request cannot be carried out as asked (`CloudHsmInvalidRequestException`); the message
    /// says what to change.
    #[error("{0}")]
    InvalidRequest(String),
    /// The named cluster, HSM or backup does not exist for the caller
    /// (`CloudHsmResourceNotFoundException`).
    #[error("{0}")]
    ResourceNotFound(String),
    /// A tag or tag key is not acceptable (`CloudHsmTagException`).
    #[error("{0}")]
    Tag(String),
    /// A tagging request would exceed the 50 tags a resource may have
    /// (`CloudHsmResourceLimitExceededException`).
    #[error("{0}")]
    ResourceLimitExceeded(String),
    /// An HSM refused or failed the work (`CloudHsmServiceException`): a wrong Security Officer PIN,
    /// a token that is missing or down. The message names the HSM, because the operator owns it and
    /// must act.
    #[error("an HSM could not do the work: {0}")]
    Hsm(#[source] strongroom_keystore_pkcs11::Error),
    /// Anything else (`CloudHsmInternalFailureException`); clients see no detail, the log does.
    #[error("internal failure: {0}")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// The CloudHSM error code (`__type`) of this error.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidRequest(_) => "CloudHsmInvalidRequestException",
            Error::ResourceNotFound(_) => "CloudHsmResourceNotFoundException",
            Error::Tag(_) => "CloudHsmTagException",
            Error::ResourceLimitExceeded(_) => "CloudHsmResourceLimitExceededException",
            Error::Hsm(_) => "CloudHsmServiceException",
            Error::Internal(_) => "CloudHsmInternalFailureException",
        }
    }

    /// The message a caller (or the audit trail) may see: an internal failure's detail stays in the
    /// server log; what an HSM did is shown, because the operator owns the HSMs and must act.
    pub fn public_message(&self) -> String {
        match self {
            Error::Internal(_) => {
                "The request failed because of an internal error in Strongroom; it \
                                   has been logged. Try again."
                    .to_owned()
            }
            other => other.to_string(),
        }
    }

    /// An internal failure described by `message`, for conditions that should not happen.
    pub(crate) fn internal(message: &str) -> Error {
        Error::Internal(message.into())
    }
}

impl From<StoreError> for Error {
    fn from(error: StoreError) -> Error {
        Error::Internal(Box::new(error))
    }
}

impl From<strongroom_keystore_pkcs11::Error> for Error {
    fn from(error: strongroom_keystore_pkcs11::Error) -> Error {
        Error::Hsm(error)
    }
}

impl From<tokio::task::JoinError> for Error {
    fn from(error: tokio::task::JoinError) -> Error {
        Error::Internal(Box::new(error))
    }
}
