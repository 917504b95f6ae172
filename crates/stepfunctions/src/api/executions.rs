//! Executions: start (async and sync), describe, list, history, stop, and the task-token
//! callbacks.

use std::sync::Arc;

use nimbus_api::AwsError;
use nimbus_store::params;
use serde_json::{json, Value};

use super::{db_error, describe_execution, invalid_arn, page, resolve_machine, Answer, Input};
use crate::exec::{seconds, Engine, Start};
use crate::store;

fn no_execution(arn: &str) -> AwsError {
    AwsError::new(400, "ExecutionDoesNotExist", format!("Execution Does Not Exist: '{arn}'"))
}

fn prepared(engine: &Engine, region: &str, input: &Input<'_>) -> Result<Start, AwsError> {
    let arn = input.required("stateMachineArn")?;
    let (machine, qualified) = resolve_machine(engine, arn)?;
    let text = input.str("input").unwrap_or("{}");
    let parsed: Value = serde_json::from_str(text)
        .map_err(|e| AwsError::new(400, "InvalidExecutionInput", format!("Invalid Execution Input: {e}")))?;
    if text.len() > crate::asl::MAX_PAYLOAD {
        return Err(AwsError::new(
            400,
            "InvalidExecutionInput",
            "Invalid Execution Input: the input exceeds 262144 bytes",
        ));
    }
    let name = match input.str("name") {
        Some(name) => {
            let bad = name.is_empty()
                || name.len() > 80
                || name.chars().any(|c| c.is_whitespace() || "<>{}[]?*\"#%\\^|~`$&,;:/".contains(c));
            if bad {
                return Err(AwsError::new(400, "InvalidName", format!("Invalid Name: '{name}'")));
            }
            name.to_owned()
        }
        None => uuid::Uuid::new_v4().to_string(),
    };
    let region = arn.split(':').nth(3).unwrap_or(region).to_owned();
    Ok(Start { machine, machine_arn: qualified, name, input: parsed, region })
}

pub fn start(engine: &Arc<Engine>, region: &str, input: &Input<'_>) -> Answer {
    let start = prepared(engine, region, input)?;
    let started = engine.start(start)?;
    Ok(json!({"executionArn": started.arn, "startDate": seconds(started.start_ms)}))
}

pub async fn start_sync(engine: &Arc<Engine>, region: &str, input: &Input<'_>) -> Answer {
    let start = tokio::task::block_in_place(|| prepared(engine, region, input))?;
    if start.machine["type"] != "EXPRESS" {
        return Err(AwsError::new(
            400,
            "StateMachineTypeNotSupported",
            "This operation is not supported by this type of state machine",
        ));
    }
    let started = engine.start(start)?;
    let Some(done) = started.done else { return Err(AwsError::service("The execution did not start")) };
    let doc = done.await.map_err(|_| AwsError::service("The execution stopped"))?;
    let mut out = describe_execution(&doc);
    for key in ["redriveCount", "redriveStatus", "stateMachineVersionArn", "stateMachineAliasArn"] {
        if let Some(map) = out.as_object_mut() {
            map.remove(key);
        }
    }
    let billed = (doc["stopDate"].as_i64().unwrap_or(0) - doc["startDate"].as_i64().unwrap_or(0)).max(0);
    out["billingDetails"] =
        json!({"billedMemoryUsedInMB": 64, "billedDurationInMilliseconds": (billed.max(1) + 99) / 100 * 100});
    Ok(out)
}

fn execution(engine: &Engine, arn: &str) -> Result<Value, AwsError> {
    if !matches!(arn.split(':').nth(5), Some("execution" | "express")) {
        return Err(invalid_arn(arn));
    }
    store::execution(&engine.db, arn).map_err(db_error)?.ok_or_else(|| no_execution(arn))
}

pub fn describe(engine: &Engine, input: &Input<'_>) -> Answer {
    Ok(describe_execution(&execution(engine, input.required("executionArn")?)?))
}

pub fn machine_for(engine: &Engine, input: &Input<'_>) -> Answer {
    let doc = execution(engine, input.required("executionArn")?)?;
    let m = &doc["machine"];
    Ok(json!({
        "stateMachineArn": m["stateMachineArn"],
        "name": m["name"],
        "definition": m["definition"],
        "roleArn": m["roleArn"],
        "updateDate": seconds(m["updateDate"].as_i64().or(m["creationDate"].as_i64()).unwrap_or(0)),
        "loggingConfiguration": m["loggingConfiguration"],
        "tracingConfiguration": m["tracingConfiguration"],
        "revisionId": m["revisionId"],
    }))
}

pub fn list(engine: &Engine, input: &Input<'_>) -> Answer {
    if let Some(map_run) = input.str("mapRunArn") {
        return list_children(engine, map_run, input);
    }
    let arn = input.str("stateMachineArn").unwrap_or_default();
    let (machine, _) = resolve_machine(engine, arn)?;
    if machine["type"] == "EXPRESS" {
        return Err(AwsError::new(
            400,
            "StateMachineTypeNotSupported",
            "This operation is not supported by this type of state machine",
        ));
    }
    let filter = input.str("statusFilter");
    let base = machine["stateMachineArn"].as_str().unwrap_or_default();
    let docs = store::docs(
        &engine.db,
        "SELECT doc FROM executions WHERE machine = ?1 ORDER BY start_ms DESC, arn",
        &params![base],
    )
    .map_err(db_error)?;
    let items = docs
        .into_iter()
        .filter(|d| filter.is_none_or(|f| d["status"] == f))
        .filter(|d| arn == base || d["stateMachineVersionArn"] == arn || d["stateMachineAliasArn"] == arn)
        .map(|d| {
            let mut item = json!({
                "executionArn": d["executionArn"], "stateMachineArn": d["stateMachineArn"], "name": d["name"],
                "status": d["status"], "startDate": seconds(d["startDate"].as_i64().unwrap_or(0)), "redriveCount": d["redriveCount"],
            });
            if let Some(stop) = d["stopDate"].as_i64() {
                item["stopDate"] = seconds(stop);
            }
            item
        })
        .collect();
    page(items, input, "executions", 100)
}

/// ListExecutions(mapRunArn): a distributed Map's child executions.
fn list_children(engine: &Engine, map_run: &str, input: &Input<'_>) -> Answer {
    super::map_runs::map_run(engine, map_run)?;
    let filter = input.str("statusFilter");
    let docs = store::docs(
        &engine.db,
        "SELECT doc FROM executions WHERE machine = ?1 ORDER BY start_ms DESC, arn",
        &params![map_run],
    )
    .map_err(db_error)?;
    let items = docs
        .into_iter()
        .filter(|d| filter.is_none_or(|f| d["status"] == f))
        .map(|d| {
            json!({
                "executionArn": d["executionArn"], "stateMachineArn": d["stateMachineArn"], "name": d["name"],
                "status": d["status"], "startDate": seconds(d["startDate"].as_i64().unwrap_or(0)),
                "stopDate": seconds(d["stopDate"].as_i64().unwrap_or(0)), "mapRunArn": map_run, "redriveCount": 0,
            })
        })
        .collect();
    page(items, input, "executions", 100)
}

pub fn history(engine: &Engine, input: &Input<'_>) -> Answer {
    let arn = input.required("executionArn")?;
    execution(engine, arn)?;
    let order = if input.value("reverseOrder").as_bool() == Some(true) { "DESC" } else { "ASC" };
    let sql = format!("SELECT doc FROM events WHERE execution = ?1 ORDER BY id {order}");
    let mut events = store::docs(&engine.db, &sql, &params![arn]).map_err(db_error)?;
    if input.value("includeExecutionData").as_bool() == Some(false) {
        for event in &mut events {
            for details in event
                .as_object_mut()
                .into_iter()
                .flat_map(|m| m.values_mut())
                .filter_map(Value::as_object_mut)
            {
                for key in ["input", "output", "parameters"] {
                    details.remove(key);
                }
            }
        }
    }
    page(events, input, "events", 100)
}

pub fn stop(engine: &Engine, input: &Input<'_>) -> Answer {
    let arn = input.required("executionArn")?;
    let mut doc = execution(engine, arn)?;
    let now = engine.now();
    if doc["status"] != "RUNNING" {
        return Ok(json!({"stopDate": seconds(doc["stopDate"].as_i64().unwrap_or(now))}));
    }
    doc["status"] = json!("ABORTED");
    doc["stopDate"] = json!(now);
    let mut details = json!({});
    for key in ["error", "cause"] {
        if let Some(value) = input.str(key) {
            doc[key] = json!(value);
            details[key] = json!(value);
        }
    }
    if store::save_execution(&engine.db, &doc, true).map_err(db_error)? {
        let map_runs = crate::exec::map_runs::abort(&engine.db, arn, now).map_err(db_error)?;
        match engine.local_run(arn) {
            Some(run) => {
                let mut cursor = run.last_event();
                for _ in &map_runs {
                    run.record(&mut cursor, "MapRunAborted", None);
                }
                let current = run.current.lock().unwrap_or_else(|p| p.into_inner()).clone();
                if let Some(kind) =
                    current.filter(|k| matches!(k.as_str(), "Task" | "Wait" | "Map" | "Parallel"))
                {
                    run.record(&mut cursor, &format!("{kind}StateAborted"), None);
                }
                run.record(&mut cursor, "ExecutionAborted", Some(("executionAbortedEventDetails", details)));
            }
            None => {
                let event = |id: i64| json!({"timestamp": seconds(now), "type": "ExecutionAborted", "id": id, "previousEventId": id - 1, "executionAbortedEventDetails": details});
                let last = engine
                    .db
                    .query_opt("SELECT MAX(id) FROM events WHERE execution = ?1", &params![arn])
                    .map_err(db_error)?
                    .and_then(|r| r.get::<i64>(0).ok())
                    .unwrap_or(0);
                engine
                    .db
                    .execute(
                        "INSERT INTO events (execution, id, doc) VALUES (?1, ?2, ?3)",
                        &params![arn, last + 1, event(last + 1).to_string()],
                    )
                    .map_err(db_error)?;
            }
        }
        engine.stop_local(arn);
    }
    Ok(json!({"stopDate": seconds(now)}))
}

pub fn send_success(engine: &Engine, input: &Input<'_>) -> Answer {
    let token = input.required("taskToken")?;
    let output: Value = serde_json::from_str(input.required("output")?)
        .map_err(|e| AwsError::new(400, "InvalidOutput", format!("Invalid Output: {e}")))?;
    crate::exec::answer_token(engine, token, Some(json!({"output": output})))?;
    Ok(json!({}))
}

pub fn send_failure(engine: &Engine, input: &Input<'_>) -> Answer {
    let token = input.required("taskToken")?;
    let outcome = json!({"error": input.str("error").unwrap_or_default(), "cause": input.str("cause").unwrap_or_default()});
    crate::exec::answer_token(engine, token, Some(outcome))?;
    Ok(json!({}))
}

pub fn send_heartbeat(engine: &Engine, input: &Input<'_>) -> Answer {
    crate::exec::answer_token(engine, input.required("taskToken")?, None)?;
    Ok(json!({}))
}
