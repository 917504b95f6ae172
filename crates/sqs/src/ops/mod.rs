//! The operations, one file per family. Each takes the JSON-shaped input and returns the
//! JSON-shaped output (the protocol layer renders it).

pub mod attributes;
pub mod moves;
pub mod queues;
pub mod receive;
pub mod send;
pub mod tags;
pub mod visibility;

use crate::engine::queue::{allows_source, parse_redrive};
use crate::engine::state::QueueState;
use crate::error::{Result, SqsError};
use crate::State;

impl State {
    pub(crate) fn queue(&self, name: &str) -> Result<&QueueState> {
        self.queues.get(name).ok_or_else(SqsError::queue_missing)
    }

    pub(crate) fn queue_mut(&mut self, name: &str) -> Result<&mut QueueState> {
        self.queues.get_mut(name).ok_or_else(SqsError::queue_missing)
    }

    /// The queue an ARN names, if it exists.
    pub(crate) fn by_arn(&self, arn: &str) -> Option<&QueueState> {
        self.queues.get(arn.rsplit(':').next().unwrap_or(arn)).filter(|q| q.arn == arn)
    }

    pub(crate) fn by_arn_mut(&mut self, arn: &str) -> Option<&mut QueueState> {
        self.queues.get_mut(arn.rsplit(':').next().unwrap_or(arn)).filter(|q| q.arn == arn)
    }

    /// Checks a (normalized) `RedrivePolicy` of queue `source_arn` against its target.
    pub(crate) fn check_redrive(&self, source_arn: &str, fifo: bool, policy: &str) -> Result<()> {
        let redrive = parse_redrive(policy)?;
        let bad = |reason: &str| SqsError::bad_value(policy, "RedrivePolicy", reason);
        let Some(target) = self.by_arn(&redrive.target_arn) else {
            return Err(bad("Dead-letter target does not exist."));
        };
        if target.meta.fifo != fifo {
            let reason = "Dead-letter queue must be same type of queue as the source.";
            return Err(bad(reason));
        }
        let allow = target.meta.attributes.get("RedriveAllowPolicy").map(String::as_str);
        if !allows_source(allow, source_arn) {
            return Err(bad(
                "Dead-letter target does not allow this queue as a source (RedriveAllowPolicy).",
            ));
        }
        Ok(())
    }
}

/// Batch entry ids: 1–80 of `[A-Za-z0-9_-]`, distinct, at most 10 of them.
pub(crate) fn check_batch(ids: &[&str], entry: &str) -> Result<()> {
    if ids.is_empty() {
        return Err(SqsError::empty_batch(entry));
    }
    if ids.len() > 10 {
        return Err(SqsError::too_many_entries(ids.len()));
    }
    for (i, id) in ids.iter().enumerate() {
        let valid = !id.is_empty()
            && id.len() <= 80
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(SqsError::bad_entry_id());
        }
        if ids[..i].contains(id) {
            return Err(SqsError::ids_not_distinct(id));
        }
    }
    Ok(())
}

/// One `BatchResultErrorEntry`.
pub(crate) fn batch_failure(id: &str, error: &SqsError) -> serde_json::Value {
    serde_json::json!({
        "Id": id,
        "SenderFault": error.sender_fault,
        "Code": error.code,
        "Message": error.message,
    })
}
