//! Service events: what the KMS does on its own (automatic rotation, deletion after the waiting period,
//! the end of a custom key store's connection attempt, an HSM leaving or rejoining service), recorded in
//! the audit trail as CloudTrail records with `eventType` `AwsServiceEvent`.
//!
//! AWS documents no service events for custom key stores; Strongroom's are named after the API call
//! whose outcome they report (`ConnectCustomKeyStore` for CONNECTED and FAILED, `DisconnectCustomKeyStore`
//! for a connection the service dropped), with the store's id, name and cluster in `additionalEventData`
//! as in the API call's own record, and the new state in `serviceEventDetails`.

use serde_json::json;
use strongroom_audit::{AuditLog, Resource, ServiceEvent};
use strongroom_service::ServiceEvents;
use strongroom_service::custom_key_stores::ConnectionChange;
use strongroom_types::KeyRecord;

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

    fn custom_key_store_connection(&self, change: &ConnectionChange) {
        let event_name = match change.connection_state {
            "DISCONNECTED" => "DisconnectCustomKeyStore",
            _ => "ConnectCustomKeyStore",
        };
        let mut details = json!({
            "customKeyStoreId": change.custom_key_store_id,
            "connectionState": change.connection_state,
        });
        if let Some(code) = change.connection_error {
            details["connectionErrorCode"] = json!(code);
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
