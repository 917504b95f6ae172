//! A distributed Map's map run as the API shows it: its record (status, limits, item and
//! execution counts) for `ListMapRuns`/`DescribeMapRun`/`UpdateMapRun`, and one child execution
//! per processed batch or item, listed by `ListExecutions(mapRunArn)` with its own short history.
//! The iterations themselves run inside the parent's task (see `map`); their children are
//! written when the map run ends, in one transaction.

use std::sync::{Arc, Mutex};

use nimbus_store::params;
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use super::states::Entered;
use super::{seconds, Engine, Run};
use crate::asl::Failure;

/// The concurrency a `MaxConcurrency` gives (0: AWS's most, 1,000 distributed, 40 inline here).
pub fn concurrency(max: u64, distributed: bool) -> usize {
    let limit = if distributed { 1000 } else { 40 };
    if max == 0 {
        limit
    } else {
        max.min(limit as u64) as usize
    }
}

/// A map run running on this node: `UpdateMapRun` resizes its gate and changes its thresholds.
pub struct Live {
    arn: String,
    gate: Arc<Semaphore>,
    max: Mutex<usize>,
    tolerated: Mutex<Option<Tolerated>>,
    /// Iterations ended so far: succeeded, failed.
    ended: Mutex<(usize, usize)>,
}

type Tolerated = (Option<u64>, Option<f64>);

impl Live {
    pub fn register(engine: &Engine, arn: &str, gate: Arc<Semaphore>, max: usize) -> Arc<Live> {
        let live = Arc::new(Live {
            arn: arn.to_owned(),
            gate,
            max: Mutex::new(max),
            tolerated: Mutex::default(),
            ended: Mutex::default(),
        });
        engine.map_runs.lock().unwrap_or_else(|p| p.into_inner()).insert(arn.to_owned(), live.clone());
        live
    }

    /// Counts an iteration that ended.
    pub fn done(&self, failed: bool) {
        let mut ended = self.ended.lock().unwrap_or_else(|p| p.into_inner());
        if failed {
            ended.1 += 1;
        } else {
            ended.0 += 1;
        }
    }

    /// Unregisters the map run; the thresholds UpdateMapRun set, if it did.
    pub fn finish(&self, engine: &Engine) -> Option<Tolerated> {
        engine.map_runs.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.arn);
        *self.tolerated.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running map run's document with its counts as they are now (when it runs on this node).
pub fn progress(engine: &Engine, doc: &mut Value) {
    let arn = doc["mapRunArn"].as_str().unwrap_or_default();
    let Some(live) = engine.map_runs.lock().unwrap_or_else(|p| p.into_inner()).get(arn).cloned() else {
        return;
    };
    let (succeeded, failed) = *live.ended.lock().unwrap_or_else(|p| p.into_inner());
    let executions = doc["executionCounts"]["total"].as_u64().unwrap_or(0) as usize;
    for key in ["itemCounts", "executionCounts"] {
        let total = doc[key]["total"].as_u64().unwrap_or(0) as usize;
        // Batches end as a whole: the item counts follow the executions' share.
        let share = |n: usize| if key == "itemCounts" { n * total / executions.max(1) } else { n };
        let (s, f) = (share(succeeded), share(failed));
        doc[key] = counts(0, total.saturating_sub(s + f), s, f, 0);
    }
}

/// Applies an `UpdateMapRun` to the map run if it runs on this node.
pub fn update(engine: &Engine, arn: &str, max: Option<u64>, tolerated: Tolerated) {
    let Some(live) = engine.map_runs.lock().unwrap_or_else(|p| p.into_inner()).get(arn).cloned() else {
        return;
    };
    if let Some(max) = max {
        let new = concurrency(max, true);
        let mut current = live.max.lock().unwrap_or_else(|p| p.into_inner());
        if new > *current {
            live.gate.add_permits(new - *current);
        } else if new < *current {
            // Permits held by running iterations are taken back as they finish.
            let (gate, fewer) = (live.gate.clone(), (*current - new) as u32);
            tokio::spawn(async move {
                if let Ok(permits) = gate.acquire_many_owned(fewer).await {
                    permits.forget();
                }
            });
        }
        *current = new;
    }
    if tolerated.0.is_some() || tolerated.1.is_some() {
        let mut set = live.tolerated.lock().unwrap_or_else(|p| p.into_inner());
        let before = set.unwrap_or_default();
        *set = Some((tolerated.0.or(before.0), tolerated.1.or(before.1)));
    }
}

/// The limits a map run starts with (and `UpdateMapRun` changes).
pub struct Limits {
    pub max_concurrency: Option<u64>,
    pub tolerated_count: Option<u64>,
    pub tolerated_percent: Option<f64>,
}

fn counts(pending: usize, running: usize, succeeded: usize, failed: usize, aborted: usize) -> Value {
    let total = pending + running + succeeded + failed + aborted;
    json!({"pending": pending, "running": running, "succeeded": succeeded, "failed": failed, "timedOut": 0,
           "aborted": aborted, "total": total, "resultsWritten": succeeded + failed,
           "failuresNotRedrivable": 0, "pendingRedrive": 0})
}

/// The child state machine's ARN: the parent's with the Map's label.
fn child_machine(run: &Run, at: &Entered<'_>) -> String {
    let machine = run.context["StateMachine"]["Id"].as_str().unwrap_or_default();
    format!("{machine}/{}", at.state["Label"].as_str().unwrap_or(at.name))
}

/// Records a map run that starts with `items` items in `executions` child executions.
pub fn started(run: &Run, arn: &str, items: usize, executions: usize, limits: &Limits) {
    let now = run.engine.now();
    let doc = json!({
        "mapRunArn": arn, "executionArn": run.arn, "status": "RUNNING", "startDate": now,
        "maxConcurrency": limits.max_concurrency.unwrap_or(0),
        "toleratedFailurePercentage": limits.tolerated_percent.unwrap_or(0.0),
        "toleratedFailureCount": limits.tolerated_count.unwrap_or(0),
        "itemCounts": counts(0, items, 0, 0, 0),
        "executionCounts": counts(0, executions, 0, 0, 0),
        "redriveCount": 0,
    });
    let stored = run.engine.db.execute(
        "INSERT INTO map_runs (arn, execution, status, start_ms, doc) VALUES (?1, ?2, 'RUNNING', ?3, ?4)",
        &params![arn, run.arn.as_str(), now, doc.to_string()],
    );
    if let Err(e) = stored {
        eprintln!("stepfunctions: map run {arn} not recorded: {e}");
    }
}

/// Closes the map run and writes its child executions (each with a started and an ended event).
pub fn finished(
    run: &Run,
    at: &Entered<'_>,
    arn: &str,
    outcomes: &[(usize, Value, Result<Value, Failure>)],
    items: usize,
    succeeded: bool,
) {
    let engine = &run.engine;
    let now = engine.now();
    let child_machine = child_machine(run, at);
    let processor =
        at.state.get("ItemProcessor").or_else(|| at.state.get("Iterator")).cloned().unwrap_or_default();
    let (parent_machine, child_name) = child_machine.rsplit_once('/').unwrap_or((&child_machine, ""));
    let prefix = parent_machine.replacen(":stateMachine:", ":execution:", 1);
    let run_id = arn.rsplit(':').next().unwrap_or_default().to_owned();
    let failed = outcomes.iter().filter(|(_, _, r)| r.is_err()).count();
    let done = outcomes.len() - failed;
    let result = engine.db.write(|tx| {
        let row = tx.query_opt("SELECT doc FROM map_runs WHERE arn = ?1 AND status = 'RUNNING'", &params![arn])?;
        let Some(row) = row else {
            return Ok(());
        };
        let mut doc = crate::store::parse(&row.get::<String>(0)?)?;
        let start = doc["startDate"].as_i64().unwrap_or(now);
        for (index, input, result) in outcomes {
            let name = format!("{run_id}-{index}");
            let execution = format!("{prefix}/{child_name}:{name}");
            let mut child = json!({
                "executionArn": execution, "stateMachineArn": child_machine, "name": name,
                "startDate": start, "stopDate": now, "input": input.to_string(), "mapRunArn": arn,
                "redriveCount": 0,
                "machine": {"stateMachineArn": child_machine, "name": child_name, "definition": processor.to_string(),
                            "roleArn": run.context["Execution"]["RoleArn"]},
            });
            let started = json!({"timestamp": seconds(start), "type": "ExecutionStarted", "id": 1, "previousEventId": 0,
                "executionStartedEventDetails": {"input": input.to_string(), "inputDetails": {"truncated": false},
                                                 "roleArn": run.context["Execution"]["RoleArn"]}});
            let ended = match result {
                Ok(output) => {
                    child["status"] = json!("SUCCEEDED");
                    child["output"] = json!(output.to_string());
                    json!({"timestamp": seconds(now), "type": "ExecutionSucceeded", "id": 2, "previousEventId": 1,
                           "executionSucceededEventDetails": {"output": output.to_string(), "outputDetails": {"truncated": false}}})
                }
                Err(f) => {
                    child["status"] = json!("FAILED");
                    child["error"] = json!(f.error);
                    child["cause"] = json!(f.cause);
                    json!({"timestamp": seconds(now), "type": "ExecutionFailed", "id": 2, "previousEventId": 1,
                           "executionFailedEventDetails": {"error": f.error, "cause": f.cause}})
                }
            };
            tx.execute(
                "INSERT INTO executions (arn, machine, status, start_ms, doc, stop_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (arn) DO NOTHING",
                &params![execution.as_str(), arn, child["status"].as_str().unwrap_or_default(), start, child.to_string(), now],
            )?;
            for event in [started, ended] {
                tx.execute(
                    "INSERT INTO events (execution, id, doc) VALUES (?1, ?2, ?3) ON CONFLICT (execution, id) DO NOTHING",
                    &params![execution.as_str(), event["id"].as_i64().unwrap_or(0), event.to_string()],
                )?;
            }
        }
        let status = if succeeded { "SUCCEEDED" } else { "FAILED" };
        doc["status"] = json!(status);
        doc["stopDate"] = json!(now);
        let unrun = items.saturating_sub(outcomes.len());
        doc["executionCounts"] = counts(0, 0, done, failed, 0);
        let item_failed = if outcomes.len() == items { failed } else { failed.min(items) };
        doc["itemCounts"] = counts(0, 0, items.saturating_sub(item_failed + unrun), item_failed, unrun);
        tx.execute(
            "UPDATE map_runs SET status = ?2, doc = ?3 WHERE arn = ?1",
            &params![arn, status, doc.to_string()],
        )?;
        Ok::<_, nimbus_store::DbError>(())
    });
    if let Err(e) = result {
        eprintln!("stepfunctions: map run {arn} not closed: {e}");
    }
}

/// Marks an execution's running map runs aborted (it was stopped).
pub fn abort(
    db: &nimbus_store::ServiceDb,
    execution: &str,
    now: i64,
) -> Result<Vec<String>, nimbus_store::DbError> {
    db.write(|tx| {
        let rows = tx.query(
            "SELECT doc FROM map_runs WHERE execution = ?1 AND status = 'RUNNING'",
            &params![execution],
        )?;
        let mut aborted = Vec::new();
        for row in rows {
            let mut doc = crate::store::parse(&row.get::<String>(0)?)?;
            doc["status"] = json!("ABORTED");
            doc["stopDate"] = json!(now);
            let arn = doc["mapRunArn"].as_str().unwrap_or_default().to_owned();
            tx.execute(
                "UPDATE map_runs SET status = 'ABORTED', doc = ?2 WHERE arn = ?1",
                &params![arn.as_str(), doc.to_string()],
            )?;
            aborted.push(arn);
        }
        Ok::<_, nimbus_store::DbError>(aborted)
    })
}
