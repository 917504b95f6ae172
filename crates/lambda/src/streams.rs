//! Stream event source mappings (Kinesis and DynamoDB Streams, one poller for both): every shard
//! read in order from a durable checkpoint, batches of `BatchSize` gathered for up to
//! `MaximumBatchingWindowInSeconds`, `FilterCriteria`, `ParallelizationFactor` lanes that keep
//! each partition key in order, retries that block the shard (as AWS's do) until success,
//! `MaximumRetryAttempts` or `MaximumRecordAgeInSeconds`, `BisectBatchOnFunctionError`,
//! `ReportBatchItemFailures`, tumbling windows with state, and the `OnFailure` destination's
//! batch-info record. Child shards start once their parents are drained (parent before child).
//!
//! The streams themselves are behind [`Streams`], wired by the binary: this crate knows neither
//! Kinesis nor DynamoDB.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use nimbus_events::Pattern;
use nimbus_functions::Invocation;
use nimbus_store::ResourceRow;
use serde_json::{json, Value};

use crate::Lambda;

/// One shard as the poller needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    pub id: String,
    /// Shards whose records come before this one's (a split's parent, a merge's two parents).
    pub parents: Vec<String>,
    /// No record will ever be added.
    pub closed: bool,
}

/// One record, already shaped as Lambda's event record for its source.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamRecord {
    /// Increasing within the shard, compared as numbers.
    pub sequence: String,
    pub arrival_ms: i64,
    pub partition_key: String,
    /// The record as the function receives it (`{"kinesis": …, "eventSource": …}`).
    pub record: Value,
    /// What `FilterCriteria` patterns are matched against (Kinesis: `data` decoded as JSON).
    pub filter_view: Value,
}

/// The streams Lambda polls: Kinesis and DynamoDB Streams, behind one face.
pub trait Streams: Send + Sync + 'static {
    fn shards(&self, source_arn: &str) -> Result<Vec<Shard>, String>;
    /// Up to `limit` records after `after` (None: from the oldest kept).
    fn read(
        &self,
        source_arn: &str,
        shard_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StreamRecord>, String>;
    /// Where `LATEST` (`at_ms` None) or `AT_TIMESTAMP` starts: the sequence to read after.
    fn position(
        &self,
        source_arn: &str,
        shard_id: &str,
        at_ms: Option<i64>,
    ) -> Result<Option<String>, String>;
    /// Changes whenever records are added to the source on this node (or another one that
    /// says so), so pollers wake at once.
    fn changes(&self, source_arn: &str) -> tokio::sync::watch::Receiver<u64>;
    /// Whether this node polls (with several nodes one does; alone, always).
    fn polls_here(&self) -> bool;
    /// nimbus's clock (virtual under `--clock virtual`): record ages and windows follow it.
    fn now_ms(&self) -> i64;
}

pub fn is_stream(source_arn: &str) -> bool {
    source_arn.starts_with("arn:aws:kinesis:")
        || (source_arn.starts_with("arn:aws:dynamodb:") && source_arn.contains("/stream/"))
}

/// Where each mapping's shards stand, for Get/ListEventSourceMappings.
#[derive(Default)]
pub(crate) struct Progress {
    results: Mutex<BTreeMap<String, String>>,
}

impl Progress {
    pub(crate) fn show(&self, mapping: &mut Value) {
        let uuid = mapping["UUID"].as_str().unwrap_or_default();
        if let Some(result) = self.results.lock().unwrap_or_else(|p| p.into_inner()).get(uuid) {
            mapping["LastProcessingResult"] = json!(result);
        }
    }

    fn set(&self, uuid: &str, result: &str) {
        self.results.lock().unwrap_or_else(|p| p.into_inner()).insert(uuid.to_owned(), result.to_owned());
    }
}

const CHECKPOINTS: &str = "esm-checkpoints";

/// A shard's durable position: read after `after`; `done` once a closed shard is drained.
#[derive(Debug, Clone, Default)]
struct Checkpoint {
    after: Option<String>,
    done: bool,
    /// Tumbling windows: the open window's start and the state the function returned.
    window_start: Option<i64>,
    state: Value,
}

/// The mapping's settings, read once per poller.
struct Settings {
    uuid: String,
    source: String,
    function: String,
    batch: usize,
    window_ms: i64,
    parallel: usize,
    bisect: bool,
    max_retries: i64,
    max_age_ms: Option<i64>,
    partial: bool,
    tumbling_ms: Option<i64>,
    on_failure: Option<String>,
    filters: Vec<Pattern>,
    start: (String, Option<i64>),
}

impl Settings {
    fn of(mapping: &Value) -> Settings {
        let text = |member: &str| mapping[member].as_str().unwrap_or_default().to_owned();
        Settings {
            uuid: text("UUID"),
            source: text("EventSourceArn"),
            function: text("FunctionArn"),
            batch: mapping["BatchSize"].as_u64().unwrap_or(100).max(1) as usize,
            window_ms: mapping["MaximumBatchingWindowInSeconds"].as_i64().unwrap_or(0) * 1000,
            parallel: mapping["ParallelizationFactor"].as_u64().unwrap_or(1).clamp(1, 10) as usize,
            bisect: mapping["BisectBatchOnFunctionError"].as_bool().unwrap_or(false),
            max_retries: mapping["MaximumRetryAttempts"].as_i64().unwrap_or(-1),
            max_age_ms: mapping["MaximumRecordAgeInSeconds"].as_i64().filter(|a| *a > 0).map(|a| a * 1000),
            partial: mapping["FunctionResponseTypes"].as_array().is_some_and(|t| !t.is_empty()),
            tumbling_ms: mapping["TumblingWindowInSeconds"].as_i64().filter(|w| *w > 0).map(|w| w * 1000),
            on_failure: mapping["DestinationConfig"]["OnFailure"]["Destination"].as_str().map(str::to_owned),
            filters: mapping["FilterCriteria"]["Filters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| Pattern::parse(f["Pattern"].as_str()?).ok())
                .collect(),
            start: (
                mapping["StartingPosition"].as_str().unwrap_or("TRIM_HORIZON").to_owned(),
                mapping["StartingPositionTimestamp"].as_f64().map(|s| (s * 1000.0) as i64),
            ),
        }
    }
}

/// Aborts the shard tasks when the mapping's poller goes (stopped, changed or deleted).
struct ShardTasks(BTreeMap<String, tokio::task::JoinHandle<()>>);

impl Drop for ShardTasks {
    fn drop(&mut self) {
        self.0.values().for_each(|task| task.abort());
    }
}

/// The mapping's poller: starts a task per shard once its parents are drained, and looks for
/// new shards (resharding) as records arrive and every second.
pub(crate) async fn poll_mapping(lambda: Weak<Lambda>, streams: Arc<dyn Streams>, mapping: Value) {
    let settings = Arc::new(Settings::of(&mapping));
    let drained = Arc::new(Mutex::new(BTreeSet::new()));
    let mut tasks = ShardTasks(BTreeMap::new());
    let mut changes = streams.changes(&settings.source);
    loop {
        if streams.polls_here() {
            let listed = tokio::task::block_in_place(|| streams.shards(&settings.source));
            if let Ok(shards) = listed {
                let done = drained.lock().unwrap_or_else(|p| p.into_inner()).clone();
                let known: BTreeSet<&str> = shards.iter().map(|s| s.id.as_str()).collect();
                for shard in &shards {
                    if tasks.0.contains_key(&shard.id) {
                        continue;
                    }
                    // A parent still listed and not drained holds its children back.
                    if shard.parents.iter().any(|p| known.contains(p.as_str()) && !done.contains(p)) {
                        continue;
                    }
                    let poller = ShardPoller {
                        lambda: lambda.clone(),
                        streams: streams.clone(),
                        settings: settings.clone(),
                        shard: shard.id.clone(),
                        drained: drained.clone(),
                    };
                    tasks.0.insert(shard.id.clone(), tokio::spawn(poller.run()));
                }
            }
        } else {
            tasks.0.values().for_each(|task| task.abort());
            tasks.0.clear();
        }
        tokio::select! {
            _ = changes.changed() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

struct ShardPoller {
    lambda: Weak<Lambda>,
    streams: Arc<dyn Streams>,
    settings: Arc<Settings>,
    shard: String,
    drained: Arc<Mutex<BTreeSet<String>>>,
}

/// How one invocation of a batch ended.
enum Outcome {
    Done(Value),
    /// `ReportBatchItemFailures`: retry from this index of the batch.
    FailedFrom(usize),
    Failed,
}

impl ShardPoller {
    async fn run(self) {
        let mut checkpoint = match self.load_checkpoint() {
            Some(checkpoint) => checkpoint,
            None => {
                let at = self.start_position();
                let checkpoint = Checkpoint { after: at, ..Checkpoint::default() };
                self.save(&checkpoint);
                checkpoint
            }
        };
        let mut changes = self.streams.changes(&self.settings.source);
        loop {
            if checkpoint.done {
                self.drained.lock().unwrap_or_else(|p| p.into_inner()).insert(self.shard.clone());
                return;
            }
            let limit = self.settings.batch * self.settings.parallel;
            let read = tokio::task::block_in_place(|| {
                self.streams.read(&self.settings.source, &self.shard, checkpoint.after.as_deref(), limit)
            });
            let records = match read {
                Ok(records) => records,
                Err(_) => {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let now = self.streams.now_ms();
            if records.is_empty() {
                if self.closed() {
                    if checkpoint.window_start.is_some() {
                        self.close_window(&mut checkpoint).await;
                    }
                    checkpoint.done = true;
                    self.save(&checkpoint);
                    continue;
                }
                if let (Some(start), Some(width)) = (checkpoint.window_start, self.settings.tumbling_ms) {
                    if now >= start + width {
                        self.close_window(&mut checkpoint).await;
                        continue;
                    }
                }
                wait(&mut changes, Duration::from_secs(1)).await;
                continue;
            }
            // Gather a fuller batch for up to the batching window, counted from the oldest record.
            let waited = now - records[0].arrival_ms;
            if records.len() < limit && waited < self.settings.window_ms {
                let rest = (self.settings.window_ms - waited).clamp(1, 300_000) as u64;
                wait(&mut changes, Duration::from_millis(rest.min(1000))).await;
                continue;
            }
            let last = records.last().map(|r| r.sequence.clone());
            let kept: Vec<StreamRecord> = records
                .into_iter()
                .filter(|r| {
                    self.settings.filters.is_empty()
                        || self.settings.filters.iter().any(|f| f.matches(&r.filter_view))
                })
                .collect();
            match self.settings.tumbling_ms {
                Some(width) => self.windowed(&mut checkpoint, kept, width).await,
                None => self.lanes(kept).await,
            }
            checkpoint.after = last;
            self.save(&checkpoint);
        }
    }

    fn start_position(&self) -> Option<String> {
        let (kind, at) = &self.settings.start;
        let at = match kind.as_str() {
            "LATEST" => None,
            "AT_TIMESTAMP" => Some(at.unwrap_or(0)),
            _ => return None,
        };
        tokio::task::block_in_place(|| self.streams.position(&self.settings.source, &self.shard, at))
            .ok()
            .flatten()
    }

    fn closed(&self) -> bool {
        let shards = tokio::task::block_in_place(|| self.streams.shards(&self.settings.source));
        shards.is_ok_and(|shards| shards.iter().find(|s| s.id == self.shard).is_none_or(|s| s.closed))
    }

    /// Records split by partition key into `ParallelizationFactor` lanes, each in order, the
    /// lanes concurrently; every lane's batches are done (or given up) before the checkpoint moves.
    async fn lanes(&self, records: Vec<StreamRecord>) {
        let lanes = self.settings.parallel;
        let mut split: Vec<Vec<StreamRecord>> = vec![Vec::new(); lanes];
        for record in records {
            let lane =
                if lanes == 1 { 0 } else { (md5_prefix(&record.partition_key) % lanes as u64) as usize };
            split[lane].push(record);
        }
        let work = split.into_iter().filter(|lane| !lane.is_empty()).map(|lane| async move {
            for batch in lane.chunks(self.settings.batch) {
                Box::pin(self.deliver(batch.to_vec(), None)).await;
            }
        });
        futures_util::future::join_all(work).await;
    }

    /// Tumbling windows: each record belongs to the window its arrival falls in; the function's
    /// returned `state` is handed to its next invocation in the window, and a last invocation
    /// with `isFinalInvokeForWindow` closes it.
    async fn windowed(&self, checkpoint: &mut Checkpoint, records: Vec<StreamRecord>, width: i64) {
        let mut batch: Vec<StreamRecord> = Vec::new();
        for record in records {
            let start = record.arrival_ms - record.arrival_ms.rem_euclid(width);
            if checkpoint.window_start.is_some_and(|open| open != start) {
                if !batch.is_empty() {
                    self.window_batch(checkpoint, std::mem::take(&mut batch), false).await;
                }
                self.close_window(checkpoint).await;
            }
            if checkpoint.window_start.is_none() {
                checkpoint.window_start = Some(start);
                checkpoint.state = json!({});
            }
            batch.push(record);
            if batch.len() == self.settings.batch {
                self.window_batch(checkpoint, std::mem::take(&mut batch), false).await;
            }
        }
        if !batch.is_empty() {
            self.window_batch(checkpoint, batch, false).await;
        }
    }

    async fn close_window(&self, checkpoint: &mut Checkpoint) {
        self.window_batch(checkpoint, Vec::new(), true).await;
        checkpoint.window_start = None;
        checkpoint.state = json!({});
        self.save(checkpoint);
    }

    async fn window_batch(&self, checkpoint: &mut Checkpoint, batch: Vec<StreamRecord>, last: bool) {
        let start = checkpoint.window_start.unwrap_or_default();
        let width = self.settings.tumbling_ms.unwrap_or_default();
        let window = json!({
            "window": { "start": iso(start), "end": iso(start + width) },
            "state": checkpoint.state,
            "shardId": self.shard,
            "eventSourceARN": self.settings.source,
            "isFinalInvokeForWindow": last,
            "isWindowTerminatedEarly": false,
        });
        if let Some(response) = Box::pin(self.deliver(batch, Some(window))).await {
            if let Some(state) = response.get("state").filter(|s| s.is_object()) {
                checkpoint.state = state.clone();
            }
        }
    }

    /// Invokes with `batch` until it succeeds, its records age out or the retries run out
    /// (then the `OnFailure` destination hears of it); with bisection a failing batch is split
    /// in two and each half goes through the same. Returns the function's answer on success.
    async fn deliver(&self, batch: Vec<StreamRecord>, window: Option<Value>) -> Option<Value> {
        let mut pending = batch;
        let mut attempts: i64 = 0;
        loop {
            if let Some(max_age) = self.settings.max_age_ms {
                let now = self.streams.now_ms();
                let expired = pending.iter().take_while(|r| now - r.arrival_ms > max_age).count();
                if expired > 0 {
                    let gone: Vec<StreamRecord> = pending.drain(..expired).collect();
                    self.failed(&gone, "RecordAgeExceeded", attempts).await;
                    if pending.is_empty() {
                        return None;
                    }
                }
            }
            let is_final = window.as_ref().is_some_and(|w| w["isFinalInvokeForWindow"] == true);
            if pending.is_empty() && !is_final {
                return None;
            }
            attempts += 1;
            match self.invoke(&pending, window.clone()).await {
                Outcome::Done(response) => {
                    self.progress("OK");
                    return Some(response);
                }
                Outcome::FailedFrom(index) => pending.drain(..index.min(pending.len())).for_each(drop),
                Outcome::Failed if self.settings.bisect && pending.len() > 1 => {
                    self.progress("PROBLEM: Function call failed");
                    let second = pending.split_off(pending.len() / 2);
                    Box::pin(self.deliver(pending, window.clone())).await;
                    return Box::pin(self.deliver(second, window)).await;
                }
                Outcome::Failed => self.progress("PROBLEM: Function call failed"),
            }
            if self.settings.max_retries >= 0 && attempts > self.settings.max_retries {
                self.failed(&pending, "RetryAttemptsExhausted", attempts).await;
                return None;
            }
            // Retried at once at first, then backing off, as AWS does (the shard waits).
            let delay = 50u64 << attempts.clamp(0, 6);
            tokio::time::sleep(Duration::from_millis(delay.min(2000))).await;
        }
    }

    async fn invoke(&self, batch: &[StreamRecord], window: Option<Value>) -> Outcome {
        let Some(lambda) = self.lambda.upgrade() else { return Outcome::Failed };
        let Ok(target) = lambda.route_invocation(&self.settings.function, None) else {
            return Outcome::Failed;
        };
        let mut event = window.unwrap_or_else(|| json!({}));
        event["Records"] = Value::Array(batch.iter().map(|r| r.record.clone()).collect());
        let invocation = Invocation {
            request_id: nimbus_functions::new_request_id(),
            payload: Bytes::from(event.to_string()),
            invoked_arn: self.settings.function.clone(),
            client_context: None,
            tail_log: false,
        };
        match lambda.engine.invoke(&target.entry.spec, &invocation).await {
            Ok(result) if result.function_error.is_none() => {
                let response: Value = serde_json::from_slice(&result.payload).unwrap_or(Value::Null);
                if !self.settings.partial {
                    return Outcome::Done(response);
                }
                match first_failure(&response, batch) {
                    None => Outcome::Done(response),
                    Some(index) => Outcome::FailedFrom(index),
                }
            }
            _ => Outcome::Failed,
        }
    }

    /// AWS's `OnFailure` record: the batch's shard, sequence-number range and arrival times.
    async fn failed(&self, batch: &[StreamRecord], condition: &str, attempts: i64) {
        self.progress("PROBLEM: Function call failed");
        let (Some(destination), Some(first), Some(last)) =
            (&self.settings.on_failure, batch.first(), batch.last())
        else {
            return;
        };
        let info = json!({
            "shardId": self.shard,
            "startSequenceNumber": first.sequence,
            "endSequenceNumber": last.sequence,
            "approximateArrivalOfFirstRecord": iso(first.arrival_ms),
            "approximateArrivalOfLastRecord": iso(last.arrival_ms),
            "batchSize": batch.len(),
            "streamArn": self.settings.source,
        });
        let info_key = if self.settings.source.starts_with("arn:aws:kinesis:") {
            "KinesisBatchInfo"
        } else {
            "DDBStreamBatchInfo"
        };
        let record = json!({
            "requestContext": {
                "requestId": nimbus_functions::new_request_id(),
                "functionArn": self.settings.function,
                "condition": condition,
                "approximateInvokeCount": attempts,
            },
            "responseContext": { "statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled" },
            "version": "1.0",
            "timestamp": iso(self.streams.now_ms()),
            info_key: info,
        })
        .to_string();
        let Some(lambda) = self.lambda.upgrade() else { return };
        lambda.send_to(destination, record).await;
    }

    fn progress(&self, result: &str) {
        if let Some(lambda) = self.lambda.upgrade() {
            lambda.stream_progress.set(&self.settings.uuid, result);
        }
    }

    fn key(&self) -> String {
        format!("{}/{}", self.settings.uuid, self.shard)
    }

    fn load_checkpoint(&self) -> Option<Checkpoint> {
        let lambda = self.lambda.upgrade()?;
        let rows = tokio::task::block_in_place(|| lambda.store.load_resources()).ok()?;
        let key = self.key();
        let row = rows.into_iter().find(|row| row.function == CHECKPOINTS && row.name == key)?;
        let doc: Value = serde_json::from_str(&row.config).ok()?;
        Some(Checkpoint {
            after: doc["after"].as_str().map(str::to_owned),
            done: doc["done"].as_bool().unwrap_or(false),
            window_start: doc["window_start"].as_i64(),
            state: doc.get("state").cloned().unwrap_or(json!({})),
        })
    }

    /// Durable before the poller moves on: a restart neither skips nor replays past it.
    fn save(&self, checkpoint: &Checkpoint) {
        let Some(lambda) = self.lambda.upgrade() else { return };
        let row = ResourceRow {
            function: CHECKPOINTS.into(),
            kind: "checkpoint".into(),
            name: self.key(),
            config: json!({
                "after": checkpoint.after,
                "done": checkpoint.done,
                "window_start": checkpoint.window_start,
                "state": checkpoint.state,
            })
            .to_string(),
        };
        if let Err(error) = tokio::task::block_in_place(|| lambda.store.put_resource(&row)) {
            eprintln!("nimbus: could not save the checkpoint of {}: {error}", self.key());
        }
    }
}

/// Forgets a deleted mapping's checkpoints.
pub(crate) fn forget(lambda: &Lambda, uuid: &str) {
    let prefix = format!("{uuid}/");
    let rows = lambda.store.load_resources().unwrap_or_default();
    for row in rows.iter().filter(|row| row.function == CHECKPOINTS && row.name.starts_with(&prefix)) {
        let _ = lambda.store.delete_resource(CHECKPOINTS, &row.kind, &row.name);
    }
}

async fn wait(changes: &mut tokio::sync::watch::Receiver<u64>, at_most: Duration) {
    tokio::select! {
        _ = changes.changed() => {}
        _ = tokio::time::sleep(at_most) => {}
    }
}

/// The first record `batchItemFailures` names (by sequence number), as an index of the batch;
/// an answer that cannot be read fails the whole batch, as on AWS.
fn first_failure(response: &Value, batch: &[StreamRecord]) -> Option<usize> {
    let failures = match response.get("batchItemFailures") {
        None | Some(Value::Null) => return None,
        Some(Value::Array(items)) => items,
        Some(_) => return Some(0),
    };
    let mut first: Option<usize> = None;
    for item in failures {
        let Some(id) = item["itemIdentifier"].as_str() else { return Some(0) };
        let Some(index) = batch.iter().position(|r| r.sequence == id) else { return Some(0) };
        first = Some(first.map_or(index, |f| f.min(index)));
    }
    first
}

fn md5_prefix(key: &str) -> u64 {
    use md5::Digest;
    let digest = md5::Md5::digest(key.as_bytes());
    u64::from_be_bytes(digest[..8].try_into().unwrap_or_default())
}

fn iso(ms: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    at.format(&format).unwrap_or_default()
}

/// Every stream mapping with its shards: where each stands (its checkpoint) and how far behind
/// the newest record it is (`iterator_age_ms`, as AWS's `IteratorAge` metric), for
/// `nimbus streams`.
pub(crate) fn report(lambda: &Lambda) -> Vec<Value> {
    let Some(streams) = lambda.streams.get() else { return Vec::new() };
    let mappings: Vec<Value> =
        lambda.mappings.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
    let checkpoints: BTreeMap<String, Value> = lambda
        .store
        .load_resources()
        .unwrap_or_default()
        .into_iter()
        .filter(|row| row.function == CHECKPOINTS)
        .filter_map(|row| Some((row.name, serde_json::from_str(&row.config).ok()?)))
        .collect();
    let now = streams.now_ms();
    let mut out = Vec::new();
    for mut mapping in
        mappings.into_iter().filter(|m| is_stream(m["EventSourceArn"].as_str().unwrap_or_default()))
    {
        lambda.stream_progress.show(&mut mapping);
        let (uuid, source) = (
            mapping["UUID"].as_str().unwrap_or_default(),
            mapping["EventSourceArn"].as_str().unwrap_or_default(),
        );
        let shards = streams.shards(source).unwrap_or_default();
        let shards: Vec<Value> = shards
            .iter()
            .map(|shard| {
                let checkpoint =
                    checkpoints.get(&format!("{uuid}/{}", shard.id)).cloned().unwrap_or(Value::Null);
                let after = checkpoint["after"].as_str();
                let next = streams.read(source, &shard.id, after, 1).ok().and_then(|r| r.into_iter().next());
                json!({
                    "shard": shard.id,
                    "closed": shard.closed,
                    "done": checkpoint["done"].as_bool().unwrap_or(false),
                    "checkpoint": after,
                    "iterator_age_ms": next.map_or(0, |record| (now - record.arrival_ms).max(0)),
                })
            })
            .collect();
        out.push(json!({
            "uuid": uuid,
            "source": source,
            "function": mapping["FunctionArn"],
            "state": mapping["State"],
            "last_result": mapping["LastProcessingResult"],
            "batch_size": mapping["BatchSize"],
            "shards": shards,
        }));
    }
    out
}
