//! Provisioning as code: a stack file declares an HSM cluster, its activation, the `kmsuser` crypto
//! user, a custom key store and KMS keys (with aliases, policies, grants and tags), and the server brings
//! them up step by step, resumably, and tears them down safely. docs/STACKS.md is the operator's guide.
//!
//! The model: [`file`] parses and checks a stack file with its parameters; [`plan`] turns it into the
//! desired resources and compares them with what the stack recorded, giving the changes (or refusing
//! the ones the engine cannot make, before anything is touched); the changes become an ordered list of
//! steps, persisted in a [`StackStore`] with their state, timestamps and logs; and a runner task per
//! stack carries the steps out (`runner`), in the server process, as the stack's owner. A runner keeps
//! going when the client that applied the stack goes away, and stacks in progress are resumed when the
//! server starts, from the last step that finished.
//!
//! On failure the runner undoes the completed steps in reverse (the default), or keeps them
//! (`preserve`); applying again continues from what the record holds. Deleting a stack runs the same
//! engine the other way, under deletion rules that never destroy what still protects data (see `steps`).
//!
//! **Invariant:** nothing secret is in a stack record, a plan, a step log or an answer: files name where
//! their secrets are, and steps read them only when they need them (`sources`).

mod ca;
mod error;
pub mod file;
pub mod plan;
mod runner;
mod sources;
mod steps;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strongroom_cloudhsm::ControlPlane;
use strongroom_secrets::SecretsManager;
use strongroom_service::{Caller, Clock, Kms};
use strongroom_storage::stacks::{StackRecord, StackStatus, StackStep, StackStore, StepState};

pub use crate::error::Error;
pub use crate::plan::{Action, Change, Plan};

/// What a runner does when a step fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// Undo the completed steps of the apply, in reverse.
    Rollback,
    /// Keep what was provisioned, so the operator can look at it; applying again continues.
    Preserve,
}

impl OnFailure {
    /// The spelling in records and requests.
    pub fn as_str(self) -> &'static str {
        match self {
            OnFailure::Rollback => "rollback",
            OnFailure::Preserve => "preserve",
        }
    }
}

impl std::str::FromStr for OnFailure {
    type Err = Error;

    fn from_str(text: &str) -> Result<OnFailure, Error> {
        match text {
            "rollback" => Ok(OnFailure::Rollback),
            "preserve" => Ok(OnFailure::Preserve),
            other => Err(Error::Validation(format!(
                "OnFailure '{other}' is not valid: use rollback or preserve."
            ))),
        }
    }
}

/// Settings of the engine.
#[derive(Debug, Clone, Default)]
pub struct StacksOptions {
    /// TEST ONLY: a pause before every step, so that tests can kill the server between two steps
    /// deterministically. The server sets it from `STRONGROOM_TEST_ONLY_STACK_STEP_DELAY_MS`; it is zero
    /// otherwise and has no use in production.
    pub test_only_step_delay: Duration,
}

/// A file's checked contents, as `validate` reports them.
#[derive(Debug, Clone)]
pub struct Validated {
    /// The stack's name.
    pub name: String,
    /// The parameters and their values.
    pub parameters: Vec<(String, String)>,
    /// The resources it declares, in order: logical id and description.
    pub resources: Vec<(String, String)>,
}

/// What `apply` accepted.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The stack's name.
    pub name: String,
    /// Its status now: `APPLY_IN_PROGRESS`, or unchanged when there was nothing to do.
    pub status: StackStatus,
    /// The changes the runner carries out; empty when the file changes nothing.
    pub changes: Vec<Change>,
}

/// The engine: shared by the protocol edge (which serves the `StrongroomStacks.*` operations) and the
/// runner tasks it starts.
pub struct Stacks {
    kms: Arc<Kms>,
    plane: Arc<ControlPlane>,
    secrets: Arc<SecretsManager>,
    store: Arc<dyn StackStore>,
    clock: Arc<dyn Clock>,
    options: StacksOptions,
    /// The stacks a runner task is working on in this process, each with whether it must look at the
    /// record again before it stops.
    running: Mutex<HashMap<(String, String, String), bool>>,
}

impl Stacks {
    /// An engine over the services stacks provision with, keeping stacks in `store`.
    pub fn new(
        kms: Arc<Kms>,
        plane: Arc<ControlPlane>,
        secrets: Arc<SecretsManager>,
        store: Arc<dyn StackStore>,
        clock: Arc<dyn Clock>,
        options: StacksOptions,
    ) -> Stacks {
        Stacks {
            kms,
            plane,
            secrets,
            store,
            clock,
            options,
            running: Mutex::new(HashMap::new()),
        }
    }

    /// Reads and checks a stack file: `validate`.
    pub fn validate(
        &self,
        document: &str,
        parameters: &[(String, String)],
    ) -> Result<Validated, Error> {
        let parsed = file::parse(document, parameters)?;
        let resources = plan::desired(&parsed)
            .into_iter()
            .map(|d| {
                let detail = plan::describe(&d.logical_id, &d.props);
                (d.logical_id, detail)
            })
            .collect();
        Ok(Validated {
            name: parsed.name,
            parameters: parsed.parameters.into_iter().collect(),
            resources,
        })
    }

    /// What applying the file would change for `caller`: `plan`, with no side effect. Refusals are in
    /// the plan; `apply` refuses such a plan.
    pub async fn plan(
        &self,
        caller: &Caller,
        document: &str,
        parameters: &[(String, String)],
    ) -> Result<(String, Plan), Error> {
        let parsed = file::parse(document, parameters)?;
        let existing = self.store.stack(&caller.namespace, &parsed.name).await?;
        let recorded = existing.map(|r| r.resources).unwrap_or_default();
        let plan = plan::plan(&plan::desired(&parsed), &recorded);
        Ok((parsed.name, plan))
    }

    /// Accepts a stack file and starts (or continues) provisioning it: `apply`. Returns once the steps
    /// are recorded; a runner task carries them out.
    pub async fn apply(
        self: &Arc<Self>,
        caller: &Caller,
        document: &str,
        parameters: &[(String, String)],
        on_failure: OnFailure,
    ) -> Result<Applied, Error> {
        let parsed = file::parse(document, parameters)?;
        let namespace = &caller.namespace;
        let existing = self.store.stack(namespace, &parsed.name).await?;
        if let Some(record) = &existing {
            self.check_idle(record)?;
        }
        let recorded = existing
            .as_ref()
            .map(|r| r.resources.clone())
            .unwrap_or_default();
        let plan = plan::plan(&plan::desired(&parsed), &recorded);
        if !plan.refusals.is_empty() {
            return Err(Error::UnsupportedChange(format!(
                "The stack file asks for changes stacks cannot make; nothing was changed: {}.",
                plan.refusals.join("; ")
            )));
        }
        let now = self.clock.now();
        if plan.changes.is_empty()
            && let Some(record) = &existing
            && matches!(record.status, StackStatus::ApplyComplete)
        {
            return Ok(Applied {
                name: parsed.name,
                status: record.status,
                changes: Vec::new(),
            });
        }
        let steps: Vec<StackStep> = plan
            .changes
            .iter()
            .map(|change| StackStep {
                logical_id: change.logical_id.clone(),
                action: change.action.as_str().to_owned(),
                state: StepState::Pending,
                started: None,
                finished: None,
                log: Vec::new(),
                desired: Some(
                    serde_json::json!({ "before": change.before, "after": change.after })
                        .to_string(),
                ),
            })
            .collect();
        let record = StackRecord {
            namespace: namespace.clone(),
            name: parsed.name.clone(),
            owner_arn: caller.arn.clone(),
            owner_access_key_id: caller.access_key_id.clone(),
            document: document.to_owned(),
            parameters: parameters.to_vec(),
            status: StackStatus::ApplyInProgress,
            on_failure: on_failure.as_str().to_owned(),
            reason: None,
            created: existing.as_ref().map_or(now, |r| r.created),
            updated: now,
            resources: recorded,
            steps,
        };
        match existing {
            Some(_) => self.store.put_stack(&record).await?,
            None => self.store.insert_stack(&record).await?,
        }
        tracing::info!(stack = %record.name, steps = record.steps.len(), "stack apply accepted");
        self.spawn(namespace, &record.name);
        Ok(Applied {
            name: record.name,
            status: record.status,
            changes: plan.changes,
        })
    }

    /// The stack named `name`: `status`.
    pub async fn describe(&self, caller: &Caller, name: &str) -> Result<StackRecord, Error> {
        self.store
            .stack(&caller.namespace, name)
            .await?
            .ok_or_else(|| not_found(name))
    }

    /// The caller's stacks: `list`.
    pub async fn list(&self, caller: &Caller) -> Result<Vec<StackRecord>, Error> {
        Ok(self.store.list_stacks(&caller.namespace).await?)
    }

    /// Starts deleting the stack named `name`: `delete`. Returns the stack as recorded, with its
    /// deletion steps.
    pub async fn delete(
        self: &Arc<Self>,
        caller: &Caller,
        name: &str,
    ) -> Result<StackRecord, Error> {
        let mut record = self.describe(caller, name).await?;
        self.check_idle(&record)?;
        record.steps = record
            .resources
            .iter()
            .rev()
            .map(|resource| StackStep {
                logical_id: resource.logical_id.clone(),
                action: Action::Delete.as_str().to_owned(),
                state: StepState::Pending,
                started: None,
                finished: None,
                log: Vec::new(),
                desired: None,
            })
            .collect();
        record.status = StackStatus::DeleteInProgress;
        record.reason = None;
        record.owner_arn = caller.arn.clone();
        record.owner_access_key_id = caller.access_key_id.clone();
        record.updated = self.clock.now();
        self.store.put_stack(&record).await?;
        tracing::info!(stack = %record.name, steps = record.steps.len(), "stack deletion accepted");
        self.spawn(&caller.namespace, name);
        Ok(record)
    }

    /// Resumes every stack whose runner had not finished when the server stopped; returns how many.
    pub async fn resume(self: &Arc<Self>) -> Result<usize, Error> {
        let pending = self.store.stacks_in_progress().await?;
        for (namespace, name) in &pending {
            tracing::info!(stack = %name, "resuming a stack in progress");
            self.spawn(namespace, name);
        }
        Ok(pending.len())
    }

    fn check_idle(&self, record: &StackRecord) -> Result<(), Error> {
        if record.status.in_progress() {
            return Err(Error::InProgress(format!(
                "Stack {} is {}: wait for it to finish (strongroom stack status {}).",
                record.name, record.status, record.name
            )));
        }
        Ok(())
    }
}

fn not_found(name: &str) -> Error {
    Error::NotFound(format!(
        "Stack {name} does not exist in this account and Region."
    ))
}

#[cfg(test)]
mod tests;
