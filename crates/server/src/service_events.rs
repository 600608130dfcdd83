//! Service events: what the KMS does on its own (automatic rotation, deletion after the waiting period),
//! recorded in the audit trail as CloudTrail records with `eventType` `AwsServiceEvent`.

use serde_json::json;
use strongroom_audit::{AuditLog, Resource, ServiceEvent};
use strongroom_service::ServiceEvents;
use strongroom_types::KeyRecord;

/// Sends service events to the audit trail, in the background: the work they report is already durable.
pub(crate) struct AuditedServiceEvents {
    log: AuditLog,
    disabled: bool,
}

impl AuditedServiceEvents {
    pub(crate) fn new(log: AuditLog, disabled: bool) -> AuditedServiceEvents {
        AuditedServiceEvents { log, disabled }
    }

    fn record(&self, key: &KeyRecord, event_name: &str, details: serde_json::Value) {
        if self.disabled {
            return;
        }
        let account = key.namespace.account.as_str();
        let arn = key.arn();
        let event = ServiceEvent {
            account_id: account.to_owned(),
            event_time: time::OffsetDateTime::now_utc(),
            event_name: event_name.to_owned(),
            aws_region: key.namespace.region.as_str().to_owned(),
            resources: vec![Resource::kms_key(&arn, account)],
            response_elements: serde_json::Value::Null,
            additional_event_data: Some(json!({ "keyId": arn })),
            service_event_details: Some(details),
        }
        .into_event();
        let log = self.log.clone();
        tokio::spawn(async move {
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
}
