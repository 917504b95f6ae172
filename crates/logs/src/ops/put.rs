//! `PutLogEvents`: AWS's batch rules, then the batch is queued for the writer and the call
//! returns once readers can see it.

use nimbus_api::AwsError;
use serde_json::{json, Map, Value};

use super::input::{self, Input};
use super::streams::sequence_token;
use crate::clock::{DAY_MS, HOUR_MS};
use crate::errors::{busy, catalog, constraint, invalid, missing};
use crate::store::catalog::CatalogError;
use crate::store::read::EVENT_OVERHEAD;
use crate::Logs;

const MAX_EVENTS: usize = 10_000;
const MAX_BATCH_BYTES: usize = 1_048_576;
const MAX_FUTURE_MS: i64 = 2 * HOUR_MS;
const MAX_AGE_MS: i64 = 14 * DAY_MS;
const MAX_SPAN_MS: i64 = 24 * HOUR_MS;

impl Logs {
    pub(super) async fn put_log_events(&self, input: &Input) -> Result<Value, AwsError> {
        let group_name = input::group_name(input.required_str("logGroupName")?, "logGroupName")?;
        let stream_name = input::stream_name(input.required_str("logStreamName")?, "logStreamName")?;
        let events = parse_events(input)?;
        let size: usize = events.iter().map(|(_, m)| m.len() + EVENT_OVERHEAD).sum();
        if size > MAX_BATCH_BYTES {
            return Err(invalid(format!(
                "Upload too large: {size} bytes exceeds limit of {MAX_BATCH_BYTES}"
            )));
        }
        if events.windows(2).any(|pair| pair[0].0 > pair[1].0) {
            return Err(invalid(
                "Log events in a single PutLogEvents request must be in chronological order.",
            ));
        }
        let group = self.storage.catalog.group(group_name).map_err(catalog)?;
        let stream = group.streams.get(stream_name).ok_or_else(|| catalog(CatalogError::StreamNotFound))?;

        let now = self.storage.now();
        let too_old_end = events.partition_point(|(t, _)| *t < now - MAX_AGE_MS);
        let expired_end = events.partition_point(|(t, _)| *t < self.retention_cutoff(&group));
        let too_new_start = events.partition_point(|(t, _)| *t <= now + MAX_FUTURE_MS);
        let first = too_old_end.max(expired_end).min(too_new_start);
        let accepted = &events[first..too_new_start];
        if let (Some(a), Some(b)) = (accepted.first(), accepted.last()) {
            if b.0 - a.0 > MAX_SPAN_MS {
                return Err(invalid(
                    "The batch of log events in a single PutLogEvents request cannot span more than 24 hours.",
                ));
            }
        }
        if !accepted.is_empty() {
            self.storage.put(stream.id, accepted.to_vec(), now).await.map_err(|_| busy())?;
            self.offer_live(group_name, stream_name, accepted);
            self.deliver_subscriptions(group_name, stream_name, accepted.to_vec());
        }

        let mut output = json!({ "nextSequenceToken": sequence_token(now) });
        let mut rejected = Map::new();
        if too_new_start < events.len() {
            rejected.insert("tooNewLogEventStartIndex".into(), too_new_start.into());
        }
        if too_old_end > 0 {
            rejected.insert("tooOldLogEventEndIndex".into(), too_old_end.into());
        }
        if expired_end > 0 {
            rejected.insert("expiredLogEventEndIndex".into(), expired_end.into());
        }
        if !rejected.is_empty() {
            output["rejectedLogEventsInfo"] = Value::Object(rejected);
        }
        Ok(output)
    }
}

fn parse_events(input: &Input) -> Result<Vec<(i64, String)>, AwsError> {
    let items = input.list("logEvents")?.ok_or_else(|| missing("logEvents"))?;
    if items.is_empty() {
        return Err(constraint("[]", "logEvents", "Member must have length greater than or equal to 1"));
    }
    if items.len() > MAX_EVENTS {
        let rule = format!("Member must have length less than or equal to {MAX_EVENTS}");
        return Err(constraint(format!("{} events", items.len()), "logEvents", &rule));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let member = |name: &str| format!("logEvents.{}.member.{name}", i + 1);
            let timestamp = item["timestamp"].as_i64().ok_or_else(|| missing(&member("timestamp")))?;
            let message = item["message"].as_str().ok_or_else(|| missing(&member("message")))?;
            if message.is_empty() {
                let rule = "Member must have length greater than or equal to 1";
                return Err(constraint("", &member("message"), rule));
            }
            Ok((timestamp, message.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use crate::clock::{DAY_MS, HOUR_MS};
    use crate::ops::testing::{call, code, logs, ok, NOW};

    fn put(events: Value) -> Value {
        json!({ "logGroupName": "/p", "logStreamName": "s", "logEvents": events })
    }

    #[tokio::test]
    async fn batches_follow_aws_rules() {
        let dir = tempfile::tempdir().unwrap();
        let (logs, _) = logs(dir.path());
        ok(&logs, "CreateLogGroup", json!({ "logGroupName": "/p" })).await;
        assert_eq!(
            code(&logs, "PutLogEvents", put(json!([{"timestamp": NOW, "message": "x"}]))).await,
            "ResourceNotFoundException"
        );
        ok(&logs, "CreateLogStream", json!({ "logGroupName": "/p", "logStreamName": "s" })).await;

        let unordered = json!([{"timestamp": NOW, "message": "b"}, {"timestamp": NOW - 1, "message": "a"}]);
        let (code_, message) = call(&logs, "PutLogEvents", put(unordered)).await.unwrap_err();
        assert_eq!(code_, "InvalidParameterException");
        assert!(message.contains("chronological order"), "{message}");
        assert_eq!(code(&logs, "PutLogEvents", put(json!([]))).await, "InvalidParameterException");
        let wide =
            json!([{"timestamp": NOW - 2 * DAY_MS, "message": "a"}, {"timestamp": NOW, "message": "b"}]);
        assert_eq!(code(&logs, "PutLogEvents", put(wide)).await, "InvalidParameterException");
        let big = "x".repeat(1_048_576);
        assert_eq!(
            code(&logs, "PutLogEvents", put(json!([{"timestamp": NOW, "message": big}]))).await,
            "InvalidParameterException"
        );

        let mixed = json!([
            {"timestamp": NOW - 15 * DAY_MS, "message": "too old"},
            {"timestamp": NOW - 1, "message": "kept 1"},
            {"timestamp": NOW, "message": "kept 2"},
            {"timestamp": NOW + 3 * HOUR_MS, "message": "too new"},
        ]);
        let output = ok(&logs, "PutLogEvents", put(mixed)).await;
        assert_eq!(
            output["rejectedLogEventsInfo"],
            json!({"tooOldLogEventEndIndex": 1, "tooNewLogEventStartIndex": 3})
        );
        assert!(output["nextSequenceToken"].is_string());
        let read = json!({ "logGroupName": "/p", "logStreamName": "s", "startFromHead": true });
        let events = ok(&logs, "GetLogEvents", read).await;
        let messages: Vec<&str> =
            events["events"].as_array().unwrap().iter().map(|e| e["message"].as_str().unwrap()).collect();
        assert_eq!(messages, ["kept 1", "kept 2"]);
        assert_eq!(events["events"][0]["ingestionTime"], NOW);

        ok(&logs, "PutRetentionPolicy", json!({ "logGroupName": "/p", "retentionInDays": 1 })).await;
        let stale = json!([{"timestamp": NOW - 2 * DAY_MS, "message": "expired"}, {"timestamp": NOW, "message": "ok"}]);
        let output = ok(&logs, "PutLogEvents", put(stale)).await;
        assert_eq!(output["rejectedLogEventsInfo"], json!({"expiredLogEventEndIndex": 1}));
    }
}
