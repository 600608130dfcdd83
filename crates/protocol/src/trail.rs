//! The audit record of each request, and the CloudTrail LookupEvents API.
//!
//! Every request that reaches the KMS endpoint, allowed, denied, malformed or failed, becomes exactly one
//! CloudTrail record, made durable before the response is sent. Request parameters go through the audit
//! crate's redaction, so plaintexts, ciphertexts and other secrets never reach the trail.

use http::request::Parts;
use serde_json::{Map, Value, json};
use strongroom_audit::{
    ApiCall, AuditLog, Event, KMS_EVENT_SOURCE, LookupAttributeKey, LookupQuery, Resource,
    UserIdentity, kms_read_only, kms_response_elements, redact_kms_request,
};
use strongroom_service::Caller;
use time::OffsetDateTime;

use crate::error::ProtocolError;

/// What the edge knows about one request once it has been served.
pub(crate) struct Served {
    /// The authenticated caller, when authentication succeeded.
    pub(crate) caller: Option<Caller>,
    /// The parsed request body, when it parsed.
    pub(crate) fields: Option<Map<String, Value>>,
    /// The response body or the error.
    pub(crate) result: Result<Value, ProtocolError>,
}

/// Builds the CloudTrail record of a KMS request.
pub(crate) fn kms_event(
    served: &Served,
    parts: &Parts,
    operation: &str,
    request_id: &str,
    default_account: &str,
) -> Event {
    let caller = served.caller.as_ref();
    // Only an unauthenticated request needs its Authorization header parsed again.
    let header_auth = match caller {
        Some(_) => None,
        None => strongroom_sigv4::parse_authorization(&parts.headers).ok(),
    };
    let access_key_id = caller.map(|c| c.access_key_id.clone()).or_else(|| {
        header_auth
            .as_ref()
            .map(|auth| auth.access_key_id.to_owned())
    });
    let user_identity = match caller {
        Some(caller) => identity_of(caller),
        None => UserIdentity {
            access_key_id: access_key_id.clone(),
            ..UserIdentity::default()
        },
    };
    let region = caller
        .map(|c| c.namespace.region.as_str().to_owned())
        .or_else(|| header_auth.as_ref().map(|auth| auth.region.to_owned()))
        .unwrap_or_else(|| "us-east-1".to_owned());
    let caller_account = caller
        .map(|c| c.account().as_str().to_owned())
        .unwrap_or_else(|| default_account.to_owned());
    let resources = key_resources(served, caller);
    let recipient_account_id = resources
        .first()
        .map(|resource| resource.account_id.clone())
        .unwrap_or_else(|| caller_account.clone());
    let (error_code, error_message, response_elements) = match &served.result {
        Ok(Value::Object(response)) => (None, None, kms_response_elements(operation, response)),
        Ok(_) => (None, None, Value::Null),
        Err(error) => {
            let (code, _, message) = error.wire();
            (Some(code.to_owned()), Some(message), Value::Null)
        }
    };
    let request_parameters = match &served.fields {
        Some(fields) => redact_kms_request(operation, fields),
        None => Value::Null,
    };
    let event_name = if operation.is_empty() {
        "UnknownOperation"
    } else {
        operation
    };
    ApiCall {
        user_identity,
        event_time: OffsetDateTime::now_utc(),
        event_source: KMS_EVENT_SOURCE.to_owned(),
        event_name: event_name.to_owned(),
        aws_region: region,
        source_ip: source_ip(parts),
        user_agent: user_agent(parts),
        request_id: Some(request_id.to_owned()),
        request_parameters,
        response_elements,
        error_code,
        error_message,
        read_only: kms_read_only(operation),
        resources,
        recipient_account_id,
        additional_event_data: None,
        tls_details: None,
    }
    .into_event()
}

fn identity_of(caller: &Caller) -> UserIdentity {
    let account = caller.account().as_str();
    if caller.arn.ends_with(":root") {
        return UserIdentity::root(account, Some(&caller.access_key_id));
    }
    UserIdentity {
        arn: Some(caller.arn.clone()),
        account_id: Some(account.to_owned()),
        access_key_id: Some(caller.access_key_id.clone()),
        ..UserIdentity::default()
    }
}

/// The keys a request touched: ARNs in the response, else the key the request named.
fn key_resources(served: &Served, caller: Option<&Caller>) -> Vec<Resource> {
    let mut arns: Vec<String> = Vec::new();
    if let Ok(Value::Object(response)) = &served.result {
        for field in ["SourceKeyId", "KeyId"] {
            if let Some(arn) = response
                .get(field)
                .and_then(Value::as_str)
                .filter(|v| v.starts_with("arn:"))
            {
                arns.push(arn.to_owned());
            }
        }
        if let Some(arn) = response
            .get("KeyMetadata")
            .and_then(|m| m.get("Arn"))
            .and_then(Value::as_str)
        {
            arns.push(arn.to_owned());
        }
    }
    if arns.is_empty()
        && let (Some(fields), Some(caller)) = (&served.fields, caller)
    {
        for field in ["KeyId", "TargetKeyId", "SourceKeyId", "DestinationKeyId"] {
            let Some(text) = fields.get(field).and_then(Value::as_str) else {
                continue;
            };
            match strongroom_types::KeyRef::parse(text) {
                Ok(strongroom_types::KeyRef::Id(id)) => arns.push(caller.namespace.key_arn(&id)),
                Ok(strongroom_types::KeyRef::KeyArn(namespace, id)) => {
                    arns.push(namespace.key_arn(&id))
                }
                _ => {}
            }
        }
    }
    arns.dedup();
    arns.iter()
        .map(|arn| {
            let account = arn.split(':').nth(4).unwrap_or_default();
            Resource::kms_key(arn, account)
        })
        .collect()
}

/// Serves CloudTrail's LookupEvents for the caller's own account.
pub(crate) async fn lookup_events(
    audit: &AuditLog,
    caller: &Caller,
    body: &Map<String, Value>,
) -> Result<Value, ProtocolError> {
    let invalid =
        |message: String| ProtocolError::CloudTrail("InvalidLookupAttributesException", message);
    let mut attributes = Vec::new();
    if let Some(Value::Array(items)) = body.get("LookupAttributes") {
        for item in items {
            let key = item
                .get("AttributeKey")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let value = item
                .get("AttributeValue")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let key: LookupAttributeKey = key
                .parse()
                .map_err(|_| invalid(format!("'{key}' is not a lookup attribute key.")))?;
            attributes.push((key, value.to_owned()));
        }
    }
    let time = |name: &str| -> Result<Option<OffsetDateTime>, ProtocolError> {
        match body.get(name).and_then(Value::as_f64) {
            None => Ok(None),
            Some(secs) => OffsetDateTime::from_unix_timestamp_nanos((secs * 1e9) as i128)
                .map(Some)
                .map_err(|_| {
                    ProtocolError::CloudTrail(
                        "InvalidTimeRangeException",
                        format!("{name} is out of range."),
                    )
                }),
        }
    };
    let query = LookupQuery {
        attributes,
        start_time: time("StartTime")?,
        end_time: time("EndTime")?,
        max_results: body
            .get("MaxResults")
            .and_then(Value::as_u64)
            .map(|n| n.min(u64::from(u32::MAX)) as u32),
        next_token: body
            .get("NextToken")
            .and_then(Value::as_str)
            .map(str::to_owned),
        region: Some(caller.namespace.region.as_str().to_owned()),
    };
    let page = audit
        .lookup(caller.account().as_str(), query)
        .await
        .map_err(lookup_error)?;
    let events: Vec<Value> = page
        .events
        .iter()
        .map(|entry| {
            json!({
                "EventId": entry.event_id,
                "EventName": entry.event_name,
                "ReadOnly": entry.read_only,
                "AccessKeyId": entry.access_key_id,
                "EventTime": entry.event_time.unix_timestamp_nanos() as f64 / 1e9,
                "EventSource": entry.event_source,
                "Username": entry.username,
                "Resources": entry.resources.iter().map(|r| json!({
                    "ResourceType": r.resource_type,
                    "ResourceName": r.resource_name,
                })).collect::<Vec<_>>(),
                "CloudTrailEvent": entry.cloud_trail_event,
            })
        })
        .collect();
    let mut out = json!({ "Events": events });
    if let (Some(token), Value::Object(fields)) = (page.next_token, &mut out) {
        fields.insert("NextToken".to_owned(), json!(token));
    }
    Ok(out)
}

fn lookup_error(error: strongroom_audit::Error) -> ProtocolError {
    use strongroom_audit::Error as E;
    let code = match &error {
        E::InvalidLookupAttributes(_) => "InvalidLookupAttributesException",
        E::InvalidTimeRange => "InvalidTimeRangeException",
        E::InvalidMaxResults(_) => "InvalidMaxResultsException",
        E::InvalidNextToken => "InvalidNextTokenException",
        _ => {
            tracing::error!("failed to look up audit events: {error:#}");
            return ProtocolError::Service(strongroom_service::Error::internal(error));
        }
    };
    ProtocolError::CloudTrail(code, error.to_string())
}

/// The resources a request another API served acted on (CloudHSM's clusters, HSMs and backups), left
/// by its handler in the response's extensions for the audit record.
#[derive(Clone, Debug, Default)]
pub(crate) struct TrailResources(pub(crate) Vec<Resource>);

/// Builds the record of a request another API served (IAM, STS, CloudHSM), from the request and its
/// outcome (the error code when it failed); the caller adds the resources it acted on
/// ([`TrailResources`]). Parameters are not recorded for these APIs: some carry passwords and secrets,
/// and the record must never hold one.
pub(crate) fn other_api_event(
    parts: &Parts,
    caller: Option<(String, String, String)>,
    event_source: &str,
    event_name: &str,
    outcome: Result<(), String>,
    request_id: &str,
    default_account: &str,
) -> Event {
    let header_auth = strongroom_sigv4::parse_authorization(&parts.headers).ok();
    let region = header_auth
        .as_ref()
        .map(|auth| auth.region.to_owned())
        .unwrap_or_else(|| "us-east-1".to_owned());
    let (account, user_identity) = match caller {
        Some((account, arn, access_key_id)) if arn.ends_with(":root") => {
            let identity = UserIdentity::root(&account, Some(&access_key_id));
            (account, identity)
        }
        Some((account, arn, access_key_id)) => {
            let identity = UserIdentity {
                arn: Some(arn),
                account_id: Some(account.clone()),
                access_key_id: Some(access_key_id),
                ..UserIdentity::default()
            };
            (account, identity)
        }
        None => {
            let access_key_id = header_auth.map(|auth| auth.access_key_id.to_owned());
            (
                default_account.to_owned(),
                UserIdentity {
                    access_key_id,
                    ..UserIdentity::default()
                },
            )
        }
    };
    ApiCall {
        user_identity,
        event_time: OffsetDateTime::now_utc(),
        event_source: event_source.to_owned(),
        event_name: if event_name.is_empty() {
            "UnknownOperation".to_owned()
        } else {
            event_name.to_owned()
        },
        aws_region: region,
        source_ip: source_ip(parts),
        user_agent: user_agent(parts),
        request_id: Some(request_id.to_owned()),
        request_parameters: Value::Null,
        response_elements: Value::Null,
        error_code: outcome.err(),
        error_message: None,
        read_only: kms_read_only(event_name),
        resources: Vec::new(),
        recipient_account_id: account,
        additional_event_data: None,
        tls_details: None,
    }
    .into_event()
}

/// The error code in a JSON (`__type`) or XML (`<Code>`) error body.
pub(crate) fn error_code_of(body: &[u8]) -> Option<String> {
    if let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) {
        let code = fields.get("__type")?.as_str()?;
        return Some(code.rsplit('#').next().unwrap_or(code).to_owned());
    }
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find("<Code>")? + "<Code>".len();
    let end = text[start..].find("</Code>")? + start;
    Some(text[start..end].to_owned())
}

/// The peer address of a request, as the record's `sourceIPAddress`.
fn source_ip(parts: &Parts) -> String {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip().to_string())
        .unwrap_or_default()
}

/// The request's `User-Agent`, as the record's `userAgent`.
fn user_agent(parts: &Parts) -> String {
    parts
        .headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Writes the calls Strongroom's components make in process for a caller (Secrets Manager's data
/// keys, a stack's steps) to the audit trail as that caller's, invoked by the component, as
/// CloudTrail records the calls AWS services make for you.
pub struct OnBehalfTrail {
    audit: Option<AuditLog>,
}

impl OnBehalfTrail {
    /// Records into `audit`; `None` when the trail is switched off.
    pub fn new(audit: Option<AuditLog>) -> OnBehalfTrail {
        OnBehalfTrail { audit }
    }
}

#[async_trait::async_trait]
impl strongroom_service::on_behalf::OnBehalfCalls for OnBehalfTrail {
    async fn record(&self, call: strongroom_service::on_behalf::OnBehalfCall) {
        let Some(audit) = &self.audit else {
            return;
        };
        let event = on_behalf_event(call);
        if let Err(error) = audit.record(vec![event]).await {
            tracing::error!("failed to record a call made on a caller's behalf: {error}");
        }
    }
}

/// The CloudTrail record of a call made in process for a caller.
fn on_behalf_event(call: strongroom_service::on_behalf::OnBehalfCall) -> Event {
    use strongroom_service::on_behalf::CallParameter;

    let mut user_identity = identity_of(&call.caller);
    user_identity.invoked_by = Some(call.invoked_by.clone());
    let caller_account = call.caller.account().as_str().to_owned();
    let mut parameters = Map::new();
    for (name, value) in call.parameters {
        let value = match value {
            CallParameter::Text(text) => Value::String(text),
            CallParameter::Number(number) => Value::from(number),
            CallParameter::Context(context) => Value::Object(
                context
                    .pairs()
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect(),
            ),
            CallParameter::List(items) => {
                Value::Array(items.into_iter().map(Value::String).collect())
            }
        };
        parameters.insert(name.to_owned(), value);
    }
    let resources: Vec<Resource> = call
        .resources
        .iter()
        .map(|arn| match crate::cloudhsm::audit_resource(arn) {
            Some(resource) => resource,
            None => {
                // arn:aws:kms:REGION:ACCOUNT:key/ID
                let account = arn.split(':').nth(4).unwrap_or(&caller_account).to_owned();
                Resource::kms_key(arn, &account)
            }
        })
        .collect();
    let recipient_account_id = resources
        .first()
        .map(|resource| resource.account_id.clone())
        .unwrap_or_else(|| caller_account.clone());
    let (error_code, error_message) = match call.error {
        Some((code, message)) => (Some(code.to_owned()), Some(message)),
        None => (None, None),
    };
    ApiCall {
        user_identity,
        event_time: OffsetDateTime::now_utc(),
        event_source: call.event_source.to_owned(),
        event_name: call.operation.to_owned(),
        aws_region: call.caller.namespace.region.as_str().to_owned(),
        // CloudTrail names the service, not an address, for calls a service makes for you.
        source_ip: call.invoked_by.clone(),
        user_agent: call.invoked_by,
        request_id: None,
        request_parameters: Value::Object(parameters),
        response_elements: Value::Null,
        error_code,
        error_message,
        read_only: kms_read_only(call.operation),
        resources,
        recipient_account_id,
        additional_event_data: None,
        tls_details: None,
    }
    .into_event()
}
