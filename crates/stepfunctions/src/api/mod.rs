//! The API: requests parsed from JSON, answered from the store and the engine.

mod activities;
mod executions;
mod machines;
mod map_runs;
mod testing;

use std::sync::Arc;

use nimbus_api::AwsError;
use serde_json::{json, Map, Value};

use crate::exec::{seconds, Engine};

pub type Answer = Result<Value, AwsError>;

pub async fn dispatch(engine: &Arc<Engine>, region: &str, operation: &str, body: &Value) -> Answer {
    let input = Input(body);
    match operation {
        "StartSyncExecution" => executions::start_sync(engine, region, &input).await,
        "TestState" => testing::test_state(engine, region, &input).await,
        "GetActivityTask" => activities::get_task(engine, &input).await,
        _ => tokio::task::block_in_place(|| blocking(engine, region, operation, &input)),
    }
}

/// An operation answered without waiting (not StartSyncExecution, TestState or
/// GetActivityTask), for callers in process (CloudFormation's provider).
pub fn dispatch_blocking(engine: &Arc<Engine>, region: &str, operation: &str, body: &Value) -> Answer {
    blocking(engine, region, operation, &Input(body))
}

fn blocking(engine: &Arc<Engine>, region: &str, operation: &str, input: &Input<'_>) -> Answer {
    match operation {
        "CreateStateMachine" => machines::create(engine, region, input),
        "UpdateStateMachine" => machines::update(engine, input),
        "DescribeStateMachine" => machines::describe(engine, input),
        "ListStateMachines" => machines::list(engine, region, input),
        "DeleteStateMachine" => machines::delete(engine, input),
        "ValidateStateMachineDefinition" => Ok(machines::validate(input)),
        "PublishStateMachineVersion" => machines::publish(engine, input),
        "ListStateMachineVersions" => machines::list_versions(engine, input),
        "DeleteStateMachineVersion" => machines::delete_version(engine, input),
        "CreateStateMachineAlias" => machines::create_alias(engine, input),
        "UpdateStateMachineAlias" => machines::update_alias(engine, input),
        "DescribeStateMachineAlias" => machines::describe_alias(engine, input),
        "ListStateMachineAliases" => machines::list_aliases(engine, input),
        "DeleteStateMachineAlias" => machines::delete_alias(engine, input),
        "TagResource" => machines::tag(engine, input),
        "UntagResource" => machines::untag(engine, input),
        "ListTagsForResource" => machines::list_tags(engine, input),
        "StartExecution" => executions::start(engine, region, input),
        "DescribeExecution" => executions::describe(engine, input),
        "ListExecutions" => executions::list(engine, input),
        "GetExecutionHistory" => executions::history(engine, input),
        "StopExecution" => executions::stop(engine, input),
        "DescribeStateMachineForExecution" => executions::machine_for(engine, input),
        "SendTaskSuccess" => executions::send_success(engine, input),
        "SendTaskFailure" => executions::send_failure(engine, input),
        "SendTaskHeartbeat" => executions::send_heartbeat(engine, input),
        "RedriveExecution" => testing::redrive(engine, input),
        "CreateActivity" => activities::create(engine, region, input),
        "DescribeActivity" => activities::describe(engine, input),
        "ListActivities" => activities::list(engine, input),
        "DeleteActivity" => activities::delete(engine, input),
        "ListMapRuns" => map_runs::list(engine, input),
        "DescribeMapRun" => map_runs::describe(engine, input),
        "UpdateMapRun" => map_runs::update(engine, input),
        other => Err(AwsError::new(400, "UnknownOperationException", format!("Unknown operation {other}"))),
    }
}

/// Typed access to a request's members.
pub struct Input<'a>(pub &'a Value);

impl Input<'_> {
    pub fn str(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(Value::as_str)
    }

    pub fn required(&self, key: &str) -> Result<&str, AwsError> {
        self.str(key).ok_or_else(|| {
            AwsError::validation(format!("1 validation error detected: Value null at '{key}' failed to satisfy constraint: Member must not be null"))
        })
    }

    pub fn value(&self, key: &str) -> &Value {
        self.0.get(key).unwrap_or(&Value::Null)
    }
}

pub fn db_error(error: nimbus_store::DbError) -> AwsError {
    AwsError::new(500, "InternalFailure", error.to_string())
}

pub fn no_machine(arn: &str) -> AwsError {
    AwsError::new(400, "StateMachineDoesNotExist", format!("State Machine Does Not Exist: '{arn}'"))
}

pub fn invalid_arn(arn: &str) -> AwsError {
    AwsError::new(400, "InvalidArn", format!("Invalid Arn: 'Resource type not valid in this context: {arn}'"))
}

/// The machine an ARN names (a version's or an alias's snapshot for qualified ARNs), with the
/// qualified ARN it was asked by.
pub fn resolve_machine(engine: &Engine, arn: &str) -> Result<(Value, String), AwsError> {
    let parts: Vec<&str> = arn.split(':').collect();
    if parts.len() < 7 || parts[5] != "stateMachine" {
        return Err(invalid_arn(arn));
    }
    let base = parts[..7].join(":");
    let machine =
        crate::store::machine(&engine.db, &base).map_err(db_error)?.ok_or_else(|| no_machine(arn))?;
    match parts.get(7) {
        None => Ok((machine, arn.to_owned())),
        Some(q) if q.parse::<u64>().is_ok() => {
            let version = crate::store::doc(
                &engine.db,
                "SELECT doc FROM versions WHERE arn = ?1",
                &nimbus_store::params![arn],
            )
            .map_err(db_error)?
            .ok_or_else(|| AwsError::new(400, "ResourceNotFound", format!("Resource not found: '{arn}'")))?;
            Ok((version, arn.to_owned()))
        }
        Some(_) => {
            let alias = machines::alias(engine, arn)?;
            let routes = alias["routingConfiguration"].as_array().cloned().unwrap_or_default();
            let total: u64 = routes.iter().map(|r| r["weight"].as_u64().unwrap_or(0)).sum();
            let mut pick = fastrand::u64(0..total.max(1));
            let mut chosen = routes.first().cloned().unwrap_or_default();
            for route in &routes {
                let weight = route["weight"].as_u64().unwrap_or(0);
                if pick < weight {
                    chosen = route.clone();
                    break;
                }
                pick -= weight;
            }
            let version = chosen["stateMachineVersionArn"].as_str().unwrap_or_default().to_owned();
            let (machine, _) = resolve_machine(engine, &version)?;
            Ok((machine, arn.to_owned()))
        }
    }
}

/// DescribeExecution's answer from an execution's document.
pub fn describe_execution(doc: &Value) -> Value {
    let mut out = json!({
        "executionArn": doc["executionArn"],
        "stateMachineArn": doc["stateMachineArn"],
        "name": doc["name"],
        "status": doc["status"],
        "startDate": seconds(doc["startDate"].as_i64().unwrap_or(0)),
        "input": doc["input"],
        "inputDetails": {"included": true},
        "redriveCount": doc["redriveCount"],
        "redriveStatus": if matches!(doc["status"].as_str(), Some("FAILED" | "ABORTED" | "TIMED_OUT")) {
            "REDRIVABLE"
        } else {
            "NOT_REDRIVABLE"
        },
    });
    if let Some(date) = doc["redriveDate"].as_i64() {
        out["redriveDate"] = seconds(date);
    }
    if let Some(stop) = doc["stopDate"].as_i64() {
        out["stopDate"] = seconds(stop);
    }
    if doc.get("output").is_some() {
        out["output"] = doc["output"].clone();
        out["outputDetails"] = json!({"included": true});
    }
    for key in ["error", "cause", "stateMachineVersionArn", "stateMachineAliasArn", "mapRunArn"] {
        if let Some(value) = doc.get(key).filter(|v| !v.is_null()) {
            out[key] = value.clone();
        }
    }
    out
}

/// `executionArn` → `ExecutionArn`, as the `states:startExecution.sync` integration answers.
pub fn pascal_keys(value: Value) -> Value {
    let Value::Object(map) = value else { return value };
    let out: Map<String, Value> = map
        .into_iter()
        .map(|(k, v)| {
            let mut chars = k.chars();
            let key = chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default();
            (key, v)
        })
        .collect();
    Value::Object(out)
}

/// Pagination over a list already in order: `nextToken` is the offset.
pub fn page(items: Vec<Value>, input: &Input<'_>, key: &str, default_max: usize) -> Answer {
    let start = match input.str("nextToken") {
        Some(token) => token
            .parse::<usize>()
            .map_err(|_| AwsError::new(400, "InvalidToken", format!("Invalid Token: '{token}'")))?,
        None => 0,
    };
    let max =
        input.value("maxResults").as_u64().filter(|m| *m > 0).map_or(default_max, |m| m.min(1000) as usize);
    let end = start.saturating_add(max).min(items.len());
    let mut out = json!({ key: items.get(start..end).map(<[Value]>::to_vec).unwrap_or_default() });
    if end < items.len() {
        out["nextToken"] = json!(end.to_string());
    }
    Ok(out)
}
