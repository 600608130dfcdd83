//! The conformance suite every [`StackStore`] backend must pass.
//!
//! It starts from and leaves behind a store without stacks in the namespaces it uses, so it can run again
//! on the same store, for instance after reopening it.

use strongroom_storage::StoreError;
use strongroom_storage::stacks::{
    StackRecord, StackResource, StackStatus, StackStep, StackStore, StepState,
};
use strongroom_types::Namespace;

use crate::fixtures::{base_time, namespace};

fn stack(namespace: &Namespace, name: &str) -> StackRecord {
    StackRecord {
        namespace: namespace.clone(),
        name: name.to_owned(),
        owner_arn: "arn:aws:iam::111122223333:root".to_owned(),
        owner_access_key_id: "AKIAEXAMPLE".to_owned(),
        document: "name: payments\nkeys:\n  orders: {}\n".to_owned(),
        parameters: vec![
            ("system".to_owned(), "pay".to_owned()),
            ("purpose".to_owned(), "a=b".to_owned()),
        ],
        status: StackStatus::ApplyInProgress,
        on_failure: "rollback".to_owned(),
        reason: None,
        created: base_time(),
        updated: base_time(),
        resources: vec![StackResource {
            logical_id: "cluster".to_owned(),
            physical_id: "cluster-abcdefghijk".to_owned(),
            properties: r#"{"hsm_type":"hsm2m.medium"}"#.to_owned(),
            retained: None,
        }],
        steps: vec![
            StackStep {
                logical_id: "cluster".to_owned(),
                action: "create".to_owned(),
                state: StepState::Done,
                started: Some(base_time()),
                finished: Some(base_time().plus_days(1)),
                log: vec![
                    "created cluster-abcdefghijk".to_owned(),
                    "second line".to_owned(),
                ],
                desired: Some(r#"{"hsm_type":"hsm2m.medium"}"#.to_owned()),
            },
            StackStep {
                logical_id: "hsm/us-east-1a/1".to_owned(),
                action: "create".to_owned(),
                state: StepState::Pending,
                started: None,
                finished: None,
                log: Vec::new(),
                desired: None,
            },
        ],
    }
}

/// Runs every check against `store`, which must hold no stacks in the suite's namespaces; panics on the
/// first failure, and leaves those namespaces empty again.
pub async fn check_stack_store(store: &dyn StackStore) {
    let here = namespace("111122223333", "us-east-1");
    let there = namespace("111122223333", "eu-west-1");
    assert!(
        store.list_stacks(&here).await.expect("list").is_empty(),
        "the suite starts from an empty namespace"
    );
    assert_eq!(store.stack(&here, "payments").await.expect("read"), None);

    // A stack round-trips whole, its parameters, resources and steps in order.
    let mut first = stack(&here, "payments");
    store.insert_stack(&first).await.expect("insert");
    assert_eq!(
        store.stack(&here, "payments").await.expect("read"),
        Some(first.clone())
    );
    assert!(
        matches!(
            store.insert_stack(&first).await,
            Err(StoreError::AlreadyExists(_))
        ),
        "a name is unique in its namespace"
    );
    assert_eq!(
        store.stack(&there, "payments").await.expect("read"),
        None,
        "stacks are per namespace"
    );
    let elsewhere = stack(&there, "payments");
    store
        .insert_stack(&elsewhere)
        .await
        .expect("insert elsewhere");

    // put_stack replaces everything, including fewer resources and steps.
    first.status = StackStatus::ApplyFailed;
    first.reason = Some("step hsm/us-east-1a/1 failed".to_owned());
    first.steps[1].state = StepState::Failed;
    first.steps[1].log = vec!["no free HSM".to_owned()];
    first.resources.push(StackResource {
        logical_id: "key/orders".to_owned(),
        physical_id: "1234abcd-12ab-34cd-56ef-1234567890ab".to_owned(),
        properties: "{}".to_owned(),
        retained: Some("scheduled for deletion".to_owned()),
    });
    first.steps.remove(0);
    first.updated = base_time().plus_days(2);
    store.put_stack(&first).await.expect("put");
    assert_eq!(
        store.stack(&here, "payments").await.expect("read"),
        Some(first.clone())
    );
    let missing = stack(&here, "missing");
    assert!(matches!(
        store.put_stack(&missing).await,
        Err(StoreError::NotFound(_))
    ));

    // Listing by name; in-progress stacks across namespaces.
    let mut second = stack(&here, "analytics");
    second.status = StackStatus::DeleteInProgress;
    store.insert_stack(&second).await.expect("insert second");
    let names: Vec<String> = store
        .list_stacks(&here)
        .await
        .expect("list")
        .into_iter()
        .map(|record| record.name)
        .collect();
    assert_eq!(names, ["analytics", "payments"]);
    let mut in_progress = store.stacks_in_progress().await.expect("in progress");
    in_progress.retain(|(namespace, _)| namespace == &here || namespace == &there);
    assert_eq!(
        in_progress,
        [
            (there.clone(), "payments".to_owned()),
            (here.clone(), "analytics".to_owned()),
        ],
        "in-progress stacks are found by namespace and name, finished ones are not"
    );

    // Deletion forgets the stack with its resources and steps.
    for (namespace, name) in [
        (&here, "payments"),
        (&here, "analytics"),
        (&there, "payments"),
    ] {
        store.delete_stack(namespace, name).await.expect("delete");
        assert_eq!(store.stack(namespace, name).await.expect("read"), None);
    }
    assert!(matches!(
        store.delete_stack(&here, "payments").await,
        Err(StoreError::NotFound(_))
    ));
    assert!(store.list_stacks(&here).await.expect("list").is_empty());
}
