//! Invoke: `RequestResponse`, `Event` (queued, answered 202) and `DryRun` (204).

use base64::Engine as _;
use bytes::Bytes;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use nimbus_api::{ApiRequest, ApiResponse, AwsError, Body, Protocol};
use nimbus_functions::{EngineError, Invocation};

use crate::Lambda;

pub(crate) const MAX_SYNC_PAYLOAD: usize = 6 * 1024 * 1024;
const MAX_ASYNC_PAYLOAD: usize = 1024 * 1024;
/// AWS's `X-Amz-Log-Result` carries the last 4 KB of the invocation's log.
const LOG_TAIL_BYTES: usize = 4096;

impl Lambda {
    pub(crate) async fn invoke(&self, request: &ApiRequest, name: &str) -> Result<ApiResponse, AwsError> {
        let qualifier = request.query("Qualifier");
        let target = self.route_invocation(name, qualifier.as_deref())?;
        let entry = &target.entry;
        let kind = request.header("x-amz-invocation-type").unwrap_or("RequestResponse");
        let limit = match kind {
            "RequestResponse" | "DryRun" => MAX_SYNC_PAYLOAD,
            "Event" => MAX_ASYNC_PAYLOAD,
            other => {
                return Err(AwsError::invalid_parameter(format!(
                    "1 validation error detected: Value '{other}' at 'invocationType' failed to satisfy constraint: Member must satisfy enum value set: [Event, RequestResponse, DryRun]"
                )))
            }
        };
        if request.body.len() > limit {
            return Err(AwsError::too_large(format!(
                "{} byte payload is too large for the {kind} invocation type (limit {limit} bytes)",
                request.body.len()
            )));
        }
        let payload = if request.body.is_empty() { Bytes::from_static(b"{}") } else { request.body.clone() };
        if let Err(error) = serde_json::from_slice::<serde::de::IgnoredAny>(&payload) {
            return Err(AwsError::new(
                400,
                "InvalidRequestContentException",
                format!("Could not parse request body into json: {error}"),
            ));
        }
        let client_context = request.header("x-amz-client-context").map(|encoded| {
            base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map(|raw| String::from_utf8_lossy(&raw).into_owned())
                .unwrap_or_else(|_| encoded.to_owned())
        });
        let config = &entry.stored.configuration;
        let invocation = Invocation {
            request_id: request.request_id.clone(),
            payload,
            invoked_arn: match &target.qualifier {
                Some(q) => format!("{}:{q}", self.function_arn(target.function.name())),
                None => self.function_arn(target.function.name()),
            },
            client_context,
            tail_log: request.header("x-amz-log-type") == Some("Tail"),
        };
        match kind {
            "DryRun" => Ok(status_only(204)),
            "Event" => {
                let reference = match &target.qualifier {
                    Some(q) => format!("{}:{q}", config.function_name),
                    None => config.function_name.clone(),
                };
                self.events.enqueue(&reference, invocation.payload, &invocation.request_id).await?;
                Ok(status_only(202))
            }
            _ => {
                let result = self.engine.invoke(&entry.spec, &invocation).await.map_err(engine_error)?;
                let mut response = ApiResponse::new(Body::new(result.payload));
                let headers = response.headers_mut();
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                headers.insert("x-amz-executed-version", header(&config.version));
                if let Some(kind) = result.function_error {
                    headers.insert("x-amz-function-error", HeaderValue::from_static(kind));
                }
                if let Some(log) = result.log {
                    let tail = &log.as_bytes()[log.len().saturating_sub(LOG_TAIL_BYTES)..];
                    let encoded = base64::engine::general_purpose::STANDARD.encode(tail);
                    headers.insert("x-amz-log-result", header(&encoded));
                }
                Ok(response)
            }
        }
    }
}

fn header(value: &str) -> HeaderValue {
    HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn status_only(status: u16) -> ApiResponse {
    let mut response = ApiResponse::new(Body::new(Bytes::new()));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or_default();
    response
}

pub(crate) fn engine_error(error: EngineError) -> AwsError {
    match error {
        EngineError::Throttled { reason } => AwsError::too_many_requests(reason),
        EngineError::ShuttingDown => AwsError::new(503, "ServiceException", "nimbus is shutting down"),
        EngineError::Internal(why) => AwsError::service(why),
    }
}

/// Protocol used by every Lambda error response.
pub(crate) const PROTOCOL: Protocol = Protocol::RestJson;
