//! Calls that Strongroom's own components make in process for a caller: Secrets Manager's data keys,
//! a stack's provisioning steps.
//!
//! AWS records the KMS calls its services make for you (Secrets Manager's `GenerateDataKey`,
//! CloudFormation's `CreateKey`) as your calls, with `userIdentity.invokedBy` naming the service.
//! Such calls never cross the protocol edge, which records every request it serves, so the component
//! making them reports each one here, and the server writes it to the audit trail before the
//! component goes on. The service only describes the call; the audit record is built at the edge,
//! which knows CloudTrail's format.

use strongroom_types::EncryptionContext;

use crate::{Caller, Error};

/// One call made on a caller's behalf.
#[derive(Clone, Debug)]
pub struct OnBehalfCall {
    /// Whose call it is: authorization used this caller.
    pub caller: Caller,
    /// The component that made it, as CloudTrail names services: `secretsmanager.amazonaws.com`.
    pub invoked_by: String,
    /// Which API: `kms.amazonaws.com` or `cloudhsm.amazonaws.com`.
    pub event_source: &'static str,
    /// The operation, such as `GenerateDataKey`.
    pub operation: &'static str,
    /// The parameters CloudTrail logs for it (never plaintext, key material or passwords).
    pub parameters: Vec<(&'static str, CallParameter)>,
    /// The ARNs of the keys (or other resources) it acted on.
    pub resources: Vec<String>,
    /// The error it ended with: its AWS code and message.
    pub error: Option<(&'static str, String)>,
}

/// One logged request parameter.
#[derive(Clone, Debug)]
pub enum CallParameter {
    /// A string, such as a key id or a key spec.
    Text(String),
    /// A number, such as `numberOfBytes`.
    Number(i64),
    /// An encryption context (names and values only describe the data; they are logged).
    Context(EncryptionContext),
    /// A list of strings, such as a grant's operations or the keys of tags.
    List(Vec<String>),
}

impl OnBehalfCall {
    /// A KMS call by `invoked_by` for `caller`, ending with `outcome`.
    pub fn kms<T>(
        caller: &Caller,
        invoked_by: &str,
        operation: &'static str,
        parameters: Vec<(&'static str, CallParameter)>,
        resources: Vec<String>,
        outcome: &Result<T, Error>,
    ) -> OnBehalfCall {
        OnBehalfCall {
            caller: caller.clone(),
            invoked_by: invoked_by.to_owned(),
            event_source: "kms.amazonaws.com",
            operation,
            parameters,
            resources,
            error: outcome
                .as_ref()
                .err()
                .map(|error| (error.code(), error.public_message())),
        }
    }

    /// A CloudHSM call by `invoked_by` for `caller`; `error` is the CloudHSM error code and message it
    /// ended with (the service does not know CloudHSM's error type).
    pub fn cloudhsm(
        caller: &Caller,
        invoked_by: &str,
        operation: &'static str,
        parameters: Vec<(&'static str, CallParameter)>,
        error: Option<(&'static str, String)>,
    ) -> OnBehalfCall {
        OnBehalfCall {
            caller: caller.clone(),
            invoked_by: invoked_by.to_owned(),
            event_source: "cloudhsm.amazonaws.com",
            operation,
            parameters,
            resources: Vec::new(),
            error,
        }
    }
}

/// Where the calls are reported; the server writes them to the audit trail.
#[async_trait::async_trait]
pub trait OnBehalfCalls: Send + Sync + 'static {
    /// Records `call`, returning once the record is durable (or recording failed, which is logged).
    async fn record(&self, call: OnBehalfCall);
}

/// Records nothing; for services without an audit trail (unit tests).
pub(crate) struct NoOnBehalfCalls;

#[async_trait::async_trait]
impl OnBehalfCalls for NoOnBehalfCalls {
    async fn record(&self, _call: OnBehalfCall) {}
}
