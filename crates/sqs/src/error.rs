//! SQS's errors as one typed shape, rendered for both protocols: JSON (`__type` is the modelled
//! shape name, and `x-amzn-query-error` carries the query-era code so botocore raises e.g.
//! `QueueDoesNotExist` with `Error.Code` `AWS.SimpleQueueService.NonExistentQueue`) and Query
//! (`<ErrorResponse>` XML with the query-era code).

use bytes::Bytes;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::StatusCode;
use nimbus_api::{ApiResponse, Body};

use crate::protocol::xml_escape;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{shape}: {message}")]
pub struct SqsError {
    pub status: u16,
    /// The error shape's name in the JSON model (`QueueDoesNotExist`).
    pub shape: &'static str,
    /// The code the Query protocol used (`AWS.SimpleQueueService.NonExistentQueue`).
    pub code: &'static str,
    pub message: String,
    pub sender_fault: bool,
}

pub type Result<T> = std::result::Result<T, SqsError>;

impl SqsError {
    pub fn new(status: u16, shape: &'static str, code: &'static str, message: impl Into<String>) -> SqsError {
        SqsError { status, shape, code, message: message.into(), sender_fault: status < 500 }
    }

    pub fn queue_missing() -> SqsError {
        let message = "The specified queue does not exist.";
        SqsError::new(400, "QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue", message)
    }
    pub fn queue_exists(message: impl Into<String>) -> SqsError {
        SqsError::new(400, "QueueNameExists", "QueueAlreadyExists", message)
    }
    pub fn invalid(message: impl Into<String>) -> SqsError {
        SqsError::new(400, "InvalidParameterValue", "InvalidParameterValue", message)
    }
    /// AWS's wording for one bad parameter value.
    pub fn bad_value(value: impl std::fmt::Display, parameter: &str, reason: &str) -> SqsError {
        SqsError::invalid(format!("Value {value} for parameter {parameter} is invalid. Reason: {reason}"))
    }
    pub fn missing(parameter: &str) -> SqsError {
        let message = format!("The request must contain the parameter {parameter}.");
        SqsError::new(400, "MissingParameter", "MissingParameter", message)
    }
    pub fn attribute_value(name: &str) -> SqsError {
        let message = format!("Invalid value for the parameter {name}.");
        SqsError::new(400, "InvalidAttributeValue", "InvalidAttributeValue", message)
    }
    pub fn attribute_name(name: &str) -> SqsError {
        SqsError::new(
            400,
            "InvalidAttributeName",
            "InvalidAttributeName",
            format!("Unknown Attribute {name}."),
        )
    }
    pub fn receipt_invalid(handle: &str) -> SqsError {
        let message = format!("The input receipt handle \"{handle}\" is not a valid receipt handle.");
        SqsError::new(400, "ReceiptHandleIsInvalid", "ReceiptHandleIsInvalid", message)
    }
    pub fn not_inflight() -> SqsError {
        let message = "The message referred to isn't in flight.";
        SqsError::new(400, "MessageNotInflight", "AWS.SimpleQueueService.MessageNotInflight", message)
    }
    pub fn contents() -> SqsError {
        let message = "Invalid characters found. Valid unicode characters are #x9 | #xA | #xD | #x20 to \
                       #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF";
        SqsError::new(400, "InvalidMessageContents", "InvalidMessageContents", message)
    }
    pub fn empty_batch(entry: &str) -> SqsError {
        let message = format!("There should be at least one {entry} in the request.");
        SqsError::new(400, "EmptyBatchRequest", "AWS.SimpleQueueService.EmptyBatchRequest", message)
    }
    pub fn too_many_entries(count: usize) -> SqsError {
        let message = format!("Maximum number of entries per request are 10. You have sent {count}.");
        let code = "AWS.SimpleQueueService.TooManyEntriesInBatchRequest";
        SqsError::new(400, "TooManyEntriesInBatchRequest", code, message)
    }
    pub fn ids_not_distinct(id: &str) -> SqsError {
        let code = "AWS.SimpleQueueService.BatchEntryIdsNotDistinct";
        SqsError::new(400, "BatchEntryIdsNotDistinct", code, format!("Id {id} repeated."))
    }
    pub fn bad_entry_id() -> SqsError {
        let message = "A batch entry id can only contain alphanumeric characters, hyphens and underscores. \
                       It can be at most 80 letters long.";
        SqsError::new(400, "InvalidBatchEntryId", "AWS.SimpleQueueService.InvalidBatchEntryId", message)
    }
    pub fn batch_too_long(max: usize, sent: usize) -> SqsError {
        let message =
            format!("Batch requests cannot be longer than {max} bytes. You have sent {sent} bytes.");
        SqsError::new(400, "BatchRequestTooLong", "AWS.SimpleQueueService.BatchRequestTooLong", message)
    }
    pub fn purge_in_progress(queue: &str) -> SqsError {
        let message = format!("Only one PurgeQueue operation on {queue} is allowed every 60 seconds.");
        SqsError::new(403, "PurgeQueueInProgress", "AWS.SimpleQueueService.PurgeQueueInProgress", message)
    }
    pub fn unsupported(message: impl Into<String>) -> SqsError {
        let code = "AWS.SimpleQueueService.UnsupportedOperation";
        SqsError::new(400, "UnsupportedOperation", code, message)
    }
    pub fn resource_not_found(message: impl Into<String>) -> SqsError {
        SqsError::new(404, "ResourceNotFoundException", "ResourceNotFoundException", message)
    }
    pub fn unknown_operation(operation: &str) -> SqsError {
        let message = format!("The action {operation} is not valid for this endpoint.");
        SqsError::new(400, "InvalidAction", "InvalidAction", message)
    }
    /// This node no longer serves SQS (it closed, handing over to another); SDKs retry a 503.
    pub fn unavailable() -> SqsError {
        SqsError::new(503, "ServiceUnavailable", "ServiceUnavailable", "SQS is not served here right now.")
    }
    pub fn internal(message: impl Into<String>) -> SqsError {
        SqsError::new(500, "InternalError", "InternalError", message)
    }

    fn fault(&self) -> &'static str {
        if self.sender_fault {
            "Sender"
        } else {
            "Receiver"
        }
    }

    /// The JSON-protocol response, with the header that makes botocore map the query-era code.
    pub fn to_json_response(&self) -> ApiResponse {
        // AWS's JSON errors name the shape with its Smithy namespace.
        let kind = format!("com.amazonaws.sqs#{}", self.shape);
        let body = serde_json::json!({ "__type": kind, "message": self.message });
        let mut response = self.response(Bytes::from(body.to_string()), "application/x-amz-json-1.0");
        let headers = response.headers_mut();
        headers.insert("x-amzn-errortype", HeaderValue::from_static(self.shape));
        if let Ok(value) = HeaderValue::from_str(&format!("{};{}", self.code, self.fault())) {
            headers.insert("x-amzn-query-error", value);
        }
        response
    }

    /// The Query-protocol response.
    pub fn to_xml_response(&self, request_id: &str) -> ApiResponse {
        let body = format!(
            "<?xml version=\"1.0\"?><ErrorResponse xmlns=\"{ns}\"><Error><Type>{}</Type><Code>{}</Code>\
             <Message>{}</Message><Detail/></Error><RequestId>{}</RequestId></ErrorResponse>",
            self.fault(),
            self.code,
            xml_escape(&self.message),
            xml_escape(request_id),
            ns = crate::protocol::XML_NAMESPACE,
        );
        self.response(Bytes::from(body), "text/xml")
    }

    fn response(&self, body: Bytes, content_type: &'static str) -> ApiResponse {
        let mut response = ApiResponse::new(Body::new(body));
        *response.status_mut() = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        response
    }
}
