//! Logs Insights: `StartQuery` runs the query at once over the groups' events in the time range
//! (see `crate::insights` for the language nimbus reads) and keeps its results; `GetQueryResults`
//! answers them `Complete`, `DescribeQueries` lists the queries, `StopQuery` finds nothing left to
//! stop. Queries live in memory on the node serving Logs, the last 100.

use nimbus_api::AwsError;
use serde_json::{json, Value};

use super::input::Input;
use crate::errors::{invalid, io};
use crate::insights::{self, Query};
use crate::store::read::{self, Range};
use crate::Logs;

const KEPT: usize = 100;
/// Events read per group at most.
const MAX_SCANNED: usize = 100_000;

impl Logs {
    pub(super) async fn start_query(&self, input: &Input) -> Result<Value, AwsError> {
        let mut names: Vec<String> = Vec::new();
        if let Some(name) = input.str("logGroupName")? {
            names.push(name.to_owned());
        }
        for list in ["logGroupNames", "logGroupIdentifiers"] {
            for name in input.str_list(list)?.unwrap_or_default() {
                names.push(self.name_of_identifier(&name)?);
            }
        }
        if names.is_empty() {
            return Err(invalid("Log group names or identifiers must be specified."));
        }
        let start = input.i64("startTime")?.ok_or_else(|| crate::errors::missing("startTime"))?;
        let end = input.i64("endTime")?.ok_or_else(|| crate::errors::missing("endTime"))?;
        if end < start {
            return Err(invalid("End time should not be before the start time"));
        }
        let text = input.required_str("queryString")?.to_owned();
        let query = Query::parse(&text).map_err(|why| AwsError::new(400, "MalformedQueryException", why))?;
        let limit = input.bounded("limit", 1, 10_000)?.unwrap_or(10_000) as usize;

        let mut records = Vec::new();
        let mut scanned_bytes = 0usize;
        for name in &names {
            let group = self.storage.catalog.group(name).map_err(crate::errors::catalog)?;
            let streams: Vec<(i64, String)> =
                group.streams.values().map(|s| (s.id, s.name.clone())).collect();
            let range = Range {
                from: (start * 1000).max(self.retention_cutoff(&group)),
                until: (end * 1000).saturating_add(1000),
            };
            let root = self.storage.root.clone();
            let ids: Vec<i64> = streams.iter().map(|(id, _)| *id).collect();
            let (found, _) = tokio::task::spawn_blocking(move || {
                read::filter(&root, &ids, range, None, |_| true, MAX_SCANNED)
            })
            .await
            .map_err(|e| io(std::io::Error::other(e)))?
            .map_err(io)?;
            let log = format!("{}:{name}", self.identity.account);
            for (i, event) in found.into_iter().enumerate() {
                scanned_bytes += event.message.len();
                let ptr = format!("{}-{}-{i}", group.id, event.key.timestamp);
                records.push(insights::record(
                    event.key.timestamp,
                    event.key.ingestion,
                    &event.message,
                    &streams[event.stream].1,
                    &log,
                    ptr,
                ));
            }
        }
        // Newest first, as Insights answers without a sort.
        records.sort_by(|a, b| b["@timestamp_ms"].as_i64().cmp(&a["@timestamp_ms"].as_i64()));
        let scanned = records.len();
        let (rows, matched) = query.run(records, limit);
        let results: Vec<Value> = rows
            .into_iter()
            .map(|row| {
                Value::Array(
                    row.into_iter()
                        .map(|(field, value)| {
                            let value = match value {
                                Value::String(s) => s,
                                Value::Number(n) => n
                                    .as_f64()
                                    .filter(|f| f.fract() == 0.0 && f.abs() < 1e15)
                                    .map_or(n.to_string(), |f| format!("{}", f as i64)),
                                other => other.to_string(),
                            };
                            json!({ "field": field, "value": value })
                        })
                        .collect(),
                )
            })
            .collect();
        let id = uuid_like();
        let stored = json!({
            "queryId": id, "queryString": text, "status": "Complete", "createTime": self.storage.now(),
            "logGroupName": names[0],
            "results": results,
            "statistics": { "recordsMatched": matched as f64, "recordsScanned": scanned as f64, "bytesScanned": scanned_bytes as f64 },
        });
        let mut queries = self.queries.lock().unwrap_or_else(|p| p.into_inner());
        queries.push_back((id.clone(), stored));
        while queries.len() > KEPT {
            queries.pop_front();
        }
        Ok(json!({ "queryId": id }))
    }

    fn query(&self, input: &Input) -> Result<Value, AwsError> {
        let id = input.required_str("queryId")?;
        let queries = self.queries.lock().unwrap_or_else(|p| p.into_inner());
        queries
            .iter()
            .find(|(q, _)| q == id)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| AwsError::new(400, "ResourceNotFoundException", "Query does not exist."))
    }

    pub(super) fn get_query_results(&self, input: &Input) -> Result<Value, AwsError> {
        let query = self.query(input)?;
        Ok(json!({ "results": query["results"], "statistics": query["statistics"], "status": "Complete" }))
    }

    pub(super) fn stop_query(&self, input: &Input) -> Result<Value, AwsError> {
        self.query(input)?;
        Ok(json!({ "success": false }))
    }

    pub(super) fn describe_queries(&self, input: &Input) -> Result<Value, AwsError> {
        let group = input.str("logGroupName")?;
        let status = input.str("status")?;
        let queries = self.queries.lock().unwrap_or_else(|p| p.into_inner());
        let listed: Vec<Value> = queries
            .iter()
            .rev()
            .map(|(_, q)| q)
            .filter(|q| group.is_none_or(|g| q["logGroupName"] == g))
            .filter(|q| status.is_none_or(|s| q["status"] == s))
            .map(|q| {
                json!({ "queryId": q["queryId"], "queryString": q["queryString"], "status": q["status"],
                             "createTime": q["createTime"], "logGroupName": q["logGroupName"] })
            })
            .collect();
        Ok(json!({ "queries": listed }))
    }
}

fn uuid_like() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl Logs {
    /// `CreateExportTask`: the group's events in [from, to] are written at once to the S3 bucket,
    /// one gzipped file per stream (`<prefix>/<task id>/<stream>/000000.gz`, lines
    /// `<ISO time> <message>`), and the task is `COMPLETED`.
    pub(super) async fn create_export_task(&self, input: &Input) -> Result<Value, AwsError> {
        let name = input.required_str("logGroupName")?.to_owned();
        let group = self.storage.catalog.group(&name).map_err(crate::errors::catalog)?;
        let from = input.i64("from")?.ok_or_else(|| crate::errors::missing("from"))?;
        let to = input.i64("to")?.ok_or_else(|| crate::errors::missing("to"))?;
        if to < from {
            return Err(invalid("The 'to' time must be after the 'from' time."));
        }
        let bucket = input.required_str("destination")?.to_owned();
        let prefix =
            input.str("destinationPrefix")?.unwrap_or("exportedlogs").trim_end_matches('/').to_owned();
        let stream_prefix = input.str("logStreamNamePrefix")?.unwrap_or("").to_owned();
        let Some(subscriber) = self.subscriber.get().cloned() else {
            return Err(AwsError::new(
                400,
                "InvalidParameterException",
                "Export tasks need S3, which this node cannot reach.",
            ));
        };
        let streams: Vec<(i64, String)> = group
            .streams
            .values()
            .filter(|s| s.name.starts_with(&stream_prefix))
            .map(|s| (s.id, s.name.clone()))
            .collect();
        let task = uuid_like();
        let root = self.storage.root.clone();
        let ids: Vec<i64> = streams.iter().map(|(id, _)| *id).collect();
        let range = Range { from, until: to.saturating_add(1) };
        let (found, _) = tokio::task::spawn_blocking(move || {
            read::filter(&root, &ids, range, None, |_| true, MAX_SCANNED)
        })
        .await
        .map_err(|e| io(std::io::Error::other(e)))?
        .map_err(io)?;
        let mut files: std::collections::BTreeMap<usize, String> = std::collections::BTreeMap::new();
        for event in found {
            let line = files.entry(event.stream).or_default();
            line.push_str(&crate::insights::format_time(event.key.timestamp).replacen(' ', "T", 1));
            line.push_str("Z ");
            line.push_str(&event.message);
            line.push('\n');
        }
        let (task_for_write, bucket_for_write, prefix_for_write) =
            (task.clone(), bucket.clone(), prefix.clone());
        let written = tokio::task::spawn_blocking(move || {
            for (stream, text) in files {
                let key = format!("{prefix_for_write}/{task_for_write}/{}/000000.gz", streams[stream].1);
                subscriber.put_object(&bucket_for_write, &key, crate::deliver::gzip(text.as_bytes()))?;
            }
            Ok::<(), String>(())
        })
        .await
        .map_err(|e| io(std::io::Error::other(e)))?;
        written.map_err(|why| invalid(format!("The export to bucket {bucket} failed: {why}")))?;
        let now = self.storage.now();
        let doc = json!({
            "taskId": task, "taskName": input.str("taskName")?, "logGroupName": name, "from": from, "to": to,
            "destination": bucket, "destinationPrefix": prefix,
            "status": { "code": "COMPLETED", "message": "Completed successfully" },
            "executionInfo": { "creationTime": now, "completionTime": now },
        });
        self.storage.catalog.put_filter("", "export", &task, &doc).map_err(crate::errors::catalog)?;
        Ok(json!({ "taskId": task }))
    }

    pub(super) fn describe_export_tasks(&self, input: &Input) -> Result<Value, AwsError> {
        let id = input.str("taskId")?;
        let code = input.str("statusCode")?;
        let tasks: Vec<Value> = self
            .storage
            .catalog
            .filters(Some(""), "export")
            .map_err(crate::errors::catalog)?
            .into_iter()
            .filter(|t| id.is_none_or(|id| t["taskId"] == id))
            .filter(|t| code.is_none_or(|c| t["status"]["code"] == c))
            .collect();
        Ok(json!({ "exportTasks": tasks }))
    }

    pub(super) fn cancel_export_task(&self, input: &Input) -> Result<Value, AwsError> {
        let id = input.required_str("taskId")?;
        let known = self.storage.catalog.filters(Some(""), "export").map_err(crate::errors::catalog)?;
        if !known.iter().any(|t| t["taskId"] == id) {
            return Err(AwsError::new(
                400,
                "ResourceNotFoundException",
                "The specified export task does not exist.",
            ));
        }
        Err(AwsError::new(400, "InvalidOperationException", "The export task has already finished."))
    }
}
