//! One typed AWS error, rendered in the shape each wire protocol expects so that botocore raises
//! the same exception class AWS would.

use bytes::Bytes;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::StatusCode;

use crate::request::{ApiResponse, Body};

/// The wire protocols of botocore's models. Only the shape of errors differs per protocol here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// Lambda and friends: `x-amzn-ErrorType` header plus `{"Type","message"}` body.
    RestJson,
    /// `X-Amz-Target` services (JSON 1.0/1.1): `{"__type","message"}` body.
    Json,
    /// Form-encoded `Action=…` services (SNS, STS, CloudFormation …): `<ErrorResponse>` XML.
    Query,
    /// EC2's own Query dialect: `<Response><Errors><Error>` XML.
    Ec2,
    /// S3: `<Error>` XML.
    RestXml,
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
        let (status, code) = (self.status, self.code);
        let (body, content_type) = match protocol {
            Protocol::RestJson | Protocol::Json => (self.json_body(protocol), "application/json"),
            Protocol::Query | Protocol::Ec2 | Protocol::RestXml => (self.xml_body(protocol), "text/xml"),
        };
        let mut response = ApiResponse::new(Body::new(Bytes::from(body)));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert("x-amzn-errortype", HeaderValue::from_static(code));
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        response
    }

    fn json_body(self, protocol: Protocol) -> String {
        let mut body = serde_json::Map::new();
        if protocol == Protocol::RestJson {
            let kind = if self.sender_fault { "User" } else { "Service" };
            body.insert("Type".into(), kind.into());
        } else {
            body.insert("__type".into(), self.code.into());
        }
        body.insert("message".into(), self.message.into());
        for (name, value) in self.fields {
            body.insert(name.into(), value.into());
        }
        serde_json::Value::Object(body).to_string()
    }

    /// The XML error documents botocore's query, ec2 and rest-xml parsers read; the request id
    /// travels in the `x-amzn-RequestId` header.
    fn xml_body(self, protocol: Protocol) -> String {
        let (code, message) = (self.code, crate::xml::escape(&self.message));
        let fields: String = self
            .fields
            .iter()
            .map(|(name, value)| format!("<{name}>{}</{name}>", crate::xml::escape(value)))
            .collect();
        match protocol {
            Protocol::Ec2 => format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code>\
                 <Message>{message}</Message>{fields}</Error></Errors></Response>"
            ),
            Protocol::RestXml => format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
                 <Message>{message}</Message>{fields}</Error>"
            ),
            _ => {
                let kind = if self.sender_fault { "Sender" } else { "Receiver" };
                format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ErrorResponse><Error><Type>{kind}</Type>\
                     <Code>{code}</Code><Message>{message}</Message>{fields}</Error></ErrorResponse>"
                )
            }
        }
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

    async fn body_text(response: ApiResponse) -> String {
        String::from_utf8(response.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
    }

    #[tokio::test]
    async fn xml_protocols_get_their_own_documents() {
        let error = AwsError::new(400, "UnknownServiceException", "no <such> API");
        let query = error.clone().into_response(Protocol::Query);
        assert_eq!(query.status(), 400);
        assert_eq!(query.headers()["content-type"], "text/xml");
        let query = body_text(query).await;
        assert!(
            query.contains("<ErrorResponse><Error><Type>Sender</Type><Code>UnknownServiceException</Code>")
        );
        assert!(query.contains("<Message>no &lt;such&gt; API</Message>"), "{query}");
        let ec2 = body_text(error.clone().into_response(Protocol::Ec2)).await;
        assert!(ec2.contains("<Response><Errors><Error><Code>UnknownServiceException</Code>"), "{ec2}");
        let s3 = body_text(AwsError::new(500, "InternalError", "x").into_response(Protocol::RestXml)).await;
        assert!(s3.contains("\n<Error><Code>InternalError</Code><Message>x</Message></Error>"), "{s3}");
    }
}
