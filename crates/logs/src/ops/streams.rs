//! Log streams: create, delete, describe (by name or by last event time, either direction).

use nimbus_api::AwsError;
use serde_json::{json, Map, Value};

use super::input::{self, Input};
use crate::errors::{bad_token, catalog, constraint, invalid};
use crate::store::catalog::Stream;
use crate::tokens;
use crate::Logs;

impl Logs {
    pub(super) fn create_log_stream(&self, input: &Input) -> Result<Value, AwsError> {
        let group = input::group_name(input.required_str("logGroupName")?, "logGroupName")?;
        let name = input::stream_name(input.required_str("logStreamName")?, "logStreamName")?;
        self.storage.catalog.create_stream(group, name, self.storage.now()).map_err(catalog)?;
        Ok(json!({}))
    }

    pub(super) fn delete_log_stream(&self, input: &Input) -> Result<Value, AwsError> {
        let group = input::group_name(input.required_str("logGroupName")?, "logGroupName")?;
        let name = input::stream_name(input.required_str("logStreamName")?, "logStreamName")?;
        let id = self.storage.catalog.delete_stream(group, name).map_err(catalog)?;
        self.storage.remove(vec![id]);
        Ok(json!({}))
    }

    pub(super) fn describe_log_streams(&self, input: &Input) -> Result<Value, AwsError> {
        let group = self.target_group(input)?;
        let prefix = input.str("logStreamNamePrefix")?;
        if let Some(prefix) = prefix {
            input::stream_name(prefix, "logStreamNamePrefix")?;
        }
        let by_time = match input.str("orderBy")?.unwrap_or("LogStreamName") {
            "LogStreamName" => false,
            "LastEventTime" => true,
            other => {
                let rule = "Member must satisfy enum value set: [LogStreamName, LastEventTime]";
                return Err(constraint(other, "orderBy", rule));
            }
        };
        if by_time && prefix.is_some() {
            return Err(invalid("Cannot order by LastEventTime with a logStreamNamePrefix."));
        }
        let descending = input.bool("descending")?.unwrap_or(false);
        let limit = input.bounded("limit", 1, 50)?.unwrap_or(50) as usize;
        let after =
            input.str("nextToken")?.map(|t| tokens::decode_page(t).ok_or_else(bad_token)).transpose()?;

        let mut streams: Vec<(String, &Stream)> = group
            .streams
            .values()
            .filter(|s| prefix.is_none_or(|p| s.name.starts_with(p)))
            .map(|s| (sort_key(s, by_time), s))
            .collect();
        streams.sort_by(|a, b| a.0.cmp(&b.0));
        if descending {
            streams.reverse();
        }
        let mut remaining = streams.into_iter().filter(|(key, _)| match &after {
            None => true,
            Some(after) if descending => key < after,
            Some(after) => key > after,
        });
        let page: Vec<(String, &Stream)> = remaining.by_ref().take(limit).collect();
        let mut output = json!({
            "logStreams": page.iter().map(|(_, s)| self.stream_json(&group.name, s)).collect::<Vec<_>>(),
        });
        if remaining.next().is_some() {
            if let Some((key, _)) = page.last() {
                output["nextToken"] = tokens::encode_page(key).into();
            }
        }
        Ok(output)
    }

    fn stream_json(&self, group: &str, stream: &Stream) -> Value {
        let mut out = Map::new();
        out.insert("logStreamName".into(), stream.name.clone().into());
        out.insert("creationTime".into(), stream.created.into());
        if let Some(first) = stream.first_event {
            out.insert("firstEventTimestamp".into(), first.into());
        }
        if let Some(last) = stream.last_event {
            out.insert("lastEventTimestamp".into(), last.into());
        }
        if let Some(ingested) = stream.last_ingestion {
            out.insert("lastIngestionTime".into(), ingested.into());
            out.insert("uploadSequenceToken".into(), sequence_token(ingested).into());
        }
        out.insert("arn".into(), format!("{}:log-stream:{}", self.group_arn(group), stream.name).into());
        // AWS has reported 0 for streams since 2019; the group's storedBytes is the real figure.
        out.insert("storedBytes".into(), 0.into());
        Value::Object(out)
    }
}

/// The order streams are listed in: by name, or by last event time (streams without events
/// first), names breaking ties. Zero-padded so that the text orders as the numbers do.
fn sort_key(stream: &Stream, by_time: bool) -> String {
    if by_time {
        format!("{:020}:{}", stream.last_event.unwrap_or(0).max(0), stream.name)
    } else {
        stream.name.clone()
    }
}

/// A sequence token as AWS shows them (ignored on input since 2023).
pub fn sequence_token(ingested: i64) -> String {
    format!("49{:054}", ingested.max(0))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::ops::testing::{code, logs, ok, NOW};

    fn names(output: &serde_json::Value) -> Vec<String> {
        output["logStreams"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["logStreamName"].as_str().unwrap().into())
            .collect()
    }

    #[tokio::test]
    async fn streams_list_by_name_or_last_event_in_pages() {
        let dir = tempfile::tempdir().unwrap();
        let (logs, _) = logs(dir.path());
        ok(&logs, "CreateLogGroup", json!({ "logGroupName": "/g" })).await;
        for (name, at) in [("b", 3), ("a", 1), ("c", 2)] {
            ok(&logs, "CreateLogStream", json!({ "logGroupName": "/g", "logStreamName": name })).await;
            let events = json!([{ "timestamp": NOW - 1000 + at, "message": "x" }]);
            let put = json!({ "logGroupName": "/g", "logStreamName": name, "logEvents": events });
            ok(&logs, "PutLogEvents", put).await;
        }
        let again = json!({ "logGroupName": "/g", "logStreamName": "a" });
        assert_eq!(code(&logs, "CreateLogStream", again).await, "ResourceAlreadyExistsException");
        let no_group = json!({ "logGroupName": "/none", "logStreamName": "a" });
        assert_eq!(code(&logs, "CreateLogStream", no_group).await, "ResourceNotFoundException");

        let first = ok(&logs, "DescribeLogStreams", json!({ "logGroupName": "/g", "limit": 2 })).await;
        assert_eq!(names(&first), ["a", "b"]);
        let token = first["nextToken"].as_str().unwrap();
        let rest =
            ok(&logs, "DescribeLogStreams", json!({ "logGroupName": "/g", "limit": 2, "nextToken": token }))
                .await;
        assert_eq!(names(&rest), ["c"]);
        assert!(rest.get("nextToken").is_none());

        let by_time = json!({ "logGroupIdentifier": "/g", "orderBy": "LastEventTime", "descending": true });
        let latest = ok(&logs, "DescribeLogStreams", by_time).await;
        assert_eq!(names(&latest), ["b", "c", "a"]);
        assert_eq!(latest["logStreams"][0]["lastEventTimestamp"], NOW - 997);
        assert_eq!(
            latest["logStreams"][0]["arn"],
            "arn:aws:logs:us-east-1:000000000000:log-group:/g:log-stream:b"
        );
        let paged =
            json!({ "logGroupName": "/g", "orderBy": "LastEventTime", "descending": true, "limit": 1 });
        let one = ok(&logs, "DescribeLogStreams", paged.clone()).await;
        let mut next = paged;
        next["nextToken"] = one["nextToken"].clone();
        assert_eq!(names(&ok(&logs, "DescribeLogStreams", next).await), ["c"]);

        let both = json!({ "logGroupName": "/g", "orderBy": "LastEventTime", "logStreamNamePrefix": "a" });
        assert_eq!(code(&logs, "DescribeLogStreams", both).await, "InvalidParameterException");
        let prefixed = json!({ "logGroupName": "/g", "logStreamNamePrefix": "b" });
        assert_eq!(names(&ok(&logs, "DescribeLogStreams", prefixed).await), ["b"]);
        let arn = json!({ "logGroupIdentifier": "arn:aws:logs:us-east-1:000000000000:log-group:/g:*" });
        assert_eq!(names(&ok(&logs, "DescribeLogStreams", arn).await).len(), 3);

        ok(&logs, "DeleteLogStream", json!({ "logGroupName": "/g", "logStreamName": "a" })).await;
        let gone = json!({ "logGroupName": "/g", "logStreamName": "a" });
        assert_eq!(code(&logs, "DeleteLogStream", gone).await, "ResourceNotFoundException");
    }
}
