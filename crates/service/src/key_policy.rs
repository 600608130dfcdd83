//! Key policies: GetKeyPolicy, PutKeyPolicy, ListKeyPolicies.
//!
//! Policies are stored and returned exactly as given; evaluating them arrives with authorization.

use crate::authz::{self, RequestFacts};
use crate::keyring::Forms;
use crate::keys::parse_key_policy;
use crate::pagination::{self, Page};
use crate::{Caller, Error, Kms};

/// The only policy name a key has.
const POLICY_NAME: &str = "default";

fn check_policy_name(name: Option<&str>) -> Result<(), Error> {
    match name {
        None | Some(POLICY_NAME) => Ok(()),
        Some(other) => Err(Error::NotFound(format!(
            "Key policy '{other}' does not exist: every key has exactly one policy, named \"default\"."
        ))),
    }
}

impl Kms {
    /// GetKeyPolicy: returns the policy and its name.
    pub async fn key_policy(
        &self,
        caller: &Caller,
        key_id: &str,
        policy_name: Option<&str>,
    ) -> Result<(String, &'static str), Error> {
        check_policy_name(policy_name)?;
        let live = self.resolve(caller, key_id, Forms::IdOrArn).await?;
        self.authorize(caller, "kms:GetKeyPolicy", &live, RequestFacts::default())?;
        Ok((live.record.policy.clone(), POLICY_NAME))
    }

    /// PutKeyPolicy: replaces the key policy.
    pub async fn put_key_policy(
        &self,
        caller: &Caller,
        key_id: &str,
        policy_name: Option<&str>,
        policy: String,
        bypass_policy_lockout_safety_check: bool,
    ) -> Result<(), Error> {
        check_policy_name(policy_name)?;
        let parsed = parse_key_policy(&policy)?;
        let facts = RequestFacts {
            bypass_lockout_check: Some(bypass_policy_lockout_safety_check),
            ..RequestFacts::default()
        };
        let now = self.clock.now().millis();
        let live = self.resolve(caller, key_id, Forms::IdOrArn).await?;
        self.authorize(caller, "kms:PutKeyPolicy", &live, facts)?;
        let _writes = self.writes.lock().await;
        let mut record = self.key_for_update(&live).await?;
        crate::keys::check_customer_managed(&record)?;
        if !bypass_policy_lockout_safety_check {
            // The key as the next PutKeyPolicy will see it: its aliases and its place in a multi-Region set.
            let key_facts = RequestFacts {
                resource_aliases: Some(&live.aliases),
                multi_region_key_type: live.multi_region_role.map(|role| role.as_str()),
                ..RequestFacts::default()
            };
            let identities = self.identities.as_deref();
            authz::check_lockout(caller, &record, &parsed, identities, now, key_facts)?;
        }
        record.policy = policy;
        self.put_key(record).await?;
        Ok(())
    }

    /// ListKeyPolicies: always `["default"]`.
    pub async fn list_key_policies(
        &self,
        caller: &Caller,
        key_id: &str,
        limit: Option<i64>,
        marker: Option<&str>,
    ) -> Result<Page<&'static str>, Error> {
        let limit = pagination::limit(limit, 100, 1000)?;
        if let Some(marker) = marker {
            pagination::decode(marker)?;
            return Err(Error::InvalidMarker(format!(
                "Marker '{marker}' is not valid for this key's policies"
            )));
        }
        let live = self.resolve(caller, key_id, Forms::IdOrArn).await?;
        self.authorize(
            caller,
            "kms:ListKeyPolicies",
            &live,
            RequestFacts::default(),
        )?;
        Ok(pagination::page(vec![POLICY_NAME], limit, |name| {
            (*name).to_owned()
        }))
    }
}
