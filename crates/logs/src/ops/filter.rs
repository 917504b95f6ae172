//! `FilterLogEvents`: a group's streams (all, named, or by prefix) merged in time order, matched
//! against a filter pattern, in pages that carry a `nextToken` only while more events match.

use nimbus_api::AwsError;
use serde_json::{json, Value};

use super::input::{self, Input};
use crate::errors::{bad_token, invalid, io};
use crate::pattern::Pattern;
use crate::store::read::{self, Range};
use crate::tokens;
use crate::Logs;

impl Logs {
    pub(super) async fn filter_log_events(&self, input: &Input) -> Result<Value, AwsError> {
        let group = self.target_group(input)?;
        let names = input.str_list("logStreamNames")?;
        let prefix = input.str("logStreamNamePrefix")?;
        if names.is_some() && prefix.is_some() {
            return Err(invalid("logStreamNames and logStreamNamePrefix are mutually exclusive parameters."));
        }
        if let Some(names) = &names {
            if names.is_empty() || names.len() > 100 {
                let rule = "Member must have length between 1 and 100";
                return Err(crate::errors::constraint(names.len(), "logStreamNames", rule));
            }
            for name in names {
                input::stream_name(name, "logStreamNames")?;
            }
        }
        let start = input.bounded("startTime", 0, i64::MAX)?;
        let end = input.bounded("endTime", 0, i64::MAX)?;
        let limit = input.bounded("limit", 1, 10_000)?.unwrap_or(10_000) as usize;
        let text = input.str("filterPattern")?.unwrap_or_default();
        if text.len() > 1024 {
            let rule = "Member must have length less than or equal to 1024";
            return Err(crate::errors::constraint(text, "filterPattern", rule));
        }
        let pattern =
            Pattern::parse(text).map_err(|e| invalid(format!("Invalid filter pattern: {}", e.0)))?;
        let after =
            input.str("nextToken")?.map(|t| tokens::decode_filter(t).ok_or_else(bad_token)).transpose()?;

        let streams: Vec<(i64, String)> = group
            .streams
            .values()
            .filter(|s| names.as_ref().is_none_or(|names| names.contains(&s.name)))
            .filter(|s| prefix.is_none_or(|p| s.name.starts_with(p)))
            .map(|s| (s.id, s.name.clone()))
            .collect();
        let range = Range {
            from: start.unwrap_or(i64::MIN).max(self.retention_cutoff(&group)),
            // endTime is inclusive here ("later than this time are not returned").
            until: end.map_or(i64::MAX, |end| end.saturating_add(1)),
        };
        let root = self.storage.root.clone();
        let ids: Vec<i64> = streams.iter().map(|(id, _)| *id).collect();
        let (found, more) = tokio::task::spawn_blocking(move || {
            read::filter(&root, &ids, range, after, |message| pattern.matches(message), limit)
        })
        .await
        .map_err(|e| io(std::io::Error::other(e)))?
        .map_err(io)?;

        let next = found.last().filter(|_| more).map(|last| tokens::encode_filter(&last.key));
        let events: Vec<Value> = found
            .into_iter()
            .map(|f| {
                json!({
                    "logStreamName": streams[f.stream].1,
                    "timestamp": f.key.timestamp,
                    "message": f.message,
                    "ingestionTime": f.key.ingestion,
                    "eventId": event_id(f.key.stream_id, f.key.timestamp, f.key.offset),
                })
            })
            .collect();
        let mut output = json!({ "events": events, "searchedLogStreams": [] });
        if let Some(token) = next {
            output["nextToken"] = token.into();
        }
        Ok(output)
    }
}

/// 56 digits, as AWS's event ids look, unique within the group and stable across calls (the
/// aws CLI's `logs tail --follow` deduplicates by it).
fn event_id(stream_id: i64, timestamp: i64, offset: u64) -> String {
    format!("{:019}{offset:019}{:018}", timestamp.max(0), stream_id.rem_euclid(1_000_000_000_000_000_000))
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use crate::ops::testing::{code, logs, ok, NOW};

    fn messages(output: &Value) -> Vec<String> {
        output["events"].as_array().unwrap().iter().map(|e| e["message"].as_str().unwrap().into()).collect()
    }

    async fn setup(logs: &crate::Logs) {
        ok(logs, "CreateLogGroup", json!({ "logGroupName": "/f" })).await;
        let streams = [
            ("app-1", vec![(1, "INFO start"), (4, "ERROR disk full"), (6, r#"{"level":"ERROR","ms":120}"#)]),
            ("app-2", vec![(2, "WARN slow"), (3, "ERROR timeout"), (5, r#"{"level":"INFO","ms":5}"#)]),
            ("web", vec![(7, "GET /index.html 200")]),
        ];
        for (stream, events) in streams {
            ok(logs, "CreateLogStream", json!({ "logGroupName": "/f", "logStreamName": stream })).await;
            let events: Vec<Value> =
                events.iter().map(|(t, m)| json!({ "timestamp": NOW - 100 + t, "message": m })).collect();
            ok(
                logs,
                "PutLogEvents",
                json!({ "logGroupName": "/f", "logStreamName": stream, "logEvents": events }),
            )
            .await;
        }
    }

    #[tokio::test]
    async fn patterns_streams_and_time_ranges_select_events_in_time_order() {
        let dir = tempfile::tempdir().unwrap();
        let (logs, _) = logs(dir.path());
        setup(&logs).await;
        let filter = |extra: Value| {
            let mut body = json!({ "logGroupName": "/f" });
            body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            body
        };
        let all = ok(&logs, "FilterLogEvents", filter(json!({}))).await;
        assert_eq!(messages(&all).len(), 7);
        assert_eq!(all["events"][1]["logStreamName"], "app-2");
        assert_eq!(all["events"][1]["eventId"].as_str().unwrap().len(), 56);
        assert!(all.get("nextToken").is_none());
        let errors = ok(&logs, "FilterLogEvents", filter(json!({ "filterPattern": "ERROR" }))).await;
        assert_eq!(messages(&errors), ["ERROR timeout", "ERROR disk full", r#"{"level":"ERROR","ms":120}"#]);
        let either = ok(&logs, "FilterLogEvents", filter(json!({ "filterPattern": "?WARN ?timeout" }))).await;
        assert_eq!(messages(&either), ["WARN slow", "ERROR timeout"]);
        let json_errors = filter(json!({ "filterPattern": "{ $.level = \"ERROR\" && $.ms > 100 }" }));
        assert_eq!(
            messages(&ok(&logs, "FilterLogEvents", json_errors).await),
            [r#"{"level":"ERROR","ms":120}"#]
        );
        let phrase = filter(json!({ "filterPattern": "\"disk full\"", "logStreamNames": ["app-1", "web"] }));
        assert_eq!(messages(&ok(&logs, "FilterLogEvents", phrase).await), ["ERROR disk full"]);
        let prefixed = filter(json!({ "logStreamNamePrefix": "app-2", "filterPattern": "-ERROR" }));
        assert_eq!(
            messages(&ok(&logs, "FilterLogEvents", prefixed).await),
            ["WARN slow", r#"{"level":"INFO","ms":5}"#]
        );
        let window = filter(json!({ "startTime": NOW - 97, "endTime": NOW - 95 }));
        assert_eq!(
            messages(&ok(&logs, "FilterLogEvents", window).await),
            ["ERROR timeout", "ERROR disk full", r#"{"level":"INFO","ms":5}"#]
        );
        let by_arn = json!({ "logGroupIdentifier": "arn:aws:logs:us-east-1:000000000000:log-group:/f", "filterPattern": "GET" });
        assert_eq!(messages(&ok(&logs, "FilterLogEvents", by_arn).await), ["GET /index.html 200"]);

        let both = filter(json!({ "logStreamNames": ["a"], "logStreamNamePrefix": "a" }));
        assert_eq!(code(&logs, "FilterLogEvents", both).await, "InvalidParameterException");
        assert_eq!(
            code(&logs, "FilterLogEvents", filter(json!({ "filterPattern": "{ $.a = " }))).await,
            "InvalidParameterException"
        );
        let both_ids = json!({ "logGroupName": "/f", "logGroupIdentifier": "/f" });
        assert_eq!(code(&logs, "FilterLogEvents", both_ids).await, "InvalidParameterException");
        assert_eq!(
            code(&logs, "FilterLogEvents", json!({ "logGroupName": "/none" })).await,
            "ResourceNotFoundException"
        );
    }

    #[tokio::test]
    async fn pages_follow_next_tokens_until_none() {
        let dir = tempfile::tempdir().unwrap();
        let (logs, _) = logs(dir.path());
        setup(&logs).await;
        let mut seen = Vec::new();
        let mut body = json!({ "logGroupName": "/f", "limit": 3 });
        loop {
            let page = ok(&logs, "FilterLogEvents", body.clone()).await;
            seen.extend(messages(&page));
            match page.get("nextToken") {
                Some(token) => body["nextToken"] = token.clone(),
                None => break,
            }
        }
        assert_eq!(seen.len(), 7);
        assert_eq!(seen[0], "INFO start");
        assert_eq!(seen[6], "GET /index.html 200");
        body["nextToken"] = "???".into();
        assert_eq!(code(&logs, "FilterLogEvents", body).await, "InvalidParameterException");
    }
}
