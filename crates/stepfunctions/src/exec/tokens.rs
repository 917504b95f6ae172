//! Task tokens for `.waitForTaskToken`: each is a row (durable, so that a restart keeps
//! waiting and any node accepts SendTask*), and a channel that wakes the waiting task here.

use std::sync::Arc;
use std::time::Duration;

use nimbus_api::AwsError;
use nimbus_store::params;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::{Engine, Run};
use crate::asl::Failure;

#[derive(Debug, Clone, Copy)]
pub enum TokenSignal {
    Heartbeat,
    Done,
}

/// Makes the token's row (before the task is sent, so that an immediate answer finds it).
pub fn register(run: &Run, token: &str) {
    let _ = run.engine.db.execute(
        "INSERT INTO tokens (token, execution, heartbeat_ms) VALUES (?1, ?2, ?3) ON CONFLICT (token) DO NOTHING",
        &params![token, run.arn.as_str(), run.engine.now()],
    );
}

pub fn unregister(run: &Run, token: &str) {
    run.engine.waiters.lock().unwrap_or_else(|p| p.into_inner()).remove(token);
}

/// Waits for SendTaskSuccess/Failure on `token`; without a heartbeat within `heartbeat`
/// seconds, fails with `States.HeartbeatTimeout`. Other nodes' answers are seen by polling.
pub async fn wait(run: &Arc<Run>, token: &str, heartbeat: Option<i64>) -> Result<Value, Failure> {
    let (sender, mut signals) = mpsc::channel(8);
    run.engine.waiters.lock().unwrap_or_else(|p| p.into_inner()).insert(token.to_owned(), sender);
    loop {
        let row = run
            .engine
            .db
            .query_opt("SELECT outcome, heartbeat_ms FROM tokens WHERE token = ?1", &params![token]);
        let (outcome, beat) = match row {
            Ok(Some(row)) => (row.get::<Option<String>>(0).ok().flatten(), row.get::<i64>(1).unwrap_or(0)),
            _ => (None, run.engine.now()),
        };
        if let Some(outcome) = outcome {
            let outcome: Value = serde_json::from_str(&outcome).unwrap_or_default();
            if let Some(output) = outcome.get("output") {
                return Ok(output.clone());
            }
            return Err(Failure::new(
                outcome["error"].as_str().unwrap_or_default(),
                outcome["cause"].as_str().unwrap_or_default(),
            ));
        }
        let beat_deadline = heartbeat.map(|h| beat.saturating_add(h.saturating_mul(1000)));
        let beat_timer = async {
            match beat_deadline {
                Some(at) => nimbus_api::clock::sleep_until(run.engine.clock.as_ref(), at).await,
                None => std::future::pending().await,
            }
        };
        // Alone, this node hears every answer; with several, another node's shows in the table.
        let poll = async {
            match run.engine.cluster {
                Some(_) => tokio::time::sleep(Duration::from_secs(1)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = signals.recv() => {}
            _ = poll => {}
            _ = beat_timer => return Err(Failure::new("States.HeartbeatTimeout", "")),
        }
    }
}

/// SendTaskSuccess / SendTaskFailure / SendTaskHeartbeat.
pub fn answer(engine: &Engine, token: &str, outcome: Option<Value>) -> Result<(), AwsError> {
    let db_error = |e: nimbus_store::DbError| AwsError::new(500, "InternalFailure", e.to_string());
    let row = engine
        .db
        .query_opt("SELECT outcome FROM tokens WHERE token = ?1", &params![token])
        .map_err(db_error)?;
    let Some(row) = row else {
        // Tokens nimbus makes are 64 hexadecimal digits: one of those is a task that is gone.
        if token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(AwsError::new(400, "TaskDoesNotExist", "Task does not exist anymore"));
        }
        return Err(AwsError::new(400, "InvalidToken", "Invalid Token: 'Invalid token'"));
    };
    if row.get::<Option<String>>(0).ok().flatten().is_some() {
        return Err(AwsError::new(
            400,
            "TaskTimedOut",
            "Task Timed Out: 'Provided task does not exist anymore'",
        ));
    }
    let outcome_given = outcome.is_some();
    match outcome {
        Some(outcome) => {
            let changed = engine
                .db
                .execute(
                    "UPDATE tokens SET outcome = ?2 WHERE token = ?1 AND outcome IS NULL",
                    &params![token, outcome.to_string()],
                )
                .map_err(db_error)?;
            if changed == 0 {
                return Err(AwsError::new(
                    400,
                    "TaskTimedOut",
                    "Task Timed Out: 'Provided task does not exist anymore'",
                ));
            }
        }
        None => {
            engine
                .db
                .execute(
                    "UPDATE tokens SET heartbeat_ms = ?2 WHERE token = ?1",
                    &params![token, engine.now()],
                )
                .map_err(db_error)?;
        }
    }
    let signal = if outcome_given { TokenSignal::Done } else { TokenSignal::Heartbeat };
    if let Some(waiter) = engine.waiters.lock().unwrap_or_else(|p| p.into_inner()).get(token) {
        let _ = waiter.try_send(signal);
    }
    Ok(())
}

/// A finished execution's tokens answer nothing any more, and its activity tasks are no
/// longer handed to workers.
pub fn close(engine: &Engine, execution: &str) {
    let _ = engine.db.execute(
        "UPDATE tokens SET outcome = ?2 WHERE execution = ?1 AND outcome IS NULL",
        &params![execution, json!({"error": "States.Closed"}).to_string()],
    );
    let _ = engine.db.execute("DELETE FROM activity_tasks WHERE execution = ?1", &params![execution]);
}
