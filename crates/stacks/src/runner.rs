//! The runner: one task per stack, carrying out its steps in order and writing the record after every
//! change of state, so that a server killed at any moment resumes from the last step that finished.
//!
//! A step is marked `running` (and the record written) before it starts; a step found `running` at
//! start-up was interrupted and runs again, told that it was resumed so that it first looks for what it
//! may already have made.

use std::sync::{Arc, PoisonError};

use serde_json::Value;
use strongroom_service::Caller;
use strongroom_storage::stacks::{StackRecord, StackResource, StackStatus, StepState};
use strongroom_types::Namespace;

use crate::error::Error;
use crate::plan::Action;
use crate::steps::{self, Ctx, Effect, Removal};
use crate::{Stacks, file};

/// The key of a stack in the set of running stacks.
pub(crate) fn key(namespace: &Namespace, name: &str) -> (String, String, String) {
    (
        namespace.account.as_str().to_owned(),
        namespace.region.as_str().to_owned(),
        name.to_owned(),
    )
}

impl Stacks {
    /// Starts a runner for the stack, or, if one is running, asks it to look at the record again before
    /// it stops, so that steps recorded while it was finishing are not left pending.
    pub(crate) fn spawn(self: &Arc<Self>, namespace: &Namespace, name: &str) {
        let id = key(namespace, name);
        {
            let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(again) = running.get_mut(&id) {
                *again = true;
                return;
            }
            running.insert(id.clone(), false);
        }
        let this = Arc::clone(self);
        let namespace = namespace.clone();
        let name = name.to_owned();
        tokio::spawn(async move {
            loop {
                if let Err(e) = this.run(&namespace, &name).await {
                    tracing::error!(stack = %name, "failed to run the stack's steps: {e:#}");
                }
                let mut running = this.running.lock().unwrap_or_else(PoisonError::into_inner);
                match running.get_mut(&id) {
                    Some(again) if *again => *again = false,
                    _ => {
                        running.remove(&id);
                        return;
                    }
                }
            }
        });
    }

    async fn run(&self, namespace: &Namespace, name: &str) -> Result<(), Error> {
        loop {
            let Some(mut record) = self.store.stack(namespace, name).await? else {
                return Ok(());
            };
            match record.status {
                StackStatus::ApplyInProgress | StackStatus::DeleteInProgress => {
                    self.forward(&mut record).await?
                }
                StackStatus::RollbackInProgress => self.rollback(&mut record).await?,
                _ => return Ok(()),
            }
        }
    }

    async fn save(&self, record: &mut StackRecord) -> Result<(), Error> {
        record.updated = self.clock.now();
        self.store.put_stack(record).await?;
        Ok(())
    }

    fn owner(record: &StackRecord) -> Caller {
        Caller {
            namespace: record.namespace.clone(),
            arn: record.owner_arn.clone(),
            access_key_id: record.owner_access_key_id.clone(),
            source_ip: None,
            source_vpc: None,
            source_vpce: None,
            via_service: None,
        }
    }

    /// Runs the pending steps of an apply or a deletion, then settles the stack's status.
    async fn forward(&self, record: &mut StackRecord) -> Result<(), Error> {
        let deleting = record.status == StackStatus::DeleteInProgress;
        let parsed = file::parse(&record.document, &record.parameters)?;
        let caller = Stacks::owner(record);
        for index in 0..record.steps.len() {
            let state = record.steps[index].state;
            if !matches!(state, StepState::Pending | StepState::Running) {
                continue;
            }
            let resumed = state == StepState::Running;
            record.steps[index].state = StepState::Running;
            record.steps[index].started = Some(self.clock.now());
            if resumed {
                record.steps[index]
                    .log
                    .push("resumed after the server restarted".to_owned());
            }
            self.save(record).await?;
            if !self.options.test_only_step_delay.is_zero() {
                tokio::time::sleep(self.options.test_only_step_delay).await;
            }
            let step = record.steps[index].clone();
            tracing::info!(stack = %record.name, step = %step.logical_id, action = %step.action, "running a stack step");
            let mut log = Vec::new();
            let outcome = {
                let ctx = Ctx {
                    stacks: self,
                    caller: &caller,
                    stack_name: &record.name,
                    parsed: &parsed,
                    resources: &record.resources,
                };
                match Action::parse(&step.action) {
                    Some(Action::Delete) => match record
                        .resources
                        .iter()
                        .find(|r| r.logical_id == step.logical_id)
                    {
                        Some(resource) => {
                            let removal = match deleting {
                                true => Removal::StackDeletion,
                                false => Removal::Change,
                            };
                            steps::delete(&ctx, resource, removal, &mut log).await
                        }
                        None => Ok(Effect::Forget(step.logical_id.clone())),
                    },
                    Some(_) => {
                        let (before, after) = before_after(step.desired.as_deref());
                        steps::apply(
                            &ctx,
                            &step.logical_id,
                            before.as_ref(),
                            &after,
                            resumed,
                            &mut log,
                        )
                        .await
                    }
                    None => Err(format!("unknown action {}", step.action)),
                }
            };
            let now = self.clock.now();
            let current = &mut record.steps[index];
            current.log.extend(log);
            current.finished = Some(now);
            match outcome {
                Ok(effect) => {
                    current.state = StepState::Done;
                    apply_effect(&mut record.resources, effect);
                    self.save(record).await?;
                }
                Err(problem) => {
                    tracing::warn!(stack = %record.name, step = %step.logical_id, "a stack step failed: {problem}");
                    current.state = StepState::Failed;
                    current.log.push(problem.clone());
                    let reason = format!(
                        "step {} ({}) failed: {problem}",
                        step.logical_id, step.action
                    );
                    record.status = match (deleting, record.on_failure.as_str()) {
                        (true, _) => StackStatus::DeleteFailed,
                        (false, "preserve") => StackStatus::ApplyFailed,
                        (false, _) => StackStatus::RollbackInProgress,
                    };
                    record.reason = Some(reason);
                    self.save(record).await?;
                    return Ok(());
                }
            }
        }
        record.status = match deleting {
            true => StackStatus::DeleteComplete,
            false => StackStatus::ApplyComplete,
        };
        record.reason = kept(record);
        self.save(record).await?;
        tracing::info!(stack = %record.name, status = %record.status, "stack finished");
        Ok(())
    }

    /// Undoes the completed steps of a failed apply, newest first.
    async fn rollback(&self, record: &mut StackRecord) -> Result<(), Error> {
        let parsed = file::parse(&record.document, &record.parameters)?;
        let caller = Stacks::owner(record);
        for index in (0..record.steps.len()).rev() {
            if record.steps[index].state != StepState::Done {
                continue;
            }
            let step = record.steps[index].clone();
            let mut log = Vec::new();
            let outcome = {
                let ctx = Ctx {
                    stacks: self,
                    caller: &caller,
                    stack_name: &record.name,
                    parsed: &parsed,
                    resources: &record.resources,
                };
                let (before, after) = before_after(step.desired.as_deref());
                match (Action::parse(&step.action), before) {
                    (Some(Action::Create), _) => {
                        match record
                            .resources
                            .iter()
                            .find(|r| r.logical_id == step.logical_id)
                        {
                            Some(resource) => {
                                steps::delete(&ctx, resource, Removal::Rollback, &mut log).await
                            }
                            None => Ok(Effect::Forget(step.logical_id.clone())),
                        }
                    }
                    (Some(Action::Update), Some(before)) => {
                        log.push("undoing the update".to_owned());
                        steps::apply(
                            &ctx,
                            &step.logical_id,
                            Some(&after),
                            &before,
                            false,
                            &mut log,
                        )
                        .await
                    }
                    _ => {
                        log.push("a deletion cannot be undone".to_owned());
                        Err(String::new())
                    }
                }
            };
            let current = &mut record.steps[index];
            current.log.extend(log);
            current.finished = Some(self.clock.now());
            match outcome {
                Ok(effect) => {
                    current.state = StepState::RolledBack;
                    apply_effect(&mut record.resources, effect);
                    self.save(record).await?;
                }
                Err(problem) if problem.is_empty() => {
                    self.save(record).await?;
                }
                Err(problem) => {
                    current.log.push(format!("rolling back failed: {problem}"));
                    record.status = StackStatus::RollbackFailed;
                    let first = record.reason.clone().unwrap_or_default();
                    record.reason = Some(format!(
                        "{first}; then rolling back {} failed: {problem}",
                        step.logical_id
                    ));
                    self.save(record).await?;
                    return Ok(());
                }
            }
        }
        record.status = StackStatus::RollbackComplete;
        let first = record.reason.clone().unwrap_or_default();
        record.reason = Some(match kept(record) {
            Some(kept) => format!("{first}; the completed steps were undone, except: {kept}"),
            None => format!("{first}; the completed steps were undone"),
        });
        self.save(record).await?;
        tracing::info!(stack = %record.name, "stack rolled back");
        Ok(())
    }
}

fn before_after(desired: Option<&str>) -> (Option<Value>, Value) {
    let parsed: Value = desired
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or(Value::Null);
    let before = parsed.get("before").filter(|v| !v.is_null()).cloned();
    let after = parsed.get("after").cloned().unwrap_or(Value::Null);
    (before, after)
}

fn apply_effect(resources: &mut Vec<StackResource>, effect: Effect) {
    match effect {
        Effect::Record(resource) => {
            match resources
                .iter_mut()
                .find(|r| r.logical_id == resource.logical_id)
            {
                Some(existing) => *existing = resource,
                None => resources.push(resource),
            }
        }
        Effect::Forget(logical_id) => resources.retain(|r| r.logical_id != logical_id),
        Effect::Keep(logical_id, reason) => {
            if let Some(existing) = resources.iter_mut().find(|r| r.logical_id == logical_id) {
                existing.retained = Some(reason);
            }
        }
    }
}

/// What was kept, and why, in one sentence; `None` when nothing was.
fn kept(record: &StackRecord) -> Option<String> {
    let mut reasons: Vec<String> = Vec::new();
    for resource in &record.resources {
        if let Some(reason) = &resource.retained
            && !reasons.contains(reason)
        {
            reasons.push(reason.clone());
        }
    }
    match reasons.is_empty() {
        true => None,
        false => Some(format!("kept: {}", reasons.join("; "))),
    }
}
