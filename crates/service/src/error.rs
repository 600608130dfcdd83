//! The service's one error type: its variants are the AWS KMS error codes.
//!
//! Clients branch on the code, so each variant is one code; the message is for people.
//! `protocol` maps each variant to its `__type` and HTTP status in one place.

/// A KMS operation's failure, named as AWS names it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `NotFoundException`: the key, alias or other resource does not exist.
    #[error("{0}")]
    NotFound(String),
    /// `InvalidArnException`: an ARN that is not well formed.
    #[error("{0}")]
    InvalidArn(String),
    /// `DisabledException`: the key is disabled.
    #[error("{0}")]
    Disabled(String),
    /// `KMSInvalidStateException`: the key's state does not allow the operation.
    #[error("{0}")]
    InvalidState(String),
    /// `InvalidCiphertextException`: the ciphertext or its encryption context is not valid.
    #[error("{0}")]
    InvalidCiphertext(String),
    /// `IncorrectKeyException`: the ciphertext was not made under the key the request names.
    #[error("{0}")]
    IncorrectKey(String),
    /// `InvalidKeyUsageException`: the key's usage or spec does not fit the operation or algorithm.
    #[error("{0}")]
    InvalidKeyUsage(String),
    /// `AlreadyExistsException`.
    #[error("{0}")]
    AlreadyExists(String),
    /// `KMSInvalidSignatureException`: Verify found the signature not valid.
    #[error("{0}")]
    InvalidSignature(String),
    /// `KMSInvalidMacException`: VerifyMac found the MAC not valid.
    #[error("{0}")]
    InvalidMac(String),
    /// `IncorrectKeyMaterialException`: imported material is not the key's material.
    #[error("{0}")]
    IncorrectKeyMaterial(String),
    /// `InvalidImportTokenException`: an import token that does not fit the key or request.
    #[error("{0}")]
    InvalidImportToken(String),
    /// `ExpiredImportTokenException`: the import token is more than 24 hours old.
    #[error("{0}")]
    ExpiredImportToken(String),
    /// `InvalidAliasNameException`.
    #[error("{0}")]
    InvalidAliasName(String),
    /// `LimitExceededException`: a quota would be exceeded.
    #[error("{0}")]
    LimitExceeded(String),
    /// `ValidationException`: a parameter is missing, out of range or inconsistent.
    #[error("{0}")]
    Validation(String),
    /// `UnsupportedOperationException`.
    #[error("{0}")]
    UnsupportedOperation(String),
    /// `InvalidMarkerException`: a pagination marker this server did not issue.
    #[error("{0}")]
    InvalidMarker(String),
    /// `DryRunOperationException`: the request would have succeeded.
    #[error("The request would have succeeded, but the DryRun option is set.")]
    DryRunOperation,
    /// `TagException`: a tag is not valid.
    #[error("{0}")]
    Tag(String),
    /// `MalformedPolicyDocumentException`.
    #[error("{0}")]
    MalformedPolicyDocument(String),
    /// `AccessDeniedException`.
    #[error("{0}")]
    AccessDenied(String),
    /// `InvalidGrantTokenException`: a grant token this server did not issue.
    #[error("{0}")]
    InvalidGrantToken(String),
    /// `InvalidGrantIdException`.
    #[error("{0}")]
    InvalidGrantId(String),
    /// `CustomKeyStoreNotFoundException`.
    #[error("{0}")]
    CustomKeyStoreNotFound(String),
    /// `CloudHsmClusterNotFoundException`: the CloudHSM cluster does not exist in the account and Region.
    #[error("{0}")]
    CloudHsmClusterNotFound(String),
    /// `CloudHsmClusterNotActiveException`: the cluster is not ACTIVE.
    #[error("{0}")]
    CloudHsmClusterNotActive(String),
    /// `CloudHsmClusterInUseException`: the cluster backs another custom key store.
    #[error("{0}")]
    CloudHsmClusterInUse(String),
    /// `CloudHsmClusterInvalidConfigurationException`: the cluster lacks active HSMs in two zones.
    #[error("{0}")]
    CloudHsmClusterInvalidConfiguration(String),
    /// `CloudHsmClusterNotRelatedException`: the new cluster does not share the old one's certificate.
    #[error("{0}")]
    CloudHsmClusterNotRelated(String),
    /// `IncorrectTrustAnchorException`: the trust anchor is not the cluster's.
    #[error("{0}")]
    IncorrectTrustAnchor(String),
    /// `CustomKeyStoreNameInUseException`: another custom key store has the name.
    #[error("{0}")]
    CustomKeyStoreNameInUse(String),
    /// `CustomKeyStoreInvalidStateException`: the custom key store's connection state does not allow the operation.
    #[error("{0}")]
    CustomKeyStoreInvalidState(String),
    /// `CustomKeyStoreHasCMKsException`: the custom key store still holds KMS keys.
    #[error("{0}")]
    CustomKeyStoreHasCmks(String),
    /// `KMSInternalException`: a fault inside the server; the detail is logged, never sent.
    #[error("internal error: {0}")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// The message a caller (or the audit trail) may see: an internal fault's detail stays in the
    /// server log.
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

    /// The AWS error code (`__type`) of this error.
    pub fn code(&self) -> &'static str {
        match self {
            Error::NotFound(_) => "NotFoundException",
            Error::InvalidArn(_) => "InvalidArnException",
            Error::Disabled(_) => "DisabledException",
            Error::InvalidState(_) => "KMSInvalidStateException",
            Error::InvalidCiphertext(_) => "InvalidCiphertextException",
            Error::IncorrectKey(_) => "IncorrectKeyException",
            Error::InvalidKeyUsage(_) => "InvalidKeyUsageException",
            Error::AlreadyExists(_) => "AlreadyExistsException",
            Error::InvalidSignature(_) => "KMSInvalidSignatureException",
            Error::InvalidMac(_) => "KMSInvalidMacException",
            Error::IncorrectKeyMaterial(_) => "IncorrectKeyMaterialException",
            Error::InvalidImportToken(_) => "InvalidImportTokenException",
            Error::ExpiredImportToken(_) => "ExpiredImportTokenException",
            Error::InvalidAliasName(_) => "InvalidAliasNameException",
            Error::LimitExceeded(_) => "LimitExceededException",
            Error::Validation(_) => "ValidationException",
            Error::UnsupportedOperation(_) => "UnsupportedOperationException",
            Error::InvalidMarker(_) => "InvalidMarkerException",
            Error::DryRunOperation => "DryRunOperationException",
            Error::Tag(_) => "TagException",
            Error::MalformedPolicyDocument(_) => "MalformedPolicyDocumentException",
            Error::AccessDenied(_) => "AccessDeniedException",
            Error::InvalidGrantToken(_) => "InvalidGrantTokenException",
            Error::InvalidGrantId(_) => "InvalidGrantIdException",
            Error::CustomKeyStoreNotFound(_) => "CustomKeyStoreNotFoundException",
            Error::CloudHsmClusterNotFound(_) => "CloudHsmClusterNotFoundException",
            Error::CloudHsmClusterNotActive(_) => "CloudHsmClusterNotActiveException",
            Error::CloudHsmClusterInUse(_) => "CloudHsmClusterInUseException",
            Error::CloudHsmClusterInvalidConfiguration(_) => {
                "CloudHsmClusterInvalidConfigurationException"
            }
            Error::CloudHsmClusterNotRelated(_) => "CloudHsmClusterNotRelatedException",
            Error::IncorrectTrustAnchor(_) => "IncorrectTrustAnchorException",
            Error::CustomKeyStoreNameInUse(_) => "CustomKeyStoreNameInUseException",
            Error::CustomKeyStoreInvalidState(_) => "CustomKeyStoreInvalidStateException",
            Error::CustomKeyStoreHasCmks(_) => "CustomKeyStoreHasCMKsException",
            Error::Internal(_) => "KMSInternalException",
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

impl From<strongroom_keystore::KeyStoreError> for Error {
    fn from(e: strongroom_keystore::KeyStoreError) -> Error {
        use strongroom_keystore::KeyStoreError;
        match e {
            KeyStoreError::Unsupported(message) => Error::UnsupportedOperation(message),
            KeyStoreError::InvalidInput(message) => Error::Validation(message),
            other => Error::internal(other),
        }
    }
}
