//! Activities: their registry, and GetActivityTask, the long poll by which a worker takes the
//! next task queued for an activity (answered with its token and input, or empty after 60 s).

use std::sync::Arc;
use std::time::Duration;

use nimbus_api::AwsError;
use nimbus_store::params;
use serde_json::{json, Value};

use super::{db_error, page, Answer, Input};
use crate::exec::{seconds, Engine};
use crate::store;

/// How long GetActivityTask waits for a task (AWS: 60 s).
const POLL: Duration = Duration::from_secs(60);

fn no_activity(arn: &str) -> AwsError {
    AwsError::new(400, "ActivityDoesNotExist", format!("Activity Does Not Exist: '{arn}'"))
}

pub fn create(engine: &Engine, region: &str, input: &Input<'_>) -> Answer {
    let name = input.required("name")?;
    super::machines::check_name(name)?;
    let arn = format!("arn:aws:states:{region}:{}:activity:{name}", engine.identity.account);
    let doc = json!({"activityArn": arn, "name": name, "creationDate": engine.now()});
    engine
        .db
        .execute(
            "INSERT INTO activities (arn, doc) VALUES (?1, ?2) ON CONFLICT (arn) DO NOTHING",
            &params![arn.as_str(), doc.to_string()],
        )
        .map_err(db_error)?;
    let stored = store::doc(&engine.db, "SELECT doc FROM activities WHERE arn = ?1", &params![arn.as_str()])
        .map_err(db_error)?;
    let created = stored.and_then(|d| d["creationDate"].as_i64()).unwrap_or(0);
    Ok(json!({"activityArn": arn, "creationDate": seconds(created)}))
}

fn activity(engine: &Engine, arn: &str) -> Answer {
    if arn.split(':').nth(5) != Some("activity") {
        return Err(super::invalid_arn(arn));
    }
    store::doc(&engine.db, "SELECT doc FROM activities WHERE arn = ?1", &params![arn])
        .map_err(db_error)?
        .ok_or_else(|| no_activity(arn))
}

fn shown(doc: &Value) -> Value {
    json!({"activityArn": doc["activityArn"], "name": doc["name"], "creationDate": seconds(doc["creationDate"].as_i64().unwrap_or(0))})
}

pub fn describe(engine: &Engine, input: &Input<'_>) -> Answer {
    Ok(shown(&activity(engine, input.required("activityArn")?)?))
}

pub fn list(engine: &Engine, input: &Input<'_>) -> Answer {
    let docs = store::docs(&engine.db, "SELECT doc FROM activities ORDER BY arn", &[]).map_err(db_error)?;
    page(docs.iter().map(shown).collect(), input, "activities", 100)
}

pub fn delete(engine: &Engine, input: &Input<'_>) -> Answer {
    let arn = input.required("activityArn")?;
    engine.db.execute("DELETE FROM activities WHERE arn = ?1", &params![arn]).map_err(db_error)?;
    Ok(json!({}))
}

/// Takes the oldest task queued for `arn` not yet taken; its token, input and execution.
fn take(engine: &Engine, arn: &str, worker: &str) -> Result<Option<(String, String, String)>, AwsError> {
    let row = engine
        .db
        .query_opt(
            "UPDATE activity_tasks SET worker = ?2 WHERE token = (SELECT token FROM activity_tasks
                 WHERE activity = ?1 AND worker IS NULL ORDER BY created_ms LIMIT 1) AND worker IS NULL
             RETURNING token, input, execution",
            &params![arn, worker],
        )
        .map_err(db_error)?;
    row.map(|r| Ok((r.get(0).map_err(db_error)?, r.get(1).map_err(db_error)?, r.get(2).map_err(db_error)?)))
        .transpose()
}

pub async fn get_task(engine: &Arc<Engine>, input: &Input<'_>) -> Answer {
    let arn = input.required("activityArn")?.to_owned();
    let worker = input.str("workerName").unwrap_or("").to_owned();
    tokio::task::block_in_place(|| activity(engine, &arn))?;
    let deadline = tokio::time::Instant::now() + POLL;
    loop {
        // Registered before looking, so that a task queued meanwhile wakes this poll.
        let queued = engine.activity_queued.notified();
        if let Some((token, task_input, execution)) =
            tokio::task::block_in_place(|| take(engine, &arn, &worker))?
        {
            if let Some(run) = engine.local_run(&execution) {
                let mut cursor = run.last_event();
                run.record(
                    &mut cursor,
                    "ActivityStarted",
                    Some(("activityStartedEventDetails", json!({"workerName": worker}))),
                );
            }
            return Ok(json!({"taskToken": token, "input": task_input}));
        }
        // With several nodes, a task queued on another node is seen by looking again.
        tokio::select! {
            _ = queued => {}
            _ = tokio::time::sleep(Duration::from_secs(1)), if engine.cluster.is_some() => {}
            _ = tokio::time::sleep_until(deadline) => return Ok(json!({})),
        }
    }
}
