//! A queue's settings: the attributes callers set (validated and normalized as AWS does), the
//! defaults, and the typed view the hot paths read.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Result, SqsError};

/// AWS's limits (SQS developer guide, "Quotas"; 1 MiB maximum message size since August 2025).
pub const MAX_MESSAGE_SIZE: u64 = 1_048_576;
pub const MAX_VISIBILITY_S: i64 = 43_200;
pub const MAX_WAIT_S: i64 = 20;

/// Attributes a caller may set, and whether they apply only to FIFO queues.
const SETTABLE: &[(&str, bool)] = &[
    ("DelaySeconds", false),
    ("MaximumMessageSize", false),
    ("MessageRetentionPeriod", false),
    ("Policy", false),
    ("ReceiveMessageWaitTimeSeconds", false),
    ("VisibilityTimeout", false),
    ("RedrivePolicy", false),
    ("RedriveAllowPolicy", false),
    ("KmsMasterKeyId", false),
    ("KmsDataKeyReusePeriodSeconds", false),
    ("SqsManagedSseEnabled", false),
    ("FifoQueue", true),
    ("ContentBasedDeduplication", true),
    ("DeduplicationScope", true),
    ("FifoThroughputLimit", true),
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redrive {
    pub target_arn: String,
    pub max_receive_count: u32,
}

/// What is persisted about a queue (messages live in their own table).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueMeta {
    pub name: String,
    pub fifo: bool,
    /// Attributes as set, normalized; defaults are not stored.
    pub attributes: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    pub created_s: i64,
    pub modified_s: i64,
}

/// The typed settings the send and receive paths read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub visibility_ms: i64,
    pub retention_ms: i64,
    pub delay_ms: i64,
    pub max_size: u64,
    pub wait_s: i64,
    pub content_dedup: bool,
    pub redrive: Option<Redrive>,
}

impl QueueMeta {
    pub fn attribute(&self, name: &str) -> Option<String> {
        if let Some(value) = self.attributes.get(name) {
            return Some(value.clone());
        }
        let default = match name {
            "DelaySeconds" | "ReceiveMessageWaitTimeSeconds" => "0",
            "MaximumMessageSize" => "1048576",
            "MessageRetentionPeriod" => "345600",
            "VisibilityTimeout" => "30",
            "SqsManagedSseEnabled" => "true",
            "FifoQueue" if self.fifo => "true",
            "ContentBasedDeduplication" if self.fifo => "false",
            "DeduplicationScope" if self.fifo => "queue",
            "FifoThroughputLimit" if self.fifo => "perQueue",
            _ => return None,
        };
        Some(default.to_owned())
    }

    pub fn config(&self) -> Config {
        let int = |name: &str| self.attribute(name).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
        Config {
            visibility_ms: int("VisibilityTimeout") * 1000,
            retention_ms: int("MessageRetentionPeriod") * 1000,
            delay_ms: int("DelaySeconds") * 1000,
            max_size: int("MaximumMessageSize") as u64,
            wait_s: int("ReceiveMessageWaitTimeSeconds"),
            content_dedup: self.attribute("ContentBasedDeduplication").as_deref() == Some("true"),
            redrive: self.attributes.get("RedrivePolicy").and_then(|p| parse_redrive(p).ok()),
        }
    }
}

/// Validates one attribute for a queue of kind `fifo`; returns the value to store.
pub fn validate(name: &str, value: &str, fifo: bool) -> Result<String> {
    let Some(&(_, fifo_only)) = SETTABLE.iter().find(|(n, _)| *n == name) else {
        return Err(SqsError::attribute_name(name));
    };
    if fifo_only && !fifo {
        return Err(SqsError::attribute_name(name));
    }
    let range = |min: i64, max: i64| match value.trim().parse::<i64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n.to_string()),
        _ => Err(SqsError::attribute_value(name)),
    };
    let one_of = |allowed: &[&str]| {
        allowed.contains(&value).then(|| value.to_owned()).ok_or_else(|| SqsError::attribute_value(name))
    };
    match name {
        "DelaySeconds" => range(0, 900),
        "MaximumMessageSize" => range(1024, MAX_MESSAGE_SIZE as i64),
        "MessageRetentionPeriod" => range(60, 1_209_600),
        "ReceiveMessageWaitTimeSeconds" => range(0, MAX_WAIT_S),
        "VisibilityTimeout" => range(0, MAX_VISIBILITY_S),
        "KmsDataKeyReusePeriodSeconds" => range(60, 86_400),
        "SqsManagedSseEnabled" | "ContentBasedDeduplication" => one_of(&["true", "false"]),
        "FifoQueue" => one_of(&["true"]),
        "DeduplicationScope" => one_of(&["messageGroup", "queue"]),
        "FifoThroughputLimit" => one_of(&["perQueue", "perMessageGroupId"]),
        "Policy" => match serde_json::from_str::<serde_json::Value>(value) {
            Ok(serde_json::Value::Object(_)) => Ok(value.to_owned()),
            _ => Err(SqsError::attribute_value(name)),
        },
        "RedrivePolicy" => {
            let redrive = parse_redrive(value)?;
            let normalized = serde_json::json!({
                "deadLetterTargetArn": redrive.target_arn,
                "maxReceiveCount": redrive.max_receive_count,
            });
            Ok(normalized.to_string())
        }
        "RedriveAllowPolicy" => validate_allow_policy(value),
        _ => Ok(value.to_owned()),
    }
}

pub fn parse_redrive(value: &str) -> Result<Redrive> {
    let bad = |reason: &str| SqsError::bad_value(value, "RedrivePolicy", reason);
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(value) else {
        return Err(bad("Redrive policy is not a valid JSON map."));
    };
    let target = map.get("deadLetterTargetArn").and_then(|v| v.as_str());
    let Some(target_arn) = target.filter(|arn| arn.starts_with("arn:")) else {
        return Err(bad("Redrive policy does not contain mandatory attribute: deadLetterTargetArn."));
    };
    let count = match map.get("maxReceiveCount") {
        Some(serde_json::Value::Number(n)) => n.as_i64(),
        Some(serde_json::Value::String(s)) => s.parse().ok(),
        _ => return Err(bad("Redrive policy does not contain mandatory attribute: maxReceiveCount.")),
    };
    match count {
        Some(n) if (1..=1000).contains(&n) => {
            Ok(Redrive { target_arn: target_arn.to_owned(), max_receive_count: n as u32 })
        }
        _ => Err(bad("Invalid value for maxReceiveCount: must be an integer from 1 to 1000.")),
    }
}

fn validate_allow_policy(value: &str) -> Result<String> {
    let bad = |reason: &str| SqsError::bad_value(value, "RedriveAllowPolicy", reason);
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(value) else {
        return Err(bad(
            "Amazon SQS can't create the redrive allow policy, as it's in an unsupported format.",
        ));
    };
    let sources = map.get("sourceQueueArns").and_then(|v| v.as_array()).map_or(0, Vec::len);
    match map.get("redrivePermission").and_then(|v| v.as_str()) {
        Some("allowAll" | "denyAll") if sources == 0 => Ok(value.to_owned()),
        Some("byQueue") if (1..=10).contains(&sources) => Ok(value.to_owned()),
        Some("byQueue") => Err(bad("Specify 1 to 10 sourceQueueArns when redrivePermission is byQueue.")),
        Some("allowAll" | "denyAll") => {
            Err(bad("Specify sourceQueueArns only when redrivePermission is byQueue."))
        }
        _ => Err(bad("Invalid value for redrivePermission.")),
    }
}

/// Whether a dead-letter queue's `RedriveAllowPolicy` lets `source_arn` use it.
pub fn allows_source(allow_policy: Option<&str>, source_arn: &str) -> bool {
    let Some(policy) = allow_policy.and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok()) else {
        return true;
    };
    match policy["redrivePermission"].as_str() {
        Some("denyAll") => false,
        Some("byQueue") => policy["sourceQueueArns"]
            .as_array()
            .is_some_and(|arns| arns.iter().any(|a| a.as_str() == Some(source_arn))),
        _ => true,
    }
}

/// Queue names: 1–80 of `[A-Za-z0-9_-]`, plus the `.fifo` suffix for FIFO queues.
pub fn valid_name(name: &str, fifo: bool) -> bool {
    let stem = if fifo { name.strip_suffix(".fifo") } else { Some(name) };
    stem.is_some_and(|stem| {
        !stem.is_empty()
            && name.len() <= 80
            && stem.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_ranges_and_kinds() {
        assert_eq!(validate("VisibilityTimeout", "60", false).unwrap(), "60");
        assert_eq!(validate("VisibilityTimeout", "43201", false).unwrap_err().shape, "InvalidAttributeValue");
        assert_eq!(validate("MaximumMessageSize", "1048576", false).unwrap(), "1048576");
        assert!(validate("MaximumMessageSize", "1048577", false).is_err());
        assert_eq!(
            validate("ContentBasedDeduplication", "true", false).unwrap_err().shape,
            "InvalidAttributeName"
        );
        assert_eq!(validate("Bogus", "1", false).unwrap_err().message, "Unknown Attribute Bogus.");
    }

    #[test]
    fn normalizes_redrive_policies() {
        let policy =
            r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:dlq","maxReceiveCount":"3"}"#;
        let stored = validate("RedrivePolicy", policy, false).unwrap();
        let redrive = parse_redrive(&stored).unwrap();
        assert_eq!(redrive.max_receive_count, 3);
        assert!(stored.contains(r#""maxReceiveCount":3"#));
        assert!(validate("RedrivePolicy", r#"{"maxReceiveCount":3}"#, false).is_err());
        assert!(validate("RedrivePolicy", "nope", false).is_err());
    }

    #[test]
    fn allow_policies_gate_sources() {
        assert!(allows_source(None, "arn:a"));
        assert!(!allows_source(Some(r#"{"redrivePermission":"denyAll"}"#), "arn:a"));
        let by_queue = r#"{"redrivePermission":"byQueue","sourceQueueArns":["arn:a"]}"#;
        assert!(allows_source(Some(by_queue), "arn:a"));
        assert!(!allows_source(Some(by_queue), "arn:b"));
        assert!(validate("RedriveAllowPolicy", r#"{"redrivePermission":"byQueue"}"#, false).is_err());
    }

    #[test]
    fn names() {
        assert!(valid_name("orders-1_a", false));
        assert!(valid_name("orders.fifo", true));
        assert!(!valid_name("orders.fifo", false));
        assert!(!valid_name(".fifo", true));
        assert!(!valid_name(&"a".repeat(81), false));
    }
}
