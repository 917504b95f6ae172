//! Starting executions (by the API, by `states:startExecution`, and again after a restart)
//! and closing them with their final status and event.

use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nimbus_api::AwsError;
use nimbus_store::params;
use serde_json::{json, Value};
use tokio::sync::{oneshot, watch};

use super::states::{run_machine, Scope};
use super::{history, seconds, Engine, Logging, Run};
use crate::asl::Failure;

/// What an execution starts from.
pub struct Start {
    /// The machine's document (as DescribeStateMachine answers it, with `definition`).
    pub machine: Value,
    /// The ARN the caller named (a version's or alias's, or the machine's).
    pub machine_arn: String,
    pub name: String,
    pub input: Value,
    pub region: String,
}

pub struct Started {
    pub arn: String,
    pub start_ms: i64,
    /// The execution's final document, when it ends (None for an execution already running).
    pub done: Option<oneshot::Receiver<Value>>,
}

fn db_error(error: nimbus_store::DbError) -> AwsError {
    AwsError::new(500, "InternalFailure", error.to_string())
}

impl Engine {
    pub fn start(self: &Arc<Self>, start: Start) -> Result<Started, AwsError> {
        let machine = &start.machine;
        let express = machine["type"] == "EXPRESS";
        let machine_name = machine["name"].as_str().unwrap_or_default();
        let account = &self.identity.account;
        let arn = if express {
            format!(
                "arn:aws:states:{}:{account}:express:{machine_name}:{}:{}",
                start.region,
                start.name,
                uuid::Uuid::new_v4()
            )
        } else {
            format!("arn:aws:states:{}:{account}:execution:{machine_name}:{}", start.region, start.name)
        };
        let now = self.now();
        let input_text = start.input.to_string();
        let mut doc = json!({
            "executionArn": arn,
            "stateMachineArn": machine["stateMachineArn"],
            "name": start.name,
            "status": "RUNNING",
            "startDate": now,
            "input": input_text,
            "redriveCount": 0,
            "machine": machine,
        });
        if start.machine_arn != machine["stateMachineArn"].as_str().unwrap_or_default() {
            let key = if start.machine_arn.rsplit(':').next().is_some_and(|q| q.parse::<u64>().is_ok()) {
                "stateMachineVersionArn"
            } else {
                "stateMachineAliasArn"
            };
            doc[key] = json!(start.machine_arn);
        }
        if !express {
            if let Some(existing) = crate::store::execution(&self.db, &arn).map_err(db_error)? {
                if existing["status"] == "RUNNING" && existing["input"] == json!(input_text) {
                    let start_ms = existing["startDate"].as_i64().unwrap_or(now);
                    return Ok(Started { arn, start_ms, done: None });
                }
                return Err(AwsError::new(
                    400,
                    "ExecutionAlreadyExists",
                    format!("Execution Already Exists: '{arn}'"),
                ));
            }
        }
        let details = json!({
            "input": input_text,
            "inputDetails": {"truncated": false},
            "roleArn": machine["roleArn"],
            "stateMachineArn": doc
                .get("stateMachineVersionArn")
                .or(doc.get("stateMachineAliasArn"))
                .unwrap_or(&machine["stateMachineArn"]),
        });
        let event = json!({
            "timestamp": seconds(now), "type": "ExecutionStarted", "id": 1, "previousEventId": 0,
            "executionStartedEventDetails": details,
        });
        if !express {
            // The execution and its first event in one transaction, committed before the answer.
            let machine_arn = machine["stateMachineArn"].as_str().unwrap_or_default();
            let inserted = self.db.write(|tx| {
                let inserted = tx.execute(
                    "INSERT INTO executions (arn, machine, status, start_ms, doc, node)
                     VALUES (?1, ?2, 'RUNNING', ?3, ?4, ?5) ON CONFLICT (arn) DO NOTHING",
                    &params![arn.as_str(), machine_arn, now, doc.to_string(), self.node.as_str()],
                )?;
                if inserted == 1 {
                    tx.execute(
                        "INSERT INTO events (execution, id, doc) VALUES (?1, 1, ?2)",
                        &params![arn.as_str(), event.to_string()],
                    )?;
                }
                Ok::<_, nimbus_store::DbError>(inserted)
            });
            if inserted.map_err(db_error)? == 0 {
                return Err(AwsError::new(
                    400,
                    "ExecutionAlreadyExists",
                    format!("Execution Already Exists: '{arn}'"),
                ));
            }
        }
        let run = self.new_run(&doc, !express, 1);
        run.0.log(&event);
        let (sender, done) = oneshot::channel();
        let (run, stop) = run;
        tokio::spawn(drive(run, stop, doc, start.input, None, sender));
        Ok(Started { arn, start_ms: now, done: Some(done) })
    }

    /// A run of the execution `doc`, its events numbered after `last_event`.
    pub fn new_run(
        self: &Arc<Self>,
        doc: &Value,
        durable: bool,
        last_event: i64,
    ) -> (Arc<Run>, watch::Sender<bool>) {
        let machine = &doc["machine"];
        let mut definition: Value =
            serde_json::from_str(machine["definition"].as_str().unwrap_or("{}")).unwrap_or_default();
        crate::asl::jsonata::annotate(&mut definition);
        let arn = doc["executionArn"].as_str().unwrap_or_default().to_owned();
        let region = arn.split(':').nth(3).unwrap_or(&self.identity.region).to_owned();
        let start_ms = doc["startDate"].as_i64().unwrap_or(0);
        let context = json!({
            "Execution": {
                "Id": arn,
                "Input": serde_json::from_str::<Value>(doc["input"].as_str().unwrap_or("{}")).unwrap_or_default(),
                "Name": doc["name"],
                "RoleArn": machine["roleArn"],
                "StartTime": history::iso(start_ms),
                "RedriveCount": doc["redriveCount"],
            },
            "StateMachine": {"Id": machine["stateMachineArn"], "Name": machine["name"]},
        });
        let (stop_sender, stop) = watch::channel(false);
        let logging = Logging::of(&machine["loggingConfiguration"]);
        let logger = logging.group.clone().filter(|_| logging.level != "OFF").map(|group| {
            let stream = format!(
                "states/{}/{}",
                machine["name"].as_str().unwrap_or_default(),
                uuid::Uuid::new_v4().simple()
            );
            history::logger(self.services.clone(), region.clone(), group, stream)
        });
        let run = Arc::new(Run {
            engine: self.clone(),
            arn,
            region,
            durable,
            definition: Arc::new(definition),
            context,
            next_id: AtomicI64::new(last_event),
            logging,
            logger,
            journal: Default::default(),
            stop,
            current: Mutex::default(),
        });
        let entry = (stop_sender.clone(), Arc::downgrade(&run));
        self.running.lock().unwrap_or_else(|p| p.into_inner()).insert(run.arn.clone(), entry);
        (run, stop_sender)
    }
}

/// How long an EXPRESS execution may run.
const EXPRESS_SECONDS: i64 = 300;

enum Ending {
    Done(Result<Value, Failure>),
    Aborted,
    TimedOut,
}

/// Runs an execution to its end and closes it.
pub async fn drive(
    run: Arc<Run>,
    _stop: watch::Sender<bool>,
    mut doc: Value,
    input: Value,
    resume: Option<Value>,
    done: oneshot::Sender<Value>,
) {
    let engine = run.engine.clone();
    let mut cursor = run.next_id.load(std::sync::atomic::Ordering::SeqCst);
    // An EXPRESS execution runs five minutes at most, as on AWS.
    let most = if run.durable { None } else { Some(EXPRESS_SECONDS) };
    let timeout = match (run.definition["TimeoutSeconds"].as_i64(), most) {
        (Some(t), Some(m)) => Some(t.min(m)),
        (t, m) => t.or(m),
    };
    let deadline =
        timeout.map(|t| doc["startDate"].as_i64().unwrap_or(0).saturating_add(t.saturating_mul(1000)));
    let mut stop = run.stop.clone();
    // Variables assigned before the checkpoint come back with it.
    let variables = resume.as_ref().and_then(|c| c["variables"].as_object().cloned()).unwrap_or_default();
    let ending = {
        let work = run_machine(
            &run,
            run.definition.clone(),
            input,
            &mut cursor,
            Scope::new(true, json!({}), variables),
            resume,
        );
        let timer = async {
            match deadline {
                Some(at) => nimbus_api::clock::sleep_until(engine.clock.as_ref(), at).await,
                None => std::future::pending().await,
            }
        };
        let stopped_elsewhere = async {
            // Another node's StopExecution shows in the database only.
            if engine.cluster.is_none() || !run.durable {
                return std::future::pending().await;
            }
            loop {
                tokio::time::sleep(Duration::from_secs(2)).await;
                let status = crate::store::execution(&engine.db, &run.arn).ok().flatten();
                if status.is_some_and(|d| d["status"] != "RUNNING") {
                    return;
                }
            }
        };
        tokio::select! {
            result = work => Ending::Done(result),
            _ = stop.wait_for(|s| *s) => Ending::Aborted,
            _ = stopped_elsewhere => Ending::Aborted,
            _ = timer => Ending::TimedOut,
        }
    };
    let now = engine.now();
    doc["stopDate"] = json!(now);
    let (event, key, details) = match ending {
        Ending::Done(Ok(output)) => {
            doc["status"] = json!("SUCCEEDED");
            doc["output"] = json!(output.to_string());
            let details = json!({"output": output.to_string(), "outputDetails": {"truncated": false}});
            ("ExecutionSucceeded", "executionSucceededEventDetails", details)
        }
        Ending::Done(Err(failure)) => {
            doc["status"] = json!("FAILED");
            doc["error"] = json!(failure.error);
            doc["cause"] = json!(failure.cause);
            (
                "ExecutionFailed",
                "executionFailedEventDetails",
                json!({"error": failure.error, "cause": failure.cause}),
            )
        }
        Ending::TimedOut => {
            doc["status"] = json!("TIMED_OUT");
            doc["error"] = json!("States.Timeout");
            let details = json!({"error": "States.Timeout", "cause": "The execution timed out"});
            ("ExecutionTimedOut", "executionTimedOutEventDetails", details)
        }
        Ending::Aborted => ("", "", Value::Null),
    };
    if !event.is_empty() {
        run.close(&mut cursor, &doc, event, (key, details));
    }
    engine.running.lock().unwrap_or_else(|p| p.into_inner()).remove(&run.arn);
    if run.durable {
        super::tokens::close(&engine, &run.arn);
        doc = crate::store::execution(&engine.db, &run.arn).ok().flatten().unwrap_or(doc);
    } else if doc["status"] == "RUNNING" {
        doc["status"] = json!("ABORTED");
    }
    let _ = done.send(doc);
}

/// `states:startExecution` (and `.sync`, `.sync:2`) from a Task.
pub async fn nested(run: &Arc<Run>, params: Value, pattern: &str) -> Result<Value, Failure> {
    let engine = &run.engine;
    let failed = |e: AwsError| Failure::new(format!("StepFunctions.{}", e.code), e.message.clone());
    let machine_arn = params["StateMachineArn"].as_str().unwrap_or_default().to_owned();
    let (machine, qualified) = crate::api::resolve_machine(engine, &machine_arn).map_err(failed)?;
    let input = match params.get("Input") {
        Some(Value::String(text)) => serde_json::from_str(text).unwrap_or(Value::String(text.clone())),
        Some(value) => value.clone(),
        None => json!({}),
    };
    let name = params["Name"].as_str().map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    let start = Start { machine, machine_arn: qualified, name, input, region: run.region.clone() };
    let started = engine.start(start).map_err(failed)?;
    if !pattern.starts_with("sync") {
        return Ok(json!({"ExecutionArn": started.arn, "StartDate": seconds(started.start_ms)}));
    }
    let Some(done) = started.done else {
        return Err(Failure::new("StepFunctions.ExecutionAlreadyExists", started.arn));
    };
    let doc = done.await.map_err(|_| Failure::runtime("The child execution stopped"))?;
    let mut described = crate::api::pascal_keys(crate::api::describe_execution(&doc));
    if pattern == "sync:2" {
        for key in ["Input", "Output"] {
            if let Some(text) = described.get(key).and_then(Value::as_str).map(str::to_owned) {
                described[key] = serde_json::from_str(&text).unwrap_or(Value::String(text));
            }
        }
    }
    match doc["status"].as_str() {
        Some("SUCCEEDED") => Ok(described),
        _ => Err(Failure::new("States.TaskFailed", described.to_string())),
    }
}
