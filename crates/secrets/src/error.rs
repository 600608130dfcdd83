//! Secrets Manager's errors: one variant per AWS error code the operations return.

/// A Secrets Manager error; the protocol edge renders each as its `__type` and message.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `ResourceNotFoundException`: no such secret, version or staging label.
    #[error("{0}")]
    ResourceNotFound(String),
    /// `ResourceExistsException`: the name is taken, or a version id is reused with another value.
    #[error("{0}")]
    ResourceExists(String),
    /// `InvalidRequestException`: the request is valid but the secret's state refuses it (for example,
    /// it is scheduled for deletion).
    #[error("{0}")]
    InvalidRequest(String),
    /// `InvalidParameterException`: a parameter's value is not acceptable.
    #[error("{0}")]
    InvalidParameter(String),
    /// `InvalidNextTokenException`: ListSecrets was given a token it did not issue.
    #[error("{0}")]
    InvalidNextToken(String),
    /// `LimitExceededException`: too many versions.
    #[error("{0}")]
    LimitExceeded(String),
    /// `EncryptionFailure`: KMS could not encrypt the value (the key is missing, disabled or unusable).
    #[error("{0}")]
    EncryptionFailure(String),
    /// `DecryptionFailure`: KMS could not decrypt the value.
    #[error("{0}")]
    DecryptionFailure(String),
    /// `AccessDeniedException`: the caller's IAM policies, or the KMS key's, do not allow the request.
    #[error("{0}")]
    AccessDenied(String),
    /// `InternalServiceError`: a fault inside the server; the detail is logged, never sent.
    #[error("internal error: {0}")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// The AWS error code (`__type`) of this error.
    pub fn code(&self) -> &'static str {
        match self {
            Error::ResourceNotFound(_) => "ResourceNotFoundException",
            Error::ResourceExists(_) => "ResourceExistsException",
            Error::InvalidRequest(_) => "InvalidRequestException",
            Error::InvalidParameter(_) => "InvalidParameterException",
            Error::InvalidNextToken(_) => "InvalidNextTokenException",
            Error::LimitExceeded(_) => "LimitExceededException",
            Error::EncryptionFailure(_) => "EncryptionFailure",
            Error::DecryptionFailure(_) => "DecryptionFailure",
            Error::AccessDenied(_) => "AccessDeniedException",
            Error::Internal(_) => "InternalServiceError",
        }
    }

    /// Wraps a fault the client cannot act on.
    pub fn internal(source: impl std::error::Error + Send + Sync + 'static) -> Error {
        Error::Internal(Box::new(source))
    }
}

impl From<strongroom_storage::StoreError> for Error {
    fn from(e: strongroom_storage::StoreError) -> Error {
        Error::internal(e)
    }
}
