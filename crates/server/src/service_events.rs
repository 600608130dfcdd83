//! Service events: what the KMS does on its own (automatic rotation, deletion after the waiting period,
//! the end of a custom key store's connection attempt, an HSM leaving or rejoining service), recorded in
//! the audit trail as CloudTrail records with `eventType` `AwsServiceEvent`.
//!
//! AWS documents no service events for custom key stores; Strongroom's are named after the API call
//! whose outcome they report (`ConnectCustomKeyStore` for CONNECTED and FAILED, `DisconnectCustomKeyStore`
//! for a connection the service dropped, with the reason, `CLUSTER_NOT_FOUND`), with the store's id,
//! name and cluster in `additionalEventData` as in the API call's own record, and the new state in
//! `serviceEventDetails`. An HSM of a connected store's cluster leaving service (DEGRADED) or returning
//! (ACTIVE) is an `HsmStateChange` event naming the cluster, the HSM and the store.

use serde_json::json;
use strongroom_audit::{AuditLog, Resource, ServiceEvent};
use strongroom_service::ServiceEvents;
use strongroom_service::custom_key_stores::ConnectionChange;
use strongroom_types::{KeyRecord, Namespace};

/// An HSM of a connected store's cluster changing state, as [`AuditedServiceEvents`] records it.
pub(crate) struct HsmStateChange<'a> {
    pub(crate) namespace: &'a Namespace,
    pub(crate) custom_key_store_id: &'a str,
    pub(crate) cluster_id: &'a str,
    /// The API's `hsm-…` id.
    pub(crate) hsm_id: &'a str,
    /// The declared HSM (the `[[hsm]]` id) behind it.
    pub(crate) declared_hsm: &'a str,
    pub(crate) availability_zone: &'a str,
    /// `DEGRADED` or `ACTIVE`.
    pub(crate) state: &'static str,
    /// What degraded it.
    pub(crate) error: Option<&'a str>,
}

/// Sends service events to the audit trail, in the background: the work they report is already durable.
pub(crate) struct AuditedServiceEvents {
    log: AuditLog,
    disabled: bool,
    runtime: tokio::runtime::Handle,
}

impl AuditedServiceEvents {
    /// Must be called within the server's runtime.
    pub(crate) fn new(log: AuditLog, disabled: bool) -> AuditedServiceEvents {
        AuditedServiceEvents {
            log,
            disabled,
            runtime: tokio::runtime::Handle::current(),
        }
    }

    fn record(&self, key: &KeyRecord, event_name: &str, details: serde_json::Value) {
        let account = key.namespace.account.as_str();
        let arn = key.arn();
        self.send(ServiceEvent {
            account_id: account.to_owned(),
            event_time: time::OffsetDateTime::now_utc(),
            event_name: event_name.to_owned(),
            aws_region: key.namespace.region.as_str().to_owned(),
            resources: vec![Resource::kms_key(&arn, account)],
            response_elements: serde_json::Value::Null,
            additional_event_data: Some(json!({ "keyId": arn })),
            service_event_details: Some(details),
        });
    }

    /// Records that an HSM of a connected store's cluster left service or came back.
    pub(crate) fn hsm_state_changed(&self, change: &HsmStateChange<'_>) {
        let mut details = json!({
            "customKeyStoreId": change.custom_key_store_id,
            "clusterId": change.cluster_id,
            "hsmId": change.hsm_id,
            "availabilityZone": change.availability_zone,
            "hsmState": change.state,
        });
        if let Some(error) = change.error {
            details["error"] = json!(error);
        }
        self.send(ServiceEvent {
            account_id: change.namespace.account.as_str().to_owned(),
            event_time: time::OffsetDateTime::now_utc(),
            event_name: "HsmStateChange".to_owned(),
            aws_region: change.namespace.region.as_str().to_owned(),
            resources: Vec::new(),
            response_elements: serde_json::Value::Null,
            additional_event_data: Some(json!({ "declaredHsm": change.declared_hsm })),
            service_event_details: Some(details),
        });
    }

    /// Records `event` in the background, from any thread: HSM state changes are seen on threads
    /// outside the runtime, so the runtime's handle is taken from where the server was started.
    fn send(&self, event: ServiceEvent) {
        if self.disabled {
            return;
        }
        let event = event.into_event();
        let log = self.log.clone();
        self.runtime.spawn(async move {
            if let Err(e) = log.record(vec![event]).await {
                tracing::error!("failed to record a service event in the audit trail: {e:#}");
            }
        });
    }
}

impl ServiceEvents for AuditedServiceEvents {
    fn key_rotated(&self, key: &KeyRecord) {
        let material = key
            .current_material()
            .map(|m| m.id.to_hex())
            .unwrap_or_default();
        self.record(
            key,
            "RotateKey",
            json!({ "rotationType": "AUTOMATIC", "keyMaterialId": material }),
        );
    }

    fn key_deleted(&self, key: &KeyRecord) {
        self.record(
            key,
            "DeleteKey",
            json!({ "pendingWindowInDays": key.deletion.map(|d| d.window_days) }),
        );
    }

    fn key_material_expired(&self, key: &KeyRecord) {
        self.record(key, "DeleteExpiredKeyMaterial", serde_json::Value::Null);
    }

    fn replica_created(&self, replica: &KeyRecord) {
        self.record(
            replica,
            "CreateKey",
            json!({
                "keySpec": replica.key_spec.as_str(),
                "keyUsage": replica.key_usage.as_str(),
                "multiRegion": true,
            }),
        );
    }

    fn custom_key_store_connection(&self, change: &ConnectionChange) {
        let event_name = match change.connection_state {
            "DISCONNECTED" => "DisconnectCustomKeyStore",
            _ => "ConnectCustomKeyStore",
        };
        let mut details = json!({
            "customKeyStoreId": change.custom_key_store_id,
            "connectionState": change.connection_state,
        });
        match (change.connection_state, change.connection_error) {
            // A dropped connection has no ConnectionErrorCode; the code says why it was dropped.
            ("DISCONNECTED", Some(reason)) => details["reason"] = json!(reason),
            (_, Some(code)) => details["connectionErrorCode"] = json!(code),
            (_, None) => {}
        }
        self.send(ServiceEvent {
            account_id: change.namespace.account.as_str().to_owned(),
            event_time: time::OffsetDateTime::now_utc(),
            event_name: event_name.to_owned(),
            aws_region: change.namespace.region.as_str().to_owned(),
            resources: Vec::new(),
            response_elements: serde_json::Value::Null,
            additional_event_data: Some(json!({
                "customKeyStoreName": change.name,
                "clusterId": change.cluster_id,
            })),
            service_event_details: Some(details),
        });
    }
}
