//! Publish and PublishBatch: validation as AWS does it, FIFO sequencing and five-minute
//! deduplication, then delivery to every confirmed subscription whose filter policy passes.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use nimbus_api::AwsError;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{self, invalid, invalid_parameter, value_invalid, Result};
use crate::store::{Dedup, Topic};
use crate::xml::{elem, members};
use crate::{deliver, now_ms, Sns};

/// Message plus attributes, at most.
const MAX_SIZE: usize = 256 * 1024;
const MAX_ATTRIBUTES: usize = 10;
const MAX_BATCH: usize = 10;

/// One message attribute (`DataType` String, Number, Binary or String.Array, with an optional
/// custom suffix). `binary` holds decoded bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageAttribute {
    pub data_type: String,
    pub string: Option<String>,
    pub binary: Option<Vec<u8>>,
}

impl MessageAttribute {
    pub fn string(value: &str) -> MessageAttribute {
        MessageAttribute { data_type: "String".into(), string: Some(value.into()), binary: None }
    }

    fn size(&self, name: &str) -> usize {
        name.len()
            + self.data_type.len()
            + self.string.as_ref().map_or(0, String::len)
            + self.binary.as_ref().map_or(0, Vec::len)
    }

    /// The value as the SNS envelope carries it (`{"Type", "Value"}`; binary as base64).
    pub fn envelope_value(&self) -> String {
        match &self.binary {
            Some(bytes) => B64.encode(bytes),
            None => self.string.clone().unwrap_or_default(),
        }
    }
}

/// A message to publish, as the caller gave it.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub message: String,
    pub subject: Option<String>,
    /// `MessageStructure=json`: `message` is a JSON object of per-protocol messages.
    pub structure_json: bool,
    pub attributes: BTreeMap<String, MessageAttribute>,
    pub group_id: Option<String>,
    pub dedup_id: Option<String>,
}

pub struct Published {
    pub message_id: String,
    pub sequence_number: Option<String>,
}

/// A message accepted for delivery.
pub struct Accepted {
    pub message_id: String,
    pub sequence_number: Option<String>,
    pub message: String,
    pub subject: Option<String>,
    /// Per-protocol messages (`MessageStructure=json`).
    pub per_protocol: Option<serde_json::Map<String, Value>>,
    pub attributes: BTreeMap<String, MessageAttribute>,
    pub group_id: Option<String>,
    pub dedup_id: Option<String>,
    pub timestamp_ms: i64,
    pub request_id: String,
}

impl Accepted {
    /// The message a subscription of `protocol` receives.
    pub fn message_for(&self, protocol: &str) -> &str {
        let Some(messages) = &self.per_protocol else { return &self.message };
        messages
            .get(protocol)
            .or_else(|| messages.get("default"))
            .and_then(Value::as_str)
            .unwrap_or(&self.message)
    }
}

pub fn attributes_of(value: &Value) -> Result<BTreeMap<String, MessageAttribute>> {
    let mut out = BTreeMap::new();
    let Some(map) = value.as_object() else { return Ok(out) };
    if map.len() > MAX_ATTRIBUTES {
        return Err(value_invalid(format!(
            "Number of message attributes [{}] exceeds the allowed maximum [{MAX_ATTRIBUTES}].",
            map.len()
        )));
    }
    for (name, fields) in map {
        let data_type = fields["DataType"].as_str().unwrap_or_default();
        let string = fields["StringValue"].as_str().map(str::to_owned);
        let binary = fields["BinaryValue"].as_str();
        out.insert(name.clone(), check_attribute(name, data_type, string, binary)?);
    }
    Ok(out)
}

fn check_attribute(
    name: &str,
    data_type: &str,
    string: Option<String>,
    binary: Option<&str>,
) -> Result<MessageAttribute> {
    if name.is_empty() || name.len() > 256 {
        return Err(invalid_parameter("MessageAttributes"));
    }
    if data_type.is_empty() {
        return Err(value_invalid(format!(
            "The message attribute '{name}' must contain non-empty message attribute type."
        )));
    }
    let base = data_type.split('.').next().unwrap_or_default();
    let empty = |kind: &str| {
        value_invalid(format!(
            "The message attribute '{name}' must contain non-empty message attribute value for message attribute type '{kind}'."
        ))
    };
    match base {
        "String" | "Number" => {
            if string.is_none() && binary.is_some() {
                return Err(value_invalid(format!(
                    "The message attribute '{name}' with type '{data_type}' must use field 'String'."
                )));
            }
            let text = string.filter(|s| !s.is_empty()).ok_or_else(|| empty(base))?;
            if base == "Number" && text.trim().parse::<f64>().map_or(true, |n| !n.is_finite()) {
                return Err(value_invalid(format!("Could not cast message attribute '{name}' value to number.")));
            }
            if data_type.starts_with("String.Array") && !serde_json::from_str::<Value>(&text).is_ok_and(|v| v.is_array()) {
                return Err(value_invalid(format!(
                    "The message attribute '{name}' with type 'String.Array' has an invalid value: it must be a JSON array."
                )));
            }
            Ok(MessageAttribute { data_type: data_type.to_owned(), string: Some(text), binary: None })
        }
        "Binary" => {
            if binary.is_none() && string.is_some() {
                return Err(value_invalid(format!(
                    "The message attribute '{name}' with type '{data_type}' must use field 'Binary'."
                )));
            }
            let encoded = binary.filter(|b| !b.is_empty()).ok_or_else(|| empty("Binary"))?;
            let bytes = B64.decode(encoded).map_err(|_| invalid_parameter("MessageAttributes"))?;
            Ok(MessageAttribute { data_type: data_type.to_owned(), string: None, binary: Some(bytes) })
        }
        _ => Err(value_invalid(format!(
            "The message attribute '{name}' has an invalid message attribute type, the set of supported type prefixes is Binary, Number, and String."
        ))),
    }
}

fn request_of(input: &Value) -> Result<Request> {
    let structure = input["MessageStructure"].as_str().unwrap_or_default();
    if !structure.is_empty() && structure != "json" {
        return Err(invalid_parameter("MessageStructure"));
    }
    Ok(Request {
        message: input["Message"].as_str().unwrap_or_default().to_owned(),
        subject: input["Subject"].as_str().map(str::to_owned),
        structure_json: structure == "json",
        attributes: attributes_of(&input["MessageAttributes"])?,
        group_id: input["MessageGroupId"].as_str().map(str::to_owned),
        dedup_id: input["MessageDeduplicationId"].as_str().map(str::to_owned),
    })
}

/// Checks that need no topic; the per-protocol messages of a `json` structure.
fn check_message(request: &Request) -> Result<Option<serde_json::Map<String, Value>>> {
    if request.message.is_empty() {
        return Err(invalid("Invalid parameter: Empty message"));
    }
    let size = request.message.len() + request.attributes.iter().map(|(n, a)| a.size(n)).sum::<usize>();
    if size > MAX_SIZE {
        return Err(invalid("Invalid parameter: Message too long"));
    }
    if let Some(subject) = &request.subject {
        let printable = subject.chars().all(|c| c.is_ascii() && !c.is_ascii_control());
        if subject.is_empty()
            || subject.len() > 100
            || !printable
            || !subject.starts_with(|c: char| c.is_ascii_alphanumeric() || c.is_ascii_punctuation())
        {
            return Err(invalid_parameter("Subject"));
        }
    }
    if !request.structure_json {
        return Ok(None);
    }
    let parsed: serde_json::Map<String, Value> = serde_json::from_str(&request.message)
        .map_err(|_| invalid("Invalid parameter: Message Structure - JSON message body failed to parse"))?;
    if !parsed.get("default").is_some_and(Value::is_string) {
        return Err(invalid("Invalid parameter: Message Structure - No default entry in JSON message body"));
    }
    Ok(Some(parsed))
}

fn check_fifo(topic: &Topic, request: &Request) -> Result<()> {
    let id_chars = |id: &str| !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic());
    if topic.fifo() {
        let Some(group) = &request.group_id else {
            return Err(invalid(
                "Invalid parameter: The MessageGroupId parameter is required for FIFO topics",
            ));
        };
        if !id_chars(group) {
            return Err(invalid_parameter("MessageGroupId"));
        }
        match &request.dedup_id {
            Some(id) if !id_chars(id) => return Err(invalid_parameter("MessageDeduplicationId")),
            None if !topic.content_dedup() => {
                return Err(invalid(
                    "Invalid parameter: The topic should either have ContentBasedDeduplication enabled or MessageDeduplicationId provided explicitly",
                ))
            }
            _ => {}
        }
    } else if request.dedup_id.is_some() {
        return Err(invalid(
            "Invalid parameter: MessageDeduplicationId Reason: The request includes MessageDeduplicationId parameter that is not valid for this topic type",
        ));
    }
    Ok(())
}

fn fifo_lock(sns: &Sns, topic_arn: &str) -> Arc<Mutex<()>> {
    let mut locks = sns.fifo_locks.lock().unwrap_or_else(|p| p.into_inner());
    locks.entry(topic_arn.to_owned()).or_default().clone()
}

/// Publishes one message to an existing topic.
fn publish_on(sns: &Sns, topic: &Topic, request: Request, request_id: &str) -> Result<Published> {
    let per_protocol = check_message(&request)?;
    check_fifo(topic, &request)?;
    let message_id = uuid::Uuid::new_v4().hyphenated().to_string();
    let lock = topic.fifo().then(|| fifo_lock(sns, &topic.arn));
    let _in_order = lock.as_ref().map(|l| l.lock().unwrap_or_else(|p| p.into_inner()));
    let mut sequence_number = None;
    let mut dedup_id = request.dedup_id.clone();
    if topic.fifo() {
        let id = dedup_id.get_or_insert_with(|| {
            let digest = Sha256::digest(request.message.as_bytes());
            digest.iter().map(|b| format!("{b:02x}")).collect()
        });
        match sns.store.dedup(&topic.arn, id, &message_id, now_ms()).map_err(error::db)? {
            Dedup::Duplicate(original, seq) => {
                return Ok(Published { message_id: original, sequence_number: Some(sequence(seq)) })
            }
            Dedup::New(seq) => sequence_number = Some(sequence(seq)),
        }
    }
    let accepted = Accepted {
        message_id: message_id.clone(),
        sequence_number: sequence_number.clone(),
        message: request.message,
        subject: request.subject,
        per_protocol,
        attributes: request.attributes,
        group_id: request.group_id,
        dedup_id,
        timestamp_ms: now_ms(),
        request_id: request_id.to_owned(),
    };
    deliver::fan_out(sns, topic, &accepted)?;
    Ok(Published { message_id, sequence_number })
}

fn sequence(seq: i64) -> String {
    format!("{}", 10_000_000_000_000_000_000u64 + seq as u64)
}

pub fn publish_to(sns: &Sns, topic_arn: &str, request: Request, request_id: &str) -> Result<Published> {
    let topic = sns.store.topic(topic_arn).map_err(error::db)?.ok_or_else(error::topic_missing)?;
    publish_on(sns, &topic, request, request_id)
}

pub fn publish(sns: &Sns, input: &Value, request_id: &str) -> Result<String> {
    if input["PhoneNumber"].is_string() {
        return Err(AwsError::new(
            400,
            "InvalidAction",
            "nimbus does not implement SMS: Publish with PhoneNumber is not served",
        ));
    }
    let arn = input["TopicArn"].as_str().or_else(|| input["TargetArn"].as_str()).unwrap_or_default();
    if arn.is_empty() {
        return Err(invalid(
            "Invalid parameter: TopicArn or TargetArn Reason: no value for required parameter",
        ));
    }
    let which = if input["TopicArn"].is_string() { "TopicArn" } else { "TargetArn" };
    if arn.split(':').count() < 6 {
        return Err(error::arn_parts(which, arn));
    }
    if !arn.starts_with("arn:aws:sns:") || arn.split(':').count() != 6 {
        return Err(invalid_parameter(which));
    }
    let request = request_of(input)?;
    let published = publish_to(sns, arn, request, request_id)?;
    let mut out = elem("MessageId", &published.message_id);
    if let Some(seq) = &published.sequence_number {
        out.push_str(&elem("SequenceNumber", seq));
    }
    Ok(out)
}

pub fn publish_batch(sns: &Sns, input: &Value, request_id: &str) -> Result<String> {
    let arn = input["TopicArn"].as_str().unwrap_or_default();
    let entries = input["PublishBatchRequestEntries"].as_array().cloned().unwrap_or_default();
    if entries.is_empty() {
        return Err(AwsError::new(
            400,
            "EmptyBatchRequest",
            "The batch request doesn't contain any entries.",
        ));
    }
    if entries.len() > MAX_BATCH {
        return Err(AwsError::new(
            400,
            "TooManyEntriesInBatchRequest",
            "The batch request contains more entries than permissible.",
        ));
    }
    let mut ids = HashSet::new();
    for entry in &entries {
        let id = entry["Id"].as_str().unwrap_or_default();
        if id.is_empty()
            || id.len() > 80
            || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(AwsError::new(
                400,
                "InvalidBatchEntryId",
                "The Id of a batch entry in a batch request doesn't abide by the specification.",
            ));
        }
        if !ids.insert(id) {
            return Err(AwsError::new(
                400,
                "BatchEntryIdsNotDistinct",
                "Two or more batch entries in the request have the same Id.",
            ));
        }
    }
    let total: usize = entries.iter().map(|e| e["Message"].as_str().map_or(0, str::len)).sum();
    if total > MAX_SIZE {
        return Err(AwsError::new(
            400,
            "BatchRequestTooLong",
            "The length of all the messages put together is more than the limit.",
        ));
    }
    let topic = sns.store.topic(arn).map_err(error::db)?.ok_or_else(error::topic_missing)?;
    let (mut successful, mut failed) = (Vec::new(), Vec::new());
    for entry in &entries {
        let id = entry["Id"].as_str().unwrap_or_default();
        let outcome = request_of(entry).and_then(|request| publish_on(sns, &topic, request, request_id));
        match outcome {
            Ok(published) => {
                let mut item = elem("Id", id) + &elem("MessageId", &published.message_id);
                if let Some(seq) = &published.sequence_number {
                    item.push_str(&elem("SequenceNumber", seq));
                }
                successful.push(item);
            }
            Err(error) => failed.push(
                elem("Id", id)
                    + &elem("Code", error.code)
                    + &elem("Message", &error.message)
                    + &elem("SenderFault", if error.sender_fault { "true" } else { "false" }),
            ),
        }
    }
    Ok(members("Successful", successful) + &members("Failed", failed))
}
