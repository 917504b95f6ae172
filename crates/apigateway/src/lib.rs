//! Amazon API Gateway: REST APIs (`apigateway`, v1) and HTTP APIs (`apigatewayv2`) — their
//! control planes over one store of documents — and the data plane that serves them, and
//! Lambda function URLs, on nimbus's own port:
//!
//! - `http://{api-id}.execute-api.localhost:{port}/{stage}/{path}` (any host
//!   `{api-id}.execute-api.…`), or without DNS `/_aws/execute-api/{api-id}/{stage}/{path}` (and
//!   LocalStack's `/restapis/{api-id}/{stage}/_user_request_/{path}`);
//! - `http://{url-id}.lambda-url.{region}.localhost:{port}/{path}`, or
//!   `/_aws/lambda-url/{url-id}/{path}`.
//!
//! Requests become the Lambda proxy events AWS builds (payload 1.0 and 2.0), the function is
//! invoked synchronously through [`Functions`], and its answer is mapped back as AWS maps it.

mod data;
mod openapi;
mod operations;
mod patch;
pub mod provider;
mod provider_v2;
mod store;
mod v1;
mod v1_keys;
mod v1_stages;
mod v2;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use hyper::{HeaderMap, Method, StatusCode, Uri};
use nimbus_api::{
    json_response, ApiRequest, ApiResponse, AwsError, Body, Identity, Protocol, Service, ServiceFuture,
};
use nimbus_store::Database;
use serde_json::Value;

pub use data::{is_data_plane, AccessLogs, Front};
pub use store::SCHEMA;

const PROTOCOL: Protocol = Protocol::RestJson;

/// What a synchronous invocation answered.
pub struct Invoked {
    pub payload: Bytes,
    /// The payload is an error document (`X-Amz-Function-Error`).
    pub function_error: bool,
}

pub enum InvokeError {
    /// The function or nimbus is at its concurrency limit.
    Throttled,
    /// No such function, or it could not run.
    Failed(String),
}

/// A function URL's configuration, as Lambda stores it.
#[derive(Debug, Clone)]
pub struct FunctionUrl {
    /// `name` or `name:qualifier`.
    pub function: String,
    pub auth_type: String,
    pub cors: Option<Value>,
}

pub type InvokeFuture<'a> = Pin<Box<dyn Future<Output = Result<Invoked, InvokeError>> + Send + 'a>>;

/// Lambda, as the data plane needs it (implemented in nimbus's wiring).
pub trait Functions: Send + Sync + 'static {
    /// Invokes `function` (a name or ARN, with or without qualifier) synchronously.
    fn invoke<'a>(&'a self, function: &'a str, payload: Bytes, request_id: &'a str) -> InvokeFuture<'a>;
    /// The function URL whose id is `url_id`, if any.
    fn url(&self, url_id: &str) -> Option<FunctionUrl>;
}

/// Whether an API id is taken by another region's or account's API Gateway (API ids are unique
/// across them: the front door finds an API by its id alone).
pub type TakenElsewhere = Arc<dyn Fn(&str) -> bool + Send + Sync>;

pub struct ApiGateway {
    docs: store::Docs,
    identity: Identity,
    functions: Arc<dyn Functions>,
    front: data::Cache,
    access_logs: std::sync::OnceLock<Arc<dyn AccessLogs>>,
    taken_elsewhere: std::sync::OnceLock<TakenElsewhere>,
    edits: std::sync::Mutex<()>,
}

/// Whether API Gateway ever stored anything (to open it at start).
pub fn has_state(database: &Database) -> bool {
    database.has_schema(&SCHEMA)
}

impl ApiGateway {
    pub fn open(
        database: &Database,
        identity: Identity,
        functions: Arc<dyn Functions>,
    ) -> Result<Arc<ApiGateway>, String> {
        let docs = store::Docs::open(database).map_err(|e| e.to_string())?;
        let access_logs = std::sync::OnceLock::new();
        let edits = std::sync::Mutex::new(());
        Ok(Arc::new(ApiGateway {
            docs,
            identity,
            functions,
            front: data::Cache::default(),
            access_logs,
            taken_elsewhere: std::sync::OnceLock::new(),
            edits,
        }))
    }

    /// The region and account this instance serves.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Where new API ids are checked against the other regions' and accounts' APIs.
    pub fn set_taken_elsewhere(&self, taken: TakenElsewhere) {
        let _ = self.taken_elsewhere.set(taken);
    }

    /// Whether a REST or HTTP API of this id is here (from memory; with several nodes, after
    /// the once-a-second check for other nodes' changes).
    pub fn holds_api(&self, id: &str) -> bool {
        self.docs.refresh();
        self.docs.contains("", "restapi", id) || self.docs.contains("", "httpapi", id)
    }

    /// A new API id (ten letters and digits, as AWS's) that no region or account uses.
    pub(crate) fn new_api_id(&self) -> String {
        loop {
            let id = store::new_id(10);
            let elsewhere = self.taken_elsewhere.get().is_some_and(|taken| taken(&id));
            if !elsewhere && !self.holds_api(&id) {
                return id;
            }
        }
    }

    /// Where stages' access logs go (CloudWatch Logs).
    pub fn set_access_logs(&self, logs: Arc<dyn AccessLogs>) {
        let _ = self.access_logs.set(logs);
    }

    /// Every deployed stage of every API with its local URL on `port` (what `nimbus apis`
    /// prints): REST stages as `…/{stage}/`, HTTP API `$default` stages without a segment.
    pub fn inventory(&self, port: u16) -> Vec<Value> {
        self.docs.refresh();
        let mut rows = Vec::new();
        for (kind, label, id_field) in [("restapi", "REST API", "id"), ("httpapi", "HTTP API", "apiId")] {
            for api in self.docs.list("", kind) {
                let id = api[id_field].as_str().unwrap_or_default();
                for stage in self.docs.list(id, "stage") {
                    let name = stage["stageName"].as_str().unwrap_or_default();
                    let path = if name == "$default" { String::new() } else { format!("{name}/") };
                    rows.push(serde_json::json!({
                        "kind": label,
                        "name": api["name"],
                        "id": id,
                        "stage": name,
                        "region": self.identity.region,
                        "url": format!("http://{id}.execute-api.localhost:{port}/{path}"),
                    }));
                }
            }
        }
        rows
    }

    async fn route(&self, request: ApiRequest) -> Result<ApiResponse, AwsError> {
        self.docs.refresh();
        // Changes read a document, edit it and write it back: one at a time on this node, so
        // that two calls editing one resource's methods do not lose either (reads go on).
        let _editing = match request.method {
            Method::GET | Method::HEAD => None,
            _ => Some(self.edits.lock().unwrap_or_else(|p| p.into_inner())),
        };
        let path = request.uri.path().to_owned();
        if path.starts_with("/v2/") {
            return self.route_v2(&request, &path);
        }
        self.route_v1(&request, &path)
    }
}

impl Service for ApiGateway {
    fn name(&self) -> &'static str {
        "apigateway"
    }

    fn claims(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> bool {
        is_data_plane(method, uri, headers)
    }

    fn call(&self, request: ApiRequest) -> ServiceFuture<'_> {
        Box::pin(async move {
            if let Some(front) = Front::of(&request.uri, &request.headers) {
                self.docs.refresh();
                return self.serve(front, request).await;
            }
            match self.route(request).await {
                Ok(response) => response,
                Err(error) => error.into_response(PROTOCOL),
            }
        })
    }
}

// ---- shared helpers for both control planes ----

pub(crate) fn ok(value: Value) -> Result<ApiResponse, AwsError> {
    Ok(json_response(value))
}

pub(crate) fn with_status(value: Value, status: u16) -> Result<ApiResponse, AwsError> {
    let mut response = json_response(value);
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or_default();
    Ok(response)
}

pub(crate) fn empty(status: u16) -> Result<ApiResponse, AwsError> {
    let mut response = ApiResponse::new(Body::new(Bytes::new()));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or_default();
    Ok(response)
}

pub(crate) fn not_found(message: impl Into<String>) -> AwsError {
    AwsError::new(404, "NotFoundException", message)
}

pub(crate) fn bad_request(message: impl Into<String>) -> AwsError {
    AwsError::new(400, "BadRequestException", message)
}

pub(crate) fn conflict(message: impl Into<String>) -> AwsError {
    AwsError::new(409, "ConflictException", message)
}

pub(crate) fn parse_body(body: &[u8]) -> Result<Value, AwsError> {
    if body.is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(value @ Value::Object(_)) => Ok(value),
        _ => Err(bad_request("Invalid request body: a JSON object is expected")),
    }
}

/// A request nimbus does not serve: the operation named when botocore's model knows it.
pub(crate) fn unknown(method: &Method, path: &str) -> AwsError {
    let message = match operations::operation_for(method.as_str(), path) {
        Some(operation) => format!("nimbus does not implement {operation} yet ({method} {path})"),
        None => format!("Unknown operation {method} {path}"),
    };
    AwsError::new(400, "UnknownOperationException", message)
}

/// The segments of a path, percent-decoded.
pub(crate) fn segments(path: &str) -> Vec<String> {
    path.split('/').filter(|s| !s.is_empty()).map(nimbus_api::percent_decode).collect()
}

pub(crate) fn epoch_seconds() -> i64 {
    store::now_ms() / 1000
}

pub(crate) fn iso_now() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// Copies `names` from `input` into `into` where given.
pub(crate) fn copy_fields(into: &mut Value, input: &Value, names: &[&str]) {
    for name in names {
        if let Some(value) = input.get(*name).filter(|v| !v.is_null()) {
            into[*name] = value.clone();
        }
    }
}

#[cfg(test)]
mod tests;
