//! A message as stored: what was sent (immutable, serialized once into the database) and its
//! delivery state (visibility, receive count, the token of its current receipt handle).

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};

/// One message attribute. `binary` holds decoded bytes; it is base64 on every wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttributeValue {
    pub data_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "b64_opt")]
    pub binary: Option<Vec<u8>>,
}

impl AttributeValue {
    /// The JSON protocol's `MessageAttributeValue`.
    pub fn to_wire(&self) -> serde_json::Value {
        let mut value = serde_json::json!({ "DataType": self.data_type });
        if let Some(string) = &self.string {
            value["StringValue"] = string.clone().into();
        }
        if let Some(binary) = &self.binary {
            value["BinaryValue"] = B64.encode(binary).into();
        }
        value
    }

    /// The shape Lambda's SQS event record uses.
    pub fn to_lambda(&self) -> serde_json::Value {
        serde_json::json!({
            "stringValue": self.string,
            "binaryValue": self.binary.as_ref().map(|b| B64.encode(b)),
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": self.data_type,
        })
    }

    /// Bytes this attribute counts towards the message size (name, type and value).
    pub fn size(&self, name: &str) -> usize {
        name.len()
            + self.data_type.len()
            + self.string.as_ref().map_or(0, String::len)
            + self.binary.as_ref().map_or(0, Vec::len)
    }
}

mod b64_opt {
    use super::*;
    pub fn serialize<S: serde::Serializer>(value: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        value.as_ref().map(|b| B64.encode(b)).serialize(s)
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        text.map(|t| B64.decode(t).map_err(serde::de::Error::custom)).transpose()
    }
}

/// What the sender sent and SQS stamped on it; never changes after the send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    pub id: String,
    pub body: String,
    #[serde(default)]
    pub attributes: BTreeMap<String, AttributeValue>,
    pub md5_body: String,
    #[serde(default)]
    pub md5_attributes: Option<String>,
    pub sent_ms: i64,
    pub sender: String,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub dedup: Option<String>,
    #[serde(default)]
    pub sequence: Option<String>,
    #[serde(default)]
    pub trace: Option<String>,
    /// Set on messages a redrive moved into a dead-letter queue.
    #[serde(default)]
    pub dead_letter_source: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Row id, unique across queues and increasing in send order.
    pub seq: u64,
    pub sent: Sent,
    /// When the message can next be received (send time + delay, or end of visibility).
    pub visible_at: i64,
    pub receive_count: u32,
    pub first_receive_ms: Option<i64>,
    /// Token of the latest receipt handle; 0 until first received.
    pub token: u64,
}

impl Message {
    pub fn in_flight(&self, now: i64) -> bool {
        self.receive_count > 0 && self.visible_at > now
    }
}

/// A receipt handle names a queue, a message and the receive that produced it.
pub fn receipt_handle(queue: &str, seq: u64, token: u64) -> String {
    B64.encode(format!("{seq}:{token}:{queue}"))
}

pub fn parse_receipt_handle(handle: &str) -> Option<(String, u64, u64)> {
    let text = String::from_utf8(B64.decode(handle).ok()?).ok()?;
    let mut parts = text.splitn(3, ':');
    let seq = parts.next()?.parse().ok()?;
    let token = parts.next()?.parse().ok()?;
    Some((parts.next()?.to_owned(), seq, token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receipt_handles_round_trip_and_reject_garbage() {
        let handle = receipt_handle("q.fifo", 7, 99);
        assert_eq!(parse_receipt_handle(&handle), Some(("q.fifo".into(), 7, 99)));
        assert_eq!(parse_receipt_handle("not-a-handle"), None);
        assert_eq!(parse_receipt_handle(&B64.encode("x:y:q")), None);
    }

    #[test]
    fn binary_attributes_serialize_as_base64() {
        let value = AttributeValue { data_type: "Binary".into(), string: None, binary: Some(vec![0, 1]) };
        let text = serde_json::to_string(&value).unwrap();
        assert_eq!(text, r#"{"data_type":"Binary","binary":"AAE="}"#);
        assert_eq!(serde_json::from_str::<AttributeValue>(&text).unwrap(), value);
        assert_eq!(value.to_wire()["BinaryValue"], "AAE=");
    }
}
