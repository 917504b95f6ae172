//! History helpers: timestamps as the context object shows them, and execution logging to a
//! CloudWatch Logs group (the events the machine's logging level asks for).

use serde_json::{json, Value};

use super::Run;

/// `2024-01-02T03:04:05.678Z`, as `$$.Execution.StartTime` reads.
pub fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

/// Sends one history event to the execution's log group, as AWS's log records read; in the
/// background, best-effort (the stream is made on the execution's first record).
pub fn log(run: &Run, event: &Value) {
    let Some(group) = run.logging.group.clone() else { return };
    let mut details = event.as_object().cloned().unwrap_or_default();
    for key in ["timestamp", "type", "id", "previousEventId"] {
        details.remove(key);
    }
    let mut details: Value = details.into_iter().next().map(|(_, v)| v).unwrap_or(json!({}));
    if !run.logging.include_data {
        if let Value::Object(map) = &mut details {
            for key in ["input", "output", "parameters"] {
                map.remove(key);
            }
        }
    }
    let record = json!({
        "id": event["id"].to_string(),
        "type": event["type"],
        "details": details,
        "previous_event_id": event["previousEventId"].to_string(),
        "event_timestamp": ((event["timestamp"].as_f64().unwrap_or(0.0)) * 1000.0).round().to_string(),
        "execution_arn": run.arn,
    });
    let services = run.engine.services.clone();
    let region = run.region.clone();
    let stream = format!(
        "states/{}/{}",
        run.context["StateMachine"]["Name"].as_str().unwrap_or("machine"),
        run.context["Execution"]["Name"].as_str().unwrap_or("execution")
    );
    let first = event["id"] == json!(1);
    let timestamp = (event["timestamp"].as_f64().unwrap_or(0.0) * 1000.0) as i64;
    tokio::spawn(async move {
        if first {
            let input = json!({"logGroupName": group, "logStreamName": stream});
            let _ = services.call(&region, "logs", "CreateLogStream", input).await;
        }
        let input = json!({
            "logGroupName": group,
            "logStreamName": stream,
            "logEvents": [{"timestamp": timestamp, "message": record.to_string()}],
        });
        let mut put = services.call(&region, "logs", "PutLogEvents", input.clone()).await;
        if put.as_ref().is_err_and(|e| e.code == "ResourceNotFoundException") {
            let create = json!({"logGroupName": group, "logStreamName": stream});
            let _ = services.call(&region, "logs", "CreateLogStream", create).await;
            put = services.call(&region, "logs", "PutLogEvents", input).await;
        }
        if let Err(error) = put {
            eprintln!("nimbus: stepfunctions: cannot log to {group}: {}", error.message);
        }
    });
}
