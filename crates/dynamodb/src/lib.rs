//! Amazon DynamoDB (API `DynamoDB_20120810`, JSON 1.0) and DynamoDB Streams
//! (`DynamoDBStreams_20120810`) over the storage layer: tables with secondary indexes, items in
//! AWS's type system, the expression language, queries and scans, batches, transactions, TTL
//! and streams. Any node answers any call from the database.
//!
//! ```ignore
//! let dynamodb = nimbus_dynamodb::DynamoDb::open(&database, identity, options)?;
//! services.push(dynamodb.clone()); services.push(Arc::new(dynamodb.streams_service()));
//! ```
//!
//! Event source mappings read streams through plain calls (blocking, like every storage call:
//! on a runtime worker PostgreSQL steps out with `block_in_place`):
//!
//! ```ignore
//! let mut changes = dynamodb.stream_changes();          // ticks when this node writes records
//! for shard in dynamodb.stream_shards(&arn)? {          // one shard per stream here
//!     let from = dynamodb.stream_latest(&arn, &shard.shard_id)?;   // LATEST: read after this
//!     let batch = dynamodb.stream_read(&arn, &shard.shard_id, from.as_deref(), 100)?;
//!     // batch[i].record is Lambda's record (eventSourceARN included); batch[i].sequence is a
//!     // 21-digit zero-padded decimal: string order is numeric order.
//! }
//! changes.changed().await;
//! ```

mod error;
mod expr;
mod input;
mod number;
mod ops;
mod partiql;
pub mod provider;
mod store;
mod streams;
mod table;
mod ttl;
mod value;

use std::sync::Arc;
use std::time::Duration;

use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{HeaderMap, Method, Uri};
use nimbus_api::{ApiRequest, ApiResponse, Identity, Service, ServiceFuture};
use nimbus_store::{Database, DbError, ServiceDb};
use serde_json::Value;

pub use error::DdbError;
pub use store::SCHEMA;
pub use streams::{StreamRecordOut, StreamShard, StreamsService};

const TARGET_PREFIX: &str = "DynamoDB_20120810.";

#[derive(Debug, Clone)]
pub struct Options {
    /// How often the TTL sweep looks for expired items (AWS: within a few days; here seconds).
    pub ttl_sweep: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options { ttl_sweep: Duration::from_secs(30) }
    }
}

pub struct DynamoDb {
    db: ServiceDb,
    identity: Identity,
    /// Bumped after every commit that wrote stream records on this node.
    stream_tick: tokio::sync::watch::Sender<u64>,
    /// Told after this node commits stream records (to tell other nodes, say).
    stream_announcer: std::sync::OnceLock<Box<dyn Fn() + Send + Sync>>,
    sweeper: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl DynamoDb {
    /// Opens (creating) DynamoDB's tables in `database`; starts the TTL sweep when called inside
    /// a tokio runtime. Several nodes may sweep at once: each deletion re-reads its item under
    /// the item's lock, so an item is deleted (and streamed) once.
    pub fn open(database: &Database, identity: Identity, options: Options) -> Result<Arc<DynamoDb>, DbError> {
        let db = database.open(&store::SCHEMA)?;
        let (stream_tick, _) = tokio::sync::watch::channel(0);
        let dynamodb = Arc::new(DynamoDb {
            db,
            identity,
            stream_tick,
            stream_announcer: Default::default(),
            sweeper: Default::default(),
        });
        if tokio::runtime::Handle::try_current().is_ok() {
            let handle = ttl::start(Arc::downgrade(&dynamodb), options.ttl_sweep);
            *dynamodb.sweeper.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
        }
        Ok(dynamodb)
    }

    /// Whether DynamoDB's state on disk needs background work (a table with TTL enabled), found
    /// cheaply: without a database file there is none.
    pub fn needs_background(database: &Database) -> bool {
        if let Database::Sqlite { data_dir } = database {
            if !data_dir.join(store::SCHEMA.sqlite_file).exists() {
                return false;
            }
        }
        let Ok(db) = database.open(&store::SCHEMA) else { return false };
        db.query_opt("SELECT 1 FROM ddb_tables WHERE ttl = 1 LIMIT 1", &[]).ok().flatten().is_some()
    }

    /// Stops the TTL sweep.
    pub fn close(&self) {
        if let Some(handle) = self.sweeper.lock().unwrap_or_else(|p| p.into_inner()).take() {
            handle.abort();
        }
    }

    /// The DynamoDB Streams service over the same state.
    pub fn streams_service(self: &Arc<Self>) -> StreamsService {
        StreamsService::new(self.clone())
    }

    /// Changes whenever this node commits stream records (a poller's wake-up).
    pub fn stream_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.stream_tick.subscribe()
    }

    /// `announce` runs after every commit of stream records on this node (once set, for good):
    /// with several nodes, wiring can pass the news on so that pollers elsewhere wake too.
    pub fn set_stream_announcer(&self, announce: impl Fn() + Send + Sync + 'static) {
        let _ = self.stream_announcer.set(Box::new(announce));
    }

    /// Another node wrote stream records: wakes this node's `stream_changes` watchers.
    pub fn streams_changed_elsewhere(&self) {
        self.stream_tick.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn streams_written(&self) {
        self.stream_tick.send_modify(|n| *n = n.wrapping_add(1));
        if let Some(announce) = self.stream_announcer.get() {
            announce();
        }
    }

    pub(crate) fn region(&self) -> &str {
        &self.identity.region
    }

    pub(crate) fn table_arn(&self, name: &str) -> String {
        format!("arn:aws:dynamodb:{}:{}:table/{name}", self.identity.region, self.identity.account)
    }

    async fn dispatch(&self, operation: &str, body: &[u8]) -> Result<Value, DdbError> {
        let input = input::Input::parse(body)?;
        match operation {
            "CreateTable" => self.create_table(&input),
            "DescribeTable" => self.describe_table(&input),
            "ListTables" => self.list_tables(&input),
            "UpdateTable" => self.update_table(&input),
            "DeleteTable" => self.delete_table(&input),
            "UpdateTimeToLive" => self.update_time_to_live(&input),
            "DescribeTimeToLive" => self.describe_time_to_live(&input),
            "TagResource" => self.tag_resource(&input),
            "UntagResource" => self.untag_resource(&input),
            "ListTagsOfResource" => self.list_tags_of_resource(&input),
            "DescribeContinuousBackups" => self.describe_continuous_backups(&input),
            "UpdateContinuousBackups" => self.update_continuous_backups(&input),
            "DescribeLimits" => Ok(ops::settings::describe_limits()),
            "DescribeEndpoints" => Ok(ops::settings::describe_endpoints(&self.identity.region)),
            "PutItem" => self.put_item(&input),
            "GetItem" => self.get_item(&input),
            "UpdateItem" => self.update_item(&input),
            "DeleteItem" => self.delete_item(&input),
            "Query" => self.query(&input),
            "Scan" => self.scan(&input),
            "BatchGetItem" => self.batch_get_item(&input),
            "BatchWriteItem" => self.batch_write_item(&input),
            "TransactWriteItems" => self.transact_write_items(&input),
            "TransactGetItems" => self.transact_get_items(&input),
            "ExecuteStatement" => self.execute_statement(&input),
            "BatchExecuteStatement" => self.batch_execute_statement(&input),
            "ExecuteTransaction" => self.execute_transaction(&input),
            _ => Err(DdbError::new(
                400,
                "UnknownOperationException",
                format!("nimbus does not implement the DynamoDB operation {operation} yet"),
            )),
        }
    }
}

pub(crate) fn json_ok(value: Value) -> ApiResponse {
    let mut response = nimbus_api::json_response(value);
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/x-amz-json-1.0"));
    response
}

/// Whether a request is DynamoDB's (not DynamoDB Streams').
pub fn claims(headers: &HeaderMap) -> bool {
    headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|target| target.starts_with(TARGET_PREFIX))
}

impl Service for DynamoDb {
    fn name(&self) -> &'static str {
        "dynamodb"
    }

    fn claims(&self, _method: &Method, _uri: &Uri, headers: &HeaderMap) -> bool {
        claims(headers)
    }

    fn call(&self, request: ApiRequest) -> ServiceFuture<'_> {
        Box::pin(async move {
            let target = request.header("x-amz-target").unwrap_or_default();
            let operation = target.strip_prefix(TARGET_PREFIX).unwrap_or(target).to_owned();
            match self.dispatch(&operation, &request.body).await {
                Ok(value) => json_ok(value),
                Err(error) => error.into_response(),
            }
        })
    }
}

#[cfg(test)]
mod tests;
