//! Streams: create, describe, list, delete, retention.

use nimbus_store::params;
use serde_json::{json, Value};

use crate::error::{self, Result};
use crate::input::{check_name, opt_int, opt_str, req_str, seconds};
use crate::store::{self, NewShard, Stream};
use crate::{hash, Kinesis};

/// Shards an on-demand stream starts with (AWS's default write capacity of 4 MiB/s).
const ON_DEMAND_SHARDS: i64 = 4;
const MIN_RETENTION: i64 = 24;
const MAX_RETENTION: i64 = 8760;

impl Kinesis {
    /// AWS's default shard quota: 500 in the largest regions, 200 elsewhere.
    pub(crate) fn shard_limit(&self) -> i64 {
        match self.identity.region.as_str() {
            "us-east-1" | "us-west-2" | "eu-west-1" => 500,
            _ => 200,
        }
    }

    pub(crate) fn create_stream(&self, input: &Value) -> Result<Value> {
        let name = req_str(input, "StreamName")?;
        check_name(name, "streamName")?;
        let mode =
            input.pointer("/StreamModeDetails/StreamMode").and_then(Value::as_str).unwrap_or("PROVISIONED");
        let count = match mode {
            "PROVISIONED" => match opt_int(input, "ShardCount", 1, i64::MAX)? {
                Some(count) => count,
                None => return Err(error::invalid("ShardCount is required for provisioned streams.")),
            },
            "ON_DEMAND" => {
                if input.get("ShardCount").is_some() {
                    return Err(error::invalid("ShardCount must not be specified for on-demand streams."));
                }
                ON_DEMAND_SHARDS
            }
            other => {
                let constraint = "Member must satisfy enum value set: [PROVISIONED, ON_DEMAND]";
                return Err(error::validation(other, "streamModeDetails.streamMode", constraint));
            }
        };
        let tags = crate::tags::parse_tags(input.get("Tags"))?;
        let now = self.now();
        let arn = self.stream_arn(name);
        let limit = self.shard_limit();
        self.tx_write(|tx| {
            if store::stream_by_name(tx, name).map_err(error::db)?.is_some() {
                return Err(error::in_use(format!(
                    "Stream {name} under account {} already exists.",
                    self.identity.account
                )));
            }
            let open = store::open_shard_count(tx)?;
            if open + count > limit {
                return Err(error::limit(format!(
                    "This request would exceed the shard limit for the account {} in {}. Current limit of shards is {limit}. \
                     Number of shards that would have resulted from this request is {}.",
                    self.identity.account,
                    self.identity.region,
                    open + count
                )));
            }
            let id = uuid::Uuid::new_v4().simple().to_string();
            tx.execute(
                "INSERT INTO streams (id, name, arn, mode, retention_hours, created_ms, next_shard)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                &params![id, name, arn, mode, MIN_RETENTION, now, count],
            )
            .map_err(error::db)?;
            for (index, range) in hash::even_ranges(count as u32).into_iter().enumerate() {
                let shard = NewShard { index: index as i64, parent: None, adjacent_parent: None, range };
                store::insert_shard(tx, &id, &shard, now)?;
            }
            crate::tags::put(tx, &arn, &tags)?;
            Ok(json!({}))
        })
    }

    pub(crate) fn describe_stream(&self, input: &Value) -> Result<Value> {
        let limit = opt_int(input, "Limit", 1, 10_000)?.unwrap_or(100) as usize;
        let after =
            opt_str(input, "ExclusiveStartShardId").map(|id| crate::seq::shard_index(id).unwrap_or(-1));
        let (stream, shards) = self.tx_read(|tx| {
            let stream = self.stream(tx, input)?;
            let shards = store::shards(tx, &stream.id).map_err(error::db)?;
            Ok::<_, nimbus_api::AwsError>((stream, shards))
        })?;
        let horizon = stream.horizon_ms(self.now());
        let listed: Vec<_> = shards
            .iter()
            .filter(|shard| shard.closed_ms.is_none_or(|closed| closed >= horizon))
            .filter(|shard| after.is_none_or(|after| shard.index > after))
            .collect();
        let more = listed.len() > limit;
        let page: Vec<Value> = listed.iter().take(limit).map(|shard| shard_json(shard)).collect();
        let mut description = self.summary_json(&stream, &shards);
        let members = description.as_object_mut().expect("an object");
        members.remove("OpenShardCount");
        members.remove("ConsumerCount");
        members.insert("Shards".into(), Value::Array(page));
        members.insert("HasMoreShards".into(), Value::Bool(more));
        Ok(json!({ "StreamDescription": description }))
    }

    pub(crate) fn describe_stream_summary(&self, input: &Value) -> Result<Value> {
        let (stream, shards, consumers) = self.tx_read(|tx| {
            let stream = self.stream(tx, input)?;
            let shards = store::shards(tx, &stream.id).map_err(error::db)?;
            let consumers: Option<i64> = tx
                .query_value("SELECT COUNT(*) FROM consumers WHERE stream_id = ?1", &params![stream.id])
                .map_err(error::db)?;
            Ok::<_, nimbus_api::AwsError>((stream, shards, consumers.unwrap_or(0)))
        })?;
        let mut summary = self.summary_json(&stream, &shards);
        summary["ConsumerCount"] = json!(consumers);
        Ok(json!({ "StreamDescriptionSummary": summary }))
    }

    fn summary_json(&self, stream: &Stream, shards: &[store::Shard]) -> Value {
        let metrics: Vec<&str> = stream.shard_metrics.split(',').filter(|m| !m.is_empty()).collect();
        let mut summary = json!({
            "StreamName": stream.name,
            "StreamARN": stream.arn,
            "StreamStatus": "ACTIVE",
            "StreamModeDetails": {"StreamMode": stream.mode},
            "RetentionPeriodHours": stream.retention_hours,
            "StreamCreationTimestamp": seconds(stream.created_ms),
            "EnhancedMonitoring": [{"ShardLevelMetrics": metrics}],
            "EncryptionType": stream.encryption_type(),
            "OpenShardCount": shards.iter().filter(|shard| shard.is_open()).count(),
        });
        if let Some(key) = &stream.encryption_key {
            summary["KeyId"] = json!(key);
        }
        summary
    }

    pub(crate) fn list_streams(&self, input: &Value) -> Result<Value> {
        let limit = opt_int(input, "Limit", 1, 10_000)?.unwrap_or(100);
        let after = match opt_str(input, "NextToken") {
            Some(token) => Some(crate::shards::decode_token(token, "ListStreams")?),
            None => opt_str(input, "ExclusiveStartStreamName").map(str::to_owned),
        };
        let sql = format!("SELECT {} FROM streams WHERE name > ?1 ORDER BY name LIMIT ?2", Stream::COLUMNS);
        let rows = self.db.query(&sql, &params![after.unwrap_or_default(), limit + 1]).map_err(error::db)?;
        let mut streams = rows
            .iter()
            .map(Stream::from_row)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(error::db)?;
        let more = streams.len() as i64 > limit;
        streams.truncate(limit as usize);
        let names: Vec<&str> = streams.iter().map(|s| s.name.as_str()).collect();
        let summaries: Vec<Value> = streams
            .iter()
            .map(|s| {
                json!({
                    "StreamName": s.name,
                    "StreamARN": s.arn,
                    "StreamStatus": "ACTIVE",
                    "StreamModeDetails": {"StreamMode": s.mode},
                    "StreamCreationTimestamp": seconds(s.created_ms),
                })
            })
            .collect();
        let mut output = json!({"StreamNames": names, "HasMoreStreams": more, "StreamSummaries": summaries});
        if let (true, Some(last)) = (more, streams.last()) {
            output["NextToken"] = json!(crate::shards::encode_token(&last.name, "ListStreams"));
        }
        Ok(output)
    }

    pub(crate) fn delete_stream(&self, input: &Value) -> Result<Value> {
        let enforce = input.get("EnforceConsumerDeletion").and_then(Value::as_bool).unwrap_or(false);
        self.tx_write(|tx| {
            let stream = self.stream(tx, input)?;
            let consumers: Option<i64> = tx
                .query_value("SELECT COUNT(*) FROM consumers WHERE stream_id = ?1", &params![stream.id])
                .map_err(error::db)?;
            if consumers.unwrap_or(0) > 0 && !enforce {
                return Err(error::in_use(format!(
                    "Stream {} under account {} has registered consumers. Deregister them or set EnforceConsumerDeletion.",
                    stream.name, self.identity.account
                )));
            }
            for table in ["records", "shards", "consumers"] {
                tx.execute(&format!("DELETE FROM {table} WHERE stream_id = ?1"), &params![stream.id])
                    .map_err(error::db)?;
            }
            let consumer_arns = format!("{}/consumer/%", stream.arn);
            tx.execute(
                "DELETE FROM tags WHERE resource_arn = ?1 OR resource_arn LIKE ?2",
                &params![stream.arn, consumer_arns],
            )
            .map_err(error::db)?;
            tx.execute("DELETE FROM streams WHERE id = ?1", &params![stream.id]).map_err(error::db)?;
            Ok(json!({}))
        })
    }

    pub(crate) fn change_retention(&self, input: &Value, increase: bool) -> Result<Value> {
        let hours = opt_int(input, "RetentionPeriodHours", i64::MIN, i64::MAX)?
            .ok_or_else(|| error::missing("retentionPeriodHours"))?;
        self.tx_write(|tx| {
            let stream = self.stream(tx, input)?;
            let current = stream.retention_hours;
            if increase {
                if hours > MAX_RETENTION {
                    return Err(error::invalid(format!(
                        "Maximum allowed retention period is {MAX_RETENTION} hours. Requested retention period ({hours} hours) is too long."
                    )));
                }
                if hours < current {
                    return Err(error::invalid(format!(
                        "Requested retention period ({hours} hours) for stream {} can not be shorter than existing retention period ({current} hours). Use DecreaseRetentionPeriod API.",
                        stream.name
                    )));
                }
            } else {
                if hours < MIN_RETENTION {
                    return Err(error::invalid(format!(
                        "Minimum allowed retention period is {MIN_RETENTION} hours. Requested retention period ({hours} hours) is too short."
                    )));
                }
                if hours > current {
                    return Err(error::invalid(format!(
                        "Requested retention period ({hours} hours) for stream {} can not be longer than existing retention period ({current} hours). Use IncreaseRetentionPeriod API.",
                        stream.name
                    )));
                }
            }
            tx.execute("UPDATE streams SET retention_hours = ?2 WHERE id = ?1", &params![stream.id, hours])
                .map_err(error::db)?;
            Ok(json!({}))
        })
    }

    pub(crate) fn describe_limits(&self) -> Result<Value> {
        let (open, on_demand) = self.tx_read(|tx| {
            let open = store::open_shard_count(tx)?;
            let on_demand: Option<i64> = tx
                .query_value("SELECT COUNT(*) FROM streams WHERE mode = 'ON_DEMAND'", &[])
                .map_err(error::db)?;
            Ok::<_, nimbus_api::AwsError>((open, on_demand.unwrap_or(0)))
        })?;
        Ok(json!({
            "ShardLimit": self.shard_limit(),
            "OpenShardCount": open,
            "OnDemandStreamCount": on_demand,
            "OnDemandStreamCountLimit": 50,
        }))
    }
}

pub(crate) fn shard_json(shard: &store::Shard) -> Value {
    let mut range = json!({"StartingSequenceNumber": crate::seq::format(shard.index, 0)});
    if !shard.is_open() {
        range["EndingSequenceNumber"] = json!(crate::seq::format(shard.index, shard.last_seq()));
    }
    let mut value = json!({
        "ShardId": shard.id(),
        "HashKeyRange": {
            "StartingHashKey": shard.start_hash.to_string(),
            "EndingHashKey": shard.end_hash.to_string(),
        },
        "SequenceNumberRange": range,
    });
    if let Some(parent) = shard.parent {
        value["ParentShardId"] = json!(crate::seq::shard_id(parent));
    }
    if let Some(adjacent) = shard.adjacent_parent {
        value["AdjacentParentShardId"] = json!(crate::seq::shard_id(adjacent));
    }
    value
}
