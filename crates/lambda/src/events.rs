//! Asynchronous invocation, durable: an `Event` invoke (or an S3 notification, a schedule …) is
//! stored before it is acknowledged, runs in the background, is retried as the function's
//! `FunctionEventInvokeConfig` says (AWS's backoff, about one minute then two, scaled by
//! `--retry-delay-scale`), waits out throttles, and ends at its destinations: `OnSuccess` /
//! `OnFailure` (an SQS queue or a function) with AWS's invocation record, or the function's
//! `DeadLetterConfig`. It is deleted only then; a crash before that runs it again on restart
//! (at least once, as on AWS).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use nimbus_api::AwsError;
use nimbus_functions::{EngineError, Invocation, InvokeResult};
use nimbus_store::{EventRow, Store};
use serde_json::{json, Value};
use tokio::sync::{mpsc, Semaphore};

use crate::Lambda;

/// Events accepted but not finished; beyond this `Event` invokes are throttled.
pub const MAX_PENDING_EVENTS: usize = 100_000;
/// Events running at once.
const EVENT_WORKERS: usize = 64;
/// AWS's defaults when the function has no event invoke config.
const DEFAULT_RETRIES: u64 = 2;
const DEFAULT_MAX_AGE_SECONDS: u64 = 21_600;
/// AWS retries a failed event after about a minute, then after about two.
const RETRY_DELAYS: [Duration; 2] = [Duration::from_secs(60), Duration::from_secs(120)];

type Pending<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, String>> + Send + 'a>>;

/// SQS as Lambda uses it: destinations and dead-letter queues send, event source mappings
/// receive and delete. Records come in the shape of a Lambda SQS event record.
pub trait Queues: Send + Sync + 'static {
    fn send<'a>(&'a self, queue_arn: &'a str, body: String) -> Pending<'a, ()>;
    fn receive<'a>(&'a self, queue_arn: &'a str, max: usize, wait: Duration) -> Pending<'a, Vec<Value>>;
    fn delete<'a>(&'a self, queue_arn: &'a str, receipt_handles: Vec<String>) -> Pending<'a, ()>;
}

pub(crate) struct EventQueue {
    store: Arc<dyn Store>,
    ready: mpsc::UnboundedSender<EventRow>,
    pending: Arc<AtomicUsize>,
}

impl EventQueue {
    /// Starts the workers; [`EventQueue::adopt`] then hands them the events a previous run left
    /// unfinished (once `lambda` can be upgraded: a worker that finds it gone drops the event).
    pub(crate) fn start(store: Arc<dyn Store>, lambda: Weak<Lambda>) -> EventQueue {
        let (ready, mut incoming) = mpsc::unbounded_channel::<EventRow>();
        let pending = Arc::new(AtomicUsize::new(0));
        let counter = pending.clone();
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let cold_starts = Arc::new(Semaphore::new(cores));
        tokio::spawn(async move {
            let slots = Arc::new(Semaphore::new(EVENT_WORKERS));
            while let Some(row) = incoming.recv().await {
                let Ok(slot) = slots.clone().acquire_owned().await else { return };
                let lambda = lambda.clone();
                let counter = counter.clone();
                let cold_starts = cold_starts.clone();
                tokio::spawn(async move {
                    run(lambda, row, &cold_starts).await;
                    counter.fetch_sub(1, Ordering::AcqRel);
                    drop(slot);
                });
            }
        });
        EventQueue { store, ready, pending }
    }

    /// Takes over the unfinished events of the given nodes (this node's own from a previous run,
    /// or a node that stopped heartbeating) and runs them here. Returns how many were adopted.
    pub(crate) fn adopt(&self, nodes: &[String]) -> usize {
        let rows = match self.store.claim_events(nodes) {
            Ok(rows) => rows,
            Err(error) => {
                eprintln!("nimbus: could not claim unfinished events: {error}");
                return 0;
            }
        };
        self.pending.fetch_add(rows.len(), Ordering::AcqRel);
        let count = rows.len();
        for row in rows {
            let _ = self.ready.send(row);
        }
        count
    }

    /// Like [`EventQueue::enqueue`], for callers outside async code (S3 notifications): stores
    /// the event before returning.
    pub(crate) fn enqueue_blocking(
        &self,
        function: &str,
        payload: Vec<u8>,
        request_id: &str,
    ) -> Result<(), String> {
        if self.pending.fetch_add(1, Ordering::AcqRel) >= MAX_PENDING_EVENTS {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            return Err("too many pending events".into());
        }
        let now = now_ms();
        let row = EventRow {
            id: request_id.to_owned(),
            function: function.to_owned(),
            payload,
            attempts: 0,
            enqueued_ms: now,
            next_attempt_ms: now,
        };
        if let Err(error) = self.store.enqueue_events(std::slice::from_ref(&row)) {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            return Err(error.to_string());
        }
        let _ = self.ready.send(row);
        Ok(())
    }

    /// Stores an event durably, then queues it. `function` is `name` or `name:qualifier`.
    pub(crate) async fn enqueue(
        &self,
        function: &str,
        payload: Bytes,
        request_id: &str,
    ) -> Result<(), AwsError> {
        if self.pending.fetch_add(1, Ordering::AcqRel) >= MAX_PENDING_EVENTS {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            return Err(AwsError::too_many_requests("ConcurrentInvocationLimitExceeded"));
        }
        let now = now_ms();
        let row = EventRow {
            id: request_id.to_owned(),
            function: function.to_owned(),
            payload: payload.to_vec(),
            attempts: 0,
            enqueued_ms: now,
            next_attempt_ms: now,
        };
        let store = self.store.clone();
        let stored = row.clone();
        let saved = tokio::task::spawn_blocking(move || store.enqueue_events(&[stored])).await;
        if !matches!(saved, Ok(Ok(()))) {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            return Err(AwsError::service("could not store the event"));
        }
        let _ = self.ready.send(row);
        Ok(())
    }
}

/// Runs one event to its end: success, or retries exhausted, or too old. `cold_starts` bounds
/// the environments events start at once (one per core): a backlog (after a restart, say) would
/// otherwise start dozens together, each so slow on a few cores that it overran its init timeout
/// and waited out a retry delay; this way the first few start, and the rest reuse them.
async fn run(lambda: Weak<Lambda>, mut row: EventRow, cold_starts: &Semaphore) {
    let mut throttle_backoff = Duration::from_millis(50);
    loop {
        let wait = row.next_attempt_ms - now_ms();
        if wait > 0 {
            tokio::time::sleep(Duration::from_millis(wait as u64)).await;
        }
        let Some(lambda) = lambda.upgrade() else { return };
        let Ok(target) = lambda.route_invocation(&row.function, None) else {
            // The function is gone: nothing can run the event any more.
            lambda.finish(&row.id).await;
            return;
        };
        let config = target
            .function
            .resource("invoke-config", target.qualifier.as_deref().unwrap_or("$LATEST"))
            .cloned()
            .unwrap_or(Value::Null);
        let max_age = config["MaximumEventAgeInSeconds"].as_u64().unwrap_or(DEFAULT_MAX_AGE_SECONDS);
        let retries = config["MaximumRetryAttempts"].as_u64().unwrap_or(DEFAULT_RETRIES);
        let age_ms = now_ms() - row.enqueued_ms;
        if age_ms > (max_age * 1000) as i64 {
            lambda.deliver_failure(&target, &row, &config, None, "EventAgeExceeded").await;
            return;
        }
        let arn = lambda.function_arn(target.function.name());
        let invocation = Invocation {
            request_id: row.id.clone(),
            payload: Bytes::from(row.payload.clone()),
            invoked_arn: match &target.qualifier {
                Some(qualifier) => format!("{arn}:{qualifier}"),
                None => arn,
            },
            client_context: None,
            tail_log: false,
        };
        let warm = lambda.engine.function_stats(target.function.name()).warm > 0;
        let starting = if warm { None } else { cold_starts.acquire().await.ok() };
        let outcome = lambda.engine.invoke(&target.entry.spec, &invocation).await;
        drop(starting);
        match outcome {
            Err(EngineError::Throttled { .. }) => {
                // Throttled events wait and retry without spending an attempt.
                drop(lambda);
                tokio::time::sleep(throttle_backoff).await;
                throttle_backoff = (throttle_backoff * 2).min(Duration::from_secs(5));
            }
            Err(EngineError::ShuttingDown) => return, // stays stored; runs after the restart
            Err(EngineError::Internal(why)) => {
                eprintln!("nimbus: async invoke {} of {} failed inside nimbus: {why}", row.id, row.function);
                row.attempts += 1;
                if !lambda.retry_later(&mut row, retries).await {
                    lambda.deliver_failure(&target, &row, &config, None, "RetriesExhausted").await;
                    return;
                }
            }
            Ok(result) if result.function_error.is_none() => {
                row.attempts += 1;
                lambda.deliver_success(&target, &row, &config, &result).await;
                return;
            }
            Ok(result) => {
                row.attempts += 1;
                if !lambda.retry_later(&mut row, retries).await {
                    lambda.deliver_failure(&target, &row, &config, Some(&result), "RetriesExhausted").await;
                    return;
                }
            }
        }
    }
}

impl Lambda {
    /// Schedules the next attempt durably; false when no retry is left.
    async fn retry_later(&self, row: &mut EventRow, retries: u64) -> bool {
        if u64::from(row.attempts) > retries {
            return false;
        }
        let delay = RETRY_DELAYS[(row.attempts as usize - 1).min(RETRY_DELAYS.len() - 1)];
        let delay = delay.mul_f64(self.retry_delay_scale);
        row.next_attempt_ms = now_ms() + delay.as_millis() as i64;
        let (store, id, attempts, next) =
            (self.store.clone(), row.id.clone(), row.attempts, row.next_attempt_ms);
        let _ = tokio::task::spawn_blocking(move || store.reschedule_event(&id, attempts, next)).await;
        true
    }

    async fn deliver_success(
        &self,
        target: &crate::resolve::Target,
        row: &EventRow,
        config: &Value,
        result: &InvokeResult,
    ) {
        if let Some(destination) = config["DestinationConfig"]["OnSuccess"]["Destination"].as_str() {
            let record = self.record(target, row, "Success", Some(result));
            self.send_to(destination, record).await;
        }
        self.finish(&row.id).await;
    }

    async fn deliver_failure(
        &self,
        target: &crate::resolve::Target,
        row: &EventRow,
        config: &Value,
        result: Option<&InvokeResult>,
        condition: &str,
    ) {
        if let Some(destination) = config["DestinationConfig"]["OnFailure"]["Destination"].as_str() {
            let record = self.record(target, row, condition, result);
            self.send_to(destination, record).await;
        } else if let Some(queue) = target
            .entry
            .stored
            .configuration
            .dead_letter_config
            .as_ref()
            .and_then(|d| d["TargetArn"].as_str())
        {
            // A dead-letter queue receives the event itself.
            self.send_to(queue, String::from_utf8_lossy(&row.payload).into_owned()).await;
        } else {
            eprintln!("nimbus: async invoke {} of {} dropped: {condition}", row.id, row.function);
        }
        self.finish(&row.id).await;
    }

    /// AWS's invocation record for destinations.
    fn record(
        &self,
        target: &crate::resolve::Target,
        row: &EventRow,
        condition: &str,
        result: Option<&InvokeResult>,
    ) -> String {
        let version = &target.entry.stored.configuration.version;
        let qualifier = target.qualifier.clone().unwrap_or_else(|| version.clone());
        let mut record = json!({
            "version": "1.0",
            "timestamp": nimbus_functions::logs::timestamp(),
            "requestContext": {
                "requestId": row.id,
                "functionArn": format!("{}:{qualifier}", self.function_arn(target.function.name())),
                "condition": condition,
                "approximateInvokeCount": row.attempts,
            },
            "requestPayload": serde_json::from_slice::<Value>(&row.payload).unwrap_or(Value::Null),
        });
        if let Some(result) = result {
            let mut context = json!({ "statusCode": 200, "executedVersion": version });
            if let Some(error) = result.function_error {
                context["functionError"] = json!(error);
            }
            record["responseContext"] = context;
            record["responsePayload"] = serde_json::from_slice::<Value>(&result.payload)
                .unwrap_or_else(|_| json!(String::from_utf8_lossy(&result.payload)));
        }
        record.to_string()
    }

    /// A destination: a function (invoked asynchronously), an SQS queue, or what the binary
    /// wired as [`crate::Destinations`] (SNS topics, event buses).
    pub(crate) async fn send_to(&self, destination: &str, body: String) {
        let outcome = if destination.contains(":lambda:") {
            let request_id = nimbus_functions::new_request_id();
            self.events.enqueue(destination, Bytes::from(body), &request_id).await.map_err(|e| e.to_string())
        } else if destination.contains(":sqs:") {
            match &self.queues {
                Some(queues) => queues.send(destination, body).await,
                None => Err("nimbus serves no SQS".into()),
            }
        } else if let Some(destinations) = self.destinations.get() {
            tokio::task::block_in_place(|| destinations.deliver(destination, &body))
        } else {
            Err("unsupported destination type".into())
        };
        if let Err(why) = outcome {
            eprintln!("nimbus: could not deliver to {destination}: {why}");
        }
    }

    async fn finish(&self, id: &str) {
        let (store, id) = (self.store.clone(), id.to_owned());
        let _ = tokio::task::spawn_blocking(move || store.delete_event(&id)).await;
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
