//! GetQueueAttributes and SetQueueAttributes.

use serde_json::{json, Map, Value};

use crate::engine::queue;
use crate::engine::state::QueueState;
use crate::engine::store::Write;
use crate::error::{Result, SqsError};
use crate::protocol::input::{queue_name, string, string_map, strings};
use crate::Sqs;

const ALL: &[&str] = &[
    "Policy",
    "VisibilityTimeout",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "CreatedTimestamp",
    "LastModifiedTimestamp",
    "QueueArn",
    "ApproximateNumberOfMessagesDelayed",
    "DelaySeconds",
    "ReceiveMessageWaitTimeSeconds",
    "RedrivePolicy",
    "FifoQueue",
    "ContentBasedDeduplication",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "DeduplicationScope",
    "FifoThroughputLimit",
    "RedriveAllowPolicy",
    "SqsManagedSseEnabled",
];

/// The value of attribute `name` of `queue` now, `None` when it has none.
pub fn value(queue: &QueueState, name: &str, now: i64) -> Option<String> {
    let (visible, in_flight, delayed) = match name {
        "ApproximateNumberOfMessages"
        | "ApproximateNumberOfMessagesNotVisible"
        | "ApproximateNumberOfMessagesDelayed" => queue.counts(now),
        _ => (0, 0, 0),
    };
    match name {
        "ApproximateNumberOfMessages" => Some(visible.to_string()),
        "ApproximateNumberOfMessagesNotVisible" => Some(in_flight.to_string()),
        "ApproximateNumberOfMessagesDelayed" => Some(delayed.to_string()),
        "CreatedTimestamp" => Some(queue.meta.created_s.to_string()),
        "LastModifiedTimestamp" => Some(queue.meta.modified_s.to_string()),
        "QueueArn" => Some(queue.arn.clone()),
        "KmsDataKeyReusePeriodSeconds" if queue.meta.attributes.contains_key("KmsMasterKeyId") => {
            queue.meta.attribute(name).or_else(|| Some("300".into()))
        }
        _ => queue.meta.attribute(name),
    }
}

pub fn get(sqs: &Sqs, input: &Value) -> Result<Value> {
    let name = queue_name(string(input, "QueueUrl")?);
    let requested = strings(input, "AttributeNames");
    let state = sqs.lock();
    let queue = state.queue(name)?;
    let now = sqs.now();
    let mut names: Vec<&str> = Vec::new();
    for requested in &requested {
        match requested.as_str() {
            "All" => names.extend(ALL),
            other if ALL.contains(&other) => names.push(other),
            other => return Err(SqsError::attribute_name(other)),
        }
    }
    let mut attributes = Map::new();
    for name in names {
        if let Some(value) = value(queue, name, now) {
            attributes.insert(name.to_owned(), value.into());
        }
    }
    if attributes.is_empty() {
        return Ok(json!({}));
    }
    Ok(json!({ "Attributes": attributes }))
}

pub async fn set(sqs: &Sqs, input: &Value) -> Result<Value> {
    let name = queue_name(string(input, "QueueUrl")?);
    let attributes = string_map(input, "Attributes")?;
    let now = sqs.now();
    let meta = {
        let mut state = sqs.lock();
        let (fifo, arn) = {
            let queue = state.queue(name)?;
            (queue.meta.fifo, queue.arn.clone())
        };
        let mut validated = Vec::new();
        for (key, value) in &attributes {
            if key == "FifoQueue" {
                return Err(SqsError::attribute_name(key));
            }
            // An empty RedrivePolicy / RedriveAllowPolicy / Policy removes it, as on AWS.
            if value.is_empty() && matches!(key.as_str(), "RedrivePolicy" | "RedriveAllowPolicy" | "Policy") {
                validated.push((key.clone(), None));
                continue;
            }
            let value = queue::validate(key, value, fifo)?;
            if key == "RedrivePolicy" {
                state.check_redrive(&arn, fifo, &value)?;
            }
            validated.push((key.clone(), Some(value)));
        }
        let queue = state.queue_mut(name)?;
        for (key, value) in validated {
            match value {
                Some(value) => queue.meta.attributes.insert(key, value),
                None => queue.meta.attributes.remove(&key),
            };
        }
        queue.meta.modified_s = now / 1000;
        queue.config = queue.meta.config();
        queue.notify.notify_waiters();
        queue.meta.clone()
    };
    sqs.store.write(vec![Write::PutQueue(meta)]).await?;
    Ok(json!({}))
}
