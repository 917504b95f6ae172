//! DynamoDB Streams (`DynamoDBStreams_20120810`): one shard per stream (a documented deviation:
//! AWS splits shards as a table grows), records written in the same transaction as the item
//! change, kept 24 hours; and the plain Rust API an event-source-mapping poller reads them by.

use std::sync::Arc;

use base64::Engine;
use hyper::{HeaderMap, Method, Uri};
use nimbus_api::{ApiRequest, Service, ServiceFuture};
use nimbus_store::params;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::error::{missing, validation, DdbError, Result};
use crate::input::Input;
use crate::store::{parse_sequence, sequence_text};
use crate::DynamoDb;

const TARGET_PREFIX: &str = "DynamoDBStreams_20120810.";
const ITERATOR_MS: i64 = 15 * 60 * 1000;
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A shard of a stream, for pollers.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamShard {
    pub shard_id: String,
    pub parent_shard_id: Option<String>,
    pub closed: bool,
}

/// A record as Lambda's DynamoDB event carries it (with `eventSourceARN`).
#[derive(Debug, Clone)]
pub struct StreamRecordOut {
    /// Zero-padded decimal: compares the same as a string and as a number.
    pub sequence: String,
    pub arrival_ms: i64,
    pub record: Value,
}

struct StreamRow {
    arn: String,
    table_name: String,
    label: String,
    view_type: String,
    key_schema: Value,
    created_ms: i64,
    closed_ms: Option<i64>,
}

fn shard_id(stream: &StreamRow) -> String {
    let digest = Sha256::digest(stream.arn.as_bytes());
    format!(
        "shardId-{:020}-{:02x}{:02x}{:02x}{:02x}",
        stream.created_ms, digest[0], digest[1], digest[2], digest[3]
    )
}

fn stream_not_found(arn: &str) -> DdbError {
    DdbError::new(
        400,
        "ResourceNotFoundException",
        format!("Requested resource not found: Stream: {arn} not found"),
    )
}

impl DynamoDb {
    fn stream_row(&self, arn: &str) -> Result<StreamRow> {
        let row = self.db.query_opt(
            "SELECT arn, table_name, label, view_type, key_schema, created_ms, closed_ms FROM ddb_streams WHERE arn = ?1",
            &params![arn],
        )?;
        let row = row.ok_or_else(|| stream_not_found(arn))?;
        Ok(StreamRow {
            arn: row.get(0)?,
            table_name: row.get(1)?,
            label: row.get(2)?,
            view_type: row.get(3)?,
            key_schema: serde_json::from_str(&row.get::<String>(4)?).unwrap_or(Value::Null),
            created_ms: row.get(5)?,
            closed_ms: row.get(6)?,
        })
    }

    fn shard_of(&self, arn: &str, shard: &str) -> Result<StreamRow> {
        let stream = self.stream_row(arn)?;
        if shard_id(&stream) != shard {
            return Err(DdbError::new(
                400,
                "ResourceNotFoundException",
                format!("Requested resource not found: Shard does not exist: {shard}"),
            ));
        }
        Ok(stream)
    }

    /// Records after sequence `after` (0: from the oldest kept).
    fn records_after(&self, arn: &str, after: i64, limit: usize) -> Result<Vec<(i64, i64, Value)>> {
        let rows = self.db.query(
            &format!("SELECT seq, created_ms, record FROM ddb_stream_records WHERE arn = ?1 AND seq > ?2 ORDER BY seq LIMIT {limit}"),
            &params![arn, after],
        )?;
        rows.iter()
            .map(|r| {
                Ok((r.get(0)?, r.get(1)?, serde_json::from_str(&r.get::<String>(2)?).unwrap_or(Value::Null)))
            })
            .collect()
    }

    fn last_sequence(&self, arn: &str) -> Result<i64> {
        Ok(self
            .db
            .read(|tx| {
                tx.query_value::<Option<i64>>(
                    "SELECT MAX(seq) FROM ddb_stream_records WHERE arn = ?1",
                    &params![arn],
                )
            })?
            .flatten()
            .unwrap_or(0))
    }

    /// The shards of a stream (one per stream here).
    pub fn stream_shards(&self, stream_arn: &str) -> Result<Vec<StreamShard>, String> {
        let stream = self.stream_row(stream_arn).map_err(|e| e.message)?;
        Ok(vec![StreamShard {
            shard_id: shard_id(&stream),
            parent_shard_id: None,
            closed: stream.closed_ms.is_some(),
        }])
    }

    /// Up to `limit` records after `after_sequence` (None: from the trim horizon), as Lambda's
    /// event carries them.
    pub fn stream_read(
        &self,
        stream_arn: &str,
        shard_id: &str,
        after_sequence: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StreamRecordOut>, String> {
        self.shard_of(stream_arn, shard_id).map_err(|e| e.message)?;
        let after = match after_sequence {
            None => 0,
            Some(text) => parse_sequence(text).ok_or_else(|| format!("invalid sequence number {text}"))?,
        };
        let records = self.records_after(stream_arn, after, limit.clamp(1, 10_000)).map_err(|e| e.message)?;
        Ok(records
            .into_iter()
            .map(|(seq, created_ms, mut record)| {
                record["eventSourceARN"] = json!(stream_arn);
                if let Some(identity) = record.get("userIdentity").cloned() {
                    record["userIdentity"] =
                        json!({"type": identity["Type"], "principalId": identity["PrincipalId"]});
                }
                StreamRecordOut { sequence: sequence_text(seq), arrival_ms: created_ms, record }
            })
            .collect())
    }

    /// The sequence to read after for LATEST (None when the shard has no record yet).
    pub fn stream_latest(&self, stream_arn: &str, shard_id: &str) -> Result<Option<String>, String> {
        self.shard_of(stream_arn, shard_id).map_err(|e| e.message)?;
        let last = self.last_sequence(stream_arn).map_err(|e| e.message)?;
        Ok((last > 0).then(|| sequence_text(last)))
    }
}

/// The `dynamodbstreams` service, over a [`DynamoDb`]'s state.
pub struct StreamsService {
    dynamodb: Arc<DynamoDb>,
}

impl StreamsService {
    pub fn new(dynamodb: Arc<DynamoDb>) -> StreamsService {
        StreamsService { dynamodb }
    }

    fn dispatch(&self, operation: &str, body: &[u8]) -> Result<Value> {
        let input = Input::parse(body)?;
        match operation {
            "ListStreams" => self.list_streams(&input),
            "DescribeStream" => self.describe_stream(&input),
            "GetShardIterator" => self.get_shard_iterator(&input),
            "GetRecords" => self.get_records(&input),
            _ => Err(DdbError::new(
                400,
                "UnknownOperationException",
                format!("nimbus does not implement the DynamoDB Streams operation {operation} yet"),
            )),
        }
    }

    fn list_streams(&self, input: &Input) -> Result<Value> {
        let limit = input.int("Limit")?.unwrap_or(100).clamp(1, 100);
        let start = input.str("ExclusiveStartStreamArn")?.unwrap_or("").to_owned();
        let rows = match input.str("TableName")? {
            Some(table) => self.dynamodb.db.query(
                "SELECT arn, table_name, label FROM ddb_streams WHERE arn > ?1 AND table_name = ?2 ORDER BY arn LIMIT ?3",
                &params![start, table, limit + 1],
            )?,
            None => self.dynamodb.db.query(
                "SELECT arn, table_name, label FROM ddb_streams WHERE arn > ?1 ORDER BY arn LIMIT ?2",
                &params![start, limit + 1],
            )?,
        };
        let mut streams: Vec<Value> = rows
            .iter()
            .map(|r| Ok(json!({"StreamArn": r.get::<String>(0)?, "TableName": r.get::<String>(1)?, "StreamLabel": r.get::<String>(2)?})))
            .collect::<Result<_>>()?;
        let more = streams.len() as i64 > limit;
        streams.truncate(limit as usize);
        let mut out = json!({ "Streams": streams });
        if more {
            out["LastEvaluatedStreamArn"] =
                streams.last().map(|s| s["StreamArn"].clone()).unwrap_or(Value::Null);
        }
        Ok(out)
    }

    fn describe_stream(&self, input: &Input) -> Result<Value> {
        let arn = input.required_str("StreamArn")?;
        let stream = self.dynamodb.stream_row(arn)?;
        let first = self
            .dynamodb
            .db
            .read(|tx| {
                tx.query_value::<Option<i64>>(
                    "SELECT MIN(seq) FROM ddb_stream_records WHERE arn = ?1",
                    &params![arn],
                )
            })?
            .flatten();
        let mut range = json!({ "StartingSequenceNumber": sequence_text(first.unwrap_or(1)) });
        if stream.closed_ms.is_some() {
            range["EndingSequenceNumber"] = json!(sequence_text(self.dynamodb.last_sequence(arn)?));
        }
        Ok(json!({ "StreamDescription": {
            "StreamArn": stream.arn,
            "StreamLabel": stream.label,
            "StreamStatus": if stream.closed_ms.is_some() { "DISABLED" } else { "ENABLED" },
            "StreamViewType": stream.view_type,
            "CreationRequestDateTime": stream.created_ms as f64 / 1000.0,
            "TableName": stream.table_name,
            "KeySchema": stream.key_schema,
            "Shards": [{ "ShardId": shard_id(&stream), "SequenceNumberRange": range }],
        }}))
    }

    fn get_shard_iterator(&self, input: &Input) -> Result<Value> {
        let arn = input.required_str("StreamArn")?;
        let shard = input.required_str("ShardId")?;
        let kind = input
            .choice(
                "ShardIteratorType",
                &["TRIM_HORIZON", "LATEST", "AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"],
            )?
            .ok_or_else(|| missing("shardIteratorType"))?;
        self.dynamodb.shard_of(arn, shard)?;
        let sequence = || -> Result<i64> {
            let text = input.str("SequenceNumber")?.ok_or_else(|| {
                validation("Must provide a SequenceNumber for shard iterator type AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER")
            })?;
            parse_sequence(text).ok_or_else(|| validation(format!("Invalid SequenceNumber: {text}")))
        };
        let after = match kind {
            "TRIM_HORIZON" => 0,
            "LATEST" => self.dynamodb.last_sequence(arn)?,
            "AT_SEQUENCE_NUMBER" => sequence()? - 1,
            _ => sequence()?,
        };
        Ok(json!({ "ShardIterator": iterator(arn, shard, after) }))
    }

    fn get_records(&self, input: &Input) -> Result<Value> {
        let text = input.required_str("ShardIterator")?;
        let limit = input.int("Limit")?.unwrap_or(1000);
        if !(1..=1000).contains(&limit) {
            return Err(crate::error::constraint(
                limit,
                "limit",
                "Member must have value less than or equal to 1000",
            ));
        }
        let (arn, shard, after, made) = parse_iterator(text)?;
        if nimbus_store::cluster::now_ms() - made > ITERATOR_MS {
            return Err(DdbError::new(400, "ExpiredIteratorException", "Iterator expired"));
        }
        let stream = self.dynamodb.shard_of(&arn, &shard)?;
        let records = self.dynamodb.records_after(&arn, after, limit as usize)?;
        let last = records.last().map_or(after, |(seq, _, _)| *seq);
        let records: Vec<Value> = records.into_iter().map(|(_, _, record)| record).collect();
        let mut out = json!({ "Records": records });
        let ended = stream.closed_ms.is_some() && last >= self.dynamodb.last_sequence(&arn)?;
        if !ended {
            out["NextShardIterator"] = json!(iterator(&arn, &shard, last));
        }
        Ok(out)
    }
}

fn iterator(arn: &str, shard: &str, after: i64) -> String {
    let now = nimbus_store::cluster::now_ms();
    format!("{}|{}", arn, B64.encode(format!("{shard}|{after}|{now}")))
}

fn parse_iterator(text: &str) -> Result<(String, String, i64, i64)> {
    let bad = || validation("Invalid ShardIterator");
    let (arn, rest) = text.rsplit_once('|').ok_or_else(bad)?;
    let decoded = String::from_utf8(B64.decode(rest).map_err(|_| bad())?).map_err(|_| bad())?;
    let mut parts = decoded.split('|');
    let shard = parts.next().ok_or_else(bad)?.to_owned();
    let after = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let made = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    Ok((arn.to_owned(), shard, after, made))
}

impl Service for StreamsService {
    fn name(&self) -> &'static str {
        "dynamodbstreams"
    }

    fn claims(&self, _method: &Method, _uri: &Uri, headers: &HeaderMap) -> bool {
        claims(headers)
    }

    fn call(&self, request: ApiRequest) -> ServiceFuture<'_> {
        Box::pin(async move {
            let target = request.header("x-amz-target").unwrap_or_default();
            let operation = target.strip_prefix(TARGET_PREFIX).unwrap_or(target).to_owned();
            match self.dispatch(&operation, &request.body) {
                Ok(value) => crate::json_ok(value),
                Err(error) => error.into_response(),
            }
        })
    }
}

/// Whether a request is DynamoDB Streams'.
pub fn claims(headers: &HeaderMap) -> bool {
    headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|target| target.starts_with(TARGET_PREFIX))
}
