//! Kinesis Data Streams (API `Kinesis_20131202`, JSON 1.1 and the SDKs' CBOR): streams of
//! shards keyed by MD5 hash ranges exactly as AWS splits them, records committed to the storage
//! layer before a put answers, per-shard sequence numbers allocated under the shard's row lock
//! (so several nodes on one PostgreSQL never hand out the same or out-of-order numbers),
//! retention, resharding with parent-before-child lineage, enhanced fan-out consumers and
//! `SubscribeToShard` in the event-stream encoding.
//!
//! ```ignore
//! let kinesis = nimbus_kinesis::Kinesis::open(&database, identity, Options::default())?;
//! // as a service: services.push(kinesis.clone()); for pollers: kinesis.read(…), kinesis.written()
//! ```

mod consumers;
mod error;
mod hash;
mod input;
mod limits;
mod poller;
pub mod provider;
mod records;
mod seq;
mod settings;
mod shards;
mod store;
pub use store::SCHEMA;
mod streams;
mod tags;
mod wire;

use std::sync::{Arc, Weak};
use std::time::Duration;

use hyper::{HeaderMap, Method, Uri};
use nimbus_api::{ApiRequest, ApiResponse, AwsError, Identity, Service, ServiceFuture};
use nimbus_store::{Database, ServiceDb, Tx};
use serde_json::Value;
use tokio::sync::watch;

use crate::error::Result;
pub use crate::poller::{ShardInfo, StartAt, StreamRecord};
use crate::store::Stream;
use crate::wire::Format;

const TARGET_PREFIX: &str = "Kinesis_20131202.";
/// Where Kinesis's SQLite file lives in the data directory.
pub const SQLITE_FILE: &str = "kinesis/kinesis.db";

/// Milliseconds since the epoch; tests move it.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

#[derive(Clone, Default)]
pub struct Options {
    /// Answer `ProvisionedThroughputExceededException` past 1 MiB/s or 1,000 records/s per
    /// shard (`nimbus up --kinesis-limits`); off, nothing is throttled.
    pub write_limits: bool,
    /// How often expired records are deleted (default a minute; reads hide them meanwhile).
    pub sweep_every: Option<Duration>,
    /// Replaces the system clock (tests).
    pub clock: Option<Clock>,
    /// Called after every commit of records, to tell other nodes (which call
    /// [`Kinesis::records_written_elsewhere`]); none on a node alone.
    pub announce: Option<Arc<dyn Fn() + Send + Sync>>,
}

pub struct Kinesis {
    db: ServiceDb,
    identity: Identity,
    clock: Clock,
    limits: Option<limits::Limits>,
    written: watch::Sender<u64>,
    announce: Option<Arc<dyn Fn() + Send + Sync>>,
}

impl Kinesis {
    /// Opens (creating) Kinesis's tables in `database` and, inside a tokio runtime, starts the
    /// retention sweep.
    pub fn open(
        database: &Database,
        identity: Identity,
        options: Options,
    ) -> std::result::Result<Arc<Kinesis>, String> {
        let db = store::open(database).map_err(|e| format!("cannot open Kinesis's tables: {e}"))?;
        let clock = options.clock.unwrap_or_else(|| Arc::new(system_now_ms));
        let (written, _) = watch::channel(0);
        let limits = options.write_limits.then(limits::Limits::default);
        let announce = options.announce;
        let kinesis = Arc::new(Kinesis { db, identity, clock, limits, written, announce });
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let every = options.sweep_every.unwrap_or(Duration::from_secs(60));
            runtime.spawn(sweep(Arc::downgrade(&kinesis), every));
        }
        Ok(kinesis)
    }

    /// `work` in one transaction, committed when it returns `Ok`.
    fn tx_write<T>(&self, work: impl FnOnce(&mut Tx<'_>) -> Result<T>) -> Result<T> {
        self.db.write(|tx| work(tx).map_err(error::Failure)).map_err(|failure| failure.0)
    }

    fn tx_read<T>(&self, work: impl FnOnce(&mut Tx<'_>) -> Result<T>) -> Result<T> {
        self.db.read(|tx| work(tx).map_err(error::Failure)).map_err(|failure| failure.0)
    }

    fn now(&self) -> i64 {
        (self.clock)()
    }

    fn stream_arn(&self, name: &str) -> String {
        format!("arn:aws:kinesis:{}:{}:stream/{name}", self.identity.region, self.identity.account)
    }

    fn not_found(&self, name: &str) -> AwsError {
        error::stream_not_found(name, &self.identity.account)
    }

    /// The stream a request names by `StreamName` or `StreamARN`.
    fn stream(&self, tx: &mut Tx<'_>, input: &Value) -> Result<Stream> {
        let name = self.stream_name(input)?;
        store::stream_by_name(tx, &name).map_err(error::db)?.ok_or_else(|| self.not_found(&name))
    }

    fn stream_name(&self, input: &Value) -> Result<String> {
        let by_name = input.get("StreamName").and_then(Value::as_str);
        let by_arn = input.get("StreamARN").and_then(Value::as_str);
        match (by_name, by_arn) {
            (Some(name), None) => Ok(name.to_owned()),
            (name, Some(arn)) => {
                let from_arn = self.name_from_arn(arn)?;
                if name.is_some_and(|name| name != from_arn) {
                    return Err(error::invalid(format!(
                        "StreamARN {arn} does not name stream {}.",
                        name.unwrap_or("")
                    )));
                }
                Ok(from_arn)
            }
            (None, None) => Err(error::invalid("Either StreamName or StreamARN should be provided.")),
        }
    }

    fn name_from_arn(&self, arn: &str) -> Result<String> {
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        let name = match parts.as_slice() {
            ["arn", _, "kinesis", _, _, resource] => resource.strip_prefix("stream/"),
            _ => None,
        };
        match name {
            Some(name) if !name.is_empty() && !name.contains('/') => Ok(name.to_owned()),
            _ => Err(error::invalid(format!("Invalid StreamARN {arn}."))),
        }
    }

    /// A receiver whose value changes every time records are committed on this node (and,
    /// with several nodes, when another node says it committed some).
    pub fn written(&self) -> watch::Receiver<u64> {
        self.written.subscribe()
    }

    /// Another node committed records: wakes this node's readers.
    pub fn records_written_elsewhere(&self) {
        self.written.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn wake(&self) {
        self.written.send_modify(|n| *n = n.wrapping_add(1));
        if let Some(announce) = &self.announce {
            announce();
        }
    }

    /// Deletes records past their stream's retention and closed shards with none left.
    pub fn sweep_now(&self) -> Result<u64> {
        let now = self.now();
        let streams =
            self.db.query(&format!("SELECT {} FROM streams", Stream::COLUMNS), &[]).map_err(error::db)?;
        let mut deleted = 0;
        for row in streams {
            let stream = Stream::from_row(&row).map_err(error::db)?;
            let horizon = stream.horizon_ms(now);
            deleted += self
                .db
                .execute(
                    "DELETE FROM records WHERE stream_id = ?1 AND arrival_ms < ?2",
                    &nimbus_store::params![stream.id, horizon],
                )
                .map_err(error::db)?;
            self.db
                .execute(
                    "DELETE FROM shards WHERE stream_id = ?1 AND closed_ms < ?2 AND NOT EXISTS
                       (SELECT 1 FROM records r WHERE r.stream_id = shards.stream_id AND r.shard_index = shards.shard_index)",
                    &nimbus_store::params![stream.id, horizon],
                )
                .map_err(error::db)?;
        }
        Ok(deleted)
    }

    async fn dispatch(
        &self,
        operation: &str,
        input: &Value,
        format: Format,
    ) -> std::result::Result<ApiResponse, AwsError> {
        let output = match operation {
            "CreateStream" => self.create_stream(input)?,
            "DescribeStream" => self.describe_stream(input)?,
            "DescribeStreamSummary" => self.describe_stream_summary(input)?,
            "ListStreams" => self.list_streams(input)?,
            "DeleteStream" => self.delete_stream(input)?,
            "IncreaseStreamRetentionPeriod" => self.change_retention(input, true)?,
            "DecreaseStreamRetentionPeriod" => self.change_retention(input, false)?,
            "DescribeLimits" => self.describe_limits()?,
            "EnableEnhancedMonitoring" => self.enhanced_monitoring(input, true)?,
            "DisableEnhancedMonitoring" => self.enhanced_monitoring(input, false)?,
            "StartStreamEncryption" => self.stream_encryption(input, true)?,
            "StopStreamEncryption" => self.stream_encryption(input, false)?,
            "UpdateStreamMode" => self.update_stream_mode(input)?,
            "ListShards" => self.list_shards(input)?,
            "SplitShard" => self.split_shard(input)?,
            "MergeShards" => self.merge_shards(input)?,
            "UpdateShardCount" => self.update_shard_count(input)?,
            "PutRecord" => self.put_record_op(input)?,
            "PutRecords" => self.put_records(input)?,
            "GetShardIterator" => self.get_shard_iterator(input)?,
            "GetRecords" => self.get_records(input)?,
            "RegisterStreamConsumer" => self.register_consumer(input)?,
            "DescribeStreamConsumer" => self.describe_consumer(input)?,
            "ListStreamConsumers" => self.list_consumers(input)?,
            "DeregisterStreamConsumer" => self.deregister_consumer(input)?,
            "SubscribeToShard" => return self.subscribe_to_shard(input).await,
            "AddTagsToStream" => self.add_tags_to_stream(input)?,
            "RemoveTagsFromStream" => self.remove_tags_from_stream(input)?,
            "ListTagsForStream" => self.list_tags_for_stream(input)?,
            "TagResource" => self.tag_resource(input)?,
            "UntagResource" => self.untag_resource(input)?,
            "ListTagsForResource" => self.list_tags_for_resource(input)?,
            other => return Err(error::unsupported(other)),
        };
        Ok(format.respond(output))
    }
}

fn system_now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

async fn sweep(kinesis: Weak<Kinesis>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let Some(kinesis) = kinesis.upgrade() else { return };
        if let Err(error) = tokio::task::block_in_place(|| kinesis.sweep_now()) {
            eprintln!("nimbus: kinesis retention sweep: {error}");
        }
    }
}

/// Whether a request is Kinesis's ([`Service::claims`]).
pub fn claims(_method: &Method, _uri: &Uri, headers: &HeaderMap) -> bool {
    headers.get("x-amz-target").and_then(|v| v.to_str().ok()).is_some_and(|t| t.starts_with(TARGET_PREFIX))
}

impl Service for Kinesis {
    fn name(&self) -> &'static str {
        "kinesis"
    }

    fn claims(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> bool {
        claims(method, uri, headers)
    }

    fn call(&self, request: ApiRequest) -> ServiceFuture<'_> {
        Box::pin(async move {
            let format = Format::of(request.header("content-type"));
            let target = request.header("x-amz-target").unwrap_or_default();
            let operation = target.strip_prefix(TARGET_PREFIX).unwrap_or(target).to_owned();
            let result = match format.decode(&request.body) {
                Ok(input) => self.dispatch(&operation, &input, format).await,
                Err(error) => Err(error),
            };
            result.unwrap_or_else(|error| format.error(error))
        })
    }
}

#[cfg(test)]
mod tests;
