//! The CloudHSM v2 API (`X-Amz-Target: BaldrApiService.<Operation>`, AWS JSON 1.1, SigV4 signing name
//! `cloudhsm`): one dispatch table from operation to the control plane, and the rendering of its
//! answers in the model's shapes.
//!
//! Only AWS JSON 1.1 is served. The model also lists Smithy RPC v2 CBOR, which recent boto3 releases
//! prefer; the AWS SDK for Rust and the AWS CLI v1 use JSON 1.1.
//!
//! Strongroom's own `StrongroomHsmAdmin.<Operation>` targets carry the work of the `strongroom hsm`
//! commands (CloudHSM's `cluster activate` and user management, which AWS does outside its API), in the
//! same protocol and under the same signing name; they are authorized by HSM passwords in the body,
//! which are never logged or echoed.
//!
//! Every request is also authorized by the caller's IAM identity policies, as AWS authorizes CloudHSM:
//! action `cloudhsm:<Operation>` on the cluster's or the backup's ARN
//! (`arn:aws:cloudhsm:<region>:<account>:cluster/<id>`, `…:backup/<id>`), or on `*` for CreateCluster,
//! DescribeClusters and DescribeBackups. The administration operations are `cloudhsm:ActivateCluster`,
//! `cloudhsm:CreateCryptoUser`, `cloudhsm:ChangeCryptoUserPassword`, `cloudhsm:ListUsers` and
//! `cloudhsm:SynchronizeHsms` on the cluster's ARN. Account roots may do everything in their account.

use std::sync::Arc;

use axum::response::Response;
use http::request::Parts;
use serde_json::{Map, Value, json};
use strongroom_audit::Resource;
use strongroom_cloudhsm::{
    BackupRecord, Cluster, ClusterFilters, ClusterMode, ClusterState, ControlPlane,
    CreateClusterRequest, HsmRecord, HsmSelector, PasswordAuthority, Pin, VPC_ID,
};
use strongroom_service::Kms;
use strongroom_types::{Namespace, Tag};

use crate::auth::Authenticator;
use crate::error::{ProtocolError, error_response};
use crate::trail::TrailResources;
use crate::validate::Model;
use crate::wire::{Fields, timestamp};
use crate::{json_response, parse_body};

/// The prefix of CloudHSM v2 targets.
const TARGET_PREFIX: &str = "BaldrApiService.";
/// The prefix of Strongroom's HSM administration targets, used by `strongroom hsm`.
pub(crate) const ADMIN_TARGET_PREFIX: &str = "StrongroomHsmAdmin.";

/// The control plane and the model its requests are validated against.
pub(crate) struct CloudHsmApi {
    plane: Arc<ControlPlane>,
    model: Model,
}

impl CloudHsmApi {
    pub(crate) fn new(plane: Arc<ControlPlane>) -> CloudHsmApi {
        CloudHsmApi {
            plane,
            model: Model::cloudhsm(),
        }
    }
}

/// Whether a request is for the CloudHSM v2 API.
pub(crate) fn is_cloudhsm(headers: &http::HeaderMap) -> bool {
    headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|target| {
            target.starts_with(TARGET_PREFIX) || target.starts_with(ADMIN_TARGET_PREFIX)
        })
}

/// Serves one CloudHSM v2 request and renders its response or error; `kms` decides the caller's
/// identity policies.
pub(crate) async fn serve(
    api: Option<&CloudHsmApi>,
    kms: &Kms,
    auth: &Authenticator,
    parts: &Parts,
    body: &[u8],
    request_id: &str,
) -> Response {
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    // Administration operations are told apart by their prefix, kept in the name for logs.
    let operation = match target.strip_prefix(TARGET_PREFIX) {
        Some(operation) => operation.to_owned(),
        None => target.to_owned(),
    };
    let mut namespace = None;
    let result = serve_result(api, kms, auth, parts, body, &operation, &mut namespace).await;
    // Once the caller is known, the record names what the request acted on, even when it failed.
    let resources = match &namespace {
        Some(namespace) => audit_resources(namespace, body, result.as_ref().ok()),
        None => Vec::new(),
    };
    let mut response = match result {
        Ok(value) => json_response(&value, request_id),
        Err(error) => {
            match &error {
                ProtocolError::CloudHsm(strongroom_cloudhsm::Error::Internal(source)) => {
                    tracing::error!(%request_id, %operation, "failed to serve CloudHSM request: {source:#}");
                }
                ProtocolError::CloudHsm(strongroom_cloudhsm::Error::Hsm(source)) => {
                    tracing::warn!(%request_id, %operation, "an HSM failed a CloudHSM request: {source:#}");
                }
                _ => tracing::debug!(code = error.wire().0, "CloudHSM request refused"),
            }
            error_response(&error, request_id)
        }
    };
    if !resources.is_empty() {
        response.extensions_mut().insert(TrailResources(resources));
    }
    response
}

/// Serves the request; `namespace_out` gets the caller's account and Region once authenticated.
async fn serve_result(
    api: Option<&CloudHsmApi>,
    kms: &Kms,
    auth: &Authenticator,
    parts: &Parts,
    body: &[u8],
    operation: &str,
    namespace_out: &mut Option<Namespace>,
) -> Result<Value, ProtocolError> {
    if parts.method != http::Method::POST {
        return Err(ProtocolError::UnknownOperation(format!(
            "{} {} is not an operation: send AWS JSON 1.1 requests with POST to /.",
            parts.method,
            parts.uri.path()
        )));
    }
    let caller = auth.authenticate(parts, body, "cloudhsm")?;
    *namespace_out = Some(caller.namespace.clone());
    let Some(api) = api else {
        return Err(ProtocolError::Unsupported(
            "This server does not serve the CloudHSM API.".to_owned(),
        ));
    };
    if let Some(admin_operation) = operation.strip_prefix(ADMIN_TARGET_PREFIX) {
        let fields = parse_body(body)?;
        let resource = resource_arn(&caller.namespace, admin_operation, &fields);
        kms.authorize_identity_action(&caller, &format!("cloudhsm:{admin_operation}"), &resource)?;
        return administer(&api.plane, &caller.namespace, admin_operation, &fields)
            .await
            .map_err(ProtocolError::CloudHsm);
    }
    if !api.model.has_operation(operation) {
        return Err(ProtocolError::UnknownOperation(format!(
            "X-Amz-Target '{TARGET_PREFIX}{operation}' does not name a CloudHSM operation."
        )));
    }
    let fields = parse_body(body)?;
    let resource = resource_arn(&caller.namespace, operation, &fields);
    kms.authorize_identity_action(&caller, &format!("cloudhsm:{operation}"), &resource)?;
    api.model.validate(operation, &fields)?;
    dispatch(&api.plane, &caller.namespace, operation, &fields)
        .await
        .map_err(ProtocolError::CloudHsm)
}

/// The resource a request acts on, as IAM policies name it: the ARN of the cluster or backup it names,
/// or `*` for operations on none (CreateCluster, DescribeClusters, DescribeBackups).
fn resource_arn(namespace: &Namespace, operation: &str, body: &Map<String, Value>) -> String {
    let arn = |kind: &str, id: &str| {
        format!(
            "arn:aws:cloudhsm:{}:{}:{kind}/{id}",
            namespace.region.as_str(),
            namespace.account.as_str()
        )
    };
    let field = |name: &str| body.get(name).and_then(Value::as_str);
    match operation {
        "CreateCluster" | "DescribeClusters" | "DescribeBackups" => "*".to_owned(),
        "TagResource" | "UntagResource" | "ListTags" => match field("ResourceId") {
            Some(id) if id.starts_with("backup-") => arn("backup", id),
            Some(id) => arn("cluster", id),
            None => "*".to_owned(),
        },
        "GetResourcePolicy" | "PutResourcePolicy" | "DeleteResourcePolicy" => {
            field("ResourceArn").unwrap_or("*").to_owned()
        }
        _ => match (field("ClusterId"), field("BackupId")) {
            (Some(id), _) => arn("cluster", id),
            (None, Some(id)) => arn("backup", id),
            (None, None) => "*".to_owned(),
        },
    }
}

/// The CloudTrail resource types of CloudHSM's resources, by the kind in their ARNs.
const RESOURCE_TYPES: [(&str, &str); 3] = [
    ("cluster", "AWS::CloudHSM::Cluster"),
    ("hsm", "AWS::CloudHSM::Hsm"),
    ("backup", "AWS::CloudHSM::Backup"),
];

/// The audit record's resource for a CloudHSM ARN (`arn:aws:cloudhsm:REGION:ACCOUNT:cluster/ID`,
/// `…:hsm/ID`, `…:backup/ID`); `None` for other ARNs. As for KMS keys, LookupEvents finds the record
/// by the ARN (`ResourceName`) and the type (`ResourceType`).
pub(crate) fn audit_resource(arn: &str) -> Option<Resource> {
    let fields: Vec<&str> = arn.splitn(6, ':').collect();
    let ["arn", _, "cloudhsm", _, account, resource] = fields.as_slice() else {
        return None;
    };
    let (kind, _) = resource.split_once('/')?;
    let (_, resource_type) = RESOURCE_TYPES.iter().find(|(name, _)| *name == kind)?;
    Some(Resource {
        arn: arn.to_owned(),
        account_id: (*account).to_owned(),
        resource_type: (*resource_type).to_owned(),
    })
}

/// The clusters, HSMs and backups a request acted on, for its audit record: those its body names and
/// those its answer made or names (CreateCluster's cluster, CreateHsm's HSM, a backup's cluster);
/// listings name none, as KMS's do not.
fn audit_resources(namespace: &Namespace, body: &[u8], answer: Option<&Value>) -> Vec<Resource> {
    let mut ids: Vec<String> = Vec::new();
    let mut take = |object: Option<&Value>, fields: &[&str]| {
        for field in fields {
            if let Some(id) = object.and_then(|o| o.get(*field)).and_then(Value::as_str) {
                ids.push(id.to_owned());
            }
        }
    };
    let request: Option<Value> = serde_json::from_slice(body).ok();
    take(
        request.as_ref(),
        &[
            "ClusterId",
            "HsmId",
            "BackupId",
            "SourceBackupId",
            "ResourceId",
        ],
    );
    take(answer.and_then(|a| a.get("Cluster")), &["ClusterId"]);
    take(answer.and_then(|a| a.get("Hsm")), &["ClusterId", "HsmId"]);
    take(
        answer.and_then(|a| a.get("Backup")),
        &["ClusterId", "BackupId"],
    );
    take(answer, &["HsmId"]);
    let mut resources: Vec<Resource> = ids
        .iter()
        .filter_map(|id| strongroom_cloudhsm::resource_arn(namespace, id))
        .filter_map(|arn| audit_resource(&arn))
        .collect();
    // Clusters first, then HSMs, then backups, each once.
    let rank = |resource: &Resource| {
        RESOURCE_TYPES
            .iter()
            .position(|(_, name)| *name == resource.resource_type)
    };
    resources.sort_by_key(rank);
    let mut seen: Vec<String> = Vec::new();
    resources.retain(|resource| match seen.contains(&resource.arn) {
        true => false,
        false => {
            seen.push(resource.arn.clone());
            true
        }
    });
    resources
}

/// The dispatch table: every CloudHSM v2 operation, in the model's order.
async fn dispatch(
    plane: &ControlPlane,
    namespace: &Namespace,
    operation: &str,
    body: &Map<String, Value>,
) -> Result<Value, strongroom_cloudhsm::Error> {
    let f = Fields(body);
    let response = match operation {
        "CreateCluster" => {
            let mode = match f.str("Mode") {
                None => None,
                Some(text) => Some(text.parse::<ClusterMode>().map_err(|e| {
                    strongroom_cloudhsm::Error::InvalidRequest(format!("Mode: {e}."))
                })?),
            };
            let retention = body.get("BackupRetentionPolicy").and_then(Value::as_object);
            let request = CreateClusterRequest {
                hsm_type: f.str("HsmType").unwrap_or_default().to_owned(),
                subnet_ids: f.strings("SubnetIds"),
                mode,
                backup_retention_type: retention
                    .and_then(|p| p.get("Type"))
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                backup_retention_value: retention
                    .and_then(|p| p.get("Value"))
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                source_backup_id: f.str("SourceBackupId").map(str::to_owned),
                network_type: f.str("NetworkType").map(str::to_owned),
                tags: tag_list(body, "TagList"),
            };
            let cluster = plane.create_cluster(namespace, request).await?;
            json!({ "Cluster": cluster_json(&cluster) })
        }
        "CreateHsm" => {
            let hsm = plane
                .create_hsm(
                    namespace,
                    f.str("ClusterId").unwrap_or_default(),
                    f.str("AvailabilityZone").unwrap_or_default(),
                    f.str("IpAddress"),
                )
                .await?;
            json!({ "Hsm": hsm_json(&hsm, None) })
        }
        "DeleteCluster" => {
            let cluster = plane
                .delete_cluster(namespace, f.str("ClusterId").unwrap_or_default())
                .await?;
            json!({ "Cluster": cluster_json(&cluster) })
        }
        "DeleteHsm" => {
            let selector = match (f.str("HsmId"), f.str("EniId"), f.str("EniIp")) {
                (Some(id), None, None) => HsmSelector::HsmId(id.to_owned()),
                (None, Some(id), None) => HsmSelector::EniId(id.to_owned()),
                (None, None, Some(ip)) => HsmSelector::EniIp(ip.to_owned()),
                _ => {
                    return Err(strongroom_cloudhsm::Error::InvalidRequest(
                        "Name the HSM to delete with exactly one of HsmId, EniId and EniIp."
                            .to_owned(),
                    ));
                }
            };
            let hsm_id = plane
                .delete_hsm(namespace, f.str("ClusterId").unwrap_or_default(), &selector)
                .await?;
            json!({ "HsmId": hsm_id })
        }
        "DescribeClusters" => {
            let filters = ClusterFilters::parse(&filters(body))?;
            let page = plane
                .describe_clusters(namespace, &filters, f.str("NextToken"), f.int("MaxResults"))
                .await?;
            let clusters: Vec<Value> = page.items.iter().map(cluster_json).collect();
            with_next_token(json!({ "Clusters": clusters }), page.next_token)
        }
        "InitializeCluster" => {
            let record = plane
                .initialize_cluster(
                    namespace,
                    f.str("ClusterId").unwrap_or_default(),
                    f.str("SignedCert").unwrap_or_default(),
                    f.str("TrustAnchor").unwrap_or_default(),
                )
                .await?;
            let mut out = json!({ "State": record.state.as_str() });
            if let Some(message) = &record.state_message {
                out["StateMessage"] = json!(message);
            }
            out
        }
        "ModifyCluster" => {
            let retention = body
                .get("BackupRetentionPolicy")
                .and_then(Value::as_object)
                .map(|policy| {
                    (
                        policy.get("Type").and_then(Value::as_str),
                        policy.get("Value").and_then(Value::as_str),
                    )
                });
            let cluster = plane
                .modify_cluster(
                    namespace,
                    f.str("ClusterId").unwrap_or_default(),
                    f.str("HsmType"),
                    retention,
                )
                .await?;
            json!({ "Cluster": cluster_json(&cluster) })
        }

        // Backups.
        "DescribeBackups" => {
            let sort_ascending = body
                .get("SortAscending")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            let page = plane
                .describe_backups(
                    namespace,
                    &filters(body),
                    sort_ascending,
                    f.str("NextToken"),
                    f.int("MaxResults"),
                )
                .await?;
            let backups: Vec<Value> = page.items.iter().map(backup_json).collect();
            with_next_token(json!({ "Backups": backups }), page.next_token)
        }
        "DeleteBackup" => {
            let backup = plane
                .delete_backup(namespace, f.str("BackupId").unwrap_or_default())
                .await?;
            json!({ "Backup": backup_json(&backup) })
        }
        "RestoreBackup" => {
            let backup = plane
                .restore_backup(namespace, f.str("BackupId").unwrap_or_default())
                .await?;
            json!({ "Backup": backup_json(&backup) })
        }
        "ModifyBackupAttributes" => {
            let backup = plane
                .modify_backup_attributes(
                    namespace,
                    f.str("BackupId").unwrap_or_default(),
                    f.bool("NeverExpires"),
                )
                .await?;
            json!({ "Backup": backup_json(&backup) })
        }
        "CopyBackupToRegion" => {
            return Err(strongroom_cloudhsm::Error::InvalidRequest(
                "CopyBackupToRegion is not supported: Strongroom backups record metadata only, without key \
                 material to copy."
                    .to_owned(),
            ));
        }

        // Tags.
        "TagResource" => {
            plane
                .tag_resource(
                    namespace,
                    f.str("ResourceId").unwrap_or_default(),
                    &tag_list(body, "TagList"),
                )
                .await?;
            json!({})
        }
        "UntagResource" => {
            plane
                .untag_resource(
                    namespace,
                    f.str("ResourceId").unwrap_or_default(),
                    &f.strings("TagKeyList"),
                )
                .await?;
            json!({})
        }
        "ListTags" => {
            let page = plane
                .list_tags(
                    namespace,
                    f.str("ResourceId").unwrap_or_default(),
                    f.str("NextToken"),
                    f.int("MaxResults"),
                )
                .await?;
            with_next_token(
                json!({ "TagList": tags_json(&page.items) }),
                page.next_token,
            )
        }

        // Resource policies share backups between accounts through AWS RAM, which has no equivalent here.
        "GetResourcePolicy" | "PutResourcePolicy" | "DeleteResourcePolicy" => {
            return Err(strongroom_cloudhsm::Error::InvalidRequest(format!(
                "{operation} is not supported: Strongroom does not share backups between accounts."
            )));
        }
        other => {
            return Err(strongroom_cloudhsm::Error::InvalidRequest(format!(
                "{other} is not supported by Strongroom."
            )));
        }
    };
    Ok(response)
}

/// Strongroom's HSM administration: activation, the crypto user, bringing HSMs in.
async fn administer(
    plane: &ControlPlane,
    namespace: &Namespace,
    operation: &str,
    body: &Map<String, Value>,
) -> Result<Value, strongroom_cloudhsm::Error> {
    let f = Fields(body);
    let cluster_id = required(&f, "ClusterId")?;
    let response = match operation {
        "ActivateCluster" => {
            let admin = password(&f, "AdminPassword")?;
            let record = plane.activate(namespace, cluster_id, &admin).await?;
            json!({ "State": record.state.as_str() })
        }
        "CreateCryptoUser" => {
            let admin = password(&f, "AdminPassword")?;
            plane
                .create_crypto_user(
                    namespace,
                    cluster_id,
                    &admin,
                    required(&f, "Username")?,
                    &password(&f, "Password")?,
                )
                .await?;
            json!({})
        }
        "ChangeCryptoUserPassword" => {
            let old = optional_password(&f, "OldPassword");
            let admin = optional_password(&f, "AdminPassword");
            let authority = match (&old, &admin) {
                (Some(old), None) => PasswordAuthority::CurrentPassword(old),
                (None, Some(admin)) => PasswordAuthority::AdminPassword(admin),
                _ => {
                    return Err(strongroom_cloudhsm::Error::InvalidRequest(
                        "Give exactly one of OldPassword (the user changes its password) and AdminPassword \
                         (the admin resets it)."
                            .to_owned(),
                    ));
                }
            };
            plane
                .change_crypto_user_password(
                    namespace,
                    cluster_id,
                    required(&f, "Username")?,
                    authority,
                    &password(&f, "Password")?,
                )
                .await?;
            json!({})
        }
        "ListUsers" => {
            let users: Vec<Value> = plane
                .users(namespace, cluster_id)
                .await?
                .iter()
                .map(|user| json!({ "Username": user.username, "Role": user.role }))
                .collect();
            json!({ "Users": users })
        }
        "SynchronizeHsms" => {
            let joined = match optional_password(&f, "Password") {
                Some(password) => {
                    plane
                        .synchronize_hsms(namespace, cluster_id, &password)
                        .await?
                }
                None => plane
                    .synchronize_hsms_through_connected_store(namespace, cluster_id)
                    .await?
                    .ok_or_else(|| {
                        strongroom_cloudhsm::Error::InvalidRequest(format!(
                            "No custom key store is connected to cluster {cluster_id}: connect one \
                             (aws kms connect-custom-key-store), or give the crypto user's password \
                             (Password; `strongroom hsm sync --password-file FILE`)."
                        ))
                    })?,
            };
            json!({ "HsmIds": joined })
        }
        other => {
            return Err(strongroom_cloudhsm::Error::InvalidRequest(format!(
                "{ADMIN_TARGET_PREFIX}{other} is not an operation: use ActivateCluster, CreateCryptoUser, \
                 ChangeCryptoUserPassword, ListUsers or SynchronizeHsms."
            )));
        }
    };
    Ok(response)
}

fn required<'a>(f: &Fields<'a>, name: &str) -> Result<&'a str, strongroom_cloudhsm::Error> {
    f.str(name)
        .ok_or_else(|| strongroom_cloudhsm::Error::InvalidRequest(format!("{name} is required.")))
}

fn password(f: &Fields<'_>, name: &str) -> Result<Pin, strongroom_cloudhsm::Error> {
    Ok(Pin::new(required(f, name)?.to_owned()))
}

fn optional_password(f: &Fields<'_>, name: &str) -> Option<Pin> {
    f.str(name).map(|text| Pin::new(text.to_owned()))
}

/// `Filters`: a map from filter name to a list of strings.
fn filters(body: &Map<String, Value>) -> Vec<(String, Vec<String>)> {
    let Some(Value::Object(map)) = body.get("Filters") else {
        return Vec::new();
    };
    map.iter()
        .map(|(name, values)| {
            let values = values
                .as_array()
                .map(|items| {
                    items
                        .iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            (name.clone(), values)
        })
        .collect()
}

/// A `TagList`: `[{"Key": ..., "Value": ...}]`.
fn tag_list(body: &Map<String, Value>, name: &str) -> Vec<Tag> {
    let Some(Value::Array(items)) = body.get(name) else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            Some(Tag {
                key: item.get("Key")?.as_str()?.to_owned(),
                value: item.get("Value")?.as_str()?.to_owned(),
            })
        })
        .collect()
}

fn tags_json(tags: &[Tag]) -> Value {
    Value::Array(
        tags.iter()
            .map(|tag| json!({ "Key": tag.key, "Value": tag.value }))
            .collect(),
    )
}

fn with_next_token(mut out: Value, next_token: Option<String>) -> Value {
    if let Some(token) = next_token {
        out["NextToken"] = json!(token);
    }
    out
}

/// A `Cluster` in the model's shape.
fn cluster_json(cluster: &Cluster) -> Value {
    let record = &cluster.record;
    let subnets: Map<String, Value> = record
        .subnets
        .iter()
        .map(|subnet| (subnet.availability_zone.clone(), json!(subnet.subnet_id)))
        .collect();
    let mut certificates = Map::new();
    // CloudHSM shows the CSR only until the cluster is initialized.
    if let (ClusterState::Uninitialized, Some(identity)) = (record.state, &record.identity) {
        certificates.insert("ClusterCsr".to_owned(), json!(identity.csr_pem));
    }
    if let Some(installed) = &record.certificates {
        certificates.insert(
            "ClusterCertificate".to_owned(),
            json!(installed.cluster_certificate_pem),
        );
    }
    let hsms: Vec<Value> = cluster
        .hsms
        .iter()
        .map(|hsm| hsm_json(hsm, Some(&record.hsm_type)))
        .collect();
    let mut out = json!({
        "BackupPolicy": "DEFAULT",
        "BackupRetentionPolicy": {
            "Type": "DAYS",
            "Value": record.backup_retention_days.to_string(),
        },
        "Certificates": certificates,
        "ClusterId": record.cluster_id,
        "CreateTimestamp": timestamp(record.created),
        "Hsms": hsms,
        "HsmType": record.hsm_type,
        "Mode": record.mode.as_str(),
        "NetworkType": "IPV4",
        "SecurityGroup": record.security_group,
        "State": record.state.as_str(),
        "SubnetMapping": subnets,
        "VpcId": VPC_ID,
    });
    if let Some(message) = &record.state_message {
        out["StateMessage"] = json!(message);
    }
    if let Some(source) = &record.source_backup_id {
        out["SourceBackupId"] = json!(source);
    }
    if !record.tags.is_empty() {
        out["TagList"] = tags_json(&record.tags);
    }
    out
}

/// An `Hsm` in the model's shape.
fn hsm_json(hsm: &HsmRecord, hsm_type: Option<&str>) -> Value {
    let mut out = json!({
        "AvailabilityZone": hsm.availability_zone,
        "ClusterId": hsm.cluster_id,
        "EniId": hsm.eni_id,
        "EniIp": hsm.eni_ip,
        "HsmId": hsm.hsm_id,
        "State": hsm.state.as_str(),
        "SubnetId": hsm.subnet_id,
    });
    if let Some(hsm_type) = hsm_type {
        out["HsmType"] = json!(hsm_type);
    }
    if let Some(message) = &hsm.state_message {
        out["StateMessage"] = json!(message);
    }
    out
}

/// A `Backup` in the model's shape.
fn backup_json(backup: &BackupRecord) -> Value {
    let mut out = json!({
        "BackupArn": format!(
            "arn:aws:cloudhsm:{}:{}:backup/{}",
            backup.namespace.region, backup.namespace.account, backup.backup_id
        ),
        "BackupId": backup.backup_id,
        "BackupState": backup.state.as_str(),
        "ClusterId": backup.cluster_id,
        "CreateTimestamp": timestamp(backup.created),
        "HsmType": backup.hsm_type,
        "Mode": backup.mode.as_str(),
        "NeverExpires": backup.never_expires,
    });
    if let Some(deleted) = backup.deleted {
        out["DeleteTimestamp"] = timestamp(deleted);
    }
    if !backup.tags.is_empty() {
        out["TagList"] = tags_json(&backup.tags);
    }
    out
}
