//! Unit tests of stack files and plans: parsing errors name the line and the field, parameters qualify
//! names, and plans create, update, delete or refuse as documented.

use strongroom_storage::stacks::StackResource;

use crate::file::parse;
use crate::plan::{Action, desired, plan};

const FILE: &str = "\
name: ${system}-${purpose}-hsm
parameters:
  system: payments
  zone_a: {default: us-east-1a, description: the first zone}
cluster:
  hsms:
    ${zone_a}: 1
    us-east-1b: 1
  certificate_authority:
    certificate: {secret: ca/cert}
    private_key: {file: /etc/ca.key}
  admin_password: {env: CO_PASSWORD}
crypto_user:
  password: {secret: hsm/kmsuser}
key_store:
  name: keys
keys:
  orders:
    description: Orders
    tags: {app: orders}
    aliases: [orders]
    grants:
      - name: app
        grantee: arn:aws:iam::111122223333:role/app
        operations: [Encrypt, Decrypt]
  signing:
    key_store: default
    key_spec: ECC_NIST_P256
    key_usage: SIGN_VERIFY
";

fn recorded(parsed: &crate::file::Parsed) -> Vec<StackResource> {
    desired(parsed)
        .into_iter()
        .map(|d| StackResource {
            logical_id: d.logical_id.clone(),
            physical_id: format!("id-of-{}", d.logical_id),
            properties: d.props.to_string(),
            retained: None,
        })
        .collect()
}

#[test]
fn parameters_qualify_names_and_can_be_overridden() {
    let parsed = parse(FILE, &[]).expect("the file is valid");
    assert_eq!(parsed.name, "payments-1-hsm");
    let ids: Vec<String> = desired(&parsed).into_iter().map(|d| d.logical_id).collect();
    assert_eq!(
        ids,
        [
            "cluster",
            "hsm/us-east-1a/1",
            "hsm/us-east-1b/1",
            "cluster-certificate",
            "cluster-activation",
            "crypto-user",
            "key-store",
            "key-store-connection",
            "key/orders",
            "key/signing",
            "alias/payments/1/orders",
            "grant/orders/app",
        ]
    );
    let store = desired(&parsed)
        .into_iter()
        .find(|d| d.logical_id == "key-store")
        .expect("a key store");
    assert_eq!(store.props["name"], "payments-1-keys");

    let other = parse(
        FILE,
        &[
            ("purpose".to_owned(), "2".to_owned()),
            ("zone_a".to_owned(), "us-east-1c".to_owned()),
        ],
    )
    .expect("overrides apply");
    assert_eq!(other.name, "payments-2-hsm");
    assert!(
        desired(&other)
            .iter()
            .any(|d| d.logical_id == "hsm/us-east-1c/1")
    );
    let refused =
        parse(FILE, &[("nope".to_owned(), "x".to_owned())]).expect_err("unknown parameter");
    assert!(
        refused.to_string().contains("'nope' is not declared"),
        "{refused}"
    );
    let refused = parse(FILE, &[("system".to_owned(), "a b".to_owned())]).expect_err("bad value");
    assert!(
        refused.to_string().contains("parameter values"),
        "{refused}"
    );
}

#[test]
fn errors_name_the_line_and_the_field() {
    let typo = FILE.replace("  hsms:", "  hsmz:");
    let error = parse(&typo, &[]).expect_err("unknown field").to_string();
    assert!(
        error.contains("hsmz") && error.contains("line 6"),
        "{error}"
    );

    let zero = FILE
        .replace("    us-east-1b: 1", "    us-east-1b: 0")
        .replace("    ${zone_a}: 1", "    ${zone_a}: 0");
    let error = parse(&zero, &[]).expect_err("zero HSMs").to_string();
    assert!(
        error.starts_with("line 6: cluster.hsms: a cluster needs at least one HSM"),
        "{error}"
    );

    let spec = FILE.replace("    key_spec: ECC_NIST_P256", "    key_spec: ECC_NIST_P999");
    let error = parse(&spec, &[]).expect_err("bad spec").to_string();
    assert!(
        error.starts_with("line 28: keys.signing.key_spec:"),
        "{error}"
    );

    let custom_rsa = FILE.replace("    key_store: default\n", "");
    let error = parse(&custom_rsa, &[])
        .expect_err("custom key store spec")
        .to_string();
    assert!(
        error.contains("keys.signing.key_spec") && error.contains("SYMMETRIC_DEFAULT"),
        "{error}"
    );

    let unknown = FILE.replace("${zone_a}", "${zone_b}");
    let error = parse(&unknown, &[])
        .expect_err("unknown reference")
        .to_string();
    assert!(
        error.contains("line 7") && error.contains("${zone_b}"),
        "{error}"
    );

    let no_store = FILE.replace("key_store:\n  name: keys\n", "").replace(
        "    description: Orders",
        "    key_store: custom\n    description: Orders",
    );
    let error = parse(&no_store, &[])
        .expect_err("key in no store")
        .to_string();
    assert!(error.contains("keys.orders.key_store"), "{error}");

    let yaml = "name: [unclosed\n";
    let error = parse(yaml, &[]).expect_err("bad YAML").to_string();
    assert!(
        error.contains("not valid YAML") && error.contains("line"),
        "{error}"
    );
}

#[test]
fn an_unchanged_file_plans_nothing_and_changes_are_classified() {
    let parsed = parse(FILE, &[]).expect("valid");
    let recorded = recorded(&parsed);
    let same = plan(&desired(&parsed), &recorded);
    assert!(
        same.changes.is_empty() && same.refusals.is_empty(),
        "{same:?}"
    );

    let fresh = plan(&desired(&parsed), &[]);
    assert_eq!(fresh.changes.len(), 12);
    assert!(fresh.changes.iter().all(|c| c.action == Action::Create));

    let changed = FILE
        .replace("description: Orders", "description: Orders v2")
        .replace("  name: keys", "  name: vault")
        .replace("aliases: [orders]", "aliases: [orders2]");
    let parsed = parse(&changed, &[]).expect("valid");
    let update = plan(&desired(&parsed), &recorded);
    assert!(update.refusals.is_empty(), "{update:?}");
    let summary: Vec<(Action, &str)> = update
        .changes
        .iter()
        .map(|c| (c.action, c.logical_id.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            (Action::Delete, "alias/payments/1/orders"),
            (Action::Update, "key-store"),
            (Action::Update, "key/orders"),
            (Action::Create, "alias/payments/1/orders2"),
        ]
    );

    let refused = FILE
        .replace("    key_spec: ECC_NIST_P256", "    key_spec: ECC_NIST_P384")
        .replace("    us-east-1b: 1", "    us-east-1c: 1");
    let parsed = parse(&refused, &[]).expect("valid");
    let refusal = plan(&desired(&parsed), &recorded);
    let text = refusal.refusals.join("\n");
    assert!(
        text.contains("key/signing: key_spec cannot change"),
        "{text}"
    );
    assert!(text.contains("cluster: zones cannot change"), "{text}");
    assert!(
        !text.contains("hsm/"),
        "HSMs may come and go, zones not: {text}"
    );
}

#[test]
fn hsms_join_and_leave_an_initialized_cluster_but_not_below_what_its_key_store_needs() {
    let parsed = parse(FILE, &[]).expect("valid");
    let recorded_before = recorded(&parsed);
    let summary = |plan: &crate::plan::Plan| -> Vec<(Action, String)> {
        plan.changes
            .iter()
            .map(|c| (c.action, c.logical_id.clone()))
            .collect()
    };

    let up = FILE.replace("    us-east-1b: 1", "    us-east-1b: 3");
    let up = parse(&up, &[]).expect("valid");
    let grown = plan(&desired(&up), &recorded_before);
    assert!(grown.refusals.is_empty(), "{grown:?}");
    assert_eq!(
        summary(&grown),
        [
            (Action::Create, "hsm/us-east-1b/2".to_owned()),
            (Action::Create, "hsm/us-east-1b/3".to_owned()),
        ]
    );
    assert!(
        grown.changes[0].detail.contains("us-east-1b: 1 -> 3 HSMs")
            && grown.changes[0]
                .detail
                .contains("keys and certificates are copied"),
        "{:?}",
        grown.changes[0]
    );

    // HSMs leaving go after the ones joining, newest first, so the cluster never shrinks on the way.
    let moved = FILE.replace("    ${zone_a}: 1", "    ${zone_a}: 2");
    let moved = parse(&moved, &[]).expect("valid");
    let shifted = plan(&desired(&moved), &recorded(&up));
    assert!(shifted.refusals.is_empty(), "{shifted:?}");
    assert_eq!(
        summary(&shifted),
        [
            (Action::Create, "hsm/us-east-1a/2".to_owned()),
            (Action::Delete, "hsm/us-east-1b/3".to_owned()),
            (Action::Delete, "hsm/us-east-1b/2".to_owned()),
        ]
    );
    assert!(
        shifted.changes[1]
            .detail
            .contains("us-east-1b: 3 -> 1 HSMs"),
        "{:?}",
        shifted.changes[1]
    );

    // A zone may keep its subnet without an HSM, but the key store needs HSMs in two zones.
    let below = FILE.replace("    us-east-1b: 1", "    us-east-1b: 0");
    let below = parse(&below, &[]).expect("a zone with no HSM is valid");
    let refused = plan(&desired(&below), &recorded_before);
    let text = refused.refusals.join("\n");
    assert!(
        text.contains("cluster: hsms: the custom key store needs at least two active HSMs")
            && text.contains("leaves HSMs in us-east-1a only"),
        "{text}"
    );
    let no_store = FILE
        .replace("    us-east-1b: 1", "    us-east-1b: 0")
        .replace("key_store:\n  name: keys\n", "")
        .replace(
            "    aliases: [orders]\n",
            "    key_store: default\n    aliases: [orders]\n",
        );
    let no_store = parse(&no_store, &[]).expect("valid");
    let fresh = plan(&desired(&no_store), &[]);
    assert!(
        fresh.refusals.is_empty(),
        "without a key store one zone is enough: {fresh:?}"
    );
}

#[test]
fn a_key_store_moves_to_a_related_cluster_only_once_it_exists() {
    let parsed = parse(FILE, &[]).expect("the file is valid");
    let before = recorded(&parsed);
    let moving = FILE.replace(
        "  name: keys\n",
        "  name: keys\n  cluster: cluster-relatedabcd2\n",
    );
    let moved = parse(&moving, &[]).expect("a cluster id is accepted");

    // A stack that already has its key store: the move is an update of the key store.
    let changes = plan(&desired(&moved), &before);
    assert!(changes.refusals.is_empty(), "{:?}", changes.refusals);
    let [change] = changes.changes.as_slice() else {
        panic!("one change: {changes:?}");
    };
    assert_eq!(change.action, Action::Update);
    assert_eq!(change.logical_id, "key-store");
    assert!(
        change
            .detail
            .contains("moves the key store to cluster-relatedabcd2")
            && change.detail.contains("disconnected")
            && change.detail.contains("connected again"),
        "{}",
        change.detail
    );
    // Applied, the file plans nothing more; removing the field moves it back to the stack's cluster.
    assert!(plan(&desired(&moved), &recorded(&moved)).changes.is_empty());
    let back = plan(&desired(&parsed), &recorded(&moved));
    assert_eq!(back.changes.len(), 1, "{back:?}");
    assert!(
        back.changes[0]
            .detail
            .contains("moves the key store to the stack's own cluster"),
        "{}",
        back.changes[0].detail
    );
    // Records written before the field existed compare equal to a file without it.
    assert!(plan(&desired(&parsed), &before).changes.is_empty());

    // A new key store is made on the stack's own cluster.
    let fresh = plan(&desired(&moved), &[]);
    assert!(
        fresh.refusals.iter().any(|r| r.starts_with(
            "key-store: cluster cluster-relatedabcd2 is where an existing key store moves"
        )),
        "{:?}",
        fresh.refusals
    );

    let bad = FILE.replace("  name: keys\n", "  name: keys\n  cluster: subnet-1\n");
    let error = parse(&bad, &[]).expect_err("not a cluster id").to_string();
    assert!(
        error.contains("key_store.cluster") && error.contains("not a cluster id"),
        "{error}"
    );
}
