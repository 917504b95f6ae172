//! The console: a browser UI served by nimbus itself under `/_nimbus/ui/`, and the live feed it
//! listens to (`GET /_nimbus/events`, server-sent events). The UI is hand-written HTML, CSS and
//! JavaScript modules embedded in the binary (no build step, no CDN, nothing fetched from
//! elsewhere); it reads what it shows through nimbus's documented `/_nimbus/…` JSON paths and the
//! AWS APIs, the same ones the CLI and SDKs use.
//!
//! It costs nothing until a browser asks for it: the assets are static bytes in the binary and
//! the feed's work runs only while a browser listens.

mod assets;
mod feed;

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use bytes::Bytes;
use hyper::header::{HeaderValue, CONTENT_TYPE, LOCATION};
use hyper::{HeaderMap, Method, StatusCode, Uri};
use nimbus_api::{ApiRequest, ApiResponse, AwsError, Body, Protocol, Service, ServiceFuture};

pub use feed::{Reach, MAX_CLIENTS};

/// Where the UI is served.
pub const UI_PATH: &str = "/_nimbus/ui/";
/// The live feed.
pub const EVENTS_PATH: &str = "/_nimbus/events";

/// Sent with every console response: scripts and styles only from nimbus itself, no inline code,
/// no framing, nothing sent anywhere but nimbus.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub struct Console {
    reach: Arc<dyn Reach>,
    clients: Arc<AtomicUsize>,
}

impl Console {
    pub fn new(reach: Arc<dyn Reach>) -> Console {
        Console { reach, clients: Arc::default() }
    }

    fn answer(&self, request: &ApiRequest) -> Result<ApiResponse, AwsError> {
        if !local_host(request.header("host")) {
            return Err(AwsError::new(
                403,
                "Forbidden",
                "the console answers requests addressed to an IP address or localhost only",
            ));
        }
        let path = request.uri.path();
        if request.method != Method::GET && request.method != Method::HEAD {
            return Err(AwsError::new(
                405,
                "MethodNotAllowed",
                format!("{} {path} is not served", request.method),
            ));
        }
        if path == EVENTS_PATH {
            return feed::open(self.reach.clone(), self.clients.clone(), request);
        }
        if path == "/_nimbus/ui" {
            let mut response = ApiResponse::new(Body::default());
            *response.status_mut() = StatusCode::PERMANENT_REDIRECT;
            response.headers_mut().insert(LOCATION, HeaderValue::from_static(UI_PATH));
            return Ok(response);
        }
        let name = path.strip_prefix(UI_PATH).unwrap_or_default();
        let name = if name.is_empty() { "index.html" } else { name };
        let Some((content_type, bytes)) = assets::find(name) else {
            return Err(AwsError::new(404, "NotFound", format!("the console has no {name}")));
        };
        let mut response = ApiResponse::new(Body::new(Bytes::from_static(bytes)));
        response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        Ok(response)
    }
}

/// Whether the `Host` a browser sent names this machine by address or as `localhost`: a page on
/// another site cannot make a browser read the console through a name of its own that resolves
/// here (DNS rebinding).
fn local_host(host: Option<&str>) -> bool {
    let Some(host) = host else { return true };
    let name = match host.strip_prefix('[') {
        Some(rest) => {
            return rest.split(']').next().is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok())
        }
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::Ipv4Addr>().is_ok()
}

/// Headers every console response carries.
fn harden(response: &mut ApiResponse) {
    let headers = response.headers_mut();
    for (name, value) in [
        ("content-security-policy", CSP),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("cross-origin-resource-policy", "same-origin"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if !headers.contains_key("cache-control") {
        headers.insert("cache-control", HeaderValue::from_static("no-cache"));
    }
}

impl Service for Console {
    fn name(&self) -> &'static str {
        "console"
    }

    fn claims(&self, _method: &Method, uri: &Uri, _headers: &HeaderMap) -> bool {
        let path = uri.path();
        path == EVENTS_PATH || path == "/_nimbus/ui" || path.starts_with(UI_PATH)
    }

    fn call(&self, request: ApiRequest) -> ServiceFuture<'_> {
        Box::pin(async move {
            let mut response = match self.answer(&request) {
                Ok(response) => response,
                Err(error) => error.into_response(Protocol::RestJson),
            };
            harden(&mut response);
            response
        })
    }
}

#[cfg(test)]
mod tests;
