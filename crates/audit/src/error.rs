//! The audit crate's one error type.
//!
//! The lookup variants carry CloudTrail's error codes, so the protocol crate can map them to
//! `InvalidLookupAttributesException` and friends; everything else is an internal fault.

use std::path::PathBuf;

/// What can go wrong while recording, delivering, verifying or looking up audit events.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// LookupEvents was given more than one lookup attribute, or an empty value.
    #[error("invalid lookup attributes: {0}")]
    InvalidLookupAttributes(&'static str),
    /// LookupEvents was given a start time after its end time.
    #[error("the start time is after the end time")]
    InvalidTimeRange,
    /// LookupEvents was given a page size outside 1 to 50.
    #[error("max results must be between 1 and 50, got {0}")]
    InvalidMaxResults(u32),
    /// LookupEvents was given a token it did not issue, or one issued for other parameters.
    #[error("the next token is not valid for these parameters")]
    InvalidNextToken,
    /// An event cannot be delivered: its account or Region cannot name a directory.
    #[error("invalid audit event: {0}")]
    InvalidEvent(&'static str),
    /// The audit configuration is unusable.
    #[error("invalid audit configuration: {0}")]
    InvalidConfig(&'static str),
    /// A file or directory could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done, as a verb phrase.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The query index or delivery state could not be read or written.
    #[error("audit index: {0}")]
    Index(#[from] rusqlite::Error),
    /// An event could not be encoded or decoded.
    #[error("audit record encoding: {0}")]
    Encoding(#[from] serde_json::Error),
    /// The digest signing key could not be created, parsed or used.
    #[error("digest signing key: {0}")]
    SigningKey(String),
    /// An earlier journal write or flush failed, so no further event can be acknowledged.
    ///
    /// After a failed `fdatasync` the kernel may have dropped dirty pages, so the only safe reply is
    /// to stop acknowledging until the process restarts and recovers the journal.
    #[error("the audit journal failed earlier and accepts no more events")]
    JournalFailed,
    /// Another audit log, in this process or another, is using the directory.
    #[error("the audit directory is in use by another audit log")]
    Locked,
    /// The audit log has shut down.
    #[error("the audit log is closed")]
    Closed,
}

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Error {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
