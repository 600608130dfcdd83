//! Durable storage of provisioning stacks: what each stack's file declared, the resources it made, and the
//! steps of its current (or last) operation with their state, timestamps and logs.
//!
//! A stack's record ([`StackRecord`]) is small and written whole after every step, so a server killed at
//! any point finds, on restart, the last step that finished and what it made.
//!
//! **Invariant:** nothing secret is stored here. A stack file names where its secrets are (a Secrets
//! Manager secret, a file, an environment variable); the engine reads them when a step needs them and
//! never writes them into a record, a step log or a resource's properties.

use async_trait::async_trait;
use strongroom_types::{Namespace, Timestamp};

use crate::StoreError;

/// Where a stack is in its life; the engine's runner moves it along.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackStatus {
    /// Steps of an apply are being carried out (or will be, after a restart).
    ApplyInProgress,
    /// Every step of the last apply is done.
    ApplyComplete,
    /// A step failed and the completed steps were kept, as asked (`--on-failure preserve`).
    ApplyFailed,
    /// A step failed and the completed steps are being undone, in reverse.
    RollbackInProgress,
    /// A failed apply was undone.
    RollbackComplete,
    /// Undoing a failed apply failed too; the step logs say where.
    RollbackFailed,
    /// The stack's resources are being deleted.
    DeleteInProgress,
    /// The stack was deleted; what had to stay is listed with the reason.
    DeleteComplete,
    /// A deletion step failed; deleting again continues from there.
    DeleteFailed,
}

impl StackStatus {
    /// Every status, for parsing and listing.
    pub const ALL: [StackStatus; 9] = [
        StackStatus::ApplyInProgress,
        StackStatus::ApplyComplete,
        StackStatus::ApplyFailed,
        StackStatus::RollbackInProgress,
        StackStatus::RollbackComplete,
        StackStatus::RollbackFailed,
        StackStatus::DeleteInProgress,
        StackStatus::DeleteComplete,
        StackStatus::DeleteFailed,
    ];

    /// The spelling kept in storage and shown to operators.
    pub fn as_str(self) -> &'static str {
        match self {
            StackStatus::ApplyInProgress => "APPLY_IN_PROGRESS",
            StackStatus::ApplyComplete => "APPLY_COMPLETE",
            StackStatus::ApplyFailed => "APPLY_FAILED",
            StackStatus::RollbackInProgress => "ROLLBACK_IN_PROGRESS",
            StackStatus::RollbackComplete => "ROLLBACK_COMPLETE",
            StackStatus::RollbackFailed => "ROLLBACK_FAILED",
            StackStatus::DeleteInProgress => "DELETE_IN_PROGRESS",
            StackStatus::DeleteComplete => "DELETE_COMPLETE",
            StackStatus::DeleteFailed => "DELETE_FAILED",
        }
    }

    /// Whether a runner has work left: such stacks are resumed when the server starts.
    pub fn in_progress(self) -> bool {
        matches!(
            self,
            StackStatus::ApplyInProgress
                | StackStatus::RollbackInProgress
                | StackStatus::DeleteInProgress
        )
    }
}

impl std::fmt::Display for StackStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for StackStatus {
    type Err = String;

    fn from_str(text: &str) -> Result<StackStatus, String> {
        StackStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or_else(|| format!("unknown stack status '{text}'"))
    }
}

/// Where one step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepState {
    /// Not started.
    Pending,
    /// Started; a step found running after a restart is run again (steps are idempotent).
    Running,
    /// Finished.
    Done,
    /// Failed; its log says why.
    Failed,
    /// Done, then undone by a rollback.
    RolledBack,
}

impl StepState {
    /// Every state, for parsing.
    pub const ALL: [StepState; 5] = [
        StepState::Pending,
        StepState::Running,
        StepState::Done,
        StepState::Failed,
        StepState::RolledBack,
    ];

    /// The spelling kept in storage and shown to operators.
    pub fn as_str(self) -> &'static str {
        match self {
            StepState::Pending => "pending",
            StepState::Running => "running",
            StepState::Done => "done",
            StepState::Failed => "failed",
            StepState::RolledBack => "rolled back",
        }
    }
}

impl std::fmt::Display for StepState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for StepState {
    type Err = String;

    fn from_str(text: &str) -> Result<StepState, String> {
        StepState::ALL
            .into_iter()
            .find(|state| state.as_str() == text)
            .ok_or_else(|| format!("unknown step state '{text}'"))
    }
}

/// One resource a stack made and manages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackResource {
    /// The name the stack gives it, such as `cluster`, `hsm/us-east-1a/1` or `key/orders`.
    pub logical_id: String,
    /// The id it has in its service (a cluster id, an HSM id, a key id, an alias name).
    pub physical_id: String,
    /// The properties it was made or last updated with, as the engine encodes them (JSON); never secret.
    pub properties: String,
    /// Why the resource was kept when the stack was deleted, if it was.
    pub retained: Option<String>,
}

/// One step of a stack's current or last operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackStep {
    /// The resource the step works on.
    pub logical_id: String,
    /// What it does: `create`, `update` or `delete`.
    pub action: String,
    /// Its state.
    pub state: StepState,
    /// When it started, if it did.
    pub started: Option<Timestamp>,
    /// When it finished (done, failed or rolled back).
    pub finished: Option<Timestamp>,
    /// What it did and, when it failed, why; one line per entry, never secret.
    pub log: Vec<String>,
    /// The properties the step moves the resource to (JSON), for create and update.
    pub desired: Option<String>,
}

/// A stack: its file and parameters, its owner, its status, its resources and its steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackRecord {
    /// The stack's account and Region.
    pub namespace: Namespace,
    /// The name, unique in its namespace.
    pub name: String,
    /// The principal that applied it last; steps run as this principal.
    pub owner_arn: String,
    /// The access key it signed with.
    pub owner_access_key_id: String,
    /// The stack file as last applied (it holds secret references, never secrets).
    pub document: String,
    /// The parameters given with it, in the order given.
    pub parameters: Vec<(String, String)>,
    /// Where the stack is.
    pub status: StackStatus,
    /// `rollback` or `preserve`: what the runner does when a step fails.
    pub on_failure: String,
    /// Why the stack is where it is, for failures and deletions that kept resources.
    pub reason: Option<String>,
    /// When it was first applied.
    pub created: Timestamp,
    /// When it last changed.
    pub updated: Timestamp,
    /// The resources it manages, in the order they were made.
    pub resources: Vec<StackResource>,
    /// The steps of the current or last operation, in order.
    pub steps: Vec<StackStep>,
}

/// Durable storage of stacks, shared by the engine's runners.
#[async_trait]
pub trait StackStore: Send + Sync + 'static {
    /// Adds a stack; `AlreadyExists` if its name is taken in its namespace.
    async fn insert_stack(&self, stack: &StackRecord) -> Result<(), StoreError>;

    /// Replaces a stack record whole (resources and steps too); `NotFound` if it does not exist.
    async fn put_stack(&self, stack: &StackRecord) -> Result<(), StoreError>;

    /// Reads one stack.
    async fn stack(
        &self,
        namespace: &Namespace,
        name: &str,
    ) -> Result<Option<StackRecord>, StoreError>;

    /// The stacks of a namespace, by name.
    async fn list_stacks(&self, namespace: &Namespace) -> Result<Vec<StackRecord>, StoreError>;

    /// Stacks in any namespace whose status is in progress, to resume at start-up.
    async fn stacks_in_progress(&self) -> Result<Vec<(Namespace, String)>, StoreError>;

    /// Forgets a stack; `NotFound` if it does not exist.
    async fn delete_stack(&self, namespace: &Namespace, name: &str) -> Result<(), StoreError>;
}
