//! Strongroom's audit trail, shaped like AWS CloudTrail.
//!
//! Every KMS request becomes a CloudTrail record ([`Event`]), with secrets removed by
//! [`redact_kms_request`].
//! [`AuditLog::record`] returns only once the record is durable in a journal, and concurrent
//! callers share each flush (group commit).
//! Sealed journal segments are delivered as gzip CloudTrail log files under
//! `AWSLogs/<account>/CloudTrail/<region>/…`, one per account and Region, and each account and
//! Region gets a chain of signed digest files that lets [`verify`] detect modified, deleted or
//! added files.
//! A SQLite index answers LookupEvents ([`AuditLog::lookup`]).
//!
//! **Invariant:** an acknowledged event survives `kill -9`: it is in an `fdatasync`ed journal
//! frame, or in a delivered log file and the index, before its segment is removed.
//!
//! **Invariant:** no plaintext, ciphertext, signature, MAC, import material, password or grant
//! token reaches a record through the redaction functions.
//!
//! **Boundary:** this crate knows JSON, SQLite and files, but not HTTP and not the KMS service;
//! the protocol crate builds the events.

mod audit_log;
mod delivery;
mod error;
mod event;
mod index;
mod journal;
mod kms;
mod lookup;
mod signing;
mod verify;

pub use crate::audit_log::{AuditConfig, AuditLog};
pub use crate::error::Error;
pub use crate::event::{
    ApiCall, EVENT_VERSION, Event, EventType, IdentityType, KMS_EVENT_SOURCE,
    KMS_KEY_RESOURCE_TYPE, Resource, ServiceEvent, SessionAttributes, SessionContext,
    SessionIssuer, TlsDetails, UserIdentity,
};
pub use crate::kms::{kms_read_only, kms_response_elements, redact_kms_request};
pub use crate::lookup::{
    LookupAttributeKey, LookupEventEntry, LookupPage, LookupQuery, LookupResource,
    MAX_LOOKUP_RESULTS,
};
pub use crate::signing::{SIGNATURE_ALGORITHM, fingerprint};
pub use crate::verify::{
    DigestCheck, DigestOutcome, LogFileCheck, LogFileOutcome, VerifyReport, verify,
};

#[cfg(test)]
mod tests;
