//! Records: `PutRecord`/`PutRecords` (committed before the answer; per-record throttling
//! reported in the batch), shard iterators (stateless: any node reads them) and `GetRecords`.

use base64::Engine as _;
use nimbus_api::AwsError;
use nimbus_store::{params, Tx};
use serde_json::{json, Value};

use crate::error::{self, Result};
use crate::input::{opt_int, opt_str, opt_time_ms, req_str, seconds};
use crate::store::{self, Shard, Stream};
use crate::{hash, seq, Kinesis};

const MAX_RECORD_BYTES: usize = 1024 * 1024;
const MAX_BATCH_RECORDS: usize = 500;
const MAX_BATCH_BYTES: usize = 5 * 1024 * 1024;
const MAX_GET_BYTES: usize = 10 * 1024 * 1024;
pub(crate) const ITERATOR_TTL_MS: i64 = 300_000;

pub(crate) struct Entry {
    pub partition_key: String,
    pub explicit_hash: Option<u128>,
    pub data: Vec<u8>,
}

pub(crate) enum Outcome {
    Stored { shard: i64, position: i64 },
    Throttled { shard: i64 },
}

/// A record as read from a shard.
pub(crate) struct Row {
    pub position: i64,
    pub partition_key: String,
    pub data: Vec<u8>,
    pub arrival_ms: i64,
}

/// Where a reader is: shard `index` of stream `stream_id`, next position `from`.
pub(crate) struct Iterator {
    pub stream_id: String,
    pub index: i64,
    pub from: i64,
    pub created_ms: i64,
}

impl Iterator {
    pub fn encode(&self) -> String {
        let text = format!("{}.{}.{}.{}", self.stream_id, self.index, self.from, self.created_ms);
        base64::engine::general_purpose::STANDARD.encode(text)
    }

    pub fn decode(token: &str) -> Option<Iterator> {
        let bytes = base64::engine::general_purpose::STANDARD.decode(token).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let mut parts = text.split('.');
        let iterator = Iterator {
            stream_id: parts.next()?.to_owned(),
            index: parts.next()?.parse().ok()?,
            from: parts.next()?.parse().ok()?,
            created_ms: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(iterator)
    }
}

fn entry(record: &Value, at: &str) -> Result<Entry> {
    let key = record
        .get("PartitionKey")
        .and_then(Value::as_str)
        .ok_or_else(|| error::missing(&format!("{at}partitionKey")))?;
    if key.is_empty() || key.chars().count() > 256 {
        let constraint = "Member must have length less than or equal to 256";
        return Err(error::validation(key, &format!("{at}partitionKey"), constraint));
    }
    let data =
        record.get("Data").and_then(Value::as_str).ok_or_else(|| error::missing(&format!("{at}data")))?;
    let data = base64::engine::general_purpose::STANDARD.decode(data).map_err(|_| {
        AwsError::new(400, "SerializationException", format!("Value at '{at}data' is not valid base64."))
    })?;
    if data.len() + key.len() > MAX_RECORD_BYTES {
        return Err(AwsError::validation(format!(
            "1 validation error detected: Value at '{at}data' failed to satisfy constraint: Member must have length less than or equal to {MAX_RECORD_BYTES}"
        )));
    }
    let explicit_hash = match record.get("ExplicitHashKey").and_then(Value::as_str) {
        Some(text) => Some(hash::parse(text).ok_or_else(|| {
            error::invalid(format!(
                "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. Specified value was {text}"
            ))
        })?),
        None => None,
    };
    Ok(Entry { partition_key: key.to_owned(), explicit_hash, data })
}

impl Kinesis {
    pub(crate) fn put_record_op(&self, input: &Value) -> Result<Value> {
        let entry = entry(input, "")?;
        let (stream, outcomes) = self.put(input, vec![entry])?;
        match outcomes[0] {
            Outcome::Stored { shard, position } => Ok(json!({
                "ShardId": seq::shard_id(shard),
                "SequenceNumber": seq::format(shard, position),
                "EncryptionType": stream.encryption_type(),
            })),
            Outcome::Throttled { shard } => Err(error::throughput(self.throttled_message(&stream, shard))),
        }
    }

    fn throttled_message(&self, stream: &Stream, shard: i64) -> String {
        format!(
            "Rate exceeded for shard {} in stream {} under account {}.",
            seq::shard_id(shard),
            stream.name,
            self.identity.account
        )
    }

    pub(crate) fn put_records(&self, input: &Value) -> Result<Value> {
        let records =
            input.get("Records").and_then(Value::as_array).ok_or_else(|| error::missing("records"))?;
        if records.is_empty() || records.len() > MAX_BATCH_RECORDS {
            let constraint = if records.is_empty() {
                "Member must have length greater than or equal to 1".to_owned()
            } else {
                format!("Member must have length less than or equal to {MAX_BATCH_RECORDS}")
            };
            return Err(error::validation(format!("[{} records]", records.len()), "records", &constraint));
        }
        let entries = records
            .iter()
            .enumerate()
            .map(|(i, record)| entry(record, &format!("records.{}.member.", i + 1)))
            .collect::<Result<Vec<_>>>()?;
        let total: usize = entries.iter().map(|e| e.data.len() + e.partition_key.len()).sum();
        if total > MAX_BATCH_BYTES {
            return Err(error::invalid("Records size exceeds 5 MB limit"));
        }
        let (stream, outcomes) = self.put(input, entries)?;
        let mut failed = 0;
        let results: Vec<Value> = outcomes
            .iter()
            .map(|outcome| match *outcome {
                Outcome::Stored { shard, position } => {
                    json!({"ShardId": seq::shard_id(shard), "SequenceNumber": seq::format(shard, position)})
                }
                Outcome::Throttled { shard } => {
                    failed += 1;
                    json!({
                        "ErrorCode": "ProvisionedThroughputExceededException",
                        "ErrorMessage": self.throttled_message(&stream, shard),
                    })
                }
            })
            .collect();
        Ok(
            json!({"FailedRecordCount": failed, "Records": results, "EncryptionType": stream.encryption_type()}),
        )
    }

    /// Stores `entries` in one transaction, each on the open shard its hash key falls in, and
    /// wakes this node's readers once committed.
    pub(crate) fn put(&self, input: &Value, entries: Vec<Entry>) -> Result<(Stream, Vec<Outcome>)> {
        let now = self.now();
        // A shard closed by another node between reading the shards and taking its row: again.
        for _ in 0..5 {
            match self.db.write(|tx| self.put_in(tx, input, &entries, now)) {
                Err(Retry::Again) => continue,
                Err(Retry::Fail(error)) => return Err(error),
                Ok(done) => {
                    self.wake();
                    return Ok(done);
                }
            }
        }
        Err(error::internal("the stream kept resharding while records were put"))
    }

    fn put_in(
        &self,
        tx: &mut Tx<'_>,
        input: &Value,
        entries: &[Entry],
        now: i64,
    ) -> std::result::Result<(Stream, Vec<Outcome>), Retry> {
        let stream = self.stream(tx, input)?;
        let open: Vec<Shard> =
            store::shards(tx, &stream.id).map_err(error::db)?.into_iter().filter(Shard::is_open).collect();
        let mut outcomes = Vec::with_capacity(entries.len());
        let mut per_shard: Vec<(i64, i64)> = Vec::new(); // (shard, records)
        for entry in entries {
            let key = entry.explicit_hash.unwrap_or_else(|| hash::of_partition_key(&entry.partition_key));
            let shard = open
                .iter()
                .find(|s| s.start_hash <= key && key <= s.end_hash)
                .ok_or_else(|| error::internal("no open shard covers a hash key"))?;
            let bytes = (entry.data.len() + entry.partition_key.len()) as u64;
            if let Some(limits) = &self.limits {
                if !limits.admit(&stream.id, shard.index, bytes, now) {
                    outcomes.push(Outcome::Throttled { shard: shard.index });
                    continue;
                }
            }
            match per_shard.iter_mut().find(|(index, _)| *index == shard.index) {
                Some((_, count)) => *count += 1,
                None => per_shard.push((shard.index, 1)),
            }
            outcomes.push(Outcome::Stored { shard: shard.index, position: 0 });
        }
        // Positions: each shard's row, locked until commit, hands out a contiguous run.
        let mut next: Vec<(i64, i64)> = Vec::with_capacity(per_shard.len());
        for (index, count) in per_shard {
            let end: Option<i64> = tx
                .query_value(
                    "UPDATE shards SET next_seq = next_seq + ?3 WHERE stream_id = ?1 AND shard_index = ?2 AND closed_ms IS NULL RETURNING next_seq",
                    &params![stream.id, index, count],
                )
                .map_err(error::db)?;
            let Some(end) = end else { return Err(Retry::Again) };
            next.push((index, end - count));
        }
        for (entry, outcome) in entries.iter().zip(outcomes.iter_mut()) {
            let Outcome::Stored { shard, position } = outcome else { continue };
            let slot = next.iter_mut().find(|(index, _)| index == shard).expect("allocated above");
            *position = slot.1;
            slot.1 += 1;
            tx.execute(
                "INSERT INTO records (stream_id, shard_index, seq, partition_key, data, arrival_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                &params![stream.id, *shard, *position, entry.partition_key, entry.data, now],
            )
            .map_err(error::db)?;
        }
        Ok((stream, outcomes))
    }

    pub(crate) fn get_shard_iterator(&self, input: &Value) -> Result<Value> {
        let shard_id = req_str(input, "ShardId")?;
        let kind = req_str(input, "ShardIteratorType")?;
        let now = self.now();
        let iterator = self.tx_read(|tx| {
            let stream = self.stream(tx, input)?;
            let shard = self.shard_of(tx, &stream, shard_id)?;
            let from = match kind {
                "TRIM_HORIZON" => 1,
                "LATEST" => shard.next_seq,
                "AT_SEQUENCE_NUMBER" | "AFTER_SEQUENCE_NUMBER" => {
                    let text = opt_str(input, "StartingSequenceNumber").ok_or_else(|| {
                        error::invalid(format!("StartingSequenceNumber must be specified for shardIteratorType {kind}."))
                    })?;
                    let position = self.position_in(&shard, text)?;
                    if kind == "AT_SEQUENCE_NUMBER" { position } else { position + 1 }
                }
                "AT_TIMESTAMP" => {
                    let at = opt_time_ms(input, "Timestamp").ok_or_else(|| {
                        error::invalid("Must specify timestampInMillis parameter for iterator of type AT_TIMESTAMP. Current request has no timestamp parameter.")
                    })?;
                    if at > now {
                        return Err(error::invalid(format!(
                            "The timestampInMillis parameter cannot be greater than the currentTimestampInMillis. timestampInMillis: {at}, currentTimestampInMillis: {now}"
                        )));
                    }
                    first_at(tx, &stream, &shard, at)?
                }
                other => {
                    let constraint = "Member must satisfy enum value set: [AFTER_SEQUENCE_NUMBER, AT_SEQUENCE_NUMBER, AT_TIMESTAMP, TRIM_HORIZON, LATEST]";
                    return Err(error::validation(other, "shardIteratorType", constraint));
                }
            };
            Ok::<_, AwsError>(Iterator { stream_id: stream.id, index: shard.index, from, created_ms: now })
        })?;
        Ok(json!({"ShardIterator": iterator.encode()}))
    }

    /// The position a sequence number names in `shard`.
    pub(crate) fn position_in(&self, shard: &Shard, text: &str) -> Result<i64> {
        match seq::parse(text) {
            Some((index, position)) if index == shard.index => Ok(position),
            Some((index, _)) => Err(error::invalid(format!(
                "Invalid StartingSequenceNumber. It encodes {}, while it was used in a call to a shard with {}",
                seq::shard_id(index),
                shard.id()
            ))),
            None => Err(error::invalid(format!(
                "StartingSequenceNumber {text} used in GetShardIterator on shard {} is invalid.",
                shard.id()
            ))),
        }
    }

    pub(crate) fn shard_of(&self, tx: &mut Tx<'_>, stream: &Stream, shard_id: &str) -> Result<Shard> {
        let shard = match seq::shard_index(shard_id) {
            Some(index) => store::shard(tx, &stream.id, index).map_err(error::db)?,
            None => None,
        };
        shard.ok_or_else(|| {
            error::not_found(format!(
                "Shard {shard_id} in stream {} under account {} does not exist",
                stream.name, self.identity.account
            ))
        })
    }

    pub(crate) fn get_records(&self, input: &Value) -> Result<Value> {
        let token = req_str(input, "ShardIterator")?;
        let limit = opt_int(input, "Limit", 1, 10_000)?.unwrap_or(10_000);
        let iterator = Iterator::decode(token)
            .ok_or_else(|| error::invalid(format!("Invalid ShardIterator: {token}")))?;
        let now = self.now();
        if let Some(limits) = &self.limits {
            if !limits.admit_read(&iterator.stream_id, iterator.index, now) {
                return Err(error::throughput(format!(
                    "Rate exceeded for Shard - {} under account {}: at most 5 GetRecords calls a second.",
                    seq::shard_id(iterator.index),
                    self.identity.account
                )));
            }
        }
        if now - iterator.created_ms > ITERATOR_TTL_MS {
            return Err(error::expired_iterator(format!(
                "Iterator expired. The iterator was created at time {} while right now it is {} which is further in the future than the tolerated delay of {ITERATOR_TTL_MS} milliseconds.",
                iterator.created_ms, now
            )));
        }
        let (stream, shard, rows, children) = self.tx_read(|tx| {
            let stream =
                store::stream_by_id(tx, &iterator.stream_id).map_err(error::db)?.ok_or_else(|| {
                    error::not_found("The stream this shard iterator belongs to no longer exists.")
                })?;
            let shard =
                store::shard(tx, &stream.id, iterator.index).map_err(error::db)?.ok_or_else(|| {
                    error::not_found(format!("Shard {} no longer exists.", seq::shard_id(iterator.index)))
                })?;
            let rows = fetch(tx, &stream, shard.index, iterator.from, limit, now)?;
            let children = if shard.is_open() { Vec::new() } else { children_of(tx, &stream, shard.index)? };
            Ok::<_, AwsError>((stream, shard, rows, children))
        })?;
        let next_from = rows.last().map_or(iterator.from, |row| row.position + 1);
        let drained = !shard.is_open() && next_from >= shard.next_seq;
        let behind = match rows.last() {
            Some(last) if next_from < shard.next_seq => (now - last.arrival_ms).max(0),
            _ => 0,
        };
        let records: Vec<Value> = rows.iter().map(|row| record_json(&stream, shard.index, row)).collect();
        let mut output = json!({"Records": records, "MillisBehindLatest": behind});
        if drained {
            output["ChildShards"] = Value::Array(children);
        } else {
            let next =
                Iterator { stream_id: stream.id, index: shard.index, from: next_from, created_ms: now };
            output["NextShardIterator"] = json!(next.encode());
        }
        Ok(output)
    }
}

pub(crate) enum Retry {
    Again,
    Fail(AwsError),
}

impl From<AwsError> for Retry {
    fn from(error: AwsError) -> Retry {
        Retry::Fail(error)
    }
}

impl From<nimbus_store::DbError> for Retry {
    fn from(error: nimbus_store::DbError) -> Retry {
        Retry::Fail(error::db(error))
    }
}

/// Records of shard `index` from position `from`, within retention, at most `limit` of them
/// and about 10 MiB (sizes are read first, so memory stays bounded whatever `limit` is).
pub(crate) fn fetch(
    tx: &mut Tx<'_>,
    stream: &Stream,
    index: i64,
    from: i64,
    limit: i64,
    now: i64,
) -> Result<Vec<Row>> {
    let horizon = stream.horizon_ms(now);
    let sizes = tx
        .query(
            "SELECT seq, LENGTH(data) FROM records
             WHERE stream_id = ?1 AND shard_index = ?2 AND seq >= ?3 AND arrival_ms >= ?4 ORDER BY seq LIMIT ?5",
            &params![stream.id, index, from, horizon, limit],
        )
        .map_err(error::db)?;
    let (mut last, mut bytes) = (None, 0);
    for row in &sizes {
        let size: i64 = row.get(1).map_err(error::db)?;
        bytes += size as usize;
        if bytes > MAX_GET_BYTES && last.is_some() {
            break;
        }
        last = Some(row.get::<i64>(0).map_err(error::db)?);
    }
    let Some(last) = last else { return Ok(Vec::new()) };
    let rows = tx
        .query(
            "SELECT seq, partition_key, data, arrival_ms FROM records
             WHERE stream_id = ?1 AND shard_index = ?2 AND seq >= ?3 AND seq <= ?4 AND arrival_ms >= ?5 ORDER BY seq",
            &params![stream.id, index, from, last, horizon],
        )
        .map_err(error::db)?;
    rows.iter()
        .map(|row| {
            Ok(Row {
                position: row.get(0).map_err(error::db)?,
                partition_key: row.get(1).map_err(error::db)?,
                data: row.get(2).map_err(error::db)?,
                arrival_ms: row.get(3).map_err(error::db)?,
            })
        })
        .collect()
}

/// The first position at or after `at_ms` (the shard's end when none).
pub(crate) fn first_at(tx: &mut Tx<'_>, stream: &Stream, shard: &Shard, at_ms: i64) -> Result<i64> {
    // MIN over no rows is NULL.
    let first: Option<Option<i64>> = tx
        .query_value(
            "SELECT MIN(seq) FROM records WHERE stream_id = ?1 AND shard_index = ?2 AND arrival_ms >= ?3",
            &params![stream.id, shard.index, at_ms],
        )
        .map_err(error::db)?;
    Ok(first.flatten().unwrap_or(shard.next_seq))
}

pub(crate) fn children_of(tx: &mut Tx<'_>, stream: &Stream, index: i64) -> Result<Vec<Value>> {
    let shards = store::shards(tx, &stream.id).map_err(error::db)?;
    Ok(shards
        .iter()
        .filter(|s| s.parent == Some(index) || s.adjacent_parent == Some(index))
        .map(|s| {
            let parents: Vec<String> = s.parent.into_iter().chain(s.adjacent_parent).map(seq::shard_id).collect();
            json!({
                "ShardId": s.id(),
                "ParentShards": parents,
                "HashKeyRange": {"StartingHashKey": s.start_hash.to_string(), "EndingHashKey": s.end_hash.to_string()},
            })
        })
        .collect())
}

pub(crate) fn record_json(stream: &Stream, index: i64, row: &Row) -> Value {
    json!({
        "SequenceNumber": seq::format(index, row.position),
        "ApproximateArrivalTimestamp": seconds(row.arrival_ms),
        "Data": base64::engine::general_purpose::STANDARD.encode(&row.data),
        "PartitionKey": row.partition_key,
        "EncryptionType": stream.encryption_type(),
    })
}
