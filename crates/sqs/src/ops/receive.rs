//! ReceiveMessage: long polling woken by sends, visibility, FIFO group order, redrive to the
//! dead-letter queue on the receive that exceeds `maxReceiveCount`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::engine::message::{receipt_handle, Message};
use crate::engine::queue::{MAX_VISIBILITY_S, MAX_WAIT_S};
use crate::engine::state;
use crate::error::Result;
use crate::protocol::input::{int_in, queue_name, string, strings};
use crate::{md5, Sqs};

impl Sqs {
    /// Receives up to `max` messages from queue `name`, waiting up to `wait` for the first.
    pub(crate) async fn receive_many(
        &self,
        name: &str,
        max: usize,
        wait: Duration,
        visibility_ms: Option<i64>,
    ) -> Result<Vec<Message>> {
        let notify = self.lock().queue(name)?.notify.clone();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // Closed (handing over): an empty answer, and the caller's next poll goes elsewhere.
            if self.is_closed() {
                return Ok(Vec::new());
            }
            let now = self.now();
            let mut writes = Vec::new();
            let (delivered, next_visible) = {
                let mut state = self.lock();
                let Ok(queue) = state.queue_mut(name) else { return Ok(Vec::new()) };
                let visibility = visibility_ms.unwrap_or(queue.config.visibility_ms);
                let receipt = state::receive(queue, max, visibility, now, &mut writes);
                let source_arn = queue.arn.clone();
                let next_visible = queue.next_visible_ms(now);
                for (target, mut message) in receipt.dead_lettered {
                    let seq = state.next_seq;
                    match state.by_arn_mut(&target) {
                        Some(dlq) => {
                            message.sent.dead_letter_source = Some(source_arn.clone());
                            state::enqueue(dlq, seq, message.sent, 0, &mut writes);
                            state.next_seq += 1;
                        }
                        None => {
                            // No dead-letter queue (deleted since): the message stays where it is.
                            writes.push(crate::engine::store::Write::Insert {
                                queue: name.to_owned(),
                                message: Box::new(message.clone()),
                            });
                            if let Ok(queue) = state.queue_mut(name) {
                                queue.insert(message);
                            }
                        }
                    }
                }
                (receipt.delivered, next_visible)
            };
            self.store.write(writes).await?;
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            if !delivered.is_empty() || remaining.is_zero() {
                return Ok(delivered);
            }
            let mut sleep = remaining;
            if let Some(at) = next_visible {
                sleep = sleep.min(Duration::from_millis((at - now).max(1) as u64));
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(sleep) => {}
            }
        }
    }
}

/// Every system attribute a message has, as `ReceiveMessage` names them.
pub fn system_attributes(message: &Message) -> Vec<(&'static str, String)> {
    let sent = &message.sent;
    let mut attributes = vec![
        ("SenderId", sent.sender.clone()),
        ("SentTimestamp", sent.sent_ms.to_string()),
        ("ApproximateReceiveCount", message.receive_count.to_string()),
        ("ApproximateFirstReceiveTimestamp", message.first_receive_ms.unwrap_or(sent.sent_ms).to_string()),
    ];
    let optional = [
        ("SequenceNumber", &sent.sequence),
        ("MessageDeduplicationId", &sent.dedup),
        ("MessageGroupId", &sent.group),
        ("AWSTraceHeader", &sent.trace),
        ("DeadLetterQueueSourceArn", &sent.dead_letter_source),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            attributes.push((name, value.clone()));
        }
    }
    attributes
}

/// Whether attribute `name` matches a `MessageAttributeNames` entry (`All`, `.*`, `prefix.*`).
fn wanted(patterns: &[String], name: &str) -> bool {
    patterns.iter().any(|p| {
        p == "All"
            || p == ".*"
            || p == name
            || p.strip_suffix(".*").is_some_and(|prefix| name.starts_with(prefix))
    })
}

pub async fn receive(sqs: &Sqs, input: &Value) -> Result<Value> {
    let name = queue_name(string(input, "QueueUrl")?);
    let max = int_in(input, "MaxNumberOfMessages", 1, 10, "Must be between 1 and 10, if provided.")?;
    let reason = "Must be >= 0 and <= 43200, if provided.";
    let visibility = int_in(input, "VisibilityTimeout", 0, MAX_VISIBILITY_S, reason)?;
    let wait = int_in(input, "WaitTimeSeconds", 0, MAX_WAIT_S, "Must be >= 0 and <= 20, if provided.")?;
    let wait = match wait {
        Some(wait) => wait,
        None => sqs.lock().queue(name)?.config.wait_s,
    };
    let mut system = strings(input, "AttributeNames");
    system.extend(strings(input, "MessageSystemAttributeNames"));
    let patterns = strings(input, "MessageAttributeNames");
    let messages = sqs
        .receive_many(
            name,
            max.unwrap_or(1) as usize,
            Duration::from_secs(wait as u64),
            visibility.map(|v| v * 1000),
        )
        .await?;
    let all_system = system.iter().any(|s| s == "All");
    let rendered: Vec<Value> = messages
        .iter()
        .map(|message| {
            let mut out = json!({
                "MessageId": message.sent.id,
                "ReceiptHandle": receipt_handle(name, message.seq, message.token),
                "MD5OfBody": message.sent.md5_body,
                "Body": message.sent.body,
            });
            let attributes: Map<String, Value> = system_attributes(message)
                .into_iter()
                .filter(|(n, _)| all_system || system.iter().any(|s| s == n))
                .map(|(n, v)| (n.to_owned(), v.into()))
                .collect();
            if !attributes.is_empty() {
                out["Attributes"] = Value::Object(attributes);
            }
            let chosen: BTreeMap<String, _> = message
                .sent
                .attributes
                .iter()
                .filter(|(n, _)| wanted(&patterns, n))
                .map(|(n, v)| (n.clone(), v.clone()))
                .collect();
            if let Some(md5) = md5::of_attributes(&chosen) {
                out["MD5OfMessageAttributes"] = md5.into();
                let wire: Map<String, Value> = chosen.iter().map(|(n, v)| (n.clone(), v.to_wire())).collect();
                out["MessageAttributes"] = Value::Object(wire);
            }
            out
        })
        .collect();
    if rendered.is_empty() {
        return Ok(json!({}));
    }
    Ok(json!({ "Messages": rendered }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn attribute_name_patterns() {
        let patterns = vec!["color".to_string(), "trace.*".to_string()];
        assert!(super::wanted(&patterns, "color"));
        assert!(super::wanted(&patterns, "trace.id"));
        assert!(!super::wanted(&patterns, "size"));
        assert!(super::wanted(&["All".to_string()], "size"));
    }
}
