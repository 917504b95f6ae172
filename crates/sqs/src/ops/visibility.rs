//! DeleteMessage, ChangeMessageVisibility and their batch forms.

use serde_json::{json, Value};

use crate::engine::queue::MAX_VISIBILITY_S;
use crate::engine::state;
use crate::error::{Result, SqsError};
use crate::protocol::input::{opt_int, queue_name, string};
use crate::{ops, Sqs};

/// What one entry asks for: a receipt handle, and for visibility changes the new timeout.
type Entry = (String, Option<i64>);

impl Sqs {
    /// Deletes (timeout `None`) or changes visibility of each entry, in one durable write.
    pub(crate) async fn settle(&self, name: &str, entries: Vec<Result<Entry>>) -> Result<Vec<Result<()>>> {
        let now = self.now();
        let mut writes = Vec::new();
        let results = {
            let mut state = self.lock();
            let queue = state.queue_mut(name)?;
            entries
                .into_iter()
                .map(|entry| {
                    let (handle, timeout) = entry?;
                    match timeout {
                        None => state::delete(queue, &handle, &mut writes),
                        Some(s) => state::change_visibility(queue, &handle, s * 1000, now, &mut writes),
                    }
                })
                .collect()
        };
        self.store.write(writes).await?;
        Ok(results)
    }
}

fn timeout(input: &Value) -> Result<i64> {
    let timeout =
        opt_int(input, "VisibilityTimeout")?.ok_or_else(|| SqsError::missing("VisibilityTimeout"))?;
    if !(0..=MAX_VISIBILITY_S).contains(&timeout) {
        let reason = "Total VisibilityTimeout for the message is beyond the limit [43200 seconds]";
        return Err(SqsError::bad_value(timeout, "VisibilityTimeout", reason));
    }
    Ok(timeout)
}

fn handle(input: &Value) -> Result<String> {
    Ok(string(input, "ReceiptHandle")?.to_owned())
}

pub async fn delete(sqs: &Sqs, input: &Value) -> Result<Value> {
    let name = queue_name(string(input, "QueueUrl")?);
    let entry = handle(input).map(|h| (h, None));
    sqs.settle(name, vec![entry]).await?.remove(0)?;
    Ok(json!({}))
}

pub async fn change(sqs: &Sqs, input: &Value) -> Result<Value> {
    let name = queue_name(string(input, "QueueUrl")?);
    let entry = handle(input).and_then(|h| Ok((h, Some(timeout(input)?))));
    sqs.settle(name, vec![entry]).await?.remove(0)?;
    Ok(json!({}))
}

async fn batch(sqs: &Sqs, input: &Value, entry_name: &str, with_timeout: bool) -> Result<Value> {
    let name = queue_name(string(input, "QueueUrl")?);
    let entries = input.get("Entries").and_then(Value::as_array).cloned().unwrap_or_default();
    let ids: Vec<&str> =
        entries.iter().map(|e| e.get("Id").and_then(Value::as_str).unwrap_or_default()).collect();
    ops::check_batch(&ids, entry_name)?;
    let parsed = entries
        .iter()
        .map(|e| {
            let handle = handle(e)?;
            Ok((handle, if with_timeout { Some(timeout(e)?) } else { None }))
        })
        .collect();
    let results = sqs.settle(name, parsed).await?;
    let (mut successful, mut failed) = (Vec::new(), Vec::new());
    for (id, result) in ids.iter().zip(results) {
        match result {
            Ok(()) => successful.push(json!({ "Id": id })),
            Err(error) => failed.push(ops::batch_failure(id, &error)),
        }
    }
    Ok(json!({ "Successful": successful, "Failed": failed }))
}

pub async fn delete_batch(sqs: &Sqs, input: &Value) -> Result<Value> {
    batch(sqs, input, "DeleteMessageBatchRequestEntry", false).await
}

pub async fn change_batch(sqs: &Sqs, input: &Value) -> Result<Value> {
    batch(sqs, input, "ChangeMessageVisibilityBatchRequestEntry", true).await
}
