//! `GET /_nimbus/events`: server-sent events for the console (or any client). A client names what
//! it watches: `watch=<a /_nimbus/… GET path>` (repeatable: each is sent again as an `update`
//! event whenever its answer changes, checked once a second) and `logs=<log group>` (with an
//! optional `stream=<log stream>`: new log events are sent as `logs` events as they arrive).
//! Each client's queue is bounded; a slow client skips updates (it gets the latest later), one
//! that goes away ends its feed at the next tick.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use nimbus_api::{percent_decode, ApiRequest, ApiResponse, AwsError, EventStream, ServiceFuture};
use serde_json::{json, Value};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::mpsc::Sender;

/// Browsers listening at once.
pub const MAX_CLIENTS: usize = 64;
/// Paths one client may watch.
const MAX_WATCHES: usize = 12;
/// Events waiting for one client.
const QUEUE: usize = 16;
/// How often watched paths are asked again.
const TICK: Duration = Duration::from_secs(1);
/// A comment line keeps proxies and the browser from timing the connection out.
const KEEPALIVE_TICKS: u32 = 15;

/// How the feed asks nimbus's services (the handlers a client reaches over HTTP, in process).
pub trait Reach: Send + Sync + 'static {
    /// Answers `request` as the port would; `service` names the AWS service for requests that
    /// address one (`logs`), None for nimbus's own paths.
    fn send(&self, service: Option<&'static str>, request: ApiRequest) -> ServiceFuture<'_>;
}

struct Watching {
    paths: Vec<String>,
    logs: Option<(String, Option<String>)>,
}

fn parse(request: &ApiRequest) -> Result<Watching, AwsError> {
    let mut watching = Watching { paths: Vec::new(), logs: None };
    let (mut group, mut stream) = (None, None);
    for pair in request.uri.query().unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value);
        match key {
            "watch" => {
                let allowed = value.starts_with("/_nimbus/")
                    && !value.starts_with("/_nimbus/ui")
                    && !value.starts_with(crate::EVENTS_PATH);
                if !allowed {
                    return Err(AwsError::new(
                        400,
                        "InvalidParameter",
                        format!("cannot watch {value}: give a /_nimbus/ path"),
                    ));
                }
                watching.paths.push(value);
            }
            "logs" => group = Some(value),
            "stream" => stream = Some(value),
            _ => {}
        }
    }
    if watching.paths.len() > MAX_WATCHES {
        return Err(AwsError::new(400, "InvalidParameter", format!("watch at most {MAX_WATCHES} paths")));
    }
    watching.logs = group.map(|group| (group, stream));
    Ok(watching)
}

/// Counts a client for as long as its feed runs.
struct Seat(Arc<AtomicUsize>);

impl Drop for Seat {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

pub(crate) fn open(
    reach: Arc<dyn Reach>,
    clients: Arc<AtomicUsize>,
    request: &ApiRequest,
) -> Result<ApiResponse, AwsError> {
    let watching = parse(request)?;
    if clients.fetch_add(1, Ordering::Relaxed) >= MAX_CLIENTS {
        clients.fetch_sub(1, Ordering::Relaxed);
        return Err(AwsError::new(503, "TooManyClients", format!("at most {MAX_CLIENTS} listen at once")));
    }
    let seat = Seat(clients);
    let (response, sender) = EventStream::response("text/event-stream", QUEUE);
    tokio::spawn(async move {
        let _seat = seat;
        run(reach, watching, sender).await;
    });
    Ok(response)
}

/// Whether the client still listens after offering it `frame` (a full queue skips it).
fn offer(sender: &Sender<Bytes>, frame: String) -> Result<bool, ()> {
    match sender.try_send(Bytes::from(frame)) {
        Ok(()) => Ok(true),
        Err(TrySendError::Full(_)) => Ok(false),
        Err(TrySendError::Closed(_)) => Err(()),
    }
}

async fn run(reach: Arc<dyn Reach>, watching: Watching, sender: Sender<Bytes>) {
    let mut last: Vec<Option<u64>> = vec![None; watching.paths.len()];
    let mut logs =
        watching.logs.map(|(group, stream)| LogsCursor { group, stream, since: 0, seen: HashSet::new() });
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Tells the browser to come back after a second when the connection drops.
    if offer(&sender, "retry: 1000\n\n".to_owned()).is_err() {
        return;
    }
    let mut quiet = 0;
    loop {
        ticker.tick().await;
        if sender.is_closed() {
            return;
        }
        let mut sent = false;
        for (path, last) in watching.paths.iter().zip(last.iter_mut()) {
            let body = get(&*reach, path).await;
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            body.hash(&mut hasher);
            let hash = hasher.finish();
            if *last == Some(hash) {
                continue;
            }
            let frame = format!(
                "event: update\ndata: {{\"path\":{},\"body\":{body}}}\n\n",
                Value::from(path.as_str())
            );
            match offer(&sender, frame) {
                Ok(true) => (*last, sent) = (Some(hash), true),
                Ok(false) => {}
                Err(()) => return,
            }
        }
        if let Some(cursor) = &mut logs {
            let events = cursor.next(&*reach).await;
            if !events.is_empty() {
                let frame =
                    format!("event: logs\ndata: {}\n\n", json!({ "group": cursor.group, "events": events }));
                match offer(&sender, frame) {
                    Ok(delivered) => sent |= delivered,
                    Err(()) => return,
                }
            }
        }
        quiet = if sent { 0 } else { quiet + 1 };
        if quiet >= KEEPALIVE_TICKS {
            quiet = 0;
            if offer(&sender, ": keepalive\n\n".to_owned()).is_err() {
                return;
            }
        }
    }
}

fn internal(method: hyper::Method, uri: &str, body: Vec<u8>) -> Option<ApiRequest> {
    Some(ApiRequest {
        method,
        uri: uri.parse().ok()?,
        headers: hyper::HeaderMap::new(),
        body: Bytes::from(body),
        request_id: nimbus_api::new_request_id(),
    })
}

/// The JSON answer of a `/_nimbus/…` path on one line, as sent (an error document when it has
/// none). Services answer compact JSON, which goes out as it came.
async fn get(reach: &dyn Reach, path: &str) -> String {
    let Some(request) = internal(hyper::Method::GET, path, Vec::new()) else {
        return json!({ "error": "not a path" }).to_string();
    };
    let response = reach.send(None, request).await;
    let status = response.status().as_u16();
    let body = body_of(response).await;
    if status < 300 {
        if let Ok(text) = std::str::from_utf8(&body) {
            let text = text.trim();
            if !text.contains('\n')
                && text.starts_with('{')
                && serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
            {
                return text.to_owned();
            }
        }
    }
    match serde_json::from_slice::<Value>(&body) {
        Ok(value) if status < 300 => value.to_string(),
        Ok(value) => json!({ "error": value, "status": status }).to_string(),
        Err(_) => json!({ "error": String::from_utf8_lossy(&body), "status": status }).to_string(),
    }
}

async fn body_of(response: ApiResponse) -> Bytes {
    use http_body_util::BodyExt;
    response.into_body().collect().await.map(|c| c.to_bytes()).unwrap_or_default()
}

/// Where a client's log feed has got to: events from `since` (ms) on, minus those already sent
/// with that timestamp.
struct LogsCursor {
    group: String,
    stream: Option<String>,
    since: i64,
    seen: HashSet<String>,
}

impl LogsCursor {
    async fn next(&mut self, reach: &dyn Reach) -> Vec<Value> {
        let mut input = json!({ "logGroupName": self.group, "startTime": self.since, "limit": 500 });
        if let Some(stream) = &self.stream {
            input["logStreamNames"] = json!([stream]);
        }
        let Some(mut request) = internal(hyper::Method::POST, "/", input.to_string().into_bytes()) else {
            return Vec::new();
        };
        let headers = &mut request.headers;
        headers
            .insert("x-amz-target", hyper::header::HeaderValue::from_static("Logs_20140328.FilterLogEvents"));
        headers.insert("content-type", hyper::header::HeaderValue::from_static("application/x-amz-json-1.1"));
        let response = reach.send(Some("logs"), request).await;
        if !response.status().is_success() {
            return Vec::new();
        }
        let answer: Value = serde_json::from_slice(&body_of(response).await).unwrap_or_default();
        let mut fresh = Vec::new();
        for event in answer["events"].as_array().into_iter().flatten() {
            let id = event["eventId"].as_str().unwrap_or_default().to_owned();
            let at = event["timestamp"].as_i64().unwrap_or(0);
            if self.seen.contains(&id) {
                continue;
            }
            if at > self.since {
                self.since = at;
                self.seen.clear();
            }
            self.seen.insert(id);
            fresh.push(json!({
                "timestamp": at,
                "stream": event["logStreamName"],
                "message": event["message"],
            }));
        }
        fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(query: &str) -> ApiRequest {
        internal(hyper::Method::GET, &format!("/_nimbus/events?{query}"), Vec::new()).unwrap()
    }

    #[test]
    fn a_client_watches_nimbus_paths_and_a_log_group() {
        let watching = parse(&request(
            "watch=%2F_nimbus%2Ffunctions&watch=/_nimbus/batch/array?job=x&logs=%2Faws%2Flambda%2Ff&stream=s",
        ))
        .unwrap();
        assert_eq!(watching.paths, ["/_nimbus/functions", "/_nimbus/batch/array?job=x"]);
        assert_eq!(watching.logs, Some(("/aws/lambda/f".to_owned(), Some("s".to_owned()))));
    }

    #[test]
    fn only_nimbus_paths_other_than_the_console_are_watched() {
        for refused in [
            "watch=/2015-03-31/functions",
            "watch=/_nimbus/events",
            "watch=/_nimbus/ui/",
            "watch=http://x/_nimbus/",
        ] {
            assert!(parse(&request(refused)).is_err(), "{refused}");
        }
        let many = vec!["watch=/_nimbus/health"; MAX_WATCHES + 1].join("&");
        assert!(parse(&request(&many)).is_err());
    }

    #[test]
    fn a_full_queue_skips_and_a_gone_client_ends() {
        let (sender, receiver) = tokio::sync::mpsc::channel(1);
        assert_eq!(offer(&sender, "a".into()), Ok(true));
        assert_eq!(offer(&sender, "b".into()), Ok(false));
        drop(receiver);
        assert_eq!(offer(&sender, "c".into()), Err(()));
    }
}
