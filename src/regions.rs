//! Each region's (and account's) instances of the services that live per region (see
//! `regional`): how another region's instance is opened, beside the default one main.rs opens.

use std::sync::Arc;
use std::time::Duration;

use nimbus_api::clock::Clock;
use nimbus_api::{Identity, Protocol};
use nimbus_dynamodb::{DynamoDb, StreamsService};
use nimbus_eventbridge::{EventBridge, Scheduler};
use nimbus_logs::Logs;
use nimbus_metrics::Metrics;
use nimbus_sqs::Sqs;
use nimbus_store::{Blobs, Database};

use crate::lazy::Lazy;
use crate::regional::{blobs_for, scope_dir, Regional, Stored};

/// SQS of every region, the default one opened already.
pub fn sqs(database: &Database, identity: &Identity, sqs: Arc<Sqs>) -> Arc<Regional<Sqs>> {
    let home = Lazy::ready("sqs", Protocol::Json, sqs);
    Regional::new(home, database, identity, |database, identity| {
        Sqs::open(database, &identity.region, &identity.account).map_err(|e| e.to_string())
    })
}

/// What Logs' subscription filters deliver to, once it is wired (every region's instance uses it).
pub type LogSubscriber = Arc<std::sync::OnceLock<Arc<dyn nimbus_logs::Subscriber>>>;

/// Logs of every region, the default one opened already; another region's segments live under
/// `<region>/logs/`.
pub fn logs(
    database: &Database,
    blobs: &Blobs,
    identity: &Identity,
    logs: Arc<Logs>,
    subscriber: LogSubscriber,
) -> Arc<Regional<Logs>> {
    let home = Lazy::ready("logs", Protocol::Json, logs);
    let (blobs, default) = (blobs.clone(), identity.clone());
    Regional::new(home, database, identity, move |database, identity| {
        let blobs = blobs_for(&blobs, database, &default, identity);
        let logs = nimbus_logs::open(database, &blobs, identity.clone()).map_err(|e| e.to_string())?;
        if let Some(subscriber) = subscriber.get() {
            logs.set_subscriber(subscriber.clone());
        }
        Ok(logs)
    })
}

/// CloudWatch of every region (on a node alone): another region's figures are kept under
/// `<region>/metrics/`, its alarms evaluated and acted on as the default one's.
pub fn metrics(
    database: &Database,
    blobs: &Blobs,
    node: &str,
    identity: &Identity,
    home: Arc<Metrics>,
    clock: Arc<dyn Clock>,
    alarms: Arc<dyn nimbus_metrics::AlarmSink>,
) -> Arc<Regional<Metrics>> {
    let home = Lazy::ready("cloudwatch", Protocol::Query, home);
    let (blobs, node, default) = (blobs.clone(), node.to_owned(), identity.clone());
    Regional::new(home, database, identity, move |database, identity| {
        let blobs = blobs_for(&blobs, database, &default, identity);
        let metrics = Metrics::open(&blobs, &node).map_err(|e| e.to_string())?;
        metrics.set_identity(&identity.region, &identity.account);
        metrics.set_clock(clock.clone());
        metrics.set_alarm_sink(alarms.clone(), ALARM_EVALUATION);
        // Runs as long as nimbus does, as the default one's.
        drop(metrics.spawn_maintenance(crate::metrics_home::MAINTENANCE));
        Ok(metrics)
    })
}

/// How often alarms are evaluated.
pub const ALARM_EVALUATION: Duration = Duration::from_secs(10);

/// DynamoDB and its Streams per region, the two of a region sharing one instance (Streams opens
/// its region's DynamoDB, as the scheduler opens its region's EventBridge).
pub fn dynamodb(
    database: &Database,
    identity: &Identity,
    ttl_sweep: Duration,
    (home, home_streams): (Arc<Lazy<DynamoDb>>, Arc<Lazy<StreamsService>>),
) -> (Arc<Regional<DynamoDb>>, Arc<Regional<StreamsService>>) {
    let options = nimbus_dynamodb::Options { ttl_sweep };
    let dynamodb = Regional::new(home, database, identity, move |database, identity| {
        DynamoDb::open(database, identity.clone(), options.clone()).map_err(|e| e.to_string())
    });
    let tables = dynamodb.clone();
    let streams = Regional::new(home_streams, database, identity, move |database, identity| {
        let dynamodb = match Regional::<DynamoDb>::is_probe(database) {
            true => tables.probe_at(identity).ok_or("no stand-in for DynamoDB")?.get_blocking()?,
            false => tables.at(&identity.region, &identity.account)?.get_blocking()?,
        };
        Ok(Arc::new(dynamodb.streams_service()))
    });
    (dynamodb, streams)
}

/// Scheduler per region: served by that region's EventBridge.
pub fn scheduler(
    database: &Database,
    identity: &Identity,
    home: Arc<Lazy<Scheduler>>,
    events: Arc<Regional<EventBridge>>,
) -> Arc<Regional<Scheduler>> {
    Regional::new(home, database, identity, move |database, identity| {
        let events = match Regional::<EventBridge>::is_probe(database) {
            true => events.probe_at(identity).ok_or("no stand-in for EventBridge")?.get_blocking()?,
            false => events.at(&identity.region, &identity.account)?.get_blocking()?,
        };
        Ok(events.scheduler())
    })
}

/// Whether another region's stored state needs its instance open from the start (see
/// [`Regional::resume`], which asks only of a scope that holds the service's schema).
pub fn sns_pending(database: &Database) -> bool {
    nimbus_sns::Sns::has_pending(database)
}

pub fn dynamodb_background(database: &Database) -> bool {
    DynamoDb::needs_background(database)
}

/// Kinesis readers and retention want their streams open (on a node alone).
pub fn kinesis_streams(database: &Database) -> bool {
    !database.is_shared()
}

/// Any stored state needs its instance open (EventBridge's rules and schedules fire).
pub fn any_state(_: &Database) -> bool {
    true
}

/// Opens, in the background, other regions' CloudWatch that holds figures or alarms (alarms are
/// evaluated after a restart with no request); nothing is spawned when none does.
pub fn resume_metrics(regional: &Arc<Regional<Metrics>>, stored: &Stored, blobs: &Blobs, default: &Identity) {
    let holding: Vec<Identity> = stored
        .scopes()
        .filter(|identity| blobs.scoped(&scope_dir(default, identity)).has_area("metrics"))
        .cloned()
        .collect();
    if holding.is_empty() {
        return;
    }
    let regional = regional.clone();
    tokio::spawn(async move {
        for identity in holding {
            regional.open_at(&identity).await;
        }
    });
}
