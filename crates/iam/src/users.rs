//! Users: CreateUser, GetUser, ListUsers, DeleteUser, TagUser, UntagUser, ListUserTags, and their inline
//! policies (PutUserPolicy, GetUserPolicy, DeleteUserPolicy, ListUserPolicies).

use strongroom_types::{PolicyOwner, SessionSubject, Tag, User};

use crate::directory::name_key;
use crate::names::{check_name, check_path, check_path_prefix, check_tags, merge_tags, page_size};
use crate::{IamError, Identities, Page, ResolvedPrincipal, paginate};

/// The longest user name IAM accepts.
const MAX_USER_NAME: usize = 64;
/// Users may hold at most this much inline policy text, whitespace not counted.
const USER_INLINE_POLICY_QUOTA: usize = 2048;

impl Identities {
    /// `CreateUser`.
    pub async fn create_user(
        &self,
        caller: &ResolvedPrincipal,
        name: &str,
        path: Option<&str>,
        tags: Vec<Tag>,
    ) -> Result<User, IamError> {
        check_name(name, "userName", MAX_USER_NAME)?;
        let path = check_path(path)?;
        check_tags(&tags)?;
        let user = User {
            account: caller.account.clone(),
            name: name.to_owned(),
            path,
            user_id: crate::names::unique_id("AIDA"),
            created: self.now(),
            tags,
        };
        self.authorize(caller, "iam:CreateUser", &user.arn())?;
        let _writes = self.writes.lock().await;
        if self.read().user(&user.account, name).is_some() {
            return Err(IamError::EntityAlreadyExists(format!(
                "User with name {name} already exists."
            )));
        }
        self.store.insert_user(&user).await?;
        let mut directory = self.write();
        directory
            .users
            .insert(name_key(&user.account, &user.name), user.clone());
        // Keys cannot exist for a new user, but sessions of a deleted namesake must not come back.
        directory.refresh_principals();
        Ok(user)
    }

    /// `GetUser`: the named user, or the calling user when no name is given.
    pub fn get_user(
        &self,
        caller: &ResolvedPrincipal,
        name: Option<&str>,
    ) -> Result<User, IamError> {
        let name = match (name, caller.user_name()) {
            (Some(name), _) => name,
            (None, Some(own)) => own,
            (None, None) => {
                return Err(IamError::Validation(
                    "Must specify userName when calling with non-User credentials".to_owned(),
                ));
            }
        };
        let user = self.user_for(caller, "iam:GetUser", name)?;
        Ok(user)
    }

    /// `ListUsers`, in name order, optionally only those whose path starts with `path_prefix`.
    pub fn list_users(
        &self,
        caller: &ResolvedPrincipal,
        path_prefix: Option<&str>,
        marker: Option<&str>,
        max_items: Option<i64>,
    ) -> Result<Page<User>, IamError> {
        let prefix = check_path_prefix(path_prefix)?;
        let max = page_size(max_items)?;
        self.authorize(
            caller,
            "iam:ListUsers",
            &format!("arn:aws:iam::{}:user/", caller.account),
        )?;
        let directory = self.read();
        let users = directory
            .users
            .iter()
            .filter(|((account, _), user)| {
                account == &caller.account && user.path.starts_with(prefix)
            })
            .map(|((_, key), user)| (key.clone(), user.clone()));
        Ok(paginate(users, marker, max))
    }

    /// `DeleteUser`: only a user without access keys and policies may be deleted, as in AWS.
    pub async fn delete_user(
        &self,
        caller: &ResolvedPrincipal,
        name: &str,
    ) -> Result<(), IamError> {
        let _writes = self.writes.lock().await;
        let user = self.user_for(caller, "iam:DeleteUser", name)?;
        let owner = PolicyOwner::User {
            account: user.account.clone(),
            name: user.name.clone(),
        };
        {
            let directory = self.read();
            if directory
                .long_term_keys(&user.account, Some(&user.name))
                .next()
                .is_some()
            {
                return Err(IamError::DeleteConflict(
                    "Cannot delete entity, must delete access keys first.".to_owned(),
                ));
            }
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
            session.account == user.account
                && matches!(&session.subject, SessionSubject::User(name) if name == &user.name)
        })
        .await?;
        self.store.delete_user(&user.account, &user.name).await?;
        let mut directory = self.write();
        directory.users.remove(&name_key(&user.account, &user.name));
        directory.refresh_principals();
        Ok(())
    }

    /// `TagUser`: adds tags, replacing the values of keys the user has.
    pub async fn tag_user(
        &self,
        caller: &ResolvedPrincipal,
        name: &str,
        tags: &[Tag],
    ) -> Result<(), IamError> {
        let _writes = self.writes.lock().await;
        let mut user = self.user_for(caller, "iam:TagUser", name)?;
        merge_tags(&mut user.tags, tags)?;
        self.put_user(user).await
    }

    /// `UntagUser`: removes tags by key; keys the user does not have are ignored.
    pub async fn untag_user(
        &self,
        caller: &ResolvedPrincipal,
        name: &str,
        keys: &[String],
    ) -> Result<(), IamError> {
        let _writes = self.writes.lock().await;
        let mut user = self.user_for(caller, "iam:UntagUser", name)?;
        crate::names::remove_tags(&mut user.tags, keys);
        self.put_user(user).await
    }

    /// `ListUserTags`: a user's tags, in the order they were first added.
    pub fn list_user_tags(
        &self,
        caller: &ResolvedPrincipal,
        name: &str,
    ) -> Result<Vec<Tag>, IamError> {
        Ok(self.user_for(caller, "iam:ListUserTags", name)?.tags)
    }

    /// `PutUserPolicy`: adds or replaces an inline policy of a user.
    pub async fn put_user_policy(
        &self,
        caller: &ResolvedPrincipal,
        user_name: &str,
        policy_name: &str,
        document: &str,
    ) -> Result<(), IamError> {
        let _writes = self.writes.lock().await;
        let user = self.user_for(caller, "iam:PutUserPolicy", user_name)?;
        let owner = PolicyOwner::User {
            account: user.account.clone(),
            name: user.name.clone(),
        };
        self.put_inline(owner, policy_name, document, USER_INLINE_POLICY_QUOTA)
            .await
    }

    /// `GetUserPolicy`: the document of a user's inline policy.
    pub fn get_user_policy(
        &self,
        caller: &ResolvedPrincipal,
        user_name: &str,
        policy_name: &str,
    ) -> Result<String, IamError> {
        let user = self.user_for(caller, "iam:GetUserPolicy", user_name)?;
        self.inline_document(&user_owner(&user), policy_name)
    }

    /// `DeleteUserPolicy`.
    pub async fn delete_user_policy(
        &self,
        caller: &ResolvedPrincipal,
        user_name: &str,
        policy_name: &str,
    ) -> Result<(), IamError> {
        let _writes = self.writes.lock().await;
        let user = self.user_for(caller, "iam:DeleteUserPolicy", user_name)?;
        self.delete_inline(&user_owner(&user), policy_name).await
    }

    /// `ListUserPolicies`: the names of a user's inline policies.
    pub fn list_user_policies(
        &self,
        caller: &ResolvedPrincipal,
        user_name: &str,
        marker: Option<&str>,
        max_items: Option<i64>,
    ) -> Result<Page<String>, IamError> {
        let max = page_size(max_items)?;
        let user = self.user_for(caller, "iam:ListUserPolicies", user_name)?;
        Ok(self.inline_names(&user_owner(&user), marker, max))
    }

    /// Finds a user of the caller's account after checking the caller may perform `action` on it.
    pub(crate) fn user_for(
        &self,
        caller: &ResolvedPrincipal,
        action: &str,
        name: &str,
    ) -> Result<User, IamError> {
        check_name(name, "userName", 128)?;
        let found = self.read().user(&caller.account, name).cloned();
        let resource = match &found {
            Some(user) => user.arn(),
            None => format!("arn:aws:iam::{}:user/{name}", caller.account),
        };
        self.authorize(caller, action, &resource)?;
        found.ok_or_else(|| {
            IamError::NoSuchEntity(format!("The user with name {name} cannot be found."))
        })
    }

    async fn put_user(&self, user: User) -> Result<(), IamError> {
        self.store.put_user(&user).await?;
        let mut directory = self.write();
        directory
            .users
            .insert(name_key(&user.account, &user.name), user);
        directory.refresh_principals();
        Ok(())
    }
}

pub(crate) fn user_owner(user: &User) -> PolicyOwner {
    PolicyOwner::User {
        account: user.account.clone(),
        name: user.name.clone(),
    }
}
