//! Amazon EC2 (Query protocol, `Version=2016-11-15`) and EC2 Auto Scaling (`2011-01-01`) over
//! real capacity: an instance is a long-lived sandbox carved from the host (its memory limit the
//! type's, its own PID and network namespaces), its user data a real process, and a spot
//! instance really goes away after its two-minute notice.
//!
//! State lives in the storage layer (instances, spot requests, reservations, records, the meter's
//! ledger); processes live on the node that booted them. See the README for what deviates.
//!
//! For other engines (Batch) the Rust API is [`Ec2::launch`] (capacity of N vCPUs / M MiB, or
//! a named type), [`Ec2::exec`] (a process inside it), [`Ec2::watch`] (told when it is
//! interrupted or ends) and [`Ec2::terminate`].

mod api;
pub(crate) mod asg;
mod attributes;
mod autoscaling;
mod catalog;
mod catalog_ops;
mod imds;
mod instances;
mod lifecycle;
mod market;
mod meter;
mod model;
pub(crate) mod policies;
pub mod provider;
mod query;
mod records;
mod reserved;
mod runner;
pub(crate) mod schedule;
mod series;
pub(crate) mod spot;
mod store;
mod templates;
#[cfg(test)]
mod tests;
mod whatif;
mod xml;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};

use nimbus_api::clock::Clock;
use nimbus_api::{AwsError, Identity};
use nimbus_sandbox::Sandbox;
use nimbus_store::Database;
use serde_json::Value;
use tokio::sync::watch;

pub use crate::api::{Capacity, Launched, Lifecycle, ADMIN_PREFIX};
pub use crate::autoscaling::AutoScaling;
pub use crate::catalog::{spot_price, Catalog, InstanceType, PRICE_SOURCE};
pub use crate::model::{Instance, State};
pub use crate::policies::ScalingAlarms;
pub use crate::runner::{ApiAcceptor, Exec, Process};
use crate::store::{Store, SCHEMA};
pub use crate::whatif::{FunctionUsage, FunctionUse};

/// Where EC2 sends the events AWS puts on the default event bus (source `aws.ec2`): the spot
/// interruption warning, state-change notifications. The integrator wires it to EventBridge.
pub trait Ec2Events: Send + Sync + 'static {
    fn put(&self, source: &str, detail_type: &str, resources: Vec<String>, detail: Value);
}

/// Events go nowhere (tests, or EventBridge not wired).
pub struct NoEvents;

impl Ec2Events for NoEvents {
    fn put(&self, _: &str, _: &str, _: Vec<String>, _: Value) {}
}

/// What this host lends to instances, and the knobs of the spot market.
#[derive(Debug, Clone)]
pub struct Config {
    /// vCPUs that running instances' types may add up to.
    pub vcpus: u32,
    /// MiB that running instances' types may add up to.
    pub memory_mib: u64,
    /// An instance holds its type's vCPUs and memory divided by this (≥ 1), and its cgroup is
    /// limited to as much: types larger than the host become launchable.
    pub scale: f64,
    /// Seconds between a spot interruption notice and the interruption (AWS: 120).
    pub spot_notice_seconds: u64,
    /// Chance per hour that a running spot instance is interrupted (0: only on demand, or when
    /// the spot price passes the instance's max price).
    pub spot_interruption_rate: f64,
    /// Where nimbus is reached (`http://host:port`).
    pub endpoint_url: String,
    /// EC2's own files (user data, console logs) live under here.
    pub data_dir: PathBuf,
    /// This node's name: an instance's processes live on the node that booted it.
    pub node: String,
    /// Run the market's minute (interruptions, persistent requests, scheduled actions) on the
    /// clock; off, only [`Ec2::market_minute`] calls run it (tests).
    pub market: bool,
}

/// Events kept for the capacity timeline (`GET /_nimbus/ec2/events`).
pub const EVENTS_KEPT: i64 = 1000;

pub struct Ec2 {
    store: Store,
    identity: Identity,
    config: Config,
    clock: Arc<dyn Clock>,
    runner: Arc<runner::Runner>,
    events: Arc<dyn Ec2Events>,
    /// Read-modify-write of instance documents, one at a time on this node.
    docs: Mutex<()>,
    /// Launches are checked against the capacity one at a time.
    launching: Mutex<()>,
    /// Auto Scaling groups are brought to their desired capacity one at a time.
    scaling: Mutex<()>,
    watchers: Mutex<HashMap<String, watch::Sender<Lifecycle>>>,
    tokens: imds::Tokens,
    /// Where target tracking policies keep their CloudWatch alarms (set by the integrator).
    alarms: std::sync::OnceLock<Arc<dyn ScalingAlarms>>,
    /// Where the what-if comparison reads functions' use (set by the integrator).
    function_usage: std::sync::OnceLock<Arc<dyn FunctionUsage>>,
    me: Weak<Ec2>,
}

impl Ec2 {
    /// Opens (creating) EC2's tables. Instances that were running when nimbus last stopped are
    /// marked as AWS marks a host failure (see [`lifecycle`]); spot interruptions in flight resume.
    pub fn open(
        database: &Database,
        identity: Identity,
        config: Config,
        clock: Arc<dyn Clock>,
        sandbox: Arc<Sandbox>,
        acceptor: ApiAcceptor,
        events: Arc<dyn Ec2Events>,
    ) -> Result<Arc<Ec2>, String> {
        let db = database.open(&SCHEMA).map_err(|e| e.to_string())?;
        let runner = Arc::new(runner::Runner::new(
            sandbox,
            config.data_dir.clone(),
            config.endpoint_url.clone(),
            acceptor,
        ));
        let ec2 = Arc::new_cyclic(|me| Ec2 {
            store: Store { db },
            identity,
            config,
            clock,
            runner,
            events,
            docs: Mutex::new(()),
            launching: Mutex::new(()),
            scaling: Mutex::new(()),
            watchers: Mutex::new(HashMap::new()),
            tokens: imds::Tokens::default(),
            alarms: std::sync::OnceLock::new(),
            function_usage: std::sync::OnceLock::new(),
            me: me.clone(),
        });
        ec2.recover().map_err(|e| e.message)?;
        if tokio::runtime::Handle::try_current().is_ok() {
            ec2.reconcile_all().map_err(|e| e.message)?;
            if ec2.config.market {
                tokio::spawn(market::market(Arc::downgrade(&ec2)));
            }
        }
        Ok(ec2)
    }

    /// Whether EC2 has work to do from the start: instances to recover, groups to keep at their
    /// capacity, scheduled actions to fire, open spot requests to fulfil.
    pub fn has_instances(database: &Database) -> bool {
        if !database.has_schema(&SCHEMA) {
            return false;
        }
        let Ok(db) = database.open(&SCHEMA) else { return false };
        Store { db }.count_live().unwrap_or(0) > 0
    }

    /// Target tracking policies create their alarms through `alarms` (CloudWatch).
    pub fn set_alarms(&self, alarms: Arc<dyn ScalingAlarms>) {
        let _ = self.alarms.set(alarms);
    }

    /// Instances whose processes run on this node now (from memory: no disk read).
    pub fn live_instances(&self) -> usize {
        self.runner.live_ids().len()
    }

    fn arc(&self) -> Arc<Ec2> {
        self.me.upgrade().expect("EC2 is alive while it serves")
    }

    fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Sends an `aws.ec2` event (and keeps it in the store for `GET /_nimbus/ec2/events`: the
    /// newest [`EVENTS_KEPT`]).
    fn emit(&self, detail_type: &str, resources: Vec<String>, detail: Value) {
        self.emit_from("aws.ec2", detail_type, resources, detail);
    }

    /// An event is in the region of the instance or group it is about (its first resource's
    /// ARN), as the integrator puts it on that region's bus.
    fn emit_from(&self, source: &'static str, detail_type: &str, resources: Vec<String>, detail: Value) {
        let region = resources
            .first()
            .map(|arn| nimbus_api::scope::arn_scope(arn).0)
            .filter(|region| !region.is_empty())
            .unwrap_or(&self.identity.region)
            .to_owned();
        let event = serde_json::json!({
            "detail-type": detail_type,
            "source": source,
            "time": iso_seconds(self.now()),
            "region": region,
            "resources": resources,
            "detail": detail,
        });
        if let Err(error) = self.store.record_event(&region, &event, self.now()) {
            eprintln!("nimbus: ec2: cannot keep an event for the timeline: {}", error.message);
        }
        let events = self.events.clone();
        let detail_type = detail_type.to_owned();
        // Off this thread: EventBridge's put is blocking and may open its store.
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                drop(runtime.spawn_blocking(move || events.put(source, &detail_type, resources, detail)))
            }
            Err(_) => events.put(source, &detail_type, resources, detail),
        }
    }

    /// Stops every instance's processes (nimbus is stopping); their state is settled at the next
    /// start.
    pub async fn shutdown(&self) {
        self.runner.shutdown().await;
    }
}

impl Config {
    /// The vCPUs and MiB an instance of `kind` holds on this host (its type's, scaled down).
    pub fn footprint(&self, kind: &InstanceType) -> (f64, u64) {
        let scale = self.scale.max(1.0);
        (f64::from(kind.vcpus) / scale, ((kind.memory_mib as f64 / scale).ceil() as u64).max(16))
    }
}

fn internal(error: impl std::fmt::Display) -> AwsError {
    AwsError::new(500, "InternalError", format!("nimbus: {error}"))
}

/// `2024-05-01T12:00:00.000Z`.
pub(crate) fn iso8601(ms: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    at.format(&format).unwrap_or_default()
}

/// `2024-05-01T12:00:00Z` (IMDS and events).
pub(crate) fn iso_seconds(ms: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    at.format(&format).unwrap_or_default()
}

/// `2024-05-01 12:00:00 GMT` (StateTransitionReason).
pub(crate) fn gmt(ms: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] GMT");
    at.format(&format).unwrap_or_default()
}

/// An ISO 8601 / RFC 3339 time or epoch seconds, as the Query protocol sends timestamps.
pub(crate) fn parse_time(text: &str) -> Option<i64> {
    if let Ok(seconds) = text.parse::<f64>() {
        return Some((seconds * 1000.0) as i64);
    }
    let parsed = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    Some((parsed.unix_timestamp_nanos() / 1_000_000) as i64)
}
