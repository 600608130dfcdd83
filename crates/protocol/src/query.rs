//! The AWS Query protocol, as IAM and STS speak it: form-encoded `Action=…&Version=…` requests and XML
//! responses.
//!
//! The SigV4 signing name (`iam` or `sts`) decides which service a request is for. The caller is
//! authenticated like a KMS caller, then resolved to the IAM principal behind its access key (keys IAM
//! does not hold, the administrator's and `--dev` keys, are account roots). Each `Action` is parsed into
//! the arguments of one [`Identities`] method and its result rendered as the models' XML.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode};
use strongroom_iam::policies::{
    AttachedPolicy, NewPolicy, POLICY_VERSION, PolicyInfo, PolicyScope,
};
use strongroom_iam::roles::NewRole;
use strongroom_iam::sts::{AssumeRoleRequest, TemporaryCredentials};
use strongroom_iam::{
    AccessKeyInfo, IamError, Identities, NewAccessKey, Page, ResolvedPrincipal, iso8601,
};
use strongroom_types::{AccessKeyStatus, Role, Tag, User};

use crate::auth::Authenticator;
use crate::error::ProtocolError;

const IAM_NAMESPACE: &str = "https://iam.amazonaws.com/doc/2010-05-08/";
const STS_NAMESPACE: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

/// Whether a request is a Query-protocol request: its body is a form.
pub(crate) fn is_query(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value.split(';').next().is_some_and(|essence| {
                essence
                    .trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        })
}

/// The two services the Query protocol serves here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    Iam,
    Sts,
}

impl Service {
    fn namespace(self) -> &'static str {
        match self {
            Service::Iam => IAM_NAMESPACE,
            Service::Sts => STS_NAMESPACE,
        }
    }
}

/// A Query request's failure: an IAM or STS error, or one found at the edge.
enum QueryError {
    Iam(IamError),
    Edge(ProtocolError),
    /// `Action` names no operation this server implements (`InvalidAction`).
    InvalidAction(String),
    /// A parameter is missing (`MissingParameter`) or not of its type (`ValidationError`).
    Parameter(&'static str, String),
}

impl From<IamError> for QueryError {
    fn from(error: IamError) -> QueryError {
        QueryError::Iam(error)
    }
}

impl From<ProtocolError> for QueryError {
    fn from(error: ProtocolError) -> QueryError {
        QueryError::Edge(error)
    }
}

impl QueryError {
    /// The error code, HTTP status and message, in the Query protocol's vocabulary.
    fn wire(&self) -> (&'static str, StatusCode, String) {
        let bad = StatusCode::BAD_REQUEST;
        let forbidden = StatusCode::FORBIDDEN;
        match self {
            QueryError::Iam(IamError::Internal(_)) => (
                "ServiceFailure",
                StatusCode::INTERNAL_SERVER_ERROR,
                "The request failed because of an internal error in Strongroom; it has been logged. Try again."
                    .to_owned(),
            ),
            QueryError::Iam(error) => (
                error.code(),
                StatusCode::from_u16(error.http_status()).unwrap_or(bad),
                error.to_string(),
            ),
            QueryError::InvalidAction(message) => ("InvalidAction", bad, message.clone()),
            QueryError::Parameter(code, message) => (code, bad, message.clone()),
            QueryError::Edge(error) => match error {
                ProtocolError::MissingAuthenticationToken => (
                    "MissingAuthenticationToken",
                    forbidden,
                    "Request is missing Authentication Token".to_owned(),
                ),
                ProtocolError::IncompleteSignature(message) => {
                    ("IncompleteSignature", bad, message.clone())
                }
                ProtocolError::InvalidSignature(message) => {
                    ("SignatureDoesNotMatch", forbidden, message.clone())
                }
                ProtocolError::UnrecognizedClient => (
                    "InvalidClientTokenId",
                    forbidden,
                    "The security token included in the request is invalid.".to_owned(),
                ),
                ProtocolError::ExpiredToken => (
                    "ExpiredToken",
                    forbidden,
                    "The security token included in the request is expired".to_owned(),
                ),
                ProtocolError::Serialization(message) | ProtocolError::Validation(message) => {
                    ("MalformedQueryString", bad, message.clone())
                }
                ProtocolError::UnknownOperation(message) | ProtocolError::Unsupported(message) => {
                    ("InvalidAction", bad, message.clone())
                }
                ProtocolError::CloudTrail(code, message) => (code, bad, message.clone()),
                ProtocolError::CloudHsm(error) => ("ServiceFailure", bad, error.to_string()),
                ProtocolError::Secrets(error) => ("ServiceFailure", bad, error.to_string()),
                ProtocolError::Service(error) => ("ServiceFailure", bad, error.to_string()),
            },
        }
    }
}

/// Serves one Query-protocol request and renders its XML response.
pub(crate) async fn serve(
    identities: Option<&Arc<Identities>>,
    auth: &Authenticator,
    parts: &Parts,
    body: &[u8],
    request_id: &str,
) -> Response {
    let mut service = Service::Iam;
    let result = answer(identities, auth, parts, body, request_id, &mut service).await;
    match result {
        Ok(xml) => xml_response(StatusCode::OK, xml, request_id),
        Err(error) => {
            let (code, status, message) = error.wire();
            if let QueryError::Iam(IamError::Internal(source)) = &error {
                tracing::error!(%request_id, "failed to serve IAM request: {source:#}");
            } else {
                tracing::debug!(code, "IAM request refused");
            }
            let kind = if status.is_server_error() {
                "Receiver"
            } else {
                "Sender"
            };
            let mut xml = String::new();
            let _ = write!(
                xml,
                "<ErrorResponse xmlns=\"{}\"><Error><Type>{kind}</Type><Code>{code}</Code><Message>{}</Message></Error>\
                 <RequestId>{}</RequestId></ErrorResponse>",
                service.namespace(),
                escape(&message),
                escape(request_id)
            );
            xml_response(status, xml, request_id)
        }
    }
}

async fn answer(
    identities: Option<&Arc<Identities>>,
    auth: &Authenticator,
    parts: &Parts,
    body: &[u8],
    request_id: &str,
    service: &mut Service,
) -> Result<String, QueryError> {
    let params = Params::parse(body)?;
    let parsed =
        strongroom_sigv4::parse_authorization(&parts.headers).map_err(ProtocolError::from)?;
    *service = match parsed.service {
        "iam" => Service::Iam,
        "sts" => Service::Sts,
        other => {
            return Err(ProtocolError::InvalidSignature(format!(
                "Credential should be scoped to correct service: 'iam' or 'sts', not '{other}'."
            ))
            .into());
        }
    };
    let caller = auth.authenticate(parts, body, parsed.service)?;
    let Some(identities) = identities else {
        return Err(QueryError::InvalidAction(
            "IAM and STS are not enabled on this server.".to_owned(),
        ));
    };
    let principal = match identities.principal(&caller.access_key_id) {
        Some(principal) => principal,
        None if caller.arn.ends_with(":root") => {
            Arc::new(ResolvedPrincipal::root(caller.namespace.account.clone()))
        }
        None => return Err(ProtocolError::UnrecognizedClient.into()),
    };
    let action = params.required("Action")?;
    let mut out = Xml::new();
    let has_result = match *service {
        Service::Iam => iam(identities, &principal, action, &params, &mut out).await?,
        Service::Sts => sts(identities, &principal, action, &params, &mut out).await?,
    };
    let mut xml = String::new();
    let _ = write!(xml, "<{action}Response xmlns=\"{}\">", service.namespace());
    if has_result {
        let _ = write!(xml, "<{action}Result>{}</{action}Result>", out.0);
    }
    let _ = write!(
        xml,
        "<ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></{action}Response>",
        escape(request_id)
    );
    Ok(xml)
}

/// Runs one IAM action; returns whether the response has a result element.
async fn iam(
    ids: &Identities,
    caller: &ResolvedPrincipal,
    action: &str,
    p: &Params,
    out: &mut Xml,
) -> Result<bool, QueryError> {
    match action {
        "CreateUser" => {
            let user = ids
                .create_user(
                    caller,
                    p.required("UserName")?,
                    p.optional("Path"),
                    p.tags("Tags"),
                )
                .await?;
            out.wrap("User", |out| render_user(out, &user));
        }
        "GetUser" => {
            let user = ids.get_user(caller, p.optional("UserName"))?;
            out.wrap("User", |out| render_user(out, &user));
        }
        "ListUsers" => {
            let page = ids.list_users(
                caller,
                p.optional("PathPrefix"),
                p.optional("Marker"),
                p.integer("MaxItems")?,
            )?;
            render_page(out, "Users", &page, render_user);
        }
        "DeleteUser" => {
            ids.delete_user(caller, p.required("UserName")?).await?;
            return Ok(false);
        }
        "TagUser" => {
            ids.tag_user(caller, p.required("UserName")?, &p.tags("Tags"))
                .await?;
            return Ok(false);
        }
        "UntagUser" => {
            ids.untag_user(caller, p.required("UserName")?, &p.list("TagKeys"))
                .await?;
            return Ok(false);
        }
        "ListUserTags" => {
            let tags = ids.list_user_tags(caller, p.required("UserName")?)?;
            render_tags(out, &tags, true);
            out.field("IsTruncated", "false");
        }
        "CreateAccessKey" => {
            let key = ids
                .create_access_key(caller, p.optional("UserName"))
                .await?;
            out.wrap("AccessKey", |out| render_new_key(out, &key, caller));
        }
        "ListAccessKeys" => {
            let page = ids.list_access_keys(
                caller,
                p.optional("UserName"),
                p.optional("Marker"),
                p.integer("MaxItems")?,
            )?;
            render_page(out, "AccessKeyMetadata", &page, |out, key| {
                render_key_info(out, key, caller);
            });
        }
        "UpdateAccessKey" => {
            let status = match p.required("Status")? {
                "Active" => AccessKeyStatus::Active,
                "Inactive" => AccessKeyStatus::Inactive,
                other => {
                    return Err(QueryError::Parameter(
                        "ValidationError",
                        format!(
                            "1 validation error detected: Value '{other}' at 'status' failed to satisfy \
                             constraint: Member must satisfy enum value set: [Active, Inactive]"
                        ),
                    ));
                }
            };
            ids.update_access_key(
                caller,
                p.optional("UserName"),
                p.required("AccessKeyId")?,
                status,
            )
            .await?;
            return Ok(false);
        }
        "DeleteAccessKey" => {
            ids.delete_access_key(caller, p.optional("UserName"), p.required("AccessKeyId")?)
                .await?;
            return Ok(false);
        }
        "PutUserPolicy" => {
            ids.put_user_policy(
                caller,
                p.required("UserName")?,
                p.required("PolicyName")?,
                p.required("PolicyDocument")?,
            )
            .await?;
            return Ok(false);
        }
        "GetUserPolicy" => {
            let user = p.required("UserName")?;
            let name = p.required("PolicyName")?;
            let document = ids.get_user_policy(caller, user, name)?;
            out.field("UserName", user);
            out.field("PolicyName", name);
            out.field("PolicyDocument", &url_encode(&document));
        }
        "DeleteUserPolicy" => {
            ids.delete_user_policy(caller, p.required("UserName")?, p.required("PolicyName")?)
                .await?;
            return Ok(false);
        }
        "ListUserPolicies" => {
            let page = ids.list_user_policies(
                caller,
                p.required("UserName")?,
                p.optional("Marker"),
                p.integer("MaxItems")?,
            )?;
            render_page(out, "PolicyNames", &page, |out, name| out.text(name));
        }
        "CreateRole" => {
            let role = ids
                .create_role(
                    caller,
                    NewRole {
                        name: p.required("RoleName")?.to_owned(),
                        path: p.optional("Path").map(str::to_owned),
                        trust_policy: p.required("AssumeRolePolicyDocument")?.to_owned(),
                        description: p.optional("Description").map(str::to_owned),
                        max_session_duration: p.integer("MaxSessionDuration")?,
                        tags: p.tags("Tags"),
                    },
                )
                .await?;
            out.wrap("Role", |out| render_role(out, &role));
        }
        "GetRole" => {
            let role = ids.get_role(caller, p.required("RoleName")?)?;
            out.wrap("Role", |out| render_role(out, &role));
        }
        "ListRoles" => {
            let page = ids.list_roles(
                caller,
                p.optional("PathPrefix"),
                p.optional("Marker"),
                p.integer("MaxItems")?,
            )?;
            render_page(out, "Roles", &page, render_role);
        }
        "DeleteRole" => {
            ids.delete_role(caller, p.required("RoleName")?).await?;
            return Ok(false);
        }
        "UpdateAssumeRolePolicy" => {
            ids.update_assume_role_policy(
                caller,
                p.required("RoleName")?,
                p.required("PolicyDocument")?,
            )
            .await?;
            return Ok(false);
        }
        "TagRole" => {
            ids.tag_role(caller, p.required("RoleName")?, &p.tags("Tags"))
                .await?;
            return Ok(false);
        }
        "UntagRole" => {
            ids.untag_role(caller, p.required("RoleName")?, &p.list("TagKeys"))
                .await?;
            return Ok(false);
        }
        "ListRoleTags" => {
            let tags = ids.list_role_tags(caller, p.required("RoleName")?)?;
            render_tags(out, &tags, true);
            out.field("IsTruncated", "false");
        }
        "PutRolePolicy" => {
            ids.put_role_policy(
                caller,
                p.required("RoleName")?,
                p.required("PolicyName")?,
                p.required("PolicyDocument")?,
            )
            .await?;
            return Ok(false);
        }
        "GetRolePolicy" => {
            let role = p.required("RoleName")?;
            let name = p.required("PolicyName")?;
            let document = ids.get_role_policy(caller, role, name)?;
            out.field("RoleName", role);
            out.field("PolicyName", name);
            out.field("PolicyDocument", &url_encode(&document));
        }
        "DeleteRolePolicy" => {
            ids.delete_role_policy(caller, p.required("RoleName")?, p.required("PolicyName")?)
                .await?;
            return Ok(false);
        }
        "ListRolePolicies" => {
            let page = ids.list_role_policies(
                caller,
                p.required("RoleName")?,
                p.optional("Marker"),
                p.integer("MaxItems")?,
            )?;
            render_page(out, "PolicyNames", &page, |out, name| out.text(name));
        }
        "CreatePolicy" => {
            let info = ids
                .create_policy(
                    caller,
                    NewPolicy {
                        name: p.required("PolicyName")?.to_owned(),
                        path: p.optional("Path").map(str::to_owned),
                        document: p.required("PolicyDocument")?.to_owned(),
                        description: p.optional("Description").map(str::to_owned),
                        tags: p.tags("Tags"),
                    },
                )
                .await?;
            out.wrap("Policy", |out| render_policy(out, &info));
        }
        "GetPolicy" => {
            let info = ids.get_policy(caller, p.required("PolicyArn")?)?;
            out.wrap("Policy", |out| render_policy(out, &info));
        }
        "GetPolicyVersion" => {
            let (document, created) =
                ids.get_policy_version(caller, p.required("PolicyArn")?, p.required("VersionId")?)?;
            out.wrap("PolicyVersion", |out| {
                out.field("Document", &url_encode(&document));
                out.field("VersionId", POLICY_VERSION);
                out.field("IsDefaultVersion", "true");
                out.field("CreateDate", &iso8601(created));
            });
        }
        "ListPolicies" => {
            let scope = match p.optional("Scope") {
                None | Some("All") => PolicyScope::All,
                Some("Local") => PolicyScope::Local,
                Some("AWS") => PolicyScope::Aws,
                Some(other) => {
                    return Err(QueryError::Parameter(
                        "ValidationError",
                        format!(
                            "1 validation error detected: Value '{other}' at 'scope' failed to satisfy \
                             constraint: Member must satisfy enum value set: [All, AWS, Local]"
                        ),
                    ));
                }
            };
            let page = ids.list_policies(
                caller,
                scope,
                p.boolean("OnlyAttached")?,
                p.optional("PathPrefix"),
                p.optional("Marker"),
                p.integer("MaxItems")?,
            )?;
            render_page(out, "Policies", &page, render_policy);
        }
        "DeletePolicy" => {
            ids.delete_policy(caller, p.required("PolicyArn")?).await?;
            return Ok(false);
        }
        "AttachUserPolicy" => {
            ids.attach_user_policy(caller, p.required("UserName")?, p.required("PolicyArn")?)
                .await?;
            return Ok(false);
        }
        "DetachUserPolicy" => {
            ids.detach_user_policy(caller, p.required("UserName")?, p.required("PolicyArn")?)
                .await?;
            return Ok(false);
        }
        "AttachRolePolicy" => {
            ids.attach_role_policy(caller, p.required("RoleName")?, p.required("PolicyArn")?)
                .await?;
            return Ok(false);
        }
        "DetachRolePolicy" => {
            ids.detach_role_policy(caller, p.required("RoleName")?, p.required("PolicyArn")?)
                .await?;
            return Ok(false);
        }
        "ListAttachedUserPolicies" => {
            let page = ids.list_attached_user_policies(
                caller,
                p.required("UserName")?,
                p.optional("PathPrefix"),
                p.optional("Marker"),
                p.integer("MaxItems")?,
            )?;
            render_page(out, "AttachedPolicies", &page, render_attached);
        }
        "ListAttachedRolePolicies" => {
            let page = ids.list_attached_role_policies(
                caller,
                p.required("RoleName")?,
                p.optional("PathPrefix"),
                p.optional("Marker"),
                p.integer("MaxItems")?,
            )?;
            render_page(out, "AttachedPolicies", &page, render_attached);
        }
        other => {
            return Err(QueryError::InvalidAction(format!(
                "Could not find operation {other} for version 2010-05-08"
            )));
        }
    }
    Ok(true)
}

/// Runs one STS action; every STS action has a result element.
async fn sts(
    ids: &Identities,
    caller: &ResolvedPrincipal,
    action: &str,
    p: &Params,
    out: &mut Xml,
) -> Result<bool, QueryError> {
    match action {
        "GetCallerIdentity" => {
            let identity = ids.get_caller_identity(caller);
            out.field("Arn", &identity.arn);
            out.field("UserId", &identity.user_id);
            out.field("Account", identity.account.as_str());
        }
        "AssumeRole" => {
            let credentials = ids
                .assume_role(
                    caller,
                    AssumeRoleRequest {
                        role_arn: p.required("RoleArn")?.to_owned(),
                        session_name: p.required("RoleSessionName")?.to_owned(),
                        duration_seconds: p.integer("DurationSeconds")?,
                        policy: p.optional("Policy").map(str::to_owned),
                        policy_arns: p.list_of("PolicyArns", "arn"),
                        tags: p.tags("Tags"),
                        external_id: p.optional("ExternalId").map(str::to_owned),
                        source_identity: p.optional("SourceIdentity").map(str::to_owned),
                    },
                )
                .await?;
            render_credentials(out, &credentials);
            if let Some((id, arn)) = &credentials.assumed_role_user {
                out.wrap("AssumedRoleUser", |out| {
                    out.field("AssumedRoleId", id);
                    out.field("Arn", arn);
                });
            }
            if let Some(size) = credentials.packed_policy_size {
                out.field("PackedPolicySize", &size.to_string());
            }
        }
        "GetSessionToken" => {
            let credentials = ids
                .get_session_token(caller, p.integer("DurationSeconds")?)
                .await?;
            render_credentials(out, &credentials);
        }
        other => {
            return Err(QueryError::InvalidAction(format!(
                "Could not find operation {other} for version 2011-06-15"
            )));
        }
    }
    Ok(true)
}

fn render_user(out: &mut Xml, user: &User) {
    out.field("Path", &user.path);
    out.field("UserName", &user.name);
    out.field("UserId", &user.user_id);
    out.field("Arn", &user.arn());
    out.field("CreateDate", &iso8601(user.created));
    render_tags(out, &user.tags, false);
}

fn render_role(out: &mut Xml, role: &Role) {
    out.field("Path", &role.path);
    out.field("RoleName", &role.name);
    out.field("RoleId", &role.role_id);
    out.field("Arn", &role.arn());
    out.field("CreateDate", &iso8601(role.created));
    out.field("AssumeRolePolicyDocument", &url_encode(&role.trust_policy));
    if !role.description.is_empty() {
        out.field("Description", &role.description);
    }
    out.field("MaxSessionDuration", &role.max_session_duration.to_string());
    render_tags(out, &role.tags, false);
}

fn render_policy(out: &mut Xml, info: &PolicyInfo) {
    let policy = &info.policy;
    out.field("PolicyName", &policy.name);
    out.field("PolicyId", &policy.policy_id);
    out.field("Arn", &policy.arn());
    out.field("Path", &policy.path);
    out.field("DefaultVersionId", POLICY_VERSION);
    out.field("AttachmentCount", &info.attachment_count.to_string());
    out.field("PermissionsBoundaryUsageCount", "0");
    out.field("IsAttachable", "true");
    if !policy.description.is_empty() {
        out.field("Description", &policy.description);
    }
    out.field("CreateDate", &iso8601(policy.created));
    out.field("UpdateDate", &iso8601(policy.created));
    render_tags(out, &policy.tags, false);
}

fn render_attached(out: &mut Xml, policy: &AttachedPolicy) {
    out.field("PolicyName", &policy.name);
    out.field("PolicyArn", &policy.arn);
}

/// The user name a key response shows: the key's user, or for a root's key the caller's account id (the
/// model requires a name, and AWS shows the root's).
fn key_user_name<'a>(info: &'a AccessKeyInfo, caller: &'a ResolvedPrincipal) -> &'a str {
    info.user_name
        .as_deref()
        .unwrap_or_else(|| caller.account.as_str())
}

fn render_new_key(out: &mut Xml, key: &NewAccessKey, caller: &ResolvedPrincipal) {
    out.field("UserName", key_user_name(&key.info, caller));
    out.field("AccessKeyId", &key.info.access_key_id);
    out.field("Status", key.info.status.as_str());
    out.field("SecretAccessKey", &key.secret);
    out.field("CreateDate", &iso8601(key.info.created));
}

fn render_key_info(out: &mut Xml, key: &AccessKeyInfo, caller: &ResolvedPrincipal) {
    out.field("UserName", key_user_name(key, caller));
    out.field("AccessKeyId", &key.access_key_id);
    out.field("Status", key.status.as_str());
    out.field("CreateDate", &iso8601(key.created));
}

fn render_credentials(out: &mut Xml, credentials: &TemporaryCredentials) {
    out.wrap("Credentials", |out| {
        out.field("AccessKeyId", &credentials.access_key_id);
        out.field("SecretAccessKey", &credentials.secret);
        out.field("SessionToken", &credentials.session_token);
        out.field("Expiration", &iso8601(credentials.expiration));
    });
}

/// Tags as `<Tags><member>…</member></Tags>`; omitted when empty unless `always` (the tag lists require
/// them).
fn render_tags(out: &mut Xml, tags: &[Tag], always: bool) {
    if tags.is_empty() && !always {
        return;
    }
    out.wrap("Tags", |out| {
        for tag in tags {
            out.wrap("member", |out| {
                out.field("Key", &tag.key);
                out.field("Value", &tag.value);
            });
        }
    });
}

/// A list page: the members under `name`, then `IsTruncated` and the `Marker` for the next page.
fn render_page<T>(out: &mut Xml, name: &str, page: &Page<T>, mut item: impl FnMut(&mut Xml, &T)) {
    out.wrap(name, |out| {
        for member in &page.items {
            out.wrap("member", |out| item(out, member));
        }
    });
    out.field(
        "IsTruncated",
        if page.marker.is_some() {
            "true"
        } else {
            "false"
        },
    );
    if let Some(marker) = &page.marker {
        out.field("Marker", marker);
    }
}

/// An XML document under construction; text is always escaped.
struct Xml(String);

impl Xml {
    fn new() -> Xml {
        Xml(String::new())
    }

    fn field(&mut self, name: &str, value: &str) {
        let _ = write!(self.0, "<{name}>{}</{name}>", escape(value));
    }

    fn text(&mut self, value: &str) {
        self.0.push_str(&escape(value));
    }

    fn wrap(&mut self, name: &str, inner: impl FnOnce(&mut Xml)) {
        let _ = write!(self.0, "<{name}>");
        inner(self);
        let _ = write!(self.0, "</{name}>");
    }
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a policy document the way IAM returns documents (RFC 3986), which the AWS CLI decodes.
fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(byte));
            }
            _ => {
                let _ = write!(out, "%{byte:02X}");
            }
        }
    }
    out
}

fn xml_response(status: StatusCode, body: String, request_id: &str) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/xml"),
    );
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert(crate::REQUEST_ID_HEADER, value);
    }
    response
}

/// The decoded parameters of a form body, in order.
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(body: &[u8]) -> Result<Params, QueryError> {
        let mut params = Vec::new();
        for pair in body.split(|&b| b == b'&') {
            if pair.is_empty() {
                continue;
            }
            let (name, value) = match pair.iter().position(|&b| b == b'=') {
                Some(at) => (&pair[..at], &pair[at + 1..]),
                None => (pair, &[][..]),
            };
            params.push((form_decode(name)?, form_decode(value)?));
        }
        Ok(Params(params))
    }

    fn optional(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    fn required(&self, name: &'static str) -> Result<&str, QueryError> {
        self.optional(name).ok_or_else(|| {
            QueryError::Parameter(
                "MissingParameter",
                format!("The request must contain the parameter {name}"),
            )
        })
    }

    fn integer(&self, name: &str) -> Result<Option<i64>, QueryError> {
        match self.optional(name) {
            None => Ok(None),
            Some(text) => match text.parse() {
                Ok(value) => Ok(Some(value)),
                Err(_) => Err(QueryError::Parameter(
                    "ValidationError",
                    format!("Value '{text}' for parameter {name} is not an integer."),
                )),
            },
        }
    }

    fn boolean(&self, name: &str) -> Result<bool, QueryError> {
        match self.optional(name) {
            None => Ok(false),
            Some(text) if text.eq_ignore_ascii_case("true") => Ok(true),
            Some(text) if text.eq_ignore_ascii_case("false") => Ok(false),
            Some(text) => Err(QueryError::Parameter(
                "ValidationError",
                format!("Value '{text}' for parameter {name} is not a boolean."),
            )),
        }
    }

    /// A list of strings: `NAME.member.1`, `NAME.member.2`, … in index order.
    fn list(&self, name: &str) -> Vec<String> {
        self.members(name, None)
    }

    /// A list of one field of structures: `NAME.member.N.FIELD`.
    fn list_of(&self, name: &str, field: &str) -> Vec<String> {
        self.members(name, Some(field))
    }

    fn members(&self, name: &str, field: Option<&str>) -> Vec<String> {
        let prefix = format!("{name}.member.");
        let mut found: Vec<(u32, String)> = self
            .0
            .iter()
            .filter_map(|(key, value)| {
                let rest = key.strip_prefix(&prefix)?;
                let index = match field {
                    None => rest,
                    Some(field) => rest.strip_suffix(field)?.strip_suffix('.')?,
                };
                Some((index.parse().ok()?, value.clone()))
            })
            .collect();
        found.sort_by_key(|(index, _)| *index);
        found.into_iter().map(|(_, value)| value).collect()
    }

    /// Tags: `NAME.member.N.Key` and `NAME.member.N.Value`; a tag without a value has an empty one.
    fn tags(&self, name: &str) -> Vec<Tag> {
        let prefix = format!("{name}.member.");
        let mut found: Vec<(u32, Tag)> = Vec::new();
        for (key, value) in &self.0 {
            let Some(rest) = key.strip_prefix(&prefix) else {
                continue;
            };
            let Some((index, field)) = rest.split_once('.') else {
                continue;
            };
            let Ok(index) = index.parse::<u32>() else {
                continue;
            };
            let at = match found.iter().position(|(n, _)| *n == index) {
                Some(at) => at,
                None => {
                    found.push((
                        index,
                        Tag {
                            key: String::new(),
                            value: String::new(),
                        },
                    ));
                    found.len() - 1
                }
            };
            match field {
                "Key" => found[at].1.key = value.clone(),
                "Value" => found[at].1.value = value.clone(),
                _ => {}
            }
        }
        found.sort_by_key(|(index, _)| *index);
        found.into_iter().map(|(_, tag)| tag).collect()
    }
}

/// Decodes one `application/x-www-form-urlencoded` component: `+` is a space, `%XX` a byte.
fn form_decode(raw: &[u8]) -> Result<String, QueryError> {
    let mut bytes = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'+' => bytes.push(b' '),
            b'%' => {
                let hex = raw
                    .get(i + 1..i + 3)
                    .and_then(|hex| std::str::from_utf8(hex).ok())
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok());
                match hex {
                    Some(byte) => bytes.push(byte),
                    None => {
                        return Err(QueryError::Parameter(
                            "MalformedQueryString",
                            "The request body has a malformed percent-escape.".to_owned(),
                        ));
                    }
                }
                i += 2;
            }
            byte => bytes.push(byte),
        }
        i += 1;
    }
    String::from_utf8(bytes).map_err(|_| {
        QueryError::Parameter(
            "MalformedQueryString",
            "The request body is not UTF-8.".to_owned(),
        )
    })
}

#[cfg(test)]
mod tests;
