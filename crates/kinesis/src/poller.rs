//! The plain Rust face for pollers in this process (Lambda's event source mappings, reached
//! through an adapter in the binary) and for targets that write records (EventBridge, SNS).

use nimbus_api::AwsError;
use serde_json::json;

use crate::records::{fetch, first_at, Entry, Outcome};
use crate::store::{self, Stream};
use crate::{error, seq, Kinesis};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardInfo {
    pub shard_id: String,
    pub parent_shard_id: Option<String>,
    pub adjacent_parent_shard_id: Option<String>,
    /// No record will ever be written to it again (split or merged): once read to its end,
    /// its children may be read.
    pub closed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRecord {
    pub sequence: String,
    pub partition_key: String,
    pub data: Vec<u8>,
    pub arrival_ms: i64,
}

/// Where a reader that has no checkpoint starts (besides the trim horizon).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    Latest,
    /// Milliseconds since the epoch.
    Timestamp(i64),
}

fn text(error: AwsError) -> String {
    format!("{}: {}", error.code, error.message)
}

impl Kinesis {
    fn stream_for(&self, tx: &mut nimbus_store::Tx<'_>, stream: &str) -> crate::error::Result<Stream> {
        let selector = if stream.starts_with("arn:") {
            json!({"StreamARN": stream})
        } else {
            json!({"StreamName": stream})
        };
        self.stream(tx, &selector)
    }

    /// The stream's shards still within retention, parents before children.
    pub fn shards(&self, stream_arn: &str) -> Result<Vec<ShardInfo>, String> {
        let now = self.now();
        let (stream, shards) = self
            .tx_read(|tx| {
                let stream = self.stream_for(tx, stream_arn)?;
                let shards = store::shards(tx, &stream.id).map_err(error::db)?;
                Ok::<_, AwsError>((stream, shards))
            })
            .map_err(text)?;
        let horizon = stream.horizon_ms(now);
        Ok(shards
            .iter()
            .filter(|s| s.closed_ms.is_none_or(|closed| closed >= horizon))
            .map(|s| ShardInfo {
                shard_id: s.id(),
                parent_shard_id: s.parent.map(seq::shard_id),
                adjacent_parent_shard_id: s.adjacent_parent.map(seq::shard_id),
                closed: !s.is_open(),
            })
            .collect())
    }

    /// Up to `limit` records of a shard after sequence number `after_sequence` (from the trim
    /// horizon when `None`), in order.
    pub fn read(
        &self,
        stream_arn: &str,
        shard_id: &str,
        after_sequence: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StreamRecord>, String> {
        let now = self.now();
        let limit = limit.clamp(1, 10_000) as i64;
        self.tx_read(|tx| {
            let stream = self.stream_for(tx, stream_arn)?;
            let shard = self.shard_of(tx, &stream, shard_id)?;
            let from = match after_sequence {
                Some(sequence) => self.position_in(&shard, sequence)? + 1,
                None => 1,
            };
            let rows = fetch(tx, &stream, shard.index, from, limit, now)?;
            Ok::<_, AwsError>(
                rows.into_iter()
                    .map(|row| StreamRecord {
                        sequence: seq::format(shard.index, row.position),
                        partition_key: row.partition_key,
                        data: row.data,
                        arrival_ms: row.arrival_ms,
                    })
                    .collect(),
            )
        })
        .map_err(text)
    }

    /// The sequence number to read after for a reader starting at `at`: the shard's last
    /// record for `Latest`; for a timestamp, the record before the first that arrived at or
    /// after it. `None`: read from the trim horizon.
    pub fn position(&self, stream_arn: &str, shard_id: &str, at: StartAt) -> Result<Option<String>, String> {
        self.tx_read(|tx| {
            let stream = self.stream_for(tx, stream_arn)?;
            let shard = self.shard_of(tx, &stream, shard_id)?;
            let next = match at {
                StartAt::Latest => shard.next_seq,
                StartAt::Timestamp(ms) => first_at(tx, &stream, &shard, ms)?,
            };
            Ok::<_, AwsError>((next > 1).then(|| seq::format(shard.index, next - 1)))
        })
        .map_err(text)
    }

    /// Writes one record (by stream name or ARN); `(shard id, sequence number)` once committed.
    /// Throttled by `--kinesis-limits` like `PutRecord`.
    pub fn put_record(
        &self,
        stream: &str,
        partition_key: &str,
        data: &[u8],
    ) -> Result<(String, String), AwsError> {
        let selector = if stream.starts_with("arn:") {
            json!({"StreamARN": stream})
        } else {
            json!({"StreamName": stream})
        };
        if partition_key.is_empty() || partition_key.chars().count() > 256 {
            return Err(error::invalid("PartitionKey must be 1 to 256 characters."));
        }
        let entry =
            Entry { partition_key: partition_key.to_owned(), explicit_hash: None, data: data.to_vec() };
        let (stream, outcomes) = self.put(&selector, vec![entry])?;
        match outcomes[0] {
            Outcome::Stored { shard, position } => Ok((seq::shard_id(shard), seq::format(shard, position))),
            Outcome::Throttled { shard } => Err(error::throughput(format!(
                "Rate exceeded for shard {} in stream {} under account {}.",
                seq::shard_id(shard),
                stream.name,
                self.identity.account
            ))),
        }
    }
}
