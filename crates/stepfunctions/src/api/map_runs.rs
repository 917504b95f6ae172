//! `ListMapRuns`, `DescribeMapRun` and `UpdateMapRun`: the map runs distributed Map states
//! recorded (see `exec::map_runs`).

use nimbus_api::AwsError;
use nimbus_store::params;
use serde_json::{json, Value};

use super::{db_error, page, Answer, Input};
use crate::exec::{seconds, Engine};
use crate::store;

fn no_map_run(arn: &str) -> AwsError {
    AwsError::new(400, "ResourceNotFound", format!("Resource not found: '{arn}'"))
}

pub fn map_run(engine: &Engine, arn: &str) -> Result<Value, AwsError> {
    if arn.split(':').nth(5) != Some("mapRun") {
        return Err(super::invalid_arn(arn));
    }
    store::doc(&engine.db, "SELECT doc FROM map_runs WHERE arn = ?1", &params![arn])
        .map_err(db_error)?
        .ok_or_else(|| no_map_run(arn))
}

/// The child state machine's ARN, from the map run's (`…:mapRun:<machine>/<label>:<id>`).
fn child_machine(arn: &str) -> String {
    let base = arn.rsplit_once(':').map_or(arn, |(base, _)| base);
    base.replacen(":mapRun:", ":stateMachine:", 1)
}

pub fn list(engine: &Engine, input: &Input<'_>) -> Answer {
    let execution = input.required("executionArn")?;
    if store::execution(&engine.db, execution).map_err(db_error)?.is_none() {
        return Err(AwsError::new(
            400,
            "ExecutionDoesNotExist",
            format!("Execution Does Not Exist: '{execution}'"),
        ));
    }
    let docs = store::docs(
        &engine.db,
        "SELECT doc FROM map_runs WHERE execution = ?1 ORDER BY start_ms DESC, arn",
        &params![execution],
    )
    .map_err(db_error)?;
    let items = docs
        .into_iter()
        .map(|d| {
            let arn = d["mapRunArn"].as_str().unwrap_or_default();
            let mut item = json!({"executionArn": d["executionArn"], "mapRunArn": arn,
                "stateMachineArn": child_machine(arn), "startDate": seconds(d["startDate"].as_i64().unwrap_or(0))});
            if let Some(stop) = d["stopDate"].as_i64() {
                item["stopDate"] = seconds(stop);
            }
            item
        })
        .collect();
    page(items, input, "mapRuns", 100)
}

pub fn describe(engine: &Engine, input: &Input<'_>) -> Answer {
    let mut doc = map_run(engine, input.required("mapRunArn")?)?;
    if doc["status"] == "RUNNING" {
        crate::exec::map_runs::progress(engine, &mut doc);
    }
    doc["startDate"] = seconds(doc["startDate"].as_i64().unwrap_or(0));
    if let Some(stop) = doc["stopDate"].as_i64() {
        doc["stopDate"] = seconds(stop);
    }
    Ok(doc)
}

pub fn update(engine: &Engine, input: &Input<'_>) -> Answer {
    let arn = input.required("mapRunArn")?;
    let mut doc = map_run(engine, arn)?;
    let invalid = |m: &str| AwsError::new(400, "ValidationException", m.to_owned());
    let concurrency = input.value("maxConcurrency");
    let percent = input.value("toleratedFailurePercentage");
    let count = input.value("toleratedFailureCount");
    if concurrency.is_null() && percent.is_null() && count.is_null() {
        return Err(invalid(
            "At least one of maxConcurrency, toleratedFailurePercentage or toleratedFailureCount must be given",
        ));
    }
    if !concurrency.is_null() {
        doc["maxConcurrency"] =
            json!(concurrency.as_u64().ok_or_else(|| invalid("maxConcurrency must be 0 or more"))?);
    }
    if !percent.is_null() {
        let p = percent.as_f64().filter(|p| (0.0..=100.0).contains(p));
        doc["toleratedFailurePercentage"] =
            json!(p.ok_or_else(|| invalid("toleratedFailurePercentage must be between 0 and 100"))?);
    }
    if !count.is_null() {
        doc["toleratedFailureCount"] =
            json!(count.as_u64().ok_or_else(|| invalid("toleratedFailureCount must be 0 or more"))?);
    }
    engine
        .db
        .execute("UPDATE map_runs SET doc = ?2 WHERE arn = ?1", &params![arn, doc.to_string()])
        .map_err(db_error)?;
    let tolerated = (count.as_u64(), percent.as_f64());
    crate::exec::map_runs::update(engine, arn, concurrency.as_u64(), tolerated);
    Ok(json!({}))
}
