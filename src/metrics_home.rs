//! CloudWatch metrics among several nodes (see `home`): one node keeps the figures; the others
//! send it each invocation they run (and each throttle), so every node answers `GetMetricData`
//! with every node's invocations. The figures survive in one snapshot (`metrics/shared.cbor`),
//! saved by whichever node serves them.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::{HeaderMap, Method, Uri};
use nimbus_api::{ApiRequest, ApiResponse, Service, ServiceFuture};
use nimbus_functions::telemetry::{InvocationRecord, MetricsSink, MetricsSummary};
use nimbus_metrics::Metrics;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::home::{Closing, Held, Home, Shape};

/// Where other nodes post what their functions did (nimbus's own path, JSON records), with the
/// nodes' secret: the port is public, and functions reach it too.
const INTAKE: &str = "/_nimbus/metrics/records";
const SECRET: &str = "x-nimbus-node-secret";
/// Every function's recent minutes (`?minutes=N`, default 60, at most a day), for the console's
/// sparklines and any client: `GET /_nimbus/metrics/functions`.
pub const HISTORY: &str = "/_nimbus/metrics/functions";
/// Records waiting to be sent; beyond this they are dropped, as figures, not data.
const WAITING: usize = 65_536;
/// How often the figures are swept of old data and saved.
pub const MAINTENANCE: Duration = Duration::from_secs(300);

/// The metrics this node serves, with their maintenance (stopped when they move away).
pub struct Served {
    metrics: Arc<Metrics>,
    /// The nodes' secret; None on a node alone, which takes no records from anyone.
    secret: Option<String>,
    maintenance: tokio::task::JoinHandle<()>,
    /// Every region's CloudWatch, once wired (see `regions::metrics`); until then this one.
    regions: std::sync::OnceLock<Arc<crate::regional::Regional<Metrics>>>,
}

impl Served {
    /// The figures this node serves.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Call inside the runtime: starts the maintenance.
    pub fn new(metrics: Arc<Metrics>, secret: Option<String>) -> Arc<Served> {
        let maintenance = metrics.spawn_maintenance(MAINTENANCE);
        Arc::new(Served { maintenance, metrics, secret, regions: Default::default() })
    }

    /// The CloudWatch of `region` and `account` (opened if need be; this one's until every
    /// region's is wired).
    pub fn metrics_in(&self, region: &str, account: &str) -> Result<Arc<Metrics>, String> {
        match self.regions.get() {
            Some(regions) => regions.at(region, account)?.get_blocking(),
            None => Ok(self.metrics.clone()),
        }
    }

    /// Requests go to the CloudWatch of their region from now on.
    pub fn set_regions(&self, regions: Arc<crate::regional::Regional<Metrics>>) {
        let _ = self.regions.set(regions);
    }
}

pub type MetricsHome = Home<Served>;

pub fn shape() -> Shape {
    Shape {
        lease: "cloudwatch",
        claims: |method, uri, headers| {
            (method == Method::POST && uri.path() == INTAKE)
                || (method == Method::GET && uri.path() == HISTORY)
                || nimbus_metrics::claims(method, uri, headers)
        },
        claims_body: nimbus_metrics::claims_body,
        unavailable: nimbus_metrics::unavailable,
    }
}

impl Service for Served {
    fn name(&self) -> &'static str {
        "cloudwatch"
    }

    fn claims(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> bool {
        (shape().claims)(method, uri, headers)
    }

    fn claims_body(&self, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> bool {
        nimbus_metrics::claims_body(method, uri, headers, body)
    }

    fn call(&self, request: ApiRequest) -> ServiceFuture<'_> {
        if request.method == Method::POST && request.uri.path() == INTAKE {
            let known = self.secret.as_deref().is_some_and(|secret| request.header(SECRET) == Some(secret));
            return Box::pin(async move {
                match known {
                    true => self.intake(&request.body),
                    false => refusal(hyper::StatusCode::FORBIDDEN, "only nimbus nodes post here"),
                }
            });
        }
        if request.method == Method::GET && request.uri.path() == HISTORY {
            let minutes = request.query("minutes").and_then(|m| m.parse::<u64>().ok()).unwrap_or(60);
            let span = Duration::from_secs(minutes.saturating_mul(60));
            let history = match self.scoped(&request) {
                Some(metrics) => metrics.history(span),
                None => self.metrics.history(span),
            };
            return Box::pin(async move { nimbus_api::json_response(serde_json::json!(history)) });
        }
        match self.regions.get() {
            Some(regions) => regions.call(request),
            None => self.metrics.call(request),
        }
    }
}

impl Served {
    /// The CloudWatch of the region and account a signed request is for, when that is not this
    /// node's own (an unopened one holds no history: an empty one answers).
    fn scoped(&self, request: &ApiRequest) -> Option<Arc<Metrics>> {
        let scope = nimbus_api::scope::scope_of(&request.headers, &request.uri)?;
        let regions = self.regions.get()?;
        // A scope nimbus does not serve (not a region, past the cap) holds no history.
        let Ok(at) = regions.for_scope(&scope) else { return Some(Metrics::new(None)) };
        if Arc::ptr_eq(&at, regions.home()) {
            return None;
        }
        Some(at.opened().cloned().unwrap_or_else(|| Metrics::new(None)))
    }

    fn intake(&self, body: &[u8]) -> ApiResponse {
        let Ok(records) = serde_json::from_slice::<Vec<Remote>>(body) else {
            return refusal(hyper::StatusCode::BAD_REQUEST, "not records");
        };
        for record in &records {
            record.apply(&*self.metrics);
        }
        ApiResponse::new(nimbus_api::Body::new(Bytes::new()))
    }
}

fn refusal(status: hyper::StatusCode, why: &'static str) -> ApiResponse {
    let mut refused = ApiResponse::new(nimbus_api::Body::new(Bytes::from_static(why.as_bytes())));
    *refused.status_mut() = status;
    refused
}

impl Held for Served {
    fn close(&self) -> Closing<'_> {
        self.maintenance.abort();
        let all = match self.regions.get() {
            Some(regions) => regions.opened(),
            None => vec![self.metrics.clone()],
        };
        Box::pin(async move {
            for metrics in all {
                if let Ok(Err(error)) = tokio::task::spawn_blocking(move || metrics.save()).await {
                    eprintln!("nimbus: cannot save metrics: {error}");
                }
            }
        })
    }
}

/// One invocation or throttle, as another node sends it.
#[derive(Serialize, Deserialize)]
struct Remote {
    function: String,
    version: String,
    /// None: a throttle.
    invocation: Option<RemoteInvocation>,
}

#[derive(Serialize, Deserialize)]
struct RemoteInvocation {
    duration_us: u64,
    billed_ms: u64,
    memory_mb: u32,
    architecture: String,
    error: bool,
    concurrent: usize,
}

impl Remote {
    fn of(record: &InvocationRecord<'_>) -> Remote {
        Remote {
            function: record.function.to_owned(),
            version: record.version.to_owned(),
            invocation: Some(RemoteInvocation {
                duration_us: u64::try_from(record.duration.as_micros()).unwrap_or(u64::MAX),
                billed_ms: record.billed_ms,
                memory_mb: record.memory_mb,
                architecture: record.architecture.to_owned(),
                error: record.error,
                concurrent: record.concurrent,
            }),
        }
    }

    fn apply(&self, metrics: &dyn MetricsSink) {
        let Some(run) = &self.invocation else {
            return metrics.throttle(&self.function, &self.version);
        };
        metrics.invocation(&InvocationRecord {
            function: &self.function,
            version: &self.version,
            duration: Duration::from_micros(run.duration_us),
            billed_ms: run.billed_ms,
            memory_mb: run.memory_mb,
            architecture: &run.architecture,
            error: run.error,
            concurrent: run.concurrent,
        });
    }
}

/// Where the engine records invocations on this node: the figures here when this node serves
/// them, otherwise the serving node.
pub struct MetricsSinkHome {
    home: Arc<MetricsHome>,
    outgoing: mpsc::Sender<Remote>,
}

impl MetricsSinkHome {
    /// Starts the sender to the serving node (call inside the runtime).
    /// `secret`: the nodes' (see `Served`); None on a node alone, which sends nothing.
    pub fn new(home: Arc<MetricsHome>, secret: Option<String>) -> Arc<MetricsSinkHome> {
        let (outgoing, mut waiting) = mpsc::channel::<Remote>(WAITING);
        let sender = home.clone();
        tokio::spawn(async move {
            while let Some(first) = waiting.recv().await {
                let mut batch = vec![first];
                while let Ok(more) = waiting.try_recv() {
                    batch.push(more);
                    if batch.len() == 1000 {
                        break;
                    }
                }
                let Ok(body) = serde_json::to_vec(&batch) else { continue };
                let mut headers = HeaderMap::new();
                if let Some(value) = secret.as_deref().and_then(|s| s.parse().ok()) {
                    headers.insert(SECRET, value);
                }
                if let Err(error) = sender.post_holder(INTAKE, headers, Bytes::from(body)).await {
                    eprintln!("nimbus: {} invocation figures lost: {error}", batch.len());
                }
            }
        });
        Arc::new(MetricsSinkHome { home, outgoing })
    }

    fn send(&self, remote: Remote) {
        // Full: figures are dropped rather than slowing invocations down.
        let _ = self.outgoing.try_send(remote);
    }
}

impl MetricsSink for MetricsSinkHome {
    fn invocation(&self, record: &InvocationRecord<'_>) {
        if let Some(served) = self.home.local() {
            return served.metrics.invocation(record);
        }
        self.send(Remote::of(record));
    }

    fn throttle(&self, function: &str, version: &str) {
        if let Some(served) = self.home.local() {
            return served.metrics.throttle(function, version);
        }
        self.send(Remote { function: function.to_owned(), version: version.to_owned(), invocation: None });
    }

    fn summary(&self, function: &str) -> Option<MetricsSummary> {
        MetricsSink::summary(&*self.home.local()?.metrics, function)
    }
}

/// Where the figures of another region's (and account's) functions go: that region's
/// CloudWatch, on a node alone (with several nodes only nimbus's own region keeps them; see the
/// README).
pub struct ScopedMetricsSink {
    home: Arc<MetricsHome>,
    region: String,
    account: String,
}

impl ScopedMetricsSink {
    pub fn sink(home: Arc<MetricsHome>, region: &str, account: &str) -> Arc<dyn MetricsSink> {
        Arc::new(ScopedMetricsSink { home, region: region.to_owned(), account: account.to_owned() })
    }

    /// Applies `remote` to the region's figures: at once when they are open, otherwise once a
    /// task has opened them (opening reads the disk; the engine's hot path must not).
    fn apply(&self, remote: Remote) {
        let Some(served) = self.home.local() else { return };
        let Some(regions) = served.regions.get() else { return };
        let Ok(lazy) = regions.at(&self.region, &self.account) else { return };
        if let Some(metrics) = lazy.opened() {
            return remote.apply(&**metrics);
        }
        tokio::spawn(async move {
            match lazy.get().await {
                Ok(metrics) => remote.apply(&*metrics),
                Err(why) => eprintln!("nimbus: invocation figures lost: {why}"),
            }
        });
    }
}

impl MetricsSink for ScopedMetricsSink {
    fn invocation(&self, record: &InvocationRecord<'_>) {
        self.apply(Remote::of(record));
    }

    fn throttle(&self, function: &str, version: &str) {
        self.apply(Remote { function: function.to_owned(), version: version.to_owned(), invocation: None });
    }

    fn summary(&self, function: &str) -> Option<MetricsSummary> {
        let served = self.home.local()?;
        let metrics = served.regions.get()?.at(&self.region, &self.account).ok()?.opened()?.clone();
        MetricsSink::summary(&*metrics, function)
    }
}
