//! Ansible's `amazon.aws` collection against a real server: the `kms_key` and `kms_key_info` modules create a
//! key with a policy, an alias, tags, grants and rotation, change it, disable it and schedule its deletion,
//! unchanged, through Strongroom's endpoint, signed as an IAM user whose identity policy allows `kms:*`.
//!
//! The playbooks in `tests/ansible` check what the modules read back (`ansible.builtin.assert`); this module
//! checks the same key with the AWS SDK for Rust after each playbook, and that running a playbook a second
//! time changes nothing. `ansible-playbook` comes from `STRONGROOM_ANSIBLE_PLAYBOOK`, or from
//! `target/ansible`, where `cargo xtask ci` (or `cargo xtask deps`) installs Ansible with the collection.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_kms::Client;
use aws_sdk_kms::types::KeyState;
use serde_json::{Value, json};

use crate::harness::{ACCOUNT, TempDir, TestServer};
use crate::iam::{Keys, allow, iam, user_with_key};

const ALIAS: &str = "alias/ansible-orders";
/// Long enough for a slow machine; a playbook that hangs fails the test instead.
const PLAYBOOK_PATIENCE: Duration = Duration::from_secs(300);

fn ansible_playbook() -> PathBuf {
    if let Some(path) = std::env::var_os("STRONGROOM_ANSIBLE_PLAYBOOK") {
        return PathBuf::from(path);
    }
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    workspace.join("target/ansible/bin/ansible-playbook")
}

/// The counts of a run's `PLAY RECAP` line for localhost.
#[derive(Debug, PartialEq, Eq)]
struct Recap {
    ok: u32,
    changed: u32,
    unreachable: u32,
    failed: u32,
}

impl Recap {
    fn parse(stdout: &str) -> Option<Recap> {
        let (_, recap) = stdout.split_once("PLAY RECAP")?;
        let line = recap
            .lines()
            .find(|line| line.trim_start().starts_with("localhost"))?;
        let counts: BTreeMap<&str, u32> = line
            .split_whitespace()
            .filter_map(|field| field.split_once('='))
            .filter_map(|(name, count)| Some((name, count.parse().ok()?)))
            .collect();
        Some(Recap {
            ok: *counts.get("ok")?,
            changed: *counts.get("changed")?,
            unreachable: *counts.get("unreachable")?,
            failed: *counts.get("failed")?,
        })
    }
}

/// Runs playbook `name` from `tests/ansible` against `server`, with Ansible's configuration, temporary files
/// and AWS configuration confined to `work`, and returns its recap; panics, with the output, if it fails.
async fn run_playbook(server: &TestServer, keys: &Keys, work: &Path, name: &str) -> Recap {
    let program = ansible_playbook();
    let playbook =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/ansible/{name}.yml"));
    let config = work.join("ansible.cfg");
    std::fs::write(&config, "").expect("write an empty ansible.cfg");
    std::fs::create_dir_all(work.join("collections")).expect("create an empty collections path");
    let run = tokio::process::Command::new(&program)
        .arg("--inventory")
        .arg("localhost,")
        .arg("--extra-vars")
        .arg(format!("strongroom_endpoint={}", server.endpoint()))
        .arg("--extra-vars")
        .arg(format!(
            "strongroom_access_key={} strongroom_secret_key={}",
            keys.access_key_id, keys.secret
        ))
        .arg(&playbook)
        .current_dir(work)
        // ansible-core refuses to start without a UTF-8 locale.
        .env("LC_ALL", "C.UTF-8")
        .env("ANSIBLE_CONFIG", &config)
        .env("ANSIBLE_HOME", work.join("home"))
        .env("ANSIBLE_LOCAL_TEMP", work.join("tmp"))
        // Only the collections bundled with the installed Ansible, not whatever ~/.ansible holds.
        .env("ANSIBLE_COLLECTIONS_PATH", work.join("collections"))
        .env("ANSIBLE_STDOUT_CALLBACK", "default")
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_RETRY_FILES_ENABLED", "false")
        .env("AWS_CONFIG_FILE", work.join("no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            work.join("no-aws-credentials"),
        )
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_DEFAULT_PROFILE")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_KMS")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(PLAYBOOK_PATIENCE, run)
        .await
        .unwrap_or_else(|_| panic!("{name}.yml did not finish within {PLAYBOOK_PATIENCE:?}"))
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}): run `cargo xtask deps` (or `cargo xtask ci`), which installs Ansible \
                 with the amazon.aws collection there, or set STRONGROOM_ANSIBLE_PLAYBOOK",
                program.display()
            )
        });
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{name}.yml failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    let recap = Recap::parse(&stdout)
        .unwrap_or_else(|| panic!("{name}.yml printed no PLAY RECAP for localhost:\n{stdout}"));
    assert_eq!(
        (recap.failed, recap.unreachable),
        (0, 0),
        "{name}.yml:\n{stdout}"
    );
    recap
}

/// Runs playbook `name` twice: the first run makes exactly one change (its one `kms_key` task), the second
/// none.
async fn apply_twice(server: &TestServer, keys: &Keys, work: &Path, name: &str) {
    let first = run_playbook(server, keys, work, name).await;
    assert_eq!(first.changed, 1, "the first run of {name}.yml: {first:?}");
    let second = run_playbook(server, keys, work, name).await;
    assert_eq!(
        second,
        Recap {
            changed: 0,
            ..first
        },
        "a second run of {name}.yml changes nothing"
    );
}

/// What the key should look like, as the AWS SDK sees it.
struct Expected<'a> {
    description: &'a str,
    state: KeyState,
    policy: Value,
    tags: &'a [(&'a str, &'a str)],
    /// Each grant's name and its operations, sorted.
    grants: &'a [(&'a str, &'a [&'a str])],
    rotation: bool,
}

/// Reads the key behind [`ALIAS`] with the AWS SDK and compares it with `expected`; returns its key id.
async fn check_key(client: &Client, expected: &Expected<'_>) -> String {
    let metadata = client
        .describe_key()
        .key_id(ALIAS)
        .send()
        .await
        .expect("DescribeKey finds the alias")
        .key_metadata
        .expect("KeyMetadata");
    let key_id = metadata.key_id().to_owned();
    let policy = client
        .get_key_policy()
        .key_id(&key_id)
        .policy_name("default")
        .send()
        .await
        .expect("GetKeyPolicy succeeds");
    let policy: Value =
        serde_json::from_str(policy.policy().expect("a policy")).expect("the policy is JSON");
    let aliases = client
        .list_aliases()
        .key_id(&key_id)
        .send()
        .await
        .expect("ListAliases succeeds");
    let aliases: Vec<&str> = aliases
        .aliases()
        .iter()
        .filter_map(|a| a.alias_name())
        .collect();
    let tags = client
        .list_resource_tags()
        .key_id(&key_id)
        .send()
        .await
        .expect("ListResourceTags succeeds");
    let tags: BTreeMap<&str, &str> = tags
        .tags()
        .iter()
        .map(|tag| (tag.tag_key(), tag.tag_value()))
        .collect();
    let grants = client
        .list_grants()
        .key_id(&key_id)
        .send()
        .await
        .expect("ListGrants succeeds");
    let grant_operations: BTreeMap<&str, Vec<&str>> = grants
        .grants()
        .iter()
        .map(|grant| {
            let mut operations: Vec<&str> = grant.operations().iter().map(|o| o.as_str()).collect();
            operations.sort_unstable();
            (grant.name().unwrap_or_default(), operations)
        })
        .collect();
    let rotation = client
        .get_key_rotation_status()
        .key_id(&key_id)
        .send()
        .await
        .expect("GetKeyRotationStatus succeeds");

    assert_eq!(metadata.description(), Some(expected.description));
    assert_eq!(metadata.key_state(), Some(&expected.state));
    assert_eq!(metadata.enabled(), expected.state == KeyState::Enabled);
    assert_eq!(policy, expected.policy, "the key policy Ansible put");
    assert_eq!(aliases, [ALIAS]);
    assert_eq!(tags, expected.tags.iter().copied().collect());
    let wanted: BTreeMap<&str, Vec<&str>> = expected
        .grants
        .iter()
        .map(|(name, operations)| (*name, operations.to_vec()))
        .collect();
    assert_eq!(grant_operations, wanted, "the grants by name");
    let orders = grants
        .grants()
        .iter()
        .find(|grant| grant.name() == Some("orders-app"))
        .expect("the orders-app grant stays throughout");
    assert_eq!(
        orders.grantee_principal(),
        Some(format!("arn:aws:iam::{ACCOUNT}:role/orders-app").as_str())
    );
    assert_eq!(
        orders.retiring_principal(),
        Some(format!("arn:aws:iam::{ACCOUNT}:role/key-admin").as_str())
    );
    let constraints = orders.constraints().expect("orders-app has constraints");
    assert_eq!(
        constraints.encryption_context_equals(),
        Some(&[("service".to_owned(), "orders".to_owned())].into())
    );
    assert_eq!(rotation.key_rotation_enabled(), expected.rotation);
    key_id
}

fn root_statement() -> Value {
    json!({
        "Sid": "Enable IAM User Permissions",
        "Effect": "Allow",
        "Principal": { "AWS": format!("arn:aws:iam::{ACCOUNT}:root") },
        "Action": "kms:*",
        "Resource": "*"
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn ansible_amazon_aws_manages_a_key_from_creation_to_deletion() {
    let server = TestServer::start().await;
    let client = server.client();
    let work = TempDir::new("ansible");
    // Ansible signs as an IAM user allowed kms:*, as an operator's automation would, not as the root.
    let keys = user_with_key(&server.endpoint(), "ansible").await;
    iam(&server.endpoint(), &Keys::dev())
        .put_user_policy()
        .user_name("ansible")
        .policy_name("kms-administrator")
        .policy_document(allow("kms:*"))
        .send()
        .await
        .expect("PutUserPolicy");

    apply_twice(&server, &keys, work.path(), "create").await;
    let created = Expected {
        description: "Orders database",
        state: KeyState::Enabled,
        policy: json!({ "Version": "2012-10-17", "Statement": [root_statement()] }),
        tags: &[("team", "payments"), ("environment", "staging")],
        grants: &[
            ("orders-app", &["Decrypt", "Encrypt", "GenerateDataKey"]),
            ("reporting", &["Decrypt"]),
        ],
        rotation: true,
    };
    let key_id = check_key(&client, &created).await;

    apply_twice(&server, &keys, work.path(), "change").await;
    let changed = Expected {
        description: "Orders database (production)",
        policy: json!({ "Version": "2012-10-17", "Statement": [
            root_statement(),
            {
                "Sid": "Allow the orders application to use the key",
                "Effect": "Allow",
                "Principal": { "AWS": format!("arn:aws:iam::{ACCOUNT}:role/orders-app") },
                "Action": ["kms:Encrypt", "kms:Decrypt", "kms:DescribeKey"],
                "Resource": "*"
            }
        ]}),
        tags: &[
            ("team", "payments"),
            ("environment", "production"),
            ("cost-center", "4711"),
        ],
        grants: &[
            ("orders-app", &["Decrypt", "Encrypt", "GenerateDataKey"]),
            ("audit", &["DescribeKey"]),
        ],
        rotation: false,
        ..created
    };
    assert_eq!(
        check_key(&client, &changed).await,
        key_id,
        "the same key, changed in place"
    );

    apply_twice(&server, &keys, work.path(), "disable").await;
    let disabled = Expected {
        state: KeyState::Disabled,
        ..changed
    };
    assert_eq!(check_key(&client, &disabled).await, key_id);

    apply_twice(&server, &keys, work.path(), "delete").await;
    let deleting = Expected {
        state: KeyState::PendingDeletion,
        ..disabled
    };
    assert_eq!(check_key(&client, &deleting).await, key_id);
    let metadata = client
        .describe_key()
        .key_id(&key_id)
        .send()
        .await
        .expect("DescribeKey succeeds")
        .key_metadata
        .expect("KeyMetadata");
    let deletion = metadata
        .deletion_date()
        .expect("a deletion date")
        .as_secs_f64();
    let seven_days = 7.0 * 86_400.0;
    assert!(
        (deletion - server.now_secs() - seven_days).abs() < 3_600.0,
        "pending_window: 7 schedules the deletion seven days out"
    );
    server.stop().await;
}

#[test]
fn the_recap_line_is_read_field_by_field() {
    let stdout = "PLAY [x] ***\n\nPLAY RECAP ***\nlocalhost                  : ok=5    changed=1    \
                  unreachable=0    failed=0    skipped=0    rescued=0    ignored=0   \n";
    assert_eq!(
        Recap::parse(stdout),
        Some(Recap {
            ok: 5,
            changed: 1,
            unreachable: 0,
            failed: 0
        })
    );
    assert_eq!(Recap::parse("PLAY [x] ***\n"), None);
}

#[test]
fn the_guide_shows_the_playbook_ci_runs() {
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let guide = std::fs::read_to_string(crate_dir.join("../../docs/ANSIBLE.md"))
        .expect("read docs/ANSIBLE.md");
    let playbook = std::fs::read_to_string(crate_dir.join("tests/ansible/create.yml"))
        .expect("read tests/ansible/create.yml");
    assert!(
        guide.contains(&format!("```yaml\n{playbook}```")),
        "docs/ANSIBLE.md shows tests/ansible/create.yml as it is"
    );
}
