//! `nimbus deploy`: a template (SAM or plain CloudFormation) packaged into nimbus's S3, its
//! change set shown as a table, confirmed, executed, and the stack's progress printed as its
//! events arrive. `nimbus stacks` lists stacks; `nimbus delete STACK` removes one. Everything
//! goes through CloudFormation's own API, so what these do the aws CLI and SAM CLI can see.

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::http::{Client, Error};
use crate::package::Packager;
use crate::query::{self, list, CLOUDFORMATION};
use crate::style::{Console, Paint, Style};
use crate::table::{Align, Cell, Table};
use crate::Common;

#[derive(Debug, Clone, clap::Args)]
pub struct DeployArgs {
    #[command(flatten)]
    pub common: Common,
    /// The template (SAM or CloudFormation, YAML or JSON).
    #[arg(short = 't', long, default_value = "template.yaml")]
    pub template: PathBuf,
    /// The stack's name; default: the template's directory name.
    #[arg(long)]
    pub stack_name: Option<String>,
    /// `Key=Value` pairs (or SAM's `ParameterKey=K,ParameterValue=V`).
    #[arg(long, num_args = 1..)]
    pub parameter_overrides: Vec<String>,
    /// Apply the change set without asking.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct StacksArgs {
    #[command(flatten)]
    pub common: Common,
    /// One stack: its resources and outputs.
    pub stack: Option<String>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub common: Common,
    pub stack: String,
}

fn cfn(client: &Client, action: &str, params: &[(String, String)]) -> Result<Value, Error> {
    query::call(client, CLOUDFORMATION, action, params)
}

fn param(key: &str, value: impl Into<String>) -> (String, String) {
    (key.to_owned(), value.into())
}

/// The stack's description, or None when CloudFormation says it does not exist.
pub fn describe_stack(client: &Client, stack: &str) -> Result<Option<Value>, Error> {
    match cfn(client, "DescribeStacks", &[param("StackName", stack)]) {
        Ok(answer) => Ok(list(&answer["Stacks"]).into_iter().next()),
        Err(Error::Aws { message, .. }) if message.contains("does not exist") => Ok(None),
        Err(error) => Err(error),
    }
}

pub fn default_stack_name(template: &Path) -> String {
    let directory = std::fs::canonicalize(template)
        .ok()
        .and_then(|path| path.parent().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "nimbus-app".into());
    let name: String = directory.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    let name = name.trim_matches('-');
    match name.chars().next() {
        Some(c) if c.is_ascii_alphabetic() => name.to_owned(),
        _ => format!("app-{name}"),
    }
}

/// `Key=Value` or `ParameterKey=K,ParameterValue=V`.
fn parse_overrides(overrides: &[String]) -> Result<Vec<(String, String)>, Error> {
    let mut out = Vec::new();
    for item in overrides.iter().flat_map(|item| split_overrides(item)) {
        if let Some(rest) = item.strip_prefix("ParameterKey=") {
            let (key, value) = rest
                .split_once(",ParameterValue=")
                .ok_or_else(|| Error::Usage(format!("bad parameter override {item}")))?;
            out.push((key.to_owned(), value.to_owned()));
        } else {
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| Error::Usage(format!("a parameter override is Key=Value, not {item}")))?;
            out.push((key.to_owned(), value.to_owned()));
        }
    }
    Ok(out)
}

/// `"A=1 B=2"` given as one argument (as samconfig writes it) is two overrides; a word without
/// `=` continues the value before it.
fn split_overrides(item: &str) -> Vec<String> {
    let long_form = item.starts_with("ParameterKey=");
    let mut parts: Vec<String> = Vec::new();
    for word in item.split(' ') {
        let starts_item = if long_form { word.starts_with("ParameterKey=") } else { word.contains('=') };
        match parts.last_mut() {
            Some(last) if !starts_item => {
                last.push(' ');
                last.push_str(word);
            }
            _ => parts.push(word.to_owned()),
        }
    }
    parts.into_iter().filter(|s| !s.is_empty()).collect()
}

/// What a deploy ended in.
pub struct Deployed {
    pub stack: String,
    pub status: String,
    pub changes: Vec<Value>,
    pub sources: Vec<crate::package::CodeSource>,
}

pub fn run(args: &DeployArgs, client: &Client, console: &Console) -> Result<std::process::ExitCode, Error> {
    let stack = args.stack_name.clone().unwrap_or_else(|| default_stack_name(&args.template));
    let deployed = deploy(
        client,
        console,
        &args.template,
        &stack,
        &args.parameter_overrides,
        args.yes,
        args.common.json,
    )?;
    let described = describe_stack(client, &stack)?.unwrap_or(Value::Null);
    if args.common.json {
        crate::write_stdout(&crate::pretty(&json!({
            "stack": stack, "status": deployed.status, "changes": deployed.changes,
            "outputs": list(&described["Outputs"]),
        })))?;
    } else {
        crate::write_stdout(&render_outputs(&described, &console.stdout))?;
    }
    Ok(if deployed.status.ends_with("_COMPLETE") && !deployed.status.contains("ROLLBACK") {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}

/// Packages, makes the change set, confirms (unless `yes`), executes and waits.
pub fn deploy(
    client: &Client,
    console: &Console,
    template_path: &Path,
    stack: &str,
    overrides: &[String],
    yes: bool,
    quiet: bool,
) -> Result<Deployed, Error> {
    let text = std::fs::read_to_string(template_path)
        .map_err(|error| Error::Usage(format!("{}: {error}", template_path.display())))?;
    let mut template = nimbus_template::parse(&text)
        .map_err(|error| Error::Usage(format!("{}: {error}", template_path.display())))?;
    let mut packager = Packager::new(client);
    packager.package(&mut template, template_path.parent().unwrap_or(Path::new(".")))?;
    let sources = packager.sources;

    let existing = describe_stack(client, stack)?;
    let status = existing.as_ref().and_then(|s| s["StackStatus"].as_str()).unwrap_or("").to_owned();
    if status == "ROLLBACK_COMPLETE" {
        // A stack whose creation failed can only be deleted; deploying again starts it anew.
        cfn(client, "DeleteStack", &[param("StackName", stack)])?;
        wait_for_stack(client, console, stack, quiet)?;
    }
    let creating = existing.is_none() || status == "ROLLBACK_COMPLETE" || status == "REVIEW_IN_PROGRESS";
    let change_set = format!(
        "nimbus-deploy-{}",
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis())
    );
    let mut params = vec![
        param("StackName", stack),
        param("ChangeSetName", &change_set),
        param("ChangeSetType", if creating { "CREATE" } else { "UPDATE" }),
        param("TemplateBody", template.to_string()),
        param("Capabilities.member.1", "CAPABILITY_IAM"),
        param("Capabilities.member.2", "CAPABILITY_NAMED_IAM"),
        param("Capabilities.member.3", "CAPABILITY_AUTO_EXPAND"),
    ];
    for (index, (key, value)) in parse_overrides(overrides)?.into_iter().enumerate() {
        params.push(param(&format!("Parameters.member.{}.ParameterKey", index + 1), key));
        params.push(param(&format!("Parameters.member.{}.ParameterValue", index + 1), value));
    }
    cfn(client, "CreateChangeSet", &params)?;
    let described = wait_for_change_set(client, stack, &change_set)?;
    let changes = list(&described["Changes"]);
    if described["Status"] == "FAILED" {
        let reason = described["StatusReason"].as_str().unwrap_or_default();
        let _ =
            cfn(client, "DeleteChangeSet", &[param("StackName", stack), param("ChangeSetName", &change_set)]);
        if reason.contains("didn't contain changes") || reason.contains("No updates are to be performed") {
            if !quiet {
                crate::write_stderr(&format!("No changes to deploy: stack {stack} is up to date.\n"))?;
            }
            return Ok(Deployed { stack: stack.to_owned(), status, changes, sources });
        }
        return Err(Error::Aws { error_type: "ChangeSetFailed".into(), message: reason.to_owned() });
    }
    if !quiet {
        crate::write_stderr(&render_changes(stack, &changes, &console.stderr))?;
    }
    if !yes && !confirm(stack)? {
        cfn(client, "DeleteChangeSet", &[param("StackName", stack), param("ChangeSetName", &change_set)])?;
        return Err(Error::Usage("deploy cancelled: the change set was deleted".into()));
    }
    cfn(client, "ExecuteChangeSet", &[param("StackName", stack), param("ChangeSetName", &change_set)])?;
    let status = wait_for_stack(client, console, stack, quiet)?;
    Ok(Deployed { stack: stack.to_owned(), status, changes, sources })
}

fn confirm(stack: &str) -> Result<bool, Error> {
    if !std::io::stdin().is_terminal() {
        return Err(Error::Usage(format!(
            "not asking on a non-terminal whether to deploy {stack}: pass --yes to apply the change set"
        )));
    }
    crate::write_stderr("Deploy this change set? [y/N] ")?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer).map_err(Error::Output)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

/// Polls quickly at first (nimbus answers in milliseconds), then backs off.
fn pause(started: Instant) {
    let waited = started.elapsed();
    std::thread::sleep(if waited < Duration::from_secs(2) {
        Duration::from_millis(10)
    } else {
        Duration::from_millis(200)
    });
}

fn wait_for_change_set(client: &Client, stack: &str, change_set: &str) -> Result<Value, Error> {
    let started = Instant::now();
    loop {
        let described = cfn(
            client,
            "DescribeChangeSet",
            &[param("StackName", stack), param("ChangeSetName", change_set)],
        )?;
        match described["Status"].as_str() {
            Some("CREATE_COMPLETE" | "FAILED") => return Ok(described),
            _ => pause(started),
        }
    }
}

/// Prints the stack's new events (oldest first) until it settles; returns its final status.
pub fn wait_for_stack(client: &Client, console: &Console, stack: &str, quiet: bool) -> Result<String, Error> {
    let started = Instant::now();
    let mut seen = std::collections::HashSet::new();
    let baseline: Vec<Value> = events(client, stack)?;
    seen.extend(baseline.iter().filter_map(|e| e["EventId"].as_str().map(str::to_owned)));
    loop {
        let status = match describe_stack(client, stack)? {
            Some(described) => described["StackStatus"].as_str().unwrap_or_default().to_owned(),
            None => "DELETE_COMPLETE".to_owned(),
        };
        if status != "DELETE_COMPLETE" && !quiet {
            let mut fresh: Vec<Value> = events(client, stack)?
                .into_iter()
                .filter(|e| e["EventId"].as_str().is_some_and(|id| seen.insert(id.to_owned())))
                .collect();
            fresh.reverse();
            let lines: String = fresh.iter().map(|event| render_event(event, &console.stderr)).collect();
            crate::write_stderr(&lines)?;
        }
        if !status.ends_with("_IN_PROGRESS") {
            return Ok(status);
        }
        pause(started);
    }
}

fn events(client: &Client, stack: &str) -> Result<Vec<Value>, Error> {
    match cfn(client, "DescribeStackEvents", &[param("StackName", stack)]) {
        Ok(answer) => Ok(list(&answer["StackEvents"])),
        Err(Error::Aws { message, .. }) if message.contains("does not exist") => Ok(Vec::new()),
        Err(error) => Err(error),
    }
}

fn paint_for(status: &str) -> Option<Paint> {
    if status.contains("FAILED") || status.contains("ROLLBACK") {
        Some(Paint::Red)
    } else if status.ends_with("_COMPLETE") {
        Some(Paint::Green)
    } else {
        None
    }
}

pub fn render_event(event: &Value, style: &Style) -> String {
    let status = event["ResourceStatus"].as_str().unwrap_or_default();
    let painted = match paint_for(status) {
        Some(paint) => style.paint(status, paint),
        None => status.to_owned(),
    };
    let reason = event["ResourceStatusReason"]
        .as_str()
        .filter(|r| !r.is_empty())
        .map(|r| format!("  {r}"))
        .unwrap_or_default();
    format!(
        "{:<44} {:<32} {}{reason}\n",
        painted,
        event["ResourceType"].as_str().unwrap_or_default(),
        event["LogicalResourceId"].as_str().unwrap_or_default()
    )
}

pub fn render_changes(stack: &str, changes: &[Value], style: &Style) -> String {
    let mut table = Table::new(&[
        ("ACTION", Align::Left),
        ("LOGICAL ID", Align::Left),
        ("TYPE", Align::Left),
        ("REPLACEMENT", Align::Left),
    ]);
    for change in changes {
        let change = &change["ResourceChange"];
        let action = change["Action"].as_str().unwrap_or_default();
        let paint = match action {
            "Add" => Some(Paint::Green),
            "Remove" => Some(Paint::Red),
            _ => Some(Paint::Yellow),
        };
        table.push(vec![
            Cell::painted(action, paint),
            Cell::new(change["LogicalResourceId"].as_str().unwrap_or_default()),
            Cell::new(change["ResourceType"].as_str().unwrap_or_default()),
            Cell::new(change["Replacement"].as_str().filter(|r| !r.is_empty()).unwrap_or("-")),
        ]);
    }
    format!("Changes to stack {stack}:\n{}", table.render(style))
}

pub fn render_outputs(stack: &Value, style: &Style) -> String {
    let outputs = list(&stack["Outputs"]);
    let mut out = format!(
        "{} {}\n",
        stack["StackName"].as_str().unwrap_or_default(),
        style.paint(
            stack["StackStatus"].as_str().unwrap_or("-"),
            paint_for(stack["StackStatus"].as_str().unwrap_or("")).unwrap_or(Paint::Bold)
        )
    );
    if let Some(reason) = stack["StackStatusReason"].as_str().filter(|r| !r.is_empty()) {
        out.push_str(&format!("  {reason}\n"));
    }
    if !outputs.is_empty() {
        let mut table = Table::new(&[("OUTPUT", Align::Left), ("VALUE", Align::Left)]);
        for output in outputs {
            table.push(vec![
                Cell::painted(output["OutputKey"].as_str().unwrap_or_default(), Some(Paint::Bold)),
                Cell::new(output["OutputValue"].as_str().unwrap_or_default()),
            ]);
        }
        out.push_str(&table.render(style));
    }
    out
}

pub fn run_stacks(args: &StacksArgs, client: &Client, console: &Console) -> Result<(), Error> {
    if let Some(stack) = &args.stack {
        let described = describe_stack(client, stack)?.ok_or_else(|| Error::Aws {
            error_type: "ValidationError".into(),
            message: format!("Stack with id {stack} does not exist"),
        })?;
        let resources =
            list(&cfn(client, "DescribeStackResources", &[param("StackName", stack)])?["StackResources"]);
        if args.common.json {
            return crate::write_stdout(&crate::pretty(&json!({"stack": described, "resources": resources})));
        }
        let mut table = Table::new(&[
            ("LOGICAL ID", Align::Left),
            ("TYPE", Align::Left),
            ("STATUS", Align::Left),
            ("PHYSICAL ID", Align::Left),
        ]);
        for resource in &resources {
            let status = resource["ResourceStatus"].as_str().unwrap_or_default();
            table.push(vec![
                Cell::painted(resource["LogicalResourceId"].as_str().unwrap_or_default(), Some(Paint::Bold)),
                Cell::new(resource["ResourceType"].as_str().unwrap_or_default()),
                Cell::painted(status, paint_for(status)),
                Cell::new(resource["PhysicalResourceId"].as_str().unwrap_or("-")),
            ]);
        }
        let out = format!("{}{}", render_outputs(&described, &console.stdout), table.render(&console.stdout));
        return crate::write_stdout(&out);
    }
    let listed = list(&cfn(client, "ListStacks", &[])?["StackSummaries"]);
    let live: Vec<&Value> = listed.iter().filter(|s| s["StackStatus"] != "DELETE_COMPLETE").collect();
    if args.common.json {
        return crate::write_stdout(&crate::pretty(&json!({"stacks": live})));
    }
    if live.is_empty() {
        return crate::write_stdout("no stacks (deploy one with `nimbus deploy`)\n");
    }
    let mut table = Table::new(&[("STACK", Align::Left), ("STATUS", Align::Left), ("UPDATED", Align::Left)]);
    for stack in live {
        let status = stack["StackStatus"].as_str().unwrap_or_default();
        let updated = stack["LastUpdatedTime"].as_str().or(stack["CreationTime"].as_str()).unwrap_or("-");
        table.push(vec![
            Cell::painted(stack["StackName"].as_str().unwrap_or_default(), Some(Paint::Bold)),
            Cell::painted(status, paint_for(status)),
            Cell::new(updated),
        ]);
    }
    crate::write_stdout(&table.render(&console.stdout))
}

pub fn run_delete(
    args: &DeleteArgs,
    client: &Client,
    console: &Console,
) -> Result<std::process::ExitCode, Error> {
    if describe_stack(client, &args.stack)?.is_none() {
        return Err(Error::Aws {
            error_type: "ValidationError".into(),
            message: format!("Stack with id {} does not exist", args.stack),
        });
    }
    cfn(client, "DeleteStack", &[param("StackName", &args.stack)])?;
    let status = wait_for_stack(client, console, &args.stack, args.common.json)?;
    if args.common.json {
        crate::write_stdout(&crate::pretty(&json!({"stack": args.stack, "status": status})))?;
    } else {
        crate::write_stdout(&format!("{} {status}\n", args.stack))?;
    }
    Ok(if status == "DELETE_COMPLETE" {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_read_both_forms() {
        let parsed =
            parse_overrides(&["Env=prod Size=3".into(), "ParameterKey=Name,ParameterValue=a b".into()])
                .unwrap();
        assert_eq!(
            parsed,
            vec![("Env".into(), "prod".into()), ("Size".into(), "3".into()), ("Name".into(), "a b".into())]
        );
        assert!(parse_overrides(&["novalue".into()]).is_err());
    }
}
