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
