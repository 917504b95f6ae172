//! EventBridge (`events`, JSON 1.1 `AWSEvents`) and EventBridge Scheduler (`scheduler`,
//! REST-JSON): event buses, rules matched with the shared event-pattern language, scheduled rules
//! and schedules that fire on time, and targets reached through the [`Targets`] trait (Lambda,
//! SQS, SNS, Kinesis — wired by the binary, so this crate depends on none of them).
//!
//! Everything is durable through the storage layer: rules, targets and schedules, and every
//! delivery (an outbox row written in the same transaction that accepts the event or claims the
//! schedule's firing), so an acknowledged event or a due firing survives kill -9.

pub mod expression;
mod firing;
mod input;
pub mod provider;
mod rules;
mod schedules;
mod transform;

use std::sync::Arc;

use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{HeaderMap, Method, Uri};
use nimbus_api::clock::Clock;
use nimbus_api::{ApiRequest, AwsError, Identity, Protocol, Service, ServiceFuture};
use nimbus_store::{Database, DbError, Migration, Schema, ServiceDb};
use serde_json::Value;
use tokio::sync::Notify;

pub use firing::Delivery;

/// Where targets are delivered: the binary implements it with the other services.
pub trait Targets: Send + Sync + 'static {
    /// Hands `payload` to the resource `arn` (a function, queue, topic or stream) durably, or
    /// says why it could not. Called on a blocking thread.
    fn deliver(&self, arn: &str, payload: &str, options: &DeliveryOptions) -> Result<(), String>;
}

/// What a target's parameters add to a delivery.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeliveryOptions {
    /// SQS FIFO queues (`SqsParameters.MessageGroupId`).
    pub message_group_id: Option<String>,
    /// Kinesis streams (`KinesisParameters.PartitionKeyPath`, resolved).
    pub partition_key: Option<String>,
    /// SQS message attributes (dead-letter messages carry the error and the rule).
    pub attributes: Vec<(String, String)>,
}

pub const SCHEMA: Schema = Schema {
    service: "events",
    sqlite_file: "events/events.db",
    relaxed: false,
    migrations: &[Migration::both(
        "CREATE TABLE buses (name TEXT PRIMARY KEY, doc TEXT NOT NULL);
         CREATE TABLE rules (bus TEXT NOT NULL, name TEXT NOT NULL, doc TEXT NOT NULL,
             next_fire_ms BIGINT, PRIMARY KEY (bus, name));
         CREATE INDEX rules_due ON rules (next_fire_ms);
         CREATE TABLE targets (bus TEXT NOT NULL, rule TEXT NOT NULL, id TEXT NOT NULL,
             doc TEXT NOT NULL, PRIMARY KEY (bus, rule, id));
         CREATE TABLE schedule_groups (name TEXT PRIMARY KEY, doc TEXT NOT NULL);
         CREATE TABLE schedules (grp TEXT NOT NULL, name TEXT NOT NULL, doc TEXT NOT NULL,
             next_fire_ms BIGINT, PRIMARY KEY (grp, name));
         CREATE INDEX schedules_due ON schedules (next_fire_ms);
         CREATE TABLE outbox (id TEXT PRIMARY KEY, node TEXT NOT NULL, doc TEXT NOT NULL,
             due_ms BIGINT NOT NULL, attempts INTEGER NOT NULL);
         CREATE INDEX outbox_due ON outbox (node, due_ms);",
    )],
};

/// Whether EventBridge has ever stored anything here, asked at start without opening it: a
/// nimbus that never used it pays nothing, one with schedules opens it to fire them.
pub fn has_state(database: &Database) -> bool {
    database.has_schema(&SCHEMA)
}

pub struct EventBridge {
    db: ServiceDb,
    identity: Identity,
    clock: Arc<dyn Clock>,
    targets: Arc<dyn Targets>,
    node: String,
    /// Rules, schedules or the outbox changed: the firing task looks again.
    wake: Arc<Notify>,
}

impl EventBridge {
    /// Opens the state and starts the task that fires schedules and delivers (it lives as long
    /// as the returned value).
    pub fn open(
        database: &Database,
        identity: Identity,
        clock: Arc<dyn Clock>,
        targets: Arc<dyn Targets>,
        node: &str,
    ) -> Result<Arc<EventBridge>, DbError> {
        let db = database.open(&SCHEMA)?;
        let events = Arc::new(EventBridge {
            db,
            identity,
            clock,
            targets,
            node: node.to_owned(),
            wake: Arc::new(Notify::new()),
        });
        events.db.execute(
            "INSERT INTO buses (name, doc) VALUES ('default', '{}') ON CONFLICT (name) DO NOTHING",
            &[],
        )?;
        firing::start(Arc::downgrade(&events));
        Ok(events)
    }

    fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    fn arn(&self, service: &str, resource: &str) -> String {
        format!("arn:aws:{service}:{}:{}:{resource}", self.identity.region, self.identity.account)
    }

    /// The Scheduler API, served from the same state and firing task.
    pub fn scheduler(self: &Arc<Self>) -> Arc<Scheduler> {
        Arc::new(Scheduler(self.clone()))
    }

    /// An event from another AWS service (a Lambda destination, S3) put on `bus` (a name or an
    /// ARN) and matched against its rules; durable when this returns.
    pub fn put_event(
        &self,
        bus: &str,
        source: &str,
        detail_type: &str,
        detail: Value,
        resources: Vec<String>,
    ) -> Result<(), String> {
        let bus = rules::local_bus(self, bus).unwrap_or_else(|| bus.to_owned());
        let event = serde_json::json!({
            "version": "0",
            "id": uuid::Uuid::new_v4().to_string(),
            "detail-type": detail_type,
            "source": source,
            "account": self.identity.account,
            "time": expression::iso_seconds(self.now()),
            "region": self.identity.region,
            "resources": resources,
            "detail": detail,
        });
        rules::put_event_json(self, &bus, &event.to_string())
    }

    /// Takes over the undelivered outbox rows of nodes that are gone (several nodes on one
    /// database); returns how many.
    pub fn adopt(&self, nodes: &[String]) -> usize {
        let mut adopted = 0;
        for node in nodes {
            let moved = self.db.execute(
                "UPDATE outbox SET node = ?1 WHERE node = ?2",
                &nimbus_store::params![self.node.as_str(), node.as_str()],
            );
            adopted += moved.unwrap_or(0) as usize;
        }
        if adopted > 0 {
            self.wake.notify_one();
        }
        adopted
    }

    /// Next firings, soonest first, for `nimbus schedules`.
    pub fn upcoming(&self) -> Result<Vec<Value>, AwsError> {
        firing::upcoming(self)
    }
}

const TARGET_PREFIX: &str = "AWSEvents.";

impl Service for EventBridge {
    fn name(&self) -> &'static str {
        "events"
    }

    fn claims(&self, _method: &Method, _uri: &Uri, _headers: &HeaderMap) -> bool {
        false
    }

    fn call(&self, request: ApiRequest) -> ServiceFuture<'_> {
        Box::pin(async move {
            let target = request.header("x-amz-target").unwrap_or_default();
            let operation = target.strip_prefix(TARGET_PREFIX).unwrap_or(target).to_owned();
            let result = match serde_json::from_slice::<Value>(&request.body) {
                Ok(body) if body.is_object() => {
                    let input = input::Input(&body);
                    tokio::task::block_in_place(|| rules::dispatch(self, &operation, &input))
                }
                _ => Err(AwsError::new(
                    400,
                    "SerializationException",
                    "Start of structure or map found where not expected.",
                )),
            };
            match result {
                Ok(value) => {
                    let mut response = nimbus_api::json_response(value);
                    let json = HeaderValue::from_static("application/x-amz-json-1.1");
                    response.headers_mut().insert(CONTENT_TYPE, json);
                    response
                }
                Err(error) => error.into_response(Protocol::Json),
            }
        })
    }
}

/// EventBridge Scheduler on the same state as the rules.
pub struct Scheduler(Arc<EventBridge>);

impl Service for Scheduler {
    fn name(&self) -> &'static str {
        "scheduler"
    }

    fn claims(&self, _method: &Method, _uri: &Uri, _headers: &HeaderMap) -> bool {
        false
    }

    fn call(&self, request: ApiRequest) -> ServiceFuture<'_> {
        Box::pin(async move {
            let result = tokio::task::block_in_place(|| schedules::dispatch(&self.0, &request));
            match result {
                Ok((status, value)) => {
                    let mut response = nimbus_api::json_response(value);
                    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or_default();
                    response
                }
                Err(error) => error.into_response(Protocol::RestJson),
            }
        })
    }
}

fn db_error(error: DbError) -> AwsError {
    AwsError::new(500, "InternalException", error.to_string())
}
