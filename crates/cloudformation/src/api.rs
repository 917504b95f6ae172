//! The stack operations: request checks with AWS's messages, then the engine runs the work in
//! the background (clients poll `DescribeStacks`/`DescribeStackEvents`, as with AWS).

use std::collections::BTreeMap;
use std::sync::Arc;

use nimbus_api::AwsError;
use serde_json::{json, Value};

use crate::engine::Engine;
use crate::model::{now_ms, Stack, Version};
use crate::params::Given;
use crate::{changes, graph, params, render, template};

pub type Result<T> = std::result::Result<T, AwsError>;

pub fn validation(message: impl Into<String>) -> AwsError {
    AwsError::new(400, "ValidationError", message)
}

/// The store's failures: text PostgreSQL cannot hold (U+0000) is the caller's error, the rest ours.
pub(crate) fn internal(error: nimbus_store::DbError) -> AwsError {
    match error {
        nimbus_store::DbError::Unstorable(why) => validation(why),
        other => AwsError::new(500, "InternalFailure", other.to_string()),
    }
}

pub fn dispatch(engine: &Arc<Engine>, action: &str, input: &Value) -> Result<Value> {
    match action {
        "CreateStack" => create_stack(engine, input),
        "UpdateStack" => update_stack(engine, input),
        "DeleteStack" => delete_stack(engine, input),
        "DescribeStacks" => render::describe_stacks(engine, input),
        "DescribeStackEvents" => render::describe_stack_events(engine, input),
        "DescribeStackResource" => render::describe_stack_resource(engine, input),
        "DescribeStackResources" => render::describe_stack_resources(engine, input),
        "ListStackResources" => render::list_stack_resources(engine, input),
        "ListStacks" => render::list_stacks(engine, input),
        "GetTemplate" => render::get_template(engine, input),
        "GetTemplateSummary" => render::get_template_summary(engine, input),
        "ValidateTemplate" => render::validate_template(engine, input),
        "ListExports" => render::list_exports(engine),
        "ListImports" => list_imports(engine, input),
        "UpdateTerminationProtection" => termination_protection(engine, input),
        "RollbackStack" | "ContinueUpdateRollback" => roll_back(engine, action, input),
        "CancelUpdateStack" => cancel_update(engine, input),
        "CreateChangeSet" => changes::create(engine, input),
        "DescribeChangeSet" => changes::describe(engine, input),
        "ExecuteChangeSet" => changes::execute(engine, input),
        "DeleteChangeSet" => changes::delete(engine, input),
        "ListChangeSets" => changes::list(engine, input),
        "" => Err(AwsError::new(400, "MissingAction", "Missing Action")),
        other => Err(AwsError::new(
            400,
            "InvalidAction",
            format!("nimbus does not implement the CloudFormation operation {other}"),
        )),
    }
}

/// The requests that start an operation on a stack.
pub const STARTS_OPERATIONS: &[&str] = &[
    "CreateStack",
    "UpdateStack",
    "DeleteStack",
    "ExecuteChangeSet",
    "RollbackStack",
    "ContinueUpdateRollback",
];

/// The stack an operation will run on, looked up before the request (a deleted stack is no
/// longer found by name).
pub fn operated_stack(engine: &Engine, action: &str, input: &Value) -> Option<String> {
    match action {
        "DeleteStack" | "RollbackStack" | "ContinueUpdateRollback" => {
            engine.store.find(string(input, "StackName")?).ok()?.map(|s| s.id)
        }
        "ExecuteChangeSet" => {
            let set =
                crate::changes::find(engine, string(input, "ChangeSetName")?, string(input, "StackName"))
                    .ok()?;
            Some(set.stack_id)
        }
        _ => None,
    }
}

pub fn string<'a>(input: &'a Value, name: &str) -> Option<&'a str> {
    input.get(name).and_then(Value::as_str).filter(|s| !s.is_empty())
}

pub fn flag(input: &Value, name: &str) -> Option<bool> {
    string(input, name).map(|s| s.eq_ignore_ascii_case("true"))
}

/// A list parameter; an empty `Tags=` is an empty list.
pub fn list<'a>(input: &'a Value, name: &str) -> Vec<&'a Value> {
    match input.get(name) {
        Some(Value::Array(items)) => items.iter().collect(),
        _ => Vec::new(),
    }
}

pub fn strings(input: &Value, name: &str) -> Vec<String> {
    list(input, name).into_iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()
}

pub fn given(input: &Value) -> Vec<Given> {
    list(input, "Parameters")
        .into_iter()
        .map(|p| Given {
            key: string(p, "ParameterKey").unwrap_or_default().to_owned(),
            value: p.get("ParameterValue").and_then(Value::as_str).map(str::to_owned),
            use_previous: flag(p, "UsePreviousValue").unwrap_or(false),
        })
        .collect()
}

pub fn tags(input: &Value) -> Option<Vec<(String, String)>> {
    input.get("Tags")?;
    Some(
        list(input, "Tags")
            .into_iter()
            .map(|t| {
                (
                    string(t, "Key").unwrap_or_default().to_owned(),
                    t["Value"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect(),
    )
}

/// The stack a request names (by name, or by ARN even when deleted), or AWS's error.
pub fn stack_named(engine: &Engine, name: &str) -> Result<Stack> {
    match engine.store.find(name).map_err(internal)? {
        Some(stack) => Ok(stack),
        None => Err(validation(format!("Stack with id {name} does not exist"))),
    }
}

/// The template text a request carries (`TemplateBody` or `TemplateURL`).
pub fn template_text(engine: &Engine, input: &Value) -> Result<Option<String>> {
    if let Some(body) = input.get("TemplateBody").and_then(Value::as_str) {
        return Ok(Some(body.to_owned()));
    }
    match string(input, "TemplateURL") {
        Some(url) => fetch_template(engine, url).map(Some).map_err(validation),
        None => Ok(None),
    }
}

/// The bucket, key and version a template URL names in nimbus's S3: path style
/// (`http://host:port/bucket/key`, `https://s3.amazonaws.com/bucket/key`) or virtual-host
/// style (`https://bucket.s3.REGION.amazonaws.com/key`, `http://bucket.s3.localhost:4566/key`).
pub fn s3_location(url: &str) -> Option<(String, String, Option<String>)> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"))?;
    let (host_port, path_query) = rest.split_once('/')?;
    let (path, query) = path_query.split_once('?').unwrap_or((path_query, ""));
    let version =
        query.split('&').find_map(|pair| pair.strip_prefix("versionId=")).map(nimbus_api::percent_decode);
    let host = host_port.split(':').next().unwrap_or_default();
    let virtual_bucket = [".s3.", ".s3-"]
        .iter()
        .find_map(|marker| host.find(marker).map(|at| &host[..at]))
        .filter(|bucket| !bucket.is_empty());
    let (bucket, key) = match virtual_bucket {
        Some(bucket) => (bucket.to_owned(), path.to_owned()),
        None => {
            let (bucket, key) = path.split_once('/')?;
            (bucket.to_owned(), key.to_owned())
        }
    };
    if bucket.is_empty() || key.is_empty() {
        return None;
    }
    Some((bucket, nimbus_api::percent_decode(&key), version))
}

pub fn fetch_template(engine: &Engine, url: &str) -> std::result::Result<String, String> {
    let Some((bucket, key, version)) = s3_location(url) else {
        return Err("TemplateURL must be a supported URL.".into());
    };
    let templates = engine.hooks.templates.get().ok_or("S3 is not wired to CloudFormation")?;
    let bytes = templates.read(&bucket, &key, version.as_deref()).map_err(|e| format!("S3 error: {e}"))?;
    String::from_utf8(bytes).map_err(|_| "Template format error: the template is not UTF-8 text".into())
}

/// The template to run from a submitted text: parsed, transformed, checked.
pub fn prepare(engine: &Engine, text: &str, stack_name: &str) -> std::result::Result<Value, String> {
    prepare_with(engine, text, stack_name, &[], None)
}

/// As [`prepare`], the transforms seeing the parameters' values (given, previous or default).
pub fn prepare_with(
    engine: &Engine,
    text: &str,
    stack_name: &str,
    given: &[crate::params::Given],
    previous: Option<&std::collections::BTreeMap<String, String>>,
) -> std::result::Result<Value, String> {
    if text.len() > 1_048_576 {
        return Err("Template may not exceed 1048576 bytes in size.".into());
    }
    let mut template = template::parse(text)?;
    for name in template::transforms(&template) {
        if name == "AWS::LanguageExtensions" {
            continue;
        }
        let parameters = crate::params::for_transform(&template, given, previous);
        let input = crate::TransformInput {
            template: &template,
            text,
            region: &engine.region,
            account: &engine.account,
            stack: stack_name,
            parameters: &parameters,
        };
        let applied = engine.hooks.transforms.get().and_then(|t| t.apply(&name, &input));
        match applied {
            Some(Ok(transformed)) => template = transformed,
            Some(Err(why)) => return Err(format!("Transform {name} failed with: {why}")),
            // A template naming the SAM transform without any SAM resource (SAM CLI's own
            // `aws-sam-cli-managed-default` stack) is what the transform gives back.
            None if name == "AWS::Serverless-2016-10-31" && !uses_sam(&template) => {}
            None if name == "AWS::Serverless-2016-10-31" => {
                return Err(format!(
                    "Transform {name} failed with: the SAM transform is not available in this nimbus build"
                ))
            }
            None => return Err(format!("The transform {name} is not supported by nimbus")),
        }
    }
    // A transform that left its name in place has been applied.
    if let Some(map) = template.as_object_mut() {
        let kept: Vec<String> = template::transforms(&Value::Object(map.clone()))
            .into_iter()
            .filter(|t| t == "AWS::LanguageExtensions")
            .collect();
        if kept.is_empty() {
            map.remove("Transform");
        } else {
            map.insert("Transform".into(), json!(kept));
        }
    }
    // A template that loops is checked once its loops are expanded (`expand`).
    if !crate::foreach::loops(&template) {
        template::check(&template)?;
        graph::dependencies(&template)?;
    }
    Ok(template)
}

/// The template with its `Fn::ForEach` loops expanded for these parameters, then checked.
pub fn expand(
    engine: &Engine,
    template: Value,
    parameters: &BTreeMap<String, String>,
) -> std::result::Result<Value, String> {
    crate::rules::check(&template, parameters, &engine.region, &engine.account)?;
    if !crate::foreach::loops(&template) {
        return Ok(template);
    }
    let expanded = crate::foreach::expand(&template, parameters)?;
    template::check(&expanded)?;
    graph::dependencies(&expanded)?;
    Ok(expanded)
}

/// Whether a template has anything for the SAM transform to do.
fn uses_sam(template: &Value) -> bool {
    let resources = template.get("Resources").and_then(Value::as_object);
    template.get("Globals").is_some()
        || resources.is_some_and(|r| {
            r.values().any(|r| r["Type"].as_str().is_some_and(|t| t.starts_with("AWS::Serverless::")))
        })
}

/// The capabilities a template needs that a request did not acknowledge.
pub fn check_capabilities(template: &Value, capabilities: &[String]) -> Result<()> {
    let resources = template.get("Resources").and_then(Value::as_object).cloned().unwrap_or_default();
    let iam: Vec<&Value> = resources
        .values()
        .filter(|r| r["Type"].as_str().is_some_and(|t| t.starts_with("AWS::IAM::")))
        .collect();
    if iam.is_empty() {
        return Ok(());
    }
    // Resources given a custom name need CAPABILITY_NAMED_IAM.
    let named = iam.iter().any(|r| {
        let name_property = match r["Type"].as_str().unwrap_or_default() {
            "AWS::IAM::Role" => "RoleName",
            "AWS::IAM::User" => "UserName",
            "AWS::IAM::Group" => "GroupName",
            "AWS::IAM::ManagedPolicy" => "ManagedPolicyName",
            "AWS::IAM::InstanceProfile" => "InstanceProfileName",
            _ => return false,
        };
        r["Properties"].get(name_property).is_some()
    });
    let has = |c: &str| capabilities.iter().any(|x| x == c);
    if named && !has("CAPABILITY_NAMED_IAM") {
        return Err(AwsError::new(
            400,
            "InsufficientCapabilitiesException",
            "Requires capabilities : [CAPABILITY_NAMED_IAM]",
        ));
    }
    if !has("CAPABILITY_IAM") && !has("CAPABILITY_NAMED_IAM") {
        return Err(AwsError::new(
            400,
            "InsufficientCapabilitiesException",
            "Requires capabilities : [CAPABILITY_IAM]",
        ));
    }
    Ok(())
}

/// A stack record not yet saved.
pub fn new_stack(engine: &Engine, name: &str, version: Version) -> Stack {
    let id = format!(
        "arn:aws:cloudformation:{}:{}:stack/{name}/{}",
        engine.region,
        engine.account,
        uuid::Uuid::new_v4()
    );
    Stack {
        id,
        name: name.to_owned(),
        created_ms: now_ms(),
        description: version.template.get("Description").and_then(Value::as_str).map(str::to_owned),
        current: version,
        ..Default::default()
    }
}

fn check_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 128
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if valid {
        Ok(())
    } else {
        Err(validation(format!(
            "1 validation error detected: Value '{name}' at 'stackName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z][-a-zA-Z0-9]*"
        )))
    }
}

fn create_stack(engine: &Arc<Engine>, input: &Value) -> Result<Value> {
    let name = string(input, "StackName").ok_or_else(|| validation("StackName is required"))?;
    check_name(name)?;
    if engine.store.find(name).map_err(internal)?.is_some() {
        return Err(AwsError::new(400, "AlreadyExistsException", format!("Stack [{name}] already exists")));
    }
    let text = template_text(engine, input)?
        .ok_or_else(|| validation("Either Template URL or Template Body must be specified."))?;
    let template = prepare_with(engine, &text, name, &given(input), None).map_err(validation)?;
    let parameters = params::resolve(&template, &given(input), None).map_err(validation)?;
    let template = expand(engine, template, &parameters).map_err(validation)?;
    let capabilities = strings(input, "Capabilities");
    check_capabilities(&template, &capabilities)?;
    let mut stack = new_stack(engine, name, Version { original: text, template, parameters });
    stack.tags = tags(input).unwrap_or_default();
    stack.capabilities = capabilities;
    stack.notification_arns = strings(input, "NotificationARNs");
    stack.role_arn = string(input, "RoleARN").map(str::to_owned);
    let on_failure = string(input, "OnFailure").unwrap_or("ROLLBACK");
    stack.disable_rollback = flag(input, "DisableRollback").unwrap_or(false) || on_failure == "DO_NOTHING";
    stack.delete_on_failure = on_failure == "DELETE";
    stack.termination_protection = flag(input, "EnableTerminationProtection").unwrap_or(false);
    stack.timeout_minutes = string(input, "TimeoutInMinutes").and_then(|m| m.parse().ok()).filter(|m| *m > 0);
    let event = engine.set_status(&mut stack, "CREATE_IN_PROGRESS", Some("User Initiated".into()));
    engine.store.save(&stack, &[event]).map_err(internal)?;
    engine.start(stack.id.clone());
    Ok(json!({ "StackId": stack.id }))
}

pub fn updatable(stack: &Stack) -> Result<()> {
    match stack.status.as_str() {
        "CREATE_COMPLETE"
        | "UPDATE_COMPLETE"
        | "UPDATE_ROLLBACK_COMPLETE"
        | "IMPORT_COMPLETE"
        | "UPDATE_FAILED" => Ok(()),
        status => Err(validation(format!("Stack:{} is in {status} state and can not be updated.", stack.id))),
    }
}

/// The version an update (or update change set) asks for.
pub fn requested_version(engine: &Engine, stack: &Stack, input: &Value) -> Result<Version> {
    let text = if flag(input, "UsePreviousTemplate") == Some(true) {
        stack.current.original.clone()
    } else {
        template_text(engine, input)?
            .ok_or_else(|| validation("Either Template URL or Template Body must be specified."))?
    };
    let previous = Some(&stack.current.parameters);
    let template = prepare_with(engine, &text, &stack.name, &given(input), previous).map_err(validation)?;
    let parameters = params::resolve(&template, &given(input), previous).map_err(validation)?;
    let template = expand(engine, template, &parameters).map_err(validation)?;
    check_capabilities(&template, &strings(input, "Capabilities"))?;
    Ok(Version { original: text, template, parameters })
}

fn update_stack(engine: &Arc<Engine>, input: &Value) -> Result<Value> {
    let name = string(input, "StackName").ok_or_else(|| validation("StackName is required"))?;
    let mut stack = stack_named(engine, name)?;
    updatable(&stack)?;
    let version = requested_version(engine, &stack, input)?;
    let new_tags = tags(input).filter(|t| !t.is_empty());
    let unchanged = version.template == stack.current.template
        && version.parameters == stack.current.parameters
        && new_tags.as_ref().is_none_or(|t| t == &stack.tags);
    if unchanged {
        return Err(validation("No updates are to be performed."));
    }
    if let Some(tags) = new_tags {
        stack.tags = tags;
    }
    stack.capabilities = strings(input, "Capabilities");
    if let Some(disable) = flag(input, "DisableRollback") {
        stack.disable_rollback = disable;
    }
    begin_update(engine, &mut stack, version)?;
    Ok(json!({ "StackId": stack.id }))
}

/// Saves the stack as `UPDATE_IN_PROGRESS` with its new version and starts the engine.
pub fn begin_update(engine: &Arc<Engine>, stack: &mut Stack, version: Version) -> Result<()> {
    stack.description = version.template.get("Description").and_then(Value::as_str).map(str::to_owned);
    stack.previous = Some(std::mem::replace(&mut stack.current, version));
    stack.updated_ms = Some(now_ms());
    let event = engine.set_status(stack, "UPDATE_IN_PROGRESS", Some("User Initiated".into()));
    engine.store.save(stack, &[event]).map_err(internal)?;
    engine.start(stack.id.clone());
    Ok(())
}

fn delete_stack(engine: &Arc<Engine>, input: &Value) -> Result<Value> {
    let name = string(input, "StackName").ok_or_else(|| validation("StackName is required"))?;
    let Some(mut stack) = engine.store.find(name).map_err(internal)? else {
        return Ok(json!({}));
    };
    if stack.is_deleted() || stack.status == "DELETE_IN_PROGRESS" {
        return Ok(json!({}));
    }
    if stack.termination_protection {
        return Err(validation(format!(
            "Stack [{}] cannot be deleted while TerminationProtection is enabled",
            stack.name
        )));
    }
    if stack.status == "CREATE_IN_PROGRESS" && engine.is_running(&stack.id) {
        // Deleting a stack being created stops the creation; its rollback then deletes it.
        engine.cancel(&stack.id, true);
        return Ok(json!({}));
    }
    if stack.in_progress() {
        return Err(validation(format!(
            "Stack [{}] is in {} state and can not be deleted",
            stack.name, stack.status
        )));
    }
    let retain = strings(input, "RetainResources");
    if !retain.is_empty() && stack.status != "DELETE_FAILED" {
        return Err(validation(format!(
            "Invalid operation on stack [{}]: resources can only be retained when the stack is in DELETE_FAILED state",
            stack.id
        )));
    }
    stack.retain = retain;
    let event = engine.set_status(&mut stack, "DELETE_IN_PROGRESS", Some("User Initiated".into()));
    engine.store.save(&stack, &[event]).map_err(internal)?;
    engine.start(stack.id.clone());
    Ok(json!({}))
}

fn cancel_update(engine: &Arc<Engine>, input: &Value) -> Result<Value> {
    let name = string(input, "StackName").ok_or_else(|| validation("StackName is required"))?;
    let stack = stack_named(engine, name)?;
    if stack.status != "UPDATE_IN_PROGRESS" || !engine.is_running(&stack.id) {
        return Err(validation(format!(
            "CancelUpdateStack cannot be called from current stack status {}",
            stack.status
        )));
    }
    engine.cancel(&stack.id, false);
    Ok(json!({}))
}

/// `RollbackStack` (a stack left `UPDATE_FAILED` or `CREATE_FAILED` by `DisableRollback`) and
/// `ContinueUpdateRollback` (a rollback that failed): the rollback runs (again).
fn roll_back(engine: &Arc<Engine>, action: &str, input: &Value) -> Result<Value> {
    let name = string(input, "StackName").ok_or_else(|| validation("StackName is required"))?;
    let mut stack = stack_named(engine, name)?;
    let next = match (action, stack.status.as_str()) {
        ("RollbackStack", "UPDATE_FAILED") => "UPDATE_ROLLBACK_IN_PROGRESS",
        ("RollbackStack", "CREATE_FAILED") => "ROLLBACK_IN_PROGRESS",
        ("ContinueUpdateRollback", "UPDATE_ROLLBACK_FAILED") => "UPDATE_ROLLBACK_IN_PROGRESS",
        (_, status) => {
            return Err(validation(format!(
                "Stack {} is in {status} state and can not be rolled back",
                stack.id
            )))
        }
    };
    let event = engine.set_status(&mut stack, next, Some("User Initiated".into()));
    engine.store.save(&stack, &[event]).map_err(internal)?;
    engine.start(stack.id.clone());
    Ok(json!({ "StackId": stack.id }))
}

fn termination_protection(engine: &Arc<Engine>, input: &Value) -> Result<Value> {
    let name = string(input, "StackName").ok_or_else(|| validation("StackName is required"))?;
    let mut stack = stack_named(engine, name)?;
    if stack.is_deleted() {
        return Err(validation(format!("Stack with id {name} does not exist")));
    }
    stack.termination_protection = flag(input, "EnableTerminationProtection").unwrap_or(false);
    stack.timeout_minutes = string(input, "TimeoutInMinutes").and_then(|m| m.parse().ok()).filter(|m| *m > 0);
    engine.store.save(&stack, &[]).map_err(internal)?;
    Ok(json!({ "StackId": stack.id }))
}

/// The names of live stacks importing `export`.
pub fn importers(engine: &Engine, export: &str) -> Vec<String> {
    let stacks = engine.store.live().unwrap_or_default();
    let exports = engine.exports();
    stacks
        .iter()
        .filter(|stack| {
            crate::resolve::with_scope(stack, &engine.region, &engine.account, &exports, true, |scope| {
                Ok(crate::resolve::imports(scope))
            })
            .unwrap_or_default()
            .iter()
            .any(|name| name == export)
        })
        .map(|stack| stack.name.clone())
        .collect()
}

fn list_imports(engine: &Arc<Engine>, input: &Value) -> Result<Value> {
    let export = string(input, "ExportName").ok_or_else(|| validation("ExportName is required"))?;
    let importers = importers(engine, export);
    if importers.is_empty() {
        return Err(validation(format!("Export '{export}' is not imported by any stack.")));
    }
    Ok(json!({ "Imports": importers }))
}

#[cfg(test)]
mod tests {
    use super::s3_location;

    #[test]
    fn template_urls_name_a_local_bucket() {
        let at = |u: &str| s3_location(u).map(|(b, k, v)| (b, k, v.unwrap_or_default()));
        let want = |b: &str, k: &str| Some((b.to_owned(), k.to_owned(), String::new()));
        assert_eq!(at("http://127.0.0.1:4566/bkt/dir/t.template"), want("bkt", "dir/t.template"));
        assert_eq!(at("https://s3.amazonaws.com/bkt/t.yaml"), want("bkt", "t.yaml"));
        assert_eq!(at("https://s3.eu-west-1.amazonaws.com/bkt/t.yaml"), want("bkt", "t.yaml"));
        assert_eq!(at("https://bkt.s3.us-east-1.amazonaws.com/a/t.yaml"), want("bkt", "a/t.yaml"));
        assert_eq!(at("http://bkt.s3.localhost.localstack.cloud:4566/t.yaml"), want("bkt", "t.yaml"));
        assert_eq!(s3_location("http://localhost:4566/b/k?versionId=v1").unwrap().2.as_deref(), Some("v1"));
        assert!(s3_location("ftp://x/y").is_none());
    }
}
