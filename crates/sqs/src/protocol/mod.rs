//! The two wire protocols: JSON 1.0 (`X-Amz-Target: AmazonSQS.<Operation>`) and Query
//! (`Action=<Operation>&Version=2012-11-05`, XML). Both become one JSON-shaped input for the
//! operations, whose JSON-shaped output is rendered back in the caller's protocol.

pub mod input;
pub mod query;

use bytes::Bytes;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use nimbus_api::{ApiRequest, ApiResponse, Body};
use serde_json::Value;

use crate::error::{Result, SqsError};
use crate::{ops, Sqs};

pub const TARGET_PREFIX: &str = "AmazonSQS.";
pub const XML_NAMESPACE: &str = "http://queue.amazonaws.com/doc/2012-11-05/";

/// What operations need to know about the request beyond its input.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// `host:port` the caller addressed (`[::1]:4566` too); queue URLs are built from it, so a
    /// client reaches a queue where it reached nimbus. A queue of another region has the same
    /// URL shape: its region is the one the request is signed for (see `regional` in nimbus).
    pub host: String,
    /// `SenderId`: the caller's access key id, or the account.
    pub sender: String,
}

impl Ctx {
    fn of(request: &ApiRequest, account: &str) -> Ctx {
        let host = request.header("host").unwrap_or("localhost:4566").to_owned();
        let sender = nimbus_api::scope::scope_of(&request.headers, &request.uri)
            .map(|scope| scope.access_key)
            .filter(|key| !key.is_empty())
            .unwrap_or_else(|| account.to_owned());
        Ctx { host, sender }
    }

    pub fn queue_url(&self, account: &str, name: &str) -> String {
        format!("http://{}/{account}/{name}", self.host)
    }
}

pub async fn handle(sqs: &Sqs, request: ApiRequest) -> ApiResponse {
    let ctx = Ctx::of(&request, &sqs.account);
    if let Some(target) = request.header("x-amz-target") {
        let operation = target.strip_prefix(TARGET_PREFIX).unwrap_or(target).to_owned();
        let result = match serde_json::from_slice::<Value>(&request.body) {
            Ok(input @ Value::Object(_)) => dispatch(sqs, &operation, input, &ctx).await,
            Ok(_) | Err(_) if request.body.is_empty() => dispatch(sqs, &operation, Value::Null, &ctx).await,
            _ => {
                Err(SqsError::new(400, "SerializationException", "SerializationException", "Malformed JSON"))
            }
        };
        return match result {
            Ok(output) => {
                let mut response = ApiResponse::new(Body::new(Bytes::from(output.to_string())));
                let json = HeaderValue::from_static("application/x-amz-json-1.0");
                response.headers_mut().insert(CONTENT_TYPE, json);
                response
            }
            Err(error) => error.to_json_response(),
        };
    }
    let (operation, input) = match query::parse(&request) {
        Ok(parsed) => parsed,
        Err(error) => return error.to_xml_response(&request.request_id),
    };
    match dispatch(sqs, &operation, input, &ctx).await {
        Ok(output) => query::render(&operation, &output, &request.request_id),
        Err(error) => error.to_xml_response(&request.request_id),
    }
}

async fn dispatch(sqs: &Sqs, operation: &str, input: Value, ctx: &Ctx) -> Result<Value> {
    sqs.check_open()?;
    let input = if input.is_null() { Value::Object(Default::default()) } else { input };
    match operation {
        "CreateQueue" => ops::queues::create(sqs, &input, ctx).await,
        "DeleteQueue" => ops::queues::delete(sqs, &input).await,
        "GetQueueUrl" => ops::queues::get_url(sqs, &input, ctx),
        "ListQueues" => ops::queues::list(sqs, &input, ctx),
        "GetQueueAttributes" => ops::attributes::get(sqs, &input),
        "SetQueueAttributes" => ops::attributes::set(sqs, &input).await,
        "PurgeQueue" => ops::queues::purge(sqs, &input).await,
        "ListDeadLetterSourceQueues" => ops::queues::dead_letter_sources(sqs, &input, ctx),
        "TagQueue" | "UntagQueue" | "ListQueueTags" => ops::tags::call(sqs, operation, &input).await,
        "SendMessage" => ops::send::send(sqs, &input, ctx).await,
        "SendMessageBatch" => ops::send::send_batch(sqs, &input, ctx).await,
        "ReceiveMessage" => ops::receive::receive(sqs, &input).await,
        "DeleteMessage" => ops::visibility::delete(sqs, &input).await,
        "DeleteMessageBatch" => ops::visibility::delete_batch(sqs, &input).await,
        "ChangeMessageVisibility" => ops::visibility::change(sqs, &input).await,
        "ChangeMessageVisibilityBatch" => ops::visibility::change_batch(sqs, &input).await,
        "StartMessageMoveTask" => ops::moves::start(sqs, &input),
        "ListMessageMoveTasks" => ops::moves::list(sqs, &input),
        "CancelMessageMoveTask" => ops::moves::cancel(sqs, &input),
        "AddPermission" | "RemovePermission" => Ok(Value::Object(Default::default())),
        _ => Err(SqsError::unknown_operation(operation)),
    }
}

pub use nimbus_api::xml::escape as xml_escape;

/// Decodes a form component: `+` is a space, then `%XX` escapes.
pub fn percent_decode_plus(input: &str) -> String {
    nimbus_api::percent_decode(&input.replace('+', " "))
}
