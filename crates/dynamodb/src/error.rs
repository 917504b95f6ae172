//! DynamoDB's errors: AWS's `__type` names (botocore reads the part after `#`) and messages, plus
//! the JSON members some errors carry (`Item`, `CancellationReasons`).

use bytes::Bytes;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::StatusCode;
use nimbus_api::{ApiResponse, Body};
use nimbus_store::DbError;
use serde_json::{Map, Value};

#[derive(Debug, Clone)]
pub struct DdbError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    /// Extra members of the error body.
    pub extra: Map<String, Value>,
}

pub type Result<T, E = DdbError> = std::result::Result<T, E>;

impl DdbError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> DdbError {
        DdbError { status, code, message: message.into(), extra: Map::new() }
    }

    pub fn with(mut self, name: &str, value: Value) -> DdbError {
        self.extra.insert(name.to_owned(), value);
        self
    }

    pub fn into_response(self) -> ApiResponse {
        let namespace = match self.code {
            "ValidationException" | "SerializationException" => "com.amazon.coral.validate",
            "UnknownOperationException" => "com.amazon.coral.service",
            _ => "com.amazonaws.dynamodb.v20120810",
        };
        let mut body = Map::new();
        body.insert("__type".into(), format!("{namespace}#{}", self.code).into());
        body.insert("message".into(), self.message.into());
        body.extend(self.extra);
        let mut response = ApiResponse::new(Body::new(Bytes::from(Value::Object(body).to_string())));
        *response.status_mut() = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        let headers = response.headers_mut();
        headers.insert("x-amzn-errortype", HeaderValue::from_static(self.code));
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/x-amz-json-1.0"));
        response
    }
}

impl From<DbError> for DdbError {
    fn from(error: DbError) -> DdbError {
        match error {
            DbError::Unstorable(message) => validation(message),
            other => DdbError::new(500, "InternalServerError", other.to_string()),
        }
    }
}

pub fn validation(message: impl Into<String>) -> DdbError {
    DdbError::new(400, "ValidationException", message)
}

/// "One or more parameter values were invalid: …"
pub fn invalid(message: impl std::fmt::Display) -> DdbError {
    validation(format!("One or more parameter values were invalid: {message}"))
}

pub fn serialization(message: impl Into<String>) -> DdbError {
    DdbError::new(400, "SerializationException", message)
}

pub fn not_found() -> DdbError {
    DdbError::new(400, "ResourceNotFoundException", "Requested resource not found")
}

pub fn table_not_found(name: &str) -> DdbError {
    DdbError::new(
        400,
        "ResourceNotFoundException",
        format!("Requested resource not found: Table: {name} not found"),
    )
}

pub fn in_use(message: impl Into<String>) -> DdbError {
    DdbError::new(400, "ResourceInUseException", message)
}

pub fn condition_failed() -> DdbError {
    DdbError::new(400, "ConditionalCheckFailedException", "The conditional request failed")
}

pub fn missing(member: &str) -> DdbError {
    validation(format!(
        "1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"
    ))
}

pub fn constraint(value: impl std::fmt::Display, member: &str, constraint: &str) -> DdbError {
    validation(format!(
        "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: {constraint}"
    ))
}

pub fn key_mismatch() -> DdbError {
    validation("The provided key element does not match the schema")
}
