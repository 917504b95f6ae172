//! Change sets: what an update would add, modify (in place or by replacement) and remove,
//! computed when the change set is created, then executed as a create or an update.

use std::sync::Arc;

use nimbus_api::AwsError;
use serde_json::{json, Map, Value};

use crate::api::{self, string, validation, Result};
use crate::engine::Engine;
use crate::model::{iso, now_ms, ChangeSet, Stack, Version};
use crate::resolve::{self, PLACEHOLDER};

pub const EMPTY_REASON: &str =
    "The submitted information didn't contain changes. Submit different information to create a change set.";

use crate::api::internal;

fn not_found(name: &str) -> AwsError {
    AwsError::new(404, "ChangeSetNotFound", format!("ChangeSet [{name}] does not exist"))
}

/// The change set a request names (its ARN, or its name with the stack's).
pub fn find(engine: &Engine, name: &str, stack: Option<&str>) -> Result<ChangeSet> {
    if name.starts_with("arn:") {
        return engine.store.change_set(name).map_err(internal)?.ok_or_else(|| not_found(name));
    }
    let stack_name = stack.ok_or_else(|| {
        validation("StackName must be specified if ChangeSetName is not specified as an ARN.")
    })?;
    let stack = api::stack_named(engine, stack_name).map_err(|_| not_found(name))?;
    let sets = engine.store.change_sets(&stack.id).map_err(internal)?;
    sets.into_iter().rev().find(|c| c.name == name).ok_or_else(|| not_found(name))
}

pub fn create(engine: &Arc<Engine>, input: &Value) -> Result<Value> {
    let stack_name = string(input, "StackName").ok_or_else(|| validation("StackName is required"))?;
    let name = string(input, "ChangeSetName").ok_or_else(|| validation("ChangeSetName is required"))?;
    if !name.starts_with(|c: char| c.is_ascii_alphabetic())
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        || name.len() > 128
    {
        return Err(validation(format!(
            "1 validation error detected: Value '{name}' at 'changeSetName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z][-a-zA-Z0-9]*"
        )));
    }
    let kind = string(input, "ChangeSetType").unwrap_or("UPDATE");
    let existing = engine.store.find(stack_name).map_err(internal)?;
    let (mut stack, version) = match (kind, existing) {
        ("IMPORT", _) => {
            return Err(validation("nimbus does not support resource import (ChangeSetType IMPORT); create the resources with the stack instead"))
        }
        ("CREATE", Some(stack)) if stack.status != "REVIEW_IN_PROGRESS" => {
            return Err(AwsError::new(
                400,
                "AlreadyExistsException",
                format!("Stack [{stack_name}] already exists and cannot be created again with the changeSet [{name}]."),
            ))
        }
        ("CREATE", existing) => {
            let text = api::template_text(engine, input)?
                .ok_or_else(|| validation("Either Template URL or Template Body must be specified."))?;
            let template =
                api::prepare_with(engine, &text, stack_name, &api::given(input), None).map_err(validation)?;
            let parameters = crate::params::resolve(&template, &api::given(input), None).map_err(validation)?;
            let template = api::expand(engine, template, &parameters).map_err(validation)?;
            api::check_capabilities(&template, &api::strings(input, "Capabilities"))?;
            let version = Version { original: text, template, parameters };
            let stack = match existing {
                Some(stack) => stack,
                None => {
                    if stack_name.starts_with("arn:") {
                        return Err(validation(format!("Stack with id {stack_name} does not exist")));
                    }
                    let mut stack = api::new_stack(engine, stack_name, version.clone());
                    stack.tags = api::tags(input).unwrap_or_default();
                    let event = engine.set_status(&mut stack, "REVIEW_IN_PROGRESS", Some("User Initiated".into()));
                    engine.store.save(&stack, &[event]).map_err(internal)?;
                    stack
                }
            };
            (stack, version)
        }
        ("UPDATE", Some(stack)) if stack.status != "REVIEW_IN_PROGRESS" => {
            let version = api::requested_version(engine, &stack, input)?;
            (stack, version)
        }
        ("UPDATE", _) => return Err(validation(format!("Stack [{stack_name}] does not exist"))),
        (other, _) => {
            return Err(validation(format!(
                "1 validation error detected: Value '{other}' at 'changeSetType' failed to satisfy constraint: Member must satisfy enum value set: [IMPORT, UPDATE, CREATE]"
            )))
        }
    };
    let sets = engine.store.change_sets(&stack.id).map_err(internal)?;
    if sets.iter().any(|c| c.name == name && c.execution_status != "EXECUTE_COMPLETE") {
        return Err(AwsError::new(400, "AlreadyExistsException", format!("ChangeSet {name} already exists")));
    }
    let changes =
        if kind == "CREATE" { additions(engine, &stack, &version) } else { diff(engine, &stack, &version) };
    let tags = api::tags(input).filter(|t| !t.is_empty()).unwrap_or_else(|| stack.tags.clone());
    let unchanged = kind == "UPDATE"
        && changes.is_empty()
        && version.template == stack.current.template
        && version.parameters == stack.current.parameters
        && tags == stack.tags;
    let id = format!(
        "arn:aws:cloudformation:{}:{}:changeSet/{name}/{}",
        engine.region,
        engine.account,
        uuid::Uuid::new_v4()
    );
    let change_set = ChangeSet {
        id: id.clone(),
        name: name.to_owned(),
        stack_id: stack.id.clone(),
        stack_name: stack.name.clone(),
        change_set_type: kind.to_owned(),
        status: if unchanged { "FAILED" } else { "CREATE_COMPLETE" }.into(),
        status_reason: unchanged.then(|| EMPTY_REASON.to_owned()),
        execution_status: if unchanged { "UNAVAILABLE" } else { "AVAILABLE" }.into(),
        description: string(input, "Description").map(str::to_owned),
        created_ms: now_ms(),
        version,
        tags,
        capabilities: api::strings(input, "Capabilities"),
        notification_arns: api::strings(input, "NotificationARNs"),
        role_arn: string(input, "RoleARN").map(str::to_owned),
        changes,
    };
    engine.store.put_change_set(&change_set).map_err(internal)?;
    stack.change_set_id = Some(id.clone());
    Ok(json!({"Id": id, "StackId": stack.id}))
}

fn change(
    action: &str,
    id: &str,
    kind: &str,
    physical: Option<&str>,
    replacement: Option<&str>,
    details: Vec<Value>,
) -> Value {
    let scope: Vec<&str> = if details.is_empty() { vec![] } else { vec!["Properties"] };
    let mut resource = json!({
        "Action": action,
        "LogicalResourceId": id,
        "ResourceType": kind,
        "Scope": scope,
        "Details": details,
    });
    if let Some(physical) = physical {
        resource["PhysicalResourceId"] = physical.into();
    }
    if let Some(replacement) = replacement {
        resource["Replacement"] = replacement.into();
    }
    json!({"Type": "Resource", "ResourceChange": resource})
}

fn additions(engine: &Engine, stack: &Stack, version: &Version) -> Vec<Value> {
    let mut preview = stack.clone();
    preview.current = version.clone();
    preview.resources.clear();
    let exports = engine.exports();
    let resources = version.template.get("Resources").and_then(Value::as_object).cloned().unwrap_or_default();
    resources
        .iter()
        .filter(|(_, declared)| {
            resolve::with_scope(&preview, &engine.region, &engine.account, &exports, true, |s| {
                resolve::holds(s, declared)
            })
            .unwrap_or(true)
        })
        .map(|(id, declared)| {
            change("Add", id, declared["Type"].as_str().unwrap_or_default(), None, None, vec![])
        })
        .collect()
}

/// What executing `version` would do to the stack's resources.
pub fn diff(engine: &Engine, stack: &Stack, version: &Version) -> Vec<Value> {
    let mut preview = stack.clone();
    preview.current = version.clone();
    let exports = engine.exports();
    let resources = version.template.get("Resources").and_then(Value::as_object).cloned().unwrap_or_default();
    let mut out = Vec::new();
    let mut kept = Vec::new();
    for (id, declared) in &resources {
        let kind = declared["Type"].as_str().unwrap_or_default();
        let resolved =
            resolve::with_scope(&preview, &engine.region, &engine.account, &exports, true, |scope| {
                if !resolve::holds(scope, declared)? {
                    return Ok(None);
                }
                resolve::properties(scope, declared).map(Some)
            });
        let properties = match resolved {
            Ok(None) => continue,
            Ok(Some(properties)) => properties,
            Err(_) => Map::new(),
        };
        kept.push(id.clone());
        let Some(old) = stack.resources.get(id).filter(|r| r.physical_id.is_some()) else {
            out.push(change("Add", id, kind, None, None, vec![]));
            continue;
        };
        let physical = old.physical_id.as_deref();
        if old.resource_type != kind {
            out.push(change("Modify", id, kind, physical, Some("True"), vec![]));
            continue;
        }
        let keys: Vec<&String> = old
            .properties
            .keys()
            .chain(properties.keys())
            .filter(|k| old.properties.get(*k) != properties.get(*k))
            .collect();
        if keys.is_empty() {
            continue;
        }
        let mut replacement = "False";
        let mut details = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for key in keys {
            if !seen.insert(key.clone()) {
                continue;
            }
            let dynamic = properties.get(key).is_some_and(|v| v.to_string().contains(PLACEHOLDER));
            let recreate = replaces(engine, kind, key);
            if recreate {
                replacement = if dynamic && replacement != "True" { "Conditional" } else { "True" };
            }
            details.push(json!({
                "Target": {"Attribute": "Properties", "Name": key, "RequiresRecreation": if recreate { "Always" } else { "Never" }},
                "Evaluation": if dynamic { "Dynamic" } else { "Static" },
                "ChangeSource": if dynamic { "ResourceAttribute" } else { "DirectModification" },
            }));
        }
        out.push(change("Modify", id, kind, physical, Some(replacement), details));
    }
    for (id, old) in &stack.resources {
        if !kept.contains(id) && old.physical_id.is_some() && old.status != "DELETE_COMPLETE" {
            out.push(change("Remove", id, &old.resource_type, old.physical_id.as_deref(), None, vec![]));
        }
    }
    out
}

fn replaces(engine: &Engine, kind: &str, key: &str) -> bool {
    match engine.providers.get(kind) {
        Some(provider) => provider.replaces(kind, key),
        None => crate::builtin::replaces(kind)(key),
    }
}

pub fn describe(engine: &Arc<Engine>, input: &Value) -> Result<Value> {
    let name = string(input, "ChangeSetName").ok_or_else(|| validation("ChangeSetName is required"))?;
    let set = find(engine, name, string(input, "StackName"))?;
    let mut doc = json!({
        "ChangeSetName": set.name,
        "ChangeSetId": set.id,
        "StackId": set.stack_id,
        "StackName": set.stack_name,
        "Description": set.description,
        "Parameters": crate::render::parameter_list(&set.version.template, &set.version.parameters),
        "CreationTime": iso(set.created_ms),
        "ExecutionStatus": set.execution_status,
        "Status": set.status,
        "StatusReason": set.status_reason,
        "NotificationARNs": set.notification_arns,
        "RollbackConfiguration": {},
        "Capabilities": set.capabilities,
        "Tags": set.tags.iter().map(|(k, v)| json!({"Key": k, "Value": v})).collect::<Vec<_>>(),
        "Changes": set.changes,
        "IncludeNestedStacks": false,
    });
    if let Value::Object(map) = &mut doc {
        map.retain(|_, v| !v.is_null());
    }
    Ok(doc)
}

pub fn execute(engine: &Arc<Engine>, input: &Value) -> Result<Value> {
    let name = string(input, "ChangeSetName").ok_or_else(|| validation("ChangeSetName is required"))?;
    let mut set = find(engine, name, string(input, "StackName"))?;
    if set.status != "CREATE_COMPLETE" || set.execution_status != "AVAILABLE" {
        return Err(AwsError::new(
            400,
            "InvalidChangeSetStatus",
            format!("ChangeSet [{}] cannot be executed in its current status of [{}]", set.id, set.status),
        ));
    }
    let mut stack = engine.store.stack(&set.stack_id).map_err(internal)?.ok_or_else(|| not_found(name))?;
    stack.tags = set.tags.clone();
    stack.capabilities = set.capabilities.clone();
    stack.notification_arns = set.notification_arns.clone();
    stack.role_arn = set.role_arn.clone();
    if let Some(disable) = api::flag(input, "DisableRollback") {
        stack.disable_rollback = disable;
    }
    stack.change_set_id = Some(set.id.clone());
    if set.change_set_type == "CREATE" {
        if stack.status != "REVIEW_IN_PROGRESS" {
            return Err(validation(format!(
                "Stack:{} is in {} state and can not be updated.",
                stack.id, stack.status
            )));
        }
        stack.description =
            set.version.template.get("Description").and_then(Value::as_str).map(str::to_owned);
        stack.current = set.version.clone();
        let event = engine.set_status(&mut stack, "CREATE_IN_PROGRESS", Some("User Initiated".into()));
        engine.store.save(&stack, &[event]).map_err(internal)?;
        engine.start(stack.id.clone());
    } else {
        api::updatable(&stack)?;
        api::begin_update(engine, &mut stack, set.version.clone())?;
    }
    // The stack's other change sets are spent.
    for other in engine.store.change_sets(&set.stack_id).map_err(internal)? {
        if other.id != set.id {
            engine.store.delete_change_set(&other.id).map_err(internal)?;
        }
    }
    set.execution_status = "EXECUTE_COMPLETE".into();
    engine.store.put_change_set(&set).map_err(internal)?;
    Ok(json!({}))
}

pub fn delete(engine: &Arc<Engine>, input: &Value) -> Result<Value> {
    let name = string(input, "ChangeSetName").ok_or_else(|| validation("ChangeSetName is required"))?;
    let set = find(engine, name, string(input, "StackName"))?;
    engine.store.delete_change_set(&set.id).map_err(internal)?;
    Ok(json!({}))
}

pub fn list(engine: &Arc<Engine>, input: &Value) -> Result<Value> {
    let name = string(input, "StackName").ok_or_else(|| validation("StackName is required"))?;
    let stack = api::stack_named(engine, name)?;
    let summaries: Vec<Value> = engine
        .store
        .change_sets(&stack.id)
        .map_err(internal)?
        .into_iter()
        .filter(|c| c.execution_status != "EXECUTE_COMPLETE")
        .map(|c| {
            let mut doc = json!({
                "StackId": c.stack_id,
                "StackName": c.stack_name,
                "ChangeSetId": c.id,
                "ChangeSetName": c.name,
                "ExecutionStatus": c.execution_status,
                "Status": c.status,
                "StatusReason": c.status_reason,
                "CreationTime": iso(c.created_ms),
                "Description": c.description,
                "IncludeNestedStacks": false,
            });
            if let Value::Object(map) = &mut doc {
                map.retain(|_, v| !v.is_null());
            }
            doc
        })
        .collect();
    Ok(json!({"Summaries": summaries}))
}
