//! `StartLiveTail`: an event stream (`application/vnd.amazon.eventstream`) of one `sessionStart`
//! and then a `sessionUpdate` per second carrying the events newly ingested into the session's
//! log groups (filtered by stream names or prefixes and the filter pattern), at most 500 an
//! update (`sampled` when more arrived or the session fell behind).
//!
//! nimbus's answers are whole bodies, not streams kept open: a session ends
//! [`QUIET`] after its last event, or [`WINDOW`] after it started, or at [`MAX_EVENTS`] (AWS
//! keeps one open for three hours); a client tails on by starting another.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use nimbus_api::{eventstream, ApiResponse, AwsError, Body};
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use super::input::{self, Input};
use crate::errors::{constraint, invalid};
use crate::pattern::Pattern;
use crate::Logs;

/// The longest a session lasts in nimbus.
pub const WINDOW: Duration = Duration::from_secs(10);
/// A session with events ends this long after the last one.
pub const QUIET: Duration = Duration::from_secs(2);
/// The most events one session carries.
pub const MAX_EVENTS: usize = 5_000;
/// AWS's most events in one `sessionUpdate`.
const PER_UPDATE: usize = 500;
/// Ingested batches waiting for slow sessions (older ones are dropped: `sampled`).
pub const BACKLOG: usize = 256;

/// Events just ingested into a stream, as live tail sessions see them.
pub struct Ingested {
    pub group: String,
    pub stream: String,
    pub ingestion_ms: i64,
    pub events: Vec<(i64, String)>,
}

impl Logs {
    /// Offers events just ingested to the live tail sessions (nothing to do without one).
    pub(crate) fn offer_live(&self, group: &str, stream: &str, events: &[(i64, String)]) {
        if self.live.receiver_count() == 0 || events.is_empty() {
            return;
        }
        let batch = Ingested {
            group: group.to_owned(),
            stream: stream.to_owned(),
            ingestion_ms: self.storage.now(),
            events: events.to_vec(),
        };
        let _ = self.live.send(Arc::new(batch));
    }

    pub(crate) async fn start_live_tail(
        &self,
        body: &[u8],
        request_id: &str,
    ) -> Result<ApiResponse, AwsError> {
        let input = Input::parse(body)?;
        let identifiers = input
            .str_list("logGroupIdentifiers")?
            .ok_or_else(|| crate::errors::missing("logGroupIdentifiers"))?;
        if identifiers.is_empty() || identifiers.len() > 10 {
            let rule = "Member must have length less than or equal to 10 and greater than or equal to 1";
            return Err(constraint(identifiers.len(), "logGroupIdentifiers", rule));
        }
        let mut groups = Vec::new();
        for identifier in &identifiers {
            if identifier.ends_with('*') {
                return Err(invalid(
                    "A log group ARN in logGroupIdentifiers can't end with an asterisk (*).",
                ));
            }
            let name = self.name_of_identifier(identifier)?;
            self.storage.catalog.group(&name).map_err(crate::errors::catalog)?;
            groups.push((name, identifier.clone()));
        }
        let names = input.str_list("logStreamNames")?;
        let prefixes = input.str_list("logStreamNamePrefixes")?;
        if names.is_some() && prefixes.is_some() {
            return Err(invalid(
                "logStreamNames and logStreamNamePrefixes are mutually exclusive parameters.",
            ));
        }
        if (names.is_some() || prefixes.is_some()) && groups.len() > 1 {
            return Err(invalid(
                "logStreamNames and logStreamNamePrefixes can only be given with a single log group.",
            ));
        }
        for name in names.iter().chain(prefixes.iter()).flatten() {
            input::stream_name(name, "logStreamNames")?;
        }
        let text = input.str("logEventFilterPattern")?.unwrap_or_default().to_owned();
        if text.len() > 1024 {
            let rule = "Member must have length less than or equal to 1024";
            return Err(constraint(&text, "logEventFilterPattern", rule));
        }
        let pattern =
            Pattern::parse(&text).map_err(|e| invalid(format!("Invalid filter pattern: {}", e.0)))?;

        let mut start = json!({
            "requestId": request_id,
            "sessionId": uuid::Uuid::new_v4().to_string(),
            "logGroupIdentifiers": identifiers,
        });
        if let Some(names) = &names {
            start["logStreamNames"] = json!(names);
        }
        if let Some(prefixes) = &prefixes {
            start["logStreamNamePrefixes"] = json!(prefixes);
        }
        if !text.is_empty() {
            start["logEventFilterPattern"] = json!(text);
        }
        let mut receiver = self.live.subscribe();
        let mut body = eventstream::event("initial-response", b"{}");
        body.extend(eventstream::event("sessionStart", start.to_string().as_bytes()));

        let wanted = |batch: &Ingested| -> Option<String> {
            let (_, identifier) = groups.iter().find(|(name, _)| *name == batch.group)?;
            let stream_ok = names.as_ref().is_none_or(|n| n.contains(&batch.stream))
                && prefixes.as_ref().is_none_or(|p| p.iter().any(|p| batch.stream.starts_with(p.as_str())));
            stream_ok.then(|| identifier.clone())
        };
        let deadline = Instant::now() + WINDOW;
        let mut last_event: Option<Instant> = None;
        let mut total = 0;
        let mut closed = false;
        while !closed {
            let second = (Instant::now() + Duration::from_secs(1)).min(deadline);
            let mut results: Vec<Value> = Vec::new();
            let mut sampled = false;
            loop {
                match tokio::time::timeout_at(second, receiver.recv()).await {
                    Err(_) => break,
                    Ok(Err(RecvError::Lagged(_))) => sampled = true,
                    Ok(Err(RecvError::Closed)) => {
                        closed = true;
                        break;
                    }
                    Ok(Ok(batch)) => {
                        let Some(identifier) = wanted(&batch) else { continue };
                        for (timestamp, message) in &batch.events {
                            if !pattern.matches(message) {
                                continue;
                            }
                            last_event = Some(Instant::now());
                            if results.len() >= PER_UPDATE || total + results.len() >= MAX_EVENTS {
                                sampled = true;
                                continue;
                            }
                            results.push(json!({
                                "logStreamName": batch.stream,
                                "logGroupIdentifier": identifier,
                                "message": message,
                                "timestamp": timestamp,
                                "ingestionTime": batch.ingestion_ms,
                            }));
                        }
                    }
                }
            }
            total += results.len();
            let update = json!({ "sessionMetadata": { "sampled": sampled }, "sessionResults": results });
            body.extend(eventstream::event("sessionUpdate", update.to_string().as_bytes()));
            let now = Instant::now();
            let quiet = last_event.is_some_and(|at| now.duration_since(at) >= QUIET);
            if now >= deadline || quiet || total >= MAX_EVENTS {
                break;
            }
        }
        let mut response = ApiResponse::new(Body::new(Bytes::from(body)));
        response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(eventstream::CONTENT_TYPE));
        Ok(response)
    }
}
