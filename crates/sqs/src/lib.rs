//! Amazon SQS (API `2012-11-05`): standard and FIFO queues over the JSON protocol current SDKs
//! speak (`X-Amz-Target: AmazonSQS.*`, query-compatible errors) and the Query protocol older
//! clients speak (form-encoded `Action=…`, XML). Messages are durable before a send answers;
//! receives, visibility changes and deletes are durable too (see `engine::store`).
//!
//! ```ignore
//! let sqs = nimbus_sqs::Sqs::open(&database, "us-east-1", "000000000000")?; // in tokio
//! services.push(sqs.clone()); // the AWS API; `sqs.send(...)` / `sqs.receive(...)` for engines
//! sqs.close().await; // hands over: pending writes committed, background tasks stopped
//! ```
//!
//! The engine lives in one process: with several nodes, one of them serves SQS at a time and
//! the next one opens it from the database when that one closes or dies (receipt handles name
//! a message and a stored token, nothing of the process, so they stay valid).

mod api;
pub mod clock;
mod engine;
mod error;
#[cfg(test)]
mod handover_tests;
mod md5;
mod ops;
mod protocol;
pub mod provider;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use hyper::{HeaderMap, Method, Uri};
use nimbus_api::{ApiRequest, ApiResponse, Service, ServiceFuture};
use nimbus_store::Database;
use tokio::sync::watch;

pub use crate::api::{QueueAttributes, ReceivedMessage, SendRequest};
use crate::clock::{Clock, SystemClock};
pub use crate::engine::message::AttributeValue;
pub use crate::engine::queue::Redrive;
use crate::engine::state::QueueState;
pub use crate::engine::store::OpenError;
use crate::engine::store::{Store, Write, SCHEMA, SCHEMA_IN_DIR};
pub use crate::error::SqsError;

/// How often retention and deduplication windows are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

pub struct Sqs {
    me: Weak<Sqs>,
    state: Mutex<State>,
    store: Store,
    clock: Arc<dyn Clock>,
    region: String,
    account: String,
    moves: ops::moves::Tasks,
    /// True once [`Sqs::close`] began: calls are refused and background tasks end.
    closed: watch::Sender<bool>,
}

pub(crate) struct State {
    queues: BTreeMap<String, QueueState>,
    next_seq: u64,
}

impl Sqs {
    /// Opens (or creates) the queues stored in `at`: the storage layer (`&Database`), or — the
    /// old entry point, kept until the wiring moves — the SQS directory holding `sqs.db`. Call
    /// inside a tokio runtime: it starts the retention sweeper.
    pub fn open<'a>(at: impl Into<Location<'a>>, region: &str, account: &str) -> Result<Arc<Sqs>, OpenError> {
        Sqs::open_with_clock(at, region, account, Arc::new(SystemClock))
    }

    /// As [`Sqs::open`], reading the time from `clock` (tests move it to expire visibility).
    pub fn open_with_clock<'a>(
        at: impl Into<Location<'a>>,
        region: &str,
        account: &str,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Sqs>, OpenError> {
        let (store, loaded) = match at.into() {
            Location::Database(database) => Store::open(database, &SCHEMA)?,
            Location::Dir(dir) => Store::open(&Database::sqlite(dir), &SCHEMA_IN_DIR)?,
        };
        let mut queues = BTreeMap::new();
        for meta in loaded.queues {
            let arn = format!("arn:aws:sqs:{region}:{account}:{}", meta.name);
            queues.insert(meta.name.clone(), QueueState::new(meta, arn));
        }
        for (queue, message) in loaded.messages {
            if let Some(state) = queues.get_mut(&queue) {
                state.insert(message);
            }
        }
        for dedup in loaded.dedup {
            if let Some(state) = queues.get_mut(&dedup.queue) {
                state.dedup.insert(dedup.key.clone(), dedup);
            }
        }
        let sqs = Arc::new_cyclic(|me| Sqs {
            me: me.clone(),
            state: Mutex::new(State { queues, next_seq: loaded.next_seq }),
            store,
            clock,
            region: region.to_owned(),
            account: account.to_owned(),
            moves: ops::moves::Tasks::default(),
            closed: watch::Sender::new(false),
        });
        if tokio::runtime::Handle::try_current().is_ok() {
            sqs.spawn(sweeper(Arc::downgrade(&sqs)));
        }
        Ok(sqs)
    }

    /// Stops serving: calls are refused from now on (503, which SDKs retry), long polls return
    /// empty, the sweeper and message move tasks end, and the writes already accepted are
    /// committed before this returns; the writer thread then ends and releases the database.
    /// What was acknowledged is in the database for the next [`Sqs::open`], here or on another
    /// node. Calling it again returns at once.
    pub async fn close(&self) {
        self.closed.send_replace(true);
        for queue in self.lock().queues.values() {
            queue.notify.notify_waiters();
        }
        self.store.close().await;
    }

    pub fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    /// Refuses calls once closed.
    fn check_open(&self) -> Result<(), SqsError> {
        if self.is_closed() {
            return Err(SqsError::unavailable());
        }
        Ok(())
    }

    /// Runs a background task until it ends or SQS closes.
    fn spawn(&self, work: impl Future<Output = ()> + Send + 'static) {
        let mut closed = self.closed.subscribe();
        tokio::spawn(async move {
            tokio::select! {
                _ = work => {}
                _ = closed.wait_for(|closed| *closed) => {}
            }
        });
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    fn arn(&self, name: &str) -> String {
        format!("arn:aws:sqs:{}:{}:{name}", self.region, self.account)
    }

    /// Deletes expired messages and deduplication entries now.
    pub async fn sweep(&self) {
        let now = self.now();
        let mut writes = Vec::new();
        for queue in self.lock().queues.values_mut() {
            queue.expire(now, &mut writes);
        }
        writes.push(Write::ExpireDedup { before_ms: now });
        let _ = self.store.write(writes).await;
    }
}

/// Where SQS keeps its state (see [`Sqs::open`]).
pub enum Location<'a> {
    Database(&'a Database),
    /// The SQS directory (`<data>/sqs`) holding `sqs.db`: the entry point before the storage layer.
    Dir(&'a Path),
}

impl<'a> From<&'a Database> for Location<'a> {
    fn from(database: &'a Database) -> Location<'a> {
        Location::Database(database)
    }
}

impl<'a> From<&'a Path> for Location<'a> {
    fn from(dir: &'a Path) -> Location<'a> {
        Location::Dir(dir)
    }
}

impl<'a> From<&'a PathBuf> for Location<'a> {
    fn from(dir: &'a PathBuf) -> Location<'a> {
        Location::Dir(dir)
    }
}

async fn sweeper(sqs: Weak<Sqs>) {
    loop {
        tokio::time::sleep(SWEEP_EVERY).await;
        let Some(sqs) = sqs.upgrade() else { return };
        sqs.sweep().await;
    }
}

/// Whether an unsigned request is SQS's ([`Service::claims`]), for fronts that serve SQS
/// without holding an [`Sqs`] (a node forwarding to the one that serves it).
pub fn claims(_method: &Method, uri: &Uri, headers: &HeaderMap) -> bool {
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok());
    match target {
        Some(target) => target.starts_with(protocol::TARGET_PREFIX),
        None => uri.query().is_some_and(|q| protocol::query::is_sqs_form(q.as_bytes())),
    }
}

/// As [`claims`], with the body ([`Service::claims_body`]).
pub fn claims_body(method: &Method, _uri: &Uri, _headers: &HeaderMap, body: &[u8]) -> bool {
    method == Method::POST && protocol::query::is_sqs_form(body)
}

/// SQS's 503 `ServiceUnavailable` (which SDKs retry) in the request's protocol: for a front
/// that knows no node serving SQS right now.
pub fn unavailable(request: &ApiRequest) -> ApiResponse {
    let error = SqsError::unavailable();
    match request.header("x-amz-target") {
        Some(_) => error.to_json_response(),
        None => error.to_xml_response(&request.request_id),
    }
}

impl Service for Sqs {
    fn name(&self) -> &'static str {
        "sqs"
    }

    fn claims(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> bool {
        claims(method, uri, headers)
    }

    fn claims_body(&self, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> bool {
        claims_body(method, uri, headers, body)
    }

    fn call(&self, request: ApiRequest) -> ServiceFuture<'_> {
        Box::pin(protocol::handle(self, request))
    }
}
