//! The types the engine provisions itself: nested stacks (`AWS::CloudFormation::Stack`), custom
//! resources backed by a Lambda function (`AWS::CloudFormation::CustomResource`, `Custom::*`),
//! and wait conditions with their handles. Functions answer at a URL nimbus serves
//! (`/_nimbus/cloudformation/response/ID`), as cfn-response expects.

use std::sync::Arc;
use std::time::{Duration, Instant};

use nimbus_api::provider::{Provisioned, ResourceRequest};
use serde_json::{json, Map, Value};

use crate::engine::{Action, Engine, Outcome, STACK_TYPE};
use crate::model::Stack;
use crate::params::Given;

pub const RESPONSE_PATH: &str = "/_nimbus/cloudformation/response/";
pub const SIGNAL_PATH: &str = "/_nimbus/cloudformation/signal/";

pub fn owns(kind: &str) -> bool {
    matches!(
        kind,
        STACK_TYPE
            | "AWS::CloudFormation::CustomResource"
            | "AWS::CloudFormation::WaitCondition"
            | "AWS::CloudFormation::WaitConditionHandle"
    ) || kind.starts_with("Custom::")
}

/// Which property changes replace a resource of these types.
pub fn replaces(kind: &str) -> fn(&str) -> bool {
    match kind {
        "AWS::CloudFormation::WaitCondition" | "AWS::CloudFormation::WaitConditionHandle" => |_| true,
        _ if kind.starts_with("Custom::") || kind == "AWS::CloudFormation::CustomResource" => {
            |key| key == "ServiceToken"
        }
        _ => |_| false,
    }
}

pub async fn execute(engine: Arc<Engine>, action: &Action, request: ResourceRequest) -> Outcome {
    match request.resource_type.as_str() {
        STACK_TYPE => nested(engine, action, request).await,
        "AWS::CloudFormation::WaitConditionHandle" => match action {
            Action::Delete { physical } => {
                let token = physical.rsplit('/').next().unwrap_or_default().to_owned();
                let _ = tokio::task::block_in_place(|| engine.store.forget_signals(&token));
                Ok(Provisioned::default())
            }
            Action::Update { physical, .. } => {
                Ok(Provisioned { physical_id: physical.clone(), ..Default::default() })
            }
            _ => {
                let token = uuid::Uuid::new_v4().simple().to_string();
                let url = format!("{}{SIGNAL_PATH}{token}", engine.endpoint_url);
                Ok(Provisioned { physical_id: url, attributes: Map::new() })
            }
        },
        "AWS::CloudFormation::WaitCondition" => match action {
            Action::Delete { .. } => Ok(Provisioned::default()),
            Action::Update { physical, .. } => {
                Ok(Provisioned { physical_id: physical.clone(), ..Default::default() })
            }
            _ => wait_condition(&engine, &request).await,
        },
        _ => custom(engine, action, request).await,
    }
}

fn number(request: &ResourceRequest, name: &str) -> Option<u64> {
    request.property(name).and_then(|v| v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())))
}

async fn wait_condition(engine: &Engine, request: &ResourceRequest) -> Outcome {
    let handle = request.string("Handle").ok_or("Property Handle cannot be empty.")?.to_owned();
    let token =
        handle.rsplit('/').next().unwrap_or_default().split('?').next().unwrap_or_default().to_owned();
    let count = number(request, "Count").unwrap_or(1) as usize;
    let timeout = number(request, "Timeout").ok_or("Property Timeout cannot be empty.")?.min(43_200);
    let deadline = Instant::now() + Duration::from_secs(timeout);
    loop {
        let signals = tokio::task::block_in_place(|| engine.store.signals(&token)).unwrap_or_default();
        if let Some(failed) = signals.iter().find(|s| s["Status"] == "FAILURE") {
            return Err(format!(
                "WaitCondition received failed message: '{}' for uniqueId: {}",
                failed["Reason"].as_str().unwrap_or_default(),
                failed["UniqueId"].as_str().unwrap_or_default()
            ));
        }
        let successes: Vec<&Value> = signals.iter().filter(|s| s["Status"] == "SUCCESS").collect();
        if successes.len() >= count {
            let data: Map<String, Value> = successes
                .iter()
                .map(|s| {
                    (crate::params::text(&s["UniqueId"]), Value::String(crate::params::text(&s["Data"])))
                })
                .collect();
            let mut attributes = Map::new();
            attributes.insert("Data".into(), Value::String(Value::Object(data).to_string()));
            let physical = format!("{}/{}", request.stack_id, request.logical_id);
            return Ok(Provisioned { physical_id: physical, attributes });
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "WaitCondition timed out. Received {} conditions when expecting {count}",
                successes.len()
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Properties as a custom resource sees them: every scalar a string.
fn stringified(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), stringified(v))).collect()),
        Value::Array(items) => Value::Array(items.iter().map(stringified).collect()),
        Value::Number(n) => Value::String(n.to_string()),
        Value::Bool(b) => Value::String(b.to_string()),
        other => other.clone(),
    }
}

async fn custom(engine: Arc<Engine>, action: &Action, request: ResourceRequest) -> Outcome {
    let token = request.string("ServiceToken").ok_or("Property ServiceToken cannot be empty.")?.to_owned();
    if !token.starts_with("arn:aws:lambda:") {
        return Err(format!("nimbus sends custom resource requests to Lambda functions only, not {token}"));
    }
    let functions = engine.hooks.functions.get().cloned().ok_or("custom resources need Lambda, not wired")?;
    let request_id = uuid::Uuid::new_v4().to_string();
    let properties = stringified(&Value::Object(request.properties.clone()));
    let mut payload = json!({
        "ServiceToken": token,
        "ResponseURL": format!("{}{RESPONSE_PATH}{request_id}", engine.endpoint_url),
        "StackId": request.stack_id,
        "RequestId": request_id,
        "LogicalResourceId": request.logical_id,
        "ResourceType": request.resource_type,
        "ResourceProperties": properties,
    });
    let (kind, physical) = match action {
        Action::Create | Action::Replace => ("Create", None),
        Action::Update { physical, previous } => {
            payload["OldResourceProperties"] = stringified(&Value::Object(previous.clone()));
            ("Update", Some(physical.clone()))
        }
        Action::Delete { physical } => ("Delete", Some(physical.clone())),
    };
    payload["RequestType"] = kind.into();
    if let Some(physical) = &physical {
        payload["PhysicalResourceId"] = physical.clone().into();
    }
    functions
        .invoke_async(&token, payload.to_string().into_bytes())
        .await
        .map_err(|e| format!("Failed to invoke the custom resource's function {token}: {e}"))?;
    let timeout = number(&request, "ServiceTimeout").unwrap_or(3600);
    let deadline = Instant::now() + Duration::from_secs(timeout);
    let response = loop {
        let signals = tokio::task::block_in_place(|| engine.store.signals(&request_id)).unwrap_or_default();
        if let Some(response) = signals.into_iter().next() {
            break response;
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "CloudFormation did not receive a response from your Custom Resource. Please check your logs for requestId [{request_id}]. If you are using the Python cfn-response module, you may need to update your Lambda function code so that CloudFormation can attach the updated version."
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let _ = tokio::task::block_in_place(|| engine.store.forget_signals(&request_id));
    if response["Status"] != "SUCCESS" {
        return Err(format!(
            "Received response status [{}] from custom resource. Message returned: {} (RequestId: {request_id})",
            response["Status"].as_str().unwrap_or("FAILED"),
            response["Reason"].as_str().unwrap_or_default()
        ));
    }
    let physical_id = response["PhysicalResourceId"]
        .as_str()
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .or(physical)
        .unwrap_or_else(|| format!("{}-{}", request.logical_id, &request_id[..8]));
    let attributes = match &response["Data"] {
        Value::Object(data) => data.clone(),
        _ => Map::new(),
    };
    Ok(Provisioned { physical_id, attributes })
}

/// The nested stack's parameters as given.
fn given(request: &ResourceRequest) -> Vec<Given> {
    match request.property("Parameters") {
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| Given { key: k.clone(), value: Some(crate::params::text(v)), use_previous: false })
            .collect(),
        _ => Vec::new(),
    }
}

fn outputs_of(stack: &Stack) -> Provisioned {
    let attributes = stack
        .outputs
        .iter()
        .map(|o| (format!("Outputs.{}", o.key), Value::String(o.value.clone())))
        .collect();
    Provisioned { physical_id: stack.id.clone(), attributes }
}

async fn nested(engine: Arc<Engine>, action: &Action, request: ResourceRequest) -> Outcome {
    match action {
        Action::Delete { physical } => {
            engine.wait_idle(physical).await;
            let Some(mut child) = engine.load(physical) else { return Ok(Provisioned::default()) };
            if child.is_deleted() {
                return Ok(Provisioned::default());
            }
            let event = engine.set_status(&mut child, "DELETE_IN_PROGRESS", None);
            engine.save(&child, &[event]);
            engine.clone().drive(child.id.clone()).await;
            match engine.load(physical) {
                Some(child) if child.status != "DELETE_COMPLETE" => Err(format!(
                    "Embedded stack {} was not successfully deleted: {}",
                    child.id,
                    child.reason.unwrap_or_default()
                )),
                _ => Ok(Provisioned::default()),
            }
        }
        Action::Create | Action::Replace => {
            let url =
                request.string("TemplateURL").ok_or("Property TemplateURL cannot be empty.")?.to_owned();
            let parent = engine.load(&request.stack_id).ok_or("the parent stack is gone")?;
            let name =
                nimbus_api::provider::generated_name(&request.stack_name, &request.logical_id, 128, false);
            let text = crate::api::fetch_template(&engine, &url)?;
            let template = crate::api::prepare_with(&engine, &text, &name, &given(&request), None)?;
            let parameters = crate::params::resolve(&template, &given(&request), None)?;
            let template = crate::api::expand(&engine, template, &parameters)?;
            let version = crate::model::Version { original: text, template, parameters };
            let mut child = crate::api::new_stack(&engine, &name, version);
            child.parent_id = Some(parent.id.clone());
            child.root_id = Some(parent.root_id.clone().unwrap_or(parent.id.clone()));
            child.tags = parent.tags.clone();
            child.capabilities = parent.capabilities.clone();
            child.disable_rollback = parent.disable_rollback;
            let event = engine.set_status(&mut child, "CREATE_IN_PROGRESS", Some("User Initiated".into()));
            engine.save(&child, &[event]);
            engine.clone().drive(child.id.clone()).await;
            let child = engine.load(&child.id).ok_or("the nested stack is gone")?;
            if child.status != "CREATE_COMPLETE" {
                let reason = engine_reason(&engine, &child);
                return Err(format!("Embedded stack {} was not successfully created: {reason}", child.id));
            }
            Ok(outputs_of(&child))
        }
        Action::Update { physical, .. } => {
            engine.wait_idle(physical).await;
            let mut child = engine.load(physical).ok_or("the nested stack is gone")?;
            let url =
                request.string("TemplateURL").ok_or("Property TemplateURL cannot be empty.")?.to_owned();
            let text = crate::api::fetch_template(&engine, &url)?;
            let previous = Some(&child.current.parameters);
            let template = crate::api::prepare_with(&engine, &text, &child.name, &given(&request), previous)?;
            let parameters =
                crate::params::resolve(&template, &given(&request), Some(&child.current.parameters))?;
            let template = crate::api::expand(&engine, template, &parameters)?;
            let version = crate::model::Version { original: text, template, parameters };
            if version.template == child.current.template && version.parameters == child.current.parameters {
                return Ok(outputs_of(&child));
            }
            child.previous = Some(std::mem::replace(&mut child.current, version));
            child.updated_ms = Some(crate::model::now_ms());
            let event = engine.set_status(&mut child, "UPDATE_IN_PROGRESS", Some("User Initiated".into()));
            engine.save(&child, &[event]);
            engine.clone().drive(child.id.clone()).await;
            let child = engine.load(physical).ok_or("the nested stack is gone")?;
            if child.status != "UPDATE_COMPLETE" {
                return Err(format!(
                    "Embedded stack {} was not successfully updated. Currently in {} with reason: {}",
                    child.id,
                    child.status,
                    engine_reason(&engine, &child)
                ));
            }
            Ok(outputs_of(&child))
        }
    }
}

/// Why a nested stack failed: its first failed resource's reason, else its own.
fn engine_reason(engine: &Engine, child: &Stack) -> String {
    let events = tokio::task::block_in_place(|| engine.store.events(&child.id)).unwrap_or_default();
    events
        .iter()
        .rev()
        .find(|e| e.status.ends_with("_FAILED") && e.logical_id != child.name)
        .and_then(|e| e.reason.clone())
        .or_else(|| child.reason.clone())
        .unwrap_or_default()
}
