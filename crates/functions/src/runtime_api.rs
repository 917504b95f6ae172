//! The Lambda Runtime API (2018-06-01) for one execution environment. Each environment gets its
//! own loopback listener, so the address in `AWS_LAMBDA_RUNTIME_API` is also its identity.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

/// AWS's limit on a synchronous response (and so on what `/response` accepts).
pub const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024;
const PREFIX: &str = "/2018-06-01/runtime/";

/// An invocation as `/next` hands it to the runtime.
#[derive(Debug)]
pub struct Event {
    pub request_id: String,
    pub payload: Bytes,
    pub deadline_ms: u128,
    pub invoked_arn: String,
    pub trace_id: String,
    pub client_context: Option<String>,
    pub cognito_identity: Option<String>,
}

/// How the runtime finished an invocation.
#[derive(Debug)]
pub enum Reply {
    Response(Bytes),
    Error { error_type: Option<String>, body: Bytes },
    TooLarge,
}

/// How initialisation ended: the first `/next` means ready.
#[derive(Debug)]
pub enum InitOutcome {
    Ready,
    Failed { error_type: Option<String>, body: Bytes },
}

/// State shared between the engine and this environment's Runtime API handlers.
pub struct Channel {
    events: tokio::sync::Mutex<mpsc::Receiver<Event>>,
    pending: Mutex<Option<(String, oneshot::Sender<Reply>)>>,
    init: Mutex<Option<oneshot::Sender<InitOutcome>>>,
}

/// The engine's side of a [`Channel`].
pub struct Handle {
    pub events: mpsc::Sender<Event>,
    pub init: oneshot::Receiver<InitOutcome>,
    channel: Arc<Channel>,
}

impl Handle {
    /// Registers the invocation the runtime will answer next.
    pub fn expect(&self, request_id: &str) -> oneshot::Receiver<Reply> {
        let (sender, receiver) = oneshot::channel();
        *lock(&self.channel.pending) = Some((request_id.to_owned(), sender));
        receiver
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Serves the Runtime API on `listener` until the returned task is aborted.
pub fn serve(listener: std::net::TcpListener) -> std::io::Result<(Handle, tokio::task::JoinHandle<()>)> {
    listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(listener)?;
    let (events_tx, events_rx) = mpsc::channel(1);
    let (init_tx, init_rx) = oneshot::channel();
    let channel = Arc::new(Channel {
        events: tokio::sync::Mutex::new(events_rx),
        pending: Mutex::new(None),
        init: Mutex::new(Some(init_tx)),
    });
    let handle = Handle { events: events_tx, init: init_rx, channel: channel.clone() };
    let task = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let channel = channel.clone();
            let service = service_fn(move |request| {
                let channel = channel.clone();
                async move { Ok::<_, Infallible>(route(&channel, request).await) }
            });
            connections.spawn(async move {
                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    Ok((handle, task))
}

async fn route(channel: &Channel, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return status(StatusCode::NOT_FOUND, "InvalidRequest", "unknown path");
    };
    let error_type = request
        .headers()
        .get("lambda-runtime-function-error-type")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    match (request.method(), rest) {
        (&Method::GET, "invocation/next") => next(channel).await,
        (&Method::POST, "init/error") => {
            let body = read_body(request.into_body()).await.unwrap_or_default();
            if let Some(init) = lock(&channel.init).take() {
                let _ = init.send(InitOutcome::Failed { error_type, body });
            }
            accepted()
        }
        (&Method::POST, rest) => {
            let Some((request_id, kind)) = rest.strip_prefix("invocation/").and_then(|r| r.rsplit_once('/'))
            else {
                return status(StatusCode::NOT_FOUND, "InvalidRequest", "unknown path");
            };
            let body = read_body(request.into_body()).await;
            let reply = match (kind, body) {
                ("response", Some(body)) => Reply::Response(body),
                ("response", None) => Reply::TooLarge,
                ("error", body) => Reply::Error { error_type, body: body.unwrap_or_default() },
                _ => return status(StatusCode::NOT_FOUND, "InvalidRequest", "unknown path"),
            };
            let too_large = matches!(reply, Reply::TooLarge);
            let mut pending = lock(&channel.pending);
            match pending.take() {
                Some((expected, sender)) if expected == request_id => {
                    let _ = sender.send(reply);
                }
                other => {
                    *pending = other;
                    return status(StatusCode::BAD_REQUEST, "InvalidRequestID", "Invalid request ID");
                }
            }
            if too_large {
                return status(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "RequestEntityTooLarge",
                    "Exceeded maximum allowed payload size (6291556 bytes).",
                );
            }
            accepted()
        }
        _ => status(StatusCode::NOT_FOUND, "InvalidRequest", "unknown path"),
    }
}

/// The long poll: ready for work. The first call ends initialisation.
async fn next(channel: &Channel) -> Response<Full<Bytes>> {
    if let Some(init) = lock(&channel.init).take() {
        let _ = init.send(InitOutcome::Ready);
    }
    let event = channel.events.lock().await.recv().await;
    let Some(event) = event else {
        return status(StatusCode::INTERNAL_SERVER_ERROR, "ShuttingDown", "environment is stopping");
    };
    let mut response = Response::new(Full::new(event.payload));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let mut set = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    };
    set("lambda-runtime-aws-request-id", &event.request_id);
    set("lambda-runtime-deadline-ms", &event.deadline_ms.to_string());
    set("lambda-runtime-invoked-function-arn", &event.invoked_arn);
    set("lambda-runtime-trace-id", &event.trace_id);
    if let Some(context) = &event.client_context {
        set("lambda-runtime-client-context", context);
    }
    if let Some(identity) = &event.cognito_identity {
        set("lambda-runtime-cognito-identity", identity);
    }
    response
}

/// The body, or `None` when it exceeds the response limit.
async fn read_body(body: Incoming) -> Option<Bytes> {
    Limited::new(body, MAX_RESPONSE_BYTES).collect().await.ok().map(|c| c.to_bytes())
}

fn accepted() -> Response<Full<Bytes>> {
    status(StatusCode::ACCEPTED, "", "")
}

fn status(code: StatusCode, error_type: &str, message: &str) -> Response<Full<Bytes>> {
    let body = if code == StatusCode::ACCEPTED {
        serde_json::json!({ "status": "OK" })
    } else {
        serde_json::json!({ "errorType": error_type, "errorMessage": message })
    };
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = code;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
