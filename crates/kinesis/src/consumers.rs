//! Enhanced fan-out: consumers registered on a stream, and `SubscribeToShard`, which answers
//! with an event stream of `SubscribeToShardEvent`s.

use std::time::Duration;

use bytes::Bytes;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use nimbus_api::{ApiResponse, AwsError, Body};
use nimbus_store::{params, Row, Tx};
use serde_json::{json, Value};

use crate::error::{self, Result};
use crate::input::{check_name, opt_int, opt_str, opt_time_ms, req_str, seconds};
use crate::records::{children_of, fetch, first_at, record_json};
use crate::store::{self, Stream};
use crate::{seq, Kinesis};
use nimbus_api::eventstream;

const MAX_CONSUMERS: i64 = 20;
/// How long a subscription waits for the first records (AWS keeps it open five minutes).
const SUBSCRIPTION_WAIT: Duration = Duration::from_secs(5);
/// Records per event, and events per subscription.
const EVENT_RECORDS: i64 = 10_000;
const MAX_EVENTS: usize = 10;
/// A subscription's answer stops growing past this.
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

struct Consumer {
    stream_id: String,
    name: String,
    arn: String,
    created_ms: i64,
}

impl Consumer {
    const COLUMNS: &'static str = "stream_id, name, arn, created_ms";

    fn from_row(row: &Row) -> Result<Consumer> {
        let get = |e| error::db(e);
        Ok(Consumer {
            stream_id: row.get(0).map_err(get)?,
            name: row.get(1).map_err(get)?,
            arn: row.get(2).map_err(get)?,
            created_ms: row.get(3).map_err(get)?,
        })
    }
}

impl Kinesis {
    pub(crate) fn register_consumer(&self, input: &Value) -> Result<Value> {
        let stream_arn = req_str(input, "StreamARN")?;
        let name = req_str(input, "ConsumerName")?;
        check_name(name, "consumerName")?;
        let tags = crate::tags::parse_tags(input.get("Tags"))?;
        let now = self.now();
        self.tx_write(|tx| {
            let stream = self.stream(tx, &json!({"StreamARN": stream_arn}))?;
            let count: Option<i64> = tx
                .query_value("SELECT COUNT(*) FROM consumers WHERE stream_id = ?1", &params![stream.id])
                .map_err(error::db)?;
            if let Some(existing) = self.consumer_named(tx, &stream, name)? {
                return Err(error::in_use(format!(
                    "Consumer {} under stream {} already exists for account {}.",
                    existing.name, stream.arn, self.identity.account
                )));
            }
            if count.unwrap_or(0) >= MAX_CONSUMERS {
                return Err(error::limit(format!(
                    "Consumer limit of {MAX_CONSUMERS} exceeded for stream {} under account {}.",
                    stream.arn, self.identity.account
                )));
            }
            let arn = format!("{}/consumer/{name}:{}", stream.arn, now / 1000);
            tx.execute(
                "INSERT INTO consumers (stream_id, name, arn, created_ms) VALUES (?1, ?2, ?3, ?4)",
                &params![stream.id, name, arn, now],
            )
            .map_err(error::db)?;
            crate::tags::put(tx, &arn, &tags)?;
            Ok(json!({"Consumer": {
                "ConsumerName": name,
                "ConsumerARN": arn,
                "ConsumerStatus": "CREATING",
                "ConsumerCreationTimestamp": seconds(now),
            }}))
        })
    }

    fn consumer_named(&self, tx: &mut Tx<'_>, stream: &Stream, name: &str) -> Result<Option<Consumer>> {
        let sql = format!("SELECT {} FROM consumers WHERE stream_id = ?1 AND name = ?2", Consumer::COLUMNS);
        tx.query_opt(&sql, &params![stream.id, name])
            .map_err(error::db)?
            .map(|row| Consumer::from_row(&row))
            .transpose()
    }

    /// The consumer `ConsumerARN` names, or `StreamARN` + `ConsumerName`.
    fn consumer(&self, tx: &mut Tx<'_>, input: &Value) -> Result<(Stream, Consumer)> {
        let found = match (
            opt_str(input, "ConsumerARN"),
            opt_str(input, "StreamARN"),
            opt_str(input, "ConsumerName"),
        ) {
            (Some(arn), _, _) => {
                let sql = format!("SELECT {} FROM consumers WHERE arn = ?1", Consumer::COLUMNS);
                let consumer = tx
                    .query_opt(&sql, &params![arn])
                    .map_err(error::db)?
                    .map(|row| Consumer::from_row(&row))
                    .transpose()?;
                consumer.ok_or_else(|| {
                    error::not_found(format!(
                        "Consumer {arn} under account {} not found.",
                        self.identity.account
                    ))
                })?
            }
            (None, Some(stream_arn), Some(name)) => {
                let stream = self.stream(tx, &json!({"StreamARN": stream_arn}))?;
                self.consumer_named(tx, &stream, name)?.ok_or_else(|| {
                    error::not_found(format!(
                        "Consumer {name} under stream {stream_arn} not found for account {}.",
                        self.identity.account
                    ))
                })?
            }
            _ => {
                return Err(error::invalid(
                    "Either ConsumerARN or both StreamARN and ConsumerName must be provided.",
                ))
            }
        };
        let stream = store::stream_by_id(tx, &found.stream_id)
            .map_err(error::db)?
            .ok_or_else(|| error::not_found(format!("Consumer {} not found.", found.arn)))?;
        Ok((stream, found))
    }

    pub(crate) fn describe_consumer(&self, input: &Value) -> Result<Value> {
        let (stream, consumer) = self.tx_read(|tx| self.consumer(tx, input))?;
        Ok(json!({"ConsumerDescription": {
            "ConsumerName": consumer.name,
            "ConsumerARN": consumer.arn,
            "ConsumerStatus": "ACTIVE",
            "ConsumerCreationTimestamp": seconds(consumer.created_ms),
            "StreamARN": stream.arn,
        }}))
    }

    pub(crate) fn list_consumers(&self, input: &Value) -> Result<Value> {
        let stream_arn = req_str(input, "StreamARN")?;
        let max = opt_int(input, "MaxResults", 1, 10_000)?.unwrap_or(100) as usize;
        let after = match opt_str(input, "NextToken") {
            Some(token) => crate::shards::decode_token(token, "ListStreamConsumers")?,
            None => String::new(),
        };
        let consumers = self.tx_read(|tx| {
            let stream = self.stream(tx, &json!({"StreamARN": stream_arn}))?;
            let sql = format!(
                "SELECT {} FROM consumers WHERE stream_id = ?1 AND name > ?2 ORDER BY name",
                Consumer::COLUMNS
            );
            let rows = tx.query(&sql, &params![stream.id, after]).map_err(error::db)?;
            rows.iter().map(Consumer::from_row).collect::<Result<Vec<_>>>()
        })?;
        let page: Vec<Value> = consumers
            .iter()
            .take(max)
            .map(|c| {
                json!({
                    "ConsumerName": c.name,
                    "ConsumerARN": c.arn,
                    "ConsumerStatus": "ACTIVE",
                    "ConsumerCreationTimestamp": seconds(c.created_ms),
                })
            })
            .collect();
        let mut output = json!({"Consumers": page});
        if consumers.len() > max {
            output["NextToken"] =
                json!(crate::shards::encode_token(&consumers[max - 1].name, "ListStreamConsumers"));
        }
        Ok(output)
    }

    pub(crate) fn deregister_consumer(&self, input: &Value) -> Result<Value> {
        self.tx_write(|tx| {
            let (_, consumer) = self.consumer(tx, input)?;
            tx.execute("DELETE FROM consumers WHERE arn = ?1", &params![consumer.arn]).map_err(error::db)?;
            tx.execute("DELETE FROM tags WHERE resource_arn = ?1", &params![consumer.arn])
                .map_err(error::db)?;
            Ok(json!({}))
        })
    }

    /// Waits (up to [`SUBSCRIPTION_WAIT`]) for records at the starting position, then answers
    /// every record up to the shard's tip as events, and ends.
    pub(crate) async fn subscribe_to_shard(
        &self,
        input: &Value,
    ) -> std::result::Result<ApiResponse, AwsError> {
        let shard_id = req_str(input, "ShardId")?;
        let position = input.get("StartingPosition").ok_or_else(|| error::missing("startingPosition"))?;
        let kind = req_str(position, "Type")?;
        let mut written = self.written();
        let (stream, shard, mut from) = self.tx_read(|tx| {
            let (stream, _) = self.consumer(tx, input)?;
            let shard = self.shard_of(tx, &stream, shard_id)?;
            let from = match kind {
                "TRIM_HORIZON" => 1,
                "LATEST" => shard.next_seq,
                "AT_SEQUENCE_NUMBER" | "AFTER_SEQUENCE_NUMBER" => {
                    let text = opt_str(position, "SequenceNumber")
                        .ok_or_else(|| error::invalid(format!("SequenceNumber must be specified for StartingPosition {kind}.")))?;
                    let at = self.position_in(&shard, text)?;
                    if kind == "AT_SEQUENCE_NUMBER" { at } else { at + 1 }
                }
                "AT_TIMESTAMP" => {
                    let at = opt_time_ms(position, "Timestamp")
                        .ok_or_else(|| error::invalid("Timestamp must be specified for StartingPosition AT_TIMESTAMP."))?;
                    first_at(tx, &stream, &shard, at)?
                }
                other => {
                    let constraint = "Member must satisfy enum value set: [AT_SEQUENCE_NUMBER, AFTER_SEQUENCE_NUMBER, TRIM_HORIZON, LATEST, AT_TIMESTAMP]";
                    return Err(error::validation(other, "startingPosition.type", constraint));
                }
            };
            Ok::<_, AwsError>((stream, shard, from))
        })?;
        let deadline = tokio::time::Instant::now() + SUBSCRIPTION_WAIT;
        let mut body = eventstream::event("initial-response", b"{}");
        let mut events = 0;
        loop {
            let now = self.now();
            let (rows, shard) = self.tx_read(|tx| {
                let shard = store::shard(tx, &stream.id, shard.index)
                    .map_err(error::db)?
                    .unwrap_or_else(|| shard.clone());
                Ok::<_, AwsError>((fetch(tx, &stream, shard.index, from, EVENT_RECORDS, now)?, shard))
            })?;
            let next = rows.last().map_or(from, |row| row.position + 1);
            let drained = !shard.is_open() && next >= shard.next_seq;
            let waiting = rows.is_empty() && !drained && tokio::time::Instant::now() < deadline;
            if waiting && events == 0 {
                let _ = tokio::time::timeout_at(deadline, written.changed()).await;
                continue;
            }
            let behind = match rows.last() {
                Some(last) if next < shard.next_seq => (now - last.arrival_ms).max(0),
                _ => 0,
            };
            let records: Vec<Value> = rows.iter().map(|row| record_json(&stream, shard.index, row)).collect();
            let mut event = json!({
                "Records": records,
                "ContinuationSequenceNumber": seq::format(shard.index, next - 1),
                "MillisBehindLatest": behind,
            });
            if drained {
                event["ChildShards"] =
                    Value::Array(self.tx_read(|tx| children_of(tx, &stream, shard.index))?);
            }
            body.extend(eventstream::event("SubscribeToShardEvent", event.to_string().as_bytes()));
            events += 1;
            from = next;
            let full = events >= MAX_EVENTS || body.len() > MAX_BODY_BYTES;
            if rows.is_empty() || drained || next >= shard.next_seq || full {
                break;
            }
        }
        let mut response = ApiResponse::new(Body::new(Bytes::from(body)));
        response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(eventstream::CONTENT_TYPE));
        Ok(response)
    }
}
