//! StartMessageMoveTask, ListMessageMoveTasks, CancelMessageMoveTask: redrive from a
//! dead-letter queue back to the queues its messages came from (or to a chosen destination).
//! Tasks live in memory: a restart, a close or a takeover by another node forgets finished tasks
//! and stops running ones (the messages not yet moved stay, durably, in the dead-letter queue).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Value};

use crate::engine::state;
use crate::error::{Result, SqsError};
use crate::protocol::input::{int_in, opt_string, string};
use crate::Sqs;

/// Messages moved per step when no rate is given.
const STEP: usize = 100;

#[derive(Default)]
pub struct Tasks(Mutex<Vec<Arc<Task>>>);

pub struct Task {
    handle: String,
    source_arn: String,
    destination_arn: Option<String>,
    rate: Option<i64>,
    started_ms: i64,
    to_move: u64,
    moved: AtomicU64,
    cancelled: AtomicBool,
    status: Mutex<&'static str>,
}

impl Task {
    fn status(&self) -> &'static str {
        *self.status.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn set_status(&self, status: &'static str) {
        *self.status.lock().unwrap_or_else(|p| p.into_inner()) = status;
    }
}

impl Tasks {
    fn all(&self) -> Vec<Arc<Task>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

pub fn start(sqs: &Sqs, input: &Value) -> Result<Value> {
    let source_arn = string(input, "SourceArn")?.to_owned();
    let destination_arn = opt_string(input, "DestinationArn")?.map(str::to_owned);
    let rate = int_in(input, "MaxNumberOfMessagesPerSecond", 1, 500, "Must be between 1 and 500.")?;
    let to_move = {
        let state = sqs.lock();
        let source = state.by_arn(&source_arn).ok_or_else(SqsError::queue_missing)?;
        let is_dlq = state
            .queues
            .values()
            .any(|q| q.config.redrive.as_ref().is_some_and(|r| r.target_arn == source_arn));
        if !is_dlq {
            return Err(SqsError::invalid("Source queue must be configured as a Dead Letter Queue."));
        }
        if let Some(destination) = &destination_arn {
            state.by_arn(destination).ok_or_else(SqsError::queue_missing)?;
        }
        source.messages.len() as u64
    };
    let running = sqs.moves.all().iter().any(|t| t.source_arn == source_arn && t.status() == "RUNNING");
    if running {
        return Err(SqsError::invalid(
            "There is already a task running. Only one active task is allowed for a source queue arn at a given time.",
        ));
    }
    let id = uuid::Uuid::new_v4().hyphenated().to_string();
    let handle = B64.encode(json!({ "taskId": id, "sourceArn": source_arn }).to_string());
    let task = Arc::new(Task {
        handle: handle.clone(),
        source_arn,
        destination_arn,
        rate,
        started_ms: sqs.now(),
        to_move,
        moved: AtomicU64::new(0),
        cancelled: AtomicBool::new(false),
        status: Mutex::new("RUNNING"),
    });
    sqs.moves.0.lock().unwrap_or_else(|p| p.into_inner()).push(task.clone());
    if let Some(me) = sqs.me.upgrade() {
        sqs.spawn(async move { run(&me, &task).await });
    }
    Ok(json!({ "TaskHandle": handle }))
}

async fn run(sqs: &Sqs, task: &Task) {
    let step = task.rate.map_or(STEP, |r| r as usize);
    while task.moved.load(Ordering::SeqCst) < task.to_move && !task.cancelled.load(Ordering::SeqCst) {
        let left = (task.to_move - task.moved.load(Ordering::SeqCst)) as usize;
        match move_some(sqs, task, step.min(left)).await {
            Ok(0) => break,
            Ok(n) => task.moved.fetch_add(n as u64, Ordering::SeqCst),
            Err(_) => {
                task.set_status("FAILED");
                return;
            }
        };
        if task.rate.is_some() {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    task.set_status(if task.cancelled.load(Ordering::SeqCst) { "CANCELLED" } else { "COMPLETED" });
}

/// Moves up to `count` receivable messages of the task's source queue; returns how many.
async fn move_some(sqs: &Sqs, task: &Task, count: usize) -> Result<usize> {
    let now = sqs.now();
    let mut writes = Vec::new();
    let mut moved = 0;
    {
        let mut state = sqs.lock();
        let source = state.by_arn_mut(&task.source_arn).ok_or_else(SqsError::queue_missing)?;
        let seqs: Vec<u64> =
            source.by_visibility.range(..(now + 1, 0)).take(count).map(|(_, seq)| *seq).collect();
        let messages: Vec<_> = seqs.into_iter().filter_map(|seq| source.remove(seq)).collect();
        for message in messages {
            writes.push(crate::engine::store::Write::Delete(message.seq));
            let target = task.destination_arn.clone().or_else(|| message.sent.dead_letter_source.clone());
            let seq = state.next_seq;
            let queue = match target.as_deref().and_then(|arn| state.by_arn_mut(arn)) {
                Some(queue) => queue,
                // Nowhere to go: back into the source, and the task ends.
                None => state.by_arn_mut(&task.source_arn).ok_or_else(SqsError::queue_missing)?,
            };
            let mut sent = message.sent;
            sent.dead_letter_source = None;
            sent.sent_ms = now;
            state::enqueue(queue, seq, sent, 0, &mut writes);
            state.next_seq += 1;
            moved += 1;
        }
    }
    sqs.store.write(writes).await?;
    Ok(moved)
}

fn entry(task: &Task) -> Value {
    let status = task.status();
    let mut out = json!({
        "Status": status,
        "SourceArn": task.source_arn,
        "ApproximateNumberOfMessagesMoved": task.moved.load(Ordering::SeqCst),
        "ApproximateNumberOfMessagesToMove": task.to_move,
        "StartedTimestamp": task.started_ms,
    });
    if status == "RUNNING" {
        out["TaskHandle"] = task.handle.clone().into();
    }
    if let Some(destination) = &task.destination_arn {
        out["DestinationArn"] = destination.clone().into();
    }
    if let Some(rate) = task.rate {
        out["MaxNumberOfMessagesPerSecond"] = rate.into();
    }
    out
}

pub fn list(sqs: &Sqs, input: &Value) -> Result<Value> {
    let source_arn = string(input, "SourceArn")?;
    let max = int_in(input, "MaxResults", 1, 10, "Must be between 1 and 10.")?.unwrap_or(1) as usize;
    sqs.lock().by_arn(source_arn).ok_or_else(SqsError::queue_missing)?;
    let tasks = sqs.moves.all();
    let results: Vec<Value> =
        tasks.iter().rev().filter(|t| t.source_arn == source_arn).take(max).map(|t| entry(t)).collect();
    Ok(json!({ "Results": results }))
}

pub fn cancel(sqs: &Sqs, input: &Value) -> Result<Value> {
    let handle = string(input, "TaskHandle")?;
    let tasks = sqs.moves.all();
    let task = tasks
        .iter()
        .find(|t| t.handle == handle && t.status() == "RUNNING")
        .ok_or_else(|| SqsError::resource_not_found("Task does not exist."))?;
    task.cancelled.store(true, Ordering::SeqCst);
    task.set_status("CANCELLING");
    Ok(json!({ "ApproximateNumberOfMessagesMoved": task.moved.load(Ordering::SeqCst) }))
}
