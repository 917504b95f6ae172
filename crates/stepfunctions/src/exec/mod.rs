//! The interpreter: an execution is a task that walks its definition state by state, records
//! each transition as a history event (durably for STANDARD machines, with a checkpoint of the
//! top-level state and its input), and finishes with the execution's status.

mod activity;
mod flow;
mod history;
mod journal;
mod map;
pub mod map_runs;
mod query;
mod reader;
pub mod resume;
mod start;
mod states;
mod task;
mod tokens;

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use nimbus_api::clock::Clock;
use nimbus_api::Identity;
use nimbus_store::{Cluster, ServiceDb};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};

pub use query::caught as jsonata_caught;
pub use start::Start;
pub use states::run_one;
pub use tokens::{answer as answer_token, TokenSignal};

use crate::asl::Failure;
use crate::{BatchJobs, Options, Services};

/// An execution running on this node: its stop switch and its run.
type Running = (watch::Sender<bool>, std::sync::Weak<Run>);

pub struct Engine {
    pub db: ServiceDb,
    pub clock: Arc<dyn Clock>,
    pub services: Arc<dyn Services>,
    pub batch: Option<Arc<dyn BatchJobs>>,
    pub identity: Identity,
    pub cluster: Option<Arc<Cluster>>,
    pub node: String,
    /// Executions running on this node: set to true to stop one.
    running: Mutex<HashMap<String, Running>>,
    /// Woken when an activity task is queued: workers' GetActivityTask polls look again.
    pub activity_queued: tokio::sync::Notify,
    /// Tasks waiting for a token on this node.
    waiters: Mutex<HashMap<String, mpsc::Sender<TokenSignal>>>,
    /// Distributed Map runs running on this node (for UpdateMapRun).
    pub map_runs: Mutex<HashMap<String, Arc<map_runs::Live>>>,
}

impl Engine {
    pub fn new(db: ServiceDb, options: Options) -> Arc<Engine> {
        Arc::new(Engine {
            db,
            clock: options.clock,
            services: options.services,
            batch: options.batch,
            identity: options.identity,
            cluster: options.cluster,
            node: options.node,
            running: Mutex::default(),
            activity_queued: tokio::sync::Notify::new(),
            waiters: Mutex::default(),
            map_runs: Mutex::default(),
        })
    }

    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Stops an execution running on this node (a no-op elsewhere: its runner sees the status).
    pub fn stop_local(&self, arn: &str) {
        if let Some((stop, _)) = self.running.lock().unwrap_or_else(|p| p.into_inner()).get(arn) {
            stop.send_replace(true);
        }
    }

    /// Drops a run that is not an execution (TestState) from the running ones.
    pub fn forget(&self, arn: &str) {
        self.running.lock().unwrap_or_else(|p| p.into_inner()).remove(arn);
    }

    /// The run of an execution running on this node.
    pub fn local_run(&self, arn: &str) -> Option<Arc<Run>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner()).get(arn).and_then(|(_, run)| run.upgrade())
    }

    pub fn is_running_here(&self, arn: &str) -> bool {
        self.running.lock().unwrap_or_else(|p| p.into_inner()).contains_key(arn)
    }
}

/// Seconds since the epoch as AWS's JSON timestamps carry them.
pub fn seconds(ms: i64) -> Value {
    json!(ms as f64 / 1000.0)
}

/// Logging configuration of an execution: where its events go and which.
#[derive(Clone, Default)]
pub struct Logging {
    pub level: String,
    pub group: Option<String>,
    pub include_data: bool,
}

impl Logging {
    pub fn of(config: &Value) -> Logging {
        let group = config["destinations"][0]["cloudWatchLogsLogGroup"]["logGroupArn"]
            .as_str()
            .and_then(|arn| arn.split(":log-group:").nth(1))
            .map(|name| name.trim_end_matches(":*").to_owned());
        Logging {
            level: config["level"].as_str().unwrap_or("OFF").to_owned(),
            group,
            include_data: config["includeExecutionData"].as_bool().unwrap_or(false),
        }
    }

    fn wants(&self, kind: &str) -> bool {
        match self.level.as_str() {
            "ALL" => true,
            "ERROR" => kind.ends_with("Failed") || kind.ends_with("TimedOut") || kind.ends_with("Aborted"),
            "FATAL" => matches!(kind, "ExecutionFailed" | "ExecutionTimedOut" | "ExecutionAborted"),
            _ => false,
        }
    }
}

/// One execution being run.
pub struct Run {
    pub engine: Arc<Engine>,
    pub arn: String,
    pub region: String,
    pub durable: bool,
    pub definition: Arc<Value>,
    /// The context object's `Execution` and `StateMachine`.
    pub context: Value,
    next_id: AtomicI64,
    logging: Logging,
    logger: Option<mpsc::Sender<Value>>,
    journal: journal::Journal,
    pub stop: watch::Receiver<bool>,
    /// The type of the top-level state running now (for its `…StateAborted` event).
    pub current: Mutex<Option<String>>,
}

/// Where a thread of states records its events from: the id of its last event.
pub type Cursor = i64;

/// A state's outcome: its output and the next state (None: the machine or branch ends).
pub type Step = Result<(Value, Option<String>), Failure>;

impl Run {
    /// Records event `kind` after `cursor`'s event; moves the cursor to it and returns its id.
    pub fn record(&self, cursor: &mut Cursor, kind: &str, details: Option<(&str, Value)>) -> i64 {
        self.record_with(cursor, kind, details, None)
    }

    /// As [`Run::record`], storing the execution's checkpoint in the same transaction.
    pub fn record_with(
        &self,
        cursor: &mut Cursor,
        kind: &str,
        details: Option<(&str, Value)>,
        checkpoint: Option<&Value>,
    ) -> i64 {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst) + 1;
        let mut event = json!({
            "timestamp": seconds(self.engine.now()),
            "type": kind,
            "id": id,
            "previousEventId": *cursor,
        });
        if let Some((key, value)) = details {
            event[key] = value;
        }
        *cursor = id;
        if self.durable {
            self.journal.add(&self.engine.db, &self.arn, id, kind, event.to_string(), checkpoint);
        }
        if let Some(logger) = self.logger.as_ref().filter(|_| self.logging.wants(kind)) {
            if logger.try_send(history::record(self, &event)).is_err() {
                eprintln!(
                    "nimbus: stepfunctions: execution log of {} is behind; a record was dropped",
                    self.arn
                );
            }
        }
        id
    }

    /// Updates the checkpoint alone (a Wait's deadline, a task's token).
    pub fn checkpoint(&self, checkpoint: &Value) {
        if self.durable {
            self.journal.checkpoint(&self.engine.db, &self.arn, checkpoint);
        }
    }

    /// Commits the events waiting (before the execution sleeps).
    pub fn commit(&self) {
        if self.durable {
            self.journal.commit(&self.engine.db, &self.arn);
        }
    }

    /// Records the execution's final event with its final document (see [`Journal::close`]);
    /// false when it was closed already (stopped meanwhile).
    pub fn close(&self, cursor: &mut Cursor, doc: &Value, kind: &str, details: (&str, Value)) -> bool {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst) + 1;
        let mut event = json!({
            "timestamp": seconds(self.engine.now()),
            "type": kind,
            "id": id,
            "previousEventId": *cursor,
        });
        event[details.0] = details.1;
        *cursor = id;
        if self.durable && !self.journal.close(&self.engine.db, doc, (id, event.to_string())) {
            return false;
        }
        if let Some(logger) = self.logger.as_ref().filter(|_| self.logging.wants(kind)) {
            let _ = logger.try_send(history::record(self, &event));
        }
        true
    }

    /// Sends an event recorded elsewhere to the execution's log, when its level wants it.
    pub fn log(&self, event: &Value) {
        let kind = event["type"].as_str().unwrap_or_default();
        if let Some(logger) = self.logger.as_ref().filter(|_| self.logging.wants(kind)) {
            let _ = logger.try_send(history::record(self, event));
        }
    }

    /// Whether events are kept (STANDARD) or logged; an EXPRESS execution without logging
    /// needs none.
    pub fn keeps_events(&self) -> bool {
        self.durable || self.logger.is_some()
    }

    /// The id of the last event recorded.
    pub fn last_event(&self) -> i64 {
        self.next_id.load(Ordering::SeqCst)
    }

    /// The context object for a state entered now.
    pub fn context_for(&self, state: &str, entered_ms: i64, retry: u32, extra: &Value) -> Value {
        let mut context = self.context.clone();
        context["State"] = json!({
            "Name": state,
            "EnteredTime": history::iso(entered_ms),
            "RetryCount": retry,
        });
        if let Value::Object(extra) = extra {
            for (key, value) in extra {
                context[key] = value.clone();
            }
        }
        context
    }
}

#[cfg(test)]
mod tests;
