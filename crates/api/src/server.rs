//! The HTTP server: accepts connections, reads each request whole, hands it to the service that
//! claims it, and stamps every response with its request id.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{HeaderMap, Method, Request, Uri};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::{ApiRequest, ApiResponse, AwsError, Body, Protocol};

/// Larger than any AWS request body we accept (a 50 MB zip is ~67 MB as base64 JSON); services
/// apply their own, smaller, limits with their own error messages.
const MAX_BODY_BYTES: usize = 128 * 1024 * 1024;

pub type ServiceFuture<'a> = Pin<Box<dyn Future<Output = ApiResponse> + Send + 'a>>;

/// One AWS service on the shared port.
pub trait Service: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// Whether this service answers the request (by path, `X-Amz-Target`, host …).
    fn claims(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> bool;
    /// Asked only when no service claimed the request by its head: Query-protocol services
    /// share `POST /` and tell their requests apart by the form body (`Action=…&Version=…`).
    fn claims_body(&self, _method: &Method, _uri: &Uri, _headers: &HeaderMap, _body: &[u8]) -> bool {
        false
    }
    fn call(&self, request: ApiRequest) -> ServiceFuture<'_>;
}

/// Builds the `/_nimbus/health` document on demand.
pub type Health = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

struct Router {
    services: Vec<Arc<dyn Service>>,
    health: Health,
}

/// The AWS API: every service behind one router, served on any number of listeners.
#[derive(Clone)]
pub struct Api {
    router: Arc<Router>,
}

impl Api {
    pub fn new(services: Vec<Arc<dyn Service>>, health: Health) -> Api {
        Api { router: Arc::new(Router { services, health }) }
    }

    /// Serves until `shutdown` resolves, then stops accepting and gives open connections
    /// `grace` to finish their requests.
    pub async fn serve(&self, listener: TcpListener, shutdown: impl Future<Output = ()>, grace: Duration) {
        let graceful = GracefulShutdown::new();
        tokio::pin!(shutdown);
        loop {
            let (stream, _) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(_) => continue, // e.g. EMFILE: the next accept may succeed
                },
                _ = &mut shutdown => break,
            };
            let connection = graceful.watch(self.connection(stream));
            tokio::spawn(async move {
                let _ = connection.await;
            });
        }
        drop(listener);
        let _ = tokio::time::timeout(grace, graceful.shutdown()).await;
    }

    /// Serves a further listener (one inside a function's isolated network) until aborted.
    pub fn serve_extra(&self, listener: std::net::TcpListener) -> tokio::task::JoinHandle<()> {
        let api = self.clone();
        tokio::spawn(async move {
            let Ok(listener) = listener.set_nonblocking(true).and_then(|()| TcpListener::from_std(listener))
            else {
                return;
            };
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                connections.spawn(api.connection(stream));
            }
        })
    }

    fn connection(
        &self,
        stream: tokio::net::TcpStream,
    ) -> http1::Connection<
        TokioIo<tokio::net::TcpStream>,
        impl hyper::service::Service<
                Request<Incoming>,
                Response = ApiResponse,
                Error = Infallible,
                Future = impl Send,
            > + use<>,
    > {
        let _ = stream.set_nodelay(true);
        let router = self.router.clone();
        let service = service_fn(move |request| {
            let router = router.clone();
            async move { Ok::<_, Infallible>(router.route(request).await) }
        });
        http1::Builder::new().keep_alive(true).serve_connection(TokioIo::new(stream), service)
    }
}

impl Router {
    async fn route(&self, request: Request<Incoming>) -> ApiResponse {
        let request_id = crate::new_request_id();
        let mut response = self.dispatch(request, &request_id).await;
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert(HeaderName::from_static("x-amzn-requestid"), value);
        }
        response
    }

    async fn dispatch(&self, request: Request<Incoming>, request_id: &str) -> ApiResponse {
        let (head, body) = request.into_parts();
        if head.uri.path() == "/_nimbus/health" {
            return json_response((self.health)());
        }
        let claimed = self.services.iter().find(|s| s.claims(&head.method, &head.uri, &head.headers));
        let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => {
                let message = format!("Request must be smaller than {MAX_BODY_BYTES} bytes");
                return AwsError::too_large(message).into_response(Protocol::RestJson);
            }
        };
        let claimed = claimed.or_else(|| {
            self.services.iter().find(|s| s.claims_body(&head.method, &head.uri, &head.headers, &body))
        });
        let Some(service) = claimed else {
            let message = format!("No service answers {} {}", head.method, head.uri.path());
            return AwsError::new(404, "UnknownOperationException", message)
                .into_response(Protocol::RestJson);
        };
        let request = ApiRequest {
            method: head.method,
            uri: head.uri,
            headers: head.headers,
            body,
            request_id: request_id.to_owned(),
        };
        service.call(request).await
    }
}

/// A 200 response with a JSON body.
pub fn json_response(value: serde_json::Value) -> ApiResponse {
    let mut response = ApiResponse::new(Body::new(Bytes::from(value.to_string())));
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
