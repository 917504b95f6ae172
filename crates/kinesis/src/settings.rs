//! A stream's settings besides its shards: enhanced monitoring (recorded and reported; nimbus
//! keeps no shard-level metrics), server-side encryption (recorded and reported as AWS does:
//! records say `EncryptionType: KMS`), and the capacity mode.

use nimbus_store::params;
use serde_json::{json, Value};

use crate::error::{self, Result};
use crate::input::req_str;
use crate::Kinesis;

const METRICS: [&str; 7] = [
    "IncomingBytes",
    "IncomingRecords",
    "OutgoingBytes",
    "OutgoingRecords",
    "WriteProvisionedThroughputExceeded",
    "ReadProvisionedThroughputExceeded",
    "IteratorAgeMilliseconds",
];

fn metric_list(input: &Value) -> Result<Vec<&'static str>> {
    let asked = input
        .get("ShardLevelMetrics")
        .and_then(Value::as_array)
        .ok_or_else(|| error::missing("shardLevelMetrics"))?;
    let mut out = Vec::new();
    for metric in asked {
        let name = metric.as_str().unwrap_or_default();
        if name == "ALL" {
            return Ok(METRICS.to_vec());
        }
        match METRICS.iter().find(|m| **m == name) {
            Some(known) => out.push(*known),
            None => {
                let constraint = "Member must satisfy enum value set: [IncomingBytes, IncomingRecords, OutgoingBytes, OutgoingRecords, WriteProvisionedThroughputExceeded, ReadProvisionedThroughputExceeded, IteratorAgeMilliseconds, ALL]";
                return Err(error::validation(name, "shardLevelMetrics", constraint));
            }
        }
    }
    Ok(out)
}

impl Kinesis {
    pub(crate) fn enhanced_monitoring(&self, input: &Value, enable: bool) -> Result<Value> {
        let asked = metric_list(input)?;
        self.tx_write(|tx| {
            let stream = self.stream(tx, input)?;
            let current: Vec<&str> = stream.shard_metrics.split(',').filter(|m| !m.is_empty()).collect();
            let desired: Vec<&str> = METRICS
                .iter()
                .copied()
                .filter(|m| {
                    if enable {
                        current.contains(m) || asked.contains(m)
                    } else {
                        current.contains(m) && !asked.contains(m)
                    }
                })
                .collect();
            tx.execute(
                "UPDATE streams SET shard_metrics = ?2 WHERE id = ?1",
                &params![stream.id, desired.join(",")],
            )
            .map_err(error::db)?;
            Ok(json!({
                "StreamName": stream.name,
                "StreamARN": stream.arn,
                "CurrentShardLevelMetrics": current,
                "DesiredShardLevelMetrics": desired,
            }))
        })
    }

    pub(crate) fn stream_encryption(&self, input: &Value, start: bool) -> Result<Value> {
        let kind = req_str(input, "EncryptionType")?;
        if kind != "KMS" {
            let constraint = "Member must satisfy enum value set: [KMS]";
            return Err(error::validation(kind, "encryptionType", constraint));
        }
        let key = req_str(input, "KeyId")?;
        if key.is_empty() || key.len() > 2048 {
            return Err(error::validation(key, "keyId", "Member must have length between 1 and 2048"));
        }
        self.tx_write(|tx| {
            let stream = self.stream(tx, input)?;
            let key = start.then_some(key);
            tx.execute("UPDATE streams SET encryption_key = ?2 WHERE id = ?1", &params![stream.id, key])
                .map_err(error::db)?;
            Ok(json!({}))
        })
    }

    pub(crate) fn update_stream_mode(&self, input: &Value) -> Result<Value> {
        let arn = req_str(input, "StreamARN")?;
        let mode = input
            .pointer("/StreamModeDetails/StreamMode")
            .and_then(Value::as_str)
            .ok_or_else(|| error::missing("streamModeDetails"))?;
        if mode != "PROVISIONED" && mode != "ON_DEMAND" {
            let constraint = "Member must satisfy enum value set: [PROVISIONED, ON_DEMAND]";
            return Err(error::validation(mode, "streamModeDetails.streamMode", constraint));
        }
        self.tx_write(|tx| {
            let stream = self.stream(tx, &json!({"StreamARN": arn}))?;
            tx.execute("UPDATE streams SET mode = ?2 WHERE id = ?1", &params![stream.id, mode])
                .map_err(error::db)?;
            Ok(json!({}))
        })
    }
}
