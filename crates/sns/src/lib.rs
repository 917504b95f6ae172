//! Amazon SNS (Query protocol, `Version=2010-03-31`): standard and FIFO topics, subscriptions
//! of SQS queues, Lambda functions and HTTP/S endpoints (with the confirmation flow), `Publish`
//! and `PublishBatch` with message attributes, filter policies (attribute and payload scope,
//! through `nimbus_events`' matcher), raw delivery, delivery retries and redrive to a
//! dead-letter queue.
//!
//! State lives in the storage layer, so any node answers any call. Deliveries to queues and
//! functions are handed to their (durable) queues before `Publish` answers; deliveries to
//! HTTP/S endpoints are stored in an outbox first and made in the background, retried per the
//! delivery policy. SNS knows SQS and Lambda only through [`Deliver`], which the integrator
//! implements.

mod deliver;
mod error;
mod filter;
mod http;
pub mod provider;
mod publish;
mod store;
mod subscriptions;
#[cfg(test)]
mod tests;
mod topics;
mod xml;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use hyper::{HeaderMap, Method, Uri};
use nimbus_api::{form, ApiRequest, AwsError, Protocol, Service, ServiceFuture};
use nimbus_store::Database;
use serde_json::Value;

pub use crate::publish::MessageAttribute;
use crate::store::Store;
pub use crate::store::SCHEMA;

/// What SNS needs from the services it delivers to. Blocking calls; each returns once the
/// message is durable at the target (an SQS message stored, an asynchronous invocation queued).
pub trait Deliver: Send + Sync + 'static {
    /// Sends `body` to the queue; `group_id`/`dedup_id` for FIFO queues.
    fn to_queue(&self, queue_arn: &str, message: QueueMessage) -> Result<(), Failure>;
    /// Queues an asynchronous invocation of the function with `event`.
    fn to_function(&self, function_arn: &str, event: Vec<u8>) -> Result<(), Failure>;
}

/// Why a delivery failed. Transient failures (the target's service unavailable for a moment)
/// are retried from the outbox; the others (a deleted queue or function) go to the dead-letter
/// queue at once, as on AWS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub message: String,
    pub transient: bool,
}

impl Failure {
    pub fn permanent(message: impl Into<String>) -> Failure {
        Failure { message: message.into(), transient: false }
    }

    pub fn transient(message: impl Into<String>) -> Failure {
        Failure { message: message.into(), transient: true }
    }
}

/// A message for an SQS queue.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueMessage {
    pub body: String,
    /// SQS message attributes (raw delivery, dead-letter details).
    pub attributes: BTreeMap<String, MessageAttribute>,
    pub group_id: Option<String>,
    pub dedup_id: Option<String>,
}

pub struct Sns {
    store: Store,
    region: String,
    account: String,
    /// Where nimbus is reached (`http://host:port`): SubscribeURL and UnsubscribeURL point here.
    endpoint_url: String,
    deliver: Arc<dyn Deliver>,
    /// One publish at a time per FIFO topic, so that queues get each group in order.
    fifo_locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    outbox: http::Outbox,
}

impl Sns {
    /// Opens (creating) SNS's tables; starts the HTTP/S delivery worker when inside a tokio
    /// runtime.
    pub fn open(
        database: &Database,
        region: &str,
        account: &str,
        endpoint_url: &str,
        deliver: Arc<dyn Deliver>,
    ) -> Result<Arc<Sns>, String> {
        let db = database.open(&SCHEMA).map_err(|e| e.to_string())?;
        let store = Store { db };
        if !database.is_shared() {
            store.release_claims().map_err(|e| e.to_string())?;
        }
        let sns = Arc::new(Sns {
            store,
            region: region.to_owned(),
            account: account.to_owned(),
            endpoint_url: endpoint_url.trim_end_matches('/').to_owned(),
            deliver,
            fifo_locks: Mutex::new(HashMap::new()),
            outbox: http::Outbox::default(),
        });
        if tokio::runtime::Handle::try_current().is_ok() {
            http::start(&sns);
        }
        Ok(sns)
    }

    /// Whether SNS holds HTTP/S deliveries still to make (checked at start: the worker must
    /// run then without waiting for a request). Opens nothing that does not exist.
    pub fn has_pending(database: &Database) -> bool {
        if let Database::Sqlite { data_dir } = database {
            if !data_dir.join(SCHEMA.sqlite_file).exists() {
                return false;
            }
        }
        let Ok(db) = database.open(&SCHEMA) else { return false };
        Store { db }.pending().unwrap_or(0) > 0
    }

    fn topic_arn(&self, name: &str) -> String {
        format!("arn:aws:sns:{}:{}:{name}", self.region, self.account)
    }

    /// Whether `arn` names an existing topic.
    pub fn topic_exists(&self, arn: &str) -> bool {
        matches!(self.store.topic(arn), Ok(Some(_)))
    }

    /// Publishes to a topic for another service (EventBridge and Scheduler targets, S3
    /// notifications): the same checks, filtering and deliveries as the `Publish` call.
    /// Blocking. Returns the message id.
    pub fn publish(
        &self,
        topic_arn: &str,
        message: &str,
        subject: Option<&str>,
        attributes: &BTreeMap<String, MessageAttribute>,
        group_id: Option<&str>,
        dedup_id: Option<&str>,
    ) -> Result<String, AwsError> {
        let request = publish::Request {
            message: message.to_owned(),
            subject: subject.map(str::to_owned),
            structure_json: false,
            attributes: attributes.clone(),
            group_id: group_id.map(str::to_owned),
            dedup_id: dedup_id.map(str::to_owned),
        };
        let request_id = nimbus_api::new_request_id();
        publish::publish_to(self, topic_arn, request, &request_id).map(|published| published.message_id)
    }
}

pub(crate) fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// `2024-05-01T12:00:00.123Z`.
pub(crate) fn iso8601(ms: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    at.format(&format).unwrap_or_default()
}

/// Operations of the SNS API nimbus does not serve (mobile push, SMS, data protection).
const UNSUPPORTED: &[&str] = &[
    "CheckIfPhoneNumberIsOptedOut",
    "CreatePlatformApplication",
    "CreatePlatformEndpoint",
    "CreateSMSSandboxPhoneNumber",
    "DeleteEndpoint",
    "DeletePlatformApplication",
    "DeleteSMSSandboxPhoneNumber",
    "GetDataProtectionPolicy",
    "GetEndpointAttributes",
    "GetPlatformApplicationAttributes",
    "GetSMSAttributes",
    "GetSMSSandboxAccountStatus",
    "ListEndpointsByPlatformApplication",
    "ListOriginationNumbers",
    "ListPhoneNumbersOptedOut",
    "ListPlatformApplications",
    "ListSMSSandboxPhoneNumbers",
    "OptInPhoneNumber",
    "PutDataProtectionPolicy",
    "SetEndpointAttributes",
    "SetPlatformApplicationAttributes",
    "SetSMSAttributes",
    "VerifySMSSandboxPhoneNumber",
];

fn dispatch(sns: &Sns, action: &str, input: &Value, request_id: &str) -> Result<Option<String>, AwsError> {
    match action {
        "CreateTopic" => topics::create(sns, input).map(Some),
        "DeleteTopic" => topics::delete(sns, input).map(|()| None),
        "ListTopics" => topics::list(sns, input).map(Some),
        "GetTopicAttributes" => topics::get_attributes(sns, input).map(Some),
        "SetTopicAttributes" => topics::set_attributes(sns, input).map(|()| None),
        "TagResource" => topics::tag(sns, input).map(|()| Some(String::new())),
        "UntagResource" => topics::untag(sns, input).map(|()| Some(String::new())),
        "ListTagsForResource" => topics::list_tags(sns, input).map(Some),
        "AddPermission" | "RemovePermission" => topics::permission(sns, input).map(|()| None),
        "Subscribe" => subscriptions::subscribe(sns, input).map(Some),
        "ConfirmSubscription" => subscriptions::confirm(sns, input).map(Some),
        "Unsubscribe" => subscriptions::unsubscribe(sns, input).map(|()| None),
        "ListSubscriptions" => subscriptions::list(sns, input, None).map(Some),
        "ListSubscriptionsByTopic" => {
            let topic = input["TopicArn"].as_str().unwrap_or_default();
            subscriptions::list(sns, input, Some(topic)).map(Some)
        }
        "GetSubscriptionAttributes" => subscriptions::get_attributes(sns, input).map(Some),
        "SetSubscriptionAttributes" => subscriptions::set_attributes(sns, input).map(|()| None),
        "Publish" => publish::publish(sns, input, request_id).map(Some),
        "PublishBatch" => publish::publish_batch(sns, input, request_id).map(Some),
        _ if UNSUPPORTED.contains(&action) => Err(AwsError::new(
            400,
            "InvalidAction",
            format!("nimbus does not implement the SNS operation {action} (mobile push, SMS and data protection are not served)"),
        )),
        "" => Err(AwsError::new(400, "MissingAction", "MissingAction")),
        _ => Err(AwsError::new(400, "InvalidAction", format!("The action {action} is not valid for this web service."))),
    }
}

impl Service for Sns {
    fn name(&self) -> &'static str {
        "sns"
    }

    fn claims(&self, _method: &Method, _uri: &Uri, _headers: &HeaderMap) -> bool {
        false
    }

    fn call(&self, request: ApiRequest) -> ServiceFuture<'_> {
        Box::pin(async move {
            let (action, input) = match form::parse(request.uri.query(), &request.body) {
                Ok(parsed) => parsed,
                Err(message) => return error::invalid(message).into_response(Protocol::Query),
            };
            // The storage layer and deliveries block: off the runtime's worker for the call.
            let answer = tokio::task::block_in_place(|| dispatch(self, &action, &input, &request.request_id));
            match answer {
                Ok(result) => xml::response(&action, result.as_deref(), &request.request_id),
                Err(error) => error.into_response(Protocol::Query),
            }
        })
    }
}
