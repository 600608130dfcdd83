//! Managed policies and attachments: CreatePolicy, GetPolicy, GetPolicyVersion, ListPolicies,
//! DeletePolicy, Attach/Detach User/Role Policy, ListAttached User/Role Policies; and the inline-policy
//! work that users and roles share.
//!
//! A managed policy has one version, `v1`: Strongroom does not keep policy versions.

use std::sync::Arc;

use strongroom_policy::PolicyKind;
use strongroom_types::{Attachment, InlinePolicy, ManagedPolicy, PolicyOwner, Tag, Timestamp};

use crate::directory::{LiveInline, LivePolicy, compile, name_key};
use crate::names::{
    check_description, check_name, check_path, check_path_prefix, check_tags, page_size,
    parse_policy_arn,
};
use crate::roles::role_owner;
use crate::users::user_owner;
use crate::{IamError, Identities, Page, ResolvedPrincipal, paginate};

/// The largest managed policy, whitespace not counted.
const MANAGED_POLICY_QUOTA: usize = 6144;
/// The most managed policies one user or role may have attached.
const MAX_ATTACHED: usize = 10;
/// The largest policy document the model accepts, in characters.
const MAX_DOCUMENT_CHARS: usize = 131_072;
/// The only version of a managed policy.
pub const POLICY_VERSION: &str = "v1";

/// What `CreatePolicy` takes besides the caller.
#[derive(Debug, Clone, Default)]
pub struct NewPolicy {
    /// The policy name.
    pub name: String,
    /// The path; `/` when absent.
    pub path: Option<String>,
    /// The policy document.
    pub document: String,
    /// A description.
    pub description: Option<String>,
    /// Tags.
    pub tags: Vec<Tag>,
}

/// A managed policy with what `GetPolicy` reports about its use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyInfo {
    /// The policy.
    pub policy: ManagedPolicy,
    /// How many users and roles it is attached to.
    pub attachment_count: usize,
}

/// A managed policy as the attachment lists show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachedPolicy {
    /// The policy name.
    pub name: String,
    /// The policy ARN.
    pub arn: String,
}

/// Which policies `ListPolicies` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PolicyScope {
    /// Customer managed and AWS managed: Strongroom has only the former.
    #[default]
    All,
    /// Customer managed policies.
    Local,
    /// AWS managed policies, of which Strongroom has none.
    Aws,
}

impl Identities {
    /// `CreatePolicy`: the document must parse as an identity policy.
    pub async fn create_policy(
        &self,
        caller: &ResolvedPrincipal,
        new: NewPolicy,
    ) -> Result<PolicyInfo, IamError> {
        check_name(&new.name, "policyName", 128)?;
        let path = check_path(new.path.as_deref())?;
        let description = check_description(new.description.as_deref())?;
        check_tags(&new.tags)?;
        check_document(
            &new.document,
            "policyDocument",
            MANAGED_POLICY_QUOTA,
            "PolicySize",
        )?;
        let compiled = compile(&new.document, PolicyKind::Identity)?;
        let policy = ManagedPolicy {
            account: caller.account.clone(),
            name: new.name,
            path,
            policy_id: crate::names::unique_id("ANPA"),
            document: new.document,
            description,
            created: self.now(),
            tags: new.tags,
        };
        self.authorize(caller, "iam:CreatePolicy", &policy.arn())?;
        let _writes = self.writes.lock().await;
        if self.read().policy(&policy.account, &policy.name).is_some() {
            return Err(IamError::EntityAlreadyExists(format!(
                "A policy called {} already exists. Duplicate names are not allowed.",
                policy.name
            )));
        }
        self.store.insert_policy(&policy).await?;
        self.write().policies.insert(
            name_key(&policy.account, &policy.name),
            LivePolicy {
                record: policy.clone(),
                compiled: Arc::new(compiled),
            },
        );
        Ok(PolicyInfo {
            policy,
            attachment_count: 0,
        })
    }

    /// `GetPolicy`.
    pub fn get_policy(
        &self,
        caller: &ResolvedPrincipal,
        arn: &str,
    ) -> Result<PolicyInfo, IamError> {
        let policy = self.policy_for(caller, "iam:GetPolicy", arn)?;
        let attachment_count = self.read().attachment_count(arn);
        Ok(PolicyInfo {
            policy,
            attachment_count,
        })
    }

    /// `GetPolicyVersion`: the document of version `v1`, the only one, and when it was made.
    pub fn get_policy_version(
        &self,
        caller: &ResolvedPrincipal,
        arn: &str,
        version_id: &str,
    ) -> Result<(String, Timestamp), IamError> {
        let policy = self.policy_for(caller, "iam:GetPolicyVersion", arn)?;
        if version_id != POLICY_VERSION {
            return Err(IamError::NoSuchEntity(format!(
                "Policy {arn} version {version_id} does not exist or is not attachable."
            )));
        }
        Ok((policy.document, policy.created))
    }

    /// `ListPolicies`, in name order.
    pub fn list_policies(
        &self,
        caller: &ResolvedPrincipal,
        scope: PolicyScope,
        only_attached: bool,
        path_prefix: Option<&str>,
        marker: Option<&str>,
        max_items: Option<i64>,
    ) -> Result<Page<PolicyInfo>, IamError> {
        let prefix = check_path_prefix(path_prefix)?;
        let max = page_size(max_items)?;
        self.authorize(
            caller,
            "iam:ListPolicies",
            &format!("arn:aws:iam::{}:policy/", caller.account),
        )?;
        if scope == PolicyScope::Aws {
            return Ok(Page {
                items: Vec::new(),
                marker: None,
            });
        }
        let directory = self.read();
        let policies = directory
            .policies
            .iter()
            .filter(|((account, _), policy)| {
                account == &caller.account && policy.record.path.starts_with(prefix)
            })
            .map(|((_, key), policy)| {
                let attachment_count = directory.attachment_count(&policy.record.arn());
                (
                    key.clone(),
                    PolicyInfo {
                        policy: policy.record.clone(),
                        attachment_count,
                    },
                )
            })
            .filter(|(_, info)| !only_attached || info.attachment_count > 0);
        Ok(paginate(policies, marker, max))
    }

    /// `DeletePolicy`: only a policy attached to nothing may be deleted.
    pub async fn delete_policy(
        &self,
        caller: &ResolvedPrincipal,
        arn: &str,
    ) -> Result<(), IamError> {
        let _writes = self.writes.lock().await;
        let policy = self.policy_for(caller, "iam:DeletePolicy", arn)?;
        if self.read().attachment_count(arn) > 0 {
            return Err(IamError::DeleteConflict(
                "Cannot delete a policy attached to entities.".to_owned(),
            ));
        }
        self.store
            .delete_policy(&policy.account, &policy.name)
            .await?;
        self.write()
            .policies
            .remove(&name_key(&policy.account, &policy.name));
        Ok(())
    }

    /// `AttachUserPolicy`.
    pub async fn attach_user_policy(
        &self,
        caller: &ResolvedPrincipal,
        user_name: &str,
        arn: &str,
    ) -> Result<(), IamError> {
        let _writes = self.writes.lock().await;
        let user = self.user_for(caller, "iam:AttachUserPolicy", user_name)?;
        self.attach(caller, user_owner(&user), arn, "PoliciesPerUser")
            .await
    }

    /// `DetachUserPolicy`.
    pub async fn detach_user_policy(
        &self,
        caller: &ResolvedPrincipal,
        user_name: &str,
        arn: &str,
    ) -> Result<(), IamError> {
        let _writes = self.writes.lock().await;
        let user = self.user_for(caller, "iam:DetachUserPolicy", user_name)?;
        self.detach(user_owner(&user), arn).await
    }

    /// `AttachRolePolicy`.
    pub async fn attach_role_policy(
        &self,
        caller: &ResolvedPrincipal,
        role_name: &str,
        arn: &str,
    ) -> Result<(), IamError> {
        let _writes = self.writes.lock().await;
        let role = self.role_for(caller, "iam:AttachRolePolicy", role_name)?;
        self.attach(caller, role_owner(&role), arn, "PoliciesPerRole")
            .await
    }

    /// `DetachRolePolicy`.
    pub async fn detach_role_policy(
        &self,
        caller: &ResolvedPrincipal,
        role_name: &str,
        arn: &str,
    ) -> Result<(), IamError> {
        let _writes = self.writes.lock().await;
        let role = self.role_for(caller, "iam:DetachRolePolicy", role_name)?;
        self.detach(role_owner(&role), arn).await
    }

    /// `ListAttachedUserPolicies`.
    pub fn list_attached_user_policies(
        &self,
        caller: &ResolvedPrincipal,
        user_name: &str,
        path_prefix: Option<&str>,
        marker: Option<&str>,
        max_items: Option<i64>,
    ) -> Result<Page<AttachedPolicy>, IamError> {
        let prefix = check_path_prefix(path_prefix)?;
        let max = page_size(max_items)?;
        let user = self.user_for(caller, "iam:ListAttachedUserPolicies", user_name)?;
        Ok(self.attached_page(&user_owner(&user), prefix, marker, max))
    }

    /// `ListAttachedRolePolicies`.
    pub fn list_attached_role_policies(
        &self,
        caller: &ResolvedPrincipal,
        role_name: &str,
        path_prefix: Option<&str>,
        marker: Option<&str>,
        max_items: Option<i64>,
    ) -> Result<Page<AttachedPolicy>, IamError> {
        let prefix = check_path_prefix(path_prefix)?;
        let max = page_size(max_items)?;
        let role = self.role_for(caller, "iam:ListAttachedRolePolicies", role_name)?;
        Ok(self.attached_page(&role_owner(&role), prefix, marker, max))
    }

    /// Finds a managed policy of the caller's account by ARN after checking the caller may perform
    /// `action` on it.
    fn policy_for(
        &self,
        caller: &ResolvedPrincipal,
        action: &str,
        arn: &str,
    ) -> Result<ManagedPolicy, IamError> {
        let (account, _) = parse_policy_arn(arn)?;
        self.authorize(caller, action, arn)?;
        let found = match account == caller.account {
            true => self
                .read()
                .policy_by_arn(arn)
                .map(|policy| policy.record.clone()),
            false => None,
        };
        found.ok_or_else(|| {
            IamError::NoSuchEntity(format!("Policy {arn} does not exist or is not attachable."))
        })
    }

    async fn attach(
        &self,
        caller: &ResolvedPrincipal,
        owner: PolicyOwner,
        arn: &str,
        quota_name: &str,
    ) -> Result<(), IamError> {
        let (account, _) = parse_policy_arn(arn)?;
        let exists = account == caller.account && self.read().policy_by_arn(arn).is_some();
        if !exists {
            return Err(IamError::NoSuchEntity(format!(
                "Policy {arn} does not exist or is not attachable."
            )));
        }
        let attachment = Attachment {
            owner,
            policy_arn: arn.to_owned(),
        };
        {
            let directory = self.read();
            if directory.attachments.contains(&attachment) {
                return Ok(());
            }
            if directory.attached_to(&attachment.owner).count() >= MAX_ATTACHED {
                return Err(IamError::LimitExceeded(format!(
                    "Cannot exceed quota for {quota_name}: {MAX_ATTACHED}"
                )));
            }
        }
        self.store.attach_policy(&attachment).await?;
        self.write().attachments.insert(attachment);
        Ok(())
    }

    async fn detach(&self, owner: PolicyOwner, arn: &str) -> Result<(), IamError> {
        let attachment = Attachment {
            owner,
            policy_arn: arn.to_owned(),
        };
        if !self.read().attachments.contains(&attachment) {
            return Err(IamError::NoSuchEntity(format!(
                "Policy {arn} was not found."
            )));
        }
        self.store.detach_policy(&attachment).await?;
        self.write().attachments.remove(&attachment);
        Ok(())
    }

    fn attached_page(
        &self,
        owner: &PolicyOwner,
        prefix: &str,
        marker: Option<&str>,
        max: usize,
    ) -> Page<AttachedPolicy> {
        let directory = self.read();
        let attached = directory
            .attached_to(owner)
            .filter_map(|arn| directory.policy_by_arn(arn))
            .filter(|policy| policy.record.path.starts_with(prefix))
            .map(|policy| {
                (
                    policy.record.arn(),
                    AttachedPolicy {
                        name: policy.record.name.clone(),
                        arn: policy.record.arn(),
                    },
                )
            });
        paginate(attached, marker, max)
    }

    /// Adds or replaces an inline policy, keeping the owner's policies within `quota` characters.
    pub(crate) async fn put_inline(
        &self,
        owner: PolicyOwner,
        name: &str,
        document: &str,
        quota: usize,
    ) -> Result<(), IamError> {
        check_name(name, "policyName", 128)?;
        check_document(document, "policyDocument", usize::MAX, "")?;
        let compiled = compile(document, PolicyKind::Identity)?;
        let others: usize = self
            .read()
            .inline_of(&owner)
            .filter(|policy| policy.record.name != name)
            .map(|policy| significant_chars(&policy.record.document))
            .sum();
        if others + significant_chars(document) > quota {
            let kind = match owner {
                PolicyOwner::User { .. } => "user",
                PolicyOwner::Role { .. } => "role",
            };
            return Err(IamError::LimitExceeded(format!(
                "Maximum policy size of {quota} bytes exceeded for {kind} {}",
                owner.name()
            )));
        }
        let record = InlinePolicy {
            owner,
            name: name.to_owned(),
            document: document.to_owned(),
        };
        self.store.put_inline_policy(&record).await?;
        self.write().inline.insert(
            (record.owner.clone(), record.name.clone()),
            LiveInline {
                record,
                compiled: Arc::new(compiled),
            },
        );
        Ok(())
    }

    pub(crate) fn inline_document(
        &self,
        owner: &PolicyOwner,
        name: &str,
    ) -> Result<String, IamError> {
        check_name(name, "policyName", 128)?;
        let directory = self.read();
        match directory.inline.get(&(owner.clone(), name.to_owned())) {
            Some(policy) => Ok(policy.record.document.clone()),
            None => Err(IamError::NoSuchEntity(format!(
                "The {} with name {} cannot be found.",
                match owner {
                    PolicyOwner::User { .. } => "user policy",
                    PolicyOwner::Role { .. } => "role policy",
                },
                name
            ))),
        }
    }

    pub(crate) async fn delete_inline(
        &self,
        owner: &PolicyOwner,
        name: &str,
    ) -> Result<(), IamError> {
        self.inline_document(owner, name)?;
        self.store.delete_inline_policy(owner, name).await?;
        self.write()
            .inline
            .remove(&(owner.clone(), name.to_owned()));
        Ok(())
    }

    pub(crate) fn inline_names(
        &self,
        owner: &PolicyOwner,
        marker: Option<&str>,
        max: usize,
    ) -> Page<String> {
        let directory = self.read();
        let names = directory
            .inline_of(owner)
            .map(|policy| (policy.record.name.clone(), policy.record.name.clone()));
        paginate(names, marker, max)
    }
}

/// Checks a policy document's length and characters against the model, and its size against a quota
/// (`quota_name` in the message), whitespace not counted as IAM counts it.
pub(crate) fn check_document(
    document: &str,
    member: &str,
    quota: usize,
    quota_name: &str,
) -> Result<(), IamError> {
    let length = document.chars().count();
    if length == 0 || length > MAX_DOCUMENT_CHARS {
        return Err(IamError::Validation(format!(
            "1 validation error detected: Value at '{member}' failed to satisfy constraint: Member must have \
             length between 1 and {MAX_DOCUMENT_CHARS}"
        )));
    }
    let allowed = |c: char| matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{ff}');
    if !document.chars().all(allowed) {
        return Err(IamError::Validation(format!(
            "1 validation error detected: Value at '{member}' failed to satisfy constraint: Member must satisfy \
             regular expression pattern: [\\u0009\\u000A\\u000D\\u0020-\\u00FF]+"
        )));
    }
    if significant_chars(document) > quota {
        return Err(IamError::LimitExceeded(format!(
            "Cannot exceed quota for {quota_name}: {quota}"
        )));
    }
    Ok(())
}

/// A document's size as IAM counts it against quotas: without whitespace.
fn significant_chars(document: &str) -> usize {
    document.chars().filter(|c| !c.is_whitespace()).count()
}
