//! The read operations: stacks, events, resources, templates and exports in AWS's shapes.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::api::{self, string, validation, Result};
use crate::engine::{visible, Engine};
use crate::model::{iso, Stack};
use crate::{params, template};

const PAGE: usize = 100;

use crate::api::internal;

fn tag_list(tags: &[(String, String)]) -> Value {
    Value::Array(tags.iter().map(|(k, v)| json!({"Key": k, "Value": v})).collect())
}

pub fn parameter_list(template: &Value, parameters: &std::collections::BTreeMap<String, String>) -> Value {
    Value::Array(
        parameters
            .iter()
            .map(|(k, v)| {
                let shown = if params::no_echo(template, k) { "****" } else { v.as_str() };
                json!({"ParameterKey": k, "ParameterValue": shown})
            })
            .collect(),
    )
}

fn stack_document(stack: &Stack) -> Value {
    let outputs: Vec<Value> = stack
        .outputs
        .iter()
        .map(|o| {
            let mut out = json!({"OutputKey": o.key, "OutputValue": o.value});
            if let Some(d) = &o.description {
                out["Description"] = d.clone().into();
            }
            if let Some(e) = &o.export {
                out["ExportName"] = e.clone().into();
            }
            out
        })
        .collect();
    let mut doc = json!({
        "StackId": stack.id,
        "StackName": stack.name,
        "Description": stack.description,
        "Parameters": parameter_list(&stack.current.template, &stack.current.parameters),
        "CreationTime": iso(stack.created_ms),
        "LastUpdatedTime": stack.updated_ms.map(iso),
        "DeletionTime": stack.deleted_ms.map(iso),
        "RollbackConfiguration": {},
        "StackStatus": stack.status,
        "StackStatusReason": stack.reason,
        "DisableRollback": stack.disable_rollback,
        "NotificationARNs": stack.notification_arns,
        "Capabilities": stack.capabilities,
        "Outputs": outputs,
        "RoleARN": stack.role_arn,
        "Tags": tag_list(&stack.tags),
        "EnableTerminationProtection": stack.termination_protection,
        "ParentId": stack.parent_id,
        "RootId": stack.root_id,
        "ChangeSetId": stack.change_set_id,
        "DriftInformation": {"StackDriftStatus": "NOT_CHECKED"},
    });
    if let Value::Object(map) = &mut doc {
        map.retain(|_, v| !v.is_null());
    }
    doc
}

fn page<T: Clone>(items: &[T], input: &Value) -> (Vec<T>, Option<String>) {
    let start: usize = string(input, "NextToken").and_then(|t| t.parse().ok()).unwrap_or(0);
    let end = (start + PAGE).min(items.len());
    let next = (end < items.len()).then(|| end.to_string());
    (items.get(start.min(items.len())..end).unwrap_or_default().to_vec(), next)
}

pub fn describe_stacks(engine: &Arc<Engine>, input: &Value) -> Result<Value> {
    let stacks = match string(input, "StackName") {
        Some(name) => vec![api::stack_named(engine, name)?],
        None => {
            let mut stacks = engine.store.live().map_err(internal)?;
            stacks.sort_by_key(|s| std::cmp::Reverse(s.created_ms));
            stacks
        }
    };
    let (stacks, next) = page(&stacks, input);
    Ok(json!({"Stacks": stacks.iter().map(stack_document).collect::<Vec<_>>(), "NextToken": next}))
}

pub fn describe_stack_events(engine: &Arc<Engine>, input: &Value) -> Result<Value> {
    let name = string(input, "StackName").ok_or_else(|| validation("StackName is required"))?;
    let stack = api::stack_named(engine, name)?;
    let events = engine.store.events(&stack.id).map_err(internal)?;
    let (events, next) = page(&events, input);
    let events: Vec<Value> = events
        .iter()
        .map(|e| {
            let mut doc = json!({
                "StackId": e.stack_id,
                "EventId": e.id,
                "StackName": e.stack_name,
                "LogicalResourceId": e.logical_id,
                "PhysicalResourceId": e.physical_id,
                "ResourceType": e.resource_type,
                "Timestamp": iso(e.timestamp_ms),
                "ResourceStatus": e.status,
                "ResourceStatusReason": e.reason,
                "ResourceProperties": e.properties,
            });
            if let Value::Object(map) = &mut doc {
                map.retain(|_, v| !v.is_null());
            }
            doc
        })
        .collect();
    Ok(json!({"StackEvents": events, "NextToken": next}))
}

fn resource_document(stack: &Stack, id: &str, detail: bool) -> Value {
    let r = &stack.resources[id];
    let mut doc = json!({
        "StackName": stack.name,
        "StackId": stack.id,
        "LogicalResourceId": id,
        "PhysicalResourceId": r.physical_id,
        "ResourceType": r.resource_type,
        "ResourceStatus": r.status,
        "ResourceStatusReason": r.reason,
        "DriftInformation": {"StackResourceDriftStatus": "NOT_CHECKED"},
    });
    let time = iso(r.updated_ms);
    if detail {
        doc["LastUpdatedTimestamp"] = time.into();
        if let Some(metadata) =
            stack.current.template.get("Resources").and_then(|x| x.get(id)).and_then(|x| x.get("Metadata"))
        {
            doc["Metadata"] = metadata.to_string().into();
        }
    } else {
        doc["Timestamp"] = time.into();
    }
    if let Value::Object(map) = &mut doc {
        map.retain(|_, v| !v.is_null());
    }
    doc
}

pub fn describe_stack_resource(engine: &Arc<Engine>, input: &Value) -> Result<Value> {
    let name = string(input, "StackName").ok_or_else(|| validation("StackName is required"))?;
    let id = string(input, "LogicalResourceId").ok_or_else(|| validation("LogicalResourceId is required"))?;
    let stack = api::stack_named(engine, name)?;
    if !stack.resources.get(id).is_some_and(visible) {
        return Err(validation(format!("Resource {id} does not exist for stack {name}")));
    }
    Ok(json!({"StackResourceDetail": resource_document(&stack, id, true)}))
}

pub fn describe_stack_resources(engine: &Arc<Engine>, input: &Value) -> Result<Value> {
    let stack = match (string(input, "StackName"), string(input, "PhysicalResourceId")) {
        (Some(name), _) => api::stack_named(engine, name)?,
        (None, Some(physical)) => engine
            .store
            .live()
            .map_err(internal)?
            .into_iter()
            .find(|s| s.resources.values().any(|r| r.physical_id.as_deref() == Some(physical)))
            .ok_or_else(|| validation(format!("Stack for {physical} does not exist")))?,
        (None, None) => return Err(validation("Either StackName or PhysicalResourceId must be specified.")),
    };
    let only = string(input, "LogicalResourceId");
    let resources: Vec<Value> = stack
        .resources
        .iter()
        .filter(|(id, r)| visible(r) && only.is_none_or(|o| o == id.as_str()))
        .map(|(id, _)| resource_document(&stack, id, false))
        .collect();
    Ok(json!({"StackResources": resources}))
}

pub fn list_stack_resources(engine: &Arc<Engine>, input: &Value) -> Result<Value> {
    let name = string(input, "StackName").ok_or_else(|| validation("StackName is required"))?;
    let stack = api::stack_named(engine, name)?;
    let summaries: Vec<Value> = stack
        .resources
        .iter()
        .filter(|(_, r)| visible(r))
        .map(|(id, r)| {
            let mut doc = json!({
                "LogicalResourceId": id,
                "PhysicalResourceId": r.physical_id,
                "ResourceType": r.resource_type,
                "LastUpdatedTimestamp": iso(r.updated_ms),
                "ResourceStatus": r.status,
                "ResourceStatusReason": r.reason,
                "DriftInformation": {"StackResourceDriftStatus": "NOT_CHECKED"},
            });
            if let Value::Object(map) = &mut doc {
                map.retain(|_, v| !v.is_null());
            }
            doc
        })
        .collect();
    let (summaries, next) = page(&summaries, input);
    Ok(json!({"StackResourceSummaries": summaries, "NextToken": next}))
}

pub fn list_stacks(engine: &Arc<Engine>, input: &Value) -> Result<Value> {
    let filter = api::strings(input, "StackStatusFilter");
    let mut stacks = engine.store.all().map_err(internal)?;
    stacks.sort_by_key(|s| std::cmp::Reverse(s.created_ms));
    let summaries: Vec<Value> = stacks
        .iter()
        .filter(|s| filter.is_empty() || filter.contains(&s.status))
        .map(|s| {
            let mut doc = json!({
                "StackId": s.id,
                "StackName": s.name,
                "TemplateDescription": s.description,
                "CreationTime": iso(s.created_ms),
                "LastUpdatedTime": s.updated_ms.map(iso),
                "DeletionTime": s.deleted_ms.map(iso),
                "StackStatus": s.status,
                "StackStatusReason": s.reason,
                "ParentId": s.parent_id,
                "RootId": s.root_id,
                "DriftInformation": {"StackDriftStatus": "NOT_CHECKED"},
            });
            if let Value::Object(map) = &mut doc {
                map.retain(|_, v| !v.is_null());
            }
            doc
        })
        .collect();
    let (summaries, next) = page(&summaries, input);
    Ok(json!({"StackSummaries": summaries, "NextToken": next}))
}

pub fn get_template(engine: &Arc<Engine>, input: &Value) -> Result<Value> {
    let processed = string(input, "TemplateStage") == Some("Processed");
    let version = match string(input, "ChangeSetName") {
        Some(change_set) => crate::changes::find(engine, change_set, string(input, "StackName"))?.version,
        None => {
            let name = string(input, "StackName").ok_or_else(|| validation("StackName is required"))?;
            api::stack_named(engine, name)?.current
        }
    };
    let body = if processed { version.template.to_string() } else { version.original };
    Ok(json!({"TemplateBody": body, "StagesAvailable": ["Original", "Processed"]}))
}

/// What `GetTemplateSummary` and `ValidateTemplate` share.
fn summary(template: &Value, original: &Value) -> Value {
    let declared = template.get("Parameters").and_then(Value::as_object).cloned().unwrap_or_default();
    let parameters: Vec<Value> = declared
        .iter()
        .map(|(key, decl)| {
            let mut p = Map::new();
            p.insert("ParameterKey".into(), key.clone().into());
            if let Some(default) = decl.get("Default") {
                p.insert("DefaultValue".into(), params::text(default).into());
            }
            p.insert("ParameterType".into(), decl.get("Type").cloned().unwrap_or("String".into()));
            p.insert("NoEcho".into(), params::no_echo(template, key).into());
            if let Some(d) = decl.get("Description") {
                p.insert("Description".into(), params::text(d).into());
            }
            if let Some(Value::Array(allowed)) = decl.get("AllowedValues") {
                let allowed: Vec<String> = allowed.iter().map(params::text).collect();
                p.insert("ParameterConstraints".into(), json!({"AllowedValues": allowed}));
            }
            Value::Object(p)
        })
        .collect();
    let resources = template.get("Resources").and_then(Value::as_object).cloned().unwrap_or_default();
    let mut types: Vec<String> =
        resources.values().filter_map(|r| r["Type"].as_str().map(str::to_owned)).collect();
    types.sort();
    types.dedup();
    let iam = types.iter().any(|t| t.starts_with("AWS::IAM::"));
    let mut doc = json!({
        "Parameters": parameters,
        "Description": template.get("Description").and_then(Value::as_str),
        "Capabilities": if iam { json!(["CAPABILITY_IAM"]) } else { json!([]) },
        "CapabilitiesReason": iam.then_some("The following resource(s) require capabilities: [AWS::IAM::Role]"),
        "ResourceTypes": types,
        "Version": template.get("AWSTemplateFormatVersion").and_then(Value::as_str),
        "Metadata": template.get("Metadata").map(|m| m.to_string()),
        "DeclaredTransforms": template::transforms(original),
    });
    if let Value::Object(map) = &mut doc {
        map.retain(|_, v| !v.is_null());
    }
    doc
}

pub fn get_template_summary(engine: &Arc<Engine>, input: &Value) -> Result<Value> {
    let (template, original) = match string(input, "StackName") {
        Some(name) => {
            let stack = api::stack_named(engine, name)?;
            let original = template::parse(&stack.current.original).unwrap_or(Value::Null);
            (stack.current.template, original)
        }
        None => {
            let text = api::template_text(engine, input)?
                .ok_or_else(|| validation("Either Template URL or Template Body must be specified."))?;
            let original = template::parse(&text).map_err(validation)?;
            (api::prepare(engine, &text, "summary").map_err(validation)?, original)
        }
    };
    Ok(summary(&template, &original))
}

pub fn validate_template(engine: &Arc<Engine>, input: &Value) -> Result<Value> {
    let text = api::template_text(engine, input)?
        .ok_or_else(|| validation("Either Template URL or Template Body must be specified."))?;
    let original = template::parse(&text).map_err(validation)?;
    let template = api::prepare(engine, &text, "validate").map_err(validation)?;
    let mut doc = summary(&template, &original);
    if let Value::Object(map) = &mut doc {
        map.retain(|k, _| {
            ["Parameters", "Description", "Capabilities", "CapabilitiesReason", "DeclaredTransforms"]
                .contains(&k.as_str())
        });
        if let Some(Value::Array(params)) = map.get_mut("Parameters") {
            for p in params {
                if let Value::Object(p) = p {
                    p.remove("ParameterType");
                    p.remove("ParameterConstraints");
                }
            }
        }
    }
    Ok(doc)
}

pub fn list_exports(engine: &Arc<Engine>) -> Result<Value> {
    let exports: Vec<Value> = engine
        .exports()
        .into_iter()
        .map(|(name, (stack, value))| json!({"ExportingStackId": stack, "Name": name, "Value": value}))
        .collect();
    Ok(json!({"Exports": exports}))
}
