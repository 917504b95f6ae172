//! SQS among several nodes. SQS keeps its queues in memory (that is what makes it fast) and
//! writes every change through the storage layer; so one node at a time serves it: the holder
//! of the lease `sqs`. Every other node forwards SQS calls to the holder as they came, so any
//! node answers any SQS call with the same state, a message is in flight once whichever node
//! received it, and receipt handles work everywhere. When the holder dies its lease expires and
//! the next node to take it loads the queues from the database (nothing acknowledged is lost)
//! and serves. Event source mapping pollers receive where SQS lives, so they move with it.
//!
//! On SQLite there is one node, which serves SQS itself.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, Method, Request, Uri};
use nimbus_api::{ApiRequest, ApiResponse, Identity, Service, ServiceFuture};
use nimbus_sqs::Sqs;
use nimbus_store::{Cluster, Database};
use serde_json::{json, Value};

const LEASE: &str = "sqs";
/// Marks a forwarded call: a node that receives one but does not serve SQS (the lease moved
/// meanwhile) answers 503 rather than forwarding again.
const FORWARDED: &str = "x-nimbus-forwarded";

type Pending<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, String>> + Send + 'a>>;

pub struct SqsHome {
    /// None on SQLite: this node serves SQS, always.
    shared: Option<Shared>,
    /// SQS, when this node serves it.
    local: RwLock<Option<Arc<Sqs>>>,
    /// Where SQS is served when not here.
    holder: RwLock<Option<String>>,
}

struct Shared {
    cluster: Arc<Cluster>,
    database: Database,
    identity: Identity,
    /// One lease step at a time.
    balancing: tokio::sync::Mutex<()>,
}

impl SqsHome {
    /// This node alone serves `sqs`.
    pub fn alone(sqs: Arc<Sqs>) -> Arc<SqsHome> {
        Arc::new(SqsHome { shared: None, local: RwLock::new(Some(sqs)), holder: RwLock::new(None) })
    }

    /// SQS served by whichever node holds the lease; call [`SqsHome::balance`] to take part.
    pub fn shared(cluster: Arc<Cluster>, database: Database, identity: Identity) -> Arc<SqsHome> {
        let shared = Shared { cluster, database, identity, balancing: tokio::sync::Mutex::new(()) };
        Arc::new(SqsHome { shared: Some(shared), local: RwLock::new(None), holder: RwLock::new(None) })
    }

    fn local(&self) -> Option<Arc<Sqs>> {
        self.local.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn holder(&self) -> Option<String> {
        self.holder.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether this node serves SQS now.
    pub fn serves(&self) -> bool {
        self.local().is_some()
    }

    /// One step of the lease (call every expiry/4): renew it or take it when free, and open SQS
    /// here; or, when another node holds it (or the database cannot be reached), stop serving
    /// here and learn where it is served.
    pub async fn balance(&self) {
        let Some(shared) = &self.shared else { return };
        let _one_at_a_time = shared.balancing.lock().await;
        let cluster = shared.cluster.clone();
        let ttl = cluster.expiry();
        let held = tokio::task::spawn_blocking(move || cluster.try_lease(LEASE, ttl)).await;
        if matches!(held, Ok(Ok(true))) {
            if self.local().is_none() {
                let opened = tokio::task::block_in_place(|| {
                    Sqs::open(&shared.database, &shared.identity.region, &shared.identity.account)
                });
                match opened {
                    Ok(sqs) => *self.local.write().unwrap_or_else(|p| p.into_inner()) = Some(sqs),
                    Err(error) => eprintln!("nimbus: cannot open SQS here: {error}"),
                }
            }
            *self.holder.write().unwrap_or_else(|p| p.into_inner()) = None;
            return;
        }
        self.close().await;
        let cluster = shared.cluster.clone();
        let holder = tokio::task::spawn_blocking(move || cluster.lease_holder(LEASE)).await;
        let address = match holder {
            Ok(Ok(Some((node, address)))) if node != shared.cluster.node() => Some(address),
            _ => None,
        };
        *self.holder.write().unwrap_or_else(|p| p.into_inner()) = address;
    }

    /// Stops serving SQS here (what was acknowledged is committed first).
    pub async fn close(&self) {
        let taken = self.local.write().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(sqs) = taken {
            sqs.close().await;
        }
    }

    /// A JSON-protocol call to the node serving SQS, for this node's own needs.
    async fn call_holder(&self, operation: &str, input: Value) -> Result<Value, String> {
        let address = self.holder().ok_or("no node serves SQS right now")?;
        let mut headers = HeaderMap::new();
        headers
            .insert("x-amz-target", format!("AmazonSQS.{operation}").parse().map_err(|_| "bad operation")?);
        headers.insert("content-type", hyper::header::HeaderValue::from_static("application/x-amz-json-1.0"));
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
            false => Err(format!("SQS at {address} answered {status}: {}", String::from_utf8_lossy(&body))),
        }
    }

    /// The queue URL of `queue_arn` on the serving node.
    fn queue_url(&self, queue_arn: &str) -> Result<String, String> {
        let address = self.holder().ok_or("no node serves SQS right now")?;
        let mut parts = queue_arn.rsplitn(3, ':');
        let (Some(name), Some(account)) = (parts.next(), parts.next()) else {
            return Err(format!("not a queue ARN: {queue_arn}"));
        };
        Ok(format!("{address}/{account}/{name}"))
    }

    pub async fn send(&self, queue_arn: &str, body: String) -> Result<(), String> {
        if let Some(sqs) = self.local() {
            return sqs.send(queue_arn, body, BTreeMap::new()).await.map(drop).map_err(|e| e.to_string());
        }
        let input = json!({ "QueueUrl": self.queue_url(queue_arn)?, "MessageBody": body });
        self.call_holder("SendMessage", input).await.map(drop)
    }

    /// Whether the queue exists (S3 checks its notification targets). Blocking.
    pub fn exists(&self, queue_arn: &str) -> bool {
        if let Some(sqs) = self.local() {
            return sqs.queue_attributes(queue_arn).is_ok();
        }
        let Ok(url) = self.queue_url(queue_arn) else { return false };
        let input = json!({ "QueueUrl": url, "AttributeNames": ["QueueArn"] });
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(self.call_holder("GetQueueAttributes", input)).is_ok()
        })
    }
}

impl Service for SqsHome {
    fn name(&self) -> &'static str {
        "sqs"
    }

    fn claims(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> bool {
        nimbus_sqs::claims(method, uri, headers)
    }

    fn claims_body(&self, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> bool {
        nimbus_sqs::claims_body(method, uri, headers, body)
    }

    fn call(&self, request: ApiRequest) -> ServiceFuture<'_> {
        Box::pin(async move {
            if let Some(sqs) = self.local() {
                return sqs.call(request).await;
            }
            match self.holder() {
                Some(address) if !request.headers.contains_key(FORWARDED) => {
                    let refusal = nimbus_sqs::unavailable(&request);
                    forward(&address, request).await.unwrap_or(refusal)
                }
                _ => nimbus_sqs::unavailable(&request),
            }
        })
    }
}

impl nimbus_lambda::Queues for SqsHome {
    fn send<'a>(&'a self, queue_arn: &'a str, body: String) -> Pending<'a, ()> {
        Box::pin(SqsHome::send(self, queue_arn, body))
    }

    /// Receives only where SQS is served: pollers on the other nodes wait, and take over when
    /// SQS moves to their node.
    fn receive<'a>(&'a self, queue_arn: &'a str, max: usize, wait: Duration) -> Pending<'a, Vec<Value>> {
        Box::pin(async move {
            let Some(sqs) = self.local() else {
                tokio::time::sleep(wait).await;
                return Ok(Vec::new());
            };
            let messages = sqs.receive(queue_arn, max, wait, None).await.map_err(|e| e.to_string())?;
            Ok(messages.iter().map(nimbus_sqs::ReceivedMessage::to_lambda_record).collect())
        })
    }

    fn delete<'a>(&'a self, queue_arn: &'a str, receipt_handles: Vec<String>) -> Pending<'a, ()> {
        Box::pin(async move {
            for handle in receipt_handles {
                match self.local() {
                    Some(sqs) => sqs.delete(queue_arn, &handle).await.map_err(|e| e.to_string())?,
                    None => {
                        let input =
                            json!({ "QueueUrl": self.queue_url(queue_arn)?, "ReceiptHandle": handle });
                        self.call_holder("DeleteMessage", input).await?;
                    }
                }
            }
            Ok(())
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
