//! Services that keep their state in memory (SQS's queues, the Logs catalog) and write it through
//! the storage layer, among several nodes: one node at a time serves such a service, the holder
//! of its lease; every other node forwards the service's calls to the holder as they came. So any
//! node answers any call with the same state. When the holder dies its lease expires, and the
//! next node to take it loads the state from the database (nothing acknowledged is lost) and
//! serves. A holder that cannot renew its lease (cut off from the database) stops serving first.
//!
//! On SQLite there is one node, which serves everything itself.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, Method, Request, Uri};
use nimbus_api::{ApiRequest, ApiResponse, Service, ServiceFuture};
use nimbus_store::Cluster;
use serde_json::Value;

/// Marks a forwarded call: a node that receives one but does not serve the service (the lease
/// moved meanwhile) answers 503 rather than forwarding again.
const FORWARDED: &str = "x-nimbus-forwarded";

pub type Closing<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// A service one node at a time serves.
pub trait Held: Service {
    /// Stops serving; what was acknowledged is committed before this returns.
    fn close(&self) -> Closing<'_>;
}

/// How a held service answers for itself without an instance at hand.
pub struct Shape {
    pub lease: &'static str,
    pub claims: fn(&Method, &Uri, &HeaderMap) -> bool,
    pub claims_body: fn(&Method, &Uri, &HeaderMap, &[u8]) -> bool,
    /// A 503 in the service's protocol, which SDKs retry.
    pub unavailable: fn(&ApiRequest) -> ApiResponse,
}

type Opener<S> = Box<dyn Fn() -> Result<Arc<S>, String> + Send + Sync>;

pub struct Home<S> {
    shape: Shape,
    /// None on SQLite: this node serves, always.
    shared: Option<Shared<S>>,
    /// The service, when this node serves it.
    local: RwLock<Option<Arc<S>>>,
    /// Where it is served when not here.
    holder: RwLock<Option<String>>,
}

struct Shared<S> {
    cluster: Arc<Cluster>,
    open: Opener<S>,
    /// One lease step at a time.
    balancing: tokio::sync::Mutex<()>,
}

impl<S: Held> Home<S> {
    /// This node alone serves `service`.
    pub fn alone(shape: Shape, service: Arc<S>) -> Home<S> {
        Home { shape, shared: None, local: RwLock::new(Some(service)), holder: RwLock::new(None) }
    }

    /// Served by whichever node holds the lease; `open` loads the service from the database when
    /// this node takes it. Call [`Home::balance`] to take part.
    pub fn shared(
        shape: Shape,
        cluster: Arc<Cluster>,
        open: impl Fn() -> Result<Arc<S>, String> + Send + Sync + 'static,
    ) -> Home<S> {
        let shared = Shared { cluster, open: Box::new(open), balancing: tokio::sync::Mutex::new(()) };
        Home { shape, shared: Some(shared), local: RwLock::new(None), holder: RwLock::new(None) }
    }

    pub fn local(&self) -> Option<Arc<S>> {
        self.local.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn holder(&self) -> Option<String> {
        self.holder.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether this node serves the service now.
    pub fn serves(&self) -> bool {
        self.local().is_some()
    }

    /// One step of the lease (call every expiry/4): renew it, or take it when free, and serve
    /// here; or, when another node holds it (or the database cannot be reached), stop serving
    /// here and learn where it is served.
    pub async fn balance(&self) {
        let Some(shared) = &self.shared else { return };
        let _one_at_a_time = shared.balancing.lock().await;
        let (cluster, lease) = (shared.cluster.clone(), self.shape.lease);
        // Renewed every quarter of the expiry, the lease has three quarters left: a database
        // that does not answer within half counts as lost, before another node could take it.
        let patience = shared.cluster.expiry() / 2;
        let renewing = tokio::task::spawn_blocking(move || cluster.try_lease(lease, cluster.expiry()));
        let held = tokio::time::timeout(patience, renewing).await;
        if matches!(held, Ok(Ok(Ok(true)))) {
            if self.local().is_none() {
                match tokio::task::block_in_place(|| (shared.open)()) {
                    Ok(service) => *self.local.write().unwrap_or_else(|p| p.into_inner()) = Some(service),
                    Err(error) => {
                        // Give the lease up, so that a node that can serve it takes it.
                        eprintln!("nimbus: cannot serve {} here: {error}", self.shape.lease);
                        let cluster = shared.cluster.clone();
                        let _ = tokio::task::spawn_blocking(move || cluster.release(lease)).await;
                    }
                }
            }
            *self.holder.write().unwrap_or_else(|p| p.into_inner()) = None;
            return;
        }
        self.close().await;
        let cluster = shared.cluster.clone();
        let holder = tokio::task::spawn_blocking(move || cluster.lease_holder(lease)).await;
        let address = match holder {
            Ok(Ok(Some((node, address)))) if node != shared.cluster.node() => Some(address),
            _ => None,
        };
        *self.holder.write().unwrap_or_else(|p| p.into_inner()) = address;
    }

    /// Stops serving here (what was acknowledged is committed first).
    pub async fn close(&self) {
        let taken = self.local.write().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(service) = taken {
            service.close().await;
        }
    }

    /// A POST of `body` to `path` on the node serving the service (nimbus's own calls between
    /// nodes); fails unless it answers 2xx.
    pub async fn post_holder(
        &self,
        path: &'static str,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<(), String> {
        let address =
            self.holder().ok_or_else(|| format!("no node serves {} right now", self.shape.lease))?;
        let request = ApiRequest {
            method: Method::POST,
            uri: Uri::from_static(path),
            headers,
            body,
            request_id: String::new(),
        };
        let response = forward(&address, request).await?;
        match response.status().is_success() {
            true => Ok(()),
            false => Err(format!("{address}{path} answered {}", response.status())),
        }
    }

    /// A JSON-protocol call (`target` = `X-Amz-Target`) to the node serving the service, for
    /// this node's own needs, for the instance of a region and account (`arn`'s; None:
    /// nimbus's own): the call is signed for them, as a client's would be (see `regional`). The
    /// error is the service's `__type` and message.
    pub async fn call_holder_in(
        &self,
        target: &str,
        content_type: &'static str,
        input: &Value,
        arn: Option<&str>,
    ) -> Result<Value, String> {
        let address =
            self.holder().ok_or_else(|| format!("no node serves {} right now", self.shape.lease))?;
        let mut headers = HeaderMap::new();
        if let Some(arn) = arn {
            let (region, account) = nimbus_api::scope::arn_scope(arn);
            let auth = nimbus_api::scope::authorization(account, region, self.shape.lease);
            headers.insert("authorization", auth.parse().map_err(|_| format!("bad ARN {arn}"))?);
        }
        headers.insert("x-amz-target", target.parse().map_err(|_| format!("bad target {target}"))?);
        headers.insert("content-type", hyper::header::HeaderValue::from_static(content_type));
        let request = ApiRequest {
            method: Method::POST,
            uri: Uri::from_static("/"),
            headers,
            body: Bytes::from(input.to_string()),
            request_id: String::new(),
        };
        let response = forward(&address, request).await?;
        let status = response.status();
        let body = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
        match status.is_success() {
            true => serde_json::from_slice(&body).map_err(|e| e.to_string()),
            false => Err(String::from_utf8_lossy(&body).into_owned()),
        }
    }
}

impl<S: Held> Service for Home<S> {
    fn name(&self) -> &'static str {
        self.shape.lease
    }

    fn claims(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> bool {
        (self.shape.claims)(method, uri, headers)
    }

    fn claims_body(&self, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> bool {
        (self.shape.claims_body)(method, uri, headers, body)
    }

    fn call(&self, request: ApiRequest) -> ServiceFuture<'_> {
        Box::pin(async move {
            if let Some(service) = self.local() {
                return service.call(request).await;
            }
            match self.holder() {
                Some(address) if !request.headers.contains_key(FORWARDED) => {
                    let refusal = (self.shape.unavailable)(&request);
                    forward(&address, request).await.unwrap_or(refusal)
                }
                _ => (self.shape.unavailable)(&request),
            }
        })
    }
}

/// Sends `request` as it came to the node at `address` (`http://host:port`) and returns its
/// answer.
async fn forward(address: &str, request: ApiRequest) -> Result<ApiResponse, String> {
    let authority = address.strip_prefix("http://").unwrap_or(address);
    let stream = tokio::net::TcpStream::connect(authority).await.map_err(|e| format!("{address}: {e}"))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| format!("{address}: {e}"))?;
    tokio::spawn(connection);
    let path = request.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let mut outgoing = Request::builder().method(request.method).uri(path);
    for (name, value) in &request.headers {
        if !matches!(name.as_str(), "connection" | "transfer-encoding" | "keep-alive" | "upgrade") {
            outgoing = outgoing.header(name, value);
        }
    }
    if !request.headers.contains_key(hyper::header::HOST) {
        outgoing = outgoing.header(hyper::header::HOST, authority);
    }
    let outgoing =
        outgoing.header(FORWARDED, "1").body(Full::new(request.body)).map_err(|e| e.to_string())?;
    let response = sender.send_request(outgoing).await.map_err(|e| format!("{address}: {e}"))?;
    let (mut parts, body) = response.into_parts();
    let body = body.collect().await.map_err(|e| format!("{address}: {e}"))?.to_bytes();
    parts.headers.remove(hyper::header::TRANSFER_ENCODING);
    parts.headers.remove(hyper::header::CONNECTION);
    Ok(ApiResponse::from_parts(parts, Full::new(body)))
}
