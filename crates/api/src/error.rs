//! One typed AWS error, rendered in the shape each wire protocol expects so that botocore raises
//! the same exception class AWS would.

use bytes::Bytes;
use hyper::StatusCode;

use crate::request::{ApiResponse, Body};

/// The wire protocols of botocore's models. Only the shape of errors differs per protocol here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Lambda and friends: `x-amzn-ErrorType` header plus `{"Type","message"}` body.
    RestJson,
    /// `X-Amz-Target` services (JSON 1.0/1.1): `{"__type","message"}` body.
    Json,
}

#[derive(Debug, Clone)]
pub struct AwsError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Extra members of the error shape, e.g. `Reason` of `TooManyRequestsException`.
    pub fields: Vec<(&'static str, String)>,
    /// `true` for errors AWS blames on the caller (`"Type":"User"`), `false` for `Service`.
    pub sender_fault: bool,
}

impl AwsError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> AwsError {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        AwsError {
            sender_fault: status.is_client_error(),
            status,
            code,
            message: message.into(),
            fields: Vec::new(),
        }
    }

    /// The same error under another code (for errors AWS names per resource).
    pub fn with_code(mut self, code: &'static str) -> AwsError {
        self.code = code;
        self
    }

    pub fn with_field(mut self, name: &'static str, value: impl Into<String>) -> AwsError {
        self.fields.push((name, value.into()));
        self
    }

    pub fn not_found(message: impl Into<String>) -> AwsError {
        AwsError::new(404, "ResourceNotFoundException", message)
    }
    pub fn conflict(message: impl Into<String>) -> AwsError {
        AwsError::new(409, "ResourceConflictException", message)
    }
    pub fn invalid_parameter(message: impl Into<String>) -> AwsError {
        AwsError::new(400, "InvalidParameterValueException", message)
    }
    pub fn validation(message: impl Into<String>) -> AwsError {
        AwsError::new(400, "ValidationException", message)
    }
    pub fn too_large(message: impl Into<String>) -> AwsError {
        AwsError::new(413, "RequestEntityTooLargeException", message)
    }
    pub fn too_many_requests(reason: &str) -> AwsError {
        AwsError::new(429, "TooManyRequestsException", "Rate Exceeded.").with_field("Reason", reason)
    }
    pub fn service(message: impl Into<String>) -> AwsError {
        AwsError::new(500, "ServiceException", message)
    }

    /// Renders the error; `request_id` is set by the server on every response.
    pub fn into_response(self, protocol: Protocol) -> ApiResponse {
        let mut body = serde_json::Map::new();
        match protocol {
            Protocol::RestJson => {
                let kind = if self.sender_fault { "User" } else { "Service" };
                body.insert("Type".into(), kind.into());
                body.insert("message".into(), self.message.into());
            }
            Protocol::Json => {
                body.insert("__type".into(), self.code.into());
                body.insert("message".into(), self.message.into());
            }
        }
        for (name, value) in self.fields {
            body.insert(name.into(), value.into());
        }
        let bytes = Bytes::from(serde_json::Value::Object(body).to_string());
        let mut response = ApiResponse::new(Body::new(bytes));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert("x-amzn-errortype", hyper::header::HeaderValue::from_static(self.code));
        headers
            .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
        response
    }
}

impl std::fmt::Display for AwsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for AwsError {}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_json(response: ApiResponse) -> serde_json::Value {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn rest_json_error_carries_type_header_and_user_fault() {
        let response = AwsError::not_found("Function not found: x").into_response(Protocol::RestJson);
        assert_eq!(response.status(), 404);
        assert_eq!(response.headers()["x-amzn-errortype"], "ResourceNotFoundException");
        let body = body_json(response).await;
        assert_eq!(body["Type"], "User");
        assert_eq!(body["message"], "Function not found: x");
    }

    #[tokio::test]
    async fn throttle_carries_reason_and_service_errors_blame_the_service() {
        let throttle = AwsError::too_many_requests("ConcurrentInvocationLimitExceeded");
        let body = body_json(throttle.into_response(Protocol::RestJson)).await;
        assert_eq!(body["Reason"], "ConcurrentInvocationLimitExceeded");
        let body = body_json(AwsError::service("boom").into_response(Protocol::Json)).await;
        assert_eq!(body["__type"], "ServiceException");
    }
}
