//! `strongroom stack`: validate, plan, apply, inspect and delete stacks (docs/STACKS.md).
//!
//! The commands send the stack file to the running server as Strongroom's `StrongroomStacks.*`
//! operations, signed with SigV4 like any request; the server runs the steps, so a stack keeps
//! provisioning when this command exits or loses its connection. `apply --wait` and `delete --wait`
//! follow the stack's status until its runner finishes.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::{Map, Value, json};

/// The target prefix of the stack operations (see `strongroom_protocol`'s `stacks`).
const TARGET_PREFIX: &str = "StrongroomStacks.";
/// The largest answer the commands expect; a stack's status with its logs is a few kilobytes.
const MAX_RESPONSE_BYTES: u64 = 16 * 1024 * 1024;
/// How often `--wait` looks at the stack.
const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// The `strongroom stack` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum StackCommand {
    /// Check a stack file and list the resources it declares; changes nothing.
    Validate {
        #[command(flatten)]
        target: Target,
        /// The stack file (YAML).
        file: PathBuf,
        /// A parameter value, NAME=VALUE (repeatable); overrides the file's default.
        #[arg(long = "parameter", short = 'p', value_name = "NAME=VALUE")]
        parameters: Vec<String>,
    },
    /// Show what applying the file would create, change or delete, and what it cannot change; changes
    /// nothing. Exits with a failure status when a change would be refused.
    Plan {
        #[command(flatten)]
        target: Target,
        /// The stack file (YAML).
        file: PathBuf,
        /// A parameter value, NAME=VALUE (repeatable).
        #[arg(long = "parameter", short = 'p', value_name = "NAME=VALUE")]
        parameters: Vec<String>,
    },
    /// Send the file to the server, which provisions it step by step. Returns once the server has
    /// accepted it, unless --wait.
    Apply {
        #[command(flatten)]
        target: Target,
        /// The stack file (YAML).
        file: PathBuf,
        /// A parameter value, NAME=VALUE (repeatable).
        #[arg(long = "parameter", short = 'p', value_name = "NAME=VALUE")]
        parameters: Vec<String>,
        /// When a step fails: undo the completed steps (rollback), or keep them for inspection (preserve).
        #[arg(long, default_value = "rollback", value_parser = ["rollback", "preserve"])]
        on_failure: String,
        /// Follow the steps until the stack is complete or has failed.
        #[arg(long)]
        wait: bool,
    },
    /// Show a stack: its status, its resources, and each step with its state, times and log.
    Status {
        #[command(flatten)]
        target: Target,
        /// The stack's name.
        name: String,
    },
    /// Delete a stack's resources, keeping what still protects data (see docs/STACKS.md).
    Delete {
        #[command(flatten)]
        target: Target,
        /// The stack's name.
        name: String,
        /// Follow the steps until the deletion is done.
        #[arg(long)]
        wait: bool,
    },
    /// List the stacks of the account and Region.
    List {
        #[command(flatten)]
        target: Target,
    },
}

/// Which server, and whose credentials.
#[derive(Debug, clap::Args)]
pub(crate) struct Target {
    /// The server, and the principal the stack's steps run as.
    #[command(flatten)]
    server: crate::admin_call::Server,
}

/// Runs one command; fails (a non-zero exit) when the server refuses, a plan has refusals, or a waited-for
/// stack did not complete.
pub(crate) async fn run(command: StackCommand) -> anyhow::Result<()> {
    match command {
        StackCommand::Validate {
            target,
            file,
            parameters,
        } => {
            let body = file_body(&file, &parameters)?;
            let answer = call(&target, "ValidateStack", &body).await?;
            let mut out = format!(
                "{} is valid: stack {}\n",
                file.display(),
                text(&answer["StackName"])
            );
            if let Some(parameters) = answer["Parameters"].as_object() {
                for (name, value) in parameters {
                    out.push_str(&format!("  parameter {name} = {}\n", text(value)));
                }
            }
            for resource in answer["Resources"].as_array().into_iter().flatten() {
                out.push_str(&format!("  {}\n", text(&resource["Description"])));
            }
            print(&out)
        }
        StackCommand::Plan {
            target,
            file,
            parameters,
        } => {
            let body = file_body(&file, &parameters)?;
            let answer = call(&target, "PlanStack", &body).await?;
            let mut out = format!("stack {}\n", text(&answer["StackName"]));
            let changes = answer["Changes"].as_array().cloned().unwrap_or_default();
            let refusals = answer["Refusals"].as_array().cloned().unwrap_or_default();
            if changes.is_empty() && refusals.is_empty() {
                out.push_str("no changes\n");
            }
            for change in &changes {
                out.push_str(&format!("  {}\n", text(&change["Detail"])));
            }
            for refusal in &refusals {
                out.push_str(&format!("  refused: {}\n", text(refusal)));
            }
            print(&out)?;
            if !refusals.is_empty() {
                bail!("the plan has changes stacks cannot make; nothing was changed");
            }
            Ok(())
        }
        StackCommand::Apply {
            target,
            file,
            parameters,
            on_failure,
            wait,
        } => {
            let mut body = file_body(&file, &parameters)?;
            body["OnFailure"] = json!(on_failure);
            let answer = call(&target, "ApplyStack", &body).await?;
            let name = text(&answer["StackName"]).to_owned();
            let changes = answer["Changes"].as_array().cloned().unwrap_or_default();
            if changes.is_empty() {
                return print(&format!("stack {name}: no changes\n"));
            }
            let mut out = format!(
                "stack {name}: {} ({} steps)\n",
                text(&answer["Status"]),
                changes.len()
            );
            for change in &changes {
                out.push_str(&format!("  {}\n", text(&change["Detail"])));
            }
            print(&out)?;
            match wait {
                true => follow(&target, &name).await,
                false => print(&format!(
                    "the server is provisioning it; follow it with: strongroom stack status {name}\n"
                )),
            }
        }
        StackCommand::Status { target, name } => {
            let answer = call(&target, "DescribeStack", &json!({ "StackName": name })).await?;
            print(&render(&answer["Stack"]))
        }
        StackCommand::Delete { target, name, wait } => {
            let answer = call(&target, "DeleteStack", &json!({ "StackName": name })).await?;
            let stack = &answer["Stack"];
            print(&format!(
                "stack {name}: {} ({} steps)\n",
                text(&stack["Status"]),
                stack["Steps"].as_array().map_or(0, Vec::len)
            ))?;
            match wait {
                true => follow(&target, &name).await,
                false => Ok(()),
            }
        }
        StackCommand::List { target } => {
            let answer = call(&target, "ListStacks", &json!({})).await?;
            let mut out = String::from("NAME\tSTATUS\tUPDATED\n");
            for stack in answer["Stacks"].as_array().into_iter().flatten() {
                out.push_str(&format!(
                    "{}\t{}\t{}\n",
                    text(&stack["StackName"]),
                    text(&stack["Status"]),
                    time_of(&stack["Updated"])
                ));
            }
            print(&out)
        }
    }
}

/// Polls the stack, printing each step as it finishes, until its runner is done.
async fn follow(target: &Target, name: &str) -> anyhow::Result<()> {
    let mut reported = 0;
    loop {
        let answer = call(target, "DescribeStack", &json!({ "StackName": name })).await?;
        let stack = &answer["Stack"];
        let steps = stack["Steps"].as_array().cloned().unwrap_or_default();
        let mut out = String::new();
        while reported < steps.len() {
            let step = &steps[reported];
            let state = text(&step["State"]);
            if state == "pending" || state == "running" {
                break;
            }
            out.push_str(&format!(
                "  [{state}] {} {}\n",
                text(&step["Action"]),
                text(&step["LogicalId"])
            ));
            for line in step["Log"].as_array().into_iter().flatten() {
                out.push_str(&format!("      {}\n", text(line)));
            }
            reported += 1;
        }
        print(&out)?;
        let status = text(&stack["Status"]);
        if !status.ends_with("_IN_PROGRESS") {
            let mut last = format!("stack {name}: {status}\n");
            if let Some(reason) = stack["Reason"].as_str() {
                last.push_str(&format!("  {reason}\n"));
            }
            print(&last)?;
            if status == "APPLY_COMPLETE" || status == "DELETE_COMPLETE" {
                return Ok(());
            }
            bail!("stack {name} is {status}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// A stack's status as text.
fn render(stack: &Value) -> String {
    let mut out = format!(
        "stack {}: {}\n",
        text(&stack["StackName"]),
        text(&stack["Status"])
    );
    if let Some(reason) = stack["Reason"].as_str() {
        out.push_str(&format!("reason: {reason}\n"));
    }
    out.push_str(&format!(
        "owner: {}; on failure: {}; updated {}\n",
        text(&stack["Owner"]),
        text(&stack["OnFailure"]),
        time_of(&stack["Updated"])
    ));
    if let Some(parameters) = stack["Parameters"].as_object()
        && !parameters.is_empty()
    {
        let list: Vec<String> = parameters
            .iter()
            .map(|(name, value)| format!("{name}={}", text(value)))
            .collect();
        out.push_str(&format!("parameters: {}\n", list.join(" ")));
    }
    out.push_str("resources:\n");
    for resource in stack["Resources"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  {}\t{}",
            text(&resource["LogicalId"]),
            text(&resource["PhysicalId"])
        ));
        if let Some(retained) = resource["Retained"].as_str() {
            out.push_str(&format!("\t({retained})"));
        }
        out.push('\n');
    }
    out.push_str("steps:\n");
    for step in stack["Steps"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  [{}] {} {}\tstarted {}\tfinished {}\n",
            text(&step["State"]),
            text(&step["Action"]),
            text(&step["LogicalId"]),
            time_of(&step["Started"]),
            time_of(&step["Finished"])
        ));
        for line in step["Log"].as_array().into_iter().flatten() {
            out.push_str(&format!("      {}\n", text(line)));
        }
    }
    out
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

fn time_of(value: &Value) -> String {
    let Some(seconds) = value.as_f64() else {
        return "-".to_owned();
    };
    time::OffsetDateTime::from_unix_timestamp(seconds as i64)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "-".to_owned())
}

fn print(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    std::io::Write::write_all(&mut out, text.as_bytes())?;
    std::io::Write::flush(&mut out)?;
    Ok(())
}

/// The request body naming a stack file and its parameters.
fn file_body(file: &std::path::Path, parameters: &[String]) -> anyhow::Result<Value> {
    let document = std::fs::read_to_string(file)
        .with_context(|| format!("read the stack file {}", file.display()))?;
    let mut map = Map::new();
    for parameter in parameters {
        let Some((name, value)) = parameter.split_once('=') else {
            bail!("--parameter takes NAME=VALUE, not '{parameter}'");
        };
        map.insert(name.to_owned(), json!(value));
    }
    Ok(json!({ "Document": document, "Parameters": map }))
}

/// Sends one signed request to the server (see [`crate::admin_call`]).
async fn call(target: &Target, operation: &str, body: &Value) -> anyhow::Result<Value> {
    crate::admin_call::call(
        &target.server,
        "kms",
        &format!("{TARGET_PREFIX}{operation}"),
        body,
        MAX_RESPONSE_BYTES,
    )
    .await
}
