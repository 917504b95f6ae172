//! The data plane: requests to APIs' stages and to function URLs, matched to a route held in
//! memory (compiled per stage, rebuilt when the store changes), turned into the Lambda proxy
//! event, and the function's answer mapped back as AWS maps it.

mod access;
mod auth;
mod event;
mod jwks;
mod reply;
mod routes;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hyper::{HeaderMap, Method, Uri};
use nimbus_api::{ApiRequest, ApiResponse, FrontDoor};
use serde_json::Value;

pub use access::AccessLogs;
pub use nimbus_api::FrontDoor as Front;

use crate::{ApiGateway, InvokeError};
use event::Incoming;
use reply::{message, Payload};
use routes::{Compiled, Flavor};

/// A gateway answer that ends a request early (a refusal, a failed integration).
pub(crate) type Refusal = Box<ApiResponse>;

/// API Gateway's payload quota (REST and HTTP APIs alike); function URLs stop at Lambda's 6 MB.
const MAX_PAYLOAD: usize = 10 * 1024 * 1024;

/// What a request's access log line needs from the route that served it.
#[derive(Default)]
struct Trace {
    route: String,
    integration_ms: Option<u64>,
}

/// Which front door a request came through: their failures are worded apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Door {
    Rest,
    Http,
    Url,
}

/// Whether a request is for an API or a function URL.
pub fn is_data_plane(_method: &Method, uri: &Uri, headers: &HeaderMap) -> bool {
    FrontDoor::of(uri, headers).is_some()
}

/// Compiled stages, each tagged with the store epoch it was built from; authorizer results.
#[derive(Default)]
pub struct Cache {
    stages: RwLock<HashMap<(String, String), Arc<Compiled>>>,
    pub(crate) authorized: auth::ResultCache,
    pub(crate) jwks: jwks::Jwks,
}

impl ApiGateway {
    pub(crate) async fn serve(&self, front: FrontDoor, request: ApiRequest) -> ApiResponse {
        if request.body.len() > MAX_PAYLOAD {
            return message(413, "Request Entity Too Large");
        }
        match front {
            FrontDoor::Url { id, path, domain } => self.serve_url(&id, &path, &domain, request).await,
            FrontDoor::Api { id, path, domain } => self.serve_api(&id, &path, &domain, request).await,
        }
    }

    /// The compiled stage `stage` of `api` (or `$default` for HTTP APIs when the path names no
    /// stage), with the path under the stage.
    fn compiled(&self, api: &str, path: &str) -> Option<(Arc<Compiled>, String)> {
        let epoch = self.docs.epoch.load(std::sync::atomic::Ordering::Acquire);
        let first = path.trim_start_matches('/').split('/').next().unwrap_or_default();
        let under = |stage: &str| -> String {
            let rest = &path.trim_start_matches('/')[stage.len()..];
            if rest.is_empty() {
                "/".to_owned()
            } else {
                rest.to_owned()
            }
        };
        for (stage, rest) in [(first.to_owned(), under(first)), ("$default".to_owned(), path.to_owned())] {
            if stage.is_empty() {
                continue;
            }
            let key = (api.to_owned(), stage.clone());
            let cached = self.front.stages.read().unwrap_or_else(|p| p.into_inner()).get(&key).cloned();
            let compiled = match cached.filter(|c| c.epoch == epoch) {
                Some(compiled) => Some(compiled),
                None => {
                    let built = routes::compile(&self.docs, api, &stage, epoch).map(Arc::new);
                    let mut stages = self.front.stages.write().unwrap_or_else(|p| p.into_inner());
                    stages.retain(|_, c| c.epoch == epoch);
                    if let Some(built) = &built {
                        stages.insert(key, built.clone());
                    }
                    built
                }
            };
            if let Some(compiled) = compiled {
                return Some((compiled, rest));
            }
        }
        None
    }

    async fn serve_api(&self, api: &str, path: &str, domain: &str, request: ApiRequest) -> ApiResponse {
        let Some((stage, rest)) = self.compiled(api, path) else {
            return if self.docs.get("", "httpapi", api).is_some() {
                message(404, "Not Found")
            } else {
                message(403, "Missing Authentication Token")
            };
        };
        let v2 = matches!(stage.flavor, Flavor::Http(_));
        let incoming = Incoming::new(&request, rest, domain, api, &stage.stage, &self.identity.account);
        if let Some(preflight) = reply::preflight(stage.cors.as_ref(), &request, false) {
            return preflight;
        }
        let started = std::time::Instant::now();
        let mut trace = Trace::default();
        let mut response = match &stage.flavor {
            Flavor::Rest(_) => self.serve_rest(&stage, &incoming, &mut trace).await,
            Flavor::Http(_) => self.serve_http(&stage, &incoming, &mut trace).await,
        };
        reply::add_cors(stage.cors.as_ref(), &request, &mut response, false);
        // HTTP APIs name the request `apigw-requestid`, REST APIs `x-amz-apigw-id`.
        let (name, id) = if v2 {
            ("apigw-requestid", &request.request_id[..])
        } else {
            ("x-amz-apigw-id", request.request_id.get(..18).unwrap_or(&request.request_id))
        };
        if let Ok(value) = hyper::header::HeaderValue::from_str(id) {
            response.headers_mut().insert(name, value);
        }
        if let (Some((group, format)), Some(sink)) = (&stage.access_log, self.access_logs.get()) {
            let outcome = access::Outcome {
                status: response.status().as_u16(),
                length: hyper::body::Body::size_hint(response.body()).exact().unwrap_or(0) as usize,
                route: &trace.route,
                integration_ms: trace.integration_ms,
                total_ms: started.elapsed().as_millis() as u64,
            };
            let line = access::render(format, &incoming, &outcome);
            sink.write(group, &format!("{}_{}", stage.api, stage.stage), incoming.time_ms, line);
        }
        response
    }

    async fn serve_rest(&self, stage: &Compiled, incoming: &Incoming<'_>, trace: &mut Trace) -> ApiResponse {
        let Some(matched) = stage.match_rest(&incoming.method, &incoming.path) else {
            return message(403, "Missing Authentication Token");
        };
        let method = matched.method;
        trace.route = matched.template.to_owned();
        let mut identity_key = None;
        if method["apiKeyRequired"] == true {
            let key = incoming.header("x-api-key").unwrap_or_default();
            match self.key_allows(key, &stage.api, &stage.stage) {
                Some(id) => identity_key = Some((key.to_owned(), id)),
                None => return message(403, "Forbidden"),
            }
        }
        // IAM authorization: a SigV4-signed request is required (its signature is not checked).
        if method["authorizationType"] == "AWS_IAM" && !signed(incoming) {
            return message(403, "Missing Authentication Token");
        }
        let mut event = event::rest_event(incoming, stage, &matched, identity_key.as_ref());
        if method["authorizationType"] == "CUSTOM" {
            let authorizer =
                method["authorizerId"].as_str().and_then(|id| self.docs.get(&stage.api, "authorizer", id));
            match self.authorize_rest(stage, incoming, &matched, &event, authorizer).await {
                Ok(context) => event["requestContext"]["authorizer"] = context,
                Err(denied) => return *denied,
            }
        }
        let integration = &method["methodIntegration"];
        match integration["type"].as_str() {
            Some("AWS_PROXY") => {
                let timeout = integration["timeoutInMillis"].as_u64().unwrap_or(29_000);
                let Some(function) = function_of(integration["uri"].as_str(), &stage.variables) else {
                    return message(500, "Internal server error");
                };
                let called = std::time::Instant::now();
                let answer =
                    self.call_function(&function, &event, timeout, &incoming.request_id, Door::Rest).await;
                trace.integration_ms = Some(called.elapsed().as_millis() as u64);
                match answer {
                    Ok(payload) => {
                        let accept = incoming.header("accept");
                        reply::proxy_v1(
                            payload,
                            Some(reply::Binary { types: &stage.binary_media_types, accept }),
                        )
                    }
                    Err(response) => *response,
                }
            }
            Some("MOCK") => reply::mock(integration),
            Some(other) => message(
                500,
                &format!("nimbus does not serve {other} integrations: AWS_PROXY (Lambda) and MOCK only"),
            ),
            None => message(500, "Internal server error"),
        }
    }

    async fn serve_http(&self, stage: &Compiled, incoming: &Incoming<'_>, trace: &mut Trace) -> ApiResponse {
        let Some(matched) = stage.match_http(&incoming.method, &incoming.path) else {
            return message(404, "Not Found");
        };
        trace.route = matched.route_key.to_owned();
        let Some(integration) = matched.integration else {
            return message(404, "Not Found");
        };
        if matched.route["authorizationType"] == "AWS_IAM" && !signed(incoming) {
            return message(403, "Forbidden");
        }
        let version = integration["payloadFormatVersion"].as_str().unwrap_or("2.0");
        let mut event = if version == "1.0" {
            event::http_v1_event(incoming, stage, &matched)
        } else {
            event::v2_event(incoming, Some(stage), matched.route_key, &matched.path_parameters)
        };
        if let Some(authorizer) = matched.authorizer {
            match self.authorize_http(stage, incoming, &matched, authorizer).await {
                Ok(context) => event["requestContext"]["authorizer"] = context,
                Err(denied) => return *denied,
            }
        }
        match integration["integrationType"].as_str() {
            Some("AWS_PROXY") => {
                let timeout = integration["timeoutInMillis"].as_u64().unwrap_or(30_000);
                let Some(function) = function_of(integration["integrationUri"].as_str(), &stage.variables)
                else {
                    return message(500, "Internal Server Error");
                };
                let called = std::time::Instant::now();
                let answer =
                    self.call_function(&function, &event, timeout, &incoming.request_id, Door::Http).await;
                trace.integration_ms = Some(called.elapsed().as_millis() as u64);
                match answer {
                    Ok(payload) if version == "1.0" => reply::proxy_v1(payload, None),
                    Ok(payload) => reply::proxy_v2(payload),
                    Err(response) => *response,
                }
            }
            Some(other) => message(
                500,
                &format!("nimbus does not serve {other} integrations of HTTP APIs: AWS_PROXY (Lambda) only"),
            ),
            None => message(500, "Internal Server Error"),
        }
    }

    async fn serve_url(&self, id: &str, path: &str, domain: &str, request: ApiRequest) -> ApiResponse {
        let Some(url) = self.functions.url(id) else {
            return reply::capital_message(403, "Forbidden");
        };
        if let Some(preflight) = reply::preflight(url.cors.as_ref(), &request, true) {
            return preflight;
        }
        if url.auth_type == "AWS_IAM"
            && !request.header("authorization").is_some_and(|a| a.starts_with("AWS4-"))
        {
            return reply::capital_message(403, "Forbidden");
        }
        let incoming =
            Incoming::new(&request, path.to_owned(), domain, id, "$default", &self.identity.account);
        let event = event::url_event(&incoming, &self.identity.account, url.auth_type == "AWS_IAM");
        let mut response =
            match self.call_function(&url.function, &event, 900_000, &request.request_id, Door::Url).await {
                Ok(payload) => reply::proxy_v2(payload),
                Err(response) => *response,
            };
        reply::add_cors(url.cors.as_ref(), &request, &mut response, true);
        response
    }

    /// Invokes `function` with `event` within the integration timeout; an error answer is the
    /// response AWS gives.
    pub(crate) async fn call_function(
        &self,
        function: &str,
        event: &Value,
        timeout_ms: u64,
        request_id: &str,
        door: Door,
    ) -> Result<Payload, Refusal> {
        let payload = bytes::Bytes::from(event.to_string());
        let invoked = tokio::time::timeout(
            Duration::from_millis(timeout_ms),
            self.functions.invoke(function, payload, request_id),
        )
        .await;
        match invoked {
            // REST APIs answer 504 after the integration timeout, HTTP APIs 503.
            Err(_) if door == Door::Rest => Err(Box::new(message(504, "Endpoint request timed out"))),
            Err(_) => Err(Box::new(message(503, "Service Unavailable"))),
            Ok(Err(InvokeError::Throttled)) if door == Door::Url => {
                Err(Box::new(message(429, "Too Many Requests")))
            }
            // Lambda refused the invocation (no such function, throttled): API Gateway answers 500.
            Ok(Err(why)) => {
                if let InvokeError::Failed(why) = why {
                    eprintln!("nimbus: API Gateway could not invoke {function}: {why}");
                }
                Err(Box::new(message(500, "Internal server error")))
            }
            Ok(Ok(invoked)) if invoked.function_error => Err(Box::new(message(502, "Internal server error"))),
            Ok(Ok(invoked)) => Ok(Payload(invoked.payload)),
        }
    }
}

/// Whether a request carries a SigV4 `Authorization` header.
fn signed(incoming: &Incoming<'_>) -> bool {
    incoming.header("authorization").is_some_and(|a| a.starts_with("AWS4-"))
}

/// The function an integration URI names — `arn:aws:apigateway:{region}:lambda:path/2015-03-31/
/// functions/{arn}/invocations` or a bare function ARN — with `${stageVariables.x}` replaced.
pub(crate) fn function_of(uri: Option<&str>, variables: &Value) -> Option<String> {
    let mut uri = uri?.to_owned();
    while let Some(start) = uri.find("${stageVariables.") {
        let end = uri[start..].find('}')? + start;
        let name = &uri[start + "${stageVariables.".len()..end];
        let value = variables[name].as_str().unwrap_or_default().to_owned();
        uri.replace_range(start..=end, &value);
    }
    let function = match uri.split_once("/functions/") {
        Some((_, rest)) => rest.strip_suffix("/invocations").unwrap_or(rest).to_owned(),
        None => uri,
    };
    (!function.is_empty()).then_some(function)
}

pub(crate) fn null_if_empty(value: Value) -> Value {
    match &value {
        Value::Object(map) if map.is_empty() => Value::Null,
        _ => value,
    }
}

pub(crate) fn json_object(pairs: impl IntoIterator<Item = (String, Value)>) -> Value {
    Value::Object(pairs.into_iter().collect())
}
