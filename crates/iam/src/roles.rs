//! Roles: CreateRole, GetRole, ListRoles, DeleteRole, UpdateAssumeRolePolicy, TagRole, UntagRole,
//! ListRoleTags, and their inline policies (PutRolePolicy, GetRolePolicy, DeleteRolePolicy,
//! ListRolePolicies).

use std::sync::Arc;

use strongroom_policy::PolicyKind;
use strongroom_types::{PolicyOwner, Role, SessionSubject, Tag};

use crate::directory::{LiveRole, compile, name_key};
use crate::names::{
    check_description, check_name, check_path, check_path_prefix, check_tags, merge_tags, page_size,
};
use crate::policies::check_document;
use crate::{IamError, Identities, Page, ResolvedPrincipal, paginate};

/// The longest role name IAM accepts.
const MAX_ROLE_NAME: usize = 64;
/// The default quota on a trust policy, whitespace not counted.
const TRUST_POLICY_QUOTA: usize = 2048;
/// Roles may hold at most this much inline policy text, whitespace not counted.
const ROLE_INLINE_POLICY_QUOTA: usize = 10_240;
/// A role's sessions last at most an hour unless the role allows longer.
pub(crate) const DEFAULT_MAX_SESSION_SECONDS: u32 = 3600;

/// What `CreateRole` takes besides the caller.
#[derive(Debug, Clone, Default)]
pub struct NewRole {
    /// The role name.
    pub name: String,
    /// The path; `/` when absent.
    pub path: Option<String>,
    /// The trust policy document.
    pub trust_policy: String,
    /// A description.
    pub description: Option<String>,
    /// The longest session, in seconds (3600 to 43200); an hour when absent.
    pub max_session_duration: Option<i64>,
    /// Tags.
    pub tags: Vec<Tag>,
}

impl Identities {
    /// `CreateRole`: the trust policy must parse as a trust policy.
    pub async fn create_role(
        &self,
        caller: &ResolvedPrincipal,
        new: NewRole,
    ) -> Result<Role, IamError> {
        check_name(&new.name, "roleName", MAX_ROLE_NAME)?;
        let path = check_path(new.path.as_deref())?;
        let description = check_description(new.description.as_deref())?;
        check_tags(&new.tags)?;
        let max_session_duration = check_max_session_duration(new.max_session_duration)?;
        let trust = check_trust_policy(&new.trust_policy)?;
        let role = Role {
            account: caller.account.clone(),
            name: new.name,
            path,
            role_id: crate::names::unique_id("AROA"),
            trust_policy: new.trust_policy,
            description,
            max_session_duration,
            created: self.now(),
            tags: new.tags,
        };
        self.authorize(caller, "iam:CreateRole", &role.arn())?;
        let _writes = self.writes.lock().await;
        if self.read().role(&role.account, &role.name).is_some() {
            return Err(IamError::EntityAlreadyExists(format!(
                "Role with name {} already exists.",
                role.name
            )));
        }
        self.store.insert_role(&role).await?;
        let mut directory = self.write();
        directory.roles.insert(
            name_key(&role.account, &role.name),
            LiveRole {
                record: role.clone(),
                trust: Arc::new(trust),
            },
        );
        directory.refresh_principals();
        Ok(role)
    }

    /// `GetRole`.
    pub fn get_role(&self, caller: &ResolvedPrincipal, name: &str) -> Result<Role, IamError> {
        self.role_for(caller, "iam:GetRole", name)
    }

    /// `ListRoles`, in name order, optionally only those whose path starts with `path_prefix`.
    pub fn list_roles(
        &self,
        caller: &ResolvedPrincipal,
        path_prefix: Option<&str>,
        marker: Option<&str>,
        max_items: Option<i64>,
    ) -> Result<Page<Role>, IamError> {
        let prefix = check_path_prefix(path_prefix)?;
        let max = page_size(max_items)?;
        self.authorize(
            caller,
            "iam:ListRoles",
            &format!("arn:aws:iam::{}:role/", caller.account),
        )?;
        let directory = self.read();
        let roles = directory
            .roles
            .iter()
            .filter(|((account, _), role)| {
                account == &caller.account && role.record.path.starts_with(prefix)
            })
            .map(|((_, key), role)| (key.clone(), role.record.clone()));
        Ok(paginate(roles, marker, max))
    }

    /// `DeleteRole`: only a role without policies may be deleted; its sessions stop working at once.
    pub async fn delete_role(
        &self,
        caller: &ResolvedPrincipal,
        name: &str,
    ) -> Result<(), IamError> {
        let _writes = self.writes.lock().await;
        let role = self.role_for(caller, "iam:DeleteRole", name)?;
        let owner = role_owner(&role);
        {
            let directory = self.read();
            if directory.inline_of(&owner).next().is_some() {
                return Err(IamError::DeleteConflict(
                    "Cannot delete entity, must delete policies first.".to_owned(),
                ));
            }
            if directory.attached_to(&owner).next().is_some() {
                return Err(IamError::DeleteConflict(
                    "Cannot delete entity, must detach all policies first.".to_owned(),
                ));
            }
        }
        self.delete_sessions(|session| {
            session.account == role.account
                && matches!(&session.subject, SessionSubject::Role { role_name, .. } if role_name == &role.name)
        })
        .await?;
        self.store.delete_role(&role.account, &role.name).await?;
        let mut directory = self.write();
        directory.roles.remove(&name_key(&role.account, &role.name));
        directory.refresh_principals();
        Ok(())
    }

    /// `UpdateAssumeRolePolicy`: replaces the trust policy; sessions already granted keep working.
    pub async fn update_assume_role_policy(
        &self,
        caller: &ResolvedPrincipal,
        name: &str,
        document: &str,
    ) -> Result<(), IamError> {
        let _writes = self.writes.lock().await;
        let mut role = self.role_for(caller, "iam:UpdateAssumeRolePolicy", name)?;
        let trust = check_trust_policy(document)?;
        role.trust_policy = document.to_owned();
        self.put_role(role, Some(trust)).await
    }

    /// `TagRole`: adds tags, replacing the values of keys the role has.
    pub async fn tag_role(
        &self,
        caller: &ResolvedPrincipal,
        name: &str,
        tags: &[Tag],
    ) -> Result<(), IamError> {
        let _writes = self.writes.lock().await;
        let mut role = self.role_for(caller, "iam:TagRole", name)?;
        merge_tags(&mut role.tags, tags)?;
        self.put_role(role, None).await
    }

    /// `UntagRole`: removes tags by key; keys the role does not have are ignored.
    pub async fn untag_role(
        &self,
        caller: &ResolvedPrincipal,
        name: &str,
        keys: &[String],
    ) -> Result<(), IamError> {
        let _writes = self.writes.lock().await;
        let mut role = self.role_for(caller, "iam:UntagRole", name)?;
        crate::names::remove_tags(&mut role.tags, keys);
        self.put_role(role, None).await
    }

    /// `ListRoleTags`: a role's tags, in the order they were first added.
    pub fn list_role_tags(
        &self,
        caller: &ResolvedPrincipal,
        name: &str,
    ) -> Result<Vec<Tag>, IamError> {
        Ok(self.role_for(caller, "iam:ListRoleTags", name)?.tags)
    }

    /// `PutRolePolicy`: adds or replaces an inline policy of a role.
    pub async fn put_role_policy(
        &self,
        caller: &ResolvedPrincipal,
        role_name: &str,
        policy_name: &str,
        document: &str,
    ) -> Result<(), IamError> {
        let _writes = self.writes.lock().await;
        let role = self.role_for(caller, "iam:PutRolePolicy", role_name)?;
        self.put_inline(
            role_owner(&role),
            policy_name,
            document,
            ROLE_INLINE_POLICY_QUOTA,
        )
        .await
    }

    /// `GetRolePolicy`: the document of a role's inline policy.
    pub fn get_role_policy(
        &self,
        caller: &ResolvedPrincipal,
        role_name: &str,
        policy_name: &str,
    ) -> Result<String, IamError> {
        let role = self.role_for(caller, "iam:GetRolePolicy", role_name)?;
        self.inline_document(&role_owner(&role), policy_name)
    }

    /// `DeleteRolePolicy`.
    pub async fn delete_role_policy(
        &self,
        caller: &ResolvedPrincipal,
        role_name: &str,
        policy_name: &str,
    ) -> Result<(), IamError> {
        let _writes = self.writes.lock().await;
        let role = self.role_for(caller, "iam:DeleteRolePolicy", role_name)?;
        self.delete_inline(&role_owner(&role), policy_name).await
    }

    /// `ListRolePolicies`: the names of a role's inline policies.
    pub fn list_role_policies(
        &self,
        caller: &ResolvedPrincipal,
        role_name: &str,
        marker: Option<&str>,
        max_items: Option<i64>,
    ) -> Result<Page<String>, IamError> {
        let max = page_size(max_items)?;
        let role = self.role_for(caller, "iam:ListRolePolicies", role_name)?;
        Ok(self.inline_names(&role_owner(&role), marker, max))
    }

    /// Finds a role of the caller's account after checking the caller may perform `action` on it.
    pub(crate) fn role_for(
        &self,
        caller: &ResolvedPrincipal,
        action: &str,
        name: &str,
    ) -> Result<Role, IamError> {
        check_name(name, "roleName", MAX_ROLE_NAME)?;
        let found = self
            .read()
            .role(&caller.account, name)
            .map(|role| role.record.clone());
        let resource = match &found {
            Some(role) => role.arn(),
            None => format!("arn:aws:iam::{}:role/{name}", caller.account),
        };
        self.authorize(caller, action, &resource)?;
        found.ok_or_else(|| {
            IamError::NoSuchEntity(format!("The role with name {name} cannot be found."))
        })
    }

    /// Stores a changed role and updates memory; `trust` is the compiled trust policy when it changed.
    async fn put_role(
        &self,
        role: Role,
        trust: Option<strongroom_policy::Policy>,
    ) -> Result<(), IamError> {
        self.store.put_role(&role).await?;
        let mut directory = self.write();
        let key = name_key(&role.account, &role.name);
        let trust = match (trust, directory.roles.get(&key)) {
            (Some(trust), _) => Arc::new(trust),
            (None, Some(existing)) => existing.trust.clone(),
            (None, None) => Arc::new(compile(&role.trust_policy, PolicyKind::Trust)?),
        };
        directory.roles.insert(
            key,
            LiveRole {
                record: role,
                trust,
            },
        );
        directory.refresh_principals();
        Ok(())
    }
}

pub(crate) fn role_owner(role: &Role) -> PolicyOwner {
    PolicyOwner::Role {
        account: role.account.clone(),
        name: role.name.clone(),
    }
}

fn check_trust_policy(document: &str) -> Result<strongroom_policy::Policy, IamError> {
    check_document(
        document,
        "assumeRolePolicyDocument",
        TRUST_POLICY_QUOTA,
        "ACLSizePerRole",
    )?;
    compile(document, PolicyKind::Trust)
}

fn check_max_session_duration(seconds: Option<i64>) -> Result<u32, IamError> {
    match seconds {
        None => Ok(DEFAULT_MAX_SESSION_SECONDS),
        Some(seconds) if (3600..=43_200).contains(&seconds) => {
            Ok(u32::try_from(seconds).unwrap_or(DEFAULT_MAX_SESSION_SECONDS))
        }
        Some(seconds) => Err(IamError::Validation(format!(
            "1 validation error detected: Value '{seconds}' at 'maxSessionDuration' failed to satisfy \
             constraint: Member must have value between 3600 and 43200"
        ))),
    }
}
