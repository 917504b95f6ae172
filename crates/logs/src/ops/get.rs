//! `GetLogEvents`: one stream, read forwards or backwards from a token. Tokens are gaps between
//! events; a page's forward token is the gap after its last event and its backward token the gap
//! before its first, and a page that finds nothing hands the caller's token back unchanged.

use nimbus_api::AwsError;
use serde_json::{json, Value};

use super::input::{self, Input};
use crate::errors::{bad_token, catalog, io};
use crate::store::catalog::CatalogError;
use crate::store::read::{self, Range};
use crate::store::segments::StoredEvent;
use crate::tokens::StreamToken;
use crate::Logs;

impl Logs {
    pub(super) async fn get_log_events(&self, input: &Input) -> Result<Value, AwsError> {
        let group = self.target_group(input)?;
        let stream_name = input::stream_name(input.required_str("logStreamName")?, "logStreamName")?;
        let start = input.bounded("startTime", 0, i64::MAX)?;
        let end = input.bounded("endTime", 0, i64::MAX)?;
        let limit = input.bounded("limit", 1, 10_000)?.unwrap_or(10_000) as usize;
        let from_head = input.bool("startFromHead")?.unwrap_or(false);
        let stream = group.streams.get(stream_name).ok_or_else(|| catalog(CatalogError::StreamNotFound))?;
        let stream_id = stream.id;
        let token = match input.str("nextToken")? {
            Some(text) => Some(StreamToken::decode(text, stream_id).ok_or_else(bad_token)?),
            None => None,
        };
        let range = Range {
            from: start.unwrap_or(i64::MIN).max(self.retention_cutoff(&group)),
            until: end.unwrap_or(i64::MAX),
        };
        let root = self.storage.root.clone();
        let (events, forward, backward) = tokio::task::spawn_blocking(move || {
            let start = StreamToken { forward: true, timestamp: range.from.max(0), offset: 0 };
            let (events, here) = match token {
                Some(t) if t.forward => (read::forward(&root, stream_id, range, t.position(), limit)?, t),
                Some(t) => (read::backward(&root, stream_id, range, Some(t.position()), limit)?, t),
                None if from_head => (read::forward(&root, stream_id, range, (i64::MIN, 0), limit)?, start),
                None => (read::backward(&root, stream_id, range, None, limit)?, start),
            };
            Ok::<_, std::io::Error>(page_tokens(events, here))
        })
        .await
        .map_err(|e| io(std::io::Error::other(e)))?
        .map_err(io)?;

        let events: Vec<Value> = events
            .into_iter()
            .map(|e| json!({ "timestamp": e.timestamp, "message": e.message, "ingestionTime": e.ingestion }))
            .collect();
        Ok(json!({
            "events": events,
            "nextForwardToken": forward.encode(stream_id),
            "nextBackwardToken": backward.encode(stream_id),
        }))
    }
}

/// The page's events and its forward and backward tokens; an empty page stays at `here`.
fn page_tokens(events: Vec<StoredEvent>, here: StreamToken) -> (Vec<StoredEvent>, StreamToken, StreamToken) {
    let (forward, backward) = match (events.first(), events.last()) {
        (Some(first), Some(last)) => (
            StreamToken { forward: true, timestamp: last.timestamp, offset: last.offset + 1 },
            StreamToken { forward: false, timestamp: first.timestamp, offset: first.offset },
        ),
        _ => (StreamToken { forward: true, ..here }, StreamToken { forward: false, ..here }),
    };
    (events, forward, backward)
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use crate::ops::testing::{code, logs, ok, NOW};

    fn messages(output: &Value) -> Vec<String> {
        output["events"].as_array().unwrap().iter().map(|e| e["message"].as_str().unwrap().into()).collect()
    }

    #[tokio::test]
    async fn pages_forward_and_backward_with_aws_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let (logs, _) = logs(dir.path());
        ok(&logs, "CreateLogGroup", json!({ "logGroupName": "/g" })).await;
        ok(&logs, "CreateLogStream", json!({ "logGroupName": "/g", "logStreamName": "s" })).await;
        let events: Vec<Value> =
            (0..5).map(|i| json!({ "timestamp": NOW - 100 + i, "message": format!("m{i}") })).collect();
        ok(&logs, "PutLogEvents", json!({ "logGroupName": "/g", "logStreamName": "s", "logEvents": events }))
            .await;
        let base = json!({ "logGroupName": "/g", "logStreamName": "s", "limit": 2 });

        // Default: the latest events, oldest first.
        let latest = ok(&logs, "GetLogEvents", base.clone()).await;
        assert_eq!(messages(&latest), ["m3", "m4"]);
        let mut back = base.clone();
        back["nextToken"] = latest["nextBackwardToken"].clone();
        let earlier = ok(&logs, "GetLogEvents", back.clone()).await;
        assert_eq!(messages(&earlier), ["m1", "m2"]);

        // From the head, forward to the end, where the same token comes back.
        let mut head = base.clone();
        head["startFromHead"] = true.into();
        let first = ok(&logs, "GetLogEvents", head).await;
        assert_eq!(messages(&first), ["m0", "m1"]);
        let mut next = base.clone();
        next["nextToken"] = first["nextForwardToken"].clone();
        let second = ok(&logs, "GetLogEvents", next.clone()).await;
        assert_eq!(messages(&second), ["m2", "m3"]);
        next["nextToken"] = second["nextForwardToken"].clone();
        let third = ok(&logs, "GetLogEvents", next.clone()).await;
        assert_eq!(messages(&third), ["m4"]);
        next["nextToken"] = third["nextForwardToken"].clone();
        let end = ok(&logs, "GetLogEvents", next.clone()).await;
        assert!(messages(&end).is_empty());
        assert_eq!(end["nextForwardToken"], third["nextForwardToken"]);
        assert!(end["nextBackwardToken"].as_str().unwrap().starts_with("b/"));

        // New events show up behind the end token.
        let more = json!([{ "timestamp": NOW, "message": "m5" }]);
        ok(&logs, "PutLogEvents", json!({ "logGroupName": "/g", "logStreamName": "s", "logEvents": more }))
            .await;
        assert_eq!(messages(&ok(&logs, "GetLogEvents", next).await), ["m5"]);

        // Time ranges: endTime is exclusive.
        let window = json!({ "logGroupName": "/g", "logStreamName": "s", "startTime": NOW - 99, "endTime": NOW - 97, "startFromHead": true });
        assert_eq!(messages(&ok(&logs, "GetLogEvents", window).await), ["m1", "m2"]);

        let mut bad = base.clone();
        bad["nextToken"] = "f/123".into();
        assert_eq!(code(&logs, "GetLogEvents", bad).await, "InvalidParameterException");
        let missing = json!({ "logGroupName": "/g", "logStreamName": "nope" });
        assert_eq!(code(&logs, "GetLogEvents", missing).await, "ResourceNotFoundException");
    }
}
