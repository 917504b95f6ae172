//! A STANDARD execution's durable record: history events and the checkpoint, written in
//! groups. Pure transitions (Pass, Choice …) are cheap to redo, so their events wait in memory
//! until the execution is about to do something that must not be lost or redone silently —
//! call a service, sleep, wait for a token, start branches — or ends; then the group is
//! committed in one transaction. After kill -9 the execution resumes from the last committed
//! checkpoint and redoes the pure states after it.

use std::sync::Mutex;

use nimbus_store::{params, DbError, ServiceDb};
use serde_json::Value;

/// Events after which the group is committed: the execution is about to wait on the outside
/// world, or it ended.
const BOUNDARIES: &[&str] = &[
    "TaskStarted",
    "LambdaFunctionStarted",
    "TaskSubmitted",
    "MapStateStarted",
    "ParallelStateStarted",
    "ExecutionAborted",
];

/// More events than this waiting are committed anyway.
const MAX_PENDING: usize = 256;

#[derive(Default)]
pub struct Journal {
    pending: Mutex<Pending>,
}

#[derive(Default)]
struct Pending {
    events: Vec<(i64, String)>,
    checkpoint: Option<String>,
}

impl Journal {
    /// Adds an event (and the checkpoint taken with it); commits when it is a boundary.
    pub fn add(
        &self,
        db: &ServiceDb,
        arn: &str,
        id: i64,
        kind: &str,
        doc: String,
        checkpoint: Option<&Value>,
    ) {
        let commit = {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            pending.events.push((id, doc));
            if let Some(checkpoint) = checkpoint {
                pending.checkpoint = Some(checkpoint.to_string());
            }
            BOUNDARIES.contains(&kind) || pending.events.len() >= MAX_PENDING
        };
        if commit {
            self.commit(db, arn);
        }
    }

    /// Sets the checkpoint and commits everything waiting.
    pub fn checkpoint(&self, db: &ServiceDb, arn: &str, checkpoint: &Value) {
        self.pending.lock().unwrap_or_else(|p| p.into_inner()).checkpoint = Some(checkpoint.to_string());
        self.commit(db, arn);
    }

    /// Commits what waits (before a sleep, say).
    pub fn commit(&self, db: &ServiceDb, arn: &str) {
        let Pending { events, checkpoint } =
            std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        if events.is_empty() && checkpoint.is_none() {
            return;
        }
        let written = db.write(|tx| {
            for (id, doc) in &events {
                tx.execute(
                    "INSERT INTO events (execution, id, doc) VALUES (?1, ?2, ?3) ON CONFLICT (execution, id) DO NOTHING",
                    &params![arn, *id, doc.as_str()],
                )?;
            }
            if let Some(checkpoint) = &checkpoint {
                tx.execute("UPDATE executions SET checkpoint = ?2 WHERE arn = ?1", &params![arn, checkpoint.as_str()])?;
            }
            Ok::<_, DbError>(())
        });
        if let Err(error) = written {
            eprintln!("nimbus: stepfunctions: cannot record the history of {arn}: {error}");
        }
    }

    /// Closes the execution: its document (final status) and the events waiting, with the
    /// final event, in one transaction — unless it was closed meanwhile (stopped), which
    /// leaves everything as it is and answers false.
    pub fn close(&self, db: &ServiceDb, doc: &Value, last: (i64, String)) -> bool {
        let arn = doc["executionArn"].as_str().unwrap_or_default();
        let mut events = std::mem::take(&mut self.pending.lock().unwrap_or_else(|p| p.into_inner()).events);
        events.push(last);
        let closed = db.write(|tx| {
            let status = doc["status"].as_str().unwrap_or("FAILED");
            let changed = tx.execute(
                "UPDATE executions SET doc = ?2, status = ?3, stop_ms = ?4 WHERE arn = ?1 AND status = 'RUNNING'",
                &params![arn, doc.to_string(), status, doc["stopDate"].as_i64()],
            )?;
            if changed == 0 {
                return Err(DbError::Conflict("closed already".into()));
            }
            for (id, event) in &events {
                tx.execute(
                    "INSERT INTO events (execution, id, doc) VALUES (?1, ?2, ?3) ON CONFLICT (execution, id) DO NOTHING",
                    &params![arn, *id, event.as_str()],
                )?;
            }
            Ok(())
        });
        match closed {
            Ok(()) => true,
            Err(DbError::Conflict(_)) => false,
            Err(error) => {
                eprintln!("nimbus: stepfunctions: cannot close {arn}: {error}");
                false
            }
        }
    }
}
