//! IAM identities in SQLite: one table per kind of record, tags in `iam_tags` and `iam_session_tags`.
//!
//! Functions here run inside a transaction the caller opened, so a record is always written and read whole.

use std::collections::HashMap;

use async_trait::async_trait;
use rusqlite::{Connection, Row, params};
use strongroom_types::{
    AccessKey, AccessKeyStatus, AccountId, Attachment, InlinePolicy, KeyOwner, ManagedPolicy,
    PolicyOwner, Role, Session, SessionSubject, Tag, Timestamp, User,
};

use crate::StoreError;
use crate::identities::{IdentitySnapshot, IdentityStore};
use crate::sqlite::{SqliteStore, backend, column, corrupt, parse, parse_column};

const INSERT_USER: &str = "INSERT INTO iam_users (account, name, path, user_id, created) \
     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING";
const UPDATE_USER: &str = "UPDATE iam_users SET path = ?3, user_id = ?4, created = ?5 \
     WHERE account = ?1 AND name = ?2";
const DELETE_USER: &str = "DELETE FROM iam_users WHERE account = ?1 AND name = ?2";
const SELECT_USERS: &str =
    "SELECT account, name, path, user_id, created FROM iam_users ORDER BY account, name";

const INSERT_ROLE: &str = "INSERT INTO iam_roles (account, name, path, role_id, trust_policy, description, \
     max_session_duration, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT DO NOTHING";
const UPDATE_ROLE: &str = "UPDATE iam_roles SET path = ?3, role_id = ?4, trust_policy = ?5, description = ?6, \
     max_session_duration = ?7, created = ?8 WHERE account = ?1 AND name = ?2";
const DELETE_ROLE: &str = "DELETE FROM iam_roles WHERE account = ?1 AND name = ?2";
const SELECT_ROLES: &str = "SELECT account, name, path, role_id, trust_policy, description, max_session_duration, \
     created FROM iam_roles ORDER BY account, name";

const INSERT_POLICY: &str = "INSERT INTO iam_policies (account, name, path, policy_id, document, description, \
     created) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING";
const DELETE_POLICY: &str = "DELETE FROM iam_policies WHERE account = ?1 AND name = ?2";
const SELECT_POLICIES: &str = "SELECT account, name, path, policy_id, document, description, created \
     FROM iam_policies ORDER BY account, name";

const INSERT_TAG: &str = "INSERT INTO iam_tags (account, entity, name, position, tag_key, tag_value) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
const DELETE_TAGS: &str = "DELETE FROM iam_tags WHERE account = ?1 AND entity = ?2 AND name = ?3";
const SELECT_TAGS: &str = "SELECT account, entity, name, tag_key, tag_value FROM iam_tags \
     ORDER BY account, entity, name, position";

const UPSERT_INLINE: &str = "INSERT INTO iam_inline_policies (account, owner_kind, owner_name, name, document) \
     VALUES (?1, ?2, ?3, ?4, ?5) \
     ON CONFLICT (account, owner_kind, owner_name, name) DO UPDATE SET document = excluded.document";
const DELETE_INLINE: &str = "DELETE FROM iam_inline_policies \
     WHERE account = ?1 AND owner_kind = ?2 AND owner_name = ?3 AND name = ?4";
const SELECT_INLINE: &str = "SELECT account, owner_kind, owner_name, name, document FROM iam_inline_policies \
     ORDER BY account, owner_kind, owner_name, name";

const INSERT_ATTACHMENT: &str = "INSERT INTO iam_attachments (account, owner_kind, owner_name, policy_arn) \
     VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING";
const DELETE_ATTACHMENT: &str = "DELETE FROM iam_attachments \
     WHERE account = ?1 AND owner_kind = ?2 AND owner_name = ?3 AND policy_arn = ?4";
const SELECT_ATTACHMENTS: &str = "SELECT account, owner_kind, owner_name, policy_arn FROM iam_attachments \
     ORDER BY account, owner_kind, owner_name, policy_arn";

const INSERT_ACCESS_KEY: &str = "INSERT INTO iam_access_keys (access_key_id, account, owner_kind, user_name, \
     wrapped_secret, status, created, session_subject, session_role, session_name, session_expires, \
     session_token_hash, session_policy) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) ON CONFLICT DO NOTHING";
const UPDATE_ACCESS_KEY_STATUS: &str =
    "UPDATE iam_access_keys SET status = ?2 WHERE access_key_id = ?1";
const DELETE_ACCESS_KEY: &str = "DELETE FROM iam_access_keys WHERE access_key_id = ?1";
const SELECT_ACCESS_KEYS: &str = "SELECT access_key_id, account, owner_kind, user_name, wrapped_secret, status, \
     created, session_subject, session_role, session_name, session_expires, session_token_hash, session_policy \
     FROM iam_access_keys ORDER BY access_key_id";

const INSERT_SESSION_TAG: &str = "INSERT INTO iam_session_tags (access_key_id, position, tag_key, tag_value) \
     VALUES (?1, ?2, ?3, ?4)";
const DELETE_SESSION_TAGS: &str = "DELETE FROM iam_session_tags WHERE access_key_id = ?1";
const SELECT_SESSION_TAGS: &str = "SELECT access_key_id, tag_key, tag_value FROM iam_session_tags ORDER BY access_key_id, position";

/// Served by `iam_access_keys_by_expiry`.
const DELETE_EXPIRED_SESSION_TAGS: &str = "DELETE FROM iam_session_tags WHERE access_key_id IN \
     (SELECT access_key_id FROM iam_access_keys WHERE session_expires IS NOT NULL AND session_expires <= ?1)";
const DELETE_EXPIRED_SESSIONS: &str =
    "DELETE FROM iam_access_keys WHERE session_expires IS NOT NULL AND session_expires <= ?1";

/// The entity column of `iam_tags`.
#[derive(Debug, Clone, Copy)]
enum Entity {
    User,
    Role,
    Policy,
}

impl Entity {
    fn as_str(self) -> &'static str {
        match self {
            Entity::User => "user",
            Entity::Role => "role",
            Entity::Policy => "policy",
        }
    }
}

pub(super) fn insert_user(connection: &Connection, user: &User) -> Result<(), StoreError> {
    let inserted = execute_user(connection, INSERT_USER, user)?;
    if inserted == 0 {
        return Err(StoreError::AlreadyExists(format!("User {}", user.arn())));
    }
    write_tags(
        connection,
        &user.account,
        Entity::User,
        &user.name,
        &user.tags,
    )
}

pub(super) fn put_user(connection: &Connection, user: &User) -> Result<(), StoreError> {
    let updated = execute_user(connection, UPDATE_USER, user)?;
    if updated == 0 {
        return Err(StoreError::NotFound(format!("User {}", user.arn())));
    }
    delete_tags(connection, &user.account, Entity::User, &user.name)?;
    write_tags(
        connection,
        &user.account,
        Entity::User,
        &user.name,
        &user.tags,
    )
}

pub(super) fn delete_user(
    connection: &Connection,
    account: &AccountId,
    name: &str,
) -> Result<(), StoreError> {
    let mut statement = connection.prepare_cached(DELETE_USER).map_err(backend)?;
    let deleted = statement
        .execute(params![account.as_str(), name])
        .map_err(backend)?;
    if deleted == 0 {
        return Err(StoreError::NotFound(format!(
            "User {name} in account {account}"
        )));
    }
    delete_tags(connection, account, Entity::User, name)
}

pub(super) fn insert_role(connection: &Connection, role: &Role) -> Result<(), StoreError> {
    let inserted = execute_role(connection, INSERT_ROLE, role)?;
    if inserted == 0 {
        return Err(StoreError::AlreadyExists(format!("Role {}", role.arn())));
    }
    write_tags(
        connection,
        &role.account,
        Entity::Role,
        &role.name,
        &role.tags,
    )
}

pub(super) fn put_role(connection: &Connection, role: &Role) -> Result<(), StoreError> {
    let updated = execute_role(connection, UPDATE_ROLE, role)?;
    if updated == 0 {
        return Err(StoreError::NotFound(format!("Role {}", role.arn())));
    }
    delete_tags(connection, &role.account, Entity::Role, &role.name)?;
    write_tags(
        connection,
        &role.account,
        Entity::Role,
        &role.name,
        &role.tags,
    )
}

pub(super) fn delete_role(
    connection: &Connection,
    account: &AccountId,
    name: &str,
) -> Result<(), StoreError> {
    let mut statement = connection.prepare_cached(DELETE_ROLE).map_err(backend)?;
    let deleted = statement
        .execute(params![account.as_str(), name])
        .map_err(backend)?;
    if deleted == 0 {
        return Err(StoreError::NotFound(format!(
            "Role {name} in account {account}"
        )));
    }
    delete_tags(connection, account, Entity::Role, name)
}

pub(super) fn insert_policy(
    connection: &Connection,
    policy: &ManagedPolicy,
) -> Result<(), StoreError> {
    let mut statement = connection.prepare_cached(INSERT_POLICY).map_err(backend)?;
    let inserted = statement
        .execute(params![
            policy.account.as_str(),
            policy.name,
            policy.path,
            policy.policy_id,
            policy.document,
            policy.description,
            policy.created.millis(),
        ])
        .map_err(backend)?;
    if inserted == 0 {
        return Err(StoreError::AlreadyExists(format!(
            "Policy {}",
            policy.arn()
        )));
    }
    write_tags(
        connection,
        &policy.account,
        Entity::Policy,
        &policy.name,
        &policy.tags,
    )
}

pub(super) fn delete_policy(
    connection: &Connection,
    account: &AccountId,
    name: &str,
) -> Result<(), StoreError> {
    let mut statement = connection.prepare_cached(DELETE_POLICY).map_err(backend)?;
    let deleted = statement
        .execute(params![account.as_str(), name])
        .map_err(backend)?;
    if deleted == 0 {
        return Err(StoreError::NotFound(format!(
            "Policy {name} in account {account}"
        )));
    }
    delete_tags(connection, account, Entity::Policy, name)
}

pub(super) fn put_inline_policy(
    connection: &Connection,
    policy: &InlinePolicy,
) -> Result<(), StoreError> {
    let (account, kind, owner_name) = owner_columns(&policy.owner);
    let mut statement = connection.prepare_cached(UPSERT_INLINE).map_err(backend)?;
    statement
        .execute(params![
            account,
            kind,
            owner_name,
            policy.name,
            policy.document
        ])
        .map_err(backend)?;
    Ok(())
}

pub(super) fn delete_inline_policy(
    connection: &Connection,
    owner: &PolicyOwner,
    name: &str,
) -> Result<(), StoreError> {
    let (account, kind, owner_name) = owner_columns(owner);
    let mut statement = connection.prepare_cached(DELETE_INLINE).map_err(backend)?;
    let deleted = statement
        .execute(params![account, kind, owner_name, name])
        .map_err(backend)?;
    if deleted == 0 {
        return Err(StoreError::NotFound(format!(
            "Inline policy {name} of {kind} {owner_name} in account {account}"
        )));
    }
    Ok(())
}

pub(super) fn attach_policy(
    connection: &Connection,
    attachment: &Attachment,
) -> Result<(), StoreError> {
    let (account, kind, owner_name) = owner_columns(&attachment.owner);
    let mut statement = connection
        .prepare_cached(INSERT_ATTACHMENT)
        .map_err(backend)?;
    statement
        .execute(params![account, kind, owner_name, attachment.policy_arn])
        .map_err(backend)?;
    Ok(())
}

pub(super) fn detach_policy(
    connection: &Connection,
    attachment: &Attachment,
) -> Result<(), StoreError> {
    let (account, kind, owner_name) = owner_columns(&attachment.owner);
    let mut statement = connection
        .prepare_cached(DELETE_ATTACHMENT)
        .map_err(backend)?;
    let deleted = statement
        .execute(params![account, kind, owner_name, attachment.policy_arn])
        .map_err(backend)?;
    if deleted == 0 {
        return Err(StoreError::NotFound(format!(
            "Policy {} attached to {kind} {owner_name}",
            attachment.policy_arn
        )));
    }
    Ok(())
}

pub(super) fn insert_access_key(
    connection: &Connection,
    key: &AccessKey,
) -> Result<(), StoreError> {
    let mut user_name = None;
    let mut subject = None;
    let mut role = None;
    let mut session_name = None;
    let mut expires = None;
    let mut token_hash = None;
    let mut policy = None;
    let owner_kind = match &key.owner {
        KeyOwner::Root(_) => "root",
        KeyOwner::User { name, .. } => {
            user_name = Some(name.as_str());
            "user"
        }
        KeyOwner::Session(session) => {
            match &session.subject {
                SessionSubject::Role {
                    role_name,
                    session_name: name,
                } => {
                    subject = Some("role");
                    role = Some(role_name.as_str());
                    session_name = Some(name.as_str());
                }
                SessionSubject::User(name) => {
                    subject = Some("user");
                    user_name = Some(name.as_str());
                }
                SessionSubject::Root => subject = Some("root"),
            }
            expires = Some(session.expires.millis());
            token_hash = Some(session.token_hash.as_slice());
            policy = session.policy.as_deref();
            "session"
        }
    };
    let mut statement = connection
        .prepare_cached(INSERT_ACCESS_KEY)
        .map_err(backend)?;
    let inserted = statement
        .execute(params![
            key.access_key_id,
            key.owner.account().as_str(),
            owner_kind,
            user_name,
            key.wrapped_secret,
            key.status.as_str(),
            key.created.millis(),
            subject,
            role,
            session_name,
            expires,
            token_hash,
            policy,
        ])
        .map_err(backend)?;
    if inserted == 0 {
        return Err(StoreError::AlreadyExists(format!(
            "Access key {}",
            key.access_key_id
        )));
    }
    if let KeyOwner::Session(session) = &key.owner {
        let mut statement = connection
            .prepare_cached(INSERT_SESSION_TAG)
            .map_err(backend)?;
        for (position, tag) in session.tags.iter().enumerate() {
            statement
                .execute(params![key.access_key_id, position, tag.key, tag.value])
                .map_err(backend)?;
        }
    }
    Ok(())
}

pub(super) fn set_access_key_status(
    connection: &Connection,
    access_key_id: &str,
    status: AccessKeyStatus,
) -> Result<(), StoreError> {
    let mut statement = connection
        .prepare_cached(UPDATE_ACCESS_KEY_STATUS)
        .map_err(backend)?;
    let updated = statement
        .execute(params![access_key_id, status.as_str()])
        .map_err(backend)?;
    if updated == 0 {
        return Err(StoreError::NotFound(format!("Access key {access_key_id}")));
    }
    Ok(())
}

pub(super) fn delete_access_key(
    connection: &Connection,
    access_key_id: &str,
) -> Result<(), StoreError> {
    let mut statement = connection
        .prepare_cached(DELETE_ACCESS_KEY)
        .map_err(backend)?;
    let deleted = statement.execute(params![access_key_id]).map_err(backend)?;
    if deleted == 0 {
        return Err(StoreError::NotFound(format!("Access key {access_key_id}")));
    }
    let mut statement = connection
        .prepare_cached(DELETE_SESSION_TAGS)
        .map_err(backend)?;
    statement.execute(params![access_key_id]).map_err(backend)?;
    Ok(())
}

pub(super) fn delete_expired_sessions(
    connection: &Connection,
    now: Timestamp,
) -> Result<usize, StoreError> {
    let mut statement = connection
        .prepare_cached(DELETE_EXPIRED_SESSION_TAGS)
        .map_err(backend)?;
    statement.execute(params![now.millis()]).map_err(backend)?;
    let mut statement = connection
        .prepare_cached(DELETE_EXPIRED_SESSIONS)
        .map_err(backend)?;
    statement.execute(params![now.millis()]).map_err(backend)
}

/// Reads every table, joining tags to their records in memory.
pub(super) fn load(connection: &Connection) -> Result<IdentitySnapshot, StoreError> {
    let mut tags = read_tags(connection)?;
    let mut take_tags = |account: &AccountId, entity: Entity, name: &str| {
        tags.remove(&(
            account.as_str().to_owned(),
            entity.as_str(),
            name.to_owned(),
        ))
        .unwrap_or_default()
    };
    let mut snapshot = IdentitySnapshot::default();

    let mut statement = connection.prepare_cached(SELECT_USERS).map_err(backend)?;
    let mut rows = statement.query([]).map_err(backend)?;
    while let Some(row) = rows.next().map_err(backend)? {
        let (account, name, row_name) = identity_columns(row, "iam_users")?;
        let tags = take_tags(&account, Entity::User, &name);
        snapshot.users.push(User {
            path: column(row, &row_name, "path")?,
            user_id: column(row, &row_name, "user_id")?,
            created: Timestamp::from_millis(column(row, &row_name, "created")?),
            account,
            name,
            tags,
        });
    }

    let mut statement = connection.prepare_cached(SELECT_ROLES).map_err(backend)?;
    let mut rows = statement.query([]).map_err(backend)?;
    while let Some(row) = rows.next().map_err(backend)? {
        let (account, name, row_name) = identity_columns(row, "iam_roles")?;
        let tags = take_tags(&account, Entity::Role, &name);
        snapshot.roles.push(Role {
            path: column(row, &row_name, "path")?,
            role_id: column(row, &row_name, "role_id")?,
            trust_policy: column(row, &row_name, "trust_policy")?,
            description: column(row, &row_name, "description")?,
            max_session_duration: column(row, &row_name, "max_session_duration")?,
            created: Timestamp::from_millis(column(row, &row_name, "created")?),
            account,
            name,
            tags,
        });
    }

    let mut statement = connection
        .prepare_cached(SELECT_POLICIES)
        .map_err(backend)?;
    let mut rows = statement.query([]).map_err(backend)?;
    while let Some(row) = rows.next().map_err(backend)? {
        let (account, name, row_name) = identity_columns(row, "iam_policies")?;
        let tags = take_tags(&account, Entity::Policy, &name);
        snapshot.policies.push(ManagedPolicy {
            path: column(row, &row_name, "path")?,
            policy_id: column(row, &row_name, "policy_id")?,
            document: column(row, &row_name, "document")?,
            description: column(row, &row_name, "description")?,
            created: Timestamp::from_millis(column(row, &row_name, "created")?),
            account,
            name,
            tags,
        });
    }

    let mut statement = connection.prepare_cached(SELECT_INLINE).map_err(backend)?;
    let mut rows = statement.query([]).map_err(backend)?;
    while let Some(row) = rows.next().map_err(backend)? {
        let name: String = row.get("name").map_err(backend)?;
        let row_name = format!("in iam_inline_policies (name '{name}')");
        let owner = decode_owner(row, &row_name)?;
        snapshot.inline_policies.push(InlinePolicy {
            owner,
            document: column(row, &row_name, "document")?,
            name,
        });
    }

    let mut statement = connection
        .prepare_cached(SELECT_ATTACHMENTS)
        .map_err(backend)?;
    let mut rows = statement.query([]).map_err(backend)?;
    while let Some(row) = rows.next().map_err(backend)? {
        let policy_arn: String = row.get("policy_arn").map_err(backend)?;
        let row_name = format!("in iam_attachments (policy_arn '{policy_arn}')");
        snapshot.attachments.push(Attachment {
            owner: decode_owner(row, &row_name)?,
            policy_arn,
        });
    }

    let mut session_tags = read_session_tags(connection)?;
    let mut statement = connection
        .prepare_cached(SELECT_ACCESS_KEYS)
        .map_err(backend)?;
    let mut rows = statement.query([]).map_err(backend)?;
    while let Some(row) = rows.next().map_err(backend)? {
        let id: String = row.get("access_key_id").map_err(backend)?;
        let tags = session_tags.remove(&id).unwrap_or_default();
        snapshot.access_keys.push(decode_access_key(row, id, tags)?);
    }
    Ok(snapshot)
}

fn execute_user(connection: &Connection, sql: &str, user: &User) -> Result<usize, StoreError> {
    let mut statement = connection.prepare_cached(sql).map_err(backend)?;
    statement
        .execute(params![
            user.account.as_str(),
            user.name,
            user.path,
            user.user_id,
            user.created.millis(),
        ])
        .map_err(backend)
}

fn execute_role(connection: &Connection, sql: &str, role: &Role) -> Result<usize, StoreError> {
    let mut statement = connection.prepare_cached(sql).map_err(backend)?;
    statement
        .execute(params![
            role.account.as_str(),
            role.name,
            role.path,
            role.role_id,
            role.trust_policy,
            role.description,
            role.max_session_duration,
            role.created.millis(),
        ])
        .map_err(backend)
}

fn write_tags(
    connection: &Connection,
    account: &AccountId,
    entity: Entity,
    name: &str,
    tags: &[Tag],
) -> Result<(), StoreError> {
    let mut statement = connection.prepare_cached(INSERT_TAG).map_err(backend)?;
    for (position, tag) in tags.iter().enumerate() {
        statement
            .execute(params![
                account.as_str(),
                entity.as_str(),
                name,
                position,
                tag.key,
                tag.value
            ])
            .map_err(backend)?;
    }
    Ok(())
}

fn delete_tags(
    connection: &Connection,
    account: &AccountId,
    entity: Entity,
    name: &str,
) -> Result<(), StoreError> {
    let mut statement = connection.prepare_cached(DELETE_TAGS).map_err(backend)?;
    statement
        .execute(params![account.as_str(), entity.as_str(), name])
        .map_err(backend)?;
    Ok(())
}

type TagsByEntity = HashMap<(String, &'static str, String), Vec<Tag>>;

fn read_tags(connection: &Connection) -> Result<TagsByEntity, StoreError> {
    let mut statement = connection.prepare_cached(SELECT_TAGS).map_err(backend)?;
    let mut rows = statement.query([]).map_err(backend)?;
    let mut tags = TagsByEntity::new();
    while let Some(row) = rows.next().map_err(backend)? {
        let account: String = row.get("account").map_err(backend)?;
        let entity: String = row.get("entity").map_err(backend)?;
        let name: String = row.get("name").map_err(backend)?;
        let entity = match entity.as_str() {
            "user" => Entity::User,
            "role" => Entity::Role,
            "policy" => Entity::Policy,
            other => {
                return Err(corrupt(
                    &format!("in iam_tags (account '{account}', name '{name}')"),
                    format!("entity: '{other}' is not user, role or policy"),
                ));
            }
        };
        let row_name = format!("in iam_tags (account '{account}', name '{name}')");
        tags.entry((account, entity.as_str(), name))
            .or_default()
            .push(Tag {
                key: column(row, &row_name, "tag_key")?,
                value: column(row, &row_name, "tag_value")?,
            });
    }
    Ok(tags)
}

fn read_session_tags(connection: &Connection) -> Result<HashMap<String, Vec<Tag>>, StoreError> {
    let mut statement = connection
        .prepare_cached(SELECT_SESSION_TAGS)
        .map_err(backend)?;
    let mut rows = statement.query([]).map_err(backend)?;
    let mut tags: HashMap<String, Vec<Tag>> = HashMap::new();
    while let Some(row) = rows.next().map_err(backend)? {
        let id: String = row.get("access_key_id").map_err(backend)?;
        let row_name = format!("in iam_session_tags (access_key_id '{id}')");
        tags.entry(id).or_default().push(Tag {
            key: column(row, &row_name, "tag_key")?,
            value: column(row, &row_name, "tag_value")?,
        });
    }
    Ok(tags)
}

/// The account and name columns every identity table starts with, and a name for the row in errors.
fn identity_columns(row: &Row<'_>, table: &str) -> Result<(AccountId, String, String), StoreError> {
    let account: String = row.get("account").map_err(backend)?;
    let name: String = row.get("name").map_err(backend)?;
    let row_name = format!("in {table} (account '{account}', name '{name}')");
    let account = parse(&row_name, "account", &account)?;
    Ok((account, name, row_name))
}

fn owner_columns(owner: &PolicyOwner) -> (&str, &'static str, &str) {
    match owner {
        PolicyOwner::User { account, name } => (account.as_str(), "user", name),
        PolicyOwner::Role { account, name } => (account.as_str(), "role", name),
    }
}

fn decode_owner(row: &Row<'_>, row_name: &str) -> Result<PolicyOwner, StoreError> {
    let account: AccountId = parse_column(row, row_name, "account")?;
    let kind: String = column(row, row_name, "owner_kind")?;
    let name: String = column(row, row_name, "owner_name")?;
    match kind.as_str() {
        "user" => Ok(PolicyOwner::User { account, name }),
        "role" => Ok(PolicyOwner::Role { account, name }),
        other => Err(corrupt(
            row_name,
            format!("owner_kind: '{other}' is not user or role"),
        )),
    }
}

fn decode_access_key(row: &Row<'_>, id: String, tags: Vec<Tag>) -> Result<AccessKey, StoreError> {
    let row_name = format!("in iam_access_keys (access_key_id '{id}')");
    let account: AccountId = parse_column(row, &row_name, "account")?;
    let owner_kind: String = column(row, &row_name, "owner_kind")?;
    let user_name: Option<String> = column(row, &row_name, "user_name")?;
    let missing = |name: &str| corrupt(&row_name, format!("{name}: missing"));
    let owner = match owner_kind.as_str() {
        "root" => KeyOwner::Root(account),
        "user" => KeyOwner::User {
            account,
            name: user_name.ok_or_else(|| missing("user_name"))?,
        },
        "session" => {
            let subject: String = column(row, &row_name, "session_subject")?;
            let subject = match subject.as_str() {
                "role" => SessionSubject::Role {
                    role_name: column::<Option<String>>(row, &row_name, "session_role")?
                        .ok_or_else(|| missing("session_role"))?,
                    session_name: column::<Option<String>>(row, &row_name, "session_name")?
                        .ok_or_else(|| missing("session_name"))?,
                },
                "user" => SessionSubject::User(user_name.ok_or_else(|| missing("user_name"))?),
                "root" => SessionSubject::Root,
                other => {
                    return Err(corrupt(
                        &row_name,
                        format!("session_subject: '{other}' is not role, user or root"),
                    ));
                }
            };
            KeyOwner::Session(Box::new(Session {
                account,
                subject,
                expires: Timestamp::from_millis(column(row, &row_name, "session_expires")?),
                token_hash: column(row, &row_name, "session_token_hash")?,
                tags,
                policy: column(row, &row_name, "session_policy")?,
            }))
        }
        other => {
            return Err(corrupt(
                &row_name,
                format!("owner_kind: '{other}' is not root, user or session"),
            ));
        }
    };
    Ok(AccessKey {
        wrapped_secret: column(row, &row_name, "wrapped_secret")?,
        status: parse_column(row, &row_name, "status")?,
        created: Timestamp::from_millis(column(row, &row_name, "created")?),
        access_key_id: id,
        owner,
    })
}

#[async_trait]
impl IdentityStore for SqliteStore {
    async fn load_identities(&self) -> Result<IdentitySnapshot, StoreError> {
        self.read(load).await
    }

    async fn insert_user(&self, user: &User) -> Result<(), StoreError> {
        let user = user.clone();
        self.write(move |connection| insert_user(connection, &user))
            .await
    }

    async fn put_user(&self, user: &User) -> Result<(), StoreError> {
        let user = user.clone();
        self.write(move |connection| put_user(connection, &user))
            .await
    }

    async fn delete_user(&self, account: &AccountId, name: &str) -> Result<(), StoreError> {
        let account = account.clone();
        let name = name.to_owned();
        self.write(move |connection| delete_user(connection, &account, &name))
            .await
    }

    async fn insert_role(&self, role: &Role) -> Result<(), StoreError> {
        let role = role.clone();
        self.write(move |connection| insert_role(connection, &role))
            .await
    }

    async fn put_role(&self, role: &Role) -> Result<(), StoreError> {
        let role = role.clone();
        self.write(move |connection| put_role(connection, &role))
            .await
    }

    async fn delete_role(&self, account: &AccountId, name: &str) -> Result<(), StoreError> {
        let account = account.clone();
        let name = name.to_owned();
        self.write(move |connection| delete_role(connection, &account, &name))
            .await
    }

    async fn insert_policy(&self, policy: &ManagedPolicy) -> Result<(), StoreError> {
        let policy = policy.clone();
        self.write(move |connection| insert_policy(connection, &policy))
            .await
    }

    async fn delete_policy(&self, account: &AccountId, name: &str) -> Result<(), StoreError> {
        let account = account.clone();
        let name = name.to_owned();
        self.write(move |connection| delete_policy(connection, &account, &name))
            .await
    }

    async fn put_inline_policy(&self, policy: &InlinePolicy) -> Result<(), StoreError> {
        let policy = policy.clone();
        self.write(move |connection| put_inline_policy(connection, &policy))
            .await
    }

    async fn delete_inline_policy(
        &self,
        owner: &PolicyOwner,
        name: &str,
    ) -> Result<(), StoreError> {
        let owner = owner.clone();
        let name = name.to_owned();
        self.write(move |connection| delete_inline_policy(connection, &owner, &name))
            .await
    }

    async fn attach_policy(&self, attachment: &Attachment) -> Result<(), StoreError> {
        let attachment = attachment.clone();
        self.write(move |connection| attach_policy(connection, &attachment))
            .await
    }

    async fn detach_policy(&self, attachment: &Attachment) -> Result<(), StoreError> {
        let attachment = attachment.clone();
        self.write(move |connection| detach_policy(connection, &attachment))
            .await
    }

    async fn insert_access_key(&self, key: &AccessKey) -> Result<(), StoreError> {
        let key = key.clone();
        self.write(move |connection| insert_access_key(connection, &key))
            .await
    }

    async fn set_access_key_status(
        &self,
        access_key_id: &str,
        status: AccessKeyStatus,
    ) -> Result<(), StoreError> {
        let access_key_id = access_key_id.to_owned();
        self.write(move |connection| set_access_key_status(connection, &access_key_id, status))
            .await
    }

    async fn delete_access_key(&self, access_key_id: &str) -> Result<(), StoreError> {
        let access_key_id = access_key_id.to_owned();
        self.write(move |connection| delete_access_key(connection, &access_key_id))
            .await
    }

    async fn delete_expired_sessions(&self, now: Timestamp) -> Result<usize, StoreError> {
        self.write(move |connection| delete_expired_sessions(connection, now))
            .await
    }
}
