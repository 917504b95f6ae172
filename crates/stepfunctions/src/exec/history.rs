//! History helpers: timestamps as the context object shows them, and execution logging to a
//! CloudWatch Logs group (the events the machine's logging level asks for).

use std::sync::Arc;

use serde_json::{json, Value};
use tokio::sync::mpsc;

use nimbus_api::clock::Clock;

use crate::Services;

use super::Run;

/// `2024-01-02T03:04:05.678Z`, as `$$.Execution.StartTime` reads.
pub fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

/// A log record for one history event, as AWS's execution logs read.
pub fn record(run: &Run, event: &Value) -> Value {
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
    json!({
        "id": event["id"].to_string(),
        "type": event["type"],
        "details": details,
        "previous_event_id": event["previousEventId"].to_string(),
        "event_timestamp": ((event["timestamp"].as_f64().unwrap_or(0.0)) * 1000.0).round().to_string(),
        "execution_arn": run.arn,
    })
}

/// The task that writes an execution's log records to its group, in order: the stream first,
/// then each batch of records as they come (bounded: records past 1,000 waiting are dropped).
pub fn logger(
    services: Arc<dyn Services>,
    region: String,
    group: String,
    stream: String,
) -> mpsc::Sender<Value> {
    let (sender, mut records) = mpsc::channel::<Value>(1000);
    tokio::spawn(async move {
        let create = json!({"logGroupName": group, "logStreamName": stream});
        let _ = services.call(&region, "logs", "CreateLogStream", create).await;
        while let Some(first) = records.recv().await {
            let mut batch = vec![first];
            while let Ok(more) = records.try_recv() {
                batch.push(more);
            }
            // Stamped with the wall clock: Logs refuses events far in the future, where a virtual
            // clock moved forward may be (the record keeps the execution's own time).
            let now = nimbus_api::clock::SystemClock.now_ms();
            let events: Vec<Value> =
                batch.iter().map(|r| json!({"timestamp": now, "message": r.to_string()})).collect();
            let input = json!({"logGroupName": group, "logStreamName": stream, "logEvents": events});
            if let Err(error) = services.call(&region, "logs", "PutLogEvents", input).await {
                eprintln!("nimbus: stepfunctions: cannot log to {group}: {}", error.message);
            }
        }
    });
    sender
}
