//! Task states on an activity (`arn:aws:states:…:activity:NAME`): the task is queued for the
//! activity's workers (GetActivityTask), and the state waits for its token as a
//! `.waitForTaskToken` task does, with `Activity*` history events.

use std::sync::Arc;

use nimbus_store::params;
use serde_json::{json, Value};

use super::states::{parameters, Entered};
use super::task::{new_token, seconds_field};
use super::{Cursor, Run};
use crate::asl::Failure;

pub async fn run(
    run: &Arc<Run>,
    at: &Entered<'_>,
    effective: Value,
    context: &Value,
    cursor: &mut Cursor,
    resume: Option<Value>,
    raw: &Value,
) -> Result<Value, Failure> {
    let state = at.state;
    let arn = state["Resource"].as_str().unwrap_or_default();
    let timeout = seconds_field(state, "TimeoutSeconds", &effective, context)?.unwrap_or(99_999_999);
    let heartbeat = seconds_field(state, "HeartbeatSeconds", &effective, context)?;
    let params = if crate::asl::jsonata::is_jsonata(state) {
        super::query::arguments(state, &effective, context)?
    } else {
        parameters(state, &effective, context)?
    };
    let resumed = resume.as_ref().and_then(|c| c["token"].as_str()).map(str::to_owned);
    let engine = &run.engine;
    if resumed.is_none() {
        let exists = engine.db.query_opt("SELECT 1 FROM activities WHERE arn = ?1", &params![arn]);
        if !matches!(exists, Ok(Some(_))) {
            let cause = format!("Activity Does Not Exist: '{arn}'");
            let details = json!({"error": "States.Runtime", "cause": cause});
            run.record(
                cursor,
                "ActivityScheduleFailed",
                Some(("activityScheduleFailedEventDetails", details)),
            );
            return Err(Failure::runtime(cause));
        }
        let mut details = json!({"resource": arn, "input": params.to_string(), "inputDetails": {"truncated": false},
            "timeoutInSeconds": timeout});
        if let Some(h) = heartbeat {
            details["heartbeatInSeconds"] = json!(h);
        }
        run.record(cursor, "ActivityScheduled", Some(("activityScheduledEventDetails", details)));
    }
    let token = resumed.clone().unwrap_or_else(new_token);
    super::tokens::register(run, &token);
    if at.scope.top {
        run.checkpoint(&json!({"state": at.name, "input": raw, "token": token}));
    } else {
        run.commit();
    }
    if resumed.is_none() {
        let queued = engine.db.execute(
            "INSERT INTO activity_tasks (token, activity, execution, input, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (token) DO NOTHING",
            &params![token.as_str(), arn, run.arn.as_str(), params.to_string(), engine.now()],
        );
        if let Err(error) = queued {
            return Err(Failure::runtime(format!("cannot queue the activity task: {error}")));
        }
        engine.activity_queued.notify_waiters();
    }
    let deadline = engine.now().saturating_add(timeout.saturating_mul(1000));
    let result = tokio::select! {
        result = super::tokens::wait(run, &token, heartbeat) => result,
        _ = nimbus_api::clock::sleep_until(engine.clock.as_ref(), deadline) => Err(Failure::new("States.Timeout", "")),
    };
    super::tokens::unregister(run, &token);
    let _ = engine.db.execute("DELETE FROM activity_tasks WHERE token = ?1", &params![token.as_str()]);
    let (kind, key, details) = match &result {
        Ok(output) => (
            "ActivitySucceeded",
            "activitySucceededEventDetails",
            json!({"output": output.to_string(), "outputDetails": {"truncated": false}}),
        ),
        Err(f) if f.error == "States.Timeout" || f.error == "States.HeartbeatTimeout" => {
            ("ActivityTimedOut", "activityTimedOutEventDetails", json!({"error": f.error, "cause": f.cause}))
        }
        Err(f) => {
            ("ActivityFailed", "activityFailedEventDetails", json!({"error": f.error, "cause": f.cause}))
        }
    };
    run.record(cursor, kind, Some((key, details)));
    result
}
