//! IAM and STS errors: one variant per error code a client can branch on.

/// Why an IAM or STS request failed; each variant is an AWS error code, and its message is safe to show.
#[derive(Debug, thiserror::Error)]
pub enum IamError {
    /// An entity of that name exists already (`EntityAlreadyExists`).
    #[error("{0}")]
    EntityAlreadyExists(String),
    /// The named entity does not exist (`NoSuchEntity`).
    #[error("{0}")]
    NoSuchEntity(String),
    /// A policy document that does not parse or breaks the grammar (`MalformedPolicyDocument`).
    #[error("{0}")]
    MalformedPolicyDocument(String),
    /// A quota would be exceeded: access keys per user, policy size, tags (`LimitExceeded`).
    #[error("{0}")]
    LimitExceeded(String),
    /// A parameter breaks the model's constraints (`ValidationError`).
    #[error("{0}")]
    Validation(String),
    /// A parameter is well-formed but not acceptable, such as duplicate tag keys (`InvalidInput`).
    #[error("{0}")]
    InvalidInput(String),
    /// No policy allows the call, or one denies it (`AccessDenied`).
    #[error("{0}")]
    AccessDenied(String),
    /// The entity still has dependents, such as a user with access keys (`DeleteConflict`).
    #[error("{0}")]
    DeleteConflict(String),
    /// The temporary credentials that signed the request have expired (`ExpiredTokenException`).
    #[error("{0}")]
    ExpiredToken(String),
    /// STS is not served in the Region the request was sent to (`RegionDisabledException`).
    #[error("{0}")]
    RegionDisabled(String),
    /// A session policy or session tags too large to pack into a token (`PackedPolicyTooLarge`).
    #[error("{0}")]
    PackedPolicyTooLarge(String),
    /// Storage or the key store failed; clients see `ServiceFailure` without the details.
    #[error("internal failure: {0}")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl IamError {
    /// The error code clients branch on, as the IAM and STS models spell it.
    pub fn code(&self) -> &'static str {
        match self {
            IamError::EntityAlreadyExists(_) => "EntityAlreadyExists",
            IamError::NoSuchEntity(_) => "NoSuchEntity",
            IamError::MalformedPolicyDocument(_) => "MalformedPolicyDocument",
            IamError::LimitExceeded(_) => "LimitExceeded",
            IamError::Validation(_) => "ValidationError",
            IamError::InvalidInput(_) => "InvalidInput",
            IamError::AccessDenied(_) => "AccessDenied",
            IamError::DeleteConflict(_) => "DeleteConflict",
            IamError::ExpiredToken(_) => "ExpiredTokenException",
            IamError::RegionDisabled(_) => "RegionDisabledException",
            IamError::PackedPolicyTooLarge(_) => "PackedPolicyTooLarge",
            IamError::Internal(_) => "ServiceFailure",
        }
    }

    /// The HTTP status the models give the error, which SDKs use to tell client faults from server faults.
    pub fn http_status(&self) -> u16 {
        match self {
            IamError::EntityAlreadyExists(_)
            | IamError::LimitExceeded(_)
            | IamError::DeleteConflict(_) => 409,
            IamError::NoSuchEntity(_) => 404,
            IamError::AccessDenied(_) | IamError::RegionDisabled(_) => 403,
            IamError::MalformedPolicyDocument(_)
            | IamError::Validation(_)
            | IamError::InvalidInput(_)
            | IamError::ExpiredToken(_)
            | IamError::PackedPolicyTooLarge(_) => 400,
            IamError::Internal(_) => 500,
        }
    }
}

impl From<strongroom_storage::StoreError> for IamError {
    fn from(error: strongroom_storage::StoreError) -> IamError {
        // The service checks existence in memory first, so these arise only when another process changed
        // the same database; they still mean what they say.
        match error {
            strongroom_storage::StoreError::AlreadyExists(what) => {
                IamError::EntityAlreadyExists(format!("{what} already exists."))
            }
            strongroom_storage::StoreError::NotFound(what) => {
                IamError::NoSuchEntity(format!("{what} cannot be found."))
            }
            other => IamError::Internal(Box::new(other)),
        }
    }
}

impl From<strongroom_keystore::KeyStoreError> for IamError {
    fn from(error: strongroom_keystore::KeyStoreError) -> IamError {
        IamError::Internal(Box::new(error))
    }
}
