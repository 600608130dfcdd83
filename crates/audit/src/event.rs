//! The CloudTrail record: what one audit event looks like on disk and in LookupEvents.
//!
//! Field names and their order follow CloudTrail's record contents, so a delivered log file can be
//! read by the same tools that read AWS's own (Athena tables, SIEM parsers, `jq` recipes).
//! Two builders make records: [`ApiCall`] for a request a principal made, and [`ServiceEvent`] for
//! work KMS did on its own (automatic rotation, deletion after the waiting period).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

/// The record format version written into every event.
///
/// 1.11 is the version CloudTrail documents as current; it includes `tlsDetails` (1.08) and
/// `sessionCredentialFromConsole` (1.08) among the optional fields.
pub const EVENT_VERSION: &str = "1.11";

/// The event source of every KMS event.
pub const KMS_EVENT_SOURCE: &str = "kms.amazonaws.com";

/// The resource type CloudTrail gives a KMS key.
pub const KMS_KEY_RESOURCE_TYPE: &str = "AWS::KMS::Key";

/// What CloudTrail writes where an internal caller has no address, agent or principal.
const AWS_INTERNAL: &str = "AWS Internal";

/// One CloudTrail record.
///
/// Serialises to exactly the JSON object CloudTrail writes into a log file's `Records` array.
/// Build one with [`ApiCall::into_event`] or [`ServiceEvent::into_event`] rather than by hand,
/// so the fixed fields (`eventVersion`, `eventType`, `managementEvent`, `eventCategory`) are right.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// The record format version, [`EVENT_VERSION`].
    pub event_version: String,
    /// Who made the request.
    pub user_identity: UserIdentity,
    /// When the request completed, to the second, in UTC.
    #[serde(with = "timestamp")]
    pub event_time: OffsetDateTime,
    /// The service the request went to, [`KMS_EVENT_SOURCE`].
    pub event_source: String,
    /// The operation, such as `Encrypt`.
    pub event_name: String,
    /// The Region the request went to.
    pub aws_region: String,
    /// The caller's address, or `AWS Internal`.
    #[serde(rename = "sourceIPAddress")]
    pub source_ip_address: String,
    /// The caller's `User-Agent`.
    pub user_agent: String,
    /// The error code of a failed request, such as `AccessDenied`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// The error message of a failed request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// The request's parameters with secrets removed; see [`crate::redact_kms_request`].
    #[serde(default)]
    pub request_parameters: Value,
    /// The response's non-secret elements, or null; see [`crate::kms_response_elements`].
    #[serde(default)]
    pub response_elements: Value,
    /// Details that are neither request nor response, such as `keyMaterialId` or `backingKey`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_event_data: Option<Value>,
    /// The request id returned to the caller.
    #[serde(rename = "requestID", default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// This record's unique id.
    #[serde(rename = "eventID")]
    pub event_id: String,
    /// Whether the operation only reads.
    pub read_only: bool,
    /// The KMS keys the request touched.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<Resource>,
    /// Whether a principal or the service itself caused the event.
    pub event_type: EventType,
    /// Always true: every KMS event is a management event.
    pub management_event: bool,
    /// The account this copy of the record is delivered to.
    pub recipient_account_id: String,
    /// Shared by the copies of one cross-account event, one copy per account.
    #[serde(
        rename = "sharedEventID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub shared_event_id: Option<String>,
    /// Details of a service event, such as the rotation type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_event_details: Option<Value>,
    /// Always `Management`.
    pub event_category: String,
    /// The TLS session of the request, when it came over TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_details: Option<TlsDetails>,
}

/// The kind of principal in [`UserIdentity`].
///
/// Spelled exactly as CloudTrail spells the `type` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum IdentityType {
    /// The account's root user.
    Root,
    /// A long-term IAM user.
    #[serde(rename = "IAMUser")]
    IamUser,
    /// A role session from `sts:AssumeRole`.
    AssumedRole,
    /// A principal from another account, as seen by the key owner.
    #[serde(rename = "AWSAccount")]
    AwsAccount,
    /// An AWS service acting through a service principal.
    #[serde(rename = "AWSService")]
    AwsService,
    /// A federated user session from `sts:GetFederationToken`.
    FederatedUser,
}

/// Who made a request: CloudTrail's `userIdentity` element.
///
/// Every field is optional because each identity type fills a different subset; the constructors
/// fill the right ones.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserIdentity {
    /// The kind of principal.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub identity_type: Option<IdentityType>,
    /// The principal's unique id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_id: Option<String>,
    /// The principal's ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    /// The principal's account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// The access key that signed the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    /// The IAM user name, for IAM users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    /// How temporary credentials were obtained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_context: Option<SessionContext>,
    /// The service that made the request on the principal's behalf.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoked_by: Option<String>,
}

/// How temporary credentials came to be: CloudTrail's `sessionContext`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionContext {
    /// The role (or user) the session was issued from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_issuer: Option<SessionIssuer>,
    /// When the credentials were issued and whether MFA was used.
    pub attributes: SessionAttributes,
}

/// The role or user a session was issued from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionIssuer {
    /// `Role` for role sessions.
    #[serde(rename = "type")]
    pub issuer_type: String,
    /// The issuer's unique id.
    pub principal_id: String,
    /// The issuer's ARN.
    pub arn: String,
    /// The issuer's account.
    pub account_id: String,
    /// The role or user name.
    pub user_name: String,
}

/// When credentials were issued, and whether MFA was used.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionAttributes {
    /// When the credentials were issued.
    #[serde(with = "timestamp")]
    pub creation_date: OffsetDateTime,
    /// `"true"` or `"false"`, a string as in CloudTrail.
    pub mfa_authenticated: String,
}

/// A resource an event touched: for KMS, a key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    /// The key ARN.
    #[serde(rename = "ARN")]
    pub arn: String,
    /// The account that owns the key.
    #[serde(rename = "accountId")]
    pub account_id: String,
    /// [`KMS_KEY_RESOURCE_TYPE`] for keys.
    #[serde(rename = "type")]
    pub resource_type: String,
}

/// Whether an event came from a request or from the service itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventType {
    /// A principal called the API.
    AwsApiCall,
    /// KMS acted on its own, for example rotating a key on schedule.
    AwsServiceEvent,
}

/// The TLS session a request arrived on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TlsDetails {
    /// Such as `TLSv1.3`.
    pub tls_version: String,
    /// Such as `TLS_AES_256_GCM_SHA384`.
    pub cipher_suite: String,
    /// The `Host` the client asked for.
    pub client_provided_host_header: String,
}

/// A request a principal made, ready to become an [`Event`].
///
/// The protocol layer fills one of these per request, after the response is known, so denied and
/// malformed requests are recorded too.
#[derive(Clone, Debug)]
pub struct ApiCall {
    /// Who made the request.
    pub user_identity: UserIdentity,
    /// When the request completed.
    pub event_time: OffsetDateTime,
    /// Normally [`KMS_EVENT_SOURCE`].
    pub event_source: String,
    /// The operation name, such as `Decrypt`.
    pub event_name: String,
    /// The Region the request went to.
    pub aws_region: String,
    /// The caller's IP address.
    pub source_ip: String,
    /// The caller's `User-Agent`.
    pub user_agent: String,
    /// The request id returned to the caller.
    pub request_id: Option<String>,
    /// Redacted request parameters, or null for a request that could not be parsed.
    pub request_parameters: Value,
    /// Non-secret response elements, or null.
    pub response_elements: Value,
    /// The error code, for a failed request.
    pub error_code: Option<String>,
    /// The error message, for a failed request.
    pub error_message: Option<String>,
    /// Whether the operation only reads; see [`crate::kms_read_only`].
    pub read_only: bool,
    /// The keys the request touched.
    pub resources: Vec<Resource>,
    /// The account that owns the resource; the caller's own account for account-level calls.
    pub recipient_account_id: String,
    /// Extra details such as `keyMaterialId`.
    pub additional_event_data: Option<Value>,
    /// The TLS session, when the request came over TLS.
    pub tls_details: Option<TlsDetails>,
}

/// Something KMS did on its own, ready to become an [`Event`].
#[derive(Clone, Debug)]
pub struct ServiceEvent {
    /// The account that owns the key.
    pub account_id: String,
    /// When it happened.
    pub event_time: OffsetDateTime,
    /// Such as `RotateKey`, `DeleteKey` or `DisconnectCustomKeyStore`.
    pub event_name: String,
    /// The Region of the key.
    pub aws_region: String,
    /// The keys affected.
    pub resources: Vec<Resource>,
    /// Elements such as the deleted key's ARN, or null.
    pub response_elements: Value,
    /// Extra details such as `backingKeys`.
    pub additional_event_data: Option<Value>,
    /// Details such as `rotationType`.
    pub service_event_details: Option<Value>,
}

impl UserIdentity {
    /// The root user of `account_id`.
    pub fn root(account_id: &str, access_key_id: Option<&str>) -> UserIdentity {
        UserIdentity {
            identity_type: Some(IdentityType::Root),
            principal_id: Some(account_id.to_owned()),
            arn: Some(format!("arn:aws:iam::{account_id}:root")),
            account_id: Some(account_id.to_owned()),
            access_key_id: access_key_id.map(str::to_owned),
            ..UserIdentity::default()
        }
    }

    /// The IAM user `user_name` of `account_id`.
    pub fn iam_user(
        account_id: &str,
        user_name: &str,
        principal_id: &str,
        access_key_id: Option<&str>,
    ) -> UserIdentity {
        UserIdentity {
            identity_type: Some(IdentityType::IamUser),
            principal_id: Some(principal_id.to_owned()),
            arn: Some(format!("arn:aws:iam::{account_id}:user/{user_name}")),
            account_id: Some(account_id.to_owned()),
            access_key_id: access_key_id.map(str::to_owned),
            user_name: Some(user_name.to_owned()),
            ..UserIdentity::default()
        }
    }

    /// A session of `role_name` in `account_id`, named `session_name`.
    pub fn assumed_role(
        account_id: &str,
        role_name: &str,
        role_id: &str,
        session_name: &str,
        access_key_id: Option<&str>,
        issued_at: OffsetDateTime,
        mfa_authenticated: bool,
    ) -> UserIdentity {
        UserIdentity {
            identity_type: Some(IdentityType::AssumedRole),
            principal_id: Some(format!("{role_id}:{session_name}")),
            arn: Some(format!(
                "arn:aws:sts::{account_id}:assumed-role/{role_name}/{session_name}"
            )),
            account_id: Some(account_id.to_owned()),
            access_key_id: access_key_id.map(str::to_owned),
            session_context: Some(SessionContext {
                session_issuer: Some(SessionIssuer {
                    issuer_type: "Role".to_owned(),
                    principal_id: role_id.to_owned(),
                    arn: format!("arn:aws:iam::{account_id}:role/{role_name}"),
                    account_id: account_id.to_owned(),
                    user_name: role_name.to_owned(),
                }),
                attributes: SessionAttributes {
                    creation_date: truncate_to_second(issued_at),
                    mfa_authenticated: mfa_authenticated.to_string(),
                },
            }),
            ..UserIdentity::default()
        }
    }

    /// An AWS service principal such as `cloudtrail.amazonaws.com` calling on its own behalf.
    pub fn aws_service(service: &str) -> UserIdentity {
        UserIdentity {
            identity_type: Some(IdentityType::AwsService),
            invoked_by: Some(service.to_owned()),
            ..UserIdentity::default()
        }
    }

    /// The name LookupEvents shows as `Username`: the user, role session or service name.
    pub(crate) fn lookup_username(&self) -> Option<String> {
        match self.identity_type {
            Some(IdentityType::Root) => Some("root".to_owned()),
            Some(IdentityType::IamUser) => self.user_name.clone(),
            Some(IdentityType::AssumedRole | IdentityType::FederatedUser) => self
                .arn
                .as_deref()
                .and_then(|arn| arn.rsplit('/').next())
                .map(str::to_owned),
            Some(IdentityType::AwsService) | None => self.invoked_by.clone(),
            Some(IdentityType::AwsAccount) => self.account_id.clone(),
        }
    }
}

impl Resource {
    /// A KMS key resource, named by its ARN, owned by `account_id`.
    pub fn kms_key(arn: &str, account_id: &str) -> Resource {
        Resource {
            arn: arn.to_owned(),
            account_id: account_id.to_owned(),
            resource_type: KMS_KEY_RESOURCE_TYPE.to_owned(),
        }
    }
}

impl ApiCall {
    /// Makes the record, with a fresh event id.
    pub fn into_event(self) -> Event {
        Event {
            event_version: EVENT_VERSION.to_owned(),
            user_identity: self.user_identity,
            event_time: truncate_to_second(self.event_time),
            event_source: self.event_source,
            event_name: self.event_name,
            aws_region: self.aws_region,
            source_ip_address: self.source_ip,
            user_agent: self.user_agent,
            error_code: self.error_code,
            error_message: self.error_message,
            request_parameters: self.request_parameters,
            response_elements: self.response_elements,
            additional_event_data: self.additional_event_data,
            request_id: self.request_id,
            event_id: new_event_id(),
            read_only: self.read_only,
            resources: self.resources,
            event_type: EventType::AwsApiCall,
            management_event: true,
            recipient_account_id: self.recipient_account_id,
            shared_event_id: None,
            service_event_details: None,
            event_category: "Management".to_owned(),
            tls_details: self.tls_details,
        }
    }
}

impl ServiceEvent {
    /// Makes the record, with a fresh event id.
    ///
    /// The identity, address and agent are `AWS Internal`, as in the KMS service events CloudTrail
    /// documents (RotateKey, DeleteKey): no principal made the request.
    pub fn into_event(self) -> Event {
        Event {
            event_version: EVENT_VERSION.to_owned(),
            user_identity: UserIdentity {
                account_id: Some(self.account_id.clone()),
                invoked_by: Some(AWS_INTERNAL.to_owned()),
                ..UserIdentity::default()
            },
            event_time: truncate_to_second(self.event_time),
            event_source: KMS_EVENT_SOURCE.to_owned(),
            event_name: self.event_name,
            aws_region: self.aws_region,
            source_ip_address: AWS_INTERNAL.to_owned(),
            user_agent: AWS_INTERNAL.to_owned(),
            error_code: None,
            error_message: None,
            request_parameters: Value::Null,
            response_elements: self.response_elements,
            additional_event_data: self.additional_event_data,
            request_id: None,
            event_id: new_event_id(),
            read_only: false,
            resources: self.resources,
            event_type: EventType::AwsServiceEvent,
            management_event: true,
            recipient_account_id: self.account_id,
            shared_event_id: None,
            service_event_details: self.service_event_details,
            event_category: "Management".to_owned(),
            tls_details: None,
        }
    }
}

impl Event {
    /// Splits a cross-account event into one copy per account.
    ///
    /// When a principal of one account uses a key of another, CloudTrail delivers the event to both
    /// accounts: each copy has its own `eventID` and `recipientAccountId`, and both carry the same
    /// `sharedEventID`.
    pub(crate) fn into_recipient_copies(mut self) -> Vec<Event> {
        let caller_account = match self.user_identity.account_id.as_deref() {
            Some(account) if account != self.recipient_account_id => account.to_owned(),
            _ => return vec![self],
        };
        let shared = new_event_id();
        self.shared_event_id = Some(shared);
        let mut caller_copy = self.clone();
        caller_copy.event_id = new_event_id();
        caller_copy.recipient_account_id = caller_account;
        vec![self, caller_copy]
    }
}

/// A new event id: a UUID of version 7 (time-ordered), so that the query index on event ids grows at
/// its end; see `index::event_key`.
///
/// Its 74 bits after the time stamp come from a counter that starts at a random value when the
/// process starts (RFC 9562's "fixed-length dedicated counter"), not from the system's random number
/// generator: ids stay unique and unpredictable across restarts without a system call per event,
/// and the counter's low 12 bits make the index keys of events of the same millisecond differ.
pub(crate) fn new_event_id() -> String {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};

    static COUNTER: OnceLock<(u64, AtomicU64)> = OnceLock::new();
    let (mask, counter) = COUNTER.get_or_init(|| {
        let [a, b] = uuid::Uuid::new_v4().as_u64_pair().into();
        (a, AtomicU64::new(b))
    });
    let n = counter.fetch_add(1, Ordering::Relaxed);
    let mut bits = [0u8; 10];
    bits[..2].copy_from_slice(&(n as u16).to_be_bytes());
    // XOR with a fixed mask is one-to-one, so distinct counter values give distinct ids.
    bits[2..].copy_from_slice(&(n ^ mask).to_be_bytes());
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64);
    uuid::Builder::from_unix_timestamp_millis(millis, &bits)
        .into_uuid()
        .to_string()
}

fn truncate_to_second(time: OffsetDateTime) -> OffsetDateTime {
    time.to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(time)
}

/// CloudTrail's time stamps: `2025-05-20T20:46:16Z`, UTC, whole seconds.
pub(crate) mod timestamp {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;
    use time::format_description::BorrowedFormatItem;
    use time::macros::format_description;

    const FORMAT: &[BorrowedFormatItem<'static>] =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");

    pub(crate) fn format(time: OffsetDateTime) -> String {
        let utc = time.to_offset(time::UtcOffset::UTC);
        utc.format(FORMAT)
            .unwrap_or_else(|_| String::from("1970-01-01T00:00:00Z"))
    }

    pub(crate) fn parse(text: &str) -> Option<OffsetDateTime> {
        time::PrimitiveDateTime::parse(text, FORMAT)
            .ok()
            .map(time::PrimitiveDateTime::assume_utc)
    }

    pub(crate) fn serialize<S: Serializer>(
        time: &OffsetDateTime,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format(*time))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<OffsetDateTime, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse(&text).ok_or_else(|| serde::de::Error::custom("not a CloudTrail time stamp"))
    }
}
