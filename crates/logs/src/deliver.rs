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
}

/// `{"awslogs": {"data": base64(gzip)}}`: the event a Lambda subscription receives.
pub fn lambda_event(payload: &[u8]) -> Vec<u8> {
    let data = base64::engine::general_purpose::STANDARD.encode(payload);
    json!({ "awslogs": { "data": data } }).to_string().into_bytes()
}

fn gzip(data: &[u8]) -> Vec<u8> {
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
