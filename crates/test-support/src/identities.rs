//! The conformance suite every [`IdentityStore`] backend must pass.
//!
//! Each check starts from and leaves behind a store with no identities, so checks do not depend on each
//! other's leftovers and the suite can run again on the same store, for instance after reopening it.

use std::fmt;

use strongroom_storage::{IdentitySnapshot, IdentityStore, StoreError};
use strongroom_types::{
    AccessKey, AccessKeyStatus, AccountId, Attachment, InlinePolicy, KeyOwner, ManagedPolicy,
    PolicyOwner, Role, Session, SessionSubject, Tag, Timestamp, User,
};

use crate::fixtures::base_time;

/// Runs every check against `store`, which must hold no identities; panics with a description of the
/// first failure, and leaves the store empty again.
pub async fn check_identity_store(store: &dyn IdentityStore) {
    check_empty(
        store,
        "before the suite (check_identity_store needs an empty store)",
    )
    .await;
    check_users(store).await;
    check_roles(store).await;
    check_policies(store).await;
    check_inline_policies(store).await;
    check_attachments(store).await;
    check_access_keys(store).await;
    check_expired_sessions(store).await;
    check_snapshot_order(store).await;
    check_empty(store, "after the suite").await;
}

async fn check_empty(store: &dyn IdentityStore, when: &str) {
    let snapshot = load(store).await;
    assert_eq!(
        snapshot,
        IdentitySnapshot::default(),
        "{when}: the store holds identities"
    );
}

async fn check_users(store: &dyn IdentityStore) {
    let alice = sample_user(ONE, "alice", "/", &[("team", "blue"), ("cost", "1")]);
    must(store.insert_user(&alice).await, "insert_user");
    assert_already_exists(
        &store.insert_user(&alice).await,
        "a second user named alice",
    );
    let other_account = sample_user(TWO, "alice", "/ops/", &[]);
    must(
        store.insert_user(&other_account).await,
        "insert_user in another account",
    );
    assert_eq!(
        load(store).await.users,
        vec![alice.clone(), other_account.clone()]
    );

    let mut changed = alice.clone();
    changed.path = "/moved/".to_owned();
    changed.tags = vec![tag("z", "last"), tag("team", "red"), tag("a", "")];
    must(store.put_user(&changed).await, "put_user");
    let snapshot = load(store).await;
    assert_eq!(
        snapshot.users,
        vec![changed.clone(), other_account.clone()],
        "put_user replaces path and tags, keeping the tags' order"
    );
    let missing = sample_user(ONE, "nobody", "/", &[]);
    assert_not_found(
        &store.put_user(&missing).await,
        "put_user of a missing user",
    );

    must(
        store.delete_user(&account(ONE), "alice").await,
        "delete_user",
    );
    assert_not_found(
        &store.delete_user(&account(ONE), "alice").await,
        "deleting alice twice",
    );
    assert_eq!(load(store).await.users, vec![other_account.clone()]);
    // A user created again under the same name starts without the old tags.
    let again = sample_user(ONE, "alice", "/", &[]);
    must(store.insert_user(&again).await, "insert_user again");
    assert_eq!(load(store).await.users, vec![again, other_account]);
    must(
        store.delete_user(&account(ONE), "alice").await,
        "delete_user",
    );
    must(
        store.delete_user(&account(TWO), "alice").await,
        "delete_user",
    );
}

async fn check_roles(store: &dyn IdentityStore) {
    let role = sample_role(ONE, "deployer", &[("env", "prod")]);
    must(store.insert_role(&role).await, "insert_role");
    assert_already_exists(
        &store.insert_role(&role).await,
        "a second role named deployer",
    );
    assert_eq!(load(store).await.roles, vec![role.clone()]);

    let mut changed = role.clone();
    changed.trust_policy = r#"{"Version":"2012-10-17","Statement":[]}"#.to_owned();
    changed.description = "Déployeur — with Unicode".to_owned();
    changed.max_session_duration = 43_200;
    changed.tags = vec![tag("b", "2"), tag("a", "1")];
    must(store.put_role(&changed).await, "put_role");
    assert_eq!(load(store).await.roles, vec![changed]);
    assert_not_found(
        &store.put_role(&sample_role(ONE, "ghost", &[])).await,
        "put_role of a missing role",
    );

    must(
        store.delete_role(&account(ONE), "deployer").await,
        "delete_role",
    );
    assert_not_found(
        &store.delete_role(&account(ONE), "deployer").await,
        "deleting a role twice",
    );
    let again = sample_role(ONE, "deployer", &[]);
    must(store.insert_role(&again).await, "insert_role again");
    assert_eq!(
        load(store).await.roles,
        vec![again],
        "the old tags are gone"
    );
    must(
        store.delete_role(&account(ONE), "deployer").await,
        "delete_role",
    );
}

async fn check_policies(store: &dyn IdentityStore) {
    let policy = sample_policy(ONE, "read-only", &[("owner", "sec")]);
    must(store.insert_policy(&policy).await, "insert_policy");
    assert_already_exists(
        &store.insert_policy(&policy).await,
        "a second read-only policy",
    );
    let elsewhere = sample_policy(TWO, "read-only", &[]);
    must(
        store.insert_policy(&elsewhere).await,
        "insert_policy in another account",
    );
    assert_eq!(load(store).await.policies, vec![policy, elsewhere]);

    must(
        store.delete_policy(&account(ONE), "read-only").await,
        "delete_policy",
    );
    assert_not_found(
        &store.delete_policy(&account(ONE), "read-only").await,
        "deleting a policy twice",
    );
    let again = sample_policy(ONE, "read-only", &[]);
    must(store.insert_policy(&again).await, "insert_policy again");
    assert_eq!(
        load(store).await.policies[0],
        again,
        "the old tags are gone"
    );
    must(
        store.delete_policy(&account(ONE), "read-only").await,
        "delete_policy",
    );
    must(
        store.delete_policy(&account(TWO), "read-only").await,
        "delete_policy",
    );
}

async fn check_inline_policies(store: &dyn IdentityStore) {
    let user = PolicyOwner::User {
        account: account(ONE),
        name: "same".to_owned(),
    };
    let role = PolicyOwner::Role {
        account: account(ONE),
        name: "same".to_owned(),
    };
    let for_user = InlinePolicy {
        owner: user.clone(),
        name: "p".to_owned(),
        document: document("kms:Encrypt"),
    };
    let for_role = InlinePolicy {
        owner: role.clone(),
        name: "p".to_owned(),
        document: document("kms:Decrypt"),
    };
    must(
        store.put_inline_policy(&for_user).await,
        "put_inline_policy",
    );
    must(
        store.put_inline_policy(&for_role).await,
        "put_inline_policy",
    );
    assert_eq!(
        inline_policies(store).await,
        vec![for_user.clone(), for_role.clone()],
        "a user and a role of the same name hold separate policies"
    );
    let replaced = InlinePolicy {
        document: document("kms:*"),
        ..for_user.clone()
    };
    must(
        store.put_inline_policy(&replaced).await,
        "put_inline_policy again",
    );
    assert_eq!(
        inline_policies(store).await,
        vec![replaced, for_role],
        "putting a policy of the same name replaces its document"
    );
    must(
        store.delete_inline_policy(&user, "p").await,
        "delete_inline_policy",
    );
    assert_not_found(
        &store.delete_inline_policy(&user, "p").await,
        "deleting an inline policy twice",
    );
    must(
        store.delete_inline_policy(&role, "p").await,
        "delete_inline_policy",
    );
}

async fn check_attachments(store: &dyn IdentityStore) {
    let arn = format!("arn:aws:iam::{ONE}:policy/team/read-only");
    let to_user = Attachment {
        owner: PolicyOwner::User {
            account: account(ONE),
            name: "alice".to_owned(),
        },
        policy_arn: arn.clone(),
    };
    let to_role = Attachment {
        owner: PolicyOwner::Role {
            account: account(ONE),
            name: "alice".to_owned(),
        },
        policy_arn: arn,
    };
    must(store.attach_policy(&to_user).await, "attach_policy");
    must(store.attach_policy(&to_user).await, "attach_policy again");
    must(
        store.attach_policy(&to_role).await,
        "attach_policy to a role",
    );
    assert_eq!(
        attachments(store).await,
        vec![to_user.clone(), to_role.clone()],
        "attaching twice records one attachment"
    );
    must(store.detach_policy(&to_user).await, "detach_policy");
    assert_not_found(&store.detach_policy(&to_user).await, "detaching twice");
    assert_eq!(attachments(store).await, vec![to_role.clone()]);
    must(store.detach_policy(&to_role).await, "detach_policy");
}

async fn check_access_keys(store: &dyn IdentityStore) {
    let keys = vec![
        access_key("AKIAROOT000000000001", KeyOwner::Root(account(ONE))),
        access_key(
            "AKIAUSER000000000001",
            KeyOwner::User {
                account: account(ONE),
                name: "alice".to_owned(),
            },
        ),
        access_key(
            "ASIAROLE000000000001",
            KeyOwner::Session(Box::new(Session {
                account: account(ONE),
                subject: SessionSubject::Role {
                    role_name: "deployer".to_owned(),
                    session_name: "ci@example.com".to_owned(),
                },
                expires: base_time().plus_days(1),
                token_hash: vec![0, 1, 2, 255, 0],
                tags: vec![tag("project", "x"), tag("cost", "")],
                policy: Some(document("kms:Encrypt")),
            })),
        ),
        access_key(
            "ASIAROOT000000000001",
            KeyOwner::Session(Box::new(Session {
                account: account(TWO),
                subject: SessionSubject::Root,
                expires: base_time().plus_days(2),
                token_hash: vec![9; 32],
                tags: Vec::new(),
                policy: None,
            })),
        ),
        access_key(
            "ASIAUSER000000000001",
            KeyOwner::Session(Box::new(Session {
                account: account(ONE),
                subject: SessionSubject::User("alice".to_owned()),
                expires: base_time().plus_days(3),
                token_hash: vec![7; 32],
                tags: Vec::new(),
                policy: None,
            })),
        ),
    ];
    for key in &keys {
        must(store.insert_access_key(key).await, "insert_access_key");
    }
    assert_already_exists(
        &store.insert_access_key(&keys[1]).await,
        "a second key with the same id",
    );
    assert_eq!(
        load(store).await.access_keys,
        keys,
        "every kind of owner round-trips"
    );

    must(
        store
            .set_access_key_status("AKIAUSER000000000001", AccessKeyStatus::Inactive)
            .await,
        "set_access_key_status",
    );
    let mut expected = keys.clone();
    expected[1].status = AccessKeyStatus::Inactive;
    assert_eq!(load(store).await.access_keys, expected);
    assert_not_found(
        &store
            .set_access_key_status("AKIANOTHERE000000000", AccessKeyStatus::Active)
            .await,
        "set_access_key_status of a missing key",
    );

    for key in &keys {
        must(
            store.delete_access_key(&key.access_key_id).await,
            "delete_access_key",
        );
    }
    assert_not_found(
        &store.delete_access_key(&keys[0].access_key_id).await,
        "deleting a key twice",
    );
    // A session created again under a deleted id carries only its own tags.
    let mut again = keys[2].clone();
    if let KeyOwner::Session(session) = &mut again.owner {
        session.tags = vec![tag("fresh", "1")];
    }
    must(
        store.insert_access_key(&again).await,
        "insert_access_key again",
    );
    assert_eq!(load(store).await.access_keys, vec![again.clone()]);
    must(
        store.delete_access_key(&again.access_key_id).await,
        "delete_access_key",
    );
}

async fn check_expired_sessions(store: &dyn IdentityStore) {
    let session = |id: &str, expires: Timestamp| {
        access_key(
            id,
            KeyOwner::Session(Box::new(Session {
                account: account(ONE),
                subject: SessionSubject::Root,
                expires,
                token_hash: vec![1; 32],
                tags: vec![tag("t", id)],
                policy: None,
            })),
        )
    };
    let now = base_time().plus_days(10);
    let expired = session("ASIAOLD0000000000001", base_time());
    let at_now = session("ASIAOLD0000000000002", now);
    let live = session("ASIANEW0000000000001", now.plus_days(1));
    let long_term = access_key("AKIAROOT000000000001", KeyOwner::Root(account(ONE)));
    for key in [&expired, &at_now, &live, &long_term] {
        must(store.insert_access_key(key).await, "insert_access_key");
    }
    let deleted = must(
        store.delete_expired_sessions(now).await,
        "delete_expired_sessions",
    );
    assert_eq!(deleted, 2, "sessions expiring at or before now are deleted");
    assert_eq!(
        load(store).await.access_keys,
        vec![long_term.clone(), live.clone()],
        "long-term keys and live sessions stay"
    );
    assert_eq!(
        must(
            store.delete_expired_sessions(now).await,
            "delete_expired_sessions again"
        ),
        0
    );
    // The deleted sessions' tags went with them.
    must(
        store.insert_access_key(&expired).await,
        "insert_access_key again",
    );
    let reloaded = load(store).await.access_keys;
    assert_eq!(
        reloaded
            .iter()
            .find(|key| key.access_key_id == expired.access_key_id),
        Some(&expired)
    );
    for key in [&expired, &live, &long_term] {
        must(
            store.delete_access_key(&key.access_key_id).await,
            "delete_access_key",
        );
    }
}

async fn check_snapshot_order(store: &dyn IdentityStore) {
    let names = ["m", "B", "a", "z"];
    for name in names {
        must(
            store.insert_user(&sample_user(TWO, name, "/", &[])).await,
            "insert_user",
        );
        must(
            store.insert_user(&sample_user(ONE, name, "/", &[])).await,
            "insert_user",
        );
    }
    let listed: Vec<(String, String)> = load(store)
        .await
        .users
        .into_iter()
        .map(|user| (user.account.to_string(), user.name))
        .collect();
    let mut expected: Vec<(String, String)> = [ONE, TWO]
        .iter()
        .flat_map(|account| {
            names
                .iter()
                .map(|name| (account.to_string(), name.to_string()))
        })
        .collect();
    expected.sort();
    assert_eq!(listed, expected, "users come ordered by account, then name");
    for name in names {
        for owner in [ONE, TWO] {
            must(
                store.delete_user(&account(owner), name).await,
                "delete_user",
            );
        }
    }
}

const ONE: &str = "111111111111";
const TWO: &str = "222222222222";

fn account(id: &str) -> AccountId {
    id.parse()
        .unwrap_or_else(|error| panic!("bad test account {id}: {error}"))
}

fn tag(key: &str, value: &str) -> Tag {
    Tag {
        key: key.to_owned(),
        value: value.to_owned(),
    }
}

fn document(action: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"{action}","Resource":"*"}}]}}"#
    )
}

fn sample_user(owner: &str, name: &str, path: &str, tags: &[(&str, &str)]) -> User {
    User {
        account: account(owner),
        name: name.to_owned(),
        path: path.to_owned(),
        user_id: format!("AIDA{:0>17}", name.to_uppercase()),
        created: base_time(),
        tags: tags.iter().map(|(key, value)| tag(key, value)).collect(),
    }
}

fn sample_role(owner: &str, name: &str, tags: &[(&str, &str)]) -> Role {
    Role {
        account: account(owner),
        name: name.to_owned(),
        path: "/service/".to_owned(),
        role_id: format!("AROA{:0>17}", name.to_uppercase()),
        trust_policy: format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{owner}:root"}},"Action":"sts:AssumeRole"}}]}}"#
        ),
        description: String::new(),
        max_session_duration: 3600,
        created: base_time().plus_days(1),
        tags: tags.iter().map(|(key, value)| tag(key, value)).collect(),
    }
}

fn sample_policy(owner: &str, name: &str, tags: &[(&str, &str)]) -> ManagedPolicy {
    ManagedPolicy {
        account: account(owner),
        name: name.to_owned(),
        path: "/team/".to_owned(),
        policy_id: format!("ANPA{:0>17}", name.len()),
        document: document("kms:Describe*"),
        description: "Lets a team look".to_owned(),
        created: base_time().plus_days(2),
        tags: tags.iter().map(|(key, value)| tag(key, value)).collect(),
    }
}

fn access_key(id: &str, owner: KeyOwner) -> AccessKey {
    AccessKey {
        access_key_id: id.to_owned(),
        wrapped_secret: id.bytes().rev().chain([0, 0xff]).collect(),
        owner,
        status: AccessKeyStatus::Active,
        created: base_time().plus_days(5),
    }
}

async fn load(store: &dyn IdentityStore) -> IdentitySnapshot {
    must(store.load_identities().await, "load_identities")
}

/// Inline policies in owner order (users before roles), which the snapshot does not promise.
async fn inline_policies(store: &dyn IdentityStore) -> Vec<InlinePolicy> {
    let mut policies = load(store).await.inline_policies;
    policies.sort_by(|a, b| (&a.owner, &a.name).cmp(&(&b.owner, &b.name)));
    policies
}

/// Attachments in owner order (users before roles), which the snapshot does not promise.
async fn attachments(store: &dyn IdentityStore) -> Vec<Attachment> {
    let mut attachments = load(store).await.attachments;
    attachments.sort();
    attachments
}

fn must<T>(res: Result<T, StoreError>, call: &str) -> T {
    match res {
        Ok(value) => value,
        Err(error) => panic!("{call} failed: {error} ({error:?})"),
    }
}

fn assert_already_exists<T: fmt::Debug>(res: &Result<T, StoreError>, what: &str) {
    assert!(
        matches!(res, Err(StoreError::AlreadyExists(_))),
        "{what}: expected AlreadyExists, got {res:?}"
    );
}

fn assert_not_found<T: fmt::Debug>(res: &Result<T, StoreError>, what: &str) {
    assert!(
        matches!(res, Err(StoreError::NotFound(_))),
        "{what}: expected NotFound, got {res:?}"
    );
}
