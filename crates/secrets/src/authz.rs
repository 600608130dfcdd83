//! Authorization of Secrets Manager actions by the caller's IAM identity policies.
//!
//! There are no resource policies on secrets here, so a request is allowed when the caller is an account
//! root or an identity policy allows the action on the secret's ARN, and no policy denies it.

use strongroom_policy::MapContext;
use strongroom_service::Caller;
use strongroom_storage::secrets::SecretRecord;

use crate::{Error, SecretsManager};

impl SecretsManager {
    /// Checks `caller` may perform `action` (for example `secretsmanager:GetSecretValue`) on `resource`,
    /// with the condition keys of `secret` when it exists.
    pub(crate) fn authorize(
        &self,
        caller: &Caller,
        action: &str,
        resource: &str,
        secret: Option<&SecretRecord>,
    ) -> Result<(), Error> {
        let principal = self
            .identities
            .as_ref()
            .and_then(|ids| ids.principal(&caller.access_key_id).map(|p| (ids, p)));
        let denied = |reason: &str| {
            Err(Error::AccessDenied(format!(
                "User: {} is not authorized to perform: {action} on resource: {resource} {reason}",
                caller.arn
            )))
        };
        let Some((identities, principal)) = principal else {
            // Keys IAM does not hold (the administrator key, development keys) are account roots.
            return match caller.arn.ends_with(":root") {
                true => Ok(()),
                false => denied(&format!(
                    "because no identity-based policy allows the {action} action"
                )),
            };
        };
        let context = self.context(caller, secret);
        let outcome = identities.evaluate_identity(&principal, action, resource, &context);
        if outcome.explicit_deny {
            return denied("with an explicit deny in an identity-based policy");
        }
        match outcome.allow {
            true => Ok(()),
            false => denied(&format!(
                "because no identity-based policy allows the {action} action"
            )),
        }
    }

    /// The condition keys of a Secrets Manager request: the time, the origin, and the secret's name, ARN,
    /// KMS key and tags.
    fn context(&self, caller: &Caller, secret: Option<&SecretRecord>) -> MapContext {
        let now = self.now();
        let mut context = MapContext::new();
        context.insert("aws:CurrentTime", [strongroom_iam::iso8601(now)]);
        context.insert("aws:EpochTime", [now.as_secs().to_string()]);
        context.insert("aws:SecureTransport", ["false"]);
        if let Some(ip) = caller.source_ip {
            context.insert("aws:SourceIp", [ip.to_string()]);
        }
        if let Some(vpc) = &caller.source_vpc {
            context.insert("aws:SourceVpc", [vpc.clone()]);
        }
        if let Some(vpce) = &caller.source_vpce {
            context.insert("aws:SourceVpce", [vpce.clone()]);
        }
        if let Some(secret) = secret {
            context.insert("secretsmanager:Name", [secret.name.clone()]);
            context.insert("secretsmanager:SecretId", [secret.arn()]);
            if let Some(key) = &secret.kms_key_id {
                context.insert("secretsmanager:KmsKeyId", [key.clone()]);
            }
            for tag in &secret.tags {
                context.insert(
                    &format!("secretsmanager:ResourceTag/{}", tag.key),
                    [tag.value.clone()],
                );
                context.insert(&format!("aws:ResourceTag/{}", tag.key), [tag.value.clone()]);
            }
        }
        context
    }
}
