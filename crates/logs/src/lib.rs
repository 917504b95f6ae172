//! The CloudWatch Logs service (API `Logs_20140328`, JSON 1.1): log groups and streams, events
//! stored durably on disk and bounded by retention, `GetLogEvents` / `FilterLogEvents` with AWS's
//! tokens and filter patterns, and the sink the functions engine writes Lambda's logs into.
//!
//! ```ignore
//! let logs = nimbus_logs::open(&database, &blobs, identity.clone())?;
//! // as a service: services.push(logs.clone()); as the engine's sink: Arc<dyn LogSink>
//! logs.close().await; // on shutdown, after the engine stopped
//! ```

pub mod clock;
mod deliver;
mod errors;
mod insights;
mod ops;
pub mod pattern;
pub mod provider;
mod store;
mod tokens;

use std::path::Path;
use std::sync::Arc;

use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{HeaderMap, Method, Uri};
use nimbus_api::{ApiRequest, Identity, Protocol, Service, ServiceFuture};
use nimbus_functions::telemetry::{LogEvent, LogSink};
use nimbus_store::{Blobs, Database};

use crate::clock::{Clock, SystemClock};
pub use crate::deliver::{lambda_event, Subscriber};
pub use crate::store::OpenError;
use crate::store::Storage;

const TARGET_PREFIX: &str = "Logs_20140328.";

pub struct Logs {
    storage: Storage,
    identity: Identity,
    subscriber: std::sync::OnceLock<Arc<dyn Subscriber>>,
    /// Logs Insights queries run on this node, newest last (at most 100 kept).
    queries: std::sync::Mutex<std::collections::VecDeque<(String, serde_json::Value)>>,
    /// Events just ingested, for the live tail sessions on this node (bounded; see `ops::live`).
    live: tokio::sync::broadcast::Sender<Arc<ops::live::Ingested>>,
}

/// Opens (or creates) the logs: the catalog of groups and streams in `database` (schema `logs`;
/// on SQLite `<data dir>/logs/logs.db`), the events in the blob area `logs`. Starts the writer
/// thread; the service's calls, `flush` and `close` run on tokio. Must be called inside a
/// multi-threaded runtime when `database` is PostgreSQL.
///
/// Everything is held in memory from here on: one process may serve a database's logs at a
/// time, and another that opens them after this one closed (or died) finds them all.
pub fn open(database: &Database, blobs: &Blobs, identity: Identity) -> Result<Arc<Logs>, OpenError> {
    open_with_clock(database, blobs, identity, Arc::new(SystemClock))
}

/// As [`open`], for the logs directory `dir` = `<data dir>/logs` of a single node on SQLite.
// Until src/main.rs opens the storage layer itself.
pub fn open_with(dir: &Path, identity: Identity) -> Result<Arc<Logs>, OpenError> {
    let data_dir = dir.parent().unwrap_or(dir);
    open(&Database::sqlite(data_dir), &Blobs::new(data_dir, "local", false), identity)
}

/// As [`open`], reading the time from `clock` (tests move it to expire events).
pub fn open_with_clock(
    database: &Database,
    blobs: &Blobs,
    identity: Identity,
    clock: Arc<dyn Clock>,
) -> Result<Arc<Logs>, OpenError> {
    let area = blobs.area("logs").map_err(OpenError::Area)?;
    let storage = Storage::open(database, &area, clock)?;
    Ok(Arc::new(Logs {
        storage,
        identity,
        subscriber: std::sync::OnceLock::new(),
        queries: Default::default(),
        live: tokio::sync::broadcast::channel(ops::live::BACKLOG).0,
    }))
}

impl Logs {
    /// Where subscription filters send their events (set once, by the integrator).
    pub fn set_subscriber(&self, subscriber: Arc<dyn Subscriber>) {
        let _ = self.subscriber.set(subscriber);
    }

    /// Writes out every queued event and stops the writer; appends after this are dropped.
    pub async fn close(&self) {
        self.storage.close().await;
    }

    /// Events from the sink dropped because the writer's queue was full (or after `close`).
    pub fn dropped_events(&self) -> u64 {
        self.storage.dropped()
    }

    /// Waits until everything queued so far is written and synced.
    pub async fn flush(&self) {
        let _ = self.storage.flush().await;
    }

    /// Deletes the events retention has expired now, rather than at the next periodic pass.
    pub async fn expire_now(&self) {
        let _ = self.storage.expire_now().await;
    }

    fn group_arn(&self, name: &str) -> String {
        format!("arn:aws:logs:{}:{}:log-group:{name}", self.identity.region, self.identity.account)
    }
}

/// Whether a request is CloudWatch Logs' ([`Service::claims`]), for fronts that serve Logs
/// without holding a [`Logs`] (a node forwarding to the one that serves it).
pub fn claims(_method: &Method, _uri: &Uri, headers: &HeaderMap) -> bool {
    headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|target| target.starts_with(TARGET_PREFIX))
}

/// Logs' 503 `ServiceUnavailableException` (which SDKs retry), for a front that knows no node
/// serving Logs right now.
pub fn unavailable(_request: &ApiRequest) -> nimbus_api::ApiResponse {
    errors::busy().into_response(nimbus_api::Protocol::Json)
}

impl Service for Logs {
    fn name(&self) -> &'static str {
        "logs"
    }

    fn claims(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> bool {
        claims(method, uri, headers)
    }

    fn call(&self, request: ApiRequest) -> ServiceFuture<'_> {
        Box::pin(async move {
            let target = request.header("x-amz-target").unwrap_or_default();
            let operation = target.strip_prefix(TARGET_PREFIX).unwrap_or(target).to_owned();
            if operation == "StartLiveTail" {
                return match self.start_live_tail(&request.body, &request.request_id).await {
                    Ok(response) => response,
                    Err(error) => error.into_response(Protocol::Json),
                };
            }
            match self.dispatch(&operation, &request.body).await {
                Ok(value) => {
                    let mut response = nimbus_api::json_response(value);
                    let json = HeaderValue::from_static("application/x-amz-json-1.1");
                    response.headers_mut().insert(CONTENT_TYPE, json);
                    response
                }
                Err(error) => error.into_response(Protocol::Json),
            }
        })
    }
}

impl LogSink for Logs {
    fn append(&self, group: &str, stream: &str, events: Vec<LogEvent>) {
        if self.subscriber.get().is_some() || self.live.receiver_count() > 0 {
            let copies: Vec<(i64, String)> =
                events.iter().map(|e| (e.timestamp_ms, e.message.clone())).collect();
            self.offer_live(group, stream, &copies);
            self.deliver_subscriptions(group, stream, copies);
        }
        self.storage.sink(group, stream, events);
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;
    use hyper::HeaderMap;
    use nimbus_api::{ApiRequest, Service};
    use nimbus_functions::telemetry::{LogEvent, LogSink};

    async fn call(logs: &super::Logs, operation: &str, body: &str) -> (u16, serde_json::Value) {
        let mut headers = HeaderMap::new();
        headers.insert("x-amz-target", format!("Logs_20140328.{operation}").parse().unwrap());
        assert!(logs.claims(&hyper::Method::POST, &"/".parse().unwrap(), &headers));
        let request = ApiRequest {
            method: hyper::Method::POST,
            uri: "/".parse().unwrap(),
            headers,
            body: body.to_owned().into(),
            request_id: "r".into(),
        };
        let response = logs.call(request).await;
        let status = response.status().as_u16();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn serves_json_1_1_and_takes_lambda_lines_through_the_sink() {
        let dir = tempfile::tempdir().unwrap();
        let logs = super::open_with(&dir.path().join("logs"), Default::default()).unwrap();
        let mut other = HeaderMap::new();
        other.insert("x-amz-target", "DynamoDB_20120810.ListTables".parse().unwrap());
        assert!(!logs.claims(&hyper::Method::POST, &"/".parse().unwrap(), &other));

        let (status, body) = call(&logs, "DeleteLogGroup", r#"{"logGroupName":"/none"}"#).await;
        assert_eq!(status, 400);
        assert_eq!(body["__type"], "ResourceNotFoundException");
        assert_eq!(body["message"], "The specified log group does not exist.");
        let (_, body) = call(&logs, "StartLiveTail", "{}").await;
        assert_eq!(body["__type"], "InvalidParameterException");
        let (_, body) = call(&logs, "GetLogAnomalyDetector", "{}").await;
        assert_eq!(body["__type"], "UnknownOperationException");
        assert!(body["message"].as_str().unwrap().contains("GetLogAnomalyDetector"));
        let (_, body) = call(&logs, "CreateLogGroup", "not json").await;
        assert_eq!(body["__type"], "SerializationException");

        let now = crate::clock::Clock::now_ms(&crate::clock::SystemClock);
        let sink: &dyn LogSink = &*logs;
        sink.append(
            "/aws/lambda/fn",
            "s",
            vec![LogEvent { timestamp_ms: now, message: "START RequestId: 1\n".into() }],
        );
        logs.flush().await;
        let (status, body) =
            call(&logs, "FilterLogEvents", r#"{"logGroupName":"/aws/lambda/fn","filterPattern":"START"}"#)
                .await;
        assert_eq!(status, 200);
        assert_eq!(body["events"][0]["message"], "START RequestId: 1\n");
        assert_eq!(body["events"][0]["logStreamName"], "s");
        logs.close().await;
        assert_eq!(logs.dropped_events(), 0);
    }

    /// The API's calls from the runtime's workers, as nimbus serves them, on every backend; and
    /// a reopening finds what they made. Opened and dropped outside the runtime: PostgreSQL's
    /// client may not be made or dropped on its workers.
    #[test]
    fn calls_on_the_runtime_reach_every_backend_and_survive_a_reopen() {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        for (database, dir) in crate::store::testing::databases("logs_service") {
            let blobs = crate::store::testing::blobs(&dir);
            let logs = super::open(&database, &blobs, Default::default()).unwrap();
            let served = logs.clone();
            runtime
                .block_on(runtime.spawn(async move {
                    call(&served, "CreateLogGroup", r#"{"logGroupName":"/g"}"#).await;
                    call(&served, "CreateLogStream", r#"{"logGroupName":"/g","logStreamName":"s"}"#).await;
                    let now = crate::clock::Clock::now_ms(&crate::clock::SystemClock);
                    let put = format!(
                        r#"{{"logGroupName":"/g","logStreamName":"s","logEvents":[{{"timestamp":{now},"message":"m"}}]}}"#
                    );
                    assert_eq!(call(&served, "PutLogEvents", &put).await.0, 200);
                    served.close().await;
                }))
                .unwrap();
            drop(logs);
            let logs = super::open(&database, &blobs, Default::default()).unwrap();
            let (status, body) = runtime.block_on(call(
                &logs,
                "GetLogEvents",
                r#"{"logGroupName":"/g","logStreamName":"s","startFromHead":true}"#,
            ));
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["events"][0]["message"], "m");
            runtime.block_on(logs.close());
        }
    }
}
