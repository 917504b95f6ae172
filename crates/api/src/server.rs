//! The HTTP server: accepts connections within the front door's limits, reads each request whole
//! and hands it to the router, which stamps every response with its request id.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{HeaderMap, Method, Request, Uri};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};

use crate::door::{Gate, Limits, Ticket};
use crate::router::Router;
use crate::stream::{served, Served};
use crate::{ApiRequest, ApiResponse, Body};

pub type ServiceFuture<'a> = Pin<Box<dyn Future<Output = ApiResponse> + Send + 'a>>;

/// One AWS service on the shared port, routed to by its [`name`](Service::name): botocore's client
/// name (`lambda`, `sqs`, `cloudwatch` …), which requests name by credential scope, target or path.
pub trait Service: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// Asked only about requests that name no AWS service (unsigned, no `X-Amz-Target`, no Query
    /// `Version`): whether this service answers them anyway (nimbus's own paths, anonymous S3).
    fn claims(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> bool;
    /// The same question with the body at hand.
    fn claims_body(&self, _method: &Method, _uri: &Uri, _headers: &HeaderMap, _body: &[u8]) -> bool {
        false
    }
    fn call(&self, request: ApiRequest) -> ServiceFuture<'_>;
}

/// Builds the `/_nimbus/health` document on demand.
pub type Health = Arc<dyn Fn() -> serde_json::Value + Send + Sync>;

/// The AWS API: every service behind one router, served on any number of listeners that share
/// one cap on open connections.
#[derive(Clone)]
pub struct Api {
    router: Arc<Router>,
    limits: Limits,
    gate: Arc<Gate>,
    /// Turned true when serving stops: streamed responses end then.
    stopping: tokio::sync::watch::Sender<bool>,
}

impl Api {
    pub fn new(services: Vec<Arc<dyn Service>>, health: Health) -> Api {
        let limits = Limits::default();
        Api {
            router: Arc::new(Router { services, health }),
            limits,
            gate: Gate::new(limits.max_connections),
            stopping: tokio::sync::watch::Sender::new(false),
        }
    }

    pub fn with_limits(self, limits: Limits) -> Api {
        Api { limits, gate: Gate::new(limits.max_connections), ..self }
    }

    /// Serves until `shutdown` resolves, then stops accepting and gives open connections
    /// `grace` to finish their requests.
    pub async fn serve(&self, listener: TcpListener, shutdown: impl Future<Output = ()>, grace: Duration) {
        let graceful = GracefulShutdown::new();
        tokio::pin!(shutdown);
        loop {
            let stream = tokio::select! {
                accepted = accept(&listener) => accepted,
                _ = &mut shutdown => break,
            };
            let Some(ticket) = self.gate.admit() else { continue };
            let evicted = ticket.slot.clone();
            let connection = graceful.watch(self.connection(stream, ticket));
            tokio::spawn(async move {
                tokio::select! {
                    _ = connection => {}
                    _ = evicted.evicted.notified() => {}
                }
            });
        }
        drop(listener);
        self.stopping.send_replace(true);
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
            loop {
                let stream = accept(&listener).await;
                let Some(ticket) = api.gate.admit() else { continue };
                let evicted = ticket.slot.clone();
                let connection = api.connection(stream, ticket);
                connections.spawn(async move {
                    tokio::select! {
                        _ = connection => {}
                        _ = evicted.evicted.notified() => {}
                    }
                });
                while connections.try_join_next().is_some() {}
            }
        })
    }

    /// One connection; `ticket` holds its place under the cap for as long as it is open. The
    /// header-read timeout covers heads only: a request being handled has no time limit here.
    fn connection(
        &self,
        stream: TcpStream,
        ticket: Ticket,
    ) -> http1::Connection<
        TokioIo<TcpStream>,
        impl hyper::service::Service<
                Request<Incoming>,
                Response = hyper::Response<Served>,
                Error = Infallible,
                Future = impl Send,
            > + use<>,
    > {
        let _ = stream.set_nodelay(true);
        let router = self.router.clone();
        let stopping = self.stopping.subscribe();
        let service = service_fn(move |request| {
            let busy = ticket.busy();
            let router = router.clone();
            let stopping = stopping.clone();
            async move {
                let response = router.route(request).await;
                drop(busy);
                Ok::<_, Infallible>(served(response, &stopping))
            }
        });
        http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_read_timeout)
            .keep_alive(true)
            .serve_connection(TokioIo::new(stream), service)
    }
}

/// The next connection; accept errors (e.g. EMFILE while every descriptor is taken) are waited
/// out briefly instead of retried in a busy loop.
async fn accept(listener: &TcpListener) -> TcpStream {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => return stream,
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// A 200 response with a JSON body.
pub fn json_response(value: serde_json::Value) -> ApiResponse {
    let mut response = ApiResponse::new(Body::new(Bytes::from(value.to_string())));
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
