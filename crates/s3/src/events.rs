//! AWS's S3 event record (eventVersion 2.1) and `s3:TestEvent` message, built exactly as AWS
//! delivers them to Lambda and SQS.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{json, Value};

use crate::context::{iso8601, ObjectEvent};

/// URL-encodes a key as S3 does in event records (and `encoding-type=url` listings):
/// form-style, spaces as `+`, `/` and `-_.*` left alone, everything else `%XX`.
pub fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for byte in key.bytes() {
        match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' | b'/' => {
                out.push(byte as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// Event sequencers: hex, fixed width, increasing (per key and overall), also across restarts
/// because they start from the clock.
#[derive(Default)]
pub struct Sequencer {
    last: AtomicU64,
}

impl Sequencer {
    pub fn next(&self) -> String {
        let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos() as u64;
        let mut previous = self.last.load(Ordering::Relaxed);
        loop {
            let value = now.max(previous + 1);
            match self.last.compare_exchange_weak(previous, value, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return format!("{value:018X}"),
                Err(actual) => previous = actual,
            }
        }
    }
}

/// What a record says beyond the object event itself.
pub struct RecordContext<'a> {
    pub region: &'a str,
    pub account: &'a str,
    pub bucket: &'a str,
    pub request_id: &'a str,
    pub host_id: &'a str,
    pub source_ip: &'a str,
    pub configuration_id: &'a str,
    pub time_ms: i64,
    pub sequencer: &'a str,
}

/// The full `{"Records":[record]}` document for one object event.
/// The detail of EventBridge's S3 events, with the detail type first: ("Object Created",
/// detail) — as S3 sends them to the default bus when `EventBridgeConfiguration` is on.
pub fn event_bridge_detail(
    bucket: &str,
    event: &ObjectEvent,
    sequencer: &str,
    request_id: &str,
    account: &str,
    source_ip: &str,
) -> Value {
    let created = event.name.starts_with("ObjectCreated");
    let mut object = json!({ "key": event.key, "sequencer": sequencer });
    if let Some(size) = event.size {
        object["size"] = json!(size);
    }
    if let Some(etag) = &event.etag {
        object["etag"] = json!(etag);
    }
    let reason = match event.name {
        "ObjectCreated:Put" => "PutObject",
        "ObjectCreated:Copy" => "CopyObject",
        "ObjectCreated:CompleteMultipartUpload" => "CompleteMultipartUpload",
        "ObjectCreated:Post" => "PostObject",
        _ => "DeleteObject",
    };
    let mut detail = json!({
        "version": "0",
        "bucket": { "name": bucket },
        "object": object,
        "request-id": request_id,
        "requester": account,
        "source-ip-address": source_ip,
        "reason": reason,
    });
    if !created {
        detail["deletion-type"] = json!("Permanently Deleted");
    }
    json!({ "detail-type": if created { "Object Created" } else { "Object Deleted" }, "detail": detail })
}

pub fn document(ctx: &RecordContext<'_>, event: &ObjectEvent) -> Value {
    let mut object = json!({ "key": encode_key(&event.key), "sequencer": ctx.sequencer });
    if let Some(size) = event.size {
        object["size"] = json!(size);
    }
    if let Some(etag) = &event.etag {
        object["eTag"] = json!(etag);
    }
    let record = json!({
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": ctx.region,
        "eventTime": iso8601(ctx.time_ms),
        "eventName": event.name,
        "userIdentity": { "principalId": ctx.account },
        "requestParameters": { "sourceIPAddress": ctx.source_ip },
        "responseElements": { "x-amz-request-id": ctx.request_id, "x-amz-id-2": ctx.host_id },
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": ctx.configuration_id,
            "bucket": {
                "name": ctx.bucket,
                "ownerIdentity": { "principalId": ctx.account },
                "arn": format!("arn:aws:s3:::{}", ctx.bucket),
            },
            "object": object,
        },
    });
    json!({ "Records": [record] })
}

/// The message S3 sends to each queue when a notification configuration is set.
pub fn test_event(bucket: &str, request_id: &str, host_id: &str, time_ms: i64) -> Value {
    json!({
        "Service": "Amazon S3",
        "Event": "s3:TestEvent",
        "Time": iso8601(time_ms),
        "Bucket": bucket,
        "RequestId": request_id,
        "HostId": host_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_encoded_like_aws_events() {
        assert_eq!(encode_key("Happy Face.jpg"), "Happy+Face.jpg");
        assert_eq!(encode_key("dt=2024-01-01/a+b.json"), "dt%3D2024-01-01/a%2Bb.json");
        assert_eq!(encode_key("é"), "%C3%A9");
        assert_eq!(encode_key("a*b_c-d.e"), "a*b_c-d.e");
    }

    #[test]
    fn sequencers_increase_and_keep_their_width() {
        let sequencer = Sequencer::default();
        let (a, b) = (sequencer.next(), sequencer.next());
        assert!(b > a, "{a} {b}");
        assert_eq!(a.len(), 18);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn record_matches_the_documented_shape() {
        let ctx = RecordContext {
            region: "us-east-1",
            account: "000000000000",
            bucket: "sourcebucket",
            request_id: "C3D13FE58DE4C810",
            host_id: "HOST",
            source_ip: "127.0.0.1",
            configuration_id: "testConfigRule",
            time_ms: 123,
            sequencer: "0055AED6DCD90281E5",
        };
        let event = ObjectEvent {
            name: "ObjectCreated:Put",
            key: "Happy Face.jpg".into(),
            size: Some(1024),
            etag: Some("d41d8cd98f00b204e9800998ecf8427e".into()),
        };
        let doc = document(&ctx, &event);
        let record = &doc["Records"][0];
        // Every field of aws-lambda-go's s3-event.json sample, with eventVersion 2.1.
        let sample: Value = serde_json::from_str(include_str!("../tests/s3-event-sample.json")).unwrap();
        assert_same_shape(&sample["Records"][0], record, "");
        assert_eq!(record["eventVersion"], "2.1");
        assert_eq!(record["eventTime"], "1970-01-01T00:00:00.123Z");
        assert_eq!(record["s3"]["object"]["key"], "Happy+Face.jpg");
        assert_eq!(record["s3"]["object"]["size"], 1024);
        assert_eq!(record["s3"]["bucket"]["arn"], "arn:aws:s3:::sourcebucket");
        assert_eq!(record["responseElements"]["x-amz-request-id"], "C3D13FE58DE4C810");

        let removed = ObjectEvent { name: "ObjectRemoved:Delete", key: "k".into(), size: None, etag: None };
        let object = &document(&ctx, &removed)["Records"][0]["s3"]["object"];
        assert_eq!(object.as_object().unwrap().len(), 2, "{object}");
    }

    /// Every key of `expected` is present in `actual` with a value of the same JSON type
    /// (`versionId` only exists for versioned buckets).
    fn assert_same_shape(expected: &Value, actual: &Value, path: &str) {
        let Value::Object(fields) = expected else {
            let same = std::mem::discriminant(expected) == std::mem::discriminant(actual);
            assert!(same, "{path}: expected like {expected}, got {actual}");
            return;
        };
        for (name, value) in fields {
            if name == "versionId" {
                continue;
            }
            let child = actual.get(name).unwrap_or_else(|| panic!("{path}.{name} missing in {actual}"));
            assert_same_shape(value, child, &format!("{path}.{name}"));
        }
    }
}
