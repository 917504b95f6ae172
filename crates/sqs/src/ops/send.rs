//! SendMessage and SendMessageBatch: validation as AWS does it, FIFO deduplication and sequence
//! numbers, and one durable write per request.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::engine::message::{AttributeValue, Sent};
use crate::engine::state::{self, DEDUP_WINDOW_MS};
use crate::engine::store::{Dedup, Write};
use crate::error::{Result, SqsError};
use crate::protocol::input::{int_in, opt_string, queue_name, string};
use crate::protocol::Ctx;
use crate::{md5, ops, Sqs};

/// The most a batch may carry in total (AWS: 1 MiB).
const MAX_BATCH_BYTES: usize = 1_048_576;

#[derive(Debug, Clone, Default)]
pub struct NewMessage {
    pub body: String,
    pub attributes: BTreeMap<String, AttributeValue>,
    pub delay_s: Option<i64>,
    pub group: Option<String>,
    pub dedup: Option<String>,
    pub trace: Option<String>,
}

impl NewMessage {
    pub fn size(&self) -> usize {
        self.body.len() + self.attributes.iter().map(|(n, v)| v.size(n)).sum::<usize>()
    }
}

#[derive(Debug, Clone)]
pub struct SendOutcome {
    pub id: String,
    pub md5_body: String,
    pub md5_attributes: Option<String>,
    pub md5_system: Option<String>,
    pub sequence: Option<String>,
}

impl SendOutcome {
    fn to_json(&self, id: Option<&str>) -> Value {
        let mut out = json!({ "MessageId": self.id, "MD5OfMessageBody": self.md5_body });
        if let Some(id) = id {
            out["Id"] = id.into();
        }
        if let Some(md5) = &self.md5_attributes {
            out["MD5OfMessageAttributes"] = md5.clone().into();
        }
        if let Some(md5) = &self.md5_system {
            out["MD5OfMessageSystemAttributes"] = md5.clone().into();
        }
        if let Some(sequence) = &self.sequence {
            out["SequenceNumber"] = sequence.clone().into();
        }
        out
    }
}

fn valid_char(c: char) -> bool {
    matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

fn parse_attribute(name: &str, value: &Value) -> Result<AttributeValue> {
    let name_ok = !name.is_empty()
        && name.len() <= 256
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
        && !name.starts_with('.')
        && !name.ends_with('.')
        && !name.contains("..")
        && !name.to_ascii_lowercase().starts_with("aws.")
        && !name.to_ascii_lowercase().starts_with("amazon.");
    if !name_ok {
        return Err(SqsError::invalid(format!("The message attribute name '{name}' is invalid.")));
    }
    let data_type = value.get("DataType").and_then(Value::as_str).unwrap_or_default();
    if data_type.is_empty() {
        let message =
            format!("The message attribute '{name}' must contain non-empty message attribute type.");
        return Err(SqsError::invalid(message));
    }
    let base = data_type.split('.').next().unwrap_or_default();
    let string = value.get("StringValue").and_then(Value::as_str).map(str::to_owned);
    let binary = value.get("BinaryValue").and_then(Value::as_str);
    let has_lists = ["StringListValues", "BinaryListValues"]
        .iter()
        .any(|k| value.get(*k).and_then(Value::as_array).is_some_and(|a| !a.is_empty()));
    if has_lists {
        return Err(SqsError::invalid(
            "Message attribute list values in SendMessage operation are not supported.",
        ));
    }
    let empty_value = || {
        SqsError::invalid(format!(
            "The message attribute '{name}' must contain non-empty message attribute value for message \
             attribute type '{base}'."
        ))
    };
    match base {
        "String" | "Number" => {
            let string = string.filter(|s| !s.is_empty()).ok_or_else(empty_value)?;
            if base == "Number" && string.trim().parse::<f64>().is_err() {
                let message =
                    format!("Can't cast the value of message (user) attribute '{name}' to a number.");
                return Err(SqsError::invalid(message));
            }
            if !string.chars().all(valid_char) {
                return Err(SqsError::contents());
            }
            Ok(AttributeValue { data_type: data_type.to_owned(), string: Some(string), binary: None })
        }
        "Binary" => {
            let bytes = binary.map(|b| B64.decode(b)).transpose().map_err(|_| empty_value())?;
            let bytes = bytes.filter(|b| !b.is_empty()).ok_or_else(empty_value)?;
            Ok(AttributeValue { data_type: data_type.to_owned(), string: None, binary: Some(bytes) })
        }
        _ => Err(SqsError::invalid(format!(
            "The type of message (user) attribute '{name}' is invalid. You must use only the following \
             supported type prefixes: Binary, Number, String."
        ))),
    }
}

/// Parses one message of a SendMessage request or a batch entry.
pub fn parse_message(input: &Value) -> Result<NewMessage> {
    let body = string(input, "MessageBody")?;
    if body.is_empty() {
        return Err(SqsError::missing("MessageBody"));
    }
    if !body.chars().all(valid_char) {
        return Err(SqsError::contents());
    }
    let reason = "DelaySeconds must be >= 0 and <= 900.";
    let delay_s = int_in(input, "DelaySeconds", 0, 900, reason)?;
    let mut attributes = BTreeMap::new();
    if let Some(Value::Object(map)) = input.get("MessageAttributes") {
        if map.len() > 10 {
            let message =
                format!("Number of message attributes [{}] exceeds the allowed maximum [10].", map.len());
            return Err(SqsError::invalid(message));
        }
        for (name, value) in map {
            attributes.insert(name.clone(), parse_attribute(name, value)?);
        }
    }
    let mut trace = None;
    if let Some(Value::Object(map)) = input.get("MessageSystemAttributes") {
        for (name, value) in map {
            if name != "AWSTraceHeader" {
                return Err(SqsError::invalid(format!("Message system attribute name '{name}' is invalid.")));
            }
            trace = value.get("StringValue").and_then(Value::as_str).map(str::to_owned);
        }
    }
    Ok(NewMessage {
        body: body.to_owned(),
        attributes,
        delay_s,
        group: opt_string(input, "MessageGroupId")?.map(str::to_owned),
        dedup: opt_string(input, "MessageDeduplicationId")?.map(str::to_owned),
        trace,
    })
}

impl Sqs {
    /// Sends each message to queue `name` in one durable write; per-message errors are returned
    /// in place (a missing queue fails the whole call).
    pub(crate) async fn send_many(
        &self,
        name: &str,
        messages: Vec<Result<NewMessage>>,
        sender: &str,
    ) -> Result<Vec<Result<SendOutcome>>> {
        let now = self.now();
        let mut writes = Vec::new();
        let outcomes = {
            let mut state = self.lock();
            state.queue(name)?;
            let mut outcomes = Vec::with_capacity(messages.len());
            for message in messages {
                let outcome = message.and_then(|m| {
                    let seq = state.next_seq;
                    let queue = state.queue_mut(name)?;
                    let outcome = admit(queue, seq, m, now, sender, &mut writes)?;
                    if outcome.1 {
                        state.next_seq += 1;
                    }
                    Ok(outcome.0)
                });
                outcomes.push(outcome);
            }
            outcomes
        };
        self.store.write(writes).await?;
        Ok(outcomes)
    }
}

/// Validates `message` against `queue` and enqueues it (or finds its FIFO duplicate). Returns
/// the outcome and whether `seq` was used.
fn admit(
    queue: &mut state::QueueState,
    seq: u64,
    message: NewMessage,
    now: i64,
    sender: &str,
    writes: &mut Vec<Write>,
) -> Result<(SendOutcome, bool)> {
    let max = queue.config.max_size;
    if message.size() as u64 > max {
        let reason =
            format!("One or more parameters are invalid. Reason: Message must be shorter than {max} bytes.");
        return Err(SqsError::invalid(reason));
    }
    let md5_body = md5::hex(message.body.as_bytes());
    let md5_attributes = md5::of_attributes(&message.attributes);
    let md5_system = message.trace.as_ref().map(|t| {
        let trace = AttributeValue { data_type: "String".into(), string: Some(t.clone()), binary: None };
        md5::of_attributes(&BTreeMap::from([("AWSTraceHeader".to_string(), trace)])).unwrap_or_default()
    });
    let fifo = queue.meta.fifo;
    let mut dedup_key = None;
    if fifo {
        if message.group.is_none() {
            return Err(SqsError::missing("MessageGroupId"));
        }
        if let Some(delay) = message.delay_s.filter(|d| *d != 0) {
            let reason = "The request include parameter that is not valid for this queue type.";
            return Err(SqsError::bad_value(delay, "DelaySeconds", reason));
        }
        let dedup = match (&message.dedup, queue.config.content_dedup) {
            (Some(id), _) => id.clone(),
            (None, true) => format!("{:x}", Sha256::digest(message.body.as_bytes())),
            (None, false) => return Err(SqsError::invalid(
                "The queue should either have ContentBasedDeduplication enabled or MessageDeduplicationId \
                     provided explicitly",
            )),
        };
        let key = match queue.meta.attribute("DeduplicationScope").as_deref() {
            Some("messageGroup") => format!("{}\n{dedup}", message.group.as_deref().unwrap_or_default()),
            _ => dedup.clone(),
        };
        if let Some(previous) = queue.dedup.get(&key).filter(|d| d.expires_ms > now) {
            let outcome = SendOutcome {
                id: previous.message_id.clone(),
                md5_body,
                md5_attributes,
                md5_system,
                sequence: previous.sequence.clone(),
            };
            return Ok((outcome, false));
        }
        dedup_key = Some((key, dedup));
    } else if let Some(dedup) = &message.dedup {
        let reason = "The request includes a parameter that is not valid for this queue type.";
        return Err(SqsError::bad_value(dedup, "MessageDeduplicationId", reason));
    }
    let id = uuid::Uuid::new_v4().hyphenated().to_string();
    let sequence = fifo.then(|| format!("{seq:020}"));
    let delay_ms = message.delay_s.map_or(queue.config.delay_ms, |d| d * 1000);
    let sent = Sent {
        id: id.clone(),
        body: message.body,
        attributes: message.attributes,
        md5_body: md5_body.clone(),
        md5_attributes: md5_attributes.clone(),
        sent_ms: now,
        sender: sender.to_owned(),
        group: message.group,
        dedup: dedup_key.as_ref().map(|(_, d)| d.clone()),
        sequence: sequence.clone(),
        trace: message.trace,
        dead_letter_source: None,
    };
    if let Some((key, _)) = dedup_key {
        let dedup = Dedup {
            queue: queue.meta.name.clone(),
            key: key.clone(),
            message_id: id.clone(),
            sequence: sequence.clone(),
            expires_ms: now + DEDUP_WINDOW_MS,
        };
        writes.push(Write::PutDedup(dedup.clone()));
        queue.dedup.insert(key, dedup);
    }
    state::enqueue(queue, seq, sent, delay_ms, writes);
    Ok((SendOutcome { id, md5_body, md5_attributes, md5_system, sequence }, true))
}

pub async fn send(sqs: &Sqs, input: &Value, ctx: &Ctx) -> Result<Value> {
    let name = queue_name(string(input, "QueueUrl")?);
    let message = parse_message(input)?;
    let mut outcomes = sqs.send_many(name, vec![Ok(message)], &ctx.sender).await?;
    Ok(outcomes.remove(0)?.to_json(None))
}

pub async fn send_batch(sqs: &Sqs, input: &Value, ctx: &Ctx) -> Result<Value> {
    let name = queue_name(string(input, "QueueUrl")?);
    let entries = input.get("Entries").and_then(Value::as_array).cloned().unwrap_or_default();
    let ids: Vec<&str> =
        entries.iter().map(|e| e.get("Id").and_then(Value::as_str).unwrap_or_default()).collect();
    ops::check_batch(&ids, "SendMessageBatchRequestEntry")?;
    let messages: Vec<Result<NewMessage>> = entries.iter().map(parse_message).collect();
    let total: usize = messages.iter().flatten().map(NewMessage::size).sum();
    if total > MAX_BATCH_BYTES {
        return Err(SqsError::batch_too_long(MAX_BATCH_BYTES, total));
    }
    let outcomes = sqs.send_many(name, messages, &ctx.sender).await?;
    let (mut successful, mut failed) = (Vec::new(), Vec::new());
    for (id, outcome) in ids.iter().zip(outcomes) {
        match outcome {
            Ok(outcome) => successful.push(outcome.to_json(Some(id))),
            Err(error) => failed.push(ops::batch_failure(id, &error)),
        }
    }
    Ok(json!({ "Successful": successful, "Failed": failed }))
}
