//! Subscription filters at work: the events of a batch that match a group's subscription filter
//! go to its destination as AWS sends them — a gzipped JSON `DATA_MESSAGE` (for a Lambda
//! function, base64 under `awslogs.data`). Delivery happens after the events are accepted and
//! does not hold up the writer; a destination the integrator cannot reach is reported, not
//! retried.

use std::io::Write;

use base64::Engine;
use serde_json::{json, Value};

use crate::pattern::Pattern;
use crate::Logs;

/// Where subscription payloads go; the integrator implements it (Lambda functions …).
pub trait Subscriber: Send + Sync + 'static {
    /// `payload` is the gzipped `DATA_MESSAGE` JSON.
    fn deliver(&self, destination_arn: &str, payload: Vec<u8>) -> Result<(), String>;

    /// A metric filter's data point: `count` matching events whose values sum to `sum`.
    fn metric(
        &self,
        namespace: &str,
        name: &str,
        unit: Option<&str>,
        at_s: i64,
        sum: f64,
        count: f64,
    ) -> Result<(), String>;

    /// An export task's file, written to S3.
    fn put_object(&self, bucket: &str, key: &str, data: Vec<u8>) -> Result<(), String>;
}

/// A metric filter's value for one event: a number, or `$.path` into a JSON event.
fn metric_value(spec: &str, message: &str) -> Option<f64> {
    if let Ok(number) = spec.trim().parse::<f64>() {
        return Some(number);
    }
    let path = spec.trim().strip_prefix("$.")?;
    let mut value: Value = serde_json::from_str(message).ok()?;
    for part in path.split('.') {
        value = value.get(part)?.clone();
    }
    value.as_f64().or_else(|| value.as_str()?.parse().ok())
}

/// Publishes the metric filters' data points for a batch of `group`.
fn publish_metrics(subscriber: &dyn Subscriber, filters: &[Value], events: &[(i64, String)]) {
    for filter in filters {
        let Ok(pattern) = Pattern::parse(filter["filterPattern"].as_str().unwrap_or_default()) else {
            continue;
        };
        for transformation in filter["metricTransformations"].as_array().into_iter().flatten() {
            let (namespace, name) = (
                transformation["metricNamespace"].as_str().unwrap_or_default(),
                transformation["metricName"].as_str().unwrap_or_default(),
            );
            let spec = transformation["metricValue"].as_str().unwrap_or("1");
            let unit = transformation["unit"].as_str();
            let (mut sum, mut count, mut at) = (0.0, 0.0, 0);
            for (timestamp, message) in events.iter().filter(|(_, m)| pattern.matches(m)) {
                if let Some(value) = metric_value(spec, message) {
                    sum += value;
                    count += 1.0;
                    at = at.max(*timestamp);
                }
            }
            let default = transformation["defaultValue"].as_f64();
            let point = match (count > 0.0, default) {
                (true, _) => Some((sum, count)),
                (false, Some(default)) => Some((default, 1.0)),
                (false, None) => None,
            };
            let at = if at == 0 { events.last().map_or(0, |e| e.0) } else { at };
            if let Some((sum, count)) = point {
                if let Err(why) = subscriber.metric(namespace, name, unit, at.div_euclid(1000), sum, count) {
                    eprintln!("nimbus: metric filter {} not published: {why}", filter["filterName"]);
                }
            }
        }
    }
}

/// `{"awslogs": {"data": base64(gzip)}}`: the event a Lambda subscription receives.
pub fn lambda_event(payload: &[u8]) -> Vec<u8> {
    let data = base64::engine::general_purpose::STANDARD.encode(payload);
    json!({ "awslogs": { "data": data } }).to_string().into_bytes()
}

pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = encoder.write_all(data);
    encoder.finish().unwrap_or_default()
}

impl Logs {
    /// Sends `events` of `group`/`stream` to the group's subscription destinations.
    pub(crate) fn deliver_subscriptions(&self, group: &str, stream: &str, events: Vec<(i64, String)>) {
        let Some(subscriber) = self.subscriber.get().cloned() else { return };
        let (catalog, owner) = (self.storage.catalog.clone(), self.identity.account.clone());
        let (group, stream) = (group.to_owned(), stream.to_owned());
        let work = move || {
            if let Ok(metric_filters) = catalog.filters(Some(&group), "metric") {
                publish_metrics(subscriber.as_ref(), &metric_filters, &events);
            }
            let Ok(filters) = catalog.filters(Some(&group), "subscription") else { return };
            for filter in filters {
                let pattern_text = filter["filterPattern"].as_str().unwrap_or_default();
                let Ok(pattern) = Pattern::parse(pattern_text) else { continue };
                let matched: Vec<Value> = events
                    .iter()
                    .enumerate()
                    .filter(|(_, (_, message))| pattern.matches(message))
                    .map(|(i, (timestamp, message))| {
                        let id = format!("{:0>56}", format!("{timestamp}{i:06}"));
                        json!({ "id": id, "timestamp": timestamp, "message": message })
                    })
                    .collect();
                if matched.is_empty() {
                    continue;
                }
                let message = json!({
                    "messageType": "DATA_MESSAGE",
                    "owner": owner,
                    "logGroup": group,
                    "logStream": stream,
                    "subscriptionFilters": [filter["filterName"]],
                    "logEvents": matched,
                });
                let destination = filter["destinationArn"].as_str().unwrap_or_default();
                if let Err(why) = subscriber.deliver(destination, gzip(message.to_string().as_bytes())) {
                    eprintln!("nimbus: log events of {group} not delivered to {destination}: {why}");
                }
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(work)),
            Err(_) => work(),
        }
    }
}
