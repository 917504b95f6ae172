//! RedriveExecution (a closed execution continues from the state that failed) and TestState
//! (one state run on its own).

use std::sync::Arc;

use nimbus_api::AwsError;
use nimbus_store::params;
use serde_json::{json, Value};

use super::{db_error, Answer, Input};
use crate::asl::{matches, path, validate};
use crate::exec::{seconds, Engine};

/// AWS keeps a closed execution redrivable for 14 days.
const REDRIVE_DAYS: i64 = 14;

pub fn redrive(engine: &Arc<Engine>, input: &Input<'_>) -> Answer {
    let arn = input.required("executionArn")?;
    if !matches!(arn.split(':').nth(5), Some("execution" | "express")) {
        return Err(super::invalid_arn(arn));
    }
    let row = engine
        .db
        .query_opt("SELECT doc, checkpoint FROM executions WHERE arn = ?1", &params![arn])
        .map_err(db_error)?
        .ok_or_else(|| {
            AwsError::new(400, "ExecutionDoesNotExist", format!("Execution Does Not Exist: '{arn}'"))
        })?;
    let mut doc: Value = crate::store::parse(&row.get::<String>(0).map_err(db_error)?).map_err(db_error)?;
    let status = doc["status"].as_str().unwrap_or_default().to_owned();
    let not_redrivable = |why: String| AwsError::new(400, "ExecutionNotRedrivable", why);
    if !matches!(status.as_str(), "FAILED" | "ABORTED" | "TIMED_OUT") {
        return Err(not_redrivable(format!("Execution is {status} and cannot be redriven")));
    }
    let now = engine.now();
    if now - doc["stopDate"].as_i64().unwrap_or(now) > REDRIVE_DAYS * 86_400_000 {
        return Err(not_redrivable(
            "Execution can no longer be redriven: it closed more than 14 days ago".into(),
        ));
    }
    let checkpoint =
        row.get::<Option<String>>(1).ok().flatten().and_then(|c| serde_json::from_str::<Value>(&c).ok());
    let checkpoint = match checkpoint {
        Some(c) => json!({"state": c["state"], "input": c["input"], "redrive": true}),
        None => {
            let definition: Value =
                serde_json::from_str(doc["machine"]["definition"].as_str().unwrap_or("{}"))
                    .unwrap_or_default();
            let input: Value =
                serde_json::from_str(doc["input"].as_str().unwrap_or("{}")).unwrap_or_default();
            json!({"state": definition["StartAt"], "input": input, "redrive": true})
        }
    };
    let count = doc["redriveCount"].as_i64().unwrap_or(0) + 1;
    for key in ["stopDate", "error", "cause", "output"] {
        if let Some(map) = doc.as_object_mut() {
            map.remove(key);
        }
    }
    doc["status"] = json!("RUNNING");
    doc["redriveCount"] = json!(count);
    doc["redriveDate"] = json!(now);
    let redriven = engine.db.write(|tx| {
        let changed = tx.execute(
            "UPDATE executions SET status = 'RUNNING', doc = ?2, checkpoint = ?3, node = ?4, stop_ms = NULL
             WHERE arn = ?1 AND status = ?5",
            &params![arn, doc.to_string(), checkpoint.to_string(), engine.node.as_str(), status.as_str()],
        )?;
        if changed == 1 {
            let last: i64 = tx.query_value("SELECT MAX(id) FROM events WHERE execution = ?1", &params![arn])?.unwrap_or(0);
            let event = json!({"timestamp": seconds(now), "type": "ExecutionRedriven", "id": last + 1, "previousEventId": last,
                "executionRedrivenEventDetails": {"redriveCount": count}});
            tx.execute("INSERT INTO events (execution, id, doc) VALUES (?1, ?2, ?3)", &params![arn, last + 1, event.to_string()])?;
        }
        Ok::<_, nimbus_store::DbError>(changed)
    });
    if redriven.map_err(db_error)? == 0 {
        return Err(not_redrivable("Execution is being redriven already".into()));
    }
    crate::exec::resume::resume_where(engine, Some(vec![engine.node.clone()]));
    Ok(json!({"redriveDate": seconds(now)}))
}

/// Points every transition of a lone state at itself, so that it validates as a machine.
fn as_machine(state: &Value) -> Value {
    let mut state = state.clone();
    fn retarget(value: &mut Value) {
        match value {
            Value::Object(map) => {
                for (key, v) in map.iter_mut() {
                    if matches!(key.as_str(), "Next" | "Default") && v.is_string() {
                        *v = json!("TestState");
                    } else {
                        retarget(v);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(retarget),
            _ => {}
        }
    }
    if let Some(map) = state.as_object_mut() {
        for key in ["Next", "Default", "Choices", "Catch"] {
            if let Some(v) = map.get_mut(key) {
                if key == "Next" || key == "Default" {
                    *v = json!("TestState");
                } else {
                    retarget(v);
                }
            }
        }
    }
    json!({"StartAt": "TestState", "States": {"TestState": state}})
}

pub async fn test_state(engine: &Arc<Engine>, region: &str, input: &Input<'_>) -> Answer {
    let text = input.required("definition")?;
    let mut definition: Value = serde_json::from_str(text).map_err(|e| {
        AwsError::new(
            400,
            "InvalidDefinition",
            format!("Invalid State Machine Definition: 'INVALID_JSON_DESCRIPTION: {e}'"),
        )
    })?;
    if definition.get("States").is_some() {
        crate::asl::jsonata::annotate(&mut definition);
    }
    let variables = match input.str("variables") {
        Some(text) => match serde_json::from_str(text) {
            Ok(Value::Object(variables)) => variables,
            _ => return Err(AwsError::validation("The variables must be a JSON object")),
        },
        None => serde_json::Map::new(),
    };
    let (name, state) = match (definition.get("States"), input.str("stateName")) {
        (Some(states), Some(name)) => {
            let state = states.get(name).cloned().ok_or_else(|| {
                AwsError::validation(format!("The state '{name}' is not in the definition"))
            })?;
            (name.to_owned(), state)
        }
        _ => ("TestState".to_owned(), definition.clone()),
    };
    validate::definition(&as_machine(&state).to_string())
        .map_err(|message| AwsError::new(400, "InvalidDefinition", message))?;
    let state_input: Value = serde_json::from_str(input.str("input").unwrap_or("{}"))
        .map_err(|e| AwsError::new(400, "InvalidExecutionInput", format!("Invalid Execution Input: {e}")))?;
    let doc = json!({
        "executionArn": format!("arn:aws:states:{region}:{}:execution:TestState:{}", engine.identity.account, uuid::Uuid::new_v4()),
        "name": "TestState",
        "input": state_input.to_string(),
        "startDate": engine.now(),
        "machine": {"name": "TestState", "definition": "{}", "roleArn": input.str("roleArn").unwrap_or_default(),
                    "stateMachineArn": format!("arn:aws:states:{region}:{}:stateMachine:TestState", engine.identity.account)},
    });
    // Retries and catches are reported, not taken.
    let mut bare = state.clone();
    if let Some(map) = bare.as_object_mut() {
        map.remove("Retry");
        map.remove("Catch");
    }
    let (run, _stop) = engine.new_run(&doc, false, 0);
    let result = crate::exec::run_one(&run, &name, &bare, state_input.clone(), variables.clone()).await;
    engine.forget(&run.arn);
    let mut out = match result {
        Ok((output, next)) => {
            let mut out = json!({"status": "SUCCEEDED", "output": output.to_string()});
            if let Some(next) = next {
                out["nextState"] = json!(next);
            }
            out
        }
        Err(failure) => {
            let mut out = json!({"error": failure.error, "cause": failure.cause});
            let errors = |v: &Value| v["ErrorEquals"].as_array().cloned().unwrap_or_default();
            let retriable =
                state["Retry"].as_array().into_iter().flatten().any(|r| matches(&errors(r), &failure.error));
            let catcher =
                state["Catch"].as_array().into_iter().flatten().find(|c| matches(&errors(c), &failure.error));
            if retriable {
                out["status"] = json!("RETRIABLE");
            } else if let Some(catcher) = catcher {
                out["status"] = json!("CAUGHT_ERROR");
                out["nextState"] = catcher["Next"].clone();
                let caught = match catcher.get("ResultPath") {
                    _ if crate::asl::jsonata::is_jsonata(&state) => {
                        crate::exec::jsonata_caught(catcher, &state_input, &failure, variables)
                    }
                    None => failure.to_json(),
                    Some(Value::Null) => state_input.clone(),
                    Some(p) => path::set(state_input.clone(), p.as_str().unwrap_or("$"), failure.to_json())
                        .unwrap_or_default(),
                };
                out["output"] = json!(caught.to_string());
            } else {
                out["status"] = json!("FAILED");
            }
            out
        }
    };
    if matches!(input.str("inspectionLevel"), Some("DEBUG" | "TRACE")) {
        out["inspectionData"] = json!({"input": state_input.to_string()});
    }
    Ok(out)
}
