//! Unit tests of the IAM service over a real SQLite store and file root key.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use strongroom_keystore::FileRootKey;
use strongroom_policy::MapContext;
use strongroom_storage::sqlite::SqliteStore;
use strongroom_test_support::TempDir;
use strongroom_test_support::fixtures::base_time;
use strongroom_types::{AccessKeyStatus, AccountId, Tag, Timestamp};

use crate::policies::NewPolicy;
use crate::roles::NewRole;
use crate::sts::AssumeRoleRequest;
use crate::{Clock, IamError, Identities, LookupError, PrincipalKind, ResolvedPrincipal};

const ACCOUNT: &str = "111122223333";
const OTHER: &str = "444455556666";

struct Fixture {
    identities: Identities,
    now: Arc<Mutex<Timestamp>>,
    _dir: TempDir,
}

impl Fixture {
    async fn new() -> Fixture {
        let dir = TempDir::new("iam-unit");
        let now = Arc::new(Mutex::new(base_time()));
        let identities = open(&dir, &now).await;
        Fixture {
            identities,
            now,
            _dir: dir,
        }
    }

    fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|p| p.into_inner());
        *now = now.plus(by);
    }

    /// A user with a fresh access key, resolved as a signed request would resolve it.
    async fn user(&self, name: &str) -> Arc<ResolvedPrincipal> {
        let root = root(ACCOUNT);
        self.identities
            .create_user(&root, name, None, Vec::new())
            .await
            .expect("CreateUser");
        let key = self
            .identities
            .create_access_key(&root, Some(name))
            .await
            .expect("CreateAccessKey");
        self.identities
            .lookup(&key.info.access_key_id, None)
            .expect("the new key authenticates")
            .principal
    }

    fn allows(&self, principal: &ResolvedPrincipal, action: &str, resource: &str) -> bool {
        let outcome =
            self.identities
                .evaluate_identity(principal, action, resource, &MapContext::new());
        outcome.allow && !outcome.explicit_deny
    }
}

async fn open(dir: &TempDir, now: &Arc<Mutex<Timestamp>>) -> Identities {
    let store = Arc::new(SqliteStore::open(&dir.path().join("db")).expect("open the store"));
    let root_key =
        Arc::new(FileRootKey::open_or_create(&dir.path().join("root.key")).expect("root key"));
    let now = now.clone();
    let clock: Clock = Arc::new(move || *now.lock().unwrap_or_else(|p| p.into_inner()));
    Identities::load(store, root_key, clock)
        .await
        .expect("load identities")
}

fn account(id: &str) -> AccountId {
    id.parse().expect("a valid account")
}

fn root(id: &str) -> ResolvedPrincipal {
    ResolvedPrincipal::root(account(id))
}

fn allow(action: &str, resource: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"{action}","Resource":"{resource}"}}]}}"#
    )
}

fn trust(principal: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{principal}"}},"Action":["sts:AssumeRole","sts:TagSession"]}}]}}"#
    )
}

fn new_role(name: &str, trusted: &str) -> NewRole {
    NewRole {
        name: name.to_owned(),
        trust_policy: trust(trusted),
        ..NewRole::default()
    }
}

fn assume(role_arn: &str, session: &str) -> AssumeRoleRequest {
    AssumeRoleRequest {
        role_arn: role_arn.to_owned(),
        session_name: session.to_owned(),
        ..AssumeRoleRequest::default()
    }
}

fn code<T: std::fmt::Debug>(result: Result<T, IamError>) -> &'static str {
    match result {
        Ok(value) => panic!("expected an error, got {value:?}"),
        Err(error) => error.code(),
    }
}

#[tokio::test]
async fn users_are_created_listed_and_unique_without_regard_to_case() {
    let fixture = Fixture::new().await;
    let ids = &fixture.identities;
    let root = root(ACCOUNT);
    let tags = vec![Tag {
        key: "team".to_owned(),
        value: "blue".to_owned(),
    }];
    let alice = ids
        .create_user(&root, "Alice", Some("/eng/"), tags)
        .await
        .expect("CreateUser");
    assert_eq!(
        alice.arn(),
        format!("arn:aws:iam::{ACCOUNT}:user/eng/Alice")
    );
    assert!(alice.user_id.starts_with("AIDA") && alice.user_id.len() == 21);
    assert_eq!(
        code(ids.create_user(&root, "alice", None, Vec::new()).await),
        "EntityAlreadyExists"
    );
    assert_eq!(ids.get_user(&root, Some("ALICE")).expect("GetUser"), alice);
    assert_eq!(code(ids.get_user(&root, Some("nobody"))), "NoSuchEntity");
    assert_eq!(
        code(ids.create_user(&root, "bad/name", None, Vec::new()).await),
        "ValidationError"
    );
    for name in ["b", "c", "d"] {
        ids.create_user(&root, name, None, Vec::new())
            .await
            .expect("CreateUser");
    }
    // Another account's users are invisible.
    ids.create_user(&self::root(OTHER), "e", None, Vec::new())
        .await
        .expect("CreateUser elsewhere");
    let first = ids
        .list_users(&root, None, None, Some(3))
        .expect("ListUsers");
    let names: Vec<&str> = first.items.iter().map(|user| user.name.as_str()).collect();
    assert_eq!(names, ["Alice", "b", "c"]);
    let rest = ids
        .list_users(&root, None, first.marker.as_deref(), Some(3))
        .expect("ListUsers page 2");
    let names: Vec<&str> = rest.items.iter().map(|user| user.name.as_str()).collect();
    assert_eq!(names, ["d"]);
    assert_eq!(rest.marker, None);
    let engineers = ids
        .list_users(&root, Some("/eng/"), None, None)
        .expect("ListUsers by path");
    assert_eq!(engineers.items.len(), 1);
}

#[tokio::test]
async fn access_keys_authenticate_until_deactivated_or_deleted() {
    let fixture = Fixture::new().await;
    let ids = &fixture.identities;
    let root = root(ACCOUNT);
    ids.create_user(&root, "bob", None, Vec::new())
        .await
        .expect("CreateUser");
    let key = ids
        .create_access_key(&root, Some("bob"))
        .await
        .expect("CreateAccessKey");
    let id = key.info.access_key_id.clone();
    assert!(id.starts_with("AKIA") && id.len() == 20, "{id}");
    assert_eq!(key.secret.len(), 40);
    let credential = ids.lookup(&id, None).expect("lookup");
    assert_eq!(*credential.secret, *key.secret);
    assert_eq!(
        credential.principal.arn,
        format!("arn:aws:iam::{ACCOUNT}:user/bob")
    );
    assert_eq!(
        ids.lookup(&id, Some("a token")).err(),
        Some(LookupError::Unknown)
    );

    ids.create_access_key(&root, Some("bob"))
        .await
        .expect("a second key");
    assert_eq!(
        code(ids.create_access_key(&root, Some("bob")).await),
        "LimitExceeded"
    );
    let listed = ids
        .list_access_keys(&root, Some("bob"), None, None)
        .expect("ListAccessKeys");
    assert_eq!(listed.items.len(), 2);

    ids.update_access_key(&root, Some("bob"), &id, AccessKeyStatus::Inactive)
        .await
        .expect("UpdateAccessKey");
    assert_eq!(ids.lookup(&id, None).err(), Some(LookupError::Unknown));
    ids.update_access_key(&root, Some("bob"), &id, AccessKeyStatus::Active)
        .await
        .expect("UpdateAccessKey");
    assert!(ids.lookup(&id, None).is_ok());

    assert_eq!(
        code(ids.delete_user(&root, "bob").await),
        "DeleteConflict",
        "a user with keys cannot be deleted"
    );
    for key in listed.items {
        ids.delete_access_key(&root, Some("bob"), &key.access_key_id)
            .await
            .expect("DeleteAccessKey");
    }
    assert_eq!(ids.lookup(&id, None).err(), Some(LookupError::Unknown));
    ids.delete_user(&root, "bob").await.expect("DeleteUser");
}

#[tokio::test]
async fn identity_policies_allow_and_deny() {
    let fixture = Fixture::new().await;
    let ids = &fixture.identities;
    let root = root(ACCOUNT);
    let carol = fixture.user("carol").await;
    let key = format!("arn:aws:kms:us-east-1:{ACCOUNT}:key/k1");
    assert!(
        !fixture.allows(&carol, "kms:Encrypt", &key),
        "no policy, no access"
    );

    ids.put_user_policy(&root, "carol", "crypto", &allow("kms:Encrypt", "*"))
        .await
        .expect("PutUserPolicy");
    assert!(fixture.allows(&carol, "kms:Encrypt", &key));
    assert!(!fixture.allows(&carol, "kms:Decrypt", &key));

    let managed = ids
        .create_policy(
            &root,
            NewPolicy {
                name: "decrypt".to_owned(),
                path: Some("/team/".to_owned()),
                document: allow("kms:Decrypt", "*"),
                ..NewPolicy::default()
            },
        )
        .await
        .expect("CreatePolicy");
    let arn = managed.policy.arn();
    assert_eq!(arn, format!("arn:aws:iam::{ACCOUNT}:policy/team/decrypt"));
    ids.attach_user_policy(&root, "carol", &arn)
        .await
        .expect("AttachUserPolicy");
    assert!(fixture.allows(&carol, "kms:Decrypt", &key));
    assert_eq!(
        ids.get_policy(&root, &arn)
            .expect("GetPolicy")
            .attachment_count,
        1
    );
    assert_eq!(code(ids.delete_policy(&root, &arn).await), "DeleteConflict");

    let deny = r#"{"Version":"2012-10-17","Statement":[{"Sid":"NoK1","Effect":"Deny","Action":"kms:*","Resource":"*"}]}"#;
    ids.put_user_policy(&root, "carol", "deny", deny)
        .await
        .expect("PutUserPolicy");
    let outcome = ids.evaluate_identity(&carol, "kms:Encrypt", &key, &MapContext::new());
    assert!(outcome.explicit_deny);
    assert_eq!(outcome.denying_sid.as_deref(), Some("NoK1"));
    ids.delete_user_policy(&root, "carol", "deny")
        .await
        .expect("DeleteUserPolicy");

    ids.detach_user_policy(&root, "carol", &arn)
        .await
        .expect("DetachUserPolicy");
    assert!(!fixture.allows(&carol, "kms:Decrypt", &key));
    ids.delete_policy(&root, &arn).await.expect("DeletePolicy");

    assert_eq!(
        code(
            ids.put_user_policy(&root, "carol", "bad", "{not json")
                .await
        ),
        "MalformedPolicyDocument"
    );
    let with_principal = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"}]}"#;
    assert_eq!(
        code(
            ids.put_user_policy(&root, "carol", "bad", with_principal)
                .await
        ),
        "MalformedPolicyDocument"
    );
}

#[tokio::test]
async fn iam_calls_need_iam_permissions_unless_root() {
    let fixture = Fixture::new().await;
    let ids = &fixture.identities;
    let root = root(ACCOUNT);
    let dave = fixture.user("dave").await;
    let denied = ids
        .create_user(&dave, "eve", None, Vec::new())
        .await
        .expect_err("dave has no IAM permissions");
    assert_eq!(denied.code(), "AccessDenied");
    assert!(
        denied.to_string().contains("iam:CreateUser") && denied.to_string().contains(&dave.arn),
        "{denied}"
    );
    ids.put_user_policy(
        &root,
        "dave",
        "admin",
        &allow("iam:*User", &format!("arn:aws:iam::{ACCOUNT}:user/*")),
    )
    .await
    .expect("PutUserPolicy");
    ids.create_user(&dave, "eve", None, Vec::new())
        .await
        .expect("dave may create users now");
    assert_eq!(
        code(ids.create_role(&dave, new_role("r", ACCOUNT)).await),
        "AccessDenied"
    );
}

#[tokio::test]
async fn assume_role_follows_trust_and_identity_policies() {
    let fixture = Fixture::new().await;
    let ids = &fixture.identities;
    let root = root(ACCOUNT);
    let role = ids
        .create_role(
            &root,
            new_role("deployer", &format!("arn:aws:iam::{ACCOUNT}:root")),
        )
        .await
        .expect("CreateRole");
    assert!(role.role_id.starts_with("AROA"));
    let role_arn = role.arn();

    // The trust policy names the account: its root may assume the role.
    ids.assume_role(&root, assume(&role_arn, "as-root"))
        .await
        .expect("the root assumes the role");
    // A user needs an identity policy as well.
    let frank = fixture.user("frank").await;
    assert_eq!(
        code(ids.assume_role(&frank, assume(&role_arn, "s1")).await),
        "AccessDenied"
    );
    ids.put_user_policy(
        &root,
        "frank",
        "assume",
        &allow("sts:AssumeRole", &role_arn),
    )
    .await
    .expect("PutUserPolicy");
    let credentials = ids
        .assume_role(&frank, assume(&role_arn, "frank-session"))
        .await
        .expect("AssumeRole");
    assert!(credentials.access_key_id.starts_with("ASIA"));
    let (assumed_id, session_arn) = credentials
        .assumed_role_user
        .clone()
        .expect("AssumedRoleUser");
    assert_eq!(
        session_arn,
        format!("arn:aws:sts::{ACCOUNT}:assumed-role/deployer/frank-session")
    );
    assert_eq!(assumed_id, format!("{}:frank-session", role.role_id));

    // The temporary key needs its token.
    let id = &credentials.access_key_id;
    assert_eq!(ids.lookup(id, None).err(), Some(LookupError::Unknown));
    assert_eq!(
        ids.lookup(id, Some("wrong")).err(),
        Some(LookupError::Unknown)
    );
    let session = ids
        .lookup(id, Some(&credentials.session_token))
        .expect("the session authenticates")
        .principal;
    assert_eq!(session.arn, session_arn);
    assert_eq!(session.role_arn.as_deref(), Some(role_arn.as_str()));
    assert!(matches!(session.kind, PrincipalKind::AssumedRole { .. }));

    // The session has the role's permissions, not the user's.
    let key = format!("arn:aws:kms:us-east-1:{ACCOUNT}:key/k");
    assert!(!fixture.allows(&session, "kms:Encrypt", &key));
    ids.put_role_policy(&root, "deployer", "crypto", &allow("kms:*", "*"))
        .await
        .expect("PutRolePolicy");
    assert!(fixture.allows(&session, "kms:Encrypt", &key));

    // The session ends at its expiry.
    fixture.advance(Duration::from_secs(3601));
    assert_eq!(
        ids.lookup(id, Some(&credentials.session_token)).err(),
        Some(LookupError::Expired)
    );

    // A trust policy naming a user directly needs no identity policy in the same account.
    let grace = fixture.user("grace").await;
    ids.create_role(&root, new_role("direct", &grace.arn))
        .await
        .expect("CreateRole");
    ids.assume_role(
        &grace,
        assume(&format!("arn:aws:iam::{ACCOUNT}:role/direct"), "g1"),
    )
    .await
    .expect("named in the trust policy");
    assert_eq!(
        code(
            ids.assume_role(
                &frank,
                assume(&format!("arn:aws:iam::{ACCOUNT}:role/direct"), "f1")
            )
            .await
        ),
        "AccessDenied",
        "frank's policy names only deployer"
    );
    // A role that does not exist is access denied, as in AWS.
    assert_eq!(
        code(
            ids.assume_role(
                &root,
                assume(&format!("arn:aws:iam::{ACCOUNT}:role/ghost"), "x1")
            )
            .await
        ),
        "AccessDenied"
    );
}

#[tokio::test]
async fn cross_account_assume_role_needs_both_sides() {
    let fixture = Fixture::new().await;
    let ids = &fixture.identities;
    let owner = root(ACCOUNT);
    let role = ids
        .create_role(
            &owner,
            new_role("shared", &format!("arn:aws:iam::{OTHER}:root")),
        )
        .await
        .expect("CreateRole");
    let other_root = root(OTHER);
    ids.assume_role(&other_root, assume(&role.arn(), "partner"))
        .await
        .expect("the trusted account's root");
    assert_eq!(
        code(
            ids.assume_role(&root("999999999999"), assume(&role.arn(), "x1"))
                .await
        ),
        "AccessDenied"
    );
}

#[tokio::test]
async fn session_policies_and_tags_narrow_and_describe_a_session() {
    let fixture = Fixture::new().await;
    let ids = &fixture.identities;
    let root = root(ACCOUNT);
    let role = ids
        .create_role(
            &root,
            new_role("worker", &format!("arn:aws:iam::{ACCOUNT}:root")),
        )
        .await
        .expect("CreateRole");
    ids.put_role_policy(&root, "worker", "all", &allow("kms:*", "*"))
        .await
        .expect("PutRolePolicy");
    let tagged = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:Decrypt","Resource":"*","Condition":{"StringEquals":{"aws:PrincipalTag/project":"apollo"}}}]}"#;
    ids.put_role_policy(&root, "worker", "tagged", tagged)
        .await
        .expect("PutRolePolicy");
    let mut request = assume(&role.arn(), "narrow");
    request.policy = Some(allow("kms:Encrypt", "*"));
    request.tags = vec![Tag {
        key: "project".to_owned(),
        value: "apollo".to_owned(),
    }];
    let credentials = ids.assume_role(&root, request).await.expect("AssumeRole");
    assert!(credentials.packed_policy_size.is_some());
    let session = ids
        .lookup(&credentials.access_key_id, Some(&credentials.session_token))
        .expect("lookup")
        .principal;
    assert_eq!(session.principal_tags.len(), 1);
    let key = format!("arn:aws:kms:us-east-1:{ACCOUNT}:key/k");
    assert!(fixture.allows(&session, "kms:Encrypt", &key), "both allow");
    assert!(
        !fixture.allows(&session, "kms:Decrypt", &key),
        "the session policy does not allow Decrypt"
    );

    // Without the session policy, the tag condition decides.
    let mut request = assume(&role.arn(), "tags-only");
    request.tags = vec![Tag {
        key: "project".to_owned(),
        value: "apollo".to_owned(),
    }];
    let credentials = ids.assume_role(&root, request).await.expect("AssumeRole");
    let session = ids
        .lookup(&credentials.access_key_id, Some(&credentials.session_token))
        .expect("lookup")
        .principal;
    ids.delete_role_policy(&root, "worker", "all")
        .await
        .expect("DeleteRolePolicy");
    assert!(fixture.allows(&session, "kms:Decrypt", &key), "tag matches");
    assert!(!fixture.allows(&session, "kms:Encrypt", &key));

    let mut too_long = assume(&role.arn(), "long");
    too_long.duration_seconds = Some(7200);
    assert_eq!(
        code(ids.assume_role(&root, too_long).await),
        "ValidationError"
    );

    // Deleting the role ends its sessions.
    ids.delete_role_policy(&root, "worker", "tagged")
        .await
        .expect("DeleteRolePolicy");
    ids.delete_role(&root, "worker").await.expect("DeleteRole");
    assert_eq!(
        ids.lookup(&credentials.access_key_id, Some(&credentials.session_token))
            .err(),
        Some(LookupError::Unknown)
    );
}

/// Managed session policies (`PolicyArns`) narrow a session like the inline one, together with it, are
/// checked when the role is assumed, and are read again at each request (and after a restart).
#[tokio::test]
async fn managed_session_policies_narrow_a_session_with_the_inline_one() {
    let dir = TempDir::new("iam-policy-arns");
    let now = Arc::new(Mutex::new(base_time()));
    let root = root(ACCOUNT);
    let key = format!("arn:aws:kms:us-east-1:{ACCOUNT}:key/k");
    let allows = |ids: &Identities, principal: &ResolvedPrincipal, action: &str| {
        let outcome = ids.evaluate_identity(principal, action, &key, &MapContext::new());
        outcome.allow && !outcome.explicit_deny
    };
    let (encrypt_arn, credentials) = {
        let ids = open(&dir, &now).await;
        let role = ids
            .create_role(
                &root,
                new_role("scoped", &format!("arn:aws:iam::{ACCOUNT}:root")),
            )
            .await
            .expect("CreateRole");
        ids.put_role_policy(&root, "scoped", "kms", &allow("kms:*", "*"))
            .await
            .expect("PutRolePolicy");
        let mut arns = Vec::new();
        for (name, action) in [("encrypt", "kms:Encrypt"), ("iam", "iam:CreateUser")] {
            let created = ids
                .create_policy(
                    &root,
                    NewPolicy {
                        name: name.to_owned(),
                        path: Some("/session/".to_owned()),
                        document: allow(action, "*"),
                        ..NewPolicy::default()
                    },
                )
                .await
                .expect("CreatePolicy");
            arns.push(created.policy.arn());
        }
        let [encrypt_arn, iam_arn] = [arns[0].clone(), arns[1].clone()];

        // Managed alone: the session may do what the role and the managed policy both allow.
        let mut request = assume(&role.arn(), "managed");
        request.policy_arns = vec![encrypt_arn.clone(), iam_arn.clone()];
        let credentials = ids.assume_role(&root, request).await.expect("AssumeRole");
        assert!(credentials.packed_policy_size.is_some());
        let session = ids
            .lookup(&credentials.access_key_id, Some(&credentials.session_token))
            .expect("lookup")
            .principal;
        assert!(allows(&ids, &session, "kms:Encrypt"));
        assert!(
            !allows(&ids, &session, "kms:Decrypt"),
            "no session policy allows Decrypt"
        );
        assert!(
            !allows(&ids, &session, "iam:CreateUser"),
            "a session policy grants nothing the role lacks"
        );

        // Inline and managed together: either may allow.
        let mut request = assume(&role.arn(), "both");
        request.policy = Some(allow("kms:Decrypt", "*"));
        request.policy_arns = vec![encrypt_arn.clone()];
        let both = ids.assume_role(&root, request).await.expect("AssumeRole");
        let session = ids
            .lookup(&both.access_key_id, Some(&both.session_token))
            .expect("lookup")
            .principal;
        assert!(allows(&ids, &session, "kms:Encrypt"));
        assert!(allows(&ids, &session, "kms:Decrypt"));
        assert!(!allows(&ids, &session, "kms:GenerateDataKey"));

        // A deny in a managed session policy wins.
        let denying = ids
            .create_policy(
                &root,
                NewPolicy {
                    name: "no-decrypt".to_owned(),
                    document: r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"},{"Effect":"Deny","Action":"kms:Decrypt","Resource":"*"}]}"#.to_owned(),
                    ..NewPolicy::default()
                },
            )
            .await
            .expect("CreatePolicy");
        let mut request = assume(&role.arn(), "deny");
        request.policy = Some(allow("kms:Decrypt", "*"));
        request.policy_arns = vec![denying.policy.arn()];
        let denied = ids.assume_role(&root, request).await.expect("AssumeRole");
        let session = ids
            .lookup(&denied.access_key_id, Some(&denied.session_token))
            .expect("lookup")
            .principal;
        let outcome = ids.evaluate_identity(&session, "kms:Decrypt", &key, &MapContext::new());
        assert!(outcome.explicit_deny);
        assert!(allows(&ids, &session, "kms:Sign"));

        // Unknown policies, other accounts' policies, AWS managed policies and more than ten are refused.
        for arn in [
            format!("arn:aws:iam::{ACCOUNT}:policy/missing"),
            format!("arn:aws:iam::{ACCOUNT}:policy/encrypt"),
            format!("arn:aws:iam::{OTHER}:policy/session/encrypt"),
            "arn:aws:iam::aws:policy/ReadOnlyAccess".to_owned(),
        ] {
            let mut request = assume(&role.arn(), "bad");
            request.policy_arns = vec![arn.clone()];
            let refused = ids.assume_role(&root, request).await.expect_err("refused");
            assert_eq!(refused.code(), "MalformedPolicyDocument", "{arn}");
            assert_eq!(
                refused.to_string(),
                format!("Policy {arn} does not exist or is not attachable.")
            );
        }
        let mut request = assume(&role.arn(), "many");
        request.policy_arns = vec![encrypt_arn.clone(); 11];
        assert_eq!(
            code(ids.assume_role(&root, request).await),
            "ValidationError"
        );
        let mut request = assume(&role.arn(), "short");
        request.policy_arns = vec!["arn:aws:iam::x".to_owned()];
        assert_eq!(
            code(ids.assume_role(&root, request).await),
            "ValidationError"
        );
        (encrypt_arn, credentials)
    };

    // The session's policies survive a restart.
    let ids = open(&dir, &now).await;
    let session = ids
        .lookup(&credentials.access_key_id, Some(&credentials.session_token))
        .expect("the session survives")
        .principal;
    assert_eq!(session.session_policy_arns.len(), 2);
    assert!(session.session_policy.is_none());
    assert!(allows(&ids, &session, "kms:Encrypt"));
    assert!(!allows(&ids, &session, "kms:Decrypt"));
    // A managed session policy deleted since allows nothing any more.
    ids.delete_policy(&root, &encrypt_arn)
        .await
        .expect("DeletePolicy");
    assert!(!allows(&ids, &session, "kms:Encrypt"));
}

#[test]
fn stored_session_policies_round_trip() {
    let arns = vec![
        format!("arn:aws:iam::{ACCOUNT}:policy/a"),
        format!("arn:aws:iam::{ACCOUNT}:policy/path/b"),
    ];
    let inline = allow("kms:Encrypt", "*");
    for (inline, arns) in [
        (Some(inline.as_str()), arns.clone()),
        (None, arns.clone()),
        (Some(inline.as_str()), Vec::new()),
    ] {
        let packed = crate::sts::pack_session_policies(inline, &arns).expect("something to store");
        assert_eq!(crate::sts::unpack_session_policies(&packed), (arns, inline));
    }
    assert_eq!(crate::sts::pack_session_policies(None, &[]), None);
}

#[tokio::test]
async fn session_tokens_for_users_and_identities_survive_a_restart() {
    let dir = TempDir::new("iam-restart");
    let now = Arc::new(Mutex::new(base_time()));
    let root = root(ACCOUNT);
    let (key_id, secret, session) = {
        let ids = open(&dir, &now).await;
        ids.create_user(&root, "henry", None, Vec::new())
            .await
            .expect("CreateUser");
        let key = ids
            .create_access_key(&root, Some("henry"))
            .await
            .expect("CreateAccessKey");
        let henry = ids
            .lookup(&key.info.access_key_id, None)
            .expect("lookup")
            .principal;
        let session = ids
            .get_session_token(&henry, Some(900))
            .await
            .expect("GetSessionToken");
        let as_session = ids
            .lookup(&session.access_key_id, Some(&session.session_token))
            .expect("the session authenticates")
            .principal;
        assert_eq!(as_session.arn, henry.arn);
        assert_eq!(
            code(ids.get_session_token(&as_session, None).await),
            "AccessDenied"
        );
        (key.info.access_key_id, key.secret, session)
    };
    let ids = open(&dir, &now).await;
    let credential = ids.lookup(&key_id, None).expect("the key survives");
    assert_eq!(*credential.secret, *secret);
    let restored = ids
        .lookup(&session.access_key_id, Some(&session.session_token))
        .expect("the session survives");
    assert_eq!(*restored.secret, *session.secret);
}

#[tokio::test]
async fn accounts_get_one_root_key_from_the_command_line() {
    let fixture = Fixture::new().await;
    let ids = &fixture.identities;
    let created = ids
        .create_account(&account(OTHER))
        .await
        .expect("create_account");
    let credential = ids
        .lookup(&created.info.access_key_id, None)
        .expect("the root key authenticates");
    assert_eq!(
        credential.principal.arn,
        format!("arn:aws:iam::{OTHER}:root")
    );
    assert!(credential.principal.is_root());
    assert_eq!(
        code(ids.create_account(&account(OTHER)).await),
        "EntityAlreadyExists"
    );
    let identity = ids.get_caller_identity(&credential.principal);
    assert_eq!(identity.user_id, OTHER);
}

#[tokio::test]
async fn role_chaining_is_limited_to_an_hour_and_sees_the_new_session_name() {
    let fixture = Fixture::new().await;
    let ids = &fixture.identities;
    let root = root(ACCOUNT);
    let first = ids
        .create_role(
            &root,
            new_role("first", &format!("arn:aws:iam::{ACCOUNT}:root")),
        )
        .await
        .expect("CreateRole");
    ids.put_role_policy(&root, "first", "assume", &allow("sts:AssumeRole", "*"))
        .await
        .expect("PutRolePolicy");
    let only_named = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{ACCOUNT}:root"}},"Action":"sts:AssumeRole","Condition":{{"StringEquals":{{"sts:RoleSessionName":"chained"}}}}}}]}}"#
    );
    let second = ids
        .create_role(
            &root,
            NewRole {
                name: "second".to_owned(),
                trust_policy: only_named,
                max_session_duration: Some(43_200),
                ..NewRole::default()
            },
        )
        .await
        .expect("CreateRole");
    let credentials = ids
        .assume_role(&root, assume(&first.arn(), "outer"))
        .await
        .expect("AssumeRole");
    let outer = ids
        .lookup(&credentials.access_key_id, Some(&credentials.session_token))
        .expect("lookup")
        .principal;
    let mut long = assume(&second.arn(), "chained");
    long.duration_seconds = Some(7200);
    assert_eq!(code(ids.assume_role(&outer, long).await), "ValidationError");
    assert_eq!(
        code(
            ids.assume_role(&outer, assume(&second.arn(), "other-name"))
                .await
        ),
        "AccessDenied",
        "the trust policy's condition reads the requested session name"
    );
    ids.assume_role(&outer, assume(&second.arn(), "chained"))
        .await
        .expect("role chaining within an hour");
}

#[tokio::test]
async fn tags_are_checked_and_merged() {
    let fixture = Fixture::new().await;
    let ids = &fixture.identities;
    let root = root(ACCOUNT);
    let tag = |key: &str, value: &str| Tag {
        key: key.to_owned(),
        value: value.to_owned(),
    };
    assert_eq!(
        code(
            ids.create_user(&root, "t", None, vec![tag("a", "1"), tag("A", "2")])
                .await
        ),
        "InvalidInput"
    );
    assert_eq!(
        code(
            ids.create_user(&root, "t", None, vec![tag("aws:x", "1")])
                .await
        ),
        "InvalidInput"
    );
    assert_eq!(
        code(ids.create_user(&root, "t", None, vec![tag("", "1")]).await),
        "ValidationError"
    );
    ids.create_user(&root, "t", None, vec![tag("a", "1"), tag("b", "2")])
        .await
        .expect("CreateUser");
    ids.tag_user(&root, "t", &[tag("B", "3"), tag("c", "4")])
        .await
        .expect("TagUser");
    ids.untag_user(&root, "t", &["A".to_owned(), "missing".to_owned()])
        .await
        .expect("UntagUser");
    let tags = ids.list_user_tags(&root, "t").expect("ListUserTags");
    assert_eq!(tags, vec![tag("b", "3"), tag("c", "4")]);
    let many: Vec<Tag> = (0..49).map(|n| tag(&format!("k{n}"), "v")).collect();
    assert_eq!(code(ids.tag_user(&root, "t", &many).await), "LimitExceeded");
}

#[tokio::test]
async fn principal_tags_and_names_reach_policy_conditions() {
    let fixture = Fixture::new().await;
    let ids = &fixture.identities;
    let root = root(ACCOUNT);
    let own_prefix = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:Encrypt","Resource":"*","Condition":{"StringEquals":{"aws:username":"kim","aws:PrincipalType":"User"}}}]}"#;
    let kim = fixture.user("kim").await;
    ids.put_user_policy(&root, "kim", "own", own_prefix)
        .await
        .expect("PutUserPolicy");
    let key = format!("arn:aws:kms:us-east-1:{ACCOUNT}:key/k");
    assert!(fixture.allows(&kim, "kms:Encrypt", &key));
    // The request's own context cannot claim another user's name.
    let forged = MapContext::new().with("aws:username", "someone-else");
    let outcome = ids.evaluate_identity(&kim, "kms:Encrypt", &key, &forged);
    assert!(outcome.allow, "principal keys come from the principal");
}
