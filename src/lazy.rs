//! Services that cost nothing until first used: the port knows their name from the start, their
//! state (database files, background tasks) is opened by the first request that reaches them —
//! or at start when they already hold state that must work without a request (schedules that
//! fire, streams being polled). Start-up time and idle memory stay flat however many services
//! nimbus serves.

use std::sync::Arc;

use hyper::{HeaderMap, Method, Uri};
use nimbus_api::{ApiRequest, AwsError, Protocol, Service, ServiceFuture};
use tokio::sync::OnceCell;

type Opener<S> = Box<dyn Fn() -> Result<Arc<S>, String> + Send + Sync>;

pub struct Lazy<S> {
    name: &'static str,
    protocol: Protocol,
    /// nimbus's own paths the service answers even before it is opened (`/_nimbus/ec2/`).
    paths: Option<&'static str>,
    open: Opener<S>,
    opened: OnceCell<Arc<S>>,
    /// One opening at a time, whichever way it is asked for (a request's `get` and another
    /// service's `get_blocking` at once would otherwise both open, and race on the migrations).
    opening: std::sync::Mutex<Option<Arc<S>>>,
}

impl<S: Service> Lazy<S> {
    /// `open` runs once it succeeds; a failure answers that request with
    /// `InternalFailure` naming the cause and the next request tries again.
    pub fn new(
        name: &'static str,
        protocol: Protocol,
        open: impl Fn() -> Result<Arc<S>, String> + Send + Sync + 'static,
    ) -> Arc<Lazy<S>> {
        Arc::new(Lazy {
            name,
            protocol,
            paths: None,
            open: Box::new(open),
            opened: OnceCell::new(),
            opening: Default::default(),
        })
    }

    /// As [`Lazy::new`], for a service that also answers nimbus's own paths under `prefix`
    /// (which open it).
    pub fn with_paths(
        name: &'static str,
        protocol: Protocol,
        prefix: &'static str,
        open: impl Fn() -> Result<Arc<S>, String> + Send + Sync + 'static,
    ) -> Arc<Lazy<S>> {
        Arc::new(Lazy {
            name,
            protocol,
            paths: Some(prefix),
            open: Box::new(open),
            opened: OnceCell::new(),
            opening: Default::default(),
        })
    }

    /// A service opened already (a region's default instance, opened at start).
    pub fn ready(name: &'static str, protocol: Protocol, service: Arc<S>) -> Arc<Lazy<S>> {
        let opened = service.clone();
        let lazy = Lazy::new(name, protocol, move || Ok(opened.clone()));
        let _ = lazy.opened.set(service);
        lazy
    }

    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The service, opened now if it was not yet (on this worker thread, which hands its other
    /// tasks to the runtime meanwhile).
    pub async fn get(&self) -> Result<Arc<S>, String> {
        let open = || async { tokio::task::block_in_place(|| self.open_once()) };
        self.opened.get_or_try_init(open).await.cloned()
    }

    /// As [`Lazy::get`], for blocking callers (not on a runtime worker outside `block_in_place`).
    pub fn get_blocking(&self) -> Result<Arc<S>, String> {
        if let Some(service) = self.opened() {
            return Ok(service.clone());
        }
        let service = self.open_once()?;
        // Opened meanwhile by a request: use that one, so that there is one instance.
        match self.opened.set(service.clone()) {
            Ok(()) => Ok(service),
            Err(_) => Ok(self.opened.get().cloned().unwrap_or(service)),
        }
    }

    /// Opens the service, or hands out the one opened already.
    fn open_once(&self) -> Result<Arc<S>, String> {
        let mut opening = self.opening.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(service) = opening.as_ref() {
            return Ok(service.clone());
        }
        let service = (self.open)()?;
        *opening = Some(service.clone());
        Ok(service)
    }

    /// The service if something opened it already.
    pub fn opened(&self) -> Option<&Arc<S>> {
        self.opened.get()
    }
}

impl<S: Service> Service for Lazy<S> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn claims(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> bool {
        self.paths.is_some_and(|prefix| uri.path().starts_with(prefix))
            || self.opened.get().is_some_and(|service| service.claims(method, uri, headers))
    }

    fn call(&self, request: ApiRequest) -> ServiceFuture<'_> {
        Box::pin(async move {
            let opened = self.get().await;
            match opened {
                Ok(service) => service.call(request).await,
                Err(why) => {
                    let message = format!("nimbus could not open {}: {why}", self.name);
                    AwsError::new(500, "InternalFailure", message).into_response(self.protocol)
                }
            }
        })
    }
}
