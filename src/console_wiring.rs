//! The console's reach into the port: its live feed asks nimbus's own paths and the services'
//! APIs through the same handlers a client's request reaches.

use std::sync::{Arc, OnceLock};

use hyper::header::HeaderValue;
use nimbus_api::{json_response, ApiRequest, AwsError, Health, Protocol, Service, ServiceFuture};

#[derive(Default)]
pub struct ConsoleReach {
    /// Every service on the port, set once the list is built.
    pub services: OnceLock<Vec<Arc<dyn Service>>>,
    pub health: OnceLock<Health>,
}

impl nimbus_console::Reach for ConsoleReach {
    fn send(&self, service: Option<&'static str>, mut request: ApiRequest) -> ServiceFuture<'_> {
        Box::pin(async move {
            if request.uri.path() == "/_nimbus/health" {
                if let Some(health) = self.health.get() {
                    return json_response(health());
                }
            }
            let services = self.services.get().map(Vec::as_slice).unwrap_or_default();
            let found = match service {
                Some(name) => {
                    let scope =
                        format!("AWS4-HMAC-SHA256 Credential=console/20240101/us-east-1/{name}/aws4_request");
                    if let Ok(value) = HeaderValue::from_str(&scope) {
                        request.headers.insert("authorization", value);
                    }
                    services.iter().find(|s| s.name() == name)
                }
                None => services.iter().find(|s| {
                    s.name() != "console" && s.claims(&request.method, &request.uri, &request.headers)
                }),
            };
            match found {
                Some(service) => service.call(request).await,
                None => AwsError::new(404, "NotFound", format!("nothing serves {}", request.uri.path()))
                    .into_response(Protocol::RestJson),
            }
        })
    }
}
