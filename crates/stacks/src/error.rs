//! The engine's errors, one variant per code the `StrongroomStacks.*` operations answer with.

/// What went wrong with a stack operation; the protocol edge maps each variant to its `__type`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The stack file or its parameters are not valid (`ValidationException`); the message names the
    /// line and the field.
    #[error("{0}")]
    Validation(String),
    /// No stack has this name in the caller's account and Region (`StackNotFoundException`).
    #[error("{0}")]
    NotFound(String),
    /// The stack is being applied, rolled back or deleted (`StackInProgressException`).
    #[error("{0}")]
    InProgress(String),
    /// The file asks for changes the engine cannot make (`UnsupportedStackChangeException`); nothing
    /// was touched.
    #[error("{0}")]
    UnsupportedChange(String),
    /// Anything else (`InternalFailure`); clients see no detail, the log does.
    #[error("internal failure: {0}")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// The `__type` the protocol edge answers with.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Validation(_) => "ValidationException",
            Error::NotFound(_) => "StackNotFoundException",
            Error::InProgress(_) => "StackInProgressException",
            Error::UnsupportedChange(_) => "UnsupportedStackChangeException",
            Error::Internal(_) => "InternalFailure",
        }
    }
}

impl From<strongroom_storage::StoreError> for Error {
    fn from(error: strongroom_storage::StoreError) -> Error {
        Error::Internal(Box::new(error))
    }
}
